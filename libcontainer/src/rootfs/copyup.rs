//! `tmpcopyup` (runc's and crun's mount option): a new tmpfs starts with a
//! copy of what its destination directory held, so mounting it does not
//! hide the image's files. The copy goes from the destination (inside the
//! container's rootfs, so walked by fd with O_NOFOLLOW: nothing the image
//! holds can lead it outside) into the tmpfs while it is still detached.
//! Directories, regular files, symlinks and special files keep their type,
//! mode and owner.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag};
use nix::sys::stat::{self, FileStat, Mode, SFlag};
use nix::unistd::{self, Gid, Uid};

/// Deeper trees than this are refused (each level holds two fds).
const MAX_DEPTH: u32 = 256;

/// Copy the contents of directory `src` into directory `dst`; returns the
/// path (relative to `src`) and errno of the first failure.
pub(super) fn copy_dir(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<(), (String, Errno)> {
    copy_level(src, dst, "", 0)
}

fn open_dir(at: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    fcntl::openat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&at)),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    // SAFETY: openat just returned this fd to us; nobody else owns it.
    .map(|fd| unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

fn copy_level(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    prefix: &str,
    depth: u32,
) -> Result<(), (String, Errno)> {
    let fail = |name: &str| {
        let path = format!("{prefix}/{name}");
        move |e: Errno| (path, e)
    };
    if depth > MAX_DEPTH {
        return Err((prefix.to_string(), Errno::ELOOP));
    }
    let dup = open_dir(src, OsStr::new(".")).map_err(fail("."))?;
    let mut dir = Dir::from_fd(std::os::fd::IntoRawFd::into_raw_fd(dup)).map_err(fail("."))?;
    let names: Vec<Vec<u8>> = dir
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_bytes().to_vec())
        .filter(|n| n != b"." && n != b"..")
        .collect();
    for raw in names {
        let name = OsStr::from_bytes(&raw);
        let shown = name.to_string_lossy().into_owned();
        let err = fail(&shown);
        let st = stat::fstatat(Some(raw_fd(src)), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(fail(&shown))?;
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
        match kind {
            SFlag::S_IFDIR => {
                stat::mkdirat(Some(raw_fd(dst)), name, Mode::from_bits_truncate(0o700))
                    .map_err(fail(&shown))?;
                let from = open_dir(src, name).map_err(fail(&shown))?;
                let to = open_dir(dst, name).map_err(fail(&shown))?;
                copy_level(
                    from.as_fd(),
                    to.as_fd(),
                    &format!("{prefix}/{shown}"),
                    depth + 1,
                )?;
                own(to.as_fd(), &st).map_err(fail(&shown))?;
                stat::fchmod(raw_fd(to.as_fd()), perm).map_err(err)?;
            }
            SFlag::S_IFREG => {
                let from = fcntl::openat(
                    Some(raw_fd(src)),
                    name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(fail(&shown))?;
                // SAFETY: openat just returned this fd; we own it.
                let mut from: std::fs::File = unsafe { std::os::fd::FromRawFd::from_raw_fd(from) };
                let to = fcntl::openat(
                    Some(raw_fd(dst)),
                    name,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(fail(&shown))?;
                // SAFETY: as above.
                let mut to: std::fs::File = unsafe { std::os::fd::FromRawFd::from_raw_fd(to) };
                std::io::copy(&mut from, &mut to).map_err(|e| {
                    fail(&shown)(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
                })?;
                own(to.as_fd(), &st).map_err(fail(&shown))?;
                // After the chown, which clears set-id bits.
                stat::fchmod(raw_fd(to.as_fd()), perm).map_err(err)?;
            }
            SFlag::S_IFLNK => {
                let target = fcntl::readlinkat(Some(raw_fd(src)), name).map_err(fail(&shown))?;
                unistd::symlinkat(target.as_os_str(), Some(raw_fd(dst)), name)
                    .map_err(fail(&shown))?;
                own_at(dst, name, &st).map_err(err)?;
            }
            _ => {
                stat::mknodat(Some(raw_fd(dst)), name, kind, perm, st.st_rdev)
                    .map_err(fail(&shown))?;
                own_at(dst, name, &st).map_err(fail(&shown))?;
                stat::fchmodat(
                    Some(raw_fd(dst)),
                    name,
                    perm,
                    stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(err)?;
            }
        }
    }
    Ok(())
}

fn raw_fd(fd: BorrowedFd<'_>) -> std::os::fd::RawFd {
    std::os::fd::AsRawFd::as_raw_fd(&fd)
}

fn own(fd: BorrowedFd<'_>, st: &FileStat) -> nix::Result<()> {
    unistd::fchown(
        raw_fd(fd),
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )
}

fn own_at(dir: BorrowedFd<'_>, name: &OsStr, st: &FileStat) -> nix::Result<()> {
    unistd::fchownat(
        Some(raw_fd(dir)),
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}
