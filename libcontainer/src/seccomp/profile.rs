//! Seccomp profile templates: an OCI `linux.seccomp` object whose
//! `syscalls` entries may say which capabilities they depend on, resolved
//! for one process's capability set into a plain OCI profile (an OCI
//! profile cannot say "only with CAP_SYS_ADMIN", so the runtime decides
//! when it writes config.json, as Docker does from its own profile).
//!
//! Entry keys besides the OCI ones: `ifAnyCap` (kept only if the process
//! has at least one of these), `unlessCaps` (kept only if it has none of
//! them), `comment`. The top-level `about` is dropped too.

use serde_json::Value;

use super::SeccompError;

/// `seccomp-profiles/default.json`: see the README next to it.
pub const DEFAULT_TEMPLATE: &str = include_str!("../../../seccomp-profiles/default.json");

fn err(name: &str, msg: impl Into<String>) -> SeccompError {
    SeccompError::Profile {
        name: name.to_string(),
        msg: msg.into(),
    }
}

/// The names listed under `key` of a syscalls entry.
fn cap_list(
    entry: &Value,
    key: &str,
    name: &str,
    i: usize,
) -> Result<Option<Vec<String>>, SeccompError> {
    match entry.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|c| {
                c.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err(name, format!("syscalls[{i}].{key}: not a string")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(err(name, format!("syscalls[{i}].{key}: not an array"))),
    }
}

/// Resolve `template` (named `name` in errors) for a process holding
/// `caps`; the result is a plain OCI `linux.seccomp` value, checked to
/// compile.
pub fn resolve(template: &Value, caps: &[String], name: &str) -> Result<Value, SeccompError> {
    let mut out = template.clone();
    let obj = out
        .as_object_mut()
        .ok_or_else(|| err(name, "not a JSON object"))?;
    obj.remove("about");
    obj.remove("comment");
    let has = |c: &String| caps.iter().any(|h| h == c);
    if let Some(list) = obj.get_mut("syscalls") {
        let entries = list
            .as_array_mut()
            .ok_or_else(|| err(name, "syscalls: not an array"))?;
        let mut kept = Vec::with_capacity(entries.len());
        for (i, mut e) in std::mem::take(entries).into_iter().enumerate() {
            let any = cap_list(&e, "ifAnyCap", name, i)?;
            let none = cap_list(&e, "unlessCaps", name, i)?;
            if any.is_some_and(|l| !l.iter().any(has)) || none.is_some_and(|l| l.iter().any(has)) {
                continue;
            }
            if let Some(m) = e.as_object_mut() {
                m.remove("ifAnyCap");
                m.remove("unlessCaps");
                m.remove("comment");
            }
            kept.push(e);
        }
        *entries = kept;
    }
    let parsed: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(out.clone())
        .map_err(|e| err(name, format!("not an OCI seccomp profile: {e}")))?;
    super::build(&parsed)?;
    Ok(out)
}

/// The default profile for a process whose bounding set is `caps`.
pub fn default_profile(caps: &[String]) -> Result<Value, SeccompError> {
    let template: Value = serde_json::from_str(DEFAULT_TEMPLATE)
        .map_err(|e| err("default", format!("invalid JSON: {e}")))?;
    resolve(&template, caps, "default")
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| c.to_string()).collect()
    }

    fn compiled(c: &[&str]) -> Filter {
        let v = default_profile(&caps(c)).expect("resolves");
        let s: LinuxSeccomp = serde_json::from_value(v).expect("OCI");
        build(&s).expect("compiles")
    }

    fn run(f: &Filter, name: &str, args: [u64; 6]) -> u32 {
        bpf::run(
            &f.prog,
            x86_64_nr(name).expect(name),
            AUDIT_ARCH_X86_64,
            args,
        )
    }

    const EPERM: u32 = RET_ERRNO | 1;
    const RUNC_DEFAULT: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

    #[test]
    fn default_profile_knows_every_name_and_fits() {
        for c in [&[][..], RUNC_DEFAULT, &["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]] {
            let f = compiled(c);
            assert!(f.unknown.is_empty(), "unknown names: {:?}", f.unknown);
            assert!(f.prog.len() < 1024, "{} instructions", f.prog.len());
        }
    }

    /// Every syscall our tables know is either in the template or one of
    /// these, which no capability unlocks (see seccomp-profiles/README.md).
    #[test]
    fn every_known_syscall_is_classified() {
        const NEVER: &[&str] = &[
            "_sysctl",
            "afs_syscall",
            "bdflush",
            "break",
            "create_module",
            "epoll_ctl_old",
            "epoll_wait_old",
            "ftime",
            "get_kernel_syms",
            "getpmsg",
            "gtty",
            "idle",
            "lock",
            "modify_ldt",
            "mpx",
            "nfsservctl",
            "prof",
            "profil",
            "putpmsg",
            "query_module",
            "security",
            "stty",
            "tuxcall",
            "ulimit",
            "uselib",
            "vm86",
            "vm86old",
            "vserver",
        ];
        let t: Value = serde_json::from_str(DEFAULT_TEMPLATE).expect("json");
        let listed: Vec<&str> = t["syscalls"]
            .as_array()
            .expect("syscalls")
            .iter()
            .flat_map(|e| e["names"].as_array().expect("names").iter())
            .map(|n| n.as_str().expect("name"))
            .collect();
        for which in [extra::Which::X86_64, extra::Which::X32, extra::Which::I386] {
            let table = match which {
                extra::Which::X86_64 => tables::X86_64,
                extra::Which::X32 => tables::X32,
                extra::Which::I386 => tables::I386,
            };
            let names = table
                .iter()
                .map(|(n, _)| *n)
                .chain(extra::entries(which).into_iter().map(|(n, _)| n));
            for n in names {
                assert!(
                    listed.contains(&n) || NEVER.contains(&n),
                    "{which:?} syscall {n} is not classified"
                );
                assert!(!(listed.contains(&n) && NEVER.contains(&n)), "{n}");
            }
        }
    }

    #[test]
    fn capabilities_unlock_their_syscalls() {
        let plain = compiled(RUNC_DEFAULT);
        let admin = compiled(&["CAP_SYS_ADMIN"]);
        for name in [
            "mount",
            "umount2",
            "pivot_root",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "fsopen",
            "io_uring_setup",
        ] {
            assert_eq!(run(&plain, name, [0; 6]), EPERM, "{name}");
            assert_eq!(run(&admin, name, [0; 6]), RET_ALLOW, "{name}");
        }
        for name in [
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "open_by_handle_at",
            "ptrace",
            "perf_event_open",
            "bpf",
            "userfaultfd",
            "iopl",
            "acct",
            "settimeofday",
            "syslog",
            "chroot",
            "modify_ldt",
        ] {
            assert_eq!(run(&plain, name, [0; 6]), EPERM, "{name}");
            assert_eq!(
                run(&admin, name, [0; 6]) == RET_ALLOW,
                matches!(name, "perf_event_open" | "bpf"),
                "{name}"
            );
        }
        assert_eq!(
            run(&compiled(&["CAP_PERFMON"]), "perf_event_open", [0; 6]),
            RET_ALLOW
        );
        assert_eq!(run(&compiled(&["CAP_BPF"]), "bpf", [0; 6]), RET_ALLOW);
        assert_eq!(
            run(&compiled(&["CAP_SYS_PTRACE"]), "ptrace", [0; 6]),
            RET_ALLOW
        );
        assert_eq!(
            run(&compiled(&["CAP_SYS_MODULE"]), "finit_module", [0; 6]),
            RET_ALLOW
        );
        assert_eq!(
            run(&compiled(&["CAP_SYS_BOOT"]), "kexec_file_load", [0; 6]),
            RET_ALLOW
        );
        for name in [
            "read",
            "write",
            "openat",
            "execve",
            "futex",
            "getpid",
            "socket",
            "clock_gettime",
        ] {
            assert_eq!(run(&plain, name, [0; 6]), RET_ALLOW, "{name}");
        }
    }

    #[test]
    fn namespaces_need_cap_sys_admin() {
        let plain = compiled(RUNC_DEFAULT);
        let admin = compiled(&["CAP_SYS_ADMIN"]);
        let sigchld = 17u64;
        let thread = 0x3d0f00u64; // pthread_create's flags
        for (flags, ok) in [
            (sigchld, true),
            (thread, true),
            (0x2000_0000 | sigchld, false), // CLONE_NEWPID
            (0x1000_0000 | sigchld, false), // CLONE_NEWUSER
            (0x0002_0000, false),           // CLONE_NEWNS
        ] {
            let want = if ok { RET_ALLOW } else { EPERM };
            assert_eq!(
                run(&plain, "clone", [flags, 0, 0, 0, 0, 0]),
                want,
                "{flags:#x}"
            );
            assert_eq!(run(&admin, "clone", [flags, 0, 0, 0, 0, 0]), RET_ALLOW);
        }
        assert_eq!(run(&plain, "unshare", [0x200, 0, 0, 0, 0, 0]), RET_ALLOW); // CLONE_FS
        assert_eq!(run(&plain, "unshare", [0x1000_0000, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(run(&plain, "unshare", [0x80, 0, 0, 0, 0, 0]), EPERM); // CLONE_NEWTIME
        assert_eq!(
            run(&admin, "unshare", [0x1000_0000, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            run(&plain, "clone3", [0; 6]),
            RET_ERRNO | libc::ENOSYS as u32
        );
        assert_eq!(run(&admin, "clone3", [0; 6]), RET_ALLOW);
        // personality: the harmless domains only.
        assert_eq!(run(&plain, "personality", [8, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            run(&plain, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            run(&plain, "personality", [0x0040_0000, 0, 0, 0, 0, 0]),
            EPERM
        ); // ADDR_NO_RANDOMIZE
        assert_eq!(
            run(&admin, "personality", [0x0040_0000, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
    }

    #[test]
    fn i386_and_x32_are_covered_too() {
        let f = compiled(RUNC_DEFAULT);
        // i386 mount is 21, socketcall 102, clock_gettime64 403.
        assert_eq!(bpf::run(&f.prog, 21, AUDIT_ARCH_I386, [0; 6]), EPERM);
        assert_eq!(bpf::run(&f.prog, 102, AUDIT_ARCH_I386, [0; 6]), RET_ALLOW);
        assert_eq!(bpf::run(&f.prog, 403, AUDIT_ARCH_I386, [0; 6]), RET_ALLOW);
        let mount = x86_64_nr("mount").expect("mount");
        assert_eq!(
            bpf::run(&f.prog, X32_SYSCALL_BIT | mount, AUDIT_ARCH_X86_64, [0; 6]),
            EPERM
        );
        assert_eq!(
            bpf::run(&f.prog, X32_SYSCALL_BIT, AUDIT_ARCH_X86_64, [0; 6]),
            RET_ALLOW
        );
    }

    /// The binary search keeps every syscall cheap: no linear chain.
    #[test]
    fn every_syscall_is_decided_in_few_instructions() {
        let f = compiled(RUNC_DEFAULT);
        for (which, arch) in [
            (extra::Which::X86_64, AUDIT_ARCH_X86_64),
            (extra::Which::X32, AUDIT_ARCH_X86_64),
            (extra::Which::I386, AUDIT_ARCH_I386),
        ] {
            let table = match which {
                extra::Which::X86_64 => tables::X86_64,
                extra::Which::X32 => tables::X32,
                extra::Which::I386 => tables::I386,
            };
            for (name, nr) in table {
                let (_, steps) = bpf::run_counting(&f.prog, *nr, arch, [0; 6]);
                assert!(steps <= 24, "{which:?} {name}: {steps} instructions");
            }
        }
    }

    #[test]
    fn plain_oci_profiles_pass_through() {
        let p = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "comment": "x"}]});
        let r = resolve(&p, &[], "p").expect("resolves");
        assert_eq!(
            r,
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})
        );
        let bad = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "ifAnyCap": "CAP_X"}]});
        assert!(resolve(&bad, &[], "bad")
            .expect_err("refused")
            .to_string()
            .contains("ifAnyCap"));
    }
}
