//! Namespaces: new ones differ from the host's, `path` joins an existing one,
//! user namespace id mappings, cgroup and time namespaces.

use integration::*;
use serde_json::json;
use std::fs;
use std::path::Path;

const KINDS: [&str; 8] = ["pid", "net", "ipc", "uts", "mnt", "cgroup", "user", "time"];

fn print_ns_script() -> String {
    KINDS
        .iter()
        .filter(|k| Path::new(&format!("/proc/self/ns/{k}")).exists())
        .map(|k| format!("echo ns_{k}=$(readlink /proc/self/ns/{k}); "))
        .collect()
}

#[test]
fn default_namespaces_differ_from_host() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script(
        &(print_ns_script()
            + "echo pid=$$; echo pids=$(ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' ')"),
    );
    let id = rt.id("nsdiff");
    let out = rt.run_ok(&b, &id);
    for k in ["pid", "net", "ipc", "uts", "mnt"] {
        let inside = must_field(&out, &format!("ns_{k}"));
        assert_ne!(inside, host_ns(k), "{k} namespace is the host's\n{out}");
        assert!(inside.starts_with(&format!("{k}:[")), "{inside}");
    }
    // Not requested: shared with the runtime (the host here).
    for k in ["user", "cgroup"] {
        assert_eq!(
            must_field(&out, &format!("ns_{k}")),
            host_ns(k),
            "{k} namespace should be shared\n{out}"
        );
    }
    assert_eq!(must_field(&out, "pid"), "1");
    let pids: Vec<u32> = must_field(&out, "pids")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.contains(&1), "{out}");
    assert!(
        pids.iter().all(|p| *p < 20),
        "host processes visible in the pid namespace: {pids:?}"
    );
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn no_namespaces_means_host_namespaces() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["namespaces"] = json!([{"type": "mount"}]);
    b.config.as_object_mut().unwrap().remove("hostname");
    b.set_script(&print_ns_script());
    let id = rt.id("nsshare");
    let out = rt.run_ok(&b, &id);
    for k in ["pid", "net", "ipc", "uts"] {
        assert_eq!(
            must_field(&out, &format!("ns_{k}")),
            host_ns(k),
            "{k}\n{out}"
        );
    }
    assert_ne!(must_field(&out, "ns_mnt"), host_ns("mnt"));
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn join_namespace_by_path() {
    let rt = Runtime::new();
    let mut first = Bundle::new();
    first.set_script(&(print_ns_script() + "echo ready; sleep 1000"));
    let id1 = rt.id("nsowner");
    rt.create_start(&first, &id1);
    let out1 = rt.wait_output(&id1, "ready", TIMEOUT);
    let pid1 = rt.state_ok(&id1)["pid"].as_i64().unwrap();

    let mut second = Bundle::new();
    second.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"}, {"type": "uts"},
        {"type": "network", "path": format!("/proc/{pid1}/ns/net")},
        {"type": "ipc", "path": format!("/proc/{pid1}/ns/ipc")}
    ]);
    second.set_script(&print_ns_script());
    let id2 = rt.id("nsjoin");
    let out2 = rt.run_ok(&second, &id2);
    assert_eq!(
        must_field(&out2, "ns_net"),
        must_field(&out1, "ns_net"),
        "net not joined"
    );
    assert_eq!(
        must_field(&out2, "ns_ipc"),
        must_field(&out1, "ns_ipc"),
        "ipc not joined"
    );
    assert_ne!(
        must_field(&out2, "ns_uts"),
        must_field(&out1, "ns_uts"),
        "uts must be new"
    );
    assert_ne!(must_field(&out2, "ns_net"), host_ns("net"));
    rt.assert_no_leftovers(&second, &id2);
    rt.delete(&id1, true).ok();
    rt.assert_no_leftovers(&first, &id1);
}

#[test]
fn user_namespace_with_mappings() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    b.use_userns();
    b.set_script(
        &(print_ns_script()
            + "echo uidmap=$(cat /proc/self/uid_map); echo gidmap=$(cat /proc/self/gid_map); \
               echo id=$(id -u):$(id -g); touch /tmp/created && echo made=yes"),
    );
    let id = rt.id("userns");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "uidmap"), "0 100000 65536", "{out}");
    assert_eq!(must_field(&out, "gidmap"), "0 100000 65536", "{out}");
    assert_eq!(must_field(&out, "id"), "0:0", "{out}");
    assert_ne!(must_field(&out, "ns_user"), host_ns("user"), "{out}");
    assert_eq!(must_field(&out, "made"), "yes", "{out}");
    use std::os::unix::fs::MetadataExt;
    let md = fs::metadata(b.rootfs().join("tmp/created")).unwrap();
    assert_eq!(
        (md.uid(), md.gid()),
        (100000, 100000),
        "container root must be host uid/gid 100000"
    );
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn cgroup_namespace() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.add_namespace(json!({"type": "cgroup"}));
    b.set_script(&(print_ns_script() + "echo CG; cat /proc/self/cgroup; echo END"));
    let id = rt.id("cgns");
    let out = rt.run_ok(&b, &id);
    assert_ne!(must_field(&out, "ns_cgroup"), host_ns("cgroup"), "{out}");
    let lines: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "CG")
        .skip(1)
        .take_while(|l| *l != "END")
        .collect();
    assert!(!lines.is_empty(), "{out}");
    for l in &lines {
        let path = l.splitn(3, ':').nth(2).unwrap_or("?");
        assert_eq!(path, "/", "cgroup path not the namespace root: {l}\n{out}");
    }
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn container_is_in_its_cgroup() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("echo ready; sleep 1000");
    let id = rt.id("cgpath");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    let pid = rt.state_ok(&id)["pid"].as_i64().unwrap();
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!("/oxit/{id}");
    for l in cg.lines() {
        let ctrl = l.split(':').nth(1).unwrap_or("");
        if ["memory", "pids", "cpu,cpuacct", "cpu", "devices", "freezer"].contains(&ctrl) {
            assert_eq!(l.splitn(3, ':').nth(2), Some(want.as_str()), "{cg}");
        }
    }
    assert!(
        Path::new(&format!("/sys/fs/cgroup/memory{want}")).is_dir()
            || Path::new(&format!("/sys/fs/cgroup{want}")).is_dir()
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// runc 1.1.5 is NON-COMPLIANT here: it predates the time namespace
/// (runtime-spec 1.1 `time` + `linux.timeOffsets`) and rejects the config.
#[test]
fn time_namespace_offsets() {
    require!(
        Path::new("/proc/self/ns/time").exists(),
        "kernel has no time namespace (/proc/self/ns/time missing)"
    );
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let year = 365 * 24 * 3600u64;
    b.add_namespace(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": year, "nanosecs": 0},
        "boottime": {"secs": 2 * year, "nanosecs": 0}
    });
    b.set_script(
        &(print_ns_script()
            + "echo uptime=$(cut -d. -f1 /proc/uptime); cat /proc/self/timens_offsets"),
    );
    let id = rt.id("timens");
    let out = rt.run_ok(&b, &id);
    assert_ne!(must_field(&out, "ns_time"), host_ns("time"), "{out}");
    let host_up: u64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let up: u64 = must_field(&out, "uptime").parse().unwrap();
    assert!(
        up >= 2 * year && up <= 2 * year + host_up + 60,
        "uptime {up} (host {host_up})\n{out}"
    );
    let offs = |clock: &str| {
        out.lines()
            .find(|l| l.starts_with(clock))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
    };
    assert_eq!(
        offs("monotonic").as_deref(),
        Some(year.to_string().as_str()),
        "{out}"
    );
    assert_eq!(
        offs("boottime").as_deref(),
        Some((2 * year).to_string().as_str()),
        "{out}"
    );
    rt.assert_no_leftovers(&b, &id);
}
