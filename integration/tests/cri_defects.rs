//! Defects found driving the shim through containerd's CRI (issue 12),
//! reproduced with the runtime alone: a rootfs that is itself a mount
//! point in a shared peer group (containerd mounts the image's overlay on
//! `<bundle>/rootfs`, and CRI's mount-propagation tests make `/` rshared),
//! and the attributes of a recursive bind. Every case runs in a private
//! mount namespace (`unshare -m`), so the host's mounts are never touched.
//! All pass on runc 1.1.5 unless marked.

use integration::*;
use serde_json::json;
use std::process::Command;

/// `unshare -m sh -c '<setup> && exec <runtime> run'`: the container runs
/// in a private copy of the host's mounts, prepared by `setup` first.
fn run_in_private_ns(rt: &Runtime, b: &Bundle, id: &str, setup: &str) -> CmdOut {
    b.write_config(id);
    let mut c = Command::new("unshare");
    c.args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &format!("{setup} && exec \"$@\""),
        "sh",
    ])
    .arg(&rt.bin)
    .arg("--root")
    .arg(&rt.root)
    .args(&rt.global_args)
    .args(["run", "--bundle"])
    .arg(b.path())
    .arg(id);
    run_with_timeout(&mut c, TIMEOUT, None)
}

/// `mount --make-rshared /`, the rootfs bound onto itself (so it is a mount
/// point in /'s peer group, as containerd's overlay is), then `make` on it.
fn shared_rootfs_setup(b: &Bundle, make: &str) -> String {
    let r = b.rootfs().display().to_string();
    format!("mount --make-rshared / && mount --bind {r} {r} && mount --make-rshared / && mount {make} {r}")
}

fn rootfs_mount_point_cases(props: &[&str]) {
    let rt = Runtime::new();
    let mut failures = Vec::new();
    for prop in props {
        for make in [
            "--make-shared",
            "--make-slave",
            "--make-private",
            "--make-unbindable",
        ] {
            let mut b = Bundle::new();
            if !prop.is_empty() {
                b.config["linux"]["rootfsPropagation"] = json!(prop);
            }
            b.set_script("echo started-ok");
            let id = rt.id("shroot");
            let out = run_in_private_ns(&rt, &b, &id, &shared_rootfs_setup(&b, make));
            if out.code() != 0 || !out.stdout.contains("started-ok") {
                failures.push(format!(
                    "rootfsPropagation={prop:?}, rootfs mount {make}: {}",
                    out.describe()
                ));
            }
            rt.assert_no_leftovers(&b, &id);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        props.len() * 4,
        failures.join("\n")
    );
}

/// pivot_root(2) gives EINVAL when the new root's parent mount is shared:
/// with the rootfs a shared mount point, the rootfs bind's parent is the
/// rootfs mount itself, which must be made private (runc's
/// rootfsParentMountPrivate looks at the mount holding the rootfs, the
/// rootfs included). Every rootfsPropagation value (but `runbindable`,
/// below) and every propagation of the rootfs mount.
#[test]
fn rootfs_that_is_a_shared_mount_point_starts() {
    rootfs_mount_point_cases(&[
        "",
        "private",
        "rprivate",
        "slave",
        "rslave",
        "shared",
        "rshared",
        "unbindable",
    ]);
}

/// `runbindable`: the bind sources (the rootfs itself, cgroup v1
/// hierarchies) must still be bindable until the container's tree is set
/// up. runc 1.1.5 fails this one (its rootfs bind gets EINVAL).
#[test]
fn rootfs_propagation_runbindable_starts() {
    rootfs_mount_point_cases(&["runbindable"]);
}

/// A bind source with a submount (a tmpfs at `<src>/sub`, mounted in the
/// private namespace), bound with `rbind` and `options`; prints whether
/// the top and the submount are writable and the submount's mount options.
fn rbind_with_submount(options: &[&str]) -> String {
    let rt = Runtime::new();
    let src = TempDir::new("oxit-rbsrc");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let mut b = Bundle::new();
    let mut opts = vec!["rbind"];
    opts.extend_from_slice(options);
    b.add_mount(json!({
        "destination": "/mnt",
        "type": "bind",
        "source": src.path(),
        "options": opts,
    }));
    b.set_script(
        "touch /mnt/top 2>/dev/null && echo TOP=rw || echo TOP=ro; \
         touch /mnt/sub/f 2>/dev/null && echo SUB=rw || echo SUB=ro; \
         awk '$5 == \"/mnt/sub\" { print \"SUBOPTS=\" $6 }' /proc/self/mountinfo",
    );
    let id = rt.id("rbind");
    let setup = format!("mount -t tmpfs tmpfs {}", src.join("sub").display());
    let out = run_in_private_ns(&rt, &b, &id, &setup);
    assert_eq!(out.code(), 0, "{}", out.describe());
    rt.assert_no_leftovers(&b, &id);
    out.stdout
}

/// `ro` (and `nosuid`, `nodev`, `noexec`) of an `rbind` act on the top
/// mount only, as runc's bind remount does; the submount stays as it was.
#[test]
fn rbind_ro_leaves_submounts_alone() {
    let out = rbind_with_submount(&["ro", "nosuid", "nodev", "noexec"]);
    assert_eq!(field(&out, "TOP"), Some("ro"), "{out}");
    assert_eq!(
        field(&out, "SUB"),
        Some("rw"),
        "ro of an rbind reached the submount:\n{out}"
    );
    let sub = field(&out, "SUBOPTS").unwrap_or_default();
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(
            !sub.split(',').any(|s| s == o),
            "{o} of an rbind reached the submount ({sub}):\n{out}"
        );
    }
}

/// `rro` (and `rnosuid`, ...) act on every mount of the tree.
#[test]
fn rbind_rro_makes_submounts_read_only() {
    let out = rbind_with_submount(&["rro", "rnosuid"]);
    assert_eq!(field(&out, "TOP"), Some("ro"), "{out}");
    assert_eq!(field(&out, "SUB"), Some("ro"), "{out}");
    let sub = field(&out, "SUBOPTS").unwrap_or_default();
    assert!(sub.split(',').any(|s| s == "nosuid"), "{sub}:\n{out}");
}

/// Under an rshared `linux.rootfsPropagation` (CRI sets it when a mount is
/// Bidirectional) every mount keeps the propagation its own options ask:
/// a bind with `rprivate` is private, one with `rslave` a slave, one with
/// `rshared` shared (CRI's mount-propagation test).
#[test]
fn rshared_root_keeps_the_propagation_of_each_mount() {
    let rt = Runtime::new();
    let src = TempDir::new("oxit-propsrc");
    let mut b = Bundle::new();
    b.config["linux"]["rootfsPropagation"] = json!("rshared");
    for p in ["rprivate", "rslave", "rshared"] {
        std::fs::create_dir_all(src.join(p)).unwrap();
        b.add_mount(json!({
            "destination": format!("/mnt/{p}"),
            "type": "bind",
            "source": src.join(p),
            "options": ["rbind", p],
        }));
    }
    b.set_script(
        "for p in rprivate rslave rshared; do \
         awk -v mp=/mnt/$p '$5 == mp { o = \"\"; for (i = 7; $i != \"-\"; i++) o = o \" \" $i; print mp \"=\" o }' \
         /proc/self/mountinfo; done",
    );
    let id = rt.id("rsharedroot");
    let out = run_in_private_ns(&rt, &b, &id, &shared_rootfs_setup(&b, "--make-shared"));
    assert_eq!(out.code(), 0, "{}", out.describe());
    rt.assert_no_leftovers(&b, &id);
    let private = field(&out.stdout, "/mnt/rprivate").unwrap_or("missing");
    assert!(
        private != "missing" && !private.contains("shared:") && !private.contains("master:"),
        "rprivate: {private:?}\n{}",
        out.stdout
    );
    let slave = field(&out.stdout, "/mnt/rslave").unwrap_or("missing");
    assert!(
        slave.contains("master:") && !slave.contains("shared:"),
        "rslave: {slave:?}\n{}",
        out.stdout
    );
    let shared = field(&out.stdout, "/mnt/rshared").unwrap_or("missing");
    assert!(
        shared.contains("shared:"),
        "rshared: {shared:?}\n{}",
        out.stdout
    );
}
