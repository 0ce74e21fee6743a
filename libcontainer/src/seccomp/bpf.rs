//! Classic BPF for seccomp: instruction encoding, an assembler that builds a
//! program from its end backwards (BPF only jumps forward, so every target
//! is already placed when a jump to it is emitted, and far conditional
//! jumps get a trampoline), and the code of argument comparisons on 64-bit
//! values as two 32-bit halves, the way libseccomp compiles them.

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
pub use crate::sys::SockFilter as Insn;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cond {
    pub index: u32,
    pub op: Op,
    pub value: u64,
}

/// One rule: all conditions must hold (AND), then return `action`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    pub conds: Vec<Cond>,
    pub action: u32,
}

/// A placed instruction, counted from the end of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label(usize);

/// The largest conditional jump BPF can encode.
const MAX_COND_JUMP: usize = u8::MAX as usize;

/// Builds a program backwards: `rev[0]` is the last instruction.
#[derive(Default)]
pub struct Asm {
    rev: Vec<Insn>,
}

impl Asm {
    pub fn new() -> Asm {
        Asm::default()
    }

    pub fn len(&self) -> usize {
        self.rev.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rev.is_empty()
    }

    /// Offset from the next instruction to be emitted to `t`.
    fn dist(&self, t: Label) -> usize {
        self.rev.len() - t.0 - 1
    }

    fn push(&mut self, i: Insn) -> Label {
        self.rev.push(i);
        Label(self.rev.len() - 1)
    }

    /// An instruction that falls through to the one emitted before it.
    pub fn stmt(&mut self, code: u16, k: u32) -> Label {
        self.push(stmt(code, k))
    }

    pub fn ret(&mut self, k: u32) -> Label {
        self.stmt(RET_K, k)
    }

    /// Make the next emitted instruction continue at `t`: nothing if `t` is
    /// the last emitted one, otherwise a copy of a `ret` or a `ja`.
    pub fn goto(&mut self, t: Label) -> Label {
        if self.dist(t) == 0 {
            return t;
        }
        let target = self.rev[t.0];
        if target.code == RET_K {
            return self.push(target);
        }
        let k = self.dist(t) as u32;
        self.push(stmt(JMP_JA, k))
    }

    /// A conditional jump; targets farther than 255 get a trampoline.
    pub fn jump(&mut self, code: u16, k: u32, mut jt: Label, mut jf: Label) -> Label {
        loop {
            if self.dist(jt) > MAX_COND_JUMP {
                jt = self.goto(jt);
            } else if self.dist(jf) > MAX_COND_JUMP {
                jf = self.goto(jf);
            } else {
                break;
            }
        }
        let (t, f) = (self.dist(jt) as u8, self.dist(jf) as u8);
        self.push(Insn {
            code,
            jt: t,
            jf: f,
            k,
        })
    }

    /// The program in execution order.
    pub fn finish(mut self) -> Vec<Insn> {
        self.rev.reverse();
        self.rev
    }
}

/// Emit the check of one condition: continue at `ok` when it holds, at
/// `fail` otherwise. `wide` = 64-bit ABI (compare both halves); 32-bit ABIs
/// only have the low half. Returns the entry.
pub fn cond(a: &mut Asm, c: &Cond, wide: bool, ok: Label, fail: Label) -> Label {
    let lo_off = OFF_ARGS + 8 * c.index;
    let hi_off = lo_off + 4;
    let (vhi, vlo) = ((c.value >> 32) as u32, c.value as u32);
    // The low-half test, ending the condition.
    let low = |a: &mut Asm| -> Label {
        match c.op {
            Op::Eq | Op::MaskedEq(_) => a.jump(JMP_JEQ_K, vlo, ok, fail),
            Op::Ne => a.jump(JMP_JEQ_K, vlo, fail, ok),
            Op::Gt => a.jump(JMP_JGT_K, vlo, ok, fail),
            Op::Ge => a.jump(JMP_JGE_K, vlo, ok, fail),
            Op::Lt => a.jump(JMP_JGE_K, vlo, fail, ok),
            Op::Le => a.jump(JMP_JGT_K, vlo, fail, ok),
        };
        if let Op::MaskedEq(m) = c.op {
            a.stmt(ALU_AND_K, m as u32);
        }
        a.stmt(LD_W_ABS, lo_off)
    };
    let lo = low(a);
    if !wide {
        return lo;
    }
    // The high half decides unless it is equal to the value's.
    match c.op {
        Op::Eq => {
            a.jump(JMP_JEQ_K, vhi, lo, fail);
        }
        Op::Ne => {
            a.jump(JMP_JEQ_K, vhi, lo, ok);
        }
        Op::MaskedEq(m) => {
            a.jump(JMP_JEQ_K, vhi, lo, fail);
            a.stmt(ALU_AND_K, (m >> 32) as u32);
        }
        Op::Gt | Op::Ge => {
            let eq = a.jump(JMP_JEQ_K, vhi, lo, fail);
            a.jump(JMP_JGT_K, vhi, ok, eq);
        }
        Op::Lt | Op::Le => {
            let eq = a.jump(JMP_JEQ_K, vhi, lo, fail);
            a.jump(JMP_JGE_K, vhi, eq, ok);
        }
    }
    a.stmt(LD_W_ABS, hi_off)
}

/// Emit one rule: when all its conditions hold, continue at `matched`
/// (its `ret`), otherwise at `next`. Returns the entry.
pub fn rule(a: &mut Asm, r: &Rule, wide: bool, matched: Label, next: Label) -> Label {
    let mut ok = matched;
    for c in r.conds.iter().rev() {
        ok = cond(a, c, wide, ok, next);
    }
    ok
}

/// A tiny BPF interpreter for the programs [`Asm`] emits: runs `prog` on a
/// seccomp_data and returns the action and the number of instructions
/// executed. A program it cannot follow (unknown opcode, a jump or load out
/// of range, no `ret`) yields `None`.
pub fn eval(prog: &[Insn], nr: u32, arch: u32, args: [u64; 6]) -> Option<(u32, usize)> {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let (mut acc, mut pc, mut steps) = (0u32, 0usize, 0usize);
    loop {
        let ins = *prog.get(pc)?;
        pc += 1;
        steps += 1;
        match ins.code {
            LD_W_ABS => {
                let o = ins.k as usize;
                acc = u32::from_le_bytes(data.get(o..o + 4)?.try_into().ok()?);
            }
            ALU_AND_K => acc &= ins.k,
            JMP_JA => pc += ins.k as usize,
            RET_K => return Some((ins.k, steps)),
            code => {
                let taken = match code {
                    JMP_JEQ_K => acc == ins.k,
                    JMP_JGT_K => acc > ins.k,
                    JMP_JGE_K => acc >= ins.k,
                    _ => return None,
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
        }
    }
}

/// [`eval`] for unit tests (panics on a program it cannot follow).
#[cfg(test)]
pub fn run_counting(prog: &[Insn], nr: u32, arch: u32, args: [u64; 6]) -> (u32, usize) {
    eval(prog, nr, arch, args).expect("a program the interpreter can follow")
}

/// [`run_counting`] without the count.
#[cfg(test)]
pub fn run(prog: &[Insn], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    run_counting(prog, nr, arch, args).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_jumps_get_trampolines() {
        let mut a = Asm::new();
        let far = a.ret(7);
        for i in 0..300 {
            a.ret(1000 + i);
        }
        let near = a.ret(8);
        a.jump(JMP_JEQ_K, 1, far, near);
        a.stmt(LD_W_ABS, OFF_NR);
        let p = a.finish();
        assert_eq!(run(&p, 1, 0, [0; 6]), 7);
        assert_eq!(run(&p, 2, 0, [0; 6]), 8);
        // The far `ret` was copied rather than jumped to.
        assert_eq!(run_counting(&p, 1, 0, [0; 6]).1, 3);
    }
}
