//! The task's rootfs mounts (`CreateTaskRequest.rootfs`, from a
//! snapshotter): mounted in order on `<bundle>/rootfs`, unmounted on
//! delete. `ctr run --rootfs` sends none.

use std::path::{Path, PathBuf};

use containerd_shim_protos::types::mount::Mount;
use nix::mount::{MntFlags, MsFlags};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount {typ} {source_path} on {target}: {errno}")]
    Mount {
        typ: String,
        source_path: String,
        target: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("create {path}: {source}")]
    Mkdir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Split mount(8)-style options into flags and filesystem data.
pub fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        let (set, clear) = match o.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, data.join(","))
}

/// Mount `mounts` on `<bundle>/rootfs`; on failure, undo what was done.
/// Returns whether anything was mounted.
pub fn mount_rootfs(bundle: &Path, mounts: &[Mount]) -> Result<bool, MountError> {
    if mounts.is_empty() {
        return Ok(false);
    }
    let target = bundle.join("rootfs");
    std::fs::create_dir_all(&target).map_err(|source| MountError::Mkdir {
        path: target.clone(),
        source,
    })?;
    for (i, m) in mounts.iter().enumerate() {
        let (flags, data) = parse_options(&m.options);
        let typ = if m.type_.is_empty() {
            "none"
        } else {
            m.type_.as_str()
        };
        let r = nix::mount::mount(
            Some(m.source.as_str()),
            &target,
            Some(typ),
            flags,
            (!data.is_empty()).then_some(data.as_str()),
        );
        if let Err(errno) = r {
            for _ in 0..i {
                let _ = nix::mount::umount2(&target, MntFlags::MNT_DETACH);
            }
            return Err(MountError::Mount {
                typ: typ.to_string(),
                source_path: m.source.clone(),
                target,
                errno,
            });
        }
    }
    Ok(true)
}

/// Unmount everything stacked on `<bundle>/rootfs` (no error if nothing is).
pub fn unmount_rootfs(bundle: &Path) {
    let target = bundle.join("rootfs");
    for _ in 0..32 {
        if nix::mount::umount2(&target, MntFlags::MNT_DETACH).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let o: Vec<String> = ["ro", "nosuid", "lowerdir=/a", "upperdir=/b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (f, d) = parse_options(&o);
        assert_eq!(f, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(d, "lowerdir=/a,upperdir=/b");
        let (f, _) = parse_options(&["ro".to_string(), "rw".to_string()]);
        assert!(!f.contains(MsFlags::MS_RDONLY));
    }
}
