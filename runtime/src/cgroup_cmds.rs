//! The cgroup commands, flag for flag as runc has them: `pause`, `resume`,
//! `update`, `events` and `ps`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use libcontainer::container;
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

use crate::log::Logger;

#[derive(Subcommand)]
pub enum CgroupCmd {
    /// Suspend all processes in the container (cgroup freezer).
    Pause { id: String },
    /// Resume the processes of a paused container.
    Resume { id: String },
    /// Update the container's resource limits.
    Update(Box<UpdateArgs>),
    /// Print resource usage every interval and OOM events, until the
    /// container stops (or the stats once, with --stats).
    Events {
        /// Print the container's stats once and exit.
        #[arg(long)]
        stats: bool,
        /// Stats collection interval (Go duration: 5s, 500ms, 1m).
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// List the processes in the container: `ps` output filtered to them
    /// (table) or an array of host pids (json).
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Options for ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
}

#[derive(Args)]
pub struct UpdateArgs {
    /// JSON file with the resources to update ('-' for stdin); the other
    /// flags are then ignored.
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Block IO weight (10-1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period (microseconds).
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota (microseconds per period; -1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS burst (microseconds).
    #[arg(long)]
    pub cpu_burst: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long, alias = "cpu-share")]
    pub cpu_shares: Option<u64>,
    /// Realtime period (microseconds).
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime (microseconds per period).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to use (e.g. 0-3,5).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// SCHED_IDLE for the cgroup (0 or 1).
    #[arg(long)]
    pub cpu_idle: Option<i64>,
    /// Memory limit (bytes, or with a unit: 100M, 1g; -1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Obsolete; ignored with a warning.
    #[arg(long, hide = true, allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Obsolete; ignored with a warning.
    #[arg(long, hide = true, allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Maximum number of pids (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    pub id: String,
}

/// docker/go-units `RAMInBytes`: `100`, `100k`, `1.5M`, `2GiB`, `512mb`
/// (binary multiples); `-1` is unlimited.
pub fn parse_size(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let value: f64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: use a number with an optional unit (k, m, g, t, p)")
    })?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mul: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(format!("invalid size {s:?}: unknown unit")),
    };
    let bytes = value * mul;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(format!("invalid size {s:?}: too large"));
    }
    Ok(bytes as i64)
}

/// Go's `time.ParseDuration` (ns, us/µs, ms, s, m, h; fractions; sums).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: use e.g. 5s, 500ms, 1m30s");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * secs;
        rest = &rest[u..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// The resources `update` asked for, as a LinuxResources with only those
/// fields set (runc's flags; `-r` replaces them all).
fn update_resources(a: &UpdateArgs, log: &Logger) -> Result<LinuxResources, String> {
    if let Some(path) = &a.resources {
        let data = if path == Path::new("-") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| format!("read resources from stdin: {e}"))?;
            s
        } else {
            std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?
        };
        return serde_json::from_str(&data)
            .map_err(|e| format!("{}: invalid resources JSON: {e}", path.display()));
    }
    let mut memory = Map::new();
    for (key, v) in [
        ("limit", &a.memory),
        ("reservation", &a.memory_reservation),
        ("swap", &a.memory_swap),
    ] {
        if let Some(v) = v {
            let flag = match key {
                "limit" => "--memory",
                "reservation" => "--memory-reservation",
                _ => "--memory-swap",
            };
            let n = parse_size(v).map_err(|e| format!("{flag}: {e}"))?;
            memory.insert(key.into(), json!(n));
        }
    }
    if a.kernel_memory.is_some() || a.kernel_memory_tcp.is_some() {
        log.warn("kernel memory settings are ignored and will be removed");
    }
    let mut cpu = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            cpu.insert(k.into(), v);
        }
    };
    put("shares", a.cpu_shares.map(|v| json!(v)));
    put("quota", a.cpu_quota.map(|v| json!(v)));
    put("period", a.cpu_period.map(|v| json!(v)));
    put("burst", a.cpu_burst.map(|v| json!(v)));
    put("realtimeRuntime", a.cpu_rt_runtime.map(|v| json!(v)));
    put("realtimePeriod", a.cpu_rt_period.map(|v| json!(v)));
    put("cpus", a.cpuset_cpus.clone().map(Value::from));
    put("mems", a.cpuset_mems.clone().map(Value::from));
    put("idle", a.cpu_idle.map(|v| json!(v)));
    let mut r = Map::new();
    if !memory.is_empty() {
        r.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = a.pids_limit {
        r.insert("pids".into(), json!({ "limit": p }));
    }
    if let Some(w) = a.blkio_weight {
        r.insert("blockIO".into(), json!({ "weight": w }));
    }
    serde_json::from_value(Value::Object(r)).map_err(|e| format!("update: {e}"))
}

fn println_json(v: &impl serde::Serialize) -> std::io::Result<()> {
    let s = serde_json::to_string(v).map_err(std::io::Error::other)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}")?;
    out.flush()
}

/// `ps` output limited to the header and the rows whose PID is one of
/// `pids` (runc's filter).
pub fn filter_ps(output: &str, pids: &[i32]) -> Result<String, String> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or("couldn't find PID field in ps output")?;
    let mut out = format!("{header}\n");
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let pid: i32 = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("unable to parse pid in ps line {line:?}"))?;
        if pids.contains(&pid) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Run a cgroup command; `Ok(code)` is the exit code.
pub fn dispatch(cmd: &CgroupCmd, root: &Path, log: &Logger) -> Result<u8, String> {
    let e = |e: container::ContainerError| e.to_string();
    match cmd {
        CgroupCmd::Pause { id } => container::pause(root, id).map_err(e)?,
        CgroupCmd::Resume { id } => container::resume(root, id).map_err(e)?,
        CgroupCmd::Update(a) => {
            let r = update_resources(a, log)?;
            for w in container::update(root, &a.id, &r).map_err(e)? {
                log.warn(&w);
            }
        }
        CgroupCmd::Events {
            stats,
            interval,
            id,
        } => {
            let interval = parse_duration(interval).map_err(|m| format!("--interval: {m}"))?;
            if interval.is_zero() {
                return Err("--interval: duration interval must be greater than 0".into());
            }
            if *stats {
                let ev = container::stats(root, id).map_err(e)?;
                println_json(&ev).map_err(|e| format!("write stats: {e}"))?;
            } else {
                container::events(root, id, interval, &mut |ev| println_json(ev)).map_err(e)?;
            }
        }
        CgroupCmd::Ps {
            format,
            id,
            ps_args,
        } => {
            if format != "table" && format != "json" {
                return Err(format!(
                    "invalid format option {format:?}: use table or json"
                ));
            }
            let pids = container::ps(root, id).map_err(e)?;
            if format == "json" {
                println_json(&pids).map_err(|e| format!("write: {e}"))?;
                return Ok(0);
            }
            let args: Vec<&str> = if ps_args.is_empty() {
                vec!["-ef"]
            } else {
                ps_args.iter().map(String::as_str).collect()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .map_err(|e| format!("run ps: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "ps {}: {}{}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let table = filter_ps(&String::from_utf8_lossy(&out.stdout), &pids)?;
            print!("{table}");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("512mb"), Ok(512 << 20));
        assert_eq!(parse_size("-1"), Ok(-1));
        assert!(parse_size("12x").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn ps_filter() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:00 ? 00:00:00 sh\n";
        let t = filter_ps(out, &[42]).expect("filter");
        assert_eq!(
            t,
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:00 ? 00:00:00 sh\n"
        );
        assert!(filter_ps("A B\n", &[1]).is_err());
    }
}
