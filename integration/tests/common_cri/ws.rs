//! A minimal WebSocket client (RFC 6455, client side only) for
//! containerd's CRI streaming server (k8s.io/kubelet/pkg/cri/streaming,
//! which accepts WebSocket upgrades through
//! k8s.io/apimachinery/pkg/util/httpstream/wsstream).
//!
//! Channel protocol (`v4.channel.k8s.io`, binary): every message's first
//! byte is a channel id. Exec/attach: 0 stdin, 1 stdout, 2 stderr,
//! 3 error (a metav1.Status JSON when the process ends), 4 resize
//! (`{"Width":w,"Height":h}`). Port-forward: two channels per requested
//! port (`?port=N` in the URL), 2i data and 2i+1 error; the first message
//! the server writes on each carries the port, little-endian u16.
//!
//! The streaming server listens in containerd's private network namespace:
//! the TCP socket is created by a thread that entered that namespace
//! (setns(CLONE_NEWNET) affects the calling thread only; the socket stays
//! in the namespace it was created in and is then used from the test
//! thread).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The channel messages received, concatenated per channel id.
#[derive(Debug, Default, Clone)]
pub struct Streams {
    pub chans: [Vec<u8>; 8],
    /// The server closed the connection (close frame or EOF).
    pub closed: bool,
    /// Messages seen per channel (port-forward: the first is the port).
    pub count: [usize; 8],
}

impl Streams {
    pub fn text(&self, ch: u8) -> String {
        String::from_utf8_lossy(&self.chans[ch as usize]).into_owned()
    }
}

pub struct Ws {
    s: TcpStream,
    pub got: Streams,
    /// Strip the 2-byte port prefix of each channel's first message.
    port_prefix: bool,
}

/// `http://host:port/path` → (address, path).
fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("streaming URL {url:?} is not http://"));
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let addr = hostport
        .parse()
        .unwrap_or_else(|e| panic!("streaming address {hostport:?}: {e}"));
    (addr, path)
}

/// A TCP connection made from inside the network namespace of `pid`.
pub fn connect_in_netns(pid: i32, addr: SocketAddr) -> TcpStream {
    let ns = fs::File::open(format!("/proc/{pid}/ns/net"))
        .unwrap_or_else(|e| panic!("open netns of {pid}: {e}"));
    std::thread::spawn(move || {
        // SAFETY: setns(2) with an fd we own and a namespace type; it only
        // changes this short-lived thread's network namespace.
        let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect {addr} in containerd's netns: {e}"))
    })
    .join()
    .unwrap_or_else(|_| panic!("connect thread panicked"))
}

impl Ws {
    /// Upgrade `url` (plus `query`, e.g. `?port=8080`) to a WebSocket with
    /// `protocol`, connecting inside the network namespace of `pid`.
    pub fn connect(pid: i32, url: &str, query: &str, protocol: &str) -> Ws {
        let (addr, path) = split_url(url);
        let mut s = connect_in_netns(pid, addr);
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        s.set_write_timeout(Some(Duration::from_secs(20)))
            .expect("write timeout");
        let req = format!(
            "GET {path}{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).expect("send upgrade");
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(1) => head.push(b[0]),
                other => panic!(
                    "upgrade of {url}: {other:?} after {:?}",
                    String::from_utf8_lossy(&head)
                ),
            }
            assert!(head.len() < 16384, "upgrade response too long");
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "upgrade of {url} refused: {head}"
        );
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains(&format!("sec-websocket-protocol: {protocol}")),
            "protocol {protocol} not agreed: {head}"
        );
        // The accept key for the fixed nonce (RFC 6455 section 1.3).
        assert!(
            head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "bad Sec-WebSocket-Accept: {head}"
        );
        Ws {
            s,
            got: Streams::default(),
            port_prefix: protocol == "portforward.k8s.io"
                || (protocol == "v4.channel.k8s.io" && path.starts_with("/portforward")),
        }
    }

    fn frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut f = vec![0x80 | opcode];
        let n = payload.len();
        if n < 126 {
            f.push(0x80 | n as u8);
        } else if n < 65536 {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
        let key = [0x37u8, 0xfa, 0x21, 0x3d];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        self.s.write_all(&f).expect("websocket write");
    }

    /// One binary message on channel `ch`.
    pub fn send(&mut self, ch: u8, data: &[u8]) {
        let mut p = vec![ch];
        p.extend_from_slice(data);
        self.frame(2, &p);
    }

    /// A close frame (normal closure).
    pub fn close(&mut self) {
        self.frame(8, &1000u16.to_be_bytes());
    }

    /// Read one message; false once the server closed.
    fn read_one(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "websocket: deadline passed; received {:?}",
            self.dump()
        );
        self.s
            .set_read_timeout(Some(left))
            .expect("set read timeout");
        let mut msg = Vec::new();
        loop {
            let mut h = [0u8; 2];
            if let Err(e) = self.s.read_exact(&mut h) {
                if e.kind() == std::io::ErrorKind::UnexpectedEof
                    || e.kind() == std::io::ErrorKind::ConnectionReset
                {
                    self.got.closed = true;
                    return false;
                }
                panic!("websocket read: {e}; received {:?}", self.dump());
            }
            let fin = h[0] & 0x80 != 0;
            let op = h[0] & 0x0f;
            let mut len = (h[1] & 0x7f) as u64;
            if len == 126 {
                let mut l = [0u8; 2];
                self.s.read_exact(&mut l).expect("frame length");
                len = u16::from_be_bytes(l) as u64;
            } else if len == 127 {
                let mut l = [0u8; 8];
                self.s.read_exact(&mut l).expect("frame length");
                len = u64::from_be_bytes(l);
            }
            let mut key = None;
            if h[1] & 0x80 != 0 {
                let mut k = [0u8; 4];
                self.s.read_exact(&mut k).expect("frame mask");
                key = Some(k);
            }
            let mut p = vec![0u8; len as usize];
            self.s.read_exact(&mut p).expect("frame payload");
            if let Some(k) = key {
                p.iter_mut().enumerate().for_each(|(i, b)| *b ^= k[i % 4]);
            }
            match op {
                8 => {
                    self.got.closed = true;
                    return false;
                }
                9 => {
                    self.frame(10, &p);
                    continue;
                }
                10 => continue,
                _ => {}
            }
            msg.extend_from_slice(&p);
            if fin {
                break;
            }
        }
        if let Some((&ch, data)) = msg.split_first() {
            let i = ch as usize;
            assert!(i < 8, "message on unexpected channel {ch}: {msg:?}");
            if data.is_empty() {
                // (an empty message: nothing for the channel)
                return true;
            }
            let mut data = data;
            if self.port_prefix && self.got.count[i] == 0 {
                assert!(data.len() >= 2, "port prefix on channel {ch}: {data:?}");
                data = &data[2..];
            }
            self.got.count[i] += 1;
            self.got.chans[i].extend_from_slice(data);
        }
        true
    }

    /// Read until `done(&streams)` holds (or the server closes, then the
    /// condition is checked one last time); panics after `timeout`.
    pub fn read_until(&mut self, timeout: Duration, done: impl Fn(&Streams) -> bool) -> Streams {
        let deadline = Instant::now() + timeout;
        while !done(&self.got) {
            if !self.read_one(deadline) {
                break;
            }
        }
        assert!(
            done(&self.got),
            "websocket closed before the expected output; received {:?}",
            self.dump()
        );
        self.got.clone()
    }

    /// Read until the server closes the connection.
    pub fn read_to_close(&mut self, timeout: Duration) -> Streams {
        let deadline = Instant::now() + timeout;
        while self.read_one(deadline) {}
        self.got.clone()
    }

    fn dump(&self) -> Vec<(usize, String)> {
        (0..8)
            .filter(|&i| self.got.count[i] > 0 || !self.got.chans[i].is_empty())
            .map(|i| (i, String::from_utf8_lossy(&self.got.chans[i]).into_owned()))
            .collect()
    }
}
