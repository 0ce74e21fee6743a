//! A process's stdio as containerd asks for it, and the pumps that move
//! the bytes. Without a terminal the container gets pipes (we pump them
//! to and from containerd's fifos), the log file itself (`file://`, no
//! copying), or a logger's pipes (`binary://`). With a terminal we pump
//! between the fifos and the pty master. All fds are close-on-exec; the
//! shim's own ends are non-blocking, so a slow or absent reader never
//! stalls the shim. Output fifos are opened read-write: while we hold them
//! a containerd restart never turns the container's writes into EPIPE.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use nix::poll::PollFlags;
use nix::sys::stat::Mode;

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("{op} {path}: {errno}")]
    Open {
        op: &'static str,
        path: String,
        errno: Errno,
    },
    #[error("{op}: {errno}")]
    Sys { op: &'static str, errno: Errno },
    #[error("binary logger {uri}: {msg}")]
    Logger { uri: String, msg: String },
}

type Result<T> = std::result::Result<T, StdioError>;

fn sys(op: &'static str) -> impl FnOnce(Errno) -> StdioError {
    move |errno| StdioError::Sys { op, errno }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Paths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Stdin,
    Stdout,
    Stderr,
}

/// Moves bytes from `src` to `dst` as both allow.
pub struct Pump {
    pub role: Role,
    src: Option<OwnedFd>,
    dst: Option<OwnedFd>,
    /// Both ends are pipes or fifos: splice, no copy through user space.
    splice: bool,
    pending: Vec<u8>,
    dst_full: bool,
    /// CloseIO: finish what is readable now, then close.
    closing: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    Moved,
    SrcEmpty,
    DstFull,
    Done,
}

fn is_pipe(fd: &OwnedFd) -> bool {
    nix::sys::stat::fstat(fd.as_raw_fd())
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO)
        .unwrap_or(false)
}

fn set_nonblock(fd: &OwnedFd) -> Result<()> {
    let fl = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).map_err(sys("fcntl O_NONBLOCK"))?;
    let fl = OFlag::from_bits_retain(fl) | OFlag::O_NONBLOCK;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(fl)).map_err(sys("fcntl O_NONBLOCK"))?;
    Ok(())
}

impl Pump {
    pub fn new(role: Role, src: OwnedFd, dst: OwnedFd) -> Result<Pump> {
        set_nonblock(&src)?;
        set_nonblock(&dst)?;
        let splice = is_pipe(&src) && is_pipe(&dst);
        Ok(Pump {
            role,
            src: Some(src),
            dst: Some(dst),
            splice,
            pending: Vec::new(),
            dst_full: false,
            closing: false,
        })
    }

    pub fn is_done(&self) -> bool {
        self.dst.is_none()
    }

    /// What to poll: (fd, events).
    pub fn interest(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        let dst = self.dst.as_ref()?;
        if self.dst_full || !self.pending.is_empty() {
            return Some((dst.as_fd(), PollFlags::POLLOUT));
        }
        self.src.as_ref().map(|s| (s.as_fd(), PollFlags::POLLIN))
    }

    /// The polled fd is ready: move as much as possible.
    pub fn ready(&mut self) {
        self.dst_full = false;
        self.run();
    }

    /// Move what is there now (before an exit is reported).
    pub fn drain(&mut self) {
        self.dst_full = false;
        self.run();
    }

    /// containerd closed stdin: pass on what is buffered, then EOF.
    pub fn close(&mut self) {
        self.closing = true;
        self.run();
    }

    fn finish(&mut self) {
        self.src = None;
        self.dst = None;
        self.pending = Vec::new();
    }

    fn run(&mut self) {
        for _ in 0..64 {
            match self.step() {
                Step::Moved => continue,
                Step::SrcEmpty if self.closing && self.pending.is_empty() => self.finish(),
                Step::SrcEmpty => {}
                Step::DstFull => self.dst_full = true,
                Step::Done => self.finish(),
            }
            return;
        }
    }

    fn step(&mut self) -> Step {
        let Some(dst) = self.dst.as_ref() else {
            return Step::Done;
        };
        if !self.pending.is_empty() {
            return match nix::unistd::write(dst, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                    Step::Moved
                }
                Err(Errno::EAGAIN) => Step::DstFull,
                Err(Errno::EINTR) => Step::Moved,
                Err(_) => Step::Done,
            };
        }
        let Some(src) = self.src.as_ref() else {
            return Step::Done;
        };
        if self.splice {
            // Between two pipes: no offsets.
            let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
            return match splice(src, None, dst, None, 1 << 16, flags) {
                Ok(0) => Step::Done,
                Ok(_) => Step::Moved,
                Err(Errno::EINTR) => Step::Moved,
                Err(Errno::EAGAIN) if writable(dst) => Step::SrcEmpty,
                Err(Errno::EAGAIN) => Step::DstFull,
                Err(_) => Step::Done,
            };
        }
        let mut buf = [0u8; 1 << 14];
        match nix::unistd::read(src.as_raw_fd(), &mut buf) {
            Ok(0) => Step::Done,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                Step::Moved
            }
            Err(Errno::EAGAIN) => Step::SrcEmpty,
            Err(Errno::EINTR) => Step::Moved,
            // EIO: the pty's last slave fd closed.
            Err(_) => Step::Done,
        }
    }
}

fn writable(fd: &OwnedFd) -> bool {
    let mut p = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLOUT,
    )];
    matches!(nix::poll::poll(&mut p, nix::poll::PollTimeout::ZERO), Ok(1))
}

/// A process's io once set up: the pumps, the pty master (for resize),
/// and what to hand to the process (`None` with a terminal).
pub struct Io {
    pub pumps: Vec<Pump>,
    pub console: Option<OwnedFd>,
    /// Terminal only: the ends the pumps will use once the master arrives.
    tty_stdin: Option<OwnedFd>,
    tty_out: Option<OwnedFd>,
}

pub struct Prepared {
    pub io: Io,
    /// The process's stdin, stdout and stderr; drop after create/exec.
    pub child: Option<[OwnedFd; 3]>,
}

fn cpath(path: &str) -> Result<CString> {
    CString::new(path).map_err(|_| StdioError::Open {
        op: "open",
        path: path.into(),
        errno: Errno::EINVAL,
    })
}

fn open(path: &str, flags: i32, mode: libc::mode_t) -> Result<OwnedFd> {
    let c = cpath(path)?;
    let flags = OFlag::from_bits_retain(flags | libc::O_CLOEXEC);
    let fd =
        nix::fcntl::open(c.as_c_str(), flags, Mode::from_bits_retain(mode)).map_err(|errno| {
            StdioError::Open {
                op: "open",
                path: path.into(),
                errno,
            }
        })?;
    // SAFETY: a fresh fd from open(2) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn dev_null() -> Result<OwnedFd> {
    open("/dev/null", libc::O_RDWR, 0)
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe2"))
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd> {
    fd.try_clone().map_err(|e| StdioError::Sys {
        op: "dup",
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)),
    })
}

fn chown(fd: &OwnedFd, uid: u32, gid: u32) -> Result<()> {
    if uid == 0 && gid == 0 {
        return Ok(());
    }
    nix::unistd::fchown(
        fd.as_raw_fd(),
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .map_err(sys("fchown io pipe"))
}

/// Output target: a fifo (read-write, so a reader restart never gives
/// EPIPE) or a `file://` log, appended to.
fn open_sink(uri: &str) -> Result<OwnedFd> {
    if let Some(path) = uri.strip_prefix("file://") {
        if let Some(dir) = Path::new(path).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        return open(path, libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, 0o640);
    }
    open(uri, libc::O_RDWR | libc::O_NONBLOCK, 0)
}

/// A `binary://` logger: started with the read ends of the stdout and
/// stderr pipes as fds 3 and 4 and a readiness pipe as fd 5 (it closes fd 5
/// when ready). Returns the write ends for the process.
fn start_logger(uri: &str, id: &str, namespace: &str) -> Result<(OwnedFd, OwnedFd)> {
    let err = |msg: String| StdioError::Logger {
        uri: uri.to_string(),
        msg,
    };
    let rest = uri.strip_prefix("binary://").unwrap_or(uri);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut args = Vec::new();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        args.push(k.to_string());
        if !v.is_empty() {
            args.push(v.to_string());
        }
    }
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    let mut cmd = std::process::Command::new(path);
    cmd.args(&args)
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: only dup2 and sigprocmask (async-signal-safe) between fork
    // and exec, on memory of the child's own stack.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in fds.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Not the shim's blocked SIGCHLD: a logger script's `wait`
            // would never return, and the logger would outlive its task.
            let mut none = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(none.as_mut_ptr());
            if libc::sigprocmask(libc::SIG_SETMASK, none.as_ptr(), std::ptr::null_mut()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| err(format!("start: {e}")))?;
    drop((out_r, err_r, ready_w));
    // Ready when fd 5 is closed (or written to).
    let mut p = [nix::poll::PollFd::new(
        ready_r.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let timeout = nix::poll::PollTimeout::try_from(Duration::from_secs(10))
        .unwrap_or(nix::poll::PollTimeout::MAX);
    match nix::poll::poll(&mut p, timeout) {
        Ok(1) => Ok((out_w, err_w)),
        _ => Err(err("not ready within 10 s".into())),
    }
}

/// Set up a process's io. `io_uid`/`io_gid` own the pipes the process gets.
pub fn prepare(
    paths: &Paths,
    id: &str,
    namespace: &str,
    io_uid: u32,
    io_gid: u32,
) -> Result<Prepared> {
    let stdin_fifo = if paths.stdin.is_empty() {
        None
    } else {
        Some(open(&paths.stdin, libc::O_RDONLY | libc::O_NONBLOCK, 0)?)
    };
    if paths.terminal {
        let out = if paths.stdout.starts_with("binary://") {
            Some(start_logger(&paths.stdout, id, namespace)?.0)
        } else if paths.stdout.is_empty() {
            None
        } else {
            Some(open_sink(&paths.stdout)?)
        };
        return Ok(Prepared {
            io: Io {
                pumps: Vec::new(),
                console: None,
                tty_stdin: stdin_fifo,
                tty_out: out,
            },
            child: None,
        });
    }
    let mut pumps = Vec::new();
    let child_in = match stdin_fifo {
        Some(fifo) => {
            let (r, w) = pipe()?;
            chown(&r, io_uid, io_gid)?;
            pumps.push(Pump::new(Role::Stdin, fifo, w)?);
            r
        }
        None => dev_null()?,
    };
    let logger = if paths.stdout.starts_with("binary://") {
        Some(start_logger(&paths.stdout, id, namespace)?)
    } else {
        None
    };
    let (mut log_out, mut log_err) = match logger {
        Some((o, e)) => (Some(o), Some(e)),
        None => (None, None),
    };
    let mut file_sink: Option<(String, OwnedFd)> = None;
    let mut output = |uri: &str, role: Role, log: &mut Option<OwnedFd>| -> Result<OwnedFd> {
        if uri.is_empty() {
            return dev_null();
        }
        if uri.starts_with("binary://") {
            return log.take().map(Ok).unwrap_or_else(dev_null);
        }
        if uri.starts_with("file://") {
            if let Some((u, fd)) = &file_sink {
                if u == uri {
                    return dup(fd);
                }
            }
            let fd = open_sink(uri)?;
            file_sink = Some((uri.to_string(), dup(&fd)?));
            return Ok(fd);
        }
        let fifo = open_sink(uri)?;
        let (r, w) = pipe()?;
        chown(&w, io_uid, io_gid)?;
        pumps.push(Pump::new(role, r, fifo)?);
        Ok(w)
    };
    let child_out = output(&paths.stdout, Role::Stdout, &mut log_out)?;
    let child_err = output(&paths.stderr, Role::Stderr, &mut log_err)?;
    Ok(Prepared {
        io: Io {
            pumps,
            console: None,
            tty_stdin: None,
            tty_out: None,
        },
        child: Some([child_in, child_out, child_err]),
    })
}

impl Io {
    /// Terminal: the pty master arrived; start pumping.
    pub fn attach_console(&mut self, master: OwnedFd) -> Result<()> {
        if let Some(fifo) = self.tty_stdin.take() {
            self.pumps
                .push(Pump::new(Role::Stdin, fifo, dup(&master)?)?);
        }
        if let Some(out) = self.tty_out.take() {
            self.pumps
                .push(Pump::new(Role::Stdout, dup(&master)?, out)?);
        }
        self.console = Some(master);
        Ok(())
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let Some(m) = &self.console else {
            return Ok(());
        };
        let ws = libc::winsize {
            ws_row: height as u16,
            ws_col: width as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        libcontainer::sys::set_winsize(m.as_fd(), &ws).map_err(sys("resize pty"))
    }

    pub fn close_stdin(&mut self) {
        for p in self.pumps.iter_mut().filter(|p| p.role == Role::Stdin) {
            p.close();
        }
        self.tty_stdin = None;
    }

    /// Move whatever output is buffered now (the process exited).
    pub fn drain_output(&mut self) {
        for p in self.pumps.iter_mut().filter(|p| p.role != Role::Stdin) {
            p.drain();
        }
    }

    pub fn prune(&mut self) {
        self.pumps.retain(|p| !p.is_done());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_pump_moves_bytes_and_ends_on_eof() {
        let (r1, w1) = pipe().unwrap();
        let (r2, w2) = pipe().unwrap();
        let mut p = Pump::new(Role::Stdout, r1, w2).unwrap();
        assert!(p.splice);
        nix::unistd::write(&w1, b"hello").unwrap();
        p.ready();
        let mut buf = [0u8; 16];
        let n = nix::unistd::read(r2.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        drop(w1);
        p.ready();
        assert!(p.is_done());
        // Our write end is closed: the reader sees EOF.
        assert_eq!(nix::unistd::read(r2.as_raw_fd(), &mut buf).unwrap(), 0);
    }

    #[test]
    fn full_destination_waits_for_pollout() {
        let (r1, w1) = pipe().unwrap();
        let (r2, w2) = pipe().unwrap();
        let _ = fcntl(w2.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(4096));
        let mut p = Pump::new(Role::Stdout, r1, w2).unwrap();
        set_nonblock(&w1).unwrap();
        let chunk = [b'x'; 4096];
        let mut written = 0;
        while written < 16384 {
            match nix::unistd::write(&w1, &chunk) {
                Ok(n) => written += n,
                Err(_) => break,
            }
        }
        p.ready();
        let (fd, ev) = p.interest().unwrap();
        assert_eq!(ev, PollFlags::POLLOUT, "waits for the destination");
        assert!(fd.as_raw_fd() != r1_raw(&p));
        let mut total = 0;
        let mut buf = [0u8; 4096];
        while total < written {
            if let Ok(n) = nix::unistd::read(r2.as_raw_fd(), &mut buf) {
                total += n;
            }
            p.ready();
        }
        assert_eq!(total, written);
    }

    fn r1_raw(p: &Pump) -> std::os::fd::RawFd {
        p.src.as_ref().map(|s| s.as_raw_fd()).unwrap_or(-1)
    }

    #[test]
    fn closing_stdin_passes_buffered_bytes_then_eof() {
        let (r1, w1) = pipe().unwrap();
        let (r2, w2) = pipe().unwrap();
        let mut p = Pump::new(Role::Stdin, r1, w2).unwrap();
        nix::unistd::write(&w1, b"last").unwrap();
        p.close();
        assert!(p.is_done());
        let mut buf = [0u8; 16];
        let n = nix::unistd::read(r2.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"last");
        assert_eq!(nix::unistd::read(r2.as_raw_fd(), &mut buf).unwrap(), 0);
        drop(w1);
    }
}
