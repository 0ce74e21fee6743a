//! What of the container criu must treat as external: mounts whose source
//! lies outside the container (bind mounts, the per-hierarchy cgroup binds,
//! masked files bound from /dev/null, device nodes bound from the host)
//! are recorded in the images under a name at checkpoint and bound again
//! from the host at restore (criu's `ext_mnt` map: at dump mount point ->
//! name, at restore name -> host path). The names are the mount points in
//! the container, as runc uses them, so images move between the two.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};

use crate::cgroups::CgroupPaths;
use crate::rootfs::{options, resolve};

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind") || options::parse(m.options().as_deref().unwrap_or(&[])).bind
}

/// `/a/../b/` -> `/b`: the mount point as criu sees it inside the root.
fn in_root(p: &Path) -> String {
    format!("/{}", resolve::clean(p).display())
}

fn has_cgroupns(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Cgroup)
        })
}

/// The cgroup binds create made under a `cgroup` mount at `dest`:
/// (mount point in the container, host directory). On cgroup v1 one bind
/// per hierarchy under a tmpfs; on a pure v2 host without a cgroup
/// namespace one bind of the container's directory (with one, a fresh
/// cgroup2 mount that criu restores by itself).
fn cgroup_binds(spec: &Spec, dest: &Path, cg: &CgroupPaths) -> Vec<(String, PathBuf)> {
    if cg.unified {
        if has_cgroupns(spec) {
            return Vec::new();
        }
        return cg
            .v2_dir
            .iter()
            .map(|d| (in_root(dest), d.clone()))
            .collect();
    }
    cg.dirs
        .iter()
        .filter_map(|dir| {
            let name = dir
                .ancestors()
                .find(|a| a.parent() == Some(Path::new("/sys/fs/cgroup")))
                .and_then(|a| a.file_name())?;
            Some((in_root(&dest.join(name)), dir.clone()))
        })
        .collect()
}

/// Device nodes create made (the defaults and `linux.devices`): binds of
/// the host's node in a user namespace, plain nodes otherwise (then the
/// entry is unused).
fn devices(spec: &Spec) -> Vec<String> {
    let mut out: Vec<String> = crate::rootfs::DEFAULT_DEVICES
        .iter()
        .map(|(n, _, _)| format!("/dev/{n}"))
        .collect();
    if let Some(devs) = spec.linux().as_ref().and_then(|l| l.devices().as_ref()) {
        out.extend(devs.iter().map(|d| in_root(d.path())));
    }
    out
}

fn push(out: &mut Vec<(String, String)>, key: String, val: String) {
    if !out.iter().any(|(k, _)| *k == key) {
        out.push((key, val));
    }
}

/// The `ext_mnt` map for a checkpoint of the container whose init is `pid`.
pub(super) fn for_dump(spec: &Spec, cg: &CgroupPaths, pid: i32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in spec.mounts().as_deref().unwrap_or(&[]) {
        if is_bind(m) {
            let at = in_root(m.destination());
            push(&mut out, at.clone(), at);
        } else if matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")) {
            for (at, _) in cgroup_binds(spec, m.destination(), cg) {
                push(&mut out, at.clone(), at);
            }
        }
    }
    // Masked files are binds of /dev/null; masked directories are tmpfs
    // mounts criu saves with the rest.
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    for p in masked {
        let inside = PathBuf::from(format!("/proc/{pid}/root")).join(resolve::clean(Path::new(&p)));
        match std::fs::metadata(&inside) {
            Ok(md) if !md.is_dir() => push(&mut out, in_root(Path::new(&p)), "/dev/null".into()),
            _ => {}
        }
    }
    for d in devices(spec) {
        push(&mut out, d.clone(), d);
    }
    out
}

/// The `ext_mnt` map for a restore: each name recorded at checkpoint to
/// the host path to bind there now (`bundle` resolves relative sources,
/// `cg` is the new container's cgroup).
pub(super) fn for_restore(spec: &Spec, bundle: &Path, cg: &CgroupPaths) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in spec.mounts().as_deref().unwrap_or(&[]) {
        if is_bind(m) {
            let Some(src) = m.source() else { continue };
            let src = if src.is_relative() {
                bundle.join(src)
            } else {
                src.clone()
            };
            push(
                &mut out,
                in_root(m.destination()),
                src.to_string_lossy().into_owned(),
            );
        } else if matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")) {
            for (at, dir) in cgroup_binds(spec, m.destination(), cg) {
                push(&mut out, at, dir.to_string_lossy().into_owned());
            }
        }
    }
    let any_masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_ref())
        .is_some_and(|m| !m.is_empty());
    if any_masked {
        push(&mut out, "/dev/null".into(), "/dev/null".into());
    }
    for d in devices(spec) {
        push(&mut out, d.clone(), d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_cleaned() {
        assert_eq!(in_root(Path::new("/data/")), "/data");
        assert_eq!(in_root(Path::new("/a/../b")), "/b");
        assert_eq!(in_root(Path::new("x")), "/x");
    }

    #[test]
    fn binds_keep_their_names() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind"]},
                {"destination": "/opt", "type": "none", "source": "opt", "options": ["bind", "ro"]},
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}
            ],
            "linux": {"maskedPaths": ["/proc/kcore"]}
        }))
        .expect("spec");
        let cg = CgroupPaths::default();
        let r = for_restore(&spec, Path::new("/b"), &cg);
        assert!(r.contains(&("/data".into(), "/srv/data".into())), "{r:?}");
        assert!(r.contains(&("/opt".into(), "/b/opt".into())), "{r:?}");
        assert!(
            r.contains(&("/dev/null".into(), "/dev/null".into())),
            "{r:?}"
        );
        assert!(!r.iter().any(|(k, _)| k == "/tmp"), "{r:?}");
        // Our own pid's root has no /proc/kcore file masked, but the binds
        // are named by their mount points.
        let d = for_dump(&spec, &cg, std::process::id() as i32);
        assert!(d.contains(&("/data".into(), "/data".into())), "{d:?}");
        assert!(d.contains(&("/opt".into(), "/opt".into())), "{d:?}");
    }
}
