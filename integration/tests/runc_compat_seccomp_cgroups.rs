//! Where runc's users depend on its behaviour: seccomp profiles written
//! for runc/Docker (conditions on one argument ORed, the native ABI always
//! filtered, NOTIFY on `write` refused).

use integration::*;
use serde_json::{json, Value};
use std::os::unix::net::UnixListener;

#[path = "seccomp_support/mod.rs"]
mod seccomp_support;
use seccomp_support::*;

/// The default profile (no capabilities) without its rules for `names`,
/// plus `extra` rules.
fn default_profile_with(names: &[&str], extra: Value) -> Value {
    let mut p = default_profile(&[]);
    let rules = p["syscalls"].as_array_mut().expect("syscalls");
    for e in rules.iter_mut() {
        e["names"]
            .as_array_mut()
            .expect("names")
            .retain(|n| !names.contains(&n.as_str().unwrap_or("")));
    }
    rules.retain(|e| !e["names"].as_array().is_some_and(Vec::is_empty));
    rules.extend(extra.as_array().expect("extra rules").iter().cloned());
    p
}

/// runc (libcontainer/seccomp matchCall): when one argument index appears
/// in several conditions of a rule, each condition is added as a rule of
/// its own, so they are ORed; otherwise they are ANDed. Profiles written
/// for runc may list the allowed values of one argument this way.
#[test]
fn conditions_on_one_argument_are_ored_others_anded() {
    let rt = Runtime::new();
    let p = default_profile_with(
        &["personality", "getppid"],
        json!([
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}
            ]},
            {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}
            ]}
        ]),
    );
    let mut b = Bundle::new();
    install_probe(&rt, &b);
    b.config["linux"]["seccomp"] = p;
    b.set_script(
        "/bin/probe each personality 0 0x0 0x8 0x20000; \
         /bin/probe sys getppid 1 2; /bin/probe sys getppid 1 3; /bin/probe sys getppid 0 2",
    );
    let id = rt.id("scor");
    let out = rt.run_ok(&b, &id);
    assert_eq!(outcome(&out, "0x0"), "ok", "personality(0):\n{out}");
    assert_eq!(outcome(&out, "0x8"), "ok", "personality(8):\n{out}");
    assert_eq!(
        outcome(&out, "0x20000"),
        "err:1",
        "personality(UNAME26) is listed by no condition:\n{out}"
    );
    let getppid: Vec<String> = results(&out)
        .into_iter()
        .filter(|(k, _)| k == "getppid")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(getppid.len(), 3, "{out}");
    assert!(getppid[0].starts_with("ok"), "getppid(1, 2):\n{out}");
    assert_eq!(getppid[1], "err:1", "getppid(1, 3):\n{out}");
    assert_eq!(getppid[2], "err:1", "getppid(0, 2):\n{out}");
    rt.assert_no_leftovers(&b, &id);
}

/// libseccomp always filters the native ABI: a profile listing only the
/// 32-bit ABIs still applies its rules to x86_64 processes (runc's users
/// get that), instead of every x86_64 syscall failing.
#[test]
fn profile_without_the_native_abi_still_filters_it() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let mut p = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]),
    );
    p["architectures"] = json!(["SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    b.config["linux"]["seccomp"] = p;
    b.config["root"]["readonly"] = json!(false);
    b.set_script("mkdir /tmp/x 2>&1; echo rc=$?; echo alive");
    let id = rt.id("scnative");
    let out = rt.run_with(&b, &id, &[]);
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.contains("alive"), "{}", out.describe());
    assert!(
        out.stdout.contains("Permission denied") && out.stdout.contains("rc=1"),
        "the rule must apply to x86_64 too: {}",
        out.describe()
    );
    rt.assert_no_leftovers(&b, &id);
}

/// runc refuses NOTIFY on `write` ("SCMP_ACT_NOTIFY cannot be used for
/// the write syscall"): its init, like oxrun's, still writes to the runtime
/// once the filter is loaded.
#[test]
fn notify_on_write_is_refused() {
    let rt = Runtime::new();
    let sock = rt.scratch().join("agent.sock");
    // Someone listening (nobody answers): the refusal is the only error.
    let _listener = UnixListener::bind(&sock).expect("bind agent socket");
    let mut b = Bundle::new();
    let mut p = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]),
    );
    p["listenerPath"] = json!(sock);
    b.config["linux"]["seccomp"] = p;
    b.set_script("echo hello");
    let id = rt.id("scnwrite");
    let out = rt.run_with(&b, &id, &[]).fails();
    out.assert_mentions(&["SCMP_ACT_NOTIFY cannot be used for the write syscall"]);
    rt.assert_no_leftovers(&b, &id);
}
