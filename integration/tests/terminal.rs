//! `process.terminal: true` with `--console-socket`: the runtime sends the
//! pty master over the socket (SCM_RIGHTS), the container's stdio is the
//! slave.

use integration::*;
use serde_json::json;
use std::os::fd::AsRawFd;
use std::time::Duration;

fn terminal_bundle(script: Option<&str>) -> Bundle {
    let mut b = Bundle::new();
    b.config["process"]["terminal"] = json!(true);
    match script {
        Some(s) => b.set_script(s),
        None => b.set_args(&["sh"]),
    };
    b
}

#[test]
fn console_socket_interactive_shell() {
    let rt = Runtime::new();
    let sock = ConsoleSocket::new(rt.scratch());
    let b = terminal_bundle(None);
    let id = rt.id("tty");
    rt.create_with(&b, &id, &["--console-socket", sock.path.to_str().unwrap()])
        .ok();
    let master = sock
        .recv_fd(TIMEOUT)
        .unwrap_or_else(|e| panic!("console fd: {e}"));
    let fd = master.as_raw_fd();
    // SAFETY: isatty on an fd we own.
    let is_tty = unsafe { libc::isatty(fd) };
    assert_eq!(is_tty, 1, "received fd is not a terminal");
    // A pty master: TIOCGPTN gives the slave number.
    let mut ptn: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one c_uint into ptn.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGPTN, &mut ptn) };
    assert_eq!(r, 0, "received fd is not a pty master");

    rt.start(&id).ok();
    // Markers are computed by the shell so the echoed input never matches.
    write_all_fd(
        fd,
        b"echo OX$((20+1))HI; echo TTY=$(tty); test -c /dev/console && echo CONSOLE$((1+1))OK; \
          stty -a | head -1; echo ISTTY$((0+0))=$(test -t 0 && echo y); exit 3\n",
    );
    let out = read_until(fd, TIMEOUT, |s| s.contains("ISTTY0="));
    assert!(
        out.contains("OX21HI"),
        "no command output through the pty: {out:?}"
    );
    let tty_line = out
        .lines()
        .find(|l| l.starts_with("TTY="))
        .unwrap_or_else(|| panic!("{out:?}"))
        .trim();
    assert!(
        tty_line.starts_with("TTY=/dev/pts/"),
        "stdin is not a pts: {tty_line}"
    );
    assert!(out.contains("CONSOLE2OK"), "/dev/console missing: {out:?}");
    assert!(out.contains("ISTTY0=y"), "{out:?}");
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    drop(master);
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn console_socket_detached_run_and_window_size() {
    let rt = Runtime::new();
    let sock = ConsoleSocket::new(rt.scratch());
    // Keep reading lines so the test can drive the shell after setting the
    // window size on the master.
    let b = terminal_bundle(None);
    let id = rt.id("ttyrun");
    b.write_config(&id);
    let mut c = rt.command();
    c.arg("run")
        .arg("-d")
        .arg("--console-socket")
        .arg(&sock.path)
        .arg("--bundle")
        .arg(b.path())
        .arg(&id);
    // The fd must be received while (or after) the runtime sends it.
    let out = run_with_timeout(&mut c, TIMEOUT, None);
    assert!(out.success(), "{}", out.describe());
    let master = sock
        .recv_fd(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("console fd: {e}"));
    let fd = master.as_raw_fd();
    let ws = libc::winsize {
        ws_row: 33,
        ws_col: 111,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from ws.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0);
    write_all_fd(
        fd,
        b"echo SIZE=$(stty size)=$((1+1)); echo PID=$$=; exit 0\n",
    );
    let out = read_until(fd, TIMEOUT, |s| s.contains("PID=1="));
    assert!(
        out.contains("SIZE=33 111=2"),
        "window size not visible inside: {out:?}"
    );
    assert!(out.contains("PID=1="), "{out:?}");
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}

/// `process.consoleSize` is the pty's size before the process starts.
#[test]
fn console_size_is_the_initial_window_size() {
    let rt = Runtime::new();
    let sock = ConsoleSocket::new(rt.scratch());
    let mut b = terminal_bundle(Some("echo SIZE=$(stty size); sleep 2"));
    b.config["process"]["consoleSize"] = json!({"height": 27, "width": 91});
    let id = rt.id("ttysize");
    rt.create_with(&b, &id, &["--console-socket", sock.path.to_str().unwrap()])
        .ok();
    let master = sock
        .recv_fd(TIMEOUT)
        .unwrap_or_else(|e| panic!("console fd: {e}"));
    rt.start(&id).ok();
    let out = read_until(master.as_raw_fd(), TIMEOUT, |s| {
        s.contains("SIZE=") && s.contains('\n')
    });
    assert!(out.contains("SIZE=27 91"), "{out:?}");
    rt.wait_for_status(&id, "stopped", TIMEOUT);
    drop(master);
    rt.delete(&id, false).ok();
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn terminal_without_console_socket_fails() {
    let rt = Runtime::new();
    let b = terminal_bundle(Some("true"));
    let id = rt.id("ttynosock");
    let out = rt.create(&b, &id).fails();
    out.assert_mentions(&["console-socket", "console socket", "terminal"]);
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn console_socket_without_terminal_fails() {
    let rt = Runtime::new();
    let sock = ConsoleSocket::new(rt.scratch());
    let b = terminal_bundle(Some("true"));
    let mut b2 = Bundle::new();
    b2.config = b.config.clone();
    b2.config["process"]["terminal"] = json!(false);
    let id = rt.id("socknotty");
    let out = rt
        .create_with(&b2, &id, &["--console-socket", sock.path.to_str().unwrap()])
        .fails();
    out.assert_mentions(&["console-socket", "console socket", "terminal"]);
    rt.assert_no_leftovers(&b2, &id);
}
