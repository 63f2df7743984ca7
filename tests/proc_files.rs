//! `/proc/stat`, `loadavg`, `swaps`, `pressure/*`, `slabinfo` and the CPU lists on fixture trees (no
//! root), through the same resolve -> read -> render path the daemon uses.

mod host_fixture;

use cgview::catalog::ServedFile;
use cgview::service::fallback::FallbackCause;
use cgview::service::view::Source;
use host_fixture::*;
use std::fs;

const CONTAINER_NS: &str = "pid:[4026532600]";
const SEC_NS: u64 = 1_000_000_000;

/// A container in its own pid namespace: init 801 (started 940 s after boot, on a host up 1000 s) and
/// the processes `others` (pid, innermost pid, state), all in cgroup `path`.
fn container(host: &HostFixture, path: &str, membership: &str, others: &[(u32, u32, char)]) {
    host.process(&Process::host(800, membership.replace(path, "/")));
    host.process(&Process {
        pid: 801,
        tgid: 801,
        ppid: 800,
        nspid: &[801, 1],
        pid_ns: CONTAINER_NS,
        start_ticks: 94_000,
        cgroup: membership.to_owned(),
    });
    for &(pid, inner, state) in others {
        host.process(&Process {
            pid,
            tgid: pid,
            ppid: 801,
            nspid: Box::leak(Box::new([pid, inner])),
            pid_ns: CONTAINER_NS,
            start_ticks: 95_000,
            cgroup: membership.to_owned(),
        });
        set_state(host, pid, state);
    }
}

fn set_state(host: &HostFixture, pid: u32, state: char) {
    let path = host.paths.proc_root.join(pid.to_string()).join("stat");
    let stat = fs::read_to_string(&path)
        .unwrap()
        .replacen(") S ", &format!(") {state} "), 1);
    fs::write(path, stat).unwrap();
}

fn thread_list(pids: &[u32]) -> String {
    pids.iter().map(|p| format!("{p}\n")).collect()
}

fn cpu_line<'a>(stat: &'a str, name: &str) -> Vec<&'a str> {
    stat.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} line in\n{stat}"))
        .split_whitespace()
        .skip(1)
        .collect()
}

// ---- /proc/stat ---------------------------------------------------------------------------------

fn v1_stat_host() -> HostFixture {
    let host = hybrid_host();
    let path = "/ctr";
    host.cgroup_file("cpu", path, "cpu.cfs_quota_us", "200000\n");
    host.cgroup_file("cpu", path, "cpu.cfs_period_us", "100000\n");
    host.cgroup_file("cpuset", path, "cpuset.effective_cpus", "0-3\n");
    host.cgroup_file(
        "cpuacct",
        path,
        "cpuacct.usage_all",
        &format!(
            "cpu user system\n0 {} {}\n1 {} {}\n2 {} 0\n3 {} {}\n",
            10 * SEC_NS,
            5 * SEC_NS,
            4 * SEC_NS,
            2 * SEC_NS,
            2 * SEC_NS,
            2 * SEC_NS,
            2 * SEC_NS
        ),
    );
    host.cgroup_file(
        "cpuacct",
        path,
        "tasks",
        &thread_list(&[801, 802, 803, 804]),
    );
    container(
        &host,
        path,
        &hybrid_membership(path),
        &[(802, 2, 'R'), (803, 3, 'D'), (804, 4, 'S')],
    );
    host
}

#[test]
fn stat_v1_shows_visible_cpus_with_hidden_usage_spread_over_them() {
    let host = v1_stat_host();
    let (stat, source) = render_text(&host.view(), ServedFile::Stat, 804);
    assert_eq!(source, Source::Container);
    // Quota 2 of cpuset 0-3: CPUs 0 and 1. CPUs 2 and 3 used 4 s user + 2 s system, spread over both.
    // Up 60 s: idle = 6000 ticks - used.
    assert_eq!(
        cpu_line(&stat, "cpu0"),
        ["1200", "0", "600", "4200", "0", "0", "0", "0", "0", "0"]
    );
    assert_eq!(
        cpu_line(&stat, "cpu1"),
        ["600", "0", "300", "5100", "0", "0", "0", "0", "0", "0"]
    );
    assert_eq!(
        cpu_line(&stat, "cpu"),
        ["1800", "0", "900", "9300", "0", "0", "0", "0", "0", "0"]
    );
    assert!(!stat.contains("cpu2 ") && !stat.contains("cpu3 "), "{stat}");
    // The reader (804) counts as running, as the kernel counts a reader of its own /proc/stat.
    assert!(
        stat.contains("procs_running 2\nprocs_blocked 1\n"),
        "{stat}"
    );
    assert!(stat.contains("btime 1700000000\n") && stat.contains("intr 5000 1 2 3\n"));
}

#[test]
fn stat_counters_never_go_backwards() {
    let host = v1_stat_host();
    let view = host.view();
    let (first, _) = render_text(&view, ServedFile::Stat, 804);
    // A smaller reading (a counter reset, or usage redistributed): what was shown stays.
    host.cgroup_file(
        "cpuacct",
        "/ctr",
        "cpuacct.usage_all",
        "cpu user system\n0 0 0\n1 0 0\n2 0 0\n3 0 0\n",
    );
    let (second, _) = render_text(&view, ServedFile::Stat, 804);
    for name in ["cpu", "cpu0", "cpu1"] {
        let before = cpu_line(&first, name);
        let after = cpu_line(&second, name);
        for (b, a) in before.iter().zip(&after) {
            assert!(
                a.parse::<u64>().unwrap() >= b.parse::<u64>().unwrap(),
                "{name}: {before:?} -> {after:?}"
            );
        }
    }
    // A fresh view (a restarted daemon) has no memory: it shows the new, lower values.
    let (fresh, _) = render_text(&host.view(), ServedFile::Stat, 804);
    assert_eq!(cpu_line(&fresh, "cpu0")[0], "0");
}

#[test]
fn stat_v2_spreads_totals_over_visible_cpus() {
    let host = v2_host();
    let path = "/pod/ctr";
    host.cgroup_file(
        "",
        path,
        "cpu.stat",
        "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\nnr_periods 0\n",
    );
    host.cgroup_file("", path, "cpu.max", "150000 100000\n");
    host.cgroup_file("", path, "cpuset.cpus.effective", "0-3\n");
    host.cgroup_file("", path, "cgroup.threads", &thread_list(&[801, 802]));
    container(&host, path, &format!("0::{path}\n"), &[(802, 2, 'S')]);
    let (stat, source) = render_text(&host.view(), ServedFile::Stat, 802);
    assert_eq!(source, Source::Container);
    assert_eq!(
        cpu_line(&stat, "cpu0"),
        ["100", "0", "50", "5850", "0", "0", "0", "0", "0", "0"]
    );
    assert_eq!(cpu_line(&stat, "cpu1"), cpu_line(&stat, "cpu0"));
    assert_eq!(cpu_line(&stat, "cpu")[..4], ["200", "0", "100", "11700"]);
    assert!(
        stat.contains("procs_running 1\nprocs_blocked 0\n"),
        "{stat}"
    );
}

#[test]
fn stat_cpuset_only_caller_sees_host_lines_of_its_cpus() {
    let host = hybrid_host();
    host.cgroup_file("cpuset", "/c", "cpuset.effective_cpus", "1-2\n");
    host.cgroup_file("cpuset", "/c", "tasks", "600\n");
    host.process(&Process::host(
        600,
        "8:blkio:/\n5:memory:/\n4:cpuset:/c\n3:cpuacct:/\n2:cpu:/\n0::/\n".into(),
    ));
    let (stat, source) = render_text(&host.view(), ServedFile::Stat, 600);
    assert_eq!(source, Source::Container);
    assert_eq!(
        cpu_line(&stat, "cpu"),
        ["2000", "5", "1000", "45000", "150", "0", "25", "0", "0", "0"]
    );
    assert_eq!(cpu_line(&stat, "cpu1")[0], "1000");
    assert!(!stat.contains("cpu0 ") && !stat.contains("cpu3 "));
    assert!(
        stat.contains("procs_running 1\nprocs_blocked 0\n"),
        "{stat}"
    );
}

#[test]
fn stat_host_caller_gets_host_file() {
    let host = hybrid_host();
    host.process(&Process::host(600, hybrid_membership("/")));
    let (stat, source) = render_text(&host.view(), ServedFile::Stat, 600);
    assert_eq!(source, Source::Host);
    assert_eq!(stat, HOST_STAT);
}

// ---- /proc/loadavg ------------------------------------------------------------------------------

#[test]
fn loadavg_counts_the_containers_threads_and_its_own_last_pid() {
    let host = v2_host();
    let path = "/pod/ctr";
    host.cgroup_file("", path, "cgroup.threads", &thread_list(&[801, 802]));
    host.cgroup_file("", &format!("{path}/sub"), "cgroup.threads", "803\n804\n");
    container(
        &host,
        path,
        &format!("0::{path}\n"),
        &[(802, 7, 'R'), (803, 9, 'D'), (804, 12, 'S')],
    );
    let (text, source) = render_text(&host.view(), ServedFile::Loadavg, 804);
    assert_eq!(source, Source::Container);
    // Active = 1 runnable + 1 uninterruptible (the reader aside); running = 1 + the reader. The
    // container's init started 60 s before the host's uptime: its averages start as 2 tasks sampled since
    // then would have made them, 2 x (1 - e^(-60/window)) for windows of 1, 5 and 15 minutes.
    assert_eq!(text, "1.26 0.36 0.13 2/4 12\n");
}

#[test]
fn loadavg_host_namespace_container_keeps_host_last_pid() {
    let host = hybrid_host();
    host.cgroup_file("cpuacct", "/svc", "tasks", "600\n");
    host.process(&Process::host(600, hybrid_membership("/svc")));
    let (text, _) = render_text(&host.view(), ServedFile::Loadavg, 600);
    assert_eq!(text, "0.00 0.00 0.00 1/1 98765\n");
}

#[test]
fn loadavg_vanished_cgroup_falls_back_to_host() {
    let host = hybrid_host();
    host.process(&Process::host(600, hybrid_membership("/gone")));
    let view = host.view();
    let (text, source) = render_text(&view, ServedFile::Loadavg, 600);
    assert_eq!(source, Source::Fallback(FallbackCause::CgroupVanished));
    assert_eq!(text, HOST_LOADAVG);
}

// ---- /proc/swaps --------------------------------------------------------------------------------

fn v2_swap_host(swap_max: &str) -> HostFixture {
    let host = v2_host();
    let path = "/ctr";
    host.cgroup_file("", path, "memory.max", &format!("{}\n", 512 * MIB));
    host.cgroup_file("", path, "memory.current", &format!("{}\n", 100 * MIB));
    host.cgroup_file("", path, "memory.stat", "anon 0\nfile 0\n");
    host.cgroup_file("", path, "memory.swap.max", &format!("{swap_max}\n"));
    host.cgroup_file("", path, "memory.swap.current", &format!("{}\n", MIB));
    host.process(&Process::host(600, format!("0::{path}\n")));
    host
}

#[test]
fn swaps_follow_the_meminfo_swap_rules() {
    let host = v2_swap_host(&(256 * MIB).to_string());
    let view = host.view();
    let (swaps, source) = render_text(&view, ServedFile::Swaps, 600);
    assert_eq!(source, Source::Container);
    let lines: Vec<&str> = swaps.lines().collect();
    assert_eq!(lines[0], HOST_SWAPS.lines().next().unwrap());
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["none", "virtual", "262144", "1024", "0"]
    );
    let (meminfo, _) = render_text(&view, ServedFile::Meminfo, 600);
    assert_eq!(meminfo_kb(&meminfo, "SwapTotal"), 262_144);
    assert_eq!(meminfo_kb(&meminfo, "SwapFree"), 262_144 - 1024);
}

#[test]
fn swaps_without_container_swap_is_header_only() {
    let host = v2_swap_host("0");
    let (swaps, _) = render_text(&host.view(), ServedFile::Swaps, 600);
    assert_eq!(swaps, "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
}

// ---- /proc/pressure -----------------------------------------------------------------------------

const CONTAINER_PRESSURE: &str =
    "some avg10=1.00 avg60=0.50 avg300=0.10 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";

#[test]
fn pressure_on_hybrid_comes_from_the_unified_cgroup() {
    let host = hybrid_host();
    host.cgroup_file("unified", "/ctr", "cpu.pressure", CONTAINER_PRESSURE);
    host.cgroup_file("unified", "/ctr", "io.pressure", CONTAINER_PRESSURE);
    host.process(&Process::host(600, hybrid_membership("/ctr")));
    let view = host.view();
    for file in [ServedFile::PressureCpu, ServedFile::PressureIo] {
        let (text, source) = render_text(&view, file, 600);
        assert_eq!(source, Source::Container, "{file:?}");
        assert_eq!(text, CONTAINER_PRESSURE);
    }
    // A kernel that keeps no memory pressure for the cgroup: the host file, counted.
    let (text, source) = render_text(&view, ServedFile::PressureMemory, 600);
    assert_eq!(source, Source::Fallback(FallbackCause::MissingController));
    assert_eq!(text, HOST_PRESSURE);
}

#[test]
fn pressure_of_a_caller_at_the_unified_root_is_the_hosts() {
    let host = hybrid_host();
    host.process(&Process::host(
        600,
        "5:memory:/ctr\n4:cpuset:/ctr\n3:cpuacct:/ctr\n2:cpu:/ctr\n0::/\n".into(),
    ));
    let (text, source) = render_text(&host.view(), ServedFile::PressureCpu, 600);
    assert_eq!(source, Source::Host);
    assert_eq!(text, HOST_PRESSURE);
}

#[test]
fn pressure_on_v2() {
    let host = v2_host();
    host.cgroup_file("", "/ctr", "memory.pressure", CONTAINER_PRESSURE);
    host.process(&Process::host(600, "0::/ctr\n".into()));
    let (text, source) = render_text(&host.view(), ServedFile::PressureMemory, 600);
    assert_eq!(source, Source::Container);
    assert_eq!(text, CONTAINER_PRESSURE);
}

// ---- /proc/slabinfo -----------------------------------------------------------------------------

#[test]
fn slabinfo_v1_per_cgroup_caches_when_the_kernel_has_them() {
    let host = hybrid_host();
    let own = "slabinfo - version: 2.1\n# name <active_objs>\nctr_cache 5 5 64 64 1 : tunables 0 0 0 : slabdata 1 1 0\n";
    host.cgroup_file("memory", "/old", "memory.kmem.slabinfo", own);
    host.cgroup_file("memory", "/new", "memory.kmem.slabinfo", "");
    host.process(&Process::host(600, hybrid_membership("/old")));
    host.process(&Process::host(601, hybrid_membership("/new")));
    let view = host.view();
    assert_eq!(
        render_text(&view, ServedFile::Slabinfo, 600),
        (own.to_owned(), Source::Container)
    );
    // Linux 5.9+ leaves the file empty: slab caches are shared, so the host's file is the answer.
    assert_eq!(
        render_text(&view, ServedFile::Slabinfo, 601),
        (HOST_SLABINFO.to_owned(), Source::Host)
    );
}

// ---- /sys/devices/system/cpu lists ---------------------------------------------------------------

#[test]
fn cpu_lists_show_only_visible_cpus() {
    let host = hybrid_host();
    host.cpu_tree("0-3", &[0, 1, 2, 3]);
    host.cgroup_file("cpuset", "/c", "cpuset.effective_cpus", "1,3\n");
    host.process(&Process::host(600, hybrid_membership("/c")));
    host.process(&Process::host(601, hybrid_membership("/")));
    let view = host.view();
    for file in [
        ServedFile::CpuOnline,
        ServedFile::CpuPresent,
        ServedFile::CpuPossible,
    ] {
        assert_eq!(
            render_text(&view, file, 600),
            ("1,3\n".to_owned(), Source::Container)
        );
    }
    assert_eq!(
        render_text(&view, ServedFile::CpuOffline, 600),
        ("\n".to_owned(), Source::Container)
    );
    // The host's own lists for a host caller, possible and offline included.
    assert_eq!(render_text(&view, ServedFile::CpuPossible, 601).0, "0-7\n");
    assert_eq!(render_text(&view, ServedFile::CpuOffline, 601).0, "4-7\n");
}

// ---- /proc/vmstat -------------------------------------------------------------------------------

fn vmstat_value(text: &str, name: &str) -> u64 {
    cgview::parse::vmstat::vmstat_value(&cgview::parse::vmstat::parse_vmstat(text).unwrap(), name)
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn vmstat_names(text: &str) -> Vec<&str> {
    text.lines().map(|l| l.split(' ').next().unwrap()).collect()
}

fn page_kb() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .unwrap()
        .unwrap() as u64
        / 1024
}

/// A hybrid host's container: 512 MiB limit, 100 MiB used, the v1 stat of a container that faulted and
/// wrote, a blkio cgroup that read 1 MiB and wrote 20 MiB, one OOM kill.
fn v1_vmstat_host(pgfault: u64) -> HostFixture {
    let host = hybrid_host();
    let path = "/ctr";
    v1_memory(&host, path, "536870912", 100 * MIB);
    host.cgroup_file(
        "memory",
        path,
        "memory.stat",
        &format!(
            "pgpgin 7\npgfault 9\ntotal_cache 4194304\ntotal_rss 1048576\ntotal_rss_huge 2097152\n\
             total_dirty 8192\ntotal_active_file 2097152\ntotal_inactive_file 1048576\ntotal_active_anon 1048576\n\
             total_inactive_anon 0\ntotal_shmem 0\ntotal_mapped_file 524288\ntotal_pgpgin 25000\n\
             total_pgpgout 24000\ntotal_pgfault {pgfault}\ntotal_pgmajfault 12\n"
        ),
    );
    host.cgroup_file(
        "memory",
        path,
        "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    );
    host.cgroup_file(
        "blkio",
        path,
        "blkio.throttle.io_service_bytes_recursive",
        &format!(
            "254:0 Read {}\n254:0 Write {}\n254:0 Discard 4096\nTotal 1\n",
            MIB,
            20 * MIB
        ),
    );
    host.cgroup_file(
        "blkio",
        path,
        "blkio.throttle.io_serviced_recursive",
        "254:0 Read 8\n254:0 Write 20\n",
    );
    fs::create_dir_all(host.paths.sys_root.join("kernel/mm/transparent_hugepage")).unwrap();
    fs::write(
        host.paths
            .sys_root
            .join("kernel/mm/transparent_hugepage/hpage_pmd_size"),
        "2097152\n",
    )
    .unwrap();
    host.process(&Process::host(600, hybrid_membership(path)));
    host.process(&Process::host(601, hybrid_membership("/")));
    host
}

#[test]
fn vmstat_v1_is_the_containers_and_agrees_with_its_meminfo() {
    let host = v1_vmstat_host(5000);
    let view = host.view();
    let (vmstat, source) = render_text(&view, ServedFile::Vmstat, 600);
    assert_eq!(source, Source::Container);
    assert_eq!(vmstat_names(&vmstat), vmstat_names(HOST_VMSTAT));
    let (meminfo, _) = render_text(&view, ServedFile::Meminfo, 600);
    assert_eq!(
        vmstat_value(&vmstat, "nr_free_pages") * page_kb(),
        meminfo_kb(&meminfo, "MemFree")
    );
    assert_eq!(
        vmstat_value(&vmstat, "nr_file_pages") * page_kb(),
        meminfo_kb(&meminfo, "Cached")
    );
    assert_eq!(vmstat_value(&vmstat, "nr_dirty") * page_kb(), 8);
    assert_eq!(vmstat_value(&vmstat, "pgfault"), 5000);
    assert_eq!(vmstat_value(&vmstat, "pgmajfault"), 12);
    // kB from blkio, discards left out; never memory.stat's pgpgin (pages charged).
    assert_eq!(vmstat_value(&vmstat, "pgpgin"), 1024);
    assert_eq!(vmstat_value(&vmstat, "pgpgout"), 20 * 1024);
    assert_eq!(vmstat_value(&vmstat, "oom_kill"), 1);
    assert_eq!(vmstat_value(&vmstat, "nr_anon_transparent_hugepages"), 1);
    for name in [
        "pswpin",
        "pswpout",
        "pgfree",
        "pgscan_direct",
        "nr_isolated_file",
    ] {
        assert_eq!(vmstat_value(&vmstat, name), 0, "{name}");
    }
    assert_eq!(vmstat_value(&vmstat, "drop_pagecache"), 1);
    assert_eq!(vmstat_value(&vmstat, "nr_mlock"), 0, "no unevictable pages");
    assert!(vmstat_value(&vmstat, "nr_dirty_threshold") < 700_000 / 10);

    // The host caller gets the host's file.
    assert_eq!(
        render_text(&view, ServedFile::Vmstat, 601),
        (HOST_VMSTAT.to_owned(), Source::Host)
    );
}

#[test]
fn vmstat_counters_never_go_backwards_per_container() {
    let host = v1_vmstat_host(5000);
    let view = host.view();
    assert_eq!(
        vmstat_value(&render_text(&view, ServedFile::Vmstat, 600).0, "pgfault"),
        5000
    );
    // The kernel's count as another host fixture with `pgfault` faults has it.
    let kernel_counts = |pgfault: u64| {
        let other = v1_vmstat_host(pgfault);
        let path = other.cgroup_dir("memory", "/ctr").join("memory.stat");
        host.cgroup_file(
            "memory",
            "/ctr",
            "memory.stat",
            &fs::read_to_string(path).unwrap(),
        );
    };
    // A sub-cgroup's faults went with it (kernels whose v1 totals sum live children only).
    kernel_counts(4000);
    let (after, _) = render_text(&view, ServedFile::Vmstat, 600);
    assert_eq!(vmstat_value(&after, "pgfault"), 5000);
    kernel_counts(4100);
    let (later, _) = render_text(&view, ServedFile::Vmstat, 600);
    assert_eq!(
        vmstat_value(&later, "pgfault"),
        5100,
        "grows with the kernel's count after the drop"
    );
}

#[test]
fn vmstat_v2_reads_memory_stat_io_stat_and_memory_events() {
    let host = v2_host();
    let path = "/ctr";
    host.cgroup_file("", path, "memory.max", &format!("{}\n", 256 * MIB));
    host.cgroup_file("", path, "memory.current", &format!("{}\n", 56 * MIB));
    host.cgroup_file(
        "",
        path,
        "memory.stat",
        "anon 50331648\nfile 8388608\nkernel_stack 163840\npagetables 409600\nshmem 0\nfile_mapped 4096\n\
         file_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\ninactive_anon 50331648\nactive_anon 0\n\
         inactive_file 4194304\nactive_file 4194304\nunevictable 0\nslab_reclaimable 81920\n\
         slab_unreclaimable 40960\nslab 122880\npgscan 300\npgsteal 200\npgscan_kswapd 100\npgscan_direct 200\n\
         pgsteal_direct 150\npgfault 777\npgmajfault 3\npswpin 5\npswpout 6\nthp_fault_alloc 1\n",
    );
    host.cgroup_file(
        "",
        path,
        "memory.events",
        "low 0\nhigh 0\nmax 4\noom 1\noom_kill 2\n",
    );
    host.cgroup_file(
        "",
        path,
        "io.stat",
        "254:0 rbytes=4096 wbytes=52428800 rios=1 wios=50 dbytes=0 dios=0\n\
         254:16 rbytes=8192 wbytes=8192 rios=2 wios=2 dbytes=0 dios=0\n",
    );
    host.process(&Process::host(600, format!("0::{path}\n")));
    let (vmstat, source) = render_text(&host.view(), ServedFile::Vmstat, 600);
    assert_eq!(source, Source::Container);
    assert_eq!(vmstat_names(&vmstat), vmstat_names(HOST_VMSTAT));
    for (name, expected) in [
        ("pgfault", 777),
        ("pgmajfault", 3),
        ("pswpin", 5),
        ("pswpout", 6),
        ("pgscan_direct", 200),
        ("pgsteal_direct", 150),
        ("oom_kill", 2),
        ("thp_fault_alloc", 1),
        ("pgpgin", 12),
        ("pgpgout", 51_208),
        ("nr_kernel_stack", 160),
    ] {
        assert_eq!(vmstat_value(&vmstat, name), expected, "{name}");
    }
    assert_eq!(
        vmstat_value(&vmstat, "nr_free_pages") * page_kb(),
        200 * 1024
    );
    assert_eq!(vmstat_value(&vmstat, "nr_slab_reclaimable") * page_kb(), 80);
    assert_eq!(vmstat_value(&vmstat, "pgfree"), 0);
}

#[test]
fn vmstat_without_io_accounting_shows_no_block_traffic() {
    // A v2 cgroup whose parent does not enable the io controller has no io.stat: the memory lines stay
    // the container's and its I/O shows as none, not as the host's.
    let host = v2_swap_host("max");
    let (vmstat, source) = render_text(&host.view(), ServedFile::Vmstat, 600);
    assert_eq!(source, Source::Container);
    assert_eq!(vmstat_value(&vmstat, "pgpgin"), 0);
    assert_eq!(vmstat_value(&vmstat, "pgpgout"), 0);
    assert_eq!(
        vmstat_value(&vmstat, "nr_free_pages") * page_kb(),
        412 * 1024
    );
}

#[test]
fn vmstat_unparsable_host_file_is_served_and_counted() {
    let host = v1_vmstat_host(5000);
    host.host_file("vmstat", "nr_free_pages lots\n");
    let view = host.view();
    let (text, source) = render_text(&view, ServedFile::Vmstat, 600);
    assert_eq!(text, "nr_free_pages lots\n");
    assert_eq!(source, Source::Fallback(FallbackCause::Unparsable));
}
