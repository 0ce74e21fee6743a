//! Idmapped bind mounts (`idmap`/`ridmap` options).
//!
//! Setting `MOUNT_ATTR_IDMAP` needs privilege over the source filesystem's
//! user namespace (the host's), which init no longer has once it is in the
//! container's user namespace. So the runtime prepares each idmapped tree
//! before clone: `open_tree`, a throwaway user namespace carrying the
//! mapping, `mount_setattr`; init only moves the prepared tree into place.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, Spec};

use super::{options, RootfsError};
use crate::sys::{self, MountAttr};

/// Bind source trees opened by the runtime (idmapped where asked), by
/// mount index.
pub type Prepared = HashMap<usize, OwnedFd>;

fn map_text(m: &[LinuxIdMapping]) -> String {
    m.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// A user namespace with the given mappings, as an fd (its only process is
/// gone by the time this returns).
fn userns_with(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd, RootfsError> {
    let err = |op: &'static str| {
        move |errno: Errno| {
            RootfsError::Sys(crate::sys::SysError::at(op, "idmap user namespace", errno))
        }
    };
    // SAFETY: single-threaded runtime; the child only pauses until killed.
    let pid =
        match unsafe { sys::clone3(libc::CLONE_NEWUSER as u64, None) }.map_err(err("clone3"))? {
            // Wait for the SIGKILL that ends us.
            sys::CloneResult::Child => loop {
                nix::unistd::pause();
            },
            sys::CloneResult::Parent { pid, .. } => pid,
        };
    let result = (|| {
        for (file, text) in [("uid_map", map_text(uid)), ("gid_map", map_text(gid))] {
            std::fs::write(format!("/proc/{pid}/{file}"), text).map_err(|e| {
                RootfsError::Invalid {
                    field: "mounts.uidMappings".into(),
                    msg: format!("write {file}: {e}"),
                }
            })?;
        }
        let path =
            CString::new(format!("/proc/{pid}/ns/user")).map_err(|_| err("path")(Errno::EINVAL))?;
        sys::openat2(sys::cwd(), &path, libc::O_RDONLY, 0, 0).map_err(err("open user namespace"))
    })();
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    let _ = waitpid(Pid::from_raw(pid), None);
    result
}

/// Open, in the runtime before clone, every bind source init could not
/// open itself: with `userns` (the container has a user namespace) all of
/// them, since init's mapped root has no access to, say, a 0700 directory
/// of the host's root (runc opens them before entering too); and every
/// mount with `idmap`/`ridmap` or its own mappings, which is also idmapped
/// here. Mappings come
/// from the mount itself or else from the container's user namespace
/// mappings. An unprivileged (rootless) runtime can do neither
/// (`open_tree` and idmapping need CAP_SYS_ADMIN over the host's mounts):
/// then init opens the sources itself, as the user, and idmap is refused.
pub fn prepare(spec: &Spec, bundle: &Path, userns: bool) -> Result<Prepared, RootfsError> {
    let privileged = nix::unistd::geteuid().is_root();
    let mut out = Prepared::new();
    let linux = spec.linux().as_ref();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
        let bind = opts.bind || m.typ().as_deref() == Some("bind");
        let field = |msg: &str| RootfsError::Invalid {
            field: format!("mounts[{i}]"),
            msg: msg.into(),
        };
        // Mappings on the mount without the option: idmapped all the same,
        // as runc 1.2+ does (the spec says the options SHOULD name it).
        let has_maps = m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty())
            || m.gid_mappings().as_ref().is_some_and(|v| !v.is_empty());
        if !opts.idmap && !has_maps {
            if userns && bind && privileged {
                out.insert(i, open_source(m, bundle, opts.recursive, &field)?.1);
            }
            continue;
        }
        if !bind {
            return Err(field("idmap is supported on bind mounts only"));
        }
        if !privileged {
            return Err(field(
                "idmap needs CAP_SYS_ADMIN in the host's user namespace, which a rootless runtime does not have",
            ));
        }
        let own_uid = m.uid_mappings().clone().unwrap_or_default();
        let own_gid = m.gid_mappings().clone().unwrap_or_default();
        let (uid, gid) = if !own_uid.is_empty() || !own_gid.is_empty() {
            (own_uid, own_gid)
        } else {
            (
                linux
                    .and_then(|l| l.uid_mappings().clone())
                    .unwrap_or_default(),
                linux
                    .and_then(|l| l.gid_mappings().clone())
                    .unwrap_or_default(),
            )
        };
        if uid.is_empty() || gid.is_empty() {
            return Err(field(
                "idmap needs uidMappings and gidMappings (on the mount or for a user namespace)",
            ));
        }
        let (src, tree) = open_source(m, bundle, opts.recursive, &field)?;
        let ns = userns_with(&uid, &gid)?;
        let attr = MountAttr {
            attr_set: sys::MOUNT_ATTR_IDMAP,
            userns_fd: std::os::fd::AsRawFd::as_raw_fd(&ns) as u64,
            ..Default::default()
        };
        sys::mount_setattr(tree.as_fd(), opts.recursive, &attr).map_err(|errno| match errno {
            Errno::EINVAL => field(&format!(
                "{} does not support idmapped mounts",
                src.display()
            )),
            errno => RootfsError::Sys(crate::sys::SysError::at("idmap", src.clone(), errno)),
        })?;
        out.insert(i, tree);
    }
    Ok(out)
}

/// Open bind mount `m`'s source (relative to the bundle) as a detached
/// tree, with its submounts when `recursive`.
fn open_source(
    m: &oci_spec::runtime::Mount,
    bundle: &Path,
    recursive: bool,
    field: &dyn Fn(&str) -> RootfsError,
) -> Result<(std::path::PathBuf, OwnedFd), RootfsError> {
    let src = m
        .source()
        .clone()
        .ok_or_else(|| field("bind mount without a source"))?;
    let src = if src.is_relative() {
        bundle.join(src)
    } else {
        src
    };
    let src_c =
        CString::new(src.as_os_str().as_bytes()).map_err(|_| field("source has a NUL byte"))?;
    let flags = sys::OPEN_TREE_CLONE | if recursive { sys::AT_RECURSIVE } else { 0 };
    let tree =
        sys::open_tree(sys::cwd(), &src_c, flags).map_err(sys::err_at("open bind source", &src))?;
    Ok((src, tree))
}
