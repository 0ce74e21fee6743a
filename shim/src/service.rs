//! The `containerd.task.v2.Task` service: each call decoded, run against
//! the shim's tasks through libcontainer (in this process: no runtime
//! binary is exec'd), and answered with a gRPC status code containerd
//! understands. Events are queued here and sent by the loop after the
//! reply, so containerd always sees create -> start -> exit -> delete.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use containerd_shim_protos::api::{self, Empty};
use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::shim::oci::ProcessDetails;
use libcontainer::cgroups::oom::OomWatcher;
use libcontainer::container::{self, ContainerError};
use libcontainer::tty;

use crate::events::{any, timestamp, Publisher};
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
    /// Replies to parked Wait calls: (connection, frame).
    pub outbox: Vec<(u64, Vec<u8>)>,
    /// Deletes waiting for their poststop hooks to finish.
    pending_deletes: Vec<PendingDelete>,
    /// Shutdown was asked for while a Delete was still pending.
    shutdown_requested: bool,
}

/// A Delete whose reply waits for the poststop hook runner `hooks_pid`.
struct PendingDelete {
    hooks_pid: i32,
    waiter: Waiter,
    resp: api::DeleteResponse,
    event: ev::TaskDelete,
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

impl Shim {
    pub fn new(namespace: String, ttrpc_address: String) -> Shim {
        Shim {
            publisher: Publisher::new(ttrpc_address, namespace.clone()),
            namespace,
            tasks: BTreeMap::new(),
            shutdown: false,
            outbox: Vec::new(),
            pending_deletes: Vec::new(),
            shutdown_requested: false,
        }
    }

    fn task(&self, id: &str) -> Rpc<&Task> {
        self.tasks
            .get(id)
            .ok_or_else(|| err(Code::NOT_FOUND, format!("task {id} not found")))
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
            "Create" => call!(create),
            "Start" => call!(start),
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

    fn create(&mut self, r: api::CreateTaskRequest) -> Rpc<api::CreateTaskResponse> {
        if self.tasks.contains_key(&r.id) {
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
        let mounted = mounts::mount_rootfs(&bundle, &r.rootfs).map_err(unknown)?;
        let paths = Paths {
            stdin: r.stdin.clone(),
            stdout: r.stdout.clone(),
            stderr: r.stderr.clone(),
            terminal: r.terminal,
        };
        let result = (|| -> Rpc<(i32, stdio::Io, bool, Option<OomWatcher>, bool)> {
            let prepared = stdio::prepare(&paths, &r.id, &self.namespace, opts.io_uid, opts.io_gid)
                .map_err(unknown)?;
            let mut io = prepared.io;
            let child = prepared.child;
            if !r.checkpoint.is_empty() {
                return crate::checkpoint::restore(&r, &opts, &bundle, &root, io, child);
            }
            let created = container::create(&container::CreateOptions {
                pty_to_caller: r.terminal,
                pid_file: Some(bundle.join("init.pid")),
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
                stdio: child
                    .as_ref()
                    .map(|c| [c[0].as_raw_fd(), c[1].as_raw_fd(), c[2].as_raw_fd()]),
                ..container::CreateOptions::new(&r.id, &bundle, &root)
            })
            .map_err(lc_err)?;
            drop(child);
            let cleanup = |e: RpcError| {
                let _ = container::delete(&root, &r.id, true);
                e
            };
            if let Some(sock) = created.console.as_ref() {
                let master = tty::recv_master(sock).map_err(unknown).map_err(cleanup)?;
                io.attach_console(master)
                    .map_err(unknown)
                    .map_err(cleanup)?;
            }
            let oom = OomWatcher::new(&created.cgroups).ok().flatten();
            // As the Go shim's `ShouldKillAllOnExit`.
            let kill_all_on_exit = !created.own_pid_namespace;
            Ok((
                created.pid,
                io,
                created.cgroups.unified,
                oom,
                kill_all_on_exit,
            ))
        })();
        let (pid, io, unified, oom, kill_all_on_exit) = match result {
            Ok(v) => v,
            Err(e) => {
                if mounted {
                    mounts::unmount_rootfs(&bundle);
                }
                // Nothing is left for a crash cleanup to find.
                let _ = std::fs::remove_file(bundle.join(crate::ROOT_FILE));
                return Err(e);
            }
        };
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
                criu: crate::checkpoint::criu(&opts),
                restored: !r.checkpoint.is_empty(),
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
        Ok(resp)
    }

    fn start(&mut self, r: api::StartRequest) -> Rpc<api::StartResponse> {
        let ns = self.namespace.clone();
        let t = self.task_mut(&r.id)?;
        let mut resp = api::StartResponse::new();
        if r.exec_id.is_empty() {
            if t.init.state != State::Created {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("task {} is not in the created state", r.id),
                ));
            }
            if !t.restored {
                container::start(&t.root, &t.id).map_err(lc_err)?;
            }
            t.init.state = State::Running;
            resp.pid = t.init.pid as u32;
            let mut e = ev::TaskStart::new();
            e.container_id = r.id.clone();
            e.pid = resp.pid;
            self.publisher.publish(&e);
            return Ok(resp);
        }
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
        let spec: oci_spec::runtime::Process = serde_json::from_slice(value)
            .map_err(|e| err(Code::INVALID_ARGUMENT, format!("exec process spec: {e}")))?;
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
            State::Created => {
                // Never started: kill the waiting init and report its exit first.
                poststop = container::delete_deferring_hooks(&t.root, &t.id, true)
                    .map_err(lc_err)?
                    .1;
                let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(t.init.pid), None)
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
            if let Ok(pid) = hooks.spawn() {
                self.pending_deletes.push(PendingDelete {
                    hooks_pid: pid,
                    waiter,
                    resp,
                    event: e,
                });
                return Ok(Reply::Later);
            }
        }
        self.publisher.publish(&e);
        Ok(Reply::Now(wire::encode(&resp).map_err(unknown)?))
    }

    /// A poststop hook runner has exited: the parked Delete can answer.
    fn finish_delete(&mut self, hooks_pid: i32) -> bool {
        let Some(i) = self
            .pending_deletes
            .iter()
            .position(|d| d.hooks_pid == hooks_pid)
        else {
            return false;
        };
        let d = self.pending_deletes.swap_remove(i);
        if self.shutdown_requested && self.tasks.is_empty() && self.pending_deletes.is_empty() {
            self.shutdown = true;
        }
        self.publisher.publish(&d.event);
        let (conn, stream) = d.waiter;
        let frame = wire::encode(&d.resp).and_then(|p| wire::response(stream, Ok(p)));
        if let Ok(f) = frame {
            self.outbox.push((conn, f));
        }
        true
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
        let t = self.task(&r.id)?;
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
        let t = self.task_mut(&r.id)?;
        container::pause(&t.root, &t.id).map_err(lc_err)?;
        t.paused = true;
        let mut e = ev::TaskPaused::new();
        e.container_id = r.id;
        self.publisher.publish(&e);
        Ok(Empty::new())
    }

    fn resume(&mut self, r: api::ResumeRequest) -> Rpc<Empty> {
        let t = self.task_mut(&r.id)?;
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
        let t = self.task(&r.id)?;
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
        let t = self.task(&r.id)?;
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
            self.shutdown = self.pending_deletes.is_empty();
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

    /// Processes reaped by the loop: mark, drain output, report (execs
    /// before inits, OOM before exit), answer parked Waits.
    pub fn on_exits(&mut self, mut exits: Vec<(i32, u32)>) {
        self.kill_rest_of_containers(&mut exits);
        exits.retain(|(pid, _)| !self.finish_delete(*pid));
        // (task, exec id) of each reaped pid; exec'd processes first.
        let mut found: Vec<(String, String, u32)> = Vec::new();
        for (pid, status) in exits.drain(..) {
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
            let Some(t) = self.tasks.get_mut(&id) else {
                continue;
            };
            // A kill the watcher has not woken us for yet (it raced the exit).
            let oom =
                exec_id.is_empty() && t.oom.as_mut().is_some_and(|w| w.unreported()) && t.ooms == 0;
            if oom {
                t.ooms += 1;
            }
            if exec_id.is_empty() {
                t.oom = None;
            }
            let Some(p) = t.process_mut(&exec_id) else {
                continue;
            };
            p.set_exited(status);
            let waiters = std::mem::take(&mut p.waiters);
            let replies: Vec<(u64, Vec<u8>)> = waiters
                .into_iter()
                .filter_map(|(c, s)| wait_reply(s, p).map(|f| (c, f)))
                .collect();
            if oom {
                let mut e = ev::TaskOOM::new();
                e.container_id = id.clone();
                self.publisher.publish(&e);
            }
            self.publish_exit(&id, &exec_id);
            self.outbox.extend(replies);
        }
    }

    /// An init that did not own its PID namespace (the host's, a pod's)
    /// exited: its container's other processes live on, holding the stdout
    /// and stderr pipes, so containerd's fifo readers would never see EOF
    /// (CRI closes them after the exit event: `Failed to pipe stdout of
    /// container ...: file already closed`) and the processes would outlive
    /// the task. As the Go shim (`ShouldKillAllOnExit`), kill them before
    /// the exit is reported; wait (up to a second) for the cgroup to empty
    /// and add the exits this caused (exec'd processes), so that they are
    /// reported first and the output drains to EOF.
    fn kill_rest_of_containers(&mut self, exits: &mut Vec<(i32, u32)>) {
        let mut killed = Vec::new();
        for t in self.tasks.values() {
            let exited = exits.iter().any(|(pid, _)| *pid == t.init.pid);
            if exited && t.init.state != State::Stopped && t.kill_all_on_exit {
                let _ = container::kill(&t.root, &t.id, libc::SIGKILL, true);
                killed.push((t.root.clone(), t.id.clone()));
            }
        }
        if killed.is_empty() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline
            && killed
                .iter()
                .any(|(root, id)| container::ps(root, id).is_ok_and(|p| !p.is_empty()))
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        exits.extend(reap_children());
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
mod tests {
    use super::*;

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
        assert!(
            s.create(r).is_err(),
            "a bundle without config.json was created"
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
                id: "c1".into(),
                bundle: dir.clone(),
                root: dir.join("root"),
                mounted: false,
                unified: false,
                paused: false,
                init,
                execs: BTreeMap::from([("e1".to_string(), exec)]),
                oom: None,
                ooms: 0,
                kill_all_on_exit: false,
                criu: "criu".into(),
                restored: false,
            },
        );
        let mut r = api::StartRequest::new();
        r.id = "c1".into();
        r.exec_id = "e1".into();
        assert!(
            s.start(r).is_err(),
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
