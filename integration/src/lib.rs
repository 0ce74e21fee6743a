//! Integration test harness for oxrun.
//!
//! The tests drive a runtime binary through runc's command line. The binary
//! under test is taken from `$OXRUN_BIN` and defaults to
//! `<workspace>/target/debug/oxrun`. Every test validates against real runc
//! too: `OXRUN_BIN=/usr/sbin/runc cargo test -p integration`.
//!
//! Building blocks:
//! * [`Bundle`]: a temp OCI bundle with a busybox rootfs and a runc-like
//!   default `config.json` held as a mutable `serde_json::Value`.
//! * [`Runtime`]: one private `--root` per test, unique container ids,
//!   command helpers with timeouts, and cleanup (`delete -f`) on drop.
//! * [`Runtime::assert_no_leftovers`]: no state dir, mount, cgroup or
//!   process left behind for a container.
//! * [`ConsoleSocket`]: a `--console-socket` listener receiving the pty
//!   master via SCM_RIGHTS.
//! * [`require!`] / [`skip_or_fail`]: a test whose host lacks a feature it
//!   needs (cgroup v1, the time namespace, a block device, ...) fails with
//!   the reason; it does not pass without having run.
//!
//! Skipping: set `OXRUN_TEST_ALLOW_SKIP=1` (exactly `1`) to let such tests
//! skip instead. A skipped test then prints `SKIPPED: <test>: <reason>` to
//! stderr (shown even without `--nocapture`) and libtest counts it as
//! passed, so only set it where a missing feature is expected.

mod bundle;
mod caps;
mod command;
mod console;
mod files;
mod names;
mod output;
mod procfs;
mod runtime;
mod skip;

pub use bundle::{default_spec, Bundle};
pub use caps::{cap_mask, parse_cap_hex, CAP_NAMES};
pub use command::{host, run_with_timeout, CmdOut, TIMEOUT};
pub use console::{read_until, write_all_fd, ConsoleSocket};
pub use files::{mountinfo, mounts_under, read_file, unmount_under, wait_for_path, TempDir};
pub use names::unique;
pub use output::{field, must_field, status_field};
pub use procfs::{all_pids, host_ns, pid_alive, proc_state};
pub use runtime::{cgroup_dirs_for, runtime_bin, Runtime};
pub use skip::skip_or_fail;
