//! The runtime under containerd 1.6's Go runc shim (`io.containerd.runc.v2`
//! with `--runc-binary`), driven by `ctr`. The harness and the test bodies
//! are in `common_containerd/` (shared with `shim.rs`, our own shim).

#[path = "common_clients/mod.rs"]
mod common_clients;
#[path = "common_containerd/mod.rs"]
#[macro_use]
mod common_containerd;

use common_containerd::*;

shared_tests!(Flavor::GoShim;
    ctr_run_rm_returns_exit_code_and_output,
    ctr_run_tty_gives_a_pty,
    ctr_detached_exec_kill_delete,
    ctr_kill_all_reaches_exec_processes,
    ctr_task_delete_force_of_an_exited_task,
    ctr_task_metrics_count_exec_processes,
    ctr_task_ps_lists_init_and_exec,
    ctr_task_pause_resume,
    ctr_run_failure_reports_the_error,
);
