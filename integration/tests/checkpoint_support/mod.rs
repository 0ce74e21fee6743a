//! What the checkpoint tests share: finding a working criu and reading the
//! count a counting container keeps in `<data>/count`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::TIMEOUT;

/// Where criu may be, in order: `OXRUN_TEST_CRIU`, then scripts/criu.sh's
/// 4.2.1.
pub fn criu_candidates() -> impl Iterator<Item = PathBuf> {
    [
        std::env::var("OXRUN_TEST_CRIU").ok().map(PathBuf::from),
        Some(PathBuf::from("/opt/oxrun-test/criu-4.2.1/criu")),
    ]
    .into_iter()
    .flatten()
}

/// `criu --version` succeeds.
pub fn criu_works(criu: &Path) -> bool {
    Command::new(criu)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The count in `data` (0 while there is none, or the file is being
/// rewritten).
pub fn count(data: &Path) -> u64 {
    fs::read_to_string(data.join("count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Wait until the count in `data` exceeds `above`; returns it.
pub fn wait_count_above(data: &Path, above: u64) -> u64 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let c = count(data);
        if c > above {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "count in {} stayed at {c} (waiting for > {above})",
            data.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
