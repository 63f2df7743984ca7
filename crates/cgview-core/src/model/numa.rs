//! The NUMA nodes a container is shown, and its memory split over them so that every node's
//! `meminfo` agrees with the container's `/proc/meminfo`.

use crate::parse::cpuset::CpuSet;
use crate::parse::meminfo::{meminfo_value, parse_meminfo_line};
use crate::parse::numa_stat::NumaStat;
use crate::parse::ParseError;

/// A set of node ids. Node lists (`online`, `cpuset.mems`) have the CPU lists' format and bounds.
pub type NodeSet = CpuSet;

/// The nodes shown to a container: its effective memory nodes (`cpuset.mems` as the kernel applies
/// them) within the host's online nodes. A container without a memory node set of its own, or one
/// that names no online node, is shown every online node, as the kernel lets it use them all.
pub fn visible_nodes(host_online: &NodeSet, mems: Option<&NodeSet>) -> NodeSet {
    match mems.map(|mems| mems.intersection(host_online)) {
        Some(within) if !within.is_empty() => within,
        _ => host_online.clone(),
    }
}

/// Splits `total` into one part per weight, proportional to the weights, summing to exactly `total`
/// (largest remainder; a tie goes to the earlier part). All-zero weights split evenly.
pub fn split_exact(total: u64, weights: &[u64]) -> Vec<u64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let even = vec![1u64; weights.len()];
    let weights = if weights.iter().all(|&w| w == 0) {
        &even[..]
    } else {
        weights
    };
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (index, &weight) in weights.iter().enumerate() {
        let exact = u128::from(total) * u128::from(weight);
        // exact / sum <= total, so it fits.
        parts.push((exact / sum) as u64);
        remainders.push((exact % sum, index));
    }
    let assigned: u64 = parts.iter().sum();
    // Each part lost less than 1, so fewer than weights.len() units are left.
    let left = total - assigned;
    remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, index) in remainders.iter().take(left as usize) {
        parts[index] += 1;
    }
    parts
}

/// Splits `total` as [`split_exact`] does, but no part above its cap: a part that would exceed its cap
/// gets the cap, and what it could not take goes to the others by their weights (by the room they have
/// left when their weights are all 0). When the caps together hold less than `total`, every part gets
/// its cap and the rest is split by the weights: the sum is `total` whatever the caps.
pub fn split_capped(total: u64, weights: &[u64], caps: &[u64]) -> Vec<u64> {
    let room: u128 = caps.iter().map(|&c| u128::from(c)).sum();
    if u128::from(total) >= room {
        let beyond = total - room as u64;
        return caps
            .iter()
            .zip(split_exact(beyond, weights))
            .map(|(&cap, more)| cap + more)
            .collect();
    }
    let mut parts = vec![0u64; weights.len()];
    let mut open: Vec<bool> = caps.iter().map(|&cap| cap > 0).collect();
    let mut left = total;
    // Each round either places everything or closes at least one part at its cap.
    while left > 0 {
        let mut round: Vec<u64> = weights
            .iter()
            .zip(&open)
            .map(|(&w, &o)| if o { w } else { 0 })
            .collect();
        if round.iter().all(|&w| w == 0) {
            round = caps
                .iter()
                .zip(&parts)
                .zip(&open)
                .map(|((&cap, &part), &o)| if o { cap - part } else { 0 })
                .collect();
        }
        let shares = split_exact(left, &round);
        let over: Vec<usize> = (0..parts.len())
            .filter(|&i| open[i] && parts[i] + shares[i] > caps[i])
            .collect();
        if over.is_empty() {
            for (part, share) in parts.iter_mut().zip(shares) {
                *part += share;
            }
            break;
        }
        for i in over {
            left -= caps[i] - parts[i];
            parts[i] = caps[i];
            open[i] = false;
        }
    }
    parts
}

/// Which cgroup version's `memory.numa_stat` weighs the split (v1 has four keys in pages, v2 one per
/// `memory.stat` key in bytes; only proportions are used, so the unit does not matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumaStatVersion {
    V1,
    V2,
}

/// A node `meminfo` line made from the container's `/proc/meminfo`: which line it splits, and the
/// `memory.numa_stat` keys whose per-node values weigh the split on v2 and on v1. Lines with no keys,
/// or whose keys are 0 on every node, are split as the container's used memory is.
struct SplitLine {
    node_line: &'static str,
    container_line: &'static str,
    v2: &'static [&'static str],
    v1: &'static [&'static str],
}

const fn line(
    node_line: &'static str,
    container_line: &'static str,
    v2: &'static [&'static str],
    v1: &'static [&'static str],
) -> SplitLine {
    SplitLine {
        node_line,
        container_line,
        v2,
        v1,
    }
}

/// Every node meminfo line in kB, in the kernel's order (6.1-6.18), but `MemTotal`, `MemFree` and
/// `MemUsed` (made apart) and `HugePages_*` (counts of the host's per-node pools, kept). v1 splits only
/// `anon`, `file` and `unevictable` by node: the anon lines follow `anon`, the file lines `file`.
const SPLIT_LINES: [SplitLine; 30] = [
    line("SwapCached", "SwapCached", &["swapcached"], &[]),
    line(
        "Active",
        "Active",
        &["active_anon", "active_file"],
        &["anon", "file"],
    ),
    line(
        "Inactive",
        "Inactive",
        &["inactive_anon", "inactive_file"],
        &["anon", "file"],
    ),
    line("Active(anon)", "Active(anon)", &["active_anon"], &["anon"]),
    line(
        "Inactive(anon)",
        "Inactive(anon)",
        &["inactive_anon"],
        &["anon"],
    ),
    line("Active(file)", "Active(file)", &["active_file"], &["file"]),
    line(
        "Inactive(file)",
        "Inactive(file)",
        &["inactive_file"],
        &["file"],
    ),
    line(
        "Unevictable",
        "Unevictable",
        &["unevictable"],
        &["unevictable"],
    ),
    line("Mlocked", "Mlocked", &["unevictable"], &["unevictable"]),
    line("Dirty", "Dirty", &["file_dirty"], &["file"]),
    line("Writeback", "Writeback", &["file_writeback"], &["file"]),
    // The kernel's node FilePages is its page cache, which /proc/meminfo shows as Cached.
    line("FilePages", "Cached", &["file"], &["file"]),
    line("Mapped", "Mapped", &["file_mapped"], &["file"]),
    line("AnonPages", "AnonPages", &["anon"], &["anon"]),
    line("Shmem", "Shmem", &["shmem"], &["anon"]),
    line("KernelStack", "KernelStack", &["kernel_stack"], &[]),
    line("PageTables", "PageTables", &["pagetables"], &[]),
    line("SecPageTables", "SecPageTables", &["sec_pagetables"], &[]),
    line("NFS_Unstable", "NFS_Unstable", &[], &[]),
    line("Bounce", "Bounce", &[], &[]),
    line("WritebackTmp", "WritebackTmp", &[], &[]),
    line("KReclaimable", "KReclaimable", &["slab_reclaimable"], &[]),
    line(
        "Slab",
        "Slab",
        &["slab_reclaimable", "slab_unreclaimable"],
        &[],
    ),
    line("SReclaimable", "SReclaimable", &["slab_reclaimable"], &[]),
    line("SUnreclaim", "SUnreclaim", &["slab_unreclaimable"], &[]),
    line("AnonHugePages", "AnonHugePages", &["anon_thp"], &["anon"]),
    line(
        "ShmemHugePages",
        "ShmemHugePages",
        &["shmem_thp"],
        &["anon"],
    ),
    line(
        "ShmemPmdMapped",
        "ShmemPmdMapped",
        &["shmem_thp"],
        &["anon"],
    ),
    line("FileHugePages", "FileHugePages", &["file_thp"], &["file"]),
    line("FilePmdMapped", "FilePmdMapped", &["file_thp"], &["file"]),
];

/// The v2 keys whose sum on a node is the cgroup's memory there (what `memory.current` holds but
/// per-CPU, socket and vmalloc memory, which the kernel does not split by node).
const V2_USED: [&str; 7] = [
    "anon",
    "file",
    "kernel_stack",
    "pagetables",
    "sec_pagetables",
    "slab_reclaimable",
    "slab_unreclaimable",
];

/// A node as the host shows it: its id and its own `meminfo` text.
#[derive(Debug, Clone, Copy)]
pub struct HostNode<'a> {
    pub id: u32,
    pub meminfo: &'a str,
}

/// A node's share of the container's memory: `meminfo` values in kB by line name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMemory {
    pub id: u32,
    values: Vec<(&'static str, u64)>,
}

impl NodeMemory {
    /// The node's value of line `name` in kB; `None` for a line that keeps the host's value.
    pub fn kb(&self, name: &str) -> Option<u64> {
        self.values
            .iter()
            .find_map(|&(line, kb)| (line == name).then_some(kb))
    }
}

/// Splits the container's memory, as its `/proc/meminfo` (`container_meminfo`, the text it reads)
/// shows it, over `nodes`, its visible nodes:
/// - `MemTotal` in proportion to the host nodes' sizes (none above its node's while the container's
///   total fits in its nodes), so a node's total changes only with the container's;
/// - used memory (`MemTotal - MemFree`) in proportion to the container's memory on each node
///   (`memory.numa_stat`), or to the host's use of the nodes when the cgroup has none there yet, within
///   each node's total, and at least what leaves no node more free memory than the host has free
///   there (when the container's free memory fits in its nodes' free memory);
/// - `MemFree` is each node's total less its used memory: the nodes' `MemTotal`, `MemFree` and
///   `MemUsed` add up to the container's;
/// - every other line in [`SPLIT_LINES`] is the container's value of that line split by the node
///   values of its `memory.numa_stat` keys; each line's node values add up to the container's value.
///
/// Fails when the container's text has no `MemTotal` or `MemFree`, or a node's text has no `MemTotal`.
pub fn split_memory(
    container_meminfo: &str,
    nodes: &[HostNode<'_>],
    stat: &NumaStat,
    version: NumaStatVersion,
) -> Result<Vec<NodeMemory>, ParseError> {
    let container = |name| {
        meminfo_value(container_meminfo, name)
            .ok_or_else(|| ParseError::new("container meminfo", name))
    };
    let total_kb = container("MemTotal")?;
    let free_kb = container("MemFree")?.min(total_kb);
    let used_kb = total_kb - free_kb;
    let host_totals = nodes
        .iter()
        .map(|node| {
            node_meminfo_value(node.meminfo, "MemTotal")
                .ok_or_else(|| ParseError::new("node meminfo", node.meminfo))
        })
        .collect::<Result<Vec<u64>, _>>()?;
    let host_free: Vec<u64> = nodes
        .iter()
        .zip(&host_totals)
        .map(|(node, &total)| {
            node_meminfo_value(node.meminfo, "MemFree").map_or(0, |f| f.min(total))
        })
        .collect();
    let host_used: Vec<u64> = host_totals
        .iter()
        .zip(&host_free)
        .map(|(total, free)| total - free)
        .collect();

    let weights = |keys: &[&str]| -> Vec<u64> {
        nodes
            .iter()
            .map(|node| {
                keys.iter()
                    .map(|key| stat_value(stat, version, key, node.id))
                    .fold(0u64, u64::saturating_add)
            })
            .collect()
    };
    let either = |first: Vec<u64>, second: &[u64]| -> Vec<u64> {
        if first.iter().any(|&w| w > 0) {
            first
        } else {
            second.to_vec()
        }
    };
    let cgroup_used = match version {
        NumaStatVersion::V2 => weights(&V2_USED),
        NumaStatVersion::V1 => weights(&["total"]),
    };
    let used_weights = either(either(cgroup_used, &host_used), &host_totals);
    // Totals follow the nodes' sizes only, so that they stay put from one read to the next while use
    // moves (numactl reads node after node), and fit in the host's nodes when the container's total
    // does (its /proc/meminfo is capped by its nodes).
    let totals = split_capped(total_kb, &host_totals, &host_totals);
    // A node is shown at most the free memory the host has there: the rest of its share counts as used
    // (possible whenever the container's free memory fits in its nodes' free memory).
    let least_used: Vec<u64> = totals
        .iter()
        .zip(&host_free)
        .map(|(&total, &free)| total.saturating_sub(free))
        .collect();
    let least: u64 = least_used.iter().sum();
    let used = if least <= used_kb {
        let room: Vec<u64> = totals.iter().zip(&least_used).map(|(t, l)| t - l).collect();
        split_capped(used_kb - least, &used_weights, &room)
            .into_iter()
            .zip(&least_used)
            .map(|(more, least)| more + least)
            .collect()
    } else {
        split_capped(used_kb, &used_weights, &totals)
    };
    let free: Vec<u64> = totals.iter().zip(&used).map(|(t, u)| t - u).collect();

    let mut per_node: Vec<NodeMemory> = nodes
        .iter()
        .enumerate()
        .map(|(index, node)| NodeMemory {
            id: node.id,
            values: vec![
                ("MemTotal", used[index] + free[index]),
                ("MemFree", free[index]),
                ("MemUsed", used[index]),
            ],
        })
        .collect();
    for line in &SPLIT_LINES {
        let Some(value_kb) = meminfo_value(container_meminfo, line.container_line) else {
            continue;
        };
        let keys = match version {
            NumaStatVersion::V2 => line.v2,
            NumaStatVersion::V1 => line.v1,
        };
        let parts = split_exact(value_kb, &either(weights(keys), &used_weights));
        for (node, part) in per_node.iter_mut().zip(parts) {
            node.values.push((line.node_line, part));
        }
    }
    Ok(per_node)
}

/// A key's value on a node; v1's `hierarchical_` form (the cgroup and its descendants, as the
/// `total_*` keys of v1 `memory.stat` that meminfo uses) when the kernel has it.
fn stat_value(stat: &NumaStat, version: NumaStatVersion, key: &str, node: u32) -> u64 {
    let value = match version {
        NumaStatVersion::V1 => stat
            .node_value(&format!("hierarchical_{key}"), node)
            .or_else(|| stat.node_value(key, node)),
        NumaStatVersion::V2 => stat.node_value(key, node),
    };
    value.unwrap_or(0)
}

/// The host's `/proc/meminfo` as a container allowed only `nodes` sees the machine: `MemTotal` and
/// `MemFree` at most the nodes' sums, other lines unchanged, so that a container's `/proc/meminfo` made
/// from it never holds more than its nodes do. Fails when a node's text has no `MemTotal`.
pub fn host_meminfo_of_nodes(host: &str, nodes: &[HostNode<'_>]) -> Result<String, ParseError> {
    let mut total_kb = 0u64;
    let mut free_kb = 0u64;
    for node in nodes {
        let total = node_meminfo_value(node.meminfo, "MemTotal")
            .ok_or_else(|| ParseError::new("node meminfo", node.meminfo))?;
        total_kb = total_kb.saturating_add(total);
        free_kb = free_kb.saturating_add(
            node_meminfo_value(node.meminfo, "MemFree").map_or(0, |f| f.min(total)),
        );
    }
    let mut out = String::with_capacity(host.len());
    for line in host.lines() {
        let capped = parse_meminfo_line(line).and_then(|parsed| {
            let cap = match parsed.name {
                "MemTotal" => total_kb,
                "MemFree" => free_kb,
                _ => return None,
            };
            (parsed.value > cap).then_some((parsed, cap))
        });
        match capped {
            Some((parsed, cap)) => {
                let digits = cap.to_string();
                let label_end = parsed.name.len() + 1;
                let padding = parsed
                    .value_end
                    .saturating_sub(label_end + digits.len())
                    .max(1);
                out.push_str(&line[..label_end]);
                out.extend(std::iter::repeat_n(' ', padding));
                out.push_str(&digits);
                out.push_str(&line[parsed.value_end..]);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

/// The value of line `name` in a node's `meminfo` (`Node 1 MemTotal:  468180 kB`).
pub fn node_meminfo_value(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter_map(|line| parse_meminfo_line(strip_node_prefix(line)?))
        .find(|parsed| parsed.name == name)
        .map(|parsed| parsed.value)
}

/// A node meminfo line without its `Node <id> ` prefix.
pub fn strip_node_prefix(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("Node ")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    rest[digits..].strip_prefix(' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::cpuset::parse_cpu_list;
    use crate::parse::numa_stat::parse_numa_stat;

    fn set(list: &str) -> NodeSet {
        parse_cpu_list(list).unwrap()
    }

    #[test]
    fn visible_nodes_are_the_mems_within_the_online_nodes() {
        assert_eq!(visible_nodes(&set("0-3"), Some(&set("1,3"))), set("1,3"));
        assert_eq!(visible_nodes(&set("0-1"), Some(&set("1-5"))), set("1"));
        assert_eq!(visible_nodes(&set("0-1"), None), set("0-1"));
        // Nothing online in the set: the kernel lets the container use every node.
        assert_eq!(visible_nodes(&set("0-1"), Some(&set("7"))), set("0-1"));
        assert_eq!(visible_nodes(&set("0-1"), Some(&set(""))), set("0-1"));
    }

    #[test]
    fn split_exact_sums_and_follows_weights() {
        assert_eq!(split_exact(10, &[1, 1]), [5, 5]);
        assert_eq!(split_exact(10, &[1, 2]), [3, 7]);
        assert_eq!(split_exact(7, &[1, 1, 1]), [3, 2, 2]);
        assert_eq!(split_exact(5, &[0, 0]), [3, 2]);
        assert_eq!(split_exact(5, &[0, 9]), [0, 5]);
        assert_eq!(split_exact(0, &[3, 4]), [0, 0]);
        assert!(split_exact(5, &[]).is_empty());
        let parts = split_exact(u64::MAX, &[u64::MAX, u64::MAX, 1]);
        assert_eq!(
            parts.iter().map(|&p| u128::from(p)).sum::<u128>(),
            u128::from(u64::MAX)
        );
    }

    const NODE0: &str = "Node 0 MemTotal:         514632 kB\nNode 0 MemFree:          492900 kB\n\
                         Node 0 MemUsed:           21732 kB\nNode 0 HugePages_Total:     0\n";
    const NODE1: &str = "Node 1 MemTotal:         468180 kB\nNode 1 MemFree:          440472 kB\n\
                         Node 1 MemUsed:           27708 kB\nNode 1 HugePages_Total:     0\n";

    fn nodes() -> [HostNode<'static>; 2] {
        [
            HostNode {
                id: 0,
                meminfo: NODE0,
            },
            HostNode {
                id: 1,
                meminfo: NODE1,
            },
        ]
    }

    #[test]
    fn split_memory_puts_used_memory_where_numa_stat_has_it() {
        let container =
            "MemTotal: 400000 kB\nMemFree: 300000 kB\nCached: 8192 kB\nShmem: 8192 kB\n\
                         Active(anon): 0 kB\nMlocked: 0 kB\n";
        let stat = parse_numa_stat(
            "anon N0=0 N1=0\nfile N0=0 N1=8388608\nshmem N0=0 N1=8388608\nkernel_stack N0=0 N1=0\n",
        )
        .unwrap();
        let split = split_memory(container, &nodes(), &stat, NumaStatVersion::V2).unwrap();
        let [zero, one] = [&split[0], &split[1]];
        assert_eq!(zero.kb("MemUsed"), Some(0));
        assert_eq!(one.kb("MemUsed"), Some(100_000));
        assert_eq!(
            zero.kb("MemTotal").unwrap() + one.kb("MemTotal").unwrap(),
            400_000
        );
        assert_eq!(
            zero.kb("MemFree").unwrap() + one.kb("MemFree").unwrap(),
            300_000
        );
        // Totals follow the nodes' sizes.
        assert_eq!(zero.kb("MemTotal"), Some(picked(400_000, 514_632, 468_180)));
        assert_eq!(one.kb("FilePages"), Some(8192));
        assert_eq!(zero.kb("FilePages"), Some(0));
        assert_eq!(one.kb("Shmem"), Some(8192));
        // A line the container does not have keeps the host's value: no value here.
        assert_eq!(one.kb("Dirty"), None);
        assert_eq!(one.kb("HugePages_Total"), None);
        for node in &split {
            assert!(node.kb("MemUsed").unwrap() <= node.kb("MemTotal").unwrap());
        }
    }

    fn picked(total: u64, mine: u64, other: u64) -> u64 {
        split_exact(total, &[mine, other])[0]
    }

    #[test]
    fn split_memory_without_cgroup_use_follows_the_hosts_use() {
        let container = "MemTotal: 1000 kB\nMemFree: 900 kB\n";
        let split = split_memory(
            container,
            &nodes(),
            &NumaStat::default(),
            NumaStatVersion::V2,
        )
        .unwrap();
        assert_eq!(
            [
                split[0].kb("MemUsed").unwrap(),
                split[1].kb("MemUsed").unwrap()
            ],
            *split_exact(100, &[21_732, 27_708])
        );
    }

    #[test]
    fn split_memory_v1_weighs_by_hierarchical_keys() {
        let container = "MemTotal: 1000 kB\nMemFree: 600 kB\nAnonPages: 40 kB\nCached: 360 kB\n";
        let stat = parse_numa_stat(
            "total=1 N0=1 N1=0\nanon=1 N0=1 N1=0\nfile=0 N0=0 N1=0\n\
             hierarchical_total=100 N0=10 N1=90\nhierarchical_anon=10 N0=10 N1=0\nhierarchical_file=90 N0=0 N1=90\n",
        )
        .unwrap();
        let split = split_memory(container, &nodes(), &stat, NumaStatVersion::V1).unwrap();
        assert_eq!(split[0].kb("MemUsed"), Some(40));
        assert_eq!(split[1].kb("MemUsed"), Some(360));
        assert_eq!(split[0].kb("AnonPages"), Some(40));
        assert_eq!(split[1].kb("FilePages"), Some(360));
    }

    #[test]
    fn split_memory_one_node_gets_everything() {
        let container = "MemTotal: 393216 kB\nMemFree: 380000 kB\nActive: 12 kB\n";
        let one = [nodes()[1]];
        let split =
            split_memory(container, &one, &NumaStat::default(), NumaStatVersion::V2).unwrap();
        assert_eq!(split[0].kb("MemTotal"), Some(393_216));
        assert_eq!(split[0].kb("MemFree"), Some(380_000));
        assert_eq!(split[0].kb("MemUsed"), Some(13_216));
        assert_eq!(split[0].kb("Active"), Some(12));
    }

    #[test]
    fn split_memory_needs_the_totals() {
        let stat = NumaStat::default();
        split_memory("MemFree: 1 kB\n", &nodes(), &stat, NumaStatVersion::V2).unwrap_err();
        split_memory("MemTotal: 1 kB\n", &nodes(), &stat, NumaStatVersion::V2).unwrap_err();
        let odd = [HostNode {
            id: 0,
            meminfo: "Node 0 MemFree: 1 kB\n",
        }];
        split_memory(
            "MemTotal: 2 kB\nMemFree: 1 kB\n",
            &odd,
            &stat,
            NumaStatVersion::V2,
        )
        .unwrap_err();
        // Free above total is read as nothing used.
        let split = split_memory(
            "MemTotal: 2 kB\nMemFree: 9 kB\n",
            &nodes(),
            &stat,
            NumaStatVersion::V2,
        )
        .unwrap();
        assert_eq!(
            split[0].kb("MemUsed").unwrap() + split[1].kb("MemUsed").unwrap(),
            0
        );
    }

    #[test]
    fn split_memory_totals_stay_while_use_moves() {
        let stat = parse_numa_stat("anon N0=0 N1=4096\n").unwrap();
        let before = split_memory(
            "MemTotal: 400000 kB\nMemFree: 390000 kB\n",
            &nodes(),
            &stat,
            NumaStatVersion::V2,
        )
        .unwrap();
        let after = split_memory(
            "MemTotal: 400000 kB\nMemFree: 100000 kB\n",
            &nodes(),
            &stat,
            NumaStatVersion::V2,
        )
        .unwrap();
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b.kb("MemTotal"), a.kb("MemTotal"));
        }
        // 300000 kB used, all the cgroup's on node 1: node 1 is full, the rest spills to node 0.
        assert_eq!(after[1].kb("MemFree"), Some(0));
        assert_eq!(
            after[0].kb("MemUsed").unwrap() + after[1].kb("MemUsed").unwrap(),
            300_000
        );
    }

    #[test]
    fn split_capped_moves_what_a_cap_refuses_to_the_others() {
        assert_eq!(split_capped(10, &[1, 1], &[10, 10]), [5, 5]);
        assert_eq!(split_capped(10, &[9, 1], &[3, 10]), [3, 7]);
        assert_eq!(split_capped(10, &[1, 1, 0], &[2, 2, 10]), [2, 2, 6]);
        assert_eq!(split_capped(10, &[0, 0], &[4, 6]), [4, 6]);
        assert_eq!(split_capped(3, &[0, 0], &[0, 6]), [0, 3]);
        // More than the caps hold: every cap, and the rest by weight.
        assert_eq!(split_capped(12, &[1, 3], &[4, 4]), [5, 7]);
        assert_eq!(split_capped(0, &[1, 3], &[0, 0]), [0, 0]);
        let big = split_capped(u64::MAX, &[1, u64::MAX], &[u64::MAX, 7]);
        assert_eq!(
            big.iter().map(|&p| u128::from(p)).sum::<u128>(),
            u128::from(u64::MAX)
        );
    }

    #[test]
    fn split_memory_never_gives_a_node_more_than_the_host_node_has() {
        // Everything the cgroup has sits on node 1, more than node 1 has in use on the host.
        let container = "MemTotal: 982812 kB\nMemFree: 933372 kB\n";
        let stat = parse_numa_stat("anon N0=0 N1=4096\n").unwrap();
        let split = split_memory(container, &nodes(), &stat, NumaStatVersion::V2).unwrap();
        let host_total = [514_632, 468_180];
        let host_free = [492_900, 440_472];
        for (index, node) in split.iter().enumerate() {
            assert!(
                node.kb("MemTotal").unwrap() <= host_total[index],
                "{node:?}"
            );
            assert!(node.kb("MemFree").unwrap() <= host_free[index], "{node:?}");
        }
        assert_eq!(
            split[0].kb("MemTotal").unwrap() + split[1].kb("MemTotal").unwrap(),
            982_812
        );
    }

    #[test]
    fn the_host_as_a_nodes_container_sees_it() {
        let host = "MemTotal:        1000000 kB\nMemFree:          900000 kB\nMemAvailable:     950000 kB\n";
        let one = host_meminfo_of_nodes(host, &[nodes()[1]]).unwrap();
        assert_eq!(
            one,
            "MemTotal:         468180 kB\nMemFree:          440472 kB\nMemAvailable:     950000 kB\n"
        );
        // Both nodes hold more than this host text says: nothing changes.
        let small = "MemTotal:         900000 kB\nMemFree:          800000 kB\n";
        assert_eq!(host_meminfo_of_nodes(small, &nodes()).unwrap(), small);
        let odd = [HostNode {
            id: 0,
            meminfo: "Node 0 MemFree: 1 kB\n",
        }];
        host_meminfo_of_nodes(host, &odd).unwrap_err();
    }

    #[test]
    fn node_lines_lose_their_prefix() {
        assert_eq!(
            strip_node_prefix("Node 12 MemTotal: 1 kB"),
            Some("MemTotal: 1 kB")
        );
        assert_eq!(strip_node_prefix("Node MemTotal: 1 kB"), None);
        assert_eq!(strip_node_prefix("MemTotal: 1 kB"), None);
        assert_eq!(node_meminfo_value(NODE1, "MemFree"), Some(440_472));
        assert_eq!(node_meminfo_value(NODE1, "HugePages_Total"), Some(0));
    }
}
