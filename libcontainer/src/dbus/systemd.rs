//! The systemd Manager calls of the systemd cgroup driver: transient units
//! (started and stopped with a bounded wait for their job), unit
//! properties, state, kill, reset-failed, and the manager's version.

use std::time::Duration;

use super::conn::{protocol, reply_string, Connection, Deadline};
use super::wire::{Arg, Message, WireError};
use super::DbusError;

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";
const UNKNOWN_OBJECT: &str = "org.freedesktop.DBus.Error.UnknownObject";

/// Bound on waiting for a job's `JobRemoved` (runc waits 30 s as well).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// A unit property value, typed as systemd expects it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    U32(u32),
    U64(u64),
    I32(i32),
    I64(i64),
    Str(String),
    ObjectPath(String),
    /// `ay`: AllowedCPUs, AllowedMemoryNodes (see [`cpuset_to_bitmask`]).
    Bytes(Vec<u8>),
    /// `au`: PIDs.
    U32s(Vec<u32>),
    /// `as`: e.g. DelegateControllers.
    Strs(Vec<String>),
    /// `a(ss)`: DeviceAllow (path, "rwm").
    StrPairs(Vec<(String, String)>),
    /// `a(st)`: IODeviceWeight, IOReadBandwidthMax and the like.
    StrU64Pairs(Vec<(String, u64)>),
}

impl Value {
    fn to_arg(&self) -> Arg {
        let array = |sig: &str, items: Vec<Arg>| Arg::Array(sig.into(), items);
        match self {
            Value::Bool(v) => Arg::Bool(*v),
            Value::U32(v) => Arg::U32(*v),
            Value::U64(v) => Arg::U64(*v),
            Value::I32(v) => Arg::I32(*v),
            Value::I64(v) => Arg::I64(*v),
            Value::Str(v) => s(v),
            Value::ObjectPath(v) => Arg::Path(v.clone()),
            Value::Bytes(v) => Arg::Bytes(v.clone()),
            Value::U32s(v) => array("u", v.iter().map(|&u| Arg::U32(u)).collect()),
            Value::Strs(v) => array("s", v.iter().map(|v| s(v)).collect()),
            Value::StrPairs(v) => array(
                "(ss)",
                v.iter()
                    .map(|(a, b)| Arg::Struct(vec![s(a), s(b)]))
                    .collect(),
            ),
            Value::StrU64Pairs(v) => array(
                "(st)",
                v.iter()
                    .map(|(a, b)| Arg::Struct(vec![s(a), Arg::U64(*b)]))
                    .collect(),
            ),
        }
    }
}

/// `("MemoryMax".into(), Value::U64(67108864))`.
pub type Property = (String, Value);

fn s(v: &str) -> Arg {
    Arg::Str(v.into())
}

/// `a(sv)` of `props`.
pub(super) fn properties_arg(props: &[Property]) -> Arg {
    let items = props
        .iter()
        .map(|(name, v)| {
            Arg::Struct(vec![
                Arg::Str(name.clone()),
                Arg::Variant(Box::new(v.to_arg())),
            ])
        })
        .collect();
    Arg::Array("(sv)".into(), items)
}

fn is_job_removed(m: &Message) -> bool {
    m.path.as_deref() == Some(PATH)
        && m.interface.as_deref() == Some(MANAGER)
        && m.member.as_deref() == Some("JobRemoved")
}

/// The systemd manager (PID 1), over one connection.
pub struct Systemd {
    conn: Connection,
    subscribed: bool,
}

impl Systemd {
    /// [`Connection::system`]: systemd's private socket as root, else the
    /// system bus.
    pub fn connect() -> Result<Self, DbusError> {
        Ok(Systemd::with_connection(Connection::system()?))
    }

    /// [`Connection::user`]: the calling user's systemd instance.
    pub fn connect_user() -> Result<Self, DbusError> {
        Ok(Systemd::with_connection(Connection::user()?))
    }

    /// The manager's own cgroup (`ControlGroup`): "/" for the system
    /// instance, the user manager's service cgroup for a user's.
    pub fn control_group(&mut self) -> Result<String, DbusError> {
        let v = self.get_property(PATH, MANAGER, "ControlGroup", "")?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Use an open connection (a bus, or a peer-to-peer one to systemd).
    pub fn with_connection(conn: Connection) -> Self {
        Systemd {
            conn,
            subscribed: false,
        }
    }

    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The manager's version, the number before the first non-digit
    /// ("252.39-1~deb12u2" -> 252).
    pub fn version(&mut self) -> Result<u32, DbusError> {
        let v = self.get_property(PATH, MANAGER, "Version", "")?;
        let s = v.as_str().unwrap_or_default();
        parse_version(s).ok_or_else(|| {
            protocol(
                "org.freedesktop.systemd1.Manager.Version",
                WireError(format!("version {s:?} does not start with a number")),
            )
        })
    }

    /// `StartTransientUnit(unit, "replace", props, [])`, then wait (at most
    /// [`JOB_TIMEOUT`]) for the job: Ok when its result is "done". An
    /// existing unit is [`DbusError::UnitExists`].
    pub fn start_transient_unit(
        &mut self,
        unit: &str,
        props: &[Property],
    ) -> Result<(), DbusError> {
        self.subscribe(unit)?;
        let aux = Arg::Array("(sa(sv))".into(), Vec::new());
        let args = [s(unit), s("replace"), properties_arg(props), aux];
        let reply = self.manager_call("StartTransientUnit", &args, unit)?;
        self.wait_job(&reply, "StartTransientUnit", unit)
    }

    /// `StopUnit(unit, "replace")` and wait for the job; a unit that is not
    /// loaded is already stopped (Ok).
    pub fn stop_unit(&mut self, unit: &str) -> Result<(), DbusError> {
        self.subscribe(unit)?;
        let args = [s(unit), s("replace")];
        match self.manager_call("StopUnit", &args, unit) {
            Ok(reply) => self.wait_job(&reply, "StopUnit", unit),
            Err(DbusError::NoSuchUnit { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `ResetFailedUnit(unit)`; Ok for a unit that is not loaded.
    pub fn reset_failed_unit(&mut self, unit: &str) -> Result<(), DbusError> {
        match self.manager_call("ResetFailedUnit", &[s(unit)], unit) {
            Ok(_) | Err(DbusError::NoSuchUnit { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `SetUnitProperties(unit, runtime, props)`.
    pub fn set_unit_properties(
        &mut self,
        unit: &str,
        runtime: bool,
        props: &[Property],
    ) -> Result<(), DbusError> {
        let args = [s(unit), Arg::Bool(runtime), properties_arg(props)];
        self.manager_call("SetUnitProperties", &args, unit)
            .map(drop)
    }

    /// `ActiveState` ("active", "failed", ...), `None` if the unit is not
    /// loaded.
    pub fn unit_active_state(&mut self, unit: &str) -> Result<Option<String>, DbusError> {
        let v = self.unit_property(unit, "org.freedesktop.systemd1.Unit", "ActiveState")?;
        Ok(v.and_then(|a| a.as_str().map(str::to_owned)))
    }

    /// One property of a loaded unit (as `systemctl show -p` reads it), `None`
    /// if the unit is not loaded.
    pub fn unit_property(
        &mut self,
        unit: &str,
        interface: &str,
        name: &str,
    ) -> Result<Option<Arg>, DbusError> {
        let path = match self.manager_call("GetUnit", &[s(unit)], unit) {
            Ok(reply) => reply_string(&reply, "org.freedesktop.systemd1.Manager.GetUnit")?,
            Err(DbusError::NoSuchUnit { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        match self.get_property(&path, interface, name, unit) {
            Ok(v) => Ok(Some(v)),
            // Unloaded between the two calls.
            Err(DbusError::Remote { name, .. }) if name == UNKNOWN_OBJECT => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `KillUnit(unit, "all", signal)`.
    pub fn kill_unit(&mut self, unit: &str, signal: i32) -> Result<(), DbusError> {
        let args = [s(unit), s("all"), Arg::I32(signal)];
        self.manager_call("KillUnit", &args, unit).map(drop)
    }

    fn dest(&self) -> Option<&'static str> {
        // A bus daemon routes by destination; systemd's private socket is
        // peer-to-peer and needs none.
        self.conn.is_bus().then_some(DEST)
    }

    fn manager_call(
        &mut self,
        member: &str,
        args: &[Arg],
        unit: &str,
    ) -> Result<Message, DbusError> {
        let msg = Message::method_call(self.dest(), PATH, MANAGER, member).with_args(args);
        let context = format!("{MANAGER}.{member}({unit})");
        self.conn
            .call_as(&msg, &context)
            .map_err(|e| for_unit(e, unit))
    }

    fn get_property(
        &mut self,
        path: &str,
        iface: &str,
        name: &str,
        unit: &str,
    ) -> Result<Arg, DbusError> {
        let msg = Message::method_call(self.dest(), path, PROPERTIES, "Get")
            .with_args(&[s(iface), s(name)]);
        let context = format!("{iface}.{name}");
        let context = if unit.is_empty() {
            context
        } else {
            format!("{context} of {unit}")
        };
        let reply = self
            .conn
            .call_as(&msg, &context)
            .map_err(|e| for_unit(e, unit))?;
        match reply.args().map_err(|w| protocol(&context, w))?.pop() {
            Some(Arg::Variant(v)) if reply.signature == "v" => Ok(*v),
            _ => {
                let what = format!("reply signature {:?}, expected \"v\"", reply.signature);
                Err(protocol(&context, WireError(what)))
            }
        }
    }

    /// Ask for JobRemoved before the first job, so that it cannot be missed:
    /// on a bus a match rule plus `Subscribe`; a peer-to-peer connection
    /// gets systemd's signals anyway (`Subscribe` is harmless there).
    fn subscribe(&mut self, unit: &str) -> Result<(), DbusError> {
        if self.subscribed {
            return Ok(());
        }
        self.conn.set_signal_filter(is_job_removed);
        if self.conn.is_bus() {
            let rule = format!("type='signal',sender='{DEST}',path='{PATH}',interface='{MANAGER}',member='JobRemoved'");
            let m = Message::method_call(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "AddMatch",
            )
            .with_args(&[s(&rule)]);
            self.conn.call(&m).map_err(|e| for_unit(e, unit))?;
        }
        self.manager_call("Subscribe", &[], unit)?;
        self.subscribed = true;
        Ok(())
    }

    /// Wait for the JobRemoved of the job path in `reply`.
    fn wait_job(&mut self, reply: &Message, method: &str, unit: &str) -> Result<(), DbusError> {
        let full = format!("{MANAGER}.{method}");
        let job = reply_string(reply, &full)?;
        let deadline = Deadline::after(JOB_TIMEOUT);
        let what = format!("{full}: JobRemoved of {job} for unit {unit}");
        loop {
            let m = self.conn.wait_signal(deadline, &what)?;
            let args = m.args().map_err(|w| protocol(&what, w))?;
            let [Arg::U32(_), Arg::Path(j), Arg::Str(_), Arg::Str(result)] = args.as_slice() else {
                return Err(protocol(
                    &what,
                    WireError(format!("JobRemoved signature {:?}", m.signature)),
                ));
            };
            if *j != job {
                continue;
            }
            return match result.as_str() {
                "done" => Ok(()),
                _ => Err(DbusError::JobFailed {
                    unit: unit.into(),
                    method: full,
                    job,
                    result: result.clone(),
                }),
            };
        }
    }
}

/// systemd's two unit errors get their own variants; other error replies
/// name the unit.
fn for_unit(e: DbusError, unit: &str) -> DbusError {
    let DbusError::Remote {
        method,
        name,
        message,
        ..
    } = e
    else {
        return e;
    };
    let unit = unit.to_owned();
    match name.as_str() {
        NO_SUCH_UNIT => DbusError::NoSuchUnit {
            unit,
            method,
            message,
        },
        UNIT_EXISTS => DbusError::UnitExists {
            unit,
            method,
            message,
        },
        _ => DbusError::Remote {
            method,
            unit: Some(unit),
            name,
            message,
        },
    }
}

/// The leading number of systemd's version string: "252.39-1~deb12u2" and
/// "v245.4-1.fc32" -> 252, 245.
pub fn parse_version(s: &str) -> Option<u32> {
    let s = s.trim().strip_prefix('v').unwrap_or(s.trim());
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cpu/memory-node list {list:?}: {reason}")]
pub struct CpusetError {
    pub list: String,
    pub reason: String,
}

/// Highest CPU or memory node accepted in a list (the kernel's NR_CPUS is
/// at most 8192).
const MAX_CPU: u32 = 8191;

/// A cpuset list ("0-3,5") as systemd's `AllowedCPUs`/`AllowedMemoryNodes`
/// bitmask: byte i, bit j is CPU 8*i + j. "" is an empty mask.
pub fn cpuset_to_bitmask(list: &str) -> Result<Vec<u8>, CpusetError> {
    let err = |reason: String| CpusetError {
        list: list.into(),
        reason,
    };
    let num = |s: &str| -> Result<u32, CpusetError> {
        let n: u32 = s
            .trim()
            .parse()
            .map_err(|_| err(format!("{s:?} is not a number")))?;
        if n > MAX_CPU {
            return Err(err(format!("{n} is above {MAX_CPU}")));
        }
        Ok(n)
    };
    let mut mask = Vec::new();
    for part in list.split(',') {
        if part.trim().is_empty() {
            if list.trim().is_empty() {
                break;
            }
            return Err(err("empty element".into()));
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if lo > hi {
            return Err(err(format!("range {lo}-{hi} is reversed")));
        }
        for cpu in lo..=hi {
            let byte = (cpu / 8) as usize;
            if mask.len() <= byte {
                mask.resize(byte + 1, 0);
            }
            mask[byte] |= 1 << (cpu % 8);
        }
    }
    Ok(mask)
}
