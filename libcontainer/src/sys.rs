//! Thin, safe wrappers over the Linux syscalls that `nix` does not cover:
//! clone3, openat2, the new mount API, pidfds and close_range.
//!
//! Every wrapper returns `nix::Result`; callers attach context with
//! [`SysError`] (through [`err`] / [`err_at`]), the one syscall error type
//! the modules share.

use std::borrow::Cow;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// A failed system call, with the context every caller needs in its
/// message: what was attempted, on which path (if any), and the errno.
/// Modules wrap it in their own error enum (`#[from]`), so the message
/// reads `<op> <path>: <errno>` wherever it surfaces.
#[derive(Debug, thiserror::Error)]
#[error("{op}{}: {errno}", path_suffix(.path))]
pub struct SysError {
    pub op: Cow<'static, str>,
    pub path: Option<PathBuf>,
    pub errno: Errno,
}

fn path_suffix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}

impl SysError {
    pub fn new(op: impl Into<Cow<'static, str>>, errno: Errno) -> Self {
        SysError {
            op: op.into(),
            path: None,
            errno,
        }
    }

    pub fn at(op: impl Into<Cow<'static, str>>, path: impl Into<PathBuf>, errno: Errno) -> Self {
        SysError {
            op: op.into(),
            path: Some(path.into()),
            errno,
        }
    }

    /// From a std I/O error (EIO if it carries no errno).
    pub fn io(
        op: impl Into<Cow<'static, str>>,
        path: impl Into<PathBuf>,
        e: &std::io::Error,
    ) -> Self {
        Self::at(
            op,
            path,
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    }
}

/// `map_err` adapter: `.map_err(sys::err("setns"))?`.
pub fn err(op: impl Into<Cow<'static, str>>) -> impl FnOnce(Errno) -> SysError {
    let op = op.into();
    move |errno| SysError::new(op, errno)
}

/// `map_err` adapter with a path: `.map_err(sys::err_at("mount", &dest))?`.
pub fn err_at(
    op: impl Into<Cow<'static, str>>,
    path: impl AsRef<Path>,
) -> impl FnOnce(Errno) -> SysError {
    let (op, path) = (op.into(), path.as_ref().to_path_buf());
    move |errno| SysError::at(op, path, errno)
}

// openat2(2) resolve flags.
pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

// open_tree(2) / move_mount(2) / fsmount(2).
pub const OPEN_TREE_CLONE: u32 = 1;
pub const AT_RECURSIVE: u32 = 0x8000;
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
pub const FSCONFIG_SET_FLAG: u32 = 0;
pub const FSCONFIG_SET_STRING: u32 = 1;
pub const FSCONFIG_CMD_CREATE: u32 = 6;

// mount_setattr(2) attributes.
pub const MOUNT_ATTR_RDONLY: u64 = 0x01;
pub const MOUNT_ATTR_NOSUID: u64 = 0x02;
pub const MOUNT_ATTR_NODEV: u64 = 0x04;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x08;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x00;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
pub const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

#[repr(C)]
#[derive(Default)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// The attribute change for mount_setattr(2).
#[repr(C)]
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

/// `AT_FDCWD` as a borrowed fd, for the *at wrappers.
pub fn cwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is valid for every *at syscall and is never closed.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

fn fd_result(ret: libc::c_long) -> nix::Result<OwnedFd> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        // SAFETY: the kernel just returned this fd to us; nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
    }
}

fn unit_result(ret: libc::c_long) -> nix::Result<()> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// openat2(2). `O_CLOEXEC` is always added. With `RESOLVE_IN_ROOT` or
/// `RESOLVE_BENEATH`, a `..` walked while any rename or mount happens on the
/// system fails with EAGAIN (the kernel cannot prove it stayed inside); that
/// is retried, as openat2(2) advises, a bounded number of times.
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> nix::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve,
    };
    let scoped = resolve & (libc::RESOLVE_IN_ROOT | libc::RESOLVE_BENEATH) != 0;
    let mut attempts = 0;
    loop {
        // SAFETY: `how` and `path` outlive the call; the size matches the struct.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match fd_result(ret) {
            Err(Errno::EAGAIN) if scoped && attempts < 256 => attempts += 1,
            r => return r,
        }
    }
}

/// The result of `clone3` as seen by the caller.
pub enum CloneResult {
    Parent { pid: i32, pidfd: Option<OwnedFd> },
    Child,
}

/// clone3(2) without a new stack: behaves like fork(2) with extra flags.
///
/// # Safety
/// The caller must be single-threaded (as after fork), and the child must only
/// run code that is safe after fork and must end with `_exit`/`execve`.
pub unsafe fn clone3(flags: u64, cgroup_fd: Option<RawFd>) -> nix::Result<CloneResult> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags,
        // CLONE_PARENT children inherit our exit signal; clone3 wants 0 then.
        exit_signal: if flags & libc::CLONE_PARENT as u64 != 0 {
            0
        } else {
            libc::SIGCHLD as u64
        },
        ..Default::default()
    };
    if flags & CLONE_PIDFD != 0 {
        args.pidfd = &mut pidfd as *mut RawFd as u64;
    }
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: per this function's contract; `args` outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        r if r < 0 => Err(Errno::last()),
        0 => Ok(CloneResult::Child),
        pid => Ok(CloneResult::Parent {
            pid: pid as i32,
            // SAFETY: the kernel filled in a fresh pidfd that we now own.
            pidfd: (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) }),
        }),
    }
}

/// open_tree(2): a detached copy (`OPEN_TREE_CLONE`) of the mount at `path`.
pub fn open_tree(dirfd: BorrowedFd<'_>, path: &CStr, flags: u32) -> nix::Result<OwnedFd> {
    // SAFETY: `path` is a valid C string that outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            (flags | libc::O_CLOEXEC as u32) as libc::c_uint,
        )
    };
    fd_result(ret)
}

/// move_mount(2) from one fd to another (both with empty paths).
pub fn move_mount_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()> {
    let empty = c"";
    // SAFETY: both fds are valid for the call; the empty path is a static C string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            empty.as_ptr(),
            (MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) as libc::c_uint,
        )
    };
    unit_result(ret)
}

/// mount_setattr(2) on the mount referred to by `fd`.
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> nix::Result<()> {
    let empty = c"";
    let flags = libc::AT_EMPTY_PATH as u32 | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `attr` outlives the call and the size matches the struct.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags as libc::c_uint,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    unit_result(ret)
}

/// fsopen(2).
pub fn fsopen(fstype: &CStr) -> nix::Result<OwnedFd> {
    // SAFETY: `fstype` is a valid C string.
    let ret = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), 1 as libc::c_uint) }; // FSOPEN_CLOEXEC
    fd_result(ret)
}

/// fsconfig(2) with a string value (`value` None sets a flag).
pub fn fsconfig(fd: BorrowedFd<'_>, key: &CStr, value: Option<&CStr>) -> nix::Result<()> {
    let (cmd, v) = match value {
        Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
        None => (FSCONFIG_SET_FLAG, std::ptr::null()),
    };
    // SAFETY: key and value are valid C strings (or null for a flag).
    let ret = unsafe { libc::syscall(libc::SYS_fsconfig, fd.as_raw_fd(), cmd, key.as_ptr(), v, 0) };
    unit_result(ret)
}

/// fsconfig(FSCONFIG_CMD_CREATE) then fsmount(2), giving a detached mount fd.
pub fn fs_create_mount(fd: BorrowedFd<'_>, attrs: u64) -> nix::Result<OwnedFd> {
    // SAFETY: no pointers are passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    unit_result(ret)?;
    // SAFETY: no pointers are passed. FSMOUNT_CLOEXEC = 1.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fd.as_raw_fd(),
            1 as libc::c_uint,
            attrs as libc::c_uint,
        )
    };
    fd_result(ret)
}

/// pidfd_open(2).
pub fn pidfd_open(pid: i32) -> nix::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    fd_result(ret)
}

/// pidfd_send_signal(2).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> nix::Result<()> {
    // SAFETY: a null siginfo is allowed and means "as kill(2)".
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    unit_result(ret)
}

/// Mark every fd >= `first` close-on-exec.
pub fn cloexec_from(first: u32) -> nix::Result<()> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    unit_result(ret)
}

/// pivot_root(2).
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> nix::Result<()> {
    // SAFETY: valid C strings.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    unit_result(ret)
}

/// setns(2) with a raw nstype (0 = any).
pub fn setns(fd: BorrowedFd<'_>, nstype: i32) -> nix::Result<()> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::setns(fd.as_raw_fd(), nstype) };
    unit_result(ret as libc::c_long)
}

/// unshare(2) with raw flags.
pub fn unshare(flags: i32) -> nix::Result<()> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::unshare(flags) };
    unit_result(ret as libc::c_long)
}
