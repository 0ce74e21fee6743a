//! cgroup v1 resource management (this host: v1 controllers plus the
//! hybrid unified mount): every limit is read back from the container's
//! cgroup files on the host and, through a `cgroup` mount, from inside;
//! device rules are enforced; pause/resume, update, events (stats and OOM),
//! ps; delete leaves no cgroup; bad input names the field and leaves
//! nothing behind. Fails on hosts without the v1 memory controller unless
//! OXRUN_TEST_ALLOW_SKIP=1 (the pure v2 checks run in the VM:
//! scripts/test-cgroup2.sh).

use integration::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn v1_host() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
}

macro_rules! need_v1 {
    () => {
        require!(
            v1_host(),
            "not a cgroup v1 host (no /sys/fs/cgroup/memory/memory.limit_in_bytes)"
        )
    };
}

/// `/sys/fs/cgroup/<ctrl>/<cgroupsPath>`
fn cg_dir(b: &Bundle, id: &str, ctrl: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(ctrl)
        .join(b.cgroups_path(id).trim_start_matches('/'))
}

/// A file of the container's cgroup, trimmed.
fn cg(b: &Bundle, id: &str, ctrl: &str, file: &str) -> String {
    let p = cg_dir(b, id, ctrl).join(file);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Merge `r` into `linux.resources` (the default device rules stay).
fn set_resources(b: &mut Bundle, r: Value) {
    let res = &mut b.config["linux"]["resources"];
    for (k, v) in r.as_object().expect("object") {
        res[k] = v.clone();
    }
}

/// The container's cgroups at /sys/fs/cgroup (read-only unless `rw`).
fn cgroup_mount(b: &mut Bundle, rw: bool) {
    let mode = if rw { "rw" } else { "ro" };
    b.add_mount(
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", mode]}),
    );
}

fn sleeper(b: &mut Bundle, prelude: &str) {
    b.set_script(&format!("{prelude}\necho ready; exec sleep 1000"));
}

#[test]
fn memory_limits_read_back() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    cgroup_mount(&mut b, false);
    sleeper(
        &mut b,
        "echo limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); \
         echo memsw=$(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes); \
         echo soft=$(cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes)",
    );
    set_resources(
        &mut b,
        json!({"memory": {"limit": 104857600, "reservation": 52428800, "swap": 209715200,
                          "swappiness": 10, "disableOOMKiller": true, "kernelTCP": 50593792}}),
    );
    let id = rt.id("mem");
    rt.create_start(&b, &id);
    let out = rt.wait_output(&id, "ready", TIMEOUT);
    assert_eq!(must_field(&out, "limit"), "104857600", "{out}");
    assert_eq!(must_field(&out, "memsw"), "209715200", "{out}");
    assert_eq!(must_field(&out, "soft"), "52428800", "{out}");
    assert_eq!(cg(&b, &id, "memory", "memory.limit_in_bytes"), "104857600");
    assert_eq!(
        cg(&b, &id, "memory", "memory.memsw.limit_in_bytes"),
        "209715200"
    );
    assert_eq!(
        cg(&b, &id, "memory", "memory.soft_limit_in_bytes"),
        "52428800"
    );
    assert_eq!(cg(&b, &id, "memory", "memory.swappiness"), "10");
    assert!(
        cg(&b, &id, "memory", "memory.oom_control").contains("oom_kill_disable 1"),
        "{}",
        cg(&b, &id, "memory", "memory.oom_control")
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// oxrun applies kernelTCP where the kernel still has the file (as crun
/// does; runtime-tools checks it); kernel memory is ignored with a warning.
/// runc 1.1.5 differs: it ignores kernelTCP too (this test fails there).
#[test]
fn kernel_memory_warns_kernel_tcp_applies() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b, "");
    set_resources(
        &mut b,
        json!({"memory": {"kernel": 50593792, "kernelTCP": 50593792}}),
    );
    let id = rt.id("kmem");
    let out = rt.create(&b, &id).ok();
    assert!(
        out.stderr.to_lowercase().contains("kernel"),
        "expected a kernel memory warning: {}",
        out.describe()
    );
    if cg_dir(&b, &id, "memory")
        .join("memory.kmem.tcp.limit_in_bytes")
        .exists()
    {
        assert_eq!(
            cg(&b, &id, "memory", "memory.kmem.tcp.limit_in_bytes"),
            "50593792"
        );
    }
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn cpu_limits_read_back() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    cgroup_mount(&mut b, false);
    sleeper(
        &mut b,
        "echo shares=$(cat /sys/fs/cgroup/cpu/cpu.shares); \
         echo quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us); \
         echo cpus=$(cat /sys/fs/cgroup/cpuset/cpuset.cpus); \
         echo allowed=$(grep Cpus_allowed_list /proc/self/status | cut -f2)",
    );
    set_resources(
        &mut b,
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 200000,
                       "cpus": "0", "mems": "0"}}),
    );
    let id = rt.id("cpu");
    rt.create_start(&b, &id);
    let out = rt.wait_output(&id, "ready", TIMEOUT);
    assert_eq!(must_field(&out, "shares"), "512", "{out}");
    assert_eq!(must_field(&out, "quota"), "50000", "{out}");
    assert_eq!(must_field(&out, "cpus"), "0", "{out}");
    assert_eq!(must_field(&out, "allowed"), "0", "{out}");
    assert_eq!(cg(&b, &id, "cpu", "cpu.shares"), "512");
    assert_eq!(cg(&b, &id, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cg(&b, &id, "cpu", "cpu.cfs_period_us"), "200000");
    assert_eq!(cg(&b, &id, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(cg(&b, &id, "cpuset", "cpuset.mems"), "0");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// runc 1.1.5 is NON-COMPLIANT here: it predates `cpu.burst` (runc 1.2).
#[test]
fn cpu_burst_read_back() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b, "");
    set_resources(
        &mut b,
        json!({"cpu": {"quota": 50000, "period": 100000, "burst": 10000}}),
    );
    let id = rt.id("burst");
    rt.create(&b, &id).ok();
    if cg_dir(&b, &id, "cpu").join("cpu.cfs_burst_us").exists() {
        assert_eq!(cg(&b, &id, "cpu", "cpu.cfs_burst_us"), "10000");
    }
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// Realtime budget: children of a cgroup cannot have more than it, so this
/// container sits right below the root (which has 950000 us).
#[test]
fn cpu_realtime_read_back() {
    need_v1!();
    require!(
        Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists(),
        "no RT group scheduling (no /sys/fs/cgroup/cpu/cpu.rt_runtime_us)"
    );
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b, "");
    let id = rt.id("rt");
    b.config["linux"]["cgroupsPath"] = json!(format!("/{id}"));
    set_resources(
        &mut b,
        json!({"cpu": {"realtimeRuntime": 20000, "realtimePeriod": 500000}}),
    );
    rt.create(&b, &id).ok();
    assert_eq!(cg(&b, &id, "cpu", "cpu.rt_runtime_us"), "20000");
    assert_eq!(cg(&b, &id, "cpu", "cpu.rt_period_us"), "500000");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// `cpu.idle` (SCHED_IDLE for the whole cgroup): this kernel has it in
/// the v1 cpu controller too; written at create, changed by `update
/// --cpu-idle`, and a value other than 0 or 1 refused naming the field.
#[test]
fn cpu_idle_read_back_and_updated() {
    need_v1!();
    require!(
        Path::new("/sys/fs/cgroup/cpu/cpu.idle").exists(),
        "this kernel has no cpu.idle (Linux 5.15+)"
    );
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b, "");
    set_resources(&mut b, json!({"cpu": {"idle": 1}}));
    let id = rt.id("idle");
    rt.create_start(&b, &id);
    assert_eq!(cg(&b, &id, "cpu", "cpu.idle"), "1");
    rt.cmd(&["update", "--cpu-idle", "0", &id]).ok();
    assert_eq!(cg(&b, &id, "cpu", "cpu.idle"), "0");
    rt.cmd(&["update", "--cpu-idle", "2", &id])
        .fails()
        .assert_mentions(&["linux.resources.cpu.idle"]);
    assert_eq!(cg(&b, &id, "cpu", "cpu.idle"), "0", "unchanged");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
    refused(json!({"cpu": {"idle": 2}}), &["linux.resources.cpu.idle"]);
}

#[test]
fn pids_limit_is_enforced() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    cgroup_mount(&mut b, false);
    // A failed fork ends an ash (sub)shell: fork in a subshell, read files
    // with `read` (no fork).
    b.set_script(
        "read max < /sys/fs/cgroup/pids/pids.max; echo max=$max; \
         ( i=0; while [ $i -lt 12 ]; do sleep 100 & i=$((i+1)); done ) 2>/dev/null; \
         read cur < /sys/fs/cgroup/pids/pids.current; echo current=$cur; echo ready; exec sleep 1000",
    );
    set_resources(&mut b, json!({"pids": {"limit": 6}}));
    let id = rt.id("pids");
    rt.create_start(&b, &id);
    let out = rt.wait_output(&id, "ready", TIMEOUT);
    assert_eq!(must_field(&out, "max"), "6", "{out}");
    let cur: u32 = must_field(&out, "current").parse().expect("number");
    assert!(cur <= 6, "pids.current {cur} above the limit: {out}");
    assert_eq!(cg(&b, &id, "pids", "pids.max"), "6");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// (major, minor) of a real block device on this host.
fn block_device() -> Option<(u32, u32)> {
    for e in fs::read_dir("/sys/block").ok()?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram") {
            continue;
        }
        let dev = fs::read_to_string(e.path().join("dev")).ok()?;
        let (a, b) = dev.trim().split_once(':')?;
        return Some((a.parse().ok()?, b.parse().ok()?));
    }
    None
}

#[test]
fn blkio_throttle_read_back() {
    need_v1!();
    let Some((major, minor)) = block_device() else {
        skip_or_fail("no block device in /sys/block (loop, ram and zram do not count)");
        return;
    };
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b, "");
    set_resources(
        &mut b,
        json!({"blockIO": {
            "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": 2097152}],
            "throttleReadIOPSDevice": [{"major": major, "minor": minor, "rate": 400}],
            "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 300}]}}),
    );
    let id = rt.id("blkio");
    rt.create(&b, &id).ok();
    for (file, value) in [
        ("blkio.throttle.read_bps_device", 1048576),
        ("blkio.throttle.write_bps_device", 2097152),
        ("blkio.throttle.read_iops_device", 400),
        ("blkio.throttle.write_iops_device", 300),
    ] {
        assert_eq!(
            cg(&b, &id, "blkio", file),
            format!("{major}:{minor} {value}"),
            "{file}"
        );
    }
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// blkio weight: written to blkio.weight or (BFQ) blkio.bfq.weight when the
/// kernel has one, otherwise create fails naming the field.
#[test]
fn blkio_weight_applied_or_refused() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b, "");
    set_resources(&mut b, json!({"blockIO": {"weight": 300}}));
    let id = rt.id("bweight");
    let out = rt.create(&b, &id);
    if out.success() {
        let dir = cg_dir(&b, &id, "blkio");
        let file = ["blkio.weight", "blkio.bfq.weight"]
            .into_iter()
            .find(|f| dir.join(f).exists())
            .expect("a weight file");
        let v = cg(&b, &id, "blkio", file);
        assert!(v.ends_with("300"), "{file}: {v}");
        rt.delete(&id, true).ok();
    } else {
        out.assert_mentions(&["blockIO.weight", "weight"]);
    }
    rt.assert_no_leftovers(&b, &id);
}

/// The I/O scheduler the kernel runs for block device `major:minor` (the
/// bracketed word of its queue/scheduler).
fn io_scheduler(major: u32, minor: u32) -> String {
    let p = format!("/sys/dev/block/{major}:{minor}/queue/scheduler");
    let s = fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {p}: {e}"));
    s.split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or("none")
        .to_string()
}

/// `weightDevice[]`: written to blkio.bfq.weight_device (or CFQ's
/// blkio.weight_device) when the device runs BFQ (or CFQ); otherwise the
/// kernel refuses the write (EOPNOTSUPP) and create fails naming the
/// entry. `leafWeight` is CFQ's (gone since Linux 5.0): applied where the
/// kernel offers CFQ, else create fails naming the field.
#[test]
fn blkio_weight_device_and_leaf_weight_applied_or_refused() {
    need_v1!();
    let Some((major, minor)) = block_device() else {
        skip_or_fail("no block device in /sys/block (loop, ram and zram do not count)");
        return;
    };
    let rt = Runtime::new();
    let sched = io_scheduler(major, minor);
    let mut b = Bundle::new();
    sleeper(&mut b, "");
    set_resources(
        &mut b,
        json!({"blockIO": {"weightDevice": [{"major": major, "minor": minor, "weight": 500}]}}),
    );
    let id = rt.id("wdev");
    if sched == "bfq" || sched == "cfq" {
        rt.create(&b, &id).ok();
        let file = ["blkio.weight_device", "blkio.bfq.weight_device"]
            .into_iter()
            .find(|f| cg_dir(&b, &id, "blkio").join(f).exists())
            .expect("a weight_device file");
        let v = cg(&b, &id, "blkio", file);
        assert!(
            v.lines()
                .any(|l| l.trim() == format!("{major}:{minor} 500")),
            "{file}: {v}"
        );
        rt.delete(&id, true).ok();
    } else {
        rt.create(&b, &id)
            .fails()
            .assert_mentions(&["linux.resources.blockIO.weightDevice[0]"]);
    }
    rt.assert_no_leftovers(&b, &id);

    let cfq = fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .any(|e| {
            fs::read_to_string(e.path().join("queue/scheduler")).is_ok_and(|s| {
                s.split_whitespace()
                    .any(|w| w.trim_matches(['[', ']']) == "cfq")
            })
        });
    let mut b = Bundle::new();
    sleeper(&mut b, "");
    set_resources(&mut b, json!({"blockIO": {"leafWeight": 300}}));
    let id = rt.id("leafw");
    if cfq {
        rt.create(&b, &id).ok();
        assert_eq!(cg(&b, &id, "blkio", "blkio.leaf_weight"), "300");
        rt.delete(&id, true).ok();
    } else {
        let out = rt.create(&b, &id).fails();
        out.assert_mentions(&["linux.resources.blockIO.leafWeight"]);
        out.assert_mentions(&["blkio.leaf_weight"]);
    }
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn devices_are_enforced_in_order() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    // Two nodes the default rules do not allow (loop-control 10:237, kmsg
    // 1:11); one of them gets an explicit rule.
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/xloopctl", "type": "c", "major": 10, "minor": 237, "fileMode": 438},
        {"path": "/dev/xkmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 438}
    ]);
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 237, "access": "r"},
        {"allow": true, "type": "b", "major": 7, "minor": 9, "access": "rw"}
    ]);
    sleeper(
        &mut b,
        "if (: </dev/xloopctl) 2>/dev/null; then echo loopctl=open; else echo loopctl=denied; fi; \
         if (: </dev/xkmsg) 2>/dev/null; then echo kmsg=open; else echo kmsg=denied; fi; \
         if (: <>/dev/xloopctl) 2>/dev/null; then echo loopctl-rw=open; else echo loopctl-rw=denied; fi; \
         if head -c 4 /dev/urandom >/dev/null; then echo urandom=open; fi",
    );
    let id = rt.id("dev");
    rt.create_start(&b, &id);
    let out = rt.wait_output(&id, "ready", TIMEOUT);
    assert_eq!(must_field(&out, "loopctl"), "open", "{out}");
    assert_eq!(must_field(&out, "kmsg"), "denied", "{out}");
    assert_eq!(must_field(&out, "loopctl-rw"), "denied", "{out}");
    assert_eq!(must_field(&out, "urandom"), "open", "{out}");
    let list = cg(&b, &id, "devices", "devices.list");
    assert!(!list.contains("a *:* rwm"), "not a deny-all list: {list}");
    assert!(list.contains("c 1:3 rwm"), "default /dev/null rule: {list}");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// The spec's allow rules come first in devices.list, in spec order
/// (runtime-tools checks this). runc 1.1.5 is NON-COMPLIANT here: its
/// emulator writes the default rules first.
#[test]
fn device_rules_are_listed_in_spec_order() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        {"allow": true, "type": "b", "major": 8, "minor": 20, "access": "rw"},
        {"allow": true, "type": "b", "major": 10, "minor": 200, "access": "r"}
    ]);
    sleeper(&mut b, "");
    let id = rt.id("devorder");
    rt.create(&b, &id).ok();
    let list = cg(&b, &id, "devices", "devices.list");
    let first: Vec<&str> = list.lines().take(3).collect();
    assert_eq!(first, ["c 10:229 rwm", "b 8:20 rw", "b 10:200 r"], "{list}");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn pause_and_resume() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("i=0; while true; do i=$((i+1)); echo tick=$i; sleep 0.05; done");
    let id = rt.id("pause");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "tick=3", TIMEOUT);
    rt.cmd(&["pause", &id]).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("paused"));
    assert_eq!(cg(&b, &id, "freezer", "freezer.state"), "FROZEN");
    let before = rt.output(&id);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rt.output(&id), before, "the container ran while paused");
    // Pausing twice and resuming a running container are errors.
    rt.cmd(&["pause", &id]).fails();
    rt.cmd(&["resume", &id]).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    assert_eq!(cg(&b, &id, "freezer", "freezer.state"), "THAWED");
    let n = before.matches("tick=").count();
    rt.wait_output(&id, &format!("tick={}", n + 3), TIMEOUT);
    rt.cmd(&["resume", &id]).fails();
    // A paused container can be force-deleted.
    rt.cmd(&["pause", &id]).ok();
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn update_changes_the_files() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b, "");
    set_resources(
        &mut b,
        json!({"memory": {"limit": 104857600, "swap": 104857600},
               "cpu": {"shares": 512, "quota": 10000, "period": 100000}, "pids": {"limit": 20}}),
    );
    let id = rt.id("upd");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    rt.cmd(&[
        "update",
        "--memory",
        "200M",
        "--memory-swap",
        "300M",
        "--cpu-quota",
        "20000",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "50",
        &id,
    ])
    .ok();
    assert_eq!(cg(&b, &id, "memory", "memory.limit_in_bytes"), "209715200");
    assert_eq!(
        cg(&b, &id, "memory", "memory.memsw.limit_in_bytes"),
        "314572800"
    );
    assert_eq!(cg(&b, &id, "cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(cg(&b, &id, "cpu", "cpu.shares"), "512", "unchanged");
    assert_eq!(cg(&b, &id, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(cg(&b, &id, "pids", "pids.max"), "50");
    // -r: a resources file; lowering memory below memsw works in one go.
    let r = rt.scratch().join("res.json");
    fs::write(
        &r,
        r#"{"memory": {"limit": 52428800, "swap": 52428800}, "cpu": {"shares": 2048}}"#,
    )
    .expect("write");
    rt.cmd(&["update", "-r", r.to_str().expect("utf8"), &id])
        .ok();
    assert_eq!(cg(&b, &id, "memory", "memory.limit_in_bytes"), "52428800");
    assert_eq!(
        cg(&b, &id, "memory", "memory.memsw.limit_in_bytes"),
        "52428800"
    );
    assert_eq!(cg(&b, &id, "cpu", "cpu.shares"), "2048");
    assert_eq!(cg(&b, &id, "pids", "pids.max"), "50", "kept from before");
    // A bad value is refused and changes nothing.
    rt.cmd(&["update", "--cpuset-cpus", "0-63", &id]).fails();
    assert_eq!(cg(&b, &id, "cpuset", "cpuset.cpus"), "0");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
    // Updating a container that no longer exists fails.
    rt.cmd(&["update", "--memory", "10M", &id]).fails();
}

/// `memory.checkBeforeUpdate`: `update` refuses a limit at or below what
/// the cgroup uses (16 MiB of tmpfs here, which cannot be reclaimed
/// without swap) and leaves the limit as it was; a limit above the usage
/// applies.
#[test]
fn check_before_update_refuses_a_limit_below_the_usage() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(
        &mut b,
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=16 2>/dev/null",
    );
    set_resources(
        &mut b,
        json!({"memory": {"limit": 209715200, "checkBeforeUpdate": true}}),
    );
    let id = rt.id("cbu");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    let usage: u64 = cg(&b, &id, "memory", "memory.usage_in_bytes")
        .parse()
        .expect("number");
    assert!(usage > 16 << 20, "usage {usage}");
    rt.cmd(&["update", "--memory", "8M", &id])
        .fails()
        .assert_mentions(&["checkBeforeUpdate"])
        .assert_mentions(&["linux.resources.memory.limit"]);
    assert_eq!(cg(&b, &id, "memory", "memory.limit_in_bytes"), "209715200");
    rt.cmd(&["update", "--memory", "100M", &id]).ok();
    assert_eq!(cg(&b, &id, "memory", "memory.limit_in_bytes"), "104857600");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn events_stats_json() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo ready; exec sleep 1000");
    set_resources(
        &mut b,
        json!({"memory": {"limit": 104857600}, "pids": {"limit": 30}}),
    );
    let id = rt.id("stats");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    let out = rt.cmd(&["events", "--stats", &id]).ok();
    let v: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["id"], id.as_str(), "{v}");
    let d = &v["data"];
    assert_eq!(d["memory"]["usage"]["limit"], 104857600, "{d}");
    assert!(
        d["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{d}"
    );
    assert!(d["memory"]["raw"].is_object(), "{d}");
    assert_eq!(d["pids"]["current"], 1, "{d}");
    assert_eq!(d["pids"]["limit"], 30, "{d}");
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0, "{d}");
    assert!(d["cpu"]["usage"]["percpu"].is_array(), "{d}");
    assert!(d["cpu"]["usage"]["user"].is_u64(), "{d}");
    assert!(d["cpu"]["throttling"].is_object(), "{d}");
    assert!(d["blkio"].is_object() && d["hugetlb"].is_object(), "{d}");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
    rt.cmd(&["events", "--stats", &id]).fails();
}

/// `events` streams stats lines, reports the OOM kill of a process that
/// allocates past the limit, and exits once the container stops.
#[test]
fn events_report_oom() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script(
        "echo ready; sleep 1; \
         dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd-exit=$?; exec sleep 1000",
    );
    set_resources(
        &mut b,
        json!({"memory": {"limit": 16777216, "swap": 16777216}}),
    );
    let id = rt.id("oom");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    let log = rt.scratch().join("events.out");
    let mut ev = rt.command();
    ev.args(["events", "--interval", "300ms", &id])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&log).expect("log"))
        .stderr(Stdio::inherit());
    let mut child = ev.spawn().expect("spawn events");
    let out = rt.wait_output(&id, "dd-exit=", TIMEOUT);
    assert_eq!(
        must_field(&out, "dd-exit"),
        "137",
        "dd was not OOM-killed: {out}"
    );
    let deadline = Instant::now() + TIMEOUT;
    let text = loop {
        let t = read_file(&log);
        if t.contains(r#""type":"oom""#) && t.contains(r#""type":"stats""#) {
            break t;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no oom/stats event within {TIMEOUT:?}:\n{t}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(v["id"], id.as_str(), "{line}");
    }
    rt.delete(&id, true).ok();
    wait_exit(
        &mut child,
        "events did not exit after the container was deleted",
    );
    rt.assert_no_leftovers(&b, &id);
}

fn wait_exit(child: &mut std::process::Child, msg: &str) {
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{msg}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `events` ends when the container stops, not only when it is deleted.
/// runc 1.1.5 is NON-COMPLIANT here: it streams until the cgroup is
/// removed.
#[test]
fn events_exit_when_the_container_stops() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b, "");
    let id = rt.id("evstop");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    let mut child = rt
        .command()
        .args(["events", "--interval", "1s", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn events");
    std::thread::sleep(Duration::from_millis(200));
    rt.kill(&id, Some("KILL")).ok();
    wait_exit(
        &mut child,
        "events did not exit after the container stopped",
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn ps_lists_the_container_processes() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("sleep 1001 & sleep 1002 & echo ready; wait");
    let id = rt.id("ps");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    let init = rt.state_ok(&id)["pid"].as_i64().expect("pid");
    let out = rt.cmd(&["ps", "--format", "json", &id]).ok();
    let pids: Vec<i64> = serde_json::from_str(out.stdout.trim()).expect("json array");
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.contains(&init), "{pids:?} lacks init {init}");
    let table = rt.cmd(&["ps", &id]).ok().stdout;
    let mut lines = table.lines();
    assert!(lines.next().is_some_and(|h| h.contains("PID")), "{table}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows.iter().any(|r| r.contains("sleep 1001")), "{table}");
    // ps arguments after the id go to ps(1).
    let custom = rt.cmd(&["ps", &id, "-o", "pid,comm"]).ok().stdout;
    assert!(
        custom.lines().next().is_some_and(|h| h.contains("COMMAND")),
        "{custom}"
    );
    assert_eq!(custom.lines().count(), 4, "{custom}");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// Delete kills what is left and removes the container's cgroup in every
/// hierarchy, including cgroups made inside it, but not the parents the
/// runtime created for a nested cgroupsPath (runc leaves those too).
#[test]
fn delete_removes_every_cgroup() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    cgroup_mount(&mut b, true);
    let id = rt.id("cgdel");
    let parent = format!("/oxit-{id}");
    b.config["linux"]["cgroupsPath"] = json!(format!("{parent}/inner"));
    sleeper(
        &mut b,
        "mkdir /sys/fs/cgroup/pids/sub; sh -c 'echo $$ > /sys/fs/cgroup/pids/sub/cgroup.procs; exec sleep 1000' & ",
    );
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    let sub = cg_dir(&b, &id, "pids").join("sub/cgroup.procs");
    let deadline = Instant::now() + TIMEOUT;
    while read_file(&sub).trim().is_empty() {
        assert!(
            Instant::now() < deadline,
            "nothing joined {}",
            sub.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for h in [
        "memory", "cpu", "cpuacct", "cpuset", "devices", "freezer", "pids", "blkio",
    ] {
        assert!(cg_dir(&b, &id, h).is_dir(), "no {h} cgroup");
    }
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
    let mut left = Vec::new();
    for dir in cgroup_dirs_for(&parent, &id) {
        if dir.exists() && dir.ends_with(parent.trim_start_matches('/')) {
            left.push(dir.clone());
            let _ = fs::remove_dir(&dir);
        }
    }
    assert!(!left.is_empty(), "the parent cgroup was removed too");
}

/// Create with `resources`, expect failure mentioning one of `words`, and
/// no state, cgroup, mount or process left.
fn refused(resources: Value, words: &[&str]) {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b, "");
    set_resources(&mut b, resources);
    let id = rt.id("bad");
    let out = rt.create(&b, &id).fails();
    out.assert_mentions(words);
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn bad_memory_limit_is_refused() {
    need_v1!();
    refused(
        json!({"memory": {"limit": -5}}),
        &["linux.resources.memory.limit", "memory.limit_in_bytes"],
    );
}

/// `useHierarchy`: written to memory.use_hierarchy; this kernel keeps every
/// cgroup hierarchical and refuses 0, which is the error.
#[test]
fn use_hierarchy_is_written_and_false_refused() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b, "");
    set_resources(&mut b, json!({"memory": {"useHierarchy": true}}));
    let id = rt.id("hier");
    rt.create_start(&b, &id);
    assert_eq!(cg(&b, &id, "memory", "memory.use_hierarchy"), "1");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
    refused(
        json!({"memory": {"useHierarchy": false}}),
        &[
            "linux.resources.memory.useHierarchy",
            "memory.use_hierarchy",
        ],
    );
}

#[test]
fn swap_below_memory_is_refused() {
    need_v1!();
    refused(
        json!({"memory": {"limit": 104857600, "swap": 52428800}}),
        &["linux.resources.memory.swap", "memsw"],
    );
}

/// runc 1.1.5 is NON-COMPLIANT here: it takes any negative limit as
/// unlimited (the spec's unlimited is -1).
#[test]
fn bad_pids_limit_is_refused() {
    need_v1!();
    refused(
        json!({"pids": {"limit": -3}}),
        &["linux.resources.pids.limit", "pids.max"],
    );
}

#[test]
fn impossible_cpuset_is_refused() {
    need_v1!();
    refused(
        json!({"cpu": {"cpus": "0-255"}}),
        &["linux.resources.cpu.cpus", "cpuset.cpus"],
    );
}

#[test]
fn unified_on_v1_is_refused() {
    need_v1!();
    refused(
        json!({"unified": {"memory.high": "1000000"}}),
        &["linux.resources.unified", "cgroup v2", "unified"],
    );
}

#[test]
fn unmounted_controllers_are_refused() {
    need_v1!();
    if !Path::new("/sys/fs/cgroup/hugetlb").exists() {
        refused(
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
            &["hugepageLimits", "hugetlb"],
        );
    }
    if !Path::new("/sys/fs/cgroup/net_cls").exists()
        && !Path::new("/sys/fs/cgroup/net_cls,net_prio").exists()
    {
        refused(
            json!({"network": {"classID": 1048577}}),
            &["network.classID", "net_cls"],
        );
    }
}

/// The v1 hierarchy holding `ctrl`, if mounted (alone or co-mounted).
fn v1_hierarchy(ctrl: &str) -> Option<PathBuf> {
    fs::read_dir("/sys/fs/cgroup")
        .ok()?
        .flatten()
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            (name.split(',').any(|c| c == ctrl) && !e.path().is_symlink()).then(|| e.path())
        })
}

/// `network.classID` and `network.priorities[]`: written to net_cls.classid
/// and net_prio.ifpriomap where those controllers are mounted; otherwise
/// create fails naming the field and the controller.
#[test]
fn network_class_id_and_priorities_applied_or_refused() {
    need_v1!();
    let rt = Runtime::new();
    for (ctrl, res, field, file, want) in [
        (
            "net_cls",
            json!({"network": {"classID": 1048577}}),
            "linux.resources.network.classID",
            "net_cls.classid",
            "1048577",
        ),
        (
            "net_prio",
            json!({"network": {"priorities": [{"name": "lo", "priority": 5}]}}),
            "linux.resources.network.priorities",
            "net_prio.ifpriomap",
            "lo 5",
        ),
    ] {
        let mut b = Bundle::new();
        sleeper(&mut b, "");
        set_resources(&mut b, res);
        let id = rt.id(ctrl);
        match v1_hierarchy(ctrl) {
            Some(h) => {
                rt.create(&b, &id).ok();
                let p = h
                    .join(b.cgroups_path(&id).trim_start_matches('/'))
                    .join(file);
                let v =
                    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                assert!(v.lines().any(|l| l.trim() == want), "{file}: {v}");
                rt.delete(&id, true).ok();
            }
            None => {
                let out = rt.create(&b, &id).fails();
                out.assert_mentions(&[field]);
                out.assert_mentions(&[&format!("{ctrl} controller is not mounted")]);
            }
        }
        rt.assert_no_leftovers(&b, &id);
    }
}

#[test]
fn bad_device_rule_is_refused() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b, "");
    b.config["linux"]["resources"]["devices"] =
        json!([{"allow": true, "type": "c", "major": 1, "minor": 3, "access": ""}]);
    let id = rt.id("baddev");
    rt.create(&b, &id)
        .fails()
        .assert_mentions(&["linux.resources.devices[0].access", "access"]);
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn pause_of_stopped_container_fails() {
    need_v1!();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("exit 0");
    let id = rt.id("pstop");
    rt.create_start(&b, &id);
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    rt.cmd(&["pause", &id]).fails();
    rt.cmd(&["resume", &id]).fails();
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}
