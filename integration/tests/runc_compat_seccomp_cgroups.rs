//! Where runc's users depend on its behaviour: seccomp profiles written
//! for runc/Docker (conditions on one argument ORed, the native ABI always
//! filtered, NOTIFY on `write` refused) and containers put into cgroups
//! that already exist (frozen: refused; with processes: a warning).
//! The cgroup tests need the v1 freezer (this host); they fail elsewhere
//! unless OXRUN_TEST_ALLOW_SKIP=1.

use integration::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

fn freezer_v1() -> bool {
    Path::new("/sys/fs/cgroup/freezer/tasks").exists()
}

/// The v1 hierarchies and the cgroup2 mount (hybrid: /sys/fs/cgroup/unified).
fn hierarchies() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir("/sys/fs/cgroup")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir() && !p.is_symlink() && p.join("cgroup.procs").exists())
                .collect()
        })
        .unwrap_or_default();
    if v.is_empty() {
        v.push(PathBuf::from("/sys/fs/cgroup"));
    }
    v
}

/// A cgroup `/<top>` the test makes itself (in `freezer` only, or in every
/// hierarchy), with processes it puts there. On drop: thawed, emptied
/// (SIGKILL to whatever is inside, the test's own cgroup) and removed with
/// everything below it, in every hierarchy.
struct PreMade {
    top: String,
    children: Vec<Child>,
}

impl PreMade {
    fn new(tag: &str) -> PreMade {
        PreMade {
            top: unique(&format!("oxit-pre-{tag}")),
            children: Vec::new(),
        }
    }

    fn dir(&self, hierarchy: &Path) -> PathBuf {
        hierarchy.join(&self.top)
    }

    fn freezer(&self) -> PathBuf {
        self.dir(Path::new("/sys/fs/cgroup/freezer"))
    }

    fn freeze(&self) {
        let d = self.freezer();
        fs::create_dir_all(&d).expect("mkdir freezer cgroup");
        fs::write(d.join("freezer.state"), "FROZEN").expect("freeze");
        let deadline = Instant::now() + Duration::from_secs(5);
        while read_file(&d.join("freezer.state")).trim() != "FROZEN" {
            assert!(Instant::now() < deadline, "{} did not freeze", d.display());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A `sleep` of ours in the cgroup in every hierarchy.
    fn add_sleeper(&mut self) -> i32 {
        let child = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        self.children.push(child);
        for h in hierarchies() {
            let d = self.dir(&h);
            fs::create_dir_all(&d).expect("mkdir cgroup");
            if d.join("cpuset.cpus").exists() {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let v = read_file(&h.join(f));
                    fs::write(d.join(f), v.trim()).expect("cpuset");
                }
            }
            fs::write(d.join("cgroup.procs"), pid.to_string()).expect("join cgroup");
        }
        pid
    }
}

fn subtree(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                subtree(&e.path(), out);
            }
        }
    }
}

impl Drop for PreMade {
    fn drop(&mut self) {
        let mut dirs = Vec::new();
        for h in hierarchies() {
            let d = self.dir(&h);
            if d.exists() {
                subtree(&d, &mut dirs);
            }
        }
        for d in &dirs {
            let _ = fs::write(d.join("freezer.state"), "THAWED");
            let _ = fs::write(d.join("cgroup.freeze"), "0");
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut busy = false;
            for d in &dirs {
                for pid in read_file(&d.join("cgroup.procs"))
                    .lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok())
                {
                    busy = true;
                    // SAFETY: kill(2) on a process in the test's own cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            if !busy || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Deepest first.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in &dirs {
            let _ = fs::remove_dir(d);
        }
    }
}

/// runc 1.1.5, into an existing frozen cgroup: `container's cgroup
/// unexpectedly frozen` (exit 1), checked before anything is made: no
/// state, no cgroup in any other hierarchy, and the user's cgroup is left
/// as it was (still there, still frozen). Without the check the init
/// freezes on joining it and create hangs.
#[test]
fn frozen_cgroup_is_refused() {
    require!(freezer_v1(), "no v1 freezer at /sys/fs/cgroup/freezer");
    let rt = Runtime::new();
    let pre = PreMade::new("frz");
    pre.freeze();
    let mut b = Bundle::new();
    b.set_args(&["sleep", "1000"]);
    b.config["linux"]["cgroupsPath"] = json!(format!("/{}", pre.top));
    let id = rt.id("cgfrz");
    let out = rt.create(&b, &id).fails();
    out.assert_mentions(&["container's cgroup unexpectedly frozen"]);
    assert!(!rt.root.join(&id).exists(), "state dir left behind");
    assert_eq!(
        read_file(&pre.freezer().join("freezer.state")).trim(),
        "FROZEN",
        "the user's cgroup must be left as it was"
    );
    assert!(
        read_file(&pre.freezer().join("cgroup.procs"))
            .trim()
            .is_empty(),
        "nothing may have joined it"
    );
    for h in hierarchies() {
        if !h.ends_with("freezer") {
            let d = pre.dir(&h);
            assert!(!d.exists(), "{} was created", d.display());
        }
    }
}

/// A cgroup below a frozen one would be frozen too: refused the same way.
/// runc 1.1.5 reads the new cgroup's state as not frozen (it does not
/// exist yet) and hangs, so this test fails there (timeout).
#[test]
fn cgroup_below_a_frozen_one_is_refused() {
    require!(freezer_v1(), "no v1 freezer at /sys/fs/cgroup/freezer");
    let rt = Runtime::new();
    let pre = PreMade::new("frzp");
    pre.freeze();
    let mut b = Bundle::new();
    b.set_args(&["sleep", "1000"]);
    b.config["linux"]["cgroupsPath"] = json!(format!("/{}/c", pre.top));
    let id = rt.id("cgfrzp");
    let out = rt.create(&b, &id).fails();
    out.assert_mentions(&["container's cgroup unexpectedly frozen"]);
    assert!(!rt.root.join(&id).exists(), "state dir left behind");
    for h in hierarchies() {
        let d = pre.dir(&h).join("c");
        assert!(!d.exists(), "{} was created", d.display());
    }
}

/// runc 1.1.5 runs a container in a cgroup that already has processes,
/// with a warning: `container's cgroup is not empty: 1 process(es) found`
/// (it adds a runc-specific "DEPRECATED ... runc 1.2" line, not copied).
#[test]
fn non_empty_cgroup_warns() {
    require!(freezer_v1(), "no v1 freezer at /sys/fs/cgroup/freezer");
    let rt = Runtime::new();
    let mut pre = PreMade::new("busy");
    let sleeper = pre.add_sleeper();
    let mut b = Bundle::new();
    b.set_args(&["sleep", "1000"]);
    b.config["linux"]["cgroupsPath"] = json!(format!("/{}", pre.top));
    let id = rt.id("cgbusy");
    let out = rt.create(&b, &id).ok();
    assert!(
        out.stderr
            .contains("container's cgroup is not empty: 1 process(es) found"),
        "{}",
        out.describe()
    );
    assert_eq!(rt.status(&id).as_deref(), Some("created"));
    assert!(pid_alive(sleeper), "the other process must be left alone");
    rt.delete(&id, true);
    // An empty cgroup: no such warning.
    let b2 = Bundle::new();
    let id2 = rt.id("cgempty");
    let out = rt.create(&b2, &id2).ok();
    assert!(
        !out.stderr.contains("not empty"),
        "warning for an empty cgroup: {}",
        out.describe()
    );
    rt.delete(&id2, true).ok();
    rt.assert_no_leftovers(&b2, &id2);
}
