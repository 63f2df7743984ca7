//! NUMA nodes on a two-node guest: boots Debian's kernel under QEMU (TCG) with `-numa node,...` (node 0 =
//! CPU 0 + 512 MiB, node 1 = CPU 1 + 512 MiB) and `tests/vm/numa-init.sh`, which runs `numactl --hardware`
//! and `lscpu` in simulated containers with cgview's `sys/devices/system/{cpu,node}` bound. The assertions
//! are here.
//!
//! Run alone: `cargo test --test numa_vm -- --nocapture` (as root; installs qemu-system-x86,
//! linux-image-amd64, busybox-static, cpio and numactl when missing). About 15 s.

mod needs;

use needs::{needs_met, Need};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cgview");

const MACHINE: &str = "-smp 2 -m 1024 \
    -object memory-backend-ram,id=m0,size=512M -object memory-backend-ram,id=m1,size=512M \
    -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1";

/// `CHECK <name> <value>` lines of the guest's console; a value's lines are split at `|`.
fn guest_report() -> (HashMap<String, Vec<String>>, String) {
    let dir = tempfile::tempdir().unwrap();
    let console = dir.path().join("console.log");
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm");
    let status = Command::new("bash")
        .arg(here.join("boot.sh"))
        .arg(BIN)
        .arg(&console)
        .env("CGVIEW_VM_INIT", here.join("numa-init.sh"))
        .env("CGVIEW_VM_MACHINE", MACHINE)
        .env("CGVIEW_VM_PROGRAMS", "numactl:numactl lscpu:util-linux")
        .env("CGVIEW_VM_TIMEOUT", "170")
        .status()
        .expect("cannot run tests/vm/boot.sh");
    let text = String::from_utf8_lossy(&std::fs::read(&console).unwrap_or_default()).into_owned();
    assert!(
        status.success(),
        "the NUMA VM did not run to the end ({status}); console:\n{text}"
    );
    let report: HashMap<String, Vec<String>> = text
        .lines()
        .filter_map(|line| {
            line.trim_end_matches('\r')
                .split_once("CHECK ")
                .map(|(_, rest)| rest)
        })
        .map(|rest| {
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            let parts = value
                .split('|')
                .map(|p| p.trim_end().to_owned())
                .filter(|p| !p.trim().is_empty())
                .collect();
            (name.to_owned(), parts)
        })
        .collect();
    assert!(
        report.contains_key("done"),
        "the guest did not finish its checks; console:\n{text}"
    );
    (report, text)
}

struct Report {
    values: HashMap<String, Vec<String>>,
    console: String,
}

impl Report {
    fn lines(&self, name: &str) -> &[String] {
        self.values
            .get(name)
            .unwrap_or_else(|| panic!("the guest reported no {name}; console:\n{}", self.console))
    }

    /// The lines of `name` with their inner runs of spaces squeezed, as they are compared.
    fn squeezed(&self, name: &str) -> Vec<String> {
        self.lines(name)
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// The number after `label` in the line of `name` that starts with it.
    fn number(&self, name: &str, label: &str) -> u64 {
        let line = self
            .squeezed(name)
            .into_iter()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{name} has no {label:?}: {:?}", self.lines(name)));
        line[label.len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number after {label:?} in {line:?}"))
    }

    /// Container `name`'s node meminfo files add up to its /proc/meminfo, read by the same `cat` just
    /// before them. Each node file is made from the container's /proc/meminfo snapshot of the moment,
    /// which may be a newer one under TCG's slowness: totals and the tmpfs pages are exact whatever the
    /// moment, free memory within a megabyte.
    fn nodes_add_up(&self, name: &str) {
        let nodes = format!("{name}.node-meminfo");
        let container = format!("{name}.meminfo");
        for (node, mine) in [
            ("MemTotal", "MemTotal:"),
            ("Shmem", "Shmem:"),
            ("FilePages", "Cached:"),
        ] {
            assert_eq!(
                self.node_sum(&nodes, node),
                self.number(&container, mine),
                "{name}: {node}"
            );
        }
        let free = self.node_sum(&nodes, "MemFree");
        let mine = self.number(&container, "MemFree:");
        assert!(
            free.abs_diff(mine) <= 1024,
            "{name}: MemFree {free} vs {mine}"
        );
        let used = self.node_sum(&nodes, "MemUsed");
        assert_eq!(used + free, self.number(&container, "MemTotal:"), "{name}");
    }

    /// The sum over nodes of `field` (kB) in the `Node N <field>:` lines of `name`.
    fn node_sum(&self, name: &str, field: &str) -> u64 {
        let label = format!("{field}:");
        self.squeezed(name)
            .iter()
            .filter_map(|l| {
                let mut words = l.split(' ').skip(2);
                (words.next()? == label).then(|| words.next()?.parse::<u64>().ok())?
            })
            .sum()
    }
}

#[test]
fn numactl_and_lscpu_see_the_containers_nodes() {
    if !needs_met(&[Need::VmTools]) {
        return;
    }
    let (values, console) = guest_report();
    // Shown with --nocapture.
    for line in console.lines().filter(|l| l.contains("CHECK ")) {
        println!("{line}");
    }
    let r = Report { values, console };

    // The guest has two nodes, and the kernel shows both to a process of a one-node cgroup: what a
    // container sees without cgview.
    assert_eq!(r.lines("host.node-online"), ["0-1"]);
    assert!(r
        .squeezed("host.numactl")
        .contains(&"available: 2 nodes (0-1)".to_owned()));
    assert!(r
        .squeezed("one.kernel.numactl")
        .contains(&"available: 2 nodes (0-1)".to_owned()));

    // one: cpuset.mems 1, cpuset.cpus 1, 384 MiB.
    let numactl = r.squeezed("one.numactl");
    for line in [
        "available: 1 nodes (1)",
        "node 1 cpus: 1",
        "node 1 size: 384 MB",
        "node distances:",
        "node 1",
        "1: 10",
    ] {
        assert!(
            numactl.contains(&line.to_owned()),
            "{line:?} in {numactl:?}"
        );
    }
    assert!(
        !numactl.iter().any(|l| l.starts_with("node 0")),
        "{numactl:?}"
    );
    // Read a moment apart from the container's meminfo, and free memory is capped by the guest's own
    // free memory, which moves under TCG: a few megabytes may come or go.
    let free_mb = r.number("one.numactl", "node 1 free:");
    let container_free_kb = r.number("one.meminfo", "MemFree:");
    assert!(
        free_mb.abs_diff(container_free_kb / 1024) <= 8,
        "node free {free_mb} MB is the container's {container_free_kb} kB"
    );
    assert!(free_mb < 384);
    assert_eq!(
        r.squeezed("one.lscpu-numa"),
        ["NUMA node(s): 1", "NUMA node1 CPU(s): 1"]
    );
    assert_eq!(
        r.lines("one.node-dir")
            .iter()
            .filter(|n| n.starts_with("node"))
            .collect::<Vec<_>>(),
        ["node1"]
    );
    assert_eq!(
        r.lines("one.node-lists"),
        [
            "online=1",
            "possible=1",
            "has_cpu=1",
            "has_memory=1",
            "has_normal_memory=1"
        ]
    );
    // Its node's meminfo is its /proc/meminfo, and holds its 16 MiB tmpfs file.
    r.nodes_add_up("one");
    assert_eq!(r.node_sum("one.node-meminfo", "MemTotal"), 393_216);
    assert!(r.node_sum("one.node-meminfo", "Shmem") >= 16 * 1024);

    // both: the two nodes and CPUs, 512 MiB split over them.
    let numactl = r.squeezed("both.numactl");
    for line in [
        "available: 2 nodes (0-1)",
        "node 0 cpus: 0",
        "node 1 cpus: 1",
        "node 0 1",
        "0: 10 20",
        "1: 20 10",
    ] {
        assert!(
            numactl.contains(&line.to_owned()),
            "{line:?} in {numactl:?}"
        );
    }
    let sizes = r.number("both.numactl", "node 0 size:") + r.number("both.numactl", "node 1 size:");
    assert!(
        (511..=512).contains(&sizes),
        "node sizes add up to 512 MB: {numactl:?}"
    );
    assert_eq!(
        r.squeezed("both.lscpu-numa"),
        [
            "NUMA node(s): 2",
            "NUMA node0 CPU(s): 0",
            "NUMA node1 CPU(s): 1"
        ]
    );
    r.nodes_add_up("both");
    assert_eq!(r.node_sum("both.node-meminfo", "MemTotal"), 524_288);

    // quota: both nodes, a one-CPU quota: CPU 0 is shown, so node 1 has no CPU the container sees.
    let numactl = r.squeezed("quota.numactl");
    for line in ["available: 2 nodes (0-1)", "node 0 cpus: 0", "node 1 cpus:"] {
        assert!(
            numactl.contains(&line.to_owned()),
            "{line:?} in {numactl:?}"
        );
    }
    assert!(
        r.lines("quota.node-lists")
            .contains(&"has_cpu=0".to_owned()),
        "{:?}",
        r.lines("quota.node-lists")
    );
    let lscpu = r.squeezed("quota.lscpu-numa");
    assert!(lscpu.contains(&"NUMA node(s): 2".to_owned()), "{lscpu:?}");
    assert!(
        lscpu.contains(&"NUMA node0 CPU(s): 0".to_owned()),
        "{lscpu:?}"
    );

    // unlimited: node 1 without a memory limit. Its memory is node 1's, not the machine's.
    let node1_total = r.node_sum("host.node1-meminfo", "MemTotal");
    assert_eq!(r.number("unlimited.meminfo", "MemTotal:"), node1_total);
    assert_eq!(
        r.node_sum("unlimited.node-meminfo", "MemTotal"),
        node1_total
    );
    assert_eq!(
        r.number("unlimited.numactl", "node 1 size:"),
        node1_total / 1024
    );

    let log = r.lines("log").join("\n");
    assert!(!log.contains("serving the host file"), "fallbacks: {log}");
    assert!(!log.contains("ERROR"), "{log}");
}
