//! The D-Bus wire format for the subset oxrun speaks: messages are written
//! little-endian and read in either byte order. Every length, count and
//! nesting level read from the peer is bounded, and malformed input is an
//! error, never a panic (`fuzz/fuzz_targets/dbus.rs`).

/// Largest message accepted or sent. The specification allows 128 MiB;
/// systemd's replies and signals to us are a few KiB.
pub const MAX_MESSAGE: usize = 8 << 20;
/// Largest array (specification: 64 MiB).
const MAX_ARRAY: usize = 64 << 20;
/// Deepest nesting of arrays, structs and variants together (specification:
/// 32 array levels plus 32 struct levels).
const MAX_DEPTH: usize = 64;
const MAX_SIGNATURE: usize = 255;

pub const METHOD_CALL: u8 = 1;
pub const METHOD_RETURN: u8 = 2;
pub const ERROR: u8 = 3;
pub const SIGNAL: u8 = 4;

const F_PATH: u8 = 1;
const F_INTERFACE: u8 = 2;
const F_MEMBER: u8 = 3;
const F_ERROR_NAME: u8 = 4;
const F_REPLY_SERIAL: u8 = 5;
const F_DESTINATION: u8 = 6;
const F_SENDER: u8 = 7;
const F_SIGNATURE: u8 = 8;
const F_UNIX_FDS: u8 = 9;

/// What was malformed in a message (ours or the peer's).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

fn bad<T>(what: impl Into<String>) -> Result<T, WireError> {
    Err(WireError(what.into()))
}

/// One D-Bus value. `Array` carries its element signature, so an empty
/// array still has a type; `ay` is `Bytes` (one byte each, not one `Arg`).
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    Path(String),
    Sig(String),
    Bytes(Vec<u8>),
    Array(String, Vec<Arg>),
    Struct(Vec<Arg>),
    /// An element of `a{..}`.
    Dict(Box<Arg>, Box<Arg>),
    Variant(Box<Arg>),
}

impl Arg {
    /// This value's type signature.
    pub fn signature(&self) -> String {
        let mut s = String::new();
        self.write_signature(&mut s);
        s
    }

    fn write_signature(&self, s: &mut String) {
        match self {
            Arg::Bytes(_) => s.push_str("ay"),
            Arg::Array(elem, _) => {
                s.push('a');
                s.push_str(elem);
            }
            Arg::Struct(items) => {
                s.push('(');
                items.iter().for_each(|a| a.write_signature(s));
                s.push(')');
            }
            Arg::Dict(k, v) => {
                s.push('{');
                k.write_signature(s);
                v.write_signature(s);
                s.push('}');
            }
            basic => s.push(match basic {
                Arg::Byte(_) => 'y',
                Arg::Bool(_) => 'b',
                Arg::I16(_) => 'n',
                Arg::U16(_) => 'q',
                Arg::I32(_) => 'i',
                Arg::U32(_) => 'u',
                Arg::I64(_) => 'x',
                Arg::U64(_) => 't',
                Arg::Double(_) => 'd',
                Arg::Str(_) => 's',
                Arg::Path(_) => 'o',
                Arg::Sig(_) => 'g',
                _ => 'v',
            }),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Arg::Str(s) | Arg::Path(s) | Arg::Sig(s) => Some(s),
            _ => None,
        }
    }
}

fn alignment(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' | b'h' => 4,
        _ => 8, // x t d (
    }
}

fn is_basic(code: u8) -> bool {
    b"ybnqiuxtdsogh".contains(&code)
}

/// Length of the first complete type in `sig`, checking its syntax.
fn single_type_len(sig: &[u8], depth: usize) -> Result<usize, WireError> {
    if depth > MAX_DEPTH {
        return bad("signature nested too deeply");
    }
    match sig.first() {
        None => bad("signature ends inside a type"),
        Some(&c) if is_basic(c) || c == b'v' => Ok(1),
        Some(b'a') if sig.get(1) == Some(&b'{') => {
            // A dict entry: a basic key and one complete value type.
            if !sig.get(2).is_some_and(|&k| is_basic(k)) {
                return bad("dict entry key is not a basic type");
            }
            let n = single_type_len(&sig[3..], depth + 1)?;
            if sig.get(3 + n) != Some(&b'}') {
                return bad("dict entry does not close after two types");
            }
            Ok(4 + n)
        }
        Some(b'a') => Ok(1 + single_type_len(&sig[1..], depth + 1)?),
        Some(b'(') => {
            let mut i = 1;
            while sig.get(i) != Some(&b')') {
                if i >= sig.len() {
                    return bad("struct does not close");
                }
                i += single_type_len(&sig[i..], depth + 1)?;
            }
            if i == 1 {
                return bad("empty struct");
            }
            Ok(i + 1)
        }
        Some(&c) => bad(format!("unexpected type code {:?}", c as char)),
    }
}

/// Check a whole signature (a sequence of complete types).
fn check_signature(sig: &str) -> Result<(), WireError> {
    if sig.len() > MAX_SIGNATURE {
        return bad("signature longer than 255 bytes");
    }
    let b = sig.as_bytes();
    let mut i = 0;
    while i < b.len() {
        i += single_type_len(&b[i..], 0)?;
    }
    Ok(())
}

fn check_object_path(p: &str) -> Result<(), WireError> {
    let ok = p == "/"
        || (p.starts_with('/')
            && !p.ends_with('/')
            && p[1..].split('/').all(|e| {
                !e.is_empty() && e.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
            }));
    if ok {
        Ok(())
    } else {
        bad(format!("invalid object path {p:?}"))
    }
}

/// Marshals values little-endian. Offsets (for alignment) count from the
/// start of `buf`, which must be the start of the message or of the body.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn put(&mut self, a: &Arg) {
        match a {
            Arg::Byte(v) => self.buf.push(*v),
            Arg::Bool(v) => self.u32(u32::from(*v)),
            Arg::I16(v) => self.fixed(2, &v.to_le_bytes()),
            Arg::U16(v) => self.fixed(2, &v.to_le_bytes()),
            Arg::I32(v) => self.fixed(4, &v.to_le_bytes()),
            Arg::U32(v) => self.u32(*v),
            Arg::I64(v) => self.fixed(8, &v.to_le_bytes()),
            Arg::U64(v) => self.fixed(8, &v.to_le_bytes()),
            Arg::Double(v) => self.fixed(8, &v.to_le_bytes()),
            Arg::Str(s) | Arg::Path(s) => self.string(s),
            Arg::Sig(s) => {
                self.buf.push(s.len() as u8);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Arg::Bytes(b) => {
                self.u32(b.len() as u32);
                self.buf.extend_from_slice(b);
            }
            Arg::Array(elem, items) => {
                self.u32(0);
                let len_at = self.buf.len() - 4;
                // The padding to the first element is there even when the
                // array is empty, and is not counted in its length.
                self.pad(alignment(elem.as_bytes().first().copied().unwrap_or(b'y')));
                let start = self.buf.len();
                items.iter().for_each(|i| self.put(i));
                let len = (self.buf.len() - start) as u32;
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Arg::Struct(items) => {
                self.pad(8);
                items.iter().for_each(|i| self.put(i));
            }
            Arg::Dict(k, v) => {
                self.pad(8);
                self.put(k);
                self.put(v);
            }
            Arg::Variant(inner) => {
                self.put(&Arg::Sig(inner.signature()));
                self.put(inner);
            }
        }
    }

    fn fixed(&mut self, align: usize, bytes: &[u8]) {
        self.pad(align);
        self.buf.extend_from_slice(bytes);
    }
}

/// Unmarshals values from `buf`; offsets count from its start.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big: bool,
}

impl<'a> Reader<'a> {
    fn align(&mut self, align: usize) -> Result<(), WireError> {
        let p = self.pos.next_multiple_of(align);
        if p > self.buf.len() {
            return bad("message ends inside alignment padding");
        }
        self.pos = p;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return bad(format!(
                "message ends inside a value ({n} bytes at offset {})",
                self.pos
            ));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        self.align(N)?;
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        if self.big {
            b.reverse();
        }
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        self.fixed::<4>().map(u32::from_le_bytes)
    }

    fn text(&mut self, len: usize) -> Result<String, WireError> {
        let b = self.take(len)?;
        if self.take(1)? != [0] {
            return bad("string not nul-terminated");
        }
        if b.contains(&0) {
            return bad("string contains a nul byte");
        }
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => bad("string is not UTF-8"),
        }
    }

    fn string(&mut self) -> Result<String, WireError> {
        let len = self.u32()? as usize;
        self.text(len)
    }

    fn signature(&mut self) -> Result<String, WireError> {
        let len = self.take(1)?[0] as usize;
        let s = self.text(len)?;
        check_signature(&s)?;
        Ok(s)
    }

    /// One value of the single complete type `sig` (already checked).
    fn get(&mut self, sig: &[u8], depth: usize) -> Result<Arg, WireError> {
        if depth > MAX_DEPTH {
            return bad("value nested too deeply");
        }
        let Some(&code) = sig.first() else {
            return bad("empty type");
        };
        Ok(match code {
            b'y' => Arg::Byte(self.take(1)?[0]),
            b'b' => match self.u32()? {
                0 => Arg::Bool(false),
                1 => Arg::Bool(true),
                v => return bad(format!("boolean {v} is neither 0 nor 1")),
            },
            b'n' => Arg::I16(i16::from_le_bytes(self.fixed()?)),
            b'q' => Arg::U16(u16::from_le_bytes(self.fixed()?)),
            b'i' => Arg::I32(i32::from_le_bytes(self.fixed()?)),
            b'u' => Arg::U32(self.u32()?),
            b'x' => Arg::I64(i64::from_le_bytes(self.fixed()?)),
            b't' => Arg::U64(u64::from_le_bytes(self.fixed()?)),
            b'd' => Arg::Double(f64::from_le_bytes(self.fixed()?)),
            b's' => Arg::Str(self.string()?),
            b'o' => {
                let p = self.string()?;
                check_object_path(&p)?;
                Arg::Path(p)
            }
            b'g' => Arg::Sig(self.signature()?),
            b'h' => return bad("unix fd in a message (not negotiated)"),
            b'v' => {
                let s = self.signature()?;
                if s.is_empty() || single_type_len(s.as_bytes(), 0)? != s.len() {
                    return bad(format!("variant signature {s:?} is not one complete type"));
                }
                Arg::Variant(Box::new(self.get(s.as_bytes(), depth + 1)?))
            }
            b'a' => {
                let len = self.u32()? as usize;
                if len > MAX_ARRAY {
                    return bad(format!("array of {len} bytes exceeds {MAX_ARRAY}"));
                }
                let elem = &sig[1..single_type_len(sig, 0)?];
                self.align(alignment(elem[0]))?;
                if elem == b"y" {
                    return Ok(Arg::Bytes(self.take(len)?.to_vec()));
                }
                let end = self.pos + len;
                if end > self.buf.len() {
                    return bad(format!("array of {len} bytes runs past the message"));
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.get(elem, depth + 1)?);
                }
                if self.pos != end {
                    return bad("array elements overrun the array length");
                }
                // `elem` came from a checked signature: it is ASCII.
                Arg::Array(String::from_utf8_lossy(elem).into_owned(), items)
            }
            b'(' => {
                self.align(8)?;
                let mut items = Vec::new();
                let mut i = 1;
                while sig.get(i).is_some_and(|&c| c != b')') {
                    let n = single_type_len(&sig[i..], 0)?;
                    items.push(self.get(&sig[i..i + n], depth + 1)?);
                    i += n;
                }
                Arg::Struct(items)
            }
            // Only as an array element, with a checked signature: "{kv}".
            b'{' if sig.len() >= 4 => {
                self.align(8)?;
                let k = self.get(&sig[1..2], depth + 1)?;
                let v = self.get(&sig[2..sig.len() - 1], depth + 1)?;
                Arg::Dict(Box::new(k), Box::new(v))
            }
            c => return bad(format!("unknown type code {:?}", c as char)),
        })
    }

    /// All values of `sig` (a checked signature), which must fill the buffer.
    fn all(&mut self, sig: &str) -> Result<Vec<Arg>, WireError> {
        let b = sig.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let n = single_type_len(&b[i..], 0)?;
            out.push(self.get(&b[i..i + n], 0)?);
            i += n;
        }
        if self.pos != self.buf.len() {
            return bad(format!(
                "{} bytes after the last value",
                self.buf.len() - self.pos
            ));
        }
        Ok(out)
    }
}

/// A D-Bus message: its header fields and its (still marshalled) body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub kind: u8,
    pub flags: u8,
    pub serial: u32,
    pub reply_serial: Option<u32>,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub destination: Option<String>,
    pub sender: Option<String>,
    pub signature: String,
    pub body: Vec<u8>,
    pub(super) big_endian: bool,
}

impl Message {
    pub fn method_call(
        destination: Option<&str>,
        path: &str,
        interface: &str,
        member: &str,
    ) -> Self {
        Message {
            kind: METHOD_CALL,
            path: Some(path.to_owned()),
            interface: Some(interface.to_owned()),
            member: Some(member.to_owned()),
            destination: destination.map(str::to_owned),
            ..Message::default()
        }
    }

    /// Replace the body with `args`, marshalled little-endian.
    pub fn with_args(mut self, args: &[Arg]) -> Self {
        let mut w = Writer::default();
        args.iter().for_each(|a| w.put(a));
        self.signature = args.iter().map(Arg::signature).collect();
        self.body = w.buf;
        self.big_endian = false;
        self
    }

    /// The body's values (checked against the signature).
    pub fn args(&self) -> Result<Vec<Arg>, WireError> {
        Reader {
            buf: &self.body,
            pos: 0,
            big: self.big_endian,
        }
        .all(&self.signature)
    }

    /// `interface.member`, or what the message has of it.
    pub fn method_name(&self) -> String {
        match (&self.interface, &self.member) {
            (Some(i), Some(m)) => format!("{i}.{m}"),
            (None, Some(m)) => m.clone(),
            _ => String::from("(no member)"),
        }
    }

    /// The whole message, little-endian, with `serial`.
    pub fn encode(&self, serial: u32) -> Result<Vec<u8>, WireError> {
        if self.big_endian {
            return bad("re-encoding a big-endian body is not supported");
        }
        check_signature(&self.signature)?;
        let mut fields = Vec::new();
        let mut field = |code: u8, v: Option<Arg>| {
            if let Some(v) = v {
                fields.push(Arg::Struct(vec![
                    Arg::Byte(code),
                    Arg::Variant(Box::new(v)),
                ]));
            }
        };
        field(F_PATH, self.path.clone().map(Arg::Path));
        field(F_INTERFACE, self.interface.clone().map(Arg::Str));
        field(F_MEMBER, self.member.clone().map(Arg::Str));
        field(F_ERROR_NAME, self.error_name.clone().map(Arg::Str));
        field(F_REPLY_SERIAL, self.reply_serial.map(Arg::U32));
        field(F_DESTINATION, self.destination.clone().map(Arg::Str));
        field(F_SENDER, self.sender.clone().map(Arg::Str));
        if !self.signature.is_empty() {
            field(F_SIGNATURE, Some(Arg::Sig(self.signature.clone())));
        }
        let mut w = Writer::default();
        w.buf.extend_from_slice(&[b'l', self.kind, self.flags, 1]);
        w.u32(self.body.len() as u32);
        w.u32(serial);
        w.put(&Arg::Array("(yv)".into(), fields));
        w.pad(8);
        w.buf.extend_from_slice(&self.body);
        if w.buf.len() > MAX_MESSAGE {
            return bad(format!(
                "message of {} bytes exceeds {MAX_MESSAGE}",
                w.buf.len()
            ));
        }
        Ok(w.buf)
    }

    /// The total length of the message whose first 16 bytes are `head`.
    pub fn frame_len(head: &[u8; 16]) -> Result<usize, WireError> {
        let big = match head[0] {
            b'l' => false,
            b'B' => true,
            c => return bad(format!("unknown byte order {c:#04x}")),
        };
        if head[3] != 1 {
            return bad(format!("protocol version {} (not 1)", head[3]));
        }
        let word = |i: usize| {
            let b = [head[i], head[i + 1], head[i + 2], head[i + 3]];
            (if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }) as usize
        };
        let (body, fields) = (word(4), word(12));
        if body > MAX_MESSAGE || fields > MAX_MESSAGE {
            return bad(format!("message exceeds {MAX_MESSAGE} bytes"));
        }
        let total = (16 + fields).next_multiple_of(8) + body;
        if total > MAX_MESSAGE {
            return bad(format!("message of {total} bytes exceeds {MAX_MESSAGE}"));
        }
        Ok(total)
    }

    /// Parse one whole message (exactly `frame_len` bytes).
    pub fn decode(buf: &[u8]) -> Result<Message, WireError> {
        let Some(head) = buf.first_chunk::<16>() else {
            return bad("message shorter than its 16-byte header");
        };
        let total = Message::frame_len(head)?;
        if buf.len() != total {
            return bad(format!(
                "message is {} bytes, its header says {total}",
                buf.len()
            ));
        }
        let mut r = Reader {
            buf,
            pos: 4,
            big: head[0] == b'B',
        };
        let body_len = r.u32()? as usize;
        let serial = r.u32()?;
        if serial == 0 {
            return bad("serial 0");
        }
        let mut m = Message {
            kind: head[1],
            flags: head[2],
            serial,
            big_endian: r.big,
            ..Message::default()
        };
        let Arg::Array(_, fields) = r.get(b"a(yv)", 0)? else {
            return bad("header fields are not an array");
        };
        for f in fields {
            let Arg::Struct(f) = f else {
                return bad("header field is not a struct");
            };
            let (Some(Arg::Byte(code)), Some(Arg::Variant(v))) = (f.first(), f.get(1)) else {
                return bad("header field is not (yv)");
            };
            let v = *v.clone();
            match (code, v) {
                (&F_PATH, Arg::Path(p)) => m.path = Some(p),
                (&F_INTERFACE, Arg::Str(s)) => m.interface = Some(s),
                (&F_MEMBER, Arg::Str(s)) => m.member = Some(s),
                (&F_ERROR_NAME, Arg::Str(s)) => m.error_name = Some(s),
                (&F_REPLY_SERIAL, Arg::U32(u)) => m.reply_serial = Some(u),
                (&F_DESTINATION, Arg::Str(s)) => m.destination = Some(s),
                (&F_SENDER, Arg::Str(s)) => m.sender = Some(s),
                (&F_SIGNATURE, Arg::Sig(s)) => m.signature = s,
                (&F_UNIX_FDS, Arg::U32(0)) => {}
                (&F_UNIX_FDS, Arg::U32(_)) => return bad("unix fds in a message (not negotiated)"),
                (1..=9, _) => return bad(format!("header field {code} has the wrong type")),
                _ => {} // unknown fields are ignored, as the specification says
            }
        }
        r.align(8)?;
        m.body = r.take(body_len)?.to_vec();
        let required = match m.kind {
            METHOD_CALL => m.path.is_some() && m.member.is_some(),
            METHOD_RETURN => m.reply_serial.is_some(),
            ERROR => m.reply_serial.is_some() && m.error_name.is_some(),
            SIGNAL => m.path.is_some() && m.interface.is_some() && m.member.is_some(),
            _ => true, // unknown types are ignored by the connection
        };
        if !required {
            return bad(format!(
                "message of type {} lacks a required header field",
                m.kind
            ));
        }
        if m.signature.is_empty() && !m.body.is_empty() {
            return bad("message has a body but no signature");
        }
        Ok(m)
    }
}
