//! The runtime-spec 1.2 process fields that set how the process is
//! scheduled: `process.scheduler` (sched_setattr), `process.ioPriority`
//! (ioprio_set) and `process.execCPUAffinity` (sched_setaffinity, exec
//! only). The spec says a runtime MUST fail when it cannot apply them, so
//! every failure here is an error naming the field.

use nix::sched::CpuSet;
use nix::unistd::Pid;
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxSchedulerFlag, LinuxSchedulerPolicy, Scheduler,
};

use super::error::InitError;
use crate::sys;

fn invalid(field: &str, msg: impl std::fmt::Display) -> InitError {
    InitError::Msg(format!("{field}: {msg}"))
}

/// `process.scheduler` for the calling thread.
pub(crate) fn apply_scheduler(s: &Scheduler) -> Result<(), InitError> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let flags = s.flags().iter().flatten().fold(0u64, |f, flag| {
        f | match flag {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        }
    });
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(invalid(
            "process.scheduler.nice",
            format!("{nice} is outside -20..19"),
        ));
    }
    let priority = u32::try_from(s.priority().unwrap_or(0)).map_err(|_| {
        invalid(
            "process.scheduler.priority",
            format!("{} is negative", s.priority().unwrap_or(0)),
        )
    })?;
    let attr = sys::SchedAttr {
        size: std::mem::size_of::<sys::SchedAttr>() as u32,
        sched_policy: policy,
        sched_flags: flags,
        sched_nice: nice,
        sched_priority: priority,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
        sched_util_min: 0,
        sched_util_max: 0,
    };
    sys::sched_setattr(&attr).map_err(|e| {
        invalid(
            "process.scheduler",
            format!(
                "sched_setattr(policy {:?}, priority {priority}, nice {nice}): {e}",
                s.policy()
            ),
        )
    })
}

/// `process.ioPriority` for the calling process.
pub(crate) fn apply_io_priority(p: &LinuxIOPriority) -> Result<(), InitError> {
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let prio = p.priority();
    if !(0..=7).contains(&prio) {
        return Err(invalid(
            "process.ioPriority.priority",
            format!("{prio} is outside 0..7"),
        ));
    }
    sys::ioprio_set_self((class << 13) | prio as u32)
        .map_err(|e| invalid("process.ioPriority", format!("ioprio_set: {e}")))
}

/// Parse a CPU list such as `0-3,7`.
pub(crate) fn parse_cpus(field: &str, list: &str) -> Result<CpuSet, InitError> {
    let mut set = CpuSet::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = match (a.trim().parse(), b.trim().parse()) {
            (Ok(a), Ok(b)) if a <= b => (a, b),
            _ => return Err(invalid(field, format!("{list:?} is not a CPU list"))),
        };
        for cpu in a..=b {
            set.set(cpu)
                .map_err(|_| invalid(field, format!("CPU {cpu} is out of range")))?;
        }
    }
    Ok(set)
}

/// Pin `pid` (0: the caller) to the CPUs of `list` (`field` names it).
pub(crate) fn set_affinity(pid: i32, field: &str, list: &str) -> Result<(), InitError> {
    let set = parse_cpus(field, list)?;
    nix::sched::sched_setaffinity(Pid::from_raw(pid), &set)
        .map_err(|e| invalid(field, format!("sched_setaffinity({list}): {e}")))
}

/// Every CPU the cgroup's cpuset allows: a container process must not keep
/// the CPU affinity of whoever ran the runtime (a pinned shim or a
/// `taskset`), as runc does since 1.3.1. The kernel narrows the full mask
/// to the cpuset.
pub(crate) fn reset_affinity() -> Result<(), InitError> {
    let mut all = CpuSet::new();
    for cpu in 0..CpuSet::count() {
        // count() is CpuSet's own capacity: set() cannot fail below it.
        let _ = all.set(cpu);
    }
    nix::sched::sched_setaffinity(Pid::from_raw(0), &all)
        .map_err(|e| InitError::Msg(format!("reset CPU affinity (sched_setaffinity): {e}")))
}

/// The CPUs the system has online (what an exec'd process gets after its
/// `initial` affinity when no `final` one is given; the cgroup's cpuset
/// narrows it).
pub(crate) fn online_cpus() -> String {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "0".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        let s = parse_cpus("f", "0-2,5").expect("valid");
        assert!((0..3).all(|c| s.is_set(c).unwrap_or(false)));
        assert!(!s.is_set(3).unwrap_or(true));
        assert!(s.is_set(5).unwrap_or(false));
        assert!(parse_cpus("f", "3-1").is_err());
        assert!(parse_cpus("f", "x").is_err());
        assert!(parse_cpus("f", "99999").is_err());
    }
}
