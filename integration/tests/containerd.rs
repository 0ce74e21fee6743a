//! The runtime under containerd 1.6's Go runc shim (`io.containerd.runc.v2`
//! with `--runc-binary`), driven by `ctr`. The harness and the test bodies
//! are in `common_containerd/` (shared with `shim.rs`, our own shim).

#[path = "common_clients/mod.rs"]
mod common_clients;
#[path = "common_containerd/mod.rs"]
mod common_containerd;

use common_containerd::*;

#[test]
fn ctr_run_rm_returns_exit_code_and_output() {
    common_containerd::ctr_run_rm_returns_exit_code_and_output(Flavor::GoShim);
}

#[test]
fn ctr_run_tty_gives_a_pty() {
    common_containerd::ctr_run_tty_gives_a_pty(Flavor::GoShim);
}

#[test]
fn ctr_detached_exec_kill_delete() {
    common_containerd::ctr_detached_exec_kill_delete(Flavor::GoShim);
}

#[test]
fn ctr_kill_all_reaches_exec_processes() {
    common_containerd::ctr_kill_all_reaches_exec_processes(Flavor::GoShim);
}

#[test]
fn ctr_task_delete_force_of_an_exited_task() {
    common_containerd::ctr_task_delete_force_of_an_exited_task(Flavor::GoShim);
}

#[test]
fn ctr_task_metrics_count_exec_processes() {
    common_containerd::ctr_task_metrics_count_exec_processes(Flavor::GoShim);
}

#[test]
fn ctr_task_ps_lists_init_and_exec() {
    common_containerd::ctr_task_ps_lists_init_and_exec(Flavor::GoShim);
}

#[test]
fn ctr_task_pause_resume() {
    common_containerd::ctr_task_pause_resume(Flavor::GoShim);
}

#[test]
fn ctr_run_failure_reports_the_runtime_error() {
    common_containerd::ctr_run_failure_reports_the_error(Flavor::GoShim);
}
