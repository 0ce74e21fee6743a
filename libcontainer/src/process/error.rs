//! The error of a process we start in a container before it reaches
//! execve (init's set-up, an exec child's): sent back to the runtime as
//! text over the sync channel or the start socket.

use crate::{capabilities, hooks, namespaces, rlimits, rootfs, tty, user};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Channel(#[from] super::channel::ChannelError),
    #[error(transparent)]
    Namespace(#[from] namespaces::NamespaceError),
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error(transparent)]
    Tty(#[from] tty::TtyError),
    #[error(transparent)]
    Caps(#[from] capabilities::CapError),
    #[error(transparent)]
    Rlimit(#[from] rlimits::RlimitError),
    #[error(transparent)]
    User(#[from] user::UserError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Sys(#[from] crate::sys::SysError),
    #[error("{0}")]
    Msg(String),
}
