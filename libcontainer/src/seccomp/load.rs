//! Loading a compiled filter with seccomp(2), and for NOTIFY filters
//! handing the listener fd and the container state to the agent.

use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};

use super::bpf;
use super::notify::send_fd;
use super::*;

impl Filter {
    fn seccomp(&self, flags: u32) -> Result<libc::c_long, SeccompError> {
        crate::sys::seccomp_set_mode_filter(flags, &self.prog).map_err(|errno| {
            // Kernels before 5.19 do not know the flag.
            if errno == Errno::EINVAL && flags & FLAG_WAIT_KILLABLE_RECV != 0 {
                invalid(
                    "flags",
                    "the kernel refused SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (EINVAL): it needs Linux 5.19 or later",
                )
            } else {
                SeccompError::Load { flags, errno }
            }
        })
    }

    /// Whether the filter lets an x86_64 process make `nr` with `args`
    /// (pointer arguments given as 0) without it failing: ALLOW or LOG.
    pub fn allows(&self, nr: u32, args: [u64; 6]) -> bool {
        matches!(
            bpf::eval(&self.prog, nr, AUDIT_ARCH_X86_64, args),
            Some((RET_ALLOW | RET_LOG, _))
        )
    }

    /// Install a filter without NOTIFY rules on the calling thread (and all
    /// threads, with TSYNC).
    pub fn load(&self) -> Result<(), SeccompError> {
        if self.notify.is_some() {
            return Err(invalid(
                "listenerPath",
                "a filter with SCMP_ACT_NOTIFY must be installed with the process state (seccomp::Filter::install)",
            ));
        }
        self.seccomp(self.flags).map(drop)
    }

    /// Install the filter. With NOTIFY rules, also send the listener fd and
    /// the container process state to `listenerPath` over the connection
    /// [`compile`] made: `pid` is this process as the runtime sees it,
    /// `state` the container's state JSON (runtime-spec `state`).
    ///
    /// Between loading and the agent receiving the fd, the only syscall made
    /// is `sendmsg` (NOTIFY on it is refused by [`build`]): everything is
    /// prepared first, so nothing can wait on an agent that has no fd yet.
    pub fn install(&self, pid: i32, state: &[u8]) -> Result<(), SeccompError> {
        let Some(n) = &self.notify else {
            return self.load();
        };
        let conn = n
            .conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| invalid("listenerPath", "not connected (internal error)"))?;
        let state: serde_json::Value = serde_json::from_slice(state)
            .map_err(|e| invalid("listenerPath", format!("container state JSON: {e}")))?;
        let mut msg = serde_json::json!({
            "ociVersion": crate::state::OCI_VERSION,
            "fds": ["seccompFd"],
            "pid": pid,
            "state": state,
        });
        if let Some(m) = &n.metadata {
            msg["metadata"] = serde_json::json!(m);
        }
        let msg = serde_json::to_vec(&msg)
            .map_err(|e| invalid("listenerPath", format!("serialize: {e}")))?;
        let mut flags = self.flags | FLAG_NEW_LISTENER;
        if flags & FLAG_TSYNC != 0 {
            // The kernel refuses TSYNC with NEW_LISTENER unless a failed
            // sync reports ESRCH instead of a thread id in the return value.
            flags |= FLAG_TSYNC_ESRCH;
        }
        let fd = self.seccomp(flags)?;
        // SAFETY: with NEW_LISTENER, a successful seccomp() returns a new fd
        // that nothing else owns.
        let listener = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        send_fd(conn.as_fd(), &msg, listener.as_fd()).map_err(|errno| SeccompError::Send {
            path: n.listener_path.clone(),
            errno,
        })?;
        // Both are closed here, not at execve: --preserve-fds may have
        // cleared close-on-exec on the connection's number.
        drop(listener);
        drop(conn);
        Ok(())
    }
}
