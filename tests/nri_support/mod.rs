//! Support for the NRI suite (tests/nri.rs): the fake runtime ([`runtime`]) and its messages ([`pb`],
//! [`k8s`]), `cgview nri` as a child process ([`Plugin`]), and OCI bundles run with Debian's runc.
//!
//! Tools used (Debian packages): runc, busybox-static (a container root of one static binary).
//! `tests/run.sh` installs them.

#![allow(dead_code)]

pub mod k8s;
pub mod pb;
pub mod runtime;

use crate::mounted_support::needs::REQUIRE_ALL_ENV;
use crate::mounted_support::{stop_process, BIN};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The files the plugin binds by default, as container paths.
pub const DEFAULT_BINDS: [&str; 8] = [
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/uptime",
    "/proc/diskstats",
    "/proc/swaps",
    "/proc/loadavg",
    "/sys/devices/system/cpu",
];

/// Checks `mounts` are the plugin's default binds from `mount_point`: read-only binds with
/// `nosuid,nodev,noexec` of the same paths below the mount point, whose sources exist.
pub fn assert_default_binds(mounts: &[pb::Mount], mount_point: &Path) {
    let mut destinations: Vec<&str> = mounts.iter().map(|m| m.destination.as_str()).collect();
    destinations.sort_unstable();
    let mut wanted = DEFAULT_BINDS.to_vec();
    wanted.sort_unstable();
    assert_eq!(destinations, wanted, "{mounts:#?}");
    for mount in mounts {
        let source = mount_point.join(mount.destination.trim_start_matches('/'));
        assert_eq!(mount.source, source.to_string_lossy(), "{mount:?}");
        assert_eq!(mount.r#type, "bind", "{mount:?}");
        assert_eq!(
            mount.options,
            ["bind", "ro", "nosuid", "nodev", "noexec"],
            "{mount:?}"
        );
        assert!(source.exists(), "{} is not served", source.display());
    }
}

/// Whether runc is installed. Missing, the test is skipped (or fails under tests/run.sh).
#[must_use]
pub fn runc_available() -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("runc").is_file()));
    if found {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    if std::env::var(REQUIRE_ALL_ENV).is_ok_and(|v| v == "1") {
        panic!(
            "{test} needs runc (apt-get install runc), and {REQUIRE_ALL_ENV}=1 forbids skipping it"
        );
    }
    let line = format!(
        "SKIPPED {test}: needs runc (apt-get install runc); bash tests/run.sh (as root) runs it\n"
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// Whether `path` (a program or a file a test reads) exists; missing, the test is skipped (or fails
/// under tests/run.sh).
#[must_use]
pub fn file_available(path: &Path, package: &str) -> bool {
    if path.exists() {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    if std::env::var(REQUIRE_ALL_ENV).is_ok_and(|v| v == "1") {
        panic!(
            "{test} needs {} (apt-get install {package}), and {REQUIRE_ALL_ENV}=1 forbids skipping it",
            path.display()
        );
    }
    let line = format!(
        "SKIPPED {test}: needs {} (apt-get install {package})\n",
        path.display()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// `cgview nri` running as a child process, logging to a file; stopped when dropped.
pub struct Plugin {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Plugin {
    /// `cgview nri <mount_point> --nri-socket <socket> --nri-lock-dir <lock_dir> --metrics-addr
    /// 127.0.0.1:0 [extra...]`.
    pub fn start(mount_point: &Path, socket: &Path, lock_dir: &Path, extra: &[&str]) -> Plugin {
        let mut command = Command::new(BIN);
        command
            .arg("nri")
            .arg(mount_point)
            .arg("--nri-socket")
            .arg(socket)
            .arg("--nri-lock-dir")
            .arg(lock_dir)
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(extra);
        Self::spawn(command)
    }

    /// Runs `command` (a `cgview nri` command line) with its standard error to the plugin's log.
    pub fn spawn(mut command: Command) -> Plugin {
        let dir = tempfile::Builder::new()
            .prefix("cgview-nri-plugin-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("plugin.log");
        for variable in ["NRI_PLUGIN_SOCKET", "NRI_PLUGIN_NAME", "NRI_PLUGIN_IDX"] {
            if command
                .get_envs()
                .all(|(name, _)| name != std::ffi::OsStr::new(variable))
            {
                command.env_remove(variable);
            }
        }
        command
            .env("CGVIEW_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        let child = command.spawn().expect("cannot start cgview nri");
        Plugin {
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the plugin was stopped").id()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `timeout` for `needle` in the log; whether it came.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_text().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// The address `--metrics-addr 127.0.0.1:0` was bound to, from the log.
    pub fn metrics_address(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log_text();
            if let Some(address) = log
                .lines()
                .find(|l| l.contains("serving the plugin's metrics at http://"))
                .and_then(|l| l.split("http://").nth(1))
                .and_then(|rest| rest.split('/').next())
            {
                return address.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no metrics address in the plugin's log:\n{log}"
            );
            sleep(Duration::from_millis(20));
        }
    }

    /// The plugin's `/metrics`.
    pub fn metrics(&self) -> String {
        scrape(&self.metrics_address())
    }

    /// Waits up to `timeout` for the plugin to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("the plugin was stopped");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if stop_process(&mut child, "TERM").is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `GET /metrics` over plain TCP (HTTP/1.0: the server closes after the answer); the body.
pub fn scrape(address: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address)
        .unwrap_or_else(|e| panic!("cannot connect to {address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: cgview\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    response
}

/// The value of `series` (name and labels exactly as printed) in a Prometheus text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// `cgview_nri_containers_total{decision="skipped",reason="<reason>"}`.
pub fn skipped(text: &str, reason: &str) -> f64 {
    metric(
        text,
        &format!("cgview_nri_containers_total{{decision=\"skipped\",reason=\"{reason}\"}}"),
    )
}

pub fn injected(text: &str) -> f64 {
    metric(text, "cgview_nri_containers_total{decision=\"injected\"}")
}

/// A container runc created, deleted (`runc delete -f`) when dropped.
pub struct RuncContainer {
    root: PathBuf,
    id: String,
}

impl Drop for RuncContainer {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "-f", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The applets the bundles' scripts use, as links to the static busybox.
const APPLETS: [&str; 9] = [
    "sh", "cat", "grep", "nproc", "ls", "echo", "wc", "head", "free",
];

/// An OCI bundle in a directory of its own: a busybox root, `runc spec`'s config.json with `script`
/// as the process, `cgroups_path` (cgroupfs style) as its cgroup and `mounts` appended to its mounts,
/// as containerd applies a plugin's adjustment.
pub struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    pub fn new(script: &str, cgroups_path: &str, mounts: &[pb::Mount]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("cgview-nri-bundle-")
            .tempdir()
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        for sub in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
            fs::create_dir_all(rootfs.join(sub)).unwrap();
        }
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        let output = Command::new("runc")
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "runc spec: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let config_path = dir.path().join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&config_path).unwrap()).unwrap();
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!(["/bin/sh", "-c", script]);
        config["root"]["path"] = "rootfs".into();
        config["hostname"] = "nri-test".into();
        config["linux"]["cgroupsPath"] = cgroups_path.into();
        let list = config["mounts"].as_array_mut().unwrap();
        for mount in mounts {
            list.push(serde_json::json!({
                "destination": mount.destination,
                "type": mount.r#type,
                "source": mount.source,
                "options": mount.options,
            }));
        }
        fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        Bundle { dir }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// The bundle's config.json.
    pub fn config(&self) -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(self.config_path()).unwrap()).unwrap()
    }

    /// The capabilities the container's process gets (its bounding set).
    pub fn capabilities(&self) -> Vec<String> {
        self.config()["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    }

    /// Sets `linux.seccomp` (none: removed), as the runtime writes the container's policy, or the one
    /// a plugin's adjustment replaced it with.
    pub fn set_seccomp(&self, policy: Option<&serde_json::Value>) {
        let mut config = self.config();
        match policy {
            Some(policy) => config["linux"]["seccomp"] = policy.clone(),
            None => drop(config["linux"].as_object_mut().unwrap().remove("seccomp")),
        }
        fs::write(
            self.config_path(),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
    }

    /// Copies the program `source` into the container as /bin/`name`.
    pub fn install(&self, source: &Path, name: &str) {
        fs::copy(source, self.dir.path().join("rootfs/bin").join(name)).unwrap();
    }

    /// `runc run` of the bundle as container `id` (state under the bundle's directory): its output;
    /// the container is deleted before returning.
    pub fn run(&self, id: &str) -> Output {
        let root = self.dir.path().join("runc-state");
        let _container = RuncContainer {
            root: root.clone(),
            id: id.to_owned(),
        };
        Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["run", "--bundle"])
            .arg(self.dir.path())
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}
