//! Linux namespaces from the spec: which to create, which to join by path.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("linux.namespaces: open {path} ({kind}): {errno}")]
    Open {
        kind: String,
        path: PathBuf,
        errno: Errno,
    },
    #[error("linux.namespaces: join {kind} namespace {path}: {errno}")]
    Join {
        kind: String,
        path: PathBuf,
        errno: Errno,
    },
    #[error("unshare({flags:#x}): {errno}")]
    Unshare { flags: i32, errno: Errno },
}

/// Every namespace type a container can create or join (each has its
/// clone flag below); `features` lists them.
pub const KINDS: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::User,
    LinuxNamespaceType::Uts,
];

pub fn clone_flag(t: LinuxNamespaceType) -> i32 {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// A namespace to join, opened before anything is created.
pub struct Join {
    pub kind: LinuxNamespaceType,
    pub path: PathBuf,
    pub fd: OwnedFd,
}

/// The namespace plan for a container.
pub struct Plan {
    /// CLONE_NEW* flags for namespaces to create.
    pub new_flags: i32,
    /// Namespaces to join; the user namespace, if any, is last.
    pub joins: Vec<Join>,
}

impl Plan {
    pub fn from_spec(list: &[LinuxNamespace]) -> Result<Plan, NamespaceError> {
        let mut plan = Plan {
            new_flags: 0,
            joins: Vec::new(),
        };
        for ns in list {
            match ns.path() {
                None => plan.new_flags |= clone_flag(ns.typ()),
                Some(path) => {
                    let fd =
                        nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                            .map_err(|errno| NamespaceError::Open {
                            kind: ns.typ().to_string(),
                            path: path.clone(),
                            errno,
                        })?;
                    // SAFETY: open returned a fresh fd we now own.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    plan.joins.push(Join {
                        kind: ns.typ(),
                        path: path.clone(),
                        fd,
                    });
                }
            }
        }
        // Join everything else while we still hold our host privileges.
        plan.joins
            .sort_by_key(|j| j.kind == LinuxNamespaceType::User);
        Ok(plan)
    }

    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.new_flags & clone_flag(t) != 0 || self.joins.iter().any(|j| j.kind == t)
    }

    pub fn creates(&self, t: LinuxNamespaceType) -> bool {
        self.new_flags & clone_flag(t) != 0
    }

    /// One clone3 with every flag works unless something must happen between
    /// namespaces: joining by path, or time offsets (writable only before any
    /// process is inside the new time namespace).
    pub fn single_clone(&self) -> bool {
        self.joins.is_empty() && !self.creates(LinuxNamespaceType::Time)
    }

    /// setns() into every namespace that has a path.
    pub fn join_all(&self) -> Result<(), NamespaceError> {
        for j in &self.joins {
            crate::sys::setns(std::os::fd::AsFd::as_fd(&j.fd), clone_flag(j.kind)).map_err(
                |errno| NamespaceError::Join {
                    kind: j.kind.to_string(),
                    path: j.path.clone(),
                    errno,
                },
            )?;
        }
        Ok(())
    }
}

pub fn unshare(flags: i32) -> Result<(), NamespaceError> {
    if flags == 0 {
        return Ok(());
    }
    crate::sys::unshare(flags).map_err(|errno| NamespaceError::Unshare { flags, errno })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: &str) -> Plan {
        let list: Vec<LinuxNamespace> = serde_json::from_str(json).expect("namespaces");
        Plan::from_spec(&list).expect("plan")
    }

    /// What `Created::own_pid_namespace` (and so the shim's kill-all on
    /// the init's exit) rests on: only a `pid` entry without a path is a
    /// PID namespace of the container's own.
    #[test]
    fn own_pid_namespace_only_when_created() {
        let pid = LinuxNamespaceType::Pid;
        assert!(plan(r#"[{"type": "mount"}, {"type": "pid"}]"#).creates(pid));
        assert!(!plan(r#"[{"type": "pid", "path": "/proc/self/ns/pid"}]"#).creates(pid));
        assert!(!plan(r#"[{"type": "mount"}]"#).creates(pid));
    }
}
