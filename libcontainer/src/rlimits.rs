//! POSIX rlimits from `process.rlimits`.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

#[derive(Debug, thiserror::Error)]
#[error("process.rlimits: set {name} to {soft}/{hard}: {errno}")]
pub struct RlimitError {
    name: String,
    soft: u64,
    hard: u64,
    errno: nix::errno::Errno,
}

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn apply(limits: &[PosixRlimit]) -> Result<(), RlimitError> {
    for l in limits {
        let rl = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: `rl` is a valid rlimit that outlives the call.
        if unsafe { libc::setrlimit(resource(l.typ()), &rl) } != 0 {
            return Err(RlimitError {
                name: format!("{:?}", l.typ()),
                soft: l.soft(),
                hard: l.hard(),
                errno: nix::errno::Errno::last(),
            });
        }
    }
    Ok(())
}
