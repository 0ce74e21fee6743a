//! ttrpc on the wire: the `ttrpc` crate's `proto` module (10-byte
//! `MessageHeader`, frame types, the `Request`/`Response`/`Status`
//! messages and gRPC `Code`s) and its size limit, framed here for our
//! own loop. The crate's servers and clients start threads, which the
//! shim cannot have (it clones container inits in-process), so the
//! server half and the client half (used to publish events) are both
//! non-blocking, driven by the event loop.

use std::time::Duration;

use containerd_shim_protos::protobuf::Message;
pub use ttrpc::proto::Code;
use ttrpc::proto::{
    GenMessage, MessageHeader, Request, Response, MESSAGE_HEADER_LENGTH, MESSAGE_LENGTH_MAX,
    MESSAGE_TYPE_REQUEST, MESSAGE_TYPE_RESPONSE,
};

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("message of {0} bytes is over the 4 MiB limit")]
    TooLong(usize),
    #[error("decode {what}: {source}")]
    Decode {
        what: &'static str,
        source: containerd_shim_protos::protobuf::Error,
    },
    #[error("encode: {0}")]
    Encode(containerd_shim_protos::protobuf::Error),
    #[error("{service}/{method}: {code:?}: {message}")]
    Remote {
        service: String,
        method: String,
        code: i32,
        message: String,
    },
}

/// One whole frame: the header `new(stream, length)` makes
/// (`MessageHeader::new_request` or `new_response`), then the payload.
pub fn frame(new: fn(u32, u32) -> MessageHeader, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(MESSAGE_HEADER_LENGTH + payload.len());
    v.extend_from_slice(&Vec::from(new(stream, payload.len() as u32)));
    v.extend_from_slice(payload);
    v
}

/// Split complete frames off the front of `buf`.
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<GenMessage>, WireError> {
    if buf.len() < MESSAGE_HEADER_LENGTH {
        return Ok(None);
    }
    let header = MessageHeader::from(&buf[..MESSAGE_HEADER_LENGTH]);
    let len = header.length as usize;
    if len > MESSAGE_LENGTH_MAX {
        return Err(WireError::TooLong(len));
    }
    if buf.len() < MESSAGE_HEADER_LENGTH + len {
        return Ok(None);
    }
    let payload = buf[MESSAGE_HEADER_LENGTH..MESSAGE_HEADER_LENGTH + len].to_vec();
    buf.drain(..MESSAGE_HEADER_LENGTH + len);
    Ok(Some(GenMessage { header, payload }))
}

/// A request frame, as containerd sends them.
pub fn is_request(m: &GenMessage) -> bool {
    m.header.type_ == MESSAGE_TYPE_REQUEST
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
        Err((code, message)) => r.status = Some(ttrpc::get_status(code, message)).into(),
    }
    Ok(frame(MessageHeader::new_response, stream, &encode(&r)?))
}

/// A request frame for `service/method` on `stream` (a client's stream
/// ids are odd and rising). `timeout` is passed on for the server to
/// enforce; zero is none.
pub fn request(
    stream: u32,
    service: &str,
    method: &str,
    payload: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, WireError> {
    let mut req = Request::new();
    req.service = service.to_string();
    req.method = method.to_string();
    req.payload = payload;
    req.timeout_nano = i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX);
    Ok(frame(MessageHeader::new_request, stream, &encode(&req)?))
}

/// The reply to `stream` in frame `m`, if it is one: `Ok` with the
/// payload, or the error status the server gave.
pub fn reply_to(
    stream: u32,
    m: &GenMessage,
    service: &str,
    method: &str,
) -> Option<Result<Vec<u8>, WireError>> {
    if m.header.type_ != MESSAGE_TYPE_RESPONSE || m.header.stream_id != stream {
        return None;
    }
    let resp: Response = match decode("ttrpc response", &m.payload) {
        Ok(r) => r,
        Err(e) => return Some(Err(e)),
    };
    if let Some(st) = resp.status.as_ref() {
        if st.code.value() != 0 {
            return Some(Err(WireError::Remote {
                service: service.into(),
                method: method.into(),
                code: st.code.value(),
                message: st.message.clone(),
            }));
        }
    }
    Some(Ok(resp.payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout containerd speaks: length and stream id big endian,
    /// then type and flags.
    #[test]
    fn header_layout() {
        let f = frame(MessageHeader::new_request, 7, &[0xaa; 0x0102]);
        assert_eq!(f[..MESSAGE_HEADER_LENGTH], [0, 0, 1, 2, 0, 0, 0, 7, 1, 0]);
        let h = MessageHeader::from(&f[..MESSAGE_HEADER_LENGTH]);
        assert_eq!((h.length, h.stream_id, h.type_), (0x0102, 7, 1));
    }

    #[test]
    fn frames_split_at_boundaries() {
        let mut buf = frame(MessageHeader::new_request, 1, b"abc");
        buf.extend(frame(MessageHeader::new_request, 3, b"de"));
        let partial = buf.split_off(buf.len() - 1);
        let m = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!((m.header.stream_id, m.payload.as_slice()), (1, &b"abc"[..]));
        assert!(is_request(&m));
        assert!(take_frame(&mut buf).unwrap().is_none());
        buf.extend(partial);
        let m = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!((m.header.stream_id, m.payload.as_slice()), (3, &b"de"[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_frame_is_refused() {
        let mut buf = Vec::from(MessageHeader::new_request(
            1,
            (MESSAGE_LENGTH_MAX + 1) as u32,
        ));
        assert!(matches!(take_frame(&mut buf), Err(WireError::TooLong(_))));
    }

    #[test]
    fn error_response_carries_code() {
        let mut buf = response(5, Err((Code::NOT_FOUND, "gone".into()))).unwrap();
        let m = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!(
            (m.header.stream_id, m.header.type_),
            (5, MESSAGE_TYPE_RESPONSE)
        );
        let r: Response = decode("r", &m.payload).unwrap();
        assert_eq!(r.status.code.value(), 5);
        assert_eq!(r.status.code.enum_value(), Ok(Code::NOT_FOUND));
        assert_eq!(r.status.message, "gone");
    }
}
