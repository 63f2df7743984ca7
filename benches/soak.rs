//! Soak benchmark (issue 15, "Also"): a daemon serving steady readers while cgroups are created,
//! limited, read, removed and re-created at the same path, for `CGVIEW_SOAK_SECONDS` (default 600).
//!
//! - `CGVIEW_SOAK_READERS` (default 8) steady readers, each in its own cgroups (its own memory limit) and
//!   pid namespace, read `proc/meminfo`, `proc/stat`, `proc/cpuinfo` and `proc/uptime` both by
//!   open-read-close and by rereading a kept-open descriptor from offset 0, every
//!   `CGVIEW_SOAK_PAUSE_MS` (default 5) ms, checking `MemTotal` and the container's uptime.
//! - `CGVIEW_SOAK_CHURNERS` (default 2) churn loops, each owning one cgroup path: create it with a memory
//!   limit different from the last one it had, start three readers in it (each a new process, three
//!   reads 10 ms apart: the first in the host's pid namespace, as a restarted systemd service or a hostPID
//!   pod, the others in new pid namespaces, as containers), remove it, and again. Every read must show the
//!   *new* limit; a read showing an earlier one is counted as stale (issue 15, item 3).
//! - Every 5 s the daemon's RSS and open descriptors are sampled.
//!
//! Prints progress and a summary (peak and final RSS and descriptors; reads, failed and wrong) and writes
//! them to `benches/results/soak-<date>[-<CGVIEW_BENCH_LABEL>].txt`. `CGVIEW_SOAK_NOFILE=N` starts the
//! daemon under `prlimit --nofile=N:N`. With `CGVIEW_BENCH_ASSERT=1` it exits non-zero on any failed or
//! wrong read. Run as root: `cargo bench --bench soak`.

#[path = "../tests/mounted_support/mod.rs"]
mod mounted_support;
mod support;

use mounted_support::{Daemon, TestCgroup, MIB};
use parking_lot::Mutex;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};
use support::*;

const NAME: &str = "soak";
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Readers started in each new cgroup, and reads by each.
const READERS_PER_CGROUP: usize = 3;
const READS_PER_READER: usize = 3;
/// Which of a cgroup's readers runs in the host's pid namespace.
const HOST_PID_READER: usize = 0;
const EXAMPLES_KEPT: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--reader") => return steady_reader(&args[2..]),
        Some("--churn-reader") => return churn_reader(&args[2..]),
        _ => {}
    }
    if !should_run(NAME) {
        return;
    }
    let seconds: u64 = env_or("CGVIEW_SOAK_SECONDS", 600);
    let readers: usize = env_or("CGVIEW_SOAK_READERS", 8);
    let churners: usize = env_or("CGVIEW_SOAK_CHURNERS", 2);
    let pause_ms: u64 = env_or("CGVIEW_SOAK_PAUSE_MS", 5);
    let nofile: Option<u64> = std::env::var("CGVIEW_SOAK_NOFILE")
        .ok()
        .and_then(|v| v.parse().ok());

    let limit = nofile.map(|n| format!("--nofile={n}:{n}"));
    let wrapper: Vec<&str> = match &limit {
        Some(limit) => vec!["prlimit", limit, "--"],
        None => vec![],
    };
    // Declared so that workers die before their cgroups go, and both before the daemon.
    let daemon = Daemon::start(&wrapper, &[]);
    let pid = daemon.pid();
    let mut report = Report::new(NAME);
    report.line(&format!(
        "{seconds} s; {readers} steady readers (pause {pause_ms} ms); {churners} churn loops, \
         {READERS_PER_CGROUP} new readers x {READS_PER_READER} reads per cgroup; daemon soft RLIMIT_NOFILE {}",
        soft_nofile(pid).map_or("?".into(), |n| n.to_string())
    ));

    let reader_cgroups: Vec<TestCgroup> = (0..readers)
        .map(|i| {
            let cgroup = TestCgroup::new("soak-reader", &["memory", "cpu", "cpuacct"]);
            cgroup.set(
                "memory",
                "memory.limit_in_bytes",
                &(reader_limit_bytes(i)).to_string(),
            );
            cgroup
        })
        .collect();
    let churn_parent = Arc::new(TestCgroup::new("soak-churn", &["memory", "cpu", "cpuacct"]));
    let mut steady = Children::default();
    let mnt = daemon.mount_point.clone();
    for (i, cgroup) in reader_cgroups.iter().enumerate() {
        steady.0.push(spawn_worker(
            cgroup,
            "--reader",
            &[
                mnt.to_string_lossy().into_owned(),
                seconds.to_string(),
                (reader_limit_bytes(i) / 1024).to_string(),
                pause_ms.to_string(),
            ],
        ));
    }

    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let tally = Arc::new(Mutex::new(ChurnTally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..churners)
        .map(|slot| {
            let (parent, tally, stop) = (churn_parent.clone(), tally.clone(), stop.clone());
            let meminfo = mnt.join("proc/meminfo");
            std::thread::spawn(move || churn_loop(&parent, slot, &meminfo, end, &stop, &tally))
        })
        .collect();

    report.line(&format!(
        "\n{:>6} {:>9} {:>6} {:>8} {:>11} {:>7} {:>6}",
        "t s", "RSS MB", "fds", "cgroups", "churn reads", "failed", "wrong"
    ));
    let mut rss_samples = Vec::new();
    let mut fd_samples = Vec::new();
    let mut daemon_alive = true;
    while Instant::now() < end {
        sleep(SAMPLE_EVERY.min(end.saturating_duration_since(Instant::now())));
        let (Some(rss), Some(fds)) = (rss_kb(pid), open_descriptors(pid)) else {
            daemon_alive = false;
            report.line("the daemon is gone");
            break;
        };
        rss_samples.push(rss);
        fd_samples.push(fds);
        let t = tally.lock();
        report.line(&format!(
            "{:>6} {:>9.1} {:>6} {:>8} {:>11} {:>7} {:>6}",
            started.elapsed().as_secs(),
            rss as f64 / 1024.0,
            fds,
            t.cgroups,
            t.reads,
            t.failed,
            t.stale + t.other
        ));
    }
    stop.store(true, Ordering::Relaxed);
    let mut loop_panics = 0;
    for handle in loops {
        if handle.join().is_err() {
            loop_panics += 1;
        }
    }
    let mut steady_total = ReadTally::default();
    let mut steady_examples = Vec::new();
    let mut steady_lost = 0;
    for child in &mut steady.0 {
        match output_by(child, Instant::now() + Duration::from_secs(60)) {
            Some(out) => {
                let mut lines = out.lines();
                match lines.next().and_then(ReadTally::parse) {
                    Some(t) => steady_total.add(&t),
                    None => steady_lost += 1,
                }
                if steady_examples.len() < EXAMPLES_KEPT {
                    steady_examples.extend(lines.map(str::to_owned).take(2));
                }
            }
            None => steady_lost += 1,
        }
    }

    let t = tally.lock();
    let mb = |kb: Option<&u64>| kb.map_or("?".into(), |kb| format!("{:.1}", *kb as f64 / 1024.0));
    let count = |n: Option<&usize>| n.map_or("?".into(), |n| n.to_string());
    report.line(&format!(
        "\nsummary after {:.0} s\n{:<22} {:>8} {:>8}\n{:<22} {:>8} {:>8}\n{:<22} {:>8} {:>8}",
        started.elapsed().as_secs_f64(),
        "daemon",
        "peak",
        "final",
        "RSS MB",
        mb(rss_samples.iter().max()),
        mb(rss_samples.last()),
        "open descriptors",
        count(fd_samples.iter().max()),
        count(fd_samples.last()),
    ));
    report.line(&format!(
        "{:<22} {:>8} {:>8} {:>8}\n{:<22} {:>8} {:>8} {:>8}\n{:<22} {:>8} {:>8} {:>8}",
        "reads",
        "total",
        "failed",
        "wrong",
        "steady readers",
        steady_total.reads,
        steady_total.failed,
        steady_total.wrong,
        "churn readers",
        t.reads,
        t.failed,
        t.stale + t.other,
    ));
    report.line(&format!(
        "cgroups created and removed: {}; churn readers started: {}; first reads after a re-creation \
         wrong: {} of {} in the host pid namespace, {} of {} in their own; wrong churn reads: {} showed \
         an earlier limit of the cgroup, {} another value (the host's, say)",
        t.cgroups,
        t.readers,
        t.first_wrong[1],
        t.first_reads[1],
        t.first_wrong[0],
        t.first_reads[0],
        t.stale,
        t.other
    ));
    if steady_lost + loop_panics > 0 || !daemon_alive {
        report.line(&format!(
            "lost: {steady_lost} steady readers did not report, {loop_panics} churn loops panicked, daemon alive: {daemon_alive}"
        ));
    }
    for example in steady_examples.iter().chain(&t.examples) {
        report.line(&format!("  e.g. {example}"));
    }
    let path = report.save();
    println!("written to {}", path.display());

    let bad = steady_total.failed + steady_total.wrong + t.failed + t.stale + t.other;
    if std::env::var("CGVIEW_BENCH_ASSERT").is_ok_and(|v| v == "1")
        && (bad > 0 || steady_lost + loop_panics > 0 || !daemon_alive)
    {
        eprintln!("{NAME}: {bad} failed or wrong reads");
        std::process::exit(1);
    }
}

fn reader_limit_bytes(reader: usize) -> u64 {
    (256 + 32 * reader as u64) * MIB
}

/// The memory limit of a churn slot's `generation`: never the one before it.
fn churn_limit_bytes(slot: usize, generation: u64) -> u64 {
    (128 + (generation * 7 + slot as u64 * 3) % 32 * 8) * MIB
}

#[derive(Default)]
struct ChurnTally {
    cgroups: u64,
    readers: u64,
    reads: u64,
    failed: u64,
    /// Reads showing a limit the cgroup had before it was removed and re-created.
    stale: u64,
    /// Reads showing anything else that is not the limit (the host's memory, say).
    other: u64,
    /// First reads of each reader after its cgroup was (re-)created, and how many were wrong; [own pid
    /// namespace, host pid namespace].
    first_reads: [u64; 2],
    first_wrong: [u64; 2],
    examples: Vec<String>,
}

/// One churn loop: creates `slot-<slot>` under `parent` with a new limit, reads it from new containers,
/// removes it, and again until `end`.
fn churn_loop(
    parent: &TestCgroup,
    slot: usize,
    meminfo: &Path,
    end: Instant,
    stop: &AtomicBool,
    tally: &Mutex<ChurnTally>,
) {
    let name = format!("slot-{slot}");
    let mut previous_kb: Option<u64> = None;
    let mut earlier_kb = std::collections::HashSet::new();
    let mut generation = 0;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        let limit = churn_limit_bytes(slot, generation);
        let want_kb = limit / 1024;
        let cgroup = parent.child(&name);
        cgroup.set("memory", "memory.limit_in_bytes", &limit.to_string());
        let mut readers = Children::default();
        let reader_args = [
            meminfo.to_string_lossy().into_owned(),
            READS_PER_READER.to_string(),
        ];
        for reader in 0..READERS_PER_CGROUP {
            readers.0.push(if reader == HOST_PID_READER {
                spawn_host_pid_worker(&cgroup, "--churn-reader", &reader_args)
            } else {
                spawn_worker(&cgroup, "--churn-reader", &reader_args)
            });
        }
        let outputs: Vec<Option<String>> = readers
            .0
            .iter_mut()
            .map(|child| output_by(child, Instant::now() + Duration::from_secs(30)))
            .collect();
        let mut t = tally.lock();
        t.cgroups += 1;
        for (reader, out) in outputs.into_iter().enumerate() {
            let host_pid = reader == HOST_PID_READER;
            t.readers += 1;
            let Some(out) = out else {
                t.failed += 1;
                note(
                    &mut t,
                    format!("{name} gen {generation}: a reader hung for 30 s"),
                );
                continue;
            };
            for (i, value) in out.split_whitespace().enumerate() {
                t.reads += 1;
                if i == 0 {
                    t.first_reads[usize::from(host_pid)] += 1;
                }
                let shown: Option<u64> = value.parse().ok();
                let verdict = match shown {
                    Some(kb) if kb == want_kb => continue,
                    None => {
                        t.failed += 1;
                        "failed"
                    }
                    Some(kb) if earlier_kb.contains(&kb) => {
                        t.stale += 1;
                        "stale"
                    }
                    Some(_) => {
                        t.other += 1;
                        "wrong"
                    }
                };
                if i == 0 && verdict != "failed" {
                    t.first_wrong[usize::from(host_pid)] += 1;
                }
                let pid_ns = if host_pid {
                    "host pid ns"
                } else {
                    "own pid ns"
                };
                note(
                    &mut t,
                    format!("{name} gen {generation}, {pid_ns}, read {i}: {verdict} {value} (want {want_kb} kB, before {previous_kb:?})"),
                );
            }
        }
        drop(t);
        drop(readers);
        // Dropping the guard removes the cgroup (its readers have exited); the next one is new.
        drop(cgroup);
        previous_kb = Some(want_kb);
        earlier_kb.insert(want_kb);
        generation += 1;
    }
}

fn note(t: &mut ChurnTally, example: String) {
    if t.examples.len() < EXAMPLES_KEPT {
        t.examples.push(example);
    }
}

/// `--churn-reader <meminfo> <reads>`: reads 10 ms apart and prints, for each, the `MemTotal` in kB
/// or `failed:<error>`.
fn churn_reader(args: &[String]) {
    enter_cgroups_from_env();
    let path = PathBuf::from(&args[0]);
    let reads: usize = args[1].parse().unwrap();
    let mut buf = Vec::new();
    let mut shown = Vec::new();
    for i in 0..reads {
        if i > 0 {
            sleep(Duration::from_millis(10));
        }
        shown.push(match read_whole(&path, &mut buf) {
            Ok(()) => mem_total_kb(&buf).map_or("unparsable".into(), |kb| kb.to_string()),
            Err(e) => format!("failed:{}", e.raw_os_error().unwrap_or(0)),
        });
    }
    println!("{}", shown.join(" "));
}

#[derive(Default)]
struct ReadTally {
    reads: u64,
    failed: u64,
    wrong: u64,
}

impl ReadTally {
    fn parse(line: &str) -> Option<ReadTally> {
        let mut f = line.split_whitespace().map(|v| v.parse().ok());
        Some(ReadTally {
            reads: f.next()??,
            failed: f.next()??,
            wrong: f.next()??,
        })
    }

    fn add(&mut self, other: &ReadTally) {
        self.reads += other.reads;
        self.failed += other.failed;
        self.wrong += other.wrong;
    }
}

const STEADY_FILES: [&str; 4] = ["proc/meminfo", "proc/stat", "proc/cpuinfo", "proc/uptime"];

/// `--reader <mnt> <seconds> <MemTotal kB> <pause ms>`: reads the four files by open-read-close and by
/// rereading kept-open descriptors until `seconds` have passed; prints `reads failed wrong`, then up to
/// three examples of what went wrong.
fn steady_reader(args: &[String]) {
    enter_cgroups_from_env();
    let born = Instant::now();
    let mnt = PathBuf::from(&args[0]);
    let end = born + Duration::from_secs(args[1].parse().unwrap());
    let want_kb: u64 = args[2].parse().unwrap();
    let pause = Duration::from_millis(args[3].parse().unwrap());
    let mut tally = ReadTally::default();
    let mut examples = Vec::new();
    let mut kept: [Option<std::fs::File>; 4] = Default::default();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut kept_buf = vec![0u8; 64 * 1024];
    while Instant::now() < end {
        for (i, name) in STEADY_FILES.iter().enumerate() {
            let path = mnt.join(name);
            for keep in [false, true] {
                tally.reads += 1;
                let result = if keep {
                    reread_kept(&mut kept[i], &path, &mut kept_buf).map(|n| &kept_buf[..n])
                } else {
                    read_whole(&path, &mut buf).map(|()| &buf[..])
                };
                let problem = match result {
                    Err(e) => {
                        tally.failed += 1;
                        kept[i] = None;
                        Some(format!("{name}: {e}"))
                    }
                    Ok(text) => {
                        steady_problem(name, text, want_kb, born).inspect(|_| tally.wrong += 1)
                    }
                };
                if let Some(problem) = problem {
                    if examples.len() < 3 {
                        let how = if keep { "kept" } else { "fresh" };
                        examples.push(format!(
                            "steady reader at {:.0} s, {how}: {problem}",
                            born.elapsed().as_secs_f64()
                        ));
                    }
                }
            }
        }
        sleep(pause);
    }
    println!("{} {} {}", tally.reads, tally.failed, tally.wrong);
    for example in examples {
        println!("{example}");
    }
}

/// Rereads a kept-open file from offset 0 (a fresh snapshot, as procfs), opening it first if needed.
fn reread_kept(
    kept: &mut Option<std::fs::File>,
    path: &Path,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    if kept.is_none() {
        *kept = Some(std::fs::File::open(path)?);
    }
    kept.as_ref().unwrap().read_at(buf, 0)
}

/// What is wrong with a steady reader's read, if anything. The reader is its namespace's init, so the
/// container is as old as the reader.
fn steady_problem(name: &str, text: &[u8], want_kb: u64, born: Instant) -> Option<String> {
    if text.is_empty() {
        return Some(format!("{name}: empty"));
    }
    match name {
        "proc/meminfo" => match mem_total_kb(text) {
            Some(kb) if kb == want_kb => None,
            shown => Some(format!("MemTotal {shown:?} kB, want {want_kb}")),
        },
        "proc/uptime" => {
            let up: Option<f64> = std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.split_whitespace().next()?.parse().ok());
            let age = born.elapsed().as_secs_f64();
            match up {
                Some(up) if (0.0..=age + 5.0).contains(&up) => None,
                _ => Some(format!(
                    "uptime {:?} in a container {age:.0} s old",
                    String::from_utf8_lossy(text).trim()
                )),
            }
        }
        _ => None,
    }
}
