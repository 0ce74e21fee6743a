//! Capabilities: exactly the five sets the spec gives, nothing more
//! (CVE-2022-29162: no inheritable or ambient capability unless asked).

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

#[derive(Debug, thiserror::Error)]
pub enum CapError {
    #[error("process.capabilities: {0}")]
    Unknown(String),
    #[error("set {set} capabilities: {msg}")]
    Apply { set: &'static str, msg: String },
}

fn to_caps(set: &Option<Capabilities>) -> Result<CapsHashSet, CapError> {
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = c.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        let cap = Capability::from_str(&name).map_err(|_| CapError::Unknown(name.clone()))?;
        out.insert(cap);
    }
    Ok(out)
}

/// The parsed sets, converted once before any of them is applied.
pub struct CapSets {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

impl CapSets {
    pub fn from_spec(c: &LinuxCapabilities) -> Result<Self, CapError> {
        Ok(CapSets {
            bounding: to_caps(c.bounding())?,
            effective: to_caps(c.effective())?,
            permitted: to_caps(c.permitted())?,
            inheritable: to_caps(c.inheritable())?,
            ambient: to_caps(c.ambient())?,
        })
    }

    /// Leave out what this process cannot grant (not in its own bounding
    /// set): the spec wants a warning, not a failure. Returns the names.
    pub fn restrict_to_grantable(&mut self) -> Vec<String> {
        let have = caps::read(None, CapSet::Bounding).unwrap_or_else(|_| caps::all());
        let mut dropped = std::collections::BTreeSet::new();
        for set in [
            &mut self.bounding,
            &mut self.effective,
            &mut self.permitted,
            &mut self.inheritable,
            &mut self.ambient,
        ] {
            set.retain(|c| {
                let ok = have.contains(c);
                if !ok {
                    dropped.insert(c.to_string());
                }
                ok
            });
        }
        dropped.into_iter().collect()
    }

    /// Drop from the bounding set everything not listed. Needs CAP_SETPCAP,
    /// so it runs before the uid change.
    pub fn apply_bounding(&self) -> Result<(), CapError> {
        let supported = caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all());
        for cap in supported {
            if !self.bounding.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|e| CapError::Apply {
                    set: "bounding",
                    msg: format!("{cap}: {e}"),
                })?;
            }
        }
        Ok(())
    }

    /// Set permitted, inheritable and effective in one capset(2) (the kernel
    /// checks E ⊆ P on every call, so piecemeal updates fail), then ambient.
    pub fn apply_rest(&self) -> Result<(), CapError> {
        capset(
            mask(&self.effective),
            mask(&self.permitted),
            mask(&self.inheritable),
        )?;
        // Ambient must be in permitted and inheritable; otherwise leave it out
        // rather than failing, as runc does.
        let ambient: CapsHashSet = self
            .ambient
            .iter()
            .filter(|c| self.permitted.contains(c) && self.inheritable.contains(c))
            .copied()
            .collect();
        caps::set(None, CapSet::Ambient, &ambient).map_err(|e| CapError::Apply {
            set: "ambient",
            msg: e.to_string(),
        })
    }
}

fn mask(set: &CapsHashSet) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

fn capset(e: u64, p: u64, i: u64) -> Result<(), CapError> {
    crate::sys::capset(e, p, i).map_err(|e| CapError::Apply {
        set: "effective/permitted/inheritable",
        msg: e.to_string(),
    })
}
