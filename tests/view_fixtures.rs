//! The whole resolve -> read -> render path on fixture trees (no root): cgroup v1 with separate and
//! co-mounted controllers, v2, hybrid, and a daemon in a private cgroup namespace.

mod host_fixture;

use cgview::catalog::ServedFile;
use cgview::service::fallback::FallbackCause;
use cgview::service::view::{Source, ViewOptions};
use host_fixture::*;

const CONTAINER_NS: &str = "pid:[4026532500]";

// ---- memory -------------------------------------------------------------------------------------

#[test]
fn meminfo_v1_limit_is_mem_total_and_free_is_limit_minus_usage() {
    let host = hybrid_host();
    v1_memory(&host, "/docker/a", "536870912", 100 * MIB);
    host.process(&Process::host(500, hybrid_membership("/docker/a")));
    let (text, source) = render_text(&host.view(), ServedFile::Meminfo, 500);
    assert_eq!(source, Source::Container);
    assert_eq!(meminfo_kb(&text, "MemTotal"), 524_288);
    assert_eq!(meminfo_kb(&text, "MemFree"), 524_288 - 102_400);
    assert_eq!(meminfo_kb(&text, "Cached"), 4096);
    assert_eq!(meminfo_kb(&text, "MemAvailable"), 524_288 - 102_400 + 3072);
    assert_eq!(meminfo_kb(&text, "Mapped"), 512);
    assert_eq!(meminfo_kb(&text, "Buffers"), 0);
    // No memsw files: the kernel does not account swap per cgroup.
    assert_eq!(meminfo_kb(&text, "SwapTotal"), 0);
    // Untouched lines are the host's.
    assert!(text.contains("DirectMap4k:      300000 kB\n"));
    assert_eq!(text.lines().count(), HOST_MEMINFO.lines().count());
}

#[test]
fn meminfo_v1_parent_limit_lower_wins() {
    let host = hybrid_host();
    host.cgroup_file(
        "memory",
        "/kubepods/pod1",
        "memory.limit_in_bytes",
        "268435456\n",
    );
    v1_memory(&host, "/kubepods/pod1/ctr", "536870912", 0);
    host.process(&Process::host(501, hybrid_membership("/kubepods/pod1/ctr")));
    let (text, _) = render_text(&host.view(), ServedFile::Meminfo, 501);
    assert_eq!(meminfo_kb(&text, "MemTotal"), 262_144);
}

#[test]
fn meminfo_unlimited_values_are_host_total() {
    for limit in ["9223372036854771712", "-1"] {
        let host = hybrid_host();
        v1_memory(&host, "/x", limit, 10 * MIB);
        host.process(&Process::host(502, hybrid_membership("/x")));
        let (text, _) = render_text(&host.view(), ServedFile::Meminfo, 502);
        assert_eq!(meminfo_kb(&text, "MemTotal"), 16_384_000, "limit {limit}");
        // Total - usage would be 16,373,760 kB: more than the host has free. The container cannot have it.
        assert_eq!(meminfo_kb(&text, "MemFree"), 12_000_000, "limit {limit}");
        assert_eq!(
            meminfo_kb(&text, "MemAvailable"),
            14_000_000,
            "limit {limit}"
        );
    }
}

#[test]
fn meminfo_limited_container_on_a_host_under_pressure_gets_what_the_host_has() {
    let host = hybrid_host();
    host.host_file(
        "meminfo",
        &HOST_MEMINFO
            .replace("MemFree:        12000000 kB", "MemFree:          200000 kB")
            .replace("MemAvailable:   14000000 kB", "MemAvailable:     300000 kB"),
    );
    v1_memory(&host, "/p", "2147483648", 100 * MIB);
    host.process(&Process::host(504, hybrid_membership("/p")));
    let (text, _) = render_text(&host.view(), ServedFile::Meminfo, 504);
    assert_eq!(meminfo_kb(&text, "MemTotal"), 2_097_152);
    assert_eq!(meminfo_kb(&text, "MemFree"), 200_000);
    assert_eq!(meminfo_kb(&text, "MemAvailable"), 300_000);
}

#[test]
fn meminfo_host_lines_never_exceed_the_containers_mem_total() {
    let host = hybrid_host();
    host.host_file(
        "meminfo",
        &format!(
            "{HOST_MEMINFO}CommitLimit:    10289148 kB\nCommitted_AS:   20000000 kB\n\
             VmallocTotal:   34359738367 kB\nHugePages_Free:      900\nHugetlb:         2048000 kB\n"
        )
        .replace("HugePages_Total:       0", "HugePages_Total:    1000")
        .replace("Mlocked:               0 kB", "Mlocked:         3000000 kB"),
    );
    v1_memory(&host, "/m", "536870912", 100 * MIB);
    host.process(&Process::host(505, hybrid_membership("/m")));
    let (text, _) = render_text(&host.view(), ServedFile::Meminfo, 505);
    let total = meminfo_kb(&text, "MemTotal");
    assert_eq!(total, 524_288);
    for line in text.lines() {
        let (name, rest) = line.split_once(':').unwrap();
        let value: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
        if !["VmallocTotal", "CommitLimit", "SwapTotal", "SwapFree"].contains(&name)
            && !name.starts_with("DirectMap")
            && !name.starts_with("HugePages_")
        {
            assert!(value <= total, "{line}\n{text}");
        }
    }
    assert_eq!(meminfo_kb(&text, "Mlocked"), 0, "nothing is unevictable");
    // No swap accounted: the anonymous memory, 1 MiB.
    assert_eq!(meminfo_kb(&text, "Committed_AS"), 1024);
    // (10289148 - 2097148) x 512 MiB / 16384000 kB, no swap of its own.
    assert_eq!(meminfo_kb(&text, "CommitLimit"), 262_144);
    assert_eq!(meminfo_kb(&text, "HugePages_Total"), 256);
    assert_eq!(meminfo_kb(&text, "HugePages_Free"), 256);
    assert_eq!(meminfo_kb(&text, "Hugetlb"), 524_288);
    assert_eq!(meminfo_kb(&text, "VmallocTotal"), 34_359_738_367);
}

/// A 512 MiB v1 container using 100 MiB, with a 768 MiB memsw limit, `memsw_usage` and `swappiness`:
/// its rendered meminfo.
fn v1_swap_meminfo(memsw_usage: u64, swappiness: &str) -> String {
    let host = hybrid_host();
    v1_memory(&host, "/s", "536870912", 100 * MIB);
    host.cgroup_file("memory", "/s", "memory.memsw.limit_in_bytes", "805306368\n");
    host.cgroup_file(
        "memory",
        "/s",
        "memory.memsw.usage_in_bytes",
        &format!("{memsw_usage}\n"),
    );
    host.cgroup_file(
        "memory",
        "/s",
        "memory.swappiness",
        &format!("{swappiness}\n"),
    );
    host.process(&Process::host(503, hybrid_membership("/s")));
    render_text(&host.view(), ServedFile::Meminfo, 503).0
}

#[test]
fn meminfo_v1_swap_is_memsw_minus_memory() {
    let text = v1_swap_meminfo(110 * MIB, "60");
    assert_eq!(meminfo_kb(&text, "SwapTotal"), 262_144);
    assert_eq!(meminfo_kb(&text, "SwapFree"), 262_144 - 10_240);
}

#[test]
fn meminfo_v1_swappiness_zero_shows_only_swap_in_use() {
    let text = v1_swap_meminfo(104 * MIB, "0");
    assert_eq!(meminfo_kb(&text, "SwapTotal"), 4096);
    assert_eq!(meminfo_kb(&text, "SwapFree"), 0);
}

/// The `none virtual` line of a rendered `/proc/swaps`: size and used, in kB.
fn virtual_swap(swaps: &str) -> Option<(u64, u64)> {
    let line = swaps.lines().nth(1)?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&fields[..2], ["none", "virtual"], "{swaps}");
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

#[test]
fn swaps_and_meminfo_show_the_same_swap() {
    // v1: memsw 768 MiB over 512 MiB of memory, 10 MiB swapped; then swappiness 0.
    for (swappiness, expected) in [("60", (262_144, 10_240)), ("0", (10_240, 10_240))] {
        let host = hybrid_host();
        v1_memory(&host, "/s", "536870912", 100 * MIB);
        host.cgroup_file("memory", "/s", "memory.memsw.limit_in_bytes", "805306368\n");
        host.cgroup_file("memory", "/s", "memory.memsw.usage_in_bytes", "115343360\n");
        host.cgroup_file(
            "memory",
            "/s",
            "memory.swappiness",
            &format!("{swappiness}\n"),
        );
        host.process(&Process::host(506, hybrid_membership("/s")));
        let view = host.view();
        let (meminfo, _) = render_text(&view, ServedFile::Meminfo, 506);
        let (swaps, source) = render_text(&view, ServedFile::Swaps, 506);
        assert_eq!(source, Source::Container);
        let total = meminfo_kb(&meminfo, "SwapTotal");
        let used = total - meminfo_kb(&meminfo, "SwapFree");
        assert_eq!((total, used), expected, "swappiness {swappiness}");
        assert_eq!(virtual_swap(&swaps), Some(expected), "{swaps}");
    }

    // v2, unlimited swap on a host whose swap is mostly used by others: SwapFree is the host's, and
    // swaps' Used is what meminfo shows used.
    let host = v2_host();
    host.host_file(
        "meminfo",
        &HOST_MEMINFO.replace("SwapFree:        2097148 kB", "SwapFree:         500000 kB"),
    );
    v2_memory(&host, "/w", "max", 64 * MIB);
    host.cgroup_file("", "/w", "memory.swap.max", "max\n");
    host.cgroup_file("", "/w", "memory.swap.current", "1048576\n");
    host.process(&Process::host(513, "0::/w\n".into()));
    let view = host.view();
    let (meminfo, _) = render_text(&view, ServedFile::Meminfo, 513);
    let (swaps, _) = render_text(&view, ServedFile::Swaps, 513);
    assert_eq!(meminfo_kb(&meminfo, "SwapTotal"), 2_097_148);
    assert_eq!(meminfo_kb(&meminfo, "SwapFree"), 500_000);
    assert_eq!(
        virtual_swap(&swaps),
        Some((2_097_148, 1_597_148)),
        "{swaps}"
    );

    // No swap accounting: no swap line in either.
    let host = hybrid_host();
    v1_memory(&host, "/n", "536870912", 0);
    host.process(&Process::host(507, hybrid_membership("/n")));
    let view = host.view();
    let (meminfo, _) = render_text(&view, ServedFile::Meminfo, 507);
    let (swaps, _) = render_text(&view, ServedFile::Swaps, 507);
    assert_eq!(meminfo_kb(&meminfo, "SwapTotal"), 0);
    assert_eq!(virtual_swap(&swaps), None, "{swaps}");
}

fn v2_memory(host: &HostFixture, path: &str, max: &str, current: u64) {
    host.cgroup_file("", path, "memory.max", &format!("{max}\n"));
    host.cgroup_file("", path, "memory.current", &format!("{current}\n"));
    host.cgroup_file(
        "",
        path,
        "memory.stat",
        "anon 1048576\nfile 8388608\nkernel 0\nkernel_stack 16384\npagetables 32768\nshmem 0\n\
         file_mapped 2097152\nfile_dirty 4096\nfile_writeback 0\nanon_thp 0\ninactive_anon 0\n\
         active_anon 1048576\ninactive_file 4194304\nactive_file 4194304\nunevictable 0\n\
         slab_reclaimable 1048576\nslab_unreclaimable 524288\nslab 1572864\n",
    );
}

#[test]
fn meminfo_v2_reads_exact_keys_and_swap() {
    let host = v2_host();
    v2_memory(&host, "/kubepods.slice/pod/ctr", "536870912", 64 * MIB);
    host.cgroup_file("", "/kubepods.slice/pod", "memory.swap.max", "134217728\n");
    host.cgroup_file("", "/kubepods.slice/pod/ctr", "memory.swap.max", "max\n");
    host.cgroup_file(
        "",
        "/kubepods.slice/pod/ctr",
        "memory.swap.current",
        "1048576\n",
    );
    host.process(&Process::host(510, "0::/kubepods.slice/pod/ctr\n".into()));
    let (text, _) = render_text(&host.view(), ServedFile::Meminfo, 510);
    assert_eq!(meminfo_kb(&text, "MemTotal"), 524_288);
    assert_eq!(meminfo_kb(&text, "Cached"), 8192);
    // file_mapped, not the `file` line that a prefix match would find first.
    assert_eq!(meminfo_kb(&text, "Mapped"), 2048);
    assert_eq!(meminfo_kb(&text, "Dirty"), 4);
    assert_eq!(meminfo_kb(&text, "Slab"), 1536);
    assert_eq!(meminfo_kb(&text, "SReclaimable"), 1024);
    assert_eq!(meminfo_kb(&text, "KernelStack"), 16);
    assert_eq!(meminfo_kb(&text, "AnonPages"), 1024);
    assert_eq!(meminfo_kb(&text, "SwapTotal"), 131_072);
    assert_eq!(meminfo_kb(&text, "SwapFree"), 130_048);
}

#[test]
fn meminfo_v2_without_swap_accounting_has_no_swap() {
    let host = v2_host();
    v2_memory(&host, "/c", "max", MIB);
    host.process(&Process::host(511, "0::/c\n".into()));
    let (text, _) = render_text(&host.view(), ServedFile::Meminfo, 511);
    assert_eq!(meminfo_kb(&text, "MemTotal"), 16_384_000);
    assert_eq!(meminfo_kb(&text, "SwapTotal"), 0);
}

#[test]
fn meminfo_empty_memory_stat_still_renders() {
    let host = hybrid_host();
    v1_memory(&host, "/e", "536870912", 0);
    host.cgroup_file("memory", "/e", "memory.stat", "");
    host.process(&Process::host(512, hybrid_membership("/e")));
    let (text, source) = render_text(&host.view(), ServedFile::Meminfo, 512);
    assert_eq!(source, Source::Container);
    assert_eq!(meminfo_kb(&text, "Cached"), 0);
    assert_eq!(meminfo_kb(&text, "MemAvailable"), 524_288);
}

// ---- CPUs ---------------------------------------------------------------------------------------

fn v1_cpu_host(path: &str, quota: &str, cpuset: &str) -> HostFixture {
    let host = hybrid_host();
    host.online_cpus("0-15");
    host.host_file("cpuinfo", &x86_cpuinfo(16));
    host.cgroup_file("cpu", path, "cpu.cfs_quota_us", &format!("{quota}\n"));
    host.cgroup_file("cpu", path, "cpu.cfs_period_us", "100000\n");
    host.cgroup_file(
        "cpuset",
        path,
        "cpuset.effective_cpus",
        &format!("{cpuset}\n"),
    );
    host.process(&Process::host(600, hybrid_membership(path)));
    host
}

#[test]
fn cpuinfo_quota_smaller_than_cpuset_keeps_lowest_real_ids() {
    let host = v1_cpu_host("/c", "250000", "0-3,8,10-11");
    let view = host.view();
    let (cpuinfo, _) = render_text(&view, ServedFile::Cpuinfo, 600);
    assert_eq!(cpuinfo_ids(&cpuinfo), vec![0, 1, 2]);
    let (online, _) = render_text(&view, ServedFile::CpuOnline, 600);
    assert_eq!(online, "0-2\n");
}

#[test]
fn cpuinfo_cpuset_smaller_than_quota_is_the_cpuset() {
    let host = v1_cpu_host("/c", "800000", "2,5");
    let (cpuinfo, _) = render_text(&host.view(), ServedFile::Cpuinfo, 600);
    assert_eq!(cpuinfo_ids(&cpuinfo), vec![2, 5]);
    assert!(cpuinfo.contains("processor\t: 5\n"));
}

#[test]
fn cpuinfo_quota_ignored_when_not_quota_aware() {
    let host = v1_cpu_host("/c", "50000", "4-7");
    let view = host.view_with(ViewOptions {
        quota_aware: false,
        ..ViewOptions::default()
    });
    let (online, _) = render_text(&view, ServedFile::CpuOnline, 600);
    assert_eq!(online, "4-7\n");
}

#[test]
fn cpuinfo_comounted_cpu_cpuacct_detected_by_options() {
    let mut host = HostFixture::new();
    host.mount_v1("memory", "memory");
    host.mount_v1("not-what-it-says", "cpu,cpuacct");
    host.online_cpus("0-3");
    host.cgroup_file("not-what-it-says", "/q", "cpu.cfs_quota_us", "50000\n");
    host.cgroup_file("not-what-it-says", "/q", "cpu.cfs_period_us", "100000\n");
    host.process(&Process::host(601, "3:cpu,cpuacct:/q\n2:memory:/\n".into()));
    let (online, source) = render_text(&host.view(), ServedFile::CpuOnline, 601);
    assert_eq!(source, Source::Container);
    assert_eq!(online, "0\n");
}

#[test]
fn cpuinfo_empty_v1_cpuset_uses_parent_set() {
    let host = hybrid_host();
    host.cgroup_file("cpuset", "/p", "cpuset.effective_cpus", "2-3\n");
    host.cgroup_file("cpuset", "/p/c", "cpuset.effective_cpus", "\n");
    host.cgroup_file("cpuset", "/p/c", "cpuset.cpus", "\n");
    host.process(&Process::host(602, hybrid_membership("/p/c")));
    let (online, _) = render_text(&host.view(), ServedFile::CpuOnline, 602);
    assert_eq!(online, "2-3\n");
}

#[test]
fn cpuinfo_v2_pod_quota_lower_than_container_wins() {
    let host = v2_host();
    host.online_cpus("0-7");
    host.host_file("cpuinfo", &x86_cpuinfo(8));
    host.cgroup_file("", "/kubepods.slice/pod", "cpu.max", "100000 100000\n");
    host.cgroup_file("", "/kubepods.slice/pod/ctr", "cpu.max", "400000 100000\n");
    host.cgroup_file(
        "",
        "/kubepods.slice/pod/ctr",
        "cpuset.cpus.effective",
        "0-7\n",
    );
    host.process(&Process::host(603, "0::/kubepods.slice/pod/ctr\n".into()));
    let (cpuinfo, _) = render_text(&host.view(), ServedFile::Cpuinfo, 603);
    assert_eq!(cpuinfo_ids(&cpuinfo), vec![0]);
}

#[test]
fn cpuinfo_unrestricted_container_is_host_file() {
    let host = v2_host();
    host.cgroup_file("", "/free", "cpu.max", "max 100000\n");
    host.process(&Process::host(604, "0::/free\n".into()));
    let (cpuinfo, source) = render_text(&host.view(), ServedFile::Cpuinfo, 604);
    assert_eq!(source, Source::Host);
    assert_eq!(cpuinfo, x86_cpuinfo(4));
}

// ---- uptime -------------------------------------------------------------------------------------

#[test]
fn uptime_in_own_pid_namespace_is_age_of_its_init() {
    let host = hybrid_host();
    host.cgroup_file("cpuacct", "/ctr", "cpuacct.usage", "30000000000\n");
    host.cgroup_file("cpu", "/ctr", "cpu.cfs_quota_us", "200000\n");
    host.cgroup_file("cpu", "/ctr", "cpu.cfs_period_us", "100000\n");
    host.process(&Process::host(700, hybrid_membership("/")));
    // Init started 940 s after boot (94000 ticks); the host is up 1000 s.
    host.process(&Process {
        pid: 701,
        tgid: 701,
        ppid: 700,
        nspid: &[701, 1],
        pid_ns: CONTAINER_NS,
        start_ticks: 94_000,
        cgroup: hybrid_membership("/ctr"),
    });
    host.process(&Process {
        pid: 702,
        tgid: 702,
        ppid: 701,
        nspid: &[702, 5],
        pid_ns: CONTAINER_NS,
        start_ticks: 95_000,
        cgroup: hybrid_membership("/ctr"),
    });
    let (text, source) = render_text(&host.view(), ServedFile::Uptime, 702);
    assert_eq!(source, Source::Container);
    // up 60 s on 2 visible CPUs, 30 s of CPU used: idle 90 s.
    assert_eq!(text, "60.00 90.00\n");
}

#[test]
fn uptime_host_namespace_caller_gets_host_uptime_and_its_cgroups_idle() {
    let host = hybrid_host();
    // In the root cpuacct cgroup its CPU time is not told apart from the host's: the host's file.
    host.process(&Process::host(
        710,
        hybrid_membership("/some/cgroup").replace("3:cpuacct:/some/cgroup", "3:cpuacct:/"),
    ));
    let (text, source) = render_text(&host.view(), ServedFile::Uptime, 710);
    assert_eq!(source, Source::Host);
    assert_eq!(text, HOST_UPTIME);

    // In its own: the host's clock, and the idle its /proc/stat shows (4 CPUs x 1000 s - 1000 s used),
    // not the host's idle of every CPU.
    host.cgroup_file(
        "cpuacct",
        "/some/cgroup",
        "cpuacct.usage",
        "1000000000000\n",
    );
    host.process(&Process::host(711, hybrid_membership("/some/cgroup")));
    let (text, source) = render_text(&host.view(), ServedFile::Uptime, 711);
    assert_eq!(source, Source::Container);
    assert_eq!(text, "1000.00 3000.00\n");
}

// ---- container identity -------------------------------------------------------------------------

#[test]
fn system_container_subcgroup_uses_init_scope_parent() {
    let host = hybrid_host();
    v1_memory(&host, "/lxc/c1", "536870912", 0);
    v1_memory(&host, "/lxc/c1/system.slice/x.service", "max", 0);
    host.process(&Process::host(800, hybrid_membership("/")));
    host.process(&Process {
        pid: 801,
        tgid: 801,
        ppid: 800,
        nspid: &[801, 1],
        pid_ns: CONTAINER_NS,
        start_ticks: 500,
        cgroup: hybrid_membership("/lxc/c1/init.scope"),
    });
    host.process(&Process {
        pid: 802,
        tgid: 802,
        ppid: 801,
        nspid: &[802, 40],
        pid_ns: CONTAINER_NS,
        start_ticks: 600,
        cgroup: hybrid_membership("/lxc/c1/system.slice/x.service"),
    });
    // The container's limit sits on /lxc/c1; a usage of 0 there shows the container's view, not the
    // sub-cgroup's unlimited one.
    let (text, _) = render_text(&host.view(), ServedFile::Meminfo, 802);
    assert_eq!(meminfo_kb(&text, "MemTotal"), 524_288);
}

#[test]
fn shared_pid_namespace_pod_uses_callers_own_cgroup() {
    let host = v2_host();
    v2_memory(&host, "/pod/pause", "max", 0);
    v2_memory(&host, "/pod/app", "268435456", 0);
    host.process(&Process::host(900, "0::/\n".into()));
    host.process(&Process {
        pid: 901,
        tgid: 901,
        ppid: 900,
        nspid: &[901, 1],
        pid_ns: CONTAINER_NS,
        start_ticks: 500,
        cgroup: "0::/pod/pause\n".into(),
    });
    host.process(&Process {
        pid: 902,
        tgid: 902,
        ppid: 901,
        nspid: &[902, 7],
        pid_ns: CONTAINER_NS,
        start_ticks: 600,
        cgroup: "0::/pod/app\n".into(),
    });
    let (text, _) = render_text(&host.view(), ServedFile::Meminfo, 902);
    assert_eq!(meminfo_kb(&text, "MemTotal"), 262_144);
}

#[test]
fn private_cgroup_namespace_paths_resolve_through_mount_root() {
    let mut host = HostFixture::new();
    // The daemon's namespace root is two levels below the host root, where the hierarchy is mounted.
    host.mount_v2("", "/../..", "cpuset cpu io memory pids");
    v2_memory(&host, "/kubepods.slice/pod1/ctr1", "536870912", 0);
    host.process(&Process::host(
        1000,
        "0::/../../kubepods.slice/pod1/ctr1\n".into(),
    ));
    let (text, source) = render_text(&host.view(), ServedFile::Meminfo, 1000);
    assert_eq!(source, Source::Container);
    assert_eq!(meminfo_kb(&text, "MemTotal"), 524_288);
}

#[test]
fn root_cgroup_caller_sees_host_files_byte_for_byte() {
    let host = hybrid_host();
    host.process(&Process::host(1100, hybrid_membership("/")));
    let view = host.view();
    for (file, expected) in [
        (ServedFile::Meminfo, HOST_MEMINFO.to_owned()),
        (ServedFile::Cpuinfo, x86_cpuinfo(4)),
        (ServedFile::Uptime, HOST_UPTIME.to_owned()),
        (ServedFile::Diskstats, HOST_DISKSTATS.to_owned()),
        (ServedFile::CpuOnline, "0-3\n".to_owned()),
    ] {
        let (text, source) = render_text(&view, file, 1100);
        assert_eq!(source, Source::Host, "{file:?}");
        assert_eq!(text, expected, "{file:?}");
    }
}

// ---- diskstats ----------------------------------------------------------------------------------

#[test]
fn diskstats_v1_blkio_lists_only_active_devices() {
    let host = hybrid_host();
    host.cgroup_file(
        "blkio",
        "/io",
        "blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 4096\n8:0 Write 1048576\n8:0 Total 1052672\n7:0 Read 0\n7:0 Write 0\nTotal 1052672\n",
    );
    host.cgroup_file(
        "blkio",
        "/io",
        "blkio.throttle.io_serviced_recursive",
        "8:0 Read 1\n8:0 Write 8\n8:0 Total 9\nTotal 9\n",
    );
    host.process(&Process::host(1200, hybrid_membership("/io")));
    let (text, _) = render_text(&host.view(), ServedFile::Diskstats, 1200);
    assert_eq!(
        text,
        "   8       0 sda 1 0 8 0 8 0 2048 0 0 0 0 0 0 0 0 0 0\n"
    );
}

#[test]
fn diskstats_v2_io_stat_keeps_host_column_count() {
    let host = v2_host();
    host.host_file("diskstats", "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n");
    host.cgroup_file(
        "",
        "/io",
        "io.stat",
        "8:0 rbytes=1024 wbytes=8192 rios=2 wios=3 dbytes=0 dios=0\n",
    );
    host.process(&Process::host(1201, "0::/io\n".into()));
    let (text, _) = render_text(&host.view(), ServedFile::Diskstats, 1201);
    assert_eq!(text, "   8       0 sda 2 0 2 0 3 0 16 0 0 0 0\n");
}

// ---- fallbacks ----------------------------------------------------------------------------------

#[test]
fn fallback_dead_caller_serves_host_file() {
    let host = hybrid_host();
    let view = host.view();
    let (text, source) = render_text(&view, ServedFile::Meminfo, 4242);
    assert_eq!(source, Source::Fallback(FallbackCause::CallerGone));
    assert_eq!(text, HOST_MEMINFO);
    assert_eq!(view.fallbacks().count(FallbackCause::CallerGone), 1);
}

#[test]
fn fallback_vanished_cgroup_serves_host_file() {
    let host = hybrid_host();
    v1_memory(&host, "/gone", "536870912", 0);
    host.process(&Process::host(1300, hybrid_membership("/gone")));
    std::fs::remove_dir_all(host.cgroup_dir("memory", "/gone")).unwrap();
    let view = host.view();
    let (text, source) = render_text(&view, ServedFile::Meminfo, 1300);
    assert_eq!(source, Source::Fallback(FallbackCause::CgroupVanished));
    assert_eq!(text, HOST_MEMINFO);
}

#[test]
fn fallback_unparsable_limit_is_counted() {
    let host = hybrid_host();
    v1_memory(&host, "/bad", "lots", 0);
    host.process(&Process::host(1301, hybrid_membership("/bad")));
    let view = host.view();
    for _ in 0..3 {
        let (text, source) = render_text(&view, ServedFile::Meminfo, 1301);
        assert_eq!(source, Source::Fallback(FallbackCause::Unparsable));
        assert_eq!(text, HOST_MEMINFO);
    }
    assert_eq!(view.fallbacks().count(FallbackCause::Unparsable), 3);
}

#[test]
fn fallback_missing_memory_hierarchy_still_virtualizes_cpus() {
    let mut host = HostFixture::new();
    host.mount_v1("cpu", "cpu");
    host.cgroup_file("cpu", "/c", "cpu.cfs_quota_us", "100000\n");
    host.cgroup_file("cpu", "/c", "cpu.cfs_period_us", "100000\n");
    host.process(&Process::host(1302, "2:cpu:/c\n".into()));
    let view = host.view();
    let (_, source) = render_text(&view, ServedFile::Meminfo, 1302);
    assert_eq!(source, Source::Fallback(FallbackCause::MissingController));
    let (online, source) = render_text(&view, ServedFile::CpuOnline, 1302);
    assert_eq!(source, Source::Container);
    assert_eq!(online, "0\n");
}

#[test]
fn fallback_cgroup_outside_mount_is_missing_controller() {
    let mut host = HostFixture::new();
    // Only the daemon's own subtree is mounted: a caller elsewhere cannot be read.
    host.mount_v2("", "/", "memory cpu");
    host.process(&Process::host(1303, "0::/../elsewhere\n".into()));
    let (_, source) = render_text(&host.view(), ServedFile::Meminfo, 1303);
    assert_eq!(source, Source::Fallback(FallbackCause::MissingController));
}

#[test]
fn a_host_file_that_is_not_text_is_served_unchanged_not_failed() {
    let host = hybrid_host();
    v1_memory(&host, "/docker/odd", "536870912", 0);
    host.process(&Process::host(520, hybrid_membership("/docker/odd")));
    let mut odd = HOST_MEMINFO.as_bytes().to_vec();
    odd.extend_from_slice(b"Weird\xff\xfe:   1 kB\n");
    std::fs::write(host.path().join("proc/meminfo"), &odd).unwrap();
    let view = host.view();
    for caller in [Some(520), None] {
        let rendered = view.render(ServedFile::Meminfo, caller).unwrap();
        assert_eq!(rendered.bytes, odd, "caller {caller:?}");
    }
    let rendered = view.render(ServedFile::Meminfo, Some(520)).unwrap();
    assert_eq!(rendered.source, Source::Fallback(FallbackCause::Unparsable));
    assert!(view.fallbacks().count(FallbackCause::Unparsable) >= 2);
}
