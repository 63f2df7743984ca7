#![no_main]
//! Fuzzes `memory.numa_stat` parsing, the split of a container's meminfo over two nodes and the node
//! renderers. Input: numa_stat, container meminfo, node 0 meminfo, node 1 meminfo and a cpumap/distance/list
//! text, separated by U+0001. No input may panic, and a split always adds up to the container's
//! `MemTotal` and `MemFree` with no node using more than its total.

use cgview::model::numa::{split_memory, HostNode, NumaStatVersion};
use cgview::parse::cpuset::parse_cpu_list;
use cgview::parse::meminfo::meminfo_value;
use cgview::parse::numa_stat::parse_numa_stat;
use cgview::render::node::{
    render_node_cpumap, render_node_distance, render_node_list, render_node_meminfo,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\u{1}');
    let mut next = || parts.next().unwrap_or("");
    let (stat, container, node0, node1, other) = (next(), next(), next(), next(), next());
    let stat = parse_numa_stat(stat).unwrap_or_default();
    let nodes = [
        HostNode {
            id: 0,
            meminfo: node0,
        },
        HostNode {
            id: 1,
            meminfo: node1,
        },
    ];
    for version in [NumaStatVersion::V1, NumaStatVersion::V2] {
        let Ok(split) = split_memory(container, &nodes, &stat, version) else {
            continue;
        };
        let total = meminfo_value(container, "MemTotal").unwrap();
        let free = meminfo_value(container, "MemFree").unwrap().min(total);
        let sum = |name| split.iter().map(|n| u128::from(n.kb(name).unwrap())).sum::<u128>();
        assert_eq!(sum("MemTotal"), u128::from(total));
        assert_eq!(sum("MemFree"), u128::from(free));
        for (node, memory) in nodes.iter().zip(&split) {
            assert!(memory.kb("MemUsed").unwrap() <= memory.kb("MemTotal").unwrap());
            let _ = render_node_meminfo(node.meminfo, memory);
        }
    }
    let cpus = parse_cpu_list("0-3,33,64").unwrap();
    let _ = render_node_cpumap(other, &cpus);
    let _ = render_node_distance(other, &cpus, &cpus);
    let _ = render_node_list(other, &cpus);
});
