//! Loading and validating `config.json`.
//!
//! Errors name the JSON field that is wrong (`linux.namespaces[2].type: ...`) so
//! a user can fix the bundle without reading our source. Validation is pure: it
//! never touches the host, so a bad bundle changes nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("open {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {field}: {msg}")]
    Field {
        path: PathBuf,
        field: String,
        msg: String,
    },
    #[error("{field}: {msg}")]
    Invalid { field: String, msg: String },
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        msg: msg.into(),
    }
}

/// A validated spec plus the warnings met while loading it.
#[derive(Debug)]
pub struct Loaded {
    pub spec: Spec,
    pub warnings: Vec<String>,
}

/// Load `<bundle>/config.json` and validate it.
pub fn load(bundle: &Path) -> Result<Loaded, SpecError> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&data, &path)
}

/// Parse and validate config.json bytes; `path` is used in messages only.
pub fn parse(data: &[u8], path: &Path) -> Result<Loaded, SpecError> {
    let mut value: Value = serde_json::from_slice(data).map_err(|source| SpecError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let mut warnings = Vec::new();
    drop_unknown_capabilities(&mut value, &mut warnings);
    if let Some(p) = value.get_mut("process") {
        scheduler_flag_names(p);
    }
    let spec: Spec = typed(&value, path)?;
    validate(&spec)?;
    let flags = spec
        .linux()
        .as_ref()
        .and_then(|l| l.personality().as_ref())
        .and_then(|p| p.flags().as_ref())
        .filter(|f| !f.is_empty());
    if let Some(f) = flags {
        // runc warns too: the runtime-spec defines no flag values yet.
        warnings.push(format!(
            "linux.personality.flags {f:?}: ignored (the runtime-spec defines no personality flags)"
        ));
    }
    Ok(Loaded { spec, warnings })
}

/// Parse a `process.json` for `exec --process`, naming the bad field.
/// Returns the process and warnings: unknown capabilities dropped, and a
/// missing `user` taken as uid 0, gid 0 (runc's default, though the
/// runtime-spec marks `user` required).
pub fn parse_process(
    data: &[u8],
    path: &Path,
) -> Result<(oci_spec::runtime::Process, Vec<String>), SpecError> {
    let mut value: Value = serde_json::from_slice(data).map_err(|source| SpecError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let mut warnings = Vec::new();
    if let Some(obj) = value.as_object_mut() {
        if obj.get("user").is_none_or(Value::is_null) {
            obj.insert("user".into(), serde_json::json!({"uid": 0, "gid": 0}));
            warnings.push(format!(
                "{}: process.user is missing (the runtime-spec marks it required); running as uid 0, gid 0 as runc does",
                path.display()
            ));
        }
    }
    let mut wrapper = serde_json::json!({ "process": value.take() });
    drop_unknown_capabilities(&mut wrapper, &mut warnings);
    scheduler_flag_names(&mut wrapper["process"]);
    Ok((typed(&wrapper["process"], path)?, warnings))
}

/// Deserialize `value` into `T`, naming the field on error. The value is
/// deserialized from its compact text, so the error has a column; the
/// field is the JSON path at that column.
fn typed<T: serde::de::DeserializeOwned>(value: &Value, path: &Path) -> Result<T, SpecError> {
    let text = serde_json::to_vec(value).map_err(|source| SpecError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|e| {
        let field = json_path_at(&text, e.column().saturating_sub(1));
        let msg = e.to_string();
        // serde_json appends " at line L column C": meaningless here.
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        SpecError::Field {
            path: path.to_path_buf(),
            field: if field.is_empty() { ".".into() } else { field },
            msg,
        }
    })
}

/// The path (`process.user.uid`, `mounts[2].type`) of the innermost value
/// containing byte `offset` of compact JSON `text`.
pub(crate) fn json_path_at(text: &[u8], offset: usize) -> String {
    enum Frame {
        Object(Option<String>),
        Array(usize),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    // After a key's ':' we are in its value until ',' or the closing bracket.
    let mut expect_key = false;
    while i < text.len() && i <= offset {
        match text[i] {
            b'{' => {
                stack.push(Frame::Object(None));
                expect_key = true;
            }
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' if i < offset => {
                stack.pop();
                expect_key = false;
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object(k)) => {
                    *k = None;
                    expect_key = true;
                }
                None => {}
            },
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    if text[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if expect_key {
                    if let Some(Frame::Object(k)) = stack.last_mut() {
                        *k = Some(
                            String::from_utf8_lossy(&text[start..i.min(text.len())]).into_owned(),
                        );
                    }
                    expect_key = false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut out = String::new();
    for f in &stack {
        match f {
            Frame::Object(Some(k)) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Frame::Object(None) => {}
            Frame::Array(n) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

/// oci-spec 0.10 spells two of the runtime-spec's `process.scheduler.flags`
/// differently (`SCHED_RESET_ON_FORK`, `SCHED_FLAG_D_L_OVERRUN`) and refuses
/// the spec's own `SCHED_FLAG_RESET_ON_FORK` and `SCHED_FLAG_DL_OVERRUN`:
/// rename those, in a `process` object, to what it reads.
fn scheduler_flag_names(process: &mut Value) {
    let Some(flags) = process
        .pointer_mut("/scheduler/flags")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for f in flags {
        let oci_spec_name = match f.as_str() {
            Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
            Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
            _ => continue,
        };
        *f = Value::from(oci_spec_name);
    }
}

/// The runtime-spec says capabilities that cannot be mapped to the kernel are
/// logged, not fatal; oci-spec rejects them, so we filter them out first.
fn drop_unknown_capabilities(value: &mut Value, warnings: &mut Vec<String>) {
    let Some(caps) = value
        .pointer_mut("/process/capabilities")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (set, list) in caps.iter_mut() {
        if let Some(arr) = list.as_array_mut() {
            arr.retain(|c| {
                // caps 0.5 names exactly 0..=40 (CAP_CHOWN..CAP_CHECKPOINT_RESTORE),
                // as the kernel headers do; case-sensitive, "CAP_" required.
                let known = c
                    .as_str()
                    .is_some_and(|s| s.parse::<caps::Capability>().is_ok());
                if !known {
                    warnings.push(format!(
                        "process.capabilities.{set}: unknown capability {c} ignored"
                    ));
                }
                known
            });
        }
    }
}

fn validate(spec: &Spec) -> Result<(), SpecError> {
    if !spec.version().starts_with("1.") {
        return Err(invalid(
            "ociVersion",
            format!("unsupported version {:?}, want 1.x", spec.version()),
        ));
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(invalid("root.path", "empty"));
    }
    if let Some(p) = spec.process() {
        validate_process(p)?;
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux", "missing (required on Linux)"))?;
    // As process.selinuxLabel (finalize.rs): never silently unlabelled.
    if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(invalid(
            "linux.mountLabel",
            "SELinux is not supported by oxrun on this host",
        ));
    }
    let mut kinds = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !kinds.insert(ns.typ()) {
            return Err(invalid(
                format!("linux.namespaces[{i}].type"),
                format!("duplicate namespace {}", ns.typ()),
            ));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(invalid(
                    format!("linux.namespaces[{i}].path"),
                    "must be absolute",
                ));
            }
        }
    }
    let has = |t: LinuxNamespaceType| kinds.contains(&t);
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if maps && !has(LinuxNamespaceType::User) {
        return Err(invalid(
            "linux.uidMappings",
            "mappings given without a user namespace",
        ));
    }
    let new_userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    if new_userns && !maps {
        return Err(invalid(
            "linux.uidMappings",
            "a new user namespace needs uidMappings and gidMappings",
        ));
    }
    if spec.hostname().is_some() && !has(LinuxNamespaceType::Uts) {
        return Err(invalid(
            "hostname",
            "setting the hostname needs a new uts namespace",
        ));
    }
    if spec.domainname().is_some() && !has(LinuxNamespaceType::Uts) {
        return Err(invalid(
            "domainname",
            "setting the domainname needs a new uts namespace",
        ));
    }
    if let Some(sysctl) = linux.sysctl() {
        for key in sysctl.keys() {
            validate_sysctl(key, &has)?;
        }
    }
    if linux.time_offsets().is_some() && !has(LinuxNamespaceType::Time) {
        return Err(invalid(
            "linux.timeOffsets",
            "time offsets need a time namespace",
        ));
    }
    validate_net_devices(linux, has(LinuxNamespaceType::Network))?;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(invalid(
                format!("mounts[{i}].destination"),
                format!("{:?} is not absolute", m.destination()),
            ));
        }
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() || !d.path().starts_with("/dev") {
            return Err(invalid(
                format!("linux.devices[{i}].path"),
                format!("{:?} must be under /dev", d.path()),
            ));
        }
    }
    if let Some(prop) = linux.rootfs_propagation() {
        if !matches!(
            prop.as_str(),
            "" | "private"
                | "rprivate"
                | "slave"
                | "rslave"
                | "shared"
                | "rshared"
                | "unbindable"
                | "runbindable"
        ) {
            return Err(invalid(
                "linux.rootfsPropagation",
                format!("unknown propagation {prop:?}"),
            ));
        }
    }
    for (kind, hooks) in crate::hooks::all(spec) {
        for (i, h) in hooks.iter().enumerate() {
            if !h.path().is_absolute() {
                return Err(invalid(
                    format!("hooks.{kind}[{i}].path"),
                    format!("{:?} is not absolute", h.path()),
                ));
            }
        }
    }
    Ok(())
}

/// `linux.netDevices`: valid interface names, no two devices given the
/// same name, and a network namespace to move them into (whether it is
/// not the host's own is checked at create, when it exists).
fn validate_net_devices(linux: &oci_spec::runtime::Linux, netns: bool) -> Result<(), SpecError> {
    let Some(devs) = linux.net_devices().as_ref().filter(|d| !d.is_empty()) else {
        return Ok(());
    };
    if !netns {
        return Err(invalid(
            "linux.netDevices",
            "moving network devices needs a network namespace of the container's own (linux.namespaces has no \"network\" entry)",
        ));
    }
    let mut keys: Vec<&String> = devs.keys().collect();
    keys.sort();
    let mut names: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for key in keys {
        crate::netdev::check_name(key, false)
            .map_err(|m| invalid(format!("linux.netDevices.{key}"), m))?;
        let name = match devs[key].name().as_deref() {
            Some(n) => {
                crate::netdev::check_name(n, true)
                    .map_err(|m| invalid(format!("linux.netDevices.{key}.name"), m))?;
                n
            }
            None => key.as_str(),
        };
        if name.contains("%d") {
            continue;
        }
        if let Some(other) = names.insert(name, key) {
            return Err(invalid(
                format!("linux.netDevices.{key}.name"),
                format!("{name:?} is also the container name of linux.netDevices.{other}"),
            ));
        }
    }
    Ok(())
}

/// Checks on a process, shared by config.json and `exec`'s process.
pub fn validate_process(p: &oci_spec::runtime::Process) -> Result<(), SpecError> {
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(invalid("process.args", "must have at least one entry"));
    }
    if !p.cwd().is_absolute() {
        return Err(invalid(
            "process.cwd",
            format!("{:?} is not an absolute path", p.cwd()),
        ));
    }
    if let Some(rl) = p.rlimits() {
        let mut seen = HashSet::new();
        for (i, r) in rl.iter().enumerate() {
            if r.soft() > r.hard() {
                return Err(invalid(
                    format!("process.rlimits[{i}]"),
                    "soft limit is above the hard limit",
                ));
            }
            if !seen.insert(format!("{:?}", r.typ())) {
                return Err(invalid(
                    format!("process.rlimits[{i}].type"),
                    format!("duplicate {:?}", r.typ()),
                ));
            }
        }
    }
    if let Some(env) = p.env() {
        for (i, e) in env.iter().enumerate() {
            if !e.contains('=') {
                return Err(invalid(
                    format!("process.env[{i}]"),
                    format!("{e:?} is not KEY=value"),
                ));
            }
        }
    }
    Ok(())
}

/// runc's rule: a sysctl is allowed only when the namespace it belongs to is
/// the container's own.
fn validate_sysctl(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<(), SpecError> {
    let field = format!("linux.sysctl.{key}");
    if key.contains("..") || key.starts_with('/') || key.starts_with('.') {
        return Err(invalid(field, "not a sysctl name"));
    }
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        return if has(LinuxNamespaceType::Ipc) {
            Ok(())
        } else {
            Err(invalid(field, "needs a new ipc namespace"))
        };
    }
    if key.starts_with("net.") {
        return if has(LinuxNamespaceType::Network) {
            Ok(())
        } else {
            Err(invalid(field, "needs a new network namespace"))
        };
    }
    if key == "kernel.domainname" || key == "kernel.hostname" {
        return if has(LinuxNamespaceType::Uts) {
            Ok(())
        } else {
            Err(invalid(field, "needs a new uts namespace"))
        };
    }
    Err(invalid(
        field,
        "not namespaced, refusing to change it for the whole host",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_names_the_innermost_field() {
        let t = br#"{"a":{"b":[1,{"c":"x"}]},"d":2}"#;
        let at = |needle: &str| {
            let i = t
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap();
            json_path_at(t, i + needle.len() - 1)
        };
        assert_eq!(at(r#""x""#), "a.b[1].c");
        assert_eq!(at("[1"), "a.b[0]");
        assert_eq!(at(":2"), "d");
        assert_eq!(at("}]"), "a.b[1]");
    }

    /// oci-spec checks execCPUAffinity with a regex (served by regex-lite,
    /// see vendor/regex-lite-compat): it must still accept and refuse.
    #[test]
    fn exec_cpu_affinity_is_checked() {
        let mut v = base();
        v["process"] = serde_json::json!({"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["/bin/true"],
            "execCPUAffinity": {"initial": "0-1,3", "final": "2"}});
        if let Err(e) = parse(&serde_json::to_vec(&v).unwrap(), Path::new("c.json")) {
            panic!("{e}");
        }
        v["process"]["execCPUAffinity"]["initial"] = "one".into();
        let Err(e) = parse(&serde_json::to_vec(&v).unwrap(), Path::new("c.json")) else {
            panic!("a malformed execCPUAffinity must be refused");
        };
        assert!(e.to_string().contains("execCPUAffinity"), "{e}");
    }

    #[test]
    fn bad_field_is_named() {
        let mut v = base();
        v["process"] = serde_json::json!({"cwd": "/", "user": {"uid": "zero", "gid": 0}});
        let Err(e) = parse(&serde_json::to_vec(&v).unwrap(), Path::new("c.json")) else {
            panic!("a string uid must be refused");
        };
        let msg = e.to_string();
        assert!(msg.contains("process.user.uid"), "{msg}");
        assert!(!msg.contains(" at line "), "{msg}");
    }

    fn base() -> Value {
        serde_json::to_value(Spec::default()).expect("default spec serialises")
    }

    fn check(v: &Value) -> Result<Loaded, SpecError> {
        parse(
            &serde_json::to_vec(v).expect("serialise"),
            Path::new("config.json"),
        )
    }

    #[test]
    fn default_spec_is_valid() {
        check(&base()).expect("default spec must validate");
    }

    #[test]
    fn malformed_json_is_reported() {
        let err = parse(b"{\"ociVersion\": ", Path::new("c.json")).expect_err("must fail");
        assert!(err.to_string().contains("invalid JSON"), "{err}");
    }

    #[test]
    fn unknown_namespace_names_the_field() {
        let mut v = base();
        v["linux"]["namespaces"][1]["type"] = "bogus".into();
        let err = check(&v).expect_err("must fail").to_string();
        assert!(err.contains("linux.namespaces[1].type"), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn duplicate_namespace_is_rejected() {
        let mut v = base();
        v["linux"]["namespaces"][1]["type"] = "pid".into();
        let err = check(&v).expect_err("must fail").to_string();
        assert!(err.contains("duplicate namespace"), "{err}");
    }

    #[test]
    fn hostname_needs_uts() {
        let mut v = base();
        v["hostname"] = "x".into();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "mount"}]);
        let err = check(&v).expect_err("must fail").to_string();
        assert!(err.starts_with("hostname:"), "{err}");
    }

    #[test]
    fn host_sysctl_is_refused() {
        let mut v = base();
        v["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "1"});
        let err = check(&v).expect_err("must fail").to_string();
        assert!(err.contains("linux.sysctl.vm.swappiness"), "{err}");
        v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
        check(&v).expect("net sysctl with a net namespace is fine");
    }

    #[test]
    fn unknown_capability_is_a_warning() {
        let mut v = base();
        v["process"]["capabilities"]["bounding"] =
            serde_json::json!(["CAP_CHOWN", "CAP_NOT_A_THING"]);
        let loaded = check(&v).expect("unknown caps are dropped");
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("CAP_NOT_A_THING"));
    }

    #[test]
    fn known_capabilities_are_kernel_numbers_0_to_40() {
        // The names the caps crate knows: each of 0..=40 once, and each one
        // kept by the filter; case and the CAP_ prefix matter, as before.
        let all = caps::all();
        assert_eq!(all.len(), 41);
        for i in 0..=40u8 {
            assert!(all.iter().any(|c| c.index() == i), "cap {i} missing");
        }
        let mut names: Vec<String> = all.iter().map(|c| c.to_string()).collect();
        names.sort();
        for bad in ["cap_chown", "CHOWN", "CAP_NOT_A_THING", "CAP_41"] {
            names.push(bad.to_string());
        }
        let mut v = base();
        v["process"]["capabilities"]["bounding"] = serde_json::json!(names);
        let loaded = check(&v).expect("unknown caps are dropped");
        assert_eq!(loaded.warnings.len(), 4, "{:?}", loaded.warnings);
        assert_eq!(
            loaded.warnings[0],
            "process.capabilities.bounding: unknown capability \"cap_chown\" ignored"
        );
    }

    #[test]
    fn process_json_without_user_is_uid_0_with_a_warning() {
        let pj = br#"{"args": ["true"], "cwd": "/", "capabilities": {"bounding": ["CAP_NOPE"]}}"#;
        let (p, warnings) = parse_process(pj, Path::new("p.json")).expect("accepted");
        assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("process.user") && warnings[0].contains("required"));
        assert!(warnings[1].contains("CAP_NOPE"));
        let pj = br#"{"args": ["true"], "cwd": "/", "user": {"uid": 5, "gid": 6}}"#;
        let (p, warnings) = parse_process(pj, Path::new("p.json")).expect("accepted");
        assert_eq!((p.user().uid(), p.user().gid()), (5, 6));
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    /// Every scheduler flag the runtime-spec names is read, in config.json
    /// and in an exec process.json.
    #[test]
    fn spec_scheduler_flag_names_are_read() {
        use oci_spec::runtime::LinuxSchedulerFlag as F;
        let names = serde_json::json!([
            "SCHED_FLAG_RESET_ON_FORK",
            "SCHED_FLAG_RECLAIM",
            "SCHED_FLAG_DL_OVERRUN",
            "SCHED_FLAG_KEEP_POLICY",
            "SCHED_FLAG_KEEP_PARAMS",
            "SCHED_FLAG_UTIL_CLAMP_MIN",
            "SCHED_FLAG_UTIL_CLAMP_MAX"
        ]);
        let want = vec![
            F::SchedResetOnFork,
            F::SchedFlagReclaim,
            F::SchedFlagDLOverrun,
            F::SchedFlagKeepPolicy,
            F::SchedFlagKeepParams,
            F::SchedFlagUtilClampMin,
            F::SchedFlagUtilClampMax,
        ];
        let mut v = base();
        v["process"]["scheduler"] =
            serde_json::json!({"policy": "SCHED_OTHER", "flags": names.clone()});
        let l = check(&v).expect("spec flag names");
        let s = l
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.scheduler().clone());
        assert_eq!(s.and_then(|s| s.flags().clone()), Some(want.clone()));
        let pj = serde_json::json!({"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "scheduler": {"policy": "SCHED_OTHER", "flags": names}});
        let (p, _) = parse_process(pj.to_string().as_bytes(), Path::new("p.json")).expect("ok");
        assert_eq!(
            p.scheduler().as_ref().and_then(|s| s.flags().clone()),
            Some(want)
        );
    }

    #[test]
    fn relative_cwd_and_bad_rlimit() {
        let mut v = base();
        v["process"]["cwd"] = "tmp".into();
        assert!(check(&v)
            .expect_err("fail")
            .to_string()
            .contains("process.cwd"));
        let mut v = base();
        v["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]);
        assert!(check(&v)
            .expect_err("fail")
            .to_string()
            .contains("process.rlimits[0]"));
    }

    #[test]
    fn mount_label_is_refused_and_personality_flags_warned() {
        let mut v = base();
        v["linux"]["mountLabel"] = serde_json::json!("system_u:object_r:container_file_t:s0");
        let e = check(&v).unwrap_err().to_string();
        assert!(e.contains("linux.mountLabel"), "{e}");
        let mut v = base();
        v["linux"]["personality"] = serde_json::json!({"domain": "LINUX", "flags": ["X"]});
        let l = check(&v).unwrap();
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("linux.personality.flags")),
            "{:?}",
            l.warnings
        );
    }

    #[test]
    fn userns_needs_mappings() {
        let mut v = base();
        v["linux"]["namespaces"]
            .as_array_mut()
            .expect("array")
            .push(serde_json::json!({"type": "user"}));
        assert!(check(&v)
            .expect_err("fail")
            .to_string()
            .contains("uidMappings"));
    }
}
