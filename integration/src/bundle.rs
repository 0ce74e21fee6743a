//! OCI bundles: a busybox rootfs and a runc-like default `config.json`.

use crate::command::host;
use crate::files::TempDir;
use crate::names::next;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn busybox_applets() -> &'static Vec<String> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let out = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("/bin/busybox is required (apt-get install busybox-static)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && l != "busybox" && !l.contains('/'))
            .collect()
    })
}

/// The spec `runc spec` generates, with `terminal: false` and without the
/// `/sys/fs/cgroup` mount. Tests mutate it freely.
pub fn default_spec() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps.clone(),
                "effective": caps.clone(),
                "permitted": caps.clone(),
                "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "oxit",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// An OCI bundle in a temp dir: `rootfs/` holds a static busybox with applet
/// symlinks in /bin plus the usual empty dirs; `config` is written as
/// `config.json` by the runtime helpers right before `create`/`run`.
pub struct Bundle {
    dir: TempDir,
    pub config: Value,
    /// If set, written verbatim as config.json instead of `config`.
    pub raw_config: Option<String>,
}

impl Default for Bundle {
    fn default() -> Self {
        Self::new()
    }
}

impl Bundle {
    pub fn new() -> Bundle {
        let dir = TempDir::new("oxit-b");
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy /bin/busybox");
        for applet in busybox_applets() {
            let _ = symlink("busybox", rootfs.join("bin").join(applet));
        }
        fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
        Bundle {
            dir,
            config: default_spec(),
            raw_config: None,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Set `process.args`.
    pub fn set_args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Set `process.args` to `sh -c <script>`.
    pub fn set_script(&mut self, script: &str) -> &mut Self {
        self.set_args(&["sh", "-c", script])
    }

    /// Append a mount entry.
    pub fn add_mount(&mut self, m: Value) -> &mut Self {
        self.config["mounts"].as_array_mut().unwrap().push(m);
        self
    }

    /// Append a namespace entry.
    pub fn add_namespace(&mut self, ns: Value) -> &mut Self {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(ns);
        self
    }

    /// A new user namespace mapping container ids 0..65536 to host ids
    /// 100000.., with the rootfs chowned to match.
    pub fn use_userns(&mut self) -> &mut Self {
        host(
            "chown",
            &["-R", "100000:100000", self.rootfs().to_str().unwrap()],
        );
        self.add_namespace(json!({"type": "user"}));
        self.config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        self.config["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        self
    }

    /// Remove a namespace type from `linux.namespaces`.
    pub fn remove_namespace(&mut self, typ: &str) -> &mut Self {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != typ);
        self
    }

    /// The cgroupsPath the container will use: the configured one, or
    /// `/oxit/<id>` which [`Bundle::write_config`] fills in when unset.
    pub fn cgroups_path(&self, id: &str) -> String {
        match self.config["linux"]["cgroupsPath"].as_str() {
            Some(p) => p.to_string(),
            None => format!("/oxit/{id}"),
        }
    }

    /// Write config.json (atomically) for container `id`.
    pub fn write_config(&self, id: &str) {
        let text = match &self.raw_config {
            Some(raw) => raw.clone(),
            None => {
                let mut cfg = self.config.clone();
                if cfg["linux"].is_object() && cfg["linux"]["cgroupsPath"].is_null() {
                    cfg["linux"]["cgroupsPath"] = json!(format!("/oxit/{id}"));
                }
                serde_json::to_string_pretty(&cfg).unwrap()
            }
        };
        let tmp = self.dir.join(format!(".config.json.{}", next()));
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, self.dir.join("config.json")).unwrap();
    }
}
