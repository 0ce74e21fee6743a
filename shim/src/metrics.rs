//! `Stats` replies: the container's cgroup usage as containerd's
//! `io.containerd.cgroups.v1.Metrics` (v1 and hybrid hosts) or
//! `io.containerd.cgroups.v2.Metrics` (pure v2), from libcontainer's
//! runc-shaped stats.

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use libcontainer::cgroups::stats::{BlkioEntry, MemoryEntry, Stats};

use crate::events::any;

fn entry(e: &MemoryEntry) -> v1::MemoryEntry {
    let mut m = v1::MemoryEntry::new();
    m.limit = e.limit;
    m.usage = e.usage;
    m.max = e.max;
    m.failcnt = e.failcnt;
    m
}

fn blkio(list: &[BlkioEntry]) -> Vec<v1::BlkIOEntry> {
    list.iter()
        .map(|e| {
            let mut b = v1::BlkIOEntry::new();
            b.major = e.major;
            b.minor = e.minor;
            b.op = e.op.clone();
            b.value = e.value;
            b
        })
        .collect()
}

pub fn v1_metrics(s: &Stats) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    let mut pids = v1::PidsStat::new();
    pids.current = s.pids.current;
    pids.limit = s.pids.limit;
    m.pids = Some(pids).into();

    let mut usage = v1::CPUUsage::new();
    usage.total = s.cpu.usage.total;
    usage.kernel = s.cpu.usage.kernel;
    usage.user = s.cpu.usage.user;
    usage.per_cpu = s.cpu.usage.percpu.clone();
    let mut thr = v1::Throttle::new();
    thr.periods = s.cpu.throttling.periods;
    thr.throttled_periods = s.cpu.throttling.throttled_periods;
    thr.throttled_time = s.cpu.throttling.throttled_time;
    let mut cpu = v1::CPUStat::new();
    cpu.usage = Some(usage).into();
    cpu.throttling = Some(thr).into();
    m.cpu = Some(cpu).into();

    let raw = |k: &str| s.memory.raw.get(k).copied().unwrap_or(0);
    let mut mem = v1::MemoryStat::new();
    mem.cache = s.memory.cache;
    mem.rss = raw("rss");
    mem.rss_huge = raw("rss_huge");
    mem.mapped_file = raw("mapped_file");
    mem.dirty = raw("dirty");
    mem.writeback = raw("writeback");
    mem.pg_pg_in = raw("pgpgin");
    mem.pg_pg_out = raw("pgpgout");
    mem.pg_fault = raw("pgfault");
    mem.pg_maj_fault = raw("pgmajfault");
    mem.inactive_anon = raw("inactive_anon");
    mem.active_anon = raw("active_anon");
    mem.inactive_file = raw("inactive_file");
    mem.active_file = raw("active_file");
    mem.unevictable = raw("unevictable");
    mem.hierarchical_memory_limit = raw("hierarchical_memory_limit");
    mem.hierarchical_swap_limit = raw("hierarchical_memsw_limit");
    mem.total_cache = raw("total_cache");
    mem.total_rss = raw("total_rss");
    mem.total_rss_huge = raw("total_rss_huge");
    mem.total_mapped_file = raw("total_mapped_file");
    mem.total_dirty = raw("total_dirty");
    mem.total_writeback = raw("total_writeback");
    mem.total_pg_pg_in = raw("total_pgpgin");
    mem.total_pg_pg_out = raw("total_pgpgout");
    mem.total_pg_fault = raw("total_pgfault");
    mem.total_pg_maj_fault = raw("total_pgmajfault");
    mem.total_inactive_anon = raw("total_inactive_anon");
    mem.total_active_anon = raw("total_active_anon");
    mem.total_inactive_file = raw("total_inactive_file");
    mem.total_active_file = raw("total_active_file");
    mem.total_unevictable = raw("total_unevictable");
    mem.usage = Some(entry(&s.memory.usage)).into();
    mem.swap = Some(entry(&s.memory.swap)).into();
    mem.kernel = Some(entry(&s.memory.kernel)).into();
    mem.kernel_tcp = Some(entry(&s.memory.kernel_tcp)).into();
    m.memory = Some(mem).into();

    let b = &s.blkio;
    let mut io = v1::BlkIOStat::new();
    io.io_service_bytes_recursive = blkio(&b.io_service_bytes_recursive);
    io.io_serviced_recursive = blkio(&b.io_serviced_recursive);
    io.io_queued_recursive = blkio(&b.io_queued_recursive);
    io.io_service_time_recursive = blkio(&b.io_service_time_recursive);
    io.io_wait_time_recursive = blkio(&b.io_wait_time_recursive);
    io.io_merged_recursive = blkio(&b.io_merged_recursive);
    io.io_time_recursive = blkio(&b.io_time_recursive);
    io.sectors_recursive = blkio(&b.sectors_recursive);
    m.blkio = Some(io).into();

    m.hugetlb = s
        .hugetlb
        .iter()
        .map(|(size, h)| {
            let mut e = v1::HugetlbStat::new();
            e.pagesize = size.clone();
            e.usage = h.usage;
            e.max = h.max;
            e.failcnt = h.failcnt;
            e
        })
        .collect();
    m
}

pub fn v2_metrics(s: &Stats) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let mut pids = v2::PidsStat::new();
    pids.current = s.pids.current;
    pids.limit = s.pids.limit;
    m.pids = Some(pids).into();

    let mut cpu = v2::CPUStat::new();
    cpu.usage_usec = s.cpu.usage.total / 1000;
    cpu.user_usec = s.cpu.usage.user / 1000;
    cpu.system_usec = s.cpu.usage.kernel / 1000;
    cpu.nr_periods = s.cpu.throttling.periods;
    cpu.nr_throttled = s.cpu.throttling.throttled_periods;
    cpu.throttled_usec = s.cpu.throttling.throttled_time / 1000;
    m.cpu = Some(cpu).into();

    let raw = |k: &str| s.memory.raw.get(k).copied().unwrap_or(0);
    let mut mem = v2::MemoryStat::new();
    mem.anon = raw("anon");
    mem.file = raw("file");
    mem.kernel_stack = raw("kernel_stack");
    mem.slab = raw("slab");
    mem.sock = raw("sock");
    mem.shmem = raw("shmem");
    mem.file_mapped = raw("file_mapped");
    mem.file_dirty = raw("file_dirty");
    mem.file_writeback = raw("file_writeback");
    mem.anon_thp = raw("anon_thp");
    mem.inactive_anon = raw("inactive_anon");
    mem.active_anon = raw("active_anon");
    mem.inactive_file = raw("inactive_file");
    mem.active_file = raw("active_file");
    mem.unevictable = raw("unevictable");
    mem.slab_reclaimable = raw("slab_reclaimable");
    mem.slab_unreclaimable = raw("slab_unreclaimable");
    mem.pgfault = raw("pgfault");
    mem.pgmajfault = raw("pgmajfault");
    mem.usage = s.memory.usage.usage;
    mem.usage_limit = s.memory.usage.limit;
    mem.max_usage = s.memory.usage.max;
    mem.swap_usage = s.memory.swap.usage.saturating_sub(s.memory.usage.usage);
    mem.swap_limit = s.memory.swap.limit;
    m.memory = Some(mem).into();

    let mut io = v2::IOStat::new();
    for e in &s.blkio.io_service_bytes_recursive {
        let mut x = v2::IOEntry::new();
        x.major = e.major;
        x.minor = e.minor;
        match e.op.as_str() {
            "Read" => x.rbytes = e.value,
            "Write" => x.wbytes = e.value,
            _ => continue,
        }
        io.usage.push(x);
    }
    m.io = Some(io).into();
    m.hugetlb = s
        .hugetlb
        .iter()
        .map(|(size, h)| {
            let mut e = v2::HugeTlbStat::new();
            e.pagesize = size.clone();
            e.current = h.usage;
            e.max = h.max;
            e.failcnt = h.failcnt;
            e
        })
        .collect();
    m
}

/// The metrics for a container's cgroups, v1 or v2 shape.
pub fn for_container(unified: bool, s: &Stats) -> Any {
    if unified {
        any(&v2_metrics(s))
    } else {
        any(&v1_metrics(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_urls_match_containerd() {
        let s = Stats::default();
        assert_eq!(
            for_container(false, &s).type_url,
            "io.containerd.cgroups.v1.Metrics"
        );
        assert_eq!(
            for_container(true, &s).type_url,
            "io.containerd.cgroups.v2.Metrics"
        );
    }

    #[test]
    fn v2_converts_nanoseconds_to_microseconds() {
        let mut s = Stats::default();
        s.cpu.usage.total = 5_000_000;
        s.memory.usage.usage = 4096;
        let m = v2_metrics(&s);
        assert_eq!(m.cpu.usage_usec, 5000);
        assert_eq!(m.memory.usage, 4096);
    }
}
