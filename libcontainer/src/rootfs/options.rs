//! Parsing of OCI mount options into what the new mount API wants: mount
//! attributes, propagation, bind-ness, and filesystem parameters.

use crate::sys;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub bind: bool,
    pub recursive: bool,
    /// Attributes to set / clear on the mount (MOUNT_ATTR_*).
    pub attr_set: u64,
    pub attr_clr: u64,
    /// Apply the attributes to the whole tree (`rro`, `rnosuid`, ...).
    pub attr_recursive: bool,
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

fn atime(o: &mut MountOptions, mode: u64) {
    o.attr_clr |= sys::MOUNT_ATTR__ATIME;
    o.attr_set = (o.attr_set & !sys::MOUNT_ATTR__ATIME) | mode;
}

/// Parse the `options` of one mount. Unknown words become filesystem data.
pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in options {
        let (word, rec) = match opt.as_str() {
            // rro, rnosuid, ... (runc's recursive variants)
            w if w.len() > 1 && w.starts_with('r') && is_attr(&w[1..]) && w != "rw" => {
                (&w[1..], true)
            }
            w => (w, false),
        };
        if rec {
            o.attr_recursive = true;
        }
        match word {
            "bind" => o.bind = true,
            "rbind" => {
                o.bind = true;
                o.recursive = true;
            }
            "ro" => o.attr_set |= sys::MOUNT_ATTR_RDONLY,
            "rw" => o.attr_clr |= sys::MOUNT_ATTR_RDONLY,
            "nosuid" => o.attr_set |= sys::MOUNT_ATTR_NOSUID,
            "suid" => o.attr_clr |= sys::MOUNT_ATTR_NOSUID,
            "nodev" => o.attr_set |= sys::MOUNT_ATTR_NODEV,
            "dev" => o.attr_clr |= sys::MOUNT_ATTR_NODEV,
            "noexec" => o.attr_set |= sys::MOUNT_ATTR_NOEXEC,
            "exec" => o.attr_clr |= sys::MOUNT_ATTR_NOEXEC,
            "nosymfollow" => o.attr_set |= sys::MOUNT_ATTR_NOSYMFOLLOW,
            "symfollow" => o.attr_clr |= sys::MOUNT_ATTR_NOSYMFOLLOW,
            "noatime" => atime(&mut o, sys::MOUNT_ATTR_NOATIME),
            "relatime" => atime(&mut o, sys::MOUNT_ATTR_RELATIME),
            "strictatime" => atime(&mut o, sys::MOUNT_ATTR_STRICTATIME),
            "atime" | "norelatime" | "nostrictatime" => atime(&mut o, sys::MOUNT_ATTR_RELATIME),
            "nodiratime" => o.attr_set |= sys::MOUNT_ATTR_NODIRATIME,
            "diratime" => o.attr_clr |= sys::MOUNT_ATTR_NODIRATIME,
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
        assert!(o.attr_recursive);
        assert_eq!(o.attr_set, sys::MOUNT_ATTR_RDONLY);
        let o = p(&["rw"]);
        assert!(!o.attr_recursive);
        assert_eq!(o.attr_clr, sys::MOUNT_ATTR_RDONLY);
    }
}
