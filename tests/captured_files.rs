//! Parsers and renderers on files captured from a real machine (see each fixture directory's README).

use cgview::host::layout::{CgroupLayout, Controller, LayoutKind};
use cgview::model::io::DeviceIo;
use cgview::model::memory::{MemoryStat, MemoryState, Swap};
use cgview::parse::blkio::parse_blkio;
use cgview::parse::cgroup_membership::parse_cgroup_membership;
use cgview::parse::cpu_quota::{parse_cfs, parse_cpu_max};
use cgview::parse::cpuinfo::parse_cpuinfo_blocks;
use cgview::parse::cpuset::{parse_cpu_list, CpuSet};
use cgview::parse::diskstats::{parse_diskstats, DeviceId};
use cgview::parse::flat_keyed::parse_flat_keyed;
use cgview::parse::io_stat::parse_io_stat;
use cgview::parse::limit::{parse_counter, parse_limit};
use cgview::parse::meminfo::meminfo_value;
use cgview::parse::mountinfo::parse_mountinfo;
use cgview::render::cpuinfo::render_cpuinfo;
use cgview::render::meminfo::render_meminfo;
use std::path::Path;

macro_rules! hybrid {
    ($name:literal) => {
        include_str!(concat!("fixtures/linux-6.18-x86_64-hybrid/", $name))
    };
}
macro_rules! v2 {
    ($name:literal) => {
        include_str!(concat!("fixtures/v2-hand-written/", $name))
    };
}

fn names(text: &str) -> Vec<&str> {
    text.lines().map(|l| l.split(':').next().unwrap()).collect()
}

#[test]
fn captured_mountinfo_is_hybrid_with_v1_controllers() {
    let mounts = parse_mountinfo(hybrid!("mountinfo")).unwrap();
    let layout = CgroupLayout::from_mounts(&mounts, Path::new("/sys/fs/cgroup"), |_| String::new());
    assert_eq!(layout.kind(), Some(LayoutKind::Hybrid));
    for controller in Controller::ALL {
        let mount = layout.mount_for(controller).unwrap();
        assert!(
            mount.mount_point.starts_with("/sys/fs/cgroup"),
            "{controller}"
        );
    }
    assert_eq!(
        layout.mount_for(Controller::Io).unwrap().mount_point,
        Path::new("/sys/fs/cgroup/blkio")
    );
}

#[test]
fn captured_self_cgroup_has_one_line_per_hierarchy() {
    let lines = parse_cgroup_membership(hybrid!("self-cgroup")).unwrap();
    assert!(lines.iter().any(|l| l.is_unified()));
    assert!(lines.iter().any(|l| l.controllers == ["memory"]));
}

#[test]
fn captured_meminfo_renders_every_line_in_order() {
    let memory = MemoryState {
        limit_bytes: Some(512 << 20),
        usage_bytes: 100 << 20,
        stat: MemoryStat::default(),
        swap: Swap::NotAccounted,
    };
    let host = hybrid!("meminfo");
    let out = render_meminfo(host, &memory).unwrap();
    assert_eq!(names(&out), names(host));
    assert_eq!(meminfo_value(&out, "MemTotal"), Some(524_288));
    assert_eq!(
        meminfo_value(&out, "HugePages_Total"),
        meminfo_value(host, "HugePages_Total")
    );
}

/// What every rendered meminfo must satisfy against its host file (the property test in
/// `crates/cgview-core/tests/meminfo_properties.rs` checks the rest on generated inputs).
fn check_meminfo_consistent(host: &str, out: &str) {
    let kb = |name| meminfo_value(out, name).unwrap();
    let host_kb = |name| meminfo_value(host, name).unwrap();
    let total = kb("MemTotal");
    for line in out.lines() {
        let (name, rest) = line.split_once(':').unwrap();
        let value: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
        let host_constant = ["VmallocTotal", "VmallocChunk", "Hugepagesize"].contains(&name)
            || name.starts_with("DirectMap");
        if host_constant {
            assert_eq!(value, host_kb(name), "{line}");
        } else if !["SwapTotal", "SwapFree", "CommitLimit", "Committed_AS"].contains(&name) {
            assert!(value <= total, "{line} > MemTotal {total}\n{out}");
        }
    }
    assert!(kb("MemFree") <= host_kb("MemFree"), "{out}");
    assert!(kb("MemAvailable") <= host_kb("MemAvailable"), "{out}");
    assert_eq!(kb("Active"), kb("Active(anon)") + kb("Active(file)"));
    assert_eq!(kb("Inactive"), kb("Inactive(anon)") + kb("Inactive(file)"));
    assert_eq!(kb("Slab"), kb("SReclaimable") + kb("SUnreclaim"));
    assert!(kb("Shmem") <= kb("Cached"));
    assert!(kb("SwapFree") <= kb("SwapTotal"));
    assert!(kb("SwapTotal") <= host_kb("SwapTotal"));
}

#[test]
fn captured_v1_cgroup_on_captured_host_renders_consistent_meminfo() {
    let usage = parse_counter(hybrid!("cgroup-memory-memory.usage_in_bytes")).unwrap();
    let limit = parse_limit(hybrid!("cgroup-memory-memory.limit_in_bytes")).unwrap();
    let memory = MemoryState {
        limit_bytes: limit,
        usage_bytes: usage,
        stat: MemoryStat::from_v1(&parse_flat_keyed(hybrid!("cgroup-memory-memory.stat"))),
        swap: Swap::from_v1_memsw(
            parse_limit(hybrid!("cgroup-memory-memory.memsw.limit_in_bytes")).unwrap(),
            parse_counter(hybrid!("cgroup-memory-memory.memsw.usage_in_bytes")).unwrap(),
            limit,
            usage,
            hybrid!("cgroup-memory-memory.swappiness").trim() != "0",
        ),
    };
    let host = hybrid!("meminfo");
    let out = render_meminfo(host, &memory).unwrap();
    check_meminfo_consistent(host, &out);
    assert_eq!(meminfo_value(&out, "MemTotal"), Some(524_288));
    assert_eq!(meminfo_value(&out, "MemFree"), Some(524_288 - usage / 1024));
    // The cgroup's 108 kB of anonymous memory (total_rss).
    assert_eq!(meminfo_value(&out, "AnonPages"), Some(108));
    // The host has no swap: none to show, whatever memsw allows.
    assert_eq!(meminfo_value(&out, "SwapTotal"), Some(0));

    // The same cgroup with no limit on this host: free and available are the host's.
    let unlimited = MemoryState {
        limit_bytes: None,
        ..memory
    };
    let out = render_meminfo(host, &unlimited).unwrap();
    check_meminfo_consistent(host, &out);
    assert_eq!(
        meminfo_value(&out, "MemFree"),
        meminfo_value(host, "MemFree")
    );
    assert_eq!(
        meminfo_value(&out, "MemAvailable"),
        meminfo_value(host, "MemAvailable")
    );
}

/// The value of a block's `name : value` line.
fn cpuinfo_field<'a>(block: &'a str, name: &str) -> Option<&'a str> {
    block.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}

/// Lines whose values count CPUs; every other line of a kept block is the host's, byte for byte.
fn counts_cpus(line: &str) -> bool {
    let key = line.split(':').next().unwrap_or("").trim();
    matches!(key, "siblings" | "cpu cores" | "# processors")
}

/// Renders `host` for `visible` and checks that it keeps exactly the visible CPUs' blocks and the
/// headers, in order, each the host's but for the lines that count CPUs (and s390x's per-CPU summary
/// lines of hidden CPUs); returns the render.
fn check_cpuinfo_subset(host: &str, visible: &[u32]) -> String {
    let blocks = parse_cpuinfo_blocks(host);
    let total = blocks.iter().filter(|b| b.cpu.is_some()).count();
    assert!(total > visible.len());
    let out = render_cpuinfo(host, &CpuSet::from_ids(visible.to_vec()));
    let kept: Vec<u32> = parse_cpuinfo_blocks(&out)
        .iter()
        .filter_map(|b| b.cpu)
        .collect();
    assert_eq!(kept, visible);
    let host_kept: Vec<_> = blocks
        .iter()
        .filter(|b| b.cpu.is_none_or(|id| visible.contains(&id)))
        .collect();
    let out_blocks = parse_cpuinfo_blocks(&out);
    assert_eq!(out_blocks.len(), host_kept.len());
    for (shown, host_block) in out_blocks.iter().zip(host_kept) {
        let hidden_summary_line = |line: &&str| {
            line.strip_prefix("processor ")
                .and_then(|rest| rest.split(':').next())
                .and_then(|id| id.parse::<u32>().ok())
                .is_some_and(|id| !visible.contains(&id))
        };
        let host_lines: Vec<&str> = host_block
            .text
            .lines()
            .filter(|line| !hidden_summary_line(line))
            .collect();
        let shown_lines: Vec<&str> = shown.text.lines().collect();
        assert_eq!(shown_lines.len(), host_lines.len(), "{}", shown.text);
        for (shown_line, host_line) in shown_lines.iter().zip(host_lines) {
            if !counts_cpus(host_line) {
                assert_eq!(*shown_line, host_line);
            }
        }
    }
    out
}

#[test]
fn captured_x86_cpuinfo_keeps_visible_blocks_and_counts_them() {
    let host = hybrid!("cpuinfo");
    // The host: one package of two cores.
    assert_eq!(cpuinfo_field(host, "siblings"), Some("2"));
    assert_eq!(cpuinfo_field(host, "cpu cores"), Some("2"));
    let out = check_cpuinfo_subset(host, &[1]);
    assert_eq!(cpuinfo_field(&out, "siblings"), Some("1"));
    assert_eq!(cpuinfo_field(&out, "cpu cores"), Some("1"));
    // Ids are the host's: CPU 1 is core 1 of package 0, APIC id 1.
    assert_eq!(cpuinfo_field(&out, "core id"), Some("1"));
    assert_eq!(cpuinfo_field(&out, "physical id"), Some("0"));
    assert_eq!(cpuinfo_field(&out, "apicid"), Some("1"));
    assert_eq!(cpuinfo_field(&out, "initial apicid"), Some("1"));
    assert!(out.contains("siblings\t: 1\ncore id\t\t: 1\ncpu cores\t: 1\n"));
}

#[test]
fn hand_written_aarch64_cpuinfo_keeps_visible_blocks() {
    let host = include_str!("fixtures/aarch64/cpuinfo");
    let out = check_cpuinfo_subset(host, &[2, 5]);
    assert!(out.starts_with("processor\t: 2\nBogoMIPS"));
    assert_eq!(out.matches("CPU part\t: 0xd0c").count(), 2);
    // No line counts CPUs: the kept blocks are the host's.
    for block in parse_cpuinfo_blocks(&out) {
        assert!(host.contains(block.text));
    }
}

#[test]
fn hand_written_ppc64le_cpuinfo_keeps_visible_blocks_and_the_machine_summary() {
    let host = include_str!("fixtures/ppc64le/cpuinfo");
    let out = check_cpuinfo_subset(host, &[2, 5]);
    let blocks = parse_cpuinfo_blocks(&out);
    assert_eq!(blocks.len(), 3);
    for block in &blocks {
        assert!(host.contains(block.text));
    }
    assert!(out.ends_with("platform\t: pSeries\nmodel\t\t: IBM,9009-42A\nmachine\t\t: CHRP IBM,9009-42A\nMMU\t\t: Radix\n"));
}

#[test]
fn hand_written_s390x_cpuinfo_counts_and_lists_only_visible_cpus() {
    let host = include_str!("fixtures/s390x/cpuinfo");
    // One thread of socket 2's core.
    let out = check_cpuinfo_subset(host, &[4]);
    assert!(out.contains("# processors    : 1\n"));
    let summary: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("processor "))
        .collect();
    assert_eq!(
        summary,
        ["processor 4: version = 00,  identification = 0133E8,  machine = 8561"]
    );
    let cpu = parse_cpuinfo_blocks(&out)
        .into_iter()
        .find(|b| b.cpu == Some(4))
        .unwrap()
        .text;
    assert_eq!(cpuinfo_field(cpu, "siblings"), Some("1"));
    assert_eq!(cpuinfo_field(cpu, "cpu cores"), Some("1"));
    assert_eq!(cpuinfo_field(cpu, "physical id"), Some("2"));
    assert_eq!(cpuinfo_field(cpu, "address"), Some("4"));
    // The two threads of core 0 and one thread of core 1, all on socket 1.
    let out = check_cpuinfo_subset(host, &[0, 1, 3]);
    assert!(out.contains("# processors    : 3\n"));
    for block in parse_cpuinfo_blocks(&out)
        .iter()
        .filter(|b| b.cpu.is_some())
    {
        assert_eq!(cpuinfo_field(block.text, "siblings"), Some("3"));
        assert_eq!(cpuinfo_field(block.text, "cpu cores"), Some("2"));
    }
    // The machine-wide summary lines stay (the thread id bound is the hardware's).
    assert!(out.contains("max thread id   : 1\n"));
    assert_eq!(out.matches("cache").count(), 6);
}

#[test]
fn captured_diskstats_has_seventeen_counters() {
    let lines = parse_diskstats(hybrid!("diskstats")).unwrap();
    let vda = lines
        .iter()
        .find(|l| {
            l.device
                == DeviceId {
                    major: 254,
                    minor: 0,
                }
        })
        .unwrap();
    assert_eq!(vda.name, "vda");
    assert!(lines.iter().all(|l| l.counter_count == 17));
}

#[test]
fn captured_v1_memory_files() {
    let stat = MemoryStat::from_v1(&parse_flat_keyed(hybrid!("cgroup-memory-memory.stat")));
    let root = MemoryStat::from_v1(&parse_flat_keyed(hybrid!("memory.stat")));
    assert!(root.cache > 0);
    assert!(stat.mapped.is_some());
    assert_eq!(stat.slab, None, "v1 memory.stat has no slab fields");
    assert_eq!(
        parse_limit(hybrid!("cgroup-memory-memory.limit_in_bytes")).unwrap(),
        Some(512 << 20)
    );
    assert_eq!(
        parse_limit(hybrid!("cgroup-memory-memory.memsw.limit_in_bytes")).unwrap(),
        None
    );
    let usage = parse_counter(hybrid!("cgroup-memory-memory.usage_in_bytes")).unwrap();
    let memsw = parse_counter(hybrid!("cgroup-memory-memory.memsw.usage_in_bytes")).unwrap();
    assert!(memsw >= usage);
}

#[test]
fn captured_v1_cpu_files() {
    let quota = parse_cfs(
        hybrid!("cgroup-cpu-cpu.cfs_quota_us"),
        hybrid!("cgroup-cpu-cpu.cfs_period_us"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(quota.cpus(), 1.5);
    assert_eq!(
        parse_cpu_list(hybrid!("cgroup-cpuset-cpuset.effective_cpus"))
            .unwrap()
            .ids(),
        &[1]
    );
    assert!(parse_counter(hybrid!("cgroup-cpuacct-cpuacct.usage")).unwrap() > 0);
}

#[test]
fn captured_v1_blkio_files_give_the_direct_write() {
    let bytes = parse_blkio(hybrid!(
        "cgroup-blkio-blkio.throttle.io_service_bytes_recursive"
    ));
    let serviced = parse_blkio(hybrid!("cgroup-blkio-blkio.throttle.io_serviced_recursive"));
    let (device, written) = bytes[0];
    assert_eq!(
        device,
        DeviceId {
            major: 254,
            minor: 0
        }
    );
    assert_eq!(written.write, 4 << 20);
    let io = DeviceIo::from_blkio(written, serviced[0].1, None, None, None);
    assert_eq!(io.counters[6], 8192, "sectors written");
}

#[test]
fn hand_written_v2_files() {
    let stat = MemoryStat::from_v2(&parse_flat_keyed(v2!("memory.stat")));
    assert_eq!(stat.mapped, Some(20 << 20));
    assert_eq!(stat.cache, 50 << 20);
    assert_eq!(stat.anon_pages(), 100 << 20);
    assert_eq!(stat.slab, Some(4 << 20));
    assert_eq!(parse_cpu_max(v2!("cpu.max")).unwrap().unwrap().cpus(), 1.5);
    assert_eq!(
        parse_flat_keyed(v2!("cpu.stat")).get("usage_usec"),
        Some(3_500_000)
    );
    let io = parse_io_stat(v2!("io.stat"));
    assert_eq!(io.len(), 2);
    assert_eq!(DeviceIo::from_io_stat(&io[0].1).counters[6], 16_384);
}

macro_rules! v2_captured {
    ($name:literal) => {
        include_str!(concat!("fixtures/linux-6.1-x86_64-v2/", $name))
    };
}

#[test]
fn captured_v2_layout_and_membership() {
    let mounts = parse_mountinfo(v2_captured!("mountinfo")).unwrap();
    let controllers = v2_captured!("root-cgroup.controllers");
    let layout = CgroupLayout::from_mounts(&mounts, Path::new("/sys/fs/cgroup"), |_| {
        controllers.to_owned()
    });
    assert_eq!(layout.kind(), Some(LayoutKind::V2));
    for controller in Controller::ALL {
        assert_eq!(
            layout.mount_for(controller).unwrap().mount_point,
            Path::new("/sys/fs/cgroup"),
            "{controller}"
        );
    }
    let lines = parse_cgroup_membership(v2_captured!("self-cgroup")).unwrap();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].is_unified());
    assert_eq!(lines[0].path, "/kubepods.slice/pod/ctr");
}

#[test]
fn captured_v2_container_files() {
    assert_eq!(
        parse_limit(v2_captured!("ctr-memory.max")).unwrap(),
        Some(512 << 20)
    );
    assert_eq!(parse_limit(v2_captured!("pod-memory.max")).unwrap(), None);
    assert_eq!(
        parse_limit(v2_captured!("ctr-memory.swap.max")).unwrap(),
        Some(32 << 20)
    );
    assert_eq!(
        parse_cpu_max(v2_captured!("ctr-cpu.max"))
            .unwrap()
            .unwrap()
            .cpus(),
        1.5
    );
    assert_eq!(
        parse_cpu_list(v2_captured!("ctr-cpuset.cpus.effective"))
            .unwrap()
            .ids(),
        &[1]
    );
    assert!(
        parse_flat_keyed(v2_captured!("ctr-cpu.stat"))
            .get("usage_usec")
            .unwrap()
            > 0
    );
    let io = parse_io_stat(v2_captured!("ctr-io.stat"));
    let (device, entry) = io
        .iter()
        .find(|(d, _)| {
            *d == DeviceId {
                major: 254,
                minor: 0,
            }
        })
        .unwrap();
    assert_eq!(
        *device,
        DeviceId {
            major: 254,
            minor: 0
        }
    );
    assert_eq!(DeviceIo::from_io_stat(entry).counters[6], 8192);
}

#[test]
fn captured_v2_meminfo_renders_from_captured_cgroup() {
    let usage = parse_counter(v2_captured!("ctr-memory.current")).unwrap();
    let memory = MemoryState {
        limit_bytes: parse_limit(v2_captured!("ctr-memory.max")).unwrap(),
        usage_bytes: usage,
        stat: MemoryStat::from_v2(&parse_flat_keyed(v2_captured!("ctr-memory.stat"))),
        swap: Swap::Accounted {
            limit_bytes: parse_limit(v2_captured!("ctr-memory.swap.max")).unwrap(),
            usage_bytes: parse_counter(v2_captured!("ctr-memory.swap.current")).unwrap(),
            may_swap: true,
        },
    };
    let host = v2_captured!("meminfo");
    let out = render_meminfo(host, &memory).unwrap();
    check_meminfo_consistent(host, &out);
    assert_eq!(names(&out), names(host));
    assert_eq!(meminfo_value(&out, "MemTotal"), Some(524_288));
    assert_eq!(meminfo_value(&out, "MemFree"), Some(524_288 - usage / 1024));
    assert_eq!(meminfo_value(&out, "SwapTotal"), Some(32_768));
    let stat = parse_flat_keyed(v2_captured!("ctr-memory.stat"));
    assert_eq!(
        meminfo_value(&out, "Cached"),
        Some(stat.get("file").unwrap() / 1024)
    );
    let disks = parse_diskstats(v2_captured!("diskstats")).unwrap();
    assert!(disks.iter().all(|l| l.counter_count == 17));
}

// ---- /proc/vmstat ---------------------------------------------------------------------------------

mod vmstat {
    use cgview::model::io::BlockTraffic;
    use cgview::model::memory::{MemoryStat, MemoryState, Swap};
    use cgview::model::vmstat::{ContainerVm, CounterCarry, MemoryStatKeys, PageUnits, StatFlavor};
    use cgview::parse::blkio::parse_blkio;
    use cgview::parse::flat_keyed::parse_flat_keyed;
    use cgview::parse::io_stat::parse_io_stat;
    use cgview::parse::limit::{parse_counter, parse_limit};
    use cgview::parse::meminfo::{meminfo_value, parse_host_meminfo};
    use cgview::parse::vmstat::{parse_vmstat, vmstat_value};
    use cgview::render::meminfo::render_meminfo;
    use cgview::render::vmstat::{draft_vmstat, render_vmstat, LineValue};

    macro_rules! hybrid {
        ($name:literal) => {
            include_str!(concat!("fixtures/linux-6.18-x86_64-hybrid-vmstat/", $name))
        };
    }
    macro_rules! v2 {
        ($name:literal) => {
            include_str!(concat!("fixtures/linux-6.1-x86_64-v2-vmstat/", $name))
        };
    }

    /// Both machines have 4 KiB pages and 2 MiB PMD huge pages (their READMEs).
    fn units(hpage: &str) -> PageUnits {
        PageUnits {
            page_bytes: 4096,
            pmd_thp_bytes: Some(hpage.trim().parse().unwrap()),
        }
    }

    fn names(text: &str) -> Vec<&str> {
        text.lines().map(|l| l.split(' ').next().unwrap()).collect()
    }

    fn value(text: &str, name: &str) -> u64 {
        vmstat_value(&parse_vmstat(text).unwrap(), name)
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    /// What every container's vmstat must satisfy against its own meminfo: the host's names in the host's
    /// order, free pages equal to MemFree, and no gauge above MemTotal.
    fn check_consistent_with_meminfo(host: &str, vmstat: &str, meminfo: &str) {
        assert_eq!(names(vmstat), names(host));
        let kb = |name| meminfo_value(meminfo, name).unwrap();
        assert_eq!(value(vmstat, "nr_free_pages") * 4, kb("MemFree"));
        let total_pages = kb("MemTotal") / 4;
        for line in parse_vmstat(vmstat).unwrap() {
            let is_gauge = line.name.starts_with("nr_")
                && ![
                    "nr_dirtied",
                    "nr_written",
                    "nr_vmscan_write",
                    "nr_foll_pin_acquired",
                ]
                .contains(&line.name);
            if is_gauge {
                assert!(line.value <= total_pages, "{} above MemTotal", line.name);
            }
        }
        for (gauge, meminfo_line) in [
            ("nr_file_pages", "Cached"),
            ("nr_dirty", "Dirty"),
            ("nr_shmem", "Shmem"),
            ("nr_mapped", "Mapped"),
            ("nr_anon_pages", "AnonPages"),
            ("nr_inactive_anon", "Inactive(anon)"),
            ("nr_active_file", "Active(file)"),
            ("nr_slab_reclaimable", "SReclaimable"),
            ("nr_page_table_pages", "PageTables"),
        ] {
            assert_eq!(
                value(vmstat, gauge) * 4,
                kb(meminfo_line),
                "{gauge} against {meminfo_line}"
            );
        }
        assert_eq!(value(vmstat, "nr_kernel_stack"), kb("KernelStack"));
    }

    #[test]
    fn captured_v1_vmstat_is_the_cgroups() {
        let raw = parse_flat_keyed(hybrid!("cgroup-memory-memory.stat"));
        let memory = MemoryState {
            limit_bytes: parse_limit(hybrid!("cgroup-memory-memory.limit_in_bytes")).unwrap(),
            usage_bytes: parse_counter(hybrid!("cgroup-memory-memory.usage_in_bytes")).unwrap(),
            stat: MemoryStat::from_v1(&raw),
            swap: Swap::NotAccounted,
        };
        let bytes = parse_blkio(hybrid!(
            "cgroup-blkio-blkio.throttle.io_service_bytes_recursive"
        ));
        let io = BlockTraffic {
            sectors_read: bytes.iter().map(|(_, rw)| rw.read / 512).sum(),
            sectors_written: bytes.iter().map(|(_, rw)| rw.write / 512).sum(),
        };
        let vm = ContainerVm {
            memory: &memory,
            mem_free_bytes: memory
                .meminfo(&parse_host_meminfo(hybrid!("meminfo")).unwrap())
                .mem_free
                * 1024,
            stat: MemoryStatKeys {
                flavor: StatFlavor::V1,
                raw: &raw,
            },
            io: Some(io),
            oom_kills: parse_flat_keyed(hybrid!("cgroup-memory-memory.oom_control"))
                .get("oom_kill"),
        };
        let host = hybrid!("vmstat");
        let out = render_vmstat(host, &vm, units("2097152"), &mut CounterCarry::default()).unwrap();
        let meminfo = render_meminfo(hybrid!("meminfo"), &memory).unwrap();
        check_consistent_with_meminfo(host, &out, &meminfo);

        // The 8 MiB written and read back with O_DIRECT, in kB; not memory.stat's pgpgin (pages charged).
        assert_eq!(value(&out, "pgpgin"), 8200);
        assert_eq!(value(&out, "pgpgout"), 8192);
        assert_ne!(value(&out, "pgpgin"), raw.get("total_pgpgin").unwrap());
        assert_eq!(value(&out, "pgfault"), raw.get("total_pgfault").unwrap());
        assert_eq!(
            value(&out, "pgmajfault"),
            raw.get("total_pgmajfault").unwrap()
        );
        assert_eq!(
            value(&out, "workingset_refault_file"),
            raw.get("total_workingset_refault_file").unwrap()
        );
        // The 16 MiB buffered write is still dirty in the cgroup.
        assert_eq!(
            value(&out, "nr_dirty"),
            raw.get("total_dirty").unwrap() / 4096
        );
        assert!(value(&out, "nr_dirty") >= 4096 - 64);
        // v1 counts no swap-ins, scans or steals per cgroup: 0, whatever the host did.
        for name in [
            "pswpin",
            "pswpout",
            "pgscan_kswapd",
            "pgsteal_direct",
            "pgfree",
            "numa_hit",
        ] {
            assert_eq!(value(&out, name), 0, "{name}");
        }
        // The container is far smaller than the host: its figures are too.
        assert!(value(&out, "pgfault") < value(host, "pgfault"));
        assert!(value(&out, "nr_dirty_threshold") < value(host, "nr_dirty_threshold"));
        assert_eq!(value(&out, "drop_pagecache"), value(host, "drop_pagecache"));
    }

    #[test]
    fn captured_v2_vmstat_is_the_cgroups() {
        let raw = parse_flat_keyed(v2!("a-memory.stat"));
        let memory = MemoryState {
            limit_bytes: parse_limit(v2!("a-memory.max")).unwrap(),
            usage_bytes: parse_counter(v2!("a-memory.current")).unwrap(),
            stat: MemoryStat::from_v2(&raw),
            swap: Swap::Accounted {
                limit_bytes: parse_limit(v2!("a-memory.swap.max")).unwrap(),
                usage_bytes: parse_counter(v2!("a-memory.swap.current")).unwrap(),
                may_swap: true,
            },
        };
        let devices = parse_io_stat(v2!("a-io.stat"));
        let io = BlockTraffic {
            sectors_read: devices.iter().map(|(_, e)| e.rbytes / 512).sum(),
            sectors_written: devices.iter().map(|(_, e)| e.wbytes / 512).sum(),
        };
        let vm = ContainerVm {
            memory: &memory,
            mem_free_bytes: memory
                .meminfo(&parse_host_meminfo(v2!("meminfo")).unwrap())
                .mem_free
                * 1024,
            stat: MemoryStatKeys {
                flavor: StatFlavor::V2,
                raw: &raw,
            },
            io: Some(io),
            oom_kills: parse_flat_keyed(v2!("a-memory.events")).get("oom_kill"),
        };
        let host = v2!("vmstat");
        let draft = draft_vmstat(host, &vm, units(v2!("hpage_pmd_size"))).unwrap();
        let out = draft.text();
        let meminfo = render_meminfo(v2!("meminfo"), &memory).unwrap();
        check_consistent_with_meminfo(host, &out, &meminfo);

        // MemFree is what the 32 MiB limit leaves.
        assert_eq!(value(&out, "nr_free_pages"), (33_554_432 - 172_032) / 4096);
        // 2 MiB read from vda plus swap-ins from vdb; 4 MiB written to vda plus the swap-outs to vdb.
        assert_eq!(value(&out, "pgpgin"), (2_097_152 + 77_824) / 1024);
        assert_eq!(value(&out, "pgpgout"), (4_194_304 + 41_639_936) / 1024);
        for name in [
            "pgfault",
            "pgscan_direct",
            "pgsteal_direct",
            "workingset_refault_anon",
            "thp_fault_alloc",
        ] {
            assert_eq!(value(&out, name), raw.get(name).unwrap(), "{name}");
        }
        assert_eq!(
            value(&out, "nr_swapcached"),
            raw.get("swapcached").unwrap() / 4096
        );
        // 6.1's memory.stat has no pswpin/pswpout: 0, though the guest swapped.
        assert!(value(host, "pswpout") > 0);
        assert_eq!(value(&out, "pswpout"), 0);
        // Every line follows one of the four rules; the events the cgroup lacks are not the host's.
        let rules: Vec<(&str, LineValue)> = draft.values().collect();
        assert!(rules.iter().any(|(_, v)| matches!(v, LineValue::Host)));
        for (name, rule) in rules {
            if let LineValue::Host = rule {
                assert!(
                    name.starts_with("direct_map_") || name.starts_with("drop_"),
                    "{name}"
                );
            }
        }
    }
}
