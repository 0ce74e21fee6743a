//! `exec`: start another process in a running container.

use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

use super::{ContainerError, Op, Result};
use crate::process;
use crate::state::{StateDir, Status};
use crate::tty;

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
    /// runc's `--cgroup` arguments (see [`crate::cgroups::CgroupPaths::exec_dirs`]);
    /// empty: the container's own cgroup.
    pub cgroup: Vec<String>,
    /// As `CreateOptions::stdio`.
    pub stdio: Option<[RawFd; 3]>,
    /// As `CreateOptions::debug`: prepare `Execed::debug` notes.
    pub debug: bool,
}

impl ExecRequest {
    /// Run `process` in container `id` (state under `root`), with runc's
    /// defaults for everything else.
    pub fn new(
        id: impl Into<String>,
        root: impl Into<PathBuf>,
        process: oci_spec::runtime::Process,
    ) -> Self {
        ExecRequest {
            id: id.into(),
            root: root.into(),
            process,
            console_socket: None,
            pty_to_caller: false,
            pid_file: None,
            preserve_fds: 0,
            ignore_paused: false,
            cgroup: Vec::new(),
            stdio: None,
            debug: false,
        }
    }
}

/// An exec'd process: its host pid, and where its pty master arrives with
/// `pty_to_caller`.
pub struct Execed {
    pub pid: i32,
    pub console: Option<OwnedFd>,
    /// Notes for `--debug` logging only.
    pub debug: Vec<String>,
    /// What the process did not get (rootless: a cgroup it could not join).
    pub warnings: Vec<String>,
}

/// Start `req.process` in a running container. Returns once it has
/// execve'd (the caller waits for it, unless detached).
pub fn exec(req: &ExecRequest) -> Result<Execed> {
    process::ensure_single_threaded()?;
    let sd = StateDir::open(&req.root, &req.id)?;
    let mut st = sd.load()?;
    match st.status() {
        status @ Status::Stopped => {
            return Err(ContainerError::wrong_state(&req.id, Op::Exec, status))
        }
        status @ Status::Paused if !req.ignore_paused => {
            return Err(ContainerError::wrong_state(&req.id, Op::Exec, status))
        }
        _ => {}
    }
    let p = &req.process;
    crate::spec::validate_process(p)?;
    // The process joins exactly these directories: the spawner puts it in
    // every one of `st.cgroups.dirs` (this copy of the state is not saved).
    st.cgroups.dirs = st.cgroups.exec_dirs(&req.cgroup)?;
    let mut warnings = Vec::new();
    if st.cgroups.rootless {
        let left = st.cgroups.keep_joinable();
        if !left.is_empty() {
            warnings.push(format!(
                "rootless: the exec'd process stays out of {} (the caller's cgroup and the container's meet in a cgroup the user cannot write)",
                left.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
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
        cgroup_subpath: None,
        seccomp: seccomp.as_ref(),
        stdio: req.stdio,
    };
    // The lock is not held while the process starts: in a paused container
    // (--ignore-paused) it freezes on joining the cgroup until `resume`,
    // which, like `delete -f` and everything else on this container, must
    // not wait for it. Joining goes through the init's pidfd, so a
    // container deleted meanwhile makes the join fail instead of landing
    // anywhere else.
    drop(sd);
    let pid = process::exec::spawn_exec(&st, &opts)?;
    if let Some(pf) = &req.pid_file {
        super::write_pid_file(pf, pid)?;
    }
    let debug = if !req.debug {
        Vec::new()
    } else {
        vec![format!(
            "exec in {}: pid {pid} joined init {}'s namespaces and cgroups {}; exec of {:?} done",
            req.id,
            st.pid,
            st.cgroups
                .dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            p.args().as_deref().unwrap_or_default()
        )]
    };
    Ok(Execed {
        pid,
        console: caller_console,
        debug,
        warnings,
    })
}
