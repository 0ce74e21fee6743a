//! Entering the new root: `pivot_root` (or `MS_MOVE` + chroot with
//! `--no-pivot`) and detaching the old root; then the settings that need
//! the pivoted root (propagation, sysctls, masked and read-only paths,
//! read-only root).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use nix::mount::MsFlags;
use oci_spec::runtime::Spec;

use super::masking::{mask_path, open_devnull, readonly_path};
use super::root_propagation;
use super::sysctl::write_sysctls;
use super::Result;
use crate::sys::{self, MountAttr};

/// pivot_root into `root` (the mount at `rootfs`) without a put_old
/// directory, then detach the old root. With `no_pivot`, move the root
/// onto "/" and chroot instead, after hiding every full procfs and sysfs
/// outside it (see `hide_host_proc_and_sys`).
pub fn pivot(root: BorrowedFd<'_>, rootfs: &Path, no_pivot: bool) -> Result<()> {
    let old_root = sys::openat2(sys::cwd(), c"/", libc::O_PATH | libc::O_DIRECTORY, 0, 0)
        .map_err(sys::err_at("open", "/"))?;
    nix::unistd::fchdir(root.as_raw_fd()).map_err(sys::err_at("fchdir", "rootfs"))?;
    if no_pivot {
        hide_host_proc_and_sys(rootfs)?;
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

/// Without pivot_root the host's mounts stay in the container's mount
/// namespace, only out of reach of the chroot; but the kernel lets a process
/// in a nested user namespace mount a fresh procfs or sysfs whenever a full
/// one is mounted anywhere in its mount namespace. So, as runc does, every
/// procfs and sysfs mounted at its root outside the container's rootfs is
/// made a slave (its unmount must not reach the host) and detached, or
/// covered with an empty tmpfs where it cannot be unmounted.
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let info = crate::mountinfo::read()
        .map_err(|e| sys::SysError::io("read", "/proc/self/mountinfo", &e))?;
    let mut hidden: Vec<std::path::PathBuf> = Vec::new();
    for e in crate::mountinfo::entries(&info) {
        let mp = e.mount_point;
        if e.root != "/"
            || !matches!(e.fstype, "proc" | "sysfs")
            || mp.starts_with(rootfs)
            || hidden.iter().any(|h| mp.starts_with(h))
        {
            continue;
        }
        let flags = MsFlags::MS_SLAVE | MsFlags::MS_REC;
        match nix::mount::mount(None::<&str>, &mp, None::<&str>, flags, None::<&str>) {
            Ok(()) => {}
            // Gone with a parent already detached.
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(sys::err_at("make slave", &mp)(e).into()),
        }
        match nix::mount::umount2(&mp, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => {
                nix::mount::mount(
                    Some("tmpfs"),
                    &mp,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    None::<&str>,
                )
                .map_err(sys::err_at("cover with tmpfs", &mp))?;
            }
            Err(e) => return Err(sys::err_at("unmount", &mp)(e).into()),
        }
        hidden.push(mp);
    }
    Ok(())
}

/// After pivot_root, the parts of the spec that act on the pivoted root:
/// `linux.sysctl`, `linux.maskedPaths`, `linux.readonlyPaths`,
/// `linux.rootfsPropagation`, then `root.readonly`.
pub fn apply_spec_after_pivot(spec: &Spec) -> Result<()> {
    let root = sys::openat2(sys::cwd(), c"/", libc::O_PATH | libc::O_DIRECTORY, 0, 0)
        .map_err(sys::err_at("open", "/"))?;
    let devnull = open_devnull()?;
    let devnull = devnull.as_fd();
    let linux = spec.linux().as_ref();
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
    // The root mount's own propagation, after the masks (they bind
    // /dev/null, which an unbindable /dev would refuse). The root mount
    // only, even for the `r` forms: the mounts below keep what their own
    // options asked (a bind with `rprivate` stays private under an rshared
    // root, as with runc 1.1.5, which leaves the root as its bind made it;
    // the `r` forms already acted on the tree the binds came from).
    if let Some((prop, _)) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(root_propagation)
    {
        let attr = MountAttr {
            propagation: prop,
            ..Default::default()
        };
        sys::mount_setattr(root.as_fd(), false, &attr)
            .map_err(sys::err_at("rootfsPropagation", "/"))?;
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
