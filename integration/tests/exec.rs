//! `exec`: a second process in a running container, checked from inside.

use std::time::Duration;

use integration::*;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(20);

/// A running container whose init sleeps; returns its host pid.
fn running(rt: &Runtime, b: &mut Bundle, id: &str) -> i64 {
    b.set_args(&["sleep", "300"]);
    rt.create_start(b, id);
    rt.state_ok(id)["pid"].as_i64().expect("pid")
}

fn exec(rt: &Runtime, args: &[&str]) -> CmdOut {
    let mut full = vec!["exec"];
    full.extend_from_slice(args);
    rt.cmd(&full)
}

fn ns(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = rt.id("exns");
    let pid = running(&rt, &mut b, &id).to_string();
    let out = exec(
        &rt,
        &[&id, "sh", "-c", "echo self=$$; for n in mnt pid net ipc uts cgroup; do echo $n=$(readlink /proc/self/ns/$n); done; echo cg=$(grep memory /proc/self/cgroup); cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname"],
    )
    .ok();
    let o = &out.stdout;
    assert!(
        !o.contains("self=1\n"),
        "exec'd process must not be pid 1:\n{o}"
    );
    for n in ["mnt", "pid", "net", "ipc", "uts", "cgroup"] {
        let line = o
            .lines()
            .find(|l| l.starts_with(&format!("{n}=")))
            .expect("ns line");
        assert_eq!(
            &line[n.len() + 1..],
            ns(&pid, n),
            "{n} namespace differs from init's:\n{o}"
        );
    }
    assert!(
        o.contains("sleep 300"),
        "/proc/1 inside must be the container's init:\n{o}"
    );
    let init_cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("init cgroup");
    let mem = init_cg
        .lines()
        .find(|l| l.contains(":memory:"))
        .expect("memory line");
    // Inside a cgroup namespace the path reads "/", as for init.
    assert!(
        o.contains("cg=") && o.contains(":memory:/"),
        "{o}\ninit: {mem}"
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn exec_exit_status_and_missing_command() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = rt.id("exrc");
    running(&rt, &mut b, &id);
    assert_eq!(exec(&rt, &[&id, "sh", "-c", "exit 7"]).code(), 7);
    assert_eq!(exec(&rt, &[&id, "sh", "-c", "kill -9 $$"]).code(), 137);
    let out = exec(&rt, &[&id, "no-such-command"]).fails();
    out.assert_mentions(&["no-such-command"]);
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn exec_flags_env_user_cwd_caps_nnp() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    let id = rt.id("exflags");
    running(&rt, &mut b, &id);
    let out = exec(
        &rt,
        &[
            "-e", "FOO=bar", "-e", "PATH=/bin:/sbin", "-u", "1000:1001", "-g", "2000", "-g", "2001", "--cwd", "/tmp", "-c",
            "CAP_SYS_TIME", "--no-new-privs", &id, "sh", "-c",
            "echo foo=$FOO path=$PATH; id -u; id -g; id -G; pwd; grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status",
        ],
    )
    .ok();
    let o = &out.stdout;
    assert!(o.contains("foo=bar path=/bin:/sbin"), "{o}");
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[1], "1000", "{o}");
    assert_eq!(lines[2], "1001", "{o}");
    assert!(
        lines[3].contains("2000") && lines[3].contains("2001"),
        "{o}"
    );
    assert_eq!(lines[4], "/tmp", "{o}");
    let bnd = o
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .expect("CapBnd");
    let mask = u64::from_str_radix(bnd.split_whitespace().nth(1).expect("hex"), 16).expect("hex");
    assert_ne!(
        mask & (1 << 25),
        0,
        "CAP_SYS_TIME (25) added to the bounding set: {bnd}"
    );
    assert!(o.contains("NoNewPrivs:\t1"), "{o}");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn exec_process_json_detach_and_pid_file() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    let id = rt.id("exjson");
    running(&rt, &mut b, &id);
    let marker = b.rootfs().join("tmp/from-json");
    let pj = rt.scratch().join("process.json");
    std::fs::write(
        &pj,
        json!({"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "echo $GREETING > /tmp/from-json; sleep 2"],
               "env": ["PATH=/bin", "GREETING=hello-json"], "cwd": "/"})
        .to_string(),
    )
    .expect("write process.json");
    let pf = rt.scratch().join("exec.pid");
    exec(
        &rt,
        &[
            "--process",
            pj.to_str().expect("utf8"),
            "--detach",
            "--pid-file",
            pf.to_str().expect("utf8"),
            &id,
        ],
    )
    .ok();
    let pid: i32 = std::fs::read_to_string(&pf)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    // busybox sh execs its last command in place, so check where it lives.
    let init = rt.state_ok(&id)["pid"].as_i64().expect("pid").to_string();
    assert_ne!(
        pid.to_string(),
        init,
        "pid file names the exec'd process, not init"
    );
    assert_eq!(
        ns(&pid.to_string(), "mnt"),
        ns(&init, "mnt"),
        "pid file's process is in the container"
    );
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !marker.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::read_to_string(&marker).expect("marker").trim(),
        "hello-json"
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn exec_uses_the_containers_seccomp_filter() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]});
    let id = rt.id("exsec");
    running(&rt, &mut b, &id);
    let out = exec(
        &rt,
        &[
            &id,
            "sh",
            "-c",
            "grep ^Seccomp: /proc/self/status; mkdir /tmp/nope 2>&1; true",
        ],
    )
    .ok();
    assert!(out.stdout.contains("Seccomp:\t2"), "{}", out.stdout);
    assert!(
        out.stdout.contains("Operation not permitted"),
        "{}",
        out.stdout
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn exec_only_stdio_and_preserved_fds() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = rt.id("exfds");
    running(&rt, &mut b, &id);
    let out = exec(&rt, &[&id, "ls", "-1", "/proc/self/fd"]).ok();
    let fds: Vec<&str> = out.stdout.lines().collect();
    // 0-2 plus the directory ls itself has open.
    assert_eq!(fds, vec!["0", "1", "2", "3"], "{}", out.stdout);
    rt.delete(&id, true).ok();
}

#[test]
fn exec_into_paused_and_stopped_containers() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = rt.id("expause");
    running(&rt, &mut b, &id);
    let freezer = cgroup_dirs_for(&b.cgroups_path(&id), &id)
        .into_iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/freezer"))
        .expect("v1 freezer dir")
        .join("freezer.state");
    std::fs::write(&freezer, "FROZEN").expect("freeze");
    assert_eq!(rt.status(&id).as_deref(), Some("paused"));
    let out = exec(&rt, &[&id, "true"]).fails();
    out.assert_mentions(&["paused"]);
    std::fs::write(&freezer, "THAWED").expect("thaw");
    exec(&rt, &["--ignore-paused", &id, "true"]).ok();
    rt.kill(&id, Some("KILL")).ok();
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    let out = exec(&rt, &[&id, "true"]).fails();
    out.assert_mentions(&["stopped"]);
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn exec_tty_over_console_socket() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = rt.id("extty");
    running(&rt, &mut b, &id);
    let sock = ConsoleSocket::new(rt.scratch());
    let path = sock.path.to_str().expect("utf8").to_string();
    let out = exec(
        &rt,
        &[
            "-t",
            "-d",
            "--console-socket",
            &path,
            &id,
            "sh",
            "-c",
            "tty; echo done-tty; sleep 1",
        ],
    )
    .ok();
    drop(out);
    let master = sock.recv_fd(TIMEOUT).expect("pty master");
    // SAFETY: isatty on an fd we own.
    let is_tty = unsafe { libc::isatty(std::os::fd::AsRawFd::as_raw_fd(&master)) };
    assert_eq!(is_tty, 1);
    let mut f = std::fs::File::from(master);
    let mut got = String::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut buf = [0u8; 256];
    while !got.contains("done-tty") && std::time::Instant::now() < deadline {
        match std::io::Read::read(&mut f, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(
        got.contains("/dev/pts/"),
        "tty inside the exec'd process: {got:?}"
    );
    assert!(got.contains("done-tty"), "{got:?}");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn detached_tty_needs_a_console_socket() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = rt.id("exttyd");
    running(&rt, &mut b, &id);
    exec(&rt, &["-t", "-d", &id, "true"])
        .fails()
        .assert_mentions(&["console-socket", "console socket", "tty"]);
    rt.delete(&id, true).ok();
}

/// CVE-2019-5736: until `start`, init runs the runtime's own binary, and a
/// process exec'd into a created container must not open /proc/1/exe (the
/// host binary). Here the container has its own user namespace and every
/// capability in it, as init does. Several layers hold this property: init
/// is made non-dumpable before clone, its switch to the namespace's root
/// resets dumpability too, and the kernel's ptrace capability rules apply;
/// this test guards the property, not one of the layers. Once started, pid
/// 1 is the user's program.
#[test]
fn created_init_is_not_reachable_through_proc_exe() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.use_userns();
    b.set_args(&["sleep", "300"]);
    let all = CAP_NAMES.to_vec();
    b.config["process"]["capabilities"] =
        json!({"bounding": all, "effective": all, "permitted": all});
    let id = rt.id("excve");
    rt.create(&b, &id).ok();
    let out = exec(&rt, &[&id, "sh", "-c", "cat /proc/1/exe > /dev/null 2>&1 && echo readable || echo refused; readlink /proc/1/exe || echo no-link"]).ok();
    assert!(
        out.stdout.contains("refused"),
        "init's exe must not be readable from inside: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("no-link"),
        "init's exe link must not resolve from inside: {}",
        out.stdout
    );
    rt.start(&id).ok();
    let out = exec(&rt, &[&id, "sh", "-c", "readlink /proc/1/exe"]).ok();
    assert!(
        out.stdout.contains("busybox"),
        "after start, pid 1 is the user's program: {}",
        out.stdout
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}
