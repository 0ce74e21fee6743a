//! The binary's two one-shot actions. `start`: find or create the shim's
//! socket, fork the serving daemon (new session, stdio on /dev/null,
//! subreaper, oom_score_adj one above containerd's), print the address.
//! `delete`: clean up after a shim that died.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::Message;
use libcontainer::container;

use crate::args::Args;
use crate::events::timestamp;
use crate::mounts;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{op}: {errno}")]
    Sys {
        op: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("socket path {0} is longer than 106 bytes")]
    TooLong(String),
}

const SOCKET_DIR: &str = "/run/containerd/s";
const GROUP_ANNOTATIONS: [&str; 2] = [
    "io.kubernetes.cri.sandbox-id",
    "io.containerd.runc.v2.group",
];

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StartError + 'a {
    move |source| StartError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Containers of one group (a pod) share a shim: the group id comes from
/// the bundle's annotations, else it is the container id.
pub fn group_id(bundle: &Path, id: &str) -> String {
    let Ok(raw) = std::fs::read(bundle.join("config.json")) else {
        return id.to_string();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw) else {
        return id.to_string();
    };
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|k| v["annotations"][k].as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(id)
        .to_string()
}

/// `/run/containerd/s/<sha256(address/namespace/group)>`, as the Go shims.
pub fn socket_path(address: &str, namespace: &str, group: &str) -> String {
    let key = Path::new(address).join(namespace).join(group);
    format!(
        "{SOCKET_DIR}/{}",
        crate::sha256::hex(key.as_os_str().as_encoded_bytes())
    )
}

fn write_address(bundle: &Path, address: &str) -> Result<(), StartError> {
    let path = bundle.join("address");
    let tmp = bundle.join(".address.tmp");
    std::fs::write(&tmp, address).map_err(io_err("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err("rename", &path))
}

fn containerd_oom_score() -> i32 {
    std::fs::read_to_string(format!("/proc/{}/oom_score_adj", nix::unistd::getppid()))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The daemon half, in the forked child: detach and serve.
fn become_daemon(oom_score: i32) -> Result<(), StartError> {
    let sys = |op: &'static str| move |errno| StartError::Sys { op, errno };
    nix::unistd::setsid().map_err(sys("setsid"))?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(io_err("open", Path::new("/dev/null")))?;
    for fd in 0..3 {
        nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd)
            .map_err(sys("dup2 /dev/null"))?;
    }
    nix::unistd::chdir("/").map_err(sys("chdir /"))?;
    nix::sys::prctl::set_child_subreaper(true).map_err(sys("PR_SET_CHILD_SUBREAPER"))?;
    let score = (oom_score + 1).clamp(-1000, 1000);
    // Raising our score needs no privilege; failing to is not fatal.
    let _ = std::fs::write("/proc/self/oom_score_adj", score.to_string());
    Ok(())
}

/// `start`: returns the listener in the daemon, `None` in the parent
/// (which has printed the address and should exit).
pub fn start(a: &Args) -> Result<Option<UnixListener>, StartError> {
    let bundle = if a.bundle.is_empty() {
        std::env::current_dir().map_err(io_err("getcwd", Path::new(".")))?
    } else {
        PathBuf::from(&a.bundle)
    };
    let group = group_id(&bundle, &a.id);
    let path = socket_path(&a.address, &a.namespace, &group);
    if path.len() > 106 {
        return Err(StartError::TooLong(path));
    }
    let address = format!("unix://{path}");
    // A live shim of the same group: share it.
    if UnixStream::connect(&path).is_ok() {
        write_address(&bundle, &address)?;
        print_address(&address);
        return Ok(None);
    }
    std::fs::create_dir_all(SOCKET_DIR).map_err(io_err("create", Path::new(SOCKET_DIR)))?;
    let _ = std::fs::remove_file(&path);
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(&path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(io_err("bind", Path::new(&path)))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("chmod", Path::new(&path)))?;
    let oom_score = containerd_oom_score();
    // SAFETY: the shim is single-threaded here; the child continues in Rust
    // code that does not rely on other threads.
    match unsafe { nix::unistd::fork() }.map_err(|errno| StartError::Sys { op: "fork", errno })? {
        nix::unistd::ForkResult::Child => {
            become_daemon(oom_score)?;
            Ok(Some(listener))
        }
        nix::unistd::ForkResult::Parent { .. } => {
            drop(listener);
            write_address(&bundle, &address)?;
            print_address(&address);
            Ok(None)
        }
    }
}

fn print_address(address: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(address.as_bytes());
    let _ = out.flush();
}

/// `delete`: the shim died; remove the container and report it killed.
pub fn delete(a: &Args) -> Vec<u8> {
    let bundle = if a.bundle.is_empty() {
        std::env::current_dir().unwrap_or_default()
    } else {
        PathBuf::from(&a.bundle)
    };
    let pid = cleanup_after_crash(&bundle, &a.id, &a.namespace);
    delete_response(pid)
}

/// For the `delete` action: what a dead shim's container left.
fn cleanup_after_crash(bundle: &Path, id: &str, namespace: &str) -> u32 {
    let root = std::fs::read(bundle.join(crate::ROOT_FILE))
        .map(|b| PathBuf::from(String::from_utf8_lossy(&b).into_owned()))
        .unwrap_or_else(|_| crate::service::default_root(namespace));
    let _ = container::delete(&root, id, true);
    mounts::unmount_rootfs(bundle);
    let _ = std::fs::remove_file(bundle.join(crate::ROOT_FILE));
    std::fs::read_to_string(bundle.join("init.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The `delete` action's reply.
fn delete_response(pid: u32) -> Vec<u8> {
    let mut r = api::DeleteResponse::new();
    r.pid = pid;
    r.exit_status = 128 + libc::SIGKILL as u32;
    r.exited_at = Some(timestamp(SystemTime::now())).into();
    r.write_to_bytes().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_name_is_sha256_of_the_group_key() {
        let p = socket_path("/run/containerd/containerd.sock", "default", "c1");
        let want = crate::sha256::hex(b"/run/containerd/containerd.sock/default/c1");
        assert_eq!(p, format!("/run/containerd/s/{want}"));
        assert!(p.len() <= 106);
    }

    #[test]
    fn group_from_annotations() {
        let d = std::env::temp_dir().join(format!("oxshim-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}"#,
        )
        .unwrap();
        assert_eq!(group_id(&d, "c2"), "pod1");
        std::fs::write(d.join("config.json"), "{}").unwrap();
        assert_eq!(group_id(&d, "c2"), "c2");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
