//! Rootless cgroups, as runc's rootless cgroupfs manager does them: a
//! user who is not root uses the hierarchies delegated to it (where it can
//! make the container's directory and move a process in) and leaves the
//! others out; a resource setting for a controller left out is an error
//! naming the field (see `v1::apply` and [`super::CgroupPaths::apply_with`]).

use std::path::{Path, PathBuf};

use nix::unistd::{faccessat, AccessFlags};

use super::CgroupPaths;

/// Can the calling user (by its effective ids) write `path`?
fn writable(path: &Path) -> bool {
    faccessat(
        None,
        path,
        AccessFlags::W_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .is_ok()
}

/// Could the caller make `dir` (or use it, if it is there) and write its
/// `cgroup.procs`?
fn usable(dir: &Path) -> bool {
    if dir.exists() {
        return writable(&dir.join("cgroup.procs"));
    }
    // mkdir needs the nearest existing ancestor writable; what it makes
    // is then the caller's.
    dir.ancestors()
        .skip(1)
        .find(|a| a.exists())
        .is_some_and(writable)
}

/// cgroup v2 also asks for write access to `cgroup.procs` of the common
/// ancestor of the cgroup a process leaves and the one it joins (the
/// runtime's own and the container's).
fn v2_movable(dir: &Path) -> bool {
    let Some(mount) = super::hierarchies()
        .ok()
        .and_then(|hs| hs.into_iter().find(|h| h.controllers.is_empty()))
        .map(|h| h.mount)
    else {
        return false;
    };
    let Ok(own) = super::relative(&super::own_cgroup(&[])) else {
        return false;
    };
    let own = mount.join(own);
    let common = dir
        .ancestors()
        .find(|a| own.starts_with(a))
        .unwrap_or(&mount);
    writable(&common.join("cgroup.procs"))
}

impl CgroupPaths {
    /// Split `dirs` into those the caller can use (`ok`, and on v2 the
    /// common-ancestor rule) and those left out, which are returned.
    fn keep_dirs(&mut self, ok: fn(&Path) -> bool) -> Vec<PathBuf> {
        let v2 = self.v2_dir.clone();
        let (kept, dropped) = self
            .dirs
            .drain(..)
            .partition(|d| ok(d) && (Some(d) != v2.as_ref() || v2_movable(d)));
        self.dirs = kept;
        dropped
    }

    /// Rootless `exec`: leave out the directories the caller cannot move
    /// a process into (on v2, the common ancestor of its own cgroup and
    /// the container's is not the user's: the caller runs outside the
    /// delegated tree, as a login shell's session scope does). runc's
    /// rootless exec does the same; returns the directories left out.
    pub fn keep_joinable(&mut self) -> Vec<PathBuf> {
        self.keep_dirs(|d| writable(&d.join("cgroup.procs")))
    }

    /// Keep only the hierarchies the calling user can use (rootless);
    /// returns the directories left out.
    pub fn keep_delegated(&mut self) -> Vec<PathBuf> {
        self.rootless = true;
        let dropped = self.keep_dirs(usable);
        let kept = |d: &PathBuf| !dropped.contains(d);
        self.v1.retain(|_, d| kept(d));
        self.freezer = self.freezer.take().filter(kept);
        self.v2_dir = self.v2_dir.take().filter(kept);
        dropped
    }
}
