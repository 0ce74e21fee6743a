//! Freezing and thawing: v1 `freezer.state` (retrying like runc while the
//! kernel reports FREEZING) and v2 `cgroup.freeze` (waiting for
//! `cgroup.events` to say `frozen 1`). Both return only once the state has
//! read back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{read_string, try_write, CgroupError, CgroupPaths};

const TIMEOUT: Duration = Duration::from_secs(10);

fn err(msg: String) -> CgroupError {
    CgroupError::Freezer(msg)
}

pub(super) fn set(p: &CgroupPaths, frozen: bool) -> Result<(), CgroupError> {
    if let Some(dir) = &p.freezer {
        return if frozen { freeze_v1(dir) } else { thaw_v1(dir) };
    }
    match (&p.v2_dir, p.unified) {
        (Some(dir), true) => set_v2(dir, frozen),
        _ if p.rootless => Err(err(
            "cannot pause or resume: rootless, and no freezer cgroup is delegated to this user"
                .into(),
        )),
        _ => Err(err(
            "cannot pause or resume: no freezer cgroup (v1 freezer controller not mounted)".into(),
        )),
    }
}

fn state_v1(dir: &Path) -> Result<String, CgroupError> {
    Ok(read_string(dir, "freezer.state")?.trim().to_string())
}

fn write_v1(dir: &Path, v: &str) -> Result<(), CgroupError> {
    try_write(dir, "freezer.state", v).map_err(|e| {
        err(format!(
            "write {v} to {}: {e}",
            dir.join("freezer.state").display()
        ))
    })
}

/// runc's loop: write FROZEN and read back; while FREEZING keep going,
/// and every 50 tries thaw briefly so a task stuck in a vfork-like state
/// can move on.
fn freeze_v1(dir: &Path) -> Result<(), CgroupError> {
    for i in 0..1000 {
        if i % 50 == 49 {
            let _ = write_v1(dir, "THAWED");
            std::thread::sleep(Duration::from_millis(10));
        }
        write_v1(dir, "FROZEN")?;
        if i % 25 == 24 {
            std::thread::sleep(Duration::from_micros(10));
        }
        match state_v1(dir)?.as_str() {
            "FROZEN" => return Ok(()),
            "FREEZING" => continue,
            other => {
                let _ = write_v1(dir, "THAWED");
                return Err(err(format!(
                    "unexpected freezer state {other:?} while freezing"
                )));
            }
        }
    }
    let _ = write_v1(dir, "THAWED");
    Err(err(format!(
        "unable to freeze {}: still FREEZING after 1000 tries",
        dir.display()
    )))
}

fn thaw_v1(dir: &Path) -> Result<(), CgroupError> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        write_v1(dir, "THAWED")?;
        if state_v1(dir)? == "THAWED" {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(err(format!("{} did not thaw", dir.display())));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `frozen` value from cgroup.events.
fn events_frozen(dir: &Path) -> Result<bool, CgroupError> {
    let ev = read_string(dir, "cgroup.events")?;
    Ok(ev.lines().any(|l| l.trim() == "frozen 1"))
}

fn set_v2(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    let v = if frozen { "1" } else { "0" };
    try_write(dir, "cgroup.freeze", v).map_err(|e| {
        err(format!(
            "write {v} to {}: {e} (freezer not supported?)",
            dir.join("cgroup.freeze").display()
        ))
    })?;
    let deadline = Instant::now() + TIMEOUT;
    let mut nap = Duration::from_micros(100);
    loop {
        if events_frozen(dir)? == frozen {
            return Ok(());
        }
        if Instant::now() > deadline {
            if frozen {
                let _ = try_write(dir, "cgroup.freeze", "0");
            }
            return Err(err(format!(
                "timeout waiting for {} to report frozen {v}",
                dir.join("cgroup.events").display()
            )));
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

/// Where a container joining `p` would be frozen, before it has joined:
/// the file that says so and what it says. The container's own cgroup is
/// read if it exists, else the nearest existing ancestor (a cgroup made
/// below a frozen one is born frozen): v1 `freezer.state` (FROZEN or
/// FREEZING; it reflects frozen ancestors), and cgroup2 `cgroup.freeze` of
/// that cgroup and every ancestor (it holds only the cgroup's own
/// setting). Unreadable or absent files (the root, no freezer) mean not
/// frozen.
pub(super) fn frozen_before_create(p: &CgroupPaths) -> Option<(PathBuf, String)> {
    let nearest = |dir: &Path| dir.ancestors().find(|d| d.is_dir()).map(Path::to_path_buf);
    if let Some(d) = p.freezer.as_deref().and_then(nearest) {
        let file = d.join("freezer.state");
        if let Ok(s) = std::fs::read_to_string(&file) {
            if matches!(s.trim(), "FROZEN" | "FREEZING") {
                return Some((file, s.trim().to_string()));
            }
        }
    }
    if let Some(d) = p.v2_dir.as_deref().and_then(nearest) {
        for a in d.ancestors() {
            let file = a.join("cgroup.freeze");
            match std::fs::read_to_string(&file) {
                Ok(s) if s.trim() == "1" => return Some((file, "1".into())),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    None
}
