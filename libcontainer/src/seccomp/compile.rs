//! The OCI seccomp section compiled to a classic BPF program (the layout
//! is described in mod.rs): actions and operators, per-ABI syscall tables,
//! range search, and the program itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::bpf::{self, Asm, Cond, Insn, Label, Op, Rule};
use super::extra::{self, Which};
use super::*;

pub(super) fn action(
    a: LinuxSeccompAction,
    errno: Option<u32>,
    field: &str,
) -> Result<u32, SeccompError> {
    let takes_errno = matches!(
        a,
        LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
    );
    let data = match errno {
        Some(_) if !takes_errno => {
            return Err(invalid(
                field,
                format!("{a} does not take an errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"),
            ))
        }
        Some(e) if e > 0xffff => {
            return Err(invalid(
                field,
                format!("{e} does not fit in the 16 bits of SECCOMP_RET_DATA"),
            ))
        }
        Some(e) => e,
        None => libc::EPERM as u32,
    };
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => RET_USER_NOTIF,
    })
}

pub(super) fn op(o: LinuxSeccompOperator) -> Op {
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

/// One ABI's table of syscall numbers.
#[derive(Clone, Copy)]
pub(super) struct Abi {
    which: Which,
    wide: bool,
}

impl Abi {
    fn table(self) -> &'static [(&'static str, u32)] {
        match self.which {
            Which::X86_64 => tables::X86_64,
            Which::X32 => tables::X32,
            Which::I386 => tables::I386,
        }
    }

    fn lookup(self, name: &str) -> Option<u32> {
        let t = self.table();
        t.binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| t[i].1)
            .or_else(|| extra::lookup(self.which, name))
    }

    /// Every syscall number this ABI has.
    fn numbers(self) -> impl Iterator<Item = u32> {
        self.table()
            .iter()
            .map(|(_, nr)| *nr)
            .chain(extra::entries(self.which).into_iter().map(|(_, nr)| nr))
    }
}

/// The syscall number of `name` on x86_64 (generated table or supplement).
pub fn x86_64_nr(name: &str) -> Option<u32> {
    Abi {
        which: Which::X86_64,
        wide: true,
    }
    .lookup(name)
}

/// Ranges of syscall numbers `[start, next start)` with their targets.
#[derive(Default)]
pub(super) struct Ranges(Vec<(u32, Label)>);

impl Ranges {
    fn set(&mut self, start: u32, l: Label) {
        let v = &mut self.0;
        if let Some(last) = v.last_mut() {
            if last.0 == start {
                last.1 = l;
                if v.len() >= 2 && v[v.len() - 2].1 == l {
                    v.pop();
                }
                return;
            }
            if last.1 == l {
                return;
            }
        }
        v.push((start, l));
    }

    /// `[lo, hi)` holds the numbers of `abi`: each known number goes to its
    /// block (or `default`), the rest to `unknown`.
    fn fill(
        &mut self,
        lo: u32,
        hi: u32,
        abi: Abi,
        blocks: &BTreeMap<u32, Label>,
        default: Label,
        unknown: Label,
    ) {
        let mut nrs: Vec<u32> = abi.numbers().filter(|n| (lo..hi).contains(n)).collect();
        nrs.sort_unstable();
        nrs.dedup();
        self.set(lo, unknown);
        for nr in nrs {
            self.set(nr, blocks.get(&nr).copied().unwrap_or(default));
            if nr + 1 < hi {
                self.set(nr + 1, unknown);
            }
        }
    }
}

/// A balanced binary search over the ranges (A holds the syscall number).
pub(super) fn search(a: &mut Asm, r: &[(u32, Label)]) -> Label {
    if r.len() == 1 {
        return r[0].1;
    }
    let mid = r.len() / 2;
    let right = search(a, &r[mid..]);
    let left = search(a, &r[..mid]);
    a.jump(bpf::JMP_JGE_K, r[mid].0, right, left)
}

/// Shares one `ret` per action and one block per distinct rule list.
pub(super) struct Emitter {
    asm: Asm,
    rets: HashMap<u32, Label>,
    blocks: HashMap<(bool, Vec<Rule>), Label>,
}

impl Emitter {
    fn ret(&mut self, action: u32) -> Label {
        if let Some(l) = self.rets.get(&action) {
            return *l;
        }
        let l = self.asm.ret(action);
        self.rets.insert(action, l);
        l
    }

    /// The block of one syscall: its conditional rules in order, then its
    /// first unconditional rule, else `default`.
    fn block(&mut self, rules: Vec<Rule>, wide: bool, default: Label) -> Label {
        let key = (wide, rules);
        if let Some(l) = self.blocks.get(&key) {
            return *l;
        }
        let rules = &key.1;
        let mut next = match rules.last() {
            Some(r) if r.conds.is_empty() => self.ret(r.action),
            _ => default,
        };
        for r in rules.iter().rev().filter(|r| !r.conds.is_empty()) {
            let matched = self.ret(r.action);
            next = bpf::rule(&mut self.asm, r, wide, matched, next);
        }
        self.blocks.insert(key, next);
        next
    }
}

/// The ABI an x86_64 kernel reports for `a`'s syscalls, if it can run
/// them at all. Every other architecture's rules are rules no syscall on
/// this host can ever reach (`seccomp_data.arch` is only ever x86_64 or
/// i386 here): libseccomp adds branches for them that are never taken, so
/// leaving them out is the same filter. The match is exhaustive so that an
/// architecture oci-spec adds later needs a decision here.
fn host_abi(a: Arch) -> Option<Which> {
    match a {
        Arch::ScmpArchNative | Arch::ScmpArchX86_64 => Some(Which::X86_64),
        Arch::ScmpArchX32 => Some(Which::X32),
        Arch::ScmpArchX86 => Some(Which::I386),
        Arch::ScmpArchArm
        | Arch::ScmpArchAarch64
        | Arch::ScmpArchMips
        | Arch::ScmpArchMips64
        | Arch::ScmpArchMips64n32
        | Arch::ScmpArchMipsel
        | Arch::ScmpArchMipsel64
        | Arch::ScmpArchMipsel64n32
        | Arch::ScmpArchPpc
        | Arch::ScmpArchPpc64
        | Arch::ScmpArchPpc64le
        | Arch::ScmpArchS390
        | Arch::ScmpArchS390x
        | Arch::ScmpArchParisc
        | Arch::ScmpArchParisc64
        | Arch::ScmpArchRiscv64
        | Arch::ScmpArchLoongarch64
        | Arch::ScmpArchM68k
        | Arch::ScmpArchSh
        | Arch::ScmpArchSheb => None,
    }
}

/// Compile the spec's seccomp section (pure: no connection is made).
pub fn build(s: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(invalid(
            "defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action (the runtime's own last syscalls would wait for the agent)",
        ));
    }
    let default = action(s.default_action(), s.default_errno_ret(), "defaultErrnoRet")?;
    let archs = s.architectures().clone().unwrap_or_default();
    // The native ABI (x86_64) is always filtered, whatever the list says,
    // as libseccomp (so runc) does: a profile listing only 32-bit ABIs
    // must not leave every native syscall failing.
    let has = |w: Which| w == Which::X86_64 || archs.iter().any(|a| host_abi(*a) == Some(w));
    let mut rules = Vec::new();
    let mut notify = false;
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let act = action(
            sc.action(),
            sc.errno_ret(),
            &format!("syscalls[{i}].errnoRet"),
        )?;
        if act == RET_USER_NOTIF {
            notify = true;
            for (k, n) in sc.names().iter().enumerate() {
                let why = match n.as_str() {
                    "sendmsg" => "SCMP_ACT_NOTIFY on sendmsg is not supported: oxrun sends the listener fd to listenerPath with sendmsg once the filter is loaded",
                    // runc's words; its reason (the seccomp fd is handed
                    // over with write) differs, ours: once the filter is
                    // loaded, the init still reports failures to the
                    // runtime with write(2).
                    "write" => "SCMP_ACT_NOTIFY cannot be used for the write syscall (as in runc): the container's init reports set-up errors with write(2) after the filter is loaded",
                    _ => continue,
                };
                return Err(invalid(format!("syscalls[{i}].names[{k}]"), why));
            }
        }
        if sc.names().is_empty() {
            return Err(invalid(format!("syscalls[{i}].names"), "must not be empty"));
        }
        let mut conds = Vec::new();
        for (j, a) in sc.args().iter().flatten().enumerate() {
            if a.index() > 5 {
                return Err(invalid(
                    format!("syscalls[{i}].args[{j}].index"),
                    format!("{} is not 0..5", a.index()),
                ));
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
        // runc (matchCall): if an argument index appears in more than one
        // condition, each condition becomes a rule of its own, so all of
        // them are ORed; otherwise they are ANDed in one rule. Profiles
        // written for runc rely on it.
        let repeated = conds
            .iter()
            .enumerate()
            .any(|(k, c)| conds[..k].iter().any(|d| d.index == c.index));
        if repeated {
            for c in conds {
                rules.push((
                    sc.names().clone(),
                    Rule {
                        conds: vec![c],
                        action: act,
                    },
                ));
            }
        } else {
            rules.push((sc.names().clone(), Rule { conds, action: act }));
        }
    }
    let notify = match (notify, s.listener_path()) {
        (true, None) => {
            return Err(invalid(
                "listenerPath",
                "required when a rule uses SCMP_ACT_NOTIFY",
            ))
        }
        (true, Some(p)) => Some(Notify {
            listener_path: p.clone(),
            metadata: s.listener_metadata().clone(),
            conn: Mutex::new(None),
        }),
        (false, _) => None,
    };
    if s.listener_metadata().is_some() && s.listener_path().is_none() {
        return Err(invalid(
            "listenerMetadata",
            "must not be set without listenerPath",
        ));
    }

    let abis = [
        has(Which::X86_64).then_some(Abi {
            which: Which::X86_64,
            wide: true,
        }),
        has(Which::X32).then_some(Abi {
            which: Which::X32,
            wide: true,
        }),
        has(Which::I386).then_some(Abi {
            which: Which::I386,
            wide: false,
        }),
    ];
    let prog = program(&abis, &rules, default);
    if prog.len() > MAX_INSNS {
        return Err(SeccompError::TooLong(prog.len()));
    }
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        };
    }
    // The kernel refuses WAIT_KILLABLE_RECV (EINVAL) without
    // NEW_LISTENER, which only a filter with SCMP_ACT_NOTIFY rules has.
    if flags & FLAG_WAIT_KILLABLE_RECV != 0 && notify.is_none() {
        return Err(invalid(
            "flags",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV applies to SCMP_ACT_NOTIFY rules only (the kernel refuses it on a filter without a listener): add a rule with SCMP_ACT_NOTIFY and a listenerPath, or drop the flag",
        ));
    }
    let listed: Vec<Abi> = abis.iter().flatten().copied().collect();
    let mut unknown: Vec<String> = rules
        .iter()
        .flat_map(|(names, _)| names)
        .filter(|n| !listed.iter().any(|a| a.lookup(n).is_some()))
        .cloned()
        .collect();
    let mut seen = std::collections::HashSet::new();
    unknown.retain(|n| seen.insert(n.clone()));
    Ok(Filter {
        prog,
        flags,
        unknown,
        notify,
    })
}

/// The whole program: arch dispatch, one search per arch, shared blocks.
pub(super) fn program(
    abis: &[Option<Abi>; 3],
    rules: &[(Vec<String>, Rule)],
    default: u32,
) -> Vec<Insn> {
    let mut e = Emitter {
        asm: Asm::new(),
        rets: HashMap::new(),
        blocks: HashMap::new(),
    };
    // The last instruction must be a `ret`.
    let default_l = e.ret(default);
    let enosys = e.ret(RET_ERRNO | libc::ENOSYS as u32);
    let unknown_l = if default == RET_ALLOW || default == RET_LOG {
        default_l
    } else {
        enosys
    };
    // Blocks of every listed ABI, by syscall number.
    let mut blocks: [BTreeMap<u32, Label>; 3] = Default::default();
    for (abi, out) in abis.iter().zip(blocks.iter_mut()) {
        let Some(abi) = abi else { continue };
        let mut by_nr: BTreeMap<u32, (Vec<Rule>, Option<Rule>)> = BTreeMap::new();
        for (names, rule) in rules {
            for name in names {
                let Some(nr) = abi.lookup(name) else { continue };
                let e = by_nr.entry(nr).or_default();
                if !rule.conds.is_empty() {
                    e.0.push(rule.clone());
                } else if e.1.is_none() {
                    e.1 = Some(rule.clone());
                }
            }
        }
        for (nr, (mut list, plain)) in by_nr {
            list.extend(plain);
            out.insert(nr, e.block(list, abi.wide, default_l));
        }
    }
    let [x86_64, x32, i386] = abis;
    // i386 first: the x86_64 search then sits right after the dispatch.
    let i386_entry = match i386 {
        Some(abi) => {
            let mut r = Ranges::default();
            r.fill(0, u32::MAX, *abi, &blocks[2], default_l, unknown_l);
            let root = search(&mut e.asm, &r.0);
            e.asm.goto(root);
            e.asm.stmt(bpf::LD_W_ABS, bpf::OFF_NR)
        }
        None => enosys,
    };
    let x86_entry = if x86_64.is_none() && x32.is_none() {
        enosys
    } else {
        let mut r = Ranges::default();
        match x86_64 {
            Some(abi) => r.fill(0, X32_SYSCALL_BIT, *abi, &blocks[0], default_l, unknown_l),
            None => r.set(0, enosys),
        }
        match x32 {
            Some(abi) => r.fill(
                X32_SYSCALL_BIT,
                u32::MAX,
                *abi,
                &blocks[1],
                default_l,
                unknown_l,
            ),
            None => r.set(X32_SYSCALL_BIT, enosys),
        }
        let root = search(&mut e.asm, &r.0);
        e.asm.goto(root);
        e.asm.stmt(bpf::LD_W_ABS, bpf::OFF_NR)
    };
    let not_x86_64 = e
        .asm
        .jump(bpf::JMP_JEQ_K, AUDIT_ARCH_I386, i386_entry, enosys);
    e.asm
        .jump(bpf::JMP_JEQ_K, AUDIT_ARCH_X86_64, x86_entry, not_x86_64);
    e.asm.stmt(bpf::LD_W_ABS, bpf::OFF_ARCH);
    e.asm.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(json: serde_json::Value) -> Filter {
        let s: LinuxSeccomp = serde_json::from_value(json).expect("valid seccomp json");
        build(&s).expect("compiles")
    }

    fn nr(name: &str) -> u32 {
        x86_64_nr(name).expect("known")
    }

    const ALLOW: u32 = RET_ALLOW;
    const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;

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
        assert_eq!(
            bpf::run(
                &f.prog,
                X32_SYSCALL_BIT | nr("mkdir"),
                AUDIT_ARCH_X86_64,
                [0; 6]
            ),
            ENOSYS
        );
        assert_eq!(bpf::run(&f.prog, 39, AUDIT_ARCH_I386, [0; 6]), ENOSYS);
        assert_eq!(bpf::run(&f.prog, 39, 0xdead_beef, [0; 6]), ENOSYS);
        assert_eq!(f.unknown, vec!["nosuchcall".to_string()]);
    }

    #[test]
    fn i386_rules_use_i386_numbers() {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["mount", "clock_gettime64"], "action": "SCMP_ACT_ERRNO"}]
        }));
        let i386 = Abi {
            which: Which::I386,
            wide: false,
        };
        let mount32 = i386.lookup("mount").expect("i386 mount");
        assert_eq!(
            bpf::run(&f.prog, mount32, AUDIT_ARCH_I386, [0; 6]),
            RET_ERRNO | 1
        );
        // A supplementary (not generated) i386 number.
        assert_eq!(
            bpf::run(&f.prog, 403, AUDIT_ARCH_I386, [0; 6]),
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
        assert!(f.unknown.is_empty(), "{:?}", f.unknown);
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

    /// runc's matchCall: when an argument index appears in more than one
    /// condition of a rule, every condition becomes a rule of its own, so
    /// they are ORed (profiles written for runc may list the allowed
    /// values of one argument that way).
    #[test]
    fn conditions_on_the_same_argument_are_ored_like_runc() {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}
            ]}]
        }));
        let p = nr("personality");
        for (arg, want) in [
            (0, ALLOW),
            (8, ALLOW),
            (0x20000, RET_ERRNO | 1),
            (0x1_0000_0008, RET_ERRNO | 1),
        ] {
            assert_eq!(
                bpf::run(&f.prog, p, AUDIT_ARCH_X86_64, [arg, 0, 0, 0, 0, 0]),
                want,
                "personality({arg:#x})"
            );
        }
        // One repeated index makes every condition of the rule a rule of
        // its own, the one on another index too (runc's "old behavior").
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77, "args": [
                {"index": 1, "value": 5, "op": "SCMP_CMP_EQ"},
                {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 7, "op": "SCMP_CMP_EQ"}
            ]}]
        }));
        let g = nr("getppid");
        for (args, want) in [
            ([0, 5, 0, 0, 0, 0], RET_ERRNO | 77),
            ([0, 7, 0, 0, 0, 0], RET_ERRNO | 77),
            ([0, 6, 9, 0, 0, 0], RET_ERRNO | 77),
            ([0, 6, 8, 0, 0, 0], ALLOW),
        ] {
            assert_eq!(
                bpf::run(&f.prog, g, AUDIT_ARCH_X86_64, args),
                want,
                "getppid{args:?}"
            );
        }
    }

    #[test]
    fn conditions_on_different_arguments_stay_anded() {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77, "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"},
                {"index": 5, "value": 3, "op": "SCMP_CMP_GE"}
            ]}]
        }));
        let g = nr("getppid");
        for (args, want) in [
            ([1, 2, 0, 0, 0, 3], RET_ERRNO | 77),
            ([1, 2, 0, 0, 0, 9], RET_ERRNO | 77),
            ([1, 2, 0, 0, 0, 2], ALLOW),
            ([1, 3, 0, 0, 0, 3], ALLOW),
            ([0, 2, 0, 0, 0, 3], ALLOW),
        ] {
            assert_eq!(
                bpf::run(&f.prog, g, AUDIT_ARCH_X86_64, args),
                want,
                "getppid{args:?}"
            );
        }
    }

    /// libseccomp always filters the native ABI, whatever `architectures`
    /// lists; an ABI neither native nor listed still gets ENOSYS.
    #[test]
    fn the_native_abi_is_always_filtered() {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        }));
        assert_eq!(
            bpf::run(&f.prog, nr("mkdir"), AUDIT_ARCH_X86_64, [0; 6]),
            RET_ERRNO | 13
        );
        assert_eq!(
            bpf::run(&f.prog, nr("read"), AUDIT_ARCH_X86_64, [0; 6]),
            ALLOW
        );
        assert_eq!(
            bpf::run(
                &f.prog,
                X32_SYSCALL_BIT | nr("mkdir"),
                AUDIT_ARCH_X86_64,
                [0; 6]
            ),
            RET_ERRNO | 13,
            "x32 is listed"
        );
        assert_eq!(
            bpf::run(&f.prog, 39, AUDIT_ARCH_I386, [0; 6]),
            RET_ERRNO | 13,
            "i386 mkdir is 39, and i386 is listed"
        );
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        }));
        assert_eq!(
            bpf::run(&f.prog, nr("read"), AUDIT_ARCH_X86_64, [0; 6]),
            ALLOW
        );
        assert_eq!(
            bpf::run(
                &f.prog,
                X32_SYSCALL_BIT | nr("read"),
                AUDIT_ARCH_X86_64,
                [0; 6]
            ),
            ENOSYS,
            "x32 is neither native nor listed"
        );
    }

    #[test]
    fn numbers_that_are_no_syscall_get_enosys_unless_default_allows() {
        let deny = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
        }));
        for (n, want) in [
            (nr("read"), ALLOW),
            (nr("write"), RET_ERRNO | 1),
            (400, ENOSYS),            // the unused 387..423 hole
            (1000, ENOSYS),           // past the last syscall
            (X32_SYSCALL_BIT, ALLOW), // x32 read
            (X32_SYSCALL_BIT | 600, ENOSYS),
            (u32::MAX, ENOSYS),
        ] {
            assert_eq!(
                bpf::run(&deny.prog, n, AUDIT_ARCH_X86_64, [0; 6]),
                want,
                "nr {n:#x}"
            );
        }
        let allow = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]
        }));
        assert_eq!(
            bpf::run(&allow.prog, 1000, AUDIT_ARCH_X86_64, [0; 6]),
            ALLOW
        );
    }

    #[test]
    fn every_action_and_errno_ret() {
        for (name, errno, want) in [
            ("SCMP_ACT_KILL", None, RET_KILL_THREAD),
            ("SCMP_ACT_KILL_THREAD", None, RET_KILL_THREAD),
            ("SCMP_ACT_KILL_PROCESS", None, RET_KILL_PROCESS),
            ("SCMP_ACT_TRAP", None, RET_TRAP),
            ("SCMP_ACT_ERRNO", Some(5), RET_ERRNO | 5),
            ("SCMP_ACT_TRACE", Some(7), RET_TRACE | 7),
            ("SCMP_ACT_TRACE", None, RET_TRACE | 1),
            ("SCMP_ACT_LOG", None, RET_LOG),
            ("SCMP_ACT_ALLOW", None, RET_ALLOW),
        ] {
            let mut sc = serde_json::json!({"names": ["getppid"], "action": name});
            if let Some(e) = errno {
                sc["errnoRet"] = serde_json::json!(e);
            }
            let f = filter(serde_json::json!({
                "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 99, "syscalls": [sc]
            }));
            assert_eq!(
                bpf::run(&f.prog, nr("getppid"), AUDIT_ARCH_X86_64, [0; 6]),
                want,
                "{name}"
            );
            assert_eq!(
                bpf::run(&f.prog, nr("getpid"), AUDIT_ARCH_X86_64, [0; 6]),
                RET_ERRNO | 99
            );
        }
    }

    fn refused(json: serde_json::Value) -> String {
        let s: LinuxSeccomp = serde_json::from_value(json).expect("json");
        build(&s).expect_err("refused").to_string()
    }

    #[test]
    fn errno_ret_only_with_errno_actions() {
        let msg = refused(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]
        }));
        assert!(msg.contains("linux.seccomp.syscalls[0].errnoRet"), "{msg}");
        let msg = refused(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 3
        }));
        assert!(msg.contains("linux.seccomp.defaultErrnoRet"), "{msg}");
    }

    #[test]
    fn notify_needs_listener_path_and_is_not_the_default() {
        let msg = refused(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert!(msg.contains("linux.seccomp.listenerPath"), "{msg}");
        let msg = refused(serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}));
        assert!(msg.contains("defaultAction"), "{msg}");
        let msg = refused(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
            "syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert!(msg.contains("sendmsg"), "{msg}");
        // runc: "SCMP_ACT_NOTIFY cannot be used for the write syscall".
        let msg = refused(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}
            ]
        }));
        assert!(msg.contains("linux.seccomp.syscalls[1].names[1]"), "{msg}");
        assert!(
            msg.contains("SCMP_ACT_NOTIFY cannot be used for the write syscall"),
            "{msg}"
        );
        // write with another action, and NOTIFY on writev, are fine.
        filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
            "syscalls": [
                {"names": ["write"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["writev"], "action": "SCMP_ACT_NOTIFY"}
            ]
        }));
        let msg = refused(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"
        }));
        assert!(msg.contains("listenerMetadata"), "{msg}");
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock", "listenerMetadata": "m",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert_eq!(
            bpf::run(&f.prog, nr("mkdir"), AUDIT_ARCH_X86_64, [0; 6]),
            RET_USER_NOTIF
        );
        let n = f.notify.as_ref().expect("notify");
        assert_eq!(n.metadata.as_deref(), Some("m"));
        // Not connected by build(): install refuses rather than hang.
        assert!(f.install(1, b"{}").is_err());
    }

    /// WAIT_KILLABLE_RECV is applied with a NOTIFY rule and refused,
    /// naming `flags`, without one (the kernel would say EINVAL).
    #[test]
    fn wait_killable_recv_needs_a_notify_rule() {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert_eq!(f.flags, FLAG_WAIT_KILLABLE_RECV | FLAG_LOG);
        let msg = refused(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        }));
        assert!(msg.starts_with("linux.seccomp.flags: "), "{msg}");
        assert!(msg.contains("SCMP_ACT_NOTIFY"), "{msg}");
    }

    /// `features` lists exactly the flags the spec types, and each one
    /// compiles to its kernel bit.
    #[test]
    fn every_listed_flag_compiles() {
        let mut bits = 0;
        for name in FLAGS {
            let f = filter(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "flags": [name],
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
            }));
            assert_eq!(f.flags.count_ones(), 1, "{name}");
            bits |= f.flags;
        }
        assert_eq!(
            bits,
            FLAG_TSYNC | FLAG_LOG | FLAG_SPEC_ALLOW | FLAG_WAIT_KILLABLE_RECV
        );
    }

    /// Architectures an x86_64 kernel never reports add nothing: the
    /// program is the one for the x86 ABIs alone, as libseccomp's would
    /// behave (its branches for them are never taken).
    #[test]
    fn foreign_architectures_change_nothing() {
        let rules = serde_json::json!([{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]);
        let x86 = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
        let foreign = [
            "SCMP_ARCH_ARM",
            "SCMP_ARCH_AARCH64",
            "SCMP_ARCH_MIPS",
            "SCMP_ARCH_MIPS64",
            "SCMP_ARCH_MIPS64N32",
            "SCMP_ARCH_MIPSEL",
            "SCMP_ARCH_MIPSEL64",
            "SCMP_ARCH_MIPSEL64N32",
            "SCMP_ARCH_PPC",
            "SCMP_ARCH_PPC64",
            "SCMP_ARCH_PPC64LE",
            "SCMP_ARCH_S390",
            "SCMP_ARCH_S390X",
            "SCMP_ARCH_PARISC",
            "SCMP_ARCH_PARISC64",
            "SCMP_ARCH_RISCV64",
            "SCMP_ARCH_LOONGARCH64",
            "SCMP_ARCH_M68K",
            "SCMP_ARCH_SH",
            "SCMP_ARCH_SHEB",
        ];
        let prog = |archs: Vec<&str>| {
            let f = filter(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW", "architectures": archs, "syscalls": rules
            }));
            format!("{:?}", f.prog)
        };
        let all: Vec<&str> = foreign.iter().chain(&x86).copied().collect();
        assert_eq!(prog(all), prog(x86.to_vec()));
        // Only foreign ones: the native ABI alone, as with none listed.
        assert_eq!(prog(foreign.to_vec()), prog(vec!["SCMP_ARCH_NATIVE"]));
        assert_eq!(prog(vec![]), prog(vec!["SCMP_ARCH_X86_64"]));
    }

    /// What the profile means, evaluated directly: the compiled program
    /// must agree with it on every syscall number of every ABI, and on
    /// argument values around each rule's boundary.
    fn reference(s: &LinuxSeccomp, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let default = action(s.default_action(), s.default_errno_ret(), "").expect("action");
        let archs = s.architectures().clone().unwrap_or_default();
        let abi = match arch {
            AUDIT_ARCH_X86_64 if nr & X32_SYSCALL_BIT != 0 => {
                (archs.contains(&Arch::ScmpArchX32)).then_some(Which::X32)
            }
            // The native ABI, always (as libseccomp does).
            AUDIT_ARCH_X86_64 => Some(Which::X86_64),
            AUDIT_ARCH_I386 => (archs.contains(&Arch::ScmpArchX86)).then_some(Which::I386),
            _ => None,
        };
        let Some(which) = abi else { return ENOSYS };
        let abi = Abi {
            which,
            wide: which != Which::I386,
        };
        if !abi.numbers().any(|n| n == nr) {
            return if default == RET_ALLOW {
                default
            } else {
                ENOSYS
            };
        }
        let holds = |c: &Cond| {
            let v = if abi.wide {
                args[c.index as usize]
            } else {
                args[c.index as usize] & 0xffff_ffff
            };
            let want = if abi.wide {
                c.value
            } else {
                c.value & 0xffff_ffff
            };
            match c.op {
                Op::Eq => v == want,
                Op::Ne => v != want,
                Op::Lt => v < want,
                Op::Le => v <= want,
                Op::Gt => v > want,
                Op::Ge => v >= want,
                Op::MaskedEq(m) => {
                    let m = if abi.wide { m } else { m & 0xffff_ffff };
                    v & m == want
                }
            }
        };
        let mut plain = None;
        for sc in s.syscalls().iter().flatten() {
            if !sc.names().iter().any(|n| abi.lookup(n) == Some(nr)) {
                continue;
            }
            let act = action(sc.action(), sc.errno_ret(), "").expect("action");
            let conds: Vec<Cond> = sc
                .args()
                .iter()
                .flatten()
                .map(|a| match op(a.op()) {
                    Op::MaskedEq(_) => Cond {
                        index: a.index() as u32,
                        op: Op::MaskedEq(a.value()),
                        value: a.value_two().unwrap_or(0),
                    },
                    o => Cond {
                        index: a.index() as u32,
                        op: o,
                        value: a.value(),
                    },
                })
                .collect();
            // runc: an index used twice makes the conditions ORed.
            let repeated = conds
                .iter()
                .enumerate()
                .any(|(i, c)| conds[..i].iter().any(|d| d.index == c.index));
            if conds.is_empty() {
                plain = plain.or(Some(act));
            } else if repeated && conds.iter().any(holds) || !repeated && conds.iter().all(holds) {
                return act;
            }
        }
        plain.unwrap_or(default)
    }

    #[test]
    fn compiled_program_agrees_with_the_profile_everywhere() {
        let s: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["read", "write", "close", "futex", "getppid", "mseal", "listns", "clock_gettime64"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3, "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["kill", "tgkill"], "action": "SCMP_ACT_TRAP", "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 5, "op": "SCMP_CMP_LT"}, {"index": 1, "value": 0x1_0000_0008u64, "op": "SCMP_CMP_GE"}]},
                {"names": ["kill", "tgkill"], "action": "SCMP_ACT_LOG"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0x1_0000_0008u64, "op": "SCMP_CMP_LE"}]},
                {"names": ["personality"], "action": "SCMP_ACT_TRAP", "args": [{"index": 0, "value": 0xffffffffu64, "op": "SCMP_CMP_GT"}, {"index": 1, "value": 7, "op": "SCMP_CMP_NE"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0x7e020000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["mmap", "mprotect"], "action": "SCMP_ACT_KILL_PROCESS", "args": [{"index": 2, "value": 4, "op": "SCMP_CMP_GE"}]},
                {"names": ["mmap", "mprotect"], "action": "SCMP_ACT_ALLOW"}
            ]
        }))
        .expect("json");
        let f = build(&s).expect("compiles");
        let values = [
            0u64,
            3,
            4,
            5,
            7,
            8,
            9,
            0x7e020000,
            0x0002_0000,
            0x11,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0007,
            0x1_0000_0008,
            0x1_0000_0009,
            u64::MAX,
        ];
        let mut nrs: Vec<(u32, u32)> = Vec::new();
        for which in [Which::X86_64, Which::X32, Which::I386] {
            let abi = Abi { which, wide: true };
            let arch = if which == Which::I386 {
                AUDIT_ARCH_I386
            } else {
                AUDIT_ARCH_X86_64
            };
            nrs.extend(abi.numbers().map(|n| (arch, n)));
        }
        nrs.extend([
            (AUDIT_ARCH_X86_64, 400),
            (AUDIT_ARCH_X86_64, 5000),
            (AUDIT_ARCH_X86_64, u32::MAX),
            (AUDIT_ARCH_I386, 5000),
            (0xc000_00b7, 1),
        ]);
        let mut checked = 0;
        for (arch, n) in nrs {
            for (i, v) in values.iter().enumerate() {
                let w = values[(i * 7 + 3) % values.len()];
                let args = [*v, w, *v, 0, 0, 0];
                assert_eq!(
                    bpf::run(&f.prog, n, arch, args),
                    reference(&s, arch, n, args),
                    "arch {arch:#x} nr {n:#x} args {args:x?}"
                );
                checked += 1;
            }
        }
        assert!(checked > 10_000);
    }
}
