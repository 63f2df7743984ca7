//! Descriptors are a budgeted resource (issue 15): an unprivileged user making pid namespaces as fast as
//! it can fork (each one a new container to cgview) cannot make the daemon run out of descriptors, and no
//! one's read fails or shows the host's values meanwhile. Needs root, /dev/fuse and unprivileged user
//! namespaces.

mod mounted_support;

use mounted_support::*;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon's hard descriptor limit in this test: what a systemd unit without `LimitNOFILE=` gets,
/// reached in seconds by the churn on a daemon that keeps descriptors without a budget.
const NOFILE: u64 = 1024;
/// `budget_for_limit(NOFILE)`: what the caches may keep open.
const BUDGET: usize = 256;
/// Everything else the daemon holds: the FUSE device and its clones, logs, open-read-close reads.
const SLACK: usize = 128;
const CHURN: Duration = Duration::from_secs(20);

fn open_descriptors(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Kills a process group when dropped, so a failing assertion leaves no churn behind.
struct Churn(Vec<Child>);

impl Drop for Churn {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // killpg(2) itself, never `kill -9 -PGID`: Debian's procps 4.0.2 reads `-12345` after `-9`
            // as group 1 (its first digit) and kill(-1) ends every process on the machine. The child is
            // not reaped yet, so its pid (the group it made with setsid) cannot have been reused.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn namespace_churn_by_an_unprivileged_user_cannot_exhaust_descriptors() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let nofile = format!("--nofile={NOFILE}:{NOFILE}");
    let daemon = Daemon::start(&["prlimit", &nofile, "--"], &[]);
    let victim = TestCgroup::new("fd-victim", &["memory"]);
    victim.set("memory", "memory.limit_in_bytes", &(300 * MIB).to_string());
    // The churning user's own (non-root) cgroup, like a login session's: its containers have cgroup
    // files to keep open.
    let churner = TestCgroup::new("fd-churn", &["memory", "cpu", "cpuacct"]);
    churner.set("memory", "memory.limit_in_bytes", &(512 * MIB).to_string());

    let meminfo = daemon.path("proc/meminfo");
    let stat = daemon.path("proc/stat");
    let churn_script = format!(
        "{enter}; exec setsid setpriv --reuid 65534 --regid 65534 --clear-groups sh -c '\
         end=$(($(date +%s) + {secs})); \
         while [ $(date +%s) -lt $end ]; do \
           unshare -Urpf sh -c \"cat {m} {m} {s} >/dev/null\" 2>/dev/null; \
         done'",
        enter = churner.enter_script(),
        secs = CHURN.as_secs(),
        m = meminfo.display(),
        s = stat.display(),
    );
    let churn = Churn(
        (0..3)
            .map(|_| {
                Command::new("sh")
                    .arg("-c")
                    .arg(&churn_script)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );

    // The victim rereads one open file from offset 0 and opens it afresh, every 10 ms.
    let victim_script = format!(
        r#"
import time
want = "{want}"
kept = open("{path}")
reads = failed = wrong = 0
first_error = ""
deadline = time.time() + {secs}
while time.time() < deadline:
    for fresh in (False, True):
        reads += 1
        try:
            if fresh:
                with open("{path}") as f:
                    line = f.readline()
            else:
                kept.seek(0)
                line = kept.readline()
            if line.split()[1] != want:
                wrong += 1
                first_error = first_error or line.strip()
        except OSError as e:
            failed += 1
            first_error = first_error or str(e)
    time.sleep(0.01)
print(reads, failed, wrong, first_error)
"#,
        want = 300 * 1024,
        path = meminfo.display(),
        secs = CHURN.as_secs(),
    );
    let victim_reader = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{}; exec python3 -c '{}'",
            victim.enter_script(),
            victim_script.replace('\'', "'\\''")
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    let started = Instant::now();
    let mut most = 0;
    while started.elapsed() < CHURN {
        most = most.max(open_descriptors(daemon.pid()));
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = victim_reader.wait_with_output().unwrap();
    drop(churn);
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    let fields: Vec<&str> = report.split_whitespace().collect();
    assert!(fields.len() >= 3, "victim reader: {report}");
    let (reads, failed, wrong): (u64, u64, u64) = (
        fields[0].parse().unwrap(),
        fields[1].parse().unwrap(),
        fields[2].parse().unwrap(),
    );
    eprintln!(
        "victim: {reads} reads, {failed} failed, {wrong} wrong; daemon descriptors at most {most}"
    );
    assert!(reads > 500, "{report}");
    assert_eq!(
        (failed, wrong),
        (0, 0),
        "victim reads failed or wrong: {report}"
    );
    assert!(
        most <= BUDGET + SLACK,
        "the daemon held {most} descriptors (budget {BUDGET} + {SLACK})"
    );
    // And root, after the storm.
    let line = fs::read_to_string(&meminfo).unwrap();
    assert!(line.contains("MemTotal"), "{line}");
}
