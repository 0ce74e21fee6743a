//! The task API's checkpoint and restore, through libcontainer's criu
//! support, as containerd's runc shim does them:
//!
//! - `Checkpoint` dumps the task's container into the request's `path`
//!   (containerd makes that directory, then tars it into its content store
//!   as the checkpoint image, with the spec next to it). With the option
//!   `exit` the container stops: criu kills it, the shim reaps the init and
//!   reports its exit as for any other exit. criu's log and work files go
//!   to the option's `work_path`, else to `<bundle>/criu-work`, removed
//!   afterwards (kept as `<bundle>/criu-dump.log` when the dump failed).
//! - `Create` with `checkpoint` set (the image directory containerd
//!   unpacked) restores instead of creating, with the shim's stdio: pipes
//!   the init had at checkpoint time are replaced by the new task's.
//!   Unlike the Go shim (which restores at Start), the restore happens in
//!   Create, so a failure leaves nothing behind and is reported where
//!   containerd can clean up; Start then only reports the running init.
//!
//! criu runs synchronously in the single-threaded shim: the loop serves
//! nothing else while a dump or restore runs (libcontainer bounds each
//! criu call; see `libcontainer::checkpoint::swrk::TIMEOUT`).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use containerd_shim_protos::api::{self, Empty};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use libcontainer::cgroups::oom::OomWatcher;
use libcontainer::checkpoint::{
    self as lc, CgMode, CheckpointOptions, CommonOptions, RestoreOptions,
};
use libcontainer::tty;

use crate::options::{fields, text, Field, Options};
use crate::service::{err, lc_err, unknown, Rpc, Shim};
use crate::stdio::Io;
use crate::task::State;
use crate::wire::Code;

/// The criu binary: runc's `CriuPath` option, else `criu` on PATH.
pub fn criu(opts: &Options) -> PathBuf {
    if opts.criu_path.is_empty() {
        PathBuf::from("criu")
    } else {
        PathBuf::from(&opts.criu_path)
    }
}

/// `containerd.runc.v1.CheckpointOptions` (or the legacy
/// `containerd.linux.runc.CheckpointOptions`, which swaps the numbers of
/// `image_path` and `work_path`).
#[derive(Debug, Default, PartialEq)]
pub struct Opts {
    pub exit: bool,
    pub open_tcp: bool,
    pub external_unix_sockets: bool,
    pub terminal: bool,
    pub file_locks: bool,
    pub empty_namespaces: Vec<String>,
    pub cgroups_mode: String,
    pub image_path: String,
    pub work_path: String,
}

pub fn decode(any: Option<&Any>) -> Result<Opts, String> {
    let mut o = Opts::default();
    let Some(a) = any.filter(|a| !(a.type_url.is_empty() && a.value.is_empty())) else {
        return Ok(o);
    };
    let (image, work) = match a.type_url.rsplit('/').next().unwrap_or_default() {
        "containerd.runc.v1.CheckpointOptions" => (8, 9),
        "containerd.linux.runc.CheckpointOptions" => (9, 8),
        other => return Err(format!("checkpoint options: unknown type {other}")),
    };
    let bad = |e: String| format!("checkpoint options {}: {e}", a.type_url);
    for (num, f) in fields(&a.value).map_err(bad)? {
        match (num, f) {
            (1, Field::Varint(v)) => o.exit = v != 0,
            (2, Field::Varint(v)) => o.open_tcp = v != 0,
            (3, Field::Varint(v)) => o.external_unix_sockets = v != 0,
            (4, Field::Varint(v)) => o.terminal = v != 0,
            (5, Field::Varint(v)) => o.file_locks = v != 0,
            (6, Field::Bytes(v)) => o.empty_namespaces.push(text(v).map_err(bad)?),
            (7, Field::Bytes(v)) => o.cgroups_mode = text(v).map_err(bad)?,
            (n, Field::Bytes(v)) if n == image => o.image_path = text(v).map_err(bad)?,
            (n, Field::Bytes(v)) if n == work => o.work_path = text(v).map_err(bad)?,
            _ => {}
        }
    }
    Ok(o)
}

fn cg_mode(s: &str) -> Rpc<CgMode> {
    CgMode::parse(s).ok_or_else(|| {
        err(
            Code::INVALID_ARGUMENT,
            format!("checkpoint option cgroups_mode {s:?}: use soft, full, strict or ignore"),
        )
    })
}

/// `empty_namespaces` as CLONE_NEW* flags; runc leaves only the network
/// namespace empty.
fn empty_ns(list: &[String]) -> Rpc<u32> {
    lc::empty_ns_flags(list).map_err(|other| {
        err(
            Code::INVALID_ARGUMENT,
            format!("checkpoint option empty_namespaces {other:?}: only network can be left empty"),
        )
    })
}

impl Shim {
    pub fn checkpoint(&mut self, r: api::CheckpointTaskRequest) -> Rpc<Empty> {
        let t = self
            .tasks
            .get(&r.id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("task {} not found", r.id)))?;
        match t.init.state {
            State::Created => {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("cannot checkpoint task {}: it is not started", r.id),
                ))
            }
            State::Stopped => {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("cannot checkpoint task {}: it is stopped", r.id),
                ))
            }
            State::Running => {}
        }
        let o = decode(r.options.as_ref()).map_err(|e| err(Code::INVALID_ARGUMENT, e))?;
        let image = if r.path.is_empty() {
            o.image_path.clone()
        } else {
            r.path.clone()
        };
        if image.is_empty() {
            return Err(err(
                Code::INVALID_ARGUMENT,
                "checkpoint: no image path (request path or option image_path)",
            ));
        }
        // criu's log and work files: out of the image directory (containerd
        // archives all of it), in the bundle unless asked for.
        let (work, scratch) = if o.work_path.is_empty() {
            (t.bundle.join("criu-work"), true)
        } else {
            (PathBuf::from(&o.work_path), false)
        };
        let opts = CheckpointOptions {
            common: CommonOptions {
                work_path: Some(work.clone()),
                tcp_established: o.open_tcp,
                ext_unix_sk: o.external_unix_sockets,
                shell_job: o.terminal,
                file_locks: o.file_locks,
                manage_cgroups_mode: cg_mode(&o.cgroups_mode)?,
                empty_ns: empty_ns(&o.empty_namespaces)?,
                ..CommonOptions::default()
            },
            leave_running: !o.exit,
            ..CheckpointOptions::new(&t.criu, &image)
        };
        let result = lc::checkpoint(&t.root, &t.id, &opts);
        let kept = t.bundle.join("criu-dump.log");
        let result = result.map_err(|e| {
            let mut e = lc_err(e);
            if std::fs::copy(work.join("dump.log"), &kept).is_ok() {
                e.1 = format!("{} (log kept at {})", e.1, kept.display());
            }
            e
        });
        if scratch {
            let _ = std::fs::remove_dir_all(&work);
        }
        result?;
        // With `exit`, criu killed the container and libcontainer deleted
        // its state; the loop reaps the init and reports the exit.
        Ok(Empty::new())
    }
}

/// A pty master criu hands back while it restores a terminal container:
/// a listening socket in the bundle that the restore connects to.
struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    fn new(bundle: &Path) -> Rpc<ConsoleSocket> {
        let path = bundle.join("restore-console.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| unknown(format!("bind {}: {e}", path.display())))?;
        Ok(ConsoleSocket { path, listener })
    }

    /// The master the restore sent (it connected and wrote before it returned).
    fn master(&self) -> Rpc<OwnedFd> {
        self.listener
            .set_nonblocking(true)
            .map_err(|e| unknown(format!("console socket {}: {e}", self.path.display())))?;
        let (conn, _) = self.listener.accept().map_err(|e| {
            unknown(format!(
                "console socket {}: no pty master from the restore: {e}",
                self.path.display()
            ))
        })?;
        conn.set_nonblocking(false)
            .map_err(|e| unknown(format!("console socket {}: {e}", self.path.display())))?;
        tty::recv_master(&OwnedFd::from(conn)).map_err(unknown)
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Create's restore branch: the checkpoint in `r.checkpoint` comes back as
/// task `r.id` from `bundle`, with the stdio `child` (`None`: a terminal,
/// whose pty master is attached to `io`). Returns what create records:
/// (init pid, io, cgroup v2?, OOM watcher, kill all on exit?).
pub fn restore(
    r: &api::CreateTaskRequest,
    opts: &Options,
    bundle: &Path,
    root: &Path,
    mut io: Io,
    child: Option<[OwnedFd; 3]>,
) -> Rpc<(i32, Io, bool, Option<OomWatcher>, bool)> {
    let console = if r.terminal {
        Some(ConsoleSocket::new(bundle)?)
    } else {
        None
    };
    let work_path = if opts.criu_work_path.is_empty() {
        None
    } else {
        Some(PathBuf::from(&opts.criu_work_path))
    };
    let restored = lc::restore(&RestoreOptions {
        common: CommonOptions {
            work_path,
            ..CommonOptions::default()
        },
        console_socket: console.as_ref().map(|c| c.path.clone()),
        pid_file: Some(bundle.join("init.pid")),
        stdio: child
            .as_ref()
            .map(|c| [c[0].as_raw_fd(), c[1].as_raw_fd(), c[2].as_raw_fd()]),
        ..RestoreOptions::new(criu(opts), &r.id, bundle, root, &r.checkpoint)
    })
    .map_err(lc_err)?;
    drop(child);
    if let Some(c) = &console {
        let attached = c
            .master()
            .and_then(|m| io.attach_console(m).map_err(unknown));
        if let Err(e) = attached {
            let _ = libcontainer::container::delete(root, &r.id, true);
            return Err(e);
        }
    }
    let oom = OomWatcher::new(&restored.cgroups).ok().flatten();
    Ok((
        restored.pid,
        io,
        restored.cgroups.unified,
        oom,
        !restored.own_pid_namespace,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::tests::any;

    #[test]
    fn runc_checkpoint_options() {
        // exit (1), empty_namespaces "network" (6), image_path "/i" (8), work_path "/w" (9)
        let mut v = vec![0x08, 1, 0x32, 7];
        v.extend_from_slice(b"network");
        v.extend_from_slice(&[0x42, 2, b'/', b'i', 0x4a, 2, b'/', b'w']);
        let o = decode(Some(&any(
            "type.googleapis.com/containerd.runc.v1.CheckpointOptions",
            v.clone(),
        )))
        .unwrap();
        assert!(o.exit && !o.open_tcp);
        assert_eq!(o.empty_namespaces, ["network"]);
        assert_eq!((o.image_path.as_str(), o.work_path.as_str()), ("/i", "/w"));
        let legacy = decode(Some(&any("containerd.linux.runc.CheckpointOptions", v))).unwrap();
        assert_eq!(
            (legacy.image_path.as_str(), legacy.work_path.as_str()),
            ("/w", "/i")
        );
        assert_eq!(decode(None), Ok(Opts::default()));
        assert!(decode(Some(&any("x.Y", vec![]))).is_err());
    }

    /// A task that is not running is refused before criu is asked.
    #[test]
    fn checkpoint_of_a_stopped_or_created_task_is_refused() {
        use crate::service::tests::task;
        use crate::stdio::Paths;
        use crate::task::{Process, Task};
        let mut s = Shim::new("oxtest".into(), "/nonexistent/containerd.sock".into());
        let paths = Paths {
            stdin: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            terminal: false,
        };
        for (state, word) in [(State::Stopped, "stopped"), (State::Created, "not started")] {
            let mut init = Process::new("", paths.clone());
            init.state = state;
            let t = task(
                "/nonexistent/bundle".into(),
                "/nonexistent/root".into(),
                init,
            );
            s.tasks.insert(
                "c1".into(),
                Task {
                    criu: "/nonexistent/criu".into(),
                    ..t
                },
            );
            let mut r = api::CheckpointTaskRequest::new();
            r.id = "c1".into();
            r.path = "/nonexistent/image".into();
            let (code, msg) = s.checkpoint(r).unwrap_err();
            assert_eq!(code, Code::FAILED_PRECONDITION, "{msg}");
            assert!(msg.contains(word), "{msg}");
        }
        let mut r = api::CheckpointTaskRequest::new();
        r.id = "nope".into();
        assert_eq!(s.checkpoint(r).unwrap_err().0, Code::NOT_FOUND);
    }

    #[test]
    fn only_the_network_namespace_can_be_empty() {
        assert_eq!(
            empty_ns(&["network".into()]).unwrap(),
            libc::CLONE_NEWNET as u32
        );
        assert!(empty_ns(&["pid".into()]).is_err());
        assert!(cg_mode("sometimes").is_err());
    }
}
