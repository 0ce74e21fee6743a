//! `oxrun`: an OCI container runtime with runc's command line.

mod cgroup_cmds;
mod checkpoint;
mod cli;
mod exec;
mod log;
mod run;
mod signals;
mod specgen;
mod wait;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    // Usage errors exit 1 as in runc (clap's default is 2); help/version 0.
    // The version text is built at run time (the spec version is
    // libcontainer's); the command tree holds it until exit anyway.
    let version: &'static str = Box::leak(cli::version_text().into_boxed_str());
    let mut cmd = cli::Cli::command().version(version);
    let parsed = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut m| {
            let default_root =
                m.value_source("root") == Some(clap::parser::ValueSource::DefaultValue);
            cli::Cli::from_arg_matches_mut(&mut m).map(|mut c| {
                if let Some(r) = default_root.then(cli::default_root).flatten() {
                    c.root = r;
                }
                c
            })
        })
        .map_err(|e| e.format(&mut cmd));
    // The command tree lives until exit: freeing it would cost as much as
    // building it (a fifth of a short command's run time).
    std::mem::forget(cmd);
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::from(e.use_stderr()));
        }
    };
    let logger = match log::Logger::new(cli.log.as_deref(), cli.log_format, cli.debug) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("oxrun: open log {:?}: {e}", cli.log);
            return ExitCode::from(1);
        }
    };
    match cli::dispatch(&cli, &logger) {
        Ok(code) => ExitCode::from(code),
        Err(msg) => {
            logger.error(&msg);
            ExitCode::from(1)
        }
    }
}
