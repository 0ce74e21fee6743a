//! OCI hooks: run each with the container state JSON on stdin, its own args
//! and env, and an optional timeout.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook {path}: {source}")]
    Spawn {
        kind: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{kind} hook {path} failed: {status}{stderr}")]
    Failed {
        kind: &'static str,
        path: String,
        status: String,
        stderr: String,
    },
    #[error("{kind} hook {path} timed out after {secs}s")]
    Timeout {
        kind: &'static str,
        path: String,
        secs: i64,
    },
}

/// The six hook kinds with their hooks, in spec order.
pub fn all(spec: &Spec) -> Vec<(&'static str, &Vec<Hook>)> {
    let Some(h) = spec.hooks() else {
        return Vec::new();
    };
    [
        ("prestart", h.prestart()),
        ("createRuntime", h.create_runtime()),
        ("createContainer", h.create_container()),
        ("startContainer", h.start_container()),
        ("poststart", h.poststart()),
        ("poststop", h.poststop()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    .collect()
}

/// The hooks of one kind (empty if none).
pub fn of_kind<'a>(spec: &'a Spec, kind: &str) -> &'a [Hook] {
    all(spec)
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v.as_slice())
        .unwrap_or(&[])
}

/// Run every hook of `kind` even if some fail (poststart, poststop: the spec
/// makes their failures warnings); returns one message per failure.
pub fn run_all(spec: &Spec, kind: &'static str, state_json: &[u8]) -> Vec<String> {
    of_kind(spec, kind)
        .iter()
        .filter_map(|h| run_one(kind, h, state_json).err().map(|e| e.to_string()))
        .collect()
}

/// Run every hook of `kind` in order; stop at the first failure.
pub fn run(spec: &Spec, kind: &'static str, state_json: &[u8]) -> Result<(), HookError> {
    for hook in of_kind(spec, kind) {
        run_one(kind, hook, state_json)?;
    }
    Ok(())
}

fn run_one(kind: &'static str, hook: &Hook, state_json: &[u8]) -> Result<(), HookError> {
    let path = hook.path().display().to_string();
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args() {
        if let Some((arg0, rest)) = args.split_first() {
            cmd.arg0(arg0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // A hook gets stdio and nothing else, as runc's do: whatever the
    // runtime or init holds open without close-on-exec (fds inherited from
    // the caller, --preserve-fds before they reach the container) is closed
    // at its execve. Marked close-on-exec rather than closed, so std's own
    // exec-error pipe still reports a hook that cannot be started.
    // SAFETY: the closure makes one async-signal-safe syscall (close_range)
    // between fork and execve and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| crate::sys::cloexec_from(3).map_err(std::io::Error::from));
    }
    let spawn_err = |source| HookError::Spawn {
        kind,
        path: path.clone(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state_json);
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| (t, Instant::now() + Duration::from_secs(t as u64)));
    let status = if deadline.is_none() {
        child.wait().map_err(spawn_err)?
    } else {
        loop {
            match child.try_wait().map_err(spawn_err)? {
                Some(s) => break s,
                None => {
                    if let Some((secs, at)) = deadline {
                        if Instant::now() >= at {
                            let _ = child.kill();
                            let _ = child.wait();
                            return Err(HookError::Timeout { kind, path, secs });
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    };
    let stderr = if stderr.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", stderr.trim())
    };
    Err(HookError::Failed {
        kind,
        path,
        status,
        stderr,
    })
}
