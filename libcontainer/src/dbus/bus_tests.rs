//! The client against a real bus: a private dbus-daemon started for each
//! test (the `dbus-daemon` package; scripts/setup.sh installs it). Without
//! it the tests fail, unless OXRUN_TEST_ALLOW_SKIP=1.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::wire::{Arg, Message};
use super::{Connection, DbusError, Deadline, Systemd};

const BUS: &str = "org.freedesktop.DBus";
const BUS_PATH: &str = "/org/freedesktop/DBus";

struct PrivateBus {
    child: Child,
    dir: PathBuf,
    address: String,
}

impl PrivateBus {
    /// None (after saying so) when dbus-daemon is missing and skips are allowed.
    fn start() -> Option<PrivateBus> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("oxrun-dbus-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("bus");
        let config = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            sock.display()
        );
        std::fs::write(dir.join("bus.conf"), config).unwrap();
        let spawned = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", dir.join("bus.conf").display()))
            .arg("--nofork")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                let reason = format!("cannot run dbus-daemon ({e}): apt-get install dbus-daemon");
                if std::env::var_os("OXRUN_TEST_ALLOW_SKIP").is_some_and(|v| v == "1") {
                    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
                    return None;
                }
                panic!("{reason} (set OXRUN_TEST_ALLOW_SKIP=1 to skip instead)");
            }
        };
        let bus = PrivateBus {
            child,
            address: format!("unix:path={}", sock.display()),
            dir,
        };
        // Until it accepts: the socket file appears at bind(), before
        // listen() (a connect in between is ECONNREFUSED).
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            let log = std::fs::read_to_string(bus.dir.join("stderr")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "dbus-daemon did not listen on {sock:?} within 10 s: {log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(bus)
    }

    fn connect(&self) -> Connection {
        Connection::open(&self.address, true).unwrap()
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bus_call(member: &str, args: &[Arg]) -> Message {
    Message::method_call(Some(BUS), BUS_PATH, BUS, member).with_args(args)
}

#[test]
fn hello_getid_listnames() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let mut c = bus.connect();
    let me = c.unique_name().unwrap().to_owned();
    assert!(me.starts_with(':'), "unique name {me}");
    let id = c.call(&bus_call("GetId", &[])).unwrap().args().unwrap();
    let [Arg::Str(id)] = id.as_slice() else {
        panic!("GetId: {id:?}")
    };
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let names = c.call(&bus_call("ListNames", &[])).unwrap().args().unwrap();
    let [Arg::Array(elem, names)] = names.as_slice() else {
        panic!("{names:?}")
    };
    assert_eq!(elem, "s");
    let names: Vec<_> = names.iter().filter_map(Arg::as_str).collect();
    assert!(
        names.contains(&BUS) && names.contains(&me.as_str()),
        "{names:?}"
    );
}

#[test]
fn match_rule_delivers_name_owner_changed() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let mut c = bus.connect();
    let rule = "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'";
    c.call(&bus_call("AddMatch", &[Arg::Str(rule.into())]))
        .unwrap();
    let other = bus.connect();
    let name = other.unique_name().unwrap().to_owned();
    let deadline = Deadline::after(Duration::from_secs(10));
    loop {
        let s = c.wait_signal(deadline, "NameOwnerChanged").unwrap();
        // Our own NameAcquired is not matched by the rule, but comes anyway.
        if s.member.as_deref() != Some("NameOwnerChanged") {
            continue;
        }
        let args = s.args().unwrap();
        let args: Vec<_> = args.iter().map(|a| a.as_str().unwrap()).collect();
        if args[0] == name {
            assert_eq!(args, [name.as_str(), "", name.as_str()]);
            break;
        }
    }
}

#[test]
fn error_replies_and_connect_errors() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let mut c = bus.connect();
    match c.call(&bus_call("NoSuchMethod", &[Arg::U32(1)])) {
        Err(DbusError::Remote {
            method,
            name,
            message,
            ..
        }) => {
            assert_eq!(method, "org.freedesktop.DBus.NoSuchMethod");
            assert_eq!(name, "org.freedesktop.DBus.Error.UnknownMethod");
            assert!(message.contains("NoSuchMethod"), "{message}");
        }
        r => panic!("{r:?}"),
    }
    // The systemd calls name the method and the unit; no systemd here.
    let mut sd = Systemd::with_connection(bus.connect());
    let e = sd.stop_unit("x.scope").unwrap_err().to_string();
    assert!(e.contains("org.freedesktop.systemd1"), "{e}");
    let e = sd.kill_unit("x.scope", 9).unwrap_err().to_string();
    assert!(
        e.contains("KillUnit(x.scope)") && e.contains("ServiceUnknown"),
        "{e}"
    );
    let missing = format!("unix:path={}/nothing", bus.dir.display());
    match Connection::open(&missing, true) {
        Err(DbusError::Connect { source, address }) => {
            assert_eq!(
                (source, address.as_str()),
                (Errno::ENOENT, missing.as_str())
            )
        }
        r => panic!("{:?}", r.err()),
    }
    assert!(matches!(
        Connection::open("tcp:host=localhost,port=1", true),
        Err(DbusError::Address { .. })
    ));
    // Several addresses: the first that works is used.
    let two = format!("{missing};{}", bus.address);
    assert!(Connection::open(&two, true).is_ok());
}

#[test]
fn calls_are_bounded_by_the_timeout() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    // `silent` owns a name and never answers what is sent to it.
    let mut silent = bus.connect();
    let owned = silent
        .call(&bus_call(
            "RequestName",
            &[Arg::Str("org.oxrun.Silent".into()), Arg::U32(0)],
        ))
        .unwrap();
    assert_eq!(owned.args().unwrap(), [Arg::U32(1)]);
    let mut c = bus.connect();
    c.set_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let m = Message::method_call(Some("org.oxrun.Silent"), "/x", "org.oxrun.Silent", "Wait");
    match c.call(&m) {
        Err(DbusError::Timeout { method, timeout }) => {
            assert_eq!(method, "org.oxrun.Silent.Wait");
            assert_eq!(timeout, Duration::from_millis(300));
        }
        r => panic!("{r:?}"),
    }
    assert!(start.elapsed() >= Duration::from_millis(300));
    // The connection still works afterwards.
    c.set_timeout(Duration::from_secs(10));
    c.call(&bus_call("GetId", &[])).unwrap();
    drop(silent);
}

#[test]
fn a_dead_peer_is_an_error_not_a_hang() {
    let Some(mut bus) = PrivateBus::start() else {
        return;
    };
    let mut c = bus.connect();
    bus.child.kill().unwrap();
    bus.child.wait().unwrap();
    match c.call(&bus_call("GetId", &[])) {
        Err(DbusError::Closed { method, .. }) | Err(DbusError::Io { method, .. }) => {
            assert_eq!(method, "org.freedesktop.DBus.GetId")
        }
        r => panic!("{r:?}"),
    }
}

/// systemd's private socket is a peer-to-peer sd-bus server (no Hello):
/// `BEGIN` must reach it in the same write as `AUTH`, before it answers.
/// (systemd 252 leaves a message that arrives in one read with a lone
/// `BEGIN` unprocessed until the socket is readable again: calls stalled
/// for their 25 s timeout in the systemd guest, scripts/systemd-vm.)
#[test]
fn peer_handshake_sends_begin_with_auth() {
    use std::io::Read as _;
    use std::os::unix::net::UnixListener;
    let dir = std::env::temp_dir().join(format!("oxrun-dbus-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // everything the client sends before it hears from us
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "client closed after {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"OK 0123456789abcdef0123456789abcdef\r\n")
            .unwrap();
        got
    });
    let c = Connection::open(&format!("unix:path={}", path.display()), false);
    let got = server.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(c.is_ok(), "{:?}", c.err());
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("\0AUTH EXTERNAL ") && text.ends_with("\r\nBEGIN\r\n"),
        "{text:?}"
    );
}
