//! The `containerd.task.v2.Task` service: each call decoded, run against
//! the shim's tasks through libcontainer (no runtime binary is exec'd),
//! and answered with a gRPC status code containerd understands. Events are
//! queued here and sent by the loop after the reply, so containerd always
//! sees create -> start -> exit -> delete.
//!
//! A call never waits on one container for long, since the loop serves
//! all of them (a pod's, with CRI). What can take long runs in a helper
//! process (`crate::helper`) with the reply parked until it exits: Create
//! (libcontainer's create with its prestart, createRuntime and
//! createContainer hooks), the init's Start (startContainer hooks, run by
//! init before its execve, and poststart hooks) and Delete's poststop
//! hooks. The waits left inside a call, each bounded:
//! - a `binary://` logger's readiness, in `stdio::prepare` (10 s);
//! - an exec's start, `container::exec`: until the process has execve'd
//!   (no hooks; a paused container is refused, so it cannot freeze);
//! - Delete of a never-started task: libcontainer waits for the SIGKILLed
//!   init to be gone (10 s, reached only if the kernel holds it);
//! - Pause/Resume: the freezer reaching its state (10 s);
//! - any libcontainer call: the container's lock (`LOCK_WAIT`, 30 s), held
//!   only by another `oxrun` command on the same root, or by this shim's
//!   helper while it creates or starts that container (then calls that
//!   would take the lock are refused, see `settled`).

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use containerd_shim_protos::api::{self, Empty};
use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::protobuf::{Enum, MessageField};
use containerd_shim_protos::shim::oci::ProcessDetails;
use libcontainer::cgroups::oom::OomWatcher;
use libcontainer::container::{self, ContainerError};
use libcontainer::tty;

use crate::events::{any, timestamp, Publisher};
use crate::helper::{self, Helper};
use crate::mounts;
use crate::options::{self, Options};
use crate::stdio::{self, Paths};
use crate::task::{exit_code, reap_children, Process, State, Task, Waiter};
use crate::wire::{self, Code};

pub type RpcError = (Code, String);
pub type Rpc<T> = Result<T, RpcError>;

/// What a call produced: a reply now, or a Wait parked until exit.
pub enum Reply {
    Now(Vec<u8>),
    Later,
}

pub(crate) fn err(code: Code, msg: impl std::fmt::Display) -> RpcError {
    (code, msg.to_string())
}

pub(crate) fn unknown(e: impl std::fmt::Display) -> RpcError {
    err(Code::UNKNOWN, e)
}

/// A failure as a helper reports it: `err <code> <message>`.
fn failure((code, msg): RpcError) -> String {
    format!("err {} {msg}", code.value())
}

/// A helper's report of a failure, back as the error it was.
fn parse_failure(words: &str) -> RpcError {
    let (code, msg) = words.split_once(' ').unwrap_or((words, ""));
    let code = code
        .parse()
        .ok()
        .and_then(Code::from_i32)
        .unwrap_or(Code::UNKNOWN);
    err(code, msg)
}

/// libcontainer's state root when the options name none.
pub fn default_root(namespace: &str) -> PathBuf {
    Path::new("/run/containerd/oxrun").join(namespace)
}

/// libcontainer's errors as gRPC codes, in one place: a missing container
/// is NotFound, a duplicate AlreadyExists, an operation the container's
/// state does not allow FailedPrecondition, anything else Unknown.
pub(crate) fn lc_err(e: ContainerError) -> RpcError {
    let code = match e {
        ContainerError::NotFound(_) => Code::NOT_FOUND,
        ContainerError::Exists(_) => Code::ALREADY_EXISTS,
        ContainerError::WrongState { .. } => Code::FAILED_PRECONDITION,
        _ => Code::UNKNOWN,
    };
    err(code, e)
}

pub struct Shim {
    pub namespace: String,
    pub tasks: BTreeMap<String, Task>,
    pub publisher: Publisher,
    pub shutdown: bool,
    /// Replies to parked calls: (connection, frame).
    pub outbox: Vec<(u64, Vec<u8>)>,
    /// Calls whose reply waits for a helper process (create, start,
    /// poststop hooks).
    pending: Vec<Pending>,
    /// Shutdown was asked for while a call was still pending.
    shutdown_requested: bool,
}

/// Bounds on the helpers. Hooks may declare their own (shorter) timeouts;
/// these only end a helper stuck for good, so they are generous.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);
const START_TIMEOUT: Duration = Duration::from_secs(120);
const POSTSTOP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a non-PID-namespace container's other processes get to die
/// after its init exited (see `init_exited`), and how often the loop looks.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
const DRAIN_RECHECK: Duration = Duration::from_millis(10);

/// A call parked until helper `helper` exits.
struct Pending {
    helper: Helper,
    waiter: Waiter,
    op: Op,
}

enum Op {
    /// A task's Create: what the shim has set up around it so far.
    Create(Box<Creating>),
    /// The init's Start (startContainer and poststart hooks).
    Start { id: String },
    /// A task's Delete, waiting for its poststop hooks.
    Delete {
        resp: api::DeleteResponse,
        event: ev::TaskDelete,
    },
}

struct Creating {
    req: api::CreateTaskRequest,
    paths: Paths,
    io: stdio::Io,
    bundle: PathBuf,
    root: PathBuf,
    mounted: bool,
    /// The criu binary for a later Checkpoint.
    criu: PathBuf,
    /// Restored from a checkpoint (the init already runs).
    restored: bool,
}

fn wait_reply(stream: u32, p: &Process) -> Option<Vec<u8>> {
    let mut r = api::WaitResponse::new();
    r.exit_status = p.exit_status;
    r.exited_at = p.exited_at.map(timestamp).into();
    wire::response(stream, wire::encode(&r).map_err(unknown)).ok()
}

fn ts(
    t: Option<SystemTime>,
) -> MessageField<containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp> {
    t.map(timestamp).into()
}

/// No process is left in the task's cgroup (or it cannot be read).
fn drained(t: &Task) -> bool {
    !matches!(container::ps(&t.root, &t.id), Ok(p) if !p.is_empty())
}

impl Shim {
    pub fn new(namespace: String, ttrpc_address: String) -> Shim {
        Shim {
            publisher: Publisher::new(ttrpc_address, namespace.clone()),
            namespace,
            tasks: BTreeMap::new(),
            shutdown: false,
            outbox: Vec::new(),
            pending: Vec::new(),
            shutdown_requested: false,
        }
    }

    fn task(&self, id: &str) -> Rpc<&Task> {
        self.tasks
            .get(id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("task {id} not found")))
    }

    /// A task whose start helper is not running: the helper holds the
    /// container's lock until its poststart hooks are done, and a call
    /// that takes the lock here would wait for it, holding up the loop.
    fn settled(&mut self, id: &str) -> Rpc<&mut Task> {
        let t = self.task_mut(id)?;
        if t.starting {
            return Err(err(
                Code::FAILED_PRECONDITION,
                format!("task {id} is starting"),
            ));
        }
        Ok(t)
    }

    fn task_mut(&mut self, id: &str) -> Rpc<&mut Task> {
        self.tasks
            .get_mut(id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("task {id} not found")))
    }

    fn default_root(&self) -> PathBuf {
        default_root(&self.namespace)
    }

    /// Run one call. `conn`/`stream` identify it for a parked Wait.
    pub fn dispatch(&mut self, method: &str, payload: &[u8], conn: u64, stream: u32) -> Rpc<Reply> {
        macro_rules! call {
            ($f:ident) => {{
                let req = wire::decode(stringify!($f), payload)
                    .map_err(|e| err(Code::INVALID_ARGUMENT, e))?;
                let resp = self.$f(req)?;
                Ok(Reply::Now(wire::encode(&resp).map_err(unknown)?))
            }};
        }
        match method {
            "State" => call!(state),
            "Create" => {
                let req: api::CreateTaskRequest =
                    wire::decode("Create", payload).map_err(|e| err(Code::INVALID_ARGUMENT, e))?;
                self.create(req, (conn, stream))
            }
            "Start" => {
                let req: api::StartRequest =
                    wire::decode("Start", payload).map_err(|e| err(Code::INVALID_ARGUMENT, e))?;
                self.start(req, (conn, stream))
            }
            "Delete" => {
                let req: api::DeleteRequest =
                    wire::decode("Delete", payload).map_err(|e| err(Code::INVALID_ARGUMENT, e))?;
                self.delete(req, (conn, stream))
            }
            "Pids" => call!(pids),
            "Pause" => call!(pause),
            "Resume" => call!(resume),
            "Kill" => call!(kill),
            "Exec" => call!(exec),
            "ResizePty" => call!(resize_pty),
            "CloseIO" => call!(close_io),
            "Update" => call!(update),
            "Connect" => call!(connect),
            "Shutdown" => call!(shutdown),
            "Stats" => call!(stats),
            "Wait" => {
                let req: api::WaitRequest =
                    wire::decode("Wait", payload).map_err(|e| err(Code::INVALID_ARGUMENT, e))?;
                self.wait(req, (conn, stream))
            }
            "Checkpoint" => call!(checkpoint),
            other => Err(err(
                Code::UNIMPLEMENTED,
                format!("/containerd.task.v2.Task/{other} is not supported"),
            )),
        }
    }

    fn state(&mut self, r: api::StateRequest) -> Rpc<api::StateResponse> {
        let t = self.task(&r.id)?;
        let p = t
            .process(&r.exec_id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("process {} not found", r.exec_id)))?;
        let mut s = api::StateResponse::new();
        s.id = if r.exec_id.is_empty() {
            t.id.clone()
        } else {
            r.exec_id.clone()
        };
        s.bundle = t.bundle.display().to_string();
        s.pid = p.pid.max(0) as u32;
        s.status = t.status(p).into();
        s.stdin = p.paths.stdin.clone();
        s.stdout = p.paths.stdout.clone();
        s.stderr = p.paths.stderr.clone();
        s.terminal = p.paths.terminal;
        s.exit_status = p.exit_status;
        s.exited_at = ts(p.exited_at);
        s.exec_id = r.exec_id;
        Ok(s)
    }

    /// Is a Create for `id` under way?
    fn creating(&self, id: &str) -> bool {
        self.pending
            .iter()
            .any(|p| matches!(&p.op, Op::Create(c) if c.req.id == id))
    }

    /// Create a task. The shim mounts the rootfs and opens the stdio; the
    /// container itself is created by a helper process (its create-time
    /// hooks may take long), and the reply waits for the helper.
    fn create(&mut self, r: api::CreateTaskRequest, waiter: Waiter) -> Rpc<Reply> {
        if self.tasks.contains_key(&r.id) || self.creating(&r.id) {
            return Err(err(
                Code::ALREADY_EXISTS,
                format!("task {} already exists", r.id),
            ));
        }
        let opts: Options =
            options::decode(r.options.as_ref()).map_err(|e| err(Code::INVALID_ARGUMENT, e))?;
        let root = if opts.root.is_empty() {
            self.default_root()
        } else {
            PathBuf::from(&opts.root)
        };
        let bundle = PathBuf::from(&r.bundle);
        // For `shim delete` after a crash: where the state is.
        std::fs::write(
            bundle.join(crate::ROOT_FILE),
            root.as_os_str().as_encoded_bytes(),
        )
        .map_err(|e| {
            unknown(format!(
                "write {}: {e}",
                bundle.join(crate::ROOT_FILE).display()
            ))
        })?;
        let mounted = match mounts::mount_rootfs(&bundle, &r.rootfs) {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(bundle.join(crate::ROOT_FILE));
                return Err(unknown(e));
            }
        };
        let paths = Paths {
            stdin: r.stdin.clone(),
            stdout: r.stdout.clone(),
            stderr: r.stderr.clone(),
            terminal: r.terminal,
        };
        let undo = |e: RpcError| {
            if mounted {
                mounts::unmount_rootfs(&bundle);
            }
            // Nothing is left for a crash cleanup to find.
            let _ = std::fs::remove_file(bundle.join(crate::ROOT_FILE));
            e
        };
        let prepared = stdio::prepare(&paths, &r.id, &self.namespace, opts.io_uid, opts.io_gid)
            .map_err(unknown)
            .map_err(undo)?;
        if !r.checkpoint.is_empty() {
            // A restore runs here, not in a create helper: criu took
            // 0.23-0.28 s for a small container (`ctr c restore`), which
            // this shim's loop waits. Moving it into a helper as create
            // is left for later.
            let restored =
                crate::checkpoint::restore(&r, &opts, &bundle, &root, prepared.io, prepared.child)
                    .map_err(undo)?;
            let (pid, io, unified, oom, kill_all_on_exit) = restored;
            let created = Creating {
                req: r,
                paths,
                io,
                bundle,
                root,
                mounted,
                criu: crate::checkpoint::criu(&opts),
                restored: true,
            };
            let resp = self.add_task(created, pid, unified, oom, kill_all_on_exit);
            return Ok(Reply::Now(wire::encode(&resp).map_err(unknown)?));
        }
        let child = prepared.child;
        let stdio: Option<[RawFd; 3]> = child
            .as_ref()
            .map(|c| [c[0].as_raw_fd(), c[1].as_raw_fd(), c[2].as_raw_fd()]);
        let (id, b, rt, terminal) = (r.id.clone(), bundle.clone(), root.clone(), r.terminal);
        let work = move |sock: &std::os::fd::OwnedFd| -> i32 {
            let created = container::create(&container::CreateOptions {
                pty_to_caller: terminal,
                pid_file: Some(b.join("init.pid")),
                no_pivot: opts.no_pivot_root,
                no_new_keyring: opts.no_new_keyring,
                // `SystemdCgroup = true`, or (containerd 1.6/1.7's CRI with
                // our runtime_type, which drops the option) a cgroupsPath in
                // systemd's `slice:prefix:name` form.
                cgroup_driver: if opts.systemd_cgroup {
                    container::CgroupDriver::Systemd
                } else {
                    container::CgroupDriver::Detect
                },
                stdio,
                ..container::CreateOptions::new(&id, &b, &rt)
            });
            let created = match created {
                Ok(c) => c,
                Err(e) => {
                    helper::report(sock, &failure(lc_err(e)), None);
                    return 1;
                }
            };
            let master = match created.console.as_ref().map(tty::recv_master) {
                None => None,
                Some(Ok(m)) => Some(m),
                Some(Err(e)) => {
                    let _ = container::delete(&rt, &id, true);
                    helper::report(sock, &failure(unknown(e)), None);
                    return 1;
                }
            };
            let ok = format!("ok {} {}", created.pid, u8::from(created.own_pid_namespace));
            helper::report(sock, &ok, master.as_ref().map(|m| m.as_raw_fd()));
            0
        };
        let keep: Vec<RawFd> = stdio.map(|f| f.to_vec()).unwrap_or_default();
        let helper = helper::spawn(&keep, CREATE_TIMEOUT, work)
            .map_err(unknown)
            .map_err(undo)?;
        // The helper has the process's stdio now.
        drop(child);
        self.pending.push(Pending {
            helper,
            waiter,
            op: Op::Create(Box::new(Creating {
                req: r,
                paths,
                io: prepared.io,
                bundle,
                root,
                mounted,
                criu: crate::checkpoint::criu(&opts),
                restored: false,
            })),
        });
        Ok(Reply::Later)
    }

    /// The create helper exited: add the task and answer, or undo.
    fn finish_create(&mut self, h: &Helper, waiter: Waiter, c: Creating) {
        let mut c = c;
        let (r, root, bundle, mounted) = (&c.req, c.root.clone(), c.bundle.clone(), c.mounted);
        let report = h.report();
        let result = (|| -> Rpc<(i32, bool, Option<OomWatcher>, bool)> {
            let Some(report) = report else {
                // Killed (overdue) or crashed half-way: remove what it made.
                let _ = container::delete(&root, &r.id, true);
                let why = if h.overdue {
                    format!("create did not finish within {CREATE_TIMEOUT:?}")
                } else {
                    "create ended without a result".to_string()
                };
                return Err(unknown(why));
            };
            let mut words = report.msg.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("ok"), Some(pid), Some(own)) => {
                    let pid: i32 = pid.parse().map_err(unknown)?;
                    let cleanup = |e: RpcError| {
                        let _ = container::delete(&root, &r.id, true);
                        e
                    };
                    if let Some(master) = report.fd {
                        c.io.attach_console(master)
                            .map_err(unknown)
                            .map_err(cleanup)?;
                    }
                    let (st, _) = container::state(&root, &r.id)
                        .map_err(lc_err)
                        .map_err(cleanup)?;
                    let oom = OomWatcher::new(&st.cgroups).ok().flatten();
                    // As the Go shim's `ShouldKillAllOnExit`.
                    let kill_all_on_exit = own != "1";
                    Ok((pid, st.cgroups.unified, oom, kill_all_on_exit))
                }
                _ if report.msg.starts_with("err ") => Err(parse_failure(&report.msg[4..])),
                _ => Err(unknown(format!(
                    "create: bad helper report {:?}",
                    report.msg
                ))),
            }
        })();
        let (pid, unified, oom, kill_all_on_exit) = match result {
            Ok(v) => v,
            Err(e) => {
                if mounted {
                    mounts::unmount_rootfs(&bundle);
                }
                // Nothing is left for a crash cleanup to find.
                let _ = std::fs::remove_file(bundle.join(crate::ROOT_FILE));
                self.answer(waiter, Err(e));
                return;
            }
        };
        let resp = self.add_task(c, pid, unified, oom, kill_all_on_exit);
        self.answer(waiter, wire::encode(&resp).map_err(unknown));
    }

    /// A created (or restored) task: keep it and tell containerd.
    fn add_task(
        &mut self,
        c: Creating,
        pid: i32,
        unified: bool,
        oom: Option<OomWatcher>,
        kill_all_on_exit: bool,
    ) -> api::CreateTaskResponse {
        let Creating {
            req: r,
            paths,
            io,
            bundle,
            root,
            mounted,
            criu,
            restored,
        } = c;
        let mut init = Process::new("", paths.clone());
        init.pid = pid;
        init.io = Some(io);
        self.tasks.insert(
            r.id.clone(),
            Task {
                id: r.id.clone(),
                bundle,
                root,
                mounted,
                unified,
                paused: false,
                init,
                execs: BTreeMap::new(),
                oom,
                ooms: 0,
                kill_all_on_exit,
                starting: false,
                held_exit: None,
                draining: None,
                criu,
                restored,
            },
        );
        let mut e = ev::TaskCreate::new();
        e.container_id = r.id.clone();
        e.bundle = r.bundle.clone();
        e.rootfs = r.rootfs.clone();
        let mut tio = ev::TaskIO::new();
        tio.stdin = paths.stdin;
        tio.stdout = paths.stdout;
        tio.stderr = paths.stderr;
        tio.terminal = paths.terminal;
        e.io = Some(tio).into();
        e.pid = pid as u32;
        self.publisher.publish(&e);
        let mut resp = api::CreateTaskResponse::new();
        resp.pid = pid as u32;
        resp
    }

    /// Queue the reply to a parked call.
    fn answer(&mut self, (conn, stream): Waiter, result: Rpc<Vec<u8>>) {
        if let Ok(f) = wire::response(stream, result) {
            self.outbox.push((conn, f));
        }
    }

    /// Start the init (in a helper: init runs the startContainer hooks
    /// before its execve, and poststart hooks follow; the reply waits for
    /// the helper) or an exec'd process (here: no hooks).
    fn start(&mut self, r: api::StartRequest, waiter: Waiter) -> Rpc<Reply> {
        if r.exec_id.is_empty() {
            let t = self.task_mut(&r.id)?;
            if t.init.state != State::Created || t.starting {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("task {} is not in the created state", r.id),
                ));
            }
            if t.restored {
                // Restored by Create: the init already runs.
                t.init.state = State::Running;
                let mut resp = api::StartResponse::new();
                resp.pid = t.init.pid as u32;
                let mut e = ev::TaskStart::new();
                e.container_id = r.id.clone();
                e.pid = resp.pid;
                self.publisher.publish(&e);
                return Ok(Reply::Now(wire::encode(&resp).map_err(unknown)?));
            }
            let (root, id) = (t.root.clone(), t.id.clone());
            let helper = helper::spawn(&[], START_TIMEOUT, move |sock| {
                match container::start(&root, &id) {
                    Ok(_) => {
                        helper::report(sock, "ok", None);
                        0
                    }
                    Err(e) => {
                        helper::report(sock, &failure(lc_err(e)), None);
                        1
                    }
                }
            })
            .map_err(unknown)?;
            t.starting = true;
            self.pending.push(Pending {
                helper,
                waiter,
                op: Op::Start { id: r.id },
            });
            return Ok(Reply::Later);
        }
        let resp = self.start_exec(r)?;
        Ok(Reply::Now(wire::encode(&resp).map_err(unknown)?))
    }

    /// The start helper exited: answer; then report an exit that came
    /// meanwhile (after TaskStart, as containerd expects).
    fn finish_start(&mut self, h: &Helper, waiter: Waiter, id: &str) {
        let Some(t) = self.tasks.get_mut(id) else {
            self.answer(
                waiter,
                Err(err(Code::NOT_FOUND, format!("task {id} is gone"))),
            );
            return;
        };
        t.starting = false;
        let result = match h.report() {
            Some(rep) if rep.msg == "ok" => Ok(()),
            Some(rep) if rep.msg.starts_with("err ") => Err(parse_failure(&rep.msg[4..])),
            _ if h.overdue => Err(unknown(format!(
                "start did not finish within {START_TIMEOUT:?}"
            ))),
            _ => Err(unknown("start ended without a result")),
        };
        match result {
            Ok(()) => {
                t.init.state = State::Running;
                let mut resp = api::StartResponse::new();
                resp.pid = t.init.pid as u32;
                let mut e = ev::TaskStart::new();
                e.container_id = id.to_string();
                e.pid = resp.pid;
                self.publisher.publish(&e);
                self.answer(waiter, wire::encode(&resp).map_err(unknown));
            }
            Err(e) => self.answer(waiter, Err(e)),
        }
        if let Some(status) = self.tasks.get_mut(id).and_then(|t| t.held_exit.take()) {
            self.init_exited(id, status);
        }
    }

    fn start_exec(&mut self, r: api::StartRequest) -> Rpc<api::StartResponse> {
        let ns = self.namespace.clone();
        let t = self.settled(&r.id)?;
        let mut resp = api::StartResponse::new();
        if t.init.state == State::Stopped {
            return Err(err(
                Code::FAILED_PRECONDITION,
                format!("container {} is not running", r.id),
            ));
        }
        let (root, id) = (t.root.clone(), t.id.clone());
        let p = t
            .execs
            .get_mut(&r.exec_id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("process {} not found", r.exec_id)))?;
        if p.state != State::Created {
            return Err(err(
                Code::FAILED_PRECONDITION,
                format!("process {} is already started", r.exec_id),
            ));
        }
        // Stdio first: if it cannot be prepared, the exec keeps its spec and
        // a later Start can try again.
        let prepared = stdio::prepare(&p.paths, &id, &ns, 0, 0).map_err(unknown)?;
        let spec = p
            .spec
            .take()
            .ok_or_else(|| err(Code::FAILED_PRECONDITION, "exec has no process spec"))?;
        let mut io = prepared.io;
        let child = prepared.child;
        let execed = container::exec(&container::ExecRequest {
            pty_to_caller: p.paths.terminal,
            stdio: child
                .as_ref()
                .map(|c| [c[0].as_raw_fd(), c[1].as_raw_fd(), c[2].as_raw_fd()]),
            ..container::ExecRequest::new(id.clone(), root, spec)
        });
        drop(child);
        let execed = match execed {
            Ok(x) => x,
            Err(e) => {
                p.state = State::Stopped;
                p.exit_status = 255;
                p.exited_at = Some(SystemTime::now());
                return Err(lc_err(e));
            }
        };
        p.pid = execed.pid;
        p.state = State::Running;
        if let Some(sock) = execed.console.as_ref() {
            match tty::recv_master(sock) {
                Ok(m) => io.attach_console(m).map_err(unknown)?,
                Err(e) => return Err(unknown(e)),
            }
        }
        p.io = Some(io);
        resp.pid = execed.pid as u32;
        let mut e = ev::TaskExecStarted::new();
        e.container_id = r.id.clone();
        e.exec_id = r.exec_id.clone();
        e.pid = resp.pid;
        self.publisher.publish(&e);
        Ok(resp)
    }

    fn exec(&mut self, r: api::ExecProcessRequest) -> Rpc<Empty> {
        let t = self.task_mut(&r.id)?;
        if t.init.state == State::Stopped {
            return Err(err(
                Code::FAILED_PRECONDITION,
                format!("container {} is not running", r.id),
            ));
        }
        if r.exec_id.is_empty() || t.execs.contains_key(&r.exec_id) {
            return Err(err(
                Code::ALREADY_EXISTS,
                format!("process {} already exists", r.exec_id),
            ));
        }
        let value = r
            .spec
            .as_ref()
            .map(|a| a.value.as_slice())
            .unwrap_or_default();
        // As `oxrun exec -p` reads one: the spec's scheduler flag names,
        // unknown capabilities dropped, a missing user as uid 0; what that
        // changed goes to the shim's stderr (containerd's log).
        let (spec, warnings) =
            libcontainer::spec::parse_process(value, std::path::Path::new("exec process spec"))
                .map_err(|e| err(Code::INVALID_ARGUMENT, e.to_string()))?;
        warnings
            .iter()
            .for_each(|w| eprintln!("containerd-shim-rust-v2: exec {}: {w}", r.exec_id));
        let mut p = Process::new(
            &r.exec_id,
            Paths {
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
                terminal: r.terminal,
            },
        );
        p.spec = Some(spec);
        t.execs.insert(r.exec_id.clone(), p);
        let mut e = ev::TaskExecAdded::new();
        e.container_id = r.id;
        e.exec_id = r.exec_id;
        self.publisher.publish(&e);
        Ok(Empty::new())
    }

    fn kill(&mut self, r: api::KillRequest) -> Rpc<Empty> {
        let t = self.task(&r.id)?;
        if r.exec_id.is_empty() && t.starting {
            // The start helper holds the container's lock: signal the init
            // directly (our child, not reaped yet, so the pid is its own;
            // before its start it is the container's only process).
            let sig = nix::sys::signal::Signal::try_from(r.signal as i32)
                .map_err(|e| err(Code::INVALID_ARGUMENT, e))?;
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(t.init.pid), sig).map_err(unknown)?;
            return Ok(Empty::new());
        }
        let t = self.settled(&r.id)?;
        if r.exec_id.is_empty() {
            if r.all {
                container::kill(&t.root, &t.id, r.signal as i32, true).map_err(lc_err)?;
                return Ok(Empty::new());
            }
            if t.init.state == State::Stopped {
                return Err(err(Code::NOT_FOUND, "process already finished"));
            }
            container::kill(&t.root, &t.id, r.signal as i32, false).map_err(lc_err)?;
            return Ok(Empty::new());
        }
        let p = t
            .process(&r.exec_id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("process {} not found", r.exec_id)))?;
        if p.state != State::Running {
            return Err(err(Code::NOT_FOUND, "process already finished"));
        }
        // Not reaped yet (we reap and mark in one step), so the pid is still its own.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p.pid),
            nix::sys::signal::Signal::try_from(r.signal as i32)
                .map_err(|e| err(Code::INVALID_ARGUMENT, e))?,
        )
        .map_err(unknown)?;
        Ok(Empty::new())
    }

    /// Delete a process or the task. The task's poststop hooks run in a
    /// child process; the reply (and the TaskDelete event) wait for it, as
    /// the spec wants hooks done before delete returns, while the loop goes
    /// on serving the other containers.
    fn delete(&mut self, r: api::DeleteRequest, waiter: Waiter) -> Rpc<Reply> {
        let mut resp = api::DeleteResponse::new();
        if !r.exec_id.is_empty() {
            let t = self.task_mut(&r.id)?;
            let p = t
                .execs
                .get(&r.exec_id)
                .ok_or_else(|| err(Code::NOT_FOUND, format!("process {} not found", r.exec_id)))?;
            if p.state == State::Running {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("process {} is running", r.exec_id),
                ));
            }
            let p = t
                .execs
                .remove(&r.exec_id)
                .ok_or_else(|| err(Code::NOT_FOUND, "gone"))?;
            resp.pid = p.pid.max(0) as u32;
            resp.exit_status = p.exit_status;
            resp.exited_at = ts(p.exited_at);
            self.answer_waiters(p);
            return Ok(Reply::Now(wire::encode(&resp).map_err(unknown)?));
        }
        let mut poststop = None;
        let t = self.task_mut(&r.id)?;
        match t.init.state {
            State::Running => {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("task {} is running", r.id),
                ));
            }
            State::Created if t.starting => {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("task {} is starting", r.id),
                ));
            }
            State::Created => {
                // Never started: kill the waiting init and report its exit
                // first. The delete waits (in libcontainer, up to 10 s) for
                // the SIGKILLed init to be gone, which is at once unless the
                // kernel holds it; then it is a zombie, reaped here without
                // waiting (or by the loop later, if it was not one yet).
                poststop = container::delete_deferring_hooks(&t.root, &t.id, true)
                    .map_err(lc_err)?
                    .1;
                let status = nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(t.init.pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                )
                .ok()
                .and_then(exit_code)
                .map(|(_, s)| s)
                .unwrap_or(137);
                t.init.set_exited(status);
                self.publish_exit(&r.id, "");
            }
            State::Stopped => {
                let t = self.task(&r.id)?;
                match container::delete_deferring_hooks(&t.root, &t.id, true) {
                    Ok((_, hooks)) => poststop = hooks,
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(lc_err(e)),
                }
            }
        }
        let mut t = self
            .tasks
            .remove(&r.id)
            .ok_or_else(|| err(Code::NOT_FOUND, "gone"))?;
        if t.mounted {
            mounts::unmount_rootfs(&t.bundle);
        }
        let _ = std::fs::remove_file(t.bundle.join(crate::ROOT_FILE));
        resp.pid = t.init.pid as u32;
        resp.exit_status = t.init.exit_status;
        resp.exited_at = ts(t.init.exited_at);
        let mut e = ev::TaskDelete::new();
        e.container_id = r.id.clone();
        e.pid = resp.pid;
        e.exit_status = resp.exit_status;
        e.exited_at = resp.exited_at.clone();
        for (_, p) in std::mem::take(&mut t.execs) {
            self.answer_waiters(p);
        }
        self.answer_waiters(t.init);
        if let Some(hooks) = poststop {
            let run = move |_: &std::os::fd::OwnedFd| {
                let _ = hooks.run();
                0
            };
            if let Ok(helper) = helper::spawn(&[], POSTSTOP_TIMEOUT, run) {
                self.pending.push(Pending {
                    helper,
                    waiter,
                    op: Op::Delete { resp, event: e },
                });
                return Ok(Reply::Later);
            }
        }
        self.publisher.publish(&e);
        Ok(Reply::Now(wire::encode(&resp).map_err(unknown)?))
    }

    /// Helpers among the reaped children: answer their parked calls.
    /// Returns the exits that were not helpers'.
    fn finish_helpers(&mut self, exits: Vec<(i32, u32)>) -> Vec<(i32, u32)> {
        let mut rest = Vec::new();
        for (pid, status) in exits {
            let Some(i) = self.pending.iter().position(|p| p.helper.pid == pid) else {
                rest.push((pid, status));
                continue;
            };
            let Pending { helper, waiter, op } = self.pending.swap_remove(i);
            match op {
                Op::Create(c) => self.finish_create(&helper, waiter, *c),
                Op::Start { id } => self.finish_start(&helper, waiter, &id),
                Op::Delete { resp, event } => {
                    self.publisher.publish(&event);
                    self.answer(waiter, wire::encode(&resp).map_err(unknown));
                }
            }
        }
        if self.shutdown_requested && self.tasks.is_empty() && self.pending.is_empty() {
            self.shutdown = true;
        }
        rest
    }

    fn answer_waiters(&mut self, mut p: Process) {
        for (conn, stream) in std::mem::take(&mut p.waiters) {
            if let Some(f) = wait_reply(stream, &p) {
                self.outbox.push((conn, f));
            }
        }
    }

    fn wait(&mut self, r: api::WaitRequest, waiter: Waiter) -> Rpc<Reply> {
        let t = self.task_mut(&r.id)?;
        let p = t
            .process_mut(&r.exec_id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("process {} not found", r.exec_id)))?;
        if p.state == State::Stopped {
            let mut w = api::WaitResponse::new();
            w.exit_status = p.exit_status;
            w.exited_at = ts(p.exited_at);
            return Ok(Reply::Now(wire::encode(&w).map_err(unknown)?));
        }
        p.waiters.push(waiter);
        Ok(Reply::Later)
    }

    fn pids(&mut self, r: api::PidsRequest) -> Rpc<api::PidsResponse> {
        let t = self.settled(&r.id)?;
        let pids = container::ps(&t.root, &t.id).map_err(lc_err)?;
        let mut resp = api::PidsResponse::new();
        for pid in pids {
            let mut info = api::ProcessInfo::new();
            info.pid = pid as u32;
            if let Some(p) = t.execs.values().find(|p| p.pid == pid) {
                let mut d = ProcessDetails::new();
                d.exec_id = p.exec_id.clone();
                info.info = Some(any(&d)).into();
            }
            resp.processes.push(info);
        }
        Ok(resp)
    }

    fn pause(&mut self, r: api::PauseRequest) -> Rpc<Empty> {
        let t = self.settled(&r.id)?;
        container::pause(&t.root, &t.id).map_err(lc_err)?;
        t.paused = true;
        let mut e = ev::TaskPaused::new();
        e.container_id = r.id;
        self.publisher.publish(&e);
        Ok(Empty::new())
    }

    fn resume(&mut self, r: api::ResumeRequest) -> Rpc<Empty> {
        let t = self.settled(&r.id)?;
        container::resume(&t.root, &t.id).map_err(lc_err)?;
        t.paused = false;
        let mut e = ev::TaskResumed::new();
        e.container_id = r.id;
        self.publisher.publish(&e);
        Ok(Empty::new())
    }

    fn resize_pty(&mut self, r: api::ResizePtyRequest) -> Rpc<Empty> {
        let t = self.task(&r.id)?;
        let p = t
            .process(&r.exec_id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("process {} not found", r.exec_id)))?;
        if let Some(io) = &p.io {
            io.resize(r.width, r.height).map_err(unknown)?;
        }
        Ok(Empty::new())
    }

    fn close_io(&mut self, r: api::CloseIORequest) -> Rpc<Empty> {
        let t = self.task_mut(&r.id)?;
        let p = t
            .process_mut(&r.exec_id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("process {} not found", r.exec_id)))?;
        if r.stdin {
            if let Some(io) = p.io.as_mut() {
                io.close_stdin();
                io.prune();
            }
        }
        Ok(Empty::new())
    }

    fn update(&mut self, r: api::UpdateTaskRequest) -> Rpc<Empty> {
        let t = self.settled(&r.id)?;
        let value = r
            .resources
            .as_ref()
            .map(|a| a.value.as_slice())
            .unwrap_or_default();
        let res: oci_spec::runtime::LinuxResources = serde_json::from_slice(value)
            .map_err(|e| err(Code::INVALID_ARGUMENT, format!("update resources: {e}")))?;
        container::update(&t.root, &t.id, &res).map_err(lc_err)?;
        Ok(Empty::new())
    }

    fn stats(&mut self, r: api::StatsRequest) -> Rpc<api::StatsResponse> {
        let t = self.settled(&r.id)?;
        let ev = container::stats(&t.root, &t.id).map_err(lc_err)?;
        let stats = ev.data.unwrap_or_default();
        let mut resp = api::StatsResponse::new();
        resp.stats = Some(crate::metrics::for_container(t.unified, &stats)).into();
        Ok(resp)
    }

    fn connect(&mut self, r: api::ConnectRequest) -> Rpc<api::ConnectResponse> {
        let mut resp = api::ConnectResponse::new();
        resp.shim_pid = std::process::id();
        if let Some(t) = self.tasks.get(&r.id) {
            resp.task_pid = t.init.pid as u32;
        }
        Ok(resp)
    }

    fn shutdown(&mut self, _r: api::ShutdownRequest) -> Rpc<Empty> {
        // A Delete still waiting for its hooks keeps the shim up until it
        // has answered (in a pod shim another container's Shutdown may come
        // first).
        if self.tasks.is_empty() {
            self.shutdown_requested = true;
            self.shutdown = self.pending.is_empty();
        }
        Ok(Empty::new())
    }

    /// Publish the exit of a process that has been marked stopped.
    fn publish_exit(&mut self, id: &str, exec_id: &str) {
        let Some(t) = self.tasks.get(id) else { return };
        let Some(p) = t.process(exec_id) else { return };
        let mut e = ev::TaskExit::new();
        e.container_id = id.to_string();
        e.id = if exec_id.is_empty() {
            id.to_string()
        } else {
            exec_id.to_string()
        };
        e.pid = p.pid.max(0) as u32;
        e.exit_status = p.exit_status;
        e.exited_at = ts(p.exited_at);
        self.publisher.publish(&e);
    }

    /// Processes reaped by the loop: helpers' first (a finished create
    /// makes its init known), then exec'd processes before inits.
    pub fn on_exits(&mut self, exits: Vec<(i32, u32)>) {
        let exits = self.finish_helpers(exits);
        // (task, exec id) of each reaped pid; exec'd processes first.
        let mut found: Vec<(String, String, u32)> = Vec::new();
        for (pid, status) in exits {
            for t in self.tasks.values() {
                if t.init.pid == pid && t.init.state != State::Stopped {
                    found.push((t.id.clone(), String::new(), status));
                } else if let Some(p) = t
                    .execs
                    .values()
                    .find(|p| p.pid == pid && p.state == State::Running)
                {
                    found.push((t.id.clone(), p.exec_id.clone(), status));
                }
            }
        }
        found.sort_by_key(|(_, exec, _)| exec.is_empty());
        for (id, exec_id, status) in found {
            if exec_id.is_empty() {
                self.init_exited(&id, status);
            } else {
                self.process_exited(&id, &exec_id, status);
            }
        }
    }

    /// An init exited. Its exit is reported now, unless its Start is still
    /// being answered (then after it: containerd wants start before exit),
    /// or the rest of its container must go first.
    ///
    /// An init that did not own its PID namespace (the host's, a pod's)
    /// leaves its container's other processes alive, holding the stdout
    /// and stderr pipes, so containerd's fifo readers would never see EOF
    /// (CRI closes them after the exit event: `Failed to pipe stdout of
    /// container ...: file already closed`) and the processes would outlive
    /// the task. As the Go shim (`ShouldKillAllOnExit`), they are killed
    /// and the init's exit is held until the cgroup is empty (or for at
    /// most `DRAIN_TIMEOUT`; the loop looks again every `DRAIN_RECHECK`
    /// meanwhile, see `tick`), so that their exits come first and the
    /// output drains to EOF. The loop serves everything else meanwhile.
    fn init_exited(&mut self, id: &str, status: u32) {
        let Some(t) = self.tasks.get_mut(id) else {
            return;
        };
        if t.starting {
            t.held_exit = Some(status);
            return;
        }
        if t.kill_all_on_exit && t.draining.is_none() {
            let _ = container::kill(&t.root, &t.id, libc::SIGKILL, true);
            if !drained(t) {
                t.draining = Some((status, Instant::now() + DRAIN_TIMEOUT));
                return;
            }
        }
        self.process_exited(id, "", status);
    }

    /// Mark a process exited, drain its output, report it (an OOM kill
    /// first), answer its parked Waits.
    fn process_exited(&mut self, id: &str, exec_id: &str, status: u32) {
        let Some(t) = self.tasks.get_mut(id) else {
            return;
        };
        // A kill the watcher has not woken us for yet (it raced the exit).
        let oom =
            exec_id.is_empty() && t.oom.as_mut().is_some_and(|w| w.unreported()) && t.ooms == 0;
        if oom {
            t.ooms += 1;
        }
        if exec_id.is_empty() {
            t.oom = None;
            t.draining = None;
        }
        let Some(p) = t.process_mut(exec_id) else {
            return;
        };
        p.set_exited(status);
        let waiters = std::mem::take(&mut p.waiters);
        let replies: Vec<(u64, Vec<u8>)> = waiters
            .into_iter()
            .filter_map(|(c, s)| wait_reply(s, p).map(|f| (c, f)))
            .collect();
        if oom {
            let mut e = ev::TaskOOM::new();
            e.container_id = id.to_string();
            self.publisher.publish(&e);
        }
        self.publish_exit(id, exec_id);
        self.outbox.extend(replies);
    }

    /// Timed work, run by the loop every time round: overdue helpers are
    /// killed, held init exits whose container has emptied (or whose time
    /// is up) are reported, and the publisher moves on. Never blocks.
    pub fn tick(&mut self) {
        let now = Instant::now();
        for p in &mut self.pending {
            p.helper.kill_if_overdue(now);
        }
        let done: Vec<(String, u32)> = self
            .tasks
            .values()
            .filter_map(|t| {
                let (status, until) = t.draining?;
                (now >= until || drained(t)).then(|| (t.id.clone(), status))
            })
            .collect();
        if !done.is_empty() {
            // The killed processes' exits (exec'd ones) are reported first.
            let exits = reap_children();
            if !exits.is_empty() {
                self.on_exits(exits);
            }
            for (id, status) in done {
                self.process_exited(&id, "", status);
            }
        }
        self.publisher.advance();
    }

    /// When the loop must call `tick` even if no fd is ready.
    pub fn deadline(&self) -> Option<Instant> {
        let helpers = self
            .pending
            .iter()
            .filter(|p| !p.helper.overdue)
            .map(|p| p.helper.deadline);
        let draining = self
            .tasks
            .values()
            .filter(|t| t.draining.is_some())
            .map(|_| Instant::now() + DRAIN_RECHECK);
        helpers
            .chain(draining)
            .chain(self.publisher.deadline())
            .min()
    }

    /// An OOM watcher fired.
    pub fn on_oom(&mut self, id: &str) {
        let Some(t) = self.tasks.get_mut(id) else {
            return;
        };
        let Some(w) = t.oom.as_mut() else { return };
        match w.read() {
            Some(0) => {}
            Some(_) => {
                t.ooms += 1;
                let mut e = ev::TaskOOM::new();
                e.container_id = id.to_string();
                self.publisher.publish(&e);
            }
            None => t.oom = None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Task `c1` with `init`, nothing running for it and nothing mounted.
    pub(crate) fn task(bundle: PathBuf, root: PathBuf, init: Process) -> Task {
        Task {
            id: "c1".into(),
            bundle,
            root,
            mounted: false,
            unified: false,
            paused: false,
            init,
            execs: BTreeMap::new(),
            oom: None,
            ooms: 0,
            kill_all_on_exit: false,
            starting: false,
            held_exit: None,
            draining: None,
            criu: "criu".into(),
            restored: false,
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("oxshim-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    }

    fn shim() -> Shim {
        Shim::new("oxtest".into(), "/nonexistent/containerd.sock".into())
    }

    /// A Create that fails leaves nothing in the bundle for a crash cleanup
    /// (`shim delete`) to act on.
    #[test]
    fn failed_create_removes_its_recovery_file() {
        let dir = scratch("create");
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(&bundle).expect("bundle");
        let mut s = shim();
        let mut r = api::CreateTaskRequest::new();
        r.id = "c1".into();
        r.bundle = bundle.display().to_string();
        // The helper fails; its exit answers the parked Create.
        assert!(matches!(s.create(r, (1, 3)), Ok(Reply::Later)));
        let pid = s.pending[0].helper.pid;
        let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        s.on_exits(exit_code(st).into_iter().collect());
        assert!(s.pending.is_empty() && s.tasks.is_empty());
        let mut frame = s.outbox.pop().expect("a reply").1;
        let m = wire::take_frame(&mut frame).unwrap().unwrap();
        let resp: ttrpc::proto::Response = wire::decode("r", &m.payload).unwrap();
        assert_ne!(
            resp.status.code.value(),
            0,
            "a bundle without config.json was created"
        );
        assert!(
            resp.status.message.contains("config.json"),
            "{}",
            resp.status.message
        );
        assert!(!bundle.join(crate::ROOT_FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An exec whose stdio cannot be prepared keeps its process spec, so
    /// Start can be tried again.
    #[test]
    fn failed_exec_start_keeps_the_spec() {
        let dir = scratch("exec");
        let mut s = shim();
        let paths = Paths {
            stdin: String::new(),
            stdout: dir.join("missing/dir/stdout").display().to_string(),
            stderr: String::new(),
            terminal: false,
        };
        let mut exec = Process::new("e1", paths.clone());
        exec.spec = Some(oci_spec::runtime::Process::default());
        let mut init = Process::new("", paths);
        init.state = State::Running;
        s.tasks.insert(
            "c1".into(),
            Task {
                execs: BTreeMap::from([("e1".to_string(), exec)]),
                ..task(dir.clone(), dir.join("root"), init)
            },
        );
        let mut r = api::StartRequest::new();
        r.id = "c1".into();
        r.exec_id = "e1".into();
        assert!(
            s.start(r, (1, 3)).is_err(),
            "stdio into a missing directory was prepared"
        );
        let t = s.tasks.get("c1").expect("task");
        assert!(
            t.execs["e1"].spec.is_some(),
            "the failed Start consumed the spec"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
