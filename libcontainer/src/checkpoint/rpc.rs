//! The few messages of criu's RPC protocol (`images/rpc.proto` in criu,
//! proto2) that checkpoint and restore send and receive, encoded by hand:
//! the protobuf wire format needs only varints and length-delimited
//! fields here, which costs a few KiB of code instead of a protobuf
//! runtime and generated types in every binary.

/// Request and response types (`criu_req_type`).
pub const REQ_DUMP: u64 = 1;
pub const REQ_RESTORE: u64 = 2;
pub const REQ_PRE_DUMP: u64 = 4;
pub const REQ_NOTIFY: u64 = 6;
pub const REQ_FEATURE_CHECK: u64 = 9;
pub const REQ_VERSION: u64 = 10;

/// `criu_cg_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgMode {
    Ignore = 0,
    Soft = 3,
    Full = 4,
    Strict = 5,
    Default = 6,
}

impl CgMode {
    /// runc's `--manage-cgroups-mode` values.
    pub fn parse(s: &str) -> Option<CgMode> {
        Some(match s {
            "" => CgMode::Default,
            "soft" => CgMode::Soft,
            "full" => CgMode::Full,
            "strict" => CgMode::Strict,
            "ignore" => CgMode::Ignore,
            _ => return None,
        })
    }
}

/// Encoder for one message: fields are appended in any order.
#[derive(Default)]
pub struct Enc(Vec<u8>);

const VARINT: u64 = 0;
const LEN: u64 = 2;

impl Enc {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u64) {
        self.varint(u64::from(field) << 3 | wire);
    }

    pub fn u64(&mut self, field: u32, v: u64) -> &mut Self {
        self.key(field, VARINT);
        self.varint(v);
        self
    }

    /// int32: negative values are sign-extended to ten bytes, as proto2 does.
    pub fn i32(&mut self, field: u32, v: i32) -> &mut Self {
        self.u64(field, i64::from(v) as u64)
    }

    pub fn bool(&mut self, field: u32, v: bool) -> &mut Self {
        self.u64(field, u64::from(v))
    }

    /// A bool sent only when true (false is criu's default for every flag
    /// we send this way).
    pub fn flag(&mut self, field: u32, v: bool) -> &mut Self {
        if v {
            self.bool(field, true);
        }
        self
    }

    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, LEN);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    pub fn str(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }

    pub fn msg(&mut self, field: u32, m: &Enc) -> &mut Self {
        self.bytes(field, &m.0)
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// A decoded field value.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of one message, in order; None if the bytes are malformed.
fn fields(buf: &[u8]) -> Option<Vec<(u32, Val<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        let field = u32::try_from(key >> 3).ok()?;
        let val = match key & 7 {
            0 => Val::Int(read_varint(buf, &mut pos)?),
            1 => {
                pos = pos.checked_add(8).filter(|p| *p <= buf.len())?;
                continue;
            }
            2 => {
                let n = usize::try_from(read_varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(n).filter(|e| *e <= buf.len())?;
                let v = &buf[pos..end];
                pos = end;
                Val::Bytes(v)
            }
            5 => {
                pos = pos.checked_add(4).filter(|p| *p <= buf.len())?;
                continue;
            }
            _ => return None,
        };
        out.push((field, val));
    }
    Some(out)
}

/// What we read from a `criu_resp`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resp {
    pub typ: u64,
    pub success: bool,
    pub cr_errno: Option<i32>,
    pub cr_errmsg: Option<String>,
    /// `restore.pid`: the restored tree's root, as seen from the caller.
    pub restore_pid: Option<i32>,
    /// `notify.script` and `notify.pid`.
    pub notify_script: Option<String>,
    pub notify_pid: Option<i32>,
    /// `features.mem_track`, `features.lazy_pages`.
    pub mem_track: Option<bool>,
    pub lazy_pages: Option<bool>,
    /// `version`: major, minor, sublevel.
    pub version: Option<(i32, i32, i32)>,
}

fn as_i32(v: u64) -> i32 {
    v as i64 as i32
}

impl Resp {
    pub fn decode(buf: &[u8]) -> Option<Resp> {
        let mut r = Resp::default();
        for (f, v) in fields(buf)? {
            match (f, v) {
                (1, Val::Int(t)) => r.typ = t,
                (2, Val::Int(s)) => r.success = s != 0,
                (4, Val::Bytes(m)) => {
                    for (f, v) in fields(m)? {
                        if let (1, Val::Int(p)) = (f, v) {
                            r.restore_pid = Some(as_i32(p));
                        }
                    }
                }
                (5, Val::Bytes(m)) => {
                    for (f, v) in fields(m)? {
                        match (f, v) {
                            (1, Val::Bytes(s)) => {
                                r.notify_script = Some(String::from_utf8_lossy(s).into_owned())
                            }
                            (2, Val::Int(p)) => r.notify_pid = Some(as_i32(p)),
                            _ => {}
                        }
                    }
                }
                (7, Val::Int(e)) => r.cr_errno = Some(as_i32(e)),
                (8, Val::Bytes(m)) => {
                    for (f, v) in fields(m)? {
                        match (f, v) {
                            (1, Val::Int(b)) => r.mem_track = Some(b != 0),
                            (2, Val::Int(b)) => r.lazy_pages = Some(b != 0),
                            _ => {}
                        }
                    }
                }
                (9, Val::Bytes(s)) => r.cr_errmsg = Some(String::from_utf8_lossy(s).into_owned()),
                (10, Val::Bytes(m)) => {
                    let (mut maj, mut min, mut sub) = (0, 0, 0);
                    for (f, v) in fields(m)? {
                        match (f, v) {
                            (1, Val::Int(x)) => maj = as_i32(x),
                            (2, Val::Int(x)) => min = as_i32(x),
                            (4, Val::Int(x)) => sub = as_i32(x),
                            _ => {}
                        }
                    }
                    r.version = Some((maj, min, sub));
                }
                _ => {}
            }
        }
        Some(r)
    }
}

/// `criu_opts` field numbers.
pub mod opt {
    pub const IMAGES_DIR_FD: u32 = 1;
    pub const PID: u32 = 2;
    pub const LEAVE_RUNNING: u32 = 3;
    pub const EXT_UNIX_SK: u32 = 4;
    pub const TCP_ESTABLISHED: u32 = 5;
    pub const EVASIVE_DEVICES: u32 = 6;
    pub const SHELL_JOB: u32 = 7;
    pub const FILE_LOCKS: u32 = 8;
    pub const LOG_LEVEL: u32 = 9;
    pub const LOG_FILE: u32 = 10;
    pub const PS: u32 = 11;
    pub const NOTIFY_SCRIPTS: u32 = 12;
    pub const ROOT: u32 = 13;
    pub const PARENT_IMG: u32 = 14;
    pub const TRACK_MEM: u32 = 15;
    pub const AUTO_DEDUP: u32 = 16;
    pub const WORK_DIR_FD: u32 = 17;
    pub const LINK_REMAP: u32 = 18;
    pub const EXT_MNT: u32 = 23;
    pub const MANAGE_CGROUPS: u32 = 24;
    pub const CG_ROOT: u32 = 25;
    pub const RST_SIBLING: u32 = 26;
    pub const INHERIT_FD: u32 = 27;
    pub const MANAGE_CGROUPS_MODE: u32 = 34;
    pub const EXTERNAL: u32 = 37;
    pub const EMPTY_NS: u32 = 38;
    pub const JOIN_NS: u32 = 39;
    pub const FREEZE_CGROUP: u32 = 44;
    pub const TCP_SKIP_IN_FLIGHT: u32 = 46;
    pub const LAZY_PAGES: u32 = 48;
    pub const ORPHAN_PTS_MASTER: u32 = 50;
    pub const CONFIG_FILE: u32 = 51;
}

/// A `key`/`value` pair message (ext_mount_map, inherit_fd, cgroup_root,
/// join_namespace share this shape: fields 1 and 2).
pub fn pair_str(a: &str, b: &str) -> Enc {
    let mut m = Enc::default();
    m.str(1, a).str(2, b);
    m
}

/// `inherit_fd { key = 1; fd = 2 }`.
pub fn inherit_fd(key: &str, fd: i32) -> Enc {
    let mut m = Enc::default();
    m.str(1, key).i32(2, fd);
    m
}

/// `criu_req { type, opts }`.
pub fn request(typ: u64, opts: Option<&Enc>) -> Vec<u8> {
    let mut r = Enc::default();
    r.u64(1, typ);
    if let Some(o) = opts {
        r.msg(2, o);
    }
    r.into_bytes()
}

/// The answer to a notification: `criu_req { type = NOTIFY, notify_success }`.
pub fn notify_ack(ok: bool) -> Vec<u8> {
    let mut r = Enc::default();
    r.u64(1, REQ_NOTIFY).bool(3, ok);
    r.into_bytes()
}

/// `criu_req { type = FEATURE_CHECK, features { mem_track, lazy_pages } }`.
pub fn feature_check(mem_track: bool, lazy_pages: bool) -> Vec<u8> {
    let mut f = Enc::default();
    f.flag(1, mem_track).flag(2, lazy_pages);
    let mut r = Enc::default();
    r.u64(1, REQ_FEATURE_CHECK).msg(5, &f);
    r.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_negative_int32() {
        let mut e = Enc::default();
        e.u64(1, 300).i32(2, -1).bool(3, true);
        assert_eq!(
            e.into_bytes(),
            [
                0x08, 0xac, 0x02, // field 1 = 300
                0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // -1
                0x18, 0x01
            ]
        );
    }

    #[test]
    fn nested_request() {
        let mut o = Enc::default();
        o.i32(opt::IMAGES_DIR_FD, 5)
            .msg(opt::EXT_MNT, &pair_str("/a", "/b"));
        let req = request(REQ_DUMP, Some(&o));
        assert_eq!(
            req,
            [
                0x08, 0x01, 0x12, 0x0d, 0x08, 0x05, 0xba, 0x01, 0x08, 0x0a, 0x02, b'/', b'a', 0x12,
                0x02, b'/', b'b'
            ]
        );
    }

    #[test]
    fn decode_response() {
        // type RESTORE, success, restore { pid 1234 }, notify { "post-restore", 1234 },
        // an unknown fixed64 field 12, cr_errmsg "x".
        let mut n = Enc::default();
        n.str(1, "post-restore").i32(2, 1234);
        let mut rp = Enc::default();
        rp.i32(1, 1234);
        let mut e = Enc::default();
        e.u64(1, REQ_RESTORE).bool(2, true).msg(4, &rp).msg(5, &n);
        let mut b = e.into_bytes();
        b.extend_from_slice(&[0x61, 1, 2, 3, 4, 5, 6, 7, 8]);
        b.extend_from_slice(&[0x4a, 1, b'x']);
        let r = Resp::decode(&b).expect("decodes");
        assert_eq!(r.typ, REQ_RESTORE);
        assert!(r.success);
        assert_eq!(r.restore_pid, Some(1234));
        assert_eq!(r.notify_script.as_deref(), Some("post-restore"));
        assert_eq!(r.notify_pid, Some(1234));
        assert_eq!(r.cr_errmsg.as_deref(), Some("x"));
    }

    #[test]
    fn malformed_is_refused() {
        assert!(Resp::decode(&[0x0a, 0x05, b'a']).is_none());
        assert!(Resp::decode(&[0x08]).is_none());
        assert!(Resp::decode(&[0x0b]).is_none());
    }
}
