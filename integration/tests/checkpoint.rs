//! Checkpoint and restore with a real criu (scripts/criu.sh installs 4.2.1
//! at /opt/oxrun-test/criu-4.2.1/criu; `OXRUN_TEST_CRIU` overrides, else
//! `criu` on PATH). Containers count in a loop into a file on a bind mount;
//! what the restored container does is read from that file and through
//! `exec` inside it.
//!
//! The containers run with stdio on /dev/null: criu can only checkpoint
//! descriptors it can reopen inside the container (the init reopens the
//! host's /dev/null on its own), not the harness's output files.

use integration::*;
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The criu binary to hand to `--criu`, if one works here.
fn criu() -> Option<String> {
    let candidates = [
        std::env::var("OXRUN_TEST_CRIU").ok(),
        Some("/opt/oxrun-test/criu-4.2.1/criu".to_string()),
        Some("criu".to_string()),
    ];
    candidates.into_iter().flatten().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A runtime wrapper whose commands use `criu`.
fn runtime(criu: &str) -> Runtime {
    let mut rt = Runtime::new();
    rt.global_args = vec!["--criu".into(), criu.into()];
    rt
}

/// Force-deletes the ids it holds on drop (the containers here are started
/// outside `Runtime::create`, which would remember them).
struct Ids<'a> {
    rt: &'a Runtime,
    ids: Vec<String>,
}

impl Drop for Ids<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.rt.cmd(&["delete", "-f", id]);
        }
    }
}

/// `run -d` with stdio on /dev/null; the runtime's errors go to a log file
/// that the panic message quotes.
fn run_detached(rt: &Runtime, b: &Bundle, id: &str) {
    b.write_config(id);
    let log = rt.scratch().join(format!("{id}.log"));
    let mut c = rt.command();
    c.arg("--log")
        .arg(&log)
        .args(["run", "-d", "--bundle"])
        .arg(b.path())
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().expect("spawn run -d");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait run -d") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("run -d {id} timed out");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        status.success(),
        "run -d {id} failed ({status}): {}",
        fs::read_to_string(&log).unwrap_or_default()
    );
}

/// A bundle whose container counts into /data/count (a bind of `data`)
/// every 100 ms.
fn counter(data: &Path) -> Bundle {
    let mut b = Bundle::new();
    b.set_script("i=0; while :; do i=$((i+1)); echo $i > /data/count.tmp; mv /data/count.tmp /data/count; sleep 0.1; done");
    b.add_mount(json!({
        "destination": "/data", "type": "bind",
        "source": data.to_str().unwrap(), "options": ["rbind", "rw"]
    }));
    b
}

fn count(data: &Path) -> u64 {
    fs::read_to_string(data.join("count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Wait until the count in `data` exceeds `above`; returns it.
fn wait_count_above(data: &Path, above: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = count(data);
        if c > above {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "count in {} stayed at {c} (waiting for > {above})",
            data.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn data_dir(rt: &Runtime, name: &str) -> PathBuf {
    let d = rt.scratch().join(name);
    fs::create_dir_all(&d).unwrap();
    d
}

/// The count stays where it is for a while: nothing runs the loop.
fn assert_count_stopped(data: &Path) -> u64 {
    let before = count(data);
    std::thread::sleep(Duration::from_millis(400));
    let after = count(data);
    assert_eq!(before, after, "the counter still runs");
    after
}

fn exec_out(rt: &Runtime, id: &str, script: &str) -> String {
    rt.cmd(&["exec", id, "sh", "-c", script]).ok().stdout
}

#[test]
fn counter_continues_after_restore() {
    let Some(criu) = criu() else {
        return skip_or_fail("no working criu (run scripts/criu.sh)");
    };
    let rt = runtime(&criu);
    let data = data_dir(&rt, "data");
    let b = counter(&data);
    let id = rt.id("ckpt");
    let mut ids = Ids {
        rt: &rt,
        ids: vec![id.clone()],
    };
    run_detached(&rt, &b, &id);
    wait_count_above(&data, 3);
    let images = rt.scratch().join("images");
    rt.cmd(&["checkpoint", "--image-path", images.to_str().unwrap(), &id])
        .ok();
    assert!(images.join("inventory.img").is_file());
    assert!(images.join("descriptors.json").is_file());
    // Without --leave-running the container is gone, everything with it.
    let saved = assert_count_stopped(&data);
    assert!(rt.state(&id).is_err(), "the container still exists");
    rt.assert_no_leftovers(&b, &id);

    rt.cmd(&[
        "restore",
        "-d",
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ])
    .ok();
    let st = rt.state_ok(&id);
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_i64().unwrap_or(0) as i32;
    assert!(pid_alive(pid), "restored init {pid} is not alive");
    // The loop goes on from where it was: its shell variable came back.
    let first = count(&data);
    assert!(
        first >= saved && first < saved + 30,
        "count after restore {first}, saved {saved}: restarted instead of restored?"
    );
    let later = wait_count_above(&data, first + 2);
    // Inside: the same count, the shell is still the pid namespace's init,
    // and the restored container is in its cgroups like any other.
    let inside: u64 = exec_out(&rt, &id, "cat /data/count")
        .trim()
        .parse()
        .unwrap();
    assert!(inside >= later, "exec sees {inside}, host saw {later}");
    let init = exec_out(&rt, &id, "tr '\\0' ' ' < /proc/1/cmdline");
    assert!(init.starts_with("sh -c i=0"), "pid 1 is {init:?}");
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.contains(&format!("/oxit/{id}")),
        "restored init not in the container's cgroups:\n{cg}"
    );

    // Pause, resume, kill and delete work on it like on any container.
    rt.cmd(&["pause", &id]).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("paused"));
    let frozen = assert_count_stopped(&data);
    rt.cmd(&["resume", &id]).ok();
    wait_count_above(&data, frozen);
    rt.kill(&id, Some("KILL")).ok();
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    rt.delete(&id, false).ok();
    ids.ids.clear();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn leave_running_then_restore_as_new_id() {
    let Some(criu) = criu() else {
        return skip_or_fail("no working criu (run scripts/criu.sh)");
    };
    let rt = runtime(&criu);
    let data = data_dir(&rt, "data");
    let mut b = counter(&data);
    let id = rt.id("orig");
    let copy = rt.id("copy");
    let mut ids = Ids {
        rt: &rt,
        ids: vec![id.clone(), copy.clone()],
    };
    run_detached(&rt, &b, &id);
    let pid = rt.state_ok(&id)["pid"].as_i64().unwrap();
    wait_count_above(&data, 3);
    let images = rt.scratch().join("images");
    rt.cmd(&[
        "checkpoint",
        "--leave-running",
        "--image-path",
        images.to_str().unwrap(),
        &id,
    ])
    .ok();
    let saved = count(&data);
    // Still running, same init, still counting.
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    assert_eq!(rt.state_ok(&id)["pid"].as_i64(), Some(pid));
    wait_count_above(&data, saved + 3);

    // The copy's /data is another directory: the bind mount is external
    // in the images and rebound from the new config at restore.
    let data2 = data_dir(&rt, "data2");
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .last_mut()
        .unwrap()["source"] = json!(data2.to_str().unwrap());
    b.write_config(&copy);
    rt.cmd(&[
        "restore",
        "-d",
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        b.path().to_str().unwrap(),
        &copy,
    ])
    .ok();
    assert_eq!(rt.status(&copy).as_deref(), Some("running"));
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    let c2 = wait_count_above(&data2, 0);
    assert!(
        c2 >= saved && c2 < saved + 30,
        "the copy counts from {c2}, the checkpoint was at {saved}"
    );
    let c1 = count(&data);
    wait_count_above(&data, c1);
    wait_count_above(&data2, c2);
    assert_ne!(
        rt.state_ok(&copy)["pid"].as_i64(),
        Some(pid),
        "the copy must be its own process"
    );
    for i in [&id, &copy] {
        rt.delete(i, true).ok();
        rt.assert_no_leftovers(&b, i);
    }
    ids.ids.clear();
}

#[test]
fn tmpfs_masked_and_readonly_paths_survive() {
    let Some(criu) = criu() else {
        return skip_or_fail("no working criu (run scripts/criu.sh)");
    };
    let rt = runtime(&criu);
    let data = data_dir(&rt, "data");
    let mut b = counter(&data);
    b.add_mount(json!({
        "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "size=1m"]
    }));
    b.set_script(
        "echo kept-in-tmpfs > /scratch/f; i=0; while :; do i=$((i+1)); echo $i > /data/count.tmp; mv /data/count.tmp /data/count; sleep 0.1; done",
    );
    let id = rt.id("mnts");
    let mut ids = Ids {
        rt: &rt,
        ids: vec![id.clone()],
    };
    run_detached(&rt, &b, &id);
    wait_count_above(&data, 2);
    let images = rt.scratch().join("images");
    rt.cmd(&["checkpoint", "--image-path", images.to_str().unwrap(), &id])
        .ok();
    rt.assert_no_leftovers(&b, &id);
    rt.cmd(&[
        "restore",
        "-d",
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ])
    .ok();
    // The tmpfs content came back with the image.
    assert_eq!(exec_out(&rt, &id, "cat /scratch/f").trim(), "kept-in-tmpfs");
    // Masked: /proc/timer_list is /dev/null (a file of every kernel:
    // /proc/kcore is optional), /sys/firmware an empty directory.
    assert_eq!(exec_out(&rt, &id, "wc -c < /proc/timer_list").trim(), "0");
    assert_eq!(
        exec_out(&rt, &id, "ls -A /sys/firmware | wc -l").trim(),
        "0"
    );
    let masked = exec_out(&rt, &id, "stat -c %t:%T /proc/timer_list");
    assert_eq!(masked.trim(), "1:3", "/proc/timer_list is not /dev/null");
    // Read-only: /proc/sys refuses writes; the bind is still writable.
    let ro = rt.cmd(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/ns_last_pid",
    ]);
    assert!(!ro.success(), "/proc/sys is writable after restore");
    exec_out(&rt, &id, "echo from-restored > /data/marker");
    assert_eq!(
        fs::read_to_string(data.join("marker")).unwrap().trim(),
        "from-restored"
    );
    let mounts = exec_out(&rt, &id, "cat /proc/self/mountinfo");
    for m in [
        " /data ",
        " /scratch ",
        " /proc/timer_list ",
        " /sys/firmware ",
    ] {
        assert!(
            mounts.contains(m),
            "{m} is not a mount after restore:\n{mounts}"
        );
    }
    rt.delete(&id, true).ok();
    ids.ids.clear();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let Some(criu) = criu() else {
        return skip_or_fail("no working criu (run scripts/criu.sh)");
    };
    let rt = runtime(&criu);
    let data = data_dir(&rt, "data");
    let b = counter(&data);
    let id = rt.id("live");
    let gone = rt.id("gone");
    let mut ids = Ids {
        rt: &rt,
        ids: vec![id.clone(), gone.clone()],
    };
    let restore = |images: &Path, as_id: &str| {
        rt.cmd(&[
            "restore",
            "-d",
            "--image-path",
            images.to_str().unwrap(),
            "--bundle",
            b.path().to_str().unwrap(),
            as_id,
        ])
    };

    // A missing image directory.
    b.write_config(&gone);
    let missing = rt.scratch().join("no-such-images");
    restore(&missing, &gone)
        .fails()
        .assert_mentions(&["no-such-images"]);
    rt.assert_no_leftovers(&b, &gone);
    // A directory without a checkpoint in it.
    let empty = data_dir(&rt, "empty-images");
    restore(&empty, &gone)
        .fails()
        .assert_mentions(&["inventory.img", "descriptors.json"]);
    rt.assert_no_leftovers(&b, &gone);

    // A real checkpoint (left running) to corrupt and to restore over an
    // existing id.
    run_detached(&rt, &b, &id);
    let pid = rt.state_ok(&id)["pid"].as_i64().unwrap();
    wait_count_above(&data, 2);
    let images = rt.scratch().join("images");
    rt.cmd(&[
        "checkpoint",
        "--leave-running",
        "--image-path",
        images.to_str().unwrap(),
        &id,
    ])
    .ok();

    // Restore onto an id that exists: refused, the original untouched.
    restore(&images, &id)
        .fails()
        .assert_mentions(&["already exists"]);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    assert_eq!(rt.state_ok(&id)["pid"].as_i64(), Some(pid));
    let c = count(&data);
    wait_count_above(&data, c);

    // Corrupt images: criu fails, we say so and undo everything.
    let bad = rt.scratch().join("bad-images");
    fs::create_dir_all(&bad).unwrap();
    for e in fs::read_dir(&images).unwrap().flatten() {
        fs::copy(e.path(), bad.join(e.file_name())).unwrap();
    }
    let garbage = vec![0x5au8; 64];
    for e in fs::read_dir(&bad).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n.starts_with("pstree") || n.starts_with("core-") || n.starts_with("mm-") {
            fs::write(e.path(), &garbage).unwrap();
        }
    }
    b.write_config(&gone);
    restore(&bad, &gone)
        .fails()
        .assert_mentions(&["criu restore failed", "criu failed"]);
    rt.assert_no_leftovers(&b, &gone);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));

    // Checkpoint of a stopped container: refused, the container stays.
    rt.kill(&id, Some("KILL")).ok();
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    let again = rt.scratch().join("again");
    rt.cmd(&["checkpoint", "--image-path", again.to_str().unwrap(), &id])
        .fails()
        .assert_mentions(&["stopped"]);
    assert_eq!(rt.status(&id).as_deref(), Some("stopped"));
    // And of an id that does not exist.
    rt.cmd(&["checkpoint", "--image-path", again.to_str().unwrap(), &gone])
        .fails()
        .assert_mentions(&["does not exist"]);
    rt.delete(&id, false).ok();
    ids.ids.clear();
    rt.assert_no_leftovers(&b, &id);
}

/// The last number in a file of lines.
fn last_number(p: &Path) -> u64 {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn established_tcp_connection_survives_with_tcp_established() {
    let Some(criu) = criu() else {
        return skip_or_fail("no working criu (run scripts/criu.sh)");
    };
    let rt = runtime(&criu);
    let data = data_dir(&rt, "data");
    let mut b = counter(&data);
    // A server and a client on loopback in the container's own network
    // namespace; the server writes what it receives to /data/recv (its
    // stdin must stay open: busybox nc stops at EOF on either side).
    b.set_script(
        "ip link set lo up; (sleep 100000 | nc -l -p 5000 > /data/recv) & sleep 0.3; i=0; while :; do i=$((i+1)); echo $i; echo $i > /data/count.tmp; mv /data/count.tmp /data/count; sleep 0.1; done | nc 127.0.0.1 5000",
    );
    // CAP_NET_ADMIN to bring the namespace's loopback up.
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_NET_ADMIN"));
    }
    let id = rt.id("tcp");
    let mut ids = Ids {
        rt: &rt,
        ids: vec![id.clone()],
    };
    run_detached(&rt, &b, &id);
    let recv = data.join("recv");
    let deadline = Instant::now() + Duration::from_secs(10);
    while last_number(&recv) < 3 {
        assert!(Instant::now() < deadline, "nothing arrives over TCP");
        std::thread::sleep(Duration::from_millis(20));
    }
    let images = rt.scratch().join("images");
    // Without the flag criu refuses the open connection; the container
    // keeps running.
    rt.cmd(&["checkpoint", "--image-path", images.to_str().unwrap(), &id])
        .fails()
        .assert_mentions(&["tcp"]);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    rt.cmd(&[
        "checkpoint",
        "--tcp-established",
        "--image-path",
        images.to_str().unwrap(),
        &id,
    ])
    .ok();
    assert_count_stopped(&data);
    let saved = last_number(&recv);
    rt.cmd(&[
        "restore",
        "-d",
        "--tcp-established",
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ])
    .ok();
    // The same connection carries on: the server (restored too) receives
    // the numbers that follow, with no new connection made.
    let deadline = Instant::now() + Duration::from_secs(10);
    while last_number(&recv) < saved + 5 {
        assert!(
            Instant::now() < deadline,
            "the connection did not carry on after restore: last {} (saved {saved})",
            last_number(&recv)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let nums: Vec<u64> = fs::read_to_string(&recv)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "the stream skipped or repeated: {nums:?}");
    }
    rt.delete(&id, true).ok();
    ids.ids.clear();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn terminal_container_restored_with_console_socket() {
    let Some(criu) = criu() else {
        return skip_or_fail("no working criu (run scripts/criu.sh)");
    };
    let rt = runtime(&criu);
    let data = data_dir(&rt, "data");
    let mut b = counter(&data);
    b.config["process"]["terminal"] = json!(true);
    b.set_script(
        "i=0; while :; do i=$((i+1)); echo tick-$i; echo $i > /data/count.tmp; mv /data/count.tmp /data/count; sleep 0.1; done",
    );
    let id = rt.id("tty");
    let mut ids = Ids {
        rt: &rt,
        ids: vec![id.clone()],
    };
    let sock = ConsoleSocket::new(rt.scratch());
    b.write_config(&id);
    rt.cmd(&[
        "run",
        "-d",
        "--console-socket",
        sock.path.to_str().unwrap(),
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ])
    .ok();
    let master = sock.recv_fd(TIMEOUT).expect("pty master");
    let seen = read_until(master.as_raw_fd(), TIMEOUT, |s| s.contains("tick-3"));
    assert!(
        seen.contains("tick-3"),
        "no ticks on the terminal: {seen:?}"
    );
    let images = rt.scratch().join("images");
    rt.cmd(&["checkpoint", "--image-path", images.to_str().unwrap(), &id])
        .ok();
    let saved = assert_count_stopped(&data);
    drop(master);
    // Restore without a console socket: refused, nothing left.
    let restore = |extra: &[&str]| {
        let mut args = vec!["restore", "-d"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "--image-path",
            images.to_str().unwrap(),
            "--bundle",
            b.path().to_str().unwrap(),
            &id,
        ]);
        rt.cmd(&args)
    };
    restore(&[])
        .fails()
        .assert_mentions(&["console-socket", "console socket"]);
    rt.assert_no_leftovers(&b, &id);
    // With one, a new pty master comes over it and the same shell goes on
    // printing on it.
    restore(&["--console-socket", sock.path.to_str().unwrap()]).ok();
    let master = sock.recv_fd(TIMEOUT).expect("restored pty master");
    let want = format!("tick-{}", saved + 3);
    let seen = read_until(master.as_raw_fd(), TIMEOUT, |s| s.contains(&want));
    assert!(
        seen.contains(&want),
        "restored terminal shows {seen:?}, want {want}"
    );
    assert!(
        !seen.contains("tick-1\r"),
        "the loop restarted instead of going on: {seen:?}"
    );
    let tty = exec_out(&rt, &id, "readlink /proc/1/fd/1");
    assert!(tty.starts_with("/dev/pts/"), "init's stdout is {tty:?}");
    rt.delete(&id, true).ok();
    ids.ids.clear();
    rt.assert_no_leftovers(&b, &id);
}
