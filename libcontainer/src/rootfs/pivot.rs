//! Entering the new root: `pivot_root` (or `MS_MOVE` + chroot with
//! `--no-pivot`) and detaching the old root; then the settings that need
//! the pivoted root (propagation, sysctls, masked and read-only paths,
//! read-only root).
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use nix::mount::MsFlags;
use oci_spec::runtime::Spec;

use super::masking::{mask_path, open_devnull, readonly_path};
use super::propagation_flag;
use super::sysctl::write_sysctls;
use super::Result;
use crate::sys::{self, MountAttr};

/// pivot_root into `root` without a put_old directory, then detach the old root.
pub fn pivot(root: BorrowedFd<'_>, no_pivot: bool) -> Result<()> {
    let old_root = sys::openat2(sys::cwd(), c"/", libc::O_PATH | libc::O_DIRECTORY, 0, 0)
        .map_err(sys::err_at("open", "/"))?;
    nix::unistd::fchdir(root.as_raw_fd()).map_err(sys::err_at("fchdir", "rootfs"))?;
    if no_pivot {
        nix::mount::mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(sys::err_at("move rootfs", "/"))?;
        nix::unistd::chroot(".").map_err(sys::err_at("chroot", "."))?;
    } else {
        sys::pivot_root(c".", c".").map_err(sys::err_at("pivot_root", "."))?;
        // The old root is now stacked on "."; keep its unmount from
        // propagating to the host. Through its fd this touches only the old
        // tree, never the container's own mounts and their propagation.
        let attr = MountAttr {
            propagation: libc::MS_SLAVE,
            ..Default::default()
        };
        sys::mount_setattr(old_root.as_fd(), true, &attr)
            .map_err(sys::err_at("make old root rslave", "/"))?;
        drop(old_root);
        nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
            .map_err(sys::err_at("unmount old root", "."))?;
    }
    Ok(nix::unistd::chdir("/").map_err(sys::err_at("chdir", "/"))?)
}

/// After pivot_root: the spec's rootfs propagation, sysctls, masked and
/// read-only paths, then a read-only root if asked.
pub fn apply_spec_after_pivot(spec: &Spec) -> Result<()> {
    let root = sys::openat2(sys::cwd(), c"/", libc::O_PATH | libc::O_DIRECTORY, 0, 0)
        .map_err(sys::err_at("open", "/"))?;
    let devnull = open_devnull()?;
    let devnull = devnull.as_fd();
    let linux = spec.linux().as_ref();
    if let Some(prop) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation_flag)
    {
        let attr = MountAttr {
            propagation: prop,
            ..Default::default()
        };
        sys::mount_setattr(root.as_fd(), true, &attr)
            .map_err(sys::err_at("rootfsPropagation", "/"))?;
    }
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        write_sysctls(root.as_fd(), sysctl)?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
    {
        mask_path(root.as_fd(), Path::new(&p), devnull)?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
    {
        readonly_path(root.as_fd(), Path::new(&p))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let attr = MountAttr {
            attr_set: sys::MOUNT_ATTR_RDONLY,
            ..Default::default()
        };
        sys::mount_setattr(root.as_fd(), false, &attr)
            .map_err(sys::err_at("make root read-only", "/"))?;
    }
    Ok(())
}
