//! `oxrun run`: create + start, then (unless detached) act as the container's
//! parent: forward signals to init, relay its terminal, reap, delete, and
//! exit with its status.

use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use libcontainer::container::{self, CreateOptions};

use crate::log::Logger;
use crate::wait;

pub fn run(mut opts: CreateOptions, detach: bool, keep: bool, log: &Logger) -> Result<u8, String> {
    let set = wait::forwarded();
    // A foreground terminal without --console-socket: the pty comes to us.
    opts.pty_to_caller = !detach;
    if !detach {
        wait::block(&set)?;
    }
    let mut created = container::create(&opts).map_err(|e| e.to_string())?;
    created.debug.iter().for_each(|d| log.debug(d));
    created.warnings.iter().for_each(|w| log.warn(w));
    let cleanup = |log: &Logger| {
        if !keep {
            match container::delete(&opts.root, &opts.id, true) {
                Ok(w) => {
                    log.debug(&format!(
                        "deleted {}: processes, cgroups and state removed, poststop hooks (if any) run",
                        opts.id
                    ));
                    w.iter().for_each(|w| log.warn(w));
                }
                Err(e) => log.warn(&format!("delete {}: {e}", opts.id)),
            }
        }
    };
    let master = match created
        .console
        .take()
        .as_ref()
        .map(wait::recv_master)
        .transpose()
    {
        Ok(m) => m,
        Err(e) => {
            let _ = nix::sys::signal::kill(Pid::from_raw(created.pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(created.pid), None);
            cleanup(log);
            return Err(e);
        }
    };
    match container::start(&opts.root, &opts.id) {
        Ok(s) => {
            s.debug.iter().for_each(|d| log.debug(d));
            s.warnings.iter().for_each(|w| log.warn(w));
        }
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
    let code = wait::wait(created.pid, &set, master)?;
    log.debug(&format!(
        "init pid {} exited with status {code}",
        created.pid
    ));
    cleanup(log);
    Ok(code)
}
