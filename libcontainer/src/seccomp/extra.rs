//! Syscalls newer than the kernel headers `tables.rs` is generated from,
//! with the kernel's numbers from `arch/x86/entry/syscalls/syscall_{64,32}.tbl`
//! (up to Linux 6.19). Maintained by hand; entries the generated tables
//! also have must agree with them (a unit test checks), and `lookup`
//! prefers the generated tables.

const X32: u32 = 0x4000_0000;

/// x86_64 numbers. The `(name, nr, x32)` triples say whether the syscall
/// is `common` (also x32, at `X32 | nr`) or `64`-only.
const X86_64_EXTRA: &[(&str, u32, bool)] = &[
    ("create_module", 174, false),
    ("get_kernel_syms", 177, false),
    ("query_module", 178, false),
    ("io_pgetevents", 333, true),
    ("uretprobe", 335, true),
    ("uprobe", 336, true),
    ("cachestat", 451, true),
    ("fchmodat2", 452, true),
    ("map_shadow_stack", 453, true),
    ("futex_wake", 454, true),
    ("futex_wait", 455, true),
    ("futex_requeue", 456, true),
    ("statmount", 457, true),
    ("listmount", 458, true),
    ("lsm_get_self_attr", 459, true),
    ("lsm_set_self_attr", 460, true),
    ("lsm_list_modules", 461, true),
    ("mseal", 462, true),
    ("setxattrat", 463, true),
    ("getxattrat", 464, true),
    ("listxattrat", 465, true),
    ("removexattrat", 466, true),
    ("open_tree_attr", 467, true),
    ("file_getattr", 468, true),
    ("file_setattr", 469, true),
    ("listns", 470, true),
];

/// i386 numbers: the removed module calls, the direct SysV IPC calls, the
/// 64-bit-time variants every y2038-safe i386 libc uses, and newer calls.
const I386_EXTRA: &[(&str, u32)] = &[
    ("create_module", 127),
    ("get_kernel_syms", 130),
    ("query_module", 167),
    ("arch_prctl", 384),
    ("io_pgetevents", 385),
    ("semget", 393),
    ("semctl", 394),
    ("shmget", 395),
    ("shmctl", 396),
    ("shmat", 397),
    ("shmdt", 398),
    ("msgget", 399),
    ("msgsnd", 400),
    ("msgrcv", 401),
    ("msgctl", 402),
    ("clock_gettime64", 403),
    ("clock_settime64", 404),
    ("clock_adjtime64", 405),
    ("clock_getres_time64", 406),
    ("clock_nanosleep_time64", 407),
    ("timer_gettime64", 408),
    ("timer_settime64", 409),
    ("timerfd_gettime64", 410),
    ("timerfd_settime64", 411),
    ("utimensat_time64", 412),
    ("pselect6_time64", 413),
    ("ppoll_time64", 414),
    ("io_pgetevents_time64", 416),
    ("recvmmsg_time64", 417),
    ("mq_timedsend_time64", 418),
    ("mq_timedreceive_time64", 419),
    ("semtimedop_time64", 420),
    ("rt_sigtimedwait_time64", 421),
    ("futex_time64", 422),
    ("sched_rr_get_interval_time64", 423),
    ("cachestat", 451),
    ("fchmodat2", 452),
    ("map_shadow_stack", 453),
    ("futex_wake", 454),
    ("futex_wait", 455),
    ("futex_requeue", 456),
    ("statmount", 457),
    ("listmount", 458),
    ("lsm_get_self_attr", 459),
    ("lsm_set_self_attr", 460),
    ("lsm_list_modules", 461),
    ("mseal", 462),
    ("setxattrat", 463),
    ("getxattrat", 464),
    ("listxattrat", 465),
    ("removexattrat", 466),
    ("open_tree_attr", 467),
    ("file_getattr", 468),
    ("file_setattr", 469),
    ("listns", 470),
];

/// Which ABI a lookup is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    X86_64,
    X32,
    I386,
}

/// The number of `name` in the supplementary table of `abi`.
pub fn lookup(abi: Which, name: &str) -> Option<u32> {
    match abi {
        Which::X86_64 => X86_64_EXTRA
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, nr, _)| *nr),
        Which::X32 => X86_64_EXTRA
            .iter()
            .find(|(n, _, x32)| *n == name && *x32)
            .map(|(_, nr, _)| X32 | nr),
        Which::I386 => I386_EXTRA
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, nr)| *nr),
    }
}

/// Every `(name, nr)` of the supplementary table of `abi`.
pub fn entries(abi: Which) -> Vec<(&'static str, u32)> {
    match abi {
        Which::X86_64 => X86_64_EXTRA.iter().map(|(n, nr, _)| (*n, *nr)).collect(),
        Which::X32 => X86_64_EXTRA
            .iter()
            .filter(|(_, _, x32)| *x32)
            .map(|(n, nr, _)| (*n, X32 | nr))
            .collect(),
        Which::I386 => I386_EXTRA.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::tables;

    /// The supplements never contradict the generated tables: a name both
    /// have has the same number, and no number names two syscalls.
    #[test]
    fn supplements_agree_with_generated_tables() {
        for (which, table) in [
            (Which::X86_64, tables::X86_64),
            (Which::X32, tables::X32),
            (Which::I386, tables::I386),
        ] {
            for (name, nr) in entries(which) {
                if let Some((_, g)) = table.iter().find(|(n, _)| *n == name) {
                    assert_eq!(*g, nr, "{which:?}: {name}");
                }
                if let Some((other, _)) = table.iter().find(|(n, x)| *x == nr && *n != name) {
                    panic!("{which:?}: number {nr:#x} is {other} and {name}");
                }
            }
        }
    }

    /// `lookup` binary-searches the generated tables by name.
    #[test]
    fn generated_tables_are_sorted_by_name() {
        for table in [tables::X86_64, tables::X32, tables::I386] {
            assert!(table.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}
