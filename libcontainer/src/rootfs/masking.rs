//! Masked paths (bound from a verified `/dev/null`, or an empty read-only
//! tmpfs for directories) and read-only paths (a read-only bind of
//! themselves), all by fd.
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;

use super::mounts::fs_mount;
use super::options::MountOptions;
use super::{resolve, Result, RootfsError};
use crate::sys::{self, MountAttr};

/// Open the container's /dev/null (after pivot_root) and make sure it is the
/// real 1:3 device (CVE-2025-31133): a masked path must never be bound to a
/// file or symlink the container controls.
pub(super) fn open_devnull() -> Result<OwnedFd> {
    let fd = sys::openat2(
        sys::cwd(),
        c"/dev/null",
        libc::O_PATH,
        0,
        sys::RESOLVE_NO_SYMLINKS,
    )
    .map_err(sys::err_at("open", "/dev/null"))?;
    let st = resolve::fstat(fd.as_fd()).map_err(sys::err_at("stat", "/dev/null"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        return Err(RootfsError::Invalid {
            field: "/dev/null".into(),
            msg: "is not the 1:3 character device".into(),
        });
    }
    Ok(fd)
}

pub(super) fn open_existing(root: BorrowedFd<'_>, path: &Path) -> Result<Option<OwnedFd>> {
    match resolve::open_in_root(
        root,
        path,
        libc::O_PATH | libc::O_NOFOLLOW,
        sys::RESOLVE_NO_SYMLINKS,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(RootfsError::Sys(crate::sys::SysError::at("open", path, e))),
    }
}

pub(super) fn mask_path(root: BorrowedFd<'_>, path: &Path, devnull: BorrowedFd<'_>) -> Result<()> {
    let Some(target) = open_existing(root, path)? else {
        return Ok(());
    };
    let st = resolve::fstat(target.as_fd()).map_err(sys::err_at("stat", path))?;
    let tree = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let opts = MountOptions {
            data: vec![("size".into(), Some("0".into()))],
            ..Default::default()
        };
        let t = fs_mount("tmpfs", "tmpfs", &opts)?;
        let attr = MountAttr {
            attr_set: sys::MOUNT_ATTR_RDONLY,
            ..Default::default()
        };
        sys::mount_setattr(t.as_fd(), false, &attr).map_err(sys::err_at("mask", path))?;
        t
    } else {
        sys::open_tree(
            devnull,
            c"",
            sys::OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32,
        )
        .map_err(sys::err_at("open_tree", "/dev/null"))?
    };
    Ok(sys::move_mount_fd(tree.as_fd(), target.as_fd()).map_err(sys::err_at("mask", path))?)
}

pub(super) fn readonly_path(root: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let Some(target) = open_existing(root, path)? else {
        return Ok(());
    };
    let tree = sys::open_tree(
        target.as_fd(),
        c"",
        sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE | libc::AT_EMPTY_PATH as u32,
    )
    .map_err(sys::err_at("open_tree", path))?;
    let attr = MountAttr {
        attr_set: sys::MOUNT_ATTR_RDONLY
            | sys::MOUNT_ATTR_NOSUID
            | sys::MOUNT_ATTR_NODEV
            | sys::MOUNT_ATTR_NOEXEC,
        ..Default::default()
    };
    sys::mount_setattr(tree.as_fd(), true, &attr).map_err(sys::err_at("make read-only", path))?;
    Ok(sys::move_mount_fd(tree.as_fd(), target.as_fd())
        .map_err(sys::err_at("make read-only", path))?)
}
