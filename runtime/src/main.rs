//! `oxrun`: an OCI container runtime with runc's command line.

mod cgroup_cmds;
mod cli;
mod exec;
mod log;
mod run;
mod signals;
mod specgen;
mod wait;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Usage errors exit 1 as in runc (clap's default is 2); help/version 0.
    let cli = match cli::Cli::try_parse() {
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
