//! Checkpoint and restore with a real criu (scripts/criu.sh installs 4.2.1
//! at /opt/oxrun-test/criu-4.2.1/criu; `OXRUN_TEST_CRIU` overrides, else
//! `criu` on PATH). Containers count in a loop into a file on a bind mount;
//! what the restored container does is read from that file and through
//! `exec` inside it.
//!
//! The containers run with stdio on /dev/null: criu can only checkpoint
//! descriptors it can reopen inside the container (the init reopens the
//! host's /dev/null on its own), not the harness's output files.

#[path = "checkpoint_support/mod.rs"]
mod checkpoint_support;

use checkpoint_support::{count, criu_candidates, criu_works, wait_count_above};
use integration::*;
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The criu binary to hand to `--criu`, if one works here (else `criu` on
/// PATH).
fn criu() -> Option<String> {
    criu_candidates()
        .chain([PathBuf::from("criu")])
        .find(|c| criu_works(c))
        .map(|c| c.display().to_string())
}

/// A runtime whose commands use a working criu, a data directory and a
/// counter bundle on it; `None` (skipped or failed) without criu.
fn setup() -> Option<(Runtime, PathBuf, Bundle)> {
    let Some(criu) = criu() else {
        skip_or_fail("no working criu (run scripts/criu.sh)");
        return None;
    };
    let mut rt = Runtime::new();
    rt.global_args = vec!["--criu".into(), criu];
    let data = data_dir(&rt, "data");
    let b = counter(&data);
    Some((rt, data, b))
}

/// `checkpoint [extra] --image-path images id`.
fn checkpoint(rt: &Runtime, extra: &[&str], images: &Path, id: &str) -> CmdOut {
    let mut args = vec!["checkpoint"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--image-path", images.to_str().unwrap(), id]);
    rt.cmd(&args)
}

/// `restore -d [extra] --image-path images --bundle b id`.
fn restore(rt: &Runtime, b: &Bundle, extra: &[&str], images: &Path, id: &str) -> CmdOut {
    let mut args = vec!["restore", "-d"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        b.path().to_str().unwrap(),
        id,
    ]);
    rt.cmd(&args)
}

/// Force-deletes the ids it holds on drop (the containers here are started
/// outside `Runtime::create`, which would remember them).
struct Ids<'a> {
    rt: &'a Runtime,
    ids: Vec<String>,
}

impl<'a> Ids<'a> {
    fn new(rt: &'a Runtime, ids: &[&str]) -> Self {
        Ids {
            rt,
            ids: ids.iter().map(|i| i.to_string()).collect(),
        }
    }

    /// `delete` (`force`: -f) `id`, which then leaves nothing behind.
    fn delete(&mut self, b: &Bundle, id: &str, force: bool) {
        self.rt.delete(id, force).ok();
        self.ids.retain(|i| i != id);
        self.rt.assert_no_leftovers(b, id);
    }
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
    let Some((rt, data, b)) = setup() else {
        return;
    };
    let id = rt.id("ckpt");
    let mut ids = Ids::new(&rt, &[&id]);
    run_detached(&rt, &b, &id);
    wait_count_above(&data, 3);
    let images = rt.scratch().join("images");
    checkpoint(&rt, &[], &images, &id).ok();
    assert!(images.join("inventory.img").is_file());
    assert!(images.join("descriptors.json").is_file());
    // Without --leave-running the container is gone, everything with it.
    let saved = assert_count_stopped(&data);
    assert!(rt.state(&id).is_err(), "the container still exists");
    rt.assert_no_leftovers(&b, &id);

    restore(&rt, &b, &[], &images, &id).ok();
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
    ids.delete(&b, &id, false);
}

#[test]
fn leave_running_then_restore_as_new_id() {
    let Some((rt, data, mut b)) = setup() else {
        return;
    };
    let id = rt.id("orig");
    let copy = rt.id("copy");
    let mut ids = Ids::new(&rt, &[&id, &copy]);
    run_detached(&rt, &b, &id);
    let pid = rt.state_ok(&id)["pid"].as_i64().unwrap();
    wait_count_above(&data, 3);
    let images = rt.scratch().join("images");
    checkpoint(&rt, &["--leave-running"], &images, &id).ok();
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
    restore(&rt, &b, &[], &images, &copy).ok();
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
        ids.delete(&b, i, true);
    }
}

#[test]
fn tmpfs_masked_and_readonly_paths_survive() {
    let Some((rt, data, mut b)) = setup() else {
        return;
    };
    b.add_mount(json!({
        "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "size=1m"]
    }));
    b.set_script(
        "echo kept-in-tmpfs > /scratch/f; i=0; while :; do i=$((i+1)); echo $i > /data/count.tmp; mv /data/count.tmp /data/count; sleep 0.1; done",
    );
    let id = rt.id("mnts");
    let mut ids = Ids::new(&rt, &[&id]);
    run_detached(&rt, &b, &id);
    wait_count_above(&data, 2);
    let images = rt.scratch().join("images");
    checkpoint(&rt, &[], &images, &id).ok();
    rt.assert_no_leftovers(&b, &id);
    restore(&rt, &b, &[], &images, &id).ok();
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
    ids.delete(&b, &id, true);
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let Some((rt, data, b)) = setup() else {
        return;
    };
    let id = rt.id("live");
    let gone = rt.id("gone");
    let mut ids = Ids::new(&rt, &[&id, &gone]);
    let restore_from = |images: &Path, as_id: &str| restore(&rt, &b, &[], images, as_id);

    // A missing image directory.
    b.write_config(&gone);
    let missing = rt.scratch().join("no-such-images");
    restore_from(&missing, &gone)
        .fails()
        .assert_mentions(&["no-such-images"]);
    rt.assert_no_leftovers(&b, &gone);
    // A directory without a checkpoint in it.
    let empty = data_dir(&rt, "empty-images");
    restore_from(&empty, &gone)
        .fails()
        .assert_mentions(&["inventory.img", "descriptors.json"]);
    rt.assert_no_leftovers(&b, &gone);

    // A real checkpoint (left running) to corrupt and to restore over an
    // existing id.
    run_detached(&rt, &b, &id);
    let pid = rt.state_ok(&id)["pid"].as_i64().unwrap();
    wait_count_above(&data, 2);
    let images = rt.scratch().join("images");
    checkpoint(&rt, &["--leave-running"], &images, &id).ok();

    // Restore onto an id that exists: refused, the original untouched.
    restore_from(&images, &id)
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
    restore_from(&bad, &gone)
        .fails()
        .assert_mentions(&["criu restore failed", "criu failed"]);
    rt.assert_no_leftovers(&b, &gone);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));

    // Checkpoint of a stopped container: refused, the container stays.
    rt.kill(&id, Some("KILL")).ok();
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    let again = rt.scratch().join("again");
    checkpoint(&rt, &[], &again, &id)
        .fails()
        .assert_mentions(&["stopped"]);
    assert_eq!(rt.status(&id).as_deref(), Some("stopped"));
    // And of an id that does not exist.
    checkpoint(&rt, &[], &again, &gone)
        .fails()
        .assert_mentions(&["does not exist"]);
    ids.delete(&b, &id, false);
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

/// Wait until the last number in `p` is at least `want`; `what` says
/// what went wrong if it does not get there.
fn wait_last_number(p: &Path, want: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while last_number(p) < want {
        assert!(
            Instant::now() < deadline,
            "{what}: last {}, want {want}",
            last_number(p)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn established_tcp_connection_survives_with_tcp_established() {
    let Some((rt, data, mut b)) = setup() else {
        return;
    };
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
    let mut ids = Ids::new(&rt, &[&id]);
    run_detached(&rt, &b, &id);
    let recv = data.join("recv");
    wait_last_number(&recv, 3, "nothing arrives over TCP");
    let images = rt.scratch().join("images");
    // Without the flag criu refuses the open connection; the container
    // keeps running.
    checkpoint(&rt, &[], &images, &id)
        .fails()
        .assert_mentions(&["tcp"]);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    checkpoint(&rt, &["--tcp-established"], &images, &id).ok();
    assert_count_stopped(&data);
    let saved = last_number(&recv);
    restore(&rt, &b, &["--tcp-established"], &images, &id).ok();
    // The same connection carries on: the server (restored too) receives
    // the numbers that follow, with no new connection made.
    wait_last_number(
        &recv,
        saved + 5,
        &format!("the connection did not carry on after restore (saved {saved})"),
    );
    let nums: Vec<u64> = fs::read_to_string(&recv)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "the stream skipped or repeated: {nums:?}");
    }
    ids.delete(&b, &id, true);
}

#[test]
fn terminal_container_restored_with_console_socket() {
    let Some((rt, data, mut b)) = setup() else {
        return;
    };
    b.config["process"]["terminal"] = json!(true);
    b.set_script(
        "i=0; while :; do i=$((i+1)); echo tick-$i; echo $i > /data/count.tmp; mv /data/count.tmp /data/count; sleep 0.1; done",
    );
    let id = rt.id("tty");
    let mut ids = Ids::new(&rt, &[&id]);
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
    checkpoint(&rt, &[], &images, &id).ok();
    let saved = assert_count_stopped(&data);
    drop(master);
    // Restore without a console socket: refused, nothing left.
    let restore_with = |extra: &[&str]| restore(&rt, &b, extra, &images, &id);
    restore_with(&[])
        .fails()
        .assert_mentions(&["console-socket", "console socket"]);
    rt.assert_no_leftovers(&b, &id);
    // With one, a new pty master comes over it and the same shell goes on
    // printing on it.
    restore_with(&["--console-socket", sock.path.to_str().unwrap()]).ok();
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
    ids.delete(&b, &id, true);
}
