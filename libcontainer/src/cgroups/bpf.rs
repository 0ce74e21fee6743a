//! The cgroup v2 device filter: a `BPF_PROG_TYPE_CGROUP_DEVICE` program
//! written by hand from the device rules, loaded with bpf(2) and attached
//! to the container's cgroup with `BPF_PROG_ATTACH` (`BPF_F_ALLOW_MULTI`,
//! like runc). The attachment outlives our fd; rmdir of the cgroup frees it.
//!
//! Semantics are the v1 list's: rules apply in order and a later rule wins,
//! so the program tests them last to first and returns at the first match;
//! no match denies. An allow rule matches when the requested access is a
//! subset of its access, a deny rule when they overlap.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::devices::{DevType, Rule, ACC_ALL};
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("rule {0}: device number too large for the BPF filter")]
    Number(String),
    #[error("{op} {}: {source}{log}", path.display())]
    Sys {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
        log: String,
    },
}

/// One eBPF instruction (`struct bpf_insn`).
pub use crate::sys::BpfInsn as Insn;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

// Opcodes (class | op | source).
const LDX_MEM_W: u8 = 0x61;
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_K: u8 = 0xb4;
const ALU32_MOV_X: u8 = 0xbc;
const JMP_JEQ_K: u8 = 0x15;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;

// bpf_cgroup_dev_ctx device types.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// A conditional jump to the end of the current block, patched later.
const NEXT: i16 = i16::MIN;

fn block(rule: &Rule) -> Result<Vec<Insn>, BpfError> {
    let num = |v: u32| i32::try_from(v).map_err(|_| BpfError::Number(rule.v1_string()));
    let mut b = Vec::new();
    match rule.typ {
        DevType::All => {}
        DevType::Char => b.push(insn(JMP_JNE_K, 2, 0, NEXT, DEV_CHAR)),
        DevType::Block => b.push(insn(JMP_JNE_K, 2, 0, NEXT, DEV_BLOCK)),
    }
    if rule.access != ACC_ALL {
        b.push(insn(ALU32_MOV_X, 1, 3, 0, 0));
        if rule.allow {
            // Requested bits outside the rule's access: not this rule.
            b.push(insn(
                ALU32_AND_K,
                1,
                0,
                0,
                i32::from(!rule.access & ACC_ALL),
            ));
            b.push(insn(JMP_JNE_K, 1, 0, NEXT, 0));
        } else {
            // No requested bit is denied by this rule: not this rule.
            b.push(insn(ALU32_AND_K, 1, 0, 0, i32::from(rule.access)));
            b.push(insn(JMP_JEQ_K, 1, 0, NEXT, 0));
        }
    }
    if let Some(m) = rule.major {
        b.push(insn(JMP_JNE_K, 4, 0, NEXT, num(m)?));
    }
    if let Some(m) = rule.minor {
        b.push(insn(JMP_JNE_K, 5, 0, NEXT, num(m)?));
    }
    b.push(insn(ALU32_MOV_K, 0, 0, 0, i32::from(rule.allow)));
    b.push(insn(JMP_EXIT, 0, 0, 0, 0));
    let len = b.len();
    for (i, ins) in b.iter_mut().enumerate() {
        if ins.off == NEXT {
            // Offsets count from the next instruction; blocks are short.
            ins.off = (len - i - 1) as i16;
        }
    }
    Ok(b)
}

/// The filter program for `rules` (in spec order).
pub fn program(rules: &[Rule]) -> Result<Vec<Insn>, BpfError> {
    let mut p = vec![
        // r2 = type (low 16 bits of access_type), r3 = access (high 16).
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        // r4 = major, r5 = minor.
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        p.extend(block(rule)?);
        if rule.is_total() {
            // Nothing before it can be reached.
            return Ok(p);
        }
    }
    p.push(insn(ALU32_MOV_K, 0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    Ok(p)
}

fn load(prog: &[Insn], dir: &Path) -> Result<OwnedFd, BpfError> {
    let license = c"Apache";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"oxrun_devcgr");
    let kind = BPF_PROG_TYPE_CGROUP_DEVICE;
    match sys::bpf_prog_load(kind, prog, license, name, None) {
        Ok(fd) => Ok(fd),
        Err(errno) => {
            // Load again with the verifier log, for the error message.
            let mut log = vec![0u8; 64 * 1024];
            if let Ok(fd) = sys::bpf_prog_load(kind, prog, license, name, Some(&mut log)) {
                return Ok(fd);
            }
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
            Err(BpfError::Sys {
                op: "load the device filter for",
                path: dir.to_path_buf(),
                source: errno.into(),
                log: if text.is_empty() {
                    String::new()
                } else {
                    format!(" (verifier: {text})")
                },
            })
        }
    }
}

fn sys_err<'a, E: Into<std::io::Error>>(
    op: &'static str,
    dir: &'a Path,
) -> impl FnOnce(E) -> BpfError + 'a {
    move |e| BpfError::Sys {
        op,
        path: dir.to_path_buf(),
        source: e.into(),
        log: String::new(),
    }
}

/// Ids of the device programs attached directly to the cgroup.
fn attached(cg: &OwnedFd, dir: &Path) -> Result<Vec<u32>, BpfError> {
    let mut ids = [0u32; 64];
    let n = sys::bpf_prog_query(cg.as_fd(), BPF_CGROUP_DEVICE, &mut ids)
        .map_err(sys_err("query device filters of", dir))?;
    Ok(ids[..n.min(ids.len())].to_vec())
}

/// Load the filter for `rules` and make it the only device program
/// attached to `dir` (programs attached before are detached after the new
/// one is in place, so there is no moment without a filter).
pub fn attach(dir: &Path, rules: &[Rule]) -> Result<(), BpfError> {
    let prog = program(rules)?;
    let cg = std::fs::File::open(dir)
        .map(OwnedFd::from)
        .map_err(sys_err("open", dir))?;
    let old = attached(&cg, dir)?;
    let fd = load(&prog, dir)?;
    sys::bpf_prog_attach(cg.as_fd(), fd.as_fd(), BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        .map_err(sys_err("attach the device filter to", dir))?;
    for id in old {
        let old_fd =
            sys::bpf_prog_get_fd_by_id(id).map_err(sys_err("get an old device filter of", dir))?;
        sys::bpf_prog_detach(cg.as_fd(), old_fd.as_fd(), BPF_CGROUP_DEVICE)
            .map_err(sys_err("detach an old device filter of", dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::devices::{self, ACC_MKNOD, ACC_READ, ACC_WRITE, DEFAULT_ALLOWED};
    use super::*;

    /// A tiny interpreter for the instructions `program` emits.
    fn run(p: &[Insn], typ: i32, access: u8, major: u32, minor: u32) -> u64 {
        let ctx = [(typ as u32) | (u32::from(access) << 16), major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = u64::from(ctx[(i.off / 4) as usize]),
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                ALU32_MOV_K => r[dst] = i.imm as u32 as u64,
                ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                JMP_JEQ_K if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
                JMP_JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                JMP_JEQ_K | JMP_JNE_K => {}
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn rules(json: &str) -> Vec<Rule> {
        let list: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
            serde_json::from_str(json).expect("json");
        let mut r = devices::parse(&list).expect("rules");
        r.extend_from_slice(DEFAULT_ALLOWED);
        r
    }

    #[test]
    fn default_deny_with_runc_defaults() {
        let p = program(&rules(r#"[{"allow":false,"access":"rwm"}]"#)).expect("prog");
        assert_eq!(
            run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3),
            1,
            "/dev/null"
        );
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 136, 7), 1, "pts");
        assert_eq!(run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0), 1, "mknod");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "sda");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 1), 0, "/dev/mem");
    }

    #[test]
    fn order_and_partial_access() {
        let p = program(&rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"b","major":8,"minor":20,"access":"r"},
                {"allow":true,"type":"c","major":1,"minor":1,"access":"rwm"},
                {"allow":false,"type":"c","major":1,"minor":1,"access":"w"}]"#,
        ))
        .expect("prog");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 20), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ | ACC_WRITE, 8, 20), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 1), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 1), 0);
        // A later deny-all wins over everything before it.
        let p = program(&[
            rules(r#"[{"allow":true,"type":"c","major":1,"minor":1,"access":"rwm"}]"#)[0],
            rules(r#"[{"allow":false,"access":"rwm"}]"#)[0],
        ])
        .expect("prog");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 1), 0);
        // allow-all (privileged) is one block.
        let p = program(&rules(r#"[{"allow":true,"access":"rwm"}]"#)[..1]).expect("prog");
        assert_eq!(p.len(), 8);
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 8, 0), 1);
    }
}
