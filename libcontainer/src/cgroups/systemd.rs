//! The systemd cgroup driver (runc's `--systemd-cgroup`, containerd's
//! `SystemdCgroup = true`): the container's cgroup is a transient scope
//! that systemd creates for the init's PID over D-Bus, with `Delegate=yes`
//! so everything below it is ours. On cgroup v1 (runc's legacy driver) the
//! scope's directory is the same path in every hierarchy: systemd makes it
//! in those it manages, the runtime in the others (cpuset, freezer, ...).
//!
//! runc's rules: `linux.cgroupsPath` is `slice:prefix:name` (empty parts
//! take runc's defaults: slice `system.slice`, and no cgroupsPath at all is
//! `:runc:<id>`); the unit is `<prefix>-<name>.scope` (or `name` itself
//! when it is a `.slice`); a nested slice `a-b-c.slice` lives at
//! `a.slice/a-b.slice/a-b-c.slice`. The resources systemd knows go to it
//! as unit properties (so a `daemon-reload` does not undo them); then every
//! resource is written to the cgroup files as the v2 driver does, which
//! covers the rest (devices, hugetlb, io limits, rdma, `unified` keys...).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::devices::{access_string, DevType, Rule};
use super::resources::{blkio_to_io_weight, shares_to_weight, swap_to_v2, Res};
use super::{invalid, CgroupError};
use crate::dbus::{cpuset_to_bitmask, DbusError, Property, Systemd, Value};

const FIELD: &str = "linux.cgroupsPath";
/// The kernel's default CFS period (µs), v1 and v2.
const DEFAULT_PERIOD: u64 = 100_000;
/// systemd versions that know a property (runc's table).
const SD_QUOTA_PERIOD: u32 = 242;
const SD_ALLOWED_CPUS: u32 = 244;
const SD_CPU_IDLE: u32 = 252;
const SD_OOM_POLICY: u32 = 253;

/// The container's systemd unit, kept in state.json so that every later
/// command (update, delete) addresses the same unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// `<prefix>-<name>.scope`, or a `.slice`.
    pub name: String,
    /// The slice the unit goes in (`system.slice` by default,
    /// `user.slice` for a user's systemd).
    pub slice: String,
    /// Made by the calling user's own systemd instance (rootless), not
    /// the system's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user: bool,
}

/// Does `path` have the systemd driver's `slice:prefix:name` form (with a
/// slice, or an empty first part)? containerd 1.6/1.7's CRI sends this
/// when the pod's cgroup parent is a slice, even to a runtime whose
/// options it does not pass on.
pub fn is_systemd_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split(':').collect();
    parts.len() == 3
        && (parts[0].is_empty() || parts[0].ends_with(".slice"))
        && !parts[2].is_empty()
        && !path.contains('/')
}

impl Unit {
    /// The unit for `cgroups_path` (`slice:prefix:name`) of container
    /// `id`, and its cgroup directory relative to its manager's cgroup
    /// (the cgroup2 mount's root for the system instance). `user`: the
    /// calling user's systemd (rootless).
    pub fn plan(
        cgroups_path: Option<&str>,
        id: &str,
        user: bool,
    ) -> Result<(Unit, PathBuf), CgroupError> {
        let (slice, prefix, name) = match cgroups_path.filter(|p| !p.is_empty()) {
            None => ("", "runc", id),
            Some(p) => {
                let parts: Vec<&str> = p.split(':').collect();
                let [slice, prefix, name] = parts[..] else {
                    return Err(invalid(
                        FIELD,
                        format!("expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {p:?} instead"),
                    ));
                };
                (slice, prefix, name)
            }
        };
        if name.is_empty() {
            return Err(invalid(
                FIELD,
                format!("{cgroups_path:?}: the name (third part) is empty"),
            ));
        }
        let slice = match (slice.is_empty(), user) {
            (false, _) => slice,
            (true, false) => "system.slice",
            (true, true) => "user.slice",
        };
        let unit = if name.ends_with(".slice") {
            name.to_string()
        } else {
            format!("{prefix}-{name}.scope")
        };
        check_unit_name(&unit)?;
        let dir = expand_slice(slice)?.join(&unit);
        Ok((
            Unit {
                name: unit,
                slice: slice.to_string(),
                user,
            },
            dir,
        ))
    }

    fn is_slice(&self) -> bool {
        self.name.ends_with(".slice")
    }

    /// Create the unit with `pid` in it (`None`: a slice without
    /// processes), with the resource properties systemd knows, and wait
    /// for systemd's job. `r`'s CPU quota may be rounded up as systemd
    /// rounds it, so that the file gets the same value.
    /// `unified`: a cgroup v2 host (else v1's property names, and the
    /// device rules as systemd's, see [`device_properties`], whose
    /// warnings are returned).
    pub(super) fn start(
        &self,
        pid: Option<i32>,
        r: &mut Res,
        unified: bool,
    ) -> Result<Vec<String>, CgroupError> {
        let mut sd = self.connect()?;
        let version = sd.version().map_err(|e| self.error("Version", e))?;
        let mut props: Vec<Property> = vec![
            prop(
                "Description",
                Value::Str(format!("oxrun container {}", self.name)),
            ),
            prop("MemoryAccounting", Value::Bool(true)),
            prop("CPUAccounting", Value::Bool(true)),
            prop("IOAccounting", Value::Bool(true)),
            prop("TasksAccounting", Value::Bool(true)),
            prop("DefaultDependencies", Value::Bool(false)),
        ];
        if self.is_slice() {
            props.push(prop("Wants", Value::Str(self.slice.clone())));
        } else {
            props.push(prop("Slice", Value::Str(self.slice.clone())));
            props.push(prop("Delegate", Value::Bool(true)));
        }
        if let Some(pid) = pid {
            props.push(prop("PIDs", Value::U32s(vec![pid as u32])));
        }
        if let Some(policy) = oom_policy(r, version)? {
            props.push(prop("OOMPolicy", Value::Str(policy.into())));
        }
        props.extend(resource_properties(r, version, unified)?);
        let mut warnings = Vec::new();
        if let (false, Some(rules)) = (unified, &r.devices) {
            props.extend(device_properties(rules, &mut warnings));
        }
        let r = match sd.start_transient_unit(&self.name, &props) {
            // A failed unit of the same name lingers until reset (runc
            // resets it and tries once more).
            Err(DbusError::UnitExists { .. }) => {
                let _ = sd.reset_failed_unit(&self.name);
                sd.start_transient_unit(&self.name, &props)
            }
            r => r,
        };
        match r {
            Ok(()) => Ok(warnings),
            // Someone else's unit: not ours to touch.
            Err(e @ DbusError::UnitExists { .. }) => Err(self.error("StartTransientUnit", e)),
            // Ours, but its job failed or timed out: leave nothing.
            Err(e) => {
                let _ = sd.stop_unit(&self.name);
                let _ = sd.reset_failed_unit(&self.name);
                Err(self.error("StartTransientUnit", e))
            }
        }
    }

    /// `update`: the properties systemd knows, at runtime.
    pub(super) fn set_properties(&self, r: &mut Res, unified: bool) -> Result<(), CgroupError> {
        let mut sd = self.connect()?;
        let version = sd.version().map_err(|e| self.error("Version", e))?;
        let props = resource_properties(r, version, unified)?;
        if props.is_empty() {
            return Ok(());
        }
        sd.set_unit_properties(&self.name, true, &props)
            .map_err(|e| self.error("SetUnitProperties", e))
    }

    /// Stop the unit (systemd kills what is left and removes the cgroup)
    /// and forget it if it failed. A unit that is already gone is fine.
    pub(super) fn stop(&self) -> Result<(), CgroupError> {
        let mut sd = self.connect()?;
        let r = match sd.stop_unit(&self.name) {
            Ok(()) | Err(DbusError::NoSuchUnit { .. }) => Ok(()),
            Err(e) => Err(self.error("StopUnit", e)),
        };
        let _ = sd.reset_failed_unit(&self.name);
        r
    }

    pub(super) fn connect(&self) -> Result<Systemd, CgroupError> {
        if self.user {
            Systemd::connect_user()
        } else {
            Systemd::connect()
        }
        .map_err(|e| self.error("connect", e))
    }

    fn error(&self, op: &'static str, source: DbusError) -> CgroupError {
        CgroupError::Systemd {
            unit: self.name.clone(),
            op,
            source: Box::new(source),
        }
    }
}

/// Is systemd the host's init (sd_booted(3): /run/systemd/system exists)?
pub fn running() -> bool {
    std::fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
}

/// systemd's unit-name rules (unit_name_is_valid): at most 255 bytes of
/// `[A-Za-z0-9:_.\-@\\]`. Anything else (a `/` above all: it would leave
/// the slice's directory) is refused here, naming the field.
fn check_unit_name(unit: &str) -> Result<(), CgroupError> {
    let ok = unit.len() <= 255
        && !unit.starts_with('.')
        && unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_.-@\\".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            FIELD,
            format!("{unit:?} is not a valid systemd unit name"),
        ))
    }
}

/// cgroup v1: systemd writes its own device list to the unit's
/// `devices.allow` whenever it applies the unit (a daemon-reload, any
/// SetUnitProperties), so it must get ours: DevicePolicy=strict and a
/// DeviceAllow entry per allowed device, computed as the kernel applies
/// the rules in order (runc's way). What systemd cannot say (deny rules on
/// an allow-all base, `*:n`, a major without a /proc/devices name) is left
/// out with a warning; the cgroup files still get every rule.
fn device_properties(rules: &[Rule], warnings: &mut Vec<String>) -> Vec<Property> {
    let field = "linux.resources.devices";
    // The kernel's v1 semantics: type `a` resets to deny-all or allow-all;
    // others add to or take access from the exact (type, major, minor).
    let mut allow_all = true;
    let mut list: Vec<Rule> = Vec::new();
    for rule in rules {
        if rule.typ == DevType::All {
            allow_all = rule.allow;
            list.clear();
            continue;
        }
        let same = |e: &&mut Rule| (e.typ, e.major, e.minor) == (rule.typ, rule.major, rule.minor);
        // An exception adds access when it goes against the default.
        let add = rule.allow != allow_all;
        match list.iter_mut().find(same) {
            Some(e) if add => e.access |= rule.access,
            Some(e) => e.access &= !rule.access,
            None if add => list.push(*rule),
            None => {}
        }
    }
    list.retain(|e| e.access != 0);
    if allow_all {
        // systemd has no deny list: it is told to deny all (as runc does).
        if !list.is_empty() {
            warnings.push(format!("{field}: systemd has no deny list: it denies every device, only the cgroup files have the rules (a daemon-reload leaves the container no devices)"));
        }
        let policy = if list.is_empty() { "auto" } else { "strict" };
        return vec![
            prop("DevicePolicy", Value::Str(policy.into())),
            prop("DeviceAllow", Value::StrPairs(Vec::new())),
        ];
    }
    let mut allow = Vec::new();
    for e in &list {
        let kind = if e.typ == DevType::Block {
            "block"
        } else {
            "char"
        };
        let path = match (e.major, e.minor) {
            (Some(ma), Some(mi)) => Some(format!("/dev/{kind}/{ma}:{mi}")),
            (None, None) => Some(format!("{kind}-*")),
            // A major by its /proc/devices name; `*:n` systemd cannot say.
            (Some(ma), None) => device_group(kind, ma).map(|n| format!("{kind}-{n}")),
            (None, Some(_)) => None,
        };
        match path {
            Some(path) => allow.push((path, access_string(e.access))),
            None => warnings.push(format!(
                "{field}: {}: systemd cannot hold this rule: only the cgroup file has it (a daemon-reload drops it)",
                e.v1_string()
            )),
        }
    }
    vec![
        prop("DevicePolicy", Value::Str("strict".into())),
        prop("DeviceAllow", Value::StrPairs(allow)),
    ]
}

/// The /proc/devices name of `kind` ("char" or "block") device `major`.
fn device_group(kind: &str, major: u32) -> Option<String> {
    let data = std::fs::read_to_string("/proc/devices").ok()?;
    let header = if kind == "char" {
        "Character devices:"
    } else {
        "Block devices:"
    };
    data.split("\n\n")
        .find(|sec| sec.starts_with(header))?
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().split_once(' '))
        .find(|(n, _)| n.parse() == Ok(major))
        .map(|(_, name)| name.trim().to_string())
}

/// `a-b-c.slice` -> `a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
pub fn expand_slice(slice: &str) -> Result<PathBuf, CgroupError> {
    let bad = || {
        invalid(
            FIELD,
            format!("invalid slice name {slice:?}: a slice is NAME.slice, with no '/' and no empty part between dashes"),
        )
    };
    let name = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if name.is_empty() || slice.contains('/') {
        return Err(bad());
    }
    check_unit_name(slice)?;
    let mut path = PathBuf::new();
    if name == "-" {
        return Ok(path);
    }
    let mut prefix = String::new();
    for part in name.split('-') {
        if part.is_empty() {
            return Err(bad());
        }
        path.push(format!("{prefix}{part}.slice"));
        prefix.push_str(part);
        prefix.push('-');
    }
    Ok(path)
}

fn prop(name: &str, v: Value) -> Property {
    (name.to_string(), v)
}

/// -1 (or any negative) is systemd's "infinity".
fn limit(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// `memory.oom.group` becomes OOMPolicy, which systemd takes only when the
/// unit is made (runc does the same, from systemd 253).
fn oom_policy(r: &Res, version: u32) -> Result<Option<&'static str>, CgroupError> {
    let Some(v) = r.unified.get("memory.oom.group") else {
        return Ok(None);
    };
    if version < SD_OOM_POLICY {
        return Ok(None);
    }
    match v.trim() {
        "0" => Ok(Some("continue")),
        "1" => Ok(Some("kill")),
        _ => Err(invalid(
            "linux.resources.unified.memory.oom.group",
            format!("{v:?}: expected 0 or 1"),
        )),
    }
}

/// The unit properties for the resources systemd manages on cgroup v2
/// (runc's table, plus IOWeight from blockIO.weight), or with `!unified`
/// its v1 names (runc's legacy table; systemd has no cpuset on v1). What
/// systemd is too old for is left to the files alone, as runc does.
pub(super) fn resource_properties(
    r: &mut Res,
    version: u32,
    unified: bool,
) -> Result<Vec<Property>, CgroupError> {
    let mut p = Vec::new();
    if !unified {
        if let Some(m) = r.memory.filter(|m| *m != 0) {
            p.push(prop("MemoryLimit", Value::U64(limit(m))));
        }
        if let Some(s) = r.cpu_shares.filter(|s| *s != 0) {
            p.push(prop("CPUShares", Value::U64(s)));
        }
        cpu_quota(&mut p, &mut r.cpu_quota, r.cpu_period, version);
        if let Some(w) = r.blkio_weight.filter(|w| *w != 0) {
            p.push(prop("BlockIOWeight", Value::U64(u64::from(w))));
        }
        if let Some(n) = r.pids.filter(|n| *n > 0 || *n == -1) {
            p.push(prop("TasksMax", Value::U64(limit(n))));
        }
        return Ok(p);
    }
    if let Some(m) = r.memory {
        p.push(prop("MemoryMax", Value::U64(limit(m))));
    }
    if let Some(m) = r.reservation {
        p.push(prop("MemoryLow", Value::U64(limit(m))));
    }
    if let Some(s) = swap_to_v2(r.swap, r.memory)? {
        p.push(prop("MemorySwapMax", Value::U64(limit(s))));
    }
    let idle = r.cpu_idle == Some(1) && version >= SD_CPU_IDLE;
    if idle {
        // CPUWeight=0 is how systemd sets cpu.idle.
        p.push(prop("CPUWeight", Value::U64(0)));
    } else if let Some(s) = r.cpu_shares.filter(|s| *s != 0) {
        p.push(prop("CPUWeight", Value::U64(shares_to_weight(s))));
    }
    cpu_quota(&mut p, &mut r.cpu_quota, r.cpu_period, version);
    if let Some(n) = r.pids {
        // systemd refuses TasksMax=0.
        let n = if n == 0 { 1 } else { limit(n) };
        p.push(prop("TasksMax", Value::U64(n)));
    }
    if version >= SD_ALLOWED_CPUS {
        if let Some(c) = r.cpus.as_deref().filter(|c| !c.is_empty()) {
            p.push(prop(
                "AllowedCPUs",
                Value::Bytes(range_to_bits(c, "linux.resources.cpu.cpus")?),
            ));
        }
        if let Some(m) = r.mems.as_deref().filter(|m| !m.is_empty()) {
            p.push(prop(
                "AllowedMemoryNodes",
                Value::Bytes(range_to_bits(m, "linux.resources.cpu.mems")?),
            ));
        }
    }
    if let Some(w) = r.blkio_weight.filter(|w| *w != 0) {
        p.push(prop("IOWeight", Value::U64(blkio_to_io_weight(w))));
    }
    unified_properties(&mut p, r, version, idle)?;
    Ok(p)
}

/// CPUQuotaPerSecUSec (and CPUQuotaPeriodUSec, systemd 242+). systemd
/// keeps the quota as a whole percentage of a CPU, so a fractional one is
/// rounded up to the next 10 ms per second, and `quota` follows so the file
/// gets the same value (runc's addCpuQuota).
fn cpu_quota(p: &mut Vec<Property>, quota: &mut Option<i64>, period: Option<u64>, version: u32) {
    let period = period.filter(|p| *p != 0);
    if let Some(period) = period {
        if version >= SD_QUOTA_PERIOD {
            p.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
        }
    }
    let q = quota.filter(|q| *q != 0);
    if q.is_none() && period.is_none() {
        return;
    }
    let mut per_sec = u64::MAX;
    if let Some(qv) = q.filter(|q| *q > 0) {
        let period = period.unwrap_or(DEFAULT_PERIOD);
        per_sec = (qv as u64).saturating_mul(1_000_000) / period;
        if per_sec % 10_000 != 0 {
            per_sec = (per_sec / 10_000 + 1) * 10_000;
            *quota = Some((per_sec.saturating_mul(period) / 1_000_000) as i64);
        }
    }
    p.push(prop("CPUQuotaPerSecUSec", Value::U64(per_sec)));
}

/// `linux.resources.unified` keys systemd has a property for (runc's
/// unifiedResToSystemdProps); the others are only written to the files.
fn unified_properties(
    p: &mut Vec<Property>,
    r: &Res,
    version: u32,
    idle: bool,
) -> Result<(), CgroupError> {
    for (k, v) in &r.unified {
        let field = format!("linux.resources.unified.{k}");
        let v = v.trim();
        let number = |s: &str| -> Result<u64, CgroupError> {
            if s == "max" {
                return Ok(u64::MAX);
            }
            s.parse()
                .map_err(|_| invalid(&field, format!("{v:?} is not a number or \"max\"")))
        };
        match k.as_str() {
            "cpu.idle" if v == "1" && version >= SD_CPU_IDLE && !idle => {
                p.push(prop("CPUWeight", Value::U64(0)));
            }
            "cpu.weight" if !(idle || r.unified.get("cpu.idle").map(|s| s.trim()) == Some("1")) => {
                p.push(prop("CPUWeight", Value::U64(number(v)?)));
            }
            "cpu.max" => {
                let mut f = v.split_whitespace();
                let (q, per) = (f.next().unwrap_or("max"), f.next());
                let mut quota = if q == "max" {
                    Some(0)
                } else {
                    Some(number(q)? as i64)
                };
                let period = per.map(number).transpose()?.or(Some(DEFAULT_PERIOD));
                cpu_quota(p, &mut quota, period, version);
            }
            "cpuset.cpus" | "cpuset.mems" if version >= SD_ALLOWED_CPUS => {
                let name = if k == "cpuset.cpus" {
                    "AllowedCPUs"
                } else {
                    "AllowedMemoryNodes"
                };
                p.push(prop(name, Value::Bytes(range_to_bits(v, &field)?)));
            }
            "memory.high" | "memory.low" | "memory.min" | "memory.max" | "memory.swap.max" => {
                let name = match k.as_str() {
                    "memory.high" => "MemoryHigh",
                    "memory.low" => "MemoryLow",
                    "memory.min" => "MemoryMin",
                    "memory.max" => "MemoryMax",
                    _ => "MemorySwapMax",
                };
                p.push(prop(name, Value::U64(number(v)?)));
            }
            "pids.max" => {
                let n = number(v)?;
                p.push(prop("TasksMax", Value::U64(n.max(1))));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A cpuset list (`0-3,5`) as systemd's bitmask, naming the field when it
/// is not one.
fn range_to_bits(list: &str, field: &str) -> Result<Vec<u8>, CgroupError> {
    if list.trim().is_empty() {
        return Err(invalid(field, "empty list"));
    }
    cpuset_to_bitmask(list).map_err(|e| invalid(field, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(p: Option<&str>) -> Result<(Unit, PathBuf), CgroupError> {
        Unit::plan(p, "c1", false)
    }

    #[test]
    fn cgroups_path_forms() {
        let (u, d) = plan(Some("system.slice:docker:abc")).unwrap();
        assert_eq!(u.name, "docker-abc.scope");
        assert_eq!(u.slice, "system.slice");
        assert_eq!(d, PathBuf::from("system.slice/docker-abc.scope"));
        let (u, d) = plan(None).unwrap();
        assert_eq!(
            (u.name.as_str(), u.slice.as_str()),
            ("runc-c1.scope", "system.slice")
        );
        assert_eq!(d, PathBuf::from("system.slice/runc-c1.scope"));
        let (u, d) = plan(Some("::x")).unwrap();
        assert_eq!(
            (u.name.as_str(), u.slice.as_str()),
            ("-x.scope", "system.slice")
        );
        assert_eq!(d, PathBuf::from("system.slice/-x.scope"));
        let (u, d) = plan(Some("kubepods-besteffort-pod12.slice:cri-containerd:ab")).unwrap();
        assert_eq!(u.name, "cri-containerd-ab.scope");
        assert_eq!(
            d,
            PathBuf::from("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-ab.scope")
        );
        let (u, d) = plan(Some("-.slice:p:n")).unwrap();
        assert_eq!(
            (u.name.as_str(), d),
            ("p-n.scope", PathBuf::from("p-n.scope"))
        );
        // A slice as the name: the unit is that slice, the prefix unused.
        let (u, d) = plan(Some("a.slice:p:a-b.slice")).unwrap();
        assert_eq!(
            (u.name.as_str(), d),
            ("a-b.slice", PathBuf::from("a.slice/a-b.slice"))
        );
    }

    #[test]
    fn bad_cgroups_paths_name_the_field() {
        for p in [
            "a:b",
            "a:b:c:d",
            "/x/y",
            "sys/tem.slice:a:b",
            "a:b:",
            "x.slice:a/b:c",
            "x.slice:a:../../b",
            "nodots:a:b",
            "a--b.slice:p:n",
            "-a.slice:p:n",
            ".slice:p:n",
        ] {
            let e = plan(Some(p)).expect_err(p).to_string();
            assert!(e.starts_with("linux.cgroupsPath"), "{p}: {e}");
        }
    }

    #[test]
    fn recognises_the_systemd_form() {
        assert!(is_systemd_path("system.slice:cri-containerd:abc"));
        assert!(is_systemd_path(":runc:abc"));
        assert!(!is_systemd_path("/kubepods/besteffort/pod1/abc"));
        assert!(!is_systemd_path("a:b:c"));
        assert!(!is_systemd_path("x.slice:a:b/c"));
    }

    #[test]
    fn bad_cpu_lists_name_the_field() {
        for bad in ["", "a", "3-1", "1,,2", "99999"] {
            let e = range_to_bits(bad, "linux.resources.cpu.cpus").expect_err(bad);
            assert!(e.to_string().starts_with("linux.resources.cpu.cpus"), "{e}");
        }
    }

    fn find<'a>(p: &'a [Property], name: &str) -> Option<&'a Value> {
        p.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    #[test]
    fn resource_properties_follow_runc() {
        let mut r = Res {
            memory: Some(64 << 20),
            reservation: Some(32 << 20),
            swap: Some(128 << 20),
            cpu_shares: Some(1024),
            cpu_quota: Some(12_345),
            cpu_period: Some(100_000),
            pids: Some(0),
            cpus: Some("0-1".into()),
            blkio_weight: Some(500),
            ..Default::default()
        };
        let p = resource_properties(&mut r, 252, true).unwrap();
        assert_eq!(find(&p, "MemoryMax"), Some(&Value::U64(64 << 20)));
        assert_eq!(find(&p, "MemoryLow"), Some(&Value::U64(32 << 20)));
        assert_eq!(find(&p, "MemorySwapMax"), Some(&Value::U64(64 << 20)));
        assert_eq!(
            find(&p, "CPUWeight"),
            Some(&Value::U64(shares_to_weight(1024)))
        );
        // 12.345% rounds up to 13%: 130 ms per second, and the quota follows.
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(130_000)));
        assert_eq!(find(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100_000)));
        assert_eq!(r.cpu_quota, Some(13_000));
        assert_eq!(find(&p, "TasksMax"), Some(&Value::U64(1)));
        assert_eq!(find(&p, "AllowedCPUs"), Some(&Value::Bytes(vec![3])));
        assert_eq!(
            find(&p, "IOWeight"),
            Some(&Value::U64(blkio_to_io_weight(500)))
        );
        // An old systemd gets neither the period nor the cpusets.
        let p = resource_properties(&mut r, 239, true).unwrap();
        assert!(find(&p, "CPUQuotaPeriodUSec").is_none() && find(&p, "AllowedCPUs").is_none());
        // -1 is infinity.
        let mut r = Res {
            memory: Some(-1),
            pids: Some(-1),
            cpu_quota: Some(-1),
            ..Default::default()
        };
        let p = resource_properties(&mut r, 252, true).unwrap();
        assert_eq!(find(&p, "MemoryMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(find(&p, "TasksMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(u64::MAX)));
    }

    #[test]
    fn v1_properties() {
        let mut r = Res {
            memory: Some(64 << 20),
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            pids: Some(0),
            cpus: Some("0".into()),
            blkio_weight: Some(500),
            ..Default::default()
        };
        let p = resource_properties(&mut r, 252, false).unwrap();
        assert_eq!(find(&p, "MemoryLimit"), Some(&Value::U64(64 << 20)));
        assert_eq!(find(&p, "CPUShares"), Some(&Value::U64(512)));
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(find(&p, "BlockIOWeight"), Some(&Value::U64(500)));
        // No v2 names, no cpuset (systemd has none on v1), no TasksMax=0.
        assert!(["MemoryMax", "CPUWeight", "AllowedCPUs", "TasksMax"]
            .iter()
            .all(|n| find(&p, n).is_none()));
    }

    fn devs(rules: &[Rule]) -> (Vec<Property>, Vec<String>) {
        let mut w = Vec::new();
        (device_properties(rules, &mut w), w)
    }

    #[test]
    fn device_rules_for_systemd() {
        use super::super::devices::{ACC_ALL, ACC_WRITE, DEFAULT_ALLOWED};
        let rule = |allow, typ, major, minor, access| Rule {
            allow,
            typ,
            major,
            minor,
            access,
        };
        let deny_all = rule(false, DevType::All, None, None, ACC_ALL);
        let mut rules = vec![deny_all];
        rules.extend_from_slice(DEFAULT_ALLOWED);
        let (p, w) = devs(&rules);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(find(&p, "DevicePolicy"), Some(&Value::Str("strict".into())));
        let Some(Value::StrPairs(allow)) = find(&p, "DeviceAllow") else {
            panic!("{p:?}")
        };
        let has = |path: &str, acc: &str| allow.contains(&(path.into(), acc.into()));
        assert!(has("char-*", "m") && has("block-*", "m"), "{allow:?}");
        assert!(
            has("/dev/char/1:3", "rwm") && has("char-pts", "rwm"),
            "{allow:?}"
        );
        // A later deny takes access from the same device.
        rules.push(rule(false, DevType::Char, Some(1), Some(3), ACC_WRITE));
        let (p, _) = devs(&rules);
        let Some(Value::StrPairs(allow)) = find(&p, "DeviceAllow") else {
            panic!("{p:?}")
        };
        assert!(
            allow.contains(&("/dev/char/1:3".into(), "rm".into())),
            "{allow:?}"
        );
        // Allow-all is systemd's default; a deny list it cannot hold.
        let allow_all = rule(true, DevType::All, None, None, ACC_ALL);
        let (p, w) = devs(&[deny_all, allow_all]);
        assert_eq!(find(&p, "DevicePolicy"), Some(&Value::Str("auto".into())));
        assert!(w.is_empty());
        let (p, w) = devs(&[
            allow_all,
            rule(false, DevType::Char, Some(1), Some(3), ACC_ALL),
        ]);
        assert_eq!(find(&p, "DeviceAllow"), Some(&Value::StrPairs(Vec::new())));
        assert_eq!(w.len(), 1);
        let (_, w) = devs(&[deny_all, rule(true, DevType::Char, None, Some(3), ACC_ALL)]);
        assert!(w[0].contains("c *:3 rwm"), "{w:?}");
    }

    #[test]
    fn unified_keys() {
        let mut r = Res::default();
        for (k, v) in [
            ("memory.high", "1048576"),
            ("pids.max", "max"),
            ("cpu.max", "50000 100000"),
            ("hugetlb.2MB.max", "0"),
        ] {
            r.unified.insert(k.into(), v.into());
        }
        let p = resource_properties(&mut r, 252, true).unwrap();
        assert_eq!(find(&p, "MemoryHigh"), Some(&Value::U64(1_048_576)));
        assert_eq!(find(&p, "TasksMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(p.len(), 4, "{p:?}"); // + CPUQuotaPeriodUSec; hugetlb only in the file
        r.unified.insert("memory.oom.group".into(), "1".into());
        assert_eq!(oom_policy(&r, 253).unwrap(), Some("kill"));
        assert_eq!(oom_policy(&r, 252).unwrap(), None);
    }
}
