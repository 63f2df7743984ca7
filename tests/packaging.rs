//! The systemd unit for Docker hosts: valid for systemd, ordered before the container runtimes, notified
//! only once the mount serves.

mod mounted_support;

use mounted_support::*;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const UNIT: &str = include_str!("../packaging/cgview.service");

fn setting<'a>(key: &str) -> Vec<&'a str> {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn unit_starts_before_the_runtimes_and_restarts_on_failure() {
    assert_eq!(setting("Type"), ["notify"]);
    let before = setting("Before").join(" ");
    assert!(before.contains("docker.service") && before.contains("containerd.service"));
    assert_eq!(setting("Restart"), ["on-failure"]);
    // The connection survives the restart in the descriptor store (tests/fdstore.rs): the record and
    // /dev/fuse.
    let store: u32 = setting("FileDescriptorStoreMax")[0].parse().unwrap();
    assert!(store >= 2);
    assert_eq!(setting("KillSignal"), ["SIGTERM"]);
    assert!(setting("ExecStart")[0].contains(" mount /var/lib/cgview"));
}

#[test]
fn unit_gives_the_daemon_room_for_many_containers_descriptors() {
    // systemd's default soft limit (1024) fills with a few dozen containers' kept cgroup files.
    let limit: Vec<u64> = setting("LimitNOFILE")
        .iter()
        .map(|v| v.parse().expect("a number, soft=hard"))
        .collect();
    assert!(limit.len() == 1 && limit[0] >= 65_536, "{limit:?}");
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("cgview.service");
    // verify checks that the binary exists: point it at the one under test.
    fs::write(&unit, UNIT.replace("/usr/local/bin/cgview", BIN)).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (package systemd) is needed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Only complaints about this unit count (the host's own units may draw some).
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cgview.service"))
        .collect();
    assert!(output.status.success() && ours.is_empty(), "{stderr}");
}

#[test]
fn ready_is_notified_once_the_mount_serves_and_stopping_on_sigterm() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mount_point = dir.path().join("mnt");
    let mut child = Command::new(BIN)
        .arg("mount")
        .arg(&mount_point)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let received = socket.recv(&mut buf);
    // Probe before anything else can: READY must mean the files are there now.
    let served = fs::read_to_string(mount_point.join("proc/meminfo"));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stopping = socket.recv(&mut [0u8; 256]).is_ok();
    let _ = child.wait();
    if is_mounted(&mount_point) {
        let _ = Command::new("umount").arg("-l").arg(&mount_point).status();
    }
    let n = received.expect("no READY=1 within 10 s");
    assert_eq!(&buf[..n], b"READY=1");
    assert!(served.unwrap().contains("MemTotal"));
    assert!(stopping, "no STOPPING=1 on SIGTERM");
    assert!(!Path::new(&mount_point).join("proc").exists());
}
