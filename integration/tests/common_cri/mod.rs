//! A private containerd with its CRI plugin, driven over gRPC with the
//! `k8s-cri` client, for the Kubernetes-level suite (`cri.rs`).
//!
//! Every test starts its own containerd (1.6.x from Debian bookworm in
//! /usr/bin; 1.7.24 and 2.1.9 unpacked under /opt/oxrun-test by
//! scripts/containerd-matrix.sh) in a private mount + network + IPC
//! namespace: tmpfs on /run and /var/lib/cni, `/` made rshared inside (so
//! propagation tests see shared mounts), `lo` up, and a CNI bridge +
//! host-local conflist (Debian's containernetworking-plugins in
//! /usr/lib/cni). So CNI bridges, veths, netns bind mounts, IPC objects and
//! containerd's /run files never reach the host. Root, state, sockets, CNI
//! config and pod logs are in a temp dir. Images come from
//! scripts/mkimages.sh (no registry): `ctr -n k8s.io images import`.
//!
//! Two handlers: `oxrun` (our `containerd-shim-rust-v2`: on 1.x runtime_type
//! `io.containerd.rust.v2`, found on containerd's PATH; on 2.x a runc-type
//! runtime with our shim as `runtime_path`, so CRI probes its features
//! with `-info`) and `runc` (the Go
//! shim `io.containerd.runc.v2` of the same containerd release with
//! Debian's runc), the reference.
//!
//! After each test every pod is stopped and removed, and nothing may be
//! left: no container or sandbox listed, no shim, no veth in containerd's
//! network namespace, no mount below the temp dir or /run in containerd's
//! mount namespace; then containerd stops and no process, cgroup or host
//! mount of the test may remain.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common_clients::*;
use hyper_util::rt::TokioIo;
use integration::*;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub mod ws;

/// `#[test]` wrappers: one module per (containerd version, handler), each
/// running every test body of `cri.rs` (`$body(&Cri)`-style functions
/// taking the version and handler).
macro_rules! cri_matrix {
    ($($name:ident),* $(,)?) => {
        cri_matrix!(@one cri_v1_6_oxrun, Ctd::V1_6, Handler::Oxrun; $($name),*);
        cri_matrix!(@one cri_v1_6_runc, Ctd::V1_6, Handler::Runc; $($name),*);
        cri_matrix!(@one cri_v1_7_oxrun, Ctd::V1_7, Handler::Oxrun; $($name),*);
        cri_matrix!(@one cri_v1_7_runc, Ctd::V1_7, Handler::Runc; $($name),*);
        cri_matrix!(@one cri_v2_1_oxrun, Ctd::V2_1, Handler::Oxrun; $($name),*);
        cri_matrix!(@one cri_v2_1_runc, Ctd::V2_1, Handler::Runc; $($name),*);
    };
    (@one $module:ident, $ctd:expr, $handler:expr; $($name:ident),*) => {
        mod $module {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let mut c = Cri::start($ctd, $handler);
                    super::$name(&c);
                    c.assert_clean();
                }
            )*
        }
    };
}

/// The containerd release under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctd {
    /// Debian bookworm's 1.6.x (`containerd` package, /usr/bin).
    V1_6,
    /// 1.7.24 from trixie (/opt/oxrun-test/containerd-1.7.24).
    V1_7,
    /// 2.1.9 from sid (/opt/oxrun-test/containerd-2.1.9).
    V2_1,
}

impl Ctd {
    /// Directory holding containerd, ctr and containerd-shim-runc-v2.
    pub fn bin_dir(self) -> PathBuf {
        let opt = std::env::var_os("OXRUN_TEST_OPT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/oxrun-test"));
        match self {
            Ctd::V1_6 => PathBuf::from("/usr/bin"),
            Ctd::V1_7 => opt.join("containerd-1.7.24/usr/bin"),
            Ctd::V2_1 => opt.join("containerd-2.1.9/usr/bin"),
        }
    }

    /// The version `containerd --version` must report.
    pub fn version_prefix(self) -> &'static str {
        match self {
            Ctd::V1_6 => "1.6.",
            Ctd::V1_7 => "1.7.24",
            Ctd::V2_1 => "2.1.9",
        }
    }

    pub fn is_v2(self) -> bool {
        self == Ctd::V2_1
    }
}

/// The CRI runtime handler under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// `containerd-shim-rust-v2` (io.containerd.rust.v2).
    Oxrun,
    /// containerd's Go shim (io.containerd.runc.v2) with runc: the reference.
    Runc,
    /// containerd's Go shim with crun (`BinaryName`); containerd then runs
    /// without /sys/fs/cgroup/unified in its mount namespace, which crun
    /// 1.8 refuses on a hybrid host (scripts/bench-cri.sh).
    Crun,
}

impl Handler {
    pub fn name(self) -> &'static str {
        match self {
            Handler::Oxrun => "oxrun",
            Handler::Runc => "runc",
            Handler::Crun => "crun",
        }
    }

    /// The shim binary's name (in its command line).
    pub fn shim_name(self) -> &'static str {
        match self {
            Handler::Oxrun => "containerd-shim-rust-v2",
            Handler::Runc | Handler::Crun => "containerd-shim-runc-v2",
        }
    }
}

/// Our shim binary: `$OXRUN_SHIM_BIN`, else next to the runtime under test.
pub fn shim_bin() -> PathBuf {
    let p = std::env::var_os("OXRUN_SHIM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| runtime_abs().with_file_name("containerd-shim-rust-v2"));
    assert!(
        p.is_file(),
        "shim binary {} does not exist; build it (cargo build --release) or set OXRUN_SHIM_BIN",
        p.display()
    );
    fs::canonicalize(&p).unwrap_or(p)
}

/// Where scripts/mkimages.sh puts the image tarballs.
pub fn images_dir() -> PathBuf {
    std::env::var_os("OXRUN_CRI_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/oxrun-test/images"))
}

pub const BUSYBOX: &str = "docker.io/oxrun/busybox:latest";
pub const PAUSE: &str = "docker.io/oxrun/pause:latest";
/// The pods' subnet on the CNI bridge.
pub const POD_SUBNET_PREFIX: &str = "10.88.";

/// Deadline for one CRI call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for containerd to come up or go down, and for a state change.
pub const WAIT: Duration = Duration::from_secs(30);

/// Build the images once per test binary (scripts/mkimages.sh is
/// idempotent, but concurrent runs would race on the same files).
fn ensure_images() {
    static ONCE: Mutex<bool> = Mutex::new(false);
    let mut done = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/mkimages.sh");
    // Without the source tree (a guest VM that only sees the built client
    // and the images, scripts/systemd-vm), the images must already exist.
    let ready = ["pause.tar", "busybox.tar"]
        .iter()
        .all(|t| images_dir().join(t).is_file());
    if !script.exists() && ready {
        *done = true;
        return;
    }
    let out = run_with_timeout(
        Command::new("bash").arg(&script).arg(images_dir()),
        Duration::from_secs(120),
        None,
    );
    assert!(out.success(), "scripts/mkimages.sh: {}", out.describe());
    *done = true;
}

/// A private containerd with CRI (see the module doc); torn down on drop.
pub struct Cri {
    pub ctd: Ctd,
    pub handler: Handler,
    pub dir: TempDir,
    pub child: Option<Child>,
    /// containerd's pid (also the holder of its namespaces).
    pub pid: i32,
    pub sock: PathBuf,
    /// Relative cgroup under which every pod of this test lives (cgroupfs
    /// driver); with systemd's, the prefix of this test's pod uids.
    pub cgroup_root: String,
    /// systemd's cgroup driver (`SystemdCgroup = true`, kubelet-style
    /// slices as pod parents): see [`Cri::start_systemd`].
    pub systemd: bool,
    /// containerd's mount namespace (`mnt:[inode]`): its shims live there.
    pub mnt_ns: String,
    /// An fd of that namespace, held for as long as this test runs: a
    /// freed namespace's inode number is reused for new ones, and without
    /// the pin the clean-up (which kills whatever is in `mnt_ns`) would
    /// kill other tests' processes that happen to get that number. Closed
    /// last (fields drop after `Drop::drop`).
    _mnt_ns_pin: fs::File,
    rt: tokio::runtime::Runtime,
    rs: RuntimeServiceClient<Channel>,
    is: ImageServiceClient<Channel>,
}

impl Cri {
    pub fn start(ctd: Ctd, handler: Handler) -> Cri {
        Self::start_with(ctd, handler, false)
    }

    /// With systemd's cgroup driver, on a host whose PID 1 is systemd (the
    /// systemd test guest, scripts/systemd-vm): the runtimes get
    /// `SystemdCgroup = true` (on containerd 1.x only the runc-type ones:
    /// CRI drops the option names of other runtime types), pods get
    /// kubelet's systemd-style parent
    /// `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice`,
    /// so containers land in `cri-containerd-<id>.scope` units; containerd's
    /// private /run keeps systemd's and the system bus's sockets. The pod
    /// slices stay after their pods (kubelet owns them) until the end; no
    /// scope may remain.
    pub fn start_systemd(ctd: Ctd, handler: Handler) -> Cri {
        Self::start_with(ctd, handler, true)
    }

    fn start_with(ctd: Ctd, handler: Handler, systemd: bool) -> Cri {
        for (p, pkg) in [
            ("containerd", "containerd"),
            ("nsenter", "util-linux"),
            ("unshare", "util-linux"),
            ("ip", "iproute2"),
        ] {
            require_program(p, pkg);
        }
        let bin_dir = ctd.bin_dir();
        assert!(
            bin_dir.join("containerd").is_file(),
            "{} missing: run scripts/containerd-matrix.sh",
            bin_dir.join("containerd").display()
        );
        assert!(
            Path::new("/usr/lib/cni/bridge").is_file()
                && Path::new("/usr/lib/cni/host-local").is_file(),
            "CNI plugins missing in /usr/lib/cni: run scripts/setup.sh (containernetworking-plugins)"
        );
        ensure_images();
        let shim_dir = shim_bin()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let dir = TempDir::new("oxit-cri");
        let d = dir.path().display().to_string();
        let sock = dir.join("c.sock");
        let cgroup_root = format!("oxit-{}", unique("cri").replace("cri-", ""));
        fs::create_dir_all(dir.join("cni")).expect("mkdir cni");
        fs::create_dir_all(dir.join("logs")).expect("mkdir logs");
        fs::write(dir.join("cni/10-oxit.conflist"), CNI_CONFLIST).expect("write conflist");
        let config = if ctd.is_v2() {
            config_v3(&d, systemd)
        } else {
            config_v2(&d, systemd)
        };
        let config_path = dir.join("config.toml");
        fs::write(&config_path, config).expect("write config.toml");
        // containerd's CNI cache and host-local's leases go to /var/lib/cni:
        // a tmpfs there inside the private namespace (the empty mount point
        // is created once on the host).
        fs::create_dir_all("/var/lib/cni").expect("mkdir /var/lib/cni");
        let log = fs::File::create(dir.join("containerd.log")).expect("create log");
        // crun 1.8 refuses a hybrid cgroup host: hide the v2 hierarchy
        // from containerd's (private) mount namespace.
        let unified = if handler == Handler::Crun {
            "if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi; "
        } else {
            ""
        };
        // systemd's driver: systemd's private socket (/run/systemd) and the
        // system bus (/run/dbus) stay reachable under the private /run.
        let (save_run, keep_run) = if systemd {
            let h = sh_quote(&dir.join("hostrun").display().to_string());
            (
                format!("mkdir -p {h}; mount --bind /run {h}; mount --make-private {h}; "),
                format!(
                    "for r in systemd dbus; do mkdir -p /run/$r; \
                     mount --bind {h}/$r /run/$r; done; umount {h}; "
                ),
            )
        } else {
            (String::new(), String::new())
        };
        let script = format!(
            "set -e; mount --make-rshared /; {unified}{save_run}\
             mount -t tmpfs -o mode=0755 tmpfs /run; {keep_run}\
             mount -t tmpfs -o mode=0755 tmpfs /var/lib/cni; \
             ip link set lo up; exec {} --config {}",
            sh_quote(&bin_dir.join("containerd").display().to_string()),
            sh_quote(&config_path.display().to_string())
        );
        let path = std::env::var("PATH").unwrap_or_default();
        // The release's own ctr and Go shim first; our shim next.
        let path = format!("{}:{}:{path}", bin_dir.display(), shim_dir.display());
        let child = Command::new("unshare")
            .args(["-m", "-n", "-i", "--propagation", "private", "sh", "-c"])
            .arg(&script)
            .env("PATH", &path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn unshare/containerd");
        let pid = child.id() as i32;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let channel = Self::wait_serving(&rt, &sock, &dir, pid);
        let mnt_ns_pin = fs::File::open(format!("/proc/{pid}/ns/mnt"))
            .unwrap_or_else(|e| panic!("pin containerd's mount namespace: {e}"));
        let mnt_ns = ns_link(pid, "mnt");
        assert!(
            !mnt_ns.is_empty() && mnt_ns != ns_link(std::process::id() as i32, "mnt"),
            "containerd {pid} is not in a private mount namespace"
        );
        let mut c = Cri {
            ctd,
            handler,
            dir,
            child: Some(child),
            pid,
            sock,
            cgroup_root,
            systemd,
            mnt_ns,
            _mnt_ns_pin: mnt_ns_pin,
            rs: RuntimeServiceClient::new(channel.clone()),
            is: ImageServiceClient::new(channel),
            rt,
        };
        c.wait_ready();
        c.import_images();
        c
    }

    fn wait_serving(rt: &tokio::runtime::Runtime, sock: &Path, dir: &TempDir, pid: i32) -> Channel {
        let deadline = Instant::now() + WAIT;
        loop {
            if sock.exists() {
                let s = sock.to_path_buf();
                let ch = rt.block_on(async move {
                    let ep = Endpoint::try_from("http://[::]:0").ok()?;
                    tokio::time::timeout(
                        Duration::from_secs(5),
                        ep.connect_with_connector(tower::service_fn(move |_: Uri| {
                            let s = s.clone();
                            async move {
                                Ok::<_, std::io::Error>(TokioIo::new(
                                    tokio::net::UnixStream::connect(s).await?,
                                ))
                            }
                        })),
                    )
                    .await
                    .ok()?
                    .ok()
                });
                if let Some(ch) = ch {
                    return ch;
                }
            }
            if !pid_alive(pid) || Instant::now() > deadline {
                panic!(
                    "containerd did not serve {} within {WAIT:?}; log:\n{}",
                    sock.display(),
                    tail(&dir.join("containerd.log"), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Until the CRI Status call says RuntimeReady and NetworkReady.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        let mut last;
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                panic!(
                    "containerd exited ({st}) before serving; log:\n{}",
                    tail(&self.log_path(), 40)
                );
            }
            let mut rs = self.rs.clone();
            match self.call(async move { rs.status(cri::StatusRequest { verbose: false }).await }) {
                Ok(st) => {
                    let conds = st.status.map(|s| s.conditions).unwrap_or_default();
                    let ready = |t: &str| conds.iter().any(|c| c.r#type == t && c.status);
                    if ready("RuntimeReady") && ready("NetworkReady") {
                        return;
                    }
                    last = format!("{conds:?}");
                }
                Err(e) => last = e.to_string(),
            }
            assert!(
                Instant::now() < deadline,
                "CRI not ready within {WAIT:?}: {last}; log:\n{}",
                tail(&self.log_path(), 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ctr -n k8s.io images import` of the busybox and pause images, run
    /// in containerd's mount namespace with the release's own ctr.
    fn import_images(&self) {
        for img in ["pause.tar", "busybox.tar"] {
            let tar = images_dir().join(img);
            let out = self.ctr(&[
                "-n",
                "k8s.io",
                "images",
                "import",
                &tar.display().to_string(),
            ]);
            assert!(out.success(), "ctr images import {img}: {}", out.describe());
        }
        for img in [PAUSE, BUSYBOX] {
            let got = poll(WAIT, || {
                let mut is = self.is.clone();
                let req = cri::ImageStatusRequest {
                    image: Some(image_spec(img)),
                    verbose: false,
                };
                self.call(async move { is.image_status(req).await })
                    .ok()
                    .and_then(|r| r.image)
            });
            assert!(got.is_some(), "CRI does not list {img} after import");
        }
    }

    /// `nsenter -t <containerd> -m <release's ctr> --address S <args>`.
    pub fn ctr(&self, args: &[&str]) -> CmdOut {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid.to_string(), "-m"])
            .arg(self.ctd.bin_dir().join("ctr"))
            .arg("--address")
            .arg(&self.sock)
            .args(args);
        run_with_timeout(&mut c, Duration::from_secs(60), None)
    }

    /// A command in containerd's mount namespace.
    pub fn in_mntns(&self, args: &[&str]) -> CmdOut {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid.to_string(), "-m"]).args(args);
        run_with_timeout(&mut c, Duration::from_secs(20), None)
    }

    /// A command in containerd's network namespace.
    pub fn in_netns(&self, args: &[&str]) -> CmdOut {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid.to_string(), "-n"]).args(args);
        run_with_timeout(&mut c, Duration::from_secs(20), None)
    }

    /// containerd's log lines containing `needle` (the last 20).
    pub fn log_grep(&self, needle: &str) -> String {
        let s = read_file(&self.log_path());
        let v: Vec<&str> = s.lines().filter(|l| l.contains(needle)).collect();
        v[v.len().saturating_sub(20)..].join("\n")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// Run one gRPC call to completion, with a deadline.
    pub fn call<T, F>(&self, fut: F) -> Result<T, tonic::Status>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rt.block_on(async {
            match tokio::time::timeout(CALL_TIMEOUT, fut).await {
                Ok(r) => r.map(tonic::Response::into_inner),
                Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                    "no answer within {CALL_TIMEOUT:?}"
                ))),
            }
        })
    }

    /// The runtime service client (cheap clone).
    pub fn rs(&self) -> RuntimeServiceClient<Channel> {
        self.rs.clone()
    }

    /// A pod config with a unique uid, its log directory in the temp dir
    /// and its cgroup parent below this test's cgroup root.
    pub fn pod_config(&self, name: &str) -> cri::PodSandboxConfig {
        let uid = if self.systemd {
            format!("{}-{}", self.cgroup_root, unique("uid"))
        } else {
            unique("uid")
        };
        let cgroup_parent = if self.systemd {
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/{}",
                self.pod_slice(&uid)
            )
        } else {
            format!("/{}/pod{}", self.cgroup_root, uid)
        };
        let log_dir = self.dir.join("logs").join(&uid);
        fs::create_dir_all(&log_dir).expect("mkdir pod log dir");
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid: uid.clone(),
                namespace: "oxit".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: log_dir.display().to_string(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent,
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(kubelet_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// systemd driver: kubelet's slice for a BestEffort pod (the '-' of
    /// the uid become '_').
    pub fn pod_slice(&self, uid: &str) -> String {
        format!("kubepods-besteffort-pod{}.slice", uid.replace('-', "_"))
    }

    /// The pods' parent cgroups of this test (relative paths): the
    /// cgroupfs root, or with systemd's driver the pod slices that exist.
    fn pod_cgroups(&self) -> Vec<String> {
        if !self.systemd {
            return vec![self.cgroup_root.clone()];
        }
        const QOS: &str = "kubepods.slice/kubepods-besteffort.slice";
        let mine = self.pod_slice(&format!("{}-", self.cgroup_root));
        let mine = mine.trim_end_matches(".slice");
        let mut v: Vec<String> = cgroup_dirs(QOS)
            .iter()
            .filter_map(|d| fs::read_dir(d).ok())
            .flat_map(|rd| rd.flatten())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(mine))
            .map(|n| format!("{QOS}/{n}"))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Remove what is left of the pods' parents: the cgroupfs tree, or
    /// with systemd's driver this test's pod slices (`systemctl stop`).
    fn remove_pod_cgroups(&self) {
        if !self.systemd {
            remove_cgroup_tree(&self.cgroup_root);
            return;
        }
        let slices: Vec<String> = self
            .pod_cgroups()
            .iter()
            .filter_map(|p| p.rsplit('/').next().map(str::to_string))
            .collect();
        if !slices.is_empty() {
            let _ = run_with_timeout(
                Command::new("systemctl").arg("stop").args(&slices),
                Duration::from_secs(30),
                None,
            );
        }
    }

    pub fn try_run_pod(&self, cfg: &cri::PodSandboxConfig) -> Result<String, tonic::Status> {
        let mut rs = self.rs();
        let req = cri::RunPodSandboxRequest {
            config: Some(cfg.clone()),
            runtime_handler: self.handler.name().into(),
        };
        self.call(async move { rs.run_pod_sandbox(req).await })
            .map(|r| r.pod_sandbox_id)
    }

    /// RunPodSandbox with this test's handler.
    pub fn run_pod(&self, cfg: &cri::PodSandboxConfig) -> String {
        self.try_run_pod(cfg).unwrap_or_else(|e| {
            panic!(
                "RunPodSandbox ({}): {e}\ncontainerd log:\n{}",
                self.handler.name(),
                tail(&self.log_path(), 30)
            )
        })
    }

    pub fn pod_status(&self, pod: &str) -> (cri::PodSandboxStatus, HashMap<String, String>) {
        let mut rs = self.rs();
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.into(),
            verbose: true,
        };
        let r = self
            .call(async move { rs.pod_sandbox_status(req).await })
            .unwrap_or_else(|e| panic!("PodSandboxStatus {pod}: {e}"));
        (r.status.unwrap_or_default(), r.info)
    }

    /// The pause process's host pid (from the verbose sandbox status).
    pub fn pod_pid(&self, pod: &str) -> i32 {
        let (_, info) = self.pod_status(pod);
        info_pid(&info).unwrap_or_else(|| panic!("no pid in sandbox info: {info:?}"))
    }

    /// A busybox container config running `args`, logging to `<name>.log`.
    pub fn container_config(&self, name: &str, args: &[&str]) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(image_spec(BUSYBOX)),
            command: args.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            linux: Some(cri::LinuxContainerConfig {
                resources: Some(cri::LinuxContainerResources::default()),
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(kubelet_namespaces()),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    pub fn try_create(
        &self,
        pod: &str,
        cfg: &cri::ContainerConfig,
        pod_cfg: &cri::PodSandboxConfig,
    ) -> Result<String, tonic::Status> {
        let mut rs = self.rs();
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(cfg.clone()),
            sandbox_config: Some(pod_cfg.clone()),
        };
        self.call(async move { rs.create_container(req).await })
            .map(|r| r.container_id)
    }

    pub fn try_start(&self, id: &str) -> Result<(), tonic::Status> {
        let mut rs = self.rs();
        let req = cri::StartContainerRequest {
            container_id: id.into(),
        };
        self.call(async move { rs.start_container(req).await })
            .map(|_| ())
    }

    /// CreateContainer + StartContainer; returns the container id.
    pub fn create_start(
        &self,
        pod: &str,
        cfg: &cri::ContainerConfig,
        pod_cfg: &cri::PodSandboxConfig,
    ) -> String {
        let id = self
            .try_create(pod, cfg, pod_cfg)
            .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", tail(&self.log_path(), 30)));
        self.try_start(&id)
            .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", tail(&self.log_path(), 30)));
        id
    }

    /// A pod with one busybox container running `args`; (pod, container,
    /// pod config).
    pub fn pod_with(&self, args: &[&str]) -> (String, String, cri::PodSandboxConfig) {
        let pcfg = self.pod_config("p");
        let pod = self.run_pod(&pcfg);
        let c = self.create_start(&pod, &self.container_config("c", args), &pcfg);
        (pod, c, pcfg)
    }

    pub fn status(&self, id: &str) -> (cri::ContainerStatus, HashMap<String, String>) {
        let mut rs = self.rs();
        let req = cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        };
        let r = self
            .call(async move { rs.container_status(req).await })
            .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"));
        (r.status.unwrap_or_default(), r.info)
    }

    /// The container's init host pid (verbose status).
    pub fn container_pid(&self, id: &str) -> i32 {
        let (_, info) = self.status(id);
        info_pid(&info).unwrap_or_else(|| panic!("no pid in container info: {info:?}"))
    }

    /// Wait until the container has exited; its final status.
    pub fn wait_exited(&self, id: &str) -> cri::ContainerStatus {
        poll(WAIT, || {
            let (st, _) = self.status(id);
            (st.state == cri::ContainerState::ContainerExited as i32).then_some(st)
        })
        .unwrap_or_else(|| panic!("container {id} did not exit: {:?}", self.status(id).0))
    }

    pub fn wait_running(&self, id: &str) {
        let ok = poll(WAIT, || {
            let (st, _) = self.status(id);
            (st.state == cri::ContainerState::ContainerRunning as i32).then_some(())
        });
        assert!(ok.is_some(), "{id} not running: {:?}", self.status(id).0);
    }

    /// ExecSync: (stdout, stderr, exit code).
    pub fn exec_sync(&self, id: &str, cmd: &[&str]) -> (String, String, i32) {
        self.try_exec_sync(id, cmd).unwrap_or_else(|e| {
            let (st, _) = self.status(id);
            panic!(
                "ExecSync {cmd:?}: {e}\ncontainer: state {:?} exit code {} reason {:?} \
                 message {:?} started_at {} finished_at {}",
                cri::ContainerState::try_from(st.state),
                st.exit_code,
                st.reason,
                st.message,
                st.started_at,
                st.finished_at
            )
        })
    }

    pub fn try_exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
    ) -> Result<(String, String, i32), tonic::Status> {
        let mut rs = self.rs();
        let req = cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 20,
        };
        let r = self.call(async move { rs.exec_sync(req).await })?;
        Ok((
            String::from_utf8_lossy(&r.stdout).into_owned(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
            r.exit_code,
        ))
    }

    /// The streaming URL of an Exec (on containerd's streaming server, in
    /// its network namespace).
    pub fn exec_url(&self, id: &str, cmd: &[&str], tty: bool, stdin: bool) -> String {
        let mut rs = self.rs();
        let req = cri::ExecRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty,
            stdin,
            stdout: true,
            stderr: !tty,
        };
        self.call(async move { rs.exec(req).await })
            .unwrap_or_else(|e| panic!("Exec {id}: {e}"))
            .url
    }

    /// The streaming URL of an Attach.
    pub fn attach_url(&self, id: &str, tty: bool) -> String {
        let mut rs = self.rs();
        let req = cri::AttachRequest {
            container_id: id.into(),
            stdin: true,
            tty,
            stdout: true,
            stderr: !tty,
        };
        self.call(async move { rs.attach(req).await })
            .unwrap_or_else(|e| panic!("Attach {id}: {e}"))
            .url
    }

    /// The streaming URL of a PortForward.
    pub fn port_forward_url(&self, pod: &str, ports: &[i32]) -> String {
        let mut rs = self.rs();
        let req = cri::PortForwardRequest {
            pod_sandbox_id: pod.into(),
            port: ports.to_vec(),
        };
        self.call(async move { rs.port_forward(req).await })
            .unwrap_or_else(|e| panic!("PortForward {pod}: {e}"))
            .url
    }

    /// ExecSync that must exit 0; its stdout.
    pub fn sh(&self, id: &str, script: &str) -> String {
        let (out, err, code) = self.exec_sync(id, &["sh", "-c", script]);
        assert_eq!(
            code, 0,
            "`{script}` in {id}: exit {code}, stdout {out:?}, stderr {err:?}"
        );
        out
    }

    pub fn stop_container(&self, id: &str, timeout: i64) {
        let mut rs = self.rs();
        let req = cri::StopContainerRequest {
            container_id: id.into(),
            timeout,
        };
        self.call(async move { rs.stop_container(req).await })
            .unwrap_or_else(|e| panic!("StopContainer {id}: {e}"));
    }

    pub fn remove_container(&self, id: &str) {
        let mut rs = self.rs();
        let req = cri::RemoveContainerRequest {
            container_id: id.into(),
        };
        self.call(async move { rs.remove_container(req).await })
            .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}"));
    }

    pub fn stop_pod(&self, pod: &str) {
        let mut rs = self.rs();
        let req = cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.into(),
        };
        self.call(async move { rs.stop_pod_sandbox(req).await })
            .unwrap_or_else(|e| panic!("StopPodSandbox {pod}: {e}"));
    }

    pub fn remove_pod(&self, pod: &str) {
        let mut rs = self.rs();
        let req = cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod.into(),
        };
        self.call(async move { rs.remove_pod_sandbox(req).await })
            .unwrap_or_else(|e| panic!("RemovePodSandbox {pod}: {e}"));
    }

    pub fn list_pods(&self) -> Vec<String> {
        let mut rs = self.rs();
        self.call(async move {
            rs.list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
                .await
        })
        .map(|r| r.items.into_iter().map(|p| p.id).collect())
        .unwrap_or_default()
    }

    pub fn list_containers(&self) -> Vec<String> {
        let mut rs = self.rs();
        self.call(async move {
            rs.list_containers(cri::ListContainersRequest { filter: None })
                .await
        })
        .map(|r| r.containers.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
    }

    /// The container's log file (pod log dir + log_path).
    pub fn log_file(&self, pod_cfg: &cri::PodSandboxConfig, name: &str) -> PathBuf {
        Path::new(&pod_cfg.log_directory).join(format!("{name}.log"))
    }

    /// Shim processes of this containerd (their command line holds the
    /// socket address), with their pids.
    pub fn shims(&self) -> Vec<(i32, String)> {
        procs_with_cmdline(&self.sock.display().to_string())
            .into_iter()
            .filter(|(p, c)| *p != self.pid && c.contains("containerd-shim"))
            .collect()
    }

    /// Stop and remove every pod (which removes its containers).
    fn remove_all(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for pod in self.list_pods() {
            let mut rs = self.rs();
            let p = pod.clone();
            if let Err(e) = self.call(async move {
                rs.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: p })
                    .await
            }) {
                problems.push(format!("StopPodSandbox {pod}: {e}"));
            }
            let mut rs = self.rs();
            let p = pod.clone();
            if let Err(e) = self.call(async move {
                rs.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: p })
                    .await
            }) {
                problems.push(format!("RemovePodSandbox {pod}: {e}"));
            }
        }
        problems
    }

    /// Stop containerd: SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child, Duration::from_secs(10));
        }
    }

    /// What may be left while containerd still runs (after every pod was
    /// removed).
    fn leftovers_live(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let pods = self.list_pods();
        if !pods.is_empty() {
            problems.push(format!("sandboxes still listed: {pods:?}"));
        }
        let cs = self.list_containers();
        if !cs.is_empty() {
            problems.push(format!("containers still listed: {cs:?}"));
        }
        for (p, c) in self.shims() {
            problems.push(format!("shim {p} still running: {c}"));
        }
        let links = self.in_netns(&["ip", "-o", "link", "show"]).stdout;
        for l in links.lines().filter(|l| l.contains("veth")) {
            problems.push(format!("veth left in containerd's netns: {l}"));
        }
        let d = self.dir.path().display().to_string();
        let mi = fs::read_to_string(format!("/proc/{}/mountinfo", self.pid)).unwrap_or_default();
        // Copies of the host's own mounts below /run (systemd's /run/lock,
        // /run/credentials/...; under the private /run now) are no leak,
        // nor the kept sockets' directories.
        let ours = read_file(Path::new("/proc/self/mountinfo"));
        let host_run: Vec<&str> = ours
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|mp| mp.starts_with("/run/"))
            .collect();
        for l in mi.lines() {
            let mp = l.split(' ').nth(4).unwrap_or("");
            let kept = host_run.contains(&mp)
                || (self.systemd && (mp == "/run/systemd" || mp == "/run/dbus"));
            if mp.starts_with(&d) || (mp.starts_with("/run/") && mp != "/run" && !kept) {
                problems.push(format!("mount left in containerd's namespace: {l}"));
            }
        }
        problems
    }

    /// Processes this test started that may outlive containerd: shims
    /// (their command line holds the socket path), anything in containerd's
    /// mount namespace, anything in the pods' cgroups. (Not "anything
    /// naming the temp dir": other tools may read files there.)
    fn own_processes(&self) -> Vec<(i32, String)> {
        let mut procs = procs_with_cmdline(&self.sock.display().to_string());
        for p in all_pids() {
            if !self.mnt_ns.is_empty() && ns_link(p, "mnt") == self.mnt_ns {
                procs.push((p, cmdline(p)));
            }
        }
        for cg in self.pod_cgroups() {
            procs.extend(procs_in_cgroup(&cg));
        }
        procs.sort();
        procs.dedup_by_key(|(p, _)| *p);
        procs
    }

    /// Once containerd has stopped: no process, cgroup or host mount.
    fn leftovers_after_stop(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let d = self.dir.path().display().to_string();
        for (p, c) in self.own_processes() {
            problems.push(format!("process {p} left: {c}"));
        }
        // Pod parents (`pod<uid>`, or the pod slices) may stay, as kubelet
        // owns them; no container's cgroup (scope) may.
        for dir in self.pod_cgroups().iter().flat_map(|r| cgroup_dirs(r)) {
            for sub in walk_dirs(&dir).into_iter().skip(1) {
                if self.systemd || sub.parent() != Some(dir.as_path()) {
                    problems.push(format!("container cgroup left: {}", sub.display()));
                }
            }
        }
        for m in mounts_mentioning(&[&d]) {
            problems.push(format!("host mount left: {m}"));
        }
        if pid_alive(self.pid) {
            problems.push(format!("containerd {} still alive", self.pid));
        }
        problems
    }

    /// Remove every pod; nothing may be left (see the module doc).
    pub fn assert_clean(&mut self) {
        let mut problems = self.remove_all();
        problems.extend(settle(Duration::from_secs(10), || self.leftovers_live()));
        self.stop();
        problems.extend(settle(Duration::from_secs(10), || {
            self.leftovers_after_stop()
        }));
        assert!(
            problems.is_empty(),
            "leftovers:\n  {}\ncontainerd log:\n{}",
            problems.join("\n  "),
            tail(&self.log_path(), 30)
        );
        self.remove_pod_cgroups();
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = read_file(&self.log_path());
            let errors: Vec<&str> = log
                .lines()
                .filter(|l| {
                    l.contains("level=error")
                        || l.contains("level=warn")
                        || l.contains("disconnected")
                        || l.contains("panic")
                })
                .collect();
            eprintln!(
                "containerd {} log, errors and warnings (last 25):\n{}\nlog tail:\n{}",
                self.ctd.version_prefix(),
                errors[errors.len().saturating_sub(25)..].join("\n"),
                tail(&self.log_path(), 25)
            );
        }
        if self.child.is_some() {
            let _ = self.remove_all();
            let _ = settle(Duration::from_secs(5), || {
                self.shims()
                    .into_iter()
                    .map(|(p, _)| p.to_string())
                    .collect()
            });
            self.stop();
        }
        let _ = settle(Duration::from_secs(5), || {
            let procs = self.own_processes();
            kill_all(&procs);
            procs.into_iter().map(|(p, _)| p.to_string()).collect()
        });
        self.remove_pod_cgroups();
    }
}

/// Every directory at and below `dir`.
fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = fs::read_dir(&out[i]) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

/// What kubelet sends for a pod without shareProcessNamespace or host
/// namespaces: network and IPC of the pod, a pid namespace per container.
pub fn kubelet_namespaces() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Pod as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

pub fn image_spec(name: &str) -> cri::ImageSpec {
    cri::ImageSpec {
        image: name.into(),
        ..Default::default()
    }
}

/// The `pid` of a verbose status's `info` JSON.
pub fn info_pid(info: &HashMap<String, String>) -> Option<i32> {
    let v: serde_json::Value = serde_json::from_str(info.get("info")?).ok()?;
    v.get("pid")?.as_i64().map(|p| p as i32)
}

/// `/proc/<pid>/ns/<kind>` (e.g. `mnt:[4026531841]`), or "".
pub fn ns_link(pid: i32, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The parent pid of `pid`.
pub fn ppid(pid: i32) -> i32 {
    let st = read_file(Path::new(&format!("/proc/{pid}/status")));
    status_field(&st, "PPid")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

/// A bridge + host-local network, in containerd's private netns only.
const CNI_CONFLIST: &str = r#"{
  "cniVersion": "0.4.0",
  "name": "oxit",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "oxit0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.88.0.0/16" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    }
  ]
}
"#;

const DISABLED: &str = r#"
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp","#;

/// The `crun` handler's runtime binary: `$OXRUN_CRUN_BIN` (scripts/bench-cri.sh
/// passes a wrapper: crun 1.8 rejects the ociVersion containerd 2.x writes),
/// else `crun` on containerd's PATH.
fn crun_bin() -> String {
    std::env::var("OXRUN_CRUN_BIN")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "crun".into())
}

/// With systemd's driver, the `SystemdCgroup = true` line of a runtime's
/// options table (`table`: its header, or "" inside an existing one).
fn systemd_opt(systemd: bool, table: &str) -> String {
    match (systemd, table) {
        (false, _) => String::new(),
        (true, "") => "\n        SystemdCgroup = true".into(),
        (true, t) => format!("\n      [{t}]\n        SystemdCgroup = true"),
    }
}

/// containerd 1.6/1.7: config version 2. With systemd's driver only the
/// runc-type runtimes get the option (see [`Cri::start_systemd`]).
fn config_v2(d: &str, systemd: bool) -> String {
    let crun = crun_bin();
    let runtimes = r#"plugins."io.containerd.grpc.v1.cri".containerd.runtimes"#;
    let sd_runc = systemd_opt(systemd, &format!("{runtimes}.runc.options"));
    let sd = systemd_opt(systemd, "");
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [{DISABLED}
  "io.containerd.nri.v1.nri",
]

[grpc]
  address = "{d}/c.sock"

[ttrpc]
  address = "{d}/c.sock.ttrpc"

[debug]
  level = "debug"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"{sd_runc}
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.oxrun]
      runtime_type = "io.containerd.rust.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun.options]
        BinaryName = "{crun}"{sd}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
    max_conf_num = 1
"#
    )
}

/// containerd 2.x: config version 3.
/// Our handler is a runc-type runtime whose shim is ours (`runtime_path`),
/// as the README recommends for 2.x: CRI then probes it with `-info` and
/// learns its features (with `io.containerd.rust.v2` it knows none, and
/// containerd 2.1.9 crashes on a recursive read-only mount).
fn config_v3(d: &str, systemd: bool) -> String {
    let shim = shim_bin().display().to_string();
    let crun = crun_bin();
    let runtimes = "plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes";
    let sd_runc = systemd_opt(systemd, &format!("{runtimes}.runc.options"));
    let sd_oxrun = systemd_opt(systemd, &format!("{runtimes}.oxrun.options"));
    let sd = systemd_opt(systemd, "");
    format!(
        r#"version = 3
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [{DISABLED}
  "io.containerd.nri.v1.nri",
]

[grpc]
  address = "{d}/c.sock"

[ttrpc]
  address = "{d}/c.sock.ttrpc"

[debug]
  level = "debug"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE}"

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"{sd_runc}
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.oxrun]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = "{shim}"{sd_oxrun}
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun.options]
        BinaryName = "{crun}"{sd}
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{d}/cni"
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"#
    )
}
