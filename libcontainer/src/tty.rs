//! Terminals: a pty made inside the container's devpts, its master sent to
//! the caller's `--console-socket` with SCM_RIGHTS, the slave as stdio and
//! controlling terminal, and bound onto /dev/console.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::rootfs::resolve;
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    #[error("{0}")]
    Usage(&'static str),
    #[error("--console-socket {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sys(#[from] crate::sys::SysError),
}

fn err(op: &'static str) -> impl FnOnce(Errno) -> TtyError {
    move |errno| TtyError::Sys(crate::sys::SysError::new(format!("console {op}"), errno))
}

/// The socket a process' pty master is sent to, chosen before clone:
/// the caller's `--console-socket`, or, when `to_caller` and there is none,
/// a socketpair whose other end is returned for the caller to receive the
/// master on. Returns (socket for the container side, caller's end).
pub fn console_for(
    terminal: bool,
    path: Option<&Path>,
    to_caller: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>), TtyError> {
    match (terminal, path) {
        (false, None) => Ok((None, None)),
        (false, Some(_)) => Err(TtyError::Usage(
            "--console-socket given but process.terminal is false",
        )),
        (true, Some(p)) => Ok((Some(connect(p)?), None)),
        (true, None) if to_caller => {
            let (ours, theirs) = nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .map_err(err("socketpair"))?;
            Ok((Some(theirs), Some(ours)))
        }
        (true, None) => Err(TtyError::Usage(
            "process.terminal is true: --console-socket is required",
        )),
    }
}

/// Receive a pty master sent with SCM_RIGHTS on `sock` (the caller's end
/// of `console_for`'s socketpair, or an accepted console-socket connection).
pub fn recv_master(sock: &OwnedFd) -> Result<OwnedFd, TtyError> {
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(err("receive pty master"))?;
    for c in msg.cmsgs().map_err(err("receive pty master"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(TtyError::Usage("receive pty master: no fd in the message"))
}

/// Connect to the caller's console socket (done by the runtime, before clone).
pub fn connect(path: &Path) -> Result<OwnedFd, TtyError> {
    UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(|source| TtyError::Connect {
            path: path.to_path_buf(),
            source,
        })
}

/// In init, after pivot_root: make the pty, hand the master over, and make
/// the slave our stdio and controlling terminal.
/// `console`: also bind the slave onto /dev/console (init, not exec).
pub fn setup(
    console_socket: &OwnedFd,
    size: Option<(u16, u16)>,
    console: bool,
) -> Result<(), TtyError> {
    let flags = libc::O_RDWR | libc::O_NOCTTY;
    let master = sys::openat2(
        sys::cwd(),
        c"/dev/pts/ptmx",
        flags,
        0,
        sys::RESOLVE_NO_SYMLINKS,
    )
    .map_err(err("open /dev/pts/ptmx"))?;
    // The pty must come from a devpts, not from a node the image planted.
    if resolve::fs_magic(master.as_fd()).map_err(err("statfs /dev/pts/ptmx"))? != DEVPTS_MAGIC {
        return Err(TtyError::Usage(
            "/dev/pts/ptmx in the container is not on a devpts filesystem",
        ));
    }
    sys::pty_unlock(master.as_fd()).map_err(sys::err("console unlock pty"))?;
    let n = sys::pty_number(master.as_fd()).map_err(sys::err("console pty number"))?;
    let slave_path = format!("/dev/pts/{n}");
    // TIOCGPTPEER opens the slave through the master: no path lookup to race.
    let slave = sys::pty_peer(master.as_fd(), flags | libc::O_CLOEXEC)
        .map_err(sys::err("console open pty slave"))?;
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        sys::set_winsize(slave.as_fd(), &ws)
            .map_err(sys::err("process.consoleSize: TIOCSWINSZ"))?;
    }
    if console {
        bind_console(&slave)?;
    }
    let iov = [IoSlice::new(slave_path.as_bytes())];
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        console_socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(err("send pty master"))?;
    drop(master);
    nix::unistd::setsid().map_err(err("setsid"))?;
    sys::set_controlling_tty(slave.as_fd())
        .map_err(sys::err("console set controlling terminal"))?;
    for fd in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), fd).map_err(err("dup2 pty"))?;
    }
    Ok(())
}

/// Bind the pty slave onto /dev/console (created as an empty file first).
/// CVE-2025-52565: the target is opened without following any symlink and
/// must be a regular file or character device that is not on procfs or
/// sysfs, so a hostile /dev cannot send the bind onto a procfs file.
fn bind_console(slave: &OwnedFd) -> Result<(), TtyError> {
    let root = sys::openat2(sys::cwd(), c"/", libc::O_PATH | libc::O_DIRECTORY, 0, 0)
        .map_err(err("open /"))?;
    let no_links = sys::RESOLVE_NO_SYMLINKS;
    let dev = resolve::open_in_root(
        root.as_fd(),
        Path::new("/dev"),
        libc::O_PATH | libc::O_DIRECTORY,
        no_links,
    )
    .map_err(err("open /dev"))?;
    match resolve::mknod_file(dev.as_fd(), c"console") {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(err("create /dev/console")(e)),
    }
    let target = sys::openat2(
        dev.as_fd(),
        c"console",
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        no_links | sys::RESOLVE_BENEATH,
    )
    .map_err(err("open /dev/console"))?;
    let st = resolve::fstat(target.as_fd()).map_err(err("stat /dev/console"))?;
    let kind = st.st_mode & libc::S_IFMT;
    let magic = resolve::fs_magic(target.as_fd()).map_err(err("statfs /dev/console"))?;
    if (kind != libc::S_IFREG && kind != libc::S_IFCHR)
        || magic == resolve::PROC_SUPER_MAGIC
        || magic == SYSFS_MAGIC
    {
        return Err(TtyError::Usage(
            "/dev/console in the container is not a plain file or device; refusing to mount the console there",
        ));
    }
    let tree = sys::open_tree(
        slave.as_fd(),
        c"",
        sys::OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32,
    )
    .map_err(err("open_tree pty"))?;
    sys::move_mount_fd(tree.as_fd(), target.as_fd()).map_err(err("bind /dev/console"))
}

const SYSFS_MAGIC: i64 = 0x6265_6572;
const DEVPTS_MAGIC: i64 = 0x1cd1;
