//! `exec`: start another process inside a running container.
//!
//! No re-exec of the runtime: we make ourselves non-dumpable (so nothing in
//! the container can open our `/proc/<pid>/exe`, CVE-2019-5736), join the
//! container's pid namespace for our children, and clone a child that joins
//! every other namespace of the container in one `setns(pidfd, flags)`. The
//! parent puts it in the container's cgroups; the child then takes the same
//! final path as init (cwd check, fd hygiene, caps, user, no_new_privs, the
//! container's seccomp filter) and execve's.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::channel::{self, Channel, Msg};
use super::error::InitError;
use super::finalize::{self, Finalize, Never};
use crate::namespaces::clone_flag;
use crate::state::State;
use crate::{capabilities, sys, tty};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Channel(#[from] channel::ChannelError),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error(transparent)]
    Sys(#[from] crate::sys::SysError),
    #[error("--cgroup {0:?}: must be a relative path without '..'")]
    BadCgroup(String),
    #[error("join cgroup {path}: {source}")]
    Cgroup {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Child(String),
}

pub struct ExecOptions<'a> {
    pub process: &'a Process,
    /// A connected console socket (or socketpair end) for `terminal: true`.
    pub console: Option<&'a OwnedFd>,
    pub preserve_fds: u32,
    /// `--cgroup`: a sub-cgroup of the container's cgroup to join.
    pub cgroup_subpath: Option<&'a str>,
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    /// The process's stdin, stdout and stderr; `None`: inherit ours.
    pub stdio: Option<[std::os::fd::RawFd; 3]>,
}

use crate::sys::err as sys_err;

/// The namespaces to join: every kind the container's config lists.
fn ns_flags(st: &State) -> i32 {
    st.config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|list| list.iter().fold(0, |f, n| f | clone_flag(n.typ())))
        .unwrap_or(0)
}

/// Start the process; returns its host pid once it has execve'd.
pub fn spawn_exec(st: &State, opts: &ExecOptions<'_>) -> Result<i32, ExecError> {
    let pidfd = st
        .init_pidfd()
        .ok_or_else(|| ExecError::NotRunning(st.id.clone()))?;
    let dirs = cgroup_dirs(st, opts.cgroup_subpath)?;
    let mut flags = ns_flags(st);
    // This process never becomes dumpable again.
    nix::sys::prctl::set_dumpable(false).map_err(sys_err("prctl(PR_SET_DUMPABLE)"))?;
    // Rootless: joining a pid namespace takes CAP_SYS_ADMIN in our own user
    // namespace too, which only the container's gives an unprivileged
    // caller. So we join that first, for good (nothing the runtime does
    // after this needs the host's; the shim, which comes back below, runs
    // as the host's root and never takes this path).
    let root = nix::unistd::geteuid().is_root();
    if flags & libc::CLONE_NEWUSER != 0 && !root {
        sys::setns(pidfd.as_fd(), libc::CLONE_NEWUSER).map_err(sys_err("join user namespace"))?;
        flags &= !libc::CLONE_NEWUSER;
    }
    // Coming back to our own pid namespace takes CAP_SYS_ADMIN over it,
    // which a caller that is not the host's root lacks (rootless podman
    // runs us as root in its user namespace): such a caller stays.
    let stay_in_pidns = !root || crate::user::in_user_namespace();
    // Only our children are affected: the child is born in the container's
    // pid ns. A long-lived caller (the shim) gets its own back afterwards.
    let own_pidns = if flags & libc::CLONE_NEWPID != 0 {
        let own = if stay_in_pidns {
            None
        } else {
            Some(
                sys::openat2(
                    sys::cwd(),
                    c"/proc/thread-self/ns/pid",
                    libc::O_RDONLY | libc::O_CLOEXEC,
                    0,
                    0,
                )
                .map_err(sys_err("open own pid namespace"))?,
            )
        };
        sys::setns(pidfd.as_fd(), libc::CLONE_NEWPID).map_err(sys_err("join pid namespace"))?;
        own
    } else {
        None
    };
    let (parent, child) = channel::pair()?;
    // SAFETY: the runtime is single-threaded; the child ends in execve or _exit.
    let cloned = unsafe { sys::clone3(0, None) };
    if let (Some(own), Ok(sys::CloneResult::Parent { .. }) | Err(_)) = (&own_pidns, &cloned) {
        sys::setns(own.as_fd(), libc::CLONE_NEWPID)
            .map_err(sys_err("return to own pid namespace"))?;
    }
    let pid = match cloned.map_err(sys_err("clone3"))? {
        sys::CloneResult::Child => {
            drop(parent);
            let err = match child_main(&child, &pidfd, flags & !libc::CLONE_NEWPID, st, opts) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let _ = child.send(&Msg::Error(err.to_string()));
            // SAFETY: _exit is always safe; no destructors of the parent's state may run here.
            unsafe { libc::_exit(127) }
        }
        sys::CloneResult::Parent { pid, .. } => pid,
    };
    drop(child);
    let fail = |e: ExecError| {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(pid), None);
        e
    };
    // execCPUAffinity.initial: where the process runs before it joins the
    // container's cgroup (set by us, before the cgroup writes below).
    if let Some(initial) = opts
        .process
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.initial().clone())
    {
        if let Err(e) = super::sched::set_affinity(pid, "process.execCPUAffinity.initial", &initial)
        {
            return Err(fail(ExecError::Child(e.to_string())));
        }
    }
    for d in &dirs {
        let f = Path::new(d).join("cgroup.procs");
        if let Err(source) = std::fs::write(&f, pid.to_string()) {
            return Err(fail(ExecError::Cgroup {
                path: d.clone(),
                source,
            }));
        }
    }
    parent.send(&Msg::Go(pid)).map_err(|e| fail(e.into()))?;
    match parent.recv() {
        // The channel is close-on-exec: end-of-file means execve succeeded.
        Ok(None) => Ok(pid),
        Ok(Some(Msg::Error(e))) => Err(fail(ExecError::Child(e))),
        Ok(Some(other)) => Err(fail(ExecError::Child(format!(
            "unexpected {other:?} from exec child"
        )))),
        Err(e) => Err(fail(e.into())),
    }
}

fn cgroup_dirs(st: &State, sub: Option<&str>) -> Result<Vec<String>, ExecError> {
    let sub = match sub {
        Some(s) => {
            let p = Path::new(s);
            if p.is_absolute()
                || p.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(ExecError::BadCgroup(s.to_string()));
            }
            Some(p)
        }
        None => None,
    };
    Ok(st
        .cgroups
        .dirs
        .iter()
        .map(|d| match sub {
            Some(s) => d.join(s),
            None => d.clone(),
        })
        .map(|d| d.display().to_string())
        .collect())
}

fn child_main(
    ch: &Channel,
    pidfd: &OwnedFd,
    flags: i32,
    st: &State,
    opts: &ExecOptions<'_>,
) -> Result<Never, InitError> {
    let pid = match ch.recv()? {
        Some(Msg::Go(pid)) => pid,
        other => return Err(InitError::Msg(format!("expected Go, got {other:?}"))),
    };
    if let Some(fds) = opts.stdio {
        finalize::install_stdio(fds)
            .map_err(|errno| InitError::Sys(crate::sys::SysError::new("set up stdio", errno)))?;
    }
    if flags != 0 {
        sys::setns(pidfd.as_fd(), flags).map_err(|errno| {
            InitError::Sys(crate::sys::SysError::new(
                "join the container's namespaces",
                errno,
            ))
        })?;
    }
    let joined_userns = st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|l| l.iter().any(|n| n.typ() == LinuxNamespaceType::User));
    if joined_userns {
        // Become the namespace's root so later steps act on mapped ids.
        let (u, g) = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
        nix::unistd::setresgid(g, g, g)
            .map_err(|errno| InitError::Sys(crate::sys::SysError::new("setresgid(0)", errno)))?;
        nix::unistd::setresuid(u, u, u)
            .map_err(|errno| InitError::Sys(crate::sys::SysError::new("setresuid(0)", errno)))?;
    }
    let process = opts.process;
    if process.terminal().unwrap_or(false) {
        let sock = opts.console.ok_or_else(|| {
            InitError::Msg("process.terminal is true but no console socket was given".into())
        })?;
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        tty::setup(sock, size, false)?;
    }
    let env = finalize::environment(process);
    let exe = finalize::find_executable(process, &env)?;
    // Before the filter is loaded (trampoline.rs); `create` warned if the
    // container's filter rules it out.
    let tramp = super::trampoline::prepare(opts.seccomp, 3 + opts.preserve_fds)
        .map_err(|errno| InitError::Sys(crate::sys::SysError::new("exec trampoline", errno)))?;
    let caps = match process.capabilities() {
        Some(c) => {
            let mut sets = capabilities::CapSets::from_spec(c)?;
            sets.restrict_to_grantable();
            Some(sets)
        }
        None => None,
    };
    let fin = Finalize {
        id: &st.id,
        // As runc's setns init: an exec'd process gets the container's
        // execution domain too.
        personality: st
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.personality().as_ref()),
        no_new_keyring: true,
        preserve_fds: opts.preserve_fds,
        seccomp: opts.seccomp,
        pid,
        state: &crate::state::oci_state_json(&st.id, "running", st.pid, &st.bundle, &st.config),
    };
    if let Some(mp) = st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        super::mempolicy::apply(mp)?;
    }
    // execCPUAffinity.final, now that the process is in the container's
    // cgroup; with only `initial` given, every online CPU (the cgroup's
    // cpuset narrows it), so `initial` does not outlive the transition.
    if let Some(a) = process.exec_cpu_affinity() {
        match (a.cpu_affinity_final(), a.initial()) {
            (Some(fin), _) => super::sched::set_affinity(0, "process.execCPUAffinity.final", fin)?,
            (None, Some(_)) => super::sched::set_affinity(
                0,
                "process.execCPUAffinity",
                &super::sched::online_cpus(),
            )?,
            (None, None) => super::sched::reset_affinity()?,
        }
    } else {
        super::sched::reset_affinity()?;
    }
    finalize::finalize(&fin, process, process.cwd(), caps.as_ref())?;
    finalize::exec_program(&exe, process, &env, tramp.as_ref().map(|t| t.as_fd()))
        .map(|n| match n {})
}
