//! Device cgroup rules: the spec's `linux.resources.devices` checked, plus
//! the devices runc always allows (appended after the spec's rules), in
//! the v1 `devices.allow`/`devices.deny` syntax. The v2 program is built
//! from the same rules in `bpf`.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::{invalid, CgroupError};

/// `access` bits as the kernel's BPF device context encodes them.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevType {
    All,
    Char,
    Block,
}

/// One rule; `None` major/minor is the `*` wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub typ: DevType,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

const fn allow(typ: DevType, major: Option<u32>, minor: Option<u32>, access: u8) -> Rule {
    Rule {
        allow: true,
        typ,
        major,
        minor,
        access,
    }
}

/// runc's `AllowedDevices`: mknod of anything, the standard character
/// devices, /dev/pts/*, /dev/ptmx and /dev/net/tun.
pub const DEFAULT_ALLOWED: &[Rule] = &[
    allow(DevType::Char, None, None, ACC_MKNOD),
    allow(DevType::Block, None, None, ACC_MKNOD),
    allow(DevType::Char, Some(1), Some(3), ACC_ALL),
    allow(DevType::Char, Some(1), Some(8), ACC_ALL),
    allow(DevType::Char, Some(1), Some(7), ACC_ALL),
    allow(DevType::Char, Some(5), Some(0), ACC_ALL),
    allow(DevType::Char, Some(1), Some(5), ACC_ALL),
    allow(DevType::Char, Some(1), Some(9), ACC_ALL),
    allow(DevType::Char, Some(136), None, ACC_ALL),
    allow(DevType::Char, Some(5), Some(2), ACC_ALL),
    allow(DevType::Char, Some(10), Some(200), ACC_ALL),
];

impl Rule {
    /// `c 1:3 rwm` (what devices.allow/deny take and devices.list shows).
    pub fn v1_string(&self) -> String {
        let t = match self.typ {
            DevType::All => 'a',
            DevType::Char => 'c',
            DevType::Block => 'b',
        };
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        format!(
            "{t} {}:{} {}",
            n(self.major),
            n(self.minor),
            access_string(self.access)
        )
    }

    /// Matches every device with every access (a wildcard rule).
    pub fn is_total(&self) -> bool {
        self.typ == DevType::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACC_ALL
    }
}

pub fn access_string(a: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
        if a & bit != 0 {
            s.push(c);
        }
    }
    s
}

fn number(field: &str, v: Option<i64>) -> Result<Option<u32>, CgroupError> {
    match v {
        None | Some(-1) => Ok(None),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| {
            invalid(
                field,
                format!("{n} is not a device number (use -1 or leave it out for any)"),
            )
        }),
    }
}

/// Check the spec's rules (runc refuses an empty access and types other
/// than a, b and c).
pub fn parse(list: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>, CgroupError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, d) in list.iter().enumerate() {
        let f = |name: &str| format!("linux.resources.devices[{i}].{name}");
        let typ = match d.typ() {
            None | Some(LinuxDeviceType::A) => DevType::All,
            Some(LinuxDeviceType::C) => DevType::Char,
            Some(LinuxDeviceType::B) => DevType::Block,
            Some(t) => {
                return Err(invalid(
                    f("type"),
                    format!("{:?} is not a device cgroup type (a, b or c)", t.as_str()),
                ))
            }
        };
        let acc = d.access().as_deref().unwrap_or("");
        if acc.is_empty() {
            return Err(invalid(f("access"), "must not be empty (use r, w, m)"));
        }
        let mut access = 0;
        for c in acc.chars() {
            access |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => {
                    return Err(invalid(
                        f("access"),
                        format!("{acc:?} may only contain r, w and m (the runtime-spec's \"composition of r (read), w (write), and m (mknod)\"; runc 1.1.5 drops other letters)"),
                    ))
                }
            };
        }
        out.push(Rule {
            allow: d.allow(),
            typ,
            major: number(&f("major"), d.major())?,
            minor: number(&f("minor"), d.minor())?,
            access,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert_eq!(DEFAULT_ALLOWED[0].v1_string(), "c *:* m");
        assert_eq!(DEFAULT_ALLOWED[2].v1_string(), "c 1:3 rwm");
        let list: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"b","major":8,"minor":20,"access":"wr"}]"#,
        )
        .expect("json");
        let rules = parse(&list).expect("parse");
        assert_eq!(rules[0].v1_string(), "a *:* rwm");
        assert!(rules[0].is_total() && !rules[0].allow);
        assert_eq!(rules[1].v1_string(), "b 8:20 rw");
        let bad: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":true,"type":"p","access":"r"}]"#).expect("json");
        assert!(parse(&bad)
            .expect_err("p")
            .to_string()
            .contains("devices[0].type"));
    }
}
