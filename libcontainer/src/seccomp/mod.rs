//! OCI `linux.seccomp` compiled in-process to a classic BPF program, and
//! loaded (for `SCMP_ACT_NOTIFY`, with the listener fd handed to the
//! profile's `listenerPath`).
//!
//! Layout: dispatch on `seccomp_data.arch` (x86_64 and x32 share the x86_64
//! audit arch and are told apart by the syscall number's x32 bit, i386 has
//! its own), then per arch a binary search over ranges of syscall numbers
//! (like libseccomp's optimize level 2, but over ranges, so a run of
//! numbers with the same outcome costs one comparison) down to the block of
//! the syscall: its rules in spec order (conditional ones first), falling
//! back to the default action. Identical blocks and `ret`s are shared.
//!
//! The native ABI (x86_64) is always filtered, listed or not, as libseccomp
//! does. Any other ABI the profile does not list gets ENOSYS for every
//! syscall, so a 32-bit `int 0x80` can never slip past rules written for
//! x86_64; numbers
//! that are no syscall at all get ENOSYS too unless the default allows (as
//! runc does, so a libc probing a syscall newer than the profile falls
//! back instead of failing with the default errno).

pub mod bpf;
mod compile;
pub mod extra;
mod load;
mod notify;
pub mod profile;
pub mod tables;

pub use compile::{build, x86_64_nr};

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Mutex;

use nix::errno::Errno;
use oci_spec::runtime::LinuxSeccomp;

use bpf::Insn;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("linux.seccomp.{field}: {msg}")]
    Invalid { field: String, msg: String },
    #[error("linux.seccomp: the filter has {0} instructions, more than the kernel's 4096")]
    TooLong(usize),
    #[error("seccomp(SECCOMP_SET_MODE_FILTER, flags {flags:#x}): {errno}")]
    Load { flags: u32, errno: Errno },
    /// runc's words ("failed to connect with seccomp agent"), which users
    /// and scripts look for, after the field.
    #[error(
        "linux.seccomp.listenerPath: failed to connect with seccomp agent at {path}: {source}"
    )]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("linux.seccomp.listenerPath: send the seccomp fd to {path}: {errno}")]
    Send { path: PathBuf, errno: Errno },
    #[error("seccomp profile {name}: {msg}")]
    Profile { name: String, msg: String },
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> SeccompError {
    SeccompError::Invalid {
        field: field.into(),
        msg: msg.into(),
    }
}

pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

pub const RET_KILL_THREAD: u32 = 0x0000_0000;
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;

pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;
pub const FLAG_NEW_LISTENER: u32 = 8;
pub const FLAG_TSYNC_ESRCH: u32 = 16;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// The kernel's limit on a classic BPF program (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// Every name `oxrun features` reports, as the spec spells them.
pub const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];
pub const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];
pub const ARCHS: &[&str] = &["SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"];
/// Flags the spec defines, all supported (WAIT_KILLABLE_RECV only on a
/// filter with SCMP_ACT_NOTIFY rules, as the kernel requires).
pub const FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// A compiled filter, ready to load.
#[derive(Debug)]
pub struct Filter {
    pub prog: Vec<Insn>,
    pub flags: u32,
    /// Syscall names no listed ABI knows (skipped, as runc does).
    pub unknown: Vec<String>,
    /// Set when a rule uses SCMP_ACT_NOTIFY.
    pub notify: Option<Notify>,
}

/// Where the listener fd of a NOTIFY filter goes.
#[derive(Debug)]
pub struct Notify {
    pub listener_path: PathBuf,
    pub metadata: Option<String>,
    /// Connected by [`compile`] in the runtime, before the container's
    /// namespaces and root hide the path; taken and closed by `install`.
    conn: Mutex<Option<OwnedFd>>,
}

/// Compile the spec's seccomp section and, if it uses SCMP_ACT_NOTIFY,
/// connect to its `listenerPath` (the runtime calls this before clone, so
/// the path is resolved in the runtime's mount namespace, as runc does).
pub fn compile(s: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let f = build(s)?;
    if let Some(n) = &f.notify {
        let conn = std::os::unix::net::UnixStream::connect(&n.listener_path).map_err(|source| {
            SeccompError::Connect {
                path: n.listener_path.clone(),
                source,
            }
        })?;
        *n.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.into());
    }
    Ok(f)
}
