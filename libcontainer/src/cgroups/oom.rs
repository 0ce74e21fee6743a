//! OOM notification. v1: an eventfd registered for `memory.oom_control`
//! through `cgroup.event_control` (the kernel signals it on every OOM in
//! the group and when the group is removed). v2: inotify on
//! `memory.events`, reporting when its `oom_kill` counter goes up.
//! Either way the watcher exposes one fd to poll.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::{io, read_keyed, try_write, CgroupError, CgroupPaths};

enum Kind {
    V1 {
        eventfd: OwnedFd,
        /// Keeps memory.oom_control open for the registration's lifetime.
        _control: File,
    },
    V2 {
        inotify: Inotify,
    },
}

pub struct OomWatcher {
    kind: Kind,
    /// The memory cgroup directory.
    dir: PathBuf,
    /// oom_kill count already reported.
    seen: u64,
}

impl OomWatcher {
    /// Start watching; `Ok(None)` when there is no memory controller.
    pub fn new(paths: &CgroupPaths) -> Result<Option<OomWatcher>, CgroupError> {
        let Some(dir) = paths.dir_for("memory") else {
            return Ok(None);
        };
        if paths.unified {
            let events = dir.join("memory.events");
            if !events.exists() {
                return Ok(None);
            }
            let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
                .map_err(|e| io("inotify_init1 for", &events)(e.into()))?;
            let c = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
                .map_err(|e| io("watch", &events)(std::io::Error::other(e)))?;
            inotify
                .add_watch(c.as_c_str(), AddWatchFlags::IN_MODIFY)
                .map_err(|e| io("inotify_add_watch", &events)(e.into()))?;
            let seen = read_keyed(&dir, "memory.events", "oom_kill")?;
            return Ok(Some(OomWatcher {
                kind: Kind::V2 { inotify },
                dir,
                seen,
            }));
        }
        let control_path = dir.join("memory.oom_control");
        let control = File::open(&control_path).map_err(io("open", &control_path))?;
        let fd: OwnedFd =
            EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                .map_err(|e| io("eventfd for", &control_path)(e.into()))?
                .into();
        let reg = format!("{} {}", fd.as_raw_fd(), control.as_raw_fd());
        try_write(&dir, "cgroup.event_control", &reg)
            .map_err(io("register", &dir.join("cgroup.event_control")))?;
        let seen = read_keyed(&dir, "memory.oom_control", "oom_kill").unwrap_or(0);
        Ok(Some(OomWatcher {
            kind: Kind::V1 {
                eventfd: fd,
                _control: control,
            },
            dir,
            seen,
        }))
    }

    /// The fd to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            Kind::V1 { eventfd, .. } => eventfd.as_fd(),
            Kind::V2 { inotify } => inotify.as_fd(),
        }
    }

    fn kills(&self) -> Option<u64> {
        let (file, key) = match self.kind {
            Kind::V1 { .. } => ("memory.oom_control", "oom_kill"),
            Kind::V2 { .. } => ("memory.events", "oom_kill"),
        };
        read_keyed(&self.dir, file, key).ok()
    }

    /// After the fd polled readable: how many OOM events to report (v1:
    /// one per wake-up, as runc; v2: one when oom_kill went up). `None`
    /// when the cgroup is gone.
    pub fn read(&mut self) -> Option<u32> {
        let mut buf = [0u8; 4096];
        let mut f = File::from(self.fd().try_clone_to_owned().ok()?);
        let n = f.read(&mut buf).unwrap_or(0);
        if !self.dir.exists() {
            return None;
        }
        let kills = self.kills();
        let fired = match self.kind {
            Kind::V1 { .. } => u32::from(n > 0),
            Kind::V2 { .. } => u32::from(kills.is_some_and(|k| k > self.seen)),
        };
        if let Some(k) = kills {
            self.seen = self.seen.max(k);
        }
        Some(fired)
    }

    /// A final check (the container stopped): true if OOM kills happened
    /// that no event reported yet.
    pub fn unreported(&mut self) -> bool {
        match self.kills() {
            Some(k) if k > self.seen => {
                self.seen = k;
                true
            }
            _ => false,
        }
    }
}
