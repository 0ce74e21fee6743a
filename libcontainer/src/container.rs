//! The container lifecycle: create, start, state, kill, delete.
//!
//! Every operation locks the container's state directory; a failed create
//! undoes everything it did (process, cgroup, state directory).

use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cgroups::{CgroupError, CgroupPaths};
use crate::namespaces::{NamespaceError, Plan};
use crate::process::{self, ProcessError, SpawnArgs, Spawned};
use crate::spec::SpecError;
use crate::state::{self, State, StateDir, StateError, Status};
use crate::{hooks, sys, tty};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Tty(#[from] tty::TtyError),
    #[error(transparent)]
    Mount(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Exec(#[from] process::exec::ExecError),
    #[error("root.path {path}: {msg}")]
    Rootfs { path: PathBuf, msg: String },
    #[error("bundle {path}: {source}")]
    Bundle {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{op}: {source}")]
    Io { op: String, source: std::io::Error },
}

impl ContainerError {
    /// The container does not exist (what a client maps to NotFound).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ContainerError::State(StateError::NotFound(_)))
    }
}

type Result<T> = std::result::Result<T, ContainerError>;

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
}

pub struct Created {
    pub pid: i32,
    pub warnings: Vec<String>,
    /// Notes for `--debug` logging only.
    pub debug: Vec<String>,
    /// Where the pty master arrives, with `pty_to_caller`.
    pub console: Option<OwnedFd>,
    /// The container's cgroups (for a caller that watches them, e.g. OOM).
    pub cgroups: CgroupPaths,
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
            let _ = cg.destroy();
        }
        if let Some(sd) = self.state_dir.take() {
            let _ = sd.remove();
        }
    }
}

pub fn create(opts: &CreateOptions) -> Result<Created> {
    state::validate_id(&opts.id)?;
    let bundle = std::fs::canonicalize(&opts.bundle).map_err(|source| ContainerError::Bundle {
        path: opts.bundle.clone(),
        source,
    })?;
    let loaded = crate::spec::load(&bundle)?;
    let spec = loaded.spec;
    let loaded_maps = loaded.mount_maps;
    let mut warnings = loaded.warnings;
    let root_path = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_default();
    let rootfs_in = if root_path.is_absolute() {
        root_path.clone()
    } else {
        bundle.join(&root_path)
    };
    let rootfs = std::fs::canonicalize(&rootfs_in).map_err(|e| ContainerError::Rootfs {
        path: rootfs_in.clone(),
        msg: e.to_string(),
    })?;
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
    let mut debug = Vec::new();
    let seccomp = match linux.seccomp() {
        Some(sc) => {
            let f = crate::seccomp::compile(sc)?;
            // runc logs these at debug level; profiles name many syscalls
            // that older kernels lack.
            debug.extend(
                f.unknown
                    .iter()
                    .map(|n| format!("linux.seccomp: unknown syscall {n:?} skipped")),
            );
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
    let plan = Plan::from_spec(linux.namespaces().as_deref().unwrap_or(&[]))?;
    if !plan.has(oci_spec::runtime::LinuxNamespaceType::Mount) {
        warnings.push("linux.namespaces: no mount namespace: mounts, masked and read-only paths are not applied; the container is only chrooted".into());
    }
    let idmapped = crate::rootfs::idmap::prepare(&spec, &loaded_maps, &bundle)?;
    let cgroups = CgroupPaths::plan(linux.cgroups_path().as_deref(), &opts.id)?;

    let state_dir = StateDir::create(&opts.root, &opts.id)?;
    let mut undo = Undo {
        state_dir: Some(state_dir),
        cgroups: None,
        spawned: Spawned::default(),
    };
    cgroups.create()?;
    undo.cgroups = Some(cgroups.clone());
    // Always, as runc does: without a resources section the container still
    // gets the default device rules (deny all but the standard nodes).
    let no_resources = oci_spec::runtime::LinuxResources::default();
    warnings.extend(cgroups.apply(linux.resources().as_ref().unwrap_or(&no_resources))?);
    let sd = undo
        .state_dir
        .as_ref()
        .ok_or_else(|| ContainerError::Invalid("state dir vanished".into()))?;
    let args = SpawnArgs {
        id: &opts.id,
        spec: &spec,
        bundle: &bundle,
        rootfs: &rootfs,
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
    let pid = process::spawn_init(&args, &mut undo.spawned)?;
    let init_start_time = state::proc_stat(pid)
        .map(|s| s.1)
        .ok_or(ProcessError::InitDied)?;
    let st = State {
        id: opts.id.clone(),
        pid,
        init_start_time,
        bundle: bundle.clone(),
        rootfs,
        created: state::rfc3339_now(),
        owner: String::new(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        started: false,
        cgroups: cgroups.clone(),
        config: spec,
    };
    sd.save(&st)?;
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, pid)?;
    }
    // Success: keep everything.
    warnings.append(&mut undo.spawned.warnings);
    undo.spawned.children.clear();
    undo.cgroups = None;
    undo.state_dir = None;
    Ok(Created {
        pid,
        warnings,
        debug,
        console: caller_console,
        cgroups,
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

/// Release a created container. Returns poststart hook warnings.
pub fn start(root: &Path, id: &str) -> Result<Vec<String>> {
    let sd = StateDir::open(root, id)?;
    let mut st = sd.load()?;
    match st.status() {
        Status::Created => {}
        Status::Stopped => {
            return Err(ContainerError::Invalid(format!(
                "cannot start a container that has stopped: {id}"
            )))
        }
        s => {
            return Err(ContainerError::Invalid(format!(
                "cannot start an already {s} container: {id}"
            )))
        }
    }
    let result = process::release_init(sd.fd());
    let _ = nix::unistd::unlinkat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&sd.fd())),
        state::START_SOCKET,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    st.started = true;
    sd.save(&st)?;
    result?;
    let json = state::oci_state_json(id, "running", st.pid, &st.bundle, &st.config);
    Ok(hooks::run_all(&st.config, "poststart", &json))
}

/// A container's saved state and live status.
pub fn state(root: &Path, id: &str) -> Result<(State, Status)> {
    state::validate_id(id)?;
    let st = state::read_state(&root.join(id))?;
    let status = st.status();
    Ok((st, status))
}

pub fn list(root: &Path) -> Vec<(State, Status)> {
    state::list(root)
        .into_iter()
        .map(|s| {
            let status = s.status();
            (s, status)
        })
        .collect()
}

/// Send `sig` to the init (or, with `all`, to every process in the cgroup).
/// `--all` on a stopped container signals whatever is left and succeeds, as
/// runc does; containerd's shim relies on that when it force-deletes.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    if all {
        st.cgroups.signal_all(sig);
        return Ok(());
    }
    if st.status() == Status::Stopped {
        return Err(not_running(id));
    }
    signal_init(&st, sig)
}

/// The wording containerd's shim matches on ("container not running").
fn not_running(id: &str) -> ContainerError {
    ContainerError::Invalid(format!("container not running: {id}"))
}

fn signal_init(st: &State, sig: i32) -> Result<()> {
    let fd = st.init_pidfd().ok_or_else(|| not_running(&st.id))?;
    sys::pidfd_send_signal(fd.as_fd(), sig).map_err(|e| ContainerError::Io {
        op: format!("signal {sig} to {}", st.pid),
        source: e.into(),
    })
}

/// Delete a container. A running or paused one needs `force`. Returns
/// poststop hook warnings.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<Vec<String>> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    let status = st.status();
    match status {
        Status::Stopped | Status::Created => {}
        s if !force => {
            return Err(ContainerError::Invalid(format!(
                "cannot delete container {id} that is not stopped: {s}"
            )))
        }
        _ => {}
    }
    if status != Status::Stopped {
        let _ = signal_init(&st, libc::SIGKILL);
        st.cgroups.signal_all(libc::SIGKILL);
        process::wait_gone(st.pid, Duration::from_secs(10));
    }
    st.cgroups.destroy()?;
    sd.remove()?;
    let json = state::oci_state_json(id, "stopped", st.pid, &st.bundle, &st.config);
    Ok(hooks::run_all(&st.config, "poststop", &json))
}

/// What `exec` runs, and how.
pub struct ExecRequest {
    pub id: String,
    pub root: PathBuf,
    pub process: oci_spec::runtime::Process,
    pub console_socket: Option<PathBuf>,
    /// As `CreateOptions::pty_to_caller`.
    pub pty_to_caller: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    pub cgroup: Option<String>,
    /// As `CreateOptions::stdio`.
    pub stdio: Option<[RawFd; 3]>,
}

/// An exec'd process: its host pid, and where its pty master arrives with
/// `pty_to_caller`.
pub struct Execed {
    pub pid: i32,
    pub console: Option<OwnedFd>,
}

/// Start `req.process` in a running container. Returns once it has
/// execve'd (the caller waits for it, unless detached).
pub fn exec(req: &ExecRequest) -> Result<Execed> {
    let sd = StateDir::open(&req.root, &req.id)?;
    let st = sd.load()?;
    match st.status() {
        Status::Stopped => {
            return Err(ContainerError::Invalid(format!(
                "cannot exec in a stopped container: {}",
                req.id
            )))
        }
        Status::Paused if !req.ignore_paused => {
            return Err(ContainerError::Invalid(format!(
                "cannot exec in a paused container: {} (use --ignore-paused)",
                req.id
            )))
        }
        _ => {}
    }
    let p = &req.process;
    crate::spec::validate_process(p)?;
    let (console, caller_console) = tty::console_for(
        p.terminal().unwrap_or(false),
        req.console_socket.as_deref(),
        req.pty_to_caller,
    )?;
    let seccomp = match st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
    {
        Some(sc) => Some(crate::seccomp::compile(sc)?),
        None => None,
    };
    let opts = process::exec::ExecOptions {
        process: p,
        console: console.as_ref(),
        preserve_fds: req.preserve_fds,
        cgroup_subpath: req.cgroup.as_deref(),
        seccomp: seccomp.as_ref(),
        stdio: req.stdio,
    };
    let pid = process::exec::spawn_exec(&st, &opts)?;
    if let Some(pf) = &req.pid_file {
        write_pid_file(pf, pid)?;
    }
    Ok(Execed {
        pid,
        console: caller_console,
    })
}
