//! The exec trampoline (CVE-2019-5736, by construction).
//!
//! Init and exec'd processes are clones of the runtime, so until their
//! final execve `/proc/self/exe` is the host's runtime binary. If that
//! execve went straight to the user's program, a hostile image could name
//! the runtime as the thing to run: `process.args[0]` of `/proc/self/exe`,
//! a symlink to it, a `#!/proc/self/exe` script, or an ELF whose
//! interpreter is `/proc/self/exe`. The kernel resolves all of those in
//! the exec'ing process, whose exe is the runtime: the runtime's binary
//! would then run as a container process (with the image's own dynamic
//! loader and libraries, since the binary is dynamically linked) and that
//! process could open its own `/proc/self/exe` and write to the host's
//! runtime once it is no longer busy.
//!
//! So the runtime never execve's a path the container controls. It
//! execveat's a tiny static program held in a sealed memfd (this module)
//! and the trampoline execve's the user's program. Whatever the kernel
//! resolves during *that* execve sees the trampoline as `/proc/self/exe`:
//! a sealed, per-process memfd that nothing can write to and that is not
//! the runtime. The trampoline refuses to run unless its `argv[0]` is the
//! marker the runtime passes, so running it as an interpreter (how a
//! `#!/proc/self/exe` script would reach it) exits 127 instead of looping.
//!
//! This is not a copy of the runtime (the project never copies or re-execs
//! its own binary per container): the program is 231
//! bytes, written to a memfd per init or exec and run once.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// x86_64 code, from this source (`as`, Intel syntax):
///
/// ```text
/// _start:
///   mov rcx, [rsp]            ; argc
///   cmp rcx, 2
///   jb 1f
///   mov rax, [rsp+8]          ; argv[0] must be the marker "\x01"
///   cmp word ptr [rax], 1
///   jne 1f
///   mov rdi, [rsp+16]         ; path = argv[1]
///   lea rsi, [rsp+24]         ; argv = &argv[2]
///   lea rdx, [rsp+rcx*8+16]   ; envp
///   mov eax, 59               ; execve
///   syscall
/// 1:
///   mov edi, 127
///   mov eax, 231              ; exit_group(127)
///   syscall
/// ```
#[cfg(target_arch = "x86_64")]
const CODE: [u8; 55] = [
    0x48, 0x8b, 0x0c, 0x24, 0x48, 0x83, 0xf9, 0x02, 0x72, 0x21, 0x48, 0x8b, 0x44, 0x24, 0x08, 0x66,
    0x83, 0x38, 0x01, 0x75, 0x16, 0x48, 0x8b, 0x7c, 0x24, 0x10, 0x48, 0x8d, 0x74, 0x24, 0x18, 0x48,
    0x8d, 0x54, 0xcc, 0x10, 0xb8, 0x3b, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xbf, 0x7f, 0x00, 0x00, 0x00,
    0xb8, 0xe7, 0x00, 0x00, 0x00, 0x0f, 0x05,
];

#[cfg(target_arch = "x86_64")]
const EM_MACHINE: u16 = 0x3e;

// Elsewhere there is no trampoline yet: `prepare` says so and the caller
// execs directly.
#[cfg(not(target_arch = "x86_64"))]
const CODE: [u8; 0] = [];
#[cfg(not(target_arch = "x86_64"))]
const EM_MACHINE: u16 = 0;

const EHDR: usize = 64;
const PHDR: usize = 56;
const HEADERS: usize = EHDR + 2 * PHDR;
const BASE: u64 = 0x10000;
const LEN: usize = HEADERS + CODE.len();

const fn put(mut b: [u8; LEN], at: usize, v: u64, n: usize) -> [u8; LEN] {
    let mut i = 0;
    while i < n {
        b[at + i] = (v >> (8 * i)) as u8;
        i += 1;
    }
    b
}

/// A static ELF64 executable: one R+X load segment covering the file (and a
/// non-executable stack), entry at the code.
const fn image() -> [u8; LEN] {
    let mut b = [0u8; LEN];
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI.
    b[0] = 0x7f;
    b[1] = b'E';
    b[2] = b'L';
    b[3] = b'F';
    b[4] = 2;
    b[5] = 1;
    b[6] = 1;
    b = put(b, 16, 2, 2); // e_type = ET_EXEC
    b = put(b, 18, EM_MACHINE as u64, 2);
    b = put(b, 20, 1, 4); // e_version
    b = put(b, 24, BASE + HEADERS as u64, 8); // e_entry
    b = put(b, 32, EHDR as u64, 8); // e_phoff
    b = put(b, 52, EHDR as u64, 2); // e_ehsize
    b = put(b, 54, PHDR as u64, 2); // e_phentsize
    b = put(b, 56, 2, 2); // e_phnum
                          // PT_LOAD, PF_R | PF_X, the whole file at BASE.
    let p = EHDR;
    b = put(b, p, 1, 4);
    b = put(b, p + 4, 5, 4);
    b = put(b, p + 8, 0, 8);
    b = put(b, p + 16, BASE, 8);
    b = put(b, p + 24, BASE, 8);
    b = put(b, p + 32, LEN as u64, 8);
    b = put(b, p + 40, LEN as u64, 8);
    b = put(b, p + 48, 0x1000, 8);
    // PT_GNU_STACK, PF_R | PF_W.
    let p = EHDR + PHDR;
    b = put(b, p, 0x6474_e551, 4);
    b = put(b, p + 4, 6, 4);
    b = put(b, p + 48, 16, 8);
    let mut i = 0;
    while i < CODE.len() {
        b[HEADERS + i] = CODE[i];
        i += 1;
    }
    b
}

static IMAGE: [u8; LEN] = image();

/// The marker `argv[0]` the trampoline requires.
const MARKER: &CStr = c"\x01";

const MFD_CLOEXEC: libc::c_uint = 0x1;
const MFD_ALLOW_SEALING: libc::c_uint = 0x2;
/// Linux 6.3+: ask for an executable memfd explicitly (vm.memfd_noexec).
const MFD_EXEC: libc::c_uint = 0x10;

/// A sealed, close-on-exec memfd holding the trampoline.
pub fn create() -> Result<OwnedFd, Errno> {
    let name = c"oxrun-exec-trampoline";
    let mut flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC;
    let fd = loop {
        let f = nix::sys::memfd::MemFdCreateFlag::from_bits_retain(flags);
        match nix::sys::memfd::memfd_create(name, f) {
            Ok(fd) => break fd,
            // Kernels before 6.3 do not know MFD_EXEC (and make memfds executable).
            Err(Errno::EINVAL) if flags & MFD_EXEC != 0 => flags &= !MFD_EXEC,
            Err(e) => return Err(e),
        }
    };
    let mut off = 0;
    while off < IMAGE.len() {
        off += nix::unistd::write(&fd, &IMAGE[off..])?;
    }
    use nix::fcntl::SealFlag;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_ADD_SEALS(seals))?;
    Ok(fd)
}

/// The trampoline for a process about to run its last set-up steps, made
/// before its seccomp filter is loaded. `None` when it cannot be used: on
/// an architecture without one, or when `seccomp` would not let the
/// process execveat it (then the caller execs directly and should warn).
///
/// The fd is placed at `first_free` or above (3 + preserve_fds), so that
/// it can never be one of the fds handed to the container.
pub fn prepare(
    seccomp: Option<&crate::seccomp::Filter>,
    first_free: u32,
) -> Result<Option<OwnedFd>, Errno> {
    if CODE.is_empty() {
        return Ok(None);
    }
    let made = create()?;
    let min = libc::c_int::try_from(first_free).map_err(|_| Errno::EBADF)?;
    // SAFETY: fcntl on an fd we own; the new fd is ours and close-on-exec.
    let fd = unsafe { libc::fcntl(made.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if fd < 0 {
        return Err(Errno::last());
    }
    drop(made);
    // SAFETY: F_DUPFD_CLOEXEC just gave us this fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let args = [
        fd.as_raw_fd() as u64,
        0,
        0,
        0,
        libc::AT_EMPTY_PATH as u64,
        0,
    ];
    if seccomp.is_some_and(|f| !f.allows(libc::SYS_execveat as u32, args)) {
        return Ok(None);
    }
    Ok(Some(fd))
}

/// What to warn about when [`prepare`] gives `None` with a filter.
pub const NO_TRAMPOLINE: &str = "linux.seccomp does not allow execveat(2): the container process is exec'd without the exec trampoline, so a hostile image could run the runtime binary (CVE-2019-5736); allow execveat to close this";

/// execveat the trampoline, which execve's `path` with `args` and `env`.
/// Returns only on failure.
pub fn exec(tramp: BorrowedFd<'_>, path: &CStr, args: &[CString], env: &[CString]) -> Errno {
    let mut argv: Vec<*const libc::c_char> = Vec::with_capacity(args.len() + 3);
    argv.push(MARKER.as_ptr());
    argv.push(path.as_ptr());
    argv.extend(args.iter().map(|a| a.as_ptr()));
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: NUL-terminated arrays of pointers to C strings that outlive
    // the call; the empty path with AT_EMPTY_PATH executes the fd itself.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            tramp.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Errno::last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_is_a_sane_elf() {
        assert_eq!(&IMAGE[..4], b"\x7fELF");
        assert_eq!(IMAGE.len(), LEN);
        let entry = u64::from_le_bytes(IMAGE[24..32].try_into().expect("8 bytes"));
        assert_eq!(entry, BASE + HEADERS as u64);
    }

    /// Run the trampoline (through /proc/self/fd, as a plain child): with
    /// the marker it must exec `/bin/sh -c 'exit 7'`, without it exit 127.
    #[test]
    fn trampoline_execs_and_refuses_without_marker() {
        use std::os::unix::process::CommandExt;
        let fd = create().expect("memfd");
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let status = |argv0: &str, rest: &[&str]| {
            std::process::Command::new(&path)
                .arg0(argv0)
                .args(rest)
                .env_clear()
                .status()
                .expect("spawn")
                .code()
        };
        assert_eq!(status("\x01", &["/bin/sh", "sh", "-c", "exit 7"]), Some(7));
        assert_eq!(
            status("/proc/self/exe", &["/bin/sh", "-c", "exit 7"]),
            Some(127)
        );
        assert_eq!(status("\x01", &[]), Some(127));
        // Sealed: no write.
        // SAFETY: pwrite of one byte from a static buffer to an fd we own.
        let w = unsafe { libc::pwrite(fd.as_raw_fd(), c"x".as_ptr().cast(), 1, 0) };
        assert_eq!(w, -1);
    }
}
