//! Where oxrun used to differ from runc in the container's filesystem, its
//! terminal and its hooks (the "behave like runc" issue, items 1, 2 and
//! 8-11). Each test checks from inside the container (or from the hook)
//! and passes on runc 1.1.5 unless marked.

use integration::*;
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// File descriptors listed between FDS and END by `ls -1 /proc/self/fd`.
fn fds_listed(out: &str) -> Vec<u32> {
    let mut v: Vec<u32> = out
        .lines()
        .skip_while(|l| l.trim() != "FDS")
        .skip(1)
        .take_while(|l| l.trim() != "END")
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    v.sort();
    v
}

/// With --no-pivot the host's procfs stays in the container's mount
/// namespace; unless it is hidden, a process in a nested user + pid
/// namespace may mount a fresh, unmasked procfs (the kernel allows it when
/// a full procfs is mounted anywhere in the namespace). runc hides it.
#[test]
fn no_pivot_leaves_no_full_procfs_to_remount() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    // Not root: mapping root into a user namespace needs CAP_SETFCAP.
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.set_script(
        "unshare -Urmpf sh -c 'mount -t proc proc /tmp && echo NESTED-PROC-MOUNTED'; \
         echo RESULT-$?; grep -c ' proc ' /proc/self/mountinfo",
    );
    let id = rt.id("nopivot-proc");
    let out = rt.run_with(&b, &id, &["--no-pivot"]);
    assert!(
        !out.stdout.contains("NESTED-PROC-MOUNTED"),
        "a nested user namespace could mount a fresh procfs under --no-pivot: {}",
        out.stdout
    );
    assert!(out.stdout.contains("RESULT-"), "{}", out.stdout);
    rt.assert_no_leftovers(&b, &id);
    // The same check with pivot_root, as a control that the probe works.
    let mut b2 = Bundle::new();
    b2.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b2.set_script("unshare -Urmpf sh -c 'mount -t proc proc /tmp && echo NESTED-PROC-MOUNTED'");
    let id2 = rt.id("pivot-proc");
    let out2 = rt.run_with(&b2, &id2, &[]);
    assert!(
        !out2.stdout.contains("NESTED-PROC-MOUNTED"),
        "{}",
        out2.stdout
    );
    rt.assert_no_leftovers(&b2, &id2);
}

/// Hooks get stdio and nothing else: neither an fd the caller leaked into
/// the runtime (fd 5 here) nor anything the runtime holds.
#[test]
fn hooks_get_only_stdio() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    let host_log = rt.scratch().join("runtime-hook-fds");
    let list = |to: &str| format!("(echo FDS; ls -1 /proc/self/fd; echo END) > {to}");
    b.config["hooks"] = json!({
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", list(host_log.to_str().unwrap())], "env": [PATH_ENV]}],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", list("/hook-fds")], "env": [PATH_ENV]}]
    });
    b.set_args(&["true"]);
    let id = rt.id("hookfds");
    b.write_config(&id);
    let leak = fs::File::open("/etc/passwd").unwrap();
    let leak_fd = leak.as_raw_fd();
    let mut c = rt.command();
    c.arg("run").arg("--bundle").arg(b.path()).arg(&id);
    // SAFETY: the closure only calls async-signal-safe fcntl/dup2/close.
    unsafe {
        c.pre_exec(move || {
            let tmp = libc::fcntl(leak_fd, libc::F_DUPFD, 100);
            if tmp < 0 || libc::dup2(tmp, 5) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(tmp);
            Ok(())
        });
    }
    run_with_timeout(&mut c, TIMEOUT, None).ok();
    for (what, text) in [
        ("createRuntime", read_file(&host_log)),
        ("startContainer", read_file(&b.rootfs().join("hook-fds"))),
    ] {
        // 0-2, and ls's own directory fd (the lowest free number).
        assert_eq!(
            fds_listed(&text),
            vec![0, 1, 2, 3],
            "{what} hook fds: {text}"
        );
    }
    rt.assert_no_leftovers(&b, &id);
}

/// createContainer hooks run with the container's root as cwd (runc
/// chdir's to the rootfs before running them).
#[test]
fn create_container_hook_cwd_is_the_rootfs() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let log = rt.scratch().join("cc-cwd");
    b.config["hooks"] = json!({
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", format!("pwd -P > {}", log.display())], "env": [PATH_ENV]}]
    });
    b.set_args(&["true"]);
    let id = rt.id("cccwd");
    rt.run_with(&b, &id, &[]).ok();
    let want = fs::canonicalize(b.rootfs()).unwrap();
    assert_eq!(read_file(&log).trim(), want.to_str().unwrap());
    rt.assert_no_leftovers(&b, &id);
}

/// The console pty belongs to the process's user (runc chowns stdio to
/// the uid, keeping the gid), so a non-root process can use its terminal.
#[test]
fn console_is_owned_by_the_process_user() {
    let rt = Runtime::new();
    let sock = ConsoleSocket::new(rt.scratch());
    let mut b = Bundle::new();
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.set_script("echo OWNER$((1+1))=$(stat -c %u $(tty)); sleep 1");
    let id = rt.id("ttyown");
    rt.create_with(&b, &id, &["--console-socket", sock.path.to_str().unwrap()])
        .ok();
    let master = sock.recv_fd(TIMEOUT).expect("console fd");
    rt.start(&id).ok();
    let out = read_until(master.as_raw_fd(), TIMEOUT, |s| s.contains("OWNER2="));
    assert!(
        out.contains("OWNER2=1000"),
        "pty not owned by uid 1000: {out:?}"
    );
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    drop(master);
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// A /dev mounted `ro` is populated first and made read-only afterwards,
/// as runc does; with a terminal too (the console's mount point).
#[test]
fn readonly_dev_is_populated_then_read_only() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["mounts"][1]["options"] =
        json!(["nosuid", "strictatime", "mode=755", "size=65536k", "ro"]);
    b.set_script(
        "test -c /dev/null && test -d /dev/pts && test -L /dev/fd && echo DEV-POPULATED; \
         touch /dev/oxit 2>/dev/null || echo DEV-READONLY",
    );
    let id = rt.id("devro");
    let out = rt.run_with(&b, &id, &[]).ok();
    assert!(out.stdout.contains("DEV-POPULATED"), "{}", out.stdout);
    assert!(out.stdout.contains("DEV-READONLY"), "{}", out.stdout);
    rt.assert_no_leftovers(&b, &id);

    let sock = ConsoleSocket::new(rt.scratch());
    let mut t = Bundle::new();
    t.config["mounts"][1]["options"] = json!(["nosuid", "mode=755", "ro"]);
    t.config["process"]["terminal"] = json!(true);
    t.set_script("test -e /dev/console && echo CONSOLE$((2+2))OK; sleep 1");
    let tid = rt.id("devro-tty");
    rt.create_with(&t, &tid, &["--console-socket", sock.path.to_str().unwrap()])
        .ok();
    let master = sock.recv_fd(TIMEOUT).expect("console fd");
    rt.start(&tid).ok();
    let out = read_until(master.as_raw_fd(), TIMEOUT, |s| s.contains("CONSOLE4OK"));
    assert!(out.contains("CONSOLE4OK"), "{out:?}");
    rt.wait_for_status(&tid, "stopped", TIMEOUT);
    drop(master);
    rt.delete(&tid, false).ok();
    rt.assert_no_leftovers(&t, &tid);
}

/// With a user namespace, bind sources are opened by the runtime before
/// it enters: a source under a 0700 directory of the host's root is out of
/// reach of the container's mapped root, yet must still be mounted.
#[test]
fn userns_bind_source_under_a_private_root_dir() {
    let rt = Runtime::new();
    let private = rt.scratch().join("private");
    fs::create_dir_all(private.join("data")).unwrap();
    fs::write(private.join("data/file"), "bind-source-content\n").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(private.join("data"), fs::Permissions::from_mode(0o755)).unwrap();
    let mut b = Bundle::new();
    b.use_userns();
    b.add_mount(json!({"destination": "/data", "type": "bind",
        "source": private.join("data"), "options": ["rbind", "ro"]}));
    b.set_script("cat /data/file");
    let id = rt.id("usernsbind");
    let out = rt.run_with(&b, &id, &[]).ok();
    assert!(out.stdout.contains("bind-source-content"), "{}", out.stdout);
    rt.assert_no_leftovers(&b, &id);
}
