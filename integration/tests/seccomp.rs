//! linux.seccomp: filters compiled by oxrun, checked from inside the container.

use integration::*;
use serde_json::json;

#[path = "seccomp_support/mod.rs"]
mod seccomp_support;
use seccomp_support::*;

#[test]
fn errno_with_errno_ret_and_filter_mode() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["seccomp"] = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]),
    );
    b.config["root"]["readonly"] = json!(false);
    b.set_script("grep ^Seccomp: /proc/self/status; mkdir /tmp/x 2>&1; echo rc=$?");
    let id = rt.id("scerrno");
    let out = rt.run_ok(&b, &id);
    assert!(out.contains("Seccomp:\t2"), "filter mode expected:\n{out}");
    assert!(
        out.contains("Permission denied"),
        "EACCES (errnoRet 13) expected:\n{out}"
    );
    assert!(out.contains("rc=1"), "{out}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn default_errno_is_eperm() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["seccomp"] = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]),
    );
    b.set_script("mkdir /tmp/y 2>&1; true");
    let id = rt.id("sceperm");
    let out = rt.run_ok(&b, &id);
    assert!(out.contains("Operation not permitted"), "{out}");
}

#[test]
fn kill_process_action() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["seccomp"] = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]),
    );
    b.set_script("mkdir /tmp/z; echo rc=$?");
    let id = rt.id("sckill");
    let out = rt.run_ok(&b, &id);
    // The shell's child died of SIGSYS (31): status 128+31.
    assert!(out.contains("rc=159"), "{out}");
}

#[test]
fn argument_equality_selects_calls() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    // kill(pid, 0) is refused; kill(pid, SIGCONT) is not.
    b.config["linux"]["seccomp"] = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]),
    );
    b.set_script("kill -0 $$ 2>/dev/null; echo zero=$?; kill -CONT $$; echo cont=$?");
    let id = rt.id("scargs");
    let out = rt.run_ok(&b, &id);
    assert!(out.contains("zero=1"), "{out}");
    assert!(out.contains("cont=0"), "{out}");
}

/// runc 1.1.5 fails this one: it loads the filter before its own last
/// set-up steps, which the allow-list then refuses. oxrun loads it last.
#[test]
fn allowlist_with_default_errno() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    // Everything busybox sh + echo needs, but not getpid-class extras.
    let allowed = [
        "execve",
        "brk",
        "arch_prctl",
        "set_tid_address",
        "set_robust_list",
        "rseq",
        "prlimit64",
        "mmap",
        "munmap",
        "mprotect",
        "read",
        "write",
        "writev",
        "close",
        "exit",
        "exit_group",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "getpid",
        "getppid",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "ioctl",
        "fcntl",
        "dup2",
        "dup3",
        "stat",
        "newfstatat",
        "fstat",
        "lstat",
        "openat",
        "open",
        "getcwd",
        "uname",
        "wait4",
        "clone",
        "clone3",
        "fork",
        "vfork",
        "readlink",
        "access",
        "faccessat",
        "faccessat2",
        "getrandom",
        "sigaltstack",
        "poll",
        "lseek",
        "pipe",
        "pipe2",
        "chdir",
        "statx",
    ];
    b.config["linux"]["seccomp"] = profile(
        "SCMP_ACT_ERRNO",
        json!([{"names": allowed.as_slice(), "action": "SCMP_ACT_ALLOW"}]),
    );
    b.set_script("echo alive; mkdir /tmp/w 2>&1; echo done");
    let id = rt.id("scallow");
    let out = rt.run_ok(&b, &id);
    assert!(out.contains("alive") && out.contains("done"), "{out}");
    assert!(
        out.contains("Operation not permitted"),
        "mkdir is not in the allow-list:\n{out}"
    );
}

/// A 32-bit `int 0x80` syscall from a 64-bit process runs with the i386
/// ABI: the filter must judge it with i386 numbers (or refuse the ABI), never
/// let it through the x86_64 rules.
#[test]
fn i386_abi_cannot_bypass_rules() {
    let rt = Runtime::new();
    let src = rt.scratch().join("int80.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
static char path[] = "/tmp/int80dir";
int main(void) {
    long ret;
    /* i386 mkdir(path, 0755) is syscall 39 */
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(39L), "b"(path), "c"(0755L) : "memory");
    printf("ret=%ld\n", ret);
    return 0;
}
"#,
    )
    .expect("write source");
    let mut b = Bundle::new();
    let bin = b.rootfs().join("bin/int80");
    let cc = host(
        "gcc",
        &[
            "-static",
            "-no-pie",
            "-O1",
            "-o",
            bin.to_str().expect("utf8"),
            src.to_str().expect("utf8"),
        ],
    );
    assert!(
        cc.success(),
        "gcc -static is needed for this test: {}",
        cc.describe()
    );
    b.config["root"]["readonly"] = json!(false);
    b.config["process"]["args"] = json!(["/bin/int80"]);
    // Rules for both ABIs: the i386 mkdir gets the rule's errno.
    b.config["linux"]["seccomp"] = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]),
    );
    let id = rt.id("sc32a");
    let out = rt.run_ok(&b, &id);
    assert!(
        out.contains("ret=-13"),
        "i386 mkdir must hit the rule:\n{out}"
    );
    // Only x86_64 listed: the i386 ABI is refused outright. oxrun answers
    // ENOSYS; runc (libseccomp's bad-arch default) kills with SIGSYS.
    b.config["linux"]["seccomp"]["architectures"] = json!(["SCMP_ARCH_X86_64"]);
    let id = rt.id("sc32b");
    let out = rt.run_ok(&b, &id);
    assert!(
        out.contains("ret=-38"),
        "unlisted ABI must get ENOSYS:\n{out}"
    );
    // Control: without a filter the same call works.
    b.config["linux"]
        .as_object_mut()
        .expect("linux")
        .remove("seccomp");
    let id = rt.id("sc32c");
    let out = rt.run_ok(&b, &id);
    assert!(out.contains("ret=0"), "{out}");
}

/// runc 1.1.5 refuses `flags` ("not yet supported"); the spec has them.
#[test]
fn tsync_flag_and_unknown_syscall_are_accepted() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let mut p = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["no_such_syscall_xyz", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]),
    );
    p["flags"] = json!(["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"]);
    b.config["linux"]["seccomp"] = p;
    b.set_script("mkdir /tmp/q 2>&1; true");
    let id = rt.id("sctsync");
    let out = rt.run_ok(&b, &id);
    assert!(out.contains("Operation not permitted"), "{out}");
}

#[test]
fn unknown_action_is_an_error_naming_it() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["seccomp"] = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]),
    );
    let id = rt.id("scbad");
    let out = rt.run_with(&b, &id, &[]).fails();
    out.assert_mentions(&["linux.seccomp.syscalls[0].action", "SCMP_ACT_BOGUS"]);
    rt.assert_no_leftovers(&b, &id);
}

/// A bundle whose process is `/bin/probe ARGS...` under `seccomp`.
fn probe_bundle(rt: &Runtime, seccomp: serde_json::Value, args: &[&str]) -> Bundle {
    let mut b = Bundle::new();
    install_probe(rt, &b);
    let mut full = vec!["/bin/probe"];
    full.extend_from_slice(args);
    b.set_args(&full);
    b.config["linux"]["seccomp"] = seccomp;
    b
}

/// KILL and KILL_THREAD end only the calling thread (the process dies
/// with SIGSYS when that was its last thread); KILL_PROCESS ends them all.
#[test]
fn kill_thread_and_kill_process() {
    let rt = Runtime::new();
    for (action, threaded, want_code, main_survives) in [
        ("SCMP_ACT_KILL_THREAD", true, 0, true),
        ("SCMP_ACT_KILL", true, 0, true),
        ("SCMP_ACT_KILL_PROCESS", true, 159, false),
        ("SCMP_ACT_KILL_THREAD", false, 159, false),
    ] {
        let p = profile(
            "SCMP_ACT_ALLOW",
            json!([{"names": ["getppid"], "action": action}]),
        );
        let args: &[&str] = if threaded {
            &["thread", "getppid"]
        } else {
            &["sys", "getppid"]
        };
        let b = probe_bundle(&rt, p, args);
        let id = rt.id("sckill");
        let (code, out, err) = rt.run_capture(&b, &id);
        let what = format!("{action} threaded={threaded}: code {code}\n{out}\n{err}");
        assert_eq!(code, want_code, "{what}");
        assert!(
            !out.contains("getppid="),
            "the call must not return: {what}"
        );
        assert_eq!(out.contains("main alive"), main_survives, "{what}");
        rt.assert_no_leftovers(&b, &id);
    }
}

/// TRAP: SIGSYS with si_code SYS_SECCOMP (1), the syscall number and the
/// audit arch, to a handler the process installed.
#[test]
fn trap_sends_sigsys_with_the_syscall() {
    let rt = Runtime::new();
    let p = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["getppid"], "action": "SCMP_ACT_TRAP"}]),
    );
    let b = probe_bundle(&rt, p, &["trap", "getppid"]);
    let id = rt.id("sctrap");
    let out = rt.run_ok(&b, &id);
    let line = out
        .lines()
        .find(|l| l.starts_with("sigsys "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("code=1 syscall=110 nr=110") && line.contains("arch=0xc000003e"),
        "{out}"
    );
}

/// ERRNO with errnoRet, TRACE without a tracer (ENOSYS, the kernel's
/// rule), LOG and ALLOW (the call runs), each on its own syscall.
#[test]
fn errno_trace_log_and_allow() {
    let rt = Runtime::new();
    let p = profile(
        "SCMP_ACT_ERRNO",
        json!([
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99},
            {"names": ["getpgrp"], "action": "SCMP_ACT_TRACE"},
            {"names": ["sched_yield"], "action": "SCMP_ACT_LOG"},
            {"names": ["gettid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5}
        ]),
    );
    // Everything else is allowed through the default profile's allow-list,
    // minus the syscalls under test.
    let mine = ["getppid", "getpgrp", "sched_yield", "gettid", "getuid"];
    let mut p2 = default_profile(&[]);
    for e in p2["syscalls"].as_array_mut().expect("syscalls") {
        e["names"]
            .as_array_mut()
            .expect("names")
            .retain(|n| !mine.contains(&n.as_str().unwrap_or("")));
    }
    let mut rules = p["syscalls"].as_array().expect("rules").clone();
    rules.extend(p2["syscalls"].as_array().expect("syscalls").iter().cloned());
    p2["syscalls"] = json!(rules);
    p2["defaultErrnoRet"] = json!(95);
    let mut b = probe_bundle(&rt, p2, &[]);
    b.set_script("for c in getppid getpgrp sched_yield gettid getuid; do /bin/probe sys $c; done");
    let id = rt.id("scacts");
    let out = rt.run_ok(&b, &id);
    assert_eq!(outcome(&out, "getppid"), "err:99", "{out}");
    assert_eq!(
        outcome(&out, "getpgrp"),
        "err:38",
        "TRACE, no tracer:\n{out}"
    );
    assert!(outcome(&out, "sched_yield").starts_with("ok"), "{out}");
    assert_eq!(
        outcome(&out, "gettid"),
        "err:38",
        "TRACE's errnoRet is for the tracer:\n{out}"
    );
    assert_eq!(
        outcome(&out, "getuid"),
        "err:95",
        "not listed: defaultErrnoRet:\n{out}"
    );
}

/// Every operator on a real syscall (getppid ignores its arguments, so
/// only the filter decides), with 64-bit values that differ in each half.
#[test]
fn every_operator_on_a_real_syscall() {
    let rt = Runtime::new();
    let big: u64 = 0x1_0000_0005;
    let tries = [
        0u64,
        5,
        6,
        big - 1,
        big,
        big + 1,
        0x2_0000_0000,
        0x2_0000_0005,
    ];
    // (op, value, valueTwo, which of `tries` the rule matches)
    type Case = (&'static str, u64, u64, fn(u64) -> bool);
    let cases: &[Case] = &[
        ("SCMP_CMP_EQ", big, 0, |v| v == 0x1_0000_0005),
        ("SCMP_CMP_NE", big, 0, |v| v != 0x1_0000_0005),
        ("SCMP_CMP_LT", big, 0, |v| v < 0x1_0000_0005),
        ("SCMP_CMP_LE", big, 0, |v| v <= 0x1_0000_0005),
        ("SCMP_CMP_GT", big, 0, |v| v > 0x1_0000_0005),
        ("SCMP_CMP_GE", big, 0, |v| v >= 0x1_0000_0005),
        // (arg & 0xffffffff0000000f) == 0x100000005
        ("SCMP_CMP_MASKED_EQ", 0xffff_ffff_0000_000f, big, |v| {
            v & 0xffff_ffff_0000_000f == 0x1_0000_0005
        }),
    ];
    let values: Vec<String> = tries.iter().map(|v| format!("{v:#x}")).collect();
    for (op, value, two, matches) in cases {
        let mut arg = json!({"index": 1, "value": value, "op": op});
        if *op == "SCMP_CMP_MASKED_EQ" {
            arg["valueTwo"] = json!(two);
        }
        let p = profile(
            "SCMP_ACT_ALLOW",
            json!([{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77, "args": [arg]}]),
        );
        let mut args = vec!["each", "getppid", "1"];
        args.extend(values.iter().map(String::as_str));
        let b = probe_bundle(&rt, p, &args);
        let id = rt.id("scop");
        let out = rt.run_ok(&b, &id);
        for (v, text) in tries.iter().zip(&values) {
            let got = outcome(&out, text);
            let want = if matches(*v) { "err:77" } else { "ok" };
            assert_eq!(got, want, "{op} {value:#x} on {text}:\n{out}");
        }
    }
}

/// The spec: "When the action doesn't support an errno, the runtime MUST
/// print an error and fail". runc 1.1.5 ignores such an errnoRet.
#[test]
fn errno_ret_on_an_action_without_errno_is_an_error() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["seccomp"] = profile(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]),
    );
    let id = rt.id("scerrret");
    let out = rt.run_with(&b, &id, &[]).fails();
    out.assert_mentions(&["errnoRet"]);
    rt.assert_no_leftovers(&b, &id);
}
