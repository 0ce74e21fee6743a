//! `restore`: bring a checkpointed container back as `id` from its bundle.
//! As create does, the state directory appears complete under `<id>`
//! (made as `<id>~creating` and renamed) before anything else exists, so a
//! restore killed at any point leaves nothing or a "stopped" container
//! that `delete --force` removes; a failed restore undoes everything
//! (restored processes, cgroups, state directory). criu runs inside the
//! container's new cgroups (so the restored tree lands there). criu wants
//! its root to be a mount point: the rootfs is bound at
//! `<state dir>/criu-root` for the restore (as runc does; criu resolves
//! the image directory through our descriptor, so it must share our mount
//! namespace) and unbound after it; `StateDir::remove` unbinds it too, so
//! a restore killed half-way never makes delete walk into the rootfs.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType, Spec};

use super::common::{check_answer, CommonOptions};
use super::dump::open_dir;
use super::rpc::{self, opt, Enc};
use super::swrk::{Spawn, Swrk};
use super::{external, CheckpointError, DESCRIPTORS_FILE};
use crate::cgroups::CgroupPaths;
use crate::container::{self, ContainerError};
use crate::state::{self, StateDir};

pub struct RestoreOptions {
    pub criu: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub root: PathBuf,
    pub image_path: PathBuf,
    /// What checkpoint takes too (work path, shared flags).
    pub common: CommonOptions,
    /// Where the pty master of a terminal container goes.
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    /// The stdin, stdout and stderr handed to the restored init where it
    /// had pipes at checkpoint time; `None`: ours.
    pub stdio: Option<[RawFd; 3]>,
}

impl RestoreOptions {
    /// runc's defaults for restoring `image_path` as `id` from `bundle`.
    pub fn new(
        criu: impl Into<PathBuf>,
        id: impl Into<String>,
        bundle: impl Into<PathBuf>,
        root: impl Into<PathBuf>,
        image_path: impl Into<PathBuf>,
    ) -> Self {
        RestoreOptions {
            criu: criu.into(),
            id: id.into(),
            bundle: bundle.into(),
            root: root.into(),
            image_path: image_path.into(),
            common: CommonOptions::default(),
            console_socket: None,
            pid_file: None,
            stdio: None,
        }
    }
}

pub struct Restored {
    /// Host pid of the restored init (a child of the caller until it exits).
    pub pid: i32,
    pub warnings: Vec<String>,
    pub cgroups: CgroupPaths,
    /// The init owns its PID namespace (its exit ends the container).
    pub own_pid_namespace: bool,
}

/// Undoes a half-restored container unless disarmed.
struct Undo {
    state_dir: Option<StateDir>,
    cgroups: Option<CgroupPaths>,
    criu_root: Option<PathBuf>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(cg) = self.cgroups.take() {
            // Kills whatever criu restored before it failed.
            cg.signal_all(libc::SIGKILL);
            let _ = cg.destroy();
        }
        if let Some(r) = self.criu_root.take() {
            let _ = nix::mount::umount2(&r, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(r);
        }
        if let Some(sd) = self.state_dir.take() {
            let _ = sd.remove();
        }
    }
}

fn images_err(path: &Path, msg: impl Into<String>) -> CheckpointError {
    CheckpointError::Images {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// What the init's stdio was at checkpoint time, from an image directory
/// checked to hold a checkpoint.
fn read_descriptors(path: &Path) -> Result<Vec<String>, CheckpointError> {
    open_dir(path, false)?;
    if !path.join("inventory.img").is_file() {
        return Err(images_err(
            path,
            "no inventory.img: not a checkpoint made by criu",
        ));
    }
    match std::fs::read(path.join(DESCRIPTORS_FILE)) {
        Ok(d) => serde_json::from_slice::<Vec<String>>(&d)
            .map_err(|e| images_err(path, format!("{DESCRIPTORS_FILE}: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(images_err(path, format!("{DESCRIPTORS_FILE}: {e}"))),
    }
}

fn criu_ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Namespaces the spec joins by path: net and pid are handed to criu as
/// the external namespaces the checkpoint recorded (inherit_fd with
/// runc's keys), the others joined (criu's join_ns). The files are kept
/// open for criu to inherit.
fn joined_namespaces(spec: &Spec, opts: &mut Enc) -> Result<Vec<OwnedFd>, CheckpointError> {
    let mut files = Vec::new();
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for n in list {
        let Some(p) = n.path() else { continue };
        let key = match n.typ() {
            LinuxNamespaceType::Network => Some("extRootNetNS"),
            LinuxNamespaceType::Pid => Some("extRootPidNS"),
            LinuxNamespaceType::Cgroup => {
                return Err(CheckpointError::Unsupported {
                    field: "linux.namespaces[cgroup].path".into(),
                    msg: "criu cannot restore into an existing cgroup namespace".into(),
                })
            }
            _ => None,
        };
        match key {
            Some(key) => {
                let f = std::fs::File::open(p)
                    .map_err(|e| CheckpointError::Sys(crate::sys::SysError::io("open", p, &e)))?;
                let fd = OwnedFd::from(f);
                opts.msg(opt::INHERIT_FD, &rpc::inherit_fd(key, fd.as_raw_fd()));
                files.push(fd);
            }
            None => {
                opts.msg(
                    opt::JOIN_NS,
                    &rpc::pair_str(criu_ns_name(n.typ()), &p.to_string_lossy()),
                );
            }
        }
    }
    Ok(files)
}

/// criu's `cg_root` list: the cgroups criu itself was moved into (the new
/// container's), one per hierarchy, so the restored tree lands there.
fn cgroup_roots(criu_pid: i32, unified: bool) -> Result<Vec<Enc>, CheckpointError> {
    let path = format!("/proc/{criu_pid}/cgroup");
    let data = std::fs::read_to_string(&path)
        .map_err(|e| CheckpointError::Sys(crate::sys::SysError::io("read", &path, &e)))?;
    let mut out = Vec::new();
    for line in data.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, p) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let mut m = Enc::default();
        if ctrls.is_empty() {
            // The v2 hierarchy: criu's default root on a pure v2 host; on a
            // hybrid host criu handles only the v1 controllers.
            if !unified {
                continue;
            }
        } else {
            m.str(1, ctrls);
        }
        m.str(2, p);
        out.push(m);
    }
    Ok(out)
}

/// Send the restored terminal's pty master to the console socket.
fn send_master(sock: &OwnedFd, master: BorrowedFd<'_>) -> Result<(), CheckpointError> {
    let iov = [IoSlice::new(b"/dev/console")];
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| CheckpointError::Sys(crate::sys::SysError::new("send pty master", e)))?;
    Ok(())
}

/// Create the mount points of the spec's mounts that the rootfs lacks, as
/// runc does before a restore: criu mounts onto them but creates none (a
/// restore into a fresh snapshot of the image, e.g. containerd's `ctr c
/// restore`, has no directory for a bind mount the original container's
/// create made). Mounts under a tmpfs mount are left to criu, which
/// restores the tmpfs with its contents.
fn create_mount_points(rootfs: &Path, spec: &Spec) -> Result<(), CheckpointError> {
    use crate::rootfs::resolve;
    let mounts = spec.mounts().clone().unwrap_or_default();
    let tmpfs: Vec<&Path> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().as_path())
        .collect();
    let root = std::fs::File::open(rootfs)
        .map_err(|e| CheckpointError::Sys(crate::sys::SysError::io("open", rootfs, &e)))?;
    for m in &mounts {
        let dest = m.destination();
        if tmpfs.iter().any(|t| dest != *t && dest.starts_with(t)) {
            continue;
        }
        if resolve::open_path(root.as_fd(), dest).is_ok() {
            continue;
        }
        let bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .as_ref()
                .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"));
        let file = bind
            && m.source()
                .as_ref()
                .and_then(|s| std::fs::metadata(s).ok())
                .is_some_and(|md| !md.is_dir());
        let made = if file {
            resolve::create_file(root.as_fd(), dest)
        } else {
            resolve::mkdir_all(root.as_fd(), dest, 0o755)
        };
        made.map_err(|e| {
            CheckpointError::Sys(crate::sys::SysError::at("create mount point", dest, e))
        })?;
    }
    Ok(())
}

fn ns_inode(pid: &str, kind: &str) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
}

pub fn restore(o: &RestoreOptions) -> Result<Restored, ContainerError> {
    let container::Bundle {
        path: bundle,
        spec,
        mut warnings,
        rootfs,
        ..
    } = container::load_bundle(&o.id, &o.bundle)?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| ContainerError::Invalid("linux: missing".into()))?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let console = match (terminal, &o.console_socket) {
        (true, Some(p)) => Some(crate::tty::connect(p)?),
        (true, None) => {
            return Err(ContainerError::Invalid(
                "process.terminal is true: restore needs --console-socket for the pty master"
                    .into(),
            ))
        }
        (false, Some(_)) => {
            return Err(ContainerError::Invalid(
                "--console-socket given but process.terminal is false".into(),
            ))
        }
        (false, None) => None,
    };
    let descriptors = read_descriptors(&o.image_path)?;
    let dirs = o.common.open_dirs(&o.image_path, false)?;
    let cgroups = CgroupPaths::plan(linux.cgroups_path().as_deref(), &o.id)?;
    let own_pid_namespace = linux.namespaces().as_ref().is_some_and(|l| {
        l.iter()
            .any(|n| n.typ() == LinuxNamespaceType::Pid && n.path().is_none())
    });

    let mut st = container::planned_state(&o.id, &bundle, rootfs, spec, &cgroups, true);
    let sd = StateDir::create(&o.root, &o.id, &st)?;
    let mut undo = Undo {
        state_dir: Some(sd),
        cgroups: None,
        criu_root: None,
    };
    let spec = &st.config;
    container::check_cgroups_free(&cgroups, &mut warnings)?;
    cgroups.create()?;
    undo.cgroups = Some(cgroups.clone());
    let no_resources = oci_spec::runtime::LinuxResources::default();
    let resources = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or(no_resources);
    warnings.extend(cgroups.apply(&resources)?);

    let sd_path = undo
        .state_dir
        .as_ref()
        .map(|s| s.path.clone())
        .ok_or_else(|| ContainerError::Invalid("state dir vanished".into()))?;
    create_mount_points(&st.rootfs, spec)?;
    let criu_root = sd_path.join(state::CRIU_ROOT);
    std::fs::create_dir(&criu_root)
        .map_err(|e| CheckpointError::Sys(crate::sys::SysError::io("mkdir", &criu_root, &e)))?;
    undo.criu_root = Some(criu_root.clone());
    nix::mount::mount(
        Some(&st.rootfs),
        &criu_root,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| CheckpointError::Sys(crate::sys::SysError::at("bind rootfs at", &criu_root, e)))?;

    let mut opts = Enc::default();
    o.common.encode(
        &mut opts,
        &dirs,
        "restore.log",
        &criu_root,
        spec.annotations().as_ref(),
    );
    opts.bool(opt::EVASIVE_DEVICES, true)
        .bool(opt::RST_SIBLING, true);
    let ns_files = joined_namespaces(spec, &mut opts)?;
    for (k, v) in external::for_restore(spec, &bundle, &cgroups) {
        opts.msg(opt::EXT_MNT, &rpc::pair_str(&k, &v));
    }
    // The init's pipes at checkpoint time become criu's (our) stdio.
    for (i, d) in descriptors.iter().enumerate().take(3) {
        if d.starts_with("pipe:") {
            opts.msg(opt::INHERIT_FD, &rpc::inherit_fd(d, i as i32));
        }
    }
    let inherit: Vec<BorrowedFd<'_>> = ns_files.iter().map(|f| f.as_fd()).collect();
    let mut criu = Swrk::spawn(&Spawn {
        criu: &o.criu,
        inherit: &inherit,
        stdio: o.stdio,
    })?;
    cgroups.add(criu.pid())?;
    for r in cgroup_roots(criu.pid(), cgroups.unified)? {
        opts.msg(opt::CG_ROOT, &r);
    }
    let mut restored_pid = None;
    let bundle_for_hooks = bundle.clone();
    let resp = criu.call(
        &rpc::request(rpc::REQ_RESTORE, Some(&opts)),
        |script, pid, fd| {
            match script {
                "setup-namespaces" => {
                    // runc runs these here: the namespaces exist, nothing runs yet.
                    let json = state::oci_state_json(
                        &o.id,
                        "creating",
                        pid.unwrap_or(0),
                        &bundle_for_hooks,
                        spec,
                    );
                    for kind in ["prestart", "createRuntime"] {
                        crate::hooks::run(spec, kind, &json)?;
                    }
                }
                "orphan-pts-master" => {
                    let (Some(sock), Some(master)) = (&console, fd) else {
                        return Err(CheckpointError::Protocol(
                            "criu sent a pty master but the container has no console socket".into(),
                        ));
                    };
                    send_master(sock, master.as_fd())?;
                }
                "post-restore" => restored_pid = pid,
                _ => {}
            }
            Ok(())
        },
    )?;
    let exit = criu.finish();
    drop(ns_files);
    check_answer(
        &resp,
        rpc::REQ_RESTORE,
        "restore",
        &dirs.log_dir,
        "restore.log",
    )?;
    if let Ok(s) = &exit {
        if !s.success() {
            warnings.push(format!("criu exited with {s} after a successful restore"));
        }
    }
    let pid = resp
        .restore_pid
        .or(restored_pid)
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            CheckpointError::Protocol("criu did not say which pid it restored".into())
        })?;
    st.pid = pid;
    st.init_start_time = state::proc_stat(pid)
        .map(|s| s.1)
        .ok_or(crate::process::ProcessError::InitDied)?;
    // criu restores into a time namespace of its own (to keep the
    // monotonic clocks going): record it so exec joins it too.
    let pid_s = pid.to_string();
    let has_time = st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|l| l.iter().any(|n| n.typ() == LinuxNamespaceType::Time));
    if !has_time
        && ns_inode(&pid_s, "time").is_some()
        && ns_inode(&pid_s, "time") != ns_inode("self", "time")
    {
        if let Some(l) = st.config.linux_mut().as_mut() {
            let ns = LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Time)
                .build()
                .map_err(|e| ContainerError::Invalid(format!("time namespace: {e}")))?;
            l.namespaces_mut().get_or_insert_with(Vec::new).push(ns);
        }
    }
    let _ = nix::mount::umount2(&criu_root, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(&criu_root);
    undo.criu_root = None;
    if let Some(sd) = &undo.state_dir {
        sd.save(&st)?;
    }
    if let Some(pf) = &o.pid_file {
        crate::container::write_pid_file(pf, pid)?;
    }
    undo.cgroups = None;
    undo.state_dir = None;
    Ok(Restored {
        pid,
        warnings,
        cgroups,
        own_pid_namespace,
    })
}
