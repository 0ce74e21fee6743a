//! Parsing of OCI mount options into what the new mount API wants: mount
//! attributes, propagation, bind-ness, and filesystem parameters.

use crate::sys;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub bind: bool,
    pub recursive: bool,
    /// Attributes to set / clear on the mount itself (MOUNT_ATTR_*): `ro`,
    /// `nosuid`, ... act on the top mount only, even of an `rbind`, as in
    /// runc (a bind remount).
    pub attr_set: u64,
    pub attr_clr: u64,
    /// Attributes to set / clear on the whole tree (`rro`, `rnosuid`, ...:
    /// mount_setattr with AT_RECURSIVE), applied after the others.
    pub rec_attr_set: u64,
    pub rec_attr_clr: u64,
    /// Propagation changes in order: (MS_* flag, recursive).
    pub propagation: Vec<(u64, bool)>,
    /// Superblock flags handed to fsconfig as flags (sync, dirsync, ...).
    pub sb_flags: Vec<String>,
    /// Filesystem parameters: `key` or `key=value`.
    pub data: Vec<(String, Option<String>)>,
    pub remount: bool,
    /// `idmap` / `ridmap`.
    pub idmap: bool,
    /// Options we accept but do nothing with (reported as warnings).
    pub ignored: Vec<String>,
}

fn atime(set: &mut u64, clr: &mut u64, mode: u64) {
    *clr |= sys::MOUNT_ATTR__ATIME;
    *set = (*set & !sys::MOUNT_ATTR__ATIME) | mode;
}

/// A mount attribute word (`ro`, `nosuid`, `noatime`, ...) into the
/// set/clear pair it belongs to. False if `word` is not one.
fn attr(word: &str, set: &mut u64, clr: &mut u64) -> bool {
    match word {
        "ro" => *set |= sys::MOUNT_ATTR_RDONLY,
        "rw" => *clr |= sys::MOUNT_ATTR_RDONLY,
        "nosuid" => *set |= sys::MOUNT_ATTR_NOSUID,
        "suid" => *clr |= sys::MOUNT_ATTR_NOSUID,
        "nodev" => *set |= sys::MOUNT_ATTR_NODEV,
        "dev" => *clr |= sys::MOUNT_ATTR_NODEV,
        "noexec" => *set |= sys::MOUNT_ATTR_NOEXEC,
        "exec" => *clr |= sys::MOUNT_ATTR_NOEXEC,
        "nosymfollow" => *set |= sys::MOUNT_ATTR_NOSYMFOLLOW,
        "symfollow" => *clr |= sys::MOUNT_ATTR_NOSYMFOLLOW,
        "noatime" => atime(set, clr, sys::MOUNT_ATTR_NOATIME),
        "relatime" => atime(set, clr, sys::MOUNT_ATTR_RELATIME),
        "strictatime" => atime(set, clr, sys::MOUNT_ATTR_STRICTATIME),
        "atime" | "norelatime" | "nostrictatime" => atime(set, clr, sys::MOUNT_ATTR_RELATIME),
        "nodiratime" => *set |= sys::MOUNT_ATTR_NODIRATIME,
        "diratime" => *clr |= sys::MOUNT_ATTR_NODIRATIME,
        _ => return false,
    }
    true
}

/// Parse the `options` of one mount. Unknown words become filesystem data.
pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in options {
        let word = opt.as_str();
        // rro, rnosuid, ... (runc's recursive variants)
        if let Some(w) = word
            .strip_prefix('r')
            .filter(|w| is_attr(w) && word != "rw")
        {
            attr(w, &mut o.rec_attr_set, &mut o.rec_attr_clr);
            continue;
        }
        if attr(word, &mut o.attr_set, &mut o.attr_clr) {
            continue;
        }
        match word {
            "bind" => o.bind = true,
            "rbind" => {
                o.bind = true;
                o.recursive = true;
            }
            "shared" => o.propagation.push((libc::MS_SHARED, false)),
            "rshared" => o.propagation.push((libc::MS_SHARED, true)),
            "slave" => o.propagation.push((libc::MS_SLAVE, false)),
            "rslave" => o.propagation.push((libc::MS_SLAVE, true)),
            "private" => o.propagation.push((libc::MS_PRIVATE, false)),
            "rprivate" => o.propagation.push((libc::MS_PRIVATE, true)),
            "unbindable" => o.propagation.push((libc::MS_UNBINDABLE, false)),
            "runbindable" => o.propagation.push((libc::MS_UNBINDABLE, true)),
            "sync" | "dirsync" | "mand" | "lazytime" => o.sb_flags.push(word.to_string()),
            "async" | "nomand" | "nolazytime" | "defaults" | "loud" => {}
            "remount" => o.remount = true,
            "idmap" => o.idmap = true,
            "ridmap" => {
                o.idmap = true;
                o.recursive = true;
            }
            "tmpcopyup" | "copy-symlink" => o.ignored.push(opt.clone()),
            other => match other.split_once('=') {
                Some((k, v)) => o.data.push((k.to_string(), Some(v.to_string()))),
                None => o.data.push((other.to_string(), None)),
            },
        }
    }
    o
}

fn is_attr(w: &str) -> bool {
    matches!(
        w,
        "ro" | "rw"
            | "nosuid"
            | "suid"
            | "nodev"
            | "dev"
            | "noexec"
            | "exec"
            | "noatime"
            | "atime"
            | "relatime"
            | "norelatime"
            | "strictatime"
            | "nostrictatime"
            | "nodiratime"
            | "diratime"
            | "nosymfollow"
            | "symfollow"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> MountOptions {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn bind_ro() {
        let o = p(&["rbind", "ro", "nosuid"]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.attr_set, sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID);
        assert!(o.data.is_empty());
    }

    #[test]
    fn tmpfs_data_and_propagation() {
        let o = p(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "rslave",
            "newinstance",
        ]);
        assert_eq!(
            o.attr_set,
            sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_STRICTATIME
        );
        assert_eq!(o.attr_clr, sys::MOUNT_ATTR__ATIME);
        assert_eq!(o.propagation, vec![(libc::MS_SLAVE, true)]);
        assert_eq!(
            o.data,
            vec![
                ("mode".to_string(), Some("755".to_string())),
                ("size".to_string(), Some("65536k".to_string())),
                ("newinstance".to_string(), None)
            ]
        );
    }

    #[test]
    fn recursive_attrs() {
        let o = p(&["rbind", "rro"]);
        assert_eq!((o.attr_set, o.rec_attr_set), (0, sys::MOUNT_ATTR_RDONLY));
        let o = p(&["rw"]);
        assert_eq!((o.attr_clr, o.rec_attr_clr), (sys::MOUNT_ATTR_RDONLY, 0));
    }

    #[test]
    fn plain_attrs_of_an_rbind_are_not_recursive() {
        let o = p(&["rbind", "ro", "nosuid", "nodev", "noexec", "rnoatime"]);
        assert!(o.bind && o.recursive);
        assert_eq!(
            o.attr_set,
            sys::MOUNT_ATTR_RDONLY
                | sys::MOUNT_ATTR_NOSUID
                | sys::MOUNT_ATTR_NODEV
                | sys::MOUNT_ATTR_NOEXEC
        );
        assert_eq!(o.attr_clr, 0);
        assert_eq!(o.rec_attr_set, sys::MOUNT_ATTR_NOATIME);
        assert_eq!(o.rec_attr_clr, sys::MOUNT_ATTR__ATIME);
    }
}
