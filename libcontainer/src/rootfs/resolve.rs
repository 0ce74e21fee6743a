//! Path resolution inside the container root, by file descriptor only.
//!
//! Every lookup goes through openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
//! relative to an fd of the root, so a symlink (even one swapped in
//! concurrently) can never take us outside the rootfs. Creation uses
//! `mkdirat`/`mknodat` on a parent fd found the same way; neither follows a
//! symlink in the last component.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag};

use crate::sys;

const IN_ROOT: u64 = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS;

/// A path relative to the root with `.`/`..`/`/` stripped lexically
/// (`..` is clamped at the root, as RESOLVE_IN_ROOT does).
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn cstr(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// Open `path` inside the root. An empty path opens the root itself.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    extra_resolve: u64,
) -> Result<OwnedFd, Errno> {
    let rel = clean(path);
    let p = if rel.as_os_str().is_empty() {
        CString::from(c".")
    } else {
        cstr(&rel)?
    };
    sys::openat2(root, &p, flags, 0, IN_ROOT | extra_resolve)
}

/// `O_PATH` handle of `path` inside the root.
pub fn open_path(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, Errno> {
    open_in_root(root, path, libc::O_PATH, 0)
}

/// `mkdir -p` inside the root; returns an `O_PATH` fd of the directory.
/// A dangling symlink on the way is followed (within the root) and its
/// target created, as runc does for rootfs layouts like `/var/run -> ../run`.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd, Errno> {
    let dir_flags = libc::O_PATH | libc::O_DIRECTORY;
    let mut todo: VecDeque<PathBuf> = clean(path)
        .components()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut done = PathBuf::new();
    let mut cur = open_in_root(root, &done, dir_flags, 0)?;
    let mut links = 0;
    while let Some(comp) = todo.pop_front() {
        let next = done.join(&comp);
        match open_in_root(root, &next, dir_flags, 0) {
            Ok(fd) => {
                cur = fd;
                done = next;
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let name = cstr(&comp)?;
        // `cur` is a directory fd and `name` a single component.
        match nix::sys::stat::mkdirat(
            Some(cur.as_raw_fd()),
            name.as_c_str(),
            Mode::from_bits_retain(mode),
        ) {
            Ok(()) => {
                cur = open_in_root(root, &next, dir_flags, 0)?;
                done = next;
                continue;
            }
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(e),
        }
        // It exists but does not resolve: a dangling symlink. Follow it.
        links += 1;
        if links > 40 {
            return Err(Errno::ELOOP);
        }
        let target = nix::fcntl::readlinkat(Some(cur.as_raw_fd()), comp.as_path())?;
        let base = if Path::new(&target).is_absolute() {
            PathBuf::new()
        } else {
            done.clone()
        };
        let resolved = clean(&base.join(target));
        for c in resolved.components().rev() {
            todo.push_front(PathBuf::from(c.as_os_str()));
        }
        done = PathBuf::new();
        cur = open_in_root(root, &done, dir_flags, 0)?;
    }
    Ok(cur)
}

/// Make sure a regular file exists at `path` (for bind-mounting a file onto);
/// returns an `O_PATH` fd of it.
pub fn create_file(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, Errno> {
    let rel = clean(path);
    let (parent, name) = split(&rel)?;
    let dir = mkdir_all(root, parent, 0o755)?;
    let cname = cstr(name)?;
    // `dir` is a directory fd; mknodat never follows a final symlink.
    match mknod_file(dir.as_fd(), &cname) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    open_path(root, &rel)
}

/// mknodat an empty regular file (mode 0644, less the umask) named `name`
/// in `dir`; a final symlink is not followed.
pub fn mknod_file(dir: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    nix::sys::stat::mknodat(
        Some(dir.as_raw_fd()),
        name,
        SFlag::S_IFREG,
        Mode::from_bits_retain(0o644),
        0,
    )
}

/// Split into (parent, last component); the root itself has no name.
pub fn split(rel: &Path) -> Result<(&Path, &Path), Errno> {
    let name = rel.file_name().ok_or(Errno::EINVAL)?;
    Ok((rel.parent().unwrap_or(Path::new("")), Path::new(name)))
}

/// fstat of an fd.
pub fn fstat(fd: BorrowedFd<'_>) -> Result<libc::stat, Errno> {
    nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| e as Errno)
}

/// The filesystem magic of whatever `fd` is on.
pub fn fs_magic(fd: BorrowedFd<'_>) -> Result<i64, Errno> {
    let st = nix::sys::statfs::fstatfs(fd.as_fd())?;
    Ok(st.filesystem_type().0 as i64)
}

pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_clamps_dotdot() {
        assert_eq!(
            clean(Path::new("/../../etc/passwd")),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(clean(Path::new("a/./b/../c")), PathBuf::from("a/c"));
        assert_eq!(clean(Path::new("/")), PathBuf::from(""));
    }

    #[test]
    fn symlinks_stay_inside_root() {
        let dir = std::env::temp_dir().join(format!("oxrun-resolve-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("inside")).expect("mkdir");
        std::os::unix::fs::symlink("/", root.join("escape")).expect("symlink");
        std::os::unix::fs::symlink("../../../../tmp", root.join("up")).expect("symlink");
        let rfd = nix::fcntl::open(
            &root,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .expect("open root");
        // SAFETY: fresh fd.
        let rfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(rfd) };
        // "escape/newdir" must be created as root/newdir, not /newdir.
        mkdir_all(rfd.as_fd(), Path::new("escape/oxrun-test-newdir"), 0o755)
            .expect("mkdir via symlink");
        assert!(root.join("oxrun-test-newdir").is_dir());
        assert!(!Path::new("/oxrun-test-newdir").exists());
        // A dangling relative symlink that climbs out: created inside.
        mkdir_all(rfd.as_fd(), Path::new("up/oxrun-test-2"), 0o755).expect("mkdir via ..");
        assert!(root.join("tmp/oxrun-test-2").is_dir());
        assert!(!Path::new("/tmp/oxrun-test-2").exists());
        create_file(rfd.as_fd(), Path::new("/escape/f")).expect("file");
        assert!(root.join("f").is_file());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
