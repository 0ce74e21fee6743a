//! Resource usage in the shape `runc events` prints (runc's
//! `types/events.go`): `{"type":"stats","id":..,"data":{"cpu":..,
//! "memory":..,"pids":..,"blkio":..,"hugetlb":..}}`, read from v1
//! controllers or the v2 directory. Files a kernel does not have read as
//! zero, as with runc.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{parse_u64, CgroupPaths};

/// One line of `events` output.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub typ: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

fn zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: BTreeMap<String, String>,
    pub network_interfaces: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuUsage {
    /// Nanoseconds.
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "ioQueueRecursive")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

fn text(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn num(dir: &Path, file: &str) -> u64 {
    text(dir, file)
        .and_then(|s| parse_u64(s.trim()))
        .unwrap_or(0)
}

/// `key value` lines.
fn flat(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    text(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), parse_u64(v.trim())?))
        })
        .collect()
}

fn list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
            out.extend(a..=b);
        }
    }
    out
}

/// Huge page sizes as the cgroup files name them ("2MB", "1GB").
fn hugepage_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = n
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(match kb {
                k if k >= 1 << 20 && k % (1 << 20) == 0 => format!("{}GB", k >> 20),
                k if k >= 1 << 10 && k % (1 << 10) == 0 => format!("{}MB", k >> 10),
                k => format!("{k}KB"),
            })
        })
        .collect();
    out.sort();
    out
}

impl CgroupPaths {
    /// Current usage of the container's cgroups.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        if self.unified {
            if let Some(d) = &self.v2_dir {
                v2(d, &mut s);
            }
        } else {
            self.v1(&mut s);
        }
        s
    }

    fn v1(&self, s: &mut Stats) {
        if let Some(d) = self.dir_for("cpuacct") {
            let u = &mut s.cpu.usage;
            u.total = num(&d, "cpuacct.usage");
            u.percpu = text(&d, "cpuacct.usage_percpu")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            for line in text(&d, "cpuacct.usage_all")
                .unwrap_or_default()
                .lines()
                .skip(1)
            {
                let f: Vec<u64> = line
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect();
                if f.len() >= 3 {
                    u.percpu_user.push(f[1]);
                    u.percpu_kernel.push(f[2]);
                }
            }
            // cpuacct.stat counts USER_HZ (100) ticks.
            let st = flat(&d, "cpuacct.stat");
            u.user = st.get("user").copied().unwrap_or(0) * 10_000_000;
            u.kernel = st.get("system").copied().unwrap_or(0) * 10_000_000;
        }
        if let Some(d) = self.dir_for("cpu") {
            let st = flat(&d, "cpu.stat");
            s.cpu.throttling = Throttling {
                periods: st.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: st.get("throttled_time").copied().unwrap_or(0),
            };
        }
        if let Some(d) = self.dir_for("cpuset") {
            let c = &mut s.cpuset;
            c.cpus = list(&text(&d, "cpuset.cpus").unwrap_or_default());
            c.mems = list(&text(&d, "cpuset.mems").unwrap_or_default());
            c.cpu_exclusive = num(&d, "cpuset.cpu_exclusive");
            c.mem_hardwall = num(&d, "cpuset.mem_hardwall");
            c.mem_exclusive = num(&d, "cpuset.mem_exclusive");
            c.memory_migrate = num(&d, "cpuset.memory_migrate");
            c.memory_spread_page = num(&d, "cpuset.memory_spread_page");
            c.memory_spread_slab = num(&d, "cpuset.memory_spread_slab");
            c.memory_pressure = num(&d, "cpuset.memory_pressure");
            c.sched_load_balance = num(&d, "cpuset.sched_load_balance");
            c.sched_relax_domain_level = text(&d, "cpuset.sched_relax_domain_level")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
        }
        if let Some(d) = self.dir_for("memory") {
            let m = &mut s.memory;
            m.raw = flat(&d, "memory.stat");
            m.cache = m.raw.get("cache").copied().unwrap_or(0);
            let entry = |prefix: &str| MemoryEntry {
                limit: num(&d, &format!("{prefix}.limit_in_bytes")),
                usage: num(&d, &format!("{prefix}.usage_in_bytes")),
                max: num(&d, &format!("{prefix}.max_usage_in_bytes")),
                failcnt: num(&d, &format!("{prefix}.failcnt")),
            };
            m.usage = entry("memory");
            m.swap = entry("memory.memsw");
            m.kernel = entry("memory.kmem");
            m.kernel_tcp = entry("memory.kmem.tcp");
        }
        if let Some(d) = self.dir_for("pids") {
            s.pids = pids(&d);
        }
        if let Some(d) = self.dir_for("blkio") {
            s.blkio = blkio_v1(&d);
        }
        if let Some(d) = self.dir_for("hugetlb") {
            for size in hugepage_sizes() {
                let p = format!("hugetlb.{size}");
                s.hugetlb.insert(
                    size,
                    Hugetlb {
                        usage: num(&d, &format!("{p}.usage_in_bytes")),
                        max: num(&d, &format!("{p}.max_usage_in_bytes")),
                        failcnt: num(&d, &format!("{p}.failcnt")),
                    },
                );
            }
        }
    }
}

fn pids(d: &Path) -> Pids {
    let limit = num(d, "pids.max");
    Pids {
        current: num(d, "pids.current"),
        limit: if limit == u64::MAX { 0 } else { limit },
    }
}

/// `maj:min [op] value` lines ("Total" lines skipped).
fn blkio_entries(d: &Path, file: &str) -> Option<Vec<BlkioEntry>> {
    let t = text(d, file)?;
    let mut out = Vec::new();
    for line in t.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some((maj, min)) = f.first().and_then(|x| x.split_once(':')) else {
            continue;
        };
        let (op, v) = match f.len() {
            3 => (f[1].to_string(), f[2]),
            2 => (String::new(), f[1]),
            _ => continue,
        };
        out.push(BlkioEntry {
            major: maj.parse().unwrap_or(0),
            minor: min.parse().unwrap_or(0),
            op,
            value: v.parse().unwrap_or(0),
        });
    }
    Some(out)
}

/// runc's order: the first group whose first file has entries wins.
fn blkio_v1(d: &Path) -> Blkio {
    type Slot = fn(&mut Blkio) -> &mut Vec<BlkioEntry>;
    let bytes: Slot = |b| &mut b.io_service_bytes_recursive;
    let serviced: Slot = |b| &mut b.io_serviced_recursive;
    let groups: [&[(&str, Slot)]; 4] = [
        &[
            ("blkio.bfq.io_serviced_recursive", serviced),
            ("blkio.bfq.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.io_serviced_recursive", serviced),
            ("blkio.io_service_bytes_recursive", bytes),
            ("blkio.sectors_recursive", |b| &mut b.sectors_recursive),
            ("blkio.io_service_time_recursive", |b| {
                &mut b.io_service_time_recursive
            }),
            ("blkio.io_wait_time_recursive", |b| {
                &mut b.io_wait_time_recursive
            }),
            ("blkio.io_merged_recursive", |b| &mut b.io_merged_recursive),
            ("blkio.io_queued_recursive", |b| &mut b.io_queued_recursive),
            ("blkio.time_recursive", |b| &mut b.io_time_recursive),
        ],
        &[
            ("blkio.throttle.io_serviced_recursive", serviced),
            ("blkio.throttle.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.throttle.io_serviced", serviced),
            ("blkio.throttle.io_service_bytes", bytes),
        ],
    ];
    let mut b = Blkio::default();
    for g in groups {
        match blkio_entries(d, g[0].0) {
            Some(e) if !e.is_empty() => {}
            _ => continue,
        }
        for (file, slot) in g {
            *slot(&mut b) = blkio_entries(d, file).unwrap_or_default();
        }
        break;
    }
    b
}

fn v2(d: &Path, s: &mut Stats) {
    let st = flat(d, "cpu.stat");
    let g = |k: &str| st.get(k).copied().unwrap_or(0);
    s.cpu.usage.total = g("usage_usec") * 1000;
    s.cpu.usage.user = g("user_usec") * 1000;
    s.cpu.usage.kernel = g("system_usec") * 1000;
    s.cpu.throttling = Throttling {
        periods: g("nr_periods"),
        throttled_periods: g("nr_throttled"),
        throttled_time: g("throttled_usec") * 1000,
    };
    let m = &mut s.memory;
    m.raw = flat(d, "memory.stat");
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    m.usage = MemoryEntry {
        limit: num(d, "memory.max"),
        usage: num(d, "memory.current"),
        max: num(d, "memory.peak"),
        failcnt: flat(d, "memory.events").get("max").copied().unwrap_or(0),
    };
    let swap_limit = num(d, "memory.swap.max");
    m.swap = MemoryEntry {
        limit: if swap_limit == u64::MAX || m.usage.limit == u64::MAX {
            u64::MAX
        } else {
            swap_limit + m.usage.limit
        },
        usage: num(d, "memory.swap.current") + m.usage.usage,
        max: 0,
        failcnt: 0,
    };
    s.pids = pids(d);
    for line in text(d, "io.stat").unwrap_or_default().lines() {
        let mut f = line.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|x| x.split_once(':')) else {
            continue;
        };
        let (major, minor) = (maj.parse().unwrap_or(0), min.parse().unwrap_or(0));
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let (op, table) = match k {
                "rbytes" => ("Read", &mut s.blkio.io_service_bytes_recursive),
                "wbytes" => ("Write", &mut s.blkio.io_service_bytes_recursive),
                "rios" => ("Read", &mut s.blkio.io_serviced_recursive),
                "wios" => ("Write", &mut s.blkio.io_serviced_recursive),
                _ => continue,
            };
            table.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value: v.parse().unwrap_or(0),
            });
        }
    }
    for size in hugepage_sizes() {
        let p = format!("hugetlb.{size}");
        if !d.join(format!("{p}.current")).exists() {
            continue;
        }
        s.hugetlb.insert(
            size,
            Hugetlb {
                usage: num(d, &format!("{p}.current")),
                max: 0,
                failcnt: flat(d, &format!("{p}.events"))
                    .get("max")
                    .copied()
                    .unwrap_or(0),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(list("0-2,5\n"), vec![0, 1, 2, 5]);
        assert!(list("").is_empty());
    }

    #[test]
    fn json_shape() {
        let e = Event {
            typ: "stats".into(),
            id: "x".into(),
            data: Some(Stats::default()),
        };
        let v = serde_json::to_value(&e).expect("json");
        assert_eq!(v["type"], "stats");
        assert!(v["data"]["memory"]["usage"]["limit"].is_u64());
        assert!(v["data"]["cpu"]["usage"]["kernel"].is_u64());
        let oom = serde_json::to_string(&Event {
            typ: "oom".into(),
            id: "x".into(),
            data: None,
        })
        .expect("json");
        assert_eq!(oom, r#"{"type":"oom","id":"x"}"#);
    }
}
