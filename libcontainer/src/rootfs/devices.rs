//! `/dev`: the default nodes, the spec's devices (mknod, or a bind of the
//! host node in a user namespace), and the standard symlinks.
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FchmodatFlags, Mode, SFlag};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::{cpath, resolve, Context, Result, RootfsError};
use crate::sys::{self};

pub(crate) const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

pub(super) fn create_devices(ctx: &Context<'_>, root: BorrowedFd<'_>) -> Result<()> {
    let spec_devs = ctx
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    let dev =
        resolve::mkdir_all(root, Path::new("/dev"), 0o755).map_err(sys::err_at("mkdir", "/dev"))?;
    for (name, major, minor) in DEFAULT_DEVICES {
        let path = PathBuf::from("/dev").join(name);
        if spec_devs.iter().any(|d| d.path() == &path) {
            continue;
        }
        make_device(ctx, root, &path, libc::S_IFCHR, *major, *minor, 0o666, 0, 0)?;
    }
    for d in &spec_devs {
        spec_device(ctx, root, d)?;
    }
    let links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
        ("ptmx", "pts/ptmx"),
    ];
    for (name, target) in links {
        let (n, t) = (
            CString::new(name).unwrap_or_default(),
            CString::new(target).unwrap_or_default(),
        );
        match nix::unistd::symlinkat(t.as_c_str(), Some(dev.as_raw_fd()), n.as_c_str()) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(RootfsError::Sys(crate::sys::SysError::at(
                    "symlink",
                    PathBuf::from("/dev").join(name),
                    e,
                )))
            }
        }
    }
    Ok(())
}

pub(super) fn spec_device(ctx: &Context<'_>, root: BorrowedFd<'_>, d: &LinuxDevice) -> Result<()> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(RootfsError::Invalid {
                field: "linux.devices.type".into(),
                msg: format!("{}: type 'a' is not a device", d.path().display()),
            })
        }
    };
    let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
    make_device(
        ctx,
        root,
        d.path(),
        kind,
        d.major() as u64,
        d.minor() as u64,
        mode,
        d.uid().unwrap_or(0),
        d.gid().unwrap_or(0),
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn make_device(
    ctx: &Context<'_>,
    root: BorrowedFd<'_>,
    path: &Path,
    kind: u32,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<()> {
    let rel = resolve::clean(path);
    let (parent, name) = resolve::split(&rel).map_err(sys::err_at("device path", path))?;
    let dir = resolve::mkdir_all(root, parent, 0o755).map_err(sys::err_at("mkdir", parent))?;
    let name_c = cpath(name)?;
    // mknod is not allowed in a user namespace: bind the host's node.
    let bind = || -> Result<()> {
        let target = resolve::create_file(root, &rel).map_err(sys::err_at("create", path))?;
        let host = cpath(path)?;
        let tree = sys::open_tree(sys::cwd(), &host, sys::OPEN_TREE_CLONE)
            .map_err(sys::err_at("open host device", path))?;
        Ok(sys::move_mount_fd(tree.as_fd(), target.as_fd())
            .map_err(sys::err_at("bind device", path))?)
    };
    if ctx.userns {
        return bind();
    }
    // `dir` is a directory fd and `name_c` a single component.
    let (dirfd, name_c) = (Some(dir.as_raw_fd()), name_c.as_c_str());
    // Replace whatever is there (a file, a symlink) with the node.
    let _ = nix::unistd::unlinkat(dirfd, name_c, nix::unistd::UnlinkatFlags::NoRemoveDir);
    let dev = libc::makedev(major as u32, minor as u32);
    // mknodat never follows symlinks.
    match nix::sys::stat::mknodat(
        dirfd,
        name_c,
        SFlag::from_bits_retain(kind),
        Mode::from_bits_retain(mode),
        dev,
    ) {
        Ok(()) => {}
        // The runtime itself runs in a user namespace (rootless podman's):
        // the container has none of its own, but mknod is refused all the
        // same (runc binds there too).
        Err(nix::errno::Errno::EPERM) => return bind(),
        Err(e) => return Err(RootfsError::Sys(crate::sys::SysError::at("mknod", path, e))),
    }
    // AT_SYMLINK_NOFOLLOW keeps us on the node we made.
    nix::unistd::fchownat(
        dirfd,
        name_c,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| RootfsError::Sys(crate::sys::SysError::at("chown", path, e)))?;
    // fchmodat ignores the umask that mknodat applied.
    nix::sys::stat::fchmodat(
        dirfd,
        name_c,
        Mode::from_bits_retain(mode),
        FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| RootfsError::Sys(crate::sys::SysError::at("chmod", path, e)))?;
    Ok(())
}
