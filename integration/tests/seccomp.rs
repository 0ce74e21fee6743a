//! linux.seccomp: filters compiled by oxrun, checked from inside the container.

use integration::*;
use serde_json::json;

fn profile(default: &str, syscalls: serde_json::Value) -> serde_json::Value {
    json!({"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": syscalls})
}

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
