//! `cgview mount --io-uring`: requests arrive over FUSE over io_uring (one ring per CPU) instead of
//! `/dev/fuse`. Every kind of request the tree answers goes over the rings here, containers reading at
//! once each see their own file, and the daemon stops cleanly. Without the kernel's consent, or with
//! io_uring switched off, it falls back to `/dev/fuse` and says so. Upgrades, crashes and a rollout that
//! switches transports keep serving.
//!
//! A test binary of its own: the kernel switches the tests here set are global.

mod mounted_support;

use mounted_support::*;
use std::fs;
use std::path::Path;
use std::process::Command;

const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

const IO_URING_DISABLED: &str = "/proc/sys/kernel/io_uring_disabled";

/// The tests change global switches; they must not overlap.
static SWITCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn shell(script: &str) -> std::process::Output {
    Command::new("sh").args(["-c", script]).output().unwrap()
}

#[test]
fn every_request_is_answered_over_the_rings() {
    if !needs_met(MOUNT_AND_CGROUPS_OVER_IO_URING) {
        return;
    }
    let _serial = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let _switch = KernelSwitch::set(ENABLE_URING, "Y");
    let mut daemon = Daemon::start(&[], &["--io-uring", "--connection-holder", "none"]);
    let log = daemon.log_text();
    assert!(log.contains("io_uring"), "no ring started:\n{log}");
    assert!(!log.contains("serving over /dev/fuse"), "{log}");

    let small = TestCgroup::new("ring-small", &["memory", "cpuset"]);
    small.set("memory", "memory.limit_in_bytes", &(200 * MIB).to_string());
    small.set("cpuset", "cpuset.mems", "0");
    small.set("cpuset", "cpuset.cpus", "0");
    let m = daemon.mount_point.display().to_string();
    // LOOKUP, GETATTR (stat), OPEN, READ, RELEASE, OPENDIR, READDIR, RELEASEDIR, ACCESS (test -r),
    // READLINK and STATFS.
    let out = small.run(&format!(
        "head -n 1 {m}/proc/meminfo; cat {m}/sys/devices/system/cpu/online; \
         grep -c ^processor {m}/proc/cpuinfo; ls {m}/sys/devices/system/cpu | grep -c '^cpu[0-9]'; \
         test $(stat -c %s {m}/proc/meminfo) -eq $(wc -c < {m}/proc/meminfo) && echo size-ok; \
         test -r {m}/proc/stat && echo readable; \
         for f in stat uptime loadavg diskstats swaps; do test -s {m}/proc/$f || echo empty $f; done; \
         stat -f -c %l {m}"
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "MemTotal:         204800 kB",
            "0",
            "1",
            "1",
            "size-ok",
            "readable",
            "255"
        ],
        "{out}"
    );
    // READLINK: a block device's `subsystem` link, pointing where the host's does (written as the absolute
    // /sys path, so it resolves the same from inside a container's bind mount).
    let device = fs::read_dir(daemon.path("sys/block"))
        .unwrap()
        .flatten()
        .find(|e| e.path().join("subsystem").is_symlink())
        .expect("a block device with a subsystem link");
    let host = Path::new("/sys/block")
        .join(device.file_name())
        .join("subsystem");
    assert_eq!(
        fs::read_link(device.path().join("subsystem")).unwrap(),
        fs::canonicalize(&host).unwrap()
    );

    // Errors travel over the rings too: nobody may not read slabinfo.
    let denied = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(daemon.path("proc/slabinfo"))
        .output()
        .unwrap();
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Permission denied"));

    // Two containers reading at once from both CPUs' rings each see only their own limit.
    let other = TestCgroup::new("ring-other", &["memory"]);
    other.set("memory", "memory.limit_in_bytes", &(300 * MIB).to_string());
    let reader = |cgroup: &TestCgroup, expected: &str| {
        let script = format!(
            "for r in 1 2 3 4; do (i=0; while [ $i -lt 300 ]; do \
               head -n 1 {m}/proc/meminfo; i=$((i+1)); done) & done; wait"
        );
        let out = cgroup.run(&script);
        let wrong: Vec<&str> = out.lines().filter(|l| *l != expected).collect();
        assert_eq!(out.lines().count(), 1200, "short output");
        assert!(
            wrong.is_empty(),
            "{} wrong lines, e.g. {:?}",
            wrong.len(),
            wrong.first()
        );
    };
    std::thread::scope(|s| {
        s.spawn(|| reader(&small, "MemTotal:         204800 kB"));
        s.spawn(|| reader(&other, "MemTotal:         307200 kB"));
    });

    assert!(daemon.stop_with("TERM").success(), "{}", daemon.log_text());
    assert!(!is_mounted(&daemon.mount_point));
}

#[test]
fn without_the_kernels_consent_it_serves_over_dev_fuse() {
    if !needs_met(MOUNT_AND_CGROUPS_OVER_IO_URING) {
        return;
    }
    if !Path::new(ENABLE_URING).exists() {
        // No io_uring transport in this kernel: the same fallback, without touching the switch.
        let mut daemon = Daemon::start(&[], &["--io-uring", "--connection-holder", "none"]);
        assert!(daemon.log_text().contains("serving over /dev/fuse"));
        assert!(daemon.stop_with("TERM").success());
        return;
    }
    let _serial = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let _switch = KernelSwitch::set(ENABLE_URING, "N");
    falls_back_to_dev_fuse("serving over /dev/fuse");
}

/// Where io_uring is switched off for everyone (`kernel.io_uring_disabled=2`, as some hardened distributions
/// ship), no ring can be made: the daemon says why and serves over `/dev/fuse`, having asked the kernel for
/// nothing it could not answer.
#[test]
fn with_io_uring_switched_off_it_serves_over_dev_fuse() {
    if !needs_met(MOUNT_AND_CGROUPS_OVER_IO_URING) {
        return;
    }
    if !Path::new(ENABLE_URING).exists() || !Path::new(IO_URING_DISABLED).exists() {
        return;
    }
    let _serial = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let _switch = KernelSwitch::set(ENABLE_URING, "Y");
    let _disabled = KernelSwitch::set(IO_URING_DISABLED, "2");
    falls_back_to_dev_fuse("cannot set up io_uring rings");
}

/// A daemon asked for `--io-uring` under the switches set by the caller: its log says `why`, it does not
/// serve over the rings, its files read, and it stops and unmounts.
fn falls_back_to_dev_fuse(why: &str) {
    let mut daemon = Daemon::start(&[], &["--io-uring", "--connection-holder", "none"]);
    let log = daemon.log_text();
    assert!(log.contains(why), "{log}");
    assert!(!log.contains("serving over io_uring"), "{log}");
    let out = shell(&format!(
        "head -n 1 {}",
        daemon.path("proc/meminfo").display()
    ));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("MemTotal:"));
    assert!(daemon.stop_with("TERM").success());
    assert!(!is_mounted(&daemon.mount_point));
}

/// An upgrade between two daemons on rings loses no read, and a daemon on rings killed outright is
/// replaced: the next one detaches the dead mount and serves again over its own rings.
#[test]
fn upgrades_and_crashes_keep_serving_over_the_rings() {
    if !needs_met(MOUNT_AND_CGROUPS_OVER_IO_URING) {
        return;
    }
    let _serial = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let _switch = KernelSwitch::set(ENABLE_URING, "Y");
    let mut daemon = Daemon::start(&[], &["--io-uring", "--connection-holder", "none"]);
    let meminfo = daemon.path("proc/meminfo");
    let (reads, failures) = reading(&meminfo, || take_over(&mut daemon));
    assert!(reads > 100, "only {reads} reads");
    assert_eq!(
        failures, 0,
        "{failures} of {reads} reads failed during the upgrade"
    );
    let log = daemon.log_text();
    assert_eq!(log.matches("serving over io_uring").count(), 2, "{log}");

    let mut child = daemon.take_child();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        fs::read_to_string(&meminfo).is_err(),
        "a killed daemon still answers"
    );
    daemon.respawn();
    assert!(fs::read_to_string(&meminfo)
        .unwrap()
        .starts_with("MemTotal:"));
    assert_eq!(
        daemon.log_text().matches("serving over io_uring").count(),
        3
    );
    assert!(daemon.stop_with("TERM").success());
    assert!(!is_mounted(&daemon.mount_point));
}

/// A rollout that turns `--io-uring` on and then off again hands over between transports, with a reader
/// running throughout, and loses no read: each daemon has its own FUSE connection, and the take-over does
/// not depend on how requests reach either.
#[test]
fn a_take_over_switches_between_dev_fuse_and_the_rings() {
    if !needs_met(MOUNT_AND_CGROUPS_OVER_IO_URING) {
        return;
    }
    let _serial = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let _switch = KernelSwitch::set(ENABLE_URING, "Y");
    // A kept connection keeps the transport it was mounted with; switching needs a fresh mount, which
    // a take-over without a keeper makes.
    let mut daemon = Daemon::start(&[], WITHOUT_KEEPER);
    let meminfo = daemon.path("proc/meminfo");
    let (reads, failures) = reading(&meminfo, || {
        daemon.set_args(&["--io-uring", "--connection-holder", "none"]);
        take_over(&mut daemon);
        daemon.set_args(WITHOUT_KEEPER);
        take_over(&mut daemon);
    });
    assert!(reads > 100, "only {reads} reads");
    assert_eq!(failures, 0, "{failures} of {reads} reads failed");
    let log = daemon.log_text();
    assert_eq!(
        log.matches("took over from the running cgview").count(),
        2,
        "{log}"
    );
    assert_eq!(log.matches("serving over io_uring").count(), 1, "{log}");
    assert!(daemon.stop_with("TERM").success());
    assert!(!is_mounted(&daemon.mount_point));
}

/// Reads a served `proc/meminfo` in a loop from another thread while `during` runs (with 300 ms of
/// reading before and after); returns how many reads were made and how many failed or were wrong.
fn reading(meminfo: &Path, during: impl FnOnce()) -> (u32, u32) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut reads, mut failures) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match fs::read_to_string(meminfo) {
                    Ok(text) if text.starts_with("MemTotal:") => {}
                    _ => failures += 1,
                }
                reads += 1;
            }
            (reads, failures)
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        during();
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap()
    })
}

/// Starts a successor, lets both run a moment, then stops the previous daemon as a rollout does.
fn take_over(daemon: &mut Daemon) {
    let mut previous = daemon.start_successor();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = stop_process(&mut previous, "TERM").expect("the old daemon stops");
    assert!(status.success());
}

/// Opens over the rings are backed like those over `/dev/fuse`: `mmap(2)` is refused (ENODEV) instead
/// of a private mapping killing the reader with SIGBUS at its first access.
#[test]
fn mmap_is_refused_over_the_rings() {
    if !needs_met(MOUNT_AND_CGROUPS_OVER_IO_URING) {
        return;
    }
    let _serial = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let _switch = KernelSwitch::set(ENABLE_URING, "Y");
    let daemon = Daemon::start(&[], &["--io-uring", "--connection-holder", "none"]);
    let log = daemon.log_text();
    assert!(
        log.contains("serving over io_uring"),
        "no ring started:\n{log}"
    );
    check_mmap_is_refused(&daemon);
}
