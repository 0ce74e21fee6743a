//! OCI hooks: all six kinds run at the right time, in the right mount
//! namespace, with the state JSON on stdin; failing hooks are handled.

use integration::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A hook running `sh -c <script>` through `path`.
fn sh_hook(path: &str, script: &str) -> Value {
    json!({"path": path, "args": ["sh", "-c", script], "env": [PATH_ENV]})
}

/// Script for a hook that records its stdin, mount namespace and order in
/// `dir` (an absolute path valid where the hook runs).
fn recorder(name: &str, dir: &str) -> String {
    format!("cat > {dir}/{name}.json; readlink /proc/self/ns/mnt > {dir}/{name}.mnt; echo {name} >> {dir}/order")
}

fn order(logs: &Path) -> Vec<String> {
    read_file(&logs.join("order"))
        .lines()
        .map(String::from)
        .collect()
}

fn hook_state(logs: &Path, name: &str) -> Value {
    let text = read_file(&logs.join(format!("{name}.json")));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{name} hook stdin is not state JSON ({e}): {text:?}"))
}

fn hook_mnt(logs: &Path, name: &str) -> String {
    read_file(&logs.join(format!("{name}.mnt")))
        .trim()
        .to_string()
}

#[test]
fn all_hooks_run_in_order_with_state() {
    let rt = Runtime::new();
    let logs = TempDir::new("oxit-hooklog");
    let l = logs.path().to_str().unwrap().to_string();
    let mut b = Bundle::new();
    // A shell that exists only inside the rootfs: startContainer's path
    // must resolve in the container's mount namespace.
    fs::create_dir_all(b.rootfs().join("oxit-hookbin")).unwrap();
    fs::copy("/bin/busybox", b.rootfs().join("oxit-hookbin/busybox")).unwrap();
    assert!(!Path::new("/oxit-hookbin/busybox").exists());
    b.add_mount(
        json!({"destination": "/hooklog", "type": "bind", "source": l, "options": ["rbind", "rw"]}),
    );
    // createContainer runs in the container namespace before pivot_root, so
    // host paths are normally still visible; fall back to the bind mount.
    let cc_dir = format!("$(if [ -d {l} ]; then echo {l}; else echo /hooklog; fi)");
    let mut create_runtime = sh_hook(
        "/bin/sh",
        &format!(
            "{}; echo \"$OXIT_HOOK_VAR $0 $1\" > {l}/createRuntime.env",
            recorder("createRuntime", &l)
        ),
    );
    create_runtime["args"] = json!(["sh", "-c", create_runtime["args"][2], "argzero", "argone"]);
    create_runtime["env"] = json!([PATH_ENV, "OXIT_HOOK_VAR=hookval"]);
    b.config["hooks"] = json!({
        "prestart": [sh_hook("/bin/sh", &recorder("prestart", &l))],
        "createRuntime": [create_runtime],
        "createContainer": [sh_hook("/bin/sh", &format!("D={cc_dir}; {}", recorder("createContainer", "$D")))],
        "startContainer": [sh_hook("/oxit-hookbin/busybox", &recorder("startContainer", "/hooklog"))],
        "poststop": [sh_hook("/bin/sh", &recorder("poststop", &l))]
    });
    b.set_script("echo ready; sleep 1000");
    let id = rt.id("hooks");

    rt.create(&b, &id).ok();
    let st = rt.state_ok(&id);
    let pid = st["pid"].as_i64().unwrap();
    let o = order(logs.path());
    assert_eq!(
        o.len(),
        3,
        "after create exactly prestart/createRuntime/createContainer ran: {o:?}"
    );
    let pos = |n: &str| {
        o.iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} did not run: {o:?}"))
    };
    assert!(pos("createRuntime") < pos("createContainer"), "{o:?}");
    assert!(pos("prestart") < pos("createContainer"), "{o:?}");
    assert_eq!(
        read_file(&logs.join("createRuntime.env")).trim(),
        "hookval argzero argone",
        "hook env/args not passed"
    );

    let container_mnt = fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert_ne!(container_mnt, host_ns("mnt"));
    assert_eq!(
        hook_mnt(logs.path(), "prestart"),
        host_ns("mnt"),
        "prestart runs in the runtime namespace"
    );
    assert_eq!(
        hook_mnt(logs.path(), "createRuntime"),
        host_ns("mnt"),
        "createRuntime runs in the runtime namespace"
    );
    assert_eq!(
        hook_mnt(logs.path(), "createContainer"),
        container_mnt,
        "createContainer runs in the container namespace"
    );

    rt.start(&id).ok();
    rt.wait_output(&id, "ready", TIMEOUT);
    let o = order(logs.path());
    assert_eq!(&o[3..], &["startContainer".to_string()], "{o:?}");
    assert_eq!(
        hook_mnt(logs.path(), "startContainer"),
        container_mnt,
        "startContainer runs in the container namespace"
    );

    // prestart is the legacy "after create, before the program" hook: the
    // runtime-tools suite and crun give it "created" (runc 1.1 "creating").
    for (name, status) in [
        ("prestart", "created"),
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("startContainer", "created"),
    ] {
        let s = hook_state(logs.path(), name);
        assert_eq!(s["id"], id.as_str(), "{name}: {s}");
        assert_eq!(s["status"], status, "{name}: {s}");
        assert_eq!(s["bundle"], b.path().to_str().unwrap(), "{name}: {s}");
        assert!(s["ociVersion"].is_string(), "{name}: {s}");
        if !name.ends_with("Container") {
            // Container-namespace hooks may see the pid from inside the
            // container's pid namespace (runc passes 1); not checked.
            assert_eq!(s["pid"].as_i64(), Some(pid), "{name}: {s}");
        }
    }

    rt.kill(&id, Some("KILL")).ok();
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !logs.join("poststop.json").exists(),
        "poststop ran before delete"
    );
    rt.delete(&id, false).ok();
    let o = order(logs.path());
    assert_eq!(o.last().map(String::as_str), Some("poststop"), "{o:?}");
    assert_eq!(o.len(), 5, "{o:?}");
    let s = hook_state(logs.path(), "poststop");
    assert_eq!(s["id"], id.as_str(), "{s}");
    assert_eq!(s["status"], "stopped", "{s}");
    rt.assert_no_leftovers(&b, &id);
}

/// Poststart runs during `start`, after the user process started, in the
/// runtime namespace, with status "running".
///
/// runc 1.1.5 is NON-COMPLIANT here: it runs poststart hooks at the end of
/// `create` (fixed in runc 1.2), with status "created".
#[test]
fn poststart_runs_after_start() {
    let rt = Runtime::new();
    let logs = TempDir::new("oxit-hooklog");
    let l = logs.path().to_str().unwrap().to_string();
    let mut b = Bundle::new();
    b.config["hooks"] = json!({
        "startContainer": [sh_hook("/bin/sh", "echo startContainer >> /hooklog/order")],
        "poststart": [sh_hook("/bin/sh", &recorder("poststart", &l))]
    });
    b.add_mount(
        json!({"destination": "/hooklog", "type": "bind", "source": l, "options": ["rbind", "rw"]}),
    );
    b.set_script("echo ready; sleep 1000");
    let id = rt.id("poststart");
    rt.create(&b, &id).ok();
    assert!(
        order(logs.path()).is_empty(),
        "hooks ran during create: {:?}",
        order(logs.path())
    );
    let pid = rt.state_ok(&id)["pid"].as_i64().unwrap();
    rt.start(&id).ok();
    // Must have run before start returned.
    assert_eq!(order(logs.path()), vec!["startContainer", "poststart"]);
    let s = hook_state(logs.path(), "poststart");
    assert_eq!(s["id"], id.as_str(), "{s}");
    assert_eq!(s["status"], "running", "{s}");
    assert_eq!(s["pid"].as_i64(), Some(pid), "{s}");
    assert_eq!(
        hook_mnt(logs.path(), "poststart"),
        host_ns("mnt"),
        "poststart runs in the runtime namespace"
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn poststop_runs_on_delete_force_of_running_container() {
    let rt = Runtime::new();
    let logs = TempDir::new("oxit-hooklog");
    let l = logs.path().to_str().unwrap().to_string();
    let mut b = Bundle::new();
    b.config["hooks"] = json!({"poststop": [sh_hook("/bin/sh", &recorder("poststop", &l))]});
    b.set_script("sleep 1000");
    let id = rt.id("poststopf");
    rt.create_start(&b, &id);
    rt.delete(&id, true).ok();
    assert_eq!(order(logs.path()), vec!["poststop"]);
    rt.assert_no_leftovers(&b, &id);
}

fn failing_create(kind: &str) {
    let rt = Runtime::new();
    let logs = TempDir::new("oxit-hooklog");
    let l = logs.path().to_str().unwrap().to_string();
    let mut b = Bundle::new();
    b.config["hooks"] = json!({
        kind: [sh_hook("/bin/sh", &format!("echo {kind} >> {l}/order; echo oxit-hook-says-no >&2; exit 1"))],
        "startContainer": [sh_hook("/bin/sh", &format!("echo startContainer >> {l}/order"))],
        "poststart": [sh_hook("/bin/sh", &format!("echo poststart >> {l}/order"))]
    });
    b.set_script("echo user-program-ran");
    let id = rt.id(&format!("fail{}", kind.to_lowercase()));
    let out = rt.create(&b, &id).fails();
    out.assert_mentions(&["hook", kind]);
    assert_eq!(
        order(logs.path()),
        vec![kind.to_string()],
        "later hooks must not run"
    );
    assert!(
        rt.state(&id).is_err(),
        "failed create left a container behind"
    );
    rt.assert_no_leftovers(&b, &id);
    assert!(!rt.output(&id).contains("user-program-ran"));
}

#[test]
fn failing_prestart_hook_fails_create() {
    failing_create("prestart");
}

#[test]
fn failing_create_runtime_hook_fails_create() {
    failing_create("createRuntime");
}

#[test]
fn failing_create_container_hook_fails_create() {
    failing_create("createContainer");
}

#[test]
fn hook_timeout() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    // `exec` so the process killed on timeout is the one holding the pipes.
    let mut h = sh_hook("/bin/sh", "exec sleep 30");
    h["timeout"] = json!(1);
    b.config["hooks"] = json!({"createRuntime": [h]});
    b.set_script("true");
    let id = rt.id("hooktimeout");
    let t0 = Instant::now();
    let out = rt.create(&b, &id).fails();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "hook timeout not enforced: {:?}",
        t0.elapsed()
    );
    out.assert_mentions(&["timeout", "timed out"]);
    rt.assert_no_leftovers(&b, &id);
}

/// Spec: "If any poststart hook fails, the runtime MUST log a warning, but
/// the remaining hooks and lifecycle continue as if the hook had succeeded."
///
/// runc 1.1.5 is NON-COMPLIANT here: poststart runs (and fails) inside
/// `create`, which then fails and destroys the container.
#[test]
fn failing_poststart_hook_is_only_a_warning() {
    let rt = Runtime::new();
    let logs = TempDir::new("oxit-hooklog");
    let l = logs.path().to_str().unwrap().to_string();
    let mut b = Bundle::new();
    b.config["hooks"] = json!({"poststart": [
        sh_hook("/bin/sh", &format!("echo first >> {l}/order; exit 1")),
        sh_hook("/bin/sh", &format!("echo second >> {l}/order"))
    ]});
    b.set_script("echo ready; sleep 1000");
    let id = rt.id("poststartfail");
    rt.create(&b, &id).ok();
    let out = rt.start(&id);
    assert!(
        out.success(),
        "start must succeed despite a failing poststart hook: {}",
        out.describe()
    );
    assert_eq!(order(logs.path()), vec!["first", "second"]);
    rt.wait_output(&id, "ready", TIMEOUT);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// Spec: a failing poststop hook is a warning; the remaining poststop hooks
/// still run and delete completes.
///
/// runc 1.1.5 is NON-COMPLIANT here: delete succeeds but the poststop hooks
/// after the failing one are skipped.
#[test]
fn failing_poststop_hook_is_only_a_warning() {
    let rt = Runtime::new();
    let logs = TempDir::new("oxit-hooklog");
    let l = logs.path().to_str().unwrap().to_string();
    let mut b = Bundle::new();
    b.config["hooks"] = json!({"poststop": [
        sh_hook("/bin/sh", &format!("echo first >> {l}/order; exit 1")),
        sh_hook("/bin/sh", &format!("echo second >> {l}/order"))
    ]});
    b.set_script("true");
    let id = rt.id("poststopfail");
    rt.create_start(&b, &id);
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    let out = rt.delete(&id, false);
    assert!(
        out.success(),
        "delete must succeed despite a failing poststop hook: {}",
        out.describe()
    );
    assert_eq!(order(logs.path()), vec!["first", "second"]);
    assert!(rt.state(&id).is_err());
    rt.assert_no_leftovers(&b, &id);
}
