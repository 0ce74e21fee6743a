//! Shared by the seccomp test files (`#[path]`-included, so not a test
//! target itself): the `probe` helper built at test time, profile builders
//! and the default-profile template resolver.
#![allow(dead_code)]

use integration::*;
use serde_json::{json, Value};
use std::path::PathBuf;

/// C source of `/bin/probe` (see its header for the modes).
pub const PROBE_C: &str = include_str!("probe.c");

/// Build `probe` statically into the bundle's `/bin/probe`.
pub fn install_probe(rt: &Runtime, b: &Bundle) {
    let src = rt.scratch().join("probe.c");
    std::fs::write(&src, PROBE_C).expect("write probe.c");
    let bin = b.rootfs().join("bin/probe");
    let cc = run_with_timeout(
        std::process::Command::new("gcc").args([
            "-static",
            "-pthread",
            "-O1",
            "-o",
            bin.to_str().expect("utf8"),
            src.to_str().expect("utf8"),
        ]),
        TIMEOUT,
        None,
    );
    assert!(
        cc.success(),
        "gcc -static is needed for the seccomp tests: {}",
        cc.describe()
    );
}

/// A profile for all three x86 ABIs.
pub fn profile(default: &str, syscalls: Value) -> Value {
    json!({"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": syscalls})
}

/// True when the runtime under test is runc (`OXRUN_BIN=/usr/sbin/runc`).
pub fn is_runc() -> bool {
    runtime_bin()
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("runc"))
}

pub fn template_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../seccomp-profiles/default.json")
}

/// seccomp-profiles/default.json resolved for `caps` the way its `about`
/// says (written independently of oxrun's resolver, which a test compares).
pub fn default_profile(caps: &[&str]) -> Value {
    let data = std::fs::read(template_path()).expect("read default.json");
    let mut v: Value = serde_json::from_slice(&data).expect("default.json is JSON");
    let obj = v.as_object_mut().expect("object");
    obj.remove("about");
    let has = |list: &Value| {
        list.as_array()
            .expect("cap list")
            .iter()
            .any(|c| caps.contains(&c.as_str().expect("cap name")))
    };
    let entries = obj["syscalls"].as_array_mut().expect("syscalls");
    entries.retain(|e| {
        e.get("ifAnyCap").map(has).unwrap_or(true) && !e.get("unlessCaps").map(has).unwrap_or(false)
    });
    for e in entries.iter_mut() {
        let m = e.as_object_mut().expect("entry");
        m.remove("ifAnyCap");
        m.remove("unlessCaps");
        m.remove("comment");
    }
    v
}

/// The `name=...` result lines a probe printed, as (name, outcome).
pub fn results(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The outcome probe printed for `name` (first occurrence).
pub fn outcome(out: &str, name: &str) -> String {
    field(out, name)
        .unwrap_or_else(|| panic!("no `{name}=` line in probe output:\n{out}"))
        .to_string()
}
