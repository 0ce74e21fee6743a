//! Bad input and invalid operations: each fails with a non-zero exit, an
//! error message naming the problem, and leaves nothing behind. Also the
//! `--log F --log-format json` error log.

use integration::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

fn sleeper(b: &mut Bundle) {
    b.set_script("echo ready; sleep 1000");
}

/// Create must fail, mention one of `words`, and leave nothing behind.
fn create_fails(rt: &Runtime, b: &Bundle, id: &str, words: &[&str]) -> CmdOut {
    let out = rt.create(b, id).fails();
    out.assert_mentions(words);
    assert!(
        rt.state(id).is_err(),
        "failed create left a container: {:?}",
        rt.state(id)
    );
    rt.assert_no_leftovers(b, id);
    let l = rt.cmd(&["list", "-q"]).ok();
    assert!(!l.stdout.contains(id), "{}", l.stdout);
    out
}

#[test]
fn malformed_json_config() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.raw_config = Some("{\"ociVersion\": \"1.0.2\", \"process\": {".to_string());
    let id = rt.id("badjson");
    // runc says "invalid character ..." without naming the file.
    create_fails(
        &rt,
        &b,
        &id,
        &["config", "json", "invalid character", "EOF"],
    );
}

#[test]
fn config_with_wrong_type() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["args"] = json!("not-a-list");
    let id = rt.id("badtype");
    create_fails(&rt, &b, &id, &["args", "cannot unmarshal", "invalid type"]);
}

#[test]
fn missing_config() {
    let rt = Runtime::new();
    let b = Bundle::new();
    let id = rt.id("noconfig");
    let mut c = rt.command();
    c.arg("create").arg("--bundle").arg(b.path()).arg(&id);
    let out = run_with_timeout(&mut c, TIMEOUT, None).fails();
    out.assert_mentions(&["config.json"]);
    assert!(rt.state(&id).is_err());
    rt.assert_no_leftovers(&b, &id);
}

/// Only runtime-spec 1.x is read: another major version fails create
/// naming `ociVersion` and the version, and leaves nothing behind.
#[test]
fn unsupported_oci_version_is_refused() {
    let rt = Runtime::new();
    for version in ["2.0.0", "0.6.0"] {
        let mut b = Bundle::new();
        sleeper(&mut b);
        b.config["ociVersion"] = json!(version);
        let id = rt.id("ociver");
        create_fails(&rt, &b, &id, &["ociVersion"]).assert_mentions(&[version]);
    }
}

#[test]
fn missing_rootfs() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["root"]["path"] = json!("oxit-no-such-rootfs");
    let id = rt.id("norootfs");
    create_fails(&rt, &b, &id, &["oxit-no-such-rootfs"]);
}

#[test]
fn unknown_namespace_type() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.add_namespace(json!({"type": "oxbogus"}));
    let id = rt.id("badns");
    create_fails(&rt, &b, &id, &["oxbogus"]);
}

#[test]
fn namespace_path_that_does_not_exist() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.remove_namespace("network");
    b.add_namespace(json!({"type": "network", "path": "/proc/oxit-no-such-pid/ns/net"}));
    let id = rt.id("badnspath");
    create_fails(&rt, &b, &id, &["/proc/oxit-no-such-pid/ns/net"]);
}

#[test]
fn user_program_not_found() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_args(&["/oxit-no-such-binary"]);
    let id = rt.id("noexe");
    // runc reports this at create time; a runtime may also defer it to
    // start. Either way it must fail and name the program.
    let c = rt.create(&b, &id);
    if c.success() {
        let s = rt.start(&id).fails();
        s.assert_mentions(&["oxit-no-such-binary"]);
        rt.delete(&id, true);
    } else {
        c.assert_mentions(&["oxit-no-such-binary"]);
    }
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn duplicate_id() {
    let rt = Runtime::new();
    let mut b1 = Bundle::new();
    sleeper(&mut b1);
    let id = rt.id("dup");
    rt.create(&b1, &id).ok();
    let before = rt.state_ok(&id);

    let mut b2 = Bundle::new();
    sleeper(&mut b2);
    b2.config["linux"]["cgroupsPath"] = json!(format!("/oxit/{id}-second"));
    let out = rt.create(&b2, &id).fails();
    out.assert_mentions(&["exist", &id]);
    let after = rt.state_ok(&id);
    assert_eq!(after["pid"], before["pid"], "first container disturbed");
    assert_eq!(after["status"], "created");
    assert_eq!(
        after["bundle"],
        b1.path().to_str().unwrap(),
        "state now points at the second bundle"
    );
    assert!(pid_alive(after["pid"].as_i64().unwrap() as i32));
    rt.assert_no_leftovers(&b2, &format!("{id}-second"));

    // And once it runs.
    rt.start(&id).ok();
    rt.wait_output(&id, "ready", TIMEOUT);
    rt.create(&b2, &id).fails().assert_mentions(&["exist", &id]);
    let after = rt.state_ok(&id);
    assert_eq!(after["status"], "running");
    assert_eq!(after["pid"], before["pid"]);
    rt.assert_no_leftovers(&b2, &format!("{id}-second"));
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b1, &id);
}

#[test]
fn id_that_is_a_path() {
    let rt = Runtime::new();
    let b = Bundle::new();
    let escape = unique("oxit-escape");
    for bad in [
        format!("../{escape}"),
        "a/b".to_string(),
        "..".to_string(),
        String::new(),
        format!("/tmp/{escape}"),
    ] {
        let out = rt.create(&b, &bad).fails();
        out.assert_mentions(&[
            "container id",
            "container-id",
            "invalid id",
            "id format",
            "bad id",
        ]);
        assert!(
            !Path::new("/tmp").join(&escape).exists(),
            "id {bad:?} escaped the root dir"
        );
        assert!(
            !rt.root.join("a").exists(),
            "id {bad:?} created a subdirectory"
        );
    }
    // Nothing at all ended up in --root.
    let entries: Vec<_> = fs::read_dir(&rt.root)
        .map(|d| d.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    assert!(entries.is_empty(), "{entries:?}");
    rt.assert_no_leftovers(&b, "a/b");
}

#[test]
fn delete_running_without_force() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b);
    let id = rt.id("delrun");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    let pid = rt.state_ok(&id)["pid"].as_i64().unwrap() as i32;
    rt.delete(&id, false)
        .fails()
        .assert_mentions(&["running", "not stopped"]);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    assert!(pid_alive(pid));

    rt.delete(&id, true).ok();
    assert!(rt.state(&id).is_err());
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn delete_force_created_container() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b);
    let id = rt.id("delcreated");
    rt.create(&b, &id).ok();
    rt.delete(&id, true).ok();
    assert!(rt.state(&id).is_err());
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn kill_stopped_container() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("true");
    let id = rt.id("killstopped");
    rt.create_start(&b, &id);
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    rt.kill(&id, Some("KILL"))
        .fails()
        .assert_mentions(&["not running", "stopped"]);
    assert_eq!(rt.status(&id).as_deref(), Some("stopped"));
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn kill_bad_signal() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b);
    let id = rt.id("badsig");
    rt.create_start(&b, &id);
    rt.kill(&id, Some("OXNOSIG"))
        .fails()
        .assert_mentions(&["OXNOSIG", "signal"]);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn start_running_container() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    sleeper(&mut b);
    let id = rt.id("start2");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    rt.start(&id).fails().assert_mentions(&["running"]);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    assert_eq!(
        rt.output(&id).matches("ready").count(),
        1,
        "process started twice"
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn start_stopped_container() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("echo ran");
    let id = rt.id("startstopped");
    rt.create_start(&b, &id);
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    rt.start(&id)
        .fails()
        .assert_mentions(&["stopped", "not created", "cannot start"]);
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn unknown_id() {
    let rt = Runtime::new();
    let id = rt.id("ghost");
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
    ] {
        let out = rt.cmd(&args).fails();
        out.assert_mentions(&["does not exist", "not exist", "not found", "no such", &id]);
    }
}

#[test]
fn unknown_subcommand_and_missing_args() {
    let rt = Runtime::new();
    rt.cmd(&["oxit-no-such-command"]).fails();
    rt.cmd(&["start"]).fails();
    rt.cmd(&["create"]).fails();
}

// ---------------------------------------------------------------------------
// --log / --log-format json
// ---------------------------------------------------------------------------

fn json_error_lines(log: &Path) -> Vec<Value> {
    let text = read_file(log);
    assert!(
        !text.trim().is_empty(),
        "log file {} is empty",
        log.display()
    );
    let mut errs = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(v["level"].is_string(), "no level: {line}");
        assert!(v["msg"].is_string(), "no msg: {line}");
        assert!(v["time"].is_string(), "no time: {line}");
        if v["level"] == "error" {
            errs.push(v);
        }
    }
    errs
}

#[test]
fn json_log_for_failing_state() {
    let mut rt = Runtime::new();
    let log = rt.scratch().join("runtime.log");
    rt.global_args = vec![
        "--log".into(),
        log.to_str().unwrap().into(),
        "--log-format".into(),
        "json".into(),
    ];
    let id = rt.id("logghost");
    rt.cmd(&["state", &id]).fails();
    let errs = json_error_lines(&log);
    assert!(
        !errs.is_empty(),
        "no error-level line in {}",
        read_file(&log)
    );
    let msg = errs
        .iter()
        .map(|e| e["msg"].as_str().unwrap().to_lowercase())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        msg.contains("not exist") || msg.contains("not found") || msg.contains(&id),
        "{msg}"
    );
}

#[test]
fn json_log_for_failing_create() {
    let mut rt = Runtime::new();
    let log = rt.scratch().join("runtime.log");
    rt.global_args = vec![
        "--log".into(),
        log.to_str().unwrap().into(),
        "--log-format".into(),
        "json".into(),
    ];
    let mut b = Bundle::new();
    b.add_namespace(json!({"type": "oxbogus"}));
    let id = rt.id("logbad");
    rt.create(&b, &id).fails();
    let errs = json_error_lines(&log);
    assert!(
        errs.iter()
            .any(|e| e["msg"].as_str().unwrap().contains("oxbogus")),
        "no error line naming the bad namespace: {}",
        read_file(&log)
    );
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn json_log_appends() {
    let mut rt = Runtime::new();
    let log = rt.scratch().join("runtime.log");
    fs::write(
        &log,
        "{\"level\":\"info\",\"msg\":\"pre-existing\",\"time\":\"2000-01-01T00:00:00Z\"}\n",
    )
    .unwrap();
    rt.global_args = vec![
        "--log".into(),
        log.to_str().unwrap().into(),
        "--log-format".into(),
        "json".into(),
    ];
    rt.cmd(&["state", "oxit-ghost-1"]).fails();
    rt.cmd(&["state", "oxit-ghost-2"]).fails();
    let text = read_file(&log);
    assert!(text.contains("pre-existing"), "log file truncated: {text}");
    assert!(json_error_lines(&log).len() >= 2, "{text}");
}

/// `--systemd-cgroup`: a cgroupsPath not in `slice:prefix:name` form, a
/// slice with a path separator or a unit name that would leave its slice is
/// refused naming linux.cgroupsPath; a well-formed one on a host without
/// systemd as its init is refused with that reason. Nothing is left
/// behind, no cgroup directory is made. (The driver itself is tested in the
/// systemd guest, scripts/test-systemd.sh.)
#[test]
fn systemd_driver_bad_input() {
    let mut rt = Runtime::new();
    rt.global_args = vec!["--systemd-cgroup".into()];
    let mut b = Bundle::new();
    sleeper(&mut b);
    for (path, words) in [
        ("a:b", &["linux.cgroupsPath", "slice:prefix:name"][..]),
        ("a.slice:b:c:d", &["linux.cgroupsPath", "slice:prefix:name"]),
        ("/oxit/plain", &["linux.cgroupsPath", "slice:prefix:name"]),
        (
            "sys/tem.slice:p:n",
            &["linux.cgroupsPath", "invalid slice name"],
        ),
        (
            "bad--name.slice:p:n",
            &["linux.cgroupsPath", "invalid slice name"],
        ),
        (
            "x.slice:p:../../n",
            &["linux.cgroupsPath", "not a valid systemd unit name"],
        ),
    ] {
        b.config["linux"]["cgroupsPath"] = json!(path);
        let id = rt.id("sdbad");
        create_fails(&rt, &b, &id, words);
        assert!(
            !Path::new("/sys/fs/cgroup/unified/x.slice").exists()
                && !Path::new("/sys/fs/cgroup/unified/sys").exists(),
            "{path}: a cgroup was made"
        );
    }
    if !Path::new("/run/systemd/system").is_dir() {
        b.config["linux"]["cgroupsPath"] = json!("system.slice:oxit:n");
        let id = rt.id("sdnone");
        create_fails(
            &rt,
            &b,
            &id,
            &["--systemd-cgroup", "systemd is not this host's init"],
        );
    }
}
