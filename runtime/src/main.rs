//! `oxrun`: an OCI container runtime with runc's command line.

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
    let cli = cli::Cli::parse();
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
