//! Runtime options from containerd, decoded by type URL:
//! `containerd.runc.v1.Options` (config.toml `[...options]`, `ctr
//! --runc-binary`), the legacy `containerd.linux.runc.CreateOptions`, and
//! CRI's `runtimeoptions.v1.Options` (a TOML file path or body with the
//! same keys). Options that make no sense for oxrun are refused, not
//! silently ignored.

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::CodedInputStream;
use containerd_shim_protos::shim::oci::Options as RuncOptions;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptionsError {
    #[error("options {type_url}: {msg}")]
    Decode { type_url: String, msg: String },
    #[error("options: unknown type {0}")]
    UnknownType(String),
    #[error("options config_path {path}: {msg}")]
    ConfigPath { path: String, msg: String },
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Options {
    pub no_pivot_root: bool,
    pub no_new_keyring: bool,
    pub io_uid: u32,
    pub io_gid: u32,
    /// The state root for libcontainer; empty: the default.
    pub root: String,
    pub shim_cgroup: String,
    /// `SystemdCgroup = true`: the systemd cgroup driver.
    pub systemd_cgroup: bool,
    /// runc's `CriuPath` (containerd 1.6's `criu_path`, field 8): the criu
    /// binary for checkpoint and restore; empty: `criu` on PATH.
    pub criu_path: String,
    /// runc's `CriuWorkPath`: criu's log and work files on restore.
    pub criu_work_path: String,
}

fn decode_err(type_url: &str) -> impl Fn(String) -> OptionsError + '_ {
    move |msg| OptionsError::Decode {
        type_url: type_url.to_string(),
        msg,
    }
}

pub fn decode(any: Option<&Any>) -> Result<Options, OptionsError> {
    let Some(a) = any else {
        return Ok(Options::default());
    };
    if a.type_url.is_empty() && a.value.is_empty() {
        return Ok(Options::default());
    }
    let name = a.type_url.rsplit('/').next().unwrap_or_default();
    let err = decode_err(&a.type_url);
    let o = match name {
        "containerd.runc.v1.Options" => {
            let r: RuncOptions =
                containerd_shim_protos::protobuf::Message::parse_from_bytes(&a.value)
                    .map_err(|e| err(e.to_string()))?;
            Options {
                systemd_cgroup: r.systemd_cgroup,
                no_pivot_root: r.no_pivot_root,
                no_new_keyring: r.no_new_keyring,
                io_uid: r.io_uid,
                io_gid: r.io_gid,
                root: r.root,
                shim_cgroup: r.shim_cgroup,
                criu_path: criu_path(&a.value).map_err(&err)?,
                criu_work_path: r.criu_work_path,
            }
        }
        "containerd.linux.runc.CreateOptions" => create_options(&a.value).map_err(&err)?,
        "runtimeoptions.v1.Options" => cri_options(&a.value).map_err(&err)??,
        other => return Err(OptionsError::UnknownType(other.to_string())),
    };
    Ok(o)
}

/// `criu_path` (field 8 of containerd 1.6's `containerd.runc.v1.Options`,
/// reserved since, so absent from the generated type).
fn criu_path(b: &[u8]) -> Result<String, String> {
    let mut path = String::new();
    for (num, f) in fields(b)? {
        if let (8, Field::Bytes(v)) = (num, f) {
            path = text(v)?;
        }
    }
    Ok(path)
}

/// Walk the fields of a protobuf message: (field number, wire value).
pub(crate) enum Field {
    Varint(u64),
    Bytes(Vec<u8>),
}

pub(crate) fn fields(b: &[u8]) -> Result<Vec<(u32, Field)>, String> {
    let mut s = CodedInputStream::from_bytes(b);
    let mut out = Vec::new();
    while !s.eof().map_err(|e| e.to_string())? {
        let tag = s.read_raw_varint32().map_err(|e| e.to_string())?;
        let (num, wt) = (tag >> 3, tag & 7);
        let f = match wt {
            0 => Field::Varint(s.read_raw_varint64().map_err(|e| e.to_string())?),
            2 => Field::Bytes(s.read_bytes().map_err(|e| e.to_string())?),
            1 => {
                s.read_raw_little_endian64().map_err(|e| e.to_string())?;
                continue;
            }
            5 => {
                s.read_raw_little_endian32().map_err(|e| e.to_string())?;
                continue;
            }
            w => return Err(format!("unsupported wire type {w} in field {num}")),
        };
        out.push((num, f));
    }
    Ok(out)
}

pub(crate) fn text(b: Vec<u8>) -> Result<String, String> {
    String::from_utf8(b).map_err(|e| e.to_string())
}

/// `containerd.linux.runc.CreateOptions` (runctypes/runc.proto): no_pivot_root 1,
/// no_new_keyring 8, shim_cgroup 9, io_uid 10, io_gid 11.
fn create_options(b: &[u8]) -> Result<Options, String> {
    let mut o = Options::default();
    for (num, f) in fields(b)? {
        match (num, f) {
            (1, Field::Varint(v)) => o.no_pivot_root = v != 0,
            (8, Field::Varint(v)) => o.no_new_keyring = v != 0,
            (9, Field::Bytes(v)) => o.shim_cgroup = text(v)?,
            (10, Field::Varint(v)) => o.io_uid = v as u32,
            (11, Field::Varint(v)) => o.io_gid = v as u32,
            _ => {}
        }
    }
    Ok(o)
}

/// CRI's `runtimeoptions.v1.Options{type_url 1, config_path 2, config_body 3}`:
/// the runc options as TOML.
fn cri_options(b: &[u8]) -> Result<Result<Options, OptionsError>, String> {
    let (mut path, mut body) = (String::new(), String::new());
    for (num, f) in fields(b)? {
        match (num, f) {
            (2, Field::Bytes(v)) => path = text(v)?,
            (3, Field::Bytes(v)) => body = text(v)?,
            _ => {}
        }
    }
    if body.is_empty() && !path.is_empty() {
        body = match std::fs::read_to_string(&path) {
            Ok(b) => b,
            Err(e) => {
                return Ok(Err(OptionsError::ConfigPath {
                    path,
                    msg: e.to_string(),
                }))
            }
        };
    }
    Ok(from_toml(&body))
}

/// The flat `Key = value` subset of TOML that runc option files use.
pub fn from_toml(body: &str) -> Result<Options, OptionsError> {
    let mut o = Options::default();
    for line in body.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('[') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim().trim_matches('"'));
        let flag = v == "true";
        match k {
            "NoPivotRoot" => o.no_pivot_root = flag,
            "NoNewKeyring" => o.no_new_keyring = flag,
            "Root" => o.root = v.to_string(),
            "ShimCgroup" => o.shim_cgroup = v.to_string(),
            "IoUid" => o.io_uid = v.parse().unwrap_or(0),
            "IoGid" => o.io_gid = v.parse().unwrap_or(0),
            "SystemdCgroup" => o.systemd_cgroup = flag,
            "CriuPath" => o.criu_path = v.to_string(),
            "CriuWorkPath" => o.criu_work_path = v.to_string(),
            _ => {}
        }
    }
    Ok(o)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::Message;

    pub(crate) fn any(url: &str, value: Vec<u8>) -> Any {
        let mut a = Any::new();
        a.type_url = url.into();
        a.value = value;
        a
    }

    #[test]
    fn runc_options() {
        let mut r = RuncOptions::new();
        r.root = "/run/x".into();
        r.io_uid = 7;
        r.binary_name = "/usr/bin/oxrun".into();
        let o = decode(Some(&any(
            "containerd.runc.v1.Options",
            r.write_to_bytes().unwrap(),
        )))
        .unwrap();
        assert_eq!((o.root.as_str(), o.io_uid), ("/run/x", 7));
        assert!(!o.systemd_cgroup);
        r.systemd_cgroup = true;
        let o = decode(Some(&any(
            "types.containerd.io/containerd.runc.v1.Options",
            r.write_to_bytes().unwrap(),
        )))
        .unwrap();
        assert!(o.systemd_cgroup);
        // containerd 1.6's criu_path (8), gone from the newer proto.
        let mut v = r.write_to_bytes().unwrap();
        v.extend_from_slice(&[0x42, 5]);
        v.extend_from_slice(b"/criu");
        let o = decode(Some(&any("containerd.runc.v1.Options", v))).unwrap();
        assert_eq!(o.criu_path, "/criu");
    }

    #[test]
    fn legacy_create_options() {
        // no_pivot_root=true (1), io_uid=1000 (10), shim_cgroup="/x" (9)
        let v = vec![0x08, 1, 0x50, 0xe8, 0x07, 0x4a, 2, b'/', b'x'];
        let o = decode(Some(&any("containerd.linux.runc.CreateOptions", v))).unwrap();
        assert!(o.no_pivot_root);
        assert_eq!((o.io_uid, o.shim_cgroup.as_str()), (1000, "/x"));
    }

    #[test]
    fn cri_body() {
        let body = b"Root = \"/r\"\nIoGid = 5\nSystemdCgroup = true\nCriuPath = \"/c\"\n";
        let mut v = vec![0x1a, body.len() as u8];
        v.extend_from_slice(body);
        let o = decode(Some(&any("runtimeoptions.v1.Options", v))).unwrap();
        assert_eq!((o.root.as_str(), o.io_gid), ("/r", 5));
        assert!(o.systemd_cgroup);
        assert_eq!(o.criu_path, "/c");
    }

    #[test]
    fn unknown_type_is_an_error() {
        assert_eq!(
            decode(Some(&any("x.Y", vec![]))),
            Err(OptionsError::UnknownType("x.Y".into()))
        );
        assert_eq!(decode(None), Ok(Options::default()));
    }
}
