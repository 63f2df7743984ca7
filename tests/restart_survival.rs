//! Restart survival (issue 6): containers keep working across a daemon crash. Simulated containers have
//! their own root (pivot_root into a directory holding only a static busybox with `sh`, `cat`, `head` and
//! `sleep`: no `mount`), cgview's files bound over `/proc`, and a reader looping inside. These daemons
//! run without a keeper (`--connection-holder none`): what is tested here is the path every restart
//! takes without one (a kernel or setup that cannot keep the connection, or a keeper that gave up);
//! tests/reader_continuity.rs tests restarts with one. Needs root,
//! /dev/fuse and /bin/busybox (busybox-static; tests/run.sh installs it).

mod mounted_support;

use cgview::daemon::mount_scan::is_cgview_mount;
use cgview::parse::mountinfo::parse_mountinfo;
use mounted_support::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A simulated container whose reader loops over `/proc/meminfo` and `/proc/uptime`: it writes the first
/// line of meminfo (or `ERR`) to a status file, and how many rounds it made and how many failed (an
/// error, or a first line other than the container's limit) to a counts file.
struct Container {
    cgroup: TestCgroup,
    init: Child,
    /// `rounds failed first-line`, replaced whole after each round.
    state: PathBuf,
    _work: tempfile::TempDir,
}

impl Container {
    /// A container reading every 50 ms.
    fn start(label: &str, daemon: &Daemon, limit_mib: u64) -> Container {
        Container::start_with_pause(label, &daemon.mount_point, limit_mib, "sleep 0.05")
    }

    /// A container bound to the cgview at `mount_point`, whose reader runs `pause` between rounds (`:`
    /// reads as fast as busybox forks).
    fn start_with_pause(label: &str, mount_point: &Path, limit_mib: u64, pause: &str) -> Container {
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
        let mnt = mount_point.display();
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
want=\"MemTotal: {kb} kB\"; rounds=0; failed=0
while :; do
  rounds=$((rounds+1))
  line=$(head -n 1 /proc/meminfo 2>>/out/error) || line=ERR
  set -- $line; line=\"$*\"
  ok=1; [ \"$line\" = \"$want\" ] || ok=0
  uptime=$(cat /proc/uptime 2>>/out/error) && [ -n \"$uptime\" ] || ok=0
  [ $ok = 1 ] || failed=$((failed+1))
  echo \"$rounds $failed $line\" > /out/state.new; /bin/busybox mv /out/state.new /out/state
  {pause}
done'
",
            out = out.display(),
            kb = limit_mib * 1024,
        );
        let init = spawn_in_cgroup(&cgroup, "--mount --pid --fork", &setup, Stdio::null());
        let container = Container {
            cgroup,
            init,
            state: out.join("state"),
            _work: work,
        };
        container.wait_for(
            &format!("MemTotal: {}", limit_mib * 1024),
            Duration::from_secs(10),
        );
        container
    }

    fn state(&self) -> Vec<String> {
        fs::read_to_string(&self.state)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// The first line of meminfo in the last round (`ERR` when it failed).
    fn status(&self) -> String {
        self.state().get(2..).unwrap_or_default().join(" ")
    }

    /// What the reader's failed reads printed.
    fn errors(&self) -> String {
        fs::read_to_string(self.state.with_file_name("error")).unwrap_or_default()
    }

    /// (rounds, failed rounds) so far.
    fn counts(&self) -> (u64, u64) {
        let state = self.state();
        let number = |i: usize| state.get(i).and_then(|n| n.parse().ok()).unwrap_or(0);
        (number(0), number(1))
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
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "needs /bin/busybox (apt-get install busybox-static)"
    );
    let mut daemon = Daemon::start(&[], WITHOUT_KEEPER);
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
    for container in [&first, &second] {
        let (rounds, failed) = container.counts();
        eprintln!(
            "crash: {failed} of {rounds} rounds failed (the reads between the kill and the repair)"
        );
    }

    // A container started after the restart works normally.
    let third = Container::start("crash-c", &daemon, 128);
    assert!(third.status().starts_with("MemTotal: 131072 kB"));
}

#[test]
fn stop_leaves_no_stale_mount_and_start_repairs_containers() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "needs /bin/busybox (apt-get install busybox-static)"
    );
    let mut daemon = Daemon::start(&[], WITHOUT_KEEPER);
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
    let (rounds, failed) = container.counts();
    eprintln!("stop/start: {failed} of {rounds} rounds failed (the reads between the stop and the repair)");
    let (healthy, report) = health(&daemon.mount_point);
    assert!(healthy, "{report}");
}

/// `docker start` stats each bind source before the container runs, and an agent container's source is
/// the mount root: while its daemon is down (the agent is the container being started), that stat must be
/// answered by the kernel, not wait for the daemon it keeps from starting. Before the root's attributes
/// were cached, the agent's `docker restart` sat in dockerd's stat until the keeper gave the connection up
/// (10 s), and every container's read then failed once.
#[test]
fn the_mount_root_answers_stat_while_no_daemon_serves() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let mut daemon = Daemon::start(&[], &[]);
    // The daemon stats its root on a thread as it starts serving; nothing else here has.
    sleep(Duration::from_millis(300));
    let mut child = daemon.take_child();
    child.kill().unwrap();
    child.wait().unwrap();
    let started = Instant::now();
    let stat = Command::new("timeout")
        .args(["3", "stat", "-c", "%F %a"])
        .arg(&daemon.mount_point)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        stat.status.success(),
        "stat of the mount root with no daemon serving failed after {took:?}: {}",
        String::from_utf8_lossy(&stat.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&stat.stdout).trim(),
        "directory 555"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    // And the connection is still there for the next daemon.
    daemon.respawn();
    assert!(fs::read_to_string(daemon.path("proc/meminfo"))
        .unwrap()
        .starts_with("MemTotal:"));
}

/// A process killed when the test ends, even by a failed assertion.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The cgview mounts at `path` in this (the host's) mount namespace, by device.
fn cgview_devices_at(path: &Path) -> Vec<String> {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    parse_mountinfo(&text)
        .unwrap()
        .into_iter()
        .filter(|m| is_cgview_mount(m) && Path::new(&m.mount_point) == path)
        .map(|m| m.device)
        .collect()
}

/// Runs `script` with `sh` in `cgroup`, behind `unshare unshare_args` (a container's or a pod's
/// namespaces).
fn spawn_in_cgroup(cgroup: &TestCgroup, unshare_args: &str, script: &str, stderr: Stdio) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{}; exec unshare {unshare_args} sh -c '{}'",
            cgroup.enter_script(),
            script.replace('\'', "'\\''")
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

#[test]
fn upgrade_moves_every_container_without_a_failed_read() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "needs /bin/busybox (apt-get install busybox-static)"
    );
    let mut daemon = Daemon::start(&[], WITHOUT_KEEPER);
    let old_devices = cgview_devices_at(&daemon.mount_point);
    assert_eq!(old_devices.len(), 1, "{old_devices:?}");
    let containers: Vec<(Container, u64)> =
        [("upgrade-a", 256), ("upgrade-b", 384), ("upgrade-c", 128)]
            .into_iter()
            .map(|(label, mib)| {
                (
                    Container::start_with_pause(label, &daemon.mount_point, mib, ":"),
                    mib,
                )
            })
            .collect();
    sleep(Duration::from_millis(300));

    let mut previous = KillOnDrop(daemon.start_successor());
    let moved = |log: &str, container: &Container| {
        log.lines().any(|l| {
            l.contains("moved a container's cgview mounts to this daemon")
                && l.contains(&format!("cgroup=/{} ", container.cgroup.relative))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !containers.iter().all(|(c, _)| moved(&daemon.log_text(), c)) {
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        sleep(Duration::from_millis(20));
    }
    let at_handover: Vec<(u64, u64)> = containers.iter().map(|(c, _)| c.counts()).collect();

    // The previous daemon, stopped now, leaves the mount point (no longer its own) alone and exits;
    // every container keeps reading from the new one.
    let status = stop_process(&mut previous.0, "TERM")
        .expect("the old daemon did not exit within 10 s of SIGTERM");
    assert!(status.success(), "{status}\n{}", daemon.log_text());
    let new_devices = cgview_devices_at(&daemon.mount_point);
    assert_eq!(new_devices.len(), 1, "{new_devices:?}");
    assert_ne!(
        new_devices, old_devices,
        "the mount point is still the old daemon's"
    );
    sleep(Duration::from_millis(1000));

    for ((container, mib), (rounds_then, _)) in containers.iter().zip(&at_handover) {
        let (rounds, failed) = container.counts();
        eprintln!("upgrade: {failed} of {rounds} rounds failed in the {mib} MiB container");
        assert_eq!(
            failed, 0,
            "{} of {rounds} rounds failed in the {mib} MiB container during the upgrade (status {:?}):\n{}",
            failed,
            container.status(),
            container.errors()
        );
        assert!(
            rounds > rounds_then + 20,
            "the reader stalled after the old daemon stopped: {rounds_then} -> {rounds}"
        );
        assert_eq!(container.status(), format!("MemTotal: {} kB", mib * 1024));
    }
    let (healthy, report) = health(&daemon.mount_point);
    assert!(healthy, "{report}");

    let status = daemon.stop_with("TERM");
    assert!(status.success(), "{status}");
    assert!(
        !is_mounted(&daemon.mount_point),
        "SIGTERM left a mount on the host"
    );
}

/// A host directory bind-mounted on itself and made shared, as kubelet prepares a `Bidirectional`
/// hostPath; unmounted (with whatever is left on it) when the test ends.
struct SharedHostPath {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SharedHostPath {
    fn new() -> SharedHostPath {
        let dir = tempfile::Builder::new()
            .prefix("cgview-k8s-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("var-lib-cgview");
        fs::create_dir_all(&path).unwrap();
        let shared = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "mount --bind {p} {p} && mount --make-shared {p}",
                p = path.display()
            ))
            .status()
            .unwrap();
        assert!(shared.success());
        SharedHostPath { path, _dir: dir }
    }
}

impl Drop for SharedHostPath {
    fn drop(&mut self) {
        while is_mounted(&self.path) {
            let status = Command::new("umount").arg("-l").arg(&self.path).status();
            if !status.is_ok_and(|s| s.success()) {
                break;
            }
        }
    }
}

/// `cgview mount` in a pod of its own: a new mount namespace whose copy of the host path stays a peer
/// of the host's (`Bidirectional`), so its mounts propagate to the host and to the other pod.
fn start_pod_daemon(host_path: &Path, log: &Path) -> KillOnDrop {
    let mut args = vec!["mount", host_path.to_str().unwrap()];
    args.extend(WITHOUT_KEEPER);
    start_pod_container(&args, log)
}

fn wait_for_log(log: &Path, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(log).unwrap_or_default().contains(line) {
        assert!(
            Instant::now() < deadline,
            "no {line:?} within 10 s:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
        sleep(Duration::from_millis(20));
    }
}

/// The DaemonSet rolling update (`maxSurge: 1`): the new pod's daemon, in its own mount namespace, takes
/// over the shared host path from the old pod's; the host and the old pod see the new mount, containers
/// are moved, the old pod stops without unmounting anything, and no read fails.
#[test]
fn upgrade_between_pods_sharing_the_host_path() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "needs /bin/busybox (apt-get install busybox-static)"
    );
    let host = SharedHostPath::new();
    let logs = tempfile::tempdir().unwrap();
    let (old_log, new_log) = (logs.path().join("old.log"), logs.path().join("new.log"));
    let mut old_pod = start_pod_daemon(&host.path, &old_log);
    wait_for_log(&old_log, "serving");
    let old_devices = cgview_devices_at(&host.path);
    assert_eq!(
        old_devices.len(),
        1,
        "the old pod's mount did not reach the host"
    );

    let containers: Vec<(Container, u64)> = [("pods-a", 256), ("pods-b", 192)]
        .into_iter()
        .map(|(label, mib)| {
            (
                Container::start_with_pause(label, &host.path, mib, ":"),
                mib,
            )
        })
        .collect();
    sleep(Duration::from_millis(300));

    let _new_pod = start_pod_daemon(&host.path, &new_log);
    wait_for_log(&new_log, "took over from the running cgview");
    for (container, _) in &containers {
        wait_for_log(&new_log, &format!("cgroup=/{} ", container.cgroup.relative));
    }
    let new_devices = cgview_devices_at(&host.path);
    assert_eq!(new_devices.len(), 1, "host: {new_devices:?}");
    assert_ne!(
        new_devices, old_devices,
        "the host still sees the old pod's mount"
    );

    let status = stop_process(&mut old_pod.0, "TERM").expect("the old pod did not stop");
    assert!(status.success(), "{status}");
    assert_eq!(
        cgview_devices_at(&host.path),
        new_devices,
        "stopping the old pod changed the host's mount"
    );
    sleep(Duration::from_millis(700));
    for (container, mib) in &containers {
        let (rounds, failed) = container.counts();
        eprintln!("pods: {failed} of {rounds} rounds failed in the {mib} MiB container");
        assert_eq!(failed, 0, "{}", container.errors());
        assert_eq!(container.status(), format!("MemTotal: {} kB", mib * 1024));
    }
    assert!(fs::read_to_string(host.path.join("proc/meminfo"))
        .unwrap()
        .contains("MemTotal"));
}

/// kubelet's side of a deployment: a pod whose mount namespace receives the host path with slave
/// propagation (`HostToContainer`), set up *before* the daemon mounts. The daemon, in a mount namespace
/// of its own, mounts on the shared host path; the mount propagates into the pod, whose processes read
/// their own limits through it; and after a take-over the pod sees the successor's mount.
#[test]
fn pod_with_host_to_container_propagation_sees_the_daemons_mount() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let host = SharedHostPath::new();
    let logs = tempfile::tempdir().unwrap();
    let pod_view = logs.path().join("pod-view");
    fs::create_dir_all(&pod_view).unwrap();
    let cgroup = TestCgroup::new("k8s-pod", &["memory"]);
    cgroup.set("memory", "memory.limit_in_bytes", &(320 * MIB).to_string());
    // The pod: its own mount namespace, everything a slave of the host's, the host path bound in with
    // rslave; it waits for the daemon's files to appear, then reports what it reads, twice.
    let report = logs.path().join("report");
    let script = format!(
        "mount --make-rslave / && mount --rbind {host} {view} && mount --make-rslave {view} && \
         touch {ready} && \
         for i in $(seq 200); do [ -e {view}/proc/meminfo ] && break; sleep 0.05; done; \
         head -n 1 {view}/proc/meminfo > {report}.tmp && mv {report}.tmp {report}.1; \
         while [ ! -e {go} ]; do sleep 0.05; done; \
         head -n 1 {view}/proc/meminfo > {report}.2; grep ' {view} ' /proc/self/mountinfo > {report}.mounts",
        host = host.path.display(),
        view = pod_view.display(),
        ready = logs.path().join("pod-ready").display(),
        go = logs.path().join("go").display(),
        report = report.display(),
    );
    let pod = spawn_in_cgroup(
        &cgroup,
        "--mount --propagation unchanged",
        &script,
        fs::File::create(logs.path().join("pod.err"))
            .unwrap()
            .into(),
    );
    let mut pod = KillOnDrop(pod);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logs.path().join("pod-ready").exists() {
        assert!(Instant::now() < deadline, "the pod never set up its view");
        sleep(Duration::from_millis(20));
    }

    let old_log = logs.path().join("old.log");
    let mut old_pod = start_pod_daemon(&host.path, &old_log);
    wait_for_log(&old_log, "serving");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !report.with_extension("1").exists() {
        assert!(Instant::now() < deadline, "the pod never read");
        sleep(Duration::from_millis(20));
    }
    let first = fs::read_to_string(report.with_extension("1")).unwrap();
    assert_eq!(
        first.split_whitespace().collect::<Vec<_>>(),
        ["MemTotal:", "327680", "kB"],
        "the pod did not get the daemon's mount, or not its own view"
    );

    let new_log = logs.path().join("new.log");
    let _new_pod = start_pod_daemon(&host.path, &new_log);
    wait_for_log(&new_log, "took over from the running cgview");
    assert!(stop_process(&mut old_pod.0, "TERM")
        .expect("the old pod did not stop")
        .success());
    fs::write(logs.path().join("go"), "").unwrap();
    let status = pod.0.wait().unwrap();
    assert!(
        status.success(),
        "{}",
        fs::read_to_string(logs.path().join("pod.err")).unwrap_or_default()
    );
    let second = fs::read_to_string(report.with_extension("2")).unwrap();
    assert!(
        second.starts_with("MemTotal:") && second.contains("327680"),
        "{second}"
    );
    let mounts = fs::read_to_string(report.with_extension("mounts")).unwrap();
    let new_device = cgview_devices_at(&host.path);
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" - fuse.cgview ") && l.contains(&format!(" {} ", new_device[0]))),
        "the pod does not see the successor's mount ({new_device:?}):\n{mounts}"
    );
}

/// Two instances on two mount points, each with its own container: stopping one leaves its container's
/// binds dead, and neither `health --repair` nor a restart of the other moves that container to it (its
/// view would then come from an instance its runtime never chose); the stopped instance's own restart
/// repairs it. `health` of the running instance reports only its own containers and passes.
#[test]
fn instances_never_take_each_others_containers() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "needs /bin/busybox (apt-get install busybox-static)"
    );
    let mut ours = Daemon::start(&[], WITHOUT_KEEPER);
    let mut theirs = Daemon::start(&[], WITHOUT_KEEPER);
    let our_container = Container::start("own-a", &ours, 256);
    let their_container = Container::start("own-b", &theirs, 384);

    let status = theirs.stop_with("TERM");
    assert!(status.success(), "{status}");
    their_container.wait_for("ERR", Duration::from_secs(5));

    let output = Command::new(BIN)
        .args(["health", "--repair"])
        .arg(&ours.mount_point)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "health fails for another instance's dead binds:\n{report}"
    );
    let stays_dead = |what: &str| {
        sleep(Duration::from_millis(500));
        assert_eq!(
            their_container.status(),
            "ERR",
            "{what} moved the stopped instance's container to this one"
        );
    };
    stays_dead("health --repair");

    let mut child = ours.take_child();
    child.kill().unwrap();
    child.wait().unwrap();
    our_container.wait_for("ERR", Duration::from_secs(5));
    ours.respawn();
    our_container.wait_for("MemTotal: 262144 kB", Duration::from_secs(2));
    stays_dead("a restart");
    let log = ours.log_text();
    assert!(
        !log.contains(&format!("cgroup=/{} ", their_container.cgroup.relative)),
        "{log}"
    );

    theirs.respawn();
    their_container.wait_for("MemTotal: 393216 kB", Duration::from_secs(2));
    let (healthy, report) = health(&theirs.mount_point);
    assert!(healthy, "{report}");
}

/// A container of a pod: `cgview <args...>` in a mount namespace of its own whose copy of the host path
/// stays a peer of the host's (`Bidirectional`), logging to `log`.
fn start_pod_container(args: &[&str], log: &Path) -> KillOnDrop {
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "unchanged", BIN])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

/// A reader that keeps `files` open and rereads them with `pread(fd, .., 0)` every 20 ms until `stop`
/// exists, then prints how many reads it made and the errors it got.
fn pread_reader(files: &[PathBuf], stop: &Path) -> Child {
    let script = r#"
import os, sys, time
stop, files = sys.argv[1], sys.argv[2:]
fds = [os.open(f, os.O_RDONLY) for f in files]
reads, errors = 0, []
while not os.path.exists(stop):
    for fd in fds:
        try:
            if not os.pread(fd, 65536, 0).startswith(b"MemTotal:") and fd == fds[0]:
                errors.append("wrong meminfo")
            reads += 1
        except OSError as e:
            errors.append(str(e))
    time.sleep(0.02)
print(reads, len(errors), errors[:3])
"#;
    Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(stop)
        .args(files)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The DaemonSet's rollout with keepers (daemonset/daemonset.yaml): each pod runs a daemon and a keeper
/// sharing the host's keeper socket. The new pod's keeper stands by behind the old one's, its daemon
/// takes the connection over, the old pod is deleted (its idle daemon and its keeper stopped) and the
/// new keeper takes the socket over; then the new pod's daemon container restarts. Files kept open
/// across all of it keep answering, and the containers' own reads never fail.
#[test]
fn rollout_between_pods_with_keepers_keeps_open_files() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "needs /bin/busybox (apt-get install busybox-static)"
    );
    let host = SharedHostPath::new();
    // Whatever happens, no daemon or keeper of this host path outlives the test (declared after the
    // host path, so dropped before it is unmounted).
    let _cleanup = KillPodsOnDrop(host.path.clone());
    let work = tempfile::tempdir().unwrap();
    let socket = work.path().join("keeper.sock");
    let socket_arg = socket.to_str().unwrap();
    let mount_point = host.path.to_str().unwrap();
    let keeper_args = ["keeper", mount_point, "--socket", socket_arg];
    let daemon_args = [
        "mount",
        mount_point,
        "--connection-holder",
        "keeper",
        "--keeper-socket",
        socket_arg,
    ];
    let log = |name: &str| work.path().join(format!("{name}.log"));
    let text = |name: &str| fs::read_to_string(log(name)).unwrap_or_default();

    let _old_keeper = start_pod_container(&keeper_args, &log("old-keeper"));
    wait_for_log(&log("old-keeper"), "keeping the FUSE connection");
    let mut old_daemon = start_pod_container(&daemon_args, &log("old-daemon"));
    wait_for_log(&log("old-daemon"), "serving");
    let container = Container::start_with_pause("rollout", &host.path, 288, "sleep 0.02");
    let stop = work.path().join("stop");
    let reader = pread_reader(
        &[host.path.join("proc/meminfo"), host.path.join("proc/stat")],
        &stop,
    );
    sleep(Duration::from_millis(300));

    let mut new_keeper = start_pod_container(&keeper_args, &log("new-keeper"));
    wait_for_log(&log("new-keeper"), "standing by");
    let mut new_daemon = start_pod_container(&daemon_args, &log("new-daemon"));
    wait_for_log(&log("new-daemon"), "took over from the running cgview");
    wait_for_log(&log("old-daemon"), "superseded");
    sleep(Duration::from_millis(300));

    // The old pod is deleted: both its containers get SIGTERM.
    let status = stop_process(&mut old_daemon.0, "TERM").expect("the old daemon did not stop");
    assert!(status.success(), "{status}: {}", text("old-daemon"));
    drop(_old_keeper);
    wait_for_log(&log("new-keeper"), "keeping the FUSE connection");
    sleep(Duration::from_millis(700));

    // The new pod's daemon container restarts (a crash).
    new_daemon.0.kill().unwrap();
    new_daemon.0.wait().unwrap();
    let _restarted = start_pod_container(&daemon_args, &log("restarted-daemon"));
    wait_for_log(
        &log("restarted-daemon"),
        "resumed the FUSE connection an earlier cgview left",
    );
    sleep(Duration::from_millis(500));

    fs::write(&stop, "").unwrap();
    let output = reader.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!("rollout: pread reader (reads, errors, first errors): {report}");
    let mut fields = report.split_whitespace();
    let reads: u64 = fields.next().unwrap_or("0").parse().unwrap_or(0);
    let errors = fields.next().unwrap_or("?");
    assert!(reads > 100, "{report}");
    assert_eq!(
        errors,
        "0",
        "open files failed across the rollout: {report}\n{}\n{}",
        text("new-keeper"),
        text("new-daemon")
    );
    let (rounds, failed) = container.counts();
    eprintln!("rollout: {failed} of {rounds} container rounds failed");
    assert_eq!(
        failed,
        0,
        "{}\n{}",
        container.errors(),
        [
            "old-keeper",
            "old-daemon",
            "new-keeper",
            "new-daemon",
            "restarted-daemon"
        ]
        .map(|name| format!("== {name}\n{}", text(name)))
        .join("\n")
    );
    assert_eq!(container.status(), format!("MemTotal: {} kB", 288 * 1024));
    let _ = stop_process(&mut new_keeper.0, "KILL");
}

/// Kills the daemons and keepers of a host path when dropped.
struct KillPodsOnDrop(PathBuf);

impl Drop for KillPodsOnDrop {
    fn drop(&mut self) {
        kill_daemons_and_keepers(&self.0);
    }
}
