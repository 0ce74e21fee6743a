//! Running commands with a deadline: [`run_with_timeout`] and its result,
//! [`CmdOut`].

use crate::names::unique;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Default deadline for any single runtime invocation or wait.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Result of one command invocation.
#[derive(Debug, Clone)]
pub struct CmdOut {
    pub cmdline: String,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl CmdOut {
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.map(|s| s.success()).unwrap_or(false)
    }
    /// Exit code, or 128+signal if the process was killed by a signal,
    /// or -1 on timeout.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        if self.timed_out {
            return -1;
        }
        match self.status {
            Some(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
            None => -1,
        }
    }
    /// Everything the command printed, for matching error messages.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
    pub fn describe(&self) -> String {
        format!(
            "`{}` -> code {}{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.code(),
            if self.timed_out { " (TIMED OUT)" } else { "" },
            self.stdout,
            self.stderr
        )
    }
    /// Panic (with all details) unless the command succeeded.
    pub fn ok(self) -> CmdOut {
        assert!(self.success(), "command failed: {}", self.describe());
        self
    }
    /// Panic unless the command failed (non-zero, no timeout).
    pub fn fails(self) -> CmdOut {
        assert!(!self.timed_out, "command timed out: {}", self.describe());
        assert!(
            !self.success(),
            "command unexpectedly succeeded: {}",
            self.describe()
        );
        self
    }
    /// Panic unless stdout+stderr contains (case-insensitively) at least one
    /// of `any`.
    pub fn assert_mentions(&self, any: &[&str]) -> &CmdOut {
        let out = self.output().to_lowercase();
        assert!(
            any.iter().any(|w| out.contains(&w.to_lowercase())),
            "expected the error output to mention one of {any:?}: {}",
            self.describe()
        );
        self
    }
}

fn describe_cmd(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().to_string();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run `cmd` with stdin from /dev/null and stdout/stderr going to files
/// (never pipes: a detached container inheriting a pipe would keep it open
/// forever). If `stdout_path` is given, stdout goes there and the file is
/// kept; otherwise temporary files are used. The process is SIGKILLed if it
/// has not exited after `timeout`.
pub fn run_with_timeout(
    cmd: &mut Command,
    timeout: Duration,
    stdout_path: Option<&Path>,
) -> CmdOut {
    let tmp_out = PathBuf::from("/tmp").join(unique("oxit-io") + ".out");
    let tmp_err = PathBuf::from("/tmp").join(unique("oxit-io") + ".err");
    let out_path = stdout_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| tmp_out.clone());
    let out_f = fs::File::create(&out_path)
        .unwrap_or_else(|e| panic!("create {}: {e}", out_path.display()));
    let err_f = fs::File::create(&tmp_err).unwrap();
    cmd.stdin(Stdio::null()).stdout(out_f).stderr(err_f);
    let cmdline = describe_cmd(cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot spawn `{cmdline}`: {e} (is OXRUN_BIN set correctly?)"),
    };
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&tmp_err).unwrap_or_default();
    let _ = fs::remove_file(&tmp_out);
    let _ = fs::remove_file(&tmp_err);
    CmdOut {
        cmdline,
        status,
        stdout,
        stderr,
        timed_out,
    }
}

/// Run a host command (e.g. `mount`) and require success.
pub fn host(cmd: &str, args: &[&str]) -> CmdOut {
    run_with_timeout(Command::new(cmd).args(args), TIMEOUT, None).ok()
}
