//! Noisy-neighbour benchmark (issue 15, item 2): how long one container's `/proc/meminfo` reads take
//! while another container's thousands of threads read `/proc/stat` in a loop.
//!
//! Mounts cgview; a victim container (its own cgroups, 512 MiB, its own pid namespace) opens, reads to
//! the end and closes `<mnt>/proc/meminfo` every `CGVIEW_NOISY_PAUSE_US` (default 1000) microseconds for
//! `CGVIEW_NOISY_SECONDS` (default 20), checking `MemTotal` on every read; once alone, then once while a
//! neighbour container (its own cgroups and pid namespace) runs `CGVIEW_NOISY_THREADS` (default 5,000)
//! threads with 64 KiB stacks, each reading `<mnt>/proc/stat` in a loop. Prints the victim's latency
//! percentiles for both runs and writes them to `benches/results/noisy-neighbour-<date>.txt` (with
//! `-<CGVIEW_BENCH_LABEL>` before `.txt` when set).
//!
//! Run as root: `cargo bench --bench noisy_neighbour`. With `CGVIEW_BENCH_ASSERT=1` it exits non-zero
//! when a victim read failed or was wrong, or the slowest read with the neighbour took 50 ms or more
//! (the target on a 2-CPU VM). `CGVIEW_BENCH_MOUNT_ARGS` adds options to `cgview mount`.

#[path = "../tests/mounted_support/mod.rs"]
mod mounted_support;
mod support;

use mounted_support::{Daemon, TestCgroup, MIB};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};
use support::*;

const NAME: &str = "noisy_neighbour";
const VICTIM_MEMORY_BYTES: u64 = 512 * MIB;
/// The target for the slowest victim read with the neighbour running.
const TARGET_MAX: Duration = Duration::from_millis(50);
/// The neighbour runs this long before the victim's run starts, so the victim meets it in full swing.
const WARM_UP: Duration = Duration::from_secs(2);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--victim") => return victim(&args[2..]),
        Some("--neighbour") => return neighbour(&args[2..]),
        _ => {}
    }
    if !should_run(NAME) {
        return;
    }
    let seconds: u64 = env_or("CGVIEW_NOISY_SECONDS", 20);
    let threads: usize = env_or("CGVIEW_NOISY_THREADS", 5000);
    let pause_us: u64 = env_or("CGVIEW_NOISY_PAUSE_US", 1000);
    let mount_args = std::env::var("CGVIEW_BENCH_MOUNT_ARGS").unwrap_or_default();
    let mount_args: Vec<&str> = mount_args.split_whitespace().collect();

    // Declared so that workers die before their cgroups go, and both before the daemon.
    let daemon = Daemon::start(&[], &mount_args);
    let victim_cgroup = TestCgroup::new("noisy-victim", &["memory", "cpu", "cpuacct"]);
    victim_cgroup.set(
        "memory",
        "memory.limit_in_bytes",
        &VICTIM_MEMORY_BYTES.to_string(),
    );
    let neighbour_cgroup =
        TestCgroup::new("noisy-neighbour", &["memory", "cpu", "cpuacct", "pids"]);
    let mut children = Children::default();

    let victim_args = vec![
        daemon.path("proc/meminfo").to_string_lossy().into_owned(),
        seconds.to_string(),
        (VICTIM_MEMORY_BYTES / 1024).to_string(),
        pause_us.to_string(),
    ];
    let run_victim = |children: &mut Children| -> Option<VictimRun> {
        children
            .0
            .push(spawn_worker(&victim_cgroup, "--victim", &victim_args));
        let deadline = Instant::now() + Duration::from_secs(seconds + 120);
        let out = output_by(children.0.last_mut().unwrap(), deadline)?;
        VictimRun::parse(&out)
    };

    let mut report = Report::new("noisy-neighbour");
    report.line(&format!(
        "victim: open + read to EOF + close of proc/meminfo every {pause_us} us for {seconds} s, \
         in its own cgroups (512 MiB) and pid namespace; neighbour: {threads} threads reading proc/stat \
         in a loop, in their own cgroups and pid namespace"
    ));
    let alone = run_victim(&mut children);
    let alone_load = load_average();

    let neighbour_seconds = WARM_UP.as_secs() + seconds + 2;
    let mut neighbour = spawn_worker(
        &neighbour_cgroup,
        "--neighbour",
        &[
            daemon.path("proc/stat").to_string_lossy().into_owned(),
            threads.to_string(),
            neighbour_seconds.to_string(),
        ],
    );
    let mut ready = String::new();
    BufReader::new(neighbour.stdout.as_mut().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let spawned = ready
        .trim()
        .strip_prefix("ready ")
        .unwrap_or("0")
        .to_owned();
    let neighbour_started = Instant::now();
    let neighbour_index = children.0.len();
    children.0.push(neighbour);
    sleep(WARM_UP);
    let daemon_fds_before = open_descriptors(daemon.pid());
    let with = run_victim(&mut children);
    let with_load = load_average();
    let neighbour_out = output_by(
        &mut children.0[neighbour_index],
        neighbour_started + Duration::from_secs(neighbour_seconds + 120),
    );

    report.line(&format!(
        "\n{:<16} {:>7} {:>6} {:>5} {:>9} {:>9} {:>9} {:>10} {:>7}  {}",
        "victim",
        "reads",
        "failed",
        "wrong",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "max us",
        ">=50ms",
        "load after"
    ));
    for (label, run, load) in [
        ("alone", &alone, alone_load),
        ("with neighbour", &with, with_load),
    ] {
        match run {
            Some(run) => report.line(&format!("{label:<16} {run}  {load}")),
            None => report.line(&format!(
                "{label:<16} the victim did not finish within {} s",
                seconds + 120
            )),
        }
    }
    let neighbour_line = match neighbour_out.as_deref().map(str::split_whitespace) {
        Some(mut fields) => {
            let mut number = || -> u64 { fields.next().and_then(|f| f.parse().ok()).unwrap_or(0) };
            let (reads, window_ms, failed) = (number(), number(), number());
            format!(
                "neighbour: {spawned} of {threads} threads started, {reads} reads in {:.1} s ({:.0}/s), {failed} failed",
                window_ms as f64 / 1e3,
                reads as f64 * 1e3 / window_ms.max(1) as f64
            )
        }
        None => "neighbour: still running long after its time; killed".to_owned(),
    };
    report.line(&neighbour_line);
    report.line(&format!(
        "daemon: {} descriptors before the victim's run with the neighbour",
        daemon_fds_before.map_or("?".into(), |n| n.to_string())
    ));
    let path = report.save();
    println!("written to {}", path.display());

    if std::env::var("CGVIEW_BENCH_ASSERT").is_ok_and(|v| v == "1") {
        let verdict = match (&alone, &with) {
            (Some(a), Some(w)) if a.failed + a.wrong + w.failed + w.wrong > 0 => {
                Some("victim reads failed or were wrong".to_owned())
            }
            (Some(_), Some(w)) if w.max >= TARGET_MAX => Some(format!(
                "the slowest victim read with the neighbour took {:.1} ms (target < {} ms)",
                w.max.as_secs_f64() * 1e3,
                TARGET_MAX.as_millis()
            )),
            (Some(_), Some(_)) => None,
            _ => Some("the victim did not finish".to_owned()),
        };
        if let Some(why) = verdict {
            eprintln!("{NAME}: {why}");
            std::process::exit(1);
        }
    }
}

/// One victim run, as its worker reports it.
struct VictimRun {
    reads: u64,
    failed: u64,
    wrong: u64,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
    slow: u64,
}

impl VictimRun {
    /// `reads failed wrong p50_ns p99_ns p999_ns max_ns slow`.
    fn parse(line: &str) -> Option<VictimRun> {
        let f: Vec<u64> = line
            .split_whitespace()
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        let [reads, failed, wrong, p50, p99, p999, max, slow] = f[..] else {
            return None;
        };
        Some(VictimRun {
            reads,
            failed,
            wrong,
            p50: Duration::from_nanos(p50),
            p99: Duration::from_nanos(p99),
            p999: Duration::from_nanos(p999),
            max: Duration::from_nanos(max),
            slow,
        })
    }
}

impl std::fmt::Display for VictimRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        write!(
            f,
            "{:>7} {:>6} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>7}",
            self.reads,
            self.failed,
            self.wrong,
            us(self.p50),
            us(self.p99),
            us(self.p999),
            us(self.max),
            self.slow
        )
    }
}

/// `--victim <meminfo> <seconds> <MemTotal kB> <pause us>`: times every read (failed ones included)
/// and prints `reads failed wrong p50 p99 p99.9 max` (ns) and the count of reads of 50 ms or more.
fn victim(args: &[String]) {
    enter_cgroups_from_env();
    let path = PathBuf::from(&args[0]);
    let seconds: u64 = args[1].parse().unwrap();
    let want_kb: u64 = args[2].parse().unwrap();
    let pause = Duration::from_micros(args[3].parse().unwrap());
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut latencies = Vec::new();
    let (mut failed, mut wrong) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        let started = Instant::now();
        let result = read_whole(&path, &mut buf);
        latencies.push(started.elapsed().as_nanos() as u64);
        match result {
            Err(_) => failed += 1,
            Ok(()) if mem_total_kb(&buf) != Some(want_kb) => wrong += 1,
            Ok(()) => {}
        }
        sleep(pause);
    }
    latencies.sort_unstable();
    let slow = latencies
        .iter()
        .filter(|&&ns| ns >= TARGET_MAX.as_nanos() as u64)
        .count();
    println!(
        "{} {failed} {wrong} {} {} {} {} {slow}",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        latencies.last().copied().unwrap_or(0)
    );
}

/// `--neighbour <stat> <threads> <seconds>`: starts the threads (64 KiB stacks), prints `ready <n>`
/// once they all run, lets them read for `seconds`, and prints `reads window_ms failed` for that window
/// (the threads may take long to notice the end: each finishes its read first).
fn neighbour(args: &[String]) {
    enter_cgroups_from_env();
    let path = PathBuf::from(&args[0]);
    let threads: usize = args[1].parse().unwrap();
    let seconds: u64 = args[2].parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (path, stop, reads, failed) =
            (path.clone(), stop.clone(), reads.clone(), failed.clone());
        let spawned = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut buf = Vec::with_capacity(16 * 1024);
                while !stop.load(Ordering::Relaxed) {
                    if read_whole(&path, &mut buf).is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                eprintln!("neighbour: thread {} not started: {e}", handles.len());
                break;
            }
        }
    }
    println!("ready {}", handles.len());
    std::io::stdout().flush().unwrap();
    let (started, reads_before) = (Instant::now(), reads.load(Ordering::Relaxed));
    sleep(Duration::from_secs(seconds));
    let window = started.elapsed();
    let reads_in_window = reads.load(Ordering::Relaxed) - reads_before;
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        let _ = handle.join();
    }
    println!(
        "{reads_in_window} {} {}",
        window.as_millis(),
        failed.load(Ordering::Relaxed)
    );
}
