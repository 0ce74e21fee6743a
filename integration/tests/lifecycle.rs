//! Container lifecycle through the runc command line: create, start, state,
//! kill, delete, run, list, --pid-file, spec, features.

use integration::*;
use serde_json::{json, Value};
use std::fs;
use std::time::Duration;

/// A long-running container that exits 0 on SIGTERM and prints `ready`.
fn sleeper(b: &mut Bundle) {
    b.set_script("trap 'echo got-term; exit 0' TERM; echo ready; sleep 1000 & wait");
}

#[test]
fn create_start_kill_delete() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b);
    b.config["annotations"] = json!({"org.oxit.test": "lifecycle"});
    let id = rt.id("life");
    rt.create(&b, &id).ok();

    let st = rt.state_ok(&id);
    assert_eq!(st["id"], id.as_str(), "{st}");
    assert_eq!(st["status"], "created", "{st}");
    assert!(
        st["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "{st}"
    );
    let pid = st["pid"].as_i64().unwrap_or(0) as i32;
    assert!(pid > 0, "created container must have a pid: {st}");
    assert!(pid_alive(pid), "state pid {pid} does not exist");
    assert_eq!(st["bundle"], b.path().to_str().unwrap(), "{st}");
    assert_eq!(
        st["rootfs"],
        b.rootfs().to_str().unwrap(),
        "state rootfs should be the absolute rootfs path: {st}"
    );
    assert!(
        st["created"].as_str().is_some_and(|c| c.contains('T')),
        "created timestamp: {st}"
    );
    assert_eq!(st["annotations"]["org.oxit.test"], "lifecycle", "{st}");
    // runc also reports the owner (empty when not rootless).
    assert!(st["owner"].is_string(), "state lacks owner: {st}");
    // The user program must not run before start.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !rt.output(&id).contains("ready"),
        "process ran before start: {}",
        rt.output(&id)
    );

    rt.start(&id).ok();
    rt.wait_output(&id, "ready", TIMEOUT);
    let st = rt.state_ok(&id);
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(
        st["pid"].as_i64(),
        Some(pid as i64),
        "pid changed across start: {st}"
    );

    // Default signal is SIGTERM.
    rt.kill(&id, None).ok();
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    rt.wait_output(&id, "got-term", TIMEOUT);
    assert!(
        !pid_alive(pid),
        "container process {pid} still alive after stop"
    );

    rt.delete(&id, false).ok();
    let gone = rt.state(&id);
    assert!(gone.is_err(), "state after delete must fail: {gone:?}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn kill_signal_forms() {
    // KILL, SIGKILL and 9 are all accepted.
    for sig in ["KILL", "SIGKILL", "9"] {
        let rt = Runtime::new();
        let mut b = Bundle::new();
        sleeper(&mut b);
        let id = rt.id("sig");
        rt.create_start(&b, &id);
        rt.wait_output(&id, "ready", TIMEOUT);
        rt.kill(&id, Some(sig)).ok();
        rt.wait_for_status(&id, "stopped", TIMEOUT);
        assert!(
            !rt.output(&id).contains("got-term"),
            "{sig} delivered as TERM"
        );
        rt.delete(&id, false).ok();
        rt.assert_no_leftovers(&b, &id);
    }
}

#[test]
fn kill_custom_signal_reaches_pid1() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("trap 'echo got-usr1; exit 0' USR1; echo ready; sleep 1000 & wait");
    let id = rt.id("usr1");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    rt.kill(&id, Some("USR1")).ok();
    rt.wait_output(&id, "got-usr1", TIMEOUT);
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn kill_all() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b);
    let id = rt.id("killall");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    rt.cmd(&["kill", "--all", &id, "KILL"]).ok();
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn pid1_is_user_program() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_args(&[
        "sh",
        "-c",
        "echo pid=$$; echo cmdline=$(tr '\\0' '|' </proc/1/cmdline)",
        "arg0x",
    ]);
    let id = rt.id("pid1");
    let (code, out, err) = rt.run_capture(&b, &id);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(must_field(&out, "pid"), "1", "{out}");
    assert_eq!(
        must_field(&out, "cmdline"),
        "sh|-c|echo pid=$$; echo cmdline=$(tr '\\0' '|' </proc/1/cmdline)|arg0x|",
        "{out}"
    );
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn run_returns_exit_code() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("echo before-exit; exit 7");
    let id = rt.id("exit7");
    let (code, out, err) = rt.run_capture(&b, &id);
    assert_eq!(code, 7, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("before-exit"), "{out}");
    // Without --keep / -d, run deletes the container.
    assert!(
        rt.state(&id).is_err(),
        "container still exists after foreground run"
    );
    rt.assert_no_leftovers(&b, &id);

    let mut b = Bundle::new();
    b.set_args(&["false"]);
    let id = rt.id("false");
    assert_eq!(rt.run_capture(&b, &id).0, 1);
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn run_self_sigkill_is_137() {
    // pid 1 of a pid namespace is immune to its own SIGKILL, so share the
    // host pid namespace for this one: the process really dies of SIGKILL
    // and run must report 128+9.
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.remove_namespace("pid");
    b.set_script("kill -9 $$; echo survived");
    let id = rt.id("sigkill");
    let (code, out, err) = rt.run_capture(&b, &id);
    assert_eq!(code, 137, "stdout: {out}\nstderr: {err}");
    assert!(!out.contains("survived"), "{out}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn run_killed_from_outside_is_128_plus_signal() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("echo ready; sleep 1000");
    let id = rt.id("extkill");
    b.write_config(&id);
    let mut c = rt.command();
    c.arg("run").arg("--bundle").arg(b.path()).arg(&id);
    let out_path = rt.scratch().join("extkill.out");
    let id2 = id.clone();
    let handle = {
        let out_path = out_path.clone();
        std::thread::spawn(move || run_with_timeout(&mut c, TIMEOUT, Some(&out_path)))
    };
    // Wait for it to run, then SIGKILL it through the runtime.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !read_file(&out_path).contains("ready") {
        assert!(
            std::time::Instant::now() < deadline,
            "container never printed ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.kill(&id2, Some("KILL")).ok();
    let out = handle.join().unwrap();
    assert!(!out.timed_out, "{}", out.describe());
    assert_eq!(out.code(), 137, "{}", out.describe());
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn run_detached() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b);
    let id = rt.id("detach");
    let out = rt.run_with(&b, &id, &["-d"]);
    assert!(
        out.success(),
        "run -d must return while the container runs: {}",
        out.describe()
    );
    let st = rt.state_ok(&id);
    assert_eq!(st["status"], "running", "{st}");
    assert!(pid_alive(st["pid"].as_i64().unwrap() as i32));
    rt.kill(&id, Some("KILL")).ok();
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn run_keep_leaves_stopped_container() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("exit 3");
    let id = rt.id("keep");
    let out = rt.run_with(&b, &id, &["--keep"]);
    assert_eq!(out.code(), 3, "{}", out.describe());
    assert_eq!(rt.status(&id).as_deref(), Some("stopped"));
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn list_shows_containers() {
    let rt = Runtime::new();
    let mut b1 = Bundle::new();
    sleeper(&mut b1);
    let mut b2 = Bundle::new();
    sleeper(&mut b2);
    let id1 = rt.id("list1");
    let id2 = rt.id("list2");
    rt.create(&b1, &id1).ok();
    rt.create_start(&b2, &id2);

    let q = rt.cmd(&["list", "-q"]).ok();
    let mut ids: Vec<&str> = q
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    ids.sort();
    let mut want = vec![id1.as_str(), id2.as_str()];
    want.sort();
    assert_eq!(ids, want, "list -q: {}", q.stdout);

    let table = rt.cmd(&["list"]).ok();
    let row1 = table
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id1.as_str()));
    let row2 = table
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id2.as_str()));
    assert!(
        row1.is_some_and(|r| r.contains("created")),
        "{}",
        table.stdout
    );
    assert!(
        row2.is_some_and(|r| r.contains("running")),
        "{}",
        table.stdout
    );

    let js = rt.cmd(&["list", "-f", "json"]).ok();
    let v: Value = serde_json::from_str(&js.stdout)
        .unwrap_or_else(|e| panic!("list -f json: {e}: {}", js.stdout));
    let arr = v.as_array().expect("list -f json must be an array");
    assert_eq!(arr.len(), 2, "{v}");
    let find = |id: &str| {
        arr.iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} missing: {v}"))
    };
    assert_eq!(find(&id1)["status"], "created");
    assert_eq!(find(&id2)["status"], "running");
    assert_eq!(find(&id2)["bundle"], b2.path().to_str().unwrap());
    assert_eq!(find(&id2)["pid"], rt.state_ok(&id2)["pid"]);

    for id in [&id1, &id2] {
        rt.delete(id, true).ok();
    }
    let q = rt.cmd(&["list", "-q"]).ok();
    assert_eq!(q.stdout.trim(), "", "list after delete");
    rt.assert_no_leftovers(&b1, &id1);
    rt.assert_no_leftovers(&b2, &id2);
}

#[test]
fn list_empty_root() {
    let rt = Runtime::new();
    let js = rt.cmd(&["list", "-f", "json"]).ok();
    let v: Value =
        serde_json::from_str(js.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {:?}", js.stdout));
    // runc prints `null` for an empty list; an empty array is equally fine.
    assert!(
        v.is_null() || v.as_array().is_some_and(|a| a.is_empty()),
        "{v}"
    );
}

#[test]
fn pid_file_matches_state() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b);
    let id = rt.id("pidfile");
    let pf = rt.scratch().join("container.pid");
    rt.create_with(&b, &id, &["--pid-file", pf.to_str().unwrap()])
        .ok();
    let text = fs::read_to_string(&pf).expect("pid file written by create");
    let pid: i64 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("pid file content {text:?}"));
    assert_eq!(rt.state_ok(&id)["pid"].as_i64(), Some(pid));
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn spec_writes_valid_config() {
    let rt = Runtime::new();
    let dir = TempDir::new("oxit-spec");
    rt.cmd(&["spec", "-b", dir.path().to_str().unwrap()]).ok();
    let cfg: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("config.json")).expect("config.json"))
            .expect("config.json must be JSON");
    assert!(
        cfg["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{cfg}"
    );
    assert_eq!(cfg["root"]["path"], "rootfs");
    assert!(cfg["process"]["args"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    assert_eq!(cfg["process"]["cwd"], "/");
    let ns: Vec<&str> = cfg["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    for want in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(
            ns.contains(&want),
            "default spec lacks {want} namespace: {ns:?}"
        );
    }
    assert!(cfg["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["destination"] == "/proc"));

    // Refuses to overwrite an existing config.json.
    let again = rt.cmd(&["spec", "-b", dir.path().to_str().unwrap()]);
    again.fails().assert_mentions(&["exist"]);

    // The generated spec actually runs (with args swapped for busybox).
    let mut b = Bundle::new();
    b.config = cfg;
    b.config["process"]["terminal"] = json!(false);
    b.set_script("echo spec-ok");
    let id = rt.id("specrun");
    assert!(rt.run_ok(&b, &id).contains("spec-ok"));
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn spec_rootless() {
    let rt = Runtime::new();
    let dir = TempDir::new("oxit-spec");
    rt.cmd(&["spec", "--rootless", "-b", dir.path().to_str().unwrap()])
        .ok();
    let cfg: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let ns = cfg["linux"]["namespaces"].as_array().unwrap();
    assert!(
        ns.iter().any(|n| n["type"] == "user"),
        "rootless spec needs a user namespace: {cfg}"
    );
    assert!(
        !ns.iter().any(|n| n["type"] == "network"),
        "rootless spec shares the network ns"
    );
    let uid = effective_uid();
    let um = &cfg["linux"]["uidMappings"][0];
    assert_eq!(um["containerID"], 0, "{cfg}");
    assert_eq!(um["hostID"], uid, "{cfg}");
    assert_eq!(um["size"], 1, "{cfg}");
}

#[test]
fn features_json() {
    let rt = Runtime::new();
    let out = rt.cmd(&["features"]).ok();
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("features not JSON: {e}: {}", out.stdout));
    let min = v["ociVersionMin"].as_str().expect("ociVersionMin");
    let max = v["ociVersionMax"].as_str().expect("ociVersionMax");
    assert!(min.starts_with("1."), "{v}");
    assert!(max.starts_with("1."), "{v}");
    let hooks: Vec<&str> = v["hooks"]
        .as_array()
        .expect("hooks list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&h), "features.hooks lacks {h}: {v}");
    }
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for n in ["pid", "network", "ipc", "uts", "mount", "user", "cgroup"] {
        assert!(ns.contains(&n), "features.linux.namespaces lacks {n}: {v}");
    }
    assert!(
        v["mountOptions"]
            .as_array()
            .is_some_and(|m| m.iter().any(|o| o == "rbind")),
        "{v}"
    );
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}
