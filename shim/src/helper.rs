//! Short-lived helper processes for work that can take long: a container's
//! create (with its prestart, createRuntime and createContainer hooks), its
//! start (startContainer and poststart hooks) and its poststop hooks. The
//! helper is forked from the shim, does the work, writes a short result on
//! a socket and exits; the event loop reaps it like any child and answers
//! the parked request from the result. Meanwhile the loop goes on serving
//! every other container of the shim. A helper that outlives its deadline
//! is SIGKILLed (and reported as failed).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// A running helper: its pid, our end of its result socket, its deadline.
pub struct Helper {
    pub pid: i32,
    sock: OwnedFd,
    pub deadline: Instant,
    /// Killed for overrunning its deadline.
    pub overdue: bool,
}

/// What a helper reported: its message and at most one fd.
pub struct Report {
    pub msg: String,
    pub fd: Option<OwnedFd>,
}

/// Close every fd of this process from 3 up but those in `keep`.
fn close_all_but(keep: &mut [RawFd]) {
    keep.sort_unstable();
    let mut next: u32 = 3;
    for &k in keep.iter() {
        let Ok(k) = u32::try_from(k) else { continue };
        if k < next {
            continue;
        }
        if k > next {
            // SAFETY: plain integers; the fds in the range are ours and
            // unused by the code that follows (only `keep` is).
            unsafe { libc::syscall(libc::SYS_close_range, next, k - 1, 0) };
        }
        next = k + 1;
    }
    let _ = libcontainer::sys::close_from(next);
}

/// Fork a helper that keeps only stdio, `keep` and its result socket, runs
/// `work` with that socket and exits with `work`'s status. The caller must
/// be single-threaded (the shim is).
pub fn spawn(
    keep: &[RawFd],
    timeout: Duration,
    work: impl FnOnce(&OwnedFd) -> i32,
) -> Result<Helper, String> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| format!("socketpair for a helper: {e}"))?;
    // SAFETY: the shim is single-threaded; the child runs `work` (which
    // forks and execs containers and hooks as the shim itself does) and
    // leaves with _exit.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork a helper: {e}"))? {
        nix::unistd::ForkResult::Child => {
            drop(ours);
            let mut keep: Vec<RawFd> = keep.to_vec();
            keep.push(theirs.as_raw_fd());
            close_all_but(&mut keep);
            // The shim blocks SIGCHLD (for its signalfd); the hooks and
            // anything else the helper starts must not inherit that (a
            // hook script's `wait` would never return).
            let _ = nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            );
            let code = work(&theirs);
            // SAFETY: ends the child without running the shim's destructors.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => Ok(Helper {
            pid: child.as_raw(),
            sock: ours,
            deadline: Instant::now() + timeout,
            overdue: false,
        }),
    }
}

/// In the helper: report `msg` (and `fd`) to the shim.
pub fn report(sock: &OwnedFd, msg: &str, fd: Option<RawFd>) {
    let iov = [IoSlice::new(msg.as_bytes())];
    let fds: Vec<RawFd> = fd.into_iter().collect();
    let cmsg: Vec<ControlMessage<'_>> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&fds)]
    };
    let _ = sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None);
}

impl Helper {
    /// The helper has exited: what it reported (None if it reported
    /// nothing, e.g. it was killed). Never blocks.
    pub fn report(&self) -> Option<Report> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .ok()?;
        let mut fd = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for raw in fds {
                        // SAFETY: the kernel just installed this fd for us.
                        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                        fd.get_or_insert(owned);
                    }
                }
            }
        }
        let n = msg.bytes;
        if n == 0 && fd.is_none() {
            return None;
        }
        Some(Report {
            msg: String::from_utf8_lossy(&buf[..n]).into_owned(),
            fd,
        })
    }

    /// Past its deadline: kill it (its exit is reaped as usual).
    pub fn kill_if_overdue(&mut self, now: Instant) {
        if !self.overdue && now >= self.deadline {
            self.overdue = true;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A helper's report (with an fd) comes back after it exits; other fds
    /// of the parent are closed in the helper.
    #[test]
    fn report_and_fd_come_back() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (other, _other_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let other_raw = other.as_raw_fd();
        let w_raw = w.as_raw_fd();
        let h = spawn(&[w_raw], Duration::from_secs(10), move |sock| {
            // SAFETY: fcntl F_GETFD on an fd number only.
            let closed = unsafe { libc::fcntl(other_raw, libc::F_GETFD) } < 0;
            report(sock, &format!("ok {closed}"), Some(w_raw));
            0
        })
        .unwrap();
        drop(w);
        let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(h.pid), None).unwrap();
        assert!(matches!(st, nix::sys::wait::WaitStatus::Exited(_, 0)));
        let rep = h.report().expect("a report");
        assert_eq!(rep.msg, "ok true");
        let fd = rep.fd.expect("the pipe's write end");
        nix::unistd::write(&fd, b"x").unwrap();
        let mut b = [0u8; 1];
        assert_eq!(nix::unistd::read(r.as_raw_fd(), &mut b).unwrap(), 1);
    }

    /// A helper that reports nothing (killed) gives no report.
    #[test]
    fn killed_helper_reports_nothing() {
        let mut h = spawn(&[], Duration::ZERO, |_| {
            std::thread::sleep(Duration::from_secs(30));
            0
        })
        .unwrap();
        h.kill_if_overdue(Instant::now());
        assert!(h.overdue);
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(h.pid), None).unwrap();
        assert!(h.report().is_none());
    }
}
