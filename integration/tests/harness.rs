//! Self-checks of the harness: the leftovers detector really sees a live
//! container, and a hung runtime command is cut off by the timeout.

use integration::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn leftovers_detects_live_container() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_script("echo ready; sleep 1000");
    let id = rt.id("leftover");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    let found = rt.leftovers(&b, &id).join("\n");
    assert!(found.contains("state dir"), "{found}");
    assert!(found.contains("cgroup dir"), "{found}");
    assert!(found.contains("process"), "{found}");
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn command_timeout_kills() {
    let t0 = Instant::now();
    let out = run_with_timeout(
        Command::new("/bin/sleep").arg("30"),
        Duration::from_millis(300),
        None,
    );
    assert!(out.timed_out);
    assert!(!out.success());
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn cap_mask_matches_kernel_numbering() {
    assert_eq!(cap_mask(&["CAP_CHOWN"]), 1);
    assert_eq!(
        cap_mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]),
        0x2000_0420
    );
    assert_eq!(cap_mask(&["CAP_CHECKPOINT_RESTORE"]), 1 << 40);
}
