//! Writing resources to a cgroup v2 directory (runc's `fs2` driver, in its
//! order: pids, memory, io, cpu, devices, cpuset, hugetlb, rdma, unified),
//! with the v1 -> v2 conversions. v1-only settings are accepted with a
//! warning, as runc ignores them on v2.

use std::path::{Component, Path};

use super::resources::{blkio_to_io_weight, shares_to_weight, swap_to_v2, Res};
use super::v1::{check_usage_against, cpuset_write, rdma_line};
use super::{
    invalid, io, read_string, read_u64, try_write, write, write_error, write_or_defer, CgroupError,
};

const F: &str = "linux.resources";

/// mkdir the container's cgroup and its missing parents, enabling every
/// available controller in the subtree_control of each ancestor (runc's
/// CreateCgroupPath; failures are ignored per controller, as runc does).
pub(super) fn create(dir: &Path) -> Result<(), CgroupError> {
    let root = Path::new("/sys/fs/cgroup");
    let rel = dir
        .strip_prefix(root)
        .map_err(|_| CgroupError::BadPath(dir.to_path_buf()))?;
    let avail = read_string(root, "cgroup.controllers")?;
    let ctrls: Vec<String> = avail.split_whitespace().map(|c| format!("+{c}")).collect();
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        enable(&cur, &ctrls);
        let Component::Normal(name) = c else {
            return Err(CgroupError::BadPath(dir.to_path_buf()));
        };
        cur.push(name);
        match std::fs::create_dir(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("mkdir", &cur)(e)),
        }
    }
    Ok(())
}

fn enable(dir: &Path, ctrls: &[String]) {
    let have = read_string(dir, "cgroup.subtree_control").unwrap_or_default();
    let missing: Vec<&String> = ctrls
        .iter()
        .filter(|c| !have.split_whitespace().any(|h| h == &c[1..]))
        .collect();
    if missing.is_empty() {
        return;
    }
    let all = missing
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if try_write(dir, "cgroup.subtree_control", &all).is_err() {
        for c in missing {
            let _ = try_write(dir, "cgroup.subtree_control", c);
        }
    }
}

fn num(v: i64) -> String {
    if v == -1 {
        "max".into()
    } else {
        v.to_string()
    }
}

pub(super) fn apply(dir: &Path, r: &Res, warnings: &mut Vec<String>) -> Result<(), CgroupError> {
    let mut ignored =
        |what: &str| warnings.push(format!("{F}.{what}: ignored: cgroup v2 has no equivalent"));
    if let Some(p) = r.pids {
        write(&format!("{F}.pids.limit"), dir, "pids.max", &num(p))?;
    }
    memory(dir, r)?;
    if r.kernel.is_some() {
        ignored("memory.kernel");
    }
    if r.kernel_tcp.is_some() {
        ignored("memory.kernelTCP");
    }
    if r.swappiness.is_some() {
        ignored("memory.swappiness");
    }

    if r.oom_kill_disable {
        ignored("memory.disableOOMKiller");
    }
    io_limits(dir, r)?;
    if r.blkio_leaf_weight.is_some() || r.weight_devices.iter().any(|w| w.3.is_some()) {
        ignored("blockIO.leafWeight");
    }
    cpu(dir, r)?;
    if r.rt_runtime.is_some() || r.rt_period.is_some() {
        ignored("cpu.realtimeRuntime/realtimePeriod");
    }
    if let Some(rules) = &r.devices {
        super::bpf::attach(dir, rules)?;
    }
    for (field, file, v) in [
        ("cpu.cpus", "cpuset.cpus", &r.cpus),
        ("cpu.mems", "cpuset.mems", &r.mems),
    ] {
        if let Some(v) = v {
            cpuset_write(field, dir, file, v)?;
        }
    }
    for (size, limit) in &r.hugepages {
        let f = format!("{F}.hugepageLimits[{size}]");
        let v = limit.to_string();
        write(&f, dir, &format!("hugetlb.{size}.max"), &v)?;
        let rsvd = format!("hugetlb.{size}.rsvd.max");
        if dir.join(&rsvd).exists() {
            write(&f, dir, &rsvd, &v)?;
        }
    }
    for (dev, limits) in &r.rdma {
        write(
            &format!("{F}.rdma.{dev}"),
            dir,
            "rdma.max",
            &rdma_line(dev, *limits),
        )?;
    }
    if r.net_class_id.is_some() || !r.net_priorities.is_empty() {
        ignored("network");
    }
    unified(dir, r)
}

fn memory(dir: &Path, r: &Res) -> Result<(), CgroupError> {
    if r.memory.is_none() && r.reservation.is_none() && r.swap.is_none() {
        return Ok(());
    }
    if r.check_before_update {
        if let Ok(usage) = read_u64(dir, "memory.current") {
            check_usage_against(usage, r)?;
        }
    }
    if let Some(swap) = swap_to_v2(r.swap, r.memory)? {
        let v = num(swap);
        if let Err(e) = try_write(dir, "memory.swap.max", &v) {
            // No swap accounting: "max" and 0 mean nothing to do (runc).
            let harmless = e.kind() == std::io::ErrorKind::NotFound && (v == "max" || v == "0");
            if !harmless {
                return Err(write_error(
                    &format!("{F}.memory.swap"),
                    dir,
                    "memory.swap.max",
                    &v,
                    e,
                ));
            }
        }
    }
    if let Some(m) = r.memory {
        write(&format!("{F}.memory.limit"), dir, "memory.max", &num(m))?;
    }
    if let Some(m) = r.reservation {
        write(
            &format!("{F}.memory.reservation"),
            dir,
            "memory.low",
            &num(m),
        )?;
    }
    Ok(())
}

fn io_limits(dir: &Path, r: &Res) -> Result<(), CgroupError> {
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(w) = r.blkio_weight {
        let f = format!("{F}.blockIO.weight");
        if bfq {
            write(&f, dir, "io.bfq.weight", &w.to_string())?;
        } else {
            write(&f, dir, "io.weight", &blkio_to_io_weight(w).to_string())?;
        }
    }
    for (i, (major, minor, w, _)) in r.weight_devices.iter().enumerate() {
        let Some(w) = w else { continue };
        let f = format!("{F}.blockIO.weightDevice[{i}]");
        if bfq {
            write(&f, dir, "io.bfq.weight", &format!("{major}:{minor} {w}"))?;
        } else {
            write(
                &f,
                dir,
                "io.weight",
                &format!("{major}:{minor} {}", blkio_to_io_weight(*w)),
            )?;
        }
    }
    for (field, _, key, list) in r.throttles.each() {
        for (i, t) in list.iter().enumerate() {
            write(
                &format!("{F}.blockIO.{field}[{i}]"),
                dir,
                "io.max",
                &format!("{}:{} {key}={}", t.major, t.minor, t.value),
            )?;
        }
    }
    Ok(())
}

fn cpu(dir: &Path, r: &Res) -> Result<(), CgroupError> {
    if let Some(i) = r.cpu_idle {
        write(&format!("{F}.cpu.idle"), dir, "cpu.idle", &i.to_string())?;
    }
    if let Some(s) = r.cpu_shares {
        write(
            &format!("{F}.cpu.shares"),
            dir,
            "cpu.weight",
            &shares_to_weight(s).to_string(),
        )?;
    }
    let burst_later = write_or_defer(
        dir,
        "cpu.max.burst",
        r.cpu_burst.map(|v| v.to_string()),
        r.cpu_quota.is_some(),
        |e, v| write_error(&format!("{F}.cpu.burst"), dir, "cpu.max.burst", v, e),
    )?;
    if r.cpu_quota.is_some() || r.cpu_period.is_some() {
        let quota = match r.cpu_quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".to_string(),
        };
        let period = r.cpu_period.unwrap_or(100_000);
        let field = if r.cpu_quota.is_some() {
            "cpu.quota"
        } else {
            "cpu.period"
        };
        write(
            &format!("{F}.{field}"),
            dir,
            "cpu.max",
            &format!("{quota} {period}"),
        )?;
        if let Some(s) = burst_later {
            write(&format!("{F}.cpu.burst"), dir, "cpu.max.burst", &s)?;
        }
    }
    Ok(())
}

/// `unified`: each key is a file in the container's cgroup; a key that is
/// not there is an error (with the controller named when it is missing).
fn unified(dir: &Path, r: &Res) -> Result<(), CgroupError> {
    for (k, v) in &r.unified {
        let field = format!("{F}.unified[{k:?}]");
        // Multi-line values (io.max for several devices) go line by line.
        let lines: Vec<&str> = v.lines().filter(|l| !l.trim().is_empty()).collect();
        let lines = if lines.is_empty() {
            vec![v.as_str()]
        } else {
            lines
        };
        let res = lines.iter().try_for_each(|l| try_write(dir, k, l));
        if let Err(e) = res {
            if e.kind() == std::io::ErrorKind::NotFound {
                let ctrl = k.split_once('.').map(|(c, _)| c).unwrap_or(k);
                let have = read_string(dir, "cgroup.controllers").unwrap_or_default();
                let msg = if ctrl != "cgroup" && !have.split_whitespace().any(|c| c == ctrl) {
                    format!("cannot be set: controller {ctrl:?} is not available in this cgroup (have: {})", have.trim())
                } else {
                    format!("no such cgroup v2 file {}", dir.join(k).display())
                };
                return Err(invalid(field, msg));
            }
            return Err(write_error(&field, dir, k, v, e));
        }
    }
    Ok(())
}
