//! A private containerd for client tests (`containerd.rs`: the Go runc
//! shim driving the runtime with `--runc-binary`; `shim.rs`: our
//! `containerd-shim-rust-v2`), and the test bodies both run.
//!
//! Every test starts its own containerd (Debian's 1.6.x, from
//! scripts/setup.sh) with root, state and sockets in a temp dir. containerd
//! 1.6 and its shims write to /run regardless of the config (shim sockets in
//! /run/containerd/s, fifos in /run/containerd/fifo, the runtime's state in
//! /run/containerd/<runc|oxrun>/<namespace>), so containerd runs in a private
//! mount namespace with its own tmpfs on /run, and every `ctr` runs in the
//! same namespace (`nsenter -t <containerd pid> -m`). Nothing is pulled: `ctr
//! run --rootfs` runs a busybox rootfs directory. Each test uses its own
//! containerd namespace, so container cgroups are `/<namespace>/<id>`.
//!
//! After each test: containerd is stopped and no shim, container process,
//! mount, cgroup, bundle or runtime state may be left.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common_clients::*;
use integration::*;
use serde_json::Value;

/// `#[test]` wrappers running every shared test body with one flavor.
macro_rules! shared_tests {
    ($flavor:expr) => {
        shared_tests!($flavor;
            ctr_run_rm_returns_exit_code_and_output,
            ctr_run_tty_gives_a_pty,
            ctr_detached_exec_kill_delete,
            ctr_kill_all_reaches_exec_processes,
            ctr_task_delete_force_of_an_exited_task,
            ctr_task_metrics_count_exec_processes,
            ctr_task_ps_lists_init_and_exec,
            ctr_task_pause_resume,
            ctr_run_failure_reports_the_error,
            ctr_stop_with_fifos_ends_output_and_leaves_nothing,
        );
    };
    ($flavor:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                common_containerd::$name($flavor);
            }
        )*
    };
}

/// Which shim runs the containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// containerd's Go shim (`io.containerd.runc.v2`) with `--runc-binary <runtime>`.
    GoShim,
    /// Our `containerd-shim-rust-v2` (`io.containerd.rust.v2`), found on containerd's PATH.
    RustShim,
}

/// containerd finds `containerd-shim-rust-v2` on its PATH.
fn shim_on_path(flavor: Flavor, cmd: &mut Command) {
    if flavor == Flavor::RustShim {
        let dir = shim_bin()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", dir.display()));
    }
}

/// Our shim binary: `$OXRUN_SHIM_BIN`, else next to the runtime under test.
pub fn shim_bin() -> PathBuf {
    let p = std::env::var_os("OXRUN_SHIM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| runtime_abs().with_file_name("containerd-shim-rust-v2"));
    assert!(
        p.is_file(),
        "shim binary {} does not exist; build it (cargo build --release) or set OXRUN_SHIM_BIN",
        p.display()
    );
    fs::canonicalize(&p).unwrap_or(p)
}

/// Deadline for one `ctr` call.
pub const CTR_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline for containerd to come up or go down, and for a status change.
pub const WAIT: Duration = Duration::from_secs(20);

/// A private containerd (see the module doc), stopped and cleaned up on drop.
pub struct Containerd {
    pub flavor: Flavor,
    pub dir: TempDir,
    pub rootfs: Bundle,
    pub child: Option<Child>,
    pub pid: i32,
    pub sock: PathBuf,
    /// containerd namespace of this test (also the cgroup parent).
    pub ns: String,
    pub runtime: PathBuf,
    /// (container id, init pid) of every container this test started.
    pub seen: Mutex<Vec<(String, i32)>>,
}

impl Containerd {
    pub fn start(flavor: Flavor) -> Containerd {
        Containerd::start_with_path(flavor, None)
    }

    /// As `start`, with `extra` (directories, `:`-separated) first on
    /// containerd's PATH (the shims
    /// inherit it: where criu is) and XDG_RUNTIME_DIR in the test dir (where
    /// containerd 1.6 makes its checkpoint temp dirs, which it leaves
    /// behind after a restore).
    pub fn start_with_path(flavor: Flavor, extra: Option<&str>) -> Containerd {
        for (p, pkg) in [
            ("containerd", "containerd"),
            ("ctr", "containerd"),
            ("nsenter", "util-linux"),
            ("unshare", "util-linux"),
            ("script", "bsdutils"),
        ] {
            require_program(p, pkg);
        }
        let runtime = runtime_abs();
        let dir = TempDir::new("oxit-ctd");
        let sock = dir.join("c.sock");
        let d = dir.path().display().to_string();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{d}/c.sock"

[ttrpc]
  address = "{d}/c.sock.ttrpc"

[debug]
  level = "debug"
"#
        );
        let config_path = dir.join("config.toml");
        fs::write(&config_path, config).unwrap();
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        // unshare and sh exec, so the child's pid is containerd's.
        let script = format!(
            "mount -t tmpfs -o mode=0755 tmpfs /run && exec containerd --config {}",
            sh_quote(&config_path.display().to_string())
        );
        let mut cmd = Command::new("unshare");
        shim_on_path(flavor, &mut cmd);
        if let Some(extra) = extra {
            let path = cmd
                .get_envs()
                .find(|(k, _)| *k == "PATH")
                .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
                .unwrap_or_else(|| std::env::var("PATH").unwrap_or_default());
            cmd.env("PATH", format!("{extra}:{path}"));
            let xdg = dir.join("xdg");
            fs::create_dir_all(&xdg).unwrap();
            cmd.env("XDG_RUNTIME_DIR", xdg);
        }
        let child = cmd
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn unshare/containerd");
        let pid = child.id() as i32;
        let ns = format!("oxit-{}", unique("ctd").replace("ctd-", ""));
        let mut c = Containerd {
            flavor,
            dir,
            rootfs: Bundle::new(),
            child: Some(child),
            pid,
            sock,
            ns,
            runtime,
            seen: Mutex::new(Vec::new()),
        };
        c.wait_ready();
        c
    }

    /// `ctr task exec -d --exec-id bg <id> /bin/sleep 301`; returns the
    /// container's pids (sorted) once the exec'd process is in its cgroup
    /// next to the init.
    pub fn exec_background(&self, id: &str) -> Vec<i32> {
        self.ctr(&[
            "task",
            "exec",
            "-d",
            "--exec-id",
            "bg",
            id,
            "/bin/sleep",
            "301",
        ])
        .ok();
        poll(WAIT, || {
            let p = self.container_pids(id);
            (p.len() == 2).then_some(p)
        })
        .unwrap_or_else(|| {
            panic!(
                "exec -d: expected 2 processes, got {:?}",
                self.container_pids(id)
            )
        })
    }

    /// The pid of the (single) containerd-shim-rust-v2 serving this containerd.
    pub fn rust_shim_pid(&self) -> i32 {
        let shims = procs_with_cmdline(&self.sock.display().to_string());
        shims
            .iter()
            .find(|(p, cl)| *p != self.pid && cl.contains("containerd-shim-rust-v2"))
            .map(|(p, _)| *p)
            .unwrap_or_else(|| panic!("no shim found: {shims:?}"))
    }

    /// Stop containerd and start it again in the same mount namespace
    /// (the one `holder`, e.g. a shim, is in), as a node restart of
    /// containerd would: running shims and containers stay.
    pub fn restart(&mut self, holder: i32) {
        self.stop();
        let log = fs::OpenOptions::new()
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new("nsenter");
        shim_on_path(self.flavor, &mut cmd);
        let child = cmd
            .args(["-t", &holder.to_string(), "-m", "containerd", "--config"])
            .arg(self.dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn nsenter/containerd");
        self.pid = child.id() as i32;
        self.child = Some(child);
        self.wait_ready();
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                panic!(
                    "containerd exited ({st}) before serving; log:\n{}",
                    tail(&self.log_path(), 40)
                );
            }
            if self.sock.exists() && self.ctr(&["version"]).success() {
                let comm =
                    fs::read_to_string(format!("/proc/{}/comm", self.pid)).unwrap_or_default();
                assert_eq!(
                    comm.trim(),
                    "containerd",
                    "pid {} is not containerd",
                    self.pid
                );
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "containerd did not serve {} within {WAIT:?}; log:\n{}",
                    self.sock.display(),
                    tail(&self.log_path(), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `nsenter -t <containerd> -m ctr --address S --namespace N <args>`.
    pub fn ctr_argv(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "-t".into(),
            self.pid.to_string(),
            "-m".into(),
            "ctr".into(),
            "--address".into(),
            self.sock.display().to_string(),
            "--namespace".into(),
            self.ns.clone(),
        ];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    pub fn ctr(&self, args: &[&str]) -> CmdOut {
        let mut c = Command::new("nsenter");
        c.args(self.ctr_argv(args));
        run_with_timeout(&mut c, CTR_TIMEOUT, None)
    }

    /// The ctr command as a shell line (for script(1)).
    pub fn ctr_line(&self, args: &[&str]) -> String {
        shell_line("nsenter", &self.ctr_argv(args))
    }

    /// `ctr run` arguments for this runtime and rootfs: `run <mode...>
    /// --runtime io.containerd.runc.v2 --runc-binary R --env PATH=..
    /// --rootfs <rootfs> <id> <cmd...>`.
    pub fn run_args(&self, mode: &[&str], id: &str, cmd: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec!["run".into()];
        v.extend(mode.iter().map(|s| s.to_string()));
        match self.flavor {
            Flavor::GoShim => v.extend([
                "--runtime".into(),
                "io.containerd.runc.v2".into(),
                "--runc-binary".into(),
                self.runtime.display().to_string(),
            ]),
            Flavor::RustShim => v.extend(["--runtime".into(), "io.containerd.rust.v2".into()]),
        }
        v.extend([
            "--env".into(),
            "PATH=/bin:/sbin".into(),
            "--rootfs".into(),
            self.rootfs.rootfs().display().to_string(),
            id.into(),
        ]);
        v.extend(cmd.iter().map(|s| s.to_string()));
        v
    }

    pub fn ctr_run(&self, mode: &[&str], id: &str, cmd: &[&str]) -> CmdOut {
        self.seen.lock().unwrap().push((id.to_string(), 0));
        let args = self.run_args(mode, id, cmd);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ctr(&refs)
    }

    /// `ctr run -d` (output to `log` via `--log-uri file://`); returns the
    /// init's host pid once the task is RUNNING.
    pub fn run_detached(&self, id: &str, cmd: &[&str], log: Option<&Path>) -> i32 {
        let uri = log.map(|p| format!("file://{}", p.display()));
        let mut mode = vec!["-d"];
        if let Some(u) = &uri {
            mode.extend(["--log-uri", u.as_str()]);
        }
        self.ctr_run(&mode, id, cmd).ok();
        let (pid, status) = self
            .task(id)
            .unwrap_or_else(|| panic!("no task {id} after ctr run -d: {}", self.tasks()));
        assert_eq!(status, "RUNNING", "{}", self.tasks());
        assert!(pid > 0 && pid_alive(pid), "init pid {pid} is not alive");
        let mut seen = self.seen.lock().unwrap();
        seen.retain(|(i, _)| i != id);
        seen.push((id.to_string(), pid));
        pid
    }

    pub fn tasks(&self) -> String {
        self.ctr(&["task", "ls"]).ok().stdout
    }

    /// (pid, status) of a task from `ctr task ls`.
    pub fn task(&self, id: &str) -> Option<(i32, String)> {
        let ls = self.tasks();
        ls.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[0] == id).then(|| (f[1].parse().unwrap_or(-1), f[2].to_string()))
        })
    }

    pub fn wait_status(&self, id: &str, want: &str) {
        let got = poll(WAIT, || {
            self.task(id).filter(|(_, s)| s == want).map(|_| ())
        });
        assert!(
            got.is_some(),
            "task {id} did not become {want} within {WAIT:?}:\n{}",
            self.tasks()
        );
    }

    /// Relative cgroup path ctr gives a container: `/<namespace>/<id>`.
    pub fn cgroup(&self, id: &str) -> String {
        format!("/{}/{id}", self.ns)
    }

    /// Host pids of the processes in the container's cgroup.
    pub fn container_pids(&self, id: &str) -> Vec<i32> {
        let mut v: Vec<i32> = procs_in_cgroup(&self.cgroup(id))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        v.sort();
        v
    }

    /// A full OCI spec for `ctr run --config`, written under the test dir:
    /// the test rootfs, `args`, the container's cgroup, the shim group
    /// annotation `group` (containers of one group share a shim, as a
    /// pod's do), and `hooks` if given. Returns the file's path.
    pub fn grouped_spec(
        &self,
        id: &str,
        args: &[&str],
        group: &str,
        hooks: Option<Value>,
    ) -> String {
        let mut spec = integration::default_spec();
        spec["root"] = serde_json::json!({"path": self.rootfs.rootfs(), "readonly": true});
        spec["process"]["args"] = serde_json::json!(args);
        spec["annotations"] = serde_json::json!({"io.containerd.runc.v2.group": group});
        spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/{id}", self.ns));
        if let Some(h) = hooks {
            spec["hooks"] = h;
        }
        let path = self.dir.join(format!("{id}.json"));
        fs::write(&path, spec.to_string()).unwrap();
        path.display().to_string()
    }

    /// `ctr run -d` (our shim) of a spec from [`Containerd::grouped_spec`];
    /// the task is RUNNING when it returns.
    pub fn run_grouped(&self, id: &str, spec: &str) {
        self.seen.lock().unwrap().push((id.to_string(), 0));
        self.ctr(&[
            "run",
            "-d",
            "--runtime",
            "io.containerd.rust.v2",
            "--config",
            spec,
            id,
        ])
        .ok();
        self.wait_status(id, "RUNNING");
    }

    /// `ctr task delete` then `ctr container rm`; returns the task delete.
    pub fn delete(&self, id: &str) -> CmdOut {
        let out = self.ctr(&["task", "delete", id]).ok();
        self.ctr(&["container", "rm", id]).ok();
        out
    }

    /// Stop containerd: SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child, Duration::from_secs(10));
        }
    }

    /// Shim processes of this containerd still running (their command line
    /// holds the socket address).
    pub fn live_shims(&self) -> Vec<String> {
        procs_with_cmdline(&self.sock.display().to_string())
            .into_iter()
            .filter(|(p, _)| *p != self.pid)
            .map(|(p, c)| format!("shim {p} still running: {c}"))
            .collect()
    }

    /// Everything the test's containers may have left behind once
    /// containerd has stopped.
    pub fn leftovers_after_stop(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let d = self.dir.path().display().to_string();
        for (p, c) in procs_with_cmdline(&d) {
            problems.push(format!("process {p} left (shim?): {c}"));
        }
        let in_ns = procs_in_cgroup(&self.ns);
        for (p, c) in &in_ns {
            problems.push(format!("process {p} left in cgroup /{}: {c}", self.ns));
        }
        for (id, pid) in self.seen.lock().unwrap().iter() {
            // Alive and still in this test's cgroups: a pid the kernel has
            // given to an unrelated process since (many containers, inits
            // SIGKILLed early) is not a leftover. A leaked init cannot have
            // left its cgroup, which cannot be removed while it lives.
            if *pid > 0 && pid_alive(*pid) && in_ns.iter().any(|(p, _)| p == pid) {
                problems.push(format!("init {pid} of {id} still alive: {}", cmdline(*pid)));
            }
            for dir in cgroup_dirs(&self.cgroup(id)) {
                problems.push(format!("cgroup left: {}", dir.display()));
            }
        }
        for m in mounts_mentioning(&[&d, "/run/containerd"]) {
            problems.push(format!("mount left: {m}"));
        }
        problems
    }

    /// containerd knows no container or task any more, the runtime's state
    /// and the bundles are gone, no mount is left in containerd's mount
    /// namespace; then stop containerd and require that no shim, process,
    /// cgroup or host mount is left.
    pub fn assert_clean(&mut self) {
        let mut problems = Vec::new();
        let cs = self.ctr(&["container", "ls", "-q"]).ok().stdout;
        if !cs.trim().is_empty() {
            problems.push(format!("containers still listed: {cs}"));
        }
        let ts = self.tasks();
        if ts.lines().count() > 1 {
            problems.push(format!("tasks still listed:\n{ts}"));
        }
        let proc_root = format!("/proc/{}/root", self.pid);
        for (id, _) in self.seen.lock().unwrap().iter() {
            let state_root = match self.flavor {
                Flavor::GoShim => "run/containerd/runc",
                Flavor::RustShim => "run/containerd/oxrun",
            };
            let state = PathBuf::from(&proc_root)
                .join(state_root)
                .join(&self.ns)
                .join(id);
            if state.exists() {
                problems.push(format!(
                    "runtime state left: /{state_root}/{}/{id}",
                    self.ns
                ));
            }
            let bundle = self
                .dir
                .join("state/io.containerd.runtime.v2.task")
                .join(&self.ns)
                .join(id);
            if bundle.exists() {
                problems.push(format!("bundle left: {}", bundle.display()));
            }
        }
        let d = self.dir.path().display().to_string();
        let mi = fs::read_to_string(format!("/proc/{}/mountinfo", self.pid)).unwrap_or_default();
        for l in mi.lines() {
            let mp = l.split(' ').nth(4).unwrap_or("");
            if mp.starts_with(&d) || (mp.starts_with("/run/") && mp != "/run") {
                problems.push(format!("mount left in containerd's namespace: {l}"));
            }
        }
        // The shims exit once their task is deleted (while containerd,
        // their subreaper, still runs to reap them).
        problems.extend(settle(Duration::from_secs(10), || self.live_shims()));
        self.stop();
        problems.extend(settle(Duration::from_secs(10), || {
            self.leftovers_after_stop()
        }));
        assert!(
            problems.is_empty(),
            "leftovers:\n  {}\ncontainerd log:\n{}",
            problems.join("\n  "),
            tail(&self.log_path(), 30)
        );
        remove_cgroup_tree(&self.ns);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.ctr(&["container", "ls", "-q"]).stdout;
            for id in ids.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let _ = self.ctr(&["task", "kill", "-a", "-s", "KILL", id]);
                let _ = poll(Duration::from_secs(5), || {
                    self.task(id)
                        .filter(|(_, s)| s == "RUNNING" || s == "PAUSED")
                        .is_none()
                        .then_some(())
                });
                if !self.ctr(&["task", "delete", id]).success() {
                    let _ = self.ctr(&["task", "delete", "-f", id]);
                }
                let _ = self.ctr(&["container", "rm", id]);
            }
            let _ = settle(Duration::from_secs(5), || self.live_shims());
            self.stop();
        }
        let d = self.dir.path().display().to_string();
        let _ = settle(Duration::from_secs(5), || {
            let mut procs = procs_with_cmdline(&d);
            procs.extend(procs_in_cgroup(&self.ns));
            kill_all(&procs);
            procs.into_iter().map(|(p, _)| p.to_string()).collect()
        });
        remove_cgroup_tree(&self.ns);
    }
}

/// Read a `--log-uri file://` log until it contains `needle`.
pub fn wait_log(path: &Path, needle: &str) -> String {
    poll(WAIT, || {
        let s = read_file(path);
        s.contains(needle).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "{} did not get {needle:?} within {WAIT:?}:\n{}",
            path.display(),
            read_file(path)
        )
    })
}

/// A shell init that exits 7 on SIGTERM, after printing `ready`.
pub const TRAP_INIT: &[&str] = &[
    "/bin/sh",
    "-c",
    "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
];

/// Freezer state of a container cgroup: v1 `freezer.state`, or v2
/// `cgroup.freeze` (as FROZEN/THAWED). None if neither exists.
pub fn freezer_state(c: &Containerd, id: &str) -> Option<String> {
    let rel = c.cgroup(id);
    for d in cgroup_dirs(&rel) {
        if let Ok(s) = fs::read_to_string(d.join("freezer.state")) {
            return Some(s.trim().to_string());
        }
        if let Ok(s) = fs::read_to_string(d.join("cgroup.freeze")) {
            return Some(if s.trim() == "1" { "FROZEN" } else { "THAWED" }.to_string());
        }
    }
    None
}

pub fn ctr_run_rm_returns_exit_code_and_output(flavor: Flavor) {
    let mut c = Containerd::start(flavor);
    let out = c.ctr_run(
        &["--rm"],
        "runrm",
        &[
            "/bin/sh",
            "-c",
            "echo hi-from-ctr; echo pid=$$; grep -E ':(memory|pids):' /proc/self/cgroup; echo to-stderr >&2; exit 3",
        ],
    );
    assert!(!out.timed_out, "{}", out.describe());
    assert_eq!(out.code(), 3, "{}", out.describe());
    let o = &out.stdout;
    assert_eq!(o.lines().next(), Some("hi-from-ctr"), "{}", out.describe());
    assert_eq!(must_field(o, "pid"), "1", "{o}");
    let cg = c.cgroup("runrm");
    assert!(
        o.contains(&format!(":memory:{cg}\n")) && o.contains(&format!(":pids:{cg}\n")),
        "container must be in cgroup {cg}:\n{o}"
    );
    assert!(out.stderr.contains("to-stderr"), "{}", out.describe());

    let ok = c.ctr_run(&["--rm"], "runrm0", &["/bin/echo", "zero"]);
    assert_eq!(ok.code(), 0, "{}", ok.describe());
    assert_eq!(ok.stdout, "zero\n", "{}", ok.describe());
    c.assert_clean();
}

pub fn ctr_run_tty_gives_a_pty(flavor: Flavor) {
    let mut c = Containerd::start(flavor);
    let args = c.run_args(
        &["-t", "--rm"],
        "runtty",
        &[
            "/bin/sh",
            "-c",
            "tty; [ -t 0 ] && [ -t 1 ] && echo both-tty; exit 4",
        ],
    );
    c.seen.lock().unwrap().push(("runtty".into(), 0));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = under_script(&c.ctr_line(&refs), CTR_TIMEOUT);
    assert_eq!(out.code(), 4, "{}", out.describe());
    assert!(
        out.stdout.contains("/dev/pts/0\n") && out.stdout.contains("both-tty"),
        "{}",
        out.describe()
    );
    c.assert_clean();
}

pub fn ctr_detached_exec_kill_delete(flavor: Flavor) {
    let mut c = Containerd::start(flavor);
    let log = c.dir.join("det.log");
    let id = "det";
    let pid = c.run_detached(id, TRAP_INIT, Some(&log));
    wait_log(&log, "ready");
    assert!(
        c.container_pids(id).contains(&pid),
        "init {pid} not in cgroup {}",
        c.cgroup(id)
    );

    // Plain exec: stdout and exit code come back, same pid namespace.
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "x1",
        id,
        "/bin/sh",
        "-c",
        "echo exec-out; echo self=$$; tr '\\0' ' ' </proc/1/cmdline; echo; exit 5",
    ]);
    assert_eq!(out.code(), 5, "{}", out.describe());
    assert!(out.stdout.contains("exec-out\n"), "{}", out.describe());
    assert_ne!(must_field(&out.stdout, "self"), "1", "{}", out.stdout);
    assert!(
        out.stdout.contains("/bin/sh -c trap"),
        "/proc/1 must be the init:\n{}",
        out.stdout
    );

    // Exec with a terminal (ctr needs one itself: script provides it).
    let out = under_script(
        &c.ctr_line(&[
            "task",
            "exec",
            "-t",
            "--exec-id",
            "x2",
            id,
            "/bin/sh",
            "-c",
            "tty; [ -t 0 ] && echo stdin-tty; exit 6",
        ]),
        CTR_TIMEOUT,
    );
    assert_eq!(out.code(), 6, "{}", out.describe());
    assert!(
        out.stdout.contains("/dev/pts/") && out.stdout.contains("stdin-tty"),
        "{}",
        out.describe()
    );
    // The exec'd processes are gone; init still runs.
    let others: Vec<String> = c
        .container_pids(id)
        .into_iter()
        .filter(|p| *p != pid)
        .map(cmdline)
        .filter(|cl| !cl.is_empty() && !cl.starts_with("sleep 0.1"))
        .collect();
    assert!(others.is_empty(), "exec'd processes left: {others:?}");
    assert_eq!(c.task(id).map(|t| t.1), Some("RUNNING".into()));

    // ctr task kill: SIGTERM by default, which the init traps.
    c.ctr(&["task", "kill", id]).ok();
    c.wait_status(id, "STOPPED");
    let l = wait_log(&log, "got-term");
    assert!(l.contains("ready\n"), "{l}");
    assert!(!pid_alive(pid), "init {pid} still alive after it exited");
    let del = c.delete(id);
    assert!(
        del.output().contains("exit code 7"),
        "task delete must report exit status 7: {}",
        del.describe()
    );
    c.assert_clean();
}

pub fn ctr_kill_all_reaches_exec_processes(flavor: Flavor) {
    let mut c = Containerd::start(flavor);
    let id = "killall";
    let pid = c.run_detached(id, &["/bin/sleep", "300"], None);
    let pids = c.exec_background(id);
    assert!(pids.contains(&pid), "{pids:?}");
    let bg = *pids.iter().find(|p| **p != pid).unwrap();
    assert!(cmdline(bg).contains("sleep 301"), "{}", cmdline(bg));

    c.ctr(&["task", "kill", "-a", "-s", "KILL", id]).ok();
    c.wait_status(id, "STOPPED");
    let gone = poll(WAIT, || (!pid_alive(pid) && !pid_alive(bg)).then_some(()));
    assert!(gone.is_some(), "kill --all left {pid} or {bg} alive");
    let del = c.delete(id);
    assert!(
        del.output().contains("exit code 137"),
        "task delete must report 137: {}",
        del.describe()
    );
    c.assert_clean();
}

pub fn ctr_task_delete_force_of_an_exited_task(flavor: Flavor) {
    // `ctr task delete -f` first SIGKILLs every process (the shim runs
    // `<runtime> kill --all <id> 9`) and only then deletes. On a task that
    // already exited the kill must succeed (runc 1.1) or fail with an error
    // the shim maps to NotFound (`container not running`, `does not exist`,
    // `no such process`): anything else aborts the delete.
    let mut c = Containerd::start(flavor);
    let id = "delforce";
    let pid = c.run_detached(id, &["/bin/sleep", "300"], None);
    c.ctr(&["task", "kill", "-s", "KILL", id]).ok();
    c.wait_status(id, "STOPPED");
    assert!(!pid_alive(pid));
    let del = c.ctr(&["task", "delete", "-f", id]);
    assert!(del.success(), "task delete -f: {}", del.describe());
    assert!(del.output().contains("exit code 137"), "{}", del.describe());
    c.ctr(&["container", "rm", id]).ok();
    c.assert_clean();
}

pub fn ctr_task_metrics_count_exec_processes(flavor: Flavor) {
    let mut c = Containerd::start(flavor);
    let id = "metrics";
    c.run_detached(id, &["/bin/sleep", "300"], None);
    let metrics = |c: &Containerd| -> Value {
        let out = c.ctr(&["task", "metrics", "--format", "json", id]).ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("metrics JSON: {e}: {}", out.describe()))
    };
    let m = metrics(&c);
    assert_eq!(m["pids"]["current"], 1, "{m:#}");
    assert!(
        m["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{m:#}"
    );
    // The table form names the same counters.
    let table = c.ctr(&["task", "metrics", id]).ok().stdout;
    assert!(
        table.contains("pids.current") && table.contains("memory.usage_in_bytes"),
        "{table}"
    );

    // An exec'd process is counted: it joined the container's cgroups.
    c.ctr(&[
        "task",
        "exec",
        "-d",
        "--exec-id",
        "bg",
        id,
        "/bin/sleep",
        "301",
    ])
    .ok();
    let two = poll(WAIT, || (metrics(&c)["pids"]["current"] == 2).then_some(()));
    assert!(two.is_some(), "{:#}", metrics(&c));

    c.ctr(&["task", "kill", "-a", "-s", "KILL", id]).ok();
    c.wait_status(id, "STOPPED");
    c.delete(id);
    c.assert_clean();
}

pub fn ctr_task_ps_lists_init_and_exec(flavor: Flavor) {
    let mut c = Containerd::start(flavor);
    let id = "ps";
    let pid = c.run_detached(id, &["/bin/sleep", "300"], None);
    let want = c.exec_background(id);
    let out = c.ctr(&["task", "ps", id]).ok();
    // PID  INFO
    let mut got: Vec<i32> = out
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    got.sort();
    assert_eq!(got, want, "{}", out.describe());
    assert!(got.contains(&pid));

    c.ctr(&["task", "kill", "-a", "-s", "KILL", id]).ok();
    c.wait_status(id, "STOPPED");
    c.delete(id);
    c.assert_clean();
}

pub fn ctr_task_pause_resume(flavor: Flavor) {
    let mut c = Containerd::start(flavor);
    let id = "pause";
    let log = c.dir.join("pause.log");
    c.run_detached(
        id,
        &[
            "/bin/sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo tick$i; sleep 0.05; done",
        ],
        Some(&log),
    );
    wait_log(&log, "tick2\n");
    c.ctr(&["task", "pause", id]).ok();
    c.wait_status(id, "PAUSED");
    assert_eq!(freezer_state(&c, id).as_deref(), Some("FROZEN"));
    // Frozen: the output stops growing.
    std::thread::sleep(Duration::from_millis(200));
    let frozen = read_file(&log);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read_file(&log), frozen, "output grew while paused");

    c.ctr(&["task", "resume", id]).ok();
    c.wait_status(id, "RUNNING");
    assert_eq!(freezer_state(&c, id).as_deref(), Some("THAWED"));
    let n = frozen.lines().count();
    wait_log(&log, &format!("tick{}\n", n + 3));
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "after",
        id,
        "/bin/echo",
        "alive",
    ]);
    assert_eq!(out.stdout, "alive\n", "{}", out.describe());

    c.ctr(&["task", "kill", "-s", "KILL", id]).ok();
    c.wait_status(id, "STOPPED");
    c.delete(id);
    c.assert_clean();
}

/// A task that cannot be created gives ctr a clear error naming the cause,
/// and leaves nothing behind.
pub fn ctr_run_failure_reports_the_error(flavor: Flavor) {
    let mut c = Containerd::start(flavor);
    let out = c.ctr_run(&["--rm"], "runfail", &["/bin/no-such-binary"]);
    assert!(!out.timed_out, "{}", out.describe());
    assert_ne!(out.code(), 0, "{}", out.describe());
    if flavor == Flavor::GoShim {
        // The Go shim passes `--log <bundle>/log.json --log-format json` and
        // quotes the runtime's last error line.
        out.assert_mentions(&["OCI runtime create failed"]);
    }
    out.assert_mentions(&["no-such-binary"]);
    // ctr removes the container after the failed task creation.
    c.assert_clean();
}

/// A reader on one of containerd's stdio fifos (`ctr run -d` without
/// `--log-uri` leaves them in /run/containerd/fifo/<dir>/<id>-stdout|-stderr
/// in containerd's mount namespace), as CRI holds one: it sees EOF once
/// every writer (the shim) has closed it.
pub struct FifoReader {
    fd: std::os::fd::OwnedFd,
    pub path: PathBuf,
}

impl FifoReader {
    pub fn open(c: &Containerd, id: &str, stream: &str) -> FifoReader {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = PathBuf::from(format!("/proc/{}/root/run/containerd/fifo", c.pid));
        let name = format!("{id}-{stream}");
        let path = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|d| d.ok())
            .map(|d| d.path().join(&name))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no fifo {name} under {}", dir.display()));
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        FifoReader { fd: f.into(), path }
    }

    /// Read what is there; true once the fifo gives EOF (no writer left).
    pub fn at_eof(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: read(2) into a live buffer of the given length, on our fd.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            match n {
                0 => return true,
                n if n > 0 => continue,
                _ => return false,
            }
        }
    }
}

/// Stop a running container (`ctr task kill`, SIGTERM) whose stdio are
/// containerd's fifos and check what CRI relies on: once the task is
/// STOPPED (its exit published), no process of it is left and its stdout
/// and stderr fifos are at EOF. CRI's exit handler closes its fifo readers
/// right after the exit event; a reader still waiting for EOF then fails
/// with `Failed to pipe stdout|stderr of container ...: file already
/// closed` (issue 12.4). With its own PID namespace the kernel kills the
/// rest of the container with its init; without one (the host's, or a
/// pod's: here another container's) the Go shim kills every process left
/// in the container's cgroup before it reports the exit (`ShouldKillAllOnExit`), so a
/// background child holding stdout does not outlive the stop.
pub fn ctr_stop_with_fifos_ends_output_and_leaves_nothing(flavor: Flavor) {
    let mut c = Containerd::start(flavor);
    let script =
        "sleep 1000 & trap 'exit 7' TERM; echo ready; echo ready >&2; while :; do sleep 0.1; done";
    // A PID namespace to share, as a pod's is (or the host's).
    let holder = c.run_detached("pidholder", &["/bin/sleep", "300"], None);
    let shared = format!("pid:/proc/{holder}/ns/pid");
    for (id, mode) in [
        ("ownpidns", vec!["-d"]),
        ("sharedpidns", vec!["-d", "--with-ns", shared.as_str()]),
    ] {
        c.ctr_run(&mode, id, &["/bin/sh", "-c", script]).ok();
        c.wait_status(id, "RUNNING");
        let readers = [
            FifoReader::open(&c, id, "stdout"),
            FifoReader::open(&c, id, "stderr"),
        ];
        let two = poll(WAIT, || (c.container_pids(id).len() >= 2).then_some(()));
        assert!(two.is_some(), "{id}: {:?}", c.container_pids(id));
        c.ctr(&["task", "kill", id]).ok();
        c.wait_status(id, "STOPPED");
        let eof = poll(Duration::from_secs(2), || {
            readers.iter().all(FifoReader::at_eof).then_some(())
        });
        let left: Vec<String> = c
            .container_pids(id)
            .into_iter()
            .map(|p| format!("{p} {}", cmdline(p)))
            .collect();
        assert!(
            left.is_empty(),
            "{id}: processes left after the stop: {left:?}"
        );
        assert!(
            eof.is_some(),
            "{id}: stdout/stderr fifos not at EOF 2 s after the task stopped ({:?} {:?})",
            readers[0].path,
            readers[1].path
        );
        let del = c.delete(id);
        assert!(del.output().contains("exit code 7"), "{}", del.describe());
    }
    c.ctr(&["task", "kill", "-s", "KILL", "pidholder"]).ok();
    c.wait_status("pidholder", "STOPPED");
    c.delete("pidholder");
    c.assert_clean();
    let log = read_file(&c.log_path());
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("file already closed"))
        .collect();
    assert!(bad.is_empty(), "containerd logged:\n{}", bad.join("\n"));
}
