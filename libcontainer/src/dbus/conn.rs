//! A blocking, single-threaded D-Bus connection over a unix socket: SASL
//! `EXTERNAL` authentication, `Hello` on a bus, method calls with a bounded
//! wait for the reply, and a bounded queue of the signals that arrive
//! meanwhile. No thread is started; every read and write polls with the
//! time left before a deadline.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

use super::wire::{Arg, Message, ERROR, METHOD_RETURN, SIGNAL};
use super::DbusError;

/// systemd's own socket: peer-to-peer, no bus daemon, root only.
pub const SYSTEMD_PRIVATE: &str = "unix:path=/run/systemd/private";
/// The system bus when `DBUS_SYSTEM_BUS_ADDRESS` is not set.
pub const SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";
/// Default bound on one method call (sd-bus uses 25 s too).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(25);
/// Signals kept while waiting for a reply; older ones are dropped.
const MAX_QUEUED_SIGNALS: usize = 256;

const BUS: &str = "org.freedesktop.DBus";

const BUS_PATH: &str = "/org/freedesktop/DBus";

/// A point in time to give up at, and the bound it came from (for errors).
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    pub fn after(limit: Duration) -> Self {
        Deadline {
            at: Instant::now() + limit,
            limit,
        }
    }
}

pub struct Connection {
    fd: OwnedFd,
    address: String,
    unique_name: Option<String>,
    serial: u32,
    rbuf: Vec<u8>,
    signals: VecDeque<Message>,
    keep_signal: fn(&Message) -> bool,
    timeout: Duration,
}

impl Connection {
    /// The system instance of systemd: the system bus
    /// (`DBUS_SYSTEM_BUS_ADDRESS`, default /run/dbus/system_bus_socket),
    /// or as root, failing that, systemd's private socket (runc's order,
    /// through go-systemd; see `authenticate` for the private socket's
    /// pitfall).
    pub fn system() -> Result<Self, DbusError> {
        let bus_address =
            std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| SYSTEM_BUS.into());
        let bus = match Connection::open(&bus_address, true) {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        if !nix::unistd::geteuid().is_root() {
            return Err(bus);
        }
        Connection::open(SYSTEMD_PRIVATE, false).map_err(|private| DbusError::NoSystemd {
            private: Box::new(private),
            bus: Box::new(bus),
        })
    }

    /// The calling user's own systemd instance (rootless): its bus
    /// (`DBUS_SESSION_BUS_ADDRESS`, else $XDG_RUNTIME_DIR/bus) or, failing
    /// that, its private socket ($XDG_RUNTIME_DIR/systemd/private), as
    /// runc's rootless systemd driver finds it.
    pub fn user() -> Result<Self, DbusError> {
        let xdg = std::env::var("XDG_RUNTIME_DIR").unwrap_or_default();
        let bus_address = std::env::var("DBUS_SESSION_BUS_ADDRESS")
            .ok()
            .filter(|a| !a.is_empty())
            .or_else(|| (!xdg.is_empty()).then(|| format!("unix:path={xdg}/bus")));
        let Some(bus_address) = bus_address else {
            return Err(DbusError::Address {
                address: String::new(),
                reason: "neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set: the user's systemd cannot be found".into(),
            });
        };
        let bus = match Connection::open(&bus_address, true) {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        if xdg.is_empty() {
            return Err(bus);
        }
        Connection::open(&format!("unix:path={xdg}/systemd/private"), false).map_err(|private| {
            DbusError::NoUserSystemd {
                private: Box::new(private),
                bus: Box::new(bus),
            }
        })
    }

    /// Connect to `address` (D-Bus address syntax; `unix:path=` and
    /// `unix:abstract=` entries, tried in order) and authenticate; `hello`
    /// for a bus daemon, not for a peer such as systemd's private socket.
    pub fn open(address: &str, hello: bool) -> Result<Self, DbusError> {
        let mut last = None;
        for entry in address.split(';').filter(|e| !e.is_empty()) {
            let Some(sockaddr) = unix_sockaddr(entry)? else {
                continue;
            };
            match Connection::open_one(entry, &sockaddr, hello) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| DbusError::Address {
            address: address.into(),
            reason: "no unix:path= or unix:abstract= entry".into(),
        }))
    }

    fn open_one(address: &str, sockaddr: &UnixAddr, hello: bool) -> Result<Self, DbusError> {
        let connect_err = |source| DbusError::Connect {
            address: address.into(),
            source,
        };
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(connect_err)?;
        let deadline = Deadline::after(DEFAULT_TIMEOUT);
        loop {
            match socket::connect(fd.as_raw_fd(), sockaddr) {
                Ok(()) => break,
                Err(Errno::EINTR) => continue,
                // A full listen backlog: a non-blocking unix connect cannot
                // be polled for, so retry briefly until the deadline.
                Err(Errno::EAGAIN) if Instant::now() < deadline.at => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => return Err(connect_err(e)),
            }
        }
        let mut c = Connection {
            fd,
            address: address.into(),
            unique_name: None,
            serial: 0,
            rbuf: Vec::new(),
            signals: VecDeque::new(),
            keep_signal: |_| true,
            timeout: DEFAULT_TIMEOUT,
        };
        c.authenticate(hello)?;
        Ok(c)
    }

    /// SASL EXTERNAL with our uid; `BEGIN` and `Hello` go out together.
    /// Without `Hello` (systemd's private socket, an sd-bus peer) `BEGIN`
    /// goes out with `AUTH`, as sd-bus's own clients send it: systemd then
    /// runs before our first call arrives, so that call never shares a
    /// read with `BEGIN` (which systemd 252 leaves unread, see
    /// [`Connection::system`]). In the systemd guest (scripts/systemd-vm),
    /// private-socket calls after a lone `BEGIN`: 3 of 30 (13 of 30 with
    /// systemd's debug logging) stalled for 25 s; with this, 0 of 60.
    fn authenticate(&mut self, hello: bool) -> Result<(), DbusError> {
        let deadline = Deadline::after(self.timeout);
        // The id the server sees for us (SO_PEERCRED): the host's, also
        // from inside rootless podman's user namespace.
        let uid = crate::user::host_uid(nix::unistd::getuid().as_raw()).to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        let begin = if hello { "" } else { "BEGIN\r\n" };
        self.write_all(
            format!("\0AUTH EXTERNAL {hex}\r\n{begin}").as_bytes(),
            deadline,
            "AUTH",
        )?;
        let line = self.read_line(deadline)?;
        if !line.starts_with("OK ") {
            return Err(DbusError::Auth {
                address: self.address.clone(),
                reason: format!(
                    "server answered {:?}",
                    line.chars().take(200).collect::<String>()
                ),
            });
        }
        if !hello {
            return Ok(());
        }
        let mut out = b"BEGIN\r\n".to_vec();
        let call = Message::method_call(Some(BUS), BUS_PATH, BUS, "Hello");
        let serial = self.next_serial();
        out.extend(
            call.encode(serial)
                .map_err(|what| protocol("Hello", what))?,
        );
        self.write_all(&out, deadline, "Hello")?;
        let reply = self.wait_reply(serial, "org.freedesktop.DBus.Hello", deadline)?;
        self.unique_name = reply_string(&reply, "org.freedesktop.DBus.Hello").map(Some)?;
        Ok(())
    }

    fn read_line(&mut self, deadline: Deadline) -> Result<String, DbusError> {
        loop {
            if let Some(end) = self.rbuf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.rbuf[..end]).into_owned();
                self.rbuf.drain(..end + 2);
                return Ok(line);
            }
            if self.rbuf.len() > 4096 {
                return Err(DbusError::Auth {
                    address: self.address.clone(),
                    reason: "authentication line longer than 4096 bytes".into(),
                });
            }
            self.fill(deadline, "AUTH")?;
        }
    }

    /// The bound on each later call (default 25 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Which signals to keep for [`Connection::wait_signal`] (default: all).
    pub fn set_signal_filter(&mut self, keep: fn(&Message) -> bool) {
        self.keep_signal = keep;
        self.signals.retain(keep);
    }

    /// Our unique bus name (`None` on a peer-to-peer connection).
    pub fn unique_name(&self) -> Option<&str> {
        self.unique_name.as_deref()
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether this connection goes through a bus daemon (calls then need
    /// a destination).
    pub fn is_bus(&self) -> bool {
        self.unique_name.is_some()
    }

    fn next_serial(&mut self) -> u32 {
        self.serial = self.serial.checked_add(1).unwrap_or(1);
        self.serial
    }

    /// Send `msg` and wait for its reply; an error reply is
    /// [`DbusError::Remote`]. Signals that arrive meanwhile are queued.
    pub fn call(&mut self, msg: &Message) -> Result<Message, DbusError> {
        self.call_as(msg, &msg.method_name())
    }

    /// [`Connection::call`], with `context` naming the call in errors.
    pub fn call_as(&mut self, msg: &Message, context: &str) -> Result<Message, DbusError> {
        let deadline = Deadline::after(self.timeout);
        let serial = self.next_serial();
        let bytes = msg.encode(serial).map_err(|what| protocol(context, what))?;
        self.write_all(&bytes, deadline, context)?;
        self.wait_reply(serial, context, deadline)
    }

    fn wait_reply(
        &mut self,
        serial: u32,
        method: &str,
        deadline: Deadline,
    ) -> Result<Message, DbusError> {
        loop {
            let m = self.read_message(deadline, method)?;
            match m.kind {
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m),
                ERROR if m.reply_serial == Some(serial) => {
                    let message = match m.args() {
                        Ok(args) => args
                            .first()
                            .and_then(Arg::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        Err(e) => format!("(unreadable error message: {e})"),
                    };
                    return Err(DbusError::Remote {
                        method: method.into(),
                        unit: None,
                        name: m.error_name.unwrap_or_default(),
                        message,
                    });
                }
                SIGNAL => self.queue_signal(m),
                _ => {} // other replies, calls to us, unknown types: not ours
            }
        }
    }

    fn queue_signal(&mut self, m: Message) {
        if (self.keep_signal)(&m) {
            if self.signals.len() == MAX_QUEUED_SIGNALS {
                self.signals.pop_front();
            }
            self.signals.push_back(m);
        }
    }

    /// The next kept signal, waiting until `deadline`; `what` names what is
    /// awaited in the timeout error.
    pub fn wait_signal(&mut self, deadline: Deadline, what: &str) -> Result<Message, DbusError> {
        loop {
            if let Some(m) = self.signals.pop_front() {
                return Ok(m);
            }
            let m = self.read_message(deadline, what)?;
            if m.kind == SIGNAL {
                self.queue_signal(m);
            }
        }
    }

    fn read_message(&mut self, deadline: Deadline, method: &str) -> Result<Message, DbusError> {
        loop {
            if let Some(head) = self.rbuf.first_chunk::<16>() {
                let total = Message::frame_len(head).map_err(|what| protocol(method, what))?;
                if self.rbuf.len() >= total {
                    let m =
                        Message::decode(&self.rbuf[..total]).map_err(|what| protocol(method, what));
                    self.rbuf.drain(..total);
                    return m;
                }
            }
            self.fill(deadline, method)?;
        }
    }

    /// Read what is available (at least one byte) before `deadline`.
    fn fill(&mut self, deadline: Deadline, method: &str) -> Result<(), DbusError> {
        self.wait_ready(PollFlags::POLLIN, deadline, method)?;
        let mut chunk = [0u8; 8192];
        loop {
            match socket::recv(self.fd.as_raw_fd(), &mut chunk, MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(0) => {
                    return Err(DbusError::Closed {
                        address: self.address.clone(),
                        method: method.into(),
                    })
                }
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(source) => return Err(self.io("recv", method, source)),
            }
        }
    }

    fn write_all(
        &mut self,
        mut data: &[u8],
        deadline: Deadline,
        method: &str,
    ) -> Result<(), DbusError> {
        while !data.is_empty() {
            match socket::send(self.fd.as_raw_fd(), data, MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => data = &data[n..],
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => self.wait_ready(PollFlags::POLLOUT, deadline, method)?,
                Err(source) => return Err(self.io("send", method, source)),
            }
        }
        Ok(())
    }

    fn wait_ready(
        &self,
        events: PollFlags,
        deadline: Deadline,
        method: &str,
    ) -> Result<(), DbusError> {
        loop {
            let left = deadline.at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DbusError::Timeout {
                    method: method.into(),
                    timeout: deadline.limit,
                });
            }
            // Round up so that a sub-millisecond remainder still waits.
            let ms = left.as_millis().clamp(1, u128::from(u16::MAX)) as u16;
            let mut fds = [PollFd::new(self.fd.as_fd(), events)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => return Ok(()),
                Err(source) => return Err(self.io("poll", method, source)),
            }
        }
    }

    fn io(&self, op: &'static str, method: &str, source: Errno) -> DbusError {
        DbusError::Io {
            op,
            address: self.address.clone(),
            method: method.into(),
            source,
        }
    }
}

pub(super) fn protocol(context: &str, what: super::wire::WireError) -> DbusError {
    DbusError::Protocol {
        context: context.into(),
        what,
    }
}

/// The single string (or object path) a reply carries.
pub(super) fn reply_string(m: &Message, method: &str) -> Result<String, DbusError> {
    let args = m.args().map_err(|what| protocol(method, what))?;
    match args.as_slice() {
        [Arg::Str(s) | Arg::Path(s)] => Ok(s.clone()),
        _ => {
            let what = format!("reply signature {:?}, expected s or o", m.signature);
            Err(protocol(method, super::wire::WireError(what)))
        }
    }
}

/// The socket address of one `unix:` address entry, `None` for other
/// transports.
fn unix_sockaddr(entry: &str) -> Result<Option<UnixAddr>, DbusError> {
    let bad = |reason: String| DbusError::Address {
        address: entry.into(),
        reason,
    };
    let Some(params) = entry.strip_prefix("unix:") else {
        return Ok(None);
    };
    for kv in params.split(',') {
        let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
        let value = unescape(value).ok_or_else(|| bad(format!("bad %-escape in {key}")))?;
        let addr = match key {
            "path" => UnixAddr::new(value.as_slice()),
            "abstract" => UnixAddr::new_abstract(&value),
            _ => continue,
        };
        return addr.map(Some).map_err(|e| bad(format!("{key}: {e}")));
    }
    Ok(None)
}

fn unescape(v: &str) -> Option<Vec<u8>> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}
