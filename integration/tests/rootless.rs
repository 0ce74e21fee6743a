//! Rootless mode, run as a real unprivileged user: `oxrun-rl`, which
//! scripts/setup.sh makes with /etc/subuid and /etc/subgid ranges
//! (100000-165535 on a fresh host) and the uidmap package's
//! newuidmap/newgidmap. Each test gives the user its own
//! $XDG_RUNTIME_DIR, bundle and a copy of the runtime binary, and checks
//! from the container and from the host what the user got, and that
//! nothing is left behind (state, processes, cgroups).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use integration::*;
use serde_json::{json, Value};

const USER: &str = "oxrun-rl";

/// One test at a time: the podman test checks that none of the user's
/// processes is left, which another test's container would be.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The user's uid, gid and first subordinate uid and gid (from
/// /etc/passwd, /etc/subuid and /etc/subgid), if it is set up.
fn user_ids() -> Option<(u32, u32, u32, u32)> {
    let field = |file: &str, n: usize| -> Option<u32> {
        fs::read_to_string(file)
            .ok()?
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f[0] == USER)?
            .get(n)?
            .parse()
            .ok()
    };
    Some((
        field("/etc/passwd", 2)?,
        field("/etc/passwd", 3)?,
        field("/etc/subuid", 1)?,
        field("/etc/subgid", 1)?,
    ))
}

/// Chown `path` (and below) to the user.
fn give(path: &Path, uid: u32, gid: u32) {
    host(
        "chown",
        &["-R", &format!("{uid}:{gid}"), path.to_str().unwrap()],
    );
}

/// One test's user side: its XDG_RUNTIME_DIR and its copy of the runtime.
struct Rootless {
    _serial: std::sync::MutexGuard<'static, ()>,
    uid: u32,
    gid: u32,
    subuid: u32,
    subgid: u32,
    dir: TempDir,
}

impl Rootless {
    /// None (after skip_or_fail) when the host lacks the user or uidmap.
    fn new() -> Option<Rootless> {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let Some((uid, gid, subuid, subgid)) = user_ids() else {
            skip_or_fail(&format!(
                "no user {USER} with /etc/subuid and /etc/subgid ranges (scripts/setup.sh makes it)"
            ));
            return None;
        };
        if !Path::new("/usr/bin/newuidmap").exists() {
            skip_or_fail("newuidmap is missing (apt-get install uidmap)");
            return None;
        }
        let dir = TempDir::new("oxit-rl");
        fs::create_dir(dir.join("xdg")).unwrap();
        fs::set_permissions(dir.join("xdg"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::copy(runtime_bin(), dir.join("oxrun")).unwrap();
        give(&dir.join("xdg"), uid, gid);
        Some(Rootless {
            _serial: serial,
            uid,
            gid,
            subuid,
            subgid,
            dir,
        })
    }

    fn xdg(&self) -> PathBuf {
        self.dir.join("xdg")
    }

    /// `program args` as the user (its own ids and groups, a clean
    /// environment with our XDG_RUNTIME_DIR), in `cwd`.
    fn as_user(&self, cwd: &Path, program: &str, args: &[&str]) -> CmdOut {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            USER,
            "--regid",
            USER,
            "--init-groups",
            "--reset-env",
            "--",
            "env",
        ])
        .arg(format!("XDG_RUNTIME_DIR={}", self.xdg().display()))
        .arg(program)
        .args(args)
        .current_dir(cwd);
        run_with_timeout(&mut c, Duration::from_secs(60), None)
    }

    fn oxrun(&self, cwd: &Path, args: &[&str]) -> CmdOut {
        self.as_user(cwd, self.dir.join("oxrun").to_str().unwrap(), args)
    }

    /// A bundle the user can read, with `oxrun spec --rootless` (run by
    /// the user) as its config.
    fn bundle(&self) -> Bundle {
        let mut b = Bundle::new();
        give(b.path(), self.uid, self.gid);
        self.oxrun(b.path(), &["spec", "--rootless"]).ok();
        let text = fs::read_to_string(b.path().join("config.json")).unwrap();
        b.config = serde_json::from_str(&text).unwrap();
        fs::remove_file(b.path().join("config.json")).unwrap();
        b.config["process"]["terminal"] = json!(false);
        b
    }

    /// Write the bundle's config and run `oxrun <args>` in it.
    fn run_in(&self, b: &Bundle, id: &str, args: &[&str]) -> CmdOut {
        fs::write(
            b.path().join("config.json"),
            serde_json::to_string_pretty(&b.config).unwrap(),
        )
        .unwrap();
        let mut all = args.to_vec();
        all.push(id);
        self.oxrun(b.path(), &all)
    }

    fn state(&self, b: &Bundle, id: &str) -> Value {
        let out = self.oxrun(b.path(), &["state", id]).ok();
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// Nothing of container `id` is left: no state, no process of the
    /// user's or its subordinate ids.
    fn assert_gone(&self, id: &str, pids: &[i32]) {
        assert!(
            !self.xdg().join("oxrun").join(id).exists(),
            "state of {id} left under $XDG_RUNTIME_DIR"
        );
        assert!(
            !Path::new("/run/oxrun").join(id).exists(),
            "state of {id} in root's /run/oxrun"
        );
        for p in pids {
            assert!(
                wait_until(Duration::from_secs(5), || !pid_alive(*p)),
                "process {p} of {id} left"
            );
        }
        for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            assert!(
                !h.path().join(id).exists(),
                "cgroup {} made for {id}",
                h.path().join(id).display()
            );
        }
    }
}

fn wait_until(timeout: Duration, f: impl Fn() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// `Uid:` or `Gid:` of a host process: (real, effective).
fn host_ids(pid: i32, key: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status_field(&status, key).unwrap().to_string()
}

#[test]
fn rootless_lifecycle_maps_the_caller_and_keeps_state_in_xdg_runtime_dir() {
    let Some(rl) = Rootless::new() else { return };
    let mut b = rl.bundle();
    // spec --rootless: a user namespace mapping the caller, no network
    // namespace, no resources.
    assert_eq!(
        b.config["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": rl.uid, "size": 1}])
    );
    assert!(b.config["linux"]["resources"].is_null(), "{}", b.config);
    b.set_args(&["sleep", "100"]);
    let id = unique("rl-life");
    rl.run_in(&b, &id, &["create"]).ok();
    let st = rl.state(&b, &id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["owner"], USER, "{st}");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(rl.xdg().join("oxrun").join(&id).join("state.json").exists());
    // Seen from the host, init is the user.
    let uids = host_ids(pid, "Uid");
    assert!(
        uids.split_whitespace().all(|u| u == rl.uid.to_string()),
        "init's host uids: {uids}"
    );
    rl.oxrun(b.path(), &["start", &id]).ok();
    // exec joins the user namespace first (an unprivileged caller needs
    // its capabilities to join the pid namespace).
    let out = rl
        .oxrun(
            b.path(),
            &[
                "exec",
                &id,
                "sh",
                "-c",
                "id -u; cat /proc/self/uid_map /proc/self/setgroups",
            ],
        )
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "0", "{}", out.stdout);
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", &rl.uid.to_string(), "1"],
        "{}",
        out.stdout
    );
    // A single mapping of its own gid needs setgroups denied.
    assert_eq!(lines[2], "deny", "{}", out.stdout);
    let list = rl.oxrun(b.path(), &["list"]).ok();
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with(&id) && l.ends_with(USER)),
        "{}",
        list.stdout
    );
    // No cgroup is delegated: ps lists the container's pid namespace,
    // pause says why it cannot, and kill --all still reaches the container.
    rl.oxrun(b.path(), &["exec", "-d", &id, "sleep", "100"])
        .ok();
    let ps = rl.oxrun(b.path(), &["ps", "-f", "json", &id]).ok();
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout).unwrap();
    assert_eq!(pids.len(), 2, "init and the exec'd sleep: {}", ps.stdout);
    assert!(pids.contains(&(pid as i64)), "{}", ps.stdout);
    rl.oxrun(b.path(), &["pause", &id])
        .fails()
        .assert_mentions(&["rootless"]);
    rl.oxrun(b.path(), &["kill", "--all", &id, "KILL"]).ok();
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
    rl.oxrun(b.path(), &["delete", &id]).ok();
    rl.assert_gone(&id, &[pid]);
}

#[test]
fn rootless_subordinate_ranges_go_through_newuidmap() {
    let Some(rl) = Rootless::new() else { return };
    let mut b = rl.bundle();
    let ranges = |own: u32, sub: u32| {
        json!([{"containerID": 0, "hostID": own, "size": 1},
               {"containerID": 1, "hostID": sub, "size": 65536}])
    };
    b.config["linux"]["uidMappings"] = ranges(rl.uid, rl.subuid);
    b.config["linux"]["gidMappings"] = ranges(rl.gid, rl.subgid);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5]});
    b.set_args(&["sleep", "100"]);
    let id = unique("rl-sub");
    rl.run_in(&b, &id, &["run", "-d"]).ok();
    let pid = rl.state(&b, &id)["pid"].as_i64().unwrap() as i32;
    // Container uid 1000 is subordinate id 999 on the host.
    let want = (rl.subuid + 999).to_string();
    let uids = host_ids(pid, "Uid");
    assert!(
        uids.split_whitespace().all(|u| u == want),
        "host uids {uids}, want {want}"
    );
    let groups = host_ids(pid, "Groups");
    assert_eq!(groups.trim(), (rl.subgid + 4).to_string(), "host groups");
    rl.oxrun(b.path(), &["delete", "-f", &id]).ok();
    rl.assert_gone(&id, &[pid]);

    // A range that is not the user's: newuidmap refuses, and the error
    // names the field and the helper; nothing is left.
    b.config["linux"]["uidMappings"] = ranges(rl.uid, rl.subuid + 1_000_000);
    let id = unique("rl-badsub");
    let out = rl.run_in(&b, &id, &["create"]).fails();
    out.assert_mentions(&["linux.uidMappings"]);
    out.assert_mentions(&["newuidmap"]);
    rl.assert_gone(&id, &[]);
}

#[test]
fn rootless_uses_only_delegated_cgroups() {
    let Some(rl) = Rootless::new() else { return };
    let memory = Path::new("/sys/fs/cgroup/memory");
    require!(
        memory.join("cgroup.procs").exists(),
        "no cgroup v1 memory hierarchy at {}",
        memory.display()
    );
    let mut b = rl.bundle();
    b.set_script("grep memory /proc/self/cgroup");
    let limit = 64 << 20;
    b.config["linux"]["resources"] = json!({"memory": {"limit": limit}});
    let parent = unique("oxit-rl-deleg");
    b.config["linux"]["cgroupsPath"] = json!(format!("/{parent}/c"));

    // Not delegated: a limit cannot be set, and says why.
    let id = unique("rl-nodeleg");
    let out = rl.run_in(&b, &id, &["run"]).fails();
    out.assert_mentions(&["linux.resources.memory"]);
    out.assert_mentions(&["not delegated"]);
    rl.assert_gone(&id, &[]);

    // Delegated (as root would): the memory hierarchy is used, the
    // others are left out.
    let dir = memory.join(&parent);
    fs::create_dir(&dir).unwrap();
    for p in [dir.clone(), dir.join("cgroup.procs")] {
        std::os::unix::fs::chown(&p, Some(rl.uid), Some(rl.gid)).unwrap();
    }
    let id = unique("rl-deleg");
    b.set_args(&["sleep", "100"]);
    rl.run_in(&b, &id, &["run", "-d"]).ok();
    let pid = rl.state(&b, &id)["pid"].as_i64().unwrap() as i32;
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.lines()
            .any(|l| l.ends_with(&format!(":memory:/{parent}/c"))),
        "{cg}"
    );
    assert_eq!(
        fs::read_to_string(dir.join("c/memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        limit.to_string()
    );
    rl.oxrun(b.path(), &["delete", "-f", &id]).ok();
    rl.assert_gone(&id, &[pid]);
    assert!(!dir.join("c").exists(), "container cgroup left");
    fs::remove_dir(&dir).unwrap();
}

#[test]
fn rootless_refuses_what_needs_privilege() {
    let Some(rl) = Rootless::new() else { return };
    let mut b = rl.bundle();
    b.set_args(&["true"]);
    // The systemd driver uses the user's own systemd (checked in the
    // systemd guest, scripts/systemd-vm/rootless-check.sh); this host has
    // none: a clear error, nothing left.
    let id = unique("rl-sd");
    b.config["linux"]["cgroupsPath"] = json!("user.slice:oxit:rl");
    rl.run_in(&b, &id, &["--systemd-cgroup", "run"])
        .fails()
        .assert_mentions(&["systemd is not this host's init"]);
    rl.assert_gone(&id, &[]);
    b.config["linux"]["cgroupsPath"] = Value::Null;
    // Checkpointing needs criu as root.
    rl.oxrun(b.path(), &["checkpoint", "nope"])
        .fails()
        .assert_mentions(&["rootless"]);
    // An idmapped mount needs CAP_SYS_ADMIN over the host's mounts.
    b.add_mount(json!({"destination": "/mnt", "type": "bind",
        "source": b.rootfs().join("tmp"), "options": ["bind", "idmap"]}));
    let id = unique("rl-idmap");
    rl.run_in(&b, &id, &["run"])
        .fails()
        .assert_mentions(&["idmap"]);
    rl.assert_gone(&id, &[]);
}

/// podman 4.3 rootless with `--runtime oxrun`: podman makes the user
/// namespace (through newuidmap) and calls the runtime as root inside it,
/// so oxrun is rootless there by detection (state under
/// $XDG_RUNTIME_DIR, host device nodes bound rather than made).
#[test]
fn podman_rootless_runs_oxrun() {
    let Some(rl) = Rootless::new() else { return };
    require!(
        Path::new("/usr/bin/podman").exists(),
        "podman is not installed (scripts/setup.sh installs it)"
    );
    // podman writes into the rootfs (/etc/mtab) as the container's root.
    let b = Bundle::new();
    give(b.path(), rl.uid, rl.gid);
    let pm = rl.dir.join("pm");
    fs::create_dir(&pm).unwrap();
    give(&pm, rl.uid, rl.gid);
    let runtime = rl.dir.join("oxrun").display().to_string();
    let rootfs = b.rootfs().display().to_string();
    let d = |s: &str| pm.join(s).display().to_string();
    let podman = |args: &[&str]| {
        let mut all: Vec<String> = [
            "--root",
            &d("root"),
            "--runroot",
            &d("runroot"),
            "--tmpdir",
            &d("tmp"),
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--log-level",
            "error",
            "--runtime",
            &runtime,
        ]
        .map(String::from)
        .to_vec();
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        rl.as_user(&pm, "podman", &refs)
    };
    let out = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--rootfs",
        &rootfs,
        "sh",
        "-c",
        "cat /proc/self/uid_map; echo x > /dev/null && echo null-ok",
    ])
    .ok();
    let maps: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .filter(|l| !l.contains("null-ok"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        maps,
        [
            vec!["0", &*rl.uid.to_string(), "1"],
            vec!["1", &*rl.subuid.to_string(), "65536"]
        ],
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("null-ok"), "{}", out.stdout);

    // A terminal: podman's conmon takes the pty master over the console
    // socket.
    let tty = podman(&[
        "run",
        "--rm",
        "-t",
        "--network",
        "none",
        "--rootfs",
        &rootfs,
        "tty",
    ])
    .ok();
    assert!(tty.stdout.starts_with("/dev/pts/"), "{}", tty.stdout);

    podman(&[
        "run",
        "-d",
        "--name",
        "rl",
        "--network",
        "none",
        "--rootfs",
        &rootfs,
        "sleep",
        "100",
    ])
    .ok();
    // A user namespace of the container's own, nested in podman's
    // (--uidmap): the maps are written from inside podman's.
    let nested = podman(&[
        "run",
        "--rm",
        "--uidmap",
        "0:1:1000",
        "--gidmap",
        "0:1:1000",
        "--network",
        "none",
        "--rootfs",
        &rootfs,
        "cat",
        "/proc/self/uid_map",
    ])
    .ok();
    assert_eq!(
        nested.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "1000"],
        "{}",
        nested.stdout
    );
    let ex = podman(&["exec", "rl", "cat", "/proc/1/cmdline"]).ok();
    assert!(ex.stdout.starts_with("sleep"), "{}", ex.stdout);
    // The runtime's state is the user's.
    let states: Vec<_> = fs::read_dir(rl.xdg().join("oxrun"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(
        states.len(),
        1,
        "one container's state under XDG_RUNTIME_DIR"
    );
    podman(&["rm", "-f", "-t", "0", "rl"]).ok();
    assert_eq!(
        fs::read_dir(rl.xdg().join("oxrun")).unwrap().count(),
        0,
        "state left after podman rm"
    );
    // podman's rootless pause process holds its user namespace; it is
    // the only process of the user's that may be left, and goes here.
    if let Ok(p) = fs::read_to_string(pm.join("tmp/pause.pid")) {
        if let Ok(p) = p.trim().parse::<i32>() {
            // SAFETY: kill has no memory effects; p is podman's pause pid.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
    let left = || {
        Command::new("pgrep")
            .args(["-u", &format!("{},{}", rl.uid, rl.subuid)])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(5), || left().is_empty()),
        "processes of {USER} left: {}",
        left()
    );
}
