//! cgview on a pure cgroup v2 kernel: boots Debian's kernel under QEMU (TCG) with an initramfs holding
//! busybox, cgview, fuse.ko and `tests/vm/guest-init.sh`, which builds a Kubernetes-shaped hierarchy,
//! starts two daemons in private cgroup namespaces and prints what processes read. The assertions are here.
//!
//! Run alone: `cargo test --test v2_vm -- --nocapture` (as root; installs qemu-system-x86,
//! linux-image-amd64, busybox-static and cpio when missing).

mod needs;

use needs::{needs_met, Need};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cgview");

/// `CHECK <name> <value>` lines of the guest's console; a value's lines are joined by `|`.
fn guest_report() -> HashMap<String, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let console = dir.path().join("console.log");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm/boot.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(BIN)
        .arg(&console)
        .status()
        .expect("cannot run tests/vm/boot.sh");
    let text = String::from_utf8_lossy(&std::fs::read(&console).unwrap_or_default()).into_owned();
    assert!(
        status.success(),
        "the v2 VM did not run to the end ({status}); console:\n{text}"
    );
    let report: HashMap<String, Vec<String>> = text
        .lines()
        // The console may put terminal escapes before a line.
        .filter_map(|line| {
            line.trim_end_matches('\r')
                .split_once("CHECK ")
                .map(|(_, rest)| rest)
        })
        .map(|rest| {
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            let parts = value
                .split('|')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect();
            (name.to_owned(), parts)
        })
        .collect();
    assert!(
        report.contains_key("done"),
        "the guest did not finish its checks; console:\n{text}"
    );
    report
}

fn value<'a>(report: &'a HashMap<String, Vec<String>>, name: &str) -> &'a [String] {
    report
        .get(name)
        .unwrap_or_else(|| panic!("the guest reported no {name}"))
}

/// The number in a meminfo line (`MemTotal:  524288 kB`) or a bare number.
fn kb(line: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

fn first_kb(report: &HashMap<String, Vec<String>>, name: &str) -> u64 {
    kb(value(report, name)
        .first()
        .unwrap_or_else(|| panic!("{name} is empty")))
}

#[test]
fn pure_cgroup_v2_vm_end_to_end() {
    if !needs_met(&[Need::VmTools]) {
        return;
    }
    let r = guest_report();
    for controller in ["memory", "cpu", "cpuset", "io", "pids"] {
        assert!(value(&r, "layout")[0]
            .split_whitespace()
            .any(|c| c == controller));
    }
    for log in ["log/tmp/cgview.log", "log/tmp/cgview-ns.log"] {
        let text = value(&r, log).join("\n");
        assert!(text.contains("cgroup layout: cgroup v2"), "{log}: {text}");
        assert!(
            !text.contains("serving the host file"),
            "{log} shows fallbacks: {text}"
        );
        assert!(!text.contains("ERROR"), "{log}: {text}");
    }

    // The guest's kernel (Debian 12's 6.1) cannot resend what a departed daemon took: the daemon says
    // so, keeps no connection, and its stop unmounts as before.
    let release = &value(&r, "kernel.release")[0];
    let mut numbers = release
        .split(['.', '-'])
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if version < (6, 9) {
        let log = value(&r, "log/tmp/cgview.log").join("\n");
        assert!(
            log.contains("cannot resend unanswered requests"),
            "{release}: {log}"
        );
        assert_eq!(value(&r, "stop.still-mounted"), ["0"], "{release}");
    }

    // Both daemons run in a private cgroup namespace; one joins the host's at start, the other keeps its
    // own and resolves through the mount root. Both resolve every caller below.
    let init_ns = &value(&r, "cgroupns.init")[0];
    let joining = &value(&r, "cgroupns.joining-daemon")[0];
    let keeping = &value(&r, "cgroupns.keeping-daemon")[0];
    assert!(
        joining.starts_with(init_ns.as_str()),
        "{joining} vs {init_ns}"
    );
    assert!(
        !keeping.starts_with(init_ns.as_str()),
        "{keeping} vs {init_ns}"
    );

    // meminfo: container 512 MiB under a 256 MiB pod, then the container alone, then no limit.
    let host_mem = first_kb(&r, "host-memtotal");
    for name in [
        "mem.pod-lower.mount",
        "mem.pod-lower.mount-ns",
        "mem.pod-lower.container",
    ] {
        assert_eq!(first_kb(&r, name), 262_144, "{name}");
    }
    assert_eq!(first_kb(&r, "mem.container.mount"), 524_288);
    let cat = value(&r, "mem.container.container-cat");
    assert_eq!(kb(&cat[0]), 524_288);
    assert!(kb(&cat[1]) <= 524_288);
    // busybox free asks sysinfo(2): it shows the machine, whatever a file system serves.
    assert_eq!(first_kb(&r, "mem.container.busybox-free"), host_mem);
    assert_eq!(first_kb(&r, "mem.unlimited.mount"), host_mem);
    // Host MemFree, MemAvailable | the container's | the host's again: within the host's (plus what a
    // snapshot up to 100 ms old may differ by), though total - usage is more than the guest has free.
    let free = value(&r, "mem.unlimited.free");
    let slack = 8 * 1024;
    assert_eq!(free.len(), 6, "{free:?}");
    for (index, name) in [(2, "MemFree"), (3, "MemAvailable")] {
        let host_bound = kb(&free[index - 2]).max(kb(&free[index + 2]));
        assert!(kb(&free[index]) <= host_bound + slack, "{name}: {free:?}");
    }
    assert!(kb(&free[2]) < host_mem - 32 * 1024, "{free:?}");

    // swap: container limit, lower pod limit, no limit, and no swap device at all.
    let swap = value(&r, "swap.limited.mount");
    assert_eq!(kb(&swap[0]), 32_768);
    assert!(kb(&swap[1]) <= 32_768);
    assert_eq!(first_kb(&r, "swap.pod-lower.mount"), 16_384);
    let both = value(&r, "swap.with-swaps");
    let (total, free) = (kb(&both[0]), kb(&both[1]));
    let line: Vec<&str> = both[2].split_whitespace().collect();
    assert_eq!(
        line[..4],
        [
            "none",
            "virtual",
            &total.to_string(),
            &(total - free).to_string()
        ],
        "{both:?}"
    );
    assert_eq!(
        first_kb(&r, "swap.unlimited.mount"),
        first_kb(&r, "host-swaptotal")
    );
    assert_eq!(first_kb(&r, "swap.none.mount"), 0);

    // CPUs on a 2-CPU guest: count | ids | online.
    let expect_cpus = |name: &str, ids: &str, online: &str| {
        let v = value(&r, name);
        assert_eq!(
            v[0],
            ids.split_whitespace().count().to_string(),
            "{name}: {v:?}"
        );
        assert_eq!(v[1], ids, "{name}: {v:?}");
        assert_eq!(v[2], online, "{name}: {v:?}");
    };
    expect_cpus("cpu.half.mount", "0", "0");
    expect_cpus("cpu.one-and-half.mount", "0 1", "0-1");
    expect_cpus("cpu.pod-lower.mount", "0", "0");
    expect_cpus("cpu.cpuset-narrower.mount", "1", "1");
    // In a simulated container: cpuinfo count, online, and nproc (sched_getaffinity: sees the cpuset but
    // never a quota).
    assert_eq!(value(&r, "cpu.half.container"), ["1", "0", "2"]);
    assert_eq!(value(&r, "cpu.cpuset-narrower.container"), ["1", "1", "1"]);
    assert_eq!(value(&r, "cpu.cpuset-narrower.mount-ns"), ["1"]);
    assert_eq!(value(&r, "render.cpu-online"), ["1"]);

    // swaps: the header and the container's virtual swap (the 32 MiB swap.max), in kB.
    let swaps = value(&r, "swaps.limited.mount");
    assert!(swaps[0].starts_with("Filename"), "{swaps:?}");
    let virtual_swap: Vec<&str> = swaps[1].split_whitespace().collect();
    assert_eq!(
        &virtual_swap[..3],
        ["none", "virtual", "32768"],
        "{swaps:?}"
    );

    check_stat_and_friends(&r);

    // uptime: a pid namespace started 2 s before reading, several seconds after boot.
    let host_up: f64 = value(&r, "host-uptime")[0]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let fields = |name: &str| -> Vec<f64> {
        value(&r, name)[0]
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect()
    };
    let pidns = fields("uptime.new-pidns");
    assert!((1.5..6.0).contains(&pidns[0]), "{pidns:?}");
    assert!(pidns[0] < host_up - 1.0, "{pidns:?} vs host {host_up}");
    assert!(
        pidns[1] <= pidns[0] * 2.0 + 0.01,
        "idle above 2 CPUs' wall time: {pidns:?}"
    );
    let container_up = fields("uptime.container");
    assert!((0.5..5.0).contains(&container_up[0]), "{container_up:?}");
    let host_ns = fields("uptime.host-ns");
    let shown_cpus: f64 = value(&r, "uptime.host-ns")[1].parse().unwrap();
    assert!(
        host_ns[0] >= host_up && host_ns[0] < host_up + 30.0,
        "{host_ns:?} vs host {host_up}"
    );
    assert!(
        host_ns[1] <= host_ns[0] * shown_cpus + 0.01,
        "idle above {shown_cpus} CPUs' time: {host_ns:?}"
    );

    // diskstats: the writer's 4 MiB of O_DIRECT writes, from io.stat; another cgroup sees nothing.
    let device = &value(&r, "disk.device")[0];
    let (major, minor) = device.split_once(':').unwrap();
    for name in ["disk.writer.mount", "disk.writer.container"] {
        let line: Vec<&str> = value(&r, name)[0].split_whitespace().collect();
        assert_eq!((line[0], line[1], line[2]), (major, minor, "vda"), "{name}");
        assert!(line[3 + 4].parse::<u64>().unwrap() >= 4, "{name}: {line:?}");
        assert_eq!(line[3 + 6], "8192", "{name}: sectors written {line:?}");
        assert_eq!(
            line.len().to_string(),
            value(&r, "disk.host-columns")[0],
            "{name}"
        );
    }
    let host_columns: usize = value(&r, "disk.host-columns")[0].parse().unwrap();
    let sys_block = |name: &str| -> Vec<String> {
        value(&r, name)[0]
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let writer = sys_block("disk.writer.sys-block");
    assert_eq!(writer.len(), host_columns - 3, "{writer:?}");
    assert_eq!(
        writer[6], "8192",
        "sectors written in sys/block: {writer:?}"
    );
    assert_eq!(sys_block("disk.other.sys-block")[6], "0");
    assert!(
        value(&r, "disk.other.mount").is_empty(),
        "{:?}",
        value(&r, "disk.other.mount")
    );

    check_vmstat(&r);
}

/// `name value` lines of a vmstat excerpt.
fn vmstat_values(lines: &[String]) -> HashMap<String, u64> {
    lines
        .iter()
        .filter_map(|l| l.split_once(' '))
        .map(|(name, value)| (name.to_owned(), value.trim().parse().unwrap()))
        .collect()
}

/// `/proc/vmstat` from `memory.stat`, `io.stat` and `memory.events` on a pure v2 6.1 kernel: the guest's
/// names in its order, the container's 2 MiB O_DIRECT write in `pgpgout`, counters that only grow, free
/// pages as its meminfo's MemFree, nothing for an idle cgroup, and an OOM kill counted where it happened.
fn check_vmstat(r: &HashMap<String, Vec<String>>) {
    let hashes: Vec<&str> = value(r, "vmstat.names")[0].split_whitespace().collect();
    assert_eq!(hashes.len(), 2, "{hashes:?}");
    assert_eq!(hashes[0], hashes[1], "the guest's names, in its order");

    let before = vmstat_values(value(r, "vmstat.writer.before"));
    let after = vmstat_values(value(r, "vmstat.writer.after"));
    let host = vmstat_values(value(r, "vmstat.host"));
    assert!(
        after["pgpgout"] - before["pgpgout"] >= 2048,
        "{before:?} then {after:?}"
    );
    // The 4 MiB of the diskstats section and these 2 MiB, and no more than what the whole guest wrote.
    assert!(after["pgpgout"] >= 6144, "{after:?}");
    assert!(after["pgpgout"] <= host["pgpgout"], "{after:?} vs {host:?}");
    assert!(
        after["pgfault"] > before["pgfault"],
        "{before:?} then {after:?}"
    );
    assert!(after["pgfault"] < host["pgfault"], "{after:?} vs {host:?}");
    for (name, value) in &after {
        if name != "nr_free_pages" {
            assert!(
                value >= &before[name],
                "{name} went back: {before:?} then {after:?}"
            );
        }
    }
    // Not counted per cgroup on 6.1 (pswpin/pswpout) or at all (pgfree): 0, not the guest's.
    for name in ["pswpin", "pswpout", "pgfree"] {
        assert_eq!(after[name], 0, "{name}: {after:?}");
    }
    assert!(host["pgfree"] > 0);

    let free = value(r, "vmstat.writer.free");
    let meminfo_free_kb = kb(&free[0]);
    let vmstat_free_kb = kb(&free[1]) * 4;
    assert!(
        meminfo_free_kb.abs_diff(vmstat_free_kb) <= 1024,
        "MemFree {meminfo_free_kb} kB, nr_free_pages {vmstat_free_kb} kB"
    );
    let container = vmstat_values(value(r, "vmstat.writer.container"));
    assert_eq!(container["pgpgout"], after["pgpgout"], "{container:?}");

    let other = vmstat_values(value(r, "vmstat.other"));
    assert_eq!((other["pgpgin"], other["pgpgout"]), (0, 0), "{other:?}");

    let oom: Vec<&str> = value(r, "vmstat.oom")[0].split_whitespace().collect();
    assert_eq!(oom, ["oom_kill", "1", "oom_kill", "1"], "{oom:?}");
}

/// `/proc/stat` on v2 (cpu.stat totals spread over the visible CPUs), loadavg, pressure, slabinfo and the
/// cpu directory, with a 1.5-CPU quota on the 2-CPU guest and then a half-CPU one.
fn check_stat_and_friends(r: &HashMap<String, Vec<String>>) {
    let columns: usize = value(r, "stat.host-cpu-columns")[0].parse().unwrap();
    let cpu_lines = |name: &str| -> Vec<(String, Vec<u64>)> {
        value(r, name)
            .iter()
            .filter(|l| l.starts_with("cpu"))
            .map(|l| {
                let mut fields = l.split_whitespace();
                let label = fields.next().unwrap().to_owned();
                (label, fields.map(|f| f.parse().unwrap()).collect())
            })
            .collect()
    };
    let (first, busy, after) = (
        cpu_lines("stat.first"),
        cpu_lines("stat.busy"),
        cpu_lines("stat.after"),
    );
    for lines in [&first, &busy, &after] {
        let labels: Vec<&str> = lines.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["cpu", "cpu0", "cpu1"], "{lines:?}");
        assert!(
            lines.iter().all(|(_, v)| v.len() == columns - 1),
            "{lines:?}"
        );
    }
    // 2 s of a busy loop at 100 ticks/s (the guest is emulated: accept a quarter of it).
    let used = |line: &[u64]| line[0] + line[2];
    let grown = used(&busy[0].1) - used(&first[0].1);
    assert!(grown >= 50, "busy loop grew user+system by {grown} ticks");
    for ((label, earlier), (_, later)) in first.iter().zip(&busy).chain(busy.iter().zip(&after)) {
        assert!(
            earlier.iter().zip(later).all(|(a, b)| a <= b),
            "{label} went backwards: {earlier:?} then {later:?}"
        );
    }
    let running: u64 = value(r, "stat.busy")
        .iter()
        .find_map(|l| l.strip_prefix("procs_running "))
        .expect("procs_running")
        .parse()
        .unwrap();
    assert!(running >= 1, "the busy loop runs");
    let btime: Vec<&str> = value(r, "stat.btime")[0].split_whitespace().collect();
    assert_eq!(btime.len(), 4, "{btime:?}");
    assert_eq!(btime[1], btime[3], "btime stays the host's");

    let loads = |name: &str| -> Vec<String> {
        value(r, name)[0]
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // Tracked since the stat reads, when nothing ran: the average climbs as the kernel's does (0.08 after
    // one 5-second sample of one running task), and the loop and the reader are running.
    let busy_load = loads("loadavg.busy");
    assert!(
        busy_load[0].parse::<f64>().unwrap() >= 0.05,
        "one busy loop: {busy_load:?}"
    );
    let running: u64 = busy_load[3].split_once('/').unwrap().0.parse().unwrap();
    assert!(running >= 2, "{busy_load:?}");
    assert_eq!(
        &loads("loadavg.other")[..3],
        ["0.00", "0.00", "0.00"],
        "a cgroup with nothing running"
    );

    for resource in ["cpu", "memory", "io"] {
        let pressure = value(r, &format!("pressure.{resource}"));
        assert!(pressure[0].starts_with("some avg10="), "{pressure:?}");
        assert!(pressure[1].starts_with("full avg10="), "{pressure:?}");
    }
    assert!(value(r, "slabinfo.head")[0].starts_with("slabinfo - version"));

    assert_eq!(value(r, "stat.half"), ["cpu", "cpu0"]);
    assert_eq!(value(r, "cpudir.half"), ["cpu0", "0", "0"]);
    assert_eq!(value(r, "cpudir.half.container"), ["cpu0", "0"]);
    // The topology of the one CPU shown: alone in its package and core, whatever the guest's (two CPUs,
    // both online), in the kernel's list and mask formats; cpuinfo counts it alone too.
    assert_eq!(value(r, "topology.host")[1], "2");
    assert_eq!(
        value(r, "topology.half.container"),
        ["0", "1", "0", "siblings\t: 1", "cpu cores\t: 1"]
    );
}
