//! Real Docker (Debian's docker.io, with runc): containers started with `$(cgview docker-args)`, as the
//! README tells users, keep reading their own files, and `top` in them keeps running, while the daemon
//! is killed and restarted, taken over and stopped and started; `docker restart` of a container litters
//! nothing. The image is a static busybox imported with `docker import` (no registry needed). Needs root,
//! /dev/fuse, cgroup v1 and a Docker daemon (`tests/run.sh` installs and starts one).

mod mounted_support;

use mounted_support::needs::Need;
use mounted_support::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::sleep;
use std::time::{Duration, Instant};

const IMAGE: &str = "cgview-test/busybox:latest";

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

/// The test image: `/bin/busybox` alone, with the applets the containers use.
fn import_image() {
    if docker(&["image", "inspect", IMAGE]).status.success() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in ["sh", "cat", "head", "sleep", "top", "mv", "echo", "grep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    for dir in ["proc", "sys", "dev", "tmp", "out"] {
        fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    let imported = run_sh(&format!(
        "tar -C {} -c . | docker import - {IMAGE} >/dev/null && echo ok",
        root.path().display()
    ));
    assert_eq!(imported.trim(), "ok", "docker import failed");
}

/// A container removed when the test ends, even by a failed assertion.
struct DockerContainer {
    name: String,
    out: PathBuf,
    limit_mib: u64,
}

impl DockerContainer {
    /// Reads `/proc/meminfo` every 50 ms (counting rounds, failures and the first line) and runs
    /// `top -b -d 1`, with cgview's files bound in by `binds` (what `cgview docker-args` printed).
    fn start(label: &str, binds: &[String], limit_mib: u64, out: &Path) -> DockerContainer {
        let name = unique_name(label);
        fs::create_dir_all(out).unwrap();
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "-m".into(),
            format!("{limit_mib}m"),
            "-v".into(),
            format!("{}:/out", out.display()),
        ];
        args.extend(binds.iter().cloned());
        args.push(IMAGE.into());
        args.extend(["sh".into(), "-c".into(), "top -b -d 1 > /out/top 2>&1 & \
             n=0; f=0; while :; do n=$((n+1)); l=$(head -n 1 /proc/meminfo 2>>/out/err) || f=$((f+1)); \
             echo \"$n $f $l\" > /out/c.new; mv /out/c.new /out/c; sleep 0.05; done"
            .into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = docker(&args);
        assert!(
            started.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        let container = DockerContainer {
            name,
            out: out.to_owned(),
            limit_mib,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while container.counts().0 < 5 {
            assert!(Instant::now() < deadline, "the container never read");
            sleep(Duration::from_millis(50));
        }
        container
    }

    /// (rounds, failed rounds, first line of the last meminfo read).
    fn counts(&self) -> (u64, u64, String) {
        let text = fs::read_to_string(self.out.join("c")).unwrap_or_default();
        let mut fields = text.split_whitespace();
        let rounds = fields.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let failed = fields.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        (rounds, failed, fields.collect::<Vec<_>>().join(" "))
    }

    fn top_frames(&self) -> usize {
        fs::read_to_string(self.out.join("top"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("Mem:"))
            .count()
    }

    fn top_running(&self) -> bool {
        docker(&[
            "exec",
            &self.name,
            "sh",
            "-c",
            "ps | grep -v grep | grep -q 'top -b'",
        ])
        .status
        .success()
    }
}

impl Drop for DockerContainer {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

#[test]
fn docker_containers_never_notice_daemon_restarts() {
    if !needs_met(MOUNT_AND_CGROUPS) || !needs_met(&[Need::Docker]) {
        return;
    }
    import_image();
    let mut daemon = Daemon::start(&[], &[]);
    let printed = Command::new(BIN)
        .arg("docker-args")
        .arg(&daemon.mount_point)
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let binds: Vec<String> = String::from_utf8(printed.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let work = tempfile::tempdir().unwrap();
    let containers: Vec<DockerContainer> = [("docker-a", 192), ("docker-b", 320)]
        .into_iter()
        .map(|(label, mib)| DockerContainer::start(label, &binds, mib, &work.path().join(label)))
        .collect();
    sleep(Duration::from_millis(1500));

    // kill -9 and a restart; a take-over; SIGTERM and a start 0.5 s later.
    let mut child = daemon.take_child();
    child.kill().unwrap();
    child.wait().unwrap();
    daemon.respawn();
    sleep(Duration::from_secs(1));
    let mut previous = daemon.start_successor();
    stop_process(&mut previous, "TERM").expect("the old daemon did not stop");
    sleep(Duration::from_secs(1));
    assert!(daemon.stop_with("TERM").success());
    sleep(Duration::from_millis(500));
    daemon.respawn();
    sleep(Duration::from_millis(1500));

    for container in &containers {
        let (rounds, failed, line) = container.counts();
        eprintln!(
            "docker: {}: {failed} of {rounds} rounds failed, top printed {} frames",
            container.name,
            container.top_frames()
        );
        assert_eq!(
            failed,
            0,
            "{}",
            fs::read_to_string(container.out.join("err")).unwrap_or_default()
        );
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>(),
            ["MemTotal:", &(container.limit_mib * 1024).to_string(), "kB"]
        );
        assert!(container.top_running(), "top exited in {}", container.name);
        assert!(container.top_frames() >= 4, "top stopped printing");
    }

    // A container stopped and started again (what `docker restart` does) binds the files again, from
    // the same single mount.
    let restarted = &containers[0];
    assert!(docker(&["stop", "-t", "1", &restarted.name])
        .status
        .success());
    fs::remove_file(restarted.out.join("c")).unwrap();
    assert!(docker(&["start", &restarted.name]).status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while restarted.counts().0 < 3 {
        assert!(
            Instant::now() < deadline,
            "the restarted container never read"
        );
        sleep(Duration::from_millis(50));
    }
    let (_, failed, line) = restarted.counts();
    assert_eq!(failed, 0);
    assert!(
        line.contains(&(restarted.limit_mib * 1024).to_string()),
        "{line}"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let at_mount_point = mounts
        .lines()
        .filter(|l| l.split(' ').nth(4) == daemon.mount_point.to_str())
        .count();
    assert_eq!(at_mount_point, 1, "docker restart littered the mount point");
}
