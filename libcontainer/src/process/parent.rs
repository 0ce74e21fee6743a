//! The runtime's half of creating a container: clone the init into its
//! namespaces and cgroups, write its id maps and oom_score_adj, run the
//! runtime hooks when it asks, and wait until it reports "created"; later,
//! release it (`start`).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::channel::{self, Msg};
use super::init::{self, SpawnArgs};
use crate::state::{self, oci_state_json};
use crate::{hooks, sys};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Channel(#[from] channel::ChannelError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error(transparent)]
    Sys(#[from] sys::SysError),
    #[error("bind start socket in {dir}: {source}")]
    StartSocket {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("linux.{field}: write {file}: {source}")]
    IdMap {
        field: &'static str,
        file: &'static str,
        source: std::io::Error,
    },
    #[error("linux.{field}: {helper} {args}: {msg}")]
    IdMapHelper {
        field: &'static str,
        helper: &'static str,
        args: String,
        msg: String,
    },
    #[error("linux.uidMappings: the spec has no linux section")]
    NoLinux,
    #[error("process.oomScoreAdj {score}: {source}")]
    OomScoreAdj { score: i32, source: std::io::Error },
    #[error("{op} container init: {source}")]
    Release {
        op: &'static str,
        source: std::io::Error,
    },
    /// An error init reported over the sync channel or the start socket:
    /// already a complete message.
    #[error("{0}")]
    Init(String),
    /// init broke the sync protocol.
    #[error("unexpected {0} from init")]
    Protocol(String),
    #[error(transparent)]
    NetDevice(#[from] crate::netdev::NetdevError),
    #[error("container init exited during set-up")]
    InitDied,
    #[error("the calling process has {0} threads; containers can only be created or exec'd from a single-threaded process")]
    Threaded(usize),
}

/// The processes we started, so a failed create can kill and reap them.
#[derive(Default)]
pub struct Spawned {
    /// Our direct children that may still need reaping.
    pub children: Vec<i32>,
    /// Warnings init sent while setting up.
    pub warnings: Vec<String>,
    /// `linux.netDevices` moved into the container so far.
    pub net_devices: crate::netdev::Moved,
    /// The systemd driver made the container's unit (so a failed create
    /// stops it; a unit that was there before is someone else's).
    pub unit_started: bool,
}

impl Spawned {
    /// The container is created: keep what we started.
    pub fn keep(&mut self) {
        self.children.clear();
        self.net_devices.keep();
    }

    /// Kill and reap everything we started (failure path), after giving
    /// the moved network devices back to the host.
    pub fn kill_all(&mut self) {
        self.net_devices.give_back();
        for pid in self.children.drain(..) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
    }
}

/// Clone the init and drive it to "created". On error, `spawned` lists what
/// must be killed.
pub fn spawn_init(a: &SpawnArgs<'_>, spawned: &mut Spawned) -> Result<i32, ProcessError> {
    let (parent, child) = channel::pair()?;
    // The start socket is bound here, by us: init may be a mapped root in a
    // user namespace that cannot enter the 0700 state dir.
    let path = format!(
        "/proc/self/fd/{}/{}",
        a.state_dir.fd().as_raw_fd(),
        crate::state::START_SOCKET
    );
    let listener =
        std::os::unix::net::UnixListener::bind(&path).map_err(|e| ProcessError::StartSocket {
            dir: a.state_dir.path.clone(),
            source: e,
        })?;
    // The locked fd must not stay open in init, or `start` would wait for a
    // lock init holds.
    let lock_fd = a.state_dir.fd().as_raw_fd();
    let single = a.plan.single_clone();
    // The cgroup namespace is unshared by init once it is in its cgroup, so
    // the container sees its own cgroup as "/".
    let flags = if single {
        (a.plan.new_flags & !libc::CLONE_NEWCGROUP) as u64
    } else {
        0
    };
    let init_args = init::InitArgs {
        spawn: a,
        channel: &child,
        start_listener: &listener,
        unprivileged: !nix::unistd::geteuid().is_root(),
    };
    // Non-dumpable before anything can see us from inside: until init
    // execve's the user's program its /proc/1/exe is this binary, and a
    // process exec'd into a created container must not open it
    // (CVE-2019-5736). execve resets the flag for the user's program.
    nix::sys::prctl::set_dumpable(false).map_err(sys::err("prctl(PR_SET_DUMPABLE)"))?;
    // Born in its v2 cgroup (CLONE_INTO_CGROUP) when there is one; v1
    // hierarchies still get a cgroup.procs write below.
    // (Not with systemd: the unit and its cgroup are made for the pid.)
    let cgroup_fd = if single && !a.cgroups.made_with_init() {
        a.cgroups.v2_fd()
    } else {
        None
    };
    // SAFETY: the runtime is single-threaded; the child only runs init code and
    // always ends in execve or _exit.
    let cloned = match unsafe { sys::clone3(flags, cgroup_fd.as_ref().map(|f| f.as_raw_fd())) } {
        // Kernels before 5.7 lack CLONE_INTO_CGROUP.
        Err(Errno::EINVAL | Errno::E2BIG | Errno::ENOSYS) if cgroup_fd.is_some() => {
            // SAFETY: as above.
            unsafe { sys::clone3(flags, None) }.map(|r| (r, false))
        }
        r => r.map(|r| (r, cgroup_fd.is_some())),
    };
    let (cloned, into_cgroup) = cloned.map_err(sys::err("clone3"))?;
    let pid = match cloned {
        sys::CloneResult::Child => {
            drop(parent);
            // Our copy of the locked fd; this process never returns to code
            // that would use or close it again (it ends in exec or _exit).
            let _ = nix::unistd::close(lock_fd);
            if single {
                init::child_main(&init_args)
            } else {
                init::intermediate_main(&init_args)
            }
        }
        sys::CloneResult::Parent { pid, .. } => pid,
    };
    drop(listener);
    drop(child);
    drop(cgroup_fd);
    spawned.children.push(pid);
    if a.cgroups.made_with_init() {
        // The systemd driver: systemd makes the unit with init in it (and
        // the resources go on it), while init waits for us.
        let no_resources = oci_spec::runtime::LinuxResources::default();
        let r = a.spec.linux().as_ref().and_then(|l| l.resources().as_ref());
        let w = a
            .cgroups
            .start_unit(pid, r.unwrap_or(&no_resources), &mut spawned.unit_started)?;
        spawned.warnings.extend(w);
    } else if into_cgroup {
        a.cgroups.add_except_v2(pid)?;
    } else {
        a.cgroups.add(pid)?;
    }
    let oom = a.spec.process().as_ref().and_then(|p| p.oom_score_adj());
    let init_pid = if single {
        if a.plan.creates(LinuxNamespaceType::User) {
            expect_need_maps(&parent)?;
            write_id_maps(pid, a.spec)?;
            parent.send(&Msg::MapsDone)?;
        }
        pid
    } else {
        parent.send(&Msg::Go(pid))?;
        loop {
            match parent.recv()? {
                Some(Msg::NeedMaps) => {
                    write_id_maps(pid, a.spec)?;
                    parent.send(&Msg::MapsDone)?;
                }
                Some(Msg::InitPid(g)) => {
                    // The grandchild is ours too (CLONE_PARENT); reap the intermediate.
                    spawned.children.push(g);
                    let _ = waitpid(Pid::from_raw(pid), None);
                    spawned.children.retain(|p| *p != pid);
                    break g;
                }
                Some(Msg::Error(e)) => return Err(ProcessError::Init(e)),
                Some(other) => return Err(ProcessError::Protocol(format!("{other:?}"))),
                None => return Err(ProcessError::InitDied),
            }
        }
    };
    crate::netdev::move_into(a.spec, init_pid, &mut spawned.net_devices)?;
    if let Some(score) = oom {
        std::fs::write(format!("/proc/{init_pid}/oom_score_adj"), score.to_string())
            .map_err(|source| ProcessError::OomScoreAdj { score, source })?;
    }
    parent.send(&Msg::Go(init_pid))?;
    loop {
        match parent.recv()? {
            Some(Msg::RunHooks) => {
                // prestart (legacy) sees "created", as runtime-tools and crun expect.
                let created = oci_state_json(a.id, "created", init_pid, a.bundle, a.spec);
                hooks::run(a.spec, "prestart", &created)?;
                let creating = oci_state_json(a.id, "creating", init_pid, a.bundle, a.spec);
                hooks::run(a.spec, "createRuntime", &creating)?;
                parent.send(&Msg::HooksDone)?;
            }
            Some(Msg::Warning(w)) => spawned.warnings.push(w),
            Some(Msg::Ready) => return Ok(init_pid),
            Some(Msg::Error(e)) => return Err(ProcessError::Init(e)),
            Some(other) => return Err(ProcessError::Protocol(format!("{other:?}"))),
            None => return Err(ProcessError::InitDied),
        }
    }
}

/// Wait for init (or the intermediate) to ask for its id maps.
fn expect_need_maps(ch: &channel::Channel) -> Result<(), ProcessError> {
    match ch.recv()? {
        Some(Msg::NeedMaps) => Ok(()),
        Some(Msg::Error(e)) => Err(ProcessError::Init(e)),
        Some(other) => Err(ProcessError::Protocol(format!("{other:?}"))),
        None => Err(ProcessError::InitDied),
    }
}

/// Write uid_map and gid_map of `pid` (from the parent). Root writes them
/// itself. An unprivileged caller (rootless) may write only a map of its
/// own id (one line of size 1; for gids, with setgroups denied first, as
/// the kernel requires); any other map goes through the setuid helpers
/// newuidmap/newgidmap, which check it against /etc/subuid and
/// /etc/subgid (as runc and crun do).
pub fn write_id_maps(pid: i32, spec: &Spec) -> Result<(), ProcessError> {
    let linux = spec.linux().as_ref().ok_or(ProcessError::NoLinux)?;
    let none = Vec::new();
    let root = nix::unistd::geteuid().is_root();
    for (field, file, maps, own) in [
        (
            "uidMappings",
            "uid_map",
            linux.uid_mappings().as_ref().unwrap_or(&none),
            nix::unistd::geteuid().as_raw(),
        ),
        (
            "gidMappings",
            "gid_map",
            linux.gid_mappings().as_ref().unwrap_or(&none),
            nix::unistd::getegid().as_raw(),
        ),
    ] {
        let own_only = matches!(maps.as_slice(), [m] if m.host_id() == own && m.size() == 1);
        if !root && !own_only {
            let helper = if file == "uid_map" {
                "newuidmap"
            } else {
                "newgidmap"
            };
            map_with_helper(pid, field, helper, maps)?;
            continue;
        }
        let io_err = |file, source| ProcessError::IdMap {
            field,
            file,
            source,
        };
        if !root && file == "gid_map" {
            std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                .map_err(|e| io_err("setgroups", e))?;
        }
        let data: String = maps
            .iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect();
        std::fs::write(format!("/proc/{pid}/{file}"), &data).map_err(|e| io_err(file, e))?;
    }
    Ok(())
}

/// Run newuidmap/newgidmap for `pid` with `maps`.
fn map_with_helper(
    pid: i32,
    field: &'static str,
    helper: &'static str,
    maps: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<(), ProcessError> {
    let mut args = vec![pid.to_string()];
    for m in maps {
        args.extend([m.container_id(), m.host_id(), m.size()].map(|n| n.to_string()));
    }
    let fail = |msg: String| ProcessError::IdMapHelper {
        field,
        helper,
        args: args.join(" "),
        msg,
    };
    // The helpers are setuid root and finish at once; their stdio is ours
    // but for stderr, which goes into the error.
    let out = std::process::Command::new(helper)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            fail(if e.kind() == std::io::ErrorKind::NotFound {
                "not found: an unprivileged user can map only its own id without it (install the uidmap package)".into()
            } else {
                e.to_string()
            })
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(fail(format!(
        "{} ({}); the ranges must be the caller's in /etc/sub{}id",
        stderr.trim(),
        out.status,
        &field[..1]
    )))
}

/// Connect to a created container's start socket and release it. Returns the
/// error init reports, if any; end-of-file without data means execve ran.
pub fn release_init(state_dir: BorrowedFd<'_>) -> Result<(), ProcessError> {
    let path = format!(
        "/proc/self/fd/{}/{}",
        state_dir.as_raw_fd(),
        state::START_SOCKET
    );
    let mut s = UnixStream::connect(&path).map_err(|source| ProcessError::Release {
        op: "connect to",
        source,
    })?;
    s.write_all(b"s").map_err(|source| ProcessError::Release {
        op: "release",
        source,
    })?;
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    if reply.is_empty() {
        Ok(())
    } else {
        Err(ProcessError::Init(reply))
    }
}
