//! ttrpc on the wire: a 10-byte header (payload length and stream id, big
//! endian; message type; flags) and a protobuf `Request` or `Response`.
//! The server half is non-blocking (driven by the event loop); the client
//! half, used to publish events, is blocking with timeouts.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::ttrpc::{Request, Response, Status};

pub const HEADER_LEN: usize = 10;
pub const MAX_MESSAGE: usize = 4 << 20;
pub const TYPE_REQUEST: u8 = 1;
pub const TYPE_RESPONSE: u8 = 2;

/// gRPC status codes containerd maps to its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    Unknown = 2,
    InvalidArgument = 3,
    NotFound = 5,
    AlreadyExists = 6,
    FailedPrecondition = 9,
    Unimplemented = 12,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        source: std::io::Error,
    },
    #[error("message of {0} bytes is over the 4 MiB limit")]
    TooLong(usize),
    #[error("decode {what}: {source}")]
    Decode {
        what: &'static str,
        source: containerd_shim_protos::protobuf::Error,
    },
    #[error("encode: {0}")]
    Encode(containerd_shim_protos::protobuf::Error),
    #[error("unexpected message type {0}")]
    Type(u8),
    #[error("{service}/{method}: {code:?}: {message}")]
    Remote {
        service: String,
        method: String,
        code: i32,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: u32,
    pub stream: u32,
    pub typ: u8,
    pub flags: u8,
}

impl Header {
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            length: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            stream: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            typ: b[8],
            flags: b[9],
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..4].copy_from_slice(&self.length.to_be_bytes());
        b[4..8].copy_from_slice(&self.stream.to_be_bytes());
        b[8] = self.typ;
        b[9] = self.flags;
        b
    }
}

/// One whole frame: header and payload.
pub fn frame(stream: u32, typ: u8, payload: &[u8]) -> Vec<u8> {
    let h = Header {
        length: payload.len() as u32,
        stream,
        typ,
        flags: 0,
    };
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.extend_from_slice(&h.encode());
    v.extend_from_slice(payload);
    v
}

/// Split complete frames off the front of `buf`.
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<(Header, Vec<u8>)>, WireError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let mut hb = [0u8; HEADER_LEN];
    hb.copy_from_slice(&buf[..HEADER_LEN]);
    let h = Header::parse(&hb);
    let len = h.length as usize;
    if len > MAX_MESSAGE {
        return Err(WireError::TooLong(len));
    }
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    let payload = buf[HEADER_LEN..HEADER_LEN + len].to_vec();
    buf.drain(..HEADER_LEN + len);
    Ok(Some((h, payload)))
}

pub fn encode<M: Message>(m: &M) -> Result<Vec<u8>, WireError> {
    m.write_to_bytes().map_err(WireError::Encode)
}

pub fn decode<M: Message>(what: &'static str, b: &[u8]) -> Result<M, WireError> {
    M::parse_from_bytes(b).map_err(|source| WireError::Decode { what, source })
}

/// A response frame: `Ok(payload)` or an error status.
pub fn response(
    stream: u32,
    result: Result<Vec<u8>, (Code, String)>,
) -> Result<Vec<u8>, WireError> {
    let mut r = Response::new();
    match result {
        Ok(p) => r.payload = p,
        Err((code, message)) => {
            let mut s = Status::new();
            s.code = containerd_shim_protos::protobuf::EnumOrUnknown::from_i32(code as i32);
            s.message = message;
            r.status = Some(s).into();
        }
    }
    Ok(frame(stream, TYPE_RESPONSE, &encode(&r)?))
}

/// A blocking ttrpc client on one connection (stream ids are odd, rising).
pub struct Client {
    sock: UnixStream,
    next_stream: u32,
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> WireError {
    move |source| WireError::Io { op, source }
}

impl Client {
    pub fn connect(path: &str, timeout: Duration) -> Result<Client, WireError> {
        let sock = UnixStream::connect(path).map_err(io("connect"))?;
        sock.set_read_timeout(Some(timeout))
            .map_err(io("set timeout"))?;
        sock.set_write_timeout(Some(timeout))
            .map_err(io("set timeout"))?;
        Ok(Client {
            sock,
            next_stream: 1,
        })
    }

    /// One unary call; returns the response payload.
    pub fn call(
        &mut self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, WireError> {
        let mut req = Request::new();
        req.service = service.to_string();
        req.method = method.to_string();
        req.payload = payload;
        req.timeout_nano = 5_000_000_000;
        let stream = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(2);
        self.sock
            .write_all(&frame(stream, TYPE_REQUEST, &encode(&req)?))
            .map_err(io("send request"))?;
        loop {
            let mut hb = [0u8; HEADER_LEN];
            self.sock.read_exact(&mut hb).map_err(io("read response"))?;
            let h = Header::parse(&hb);
            if h.length as usize > MAX_MESSAGE {
                return Err(WireError::TooLong(h.length as usize));
            }
            let mut body = vec![0u8; h.length as usize];
            self.sock
                .read_exact(&mut body)
                .map_err(io("read response"))?;
            if h.typ != TYPE_RESPONSE {
                return Err(WireError::Type(h.typ));
            }
            if h.stream != stream {
                continue;
            }
            let resp: Response = decode("ttrpc response", &body)?;
            if let Some(st) = resp.status.as_ref() {
                if st.code.value() != 0 {
                    return Err(WireError::Remote {
                        service: service.into(),
                        method: method.into(),
                        code: st.code.value(),
                        message: st.message.clone(),
                    });
                }
            }
            return Ok(resp.payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header {
            length: 0x01020304,
            stream: 7,
            typ: TYPE_REQUEST,
            flags: 0,
        };
        assert_eq!(h.encode(), [1, 2, 3, 4, 0, 0, 0, 7, 1, 0]);
        assert_eq!(Header::parse(&h.encode()), h);
    }

    #[test]
    fn frames_split_at_boundaries() {
        let mut buf = frame(1, TYPE_REQUEST, b"abc");
        buf.extend(frame(3, TYPE_REQUEST, b"de"));
        let partial = buf.split_off(buf.len() - 1);
        let (h, p) = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!((h.stream, p.as_slice()), (1, &b"abc"[..]));
        assert!(take_frame(&mut buf).unwrap().is_none());
        buf.extend(partial);
        let (h, p) = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!((h.stream, p.as_slice()), (3, &b"de"[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_frame_is_refused() {
        let mut buf = Header {
            length: (MAX_MESSAGE + 1) as u32,
            stream: 1,
            typ: 1,
            flags: 0,
        }
        .encode()
        .to_vec();
        assert!(matches!(take_frame(&mut buf), Err(WireError::TooLong(_))));
    }

    #[test]
    fn error_response_carries_code() {
        let f = response(5, Err((Code::NotFound, "gone".into()))).unwrap();
        let mut buf = f;
        let (h, p) = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!((h.stream, h.typ), (5, TYPE_RESPONSE));
        let r: Response = decode("r", &p).unwrap();
        assert_eq!(r.status.code.value(), Code::NotFound as i32);
        assert_eq!(r.status.message, "gone");
    }
}
