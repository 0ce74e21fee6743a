//! Task events to containerd: `Events/Forward` on TTRPC_ADDRESS, in the
//! order they were raised, sent by the event loop without ever blocking
//! it (see [`Publisher`]).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant, SystemTime};

use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use nix::poll::PollFlags;

use crate::wire;

const SERVICE: &str = "containerd.services.events.ttrpc.v1.Events";
/// Beyond this, the oldest events are dropped (containerd gone for good).
const MAX_QUEUED: usize = 4096;
/// First retry after a failed connect or send; doubles up to `RETRY_MAX`.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// A Forward with no reply for this long: the connection is given up and
/// the event sent again on a new one. Long on purpose: a containerd that is
/// stopped (SIGSTOP, a slow node) answers once it runs again, on the same
/// connection, and a resend could only duplicate the event; a containerd
/// that died closes the connection, which is noticed at once.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// containerd refused an event this many times (an error status, not a
/// transport failure): it is dropped, so one bad event cannot hold up the
/// rest forever (the Go shim gives up after 5 tries too).
const MAX_REFUSALS: u32 = 5;

/// The connection to containerd's ttrpc event service.
struct Link {
    sock: UnixStream,
    /// Bytes of the request in flight not yet written.
    out: Vec<u8>,
    /// Bytes of the reply read so far.
    inbuf: Vec<u8>,
    /// Stream id of the Forward in flight and when it was sent.
    in_flight: Option<(u32, Instant)>,
    next_stream: u32,
}

/// Task events for containerd, sent by the event loop without ever
/// blocking it: a non-blocking connect, the request written and the reply
/// read as poll(2) reports the socket ready. One Forward is in flight at a
/// time (containerd's ttrpc server handles the requests of one connection
/// concurrently, so pipelining could reorder them): the next event goes
/// out once containerd has answered the previous one, so events arrive in
/// the order they were raised. While containerd is away, events queue (at
/// most `MAX_QUEUED`) and the connection is retried with backoff.
pub struct Publisher {
    address: String,
    namespace: String,
    link: Option<Link>,
    queue: VecDeque<Envelope>,
    /// No connection before this (backoff after a failure).
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Error replies containerd gave to the event at the front.
    refusals: u32,
    pub last_error: Option<String>,
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    ts
}

/// A message with containerd's type URL for it (its proto full name).
/// Spelled out rather than read from the reflection descriptors: those
/// cost heap in every idle shim and code in the binary.
pub trait TypeUrl: Message {
    const TYPE_URL: &'static str;
}

/// An `Any` holding `m`.
pub fn any<M: TypeUrl>(m: &M) -> Any {
    let mut a = Any::new();
    a.type_url = M::TYPE_URL.to_string();
    a.value = m.write_to_bytes().unwrap_or_default();
    a
}

macro_rules! type_urls {
    ($($t:ty => $s:expr),* $(,)?) => { $(impl TypeUrl for $t { const TYPE_URL: &'static str = $s; })* };
}

type_urls! {
    ev::TaskCreate => "containerd.events.TaskCreate",
    ev::TaskStart => "containerd.events.TaskStart",
    ev::TaskExit => "containerd.events.TaskExit",
    ev::TaskDelete => "containerd.events.TaskDelete",
    ev::TaskExecAdded => "containerd.events.TaskExecAdded",
    ev::TaskExecStarted => "containerd.events.TaskExecStarted",
    ev::TaskPaused => "containerd.events.TaskPaused",
    ev::TaskResumed => "containerd.events.TaskResumed",
    ev::TaskOOM => "containerd.events.TaskOOM",
    containerd_shim_protos::shim::oci::ProcessDetails => "containerd.runc.v1.ProcessDetails",
    containerd_shim_protos::cgroups::metrics::Metrics => "io.containerd.cgroups.v1.Metrics",
    containerd_shim_protos::cgroups_v2::metrics::Metrics => "io.containerd.cgroups.v2.Metrics",
}

/// The topic of each event message.
pub trait Topic: TypeUrl {
    const TOPIC: &'static str;
}

macro_rules! topics {
    ($($t:ty => $s:expr),* $(,)?) => { $(impl Topic for $t { const TOPIC: &'static str = $s; })* };
}

topics! {
    ev::TaskCreate => "/tasks/create",
    ev::TaskStart => "/tasks/start",
    ev::TaskExit => "/tasks/exit",
    ev::TaskDelete => "/tasks/delete",
    ev::TaskExecAdded => "/tasks/exec-added",
    ev::TaskExecStarted => "/tasks/exec-started",
    ev::TaskPaused => "/tasks/paused",
    ev::TaskResumed => "/tasks/resumed",
    ev::TaskOOM => "/tasks/oom",
}

/// What one round of reading and writing on the link gave.
enum Outcome {
    /// Nothing answered yet.
    Pending,
    /// containerd took the event in flight.
    Answered,
    /// containerd answered the event in flight with an error.
    Refused(String),
    /// The connection failed or closed.
    Broken(String),
}

/// A non-blocking connection to containerd's ttrpc socket. For a unix
/// socket connect(2) completes at once or fails (EAGAIN: the listener's
/// backlog is full, as when containerd is stopped): never in progress.
fn connect(path: &str) -> Result<UnixStream, String> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fail = |e: nix::errno::Errno| format!("connect {path}: {e}");
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(fail)?;
    let addr = UnixAddr::new(path).map_err(fail)?;
    nix::sys::socket::connect(fd.as_raw_fd(), &addr).map_err(fail)?;
    Ok(UnixStream::from(fd))
}

impl Link {
    fn new(sock: UnixStream) -> Link {
        Link {
            sock,
            out: Vec::new(),
            inbuf: Vec::new(),
            in_flight: None,
            next_stream: 1,
        }
    }

    fn send(&mut self, env: &Envelope) -> Result<(), wire::WireError> {
        let mut req = ForwardRequest::new();
        req.envelope = Some(env.clone()).into();
        let stream = self.next_stream;
        let frame = wire::request(
            stream,
            SERVICE,
            "Forward",
            wire::encode(&req)?,
            REPLY_TIMEOUT,
        )?;
        self.next_stream = self.next_stream.wrapping_add(2);
        self.out.extend_from_slice(&frame);
        self.in_flight = Some((stream, Instant::now()));
        Ok(())
    }

    /// Write what is pending and read what has arrived, without blocking.
    fn step(&mut self) -> Outcome {
        while !self.out.is_empty() {
            match self.sock.write(&self.out) {
                Ok(0) => return Outcome::Broken("containerd closed the connection".into()),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Outcome::Broken(format!("send event: {e}")),
            }
        }
        // A reply read before the end of the stream still counts: only
        // then is the connection reported broken.
        let mut buf = [0u8; 4096];
        let mut broken = None;
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => {
                    broken = Some("containerd closed the connection".to_string());
                    break;
                }
                Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    broken = Some(format!("read event reply: {e}"));
                    break;
                }
            }
        }
        loop {
            let m = match wire::take_frame(&mut self.inbuf) {
                Ok(Some(m)) => m,
                Ok(None) => return broken.map_or(Outcome::Pending, Outcome::Broken),
                Err(e) => return Outcome::Broken(e.to_string()),
            };
            let Some((stream, _)) = self.in_flight else {
                continue;
            };
            match wire::reply_to(stream, &m, SERVICE, "Forward") {
                None => continue,
                Some(Ok(_)) => {
                    self.in_flight = None;
                    return Outcome::Answered;
                }
                Some(Err(e)) => {
                    self.in_flight = None;
                    return Outcome::Refused(e.to_string());
                }
            }
        }
    }
}

impl Publisher {
    pub fn new(address: String, namespace: String) -> Publisher {
        Publisher {
            address,
            namespace,
            link: None,
            queue: VecDeque::new(),
            retry_at: None,
            backoff: RETRY_MIN,
            refusals: 0,
            last_error: None,
        }
    }

    /// Queue an event; the loop sends it after the ones before it.
    pub fn publish<E: Topic>(&mut self, e: &E) {
        let mut env = Envelope::new();
        env.timestamp = Some(timestamp(SystemTime::now())).into();
        env.namespace = self.namespace.clone();
        env.topic = E::TOPIC.to_string();
        env.event = Some(any(e)).into();
        if self.queue.len() >= MAX_QUEUED {
            // The oldest not in flight: a reply always matches the front.
            let in_flight = self.link.as_ref().is_some_and(|l| l.in_flight.is_some());
            self.queue.remove(usize::from(in_flight));
        }
        self.queue.push_back(env);
    }

    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// The readiness source: the connection, while there is one (POLLIN
    /// also notices containerd closing an idle connection).
    pub fn interest(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        let l = self.link.as_ref()?;
        let mut ev = PollFlags::POLLIN;
        if !l.out.is_empty() {
            ev |= PollFlags::POLLOUT;
        }
        Some((l.sock.as_fd(), ev))
    }

    /// When the loop must call [`advance`](Self::advance) even if nothing
    /// is ready: a retry is due, or the reply in flight is overdue.
    pub fn deadline(&self) -> Option<Instant> {
        if self.address.is_empty() || self.queue.is_empty() {
            return None;
        }
        if let Some((_, sent)) = self.link.as_ref().and_then(|l| l.in_flight) {
            return Some(sent + REPLY_TIMEOUT);
        }
        Some(self.retry_at.unwrap_or_else(Instant::now))
    }

    /// The connection is ready: take the reply, send the next event.
    pub fn ready(&mut self) {
        if let Some(l) = self.link.as_mut() {
            let o = l.step();
            self.settle(o);
        }
        self.advance();
    }

    /// Connect when a retry is due, send the next event when none is in
    /// flight, give up a connection whose reply is overdue. Never blocks.
    pub fn advance(&mut self) {
        if self.address.is_empty() {
            self.queue.clear();
            return;
        }
        while !self.queue.is_empty() {
            let now = Instant::now();
            if self.retry_at.is_some_and(|t| now < t) {
                return;
            }
            if self.link.is_none() {
                match connect(&self.address) {
                    Ok(sock) => self.link = Some(Link::new(sock)),
                    Err(e) => {
                        self.settle(Outcome::Broken(e));
                        return;
                    }
                }
            }
            let Some(l) = self.link.as_mut() else { return };
            match l.in_flight {
                Some((_, sent)) if now.duration_since(sent) >= REPLY_TIMEOUT => {
                    let msg = format!("no reply to an event within {REPLY_TIMEOUT:?}");
                    self.settle(Outcome::Broken(msg));
                    return;
                }
                Some(_) => return,
                None => {
                    if let Err(e) = l.send(&self.queue[0]) {
                        // Cannot be encoded: no retry will help.
                        self.last_error = Some(e.to_string());
                        self.queue.pop_front();
                        continue;
                    }
                }
            }
            let o = l.step();
            if !self.settle(o) {
                return;
            }
        }
    }

    /// Act on an outcome; true if the queue moved on.
    fn settle(&mut self, o: Outcome) -> bool {
        let backoff = |p: &mut Publisher| {
            p.retry_at = Some(Instant::now() + p.backoff);
            p.backoff = (p.backoff * 2).min(RETRY_MAX);
        };
        match o {
            Outcome::Pending => false,
            Outcome::Answered => {
                self.queue.pop_front();
                self.refusals = 0;
                self.backoff = RETRY_MIN;
                self.retry_at = None;
                true
            }
            Outcome::Refused(msg) => {
                self.last_error = Some(msg);
                self.refusals += 1;
                if self.refusals >= MAX_REFUSALS {
                    self.queue.pop_front();
                    self.refusals = 0;
                } else {
                    backoff(self);
                }
                true
            }
            Outcome::Broken(msg) => {
                self.last_error = Some(msg);
                self.link = None;
                if !self.queue.is_empty() {
                    backoff(self);
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spelled-out URLs are the proto full names containerd registers.
    #[test]
    fn type_urls_are_proto_names() {
        use containerd_shim_protos::protobuf::MessageFull;
        fn check<M: TypeUrl + MessageFull>() {
            assert_eq!(M::TYPE_URL, M::descriptor().full_name());
        }
        check::<ev::TaskCreate>();
        check::<ev::TaskStart>();
        check::<ev::TaskExit>();
        check::<ev::TaskDelete>();
        check::<ev::TaskExecAdded>();
        check::<ev::TaskExecStarted>();
        check::<ev::TaskPaused>();
        check::<ev::TaskResumed>();
        check::<ev::TaskOOM>();
        check::<containerd_shim_protos::shim::oci::ProcessDetails>();
        check::<containerd_shim_protos::cgroups::metrics::Metrics>();
        check::<containerd_shim_protos::cgroups_v2::metrics::Metrics>();
        assert_eq!(ev::TaskOOM::TOPIC, "/tasks/oom");
    }

    #[test]
    fn queue_keeps_order_while_containerd_is_away() {
        let mut p = Publisher::new("/nonexistent/ttrpc.sock".into(), "ns".into());
        let mut c = ev::TaskCreate::new();
        c.container_id = "a".into();
        p.publish(&c);
        p.publish(&ev::TaskStart::new());
        p.advance();
        assert_eq!(p.pending(), 2);
        assert!(p.last_error.is_some());
        assert!(p.deadline().is_some(), "no retry planned");
        assert_eq!(p.queue[0].topic, "/tasks/create");
        assert_eq!(p.queue[1].topic, "/tasks/start");
    }

    /// A stand-in for containerd's event service: answers each Forward
    /// (after `delay`, or with an error status for the first `refuse`),
    /// recording the topics in the order they arrived.
    fn fake_containerd(
        path: std::path::PathBuf,
        delay: Duration,
        refuse: usize,
        want: usize,
    ) -> std::thread::JoinHandle<Vec<String>> {
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = Vec::new();
            let mut refused = 0;
            while got.len() < want {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "the shim closed the connection");
                buf.extend_from_slice(&chunk[..n]);
                while let Some(m) = wire::take_frame(&mut buf).unwrap() {
                    let req: ttrpc::proto::Request = wire::decode("req", &m.payload).unwrap();
                    assert_eq!(
                        (req.service.as_str(), req.method.as_str()),
                        (SERVICE, "Forward")
                    );
                    let f: ForwardRequest = wire::decode("fwd", &req.payload).unwrap();
                    std::thread::sleep(delay);
                    let reply = if refused < refuse {
                        refused += 1;
                        Err((wire::Code::UNAVAILABLE, "not now".to_string()))
                    } else {
                        got.push(f.envelope.topic.clone());
                        Ok(Vec::new())
                    };
                    s.write_all(&wire::response(m.header.stream_id, reply).unwrap())
                        .unwrap();
                }
            }
            got
        })
    }

    /// What the event loop does for the publisher, until nothing is queued.
    fn drive(p: &mut Publisher, limit: Duration) {
        let end = Instant::now() + limit;
        p.advance();
        while p.pending() > 0 {
            assert!(
                Instant::now() < end,
                "events still queued: {:?}",
                p.last_error
            );
            let wait = p
                .deadline()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(50))
                .min(Duration::from_millis(50));
            let ready = match p.interest() {
                Some((fd, ev)) => {
                    let mut fds = [nix::poll::PollFd::new(fd, ev)];
                    let t = nix::poll::PollTimeout::try_from(wait).unwrap();
                    matches!(nix::poll::poll(&mut fds, t), Ok(n) if n > 0)
                }
                None => {
                    std::thread::sleep(wait);
                    false
                }
            };
            if ready {
                p.ready();
            } else {
                p.advance();
            }
        }
    }

    /// A socket path, removed when the test ends (even by a panic).
    struct SockPath(std::path::PathBuf);

    impl Drop for SockPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn scratch_sock(tag: &str) -> SockPath {
        let p = std::env::temp_dir().join(format!("oxev-{tag}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        SockPath(p)
    }

    /// Events raised while containerd is away reach it, in order, once it
    /// listens; publishing never waits for it (each call returns at once).
    #[test]
    fn events_queued_while_away_arrive_in_order() {
        let sock = scratch_sock("order");
        let path = sock.0.clone();
        let mut p = Publisher::new(path.display().to_string(), "ns".into());
        let t0 = Instant::now();
        p.publish(&ev::TaskCreate::new());
        p.publish(&ev::TaskStart::new());
        p.advance();
        p.publish(&ev::TaskExit::new());
        p.publish(&ev::TaskDelete::new());
        p.advance();
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert_eq!(p.pending(), 4);
        let server = fake_containerd(path.clone(), Duration::from_millis(5), 0, 4);
        drive(&mut p, Duration::from_secs(20));
        let got = server.join().unwrap();
        assert_eq!(
            got,
            [
                "/tasks/create",
                "/tasks/start",
                "/tasks/exit",
                "/tasks/delete"
            ]
        );
    }

    /// A slow containerd delays nothing but the events: advance() returns
    /// while a reply is outstanding.
    #[test]
    fn a_slow_reply_does_not_block() {
        let sock = scratch_sock("slow");
        let path = sock.0.clone();
        let server = fake_containerd(path.clone(), Duration::from_secs(3), 0, 1);
        let mut p = Publisher::new(path.display().to_string(), "ns".into());
        p.publish(&ev::TaskExit::new());
        let t0 = Instant::now();
        p.advance();
        assert!(t0.elapsed() < Duration::from_secs(2), "advance waited");
        assert_eq!(p.pending(), 1);
        drive(&mut p, Duration::from_secs(20));
        assert_eq!(server.join().unwrap(), ["/tasks/exit"]);
    }

    /// An event containerd refuses is retried, and the next ones wait.
    #[test]
    fn a_refused_event_is_retried_in_place() {
        let sock = scratch_sock("refuse");
        let path = sock.0.clone();
        let server = fake_containerd(path.clone(), Duration::ZERO, 2, 2);
        let mut p = Publisher::new(path.display().to_string(), "ns".into());
        p.publish(&ev::TaskExit::new());
        p.publish(&ev::TaskDelete::new());
        drive(&mut p, Duration::from_secs(20));
        assert_eq!(server.join().unwrap(), ["/tasks/exit", "/tasks/delete"]);
    }
}
