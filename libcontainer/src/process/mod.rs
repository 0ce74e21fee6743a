//! Creating the container's init: clone3 into the namespaces, then the
//! parent's half of the sync protocol (cgroups, id maps, hooks, ready).

pub mod channel;
pub mod exec;
pub mod init;
pub mod trampoline;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cgroups::CgroupPaths;
use crate::namespaces::Plan;
use crate::state::StateDir;
use crate::{hooks, sys};
use channel::Msg;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Channel(#[from] channel::ChannelError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error("clone3: {0}")]
    Clone(Errno),
    #[error("open state dir: {0}")]
    StateDir(Errno),
    #[error("{0}")]
    Init(String),
    #[error("container init exited during set-up")]
    InitDied,
}

/// What the runtime hands to `spawn`.
pub struct SpawnArgs<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub plan: &'a Plan,
    pub cgroups: &'a CgroupPaths,
    pub state_dir: &'a StateDir,
    pub console: Option<&'a OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    pub idmapped: &'a crate::rootfs::idmap::Prepared,
    pub stdio: Option<[std::os::fd::RawFd; 3]>,
}

/// In a new child: make `fds` (all >= 3, close-on-exec) its stdin, stdout
/// and stderr. dup2 clears close-on-exec on the copies.
pub(crate) fn install_stdio(fds: [std::os::fd::RawFd; 3]) -> Result<(), Errno> {
    for (target, fd) in (0..).zip(fds) {
        nix::unistd::dup2(fd, target)?;
    }
    Ok(())
}

/// The processes we started, so a failed create can kill and reap them.
#[derive(Default)]
pub struct Spawned {
    /// Our direct children that may still need reaping.
    pub children: Vec<i32>,
    /// The container's init, once known.
    pub init: Option<i32>,
    /// Warnings init sent while setting up.
    pub warnings: Vec<String>,
}

impl Spawned {
    /// Kill and reap everything we started (failure path).
    pub fn kill_all(&mut self) {
        for pid in self.children.drain(..) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
    }
}

/// Clone the init and drive it to "created". On error, `spawned` lists what
/// must be killed.
pub fn spawn(a: &SpawnArgs<'_>, spawned: &mut Spawned) -> Result<i32, ProcessError> {
    let (parent, child) = channel::pair()?;
    // The start socket is bound here, by us: init may be a mapped root in a
    // user namespace that cannot enter the 0700 state dir.
    let path = format!(
        "/proc/self/fd/{}/{}",
        a.state_dir.fd().as_raw_fd(),
        crate::state::START_SOCKET
    );
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(|e| {
        ProcessError::Init(format!(
            "bind start socket in {}: {e}",
            a.state_dir.path.display()
        ))
    })?;
    // The locked fd must not stay open in init, or `start` would wait for a
    // lock init holds.
    let lock_fd = a.state_dir.fd().as_raw_fd();
    let single = a.plan.single_clone();
    // The cgroup namespace is unshared by init once it is in its cgroup, so
    // the container sees its own cgroup as "/".
    let flags = if single {
        (a.plan.new_flags & !libc::CLONE_NEWCGROUP) as u64
    } else {
        0
    };
    let init_args = init::InitArgs {
        id: a.id,
        spec: a.spec,
        bundle: a.bundle,
        rootfs: a.rootfs,
        plan: a.plan,
        cgroups: a.cgroups,
        channel: &child,
        start_listener: &listener,
        console: a.console,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        seccomp: a.seccomp,
        idmapped: a.idmapped,
        stdio: a.stdio,
    };
    // Non-dumpable before anything can see us from inside: until init
    // execve's the user's program its /proc/1/exe is this binary, and a
    // process exec'd into a created container must not open it
    // (CVE-2019-5736). execve resets the flag for the user's program.
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| ProcessError::Init(format!("prctl(PR_SET_DUMPABLE): {e}")))?;
    // Born in its v2 cgroup (CLONE_INTO_CGROUP) when there is one; v1
    // hierarchies still get a cgroup.procs write below.
    let cgroup_fd = if single { a.cgroups.v2_fd() } else { None };
    // SAFETY: the runtime is single-threaded; the child only runs init code and
    // always ends in execve or _exit.
    let cloned = match unsafe { sys::clone3(flags, cgroup_fd.as_ref().map(|f| f.as_raw_fd())) } {
        // Kernels before 5.7 lack CLONE_INTO_CGROUP.
        Err(Errno::EINVAL | Errno::E2BIG | Errno::ENOSYS) if cgroup_fd.is_some() => {
            // SAFETY: as above.
            unsafe { sys::clone3(flags, None) }.map(|r| (r, false))
        }
        r => r.map(|r| (r, cgroup_fd.is_some())),
    };
    let (cloned, into_cgroup) = cloned.map_err(ProcessError::Clone)?;
    let pid = match cloned {
        sys::CloneResult::Child => {
            drop(parent);
            // SAFETY: our copy of the locked fd; this process never returns to
            // code that would use or close it again (it ends in exec or _exit).
            unsafe { libc::close(lock_fd) };
            if single {
                init::child_main(&init_args)
            } else {
                init::intermediate_main(&init_args)
            }
        }
        sys::CloneResult::Parent { pid, .. } => pid,
    };
    drop(listener);
    drop(child);
    drop(cgroup_fd);
    spawned.children.push(pid);
    if into_cgroup {
        a.cgroups.add_except_v2(pid)?;
    } else {
        a.cgroups.add(pid)?;
    }
    let oom = a.spec.process().as_ref().and_then(|p| p.oom_score_adj());
    let init_pid = if single {
        if a.plan.creates(LinuxNamespaceType::User) {
            init::write_id_maps(pid, a.spec).map_err(ProcessError::Init)?;
        }
        pid
    } else {
        parent.send(&Msg::Go(pid))?;
        loop {
            match parent.recv()? {
                Some(Msg::NeedMaps) => {
                    init::write_id_maps(pid, a.spec).map_err(ProcessError::Init)?;
                    parent.send(&Msg::MapsDone)?;
                }
                Some(Msg::InitPid(g)) => {
                    // The grandchild is ours too (CLONE_PARENT); reap the intermediate.
                    spawned.children.push(g);
                    let _ = waitpid(Pid::from_raw(pid), None);
                    spawned.children.retain(|p| *p != pid);
                    break g;
                }
                Some(Msg::Error(e)) => return Err(ProcessError::Init(e)),
                Some(other) => {
                    return Err(ProcessError::Init(format!(
                        "unexpected {other:?} from init"
                    )))
                }
                None => return Err(ProcessError::InitDied),
            }
        }
    };
    spawned.init = Some(init_pid);
    if let Some(score) = oom {
        std::fs::write(format!("/proc/{init_pid}/oom_score_adj"), score.to_string())
            .map_err(|e| ProcessError::Init(format!("process.oomScoreAdj {score}: {e}")))?;
    }
    parent.send(&Msg::Go(init_pid))?;
    loop {
        match parent.recv()? {
            Some(Msg::RunHooks) => {
                // prestart (legacy) sees "created", as runtime-tools and crun expect.
                let created = init::state_json(a.id, "created", init_pid, a.bundle, a.spec);
                hooks::run(a.spec, "prestart", &created)?;
                let creating = init::state_json(a.id, "creating", init_pid, a.bundle, a.spec);
                hooks::run(a.spec, "createRuntime", &creating)?;
                parent.send(&Msg::HooksDone)?;
            }
            Some(Msg::Warning(w)) => spawned.warnings.push(w),
            Some(Msg::Ready) => return Ok(init_pid),
            Some(Msg::Error(e)) => return Err(ProcessError::Init(e)),
            Some(other) => {
                return Err(ProcessError::Init(format!(
                    "unexpected {other:?} from init"
                )))
            }
            None => return Err(ProcessError::InitDied),
        }
    }
}

/// Wait until `pid` has exited (pidfd readable), up to `timeout`.
pub fn wait_gone(pid: i32, timeout: std::time::Duration) -> bool {
    let Ok(fd) = sys::pidfd_open(pid) else {
        return true;
    };
    let mut pfd = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    matches!(nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms)), Ok(n) if n > 0)
}
