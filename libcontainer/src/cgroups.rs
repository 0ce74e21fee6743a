//! cgroup placement for containers on cgroup v1 (incl. the hybrid layout),
//! and pure v2: where a container's cgroups are, creating them, putting
//! processes in, killing what is inside, and removing them.

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("linux.cgroupsPath: {0:?} must not contain '..' or be empty")]
    BadPath(PathBuf),
    #[error("no cgroup hierarchy is mounted")]
    NoHierarchy,
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroup {0} still has processes after SIGKILL")]
    Busy(PathBuf),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The directories of one container's cgroup, one per mounted hierarchy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CgroupPaths {
    /// One directory per hierarchy (v1 controllers, named hierarchies, v2).
    pub dirs: Vec<PathBuf>,
    /// v1 freezer directory, when there is one.
    pub freezer: Option<PathBuf>,
    /// Pure cgroup v2 (unified) host.
    pub unified: bool,
    /// The v2 directory (pure v2, or the hybrid's unified hierarchy).
    pub v2_dir: Option<PathBuf>,
}

struct Hierarchy {
    mount: PathBuf,
    /// v1 controllers (or `name=xyz`); empty for cgroup2.
    controllers: Vec<String>,
}

fn hierarchies() -> Result<Vec<Hierarchy>, CgroupError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(io("read", Path::new("/proc/self/mountinfo")))?;
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let _source = post.next();
        let superopts = post.next().unwrap_or("");
        let mount = match pre.split(' ').nth(4) {
            Some(m) => PathBuf::from(m),
            None => continue,
        };
        match fstype {
            "cgroup2" => out.push(Hierarchy {
                mount,
                controllers: Vec::new(),
            }),
            "cgroup" => {
                let controllers = superopts
                    .split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro")
                            && !o.starts_with("release_agent")
                            && *o != "xattr"
                            && *o != "noprefix"
                            && *o != "clone_children"
                            && *o != "cpuset_v2_mode"
                    })
                    .map(str::to_string)
                    .collect();
                out.push(Hierarchy { mount, controllers });
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(CgroupError::NoHierarchy);
    }
    Ok(out)
}

/// The cgroup of this process in the hierarchy with `controllers` (v1) or v2.
fn own_cgroup(controllers: &[String]) -> PathBuf {
    let data = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in data.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("/"),
        );
        let set: Vec<&str> = ctrls.split(',').filter(|c| !c.is_empty()).collect();
        let matches = if controllers.is_empty() {
            set.is_empty()
        } else {
            controllers.iter().all(|c| set.contains(&c.as_str())) && set.len() == controllers.len()
        };
        if matches {
            return PathBuf::from(path);
        }
    }
    PathBuf::from("/")
}

fn relative(p: &Path) -> Result<PathBuf, CgroupError> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => return Err(CgroupError::BadPath(p.to_path_buf())),
        }
    }
    Ok(out)
}

impl CgroupPaths {
    /// Work out where the container's cgroups go. An absolute `cgroups_path`
    /// is taken from each hierarchy's root; a relative one from our own
    /// cgroup (runc's rule); none gives `/<id>`.
    pub fn plan(cgroups_path: Option<&Path>, id: &str) -> Result<Self, CgroupError> {
        let (absolute, rel) = match cgroups_path {
            Some(p) if p.is_absolute() => (true, relative(p)?),
            Some(p) => (false, relative(p)?),
            None => (true, PathBuf::from(id)),
        };
        if rel.as_os_str().is_empty() {
            return Err(CgroupError::BadPath(
                cgroups_path.map(Path::to_path_buf).unwrap_or_default(),
            ));
        }
        let hs = hierarchies()?;
        let unified = hs.len() == 1
            && hs[0].controllers.is_empty()
            && hs[0].mount == Path::new("/sys/fs/cgroup");
        let mut paths = CgroupPaths {
            unified,
            ..Default::default()
        };
        for h in hs {
            let base = if absolute {
                h.mount.clone()
            } else {
                h.mount.join(relative(&own_cgroup(&h.controllers))?)
            };
            let dir = base.join(&rel);
            if h.controllers.iter().any(|c| c == "freezer") {
                paths.freezer = Some(dir.clone());
            }
            if h.controllers.is_empty() {
                paths.v2_dir = Some(dir.clone());
            }
            paths.dirs.push(dir);
        }
        Ok(paths)
    }

    /// Create every directory (parents too). v1 cpuset needs cpus/mems copied
    /// down from the parent before a task can join.
    pub fn create(&self) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            std::fs::create_dir_all(dir).map_err(io("mkdir", dir))?;
            if dir.join("cpuset.cpus").exists() && !self.unified {
                init_cpuset(dir)?;
            }
        }
        Ok(())
    }

    /// Apply `linux.resources` to the container's cgroups. Returns warnings
    /// for settings that are accepted but have no effect.
    pub fn apply(
        &self,
        _resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<Vec<String>, CgroupError> {
        Ok(vec![
            "linux.resources: resource limits are not applied by this oxrun build yet".into(),
        ])
    }

    /// Move `pid` into every hierarchy.
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        let s = pid.to_string();
        for dir in &self.dirs {
            let f = dir.join("cgroup.procs");
            std::fs::write(&f, &s).map_err(io("write", &f))?;
        }
        Ok(())
    }

    /// Pids in the container's cgroup (from the first hierarchy that exists).
    pub fn pids(&self) -> Vec<i32> {
        for dir in &self.dirs {
            if let Ok(data) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                return data.lines().filter_map(|l| l.trim().parse().ok()).collect();
            }
        }
        Vec::new()
    }

    pub fn is_frozen(&self) -> bool {
        if let Some(f) = &self.freezer {
            return std::fs::read_to_string(f.join("freezer.state"))
                .is_ok_and(|s| s.trim() == "FROZEN");
        }
        if self.unified {
            if let Some(d) = &self.v2_dir {
                return std::fs::read_to_string(d.join("cgroup.freeze"))
                    .is_ok_and(|s| s.trim() == "1");
            }
        }
        false
    }

    /// Signal every process in the cgroup. With the v1 freezer (or v2
    /// cgroup.freeze) the group is frozen first so nothing forks away.
    pub fn signal_all(&self, sig: i32) {
        let freeze = self
            .freezer
            .clone()
            .map(|f| (f.join("freezer.state"), "FROZEN", "THAWED"));
        let freeze = freeze.or_else(|| {
            self.unified
                .then(|| self.v2_dir.clone())
                .flatten()
                .map(|d| (d.join("cgroup.freeze"), "1", "0"))
        });
        if let Some((file, on, _)) = &freeze {
            let _ = std::fs::write(file, on);
        }
        for pid in self.pids() {
            // SAFETY: kill(2) with a pid read from the container's cgroup.
            unsafe { libc::kill(pid, sig) };
        }
        if let Some((file, _, off)) = &freeze {
            let _ = std::fs::write(file, off);
        }
    }

    /// SIGKILL whatever is left, wait for the cgroup to empty, and remove the
    /// directories. Missing directories are fine (delete is idempotent).
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut first_err = None;
        for dir in &self.dirs {
            loop {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        self.signal_all(libc::SIGKILL);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => {
                        first_err.get_or_insert(if e.raw_os_error() == Some(libc::EBUSY) {
                            CgroupError::Busy(dir.clone())
                        } else {
                            CgroupError::Io {
                                op: "rmdir",
                                path: dir.clone(),
                                source: e,
                            }
                        });
                        break;
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn init_cpuset(dir: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let f = dir.join(file);
        let cur = std::fs::read_to_string(&f).map_err(io("read", &f))?;
        if !cur.trim().is_empty() {
            continue;
        }
        if let Some(parent) = dir.parent() {
            init_cpuset(parent)?;
            let pf = parent.join(file);
            let val = std::fs::read_to_string(&pf).map_err(io("read", &pf))?;
            std::fs::write(&f, val.trim()).map_err(io("write", &f))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotdot_is_refused() {
        assert!(relative(Path::new("/a/../../etc")).is_err());
        assert_eq!(
            relative(Path::new("/a/b")).expect("ok"),
            PathBuf::from("a/b")
        );
    }
}
