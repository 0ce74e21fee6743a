//! Our shim, `containerd-shim-rust-v2` (`io.containerd.rust.v2`), under
//! containerd 1.6, driven by `ctr`: the same client tests as the Go shim
//! gets in `containerd.rs` (harness and bodies in `common_containerd/`),
//! then what only a shim can get wrong: event order, OOM events, stdin,
//! a killed shim, a containerd restart, many containers at once.

#[path = "common_clients/mod.rs"]
mod common_clients;
#[path = "common_containerd/mod.rs"]
#[macro_use]
mod common_containerd;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common_clients::*;
use common_containerd::*;
use integration::*;

const RUST: Flavor = Flavor::RustShim;

shared_tests!(RUST);

/// `ctr events`, running in the background until dropped.
struct Events {
    child: Child,
    out: std::path::PathBuf,
}

impl Events {
    /// Subscribe, and return once events are flowing (a probe container's
    /// create event has arrived).
    fn start(c: &Containerd) -> Events {
        let out = c.dir.join(format!("{}.events", unique("ev")));
        let f = fs::File::create(&out).unwrap();
        let child = Command::new("nsenter")
            .args(c.ctr_argv(&["events"]))
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ctr events");
        let ev = Events { child, out };
        let probe = unique("probe");
        let rootfs = c.rootfs.rootfs().display().to_string();
        let got = poll(WAIT, || {
            c.ctr(&[
                "container",
                "create",
                "--rootfs",
                &rootfs,
                &probe,
                "/bin/true",
            ]);
            let seen = ev.text().contains(&probe);
            c.ctr(&["container", "rm", &probe]);
            seen.then_some(())
        });
        assert!(got.is_some(), "ctr events shows nothing: {}", ev.text());
        ev
    }

    fn text(&self) -> String {
        read_file(&self.out)
    }

    /// Topics of the task events of `id`, in order.
    fn topics(&self, id: &str) -> Vec<String> {
        let needle = format!("\"container_id\":\"{id}\"");
        self.text()
            .lines()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/tasks/")))
            .map(str::to_string)
            .collect()
    }

    fn wait_for(&self, id: &str, topic: &str) -> Vec<String> {
        poll(WAIT, || {
            let t = self.topics(id);
            t.iter().any(|x| x == topic).then_some(t)
        })
        .unwrap_or_else(|| panic!("no {topic} event for {id}:\n{}", self.text()))
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// containerd requires create -> start -> exit -> delete for every task,
/// exec-added -> exec-started -> exit for an exec, and an OOM event when
/// the memory limit kills the container (v1: eventfd on
/// memory.oom_control; v2: inotify on memory.events), before its exit.
#[test]
fn events_come_in_order_with_oom() {
    let mut c = Containerd::start(RUST);
    let ev = Events::start(&c);

    let out = c.ctr_run(&["--rm"], "evok", &["/bin/sh", "-c", "exit 2"]);
    assert_eq!(out.code(), 2, "{}", out.describe());
    let t = ev.wait_for("evok", "/tasks/delete");
    assert_eq!(
        t,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "{}",
        ev.text()
    );
    let exit = ev
        .text()
        .lines()
        .find(|l| l.contains("/tasks/exit") && l.contains("\"evok\""))
        .unwrap_or_default()
        .to_string();
    assert!(exit.contains("\"exit_status\":2"), "{exit}");

    // The exec'd process's events sit between start and the init's exit.
    c.run_detached("evexec", &["/bin/sleep", "300"], None);
    let x = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "x1",
        "evexec",
        "/bin/sh",
        "-c",
        "exit 9",
    ]);
    assert_eq!(x.code(), 9, "{}", x.describe());
    c.ctr(&["task", "kill", "-s", "KILL", "evexec"]).ok();
    c.wait_status("evexec", "STOPPED");
    c.delete("evexec");
    let t = ev.wait_for("evexec", "/tasks/delete");
    assert_eq!(
        t,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "{}",
        ev.text()
    );

    // 16 MB limit; `tail /dev/zero` keeps one ever-growing line.
    let out = c.ctr_run(
        &["--rm", "--memory-limit", "16777216"],
        "evoom",
        &["/bin/sh", "-c", "tail /dev/zero"],
    );
    assert_eq!(out.code(), 137, "{}", out.describe());
    let t = ev.wait_for("evoom", "/tasks/delete");
    let oom = t.iter().position(|x| x == "/tasks/oom");
    let exit = t.iter().position(|x| x == "/tasks/exit");
    assert!(
        matches!((oom, exit), (Some(o), Some(e)) if o < e),
        "want an oom event before the exit: {t:?}\n{}",
        ev.text()
    );
    assert_eq!(t[..2], ["/tasks/create", "/tasks/start"], "{t:?}");
    assert_eq!(t.last().map(String::as_str), Some("/tasks/delete"));
    drop(ev);
    c.assert_clean();
}

/// stdin: containerd's fifo is pumped into the container; when ctr's
/// stdin ends the container sees EOF (CloseIO).
#[test]
fn stdin_reaches_the_container_and_ends() {
    let mut c = Containerd::start(RUST);
    c.seen.lock().unwrap().push(("stdin".into(), 0));
    let args = c.run_args(&["--rm"], "stdin", &["/bin/sh", "-c", "wc -c; cat"]);
    let line = format!(
        "printf 'abc\\nline2\\n' | {}",
        shell_line("nsenter", &{
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            c.ctr_argv(&refs)
        })
    );
    let out = run_with_timeout(Command::new("sh").args(["-c", &line]), CTR_TIMEOUT, None);
    assert_eq!(out.code(), 0, "{}", out.describe());
    // wc consumed all 10 bytes and saw EOF; cat then sees EOF at once.
    assert_eq!(out.stdout.trim(), "10", "{}", out.describe());
    c.assert_clean();
}

/// The shim is SIGKILLed: containerd notices, runs `containerd-shim-rust-v2
/// delete` in the bundle, which kills the container and removes its state,
/// cgroup and mounts.
#[test]
fn killed_shim_is_cleaned_up_by_containerd() {
    let mut c = Containerd::start(RUST);
    let id = "shimkill";
    let pid = c.run_detached(id, &["/bin/sleep", "300"], None);
    let shim = c.rust_shim_pid();
    // SAFETY: kill(2) with a pid and a signal number; no memory is involved.
    unsafe { libc::kill(shim, libc::SIGKILL) };
    let gone = poll(WAIT, || (!pid_alive(pid)).then_some(()));
    assert!(gone.is_some(), "container init {pid} survived its shim");
    let stopped = poll(WAIT, || {
        c.task(id)
            .is_none_or(|(_, s)| s == "STOPPED" || s == "UNKNOWN")
            .then_some(())
    });
    assert!(stopped.is_some(), "{}", c.tasks());
    let _ = c.ctr(&["task", "delete", id]);
    c.ctr(&["container", "rm", id]).ok();
    assert!(
        c.container_pids(id).is_empty(),
        "processes left in the container's cgroup"
    );
    c.assert_clean();
}

/// containerd restarts while a container runs: the shim and container
/// keep running, containerd reconnects through the bundle's `address`
/// file, and the container's later exit still arrives (event and status).
#[test]
fn containerd_restart_keeps_containers_and_exits_arrive() {
    let mut c = Containerd::start(RUST);
    let id = "restart";
    let log = c.dir.join("restart.log");
    let pid = c.run_detached(id, TRAP_INIT, Some(&log));
    wait_log(&log, "ready");
    let shim = c.rust_shim_pid();

    c.restart(shim);
    assert!(pid_alive(shim), "the shim died with containerd");
    assert!(pid_alive(pid), "the container died with containerd");
    assert_eq!(
        c.task(id),
        Some((pid, "RUNNING".to_string())),
        "{}",
        c.tasks()
    );

    let ev = Events::start(&c);
    c.ctr(&["task", "kill", id]).ok();
    c.wait_status(id, "STOPPED");
    let t = ev.wait_for(id, "/tasks/exit");
    assert!(t.contains(&"/tasks/exit".to_string()), "{t:?}");
    let del = c.delete(id);
    assert!(del.output().contains("exit code 7"), "{}", del.describe());
    drop(ev);
    c.assert_clean();
}

/// 50 `ctr run --rm` at once, each with its own exit code: every one gets
/// its own code back, and nothing is left afterwards.
#[test]
fn fifty_concurrent_containers_report_their_exit_codes() {
    let mut c = Containerd::start(RUST);
    let n = 50;
    let results: Vec<(usize, CmdOut)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let c = &c;
                s.spawn(move || {
                    let id = format!("many{i}");
                    let code = format!("echo out{i}; exit {}", i + 1);
                    (i, c.ctr_run(&["--rm"], &id, &["/bin/sh", "-c", &code]))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wrong: Vec<String> = results
        .iter()
        .filter(|(i, out)| out.code() != *i as i32 + 1 || out.stdout != format!("out{i}\n"))
        .map(|(i, out)| format!("many{i}: {}", out.describe()))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    c.assert_clean();
}

/// The shim's socket lives in /run/containerd/s and is 0600; the bundle
/// gets the `address` containerd reconnects with.
#[test]
fn shim_socket_and_address_file() {
    let mut c = Containerd::start(RUST);
    let id = "addr";
    c.run_detached(id, &["/bin/sleep", "300"], None);
    let bundle = c
        .dir
        .join("state/io.containerd.runtime.v2.task")
        .join(&c.ns)
        .join(id);
    let address = read_file(&bundle.join("address"));
    let path = address
        .strip_prefix("unix://")
        .unwrap_or_else(|| panic!("address {address:?} is not unix://"));
    assert!(path.starts_with("/run/containerd/s/"), "{address}");
    let in_ns = Path::new(&format!("/proc/{}/root", c.pid)).join(path.trim_start_matches('/'));
    let meta = fs::metadata(&in_ns).unwrap_or_else(|e| panic!("{}: {e}", in_ns.display()));
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    c.ctr(&["task", "kill", "-s", "KILL", id]).ok();
    c.wait_status(id, "STOPPED");
    c.delete(id);
    c.assert_clean();
}

/// Bound on how long a sibling may be held up by another container of its
/// shim: a functional bound (the slow things below take 10 to 20 s), not a
/// benchmark.
const SIBLING_BOUND: Duration = Duration::from_secs(3);

/// How many of our shims serve this containerd.
fn shim_count(c: &Containerd) -> usize {
    let shims = c.live_shims();
    shims
        .iter()
        .filter(|s| s.contains("containerd-shim-rust-v2"))
        .count()
}

/// The same, in the background (for a container whose create or start
/// is slow).
fn spawn_run_grouped(c: &Containerd, id: &str, spec: &str) -> Child {
    c.seen.lock().unwrap().push((id.to_string(), 0));
    Command::new("nsenter")
        .args(c.ctr_argv(&[
            "run",
            "-d",
            "--runtime",
            "io.containerd.rust.v2",
            "--config",
            spec,
            id,
        ]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctr run")
}

/// A sibling in the same shim goes on as if alone: an exec gives its
/// output and returns, and its exit event arrives; all within
/// `SIBLING_BOUND`. `tag` names the exec.
fn sibling_is_served(c: &Containerd, ev: &Events, sibling: &str, tag: &str) {
    let t0 = Instant::now();
    let out = c
        .ctr(&["task", "exec", "--exec-id", tag, sibling, "/bin/echo", tag])
        .ok();
    assert!(out.stdout.contains(tag), "{}", out.describe());
    let exit = poll(WAIT, || {
        ev.text()
            .lines()
            .any(|l| l.contains("/tasks/exit") && l.contains(&format!("\"id\":\"{tag}\"")))
            .then(Instant::now)
    })
    .unwrap_or_else(|| panic!("no exit event for exec {tag}:\n{}", ev.text()));
    let took = exit - t0;
    assert!(
        took < SIBLING_BOUND,
        "the sibling's exec and exit event ({tag}) took {took:?}"
    );
}

/// One shim serving two containers (the pod case): while the first one's
/// Delete waits for its slow poststop hook (20 s), the second still execs
/// with output, is killed and reports its exit event at once; then the
/// Delete answers, after the hook has run (the spec wants poststop done
/// before delete returns).
#[test]
fn slow_poststop_hook_does_not_hold_up_a_sibling() {
    let mut c = Containerd::start(RUST);
    let ev = Events::start(&c);
    let hook_done = c.dir.join("poststop-done");
    let hook = serde_json::json!({"poststop": [{
        "path": "/bin/sh",
        // `& wait`: the hook must not inherit the shim's blocked SIGCHLD.
        "args": ["sh", "-c", format!("sleep 20 & wait; touch {}", hook_done.display())]
    }]});
    let slow = c.grouped_spec("slowhook", &["/bin/sleep", "300"], "pod1", Some(hook));
    let sibling = c.grouped_spec("sibling", &["/bin/sleep", "300"], "pod1", None);
    c.run_grouped("slowhook", &slow);
    c.run_grouped("sibling", &sibling);
    assert_eq!(shim_count(&c), 1, "one shim for the group");

    c.ctr(&["task", "kill", "-s", "KILL", "slowhook"]).ok();
    c.wait_status("slowhook", "STOPPED");
    let mut slow_delete = Command::new("nsenter")
        .args(c.ctr_argv(&["task", "delete", "slowhook"]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctr task delete");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        slow_delete.try_wait().unwrap().is_none(),
        "Delete returned before its poststop hook ran"
    );

    sibling_is_served(&c, &ev, "sibling", "e1");
    let t0 = Instant::now();
    c.ctr(&["task", "kill", "-s", "KILL", "sibling"]).ok();
    ev.wait_for("sibling", "/tasks/exit");
    let took = t0.elapsed();
    assert!(
        took < SIBLING_BOUND,
        "the sibling's exit event took {took:?} behind another container's poststop hook"
    );
    assert!(
        !hook_done.exists(),
        "the hook finished too early for this test to mean anything"
    );

    let status = slow_delete.wait().expect("ctr task delete");
    assert!(status.success(), "ctr task delete slowhook failed");
    assert!(
        hook_done.exists(),
        "Delete answered before the poststop hook finished"
    );
    c.ctr(&["container", "rm", "slowhook"]).ok();
    c.delete("sibling");
    drop(ev);
    c.assert_clean();
}

/// In one pod shim, a container whose createRuntime hook and then whose
/// poststart hook each take 10 s: while its Create and then its Start are
/// in progress, a sibling execs, gets its output and its exit event at
/// once; the slow container's `ctr run` returns only after both hooks have
/// finished (the spec wants them run before create and start return).
#[test]
fn slow_create_and_start_hooks_do_not_hold_up_a_sibling() {
    let mut c = Containerd::start(RUST);
    let ev = Events::start(&c);
    let mark = |name: &str| c.dir.join(name);
    let step = |name: &str| {
        format!(
            "touch {}; sleep 10 & wait; touch {}",
            mark(&format!("{name}-begun")).display(),
            mark(&format!("{name}-done")).display()
        )
    };
    let hooks = serde_json::json!({
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", step("create")]}],
        "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", step("poststart")]}],
    });
    let sibling = c.grouped_spec("hsibling", &["/bin/sleep", "300"], "pod2", None);
    c.run_grouped("hsibling", &sibling);
    let slow = c.grouped_spec("slowstart", &["/bin/sleep", "300"], "pod2", Some(hooks));
    let mut run = spawn_run_grouped(&c, "slowstart", &slow);

    let begun = |name: &str| {
        poll(WAIT, || {
            mark(&format!("{name}-begun")).exists().then_some(())
        })
        .unwrap_or_else(|| panic!("the {name} hook did not begin"));
    };
    begun("create");
    sibling_is_served(&c, &ev, "hsibling", "during-create");
    assert!(
        !mark("create-done").exists(),
        "the createRuntime hook finished too early for this test to mean anything"
    );
    begun("poststart");
    assert!(
        mark("create-done").exists(),
        "Create answered before its createRuntime hook finished"
    );
    sibling_is_served(&c, &ev, "hsibling", "during-start");
    assert!(
        !mark("poststart-done").exists(),
        "the poststart hook finished too early for this test to mean anything"
    );
    let status = run.wait().expect("ctr run");
    assert!(status.success(), "ctr run slowstart failed");
    assert!(
        mark("poststart-done").exists(),
        "Start answered before its poststart hook finished"
    );
    assert_eq!(shim_count(&c), 1, "one shim for the group");
    for id in ["slowstart", "hsibling"] {
        c.ctr(&["task", "kill", "-s", "KILL", id]).ok();
        c.wait_status(id, "STOPPED");
        c.delete(id);
    }
    drop(ev);
    c.assert_clean();
}

/// containerd is stopped (SIGSTOP) for 30 s while the containers of a pod
/// shim and an exec'd process exit one after the other; once it runs
/// again, every exit event arrives, in the order of the exits, and the
/// tasks show as stopped.
#[test]
fn exits_while_containerd_is_stopped_arrive_in_order() {
    let mut c = Containerd::start(RUST);
    let ev = Events::start(&c);
    let ids = ["away1", "away2", "away3"];
    let mut pids = Vec::new();
    for id in ids {
        let spec = c.grouped_spec(id, &["/bin/sleep", "300"], "pod3", None);
        c.run_grouped(id, &spec);
        pids.push(c.task(id).expect("task").0);
    }
    let before = c.container_pids("away1");
    c.ctr(&[
        "task",
        "exec",
        "-d",
        "--exec-id",
        "awayx",
        "away1",
        "/bin/sleep",
        "301",
    ])
    .ok();
    let exec_pid = poll(WAIT, || {
        c.container_pids("away1")
            .into_iter()
            .find(|p| !before.contains(p))
    })
    .expect("the exec'd process");
    let signal = |pid: i32, sig: i32| {
        // SAFETY: kill(2) with a pid and a signal number.
        unsafe { libc::kill(pid, sig) }
    };
    assert_eq!(signal(c.pid, libc::SIGSTOP), 0);
    let t0 = Instant::now();
    // The order of the exits: the exec'd process, then the inits.
    for pid in std::iter::once(exec_pid).chain(pids.iter().copied()) {
        signal(pid, libc::SIGKILL);
        let _ = poll(WAIT, || (!pid_alive(pid)).then_some(()));
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(30).saturating_sub(t0.elapsed()));
    assert_eq!(signal(c.pid, libc::SIGCONT), 0);

    let want: Vec<String> = std::iter::once("awayx")
        .chain(ids)
        .map(|s| format!("\"id\":\"{s}\""))
        .collect();
    let exits = poll(WAIT, || {
        let exits: Vec<String> = ev
            .text()
            .lines()
            .filter(|l| l.contains("/tasks/exit"))
            .filter_map(|l| want.iter().find(|w| l.contains(w.as_str())).cloned())
            .collect();
        (exits.len() >= want.len()).then_some(exits)
    })
    .unwrap_or_else(|| panic!("exit events missing after SIGCONT:\n{}", ev.text()));
    assert_eq!(exits, want, "exit events out of order:\n{}", ev.text());
    for id in ids {
        assert_eq!(
            c.task(id).map(|(_, s)| s),
            Some("STOPPED".to_string()),
            "{}",
            c.tasks()
        );
    }
    for id in ids {
        c.delete(id);
    }
    drop(ev);
    c.assert_clean();
}

/// A `binary://` logger (fds 3 and 4: the container's stdout and stderr;
/// fd 5 closed when ready) gets the container's output (the container is
/// created by the shim's create helper with the logger's pipes as stdio),
/// and ends with it: a logger script's `wait` returns, as the shim's
/// blocked SIGCHLD is not passed on to it (the logger was left running).
#[test]
fn binary_logger_gets_the_output() {
    let mut c = Containerd::start(RUST);
    let (out, errf) = (c.dir.join("logger.out"), c.dir.join("logger.err"));
    let logger = c.dir.join("logger.sh");
    fs::write(
        &logger,
        format!(
            "#!/bin/sh\nexec 5>&-\ncat <&3 > {} &\ncat <&4 > {} &\nwait\n",
            out.display(),
            errf.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&logger, fs::Permissions::from_mode(0o755)).unwrap();
    let uri = format!("binary://{}", logger.display());
    let run = c.ctr_run(
        &["-d", "--log-uri", &uri],
        "binlog",
        &["/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2"],
    );
    assert!(run.success(), "{}", run.describe());
    c.wait_status("binlog", "STOPPED");
    let got = poll(WAIT, || {
        (read_file(&out) == "to-stdout\n" && read_file(&errf) == "to-stderr\n").then_some(())
    });
    assert!(
        got.is_some(),
        "logger got {:?} and {:?}",
        read_file(&out),
        read_file(&errf)
    );
    c.delete("binlog");
    c.assert_clean();
}

/// Length-delimited fields (field number, bytes) of a protobuf message;
/// varint fields are skipped. Enough to read a `RuntimeInfo` without a
/// protobuf library (and without trusting the shim's own encoder).
fn pb_fields(mut b: &[u8]) -> Vec<(u64, Vec<u8>)> {
    fn varint(b: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (x, rest) = b.split_first().expect("truncated varint");
            *b = rest;
            v |= u64::from(x & 0x7f) << shift;
            if x & 0x80 == 0 {
                break;
            }
        }
        v
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        match key & 7 {
            0 => {
                varint(&mut b);
            }
            2 => {
                let n = varint(&mut b) as usize;
                out.push((key >> 3, b[..n].to_vec()));
                b = &b[n..];
            }
            w => panic!("unexpected wire type {w} in {b:?}"),
        }
    }
    out
}

fn pb_field(b: &[u8], n: u64) -> Option<Vec<u8>> {
    pb_fields(b)
        .into_iter()
        .find(|(f, _)| *f == n)
        .map(|(_, v)| v)
}

/// `<shim> -info` with `stdin`: (exit code, stdout, stderr).
fn shim_info(stdin: &[u8]) -> (i32, Vec<u8>, String) {
    use std::io::Write;
    let mut child = Command::new(shim_bin())
        .arg("-info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shim -info");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// containerd 2.x asks a shim for the runtime's features with `<shim>
/// -info` (runtime options as a protobuf Any on stdin) and decodes stdout
/// as `containerd.types.RuntimeInfo` {name 1, version 2 {version 1,
/// revision 2}, options 3, features 4 (Any: JSON of runtime-spec's
/// features.md), annotations 5}. containerd-shim-runc-v2 answers the same.
#[test]
fn shim_info_prints_runtime_info_with_features() {
    let (code, out, err) = shim_info(&[]);
    assert_eq!(code, 0, "shim -info failed: {err}");
    assert!(err.is_empty(), "nothing may go to stderr: {err}");
    let name = pb_field(&out, 1).expect("RuntimeInfo.name");
    assert_eq!(name, b"io.containerd.rust.v2");
    let version = pb_field(&out, 2).expect("RuntimeInfo.version");
    assert!(pb_field(&version, 1).is_some_and(|v| !v.is_empty()));
    assert!(pb_field(&out, 3).is_none(), "no options were given");
    let features = pb_field(&out, 4).expect("RuntimeInfo.features");
    assert_eq!(
        pb_field(&features, 1).as_deref(),
        Some(&b"types.containerd.io/opencontainers/runtime-spec/1/features/Features"[..])
    );
    let json: serde_json::Value =
        serde_json::from_slice(&pb_field(&features, 2).unwrap()).expect("features JSON");
    let opts = json["mountOptions"].as_array().expect("mountOptions");
    assert!(opts.iter().any(|o| o == "rro"), "{json:#}");
    // The same document `oxrun features` prints.
    let rt = Runtime::new();
    let f = rt.cmd(&["features"]).ok();
    let printed: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
    assert_eq!(json, printed);

    // Options (containerd.runc.v1.Options{root: "/r"}) come back as given.
    let value = [0x3a, 2, b'/', b'r'];
    let type_url = b"containerd.runc.v1.Options";
    let mut any = vec![0x0a, type_url.len() as u8];
    any.extend_from_slice(type_url);
    any.extend_from_slice(&[0x12, value.len() as u8]);
    any.extend_from_slice(&value);
    let (code, out, err) = shim_info(&any);
    assert_eq!(code, 0, "shim -info with options failed: {err}");
    assert_eq!(pb_field(&out, 3), Some(any));
}

/// containerd 2.1.9 (if unpacked at /opt/oxrun-test/containerd-2.1.9)
/// decodes our `-info`: `ctr plugins inspect-runtime` shows the features,
/// and CRI, given our shim as a runc-type runtime's `runtime_path`, learns
/// that it supports `rro`.
#[test]
fn containerd_2_decodes_shim_info() {
    let bin = Path::new("/opt/oxrun-test/containerd-2.1.9/usr/bin");
    if !bin.join("containerd").is_file() {
        skip_or_fail("containerd 2.1.9 is not unpacked at /opt/oxrun-test/containerd-2.1.9");
        return;
    }
    let dir = TempDir::new("oxit-ctd2");
    let d = dir.path().display().to_string();
    let config = dir.join("config.toml");
    // CRI on: it introspects each runc-type runtime at start-up (2.1.9
    // probes no other runtime type), here our shim as its runtime_path.
    fs::write(
        &config,
        format!(
            r#"version = 3
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.nri.v1.nri"]
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[debug]
  level = "debug"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.oxrun]
  runtime_type = "io.containerd.runc.v2"
  runtime_path = "{}"
"#,
            shim_bin().display()
        ),
    )
    .unwrap();
    let shim_dir = shim_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}:{}",
        shim_dir.display(),
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = fs::File::create(dir.join("containerd.log")).unwrap();
    let script = format!(
        "mount -t tmpfs -o mode=0755 tmpfs /run && exec {}/containerd --config {}",
        bin.display(),
        config.display()
    );
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env("PATH", &path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn containerd 2.1.9");
    let sock = dir.join("c.sock");
    let ctr = |args: &[&str]| {
        let mut c = Command::new(bin.join("ctr"));
        c.arg("--address").arg(&sock).args(args);
        run_with_timeout(&mut c, CTR_TIMEOUT, None)
    };
    let up = poll(WAIT, || {
        (sock.exists() && ctr(&["version"]).success()).then_some(())
    });
    let out = up.map(|_| {
        ctr(&[
            "plugins",
            "inspect-runtime",
            "--runtime",
            "io.containerd.rust.v2",
        ])
    });
    // SAFETY: kill(2) of the containerd we started; no memory is involved.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let log = read_file(&dir.join("containerd.log"));
    let out = out.unwrap_or_else(|| panic!("containerd 2.1.9 did not come up:\n{log}"));
    assert!(out.success(), "{}\n{log}", out.describe());
    let info: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("inspect-runtime output: {e}: {}", out.describe()));
    assert_eq!(info["Name"], "io.containerd.rust.v2", "{info:#}");
    let opts = info["Features"]["mountOptions"].as_array();
    assert!(
        opts.is_some_and(|o| o.iter().any(|x| x == "rro")),
        "{info:#}"
    );
    // CRI read the features too (debug log at start-up).
    assert!(
        log.contains(r#"runtime \"oxrun\" supports recursive read-only mounts"#),
        "CRI did not learn the features of our shim:\n{}",
        log.lines()
            .filter(|l| l.contains("introspect") || l.contains("oxrun"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
