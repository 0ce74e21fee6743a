//! The container's init: the child of `clone3`, set up step by step in the
//! order runc and crun agree on, then blocked until `start`, then execve of
//! the user's program so that container PID 1 is the user's process.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use super::channel::{Channel, Msg};
use crate::cgroups::CgroupPaths;
use crate::namespaces::{self, Plan};
use crate::{capabilities, hooks, rlimits, rootfs, state, sys, tty, user};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Channel(#[from] super::channel::ChannelError),
    #[error(transparent)]
    Namespace(#[from] namespaces::NamespaceError),
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error(transparent)]
    Tty(#[from] tty::TtyError),
    #[error(transparent)]
    Caps(#[from] capabilities::CapError),
    #[error(transparent)]
    Rlimit(#[from] rlimits::RlimitError),
    #[error(transparent)]
    User(#[from] user::UserError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Sys(#[from] crate::sys::SysError),
    #[error("{0}")]
    Msg(String),
}

use crate::sys::err as sys_err;

type Result<T> = std::result::Result<T, InitError>;

/// Everything init needs, prepared by the parent before clone.
pub struct InitArgs<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub plan: &'a Plan,
    pub cgroups: &'a CgroupPaths,
    pub channel: &'a Channel,
    pub start_listener: &'a UnixListener,
    pub console: Option<&'a OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    pub idmapped: &'a crate::rootfs::idmap::Prepared,
    pub stdio: Option<[std::os::fd::RawFd; 3]>,
}

/// Entry point of the clone3 child on the single-clone path.
pub fn child_main(args: &InitArgs<'_>) -> ! {
    let err = match init(args) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = args.channel.send(&Msg::Error(err.to_string()));
    // SAFETY: _exit is always safe; we must not run the parent's atexit/destructors.
    unsafe { libc::_exit(1) }
}

/// Entry point of the intermediate child on the slow path: join namespaces by
/// path, unshare new ones (user first, so it owns the rest), write time
/// offsets, then fork the real init into the new pid/time namespaces.
pub fn intermediate_main(args: &InitArgs<'_>) -> ! {
    let r = (|| -> Result<i32> {
        expect_go(args.channel)?;
        args.plan.join_all()?;
        if args.plan.creates(LinuxNamespaceType::User) {
            namespaces::unshare(libc::CLONE_NEWUSER)?;
            args.channel.send(&Msg::NeedMaps)?;
            match args.channel.recv()? {
                Some(Msg::MapsDone) => {}
                other => return Err(InitError::Msg(format!("expected MapsDone, got {other:?}"))),
            }
            become_root()?;
        }
        namespaces::unshare(args.plan.new_flags & !libc::CLONE_NEWUSER)?;
        if args.plan.creates(LinuxNamespaceType::Time) {
            write_time_offsets(args.spec)?;
        }
        // SAFETY: we are single-threaded (a fresh clone of a single-threaded runtime).
        match unsafe { sys::clone3(libc::CLONE_PARENT as u64, None) }
            .map_err(sys_err("clone3 init"))?
        {
            sys::CloneResult::Child => child_main(args),
            sys::CloneResult::Parent { pid, .. } => Ok(pid),
        }
    })();
    let code = match r {
        Ok(pid) => args
            .channel
            .send(&Msg::InitPid(pid))
            .map(|_| 0)
            .unwrap_or(1),
        Err(e) => {
            let _ = args.channel.send(&Msg::Error(e.to_string()));
            1
        }
    };
    // SAFETY: see child_main.
    unsafe { libc::_exit(code) }
}

fn expect_go(ch: &Channel) -> Result<i32> {
    match ch.recv()? {
        Some(Msg::Go(pid)) => Ok(pid),
        Some(Msg::Error(e)) => Err(InitError::Msg(e)),
        other => Err(InitError::Msg(format!(
            "expected Go from the runtime, got {other:?}"
        ))),
    }
}

/// In a fresh user namespace, become its root so files we create are owned
/// by a mapped id.
fn become_root() -> Result<()> {
    let (u, g) = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
    nix::unistd::setresgid(g, g, g).map_err(sys_err("setresgid(0) in user namespace"))?;
    Ok(nix::unistd::setresuid(u, u, u).map_err(sys_err("setresuid(0) in user namespace"))?)
}

fn write_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offsets) = spec.linux().as_ref().and_then(|l| l.time_offsets().clone()) else {
        return Ok(());
    };
    let mut data = String::new();
    for (clock, off) in offsets {
        if clock != "monotonic" && clock != "boottime" {
            return Err(InitError::Msg(format!(
                "linux.timeOffsets: unknown clock {clock:?}"
            )));
        }
        data.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", data)
        .map_err(|e| InitError::Msg(format!("linux.timeOffsets: {e}")))
}

pub fn state_json(args_id: &str, status: &str, pid: i32, bundle: &Path, spec: &Spec) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ociVersion": state::OCI_VERSION,
        "id": args_id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "annotations": spec.annotations().clone().unwrap_or_default(),
    }))
    .unwrap_or_default()
}

pub(crate) enum Never {}

fn init(args: &InitArgs<'_>) -> Result<Never> {
    if let Some(fds) = args.stdio {
        super::install_stdio(fds).map_err(sys_err("set up stdio"))?;
    }
    let host_pid = expect_go(args.channel)?;
    if args.plan.single_clone() {
        if args.plan.creates(LinuxNamespaceType::User) {
            become_root()?;
        }
        if args.plan.creates(LinuxNamespaceType::Cgroup) {
            namespaces::unshare(libc::CLONE_NEWCGROUP)?;
        }
    }
    let process = args
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| InitError::Msg("process: missing".into()))?;
    // Modes of what we create (devices, dirs) are exactly as asked.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());

    if let Some(h) = args.spec.hostname() {
        nix::unistd::sethostname(h).map_err(sys_err("hostname: sethostname"))?;
    }
    if let Some(d) = args.spec.domainname() {
        // SAFETY: pointer and length of a live buffer.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(sys_err("domainname: setdomainname")(Errno::last()).into());
        }
    }

    let mut ctx = rootfs::Context {
        spec: args.spec,
        bundle: args.bundle,
        rootfs: args.rootfs,
        cgroups: args.cgroups,
        userns: args.plan.has(LinuxNamespaceType::User),
        cgroupns: args.plan.has(LinuxNamespaceType::Cgroup),
        idmapped: args.idmapped,
        warnings: Vec::new(),
    };
    // Without a mount namespace the container shares the caller's mounts:
    // nothing is mounted, the process is only chrooted (create warns).
    let own_mounts = args.plan.has(LinuxNamespaceType::Mount);
    let root = if own_mounts {
        rootfs::prepare(&mut ctx)?
    } else {
        let path = CString::new(args.rootfs.as_os_str().as_bytes())
            .map_err(|_| InitError::Msg("root.path: NUL byte".into()))?;
        sys::openat2(sys::cwd(), &path, libc::O_PATH | libc::O_DIRECTORY, 0, 0)
            .map_err(sys_err(format!("open {}", args.rootfs.display())))?
    };

    let runtime_hooks = !hooks::of_kind(args.spec, "prestart").is_empty()
        || !hooks::of_kind(args.spec, "createRuntime").is_empty();
    if runtime_hooks {
        args.channel.send(&Msg::RunHooks)?;
        match args.channel.recv()? {
            Some(Msg::HooksDone) => {}
            other => return Err(InitError::Msg(format!("expected HooksDone, got {other:?}"))),
        }
    }
    let creating = state_json(args.id, "creating", host_pid, args.bundle, args.spec);
    hooks::run(args.spec, "createContainer", &creating)?;

    // Create the cwd now: the root may become read-only in finish().
    rootfs::resolve::mkdir_all(root.as_fd(), process.cwd(), 0o755)
        .map_err(sys_err(format!("process.cwd {}", process.cwd().display())))?;
    if own_mounts {
        rootfs::pivot(root.as_fd(), args.no_pivot)?;
        drop(root);
        rootfs::finish(args.spec)?;
    } else {
        nix::unistd::fchdir(root.as_raw_fd()).map_err(sys_err("fchdir rootfs"))?;
        nix::unistd::chroot(".").map_err(sys_err("chroot rootfs"))?;
        nix::unistd::chdir("/").map_err(sys_err("chdir /"))?;
    }

    if process.terminal().unwrap_or(false) {
        let sock = args.console.ok_or_else(|| {
            InitError::Msg("process.terminal is true but no --console-socket was given".into())
        })?;
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        tty::setup(sock, size, true)?;
    }
    let cwd = process.cwd().clone();
    let env = environment(process);
    let exe = find_executable(process, &env)?;
    // Made now, before the filter is loaded: see trampoline.rs.
    let tramp = super::trampoline::prepare(args.seccomp, 3 + args.preserve_fds)
        .map_err(sys_err("exec trampoline"))?;
    if tramp.is_none() && args.seccomp.is_some() {
        ctx_warn(args.channel, super::trampoline::NO_TRAMPOLINE.into())?;
    }
    let caps = match process.capabilities() {
        Some(c) => {
            let mut sets = capabilities::CapSets::from_spec(c)?;
            for name in sets.restrict_to_grantable() {
                ctx_warn(
                    args.channel,
                    format!(
                        "process.capabilities: {name} is not in this host's bounding set; left out"
                    ),
                )?;
            }
            Some(sets)
        }
        None => None,
    };
    for w in std::mem::take(&mut ctx.warnings) {
        ctx_warn(args.channel, w)?;
    }

    // rlimits now, so that an impossible limit fails `create` (as in runc),
    // not `start`; finalize sets them again for exec's sake.
    if let Some(rl) = process.rlimits() {
        rlimits::apply(rl)?;
    }
    args.channel.send(&Msg::Ready)?;
    // Wait for `start`. From here on, errors go back over that connection.
    let mut conn = loop {
        match args.start_listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(InitError::Msg(format!("accept start connection: {e}"))),
        }
    };
    let mut b = [0u8; 1];
    let _ = conn.read(&mut b);
    let result = (|| -> Result<Never> {
        let created = state_json(args.id, "created", host_pid, args.bundle, args.spec);
        hooks::run(args.spec, "startContainer", &created)?;
        let fin = Finalize {
            id: args.id,
            personality: args
                .spec
                .linux()
                .as_ref()
                .and_then(|l| l.personality().as_ref()),
            no_new_keyring: args.no_new_keyring,
            preserve_fds: args.preserve_fds,
            seccomp: args.seccomp,
            pid: host_pid,
            state: &created,
        };
        finalize(&fin, process, &cwd, caps.as_ref())?;
        exec(&exe, process, &env, tramp.as_ref().map(|t| t.as_fd()))
    })();
    let e = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = conn.write_all(e.to_string().as_bytes());
    Err(e)
}

fn ctx_warn(ch: &Channel, msg: String) -> Result<()> {
    ch.send(&Msg::Warning(msg))?;
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
        // SAFETY: valid C string.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 && !cand.is_dir() {
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
        // SAFETY: KEYCTL_JOIN_SESSION_KEYRING with a valid C string name.
        let r = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                1, /* KEYCTL_JOIN_SESSION_KEYRING */
                name.as_ptr(),
            )
        };
        if r < 0 && !matches!(Errno::last(), Errno::ENOSYS | Errno::EPERM | Errno::EACCES) {
            return Err(sys_err("join session keyring")(Errno::last()).into());
        }
    }
    if process
        .apparmor_profile()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
        && !Path::new("/sys/kernel/security/apparmor").exists()
    {
        return Err(InitError::Msg(
            "process.apparmorProfile: AppArmor is not enabled on this host".into(),
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
    // SAFETY: resetting SIGPIPE (ignored by the Rust runtime) to the default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // Only stdio and the preserved fds survive execve (CVE-2024-21626).
    sys::cloexec_from(3 + args.preserve_fds).map_err(sys_err("close_range"))?;
    for fd in 3..3 + args.preserve_fds as i32 {
        // SAFETY: clearing FD_CLOEXEC on an fd number; harmless if it is not open.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
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

/// execve the user's program: through the trampoline when there is one
/// (CVE-2019-5736, see trampoline.rs), so that nothing the kernel resolves
/// on the way can name this binary.
pub(crate) fn exec(
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

/// Write uid_map and gid_map of `pid` (from the parent).
pub fn write_id_maps(pid: i32, spec: &Spec) -> std::result::Result<(), String> {
    let linux = spec.linux().as_ref().ok_or("linux: missing")?;
    let fmt = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        m.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    for (file, data) in [
        ("uid_map", fmt(linux.uid_mappings())),
        ("gid_map", fmt(linux.gid_mappings())),
    ] {
        std::fs::write(format!("/proc/{pid}/{file}"), &data).map_err(|e| {
            format!(
                "linux.{}: write {file}: {e}",
                if file == "uid_map" {
                    "uidMappings"
                } else {
                    "gidMappings"
                }
            )
        })?;
    }
    Ok(())
}

/// Connect to a created container's start socket and release it. Returns the
/// error init reports, if any; end-of-file without data means execve ran.
pub fn release(state_dir: BorrowedFd<'_>) -> std::result::Result<(), String> {
    let path = format!(
        "/proc/self/fd/{}/{}",
        state_dir.as_raw_fd(),
        state::START_SOCKET
    );
    let mut s =
        UnixStream::connect(&path).map_err(|e| format!("connect to container init: {e}"))?;
    s.write_all(b"s")
        .map_err(|e| format!("release container init: {e}"))?;
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    if reply.is_empty() {
        Ok(())
    } else {
        Err(reply)
    }
}
