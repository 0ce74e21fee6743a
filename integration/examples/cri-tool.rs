//! A tiny CRI client for scripts/demo.sh and scripts/bench-cri.sh (there is
//! no crictl on Debian). It reuses the CRI suite's harness
//! (tests/common_cri): a private containerd with CRI + CNI bridge in its own
//! mount + network + IPC namespaces, torn down (and checked clean) at the end.
//! Not part of the shipped binaries.
//!
//!   cri-tool demo [1.6|2.1]             a pod with two containers, oxrun
//!   cri-tool bench N...                 oxrun vs runc vs crun, containerd 2.1
//!
//! Env: OXRUN_BIN (runtime), OXRUN_SHIM_BIN (shim), OXRUN_CRI_IMAGES.
#![allow(unused_macros)]

#[path = "../tests/common_clients/mod.rs"]
mod common_clients;
#[path = "../tests/common_cri/mod.rs"]
mod common_cri;

use std::fs;
use std::time::{Duration, Instant};

use common_clients::poll;
use common_cri::*;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo(match args.get(1).map(String::as_str) {
            Some("1.6") => Ctd::V1_6,
            Some("1.7") => Ctd::V1_7,
            _ => Ctd::V2_1,
        }),
        Some("bench") => {
            let counts: Vec<usize> = args[1..]
                .iter()
                .map(|a| a.parse().expect("count"))
                .collect();
            bench(if counts.is_empty() {
                vec![1, 10, 50]
            } else {
                counts
            })
        }
        _ => {
            eprintln!("usage: cri-tool demo [1.6|1.7|2.1] | bench N...");
            std::process::exit(2)
        }
    }
}

fn step(s: &str) {
    println!("\n--> {s}");
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

fn demo(ctd: Ctd) {
    step(&format!(
        "private containerd {} with CRI, handler oxrun",
        ctd.version_prefix().trim_end_matches('.')
    ));
    let mut c = Cri::start(ctd, Handler::Oxrun);
    println!(
        "containerd pid {} in its own mnt/net/ipc namespaces ({}), socket {}",
        c.pid,
        c.mnt_ns,
        c.sock.display()
    );
    // The handler's part of the generated config (README: "Configuring a node").
    let conf = fs::read_to_string(c.dir.join("config.toml")).unwrap_or_default();
    println!("{}", first_line(&conf));
    let mut show = 0;
    for l in conf.lines() {
        if l.contains("restrict_oom_score_adj") || l.contains("runtimes.oxrun]") {
            show = if l.contains("restrict") { 1 } else { 3 };
        }
        if show > 0 {
            println!("{l}");
            show -= 1;
        }
    }
    let pcfg = c.pod_config("demo-pod");
    let pod = c.run_pod(&pcfg);
    println!("RunPodSandbox (runtime_handler \"oxrun\") -> {pod}");
    let mut ids = Vec::new();
    for name in ["alpha", "beta"] {
        let script = format!(
            "echo hello from {name}; echo my cgroup: $(cat /proc/self/cgroup | grep -E '^(0|[0-9]+:memory):' | tr '\\n' ' '); exec sleep 3600"
        );
        let id = c.create_start(
            &pod,
            &c.container_config(name, &["sh", "-c", &script]),
            &pcfg,
        );
        c.wait_running(&id);
        println!("CreateContainer + StartContainer {name} -> {id} (running)");
        ids.push((name, id));
    }

    step("one shim process per pod (ps)");
    let shims = c.shims();
    for (p, cmd) in &shims {
        println!("  shim pid {p}: {cmd}");
    }
    let pause = c.pod_pid(&pod);
    let mut pids = vec![("pause", pause)];
    for (n, id) in &ids {
        pids.push((n, c.container_pid(id)));
    }
    let out = std::process::Command::new("ps")
        .args(["-o", "pid,ppid,rss,args", "-p"])
        .arg(
            shims
                .iter()
                .map(|(p, _)| *p)
                .chain(pids.iter().map(|(_, p)| *p))
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
        )
        .output()
        .expect("ps");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(shims.len(), 1, "expected one shim for the pod: {shims:?}");
    for (n, p) in &pids {
        assert_eq!(ppid(*p), shims[0].0, "{n} ({p}) is not a child of the shim");
    }
    println!(
        "  => 1 shim ({}), parent of pause and both containers",
        shims[0].0
    );

    step("the containers' cgroups (/proc/<pid>/cgroup: memory and unified lines)");
    for (n, p) in &pids {
        let cg = fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap_or_default();
        for l in cg
            .lines()
            .filter(|l| l.starts_with("0::") || l.contains(":memory:"))
        {
            println!("  {n:6} pid {p:7}  {l}");
        }
    }

    step("pod IP (PodSandboxStatus.network.ip, CNI bridge in the private netns)");
    let (st, _) = c.pod_status(&pod);
    let ip = st.network.map(|n| n.ip).unwrap_or_default();
    println!("  {ip}");
    assert!(
        ip.starts_with(POD_SUBNET_PREFIX),
        "pod IP {ip:?} not in 10.88.0.0/16"
    );
    let (o, _, _) = c.exec_sync(&ids[0].1, &["ip", "-4", "-o", "addr", "show", "eth0"]);
    let inet = o
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or("?");
    println!("  ExecSync in alpha, `ip -4 -o addr show eth0`: inet {inet}");

    step("container logs (CRI log files)");
    for (n, _) in &ids {
        let f = c.log_file(&pcfg, n);
        let got = poll(Duration::from_secs(10), || {
            let s = fs::read_to_string(&f).unwrap_or_default();
            s.contains("hello from").then_some(s)
        })
        .unwrap_or_else(|| panic!("no log in {}", f.display()));
        println!("  {}:", f.display());
        for l in got.lines() {
            println!("    {l}");
        }
    }

    step("StopContainer + RemoveContainer, StopPodSandbox + RemovePodSandbox");
    for (_, id) in &ids {
        c.stop_container(id, 0);
        c.remove_container(id);
    }
    c.stop_pod(&pod);
    c.remove_pod(&pod);
    println!(
        "  pods listed: {:?}, containers listed: {:?}",
        c.list_pods(),
        c.list_containers()
    );
    let left = poll(Duration::from_secs(10), || {
        c.shims().is_empty().then_some(())
    });
    println!(
        "  shims: {}",
        if left.is_some() {
            "none"
        } else {
            "STILL RUNNING"
        }
    );
    let links = c.in_netns(&["ip", "-o", "link", "show"]).stdout;
    println!(
        "  veths in containerd's netns: {}",
        links.lines().filter(|l| l.contains("veth")).count()
    );
    for (n, p) in &pids {
        println!(
            "  {n} pid {p}: {}",
            if std::path::Path::new(&format!("/proc/{p}")).exists() {
                "ALIVE"
            } else {
                "gone"
            }
        );
    }
    step("stop containerd; nothing left (processes, cgroups, mounts, veths)");
    c.assert_clean();
    println!("  clean");
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// (RSS, PSS) in KiB of one process (smaps_rollup).
fn rss_pss(pid: i32) -> (f64, f64) {
    let s = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    (get("Rss:"), get("Pss:"))
}

struct Row {
    handler: &'static str,
    n: usize,
    start_ms: f64,
    stop_ms: f64,
    rss_kib: f64,
    pss_kib: f64,
    shims: usize,
}

/// One pod with one busybox `sleep` container until running; its ids.
fn start_pod(c: &Cri, i: usize) -> (String, String, Duration) {
    let pcfg = c.pod_config(&format!("b{i}"));
    let ccfg = c.container_config("c", &["sleep", "3600"]);
    let t0 = Instant::now();
    let pod = c.run_pod(&pcfg);
    let id = c.create_start(&pod, &ccfg, &pcfg);
    c.wait_running(&id);
    (pod, id, t0.elapsed())
}

fn stop_pod(c: &Cri, pod: &str, id: &str) -> Duration {
    let t0 = Instant::now();
    c.stop_container(id, 0);
    c.remove_container(id);
    c.stop_pod(pod);
    c.remove_pod(pod);
    t0.elapsed()
}

// Round-robin over handlers by index is the point here.
#[allow(clippy::needless_range_loop)]
fn bench(counts: Vec<usize>) {
    // One containerd per handler, all up at once; the handlers take turns
    // pod by pod (the order rotating), so load from anything else on the
    // machine spreads evenly over the three.
    let handlers = [Handler::Oxrun, Handler::Runc, Handler::Crun];
    let mut cris: Vec<Cri> = handlers
        .iter()
        .map(|&h| {
            eprintln!("[bench-cri] containerd 2.1.9, handler {}", h.name());
            Cri::start(Ctd::V2_1, h)
        })
        .collect();
    // Warm-up (image unpack, CNI first use): not counted.
    for c in &cris {
        let (p, id, _) = start_pod(c, 0);
        stop_pod(c, &p, &id);
    }
    let k = cris.len();
    let mut rows = Vec::new();
    for &n in &counts {
        let mut starts = vec![Vec::new(); k];
        let mut pods = vec![Vec::new(); k];
        for i in 0..n {
            for j in 0..k {
                let h = (i + j) % k;
                let (p, id, d) = start_pod(&cris[h], i + 1);
                starts[h].push(d.as_secs_f64() * 1e3);
                pods[h].push((p, id));
            }
        }
        let mut mem = Vec::new();
        for c in &cris {
            let shims = c.shims();
            let (mut rss, mut pss) = (0.0, 0.0);
            for (p, _) in &shims {
                let (r, s) = rss_pss(*p);
                rss += r;
                pss += s;
            }
            // Per pod: all of this containerd's shims, divided by the pods.
            mem.push((shims.len(), rss / n as f64, pss / n as f64));
        }
        let mut stops = vec![Vec::new(); k];
        for i in 0..n {
            for j in 0..k {
                let h = (i + j) % k;
                let (p, id) = &pods[h][i];
                stops[h].push(stop_pod(&cris[h], p, id).as_secs_f64() * 1e3);
            }
        }
        for h in 0..k {
            let row = Row {
                handler: handlers[h].name(),
                n,
                start_ms: median(&mut starts[h]),
                stop_ms: median(&mut stops[h]),
                rss_kib: mem[h].1,
                pss_kib: mem[h].2,
                shims: mem[h].0,
            };
            eprintln!(
                "[bench-cri] {} n={n}: start {:.1} ms, teardown {:.1} ms, shims {}, RSS {:.0} KiB/pod, PSS {:.0} KiB/pod",
                row.handler, row.start_ms, row.stop_ms, row.shims, row.rss_kib, row.pss_kib
            );
            rows.push(row);
        }
    }
    for c in &mut cris {
        c.assert_clean();
    }
    println!("| pods | handler | start median (ms) | vs oxrun | teardown median (ms) | vs oxrun | shims | shim RSS/pod (MiB) | shim PSS/pod (MiB) | PSS vs oxrun |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &counts {
        let ours = rows
            .iter()
            .find(|r| r.n == n && r.handler == "oxrun")
            .expect("oxrun row");
        for r in rows.iter().filter(|r| r.n == n) {
            println!(
                "| {} | {} | {:.1} | {:.2}x | {:.1} | {:.2}x | {} | {:.2} | {:.2} | {:.2}x |",
                n,
                if r.handler == "oxrun" {
                    "oxrun (containerd-shim-rust-v2)"
                } else if r.handler == "runc" {
                    "runc (containerd-shim-runc-v2)"
                } else {
                    "crun (containerd-shim-runc-v2)"
                },
                r.start_ms,
                r.start_ms / ours.start_ms,
                r.stop_ms,
                r.stop_ms / ours.stop_ms,
                r.shims,
                r.rss_kib / 1024.0,
                r.pss_kib / 1024.0,
                r.pss_kib / ours.pss_kib
            );
        }
    }
}
