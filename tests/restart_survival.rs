//! Restart survival (issue 6): containers keep working across a daemon crash. Simulated containers have
//! their own root (pivot_root into a directory holding only a static busybox with `sh`, `cat`, `head` and
//! `sleep`: no `mount`), cgview's files bound over `/proc`, and a reader looping inside. Needs root,
//! /dev/fuse and /bin/busybox (busybox-static; tests/run.sh installs it).

mod mounted_support;

use mounted_support::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A simulated container whose reader writes the first line of `/proc/meminfo` (or `ERR`) to a status
/// file every 50 ms.
struct Container {
    cgroup: TestCgroup,
    init: Child,
    status: PathBuf,
    _work: tempfile::TempDir,
}

impl Container {
    fn start(label: &str, daemon: &Daemon, limit_mib: u64) -> Container {
        let cgroup = TestCgroup::new(label, &["memory"]);
        cgroup.set(
            "memory",
            "memory.limit_in_bytes",
            &(limit_mib * MIB).to_string(),
        );
        let work = tempfile::Builder::new()
            .prefix("cgview-ctr-")
            .tempdir()
            .unwrap();
        let root = work.path().join("rootfs");
        let out = work.path().join("out");
        for dir in ["bin", "proc", "sys", "out", "old"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        fs::create_dir_all(&out).unwrap();
        fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for applet in ["sh", "cat", "head", "sleep"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let mnt = daemon.mount_point.display();
        let root_s = root.display();
        // The runtime's part, with the host's tools; then pivot_root, and only busybox is left.
        let setup = format!(
            "set -e
mount --bind {root_s} {root_s}
mount -t proc proc {root_s}/proc
for f in meminfo uptime stat; do mount --bind {mnt}/proc/$f {root_s}/proc/$f; done
mount --bind {out} {root_s}/out
cd {root_s}
pivot_root . old
exec /bin/busybox sh -c '/bin/busybox umount -l /old; [ ! -e /bin/mount ] || exit 3
while :; do head -n 1 /proc/meminfo > /out/status 2>/out/error || echo ERR > /out/status; sleep 0.05; done'
",
            out = out.display()
        );
        let init = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{}; exec unshare --mount --pid --fork sh -c '{}'",
                cgroup.enter_script(),
                setup.replace('\'', "'\\''")
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let container = Container {
            cgroup,
            init,
            status: out.join("status"),
            _work: work,
        };
        container.wait_for(
            &format!("MemTotal: {}", limit_mib * 1024),
            Duration::from_secs(10),
        );
        container
    }

    fn status(&self) -> String {
        fs::read_to_string(&self.status)
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Waits until the status starts with `want`; returns how long it took.
    fn wait_for(&self, want: &str, within: Duration) -> Duration {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.status().starts_with(want) {
                return start.elapsed();
            }
            sleep(Duration::from_millis(10));
        }
        panic!(
            "the container's reader never saw {want:?}; it sees {:?}",
            self.status()
        );
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.init.kill();
        let _ = self.init.wait();
    }
}

fn health(mount_point: &Path) -> (bool, String) {
    let output = Command::new(BIN)
        .arg("health")
        .arg(mount_point)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn crash_then_restart_repairs_running_containers_without_tools_inside() {
    require_root_and_fuse();
    assert!(
        Path::new("/bin/busybox").exists(),
        "needs /bin/busybox (apt-get install busybox-static)"
    );
    let mut daemon = Daemon::start(&[], &[]);
    let first = Container::start("crash-a", &daemon, 256);
    let second = Container::start("crash-b", &daemon, 384);

    let mut child = daemon.take_child();
    child.kill().unwrap();
    child.wait().unwrap();
    for container in [&first, &second] {
        container.wait_for("ERR", Duration::from_secs(5));
    }
    let (healthy, report) = health(&daemon.mount_point);
    assert!(!healthy, "health passes with a dead daemon:\n{report}");
    assert!(report.contains("/proc/meminfo"), "{report}");

    daemon.respawn();
    for (container, mib) in [(&first, 256), (&second, 384)] {
        let took = container.wait_for(
            &format!("MemTotal: {} kB", mib * 1024),
            Duration::from_secs(2),
        );
        assert!(took <= Duration::from_secs(2), "{took:?}");
    }
    // Each repaired container is named in the log (with its cgroup), written just after its mounts are
    // replaced. Other namespaces on the machine may be repaired too; only ours are counted.
    let named = |log: &str, container: &Container| {
        log.lines().any(|l| {
            l.contains("repaired a container's dead cgview mounts")
                && l.contains(&format!("cgroup=/{} ", container.cgroup.relative))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut log = daemon.log_text();
    while !(named(&log, &first) && named(&log, &second)) && Instant::now() < deadline {
        sleep(Duration::from_millis(20));
        log = daemon.log_text();
    }
    assert!(named(&log, &first) && named(&log, &second), "{log}");
    let (healthy, report) = health(&daemon.mount_point);
    assert!(healthy, "{report}");

    // A container started after the restart works normally.
    let third = Container::start("crash-c", &daemon, 128);
    assert!(third.status().starts_with("MemTotal: 131072 kB"));
}

#[test]
fn stop_leaves_no_stale_mount_and_start_repairs_containers() {
    require_root_and_fuse();
    assert!(
        Path::new("/bin/busybox").exists(),
        "needs /bin/busybox (apt-get install busybox-static)"
    );
    let mut daemon = Daemon::start(&[], &[]);
    let container = Container::start("stop-start", &daemon, 192);

    let status = daemon.stop_with("TERM");
    assert!(status.success(), "{status}");
    assert!(
        !is_mounted(&daemon.mount_point),
        "SIGTERM left a mount on the host"
    );
    // The container's binds outlive the daemon; they fail until a daemon serves again.
    container.wait_for("ERR", Duration::from_secs(5));

    daemon.respawn();
    let took = container.wait_for("MemTotal: 196608 kB", Duration::from_secs(2));
    assert!(took <= Duration::from_secs(2), "{took:?}");
    let (healthy, report) = health(&daemon.mount_point);
    assert!(healthy, "{report}");
}
