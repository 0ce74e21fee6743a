//! `checkpoint`: dump a running container's process tree with criu. Unless
//! asked to leave it running, the container is then gone (criu killed its
//! processes) and is deleted as `delete --force` would.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;

use super::common::{check_answer, CommonOptions};
use super::rpc::{self, opt, Enc};
use super::swrk::{self, Spawn, Swrk};
use super::{external, log_excerpt, CheckpointError, DESCRIPTORS_FILE};
use crate::container::{ContainerError, Op};
use crate::state::{State, StateDir, Status};

pub struct CheckpointOptions {
    /// The criu binary (`criu` on PATH by default).
    pub criu: PathBuf,
    pub image_path: PathBuf,
    /// What restore takes too (work path, shared flags).
    pub common: CommonOptions,
    /// A previous (pre-)dump this one is incremental to.
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    pub tcp_skip_in_flight: bool,
    pub link_remap: bool,
    pub pre_dump: bool,
    /// `--page-server ADDRESS:PORT`.
    pub page_server: Option<(String, i32)>,
}

impl CheckpointOptions {
    /// runc's defaults: everything off, the images in `image_path`.
    pub fn new(criu: impl Into<PathBuf>, image_path: impl Into<PathBuf>) -> Self {
        CheckpointOptions {
            criu: criu.into(),
            image_path: image_path.into(),
            common: CommonOptions::default(),
            parent_path: None,
            leave_running: false,
            tcp_skip_in_flight: false,
            link_remap: false,
            pre_dump: false,
            page_server: None,
        }
    }
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CheckpointError + 'a {
    move |e| CheckpointError::Sys(crate::sys::SysError::io(op, path, &e))
}

/// Make (if needed) and open a directory criu writes into.
pub(super) fn open_dir(path: &Path, create: bool) -> Result<OwnedFd, CheckpointError> {
    if create {
        match std::fs::create_dir(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("mkdir", path)(e)),
        }
    }
    let f = std::fs::File::open(path).map_err(|e| CheckpointError::Images {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    if !f.metadata().map_err(io_err("stat", path))?.is_dir() {
        return Err(CheckpointError::Images {
            path: path.to_path_buf(),
            msg: "not a directory".into(),
        });
    }
    Ok(OwnedFd::from(f))
}

/// The criu configuration file: the `org.criu.config` annotation (empty:
/// none), else runc's default `/etc/criu/runc.conf` (criu skips a missing
/// file), so one configuration serves both runtimes.
pub(super) fn config_file(
    st_annotations: Option<&std::collections::HashMap<String, String>>,
) -> Option<String> {
    match st_annotations.and_then(|a| a.get(super::CRIU_CONFIG_ANNOTATION)) {
        Some(f) if f.is_empty() => None,
        Some(f) => Some(f.clone()),
        None => Some("/etc/criu/runc.conf".into()),
    }
}

/// Namespaces the container joined by path (net, pid): dumped as external,
/// `<kind>[<inode>]:extRoot<Kind>NS`, to be handed back at restore.
fn external_namespaces(st: &State) -> Result<Vec<String>, CheckpointError> {
    let mut out = Vec::new();
    let list = st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for n in list {
        let (kind, key) = match n.typ() {
            LinuxNamespaceType::Network => ("net", "extRootNetNS"),
            LinuxNamespaceType::Pid => ("pid", "extRootPidNS"),
            _ => continue,
        };
        let Some(p) = n.path() else { continue };
        let md = std::fs::metadata(p).map_err(io_err("stat", p))?;
        out.push(format!(
            "{kind}[{}]:{key}",
            std::os::unix::fs::MetadataExt::ino(&md)
        ));
    }
    Ok(out)
}

/// What the init's stdin, stdout and stderr are (runc's descriptors.json).
fn descriptors(pid: i32) -> Vec<String> {
    (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "/dev/null".into())
        })
        .collect()
}

pub fn checkpoint(root: &Path, id: &str, o: &CheckpointOptions) -> Result<(), ContainerError> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    let status = st.status();
    if !matches!(status, Status::Running | Status::Paused) {
        return Err(ContainerError::wrong_state(id, Op::Checkpoint, status));
    }
    dump(&st, o)?;
    if o.leave_running || o.pre_dump {
        return Ok(());
    }
    // criu killed the container's processes: it is stopped now, and goes
    // as with `delete --force` (runc destroys it too).
    drop(sd);
    crate::container::delete(root, id, true).map(drop)
}

fn dump(st: &State, o: &CheckpointOptions) -> Result<(), CheckpointError> {
    if o.pre_dump || o.parent_path.is_some() || o.common.lazy_pages {
        let (mem, lazy) = swrk::features(
            &o.criu,
            o.pre_dump || o.parent_path.is_some(),
            o.common.lazy_pages,
        )?;
        if (o.pre_dump || o.parent_path.is_some()) && !mem {
            return Err(CheckpointError::Unsupported {
                field: if o.pre_dump {
                    "--pre-dump"
                } else {
                    "--parent-path"
                }
                .into(),
                msg: "criu reports no memory change tracking on this kernel (soft-dirty bits)"
                    .into(),
            });
        }
        if o.common.lazy_pages && !lazy {
            return Err(CheckpointError::Unsupported {
                field: "--lazy-pages".into(),
                msg: "criu reports no lazy-pages support on this kernel (userfaultfd)".into(),
            });
        }
    }
    let dirs = o.common.open_dirs(&o.image_path, true)?;
    let mut opts = Enc::default();
    o.common.encode(
        &mut opts,
        &dirs,
        "dump.log",
        &st.rootfs,
        st.config.annotations().as_ref(),
    );
    opts.i32(opt::PID, st.pid)
        .flag(opt::LEAVE_RUNNING, o.leave_running)
        .flag(opt::TCP_SKIP_IN_FLIGHT, o.tcp_skip_in_flight)
        .flag(opt::LINK_REMAP, o.link_remap);
    for e in external_namespaces(st)? {
        opts.str(opt::EXTERNAL, &e);
    }
    let freezer = st.cgroups.freezer.clone().or_else(|| {
        st.cgroups
            .unified
            .then(|| st.cgroups.v2_dir.clone())
            .flatten()
    });
    if let Some(f) = freezer {
        opts.str(opt::FREEZE_CGROUP, &f.to_string_lossy());
    }
    if let Some((addr, port)) = &o.page_server {
        let mut ps = Enc::default();
        ps.str(1, addr).i32(2, *port);
        opts.msg(opt::PS, &ps);
    }
    if let Some(p) = &o.parent_path {
        opts.str(opt::PARENT_IMG, &p.to_string_lossy())
            .bool(opt::TRACK_MEM, true);
    }
    if !o.pre_dump {
        for (k, v) in external::for_dump(&st.config, &st.cgroups, st.pid) {
            opts.msg(opt::EXT_MNT, &rpc::pair_str(&k, &v));
        }
        let fds = serde_json::to_vec(&descriptors(st.pid))
            .map_err(|e| CheckpointError::Protocol(e.to_string()))?;
        let f = o.image_path.join(DESCRIPTORS_FILE);
        std::fs::write(&f, fds).map_err(io_err("write", &f))?;
    }
    let typ = if o.pre_dump {
        rpc::REQ_PRE_DUMP
    } else {
        rpc::REQ_DUMP
    };
    let mut criu = Swrk::spawn(&Spawn {
        criu: &o.criu,
        inherit: &[],
        stdio: None,
    })?;
    let resp = criu.call(&rpc::request(typ, Some(&opts)), |_, _, _| Ok(()))?;
    let status = criu.finish();
    let op = if o.pre_dump { "pre-dump" } else { "dump" };
    check_answer(&resp, typ, op, &dirs.log_dir, "dump.log")?;
    match status {
        Ok(s) if s.success() || o.pre_dump => Ok(()),
        Ok(s) => Err(CheckpointError::Failed {
            op: "dump",
            errno: None,
            msg: Some(format!("criu exited with {s}")),
            log: log_excerpt(&dirs.log_dir, "dump.log"),
        }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    /// What `features` lists as potentially unsafe is what dump reads.
    #[test]
    fn criu_config_annotation_names_the_file() {
        let listed = crate::features::features()["potentiallyUnsafeConfigAnnotations"].clone();
        assert_eq!(
            listed,
            serde_json::json!([super::super::CRIU_CONFIG_ANNOTATION])
        );
        let with = |v: &str| {
            HashMap::from([(
                super::super::CRIU_CONFIG_ANNOTATION.to_string(),
                v.to_string(),
            )])
        };
        assert_eq!(
            super::config_file(Some(&with("/etc/my.conf"))).as_deref(),
            Some("/etc/my.conf")
        );
        assert_eq!(super::config_file(Some(&with(""))), None);
        assert_eq!(
            super::config_file(None).as_deref(),
            Some("/etc/criu/runc.conf")
        );
    }
}
