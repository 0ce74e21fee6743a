//! `oxrun spec` (a default config.json, as runc writes it).

use std::path::Path;

use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Spec};
use serde_json::{json, Value};

/// The capabilities `runc spec` grants, in its order (oci-spec keeps a
/// set, whose order changes from run to run).
const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// A default config.json with `runc spec`'s namespaces, device rule and
/// capabilities (see the comparison in integration/tests/runc_compat_cli.rs).
pub fn default_spec(rootless: bool) -> Result<Value, String> {
    let spec = Spec::default();
    let mut v = serde_json::to_value(&spec).map_err(|e| e.to_string())?;
    v["ociVersion"] = json!(libcontainer::state::OCI_VERSION);
    v["process"]["terminal"] = json!(true);
    v["process"]["args"] = json!(["sh"]);
    v["hostname"] = json!("oxrun");
    // runc spec has no annotations at all (oci-spec writes an empty map).
    if v["annotations"].as_object().is_some_and(|a| a.is_empty()) {
        if let Some(o) = v.as_object_mut() {
            o.remove("annotations");
        }
    }
    // Nothing inheritable or ambient by default (CVE-2022-29162).
    if let Some(c) = v["process"]["capabilities"].as_object_mut() {
        c.remove("inheritable");
        c.remove("ambient");
        for set in ["bounding", "effective", "permitted"] {
            c.insert(set.into(), json!(DEFAULT_CAPS));
        }
    }
    // runc spec has no cgroup namespace: tools that add their own would
    // otherwise fail with "duplicate namespace cgroup".
    if let Some(a) = v["linux"]["namespaces"].as_array_mut() {
        a.retain(|n| n["type"] != "cgroup");
    }
    // runc spec's device rule: deny everything (the runtime then allows
    // its default devices).
    v["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}]);
    if rootless {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let ns = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::User)
            .build()
            .map_err(|e| e.to_string())?;
        let map = |host: u32| {
            LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host)
                .size(1u32)
                .build()
        };
        if let Some(a) = v["linux"]["namespaces"].as_array_mut() {
            a.retain(|n| n["type"] != "network");
            a.push(serde_json::to_value(ns).map_err(|e| e.to_string())?);
        }
        v["linux"]["uidMappings"] =
            json!([serde_json::to_value(map(uid).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?]);
        v["linux"]["gidMappings"] =
            json!([serde_json::to_value(map(gid).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?]);
        if let Some(l) = v["linux"].as_object_mut() {
            l.remove("resources");
        }
        if let Some(mounts) = v["mounts"].as_array_mut() {
            for m in mounts.iter_mut() {
                if m["destination"] == "/sys" {
                    *m = json!({"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
                }
                // get_mut, not indexing: `m["options"]` would add a null.
                if let Some(opts) = m.get_mut("options").and_then(Value::as_array_mut) {
                    opts.retain(|o| o != "gid=5");
                }
            }
        }
    }
    Ok(v)
}

/// Put a seccomp profile into `spec` (`linux.seccomp`): `default` is
/// oxrun's default profile, anything else a file holding a profile (plain
/// OCI, or a template like seccomp-profiles/default.json). Templates are
/// resolved for the process's bounding capabilities.
pub fn add_seccomp(spec: &mut Value, profile: &str) -> Result<(), String> {
    let caps: Vec<String> = spec["process"]["capabilities"]["bounding"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let resolved = if profile == "default" {
        libcontainer::seccomp::profile::default_profile(&caps)
    } else {
        let data = std::fs::read(profile).map_err(|e| format!("--seccomp {profile}: {e}"))?;
        let template: Value = serde_json::from_slice(&data)
            .map_err(|e| format!("--seccomp {profile}: invalid JSON: {e}"))?;
        libcontainer::seccomp::profile::resolve(&template, &caps, profile)
    }
    .map_err(|e| e.to_string())?;
    spec["linux"]["seccomp"] = resolved;
    Ok(())
}

/// `oxrun spec`: write `<bundle>/config.json`, with the seccomp profile
/// `seccomp` (see [`add_seccomp`]) if given.
pub fn write_spec(bundle: &Path, rootless: bool, seccomp: Option<&str>) -> Result<(), String> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(format!("File {} exists. Remove it first", path.display()));
    }
    let mut v = default_spec(rootless)?;
    if let Some(p) = seccomp {
        add_seccomp(&mut v, p)?;
    }
    let data = serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?;
    std::fs::write(&path, data + "\n").map_err(|e| format!("write {}: {e}", path.display()))
}
