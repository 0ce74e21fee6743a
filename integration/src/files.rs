//! Temp dirs (unmounting what is mounted below them on drop), the mount
//! table, and small file helpers.

use crate::names::unique;
use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A directory under /tmp removed (after lazily unmounting anything mounted
/// below it) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = PathBuf::from("/tmp").join(unique(prefix));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        // World-traversable so user-namespaced containers can reach rootfs.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir { path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn join<P: AsRef<Path>>(&self, p: P) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        unmount_under(&self.path);
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Mount points (from /proc/self/mountinfo) at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().to_string();
    mountinfo()
        .iter()
        .filter_map(|l| l.split(' ').nth(4).map(unescape_mount))
        .filter(|mp| mp == &prefix || mp.starts_with(&format!("{prefix}/")))
        .collect()
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Lazily unmount everything mounted at or below `dir` (deepest first).
pub fn unmount_under(dir: &Path) {
    for _ in 0..4 {
        let mut mps = mounts_under(dir);
        if mps.is_empty() {
            return;
        }
        mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mp in mps {
            if let Ok(c) = CString::new(mp) {
                // SAFETY: umount2 with a valid C string; detaching a test mount.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

pub fn mountinfo() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Read a whole file descriptor-less path helper used by tests.
pub fn read_file(p: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = fs::File::open(p) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// Poll until `path` exists (true) or the timeout passes (false).
pub fn wait_for_path(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    path.exists()
}
