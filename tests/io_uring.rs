//! `cgview mount --io-uring`: requests arrive over FUSE over io_uring (one ring per CPU) instead of
//! `/dev/fuse`. Every kind of request the tree answers goes over the rings here, containers reading at
//! once each see their own file, and the daemon stops cleanly. Without the kernel's consent it falls back
//! to `/dev/fuse` and says so.
//!
//! A test binary of its own: the kernel's `enable_uring` switch is global, and the tests here set it.

mod mounted_support;

use mounted_support::*;
use std::fs;
use std::path::Path;
use std::process::Command;

const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

/// Sets `enable_uring` for the test's life and puts the old value back, even when the test fails. It
/// only decides what new mounts negotiate, and only daemons that ask for io_uring.
struct EnableUring {
    previous: String,
}

impl EnableUring {
    fn set(value: &str) -> EnableUring {
        let previous = fs::read_to_string(ENABLE_URING).unwrap_or_else(|e| {
            panic!("{ENABLE_URING}: {e} (a kernel without FUSE over io_uring)")
        });
        fs::write(ENABLE_URING, value).unwrap();
        EnableUring {
            previous: previous.trim().to_owned(),
        }
    }
}

impl Drop for EnableUring {
    fn drop(&mut self) {
        let _ = fs::write(ENABLE_URING, &self.previous);
    }
}

/// Both tests change the switch; they must not overlap.
static SWITCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn shell(script: &str) -> std::process::Output {
    Command::new("sh").args(["-c", script]).output().unwrap()
}

#[test]
fn every_request_is_answered_over_the_rings() {
    require_root_and_fuse();
    let _serial = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let _switch = EnableUring::set("Y");
    let mut daemon = Daemon::start(&[], &["--io-uring"]);
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
    require_root_and_fuse();
    if !Path::new(ENABLE_URING).exists() {
        // No io_uring transport in this kernel: the same fallback, without touching the switch.
        let mut daemon = Daemon::start(&[], &["--io-uring"]);
        assert!(daemon.log_text().contains("serving over /dev/fuse"));
        assert!(daemon.stop_with("TERM").success());
        return;
    }
    let _serial = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let _switch = EnableUring::set("N");
    let mut daemon = Daemon::start(&[], &["--io-uring"]);
    let log = daemon.log_text();
    assert!(log.contains("serving over /dev/fuse"), "{log}");
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
    require_root_and_fuse();
    let _serial = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let _switch = EnableUring::set("Y");
    let mut daemon = Daemon::start(&[], &["--io-uring"]);
    let meminfo = daemon.path("proc/meminfo");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (reads, failures) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut reads, mut failures) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match fs::read_to_string(&meminfo) {
                    Ok(text) if text.starts_with("MemTotal:") => {}
                    _ => failures += 1,
                }
                reads += 1;
            }
            (reads, failures)
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut previous = daemon.start_successor();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let status = stop_process(&mut previous, "TERM").expect("the old daemon stops");
        assert!(status.success());
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap()
    });
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
