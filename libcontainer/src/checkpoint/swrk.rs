//! One conversation with `criu swrk`: criu is started with one end of a
//! SOCK_SEQPACKET socketpair (its number on the command line), gets one
//! request, may send notifications (each answered), and ends with the
//! response to the request. Every wait is bounded: criu that does not
//! answer in time is killed.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    recvmsg, send, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};

use super::rpc::{self, Resp};
use super::CheckpointError;

/// How long one checkpoint or restore may take before criu is killed
/// (a dump writes all of the container's memory).
pub const TIMEOUT: Duration = Duration::from_secs(600);

/// How criu is started.
pub struct Spawn<'a> {
    pub criu: &'a Path,
    /// Descriptors criu must inherit under the same numbers (namespace
    /// files, stdio named in `inherit_fd`).
    pub inherit: &'a [BorrowedFd<'a>],
    /// criu's stdin, stdout, stderr (`None`: stdin from /dev/null, our
    /// stdout and stderr).
    pub stdio: Option<[RawFd; 3]>,
}

pub struct Swrk {
    child: Option<Child>,
    sock: OwnedFd,
    deadline: Instant,
    criu: PathBuf,
}

fn sys(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> CheckpointError {
    move |e| CheckpointError::Sys(crate::sys::SysError::new(op, e))
}

fn set_cloexec(fd: RawFd, on: bool) -> nix::Result<()> {
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(fd, FcntlArg::F_SETFD(flags)).map(drop)
}

fn stdio_of(fd: RawFd) -> Result<Stdio, CheckpointError> {
    // SAFETY: the caller's fd stays open for the call; we only dup it.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    let own = b
        .try_clone_to_owned()
        .map_err(|e| CheckpointError::Sys(crate::sys::SysError::io("dup", "stdio", &e)))?;
    Ok(Stdio::from(own))
}

impl Swrk {
    pub fn spawn(s: &Spawn<'_>) -> Result<Swrk, CheckpointError> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(sys("socketpair"))?;
        let mut cmd = Command::new(s.criu);
        cmd.arg("swrk").arg(theirs.as_raw_fd().to_string());
        match s.stdio {
            Some([i, o, e]) => {
                cmd.stdin(stdio_of(i)?)
                    .stdout(stdio_of(o)?)
                    .stderr(stdio_of(e)?);
            }
            None => {
                cmd.stdin(Stdio::null());
            }
        }
        // The single-threaded runtime makes these fds inheritable only for
        // the moment of the spawn.
        let inheritable: Vec<RawFd> = std::iter::once(theirs.as_raw_fd())
            .chain(s.inherit.iter().map(|f| f.as_raw_fd()))
            .collect();
        for fd in &inheritable {
            set_cloexec(*fd, false).map_err(sys("clear FD_CLOEXEC"))?;
        }
        let spawned = cmd.spawn();
        for fd in &inheritable {
            let _ = set_cloexec(*fd, true);
        }
        let child = spawned.map_err(|source| CheckpointError::Spawn {
            path: s.criu.to_path_buf(),
            source,
        })?;
        drop(theirs);
        Ok(Swrk {
            child: Some(child),
            sock: ours,
            deadline: Instant::now() + TIMEOUT,
            criu: s.criu.to_path_buf(),
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    fn send(&self, data: &[u8]) -> Result<(), CheckpointError> {
        send(self.sock.as_raw_fd(), data, MsgFlags::MSG_NOSIGNAL).map_err(sys("send to criu"))?;
        Ok(())
    }

    /// Receive one message (and an fd sent with it), within the deadline.
    fn recv(&self) -> Result<(Resp, Option<OwnedFd>), CheckpointError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis().min(u128::from(u16::MAX))).unwrap_or(u16::MAX);
        let mut pfd = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
        loop {
            match poll(&mut pfd, PollTimeout::from(ms)) {
                Ok(0) if Instant::now() >= self.deadline => {
                    return Err(CheckpointError::Timeout {
                        criu: self.criu.clone(),
                        secs: TIMEOUT.as_secs(),
                    })
                }
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => break,
                Err(e) => return Err(sys("poll criu socket")(e)),
            }
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(sys("receive from criu"))?;
        let mut fd = None;
        for c in msg.cmsgs().map_err(sys("receive from criu"))? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for f in fds {
                    // SAFETY: the kernel just installed these fds for us.
                    let owned = unsafe { OwnedFd::from_raw_fd(f) };
                    fd.get_or_insert(owned);
                }
            }
        }
        let n = msg.bytes;
        if n == 0 {
            return Err(CheckpointError::Protocol(
                "criu closed the connection without an answer".into(),
            ));
        }
        let resp = Resp::decode(&buf[..n])
            .ok_or_else(|| CheckpointError::Protocol("criu sent a malformed message".into()))?;
        Ok((resp, fd))
    }

    /// Send `req` and serve notifications until the final answer, which is
    /// returned whether it reports success or not.
    pub fn call(
        &mut self,
        req: &[u8],
        mut on_notify: impl FnMut(&str, Option<i32>, Option<OwnedFd>) -> Result<(), CheckpointError>,
    ) -> Result<Resp, CheckpointError> {
        self.send(req)?;
        loop {
            let (resp, fd) = self.recv()?;
            if resp.typ != rpc::REQ_NOTIFY {
                return Ok(resp);
            }
            if !resp.success {
                return Ok(resp);
            }
            let script = resp.notify_script.clone().unwrap_or_default();
            let handled = on_notify(&script, resp.notify_pid, fd);
            self.send(&rpc::notify_ack(handled.is_ok()))?;
            handled?;
        }
    }

    /// Close our end and reap criu (bounded); its exit status is returned.
    pub fn finish(mut self) -> Result<std::process::ExitStatus, CheckpointError> {
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let mut child = self
            .child
            .take()
            .ok_or_else(|| CheckpointError::Protocol("criu was already reaped".into()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return Ok(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(CheckpointError::Timeout {
                        criu: self.criu.clone(),
                        secs: 30,
                    });
                }
                Err(e) => {
                    return Err(CheckpointError::Sys(crate::sys::SysError::io(
                        "wait",
                        self.criu.clone(),
                        &e,
                    )))
                }
            }
        }
    }
}

impl Drop for Swrk {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The criu version (major, minor, sublevel), asked over RPC.
pub fn version(criu: &Path) -> Result<(i32, i32, i32), CheckpointError> {
    let mut s = Swrk::spawn(&Spawn {
        criu,
        inherit: &[],
        stdio: None,
    })?;
    let r = s.call(&rpc::request(rpc::REQ_VERSION, None), |_, _, _| Ok(()))?;
    let _ = s.finish();
    r.version
        .filter(|_| r.success)
        .ok_or_else(|| CheckpointError::Protocol("criu did not report its version".into()))
}

/// Ask criu whether memory tracking / lazy pages work here.
pub fn features(
    criu: &Path,
    mem_track: bool,
    lazy_pages: bool,
) -> Result<(bool, bool), CheckpointError> {
    let mut s = Swrk::spawn(&Spawn {
        criu,
        inherit: &[],
        stdio: None,
    })?;
    let r = s.call(&rpc::feature_check(mem_track, lazy_pages), |_, _, _| Ok(()))?;
    let _ = s.finish();
    if !r.success {
        return Err(CheckpointError::Protocol(
            "criu's feature check failed".into(),
        ));
    }
    Ok((r.mem_track.unwrap_or(false), r.lazy_pages.unwrap_or(false)))
}
