//! The runtime under containerd 1.6's Go runc shim (`io.containerd.runc.v2`
//! with `--runc-binary`), driven by `ctr`. The harness and the test bodies
//! are in `common_containerd/` (shared with `shim.rs`, our own shim).

#[path = "common_clients/mod.rs"]
mod common_clients;
#[path = "common_containerd/mod.rs"]
#[macro_use]
mod common_containerd;

use common_containerd::*;

shared_tests!(Flavor::GoShim);
