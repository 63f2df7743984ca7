//! `/sys/devices/system/node` for a container: the node lists (`online`, `has_memory`, ...) and each
//! visible node's `cpulist`, `cpumap`, `distance` and `meminfo`.

use crate::model::numa::{strip_node_prefix, NodeMemory, NodeSet};
use crate::parse::cpuset::{parse_cpu_list, CpuSet};
use crate::parse::meminfo::parse_meminfo_line;
use crate::parse::ParseError;
use std::fmt::Write as _;

/// A node list (`online`, `possible`, `has_cpu`, `has_memory`, ...): the host's nodes that are in
/// `shown`, in the kernel's list format with its newline.
pub fn render_node_list(host: &str, shown: &NodeSet) -> Result<String, ParseError> {
    let mut out = parse_cpu_list(host)?.intersection(shown).to_list_string();
    out.push('\n');
    Ok(out)
}

/// A node's `cpulist`: the host's CPUs of the node that the container is shown.
pub fn render_node_cpulist(host: &str, visible_cpus: &CpuSet) -> Result<String, ParseError> {
    render_node_list(host, visible_cpus)
}

/// A node's `cpumap`: the host's mask of the node's CPUs less those the container is not shown, in the
/// host file's own layout (the kernel prints `nr_cpu_ids` bits as comma-separated 32-bit groups, the
/// first one only as wide as it needs, e.g. `3` for 2 CPUs and `00000000,00000003` for 64).
///
/// The cpu topology files will want the same mask writer (issue 19); this one is the node directory's
/// until they share one.
pub fn render_node_cpumap(host: &str, visible_cpus: &CpuSet) -> Result<String, ParseError> {
    let bad = || ParseError::new("cpumap", host);
    let groups: Vec<&str> = host.trim_end_matches('\n').split(',').collect();
    if groups
        .iter()
        .any(|g| g.is_empty() || g.len() > 8 || !g.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(bad());
    }
    let count = groups.len();
    let mut words = Vec::with_capacity(count);
    for (index, group) in groups.iter().enumerate() {
        // The last group holds CPUs 0-31, the one before it 32-63, ...
        let base = u32::try_from((count - 1 - index) * 32).map_err(|_| bad())?;
        let host_word = u32::from_str_radix(group, 16).map_err(|_| bad())?;
        let shown = (0..32u32)
            .filter(|bit| host_word & (1 << bit) != 0)
            .filter(|bit| visible_cpus.contains(base + bit))
            .fold(0u32, |word, bit| word | (1 << bit));
        words.push((shown, group.len()));
    }
    let mut out = String::with_capacity(host.len());
    for (index, (word, width)) in words.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let _ = write!(out, "{word:0width$x}");
    }
    out.push('\n');
    Ok(out)
}

/// A node's `distance`: one distance per online node of the host, in node order; only the columns of
/// the nodes the container is shown are kept, so that the row lines up with its `online` list as the
/// kernel's does with the host's (libnuma reads the columns in `online` order).
pub fn render_node_distance(
    host: &str,
    host_online: &NodeSet,
    shown: &NodeSet,
) -> Result<String, ParseError> {
    let distances: Vec<&str> = host.split_ascii_whitespace().collect();
    if distances.len() != host_online.len()
        || distances
            .iter()
            .any(|d| d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ParseError::new("node distance", host));
    }
    let kept: Vec<&str> = host_online
        .ids()
        .iter()
        .zip(&distances)
        .filter(|(node, _)| shown.contains(**node))
        .map(|(_, distance)| *distance)
        .collect();
    let mut out = kept.join(" ");
    out.push('\n');
    Ok(out)
}

/// A node's `meminfo` for the container: the host node's lines in order and alignment, with the values
/// `memory` has (its share of the container's memory, see [`crate::model::numa::split_memory`]); other
/// lines (`HugePages_*`, lines of newer kernels) stay the host's.
pub fn render_node_meminfo(host: &str, memory: &NodeMemory) -> String {
    let mut out = String::with_capacity(host.len());
    for line in host.lines() {
        let replaced = strip_node_prefix(line).and_then(|rest| {
            let parsed = parse_meminfo_line(rest)?;
            let kb = memory.kb(parsed.name)?;
            Some((line.len() - rest.len(), parsed, kb))
        });
        match replaced {
            Some((prefix_len, parsed, kb)) => {
                // Keep the column where the host's value ends; widen when the new value needs it.
                let label_end = prefix_len + parsed.name.len() + 1;
                let value_end = prefix_len + parsed.value_end;
                let digits = kb.to_string();
                let padding = value_end.saturating_sub(label_end + digits.len()).max(1);
                out.push_str(&line[..label_end]);
                out.extend(std::iter::repeat_n(' ', padding));
                out.push_str(&digits);
                out.push_str(&line[value_end..]);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::numa::{split_memory, HostNode, NumaStatVersion};
    use crate::parse::numa_stat::NumaStat;

    fn set(list: &str) -> CpuSet {
        parse_cpu_list(list).unwrap()
    }

    #[test]
    fn node_lists_keep_the_shown_nodes() {
        assert_eq!(render_node_list("0-1\n", &set("1")).unwrap(), "1\n");
        assert_eq!(render_node_list("0-3\n", &set("0,2-3")).unwrap(), "0,2-3\n");
        assert_eq!(render_node_list("\n", &set("0-1")).unwrap(), "\n");
        render_node_list("zero\n", &set("0")).unwrap_err();
    }

    #[test]
    fn cpumap_keeps_the_hosts_layout() {
        assert_eq!(render_node_cpumap("3\n", &set("1")).unwrap(), "2\n");
        assert_eq!(render_node_cpumap("3\n", &set("0-1")).unwrap(), "3\n");
        assert_eq!(render_node_cpumap("2\n", &set("0")).unwrap(), "0\n");
        assert_eq!(render_node_cpumap("0f\n", &set("2-9")).unwrap(), "0c\n");
        assert_eq!(
            render_node_cpumap("000000ff,ffffffff\n", &set("1,33,40")).unwrap(),
            "00000002,00000002\n"
        );
        assert_eq!(
            render_node_cpumap("00000000,00000000,80000001\n", &set("0-31")).unwrap(),
            "00000000,00000000,80000001\n"
        );
        for bad in ["", "\n", "xyz\n", "1,,2\n", "123456789\n"] {
            render_node_cpumap(bad, &set("0")).unwrap_err();
        }
    }

    #[test]
    fn distance_keeps_the_shown_columns() {
        assert_eq!(
            render_node_distance("20 10\n", &set("0-1"), &set("1")).unwrap(),
            "10\n"
        );
        assert_eq!(
            render_node_distance("10 21 31\n", &set("0,2,5"), &set("0,5")).unwrap(),
            "10 31\n"
        );
        render_node_distance("10 20\n", &set("0"), &set("0")).unwrap_err();
        render_node_distance("10 x\n", &set("0-1"), &set("0")).unwrap_err();
    }

    #[test]
    fn node_meminfo_keeps_alignment_and_host_only_lines() {
        let host = "Node 1 MemTotal:         468180 kB\nNode 1 MemFree:          440472 kB\n\
                    Node 1 MemUsed:           27708 kB\nNode 1 Shmem:              5292 kB\n\
                    Node 1 HugePages_Total:     0\n";
        let container = "MemTotal: 393216 kB\nMemFree: 380000 kB\nShmem: 8192 kB\n";
        let nodes = [HostNode {
            id: 1,
            meminfo: host,
        }];
        let memory =
            &split_memory(container, &nodes, &NumaStat::default(), NumaStatVersion::V2).unwrap()[0];
        let out = render_node_meminfo(host, memory);
        assert_eq!(
            out,
            "Node 1 MemTotal:         393216 kB\nNode 1 MemFree:          380000 kB\n\
             Node 1 MemUsed:           13216 kB\nNode 1 Shmem:              8192 kB\n\
             Node 1 HugePages_Total:     0\n"
        );
    }

    #[test]
    fn node_meminfo_widens_a_line_for_a_long_value() {
        let host = "Node 0 MemTotal: 1 kB\nodd line\n";
        let nodes = [HostNode {
            id: 0,
            meminfo: host,
        }];
        let memory = &split_memory(
            "MemTotal: 123456 kB\nMemFree: 0 kB\n",
            &nodes,
            &NumaStat::default(),
            NumaStatVersion::V2,
        )
        .unwrap()[0];
        assert_eq!(
            render_node_meminfo(host, memory),
            "Node 0 MemTotal: 123456 kB\nodd line\n"
        );
    }
}
