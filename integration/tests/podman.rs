//! The runtime under podman 4.3 (Debian's, with conmon), as `--runtime`.
//!
//! podman keeps everything under a temp dir (`--root`, `--runroot`,
//! `--tmpdir`, vfs storage, file events), uses cgroupfs (`--cgroup-manager
//! cgroupfs`: containers go to `/libpod_parent/libpod-<id>`) and runs a
//! busybox rootfs directory (`--rootfs`) without network (`--network
//! none`). The runtime keeps its state in its default root, as it would for
//! a real podman user. The ulimits podman would ask for by default (nofile
//! 1048576) exceed this host's hard limits, so every container gets the
//! test process's own hard limits, nproc at most 32768 (podman lowers its
//! own RLIMIT_NPROC to that, and conmon and the runtime inherit it).
//!
//! After each test: no conmon, podman cleanup, container process, mount
//! (the /dev/shm bind), cgroup or runtime state may be left.

#[path = "common_clients/mod.rs"]
mod common_clients;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common_clients::*;
use integration::*;

/// Deadline for one podman call (the first one sets up storage).
const PODMAN_TIMEOUT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(20);

/// podman tests share `/libpod_parent` (cgroupfs parent) and remove it
/// when done: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Podman {
    dir: TempDir,
    rootfs: Bundle,
    runtime: PathBuf,
    /// Full ids of every container this test created.
    cids: Mutex<Vec<String>>,
    /// Host pids of container inits seen.
    pids: Mutex<Vec<i32>>,
    _serial: MutexGuard<'static, ()>,
}

/// `<soft>:<hard>` for podman's --ulimit: the hard limit (at most `cap`),
/// twice.
fn ulimit_arg(resource: libc::__rlimit_resource_t, cap: u64) -> String {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: rl is a live rlimit the call fills in.
    let r = unsafe { libc::getrlimit(resource, &mut rl) };
    assert_eq!(r, 0);
    format!("{0}:{0}", rl.rlim_max.min(cap))
}

impl Podman {
    fn new() -> Podman {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        require_program("podman", "podman");
        require_program("conmon", "conmon");
        require_program("script", "bsdutils");
        let dir = TempDir::new("oxit-pm");
        for d in ["root", "runroot", "tmp"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        Podman {
            dir,
            rootfs: Bundle::new(),
            runtime: runtime_abs(),
            cids: Mutex::new(Vec::new()),
            pids: Mutex::new(Vec::new()),
            _serial: serial,
        }
    }

    fn argv(&self, args: &[&str]) -> Vec<String> {
        let d = |s: &str| self.dir.join(s).display().to_string();
        let mut v: Vec<String> = vec![
            "--root".into(),
            d("root"),
            "--runroot".into(),
            d("runroot"),
            "--tmpdir".into(),
            d("tmp"),
            "--storage-driver".into(),
            "vfs".into(),
            "--runtime".into(),
            self.runtime.display().to_string(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--events-backend".into(),
            "file".into(),
            "--log-level".into(),
            "error".into(),
        ];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    fn podman(&self, args: &[&str]) -> CmdOut {
        let mut c = Command::new("podman");
        c.args(self.argv(args));
        run_with_timeout(&mut c, PODMAN_TIMEOUT, None)
    }

    /// The podman command as a shell line (for script(1)).
    fn line(&self, args: &[&str]) -> String {
        shell_line("podman", &self.argv(args))
    }

    /// `run <mode...> --cidfile F --network none --ulimit .. --rootfs R
    /// <cmd...>`; the cidfile is `<dir>/<tag>.cid`.
    fn run_argv(&self, mode: &[&str], tag: &str, cmd: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec!["run".into()];
        v.extend(mode.iter().map(|s| s.to_string()));
        v.extend([
            "--cidfile".into(),
            self.cidfile(tag).display().to_string(),
            "--network".into(),
            "none".into(),
            "--ulimit".into(),
            format!("nofile={}", ulimit_arg(libc::RLIMIT_NOFILE, 1 << 20)),
            "--ulimit".into(),
            format!("nproc={}", ulimit_arg(libc::RLIMIT_NPROC, 32768)),
            "--rootfs".into(),
            self.rootfs.rootfs().display().to_string(),
        ]);
        v.extend(cmd.iter().map(|s| s.to_string()));
        v
    }

    fn cidfile(&self, tag: &str) -> PathBuf {
        self.dir.join(format!("{tag}.cid"))
    }

    /// The full id podman wrote to the cidfile of `tag`.
    fn cid(&self, tag: &str) -> String {
        let cid = read_file(&self.cidfile(tag)).trim().to_string();
        assert_eq!(
            cid.len(),
            64,
            "no container id in {}",
            self.cidfile(tag).display()
        );
        let mut cids = self.cids.lock().unwrap();
        if !cids.contains(&cid) {
            cids.push(cid.clone());
        }
        cid
    }

    fn run(&self, mode: &[&str], tag: &str, cmd: &[&str]) -> CmdOut {
        let argv = self.run_argv(mode, tag, cmd);
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = self.podman(&refs);
        if self.cidfile(tag).exists() {
            self.cid(tag);
        }
        out
    }

    /// `podman inspect --format F <name>`, trimmed.
    fn inspect(&self, name: &str, format: &str) -> String {
        self.podman(&["inspect", "--format", format, name])
            .ok()
            .stdout
            .trim()
            .to_string()
    }

    fn wait_logs(&self, name: &str, needle: &str) -> String {
        poll(WAIT, || {
            let o = self.podman(&["logs", name]);
            let all = o.output();
            all.contains(needle).then_some(all)
        })
        .unwrap_or_else(|| {
            panic!(
                "podman logs {name} did not show {needle:?} within {WAIT:?}:\n{}",
                self.podman(&["logs", name]).describe()
            )
        })
    }

    /// What the test's containers may have left behind.
    fn leftovers(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let d = self.dir.path().display().to_string();
        for (p, c) in procs_with_cmdline(&d) {
            problems.push(format!("process {p} left: {c}"));
        }
        for pid in self.pids.lock().unwrap().iter() {
            if pid_alive(*pid) {
                problems.push(format!("container init {pid} alive: {}", cmdline(*pid)));
            }
        }
        for cid in self.cids.lock().unwrap().iter() {
            let cg = format!("/libpod_parent/libpod-{cid}");
            for (p, c) in procs_in_cgroup(&cg) {
                problems.push(format!("process {p} left in {cg}: {c}"));
            }
            for dir in cgroup_dirs(&cg) {
                problems.push(format!("cgroup left: {}", dir.display()));
            }
            // The runtime's state, in its default root.
            let st = run_with_timeout(
                Command::new(&self.runtime).args(["state", cid.as_str()]),
                Duration::from_secs(10),
                None,
            );
            if st.success() {
                problems.push(format!("runtime state left for {cid}: {}", st.stdout));
            }
            for m in mounts_mentioning(&[cid]) {
                problems.push(format!("mount left: {m}"));
            }
        }
        for m in mounts_mentioning(&[&d]) {
            problems.push(format!("mount left: {m}"));
        }
        problems
    }

    /// podman lists no container and nothing is left behind (waiting up to
    /// 15 s for conmon and `podman container cleanup` to finish).
    fn assert_clean(&self) {
        let ps = self.podman(&["ps", "-a", "-q"]).ok();
        assert!(
            ps.stdout.trim().is_empty(),
            "containers left: {}",
            ps.describe()
        );
        let problems = settle(Duration::from_secs(15), || self.leftovers());
        assert!(
            problems.is_empty(),
            "leftovers:\n  {}",
            problems.join("\n  ")
        );
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        let d = self.dir.path().display().to_string();
        let cids = self.cids.lock().unwrap().clone();
        let _ = settle(Duration::from_secs(5), || {
            let mut procs = procs_with_cmdline(&d);
            for cid in &cids {
                procs.extend(procs_in_cgroup(&format!("/libpod_parent/libpod-{cid}")));
            }
            kill_all(&procs);
            procs.into_iter().map(|(p, _)| p.to_string()).collect()
        });
        for cid in &cids {
            let _ = run_with_timeout(
                Command::new(&self.runtime).args(["delete", "-f", cid.as_str()]),
                Duration::from_secs(10),
                None,
            );
            remove_cgroup_tree(&format!("/libpod_parent/libpod-{cid}"));
        }
        // podman's own cgroups (conmon's, and the parent) once empty.
        for cg in ["/libpod_parent/conmon", "/libpod_parent"] {
            for dir in cgroup_dirs(cg) {
                let _ = fs::remove_dir(dir);
            }
        }
    }
}

#[test]
fn podman_run_rm_exit_code_and_output() {
    let p = Podman::new();
    let out = p.run(
        &["--rm"],
        "rm",
        &[
            "sh",
            "-c",
            "echo hi; echo pid=$$; grep ':memory:' /proc/self/cgroup; exit 3",
        ],
    );
    assert!(!out.timed_out, "{}", out.describe());
    assert_eq!(out.code(), 3, "{}", out.describe());
    let o = &out.stdout;
    assert_eq!(o.lines().next(), Some("hi"), "{}", out.describe());
    assert_eq!(must_field(o, "pid"), "1", "{o}");
    let cid = p.cid("rm");
    // On cgroup v1 podman keeps the host cgroup namespace: the path shows.
    if PathBuf::from("/sys/fs/cgroup/memory").is_dir() {
        assert!(
            o.contains(&format!(":memory:/libpod_parent/libpod-{cid}\n")),
            "{o}"
        );
    }

    let ok = p.run(&["--rm"], "rm0", &["echo", "zero"]);
    assert_eq!(ok.code(), 0, "{}", ok.describe());
    assert_eq!(ok.stdout, "zero\n", "{}", ok.describe());
    p.assert_clean();
}

#[test]
fn podman_run_tty_gives_a_pty() {
    let p = Podman::new();
    let argv = p.run_argv(
        &["--rm", "-t"],
        "tty",
        &[
            "sh",
            "-c",
            "tty; [ -t 0 ] && [ -t 1 ] && echo both-tty; exit 5",
        ],
    );
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = under_script(&p.line(&refs), PODMAN_TIMEOUT);
    if p.cidfile("tty").exists() {
        p.cid("tty");
    }
    assert_eq!(out.code(), 5, "{}", out.describe());
    assert!(
        out.stdout.contains("/dev/pts/0\n") && out.stdout.contains("both-tty"),
        "{}",
        out.describe()
    );
    p.assert_clean();
}

#[test]
fn podman_detached_exec_stop_rm() {
    let p = Podman::new();
    let name = "oxit-det";
    p.run(
        &["-d", "--name", name],
        "det",
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    )
    .ok();
    let cid = p.cid("det");
    p.wait_logs(name, "ready");
    let pid: i32 = p.inspect(name, "{{.State.Pid}}").parse().expect("pid");
    p.pids.lock().unwrap().push(pid);
    assert!(pid > 0 && pid_alive(pid), "init {pid} not alive");
    assert_eq!(p.inspect(name, "{{.State.Status}}"), "running");
    let ps = p.podman(&["ps", "--format", "{{.ID}} {{.Names}}"]).ok();
    assert!(
        ps.stdout.contains(&format!("{} {name}", &cid[..12])),
        "{}",
        ps.describe()
    );

    let ex = p.podman(&[
        "exec",
        name,
        "sh",
        "-c",
        "echo in-exec; echo self=$$; exit 4",
    ]);
    assert_eq!(ex.code(), 4, "{}", ex.describe());
    assert!(ex.stdout.contains("in-exec\n"), "{}", ex.describe());
    assert_ne!(must_field(&ex.stdout, "self"), "1");

    let ex = under_script(
        &p.line(&["exec", "-t", name, "sh", "-c", "tty; exit 6"]),
        PODMAN_TIMEOUT,
    );
    assert_eq!(ex.code(), 6, "{}", ex.describe());
    assert!(ex.stdout.contains("/dev/pts/"), "{}", ex.describe());

    // podman stop: SIGTERM (trapped: exit 7) via `<runtime> kill`.
    p.podman(&["stop", "-t", "10", name]).ok();
    assert_eq!(p.inspect(name, "{{.State.Status}}"), "exited");
    assert_eq!(p.inspect(name, "{{.State.ExitCode}}"), "7");
    p.wait_logs(name, "got-term");
    assert!(!pid_alive(pid), "init {pid} alive after stop");
    p.podman(&["rm", name]).ok();
    p.assert_clean();
}

#[test]
fn podman_logs_hold_only_the_container_output() {
    // conmon runs `<runtime> create` with the container's stdout/stderr as
    // the runtime's own (podman passes no --log): whatever the runtime
    // prints there ends up in `podman logs`. runc prints nothing.
    let p = Podman::new();
    let name = "oxit-logs";
    p.run(
        &["-d", "--name", name],
        "logs",
        &[
            "sh",
            "-c",
            "echo out-line; echo err-line >&2; exec sleep 300",
        ],
    )
    .ok();
    p.cid("logs");
    let logs = p.wait_logs(name, "err-line");
    let mut lines: Vec<&str> = logs.lines().filter(|l| !l.is_empty()).collect();
    lines.sort();
    assert_eq!(
        lines,
        vec!["err-line", "out-line"],
        "podman logs must hold only what the container printed:\n{logs}"
    );
    p.podman(&["rm", "-f", "-t", "0", name]).ok();
    p.assert_clean();
}

#[test]
fn podman_pause_unpause() {
    let p = Podman::new();
    let name = "oxit-pause";
    p.run(
        &["-d", "--name", name],
        "pause",
        &["sh", "-c", "while :; do sleep 0.1; done"],
    )
    .ok();
    let cid = p.cid("pause");
    p.podman(&["pause", name]).ok();
    assert_eq!(p.inspect(name, "{{.State.Status}}"), "paused");
    let freezer = cgroup_dirs(&format!("/libpod_parent/libpod-{cid}"))
        .into_iter()
        .find_map(|d| fs::read_to_string(d.join("freezer.state")).ok());
    if let Some(f) = freezer {
        assert_eq!(f.trim(), "FROZEN");
    }
    p.podman(&["unpause", name]).ok();
    assert_eq!(p.inspect(name, "{{.State.Status}}"), "running");
    let ex = p.podman(&["exec", name, "echo", "alive"]).ok();
    assert_eq!(ex.stdout, "alive\n");
    p.podman(&["rm", "-f", "-t", "0", name]).ok();
    p.assert_clean();
}
