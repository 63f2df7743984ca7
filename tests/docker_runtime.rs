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

/// `cgview docker-args`' words for `mount_point`, and whether it succeeded.
fn docker_args_words(mount_point: &Path, extra: &[&str]) -> (bool, Vec<String>, String) {
    let printed = Command::new(BIN)
        .arg("docker-args")
        .args(extra)
        .arg(mount_point)
        .output()
        .unwrap();
    let words = String::from_utf8(printed.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    (
        printed.status.success(),
        words,
        String::from_utf8_lossy(&printed.stderr).into_owned(),
    )
}

/// Everything below `dir`, as paths relative to it.
fn entries_below(dir: &Path) -> Vec<String> {
    let listed = run_sh(&format!(
        "cd {} && find . -mindepth 1 | sort",
        dir.display()
    ));
    listed.lines().map(str::to_owned).collect()
}

/// Removes a container by name when dropped.
struct Removed(String);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

/// What `cgview docker-args` leaves out because runc refuses it: a bind over `/proc/vmstat` or
/// `/proc/pressure/*` fails the container's start (runc allows only a list of `/proc` files), while the
/// same bind over `/proc/meminfo` starts. When a runc accepts them, this fails: add them to docker-args.
#[test]
fn runc_refuses_the_proc_files_docker_args_leaves_out() {
    if !needs_met(MOUNT_AND_CGROUPS) || !needs_met(&[Need::Docker]) {
        return;
    }
    import_image();
    let daemon = Daemon::start(&[], &[]);
    let (served, words, stderr) = docker_args_words(&daemon.mount_point, &[]);
    assert!(served, "{stderr}");
    assert!(
        !words
            .iter()
            .any(|w| w.contains("vmstat") || w.contains("pressure")),
        "{words:?}"
    );
    let run = |path: &str| {
        let name = unique_name("runc-proc");
        let _removed = Removed(name.clone());
        let bind = format!(
            "type=bind,source={},target=/{path},readonly",
            daemon.path(path).display()
        );
        docker(&[
            "run",
            "--rm",
            "--name",
            &name,
            "--network",
            "none",
            "--mount",
            &bind,
            IMAGE,
            "head",
            "-n",
            "1",
            &format!("/{path}"),
        ])
    };
    let accepted = run("proc/meminfo");
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    let mut refused = vec!["proc/vmstat"];
    if daemon.path("proc/pressure/memory").exists() {
        refused.push("proc/pressure/memory");
    }
    for path in refused {
        let output = run(path);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "runc accepted /{path}: {stderr}");
        assert!(stderr.contains("inside /proc"), "/{path}: {stderr}");
    }
}

/// With cgview stopped, `docker run $(cgview docker-args) ...` (the README's line, through a real shell
/// substitution, even under `set -e`) does not start a container, and `docker restart` of one started
/// while it served fails: neither creates anything under the mount point. The `-v` form users may still
/// have in scripts does litter it, and the next `cgview mount` clears that and serves.
#[test]
fn docker_fails_closed_while_cgview_does_not_serve() {
    if !needs_met(MOUNT_AND_CGROUPS) || !needs_met(&[Need::Docker]) {
        return;
    }
    import_image();
    let mut daemon = Daemon::start(&[], WITHOUT_KEEPER);
    let mount_point = daemon.mount_point.clone();
    let (served, words, stderr) = docker_args_words(&mount_point, &[]);
    assert!(served, "{stderr}");
    assert!(words.iter().all(|w| !w.contains("NOT-SERVED")));
    let name = unique_name("closed");
    let _container = Removed(name.clone());
    let mut run: Vec<&str> = vec![
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "-m",
        "160m",
    ];
    run.extend(words.iter().map(String::as_str));
    run.extend([IMAGE, "sleep", "3600"]);
    let started = docker(&run);
    assert!(started.status.success(), "{started:?}");
    let shown = docker(&["exec", &name, "head", "-n", "1", "/proc/meminfo"]);
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout)
            .split_whitespace()
            .nth(1),
        Some("163840")
    );

    assert!(daemon.stop_with("TERM").success());
    assert!(entries_below(&mount_point).is_empty());
    let (served, words, stderr) = docker_args_words(&mount_point, &[]);
    assert!(!served);
    assert!(stderr.contains("not served"), "{stderr}");
    assert!(words.iter().any(|w| w.contains("NOT-SERVED-BY-CGVIEW")));

    // The README's command, as a user's script runs it.
    let unserved_name = unique_name("unserved");
    let _unserved = Removed(unserved_name.clone());
    let script = format!(
        "set -e; docker run --rm --name {unserved_name} --network none $({BIN} docker-args {mnt}) {IMAGE} \
         head -n 1 /proc/meminfo",
        mnt = mount_point.display()
    );
    let refused = Command::new("bash").args(["-c", &script]).output().unwrap();
    let refused_err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a container started while cgview did not serve: {}",
        String::from_utf8_lossy(&refused.stdout)
    );
    assert!(
        refused_err.contains("NOT-SERVED-BY-CGVIEW"),
        "Docker's refusal should name the missing source: {refused_err}"
    );
    let restarted = docker(&["restart", "-t", "1", &name]);
    assert!(
        !restarted.status.success(),
        "docker restart started the container with no cgview serving"
    );
    eprintln!(
        "docker: refused run: {}; refused restart: {}",
        refused_err.lines().next().unwrap_or_default(),
        String::from_utf8_lossy(&restarted.stderr).trim()
    );
    assert_eq!(
        entries_below(&mount_point),
        Vec::<String>::new(),
        "Docker created something under the mount point"
    );

    // The old `-v` form creates the sources as directories (and the container fails or sees them).
    let littering = unique_name("littering");
    let _littering = Removed(littering.clone());
    let meminfo_bind = format!("{}/proc/meminfo:/proc/meminfo:ro", mount_point.display());
    let _ = docker(&[
        "run",
        "--rm",
        "--name",
        &littering,
        "--network",
        "none",
        "-v",
        &meminfo_bind,
        IMAGE,
        "true",
    ]);
    assert!(
        mount_point.join("proc/meminfo").is_dir(),
        "docker -v did not create the source: {:?}",
        entries_below(&mount_point)
    );
    daemon.respawn();
    assert!(daemon
        .log_text()
        .contains("removed empty directories a container runtime made"));
    let started = docker(&["start", &name]);
    assert!(started.status.success(), "{started:?}");
    let shown = docker(&["exec", &name, "head", "-n", "1", "/proc/meminfo"]);
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout)
            .split_whitespace()
            .nth(1),
        Some("163840")
    );
}

/// Removes a file when dropped.
struct RemovedFile(PathBuf);

impl Drop for RemovedFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The flags the README gives the agent and keeper containers (before the image), with the mount point
/// `MNT`. The test checks the README still says exactly this.
const AGENT_FLAGS: &str = "--restart always --pid=host --cap-add SYS_ADMIN --cap-add SYS_PTRACE \
    --device /dev/fuse --security-opt apparmor=unconfined --security-opt seccomp=unconfined \
    -v /sys/fs/cgroup:/sys/fs/cgroup:ro -v MNT:MNT:rshared -v /run/cgview:/run/cgview";

/// The cgview image built the offline way the README gives (`packaging/build-image.sh`), from the static
/// binary `tests/run.sh` built (`CGVIEW_STATIC_BINARY`), or one built here.
fn agent_image() -> String {
    let repo = env!("CARGO_MANIFEST_DIR");
    let binary = match std::env::var("CGVIEW_STATIC_BINARY") {
        Ok(binary) => binary,
        Err(_) => run_sh(&format!("{repo}/packaging/build-static.sh"))
            .trim()
            .to_owned(),
    };
    let built = Command::new(format!("{repo}/packaging/build-image.sh"))
        .arg("cgview-test/agent:latest")
        .env("CGVIEW_BINARY", Path::new(repo).join(&binary))
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    String::from_utf8(built.stdout).unwrap().trim().to_owned()
}

/// A mount point shared with the containers that mount there (`rshared` needs a shared mount; a host
/// whose `/` is private, as one without systemd, needs this step, as the README says).
struct SharedMountPoint {
    dir: tempfile::TempDir,
}

impl SharedMountPoint {
    fn new() -> SharedMountPoint {
        let dir = tempfile::Builder::new()
            .prefix("cgview-agent-")
            .tempdir()
            .unwrap();
        let path = dir.path().display();
        run_sh(&format!(
            "mount --bind {path} {path} && mount --make-shared {path}"
        ));
        SharedMountPoint { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SharedMountPoint {
    fn drop(&mut self) {
        // The FUSE mount (once its containers are gone) and the shared bind below it.
        for _ in 0..3 {
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// `docker run -d --name NAME AGENT_FLAGS IMAGE ARGS..` for the mount point `mount_point`.
fn run_agent_container(name: &str, mount_point: &Path, image: &str, args: &[&str]) {
    let flags = AGENT_FLAGS.replace("MNT", mount_point.to_str().unwrap());
    let mut command: Vec<&str> = vec!["run", "-d", "--name", name, "--network", "none"];
    command.extend(flags.split_whitespace());
    command.push(image);
    command.extend(args);
    let started = docker(&command);
    assert!(started.status.success(), "{started:?}");
}

fn wait_served(mount_point: &Path, agent: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let probe = Command::new(BIN)
            .arg("probe")
            .arg(mount_point)
            .output()
            .unwrap();
        if probe.status.success() {
            return;
        }
        if Instant::now() > deadline {
            let logs = docker(&["logs", agent]);
            panic!(
                "the agent container never served: {}\n{}",
                String::from_utf8_lossy(&probe.stderr),
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        sleep(Duration::from_millis(100));
    }
}

/// The image, run as the README says (an agent container, and a keeper container beside it), serves
/// other containers of the host; restarting the agent (`docker restart`, `docker kill` + `start`) fails
/// no read and stops no `top`. Without the keeper container, a restart of the agent repairs the
/// containers' mounts: reads fail only while it restarts.
#[test]
fn the_image_as_a_docker_agent_serves_and_restarts() {
    if !needs_met(MOUNT_AND_CGROUPS) || !needs_met(&[Need::Docker]) {
        return;
    }
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .unwrap()
        .replace("\\\n", " ");
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let documented = AGENT_FLAGS
        .replace("MNT", "/var/lib/cgview")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        readme.contains(&documented),
        "the README no longer gives the agent's flags: {documented}"
    );
    import_image();
    let image = agent_image();
    let mount_point = SharedMountPoint::new();
    let agent = unique_name("agent");
    let keeper = unique_name("keeper");
    let _agent = Removed(agent.clone());
    let _keeper = Removed(keeper.clone());
    let mnt = mount_point.path().to_str().unwrap();
    // A socket of the test's own, removed at its end: a keeper killed with its container leaves its
    // socket file behind (the next keeper on that path replaces it).
    let socket = format!("/run/cgview/{agent}.sock");
    let _socket = RemovedFile(PathBuf::from(&socket));
    run_agent_container(
        &keeper,
        mount_point.path(),
        &image,
        &["keeper", mnt, "--socket", &socket],
    );
    run_agent_container(
        &agent,
        mount_point.path(),
        &image,
        &["mount", mnt, "--keeper-socket", &socket],
    );
    wait_served(mount_point.path(), &agent);

    let (served, binds, stderr) = docker_args_words(mount_point.path(), &[]);
    assert!(served, "{stderr}");
    let work = tempfile::tempdir().unwrap();
    let containers: Vec<DockerContainer> = [("agent-a", 224), ("agent-b", 288)]
        .into_iter()
        .map(|(label, mib)| DockerContainer::start(label, &binds, mib, &work.path().join(label)))
        .collect();
    sleep(Duration::from_secs(1));

    // With the keeper container holding the connection: a restart and a kill lose nothing.
    let started = Instant::now();
    assert!(docker(&["restart", "-t", "5", &agent]).status.success());
    eprintln!(
        "docker: the agent restarted in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    sleep(Duration::from_secs(1));
    assert!(docker(&["kill", "-s", "KILL", &agent]).status.success());
    sleep(Duration::from_millis(500));
    assert!(docker(&["start", &agent]).status.success());
    wait_served(mount_point.path(), &agent);
    sleep(Duration::from_secs(2));
    for container in &containers {
        let (rounds, failed, line) = container.counts();
        eprintln!(
            "docker: {} behind an agent with a keeper: {failed} of {rounds} rounds failed",
            container.name
        );
        assert_eq!(
            failed,
            0,
            "{}",
            fs::read_to_string(container.out.join("err")).unwrap_or_default()
        );
        assert!(
            line.contains(&(container.limit_mib * 1024).to_string()),
            "{line}"
        );
        assert!(container.top_running(), "top exited in {}", container.name);
    }

    // The keeper container restarted while the agent serves: the agent starts a keeper of its own, the
    // restarted one stands behind it and takes over when the agent restarts.
    assert!(docker(&["restart", "-t", "5", &keeper]).status.success());
    sleep(Duration::from_secs(2));
    assert!(docker(&["restart", "-t", "5", &agent]).status.success());
    wait_served(mount_point.path(), &agent);
    sleep(Duration::from_secs(2));
    for container in &containers {
        let (rounds, failed, _) = container.counts();
        eprintln!(
            "docker: {} through a keeper restart and an agent restart: {failed} of {rounds} rounds failed",
            container.name
        );
        assert_eq!(
            failed,
            0,
            "{}",
            fs::read_to_string(container.out.join("err")).unwrap_or_default()
        );
        assert!(container.top_running(), "top exited in {}", container.name);
    }

    // The agent alone (its own keeper dies with its container): a restart repairs the containers.
    assert!(docker(&["rm", "-f", &keeper]).status.success());
    sleep(Duration::from_secs(2));
    let before: Vec<u64> = containers.iter().map(|c| c.counts().1).collect();
    assert!(docker(&["restart", "-t", "5", &agent]).status.success());
    wait_served(mount_point.path(), &agent);
    sleep(Duration::from_secs(2));
    let settled: Vec<(u64, u64)> = containers
        .iter()
        .map(|c| {
            let (rounds, failed, _) = c.counts();
            (rounds, failed)
        })
        .collect();
    sleep(Duration::from_secs(1));
    for ((container, (rounds, failed)), earlier) in containers.iter().zip(&settled).zip(&before) {
        let (later_rounds, later_failed, line) = container.counts();
        eprintln!(
            "docker: {} behind the agent alone: {} rounds failed in its restart",
            container.name,
            failed - earlier
        );
        assert!(later_rounds > *rounds, "{} stopped reading", container.name);
        assert_eq!(
            later_failed, *failed,
            "{} still fails after the repair",
            container.name
        );
        assert!(
            line.contains(&(container.limit_mib * 1024).to_string()),
            "{line}"
        );
    }
    let logs = docker(&["logs", &agent]);
    assert!(
        String::from_utf8_lossy(&logs.stderr).contains("repaired a container's dead cgview mounts"),
        "the restarted agent did not repair the containers"
    );
}
