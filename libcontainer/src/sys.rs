//! Thin, safe wrappers over the Linux syscalls that `nix` does not cover:
//! clone3, openat2, the new mount API, pidfds, close_range, capset, keyctl,
//! setdomainname, seccomp(2), bpf(2) for cgroup device programs, the pty
//! ioctls, and kill(2)/signal(2) where nix's typed API cannot express the
//! call (real-time signal numbers; `signal` is `unsafe` in nix).
//!
//! This is the one place (besides code that runs between clone and execve,
//! the exec trampoline and fd ownership adoptions) where the crates call
//! libc directly.
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

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER1).
#[repr(C)]
#[derive(Debug, Default)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
    pub sched_util_min: u32,
    pub sched_util_max: u32,
}

/// sched_setattr(2) for the calling thread.
pub fn sched_setattr(attr: &SchedAttr) -> nix::Result<()> {
    // SAFETY: `attr` points at a live sched_attr whose size field is its size.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
    unit_result(ret)
}

/// ioprio_set(IOPRIO_WHO_PROCESS, 0, value): the calling process.
pub fn ioprio_set_self(value: u32) -> nix::Result<()> {
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, value) };
    unit_result(ret)
}

/// set_mempolicy(2) for the calling thread: `mode` with its flags, and
/// the node bitmap `nodes` (64 nodes per word), or none.
pub fn set_mempolicy(mode: i32, nodes: Option<&[u64]>) -> nix::Result<()> {
    let (ptr, maxnode) = match nodes {
        // The kernel counts one bit fewer than `maxnode` says.
        Some(n) => (n.as_ptr(), n.len() as libc::c_ulong * 64 + 1),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: `ptr` is null with maxnode 0, or points at `nodes`, which is
    // alive for the call and holds the (maxnode - 1) bits the kernel reads.
    let ret = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    unit_result(ret)
}

/// Close every fd from `first` up (close_range(2)).
pub fn close_from(first: u32) -> nix::Result<()> {
    // SAFETY: plain integer arguments; the caller owns no fd it still uses
    // in that range.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
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

/// kill(2) with a raw signal number: nix's `Signal` cannot name the
/// real-time signals (SIGRTMIN..SIGRTMAX) that `kill` and the runtime's
/// signal forwarding pass through.
pub fn kill(pid: i32, sig: i32) -> nix::Result<()> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::kill(pid, sig) };
    unit_result(ret as libc::c_long)
}

/// Reset `sig` to its default disposition (SIG_DFL).
pub fn default_signal(sig: nix::sys::signal::Signal) -> nix::Result<()> {
    // SAFETY: SIG_DFL installs no handler of ours, so nothing of this
    // program runs in signal context (what makes nix's `signal` unsafe).
    unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) }.map(drop)
}

/// setdomainname(2) (nix only has sethostname).
pub fn setdomainname(name: &[u8]) -> nix::Result<()> {
    // SAFETY: pointer and length of a live buffer.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    unit_result(ret as libc::c_long)
}

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): join (or create) the named
/// session keyring.
pub fn join_session_keyring(name: &CStr) -> nix::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    // SAFETY: a valid C string that outlives the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    unit_result(ret)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// capset(2) of the calling thread's effective, permitted and inheritable
/// sets (64-bit masks, `_LINUX_CAPABILITY_VERSION_3`).
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()> {
    let mut hdr = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and two data structs as capset(2) v3 expects; both outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    unit_result(ret)
}

/// One classic BPF instruction (`struct sock_filter`), as seccomp(2) takes.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog). Returns what the kernel
/// does: 0, or with `SECCOMP_FILTER_FLAG_NEW_LISTENER` a new listener fd
/// that the caller now owns. A program longer than `u16::MAX` (the kernel
/// allows 4096) fails with EINVAL.
pub fn seccomp_set_mode_filter(flags: u32, prog: &[SockFilter]) -> nix::Result<libc::c_long> {
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    let fprog = SockFprog {
        len: u16::try_from(prog.len()).map_err(|_| Errno::EINVAL)?,
        filter: prog.as_ptr(),
    };
    // SAFETY: fprog points at `prog`, which outlives the call; the kernel
    // checks the program before it loads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const SockFprog,
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    /// dst register in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;

#[repr(C)]
#[derive(Default)]
struct BpfProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct BpfAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct BpfQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct BpfGetIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The `#[repr(C)]` prefixes of `union bpf_attr` used here. Private: only
/// the typed wrappers below build them, so every pointer in one points at
/// a live buffer of the size given beside it.
trait BpfAttr {}
impl BpfAttr for BpfProgLoadAttr {}
impl BpfAttr for BpfAttachAttr {}
impl BpfAttr for BpfQueryAttr {}
impl BpfAttr for BpfGetIdAttr {}

fn bpf<T: BpfAttr>(cmd: libc::c_long, attr: &mut T) -> nix::Result<libc::c_long> {
    // SAFETY: `attr` is a live #[repr(C)] prefix of bpf_attr (see `BpfAttr`);
    // the kernel reads (and for QUERY writes) at most size_of::<T>() bytes,
    // and the buffers its pointers name outlive the call (the callers'
    // borrows).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// bpf(BPF_PROG_LOAD). With `log`, the verifier writes its log (level 1)
/// there.
pub fn bpf_prog_load(
    prog_type: u32,
    insns: &[BpfInsn],
    license: &CStr,
    name: [u8; 16],
    log: Option<&mut [u8]>,
) -> nix::Result<OwnedFd> {
    let mut attr = BpfProgLoadAttr {
        prog_type,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| Errno::E2BIG)?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    if let Some(log) = log {
        attr.log_level = 1;
        attr.log_size = u32::try_from(log.len()).unwrap_or(u32::MAX);
        attr.log_buf = log.as_mut_ptr() as u64;
    }
    fd_result(bpf(BPF_PROG_LOAD, &mut attr)?)
}

/// bpf(BPF_PROG_ATTACH) of `prog` to the cgroup `target`.
pub fn bpf_prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> nix::Result<()> {
    let mut attr = BpfAttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: flags,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// bpf(BPF_PROG_DETACH) of `prog` from the cgroup `target`.
pub fn bpf_prog_detach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> nix::Result<()> {
    let mut attr = BpfAttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

/// bpf(BPF_PROG_QUERY): ids of the programs attached to `target` go into
/// `ids`; returns the count the kernel reports (which may exceed
/// `ids.len()`).
pub fn bpf_prog_query(
    target: BorrowedFd<'_>,
    attach_type: u32,
    ids: &mut [u32],
) -> nix::Result<usize> {
    let mut attr = BpfQueryAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_type,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: u32::try_from(ids.len()).unwrap_or(u32::MAX),
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    Ok(attr.prog_cnt as usize)
}

/// bpf(BPF_PROG_GET_FD_BY_ID).
pub fn bpf_prog_get_fd_by_id(id: u32) -> nix::Result<OwnedFd> {
    let mut attr = BpfGetIdAttr {
        id,
        ..Default::default()
    };
    fd_result(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?)
}

/// The pty and terminal ioctls, typed by nix's macros (which make `unsafe`
/// functions taking raw fds; the safe wrappers below pass borrowed ones).
mod tty_ioctl {
    nix::ioctl_write_ptr_bad!(set_lock, libc::TIOCSPTLCK, libc::c_int);
    nix::ioctl_read_bad!(get_number, libc::TIOCGPTN, libc::c_uint);
    nix::ioctl_write_int_bad!(open_peer, libc::TIOCGPTPEER);
    nix::ioctl_write_int_bad!(set_ctty, libc::TIOCSCTTY);
    nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, libc::winsize);
    nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, libc::winsize);
}

/// TIOCSPTLCK 0: unlock the slave of a pty master.
pub fn pty_unlock(master: BorrowedFd<'_>) -> nix::Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int we own.
    unsafe { tty_ioctl::set_lock(master.as_raw_fd(), &unlock) }.map(drop)
}

/// TIOCGPTN: the pty number of a master (its slave is /dev/pts/<n>).
pub fn pty_number(master: BorrowedFd<'_>) -> nix::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int we own.
    unsafe { tty_ioctl::get_number(master.as_raw_fd(), &mut n) }?;
    Ok(n)
}

/// TIOCGPTPEER: open the slave of `master` through it (no path lookup),
/// with open(2) `flags`.
pub fn pty_peer(master: BorrowedFd<'_>, flags: libc::c_int) -> nix::Result<OwnedFd> {
    // SAFETY: an integer argument; the result is a new fd.
    let fd = unsafe { tty_ioctl::open_peer(master.as_raw_fd(), flags) }?;
    fd_result(fd as libc::c_long)
}

/// TIOCSCTTY 0: make the terminal `fd` the controlling terminal.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: an integer argument.
    unsafe { tty_ioctl::set_ctty(fd.as_raw_fd(), 0) }.map(drop)
}

/// TIOCGWINSZ.
pub fn get_winsize(fd: BorrowedFd<'_>) -> nix::Result<libc::winsize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize we own.
    unsafe { tty_ioctl::get_winsize(fd.as_raw_fd(), &mut ws) }?;
    Ok(ws)
}

/// TIOCSWINSZ.
pub fn set_winsize(fd: BorrowedFd<'_>, ws: &libc::winsize) -> nix::Result<()> {
    // SAFETY: TIOCSWINSZ reads a winsize that outlives the call.
    unsafe { tty_ioctl::set_winsize(fd.as_raw_fd(), ws) }.map(drop)
}
