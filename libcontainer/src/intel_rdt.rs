//! `linux.intelRdt` (runtime-spec config-linux.md, "IntelRdt"): the
//! container's processes go into a resctrl group. The spec says a runtime
//! MUST fail when no resctrl filesystem is mounted in its mount namespace.
//! oxrun does not manage resctrl groups yet, so `intelRdt` is refused
//! either way, with an error that says which case the host is in;
//! `features` reports `intelRdt` `enabled`, `schemata` and `monitoring`
//! false.

/// RDTGROUP_SUPER_MAGIC (<linux/magic.h>).
const RESCTRL_MAGIC: i64 = 0x7655821;
const RESCTRL: &str = "/sys/fs/resctrl";

/// Whether resctrl is mounted at /sys/fs/resctrl.
pub fn resctrl_mounted() -> bool {
    nix::sys::statfs::statfs(RESCTRL)
        .map(|s| s.filesystem_type().0 == RESCTRL_MAGIC)
        .unwrap_or(false)
}

/// Whether `linux.intelRdt` is applied; `features` reports it for
/// `enabled`, `schemata` and `monitoring`.
pub const SUPPORTED: bool = false;

/// The `linux.intelRdt` fields `rdt` sets, as the spec spells them
/// (oci-spec reads the deprecated `enableCMT`/`enableMBM` under other
/// names, so they are not listed: an `intelRdt` with only those is still
/// refused, as `linux.intelRdt`).
fn fields_set(rdt: &oci_spec::runtime::LinuxIntelRdt) -> Vec<&'static str> {
    [
        ("closID", rdt.clos_id().is_some()),
        ("schemata", rdt.schemata().is_some()),
        ("l3CacheSchema", rdt.l3_cache_schema().is_some()),
        ("memBwSchema", rdt.mem_bw_schema().is_some()),
        ("enableMonitoring", rdt.enable_monitoring().is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// Refuse `linux.intelRdt` when the spec has it, naming the field and the
/// members it sets.
pub fn check(linux: &oci_spec::runtime::Linux) -> Result<(), String> {
    let Some(rdt) = linux.intel_rdt() else {
        return Ok(());
    };
    let field = match fields_set(rdt) {
        f if f.is_empty() => "linux.intelRdt".to_string(),
        f => format!("linux.intelRdt ({})", f.join(", ")),
    };
    Err(if resctrl_mounted() {
        format!("{field}: oxrun does not manage resctrl groups (Intel RDT) yet, although this host has resctrl mounted at {RESCTRL}")
    } else {
        format!("{field}: no resctrl filesystem is mounted at {RESCTRL} (this host has no Intel RDT support, or resctrl is not mounted); the runtime-spec requires an error")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_error_names_every_member_set() {
        let linux: oci_spec::runtime::Linux = serde_json::from_value(serde_json::json!({
            "intelRdt": {"closID": "c", "schemata": ["L3:0=f"], "enableMonitoring": true, "enableCMT": true}
        }))
        .expect("linux");
        let e = super::check(&linux).expect_err("refused");
        let only_cmt: oci_spec::runtime::Linux =
            serde_json::from_value(serde_json::json!({"intelRdt": {"enableCMT": true}}))
                .expect("linux");
        let e2 = super::check(&only_cmt).expect_err("refused");
        assert!(e2.starts_with("linux.intelRdt: "), "{e2}");
        assert!(
            e.starts_with("linux.intelRdt (closID, schemata, enableMonitoring): "),
            "{e}"
        );
    }
}
