//! What this build really supports, as the runtime-spec's features.md
//! document: printed by `oxrun features` and sent by the shim's `-info`
//! (containerd 2.x reads it from there). The lists come from the tables
//! the code itself works from (mount option words, namespace kinds,
//! seccomp names, memory policy modes); integration/tests/features.rs
//! runs a container for each claim.

use serde_json::{json, Value};

/// The spec's name of a value oci-spec serializes as a string.
fn spec_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The features document (runtime-spec features.md).
pub fn features() -> Value {
    let (mpol_modes, mpol_flags) = crate::process::mempolicy::names();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": crate::rootfs::options::known(),
        "linux": {
            "namespaces": crate::namespaces::KINDS.iter().map(spec_name).collect::<Vec<_>>(),
            "capabilities": caps::all().iter().map(|c| c.to_string()).collect::<std::collections::BTreeSet<_>>(),
            // rdma: linux.resources.rdma is applied (cgroups/resources.rs, v1
            // and v2); systemd: the driver in cgroups/systemd.rs (v2 hosts),
            // with the user's own systemd when rootless (systemdUser).
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": true, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": crate::seccomp::ACTIONS,
                "operators": crate::seccomp::OPERATORS,
                "archs": crate::seccomp::ARCHS,
                "knownFlags": crate::seccomp::FLAGS,
                "supportedFlags": crate::seccomp::FLAGS
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {
                "enabled": crate::intel_rdt::SUPPORTED,
                "schemata": crate::intel_rdt::SUPPORTED,
                "monitoring": crate::intel_rdt::SUPPORTED
            },
            "memoryPolicy": {"modes": mpol_modes, "flags": mpol_flags},
            "mountExtensions": {"idmap": {"enabled": true}},
            "netDevices": {"enabled": true}
        },
        // config.json annotations that change what the runtime does:
        // checkpoint/restore read the criu configuration file this names.
        "potentiallyUnsafeConfigAnnotations": [crate::checkpoint::CRIU_CONFIG_ANNOTATION],
        "annotations": {
            "org.opencontainers.runc.version": "compatible",
            "io.github.oxrun.version": env!("CARGO_PKG_VERSION"),
            // Not a runtime-spec field: checkpoint/restore go through criu.
            "io.github.oxrun.checkpoint": "criu"
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_come_from_the_tables() {
        let f = super::features();
        let ns: Vec<&str> = f["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(
            ns,
            ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]
        );
        let opts = f["mountOptions"].as_array().expect("mountOptions");
        for w in ["idmap", "ridmap", "tmpcopyup", "rro", "bind"] {
            assert!(opts.iter().any(|o| o == w), "{w}");
        }
        assert_eq!(
            f["linux"]["memoryPolicy"]["modes"].as_array().map(Vec::len),
            Some(7)
        );
    }
}
