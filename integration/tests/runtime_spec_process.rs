//! runtime-spec 1.2 process fields, checked from inside the container:
//! `scheduler` (sched_setattr), `ioPriority` (ioprio_set) and, for exec,
//! `execCPUAffinity`. The spec says a runtime MUST fail when it cannot
//! apply them: bad values fail `create`/`exec` naming the field, and leave
//! nothing behind.

use integration::*;
use serde_json::json;

#[test]
fn scheduler_policy_and_nice_apply() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5});
    b.set_script("grep -E '^policy' /proc/self/sched; echo nice=$(cut -d' ' -f19 /proc/self/stat)");
    let id = rt.id("sched");
    let out = rt.run_with(&b, &id, &[]).ok();
    let policy = out
        .stdout
        .lines()
        .find(|l| l.starts_with("policy"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        policy.trim_end().ends_with(": 3") || policy.split_whitespace().last() == Some("3"),
        "SCHED_BATCH is policy 3: {policy}"
    );
    assert!(out.stdout.contains("nice=5"), "{}", out.stdout);
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn io_priority_applies() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE"});
    b.set_script("ionice -p $$");
    let id = rt.id("ioprio");
    let out = rt.run_with(&b, &id, &[]).ok();
    assert!(out.stdout.contains("idle"), "io class: {}", out.stdout);

    let mut b = Bundle::new();
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    b.set_script("ionice -p $$");
    let id = rt.id("ioprio-be");
    let out = rt.run_with(&b, &id, &[]).ok();
    assert!(out.stdout.contains("prio 6"), "io priority: {}", out.stdout);
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn bad_scheduler_and_io_priority_fail_create() {
    let rt = Runtime::new();
    for (field, value, words) in [
        (
            "scheduler",
            json!({"policy": "SCHED_FIFO", "priority": 500}),
            "process.scheduler",
        ),
        (
            "scheduler",
            json!({"policy": "SCHED_OTHER", "nice": 40}),
            "process.scheduler.nice",
        ),
        (
            "ioPriority",
            json!({"class": "IOPRIO_CLASS_BE", "priority": 9}),
            "process.ioPriority",
        ),
    ] {
        let mut b = Bundle::new();
        b.config["process"][field] = value;
        b.set_args(&["true"]);
        let id = rt.id("badsched");
        let out = rt.create(&b, &id).fails();
        out.assert_mentions(&[words]);
        rt.assert_no_leftovers(&b, &id);
    }
}

/// execCPUAffinity (exec only): `final` is what the exec'd process runs
/// on; a CPU list that cannot apply fails the exec naming the field.
#[test]
fn exec_cpu_affinity_final_and_bad_lists() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let id = rt.id("affinity");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let process = |affinity: serde_json::Value| {
        let p = json!({
            "args": ["sh", "-c", "grep Cpus_allowed_list /proc/self/status"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin"],
            "execCPUAffinity": affinity
        });
        let path = rt.scratch().join(format!("p-{}.json", unique("aff")));
        std::fs::write(&path, p.to_string()).unwrap();
        path
    };
    let p = process(json!({"initial": "0", "final": "0"}));
    let out = rt.cmd(&["exec", "-p", p.to_str().unwrap(), &id]).ok();
    let line = out.stdout.trim();
    assert!(
        line.ends_with("\t0") || line.ends_with(" 0"),
        "final 0: {line}"
    );

    let p = process(json!({"final": "4095"}));
    let out = rt.cmd(&["exec", "-p", p.to_str().unwrap(), &id]).fails();
    out.assert_mentions(&["process.execCPUAffinity.final"]);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// `linux.personality` LINUX32 applies to the init and, as runc's setns
/// init does, to an exec'd process (`uname -m` says i686 in both).
#[test]
fn personality_applies_to_init_and_exec() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    b.set_script("echo machine=$(uname -m); sleep 100");
    let id = rt.id("pers32");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let out = rt.wait_output(&id, "machine=", TIMEOUT);
    assert!(out.contains("machine=i686"), "init: {out}");
    let ex = rt.cmd(&["exec", &id, "uname", "-m"]).ok();
    assert_eq!(ex.stdout.trim(), "i686", "exec: {}", ex.describe());
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// `chrt -p <pid>` on the host: the policy line (with its flags) and the
/// SCHED_DEADLINE `runtime/deadline/period` line.
fn chrt(pid: i64) -> String {
    let out = host("chrt", &["-p", &pid.to_string()]);
    out.stdout
}

/// SCHED_DEADLINE with its runtime, deadline and period, and the
/// reset-on-fork flag: read back from the host (sched_getattr through
/// `chrt -p`) on the container's init; a process it forks is SCHED_OTHER
/// (policy 0). Without the flag the init has none.
#[test]
fn scheduler_deadline_and_flags_apply() {
    require!(
        host("sh", &["-c", "command -v chrt || true"])
            .stdout
            .contains("chrt"),
        "no chrt (util-linux) on the host"
    );
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["scheduler"] = json!({
        "policy": "SCHED_DEADLINE",
        "runtime": 1_000_000u64, "deadline": 10_000_000u64, "period": 20_000_000u64,
        "flags": ["SCHED_FLAG_RESET_ON_FORK"]
    });
    b.set_script("echo child=$(grep -E '^policy' /proc/self/sched); echo ready; exec sleep 1000");
    let id = rt.id("deadline");
    rt.create_start(&b, &id);
    let out = rt.wait_output(&id, "ready", TIMEOUT);
    let child = must_field(&out, "child");
    assert_eq!(
        child.split_whitespace().last(),
        Some("0"),
        "a forked process is SCHED_OTHER: {out}"
    );
    let pid = rt.state_ok(&id)["pid"].as_i64().expect("pid");
    let init = chrt(pid);
    assert!(
        init.contains("policy: SCHED_DEADLINE|SCHED_RESET_ON_FORK\n"),
        "init: {init}"
    );
    assert!(
        init.contains("parameters: 1000000/10000000/20000000"),
        "init: {init}"
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);

    // Without flags: no reset-on-fork (the init cannot fork then, so it
    // is sleep itself).
    let mut b = Bundle::new();
    b.config["process"]["scheduler"] = json!({
        "policy": "SCHED_DEADLINE",
        "runtime": 2_000_000u64, "deadline": 5_000_000u64, "period": 5_000_000u64
    });
    b.set_args(&["sleep", "1000"]);
    let id = rt.id("deadline-noflags");
    rt.create_start(&b, &id);
    let pid = rt.state_ok(&id)["pid"].as_i64().expect("pid");
    let init = chrt(pid);
    assert!(init.contains("policy: SCHED_DEADLINE\n"), "init: {init}");
    assert!(
        init.contains("parameters: 2000000/5000000/5000000"),
        "init: {init}"
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// SCHED_DEADLINE needs runtime <= deadline <= period: the kernel's
/// refusal fails create naming the field, and nothing is left.
#[test]
fn impossible_deadline_fails_create() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["scheduler"] = json!({
        "policy": "SCHED_DEADLINE",
        "runtime": 20_000_000u64, "deadline": 10_000_000u64, "period": 5_000_000u64
    });
    b.set_args(&["true"]);
    let id = rt.id("baddeadline");
    let out = rt.create(&b, &id).fails();
    out.assert_mentions(&["process.scheduler"]);
    out.assert_mentions(&["SchedDeadline", "SCHED_DEADLINE"]);
    rt.assert_no_leftovers(&b, &id);
}
