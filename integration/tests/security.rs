//! Security regressions: each test plays the attacker (a hostile bundle,
//! rootfs or container process) for one known escape class, shows the
//! attack fails, and checks the host is unchanged. Each names the CVE and
//! the mechanism that stops it in oxrun (SECURITY.md lists them all).
//!
//! runc 1.1.5 (`OXRUN_BIN=/usr/sbin/runc`) passes these except where a
//! test says otherwise.

#[path = "security_support/mod.rs"]
mod support;

use integration::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

fn exec(rt: &Runtime, args: &[&str]) -> CmdOut {
    let mut full = vec!["exec"];
    full.extend_from_slice(args);
    rt.cmd(&full)
}

/// Wait (bounded) until `path` holds a line `done`, if the attack started
/// at all (`start` is written before the exec'd process can exit, so its
/// absence after the exec returned means nothing ran).
fn attack_result(path: &Path) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let s = read_file(path);
        if !s.contains("start") || s.lines().any(|l| l == "done") || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_no_write(result: &str, copy: &RuntimeCopy) {
    assert!(
        !result.contains("WROTE-HOST-BINARY") && !result.contains("WRITABLE"),
        "the container got a writable handle to the runtime binary:\n{result}"
    );
    let exe = format!("exe={}", copy.path.display());
    assert!(
        !result.lines().any(|l| l == exe),
        "the runtime binary ran as a container process:\n{result}"
    );
    copy.assert_unchanged();
}

/// CVE-2019-5736 through `exec`: the image makes the exec'd program
/// resolve to /proc/self/exe (a `#!/proc/self/exe` script, a symlink to
/// it, or the path itself) and ships a dynamic loader that, if the
/// runtime binary ever runs inside, keeps a handle to /proc/self/exe and
/// reopens it for writing once the runtime is done. Stopped by the exec
/// trampoline (libcontainer/src/process/trampoline.rs): the runtime
/// execveat's a sealed memfd program, so the kernel resolves
/// /proc/self/exe to that memfd, which refuses to run as an interpreter.
/// Without it, oxrun was vulnerable (the payload rewrote the binary). runc
/// 1.1.5 runs the payload too, but against its sealed memfd copy.
#[test]
fn cve_2019_5736_exec_cannot_run_or_write_the_runtime() {
    let mut rt = Runtime::new();
    let copy = RuntimeCopy::new(rt.scratch());
    rt.bin = copy.path.clone();
    let Some(interp) = elf_interp(&copy.path) else {
        panic!("the runtime under test is static: this attack needs another payload");
    };
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    b.set_args(&["sleep", "300"]);
    install_payload(rt.scratch(), &b, &interp);
    fs::write(b.rootfs().join("bin/evil-script"), "#!/proc/self/exe\n").expect("script");
    fs::set_permissions(
        b.rootfs().join("bin/evil-script"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    symlink("/proc/self/exe", b.rootfs().join("bin/evil-link")).expect("symlink");
    let id = rt.id("cve5736x");
    rt.create_start(&b, &id);
    let result = b.rootfs().join("result");
    for vector in ["/bin/evil-script", "/bin/evil-link", "/proc/self/exe"] {
        let _ = fs::remove_file(&result);
        let out = exec(&rt, &[&id, vector]);
        assert!(!out.timed_out, "{}", out.describe());
        let r = attack_result(&result);
        assert_no_write(&r, &copy);
        // A process exec'd into the container never is the runtime binary:
        // the trampoline exits 127 when reached as an interpreter.
        if !is_runc() {
            assert_eq!(out.code(), 127, "{vector}: {}\n{r}", out.describe());
        }
    }
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
    copy.assert_unchanged();
}

/// CVE-2019-5736 through the container's init: `process.args` of
/// `/proc/self/exe` (a hostile bundle) or a `#!/proc/self/exe` entrypoint
/// (a hostile image). Stopped by the same trampoline: init execveat's it
/// instead of the user's path.
#[test]
fn cve_2019_5736_init_cannot_run_or_write_the_runtime() {
    let mut rt = Runtime::new();
    let copy = RuntimeCopy::new(rt.scratch());
    rt.bin = copy.path.clone();
    let interp = elf_interp(&copy.path).expect("dynamically linked runtime");
    for args in [vec!["/proc/self/exe"], vec!["/entrypoint", "x"]] {
        let mut b = Bundle::new();
        b.config["root"]["readonly"] = json!(false);
        b.set_args(&args);
        install_payload(rt.scratch(), &b, &interp);
        fs::write(b.rootfs().join("entrypoint"), "#!/proc/self/exe\n").expect("script");
        fs::set_permissions(
            b.rootfs().join("entrypoint"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let id = rt.id("cve5736i");
        rt.create_start(&b, &id);
        let deadline = Instant::now() + TIMEOUT;
        while rt.status(&id).as_deref() == Some("running") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let r = attack_result(&b.rootfs().join("result"));
        assert_no_write(&r, &copy);
        rt.delete(&id, true).ok();
        rt.assert_no_leftovers(&b, &id);
    }
    copy.assert_unchanged();
}

/// CVE-2019-5736, the race: a container process scans every pid it can
/// see for an exe that is the host's runtime binary, takes an O_PATH
/// handle and tries to reopen it for writing, while the host runs `exec`
/// again and again (each exec child is the runtime until its execve).
/// Stopped by dumpability: the runtime makes itself non-dumpable before it
/// clones into the container's pid namespace (process/exec.rs `spawn`,
/// process/mod.rs `spawn` for init), so /proc/<pid>/exe of runtime code is
/// never reachable; after execve the exe is the trampoline, then the user's
/// program.
#[test]
fn cve_2019_5736_racing_process_never_reaches_the_runtime() {
    let mut rt = Runtime::new();
    let copy = RuntimeCopy::new(rt.scratch());
    rt.bin = copy.path.clone();
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    install_attack(rt.scratch(), &b);
    let host = copy.path.to_str().expect("utf8").to_string();
    b.set_args(&["/bin/attack", "race", &host, "/race.out", "/race.stop"]);
    let id = rt.id("cve5736r");
    rt.create_start(&b, &id);
    let out = b.rootfs().join("race.out");
    assert!(wait_for_path(&out, TIMEOUT), "racer did not start");
    for _ in 0..30 {
        exec(&rt, &[&id, "true"]).ok();
    }
    fs::write(b.rootfs().join("race.stop"), "").expect("stop");
    let deadline = Instant::now() + TIMEOUT;
    let mut r = read_file(&out);
    while !r.lines().any(|l| l == "done") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        r = read_file(&out);
    }
    assert!(r.contains("done"), "racer did not finish:\n{r}");
    assert!(
        !r.contains("handle pid="),
        "got a handle to the runtime:\n{r}"
    );
    assert!(!r.contains("WRITABLE") && !r.contains("WROTE"), "{r}");
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
    copy.assert_unchanged();
}

/// Parse `attack fds` output into (fd, target, magic).
fn open_fds(out: &str) -> Vec<(i32, String, String)> {
    out.lines()
        .filter_map(|l| l.strip_prefix("fd "))
        .map(|l| {
            let (n, rest) = l.split_once(" -> ").expect("fd line");
            let (t, m) = rest.rsplit_once(" magic=").expect("magic");
            (n.parse().expect("fd"), t.to_string(), m.to_string())
        })
        .collect()
}

/// CVE-2024-21626: no fd but stdio (and --preserve-fds) is open when the
/// container's program starts, in create/start and in exec, so nothing
/// refers to the host's cgroupfs, root, state dir or runtime binary.
/// Stopped by `finalize` (process/init.rs): close_range(3 + preserve_fds,
/// CLOSE_RANGE_CLOEXEC) right before execve, and every runtime fd is
/// O_CLOEXEC from birth.
#[test]
fn cve_2024_21626_only_stdio_and_preserved_fds_at_execve() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    install_attack(rt.scratch(), &b);
    b.set_args(&["/bin/attack", "fds"]);
    let id = rt.id("fds");
    let fds = open_fds(&rt.run_ok(&b, &id));
    let nums: Vec<i32> = fds.iter().map(|f| f.0).collect();
    assert_eq!(nums, vec![0, 1, 2], "init: {fds:?}");
    rt.assert_no_leftovers(&b, &id);

    // --preserve-fds 1: fd 3 (a host file we pass) survives, nothing else.
    let kept = rt.scratch().join("kept-file");
    fs::write(&kept, "x").expect("write");
    let f = fs::File::open(&kept).expect("open");
    let id = rt.id("fdsp");
    b.write_config(&id);
    let mut c = rt.command();
    c.args(["run", "--preserve-fds", "1", "--bundle"])
        .arg(b.path())
        .arg(&id);
    let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
    // SAFETY: dup2 in the child before exec; async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
            // dup2 onto itself would keep close-on-exec set.
            let r = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_with_timeout(&mut c, TIMEOUT, None).ok();
    let fds = open_fds(&out.stdout);
    let nums: Vec<i32> = fds.iter().map(|f| f.0).collect();
    assert_eq!(nums, vec![0, 1, 2, 3], "preserve-fds: {fds:?}");
    assert!(fds[3].1.ends_with("kept-file"), "{fds:?}");
    let _ = rt.delete(&id, true);

    // exec
    let mut b = Bundle::new();
    install_attack(rt.scratch(), &b);
    b.set_args(&["sleep", "300"]);
    let id = rt.id("fdsx");
    rt.create_start(&b, &id);
    let out = exec(&rt, &[&id, "/bin/attack", "fds"]).ok();
    let fds = open_fds(&out.stdout);
    let nums: Vec<i32> = fds.iter().map(|f| f.0).collect();
    assert_eq!(nums, vec![0, 1, 2], "exec: {fds:?}");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// `cwd=` from `attack cwd` must be a path inside the container.
fn assert_cwd_inside(out: &str, what: &str) {
    let cwd = must_field(out, "cwd");
    assert!(
        cwd.starts_with('/') && !cwd.contains("unreachable"),
        "{what}: cwd outside the container: {out}"
    );
}

/// CVE-2024-21626: `process.cwd` of /proc/self/fd/N names whatever fd N
/// is in the runtime (in runc: a host cgroupfs handle), which would leave
/// the process outside the rootfs. Stopped two ways: the cwd is created
/// with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) (rootfs/resolve.rs,
/// so /proc/self/fd/N is refused), and `finalize` checks getcwd() is
/// reachable from the container's root after chdir. Each N either fails to
/// create or lands inside.
#[test]
fn cve_2024_21626_process_cwd_proc_self_fd_stays_inside() {
    let rt = Runtime::new();
    for n in 3..=10 {
        let mut b = Bundle::new();
        install_attack(rt.scratch(), &b);
        b.set_args(&["/bin/attack", "cwd"]);
        b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        let id = rt.id("cwdfd");
        let out = rt.run_with(&b, &id, &[]);
        assert!(!out.timed_out, "{}", out.describe());
        if out.success() {
            assert_cwd_inside(&out.stdout, &format!("fd {n}"));
        }
        rt.assert_no_leftovers(&b, &id);
    }
}

/// CVE-2024-21626 through `exec --cwd /proc/self/fd/N`: the exec child
/// holds runtime fds (pidfd, sync socket, the trampoline memfd) until its
/// execve. Stopped by the getcwd() check in `finalize` after chdir (a
/// directory fd outside the root gives an unreachable cwd) and by every
/// one of those fds not being a directory inside the container.
#[test]
fn cve_2024_21626_exec_cwd_proc_self_fd_stays_inside() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    install_attack(rt.scratch(), &b);
    b.set_args(&["sleep", "300"]);
    let id = rt.id("excwdfd");
    rt.create_start(&b, &id);
    for n in 3..=10 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = exec(&rt, &["--cwd", &cwd, &id, "/bin/attack", "cwd"]);
        assert!(!out.timed_out, "{}", out.describe());
        if out.success() {
            assert_cwd_inside(&out.stdout, &cwd);
        }
    }
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// CVE-2021-30465 family, static case: mount destinations through symlinks that point at a host directory (absolute, and relative
/// climbing with ../). Stopped by resolving every destination with
/// openat2(RESOLVE_IN_ROOT) from an fd of the rootfs and mounting/mknod'ing
/// on the resulting fd (rootfs/resolve.rs, rootfs/mod.rs `mount_one`):
/// the symlinks resolve inside the rootfs.
#[test]
fn cve_2021_30465_symlinked_destinations_land_inside() {
    let rt = Runtime::new();
    let hostdir = TempDir::new("oxit-victim");
    let name = hostdir
        .path()
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    symlink(hostdir.path(), b.rootfs().join("abs")).expect("symlink");
    symlink(
        format!("../../../../../../../..{}", hostdir.path().display()),
        b.rootfs().join("rel"),
    )
    .expect("symlink");
    b.add_mount(json!({"destination": "/abs/m1", "type": "tmpfs", "source": "tmpfs"}));
    b.add_mount(json!({"destination": "/rel/m2", "type": "tmpfs", "source": "tmpfs"}));
    b.set_script("grep -E ' /tmp/[^ ]+/m[12] ' /proc/self/mountinfo | cut -d' ' -f5");
    let id = rt.id("symdest");
    let out = rt.run_ok(&b, &id);
    let inside = format!("/tmp/{name}");
    assert!(out.contains(&format!("{inside}/m1")), "{out}");
    assert!(out.contains(&format!("{inside}/m2")), "{out}");
    for n in ["m1", "m2"] {
        assert!(!hostdir.join(n).exists(), "{n} created on the host: {out}");
        assert!(
            b.rootfs().join("tmp").join(&name).join(n).exists(),
            "{n} not inside"
        );
    }
    assert!(mounts_under(hostdir.path()).is_empty());
    rt.assert_no_leftovers(&b, &id);
}

/// CVE-2021-30465 family for device nodes: with no tmpfs on /dev, the
/// image's own /dev holds symlinks to host paths, both as the device's
/// parent directory and as the device itself (the default /dev/zero).
/// Stopped by `make_device` (rootfs/mod.rs): the parent is found with
/// openat2(RESOLVE_IN_ROOT), the old entry is unlinked and the node made
/// with mknodat on that directory fd, which never follows a final symlink.
#[test]
fn device_nodes_through_symlinks_land_inside() {
    let rt = Runtime::new();
    let hostdir = TempDir::new("oxit-victim");
    fs::write(hostdir.join("zero"), "host-file\n").expect("write");
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    b.config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .retain(|m| m["destination"] != "/dev");
    symlink(hostdir.path(), b.rootfs().join("dev/evil")).expect("symlink");
    symlink(hostdir.join("zero"), b.rootfs().join("dev/zero")).expect("symlink");
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/evil/dev0", "type": "c", "major": 1, "minor": 3}]);
    b.set_script("stat -c '%n %F %t:%T' /dev/zero /dev/evil/dev0");
    let id = rt.id("devln");
    let out = rt.run_ok(&b, &id);
    // runc 1.1.5 leaves the image's /dev/zero symlink in place (it then
    // resolves inside the container, so the host file is still safe).
    if !is_runc() {
        assert!(
            out.contains("/dev/zero character special file 1:5"),
            "{out}"
        );
    }
    assert!(
        out.contains("/dev/evil/dev0 character special file 1:3"),
        "{out}"
    );
    assert!(
        !hostdir.join("dev0").exists(),
        "device node created on the host"
    );
    assert_eq!(read_file(&hostdir.join("zero")), "host-file\n");
    let name = hostdir.path().file_name().expect("name");
    assert!(b.rootfs().join("tmp").join(name).join("dev0").exists());
    rt.assert_no_leftovers(&b, &id);
}

/// CVE-2021-30465 proper: the destination's parent is swapped between a
/// directory and a symlink to a host directory while containers are being
/// created (in the CVE another container does it through a shared volume;
/// a host thread is the same race). Stopped as above: there is no path
/// walk on the host side to race; whichever the kernel sees, openat2
/// (RESOLVE_IN_ROOT) keeps it inside the rootfs.
#[test]
fn cve_2021_30465_swapped_destination_race_stays_inside() {
    let rt = Runtime::new();
    let hostdir = TempDir::new("oxit-victim");
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    b.set_args(&["true"]);
    fs::create_dir(b.rootfs().join("race")).expect("mkdir");
    symlink(hostdir.path(), b.rootfs().join("race-link")).expect("symlink");
    b.add_mount(json!({"destination": "/race/mnt", "type": "tmpfs", "source": "tmpfs"}));
    let stop = Arc::new(AtomicBool::new(false));
    let (a, c) = (
        std::ffi::CString::new(b.rootfs().join("race").to_str().expect("utf8")).expect("c"),
        std::ffi::CString::new(b.rootfs().join("race-link").to_str().expect("utf8")).expect("c"),
    );
    let s2 = stop.clone();
    let swapper = std::thread::spawn(move || {
        let mut swaps = 0u64;
        while !s2.load(Ordering::Relaxed) {
            // SAFETY: renameat2(RENAME_EXCHANGE) of two paths we own.
            unsafe {
                libc::syscall(
                    libc::SYS_renameat2,
                    libc::AT_FDCWD,
                    a.as_ptr(),
                    libc::AT_FDCWD,
                    c.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            };
            swaps += 1;
        }
        swaps
    });
    let mut created = 0;
    for _ in 0..20 {
        let id = rt.id("swap");
        if rt.create(&b, &id).success() {
            created += 1;
        }
        rt.delete(&id, true);
        rt.assert_no_leftovers(&b, &id);
        // runc 1.1.5 fails here: its MkdirAll follows the swapped-in
        // symlink and creates the mount point in the host directory.
        assert!(
            !hostdir.join("mnt").exists(),
            "mount point created on the host"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    assert!(swaps > 0 && created > 0, "swaps={swaps} created={created}");
    assert!(mounts_under(hostdir.path()).is_empty());
}

/// CVE-2021-30465 family for masked and read-only paths: entries that are
/// symlinks (to a host path, or to a file in the rootfs) must not be
/// followed. Stopped by opening them with RESOLVE_IN_ROOT |
/// RESOLVE_NO_SYMLINKS (rootfs/mod.rs `open_existing`): such an entry
/// fails the create rather than masking or remounting something else.
#[test]
fn masked_and_readonly_paths_do_not_follow_symlinks() {
    let rt = Runtime::new();
    let hostdir = TempDir::new("oxit-victim");
    fs::write(hostdir.join("secret"), "host-secret\n").expect("write");
    for field in ["maskedPaths", "readonlyPaths"] {
        let mut b = Bundle::new();
        symlink(hostdir.path(), b.rootfs().join("evil")).expect("symlink");
        b.config["linux"][field] = json!(["/evil/secret", "/evil"]);
        b.set_args(&["true"]);
        let id = rt.id("maskln");
        let out = rt.run_with(&b, &id, &[]);
        assert!(!out.timed_out, "{}", out.describe());
        // runc 1.1.5 follows these symlinks inside the rootfs (harmless
        // there, since /evil/secret does not exist inside); oxrun refuses.
        if !is_runc() {
            assert!(!out.success(), "{field} through a symlink accepted");
        }
        assert_eq!(read_file(&hostdir.join("secret")), "host-secret\n");
        rt.assert_no_leftovers(&b, &id);
    }
}

/// A bundle whose /dev is bound from a directory it controls (holding a
/// real /dev/null).
fn bundle_with_dev_dir(rt: &Runtime) -> (Bundle, TempDir) {
    let dev = TempDir::new("oxit-dev");
    host(
        "mknod",
        &[
            "-m",
            "666",
            dev.join("null").to_str().expect("utf8"),
            "c",
            "1",
            "3",
        ],
    );
    let mut b = Bundle::new();
    let mounts = b.config["mounts"].as_array_mut().expect("mounts");
    for m in mounts.iter_mut() {
        if m["destination"] == "/dev" {
            *m = json!({"destination": "/dev", "type": "bind", "source": dev.path(), "options": ["rbind", "rw"]});
        }
    }
    let _ = rt;
    (b, dev)
}

/// CVE-2025-31133: masked paths are bound from /dev/null; a /dev/null that
/// is a symlink to a procfs file (or a plain file) would put that file on
/// the masked path, unmasked and writable. Stopped by `open_devnull`
/// (rootfs/mod.rs): /dev/null is opened with RESOLVE_NO_SYMLINKS and must
/// be the 1:3 character device (fstat) or the create fails.
#[test]
fn cve_2025_31133_dev_null_must_be_the_device() {
    let rt = Runtime::new();
    for kind in ["symlink", "file"] {
        let (mut b, dev) = bundle_with_dev_dir(&rt);
        fs::remove_file(dev.join("null")).expect("rm");
        match kind {
            "symlink" => symlink("/proc/sys/kernel/core_pattern", dev.join("null")).expect("ln"),
            _ => fs::write(dev.join("null"), "not a device").expect("write"),
        }
        b.set_script("cat /proc/kcore | head -c 20; echo; cat /proc/self/mountinfo");
        let id = rt.id("devnull");
        let out = rt.run_with(&b, &id, &[]);
        assert!(!out.timed_out, "{}", out.describe());
        // runc 1.1.5 follows a symlinked /dev/null (the CVE).
        if !is_runc() {
            assert!(
                !out.success(),
                "{kind} /dev/null accepted: {}",
                out.describe()
            );
            out.assert_mentions(&["/dev/null"]);
        }
        rt.assert_no_leftovers(&b, &id);
    }
}

/// CVE-2025-52565: the console pty is bound onto /dev/console; a
/// /dev/console that is a symlink to a procfs file would move the bind
/// (or the container's view of the console) onto that file. Stopped by
/// `bind_console` (tty.rs): /dev/console is opened with
/// RESOLVE_NO_SYMLINKS | O_NOFOLLOW and must be a plain file or device on
/// neither procfs nor sysfs; the pty comes from TIOCGPTPEER on a master
/// checked to be on devpts, never from a path.
#[test]
fn cve_2025_52565_console_symlink_is_refused() {
    let rt = Runtime::new();
    let (mut b, dev) = bundle_with_dev_dir(&rt);
    symlink("/proc/sys/kernel/core_pattern", dev.join("console")).expect("ln");
    b.config["process"]["terminal"] = json!(true);
    b.set_args(&["sleep", "300"]);
    let sock = ConsoleSocket::new(rt.scratch());
    let id = rt.id("console");
    let out = rt.create_with(
        &b,
        &id,
        &["--console-socket", sock.path.to_str().expect("utf8")],
    );
    assert!(!out.timed_out, "{}", out.describe());
    if out.success() {
        // runc 1.1.5 gets here; whatever it did, the pty must not sit on
        // core_pattern.
        let pid = rt.state_ok(&id)["pid"].as_i64().expect("pid");
        let mi = read_file(Path::new(&format!("/proc/{pid}/mountinfo")));
        assert!(
            !mi.lines()
                .any(|l| l.split(' ').nth(4) == Some("/proc/sys/kernel/core_pattern")),
            "something is mounted on core_pattern:\n{mi}"
        );
        assert!(is_runc(), "a symlinked /dev/console was accepted");
    } else if !is_runc() {
        out.assert_mentions(&["console"]);
    }
    rt.delete(&id, true);
    rt.assert_no_leftovers(&b, &id);
}

/// CVE-2025-52881 and CVE-2023-28642: procfs writes (sysctl) and the
/// masked/read-only /proc paths assume /proc is the kernel's procfs. A
/// bundle that puts a tmpfs or a bind of a plain directory on /proc, or
/// covers a procfs file with a mount, is refused. Stopped by
/// `check_proc_destination` and the procfs check of a bind source in
/// rootfs/mod.rs `mount_one`, and by `write_sysctls` opening every key
/// under an fd of /proc/sys checked with fstatfs to be procfs, with
/// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV.
#[test]
fn cve_2025_52881_proc_must_be_procfs_for_procfs_writes() {
    let rt = Runtime::new();
    let fake = TempDir::new("oxit-fakeproc");
    fs::create_dir_all(fake.join("sys/kernel")).expect("mkdir");
    fs::write(fake.join("sys/kernel/shm_rmid_forced"), "0").expect("write");
    let host_before = read_file(Path::new("/proc/sys/kernel/shm_rmid_forced"));
    let cases = [
        (
            "tmpfs on /proc",
            json!({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}),
        ),
        (
            "bind of a directory on /proc",
            json!({"destination": "/proc", "type": "bind", "source": fake.path(), "options": ["rbind"]}),
        ),
        (
            "bind over a procfs file",
            json!({"destination": "/proc/sys/kernel/shm_rmid_forced", "type": "bind", "source": fake.join("sys/kernel/shm_rmid_forced"), "options": ["bind"]}),
        ),
    ];
    for (what, m) in cases {
        let mut b = Bundle::new();
        if m["destination"] == "/proc" {
            b.config["mounts"]
                .as_array_mut()
                .expect("mounts")
                .retain(|x| x["destination"] != "/proc");
        }
        b.add_mount(m);
        b.config["linux"]["sysctl"] = json!({"kernel.shm_rmid_forced": "1"});
        b.set_args(&["true"]);
        let id = rt.id("procfs");
        let out = rt.run_with(&b, &id, &[]);
        assert!(!out.timed_out, "{}", out.describe());
        // runc 1.1.5 also refuses a non-procfs /proc; it allows neither
        // bind over shm_rmid_forced.
        assert!(!out.success(), "{what} accepted: {}", out.describe());
        out.assert_mentions(&["proc"]);
        assert_eq!(read_file(&fake.join("sys/kernel/shm_rmid_forced")), "0");
        rt.assert_no_leftovers(&b, &id);
    }
    assert_eq!(
        read_file(Path::new("/proc/sys/kernel/shm_rmid_forced")),
        host_before
    );
}

/// CVE-2023-27561 / CVE-2019-19921: /proc in the rootfs is a symlink
/// (to a directory inside it, or to a host path). Mounting procfs through
/// it would put /proc somewhere the masked paths do not cover. Stopped by
/// `mount_one` resolving proc and sysfs destinations with
/// RESOLVE_NO_SYMLINKS (rootfs/mod.rs `prepare_target`/`target_fd`).
#[test]
fn cve_2023_27561_symlinked_proc_is_refused() {
    let rt = Runtime::new();
    let hostdir = TempDir::new("oxit-victim");
    for target in ["/tmp/inside", hostdir.path().to_str().expect("utf8")] {
        let mut b = Bundle::new();
        fs::remove_dir(b.rootfs().join("proc")).expect("rmdir");
        fs::create_dir_all(b.rootfs().join("tmp/inside")).expect("mkdir");
        symlink(target, b.rootfs().join("proc")).expect("symlink");
        b.set_args(&["true"]);
        let id = rt.id("procln");
        let out = rt.run_with(&b, &id, &[]);
        assert!(!out.timed_out, "{}", out.describe());
        assert!(!out.success(), "symlinked /proc -> {target} accepted");
        out.assert_mentions(&["proc", "symlink"]);
        assert!(fs::read_dir(hostdir.path()).expect("read").next().is_none());
        rt.assert_no_leftovers(&b, &id);
    }
}

fn caps_of(out: &str) -> [u64; 5] {
    let f = |k: &str| parse_cap_hex(status_field(out, k).unwrap_or_else(|| panic!("{k}: {out}")));
    [
        f("CapInh"),
        f("CapPrm"),
        f("CapEff"),
        f("CapBnd"),
        f("CapAmb"),
    ]
}

/// CVE-2022-29162: capabilities are exactly the five sets the spec gives:
/// nothing inheritable or ambient unless asked, in init and in exec (also
/// with `exec --cap`, which adds to bounding/effective/permitted only).
/// Stopped by `CapSets` (capabilities.rs): one capset(2) with the spec's
/// E/P/I masks after dropping the bounding set, ambient only if in P and I.
#[test]
fn cve_2022_29162_capabilities_exactly_as_the_spec_says() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    b.config["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    b.set_args(&["sleep", "300"]);
    let id = rt.id("caps");
    rt.create_start(&b, &id);
    let pid = rt.state_ok(&id)["pid"].as_i64().expect("pid");
    let want = cap_mask(&caps);
    let init = caps_of(&read_file(Path::new(&format!("/proc/{pid}/status"))));
    assert_eq!(init, [0, want, want, want, 0], "init caps");
    let out = exec(&rt, &[&id, "cat", "/proc/self/status"]).ok();
    assert_eq!(caps_of(&out.stdout), [0, want, want, want, 0], "exec caps");
    let out = exec(
        &rt,
        &["--cap", "CAP_SYS_TIME", &id, "cat", "/proc/self/status"],
    )
    .ok();
    let more = want | cap_mask(&["CAP_SYS_TIME"]);
    assert_eq!(caps_of(&out.stdout), [0, more, more, more, 0], "exec --cap");
    // A name this kernel or build does not know: runc 1.1 warns (in these
    // words) and runs the process with the caps it does know.
    let out = exec(
        &rt,
        &[
            "--cap",
            "CAP_BOGUS",
            "--cap",
            "CAP_SYS_TIME",
            &id,
            "cat",
            "/proc/self/status",
        ],
    )
    .ok();
    assert_eq!(caps_of(&out.stdout), [0, more, more, more, 0], "exec --cap");
    assert!(
        out.stderr
            .contains("ignoring unknown or unavailable capabilities: [CAP_BOGUS]"),
        "{}",
        out.stderr
    );
    // A non-root user gets nothing at all from the spec's sets on execve
    // unless ambient is asked for.
    let out = exec(
        &rt,
        &["--user", "1000:1000", &id, "cat", "/proc/self/status"],
    )
    .ok();
    let c = caps_of(&out.stdout);
    assert_eq!((c[0], c[1], c[2], c[4]), (0, 0, 0, 0), "uid 1000: {c:?}");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// Privilege hygiene: no_new_privs exactly when asked (init and exec);
/// the container's program has no handle to the host root or cwd outside
/// (its /proc/self/root and cwd are the container's "/"); and while
/// runtime code runs inside the container's namespaces it is not
/// dumpable, so a container process cannot open its exe, fds or memory
/// (a created container's init, which is runtime code until `start`).
/// Mechanisms: PR_SET_NO_NEW_PRIVS in `finalize` (process/init.rs),
/// PR_SET_DUMPABLE 0 before clone in process/mod.rs and process/exec.rs.
#[test]
fn no_new_privs_and_dumpable_hygiene() {
    let rt = Runtime::new();
    for nnp in [true, false] {
        let mut b = Bundle::new();
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.set_args(&["sleep", "300"]);
        let id = rt.id("nnp");
        rt.create(&b, &id).ok();
        // Created: pid 1 is runtime code. Its fds, exe and memory must be
        // out of reach for a process exec'd into the container.
        let out = exec(
            &rt,
            &[
                &id,
                "sh",
                "-c",
                "for l in fd/0 fd/1 exe root cwd; do readlink /proc/1/$l >/dev/null 2>&1 && echo $l=open || echo $l=refused; done; \
              head -c1 /proc/1/mem >/dev/null 2>&1 && echo mem=open || echo mem=refused",
            ],
        )
        .ok();
        // runc 1.1.5's created init is dumpable: its fds, root and cwd
        // are reachable (its exe is a sealed memfd copy, not the binary).
        let keys: &[&str] = if is_runc() {
            &["mem"]
        } else {
            &["fd/0", "fd/1", "exe", "root", "cwd", "mem"]
        };
        for k in keys {
            assert_eq!(must_field(&out.stdout, k), "refused", "{k}: {}", out.stdout);
        }
        rt.start(&id).ok();
        let pid = rt.state_ok(&id)["pid"].as_i64().expect("pid");
        let st = read_file(Path::new(&format!("/proc/{pid}/status")));
        assert_eq!(
            status_field(&st, "NoNewPrivs"),
            Some(if nnp { "1" } else { "0" })
        );
        let out = exec(&rt, &[&id, "sh", "-c", "grep NoNewPrivs /proc/self/status; readlink /proc/self/root; readlink /proc/self/cwd"]).ok();
        assert!(
            out.stdout
                .contains(&format!("NoNewPrivs:\t{}", u8::from(nnp))),
            "{}",
            out.stdout
        );
        assert_eq!(
            out.stdout.lines().skip(1).collect::<Vec<_>>(),
            vec!["/", "/"],
            "{}",
            out.stdout
        );
        let out = exec(
            &rt,
            &[
                "--no-new-privs",
                &id,
                "grep",
                "NoNewPrivs",
                "/proc/self/status",
            ],
        )
        .ok();
        assert!(out.stdout.contains("NoNewPrivs:\t1"), "{}", out.stdout);
        rt.delete(&id, true).ok();
        rt.assert_no_leftovers(&b, &id);
    }
}
