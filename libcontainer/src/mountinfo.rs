//! `/proc/self/mountinfo`, parsed in one place for everything that reads
//! it (the rootfs set-up, `--no-pivot`, the cgroup hierarchies).

use std::path::PathBuf;

/// One line of mountinfo (proc(5)).
pub(crate) struct Entry<'a> {
    /// The root of the mount within its filesystem (`/` for a whole one).
    pub root: &'a str,
    pub mount_point: PathBuf,
    /// Optional fields: `shared:N`, `master:N`, `unbindable`, ...
    pub optional: Vec<&'a str>,
    pub fstype: &'a str,
    pub super_options: &'a str,
}

/// This process's mountinfo.
pub(crate) fn read() -> std::io::Result<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
}

/// The entries of `info`, in mount order (later lines are mounted later);
/// malformed lines are skipped.
pub(crate) fn entries(info: &str) -> impl Iterator<Item = Entry<'_>> {
    info.lines().filter_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        let fields: Vec<&str> = pre.split(' ').collect();
        let mut post = post.split(' ');
        let fstype = post.next()?;
        let _source = post.next();
        Some(Entry {
            root: fields.get(3)?,
            mount_point: unescape(fields.get(4)?),
            optional: fields.get(6..).map(<[&str]>::to_vec).unwrap_or_default(),
            fstype,
            super_options: post.next().unwrap_or(""),
        })
    })
}

/// Undo mountinfo's octal escapes of space, tab, newline and backslash.
pub(crate) fn unescape(s: &str) -> PathBuf {
    PathBuf::from(
        s.replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n")
            .replace("\\134", "\\"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_unescapes() {
        let info = "36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n\
                    garbage\n\
                    37 1 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let e: Vec<Entry<'_>> = entries(info).collect();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].root, "/mnt1");
        assert_eq!(e[0].mount_point, PathBuf::from("/mnt/a b"));
        assert_eq!(e[0].optional, vec!["master:1", "shared:2"]);
        assert_eq!(
            (e[0].fstype, e[0].super_options),
            ("ext3", "rw,errors=continue")
        );
        assert!(e[1].optional.is_empty());
        assert_eq!((e[1].fstype, e[1].super_options), ("cgroup", "rw,memory"));
    }
}
