//! Checkpoint and restore through our shim under containerd 1.6, driven
//! by `ctr`: `ctr c checkpoint --task --image` / `ctr c restore --live`,
//! and `ctr task checkpoint --exit`. ctr 1.6 restores only containers made
//! from an image (the checkpoint names it), so the busybox image of
//! scripts/mkimages.sh is imported into each test's containerd; criu (4.2.1
//! from scripts/criu.sh) is put first on containerd's PATH, which the shim
//! inherits.
//!
//! ctr sends the checkpoint options (`exit`, `image-path`, `work-path`)
//! only to the runtimes it knows by name (`io.containerd.runc.v1/v2`): for
//! `io.containerd.rust.v2` it sends none. The `--exit` test therefore runs
//! our shim as `io.containerd.runc.v2` (a `containerd-shim-runc-v2` link to
//! it first on PATH), as a user replacing the Go shim would.

#[path = "checkpoint_support/mod.rs"]
mod checkpoint_support;
#[path = "common_clients/mod.rs"]
mod common_clients;
#[path = "common_containerd/mod.rs"]
#[allow(unused_macros)]
mod common_containerd;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use checkpoint_support::{count, criu_candidates, criu_works, wait_count_above};
use common_clients::*;
use common_containerd::*;
use integration::*;

const IMAGE: &str = "docker.io/oxrun/busybox:latest";

/// Counts into /data/count every 100 ms (and to stdout: a restored init
/// whose stdout is not plumbed to the shim dies of SIGPIPE) until
/// /data/stop appears, then exits 5.
const COUNTER: &str = "i=0; while [ ! -e /data/stop ]; do i=$((i+1)); echo $i > /data/count.tmp; mv /data/count.tmp /data/count; echo tick $i; sleep 0.1; done; exit 5";

/// The directory holding a working `criu`.
fn criu_dir() -> Option<PathBuf> {
    criu_candidates().find_map(|c| {
        let works = c.file_name().is_some_and(|n| n == "criu") && criu_works(&c);
        works.then(|| c.parent().map(Path::to_path_buf)).flatten()
    })
}

fn images_dir() -> PathBuf {
    std::env::var_os("OXRUN_CRI_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/oxrun-test/images"))
}

/// A containerd with criu and (`as_runc`) our shim as
/// `io.containerd.runc.v2` on its PATH, and the busybox image imported.
/// The second value holds the link directory (drop it after containerd).
fn setup(as_runc: bool) -> Option<(Containerd, TempDir)> {
    let Some(criu) = criu_dir() else {
        skip_or_fail("no working criu (scripts/criu.sh installs 4.2.1 in /opt/oxrun-test)");
        return None;
    };
    // Once per test binary: the tests run in parallel and would build the
    // same image files at once.
    static IMAGES: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut built = IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    if !*built {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/mkimages.sh");
        let out = run_with_timeout(
            Command::new("bash").arg(&script).arg(images_dir()),
            Duration::from_secs(120),
            None,
        );
        assert!(out.success(), "scripts/mkimages.sh: {}", out.describe());
        *built = true;
    }
    drop(built);
    let mut extra = criu.display().to_string();
    let links = TempDir::new("oxit-shimlink");
    if as_runc {
        std::os::unix::fs::symlink(shim_bin(), links.join("containerd-shim-runc-v2")).unwrap();
        extra = format!("{}:{extra}", links.path().display());
    }
    let c = Containerd::start_with_path(Flavor::RustShim, Some(&extra));
    let tar = images_dir().join("busybox.tar");
    c.ctr(&["images", "import", &tar.display().to_string()])
        .ok();
    Some((c, links))
}

/// `ctr run -d` of the image with `data` bound at /data, counting.
fn run_counter(c: &Containerd, runtime: &str, id: &str, data: &Path) -> i32 {
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:rw",
        data.display()
    );
    c.seen.lock().unwrap().push((id.to_string(), 0));
    c.ctr(&[
        "run",
        "-d",
        "--runtime",
        runtime,
        "--mount",
        &mount,
        IMAGE,
        id,
        "/bin/sh",
        "-c",
        COUNTER,
    ])
    .ok();
    let (pid, status) = c
        .task(id)
        .unwrap_or_else(|| panic!("no task {id}: {}", c.tasks()));
    assert_eq!(status, "RUNNING", "{}", c.tasks());
    c.seen.lock().unwrap().push((id.to_string(), pid));
    pid
}

/// The pipe a process has as fd 1 is held by a shim of this containerd.
fn stdout_is_a_shim_pipe(c: &Containerd, pid: i32) {
    let link = fs::read_link(format!("/proc/{pid}/fd/1")).unwrap();
    let link = link.display().to_string();
    assert!(link.starts_with("pipe:"), "fd 1 of {pid} is {link}");
    let holders: Vec<i32> = procs_with_cmdline(&c.sock.display().to_string())
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| *p != c.pid)
        .filter(|p| {
            fs::read_dir(format!("/proc/{p}/fd")).is_ok_and(|d| {
                d.flatten()
                    .any(|e| fs::read_link(e.path()).is_ok_and(|l| l.display().to_string() == link))
            })
        })
        .collect();
    assert!(
        !holders.is_empty(),
        "no shim holds {link}, the restored init's stdout"
    );
}

/// Stop a counter through /data/stop and require its exit status 5.
fn stop_counter(c: &Containerd, id: &str, data: &Path) {
    fs::write(data.join("stop"), "").unwrap();
    c.wait_status(id, "STOPPED");
    let del = c.ctr(&["task", "delete", id]);
    assert!(
        del.output().contains("exit code 5") || del.output().contains("exit status 5"),
        "task delete of {id} should report exit 5: {}",
        del.describe()
    );
    c.ctr(&["container", "rm", id]).ok();
    fs::remove_file(data.join("stop")).unwrap();
}

/// `ctr c checkpoint --task --image` of a counting container (left
/// running), then `ctr c restore --live` as a new container: the restored
/// init counts on from where the checkpoint was taken, with stdio the new
/// shim plumbed, can be exec'd into, and exits with its own status.
#[test]
fn container_checkpoint_and_live_restore_continue_the_count() {
    let Some((mut c, _links)) = setup(false) else {
        return;
    };
    let rt = "io.containerd.rust.v2";
    let data = c.dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let pid1 = run_counter(&c, rt, "ck1", &data);
    let before = wait_count_above(&data, 20);
    let t0 = Instant::now();
    c.ctr(&[
        "container",
        "checkpoint",
        "--task",
        "--image",
        "ck1",
        "ckimg1",
    ])
    .ok();
    eprintln!("ctr container checkpoint took {:?}", t0.elapsed());
    // Left running (ctr pauses around the checkpoint, then resumes).
    assert!(pid_alive(pid1), "the checkpointed init is gone");
    c.wait_status("ck1", "RUNNING");
    let after = wait_count_above(&data, before + 5);
    c.ctr(&["task", "kill", "-s", "KILL", "ck1"]).ok();
    c.wait_status("ck1", "STOPPED");
    c.delete("ck1");
    fs::remove_file(data.join("count")).unwrap();

    c.seen.lock().unwrap().push(("rs1".into(), 0));
    let t0 = Instant::now();
    c.ctr(&["container", "restore", "--live", "rs1", "ckimg1"])
        .ok();
    eprintln!("ctr container restore --live took {:?}", t0.elapsed());
    let (pid, status) = c.task("rs1").expect("restored task");
    assert_eq!(status, "RUNNING", "{}", c.tasks());
    c.seen.lock().unwrap().push(("rs1".into(), pid));
    let first = poll(WAIT, || Some(count(&data)).filter(|n| *n > 0)).expect("no count");
    assert!(
        first > before && first <= after + 50,
        "the restored count starts at {first}: not from the checkpoint (taken between {before} and {after})"
    );
    wait_count_above(&data, first + 3);
    stdout_is_a_shim_pipe(&c, pid);
    // The counter rewrites the file (truncate, write): a read that lands
    // in between sees it empty, so read it a few times.
    let mut last = String::new();
    let seen = (0..5).find_map(|i| {
        let ex = c
            .ctr(&[
                "task",
                "exec",
                "--exec-id",
                &format!("e{i}"),
                "rs1",
                "/bin/cat",
                "/data/count",
            ])
            .ok();
        last = ex.describe();
        ex.stdout.trim().parse::<u64>().ok()
    });
    assert!(
        seen.is_some_and(|n| n > first),
        "exec in the restored container: {last}"
    );
    stop_counter(&c, "rs1", &data);
    c.assert_clean();
}

/// `ctr task checkpoint --exit` (our shim as io.containerd.runc.v2, so ctr
/// sends the option): the container stops after the dump, its exit is
/// reported (killed by criu: 137), and the checkpoint is in containerd's
/// store. (ctr 1.6 cannot restore a `task checkpoint` image: `ctr c
/// restore` wants the image name annotation only `c checkpoint` writes.)
#[test]
fn task_checkpoint_with_exit_stops_the_task() {
    let Some((mut c, _links)) = setup(true) else {
        return;
    };
    let rt = "io.containerd.runc.v2";
    let data = c.dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let pid1 = run_counter(&c, rt, "ck2", &data);
    wait_count_above(&data, 10);
    let t0 = Instant::now();
    let out = c.ctr(&["task", "checkpoint", "--exit", "ck2"]).ok();
    eprintln!("ctr task checkpoint --exit took {:?}", t0.elapsed());
    let name = out.stdout.trim().to_string();
    assert!(name.contains("checkpoint/ck2"), "{}", out.describe());
    c.wait_status("ck2", "STOPPED");
    assert!(!pid_alive(pid1), "init {pid1} survived checkpoint --exit");
    let last = count(&data);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        count(&data),
        last,
        "the container still counts after --exit"
    );
    let images = c.ctr(&["images", "ls", "-q"]).ok().stdout;
    assert!(
        images.lines().any(|l| l.trim() == name),
        "{name} not in {images}"
    );
    let del = c.ctr(&["task", "delete", "ck2"]);
    assert!(
        del.output().contains("137"),
        "task delete should report the SIGKILL exit: {}",
        del.describe()
    );
    c.ctr(&["container", "rm", "ck2"]).ok();
    c.assert_clean();
}

/// A stopped task cannot be checkpointed (ctr 1.6 pauses the task first,
/// which fails, so the shim's own refusal is covered by its unit test);
/// the task stays as it was and can be deleted.
#[test]
fn checkpoint_of_a_stopped_task_fails_and_leaves_it() {
    let Some((mut c, _links)) = setup(false) else {
        return;
    };
    let rt = "io.containerd.rust.v2";
    c.seen.lock().unwrap().push(("st1".into(), 0));
    c.ctr(&[
        "run",
        "-d",
        "--runtime",
        rt,
        IMAGE,
        "st1",
        "/bin/sh",
        "-c",
        "exit 3",
    ])
    .ok();
    c.wait_status("st1", "STOPPED");
    let out = c.ctr(&["task", "checkpoint", "st1"]);
    assert!(
        !out.success(),
        "checkpoint of a stopped task: {}",
        out.describe()
    );
    out.assert_mentions(&["not running", "stopped", "cannot"]);
    c.wait_status("st1", "STOPPED");
    c.delete("st1");
    c.assert_clean();
}
