//! The limits users set with `docker run` (memory, swap, CPU quota, cpuset), end to end: real Docker
//! (Debian's docker.io, runc, cgroupfs driver, cgroup v1) starts containers of an image built from the
//! host's procps, glibc, sysstat and busybox binaries with `$(cgview docker-args)`, and what `free`,
//! `top`, `getconf`, `uptime` and the served files print in them is checked against the container's own
//! cgroup files, read on the host, by the README's rules ("What each file shows"). Then a busy loop
//! under a half-CPU quota, O_DIRECT writes seen by `/proc/diskstats` and `iostat`, and (where podman is
//! installed) the same matrix under rootful podman.
//!
//! Needs root, /dev/fuse, cgroup v1 and a Docker daemon (`tests/run.sh` installs and starts one);
//! the podman test also needs Debian's `podman`.

mod mounted_support;

use mounted_support::docker::{self, report, Container, Engine, ProcessCgroups, DOCKER, PODMAN};
use mounted_support::needs::Need;
use mounted_support::*;
use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// One test at a time: the busy loop measures CPU shares on a machine of two CPUs, which another test's
/// containers starting would take; the matrix runs its containers at once by itself.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Every script's environment: a C locale (decimal points) and a terminal `top` finds in the image.
const ENV: &[&str] = &["LC_ALL=C", "TERM=dumb"];

/// A set of `docker run` limits.
struct Case {
    label: &'static str,
    limits: &'static [&'static str],
}

const MATRIX: &[Case] = &[
    Case {
        label: "mem512-cpus1.5",
        limits: &["--memory", "512m", "--cpus", "1.5"],
    },
    Case {
        label: "cpus0.5",
        limits: &["--cpus", "0.5"],
    },
    Case {
        label: "cpuset1",
        limits: &["--cpuset-cpus", "1"],
    },
    Case {
        label: "cpus1.5-cpuset0-1",
        limits: &["--cpus", "1.5", "--cpuset-cpus", "0-1"],
    },
    Case {
        label: "mem256-swap512",
        limits: &["--memory", "256m", "--memory-swap", "512m"],
    },
    Case {
        label: "unlimited",
        limits: &[],
    },
];

/// What each container prints, in sections. procps and glibc tools by full path: busybox's shell
/// runs its own applet of the same name otherwise.
const REPORT: &str = "\
echo ==meminfo==; cat /proc/meminfo
echo ==free==; /usr/bin/free -k
echo ==top==; /usr/bin/top -bn1 | head -n 5
echo ==getconf==; /usr/bin/getconf _NPROCESSORS_ONLN; /usr/bin/getconf _NPROCESSORS_CONF
echo ==nproc==; /usr/bin/nproc
echo ==cpuinfo==; cat /proc/cpuinfo
echo ==online==; cat /sys/devices/system/cpu/online
echo ==statcpus==; grep ^cpu /proc/stat
echo ==uptime_file==; cat /proc/uptime
echo ==uptime==; /usr/bin/uptime
echo ==swaps==; cat /proc/swaps
";

// ---- the host and the container's cgroup files ----

/// What the host has, which caps what a container is shown.
struct Host {
    mem_total_kb: u64,
    swap_total_kb: u64,
    online: Vec<u32>,
}

impl Host {
    fn read() -> Host {
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap();
        let online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
        Host {
            mem_total_kb: meminfo_kb(&meminfo, "MemTotal"),
            swap_total_kb: meminfo_kb(&meminfo, "SwapTotal"),
            online: parse_cpu_list(&online).unwrap(),
        }
    }
}

/// A container's limits as its cgroup files (and their ancestors') say, with every file read, for
/// failure messages.
struct CgroupFacts {
    files: Vec<String>,
    /// Effective memory limit (smallest over the chain); `None` when unlimited.
    memory_limit: Option<u64>,
    /// `None` without swap accounting (no memsw files); `Some(None)` when memsw is unlimited.
    memsw_limit: Option<Option<u64>>,
    usage: u64,
    memsw_usage: Option<u64>,
    swappiness: Option<String>,
    /// Smallest `cfs_quota_us / cfs_period_us` over the chain, in CPUs.
    quota_cpus: Option<f64>,
    /// The nearest non-empty `cpuset.effective_cpus`.
    cpuset: Vec<u32>,
}

/// v1 prints the page counter's maximum (about 2^63) for "no limit".
fn v1_limit(text: &str) -> Option<u64> {
    let value: u64 = text.parse().unwrap_or_else(|_| panic!("a limit: {text:?}"));
    (value < 1 << 62).then_some(value)
}

impl CgroupFacts {
    fn read(cgroups: &ProcessCgroups) -> CgroupFacts {
        let mut files = Vec::new();
        let mut read = |path: &Path| -> Option<String> {
            let text = fs::read_to_string(path).ok()?.trim().to_owned();
            files.push(format!("{} = {text}", path.display()));
            Some(text)
        };
        let mut limit_chain = |controller: &str, file: &str| -> Option<Option<u64>> {
            let texts: Vec<String> = cgroups
                .chain(controller)
                .iter()
                .filter_map(|dir| read(&dir.join(file)))
                .collect();
            (!texts.is_empty()).then(|| texts.iter().filter_map(|t| v1_limit(t)).min())
        };
        let memory_limit = limit_chain("memory", "memory.limit_in_bytes").unwrap();
        let memsw_limit = limit_chain("memory", "memory.memsw.limit_in_bytes");
        let memory = cgroups.dir("memory");
        let usage = read(&memory.join("memory.usage_in_bytes"))
            .unwrap()
            .parse()
            .unwrap();
        let memsw_usage =
            read(&memory.join("memory.memsw.usage_in_bytes")).map(|t| t.parse().unwrap());
        let swappiness = read(&memory.join("memory.swappiness"));
        let quota_cpus = cgroups
            .chain("cpu")
            .iter()
            .filter_map(|dir| {
                let quota: i64 = read(&dir.join("cpu.cfs_quota_us"))?.parse().unwrap();
                let period: u64 = read(&dir.join("cpu.cfs_period_us"))?.parse().unwrap();
                (quota > 0).then(|| quota as f64 / period as f64)
            })
            .reduce(f64::min);
        let cpuset = cgroups
            .chain("cpuset")
            .iter()
            .filter_map(|dir| read(&dir.join("cpuset.effective_cpus")))
            .find(|text| !text.is_empty())
            .map(|text| parse_cpu_list(&text).unwrap())
            .unwrap_or_default();
        CgroupFacts {
            files,
            memory_limit,
            memsw_limit,
            usage,
            memsw_usage,
            swappiness,
            quota_cpus,
            cpuset,
        }
    }
}

/// What the README's rules make of a container's cgroup files on this host.
struct Expected {
    mem_total_kb: u64,
    swap_total_kb: u64,
    /// The visible CPUs: the cpuset, truncated to `ceil(quota)`.
    visible: Vec<u32>,
    /// What `sched_getaffinity` gives (`nproc`): the cpuset, whatever the quota.
    affinity: usize,
}

impl Expected {
    fn of(facts: &CgroupFacts, host: &Host) -> Expected {
        let mem_total_kb = facts.memory_limit.map_or(host.mem_total_kb, |limit| {
            (limit / 1024).min(host.mem_total_kb)
        });
        // Swap: v1 limit = memsw limit - memory limit, capped by the host's swap; no swap accounting
        // shows none; swappiness 0 shows only what is already swapped.
        let host_swap = host.swap_total_kb * 1024;
        let swap_total = match facts.memsw_limit {
            None => 0,
            Some(memsw_limit) => {
                if facts.swappiness.as_deref() == Some("0") {
                    let used = facts.memsw_usage.unwrap_or(0).saturating_sub(facts.usage);
                    used.min(host_swap)
                } else {
                    memsw_limit
                        .map(|memsw| memsw.saturating_sub(facts.memory_limit.unwrap_or(0)))
                        .map_or(host_swap, |limit| limit.min(host_swap))
                }
            }
        };
        let allowed: Vec<u32> = match facts
            .cpuset
            .iter()
            .copied()
            .filter(|cpu| host.online.contains(cpu))
            .collect::<Vec<_>>()
        {
            within if within.is_empty() => host.online.clone(),
            within => within,
        };
        let shown = facts
            .quota_cpus
            .map_or(allowed.len(), |quota| (quota.ceil() as usize).max(1));
        Expected {
            mem_total_kb,
            swap_total_kb: swap_total / 1024,
            visible: allowed.iter().copied().take(shown).collect(),
            affinity: allowed.len(),
        }
    }
}

// ---- what the tools print ----

/// `0-1,3` as `[0, 1, 3]`.
fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => cpus.extend(first.parse::<u32>().ok()?..=last.parse().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

fn field_kb(meminfo: &str, name: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The `total` column of `free`'s line starting with `row` (`Mem:`, `Swap:`).
fn free_total(free: &str, row: &str) -> Option<u64> {
    free.lines()
        .find(|l| l.starts_with(row))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The total of top's `MiB Mem :` or `MiB Swap:` line.
fn top_total_mib(top: &str, row: &str) -> Option<f64> {
    top.lines()
        .find(|l| l.starts_with(row))?
        .split_once(':')?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The minutes of procps' `up ...` (`up 0 min`, `up 3:26`, `up 2 days, 5 min`), as `uptime` and
/// top's first line print it.
fn up_minutes(line: &str) -> Option<u64> {
    let rest = line.split_once(" up ")?.1;
    let mut minutes = 0;
    for piece in rest.split(',') {
        let piece = piece.trim();
        if piece.contains("user") || piece.starts_with("load") {
            break;
        }
        let words: Vec<&str> = piece.split_whitespace().collect();
        match words.as_slice() {
            [n, unit] if unit.starts_with("day") => minutes += n.parse::<u64>().ok()? * 1440,
            [n, "min"] => minutes += n.parse::<u64>().ok()?,
            [clock] => {
                let (h, m) = clock.split_once(':')?;
                minutes += h.parse::<u64>().ok()? * 60 + m.parse::<u64>().ok()?;
            }
            _ => return None,
        }
    }
    Some(minutes)
}

/// The `cpu` line of `/proc/stat` as (busy, total) ticks: busy is everything but idle and iowait.
fn stat_busy_total(stat: &str) -> (u64, u64) {
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .unwrap_or_else(|| panic!("no cpu line in:\n{stat}"));
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap())
        .collect();
    let total: u64 = values.iter().sum();
    (total - values[3] - values[4], total)
}

/// A `%Cpu(s):  1.0 us,  2.0 sy, ...` line as name -> percent.
fn top_cpu_fields(line: &str) -> HashMap<String, f64> {
    line.split_once(':')
        .map_or("", |(_, values)| values)
        .split(',')
        .filter_map(|field| {
            let mut parts = field.split_whitespace();
            let value = parts.next()?.parse().ok()?;
            Some((parts.next()?.to_owned(), value))
        })
        .collect()
}

// ---- the matrix ----

/// One container of the matrix: what it printed, when, and what its cgroup files say.
struct Observation {
    case: &'static Case,
    printed: String,
    exec_ok: bool,
    sections: HashMap<String, String>,
    /// Bounds on the container's age when it read `/proc/uptime`, from the host's clock.
    age_bounds: (f64, f64),
    usage_before: u64,
    facts: CgroupFacts,
}

/// Starts a container with `case`'s limits and cgview's binds, runs [`REPORT`] in it, and reads its
/// cgroup files on the host while it still runs.
fn observe(engine: &Engine, image: &str, binds: &[String], case: &'static Case) -> Observation {
    let mut options: Vec<String> = case.limits.iter().map(|s| s.to_string()).collect();
    options.extend(binds.iter().cloned());
    let container = Container::run(engine, case.label, &options, image, &["sleep", "600"]);
    let cgroups = container.cgroups();
    let usage_before = cgroups
        .read("memory", "memory.usage_in_bytes")
        .parse()
        .unwrap();
    let exec_started = Instant::now();
    let output = container.exec(ENV, REPORT);
    let exec_ended = Instant::now();
    let facts = CgroupFacts::read(&cgroups);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Observation {
        case,
        exec_ok: output.status.success(),
        sections: sections(&String::from_utf8_lossy(&output.stdout)),
        printed,
        age_bounds: (
            (exec_started - container.run_returned).as_secs_f64(),
            (exec_ended - container.run_started).as_secs_f64(),
        ),
        usage_before,
        facts,
    }
}

/// Every way `observation` disagrees with its cgroup files; empty when it agrees.
fn disagreements(observation: &Observation, host: &Host) -> Vec<String> {
    let facts = &observation.facts;
    let expected = Expected::of(facts, host);
    let section = |name: &str| observation.sections.get(name).map_or("", String::as_str);
    let mut wrong = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            wrong.push(what);
        }
    };
    check(observation.exec_ok, "the report script failed".into());

    // Memory.
    let meminfo = section("meminfo");
    let mem_total = field_kb(meminfo, "MemTotal");
    check(
        mem_total == Some(expected.mem_total_kb),
        format!(
            "MemTotal {mem_total:?} kB, expected {} kB",
            expected.mem_total_kb
        ),
    );
    let free = section("free");
    check(
        free_total(free, "Mem:") == mem_total,
        format!(
            "free's Mem total {:?} is not MemTotal {mem_total:?}",
            free_total(free, "Mem:")
        ),
    );
    let top = section("top");
    let top_mem = top_total_mib(top, "MiB Mem");
    check(
        top_mem.is_some_and(|mib| {
            mem_total.is_some_and(|kb| (mib - kb as f64 / 1024.0).abs() <= 0.05)
        }),
        format!("top's MiB Mem total {top_mem:?} is not MemTotal {mem_total:?} kB"),
    );
    // Used memory is the container's: MemTotal - MemFree is its usage, which the host read just before
    // and just after the report (the report's own processes come and go in between); unless the host has
    // less free memory than the container's headroom, when MemFree is the host's (never more than the
    // host can give). Either way MemFree never exceeds the container's headroom.
    let used_kb = mem_total
        .zip(field_kb(meminfo, "MemFree"))
        .map(|(total, free)| total - free);
    let usage_kb = |bytes: u64| bytes / 1024;
    let low = usage_kb(observation.usage_before.min(facts.usage)).saturating_sub(8 * 1024);
    let high = usage_kb(observation.usage_before.max(facts.usage)) + 16 * 1024;
    let host_free_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| field_kb(&text, "MemFree"));
    let shown_free = field_kb(meminfo, "MemFree");
    let capped_by_host = shown_free
        .zip(host_free_kb)
        .is_some_and(|(free, host)| free <= host + 256 * 1024);
    check(
        used_kb.is_some_and(|used| used + 8 * 1024 >= low)
            && (used_kb.is_some_and(|used| (low..=high).contains(&used)) || capped_by_host),
        format!(
            "MemTotal - MemFree = {used_kb:?} kB, the cgroup's usage was {} then {} kB, the host's \
             MemFree {host_free_kb:?} kB",
            usage_kb(observation.usage_before),
            usage_kb(facts.usage)
        ),
    );

    // Swap.
    let swap_total = field_kb(meminfo, "SwapTotal");
    check(
        swap_total == Some(expected.swap_total_kb),
        format!(
            "SwapTotal {swap_total:?} kB, expected {} kB (host swap {} kB)",
            expected.swap_total_kb, host.swap_total_kb
        ),
    );
    check(
        free_total(free, "Swap:") == swap_total,
        format!(
            "free's Swap total {:?} is not SwapTotal {swap_total:?}",
            free_total(free, "Swap:")
        ),
    );
    let top_swap = top_total_mib(top, "MiB Swap");
    check(
        top_swap.is_some_and(|mib| {
            swap_total.is_some_and(|kb| (mib - kb as f64 / 1024.0).abs() <= 0.05)
        }),
        format!("top's MiB Swap total {top_swap:?} is not SwapTotal {swap_total:?} kB"),
    );
    let swaps: Vec<Vec<&str>> = section("swaps")
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let swap_lines: Vec<Vec<String>> = match expected.swap_total_kb {
        0 => Vec::new(),
        kb => vec![vec!["none".into(), "virtual".into(), kb.to_string()]],
    };
    check(
        swaps.len() == swap_lines.len()
            && swaps
                .iter()
                .zip(&swap_lines)
                .all(|(line, want)| line.len() == 5 && line[..3] == want[..]),
        format!("/proc/swaps lines {swaps:?}, expected {swap_lines:?} (and used, priority)"),
    );

    // CPUs.
    let count = expected.visible.len().to_string();
    let getconf: Vec<&str> = section("getconf").lines().collect();
    check(
        getconf == [count.as_str(), count.as_str()],
        format!(
            "getconf _NPROCESSORS_ONLN and _CONF {getconf:?}, expected {count} (CPUs {:?})",
            expected.visible
        ),
    );
    let cpuinfo = cpuinfo_ids(section("cpuinfo"));
    check(
        cpuinfo == expected.visible,
        format!(
            "cpuinfo processors {cpuinfo:?}, expected {:?}",
            expected.visible
        ),
    );
    let online = parse_cpu_list(section("online"));
    check(
        online.as_ref() == Some(&expected.visible),
        format!("online lists {online:?}, expected {:?}", expected.visible),
    );
    let stat_cpus: Vec<&str> = section("statcpus")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut want_stat = vec!["cpu".to_owned()];
    want_stat.extend(expected.visible.iter().map(|id| format!("cpu{id}")));
    check(
        stat_cpus == want_stat,
        format!("/proc/stat cpu lines {stat_cpus:?}, expected {want_stat:?}"),
    );
    // nproc asks sched_getaffinity, which no file changes: the cpuset, never the quota (README).
    let nproc = section("nproc").trim();
    check(
        nproc == expected.affinity.to_string(),
        format!(
            "nproc {nproc:?}, expected the cpuset's {}",
            expected.affinity
        ),
    );

    // Uptime: the container's age, not the host's.
    let up: Option<f64> = section("uptime_file")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok());
    let (youngest, oldest) = observation.age_bounds;
    check(
        up.is_some_and(|up| up >= youngest - 0.1 && up <= oldest + 0.5),
        format!(
            "/proc/uptime {up:?} s, the container was between {youngest:.2} and {oldest:.2} s old \
             (host up {:.0} s)",
            host_uptime_secs()
        ),
    );
    let minutes = up.map(|up| (up / 60.0) as u64);
    for (tool, line) in [
        ("uptime", section("uptime").lines().next()),
        ("top", top.lines().next()),
    ] {
        let shown = line.and_then(up_minutes);
        check(
            shown.zip(minutes).is_some_and(|(s, m)| s.abs_diff(m) <= 1),
            format!("{tool} says up {shown:?} min, /proc/uptime {minutes:?} min: {line:?}"),
        );
    }
    wrong
}

/// Runs `cases` at once under `engine` against one cgview daemon and fails with every disagreement.
fn run_matrix(engine: &Engine, cases: &[&'static Case]) {
    let image = docker::tools_image(engine);
    let daemon = Daemon::start(&[], &[]);
    let binds = docker::docker_args(&daemon.mount_point);
    let host = Host::read();
    let started = Instant::now();
    let observations: Vec<Observation> = std::thread::scope(|scope| {
        let running: Vec<_> = cases
            .iter()
            .map(|case| {
                let (image, binds) = (&image, &binds);
                scope.spawn(move || observe(engine, image, binds, case))
            })
            .collect();
        running
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e))
            })
            .collect()
    });
    report(&format!(
        "{} matrix: {} containers started, reported and removed in {:.1} s",
        engine.program,
        cases.len(),
        started.elapsed().as_secs_f64()
    ));
    if host.swap_total_kb == 0 {
        report(
            "the host has no swap: SwapTotal is 0 and /proc/swaps has no line in every container",
        );
    }
    let mut failures = Vec::new();
    for observation in &observations {
        let section = |name: &str| {
            observation
                .sections
                .get(name)
                .map_or("?", |text| text.trim())
        };
        let meminfo_field =
            |name: &str| field_kb(section("meminfo"), name).map_or("?".into(), |kb| kb.to_string());
        report(&format!(
            "  {} ({}): MemTotal {} kB, SwapTotal {} kB, online {}, nproc {}, /proc/uptime {}",
            observation.case.label,
            observation.case.limits.join(" "),
            meminfo_field("MemTotal"),
            meminfo_field("SwapTotal"),
            section("online"),
            section("nproc"),
            section("uptime_file"),
        ));
        let wrong = disagreements(observation, &host);
        if !wrong.is_empty() {
            failures.push(format!(
                "== {} {} ({}):\n- {}\n-- the container printed:\n{}\n-- its cgroup files:\n{}",
                engine.program,
                observation.case.label,
                observation.case.limits.join(" "),
                wrong.join("\n- "),
                observation.printed,
                observation.facts.files.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn docker_limits_matrix_agrees_with_each_containers_cgroup() {
    if !needs_met(MOUNT_AND_CGROUPS) || !needs_met(&[Need::Docker]) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cases: Vec<&Case> = MATRIX.iter().collect();
    run_matrix(&DOCKER, &cases);
}

#[test]
fn podman_limits_agree_with_each_containers_cgroup() {
    if !needs_met(MOUNT_AND_CGROUPS) || !needs_met(&[Need::Podman]) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cases: Vec<&Case> = MATRIX
        .iter()
        .filter(|case| ["mem512-cpus1.5", "cpuset1"].contains(&case.label))
        .collect();
    run_matrix(&PODMAN, &cases);
}

// ---- the very first read of a new container ----

/// A container's first process reads `/proc/meminfo` at once (as a JVM sizing its heap does): it gets its
/// limit, not the host's. runc writes the limit after the init's mounts, whose bind-source stat renders
/// the file for the container before it has one; podman starts fast enough that a kept snapshot of that
/// render was its first read (fixed: a container's first second reuses no snapshot).
fn first_reads_see_the_limit(engine: &Engine) {
    let image = docker::tools_image(engine);
    let daemon = Daemon::start(&[], &[]);
    let binds = docker::docker_args(&daemon.mount_point);
    let mut printed = Vec::new();
    for _ in 0..4 {
        let mut args: Vec<&str> = vec!["run", "--rm", "--network", "none", "--memory", "300m"];
        args.extend(engine.run_options);
        args.extend(binds.iter().map(String::as_str));
        args.extend([image.as_str(), "head", "-1", "/proc/meminfo"]);
        printed.push(engine.run_ok(&args).trim().to_owned());
    }
    report(&format!(
        "{}: first reads of four new containers: {printed:?}",
        engine.program
    ));
    for line in &printed {
        assert_eq!(field_kb(line, "MemTotal"), Some(300 * 1024), "{printed:?}");
    }
}

#[test]
fn docker_first_read_sees_the_containers_limit() {
    if !needs_met(MOUNT_AND_CGROUPS) || !needs_met(&[Need::Docker]) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    first_reads_see_the_limit(&DOCKER);
}

#[test]
fn podman_first_read_sees_the_containers_limit() {
    if !needs_met(MOUNT_AND_CGROUPS) || !needs_met(&[Need::Podman]) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    first_reads_see_the_limit(&PODMAN);
}

// ---- a busy loop under half a CPU ----

#[test]
fn half_cpu_busy_loop_shows_half_of_one_cpu() {
    if !needs_met(MOUNT_AND_CGROUPS) || !needs_met(&[Need::Docker]) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let image = docker::tools_image(&DOCKER);
    let daemon = Daemon::start(&[], &[]);
    let mut options: Vec<String> = vec!["--cpus".into(), "0.5".into()];
    options.extend(docker::docker_args(&daemon.mount_point));
    let container = Container::run(
        &DOCKER,
        "busy",
        &options,
        &image,
        &["sh", "-c", "while :; do :; done"],
    );
    let cgroups = container.cgroups();
    let facts = CgroupFacts::read(&cgroups);
    let visible = Expected::of(&facts, &Host::read()).visible.len() as f64;
    // The loop runs into its quota from the first period; a second lets `top` start on a steady state.
    sleep(Duration::from_secs(1));
    let sample = || {
        let stat = container.exec_ok(ENV, "head -n 1 /proc/stat");
        let usage_ns: u64 = cgroups.read("cpuacct", "cpuacct.usage").parse().unwrap();
        (stat, usage_ns, Instant::now())
    };
    let throttled = || cgroups.read("cpu", "cpu.stat");
    let (top, first, second, throttling) = std::thread::scope(|scope| {
        let top = scope.spawn(|| container.exec(ENV, "/usr/bin/top -b -n 2 -d 3"));
        let throttled_before = throttled();
        let first = sample();
        sleep(Duration::from_secs(4));
        let second = sample();
        let throttling = format!("before:\n{throttled_before}\nafter:\n{}", throttled());
        (top.join().unwrap(), first, second, throttling)
    });

    let (busy_1, total_1) = stat_busy_total(&first.0);
    let (busy_2, total_2) = stat_busy_total(&second.0);
    let shown = 100.0 * (busy_2 - busy_1) as f64 / (total_2 - total_1).max(1) as f64;
    let used =
        100.0 * (second.1 - first.1) as f64 / ((second.2 - first.2).as_nanos() as f64 * visible);
    let top_out = String::from_utf8_lossy(&top.stdout).into_owned();
    let frames: Vec<HashMap<String, f64>> = top_out
        .lines()
        .filter(|l| l.starts_with("%Cpu"))
        .map(top_cpu_fields)
        .collect();
    let top_busy = frames
        .get(1)
        .map(|f| 100.0 - f.get("id").unwrap_or(&100.0) - f.get("wa").unwrap_or(&0.0));
    report(&format!(
        "busy loop under --cpus 0.5: /proc/stat in the container {shown:.1} % of {visible} CPU, \
         cpuacct.usage on the host {used:.1} %, top's second frame {top_busy:?} %"
    ));
    let context = format!(
        "/proc/stat read in the container:\n{}{}\ncpuacct.usage on the host: {} then {} ns over {:.3} s \
         ({visible} visible CPU)\ncpu.stat {throttling}\ntop printed:\n{top_out}{}\ncgroup files:\n{}",
        first.0,
        second.0,
        first.1,
        second.1,
        (second.2 - first.2).as_secs_f64(),
        String::from_utf8_lossy(&top.stderr),
        facts.files.join("\n")
    );
    // What the container is shown is what its cgroup used, relative to the CPUs it is shown (the two
    // windows differ by the exec round trips at their ends).
    assert!(
        (shown - used).abs() <= 10.0,
        "the container shows {shown:.1} % busy, its cgroup used {used:.1} %\n{context}"
    );
    // And that is about the quota: half of one CPU, never more. Less only when the host was too busy to
    // give the loop its half (the cgroup's own usage says so); top then shows what the loop did get.
    assert!(
        shown <= 65.0,
        "the container shows {shown:.1} % busy, above its 0.5-CPU quota\n{context}"
    );
    if used >= 40.0 {
        assert!(
            shown >= 35.0,
            "the container shows {shown:.1} % busy, not about 50 %\n{context}"
        );
    }
    let top_busy = top_busy.unwrap_or_else(|| panic!("top printed no second frame\n{context}"));
    assert!(
        top_busy <= 65.0 && (top_busy - used).abs() <= 15.0,
        "top's second frame shows {top_busy:.1} % busy, the cgroup used {used:.1} %\n{context}"
    );
}

// ---- O_DIRECT writes ----

/// 1 TiB/s: a rule far above any disk's speed limits nothing.
const UNLIMITED_BPS: u64 = 1 << 40;

#[test]
fn o_direct_writes_show_in_diskstats_and_iostat() {
    if !needs_met(MOUNT_AND_CGROUPS) || !needs_met(&[Need::Docker]) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let image = docker::tools_image(&DOCKER);
    let daemon = Daemon::start(&[], &[]);
    // The container writes to its own root file system, which lives under Docker's data root.
    let data_root = DOCKER.run_ok(&["info", "-f", "{{.DockerRootDir}}"]);
    let device = disk_of(Path::new(data_root.trim()));
    let name = block_device_name(&device);
    let node = format!("/dev/{name}");
    assert!(Path::new(&node).exists(), "no {node} for {device}");
    // On cgroup v1 (6.18) the kernel counts I/O in blkio.throttle.* only once throttling has been
    // activated on the device, by a throttle rule in any cgroup; it stays active after the rule is
    // removed, until the device goes away. On a host where no rule was ever set on the disk, the
    // container's own rule, set as a Docker user sets it, turns the counting on.
    let mut options: Vec<String> = vec![
        "--device-write-bps".into(),
        format!("{node}:{UNLIMITED_BPS}"),
    ];
    options.extend(docker::docker_args(&daemon.mount_point));
    let container = Container::run(&DOCKER, "odirect", &options, &image, &["sleep", "600"]);
    let cgroups = container.cgroups();
    let sectors_written = |diskstats: &str| {
        diskstats_line(diskstats, &device).map_or(0, |f| f[9].parse::<u64>().unwrap())
    };
    let before = container.exec_ok(ENV, "cat /proc/diskstats");
    let started = Instant::now();
    let printed = container.exec_ok(
        ENV,
        &format!(
            "echo ==dd==; dd if=/dev/zero of=/o_direct bs=1M count=50 oflag=direct 2>&1\n\
             sleep 0.3\n\
             echo ==diskstats==; cat /proc/diskstats\n\
             echo ==iostat==; /usr/bin/iostat -d -k {name}\n\
             echo ==blockstat==; cat /sys/block/{name}/stat\n"
        ),
    );
    let took = started.elapsed();
    let rule = cgroups.read("blkio", "blkio.throttle.write_bps_device");
    let service = cgroups.read("blkio", "blkio.throttle.io_service_bytes_recursive");
    let out = sections(&printed);
    let cgroup_written: u64 = service
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{device} Write ")))
        .map_or(0, |v| v.parse().unwrap());
    // The container's counters are its cgroup's since it started: all of them, and 50 MiB more than
    // before the write.
    let total = sectors_written(&out["diskstats"]) * 512;
    let shown = total.saturating_sub(sectors_written(&before) * 512);
    let iostat_kb = out["iostat"]
        .lines()
        .skip_while(|l| !l.starts_with("Device"))
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
        .and_then(|l| {
            let header: Vec<&str> = out["iostat"]
                .lines()
                .find(|h| h.starts_with("Device"))?
                .split_whitespace()
                .collect();
            let at = header.iter().position(|c| *c == "kB_wrtn")?;
            l.split_whitespace().nth(at)?.parse::<f64>().ok()
        });
    let block_sectors: Option<u64> = out["blockstat"]
        .split_whitespace()
        .nth(6)
        .and_then(|v| v.parse().ok());
    report(&format!(
        "O_DIRECT: 50 MiB written in {:.2} s; diskstats in the container {shown} bytes, iostat \
         {iostat_kb:?} kB_wrtn, sys/block stat {block_sectors:?} sectors, the cgroup {cgroup_written} bytes",
        took.as_secs_f64()
    ));
    let context = format!(
        "the container printed before:\n{before}\nthen:\n{printed}\n\
         {}/blkio.throttle.write_bps_device = {rule}\nblkio.throttle.io_service_bytes_recursive:\n{service}",
        cgroups.dir("blkio").display()
    );
    assert!(
        rule.lines()
            .any(|l| l == format!("{device} {UNLIMITED_BPS}")),
        "docker did not set the rule\n{context}"
    );
    assert!(
        shown >= 50 * MIB,
        "diskstats shows {shown} bytes\n{context}"
    );
    assert!(
        cgroup_written.abs_diff(total) < MIB,
        "diskstats shows {total} bytes written in all, the cgroup {cgroup_written}\n{context}"
    );
    assert_eq!(
        block_sectors,
        Some(sectors_written(&out["diskstats"])),
        "sys/block/{name}/stat and diskstats disagree\n{context}"
    );
    assert!(
        iostat_kb
            .is_some_and(|kb| kb >= 50.0 * 1024.0 && kb * 1024.0 <= (cgroup_written + MIB) as f64),
        "iostat shows {iostat_kb:?} kB written\n{context}"
    );
}
