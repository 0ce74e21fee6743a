//! Container state on disk: `<root>/<id>/state.json`, written atomically
//! (write + rename inside the directory fd) and guarded by an exclusive
//! `flock` on the directory so commands on one id serialise while commands on
//! different ids never touch each other's files.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use crate::cgroups::CgroupPaths;

pub const STATE_FILE: &str = "state.json";
/// The unix socket init listens on until `start` connects.
pub const START_SOCKET: &str = "start.sock";
/// A state directory being made (`<id>~creating`) or removed
/// (`<id>~deleting`): names no id can have (`~` is not allowed in ids).
const CREATING_SUFFIX: &str = "~creating";
const DELETING_SUFFIX: &str = "~deleting";
/// The state that state.json replaced, kept for `delete --force`.
pub const PREV_STATE_FILE: &str = "state.json.prev";
/// Where restore binds the rootfs for criu (a mount point while it runs).
pub const CRIU_ROOT: &str = "criu-root";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.', not a path")]
    InvalidId(String),
    #[error("container with id {0} already exists")]
    Exists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error(transparent)]
    Sys(#[from] crate::sys::SysError),
    #[error("{path}: another command on this container has held its lock for {secs} s; try again")]
    Busy { path: PathBuf, secs: u64 },
    #[error("serialize state: {0}")]
    Serialize(serde_json::Error),
    /// A state directory without state.json: not made by this version's
    /// create (which fills it before it appears), or tampered with.
    #[error("{0}: no state.json; `delete --force` removes it")]
    Incomplete(PathBuf),
    #[error("{path}: corrupt state: {source}; `delete --force` removes it")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

use crate::sys::err_at as sys;

/// The lifecycle status of a container, as the runtime-spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What we keep about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Host pid of the container's init.
    pub pid: i32,
    /// `starttime` of the init from /proc/<pid>/stat, so a recycled pid is
    /// never mistaken for our init.
    pub init_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    pub annotations: HashMap<String, String>,
    /// Set once `start` has released init.
    pub started: bool,
    pub cgroups: CgroupPaths,
    /// The spec as it was at create time (hooks for delete, namespaces for exec).
    pub config: oci_spec::runtime::Spec,
}

/// The JSON that `oxrun state` prints (runc's shape).
#[derive(Debug, Serialize)]
pub struct OciState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'static str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
}

pub const OCI_VERSION: &str = "1.2.0";

impl State {
    /// The current status, derived from the live process, not from the file.
    pub fn status(&self) -> Status {
        match proc_stat(self.pid) {
            Some((state, start))
                if start == self.init_start_time && state != 'Z' && state != 'X' =>
            {
                if !self.started {
                    Status::Created
                } else if self.cgroups.is_frozen() {
                    Status::Paused
                } else {
                    Status::Running
                }
            }
            _ => Status::Stopped,
        }
    }

    /// A pidfd of the init, or None once it has exited. Checked after
    /// opening: the pidfd pins the process, so a matching start time now
    /// means the pid was not recycled.
    pub fn init_pidfd(&self) -> Option<OwnedFd> {
        let fd = crate::sys::pidfd_open(self.pid).ok()?;
        (proc_stat(self.pid).map(|s| s.1) == Some(self.init_start_time)).then_some(fd)
    }

    pub fn oci(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: OCI_VERSION,
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }
}

/// The OCI state JSON that hooks and seccomp agents are given on stdin /
/// with the notify fd, for a container in `status`.
pub fn oci_state_json(
    id: &str,
    status: &str,
    pid: i32,
    bundle: &Path,
    spec: &oci_spec::runtime::Spec,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ociVersion": OCI_VERSION,
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "annotations": spec.annotations().clone().unwrap_or_default(),
    }))
    .unwrap_or_default()
}

/// `(state char, starttime)` of a process from /proc/<pid>/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    if pid <= 0 {
        return None;
    }
    let data = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm field may contain spaces and parentheses: parse after the last ')'.
    let rest = &data[data.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // starttime is field 22 overall; after ')' the first field is #3.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// runc accepts `^[\w+-\.]+$`; anything else (and `.`/`..`) could be a path.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId(id.to_string()))
    }
}

/// A locked container state directory.
pub struct StateDir {
    pub path: PathBuf,
    dir: Flock<OwnedFd>,
}

fn open_dir(path: &Path) -> nix::Result<OwnedFd> {
    let fd = fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: open returned a fresh fd we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How long a command waits for another command on the same container to
/// finish before it gives up with [`StateError::Busy`].
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Take the directory's exclusive lock.
///
/// The lock rules: every command that changes a container (create, start,
/// kill, delete, pause, resume, update) holds its directory's lock for as
/// long as it works on it, so commands on one id run one at a time; reads
/// (`state`, `list`) take no lock (state.json is replaced atomically).
/// No command holds the lock while it waits for something only another
/// command can end: `exec` drops it before its process starts (which can
/// freeze in a paused container until `resume`), `events` after reading
/// the state. A holder that still does not let go in [`LOCK_WAIT`] (a
/// hook without a timeout, a stuck kernel call) makes the waiter fail
/// with a message that says so, instead of hanging.
fn lock(fd: OwnedFd, path: &Path) -> Result<Flock<OwnedFd>, StateError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let mut fd = fd;
    let mut pause = std::time::Duration::from_micros(100);
    loop {
        match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => return Ok(locked),
            Err((back, Errno::EINTR)) => fd = back,
            Err((back, Errno::EWOULDBLOCK)) => {
                if std::time::Instant::now() >= deadline {
                    return Err(StateError::Busy {
                        path: path.to_path_buf(),
                        secs: LOCK_WAIT.as_secs(),
                    });
                }
                fd = back;
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(10));
            }
            Err((_, errno)) => {
                return Err(StateError::Sys(crate::sys::SysError::at(
                    "flock",
                    path.to_path_buf(),
                    errno,
                )))
            }
        }
    }
}

impl StateDir {
    /// Create `<root>/<id>` exclusively, locked, holding `initial` as its
    /// state.json from the first moment it exists: the directory is made
    /// under a name no id can have (`<id>~creating`), filled, and renamed
    /// into place with RENAME_NOREPLACE. A create killed at any point
    /// leaves either nothing under `<id>` or a complete state that
    /// `state`, `list` and `delete -f` understand (a killed create's
    /// leftover `~creating` directory is removed by the next create of
    /// that id).
    pub fn create(root: &Path, id: &str, initial: &State) -> Result<Self, StateError> {
        validate_id(id)?;
        std::fs::create_dir_all(root)
            .map_err(|e| crate::sys::SysError::io("mkdir", root.to_path_buf(), &e))?;
        let path = root.join(id);
        sweep_stale(root, id);
        let tmp = root.join(format!("{id}{CREATING_SUFFIX}"));
        // The `~creating` directory is ours once we hold its lock and it is
        // still linked. Until then a sweeper (list, delete) or a create of
        // the same id may take it for stale and remove it, or hold its lock
        // for a moment: try again, briefly. A create of the same id that
        // got there first ends as `Exists` at the rename below.
        let mut dir = None;
        for _ in 0..200 {
            if path.exists() {
                return Err(StateError::Exists(id.to_string()));
            }
            match nix::unistd::mkdir(&tmp, Mode::from_bits_truncate(0o700)) {
                Ok(()) => {
                    let fd = match open_dir(&tmp) {
                        Ok(fd) => fd,
                        Err(Errno::ENOENT) => continue,
                        Err(e) => return Err(sys("open", &tmp)(e).into()),
                    };
                    let locked = lock(fd, &tmp)?;
                    let linked = nix::sys::stat::fstat(locked.as_raw_fd())
                        .map_err(sys("stat", &tmp))?
                        .st_nlink
                        > 0;
                    if linked {
                        dir = Some(locked);
                        break;
                    }
                }
                Err(Errno::EEXIST) => {
                    // Left by a killed create (unlocked: swept here), or
                    // held for now by another create or a sweeper.
                    if !sweep_creating(&tmp) {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
                Err(e) => return Err(sys("mkdir", &tmp)(e).into()),
            }
        }
        let dir = dir.ok_or_else(|| StateError::Exists(id.to_string()))?;
        let sd = StateDir { path: tmp, dir };
        let placed = sd.save(initial).and_then(|()| {
            fcntl::renameat2(
                None,
                &sd.path,
                None,
                &path,
                fcntl::RenameFlags::RENAME_NOREPLACE,
            )
            .map_err(|e| match e {
                Errno::EEXIST | Errno::ENOTEMPTY => StateError::Exists(id.to_string()),
                e => sys("rename", &path)(e).into(),
            })
        });
        if let Err(e) = placed {
            let _ = std::fs::remove_dir_all(&sd.path);
            return Err(e);
        }
        Ok(StateDir { path, dir: sd.dir })
    }

    /// Open and lock an existing container's directory.
    pub fn open(root: &Path, id: &str) -> Result<Self, StateError> {
        validate_id(id)?;
        let path = root.join(id);
        let dir = match open_dir(&path) {
            Ok(d) => d,
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => {
                return Err(StateError::NotFound(id.to_string()))
            }
            Err(e) => return Err(sys("open", &path)(e).into()),
        };
        let dir = lock(dir, &path)?;
        // A concurrent delete may have removed it while we waited for the lock.
        if nix::sys::stat::fstat(dir.as_raw_fd())
            .map_err(sys("stat", &path))?
            .st_nlink
            == 0
        {
            return Err(StateError::NotFound(id.to_string()));
        }
        Ok(StateDir { path, dir })
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dir.as_fd()
    }

    pub fn load(&self) -> Result<State, StateError> {
        read_state(&self.path)
    }

    /// The state, or when state.json is missing or corrupt, the one it
    /// replaced (state.json.prev): what `delete --force` needs to find the
    /// container's cgroups and init. The error is state.json's.
    pub fn load_for_cleanup(&self) -> Result<State, StateError> {
        self.load().or_else(|e| match e {
            StateError::Corrupt { .. } | StateError::Incomplete(_) => {
                let prev = std::fs::read(self.path.join(PREV_STATE_FILE)).map_err(|_| e)?;
                serde_json::from_slice(&prev).map_err(|_| StateError::Incomplete(self.path.clone()))
            }
            e => Err(e),
        })
    }

    /// Atomically replace state.json.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let tmp = "state.json.tmp";
        let fd = fcntl::openat(
            Some(self.dir.as_raw_fd()),
            tmp,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(sys("open", &self.path.join(tmp)))?;
        // SAFETY: fresh fd from openat that we own.
        let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let data = serde_json::to_vec(state).map_err(StateError::Serialize)?;
        f.write_all(&data).map_err(|e| {
            StateError::Sys(crate::sys::SysError::io("write", self.path.join(tmp), &e))
        })?;
        drop(f);
        // Keep the state being replaced as state.json.prev (a hard link, so
        // readers always find a state.json): if state.json is ever found
        // truncated or corrupt, `delete --force` still knows the cgroups and
        // the init to clean up (`load_for_cleanup`).
        let dirfd = Some(self.dir.as_raw_fd());
        match nix::unistd::unlinkat(
            dirfd,
            PREV_STATE_FILE,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(sys("unlink", self.path.join(PREV_STATE_FILE))(e).into()),
        }
        match nix::unistd::linkat(
            dirfd,
            STATE_FILE,
            dirfd,
            PREV_STATE_FILE,
            nix::fcntl::AtFlags::empty(),
        ) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(sys("link", self.path.join(PREV_STATE_FILE))(e).into()),
        }
        fcntl::renameat(
            Some(self.dir.as_raw_fd()),
            tmp,
            Some(self.dir.as_raw_fd()),
            STATE_FILE,
        )
        .map_err(sys("rename", self.path.join(STATE_FILE)))?;
        Ok(())
    }

    /// Remove the directory and everything in it (it holds only our files).
    /// It is first renamed to `<id>~deleting` (a name no id can have), so a
    /// delete killed half-way leaves no half-empty `<id>` behind; leftovers
    /// of that kind are swept by [`sweep_stale`].
    pub fn remove(self) -> Result<(), StateError> {
        // A restore killed while the rootfs was bound here for criu
        // (checkpoint/restore.rs) must not make the removal below walk
        // into the container's rootfs.
        let _ = nix::mount::umount2(&self.path.join(CRIU_ROOT), nix::mount::MntFlags::MNT_DETACH);
        let doomed = self.path.with_file_name(format!(
            "{}{DELETING_SUFFIX}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        let _ = std::fs::remove_dir_all(&doomed);
        let target = match std::fs::rename(&self.path, &doomed) {
            Ok(()) => doomed,
            Err(_) => self.path.clone(),
        };
        match std::fs::remove_dir_all(&target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::Sys(crate::sys::SysError::at(
                "rmdir",
                target,
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            ))),
        }
    }
}

/// Read a container's state without locking (rename makes reads atomic).
pub fn read_state(dir: &Path) -> Result<State, StateError> {
    let path = dir.join(STATE_FILE);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(if dir.is_dir() {
                StateError::Incomplete(dir.to_path_buf())
            } else {
                let id = dir
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                StateError::NotFound(id)
            });
        }
        Err(e) => {
            return Err(StateError::Sys(crate::sys::SysError::at(
                "read",
                path,
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            )))
        }
    };
    serde_json::from_slice(&data).map_err(|source| StateError::Corrupt { path, source })
}

/// Remove what killed commands left of `id` under `root`: a `~deleting`
/// directory, and a `~creating` one that no running create holds locked.
pub fn sweep_stale(root: &Path, id: &str) {
    let _ = std::fs::remove_dir_all(root.join(format!("{id}{DELETING_SUFFIX}")));
    sweep_creating(&root.join(format!("{id}{CREATING_SUFFIX}")));
}

/// Remove the `~creating` directory at `path` if nobody holds its lock and
/// the path still names the directory we locked. True if it is gone.
fn sweep_creating(path: &Path) -> bool {
    let Ok(fd) = open_dir(path) else {
        return true;
    };
    let Ok(stale) = Flock::lock(fd, FlockArg::LockExclusiveNonblock) else {
        return false;
    };
    let same = match (
        nix::sys::stat::fstat(stale.as_raw_fd()),
        nix::sys::stat::stat(path),
    ) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    };
    if same {
        let _ = std::fs::remove_dir_all(path);
    }
    drop(stale);
    true
}

/// All containers under `root`, sorted by id; unreadable entries are
/// skipped, and what killed commands left behind is swept.
pub fn list(root: &Path) -> Vec<State> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<State> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name
                .strip_suffix(CREATING_SUFFIX)
                .or_else(|| name.strip_suffix(DELETING_SUFFIX))
            {
                sweep_stale(root, id);
            }
            validate_id(&name).is_ok()
        })
        .filter_map(|e| read_state(&e.path()).ok())
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// RFC 3339 UTC timestamp with nanoseconds, as Go's time.Time marshals.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-1.2_x+y", "A9"] {
            validate_id(ok).expect(ok);
        }
        for bad in ["", ".", "..", "../x", "a/b", "a b", "x\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(
            rfc3339(1_795_350_896, 123),
            "2026-11-22T12:34:56.000000123Z"
        );
    }

    #[test]
    fn own_stat_parses() {
        let (state, start) = proc_stat(std::process::id() as i32).expect("own stat");
        assert!(matches!(state, 'R' | 'S'), "{state}");
        assert!(start > 0);
    }
}
