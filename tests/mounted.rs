//! The mounted suite: a real `cgview mount`, real v1 cgroups on this hybrid host, and reads from processes
//! inside them and inside simulated containers (new mount + pid namespaces with bind mounts, as a runtime
//! makes them). Needs root and /dev/fuse.

mod mounted_support;

use mounted_support::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

fn render(pid_expr: &str, path: &str) -> String {
    render_with("", pid_expr, path)
}

fn render_with(options: &str, pid_expr: &str, path: &str) -> String {
    format!("{BIN} render {options} --pid {pid_expr} {path}")
}

#[test]
fn meminfo_memory_limit_is_mem_total_through_mount_and_render() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let cgroup = TestCgroup::new("mem", &["memory"]);
    cgroup.set("memory", "memory.limit_in_bytes", &(512 * MIB).to_string());

    let mnt = daemon.path("proc/meminfo");
    let out = sections(&cgroup.run(&format!(
        "echo ==mount==; cat {}; echo ==render==; {}",
        mnt.display(),
        render("$$", "proc/meminfo")
    )));
    let (mounted, rendered) = (&out["mount"], &out["render"]);
    assert_eq!(meminfo_kb(mounted, "MemTotal"), 524_288);
    assert!(meminfo_kb(mounted, "MemFree") <= 524_288);
    assert!(meminfo_kb(mounted, "MemAvailable") <= 524_288);
    assert_eq!(meminfo_kb(rendered, "MemTotal"), 524_288);
    assert_eq!(meminfo_names(mounted), meminfo_names(rendered));
    let host = fs::read_to_string("/proc/meminfo").unwrap();
    assert_eq!(meminfo_names(mounted), meminfo_names(&host));
}

/// `name -> value` of a `/proc/vmstat` text.
fn vmstat_values(text: &str) -> std::collections::HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(name, value)| (name, value.trim().parse().unwrap()))
        .collect()
}

fn vmstat_names(text: &str) -> Vec<&str> {
    text.lines().map(|l| l.split(' ').next().unwrap()).collect()
}

#[test]
fn vmstat_is_the_cgroups_through_mount_and_render_and_the_hosts_for_the_root() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let cgroup = TestCgroup::new("vmstat", &["memory"]);
    cgroup.set("memory", "memory.limit_in_bytes", &(128 * MIB).to_string());
    let mnt = daemon.path("proc/vmstat");
    let out = sections(&cgroup.run(&format!(
        "echo $$ > {CGROUP_ROOT}/blkio/cgroup.procs\n\
         echo ==kernel==; grep '^total_pgfault ' {stat}\n\
         echo ==mount==; cat {m}; echo ==meminfo==; cat {i}; echo ==render==; {r}",
        stat = cgroup.dir("memory").join("memory.stat").display(),
        m = mnt.display(),
        i = daemon.path("proc/meminfo").display(),
        r = render("$$", "proc/vmstat")
    )));
    let host = fs::read_to_string("/proc/vmstat").unwrap();
    let (mounted, rendered) = (vmstat_values(&out["mount"]), vmstat_values(&out["render"]));
    assert_eq!(vmstat_names(&out["mount"]), vmstat_names(&host));
    assert_eq!(vmstat_names(&out["render"]), vmstat_names(&host));
    // A fresh cgroup: a few hundred faults of its shell and cat, nothing like the host's since boot.
    let host_values = vmstat_values(&host);
    // The kernel flushes a cgroup's event counts lazily (at most every 2 s for small counts), so a fresh
    // cgroup may still read 0: what the container is shown is never below what the kernel said just before.
    let kernel_pgfault: u64 = out["kernel"]
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no total_pgfault: {}", out["kernel"]));
    assert!(mounted["pgfault"] >= kernel_pgfault, "{}", out["mount"]);
    assert!(mounted["pgfault"] < host_values["pgfault"] / 10);
    // Later, so at least as many faults (render is another process of the same cgroup).
    assert!(rendered["pgfault"] >= mounted["pgfault"]);
    let page_kb = 4;
    assert!(mounted["nr_free_pages"] * page_kb <= 128 * 1024);
    let mem_free = meminfo_kb(&out["meminfo"], "MemFree");
    assert!(
        (mounted["nr_free_pages"] * page_kb).abs_diff(mem_free) < 1024,
        "nr_free_pages {} vs MemFree {mem_free} kB",
        mounted["nr_free_pages"]
    );
    // No blkio cgroup of its own: no block I/O is the container's.
    assert_eq!((mounted["pgpgin"], mounted["pgpgout"]), (0, 0));

    // A caller in the root memory cgroup reads the host's file.
    let root = run_sh(&format!(
        "echo $$ > {CGROUP_ROOT}/memory/cgroup.procs; cat {}",
        mnt.display()
    ));
    let root_values = vmstat_values(&root);
    assert_eq!(vmstat_names(&root), vmstat_names(&host));
    assert!(root_values["pgfault"] >= host_values["pgfault"]);
}

#[test]
fn meminfo_parent_limit_lower_than_child_wins() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let parent = TestCgroup::new("memparent", &["memory"]);
    parent.set("memory", "memory.limit_in_bytes", &(256 * MIB).to_string());
    let child = parent.child("ctr");
    child.set("memory", "memory.limit_in_bytes", &(512 * MIB).to_string());

    let text = child.run(&format!("cat {}", daemon.path("proc/meminfo").display()));
    assert_eq!(meminfo_kb(&text, "MemTotal"), 262_144);
}

/// (quota_us, cpuset) -> expected processor ids, for a 2-CPU host.
/// `render_options` are the daemon's view options, given to `cgview render` too.
fn check_cpu_view(
    daemon: &Daemon,
    render_options: &str,
    quota_us: Option<u64>,
    cpuset: Option<&str>,
    expected: &[u32],
) {
    let cgroup = TestCgroup::new("cpu", &["cpu", "cpuset"]);
    if let Some(quota) = quota_us {
        cgroup.set("cpu", "cpu.cfs_period_us", "100000");
        cgroup.set("cpu", "cpu.cfs_quota_us", &quota.to_string());
    }
    if let Some(cpus) = cpuset {
        cgroup.set("cpuset", "cpuset.cpus", cpus);
    }
    let out = sections(&cgroup.run(&format!(
        "echo ==cpuinfo==; cat {cpuinfo}; echo ==online==; cat {online}; \
         echo ==render-cpuinfo==; {r_cpuinfo}; echo ==render-online==; {r_online}",
        cpuinfo = daemon.path("proc/cpuinfo").display(),
        online = daemon.path("sys/devices/system/cpu/online").display(),
        r_cpuinfo = render_with(render_options, "$$", "proc/cpuinfo"),
        r_online = render_with(render_options, "$$", "sys/devices/system/cpu/online"),
    )));
    let label = format!("quota {quota_us:?}, cpuset {cpuset:?}");
    assert_eq!(cpuinfo_ids(&out["cpuinfo"]), expected, "{label}");
    let online_expected = match expected {
        [one] => one.to_string(),
        [first, .., last] => format!("{first}-{last}"),
        [] => String::new(),
    };
    assert_eq!(out["online"].trim(), online_expected, "{label}");
    assert_eq!(cpuinfo_ids(&out["render-cpuinfo"]), expected, "{label}");
    assert_eq!(out["render-online"].trim(), online_expected, "{label}");
}

#[test]
fn cpuinfo_and_online_follow_quota_and_cpuset() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let host_cpus = cpuinfo_ids(&fs::read_to_string("/proc/cpuinfo").unwrap());
    assert!(host_cpus.len() >= 2, "this test expects at least 2 CPUs");
    let daemon = Daemon::start(&[], &[]);
    check_cpu_view(&daemon, "", Some(50_000), None, &[0]);
    check_cpu_view(&daemon, "", Some(150_000), Some("0-1"), &[0, 1]);
    check_cpu_view(&daemon, "", Some(150_000), Some("1"), &[1]);
    check_cpu_view(&daemon, "", None, Some("1"), &[1]);
}

#[test]
fn cpuinfo_without_quota_awareness_shows_whole_cpuset() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &["--no-cpu-quota"]);
    check_cpu_view(
        &daemon,
        "--no-cpu-quota",
        Some(50_000),
        Some("0-1"),
        &[0, 1],
    );
}

#[test]
fn uptime_in_new_pid_namespace_is_its_age() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let cgroup = TestCgroup::new("uptime", &["cpu", "cpuacct"]);
    let out = cgroup.run(&format!(
        "unshare -p -f --mount-proc sh -c 'sleep 2; cat {}'",
        daemon.path("proc/uptime").display()
    ));
    let fields: Vec<f64> = out.split_whitespace().map(|f| f.parse().unwrap()).collect();
    assert_eq!(fields.len(), 2, "{out}");
    assert!((1.5..15.0).contains(&fields[0]), "container uptime {out}");
    assert!(fields[0] < host_uptime_secs() - 5.0 || host_uptime_secs() < 20.0);
    assert!(fields[1] >= 0.0);
    // Idle can never exceed the visible CPUs' wall time.
    assert!(fields[1] <= fields[0] * 2.0 + 0.01, "{out}");
}

#[test]
fn host_caller_in_root_cgroups_sees_host_files() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let enter_root = ["memory", "cpu", "cpuacct", "cpuset", "blkio"]
        .iter()
        .map(|c| format!("echo $$ > {CGROUP_ROOT}/{c}/cgroup.procs"))
        .collect::<Vec<_>>()
        .join("; ");
    let out = sections(&run_sh(&format!(
        "{enter_root}; echo ==meminfo==; cat {m}; echo ==cpuinfo==; cat {c}; echo ==online==; cat {o}; \
         echo ==uptime==; cat {u}",
        m = daemon.path("proc/meminfo").display(),
        c = daemon.path("proc/cpuinfo").display(),
        o = daemon.path("sys/devices/system/cpu/online").display(),
        u = daemon.path("proc/uptime").display(),
    )));
    let host_meminfo = fs::read_to_string("/proc/meminfo").unwrap();
    assert_eq!(
        meminfo_kb(&out["meminfo"], "MemTotal"),
        meminfo_kb(&host_meminfo, "MemTotal")
    );
    assert_eq!(
        meminfo_kb(&out["meminfo"], "SwapTotal"),
        meminfo_kb(&host_meminfo, "SwapTotal")
    );
    let host_cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap();
    assert_eq!(cpuinfo_ids(&out["cpuinfo"]), cpuinfo_ids(&host_cpuinfo));
    assert_eq!(
        out["online"],
        fs::read_to_string("/sys/devices/system/cpu/online").unwrap()
    );
    let served_up: f64 = out["uptime"]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((served_up - host_uptime_secs()).abs() < 2.0);
}

#[test]
fn diskstats_shows_own_direct_writes_only() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let work = tempfile::Builder::new()
        .prefix("cgview-io-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let device = disk_of(work.path());
    let writer = TestCgroup::new("io", &["blkio"]);
    let bystander = TestCgroup::new("io-idle", &["blkio"]);
    // On cgroup v1 (observed on 6.18 with mq-deadline) blkio statistics only count I/O in cgroups that
    // have a throttle rule on the device; a rule far above the disk's speed counts without limiting.
    for cgroup in [&writer, &bystander] {
        cgroup.set(
            "blkio",
            "blkio.throttle.write_bps_device",
            &format!("{device} 1099511627776"),
        );
    }
    let file = work.path().join("data");
    let text = writer.run(&format!(
        "dd if=/dev/zero of={} bs=1M count=8 oflag=direct conv=fsync 2>/dev/null; cat {}",
        file.display(),
        daemon.path("proc/diskstats").display()
    ));
    let line = diskstats_line(&text, &device)
        .unwrap_or_else(|| panic!("no line for {device} in the writer's diskstats:\n{text}"));
    let sectors_written: u64 = line[3 + 6].parse().unwrap();
    let writes: u64 = line[3 + 4].parse().unwrap();
    assert!(sectors_written >= 16_384, "{line:?}");
    assert!(writes >= 1, "{line:?}");
    let host_columns = diskstats_line(&fs::read_to_string("/proc/diskstats").unwrap(), &device)
        .unwrap()
        .len();
    assert_eq!(line.len(), host_columns);

    let idle = bystander.run(&format!("cat {}", daemon.path("proc/diskstats").display()));
    if let Some(line) = diskstats_line(&idle, &device) {
        assert_eq!(
            line[3 + 6],
            "0",
            "another cgroup sees the writer's bytes: {line:?}"
        );
    }
}

#[test]
fn simulated_container_tools_see_the_limits() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let cgroup = TestCgroup::new("ctr", &["memory", "cpu", "cpuacct", "cpuset", "blkio"]);
    cgroup.set("memory", "memory.limit_in_bytes", &(512 * MIB).to_string());
    cgroup.set("cpu", "cpu.cfs_period_us", "100000");
    cgroup.set("cpu", "cpu.cfs_quota_us", "150000");
    cgroup.set("cpuset", "cpuset.cpus", "0-1");
    let mnt = daemon.mount_point.display();
    let inner = format!(
        "set -e; \
         for f in meminfo cpuinfo uptime diskstats; do mount --bind {mnt}/proc/$f /proc/$f; done; \
         mount --bind {mnt}/sys/devices/system/cpu/online /sys/devices/system/cpu/online; \
         echo ==free==; free -k; \
         echo ==processors==; grep -c ^processor /proc/cpuinfo; \
         echo ==online==; cat /sys/devices/system/cpu/online; \
         echo ==getconf==; getconf _NPROCESSORS_ONLN; \
         echo ==python==; python3 -c 'import os; print(os.cpu_count())'; \
         echo ==uptime==; cat /proc/uptime"
    );
    let out = sections(&cgroup.run(&format!("unshare -m -p -f --mount-proc sh -c \"{inner}\"")));
    let mem_line = out["free"].lines().find(|l| l.starts_with("Mem:")).unwrap();
    let total: u64 = mem_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(total, 524_288, "{}", out["free"]);
    assert_eq!(out["processors"].trim(), "2");
    assert_eq!(out["online"].trim(), "0-1");
    // glibc's sysconf(_SC_NPROCESSORS_ONLN) parses /sys/devices/system/cpu/online.
    assert_eq!(out["getconf"].trim(), "2");
    assert_eq!(out["python"].trim(), "2");
    let up: f64 = out["uptime"]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(up < 10.0, "container uptime {up}");
}

#[test]
fn simulated_container_half_cpu_sees_one_cpu_through_glibc() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let cgroup = TestCgroup::new("ctr-half", &["cpu"]);
    cgroup.set("cpu", "cpu.cfs_period_us", "100000");
    cgroup.set("cpu", "cpu.cfs_quota_us", "50000");
    let inner = format!(
        "mount --bind {}/sys/devices/system/cpu/online /sys/devices/system/cpu/online && \
         getconf _NPROCESSORS_ONLN && nproc",
        daemon.mount_point.display()
    );
    let out = cgroup.run(&format!("unshare -m -p -f --mount-proc sh -c \"{inner}\""));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "getconf reads the served online list");
    // nproc asks sched_getaffinity(2): a quota is invisible to it, which no file system can change.
    assert_eq!(
        lines[1],
        std::thread::available_parallelism()
            .unwrap()
            .get()
            .to_string()
    );
}

#[test]
fn daemon_in_private_cgroup_namespace_resolves_callers() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let cgroup = TestCgroup::new("cgns", &["memory"]);
    cgroup.set("memory", "memory.limit_in_bytes", &(512 * MIB).to_string());
    for args in [&[][..], &["--keep-cgroup-namespace"][..]] {
        let daemon = Daemon::start(&["unshare", "-C"], args);
        let text = cgroup.run(&format!("cat {}", daemon.path("proc/meminfo").display()));
        assert_eq!(
            meminfo_kb(&text, "MemTotal"),
            524_288,
            "daemon args {args:?}: {}",
            daemon.log_text()
        );
    }
}

#[test]
fn mount_stops_cleanly_on_sigterm_and_sigint() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    for signal in ["TERM", "INT"] {
        // Without a keeper, the stop unmounts; with one, the keeper does once no daemon came back
        // within --resume-within.
        for (args, bound) in [
            (WITHOUT_KEEPER, Duration::ZERO),
            (&["--resume-within", "0.5"][..], Duration::from_millis(500)),
        ] {
            let mut daemon = Daemon::start(&[], args);
            let mount_point = daemon.mount_point.clone();
            assert!(is_mounted(&mount_point));
            let status = daemon.stop_with(signal);
            let stopped = Instant::now();
            assert!(
                status.success(),
                "SIG{signal}: {status}\n{}",
                daemon.log_text()
            );
            if !bound.is_zero() {
                assert!(
                    is_mounted(&mount_point),
                    "SIG{signal} did not leave the mount to the keeper"
                );
            }
            while is_mounted(&mount_point) && stopped.elapsed() < bound + Duration::from_secs(3) {
                sleep(Duration::from_millis(20));
            }
            assert!(
                !is_mounted(&mount_point),
                "SIG{signal} {args:?} left a mount:\n{}",
                daemon.log_text()
            );
        }
    }
}

#[test]
fn mount_rejects_regular_file_and_non_root() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let output = Command::new(BIN).arg("mount").arg(&file).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("regular file"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "mount",
        ])
        .arg(dir.path().join("mnt"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("root"), "{stderr}");
}

/// (A second daemon on a live mount point takes it over: `tests/restart_survival.rs`.)
#[test]
fn mount_replaces_dead_mount() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    // Without a keeper: with one, the connection would outlive the daemon (tests/reader_continuity.rs).
    let mut first = Daemon::start(&[], WITHOUT_KEEPER);
    let mount_point = first.mount_point.clone();

    let mut child = first.take_child();
    child.kill().unwrap();
    child.wait().unwrap();
    // What every container with a bind-mounted file sees until the mount is replaced.
    let error = fs::read_to_string(mount_point.join("proc/meminfo")).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::ENOTCONN), "{error}");

    let _restarted = RestartedDaemon::start(&mount_point);
    let text = fs::read_to_string(mount_point.join("proc/meminfo")).unwrap();
    assert!(text.contains("MemTotal"));
    drop(first);
}

/// A daemon started on an existing mount point (the dead-mount test's second daemon).
struct RestartedDaemon(std::process::Child, std::path::PathBuf);

impl RestartedDaemon {
    fn start(mount_point: &Path) -> RestartedDaemon {
        let child = Command::new(BIN)
            .arg("mount")
            .arg(mount_point)
            .args(WITHOUT_KEEPER)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let guard = RestartedDaemon(child, mount_point.to_owned());
        for _ in 0..500 {
            if fs::read_to_string(mount_point.join("proc/meminfo")).is_ok() {
                return guard;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the restarted daemon did not serve");
    }
}

impl Drop for RestartedDaemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
        if is_mounted(&self.1) {
            let _ = Command::new("umount").arg("-l").arg(&self.1).status();
        }
    }
}

#[test]
fn reads_behave_like_procfs() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let meminfo = daemon.path("proc/meminfo");
    let script = format!(
        r#"
import os, errno
path = "{path}"
fd = os.open(path, os.O_RDONLY)
chunks = []
while True:
    b = os.read(fd, 1)
    if not b:
        break
    chunks.append(b)
os.close(fd)
text = b"".join(chunks).decode()
for line in text.splitlines():
    name, value = line.split(":", 1)
    int(value.split()[0])
fd = os.open(path, os.O_RDONLY)
assert len(os.pread(fd, 100, 10)) > 0, "first read at an offset returned EOF"
assert os.pread(fd, 100, 10_000_000) == b"", "read past the end returned data"
os.close(fd)
try:
    os.open(path, os.O_WRONLY)
    raise SystemExit("opened for writing")
except OSError as e:
    assert e.errno in (errno.EROFS, errno.EACCES), e
print("ok", len(text.splitlines()))
"#,
        path = meminfo.display()
    );
    let out = run_sh(&format!("python3 -c '{}'", script.replace('\'', "'\\''")));
    assert!(out.starts_with("ok "), "{out}");

    let meta = fs::metadata(&meminfo).unwrap();
    assert!(meta.file_type().is_file() && !meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o777, 0o444);
    assert!(meta.blksize() >= 8192);
    let sorted_listing = |dir: &Path| {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    // This test process sees all CPUs: the mirrored directory lists exactly the host's entries.
    assert_eq!(
        sorted_listing(&daemon.path("sys/devices/system/cpu")),
        sorted_listing(Path::new("/sys/devices/system/cpu"))
    );
    assert_eq!(
        sorted_listing(&daemon.path("proc")),
        [
            "cpuinfo",
            "diskstats",
            "loadavg",
            "meminfo",
            "pressure",
            "slabinfo",
            "stat",
            "swaps",
            "uptime",
            "vmstat"
        ]
    );
    let slabinfo = fs::metadata(daemon.path("proc/slabinfo")).unwrap();
    assert_eq!(slabinfo.permissions().mode() & 0o777, 0o400);
}

#[test]
fn daemon_survives_many_short_lived_readers() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let cgroup = TestCgroup::new("churn", &["memory"]);
    cgroup.set("memory", "memory.limit_in_bytes", &(512 * MIB).to_string());
    let mnt = daemon.mount_point.display().to_string();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let script = format!(
                "{}; i=0; while [ $i -lt 200 ]; do cat {mnt}/proc/meminfo {mnt}/proc/cpuinfo {mnt}/proc/uptime \
                 {mnt}/proc/diskstats >/dev/null & i=$((i+1)); done; wait",
                cgroup.enter_script()
            );
            std::thread::spawn(move || run_sh(&script))
        })
        .collect();
    for reader in readers {
        reader.join().unwrap();
    }
    let text = cgroup.run(&format!("cat {mnt}/proc/meminfo"));
    assert_eq!(
        meminfo_kb(&text, "MemTotal"),
        524_288,
        "{}",
        daemon.log_text()
    );
}

/// procps keeps `/proc/meminfo` and `/proc/stat` open and rereads them after `lseek(fd, 0)`; procfs
/// renders afresh then, and so must cgview, or `top` and `free -s` show a frozen file.
#[test]
fn reread_from_offset_zero_renders_afresh() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let cgroup = TestCgroup::new("reread", &["memory"]);
    cgroup.set("memory", "memory.limit_in_bytes", &(512 * MIB).to_string());
    let script = format!(
        r#"
import os
fd = os.open("{meminfo}", os.O_RDONLY)
first = os.read(fd, 65536).decode()
with open("{limit}", "w") as f:
    f.write(str(256 << 20))
# A read that continues the first one comes from the same content.
assert os.read(fd, 65536) == b"", "the first content did not end"
# Past the cache's staleness bound (README, "Caching"): the reread must show the new limit.
import time
time.sleep(0.6)
os.lseek(fd, 0, os.SEEK_SET)
second = os.read(fd, 65536).decode()
print("first", first.splitlines()[0])
print("second", second.splitlines()[0])
"#,
        meminfo = daemon.path("proc/meminfo").display(),
        limit = cgroup.dir("memory").join("memory.limit_in_bytes").display()
    );
    let out = cgroup.run(&format!("python3 -c '{}'", script.replace('\'', "'\\''")));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "first MemTotal:         524288 kB",
            "second MemTotal:         262144 kB"
        ],
        "{out}"
    );
}

/// busybox `cat` (the `cat` of Alpine images) copies with `sendfile(2)`, which reads through the page cache
/// and stops at the inode's size: every container must get its own whole file, including after another
/// container read a shorter one.
#[test]
fn sendfile_readers_get_their_own_whole_file() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "needs /bin/busybox (apt-get install busybox-static)"
    );
    let daemon = Daemon::start(&[], &[]);
    let one = TestCgroup::new("sendfile-1cpu", &["cpuset"]);
    let two = TestCgroup::new("sendfile-2cpu", &["cpuset"]);
    one.set("cpuset", "cpuset.cpus", "0");
    two.set("cpuset", "cpuset.cpus", "0-1");
    let cpuinfo = daemon.path("proc/cpuinfo");
    let count = |cgroup: &TestCgroup| -> String {
        cgroup
            .run(&format!(
                "busybox cat {} | grep -c ^processor",
                cpuinfo.display()
            ))
            .trim()
            .to_owned()
    };
    for _ in 0..3 {
        assert_eq!(count(&one), "1");
        assert_eq!(
            count(&two),
            "2",
            "a shorter file read before truncated this one"
        );
    }
    let uptime = run_sh(&format!(
        "busybox cat {}",
        daemon.path("proc/uptime").display()
    ));
    assert_eq!(uptime.split_whitespace().count(), 2, "{uptime:?}");
}

/// The page cache behind `sendfile(2)` is one per inode, shared by every container: two containers
/// splicing the same file at once must still each get their own (before the fix one read in 40 to one
/// in 6 came out as the other container's cpuinfo).
#[test]
fn concurrent_sendfile_readers_never_see_another_containers_file() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "needs /bin/busybox (apt-get install busybox-static)"
    );
    let daemon = Daemon::start(&[], &[]);
    let one = TestCgroup::new("splice-race-1cpu", &["cpuset"]);
    let two = TestCgroup::new("splice-race-2cpu", &["cpuset"]);
    one.set("cpuset", "cpuset.cpus", "0");
    two.set("cpuset", "cpuset.cpus", "0-1");
    let cpuinfo = daemon.path("proc/cpuinfo");
    let mismatches = |cgroup: &TestCgroup, expected: u32| -> String {
        cgroup
            .run(&format!(
                "bad=0; i=0; while [ $i -lt 400 ]; do i=$((i+1)); \
                 n=$(busybox cat {} | grep -c ^processor); [ \"$n\" = {expected} ] || bad=$((bad+1)); \
                 done; echo $bad",
                cpuinfo.display()
            ))
            .trim()
            .to_owned()
    };
    let (one_bad, two_bad) = std::thread::scope(|scope| {
        let first = scope.spawn(|| mismatches(&one, 1));
        let second = scope.spawn(|| mismatches(&two, 2));
        (first.join().unwrap(), second.join().unwrap())
    });
    assert_eq!(
        (one_bad.as_str(), two_bad.as_str()),
        ("0", "0"),
        "reads of 400 that showed the wrong container's cpuinfo (1-CPU, 2-CPU)"
    );
}

/// cgview checks permissions itself (no `default_permissions`): an unprivileged reader gets the 0444
/// files and directories, and is refused the root-only ones, by `open` and by `access(2)` alike.
#[test]
fn permissions_are_enforced_without_default_permissions() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let as_nobody = |script: &str| -> std::process::Output {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["sh", "-c", script])
            .output()
            .unwrap()
    };
    let meminfo = daemon.path("proc/meminfo");
    let slabinfo = daemon.path("proc/slabinfo");
    let cpu_dir = daemon.path("sys/devices/system/cpu");
    let output = as_nobody(&format!(
        "head -n 1 {}; test -r {} && echo readable; ls {} | grep -c '^cpu[0-9]'",
        meminfo.display(),
        meminfo.display(),
        cpu_dir.display()
    ));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.starts_with("MemTotal:"), "{stdout}");
    assert!(stdout.contains("readable"), "{stdout}");

    let output = as_nobody(&format!(
        "test -r {s} && echo readable; cat {s}",
        s = slabinfo.display()
    ));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "nobody read slabinfo: {stdout}");
    assert!(!stdout.contains("readable"), "access(2) says readable");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    // Root still reads it.
    assert!(fs::read_to_string(&slabinfo).is_ok());
}

/// `cgview SUBCOMMAND MOUNTPOINT` for `daemon`'s mount point.
fn cgview_on(daemon: &Daemon, subcommand: &str) -> std::process::Output {
    cgview_on_with(daemon, &[subcommand])
}

/// `cgview ARGS.. MOUNTPOINT`.
fn cgview_on_with(daemon: &Daemon, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg(&daemon.mount_point)
        .output()
        .unwrap()
}

/// `docker run $(cgview docker-args) IMAGE`: the flags name only files that exist, each read-only over its
/// /proc or /sys path in the `--mount` form, and a container bound by exactly those flags sees its own
/// limits. With no daemon, or another file system at the mount point holding the same names (as LXCFS
/// does), the command fails with a reason and prints flags that bind a source that never exists.
#[test]
fn docker_args_bind_a_container_to_its_own_view() {
    // The stop below must leave the mount point unserved at once (with a keeper it waits for the
    // next daemon first).
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let mut daemon = Daemon::start(&[], WITHOUT_KEEPER);
    let output = cgview_on(&daemon, "docker-args");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let binds = mount_flags(&stdout);
    assert!(binds.len() >= 8, "{stdout}");
    let mut setup = String::from("set -e\n");
    for (source, target) in &binds {
        assert!(Path::new(source).exists(), "{source}");
        assert!(target.starts_with("/proc/") || target.starts_with("/sys/"));
        setup.push_str(&format!("mount --bind -o ro {source} {target}\n"));
    }
    assert!(binds.iter().any(|(_, target)| target == "/proc/meminfo"));
    assert!(!stdout.contains("NOT-SERVED"), "{stdout}");

    let without = cgview_on_with(&daemon, &["docker-args", "--without", "proc/uptime"]);
    assert!(without.status.success(), "{without:?}");
    let fewer = mount_flags(&String::from_utf8(without.stdout).unwrap());
    assert_eq!(fewer.len(), binds.len() - 1);
    assert!(!fewer.iter().any(|(_, target)| target == "/proc/uptime"));
    let typo = cgview_on_with(&daemon, &["docker-args", "--without", "proc/uptim"]);
    assert!(!typo.status.success() && typo.stdout.is_empty(), "{typo:?}");

    let cgroup = TestCgroup::new("docker-args", &["memory"]);
    cgroup.set("memory", "memory.limit_in_bytes", &(200 * MIB).to_string());
    let script = format!("{setup}head -n 1 /proc/meminfo; cat /sys/devices/system/cpu/online");
    let shown = cgroup.run(&format!(
        "unshare --mount --pid --fork --mount-proc sh -c '{}'",
        script.replace('\'', "'\\''")
    ));
    assert!(shown.starts_with("MemTotal:         204800 kB"), "{shown}");

    let probe = cgview_on(&daemon, "probe").status;
    assert!(probe.success());
    assert!(daemon.stop_with("TERM").success());
    assert_fails_closed(&daemon, "nothing is mounted there");

    // Another file system serving the same names (LXCFS has proc/meminfo and proc/uptime) is not cgview.
    let mount_point = daemon.mount_point.to_str().unwrap();
    run_sh(&format!(
        "mount -t tmpfs lookalike {mount_point} && mkdir -p {mount_point}/proc && \
         cp /proc/meminfo /proc/uptime {mount_point}/proc/"
    ));
    let _unmount = Unmount(daemon.mount_point.clone());
    assert_fails_closed(&daemon, "tmpfs is mounted there");
}

/// A mount point where Docker's `-v` made directories in place of the files while nothing served: the
/// next `cgview mount` removes them, saying so, and serves. One holding anything else is refused with
/// its contents named, and left as it was.
#[test]
fn mount_clears_what_a_runtime_left_and_refuses_anything_else() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let mut daemon = Daemon::start(&[], WITHOUT_KEEPER);
    assert!(daemon.stop_with("TERM").success());
    for left in [
        "proc/meminfo",
        "proc/uptime",
        "sys/devices/system/cpu",
        "sys/block",
    ] {
        fs::create_dir_all(daemon.path(left)).unwrap();
    }
    daemon.respawn();
    assert!(fs::read_to_string(daemon.path("proc/meminfo"))
        .unwrap()
        .starts_with("MemTotal:"));
    let log = daemon.log_text();
    assert!(
        log.contains("removed empty directories a container runtime made")
            && log.contains("proc/meminfo")
            && log.contains("sys/block"),
        "{log}"
    );
    assert!(daemon.stop_with("TERM").success());
    assert_eq!(fs::read_dir(&daemon.mount_point).unwrap().count(), 0);

    fs::create_dir_all(daemon.path("proc/meminfo")).unwrap();
    fs::write(daemon.path("notes.txt"), "mine").unwrap();
    let mut refused = Command::new(BIN)
        .args(["mount", "--connection-holder", "none"])
        .arg(&daemon.mount_point)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while refused.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = refused.kill();
            panic!("cgview mount served over a mount point holding a file");
        }
        sleep(Duration::from_millis(20));
    }
    let output = refused.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("notes.txt (a file)") && stderr.contains("did not put there"),
        "{stderr}"
    );
    assert!(!is_mounted(&daemon.mount_point));
    assert!(daemon.path("proc/meminfo").is_dir() && daemon.path("notes.txt").is_file());
}

/// The `(source, target)` of each `--mount type=bind,source=..,target=..,readonly` pair in `printed`.
fn mount_flags(printed: &str) -> Vec<(String, String)> {
    let words: Vec<&str> = printed.split_whitespace().collect();
    assert!(words.len() % 2 == 0, "{printed}");
    words
        .chunks(2)
        .map(|pair| {
            assert_eq!(pair[0], "--mount", "{printed}");
            let fields: Vec<&str> = pair[1].split(',').collect();
            assert_eq!(fields[0], "type=bind", "{printed}");
            assert_eq!(fields[3], "readonly", "{printed}");
            let source = fields[1].strip_prefix("source=").unwrap().to_owned();
            let target = fields[2].strip_prefix("target=").unwrap().to_owned();
            (source, target)
        })
        .collect()
}

/// `docker-args` and `probe` fail, saying `why`, and the flags printed bind a source that does not exist.
fn assert_fails_closed(daemon: &Daemon, why: &str) {
    let output = cgview_on(daemon, "docker-args");
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(why), "{stderr}");
    let binds = mount_flags(&String::from_utf8(output.stdout).unwrap());
    let sentinel = daemon.mount_point.join("NOT-SERVED-BY-CGVIEW");
    assert!(
        binds
            .iter()
            .any(|(source, _)| Path::new(source) == sentinel),
        "{binds:?}"
    );
    assert!(!sentinel.exists());
    let probe = cgview_on(daemon, "probe");
    assert!(!probe.status.success());
    assert!(String::from_utf8_lossy(&probe.stderr).contains(why));
}

/// Detaches a mount when dropped.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A pod as the admission webhook patches it, started the way kubelet and runc do: each injected hostPath
/// volume must be a regular file on the node (`type: File`), and is bind-mounted read-only at its mount
/// path. The container then sees its own limit; with the daemon gone, the File check fails instead of
/// the runtime putting a directory over /proc/meminfo.
#[test]
#[cfg(feature = "webhook")]
fn a_pod_patched_by_the_webhook_sees_its_own_view() {
    use cgview::webhook::policy::InjectionConfig;
    use serde_json::Value;
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let mut daemon = Daemon::start(&[], &[]);
    let config = InjectionConfig {
        mount_root: daemon.mount_point.to_str().unwrap().to_owned(),
        ..InjectionConfig::default()
    };
    let body = fs::read("tests/fixtures/webhook/plain-pod.json").unwrap();
    let reply = cgview::webhook::review::review(&config, &body);
    assert_eq!(reply.status, 200);
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    let encoded = answer["response"]["patch"].as_str().expect("a patch");
    let patch: k8s_openapi::ByteString = serde_json::from_value(Value::from(encoded)).unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch.0).unwrap();
    let request: Value = serde_json::from_slice(&body).unwrap();
    let mut pod = request["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch).unwrap();

    // kubelet: a hostPath volume of type File must be a regular file, or the pod does not start.
    let host_paths = |pod: &Value| -> Vec<(String, String)> {
        let volumes = pod["spec"]["volumes"].as_array().unwrap();
        let mounts = pod["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap();
        mounts
            .iter()
            .filter_map(|mount| {
                let volume = volumes.iter().find(|v| v["name"] == mount["name"])?;
                volume.get("hostPath")?;
                assert_eq!(volume["hostPath"]["type"], "File", "{volume}");
                assert_eq!(mount["readOnly"], true, "{mount}");
                Some((
                    volume["hostPath"]["path"].as_str()?.to_owned(),
                    mount["mountPath"].as_str()?.to_owned(),
                ))
            })
            .collect()
    };
    let binds = host_paths(&pod);
    assert_eq!(binds.len(), 8, "{binds:?}");
    let mut setup = String::from("set -e\n");
    for (host, container) in &binds {
        assert!(
            fs::metadata(host).unwrap().is_file(),
            "{host} is not a file"
        );
        setup.push_str(&format!("mount --bind -o ro {host} {container}\n"));
    }
    let cgroup = TestCgroup::new("webhook-pod", &["memory", "cpuset"]);
    cgroup.set("memory", "memory.limit_in_bytes", &(300 * MIB).to_string());
    cgroup.set("cpuset", "cpuset.mems", "0");
    cgroup.set("cpuset", "cpuset.cpus", "0");
    let script = format!(
        "{setup}head -n 1 /proc/meminfo; cat /sys/devices/system/cpu/online; grep -c ^processor /proc/cpuinfo"
    );
    let shown = cgroup.run(&format!(
        "unshare --mount --pid --fork --mount-proc sh -c '{}'",
        script.replace('\'', "'\\''")
    ));
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines, ["MemTotal:         307200 kB", "0", "1"], "{shown}");

    assert!(daemon.stop_with("TERM").success());
    for (host, _) in &binds {
        assert!(
            !Path::new(host).is_file(),
            "{host} still a file with no daemon"
        );
    }
}

fn http_get(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// `--metrics-addr`: reads by file, latency histograms, the busiest containers by cgroup, and /healthz,
/// scraped over TCP from the running daemon.
#[test]
fn metrics_count_reads_by_file_and_name_the_busiest_container() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &["--metrics-addr", "127.0.0.1:0"]);
    // Logged before the mount is announced as serving; the mount may answer a moment earlier.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let address = loop {
        let log = daemon.log_text();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("serving /metrics and /healthz"))
        {
            break line.split("address=").nth(1).unwrap().trim().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no metrics address in the log:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let cgroup = TestCgroup::new("metrics-reader", &["memory"]);
    cgroup.set("memory", "memory.limit_in_bytes", &(300 * MIB).to_string());
    cgroup.run(&format!(
        "for i in 1 2 3 4 5 6 7; do cat {} > /dev/null; done",
        daemon.path("proc/meminfo").display()
    ));
    let response = http_get(&address, "/metrics");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    let value = |prefix: &str| -> f64 {
        response
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{response}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(value("cgview_opens_total{file=\"proc/meminfo\"}") >= 7.0);
    assert!(value("cgview_open_duration_seconds_count{file=\"proc/meminfo\"}") >= 7.0);
    assert!(
        value(&format!(
            "cgview_container_requests_total{{cgroup=\"/{}\"}}",
            cgroup.relative
        )) >= 7.0
    );
    assert!(value("cgview_containers") >= 1.0);
    assert_eq!(value("cgview_mount_live"), 1.0);
    let health = http_get(&address, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200 OK"), "{health}");
    assert!(health.contains("live"));
}
