//! A tiny CRI client for scripts/demo.sh and scripts/bench-cri.sh (there is
//! no crictl on Debian). It reuses the CRI suite's harness
//! (tests/common_cri): a private containerd with CRI + CNI bridge in its own
//! mount + network + IPC namespaces, torn down (and checked clean) at the end.
//! Not part of the shipped binaries.
//!
//!   cri-tool demo [1.6|2.1]             a pod with two containers, oxrun
//!   cri-tool bench N...                 oxrun vs runc vs crun, containerd 2.1
//!   cri-tool systemd [oxrun|runc]       containerd 2.1 with SystemdCgroup = true:
//!                                       a kubelet-style pod's scopes (run in the
//!                                       systemd guest, scripts/systemd-vm)
//!
//! Env: OXRUN_BIN (runtime), OXRUN_SHIM_BIN (shim), OXRUN_CRI_IMAGES.
#![allow(unused_macros)]

#[path = "../tests/common_clients/mod.rs"]
mod common_clients;
#[path = "../tests/common_cri/mod.rs"]
mod common_cri;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common_clients::poll;
use common_cri::*;
use integration::run_with_timeout;

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
        Some("systemd") => systemd(match args.get(1).map(String::as_str) {
            Some("runc") => Handler::Runc,
            _ => Handler::Oxrun,
        }),
        _ => {
            eprintln!("usage: cri-tool demo [1.6|1.7|2.1] | bench N... | systemd [oxrun|runc]");
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

/// One line per check ("ok ..." / "FAIL ..."), as scripts/systemd-vm/check.sh.
#[derive(Default)]
struct Checks {
    pass: usize,
    fail: usize,
}

impl Checks {
    fn ok(&mut self, good: bool, what: &str) {
        if good {
            self.pass += 1;
            println!("ok   {what}");
        } else {
            self.fail += 1;
            println!("FAIL {what}");
        }
    }

    fn eq(&mut self, what: &str, want: &str, got: &str) {
        if want == got {
            self.ok(true, &format!("{what} = {got}"));
        } else {
            self.ok(false, &format!("{what}: expected '{want}', got '{got}'"));
        }
    }
}

/// The unified ("0::") cgroup of a process, as the host sees it.
fn host_cgroup(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("")
        .to_string()
}

/// `systemctl show -p PROP --value UNIT`.
fn unit_prop(unit: &str, prop: &str) -> String {
    let out = run_with_timeout(
        Command::new("systemctl").args(["show", "-p", prop, "--value", "--", unit]),
        Duration::from_secs(20),
        None,
    );
    out.stdout.trim().to_string()
}

/// Units (any state) whose name contains `needle`.
fn units_matching(needle: &str) -> Vec<String> {
    let out = run_with_timeout(
        Command::new("systemctl").args([
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--no-pager",
        ]),
        Duration::from_secs(20),
        None,
    );
    out.stdout
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// containerd 2.1 with `SystemdCgroup = true` on a systemd host (the
/// systemd guest): a kubelet-style BestEffort pod and one container with
/// limits; their scopes, `systemctl show`, exec, and nothing left after
/// removal. Exits 1 if a check failed.
fn systemd(handler: Handler) {
    let mut ck = Checks::default();
    let ctd = Ctd::V2_1;
    println!(
        "containerd {} + CRI, handler {} ({}), SystemdCgroup = true",
        ctd.version_prefix(),
        handler.name(),
        handler.shim_name()
    );
    let mut c = Cri::start_systemd(ctd, handler);
    let conf = fs::read_to_string(c.dir.join("config.toml")).unwrap_or_default();
    ck.ok(
        conf.matches("SystemdCgroup = true").count() >= 2,
        "config.toml sets SystemdCgroup = true for the runtimes",
    );
    let pcfg = c.pod_config("sd-pod");
    let parent = pcfg
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.clone())
        .unwrap_or_default();
    println!("pod cgroup_parent (kubelet's systemd form): {parent}");
    let slice = parent.rsplit('/').next().unwrap_or("").to_string();
    let pod = match c.try_run_pod(&pcfg) {
        Ok(p) => p,
        Err(e) => {
            ck.ok(
                false,
                &format!("RunPodSandbox: {e}\n{}", c.log_grep("level=error")),
            );
            println!("{} passed, {} failed", ck.pass, ck.fail);
            std::process::exit(1);
        }
    };
    ck.ok(true, "RunPodSandbox");
    let pause = c.pod_pid(&pod);
    ck.eq(
        "sandbox (pause) cgroup",
        &format!("{parent}/cri-containerd-{pod}.scope"),
        &host_cgroup(pause),
    );

    let mut cfg = c.container_config("c", &["sleep", "3600"]);
    if let Some(r) = cfg.linux.as_mut().and_then(|l| l.resources.as_mut()) {
        r.memory_limit_in_bytes = 64 << 20;
        r.cpu_shares = 2; // BestEffort
        r.cpu_quota = 50_000;
        r.cpu_period = 100_000;
    }
    let id = match c
        .try_create(&pod, &cfg, &pcfg)
        .and_then(|id| c.try_start(&id).map(|_| id))
    {
        Ok(id) => id,
        Err(e) => {
            ck.ok(
                false,
                &format!(
                    "CreateContainer + StartContainer: {e}\n{}",
                    c.log_grep("level=error")
                ),
            );
            println!("{} passed, {} failed", ck.pass, ck.fail);
            std::process::exit(1);
        }
    };
    c.wait_running(&id);
    ck.ok(true, "CreateContainer + StartContainer");
    let unit = format!("cri-containerd-{id}.scope");
    let cg = format!("{parent}/{unit}");
    ck.eq("container cgroup", &cg, &host_cgroup(c.container_pid(&id)));
    ck.eq(
        "unit ActiveState",
        "active",
        &unit_prop(&unit, "ActiveState"),
    );
    ck.eq("unit Slice", &slice, &unit_prop(&unit, "Slice"));
    ck.eq("unit ControlGroup", &cg, &unit_prop(&unit, "ControlGroup"));
    ck.eq("unit Delegate", "yes", &unit_prop(&unit, "Delegate"));
    ck.eq("unit MemoryMax", "67108864", &unit_prop(&unit, "MemoryMax"));
    ck.eq(
        "unit CPUWeight (shares 2)",
        "1",
        &unit_prop(&unit, "CPUWeight"),
    );
    ck.eq(
        "unit CPUQuotaPerSecUSec",
        "500ms",
        &unit_prop(&unit, "CPUQuotaPerSecUSec"),
    );
    let file = |f: &str| {
        fs::read_to_string(format!("/sys/fs/cgroup{cg}/{f}"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    ck.eq("memory.max", "67108864", &file("memory.max"));
    ck.eq("cpu.weight", "1", &file("cpu.weight"));
    ck.eq("cpu.max", "50000 100000", &file("cpu.max"));
    ck.eq(
        "pod slice ControlGroup",
        &parent,
        &unit_prop(&slice, "ControlGroup"),
    );

    let (o, e, code) = c
        .try_exec_sync(
            &id,
            &["cat", "/proc/self/cgroup", "/sys/fs/cgroup/memory.max"],
        )
        .unwrap_or_else(|e| (String::new(), e.to_string(), -1));
    ck.eq("ExecSync: exit code", "0", &format!("{code}{e}"));
    ck.eq(
        "ExecSync: own cgroup (namespace root), memory.max",
        "0::/ 67108864",
        &o.split_whitespace().collect::<Vec<_>>().join(" "),
    );
    let (_, _, code) = c
        .try_exec_sync(&id, &["sh", "-c", "exit 3"])
        .unwrap_or_else(|e| (String::new(), e.to_string(), -1));
    ck.eq("ExecSync: exit status 3", "3", &code.to_string());

    c.stop_container(&id, 0);
    c.remove_container(&id);
    let gone = poll(Duration::from_secs(10), || {
        (units_matching(&id).is_empty()
            && !std::path::Path::new(&format!("/sys/fs/cgroup{cg}")).exists())
        .then_some(())
    });
    ck.ok(
        gone.is_some(),
        &format!(
            "container removed: no unit, no cgroup (left: {:?})",
            units_matching(&id)
        ),
    );
    c.stop_pod(&pod);
    c.remove_pod(&pod);
    let gone = poll(Duration::from_secs(10), || {
        units_matching(&pod).is_empty().then_some(())
    });
    ck.ok(
        gone.is_some(),
        &format!(
            "pod removed: no sandbox scope (left: {:?})",
            units_matching(&pod)
        ),
    );
    let leftover = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.assert_clean()));
    ck.ok(
        leftover.is_ok(),
        "containerd stopped, nothing left (processes, scopes, mounts, veths)",
    );
    let scopes = units_matching("cri-containerd-");
    ck.ok(
        scopes.is_empty(),
        &format!("no cri-containerd scope at all (left: {scopes:?})"),
    );
    println!("{} passed, {} failed", ck.pass, ck.fail);
    if ck.fail > 0 {
        std::process::exit(1);
    }
}
