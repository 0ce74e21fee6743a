//! Root filesystem, hostname, mounts, devices, masked/readonly paths and
//! sysctls, all observed from inside the container.

use integration::*;
use serde_json::json;
use std::fs;

/// The mountinfo line (as printed inside) whose mount point is `mp`.
fn mount_line<'a>(mountinfo: &'a str, mp: &str) -> Option<&'a str> {
    // Several mounts can stack on one point; the last one is visible.
    mountinfo.lines().rfind(|l| l.split(' ').nth(4) == Some(mp))
}

/// Per-mount options (field 6) of a mountinfo line.
fn mount_opts(line: &str) -> Vec<String> {
    line.split(' ')
        .nth(5)
        .unwrap_or("")
        .split(',')
        .map(String::from)
        .collect()
}

/// Optional fields (shared:N, master:N, ...) of a mountinfo line.
fn optional_fields(line: &str) -> Vec<String> {
    line.split(' ')
        .skip(6)
        .take_while(|f| *f != "-")
        .map(String::from)
        .collect()
}

/// Filesystem type and super options of a mountinfo line.
fn fs_type_and_super(line: &str) -> (String, Vec<String>) {
    let after: Vec<&str> = line.split(" - ").nth(1).unwrap_or("").split(' ').collect();
    (
        after.first().unwrap_or(&"").to_string(),
        after
            .get(2)
            .unwrap_or(&"")
            .split(',')
            .map(String::from)
            .collect(),
    )
}

fn run_mountinfo(rt: &Runtime, b: &Bundle, id: &str) -> String {
    rt.run_ok(b, id)
}

#[test]
fn hostname() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["hostname"] = json!("oxit-host-name");
    b.set_script("echo h=$(hostname); echo k=$(cat /proc/sys/kernel/hostname)");
    let id = rt.id("hostname");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "h"), "oxit-host-name", "{out}");
    assert_eq!(must_field(&out, "k"), "oxit-host-name", "{out}");
    assert_ne!(
        fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim(),
        "oxit-host-name"
    );
    rt.assert_no_leftovers(&b, &id);
}

/// runc 1.1.5 is NON-COMPLIANT here: it ignores `domainname` (a runtime-spec
/// 1.1 field) and the container sees "(none)". This test asserts the spec.
#[test]
fn domainname() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["domainname"] = json!("oxit.example");
    b.set_script("echo d=$(cat /proc/sys/kernel/domainname)");
    let id = rt.id("domain");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "d"), "oxit.example", "{out}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn readonly_root() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    assert_eq!(b.config["root"]["readonly"], true);
    b.set_script("touch /oxit-file && echo touch=ok || echo touch=fail; cat /proc/self/mountinfo");
    let id = rt.id("roroot");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "touch"), "fail", "{out}");
    let root = mount_line(&out, "/").unwrap_or_else(|| panic!("no / in mountinfo: {out}"));
    assert!(mount_opts(root).contains(&"ro".to_string()), "{root}");
    assert!(!b.rootfs().join("oxit-file").exists());
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn writable_root() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    b.set_script("echo data > /oxit-file && echo touch=ok || echo touch=fail");
    let id = rt.id("rwroot");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "touch"), "ok", "{out}");
    assert_eq!(
        fs::read_to_string(b.rootfs().join("oxit-file")).unwrap(),
        "data\n"
    );
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn tmpfs_with_size_and_mode_at_new_destination() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    assert!(!b.rootfs().join("mnt").exists());
    b.add_mount(json!({
        "destination": "/mnt/deep/tmpx", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=0711"]
    }));
    b.set_script("echo mode=$(stat -c %a /mnt/deep/tmpx); echo x > /mnt/deep/tmpx/f && echo write=ok; cat /proc/self/mountinfo");
    let id = rt.id("tmpfs");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "mode"), "711", "{out}");
    assert_eq!(must_field(&out, "write"), "ok", "{out}");
    let line =
        mount_line(&out, "/mnt/deep/tmpx").unwrap_or_else(|| panic!("tmpfs not mounted: {out}"));
    let (typ, sup) = fs_type_and_super(line);
    assert_eq!(typ, "tmpfs", "{line}");
    assert!(sup.contains(&"size=1024k".to_string()), "{line}");
    assert!(sup.contains(&"mode=711".to_string()), "{line}");
    let opts = mount_opts(line);
    for o in ["nosuid", "nodev", "noexec", "rw"] {
        assert!(opts.contains(&o.to_string()), "{o} missing: {line}");
    }
    // The mount point was created inside the bundle's rootfs, not elsewhere.
    assert!(b.rootfs().join("mnt/deep/tmpx").is_dir());
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn bind_mount_rw() {
    let rt = Runtime::new();
    let host = TempDir::new("oxit-bind");
    fs::write(host.join("hello.txt"), "from-host\n").unwrap();
    let mut b = Bundle::new();
    b.add_mount(json!({
        "destination": "/data", "type": "bind", "source": host.path(), "options": ["bind", "rw"]
    }));
    b.set_script("echo read=$(cat /data/hello.txt); echo from-container > /data/new.txt && echo write=ok; cat /proc/self/mountinfo");
    let id = rt.id("bindrw");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "read"), "from-host", "{out}");
    assert_eq!(must_field(&out, "write"), "ok", "{out}");
    assert_eq!(
        fs::read_to_string(host.join("new.txt")).unwrap(),
        "from-container\n"
    );
    let line = mount_line(&out, "/data").unwrap_or_else(|| panic!("{out}"));
    assert!(mount_opts(line).contains(&"rw".to_string()), "{line}");
    rt.assert_no_leftovers(&b, &id);
    assert!(
        mounts_under(host.path()).is_empty(),
        "bind source still has mounts on the host"
    );
}

#[test]
fn bind_mount_ro() {
    let rt = Runtime::new();
    let host = TempDir::new("oxit-bind");
    fs::write(host.join("hello.txt"), "from-host\n").unwrap();
    let mut b = Bundle::new();
    b.add_mount(json!({
        "destination": "/data", "type": "bind", "source": host.path(), "options": ["bind", "ro"]
    }));
    b.set_script("echo read=$(cat /data/hello.txt); echo x > /data/new.txt && echo write=ok || echo write=fail; cat /proc/self/mountinfo");
    let id = rt.id("bindro");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "read"), "from-host", "{out}");
    assert_eq!(must_field(&out, "write"), "fail", "{out}");
    assert!(!host.join("new.txt").exists());
    let line = mount_line(&out, "/data").unwrap_or_else(|| panic!("{out}"));
    assert!(mount_opts(line).contains(&"ro".to_string()), "{line}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn bind_mount_file_to_missing_destination() {
    let rt = Runtime::new();
    let host = TempDir::new("oxit-bindf");
    fs::write(host.join("file.conf"), "conf-content\n").unwrap();
    let mut b = Bundle::new();
    b.add_mount(json!({
        "destination": "/etc/oxit/file.conf", "type": "bind",
        "source": host.join("file.conf"), "options": ["bind", "ro"]
    }));
    b.set_script(
        "echo c=$(cat /etc/oxit/file.conf); test -f /etc/oxit/file.conf && echo isfile=yes",
    );
    let id = rt.id("bindfile");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "c"), "conf-content", "{out}");
    assert_eq!(must_field(&out, "isfile"), "yes", "{out}");
    rt.assert_no_leftovers(&b, &id);
}

/// A host dir with a tmpfs mounted on its `sub/` holding `marker`.
struct NestedMount {
    dir: TempDir,
}

impl NestedMount {
    fn new() -> NestedMount {
        let dir = TempDir::new("oxit-rbind");
        fs::create_dir(dir.join("sub")).unwrap();
        fs::write(dir.join("top"), "top\n").unwrap();
        host(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                "size=1m",
                "oxit-sub",
                dir.join("sub").to_str().unwrap(),
            ],
        );
        fs::write(dir.join("sub/marker"), "nested\n").unwrap();
        NestedMount { dir }
    }
}

#[test]
fn rbind_includes_submounts_bind_does_not() {
    let rt = Runtime::new();
    let nm = NestedMount::new();
    let mut b = Bundle::new();
    b.add_mount(json!({"destination": "/r", "type": "bind", "source": nm.dir.path(), "options": ["rbind", "ro"]}));
    b.add_mount(json!({"destination": "/p", "type": "bind", "source": nm.dir.path(), "options": ["bind", "ro"]}));
    b.set_script(
        "echo rtop=$(cat /r/top); echo rsub=$(cat /r/sub/marker 2>/dev/null || echo missing); \
         echo ptop=$(cat /p/top); echo psub=$(cat /p/sub/marker 2>/dev/null || echo missing)",
    );
    let id = rt.id("rbind");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "rtop"), "top", "{out}");
    assert_eq!(
        must_field(&out, "rsub"),
        "nested",
        "rbind must carry submounts: {out}"
    );
    assert_eq!(must_field(&out, "ptop"), "top", "{out}");
    assert_eq!(
        must_field(&out, "psub"),
        "missing",
        "plain bind must not carry submounts: {out}"
    );
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn mount_propagation_flags() {
    let rt = Runtime::new();
    // A shared host mount to be slave of.
    let shared = TempDir::new("oxit-shared");
    host(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "oxit-shared",
            shared.path().to_str().unwrap(),
        ],
    );
    host("mount", &["--make-shared", shared.path().to_str().unwrap()]);

    let mut b = Bundle::new();
    b.add_mount(json!({"destination": "/m-shared", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "shared"]}));
    b.add_mount(json!({"destination": "/m-private", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "private"]}));
    b.add_mount(json!({"destination": "/m-slave", "type": "bind", "source": shared.path(), "options": ["rbind", "rslave"]}));
    b.add_mount(json!({"destination": "/m-rprivate", "type": "bind", "source": shared.path(), "options": ["rbind", "rprivate"]}));
    b.set_script("cat /proc/self/mountinfo");
    let id = rt.id("propag");
    let out = run_mountinfo(&rt, &b, &id);
    let opt = |mp: &str| {
        optional_fields(mount_line(&out, mp).unwrap_or_else(|| panic!("{mp} not mounted: {out}")))
    };
    assert!(
        opt("/m-shared").iter().any(|f| f.starts_with("shared:")),
        "{:?}\n{out}",
        opt("/m-shared")
    );
    assert!(opt("/m-private").is_empty(), "{:?}", opt("/m-private"));
    let slave = opt("/m-slave");
    assert!(
        slave.iter().any(|f| f.starts_with("master:")),
        "{slave:?}\n{out}"
    );
    assert!(!slave.iter().any(|f| f.starts_with("shared:")), "{slave:?}");
    assert!(opt("/m-rprivate").is_empty(), "{:?}", opt("/m-rprivate"));
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn container_mounts_do_not_leak_to_host() {
    let rt = Runtime::new();
    let host_dir = TempDir::new("oxit-noleak");
    let mut b = Bundle::new();
    let caps = json!(["CAP_SYS_ADMIN"]);
    b.config["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    b.add_mount(json!({"destination": "/h", "type": "bind", "source": host_dir.path(), "options": ["rbind", "rw"]}));
    b.set_script("mkdir -p /h/sub && mount -t tmpfs none /h/sub && echo mounted=yes");
    let id = rt.id("noleak");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "mounted"), "yes", "{out}");
    assert!(
        mounts_under(host_dir.path()).is_empty(),
        "container mount leaked to the host"
    );
    rt.assert_no_leftovers(&b, &id);
}

// ---------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------

#[test]
fn default_devices() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script(
        "for d in null zero full random urandom tty; do echo dev_$d=$(stat -c '%F %t %T' /dev/$d); done; \
         for l in fd stdin stdout stderr; do echo link_$l=$(readlink /dev/$l); done; \
         echo ptmx=$(readlink /dev/ptmx || stat -c '%t %T' /dev/ptmx); \
         test -d /dev/pts && echo pts=dir; test -d /dev/shm && echo shm=dir; test -d /dev/mqueue && echo mqueue=dir; \
         echo x > /dev/null && echo null_write=ok; echo zero=$(head -c 4 /dev/zero | od -An -tx1 | tr -d ' '); \
         echo rand=$(head -c 8 /dev/urandom | wc -c); \
         echo full=$(echo x 2>&1 > /dev/full || echo fullerr); \
         cat /proc/self/mountinfo",
    );
    let id = rt.id("devs");
    let out = rt.run_ok(&b, &id);
    for (d, maj, min) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        assert_eq!(
            must_field(&out, &format!("dev_{d}")),
            format!("character special file {maj:x} {min:x}"),
            "/dev/{d}\n{out}"
        );
    }
    assert_eq!(must_field(&out, "link_fd"), "/proc/self/fd", "{out}");
    assert_eq!(must_field(&out, "link_stdin"), "/proc/self/fd/0", "{out}");
    assert_eq!(must_field(&out, "link_stdout"), "/proc/self/fd/1", "{out}");
    assert_eq!(must_field(&out, "link_stderr"), "/proc/self/fd/2", "{out}");
    let ptmx = must_field(&out, "ptmx");
    assert!(
        ptmx == "pts/ptmx" || ptmx == "/dev/pts/ptmx" || ptmx == "5 2",
        "/dev/ptmx: {ptmx}"
    );
    for d in ["pts", "shm", "mqueue"] {
        assert_eq!(must_field(&out, d), "dir", "{out}");
    }
    assert_eq!(must_field(&out, "null_write"), "ok", "{out}");
    assert_eq!(must_field(&out, "zero"), "00000000", "{out}");
    assert_eq!(must_field(&out, "rand"), "8", "{out}");
    assert!(must_field(&out, "full").contains("fullerr"), "{out}");
    let ty = |mp: &str| {
        fs_type_and_super(mount_line(&out, mp).unwrap_or_else(|| panic!("{mp}: {out}"))).0
    };
    assert_eq!(ty("/dev"), "tmpfs");
    assert_eq!(ty("/dev/pts"), "devpts");
    assert_eq!(ty("/dev/shm"), "tmpfs");
    assert_eq!(ty("/dev/mqueue"), "mqueue");
    assert_eq!(ty("/proc"), "proc");
    assert_eq!(ty("/sys"), "sysfs");
    assert!(mount_opts(mount_line(&out, "/sys").unwrap()).contains(&"ro".to_string()));
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn spec_device_node() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/oxfoo", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1234, "gid": 5678},
        {"path": "/dev/oxsub/oxbar", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600, "uid": 0, "gid": 0}
    ]);
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}
    ]);
    b.set_script(
        "echo foo=$(stat -c '%F %t %T %a %u %g' /dev/oxfoo); echo bar=$(stat -c '%F %t %T %a' /dev/oxsub/oxbar); \
         echo bar_read=$(head -c 3 /dev/oxsub/oxbar | wc -c); echo hi > /dev/oxsub/oxbar && echo bar_write=ok",
    );
    let id = rt.id("specdev");
    let out = rt.run_ok(&b, &id);
    assert_eq!(
        must_field(&out, "foo"),
        "character special file 1 3 640 1234 5678",
        "{out}"
    );
    assert_eq!(
        must_field(&out, "bar"),
        "character special file 1 5 600",
        "{out}"
    );
    assert_eq!(must_field(&out, "bar_read"), "3", "{out}");
    assert_eq!(must_field(&out, "bar_write"), "ok", "{out}");
    rt.assert_no_leftovers(&b, &id);
}

/// `linux.devices` of the other types: `b` (a block node, here a loop
/// minor no host has), `u` (unbuffered: a character node) and `p` (a
/// FIFO), each with its major, minor, mode and owner; the FIFO passes
/// data (the container's root has no CAP_DAC_OVERRIDE: "other" may use it).
#[test]
fn spec_device_nodes_block_unbuffered_fifo() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/oxblk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o660, "uid": 11, "gid": 12},
        {"path": "/dev/oxunbuf", "type": "u", "major": 1, "minor": 7, "fileMode": 0o604, "uid": 13, "gid": 14},
        {"path": "/dev/oxfifo", "type": "p", "fileMode": 0o646, "uid": 15, "gid": 16}
    ]);
    b.set_script(
        "for d in oxblk oxunbuf oxfifo; do echo $d=$(stat -c '%F %t %T %a %u %g' /dev/$d); done; \
         (echo through > /dev/oxfifo &); read line < /dev/oxfifo; echo fifo_read=$line",
    );
    let id = rt.id("specdev-bup");
    let out = rt.run_ok(&b, &id);
    assert_eq!(
        must_field(&out, "oxblk"),
        "block special file 7 c8 660 11 12",
        "{out}"
    );
    assert_eq!(
        must_field(&out, "oxunbuf"),
        "character special file 1 7 604 13 14",
        "{out}"
    );
    assert_eq!(must_field(&out, "oxfifo"), "fifo 0 0 646 15 16", "{out}");
    assert_eq!(must_field(&out, "fifo_read"), "through", "{out}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn device_cgroup_denies_unlisted_device() {
    // /dev/oxkmsg (1:11) exists but is not allowed by linux.resources.devices.
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/oxkmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600, "uid": 0, "gid": 0}
    ]);
    b.set_script("test -c /dev/oxkmsg && echo exists=yes; (exec 3</dev/oxkmsg) 2>/dev/null && echo open=ok || echo open=denied");
    let id = rt.id("devdeny");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "exists"), "yes", "{out}");
    assert_eq!(must_field(&out, "open"), "denied", "{out}");
    rt.assert_no_leftovers(&b, &id);
}

/// Masked files the default spec lists that exist on this host's /proc.
fn host_masked_files() -> Vec<&'static str> {
    [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/latency_stats",
        "/proc/sched_debug",
    ]
    .into_iter()
    .filter(|p| std::path::Path::new(p).is_file())
    .collect()
}

#[test]
fn masked_paths() {
    let files = host_masked_files();
    assert!(
        !files.is_empty(),
        "none of the masked /proc files exist on this host"
    );
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let mut script = String::new();
    for f in &files {
        script += &format!("echo 'M{f}='$(stat -c '%F %t %T' {f}) $(cat {f} | wc -c); ");
    }
    script += "echo fw=[$(ls -A /sys/firmware)]; echo acpi=[$(ls -A /proc/acpi)]; \
               touch /sys/firmware/x 2>/dev/null && echo fw_write=ok || echo fw_write=fail; \
               cat /proc/self/mountinfo";
    b.set_script(&script);
    let id = rt.id("masked");
    let out = rt.run_ok(&b, &id);
    for f in &files {
        // Masked files are /dev/null bind mounts: char 1:3, reading yields nothing.
        assert_eq!(
            must_field(&out, &format!("M{f}")),
            "character special file 1 3 0",
            "{f}\n{out}"
        );
    }
    assert!(
        fs::read_dir("/sys/firmware")
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "host /sys/firmware is empty; test is meaningless"
    );
    assert_eq!(must_field(&out, "fw"), "[]", "{out}");
    assert_eq!(must_field(&out, "fw_write"), "fail", "{out}");
    let fw = mount_line(&out, "/sys/firmware")
        .unwrap_or_else(|| panic!("/sys/firmware not masked: {out}"));
    assert_eq!(fs_type_and_super(fw).0, "tmpfs", "{fw}");
    assert!(mount_opts(fw).contains(&"ro".to_string()), "{fw}");
    if std::path::Path::new("/proc/acpi").is_dir() {
        assert_eq!(must_field(&out, "acpi"), "[]", "{out}");
    }
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn masked_paths_that_do_not_exist_are_ignored() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["maskedPaths"] = json!(["/proc/oxit-nonexistent", "/sys/oxit/nope"]);
    b.config["linux"]["readonlyPaths"] = json!(["/proc/oxit-nonexistent-ro"]);
    b.set_script("echo ran=yes");
    let id = rt.id("maskmissing");
    assert_eq!(must_field(&rt.run_ok(&b, &id), "ran"), "yes");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn readonly_paths() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    // Writing the (namespaced) hostname through /proc/sys must fail.
    b.set_script(
        "echo oxit-changed > /proc/sys/kernel/hostname 2>/dev/null && echo write=ok || echo write=fail; \
         echo h=$(hostname); cat /proc/self/mountinfo",
    );
    let id = rt.id("ropaths");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "write"), "fail", "{out}");
    assert_eq!(must_field(&out, "h"), "oxit", "{out}");
    for p in [
        "/proc/sys",
        "/proc/sysrq-trigger",
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
    ] {
        if !std::path::Path::new(p).exists() {
            println!("{p} does not exist on this host; not checked");
            continue;
        }
        let l = mount_line(&out, p).unwrap_or_else(|| panic!("{p} is not a mount: {out}"));
        assert!(mount_opts(l).contains(&"ro".to_string()), "{p} not ro: {l}");
    }
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn sysctl() {
    let rt = Runtime::new();
    let host_fwd = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_shm = fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap();
    let mut b = Bundle::new();
    b.config["linux"]["sysctl"] =
        json!({"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"});
    b.set_script("echo fwd=$(cat /proc/sys/net/ipv4/ip_forward); echo shm=$(cat /proc/sys/kernel/shm_rmid_forced)");
    let id = rt.id("sysctl");
    let out = rt.run_ok(&b, &id);
    assert_eq!(must_field(&out, "fwd"), "1", "{out}");
    assert_eq!(must_field(&out, "shm"), "1", "{out}");
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd,
        "host sysctl changed"
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap(),
        host_shm,
        "host sysctl changed"
    );
    rt.assert_no_leftovers(&b, &id);
}
