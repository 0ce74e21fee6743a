//! Classic BPF for seccomp: instruction encoding and the code for one
//! syscall's rules (argument comparisons on 64-bit values as two 32-bit
//! halves, the way libseccomp compiles them).

use std::fmt;

pub const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
pub const JMP_JEQ_K: u16 = 0x15;
pub const JMP_JGT_K: u16 = 0x25;
pub const JMP_JGE_K: u16 = 0x35;
pub const JMP_JA: u16 = 0x05;
pub const ALU_AND_K: u16 = 0x54;
pub const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
pub const OFF_ARGS: u32 = 16;

/// One BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl fmt::Debug for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{{:#06x} {} {} {:#x}}}",
            self.code, self.jt, self.jf, self.k
        )
    }
}

pub fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A comparison operator as OCI names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & mask) == value`
    MaskedEq(u64),
}

/// One argument condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    pub index: u32,
    pub op: Op,
    pub value: u64,
}

/// Where a conditional jump goes before the rule's length is known.
#[derive(Clone, Copy)]
enum Target {
    /// The next instruction.
    Next,
    /// `n` instructions further on (past the condition).
    Skip(u8),
    /// The condition failed: go to the next rule.
    Fail,
}

struct Pending {
    code: u16,
    k: u32,
    jt: Target,
    jf: Target,
}

fn ld(off: u32) -> Pending {
    Pending {
        code: LD_W_ABS,
        k: off,
        jt: Target::Next,
        jf: Target::Next,
    }
}

fn jmp(code: u16, k: u32, jt: Target, jf: Target) -> Pending {
    Pending { code, k, jt, jf }
}

/// Code for one condition; falls through when it holds, jumps to Fail
/// otherwise. `wide` = 64-bit ABI (compare both halves); 32-bit ABIs only
/// have the low half.
fn cond_code(c: &Cond, wide: bool, out: &mut Vec<Pending>) {
    use Target::*;
    let lo_off = OFF_ARGS + 8 * c.index;
    let hi_off = lo_off + 4;
    let (vhi, vlo) = ((c.value >> 32) as u32, c.value as u32);
    if !wide {
        out.push(ld(lo_off));
        match c.op {
            Op::Eq => out.push(jmp(JMP_JEQ_K, vlo, Next, Fail)),
            Op::Ne => out.push(jmp(JMP_JEQ_K, vlo, Fail, Next)),
            Op::Gt => out.push(jmp(JMP_JGT_K, vlo, Next, Fail)),
            Op::Ge => out.push(jmp(JMP_JGE_K, vlo, Next, Fail)),
            Op::Lt => out.push(jmp(JMP_JGE_K, vlo, Fail, Next)),
            Op::Le => out.push(jmp(JMP_JGT_K, vlo, Fail, Next)),
            Op::MaskedEq(m) => {
                out.push(jmp(ALU_AND_K, m as u32, Next, Next));
                out.push(jmp(JMP_JEQ_K, vlo, Next, Fail));
            }
        }
        return;
    }
    match c.op {
        Op::Eq => {
            out.extend([
                ld(hi_off),
                jmp(JMP_JEQ_K, vhi, Next, Fail),
                ld(lo_off),
                jmp(JMP_JEQ_K, vlo, Next, Fail),
            ]);
        }
        Op::Ne => {
            // Holds if either half differs.
            out.extend([
                ld(hi_off),
                jmp(JMP_JEQ_K, vhi, Next, Skip(2)),
                ld(lo_off),
                jmp(JMP_JEQ_K, vlo, Fail, Next),
            ]);
        }
        Op::MaskedEq(m) => {
            let (mhi, mlo) = ((m >> 32) as u32, m as u32);
            out.extend([
                ld(hi_off),
                jmp(ALU_AND_K, mhi, Next, Next),
                jmp(JMP_JEQ_K, vhi, Next, Fail),
                ld(lo_off),
                jmp(ALU_AND_K, mlo, Next, Next),
                jmp(JMP_JEQ_K, vlo, Next, Fail),
            ]);
        }
        Op::Gt | Op::Ge => {
            // hi > vhi: holds; hi < vhi: fails; equal: decide on lo.
            let lo_cmp = if c.op == Op::Gt { JMP_JGT_K } else { JMP_JGE_K };
            out.extend([
                ld(hi_off),
                jmp(JMP_JGT_K, vhi, Skip(3), Next),
                jmp(JMP_JEQ_K, vhi, Next, Fail),
                ld(lo_off),
                jmp(lo_cmp, vlo, Next, Fail),
            ]);
        }
        Op::Lt | Op::Le => {
            // hi < vhi: holds; hi > vhi: fails; equal: decide on lo.
            let lo_cmp = if c.op == Op::Lt { JMP_JGE_K } else { JMP_JGT_K };
            out.extend([
                ld(hi_off),
                jmp(JMP_JGE_K, vhi, Next, Skip(3)),
                jmp(JMP_JEQ_K, vhi, Next, Fail),
                ld(lo_off),
                jmp(lo_cmp, vlo, Fail, Next),
            ]);
        }
    }
}

/// A rule whose conditions need a jump longer than BPF's 8-bit offsets.
#[derive(Debug)]
pub struct JumpTooFar;

fn resolve(t: Target, i: usize, len: usize) -> Result<u8, JumpTooFar> {
    match t {
        Target::Next => Ok(0),
        Target::Skip(n) => Ok(n),
        Target::Fail => u8::try_from(len - i - 1).map_err(|_| JumpTooFar),
    }
}

/// One rule: all conditions must hold (AND), then return `action`.
pub struct Rule {
    pub conds: Vec<Cond>,
    pub action: u32,
}

/// The code of one rule; on a failed condition it falls through to the end
/// (the next rule). Err if a jump would not fit in 8 bits.
pub fn rule_code(rule: &Rule, wide: bool) -> Result<Vec<Insn>, JumpTooFar> {
    let mut pend = Vec::new();
    for c in &rule.conds {
        cond_code(c, wide, &mut pend);
    }
    let len = pend.len() + 1;
    let mut out = Vec::with_capacity(len);
    for (i, p) in pend.iter().enumerate() {
        out.push(Insn {
            code: p.code,
            k: p.k,
            jt: resolve(p.jt, i, len)?,
            jf: resolve(p.jf, i, len)?,
        });
    }
    out.push(stmt(RET_K, rule.action));
    Ok(out)
}

/// A tiny BPF interpreter for unit tests: runs `prog` on seccomp_data.
#[cfg(test)]
pub fn run(prog: &[Insn], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let ins = prog[pc];
        pc += 1;
        match ins.code {
            LD_W_ABS => {
                let o = ins.k as usize;
                acc = u32::from_le_bytes(data[o..o + 4].try_into().expect("4 bytes"));
            }
            ALU_AND_K => acc &= ins.k,
            JMP_JA => pc += ins.k as usize,
            RET_K => return ins.k,
            code => {
                let taken = match code {
                    JMP_JEQ_K => acc == ins.k,
                    JMP_JGT_K => acc > ins.k,
                    JMP_JGE_K => acc >= ins.k,
                    _ => panic!("unknown opcode {code:#x}"),
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
        }
    }
}
