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
pub mod parent;
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
