//! Helpers shared by the client tests (`containerd.rs`, `podman.rs`):
//! running commands under a terminal, finding and killing processes,
//! cgroup checks and clean-up. Included with `#[path]`; not every test
//! binary uses every helper.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use integration::*;

/// The runtime under test as an absolute path (clients resolve it from the
/// bundle directory, so a relative one would not do).
pub fn runtime_abs() -> PathBuf {
    let bin = runtime_bin();
    assert!(
        bin.exists(),
        "runtime binary {} does not exist; build it or set OXRUN_BIN",
        bin.display()
    );
    fs::canonicalize(&bin).unwrap_or(bin)
}

/// Whether the runtime under test has a subcommand (`oxrun --help` lists
/// it). runc's help lists every command too.
pub fn runtime_has_command(cmd: &str) -> bool {
    let out = run_with_timeout(
        Command::new(runtime_abs()).arg("--help"),
        Duration::from_secs(10),
        None,
    );
    out.output()
        .lines()
        .any(|l| l.split_whitespace().next() == Some(cmd))
}

/// Panic with an install hint unless `prog` is on PATH.
pub fn require_program(prog: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{prog}` is not installed: run scripts/setup.sh (Debian package {package})"
    );
}

/// Single-quote `s` for sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A shell command line from a program and its arguments.
pub fn shell_line(prog: &str, args: &[String]) -> String {
    let mut s = sh_quote(prog);
    for a in args {
        s.push(' ');
        s.push_str(&sh_quote(a));
    }
    s
}

/// Run a shell command line under script(1), which gives it a terminal;
/// `script -e` returns the command's exit status. Carriage returns are
/// removed from the output.
pub fn under_script(line: &str, timeout: Duration) -> CmdOut {
    let mut c = Command::new("script");
    c.args(["-qec", line, "/dev/null"]);
    let mut out = run_with_timeout(&mut c, timeout, None);
    out.stdout = out.stdout.replace('\r', "");
    out
}

/// The command line of a process ("" if gone), NULs as spaces.
pub fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Processes (not zombies, not this test) whose command line contains
/// `needle`.
pub fn procs_with_cmdline(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|p| *p != me && pid_alive(*p))
        .filter_map(|p| {
            let c = cmdline(p);
            c.contains(needle).then_some((p, c))
        })
        .collect()
}

/// Processes (not zombies) in cgroup `rel` or below it, in any hierarchy.
pub fn procs_in_cgroup(rel: &str) -> Vec<(i32, String)> {
    let needle = format!("/{}", rel.trim_matches('/'));
    all_pids()
        .into_iter()
        .filter(|p| pid_alive(*p))
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/cgroup"))
                .unwrap_or_default()
                .lines()
                .any(|l| {
                    let path = l.splitn(3, ':').nth(2).unwrap_or("");
                    path == needle || path.starts_with(&format!("{needle}/"))
                })
        })
        .map(|p| (p, cmdline(p)))
        .collect()
}

/// Every mounted cgroup hierarchy (v1 controllers, the v2 root or the
/// hybrid's unified mount).
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = mountinfo()
        .iter()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| PathBuf::from(pre.split(' ').nth(4).unwrap_or("")))
        })
        .filter(|p| p.starts_with("/sys/fs/cgroup"))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Existing cgroup directories `<hierarchy>/<rel>`.
pub fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    let rel = rel.trim_matches('/');
    if rel.is_empty() {
        return vec![];
    }
    cgroup_hierarchies()
        .into_iter()
        .map(|h| h.join(rel))
        .filter(|d| d.is_dir())
        .collect()
}

/// Best effort: remove `<hierarchy>/<rel>` and every cgroup below it in
/// every hierarchy (deepest first; rmdir fails harmlessly on busy ones).
pub fn remove_cgroup_tree(rel: &str) {
    fn rm(dir: &Path) {
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() && !p.is_symlink() {
                    rm(&p);
                }
            }
        }
        let _ = fs::remove_dir(dir);
    }
    // `rel` is not empty (cgroup_dirs checks), so no hierarchy root.
    for d in cgroup_dirs(rel) {
        rm(&d);
    }
}

/// SIGKILL the given processes.
pub fn kill_all(procs: &[(i32, String)]) {
    for (p, _) in procs {
        // SAFETY: kill(2) with a pid and a signal number; no memory is involved.
        unsafe { libc::kill(*p, libc::SIGKILL) };
    }
}

/// Poll `check` (which lists problems) until it returns nothing; return
/// the last problems after `timeout`.
pub fn settle(timeout: Duration, mut check: impl FnMut() -> Vec<String>) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let p = check();
        if p.is_empty() || Instant::now() > deadline {
            return p;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Poll `f` until it returns Some, or None after `timeout`.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Mount points (host mount namespace, i.e. this test's) whose line in
/// /proc/self/mountinfo mentions any of `needles`.
pub fn mounts_mentioning(needles: &[&str]) -> Vec<String> {
    mountinfo()
        .into_iter()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .collect()
}

/// The last `n` lines of a file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let s = read_file(path);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// SIGTERM `child` (a daemon the test started), SIGKILL it if it is still
/// there after `grace`, and reap it.
pub fn terminate(mut child: std::process::Child, grace: Duration) {
    // SAFETY: kill(2) with a pid and a signal number; no memory is involved.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => {}
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
