//! The shim's event loop: one thread, one poll(2) over the listening
//! socket, containerd's connections, a signalfd for SIGCHLD, the stdio
//! pumps, the OOM watchers and the connection to containerd's event
//! service. Single-threaded on purpose: container init
//! and exec are cloned from this process (libcontainer in-process), which
//! is only safe without other threads, and it keeps the idle shim small.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use ttrpc::proto::Request;

use crate::service::{Reply, Shim};
use crate::wire::{self, Code};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{op}: {errno}")]
    Sys {
        op: &'static str,
        errno: nix::errno::Errno,
    },
}

const SERVICE: &str = "containerd.task.v2.Task";

struct Conn {
    sock: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    closed: bool,
}

impl Conn {
    fn flush(&mut self) {
        while !self.outbuf.is_empty() {
            match self.sock.write(&self.outbuf) {
                Ok(0) => {
                    self.closed = true;
                    return;
                }
                Ok(n) => {
                    self.outbuf.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }
}

/// Who owns a polled fd, and so who reacts to it.
enum Token {
    /// The shim's socket: accept containerd's connections.
    Listener,
    /// SIGCHLD: reap; exits of containers' processes and of helpers.
    Signal,
    /// A connection from containerd: read requests, write replies.
    Conn(u64),
    /// A stdio pump of (task, exec id), by index.
    Pump(String, String, usize),
    /// A task's OOM watcher.
    Oom(String),
    /// The connection to containerd's event service.
    Publisher,
}

pub struct Server {
    listener: UnixListener,
    signals: SignalFd,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    pub shim: Shim,
}

impl Server {
    /// Block SIGCHLD into a signalfd; we are a subreaper, so every
    /// orphan of our containers comes to us to be reaped.
    pub fn new(listener: UnixListener, shim: Shim) -> Result<Server, ServerError> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).map_err(
            |errno| ServerError::Sys {
                op: "sigprocmask",
                errno,
            },
        )?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|errno| ServerError::Sys {
            op: "signalfd",
            errno,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| ServerError::Sys {
                op: "listener O_NONBLOCK",
                errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            })?;
        Ok(Server {
            listener,
            signals,
            conns: BTreeMap::new(),
            next_conn: 1,
            shim,
        })
    }

    /// Serve until Shutdown with no tasks left.
    ///
    /// Each source of readiness owns its fds and its reaction: the loop
    /// asks every source what it waits for (`interest`), polls, and hands
    /// each ready fd to the source that owns it (`Token`). Nothing a source
    /// does on readiness waits: containerd's connections and the event
    /// publisher are non-blocking sockets, stdio pumps non-blocking pipes,
    /// and work that can take long (create, start, hooks) runs in helper
    /// processes whose exits come in as SIGCHLD. Timed work (retries,
    /// deadlines) runs in `Shim::tick`, and the poll timeout is the nearest
    /// of its deadlines.
    pub fn run(&mut self) {
        loop {
            self.shim.tick();
            self.deliver();
            if self.shim.shutdown && self.conns.values().all(|c| c.outbuf.is_empty()) {
                return;
            }
            let (mut fds, tokens) = self.interest();
            let timeout = match self.shim.deadline() {
                Some(t) => PollTimeout::from(
                    t.saturating_duration_since(Instant::now())
                        .as_millis()
                        .min(1000) as u16,
                ),
                None => PollTimeout::NONE,
            };
            if !matches!(poll(&mut fds, timeout), Ok(n) if n > 0) {
                continue;
            }
            // Which fds had events (any revents bit, known to nix or not).
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_none_or(|r| !r.is_empty()))
                .collect();
            drop(fds);
            // OOM first, then output, then exits: an OOM kill is reported
            // before the exit it caused, and output before the exit.
            let mut order: Vec<usize> = (0..ready.len()).filter(|i| ready[*i]).collect();
            order.sort_by_key(|i| match tokens[*i] {
                Token::Oom(_) => 0,
                Token::Pump(..) => 1,
                Token::Signal => 2,
                Token::Listener => 3,
                Token::Conn(_) => 4,
                Token::Publisher => 5,
            });
            for i in order {
                match &tokens[i] {
                    Token::Oom(id) => self.shim.on_oom(id),
                    Token::Pump(id, exec, k) => self.pump(id, exec, *k),
                    Token::Signal => self.reap(),
                    Token::Listener => self.accept(),
                    Token::Conn(c) => self.read_conn(*c),
                    Token::Publisher => self.shim.publisher.ready(),
                }
            }
            self.conns.retain(|_, c| !c.closed);
            for t in self.shim.tasks.values_mut() {
                for p in std::iter::once(&mut t.init).chain(t.execs.values_mut()) {
                    if let Some(io) = p.io.as_mut() {
                        io.prune();
                    }
                }
            }
        }
    }

    fn interest(&self) -> (Vec<PollFd<'_>>, Vec<Token>) {
        let mut fds: Vec<PollFd<'_>> = Vec::new();
        let mut tokens = Vec::new();
        let mut add = |fd, events, t| {
            fds.push(PollFd::new(fd, events));
            tokens.push(t);
        };
        add(self.listener.as_fd(), PollFlags::POLLIN, Token::Listener);
        add(self.signals.as_fd(), PollFlags::POLLIN, Token::Signal);
        if let Some((fd, ev)) = self.shim.publisher.interest() {
            add(fd, ev, Token::Publisher);
        }
        for (id, c) in &self.conns {
            let ev = if c.outbuf.is_empty() {
                PollFlags::POLLIN
            } else {
                PollFlags::POLLIN | PollFlags::POLLOUT
            };
            add(c.sock.as_fd(), ev, Token::Conn(*id));
        }
        for t in self.shim.tasks.values() {
            if let Some(w) = &t.oom {
                add(w.fd(), PollFlags::POLLIN, Token::Oom(t.id.clone()));
            }
            let procs = std::iter::once(&t.init).chain(t.execs.values());
            for p in procs {
                let Some(io) = &p.io else { continue };
                for (k, pump) in io.pumps.iter().enumerate() {
                    if let Some((fd, ev)) = pump.interest() {
                        add(fd, ev, Token::Pump(t.id.clone(), p.exec_id.clone(), k));
                    }
                }
            }
        }
        (fds, tokens)
    }

    fn pump(&mut self, id: &str, exec: &str, k: usize) {
        let Some(t) = self.shim.tasks.get_mut(id) else {
            return;
        };
        let Some(p) = t.process_mut(exec) else { return };
        if let Some(io) = p.io.as_mut() {
            if let Some(pump) = io.pumps.get_mut(k) {
                pump.ready();
            }
        }
    }

    fn reap(&mut self) {
        while let Ok(Some(_)) = self.signals.read_signal() {}
        let exits = crate::task::reap_children();
        if !exits.is_empty() {
            self.shim.on_exits(exits);
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    if sock.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let id = self.next_conn;
                    self.next_conn += 1;
                    self.conns.insert(
                        id,
                        Conn {
                            sock,
                            inbuf: Vec::new(),
                            outbuf: Vec::new(),
                            closed: false,
                        },
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn read_conn(&mut self, cid: u64) {
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let mut buf = [0u8; 16384];
        loop {
            match c.sock.read(&mut buf) {
                Ok(0) => {
                    c.closed = true;
                    break;
                }
                Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    c.closed = true;
                    break;
                }
            }
        }
        let mut requests = Vec::new();
        loop {
            match wire::take_frame(&mut c.inbuf) {
                Ok(Some(f)) => requests.push(f),
                Ok(None) => break,
                Err(_) => {
                    c.closed = true;
                    break;
                }
            }
        }
        for m in requests {
            if !wire::is_request(&m) {
                continue;
            }
            let stream = m.header.stream_id;
            let result = match wire::decode::<Request>("ttrpc request", &m.payload) {
                Err(e) => Err((Code::INVALID_ARGUMENT, e.to_string())),
                Ok(req) if req.service != SERVICE => Err((
                    Code::UNIMPLEMENTED,
                    format!("service {} is not served here", req.service),
                )),
                Ok(req) => self.shim.dispatch(&req.method, &req.payload, cid, stream),
            };
            let frame = match result {
                Ok(Reply::Later) => continue,
                Ok(Reply::Now(p)) => wire::response(stream, Ok(p)),
                Err(e) => wire::response(stream, Err(e)),
            };
            if let (Ok(f), Some(c)) = (frame, self.conns.get_mut(&cid)) {
                c.outbuf.extend_from_slice(&f);
            }
        }
        if let Some(c) = self.conns.get_mut(&cid) {
            c.flush();
        }
    }

    /// Send parked replies and anything buffered.
    fn deliver(&mut self) {
        for (cid, frame) in std::mem::take(&mut self.shim.outbox) {
            if let Some(c) = self.conns.get_mut(&cid) {
                c.outbuf.extend_from_slice(&frame);
            }
        }
        for c in self.conns.values_mut() {
            c.flush();
        }
    }
}
