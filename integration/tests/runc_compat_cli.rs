//! Where runc's users and clients depend on its command line: exit codes,
//! `kill ID 0`, `exec --cgroup`, `exec -p` without `user`, `spec`'s
//! namespaces, device rules in `update -r`, `--debug` logging, `-v`, and
//! the words of a few error messages. Each test also runs against runc
//! 1.1.5 (`OXRUN_BIN=/usr/sbin/runc`); where runc departs from the
//! runtime-spec the test follows the spec and says so.

use integration::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A running container whose init sleeps; returns its host pid.
fn running(rt: &Runtime, b: &mut Bundle, id: &str) -> i64 {
    b.set_args(&["sleep", "300"]);
    rt.create_start(b, id);
    rt.state_ok(id)["pid"].as_i64().expect("pid")
}

/// A container that ran and stopped (its state is kept).
fn stopped(rt: &Runtime, b: &mut Bundle, id: &str) {
    running(rt, b, id);
    rt.kill(id, Some("KILL")).ok();
    rt.wait_for_status(id, "stopped", WAIT);
}

fn v1_host() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
}

/// The runtime binary's own name (`oxrun`, `runc`).
fn bin_name() -> String {
    runtime_bin()
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

// ---- 4: exit codes ----

/// `exec` exits with the process's status, so errors of `exec` itself
/// (before the process runs) exit 255, as runc's do, for a client to tell
/// them apart. Flag syntax errors caught by the parser (an unknown flag, a
/// non-number for an integer flag) are usage errors: exit 1 in runc 1.1.5
/// too.
#[test]
fn exec_errors_exit_255() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = rt.id("ex255");
    running(&rt, &mut b, &id);
    let out = rt.cmd(&["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(out.code(), 7, "{}", out.describe());

    let missing = rt.id("ex255-none");
    let out = rt.cmd(&["exec", &missing, "true"]);
    assert_eq!(out.code(), 255, "no such container: {}", out.describe());
    out.assert_mentions(&["does not exist"]);

    let out = rt.cmd(&["exec", "--user", "abc:x", &id, "true"]);
    assert_eq!(out.code(), 255, "bad --user value: {}", out.describe());
    let out = rt.cmd(&["exec", "--cwd", "relative", &id, "true"]);
    assert_eq!(out.code(), 255, "relative --cwd: {}", out.describe());
    let nofile = rt.scratch().join("no-such-process.json");
    let out = rt.cmd(&["exec", "-p", nofile.to_str().expect("utf8"), &id]);
    assert_eq!(
        out.code(),
        255,
        "missing --process file: {}",
        out.describe()
    );
    let out = rt.cmd(&["exec", &id]);
    assert_eq!(out.code(), 255, "no command: {}", out.describe());
    let out = rt.cmd(&["exec", &id, "/no/such/binary"]);
    assert_eq!(out.code(), 255, "no such binary: {}", out.describe());

    let out = rt.cmd(&["exec", "--preserve-fds", "xyz", &id, "true"]);
    assert_eq!(out.code(), 1, "usage error: {}", out.describe());
    let out = rt.cmd(&["exec", "--no-such-flag", &id, "true"]);
    assert_eq!(out.code(), 1, "usage error: {}", out.describe());

    let sid = rt.id("ex255-stopped");
    let mut sb = Bundle::new();
    stopped(&rt, &mut sb, &sid);
    let out = rt.cmd(&["exec", &sid, "true"]);
    assert_eq!(out.code(), 255, "stopped container: {}", out.describe());
    out.assert_mentions(&["stopped"]);

    rt.delete(&id, true).ok();
    rt.delete(&sid, false).ok();
    rt.assert_no_leftovers(&b, &id);
    rt.assert_no_leftovers(&sb, &sid);
}

/// `delete --force` of a container that does not exist succeeds silently
/// (runc 1.1.5); without --force it is still an error.
#[test]
fn force_delete_of_missing_container_succeeds() {
    let rt = Runtime::new();
    let id = rt.id("delnone");
    let out = rt.cmd(&["delete", "--force", &id]);
    assert_eq!(out.code(), 0, "{}", out.describe());
    assert!(
        out.stdout.trim().is_empty() && out.stderr.trim().is_empty(),
        "prints nothing: {}",
        out.describe()
    );
    let out = rt.cmd(&["delete", "-f", &id]);
    assert_eq!(out.code(), 0, "{}", out.describe());
    rt.cmd(&["delete", &id])
        .fails()
        .assert_mentions(&["does not exist"]);
}

// ---- 5: kill ID 0 ----

/// Signal 0 asks "is it alive?": success for a running container (which
/// keeps running), "container not running" for a stopped one.
#[test]
fn kill_signal_zero_probes_the_container() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = rt.id("kill0");
    running(&rt, &mut b, &id);
    rt.kill(&id, Some("0")).ok();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    rt.kill(&id, Some("KILL")).ok();
    rt.wait_for_status(&id, "stopped", WAIT);
    rt.kill(&id, Some("0"))
        .fails()
        .assert_mentions(&["not running"]);
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}

// ---- 6: exec --cgroup ----

/// `(controllers, mount point)` of every whole cgroup hierarchy mounted.
fn cgroup_mounts() -> Vec<(Vec<String>, PathBuf)> {
    let mut out = Vec::new();
    for line in mountinfo() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let superopts = post.nth(1).unwrap_or("");
        let mut f = pre.split(' ');
        let (root, mnt) = (f.nth(3).unwrap_or(""), f.next().unwrap_or(""));
        if root != "/" || !mnt.starts_with("/sys/fs/cgroup") {
            continue;
        }
        let ctrls = match fstype {
            "cgroup2" => Vec::new(),
            "cgroup" => superopts
                .split(',')
                .filter(|o| {
                    !matches!(*o, "rw" | "ro" | "xattr" | "noprefix" | "clone_children")
                        && !o.starts_with("release_agent")
                })
                .map(String::from)
                .collect(),
            _ => continue,
        };
        out.push((ctrls, PathBuf::from(mnt)));
    }
    out
}

/// `/proc/<pid>/cgroup`-style text as controllers field -> path.
fn parse_cgroup_file(text: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, ':');
            let _ = p.next()?;
            Some((p.next()?.to_string(), p.next()?.to_string()))
        })
        .collect();
    v.sort();
    v
}

/// The host directory of `path` in the hierarchy named by `ctrls` (a
/// `/proc/<pid>/cgroup` controllers field).
fn host_dir(mounts: &[(Vec<String>, PathBuf)], ctrls: &str, path: &str) -> Option<PathBuf> {
    let want: Vec<&str> = ctrls.split(',').filter(|c| !c.is_empty()).collect();
    mounts
        .iter()
        .find(|(c, _)| c.len() == want.len() && want.iter().all(|w| c.iter().any(|x| x == w)))
        .map(|(_, m)| m.join(path.trim_start_matches('/')))
}

/// runc's `--cgroup` forms: `path` (every hierarchy, the v2 one of a
/// hybrid host too), `/` (the container's own cgroup),
/// `controller[,controller]:path` (only those), repeatable; an unknown
/// controller, a path leaving the container's cgroup and a malformed
/// argument are errors (exit 255).
#[test]
fn exec_cgroup_forms() {
    require!(
        v1_host(),
        "not a cgroup v1 host (no /sys/fs/cgroup/memory/memory.limit_in_bytes)"
    );
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = rt.id("excg");
    let pid = running(&rt, &mut b, &id);
    let init = parse_cgroup_file(&read_file(Path::new(&format!("/proc/{pid}/cgroup"))));
    let mounts = cgroup_mounts();
    let mut subs = Vec::new();
    for (ctrls, path) in &init {
        let dir = host_dir(&mounts, ctrls, path)
            .unwrap_or_else(|| panic!("no mount for hierarchy {ctrls:?}"));
        let sub = dir.join("sub");
        fs::create_dir_all(&sub).expect("mkdir sub-cgroup");
        if ctrls.split(',').any(|c| c == "cpuset") {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                fs::write(sub.join(f), read_file(&dir.join(f))).expect("cpuset");
            }
        }
        subs.push(sub);
    }
    let exec_cg = |args: &[&str]| -> CmdOut {
        let mut full = vec!["exec"];
        full.extend_from_slice(args);
        full.extend_from_slice(&[&id, "cat", "/proc/self/cgroup"]);
        rt.cmd(&full)
    };
    let moved = |out: &CmdOut, which: &dyn Fn(&str) -> bool| {
        let got = parse_cgroup_file(&out.stdout);
        let want: Vec<(String, String)> = init
            .iter()
            .map(|(c, p)| {
                let p = if which(c) {
                    format!("{p}/sub")
                } else {
                    p.clone()
                };
                (c.clone(), p)
            })
            .collect();
        assert_eq!(got, want, "{}", out.describe());
    };
    let has =
        |names: &'static [&'static str]| move |c: &str| c.split(',').any(|x| names.contains(&x));

    moved(&exec_cg(&["--cgroup", "sub"]).ok(), &|_| true);
    moved(&exec_cg(&["--cgroup", "/sub"]).ok(), &|_| true);
    moved(&exec_cg(&["--cgroup", "/"]).ok(), &|_| false);
    moved(
        &exec_cg(&["--cgroup", "memory:sub"]).ok(),
        &has(&["memory"]),
    );
    moved(
        &exec_cg(&["--cgroup", "memory,pids:sub"]).ok(),
        &has(&["memory", "pids"]),
    );
    moved(
        &exec_cg(&["--cgroup", "memory:sub", "--cgroup", "pids:sub"]).ok(),
        &has(&["memory", "pids"]),
    );
    moved(
        &exec_cg(&["--cgroup", "name=systemd:sub"]).ok(),
        &has(&["name=systemd"]),
    );

    let out = exec_cg(&["--cgroup", "oxbogus:sub"]);
    assert_eq!(out.code(), 255, "{}", out.describe());
    out.assert_mentions(&["unknown controller oxbogus"]);
    let out = exec_cg(&["--cgroup", "../.."]);
    assert_eq!(out.code(), 255, "{}", out.describe());
    out.assert_mentions(&["not a sub cgroup path"]);
    let out = exec_cg(&["--cgroup", "memory:sub/../../.."]);
    assert_eq!(out.code(), 255, "{}", out.describe());
    out.assert_mentions(&["not a sub cgroup path"]);
    let out = exec_cg(&["--cgroup", "a:b:c"]);
    assert_eq!(out.code(), 255, "{}", out.describe());
    out.assert_mentions(&["invalid --cgroup argument"]);
    let out = exec_cg(&["--cgroup", "sub", "--cgroup", "memory:sub"]);
    assert_eq!(out.code(), 255, "{}", out.describe());
    out.assert_mentions(&["invalid --cgroup argument"]);
    let out = exec_cg(&["--cgroup", "no-such-sub"]);
    assert_eq!(out.code(), 255, "{}", out.describe());
    out.assert_mentions(&["no-such-sub"]);

    for s in &subs {
        let _ = fs::remove_dir(s);
    }
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

// ---- 7: exec -p without user ----

fn process_json_without_user(rt: &Runtime) -> PathBuf {
    let pj = rt.scratch().join("process-nouser.json");
    fs::write(
        &pj,
        json!({"terminal": false, "args": ["sh", "-c", "echo ids=$(id -u):$(id -g)"],
               "env": ["PATH=/bin"], "cwd": "/"})
        .to_string(),
    )
    .expect("write process.json");
    pj
}

/// runc runs a process.json without `user` as uid 0, gid 0.
#[test]
fn exec_process_without_user_runs_as_root() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = rt.id("exnouser");
    running(&rt, &mut b, &id);
    let pj = process_json_without_user(&rt);
    let out = rt
        .cmd(&["exec", "-p", pj.to_str().expect("utf8"), &id])
        .ok();
    assert!(out.stdout.contains("ids=0:0"), "{}", out.describe());
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// The runtime-spec marks `process.user` REQUIRED, so accepting its absence
/// deserves a warning that says so. runc 1.1.5 is silent here (this test
/// fails under runc for that reason only).
#[test]
fn exec_process_without_user_warns() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = rt.id("exnouserw");
    running(&rt, &mut b, &id);
    let pj = process_json_without_user(&rt);
    let out = rt
        .cmd(&["exec", "-p", pj.to_str().expect("utf8"), &id])
        .ok();
    let warn = out
        .stderr
        .lines()
        .find(|l| l.contains("warn") && l.contains("user"))
        .unwrap_or_else(|| panic!("no warning about process.user: {}", out.describe()));
    assert!(
        warn.contains("required") && warn.contains("uid 0"),
        "the warning says user is required and what is used: {warn}"
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

// ---- 13: spec ----

fn spec_json(rt: &Runtime, rootless: bool) -> Value {
    let dir = TempDir::new("oxit-spec");
    let d = dir.path().to_str().expect("utf8");
    let out = if rootless {
        rt.cmd(&["spec", "--rootless", "-b", d])
    } else {
        rt.cmd(&["spec", "-b", d])
    };
    out.ok();
    serde_json::from_str(&fs::read_to_string(dir.join("config.json")).expect("config.json"))
        .expect("config.json is JSON")
}

fn ns_types(cfg: &Value) -> Vec<String> {
    cfg["linux"]["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .map(|n| n["type"].as_str().expect("type").to_string())
        .collect()
}

/// `spec` writes the namespaces `runc spec` does (no cgroup namespace, so a
/// tool adding its own does not get "duplicate namespace"), runc's device
/// rule, runc's capability order, and no `"options": null`.
#[test]
fn spec_matches_runc_spec() {
    let rt = Runtime::new();
    let cfg = spec_json(&rt, false);
    assert_eq!(
        ns_types(&cfg),
        ["pid", "network", "ipc", "uts", "mount"],
        "{cfg:#}"
    );
    assert_eq!(
        cfg["linux"]["resources"]["devices"],
        json!([{"allow": false, "access": "rwm"}]),
        "{cfg:#}"
    );
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(cfg["process"]["capabilities"][set], caps, "{set}: {cfg:#}");
    }

    let rl = spec_json(&rt, true);
    assert_eq!(
        ns_types(&rl),
        ["pid", "ipc", "uts", "mount", "user"],
        "{rl:#}"
    );
    for m in rl["mounts"].as_array().expect("mounts") {
        assert!(
            m.get("options").is_none_or(Value::is_array),
            "mount options must be a list or absent: {m}"
        );
    }

    // A tool adds its own cgroup namespace to the generated spec.
    let mut b = Bundle::new();
    b.config = cfg;
    b.config["process"]["terminal"] = json!(false);
    b.add_namespace(json!({"type": "cgroup"}));
    b.set_script("echo spec-cgroupns-ok");
    let id = rt.id("speccg");
    let out = rt.run_with(&b, &id, &[]).ok();
    assert!(
        out.stdout.contains("spec-cgroupns-ok"),
        "{}",
        out.describe()
    );
    rt.assert_no_leftovers(&b, &id);
}

// ---- 14: device rules in update ----

/// `update` never changes device rules (runc 1.1.5 ignores
/// `linux.resources.devices` in `update -r` without looking at them), so an
/// access of "rwa" or "" there is no error; the rest is applied.
#[test]
fn update_ignores_device_rules() {
    require!(
        v1_host(),
        "not a cgroup v1 host (no /sys/fs/cgroup/memory/memory.limit_in_bytes)"
    );
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = rt.id("upddev");
    running(&rt, &mut b, &id);
    let cg = |ctrl: &str, file: &str| {
        read_file(Path::new(&format!(
            "/sys/fs/cgroup/{ctrl}/{}/{file}",
            b.cgroups_path(&id).trim_start_matches('/')
        )))
    };
    for (access, limit) in [("rwa", 77), ("", 78), ("rwm", 79)] {
        let r = rt.scratch().join("resources.json");
        fs::write(
            &r,
            json!({"devices": [{"allow": true, "type": "c", "major": 42, "minor": 42, "access": access}],
                   "pids": {"limit": limit}})
            .to_string(),
        )
        .expect("write resources");
        rt.cmd(&["update", "-r", r.to_str().expect("utf8"), &id])
            .ok();
        assert_eq!(cg("pids", "pids.max").trim(), limit.to_string());
        let list = cg("devices", "devices.list");
        assert!(!list.contains("42:42"), "device rules changed:\n{list}");
    }
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// At create the runtime-spec's rule holds: access is "a composition of r
/// (read), w (write), and m (mknod)". runc 1.1.5 departs from it (it drops
/// the other letters: "rwa" becomes "rw"), so this test fails under runc.
#[test]
fn create_refuses_device_access_outside_rwm() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_args(&["true"]);
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 42, "minor": 42, "access": "rwa"}
    ]);
    let id = rt.id("devrwa");
    rt.create(&b, &id)
        .fails()
        .assert_mentions(&["devices[1].access"]);
    rt.assert_no_leftovers(&b, &id);
}

// ---- 15: --debug ----

fn debug_bundle() -> Bundle {
    let mut b = Bundle::new();
    b.set_script("echo hello-debug");
    b
}

/// `--debug` logs the runtime's steps (spec loaded, namespaces, cgroups,
/// mounts, the process's exec) to stderr, as text. runc 1.1.5 logs its
/// nsexec stages instead, so this test fails under runc.
#[test]
fn debug_logs_the_steps() {
    let mut rt = Runtime::new();
    let b = debug_bundle();
    let id = rt.id("dbg");
    let quiet = rt.run_with(&b, &id, &[]).ok();
    assert!(
        !quiet.stderr.contains("level=debug"),
        "no debug lines without --debug: {}",
        quiet.describe()
    );
    rt.global_args = vec!["--debug".into()];
    let id = rt.id("dbg");
    let out = rt.run_with(&b, &id, &[]).ok();
    assert!(out.stdout.contains("hello-debug"), "{}", out.describe());
    let debug: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("level=debug"))
        .collect();
    for l in &debug {
        assert!(
            l.starts_with("time=\"") && l.contains(" msg=\""),
            "text log line shape: {l}"
        );
    }
    let all = debug.join("\n");
    for word in ["config.json", "namespace", "cgroup", "mount", "exec"] {
        assert!(
            all.contains(word),
            "no debug line mentions {word:?}:\n{}",
            out.describe()
        );
    }
    rt.assert_no_leftovers(&b, &id);
}

/// `--debug --log FILE --log-format json`: runc's JSON lines
/// (`{"level":"debug","msg":...,"time":...}`) in the file, none on stderr
/// (which is the container's).
#[test]
fn debug_log_file_json() {
    let mut rt = Runtime::new();
    let b = debug_bundle();
    let log = rt.scratch().join("debug.log");
    rt.global_args = vec![
        "--debug".into(),
        "--log".into(),
        log.to_str().expect("utf8").into(),
        "--log-format".into(),
        "json".into(),
    ];
    let id = rt.id("dbgjson");
    let out = rt.run_with(&b, &id, &[]).ok();
    assert_eq!(out.stdout.trim(), "hello-debug", "{}", out.describe());
    assert!(
        !out.stderr.contains("debug"),
        "debug lines go to the log file: {}",
        out.describe()
    );
    let text = fs::read_to_string(&log).expect("log file");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let debug: Vec<&Value> = lines.iter().filter(|v| v["level"] == "debug").collect();
    assert!(!debug.is_empty(), "no debug line in {text}");
    for v in &debug {
        assert!(v["msg"].is_string() && v["time"].is_string(), "{v}");
    }
    rt.assert_no_leftovers(&b, &id);
}

// ---- 16: -v / --version ----

/// `-v` and `--version` print runc's shape: `<name> version X`, then
/// `commit: ...` and `spec: <runtime-spec version>` lines (tools parse the
/// first line and the `spec:` line).
#[test]
fn version_has_runcs_shape() {
    let rt = Runtime::new();
    let run = |flag: &str| {
        let out = run_with_timeout(Command::new(runtime_bin()).arg(flag), WAIT, None);
        assert_eq!(out.code(), 0, "{}", out.describe());
        out.stdout
    };
    let short = run("-v");
    let long = run("--version");
    assert_eq!(short, long, "-v and --version print the same");
    let lines: Vec<&str> = long.lines().collect();
    let prefix = format!("{} version ", bin_name());
    assert!(
        lines
            .first()
            .and_then(|l| l.strip_prefix(&prefix))
            .is_some_and(|v| !v.trim().is_empty()),
        "first line is `{prefix}X`: {long}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.strip_prefix("commit: ").is_some_and(|c| !c.is_empty())),
        "{long}"
    );
    let spec = lines
        .iter()
        .find_map(|l| l.strip_prefix("spec: "))
        .unwrap_or_else(|| panic!("no spec: line in {long}"));
    let cfg = spec_json(&rt, false);
    assert_eq!(
        Some(spec),
        cfg["ociVersion"].as_str(),
        "spec: is the version `spec` writes"
    );
}

// ---- 17: runc's words ----

/// A seccomp listenerPath nobody listens on: runc's words ("failed to
/// connect with seccomp agent"), and the path.
#[test]
fn unreachable_seccomp_agent_in_runcs_words() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let path = rt.scratch().join("nobody-listens.sock");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "listenerPath": path,
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    });
    b.set_args(&["true"]);
    let id = rt.id("scagent");
    let out = rt.run_with(&b, &id, &[]).fails();
    out.assert_mentions(&["failed to connect with seccomp agent"]);
    out.assert_mentions(&["nobody-listens.sock"]);
    rt.assert_no_leftovers(&b, &id);
}

/// Impossible resources, in runc 1.1.5's words (what it prints for each
/// on this cgroup v1 host).
#[test]
fn impossible_resources_in_runcs_words() {
    require!(
        v1_host(),
        "not a cgroup v1 host (no /sys/fs/cgroup/memory/memory.limit_in_bytes)"
    );
    let rt = Runtime::new();
    let cases = [
        (
            json!({"memory": {"limit": 4096}}),
            &["unable to set memory limit to 4096"][..],
        ),
        (
            json!({"unified": {"memory.high": "1000000"}}),
            &["invalid configuration: cannot use unified on cgroup v1"],
        ),
        (
            json!({"memory": {"swappiness": 200}}),
            &["invalid memory swappiness value: 200"],
        ),
        (
            json!({"cpu": {"quota": 500, "period": 100000}}),
            &["failed to write", "cfs_quota_us"],
        ),
        (
            json!({"cpu": {"shares": 1}}),
            &["the minimum allowed cpu-shares is 2"],
        ),
    ];
    for (res, words) in cases {
        let mut b = Bundle::new();
        b.set_args(&["true"]);
        for (k, v) in res.as_object().expect("object") {
            b.config["linux"]["resources"][k] = v.clone();
        }
        let id = rt.id("badres");
        let out = rt.create(&b, &id).fails();
        for w in words {
            out.assert_mentions(&[w]);
        }
        rt.assert_no_leftovers(&b, &id);
    }

    let mut b = Bundle::new();
    let id = rt.id("updlow");
    running(&rt, &mut b, &id);
    rt.cmd(&["update", "--memory", "4096", &id])
        .fails()
        .assert_mentions(&["unable to set memory limit to 4096"]);
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}
