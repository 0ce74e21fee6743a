//! oxrun's engine: everything needed to create, run and tear down an OCI
//! container on Linux. No CLI parsing and no printing here: callers get
//! typed errors and warnings and decide how to report them.

pub mod capabilities;
pub mod cgroups;
pub mod checkpoint;
pub mod container;
pub mod dbus;
pub mod features;
pub mod hooks;
pub mod intel_rdt;
mod mountinfo;
pub mod namespaces;
pub mod netdev;
pub mod process;
pub mod rlimits;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod sys;
pub mod tty;
pub mod user;
