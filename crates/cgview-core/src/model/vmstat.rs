//! What a container's `/proc/vmstat` is made of: its memory as meminfo shows it, its cgroup's
//! `memory.stat` counters, its block I/O and OOM kills; and the per-container memory that keeps the
//! counters from going backwards.

use crate::model::io::BlockTraffic;
use crate::model::memory::MemoryState;
use crate::parse::flat_keyed::FlatKeyed;
use std::collections::HashMap;

/// Which `memory.stat` a container's counters come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatFlavor {
    /// v1: the hierarchical figures are the `total_`-prefixed keys (the plain ones leave out sub-cgroups).
    V1,
    /// v2: every key is hierarchical.
    V2,
}

/// A container's `memory.stat`, looked up by the name `/proc/vmstat` gives the same counter.
#[derive(Debug, Clone, Copy)]
pub struct MemoryStatKeys<'a> {
    pub flavor: StatFlavor,
    pub raw: &'a FlatKeyed,
}

impl MemoryStatKeys<'_> {
    /// The container's value of `name` (`pgfault`, `workingset_refault_file`, ...): the key itself on v2,
    /// `total_<name>` on v1. The kernel names a memcg event as its global counterpart, in the same unit.
    pub fn get(&self, name: &str) -> Option<u64> {
        match self.flavor {
            StatFlavor::V1 => self.raw.get_prefixed("total_", name),
            StatFlavor::V2 => self.raw.get(name),
        }
    }

    /// A v2-only key (v1 has no such line, or one with another meaning).
    pub fn v2(&self, name: &str) -> Option<u64> {
        match self.flavor {
            StatFlavor::V1 => None,
            StatFlavor::V2 => self.raw.get(name),
        }
    }
}

/// Everything the container's vmstat lines are computed from.
#[derive(Debug, Clone, Copy)]
pub struct ContainerVm<'a> {
    /// The container's memory, read as for its meminfo.
    pub memory: &'a MemoryState,
    /// MemFree as the container's meminfo shows it, in bytes: `nr_free_pages` agrees.
    pub mem_free_bytes: u64,
    pub stat: MemoryStatKeys<'a>,
    /// Its reads and writes over all block devices; `None` when it has no I/O cgroup of its own.
    pub io: Option<BlockTraffic>,
    /// OOM kills in its memory cgroup (v2 `memory.events`, v1 `memory.oom_control`); `None` on kernels
    /// that do not count them.
    pub oom_kills: Option<u64>,
}

/// The sizes `/proc/vmstat` counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageUnits {
    /// The base page (`getconf PAGESIZE`): the unit of `nr_*` gauges.
    pub page_bytes: u64,
    /// A PMD-sized transparent huge page (`/sys/kernel/mm/transparent_hugepage/hpage_pmd_size`): the unit
    /// the kernel prints `nr_anon_transparent_hugepages` and the other THP gauges in. `None` without THP.
    pub pmd_thp_bytes: Option<u64>,
}

impl PageUnits {
    pub fn pages(&self, bytes: u64) -> u64 {
        bytes / self.page_bytes.max(1)
    }

    pub fn huge_pages(&self, bytes: u64) -> u64 {
        self.pmd_thp_bytes.map_or(0, |size| bytes / size.max(1))
    }
}

/// One container's event counters as last shown, so that none is ever shown lower than before. The
/// kernel's figures can drop: a removed sub-cgroup takes its counts with it on kernels whose v1 `total_*`
/// sum the live children only, and a device gone from `io.stat` takes its bytes. A drop is carried: the
/// counter stays where it was shown and grows from there with the kernel's, so the next interval's
/// difference (what `vmstat 1` and `sar` print) is the real one rather than 0 until the kernel catches up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterCarry {
    counters: HashMap<String, Carried>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Carried {
    /// The kernel's value at the last read.
    last_raw: u64,
    /// Added to the kernel's value: the sum of its drops.
    offset: u64,
}

impl CounterCarry {
    /// The value to show for counter `name` when the kernel says `raw`.
    pub fn settle(&mut self, name: &str, raw: u64) -> u64 {
        let carried = match self.counters.get_mut(name) {
            Some(carried) => carried,
            None => self.counters.entry(name.to_owned()).or_default(),
        };
        if raw < carried.last_raw {
            carried.offset = carried.offset.saturating_add(carried.last_raw - raw);
        }
        carried.last_raw = raw;
        raw.saturating_add(carried.offset)
    }

    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::flat_keyed::parse_flat_keyed;

    #[test]
    fn stat_keys_v1_read_the_hierarchical_totals() {
        let raw = parse_flat_keyed("pgfault 3\ntotal_pgfault 30\nrss_huge 1\n");
        let keys = MemoryStatKeys {
            flavor: StatFlavor::V1,
            raw: &raw,
        };
        assert_eq!(keys.get("pgfault"), Some(30));
        assert_eq!(keys.get("rss_huge"), None);
        assert_eq!(keys.v2("pgfault"), None);
    }

    #[test]
    fn stat_keys_v2_read_exact_keys() {
        let raw = parse_flat_keyed("pgscan 9\npgscan_direct 7\n");
        let keys = MemoryStatKeys {
            flavor: StatFlavor::V2,
            raw: &raw,
        };
        assert_eq!(keys.get("pgscan_direct"), Some(7));
        assert_eq!(keys.get("pgscan_kswapd"), None);
        assert_eq!(keys.v2("pgscan"), Some(9));
    }

    #[test]
    fn units_convert_bytes_and_tolerate_zero_sizes() {
        let units = PageUnits {
            page_bytes: 4096,
            pmd_thp_bytes: Some(2 << 20),
        };
        assert_eq!(units.pages(8192 + 100), 2);
        assert_eq!(units.huge_pages(6 << 20), 3);
        let odd = PageUnits {
            page_bytes: 0,
            pmd_thp_bytes: None,
        };
        assert_eq!(odd.pages(5), 5);
        assert_eq!(odd.huge_pages(6 << 20), 0);
    }

    #[test]
    fn carry_keeps_counters_from_going_backwards_and_keeps_intervals() {
        let mut carry = CounterCarry::default();
        assert_eq!(carry.settle("pgfault", 100), 100);
        assert_eq!(carry.settle("pgfault", 150), 150);
        // A sub-cgroup's 120 faults vanished with it: shown stays at 150 and grows by the next 10.
        assert_eq!(carry.settle("pgfault", 30), 150);
        assert_eq!(carry.settle("pgfault", 40), 160);
        // Other counters are independent.
        assert_eq!(carry.settle("pgmajfault", 5), 5);
        assert_eq!(carry.len(), 2);
    }

    #[test]
    fn carry_saturates_at_u64_max() {
        let mut carry = CounterCarry::default();
        carry.settle("pgpgin", u64::MAX);
        assert_eq!(carry.settle("pgpgin", 0), u64::MAX);
        assert_eq!(carry.settle("pgpgin", 5), u64::MAX);
    }
}
