//! Shared by security.rs: the hostile helpers built at test time and a
//! private copy of the runtime binary, so an attack that works can only
//! damage the copy.
#![allow(dead_code)]

use integration::*;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const ATTACK_C: &str = include_str!("attack.c");
pub const PAYLOAD_C: &str = include_str!("payload.c");

fn gcc(args: &[&str]) {
    let out = run_with_timeout(Command::new("gcc").args(args), TIMEOUT, None);
    assert!(out.success(), "gcc is needed: {}", out.describe());
}

/// `/bin/attack` (attack.c, static) in the bundle's rootfs.
pub fn install_attack(scratch: &Path, b: &Bundle) {
    let src = scratch.join("attack.c");
    std::fs::write(&src, ATTACK_C).expect("write attack.c");
    let bin = b.rootfs().join("bin/attack");
    gcc(&[
        "-static",
        "-O1",
        "-o",
        bin.to_str().expect("utf8"),
        src.to_str().expect("utf8"),
    ]);
}

/// payload.c (no libc) as the rootfs's dynamic loader, so that any
/// dynamically linked binary exec'd in the container, the runtime's own
/// included, runs it. Also installs /bin/attack, which it execs.
pub fn install_payload(scratch: &Path, b: &Bundle, interp: &str) {
    install_attack(scratch, b);
    let src = scratch.join("payload.c");
    std::fs::write(&src, PAYLOAD_C).expect("write payload.c");
    let dst = b.rootfs().join(interp.trim_start_matches('/'));
    std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
    gcc(&[
        "-static",
        "-nostdlib",
        "-O1",
        "-fno-stack-protector",
        "-fno-builtin",
        "-o",
        dst.to_str().expect("utf8"),
        src.to_str().expect("utf8"),
    ]);
}

/// The ELF interpreter (PT_INTERP) of `bin`, if it is dynamically linked.
pub fn elf_interp(bin: &Path) -> Option<String> {
    let out = run_with_timeout(
        Command::new("readelf").args(["-lW"]).arg(bin),
        TIMEOUT,
        None,
    );
    out.stdout.lines().find_map(|l| {
        l.split("[Requesting program interpreter: ")
            .nth(1)
            .map(|r| r.trim_end_matches(']').to_string())
    })
}

/// A copy of the runtime under test, with its sha256, in `dir`.
pub struct RuntimeCopy {
    pub path: PathBuf,
    pub hash: String,
}

pub fn sha256(p: &Path) -> String {
    let out = run_with_timeout(Command::new("sha256sum").arg(p), TIMEOUT, None).ok();
    out.stdout
        .split_whitespace()
        .next()
        .expect("hash")
        .to_string()
}

impl RuntimeCopy {
    pub fn new(dir: &Path) -> RuntimeCopy {
        let path = dir.join("oxrun-under-attack");
        std::fs::copy(runtime_bin(), &path).expect("copy the runtime");
        let hash = sha256(&path);
        RuntimeCopy { path, hash }
    }

    /// The copy must be byte-for-byte what it was.
    pub fn assert_unchanged(&self) {
        assert_eq!(
            sha256(&self.path),
            self.hash,
            "the runtime binary was modified from inside the container"
        );
    }
}

/// True when the runtime under test is runc.
pub fn is_runc() -> bool {
    runtime_bin()
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("runc"))
}
