//! The runtime under test, wrapped: a private `--root`, command helpers
//! with timeouts, the leftovers check, and cleanup on drop.

use crate::bundle::Bundle;
use crate::command::{run_with_timeout, CmdOut, TIMEOUT};
use crate::files::{mountinfo, TempDir};
use crate::names::next;
use crate::procfs::{all_pids, proc_state};
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Path of the runtime binary under test (`$OXRUN_BIN`, or the workspace's
/// `target/debug/oxrun`).
pub fn runtime_bin() -> PathBuf {
    match std::env::var_os("OXRUN_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target/debug/oxrun"),
    }
}

/// What the wrapper remembers about an id it created, for cleanup and for
/// the leftovers check.
#[derive(Debug, Clone, Default)]
struct Known {
    cgroups_paths: Vec<String>,
    pids: Vec<i32>,
}

/// A runtime binary with a private `--root`. Containers it created are
/// force-deleted on drop.
pub struct Runtime {
    pub bin: PathBuf,
    base: TempDir,
    /// Value passed as `--root`.
    pub root: PathBuf,
    io: PathBuf,
    /// Extra global options put before the subcommand (e.g. `--log`).
    pub global_args: Vec<String>,
    known: Mutex<HashMap<String, Known>>,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    pub fn new() -> Runtime {
        let bin = runtime_bin();
        assert!(
            bin.exists(),
            "runtime binary {} does not exist; build it or set OXRUN_BIN",
            bin.display()
        );
        let base = TempDir::new("oxit-rt");
        let root = base.join("root");
        let io = base.join("io");
        fs::create_dir_all(&io).unwrap();
        Runtime {
            bin,
            root,
            io,
            base,
            global_args: Vec::new(),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh container id `oxit-<n>-<tag>-<pid>`.
    pub fn id(&self, tag: &str) -> String {
        format!("oxit-{}-{tag}-{}", next(), std::process::id())
    }

    /// Scratch directory owned by this runtime wrapper (removed on drop).
    pub fn scratch(&self) -> &Path {
        self.base.path()
    }

    /// `<bin> --root <root> [global args]` ready for a subcommand.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root);
        c.args(&self.global_args);
        c
    }

    /// Run a subcommand with the default timeout.
    pub fn cmd(&self, args: &[&str]) -> CmdOut {
        run_with_timeout(self.command().args(args), TIMEOUT, None)
    }

    fn remember(&self, bundle: &Bundle, id: &str) {
        let mut k = self.known.lock().unwrap();
        let e = k.entry(id.to_string()).or_default();
        let cg = bundle.cgroups_path(id);
        if !e.cgroups_paths.contains(&cg) {
            e.cgroups_paths.push(cg);
        }
    }

    fn remember_pid(&self, id: &str) {
        if let Ok(st) = self.state(id) {
            if let Some(pid) = st["pid"].as_i64().filter(|p| *p > 0) {
                if let Some(k) = self.known.lock().unwrap().get_mut(id) {
                    k.pids.push(pid as i32);
                }
            }
        }
    }

    /// File receiving the stdout/stderr of a container created by
    /// [`Runtime::create`] (its stdio is inherited from `create`).
    pub fn output_path(&self, id: &str) -> PathBuf {
        self.io.join(format!("{}.out", id.replace('/', "_")))
    }

    /// What the container (created with [`Runtime::create`]) wrote so far.
    pub fn output(&self, id: &str) -> String {
        fs::read_to_string(self.output_path(id)).unwrap_or_default()
    }

    /// Poll the container's output until it contains `needle`.
    pub fn wait_output(&self, id: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.output(id);
            if out.contains(needle) {
                return out;
            }
            if Instant::now() > deadline {
                panic!("container {id} did not print {needle:?} within {timeout:?}; output so far:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `create --bundle B [extra...] <id>`; the container's stdout/stderr go
    /// to [`Runtime::output_path`].
    pub fn create_with(&self, bundle: &Bundle, id: &str, extra: &[&str]) -> CmdOut {
        bundle.write_config(id);
        self.remember(bundle, id);
        let mut c = self.command();
        c.arg("create")
            .arg("--bundle")
            .arg(bundle.path())
            .args(extra)
            .arg(id);
        let out = run_with_timeout(&mut c, TIMEOUT, Some(&self.output_path(id)));
        // The file holds the container's output too; for create's own
        // messages look at stderr (runc logs errors there).
        self.remember_pid(id);
        out
    }

    pub fn create(&self, bundle: &Bundle, id: &str) -> CmdOut {
        self.create_with(bundle, id, &[])
    }

    pub fn start(&self, id: &str) -> CmdOut {
        self.cmd(&["start", id])
    }

    /// `state <id>` parsed as JSON, or the failed command.
    pub fn state(&self, id: &str) -> Result<Value, CmdOut> {
        let out = self.cmd(&["state", id]);
        if !out.success() {
            return Err(out);
        }
        serde_json::from_str(&out.stdout).map_err(|e| {
            let mut o = out.clone();
            o.stderr
                .push_str(&format!("\n(state output is not JSON: {e})"));
            o.status = None;
            o
        })
    }

    pub fn state_ok(&self, id: &str) -> Value {
        self.state(id)
            .unwrap_or_else(|o| panic!("state failed: {}", o.describe()))
    }

    /// `status` field of `state <id>`, None if state fails.
    pub fn status(&self, id: &str) -> Option<String> {
        self.state(id)
            .ok()
            .and_then(|v| v["status"].as_str().map(String::from))
    }

    pub fn kill(&self, id: &str, sig: Option<&str>) -> CmdOut {
        match sig {
            Some(s) => self.cmd(&["kill", id, s]),
            None => self.cmd(&["kill", id]),
        }
    }

    pub fn delete(&self, id: &str, force: bool) -> CmdOut {
        if force {
            self.cmd(&["delete", "-f", id])
        } else {
            self.cmd(&["delete", id])
        }
    }

    /// Poll `state` until the status is `want`; panics after `timeout`.
    pub fn wait_for_status(&self, id: &str, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.state(id) {
                Ok(v) if v["status"] == want => return,
                Ok(v) => v.to_string(),
                Err(o) => o.describe(),
            };
            if Instant::now() > deadline {
                panic!(
                    "container {id} did not reach status {want:?} within {timeout:?}; last: {last}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `run [extra...] --bundle B <id>` in the foreground; the container's
    /// stdio is the runtime's, so stdout/stderr hold what it printed.
    pub fn run_with(&self, bundle: &Bundle, id: &str, extra: &[&str]) -> CmdOut {
        bundle.write_config(id);
        self.remember(bundle, id);
        let mut c = self.command();
        c.arg("run")
            .args(extra)
            .arg("--bundle")
            .arg(bundle.path())
            .arg(id);
        run_with_timeout(&mut c, TIMEOUT, None)
    }

    /// Foreground run; returns (exit code, stdout, stderr). Panics on timeout.
    pub fn run_capture(&self, bundle: &Bundle, id: &str) -> (i32, String, String) {
        let out = self.run_with(bundle, id, &[]);
        assert!(!out.timed_out, "run timed out: {}", out.describe());
        (out.code(), out.stdout, out.stderr)
    }

    /// Foreground run that must exit 0; returns the container's stdout.
    pub fn run_ok(&self, bundle: &Bundle, id: &str) -> String {
        self.run_with(bundle, id, &[]).ok().stdout
    }

    /// create + start; panics on failure.
    pub fn create_start(&self, bundle: &Bundle, id: &str) {
        self.create(bundle, id).ok();
        self.start(id).ok();
    }

    /// Everything this container may have left behind. Empty when clean.
    pub fn leftovers(&self, bundle: &Bundle, id: &str) -> Vec<String> {
        let known = self
            .known
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_default();
        let cgroups_path = bundle.cgroups_path(id);
        let mut problems = Vec::new();
        if !id.contains('/') && !id.contains("..") {
            let sd = self.root.join(id);
            if sd.exists() {
                problems.push(format!("state dir {} still exists", sd.display()));
            }
        }
        let bpath = bundle.path().to_string_lossy().to_string();
        for l in mountinfo() {
            if l.contains(&bpath) {
                problems.push(format!("mount left: {l}"));
            }
        }
        for dir in cgroup_dirs_for(&cgroups_path, id) {
            if dir.exists() {
                problems.push(format!("cgroup dir left: {}", dir.display()));
            }
        }
        let cg_needle = format!("/{}", cgroups_path.trim_matches('/'));
        let me = std::process::id() as i32;
        for pid in all_pids() {
            if pid == me {
                continue;
            }
            let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            let cwd = fs::read_link(format!("/proc/{pid}/cwd"))
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default();
            let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            let in_cg = cg.lines().any(|l| {
                let p = l.splitn(3, ':').nth(2).unwrap_or("");
                p == cg_needle || p.starts_with(&format!("{cg_needle}/"))
            });
            if in_cg || cmdline.contains(&bpath) || cwd.starts_with(&bpath) {
                problems.push(format!(
                    "process {pid} left: cmdline={cmdline:?} cwd={cwd:?}"
                ));
            } else if known.pids.contains(&pid)
                && proc_state(pid).map(|s| s != 'Z').unwrap_or(false)
            {
                problems.push(format!("container process {pid} still alive: {cmdline:?}"));
            }
        }
        problems
    }

    /// Assert (polling for up to 5 s to let processes be reaped) that the
    /// container left no state dir, mount, cgroup or process behind.
    pub fn assert_no_leftovers(&self, bundle: &Bundle, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let p = self.leftovers(bundle, id);
            if p.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!("leftovers for container {id}:\n  {}", p.join("\n  "));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let known: Vec<(String, Known)> = self.known.lock().unwrap().clone().into_iter().collect();
        for (id, k) in known {
            // Never hand a path-like id to a possibly buggy runtime.
            if id.is_empty() || id.contains('/') || id.contains("..") {
                continue;
            }
            if self.root.join(&id).exists() || self.state(&id).is_ok() {
                let _ = run_with_timeout(
                    self.command().args(["delete", "-f", &id]),
                    Duration::from_secs(10),
                    None,
                );
            }
            // Best effort: drop empty cgroups a failed runtime left behind
            // (tests check leftovers before this runs), so that later runs
            // start clean.
            for cg in &k.cgroups_paths {
                for dir in cgroup_dirs_for(cg, &id) {
                    if dir.starts_with("/sys/fs/cgroup") && dir.components().count() > 4 {
                        let _ = fs::remove_dir(&dir);
                    }
                }
            }
        }
    }
}

/// Candidate cgroup dirs of a container under every mounted hierarchy:
/// `<hierarchy>/<cgroupsPath>` and runc's default `<hierarchy>/<id>`.
pub fn cgroup_dirs_for(cgroups_path: &str, id: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let rel = cgroups_path.trim_matches('/');
    let hierarchies: Vec<PathBuf> = match fs::read_dir("/sys/fs/cgroup") {
        Ok(rd) => {
            let mut h: Vec<PathBuf> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir() && !p.is_symlink())
                .collect();
            h.push(PathBuf::from("/sys/fs/cgroup"));
            h
        }
        Err(_) => vec![],
    };
    for h in hierarchies {
        if !rel.is_empty() {
            v.push(h.join(rel));
        }
        if !id.contains('/') && !id.is_empty() {
            v.push(h.join(id));
        }
    }
    v
}
