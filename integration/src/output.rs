//! Picking values out of what a container printed.

/// Find `<key>=<value>` style lines printed by a container: returns the
/// value of the first line starting with `key=`.
pub fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}=");
    out.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::trim)
}

/// Like [`field`] but panics with the whole output when missing.
pub fn must_field<'a>(out: &'a str, key: &str) -> &'a str {
    field(out, key).unwrap_or_else(|| panic!("no `{key}=` line in output:\n{out}"))
}

/// Value of a `Key:\tvalue` line (as in /proc/<pid>/status).
pub fn status_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}:");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::trim)
}
