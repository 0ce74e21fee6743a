//! Checks `libcontainer::dbus::Systemd` against a real systemd (PID 1, cgroup
//! v2), as root. Not run on hosts without systemd; run it in the systemd
//! guest:
//!
//!   systemd-probe            transient scope lifecycle and error paths
//!   systemd-probe bus        the same through the system bus (dbus-daemon)
//!   systemd-probe bench N    N x (start a scope for a sleeping child, stop it)
//!
//! Prints what it checked; exits non-zero at the first mismatch.

use std::process::{Child, Command, ExitCode};
use std::time::Instant;

use libcontainer::dbus::{cpuset_to_bitmask, Connection, DbusError, Property, Systemd, Value};

type Res<T> = Result<T, String>;

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn connect(bus: bool) -> Res<Systemd> {
    let conn = if bus {
        let addr = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| libcontainer::dbus::SYSTEM_BUS.into());
        Connection::open(&addr, true)
    } else {
        Connection::system()
    };
    let conn = conn.map_err(|e| format!("connect: {e}"))?;
    println!("connected to {} (bus: {})", conn.address(), conn.is_bus());
    Ok(Systemd::with_connection(conn))
}

fn sleeper() -> Res<Child> {
    Command::new("sleep")
        .arg("300")
        .spawn()
        .map_err(|e| format!("spawn sleep: {e}"))
}

fn scope_props(pid: u32) -> Res<Vec<Property>> {
    let cpus = cpuset_to_bitmask("0").map_err(|e| e.to_string())?;
    Ok(vec![
        (
            "Description".into(),
            Value::Str(format!("oxrun probe for {pid}")),
        ),
        ("Slice".into(), Value::Str("system.slice".into())),
        ("PIDs".into(), Value::U32s(vec![pid])),
        ("Delegate".into(), Value::Bool(true)),
        ("DefaultDependencies".into(), Value::Bool(false)),
        ("MemoryMax".into(), Value::U64(64 << 20)),
        ("TasksMax".into(), Value::U64(42)),
        ("AllowedCPUs".into(), Value::Bytes(cpus)),
        ("CPUQuotaPerSecUSec".into(), Value::U64(500_000)),
        ("CPUWeight".into(), Value::U64(200)),
        (
            "DeviceAllow".into(),
            Value::StrPairs(vec![("/dev/null".into(), "rwm".into())]),
        ),
    ])
}

fn read(unit: &str, file: &str) -> Res<String> {
    let p = format!("/sys/fs/cgroup/system.slice/{unit}/{file}");
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("read {p}: {e}"))
}

fn expect_file(unit: &str, file: &str, want: &str) -> Res<()> {
    let got = read(unit, file)?;
    check!(got == want, "{unit}/{file}: {got:?}, expected {want:?}");
    println!("  {file} = {got}");
    Ok(())
}

fn lifecycle(sd: &mut Systemd) -> Res<()> {
    let version = sd.version().map_err(|e| e.to_string())?;
    println!("systemd version {version}");
    check!(version >= 240, "version {version}");

    let mut child = sleeper()?;
    let unit = format!("oxrun-probe-{}.scope", child.id());
    let r = scope_checks(sd, &unit, &mut child);
    if r.is_err() {
        // Leave nothing behind in the guest.
        let _ = sd.stop_unit(&unit);
        let _ = child.kill();
        let _ = child.wait();
        let _ = sd.reset_failed_unit(&unit);
    }
    r?;
    kill_checks(sd)
}

fn scope_checks(sd: &mut Systemd, unit: &str, child: &mut Child) -> Res<()> {
    let unit = unit.to_owned();
    let props = scope_props(child.id())?;
    let t = Instant::now();
    sd.start_transient_unit(&unit, &props)
        .map_err(|e| e.to_string())?;
    println!("started {unit} in {:?}", t.elapsed());
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap_or_default();
    check!(
        cg.trim() == format!("0::/system.slice/{unit}"),
        "child cgroup {cg:?}"
    );
    expect_file(&unit, "memory.max", "67108864")?;
    expect_file(&unit, "pids.max", "42")?;
    expect_file(&unit, "cpuset.cpus", "0")?;
    expect_file(&unit, "cpu.max", "50000 100000")?;
    expect_file(&unit, "cpu.weight", "200")?;
    let state = sd.unit_active_state(&unit).map_err(|e| e.to_string())?;
    check!(state.as_deref() == Some("active"), "ActiveState {state:?}");
    let delegate = sd
        .unit_property(&unit, "org.freedesktop.systemd1.Scope", "Delegate")
        .map_err(|e| e.to_string())?;
    check!(
        delegate == Some(libcontainer::dbus::Arg::Bool(true)),
        "Delegate {delegate:?}"
    );
    println!("  ActiveState = active, Delegate = yes");

    // Updates.
    let update = [
        ("MemoryMax".to_string(), Value::U64(128 << 20)),
        ("TasksMax".to_string(), Value::U64(100)),
    ];
    sd.set_unit_properties(&unit, true, &update)
        .map_err(|e| e.to_string())?;
    expect_file(&unit, "memory.max", "134217728")?;
    expect_file(&unit, "pids.max", "100")?;

    // Error paths.
    match sd.start_transient_unit(&unit, &props) {
        Err(e @ DbusError::UnitExists { .. }) => println!("  again: {e}"),
        r => return Err(format!("second start of {unit}: {r:?}")),
    }
    let bad = [("NoSuchProperty".to_string(), Value::U64(1))];
    match sd.set_unit_properties(&unit, true, &bad) {
        Err(e @ DbusError::Remote { .. }) if e.to_string().contains("NoSuchProperty") => {
            println!("  bad property: {e}")
        }
        r => return Err(format!("bad property: {r:?}")),
    }
    let wrong_type = [("MemoryMax".to_string(), Value::Str("lots".into()))];
    match sd.start_transient_unit("oxrun-probe-badtype.scope", &wrong_type) {
        Err(e @ DbusError::Remote { .. }) => println!("  wrong type: {e}"),
        r => return Err(format!("wrong type: {r:?}")),
    }
    let ghost = "oxrun-probe-ghost.scope";
    sd.stop_unit(ghost)
        .map_err(|e| format!("stop {ghost}: {e}"))?;
    sd.reset_failed_unit(ghost)
        .map_err(|e| format!("reset-failed {ghost}: {e}"))?;
    let state = sd.unit_active_state(ghost).map_err(|e| e.to_string())?;
    check!(state.is_none(), "{ghost} state {state:?}");
    match sd.kill_unit(ghost, 9) {
        Err(e @ DbusError::NoSuchUnit { .. }) => println!("  kill ghost: {e}"),
        r => return Err(format!("kill {ghost}: {r:?}")),
    }
    match sd.set_unit_properties(ghost, true, &update) {
        Err(e @ DbusError::NoSuchUnit { .. }) => println!("  set ghost: {e}"),
        r => return Err(format!("set {ghost}: {r:?}")),
    }
    println!("  ghost unit: stop/reset-failed Ok, state None");

    // Stop: systemd kills the child, the unit and its cgroup go away.
    let t = Instant::now();
    sd.stop_unit(&unit).map_err(|e| e.to_string())?;
    println!("stopped {unit} in {:?}", t.elapsed());
    let status = child.wait().map_err(|e| e.to_string())?;
    println!("  child ended: {status}");
    sd.reset_failed_unit(&unit).map_err(|e| e.to_string())?;
    let state = sd.unit_active_state(&unit).map_err(|e| e.to_string())?;
    check!(state.is_none(), "{unit} still loaded: {state:?}");
    let gone = !std::path::Path::new(&format!("/sys/fs/cgroup/system.slice/{unit}")).exists();
    check!(gone, "cgroup of {unit} still exists");
    println!("  unit unloaded, cgroup removed");
    Ok(())
}

fn kill_checks(sd: &mut Systemd) -> Res<()> {
    let mut child = sleeper()?;
    let unit = format!("oxrun-probe-{}.scope", child.id());
    sd.start_transient_unit(&unit, &scope_props(child.id())?)
        .map_err(|e| e.to_string())?;
    sd.kill_unit(&unit, 9).map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    check!(
        std::os::unix::process::ExitStatusExt::signal(&status) == Some(9),
        "killed child: {status}"
    );
    sd.stop_unit(&unit).map_err(|e| e.to_string())?;
    sd.reset_failed_unit(&unit).map_err(|e| e.to_string())?;
    println!("kill_unit: child ended with {status}");
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0);
    check!(threads == 1, "{threads} threads");
    println!("threads: {threads}");
    Ok(())
}

fn bench(sd: &mut Systemd, n: u32) -> Res<()> {
    let mut total = std::time::Duration::ZERO;
    let t = Instant::now();
    drop(connect(sd.connection().is_bus())?);
    println!("bench: connect (+ Hello on a bus) {:?}", t.elapsed());
    for _ in 0..n {
        let mut child = sleeper()?;
        let unit = format!("oxrun-bench-{}.scope", child.id());
        let t = Instant::now();
        sd.start_transient_unit(&unit, &scope_props(child.id())?)
            .map_err(|e| e.to_string())?;
        sd.stop_unit(&unit).map_err(|e| e.to_string())?;
        total += t.elapsed();
        let _ = child.wait();
        sd.reset_failed_unit(&unit).map_err(|e| e.to_string())?;
    }
    println!("bench: {n} x start+stop, mean {:?}", total / n);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bus = args.first().map(String::as_str) == Some("bus");
    let r = connect(bus).and_then(|mut sd| match args.last().map(String::as_str) {
        Some(n) if args.iter().any(|a| a == "bench") => bench(&mut sd, n.parse().unwrap_or(10)),
        _ => lifecycle(&mut sd),
    });
    match r {
        Ok(()) => {
            println!("systemd-probe: OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("systemd-probe: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
