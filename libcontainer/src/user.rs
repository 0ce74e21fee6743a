//! Switching to the process' user and groups, keeping capabilities across
//! the uid change so the spec's sets can be applied afterwards.

use nix::errno::Errno;
use nix::unistd::{Gid, Uid};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("process.user.additionalGids: setgroups: {0}")]
    Groups(Errno),
    #[error("process.user.gid {gid}: setresgid: {errno}")]
    Gid { gid: u32, errno: Errno },
    #[error("process.user.uid {uid}: setresuid: {errno}")]
    Uid { uid: u32, errno: Errno },
    #[error("prctl(PR_SET_KEEPCAPS): {0}")]
    KeepCaps(Errno),
}

fn keepcaps(on: bool) -> Result<(), UserError> {
    nix::sys::prctl::set_keepcaps(on).map_err(UserError::KeepCaps)
}

/// setgroups + setresgid + setresuid, with PR_SET_KEEPCAPS around the uid change.
pub fn switch(uid: u32, gid: u32, groups: &[u32]) -> Result<(), UserError> {
    let gids: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    match nix::unistd::setgroups(&gids) {
        // A user namespace with setgroups denied: only an empty list was possible anyway.
        Ok(()) | Err(Errno::EPERM) if groups.is_empty() => {}
        Ok(()) => {}
        Err(e) => return Err(UserError::Groups(e)),
    }
    let g = Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g).map_err(|errno| UserError::Gid { gid, errno })?;
    keepcaps(true)?;
    let u = Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u).map_err(|errno| UserError::Uid { uid, errno })?;
    keepcaps(false)
}

/// Is this process in a user namespace other than the host's (its uid map
/// is not the identity over all ids)? Root there is not the host's root.
/// Read once per process: the shim asks on every create and exec, and the
/// runtime's own namespace does not change under it (a rootless exec that
/// joins the container's has asked before it does).
pub fn in_user_namespace() -> bool {
    static IN_USERNS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN_USERNS.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
    })
}

/// `uid` of this process's user namespace as the host's (the initial
/// namespace's) id: what a peer reading SO_PEERCRED sees. Translated
/// through each line of /proc/self/uid_map (one level of nesting, which is
/// rootless podman's); unmapped or unreadable, `uid` itself.
pub fn host_uid(uid: u32) -> u32 {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => through_map(&map, uid),
        Err(_) => uid,
    }
}

/// `uid` through a uid_map's text (`inside outside count` lines).
fn through_map(map: &str, uid: u32) -> u32 {
    for line in map.lines() {
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        if let [inside, outside, count] = f[..] {
            let u = u64::from(uid);
            if u >= inside && u - inside < count {
                return u32::try_from(outside + (u - inside)).unwrap_or(uid);
            }
        }
    }
    uid
}

/// runc's `--rootless=auto`: rootless unless run as the host's root.
pub fn rootless_by_default() -> bool {
    !nix::unistd::geteuid().is_root() || in_user_namespace()
}

/// The home directory of `uid` from the container's /etc/passwd, or "/".
pub fn home_of(uid: u32) -> String {
    let data = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    data.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
        })
        .next()
        .unwrap_or_else(|| "/".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_go_through_the_map() {
        let podman = "         0       1000          1\n         1     100000      65536\n";
        assert_eq!(super::through_map(podman, 0), 1000);
        assert_eq!(super::through_map(podman, 1), 100000);
        assert_eq!(super::through_map(podman, 65536), 165535);
        assert_eq!(super::through_map(podman, 70000), 70000, "unmapped");
        assert_eq!(super::through_map("0 0 4294967295\n", 1001), 1001);
    }
}
