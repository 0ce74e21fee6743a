//! runc-style logging: `--log FILE`, `--log-format text|json`. containerd's
//! runc client reads the JSON lines (`{"level","msg","time"}`) on failure.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub struct Logger {
    file: Option<File>,
    format: Format,
    debug: bool,
}

impl Logger {
    pub fn new(path: Option<&Path>, format: Format, debug: bool) -> std::io::Result<Logger> {
        let file = match path {
            Some(p) => Some(OpenOptions::new().create(true).append(true).open(p)?),
            None => None,
        };
        Ok(Logger {
            file,
            format,
            debug,
        })
    }

    fn line(&self, level: &str, msg: &str) -> String {
        let time = libcontainer::state::rfc3339_now();
        match self.format {
            Format::Json => {
                serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
            }
            Format::Text => format!("time={time:?} level={level} msg={msg:?}"),
        }
    }

    fn emit(&self, level: &str, msg: &str) {
        let line = self.line(level, msg);
        match &self.file {
            Some(f) => {
                let _ = writeln!(&*f, "{line}");
            }
            None => eprintln!("{line}"),
        }
    }

    /// Errors go to the log and, plainly, to stderr (as runc does).
    pub fn error(&self, msg: &str) {
        if self.file.is_some() {
            self.emit("error", msg);
        }
        eprintln!("oxrun: {msg}");
    }

    pub fn warn(&self, msg: &str) {
        self.emit("warning", msg);
    }

    /// `--debug` was given: worth preparing debug notes.
    pub fn debug_enabled(&self) -> bool {
        self.debug
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.emit("debug", msg);
        }
    }
}
