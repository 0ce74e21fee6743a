//! The container operations, each on a locked state directory: create
//! (`create.rs`), start/state/list/kill/delete (`lifecycle.rs`), exec
//! (`exec.rs`), and the cgroup-backed pause/resume/update/stats/ps/events
//! (`cgroup_ops.rs`). They share one error type, [`ContainerError`], whose
//! variants say what a client must tell apart: the container does not
//! exist, already exists, or is in the wrong state for the operation.

mod cgroup_ops;
mod create;
mod exec;
mod lifecycle;

use std::path::PathBuf;

pub use cgroup_ops::{events, pause, ps, resume, stats, update};
pub(crate) use create::{check_cgroups_free, load_bundle, planned_state, Bundle};
pub use create::{create, write_pid_file, CgroupDriver, CreateOptions, Created};
pub use exec::{exec, ExecRequest, Execed};
pub use lifecycle::{delete, delete_deferring_hooks, kill, list, start, state, Poststop, Started};

use crate::cgroups::CgroupError;
use crate::namespaces::NamespaceError;
use crate::process::ProcessError;
use crate::spec::SpecError;
use crate::state::{StateError, Status};
use crate::tty;

/// An operation on a container, for [`ContainerError::WrongState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Start,
    Kill,
    Delete,
    Exec,
    Pause,
    Resume,
    Update,
    Stats,
    Events,
    Checkpoint,
}

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container with id {0} already exists")]
    Exists(String),
    /// The container exists but `op` cannot be done in `status`. The
    /// wording is runc's, which clients match on (containerd's shim looks
    /// for "container not running").
    #[error("{}", describe_wrong_state(*.op, .id, *.status))]
    WrongState { id: String, op: Op, status: Status },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    State(StateError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Tty(#[from] tty::TtyError),
    #[error(transparent)]
    Mount(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Exec(#[from] crate::process::exec::ExecError),
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("root.path {path}: {msg}")]
    Rootfs { path: PathBuf, msg: String },
    #[error("bundle {path}: {source}")]
    Bundle {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A request that cannot be carried out as given (a missing section
    /// of the config, an impossible argument); the message names it.
    #[error("{0}")]
    Invalid(String),
    #[error("{op}: {source}")]
    Io { op: String, source: std::io::Error },
}

impl ContainerError {
    /// The container does not exist (what a client maps to NotFound).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ContainerError::NotFound(_))
    }

    pub(crate) fn wrong_state(id: &str, op: Op, status: Status) -> Self {
        ContainerError::WrongState {
            id: id.to_string(),
            op,
            status,
        }
    }
}

impl From<StateError> for ContainerError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::NotFound(id) => ContainerError::NotFound(id),
            StateError::Exists(id) => ContainerError::Exists(id),
            e => ContainerError::State(e),
        }
    }
}

fn describe_wrong_state(op: Op, id: &str, status: Status) -> String {
    match (op, status) {
        (Op::Start, Status::Stopped) => format!("cannot start a container that has stopped: {id}"),
        (Op::Start, s) => format!("cannot start an already {s} container: {id}"),
        (Op::Kill, _) => format!("container not running: {id}"),
        (Op::Delete, s) => format!("cannot delete container {id} that is not stopped: {s}"),
        (Op::Exec, Status::Paused) => {
            format!("cannot exec in a paused container: {id} (use --ignore-paused)")
        }
        (Op::Exec, _) => format!("cannot exec in a stopped container: {id}"),
        (Op::Pause, Status::Paused) => format!("container {id} is already paused"),
        (Op::Resume, _) => format!("container {id} is not paused"),
        (Op::Checkpoint, s) => {
            format!("container {id} cannot be checkpointed in {s} state")
        }
        (Op::Pause | Op::Update | Op::Stats | Op::Events, _) => {
            format!("container {id} is not running")
        }
    }
}

type Result<T> = std::result::Result<T, ContainerError>;
