//! The last steps of every process we start in a container, shared by the
//! container's init (after `start`) and by `exec`: stdio, environment and
//! executable lookup, then rlimits, keyring, cwd, user, capabilities,
//! no_new_privs, fd hygiene and seccomp, and finally execve (through the
//! trampoline, see trampoline.rs).

use std::ffi::CString;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::Process;

use super::error::InitError;
use crate::sys::err as sys_err;
use crate::{capabilities, rlimits, sys, user};

type Result<T> = std::result::Result<T, InitError>;

/// A process that never returns: it execve's or reports an error.
pub(crate) enum Never {}

/// In a new child: make `fds` (all >= 3, close-on-exec) its stdin, stdout
/// and stderr. dup2 clears close-on-exec on the copies.
pub(crate) fn install_stdio(fds: [std::os::fd::RawFd; 3]) -> std::result::Result<(), Errno> {
    for (target, fd) in (0..).zip(fds) {
        nix::unistd::dup2(fd, target)?;
    }
    Ok(())
}

pub(crate) fn environment(process: &Process) -> Vec<String> {
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user::home_of(process.user().uid())));
    }
    env
}

/// Find args[0] like execvp would, with the container's PATH, so a typo is a
/// create-time error (runc: `exec: "x": executable file not found in $PATH`).
pub(crate) fn find_executable(process: &Process, env: &[String]) -> Result<CString> {
    let arg0 = process
        .args()
        .as_ref()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_default();
    let to_c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| InitError::Msg(format!("process.args[0]: {arg0:?} has a NUL byte")))
    };
    if arg0.contains('/') {
        let p = if Path::new(&arg0).is_absolute() {
            PathBuf::from(&arg0)
        } else {
            process.cwd().join(&arg0)
        };
        if !p.exists() {
            return Err(InitError::Msg(format!(
                "exec: {arg0:?}: no such file or directory"
            )));
        }
        return to_c(&p);
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(dir).join(&arg0);
        let c = to_c(&cand)?;
        if nix::unistd::access(c.as_c_str(), nix::unistd::AccessFlags::X_OK).is_ok()
            && !cand.is_dir()
        {
            return Ok(c);
        }
    }
    Err(InitError::Msg(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

/// What `finalize` needs besides the process: shared by init and exec.
pub(crate) struct Finalize<'a> {
    pub id: &'a str,
    pub personality: Option<&'a oci_spec::runtime::LinuxPersonality>,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    /// This process's pid as the runtime sees it, and the container's state
    /// JSON: what a seccomp notify agent is told (`Filter::install`).
    pub pid: i32,
    pub state: &'a [u8],
}

/// The last steps before execve (init after `start`, and exec): rlimits,
/// keyring, cwd, user, caps, no_new_privs, signal state, fd hygiene, seccomp.
pub(crate) fn finalize(
    args: &Finalize<'_>,
    process: &Process,
    cwd: &Path,
    caps: Option<&capabilities::CapSets>,
) -> Result<()> {
    if let Some(rl) = process.rlimits() {
        rlimits::apply(rl)?;
    }
    if let Some(p) = args.personality {
        // PER_LINUX is 0 and PER_LINUX32 is 8 (<linux/personality.h>);
        // nix names only the flag bits.
        let domain = match p.domain() {
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0,
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 8,
        };
        nix::sys::personality::set(nix::sys::personality::Persona::from_bits_retain(domain))
            .map_err(sys_err("linux.personality"))?;
    }
    if !args.no_new_keyring {
        let name = CString::new(format!("_ses.{}", args.id)).unwrap_or_default();
        match sys::join_session_keyring(&name) {
            Ok(()) | Err(Errno::ENOSYS | Errno::EPERM | Errno::EACCES) => {}
            Err(e) => return Err(sys_err("join session keyring")(e).into()),
        }
    }
    if process
        .apparmor_profile()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        // Never silently unconfined: a host with AppArmor would otherwise
        // run the process without the profile it asks for.
        return Err(InitError::Msg(
            if Path::new("/sys/kernel/security/apparmor").exists() {
                "process.apparmorProfile: oxrun does not apply AppArmor profiles yet"
            } else {
                "process.apparmorProfile: AppArmor is not enabled on this host"
            }
            .into(),
        ));
    }
    if process
        .selinux_label()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(InitError::Msg(
            "process.selinuxLabel: SELinux is not supported by oxrun on this host".into(),
        ));
    }
    nix::unistd::chdir(cwd).map_err(sys_err(format!("process.cwd {}", cwd.display())))?;
    let now = nix::unistd::getcwd().map_err(sys_err("getcwd"))?;
    if !now.is_absolute() {
        return Err(InitError::Msg(format!(
            "process.cwd {} is outside the container",
            cwd.display()
        )));
    }
    // Hygiene first, so that as few syscalls as possible run under a filter
    // that is loaded before the capability drop.
    let u = process.user();
    give_stdio_to(u.uid())?;
    // Before the capabilities go: real-time policies need CAP_SYS_NICE.
    if let Some(s) = process.scheduler() {
        super::sched::apply_scheduler(s)?;
    }
    if let Some(p) = process.io_priority() {
        super::sched::apply_io_priority(p)?;
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        u.umask().unwrap_or(0o022) as libc::mode_t,
    ));
    // Signals: nothing blocked, nothing ignored that the runtime ignored.
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .map_err(sys_err("sigprocmask"))?;
    // SIGPIPE is ignored by the Rust runtime: back to the default.
    let _ = sys::default_signal(nix::sys::signal::Signal::SIGPIPE);
    // Only stdio and the preserved fds survive execve (CVE-2024-21626).
    sys::cloexec_from(3 + args.preserve_fds).map_err(sys_err("close_range"))?;
    for fd in 3..3 + args.preserve_fds as i32 {
        // Clearing FD_CLOEXEC on an fd number; harmless if it is not open.
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        );
    }
    let nnp = process.no_new_privileges().unwrap_or(false);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, so it goes
    // in before the capabilities are dropped (as runc does); with it, last.
    if let (Some(f), false) = (args.seccomp, nnp) {
        f.install(args.pid, args.state)?;
    }
    if let Some(c) = caps {
        c.apply_bounding()?;
    }
    user::switch(
        u.uid(),
        u.gid(),
        u.additional_gids().as_deref().unwrap_or(&[]),
    )?;
    if let Some(c) = caps {
        c.apply_rest()?;
    }
    if nnp {
        nix::sys::prctl::set_no_new_privs().map_err(sys_err("process.noNewPrivileges"))?;
        if let Some(f) = args.seccomp {
            f.install(args.pid, args.state)?;
        }
    }
    Ok(())
}

/// Make stdio (a console pty, or pipes and fifos the caller created) owned
/// by the process's uid, so a non-root process can use its own terminal,
/// as runc does: the gid is kept, /dev/null and fds already owned by `uid`
/// are left alone, and an owner or group the user namespace does not map
/// (EINVAL, EPERM) or a read-only /dev (EROFS) leaves the fd as it is.
fn give_stdio_to(uid: u32) -> Result<()> {
    let null = nix::sys::stat::stat("/dev/null").ok().map(|s| s.st_rdev);
    for fd in 0..3 {
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        let is_null = st.st_mode & libc::S_IFMT == libc::S_IFCHR && Some(st.st_rdev) == null;
        if st.st_uid == uid || is_null {
            continue;
        }
        match nix::unistd::fchown(
            fd,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(st.st_gid)),
        ) {
            Ok(()) | Err(Errno::EINVAL | Errno::EPERM | Errno::EROFS) => {}
            Err(e) => return Err(sys_err(format!("chown stdio fd {fd} to uid {uid}"))(e).into()),
        }
    }
    Ok(())
}

/// execve the user's program: through the trampoline when there is one
/// (CVE-2019-5736, see trampoline.rs), so that nothing the kernel resolves
/// on the way can name this binary.
pub(crate) fn exec_program(
    exe: &CString,
    process: &Process,
    env: &[String],
    tramp: Option<BorrowedFd<'_>>,
) -> Result<Never> {
    let args: Vec<CString> = process
        .args()
        .iter()
        .flatten()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| InitError::Msg("process.args: NUL byte".into()))?;
    let env: Vec<CString> = env
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| InitError::Msg("process.env: NUL byte".into()))?;
    let e = match tramp {
        Some(t) => super::trampoline::exec(t, exe, &args, &env),
        None => nix::unistd::execve(exe, &args, &env)
            .err()
            .unwrap_or(Errno::EINVAL),
    };
    Err(InitError::Sys(crate::sys::SysError::new(
        format!("exec {:?}", exe),
        e,
    )))
}
