//! Memory and swap of a container.

use crate::parse::flat_keyed::FlatKeyed;

/// Memory limit, usage and breakdown of one container, with limits already reduced over its ancestors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryState {
    /// The effective limit; `None` when neither the cgroup nor an ancestor sets one.
    pub limit_bytes: Option<u64>,
    pub usage_bytes: u64,
    pub stat: MemoryStat,
    pub swap: Swap,
}

/// Swap as the cgroup accounts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Swap {
    /// The kernel does not account swap per cgroup (v1 without `swapaccount`, v2 without `memory.swap.max`).
    #[default]
    NotAccounted,
    Accounted {
        /// Swap the container may use, beyond its memory; `None` = no swap limit.
        limit_bytes: Option<u64>,
        usage_bytes: u64,
        /// False when v1 `memory.swappiness` is 0: the container never swaps.
        may_swap: bool,
    },
}

/// The `memory.stat` fields that meminfo lines are made of, in bytes. `None` where the kernel does not
/// provide a value for this cgroup version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStat {
    pub cache: u64,
    pub active_anon: u64,
    pub inactive_anon: u64,
    pub active_file: u64,
    pub inactive_file: u64,
    pub unevictable: u64,
    pub shmem: u64,
    /// v2 reports anonymous memory directly; v1 has to derive it.
    pub anon: Option<u64>,
    pub mapped: Option<u64>,
    pub dirty: Option<u64>,
    pub writeback: Option<u64>,
    pub anon_huge: Option<u64>,
    pub slab: Option<u64>,
    pub slab_reclaimable: Option<u64>,
    pub slab_unreclaimable: Option<u64>,
    pub kernel_stack: Option<u64>,
    pub page_tables: Option<u64>,
}

impl MemoryStat {
    /// From v1 `memory.stat`, using the hierarchical `total_*` fields.
    pub fn from_v1(stat: &FlatKeyed) -> MemoryStat {
        MemoryStat {
            cache: stat.get_or_zero("total_cache"),
            active_anon: stat.get_or_zero("total_active_anon"),
            inactive_anon: stat.get_or_zero("total_inactive_anon"),
            active_file: stat.get_or_zero("total_active_file"),
            inactive_file: stat.get_or_zero("total_inactive_file"),
            unevictable: stat.get_or_zero("total_unevictable"),
            shmem: stat.get_or_zero("total_shmem"),
            anon: None,
            mapped: stat.get("total_mapped_file"),
            dirty: stat.get("total_dirty"),
            writeback: stat.get("total_writeback"),
            anon_huge: stat.get("total_rss_huge"),
            slab: None,
            slab_reclaimable: None,
            slab_unreclaimable: None,
            kernel_stack: None,
            page_tables: None,
        }
    }

    /// From v2 `memory.stat` (already hierarchical).
    pub fn from_v2(stat: &FlatKeyed) -> MemoryStat {
        let slab_reclaimable = stat.get("slab_reclaimable");
        let slab_unreclaimable = stat.get("slab_unreclaimable");
        let slab = stat
            .get("slab")
            .or(match (slab_reclaimable, slab_unreclaimable) {
                (Some(r), Some(u)) => Some(r.saturating_add(u)),
                _ => None,
            });
        MemoryStat {
            cache: stat.get_or_zero("file"),
            active_anon: stat.get_or_zero("active_anon"),
            inactive_anon: stat.get_or_zero("inactive_anon"),
            active_file: stat.get_or_zero("active_file"),
            inactive_file: stat.get_or_zero("inactive_file"),
            unevictable: stat.get_or_zero("unevictable"),
            shmem: stat.get_or_zero("shmem"),
            anon: stat.get("anon"),
            mapped: stat.get("file_mapped"),
            dirty: stat.get("file_dirty"),
            writeback: stat.get("file_writeback"),
            anon_huge: stat.get("anon_thp"),
            slab,
            slab_reclaimable,
            slab_unreclaimable,
            kernel_stack: stat.get("kernel_stack"),
            page_tables: stat.get("pagetables"),
        }
    }

    /// Anonymous memory excluding shmem (which the kernel counts as anon on the LRU but as Cached in meminfo).
    pub fn anon_pages(&self) -> u64 {
        self.anon.unwrap_or_else(|| {
            self.active_anon
                .saturating_add(self.inactive_anon)
                .saturating_sub(self.shmem)
        })
    }
}

/// The meminfo totals derived from a [`MemoryState`] and the host's totals, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryTotals {
    pub mem_total: u64,
    pub mem_free: u64,
    pub mem_available: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

impl MemoryState {
    /// Applies design.md's rules: totals capped by the host's, free clamped to `[0, total]`, swap per the
    /// accounting mode. Every input is a kernel-provided number, so every sum saturates: no value can make
    /// this panic (debug builds) or wrap to a tiny figure (release).
    pub fn totals(&self, host_mem_total: u64, host_swap_total: u64) -> MemoryTotals {
        let mem_total = self
            .limit_bytes
            .map_or(host_mem_total, |limit| limit.min(host_mem_total));
        let mem_free = mem_total.saturating_sub(self.usage_bytes);
        let reclaimable = self
            .stat
            .active_file
            .saturating_add(self.stat.inactive_file)
            .saturating_add(self.stat.slab_reclaimable.unwrap_or(0));
        let mem_available = mem_free.saturating_add(reclaimable).min(mem_total);
        let (swap_total, swap_free) = match self.swap {
            Swap::NotAccounted => (0, 0),
            Swap::Accounted {
                usage_bytes,
                may_swap: false,
                ..
            } => (usage_bytes.min(host_swap_total), 0),
            Swap::Accounted {
                limit_bytes,
                usage_bytes,
                may_swap: true,
            } => {
                let total = limit_bytes.map_or(host_swap_total, |l| l.min(host_swap_total));
                (total, total.saturating_sub(usage_bytes))
            }
        };
        MemoryTotals {
            mem_total,
            mem_free,
            mem_available,
            swap_total,
            swap_free,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::flat_keyed::parse_flat_keyed;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    fn state(limit: Option<u64>, usage: u64, swap: Swap) -> MemoryState {
        MemoryState {
            limit_bytes: limit,
            usage_bytes: usage,
            stat: MemoryStat::default(),
            swap,
        }
    }

    #[test]
    fn totals_limit_below_host_is_mem_total() {
        let totals = state(Some(512 * MIB), 100 * MIB, Swap::NotAccounted).totals(24 * GIB, 0);
        assert_eq!(totals.mem_total, 512 * MIB);
        assert_eq!(totals.mem_free, 412 * MIB);
        assert_eq!(totals.swap_total, 0);
    }

    #[test]
    fn totals_limit_above_host_is_capped() {
        let totals = state(Some(64 * GIB), GIB, Swap::NotAccounted).totals(24 * GIB, 0);
        assert_eq!(totals.mem_total, 24 * GIB);
        assert_eq!(totals.mem_free, 23 * GIB);
    }

    #[test]
    fn totals_usage_above_limit_clamps_free_to_zero() {
        let totals = state(Some(MIB), 2 * MIB, Swap::NotAccounted).totals(GIB, 0);
        assert_eq!(totals.mem_free, 0);
        assert_eq!(totals.mem_available, 0);
    }

    #[test]
    fn totals_available_adds_reclaimable_and_clamps() {
        let mut s = state(Some(100 * MIB), 90 * MIB, Swap::NotAccounted);
        s.stat.active_file = 5 * MIB;
        s.stat.inactive_file = 3 * MIB;
        s.stat.slab_reclaimable = Some(MIB);
        assert_eq!(s.totals(GIB, 0).mem_available, 19 * MIB);
        s.stat.inactive_file = 200 * MIB;
        assert_eq!(s.totals(GIB, 0).mem_available, 100 * MIB);
    }

    #[test]
    fn totals_swap_limited_and_used() {
        let swap = Swap::Accounted {
            limit_bytes: Some(256 * MIB),
            usage_bytes: 56 * MIB,
            may_swap: true,
        };
        let totals = state(Some(512 * MIB), 0, swap).totals(GIB, 2 * GIB);
        assert_eq!(totals.swap_total, 256 * MIB);
        assert_eq!(totals.swap_free, 200 * MIB);
    }

    #[test]
    fn totals_swap_unlimited_is_host_swap() {
        let swap = Swap::Accounted {
            limit_bytes: None,
            usage_bytes: 0,
            may_swap: true,
        };
        let totals = state(None, 0, swap).totals(GIB, 2 * GIB);
        assert_eq!(totals.swap_total, 2 * GIB);
        assert_eq!(totals.swap_free, 2 * GIB);
    }

    #[test]
    fn totals_swappiness_zero_reports_only_swap_in_use() {
        let swap = Swap::Accounted {
            limit_bytes: None,
            usage_bytes: 4 * MIB,
            may_swap: false,
        };
        let totals = state(Some(GIB), 0, swap).totals(GIB, 2 * GIB);
        assert_eq!(totals.swap_total, 4 * MIB);
        assert_eq!(totals.swap_free, 0);
    }

    #[test]
    fn totals_reclaimable_at_u64_max_saturates_to_mem_total() {
        let mut s = state(Some(100 * MIB), 90 * MIB, Swap::NotAccounted);
        s.stat.active_file = u64::MAX;
        s.stat.inactive_file = u64::MAX;
        s.stat.slab_reclaimable = Some(u64::MAX);
        let totals = s.totals(GIB, 0);
        assert_eq!(totals.mem_available, 100 * MIB);
        assert_eq!(totals.mem_free, 10 * MIB);
    }

    #[test]
    fn totals_every_input_at_u64_max_stays_within_bounds() {
        let swap = Swap::Accounted {
            limit_bytes: Some(u64::MAX),
            usage_bytes: u64::MAX,
            may_swap: true,
        };
        let mut s = state(Some(u64::MAX), u64::MAX, swap);
        s.stat.active_file = u64::MAX;
        s.stat.inactive_file = u64::MAX;
        s.stat.slab_reclaimable = Some(u64::MAX);
        let totals = s.totals(u64::MAX, u64::MAX);
        assert_eq!(totals.mem_total, u64::MAX);
        assert_eq!(totals.mem_free, 0);
        assert!(totals.mem_available <= totals.mem_total);
        assert_eq!(totals.swap_total, u64::MAX);
        assert_eq!(totals.swap_free, 0);
    }

    #[test]
    fn memory_stat_v2_slab_sum_saturates() {
        let raw = parse_flat_keyed(
            "slab_reclaimable 18446744073709551615
slab_unreclaimable 2
",
        );
        assert_eq!(MemoryStat::from_v2(&raw).slab, Some(u64::MAX));
    }

    #[test]
    fn memory_stat_v1_anon_sum_saturates() {
        let raw = parse_flat_keyed(
            "total_active_anon 18446744073709551615
total_inactive_anon 7
total_shmem 5
",
        );
        assert_eq!(MemoryStat::from_v1(&raw).anon_pages(), u64::MAX - 5);
    }

    #[test]
    fn memory_stat_v2_reads_exact_keys() {
        let raw = parse_flat_keyed(
            "anon 100\nfile 4096\nfile_mapped 1024\nfile_dirty 8\nfile_writeback 4\nanon_thp 2048\n\
             shmem 16\nslab_reclaimable 30\nslab_unreclaimable 12\nslab 42\nkernel_stack 64\npagetables 128\n",
        );
        let stat = MemoryStat::from_v2(&raw);
        assert_eq!(stat.cache, 4096);
        assert_eq!(stat.mapped, Some(1024));
        assert_eq!(stat.dirty, Some(8));
        assert_eq!(stat.writeback, Some(4));
        assert_eq!(stat.anon_huge, Some(2048));
        assert_eq!(stat.slab, Some(42));
        assert_eq!(stat.anon_pages(), 100);
    }

    #[test]
    fn memory_stat_v2_slab_sum_when_kernel_lacks_total() {
        let raw = parse_flat_keyed("slab_reclaimable 30\nslab_unreclaimable 12\n");
        assert_eq!(MemoryStat::from_v2(&raw).slab, Some(42));
    }

    #[test]
    fn memory_stat_v1_uses_hierarchical_totals() {
        let raw = parse_flat_keyed(
            "cache 1\ntotal_cache 4096\ntotal_active_anon 300\ntotal_inactive_anon 200\ntotal_shmem 100\n\
             total_mapped_file 7\n",
        );
        let stat = MemoryStat::from_v1(&raw);
        assert_eq!(stat.cache, 4096);
        assert_eq!(stat.anon_pages(), 400);
        assert_eq!(stat.mapped, Some(7));
        assert_eq!(stat.slab, None);
    }
}
