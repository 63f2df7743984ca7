//! cpuinfo and the cpu directory describe one machine: the visible CPUs. Fixture trees (no root) of hosts
//! with SMT and two packages (`tests/topology_fixture`), read through the whole lookup, open and read path.

mod host_fixture;
mod topology_fixture;

use cgview::fs::{Caller, Fs, NodeKind, ReadInto};
use cgview::parse::cpuinfo::parse_cpuinfo_blocks;
use cgview::parse::cpuset::{parse_cpu_list, parse_cpu_mask, CpuSet};
use cgview::permissions::Credentials;
use cgview::render::cpu_list::CpuListFormat;
use cgview::service::fallback::FallbackCause;
use host_fixture::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use topology_fixture::{
    siblings_adjacent, threads_last_interleaved_sockets, topology_x86_cpuinfo, write_cpu_topology,
    CpuPlace,
};

const CPU_DIR: &str = "sys/devices/system/cpu";
/// The host's possible CPUs: masks are 40 bits wide, two words (`00,00000011`).
const NR_CPU_IDS: u32 = 40;

/// A hybrid host with `places`, its cpuinfo, and a host process (pid 500) in the root cgroup.
fn host_with(places: &[CpuPlace]) -> HostFixture {
    let host = hybrid_host();
    write_cpu_topology(
        &host.paths.sys_root.join("devices/system/cpu"),
        places,
        NR_CPU_IDS,
    );
    host.host_file("cpuinfo", &topology_x86_cpuinfo(places));
    host.process(&Process::host(500, hybrid_membership("/")));
    host
}

/// Puts process `pid` in cgroup `/<name>` with `cpuset` and, when given, a CFS quota of `quota_us` per
/// 100 ms.
fn container(host: &HostFixture, pid: u32, name: &str, cpuset: &str, quota_us: Option<u64>) {
    let path = format!("/{name}");
    host.cgroup_file(
        "cpuset",
        &path,
        "cpuset.effective_cpus",
        &format!("{cpuset}\n"),
    );
    if let Some(quota) = quota_us {
        host.cgroup_file("cpu", &path, "cpu.cfs_quota_us", &format!("{quota}\n"));
        host.cgroup_file("cpu", &path, "cpu.cfs_period_us", "100000\n");
    }
    host.process(&Process::host(pid, hybrid_membership(&path)));
}

fn caller(pid: u32) -> Caller {
    Caller::new(pid, Credentials::ROOT)
}

/// What `pid` reads at `path` (open, read from 0, release), or the errno of the first step that fails.
fn read(tree: &Fs, path: &str, pid: u32) -> Result<String, i32> {
    let node = tree.walk(path, &caller(pid)).map_err(|e| e.errno())?;
    let handle = tree
        .open(&caller(pid), node.inode, false)
        .map_err(|e| e.errno())?;
    let bytes = tree.read(&caller(pid), node.inode, handle, 0, ReadInto::Buffer);
    tree.release(handle);
    Ok(String::from_utf8(bytes.map_err(|e| e.errno())?.to_vec()).unwrap())
}

fn topology(tree: &Fs, cpu: u32, name: &str, pid: u32) -> String {
    read(tree, &format!("{CPU_DIR}/cpu{cpu}/topology/{name}"), pid).unwrap()
}

fn cache(tree: &Fs, cpu: u32, index: u32, name: &str, pid: u32) -> String {
    read(
        tree,
        &format!("{CPU_DIR}/cpu{cpu}/cache/index{index}/{name}"),
        pid,
    )
    .unwrap()
}

#[test]
fn topology_and_cache_files_name_only_visible_cpus_in_the_hosts_formats() {
    let host = host_with(&threads_last_interleaved_sockets());
    container(&host, 600, "two-packages", "0-1", None);
    container(&host, 601, "one-core", "0,4", None);
    container(&host, 602, "half-cpu", "0-7", Some(50_000));
    let tree = Fs::new(Arc::new(host.view()));

    // CPUs 0 and 1 are on two packages: each is alone in its core, die, cluster and package.
    for cpu in [0, 1] {
        let own = format!("{cpu}\n");
        let own_mask = format!("00,0000000{}\n", 1 << cpu);
        for name in [
            "core_cpus",
            "thread_siblings",
            "core_siblings",
            "package_cpus",
            "die_cpus",
            "cluster_cpus",
        ] {
            assert_eq!(
                topology(&tree, cpu, &format!("{name}_list"), 600),
                own,
                "{name}"
            );
            assert_eq!(topology(&tree, cpu, name, 600), own_mask, "{name}");
        }
        for index in 0..4 {
            assert_eq!(cache(&tree, cpu, index, "shared_cpu_list", 600), own);
            assert_eq!(cache(&tree, cpu, index, "shared_cpu_map", 600), own_mask);
        }
    }
    // Ids stay the host's: CPU 1 is package 1's core 0.
    assert_eq!(topology(&tree, 1, "physical_package_id", 600), "1\n");
    assert_eq!(topology(&tree, 1, "core_id", 600), "0\n");
    assert_eq!(cache(&tree, 1, 3, "id", 600), "1\n");
    assert_eq!(
        read(&tree, &format!("{CPU_DIR}/enabled"), 600).unwrap(),
        "0-1\n"
    );
    assert_eq!(
        read(&tree, &format!("{CPU_DIR}/isolated"), 600).unwrap(),
        "\n"
    );

    // CPUs 0 and 4 are the two threads of one core.
    for cpu in [0, 4] {
        assert_eq!(topology(&tree, cpu, "thread_siblings_list", 601), "0,4\n");
        assert_eq!(topology(&tree, cpu, "core_cpus", 601), "00,00000011\n");
        assert_eq!(topology(&tree, cpu, "package_cpus_list", 601), "0,4\n");
        assert_eq!(cache(&tree, cpu, 3, "shared_cpu_list", 601), "0,4\n");
    }
    // Half a CPU: CPU 0 alone, whatever the cpuset.
    assert_eq!(topology(&tree, 0, "package_cpus_list", 602), "0\n");
    assert_eq!(topology(&tree, 0, "core_cpus_list", 602), "0\n");
    assert_eq!(
        read(&tree, &format!("{CPU_DIR}/cpu4/topology/core_cpus"), 602),
        Err(libc::ENOENT)
    );

    // The host sees the host's files, byte for byte.
    let host_dir = host.paths.sys_root.join("devices/system/cpu/cpu0");
    for (relative, name) in [
        ("topology", "package_cpus"),
        ("topology", "core_cpus_list"),
        ("cache/index3", "shared_cpu_map"),
    ] {
        let expected = std::fs::read_to_string(host_dir.join(relative).join(name)).unwrap();
        assert_eq!(
            read(&tree, &format!("{CPU_DIR}/cpu0/{relative}/{name}"), 500).unwrap(),
            expected
        );
    }
    assert_eq!(topology(&tree, 0, "package_cpus", 500), "00,00000055\n");
}

#[test]
fn set_files_are_per_caller_nodes_and_their_size_is_the_callers_text() {
    let host = host_with(&siblings_adjacent());
    container(&host, 600, "one-thread", "1", None);
    let tree = Fs::new(Arc::new(host.view()));
    let node = tree
        .walk(
            &format!("{CPU_DIR}/cpu1/topology/core_cpus_list"),
            &caller(600),
        )
        .unwrap();
    assert_eq!(node.kind, NodeKind::HostCpuList(CpuListFormat::List));
    let host_file = host
        .paths
        .sys_root
        .join("devices/system/cpu/cpu1/topology/core_cpus_list");
    let host_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(host_file).unwrap().permissions(),
    );
    assert_eq!(u32::from(node.mode), host_mode & 0o7777, "the host's mode");
    let map = tree
        .walk(
            &format!("{CPU_DIR}/cpu1/cache/index0/shared_cpu_map"),
            &caller(600),
        )
        .unwrap();
    assert_eq!(map.kind, NodeKind::HostCpuList(CpuListFormat::Mask));
    let id = tree
        .walk(&format!("{CPU_DIR}/cpu1/topology/core_id"), &caller(600))
        .unwrap();
    assert_eq!(id.kind, NodeKind::HostFile);
    // The kernel must ask every caller for the size; it is the length of what that caller reads.
    let (attr, ttl) = tree.getattr(&caller(600), node.inode).unwrap();
    assert_eq!(ttl, std::time::Duration::ZERO);
    assert_eq!(attr.size, "1\n".len() as u64);
    let (attr, _) = tree.getattr(&caller(500), node.inode).unwrap();
    assert_eq!(attr.size, "0-1\n".len() as u64);
    // A listing names them as files of the same kind.
    let topology_dir = tree
        .walk(&format!("{CPU_DIR}/cpu1/topology"), &caller(600))
        .unwrap();
    let entries = list(&tree, topology_dir.inode, 600).unwrap();
    let kind = |name: &str| entries.iter().find(|e| e.name == name).unwrap().kind;
    assert_eq!(kind("die_cpus"), NodeKind::HostCpuList(CpuListFormat::Mask));
    assert_eq!(
        kind("die_cpus_list"),
        NodeKind::HostCpuList(CpuListFormat::List)
    );
    assert_eq!(kind("die_id"), NodeKind::HostFile);
}

#[test]
fn a_set_file_the_host_prints_oddly_is_served_as_the_host_has_it_and_counted() {
    let host = host_with(&siblings_adjacent());
    container(&host, 600, "one-thread", "1", None);
    let odd = host
        .paths
        .sys_root
        .join("devices/system/cpu/cpu1/topology/core_cpus_list");
    std::fs::write(&odd, "zero and one\n").unwrap();
    let tree = Fs::new(Arc::new(host.view()));
    assert_eq!(topology(&tree, 1, "core_cpus_list", 600), "zero and one\n");
    assert_eq!(tree.view().fallbacks().count(FallbackCause::Unparsable), 1);
    // Its neighbours are still restricted.
    assert_eq!(topology(&tree, 1, "core_cpus", 600), "00,00000002\n");
}

/// The sets one visible CPU's topology files name, each read as list and as mask (which must agree).
struct CpuSets {
    core: CpuSet,
    package: CpuSet,
}

fn cpu_sets(tree: &Fs, cpu: u32, pid: u32) -> CpuSets {
    let both = |list_name: &str, mask_name: &str| {
        let list = parse_cpu_list(&topology(tree, cpu, list_name, pid)).unwrap();
        let mask = parse_cpu_mask(&topology(tree, cpu, mask_name, pid)).unwrap();
        assert_eq!(mask.cpus, list, "{list_name} and {mask_name} of cpu{cpu}");
        assert_eq!(mask.digits, 10, "{mask_name} keeps the host's width");
        list
    };
    // lscpu reads the older names, hwloc and psutil the newer: they name the same sets.
    CpuSets {
        core: both("core_cpus_list", "thread_siblings"),
        package: both("package_cpus_list", "core_siblings"),
    }
}

/// Every cpuset of the 8 CPUs of both numberings: the cpu directory names only visible CPUs, its lists and
/// masks agree, cpuinfo's `siblings` and `cpu cores` agree with it, and the split `lscpu` computes from it
/// (`lscpu-topology.c`: threads per core the largest `thread_siblings`, cores and sockets the distinct
/// `thread_siblings` and `core_siblings` sets) multiplies out to the visible CPUs wherever every visible
/// core has as many visible threads and every socket as many cores.
#[test]
fn every_cpuset_sees_one_consistent_machine() {
    for places in [threads_last_interleaved_sockets(), siblings_adjacent()] {
        let host = host_with(&places);
        let mut pids = BTreeMap::new();
        for subset in 1u32..256 {
            let ids: Vec<u32> = (0..8).filter(|cpu| subset & (1 << cpu) != 0).collect();
            let pid = 1000 + subset;
            container(
                &host,
                pid,
                &format!("set{subset}"),
                &topology_fixture::list_text(&ids),
                None,
            );
            pids.insert(pid, ids);
        }
        let tree = Fs::new(Arc::new(host.view()));
        for (&pid, visible) in &pids {
            let visible_set = CpuSet::from_ids(visible.clone());
            let sets: BTreeMap<u32, CpuSets> = visible
                .iter()
                .map(|&cpu| (cpu, cpu_sets(&tree, cpu, pid)))
                .collect();
            // Cores (by their threads) of each package (by its CPUs).
            let mut cores_of: BTreeMap<Vec<u32>, BTreeSet<Vec<u32>>> = BTreeMap::new();
            for (cpu, set) in &sets {
                for named in [&set.core, &set.package] {
                    assert!(
                        named.contains(*cpu) && named.intersection(&visible_set) == *named,
                        "cpu{cpu}: {named:?} for {visible:?}"
                    );
                }
                cores_of
                    .entry(set.package.ids().to_vec())
                    .or_default()
                    .insert(set.core.ids().to_vec());
            }

            let cpuinfo = read(&tree, "proc/cpuinfo", pid).unwrap();
            let blocks = parse_cpuinfo_blocks(&cpuinfo);
            assert_eq!(
                blocks.iter().filter_map(|b| b.cpu).collect::<Vec<_>>(),
                *visible
            );
            for block in &blocks {
                let cpu = block.cpu.unwrap();
                let field = |name: &str| {
                    block
                        .text
                        .lines()
                        .find_map(|l| {
                            let (key, value) = l.split_once(':')?;
                            (key.trim() == name).then(|| value.trim().to_owned())
                        })
                        .unwrap()
                };
                let package = &sets[&cpu].package;
                assert_eq!(
                    field("siblings"),
                    package.len().to_string(),
                    "cpu{cpu} for {visible:?}"
                );
                assert_eq!(
                    field("cpu cores"),
                    cores_of[package.ids()].len().to_string(),
                    "cpu{cpu} for {visible:?}"
                );
                assert_eq!(
                    field("physical id"),
                    places[cpu as usize].package.to_string()
                );
                assert_eq!(field("core id"), places[cpu as usize].core.to_string());
            }

            let threads = sets.values().map(|s| s.core.len()).max().unwrap();
            let cores: BTreeSet<_> = sets.values().map(|s| s.core.ids().to_vec()).collect();
            let sockets = cores_of.len();
            let cores_per_socket = cores.len() / sockets;
            let uniform = cores.iter().all(|core| core.len() == threads)
                && cores_of.values().all(|c| c.len() == cores_per_socket);
            if uniform {
                assert_eq!(
                    threads * cores_per_socket * sockets,
                    visible.len(),
                    "{visible:?}"
                );
            }
        }
    }
}
