//! `linux.intelRdt` (runtime-spec config-linux.md, "IntelRdt"): the
//! container's processes go into a resctrl group. The spec says a runtime
//! MUST fail when no resctrl filesystem is mounted in its mount namespace.
//! oxrun does not manage resctrl groups yet, so `intelRdt` is refused
//! either way, with an error that says which case the host is in;
//! `features` reports `intelRdt.enabled: false`.

/// RDTGROUP_SUPER_MAGIC (<linux/magic.h>).
const RESCTRL_MAGIC: i64 = 0x7655821;
const RESCTRL: &str = "/sys/fs/resctrl";

/// Whether resctrl is mounted at /sys/fs/resctrl.
pub fn resctrl_mounted() -> bool {
    nix::sys::statfs::statfs(RESCTRL)
        .map(|s| s.filesystem_type().0 == RESCTRL_MAGIC)
        .unwrap_or(false)
}

/// Refuse `linux.intelRdt` when the spec has it, naming the field.
pub fn check(linux: &oci_spec::runtime::Linux) -> Result<(), String> {
    if linux.intel_rdt().is_none() {
        return Ok(());
    }
    Err(if resctrl_mounted() {
        format!("linux.intelRdt: oxrun does not manage resctrl groups (Intel RDT) yet, although this host has resctrl mounted at {RESCTRL}")
    } else {
        format!("linux.intelRdt: no resctrl filesystem is mounted at {RESCTRL} (this host has no Intel RDT support, or resctrl is not mounted); the runtime-spec requires an error")
    })
}
