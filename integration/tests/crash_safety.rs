//! A runtime command killed at any moment, or a state file damaged, never
//! strands a container: `state`/`list` say what is known, `delete --force`
//! removes whatever exists of it, and the id can be used again. And no
//! command holds the container's lock while it waits for something another
//! command must do.

use integration::*;
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Delays (µs) after which a command is SIGKILLed: from before it has read
/// the bundle to after the init exists.
const KILL_AFTER_US: &[u64] = &[
    300, 700, 1_000, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000, 14_000,
    20_000, 30_000,
];

/// Start `cmd`, SIGKILL it after `us` microseconds (unless it is done),
/// and reap it.
fn kill_after(mut cmd: Command, us: u64) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn runtime");
    std::thread::sleep(Duration::from_micros(us));
    let _ = child.kill();
    let _ = child.wait();
}

/// After a killed command: whatever `state` says, `delete --force` must
/// leave nothing, and a fresh container with the same id must work.
fn recover_and_reuse(rt: &Runtime, b: &Bundle, id: &str, what: &str) {
    let state = rt.cmd(&["state", id]);
    let listed = rt
        .cmd(&["list", "-q"])
        .stdout
        .lines()
        .any(|l| l.trim() == id);
    if state.code() == 0 {
        assert!(listed, "{what}: `state` knows {id} but `list` does not");
        let v: serde_json::Value = serde_json::from_str(&state.stdout)
            .unwrap_or_else(|e| panic!("{what}: state is not JSON ({e}): {}", state.stdout));
        assert!(v["status"].is_string(), "{what}: {v}");
    } else {
        assert!(
            !listed,
            "{what}: `list` shows {id} but `state` fails: {}",
            state.stderr
        );
        state.assert_mentions(&["does not exist", "not exist"]);
    }
    if state.code() == 0 {
        rt.delete(id, true).ok();
    }
    let stray = fs::read_dir(&rt.root)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(id))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(
        stray.is_empty(),
        "{what}: left in the state root: {stray:?}"
    );
    rt.assert_no_leftovers(b, id);
    // The id is usable again.
    rt.create(b, id).ok();
    rt.delete(id, true).ok();
    rt.assert_no_leftovers(b, id);
}

#[test]
fn killed_create_never_strands_the_id() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    for &us in KILL_AFTER_US {
        let id = rt.id(&format!("killcreate{us}"));
        b.write_config(&id);
        let mut c = rt.command();
        c.arg("create").arg("--bundle").arg(b.path()).arg(&id);
        kill_after(c, us);
        recover_and_reuse(&rt, &b, &id, &format!("create killed after {us} µs"));
    }
}

#[test]
fn killed_start_and_run_never_strand_the_id() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    for &us in KILL_AFTER_US.iter().step_by(2) {
        let id = rt.id(&format!("killstart{us}"));
        rt.create(&b, &id).ok();
        let mut c = rt.command();
        c.arg("start").arg(&id);
        kill_after(c, us / 4);
        recover_and_reuse(&rt, &b, &id, &format!("start killed after {} µs", us / 4));

        let id = rt.id(&format!("killrun{us}"));
        b.write_config(&id);
        let mut c = rt.command();
        c.arg("run")
            .arg("-d")
            .arg("--bundle")
            .arg(b.path())
            .arg(&id);
        kill_after(c, us);
        recover_and_reuse(&rt, &b, &id, &format!("run -d killed after {us} µs"));
    }
}

#[test]
fn killed_exec_leaves_the_container_usable() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let id = rt.id("killexec");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    for &us in KILL_AFTER_US {
        let mut c = rt.command();
        c.args(["exec", &id, "sleep", "100"]);
        kill_after(c, us / 2);
        // The container is still running and takes further execs.
        assert_eq!(
            rt.status(&id).as_deref(),
            Some("running"),
            "exec killed after {} µs",
            us / 2
        );
        let out = rt.cmd(&["exec", &id, "echo", "still-exec-able"]).ok();
        assert!(out.stdout.contains("still-exec-able"), "{}", out.describe());
    }
    recover_and_reuse(&rt, &b, &id, "after killed execs");
}

#[test]
fn killed_delete_can_be_finished() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    for &us in KILL_AFTER_US.iter().step_by(3) {
        let id = rt.id(&format!("killdelete{us}"));
        rt.create(&b, &id).ok();
        rt.start(&id).ok();
        let mut c = rt.command();
        c.arg("delete").arg("--force").arg(&id);
        kill_after(c, us / 4);
        recover_and_reuse(&rt, &b, &id, &format!("delete killed after {} µs", us / 4));
    }
}

/// A truncated or garbage state.json: `state` says so clearly, and
/// `delete --force` still kills the container and removes its cgroups
/// (from the state that state.json replaced).
#[test]
fn corrupt_state_is_reported_and_deletable() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    for (n, damage) in ["", "{\"id\":", "not json at all"].iter().enumerate() {
        let id = rt.id(&format!("corrupt{n}"));
        rt.create(&b, &id).ok();
        rt.start(&id).ok();
        fs::write(rt.root.join(&id).join("state.json"), damage).unwrap();
        let st = rt.cmd(&["state", &id]);
        assert_ne!(st.code(), 0, "state of a damaged state.json succeeded");
        st.assert_mentions(&["corrupt"]);
        rt.delete(&id, true).ok();
        rt.assert_no_leftovers(&b, &id);
        rt.create(&b, &id).ok();
        rt.delete(&id, true).ok();
        rt.assert_no_leftovers(&b, &id);
    }
}

/// An `oxrun exec` that is killed (and reaped) if the test fails while it
/// still runs, so a hung exec (the defect this file tests for) is not left
/// behind by a failing run.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `exec --ignore-paused` into a paused container: the new process freezes
/// with the container until it is resumed, and meanwhile `resume` (and
/// everything else) must not wait for the exec (runc lets it through).
#[test]
fn exec_into_paused_container_does_not_block_resume() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let id = rt.id("pausedexec");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    rt.cmd(&["pause", &id]).ok();
    let mut exec = rt.command();
    exec.args(["exec", "--ignore-paused", &id, "echo", "ran-after-resume"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = KillOnDrop(Some(exec.spawn().expect("spawn exec")));
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    rt.cmd(&["resume", &id]).ok();
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "resume waited {:?} for the exec",
        t0.elapsed()
    );
    let out = child
        .0
        .take()
        .expect("exec child")
        .wait_with_output()
        .expect("exec output");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ran-after-resume"),
        "exec: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // And with delete -f instead of resume.
    rt.cmd(&["pause", &id]).ok();
    let mut exec = rt.command();
    exec.args(["exec", "--ignore-paused", &id, "echo", "never"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = KillOnDrop(Some(exec.spawn().expect("spawn exec")));
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    rt.delete(&id, true).ok();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "delete -f waited {:?}",
        t0.elapsed()
    );
    let deadline = Instant::now() + TIMEOUT;
    while child
        .0
        .as_mut()
        .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    {
        assert!(
            Instant::now() < deadline,
            "exec never returned after delete -f"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.assert_no_leftovers(&b, &id);
}

/// A command whose container is locked by another that never finishes (a
/// createRuntime hook without a timeout that sleeps) fails with a clear
/// message after the runtime's lock wait (30 s) instead of hanging.
#[test]
fn a_stuck_holder_makes_waiters_fail_not_hang() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let marker = rt.scratch().join("hook-started");
    b.config["hooks"] = serde_json::json!({"createRuntime": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo $$ > {}.tmp; mv {0}.tmp {0}; exec sleep 120", marker.display())]
    }]});
    b.set_args(&["true"]);
    let id = rt.id("stuck");
    b.write_config(&id);
    let mut c = rt.command();
    c.arg("create").arg("--bundle").arg(b.path()).arg(&id);
    let mut creator = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn create");
    wait_for_path(&marker, TIMEOUT);
    let t0 = Instant::now();
    let mut del = rt.command();
    del.args(["delete", "--force", &id]);
    let out = run_with_timeout(&mut del, Duration::from_secs(60), None);
    let waited = t0.elapsed();
    assert!(!out.timed_out, "delete hung: {}", out.describe());
    assert_ne!(
        out.code(),
        0,
        "delete succeeded under a held lock: {}",
        out.describe()
    );
    out.assert_mentions(&["lock"]);
    assert!(waited < Duration::from_secs(45), "delete waited {waited:?}");
    // End the hook (create then fails and undoes itself), and create.
    let hook_pid: i32 = read_file(&marker).trim().parse().expect("hook pid");
    // SAFETY: kill(2) of the hook process this test started; no memory.
    unsafe { libc::kill(hook_pid, libc::SIGKILL) };
    let _ = creator.wait();
    let _ = rt.cmd(&["delete", "--force", &id]);
    rt.assert_no_leftovers(&b, &id);
}

/// `pause`, `resume` and `update` killed at any point: the container is
/// left running or paused (never half-frozen: a later `resume` thaws it),
/// its state says so, and it can still be updated and deleted.
#[test]
fn killed_pause_resume_and_update_leave_a_usable_container() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let id = rt.id("killpause");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    for &us in KILL_AFTER_US.iter().step_by(2) {
        for args in [
            vec!["pause", &id],
            vec!["resume", &id],
            vec!["update", "--pids-limit", "64", &id],
        ] {
            let mut c = rt.command();
            c.args(&args);
            kill_after(c, us / 4);
            let what = format!("{} killed after {} µs", args[0], us / 4);
            let status = rt.status(&id);
            assert!(
                matches!(status.as_deref(), Some("running" | "paused")),
                "{what}: status {status:?}"
            );
            // Whatever it was left as, resume brings it back, and then it
            // takes execs and updates.
            if status.as_deref() == Some("paused") {
                rt.cmd(&["resume", &id]).ok();
            }
            assert_eq!(rt.status(&id).as_deref(), Some("running"), "{what}");
            rt.cmd(&["update", "--pids-limit", "100", &id]).ok();
            let out = rt.cmd(&["exec", &id, "echo", "alive"]).ok();
            assert!(out.stdout.contains("alive"), "{what}: {}", out.describe());
        }
    }
    recover_and_reuse(&rt, &b, &id, "after killed pause/resume/update");
}

/// Four threads race pause, resume, exec (with --ignore-paused), kill -0
/// and update on one container for a while, then one deletes it: every
/// command ends within its bound (each either succeeds or fails with a
/// message; none hangs), and nothing is left.
#[test]
fn command_storm_on_one_container_never_hangs() {
    let rt = std::sync::Arc::new(Runtime::new());
    let mut b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let id = rt.id("storm");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let ops: [&[&str]; 5] = [
        &["pause"],
        &["resume"],
        &["exec", "--ignore-paused"],
        &["kill"],
        &["update", "--pids-limit", "77"],
    ];
    let stop_at = Instant::now() + Duration::from_secs(4);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let (rt, id) = (rt.clone(), id.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while Instant::now() < stop_at {
                    let op = ops[(n + t) % ops.len()];
                    let mut args: Vec<&str> = op.to_vec();
                    args.push(&id);
                    match op[0] {
                        "exec" => args.extend(["true"]),
                        "kill" => args.push("0"),
                        _ => {}
                    }
                    // Bounded by TIMEOUT; an exec into the paused
                    // container waits for a resume (another thread's, or
                    // the main thread's below).
                    let out = rt.cmd(&args);
                    assert!(!out.timed_out, "{args:?} hung: {}", out.describe());
                    assert!(
                        out.success() || !out.stderr.trim().is_empty(),
                        "{args:?} failed without a message: {}",
                        out.describe()
                    );
                    n += 1;
                }
                n
            })
        })
        .collect();
    // Once the storm is over, keep resuming until every thread is done, so
    // that an exec frozen by a last pause can finish.
    let deadline = Instant::now() + TIMEOUT;
    while !handles.iter().all(|h| h.is_finished()) {
        assert!(Instant::now() < deadline, "storm threads still busy");
        if Instant::now() > stop_at {
            let _ = rt.cmd(&["resume", &id]);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let total: usize = handles
        .into_iter()
        .map(|h| h.join().expect("storm thread"))
        .sum();
    assert!(total > 8, "only {total} commands ran");
    // Whatever state the storm left: resume (if paused) and delete.
    if rt.status(&id).as_deref() == Some("paused") {
        rt.cmd(&["resume", &id]).ok();
    }
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}
