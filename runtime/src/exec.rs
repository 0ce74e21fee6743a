//! `oxrun exec`: build the process (from `--process` JSON, or from the
//! container's own process with the flags applied, as runc does), start it
//! in the container, and wait for it unless detached.

use std::path::{Path, PathBuf};

use clap::Args;
use libcontainer::container::{self, ExecRequest};
use oci_spec::runtime::{Capability, Process};

use crate::log::Logger;
use crate::wait;

#[derive(Args)]
pub struct ExecArgs {
    /// Path to a process.json (runtime-spec Process); other process flags are ignored.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=value), repeatable.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid]
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the bounding, effective and permitted sets.
    #[arg(short, long)]
    pub cap: Vec<String>,
    #[arg(long)]
    pub no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    #[arg(long)]
    pub process_label: Option<String>,
    #[arg(long)]
    pub apparmor: Option<String>,
    #[arg(long)]
    pub ignore_paused: bool,
    /// Run the process in an existing sub-cgroup of the container:
    /// `[<controller>[,<controller>]:]<path>`, repeatable (runc's format).
    #[arg(long, value_name = "[CONTROLLER:]PATH")]
    pub cgroup: Vec<String>,
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn set_env(env: &mut Vec<String>, kv: &str) -> Result<(), String> {
    let (k, _) = kv
        .split_once('=')
        .ok_or_else(|| format!("--env {kv:?}: want KEY=value"))?;
    env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k));
    env.push(kv.to_string());
    Ok(())
}

/// `--cap`: add to the bounding, effective and permitted sets. Names this
/// build does not know are returned (runc warns and goes on, as for unknown
/// names in config.json).
fn add_caps(p: &mut Process, names: &[String]) -> Vec<String> {
    let mut unknown = Vec::new();
    if names.is_empty() {
        return unknown;
    }
    let mut caps = p.capabilities().clone().unwrap_or_default();
    for n in names {
        let name = if n.to_ascii_uppercase().starts_with("CAP_") {
            n.to_ascii_uppercase()
        } else {
            format!("CAP_{}", n.to_ascii_uppercase())
        };
        let Ok(cap) = serde_json::from_value::<Capability>(serde_json::Value::String(name.clone()))
        else {
            unknown.push(name);
            continue;
        };
        for set in [
            caps.bounding().clone(),
            caps.effective().clone(),
            caps.permitted().clone(),
        ]
        .iter()
        .enumerate()
        {
            let mut s = set.1.clone().unwrap_or_default();
            s.insert(cap);
            match set.0 {
                0 => caps.set_bounding(Some(s)),
                1 => caps.set_effective(Some(s)),
                _ => caps.set_permitted(Some(s)),
            };
        }
    }
    p.set_capabilities(Some(caps));
    unknown
}

/// The process to run, as runc's `exec` builds it.
fn build_process(root: &Path, a: &ExecArgs, log: &Logger) -> Result<Process, String> {
    if let Some(path) = &a.process {
        let data = std::fs::read(path).map_err(|e| format!("--process {}: {e}", path.display()))?;
        let (p, warnings) =
            libcontainer::spec::parse_process(&data, path).map_err(|e| e.to_string())?;
        warnings.iter().for_each(|w| log.warn(w));
        return Ok(p);
    }
    if a.command.is_empty() {
        return Err("exec: a command is required (or --process)".into());
    }
    let (st, _) = container::state(root, &a.id).map_err(|e| e.to_string())?;
    let mut p = st
        .config
        .process()
        .clone()
        .ok_or("the container has no process to use as a template")?;
    p.set_args(Some(a.command.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        set_env(&mut env, kv)?;
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    p.set_terminal(Some(a.tty));
    let mut user = p.user().clone();
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        user.set_uid(
            uid.parse()
                .map_err(|_| format!("--user {u:?}: want numeric uid[:gid]"))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .map_err(|_| format!("--user {u:?}: want numeric uid[:gid]"))?,
            );
        }
    }
    if !a.additional_gids.is_empty() {
        user.set_additional_gids(Some(a.additional_gids.clone()));
    }
    p.set_user(user);
    let unknown = add_caps(&mut p, &a.cap);
    if !unknown.is_empty() {
        log.warn(&format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            unknown.join(" ")
        ));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(l) = &a.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    if let Some(ap) = &a.apparmor {
        p.set_apparmor_profile(Some(ap.clone()));
    }
    Ok(p)
}

pub fn exec(root: &Path, a: &ExecArgs, log: &Logger) -> Result<u8, String> {
    let process = build_process(root, a, log)?;
    let set = wait::forwarded();
    if !a.detach {
        wait::block(&set)?;
    }
    let req = ExecRequest {
        console_socket: a.console_socket.clone(),
        // Foreground with a terminal and no socket: the pty comes to us.
        pty_to_caller: !a.detach,
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        cgroup: a.cgroup.clone(),
        debug: log.debug_enabled(),
        ..ExecRequest::new(&a.id, root, process)
    };
    let execed = container::exec(&req).map_err(|e| e.to_string())?;
    let pid = execed.pid;
    execed.debug.iter().for_each(|d| log.debug(d));
    execed.warnings.iter().for_each(|w| log.warn(w));
    if a.detach {
        return Ok(0);
    }
    let master = execed.console.as_ref().map(wait::recv_master).transpose()?;
    let code = wait::wait(pid, &set, master)?;
    log.debug(&format!("exec'd pid {pid} exited with status {code}"));
    Ok(code)
}
