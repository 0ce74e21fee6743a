//! Building the container's filesystem view inside its mount namespace:
//! propagation, the rootfs bind, every spec mount, /dev, pivot_root, masked
//! and read-only paths, sysctls.
//!
//! All mounts use the new mount API (`open_tree`, `fsopen`/`fsmount`,
//! `mount_setattr`, `move_mount`) and land on `O_PATH` fds resolved with
//! `RESOLVE_IN_ROOT`: no path string is ever resolved on the host side of a
//! container-controlled symlink (CVE-2021-30465 family).

pub mod idmap;
pub mod options;
pub mod resolve;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::cgroups::CgroupPaths;
use crate::sys::{self, MountAttr};
use options::MountOptions;

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
    /// Idmapped trees the runtime prepared, by mount index.
    pub idmapped: &'a idmap::Prepared,
    pub warnings: Vec<String>,
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

fn unescape_mountinfo(s: &str) -> PathBuf {
    PathBuf::from(
        s.replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n")
            .replace("\\134", "\\"),
    )
}

fn parse_opts(m: &Mount) -> MountOptions {
    let mut o = options::parse(m.options().as_deref().unwrap_or(&[]));
    if m.typ().as_deref() == Some("bind") {
        o.bind = true;
    }
    o
}

fn mount_one(ctx: &mut Context<'_>, root: BorrowedFd<'_>, i: usize, m: &Mount) -> Result<()> {
    let dest = m.destination();
    let opts = parse_opts(m);
    for w in &opts.ignored {
        ctx.warnings.push(format!(
            "mounts[{i}] {}: option {w:?} is not supported and was ignored",
            dest.display()
        ));
    }
    let typ = m.typ().clone().unwrap_or_else(|| "none".into());
    let field = |msg: String| RootfsError::Invalid {
        field: format!("mounts[{i}]"),
        msg,
    };
    if opts.remount && !opts.bind {
        let fd = resolve::open_path(root, dest).map_err(sys::err_at("open", dest))?;
        return set_attrs(fd.as_fd(), &opts, dest);
    }
    check_proc_destination(i, dest, &typ, opts.bind)?;
    // /proc and /sys must be real directories: a symlink there is an attack
    // (CVE-2019-19921 / CVE-2023-27561) even if it points inside the root.
    let no_symlinks = matches!(typ.as_str(), "proc" | "sysfs");
    let tree = if let Some(t) = ctx.idmapped.get(&i) {
        // Prepared (idmapped) by the runtime before clone; see idmap.rs.
        let t = t.try_clone().map_err(|e| {
            sys::err_at("dup idmapped tree", dest)(Errno::from_raw(
                e.raw_os_error().unwrap_or(libc::EIO),
            ))
        })?;
        let st = resolve::fstat(t.as_fd()).map_err(sys::err_at("stat", dest))?;
        prepare_target(
            root,
            dest,
            st.st_mode & libc::S_IFMT == libc::S_IFDIR,
            no_symlinks,
        )?;
        t
    } else if opts.bind {
        let src = m
            .source()
            .clone()
            .ok_or_else(|| field("bind mount without a source".into()))?;
        let src = if src.is_relative() {
            ctx.bundle.join(src)
        } else {
            src
        };
        let src_c = cpath(&src)?;
        let flags = sys::OPEN_TREE_CLONE | if opts.recursive { sys::AT_RECURSIVE } else { 0 };
        let tree = sys::open_tree(sys::cwd(), &src_c, flags)
            .map_err(sys::err_at("open bind source", &src))?;
        let st = resolve::fstat(tree.as_fd()).map_err(sys::err_at("stat", &src))?;
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if resolve::clean(dest) == Path::new("proc")
            && resolve::fs_magic(tree.as_fd()).map_err(sys::err_at("statfs", &src))?
                != resolve::PROC_SUPER_MAGIC
        {
            return Err(field(format!(
                "{} is bound onto /proc but is not procfs",
                src.display()
            )));
        }
        prepare_target(root, dest, is_dir, no_symlinks)?;
        tree
    } else if typ == "cgroup" || typ == "cgroup2" {
        prepare_target(root, dest, true, false)?;
        return mount_cgroup(ctx, root, dest, &opts);
    } else {
        prepare_target(root, dest, true, no_symlinks)?;
        let src = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| typ.clone());
        match fs_mount(&typ, &src, &opts) {
            Ok(fd) => fd,
            // sysfs needs a network namespace we own; fall back to the host's.
            Err(RootfsError::Sys(crate::sys::SysError {
                errno: Errno::EPERM,
                ..
            })) if typ == "sysfs" => sys::open_tree(
                sys::cwd(),
                c"/sys",
                sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE,
            )
            .map_err(sys::err_at("open_tree", "/sys"))?,
            Err(e) => return Err(e),
        }
    };
    set_attrs(tree.as_fd(), &opts, dest)?;
    let target = target_fd(root, dest, no_symlinks)?;
    sys::move_mount_fd(tree.as_fd(), target.as_fd()).map_err(sys::err_at("mount", dest))?;
    if !opts.propagation.is_empty() {
        let top = target_fd(root, dest, no_symlinks)?;
        for (flag, rec) in &opts.propagation {
            let attr = MountAttr {
                propagation: *flag,
                ..Default::default()
            };
            sys::mount_setattr(top.as_fd(), *rec, &attr)
                .map_err(sys::err_at("set propagation", dest))?;
        }
    }
    Ok(())
}

/// Files below /proc a bind mount may cover (as runc allows, for lxcfs).
const PROC_BIND_ALLOWED: &[&str] = &[
    "proc/cpuinfo",
    "proc/diskstats",
    "proc/meminfo",
    "proc/stat",
    "proc/swaps",
    "proc/uptime",
    "proc/loadavg",
    "proc/slabinfo",
    "proc/net/dev",
    "proc/sys/kernel/ns_last_pid",
];

/// /proc is procfs and nothing the container did not get from the kernel
/// covers its files (CVE-2023-28642 / CVE-2025-52881: masked paths, sysctl
/// and other procfs writes must not land on something else): /proc itself
/// takes only `type: proc` (a bind is checked to be procfs once opened),
/// and below it only bind mounts of the files runc allows.
fn check_proc_destination(i: usize, dest: &Path, typ: &str, bind: bool) -> Result<()> {
    let rel = resolve::clean(dest);
    let bad = |msg: String| {
        Err(RootfsError::Invalid {
            field: format!("mounts[{i}]"),
            msg,
        })
    };
    if rel == Path::new("proc") {
        if typ != "proc" && !bind {
            return bad(format!("{typ} on /proc: only procfs may be mounted there"));
        }
    } else if rel.starts_with("proc") {
        let allowed = bind && PROC_BIND_ALLOWED.iter().any(|p| rel == Path::new(p));
        if !allowed {
            return bad(format!(
                "{} is inside /proc: only bind mounts onto {} are allowed there",
                dest.display(),
                PROC_BIND_ALLOWED
                    .iter()
                    .map(|p| format!("/{p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

fn target_fd(root: BorrowedFd<'_>, dest: &Path, no_symlinks: bool) -> Result<OwnedFd> {
    let extra = if no_symlinks {
        sys::RESOLVE_NO_SYMLINKS
    } else {
        0
    };
    resolve::open_in_root(root, dest, libc::O_PATH, extra).map_err(|e| match e {
        Errno::ELOOP => RootfsError::Invalid {
            field: "mounts".into(),
            msg: format!(
                "{} is a symlink in the rootfs; refusing to mount there",
                dest.display()
            ),
        },
        e => RootfsError::Sys(crate::sys::SysError::at("open", dest.to_path_buf(), e)),
    })
}

fn prepare_target(root: BorrowedFd<'_>, dest: &Path, dir: bool, no_symlinks: bool) -> Result<()> {
    if no_symlinks {
        // Refuse before creating anything if the path is a symlink.
        match resolve::open_in_root(root, dest, libc::O_PATH, sys::RESOLVE_NO_SYMLINKS) {
            Ok(_) | Err(Errno::ENOENT) => {}
            Err(_) => return target_fd(root, dest, true).map(drop),
        }
    }
    let r = if dir {
        resolve::mkdir_all(root, dest, 0o755)
    } else {
        resolve::create_file(root, dest)
    };
    Ok(r.map(drop)
        .map_err(sys::err_at("create mount point", dest))?)
}

fn set_attrs(fd: BorrowedFd<'_>, opts: &MountOptions, dest: &Path) -> Result<()> {
    if opts.attr_set == 0 && opts.attr_clr == 0 {
        return Ok(());
    }
    let attr = MountAttr {
        attr_set: opts.attr_set,
        attr_clr: opts.attr_clr,
        ..Default::default()
    };
    Ok(
        sys::mount_setattr(fd, opts.attr_recursive || opts.recursive, &attr)
            .map_err(sys::err_at("set mount options", dest))?,
    )
}

/// A new filesystem instance through fsopen/fsconfig/fsmount.
fn fs_mount(typ: &str, source: &str, opts: &MountOptions) -> Result<OwnedFd> {
    let typ_c = CString::new(typ).map_err(|_| RootfsError::Invalid {
        field: "mounts.type".into(),
        msg: format!("{typ:?}"),
    })?;
    let fs = sys::fsopen(&typ_c).map_err(|e| match e {
        Errno::ENODEV => RootfsError::Invalid {
            field: "mounts.type".into(),
            msg: format!("unknown filesystem type {typ:?}"),
        },
        e => RootfsError::Sys(crate::sys::SysError::at("fsopen", typ, e)),
    })?;
    let cs = |s: &str| {
        CString::new(s).map_err(|_| RootfsError::Invalid {
            field: "mounts.options".into(),
            msg: format!("{s:?}"),
        })
    };
    // Not every filesystem takes a source; ignore a refusal of it.
    let _ = sys::fsconfig(fs.as_fd(), c"source", Some(&cs(source)?));
    for flag in &opts.sb_flags {
        sys::fsconfig(fs.as_fd(), &cs(flag)?, None).map_err(sys::err_at("mount option", flag))?;
    }
    for (k, v) in &opts.data {
        let r = match v {
            Some(v) => sys::fsconfig(fs.as_fd(), &cs(k)?, Some(&cs(v)?)),
            None => sys::fsconfig(fs.as_fd(), &cs(k)?, None),
        };
        r.map_err(|e| RootfsError::Invalid {
            field: "mounts.options".into(),
            msg: format!(
                "{typ} rejected option {k}{}: {e}",
                v.as_ref().map(|v| format!("={v}")).unwrap_or_default()
            ),
        })?;
    }
    Ok(sys::fs_create_mount(fs.as_fd(), 0).map_err(sys::err_at("mount", typ))?)
}

/// `type: cgroup`: the container's own cgroups, read-only unless asked.
fn mount_cgroup(
    ctx: &Context<'_>,
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &MountOptions,
) -> Result<()> {
    let attach = |tree: OwnedFd, at: &Path| -> Result<()> {
        set_attrs(tree.as_fd(), opts, at)?;
        let target = resolve::open_path(root, at).map_err(sys::err_at("open", at))?;
        Ok(sys::move_mount_fd(tree.as_fd(), target.as_fd()).map_err(sys::err_at("mount", at))?)
    };
    if ctx.cgroups.unified {
        let tree = if ctx.cgroupns {
            fs_mount("cgroup2", "cgroup2", &MountOptions::default())?
        } else {
            let dir = ctx
                .cgroups
                .v2_dir
                .clone()
                .unwrap_or_else(|| "/sys/fs/cgroup".into());
            sys::open_tree(sys::cwd(), &cpath(&dir)?, sys::OPEN_TREE_CLONE)
                .map_err(sys::err_at("open_tree", &dir))?
        };
        return attach(tree, dest);
    }
    // v1: a tmpfs with one bind of the container's cgroup per hierarchy.
    let tmpfs_opts = MountOptions {
        data: vec![("mode".into(), Some("755".into()))],
        ..Default::default()
    };
    let tmp = fs_mount("tmpfs", "cgroup", &tmpfs_opts)?;
    let target = resolve::open_path(root, dest).map_err(sys::err_at("open", dest))?;
    sys::move_mount_fd(tmp.as_fd(), target.as_fd()).map_err(sys::err_at("mount", dest))?;
    for dir in &ctx.cgroups.dirs {
        let Some(name) = dir
            .ancestors()
            .find(|a| a.parent() == Some(Path::new("/sys/fs/cgroup")))
            .and_then(|a| a.file_name())
        else {
            continue;
        };
        let at = dest.join(name);
        resolve::mkdir_all(root, &at, 0o755).map_err(sys::err_at("mkdir", &at))?;
        let tree = sys::open_tree(sys::cwd(), &cpath(dir)?, sys::OPEN_TREE_CLONE)
            .map_err(sys::err_at("open_tree", dir))?;
        attach(tree, &at)?;
    }
    let top = resolve::open_path(root, dest).map_err(sys::err_at("open", dest))?;
    set_attrs(top.as_fd(), opts, dest)
}

const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

fn create_devices(ctx: &Context<'_>, root: BorrowedFd<'_>) -> Result<()> {
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
        // SAFETY: `dev` is a directory fd; both strings are valid C strings.
        let r = unsafe { libc::symlinkat(t.as_ptr(), dev.as_raw_fd(), n.as_ptr()) };
        if r != 0 && Errno::last() != Errno::EEXIST {
            return Err(RootfsError::Sys(crate::sys::SysError::at(
                "symlink",
                PathBuf::from("/dev").join(name),
                Errno::last(),
            )));
        }
    }
    Ok(())
}

fn spec_device(ctx: &Context<'_>, root: BorrowedFd<'_>, d: &LinuxDevice) -> Result<()> {
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
fn make_device(
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
    if ctx.userns {
        // mknod is not allowed in a user namespace: bind the host's node.
        let target = resolve::create_file(root, &rel).map_err(sys::err_at("create", path))?;
        let host = cpath(path)?;
        let tree = sys::open_tree(sys::cwd(), &host, sys::OPEN_TREE_CLONE)
            .map_err(sys::err_at("open host device", path))?;
        return Ok(sys::move_mount_fd(tree.as_fd(), target.as_fd())
            .map_err(sys::err_at("bind device", path))?);
    }
    // Replace whatever is there (a file, a symlink) with the node.
    // SAFETY: `dir` is a directory fd and `name_c` a single component.
    unsafe { libc::unlinkat(dir.as_raw_fd(), name_c.as_ptr(), 0) };
    let dev = libc::makedev(major as u32, minor as u32);
    // SAFETY: as above; mknodat never follows symlinks.
    if unsafe { libc::mknodat(dir.as_raw_fd(), name_c.as_ptr(), kind | mode, dev) } != 0 {
        return Err(RootfsError::Sys(crate::sys::SysError::at(
            "mknod",
            path,
            Errno::last(),
        )));
    }
    // SAFETY: as above; AT_SYMLINK_NOFOLLOW keeps us on the node we made.
    if unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name_c.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(RootfsError::Sys(crate::sys::SysError::at(
            "chown",
            path,
            Errno::last(),
        )));
    }
    // SAFETY: as above. fchmodat ignores the umask that mknodat applied.
    if unsafe { libc::fchmodat(dir.as_raw_fd(), name_c.as_ptr(), mode, 0) } != 0 {
        return Err(RootfsError::Sys(crate::sys::SysError::at(
            "chmod",
            path,
            Errno::last(),
        )));
    }
    Ok(())
}

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
pub fn finish(spec: &Spec) -> Result<()> {
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

/// Open the container's /dev/null (after pivot_root) and make sure it is the
/// real 1:3 device (CVE-2025-31133): a masked path must never be bound to a
/// file or symlink the container controls.
fn open_devnull() -> Result<OwnedFd> {
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

fn open_existing(root: BorrowedFd<'_>, path: &Path) -> Result<Option<OwnedFd>> {
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

fn mask_path(root: BorrowedFd<'_>, path: &Path, devnull: BorrowedFd<'_>) -> Result<()> {
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

fn readonly_path(root: BorrowedFd<'_>, path: &Path) -> Result<()> {
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

/// Write sysctls through an fd of the container's own /proc/sys, checked to
/// be procfs, with no symlinks or mount crossings on the way.
fn write_sysctls(
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
