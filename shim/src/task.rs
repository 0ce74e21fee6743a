//! What the shim knows about its containers: one `Task` per container
//! (its init and its exec'd processes), each `Process` with its state,
//! io and the Wait calls parked on it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use containerd_shim_protos::api::Status;
use libcontainer::cgroups::oom::OomWatcher;

use crate::stdio::{Io, Paths};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Stopped,
}

/// A Wait call to answer when the process exits: (connection, stream).
pub type Waiter = (u64, u32);

pub struct Process {
    /// Empty for the init.
    pub exec_id: String,
    /// 0 until an exec'd process is started.
    pub pid: i32,
    pub state: State,
    pub exit_status: u32,
    pub exited_at: Option<SystemTime>,
    pub paths: Paths,
    pub io: Option<Io>,
    /// Exec only: the OCI process to start.
    pub spec: Option<oci_spec::runtime::Process>,
    pub waiters: Vec<Waiter>,
}

impl Process {
    pub fn new(exec_id: &str, paths: Paths) -> Process {
        Process {
            exec_id: exec_id.to_string(),
            pid: 0,
            state: State::Created,
            exit_status: 0,
            exited_at: None,
            paths,
            io: None,
            spec: None,
            waiters: Vec::new(),
        }
    }

    pub fn set_exited(&mut self, status: u32) {
        self.state = State::Stopped;
        self.exit_status = status;
        self.exited_at = Some(SystemTime::now());
        if let Some(io) = self.io.as_mut() {
            io.drain_output();
        }
    }
}

pub struct Task {
    pub id: String,
    pub bundle: PathBuf,
    /// libcontainer's state root.
    pub root: PathBuf,
    /// We mounted `rootfs[]` on `<bundle>/rootfs`.
    pub mounted: bool,
    pub unified: bool,
    pub paused: bool,
    pub init: Process,
    pub execs: BTreeMap<String, Process>,
    pub oom: Option<OomWatcher>,
    /// OOM events published so far.
    pub ooms: u32,
    /// The init does not own its PID namespace (the host's or a pod's):
    /// when it exits, the rest of the container is killed.
    pub kill_all_on_exit: bool,
    /// A helper is starting the init; the Start reply is parked.
    pub starting: bool,
    /// The init's exit status, if it exited while `starting`: reported
    /// after the Start's reply and TaskStart.
    pub held_exit: Option<u32>,
    /// The init exited (status) and the rest of the container was killed:
    /// the exit is reported once the cgroup is empty, or at the deadline.
    pub draining: Option<(u32, std::time::Instant)>,
    /// The criu binary for Checkpoint (runc's `CriuPath`, else `criu`).
    pub criu: PathBuf,
    /// Restored from a checkpoint by Create: the init already runs and
    /// Start only reports it.
    pub restored: bool,
}

impl Task {
    pub fn process(&self, exec_id: &str) -> Option<&Process> {
        if exec_id.is_empty() {
            Some(&self.init)
        } else {
            self.execs.get(exec_id)
        }
    }

    pub fn process_mut(&mut self, exec_id: &str) -> Option<&mut Process> {
        if exec_id.is_empty() {
            Some(&mut self.init)
        } else {
            self.execs.get_mut(exec_id)
        }
    }

    /// The task API status of a process.
    pub fn status(&self, p: &Process) -> Status {
        match p.state {
            State::Created => Status::CREATED,
            State::Stopped => Status::STOPPED,
            State::Running if self.paused => Status::PAUSED,
            State::Running => Status::RUNNING,
        }
    }
}

/// Reap every exited child now: (pid, status) of each.
pub fn reap_children() -> Vec<(i32, u32)> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let mut exits = Vec::new();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(ws) => {
                if let Some(e) = exit_code(ws) {
                    exits.push(e);
                }
            }
        }
    }
    exits
}

/// Exit status as containerd reports it: the code, or 128 + signal.
pub fn exit_code(ws: nix::sys::wait::WaitStatus) -> Option<(i32, u32)> {
    use nix::sys::wait::WaitStatus::*;
    match ws {
        Exited(pid, code) => Some((pid.as_raw(), code as u32)),
        Signaled(pid, sig, _) => Some((pid.as_raw(), 128 + sig as u32)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::sys::wait::WaitStatus;
    use nix::unistd::Pid;

    #[test]
    fn exit_codes() {
        let p = Pid::from_raw(9);
        assert_eq!(exit_code(WaitStatus::Exited(p, 3)), Some((9, 3)));
        assert_eq!(
            exit_code(WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            Some((9, 137))
        );
        assert_eq!(exit_code(WaitStatus::StillAlive), None);
    }
}
