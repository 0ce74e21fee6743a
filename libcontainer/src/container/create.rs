//! `create`: validate the bundle, plan namespaces and cgroups, clone the
//! init and drive it to "created". A failed create undoes everything it
//! did (process, cgroup, state directory).

use std::os::fd::{OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::{ContainerError, Result};
use crate::cgroups::{CgroupError, CgroupPaths};
use crate::namespaces::Plan;
use crate::process::{self, ProcessError, SpawnArgs, Spawned};
use crate::state::{self, State, StateDir};
use crate::tty;

pub struct CreateOptions {
    pub id: String,
    /// With `process.terminal` and no `console_socket`: send the pty master
    /// back to the caller (`Created::console`) instead of failing.
    pub pty_to_caller: bool,
    pub bundle: PathBuf,
    pub root: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// The init's stdin, stdout and stderr (all >= 3); `None`: inherit ours.
    pub stdio: Option<[RawFd; 3]>,
    /// Prepare `Created::debug` notes (only then: they cost time on every
    /// create).
    pub debug: bool,
    /// Who makes the container's cgroup.
    pub cgroup_driver: CgroupDriver,
    /// Rootless mode (runc's `--rootless`; by default, when the caller is
    /// not root): only cgroups delegated to the caller are used.
    pub rootless: bool,
}

/// Who makes the container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupDriver {
    /// oxrun, in cgroupfs (runc's default).
    #[default]
    Cgroupfs,
    /// systemd, as a transient unit (runc's `--systemd-cgroup`).
    Systemd,
    /// systemd when `linux.cgroupsPath` has its `slice:prefix:name` form,
    /// cgroupfs otherwise: containerd 1.6/1.7's CRI sends that form (for a
    /// pod whose parent is a slice) without passing `SystemdCgroup` on to
    /// a runtime that is not runc.
    Detect,
}

impl CreateOptions {
    /// Options for creating `id` from `bundle` with its state under `root`;
    /// everything else as runc's defaults (no console socket, no pid file,
    /// pivot_root, a new session keyring, no preserved fds, our stdio).
    pub fn new(
        id: impl Into<String>,
        bundle: impl Into<PathBuf>,
        root: impl Into<PathBuf>,
    ) -> Self {
        CreateOptions {
            id: id.into(),
            pty_to_caller: false,
            bundle: bundle.into(),
            root: root.into(),
            console_socket: None,
            pid_file: None,
            no_pivot: false,
            no_new_keyring: false,
            preserve_fds: 0,
            stdio: None,
            debug: false,
            cgroup_driver: CgroupDriver::Cgroupfs,
            rootless: crate::user::rootless_by_default(),
        }
    }
}

pub struct Created {
    pub pid: i32,
    pub warnings: Vec<String>,
    /// Notes for `--debug` logging (with `CreateOptions::debug`).
    pub debug: Vec<String>,
    /// Where the pty master arrives, with `pty_to_caller`.
    pub console: Option<OwnedFd>,
    /// The container's cgroups (for a caller that watches them, e.g. OOM).
    pub cgroups: CgroupPaths,
    /// The init has a PID namespace of its own: its exit takes every other
    /// process of the container with it (otherwise a caller that reaps the
    /// init must kill the rest, as containerd's shims do).
    pub own_pid_namespace: bool,
}

/// `--debug` notes, prepared only when the caller asked for them.
struct Notes {
    on: bool,
    lines: Vec<String>,
}

impl Notes {
    fn push(&mut self, note: impl FnOnce() -> String) {
        if self.on {
            self.lines.push(note());
        }
    }

    fn extend(&mut self, notes: impl FnOnce() -> Vec<String>) {
        if self.on {
            self.lines.extend(notes());
        }
    }
}

/// Undoes a half-made container unless disarmed.
struct Undo {
    state_dir: Option<StateDir>,
    cgroups: Option<CgroupPaths>,
    spawned: Spawned,
}

impl Drop for Undo {
    fn drop(&mut self) {
        self.spawned.kill_all();
        if let Some(cg) = self.cgroups.take() {
            // A systemd unit is ours to remove only once we made it.
            if !cg.made_with_init() || self.spawned.unit_started {
                let _ = cg.destroy();
            }
        }
        if let Some(sd) = self.state_dir.take() {
            let _ = sd.remove();
        }
    }
}

/// A bundle as create and restore read it: its canonical path, the loaded
/// spec (with its warnings) and the canonical rootfs.
pub(crate) struct Bundle {
    pub path: PathBuf,
    pub spec: oci_spec::runtime::Spec,
    pub warnings: Vec<String>,
    pub rootfs: PathBuf,
}

/// Check `id`, then load the bundle at `bundle` and resolve its rootfs
/// (relative to the bundle unless absolute).
pub(crate) fn load_bundle(id: &str, bundle: &Path) -> Result<Bundle> {
    state::validate_id(id)?;
    let path = std::fs::canonicalize(bundle).map_err(|source| ContainerError::Bundle {
        path: bundle.to_path_buf(),
        source,
    })?;
    let loaded = crate::spec::load(&path)?;
    let root_path = loaded
        .spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_default();
    let rootfs_in = if root_path.is_absolute() {
        root_path
    } else {
        path.join(root_path)
    };
    let rootfs = std::fs::canonicalize(&rootfs_in).map_err(|e| ContainerError::Rootfs {
        path: rootfs_in.clone(),
        msg: e.to_string(),
    })?;
    Ok(Bundle {
        path,
        spec: loaded.spec,
        warnings: loaded.warnings,
        rootfs,
    })
}

/// The state of a container that is only planned (pid 0, never alive): a
/// create or restore killed from here on leaves a "stopped" container that
/// `delete -f` can clean up (its cgroups are in the plan).
pub(crate) fn planned_state(
    id: &str,
    bundle: &Path,
    rootfs: PathBuf,
    spec: oci_spec::runtime::Spec,
    cgroups: &CgroupPaths,
    started: bool,
) -> State {
    State {
        id: id.to_string(),
        pid: 0,
        init_start_time: 0,
        bundle: bundle.to_path_buf(),
        rootfs,
        created: state::rfc3339_now(),
        owner: String::new(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        started,
        cgroups: cgroups.clone(),
        config: spec,
    }
}

/// As runc 1.1 (libcontainer's factory Create), before any cgroup is
/// made or joined: processes already there get a warning (in runc's
/// words), a frozen cgroup an error (the user's cgroup is left as it is).
pub(crate) fn check_cgroups_free(cgroups: &CgroupPaths, warnings: &mut Vec<String>) -> Result<()> {
    let busy = cgroups.all_pids().len();
    if busy > 0 {
        warnings.push(format!(
            "container's cgroup is not empty: {busy} process(es) found"
        ));
    }
    cgroups.check_not_frozen()?;
    Ok(())
}

pub fn create(opts: &CreateOptions) -> Result<Created> {
    process::ensure_single_threaded()?;
    let Bundle {
        path: bundle,
        spec,
        mut warnings,
        rootfs,
    } = load_bundle(&opts.id, &opts.bundle)?;
    if !rootfs.is_dir() {
        return Err(ContainerError::Rootfs {
            path: rootfs,
            msg: "not a directory".into(),
        });
    }
    if spec.process().is_none() {
        return Err(ContainerError::Invalid(
            "process: missing; create needs a process to run".into(),
        ));
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| ContainerError::Invalid("linux: missing".into()))?;
    let mut debug = Notes {
        on: opts.debug,
        lines: Vec::new(),
    };
    debug.push(|| {
        format!(
            "spec loaded from {} (ociVersion {})",
            bundle.join("config.json").display(),
            spec.version()
        )
    });
    let seccomp = match linux.seccomp() {
        Some(sc) => {
            let f = crate::seccomp::compile(sc)?;
            // runc logs these at debug level; profiles name many syscalls
            // that older kernels lack.
            debug.extend(|| {
                f.unknown
                    .iter()
                    .map(|n| format!("linux.seccomp: unknown syscall {n:?} skipped"))
                    .collect()
            });
            Some(f)
        }
        None => None,
    };
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let (console, caller_console) =
        tty::console_for(terminal, opts.console_socket.as_deref(), opts.pty_to_caller)?;
    crate::intel_rdt::check(linux).map_err(ContainerError::Invalid)?;
    let plan = Plan::from_spec(linux.namespaces().as_deref().unwrap_or(&[]))?;
    debug.push(|| describe_namespaces(linux.namespaces().as_deref().unwrap_or(&[])));
    if !plan.has(oci_spec::runtime::LinuxNamespaceType::Mount) {
        warnings.push("linux.namespaces: no mount namespace: mounts, masked and read-only paths are not applied; the container is only chrooted".into());
    }
    let idmapped = crate::rootfs::idmap::prepare(
        &spec,
        &bundle,
        plan.has(oci_spec::runtime::LinuxNamespaceType::User),
    )?;
    let cgroups_path = linux.cgroups_path().as_deref();
    let systemd = match opts.cgroup_driver {
        CgroupDriver::Cgroupfs => false,
        CgroupDriver::Systemd => true,
        CgroupDriver::Detect => cgroups_path
            .and_then(Path::to_str)
            .is_some_and(crate::cgroups::systemd::is_systemd_path),
    };
    let mut cgroups = if systemd {
        let cg = CgroupPaths::plan_systemd(cgroups_path, &opts.id, opts.rootless)?;
        // runc fails on the existing unit too, but later; refusing here
        // makes nothing at all.
        // (v1 without a unified hierarchy: systemd's own one.)
        let dir = cg.v2_dir.as_ref().or_else(|| cg.v1.get("name=systemd"));
        if let (Some(unit), Some(dir)) = (&cg.systemd, dir) {
            if dir.exists() {
                return Err(ContainerError::Cgroup(CgroupError::Invalid {
                    field: "linux.cgroupsPath".into(),
                    msg: format!(
                        "systemd unit {} already exists ({} is there): another container uses this cgroupsPath",
                        unit.name,
                        dir.display()
                    ),
                }));
            }
        }
        cg
    } else {
        CgroupPaths::plan(cgroups_path, &opts.id)?
    };
    // (The systemd driver's unit is the user's systemd's: delegated.)
    if opts.rootless && !systemd {
        rootless_cgroups(&mut cgroups, linux, &plan, &mut warnings, &mut debug);
    }

    // What is known before anything exists.
    let mut st = planned_state(&opts.id, &bundle, rootfs, spec, &cgroups, false);
    st.owner = owner_name();
    let state_dir = StateDir::create(&opts.root, &opts.id, &st)?;
    // The spec now lives in the state (moved, not copied).
    let spec = &st.config;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| ContainerError::Invalid("linux: missing".into()))?;
    let mut undo = Undo {
        state_dir: Some(state_dir),
        cgroups: None,
        spawned: Spawned::default(),
    };
    check_cgroups_free(&cgroups, &mut warnings)?;
    undo.cgroups = Some(cgroups.clone());
    if !cgroups.made_with_init() {
        cgroups.create()?;
        // Always, as runc does: without a resources section the container
        // still gets the default device rules (deny all but the standard
        // nodes). (With systemd this happens once init exists, in
        // spawn_init.)
        let no_resources = oci_spec::runtime::LinuxResources::default();
        warnings.extend(cgroups.apply(linux.resources().as_ref().unwrap_or(&no_resources))?);
    }
    debug.push(|| {
        format!(
            "cgroup {} created and linux.resources applied: {}",
            linux.cgroups_path().as_ref().map_or_else(
                || format!("/{} (no cgroupsPath)", opts.id),
                |p| p.display().to_string()
            ),
            cgroups
                .dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    let sd = undo
        .state_dir
        .as_ref()
        .ok_or_else(|| ContainerError::Invalid("state dir vanished".into()))?;
    let args = SpawnArgs {
        id: &opts.id,
        spec,
        bundle: &bundle,
        rootfs: &st.rootfs,
        plan: &plan,
        cgroups: &cgroups,
        state_dir: sd,
        console: console.as_ref(),
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        preserve_fds: opts.preserve_fds,
        seccomp: seccomp.as_ref(),
        idmapped: &idmapped,
        stdio: opts.stdio,
    };
    let pid = process::spawn_init(&args, &mut undo.spawned)
        .map_err(|e| oom_at_start(e, &cgroups, linux.resources().as_ref()))?;
    let init_start_time = state::proc_stat(pid)
        .map(|s| s.1)
        .ok_or(ProcessError::InitDied)?;
    st.pid = pid;
    st.init_start_time = init_start_time;
    sd.save(&st)?;
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, pid)?;
    }
    debug.extend(|| after_spawn(&st, &plan, opts.no_pivot));
    // Success: keep everything.
    warnings.append(&mut undo.spawned.warnings);
    undo.spawned.keep();
    undo.cgroups = None;
    undo.state_dir = None;
    Ok(Created {
        pid,
        warnings,
        debug: debug.lines,
        console: caller_console,
        cgroups,
        own_pid_namespace: plan.creates(oci_spec::runtime::LinuxNamespaceType::Pid),
    })
}

/// The `owner` in `state` and `list`: empty for root (as runc's state
/// shows), else the caller's user name (or `#uid`).
fn owner_name() -> String {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return String::new();
    }
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| format!("#{uid}"), |u| u.name)
}

/// Rootless: keep the cgroups delegated to the caller, and say what that
/// leaves without effect.
fn rootless_cgroups(
    cgroups: &mut CgroupPaths,
    linux: &oci_spec::runtime::Linux,
    plan: &Plan,
    warnings: &mut Vec<String>,
    debug: &mut Notes,
) {
    let dropped = cgroups.keep_delegated();
    debug.push(|| {
        format!(
            "rootless: cgroups not delegated to uid {}, left out: {}",
            nix::unistd::geteuid(),
            if dropped.is_empty() {
                "none".into()
            } else {
                dropped
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )
    });
    let allows = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().as_ref())
        .is_some_and(|d| d.iter().any(|r| r.allow()));
    if allows {
        warnings.push("linux.resources.devices: not applied in rootless mode (device cgroups need host privilege); the container can use only the device nodes bound from the host, with the user's access to them".into());
    }
    if cgroups.dirs.is_empty() && !plan.creates(oci_spec::runtime::LinuxNamespaceType::Pid) {
        warnings.push("rootless without a delegated cgroup or a pid namespace: processes the container forks are not tracked, and kill --all or delete reach only its init".into());
    }
}

/// `--debug`: which namespaces are new and which are joined.
fn describe_namespaces(list: &[oci_spec::runtime::LinuxNamespace]) -> String {
    let names = |new: bool| {
        let v: Vec<String> = list
            .iter()
            .filter(|n| n.path().is_none() == new)
            .map(|n| {
                // The spec's name ("network"), not the kernel's ("net").
                let t = serde_json::to_value(n.typ())
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| n.typ().to_string());
                match n.path() {
                    Some(p) => format!("{t} ({})", p.display()),
                    None => t,
                }
            })
            .collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    format!("namespaces: new {}; joined {}", names(true), names(false))
}

/// `--debug`: what init did before reporting "created" (it reports only
/// when it got that far, so these are facts once spawn_init returned).
fn after_spawn(st: &State, plan: &Plan, no_pivot: bool) -> Vec<String> {
    let spec = &st.config;
    let mut notes = Vec::new();
    if plan.has(oci_spec::runtime::LinuxNamespaceType::Mount) {
        notes.push(format!(
            "init pid {}: {} mounts done, root {} ({})",
            st.pid,
            spec.mounts().as_ref().map_or(0, Vec::len),
            st.rootfs.display(),
            if no_pivot {
                "MS_MOVE and chroot"
            } else {
                "pivot_root"
            }
        ));
    } else {
        notes.push(format!(
            "init pid {}: no mount namespace, chroot to {}",
            st.pid,
            st.rootfs.display()
        ));
    }
    for (kind, by) in [
        ("prestart", "the runtime"),
        ("createRuntime", "the runtime"),
        ("createContainer", "init, in the container"),
    ] {
        let n = crate::hooks::of_kind(spec, kind).len();
        if n > 0 {
            notes.push(format!("{kind} hooks run ({n}, by {by})"));
        }
    }
    let args = spec
        .process()
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default();
    notes.push(format!(
        "init pid {} waits for start to exec {args:?}",
        st.pid
    ));
    notes
}

/// The limits are set before init joins the cgroup, so a memory limit
/// below what init needs shows as init dying (the OOM killer) rather than
/// as the failed write runc reports; say it in runc's words.
fn oom_at_start(
    e: ProcessError,
    cgroups: &CgroupPaths,
    resources: Option<&oci_spec::runtime::LinuxResources>,
) -> ContainerError {
    let Some((kills, peak)) = cgroups.oom_kills().filter(|(k, _)| *k > 0) else {
        return e.into();
    };
    let peak = peak
        .map(|p| format!(", peak usage: {p}"))
        .unwrap_or_default();
    let limit = resources
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .filter(|l| *l > 0);
    let (field, what) = match limit {
        Some(l) => (
            "linux.resources.memory.limit",
            format!("unable to set memory limit to {l} (the container's init needs more{peak})"),
        ),
        None => (
            "linux.resources.memory",
            format!("the memory limits are too low{peak}"),
        ),
    };
    ContainerError::Cgroup(CgroupError::Invalid {
        field: field.into(),
        msg: format!("{what}: the OOM killer killed the container's init {kills} time(s) as it started ({e})"),
    })
}

/// Write `pid` to `path` atomically (temp file + rename in the same dir).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.oxrun-tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string()).map_err(|source| ContainerError::Io {
        op: format!("write {}", tmp.display()),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| ContainerError::Io {
        op: format!("rename to {}", path.display()),
        source,
    })
}
