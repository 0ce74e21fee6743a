//! The seccomp compiler: any `linux.seccomp` JSON must compile to a filter
//! or give an error, and every filter it emits must be a program the
//! kernel would accept: no jump or load out of range, a `ret` reached for
//! every syscall number and architecture tried, at most 4096 instructions.
#![no_main]

use libcontainer::seccomp::{self, bpf};
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxSeccomp;

const ARCHES: [u32; 4] = [0xc000_003e, 0x4000_0003, 0x4000_003e, 0xdead_beef];

fuzz_target!(|data: &[u8]| {
    let Ok(sc) = serde_json::from_slice::<LinuxSeccomp>(data) else {
        return;
    };
    let Ok(f) = seccomp::build(&sc) else {
        return;
    };
    assert!(f.prog.len() <= 4096, "{} instructions", f.prog.len());
    // Probe syscall numbers and arguments taken from the input itself.
    let mut probes: Vec<u32> = (0..8)
        .chain([59, 322, 435, 1000, 0x4000_0000 | 59])
        .collect();
    probes.extend(data.chunks(4).take(16).map(|c| {
        let mut b = [0u8; 4];
        b[..c.len()].copy_from_slice(c);
        u32::from_le_bytes(b) % 1024
    }));
    let arg = data
        .iter()
        .fold(0u64, |a, b| a.rotate_left(7) ^ u64::from(*b));
    for &arch in &ARCHES {
        for &nr in &probes {
            for args in [[0u64; 6], [arg; 6], [u64::MAX; 6]] {
                assert!(
                    bpf::eval(&f.prog, nr, arch, args).is_some(),
                    "program cannot be followed for nr {nr} arch {arch:#x}"
                );
            }
        }
    }
});
