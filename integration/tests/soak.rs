//! Soak and load through containerd 1.6 with our shim: many containers,
//! random SIGKILLs of shims and containers, a containerd restart midway,
//! then nothing may be left (no shim, process, mount, cgroup or state);
//! and one long-lived pod shim whose fd count and RSS stay flat across
//! many create/delete cycles.
//!
//! CI runs the short form. The long form of the issue (500 containers,
//! 10,000 cycles): `OXRUN_SOAK_CONTAINERS=500 OXRUN_SOAK_CYCLES=10000
//! cargo test -p integration --test soak -- --nocapture`. Each test prints
//! its figures.

#[path = "common_clients/mod.rs"]
mod common_clients;
#[path = "common_containerd/mod.rs"]
#[allow(unused_macros)]
mod common_containerd;

use std::fs;
use std::time::Instant;

use common_clients::*;
use common_containerd::*;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator: the same "random" kills every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

fn kill9(pid: i32) {
    // SAFETY: kill(2) with a pid and a signal number; no memory is involved.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Containers started detached (one shim each); a third of the shims and a
/// third of the inits are SIGKILLed at random, containerd is restarted
/// halfway; then every task is deleted and nothing may remain.
#[test]
fn random_kills_and_a_containerd_restart_leave_nothing() {
    let n = env_count("OXRUN_SOAK_CONTAINERS", 24);
    let mut c = Containerd::start(Flavor::RustShim);
    let mut rng = Lcg(0x5eed);
    let t0 = Instant::now();
    let mut ids = Vec::new();
    let (mut shims_killed, mut inits_killed) = (0, 0);
    for i in 0..n {
        let id = format!("soak{i}");
        let pid = c.run_detached(&id, &["/bin/sleep", "600"], None);
        let shim = procs_with_cmdline(&format!("-id {id} "))
            .into_iter()
            .find(|(_, cl)| cl.contains("containerd-shim-rust-v2"))
            .map(|(p, _)| p);
        match rng.next(3) {
            0 => {
                if let Some(s) = shim {
                    kill9(s);
                    shims_killed += 1;
                }
            }
            1 => {
                kill9(pid);
                inits_killed += 1;
            }
            _ => {}
        }
        ids.push(id);
        if i == n / 2 {
            let holder = procs_with_cmdline(&c.sock.display().to_string())
                .into_iter()
                .find(|(p, cl)| *p != c.pid && cl.contains("containerd-shim-rust-v2"))
                .map(|(p, _)| p)
                .unwrap_or(c.pid);
            if holder != c.pid {
                c.restart(holder);
            }
        }
    }
    for id in &ids {
        c.ctr(&["task", "kill", "-s", "KILL", id]);
        c.ctr(&["task", "delete", "-f", id]);
        c.ctr(&["container", "rm", id]);
    }
    eprintln!(
        "soak: {n} containers, {shims_killed} shims and {inits_killed} inits SIGKILLed, \
         containerd restarted once, {:?}",
        t0.elapsed()
    );
    c.assert_clean();
}

fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One pod shim (containers grouped by annotation) with a long-lived
/// member, through which many short containers are created and deleted:
/// its fd count must come back to the same number and its RSS stay flat.
#[test]
fn pod_shim_fds_and_rss_stay_flat() {
    let cycles = env_count("OXRUN_SOAK_CYCLES", 150);
    let mut c = Containerd::start(Flavor::RustShim);
    let spec = |id: &str, args: &[&str]| c.grouped_spec(id, args, "soakpod", None);
    // Outlives the longest soak (10,000 cycles take ~12 min on 2 cores).
    let anchor = spec("anchor", &["/bin/sleep", "100000"]);
    c.run_grouped("anchor", &anchor);
    let shim = c.rust_shim_pid();
    let cycle = |i: usize| {
        let id = format!("cyc{i}");
        let s = spec(&id, &["/bin/true"]);
        c.seen.lock().unwrap().push((id.clone(), 0));
        c.ctr(&[
            "run",
            "--rm",
            "--runtime",
            "io.containerd.rust.v2",
            "--config",
            &s,
            &id,
        ])
        .ok();
        let _ = fs::remove_file(&s);
    };
    let warmup = 20.min(cycles);
    for i in 0..warmup {
        cycle(i);
    }
    let (fds0, rss0) = (fd_count(shim), rss_kib(shim));
    let t0 = Instant::now();
    for i in warmup..cycles {
        cycle(i);
    }
    let (fds1, rss1) = (fd_count(shim), rss_kib(shim));
    assert_eq!(c.rust_shim_pid(), shim, "the pod shim changed");
    eprintln!(
        "soak: {} create/delete cycles through one pod shim in {:?}: fds {fds0} -> {fds1}, \
         RSS {rss0} -> {rss1} KiB",
        cycles - warmup,
        t0.elapsed()
    );
    // Connections from containerd and to its event service come and go, so
    // a couple of fds either way is noise; a leak grows with the cycles.
    assert!(
        fds1 <= fds0 + 2,
        "the shim's fd count grew from {fds0} to {fds1} over {} cycles",
        cycles - warmup
    );
    assert!(
        rss1 <= rss0 + rss0 / 5 + 512,
        "the shim's RSS grew from {rss0} to {rss1} KiB"
    );
    c.ctr(&["task", "kill", "-s", "KILL", "anchor"]).ok();
    c.wait_status("anchor", "STOPPED");
    c.delete("anchor");
    c.assert_clean();
}
