//! Building the container's filesystem view inside its mount namespace:
//! propagation, the rootfs bind, every spec mount, /dev, pivot_root, masked
//! and read-only paths, sysctls.
//!
//! All mounts use the new mount API (`open_tree`, `fsopen`/`fsmount`,
//! `mount_setattr`, `move_mount`) and land on `O_PATH` fds resolved with
//! `RESOLVE_IN_ROOT`: no path string is ever resolved on the host side of a
//! container-controlled symlink (CVE-2021-30465 family).

mod copyup;
mod devices;
pub mod idmap;
mod masking;
mod mounts;
pub mod options;
mod pivot;
pub mod resolve;
mod sysctl;

pub(crate) use devices::DEFAULT_DEVICES;
pub use pivot::{apply_spec_after_pivot, pivot};

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use oci_spec::runtime::Spec;

use crate::cgroups::CgroupPaths;
use crate::sys::{self};
use devices::create_devices;
use mounts::{mount_one, parse_opts};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(transparent)]
    Sys(#[from] sys::SysError),
    #[error("{field}: {msg}")]
    Invalid { field: String, msg: String },
}

type Result<T> = std::result::Result<T, RootfsError>;

/// What the rootfs set-up needs to know besides the spec.
pub struct Context<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub cgroups: &'a CgroupPaths,
    /// Running in a new user namespace: mknod is not allowed, bind host nodes.
    pub userns: bool,
    /// The container has its own cgroup namespace.
    pub cgroupns: bool,
    /// Bind sources the runtime opened before clone (idmapped where asked),
    /// by mount index.
    pub idmapped: &'a idmap::Prepared,
    pub warnings: Vec<String>,
    /// The spec mounts /dev read-only: applied after /dev is populated.
    pub dev_readonly: bool,
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| RootfsError::Invalid {
        field: "path".into(),
        msg: format!("{p:?} has a NUL byte"),
    })
}

fn propagation_flag(s: &str) -> Option<u64> {
    Some(match s {
        "shared" | "rshared" => libc::MS_SHARED,
        "slave" | "rslave" => libc::MS_SLAVE,
        "private" | "rprivate" => libc::MS_PRIVATE,
        "unbindable" | "runbindable" => libc::MS_UNBINDABLE,
        _ => return None,
    })
}

/// `linux.rootfsPropagation` as (MS_* flag, MS_REC or 0): the `r` forms
/// act on the whole tree, the others on one mount.
fn root_propagation(s: &str) -> Option<(u64, u64)> {
    let flag = propagation_flag(s)?;
    Some((flag, if s.starts_with('r') { libc::MS_REC } else { 0 }))
}

/// Steps before pivot_root. Returns an `O_PATH` fd of the new root mount.
pub fn prepare(ctx: &mut Context<'_>) -> Result<OwnedFd> {
    let linux = ctx.spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    // Stop our mounts from propagating to the host (or set what the spec
    // asks): rslave by default; `shared`, `slave`, ... act on "/" alone
    // and only their `r` forms on the whole tree, as in runc. Unbindable
    // is private here (an unbindable host tree could not be bound from:
    // not the rootfs, not a bind source). The root mount itself gets the
    // value after pivot_root (`apply_spec_after_pivot`).
    let root_flag = match root_propagation(&prop) {
        Some((libc::MS_UNBINDABLE, rec)) => libc::MS_PRIVATE | rec,
        Some((flag, rec)) => flag | rec,
        None => libc::MS_SLAVE | libc::MS_REC,
    };
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::from_bits_truncate(root_flag),
        None::<&str>,
    )
    .map_err(sys::err_at("set rootfs propagation of", "/"))?;
    make_parent_mount_private(ctx.rootfs)?;

    // Bind the rootfs onto itself so it is a mount we can pivot into.
    let rootfs_c = cpath(ctx.rootfs)?;
    let tree = sys::open_tree(
        sys::cwd(),
        &rootfs_c,
        sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE,
    )
    .map_err(sys::err_at("open_tree", ctx.rootfs))?;
    let target = sys::openat2(
        sys::cwd(),
        &rootfs_c,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )
    .map_err(sys::err_at("open", ctx.rootfs))?;
    sys::move_mount_fd(tree.as_fd(), target.as_fd())
        .map_err(sys::err_at("bind rootfs", ctx.rootfs))?;
    // Re-open: the old fd refers to the directory under the new mount.
    let root = sys::openat2(
        sys::cwd(),
        &rootfs_c,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )
    .map_err(sys::err_at("open", ctx.rootfs))?;

    let mounts = ctx.spec.mounts().clone().unwrap_or_default();
    for (i, m) in mounts.iter().enumerate() {
        mount_one(ctx, root.as_fd(), i, m)?;
    }
    let dev_bound = mounts
        .iter()
        .any(|m| resolve::clean(m.destination()) == Path::new("dev") && parse_opts(m).bind);
    if !dev_bound {
        create_devices(ctx, root.as_fd())?;
    }
    if ctx.dev_readonly {
        let dev = resolve::open_path(root.as_fd(), Path::new("/dev"))
            .map_err(sys::err_at("open", "/dev"))?;
        // The console is bound onto /dev/console after pivot_root: its mount
        // point must exist before /dev turns read-only.
        let terminal = ctx
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        if terminal {
            let dir = resolve::open_in_root(
                root.as_fd(),
                Path::new("/dev"),
                libc::O_PATH | libc::O_DIRECTORY,
                sys::RESOLVE_NO_SYMLINKS,
            )
            .map_err(sys::err_at("open", "/dev"))?;
            match nix::sys::stat::mknodat(
                Some(std::os::fd::AsRawFd::as_raw_fd(&dir)),
                "console",
                nix::sys::stat::SFlag::S_IFREG,
                nix::sys::stat::Mode::from_bits_truncate(0o644),
                0,
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(sys::err_at("create", "/dev/console")(e).into()),
            }
        }
        let attr = sys::MountAttr {
            attr_set: sys::MOUNT_ATTR_RDONLY,
            ..Default::default()
        };
        sys::mount_setattr(dev.as_fd(), false, &attr)
            .map_err(sys::err_at("make read-only", "/dev"))?;
    }
    Ok(root)
}

/// The mount the rootfs bind lands on is the one holding `rootfs`: the
/// rootfs itself when it is a mount point (containerd mounts the image
/// there), else the mount of a directory above it. pivot_root(2) refuses a
/// new root whose parent mount is shared (EINVAL), and the bind of a
/// shared mount would join its peer group (the container's mounts would
/// propagate to the host): a shared one is made private, as runc does
/// (`rootfsParentMountPrivate`). An unbindable one too, or the bind
/// itself fails (EINVAL). A private or slave mount is left as it is, so a
/// slave rootfs keeps receiving the host's mounts.
fn make_parent_mount_private(rootfs: &Path) -> Result<()> {
    let info = crate::mountinfo::read()
        .map_err(|e| sys::SysError::io("read", "/proc/self/mountinfo", &e))?;
    let Some((mount_point, optional)) = holding_mount(&info, rootfs) else {
        return Ok(());
    };
    let shared_or_unbindable = optional
        .iter()
        .any(|o| o.starts_with("shared:") || *o == "unbindable");
    if !shared_or_unbindable {
        return Ok(());
    }
    Ok(nix::mount::mount(
        None::<&str>,
        &mount_point,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys::err_at("make private", &mount_point))?)
}

/// The mount point of the (topmost) mount holding `path`, `path` itself
/// included, and its optional mountinfo fields (`shared:N`, `master:N`,
/// `unbindable`, ...).
fn holding_mount<'a>(info: &'a str, path: &Path) -> Option<(PathBuf, Vec<&'a str>)> {
    let mut best: Option<(PathBuf, Vec<&str>)> = None;
    for e in crate::mountinfo::entries(info) {
        if !path.starts_with(&e.mount_point) {
            continue;
        }
        // Later lines are mounted later: on the same mount point, on top.
        let longer = best
            .as_ref()
            .is_none_or(|(b, _)| e.mount_point.as_os_str().len() >= b.as_os_str().len());
        if longer {
            best = Some((e.mount_point, e.optional));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
30 22 0:25 / /tmp rw shared:5 - tmpfs tmpfs rw
41 30 254:1 /b/rootfs /tmp/b/rootfs rw shared:1 master:3 - ext4 /dev/vda1 rw
42 30 0:40 / /tmp/c rw unbindable - tmpfs tmpfs rw
";

    #[test]
    fn holding_mount_includes_the_rootfs_itself() {
        let (mp, opt) = holding_mount(INFO, Path::new("/tmp/b/rootfs")).unwrap();
        assert_eq!(mp, Path::new("/tmp/b/rootfs"));
        assert_eq!(opt, vec!["shared:1", "master:3"]);
        let (mp, opt) = holding_mount(INFO, Path::new("/tmp/b/other")).unwrap();
        assert_eq!(mp, Path::new("/tmp"));
        assert_eq!(opt, vec!["shared:5"]);
        let (mp, opt) = holding_mount(INFO, Path::new("/tmp/c/rootfs")).unwrap();
        assert_eq!(mp, Path::new("/tmp/c"));
        assert_eq!(opt, vec!["unbindable"]);
        let (mp, _) = holding_mount(INFO, Path::new("/var/x")).unwrap();
        assert_eq!(mp, Path::new("/"));
    }
}
