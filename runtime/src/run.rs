//! `oxrun run`: create + start, then (unless detached) act as the container's
//! parent: forward signals to init, reap, delete, and exit with its status.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use libcontainer::container::{self, CreateOptions};

use crate::log::Logger;

/// Signals a foreground `run` passes on to the container (as runc does).
fn forwarded() -> SigSet {
    let mut set = SigSet::empty();
    for s in Signal::iterator() {
        if !matches!(
            s,
            Signal::SIGKILL
                | Signal::SIGSTOP
                | Signal::SIGSEGV
                | Signal::SIGBUS
                | Signal::SIGILL
                | Signal::SIGFPE
                | Signal::SIGTRAP
                | Signal::SIGABRT
                | Signal::SIGSYS
        ) {
            set.add(s);
        }
    }
    set
}

pub fn run(opts: &CreateOptions, detach: bool, keep: bool, log: &Logger) -> Result<u8, String> {
    let set = forwarded();
    if !detach {
        // Blocked before the clone so nothing is lost; init unblocks its own.
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .map_err(|e| format!("sigprocmask: {e}"))?;
    }
    let created = container::create(opts).map_err(|e| e.to_string())?;
    created.warnings.iter().for_each(|w| log.warn(w));
    let started = container::start(&opts.root, &opts.id);
    let cleanup = |log: &Logger| {
        if !keep {
            match container::delete(&opts.root, &opts.id, true) {
                Ok(w) => w.iter().for_each(|w| log.warn(w)),
                Err(e) => log.warn(&format!("delete {}: {e}", opts.id)),
            }
        }
    };
    match started {
        Ok(w) => w.iter().for_each(|w| log.warn(w)),
        Err(e) => {
            let _ = nix::sys::signal::kill(Pid::from_raw(created.pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(created.pid), None);
            cleanup(log);
            return Err(e.to_string());
        }
    }
    if detach {
        return Ok(0);
    }
    let code = wait_forwarding(created.pid, &set)?;
    cleanup(log);
    Ok(code)
}

/// Forward signals to `init` until it exits; reap every child on the way.
fn wait_forwarding(init: i32, set: &SigSet) -> Result<u8, String> {
    let sfd =
        SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC).map_err(|e| format!("signalfd: {e}"))?;
    loop {
        if let Some(code) = reap(init)? {
            return Ok(code);
        }
        let Some(info) = sfd
            .read_signal()
            .map_err(|e| format!("read signalfd: {e}"))?
        else {
            continue;
        };
        let signo = info.ssi_signo as i32;
        if signo != libc::SIGCHLD {
            // SAFETY: kill(2) to our own child, the container's init.
            unsafe { libc::kill(init, signo) };
        }
    }
}

/// Reap exited children; `Some(code)` once `init` is among them.
fn reap(init: i32) -> Result<Option<u8>, String> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == init => {
                return Ok(Some(code as u8))
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid.as_raw() == init => {
                return Ok(Some(128 + sig as u8))
            }
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(None),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("waitpid: {e}")),
        }
    }
}
