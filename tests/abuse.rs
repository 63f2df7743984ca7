//! The abuse test (issue 15): while unprivileged users churn pid namespaces and threads against the mount,
//! a victim container must keep reading exactly its own view, and the daemon's descriptors must stay
//! bounded.
//!
//! Set-up: a `cgview mount` started with a lowered `RLIMIT_NOFILE` (4096 unless `CGVIEW_ABUSE_NOFILE`
//! says otherwise; the issue filled 20,000 in 25 s, this fills 4,096 in under 10 s); a victim container
//! (its own memory/cpu/cpuacct/cpuset cgroups with 300 MiB and the host's last CPU, its own pid and mount
//! namespaces) that reads `proc/meminfo`, `proc/stat`, `proc/cpuinfo` and `proc/uptime` both by rereading
//! kept-open descriptors from offset 0 and by open-read-close, checking every read; and, as uid 65534
//! in a tenant cgroup of its own, three `while :; do unshare -Urpf cat <mnt>/proc/meminfo; done` loops
//! and a process that spawns and joins short-lived threads that each read `<mnt>/proc/stat`. The test
//! samples the daemon's descriptors every second. It runs `CGVIEW_ABUSE_SECONDS` (default 60) seconds.
//!
//! Needs root, /dev/fuse, `setpriv`, `unshare`, `prlimit` (util-linux), bash and /usr/bin/python3 (the
//! churn runs as nobody, who cannot reach a python under /root).

mod mounted_support;

use mounted_support::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const NOBODY: &str = "65534";
const VICTIM_MEMORY_BYTES: u64 = 300 * MIB;
/// Reachable by uid 65534, unlike a pyenv shim under /root.
const PYTHON: &str = "/usr/bin/python3";

/// The victim: `victim.py <mnt> <seconds> <MemTotal kB> <cpu ids, comma-separated>`. Reads the four
/// files in a loop, each both from a kept-open descriptor (`pread` at offset 0, which takes a fresh
/// snapshot as procfs does) and by open-read-close, and prints one JSON object: per file and mode, reads,
/// failed reads (by errno), wrong reads (with the first few reasons) and the slowest read.
const VICTIM_PY: &str = r#"
import errno, json, os, sys, time

mnt, seconds, mem_kb = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
cpus = sorted(int(c) for c in sys.argv[4].split(","))
FILES = ["proc/meminfo", "proc/stat", "proc/cpuinfo", "proc/uptime"]
born = time.monotonic()

def problem(name, text):
    """None when text is this container's view, otherwise what is wrong with it."""
    if not text:
        return "empty"
    if name == "proc/meminfo":
        for line in text.splitlines():
            if line.startswith("MemTotal:"):
                got = int(line.split()[1])
                return None if got == mem_kb else "MemTotal %d kB, want %d" % (got, mem_kb)
        return "no MemTotal"
    if name == "proc/stat":
        if not text.startswith("cpu "):
            return "first line %r" % text.splitlines()[0]
        ids = sorted(int(l.split()[0][3:]) for l in text.splitlines()
                     if l.startswith("cpu") and l[3:4].isdigit())
        return None if ids == cpus else "cpu lines %s, want %s" % (ids, cpus)
    if name == "proc/cpuinfo":
        ids = sorted(int(l.split(":")[1]) for l in text.splitlines() if l.startswith("processor"))
        return None if ids == cpus else "processors %s, want %s" % (ids, cpus)
    if name == "proc/uptime":
        fields = text.split()
        if len(fields) != 2:
            return "uptime %r" % text
        up, age = float(fields[0]), time.monotonic() - born
        # This python is the namespace's init: the container is as old as it (the host is far older).
        return None if 0 <= up <= age + 5 else "uptime %.1f s in a container %.1f s old" % (up, age)

def read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)

stats = {}
for name in FILES:
    for mode in ("kept", "fresh"):
        stats[name + " " + mode] = {"reads": 0, "failed": 0, "wrong": 0, "errors": {},
                                    "examples": [], "max_ms": 0.0}
kept = {}
end = born + seconds
while time.monotonic() < end:
    for name in FILES:
        path = os.path.join(mnt, name)
        for mode in ("kept", "fresh"):
            s = stats[name + " " + mode]
            s["reads"] += 1
            started = time.monotonic()
            try:
                if mode == "kept":
                    if name not in kept:
                        kept[name] = os.open(path, os.O_RDONLY)
                    data = os.pread(kept[name], 1 << 20, 0)
                else:
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        data = read_all(fd)
                    finally:
                        os.close(fd)
            except OSError as e:
                s["failed"] += 1
                code = errno.errorcode.get(e.errno, str(e.errno))
                s["errors"][code] = s["errors"].get(code, 0) + 1
                if len(s["examples"]) < 3:
                    s["examples"].append("%.1f s: %s" % (started - born, e))
                if mode == "kept" and name in kept:
                    os.close(kept.pop(name))
                continue
            finally:
                s["max_ms"] = max(s["max_ms"], (time.monotonic() - started) * 1000)
            why = problem(name, data.decode("utf-8", "replace"))
            if why is not None:
                s["wrong"] += 1
                if len(s["examples"]) < 3:
                    s["examples"].append("%.1f s: %s" % (started - born, why))
print(json.dumps(stats))
"#;

/// Thread churn: `threads.py <file> <seconds>`. Spawns batches of short-lived threads (64 KiB stacks),
/// each opening and reading the file once, joins them, and repeats; prints `threads failed`.
const THREADS_PY: &str = r#"
import sys, threading, time

path, seconds = sys.argv[1], float(sys.argv[2])
threading.stack_size(64 * 1024)
counts = {"threads": 0, "failed": 0}
lock = threading.Lock()

def read_once():
    try:
        with open(path, "rb") as f:
            f.read()
        failed = 0
    except OSError:
        failed = 1
    with lock:
        counts["threads"] += 1
        counts["failed"] += failed

end = time.monotonic() + seconds
while time.monotonic() < end:
    batch = [threading.Thread(target=read_once) for _ in range(32)]
    for t in batch:
        t.start()
    for t in batch:
        t.join()
print(counts["threads"], counts["failed"])
"#;

/// A namespace churn loop for bash: one `unshare -Urpf cat` after another until `$1` seconds have passed;
/// prints `runs failed`.
const NAMESPACE_CHURN_SH: &str = r#"n=0; f=0
while [ "$SECONDS" -lt "$1" ]; do
  n=$((n + 1))
  unshare -Urpf cat "$2" >/dev/null 2>&1 || f=$((f + 1))
done
echo "$n $f""#;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Children killed (and reaped) when the test ends, however it ends.
#[derive(Default)]
struct Children(Vec<(&'static str, Child)>);

impl Children {
    fn push(&mut self, label: &'static str, child: Child) -> usize {
        self.0.push((label, child));
        self.0.len() - 1
    }

    /// Waits until `deadline` for child `index` to exit, then kills it; its standard output, or `None`
    /// when it had to be killed.
    fn output_by(&mut self, index: usize, deadline: Instant) -> Option<String> {
        let child = &mut self.0[index].1;
        loop {
            if child.try_wait().unwrap().is_some() {
                let mut out = String::new();
                if let Some(mut stdout) = child.stdout.take() {
                    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
                }
                return Some(out);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `program args...` run inside `cgroup`: the shell enters it, then execs the program.
fn spawn_in(cgroup: &TestCgroup, program: &[&str]) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("{}; exec \"$@\"", cgroup.enter_script()))
        .arg("sh")
        .args(program)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The victim's reads as a container: its own pid and mount namespaces (the python is the namespace's
/// init, so its age is the container's uptime), killed with the `unshare` that started it.
fn victim_command(script: &Path, mnt: &Path, seconds: u64, cpus: &str) -> Vec<String> {
    [
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        PYTHON,
        &script.to_string_lossy(),
        &mnt.to_string_lossy(),
        &seconds.to_string(),
        &(VICTIM_MEMORY_BYTES / 1024).to_string(),
        cpus,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn as_nobody(program: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = [
        "setpriv",
        "--reuid",
        NOBODY,
        "--regid",
        NOBODY,
        "--clear-groups",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(program.iter().map(|s| s.to_string()));
    argv
}

fn open_descriptors(pid: u32) -> Option<usize> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// The soft `Max open files` of a process.
fn soft_nofile(pid: u32) -> u64 {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no open-files limit in:\n{limits}"))
}

/// Failed and wrong reads in a victim report, and a table of every (file, mode).
fn summarize_victim(report: &Value) -> (u64, u64, String) {
    let (mut failed, mut wrong) = (0, 0);
    let mut table = format!(
        "{:<22} {:>8} {:>7} {:>7} {:>9}  errors / examples\n",
        "file mode", "reads", "failed", "wrong", "max ms"
    );
    for (key, s) in report.as_object().expect("victim report is an object") {
        let count = |field: &str| s[field].as_u64().unwrap();
        failed += count("failed");
        wrong += count("wrong");
        table.push_str(&format!(
            "{key:<22} {:>8} {:>7} {:>7} {:>9.1}  {} {}\n",
            count("reads"),
            count("failed"),
            count("wrong"),
            s["max_ms"].as_f64().unwrap(),
            s["errors"],
            s["examples"]
        ));
    }
    (failed, wrong, table)
}

/// A directory (and its scripts) that uid 65534 can read: tempfile makes 0700 directories.
fn world_readable_scripts() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("cgview-abuse-")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let victim = dir.path().join("victim.py");
    let threads = dir.path().join("threads.py");
    fs::write(&victim, VICTIM_PY).unwrap();
    fs::write(&threads, THREADS_PY).unwrap();
    for file in [&victim, &threads] {
        fs::set_permissions(file, fs::Permissions::from_mode(0o644)).unwrap();
    }
    (dir, victim, threads)
}

#[test]
fn unprivileged_namespace_and_thread_churn_neither_fails_victim_reads_nor_exhausts_descriptors() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let seconds: u64 = env_or("CGVIEW_ABUSE_SECONDS", 60);
    let nofile: u64 = env_or("CGVIEW_ABUSE_NOFILE", 4096);
    let host_cpus = cpuinfo_ids(&fs::read_to_string("/proc/cpuinfo").unwrap());
    assert!(host_cpus.len() >= 2, "this test expects at least 2 CPUs");
    let victim_cpu = host_cpus.last().unwrap().to_string();

    // Declared in the order they must outlive each other: children die first, then their cgroups, then
    // the daemon and its mount.
    let limit = format!("--nofile={nofile}:{nofile}");
    let daemon = Daemon::start(&["prlimit", &limit, "--"], &[]);
    // The mount point's tempdir is 0700; nobody must be able to reach the mount.
    let mount_parent = daemon.mount_point.parent().unwrap();
    fs::set_permissions(mount_parent, fs::Permissions::from_mode(0o755)).unwrap();
    let mnt = daemon.mount_point.clone();
    let (_scripts, victim_py, threads_py) = world_readable_scripts();

    let victim = TestCgroup::new("abuse-victim", &["memory", "cpu", "cpuacct", "cpuset"]);
    victim.set(
        "memory",
        "memory.limit_in_bytes",
        &VICTIM_MEMORY_BYTES.to_string(),
    );
    victim.set("cpuset", "cpuset.cpus", &victim_cpu);
    let tenant = TestCgroup::new("abuse-tenant", &["memory", "pids"]);
    let mut children = Children::default();

    // Without churn the victim's view must already be right, or the test checks the wrong thing.
    let baseline_argv = victim_command(&victim_py, &mnt, 1, &victim_cpu);
    let baseline_argv: Vec<&str> = baseline_argv.iter().map(String::as_str).collect();
    let baseline = children.push("baseline", spawn_in(&victim, &baseline_argv));
    let baseline = children
        .output_by(baseline, Instant::now() + Duration::from_secs(30))
        .expect("the baseline victim did not finish within 30 s");
    let (failed, wrong, table) = summarize_victim(&serde_json::from_str(&baseline).unwrap());
    assert_eq!(
        (failed, wrong),
        (0, 0),
        "the victim's view is wrong before any churn:\n{table}"
    );

    let started = Instant::now();
    let victim_argv = victim_command(&victim_py, &mnt, seconds, &victim_cpu);
    let victim_argv: Vec<&str> = victim_argv.iter().map(String::as_str).collect();
    let victim_child = children.push("victim", spawn_in(&victim, &victim_argv));
    let meminfo = mnt.join("proc/meminfo").to_string_lossy().into_owned();
    let stat = mnt.join("proc/stat").to_string_lossy().into_owned();
    let seconds_arg = seconds.to_string();
    let mut churners = Vec::new();
    for _ in 0..3 {
        let argv = as_nobody(&[
            "bash",
            "-c",
            NAMESPACE_CHURN_SH,
            "churn",
            &seconds_arg,
            &meminfo,
        ]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        churners.push(children.push("namespace churn", spawn_in(&tenant, &argv)));
    }
    let argv = as_nobody(&[PYTHON, &threads_py.to_string_lossy(), &stat, &seconds_arg]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let thread_churn = children.push("thread churn", spawn_in(&tenant, &argv));

    // One sample a second until the run is over; the daemon's limit is read while it runs, since a
    // daemon may raise its soft limit at start.
    let pid = daemon.pid();
    let mut fd_samples = Vec::new();
    let mut daemon_limit = soft_nofile(pid);
    while started.elapsed() < Duration::from_secs(seconds) {
        sleep(Duration::from_secs(1));
        match open_descriptors(pid) {
            Some(count) => fd_samples.push(count),
            None => break,
        }
        daemon_limit = soft_nofile(pid);
    }
    let finish_by = Instant::now() + Duration::from_secs(30);
    let victim_out = children.output_by(victim_child, finish_by);
    let churn_out: Vec<String> = churners
        .iter()
        .map(|&i| children.output_by(i, finish_by).unwrap_or("killed".into()))
        .collect();
    let threads_out = children
        .output_by(thread_churn, finish_by)
        .unwrap_or("killed".into());
    let daemon_alive = open_descriptors(pid).is_some();

    let max_fds = fd_samples.iter().copied().max().unwrap_or(0);
    let fd_bound = (daemon_limit / 2).min(5000);
    let mut report = format!(
        "{seconds} s; daemon soft RLIMIT_NOFILE {daemon_limit} (started with {nofile}); descriptor bound {fd_bound}\n\
         daemon descriptors each second: {fd_samples:?}\n\
         namespace churn loops (runs failed): {churn_out:?}\nthread churn (threads failed): {threads_out:?}\n"
    );
    let mut problems = Vec::new();
    match &victim_out {
        Some(out) => {
            let (failed, wrong, table) = summarize_victim(&serde_json::from_str(out).unwrap());
            report.push_str(&table);
            if failed + wrong > 0 {
                problems.push(format!("{failed} failed and {wrong} wrong victim reads"));
            }
        }
        None => problems.push("the victim was still blocked 30 s after its run".into()),
    }
    if max_fds >= fd_bound as usize {
        problems.push(format!(
            "the daemon held {max_fds} descriptors (bound {fd_bound})"
        ));
    }
    if !daemon_alive {
        problems.push("the daemon died".into());
    }
    println!("{report}");
    assert!(
        problems.is_empty(),
        "{}\n{report}\ndaemon log (tail):\n{}",
        problems.join("; "),
        tail(&daemon.log_text(), 20)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
