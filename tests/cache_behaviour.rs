//! What the caches must never get wrong, through a real mount: changes show within the stated bounds
//! (README, "Caching"), and a thread id reused by a process in another container never gets the old
//! container's view. Needs root and /dev/fuse.

mod mounted_support;

use mounted_support::*;
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The README's bounds: a snapshot lives 100 ms, or 500 ms while another reader renders it; a caller's
/// cgroup is looked up again after 1 s. The margins absorb a slow, shared machine.
const LIMIT_CHANGE_BOUND: Duration = Duration::from_millis(500 + 1000);
const MOVE_BOUND: Duration = Duration::from_millis(1000 + 500 + 1000);

/// Polls `MemTotal` as read by one long-lived process inside `cgroup` until it equals `want_kb`;
/// returns how long that took after `changed` ran.
fn time_until_mem_total(
    daemon: &Daemon,
    reader_cgroup: &TestCgroup,
    change: impl FnOnce(u32),
    want_kb: u64,
) -> Duration {
    let meminfo = daemon.path("proc/meminfo");
    // A reader that keeps its thread id: it polls every 10 ms and prints the time it first sees the value.
    let script = format!(
        r#"
import os, sys, time
want = "{want_kb}"
sys.stdout.write("ready\n"); sys.stdout.flush()
deadline = time.time() + 10
while time.time() < deadline:
    with open("{path}") as f:
        first = f.readline().split()
    if first[1] == want:
        print("seen"); sys.exit(0)
    time.sleep(0.01)
print("never", first); sys.exit(1)
"#,
        path = meminfo.display()
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{}; exec python3 -c '{}'",
            reader_cgroup.enter_script(),
            script.replace('\'', "'\\''")
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    // Let it read the old value at least once, so its thread and snapshot are cached.
    std::thread::sleep(Duration::from_millis(100));
    let changed = Instant::now();
    change(pid);
    let status = child.wait().unwrap();
    let elapsed = changed.elapsed();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let mut errors = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut errors).unwrap();
    assert!(
        status.success(),
        "the reader never saw {want_kb} kB: {rest}{errors}"
    );
    elapsed
}

#[test]
fn changed_memory_limit_shows_within_the_stated_bound() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let cgroup = TestCgroup::new("stale-limit", &["memory"]);
    cgroup.set("memory", "memory.limit_in_bytes", &(512 * MIB).to_string());
    let elapsed = time_until_mem_total(
        &daemon,
        &cgroup,
        |_| cgroup.set("memory", "memory.limit_in_bytes", &(256 * MIB).to_string()),
        262_144,
    );
    assert!(elapsed < LIMIT_CHANGE_BOUND, "took {elapsed:?}");
}

#[test]
fn process_moved_to_another_cgroup_sees_it_within_the_stated_bound() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let from = TestCgroup::new("move-from", &["memory"]);
    let to = TestCgroup::new("move-to", &["memory"]);
    from.set("memory", "memory.limit_in_bytes", &(512 * MIB).to_string());
    to.set("memory", "memory.limit_in_bytes", &(128 * MIB).to_string());
    let procs = to.dir("memory").join("cgroup.procs");
    let elapsed = time_until_mem_total(
        &daemon,
        &from,
        |pid| fs::write(&procs, pid.to_string()).unwrap(),
        131_072,
    );
    assert!(elapsed < MOVE_BOUND, "took {elapsed:?}");
}

/// Starts `sh -c "enter; exec head -n 1 <meminfo>"` so that the reading process is the one forked, and
/// returns its pid and first line.
fn read_as_new_process(cgroup: &TestCgroup, daemon: &Daemon) -> (u32, String) {
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{}; exec head -n 1 {}",
            cgroup.enter_script(),
            daemon.path("proc/meminfo").display()
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    expect_success("reader", &output);
    (pid, String::from_utf8(output.stdout).unwrap())
}

#[test]
fn recycled_thread_id_never_sees_the_previous_owners_container() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let first = TestCgroup::new("reuse-a", &["memory"]);
    let second = TestCgroup::new("reuse-b", &["memory"]);
    first.set("memory", "memory.limit_in_bytes", &(256 * MIB).to_string());
    second.set("memory", "memory.limit_in_bytes", &(384 * MIB).to_string());

    let mut reused = 0;
    for _ in 0..20 {
        let (pid, line) = read_as_new_process(&first, &daemon);
        assert_eq!(meminfo_kb(&line, "MemTotal"), 262_144, "{line}");
        // The next process forked gets pid `pid` again (unless something else forks first: retry).
        fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
        let (again, line) = read_as_new_process(&second, &daemon);
        if again != pid {
            continue;
        }
        reused += 1;
        assert_eq!(
            meminfo_kb(&line, "MemTotal"),
            393_216,
            "pid {pid}, reused within the caller cache's lifetime, got the old container's view"
        );
        if reused == 3 {
            break;
        }
    }
    assert!(reused > 0, "could not get a pid reused in 20 tries");
}

#[test]
fn a_cgroup_made_again_at_the_same_path_is_read_as_the_new_one() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let parent = TestCgroup::new("recreated", &["memory"]);
    // A systemd service restarted under a new MemoryMax=: its cgroup is removed and made again at once.
    for trial in 0..10u64 {
        let limit = (256 + 64 * (trial % 2)) * MIB;
        let service = parent.child("service");
        service.set("memory", "memory.limit_in_bytes", &limit.to_string());
        // Twice: the second read of a container goes through its kept-open files.
        for read in 0..2 {
            let (_, line) = read_as_new_process(&service, &daemon);
            assert_eq!(
                meminfo_kb(&line, "MemTotal"),
                limit / 1024,
                "trial {trial}, read {read}: the re-created cgroup was served the old one's view"
            );
        }
        drop(service);
    }
}

#[test]
fn a_reader_whose_cgroup_is_removed_after_a_move_never_sees_the_host() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let old = TestCgroup::new("moved-from", &["memory"]);
    let new = TestCgroup::new("moved-to", &["memory"]);
    old.set("memory", "memory.limit_in_bytes", &(256 * MIB).to_string());
    new.set("memory", "memory.limit_in_bytes", &(320 * MIB).to_string());
    // One thread keeps the file open and rereads it from offset 0, as top and agents do.
    let script = format!(
        r#"
import sys, time
f = open("{path}")
sys.stdout.write("ready\n"); sys.stdout.flush()
seen = []
deadline = time.time() + 3
while time.time() < deadline:
    f.seek(0)
    seen.append(f.readline().split()[1])
    time.sleep(0.005)
print(" ".join(seen))
"#,
        path = daemon.path("proc/meminfo").display()
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{}; exec python3 -c '{}'",
            old.enter_script(),
            script.replace('\'', "'\\''")
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    std::thread::sleep(Duration::from_millis(300));
    new.set("memory", "cgroup.procs", &pid.to_string());
    fs::remove_dir(old.dir("memory")).unwrap();
    let mut seen = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut seen).unwrap();
    assert!(child.wait().unwrap().success());
    let values: Vec<&str> = seen.split_whitespace().collect();
    let (old_kb, new_kb) = (
        (256 * MIB / 1024).to_string(),
        (320 * MIB / 1024).to_string(),
    );
    assert!(values.len() > 50, "{seen}");
    for value in &values {
        assert!(
            *value == old_kb || *value == new_kb,
            "a read showed {value} kB, neither the old nor the new cgroup's limit: {seen}"
        );
    }
    assert_eq!(values.last(), Some(&new_kb.as_str()), "{seen}");
}
