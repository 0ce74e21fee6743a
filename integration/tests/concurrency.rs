//! Concurrent use of one --root: many containers in parallel, and racing
//! operations on the same container.

use integration::*;
use std::sync::{Arc, Barrier};
use std::thread;

#[test]
fn eight_containers_in_parallel() {
    let rt = Arc::new(Runtime::new());
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let rt = rt.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut b = Bundle::new();
                b.set_script(&format!("echo hello-{i}; sleep 1000"));
                let id = rt.id(&format!("par{i}"));
                barrier.wait();
                rt.create(&b, &id).ok();
                rt.start(&id).ok();
                rt.wait_output(&id, &format!("hello-{i}"), TIMEOUT);
                assert_eq!(rt.status(&id).as_deref(), Some("running"));
                rt.kill(&id, Some("KILL")).ok();
                rt.wait_for_status(&id, "stopped", TIMEOUT);
                rt.delete(&id, false).ok();
                rt.assert_no_leftovers(&b, &id);
                id
            })
        })
        .collect();
    let mut ids = Vec::new();
    let mut failures = Vec::new();
    for h in handles {
        match h.join() {
            Ok(id) => ids.push(id),
            Err(e) => failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            ),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} failed:\n{}",
        failures.len(),
        failures.join("\n----\n")
    );
    assert_eq!(ids.len(), n);
    let l = rt.cmd(&["list", "-q"]).ok();
    assert_eq!(l.stdout.trim(), "", "containers left in list: {}", l.stdout);
}

#[test]
fn parallel_lists_while_creating() {
    let rt = Arc::new(Runtime::new());
    let mut b = Bundle::new();
    b.set_script("sleep 1000");
    let ids: Vec<String> = (0..4).map(|i| rt.id(&format!("lst{i}"))).collect();
    let bundles: Vec<Bundle> = ids
        .iter()
        .map(|_| {
            let mut b = Bundle::new();
            b.set_script("sleep 1000");
            b
        })
        .collect();
    let lister = {
        let rt = rt.clone();
        thread::spawn(move || {
            for _ in 0..20 {
                let out = rt.cmd(&["list", "-f", "json"]);
                assert!(
                    out.success(),
                    "list failed during concurrent creates: {}",
                    out.describe()
                );
                let v: serde_json::Value = serde_json::from_str(out.stdout.trim())
                    .unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
                assert!(v.is_null() || v.is_array(), "{v}");
            }
        })
    };
    for (b, id) in bundles.iter().zip(&ids) {
        rt.create(b, id).ok();
    }
    lister.join().expect("lister");
    for (b, id) in bundles.iter().zip(&ids) {
        rt.delete(id, true).ok();
        rt.assert_no_leftovers(b, id);
    }
    drop(b);
}

fn race<F>(n: usize, f: F) -> Vec<CmdOut>
where
    F: Fn() -> CmdOut + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(n));
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let f = f.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                f()
            })
        })
        .collect();
    hs.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn concurrent_force_delete_same_id() {
    let rt = Arc::new(Runtime::new());
    let mut b = Bundle::new();
    b.set_script("echo ready; sleep 1000");
    let id = rt.id("racedel");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    let outs = {
        let (rt, id) = (rt.clone(), id.clone());
        race(3, move || rt.delete(&id, true))
    };
    for o in &outs {
        assert!(!o.timed_out, "delete hung: {}", o.describe());
        assert!(o.code() < 128, "delete crashed: {}", o.describe());
    }
    assert!(
        outs.iter().any(|o| o.success()),
        "no delete succeeded: {outs:#?}"
    );
    assert!(rt.state(&id).is_err(), "container survived");
    rt.assert_no_leftovers(&b, &id);
    // The root is still usable.
    let l = rt.cmd(&["list", "-q"]).ok();
    assert_eq!(l.stdout.trim(), "");
}

#[test]
fn concurrent_kill_same_id() {
    let rt = Arc::new(Runtime::new());
    let mut b = Bundle::new();
    b.set_script("echo ready; sleep 1000");
    let id = rt.id("racekill");
    rt.create_start(&b, &id);
    rt.wait_output(&id, "ready", TIMEOUT);
    let outs = {
        let (rt, id) = (rt.clone(), id.clone());
        race(3, move || rt.kill(&id, Some("KILL")))
    };
    for o in &outs {
        assert!(!o.timed_out, "kill hung: {}", o.describe());
        assert!(o.code() < 128, "kill crashed: {}", o.describe());
    }
    assert!(
        outs.iter().any(|o| o.success()),
        "no kill succeeded: {outs:#?}"
    );
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    let st = rt.state_ok(&id);
    assert_eq!(st["id"], id.as_str(), "state corrupted: {st}");
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// Racing `start`s: exactly one wins, the others fail promptly, the process
/// runs once.
///
/// runc 1.1.5 BUG (flaky, fails roughly half the runs): a losing `start` can
/// block on the exec fifo until the container exits, so it hits the
/// timeout here.
#[test]
fn concurrent_start_same_id_runs_once() {
    let rt = Arc::new(Runtime::new());
    let mut b = Bundle::new();
    b.set_script("echo started-once; sleep 1000");
    let id = rt.id("racestart");
    rt.create(&b, &id).ok();
    let outs = {
        let (rt, id) = (rt.clone(), id.clone());
        race(3, move || rt.start(&id))
    };
    for o in &outs {
        assert!(!o.timed_out, "start hung: {}", o.describe());
    }
    assert_eq!(
        outs.iter().filter(|o| o.success()).count(),
        1,
        "exactly one start must win: {outs:#?}"
    );
    rt.wait_output(&id, "started-once", TIMEOUT);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(rt.output(&id).matches("started-once").count(), 1);
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}
