//! Writing resources to cgroup v1 controllers (runc's `fs` driver, in its
//! order: cpuset, devices, memory, cpu, pids, blkio, hugetlb, net_cls,
//! net_prio, rdma). A setting for a controller that is not mounted is an
//! error naming the field (runc: "cannot set X limit"); a controller nobody
//! asked anything of is fine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::resources::Res;
use super::{
    invalid, read_string, read_u64, try_write, write, write_error, write_or_defer, CgroupError,
};

const F: &str = "linux.resources";

/// The controllers' directories; `rootless` when hierarchies not
/// delegated to the user were left out.
struct Dirs<'a>(&'a BTreeMap<String, PathBuf>, bool);

impl Dirs<'_> {
    /// The directory of `ctrl`, or an error naming `field` when the
    /// controller is not mounted.
    fn need(&self, ctrl: &str, field: &str) -> Result<&Path, CgroupError> {
        self.0.get(ctrl).map(PathBuf::as_path).ok_or_else(|| {
            let why = if self.1 {
                "is not delegated to this user (rootless)"
            } else {
                "is not mounted on this host"
            };
            invalid(
                format!("{F}.{field}"),
                format!("cannot set this limit: the cgroup v1 {ctrl} controller {why}"),
            )
        })
    }
}

pub(super) fn apply(
    dirs: &BTreeMap<String, PathBuf>,
    rootless: bool,
    r: &Res,
    warnings: &mut Vec<String>,
) -> Result<(), CgroupError> {
    if !r.unified.is_empty() {
        return Err(invalid(
            format!("{F}.unified"),
            "invalid configuration: cannot use unified on cgroup v1 (cgroup v2 settings; this host uses cgroup v1 for the controllers)",
        ));
    }
    let d = Dirs(dirs, rootless);
    cpuset(&d, r)?;
    if let Some(rules) = &r.devices {
        let dir = d.need("devices", "devices")?;
        let f = format!("{F}.devices");
        write(&f, dir, "devices.deny", "a")?;
        for rule in rules {
            let file = if rule.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            write(&f, dir, file, &rule.v1_string())?;
        }
    }
    memory(&d, r, warnings)?;
    cpu(&d, r)?;
    if let Some(p) = r.pids {
        let v = if p < 0 {
            "max".to_string()
        } else {
            p.to_string()
        };
        write(
            &format!("{F}.pids.limit"),
            d.need("pids", "pids.limit")?,
            "pids.max",
            &v,
        )?;
    }
    blkio(&d, r)?;
    for (size, limit) in &r.hugepages {
        let dir = d.need("hugetlb", "hugepageLimits")?;
        let f = format!("{F}.hugepageLimits[{size}]");
        let v = limit.to_string();
        write(&f, dir, &format!("hugetlb.{size}.limit_in_bytes"), &v)?;
        // Reservation limits too, where the kernel has them (runc).
        let rsvd = format!("hugetlb.{size}.rsvd.limit_in_bytes");
        if dir.join(&rsvd).exists() {
            write(&f, dir, &rsvd, &v)?;
        }
    }
    if let Some(id) = r.net_class_id {
        let dir = d.need("net_cls", "network.classID")?;
        write(
            &format!("{F}.network.classID"),
            dir,
            "net_cls.classid",
            &id.to_string(),
        )?;
    }
    for (name, prio) in &r.net_priorities {
        let dir = d.need("net_prio", "network.priorities")?;
        write(
            &format!("{F}.network.priorities"),
            dir,
            "net_prio.ifpriomap",
            &format!("{name} {prio}"),
        )?;
    }
    for (dev, limits) in &r.rdma {
        let dir = d.need("rdma", "rdma")?;
        write(
            &format!("{F}.rdma.{dev}"),
            dir,
            "rdma.max",
            &rdma_line(dev, *limits),
        )?;
    }
    Ok(())
}

pub(super) fn rdma_line(dev: &str, (handles, objects): (Option<u32>, Option<u32>)) -> String {
    let mut s = dev.to_string();
    if let Some(h) = handles {
        s.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = objects {
        s.push_str(&format!(" hca_object={o}"));
    }
    s
}

/// cpuset.cpus/mems; EINVAL explains what the parent allows.
fn cpuset(d: &Dirs<'_>, r: &Res) -> Result<(), CgroupError> {
    for (field, file, v) in [
        ("cpu.cpus", "cpuset.cpus", &r.cpus),
        ("cpu.mems", "cpuset.mems", &r.mems),
    ] {
        let Some(v) = v else { continue };
        let dir = d.need("cpuset", field)?;
        cpuset_write(field, dir, file, v)?;
    }
    Ok(())
}

/// Write a cpuset list (v1 or v2); EINVAL/ERANGE say which cpus/mems the
/// parent has, since that is nearly always the reason.
pub(super) fn cpuset_write(
    field: &str,
    dir: &Path,
    file: &str,
    v: &str,
) -> Result<(), CgroupError> {
    try_write(dir, file, v).map_err(|e| {
        if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ERANGE)) {
            let effective = file.replace("cpuset.", "cpuset.effective_");
            let avail = dir
                .parent()
                .and_then(|p| {
                    read_string(p, &effective)
                        .or_else(|_| read_string(p, file))
                        .ok()
                })
                .unwrap_or_default();
            return invalid(
                format!("{F}.{field}"),
                format!(
                    "{v:?} is not available: the parent cgroup has {:?} ({})",
                    avail.trim(),
                    e
                ),
            );
        }
        write_error(&format!("{F}.{field}"), dir, file, v, e)
    })
}

fn memory(d: &Dirs<'_>, r: &Res, warnings: &mut Vec<String>) -> Result<(), CgroupError> {
    let any = r.memory.is_some()
        || r.reservation.is_some()
        || r.swap.is_some()
        || r.kernel.is_some()
        || r.kernel_tcp.is_some()
        || r.swappiness.is_some()
        || r.use_hierarchy.is_some()
        || r.oom_kill_disable;
    if !any {
        return Ok(());
    }
    let dir = d.need("memory", "memory")?;
    if r.check_before_update {
        check_usage(dir, r)?;
    }
    set_memory_and_swap(dir, r)?;
    if r.kernel.is_some() {
        warnings.push(format!(
            "{F}.memory.kernel: kernel memory limits are ignored (deprecated; this kernel does not enforce them)"
        ));
    }
    if let Some(k) = r.kernel_tcp {
        if dir.join("memory.kmem.tcp.limit_in_bytes").exists() {
            write(
                &format!("{F}.memory.kernelTCP"),
                dir,
                "memory.kmem.tcp.limit_in_bytes",
                &k.to_string(),
            )?;
        } else {
            warnings.push(format!(
                "{F}.memory.kernelTCP: ignored: this kernel has no memory.kmem.tcp.limit_in_bytes"
            ));
        }
    }
    if let Some(v) = r.reservation {
        write(
            &format!("{F}.memory.reservation"),
            dir,
            "memory.soft_limit_in_bytes",
            &v.to_string(),
        )?;
    }
    if r.oom_kill_disable {
        write(
            &format!("{F}.memory.disableOOMKiller"),
            dir,
            "memory.oom_control",
            "1",
        )?;
    }
    if let Some(s) = r.swappiness {
        write(
            &format!("{F}.memory.swappiness"),
            dir,
            "memory.swappiness",
            &s.to_string(),
        )?;
    }
    if let Some(h) = r.use_hierarchy {
        // Kernels since 5.x keep every cgroup hierarchical: writing 0 is
        // refused (EINVAL), which is then the error.
        write(
            &format!("{F}.memory.useHierarchy"),
            dir,
            "memory.use_hierarchy",
            if h { "1" } else { "0" },
        )?;
    }
    Ok(())
}

/// `checkBeforeUpdate`: refuse a limit at or below the current usage.
pub(super) fn check_usage_against(usage: u64, r: &Res) -> Result<(), CgroupError> {
    for (field, v) in [("memory.swap", r.swap), ("memory.limit", r.memory)] {
        if let Some(v) = v.filter(|v| *v > 0) {
            if v as u64 <= usage {
                return Err(invalid(
                    format!("{F}.{field}"),
                    format!("rejecting limit {v}: it is not above the current usage {usage} (checkBeforeUpdate)"),
                ));
            }
        }
    }
    Ok(())
}

fn check_usage(dir: &Path, r: &Res) -> Result<(), CgroupError> {
    match read_u64(dir, "memory.usage_in_bytes") {
        Ok(usage) => check_usage_against(usage, r),
        Err(_) => Ok(()),
    }
}

/// runc's setMemoryAndSwap: memsw must never be below the memory limit, so
/// the order of the two writes depends on the current limit.
fn set_memory_and_swap(dir: &Path, r: &Res) -> Result<(), CgroupError> {
    let has_memsw = dir.join("memory.memsw.limit_in_bytes").exists();
    let mut swap = r.swap;
    if r.memory == Some(-1) && swap.is_none() && has_memsw {
        swap = Some(-1);
    }
    let set_memory = || -> Result<(), CgroupError> {
        let Some(v) = r.memory else { return Ok(()) };
        let s = v.to_string();
        try_write(dir, "memory.limit_in_bytes", &s).map_err(|e| {
            if e.raw_os_error() == Some(libc::EBUSY) {
                let usage = read_u64(dir, "memory.usage_in_bytes").unwrap_or(0);
                let peak = read_u64(dir, "memory.max_usage_in_bytes").unwrap_or(0);
                invalid(
                    format!("{F}.memory.limit"),
                    format!("unable to set memory limit to {v} (current usage: {usage}, peak usage: {peak})"),
                )
            } else {
                write_error(&format!("{F}.memory.limit"), dir, "memory.limit_in_bytes", &s, e)
            }
        })
    };
    let set_swap = || -> Result<(), CgroupError> {
        let Some(v) = swap else { return Ok(()) };
        if !has_memsw {
            return Err(invalid(
                format!("{F}.memory.swap"),
                "cannot set a swap limit: the kernel has no swap accounting (memory.memsw.limit_in_bytes)",
            ));
        }
        write(
            &format!("{F}.memory.swap"),
            dir,
            "memory.memsw.limit_in_bytes",
            &v.to_string(),
        )
    };
    if let (Some(_), Some(s)) = (r.memory, swap) {
        let cur = read_u64(dir, "memory.limit_in_bytes")?;
        if s == -1 || cur < s as u64 {
            set_swap()?;
            return set_memory();
        }
    }
    set_memory()?;
    set_swap()
}

fn cpu(d: &Dirs<'_>, r: &Res) -> Result<(), CgroupError> {
    let any = r.cpu_shares.is_some()
        || r.cpu_quota.is_some()
        || r.cpu_period.is_some()
        || r.cpu_burst.is_some()
        || r.cpu_idle.is_some()
        || r.rt_runtime.is_some()
        || r.rt_period.is_some();
    if !any {
        return Ok(());
    }
    let dir = d.need("cpu", "cpu")?;
    if let Some(shares) = r.cpu_shares {
        let f = format!("{F}.cpu.shares");
        write(&f, dir, "cpu.shares", &shares.to_string())?;
        let got = read_u64(dir, "cpu.shares")?;
        if got != shares {
            let which = if shares > got { "maximum" } else { "minimum" };
            return Err(invalid(
                f,
                format!("{shares}: the {which} allowed cpu-shares is {got}"),
            ));
        }
    }
    // Period and quota constrain each other: on EINVAL write the other
    // first and retry (runc).
    let period_later = write_or_defer(
        dir,
        "cpu.cfs_period_us",
        r.cpu_period.map(|v| v.to_string()),
        r.cpu_quota.is_some(),
        |e, v| write_error(&format!("{F}.cpu.period"), dir, "cpu.cfs_period_us", v, e),
    )?;
    let burst_later = write_or_defer(
        dir,
        "cpu.cfs_burst_us",
        r.cpu_burst.map(|v| v.to_string()),
        r.cpu_quota.is_some(),
        |e, v| write_error(&format!("{F}.cpu.burst"), dir, "cpu.cfs_burst_us", v, e),
    )?;
    if let Some(q) = r.cpu_quota {
        write(
            &format!("{F}.cpu.quota"),
            dir,
            "cpu.cfs_quota_us",
            &q.to_string(),
        )?;
        if let Some(s) = period_later {
            write(&format!("{F}.cpu.period"), dir, "cpu.cfs_period_us", &s)?;
        }
        if let Some(s) = burst_later {
            write(&format!("{F}.cpu.burst"), dir, "cpu.cfs_burst_us", &s)?;
        }
    }
    if let Some(i) = r.cpu_idle {
        write(&format!("{F}.cpu.idle"), dir, "cpu.idle", &i.to_string())?;
    }
    rt(dir, r)
}

fn rt(dir: &Path, r: &Res) -> Result<(), CgroupError> {
    let hint = |e: std::io::Error, field: &str, file: &str, v: &str| {
        if e.raw_os_error() == Some(libc::EINVAL) {
            let parent = dir
                .parent()
                .and_then(|p| read_string(p, "cpu.rt_runtime_us").ok())
                .unwrap_or_default();
            invalid(
                format!("{F}.{field}"),
                format!(
                    "{file} {v}: refused ({e}); the parent cgroup's cpu.rt_runtime_us is {} and children cannot exceed it",
                    parent.trim()
                ),
            )
        } else {
            write_error(&format!("{F}.{field}"), dir, file, v, e)
        }
    };
    let period_later = write_or_defer(
        dir,
        "cpu.rt_period_us",
        r.rt_period.map(|v| v.to_string()),
        r.rt_runtime.is_some(),
        |e, v| hint(e, "cpu.realtimePeriod", "cpu.rt_period_us", v),
    )?;
    if let Some(rt) = r.rt_runtime {
        let s = rt.to_string();
        try_write(dir, "cpu.rt_runtime_us", &s)
            .map_err(|e| hint(e, "cpu.realtimeRuntime", "cpu.rt_runtime_us", &s))?;
        if let Some(p) = period_later {
            try_write(dir, "cpu.rt_period_us", &p)
                .map_err(|e| hint(e, "cpu.realtimePeriod", "cpu.rt_period_us", &p))?;
        }
    }
    Ok(())
}

fn blkio(d: &Dirs<'_>, r: &Res) -> Result<(), CgroupError> {
    let any = r.blkio_weight.is_some()
        || r.blkio_leaf_weight.is_some()
        || !r.weight_devices.is_empty()
        || r.throttles.each().iter().any(|t| !t.3.is_empty());
    if !any {
        return Ok(());
    }
    let dir = d.need("blkio", "blockIO")?;
    let (weight, weight_device) = if dir.join("blkio.weight").exists() {
        ("blkio.weight", "blkio.weight_device")
    } else {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    };
    if let Some(w) = r.blkio_weight {
        write(&format!("{F}.blockIO.weight"), dir, weight, &w.to_string())?;
    }
    if let Some(w) = r.blkio_leaf_weight {
        write(
            &format!("{F}.blockIO.leafWeight"),
            dir,
            "blkio.leaf_weight",
            &w.to_string(),
        )?;
    }
    for (i, (major, minor, w, lw)) in r.weight_devices.iter().enumerate() {
        let f = format!("{F}.blockIO.weightDevice[{i}]");
        if let Some(w) = w {
            write(&f, dir, weight_device, &format!("{major}:{minor} {w}"))?;
        }
        if let Some(lw) = lw {
            write(
                &f,
                dir,
                "blkio.leaf_weight_device",
                &format!("{major}:{minor} {lw}"),
            )?;
        }
    }
    for (field, file, _, list) in r.throttles.each() {
        for (i, t) in list.iter().enumerate() {
            write(
                &format!("{F}.blockIO.{field}[{i}]"),
                dir,
                file,
                &format!("{}:{} {}", t.major, t.minor, t.value),
            )?;
        }
    }
    Ok(())
}
