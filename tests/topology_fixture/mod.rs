//! Writes a host's `sys/devices/system/cpu` with a CPU topology this 2-vCPU VM lacks (threads sharing a
//! core, several packages), as Linux 6.x prints it: `cpuN/topology/*` ids, lists and masks, and
//! `cpuN/cache/index0-3` (L1d, L1i and L2 per core, L3 per package). Lists and masks are formatted here,
//! independently of cgview's renderers, as `%*pbl` and `%*pb` print them (`lib/vsprintf.c`).

#![allow(dead_code)]

use std::fs;
use std::path::Path;

/// Where one CPU sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuPlace {
    pub package: u32,
    pub die: u32,
    pub cluster: u32,
    /// The core's id within its package, as `core_id` prints it (sparse on real machines).
    pub core: u32,
}

/// Two packages of two cores of two threads, numbered as Linux numbers many two-socket Intel servers:
/// packages alternate (even CPUs on package 0, odd on 1), and the second threads of all cores come after
/// the first ones. CPUs 0 and 1 are on different packages; CPU 4 is CPU 0's sibling thread; core ids are
/// sparse (0 and 8).
pub fn threads_last_interleaved_sockets() -> Vec<CpuPlace> {
    (0..8)
        .map(|cpu| CpuPlace {
            package: cpu % 2,
            die: 0,
            cluster: (cpu / 2) % 2 * 8,
            core: (cpu / 2) % 2 * 8,
        })
        .collect()
}

/// The same machine numbered thread by thread, package by package (most AMD machines): CPUs 0 and 1 are
/// the two threads of package 0's first core, CPUs 4-7 are package 1.
pub fn siblings_adjacent() -> Vec<CpuPlace> {
    (0..8)
        .map(|cpu| CpuPlace {
            package: cpu / 4,
            die: 0,
            cluster: (cpu / 2) % 2,
            core: (cpu / 2) % 2,
        })
        .collect()
}

/// `%*pbl`: ranges of consecutive ids.
pub fn list_text(ids: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        while i + 1 < ids.len() && ids[i + 1] == ids[i] + 1 {
            i += 1;
        }
        parts.push(if ids[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", ids[i])
        });
        i += 1;
    }
    parts.join(",")
}

/// `%*pb` for `nr_cpu_ids` CPUs (at most 64 here): hex digits for `nr_cpu_ids` bits, in 32-bit words.
pub fn mask_text(ids: &[u32], nr_cpu_ids: u32) -> String {
    let bits: u64 = ids.iter().fold(0, |bits, id| bits | 1 << id);
    let digits = nr_cpu_ids.div_ceil(4) as usize;
    let hex = format!("{bits:0digits$x}");
    let first = match digits % 8 {
        0 => 8,
        n => n,
    };
    let mut words = vec![hex[..first].to_owned()];
    let mut rest = &hex[first..];
    while !rest.is_empty() {
        words.push(rest[..8].to_owned());
        rest = &rest[8..];
    }
    words.join(",")
}

/// Writes `cpu_dir` (a host's `sys/devices/system/cpu`) for CPUs `0..places.len()`, all online, with
/// `nr_cpu_ids` possible CPUs (masks are that wide).
pub fn write_cpu_topology(cpu_dir: &Path, places: &[CpuPlace], nr_cpu_ids: u32) {
    let cpus: Vec<u32> = (0..places.len() as u32).collect();
    fs::create_dir_all(cpu_dir.join("vulnerabilities")).unwrap();
    let all = list_text(&cpus);
    for (name, text) in [
        ("online", all.clone()),
        ("present", all.clone()),
        ("enabled", all.clone()),
        ("possible", list_text(&(0..nr_cpu_ids).collect::<Vec<_>>())),
        (
            "offline",
            list_text(&(places.len() as u32..nr_cpu_ids).collect::<Vec<_>>()),
        ),
        ("isolated", String::new()),
        ("kernel_max", "8191".to_owned()),
        ("vulnerabilities/meltdown", "Not affected".to_owned()),
    ] {
        fs::write(cpu_dir.join(name), format!("{text}\n")).unwrap();
    }
    let sharing = |same: &dyn Fn(&CpuPlace, &CpuPlace) -> bool, cpu: usize| -> Vec<u32> {
        cpus.iter()
            .copied()
            .filter(|&other| same(&places[cpu], &places[other as usize]))
            .collect()
    };
    let same_core = |a: &CpuPlace, b: &CpuPlace| a.package == b.package && a.core == b.core;
    let same_package = |a: &CpuPlace, b: &CpuPlace| a.package == b.package;
    let same_die = |a: &CpuPlace, b: &CpuPlace| a.package == b.package && a.die == b.die;
    let same_cluster =
        |a: &CpuPlace, b: &CpuPlace| a.package == b.package && a.cluster == b.cluster;
    for (cpu, place) in places.iter().enumerate() {
        let dir = cpu_dir.join(format!("cpu{cpu}"));
        let topology = dir.join("topology");
        fs::create_dir_all(&topology).unwrap();
        let core = sharing(&same_core, cpu);
        let package = sharing(&same_package, cpu);
        let die = sharing(&same_die, cpu);
        let cluster = sharing(&same_cluster, cpu);
        let mut files: Vec<(String, String)> = vec![
            ("physical_package_id".into(), place.package.to_string()),
            ("die_id".into(), place.die.to_string()),
            ("cluster_id".into(), place.cluster.to_string()),
            ("core_id".into(), place.core.to_string()),
        ];
        for (name, ids) in [
            ("core_cpus", &core),
            ("thread_siblings", &core),
            ("core_siblings", &package),
            ("package_cpus", &package),
            ("die_cpus", &die),
            ("cluster_cpus", &cluster),
        ] {
            files.push((name.into(), mask_text(ids, nr_cpu_ids)));
            files.push((format!("{name}_list"), list_text(ids)));
        }
        for (name, text) in files {
            fs::write(topology.join(name), format!("{text}\n")).unwrap();
        }
        // A global core number for the per-core caches' ids, as x86 derives them from the APIC id.
        let core_number = place.package * 100 + place.core;
        for (index, (level, kind, size, ids, id)) in [
            (1, "Data", "48K", &core, core_number),
            (1, "Instruction", "32K", &core, core_number),
            (2, "Unified", "2048K", &core, core_number),
            (3, "Unified", "32768K", &package, place.package),
        ]
        .into_iter()
        .enumerate()
        {
            let cache = dir.join(format!("cache/index{index}"));
            fs::create_dir_all(&cache).unwrap();
            for (name, text) in [
                ("level", level.to_string()),
                ("type", kind.to_owned()),
                ("size", size.to_owned()),
                ("id", id.to_string()),
                ("coherency_line_size", "64".to_owned()),
                ("ways_of_associativity", "8".to_owned()),
                ("number_of_sets", "64".to_owned()),
                ("physical_line_partition", "1".to_owned()),
                ("shared_cpu_map", mask_text(ids, nr_cpu_ids)),
                ("shared_cpu_list", list_text(ids)),
            ] {
                fs::write(cache.join(name), format!("{text}\n")).unwrap();
            }
        }
    }
}

/// An x86 cpuinfo for `places`, as `show_cpuinfo` prints the topology lines (`siblings` the package's CPUs,
/// `cpu cores` its cores, the APIC id from package, core and thread).
pub fn topology_x86_cpuinfo(places: &[CpuPlace]) -> String {
    let mut text = String::new();
    for (cpu, place) in places.iter().enumerate() {
        let siblings = places.iter().filter(|p| p.package == place.package).count();
        let mut cores: Vec<u32> = places
            .iter()
            .filter(|p| p.package == place.package)
            .map(|p| p.core)
            .collect();
        cores.sort_unstable();
        cores.dedup();
        let thread = places[..cpu]
            .iter()
            .filter(|p| p.package == place.package && p.core == place.core)
            .count() as u32;
        let apicid = place.package * 32 + place.core * 2 + thread;
        text.push_str(&format!(
            "processor\t: {cpu}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n\
             model name\t: Intel(R) Xeon(R) Test CPU\nphysical id\t: {}\nsiblings\t: {siblings}\n\
             core id\t\t: {}\ncpu cores\t: {}\napicid\t\t: {apicid}\ninitial apicid\t: {apicid}\n\
             flags\t\t: fpu vme ht\nbogomips\t: 4800.00\n\n",
            place.package,
            place.core,
            cores.len()
        ));
    }
    text
}
