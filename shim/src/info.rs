//! `-info`: what containerd 2.x asks a shim for before it uses a runtime
//! (`PluginInfo`, for CRI's checks of e.g. `rro` and idmap mounts). stdin
//! holds the runtime options as a protobuf `Any` (or nothing); stdout gets
//! a protobuf `containerd.types.RuntimeInfo`: the runtime's name and
//! version, the options echoed back, and the runtime-spec features
//! document (the same JSON `oxrun features` prints) in an `Any` whose type
//! URL is the one containerd's typeurl registry gives specs-go's
//! `features.Features`, so containerd decodes it as JSON.

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};

/// The runtime name containerd maps to this binary.
pub const RUNTIME_NAME: &str = "io.containerd.rust.v2";

/// containerd's type URL for the OCI features document (JSON-encoded).
pub const FEATURES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// The encoded `RuntimeInfo` for the options `Any` read from stdin.
pub fn runtime_info(options: &[u8]) -> Result<Vec<u8>, String> {
    let mut info = RuntimeInfo::new();
    info.name = RUNTIME_NAME.to_string();
    let mut version = RuntimeVersion::new();
    version.version = env!("CARGO_PKG_VERSION").to_string();
    info.version = MessageField::some(version);
    if !options.is_empty() {
        let any = Any::parse_from_bytes(options)
            .map_err(|e| format!("runtime options on stdin are not a protobuf Any: {e}"))?;
        if !any.type_url.is_empty() {
            info.options = MessageField::some(any);
        }
    }
    let features = serde_json::to_vec(&libcontainer::features::features())
        .map_err(|e| format!("features: {e}"))?;
    let mut any = Any::new();
    any.type_url = FEATURES_TYPE_URL.to_string();
    any.value = features;
    info.features = MessageField::some(any);
    info.write_to_bytes()
        .map_err(|e| format!("encode RuntimeInfo: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_back_with_the_features_json() {
        let bytes = runtime_info(&[]).unwrap();
        let info = RuntimeInfo::parse_from_bytes(&bytes).unwrap();
        assert_eq!(info.name, RUNTIME_NAME);
        assert_eq!(info.version.version, env!("CARGO_PKG_VERSION"));
        assert!(info.options.is_none());
        assert_eq!(info.features.type_url, FEATURES_TYPE_URL);
        let f: serde_json::Value = serde_json::from_slice(&info.features.value).unwrap();
        assert_eq!(f, libcontainer::features::features());
        assert!(f["mountOptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "rro"));
    }

    #[test]
    fn options_are_echoed_and_garbage_is_refused() {
        let mut opts = containerd_shim_protos::shim::oci::Options::new();
        opts.binary_name = "oxrun".into();
        let mut any = Any::new();
        any.type_url = "containerd.runc.v1.Options".into();
        any.value = opts.write_to_bytes().unwrap();
        let bytes = runtime_info(&any.write_to_bytes().unwrap()).unwrap();
        let info = RuntimeInfo::parse_from_bytes(&bytes).unwrap();
        assert_eq!(*info.options, any);
        assert!(runtime_info(&[0xff, 0xff]).is_err());
    }

    /// Field numbers as containerd's api/types/introspection.proto has
    /// them (name 1, version 2, options 3, features 4): the first bytes
    /// are field 1 with wire type 2 (0x0a), the length, the name.
    #[test]
    fn wire_layout() {
        let bytes = runtime_info(&[]).unwrap();
        assert_eq!(bytes[0], 0x0a);
        assert_eq!(bytes[1] as usize, RUNTIME_NAME.len());
        assert_eq!(&bytes[2..2 + RUNTIME_NAME.len()], RUNTIME_NAME.as_bytes());
        assert_eq!(
            bytes[2 + RUNTIME_NAME.len()],
            0x12,
            "field 2 (version) next"
        );
    }
}
