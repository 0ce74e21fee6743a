//! Names unique across tests and test binaries running at the same time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The next value of a process-wide counter.
pub(crate) fn next() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// A name unique across tests and test binaries running at the same time.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), next())
}
