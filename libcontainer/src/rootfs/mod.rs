//! Building the container's filesystem view inside its mount namespace:
//! propagation, the rootfs bind, every spec mount, /dev, pivot_root, masked
//! and read-only paths, sysctls.
//!
//! All mounts use the new mount API (`open_tree`, `fsopen`/`fsmount`,
//! `mount_setattr`, `move_mount`) and land on `O_PATH` fds resolved with
//! `RESOLVE_IN_ROOT`: no path string is ever resolved on the host side of a
//! container-controlled symlink (CVE-2021-30465 family).

mod devices;
pub mod idmap;
mod masking;
mod mounts;
pub mod options;
mod pivot;
pub mod resolve;
mod sysctl;

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

/// Steps before pivot_root. Returns an `O_PATH` fd of the new root mount.
pub fn prepare(ctx: &mut Context<'_>) -> Result<OwnedFd> {
    let linux = ctx.spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    let root_flag = propagation_flag(&prop).unwrap_or(libc::MS_SLAVE);
    // Stop our mounts from propagating to the host (or set what the spec asks).
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::from_bits_truncate(root_flag) | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys::err_at("make / rslave", "/"))?;
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

/// pivot_root refuses a shared parent mount; make only that one private.
fn make_parent_mount_private(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| {
        RootfsError::Sys(crate::sys::SysError::at(
            "read",
            "/proc/self/mountinfo",
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        ))
    })?;
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    let best = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|mp| parent.starts_with(mp))
        .max_by_key(|mp| mp.as_os_str().len())
        .unwrap_or_else(|| PathBuf::from("/"));
    Ok(nix::mount::mount(
        None::<&str>,
        &best,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys::err_at("make private", &best))?)
}

pub(super) fn unescape_mountinfo(s: &str) -> PathBuf {
    PathBuf::from(
        s.replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n")
            .replace("\\134", "\\"),
    )
}
