//! containerd-shim-rust-v2: the containerd shim v2 for oxrun.
//!
//! `start` forks the daemon that serves the task API on a unix socket;
//! `delete` cleans up after a dead shim; `-info` describes the runtime.
//! The daemon is single-threaded and creates and execs containers through
//! libcontainer in-process.

mod args;
mod checkpoint;
mod events;
mod helper;
mod info;
mod metrics;
mod mounts;
mod options;
mod server;
mod service;
mod sha256;
mod start;
mod stdio;
mod task;
mod wire;

use std::io::Write;

/// In the bundle: libcontainer's state root for this container, so that
/// `delete` after a shim crash finds its state.
pub const ROOT_FILE: &str = "oxrun-root";

fn main() {
    let a = match args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("containerd-shim-rust-v2: {e}");
            std::process::exit(2);
        }
    };
    if a.version {
        println!("containerd-shim-rust-v2 {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    if a.info {
        let mut options = Vec::new();
        let out = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut options)
            .map_err(|e| format!("read stdin: {e}"))
            .and_then(|_| info::runtime_info(&options))
            .and_then(|b| {
                std::io::stdout()
                    .lock()
                    .write_all(&b)
                    .map_err(|e| format!("write stdout: {e}"))
            });
        if let Err(e) = out {
            eprintln!("containerd-shim-rust-v2 -info: {e}");
            std::process::exit(1);
        }
        return;
    }
    match a.action.as_str() {
        "start" => match start::start(&a) {
            Ok(None) => {}
            Ok(Some(listener)) => serve(listener, &a),
            Err(e) => {
                eprintln!("containerd-shim-rust-v2 start: {e}");
                std::process::exit(1);
            }
        },
        "delete" => {
            let out = start::delete(&a);
            let _ = std::io::stdout().lock().write_all(&out);
        }
        other => {
            eprintln!("containerd-shim-rust-v2: unknown action {other:?} (want start or delete)");
            std::process::exit(2);
        }
    }
}

fn serve(listener: std::os::unix::net::UnixListener, a: &args::Args) {
    let socket = listener
        .local_addr()
        .ok()
        .and_then(|s| s.as_pathname().map(|p| p.to_path_buf()));
    let ttrpc = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
    let shim = service::Shim::new(a.namespace.clone(), ttrpc);
    match server::Server::new(listener, shim) {
        Ok(mut s) => s.run(),
        Err(_) => std::process::exit(1),
    }
    if let Some(p) = socket {
        let _ = std::fs::remove_file(p);
    }
    std::process::exit(0);
}
