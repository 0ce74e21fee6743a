//! A small blocking D-Bus client (std + nix, no thread) and the systemd
//! Manager calls the systemd cgroup driver needs.
//!
//! [`wire`] marshals messages, [`Connection`] talks to a bus daemon or to
//! systemd's private socket, [`Systemd`] wraps the Manager methods and
//! waits for their jobs. Why our own client and not a crate: README,
//! "Dependencies" (zbus starts threads, which the shim forbids; libdbus
//! adds a C library for a handful of calls).

mod conn;
pub mod systemd;
pub mod wire;

#[cfg(test)]
mod bus_tests;
#[cfg(test)]
mod tests;

use std::time::Duration;

use nix::errno::Errno;

pub use conn::{Connection, Deadline, DEFAULT_TIMEOUT, SYSTEMD_PRIVATE, SYSTEM_BUS};
pub use systemd::{
    cpuset_to_bitmask, parse_version, CpusetError, Property, Systemd, Value, JOB_TIMEOUT,
};
pub use wire::{Arg, Message, WireError};

#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("D-Bus address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("connect to D-Bus at {address}: {source}")]
    Connect { address: String, source: Errno },
    /// Neither systemd's private socket nor the system bus answered.
    #[error("systemd is not reachable (is it PID 1?): {private}; {bus}")]
    NoSystemd {
        private: Box<DbusError>,
        bus: Box<DbusError>,
    },
    /// Neither the user's bus nor its systemd's private socket answered.
    #[error("the user's systemd is not reachable (is systemd --user running for this user?): {private}; {bus}")]
    NoUserSystemd {
        private: Box<DbusError>,
        bus: Box<DbusError>,
    },
    #[error("D-Bus authentication at {address}: {reason}")]
    Auth { address: String, reason: String },
    #[error("D-Bus {op} on {address} during {method}: {source}")]
    Io {
        op: &'static str,
        address: String,
        method: String,
        source: Errno,
    },
    #[error("D-Bus connection {address} closed by the peer during {method}")]
    Closed { address: String, method: String },
    #[error("D-Bus {method}: no answer within {timeout:?}")]
    Timeout { method: String, timeout: Duration },
    /// An error reply other than the two below (`method` names the unit
    /// too, when there is one).
    #[error("D-Bus {method}: {name}: {message}")]
    Remote {
        method: String,
        unit: Option<String>,
        name: String,
        message: String,
    },
    /// A malformed message (received, or one we could not encode).
    #[error("D-Bus protocol error in {context}: {what}")]
    Protocol { context: String, what: WireError },
    /// `org.freedesktop.systemd1.NoSuchUnit` (the unit is not loaded).
    #[error("systemd {method}: no such unit {unit}: {message}")]
    NoSuchUnit {
        unit: String,
        method: String,
        message: String,
    },
    /// `org.freedesktop.systemd1.UnitExists` from StartTransientUnit.
    #[error("systemd {method}: unit {unit} already exists: {message}")]
    UnitExists {
        unit: String,
        method: String,
        message: String,
    },
    /// The job systemd queued ended with a result other than "done".
    #[error("systemd {method} of unit {unit}: job {job} finished with result {result:?}")]
    JobFailed {
        unit: String,
        method: String,
        job: String,
        result: String,
    },
}
