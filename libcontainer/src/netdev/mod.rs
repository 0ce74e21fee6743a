//! `linux.netDevices` (runtime-spec config-linux.md, "Network Devices"):
//! each named host interface moves into the container's network namespace
//! at create, before the createRuntime hooks, renamed to its `name` when
//! one is given (a `%d` template lets the kernel number it). The move
//! flushes an interface's addresses, so its permanent global ones (what
//! the spec says must be kept) are added again inside, and it is set up.
//!
//! After that the runtime leaves the interface alone, as the spec says:
//! nothing moves it out before delete. When the namespace dies (the
//! container's last process exits), the kernel moves physical devices back
//! to the initial namespace and destroys virtual ones (veth, dummy,
//! macvlan...). Only a create that fails gives the devices back itself
//! ([`Moved::give_back`]), so a failed create leaves the host as it was.

mod netlink;

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;
use oci_spec::runtime::Spec;

use netlink::{Addr, Rtnl};

#[derive(Debug, thiserror::Error)]
pub enum NetdevError {
    #[error("linux.netDevices: open {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("linux.netDevices: the container's network namespace is the runtime's own; devices can only move into a network namespace that is not the host's")]
    HostNamespace,
    #[error("linux.netDevices: netlink socket in the {which} network namespace: {errno}")]
    Socket { which: &'static str, errno: Errno },
    #[error("linux.netDevices.{dev}: no network device {dev:?} on the host")]
    Missing { dev: String },
    #[error("linux.netDevices.{dev}.name: the container's network namespace already has a device named {name:?}")]
    Clash { dev: String, name: String },
    #[error("linux.netDevices.{dev}: {op}: {errno}")]
    Netlink {
        dev: String,
        op: String,
        errno: Errno,
    },
}

/// The kernel's rule for an interface name (dev_valid_name): 1 to 15
/// bytes, not `.` or `..`, no `/`, `:` or white space. `template` allows
/// one `%d` (the kernel then picks the number).
pub fn check_name(name: &str, template: bool) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("{name:?} must be 1 to 15 bytes long"));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    if name.contains(['/', ':']) || name.chars().any(char::is_whitespace) {
        return Err(format!(
            "{name:?} has a '/', ':' or white space, which interface names cannot have"
        ));
    }
    let percents = name.matches('%').count();
    if percents > 0 && !(template && percents == 1 && name.contains("%d")) {
        return Err(format!(
            "{name:?}: a '%' is only allowed as one \"%d\" template in a device's new name"
        ));
    }
    Ok(())
}

fn is_template(name: &str) -> bool {
    name.contains("%d")
}

/// A device moved into the container, and how to give it back.
struct Device {
    key: String,
    /// Its index in the container's namespace.
    index: i32,
    addrs: Vec<Addr>,
    was_up: bool,
}

struct Session {
    host_ns: File,
    host: Rtnl,
    ctr: Rtnl,
    devices: Vec<Device>,
}

/// The devices a create moved so far: kept when the create succeeds
/// ([`Moved::keep`]), given back when it fails ([`Moved::give_back`]).
#[derive(Default)]
pub struct Moved(Option<Session>);

impl Moved {
    /// The container exists: its devices stay where they are (the
    /// sockets into its namespace are closed).
    pub fn keep(&mut self) {
        self.0 = None;
    }

    /// The create failed: move every device back into the runtime's
    /// namespace under its host name, with its addresses and up state.
    /// Best effort: a device that cannot come back goes with the namespace.
    pub fn give_back(&mut self) {
        let Some(mut s) = self.0.take() else { return };
        while let Some(d) = s.devices.pop() {
            if s.ctr
                .move_to(d.index, s.host_ns.as_raw_fd(), &d.key)
                .is_err()
            {
                continue;
            }
            let Ok(links) = s.host.links() else { continue };
            let Some(link) = links.iter().find(|l| l.name == d.key) else {
                continue;
            };
            for a in &d.addrs {
                let _ = s.host.add_addr(link.index, a);
            }
            if d.was_up {
                let _ = s.host.set_up(link.index);
            }
        }
    }
}

/// Move the spec's `linux.netDevices` into the network namespace of
/// `init_pid` (the container's init, not yet released). What has moved is
/// recorded in `moved` as it goes, so a failure part-way can be undone.
pub fn move_into(spec: &Spec, init_pid: i32, moved: &mut Moved) -> Result<(), NetdevError> {
    let Some(devs) = spec.linux().as_ref().and_then(|l| l.net_devices().as_ref()) else {
        return Ok(());
    };
    if devs.is_empty() {
        return Ok(());
    }
    let open =
        |path: String| File::open(&path).map_err(|source| NetdevError::Open { path, source });
    let host_ns = open("/proc/thread-self/ns/net".into())?;
    let target = open(format!("/proc/{init_pid}/ns/net"))?;
    let (h, t) = (
        host_ns.metadata().map_err(|source| NetdevError::Open {
            path: "/proc/thread-self/ns/net".into(),
            source,
        })?,
        target.metadata().map_err(|source| NetdevError::Open {
            path: format!("/proc/{init_pid}/ns/net"),
            source,
        })?,
    );
    if (h.dev(), h.ino()) == (t.dev(), t.ino()) {
        return Err(NetdevError::HostNamespace);
    }
    let host = Rtnl::open().map_err(|errno| NetdevError::Socket {
        which: "runtime's",
        errno,
    })?;
    let ctr =
        Rtnl::open_in(target.as_fd(), host_ns.as_fd()).map_err(|errno| NetdevError::Socket {
            which: "container's",
            errno,
        })?;
    let s = moved.0.insert(Session {
        host_ns,
        host,
        ctr,
        devices: Vec::new(),
    });
    // In a stable order (the spec's object has none).
    let mut keys: Vec<&String> = devs.keys().collect();
    keys.sort();
    for key in keys {
        let new_name = devs[key].name().as_deref().unwrap_or(key.as_str());
        move_one(s, key, new_name, target.as_raw_fd())?;
    }
    Ok(())
}

fn move_one(s: &mut Session, key: &str, new_name: &str, target: i32) -> Result<(), NetdevError> {
    let nl = |op: &str| {
        let (dev, op) = (key.to_string(), op.to_string());
        move |errno| NetdevError::Netlink { dev, op, errno }
    };
    let link = s
        .host
        .links()
        .map_err(nl("list the host's links"))?
        .into_iter()
        .find(|l| l.name == key)
        .ok_or_else(|| NetdevError::Missing { dev: key.into() })?;
    let before = s.ctr.links().map_err(nl("list the container's links"))?;
    if !is_template(new_name) && before.iter().any(|l| l.name == new_name) {
        return Err(NetdevError::Clash {
            dev: key.into(),
            name: new_name.into(),
        });
    }
    // What the spec says must survive the move: permanent global addresses.
    let addrs: Vec<Addr> = s
        .host
        .addrs(link.index)
        .map_err(nl("list its addresses"))?
        .into_iter()
        .filter(|a| {
            a.flags & netlink::IFA_F_PERMANENT != 0 && a.scope == netlink::RT_SCOPE_UNIVERSE
        })
        .collect();
    let moved = s.host.move_to(link.index, target, new_name);
    // Whatever the answer, a link that is new in the container is ours to
    // give back (the kernel moves before it renames).
    let after = s.ctr.links().map_err(nl("list the container's links"))?;
    let new = after
        .iter()
        .find(|l| !before.iter().any(|b| b.index == l.index));
    if let Some(l) = new {
        s.devices.push(Device {
            key: key.into(),
            index: l.index,
            addrs: addrs.clone(),
            was_up: link.flags & netlink::IFF_UP != 0,
        });
    }
    moved.map_err(nl(&format!(
        "move into the container's network namespace as {new_name:?}"
    )))?;
    let index = new.map(|l| l.index).ok_or_else(|| NetdevError::Netlink {
        dev: key.into(),
        op: "find it in the container's network namespace after the move".into(),
        errno: Errno::ENODEV,
    })?;
    for a in &addrs {
        s.ctr
            .add_addr(index, a)
            .map_err(nl("add its address in the container"))?;
    }
    s.ctr
        .set_up(index)
        .map_err(nl("set it up in the container"))
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn interface_names() {
        assert!(check_name("eth0", false).is_ok());
        assert!(check_name("abcdefghijklmno", false).is_ok());
        assert!(check_name("abcdefghijklmnop", false).is_err());
        assert!(check_name("", false).is_err());
        assert!(check_name("..", false).is_err());
        assert!(check_name("a/b", false).is_err());
        assert!(check_name("a:b", false).is_err());
        assert!(check_name("a b", false).is_err());
        assert!(check_name("eth%d", true).is_ok());
        assert!(check_name("eth%d", false).is_err());
        assert!(check_name("eth%s", true).is_err());
        assert!(check_name("e%d%d", true).is_err());
    }
}
