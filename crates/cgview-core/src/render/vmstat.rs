//! `/proc/vmstat` for a container: the host's lines, in the host's order and with the host's names (each
//! kernel version has its own set), each holding the container's value. The README's "/proc/vmstat, line
//! by line" lists the rule of every line; [`line_value`] is that list.
//!
//! Rendering has two steps so the caller can keep the per-container state that stops counters from going
//! backwards (a [`CounterCarry`]) locked only while the counters are settled: [`draft_vmstat`] computes
//! every line, [`VmstatDraft::settle_counters`] passes the counters through the carry, and
//! [`VmstatDraft::text`] writes the file.

use crate::model::vmstat::{ContainerVm, CounterCarry, PageUnits};
use crate::parse::vmstat::{parse_vmstat, vmstat_value, VmstatLine};
use crate::parse::ParseError;
use std::fmt::Write as _;

/// What one line of the container's vmstat shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineValue {
    /// A quantity at this moment (pages, or kB for `nr_kernel_stack`), from the container's cgroup.
    Gauge(u64),
    /// A count of events since the container's cgroup was made: never shown lower than before.
    Counter(u64),
    /// The kernel does not account it per cgroup: 0, so that no host activity is shown as the
    /// container's and no host quantity exceeds the container's memory.
    NotAccounted,
    /// Legitimately the host's: a host-wide action or the kernel's own map of physical memory.
    Host,
}

/// The host-wide figures a line's rule may need.
#[derive(Debug, Clone, Copy)]
struct HostFigures {
    /// Free pages plus the file LRU: the memory the kernel's dirty thresholds are a ratio of.
    dirtyable_pages: u64,
}

/// The container's value for the host line `name` (whose host value is `host_value`).
fn line_value(
    name: &str,
    host_value: u64,
    host: HostFigures,
    vm: &ContainerVm<'_>,
    units: PageUnits,
) -> LineValue {
    use LineValue::{Counter, Gauge, Host, NotAccounted};
    let memory = &vm.memory.stat;
    let pages = |bytes: u64| units.pages(bytes);
    let free_pages = pages(vm.mem_free_bytes);
    match name {
        // Consistent with the container's meminfo: MemFree and the lines meminfo shows.
        "nr_free_pages" => Gauge(free_pages),
        // Parts of the free memory (whole free pageblocks, CMA): the host's, never above the container's free.
        "nr_free_pages_blocks" | "nr_free_cma" => Gauge(host_value.min(free_pages)),
        // The LRU lists, node- and zone-wide alike: the container's pages are on the same lists.
        "nr_inactive_anon" | "nr_zone_inactive_anon" => Gauge(pages(memory.inactive_anon)),
        "nr_active_anon" | "nr_zone_active_anon" => Gauge(pages(memory.active_anon)),
        "nr_inactive_file" | "nr_zone_inactive_file" => Gauge(pages(memory.inactive_file)),
        "nr_active_file" | "nr_zone_active_file" => Gauge(pages(memory.active_file)),
        "nr_unevictable" | "nr_zone_unevictable" => Gauge(pages(memory.unevictable)),
        "nr_zone_write_pending" => Gauge(pages(
            memory
                .dirty
                .unwrap_or(0)
                .saturating_add(memory.writeback.unwrap_or(0)),
        )),
        // No cgroup counts mlocked pages; they are a part of the unevictable ones.
        "nr_mlock" => Gauge(host_value.min(pages(memory.unevictable))),
        // zsmalloc's pages: v2 charges zswap's compressed pool to the cgroup.
        "nr_zspages" => Gauge(pages(vm.stat.v2("zswap").unwrap_or(0))),
        "nr_slab_reclaimable" => Gauge(pages(memory.slab_reclaimable.unwrap_or(0))),
        "nr_slab_unreclaimable" => Gauge(pages(memory.slab_unreclaimable.unwrap_or(0))),
        "nr_anon_pages" => Gauge(pages(memory.anon_pages())),
        "nr_mapped" => Gauge(pages(memory.mapped.unwrap_or(0))),
        "nr_file_pages" => Gauge(pages(memory.cache)),
        "nr_dirty" => Gauge(pages(memory.dirty.unwrap_or(0))),
        "nr_writeback" => Gauge(pages(memory.writeback.unwrap_or(0))),
        "nr_shmem" => Gauge(pages(memory.shmem)),
        // The kernel prints these in PMD-sized huge pages, not base pages.
        "nr_anon_transparent_hugepages" => Gauge(units.huge_pages(memory.anon_huge.unwrap_or(0))),
        "nr_shmem_hugepages" => Gauge(units.huge_pages(vm.stat.v2("shmem_thp").unwrap_or(0))),
        "nr_file_hugepages" => Gauge(units.huge_pages(vm.stat.v2("file_thp").unwrap_or(0))),
        // In kB, like meminfo's KernelStack.
        "nr_kernel_stack" => Gauge(memory.kernel_stack.unwrap_or(0) / 1024),
        "nr_page_table_pages" => Gauge(pages(memory.page_tables.unwrap_or(0))),
        "nr_sec_page_table_pages" => Gauge(pages(vm.stat.v2("sec_pagetables").unwrap_or(0))),
        "nr_swapcached" => Gauge(pages(vm.stat.get("swapcached").unwrap_or(0))),
        // Charged only with cgroup2's memory_hugetlb_accounting; otherwise the pool is no cgroup's.
        "nr_hugetlb" => Gauge(pages(vm.stat.v2("hugetlb").unwrap_or(0))),
        // A ratio of dirtyable memory (free + file LRU), as the kernel computes a v2 cgroup's own
        // threshold: the host's, scaled by the container's share of it, never above the host's.
        "nr_dirty_threshold" | "nr_dirty_background_threshold" => {
            let container = free_pages
                .saturating_add(pages(memory.active_file))
                .saturating_add(pages(memory.inactive_file));
            Gauge(scaled(host_value, container, host.dirtyable_pages))
        }
        // Block I/O in kB, as the kernel counts it at submission: from the container's blkio/io.stat. v1's
        // memory.stat `pgpgin`/`pgpgout` count pages charged to the cgroup, another thing under one name.
        "pgpgin" => vm
            .io
            .map_or(NotAccounted, |io| Counter(io.sectors_read / 2)),
        "pgpgout" => vm
            .io
            .map_or(NotAccounted, |io| Counter(io.sectors_written / 2)),
        "oom_kill" => vm.oom_kills.map_or(NotAccounted, Counter),
        // Host-wide actions that emptied the container's caches too.
        "drop_pagecache" | "drop_slab" => Host,
        // How the kernel maps physical memory: the machine's, like meminfo's DirectMap lines.
        _ if name.starts_with("direct_map_") => Host,
        // Every other gauge (isolated, bounce, memmap, balloon, kernel-internal pages) and the page-count
        // events named nr_* (nr_dirtied, nr_written, nr_vmscan_write, ...): not per cgroup.
        _ if name.starts_with("nr_") => NotAccounted,
        // Every other event the cgroup counts under the same name: pgfault, pgmajfault, pswpin, pswpout,
        // workingset_*, pgscan_*/pgsteal_* (kswapd, direct, khugepaged), pgrefill, pg(de)activate,
        // pglazyfree(d), thp_* it counts, zswpin/zswpout/zswpwb, swpin_zero/swpout_zero, numa balancing
        // events, pgdemote_*/pgpromote_success. The rest (allocations, compaction, kswapd, NUMA hits, ...)
        // are counted machine-wide only.
        _ => vm.stat.get(name).map_or(NotAccounted, Counter),
    }
}

/// `value` x `part` / `whole`, at most `value`.
fn scaled(value: u64, part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    let scaled = u128::from(value) * u128::from(part) / u128::from(whole);
    u64::try_from(scaled).unwrap_or(u64::MAX).min(value)
}

/// The container's vmstat with its counters not yet settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmstatDraft<'a> {
    lines: Vec<DraftLine<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DraftLine<'a> {
    name: &'a str,
    host_value: u64,
    value: LineValue,
}

/// Computes every line of the container's vmstat from the host's (`host`).
pub fn draft_vmstat<'a>(
    host: &'a str,
    vm: &ContainerVm<'_>,
    units: PageUnits,
) -> Result<VmstatDraft<'a>, ParseError> {
    let lines = parse_vmstat(host)?;
    let host_pages = |name| vmstat_value(&lines, name).unwrap_or(0);
    let figures = HostFigures {
        dirtyable_pages: host_pages("nr_free_pages")
            .saturating_add(host_pages("nr_active_file"))
            .saturating_add(host_pages("nr_inactive_file")),
    };
    let lines = lines
        .iter()
        .map(|&VmstatLine { name, value }| DraftLine {
            name,
            host_value: value,
            value: line_value(name, value, figures, vm, units),
        })
        .collect();
    Ok(VmstatDraft { lines })
}

impl VmstatDraft<'_> {
    /// Passes every counter through `carry`, the container's memory of what it was last shown.
    pub fn settle_counters(&mut self, carry: &mut CounterCarry) {
        for line in &mut self.lines {
            if let LineValue::Counter(raw) = line.value {
                line.value = LineValue::Counter(carry.settle(line.name, raw));
            }
        }
    }

    /// Each line's rule and value, in the host's order.
    pub fn values(&self) -> impl Iterator<Item = (&str, LineValue)> + '_ {
        self.lines.iter().map(|line| (line.name, line.value))
    }

    /// The file's text.
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(self.lines.len() * 28);
        for line in &self.lines {
            let value = match line.value {
                LineValue::Gauge(value) | LineValue::Counter(value) => value,
                LineValue::NotAccounted => 0,
                LineValue::Host => line.host_value,
            };
            let _ = writeln!(out, "{} {value}", line.name);
        }
        out
    }
}

/// The container's vmstat, its counters settled against `carry`.
pub fn render_vmstat(
    host: &str,
    vm: &ContainerVm<'_>,
    units: PageUnits,
    carry: &mut CounterCarry,
) -> Result<String, ParseError> {
    let mut draft = draft_vmstat(host, vm, units)?;
    draft.settle_counters(carry);
    Ok(draft.text())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::io::BlockTraffic;
    use crate::model::memory::{MemoryStat, MemoryState, Swap};
    use crate::model::vmstat::{MemoryStatKeys, StatFlavor};
    use crate::parse::flat_keyed::{parse_flat_keyed, FlatKeyed};

    const MIB: u64 = 1 << 20;
    const UNITS: PageUnits = PageUnits {
        page_bytes: 4096,
        pmd_thp_bytes: Some(2 * MIB),
    };

    const HOST: &str = "\
nr_free_pages 1000000
nr_free_pages_blocks 900000
nr_zone_inactive_anon 5000
nr_zone_write_pending 130
nr_mlock 3523
nr_inactive_anon 5000
nr_active_file 500000
nr_inactive_file 500000
nr_slab_reclaimable 67871
nr_isolated_anon 4
workingset_nodes 17103
workingset_refault_file 8254995
nr_anon_pages 17516
nr_file_pages 1598563
nr_dirty 130
nr_anon_transparent_hugepages 3
nr_kernel_stack 2600
nr_dirtied 17660940
nr_dirty_threshold 400000
nr_dirty_background_threshold 200000
nr_memmap_boot_pages 98304
pgpgin 40842041
pgpgout 63412572
pswpin 7
pgalloc_normal 281051337
pgfree 282876063
pgfault 304571124
pgmajfault 58780
pgscan_direct 11
pgscan_anon 11
drop_pagecache 1
oom_kill 2
thp_fault_alloc 1856
thp_split_page 4
direct_map_level2_splits 5
nr_unstable 0
";

    fn memory_of(stat: MemoryStat) -> MemoryState {
        MemoryState {
            limit_bytes: Some(512 * MIB),
            usage_bytes: 112 * MIB,
            stat,
            swap: Swap::NotAccounted,
        }
    }

    fn vm<'a>(memory: &'a MemoryState, raw: &'a FlatKeyed, flavor: StatFlavor) -> ContainerVm<'a> {
        ContainerVm {
            memory,
            // MemFree as meminfo shows it on a 24 GiB host with plenty free: the limit's headroom.
            mem_free_bytes: memory
                .limit_bytes
                .map_or(24u64 << 30, |limit| limit.min(24 << 30))
                .saturating_sub(memory.usage_bytes),
            stat: MemoryStatKeys { flavor, raw },
            io: Some(BlockTraffic {
                sectors_read: 2048,
                sectors_written: 102_400,
            }),
            oom_kills: Some(1),
        }
    }

    fn field(text: &str, name: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    const V2_STAT: &str = "anon 94371840\nfile 12582912\nkernel_stack 327680\npagetables 2097152\n\
        sec_pagetables 0\nshmem 1048576\nzswap 4096\nfile_mapped 1048576\nfile_dirty 8192\nfile_writeback 4096\n\
        swapcached 8192\nanon_thp 4194304\nfile_thp 0\nshmem_thp 0\ninactive_anon 90177536\nactive_anon 5242880\n\
        inactive_file 8388608\nactive_file 4194304\nunevictable 16384\nslab_reclaimable 409600\n\
        slab_unreclaimable 204800\nslab 614400\nworkingset_refault_file 77\nworkingset_nodereclaim 3\npgscan 40\n\
        pgsteal 20\npgscan_kswapd 10\npgscan_direct 30\npgfault 5000\npgmajfault 12\npswpin 4\npswpout 6\n\
        thp_fault_alloc 2\n";

    fn v2_render(carry: &mut CounterCarry) -> String {
        let raw = parse_flat_keyed(V2_STAT);
        let memory = memory_of(MemoryStat::from_v2(&raw));
        render_vmstat(HOST, &vm(&memory, &raw, StatFlavor::V2), UNITS, carry).unwrap()
    }

    #[test]
    fn render_vmstat_keeps_the_host_names_in_order() {
        let out = v2_render(&mut CounterCarry::default());
        let names = |t: &str| -> Vec<String> {
            t.lines()
                .map(|l| l.split(' ').next().unwrap().to_owned())
                .collect()
        };
        assert_eq!(names(&out), names(HOST));
        assert!(out.lines().all(|l| l.split(' ').count() == 2), "{out}");
    }

    #[test]
    fn render_vmstat_v2_gauges_are_the_cgroups_in_pages() {
        let out = v2_render(&mut CounterCarry::default());
        // MemFree = 512 - 112 MiB = 400 MiB.
        assert_eq!(field(&out, "nr_free_pages"), 102_400);
        assert_eq!(field(&out, "nr_free_pages_blocks"), 102_400);
        assert_eq!(field(&out, "nr_inactive_anon"), 22_016);
        assert_eq!(field(&out, "nr_zone_inactive_anon"), 22_016);
        assert_eq!(field(&out, "nr_active_file"), 1024);
        assert_eq!(field(&out, "nr_zone_write_pending"), 3);
        assert_eq!(field(&out, "nr_mlock"), 4, "at most the unevictable pages");
        assert_eq!(field(&out, "nr_slab_reclaimable"), 100);
        assert_eq!(field(&out, "nr_anon_pages"), 23_040);
        assert_eq!(field(&out, "nr_dirty"), 2);
        assert_eq!(field(&out, "nr_anon_transparent_hugepages"), 2);
        assert_eq!(field(&out, "nr_kernel_stack"), 320, "kB");
        // Scaled by (free + file LRU) = 102400 + 3072 of the host's 2000000 pages.
        assert_eq!(field(&out, "nr_dirty_threshold"), 21_094);
        assert_eq!(field(&out, "nr_dirty_background_threshold"), 10_547);
    }

    #[test]
    fn render_vmstat_v2_counters_are_the_cgroups() {
        let out = v2_render(&mut CounterCarry::default());
        assert_eq!(field(&out, "pgfault"), 5000);
        assert_eq!(field(&out, "pgmajfault"), 12);
        assert_eq!(field(&out, "pswpin"), 4);
        assert_eq!(field(&out, "pgscan_direct"), 30);
        assert_eq!(field(&out, "workingset_refault_file"), 77);
        assert_eq!(field(&out, "thp_fault_alloc"), 2);
        assert_eq!(field(&out, "oom_kill"), 1);
        // kB of block I/O: 1 MiB read, 50 MiB written.
        assert_eq!(field(&out, "pgpgin"), 1024);
        assert_eq!(field(&out, "pgpgout"), 51_200);
    }

    #[test]
    fn render_vmstat_unaccounted_lines_are_zero_and_global_ones_the_hosts() {
        let out = v2_render(&mut CounterCarry::default());
        for name in [
            "nr_isolated_anon",
            "workingset_nodes",
            "nr_dirtied",
            "nr_memmap_boot_pages",
            "pgalloc_normal",
            "pgfree",
            "pgscan_anon",
            "thp_split_page",
        ] {
            assert_eq!(field(&out, name), 0, "{name}");
        }
        assert_eq!(field(&out, "drop_pagecache"), 1);
        assert_eq!(field(&out, "direct_map_level2_splits"), 5);
    }

    #[test]
    fn render_vmstat_v1_reads_totals_and_never_its_charge_events() {
        let raw = parse_flat_keyed(
            "pgpgin 5\npgfault 3\ntotal_cache 8192\ntotal_rss 4096\ntotal_rss_huge 2097152\n\
             total_active_anon 4096\ntotal_active_file 8192\ntotal_pgpgin 18207\ntotal_pgpgout 18137\n\
             total_pgfault 22935\ntotal_pgmajfault 3\ntotal_workingset_refault_file 40\ntotal_swapcached 4096\n",
        );
        let memory = memory_of(MemoryStat::from_v1(&raw));
        let mut container = vm(&memory, &raw, StatFlavor::V1);
        container.io = None;
        container.oom_kills = None;
        let out = render_vmstat(HOST, &container, UNITS, &mut CounterCarry::default()).unwrap();
        assert_eq!(field(&out, "pgfault"), 22_935);
        assert_eq!(field(&out, "pgmajfault"), 3);
        assert_eq!(field(&out, "workingset_refault_file"), 40);
        assert_eq!(field(&out, "nr_file_pages"), 2);
        assert_eq!(field(&out, "nr_anon_transparent_hugepages"), 1);
        assert_eq!(
            field(&out, "nr_slab_reclaimable"),
            0,
            "v1 does not count slab"
        );
        // No I/O cgroup and no OOM count: 0, never memory.stat's charge events or the host's.
        assert_eq!(field(&out, "pgpgin"), 0);
        assert_eq!(field(&out, "pgpgout"), 0);
        assert_eq!(field(&out, "oom_kill"), 0);
        assert_eq!(field(&out, "pswpin"), 0, "v1 does not count swap-ins");
    }

    #[test]
    fn render_vmstat_counters_never_go_backwards() {
        let mut carry = CounterCarry::default();
        let first = v2_render(&mut carry);
        let raw = parse_flat_keyed(&V2_STAT.replace("pgfault 5000", "pgfault 4000"));
        let memory = memory_of(MemoryStat::from_v2(&raw));
        let mut container = vm(&memory, &raw, StatFlavor::V2);
        container.io = Some(BlockTraffic {
            sectors_read: 0,
            sectors_written: 102_402,
        });
        let second = render_vmstat(HOST, &container, UNITS, &mut carry).unwrap();
        assert_eq!(field(&first, "pgfault"), 5000);
        assert_eq!(field(&second, "pgfault"), 5000);
        assert_eq!(field(&second, "pgpgin"), 1024);
        assert_eq!(field(&second, "pgpgout"), 51_201);
        // Gauges follow the cgroup down.
        let raw = parse_flat_keyed(&V2_STAT.replace("file_dirty 8192", "file_dirty 0"));
        let memory = memory_of(MemoryStat::from_v2(&raw));
        let third =
            render_vmstat(HOST, &vm(&memory, &raw, StatFlavor::V2), UNITS, &mut carry).unwrap();
        assert_eq!(field(&third, "nr_dirty"), 0);
    }

    #[test]
    fn render_vmstat_huge_values_saturate() {
        let raw = parse_flat_keyed(&format!(
            "file_dirty {m}\nfile_writeback {m}\ninactive_file {m}\nactive_file {m}\npgfault {m}\n",
            m = u64::MAX
        ));
        let mut memory = memory_of(MemoryStat::from_v2(&raw));
        memory.limit_bytes = None;
        memory.usage_bytes = 0;
        let mut container = vm(&memory, &raw, StatFlavor::V2);
        container.mem_free_bytes = u64::MAX;
        let host = "nr_free_pages 18446744073709551615\nnr_dirty_threshold 18446744073709551615\n\
                    nr_zone_write_pending 1\npgfault 1\n";
        let out = render_vmstat(host, &container, UNITS, &mut CounterCarry::default()).unwrap();
        assert_eq!(field(&out, "nr_free_pages"), u64::MAX / 4096);
        assert_eq!(field(&out, "nr_zone_write_pending"), u64::MAX / 4096);
        // The host's whole dirtyable memory is its threshold: the container's share is its own free and
        // file pages, summed without wrapping.
        assert_eq!(field(&out, "nr_dirty_threshold"), 3 * (u64::MAX / 4096));
        assert_eq!(field(&out, "pgfault"), u64::MAX);
    }

    #[test]
    fn render_vmstat_bad_host_is_an_error() {
        let raw = parse_flat_keyed(V2_STAT);
        let memory = memory_of(MemoryStat::from_v2(&raw));
        let container = vm(&memory, &raw, StatFlavor::V2);
        for bad in ["", "garbage\n", "pgfault x\n"] {
            render_vmstat(bad, &container, UNITS, &mut CounterCarry::default()).unwrap_err();
        }
    }

    #[test]
    fn scaled_is_bounded_by_the_value() {
        assert_eq!(scaled(100, 1, 4), 25);
        assert_eq!(scaled(100, 8, 4), 100);
        assert_eq!(scaled(100, 1, 0), 0);
        assert_eq!(scaled(u64::MAX, u64::MAX, 1), u64::MAX);
    }
}
