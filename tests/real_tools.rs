//! Real programs in simulated containers (design.md section 5): procps, glibc, Python, Node.js and sysstat
//! read cgview's files bind-mounted over `/proc/...`, `/sys/devices/system/cpu` and `/sys/block`, and what
//! they print must agree with the container's limits. Needs root and /dev/fuse.
//!
//! CPU utilisation bounds are loose on purpose: the machine may be shared, and a test must not fail
//! because another process took the CPU; they still tell a container's view from the host's.

mod mounted_support;

use mounted_support::*;
use std::collections::HashMap;
use std::fs;
use std::path::Path;

const ALL_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "cpuset", "blkio", "unified"];

/// A cgroup in every hierarchy a container runtime would use on this host.
fn container_cgroup(label: &str) -> TestCgroup {
    let controllers: Vec<&'static str> = ALL_CONTROLLERS
        .iter()
        .copied()
        .filter(|c| Path::new(CGROUP_ROOT).join(c).is_dir())
        .collect();
    TestCgroup::new(label, &controllers)
}

fn set_quota(cgroup: &TestCgroup, quota_us: u64) {
    cgroup.set("cpu", "cpu.cfs_period_us", "100000");
    cgroup.set("cpu", "cpu.cfs_quota_us", &quota_us.to_string());
}

/// Runs `script` in the container with a C locale (decimal points, 24-hour times) and returns its sections.
fn run_tools(cgroup: &TestCgroup, daemon: &Daemon, script: &str) -> HashMap<String, String> {
    let output = run_in_container(
        cgroup,
        daemon,
        &format!("export LC_ALL=C TERM=dumb S_TIME_FORMAT=ISO\n{script}"),
    );
    sections(&output)
}

fn host_cpu_count() -> usize {
    std::thread::available_parallelism().unwrap().get()
}

fn host_mem_total_kb() -> u64 {
    meminfo_kb(&fs::read_to_string("/proc/meminfo").unwrap(), "MemTotal")
}

fn require_two_cpus() {
    assert!(
        host_cpu_count() >= 2,
        "these scenarios use a 2-CPU cpuset: run them on a machine with at least 2 CPUs"
    );
}

// ---- what the tools print ----

/// `free -k`: the `Mem:` line's total.
fn free_total_kb(out: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .unwrap_or_else(|| panic!("no Mem: line in free's output:\n{out}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A `%Cpu(s):  1.0 us,  2.0 sy, ...` line as name -> percent.
fn top_cpu_fields(line: &str) -> HashMap<String, f64> {
    let values = line
        .split_once(':')
        .unwrap_or_else(|| panic!("not a %Cpu line: {line}"))
        .1;
    values
        .split(',')
        .map(|field| {
            let mut parts = field.split_whitespace();
            let value: f64 = parts.next().unwrap().parse().unwrap();
            (parts.next().unwrap().to_owned(), value)
        })
        .collect()
}

fn top_cpu_lines(out: &str) -> Vec<HashMap<String, f64>> {
    out.lines()
        .filter(|l| l.starts_with("%Cpu"))
        .map(top_cpu_fields)
        .collect()
}

fn assert_sums_to_100(fields: &HashMap<String, f64>, what: &str) {
    let sum: f64 = fields.values().sum();
    assert!(
        (99.0..=101.0).contains(&sum),
        "{what}: %Cpu fields sum to {sum}: {fields:?}"
    );
}

/// `MiB Mem :    512.0 total, ...` in top's output.
fn top_mem_total_mib(out: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("MiB Mem"))
        .unwrap_or_else(|| panic!("no MiB Mem line in top's output:\n{out}"));
    line.split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The three numbers after `load average:` (top, uptime).
fn load_average(out: &str) -> [f64; 3] {
    let tail = out
        .split("load average:")
        .nth(1)
        .unwrap_or_else(|| panic!("no load average in:\n{out}"));
    let values: Vec<f64> = tail
        .lines()
        .next()
        .unwrap()
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect();
    values.try_into().unwrap()
}

/// `/proc/loadavg`: the three averages, running and total tasks.
fn parse_loadavg(text: &str) -> ([f64; 3], u64, u64) {
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{text}");
    let averages = [0, 1, 2].map(|i| fields[i].parse().unwrap());
    let (running, total) = fields[3].split_once('/').unwrap();
    (averages, running.parse().unwrap(), total.parse().unwrap())
}

/// The rows of a table whose header line contains `header_word`, as column name -> value (sysstat,
/// vmstat). Rows end at the first blank line.
fn table(out: &str, header_word: &str) -> Vec<HashMap<String, String>> {
    let mut lines = out
        .lines()
        .skip_while(|l| !l.split_whitespace().any(|w| w == header_word));
    let header: Vec<String> = lines
        .next()
        .unwrap_or_else(|| panic!("no header with {header_word} in:\n{out}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    lines
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split_whitespace().map(str::to_owned))
                .collect()
        })
        .collect()
}

fn number(row: &HashMap<String, String>, column: &str) -> f64 {
    row.get(column)
        .unwrap_or_else(|| panic!("no column {column} in {row:?}"))
        .parse()
        .unwrap()
}

/// `name value` lines (what the Node.js and Python snippets print).
fn key_values(out: &str) -> HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn value<T: std::str::FromStr>(values: &HashMap<String, String>, key: &str) -> T {
    values
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {values:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number: {values:?}"))
}

/// `mpstat`'s `(N CPU)` and the CPU column of its rows.
fn mpstat_cpus(out: &str) -> (usize, Vec<String>) {
    let count = out
        .lines()
        .find_map(|l| {
            l.split_once(" CPU)")?
                .0
                .rsplit_once('(')
                .map(|(_, n)| n.to_owned())
        })
        .unwrap_or_else(|| panic!("no (N CPU) in mpstat's output:\n{out}"))
        .parse()
        .unwrap();
    let rows = table(out, "%usr");
    (count, rows.iter().map(|r| r["CPU"].clone()).collect())
}

const NODE_SNIPPET: &str = r#"node -e 'const os = require("os");
console.log("totalmem", os.totalmem()); console.log("freemem", os.freemem());
console.log("cpus", os.cpus().length); console.log("uptime", os.uptime());
console.log("loadavg1", os.loadavg()[0]);'"#;

const PYTHON_SNIPPET: &str = r#"python3 -c 'import os
print("cpu_count", os.cpu_count())
print("onln", os.sysconf("SC_NPROCESSORS_ONLN"))
print("conf", os.sysconf("SC_NPROCESSORS_CONF"))
print("phys_bytes", os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))'"#;

/// What every scenario asks the CPU-counting tools.
fn cpu_count_script() -> String {
    format!(
        "echo ==getconf==; getconf _NPROCESSORS_ONLN; getconf _NPROCESSORS_CONF\n\
         echo ==python==; {PYTHON_SNIPPET}\n\
         echo ==node==; {NODE_SNIPPET}\n\
         echo ==mpstat==; mpstat -P ALL\n\
         echo ==cpudir==; ls /sys/devices/system/cpu\n\
         echo ==lists==; for f in online possible present offline; do echo \"$f $(cat /sys/devices/system/cpu/$f)\"; done\n\
         echo ==statcpus==; grep ^cpu /proc/stat | cut -d' ' -f1\n"
    )
}

/// Checks that every CPU-counting tool sees `count` CPUs, listed as `ids`.
fn assert_cpu_counts(out: &HashMap<String, String>, count: usize, list: &str, ids: &[u32]) {
    let getconf: Vec<&str> = out["getconf"].lines().collect();
    assert_eq!(
        getconf,
        [count.to_string(), count.to_string()],
        "getconf ONLN, CONF"
    );

    let python = key_values(&out["python"]);
    for key in ["cpu_count", "onln", "conf"] {
        assert_eq!(
            value::<usize>(&python, key),
            count,
            "python {key}: {python:?}"
        );
    }
    let node = key_values(&out["node"]);
    assert_eq!(
        value::<usize>(&node, "cpus"),
        count,
        "node os.cpus().length"
    );

    let (mpstat_count, rows) = mpstat_cpus(&out["mpstat"]);
    assert_eq!(mpstat_count, count, "{}", out["mpstat"]);
    let mut expected_rows = vec!["all".to_owned()];
    expected_rows.extend(ids.iter().map(u32::to_string));
    assert_eq!(rows, expected_rows, "{}", out["mpstat"]);

    let listed: Vec<&str> = out["cpudir"]
        .lines()
        .filter(|name| {
            name.strip_prefix("cpu")
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .collect();
    let expected: Vec<String> = ids.iter().map(|id| format!("cpu{id}")).collect();
    assert_eq!(listed, expected, "cpuN in /sys/devices/system/cpu");

    let lists = key_values(&out["lists"]);
    for name in ["online", "possible", "present"] {
        assert_eq!(lists[name], list, "{name}");
    }
    assert_eq!(
        out["lists"].lines().find(|l| l.starts_with("offline")),
        Some("offline ")
    );

    let mut stat_cpus = vec!["cpu".to_owned()];
    stat_cpus.extend(ids.iter().map(|id| format!("cpu{id}")));
    assert_eq!(out["statcpus"].lines().collect::<Vec<_>>(), stat_cpus);
}

/// Starts a busy loop per `loops`, lets it run, and prints top's second frame (the first one covers only
/// the moment top started, on any host).
/// Starts `loops` busy loops in the container, then runs `top -bn2 -d1` between two reads of the
/// cgroup's `cpuacct.usage` and the clock, so the CPU the loops really got is known whatever else the
/// machine runs.
fn busy_top_script(cgroup: &TestCgroup, loops: usize) -> String {
    let start = "(while :; do :; done) &\nloops=\"$loops $!\"\n".repeat(loops);
    let usage = cgroup.dir("cpuacct").join("cpuacct.usage");
    let usage = usage.display();
    format!(
        "{start}sleep 2\n\
         echo ==usage-before==; cat {usage}; date +%s%N\n\
         echo ==busytop==; top -bn2 -d1 | grep '^%Cpu'\n\
         echo ==usage-after==; cat {usage}; date +%s%N\n\
         kill $loops\n"
    )
}

/// What `top`'s second frame shows busy, and what the cgroup really used over about that second, both
/// in percent of the `visible` CPUs the container is shown.
fn busy_percent(out: &HashMap<String, String>, visible: usize) -> (f64, f64) {
    let frames = top_cpu_lines(&out["busytop"]);
    assert_eq!(frames.len(), 2, "{}", out["busytop"]);
    let last = &frames[1];
    assert_sums_to_100(last, "busy top");
    let sample = |name: &str| -> (f64, f64) {
        let numbers: Vec<f64> = out[name]
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        (numbers[0], numbers[1])
    };
    let (used_before, at_before) = sample("usage-before");
    let (used_after, at_after) = sample("usage-after");
    let used = 100.0 * (used_after - used_before) / ((at_after - at_before) * visible as f64);
    (last["us"] + last["sy"], used)
}

/// The busy share top shows is the share the cgroup used (within `slack` points), and the loops did run.
fn assert_busy_matches_usage(out: &HashMap<String, String>, visible: usize, slack: f64) {
    let (shown, used) = busy_percent(out, visible);
    eprintln!("busy loops: top shows {shown:.1} %, the cgroup used {used:.1} % of {visible} CPUs");
    assert!(used > 5.0, "the busy loops hardly ran ({used:.1} %)");
    assert!(
        (shown - used).abs() <= slack,
        "top shows {shown:.1} % busy, the cgroup used {used:.1} % of its {visible} CPUs"
    );
}

// ---- scenarios ----

#[test]
fn memory_limit_512_mib() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let cgroup = container_cgroup("tools-mem");
    cgroup.set("memory", "memory.limit_in_bytes", &(512 * MIB).to_string());
    let out = run_tools(
        &cgroup,
        &daemon,
        &format!(
            "echo ==free==; free -k\n\
             echo ==top==; top -bn1 | head -n 5\n\
             echo ==uptime==; uptime\n\
             echo ==loadavg==; cat /proc/loadavg\n\
             echo ==vmstat==; vmstat 1 2\n\
             echo ==node==; {NODE_SNIPPET}\n\
             echo ==python==; {PYTHON_SNIPPET}\n\
             echo ==swaps==; cat /proc/swaps\n\
             echo ==pressure==; cat /proc/pressure/memory\n"
        ),
    );

    assert_eq!(free_total_kb(&out["free"]), 524_288, "{}", out["free"]);

    let top = &out["top"];
    assert_eq!(top_mem_total_mib(top), 512.0, "{top}");
    let frames = top_cpu_lines(top);
    assert_eq!(frames.len(), 1, "{top}");
    assert_sums_to_100(&frames[0], "top -bn1");
    // Nothing runs in this container: its load is 0 whatever the host's is.
    for load in load_average(top) {
        assert!(load < 1.0, "idle container's load in top: {top}");
    }

    // Up for a second or two: uptime's own format for less than a minute.
    let uptime = &out["uptime"];
    assert!(uptime.contains(" up 0 min"), "{uptime}");
    for load in load_average(uptime) {
        assert!(load < 1.0, "{uptime}");
    }
    let (loads, running, total) = parse_loadavg(&out["loadavg"]);
    assert!(loads.iter().all(|&l| l < 1.0), "{}", out["loadavg"]);
    // The reader itself runs; the container holds it, its shell and the unshare'd init at most.
    assert!(
        running >= 1 && total >= running && total < 10,
        "{}",
        out["loadavg"]
    );

    // vmstat's second line is an interval: memory and CPU columns are the container's.
    let rows = table(&out["vmstat"], "swpd");
    assert_eq!(rows.len(), 2, "{}", out["vmstat"]);
    let interval = &rows[1];
    assert!(number(interval, "free") <= 524_288.0, "{interval:?}");
    assert_eq!(number(interval, "swpd"), 0.0);
    let cpu_sum: f64 = ["us", "sy", "id", "wa", "st"]
        .iter()
        .map(|c| number(interval, c))
        .sum();
    assert!((98.0..=102.0).contains(&cpu_sum), "{interval:?}");
    assert!(
        number(interval, "r") >= 1.0,
        "vmstat itself runs: {interval:?}"
    );

    let node = key_values(&out["node"]);
    assert_eq!(value::<u64>(&node, "totalmem"), 512 * MIB);
    let freemem: u64 = value(&node, "freemem");
    assert!(freemem > 0 && freemem <= 512 * MIB, "{node:?}");
    assert!(value::<f64>(&node, "uptime") < 60.0, "{node:?}");
    assert!(value::<f64>(&node, "loadavg1") < 1.0, "{node:?}");

    // glibc answers _SC_PHYS_PAGES from sysinfo(2), which no file system can change (see the README).
    let python = key_values(&out["python"]);
    let phys_kb = value::<u64>(&python, "phys_bytes") / 1024;
    assert!(
        phys_kb.abs_diff(host_mem_total_kb()) < host_mem_total_kb() / 100,
        "{python:?}"
    );

    // No swap limit (memsw) set: the swap rules give the container no swap of its own to show.
    let swaps = &out["swaps"];
    assert!(swaps.starts_with("Filename"), "{swaps}");

    if let Some(pressure) = out.get("pressure") {
        assert!(pressure.starts_with("some avg10="), "{pressure}");
        assert!(pressure.contains("\nfull avg10="), "{pressure}");
    }
}

#[test]
fn half_cpu_quota_shows_one_cpu_to_every_tool() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    require_two_cpus();
    let daemon = Daemon::start(&[], &[]);
    let cgroup = container_cgroup("tools-half");
    set_quota(&cgroup, 50_000);
    cgroup.set("cpuset", "cpuset.cpus", "0-1");
    let script = format!(
        "{}echo ==top==; top -bn1 | head -n 5\n{}",
        cpu_count_script(),
        busy_top_script(&cgroup, 1)
    );
    let out = run_tools(&cgroup, &daemon, &script);

    assert_cpu_counts(&out, 1, "0", &[0]);
    assert_sums_to_100(&top_cpu_lines(&out["top"])[0], "top -bn1");
    // A busy loop may use half a CPU, shown on one CPU: about 50 % on an idle machine, relative to what
    // the container has; on a busy one, whatever the cgroup did get.
    assert_busy_matches_usage(&out, 1, 15.0);
}

#[test]
fn one_and_a_half_cpu_quota_on_two_cpus() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    require_two_cpus();
    let daemon = Daemon::start(&[], &[]);
    let cgroup = container_cgroup("tools-1.5");
    set_quota(&cgroup, 150_000);
    cgroup.set("cpuset", "cpuset.cpus", "0-1");
    let script = format!("{}{}", cpu_count_script(), busy_top_script(&cgroup, 2));
    let out = run_tools(&cgroup, &daemon, &script);

    assert_cpu_counts(&out, 2, "0-1", &[0, 1]);
    // Two busy loops get 1.5 CPUs of the 2 shown: about 75 % on an idle machine, never the host's view
    // of them; on a busy one, whatever the cgroup did get.
    assert_busy_matches_usage(&out, 2, 15.0);
}

#[test]
fn no_limits_shows_the_host() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let cgroup = container_cgroup("tools-none");
    let script = format!(
        "{}echo ==free==; free -k\necho ==top==; top -bn1 | head -n 5\n",
        cpu_count_script()
    );
    let out = run_tools(&cgroup, &daemon, &script);

    let host_online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let host_ids: Vec<u32> = (0..host_cpu_count() as u32).collect();
    assert_cpu_counts(&out, host_cpu_count(), host_online.trim(), &host_ids);
    let node = key_values(&out["node"]);
    assert_eq!(value::<u64>(&node, "totalmem"), host_mem_total_kb() * 1024);
    assert_eq!(free_total_kb(&out["free"]), host_mem_total_kb());
    let top_mib = top_mem_total_mib(&out["top"]);
    assert!(
        (top_mib - host_mem_total_kb() as f64 / 1024.0).abs() < 0.1,
        "{}",
        out["top"]
    );
}

#[test]
fn container_doing_io_sees_its_own_bytes() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let work = tempfile::Builder::new()
        .prefix("cgview-io-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let device = disk_of(work.path());
    let name = block_device_name(&device);
    let writer = container_cgroup("tools-io");
    let bystander = container_cgroup("tools-io-idle");
    // On cgroup v1 blkio statistics only count I/O in cgroups with a throttle rule on the device; a rule far
    // above the disk's speed counts without limiting (see mounted.rs).
    for cgroup in [&writer, &bystander] {
        cgroup.set(
            "blkio",
            "blkio.throttle.write_bps_device",
            &format!("{device} 1099511627776"),
        );
    }
    let report = format!(
        "echo ==diskstats==; cat /proc/diskstats\n\
         echo ==iostat==; iostat -d -k {name}\n\
         echo ==sysstat==; cat /sys/block/{name}/stat\n"
    );
    let out = run_tools(
        &writer,
        &daemon,
        &format!(
            // The pause outlasts a snapshot's life (README, "Caching"): binding the files already read them.
            "dd if=/dev/zero of={} bs=1M count=20 oflag=direct conv=fsync 2>/dev/null\nsleep 0.3\n{report}",
            work.path().join("data").display()
        ),
    );

    let rows = table(&out["iostat"], "Device");
    let row = rows
        .iter()
        .find(|r| r["Device"] == name)
        .unwrap_or_else(|| panic!("no {name} in iostat's output:\n{}", out["iostat"]));
    let written_kb = number(row, "kB_wrtn");
    assert!(written_kb >= 20_480.0, "iostat: {row:?}");
    // Everything the container wrote, and not much more: the host's own traffic is not in it.
    assert!(written_kb < 20_480.0 * 4.0, "iostat: {row:?}");

    let line = diskstats_line(&out["diskstats"], &device)
        .unwrap_or_else(|| panic!("no {device} in diskstats:\n{}", out["diskstats"]));
    let sectors_written: u64 = line[9].parse().unwrap();
    assert!(sectors_written >= 40_960, "{line:?}");
    let sys_fields: Vec<&str> = out["sysstat"].split_whitespace().collect();
    assert_eq!(sys_fields[6], line[9], "sys/block stat and diskstats agree");

    let idle = run_tools(&bystander, &daemon, &report);
    let rows = table(&idle["iostat"], "Device");
    if let Some(row) = rows.iter().find(|r| r["Device"] == name) {
        assert_eq!(
            number(row, "kB_wrtn"),
            0.0,
            "the bystander sees the writer: {row:?}"
        );
    }
}

/// `/proc/vmstat` as `name -> value`.
fn vmstat_counters(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(name, value)| (name.to_owned(), value.trim().parse().unwrap()))
        .collect()
}

/// `vmstat -s`: the number before `label` (`K paged out`, `pages swapped in`, ...).
fn vmstat_s(out: &str, label: &str) -> u64 {
    out.lines()
        .find_map(|l| l.trim().strip_suffix(label)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in vmstat -s:\n{out}"))
}

/// Runs `vmstat 1 5` while `workload` runs half a second in, with `/proc/vmstat` and `vmstat -s` before
/// and after.
fn vmstat_around(
    cgroup: &TestCgroup,
    daemon: &Daemon,
    work: &Path,
    workload: &str,
) -> HashMap<String, String> {
    let log = work.join("vmstat.out");
    run_tools(
        cgroup,
        daemon,
        &format!(
            "echo ==before==; cat /proc/vmstat\n\
             echo ==s-before==; vmstat -s\n\
             vmstat 1 5 > {log} & V=$!\n\
             sleep 0.5\n{workload}\nwait $V\n\
             echo ==vmstat==; cat {log}\n\
             sleep 0.3\n\
             echo ==after==; cat /proc/vmstat\n\
             echo ==s-after==; vmstat -s\n",
            log = log.display()
        ),
    )
}

/// Touches every page of a 64 MiB anonymous mapping with huge pages off: 16384 minor faults.
const PAGE_FAULTS: &str = "python3 -c 'import mmap\n\
m = mmap.mmap(-1, 64 << 20)\n\
m.madvise(mmap.MADV_NOHUGEPAGE)\n\
for i in range(0, len(m), 4096): m[i] = 1'";

#[test]
fn vmstat_shows_the_containers_paging_and_block_io() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let work = tempfile::Builder::new()
        .prefix("cgview-vmstat-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let device = disk_of(work.path());
    let writer = container_cgroup("tools-vmstat");
    let bystander = container_cgroup("tools-vmstat-idle");
    for cgroup in [&writer, &bystander] {
        cgroup.set("memory", "memory.limit_in_bytes", &(256 * MIB).to_string());
        // v1 blkio counts a cgroup's I/O only with a throttle rule on the device (README, diskstats).
        cgroup.set(
            "blkio",
            "blkio.throttle.write_bps_device",
            &format!("{device} 1099511627776"),
        );
    }
    let out = vmstat_around(
        &writer,
        &daemon,
        work.path(),
        &format!(
            "dd if=/dev/zero of={} bs=1M count=50 oflag=direct conv=fsync 2>/dev/null\n{PAGE_FAULTS}",
            work.path().join("data").display()
        ),
    );
    let host = vmstat_counters(&fs::read_to_string("/proc/vmstat").unwrap());
    let (before, after) = (
        vmstat_counters(&out["before"]),
        vmstat_counters(&out["after"]),
    );

    // The host's lines, in the host's order, with the container's values.
    let names = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&out["after"]),
        names(&fs::read_to_string("/proc/vmstat").unwrap())
    );
    let written_kb = after["pgpgout"] - before["pgpgout"];
    assert!(written_kb >= 51_200, "pgpgout grew by {written_kb} kB");
    assert!(
        written_kb < 51_200 * 2,
        "the host's writes are not the container's: {written_kb} kB"
    );
    let faults = after["pgfault"] - before["pgfault"];
    assert!(faults >= 16_384, "pgfault grew by {faults}");
    assert!(
        after["pgfault"] < host["pgfault"],
        "the host's faults: {}",
        after["pgfault"]
    );
    // Counters never go backwards.
    for (name, value) in &after {
        if !name.starts_with("nr_") {
            assert!(
                *value >= before[name],
                "{name}: {} then {value}",
                before[name]
            );
        }
    }
    assert!(
        after["nr_free_pages"] * 4 <= 256 * 1024,
        "{}",
        after["nr_free_pages"]
    );

    // vmstat 1: the interval lines add up to the container's 50 MiB in bo (kB per second over 1-second
    // intervals), and it does not swap (v1 counts no swap-ins or -outs per cgroup).
    let rows = table(&out["vmstat"], "swpd");
    assert_eq!(rows.len(), 5, "{}", out["vmstat"]);
    let intervals = &rows[1..];
    let bo: f64 = intervals.iter().map(|r| number(r, "bo")).sum();
    assert!(
        (51_200.0..102_400.0).contains(&bo),
        "bo over the intervals: {bo}\n{}",
        out["vmstat"]
    );
    for row in intervals {
        assert_eq!(
            (number(row, "si"), number(row, "so")),
            (0.0, 0.0),
            "{row:?}"
        );
        assert!(number(row, "free") <= (256 * 1024) as f64, "{row:?}");
    }

    // vmstat -s: K paged out is the container's pgpgout, far below the host's.
    let paged_out = vmstat_s(&out["s-after"], "K paged out");
    assert!(paged_out - vmstat_s(&out["s-before"], "K paged out") >= 51_200);
    assert!(
        paged_out < host["pgpgout"],
        "{paged_out} vs the host's {}",
        host["pgpgout"]
    );
    assert_eq!(vmstat_s(&out["s-after"], "pages swapped out"), 0);

    // A container doing nothing meanwhile writes nothing, whatever the writer and the host do: its
    // intervals show no writes, and its total is at most the few blocks its own shell may have written.
    let logs = tempfile::Builder::new()
        .prefix("cgview-vmstat-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let idle = vmstat_around(&bystander, &daemon, logs.path(), "true");
    let rows = table(&idle["vmstat"], "swpd");
    let bo: f64 = rows[1..].iter().map(|r| number(r, "bo")).sum();
    assert_eq!(bo, 0.0, "{}", idle["vmstat"]);
    let idle_paged_out = vmstat_s(&idle["s-after"], "K paged out");
    assert!(
        idle_paged_out < 1024,
        "the bystander wrote {idle_paged_out} kB"
    );
}

#[test]
fn load_average_follows_the_containers_own_tasks() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let cgroup = container_cgroup("tools-load");
    // Two loops that sleep in the kernel's eyes never: both count as running.
    let script = format!(
        "(while :; do :; done) &\nloops=$!\n(while :; do :; done) &\nloops=\"$loops $!\"\nsleep 0.5\n\
         echo ==first==; cat /proc/loadavg\n\
         sleep 6\n\
         echo ==later==; cat /proc/loadavg\n\
         echo ==top==; top -bn1 | head -n 1\n\
         echo ==node==; {NODE_SNIPPET}\n\
         kill $loops\n"
    );
    let out = run_tools(&cgroup, &daemon, &script);

    // First read half a second into the container's life: its averages start as if sampled since it
    // started (about 0, as on a freshly booted kernel) and climb with each 5-second sample of the loops.
    // Task counts come from the sampler too (at most one 5-second interval old).
    let (first, _, _) = parse_loadavg(&out["first"]);
    let (later, running, total) = parse_loadavg(&out["later"]);
    assert!(running >= 2, "{}", out["later"]);
    assert!((3..12).contains(&total), "{}", out["later"]);
    assert!(
        later[0] > first[0] && (0.1..=3.5).contains(&later[0]),
        "{} then {}",
        out["first"],
        out["later"]
    );
    let top = load_average(&out["top"]);
    assert!((0.1..=3.5).contains(&top[0]), "{}", out["top"]);
    let node = key_values(&out["node"]);
    assert!(
        (0.1..=3.5).contains(&value::<f64>(&node, "loadavg1")),
        "{node:?}"
    );
}

/// `/proc/loadavg`'s running/total and `/proc/stat`'s `procs_running` are the container's at the time of
/// the read: the first read of a busy container counts all its threads (not `1/1`), and threads started
/// before a read are counted by it (counts are reused for 100 ms at most), without waiting for the
/// sampler's next round (5 s).
#[test]
fn loadavg_counts_are_the_containers_at_the_read() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let cgroup = container_cgroup("tools-tasks");
    let out = run_tools(
        &cgroup,
        &daemon,
        "for i in 1 2 3 4 5 6 7; do sleep 300 & done\n\
         echo ==first==; cat /proc/loadavg\n\
         for i in 1 2 3 4 5; do sleep 300 & done\n\
         sleep 0.25\n\
         echo ==second==; cat /proc/loadavg\n\
         echo ==stat==; grep procs_ /proc/stat\n\
         kill $(jobs -p) 2>/dev/null; true\n",
    );
    let (_, first_running, first_total) = parse_loadavg(&out["first"]);
    let (_, second_running, second_total) = parse_loadavg(&out["second"]);
    // Seven sleepers, the shell and the reader at least.
    assert!(first_total >= 9, "{}", out["first"]);
    assert!(first_running >= 1 && first_running < first_total);
    assert_eq!(
        second_total,
        first_total + 5,
        "first {} second {}",
        out["first"],
        out["second"]
    );
    assert!(second_running >= 1, "{}", out["second"]);
    assert!(out["stat"].contains("procs_running"), "{}", out["stat"]);
}

/// A host-side process (outside any test cgroup) holding `gib` GiB of touched anonymous memory until it
/// is dropped: another job on the machine, as the issue describes.
struct MemoryHog(std::process::Child);

impl MemoryHog {
    fn hold(gib: u64) -> MemoryHog {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import mmap, sys\n\
                 m = mmap.mmap(-1, int(sys.argv[1]) << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)\n\
                 for i in range(0, len(m), 4096): m[i] = 1\n\
                 print('ready', flush=True)\n\
                 sys.stdin.read()\n",
                &gib.to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let hog = MemoryHog(child);
        assert_eq!(line.trim(), "ready", "the memory hog did not start");
        hog
    }
}

impl Drop for MemoryHog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The host's meminfo read right before and right after the container's, from a procfs mounted inside
/// the container (its `/proc/meminfo` is cgview's), then what the tools print.
fn busy_host_script(host_proc: &Path) -> String {
    let host = host_proc.display();
    format!(
        "mount -t proc proc {host}\n\
         echo ==before==; cat {host}/meminfo\n\
         echo ==meminfo==; cat /proc/meminfo\n\
         echo ==after==; cat {host}/meminfo\n\
         echo ==free==; free -k\n\
         echo ==node==; {NODE_SNIPPET}\n\
         echo ==python==; python3 -c 'print(\"available\", [int(l.split()[1]) for l in open(\"/proc/meminfo\") if l.startswith(\"MemAvailable:\")][0])'\n\
         echo ==swaps==; cat /proc/swaps\n\
         umount {host}\n"
    )
}

/// `name`'s value in the host's meminfo: the larger of the reads around the container's, plus what may
/// have changed in between (a snapshot may be up to 100 ms older; other jobs run on the machine).
fn host_bound_kb(out: &HashMap<String, String>, name: &str) -> u64 {
    const SLACK_KB: u64 = 64 * 1024;
    meminfo_kb(&out["before"], name).max(meminfo_kb(&out["after"], name)) + SLACK_KB
}

/// Every line of the container's meminfo within its MemTotal (but the host kernel's constants), free
/// and available within the host's, and the tools agreeing with it.
fn assert_within_host(out: &HashMap<String, String>, hog_kb: u64) {
    let meminfo = &out["meminfo"];
    let total = meminfo_kb(meminfo, "MemTotal");
    let free = meminfo_kb(meminfo, "MemFree");
    let available = meminfo_kb(meminfo, "MemAvailable");
    let host_total = meminfo_kb(&out["before"], "MemTotal");
    assert!(
        free <= host_bound_kb(out, "MemFree"),
        "{meminfo}\n{}",
        out["after"]
    );
    assert!(
        available <= host_bound_kb(out, "MemAvailable"),
        "{meminfo}\n{}",
        out["after"]
    );
    // The hog's memory is not shown free or available, as total - own usage would show it.
    assert!(available + hog_kb <= host_total, "{meminfo}");
    for line in meminfo.lines() {
        let (name, rest) = line.split_once(':').unwrap();
        let value: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
        let exempt = [
            "VmallocTotal",
            "VmallocChunk",
            "CommitLimit",
            "SwapTotal",
            "SwapFree",
        ]
        .contains(&name)
            || name.starts_with("DirectMap")
            || name.starts_with("HugePages_");
        assert!(
            exempt || value <= total,
            "{line} above MemTotal {total}\n{meminfo}"
        );
    }

    // free(1): total, then used, free, shared, buff/cache, available.
    let mem: Vec<u64> = out["free"]
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(mem[0], total, "{}", out["free"]);
    assert!(mem[2] <= host_bound_kb(out, "MemFree"), "{}", out["free"]);
    assert!(
        mem[5] <= host_bound_kb(out, "MemAvailable"),
        "{}",
        out["free"]
    );
    let node = key_values(&out["node"]);
    assert_eq!(value::<u64>(&node, "totalmem"), total * 1024);
    // libuv's free memory is MemAvailable.
    assert!(
        value::<u64>(&node, "freemem") <= host_bound_kb(out, "MemAvailable") * 1024,
        "{node:?}"
    );
    let python = key_values(&out["python"]);
    assert!(value::<u64>(&python, "available") <= host_bound_kb(out, "MemAvailable"));

    // proc/swaps shows the swap meminfo shows (none on this host, or none accounted).
    let swap_total = meminfo_kb(meminfo, "SwapTotal");
    let swaps: Vec<&str> = out["swaps"].lines().collect();
    assert!(swaps[0].starts_with("Filename"), "{}", out["swaps"]);
    if swap_total == 0 {
        assert_eq!(swaps.len(), 1, "{}", out["swaps"]);
    } else {
        let used = swap_total - meminfo_kb(meminfo, "SwapFree");
        let fields: Vec<&str> = swaps[1].split_whitespace().collect();
        assert_eq!(fields[2..4], [swap_total.to_string(), used.to_string()]);
    }
}

#[test]
fn busy_host_bounds_what_unlimited_and_limited_containers_see_free() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    const HOG_GIB: u64 = 4;
    let daemon = Daemon::start(&[], &[]);
    let host_proc = tempfile::Builder::new()
        .prefix("cgview-hostproc-")
        .tempdir()
        .unwrap();
    let _hog = MemoryHog::hold(HOG_GIB);
    let hog_kb = HOG_GIB << 20;

    // No limit: total - usage would be nearly the whole machine, the hog's 4 GiB included.
    let unlimited = container_cgroup("tools-busy-none");
    let out = run_tools(&unlimited, &daemon, &busy_host_script(host_proc.path()));
    assert_eq!(meminfo_kb(&out["meminfo"], "MemTotal"), host_mem_total_kb());
    assert_within_host(&out, hog_kb);

    // A limit 1 GiB below the machine's memory: its own headroom is more than the busy host has free.
    let limited = container_cgroup("tools-busy-limited");
    let limit_kb = host_mem_total_kb() - (1 << 20);
    limited.set(
        "memory",
        "memory.limit_in_bytes",
        &(limit_kb * 1024).to_string(),
    );
    let out = run_tools(&limited, &daemon, &busy_host_script(host_proc.path()));
    assert_eq!(meminfo_kb(&out["meminfo"], "MemTotal"), limit_kb);
    assert_within_host(&out, hog_kb);
}
