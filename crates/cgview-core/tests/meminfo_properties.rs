//! For generated hosts and containers (cgroup v1 and v2 `memory.stat`, limits, usage, memsw or
//! `memory.swap.*` files, swappiness), no line of the container's `/proc/meminfo` contradicts another,
//! its `/proc/swaps`, or what the host has. The inputs are deliberately not always consistent with one
//! another (a `memory.stat` flushed before a usage read, a host file with odd figures): the rules must
//! hold whatever the kernel hands over.

use cgview_core::model::memory::{MemoryStat, MemoryState, Swap};
use cgview_core::parse::flat_keyed::parse_flat_keyed;
use cgview_core::parse::meminfo::{meminfo_value, parse_host_meminfo, parse_meminfo_line};
use cgview_core::render::meminfo::render_meminfo;
use cgview_core::render::swaps::render_swaps;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const KIB: u64 = 1024;

/// The host's lines: a Linux 6.18 x86_64 meminfo, plus lines other configurations print (highmem, CMA,
/// unaccepted memory, arm64's shadow call stacks, memory errors) and one no kernel prints yet.
const HOST_LINES: &[&str] = &[
    "MemTotal",
    "MemFree",
    "MemAvailable",
    "Buffers",
    "Cached",
    "SwapCached",
    "Active",
    "Inactive",
    "Active(anon)",
    "Inactive(anon)",
    "Active(file)",
    "Inactive(file)",
    "Unevictable",
    "Mlocked",
    "HighTotal",
    "HighFree",
    "LowTotal",
    "LowFree",
    "SwapTotal",
    "SwapFree",
    "Zswap",
    "Zswapped",
    "Dirty",
    "Writeback",
    "AnonPages",
    "Mapped",
    "Shmem",
    "KReclaimable",
    "Slab",
    "SReclaimable",
    "SUnreclaim",
    "KernelStack",
    "ShadowCallStack",
    "PageTables",
    "SecPageTables",
    "NFS_Unstable",
    "Bounce",
    "WritebackTmp",
    "CommitLimit",
    "Committed_AS",
    "VmallocTotal",
    "VmallocUsed",
    "VmallocChunk",
    "Percpu",
    "EarlyMemtestBad",
    "HardwareCorrupted",
    "AnonHugePages",
    "ShmemHugePages",
    "ShmemPmdMapped",
    "FileHugePages",
    "FilePmdMapped",
    "CmaTotal",
    "CmaFree",
    "Unaccepted",
    "Balloon",
    "GPUActive",
    "HugePages_Total",
    "HugePages_Free",
    "HugePages_Rsvd",
    "HugePages_Surp",
    "Hugepagesize",
    "Hugetlb",
    "DirectMap4k",
    "DirectMap2M",
    "DirectMap1G",
];

/// Lines that describe the host kernel, not memory anyone uses: shown unchanged.
fn is_host_constant(name: &str) -> bool {
    matches!(name, "VmallocTotal" | "VmallocChunk" | "Hugepagesize")
        || name.starts_with("DirectMap")
}

/// Lines that may exceed `MemTotal`: swap, and the commit figures (RAM x ratio + swap).
fn may_exceed_mem_total(name: &str) -> bool {
    matches!(
        name,
        "SwapTotal" | "SwapFree" | "Zswapped" | "CommitLimit" | "Committed_AS"
    ) || name.starts_with("HugePages_")
}

#[derive(Debug, Clone)]
struct Host {
    mem_total_kb: u64,
    /// One value per [`HOST_LINES`] entry after `MemTotal`, each a fraction (per mille, up to 2x) of
    /// MemTotal, or of the huge page pool for the page counts.
    per_mille: Vec<u64>,
    swap_kb: u64,
    huge_page_kb: u64,
}

impl Host {
    fn meminfo(&self) -> String {
        let mut text = String::new();
        for (index, name) in HOST_LINES.iter().enumerate() {
            let scaled = |per_mille: u64| {
                u64::try_from(u128::from(self.mem_total_kb) * u128::from(per_mille) / 1000).unwrap()
            };
            let per_mille = self.per_mille.get(index).copied().unwrap_or(0);
            let (value, unit) = match *name {
                "MemTotal" => (self.mem_total_kb, " kB"),
                "SwapTotal" => (self.swap_kb, " kB"),
                "SwapFree" => (self.swap_kb * per_mille.min(1000) / 1000, " kB"),
                "Hugepagesize" => (self.huge_page_kb, " kB"),
                "VmallocTotal" => (34_359_738_367, " kB"),
                _ if name.starts_with("HugePages_") => (per_mille, ""),
                _ => (scaled(per_mille), " kB"),
            };
            text.push_str(&format!("{:<16}{value:>8}{unit}\n", format!("{name}:")));
        }
        text
    }
}

fn host() -> impl Strategy<Value = Host> {
    (
        // 1 MiB to 4 TiB.
        KIB..(4u64 << 30),
        prop::collection::vec(0u64..=2000, HOST_LINES.len()),
        prop_oneof![Just(0u64), 0u64..(64 << 20)],
        prop_oneof![Just(2048u64), Just(1 << 20), Just(64)],
    )
        .prop_map(|(mem_total_kb, per_mille, swap_kb, huge_page_kb)| Host {
            mem_total_kb,
            per_mille,
            swap_kb,
            huge_page_kb,
        })
}

#[derive(Debug, Clone, Copy)]
enum Version {
    V1,
    V2,
}

#[derive(Debug, Clone)]
struct Container {
    version: Version,
    /// Fraction of the host's memory, per mille (up to 3x: limits above the host's memory exist).
    limit_per_mille: Option<u64>,
    /// Usage as a fraction of the limit (or of the host's memory), per mille; over 1000 is over the limit.
    usage_per_mille: u64,
    /// Each memory.stat value as a fraction of usage, per mille: over 1000 when stat and usage disagree.
    stat_per_mille: Vec<u64>,
    /// Swap limit and usage as fractions of the host's swap, per mille.
    swap: Option<(Option<u64>, u64)>,
    swappiness_zero: bool,
}

const V1_STAT_KEYS: &[&str] = &[
    "total_cache",
    "total_rss",
    "total_rss_huge",
    "total_shmem",
    "total_mapped_file",
    "total_dirty",
    "total_writeback",
    "total_swapcached",
    "total_inactive_anon",
    "total_active_anon",
    "total_inactive_file",
    "total_active_file",
    "total_unevictable",
];

const V2_STAT_KEYS: &[&str] = &[
    "anon",
    "file",
    "kernel_stack",
    "pagetables",
    "sec_pagetables",
    "percpu",
    "vmalloc",
    "shmem",
    "zswap",
    "zswapped",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "swapcached",
    "anon_thp",
    "file_thp",
    "shmem_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
];

fn container() -> impl Strategy<Value = Container> {
    (
        prop_oneof![Just(Version::V1), Just(Version::V2)],
        prop::option::of(0u64..=3000),
        0u64..=1200,
        prop::collection::vec(
            prop_oneof![4 => 0u64..=400, 1 => 0u64..=1500],
            V2_STAT_KEYS.len(),
        ),
        prop::option::of((prop::option::of(0u64..=1500), 0u64..=1200)),
        any::<bool>(),
    )
        .prop_map(
            |(version, limit_per_mille, usage_per_mille, stat_per_mille, swap, swappiness_zero)| {
                Container {
                    version,
                    limit_per_mille,
                    usage_per_mille,
                    stat_per_mille,
                    swap,
                    swappiness_zero,
                }
            },
        )
}

fn fraction(whole: u64, per_mille: u64) -> u64 {
    u64::try_from(u128::from(whole) * u128::from(per_mille) / 1000).unwrap()
}

impl Container {
    /// The memory state the daemon's reader makes of this container's cgroup files.
    fn state(&self, host: &Host) -> MemoryState {
        let host_bytes = host.mem_total_kb * KIB;
        let limit_bytes = self.limit_per_mille.map(|p| fraction(host_bytes, p));
        let usage_bytes = fraction(limit_bytes.unwrap_or(host_bytes), self.usage_per_mille);
        let keys = match self.version {
            Version::V1 => V1_STAT_KEYS,
            Version::V2 => V2_STAT_KEYS,
        };
        let stat_text: String = keys
            .iter()
            .zip(&self.stat_per_mille)
            .map(|(key, &p)| format!("{key} {}\n", fraction(usage_bytes, p)))
            .collect();
        let stat = parse_flat_keyed(&stat_text);
        let host_swap = host.swap_kb * KIB;
        let (stat, swap) = match self.version {
            Version::V1 => {
                let swap = self.swap.map_or(Swap::NotAccounted, |(limit, usage)| {
                    // memsw = memory + swap, limit and usage alike.
                    let memsw_limit =
                        limit.map(|p| limit_bytes.unwrap_or(0) + fraction(host_swap, p));
                    let memsw_usage = usage_bytes + fraction(host_swap, usage);
                    Swap::from_v1_memsw(
                        memsw_limit,
                        memsw_usage,
                        limit_bytes,
                        usage_bytes,
                        !self.swappiness_zero,
                    )
                });
                (MemoryStat::from_v1(&stat), swap)
            }
            Version::V2 => {
                let swap = self
                    .swap
                    .map_or(Swap::NotAccounted, |(limit, usage)| Swap::Accounted {
                        limit_bytes: limit.map(|p| fraction(host_swap, p)),
                        usage_bytes: fraction(host_swap, usage),
                        may_swap: true,
                    });
                (MemoryStat::from_v2(&stat), swap)
            }
        };
        MemoryState {
            limit_bytes,
            usage_bytes,
            stat,
            swap,
        }
    }
}

/// Fails the case with the texts involved.
macro_rules! check {
    ($cond:expr, $texts:expr, $($what:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!(
                "{}\n--- host\n{}\n--- container\n{}\n--- swaps\n{}",
                format!($($what)+),
                $texts.0,
                $texts.1,
                $texts.2
            )));
        }
    };
}

fn check_container_view(host: &Host, container: &Container) -> Result<(), TestCaseError> {
    let host_text = host.meminfo();
    let memory = container.state(host);
    let out = render_meminfo(&host_text, &memory).unwrap();
    let swap = memory
        .meminfo(&parse_host_meminfo(&host_text).unwrap())
        .swap;
    let swaps = render_swaps(
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/vda2    partition\t1048572\t\t0\t\t-2\n",
        swap,
    );
    let texts = (&host_text, &out, &swaps);
    let kb = |name: &str| meminfo_value(&out, name).unwrap();
    let host_kb = |name: &str| meminfo_value(&host_text, name).unwrap();

    // Every line of the host's, in its order.
    let names = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split(':').next().unwrap().to_owned())
            .collect()
    };
    check!(names(&out) == names(&host_text), texts, "lines differ");

    let total = kb("MemTotal");
    let free = kb("MemFree");
    let available = kb("MemAvailable");
    check!(
        total <= host_kb("MemTotal"),
        texts,
        "MemTotal above the host's"
    );
    if let Some(limit) = memory.limit_bytes {
        check!(total <= limit / KIB, texts, "MemTotal above the limit");
    }

    // Nothing exceeds MemTotal but the host kernel's constants and swap and commit figures.
    for line in out.lines().filter_map(parse_meminfo_line) {
        if is_host_constant(line.name) {
            check!(
                line.value == host_kb(line.name),
                texts,
                "{} is not the host's",
                line.name
            );
        } else if !may_exceed_mem_total(line.name) {
            check!(line.value <= total, texts, "{} above MemTotal", line.name);
        }
    }

    // Free and available: never above the host's, and in the host's order.
    check!(
        free <= host_kb("MemFree"),
        texts,
        "MemFree above the host's"
    );
    check!(
        available <= host_kb("MemAvailable"),
        texts,
        "MemAvailable above the host's"
    );
    if host_kb("MemAvailable") >= host_kb("MemFree") {
        check!(available >= free, texts, "MemAvailable below MemFree");
    }

    // Sums are sums of the lines shown.
    check!(
        kb("Active") == kb("Active(anon)") + kb("Active(file)"),
        texts,
        "Active"
    );
    check!(
        kb("Inactive") == kb("Inactive(anon)") + kb("Inactive(file)"),
        texts,
        "Inactive"
    );
    check!(
        kb("Slab") == kb("SReclaimable") + kb("SUnreclaim"),
        texts,
        "Slab"
    );
    check!(
        kb("KReclaimable") >= kb("SReclaimable"),
        texts,
        "KReclaimable"
    );
    check!(
        kb("LowTotal") + kb("HighTotal") == total,
        texts,
        "LowTotal + HighTotal"
    );
    check!(
        kb("LowFree") + kb("HighFree") == free,
        texts,
        "LowFree + HighFree"
    );

    // Parts never exceed what holds them.
    let used = total - free;
    for (part, whole) in [
        ("Shmem", "Cached"),
        ("Mapped", "Cached"),
        ("Dirty", "Cached"),
        ("AnonHugePages", "AnonPages"),
        ("ShmemHugePages", "Shmem"),
        ("ShmemPmdMapped", "ShmemHugePages"),
        ("FilePmdMapped", "FileHugePages"),
        ("Mlocked", "Unevictable"),
        ("CmaFree", "CmaTotal"),
        ("CmaFree", "MemFree"),
        ("Unaccepted", "MemFree"),
        ("HugePages_Free", "HugePages_Total"),
        ("HugePages_Rsvd", "HugePages_Free"),
        ("HugePages_Surp", "HugePages_Total"),
    ] {
        check!(kb(part) <= kb(whole), texts, "{part} above {whole}");
    }
    check!(
        kb("FileHugePages") + kb("Shmem") <= kb("Cached"),
        texts,
        "file and shmem huge pages above Cached"
    );
    check!(
        kb("HugePages_Total") * kb("Hugepagesize") <= kb("Hugetlb"),
        texts,
        "the default pool above Hugetlb"
    );

    // What is in use fits in MemTotal - MemFree: the disjoint pools, the LRU lists, and what free(1)
    // (procps before 4) subtracts to find "used".
    let pools: u64 = [
        "AnonPages",
        "Cached",
        "SwapCached",
        "Slab",
        "KernelStack",
        "PageTables",
        "SecPageTables",
        "Percpu",
        "VmallocUsed",
        "Zswap",
    ]
    .iter()
    .map(|name| kb(name))
    .sum();
    check!(pools <= used, texts, "pools {pools} above used {used}");
    let lru = kb("Active") + kb("Inactive") + kb("Unevictable");
    check!(lru <= used, texts, "LRU lists {lru} above used {used}");
    check!(kb("Writeback") <= used, texts, "Writeback above used");
    check!(
        free + kb("Buffers") + kb("Cached") + kb("SReclaimable") <= total,
        texts,
        "free's used would be negative"
    );

    // Swap: within the host's, and what /proc/swaps shows at the same moment.
    let swap_total = kb("SwapTotal");
    let swap_free = kb("SwapFree");
    check!(swap_free <= swap_total, texts, "SwapFree above SwapTotal");
    check!(
        swap_total <= host_kb("SwapTotal"),
        texts,
        "SwapTotal above the host's"
    );
    check!(
        swap_free <= host_kb("SwapFree"),
        texts,
        "SwapFree above the host's"
    );
    let swap_used = swap_total - swap_free;
    check!(
        kb("SwapCached") <= swap_used,
        texts,
        "SwapCached above swap in use"
    );
    check!(
        kb("Zswapped") <= swap_used,
        texts,
        "Zswapped above swap in use"
    );
    let swaps_lines: Vec<Vec<&str>> = swaps
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    if swap_total == 0 {
        check!(
            swaps_lines.is_empty(),
            texts,
            "swaps lists swap meminfo has not"
        );
    } else {
        let expected = [
            "none".to_owned(),
            "virtual".to_owned(),
            swap_total.to_string(),
            swap_used.to_string(),
            "0".to_owned(),
        ];
        check!(
            swaps_lines.len() == 1 && swaps_lines[0] == expected,
            texts,
            "swaps and meminfo disagree"
        );
    }

    // Commit figures: the kernel's formula on the container's memory and swap, never above the host's.
    if host_kb("CommitLimit") >= host_kb("SwapTotal") {
        check!(
            kb("CommitLimit") <= host_kb("CommitLimit"),
            texts,
            "CommitLimit above the host's"
        );
    }
    check!(
        kb("CommitLimit") >= swap_total,
        texts,
        "CommitLimit below SwapTotal"
    );
    check!(
        kb("Committed_AS") <= host_kb("Committed_AS"),
        texts,
        "Committed_AS above the host's"
    );
    check!(
        kb("Committed_AS") <= used + swap_used,
        texts,
        "Committed_AS above memory and swap in use"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn no_meminfo_line_contradicts_another(host in host(), container in container()) {
        check_container_view(&host, &container)?;
    }
}

/// The two cases by hand, so a broken generator cannot hide them: an unlimited container on a
/// busy host, and a limited one on a host under pressure.
#[test]
fn busy_and_pressed_hosts_bound_free_and_available() {
    for (limit_per_mille, host_free, host_available) in [(None, 100, 300), (Some(250), 20, 60)] {
        let mut per_mille = vec![100; HOST_LINES.len()];
        per_mille[1] = host_free;
        per_mille[2] = host_available;
        let host = Host {
            mem_total_kb: 24 << 20,
            per_mille,
            swap_kb: 0,
            huge_page_kb: 2048,
        };
        let container = Container {
            version: Version::V1,
            limit_per_mille,
            usage_per_mille: 50,
            stat_per_mille: vec![10; V2_STAT_KEYS.len()],
            swap: None,
            swappiness_zero: false,
        };
        check_container_view(&host, &container).unwrap();
        let out = render_meminfo(&host.meminfo(), &container.state(&host)).unwrap();
        assert_eq!(
            meminfo_value(&out, "MemFree"),
            meminfo_value(&host.meminfo(), "MemFree")
        );
        assert_eq!(
            meminfo_value(&out, "MemAvailable"),
            meminfo_value(&host.meminfo(), "MemAvailable")
        );
    }
}
