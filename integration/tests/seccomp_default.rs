//! seccomp-profiles/default.json: ordinary programs run, the dangerous
//! classes are refused unless the capability that governs them is held.

use integration::*;
use serde_json::json;

#[path = "seccomp_support/mod.rs"]
mod seccomp_support;
use seccomp_support::*;

/// The harness's (runc's) default capabilities.
const DEFAULT_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

fn bundle_with(rt: &Runtime, caps: &[&str]) -> Bundle {
    let mut b = Bundle::new();
    install_probe(rt, &b);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = json!(caps);
    }
    b.config["process"]["capabilities"]
        .as_object_mut()
        .expect("capabilities")
        .remove("ambient");
    b.config["linux"]["seccomp"] = default_profile(caps);
    b
}

#[test]
fn a_shell_runs_normally_under_the_default_profile() {
    let rt = Runtime::new();
    let mut b = bundle_with(&rt, DEFAULT_CAPS);
    b.config["root"]["readonly"] = json!(false);
    b.set_script(
        "echo hello; grep ^Seccomp: /proc/self/status; ls / >/dev/null && echo ls=ok; \
         ps >/dev/null && echo ps=ok; cat /etc/passwd >/dev/null && echo cat=ok; \
         mkdir -p /tmp/d/e && echo data >/tmp/d/e/f && cat /tmp/d/e/f && rm -r /tmp/d && echo files=ok; \
         (sleep 0.01 &); wait; echo $(echo sub)shell=ok; date >/dev/null && echo date=ok; \
         /bin/probe thread getppid",
    );
    let id = rt.id("scdefsh");
    let out = rt.run_ok(&b, &id);
    for want in [
        "hello",
        "Seccomp:\t2",
        "ls=ok",
        "ps=ok",
        "cat=ok",
        "data",
        "files=ok",
        "subshell=ok",
        "date=ok",
        "main alive",
    ] {
        assert!(out.contains(want), "missing {want:?}:\n{out}");
    }
    assert!(outcome(&out, "getppid").starts_with("ok"), "threads: {out}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn namespaces_and_mounts_are_refused_without_cap_sys_admin() {
    let rt = Runtime::new();
    let mut b = bundle_with(&rt, DEFAULT_CAPS);
    b.set_script(
        "unshare -U true 2>&1; echo userns=$?; unshare -m true 2>&1; echo mountns=$?; \
         /bin/probe sys clone3; /bin/probe sys mount 0 0 0 0 0; /bin/probe sys setns 0 0; \
         /bin/probe sys unshare 0x200",
    );
    let id = rt.id("scdefns");
    let out = rt.run_ok(&b, &id);
    assert!(
        out.contains("userns=1") && out.contains("mountns=1"),
        "{out}"
    );
    assert_eq!(
        out.matches("Operation not permitted").count(),
        2,
        "unshare -U and -m get EPERM:\n{out}"
    );
    assert_eq!(
        outcome(&out, "clone3"),
        "err:38",
        "clone3 gets ENOSYS so libc falls back to clone:\n{out}"
    );
    assert_eq!(outcome(&out, "mount"), "err:1", "{out}");
    assert_eq!(outcome(&out, "setns"), "err:1", "{out}");
    // unshare without namespace flags (CLONE_FS) is fine.
    assert_eq!(outcome(&out, "unshare"), "ok:0", "{out}");
}

#[test]
fn dangerous_classes_are_refused() {
    let rt = Runtime::new();
    let mut b = bundle_with(&rt, DEFAULT_CAPS);
    let calls = [
        "sys kexec_load",
        "sys kexec_file_load",
        "sys init_module",
        "sys finit_module",
        "sys delete_module",
        "sys open_by_handle_at",
        "sys bpf",
        "sys perf_event_open",
        "sys userfaultfd",
        "sys ptrace",
        "sys kcmp",
        "sys syslog",
        "sys settimeofday",
        "sys io_uring_setup",
        "sys personality 0x400000",
        "keys",
    ];
    let script: Vec<String> = calls.iter().map(|c| format!("/bin/probe {c}")).collect();
    b.set_script(&script.join("; "));
    let id = rt.id("scdefbad");
    let out = rt.run_ok(&b, &id);
    for name in [
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "open_by_handle_at",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "ptrace",
        "kcmp",
        "syslog",
        "settimeofday",
        "io_uring_setup",
        "personality",
        "add_key",
        "keyctl",
        "request_key",
    ] {
        assert_eq!(
            outcome(&out, name),
            "err:1",
            "{name} must get EPERM:\n{out}"
        );
    }
}

/// With CAP_SYS_ADMIN the namespace, mount and keyring calls are the
/// kernel's to judge again.
#[test]
fn cap_sys_admin_unlocks_namespaces() {
    let rt = Runtime::new();
    let caps = ["CAP_SYS_ADMIN", "CAP_AUDIT_WRITE", "CAP_KILL"];
    let mut b = bundle_with(&rt, &caps);
    b.set_script(
        "unshare -m true && echo mountns=ok; unshare -U true && echo userns=ok; \
         /bin/probe sys clone3; /bin/probe keys",
    );
    let id = rt.id("scdefadm");
    let out = rt.run_ok(&b, &id);
    assert!(
        out.contains("mountns=ok") && out.contains("userns=ok"),
        "{out}"
    );
    // clone3 with size 0: the kernel's EINVAL, not the filter's ENOSYS.
    assert_eq!(outcome(&out, "clone3"), "err:22", "{out}");
    assert!(outcome(&out, "keyctl") != "err:1", "{out}");
}

/// `oxrun spec --seccomp default` writes the same profile the template
/// resolves to for the spec's bounding set (oxrun only: runc has no such
/// flag).
#[test]
fn spec_writes_the_default_profile() {
    require!(
        !is_runc(),
        "the runtime under test is runc, whose spec has no --seccomp"
    );
    let rt = Runtime::new();
    let dir = rt.scratch().join("specbundle");
    std::fs::create_dir_all(&dir).expect("mkdir");
    rt.cmd(&[
        "spec",
        "--bundle",
        dir.to_str().expect("utf8"),
        "--seccomp",
        "default",
    ])
    .ok();
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("config.json"))
            .expect("json");
    let caps: Vec<&str> = spec["process"]["capabilities"]["bounding"]
        .as_array()
        .expect("bounding")
        .iter()
        .map(|c| c.as_str().expect("cap"))
        .collect();
    assert_eq!(spec["linux"]["seccomp"], default_profile(&caps));
    let out = rt
        .cmd(&[
            "spec",
            "--bundle",
            "/nonexistent-oxit",
            "--seccomp",
            "nosuchfile.json",
        ])
        .fails();
    out.assert_mentions(&["nosuchfile.json"]);
}
