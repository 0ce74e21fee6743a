//! `oxrun features` tells the truth: each claim it makes is proved by
//! running a container that uses it, and what it reports unsupported is
//! refused. The lists are read from the runtime's own output, so a claim
//! added later is tested without editing this file.

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use integration::*;
use serde_json::{json, Value};

fn features(rt: &Runtime) -> Value {
    let out = rt.cmd(&["features"]).ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("features is not JSON: {e}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// Each namespace listed: one container creates them all, and each link
/// under /proc/self/ns differs from the host's.
#[test]
fn every_listed_namespace_is_created() {
    let rt = Runtime::new();
    let f = features(&rt);
    let kinds = strings(&f["linux"]["namespaces"]);
    assert!(kinds.len() >= 8, "{kinds:?}");
    let mut b = Bundle::new();
    b.use_userns();
    for k in &kinds {
        b.remove_namespace(k);
        b.add_namespace(json!({"type": k}));
    }
    let proc_name = |k: &str| match k {
        "mount" => "mnt".to_string(),
        "network" => "net".to_string(),
        k => k.to_string(),
    };
    let script: String = kinds
        .iter()
        .map(|k| {
            let n = proc_name(k);
            format!("echo {k}=$(readlink /proc/self/ns/{n}); ")
        })
        .collect();
    b.set_script(&script);
    let id = rt.id("featns");
    let out = rt.run_ok(&b, &id);
    for k in &kinds {
        let host = host_ns(&proc_name(k));
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} line: {out}"));
        let inside = line.split_once('=').map(|x| x.1).unwrap_or_default();
        assert!(
            !inside.is_empty() && inside != host,
            "{k}: inside {inside:?}, host {host:?}"
        );
    }
    rt.assert_no_leftovers(&b, &id);
}

/// Each mount option listed parses and mounts: every filesystem option on
/// a tmpfs of its own, bind/rbind on a bind mount, remount on a mount made
/// just before, idmap/ridmap on an idmapped bind mount; all in one
/// container, whose /proc/self/mountinfo must show every destination.
#[test]
fn every_listed_mount_option_mounts() {
    let rt = Runtime::new();
    let f = features(&rt);
    let options = strings(&f["mountOptions"]);
    let src = rt.scratch().join("featmnt");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    let mut b = Bundle::new();
    let mut dests = Vec::new();
    let mut idmapped = Vec::new();
    for (i, o) in options.iter().enumerate() {
        let dest = format!("/o/{i}");
        match o.as_str() {
            "bind" | "rbind" => {
                b.add_mount(
                    json!({"destination": dest, "type": "bind", "source": src, "options": [o]}),
                );
            }
            "idmap" | "ridmap" => {
                let map = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
                b.add_mount(json!({"destination": dest, "type": "bind", "source": src,
                                   "options": ["rbind", o], "uidMappings": map, "gidMappings": map}));
                idmapped.push(dest.clone());
            }
            "remount" => {
                b.add_mount(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
                b.add_mount(
                    json!({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                                   "options": ["remount", "ro"]}),
                );
            }
            _ => {
                b.add_mount(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": [o]}));
            }
        }
        dests.push((o.clone(), dest));
    }
    let mut script = String::from("cat /proc/self/mountinfo; ");
    for d in &idmapped {
        script.push_str(&format!("stat -c 'idmap {d} %u' {d}/f; "));
    }
    b.set_script(&script);
    let id = rt.id("featmnt");
    let out = rt.run_with(&b, &id, &[]);
    assert!(out.success(), "{}", out.describe());
    for (o, d) in &dests {
        assert!(
            out.stdout.lines().any(|l| l.split(' ').nth(4) == Some(d)),
            "option {o:?}: {d} is not mounted:\n{}",
            out.stdout
        );
        if o == "remount" {
            let line = out
                .stdout
                .lines()
                .rfind(|l| l.split(' ').nth(4) == Some(d))
                .unwrap_or_default();
            assert!(
                line.split(' ').nth(5).unwrap_or("").starts_with("ro"),
                "remount,ro: {line}"
            );
        }
    }
    for d in &idmapped {
        assert!(
            out.stdout.contains(&format!("idmap {d} 1000")),
            "{d}: on-disk root shows as 1000 through the idmapped mount: {}",
            out.stdout
        );
    }
    assert!(!out.stderr.contains("not supported"), "{}", out.stderr);
    rt.assert_no_leftovers(&b, &id);
}

/// A profile allowing everything but `mkdir`/`mkdirat`, which get `action`.
fn mkdir_profile(action: &str, flags: &[&str]) -> Value {
    let mut rule = json!({"names": ["mkdir", "mkdirat"], "action": action});
    if action == "SCMP_ACT_ERRNO" {
        rule["errnoRet"] = json!(13);
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "flags": flags,
        "syscalls": [rule]
    })
}

const MKDIR_SCRIPT: &str = "mkdir /dev/shm/d 2>/dev/shm/err; echo rc=$?; cat /dev/shm/err";

/// Every seccomp action listed does what it says on `mkdir`.
#[test]
fn every_listed_seccomp_action_acts() {
    let rt = Runtime::new();
    let f = features(&rt);
    for action in strings(&f["linux"]["seccomp"]["actions"]) {
        let mut b = Bundle::new();
        b.config["linux"]["seccomp"] = mkdir_profile(&action, &[]);
        b.set_script(MKDIR_SCRIPT);
        let id = rt.id("featsc");
        let (want, agent): (&[&str], _) = match action.as_str() {
            "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG" => (&["rc=0"], None),
            "SCMP_ACT_ERRNO" => (&["rc=1", "ermission denied"], None),
            // SIGSYS kills the process: the shell reports 128 + 31.
            "SCMP_ACT_KILL"
            | "SCMP_ACT_KILL_PROCESS"
            | "SCMP_ACT_KILL_THREAD"
            | "SCMP_ACT_TRAP" => (&["rc=159"], None),
            // No tracer: the syscall fails with ENOSYS.
            "SCMP_ACT_TRACE" => (&["rc=1", "not implemented"], None),
            // The agent gets the listener fd and closes it unanswered:
            // the syscall then fails with ENOSYS.
            "SCMP_ACT_NOTIFY" => {
                let path = rt.scratch().join(format!("agent-{id}.sock"));
                let l = UnixListener::bind(&path).expect("bind agent socket");
                b.config["linux"]["seccomp"]["listenerPath"] = json!(path);
                (
                    &["rc=1", "not implemented"][..],
                    Some(std::thread::spawn(move || agent(l))),
                )
            }
            other => panic!("features lists {other}, which this test does not know"),
        };
        let out = rt.run_with(&b, &id, &[]);
        assert!(out.success(), "{action}: {}", out.describe());
        for w in want {
            assert!(
                out.stdout.contains(w),
                "{action}: want {w:?}: {}",
                out.stdout
            );
        }
        if let Some(a) = agent {
            let got = a.join().expect("agent thread");
            assert!(got.contains("seccompFd"), "{action}: agent got {got:?}");
        }
        rt.assert_no_leftovers(&b, &id);
    }
}

/// Accept one connection within 10 s, read the message (whose SCM_RIGHTS
/// fd is dropped, closing the listener), return its text.
fn agent(l: UnixListener) -> String {
    l.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match l.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false).expect("blocking");
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let mut buf = vec![0u8; 64 * 1024];
                let n = s.read(&mut buf).unwrap_or(0);
                return String::from_utf8_lossy(&buf[..n]).into_owned();
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return format!("no connection: {e}"),
        }
    }
}

/// Every supported seccomp flag loads (the ERRNO rule still acts), and
/// every flag known but not supported is refused naming it.
/// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV only exists for a filter with a
/// listener (the kernel refuses it otherwise), so it goes with a NOTIFY
/// rule whose agent closes the listener unanswered (mkdir: ENOSYS);
/// seccomp_notify.rs shows what it changes.
#[test]
fn seccomp_flags_supported_load_and_unsupported_are_refused() {
    let rt = Runtime::new();
    let f = features(&rt);
    let supported = strings(&f["linux"]["seccomp"]["supportedFlags"]);
    for flag in &supported {
        let mut b = Bundle::new();
        let id = rt.id("featflag");
        let (want, agent): (&[&str], _) = if flag == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" {
            b.config["linux"]["seccomp"] = mkdir_profile("SCMP_ACT_NOTIFY", &[flag]);
            let path = rt.scratch().join(format!("agent-{id}.sock"));
            let l = UnixListener::bind(&path).expect("bind agent socket");
            b.config["linux"]["seccomp"]["listenerPath"] = json!(path);
            (
                &["rc=1", "not implemented"][..],
                Some(std::thread::spawn(move || agent(l))),
            )
        } else {
            b.config["linux"]["seccomp"] = mkdir_profile("SCMP_ACT_ERRNO", &[flag]);
            (&["rc=1", "ermission denied"][..], None)
        };
        b.set_script(&format!(
            "{MKDIR_SCRIPT}; grep -E '^Seccomp(_filters)?:' /proc/self/status"
        ));
        let out = rt.run_with(&b, &id, &[]).ok();
        for w in want.iter().chain(&["Seccomp:\t2", "Seccomp_filters:\t1"]) {
            assert!(out.stdout.contains(w), "{flag}: want {w:?}: {}", out.stdout);
        }
        if let Some(a) = agent {
            let got = a.join().expect("agent thread");
            assert!(got.contains("seccompFd"), "{flag}: agent got {got:?}");
        }
        rt.assert_no_leftovers(&b, &id);
    }
    for flag in strings(&f["linux"]["seccomp"]["knownFlags"]) {
        if supported.contains(&flag) {
            continue;
        }
        let mut b = Bundle::new();
        b.config["linux"]["seccomp"] = mkdir_profile("SCMP_ACT_ERRNO", &[&flag]);
        b.set_args(&["true"]);
        let id = rt.id("featbadflag");
        let out = rt.create(&b, &id).fails();
        out.assert_mentions(&[&flag]);
        rt.assert_no_leftovers(&b, &id);
    }
}

/// Claims of `false` are refused, naming the field: intelRdt (and its
/// schemata and monitoring), SELinux,
/// AppArmor (where the host has none: with AppArmor present the profile
/// is not applied, which this test cannot prove here).
#[test]
fn unsupported_features_are_refused() {
    let rt = Runtime::new();
    let f = features(&rt);
    type Setter = Box<dyn Fn(&mut Bundle)>;
    let mut cases: Vec<(&str, Setter)> = Vec::new();
    if f["linux"]["intelRdt"]["enabled"] == false {
        cases.push((
            "linux.intelRdt (closID)",
            Box::new(|b| b.config["linux"]["intelRdt"] = json!({"closID": "oxit"})),
        ));
    }
    if f["linux"]["intelRdt"]["schemata"] == false {
        cases.push((
            "linux.intelRdt (schemata)",
            Box::new(|b| b.config["linux"]["intelRdt"] = json!({"schemata": ["L3:0=f"]})),
        ));
    }
    if f["linux"]["intelRdt"]["monitoring"] == false {
        cases.push((
            "linux.intelRdt (enableMonitoring)",
            Box::new(|b| b.config["linux"]["intelRdt"] = json!({"enableMonitoring": true})),
        ));
    }
    if f["linux"]["selinux"]["enabled"] == false {
        cases.push((
            "process.selinuxLabel",
            Box::new(|b| {
                b.config["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0")
            }),
        ));
    }
    if f["linux"]["apparmor"]["enabled"] == false
        && !std::path::Path::new("/sys/kernel/security/apparmor").exists()
    {
        cases.push((
            "process.apparmorProfile",
            Box::new(|b| b.config["process"]["apparmorProfile"] = json!("oxit-profile")),
        ));
    }
    assert!(!cases.is_empty(), "features claims everything: {f}");
    for (field, set) in cases {
        let mut b = Bundle::new();
        set(&mut b);
        b.set_args(&["true"]);
        let id = rt.id("featno");
        // Refused at create or at start (run covers both).
        let out = rt.run_with(&b, &id, &[]);
        assert!(!out.success(), "{field} was accepted: {}", out.describe());
        out.assert_mentions(&[field]);
        rt.delete(&id, true);
        rt.assert_no_leftovers(&b, &id);
    }
}

/// The rest of the `linux` claims: netDevices and memoryPolicy are proved
/// in runtime_spec_linux.rs; here every memory policy mode listed is
/// recognized (a mode the host lacks fails at set_mempolicy, not at
/// parsing), and rdma, claimed true, is applied or refused for want of
/// the controller (never ignored).
#[test]
fn memory_policy_modes_and_rdma_are_recognized() {
    let rt = Runtime::new();
    let f = features(&rt);
    assert_eq!(f["linux"]["netDevices"]["enabled"], true);
    for mode in strings(&f["linux"]["memoryPolicy"]["modes"]) {
        let nodes = match mode.as_str() {
            "MPOL_DEFAULT" | "MPOL_LOCAL" => json!(null),
            _ => json!("0"),
        };
        let mut b = Bundle::new();
        b.config["linux"]["memoryPolicy"] = json!({"mode": mode, "nodes": nodes});
        b.set_script("head -1 /proc/self/numa_maps");
        let id = rt.id("featmpol");
        let out = rt.run_with(&b, &id, &[]);
        // Parsed: either applied, or the kernel's answer naming the field.
        assert!(
            out.success() || out.stderr.contains("linux.memoryPolicy: set_mempolicy"),
            "{mode}: {}",
            out.describe()
        );
        rt.assert_no_leftovers(&b, &id);
    }
    assert_eq!(f["linux"]["cgroup"]["rdma"], true);
    let mut b = Bundle::new();
    b.config["linux"]["resources"]["rdma"] = json!({"oxit_rdma0": {"hcaHandles": 1}});
    b.set_args(&["true"]);
    let id = rt.id("featrdma");
    let out = rt.run_with(&b, &id, &[]);
    // No host here has an RDMA device named oxit_rdma0: refused either for
    // the missing controller or by the kernel, naming the field.
    assert!(!out.success(), "{}", out.describe());
    out.assert_mentions(&["rdma"]);
    rt.delete(&id, true);
    rt.assert_no_leftovers(&b, &id);
}
