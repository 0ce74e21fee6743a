//! Each spec mount onto its fd-resolved destination: bind (`open_tree`),
//! filesystems (`fsopen`/`fsmount`), cgroup, the `/proc` rules, and mount
//! attributes (`mount_setattr`).
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::Mount;

use super::options::{self, MountOptions};
use super::{cpath, resolve, Context, Result, RootfsError};
use crate::sys::{self, MountAttr};

pub(super) fn parse_opts(m: &Mount) -> MountOptions {
    let mut o = options::parse(m.options().as_deref().unwrap_or(&[]));
    if m.typ().as_deref() == Some("bind") {
        o.bind = true;
    }
    o
}

pub(super) fn mount_one(
    ctx: &mut Context<'_>,
    root: BorrowedFd<'_>,
    i: usize,
    m: &Mount,
) -> Result<()> {
    let dest = m.destination();
    let mut opts = parse_opts(m);
    if resolve::clean(dest) == Path::new("dev")
        && (opts.attr_set | opts.rec_attr_set) & sys::MOUNT_ATTR_RDONLY != 0
    {
        // /dev is filled in after it is mounted (devpts, shm and mqueue
        // mount points, device nodes, symlinks): made read-only once that is
        // done (`prepare`), as runc does.
        opts.attr_set &= !sys::MOUNT_ATTR_RDONLY;
        opts.rec_attr_set &= !sys::MOUNT_ATTR_RDONLY;
        ctx.dev_readonly = true;
    }
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
    if opts.tmpcopyup && (opts.bind || typ != "tmpfs") {
        return Err(field(format!(
            "tmpcopyup on {}: it applies to tmpfs mounts only",
            dest.display()
        )));
    }
    check_proc_destination(i, dest, &typ, opts.bind)?;
    // /proc and /sys must be real directories: a symlink there is an attack
    // (CVE-2019-19921 / CVE-2023-27561) even if it points inside the root.
    let no_symlinks = matches!(typ.as_str(), "proc" | "sysfs");
    let tree = if opts.bind || ctx.idmapped.contains_key(&i) {
        let src = m
            .source()
            .clone()
            .ok_or_else(|| field("bind mount without a source".into()))?;
        let src = if src.is_relative() {
            ctx.bundle.join(src)
        } else {
            src
        };
        let tree = match ctx.idmapped.get(&i) {
            // Opened (and idmapped) by the runtime before clone: see idmap.rs.
            Some(t) => t
                .try_clone()
                .map_err(|e| sys::SysError::io("dup source of", dest, &e))?,
            None => {
                let flags =
                    sys::OPEN_TREE_CLONE | if opts.recursive { sys::AT_RECURSIVE } else { 0 };
                sys::open_tree(sys::cwd(), &cpath(&src)?, flags)
                    .map_err(sys::err_at("open bind source", &src))?
            }
        };
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
    if opts.tmpcopyup {
        // Into the tmpfs while it is detached: what the destination holds.
        let from = resolve::open_in_root(root, dest, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(sys::err_at("open for tmpcopyup", dest))?;
        super::copyup::copy_dir(from.as_fd(), tree.as_fd()).map_err(|(path, e)| {
            field(format!(
                "tmpcopyup: copy {}{path} into the tmpfs: {e}",
                dest.display()
            ))
        })?;
    }
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
pub(super) const PROC_BIND_ALLOWED: &[&str] = &[
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
pub(super) fn check_proc_destination(i: usize, dest: &Path, typ: &str, bind: bool) -> Result<()> {
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

pub(super) fn target_fd(root: BorrowedFd<'_>, dest: &Path, no_symlinks: bool) -> Result<OwnedFd> {
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

pub(super) fn prepare_target(
    root: BorrowedFd<'_>,
    dest: &Path,
    dir: bool,
    no_symlinks: bool,
) -> Result<()> {
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

pub(super) fn set_attrs(fd: BorrowedFd<'_>, opts: &MountOptions, dest: &Path) -> Result<()> {
    // `ro`, `nosuid`, ... on the top mount only (runc remounts the bind
    // without MS_REC); `rro`, `rnosuid`, ... on every mount of the tree.
    for (set, clr, recursive) in [
        (opts.attr_set, opts.attr_clr, false),
        (opts.rec_attr_set, opts.rec_attr_clr, true),
    ] {
        if set == 0 && clr == 0 {
            continue;
        }
        let attr = MountAttr {
            attr_set: set,
            attr_clr: clr,
            ..Default::default()
        };
        sys::mount_setattr(fd, recursive, &attr).map_err(sys::err_at("set mount options", dest))?;
    }
    Ok(())
}

/// A new filesystem instance through fsopen/fsconfig/fsmount.
pub(super) fn fs_mount(typ: &str, source: &str, opts: &MountOptions) -> Result<OwnedFd> {
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
pub(super) fn mount_cgroup(
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
