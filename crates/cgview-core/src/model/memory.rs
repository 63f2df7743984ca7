//! Memory and swap of a container, and the `/proc/meminfo` figures they make (design.md section 2).
//!
//! Every figure is derived so that the container's lines never contradict one another, its `/proc/swaps`,
//! or the host: nothing exceeds `MemTotal` (but for the host kernel's address-space and page-size lines),
//! free and available memory are never more than the host has free and available, parts never exceed
//! their whole (`Shmem` <= `Cached`, `Mlocked` <= `Unevictable`, ...) and sums are sums of the lines
//! shown (`Active` = `Active(anon)` + `Active(file)`). The table of lines is [`ContainerMeminfo::line_kb`].

use crate::parse::flat_keyed::FlatKeyed;
use crate::parse::meminfo::HostMeminfo;

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

impl Swap {
    /// v1 accounts memory + swap together (`memory.memsw.*`): the swap part is what exceeds memory.
    /// `memsw_limit_bytes` and `mem_limit_bytes` are effective limits (`None` = unlimited).
    pub fn from_v1_memsw(
        memsw_limit_bytes: Option<u64>,
        memsw_usage_bytes: u64,
        mem_limit_bytes: Option<u64>,
        mem_usage_bytes: u64,
        may_swap: bool,
    ) -> Swap {
        Swap::Accounted {
            limit_bytes: memsw_limit_bytes
                .map(|memsw| memsw.saturating_sub(mem_limit_bytes.unwrap_or(0))),
            usage_bytes: memsw_usage_bytes.saturating_sub(mem_usage_bytes),
            may_swap,
        }
    }
}

/// The `memory.stat` fields that meminfo lines are made of, in bytes. `None` where the kernel does not
/// provide a value for this cgroup version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStat {
    /// Page cache, shmem and swap cache included (v1 `cache`, v2 `file`).
    pub cache: u64,
    pub active_anon: u64,
    pub inactive_anon: u64,
    pub active_file: u64,
    pub inactive_file: u64,
    pub unevictable: u64,
    pub shmem: u64,
    /// Mapped anonymous memory: v2 `anon`, v1 `rss`; derived from the LRU lists when missing.
    pub anon: Option<u64>,
    pub mapped: Option<u64>,
    pub dirty: Option<u64>,
    pub writeback: Option<u64>,
    pub anon_huge: Option<u64>,
    pub swap_cached: Option<u64>,
    pub slab: Option<u64>,
    pub slab_reclaimable: Option<u64>,
    pub slab_unreclaimable: Option<u64>,
    pub kernel_stack: Option<u64>,
    pub page_tables: Option<u64>,
    /// v2 only, as are the fields below: the kernel memory v1's `memory.stat` does not break down.
    pub sec_page_tables: Option<u64>,
    pub percpu: Option<u64>,
    pub vmalloc: Option<u64>,
    pub shmem_huge: Option<u64>,
    pub file_huge: Option<u64>,
    /// Compressed size of the container's pages in zswap, and their uncompressed size.
    pub zswap: Option<u64>,
    pub zswapped: Option<u64>,
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
            anon: stat.get("total_rss"),
            mapped: stat.get("total_mapped_file"),
            dirty: stat.get("total_dirty"),
            writeback: stat.get("total_writeback"),
            anon_huge: stat.get("total_rss_huge"),
            swap_cached: stat.get("total_swapcached"),
            ..MemoryStat::default()
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
            swap_cached: stat.get("swapcached"),
            slab,
            slab_reclaimable,
            slab_unreclaimable,
            kernel_stack: stat.get("kernel_stack"),
            page_tables: stat.get("pagetables"),
            sec_page_tables: stat.get("sec_pagetables"),
            percpu: stat.get("percpu"),
            vmalloc: stat.get("vmalloc"),
            shmem_huge: stat.get("shmem_thp"),
            file_huge: stat.get("file_thp"),
            zswap: stat.get("zswap"),
            zswapped: stat.get("zswapped"),
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

    /// The slab memory the kernel counts as reclaimable. v1 has no slab fields; when v2 gives only the
    /// total, none of it is known to be reclaimable.
    fn slab_split(&self) -> (u64, u64) {
        match (self.slab_reclaimable, self.slab_unreclaimable) {
            (None, None) => (0, self.slab.unwrap_or(0)),
            (r, u) => (r.unwrap_or(0), u.unwrap_or(0)),
        }
    }
}

/// Swap sizes in kB, as `/proc/meminfo` and `/proc/swaps` both show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwapSpace {
    pub total_kb: u64,
    pub free_kb: u64,
}

impl SwapSpace {
    /// What `/proc/swaps` shows as used, and `free` as swap used.
    pub fn used_kb(&self) -> u64 {
        self.total_kb.saturating_sub(self.free_kb)
    }
}

/// The huge page pool as the container is shown it: page counts, and `Hugetlb` in kB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HugePages {
    pub total: u64,
    pub free: u64,
    pub rsvd: u64,
    pub surp: u64,
    pub hugetlb_kb: u64,
}

/// Every container-derived figure of `/proc/meminfo`, in kB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerMeminfo {
    pub mem_total: u64,
    pub mem_free: u64,
    pub mem_available: u64,
    pub cached: u64,
    pub swap_cached: u64,
    pub active_anon: u64,
    pub inactive_anon: u64,
    pub active_file: u64,
    pub inactive_file: u64,
    pub unevictable: u64,
    pub swap: SwapSpace,
    pub zswap: u64,
    pub zswapped: u64,
    pub dirty: u64,
    pub writeback: u64,
    pub anon_pages: u64,
    pub mapped: u64,
    pub shmem: u64,
    pub slab_reclaimable: u64,
    pub slab_unreclaimable: u64,
    pub kernel_stack: u64,
    pub page_tables: u64,
    pub sec_page_tables: u64,
    pub commit_limit: u64,
    pub committed_as: u64,
    pub vmalloc_used: u64,
    pub percpu: u64,
    pub anon_huge: u64,
    pub shmem_huge: u64,
    pub file_huge: u64,
    pub cma_total: u64,
    pub cma_free: u64,
    pub huge_pages: HugePages,
}

/// Hands out kB from a whole so that the parts given never add up to more than it: what a cgroup's
/// `memory.stat` says is clamped to what its usage leaves, when the two were read at different moments
/// (the kernel flushes memory.stat lazily) or do not agree.
struct Budget(u64);

impl Budget {
    fn take(&mut self, wanted: u64) -> u64 {
        let given = wanted.min(self.0);
        self.0 -= given;
        given
    }
}

fn kb(bytes: u64) -> u64 {
    bytes / 1024
}

fn kb_of(bytes: Option<u64>) -> u64 {
    kb(bytes.unwrap_or(0))
}

/// `value`, no more than `bound` when there is one.
fn at_most(value: u64, bound: Option<u64>) -> u64 {
    bound.map_or(value, |bound| value.min(bound))
}

impl MemoryState {
    /// The container's meminfo figures on a host whose own are `host`. Every input is a kernel-provided
    /// number, so every sum saturates: no value can make this panic (debug builds) or wrap (release).
    pub fn meminfo(&self, host: &HostMeminfo) -> ContainerMeminfo {
        let host_total_bytes = host.mem_total.saturating_mul(1024);
        let total_bytes = self
            .limit_bytes
            .map_or(host_total_bytes, |limit| limit.min(host_total_bytes));
        let mem_total = kb(total_bytes);
        // What the container may still charge. It cannot have more free than the host has: an unlimited
        // container on a busy host, or a limited one on a host under pressure, gets the host's.
        let headroom = kb(total_bytes.saturating_sub(self.usage_bytes));
        let mem_free = at_most(headroom, host.mem_free);
        let used = mem_total - mem_free;

        let swap = self.swap_space(host);
        let stat = &self.stat;

        // The pools a cgroup is charged for are disjoint in the kernel: together they fit in `used`.
        let mut charged = Budget(used);
        let anon_pages = charged.take(kb(stat.anon_pages()));
        let file = charged.take(kb(stat.cache));
        let (slab_reclaimable, slab_unreclaimable) = stat.slab_split();
        let slab_reclaimable = charged.take(kb(slab_reclaimable));
        let slab_unreclaimable = charged.take(kb(slab_unreclaimable));
        let kernel_stack = charged.take(kb_of(stat.kernel_stack));
        let page_tables = charged.take(kb_of(stat.page_tables));
        let sec_page_tables = charged.take(kb_of(stat.sec_page_tables));
        let percpu = charged.take(kb_of(stat.percpu));
        let vmalloc_used = charged.take(kb_of(stat.vmalloc));
        let zswap = charged.take(kb_of(stat.zswap));

        // So are the LRU lists.
        let mut lru = Budget(used);
        let active_anon = lru.take(kb(stat.active_anon));
        let inactive_anon = lru.take(kb(stat.inactive_anon));
        let active_file = lru.take(kb(stat.active_file));
        let inactive_file = lru.take(kb(stat.inactive_file));
        let unevictable = lru.take(kb(stat.unevictable));

        // Swap cache pages are file pages with a swap slot: part of both the page cache the cgroup
        // counts and the swap shown in use. The kernel's Cached leaves them out.
        let swap_cached = kb_of(stat.swap_cached).min(file).min(swap.used_kb());
        let cached = file - swap_cached;
        let shmem = kb(stat.shmem).min(cached);
        let shmem_huge = kb_of(stat.shmem_huge).min(shmem);

        let mem_available = headroom
            .saturating_add(active_file)
            .saturating_add(inactive_file)
            .saturating_add(slab_reclaimable)
            .min(mem_total);
        let mem_available = at_most(mem_available, host.mem_available);

        // The kernel's limit is RAM x overcommit_ratio (or overcommit_kbytes) + swap: the host's RAM part
        // scaled to the container's memory, plus the container's swap.
        let host_ram_commit = host.commit_limit.saturating_sub(host.swap_total);
        let commit_limit =
            scale(host_ram_commit, mem_total, host.mem_total).saturating_add(swap.total_kb);
        // The kernel does not account commitments per cgroup. What the cgroup does account of them, the
        // anonymous and shared memory its processes touched (resident or swapped), is a lower bound.
        let own_swap_used = match self.swap {
            Swap::Accounted { usage_bytes, .. } => kb(usage_bytes).min(swap.used_kb()),
            Swap::NotAccounted => 0,
        };
        let committed_as = anon_pages
            .saturating_add(shmem)
            .saturating_add(own_swap_used)
            .min(host.committed_as);

        let cma_total = host.cma_total.min(mem_total);
        ContainerMeminfo {
            mem_total,
            mem_free,
            mem_available,
            cached,
            swap_cached,
            active_anon,
            inactive_anon,
            active_file,
            inactive_file,
            unevictable,
            swap,
            zswap,
            zswapped: kb_of(stat.zswapped).min(swap.used_kb()),
            dirty: kb_of(stat.dirty).min(cached),
            writeback: kb_of(stat.writeback).min(used),
            anon_pages,
            mapped: kb_of(stat.mapped).min(cached),
            shmem,
            slab_reclaimable,
            slab_unreclaimable,
            kernel_stack,
            page_tables,
            sec_page_tables,
            commit_limit,
            committed_as,
            vmalloc_used,
            percpu,
            anon_huge: kb_of(stat.anon_huge).min(anon_pages),
            shmem_huge,
            file_huge: kb_of(stat.file_huge).min(cached - shmem),
            cma_total,
            cma_free: host.cma_free.min(cma_total).min(mem_free),
            huge_pages: huge_pages(host, mem_total),
        }
    }

    /// design.md's swap rules, bounded by the host's swap and what it has free.
    fn swap_space(&self, host: &HostMeminfo) -> SwapSpace {
        let host_total_bytes = host.swap_total.saturating_mul(1024);
        match self.swap {
            Swap::NotAccounted => SwapSpace::default(),
            // A container that never swaps has only the swap it already uses, none of it free.
            Swap::Accounted {
                usage_bytes,
                may_swap: false,
                ..
            } => SwapSpace {
                total_kb: kb(usage_bytes.min(host_total_bytes)),
                free_kb: 0,
            },
            Swap::Accounted {
                limit_bytes,
                usage_bytes,
                may_swap: true,
            } => {
                let total_bytes = limit_bytes.map_or(host_total_bytes, |l| l.min(host_total_bytes));
                SwapSpace {
                    total_kb: kb(total_bytes),
                    free_kb: at_most(kb(total_bytes.saturating_sub(usage_bytes)), host.swap_free),
                }
            }
        }
    }
}

/// `value` x `numerator` / `denominator` without overflow (`numerator` <= `denominator` here, so the
/// result fits); 0 for a 0 denominator.
fn scale(value: u64, numerator: u64, denominator: u64) -> u64 {
    if denominator == 0 {
        return 0;
    }
    let scaled = u128::from(value) * u128::from(numerator) / u128::from(denominator);
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// The host's huge page pool, no more of it than the container's memory holds. The pool is the host's
/// (a container allocates from it up to its hugetlb cgroup limit, and the memory cgroup does not charge
/// it), but a pool larger than `MemTotal` would contradict `MemTotal`.
fn huge_pages(host: &HostMeminfo, mem_total: u64) -> HugePages {
    let fit = mem_total.checked_div(host.huge_page_size).unwrap_or(0);
    let total = host.huge_pages_total.min(fit);
    let free = host.huge_pages_free.min(total);
    HugePages {
        total,
        free,
        // Reserved pages are free pages promised to a mapping; surplus pages are part of the total.
        rsvd: host.huge_pages_rsvd.min(free),
        surp: host.huge_pages_surp.min(total),
        hugetlb_kb: host
            .hugetlb
            .min(mem_total)
            .max(total.saturating_mul(host.huge_page_size)),
    }
}

impl ContainerMeminfo {
    /// The container's value of meminfo line `name`, whose host line reads `host_value` (`is_kb`: a size
    /// in kB rather than a page count); `None` to show the host's line unchanged.
    ///
    /// Each line is one of: the container's own figure (from its `memory.stat`, usage and limits); a
    /// figure the cgroup does not account, derived so that it cannot contradict the others (an upper
    /// bound from an accounted line that contains it, or 0 for kernel memory no cgroup is charged for);
    /// or the host's, where the line describes the host kernel rather than memory anyone uses.
    pub fn line_kb(&self, name: &str, host_value: u64, is_kb: bool) -> Option<u64> {
        let value = match name {
            "MemTotal" => self.mem_total,
            "MemFree" => self.mem_free,
            "MemAvailable" => self.mem_available,
            // The cgroup's block-device pages are among its file pages, so in Cached.
            "Buffers" => 0,
            "Cached" => self.cached,
            "SwapCached" => self.swap_cached,
            "Active" => self.active_anon.saturating_add(self.active_file),
            "Inactive" => self.inactive_anon.saturating_add(self.inactive_file),
            "Active(anon)" => self.active_anon,
            "Inactive(anon)" => self.inactive_anon,
            "Active(file)" => self.active_file,
            "Inactive(file)" => self.inactive_file,
            "Unevictable" => self.unevictable,
            // Not accounted per cgroup; mlocked pages are on the unevictable list.
            "Mlocked" => host_value.min(self.unevictable),
            // 32-bit highmem kernels: the container's memory shown as all low memory.
            "HighTotal" | "HighFree" => 0,
            "LowTotal" => self.mem_total,
            "LowFree" => self.mem_free,
            "SwapTotal" => self.swap.total_kb,
            "SwapFree" => self.swap.free_kb,
            "Zswap" => self.zswap,
            "Zswapped" => self.zswapped,
            "Dirty" => self.dirty,
            "Writeback" => self.writeback,
            "AnonPages" => self.anon_pages,
            "Mapped" => self.mapped,
            "Shmem" => self.shmem,
            // The kernel adds reclaimable kernel memory outside slab, which no cgroup is charged for.
            "KReclaimable" | "SReclaimable" => self.slab_reclaimable,
            "Slab" => self
                .slab_reclaimable
                .saturating_add(self.slab_unreclaimable),
            "SUnreclaim" => self.slab_unreclaimable,
            "KernelStack" => self.kernel_stack,
            "PageTables" => self.page_tables,
            "SecPageTables" => self.sec_page_tables,
            // Kernel memory no cgroup is charged for (NFS_Unstable is always 0 since Linux 5.8; the
            // balloon's pages are the machine's, given back to its hypervisor).
            "ShadowCallStack" | "NFS_Unstable" | "Bounce" | "WritebackTmp" | "Balloon" => 0,
            "CommitLimit" => self.commit_limit,
            "Committed_AS" => self.committed_as,
            "VmallocUsed" => self.vmalloc_used,
            "Percpu" => self.percpu,
            "AnonHugePages" => self.anon_huge,
            "ShmemHugePages" => self.shmem_huge,
            "FileHugePages" => self.file_huge,
            // Not accounted per cgroup; PMD-mapped huge pages are among the huge pages above.
            "ShmemPmdMapped" => host_value.min(self.shmem_huge),
            "FilePmdMapped" => host_value.min(self.file_huge),
            "CmaTotal" => self.cma_total,
            "CmaFree" => self.cma_free,
            // Memory a confidential guest has not accepted yet is free memory.
            "Unaccepted" => host_value.min(self.mem_free),
            "HugePages_Total" => self.huge_pages.total,
            "HugePages_Free" => self.huge_pages.free,
            "HugePages_Rsvd" => self.huge_pages.rsvd,
            "HugePages_Surp" => self.huge_pages.surp,
            "Hugetlb" => self.huge_pages.hugetlb_kb,
            // The host kernel's constants, not amounts of memory: the size of its vmalloc address range
            // (VmallocChunk is 0 since Linux 5.3, before that the largest free piece of that range), the
            // huge page size, and how its direct map covers the machine's physical address space (more
            // than MemTotal even on the host: holes and reserved memory are mapped too).
            "VmallocTotal" | "VmallocChunk" | "Hugepagesize" => return None,
            _ if name.starts_with("DirectMap") => return None,
            // Anything else (HardwareCorrupted, EarlyMemtestBad: the machine's RAM errors; lines of
            // kernels newer than this list): the host's, never more than the container's memory.
            _ if is_kb => host_value.min(self.mem_total),
            _ => return None,
        };
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::flat_keyed::parse_flat_keyed;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    /// kB in a GiB and a MiB, the unit of meminfo figures.
    const GIB_KB: u64 = 1 << 20;
    const MIB_KB: u64 = 1 << 10;

    fn state(limit: Option<u64>, usage: u64, swap: Swap) -> MemoryState {
        MemoryState {
            limit_bytes: limit,
            usage_bytes: usage,
            stat: MemoryStat::default(),
            swap,
        }
    }

    /// A host with `mem_kb` of memory, all of it free and available, and `swap_kb` of swap, all free.
    fn host(mem_kb: u64, swap_kb: u64) -> HostMeminfo {
        HostMeminfo {
            mem_total: mem_kb,
            mem_free: Some(mem_kb),
            mem_available: Some(mem_kb),
            swap_total: swap_kb,
            swap_free: Some(swap_kb),
            ..HostMeminfo::default()
        }
    }

    #[test]
    fn meminfo_limit_below_host_is_mem_total() {
        let info =
            state(Some(512 * MIB), 100 * MIB, Swap::NotAccounted).meminfo(&host(24 * GIB_KB, 0));
        assert_eq!(info.mem_total, 512 * MIB_KB);
        assert_eq!(info.mem_free, 412 * MIB_KB);
        assert_eq!(info.swap, SwapSpace::default());
    }

    #[test]
    fn meminfo_limit_above_host_is_capped() {
        let info = state(Some(64 * GIB), GIB, Swap::NotAccounted).meminfo(&host(24 * GIB_KB, 0));
        assert_eq!(info.mem_total, 24 * GIB_KB);
        assert_eq!(info.mem_free, 23 * GIB_KB);
    }

    #[test]
    fn meminfo_unlimited_container_on_busy_host_has_only_the_hosts_free_memory() {
        // The case: the host's other processes hold most of its memory.
        let mut busy = host(24 * GIB_KB, 0);
        busy.mem_free = Some(2 * GIB_KB);
        busy.mem_available = Some(8 * GIB_KB);
        let mut s = state(None, GIB, Swap::NotAccounted);
        s.stat.inactive_file = 512 * MIB;
        let info = s.meminfo(&busy);
        assert_eq!(info.mem_total, 24 * GIB_KB);
        assert_eq!(info.mem_free, 2 * GIB_KB);
        assert_eq!(info.mem_available, 8 * GIB_KB);
    }

    #[test]
    fn meminfo_limited_container_on_host_under_pressure_is_bounded_by_the_host() {
        let mut pressed = host(24 * GIB_KB, 0);
        pressed.mem_free = Some(100 * MIB_KB);
        pressed.mem_available = Some(300 * MIB_KB);
        let mut s = state(Some(2 * GIB), 512 * MIB, Swap::NotAccounted);
        s.stat.active_file = 256 * MIB;
        let info = s.meminfo(&pressed);
        assert_eq!(info.mem_total, 2 * GIB_KB);
        assert_eq!(info.mem_free, 100 * MIB_KB);
        assert_eq!(info.mem_available, 300 * MIB_KB);
        // The container's own figures are no bigger than what the host leaves it either.
        assert_eq!(
            state(Some(2 * GIB), 1900 * MIB, Swap::NotAccounted)
                .meminfo(&pressed)
                .mem_free,
            100 * MIB_KB
        );
    }

    #[test]
    fn meminfo_usage_above_limit_clamps_free_to_zero() {
        let info = state(Some(MIB), 2 * MIB, Swap::NotAccounted).meminfo(&host(GIB_KB, 0));
        assert_eq!(info.mem_free, 0);
        assert_eq!(info.mem_available, 0);
    }

    #[test]
    fn meminfo_available_adds_reclaimable_and_clamps() {
        let mut s = state(Some(100 * MIB), 90 * MIB, Swap::NotAccounted);
        s.stat.active_file = 5 * MIB;
        s.stat.inactive_file = 3 * MIB;
        s.stat.slab_reclaimable = Some(MIB);
        assert_eq!(s.meminfo(&host(GIB_KB, 0)).mem_available, 19 * MIB_KB);
        s.usage_bytes = 99 * MIB;
        s.stat.inactive_file = 200 * MIB;
        assert_eq!(s.meminfo(&host(GIB_KB, 0)).mem_available, 100 * MIB_KB);
    }

    #[test]
    fn meminfo_stat_larger_than_usage_is_clamped_to_it() {
        // memory.stat flushed before a big free, usage read after: the breakdown still fits.
        let mut s = state(Some(GIB), 10 * MIB, Swap::NotAccounted);
        s.stat.anon = Some(8 * MIB);
        s.stat.cache = 40 * MIB;
        s.stat.shmem = 30 * MIB;
        s.stat.active_anon = 8 * MIB;
        s.stat.inactive_file = 40 * MIB;
        s.stat.mapped = Some(40 * MIB);
        let info = s.meminfo(&host(8 * GIB_KB, 0));
        assert_eq!(info.mem_total - info.mem_free, 10 * MIB_KB);
        assert_eq!(info.anon_pages, 8 * MIB_KB);
        assert_eq!(info.cached, 2 * MIB_KB);
        assert_eq!(info.shmem, 2 * MIB_KB);
        assert_eq!(info.mapped, 2 * MIB_KB);
        assert_eq!(info.active_anon + info.inactive_file, 10 * MIB_KB);
    }

    #[test]
    fn meminfo_swap_limited_and_used() {
        let swap = Swap::Accounted {
            limit_bytes: Some(256 * MIB),
            usage_bytes: 56 * MIB,
            may_swap: true,
        };
        let info = state(Some(512 * MIB), 0, swap).meminfo(&host(GIB_KB, 2 * GIB_KB));
        assert_eq!(info.swap.total_kb, 256 * MIB_KB);
        assert_eq!(info.swap.free_kb, 200 * MIB_KB);
        assert_eq!(info.swap.used_kb(), 56 * MIB_KB);
    }

    #[test]
    fn meminfo_swap_unlimited_is_host_swap_and_its_free_is_the_hosts_at_most() {
        let swap = Swap::Accounted {
            limit_bytes: None,
            usage_bytes: 0,
            may_swap: true,
        };
        let info = state(None, 0, swap).meminfo(&host(GIB_KB, 2 * GIB_KB));
        assert_eq!(info.swap.total_kb, 2 * GIB_KB);
        assert_eq!(info.swap.free_kb, 2 * GIB_KB);
        let mut swapping_host = host(GIB_KB, 2 * GIB_KB);
        swapping_host.swap_free = Some(GIB_KB);
        let info = state(None, 0, swap).meminfo(&swapping_host);
        assert_eq!(info.swap.free_kb, GIB_KB);
    }

    #[test]
    fn meminfo_swappiness_zero_reports_only_swap_in_use() {
        let swap = Swap::Accounted {
            limit_bytes: None,
            usage_bytes: 4 * MIB,
            may_swap: false,
        };
        let info = state(Some(GIB), 0, swap).meminfo(&host(GIB_KB, 2 * GIB_KB));
        assert_eq!(info.swap.total_kb, 4 * MIB_KB);
        assert_eq!(info.swap.free_kb, 0);
    }

    #[test]
    fn meminfo_swap_cached_is_in_swap_and_out_of_cached() {
        let swap = Swap::Accounted {
            limit_bytes: None,
            usage_bytes: 6 * MIB,
            may_swap: true,
        };
        let mut s = state(Some(GIB), 100 * MIB, swap);
        s.stat.cache = 20 * MIB;
        s.stat.swap_cached = Some(4 * MIB);
        let info = s.meminfo(&host(8 * GIB_KB, GIB_KB));
        assert_eq!(info.swap_cached, 4 * MIB_KB);
        assert_eq!(info.cached, 16 * MIB_KB);
        // Without swap shown, no swap cache either: its pages stay in Cached.
        s.swap = Swap::NotAccounted;
        let info = s.meminfo(&host(8 * GIB_KB, GIB_KB));
        assert_eq!((info.swap_cached, info.cached), (0, 20 * MIB_KB));
    }

    #[test]
    fn meminfo_commit_limit_scales_the_hosts_ratio() {
        // Host: 8 GiB x 50 % + 1 GiB of swap.
        let mut h = host(8 * GIB_KB, GIB_KB);
        h.commit_limit = 5 * GIB_KB;
        h.committed_as = 6 * GIB_KB;
        let swap = Swap::Accounted {
            limit_bytes: Some(256 * MIB),
            usage_bytes: MIB,
            may_swap: true,
        };
        let mut s = state(Some(2 * GIB), 300 * MIB, swap);
        s.stat.anon = Some(200 * MIB);
        s.stat.cache = 50 * MIB;
        s.stat.shmem = 10 * MIB;
        let info = s.meminfo(&h);
        assert_eq!(info.commit_limit, GIB_KB + 256 * MIB_KB);
        assert_eq!(info.committed_as, 211 * MIB_KB);
    }

    #[test]
    fn meminfo_huge_pages_never_exceed_mem_total() {
        let mut h = host(64 * GIB_KB, 0);
        h.huge_page_size = 2048;
        h.huge_pages_total = 8192; // 16 GiB
        h.huge_pages_free = 8000;
        h.huge_pages_rsvd = 7000;
        h.huge_pages_surp = 10;
        h.hugetlb = 16 * GIB_KB;
        let info = state(Some(GIB), 0, Swap::NotAccounted).meminfo(&h);
        assert_eq!(info.huge_pages.total, 512);
        assert_eq!(info.huge_pages.free, 512);
        assert_eq!(info.huge_pages.rsvd, 512);
        assert_eq!(info.huge_pages.surp, 10);
        assert_eq!(info.huge_pages.hugetlb_kb, GIB_KB);
    }

    #[test]
    fn line_kb_sums_are_of_the_lines_shown_and_host_constants_pass() {
        let mut s = state(Some(GIB), 100 * MIB, Swap::NotAccounted);
        s.stat.active_anon = 3 * MIB + 512;
        s.stat.active_file = 5 * MIB + 512;
        s.stat.slab_reclaimable = Some(2 * MIB + 700);
        s.stat.slab_unreclaimable = Some(MIB + 700);
        let info = s.meminfo(&host(8 * GIB_KB, 0));
        let line = |name| info.line_kb(name, 999_999_999, true).unwrap();
        assert_eq!(line("Active"), line("Active(anon)") + line("Active(file)"));
        assert_eq!(line("Slab"), line("SReclaimable") + line("SUnreclaim"));
        assert_eq!(line("KReclaimable"), line("SReclaimable"));
        assert_eq!(line("Mlocked"), 0);
        assert_eq!(line("HardwareCorrupted"), GIB_KB);
        for global in [
            "VmallocTotal",
            "VmallocChunk",
            "Hugepagesize",
            "DirectMap1G",
        ] {
            assert_eq!(info.line_kb(global, 5, true), None, "{global}");
        }
        assert_eq!(info.line_kb("SomeFutureCount", 5, false), None);
    }

    #[test]
    fn meminfo_reclaimable_at_u64_max_saturates_to_mem_total() {
        let mut s = state(Some(100 * MIB), 90 * MIB, Swap::NotAccounted);
        s.stat.active_file = u64::MAX;
        s.stat.inactive_file = u64::MAX;
        s.stat.slab_reclaimable = Some(u64::MAX);
        let info = s.meminfo(&host(GIB_KB, 0));
        assert_eq!(info.mem_available, 100 * MIB_KB);
        assert_eq!(info.mem_free, 10 * MIB_KB);
    }

    #[test]
    fn meminfo_every_input_at_u64_max_stays_within_bounds() {
        let swap = Swap::Accounted {
            limit_bytes: Some(u64::MAX),
            usage_bytes: u64::MAX,
            may_swap: true,
        };
        let mut s = state(Some(u64::MAX), u64::MAX, swap);
        s.stat.active_file = u64::MAX;
        s.stat.inactive_file = u64::MAX;
        s.stat.slab_reclaimable = Some(u64::MAX);
        let mut h = host(u64::MAX, u64::MAX);
        h.commit_limit = u64::MAX;
        h.huge_page_size = 1;
        h.huge_pages_total = u64::MAX;
        let info = s.meminfo(&h);
        assert_eq!(info.mem_total, u64::MAX / 1024);
        assert_eq!(info.mem_free, 0);
        assert!(info.mem_available <= info.mem_total);
        assert_eq!(info.swap.total_kb, u64::MAX / 1024);
        assert_eq!(info.swap.free_kb, 0);
        assert!(info.huge_pages.hugetlb_kb <= info.mem_total);
    }

    #[test]
    fn swap_from_v1_memsw_is_the_part_beyond_memory() {
        let swap =
            Swap::from_v1_memsw(Some(768 * MIB), 110 * MIB, Some(512 * MIB), 100 * MIB, true);
        assert_eq!(
            swap,
            Swap::Accounted {
                limit_bytes: Some(256 * MIB),
                usage_bytes: 10 * MIB,
                may_swap: true
            }
        );
        // No memory limit: the whole memsw limit may be swap.
        let Swap::Accounted { limit_bytes, .. } = Swap::from_v1_memsw(Some(GIB), 0, None, 0, true)
        else {
            unreachable!()
        };
        assert_eq!(limit_bytes, Some(GIB));
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
             shmem 16\nslab_reclaimable 30\nslab_unreclaimable 12\nslab 42\nkernel_stack 64\npagetables 128\n\
             sec_pagetables 3\npercpu 5\nvmalloc 7\nshmem_thp 9\nfile_thp 11\nzswap 13\nzswapped 17\n\
             swapcached 19\n",
        );
        let stat = MemoryStat::from_v2(&raw);
        assert_eq!(stat.cache, 4096);
        assert_eq!(stat.mapped, Some(1024));
        assert_eq!(stat.dirty, Some(8));
        assert_eq!(stat.writeback, Some(4));
        assert_eq!(stat.anon_huge, Some(2048));
        assert_eq!(stat.slab, Some(42));
        assert_eq!(stat.anon_pages(), 100);
        assert_eq!(
            (stat.sec_page_tables, stat.percpu, stat.vmalloc),
            (Some(3), Some(5), Some(7))
        );
        assert_eq!((stat.shmem_huge, stat.file_huge), (Some(9), Some(11)));
        assert_eq!((stat.zswap, stat.zswapped), (Some(13), Some(17)));
        assert_eq!(stat.swap_cached, Some(19));
    }

    #[test]
    fn memory_stat_v2_slab_sum_when_kernel_lacks_total() {
        let raw = parse_flat_keyed("slab_reclaimable 30\nslab_unreclaimable 12\n");
        assert_eq!(MemoryStat::from_v2(&raw).slab, Some(42));
    }

    #[test]
    fn memory_stat_v1_uses_hierarchical_totals() {
        let raw = parse_flat_keyed(
            "cache 1\ntotal_cache 4096\ntotal_rss 350\ntotal_active_anon 300\ntotal_inactive_anon 200\n\
             total_shmem 100\ntotal_mapped_file 7\ntotal_swapcached 3\n",
        );
        let stat = MemoryStat::from_v1(&raw);
        assert_eq!(stat.cache, 4096);
        assert_eq!(stat.anon_pages(), 350);
        assert_eq!(stat.mapped, Some(7));
        assert_eq!(stat.swap_cached, Some(3));
        assert_eq!(stat.slab, None);
        // Without `rss` (never seen, but cheap to survive): the anon LRU lists minus shmem.
        let raw =
            parse_flat_keyed("total_active_anon 300\ntotal_inactive_anon 200\ntotal_shmem 100\n");
        assert_eq!(MemoryStat::from_v1(&raw).anon_pages(), 400);
    }
}
