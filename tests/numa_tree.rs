//! NUMA nodes (`sys/devices/system/node`): renderers on files captured from a two-node VM and from this
//! project's one-node machine, and the mirrored directory on fixture trees built from them (no root).

mod host_fixture;

use cgview::catalog::ServedFile;
use cgview::fs::{Caller, Fs, NameLifetime, NodeKind, ReadInto};
use cgview::model::memory::{MemoryStat, MemoryState, Swap};
use cgview::model::numa::{node_meminfo_value, split_memory, HostNode, NumaStatVersion};
use cgview::parse::cpuset::parse_cpu_list;
use cgview::parse::flat_keyed::parse_flat_keyed;
use cgview::parse::limit::parse_counter;
use cgview::parse::meminfo::meminfo_value;
use cgview::parse::numa_stat::parse_numa_stat;
use cgview::permissions::Credentials;
use cgview::render::meminfo::render_meminfo;
use cgview::render::node::{render_node_cpumap, render_node_distance, render_node_list};
use host_fixture::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;

macro_rules! numa {
    ($name:literal) => {
        include_str!(concat!("fixtures/linux-6.1-x86_64-v2-numa/", $name))
    };
}
macro_rules! hybrid {
    ($name:literal) => {
        include_str!(concat!("fixtures/linux-6.18-x86_64-hybrid/", $name))
    };
}

const NODE_DIR: &str = "sys/devices/system/node";

/// Node meminfo lines and the container's `/proc/meminfo` lines they split.
const SPLIT: [(&str, &str); 29] = [
    ("MemTotal", "MemTotal"),
    ("MemFree", "MemFree"),
    ("SwapCached", "SwapCached"),
    ("Active", "Active"),
    ("Inactive", "Inactive"),
    ("Active(anon)", "Active(anon)"),
    ("Inactive(anon)", "Inactive(anon)"),
    ("Active(file)", "Active(file)"),
    ("Inactive(file)", "Inactive(file)"),
    ("Unevictable", "Unevictable"),
    ("Mlocked", "Mlocked"),
    ("Dirty", "Dirty"),
    ("Writeback", "Writeback"),
    ("FilePages", "Cached"),
    ("Mapped", "Mapped"),
    ("AnonPages", "AnonPages"),
    ("Shmem", "Shmem"),
    ("KernelStack", "KernelStack"),
    ("PageTables", "PageTables"),
    ("SecPageTables", "SecPageTables"),
    ("KReclaimable", "KReclaimable"),
    ("Slab", "Slab"),
    ("SReclaimable", "SReclaimable"),
    ("SUnreclaim", "SUnreclaim"),
    ("AnonHugePages", "AnonHugePages"),
    ("ShmemHugePages", "ShmemHugePages"),
    ("ShmemPmdMapped", "ShmemPmdMapped"),
    ("FileHugePages", "FileHugePages"),
    ("FilePmdMapped", "FilePmdMapped"),
];

/// The captured container's memory, as cgview reads it from its v2 files.
fn captured_container_memory() -> MemoryState {
    MemoryState {
        limit_bytes: Some(parse_counter(numa!("ctr-memory.max")).unwrap()),
        usage_bytes: parse_counter(numa!("ctr-memory.current")).unwrap(),
        stat: MemoryStat::from_v2(&parse_flat_keyed(numa!("ctr-memory.stat"))),
        swap: Swap::NotAccounted,
    }
}

/// The node value of `name` in a node meminfo text (`Node 1 MemTotal: ...`).
fn node_kb(text: &str, name: &str) -> u64 {
    node_meminfo_value(text, name).unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn captured_numa_stat_v2_adds_up_to_memory_stat() {
    let numa = parse_numa_stat(numa!("ctr-memory.numa_stat")).unwrap();
    let stat = parse_flat_keyed(numa!("ctr-memory.stat"));
    for key in [
        "anon",
        "file",
        "shmem",
        "inactive_anon",
        "active_anon",
        "pagetables",
        "slab_reclaimable",
    ] {
        let per_node: u64 = (0..2).map(|node| numa.node_value(key, node).unwrap()).sum();
        assert_eq!(per_node, stat.get(key).unwrap(), "{key}");
    }
    // The cpuset put everything but a little kernel memory on node 1.
    assert_eq!(numa.node_value("file", 0), Some(0));
    assert_eq!(numa.node_value("file", 1), Some(8 << 20));
}

#[test]
fn captured_numa_stat_v1_is_in_pages_per_node() {
    let numa = parse_numa_stat(hybrid!("cgroup-memory-memory.numa_stat")).unwrap();
    let total = numa.node_value("hierarchical_total", 0).unwrap();
    let parts = numa.node_value("hierarchical_anon", 0).unwrap()
        + numa.node_value("hierarchical_file", 0).unwrap()
        + numa.node_value("hierarchical_unevictable", 0).unwrap();
    assert_eq!(total, parts);
    assert!(
        total >= (8 << 20) / 4096,
        "an 8 MiB shm file alone is 2048 pages: {total}"
    );
}

#[test]
fn captured_node_files_render_for_the_nodes_and_cpus_shown() {
    let one = parse_cpu_list("1").unwrap();
    let both = parse_cpu_list("0-1").unwrap();
    let online = parse_cpu_list(numa!("node-online")).unwrap();
    assert_eq!(render_node_list(numa!("node-online"), &one).unwrap(), "1\n");
    assert_eq!(
        render_node_list(numa!("node-has_memory"), &both).unwrap(),
        "0-1\n"
    );
    assert_eq!(
        render_node_list(numa!("node-has_generic_initiator"), &one).unwrap(),
        "\n"
    );
    assert_eq!(
        render_node_cpumap(numa!("node1-cpumap"), &one).unwrap(),
        "2\n"
    );
    assert_eq!(
        render_node_cpumap(numa!("node0-cpumap"), &one).unwrap(),
        "0\n"
    );
    assert_eq!(
        render_node_distance(numa!("node1-distance"), &online, &one).unwrap(),
        "10\n"
    );
    assert_eq!(
        render_node_distance(numa!("node0-distance"), &online, &both).unwrap(),
        "10 20\n"
    );
    // This machine: one node, two CPUs.
    let host_online = parse_cpu_list(hybrid!("node-online")).unwrap();
    assert_eq!(
        render_node_cpumap(hybrid!("node0-cpumap"), &one).unwrap(),
        "2\n"
    );
    assert_eq!(
        render_node_distance(hybrid!("node0-distance"), &host_online, &host_online).unwrap(),
        hybrid!("node0-distance")
    );
    // The host's node totals are its /proc/meminfo total.
    let host_total = meminfo_value(numa!("meminfo"), "MemTotal").unwrap();
    assert_eq!(
        node_kb(numa!("node0-meminfo"), "MemTotal") + node_kb(numa!("node1-meminfo"), "MemTotal"),
        host_total
    );
}

#[test]
fn captured_container_memory_splits_over_its_nodes_exactly() {
    let container = render_meminfo(numa!("meminfo"), &captured_container_memory()).unwrap();
    let node0 = HostNode {
        id: 0,
        meminfo: numa!("node0-meminfo"),
    };
    let node1 = HostNode {
        id: 1,
        meminfo: numa!("node1-meminfo"),
    };
    let numa = parse_numa_stat(numa!("ctr-memory.numa_stat")).unwrap();
    // Shown both nodes: every line adds up to the container's, and the used memory sits on node 1.
    let both = split_memory(&container, &[node0, node1], &numa, NumaStatVersion::V2).unwrap();
    for (node_line, container_line) in SPLIT {
        let sum: u64 = both.iter().map(|n| n.kb(node_line).unwrap()).sum();
        assert_eq!(
            sum,
            meminfo_value(&container, container_line).unwrap(),
            "{node_line}"
        );
    }
    let used = |node: usize| both[node].kb("MemUsed").unwrap();
    assert!(used(1) > 20 * used(0), "{} vs {}", used(1), used(0));
    assert_eq!(both[0].kb("FilePages"), Some(0));
    assert_eq!(both[1].kb("Shmem"), Some(8192));
    for node in &both {
        assert!(node.kb("MemUsed").unwrap() <= node.kb("MemTotal").unwrap());
        assert!(node.kb("MemFree").unwrap() <= node.kb("MemTotal").unwrap());
    }
    // Shown node 1 alone: it holds the whole container.
    let alone = split_memory(&container, &[node1], &numa, NumaStatVersion::V2).unwrap();
    for (node_line, container_line) in SPLIT {
        assert_eq!(
            alone[0].kb(node_line),
            meminfo_value(&container, container_line),
            "{node_line}"
        );
    }
}

/// Writes a host `sys/devices/system/node` from the captured two-node VM, with the entries the real one
/// has besides the files cgview rewrites (cpuN and memoryN links, hugepages, numastat, power, ...).
fn two_node_host(host: &HostFixture) {
    host.cpu_tree("0-1", &[0, 1]);
    host.host_file("meminfo", numa!("meminfo"));
    let dir = host.paths.sys_root.join("devices/system/node");
    fs::create_dir_all(dir.join("power")).unwrap();
    fs::write(dir.join("uevent"), "").unwrap();
    for (name, text) in [
        ("online", numa!("node-online")),
        ("possible", numa!("node-possible")),
        ("has_cpu", numa!("node-has_cpu")),
        ("has_memory", numa!("node-has_memory")),
        ("has_normal_memory", numa!("node-has_normal_memory")),
        ("has_generic_initiator", numa!("node-has_generic_initiator")),
    ] {
        fs::write(dir.join(name), text).unwrap();
    }
    let files = [
        [
            numa!("node0-cpulist"),
            numa!("node0-cpumap"),
            numa!("node0-distance"),
            numa!("node0-meminfo"),
            numa!("node0-numastat"),
        ],
        [
            numa!("node1-cpulist"),
            numa!("node1-cpumap"),
            numa!("node1-distance"),
            numa!("node1-meminfo"),
            numa!("node1-numastat"),
        ],
    ];
    for (id, texts) in files.iter().enumerate() {
        let node = dir.join(format!("node{id}"));
        fs::create_dir_all(node.join("hugepages/hugepages-2048kB")).unwrap();
        fs::write(node.join("hugepages/hugepages-2048kB/nr_hugepages"), "0\n").unwrap();
        for (name, text) in ["cpulist", "cpumap", "distance", "meminfo", "numastat"]
            .iter()
            .zip(texts)
        {
            fs::write(node.join(name), text).unwrap();
        }
        symlink(format!("../../cpu/cpu{id}"), node.join(format!("cpu{id}"))).unwrap();
        symlink(
            format!("../../memory/memory{}", id * 4),
            node.join(format!("memory{}", id * 4)),
        )
        .unwrap();
        symlink("../../../../bus/node", node.join("subsystem")).unwrap();
    }
}

/// A v2 container at `/<name>` (process `pid`) with the captured container's memory files, its cpuset
/// and, when given, its memory nodes.
fn v2_container(host: &HostFixture, name: &str, pid: u32, cpus: &str, mems: Option<&str>) {
    let cgroup = format!("/{name}");
    for (file, text) in [
        ("memory.max", numa!("ctr-memory.max")),
        ("memory.current", numa!("ctr-memory.current")),
        ("memory.stat", numa!("ctr-memory.stat")),
        ("memory.numa_stat", numa!("ctr-memory.numa_stat")),
    ] {
        host.cgroup_file("", &cgroup, file, text);
    }
    host.cgroup_file("", &cgroup, "cpuset.cpus.effective", &format!("{cpus}\n"));
    if let Some(mems) = mems {
        host.cgroup_file("", &cgroup, "cpuset.mems.effective", &format!("{mems}\n"));
    }
    host.process(&Process::host(pid, format!("0::{cgroup}\n")));
}

fn root() -> Credentials {
    Credentials::ROOT
}

fn names(tree: &Fs, path: &str, caller: u32) -> Vec<String> {
    let node = tree.walk(path, &Caller::new(caller, root())).unwrap();
    list(tree, node.inode, caller)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .filter(|n| n != "." && n != "..")
        .collect()
}

fn read(tree: &Fs, path: &str, caller: u32) -> String {
    let who = Caller::new(caller, root());
    let node = tree
        .walk(path, &who)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let handle = tree.open(&who, node.inode, false).unwrap();
    let bytes = tree
        .read(&who, node.inode, handle, 0, ReadInto::Buffer)
        .unwrap()
        .to_vec();
    tree.release(handle);
    String::from_utf8(bytes).unwrap()
}

fn host_text(host: &HostFixture, relative: &str) -> String {
    fs::read_to_string(
        host.paths
            .sys_root
            .join(relative.trim_start_matches("sys/")),
    )
    .unwrap()
}

#[test]
fn a_container_on_one_node_sees_that_node_alone() {
    let host = v2_host();
    two_node_host(&host);
    v2_container(&host, "c", 600, "1", Some("1"));
    let tree = Fs::new(Arc::new(host.view()));

    assert_eq!(
        names(&tree, NODE_DIR, 600),
        [
            "online",
            "possible",
            "has_cpu",
            "has_memory",
            "has_normal_memory",
            "has_generic_initiator",
            "node1",
            "power",
            "uevent"
        ]
    );
    for list in [
        "online",
        "possible",
        "has_cpu",
        "has_memory",
        "has_normal_memory",
    ] {
        assert_eq!(
            read(&tree, &format!("{NODE_DIR}/{list}"), 600),
            "1\n",
            "{list}"
        );
    }
    assert_eq!(
        read(&tree, &format!("{NODE_DIR}/has_generic_initiator"), 600),
        "\n"
    );

    let dir = tree.walk(NODE_DIR, &Caller::new(600, root())).unwrap();
    let hidden = tree
        .lookup(&Caller::new(600, root()), dir.inode, b"node0")
        .unwrap_err();
    assert_eq!(hidden.errno(), libc::ENOENT);
    assert!(tree
        .walk(
            &format!("{NODE_DIR}/node0/meminfo"),
            &Caller::new(600, root())
        )
        .is_err());
    let shown = tree
        .lookup(&Caller::new(600, root()), dir.inode, b"node1")
        .unwrap();
    assert_eq!(shown.name_lifetime(), NameLifetime::PerCaller);

    let node1 = names(&tree, &format!("{NODE_DIR}/node1"), 600);
    for entry in [
        "cpu1",
        "cpulist",
        "cpumap",
        "distance",
        "meminfo",
        "memory4",
        "numastat",
        "hugepages",
    ] {
        assert!(node1.iter().any(|n| n == entry), "{entry}: {node1:?}");
    }
    let meminfo = tree
        .walk(
            &format!("{NODE_DIR}/node1/meminfo"),
            &Caller::new(600, root()),
        )
        .unwrap();
    assert!(matches!(meminfo.kind, NodeKind::NodeAttr(_)));
    assert_eq!(
        read(&tree, &format!("{NODE_DIR}/node1/cpulist"), 600),
        "1\n"
    );
    assert_eq!(read(&tree, &format!("{NODE_DIR}/node1/cpumap"), 600), "2\n");
    assert_eq!(
        read(&tree, &format!("{NODE_DIR}/node1/distance"), 600),
        "10\n"
    );
    // Node-wide event counters are the host's.
    assert_eq!(
        read(&tree, &format!("{NODE_DIR}/node1/numastat"), 600),
        numa!("node1-numastat")
    );
    let link = tree
        .walk(&format!("{NODE_DIR}/node1/cpu1"), &Caller::new(600, root()))
        .unwrap();
    assert_eq!(
        tree.readlink(link.inode).unwrap(),
        Path::new("../../cpu/cpu1")
    );

    // The one node holds the container's whole /proc/meminfo.
    let container = read(&tree, "proc/meminfo", 600);
    assert_eq!(meminfo_kb(&container, "MemTotal"), 393_216);
    let node = read(&tree, &format!("{NODE_DIR}/node1/meminfo"), 600);
    for (node_line, container_line) in SPLIT {
        assert_eq!(
            node_kb(&node, node_line),
            meminfo_kb(&container, container_line),
            "{node_line}\n{node}"
        );
    }
    assert_eq!(
        node_kb(&node, "MemUsed"),
        node_kb(&node, "MemTotal") - node_kb(&node, "MemFree")
    );
    assert!(node.lines().all(|l| l.starts_with("Node 1 ")), "{node}");
    assert!(node.contains("Node 1 HugePages_Total:     0\n"), "{node}");
    assert_eq!(node.lines().count(), numa!("node1-meminfo").lines().count());
}

#[test]
fn a_container_on_both_nodes_with_one_cpu_splits_its_memory_over_them() {
    let host = v2_host();
    two_node_host(&host);
    v2_container(&host, "c", 600, "1", Some("0-1"));
    let tree = Fs::new(Arc::new(host.view()));

    assert_eq!(read(&tree, &format!("{NODE_DIR}/online"), 600), "0-1\n");
    // Node 0 has memory for it but none of its CPUs.
    assert_eq!(read(&tree, &format!("{NODE_DIR}/has_cpu"), 600), "1\n");
    assert_eq!(read(&tree, &format!("{NODE_DIR}/has_memory"), 600), "0-1\n");
    assert_eq!(read(&tree, &format!("{NODE_DIR}/node0/cpulist"), 600), "\n");
    assert_eq!(read(&tree, &format!("{NODE_DIR}/node0/cpumap"), 600), "0\n");
    assert_eq!(
        read(&tree, &format!("{NODE_DIR}/node0/distance"), 600),
        "10 20\n"
    );
    let node0 = names(&tree, &format!("{NODE_DIR}/node0"), 600);
    assert!(!node0.iter().any(|n| n == "cpu0"), "{node0:?}");
    assert!(tree
        .walk(&format!("{NODE_DIR}/node0/cpu0"), &Caller::new(600, root()))
        .is_err());

    let container = read(&tree, "proc/meminfo", 600);
    let nodes = [
        read(&tree, &format!("{NODE_DIR}/node0/meminfo"), 600),
        read(&tree, &format!("{NODE_DIR}/node1/meminfo"), 600),
    ];
    for (node_line, container_line) in SPLIT {
        let sum: u64 = nodes.iter().map(|n| node_kb(n, node_line)).sum();
        assert_eq!(sum, meminfo_kb(&container, container_line), "{node_line}");
    }
    // memory.numa_stat has its memory on node 1.
    assert!(node_kb(&nodes[1], "MemUsed") > 20 * node_kb(&nodes[0], "MemUsed"));
    assert_eq!(node_kb(&nodes[0], "Shmem"), 0);
    for node in &nodes {
        assert!(node_kb(node, "MemUsed") <= node_kb(node, "MemTotal"));
    }
}

#[test]
fn a_cpu_quota_narrows_the_nodes_cpus_but_not_the_nodes() {
    let host = v2_host();
    two_node_host(&host);
    v2_container(&host, "c", 600, "0-1", None);
    host.cgroup_file("", "/c", "cpu.max", "100000 100000\n");
    let tree = Fs::new(Arc::new(host.view()));

    assert_eq!(read(&tree, &format!("{NODE_DIR}/online"), 600), "0-1\n");
    assert_eq!(read(&tree, &format!("{NODE_DIR}/has_cpu"), 600), "0\n");
    assert_eq!(
        read(&tree, &format!("{NODE_DIR}/node0/cpulist"), 600),
        "0\n"
    );
    assert_eq!(read(&tree, &format!("{NODE_DIR}/node1/cpulist"), 600), "\n");
    assert_eq!(read(&tree, &format!("{NODE_DIR}/node1/cpumap"), 600), "0\n");
    assert_eq!(
        names(&tree, NODE_DIR, 600)
            .into_iter()
            .filter(|n| n.starts_with("node"))
            .collect::<Vec<_>>(),
        ["node0", "node1"]
    );
    let node1 = names(&tree, &format!("{NODE_DIR}/node1"), 600);
    assert!(!node1.iter().any(|n| n == "cpu1"), "{node1:?}");
    // The nodes are all of the host's: their distances are too.
    assert_eq!(
        read(&tree, &format!("{NODE_DIR}/node1/distance"), 600),
        numa!("node1-distance")
    );
}

#[test]
fn a_host_caller_sees_the_hosts_node_directory() {
    let host = v2_host();
    two_node_host(&host);
    host.process(&Process::host(601, "0::/\n".into()));
    let tree = Fs::new(Arc::new(host.view()));
    let listed = names(&tree, NODE_DIR, 601);
    assert!(listed.iter().any(|n| n == "node0") && listed.iter().any(|n| n == "node1"));
    for path in [
        "sys/devices/system/node/online",
        "sys/devices/system/node/has_cpu",
        "sys/devices/system/node/node0/cpulist",
        "sys/devices/system/node/node0/cpumap",
        "sys/devices/system/node/node1/distance",
        "sys/devices/system/node/node1/meminfo",
    ] {
        assert_eq!(read(&tree, path, 601), host_text(&host, path), "{path}");
    }
}

#[test]
fn a_v1_container_splits_by_its_hierarchical_numa_stat() {
    let host = hybrid_host();
    two_node_host(&host);
    v1_memory(&host, "/c", "536870912", 104_857_600);
    host.cgroup_file(
        "memory",
        "/c",
        "memory.numa_stat",
        "total=10 N0=10 N1=0\nfile=0 N0=0 N1=0\nanon=10 N0=10 N1=0\nunevictable=0 N0=0 N1=0\n\
         hierarchical_total=25600 N0=6400 N1=19200\nhierarchical_file=1024 N0=0 N1=1024\n\
         hierarchical_anon=24576 N0=6400 N1=18176\nhierarchical_unevictable=0 N0=0 N1=0\n",
    );
    host.cgroup_file("cpuset", "/c", "cpuset.effective_cpus", "0-1\n");
    host.cgroup_file("cpuset", "/c", "cpuset.effective_mems", "0-1\n");
    host.process(&Process::host(610, hybrid_membership("/c")));
    host.cgroup_file("cpuset", "/d", "cpuset.effective_cpus", "0-1\n");
    host.cgroup_file("cpuset", "/d", "cpuset.effective_mems", "0\n");
    v1_memory(&host, "/d", "536870912", 104_857_600);
    host.process(&Process::host(611, hybrid_membership("/d")));
    let tree = Fs::new(Arc::new(host.view()));

    let container = read(&tree, "proc/meminfo", 610);
    assert_eq!(meminfo_kb(&container, "MemTotal"), 524_288);
    let nodes = [
        read(&tree, &format!("{NODE_DIR}/node0/meminfo"), 610),
        read(&tree, &format!("{NODE_DIR}/node1/meminfo"), 610),
    ];
    for (node_line, container_line) in SPLIT {
        let sum: u64 = nodes.iter().map(|n| node_kb(n, node_line)).sum();
        assert_eq!(sum, meminfo_kb(&container, container_line), "{node_line}");
    }
    // 100 MiB used, a quarter of it on node 0 by hierarchical_total.
    assert_eq!(node_kb(&nodes[0], "MemUsed"), 25_600);
    assert_eq!(node_kb(&nodes[1], "MemUsed"), 76_800);

    assert_eq!(read(&tree, &format!("{NODE_DIR}/online"), 611), "0\n");
    assert_eq!(
        read(&tree, &format!("{NODE_DIR}/node0/distance"), 611),
        "10\n"
    );
    let alone = read(&tree, &format!("{NODE_DIR}/node0/meminfo"), 611);
    let mine = read(&tree, "proc/meminfo", 611);
    // Its 512 MiB limit is more than its node holds: its memory is the node's.
    assert_eq!(
        meminfo_kb(&mine, "MemTotal"),
        node_kb(numa!("node0-meminfo"), "MemTotal")
    );
    assert!(meminfo_kb(&mine, "MemFree") <= node_kb(numa!("node0-meminfo"), "MemFree"));
    assert_eq!(node_kb(&alone, "MemTotal"), meminfo_kb(&mine, "MemTotal"));
    assert_eq!(node_kb(&alone, "MemFree"), meminfo_kb(&mine, "MemFree"));
}

#[test]
fn a_host_without_numa_has_no_node_directory() {
    let host = v2_host();
    host.cpu_tree("0-3", &[0, 1, 2, 3]);
    v2_container(&host, "c", 600, "1", Some("0"));
    let tree = Fs::new(Arc::new(host.view()));
    assert!(tree.walk(NODE_DIR, &Caller::new(600, root())).is_err());
    assert_eq!(names(&tree, "sys/devices/system", 600), ["cpu"]);
    // Its memory and CPUs are rendered as ever: a cgroup's node set without nodes is no reason to fall
    // back.
    let (meminfo, source) = render_text(&host.view(), ServedFile::Meminfo, 600);
    assert_eq!(source, cgview::service::view::Source::Container);
    assert_eq!(meminfo_kb(&meminfo, "MemTotal"), 393_216);
    for file in ServedFile::ALL.iter().filter(|f| f.is_node_list()) {
        assert!(tree
            .walk(file.tree_path(), &Caller::new(600, root()))
            .is_err());
    }
}
