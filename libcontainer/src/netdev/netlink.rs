//! The few rtnetlink requests `linux.netDevices` needs, on a
//! NETLINK_ROUTE socket of our own: list links and addresses (dumps),
//! move a link to another network namespace under a new name
//! (RTM_NEWLINK with IFLA_NET_NS_FD and IFLA_IFNAME), add an address
//! (RTM_NEWADDR) and set a link up. Messages are built and parsed by hand
//! (native byte order, 4-byte alignment, as netlink(7) describes); every
//! wait for the kernel's answer is bounded by a receive timeout.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{self, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType};
use nix::sys::time::TimeVal;

use crate::sys;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
/// `IFA_F_PERMANENT` (<linux/if_addr.h>).
pub(crate) const IFA_F_PERMANENT: u32 = 0x80;
/// `RT_SCOPE_UNIVERSE`: a global address.
pub(crate) const RT_SCOPE_UNIVERSE: u8 = 0;
pub(crate) const IFF_UP: u32 = 0x1;
/// How long we wait for any one answer from the kernel.
const TIMEOUT_SECS: i64 = 5;

/// A network interface as RTM_GETLINK reports it.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub index: i32,
    pub name: String,
    pub flags: u32,
}

/// An interface address as RTM_GETADDR reports it, with the attributes
/// needed to add it again elsewhere.
#[derive(Debug, Clone)]
pub(crate) struct Addr {
    pub family: u8,
    pub prefixlen: u8,
    pub scope: u8,
    /// IFA_FLAGS when present (32 bits), else the header's 8 bits.
    pub flags: u32,
    attrs: Vec<(u16, Vec<u8>)>,
}

/// A request under construction: header, fixed part, attributes.
struct Request(Vec<u8>);

impl Request {
    fn new(kind: u16, flags: u16, seq: u32, fixed: &[u8]) -> Request {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish()
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        b.extend_from_slice(fixed);
        Request(b)
    }

    fn attr(mut self, kind: u16, data: &[u8]) -> Request {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(align(self.0.len()), 0);
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16]; // family AF_UNSPEC, type 0
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_ne_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// The attributes (type, payload) in `b`.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = usize::from(u16_at(b, 0));
        if len < 4 || len > b.len() {
            break;
        }
        out.push((u16_at(b, 2) & 0x3fff, &b[4..len]));
        b = &b[align(len).min(b.len())..];
    }
    out
}

/// One NETLINK_ROUTE socket, bound to the network namespace it was
/// opened in.
pub(crate) struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

impl Rtnl {
    /// A socket in the caller's network namespace.
    pub fn open() -> nix::Result<Rtnl> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        socket::setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(TIMEOUT_SECS, 0))?;
        socket::bind(fd.as_raw_fd(), &socket::NetlinkAddr::new(0, 0))?;
        Ok(Rtnl { fd, seq: 0 })
    }

    /// A socket in the network namespace `netns`: the caller enters it
    /// just long enough to open the socket and goes back to `home` (its
    /// own). The caller must be single-threaded (create checks it).
    pub fn open_in(netns: BorrowedFd<'_>, home: BorrowedFd<'_>) -> nix::Result<Rtnl> {
        sys::setns(netns, libc::CLONE_NEWNET)?;
        let r = Rtnl::open();
        sys::setns(home, libc::CLONE_NEWNET)?;
        r
    }

    fn send(&mut self, req: Vec<u8>) -> nix::Result<u32> {
        socket::send(self.fd.as_raw_fd(), &req, MsgFlags::empty())?;
        Ok(self.seq)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Receive the answers to request `seq`, handing each data message
    /// (type, payload) to `each`, until the ack (single request) or
    /// NLMSG_DONE (dump). A kernel error comes back as its errno.
    fn answers(&mut self, seq: u32, mut each: impl FnMut(u16, &[u8])) -> nix::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Err(Errno::ETIMEDOUT),
                Err(e) => return Err(e),
            };
            let mut b = &buf[..n];
            while b.len() >= NLMSG_HDRLEN {
                let len = u32_at(b, 0) as usize;
                if len < NLMSG_HDRLEN || len > b.len() {
                    return Err(Errno::EBADMSG);
                }
                let (kind, mseq) = (u16_at(b, 4), u32_at(b, 8));
                let payload = &b[NLMSG_HDRLEN..len];
                b = &b[align(len).min(b.len())..];
                if mseq != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let code = u32_at(payload, 0) as i32;
                        return if code == 0 {
                            Ok(())
                        } else {
                            Err(Errno::from_raw(-code))
                        };
                    }
                    _ => each(kind, payload),
                }
            }
        }
    }

    /// Every link of this namespace.
    pub fn links(&mut self) -> nix::Result<Vec<Link>> {
        let seq = self.next_seq();
        let req = Request::new(RTM_GETLINK, NLM_F_DUMP, seq, &ifinfomsg(0, 0, 0)).finish();
        self.send(req)?;
        let mut out = Vec::new();
        self.answers(seq, |kind, p| {
            if kind != RTM_NEWLINK || p.len() < 16 {
                return;
            }
            let name = attrs(&p[16..])
                .into_iter()
                .find(|(t, _)| *t == IFLA_IFNAME)
                .map(|(_, v)| {
                    let v = v.split(|c| *c == 0).next().unwrap_or_default();
                    String::from_utf8_lossy(v).into_owned()
                })
                .unwrap_or_default();
            out.push(Link {
                index: u32_at(p, 4) as i32,
                name,
                flags: u32_at(p, 8),
            });
        })?;
        Ok(out)
    }

    /// The addresses of link `index`, every family.
    pub fn addrs(&mut self, index: i32) -> nix::Result<Vec<Addr>> {
        let seq = self.next_seq();
        let req = Request::new(RTM_GETADDR, NLM_F_DUMP, seq, &[0u8; 8]).finish();
        self.send(req)?;
        let mut out = Vec::new();
        self.answers(seq, |kind, p| {
            if kind != RTM_NEWADDR || p.len() < 8 || u32_at(p, 4) as i32 != index {
                return;
            }
            let mut a = Addr {
                family: p[0],
                prefixlen: p[1],
                flags: u32::from(p[2]),
                scope: p[3],
                attrs: Vec::new(),
            };
            for (t, v) in attrs(&p[8..]) {
                match t {
                    IFA_FLAGS => a.flags = u32_at(v, 0),
                    IFA_ADDRESS | IFA_LOCAL | IFA_BROADCAST => a.attrs.push((t, v.to_vec())),
                    _ => {}
                }
            }
            out.push(a);
        })?;
        Ok(out)
    }

    /// Move link `index` into the network namespace `netns`, named `name`
    /// there (a `%d` template lets the kernel pick the number).
    pub fn move_to(&mut self, index: i32, netns: RawFd, name: &str) -> nix::Result<()> {
        let seq = self.next_seq();
        let mut ifname = name.as_bytes().to_vec();
        ifname.push(0);
        let req = Request::new(RTM_NEWLINK, NLM_F_ACK, seq, &ifinfomsg(index, 0, 0))
            .attr(IFLA_NET_NS_FD, &(netns as u32).to_ne_bytes())
            .attr(IFLA_IFNAME, &ifname)
            .finish();
        self.send(req)?;
        self.answers(seq, |_, _| {})
    }

    /// Add `a` to link `index` (replacing an equal one).
    pub fn add_addr(&mut self, index: i32, a: &Addr) -> nix::Result<()> {
        let seq = self.next_seq();
        let mut fixed = [0u8; 8];
        fixed[0] = a.family;
        fixed[1] = a.prefixlen;
        fixed[2] = (a.flags & 0xff) as u8;
        fixed[3] = a.scope;
        fixed[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
        let mut req = Request::new(
            RTM_NEWADDR,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            seq,
            &fixed,
        );
        for (t, v) in &a.attrs {
            req = req.attr(*t, v);
        }
        let req = req.attr(IFA_FLAGS, &a.flags.to_ne_bytes()).finish();
        self.send(req)?;
        self.answers(seq, |_, _| {})
    }

    /// Set link `index` up.
    pub fn set_up(&mut self, index: i32) -> nix::Result<()> {
        let seq = self.next_seq();
        let req = Request::new(
            RTM_NEWLINK,
            NLM_F_ACK,
            seq,
            &ifinfomsg(index, IFF_UP, IFF_UP),
        )
        .finish();
        self.send(req)?;
        self.answers(seq, |_, _| {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_aligned_and_sized() {
        let req = Request::new(RTM_NEWLINK, NLM_F_ACK, 7, &ifinfomsg(3, 0, 0))
            .attr(IFLA_NET_NS_FD, &5u32.to_ne_bytes())
            .attr(IFLA_IFNAME, b"eth1\0")
            .finish();
        // header 16 + ifinfomsg 16 + (4+4) + (4+5 -> 12)
        assert_eq!(req.len(), 16 + 16 + 8 + 12);
        assert_eq!(u32_at(&req, 0) as usize, req.len());
        assert_eq!(u16_at(&req, 6), NLM_F_ACK | NLM_F_REQUEST);
        let a = attrs(&req[32..]);
        assert_eq!(a.len(), 2);
        assert_eq!(a[1], (IFLA_IFNAME, &b"eth1\0"[..]));
    }

    #[test]
    fn lists_this_namespace_links() {
        // Every network namespace has a loopback.
        let mut r = Rtnl::open().expect("netlink socket");
        let links = r.links().expect("link dump");
        assert!(links.iter().any(|l| l.name == "lo"), "{links:?}");
    }
}
