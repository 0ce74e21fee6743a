//! Starting processes in a container. The container's init is cloned by
//! the runtime (`parent`) and sets itself up in the child (`init`);
//! `exec` starts further processes in a running container; both end in the
//! steps of `finalize`, which execve's the user's program through the
//! `trampoline`. `channel` is the parent <-> child sync protocol.

pub mod channel;
pub mod error;
pub mod exec;
pub mod finalize;
pub mod init;
pub(crate) mod mempolicy;
pub mod parent;
mod sched;
pub mod trampoline;

use std::os::fd::AsFd;

use crate::sys;

pub use init::SpawnArgs;
pub use parent::{release_init, spawn_init, ProcessError, Spawned};

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

/// Cloning a container's init or exec child copies only the calling
/// thread: locks other threads hold (the allocator's, stdio's) stay held in
/// the child forever. So `create` and `exec` refuse to run in a process
/// with more than one thread (a caller such as the shim must stay
/// single-threaded).
pub fn ensure_single_threaded() -> Result<(), ProcessError> {
    // One entry per thread; cheaper than formatting /proc/self/status.
    let threads = std::fs::read_dir("/proc/self/task")
        .map_err(|e| sys::SysError::io("read", "/proc/self/task", &e))?
        .count();
    if threads > 1 {
        return Err(ProcessError::Threaded(threads));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The test harness runs tests on threads of its own, so this process
    /// has several: refused.
    #[test]
    fn refuses_a_multi_threaded_caller() {
        let t = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        let err = super::ensure_single_threaded().expect_err("threads were running");
        assert!(err.to_string().contains("threads"), "{err}");
        let _ = t.join();
    }
}
