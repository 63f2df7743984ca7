//! End-to-end benchmark (perf.md's protocol): mounts cgview (and LXCFS when installed), creates cgroups
//! with limits, checks what they serve, then times open + read-to-EOF + close cycles of every served file
//! from 1, 2 and 8 threads inside a cgroup and from 16 cgroups x 1 reader, against native /proc and LXCFS
//! in the same run, and against the FUSE floor (`--diagnostic-floor`). Reports median and p99 latency,
//! reads/s and the daemon's CPU per read. With `CGVIEW_BENCH_SCALE=1` it also serves 1,000 cgroups and
//! 10,000 threads and reports the daemon's RSS and the per-read cost with 10 and 1,000 live containers.
//!
//! Run as root: `cargo bench --bench e2e` (CGVIEW_BENCH_CYCLES per thread, default 5000;
//! CGVIEW_BENCH_FILES, a comma-separated subset such as `proc/meminfo,proc/stat`; CGVIEW_BENCH_IO_URING=1,
//! cgview over FUSE over io_uring).

#[path = "../tests/mounted_support/mod.rs"]
mod mounted_support;
mod support;

use cgview::catalog::ServedFile;
use mounted_support::{Daemon, TestCgroup, CGROUP_ROOT, MIB};
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::env_or;

const FLOOR: &str = ".cgview-floor";
const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--worker") {
        worker(&args[2..]);
        return;
    }
    if !support::should_run("e2e") {
        return;
    }
    let cycles: usize = env_or("CGVIEW_BENCH_CYCLES", 5000);
    let bench = Bench::set_up();
    bench.check_content();
    bench.run_matrix(cycles);
    if std::env::var("CGVIEW_BENCH_SCALE").is_ok_and(|v| v == "1") {
        bench.run_scale();
    }
}

// ---- the worker: a process inside cgroups, timing cycles from threads ----

/// `--worker <n> <path>... <threads> <cycles> <start unix ns>`, started in a cgroup by
/// [`support::spawn_host_pid_worker`]: enters the cgroup, waits for the start time, runs the cycles and prints `wall_ns end_unix_ns`, then for each
/// thread one line of latencies (ns) per path. With several paths each thread reads them in turn, cycle
/// by cycle, rotating which comes first (A B, B A, A B, ...), `cycles` of each: they are timed under the
/// same conditions, so drift in the machine (which vCPU a thread sits on, a neighbour's load) cancels out
/// of their ratio instead of landing on whichever ran in the worse moment.
fn worker(args: &[String]) {
    support::enter_cgroups_from_env();
    let count: usize = args[0].parse().unwrap();
    let paths: Vec<PathBuf> = args[1..=count].iter().map(PathBuf::from).collect();
    let rest = &args[count + 1..];
    let threads: usize = rest[0].parse().unwrap();
    let cycles: usize = rest[1].parse().unwrap();
    let start_at: u128 = rest[2].parse().unwrap();
    let now = unix_ns();
    if start_at > now {
        sleep(Duration::from_nanos((start_at - now) as u64));
    }
    // A target that lists a file it cannot open for this cgroup (LXCFS and sys/block) is reported as such.
    if paths.iter().any(|path| fs::File::open(path).is_err()) {
        println!("unavailable");
        return;
    }
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let paths = paths.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut latencies = vec![Vec::with_capacity(cycles); paths.len()];
                for cycle in 0..cycles {
                    for turn in 0..paths.len() {
                        let which = (cycle + turn) % paths.len();
                        let t = Instant::now();
                        let mut file = fs::File::open(&paths[which]).unwrap();
                        while file.read(&mut buf).unwrap() > 0 {}
                        drop(file);
                        latencies[which].push(t.elapsed().as_nanos() as u64);
                    }
                }
                latencies
            })
        })
        .collect();
    let all: Vec<Vec<Vec<u64>>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let wall = started.elapsed().as_nanos();
    let mut out = format!("{wall} {}\n", unix_ns());
    for per_path in all {
        for latencies in per_path {
            let line: Vec<String> = latencies.iter().map(u64::to_string).collect();
            out.push_str(&line.join(" "));
            out.push('\n');
        }
    }
    print!("{out}");
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

// ---- set-up ----

/// The daemon's user + system CPU time so far, in clock ticks.
fn cpu_ticks(daemon: &Daemon) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{}/stat", daemon.pid())).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Where a target serves files: native /proc (no daemon), cgview, LXCFS.
struct Target {
    name: &'static str,
    daemon: Option<Daemon>,
}

impl Target {
    /// The path of `file` (`proc/meminfo`) as this target serves it; `None` when it does not.
    fn path(&self, file: &str) -> Option<PathBuf> {
        let path = match &self.daemon {
            None if file == FLOOR => return None,
            None => Path::new("/").join(file),
            Some(d) => d.path(file),
        };
        path.exists().then_some(path)
    }
}

struct Bench {
    targets: Vec<Target>,
    files: Vec<String>,
    cgroup: TestCgroup,
    /// `enable_uring` before the run, when the run set it.
    uring_switch: Option<String>,
}

impl Bench {
    fn set_up() -> Bench {
        let mut targets = vec![Target {
            name: "native",
            daemon: None,
        }];
        // CGVIEW_BENCH_THREADS sets cgview's FUSE workers (default: its own, the CPU count).
        // CGVIEW_BENCH_MOUNT_ARGS adds options to `cgview mount` (e.g. `--no-pin-workers`).
        let workers = std::env::var("CGVIEW_BENCH_THREADS").ok();
        let extra = std::env::var("CGVIEW_BENCH_MOUNT_ARGS").unwrap_or_default();
        let mut args = vec!["--diagnostic-floor"];
        if let Some(workers) = &workers {
            args.extend(["--threads", workers.as_str()]);
        }
        args.extend(extra.split_whitespace());
        // CGVIEW_BENCH_IO_URING=1: cgview (and so its floor file) takes requests over FUSE over io_uring;
        // the kernel's switch is set for the run and put back afterwards.
        let uring_switch = std::env::var("CGVIEW_BENCH_IO_URING")
            .is_ok_and(|v| v == "1")
            .then(|| {
                let previous = fs::read_to_string(ENABLE_URING)
                    .unwrap_or_else(|e| panic!("{ENABLE_URING}: {e}"));
                fs::write(ENABLE_URING, "Y").unwrap();
                previous.trim().to_owned()
            });
        if uring_switch.is_some() {
            args.push("--io-uring");
        }
        let cgview = Daemon::start(&[], &args);
        let transport = if cgview.log_text().contains("serving over io_uring") {
            "FUSE over io_uring, a ring per CPU"
        } else {
            "/dev/fuse"
        };
        println!("cgview transport: {transport}");
        targets.push(Target {
            name: "cgview",
            daemon: Some(cgview),
        });
        if uring_switch.is_some() && transport == "/dev/fuse" {
            panic!("CGVIEW_BENCH_IO_URING=1 but cgview serves over /dev/fuse");
        }
        if Command::new("lxcfs").arg("--version").output().is_ok() {
            // The same features as cgview's defaults: CPU quota awareness and load averages.
            targets.push(Target {
                name: "lxcfs",
                daemon: Some(Daemon::start_program(
                    "lxcfs",
                    &["-f", "--enable-cfs", "-l"],
                )),
            });
        } else {
            println!(
                "LXCFS is not installed (apt-get install lxcfs): comparing with native /proc only"
            );
        }
        let controllers = available_controllers();
        let cgroup = TestCgroup::new("e2e", &controllers);
        cgroup.set("memory", "memory.limit_in_bytes", &(512 * MIB).to_string());
        cgroup.set("cpu", "cpu.cfs_period_us", "100000");
        cgroup.set("cpu", "cpu.cfs_quota_us", "150000");
        let files = match std::env::var("CGVIEW_BENCH_FILES") {
            Ok(list) => list.split(',').map(str::to_owned).collect(),
            Err(_) => served_files(),
        };
        Bench {
            targets,
            files,
            cgroup,
            uring_switch,
        }
    }

    fn cgview(&self) -> &Target {
        &self.targets[1]
    }

    /// What is timed must be right: the daemons' files show the cgroup's limits.
    fn check_content(&self) {
        for target in self.targets.iter().filter(|t| t.daemon.is_some()) {
            let meminfo = target.path("proc/meminfo").unwrap();
            let text = self
                .cgroup
                .run(&format!("grep ^MemTotal: {}", meminfo.display()));
            assert!(
                text.split_whitespace().nth(1) == Some("524288"),
                "{}: MemTotal inside a 512 MiB cgroup is {text:?}",
                target.name
            );
            let cpuinfo = target.path("proc/cpuinfo").unwrap();
            let count = self
                .cgroup
                .run(&format!("grep -c ^processor {}", cpuinfo.display()));
            assert_eq!(
                count.trim(),
                "2",
                "{}: processors under a 1.5-CPU quota",
                target.name
            );
        }
        let cgview = self.cgview();
        let online = cgview.path("sys/devices/system/cpu/online").unwrap();
        assert_eq!(
            self.cgroup.run(&format!("cat {}", online.display())).trim(),
            "0-1"
        );
        let stat = cgview.path("proc/stat").unwrap();
        let cpus = self.cgroup.run(&format!("grep -c ^cpu {}", stat.display()));
        assert_eq!(cpus.trim(), "3", "cpu, cpu0, cpu1 in stat");
        println!("content checked: MemTotal 524288 kB and 2 CPUs inside the benchmark cgroup\n");
    }

    /// Runs workers (paths, threads, cgroup) at once, `cycles` per thread and path; returns
    /// one `Run` per path (every worker lists the same number of paths), each with the wall time from the
    /// common start to the last end and the daemon CPU ticks spent by the whole run.
    fn run(
        &self,
        target: &Target,
        runs: &[(Vec<PathBuf>, usize, &TestCgroup)],
        cycles: usize,
    ) -> Option<Vec<Run>> {
        let start_at = unix_ns() + 300_000_000;
        let cpu_before = target.daemon.as_ref().map(cpu_ticks);
        let children: Vec<_> = runs
            .iter()
            .map(|(paths, threads, cgroup)| {
                let mut args = vec![paths.len().to_string()];
                args.extend(paths.iter().map(|p| p.to_string_lossy().into_owned()));
                args.extend([
                    threads.to_string(),
                    cycles.to_string(),
                    start_at.to_string(),
                ]);
                support::spawn_host_pid_worker(cgroup, "--worker", &args)
            })
            .collect();
        let per_worker = runs.first().map_or(1, |(paths, _, _)| paths.len());
        let mut latencies = vec![Vec::new(); per_worker];
        let mut end = 0u128;
        let mut unavailable = false;
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "worker failed");
            let text = String::from_utf8(output.stdout).unwrap();
            if text.starts_with("unavailable") {
                unavailable = true;
                continue;
            }
            let mut lines = text.lines();
            let header: Vec<u128> = lines
                .next()
                .unwrap()
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect();
            end = end.max(header[1]);
            for (index, line) in lines.enumerate() {
                latencies[index % per_worker]
                    .extend(line.split_whitespace().map(|v| v.parse::<u64>().unwrap()));
            }
        }
        if unavailable {
            return None;
        }
        let daemon_ticks = match (cpu_before, target.daemon.as_ref()) {
            (Some(before), Some(d)) => Some(cpu_ticks(d) - before),
            _ => None,
        };
        let wall_ns = end.saturating_sub(start_at).max(1);
        Some(
            latencies
                .into_iter()
                .map(|mut latencies| {
                    latencies.sort_unstable();
                    Run {
                        latencies,
                        wall_ns,
                        daemon_ticks,
                    }
                })
                .collect(),
        )
    }

    /// One reading run of `file` on `target`; `None` when the target does not serve it in a cgroup.
    fn run_file(
        &self,
        target: &Target,
        file: &str,
        threads: usize,
        cycles: usize,
    ) -> Option<Stats> {
        let path = target.path(file)?;
        let runs = self.run(target, &[(vec![path], threads, &self.cgroup)], cycles)?;
        Some(runs[0].stats(clock_ticks()))
    }

    /// The floor and `file` read alternately by the same threads in one run: their latencies, for the
    /// ratio. Throughput and CPU are not split between the two, so they come from the separate runs.
    fn run_pair(&self, file: &str, threads: usize, cycles: usize) -> Option<[Stats; 2]> {
        let cgview = self.cgview();
        let paths = vec![cgview.path(FLOOR)?, cgview.path(file)?];
        let runs = self.run(cgview, &[(paths, threads, &self.cgroup)], cycles)?;
        Some([runs[0].latency_stats(), runs[1].latency_stats()])
    }

    /// Every file against native /proc, LXCFS and the floor, one run each for throughput and CPU (the
    /// floor and cgview `CGVIEW_BENCH_ROUNDS` times alternately, keeping each one's run with the lower
    /// median), then the floor and the file read alternately in one run for the latency ratio. Separate
    /// runs are not comparable to 10% on a VM: which vCPU the daemon's workers and the reader happen to sit
    /// on moves a run's median by up to 2x (a wake-up across vCPUs costs an inter-processor interrupt).
    fn run_matrix(&self, cycles: usize) {
        let rounds: usize = env_or("CGVIEW_BENCH_ROUNDS", 1);
        println!(
            "cycles: open + read(64 KiB) to EOF + close, {cycles} per thread; latency in us; daemon CPU from its utime + stime"
        );
        println!(
            "floor and cgview: best of {rounds} alternating run(s) for reads/s and CPU; pair:floor and pair:cgview: the two read"
        );
        println!(
            "alternately, cycle by cycle, by the same threads in one run ({cycles} cycles of each per thread): the latency ratio\n"
        );
        println!(
            "{:<34} {:<11} {:>7} {:>9} {:>9} {:>10} {:>11}",
            "file", "target", "threads", "median", "p99", "reads/s", "cpu/read"
        );
        let cgview = self.cgview();
        let mut summary: Vec<String> = Vec::new();
        for file in &self.files {
            let mut by_target: HashMap<(&str, usize), Stats> = HashMap::new();
            for threads in [1, 2, 8] {
                for target in self.targets.iter().filter(|t| t.name != "cgview") {
                    match self.run_file(target, file, threads, cycles) {
                        Some(stats) => {
                            println!("{file:<34} {:<11} {threads:>7} {stats}", target.name);
                            by_target.insert((target.name, threads), stats);
                        }
                        None if target.path(file).is_some() => {
                            println!("{file:<34} {:<11} not served in a cgroup", target.name)
                        }
                        None => {}
                    }
                }
                let mut best: [Option<Stats>; 2] = [None, None];
                for _ in 0..rounds {
                    for (slot, name) in [(0, FLOOR), (1, file.as_str())] {
                        if let Some(stats) = self.run_file(cgview, name, threads, cycles) {
                            if best[slot].is_none_or(|b| stats.median_us < b.median_us) {
                                best[slot] = Some(stats);
                            }
                        }
                    }
                }
                if let [Some(floor), Some(ours)] = best {
                    println!("{file:<34} {:<11} {threads:>7} {floor}", "floor");
                    println!("{file:<34} {:<11} {threads:>7} {ours}", "cgview");
                    by_target.insert(("floor", threads), floor);
                    by_target.insert(("cgview", threads), ours);
                }
                if let Some([floor, ours]) = self.run_pair(file, threads, cycles) {
                    println!("{file:<34} {:<11} {threads:>7} {floor}", "pair:floor");
                    println!("{file:<34} {:<11} {threads:>7} {ours}", "pair:cgview");
                    by_target.insert(("pair:floor", threads), floor);
                    by_target.insert(("pair:cgview", threads), ours);
                }
            }
            summary.extend(compare(file, &by_target));
        }
        let sixteen = self.run_sixteen(cycles, clock_ticks());
        println!("\n== ratios (cgview vs the FUSE floor and vs LXCFS, same run)");
        for line in summary.iter().chain(&sixteen) {
            println!("{line}");
        }
    }

    /// 16 cgroups, one reader each, all at once, on `proc/meminfo`: aggregate reads/s per target.
    fn run_sixteen(&self, cycles: usize, hz: f64) -> Vec<String> {
        let controllers = available_controllers();
        let cgroups: Vec<TestCgroup> = (0..16)
            .map(|i| {
                let c = TestCgroup::new(&format!("e2e-{i}"), &controllers);
                c.set(
                    "memory",
                    "memory.limit_in_bytes",
                    &((256 + i) * MIB).to_string(),
                );
                c
            })
            .collect();
        println!();
        let mut rates = HashMap::new();
        let mut cpu = HashMap::new();
        for target in &self.targets {
            let Some(path) = target.path("proc/meminfo") else {
                continue;
            };
            let runs: Vec<_> = cgroups.iter().map(|c| (vec![path.clone()], 1, c)).collect();
            let Some(run) = self.run(target, &runs, cycles) else {
                continue;
            };
            let stats = run[0].stats(hz);
            println!(
                "{:<34} {:<11} {:>7} {}",
                "proc/meminfo 16 cgroups x 1", target.name, 16, stats
            );
            rates.insert(target.name, stats.reads_per_sec);
            cpu.insert(target.name, stats.cpu_us_per_read);
        }
        let mut lines = Vec::new();
        if let (Some(Some(ours)), Some(Some(theirs))) = (rates.get("cgview"), rates.get("lxcfs")) {
            lines.push(format!(
                "16 cgroups x 1 reader, proc/meminfo: cgview {ours:.0} reads/s, lxcfs {theirs:.0} reads/s: {:.1}x (target >= 6x)",
                ours / theirs
            ));
        }
        if let (Some(Some(ours)), Some(Some(theirs))) = (cpu.get("cgview"), cpu.get("lxcfs")) {
            lines.push(format!(
                "16 cgroups x 1 reader, daemon CPU per read: cgview {ours:.1} us, lxcfs {theirs:.1} us: 1/{:.1} (target <= 1/10)",
                theirs / ours
            ));
        }
        lines
    }

    /// Two cgviews side by side, one that has served 10 cgroups and one that has served 1,000 cgroups x 10
    /// reader threads; one reader reads both alternately, cycle by cycle, so both are timed in the same
    /// moments (two separate runs differ by up to 2x on a VM with where the reader happens to sit). Each
    /// daemon also keeps its own placement of workers for its life, which moves one pair's ratio by up to
    /// 10%, so the pair is started afresh `CGVIEW_BENCH_SCALE_ROUNDS` times (default 4) and the rounds'
    /// latencies and CPU are pooled. Reports the per-read cost with 1,000 live containers against the
    /// cost with 10, and the larger daemon's RSS.
    fn run_scale(&self) {
        let rounds: usize = env_or("CGVIEW_BENCH_SCALE_ROUNDS", 4);
        println!(
            "\n== scale: one cgview serving 10 containers and one serving 1,000, read alternately; {rounds} rounds"
        );
        let controllers = ["memory"];
        let cgroups: Vec<TestCgroup> = (0..1000)
            .map(|i| {
                let c = TestCgroup::new(&format!("e2e-scale-{i}"), &controllers);
                c.set(
                    "memory",
                    "memory.limit_in_bytes",
                    &((128 + i % 512) * MIB).to_string(),
                );
                c
            })
            .collect();
        let start = || {
            let port = free_port();
            let metrics = format!("127.0.0.1:{port}");
            let mut args = vec!["--metrics-addr", metrics.as_str()];
            if self.uring_switch.is_some() {
                args.push("--io-uring");
            }
            let target = Target {
                name: "cgview",
                daemon: Some(Daemon::start(&[], &args)),
            };
            (target, port)
        };
        let serve = |target: &Target, range: std::ops::Range<usize>| {
            let path = target.path("proc/meminfo").unwrap();
            // 10 threads per cgroup, one read each: distinct caller threads.
            for chunk in cgroups[range].chunks(50) {
                let runs: Vec<_> = chunk.iter().map(|c| (vec![path.clone()], 10, c)).collect();
                self.run(target, &runs, 1);
            }
        };
        let ticks = |t: &Target| cpu_ticks(t.daemon.as_ref().unwrap());
        let hz = clock_ticks();
        let cycles = 20_000;
        // Per daemon (10, 1,000): every round's latencies, CPU ticks, and containers cached.
        let mut latencies: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        let mut cpu_ticks = [0u64; 2];
        let mut live = [Vec::new(), Vec::new()];
        let mut rss_kb = 0;
        for round in 0..rounds {
            // Which one starts first alternates: nothing about start order favours either.
            let ((few, few_port), (many, many_port)) = if round % 2 == 0 {
                let few = start();
                (few, start())
            } else {
                let many = start();
                (start(), many)
            };
            serve(&few, 0..10);
            serve(&many, 0..1000);
            // What is timed must be what is claimed: the daemons hold about 10 and 1,000 containers.
            for (slot, port, at_least, at_most) in
                [(0, few_port, 10.0, 20.0), (1, many_port, 1000.0, 1010.0)]
            {
                let cached =
                    metric(port, "cgview_containers").expect("cgview_containers from /metrics");
                assert!(
                    (at_least..=at_most).contains(&cached),
                    "a daemon that served {at_least} containers has {cached} cached"
                );
                live[slot].push(cached);
            }
            let before = [ticks(&few), ticks(&many)];
            let paths = vec![
                few.path("proc/meminfo").unwrap(),
                many.path("proc/meminfo").unwrap(),
            ];
            let runs = self
                .run(&few, &[(paths, 1, &cgroups[0])], cycles)
                .expect("cgview serves meminfo");
            let spent = [ticks(&few) - before[0], ticks(&many) - before[1]];
            let round_stats = [runs[0].latency_stats(), runs[1].latency_stats()];
            println!(
                "round {}: medians {:.1} / {:.1} us ({:.3}), cpu/read {:.1} / {:.1} us",
                round + 1,
                round_stats[0].median_us,
                round_stats[1].median_us,
                round_stats[1].median_us / round_stats[0].median_us,
                spent[0] as f64 / hz * 1e6 / cycles as f64,
                spent[1] as f64 / hz * 1e6 / cycles as f64,
            );
            for slot in 0..2 {
                latencies[slot].extend(&runs[slot].latencies);
                cpu_ticks[slot] += spent[slot];
            }
            let many_pid = many.daemon.as_ref().unwrap().pid();
            rss_kb = rss_kb.max(support::rss_kb(many_pid).expect("the daemon's VmRSS"));
        }
        let pooled: Vec<(Stats, f64)> = (0..2)
            .map(|slot| {
                let mut all = std::mem::take(&mut latencies[slot]);
                all.sort_unstable();
                let reads = all.len().max(1) as f64;
                (percentiles(&all), cpu_ticks[slot] as f64 / hz * 1e6 / reads)
            })
            .collect();
        for (slot, (stats, cpu)) in pooled.iter().enumerate() {
            let cached: Vec<String> = live[slot].iter().map(|n| format!("{n:.0}")).collect();
            println!(
                "{:<44} {:>9.1} {:>9.1} {:>10} {cpu:>11.1}   (containers cached: {})",
                format!(
                    "proc/meminfo, 1 reader, {} containers",
                    ["10", "1,000"][slot]
                ),
                stats.median_us,
                stats.p99_us,
                "-",
                cached.join(", ")
            );
        }
        println!(
            "RSS after 1,000 cgroups and 10,000 caller threads: {:.1} MB (target < 30 MB)",
            rss_kb as f64 / 1024.0
        );
        println!(
            "with 1,000 containers / with 10: median {:.3}, cpu/read {:.3} (target within 10%)",
            pooled[1].0.median_us / pooled[0].0.median_us,
            pooled[1].1 / pooled[0].1
        );
        drop(cgroups);
    }
}

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// One unlabelled sample from a daemon's `GET /metrics`.
fn metric(port: u16, name: &str) -> Option<f64> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.targets.clear();
        if let Some(previous) = &self.uring_switch {
            let _ = fs::write(ENABLE_URING, previous);
        }
    }
}

fn available_controllers() -> Vec<&'static str> {
    ["memory", "cpu", "cpuacct", "cpuset", "blkio"]
        .into_iter()
        .filter(|c| Path::new(CGROUP_ROOT).join(c).join("cgroup.procs").exists())
        .collect()
}

/// Every file cgview serves, as tree paths (the block device of `/` for sys/block).
fn served_files() -> Vec<String> {
    let mut files: Vec<String> = ServedFile::ALL
        .iter()
        .map(|file| file.tree_path().to_owned())
        .collect();
    if let Some(disk) = fs::read_dir("/sys/block").ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|name| !name.starts_with("loop") && !name.starts_with("zram"))
    }) {
        files.push(format!("sys/block/{disk}/stat"));
    }
    files
}

fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(hz)) if hz > 0 => hz as f64,
        _ => 100.0,
    }
}

struct Run {
    latencies: Vec<u64>,
    wall_ns: u128,
    daemon_ticks: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    median_us: f64,
    p99_us: f64,
    /// `None` for one half of a pair: the run's wall time was shared.
    reads_per_sec: Option<f64>,
    cpu_us_per_read: Option<f64>,
}

impl Run {
    fn stats(&self, hz: f64) -> Stats {
        let n = self.latencies.len().max(1);
        Stats {
            reads_per_sec: Some(n as f64 / (self.wall_ns as f64 / 1e9)),
            cpu_us_per_read: self
                .daemon_ticks
                .map(|ticks| ticks as f64 / hz * 1e6 / n as f64),
            ..self.latency_stats()
        }
    }

    fn latency_stats(&self) -> Stats {
        percentiles(&self.latencies)
    }
}

/// Median and p99 of sorted latencies (ns), in us.
fn percentiles(sorted: &[u64]) -> Stats {
    let n = sorted.len().max(1);
    let at = |q: f64| sorted[((n as f64 * q) as usize).min(n - 1)] as f64 / 1000.0;
    Stats {
        median_us: at(0.5),
        p99_us: at(0.99),
        reads_per_sec: None,
        cpu_us_per_read: None,
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = self
            .reads_per_sec
            .map_or("-".to_owned(), |r| format!("{r:.0}"));
        let cpu = self
            .cpu_us_per_read
            .map_or("-".to_owned(), |c| format!("{c:.1}"));
        write!(
            f,
            "{:>9.1} {:>9.1} {:>10} {:>11}",
            self.median_us, self.p99_us, rate, cpu
        )
    }
}

/// One line per thread count: cgview's median and p99 over the floor's, reads/s and CPU over LXCFS's.
fn compare(file: &str, by_target: &HashMap<(&str, usize), Stats>) -> Vec<String> {
    let mut lines = Vec::new();
    for threads in [1, 2, 8] {
        let Some(ours) = by_target.get(&("cgview", threads)) else {
            continue;
        };
        let mut line = format!("{file:<34} {threads} thr:");
        if let (Some(floor), Some(paired)) = (
            by_target.get(&("pair:floor", threads)),
            by_target.get(&("pair:cgview", threads)),
        ) {
            line.push_str(&format!(
                " median {:.2}x floor (<= 1.1), p99 {:.2}x floor (<= 2)",
                paired.median_us / floor.median_us,
                paired.p99_us / floor.p99_us
            ));
        }
        if let Some(theirs) = by_target.get(&("lxcfs", threads)) {
            if let (Some(a), Some(b)) = (ours.reads_per_sec, theirs.reads_per_sec) {
                line.push_str(&format!("; {:.1}x lxcfs reads/s", a / b));
            }
            if let (Some(a), Some(b)) = (ours.cpu_us_per_read, theirs.cpu_us_per_read) {
                line.push_str(&format!(", cpu/read 1/{:.1} of lxcfs", b / a.max(0.01)));
            }
        }
        lines.push(line);
    }
    lines
}
