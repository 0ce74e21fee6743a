//! The command line containerd gives a shim, in Go's `flag` syntax:
//! `-namespace NS -address ADDR -publish-binary BIN -id ID [-bundle DIR]
//! [-debug] start|delete`, or `-info` alone (containerd 2.x). Flags may be
//! written `-f v`, `-f=v`, `--f v`.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArgsError {
    #[error("flag -{0} needs a value")]
    MissingValue(String),
    #[error("unknown flag -{0}")]
    UnknownFlag(String),
    #[error("unexpected argument {0:?}")]
    Extra(String),
}

#[derive(Debug, Default, PartialEq)]
pub struct Args {
    pub namespace: String,
    pub address: String,
    pub publish_binary: String,
    pub id: String,
    pub bundle: String,
    pub socket: String,
    pub debug: bool,
    pub version: bool,
    /// `-info` (containerd 2.x): print a `RuntimeInfo` protobuf and exit.
    pub info: bool,
    /// `start`, `delete`, or empty.
    pub action: String,
}

pub fn parse<I: IntoIterator<Item = String>>(argv: I) -> Result<Args, ArgsError> {
    let mut a = Args::default();
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix('-') else {
            if !a.action.is_empty() {
                return Err(ArgsError::Extra(arg));
            }
            a.action = arg;
            continue;
        };
        let flag = flag.strip_prefix('-').unwrap_or(flag);
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        match name {
            "debug" => a.debug = inline.map(|v| v != "false").unwrap_or(true),
            "v" | "version" => a.version = true,
            "info" => a.info = inline.map(|v| v != "false").unwrap_or(true),
            "namespace" | "address" | "publish-binary" | "id" | "bundle" | "socket" => {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .ok_or_else(|| ArgsError::MissingValue(name.to_string()))?,
                };
                let slot = match name {
                    "namespace" => &mut a.namespace,
                    "address" => &mut a.address,
                    "publish-binary" => &mut a.publish_binary,
                    "id" => &mut a.id,
                    "bundle" => &mut a.bundle,
                    _ => &mut a.socket,
                };
                *slot = v;
            }
            other => return Err(ArgsError::UnknownFlag(other.to_string())),
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Args, ArgsError> {
        parse(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn containerd_16_start_line() {
        let a = p(&[
            "-namespace",
            "k8s.io",
            "-address",
            "/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "abc",
            "-debug",
            "start",
        ])
        .unwrap();
        assert_eq!(a.namespace, "k8s.io");
        assert_eq!(a.address, "/run/containerd/containerd.sock");
        assert_eq!(a.id, "abc");
        assert!(a.debug);
        assert_eq!(a.action, "start");
    }

    #[test]
    fn inline_values_and_double_dash() {
        let a = p(&["--id=x", "-bundle=/b", "-debug=false", "delete"]).unwrap();
        assert_eq!(
            (a.id.as_str(), a.bundle.as_str(), a.debug),
            ("x", "/b", false)
        );
        assert_eq!(a.action, "delete");
    }

    #[test]
    fn containerd_2_info() {
        let a = p(&["-info"]).unwrap();
        assert!(a.info);
        assert_eq!(a.action, "");
    }

    #[test]
    fn errors() {
        assert_eq!(p(&["-id"]), Err(ArgsError::MissingValue("id".into())));
        assert_eq!(p(&["-nope"]), Err(ArgsError::UnknownFlag("nope".into())));
        assert_eq!(p(&["start", "x"]), Err(ArgsError::Extra("x".into())));
    }
}
