//! Integration test harness for oxrun.
//!
//! The tests drive a runtime binary through runc's command line. The binary
//! under test is taken from `$OXRUN_BIN` and defaults to
//! `<workspace>/target/debug/oxrun`. Every test validates against real runc
//! too: `OXRUN_BIN=/usr/sbin/runc cargo test -p integration`.
//!
//! Building blocks:
//! * [`Bundle`]: a temp OCI bundle with a busybox rootfs and a runc-like
//!   default `config.json` held as a mutable `serde_json::Value`.
//! * [`Runtime`]: one private `--root` per test, unique container ids,
//!   command helpers with timeouts, and cleanup (`delete -f`) on drop.
//! * [`Runtime::assert_no_leftovers`]: no state dir, mount, cgroup or
//!   process left behind for a container.
//! * [`ConsoleSocket`]: a `--console-socket` listener receiving the pty
//!   master via SCM_RIGHTS.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Default deadline for any single runtime invocation or wait.
pub const TIMEOUT: Duration = Duration::from_secs(20);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn next() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

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

/// A name unique across tests and test binaries running at the same time.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), next())
}

// ---------------------------------------------------------------------------
// Temp dirs
// ---------------------------------------------------------------------------

/// A directory under /tmp removed (after lazily unmounting anything mounted
/// below it) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = PathBuf::from("/tmp").join(unique(prefix));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        // World-traversable so user-namespaced containers can reach rootfs.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir { path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn join<P: AsRef<Path>>(&self, p: P) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        unmount_under(&self.path);
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Mount points (from /proc/self/mountinfo) at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().to_string();
    mountinfo()
        .iter()
        .filter_map(|l| l.split(' ').nth(4).map(unescape_mount))
        .filter(|mp| mp == &prefix || mp.starts_with(&format!("{prefix}/")))
        .collect()
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Lazily unmount everything mounted at or below `dir` (deepest first).
pub fn unmount_under(dir: &Path) {
    for _ in 0..4 {
        let mut mps = mounts_under(dir);
        if mps.is_empty() {
            return;
        }
        mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mp in mps {
            if let Ok(c) = CString::new(mp) {
                // SAFETY: umount2 with a valid C string; detaching a test mount.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

pub fn mountinfo() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

// ---------------------------------------------------------------------------
// Running commands with a deadline
// ---------------------------------------------------------------------------

/// Result of one command invocation.
#[derive(Debug, Clone)]
pub struct CmdOut {
    pub cmdline: String,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl CmdOut {
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.map(|s| s.success()).unwrap_or(false)
    }
    /// Exit code, or 128+signal if the process was killed by a signal,
    /// or -1 on timeout.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        if self.timed_out {
            return -1;
        }
        match self.status {
            Some(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
            None => -1,
        }
    }
    /// Everything the command printed, for matching error messages.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
    pub fn describe(&self) -> String {
        format!(
            "`{}` -> code {}{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.code(),
            if self.timed_out { " (TIMED OUT)" } else { "" },
            self.stdout,
            self.stderr
        )
    }
    /// Panic (with all details) unless the command succeeded.
    pub fn ok(self) -> CmdOut {
        assert!(self.success(), "command failed: {}", self.describe());
        self
    }
    /// Panic unless the command failed (non-zero, no timeout).
    pub fn fails(self) -> CmdOut {
        assert!(!self.timed_out, "command timed out: {}", self.describe());
        assert!(
            !self.success(),
            "command unexpectedly succeeded: {}",
            self.describe()
        );
        self
    }
    /// Panic unless stdout+stderr contains (case-insensitively) at least one
    /// of `any`.
    pub fn assert_mentions(&self, any: &[&str]) -> &CmdOut {
        let out = self.output().to_lowercase();
        assert!(
            any.iter().any(|w| out.contains(&w.to_lowercase())),
            "expected the error output to mention one of {any:?}: {}",
            self.describe()
        );
        self
    }
}

fn describe_cmd(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().to_string();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run `cmd` with stdin from /dev/null and stdout/stderr going to files
/// (never pipes: a detached container inheriting a pipe would keep it open
/// forever). If `stdout_path` is given, stdout goes there and the file is
/// kept; otherwise temporary files are used. The process is SIGKILLed if it
/// has not exited after `timeout`.
pub fn run_with_timeout(
    cmd: &mut Command,
    timeout: Duration,
    stdout_path: Option<&Path>,
) -> CmdOut {
    let tmp_out = PathBuf::from("/tmp").join(unique("oxit-io") + ".out");
    let tmp_err = PathBuf::from("/tmp").join(unique("oxit-io") + ".err");
    let out_path = stdout_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| tmp_out.clone());
    let out_f = fs::File::create(&out_path)
        .unwrap_or_else(|e| panic!("create {}: {e}", out_path.display()));
    let err_f = fs::File::create(&tmp_err).unwrap();
    cmd.stdin(Stdio::null()).stdout(out_f).stderr(err_f);
    let cmdline = describe_cmd(cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot spawn `{cmdline}`: {e} (is OXRUN_BIN set correctly?)"),
    };
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&tmp_err).unwrap_or_default();
    let _ = fs::remove_file(&tmp_out);
    let _ = fs::remove_file(&tmp_err);
    CmdOut {
        cmdline,
        status,
        stdout,
        stderr,
        timed_out,
    }
}

/// Run a host command (e.g. `mount`) and require success.
pub fn host(cmd: &str, args: &[&str]) -> CmdOut {
    run_with_timeout(Command::new(cmd).args(args), TIMEOUT, None).ok()
}

// ---------------------------------------------------------------------------
// Bundles
// ---------------------------------------------------------------------------

fn busybox_applets() -> &'static Vec<String> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let out = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("/bin/busybox is required (apt-get install busybox-static)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && l != "busybox" && !l.contains('/'))
            .collect()
    })
}

/// The spec `runc spec` generates, with `terminal: false` and without the
/// `/sys/fs/cgroup` mount. Tests mutate it freely.
pub fn default_spec() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps.clone(),
                "effective": caps.clone(),
                "permitted": caps.clone(),
                "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "oxit",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// An OCI bundle in a temp dir: `rootfs/` holds a static busybox with applet
/// symlinks in /bin plus the usual empty dirs; `config` is written as
/// `config.json` by the runtime helpers right before `create`/`run`.
pub struct Bundle {
    dir: TempDir,
    pub config: Value,
    /// If set, written verbatim as config.json instead of `config`.
    pub raw_config: Option<String>,
}

impl Default for Bundle {
    fn default() -> Self {
        Self::new()
    }
}

impl Bundle {
    pub fn new() -> Bundle {
        let dir = TempDir::new("oxit-b");
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy /bin/busybox");
        for applet in busybox_applets() {
            let _ = symlink("busybox", rootfs.join("bin").join(applet));
        }
        fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
        Bundle {
            dir,
            config: default_spec(),
            raw_config: None,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Set `process.args`.
    pub fn set_args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Set `process.args` to `sh -c <script>`.
    pub fn set_script(&mut self, script: &str) -> &mut Self {
        self.set_args(&["sh", "-c", script])
    }

    /// Append a mount entry.
    pub fn add_mount(&mut self, m: Value) -> &mut Self {
        self.config["mounts"].as_array_mut().unwrap().push(m);
        self
    }

    /// Append a namespace entry.
    pub fn add_namespace(&mut self, ns: Value) -> &mut Self {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(ns);
        self
    }

    /// A new user namespace mapping container ids 0..65536 to host ids
    /// 100000.., with the rootfs chowned to match.
    pub fn use_userns(&mut self) -> &mut Self {
        host(
            "chown",
            &["-R", "100000:100000", self.rootfs().to_str().unwrap()],
        );
        self.add_namespace(json!({"type": "user"}));
        self.config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        self.config["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        self
    }

    /// Remove a namespace type from `linux.namespaces`.
    pub fn remove_namespace(&mut self, typ: &str) -> &mut Self {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != typ);
        self
    }

    /// The cgroupsPath the container will use: the configured one, or
    /// `/oxit/<id>` which [`Bundle::write_config`] fills in when unset.
    pub fn cgroups_path(&self, id: &str) -> String {
        match self.config["linux"]["cgroupsPath"].as_str() {
            Some(p) => p.to_string(),
            None => format!("/oxit/{id}"),
        }
    }

    /// Write config.json (atomically) for container `id`.
    pub fn write_config(&self, id: &str) {
        let text = match &self.raw_config {
            Some(raw) => raw.clone(),
            None => {
                let mut cfg = self.config.clone();
                if cfg["linux"].is_object() && cfg["linux"]["cgroupsPath"].is_null() {
                    cfg["linux"]["cgroupsPath"] = json!(format!("/oxit/{id}"));
                }
                serde_json::to_string_pretty(&cfg).unwrap()
            }
        };
        let tmp = self.dir.join(format!(".config.json.{}", next()));
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, self.dir.join("config.json")).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Runtime wrapper
// ---------------------------------------------------------------------------

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

pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// The state letter of a process (R, S, Z, ...), None if gone.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// True if `pid` exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    proc_state(pid).map(|s| s != 'Z').unwrap_or(false)
}

/// `readlink /proc/self/ns/<kind>` of the test process.
pub fn host_ns(kind: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap_or_else(|e| panic!("readlink /proc/self/ns/{kind}: {e}"))
        .to_string_lossy()
        .to_string()
}

/// Find `<key>=<value>` style lines printed by a container: returns the
/// value of the first line starting with `key=`.
pub fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}=");
    out.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::trim)
}

/// Like [`field`] but panics with the whole output when missing.
pub fn must_field<'a>(out: &'a str, key: &str) -> &'a str {
    field(out, key).unwrap_or_else(|| panic!("no `{key}=` line in output:\n{out}"))
}

/// Value of a `Key:\tvalue` line (as in /proc/<pid>/status).
pub fn status_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}:");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::trim)
}

// ---------------------------------------------------------------------------
// Capabilities
// ---------------------------------------------------------------------------

pub const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Bitmask (as in /proc/self/status CapXxx lines) of capability names.
pub fn cap_mask(names: &[&str]) -> u64 {
    names.iter().fold(0u64, |m, n| {
        let i = CAP_NAMES
            .iter()
            .position(|c| c == n)
            .unwrap_or_else(|| panic!("unknown capability {n}"));
        m | (1u64 << i)
    })
}

/// Parse a hex CapXxx value.
pub fn parse_cap_hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim(), 16).unwrap_or_else(|e| panic!("bad cap hex {s:?}: {e}"))
}

// ---------------------------------------------------------------------------
// Console socket
// ---------------------------------------------------------------------------

/// A unix socket for `--console-socket`; [`ConsoleSocket::recv_fd`] accepts
/// one connection and receives the pty master sent with SCM_RIGHTS.
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new(dir: &Path) -> ConsoleSocket {
        let path = dir.join(format!("console-{}.sock", next()));
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        ConsoleSocket { path, listener }
    }

    /// Accept (within `timeout`) and receive one fd.
    pub fn recv_fd(&self, timeout: Duration) -> Result<OwnedFd, String> {
        let deadline = Instant::now() + timeout;
        let stream: UnixStream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err("no connection on the console socket".into());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(10)),
            ))
            .unwrap();
        recv_one_fd(stream.as_raw_fd())
    }
}

fn recv_one_fd(sock: RawFd) -> Result<OwnedFd, String> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 64];
    // SAFETY: msghdr is plain data; all-zero is a valid empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: msg points at live buffers (iov, cbuf) sized as declared.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(format!("recvmsg: {}", std::io::Error::last_os_error()));
    }
    let mut found: Vec<RawFd> = Vec::new();
    // SAFETY: walking the control messages recvmsg filled in, within cbuf.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    found.push(std::ptr::read_unaligned(data.add(i)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if found.len() != 1 {
        for fd in &found {
            // SAFETY: closing fds we received and own.
            unsafe { libc::close(*fd) };
        }
        return Err(format!(
            "expected exactly one fd over SCM_RIGHTS, got {}",
            found.len()
        ));
    }
    // SAFETY: found[0] was just received and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(found[0]) })
}

/// Read from `fd` (with poll) until `pred(all output)` holds, EOF/EIO, or
/// the timeout; returns everything read.
pub fn read_until(fd: RawFd, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    let mut acc = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || pred(&String::from_utf8_lossy(&acc)) {
            break;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is a live pollfd; count 1.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if r < 0 {
            break;
        }
        if r == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: buf is a live buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n <= 0 {
            break;
        }
        acc.extend_from_slice(&buf[..n as usize]);
    }
    String::from_utf8_lossy(&acc).to_string()
}

/// Write all of `data` to `fd`.
pub fn write_all_fd(fd: RawFd, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        // SAFETY: the pointer and length are of a live slice.
        let n = unsafe {
            libc::write(
                fd,
                data[off..].as_ptr() as *const libc::c_void,
                data.len() - off,
            )
        };
        assert!(
            n > 0,
            "write to fd {fd}: {}",
            std::io::Error::last_os_error()
        );
        off += n as usize;
    }
}

/// Read a whole file descriptor-less path helper used by tests.
pub fn read_file(p: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = fs::File::open(p) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// Poll until `path` exists (true) or the timeout passes (false).
pub fn wait_for_path(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    path.exists()
}
