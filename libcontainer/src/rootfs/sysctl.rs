//! `linux.sysctl`, written through the container's own `/proc/sys` (checked
//! to be procfs) with no symlinks or mount crossings.
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use super::{resolve, Result, RootfsError};
use crate::sys::{self};

/// Write sysctls through an fd of the container's own /proc/sys, checked to
/// be procfs, with no symlinks or mount crossings on the way.
pub(super) fn write_sysctls(
    root: BorrowedFd<'_>,
    sysctl: &std::collections::HashMap<String, String>,
) -> Result<()> {
    let sysdir = resolve::open_in_root(
        root,
        Path::new("/proc/sys"),
        libc::O_PATH | libc::O_DIRECTORY,
        sys::RESOLVE_NO_SYMLINKS,
    )
    .map_err(sys::err_at("open", "/proc/sys"))?;
    if resolve::fs_magic(sysdir.as_fd()).map_err(sys::err_at("statfs", "/proc/sys"))?
        != resolve::PROC_SUPER_MAGIC
    {
        return Err(RootfsError::Invalid {
            field: "linux.sysctl".into(),
            msg: "/proc/sys in the container is not procfs".into(),
        });
    }
    for (k, v) in sysctl {
        let rel = CString::new(k.replace('.', "/")).map_err(|_| RootfsError::Invalid {
            field: format!("linux.sysctl.{k}"),
            msg: "NUL byte".into(),
        })?;
        let resolve = sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_XDEV;
        let fd = sys::openat2(
            sysdir.as_fd(),
            &rel,
            libc::O_WRONLY | libc::O_TRUNC,
            0,
            resolve,
        )
        .map_err(|e| RootfsError::Invalid {
            field: format!("linux.sysctl.{k}"),
            msg: format!("cannot open /proc/sys/{}: {e}", k.replace('.', "/")),
        })?;
        let mut f = std::fs::File::from(fd);
        std::io::Write::write_all(&mut f, v.as_bytes()).map_err(|e| RootfsError::Invalid {
            field: format!("linux.sysctl.{k}"),
            msg: format!("write {v:?}: {e}"),
        })?;
    }
    Ok(())
}
