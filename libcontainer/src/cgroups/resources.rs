//! `linux.resources` checked and normalised before anything is written:
//! runc's zero-means-unset rules, -1 for unlimited, field-named errors, and
//! the v1 -> v2 conversions (shares -> weight, blkio weight -> io.weight,
//! memory+swap -> swap).

use std::collections::BTreeMap;

use oci_spec::runtime::LinuxResources;

use super::devices::{self, Rule};
use super::{invalid, CgroupError};

const F: &str = "linux.resources";

/// One `major:minor value` entry (blkio throttles, weights).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevValue {
    pub major: i64,
    pub minor: i64,
    pub value: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Throttles {
    pub read_bps: Vec<DevValue>,
    pub write_bps: Vec<DevValue>,
    pub read_iops: Vec<DevValue>,
    pub write_iops: Vec<DevValue>,
}

impl Throttles {
    /// (spec field, v1 file, v2 io.max key, entries)
    pub fn each(&self) -> [(&'static str, &'static str, &'static str, &[DevValue]); 4] {
        [
            (
                "throttleReadBpsDevice",
                "blkio.throttle.read_bps_device",
                "rbps",
                &self.read_bps,
            ),
            (
                "throttleWriteBpsDevice",
                "blkio.throttle.write_bps_device",
                "wbps",
                &self.write_bps,
            ),
            (
                "throttleReadIOPSDevice",
                "blkio.throttle.read_iops_device",
                "riops",
                &self.read_iops,
            ),
            (
                "throttleWriteIOPSDevice",
                "blkio.throttle.write_iops_device",
                "wiops",
                &self.write_iops,
            ),
        ]
    }
}

/// The resources to write, in runc's internal form: `None` (or an empty
/// list) is "leave alone"; -1 is "unlimited".
#[derive(Debug, Clone, Default)]
pub struct Res {
    pub memory: Option<i64>,
    pub reservation: Option<i64>,
    pub swap: Option<i64>,
    pub kernel: Option<i64>,
    pub kernel_tcp: Option<i64>,
    pub swappiness: Option<u64>,
    pub oom_kill_disable: bool,
    pub check_before_update: bool,
    pub use_hierarchy: Option<bool>,

    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpu_burst: Option<u64>,
    pub rt_runtime: Option<i64>,
    pub rt_period: Option<u64>,
    pub cpus: Option<String>,
    pub mems: Option<String>,
    pub cpu_idle: Option<i64>,

    pub pids: Option<i64>,

    pub blkio_weight: Option<u16>,
    pub blkio_leaf_weight: Option<u16>,
    /// (major, minor, weight, leaf weight)
    pub weight_devices: Vec<(i64, i64, Option<u16>, Option<u16>)>,
    pub throttles: Throttles,

    /// (page size as in the file names, e.g. "2MB", limit)
    pub hugepages: Vec<(String, u64)>,
    pub net_class_id: Option<u32>,
    pub net_priorities: Vec<(String, u32)>,
    pub rdma: BTreeMap<String, (Option<u32>, Option<u32>)>,
    pub unified: BTreeMap<String, String>,

    /// The complete rule list (spec rules, then runc's default allowed
    /// devices); `None` leaves the device cgroup alone.
    pub devices: Option<Vec<Rule>>,
}

/// runc's `ConvertCPUSharesToCgroupV2Value` (the linear one, runc <= 1.2 and
/// crun): shares 2..262144 -> cpu.weight 1..10000.
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// runc's `ConvertBlkIOToIOWeightValue`: blkio 10..1000 -> io.weight 1..10000.
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// runc's `ConvertMemorySwapToCgroupV2Value`: the spec's memory+swap to
/// memory.swap.max (`None`: leave alone, -1: max).
pub fn swap_to_v2(swap: Option<i64>, memory: Option<i64>) -> Result<Option<i64>, CgroupError> {
    let field = format!("{F}.memory.swap");
    match (swap, memory) {
        (None, Some(-1)) => Ok(Some(-1)),
        (None, _) | (Some(-1), _) => Ok(swap),
        (Some(s), Some(-1)) => Ok(Some(s)),
        (Some(_), None) => Err(invalid(
            field,
            "cannot set a swap limit on cgroup v2 without a memory limit",
        )),
        (Some(s), Some(m)) if s < m => Err(invalid(
            field,
            format!("memory+swap limit {s} must be >= the memory limit {m}"),
        )),
        (Some(s), Some(m)) => Ok(Some(s - m)),
    }
}

/// A limit where -1 means unlimited, 0 means unset and other negatives are
/// refused.
fn limit(field: &str, v: Option<i64>) -> Result<Option<i64>, CgroupError> {
    match v {
        None | Some(0) => Ok(None),
        Some(x) if x < -1 => Err(invalid(
            format!("{F}.{field}"),
            format!("{x} is not a valid limit (use -1 for unlimited)"),
        )),
        Some(x) => Ok(Some(x)),
    }
}

fn nonzero(v: Option<u64>) -> Option<u64> {
    v.filter(|x| *x != 0)
}

fn weight(field: &str, v: Option<u16>) -> Result<Option<u16>, CgroupError> {
    match v {
        None | Some(0) => Ok(None),
        Some(w) if !(10..=1000).contains(&w) => Err(invalid(
            format!("{F}.{field}"),
            format!("{w} is out of range: the weight must be 10..1000"),
        )),
        Some(w) => Ok(Some(w)),
    }
}

/// Check a cpu/mem list like `0-3,5`.
pub fn check_list(field: &str, s: &str) -> Result<(), CgroupError> {
    let bad = || {
        invalid(
            format!("{F}.{field}"),
            format!("{s:?} is not a list like \"0-3,5\""),
        )
    };
    for part in s.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u32 = a.trim().parse().map_err(|_| bad())?;
        let b: u32 = b.trim().parse().map_err(|_| bad())?;
        if a > b {
            return Err(bad());
        }
    }
    Ok(())
}

fn dev(field: &str, major: i64, minor: i64) -> Result<(), CgroupError> {
    if major < 0 || minor < 0 {
        return Err(invalid(
            format!("{F}.{field}"),
            format!("device {major}:{minor}: major and minor must not be negative"),
        ));
    }
    Ok(())
}

fn throttles(
    field: &str,
    v: Option<&Vec<oci_spec::runtime::LinuxThrottleDevice>>,
) -> Result<Vec<DevValue>, CgroupError> {
    let mut out = Vec::new();
    for (i, t) in v.map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
        dev(&format!("blockIO.{field}[{i}]"), t.major(), t.minor())?;
        out.push(DevValue {
            major: t.major(),
            minor: t.minor(),
            value: t.rate(),
        });
    }
    Ok(out)
}

impl Res {
    /// Validate and normalise; `v2` selects the cgroup v2 rules (swap).
    pub fn from_spec(r: &LinuxResources, v2: bool) -> Result<Res, CgroupError> {
        let mut out = Res::default();
        if let Some(m) = r.memory() {
            out.memory = limit("memory.limit", m.limit())?;
            out.reservation = limit("memory.reservation", m.reservation())?;
            out.swap = limit("memory.swap", m.swap())?;
            out.kernel = limit("memory.kernel", m.kernel())?;
            out.kernel_tcp = limit("memory.kernelTCP", m.kernel_tcp())?;
            out.swappiness = m.swappiness();
            if let Some(s) = out.swappiness.filter(|s| *s > 100) {
                return Err(invalid(
                    format!("{F}.memory.swappiness"),
                    format!("invalid memory swappiness value: {s} (valid range is 0-100)"),
                ));
            }
            out.oom_kill_disable = m.disable_oom_killer().unwrap_or(false);
            out.check_before_update = m.check_before_update().unwrap_or(false);
            out.use_hierarchy = m.use_hierarchy();
            // cgroup v2 is always hierarchical: true is what it does anyway.
            if v2 && out.use_hierarchy == Some(false) {
                return Err(invalid(
                    format!("{F}.memory.useHierarchy"),
                    "false: cgroup v2 is always hierarchical",
                ));
            }
            if let (Some(s), Some(l)) = (out.swap, out.memory) {
                if s > 0 && l > 0 && s < l {
                    return Err(invalid(
                        format!("{F}.memory.swap"),
                        format!("memory+swap limit {s} must be >= the memory limit {l}"),
                    ));
                }
            }
            if v2 {
                swap_to_v2(out.swap, out.memory)?;
            }
        }
        if let Some(c) = r.cpu() {
            out.cpu_shares = nonzero(c.shares());
            out.cpu_quota = limit("cpu.quota", c.quota())?;
            out.cpu_period = nonzero(c.period());
            out.cpu_burst = c.burst();
            out.rt_runtime = limit("cpu.realtimeRuntime", c.realtime_runtime())?;
            out.rt_period = nonzero(c.realtime_period());
            out.cpu_idle = c.idle();
            if let Some(i) = out.cpu_idle.filter(|i| !(0..=1).contains(i)) {
                return Err(invalid(
                    format!("{F}.cpu.idle"),
                    format!("{i} is not 0 or 1"),
                ));
            }
            for (field, v, dst) in [
                ("cpu.cpus", c.cpus(), &mut out.cpus),
                ("cpu.mems", c.mems(), &mut out.mems),
            ] {
                if let Some(s) = v.as_deref().filter(|s| !s.trim().is_empty()) {
                    check_list(field, s)?;
                    *dst = Some(s.trim().to_string());
                }
            }
        }
        if let Some(p) = r.pids() {
            out.pids = limit("pids.limit", Some(p.limit()))?;
        }
        if let Some(b) = r.block_io() {
            out.blkio_weight = weight("blockIO.weight", b.weight())?;
            out.blkio_leaf_weight = weight("blockIO.leafWeight", b.leaf_weight())?;
            for (i, wd) in b
                .weight_device()
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                let field = format!("blockIO.weightDevice[{i}]");
                dev(&field, wd.major(), wd.minor())?;
                let w = weight(&format!("{field}.weight"), wd.weight())?;
                let lw = weight(&format!("{field}.leafWeight"), wd.leaf_weight())?;
                out.weight_devices.push((wd.major(), wd.minor(), w, lw));
            }
            out.throttles = Throttles {
                read_bps: throttles(
                    "throttleReadBpsDevice",
                    b.throttle_read_bps_device().as_ref(),
                )?,
                write_bps: throttles(
                    "throttleWriteBpsDevice",
                    b.throttle_write_bps_device().as_ref(),
                )?,
                read_iops: throttles(
                    "throttleReadIOPSDevice",
                    b.throttle_read_iops_device().as_ref(),
                )?,
                write_iops: throttles(
                    "throttleWriteIOPSDevice",
                    b.throttle_write_iops_device().as_ref(),
                )?,
            };
        }
        for (i, h) in r
            .hugepage_limits()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let field = format!("{F}.hugepageLimits[{i}]");
            let size = h.page_size();
            if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(invalid(
                    format!("{field}.pageSize"),
                    format!("{size:?} is not a page size like \"2MB\""),
                ));
            }
            let lim = u64::try_from(h.limit()).map_err(|_| {
                invalid(
                    format!("{field}.limit"),
                    format!("{} must not be negative", h.limit()),
                )
            })?;
            out.hugepages.push((size.clone(), lim));
        }
        if let Some(n) = r.network() {
            out.net_class_id = n.class_id();
            for p in n.priorities().as_deref().unwrap_or(&[]) {
                if p.name().is_empty() || p.name().contains(char::is_whitespace) {
                    return Err(invalid(
                        format!("{F}.network.priorities"),
                        format!("{:?} is not an interface name", p.name()),
                    ));
                }
                out.net_priorities.push((p.name().clone(), p.priority()));
            }
        }
        if let Some(rd) = r.rdma() {
            for (dev, l) in rd {
                if dev.is_empty() || dev.contains(char::is_whitespace) {
                    return Err(invalid(
                        format!("{F}.rdma"),
                        format!("{dev:?} is not an RDMA device name"),
                    ));
                }
                out.rdma
                    .insert(dev.clone(), (l.hca_handles(), l.hca_objects()));
            }
        }
        if let Some(u) = r.unified() {
            for (k, v) in u {
                if k.is_empty() || k.contains('/') || k.starts_with('.') {
                    return Err(invalid(
                        format!("{F}.unified"),
                        format!("{k:?} must be a cgroup file name (no slashes)"),
                    ));
                }
                out.unified.insert(k.clone(), v.clone());
            }
        }
        let mut rules = devices::parse(r.devices().as_deref().unwrap_or(&[]))?;
        rules.extend_from_slice(devices::DEFAULT_ALLOWED);
        out.devices = Some(rules);
        Ok(out)
    }
}

/// Merge `new` into `old` the way `update` does: every field `new` sets
/// replaces the old value, everything else is kept. Setting the memory
/// limit to -1 without a swap value resets swap too (runc).
pub fn merge(
    old: Option<&LinuxResources>,
    new: &LinuxResources,
) -> Result<LinuxResources, serde_json::Error> {
    let mut base = serde_json::to_value(old.cloned().unwrap_or_default())?;
    let patch = serde_json::to_value(new)?;
    merge_value(&mut base, &patch);
    let unlimited = new
        .memory()
        .is_some_and(|m| m.limit() == Some(-1) && m.swap().is_none());
    if unlimited {
        if let Some(m) = base.get_mut("memory").and_then(|m| m.as_object_mut()) {
            m.remove("swap");
        }
    }
    serde_json::from_value(base)
}

fn merge_value(base: &mut serde_json::Value, patch: &serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    continue;
                }
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge_value(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).expect("resources json")
    }

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(swap_to_v2(Some(300), Some(100)).expect("ok"), Some(200));
        assert_eq!(swap_to_v2(None, Some(-1)).expect("ok"), Some(-1));
        assert_eq!(swap_to_v2(Some(-1), Some(100)).expect("ok"), Some(-1));
        assert!(swap_to_v2(Some(50), Some(100)).is_err());
        assert!(swap_to_v2(Some(50), None).is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let e = Res::from_spec(&res(r#"{"memory":{"limit":-5}}"#), false).expect_err("bad");
        assert!(
            e.to_string().starts_with("linux.resources.memory.limit:"),
            "{e}"
        );
        let e = Res::from_spec(&res(r#"{"cpu":{"cpus":"0-x"}}"#), false).expect_err("bad");
        assert!(
            e.to_string().starts_with("linux.resources.cpu.cpus:"),
            "{e}"
        );
        let e = Res::from_spec(&res(r#"{"pids":{"limit":-3}}"#), false).expect_err("bad");
        assert!(
            e.to_string().starts_with("linux.resources.pids.limit:"),
            "{e}"
        );
        let e = Res::from_spec(&res(r#"{"memory":{"swappiness":101}}"#), false).expect_err("bad");
        assert!(e.to_string().contains("swappiness"), "{e}");
        let e = Res::from_spec(
            &res(r#"{"devices":[{"allow":true,"type":"c","access":"rwx"}]}"#),
            false,
        )
        .expect_err("bad");
        assert!(
            e.to_string()
                .starts_with("linux.resources.devices[0].access:"),
            "{e}"
        );
        let e = Res::from_spec(&res(r#"{"unified":{"../x":"1"}}"#), true).expect_err("bad");
        assert!(e.to_string().starts_with("linux.resources.unified:"), "{e}");
        let ok = Res::from_spec(&res(r#"{"memory":{"limit":-1},"pids":{"limit":-1}}"#), true)
            .expect("ok");
        assert_eq!(ok.memory, Some(-1));
        assert_eq!(ok.pids, Some(-1));
    }

    #[test]
    fn merge_keeps_and_replaces() {
        let old = res(
            r#"{"memory":{"limit":100,"swap":200},"cpu":{"shares":512,"quota":1000},"devices":[{"allow":false,"access":"rwm"}]}"#,
        );
        let new = res(r#"{"cpu":{"quota":2000},"pids":{"limit":10}}"#);
        let m = merge(Some(&old), &new).expect("merge");
        let cpu = m.cpu().as_ref().expect("cpu");
        assert_eq!(cpu.shares(), Some(512));
        assert_eq!(cpu.quota(), Some(2000));
        assert_eq!(m.memory().expect("mem").swap(), Some(200));
        assert_eq!(m.pids().expect("pids").limit(), 10);
        assert_eq!(m.devices().as_ref().map(Vec::len), Some(1));
        let m = merge(Some(&old), &res(r#"{"memory":{"limit":-1}}"#)).expect("merge");
        assert_eq!(m.memory().expect("mem").swap(), None);
    }
}
