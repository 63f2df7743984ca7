//! Reader continuity (issue 17): readers in containers never notice the daemon going away and coming
//! back. Three simulated containers (their own cgroup with a memory limit and CPU 0 only, pid and mount
//! namespaces, cgview's files bound over `/proc` and `/sys/devices/system/cpu/online`, the host's root
//! otherwise, so procps and Python are there) each run at once: `top -b -d 0.2`, `vmstat 1`, a Python
//! reader that keeps five files open and rereads them with `pread(fd, .., 0)` every 20 ms, and one that
//! opens, reads and closes them every 20 ms. Under that load the daemon is killed, upgraded, stopped and
//! restarted in the ways a node sees (see [`SEQUENCE`]); no read may fail, no reader may exit, and every
//! value stays the container's. The stall each reader saw in each scenario is reported (and, with
//! `CGVIEW_STALL_REPORT=<file>`, appended to that file as a table for the README).
//!
//! Two more tests hold the bound: with no daemon back within `--resume-within`, readers get an error
//! instead of hanging, and a plain stop with no start after it leaves no mount and no keeper behind.
//!
//! Needs root, /dev/fuse, cgroup v1, procps (`top`, `vmstat`) and `/usr/bin/python3`. Over FUSE over
//! io_uring the connection is not kept by default (a request a departing daemon's ring held may be
//! stranded by the kernel; README, "Restarts and crashes"), so the sequence runs over `/dev/fuse`.

mod mounted_support;

use mounted_support::*;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{sleep, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Set to a file name, the stall tables are appended to it.
const STALL_REPORT_ENV: &str = "CGVIEW_STALL_REPORT";

/// The suite's tests share the machine's two CPUs and measure stalls: one at a time, so that one's load
/// is not another's stall.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    DevFuse,
    IoUring,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::DevFuse => "/dev/fuse",
            Transport::IoUring => "io_uring",
        }
    }
}

/// Every option of `cgview mount` this suite relies on, in one place. `resume_within_secs` is how long
/// the connection's keeper waits for a daemon before it gives the connection up; `None` keeps the
/// default (10 s). The connection holder is always the default (`auto`: outside a systemd unit with a
/// descriptor store, a keeper that `cgview mount` starts).
fn mount_options(transport: Transport, resume_within_secs: Option<u32>) -> Vec<String> {
    let mut options = Vec::new();
    if transport == Transport::IoUring {
        options.push("--io-uring".to_owned());
    }
    if let Some(secs) = resume_within_secs {
        options.push("--resume-within".to_owned());
        options.push(secs.to_string());
    }
    options
}

fn start_daemon(options: &[String]) -> Daemon {
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    Daemon::start(&[], &options)
}

/// Nanoseconds since the epoch. The Python readers stamp their reads with the same clock
/// (`time.time_ns()`); CLOCK_MONOTONIC would be safer against clock steps but std does not expose it,
/// and over the minute a test runs the realtime clock is only ever slewed by far less than a stall.
fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The Python readers. `pread` mode opens the five files once and rereads each from offset 0 (as top,
/// vmstat, monitoring agents and JVMs do); `reopen` mode opens, reads and closes them. Every 20 ms each
/// file is read once and the read logged as `<file> <start ns> <took ns> ok`, or `... FAIL <why>` when
/// it raised (`why` names the call: open, pread, read, close or check) or its value was not the
/// container's. Exceptions never end the reader: a reader exit is a failure of its own, seen by the
/// container's shell.
const READER_PY: &str = r#"
import os, re, sys, time

mode, log_path, mem_total_kb = sys.argv[1], sys.argv[2], int(sys.argv[3])
FILES = {
    "stat": "/proc/stat",
    "meminfo": "/proc/meminfo",
    "uptime": "/proc/uptime",
    "loadavg": "/proc/loadavg",
    "online": "/sys/devices/system/cpu/online",
}
# The container started just before this reader: its uptime cannot be much more than the reader's age
# (the host's is the machine's, minutes or days).
started_boottime = time.clock_gettime(time.CLOCK_BOOTTIME)


def wrong(name, text):
    """Why `text` is not the container's `name`, or None when it is."""
    if name == "meminfo":
        m = re.match(r"MemTotal:\s+(\d+) kB\n", text)
        if not m or int(m.group(1)) != mem_total_kb:
            return "MemTotal is not %d kB: %r" % (mem_total_kb, text[:60])
    elif name == "online":
        if text.strip() != "0":
            return "online is %r, not '0'" % text
    elif name == "stat":
        cpus = [l.split()[0] for l in text.splitlines() if re.match(r"cpu\d+ ", l)]
        if cpus != ["cpu0"]:
            return "cpu lines %r, not exactly cpu0" % cpus
    elif name == "uptime":
        fields = text.split()
        if len(fields) != 2:
            return "uptime %r is not two numbers" % text
        up, _idle = float(fields[0]), float(fields[1])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started_boottime
        if not 0 <= up <= age + 30:
            return "uptime %.2f s for a container %.1f s old" % (up, age)
    elif name == "loadavg":
        if len(text.split()) != 5:
            return "loadavg %r has not 5 fields" % text
    return None


def describe(error):
    if isinstance(error, OSError) and error.errno is not None:
        return "errno %d (%s)" % (error.errno, os.strerror(error.errno))
    return "%s: %s" % (type(error).__name__, error)


class Step:
    """Names the call that raised (open, pread, read, close, or check for the value's own): an open
    that fails and a read that fails are different bugs."""

    def __init__(self):
        self.name = None

    def __call__(self, name, call, *args):
        self.name = name
        return call(*args)


log = open(log_path, "w")
fds = {name: os.open(path, os.O_RDONLY) for name, path in FILES.items()} if mode == "pread" else None
while True:
    for name, path in FILES.items():
        step = Step()
        start = time.time_ns()
        try:
            if fds is not None:
                data = step("pread", os.pread, fds[name], 65536, 0)
            else:
                fd = step("open", os.open, path, os.O_RDONLY)
                try:
                    data = step("read", os.read, fd, 65536)
                finally:
                    step("close", os.close, fd)
            took = time.time_ns() - start
            problem = step("check", lambda: wrong(name, data.decode()))
        except Exception as error:
            took = time.time_ns() - start
            problem = "%s: %s" % (step.name, describe(error))
        outcome = "ok" if problem is None else "FAIL " + problem.replace("\n", "\\n")
        log.write("%s %d %d %s\n" % (name, start, took, outcome))
    log.flush()
    time.sleep(0.02)
"#;

/// What runs in each container, by the name of its output files (`<name>.out`, `<name>.err`, and
/// `<name>.exit` holding its exit status once it has ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Top,
    Vmstat,
    Pread,
    Reopen,
}

impl Reader {
    const ALL: [Reader; 4] = [Reader::Top, Reader::Vmstat, Reader::Pread, Reader::Reopen];

    fn name(self) -> &'static str {
        match self {
            Reader::Top => "top",
            Reader::Vmstat => "vmstat",
            Reader::Pread => "pread",
            Reader::Reopen => "reopen",
        }
    }

    /// The command line; `log` is where a Python reader logs its reads.
    fn command(self, log: &Path, mem_total_kb: u64) -> String {
        match self {
            Reader::Top => "top -b -d 0.2".to_owned(),
            // procps-ng 4.0.2's vmstat takes whole seconds only (`vmstat 0.2` fails to parse).
            Reader::Vmstat => "vmstat 1".to_owned(),
            Reader::Pread | Reader::Reopen => format!(
                "/usr/bin/python3 reader.py {} {} {mem_total_kb}",
                self.name(),
                log.display()
            ),
        }
    }

    /// Whether its reads are logged one by one (the Python readers); top's and vmstat's stalls are seen
    /// as gaps in their output instead.
    fn logs_reads(self) -> bool {
        matches!(self, Reader::Pread | Reader::Reopen)
    }

    /// How often it writes output when nothing stalls it, for the report.
    fn nominal_interval_ms(self) -> u64 {
        match self {
            Reader::Top => 200,
            Reader::Vmstat => 1000,
            Reader::Pread | Reader::Reopen => 20,
        }
    }
}

/// A simulated container running every [`Reader`] against one daemon's files.
struct Container {
    label: String,
    limit_mib: u64,
    init: Child,
    work: tempfile::TempDir,
    /// Dropped after `init` is killed; kills whatever is left in it.
    _cgroup: TestCgroup,
}

impl Container {
    fn start(label: &str, daemon: &Daemon, limit_mib: u64) -> Container {
        let cgroup = TestCgroup::new(label, &["memory", "cpuset"]);
        cgroup.set(
            "memory",
            "memory.limit_in_bytes",
            &(limit_mib * MIB).to_string(),
        );
        // CPU 0 only: the container's `online` reads "0" and its /proc/stat has a cpu0 line alone.
        cgroup.set("cpuset", "cpuset.cpus", "0");
        cgroup.set("cpuset", "cpuset.mems", "0");
        let work = tempfile::Builder::new()
            .prefix("cgview-continuity-")
            .tempdir()
            .unwrap();
        fs::write(work.path().join("reader.py"), READER_PY).unwrap();
        let mnt = daemon.mount_point.display();
        let mut script = format!(
            "set -e
for f in meminfo stat uptime loadavg; do mount --bind {mnt}/proc/$f /proc/$f; done
mount --bind {mnt}/sys/devices/system/cpu/online /sys/devices/system/cpu/online
set +e
cd {work}
run() {{ name=$1; shift; \"$@\" > $name.out 2> $name.err; echo $? > $name.exit; }}
",
            work = work.path().display()
        );
        for reader in Reader::ALL {
            let log = work.path().join(format!("{}.log", reader.name()));
            writeln!(
                script,
                "run {} {} &",
                reader.name(),
                reader.command(&log, limit_mib * 1024)
            )
            .unwrap();
        }
        script.push_str("wait\n");
        let init_script = work.path().join("init.sh");
        fs::write(&init_script, script).unwrap();
        // The pid namespace's init is `sh`: killing it (Drop) ends every reader at once.
        let init = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{}; exec unshare --mount --pid --fork --mount-proc sh {}",
                cgroup.enter_script(),
                init_script.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(work.path().join("init.err")).unwrap())
            .spawn()
            .unwrap();
        Container {
            label: label.to_owned(),
            limit_mib,
            init,
            work,
            _cgroup: cgroup,
        }
    }

    fn file(&self, reader: Reader, suffix: &str) -> PathBuf {
        self.work.path().join(format!("{}.{suffix}", reader.name()))
    }

    /// Where the output that shows a reader is alive goes: the Python readers' logs, top's and
    /// vmstat's standard output.
    fn progress_file(&self, reader: Reader) -> PathBuf {
        self.file(reader, if reader.logs_reads() { "log" } else { "out" })
    }

    fn text(&self, reader: Reader, suffix: &str) -> String {
        fs::read_to_string(self.file(reader, suffix)).unwrap_or_default()
    }

    /// The reads a Python reader logged so far.
    fn reads(&self, reader: Reader) -> Vec<ReadRecord> {
        self.text(reader, "log")
            .lines()
            .filter_map(ReadRecord::parse)
            .collect()
    }

    /// Waits until top and vmstat have written output and each Python reader has made a right read.
    fn wait_until_reading(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = Reader::ALL.iter().all(|&reader| {
                if reader.logs_reads() {
                    self.reads(reader).iter().any(|r| r.failure.is_none())
                } else {
                    !self.text(reader, "out").is_empty()
                }
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the readers of {} did not start within 15 s:\n{}",
                self.label,
                self.diagnostics()
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// The readers that have exited, each with its status and standard error.
    fn exits(&self) -> Vec<String> {
        Reader::ALL
            .iter()
            .filter(|&&reader| self.file(reader, "exit").exists())
            .map(|&reader| {
                format!(
                    "{} in {} exited with {}: {}",
                    reader.name(),
                    self.label,
                    self.text(reader, "exit").trim(),
                    self.text(reader, "err").trim()
                )
            })
            .collect()
    }

    /// Everything the container's shell and readers said on standard error, for a failure message.
    fn diagnostics(&self) -> String {
        let mut text = format!(
            "init: {}\n",
            fs::read_to_string(self.work.path().join("init.err")).unwrap_or_default()
        );
        for reader in Reader::ALL {
            writeln!(text, "{}: {}", reader.name(), self.text(reader, "err")).unwrap();
        }
        text
    }

    /// `MiB Mem :  256.0 total` in top's last complete frame, in MiB.
    fn top_mem_total_mib(&self) -> Option<f64> {
        let out = self.text(Reader::Top, "out");
        let line = out.lines().rev().find(|l| l.starts_with("MiB Mem"))?;
        line.split(':')
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// The `free` column of vmstat's last row, in kB.
    fn vmstat_free_kb(&self) -> Option<u64> {
        let out = self.text(Reader::Vmstat, "out");
        let header: Vec<&str> = out
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == "swpd"))?
            .split_whitespace()
            .collect();
        let column = header.iter().position(|w| *w == "free")?;
        let last = out
            .lines()
            .rev()
            .find(|l| l.split_whitespace().count() == header.len())?;
        last.split_whitespace().nth(column)?.parse().ok()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.init.kill();
        let _ = self.init.wait();
    }
}

/// One read a Python reader logged.
#[derive(Debug, Clone)]
struct ReadRecord {
    file: String,
    start_ns: u64,
    took_ns: u64,
    failure: Option<String>,
}

impl ReadRecord {
    /// A log line; `None` for the line being written when the log was read.
    fn parse(line: &str) -> Option<ReadRecord> {
        let mut fields = line.splitn(4, ' ');
        let file = fields.next()?.to_owned();
        let start_ns = fields.next()?.parse().ok()?;
        let took_ns = fields.next()?.parse().ok()?;
        let failure = match fields.next()? {
            "ok" => None,
            outcome => Some(outcome.strip_prefix("FAIL ")?.to_owned()),
        };
        Some(ReadRecord {
            file,
            start_ns,
            took_ns,
            failure,
        })
    }

    fn end_ns(&self) -> u64 {
        self.start_ns + self.took_ns
    }
}

/// A span of wall-clock time, in ns since the epoch.
#[derive(Debug, Clone, Copy)]
struct Window {
    start_ns: u64,
    end_ns: u64,
}

impl Window {
    fn overlaps(&self, start_ns: u64, end_ns: u64) -> bool {
        start_ns < self.end_ns && end_ns > self.start_ns
    }
}

/// Watches top's and vmstat's output files grow (they log no read times of their own): the times each
/// grew are where those readers made progress, and the longest gap between two is their stall.
struct OutputWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Vec<u64>>>>,
}

impl OutputWatch {
    fn start(files: Vec<PathBuf>) -> OutputWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut sizes = vec![0u64; files.len()];
            let mut grew_at = vec![Vec::new(); files.len()];
            while !stopped.load(Ordering::Relaxed) {
                let now = wall_clock_ns();
                for (i, file) in files.iter().enumerate() {
                    let size = fs::metadata(file).map(|m| m.len()).unwrap_or(0);
                    if size > sizes[i] {
                        sizes[i] = size;
                        grew_at[i].push(now);
                    }
                }
                sleep(Duration::from_millis(5));
            }
            grew_at
        });
        OutputWatch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops watching; for each file, when it grew.
    fn finish(mut self) -> Vec<Vec<u64>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for OutputWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long one scenario may take before it counts as hung: beyond the waits of the slowest (a
/// take-over: up to 10 s for the successor to take over, 10 s to serve, 10 s for the old daemon to
/// exit), which fail by themselves; a passing scenario takes a few seconds at most.
const SCENARIO_LIMIT: Duration = Duration::from_secs(35);

/// How long the whole sequence may take before the scenarios left are skipped: it passes in about 15 s,
/// and a scenario whose daemon never serves costs the 10 s `Daemon` waits for one, or more. With one
/// last scenario that hangs, a failing test still ends within two minutes.
const SEQUENCE_BUDGET: Duration = Duration::from_secs(60);

/// Ends a hang the test itself is caught in (its own reads of the mount wait like the readers'): if not
/// dropped within `limit`, it SIGKILLs every daemon and keeper of the mount point, which closes the
/// connection's last descriptor; the kernel then aborts the connection and every call waiting on it
/// returns an error. The keeper's bound does not cover this: it counts only while no daemon serves, and
/// a daemon that runs but never answers is serving.
struct HangWatchdog {
    done: Arc<(Mutex<bool>, Condvar)>,
    fired: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HangWatchdog {
    fn start(mount_point: &Path, limit: Duration) -> HangWatchdog {
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let fired = Arc::new(AtomicBool::new(false));
        let (watched_done, watched_fired) = (done.clone(), fired.clone());
        let mount_point = mount_point.to_owned();
        let thread = std::thread::spawn(move || {
            let (lock, wake) = &*watched_done;
            let finished = lock.lock().unwrap_or_else(|e| e.into_inner());
            let (finished, _) = wake
                .wait_timeout_while(finished, limit, |finished| !*finished)
                .unwrap_or_else(|e| e.into_inner());
            if *finished {
                return;
            }
            watched_fired.store(true, Ordering::SeqCst);
            // As the test's cleanup does it, sockets included: the keepers are gone before it runs.
            kill_daemons_and_keepers(&mount_point);
        });
        HangWatchdog {
            done,
            fired,
            thread: Some(thread),
        }
    }

    /// Whether the limit passed and the connection was ended.
    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for HangWatchdog {
    fn drop(&mut self) {
        let (lock, wake) = &*self.done;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The longest gap between growths of an output (ending at `until` if it stopped growing) that
/// overlaps `window`, or the whole run's longest with `None`; in ns.
fn longest_output_gap(grew_at: &[u64], until: u64, window: Option<Window>) -> u64 {
    grew_at
        .iter()
        .zip(grew_at.iter().skip(1).chain([&until]))
        .filter(|(from, to)| window.is_none_or(|w| w.overlaps(**from, **to)))
        .map(|(from, to)| to.saturating_sub(*from))
        .max()
        .unwrap_or(0)
}

/// What happens to the daemon in one step of the sequence; readers run throughout.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// `kill -9`, and a new daemon started after `restart_after`.
    KillThenRestart { restart_after: Duration },
    /// A new daemon takes over while the old one runs, then the old one gets SIGTERM (a rollout).
    TakeOver,
    /// SIGTERM, and a new daemon started after `start_after` (`systemctl restart`).
    StopThenStart { start_after: Duration },
    /// `kill -9` and an immediate restart, twice in a row (a crash loop).
    KillAndRestartTwice,
}

/// The sequence issue 17 names, in its order.
const SEQUENCE: [Scenario; 5] = [
    Scenario::KillThenRestart {
        restart_after: Duration::ZERO,
    },
    Scenario::TakeOver,
    Scenario::StopThenStart {
        start_after: Duration::from_millis(500),
    },
    Scenario::KillThenRestart {
        restart_after: Duration::from_secs(3),
    },
    Scenario::KillAndRestartTwice,
];

impl Scenario {
    fn describe(self) -> String {
        match self {
            Scenario::KillThenRestart { restart_after } if restart_after.is_zero() => {
                "kill -9, restart at once".to_owned()
            }
            Scenario::KillThenRestart { restart_after } => {
                format!(
                    "kill -9, restart {:.1} s later",
                    restart_after.as_secs_f64()
                )
            }
            Scenario::TakeOver => "take-over upgrade, then SIGTERM to the old".to_owned(),
            Scenario::StopThenStart { start_after } => {
                format!("SIGTERM, start {:.1} s later", start_after.as_secs_f64())
            }
            Scenario::KillAndRestartTwice => "kill -9 + restart, twice".to_owned(),
        }
    }

    /// Does it; returns once a daemon serves the mount again.
    fn run(self, daemon: &mut Daemon) {
        match self {
            Scenario::KillThenRestart { restart_after } => {
                kill_hard(daemon);
                sleep(restart_after);
                daemon.respawn();
            }
            Scenario::TakeOver => {
                let mut previous = daemon.start_successor();
                // The old daemon may have exited by itself once the new one served; a rollout sends
                // SIGTERM regardless.
                stop_process(&mut previous, "TERM")
                    .expect("the old daemon did not exit within 10 s of SIGTERM");
            }
            Scenario::StopThenStart { start_after } => {
                daemon.stop_with("TERM");
                sleep(start_after);
                daemon.respawn();
            }
            Scenario::KillAndRestartTwice => {
                for _ in 0..2 {
                    kill_hard(daemon);
                    daemon.respawn();
                }
            }
        }
    }
}

fn kill_hard(daemon: &mut Daemon) {
    let mut child = daemon.take_child();
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The shortest scenario window: five rounds of the Python readers.
const SHORTEST_WINDOW: Duration = Duration::from_millis(100);

/// A scenario as it ran: from just before it touched the daemon to when a daemon served again (or
/// [`SHORTEST_WINDOW`] after its start, if later).
struct ScenarioRun {
    scenario: Scenario,
    window: Window,
}

/// Latencies (ns) summarised as the report shows them.
struct Stall {
    reads: usize,
    median_ns: u64,
    p99_ns: u64,
    max_ns: u64,
}

impl Stall {
    fn of(mut latencies: Vec<u64>) -> Option<Stall> {
        if latencies.is_empty() {
            return None;
        }
        latencies.sort_unstable();
        let at = |quantile: f64| {
            let rank = (quantile * latencies.len() as f64).ceil() as usize;
            latencies[rank.clamp(1, latencies.len()) - 1]
        };
        Some(Stall {
            reads: latencies.len(),
            median_ns: at(0.5),
            p99_ns: at(0.99),
            max_ns: *latencies.last().unwrap(),
        })
    }
}

fn ms(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e6)
}

/// What one run of the sequence found, per container and reader.
struct Findings {
    /// Failed reads of the Python readers, with the first few messages.
    failures: Vec<String>,
    /// Scenario windows in which a Python reader logged no read at all (the report would be empty).
    unread_windows: Vec<String>,
    table: String,
}

/// Builds the stall tables (eprinted, and appended to `$CGVIEW_STALL_REPORT`) and gathers failures.
fn examine(
    transport: Transport,
    containers: &[Container],
    runs: &[ScenarioRun],
    grew_at: &[Vec<u64>],
    watched_until: u64,
) -> Findings {
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut table = format!(
        "\n### Reader continuity over {} (Linux {}, 3 containers)\n\n\
         Stalls of the reads that overlapped each scenario (from its first touch of the daemon to a daemon \
         serving again), in ms. For top (-d 0.2) and vmstat (1 s) the stall is the longest gap between \
         two writes of their output that overlapped the scenario, nominal interval included.\n\n\
         | scenario | container | reader | reads | median | p99 | max | failed |\n\
         |---|---|---|---:|---:|---:|---:|---:|\n",
        transport.label(),
        kernel.trim()
    );
    let mut failures = Vec::new();
    let mut unread_windows = Vec::new();
    let mut longest = String::from(
        "\nThe longest stall each reader saw over the whole run (for a Python reader stuck in a read at \
         the end, the time since its last read).\n\n\
         | container | reader | longest stall (ms) | nominal interval (ms) | reads | failed |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    let mut watched = grew_at.iter();
    for container in containers {
        for reader in Reader::ALL {
            let name = format!("{} MiB", container.limit_mib);
            if reader.logs_reads() {
                let reads = container.reads(reader);
                let failed: Vec<&ReadRecord> =
                    reads.iter().filter(|r| r.failure.is_some()).collect();
                if !failed.is_empty() {
                    let examples: Vec<String> = failed
                        .iter()
                        .take(3)
                        .map(|r| format!("{}: {}", r.file, r.failure.as_deref().unwrap()))
                        .collect();
                    failures.push(format!(
                        "{} of {} reads failed in {}'s {} reader, e.g. {}",
                        failed.len(),
                        reads.len(),
                        container.label,
                        reader.name(),
                        examples.join("; ")
                    ));
                }
                for run in runs {
                    let in_window: Vec<&ReadRecord> = reads
                        .iter()
                        .filter(|r| run.window.overlaps(r.start_ns, r.end_ns()))
                        .collect();
                    let failed_here = in_window.iter().filter(|r| r.failure.is_some()).count();
                    match Stall::of(in_window.iter().map(|r| r.took_ns).collect()) {
                        Some(stall) => writeln!(
                            table,
                            "| {} | {name} | {} | {} | {} | {} | {} | {failed_here} |",
                            run.scenario.describe(),
                            reader.name(),
                            stall.reads,
                            ms(stall.median_ns),
                            ms(stall.p99_ns),
                            ms(stall.max_ns),
                        )
                        .unwrap(),
                        None => unread_windows.push(format!(
                            "{}'s {} reader made no read during {}",
                            container.label,
                            reader.name(),
                            run.scenario.describe()
                        )),
                    }
                }
                // A read that never returned is not in the log: the time since the last one counts.
                let since_last_read = reads
                    .iter()
                    .map(ReadRecord::end_ns)
                    .max()
                    .map_or(0, |end| watched_until.saturating_sub(end));
                let longest_stall = reads
                    .iter()
                    .map(|r| r.took_ns)
                    .chain([since_last_read])
                    .max()
                    .unwrap_or(0);
                writeln!(
                    longest,
                    "| {name} | {} | {} | {} | {} | {} |",
                    reader.name(),
                    ms(longest_stall),
                    reader.nominal_interval_ms(),
                    reads.len(),
                    failed.len()
                )
                .unwrap();
            } else {
                let grew = watched.next().expect("an output watched per tool");
                for run in runs {
                    writeln!(
                        table,
                        "| {} | {name} | {} | - | - | - | {} | - |",
                        run.scenario.describe(),
                        reader.name(),
                        ms(longest_output_gap(grew, watched_until, Some(run.window)))
                    )
                    .unwrap();
                }
                writeln!(
                    longest,
                    "| {name} | {} | {} | {} | - | - |",
                    reader.name(),
                    ms(longest_output_gap(grew, watched_until, None)),
                    reader.nominal_interval_ms()
                )
                .unwrap();
            }
        }
    }
    table.push_str(&longest);
    Findings {
        failures,
        unread_windows,
        table,
    }
}

fn publish(table: &str) {
    eprintln!("{table}");
    if let Ok(path) = std::env::var(STALL_REPORT_ENV) {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{STALL_REPORT_ENV}={path}: {e}"));
        file.write_all(table.as_bytes()).unwrap();
    }
}

fn assert_tools_present() {
    for tool in ["/usr/bin/python3", "/usr/bin/top", "/usr/bin/vmstat"] {
        assert!(
            Path::new(tool).exists(),
            "needs {tool} (apt-get install procps python3)"
        );
    }
}

/// Runs `sequence` over `transport` with three containers reading throughout, reports the stalls and
/// asserts that no read failed, no reader exited and every value was the container's.
fn readers_never_notice(transport: Transport, sequence: &[Scenario]) {
    // Declared before the daemon, so dropped after it: a reader whose request a hung daemon had taken
    // waits for the answer uninterruptibly, and only dies once the daemon and its keeper are gone (the
    // connection aborted).
    let mut containers: Vec<Container> = Vec::new();
    let mut daemon = start_daemon(&mount_options(transport, None));
    if transport == Transport::IoUring {
        let log = daemon.log_text();
        assert!(log.contains("serving over io_uring"), "{log}");
    }
    for (label, mib) in [("a", 256), ("b", 384), ("c", 320)] {
        containers.push(Container::start(
            &format!("continuity-{label}"),
            &daemon,
            mib,
        ));
    }
    for container in &containers {
        container.wait_until_reading();
    }
    let watched: Vec<PathBuf> = containers
        .iter()
        .flat_map(|c| {
            Reader::ALL
                .iter()
                .filter(|r| !r.logs_reads())
                .map(|&r| c.progress_file(r))
        })
        .collect();
    let watch = OutputWatch::start(watched);
    // Readers settle into their rhythm before the first scenario, and between scenarios.
    let settle = Duration::from_secs(1);
    sleep(settle);
    let mut runs = Vec::new();
    // A scenario that fails (a daemon that does not serve again in time) is recorded and the sequence
    // goes on, so that one run shows every scenario's failures; a hang ends it (the connection is
    // aborted), and so does the sequence's time budget, to keep the test within its minutes.
    let mut broken_scenarios = Vec::new();
    let sequence_deadline = Instant::now() + SEQUENCE_BUDGET;
    for &scenario in sequence {
        if Instant::now() > sequence_deadline {
            broken_scenarios.push(format!(
                "{}: not run, the sequence's {SEQUENCE_BUDGET:?} were spent",
                scenario.describe()
            ));
            continue;
        }
        let start_ns = wall_clock_ns();
        let watchdog = HangWatchdog::start(&daemon.mount_point, SCENARIO_LIMIT);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // After a failed stop the daemon is gone; the scenario needs one to act on.
            if !daemon.has_process() {
                daemon.respawn();
            }
            scenario.run(&mut daemon)
        }));
        let hung = watchdog.fired();
        drop(watchdog);
        // A take-over can be over between two rounds of the readers; the window spans a few rounds at
        // least so that every reader has reads in it.
        let end_ns = wall_clock_ns().max(start_ns + SHORTEST_WINDOW.as_nanos() as u64);
        runs.push(ScenarioRun {
            scenario,
            window: Window { start_ns, end_ns },
        });
        if hung || outcome.is_err() {
            let why = outcome
                .err()
                .and_then(|panic| {
                    panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                })
                .unwrap_or_default();
            let hang = if hung {
                format!(
                    "hung for {SCENARIO_LIMIT:?}, until the test killed the daemon and keeper to \
                     abort the connection; "
                )
            } else {
                String::new()
            };
            // The first line: the daemon's log, which the panic message may carry, is shown once
            // at the end.
            let why = why.lines().next().unwrap_or_default();
            broken_scenarios.push(format!("{}: {hang}{why}", scenario.describe()));
            if hung {
                break;
            }
        }
        sleep(settle);
    }
    // Every reader must still make progress after the last scenario: vmstat writes once a second.
    let progress_size = |c: &Container, r: Reader| {
        fs::metadata(c.progress_file(r))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let sizes_before: Vec<u64> = containers
        .iter()
        .flat_map(|c| Reader::ALL.map(|r| progress_size(c, r)))
        .collect();
    sleep(Duration::from_millis(2500));
    let sizes_after: Vec<u64> = containers
        .iter()
        .flat_map(|c| Reader::ALL.map(|r| progress_size(c, r)))
        .collect();
    let watched_until = wall_clock_ns();
    let grew_at = watch.finish();

    let findings = examine(transport, &containers, &runs, &grew_at, watched_until);
    publish(&findings.table);
    let log = daemon.log_text();
    eprintln!(
        "daemon log: {} take-overs; {} daemons served over io_uring, {} fell back to /dev/fuse",
        log.matches("took over from the running cgview").count(),
        log.matches("serving over io_uring").count(),
        log.matches("serving over /dev/fuse").count()
    );

    let exits: Vec<String> = containers.iter().flat_map(Container::exits).collect();
    let stalled: Vec<String> = containers
        .iter()
        .flat_map(|c| Reader::ALL.map(|r| (c, r)))
        .zip(sizes_before.iter().zip(&sizes_after))
        .filter(|(_, (before, after))| after <= before)
        .map(|((c, r), _)| format!("{}'s {}", c.label, r.name()))
        .collect();
    let mut wrong_values = Vec::new();
    for container in &containers {
        let top = container.top_mem_total_mib();
        if top != Some(container.limit_mib as f64) {
            wrong_values.push(format!(
                "top in {} shows {top:?} MiB of memory",
                container.label
            ));
        }
        let free = container.vmstat_free_kb();
        if free.is_none_or(|kb| kb > container.limit_mib * 1024) {
            wrong_values.push(format!(
                "vmstat in {} shows {free:?} kB free",
                container.label
            ));
        }
        for reader in [Reader::Top, Reader::Vmstat] {
            let errors = container.text(reader, "err");
            if !errors.trim().is_empty() {
                wrong_values.push(format!(
                    "{} in {} wrote errors: {}",
                    reader.name(),
                    container.label,
                    errors.trim()
                ));
            }
        }
    }
    assert!(
        broken_scenarios.is_empty()
            && findings.failures.is_empty()
            && exits.is_empty()
            && stalled.is_empty()
            && wrong_values.is_empty()
            && findings.unread_windows.is_empty(),
        "over {}:\nscenarios that failed: {broken_scenarios:#?}\nfailed reads: {:#?}\nreader exits: {exits:#?}\nno progress after the last scenario: \
         {stalled:#?}\nwrong values: {wrong_values:#?}\nno read in a scenario: {:#?}\ndaemon log:\n{log}",
        transport.label(),
        findings.failures,
        findings.unread_windows
    );
}

#[test]
fn readers_never_notice_restarts_over_dev_fuse() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    assert_tools_present();
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    readers_never_notice(Transport::DevFuse, &SEQUENCE);
}

/// Polls `done` every 20 ms until it holds or `within` passes; how long it took, or `None`.
fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if done() {
            return Some(start.elapsed());
        }
        if start.elapsed() > within {
            return None;
        }
        sleep(Duration::from_millis(20));
    }
}

/// Killed with no daemon coming back, the connection is given up after `--resume-within`: a reader
/// holding a file open gets an error (ECONNABORTED or ENOTCONN) instead of waiting forever, the mount is
/// gone (the next start mounts afresh) and so is the keeper.
#[test]
fn with_no_daemon_back_readers_get_an_error_after_the_bound() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    assert_tools_present();
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let resume_within = Duration::from_secs(2);
    // Dropped after the daemon, as in readers_never_notice.
    let mut container = None;
    let mut daemon = start_daemon(&mount_options(
        Transport::DevFuse,
        Some(resume_within.as_secs() as u32),
    ));
    let container = container.insert(Container::start("bound", &daemon, 256));
    container.wait_until_reading();
    let first_failure = || {
        container
            .reads(Reader::Pread)
            .into_iter()
            .find(|r| r.failure.is_some())
    };
    assert!(
        first_failure().is_none(),
        "a read failed before the kill:\n{}",
        container.diagnostics()
    );

    let killed_at = wall_clock_ns();
    kill_hard(&mut daemon);
    // The bound, and slack for a keeper on a busy machine; beyond it the reader hangs.
    let slack = Duration::from_secs(6);
    let mut failure = None;
    wait_until(resume_within + slack, || {
        failure = first_failure();
        failure.is_some()
    });
    let failure = failure.unwrap_or_else(|| {
        panic!(
            "no read failed within {:?} of the kill: the pread reader hangs\ndaemon log:\n{}",
            resume_within + slack,
            daemon.log_text()
        )
    });
    let error_after = Duration::from_nanos(failure.end_ns().saturating_sub(killed_at));
    eprintln!(
        "bound {resume_within:?}: the pread reader's {} read failed {error_after:?} after the kill: {}",
        failure.file,
        failure.failure.as_deref().unwrap()
    );
    let why = failure.failure.as_deref().unwrap();
    assert!(
        why.starts_with("pread: errno 103 ") || why.starts_with("pread: errno 107 "),
        "not ECONNABORTED or ENOTCONN: {why}"
    );
    // Before the bound, readers wait for a successor; 0.5 s of slack for the two clocks' reading.
    assert!(
        error_after + Duration::from_millis(500) >= resume_within,
        "the read failed after {error_after:?}, before the {resume_within:?} bound"
    );
    let gone = wait_until(Duration::from_secs(3), || {
        !is_mounted(&daemon.mount_point) && keeper_pids(&daemon.mount_point).is_empty()
    });
    assert!(
        gone.is_some(),
        "3 s after the reader's error: mounted {}, keepers {:?}\n{}",
        is_mounted(&daemon.mount_point),
        keeper_pids(&daemon.mount_point),
        daemon.log_text()
    );
}

/// A plain stop with no start after it: the keeper holds the mount for `--resume-within`, then gives it
/// up, leaving no mount and no keeper (what a stop did at once before the keeper).
#[test]
fn a_stop_with_no_start_after_it_leaves_nothing_after_the_bound() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let resume_within = Duration::from_secs(1);
    let mut daemon = start_daemon(&mount_options(
        Transport::DevFuse,
        Some(resume_within.as_secs() as u32),
    ));
    let status = daemon.stop_with("TERM");
    let stopped = Instant::now();
    assert!(status.success(), "{status}\n{}", daemon.log_text());
    assert!(
        is_mounted(&daemon.mount_point) && !keeper_pids(&daemon.mount_point).is_empty(),
        "right after the stop, within the bound, the keeper should hold the mount for a successor: \
         mounted {}, keepers {:?}",
        is_mounted(&daemon.mount_point),
        keeper_pids(&daemon.mount_point)
    );
    let gone = wait_until(resume_within + Duration::from_secs(4), || {
        !is_mounted(&daemon.mount_point) && keeper_pids(&daemon.mount_point).is_empty()
    });
    eprintln!(
        "bound {resume_within:?}: mount and keeper gone {:?} after the stop",
        gone.map(|_| stopped.elapsed())
    );
    assert!(
        gone.is_some(),
        "{:?} after the stop: mounted {}, keepers {:?}\n{}",
        stopped.elapsed(),
        is_mounted(&daemon.mount_point),
        keeper_pids(&daemon.mount_point),
        daemon.log_text()
    );
}
