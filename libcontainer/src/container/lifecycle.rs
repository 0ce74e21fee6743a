//! start, state, list, kill and delete.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use super::{ContainerError, Op, Result};
use crate::process;
use crate::state::{self, State, StateDir, StateError, Status};
use crate::{hooks, sys};

/// What `start` did.
#[derive(Debug, Default)]
pub struct Started {
    /// poststart hook failures (they do not fail `start`).
    pub warnings: Vec<String>,
    /// Notes for `--debug` logging only.
    pub debug: Vec<String>,
}

/// Release a created container.
pub fn start(root: &Path, id: &str) -> Result<Started> {
    let sd = StateDir::open(root, id)?;
    let mut st = sd.load()?;
    match st.status() {
        Status::Created => {}
        status => return Err(ContainerError::wrong_state(id, Op::Start, status)),
    }
    let result = process::release_init(sd.fd());
    let _ = nix::unistd::unlinkat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&sd.fd())),
        state::START_SOCKET,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    st.started = true;
    sd.save(&st)?;
    result?;
    let mut debug = Vec::new();
    let n = hooks::of_kind(&st.config, "startContainer").len();
    if n > 0 {
        debug.push(format!(
            "startContainer hooks run ({n}, by init, in the container)"
        ));
    }
    let args = st
        .config
        .process()
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default();
    // release_init returns Ok only once init's execve succeeded.
    debug.push(format!(
        "init pid {} released: exec of {args:?} done",
        st.pid
    ));
    let json = state::oci_state_json(id, "running", st.pid, &st.bundle, &st.config);
    let warnings = hooks::run_all(&st.config, "poststart", &json);
    let n = hooks::of_kind(&st.config, "poststart").len();
    if n > 0 {
        debug.push(format!("poststart hooks run ({n}, by the runtime)"));
    }
    Ok(Started { warnings, debug })
}

/// A container's saved state and live status.
pub fn state(root: &Path, id: &str) -> Result<(State, Status)> {
    state::validate_id(id)?;
    let st = state::read_state(&root.join(id))?;
    let status = st.status();
    Ok((st, status))
}

pub fn list(root: &Path) -> Vec<(State, Status)> {
    state::list(root)
        .into_iter()
        .map(|s| {
            let status = s.status();
            (s, status)
        })
        .collect()
}

/// Send `sig` to the init (or, with `all`, to every process in the cgroup).
/// `--all` on a stopped container signals whatever is left and succeeds, as
/// runc does; containerd's shim relies on that when it force-deletes.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    if all {
        st.cgroups.signal_all(sig);
        // Rootless without a delegated cgroup: init is all we know of.
        if st.cgroups.dirs.is_empty() && st.status() != Status::Stopped {
            signal_init(&st, sig)?;
        }
        return Ok(());
    }
    if st.status() == Status::Stopped {
        return Err(ContainerError::wrong_state(id, Op::Kill, Status::Stopped));
    }
    signal_init(&st, sig)
}

fn signal_init(st: &State, sig: i32) -> Result<()> {
    let fd = st
        .init_pidfd()
        .ok_or_else(|| ContainerError::wrong_state(&st.id, Op::Kill, Status::Stopped))?;
    sys::pidfd_send_signal(fd.as_fd(), sig).map_err(|e| ContainerError::Io {
        op: format!("signal {sig} to {}", st.pid),
        source: e.into(),
    })
}

/// Delete a container. A running or paused one needs `force`. Returns
/// poststop hook warnings.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<Vec<String>> {
    let (mut warnings, poststop) = delete_deferring_hooks(root, id, force)?;
    warnings.extend(poststop.map(Poststop::run).unwrap_or_default());
    Ok(warnings)
}

/// The poststop hooks of a deleted container, for the caller to run.
pub struct Poststop {
    config: oci_spec::runtime::Spec,
    state: Vec<u8>,
}

impl Poststop {
    /// Run them here and now; returns one warning per failed hook.
    pub fn run(self) -> Vec<String> {
        hooks::run_all(&self.config, "poststop", &self.state)
    }
}

/// `delete`, leaving the poststop hooks (if the container has any) to the
/// caller. Returns warnings and the hooks.
pub fn delete_deferring_hooks(
    root: &Path,
    id: &str,
    force: bool,
) -> Result<(Vec<String>, Option<Poststop>)> {
    state::validate_id(id)?;
    state::sweep_stale(root, id);
    let sd = StateDir::open(root, id)?;
    let st = match (sd.load(), force) {
        (Ok(st), _) => st,
        // state.json is missing or corrupt: --force cleans up from the
        // state it replaced, or removes the bare directory.
        (Err(StateError::Corrupt { .. } | StateError::Incomplete(_)), true) => {
            match sd.load_for_cleanup() {
                Ok(st) => st,
                Err(e) => {
                    let warning = format!("{e}: removed without its state");
                    sd.remove()?;
                    return Ok((vec![warning], None));
                }
            }
        }
        (Err(e), _) => return Err(e.into()),
    };
    let status = st.status();
    match status {
        Status::Stopped | Status::Created => {}
        s if !force => return Err(ContainerError::wrong_state(id, Op::Delete, s)),
        _ => {}
    }
    if status != Status::Stopped {
        let _ = signal_init(&st, libc::SIGKILL);
        st.cgroups.signal_all(libc::SIGKILL);
        process::wait_gone(st.pid, Duration::from_secs(10));
    }
    st.cgroups.destroy()?;
    sd.remove()?;
    // A create that was killed before it had an init was never created:
    // no poststop. Nor without poststop hooks.
    if st.pid == 0 || hooks::of_kind(&st.config, "poststop").is_empty() {
        return Ok((Vec::new(), None));
    }
    let state = state::oci_state_json(id, "stopped", st.pid, &st.bundle, &st.config);
    Ok((
        Vec::new(),
        Some(Poststop {
            config: st.config,
            state,
        }),
    ))
}
