//! Container operations on cgroups, with runc's rules: `pause`/`resume`
//! (freezer), `update` (merge new resources into the saved ones and
//! re-apply), `stats`/`events` (usage and OOM notifications), `ps` (the
//! container's pids). Each locks the container's state directory like the
//! lifecycle operations do; the long-running `events` holds the lock only
//! while it reads the state.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use oci_spec::runtime::LinuxResources;

use super::{ContainerError, Op, Result};
use crate::cgroups::oom::OomWatcher;
use crate::cgroups::resources;
use crate::cgroups::stats::Event;
use crate::state::{State, StateDir, Status};
use crate::sys;

fn load(root: &Path, id: &str) -> Result<(StateDir, State, Status)> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    let status = st.status();
    Ok((sd, st, status))
}

/// Freeze every process of a running (or created) container.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let (_sd, st, status) = load(root, id)?;
    match status {
        Status::Running | Status::Created => {}
        s => return Err(ContainerError::wrong_state(id, Op::Pause, s)),
    }
    st.cgroups.freeze()?;
    Ok(())
}

/// Thaw a paused container.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let (_sd, st, status) = load(root, id)?;
    if status != Status::Paused {
        return Err(ContainerError::wrong_state(id, Op::Resume, status));
    }
    st.cgroups.thaw()?;
    Ok(())
}

/// Merge `new` into the container's resources, apply the result and save
/// it in the state. Device rules are never changed: runc 1.1.5's `update`
/// ignores `devices` without looking at them (so an access of "rwa" there
/// is no error), and so do we, with a warning. Returns warnings.
pub fn update(root: &Path, id: &str, new: &LinuxResources) -> Result<Vec<String>> {
    let (sd, mut st, status) = load(root, id)?;
    if status == Status::Stopped {
        return Err(ContainerError::wrong_state(id, Op::Update, status));
    }
    let mut warnings = Vec::new();
    let mut new = new.clone();
    if new.devices().is_some() {
        new.set_devices(None);
        warnings.push(
            "linux.resources.devices: ignored: update does not change device rules (as runc)"
                .to_string(),
        );
    }
    let old = st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone());
    let merged = resources::merge(old.as_ref(), &new)
        .map_err(|e| ContainerError::Invalid(format!("linux.resources: {e}")))?;
    warnings.extend(st.cgroups.apply_with(&merged, true)?);
    let mut linux = st.config.linux().clone().unwrap_or_default();
    linux.set_resources(Some(merged));
    st.config.set_linux(Some(linux));
    sd.save(&st)?;
    Ok(warnings)
}

/// The container's current usage as runc's `events --stats` line.
pub fn stats(root: &Path, id: &str) -> Result<Event> {
    let (_sd, st, status) = load(root, id)?;
    if status == Status::Stopped {
        return Err(ContainerError::wrong_state(id, Op::Stats, status));
    }
    Ok(Event {
        typ: "stats".into(),
        id: id.to_string(),
        data: Some(st.cgroups.stats()),
    })
}

/// Host pids of every process in the container's cgroup (and below).
/// Rootless without a delegated cgroup: the processes in the container's
/// pid namespace, or its init alone when it has none of its own.
pub fn ps(root: &Path, id: &str) -> Result<Vec<i32>> {
    let (_sd, st, status) = load(root, id)?;
    if !st.cgroups.dirs.is_empty() || status == Status::Stopped {
        return Ok(st.cgroups.all_pids());
    }
    let own_pidns = st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|l| {
            l.iter().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_none()
            })
        });
    let ns_of = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let init_ns = ns_of(&st.pid.to_string());
    if !own_pidns || init_ns.is_none() {
        return Ok(vec![st.pid]);
    }
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .map_err(|source| ContainerError::Io {
            op: "read /proc".into(),
            source,
        })?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| ns_of(&p.to_string()) == init_ns)
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// Stream events until the container stops: a stats event every
/// `interval` and an `oom` event whenever the OOM killer fires. `emit`
/// failing (e.g. a closed stdout) ends the stream with that error.
pub fn events(
    root: &Path,
    id: &str,
    interval: Duration,
    emit: &mut dyn FnMut(&Event) -> std::io::Result<()>,
) -> Result<()> {
    if interval.is_zero() {
        return Err(ContainerError::Invalid(
            "--interval must be greater than 0".into(),
        ));
    }
    let (sd, st, status) = load(root, id)?;
    drop(sd);
    if status == Status::Stopped {
        return Err(ContainerError::wrong_state(id, Op::Events, status));
    }
    let pidfd = sys::pidfd_open(st.pid).map_err(|e| ContainerError::Io {
        op: format!("pidfd_open {}", st.pid),
        source: e.into(),
    })?;
    if crate::state::proc_stat(st.pid).map(|s| s.1) != Some(st.init_start_time) {
        return Err(ContainerError::wrong_state(id, Op::Events, Status::Stopped));
    }
    let mut oom = OomWatcher::new(&st.cgroups)?;
    let io_err = |source: std::io::Error| ContainerError::Io {
        op: "write event".into(),
        source,
    };
    let oom_event = || Event {
        typ: "oom".into(),
        id: id.to_string(),
        data: None,
    };
    let mut next = Instant::now() + interval;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
        let (exited, oom_ready) = {
            let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            if let Some(w) = &oom {
                fds.push(PollFd::new(w.fd(), PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    return Err(ContainerError::Io {
                        op: "poll".into(),
                        source: e.into(),
                    })
                }
            }
            let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        };
        if oom_ready {
            match oom.as_mut().and_then(OomWatcher::read) {
                Some(n) => {
                    for _ in 0..n {
                        emit(&oom_event()).map_err(io_err)?;
                    }
                }
                // The cgroup is gone: the container was deleted.
                None => oom = None,
            }
        }
        if exited {
            if oom.as_mut().is_some_and(OomWatcher::unreported) {
                emit(&oom_event()).map_err(io_err)?;
            }
            return Ok(());
        }
        if Instant::now() >= next {
            next += interval;
            let ev = Event {
                typ: "stats".into(),
                id: id.to_string(),
                data: Some(st.cgroups.stats()),
            };
            emit(&ev).map_err(io_err)?;
        }
    }
}
