//! The container's init: the child of `clone3`, set up step by step in the
//! order runc and crun agree on, then blocked until `start`, then execve of
//! the user's program so that container PID 1 is the user's process.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::channel::{Channel, Msg};
use super::error::InitError;
use super::finalize::{self, Finalize, Never};
use crate::cgroups::CgroupPaths;
use crate::namespaces::{self, Plan};
use crate::state::oci_state_json;
use crate::state::StateDir;
use crate::{capabilities, hooks, rlimits, rootfs, sys, tty};

use crate::sys::err as sys_err;

type Result<T> = std::result::Result<T, InitError>;

/// What the runtime hands to `spawn_init`: the init to set up. init
/// borrows it (`InitArgs`).
pub struct SpawnArgs<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub plan: &'a Plan,
    pub cgroups: &'a CgroupPaths,
    pub state_dir: &'a StateDir,
    pub console: Option<&'a OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    pub idmapped: &'a crate::rootfs::idmap::Prepared,
    pub stdio: Option<[std::os::fd::RawFd; 3]>,
}

/// Everything init needs: what the runtime was asked for (borrowed from
/// the parent's `SpawnArgs`, shared copy-on-write by clone) and the two
/// channels back to the runtime.
pub struct InitArgs<'a> {
    pub spawn: &'a SpawnArgs<'a>,
    pub channel: &'a Channel,
    pub start_listener: &'a UnixListener,
    /// The runtime is not root (rootless): see [`wait_for_maps`].
    pub unprivileged: bool,
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
        args.spawn.plan.join_all()?;
        if args.spawn.plan.creates(LinuxNamespaceType::User) {
            namespaces::unshare(libc::CLONE_NEWUSER)?;
            wait_for_maps(args)?;
            become_root()?;
        }
        namespaces::unshare(args.spawn.plan.new_flags & !libc::CLONE_NEWUSER)?;
        if args.spawn.plan.creates(LinuxNamespaceType::Time) {
            write_time_offsets(args.spawn.spec)?;
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

/// Ask the runtime to write our uid and gid maps, and wait until it has.
/// We are not dumpable (see spawn_init), so our /proc files belong to the
/// root of our user namespace, or, while that is unmapped, the host's: an
/// unprivileged runtime could not open them. So, as runc's nsexec does,
/// we are dumpable just while it writes them (nothing else of the user's
/// can see us yet).
fn wait_for_maps(args: &InitArgs<'_>) -> Result<()> {
    let dumpable =
        |on| nix::sys::prctl::set_dumpable(on).map_err(sys_err("prctl(PR_SET_DUMPABLE)"));
    if args.unprivileged {
        dumpable(true)?;
    }
    args.channel.send(&Msg::NeedMaps)?;
    match args.channel.recv()? {
        Some(Msg::MapsDone) => {}
        other => return Err(InitError::Msg(format!("expected MapsDone, got {other:?}"))),
    }
    if args.unprivileged {
        dumpable(false)?;
    }
    Ok(())
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

fn init(args: &InitArgs<'_>) -> Result<Never> {
    if let Some(fds) = args.spawn.stdio {
        finalize::install_stdio(fds).map_err(sys_err("set up stdio"))?;
    }
    if args.spawn.plan.single_clone() && args.spawn.plan.creates(LinuxNamespaceType::User) {
        wait_for_maps(args)?;
    }
    let host_pid = expect_go(args.channel)?;
    // In its cgroup now (the runtime put it there before Go).
    super::sched::reset_affinity()?;
    if args.spawn.plan.single_clone() {
        if args.spawn.plan.creates(LinuxNamespaceType::User) {
            become_root()?;
        }
        if args.spawn.plan.creates(LinuxNamespaceType::Cgroup) {
            namespaces::unshare(libc::CLONE_NEWCGROUP)?;
        }
    }
    let process = args
        .spawn
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| InitError::Msg("process: missing".into()))?;
    // Modes of what we create (devices, dirs) are exactly as asked.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());

    if let Some(h) = args.spawn.spec.hostname() {
        nix::unistd::sethostname(h).map_err(sys_err("hostname: sethostname"))?;
    }
    if let Some(d) = args.spawn.spec.domainname() {
        sys::setdomainname(d.as_bytes()).map_err(sys_err("domainname: setdomainname"))?;
    }
    // Before the rootfs is set up: the host's NUMA nodes are still in
    // view under /sys. set_mempolicy's policy survives execve.
    if let Some(mp) = args
        .spawn
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        super::mempolicy::apply_checked(mp)?;
    }

    let mut ctx = rootfs::Context {
        spec: args.spawn.spec,
        bundle: args.spawn.bundle,
        rootfs: args.spawn.rootfs,
        cgroups: args.spawn.cgroups,
        userns: args.spawn.plan.has(LinuxNamespaceType::User),
        cgroupns: args.spawn.plan.has(LinuxNamespaceType::Cgroup),
        idmapped: args.spawn.idmapped,
        warnings: Vec::new(),
        dev_readonly: false,
    };
    // Without a mount namespace the container shares the caller's mounts:
    // nothing is mounted, the process is only chrooted (create warns).
    let own_mounts = args.spawn.plan.has(LinuxNamespaceType::Mount);
    let root = if own_mounts {
        rootfs::prepare(&mut ctx)?
    } else {
        let path = CString::new(args.spawn.rootfs.as_os_str().as_bytes())
            .map_err(|_| InitError::Msg("root.path: NUL byte".into()))?;
        sys::openat2(sys::cwd(), &path, libc::O_PATH | libc::O_DIRECTORY, 0, 0)
            .map_err(sys_err(format!("open {}", args.spawn.rootfs.display())))?
    };

    let runtime_hooks = !hooks::of_kind(args.spawn.spec, "prestart").is_empty()
        || !hooks::of_kind(args.spawn.spec, "createRuntime").is_empty();
    if runtime_hooks {
        args.channel.send(&Msg::RunHooks)?;
        match args.channel.recv()? {
            Some(Msg::HooksDone) => {}
            other => return Err(InitError::Msg(format!("expected HooksDone, got {other:?}"))),
        }
    }
    let creating = oci_state_json(
        args.spawn.id,
        "creating",
        host_pid,
        args.spawn.bundle,
        args.spawn.spec,
    );
    // createContainer hooks run in the container's mount namespace, before
    // pivot_root, with the container's root as their cwd (as runc's do).
    nix::unistd::fchdir(root.as_raw_fd()).map_err(sys_err("fchdir rootfs"))?;
    hooks::run(args.spawn.spec, "createContainer", &creating)?;

    // Create the cwd now: the root may become read-only in apply_spec_after_pivot().
    rootfs::resolve::mkdir_all(root.as_fd(), process.cwd(), 0o755)
        .map_err(sys_err(format!("process.cwd {}", process.cwd().display())))?;
    if own_mounts {
        rootfs::pivot(root.as_fd(), args.spawn.rootfs, args.spawn.no_pivot)?;
        drop(root);
        rootfs::apply_spec_after_pivot(args.spawn.spec)?;
        reopen_dev_null()?;
    } else {
        nix::unistd::fchdir(root.as_raw_fd()).map_err(sys_err("fchdir rootfs"))?;
        nix::unistd::chroot(".").map_err(sys_err("chroot rootfs"))?;
        nix::unistd::chdir("/").map_err(sys_err("chdir /"))?;
    }

    if process.terminal().unwrap_or(false) {
        let sock = args.spawn.console.ok_or_else(|| {
            InitError::Msg("process.terminal is true but no --console-socket was given".into())
        })?;
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        tty::setup(sock, size, true)?;
    } else {
        // As runc: the init always leads a session of its own, so nothing
        // of the caller's session (its terminal, its job control) reaches
        // into the container, and criu can checkpoint it without
        // --shell-job. With a terminal, tty::setup did this.
        match nix::unistd::setsid() {
            Ok(_) | Err(nix::errno::Errno::EPERM) => {}
            Err(e) => return Err(sys_err("setsid")(e).into()),
        }
    }
    let cwd = process.cwd().clone();
    let env = finalize::environment(process);
    let exe = finalize::find_executable(process, &env)?;
    // Made now, before the filter is loaded: see trampoline.rs.
    let tramp = super::trampoline::prepare(args.spawn.seccomp, 3 + args.spawn.preserve_fds)
        .map_err(sys_err("exec trampoline"))?;
    if tramp.is_none() && args.spawn.seccomp.is_some() {
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
    // Likewise the scheduler and I/O priority (the spec: MUST fail when
    // they cannot be applied); both survive execve.
    if let Some(s) = process.scheduler() {
        super::sched::apply_scheduler(s)?;
    }
    if let Some(p) = process.io_priority() {
        super::sched::apply_io_priority(p)?;
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
        let created = oci_state_json(
            args.spawn.id,
            "created",
            host_pid,
            args.spawn.bundle,
            args.spawn.spec,
        );
        hooks::run(args.spawn.spec, "startContainer", &created)?;
        let fin = Finalize {
            id: args.spawn.id,
            personality: args
                .spawn
                .spec
                .linux()
                .as_ref()
                .and_then(|l| l.personality().as_ref()),
            no_new_keyring: args.spawn.no_new_keyring,
            preserve_fds: args.spawn.preserve_fds,
            seccomp: args.spawn.seccomp,
            pid: host_pid,
            state: &created,
        };
        finalize::finalize(&fin, process, &cwd, caps.as_ref())?;
        finalize::exec_program(&exe, process, &env, tramp.as_ref().map(|t| t.as_fd()))
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

/// As runc (`reOpenDevNull`): stdio that is the host's /dev/null is
/// replaced by the container's own /dev/null, so no descriptor of a mount
/// outside the container stays open in it (criu could not checkpoint the
/// container otherwise: the host's /dev is not among its mounts).
fn reopen_dev_null() -> Result<()> {
    // Container start is the hot path: look at our stdio first (three
    // fstats), and open the container's /dev/null only when one of them
    // is a null device (1:3); pipes and ptys need nothing.
    let is_null = |st: &nix::sys::stat::FileStat| {
        st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3)
    };
    let nulls: Vec<(i32, nix::sys::stat::FileStat)> = (0..3)
        .filter_map(|fd| nix::sys::stat::fstat(fd).ok().map(|st| (fd, st)))
        .filter(|(_, st)| is_null(st))
        .collect();
    if nulls.is_empty() {
        return Ok(());
    }
    let Ok(null) = crate::sys::openat2(
        crate::sys::cwd(),
        c"/dev/null",
        libc::O_RDWR | libc::O_CLOEXEC,
        0,
        crate::sys::RESOLVE_NO_SYMLINKS,
    ) else {
        // No /dev/null in the container: nothing to reopen onto.
        return Ok(());
    };
    let ours = nix::sys::stat::fstat(null.as_raw_fd()).map_err(sys_err("stat /dev/null"))?;
    if !is_null(&ours) {
        return Ok(());
    }
    for (fd, st) in nulls {
        if (st.st_dev, st.st_ino) != (ours.st_dev, ours.st_ino) {
            nix::unistd::dup2(null.as_raw_fd(), fd).map_err(sys_err("reopen /dev/null"))?;
        }
    }
    Ok(())
}
