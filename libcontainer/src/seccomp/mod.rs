//! OCI `linux.seccomp` compiled in-process to a classic BPF program.
//!
//! Layout: dispatch on `seccomp_data.arch` (x86_64, i386; x32 shares the
//! x86_64 audit arch and is told apart by the syscall bit), then per ABI one
//! block per syscall (`jeq nr`), each holding that syscall's rules in spec
//! order (conditional ones first), falling back to the default action. An
//! ABI the profile does not list gets ENOSYS for every syscall, so a 32-bit
//! `int 0x80` can never slip past rules written for x86_64.

pub mod bpf;
pub mod tables;

use std::collections::BTreeMap;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use bpf::{stmt, Cond, Insn, Op, Rule};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("linux.seccomp: {0}")]
    Invalid(String),
    #[error("linux.seccomp: the filter has {0} instructions, more than the kernel's 4096")]
    TooLong(usize),
    #[error("seccomp(SECCOMP_SET_MODE_FILTER): {0}")]
    Load(nix::errno::Errno),
}

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

/// A compiled filter, ready to load.
#[derive(Debug)]
pub struct Filter {
    pub prog: Vec<Insn>,
    pub flags: u32,
    /// Syscall names no listed ABI knows (skipped, as runc does).
    pub unknown: Vec<String>,
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, SeccompError> {
    let data = |e: Option<u32>| e.unwrap_or(libc::EPERM as u32) & 0xffff;
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data(errno),
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data(errno),
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Invalid(
                "SCMP_ACT_NOTIFY is not supported by this oxrun build yet".into(),
            ))
        }
    })
}

fn op(o: LinuxSeccompOperator) -> Op {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => Op::Ne,
        LinuxSeccompOperator::ScmpCmpLt => Op::Lt,
        LinuxSeccompOperator::ScmpCmpLe => Op::Le,
        LinuxSeccompOperator::ScmpCmpEq => Op::Eq,
        LinuxSeccompOperator::ScmpCmpGe => Op::Ge,
        LinuxSeccompOperator::ScmpCmpGt => Op::Gt,
        LinuxSeccompOperator::ScmpCmpMaskedEq => Op::MaskedEq(0),
    }
}

struct Abi {
    table: &'static [(&'static str, u32)],
    wide: bool,
}

fn lookup(table: &[(&str, u32)], name: &str) -> Option<u32> {
    table
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| table[i].1)
}

/// The blocks for one ABI: `jeq nr` per syscall, then its rules, then the
/// default; after the last block, the default.
fn abi_code(
    abi: &Abi,
    rules: &[(Vec<String>, Rule)],
    default: u32,
) -> Result<Vec<Insn>, SeccompError> {
    // Group by syscall number, keeping spec order; conditional rules first.
    let mut by_nr: BTreeMap<u32, (Vec<&Rule>, Vec<&Rule>)> = BTreeMap::new();
    for (names, rule) in rules {
        for name in names {
            if let Some(nr) = lookup(abi.table, name) {
                let e = by_nr.entry(nr).or_default();
                if rule.conds.is_empty() {
                    e.1.push(rule)
                } else {
                    e.0.push(rule)
                }
            }
        }
    }
    let mut out = Vec::new();
    for (nr, (conditional, plain)) in by_nr {
        let mut block = Vec::new();
        for r in conditional.iter().chain(plain.iter()) {
            let code = bpf::rule_code(r, abi.wide)
                .map_err(|_| SeccompError::Invalid(format!("syscall {nr}: rule too large")))?;
            block.extend(code);
            if r.conds.is_empty() {
                break; // an unconditional rule ends the block
            }
        }
        if plain.is_empty() {
            block.push(stmt(bpf::RET_K, default));
        }
        let skip = u8::try_from(block.len())
            .map_err(|_| SeccompError::Invalid(format!("syscall {nr}: too many rules")))?;
        out.push(Insn {
            code: bpf::JMP_JEQ_K,
            jt: 0,
            jf: skip,
            k: nr,
        });
        out.extend(block);
    }
    out.push(stmt(bpf::RET_K, default));
    Ok(out)
}

/// Compile the spec's seccomp section.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let default = action(s.default_action(), s.default_errno_ret())?;
    let bad_arch = RET_ERRNO | libc::ENOSYS as u32;
    let archs = s.architectures().clone().unwrap_or_default();
    let has = |a: Arch| {
        archs.is_empty() && a == Arch::ScmpArchX86_64
            || archs.contains(&a)
            || (a == Arch::ScmpArchX86_64 && archs.contains(&Arch::ScmpArchNative))
    };
    let mut rules = Vec::new();
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let act = action(sc.action(), sc.errno_ret())?;
        let mut conds = Vec::new();
        for a in sc.args().iter().flatten() {
            if a.index() > 5 {
                return Err(SeccompError::Invalid(format!(
                    "syscalls[{i}].args: index {} is not 0..5",
                    a.index()
                )));
            }
            // MASKED_EQ: (arg & value) == valueTwo, as libseccomp defines it.
            let (o, v) = match op(a.op()) {
                Op::MaskedEq(_) => (Op::MaskedEq(a.value()), a.value_two().unwrap_or(0)),
                o => (o, a.value()),
            };
            conds.push(Cond {
                index: a.index() as u32,
                op: o,
                value: v,
            });
        }
        rules.push((sc.names().clone(), Rule { conds, action: act }));
    }
    let x86_64 = has(Arch::ScmpArchX86_64).then_some(Abi {
        table: tables::X86_64,
        wide: true,
    });
    let x32 = has(Arch::ScmpArchX32).then_some(Abi {
        table: tables::X32,
        wide: true,
    });
    let i386 = has(Arch::ScmpArchX86).then_some(Abi {
        table: tables::I386,
        wide: false,
    });
    let sect = |abi: &Option<Abi>| -> Result<Vec<Insn>, SeccompError> {
        match abi {
            Some(a) => abi_code(a, &rules, default),
            None => Ok(vec![stmt(bpf::RET_K, bad_arch)]),
        }
    };
    let native = sect(&x86_64)?;
    let compat32 = sect(&x32)?;
    let legacy = sect(&i386)?;

    // ld arch; jeq x86_64 -> A; jeq i386 -> C; ret bad_arch
    // A: ld nr; jge X32 -> B; <native> B: <x32> C: ld nr; <i386>
    let mut prog = vec![
        stmt(bpf::LD_W_ABS, bpf::OFF_ARCH),
        Insn {
            code: bpf::JMP_JEQ_K,
            jt: 3, // to A
            jf: 0,
            k: AUDIT_ARCH_X86_64,
        },
        Insn {
            code: bpf::JMP_JEQ_K,
            jt: 0,
            jf: 1,
            k: AUDIT_ARCH_I386,
        },
        stmt(bpf::JMP_JA, 0), // patched: to C
        stmt(bpf::RET_K, bad_arch),
        // A
        stmt(bpf::LD_W_ABS, bpf::OFF_NR),
        Insn {
            code: bpf::JMP_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        stmt(bpf::JMP_JA, native.len() as u32), // to B
    ];
    prog.extend(native);
    prog.extend(compat32);
    let c = prog.len();
    prog[3].k = (c - 4) as u32;
    prog.push(stmt(bpf::LD_W_ABS, bpf::OFF_NR));
    prog.extend(legacy);
    if prog.len() > 4096 {
        return Err(SeccompError::TooLong(prog.len()));
    }
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
        };
    }
    let abis: Vec<&Abi> = [&x86_64, &x32, &i386].into_iter().flatten().collect();
    let unknown = rules
        .iter()
        .flat_map(|(names, _)| names)
        .filter(|n| !abis.iter().any(|a| lookup(a.table, n).is_some()))
        .cloned()
        .collect();
    Ok(Filter {
        prog,
        flags,
        unknown,
    })
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const Insn,
}

impl Filter {
    /// Install the filter on the calling thread (and all, with TSYNC).
    pub fn load(&self) -> Result<(), SeccompError> {
        let fprog = SockFprog {
            len: self.prog.len() as u16,
            filter: self.prog.as_ptr(),
        };
        // SAFETY: fprog points at our program, which outlives the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                1, /* SECCOMP_SET_MODE_FILTER */
                self.flags,
                &fprog as *const SockFprog,
            )
        };
        if r != 0 {
            return Err(SeccompError::Load(nix::errno::Errno::last()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(json: serde_json::Value) -> Filter {
        let s: LinuxSeccomp = serde_json::from_value(json).expect("valid seccomp json");
        compile(&s).expect("compiles")
    }

    fn nr(name: &str) -> u32 {
        lookup(tables::X86_64, name).expect("known")
    }

    const ALLOW: u32 = RET_ALLOW;

    #[test]
    fn default_and_errno() {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "nosuchcall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        }));
        assert_eq!(
            bpf::run(&f.prog, nr("mkdir"), AUDIT_ARCH_X86_64, [0; 6]),
            RET_ERRNO | 13
        );
        assert_eq!(
            bpf::run(&f.prog, nr("read"), AUDIT_ARCH_X86_64, [0; 6]),
            ALLOW
        );
        // x32 and i386 are not listed: ENOSYS, never the default.
        let enosys = RET_ERRNO | libc::ENOSYS as u32;
        assert_eq!(
            bpf::run(
                &f.prog,
                X32_SYSCALL_BIT | nr("mkdir"),
                AUDIT_ARCH_X86_64,
                [0; 6]
            ),
            enosys
        );
        assert_eq!(bpf::run(&f.prog, 39, AUDIT_ARCH_I386, [0; 6]), enosys);
        assert_eq!(f.unknown, vec!["nosuchcall".to_string()]);
    }

    #[test]
    fn i386_rules_use_i386_numbers() {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]
        }));
        let mount32 = lookup(tables::I386, "mount").expect("i386 mount");
        assert_eq!(
            bpf::run(&f.prog, mount32, AUDIT_ARCH_I386, [0; 6]),
            RET_ERRNO | 1
        );
        assert_eq!(
            bpf::run(&f.prog, nr("mount"), AUDIT_ARCH_I386, [0; 6]),
            ALLOW,
            "x86_64 number on i386 is another syscall"
        );
        assert_eq!(
            bpf::run(&f.prog, nr("mount"), AUDIT_ARCH_X86_64, [0; 6]),
            RET_ERRNO | 1
        );
    }

    #[test]
    fn every_operator_on_64_bit_values() {
        let big: u64 = 0x1_0000_0005;
        let cases: &[(&str, [u64; 4], [bool; 4])] = &[
            // op, args tried, whether the rule matches for each
            (
                "SCMP_CMP_EQ",
                [big, 5, big + 1, 0],
                [true, false, false, false],
            ),
            (
                "SCMP_CMP_NE",
                [big, 5, big + 1, 0],
                [false, true, true, true],
            ),
            (
                "SCMP_CMP_GT",
                [big, big + 1, 0x2_0000_0000, 6],
                [false, true, true, false],
            ),
            (
                "SCMP_CMP_GE",
                [big, big + 1, big - 1, 0x2_0000_0000],
                [true, true, false, true],
            ),
            (
                "SCMP_CMP_LT",
                [big, big - 1, 6, 0x2_0000_0000],
                [false, true, true, false],
            ),
            (
                "SCMP_CMP_LE",
                [big, big - 1, big + 1, 0],
                [true, true, false, true],
            ),
        ];
        for (opname, args, want) in cases {
            let f = filter(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": big, "op": opname}]}]
            }));
            for (a, w) in args.iter().zip(want) {
                let got = bpf::run(
                    &f.prog,
                    nr("personality"),
                    AUDIT_ARCH_X86_64,
                    [0, *a, 0, 0, 0, 0],
                );
                assert_eq!(got == RET_ERRNO | 1, *w, "{opname} arg {a:#x}");
            }
        }
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0x7e020000u64, "valueTwo": 0x10000000u64, "op": "SCMP_CMP_MASKED_EQ"}]}]
        }));
        assert_eq!(
            bpf::run(
                &f.prog,
                nr("clone"),
                AUDIT_ARCH_X86_64,
                [0x10000000 | 0x11, 0, 0, 0, 0, 0]
            ),
            RET_ERRNO | 1
        );
        assert_eq!(
            bpf::run(
                &f.prog,
                nr("clone"),
                AUDIT_ARCH_X86_64,
                [0x11, 0, 0, 0, 0, 0]
            ),
            ALLOW
        );
    }

    #[test]
    fn args_and_within_rule_or_across_rules() {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
                {"names": ["socket"], "action": "SCMP_ACT_LOG", "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_EQ"}]}
            ]
        }));
        let s = nr("socket");
        assert_eq!(
            bpf::run(&f.prog, s, AUDIT_ARCH_X86_64, [1, 2, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(
            bpf::run(&f.prog, s, AUDIT_ARCH_X86_64, [1, 3, 0, 0, 0, 0]),
            RET_ERRNO | 1
        );
        assert_eq!(
            bpf::run(&f.prog, s, AUDIT_ARCH_X86_64, [10, 3, 0, 0, 0, 0]),
            RET_LOG
        );
    }

    #[test]
    fn notify_is_refused_by_name() {
        let s: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]
        }))
        .expect("json");
        assert!(compile(&s)
            .expect_err("refused")
            .to_string()
            .contains("SCMP_ACT_NOTIFY"));
    }
}
