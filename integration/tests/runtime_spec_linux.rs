//! runtime-spec 1.3 `linux` fields, checked from inside the container and
//! on the host: `netDevices` (host interfaces moved into the container's
//! network namespace), `memoryPolicy` (set_mempolicy), `intelRdt` (refused
//! here: no resctrl) and the `tmpcopyup` mount option. Bad input fails
//! `create` naming the field and leaves nothing behind (a device that had
//! moved is back on the host with its address).

use std::time::{Duration, Instant};

use integration::*;
use serde_json::json;

/// A veth pair on the host, made by the test (this VM's kernel has veth
/// but no dummy driver); deleted on drop if still there.
struct Veth {
    a: String,
    b: String,
}

impl Veth {
    fn new(tag: &str) -> Veth {
        // Interface names have at most 15 bytes.
        let n = unique("x");
        let hash = n
            .bytes()
            .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(c as u32));
        let base = format!("ox{tag}{:06x}", hash & 0xff_ffff);
        let (a, b) = (format!("{base}a"), format!("{base}b"));
        host(
            "ip",
            &["link", "add", &a, "type", "veth", "peer", "name", &b],
        );
        Veth { a, b }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for n in [&self.a, &self.b] {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", n])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// `ip -o addr show dev <name>` on the host, or None if it has no such device.
fn host_link(name: &str) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show", "dev", name])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn host_addrs(name: &str) -> String {
    host("ip", &["-o", "addr", "show", "dev", name]).stdout
}

fn wait_host_link_gone(name: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if host_link(name).is_none() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Two devices: one renamed, one by a `%d` template. Both are moved at
/// create (gone from the host before start), come up inside with their
/// permanent global address (a link-scope one is not kept, as the spec
/// says), and die with the namespace: veth is virtual, so the kernel
/// destroys it (and its host peer) when the container's namespace goes;
/// the runtime does not move anything back on delete.
#[test]
fn net_devices_move_rename_keep_global_addresses_and_come_up() {
    let v1 = Veth::new("m");
    let v2 = Veth::new("t");
    host("ip", &["addr", "add", "10.213.7.2/24", "dev", &v1.a]);
    host(
        "ip",
        &[
            "addr",
            "add",
            "10.213.8.2/24",
            "dev",
            &v1.a,
            "scope",
            "link",
        ],
    );
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["netDevices"] = json!({
        v1.a.clone(): {"name": "ctr0"},
        v2.a.clone(): {"name": "tpl%d"},
    });
    b.set_script(
        "ip -o addr show dev ctr0; ip -o link show dev ctr0; ip -o link show dev tpl0; \
         echo NET: $(ls /sys/class/net); echo DONE; sleep 100",
    );
    let id = rt.id("netdev");
    rt.create(&b, &id).ok();
    assert!(host_link(&v1.a).is_none(), "{} still on the host", v1.a);
    assert!(host_link(&v2.a).is_none(), "{} still on the host", v2.a);
    rt.start(&id).ok();
    let out = rt.wait_output(&id, "DONE", Duration::from_secs(10));
    assert!(out.contains("inet 10.213.7.2/24"), "address kept: {out}");
    assert!(
        !out.contains("10.213.8.2"),
        "a link-scope address is not kept: {out}"
    );
    let ctr0 = out
        .lines()
        .find(|l| l.contains("ctr0") && l.contains('<'))
        .unwrap_or_else(|| panic!("no ctr0 link: {out}"));
    assert!(
        ctr0.contains(",UP") || ctr0.contains("<UP"),
        "ctr0 is up: {ctr0}"
    );
    assert!(out.contains("tpl0"), "template name tpl%d gave tpl0: {out}");
    let net = out.lines().find(|l| l.starts_with("NET:")).unwrap_or("");
    assert!(
        net.contains("ctr0") && net.contains("tpl0") && !net.contains(&v1.a),
        "{net}"
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
    // Virtual devices are destroyed with the namespace (veth: both ends).
    assert!(wait_host_link_gone(&v1.b), "{} outlived its peer", v1.b);
    assert!(wait_host_link_gone(&v2.b), "{} outlived its peer", v2.b);
    assert!(host_link(&v1.a).is_none() && host_link("ctr0").is_none());
}

/// Each bad `netDevices` fails create naming the field, and every device
/// is on the host as before: same name, address and up state, also when
/// it had already moved (a later device missing, or the process failing
/// to start after the move).
#[test]
fn bad_net_devices_fail_create_and_leave_the_host_as_it_was() {
    let v = Veth::new("e");
    host("ip", &["addr", "add", "10.213.9.2/24", "dev", &v.a]);
    host("ip", &["link", "set", &v.a, "up"]);
    let before = host_addrs(&v.a);
    assert!(before.contains("10.213.9.2/24"), "{before}");
    let rt = Runtime::new();
    let self_netns = format!("/proc/{}/ns/net", std::process::id());
    // (netDevices, replacement of the "network" namespace entry, words, case)
    type Case<'a> = (
        serde_json::Value,
        Option<Option<serde_json::Value>>,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            json!({"oxnosuchdev0": {}}),
            None,
            "linux.netDevices.oxnosuchdev0",
            "missing host device",
        ),
        (
            json!({v.a.clone(): {"name": "lo"}}),
            None,
            "linux.netDevices",
            "name clash with the container's lo",
        ),
        (
            json!({v.a.clone(): {"name": "a/b"}}),
            None,
            "linux.netDevices",
            "invalid name",
        ),
        (
            json!({v.a.clone(): {}}),
            Some(None),
            "linux.netDevices",
            "no network namespace",
        ),
        (
            json!({v.a.clone(): {}}),
            Some(Some(json!({"type": "network", "path": self_netns}))),
            "linux.netDevices",
            "the runtime's own network namespace",
        ),
        // Sorted by name, v.a ("ox...") moves before "zz..." is found missing.
        (
            json!({v.a.clone(): {"name": "ctr0"}, "zznosuchdev": {}}),
            None,
            "linux.netDevices.zznosuchdev",
            "a device moved, then a later one is missing",
        ),
    ];
    for (devs, namespaces, words, what) in cases {
        let mut b = Bundle::new();
        b.config["linux"]["netDevices"] = devs;
        if let Some(ns) = namespaces {
            b.remove_namespace("network");
            if let Some(ns) = ns {
                b.add_namespace(ns);
            }
        }
        b.set_args(&["true"]);
        let id = rt.id("badnetdev");
        let out = rt.create(&b, &id).fails();
        out.assert_mentions(&[words]);
        rt.assert_no_leftovers(&b, &id);
        let link = host_link(&v.a).unwrap_or_else(|| panic!("{what}: {} gone from the host", v.a));
        assert!(
            link.contains(",UP") || link.contains("<UP"),
            "{what}: {link}"
        );
        assert_eq!(host_addrs(&v.a), before, "{what}: addresses changed");
    }
    // The move succeeds, then create fails later (no such program): the
    // device comes back too.
    let mut b = Bundle::new();
    b.config["linux"]["netDevices"] = json!({v.a.clone(): {"name": "ctr0"}});
    b.set_args(&["/no/such/program"]);
    let id = rt.id("netdevlate");
    rt.create(&b, &id).fails();
    rt.assert_no_leftovers(&b, &id);
    assert!(host_link(&v.a).is_some(), "{} not given back", v.a);
    assert_eq!(host_addrs(&v.a), before, "addresses after a late failure");
}

/// numa_maps shows the task's policy on every mapping without one of its
/// own: what set_mempolicy(2) in init left for the program.
fn first_policy(out: &str) -> String {
    out.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn memory_policy_applies_to_the_process_and_exec() {
    let rt = Runtime::new();
    for (policy, want) in [
        (json!({"mode": "MPOL_BIND", "nodes": "0"}), "bind:0"),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
            "bind=static:0",
        ),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}),
            "interleave:0",
        ),
        (json!({"mode": "MPOL_PREFERRED", "nodes": "0"}), "prefer:0"),
        (json!({"mode": "MPOL_LOCAL"}), "local"),
    ] {
        let mut b = Bundle::new();
        b.config["linux"]["memoryPolicy"] = policy;
        b.set_script("cat /proc/self/numa_maps");
        let id = rt.id("mempol");
        let out = rt.run_with(&b, &id, &[]).ok();
        assert_eq!(first_policy(&out.stdout), want, "{}", out.stdout);
        rt.assert_no_leftovers(&b, &id);
    }
    // An exec'd process gets it too.
    let mut b = Bundle::new();
    b.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"});
    b.set_args(&["sleep", "100"]);
    let id = rt.id("mempolexec");
    rt.create_start(&b, &id);
    let out = rt.cmd(&["exec", &id, "cat", "/proc/self/numa_maps"]).ok();
    assert_eq!(first_policy(&out.stdout), "interleave:0", "{}", out.stdout);
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn bad_memory_policy_fails_create_naming_the_field() {
    let nodes = std::fs::read_to_string("/sys/devices/system/node/online").unwrap_or_default();
    require!(
        nodes.trim() == "0",
        "this test wants a host with NUMA node 0 only (online: {nodes:?})"
    );
    let rt = Runtime::new();
    for (policy, words) in [
        (
            json!({"mode": "MPOL_BIND", "nodes": "1"}),
            "linux.memoryPolicy.nodes",
        ),
        (json!({"mode": "MPOL_BIND"}), "linux.memoryPolicy.nodes"),
        (
            json!({"mode": "MPOL_LOCAL", "nodes": "0"}),
            "linux.memoryPolicy.nodes",
        ),
        (json!({"mode": "MPOL_FOO"}), "linux.memoryPolicy.mode"),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_BOGUS"]}),
            "linux.memoryPolicy.flags",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
            "linux.memoryPolicy",
        ),
    ] {
        let mut b = Bundle::new();
        b.config["linux"]["memoryPolicy"] = policy.clone();
        b.set_args(&["true"]);
        let id = rt.id("badmempol");
        let out = rt.create(&b, &id).fails();
        out.assert_mentions(&[words]);
        rt.assert_no_leftovers(&b, &id);
    }
}

/// intelRdt: the spec requires an error without a mounted resctrl; oxrun
/// does not manage resctrl groups yet, so it refuses the field either way.
#[test]
fn intel_rdt_is_refused_naming_the_field() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["intelRdt"] = json!({"closID": "oxit", "l3CacheSchema": "L3:0=f"});
    b.set_args(&["true"]);
    let id = rt.id("rdt");
    let out = rt.create(&b, &id).fails();
    out.assert_mentions(&["linux.intelRdt"]);
    rt.assert_no_leftovers(&b, &id);
}

/// mountLabel: refused like process.selinuxLabel (no SELinux here), never
/// silently unlabelled; personality flags (the spec defines none) warned.
#[test]
fn mount_label_is_refused_and_personality_flags_warned() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
    b.set_args(&["true"]);
    let id = rt.id("mountlabel");
    rt.create(&b, &id)
        .fails()
        .assert_mentions(&["linux.mountLabel"]);
    rt.assert_no_leftovers(&b, &id);
    let mut b = Bundle::new();
    b.config["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["SOME_FLAG"]});
    b.set_args(&["true"]);
    let id = rt.id("persflags");
    let out = rt.run_with(&b, &id, &[]);
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("linux.personality.flags"),
        "{}",
        out.stderr
    );
    rt.assert_no_leftovers(&b, &id);
}

/// tmpcopyup: the new tmpfs holds a copy of what its destination held
/// (files, nested dirs, symlinks, modes and owners), is a tmpfs, and
/// writes to it do not reach the image.
#[test]
fn tmpcopyup_fills_the_tmpfs_from_the_destination() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let d = b.rootfs().join("data");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(d.join("a.txt"), "hello\n").unwrap();
    std::fs::write(d.join("sub/b.txt"), "nested\n").unwrap();
    std::os::unix::fs::symlink("a.txt", d.join("link")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join("a.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(d.join("sub/b.txt"), Some(1234), Some(5678)).unwrap();
    b.add_mount(json!({
        "destination": "/data", "type": "tmpfs", "source": "tmpfs",
        "options": ["tmpcopyup", "nosuid", "mode=755"]
    }));
    b.set_script(
        "cat /data/a.txt /data/sub/b.txt; readlink /data/link; stat -c '%a %n' /data/a.txt; \
         stat -c '%u:%g %n' /data/sub/b.txt; grep ' /data ' /proc/self/mounts; \
         echo new > /data/c.txt && echo WROTE",
    );
    let id = rt.id("copyup");
    let out = rt.run_with(&b, &id, &[]).ok();
    for want in [
        "hello",
        "nested",
        "a.txt\n",
        "640 /data/a.txt",
        "1234:5678 /data/sub/b.txt",
        "tmpfs /data tmpfs",
        "WROTE",
    ] {
        assert!(out.stdout.contains(want), "{want:?} in: {}", out.stdout);
    }
    assert!(
        out.stderr.is_empty() || !out.stderr.contains("tmpcopyup"),
        "{}",
        out.stderr
    );
    assert!(!d.join("c.txt").exists(), "the write reached the image");
    rt.assert_no_leftovers(&b, &id);

    // Only for tmpfs.
    let mut b = Bundle::new();
    b.add_mount(json!({
        "destination": "/data", "type": "bind", "source": "/tmp",
        "options": ["rbind", "tmpcopyup"]
    }));
    b.set_args(&["true"]);
    let id = rt.id("copyupbind");
    let out = rt.create(&b, &id).fails();
    out.assert_mentions(&["tmpcopyup"]);
    rt.assert_no_leftovers(&b, &id);
}

/// With a user namespace too (the network namespace is then owned by it).
#[test]
fn net_devices_move_into_a_user_namespaced_container() {
    let v = Veth::new("u");
    host("ip", &["addr", "add", "10.213.10.2/24", "dev", &v.a]);
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.use_userns();
    b.config["linux"]["netDevices"] = json!({v.a.clone(): {"name": "uns0"}});
    b.set_script("ip -o addr show dev uns0; ip -o link show dev uns0");
    let id = rt.id("netdevuserns");
    let out = rt.run_with(&b, &id, &[]).ok();
    assert!(out.stdout.contains("inet 10.213.10.2/24"), "{}", out.stdout);
    assert!(out.stdout.contains(",UP"), "{}", out.stdout);
    rt.assert_no_leftovers(&b, &id);
    assert!(wait_host_link_gone(&v.b), "{} outlived its peer", v.b);
}
