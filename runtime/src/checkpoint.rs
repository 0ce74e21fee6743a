//! `checkpoint` and `restore` (runc's flags) over libcontainer's CRIU
//! support.

use std::path::PathBuf;

use clap::Args;
use libcontainer::checkpoint::{self, CgMode, CheckpointOptions, CommonOptions, RestoreOptions};
use libcontainer::container;

use crate::log::Logger;
use crate::wait;

#[derive(Args)]
pub struct CheckpointArgs {
    /// Directory for the criu image files (default: ./checkpoint).
    #[arg(long, default_value = "checkpoint")]
    pub image_path: PathBuf,
    /// Path of a previous checkpoint (relative to the image path) this one builds on.
    #[arg(long)]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint.
    #[arg(long)]
    pub leave_running: bool,
    /// Skip TCP connections that are still being set up.
    #[arg(long)]
    pub tcp_skip_in_flight: bool,
    /// Allow criu to link-remap unlinked files.
    #[arg(long)]
    pub link_remap: bool,
    /// Send the memory to a criu page server at ADDRESS:PORT.
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub page_server: Option<String>,
    /// Dump the memory only, leaving the container running (needs memory tracking).
    #[arg(long)]
    pub pre_dump: bool,
    #[command(flatten)]
    pub common: CommonArgs,
    pub id: String,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// Unix socket to send the pty master to (terminal containers).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Directory holding the criu image files (default: ./checkpoint).
    #[arg(long, default_value = "checkpoint")]
    pub image_path: PathBuf,
    /// Path to the bundle (holds config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Detach from the restored container.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the restored init's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility (this runtime never makes itself a subreaper).
    #[arg(long)]
    pub no_subreaper: bool,
    /// Accepted for runc compatibility (criu sets up the root itself).
    #[arg(long)]
    pub no_pivot: bool,
    /// Not supported: an LSM profile for the restored processes.
    #[arg(long)]
    pub lsm_profile: Option<String>,
    /// Not supported: an LSM mount context.
    #[arg(long)]
    pub lsm_mount_context: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
    pub id: String,
}

/// The flags of both `checkpoint` and `restore`.
#[derive(Args)]
pub struct CommonArgs {
    /// Directory for criu's log and work files (default: the image path).
    #[arg(long)]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long)]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// Allow shell jobs (a terminal shared with the caller).
    #[arg(long)]
    pub shell_job: bool,
    /// Allow file locks.
    #[arg(long)]
    pub file_locks: bool,
    /// Cgroup handling: soft, full, strict or ignore.
    #[arg(long, default_value = "")]
    pub manage_cgroups_mode: String,
    /// Namespaces criu should leave out (only network).
    #[arg(long)]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory pages against the parent checkpoint.
    #[arg(long)]
    pub auto_dedup: bool,
    /// Use userfaultfd to restore memory lazily.
    #[arg(long)]
    pub lazy_pages: bool,
}

impl CommonArgs {
    fn options(&self) -> Result<CommonOptions, String> {
        let s = &self.manage_cgroups_mode;
        Ok(CommonOptions {
            work_path: self.work_path.clone(),
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            manage_cgroups_mode: CgMode::parse(s).ok_or_else(|| {
                format!("--manage-cgroups-mode {s:?}: use soft, full, strict or ignore")
            })?,
            // runc accepts only network here.
            empty_ns: checkpoint::empty_ns_flags(&self.empty_ns).map_err(|n| {
                format!("--empty-ns {n:?}: only the network namespace can be left empty")
            })?,
            auto_dedup: self.auto_dedup,
            lazy_pages: self.lazy_pages,
        })
    }
}

fn page_server(s: &str) -> Result<(String, i32), String> {
    let (addr, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("--page-server {s:?}: use ADDRESS:PORT"))?;
    let port = port
        .parse()
        .map_err(|_| format!("--page-server {s:?}: bad port"))?;
    Ok((addr.to_string(), port))
}

pub fn checkpoint(root: &std::path::Path, criu: &str, a: &CheckpointArgs) -> Result<u8, String> {
    let parent_path = a.parent_path.as_ref().map(|p| {
        if p.is_relative() {
            a.image_path.join(p)
        } else {
            p.clone()
        }
    });
    let o = CheckpointOptions {
        common: a.common.options()?,
        parent_path,
        leave_running: a.leave_running,
        tcp_skip_in_flight: a.tcp_skip_in_flight,
        link_remap: a.link_remap,
        pre_dump: a.pre_dump,
        page_server: a.page_server.as_deref().map(page_server).transpose()?,
        ..CheckpointOptions::new(criu, &a.image_path)
    };
    checkpoint::checkpoint(root, &a.id, &o).map_err(|e| e.to_string())?;
    Ok(0)
}

pub fn restore(
    root: &std::path::Path,
    criu: &str,
    a: &RestoreArgs,
    log: &Logger,
) -> Result<u8, String> {
    if a.lsm_profile.is_some() || a.lsm_mount_context.is_some() {
        return Err(
            "--lsm-profile / --lsm-mount-context: no LSM is supported by this runtime".into(),
        );
    }
    let o = RestoreOptions {
        common: a.common.options()?,
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        ..RestoreOptions::new(criu, &a.id, &a.bundle, root, &a.image_path)
    };
    let set = wait::forwarded();
    if !a.detach {
        wait::block(&set)?;
    }
    let r = checkpoint::restore(&o).map_err(|e| e.to_string())?;
    r.warnings.iter().for_each(|w| log.warn(w));
    log.debug(&format!("restored {} with init pid {}", a.id, r.pid));
    if a.detach {
        return Ok(0);
    }
    // Foreground, as runc: the restored init is our child (criu restored it
    // as its sibling); wait for it, then delete the container.
    let code = wait::wait(r.pid, &set, None)?;
    match container::delete(root, &a.id, true) {
        Ok(w) => w.iter().for_each(|w| log.warn(w)),
        Err(e) => log.warn(&format!("delete {}: {e}", a.id)),
    }
    Ok(code)
}
