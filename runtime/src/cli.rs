//! The command line, flag for flag as runc has it, and the dispatch to
//! libcontainer.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use libcontainer::container::{self, CgroupDriver, CreateOptions};

use crate::log::{Format, Logger};

#[derive(Parser)]
#[command(
    name = "oxrun",
    version,
    disable_version_flag = true,
    about = "An OCI container runtime (runc-compatible command line)"
)]
pub struct Cli {
    /// Print the version (runc's shape: name, commit, runtime-spec version).
    #[arg(short = 'v', long, action = clap::ArgAction::Version)]
    version: (),
    /// Root directory for container state (put it on tmpfs); rootless,
    /// $XDG_RUNTIME_DIR/oxrun by default.
    #[arg(long, default_value = "/run/oxrun")]
    pub root: PathBuf,
    /// Write log lines (and errors) to this file.
    #[arg(long)]
    pub log: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: Format,
    /// Debug logging.
    #[arg(long)]
    pub debug: bool,
    /// Use systemd to manage cgroups: a transient scope made over D-Bus,
    /// with cgroupsPath as `slice:prefix:name` (cgroup v2 hosts).
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (the default: rootless unless run
    /// as the host's root). Rootless uses only cgroups delegated to the user.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// The criu binary for checkpoint and restore.
    #[arg(long, default_value = "criu")]
    pub criu: String,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Args, Clone)]
pub struct CreateArgs {
    /// Path to the bundle (holds config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to send the pty master to (with process.terminal).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the container's init pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass fds 3 .. 3+N-1 into the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Create a container (init waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal to a container's init (default SIGTERM).
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container and its resources.
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container; wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
        /// Add a seccomp profile: `default` (seccomp-profiles/default.json), or a profile file.
        #[arg(long, value_name = "default|FILE")]
        seccomp: Option<String>,
    },
    /// Print what this runtime supports (runtime-spec features.md).
    Features,
    /// Run a process in a running container.
    Exec(Box<crate::exec::ExecArgs>),
    /// Checkpoint a running container with criu.
    Checkpoint(Box<crate::checkpoint::CheckpointArgs>),
    /// Restore a container from a checkpoint.
    Restore(Box<crate::checkpoint::RestoreArgs>),
    #[command(flatten)]
    Cgroup(crate::cgroup_cmds::CgroupCmd),
}

/// What `-v`/`--version` prints after the name, in runc's shape (tools
/// read the first line, `<name> version X`, and the `spec:` line); runc's
/// `go:` and `libseccomp:` lines have no counterpart here.
pub fn version_text() -> String {
    format!(
        "version {}\ncommit: {}\nspec: {}",
        env!("CARGO_PKG_VERSION"),
        env!("OXRUN_COMMIT"),
        libcontainer::state::OCI_VERSION
    )
}

/// Exit status of `exec` when exec itself fails (runc's).
const EXEC_FAILED: u8 = 255;

impl Cli {
    fn is_rootless_flag_valid(&self) -> Result<(), String> {
        match self.rootless.as_deref() {
            Some("true" | "false" | "auto") | None => Ok(()),
            Some(v) => Err(format!(
                "--rootless {v:?}: the value must be true, false or auto"
            )),
        }
    }

    /// `--rootless` resolved (runc's rule: auto is rootless unless the
    /// host's root).
    pub fn is_rootless(&self) -> bool {
        match self.rootless.as_deref() {
            None | Some("auto") => libcontainer::user::rootless_by_default(),
            Some(v) => v == "true",
        }
    }
}

/// The state root when `--root` is not given: /run/oxrun, or
/// $XDG_RUNTIME_DIR/oxrun for a user other than the host's root (runc's
/// rule: root in a user namespace, rootless podman's, counts as a user
/// unless $USER says root), since /run is the host root's.
pub fn default_root() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())?;
    let user = nix::unistd::geteuid().is_root()
        && libcontainer::user::in_user_namespace()
        && std::env::var_os("USER").is_none_or(|u| u != "root");
    (!nix::unistd::geteuid().is_root() || user).then(|| PathBuf::from(xdg).join("oxrun"))
}

fn create_options(cli: &Cli, a: &CreateArgs, log: &Logger, rootless: bool) -> CreateOptions {
    CreateOptions {
        rootless,
        cgroup_driver: if cli.systemd_cgroup {
            CgroupDriver::Systemd
        } else {
            CgroupDriver::Cgroupfs
        },
        debug: log.debug_enabled(),
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        ..CreateOptions::new(&a.id, &a.bundle, &cli.root)
    }
}

fn print_json(v: &impl serde::Serialize, pretty: bool) -> Result<(), String> {
    let s = if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    }
    .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}").map_err(|e| e.to_string())
}

/// Run the command; `Ok(code)` is the process exit code.
pub fn dispatch(cli: &Cli, log: &Logger) -> Result<u8, String> {
    // Checked on every command; resolved (a file read) only where used.
    cli.is_rootless_flag_valid()?;
    let rootless = || cli.is_rootless();
    let root = &cli.root;
    let e = |e: container::ContainerError| e.to_string();
    match &cli.cmd {
        Cmd::Create(a) => {
            let c = container::create(&create_options(cli, a, log, rootless())).map_err(e)?;
            c.debug.iter().for_each(|d| log.debug(d));
            c.warnings.iter().for_each(|w| log.warn(w));
            log.debug(&format!("created {} with init pid {}", a.id, c.pid));
        }
        Cmd::Start { id } => {
            let s = container::start(root, id).map_err(e)?;
            s.debug.iter().for_each(|d| log.debug(d));
            s.warnings.iter().for_each(|w| log.warn(w));
        }
        Cmd::State { id } => {
            let (st, status) = container::state(root, id).map_err(e)?;
            print_json(&st.oci(status), true)?;
        }
        Cmd::Kill { all, id, signal } => {
            let name = signal.as_deref().unwrap_or("TERM");
            let sig =
                crate::signals::parse(name).ok_or_else(|| format!("unknown signal {name:?}"))?;
            container::kill(root, id, sig, *all).map_err(e)?;
        }
        Cmd::Delete { force, id } => match container::delete(root, id, *force) {
            Ok(w) => {
                log.debug(&format!(
                    "deleted {id}: processes, cgroups and state removed, poststop hooks (if any) run"
                ));
                w.iter().for_each(|w| log.warn(w));
            }
            // runc: `delete --force` of a container that does not exist
            // succeeds and says nothing (clients clean up blindly).
            Err(err) if *force && err.is_not_found() => {}
            Err(err) => return Err(err.to_string()),
        },
        Cmd::Run {
            create,
            detach,
            keep,
        } => return crate::run::run(create_options(cli, create, log, rootless()), *detach, *keep, log),
        Cmd::Exec(a) => {
            // exec exits with the process's status; its own errors exit 255
            // (runc's EXEC_FAILED) so a client can tell them apart. Usage
            // errors found by the parser still exit 1, as in runc.
            return Ok(crate::exec::exec(root, a, log).unwrap_or_else(|msg| {
                log.error(&msg);
                EXEC_FAILED
            }));
        }
        Cmd::Cgroup(c) => return crate::cgroup_cmds::dispatch(c, root, log),
        Cmd::Checkpoint(_) | Cmd::Restore(_) if rootless() => {
            return Err("checkpoint and restore in rootless mode are not supported: criu needs root here".into());
        }
        Cmd::Checkpoint(a) => return crate::checkpoint::checkpoint(root, &cli.criu, a),
        Cmd::Restore(_) if cli.systemd_cgroup => {
            return Err(
                "--systemd-cgroup: restore makes the container's cgroup itself; the systemd driver is not supported for restore yet".into(),
            )
        }
        Cmd::Restore(a) => return crate::checkpoint::restore(root, &cli.criu, a, log),
        Cmd::List { format, quiet } => list(root, format, *quiet)?,
        Cmd::Spec {
            bundle,
            rootless,
            seccomp,
        } => crate::specgen::write_spec(bundle, *rootless, seccomp.as_deref())?,
        Cmd::Features => print_json(&libcontainer::features::features(), true)?,
    }
    Ok(0)
}

fn list(root: &std::path::Path, format: &str, quiet: bool) -> Result<(), String> {
    let all = container::list(root);
    if quiet {
        all.iter().for_each(|(s, _)| println!("{}", s.id));
        return Ok(());
    }
    match format {
        "json" => print_json(
            &all.iter().map(|(s, st)| s.oci(*st)).collect::<Vec<_>>(),
            false,
        ),
        "table" => {
            let rows: Vec<[String; 6]> = all
                .iter()
                .map(|(s, st)| {
                    let pid = if *st == libcontainer::state::Status::Stopped {
                        0
                    } else {
                        s.pid
                    };
                    let owner = if s.owner.is_empty() {
                        "root".to_string()
                    } else {
                        s.owner.clone()
                    };
                    [
                        s.id.clone(),
                        pid.to_string(),
                        st.to_string(),
                        s.bundle.display().to_string(),
                        s.created.clone(),
                        owner,
                    ]
                })
                .collect();
            let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut widths = head.clone().map(|h| h.len());
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.len());
                }
            }
            for r in std::iter::once(&head).chain(rows.iter()) {
                let line: Vec<String> = r
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                println!("{}", line.join("   ").trim_end());
            }
            Ok(())
        }
        other => Err(format!(
            "invalid format option {other:?}: use table or json"
        )),
    }
}
