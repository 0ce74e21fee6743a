//! cgroups for containers on cgroup v1 (incl. the hybrid layout) and pure
//! v2: where a container's cgroups are, creating them, applying
//! `linux.resources` (runc's semantics and v1 <-> v2 conversions), putting
//! processes in, freezing, statistics, OOM notification, killing what is
//! inside, and removing them.
//!
//! Submodules: [`resources`] validates and normalises the spec's resources,
//! `v1`/`v2` write them, `devices`/`bpf` turn device rules into v1 list
//! entries or a v2 eBPF program, `freezer` pauses, [`stats`] reads usage,
//! [`oom`] watches for OOM kills.

mod bpf;
mod devices;
mod freezer;
pub mod oom;
pub mod resources;
mod rootless;
pub mod stats;
pub mod systemd;
mod v1;
mod v2;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
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
    /// A resource value that cannot be applied (checked before writing).
    #[error("{field}: {msg}")]
    Invalid { field: String, msg: String },
    /// The kernel refused a value (runc's words: "failed to write").
    #[error("{field}: failed to write {value:?} to {}: {source}{hint}", path.display())]
    Write {
        field: String,
        path: PathBuf,
        value: String,
        source: std::io::Error,
        hint: String,
    },
    #[error("linux.resources.devices: {0}")]
    Devices(#[from] bpf::BpfError),
    #[error("{0}")]
    Freezer(String),
    /// A call to systemd failed (the systemd driver), naming the unit.
    #[error("systemd unit {unit}: {op}: {source}")]
    Systemd {
        unit: String,
        op: &'static str,
        source: Box<crate::dbus::DbusError>,
    },
    /// The systemd driver cannot work on this host.
    #[error("--systemd-cgroup: {0}")]
    SystemdUnavailable(String),
    /// runc's words ("container's cgroup unexpectedly frozen"), and where.
    #[error("linux.cgroupsPath: container's cgroup unexpectedly frozen ({} reads {state}): the container would freeze on joining it; thaw it or use another cgroup", file.display())]
    Frozen { file: PathBuf, state: String },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn invalid(field: impl Into<String>, msg: impl Into<String>) -> CgroupError {
    CgroupError::Invalid {
        field: field.into(),
        msg: msg.into(),
    }
}

/// Write `value` to `dir/file` in one write(2), as cgroupfs wants.
pub(crate) fn try_write(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(file))?;
    f.write_all(value.as_bytes())
}

/// Write `value` (if any) to `file`. When the kernel refuses it with
/// EINVAL and `retry_later` (a value it depends on is written next, as
/// period/burst depend on quota), hand it back to be written after that
/// (runc's ordering).
pub(crate) fn write_or_defer(
    dir: &Path,
    file: &str,
    value: Option<String>,
    retry_later: bool,
    err: impl FnOnce(std::io::Error, &str) -> CgroupError,
) -> Result<Option<String>, CgroupError> {
    let Some(v) = value else { return Ok(None) };
    match try_write(dir, file, &v) {
        Ok(()) => Ok(None),
        Err(e) if retry_later && e.raw_os_error() == Some(libc::EINVAL) => Ok(Some(v)),
        Err(e) => Err(err(e, &v)),
    }
}

/// The error for a failed cgroup file write, with a hint for common causes.
pub(crate) fn write_error(
    field: &str,
    dir: &Path,
    file: &str,
    value: &str,
    source: std::io::Error,
) -> CgroupError {
    let hint = match source.raw_os_error() {
        Some(libc::ENOENT) if file.contains("leaf_weight") => {
            " (leaf weights were CFQ's, which Linux 5.0 removed)".to_string()
        }
        Some(libc::ENOENT) if file.contains("weight") => {
            " (this kernel has no blkio/io weight support)".to_string()
        }
        Some(libc::ENOENT) if dir.join("cgroup.controllers").exists() => format!(
            " (no {file} here: is the {} controller enabled in the parent's cgroup.subtree_control?)",
            file.split('.').next().unwrap_or(file)
        ),
        Some(libc::ENOENT) => format!(" (this kernel has no {file})"),
        _ => String::new(),
    };
    CgroupError::Write {
        field: field.to_string(),
        path: dir.join(file),
        value: value.to_string(),
        source,
        hint,
    }
}

/// Write a resource file, naming the spec field on failure.
pub(crate) fn write(field: &str, dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    try_write(dir, file, value).map_err(|e| write_error(field, dir, file, value, e))
}

pub(crate) fn read_string(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let p = dir.join(file);
    std::fs::read_to_string(&p).map_err(io("read", &p))
}

/// A file holding one number (`max` reads as u64::MAX).
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    let s = read_string(dir, file)?;
    parse_u64(s.trim()).ok_or_else(|| CgroupError::Io {
        op: "parse",
        path: dir.join(file),
        source: std::io::Error::new(ErrorKind::InvalidData, format!("not a number: {s:?}")),
    })
}

pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// The value of `key` in a flat-keyed file (`key value` lines).
pub(crate) fn read_keyed(dir: &Path, file: &str, key: &str) -> Result<u64, CgroupError> {
    let s = read_string(dir, file)?;
    Ok(s.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| parse_u64(v.trim()))
        .unwrap_or(0))
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
    /// v1 only: controller name (`memory`, `cpu`, `name=systemd`, ...) to
    /// the container's directory in the hierarchy holding it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub v1: BTreeMap<String, PathBuf>,
    /// With the systemd driver: the unit systemd made for the container
    /// (its cgroup is `v2_dir`; on v1, `dirs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::Unit>,
    /// Rootless: only the hierarchies delegated to the user are here (see
    /// [`CgroupPaths::keep_delegated`]); a setting for a controller that
    /// is not is refused as not delegated, and device rules are left to
    /// the user namespace (device cgroups need host privilege).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rootless: bool,
}

struct Hierarchy {
    mount: PathBuf,
    /// v1 controllers (or `name=xyz`); empty for cgroup2.
    controllers: Vec<String>,
}

fn hierarchies() -> Result<Vec<Hierarchy>, CgroupError> {
    let info = crate::mountinfo::read().map_err(io("read", Path::new("/proc/self/mountinfo")))?;
    let mut out = Vec::new();
    for e in crate::mountinfo::entries(&info) {
        // A bind of part of a hierarchy is not the hierarchy.
        if e.root != "/" {
            continue;
        }
        let (mount, superopts) = (e.mount_point, e.super_options);
        let h = match e.fstype {
            "cgroup2" => Hierarchy {
                mount,
                controllers: Vec::new(),
            },
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
                Hierarchy { mount, controllers }
            }
            _ => continue,
        };
        // The same hierarchy mounted twice: keep one, preferring
        // /sys/fs/cgroup.
        match out
            .iter_mut()
            .find(|o: &&mut Hierarchy| o.controllers == h.controllers)
        {
            Some(o) if !o.mount.starts_with("/sys/fs/cgroup") => *o = h,
            Some(_) => {}
            None => out.push(h),
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

/// `base` joined with `sub` (lexically, `..` resolved), if that stays
/// `base` or below it. runc checks a string prefix, which lets `../<id>x`
/// reach a sibling; this compares whole components.
fn sub_cgroup(base: &Path, sub: &str) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    for c in Path::new(sub).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out.starts_with(base).then_some(out)
}

fn not_sub(arg: &str, sub: &str) -> CgroupError {
    invalid(
        format!("--cgroup {arg:?}"),
        format!("{sub} is not a sub cgroup path: it leaves the container's cgroup"),
    )
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
        // Pure v2: cgroup2 is /sys/fs/cgroup itself (a named v1 hierarchy
        // mounted elsewhere does not change that).
        let unified = hs
            .iter()
            .any(|h| h.controllers.is_empty() && h.mount == Path::new("/sys/fs/cgroup"));
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
            for c in &h.controllers {
                paths.v1.entry(c.clone()).or_insert_with(|| dir.clone());
            }
            paths.dirs.push(dir);
        }
        Ok(paths)
    }

    /// The systemd driver's plan: the unit for `cgroups_path`
    /// (`slice:prefix:name`, see [`systemd`]) and its directory on the
    /// cgroup2 mount (on cgroup v1: in every hierarchy). Needs systemd as
    /// the host's init.
    /// With `user` (rootless), the unit is the calling user's systemd's
    /// (runc's rootless systemd driver): its cgroup is below that manager's
    /// own, which systemd delegates to the user.
    pub fn plan_systemd(
        cgroups_path: Option<&Path>,
        id: &str,
        user: bool,
    ) -> Result<Self, CgroupError> {
        let path = cgroups_path
            .map(|p| {
                p.to_str()
                    .ok_or_else(|| invalid("linux.cgroupsPath", "not valid UTF-8"))
            })
            .transpose()?;
        let (unit, rel) = systemd::Unit::plan(path, id, user)?;
        if !systemd::running() {
            return Err(CgroupError::SystemdUnavailable(
                "systemd is not this host's init (no /run/systemd/system); use the cgroupfs driver"
                    .into(),
            ));
        }
        let unified = hierarchies()?
            .iter()
            .any(|h| h.controllers.is_empty() && h.mount == Path::new("/sys/fs/cgroup"));
        if !unified {
            if user {
                return Err(CgroupError::SystemdUnavailable(
                    "rootless: the user's systemd needs a pure cgroup v2 host (on cgroup v1 nothing is delegated to the user); use the cgroupfs driver".into(),
                ));
            }
            // v1 (runc's legacy driver): the unit's directory in every
            // hierarchy. systemd makes it in those it manages; the others
            // (cpuset, freezer, ...) are made when the unit is started.
            let mut paths = Self::plan(Some(&Path::new("/").join(&rel)), id)?;
            paths.systemd = Some(unit);
            return Ok(paths);
        }
        // The user manager's cgroup, from the manager itself.
        let base = if user {
            let mut sd = unit.connect()?;
            let cg = sd.control_group().map_err(|e| CgroupError::Systemd {
                unit: unit.name.clone(),
                op: "ControlGroup",
                source: Box::new(e),
            })?;
            Path::new("/sys/fs/cgroup").join(relative(Path::new(&cg))?)
        } else {
            PathBuf::from("/sys/fs/cgroup")
        };
        let dir = base.join(rel);
        Ok(CgroupPaths {
            dirs: vec![dir.clone()],
            freezer: None,
            unified: true,
            v2_dir: Some(dir),
            v1: BTreeMap::new(),
            systemd: Some(unit),
            // Device rules need host privilege (BPF): left to the user
            // namespace, as with delegated cgroupfs.
            rootless: user,
        })
    }

    /// The cgroup is made by systemd once the init exists
    /// ([`CgroupPaths::start_unit`]), not by [`CgroupPaths::create`].
    pub fn made_with_init(&self) -> bool {
        self.systemd.is_some()
    }

    /// The systemd driver: have systemd make the unit with `pid` in it,
    /// with the resource properties it manages, then write every resource
    /// to the unit's cgroup files (as runc's systemd driver does). Returns
    /// the warnings of [`CgroupPaths::apply`]. `started` tells whether the
    /// unit was made (then it is ours to stop, even if a later step failed).
    pub fn start_unit(
        &self,
        pid: i32,
        resources: &oci_spec::runtime::LinuxResources,
        started: &mut bool,
    ) -> Result<Vec<String>, CgroupError> {
        let Some(unit) = &self.systemd else {
            return Err(CgroupError::NoHierarchy);
        };
        let mut r = resources::Res::from_spec(resources, self.unified)?;
        if self.rootless {
            r.devices = None;
        }
        let mut warnings = unit.start(Some(pid), &mut r, self.unified)?;
        *started = true;
        if !self.unified {
            // v1: the hierarchies systemd does not manage get the
            // directory and the pid from us (runc's join), then every
            // resource goes to the files.
            self.create()?;
            self.add(pid)?;
            v1::apply(&self.v1_dirs()?, false, &r, &mut warnings)?;
            return Ok(warnings);
        }
        let Some(dir) = &self.v2_dir else {
            return Err(CgroupError::NoHierarchy);
        };
        v2::create(dir)?;
        v2::apply(dir, &r, &mut warnings)?;
        Ok(warnings)
    }

    /// Create every directory (parents too). v1 cpuset needs cpus/mems copied
    /// down from the parent before a task can join; on pure v2 every
    /// ancestor gets the available controllers in its subtree_control (as
    /// runc does), so the container's directory has their files.
    pub fn create(&self) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            if self.unified && Some(dir) == self.v2_dir.as_ref() {
                v2::create(dir)?;
                continue;
            }
            std::fs::create_dir_all(dir).map_err(io("mkdir", dir))?;
            if !self.unified && dir.join("cpuset.cpus").exists() {
                init_cpuset(dir)?;
            }
        }
        Ok(())
    }

    /// Apply `linux.resources` to the container's cgroups. Returns warnings
    /// for settings that are accepted but have no effect. Everything is
    /// validated before the first write; on error the caller removes the
    /// cgroup.
    pub fn apply(
        &self,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<Vec<String>, CgroupError> {
        self.apply_with(resources, false)
    }

    /// [`CgroupPaths::apply`]; with `skip_devices` the device rules are left
    /// alone (`update`, like runc, never changes them).
    pub fn apply_with(
        &self,
        resources: &oci_spec::runtime::LinuxResources,
        skip_devices: bool,
    ) -> Result<Vec<String>, CgroupError> {
        let mut r = resources::Res::from_spec(resources, self.unified)?;
        if skip_devices || self.rootless {
            r.devices = None;
        }
        let mut warnings = Vec::new();
        if let Some(unit) = &self.systemd {
            // systemd first (its values would otherwise undo ours on a
            // daemon-reload); refuse a limit below the usage before
            // systemd applies it, as the file write would.
            if r.check_before_update {
                let usage = match (self.dir_for("memory"), self.unified) {
                    (Some(d), true) => read_u64(&d, "memory.current").ok(),
                    (Some(d), false) => read_u64(&d, "memory.usage_in_bytes").ok(),
                    (None, _) => None,
                };
                if let Some(usage) = usage {
                    v1::check_usage_against(usage, &r)?;
                }
            }
            // v1: systemd rewrites the device list as it applies them,
            // denying everything for a moment: frozen meanwhile (runc too).
            let thaw = !self.unified && !self.is_frozen() && self.freeze().is_ok();
            let set = unit.set_properties(&mut r, self.unified);
            if thaw {
                self.thaw()?;
            }
            set?;
        }
        if self.unified {
            let Some(dir) = self.v2_dir.as_deref() else {
                let mut asked = resources.clone();
                asked.set_devices(None);
                if self.rootless && asked == oci_spec::runtime::LinuxResources::default() {
                    return Ok(warnings);
                }
                return Err(if self.rootless {
                    invalid("linux.resources", "rootless, and the container's cgroup v2 directory is not delegated to this user: its limits cannot be set")
                } else {
                    CgroupError::NoHierarchy
                });
            };
            v2::apply(dir, &r, &mut warnings)?;
        } else {
            v1::apply(&self.v1_dirs()?, self.rootless, &r, &mut warnings)?;
        }
        Ok(warnings)
    }

    /// Controller -> directory for v1 (derived from the mounts for state
    /// written before the map existed).
    fn v1_dirs(&self) -> Result<BTreeMap<String, PathBuf>, CgroupError> {
        if !self.v1.is_empty() {
            return Ok(self.v1.clone());
        }
        let mut map = BTreeMap::new();
        for h in hierarchies()? {
            if let Some(dir) = self.dirs.iter().find(|d| d.starts_with(&h.mount)) {
                for c in h.controllers {
                    map.entry(c).or_insert_with(|| dir.clone());
                }
            }
        }
        Ok(map)
    }

    /// The directory holding v1 `controller`, or the v2 directory.
    pub(crate) fn dir_for(&self, controller: &str) -> Option<PathBuf> {
        if self.unified {
            return self.v2_dir.clone();
        }
        self.v1_dirs().ok()?.remove(controller)
    }

    /// The directories an `exec`'d process joins, given runc's `--cgroup`
    /// arguments: none (or `""`, or `/`) is the container's own cgroup;
    /// `path` alone is that sub-cgroup in every hierarchy (the unified one
    /// of a hybrid host too); `ctrl[,ctrl]:path`, repeatable, is that
    /// sub-cgroup in the hierarchies of those v1 controllers only (the
    /// names are the hierarchies' options: `memory`, `cpu`, `name=systemd`).
    /// A path must stay inside the container's cgroup (`..` may be used
    /// within it). Directories are not created: the sub-cgroup must exist.
    pub fn exec_dirs(&self, args: &[String]) -> Result<Vec<PathBuf>, CgroupError> {
        let bad = |arg: &str, msg: String| invalid(format!("--cgroup {arg:?}"), msg);
        let mut all: Option<&str> = None;
        let mut per: BTreeMap<&str, &str> = BTreeMap::new();
        for arg in args {
            let parts: Vec<&str> = arg.splitn(3, ':').collect();
            let (ctrls, sub) = match parts.as_slice() {
                [sub] => ("", *sub),
                [ctrls, sub] => (*ctrls, *sub),
                _ => {
                    return Err(bad(
                        arg,
                        "invalid --cgroup argument: want [<controller>[,<controller>]:]<path>"
                            .into(),
                    ))
                }
            };
            if ctrls.is_empty() {
                if args.len() != 1 {
                    return Err(bad(
                        arg,
                        "invalid --cgroup argument: missing <controller>: prefix (a path for every controller must be the only --cgroup)".into(),
                    ));
                }
                all = Some(sub);
                continue;
            }
            for c in ctrls.split(',') {
                if c.is_empty() {
                    return Err(bad(
                        arg,
                        "invalid --cgroup argument: empty controller name".into(),
                    ));
                }
                // As in runc, a controller named twice takes the last path.
                per.insert(c, sub);
            }
        }
        if let Some(sub) = all {
            return self
                .dirs
                .iter()
                .map(|d| sub_cgroup(d, sub).ok_or_else(|| not_sub(sub, sub)))
                .collect();
        }
        if per.is_empty() {
            return Ok(self.dirs.clone());
        }
        let v1 = if self.unified {
            BTreeMap::new()
        } else {
            self.v1_dirs()?
        };
        // Hierarchy directory -> (a controller that chose it, its path).
        let mut chosen: BTreeMap<&Path, (&str, &str)> = BTreeMap::new();
        for (ctrl, sub) in &per {
            let Some(dir) = v1.get(*ctrl) else {
                let known: Vec<&str> = v1.keys().map(String::as_str).collect();
                let msg = if self.unified {
                    format!("unknown controller {ctrl}: cgroup v2 has one hierarchy; give the path without a controller")
                } else {
                    format!(
                        "unknown controller {ctrl} (this container's controllers: {})",
                        known.join(", ")
                    )
                };
                return Err(bad(&format!("{ctrl}:{sub}"), msg));
            };
            match chosen.get(dir.as_path()) {
                Some((other, p)) if p != sub => {
                    return Err(bad(
                        &format!("{ctrl}:{sub}"),
                        format!("{ctrl} and {other} share a hierarchy but were given different paths ({sub:?}, {p:?})"),
                    ))
                }
                _ => {
                    chosen.insert(dir.as_path(), (ctrl, sub));
                }
            }
        }
        self.dirs
            .iter()
            .map(|d| match chosen.get(d.as_path()) {
                Some((ctrl, sub)) => {
                    sub_cgroup(d, sub).ok_or_else(|| not_sub(&format!("{ctrl}:{sub}"), sub))
                }
                None => Ok(d.clone()),
            })
            .collect()
    }

    /// How often the OOM killer fired in the container's memory cgroup
    /// (v1 `memory.oom_control`, v2 `memory.events`), and the peak usage
    /// where the kernel keeps one; `None` without a memory controller.
    pub fn oom_kills(&self) -> Option<(u64, Option<u64>)> {
        let dir = self.dir_for("memory")?;
        if self.unified {
            let kills = read_keyed(&dir, "memory.events", "oom_kill").ok()?;
            return Some((kills, read_u64(&dir, "memory.peak").ok()));
        }
        let kills = read_keyed(&dir, "memory.oom_control", "oom_kill").ok()?;
        Some((kills, read_u64(&dir, "memory.max_usage_in_bytes").ok()))
    }

    /// Move `pid` into every hierarchy.
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        self.add_to(pid, false)
    }

    /// The v2 directory as an fd for `clone3(CLONE_INTO_CGROUP)`: the child
    /// is born in it, so no cgroup.procs write (which, when the cgroup
    /// rwsem is cold, waits for an RCU grace period) is needed there.
    pub fn v2_fd(&self) -> Option<std::os::fd::OwnedFd> {
        let dir = self.v2_dir.as_ref()?;
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
        crate::sys::openat2(
            crate::sys::cwd(),
            &c,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
            0,
        )
        .ok()
    }

    /// Move `pid` into every hierarchy but v2 (it was cloned into it).
    pub fn add_except_v2(&self, pid: i32) -> Result<(), CgroupError> {
        self.add_to(pid, true)
    }

    fn add_to(&self, pid: i32, skip_v2: bool) -> Result<(), CgroupError> {
        let s = pid.to_string();
        for dir in &self.dirs {
            if skip_v2 && self.v2_dir.as_ref() == Some(dir) {
                continue;
            }
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

    /// Pids in the container's cgroup and every cgroup below it (runc's
    /// `GetAllPids`), sorted.
    pub fn all_pids(&self) -> Vec<i32> {
        let mut out = Vec::new();
        if let Some(dir) = self.dirs.iter().find(|d| d.join("cgroup.procs").exists()) {
            collect_pids(dir, &mut out, 0);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Refuse cgroups that would freeze the container as it joins them
    /// (runc 1.1 refuses an existing frozen one; it would hang on one below
    /// a frozen cgroup, which this refuses too). Call before creating them.
    pub fn check_not_frozen(&self) -> Result<(), CgroupError> {
        match freezer::frozen_before_create(self) {
            Some((file, state)) => Err(CgroupError::Frozen { file, state }),
            None => Ok(()),
        }
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

    /// Freeze every process and wait until the kernel reports the group
    /// frozen (v1 `freezer.state` FROZEN, v2 `cgroup.events` frozen 1).
    pub fn freeze(&self) -> Result<(), CgroupError> {
        freezer::set(self, true)
    }

    /// Thaw the group and wait until it reads back thawed.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        freezer::set(self, false)
    }

    /// Signal every process in the cgroup. With the v1 freezer (or v2
    /// cgroup.freeze) the group is frozen first so nothing forks away.
    pub fn signal_all(&self, sig: i32) {
        if sig == libc::SIGKILL && self.unified {
            // cgroup.kill (5.14+) kills the whole subtree atomically.
            if let Some(d) = &self.v2_dir {
                if try_write(d, "cgroup.kill", "1").is_ok() {
                    return;
                }
            }
        }
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
        let was_frozen = self.is_frozen();
        if let Some((file, on, _)) = &freeze {
            let _ = std::fs::write(file, on);
        }
        for pid in self.all_pids() {
            let _ = crate::sys::kill(pid, sig);
        }
        if let Some((file, _, off)) = &freeze {
            // A paused container stays paused, unless it is being killed.
            if !was_frozen || sig == libc::SIGKILL {
                let _ = std::fs::write(file, off);
            }
        }
    }

    /// SIGKILL whatever is left, wait for the cgroup to empty, and remove the
    /// directories (only the container's own: parents are left, as runc
    /// does). Missing directories are fine (delete is idempotent).
    pub fn destroy(&self) -> Result<(), CgroupError> {
        // systemd driver: stop the unit (systemd removes its cgroup); kill
        // first so the stop job does not wait for a slow SIGTERM. When
        // systemd cannot be reached, the directories still go below, and
        // the scope ends by itself once its cgroup is empty.
        if let Some(unit) = &self.systemd {
            self.signal_all(libc::SIGKILL);
            let _ = unit.stop();
        }
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
                        // Sub-cgroups made inside the container go first.
                        remove_children(dir);
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

fn collect_pids(dir: &Path, out: &mut Vec<i32>, depth: usize) {
    if let Ok(data) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(data.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if depth > 32 {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), out, depth + 1);
            }
        }
    }
}

/// Remove (deepest first) the cgroups a container created below its own.
fn remove_children(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_children(&e.path());
                let _ = std::fs::remove_dir(e.path());
            }
        }
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

    fn v1_paths() -> CgroupPaths {
        let d = |h: &str| PathBuf::from(format!("/sys/fs/cgroup/{h}/c1"));
        let mut v1 = BTreeMap::new();
        v1.insert("cpu".to_string(), d("cpu,cpuacct"));
        v1.insert("cpuacct".to_string(), d("cpu,cpuacct"));
        v1.insert("memory".to_string(), d("memory"));
        v1.insert("name=systemd".to_string(), d("systemd"));
        CgroupPaths {
            dirs: vec![d("cpu,cpuacct"), d("memory"), d("systemd"), d("unified")],
            v1,
            ..Default::default()
        }
    }

    fn exec_dirs(p: &CgroupPaths, args: &[&str]) -> Result<Vec<String>, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        p.exec_dirs(&args)
            .map(|v| v.iter().map(|d| d.display().to_string()).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn exec_cgroup_forms() {
        let p = v1_paths();
        let own = exec_dirs(&p, &[]).expect("none");
        assert_eq!(exec_dirs(&p, &["/"]).expect("/"), own);
        assert_eq!(exec_dirs(&p, &[""]).expect("empty"), own);
        assert_eq!(exec_dirs(&p, &["sub/.."]).expect("sub/.."), own);
        assert_eq!(exec_dirs(&p, &["../c1"]).expect("../c1"), own);
        let all = exec_dirs(&p, &["a/b"]).expect("all");
        assert!(all.iter().all(|d| d.ends_with("/c1/a/b")), "{all:?}");
        assert_eq!(exec_dirs(&p, &["/a/b"]).expect("/a/b"), all);
        assert_eq!(exec_dirs(&p, &[":a/b"]).expect(":a/b"), all);
        let mem = exec_dirs(&p, &["memory:s"]).expect("memory:s");
        assert_eq!(
            mem,
            [
                "/sys/fs/cgroup/cpu,cpuacct/c1",
                "/sys/fs/cgroup/memory/c1/s",
                "/sys/fs/cgroup/systemd/c1",
                "/sys/fs/cgroup/unified/c1"
            ]
        );
        let two = exec_dirs(&p, &["memory,name=systemd:s"]).expect("two");
        assert_eq!(
            two,
            exec_dirs(&p, &["memory:s", "name=systemd:s"]).expect("repeated")
        );
        assert!(two[2].ends_with("systemd/c1/s"), "{two:?}");
        assert!(exec_dirs(&p, &["cpu:s", "cpuacct:s"]).is_ok());
        assert_eq!(exec_dirs(&p, &["memory:x", "memory:s"]).expect("last"), mem);
    }

    #[test]
    fn exec_cgroup_errors() {
        let p = v1_paths();
        let err = |args: &[&str]| exec_dirs(&p, args).expect_err("must fail");
        assert!(err(&["bogus:s"]).contains("unknown controller bogus"));
        assert!(err(&["systemd:s"]).contains("unknown controller systemd"));
        assert!(err(&[".."]).contains("not a sub cgroup path"));
        assert!(err(&["memory:s/../../x"]).contains("not a sub cgroup path"));
        assert!(err(&["../c1x"]).contains("not a sub cgroup path"));
        assert!(err(&["a:b:c"]).contains("invalid --cgroup argument"));
        assert!(err(&["s", "memory:s"]).contains("missing <controller>: prefix"));
        assert!(err(&["memory,:s"]).contains("empty controller"));
        assert!(err(&["cpu:a", "cpuacct:b"]).contains("share a hierarchy"));
        let v2 = CgroupPaths {
            dirs: vec![PathBuf::from("/sys/fs/cgroup/c1")],
            unified: true,
            ..Default::default()
        };
        assert!(v2
            .exec_dirs(&["memory:s".to_string()])
            .expect_err("v2")
            .to_string()
            .contains("unknown controller memory"));
        assert_eq!(
            v2.exec_dirs(&["s".to_string()]).expect("v2 path"),
            [PathBuf::from("/sys/fs/cgroup/c1/s")]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("max"), Some(u64::MAX));
        assert_eq!(parse_u64("42"), Some(42));
        assert_eq!(parse_u64("x"), None);
    }
}
