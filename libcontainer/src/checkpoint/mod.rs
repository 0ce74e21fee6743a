//! Checkpoint and restore with CRIU, spoken to over its RPC interface
//! (`criu swrk` on a socketpair): `dump.rs` writes a running container's
//! process tree to an image directory, `restore.rs` brings it back as a
//! new container with its own state directory and cgroups, `external.rs`
//! tells criu which of the container's mounts and namespaces come from
//! outside (bind mounts, cgroup binds, masked paths, device nodes),
//! `common.rs` holds what dump and restore share, and `rpc.rs` / `swrk.rs`
//! carry the messages. runc's `libcontainer/criu_linux.go` is the
//! reference for what criu is told.

mod common;
mod dump;
mod external;
mod restore;
pub mod rpc;
pub mod swrk;

use std::path::PathBuf;

pub use common::{empty_ns_flags, CommonOptions};
pub use dump::{checkpoint, CheckpointOptions};
pub use restore::{restore, RestoreOptions, Restored};
pub use rpc::CgMode;

/// The file in the image directory that records what the init's stdin,
/// stdout and stderr were at checkpoint time (`pipe:[ino]`, a path, ...),
/// so restore can hand its own pipes in their place. runc's name and
/// format (a JSON array of strings), so images move between the two.
pub const DESCRIPTORS_FILE: &str = "descriptors.json";
/// The annotation naming criu's configuration file (runc's).
pub const CRIU_CONFIG_ANNOTATION: &str = "org.criu.config";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("criu {path}: {source} (install criu 4.x or point --criu at it)")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("criu {criu}: no answer within {secs} s; killed")]
    Timeout { criu: PathBuf, secs: u64 },
    #[error("criu protocol: {0}")]
    Protocol(String),
    /// criu answered that the dump or restore failed; `log` names its log
    /// file and quotes its error lines.
    #[error("criu {op} failed{errno}{msg}; {log}", errno = .errno.map(|e| format!(" (errno {e})")).unwrap_or_default(), msg = .msg.as_ref().map(|m| format!(": {}", m.trim())).unwrap_or_default())]
    Failed {
        op: &'static str,
        errno: Option<i32>,
        msg: Option<String>,
        log: String,
    },
    #[error("image directory {path}: {msg}")]
    Images { path: PathBuf, msg: String },
    #[error("{field}: {msg}")]
    Unsupported { field: String, msg: String },
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Sys(#[from] crate::sys::SysError),
}

/// criu's errors that do not stop it: without CAP_SYS_RESOURCE it cannot
/// raise its own open-file limit, logs that as an error, and goes on.
pub(crate) fn is_noise(line: &str) -> bool {
    line.contains("Can't setup RLIMIT_NOFILE for self")
}

/// The log criu wrote (`dir/file`), as the tail of an error message: its
/// path and the lines that report errors (with the line before each), so
/// the reason shows without opening the file.
pub(crate) fn log_excerpt(dir: &std::path::Path, file: &str) -> String {
    let path = dir.join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return format!("no log at {}", path.display());
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut picked: Vec<&str> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.contains("Error") && !is_noise(l) {
            if i > 0 && !l.contains("(criu/cr-") && !picked.contains(&lines[i - 1]) {
                picked.push(lines[i - 1]);
            }
            picked.push(l);
        }
    }
    let keep = picked.len().saturating_sub(8);
    if picked.is_empty() {
        format!("see {}", path.display())
    } else {
        format!("see {}:\n  {}", path.display(), picked[keep..].join("\n  "))
    }
}
