//! Being the foreground parent of a container process (`run`, `exec`):
//! forward signals to it, reap children, relay a pty to our own terminal,
//! and return its exit status (128+signal when killed).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use libcontainer::sys;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Signals a foreground parent passes on to the container (as runc does).
pub fn forwarded() -> SigSet {
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

/// Block the forwarded signals (before the child exists, so none is lost;
/// the container's processes unblock their own).
pub fn block(set: &SigSet) -> Result<(), String> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(set), None)
        .map_err(|e| format!("sigprocmask: {e}"))
}

/// Receive the pty master sent with SCM_RIGHTS.
pub fn recv_master(sock: &OwnedFd) -> Result<OwnedFd, String> {
    libcontainer::tty::recv_master(sock).map_err(|e| e.to_string())
}

/// Restores the terminal mode when dropped.
struct RawMode {
    saved: termios::Termios,
}

impl RawMode {
    fn enter(fd: BorrowedFd<'_>) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(
            std::io::stdin().as_fd(),
            termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Ok(ws) = sys::get_winsize(from) {
        let _ = sys::set_winsize(to, &ws);
    }
}

/// Copy what is readable on `from` to `to`; false at end-of-file/EIO.
fn pump(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 16384];
    match nix::unistd::read(from.as_raw_fd(), &mut buf) {
        Ok(0) | Err(Errno::EIO) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match nix::unistd::write(to, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
                    Err(_) => return false,
                }
            }
            true
        }
        Err(Errno::EINTR) | Err(Errno::EAGAIN) => true,
        Err(_) => false,
    }
}

/// Wait for `pid`: forward signals, relay `master` if given, reap children.
pub fn wait(pid: i32, set: &SigSet, master: Option<OwnedFd>) -> Result<u8, String> {
    let sfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("signalfd: {e}"))?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let _raw = master.as_ref().and_then(|_| RawMode::enter(stdin.as_fd()));
    if let Some(m) = &master {
        copy_winsize(stdin.as_fd(), m.as_fd());
    }
    let (mut stdin_open, mut master_open) = (master.is_some(), master.is_some());
    loop {
        if let Some(code) = reap(pid)? {
            if let Some(m) = &master {
                // Drain what the process wrote before it exited.
                let _ = nix::fcntl::fcntl(
                    m.as_raw_fd(),
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                );
                while master_open && pump(m.as_fd(), stdout.as_fd()) {
                    let mut probe = [PollFd::new(m.as_fd(), PollFlags::POLLIN)];
                    if !matches!(poll(&mut probe, PollTimeout::ZERO), Ok(n) if n > 0) {
                        break;
                    }
                }
            }
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = master.as_ref().filter(|_| master_open) {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if let Some(m) = &master {
            let mut i = 1;
            if master_open {
                if ready[i] {
                    master_open = pump(m.as_fd(), stdout.as_fd());
                }
                i += 1;
            }
            if stdin_open && ready.get(i).copied().unwrap_or(false) {
                stdin_open = pump(stdin.as_fd(), m.as_fd());
            }
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            let signo = info.ssi_signo as i32;
            match (signo, &master) {
                (libc::SIGCHLD, _) => {}
                (libc::SIGWINCH, Some(m)) => copy_winsize(stdin.as_fd(), m.as_fd()),
                // To our own child (signo may be a real-time signal).
                _ => {
                    let _ = sys::kill(pid, signo);
                }
            }
        }
    }
}

/// Reap exited children; `Some(code)` once `pid` is among them.
fn reap(pid: i32) -> Result<Option<u8>, String> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Ok(Some(code as u8)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                return Ok(Some(128 + sig as u8))
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(None),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("waitpid: {e}")),
        }
    }
}
