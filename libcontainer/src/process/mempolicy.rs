//! `linux.memoryPolicy` (runtime-spec 1.3): the NUMA memory policy of the
//! container's processes, set with set_mempolicy(2) by init before it
//! reports ready (so a policy the host refuses fails `create`) and by each
//! exec'd process; execve and fork keep it. Every refusal names the field.

use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};

use super::error::InitError;
use crate::sys;

/// The highest node number we accept (the bitmap's size).
const MAX_NODE: usize = 1023;

fn invalid(field: &str, msg: impl std::fmt::Display) -> InitError {
    InitError::Msg(format!("{field}: {msg}"))
}

/// The policy as set_mempolicy(2) takes it.
struct Policy {
    mode: i32,
    relative: bool,
    nodes: Vec<usize>,
}

/// Every mode: its set_mempolicy(2) number and whether it needs nodes
/// (true), takes none (false) or either (None).
const MODES: &[(MemoryPolicyModeType, i32, Option<bool>)] = &[
    (MemoryPolicyModeType::MpolDefault, 0, Some(false)),
    (MemoryPolicyModeType::MpolPreferred, 1, None),
    (MemoryPolicyModeType::MpolBind, 2, Some(true)),
    (MemoryPolicyModeType::MpolInterleave, 3, Some(true)),
    (MemoryPolicyModeType::MpolLocal, 4, Some(false)),
    (MemoryPolicyModeType::MpolPreferredMany, 5, Some(true)),
    (MemoryPolicyModeType::MpolWeightedInterleave, 6, Some(true)),
];

/// Every flag and its bit.
const FLAGS: &[(MemoryPolicyFlagType, i32)] = &[
    (MemoryPolicyFlagType::MpolFNumaBalancing, 1 << 13),
    (MemoryPolicyFlagType::MpolFRelativeNodes, 1 << 14),
    (MemoryPolicyFlagType::MpolFStaticNodes, 1 << 15),
];

/// The mode and flag names we apply, as the spec spells them (for
/// `features`).
pub(crate) fn names() -> (Vec<String>, Vec<String>) {
    (
        MODES.iter().map(|(m, _, _)| m.to_string()).collect(),
        FLAGS.iter().map(|(f, _)| f.to_string()).collect(),
    )
}

fn resolve(p: &LinuxMemoryPolicy) -> Result<Policy, InitError> {
    let (mode, want_nodes) = MODES
        .iter()
        .find(|(m, _, _)| *m == p.mode())
        .map(|(_, n, w)| (*n, *w))
        .ok_or_else(|| {
            invalid(
                "linux.memoryPolicy.mode",
                format!("{} is not supported", p.mode()),
            )
        })?;
    let nodes = match p.nodes().as_deref().map(str::trim) {
        Some(list) if !list.is_empty() => parse_nodes(list)?,
        _ => Vec::new(),
    };
    match want_nodes {
        Some(true) if nodes.is_empty() => {
            return Err(invalid(
                "linux.memoryPolicy.nodes",
                format!("mode {} needs at least one node", p.mode()),
            ))
        }
        Some(false) if !nodes.is_empty() => {
            return Err(invalid(
                "linux.memoryPolicy.nodes",
                format!("mode {} takes no nodes", p.mode()),
            ))
        }
        _ => {}
    }
    let mut flags = 0;
    for f in p.flags().iter().flatten() {
        flags |= FLAGS
            .iter()
            .find(|(g, _)| g == f)
            .map(|(_, bit)| *bit)
            .ok_or_else(|| invalid("linux.memoryPolicy.flags", format!("{f} is not supported")))?;
    }
    let relative = p
        .flags()
        .iter()
        .flatten()
        .any(|f| *f == MemoryPolicyFlagType::MpolFRelativeNodes);
    Ok(Policy {
        mode: mode | flags,
        relative,
        nodes,
    })
}

/// Parse a node list such as `0-3,7`.
fn parse_nodes(list: &str) -> Result<Vec<usize>, InitError> {
    let field = "linux.memoryPolicy.nodes";
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = match (a.trim().parse(), b.trim().parse()) {
            (Ok(a), Ok(b)) if a <= b => (a, b),
            _ => return Err(invalid(field, format!("{list:?} is not a node list"))),
        };
        if b > MAX_NODE {
            return Err(invalid(
                field,
                format!("node {b} is above the highest node number ({MAX_NODE})"),
            ));
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// The NUMA nodes this host has online (`/sys/devices/system/node/online`);
/// a host without NUMA support has node 0 only.
fn host_nodes() -> Vec<usize> {
    std::fs::read_to_string("/sys/devices/system/node/online")
        .ok()
        .and_then(|s| parse_nodes(s.trim()).ok())
        .unwrap_or_else(|| vec![0])
}

fn set(p: &Policy, what: &LinuxMemoryPolicy) -> Result<(), InitError> {
    let mut mask = [0u64; (MAX_NODE + 1) / 64];
    for n in &p.nodes {
        mask[n / 64] |= 1 << (n % 64);
    }
    let nodes = (!p.nodes.is_empty()).then_some(&mask[..]);
    sys::set_mempolicy(p.mode, nodes).map_err(|e| {
        invalid(
            "linux.memoryPolicy",
            format!(
                "set_mempolicy({}, nodes {:?}, flags {:?}): {e}",
                what.mode(),
                what.nodes().as_deref().unwrap_or(""),
                what.flags().as_deref().unwrap_or(&[])
            ),
        )
    })
}

/// In the container's init, while the host's /sys is still in view:
/// check the nodes against the host's and set the policy.
pub(crate) fn apply_checked(p: &LinuxMemoryPolicy) -> Result<(), InitError> {
    let policy = resolve(p)?;
    if !policy.relative {
        let host = host_nodes();
        if let Some(n) = policy.nodes.iter().find(|n| !host.contains(n)) {
            return Err(invalid(
                "linux.memoryPolicy.nodes",
                format!("this host has no NUMA node {n} (online nodes: {host:?})"),
            ));
        }
    }
    set(&policy, p)
}

/// In an exec'd process (the policy was checked at create).
pub(crate) fn apply(p: &LinuxMemoryPolicy) -> Result<(), InitError> {
    set(&resolve(p)?, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(v: serde_json::Value) -> LinuxMemoryPolicy {
        serde_json::from_value(v).expect("policy")
    }

    #[test]
    fn modes_nodes_and_flags() {
        let p = resolve(&policy(serde_json::json!({
            "mode": "MPOL_BIND", "nodes": "0-2,5", "flags": ["MPOL_F_STATIC_NODES"]
        })))
        .expect("valid");
        assert_eq!(p.mode, 2 | 1 << 15);
        assert_eq!(p.nodes, vec![0, 1, 2, 5]);
        assert!(resolve(&policy(serde_json::json!({"mode": "MPOL_BIND"}))).is_err());
        assert!(resolve(&policy(
            serde_json::json!({"mode": "MPOL_LOCAL", "nodes": "0"})
        ))
        .is_err());
        assert!(resolve(&policy(serde_json::json!({"mode": "MPOL_PREFERRED"}))).is_ok());
        assert!(parse_nodes("2-1").is_err());
        assert!(parse_nodes("4096").is_err());
        assert!(parse_nodes("x").is_err());
        let (modes, flags) = names();
        assert_eq!(modes.len(), 7);
        assert!(modes.iter().any(|m| m == "MPOL_WEIGHTED_INTERLEAVE"));
        assert_eq!(flags.len(), 3);
    }
}
