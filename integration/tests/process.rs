//! The container process: args, env, cwd, user, umask, rlimits,
//! capabilities, noNewPrivileges, oomScoreAdj, and fd hygiene.

use integration::*;
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;

#[test]
fn args_are_passed_verbatim() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    // Quoting, spaces, empty args and glob characters survive untouched.
    b.set_args(&[
        "sh",
        "-c",
        "for a in \"$@\"; do echo \"arg=[$a]\"; done",
        "zero",
        "one two",
        "",
        "*",
        "$HOME",
    ]);
    let id = rt.id("args");
    let out = rt.run_ok(&b, &id);
    let got: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("arg=")).collect();
    assert_eq!(got, vec!["[one two]", "[]", "[*]", "[$HOME]"], "{out}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn env_is_set() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["env"] =
        json!(["PATH=/bin:/oxit/bin", "OXIT_VAR=hello world", "OXIT_EMPTY="]);
    b.set_script("env; echo path=$PATH; echo var=$OXIT_VAR; echo empty=[${OXIT_EMPTY-unset}]");
    let id = rt.id("env");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "path"), "/bin:/oxit/bin", "{out}");
    assert_eq!(must_field(&out, "var"), "hello world", "{out}");
    assert_eq!(must_field(&out, "empty"), "[]", "{out}");
    assert!(out.lines().any(|l| l == "OXIT_VAR=hello world"), "{out}");
    // Nothing of the runtime's own environment leaks in.
    let mut b2 = Bundle::new();
    b2.set_script("env");
    let id2 = rt.id("env2");
    b2.write_config(&id2);
    let mut c = rt.command();
    c.env("OXIT_HOST_ONLY", "leak")
        .arg("run")
        .arg("--bundle")
        .arg(b2.path())
        .arg(&id2);
    let out2 = run_with_timeout(&mut c, TIMEOUT, None).ok().stdout;
    assert!(!out2.contains("OXIT_HOST_ONLY"), "host env leaked: {out2}");
    assert!(!out2.contains("CARGO"), "host env leaked: {out2}");
    rt.assert_no_leftovers(&b2, &id2);
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn cwd_is_set_and_created() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    fs::create_dir_all(b.rootfs().join("srv/app")).unwrap();
    b.config["process"]["cwd"] = json!("/srv/app");
    b.set_script("echo cwd=$(pwd)");
    let id = rt.id("cwd");
    assert_eq!(must_field(&rt.run_ok(&b, &id), "cwd"), "/srv/app");

    // A missing cwd is created (runc does; the read-only root is remounted
    // after it is made).
    let mut b = Bundle::new();
    b.config["process"]["cwd"] = json!("/does/not/exist/yet");
    b.set_script("echo cwd=$(pwd)");
    let id = rt.id("cwd2");
    assert_eq!(
        must_field(&rt.run_ok(&b, &id), "cwd"),
        "/does/not/exist/yet"
    );
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn user_uid_gid_additional_gids() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [2000, 3000]});
    b.set_script("grep -E '^(Uid|Gid|Groups):' /proc/self/status; echo id=$(id -u):$(id -g)");
    let id = rt.id("user");
    let out = rt.run_ok(&b, &id);
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        norm(status_field(&out, "Uid").unwrap_or("")),
        "1000 1000 1000 1000",
        "{out}"
    );
    assert_eq!(
        norm(status_field(&out, "Gid").unwrap_or("")),
        "1001 1001 1001 1001",
        "{out}"
    );
    let mut groups: Vec<u32> = status_field(&out, "Groups")
        .unwrap_or("")
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    groups.sort();
    groups.retain(|g| *g != 1001); // the primary gid may or may not be listed
    assert_eq!(groups, vec![2000, 3000], "{out}");
    assert_eq!(must_field(&out, "id"), "1000:1001");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn user_without_additional_gids_has_no_host_groups() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["user"] = json!({"uid": 0, "gid": 0});
    b.set_script("grep '^Groups:' /proc/self/status");
    let id = rt.id("nogroups");
    let out = rt.run_ok(&b, &id);
    let groups: Vec<&str> = status_field(&out, "Groups")
        .unwrap_or("")
        .split_whitespace()
        .filter(|g| *g != "0")
        .collect();
    assert!(groups.is_empty(), "unexpected supplementary groups: {out}");
}

#[test]
fn umask() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["user"]["umask"] = json!(0o027);
    b.config["root"]["readonly"] = json!(false);
    b.set_script("echo umask=$(umask); touch /tmp/f; mkdir /tmp/d; echo f=$(stat -c %a /tmp/f); echo d=$(stat -c %a /tmp/d)");
    let id = rt.id("umask");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "umask"), "0027", "{out}");
    assert_eq!(must_field(&out, "f"), "640", "{out}");
    assert_eq!(must_field(&out, "d"), "750", "{out}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn rlimits() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 500, "hard": 1000},
        {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
        {"type": "RLIMIT_NPROC", "soft": 3000, "hard": 4000}
    ]);
    b.set_script("echo soft=$(ulimit -n); echo hard=$(ulimit -Hn); cat /proc/self/limits");
    let id = rt.id("rlimit");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "soft"), "500", "{out}");
    assert_eq!(must_field(&out, "hard"), "1000", "{out}");
    let limit = |name: &str| -> Vec<String> {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not in {out}"));
        line[name.len()..]
            .split_whitespace()
            .take(2)
            .map(String::from)
            .collect()
    };
    assert_eq!(limit("Max open files"), vec!["500", "1000"], "{out}");
    assert_eq!(limit("Max core file size"), vec!["4096", "8192"], "{out}");
    assert_eq!(limit("Max processes"), vec!["3000", "4000"], "{out}");
    rt.assert_no_leftovers(&b, &id);
}

fn cap_lines(out: &str) -> [u64; 5] {
    let get = |k: &str| {
        parse_cap_hex(status_field(out, k).unwrap_or_else(|| panic!("{k} missing in {out}")))
    };
    [
        get("CapInh"),
        get("CapPrm"),
        get("CapEff"),
        get("CapBnd"),
        get("CapAmb"),
    ]
}

#[test]
fn capabilities_non_root() {
    // For a non-root user without file capabilities, execve leaves:
    // Inh = inheritable, Prm = Eff = Amb = ambient, Bnd = bounding.
    let bnd = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
        "CAP_AUDIT_WRITE",
        "CAP_NET_RAW",
    ];
    let prm = [
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_CHOWN",
        "CAP_NET_RAW",
    ];
    let eff = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let inh = ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"];
    let amb = ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"];
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["process"]["capabilities"] = json!({"bounding": bnd, "permitted": prm, "effective": eff, "inheritable": inh, "ambient": amb});
    b.set_script("grep ^Cap /proc/self/status");
    let id = rt.id("capsuser");
    let out = rt.run_ok(&b, &id);
    let [ci, cp, ce, cb, ca] = cap_lines(&out);
    assert_eq!(cb, cap_mask(&bnd), "CapBnd\n{out}");
    assert_eq!(ci, cap_mask(&inh), "CapInh\n{out}");
    assert_eq!(ca, cap_mask(&amb), "CapAmb\n{out}");
    assert_eq!(cp, cap_mask(&amb), "CapPrm (= ambient after exec)\n{out}");
    assert_eq!(ce, cap_mask(&amb), "CapEff (= ambient after exec)\n{out}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn capabilities_root_with_nnp() {
    // uid 0 with no_new_privs: execve cannot gain beyond the permitted set
    // the runtime configured, and root's effective set equals permitted.
    let bnd = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
        "CAP_AUDIT_WRITE",
    ];
    let prm = ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"];
    let inh = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let amb = ["CAP_NET_BIND_SERVICE"];
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.config["process"]["capabilities"] = json!({"bounding": bnd, "permitted": prm, "effective": prm, "inheritable": inh, "ambient": amb});
    b.set_script("grep ^Cap /proc/self/status; grep ^NoNewPrivs /proc/self/status");
    let id = rt.id("capsroot");
    let out = rt.run_ok(&b, &id);
    let [ci, cp, ce, cb, ca] = cap_lines(&out);
    assert_eq!(cb, cap_mask(&bnd), "CapBnd\n{out}");
    assert_eq!(ci, cap_mask(&inh), "CapInh\n{out}");
    assert_eq!(ca, cap_mask(&amb), "CapAmb\n{out}");
    assert_eq!(cp, cap_mask(&prm), "CapPrm\n{out}");
    assert_eq!(ce, cap_mask(&prm), "CapEff\n{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), Some("1"), "{out}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn capabilities_drop_is_enforced() {
    // Without CAP_CHOWN, chown of a file owned by root to another uid fails.
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    b.set_script("touch /tmp/f; chown 1234 /tmp/f && echo chown=ok || echo chown=denied; grep ^CapBnd /proc/self/status");
    let id = rt.id("capdrop");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "chown"), "denied", "{out}");
    assert_eq!(
        parse_cap_hex(status_field(&out, "CapBnd").unwrap()),
        cap_mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    );
}

#[test]
fn no_new_privileges() {
    let rt = Runtime::new();
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let mut b = Bundle::new();
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.set_script("grep ^NoNewPrivs /proc/self/status");
        let id = rt.id("nnp");
        let out = rt.run_ok(&b, &id);
        assert_eq!(
            status_field(&out, "NoNewPrivs"),
            Some(want),
            "noNewPrivileges={nnp}: {out}"
        );
        rt.assert_no_leftovers(&b, &id);
    }
}

#[test]
fn oom_score_adj() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["oomScoreAdj"] = json!(500);
    b.set_script("echo adj=$(cat /proc/self/oom_score_adj)");
    let id = rt.id("oom");
    assert_eq!(must_field(&rt.run_ok(&b, &id), "adj"), "500");
    rt.assert_no_leftovers(&b, &id);
}

// ---------------------------------------------------------------------------
// fd hygiene
// ---------------------------------------------------------------------------

/// `ls /proc/self/fd` inside prints the fds of `ls` itself: the inherited
/// ones plus the one it opens for the directory (the highest number).
fn fds_of_ls(out: &str) -> Vec<u32> {
    let mut v: Vec<u32> = out
        .lines()
        .skip_while(|l| *l != "FDS")
        .skip(1)
        .take_while(|l| *l != "END")
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    v.sort();
    v
}

/// Make `fd` appear (without CLOEXEC) as `target` in the child.
fn leak_fd_as(cmd: &mut std::process::Command, fd: i32, target: i32) {
    // SAFETY: the pre_exec closure only calls async-signal-safe fcntl/dup2/close.
    unsafe {
        cmd.pre_exec(move || {
            let tmp = libc::fcntl(fd, libc::F_DUPFD, 100);
            if tmp < 0 || libc::dup2(tmp, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(tmp);
            Ok(())
        });
    }
}

#[test]
fn only_stdio_fds_inside() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("echo FDS; ls -1 /proc/self/fd; echo END");
    let id = rt.id("fds");
    b.write_config(&id);
    // Leak an extra fd (5) into the runtime: it must not reach the container.
    let leak = fs::File::open("/etc/hostname")
        .or_else(|_| fs::File::open("/etc/passwd"))
        .unwrap();
    let mut c = rt.command();
    c.arg("run").arg("--bundle").arg(b.path()).arg(&id);
    leak_fd_as(&mut c, leak.as_raw_fd(), 5);
    let out = run_with_timeout(&mut c, TIMEOUT, None).ok();
    let fds = fds_of_ls(&out.stdout);
    assert_eq!(
        fds.len(),
        4,
        "expected 0,1,2 + ls's own dir fd: {}",
        out.stdout
    );
    assert_eq!(&fds[..3], &[0, 1, 2], "{}", out.stdout);
    assert_eq!(
        fds[3], 3,
        "ls's directory fd should be the lowest free one: {}",
        out.stdout
    );
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn preserve_fds() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script(
        "echo FDS; ls -1 /proc/self/fd; echo END; echo fd3=$(cat <&3); echo fd4=$(cat <&4)",
    );
    let id = rt.id("preserve");
    b.write_config(&id);
    let f3 = rt.scratch().join("fd3.txt");
    let f4 = rt.scratch().join("fd4.txt");
    fs::write(&f3, "three\n").unwrap();
    fs::write(&f4, "four\n").unwrap();
    let h3 = fs::File::open(&f3).unwrap();
    let h4 = fs::File::open(&f4).unwrap();
    let h5 = fs::File::open(&f4).unwrap();
    let mut c = rt.command();
    c.arg("run")
        .arg("--preserve-fds")
        .arg("2")
        .arg("--bundle")
        .arg(b.path())
        .arg(&id);
    leak_fd_as(&mut c, h3.as_raw_fd(), 3);
    leak_fd_as(&mut c, h4.as_raw_fd(), 4);
    // fd 5 is beyond --preserve-fds and must be closed.
    leak_fd_as(&mut c, h5.as_raw_fd(), 5);
    let out = run_with_timeout(&mut c, TIMEOUT, None).ok();
    let fds = fds_of_ls(&out.stdout);
    assert_eq!(
        fds,
        vec![0, 1, 2, 3, 4, 5],
        "fd 5 must be ls's own, not the leaked one: {}",
        out.stdout
    );
    assert_eq!(must_field(&out.stdout, "fd3"), "three", "{}", out.stdout);
    assert_eq!(must_field(&out.stdout, "fd4"), "four", "{}", out.stdout);
    rt.assert_no_leftovers(&b, &id);
}

/// A container's processes do not keep the CPU affinity of whoever ran
/// the runtime (runc resets it since 1.3.1): oxrun run, and exec, under a
/// one-CPU affinity give the container every CPU its cpuset allows.
#[test]
fn cpu_affinity_of_the_caller_is_not_inherited() {
    let online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let online = online.trim().to_string();
    require!(online != "0", "one CPU online: nothing to reset");
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("grep Cpus_allowed_list /proc/self/status; sleep 100");
    let id = rt.id("affreset");
    b.write_config(&id);
    let pinned = |args: &[&str]| {
        let mut c = rt.command();
        c.args(args);
        // SAFETY: only sched_setaffinity, async-signal-safe, in the child
        // between fork and exec.
        unsafe {
            c.pre_exec(|| {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(0, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        run_with_timeout(&mut c, TIMEOUT, Some(&rt.output_path(&id)))
    };
    pinned(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]).ok();
    let out = rt.wait_output(&id, "Cpus_allowed_list", TIMEOUT);
    assert!(
        out.trim().ends_with(&online),
        "init: {out} (online: {online})"
    );
    let ex = pinned(&[
        "exec",
        &id,
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
    ])
    .ok();
    assert!(
        ex.stdout.trim().ends_with(&online),
        "exec: {} (online: {online})",
        ex.stdout
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}
