//! The parent <-> init sync channel: a `SOCK_SEQPACKET` socketpair, so every
//! message arrives whole and a dead peer reads as end-of-file.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    Sys(#[from] crate::sys::SysError),
    #[error("sync channel: unexpected message {0:?}")]
    Unexpected(Vec<u8>),
    #[error("sync channel: a message of {0} bytes is over the limit")]
    TooLong(usize),
    #[error("sync channel: message of {want} bytes arrived as {got}")]
    Truncated { want: usize, got: usize },
}

/// Messages between the runtime and the container's init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// parent -> child: cgroups, id maps and oom_score_adj are in place; the
    /// payload is the init's pid as the host sees it.
    Go(i32),
    /// child -> parent (slow path): I unshared a user namespace, map it.
    NeedMaps,
    /// parent -> child: maps written.
    MapsDone,
    /// child -> parent (slow path): the real init's host pid.
    InitPid(i32),
    /// child -> parent: run prestart/createRuntime hooks now.
    RunHooks,
    /// parent -> child: hooks ran.
    HooksDone,
    /// child -> parent: set-up done, waiting for `start`.
    Ready,
    /// child -> parent: something to tell the user, not fatal.
    Warning(String),
    /// either way: fatal error with a message.
    Error(String),
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        let (tag, body): (u8, Vec<u8>) = match self {
            Msg::Go(p) => (b'G', p.to_le_bytes().to_vec()),
            Msg::NeedMaps => (b'N', vec![]),
            Msg::MapsDone => (b'M', vec![]),
            Msg::InitPid(p) => (b'P', p.to_le_bytes().to_vec()),
            Msg::RunHooks => (b'H', vec![]),
            Msg::HooksDone => (b'h', vec![]),
            Msg::Ready => (b'R', vec![]),
            Msg::Error(s) => (b'E', s.as_bytes().to_vec()),
            Msg::Warning(s) => (b'W', s.as_bytes().to_vec()),
        };
        let mut v = Vec::with_capacity(1 + body.len());
        v.push(tag);
        v.extend(body);
        v
    }

    fn decode(b: &[u8]) -> Result<Msg, ChannelError> {
        let pid = |b: &[u8]| -> Result<i32, ChannelError> {
            let arr: [u8; 4] = b
                .try_into()
                .map_err(|_| ChannelError::Unexpected(b.to_vec()))?;
            Ok(i32::from_le_bytes(arr))
        };
        Ok(match b.split_first() {
            Some((b'G', rest)) => Msg::Go(pid(rest)?),
            Some((b'N', [])) => Msg::NeedMaps,
            Some((b'M', [])) => Msg::MapsDone,
            Some((b'P', rest)) => Msg::InitPid(pid(rest)?),
            Some((b'H', [])) => Msg::RunHooks,
            Some((b'h', [])) => Msg::HooksDone,
            Some((b'R', [])) => Msg::Ready,
            Some((b'E', rest)) => Msg::Error(String::from_utf8_lossy(rest).into_owned()),
            Some((b'W', rest)) => Msg::Warning(String::from_utf8_lossy(rest).into_owned()),
            _ => return Err(ChannelError::Unexpected(b.to_vec())),
        })
    }
}

pub struct Channel(OwnedFd);

/// A connected pair: (parent end, child end). Both are close-on-exec.
pub fn pair() -> Result<(Channel, Channel), ChannelError> {
    let (a, b) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|errno| {
        ChannelError::Sys(crate::sys::SysError::new("sync channel socketpair", errno))
    })?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<(), ChannelError> {
        let data = msg.encode();
        loop {
            match socket::send(self.0.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(ChannelError::Sys(crate::sys::SysError::new(
                        "sync channel send",
                        errno,
                    )))
                }
            }
        }
    }

    /// The next message, or `None` when the peer has gone. A message of
    /// any size arrives whole: its length is read first (MSG_PEEK |
    /// MSG_TRUNC), and a short read is an error, never a cut message.
    pub fn recv(&self) -> Result<Option<Msg>, ChannelError> {
        let fd = self.0.as_raw_fd();
        let sys_err =
            |errno| ChannelError::Sys(crate::sys::SysError::new("sync channel recv", errno));
        let len = loop {
            match socket::recv(fd, &mut [0u8; 1], MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC) {
                Ok(0) => return Ok(None),
                Ok(n) => break n,
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(sys_err(errno)),
            }
        };
        if len > MAX_MESSAGE {
            return Err(ChannelError::TooLong(len));
        }
        let mut buf = vec![0u8; len];
        loop {
            match socket::recv(fd, &mut buf, MsgFlags::MSG_TRUNC) {
                Ok(n) if n == len => return Msg::decode(&buf).map(Some),
                Ok(n) => return Err(ChannelError::Truncated { want: len, got: n }),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(sys_err(errno)),
            }
        }
    }
}

/// Larger than any message we send (errors and warnings are short); a
/// bound so a confused peer cannot make us allocate without limit.
const MAX_MESSAGE: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let (a, b) = pair().expect("pair");
        for m in [
            Msg::Go(42),
            Msg::NeedMaps,
            Msg::MapsDone,
            Msg::InitPid(-1),
            Msg::RunHooks,
            Msg::HooksDone,
            Msg::Ready,
            Msg::Error("boom".into()),
        ] {
            a.send(&m).expect("send");
            assert_eq!(b.recv().expect("recv"), Some(m));
        }
        drop(a);
        assert_eq!(b.recv().expect("eof"), None);
    }

    /// Messages over the old fixed 64 KiB buffer arrive whole.
    #[test]
    fn long_message_arrives_whole() {
        let (a, b) = pair().expect("pair");
        let long = "e".repeat(150_000);
        a.send(&Msg::Error(long.clone())).expect("send");
        a.send(&Msg::Ready).expect("send");
        assert_eq!(b.recv().expect("recv"), Some(Msg::Error(long)));
        assert_eq!(b.recv().expect("recv"), Some(Msg::Ready));
    }
}
