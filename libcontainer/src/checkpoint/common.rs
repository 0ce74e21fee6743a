//! What a dump and a restore share: the options both take (runc's flags
//! of both `checkpoint` and `restore`), the request options they send
//! criu the same way, and how a failed answer is reported.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::dump::{config_file, open_dir};
use super::rpc::{opt, CgMode, Enc, Resp};
use super::{log_excerpt, CheckpointError};

/// The options of both checkpoint and restore.
#[derive(Debug, Clone)]
pub struct CommonOptions {
    /// criu's log and working files go here (default: the image directory).
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: CgMode,
    /// CLONE_NEW* flags of namespaces criu should leave out (`--empty-ns`).
    pub empty_ns: u32,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
}

impl Default for CommonOptions {
    /// runc's defaults: everything off, criu's files in the image directory.
    fn default() -> Self {
        CommonOptions {
            work_path: None,
            tcp_established: false,
            ext_unix_sk: false,
            shell_job: false,
            file_locks: false,
            manage_cgroups_mode: CgMode::Default,
            empty_ns: 0,
            auto_dedup: false,
            lazy_pages: false,
        }
    }
}

/// `--empty-ns` names as CLONE_NEW* flags: runc leaves only the network
/// namespace empty. The error is the name refused.
pub fn empty_ns_flags(list: &[String]) -> Result<u32, &str> {
    list.iter().try_fold(0u32, |acc, n| match n.as_str() {
        "network" | "net" => Ok(acc | libc::CLONE_NEWNET as u32),
        other => Err(other),
    })
}

/// The image and work directories, open, and where criu's log goes.
pub(super) struct Dirs {
    pub images: OwnedFd,
    pub work: Option<OwnedFd>,
    pub log_dir: PathBuf,
}

impl CommonOptions {
    /// Open the image directory (made first with `create_images`) and the
    /// work directory.
    pub(super) fn open_dirs(
        &self,
        image_path: &Path,
        create_images: bool,
    ) -> Result<Dirs, CheckpointError> {
        let images = open_dir(image_path, create_images)?;
        let work = self
            .work_path
            .as_deref()
            .map(|w| open_dir(w, true))
            .transpose()?;
        let log_dir = self
            .work_path
            .clone()
            .unwrap_or_else(|| image_path.to_path_buf());
        Ok(Dirs {
            images,
            work,
            log_dir,
        })
    }

    /// The request options a dump and a restore send alike: the
    /// directories, criu's log (`log_file`), its root, cgroup handling,
    /// these flags and the criu configuration file named in `annotations`.
    pub(super) fn encode(
        &self,
        opts: &mut Enc,
        dirs: &Dirs,
        log_file: &str,
        root: &Path,
        annotations: Option<&std::collections::HashMap<String, String>>,
    ) {
        opts.i32(opt::IMAGES_DIR_FD, dirs.images.as_raw_fd())
            .i32(opt::LOG_LEVEL, 4)
            .str(opt::LOG_FILE, log_file)
            .str(opt::ROOT, &root.to_string_lossy())
            .bool(opt::MANAGE_CGROUPS, true)
            .u64(opt::MANAGE_CGROUPS_MODE, self.manage_cgroups_mode as u64)
            .bool(opt::NOTIFY_SCRIPTS, true)
            .flag(opt::SHELL_JOB, self.shell_job)
            .flag(opt::TCP_ESTABLISHED, self.tcp_established)
            .flag(opt::EXT_UNIX_SK, self.ext_unix_sk)
            .flag(opt::FILE_LOCKS, self.file_locks)
            .bool(opt::ORPHAN_PTS_MASTER, true)
            .flag(opt::AUTO_DEDUP, self.auto_dedup)
            .flag(opt::LAZY_PAGES, self.lazy_pages);
        if self.empty_ns != 0 {
            opts.u64(opt::EMPTY_NS, u64::from(self.empty_ns));
        }
        if let Some(w) = &dirs.work {
            opts.i32(opt::WORK_DIR_FD, w.as_raw_fd());
        }
        if let Some(c) = config_file(annotations) {
            opts.str(opt::CONFIG_FILE, &c);
        }
    }
}

/// criu's answer to a `typ` request, as an error unless it succeeded; the
/// error quotes the log `log_dir/log_file`.
pub(super) fn check_answer(
    resp: &Resp,
    typ: u64,
    op: &'static str,
    log_dir: &Path,
    log_file: &str,
) -> Result<(), CheckpointError> {
    if resp.success && resp.typ == typ {
        return Ok(());
    }
    Err(CheckpointError::Failed {
        op,
        errno: resp.cr_errno,
        msg: resp.cr_errmsg.clone().filter(|m| !super::is_noise(m)),
        log: log_excerpt(log_dir, log_file),
    })
}
