//! Host-feature gates. A test whose host (or runtime under test) lacks what
//! it needs must not report *passed*: it fails, unless
//! `OXRUN_TEST_ALLOW_SKIP=1` is set, in which case it says it skipped and
//! returns.

use std::io::Write;

/// The environment variable that turns a missing feature from a test
/// failure into a skip (only the value `1` does).
const ALLOW_SKIP_VAR: &str = "OXRUN_TEST_ALLOW_SKIP";

/// True if `OXRUN_TEST_ALLOW_SKIP=1`.
fn skips_allowed() -> bool {
    std::env::var_os(ALLOW_SKIP_VAR).is_some_and(|v| v == "1")
}

/// The calling test cannot run here because of `reason`. Panics (the test
/// fails) unless `OXRUN_TEST_ALLOW_SKIP=1`; then prints
/// `SKIPPED: <test>: <reason>` to stderr and returns, and the caller must
/// return at once. [`require!`](crate::require) does both.
#[track_caller]
pub fn skip_or_fail(reason: &str) {
    let test = current_test();
    if !skips_allowed() {
        panic!(
            "{test}: cannot run here: {reason} \
             (set {ALLOW_SKIP_VAR}=1 to skip such tests instead of failing them)"
        );
    }
    // Straight to stderr, not eprintln!: libtest captures eprintln! of a
    // passing test and would hide the line.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {reason}");
}

/// The test's name: libtest runs each test on a thread named after it.
fn current_test() -> String {
    match std::thread::current().name() {
        Some(n) if n != "main" => n.to_string(),
        _ => "<unknown test>".to_string(),
    }
}

/// `require!(cond, "reason {}", args...)`: unless `cond` holds, call
/// [`skip_or_fail`] with the formatted reason and return from the test.
#[macro_export]
macro_rules! require {
    ($cond:expr, $($reason:tt)+) => {
        if !$cond {
            $crate::skip_or_fail(&format!($($reason)+));
            return;
        }
    };
}
