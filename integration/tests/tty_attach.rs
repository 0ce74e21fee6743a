//! Foreground `run`/`exec` with a terminal and no --console-socket: the
//! runtime relays the container's pty to its own terminal (here `script`
//! provides one), and the exit status comes through.

use std::process::Command;
use std::time::Duration;

use integration::*;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(20);

/// Run `cmd` (a shell command line) under script(1) so it has a terminal.
fn under_script(cmd: &str) -> CmdOut {
    let mut c = Command::new("script");
    c.args(["-qec", cmd, "/dev/null"]);
    run_with_timeout(&mut c, TIMEOUT, None)
}

#[test]
fn foreground_run_attaches_to_the_callers_terminal() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["terminal"] = json!(true);
    b.set_script("tty; echo attached-ok; exit 3");
    let id = rt.id("attrun");
    b.write_config(&id);
    let cmd = format!(
        "{} --root {} run --bundle {} {}",
        runtime_bin().display(),
        rt.root.display(),
        b.path().display(),
        id
    );
    let out = under_script(&cmd);
    assert_eq!(out.code(), 3, "{}", out.describe());
    assert!(out.stdout.contains("/dev/pts/"), "{}", out.describe());
    assert!(out.stdout.contains("attached-ok"), "{}", out.describe());
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn foreground_exec_tty_attaches() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set_args(&["sleep", "300"]);
    let id = rt.id("attexec");
    rt.create_start(&b, &id);
    let cmd = format!(
        "{} --root {} exec -t {} sh -c 'tty; echo exec-tty-ok; exit 5'",
        runtime_bin().display(),
        rt.root.display(),
        id
    );
    let out = under_script(&cmd);
    assert_eq!(out.code(), 5, "{}", out.describe());
    assert!(
        out.stdout.contains("/dev/pts/") && out.stdout.contains("exec-tty-ok"),
        "{}",
        out.describe()
    );
    rt.delete(&id, true).ok();
    rt.assert_no_leftovers(&b, &id);
}
