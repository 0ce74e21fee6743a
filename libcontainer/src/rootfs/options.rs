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
    /// `tmpcopyup`: fill a new tmpfs with what its destination held.
    pub tmpcopyup: bool,
    /// Options we accept but do nothing with (reported as warnings).
    pub ignored: Vec<String>,
}

/// What a mount attribute word does to the attribute set/clear pair.
#[derive(Clone, Copy)]
enum AttrOp {
    Set(u64),
    Clear(u64),
    /// One of the exclusive atime modes.
    Atime(u64),
}

/// The mount attribute words; each also has a recursive `r` form
/// (`rro`, `rnosuid`, ...: runc's, applied with AT_RECURSIVE).
const ATTRS: &[(&str, AttrOp)] = &[
    ("ro", AttrOp::Set(sys::MOUNT_ATTR_RDONLY)),
    ("rw", AttrOp::Clear(sys::MOUNT_ATTR_RDONLY)),
    ("nosuid", AttrOp::Set(sys::MOUNT_ATTR_NOSUID)),
    ("suid", AttrOp::Clear(sys::MOUNT_ATTR_NOSUID)),
    ("nodev", AttrOp::Set(sys::MOUNT_ATTR_NODEV)),
    ("dev", AttrOp::Clear(sys::MOUNT_ATTR_NODEV)),
    ("noexec", AttrOp::Set(sys::MOUNT_ATTR_NOEXEC)),
    ("exec", AttrOp::Clear(sys::MOUNT_ATTR_NOEXEC)),
    ("nosymfollow", AttrOp::Set(sys::MOUNT_ATTR_NOSYMFOLLOW)),
    ("symfollow", AttrOp::Clear(sys::MOUNT_ATTR_NOSYMFOLLOW)),
    ("noatime", AttrOp::Atime(sys::MOUNT_ATTR_NOATIME)),
    ("relatime", AttrOp::Atime(sys::MOUNT_ATTR_RELATIME)),
    ("strictatime", AttrOp::Atime(sys::MOUNT_ATTR_STRICTATIME)),
    ("atime", AttrOp::Atime(sys::MOUNT_ATTR_RELATIME)),
    ("norelatime", AttrOp::Atime(sys::MOUNT_ATTR_RELATIME)),
    ("nostrictatime", AttrOp::Atime(sys::MOUNT_ATTR_RELATIME)),
    ("nodiratime", AttrOp::Set(sys::MOUNT_ATTR_NODIRATIME)),
    ("diratime", AttrOp::Clear(sys::MOUNT_ATTR_NODIRATIME)),
];

/// What the other option words do.
#[derive(Clone, Copy)]
enum Word {
    Bind,
    Rbind,
    /// A propagation change: (MS_* flag, recursive).
    Propagation(u64, bool),
    /// A superblock flag handed to fsconfig.
    SbFlag,
    /// Accepted, nothing to do with the new mount API.
    NoOp,
    Remount,
    Idmap,
    Ridmap,
    TmpCopyUp,
    /// Accepted with a warning: we do not implement it.
    Unsupported,
}

const WORDS: &[(&str, Word)] = &[
    ("bind", Word::Bind),
    ("rbind", Word::Rbind),
    ("shared", Word::Propagation(libc::MS_SHARED, false)),
    ("rshared", Word::Propagation(libc::MS_SHARED, true)),
    ("slave", Word::Propagation(libc::MS_SLAVE, false)),
    ("rslave", Word::Propagation(libc::MS_SLAVE, true)),
    ("private", Word::Propagation(libc::MS_PRIVATE, false)),
    ("rprivate", Word::Propagation(libc::MS_PRIVATE, true)),
    ("unbindable", Word::Propagation(libc::MS_UNBINDABLE, false)),
    ("runbindable", Word::Propagation(libc::MS_UNBINDABLE, true)),
    ("sync", Word::SbFlag),
    ("dirsync", Word::SbFlag),
    ("lazytime", Word::SbFlag),
    ("mand", Word::SbFlag),
    ("async", Word::NoOp),
    ("nomand", Word::NoOp),
    ("nolazytime", Word::NoOp),
    ("defaults", Word::NoOp),
    ("loud", Word::NoOp),
    // MS_SILENT only quiets mount(2)'s printk on a failed mount; the new
    // API reports through the fs context instead. The filesystems that
    // keep i_version (ext4, xfs, btrfs) do so unconditionally since Linux
    // 6.1, and no fsconfig key takes MS_I_VERSION: accepted, not passed on
    // (the spec requires the words be understood).
    ("silent", Word::NoOp),
    ("iversion", Word::NoOp),
    ("noiversion", Word::NoOp),
    ("remount", Word::Remount),
    ("idmap", Word::Idmap),
    ("ridmap", Word::Ridmap),
    ("tmpcopyup", Word::TmpCopyUp),
    // crun's: copy symlinks instead of mounting over them.
    ("copy-symlink", Word::Unsupported),
];

fn apply_attr(op: AttrOp, set: &mut u64, clr: &mut u64) {
    match op {
        AttrOp::Set(f) => *set |= f,
        AttrOp::Clear(f) => *clr |= f,
        AttrOp::Atime(mode) => {
            *clr |= sys::MOUNT_ATTR__ATIME;
            *set = (*set & !sys::MOUNT_ATTR__ATIME) | mode;
        }
    }
}

fn attr_op(word: &str) -> Option<AttrOp> {
    ATTRS.iter().find(|(w, _)| *w == word).map(|(_, op)| *op)
}

/// Every option word the parser acts on (what `features` reports as
/// `mountOptions`): the attribute words, their recursive forms and the
/// other words, less those only accepted with a warning. Filesystem
/// parameters (`mode=`, `size=`, ...) go to the filesystem and are not
/// listed.
pub fn known() -> Vec<String> {
    let mut all: Vec<String> = ATTRS
        .iter()
        .flat_map(|(w, _)| [w.to_string(), format!("r{w}")])
        .chain(
            WORDS
                .iter()
                .filter(|(_, op)| !matches!(op, Word::Unsupported))
                .map(|(w, _)| w.to_string()),
        )
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Parse the `options` of one mount. Unknown words become filesystem data.
pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in options {
        let word = opt.as_str();
        // rro, rnosuid, ... (runc's recursive variants)
        if let Some(op) = word
            .strip_prefix('r')
            .filter(|_| word != "rw")
            .and_then(attr_op)
        {
            apply_attr(op, &mut o.rec_attr_set, &mut o.rec_attr_clr);
            continue;
        }
        if let Some(op) = attr_op(word) {
            apply_attr(op, &mut o.attr_set, &mut o.attr_clr);
            continue;
        }
        let Some((_, op)) = WORDS.iter().find(|(w, _)| *w == word) else {
            match word.split_once('=') {
                Some((k, v)) => o.data.push((k.to_string(), Some(v.to_string()))),
                None => o.data.push((word.to_string(), None)),
            }
            continue;
        };
        match *op {
            Word::Bind => o.bind = true,
            Word::Rbind => {
                o.bind = true;
                o.recursive = true;
            }
            Word::Propagation(flag, rec) => o.propagation.push((flag, rec)),
            Word::SbFlag => o.sb_flags.push(word.to_string()),
            Word::NoOp => {}
            Word::Remount => o.remount = true,
            Word::Idmap => o.idmap = true,
            Word::Ridmap => {
                o.idmap = true;
                o.recursive = true;
            }
            Word::TmpCopyUp => o.tmpcopyup = true,
            Word::Unsupported => o.ignored.push(opt.clone()),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> MountOptions {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn known_words_parse_as_options_not_data() {
        let words = known();
        for w in ["rro", "rrw", "ridmap", "tmpcopyup", "rnosymfollow", "loud"] {
            assert!(words.iter().any(|k| k == w), "{w} missing from {words:?}");
        }
        assert!(!words.iter().any(|k| k == "copy-symlink" || k == "mode"));
        for w in &words {
            assert!(p(&[w.as_str()]).data.is_empty(), "{w} taken as fs data");
        }
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
