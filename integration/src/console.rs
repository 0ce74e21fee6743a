//! `--console-socket`: receiving the pty master over SCM_RIGHTS, and
//! reading and writing raw fds with deadlines.

use crate::names::next;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A unix socket for `--console-socket`; [`ConsoleSocket::recv_fd`] accepts
/// one connection and receives the pty master sent with SCM_RIGHTS.
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new(dir: &Path) -> ConsoleSocket {
        let path = dir.join(format!("console-{}.sock", next()));
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        ConsoleSocket { path, listener }
    }

    /// Accept (within `timeout`) and receive one fd.
    pub fn recv_fd(&self, timeout: Duration) -> Result<OwnedFd, String> {
        let deadline = Instant::now() + timeout;
        let stream: UnixStream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err("no connection on the console socket".into());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(10)),
            ))
            .unwrap();
        recv_one_fd(stream.as_raw_fd())
    }
}

fn recv_one_fd(sock: RawFd) -> Result<OwnedFd, String> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 64];
    // SAFETY: msghdr is plain data; all-zero is a valid empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: msg points at live buffers (iov, cbuf) sized as declared.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(format!("recvmsg: {}", std::io::Error::last_os_error()));
    }
    let mut found: Vec<RawFd> = Vec::new();
    // SAFETY: walking the control messages recvmsg filled in, within cbuf.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    found.push(std::ptr::read_unaligned(data.add(i)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if found.len() != 1 {
        for fd in &found {
            // SAFETY: closing fds we received and own.
            unsafe { libc::close(*fd) };
        }
        return Err(format!(
            "expected exactly one fd over SCM_RIGHTS, got {}",
            found.len()
        ));
    }
    // SAFETY: found[0] was just received and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(found[0]) })
}

/// Read from `fd` (with poll) until `pred(all output)` holds, EOF/EIO, or
/// the timeout; returns everything read.
pub fn read_until(fd: RawFd, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    let mut acc = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || pred(&String::from_utf8_lossy(&acc)) {
            break;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is a live pollfd; count 1.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if r < 0 {
            break;
        }
        if r == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: buf is a live buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n <= 0 {
            break;
        }
        acc.extend_from_slice(&buf[..n as usize]);
    }
    String::from_utf8_lossy(&acc).to_string()
}

/// Write all of `data` to `fd`.
pub fn write_all_fd(fd: RawFd, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        // SAFETY: the pointer and length are of a live slice.
        let n = unsafe {
            libc::write(
                fd,
                data[off..].as_ptr() as *const libc::c_void,
                data.len() - off,
            )
        };
        assert!(
            n > 0,
            "write to fd {fd}: {}",
            std::io::Error::last_os_error()
        );
        off += n as usize;
    }
}
