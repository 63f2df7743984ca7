//! The mirrored `sys/devices/system/cpu` directory and the tree around it, on fixture trees (no root).

mod host_fixture;

use cgview::catalog::ServedFile;
use cgview::fs::{Caller, Fs, NameLifetime, NodeKind, ReadInto};
use cgview::permissions::Credentials;
use host_fixture::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

const CPU_DIR: &str = "sys/devices/system/cpu";

/// A host with CPUs 0-3, a container (pid 600) restricted to CPUs 1 and 3, and a host process (601).
fn tree() -> (HostFixture, Fs) {
    let host = hybrid_host();
    host.cpu_tree("0-3", &[0, 1, 2, 3]);
    host.cgroup_file("cpuset", "/c", "cpuset.effective_cpus", "1,3\n");
    host.process(&Process::host(600, hybrid_membership("/c")));
    host.process(&Process::host(601, hybrid_membership("/")));
    let tree = Fs::new(Arc::new(host.view()));
    (host, tree)
}

fn names(tree: &Fs, path: &str, caller: u32) -> Vec<String> {
    let node = tree
        .walk(path, &Caller::new(caller, Credentials::ROOT))
        .unwrap();
    list(tree, node.inode, caller)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .filter(|n| n != "." && n != "..")
        .collect()
}

fn read(tree: &Fs, path: &str, caller: u32) -> String {
    let node = tree
        .walk(path, &Caller::new(caller, Credentials::ROOT))
        .unwrap();
    let handle = tree
        .open(&Caller::new(caller, Credentials::ROOT), node.inode, false)
        .unwrap();
    let bytes = tree
        .read(
            &Caller::new(caller, Credentials::ROOT),
            node.inode,
            handle,
            0,
            ReadInto::Buffer,
        )
        .unwrap()
        .to_vec();
    tree.release(handle);
    String::from_utf8(bytes).unwrap()
}

#[test]
fn listing_has_only_visible_cpus_and_passes_everything_else() {
    let (_host, tree) = tree();
    assert_eq!(
        names(&tree, CPU_DIR, 600),
        [
            "online",
            "present",
            "possible",
            "offline",
            "cpu1",
            "cpu3",
            "cpufreq",
            "kernel_max",
            "vulnerabilities"
        ]
    );
    let host_view = names(&tree, CPU_DIR, 601);
    for cpu in ["cpu0", "cpu1", "cpu2", "cpu3"] {
        assert!(host_view.iter().any(|n| n == cpu), "{host_view:?}");
    }
    // Each name once: the host's own online/present/... are replaced, not listed twice.
    let mut sorted = host_view.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), host_view.len());
}

#[test]
fn hidden_cpus_do_not_resolve_and_visible_ones_must_be_asked_again() {
    let (_host, tree) = tree();
    let cpu_dir = tree
        .walk(CPU_DIR, &Caller::new(600, Credentials::ROOT))
        .unwrap();
    assert_eq!(
        tree.lookup(&Caller::new(600, Credentials::ROOT), cpu_dir.inode, b"cpu2")
            .unwrap_err()
            .errno(),
        libc::ENOENT
    );
    assert!(tree
        .walk(
            &format!("{CPU_DIR}/cpu0/topology/core_id"),
            &Caller::new(600, Credentials::ROOT)
        )
        .is_err());
    let entry = tree
        .lookup(&Caller::new(601, Credentials::ROOT), cpu_dir.inode, b"cpu2")
        .unwrap();
    assert_eq!(entry.attr.kind, NodeKind::HostDirectory);
    // The kernel caches names for everyone; a per-caller name must not be cached.
    assert_eq!(entry.name_lifetime(), NameLifetime::PerCaller);
    let entry = tree
        .lookup(
            &Caller::new(600, Credentials::ROOT),
            cpu_dir.inode,
            b"cpufreq",
        )
        .unwrap();
    assert_eq!(entry.name_lifetime(), NameLifetime::Stable);
    for bad in [&b"cpu9"[..], b"..", b"nope"] {
        assert!(tree
            .lookup(&Caller::new(601, Credentials::ROOT), cpu_dir.inode, bad)
            .is_err());
    }
}

#[test]
fn contents_symlinks_and_lists_pass_through_or_are_rendered() {
    let (_host, tree) = tree();
    assert_eq!(
        read(&tree, &format!("{CPU_DIR}/cpu3/topology/core_id"), 600),
        "3\n"
    );
    assert_eq!(read(&tree, &format!("{CPU_DIR}/kernel_max"), 600), "8191\n");
    assert_eq!(
        read(&tree, &format!("{CPU_DIR}/vulnerabilities/meltdown"), 600),
        "Not affected\n"
    );
    assert_eq!(read(&tree, &format!("{CPU_DIR}/online"), 600), "1,3\n");
    assert_eq!(read(&tree, &format!("{CPU_DIR}/possible"), 600), "1,3\n");
    assert_eq!(read(&tree, &format!("{CPU_DIR}/offline"), 600), "\n");
    assert_eq!(read(&tree, &format!("{CPU_DIR}/possible"), 601), "0-7\n");
    let link = tree
        .walk(
            &format!("{CPU_DIR}/cpu1/subsystem"),
            &Caller::new(600, Credentials::ROOT),
        )
        .unwrap();
    assert_eq!(link.kind, NodeKind::HostSymlink);
    assert_eq!(
        tree.readlink(link.inode).unwrap(),
        std::path::Path::new("../../../../bus/cpu")
    );
    assert_eq!(
        names(&tree, &format!("{CPU_DIR}/cpu1"), 600),
        ["subsystem", "topology"]
    );
}

#[test]
fn modes_are_the_hosts_and_writes_fail_on_the_read_only_mount() {
    let (host, tree) = tree();
    let dir = host.paths.sys_root.join("devices/system/cpu/cpu1");
    fs::write(dir.join("secret"), "1\n").unwrap();
    fs::set_permissions(dir.join("secret"), fs::Permissions::from_mode(0o400)).unwrap();
    fs::write(dir.join("tunable"), "1\n").unwrap();
    fs::set_permissions(dir.join("tunable"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(dir.join("topology"), fs::Permissions::from_mode(0o751)).unwrap();
    let mode = |name: &str| {
        tree.walk(
            &format!("{CPU_DIR}/cpu1/{name}"),
            &Caller::new(600, Credentials::ROOT),
        )
        .unwrap()
        .mode
    };
    assert_eq!(mode("secret"), 0o400);
    // As a read-only mount of the host's sysfs shows it: the write bit stays, writing fails.
    assert_eq!(mode("tunable"), 0o644);
    assert_eq!(mode("topology"), 0o751);
    let tunable = tree
        .walk(
            &format!("{CPU_DIR}/cpu1/tunable"),
            &Caller::new(600, Credentials::ROOT),
        )
        .unwrap();
    assert_eq!(
        tree.open(&Caller::new(600, Credentials::ROOT), tunable.inode, true)
            .unwrap_err()
            .errno(),
        libc::EROFS
    );
    // Served files keep procfs's modes.
    assert_eq!(
        tree.walk("proc/slabinfo", &Caller::new(0, Credentials::ROOT))
            .unwrap()
            .mode,
        0o400
    );
    assert_eq!(
        tree.walk("proc/meminfo", &Caller::new(0, Credentials::ROOT))
            .unwrap()
            .mode,
        0o444
    );
}

#[test]
fn inodes_are_stable_and_directory_listings_agree_with_lookups() {
    let (_host, tree) = tree();
    let first = tree
        .walk(
            &format!("{CPU_DIR}/cpu1/topology"),
            &Caller::new(600, Credentials::ROOT),
        )
        .unwrap();
    let again = tree
        .walk(
            &format!("{CPU_DIR}/cpu1/topology"),
            &Caller::new(601, Credentials::ROOT),
        )
        .unwrap();
    assert_eq!(first.inode, again.inode);
    let cpu1 = tree
        .walk(
            &format!("{CPU_DIR}/cpu1"),
            &Caller::new(600, Credentials::ROOT),
        )
        .unwrap();
    let listed = list(&tree, cpu1.inode, 600).unwrap();
    let topology = listed.iter().find(|e| e.name == "topology").unwrap();
    assert_eq!(topology.inode, first.inode);
    let dotdot = listed.iter().find(|e| e.name == "..").unwrap();
    let cpu_dir = tree
        .walk(CPU_DIR, &Caller::new(600, Credentials::ROOT))
        .unwrap();
    assert_eq!(dotdot.inode, cpu_dir.inode);
}

#[test]
fn files_the_host_lacks_are_left_out() {
    let host = hybrid_host();
    host.cpu_tree("0-3", &[0, 1, 2, 3]);
    fs::remove_file(host.paths.proc_root.join("pressure/io")).unwrap();
    host.process(&Process::host(601, hybrid_membership("/")));
    let tree = Fs::new(Arc::new(host.view()));
    assert!(tree
        .walk("proc/pressure/io", &Caller::new(601, Credentials::ROOT))
        .is_err());
    assert!(tree
        .walk("proc/pressure/cpu", &Caller::new(601, Credentials::ROOT))
        .is_ok());
    assert_eq!(names(&tree, "proc/pressure", 601), ["cpu", "memory"]);
    // Every other served file is in the tree (this host has no NUMA node directory).
    for file in ServedFile::ALL {
        if file != ServedFile::PressureIo && !file.is_node_list() {
            assert!(
                tree.walk(file.tree_path(), &Caller::new(601, Credentials::ROOT))
                    .is_ok(),
                "{file:?}"
            );
        }
    }
}

#[test]
fn block_devices_are_directories_whose_stat_is_the_callers_io() {
    let host = v2_host();
    let sys = &host.paths.sys_root;
    let vda = sys.join("devices/pci0/virtio1/block/vda");
    fs::create_dir_all(vda.join("vda1")).unwrap();
    fs::create_dir_all(sys.join("block")).unwrap();
    let host_stat = "      10        0       80        5        0        0        0        0        0        5        5        0        0        0        0        0        0\n";
    fs::write(vda.join("dev"), "254:0\n").unwrap();
    fs::write(vda.join("stat"), host_stat).unwrap();
    fs::write(vda.join("size"), "2048\n").unwrap();
    fs::write(vda.join("vda1/dev"), "254:1\n").unwrap();
    fs::write(vda.join("vda1/stat"), host_stat).unwrap();
    std::os::unix::fs::symlink("../../../virtio1", vda.join("device")).unwrap();
    std::os::unix::fs::symlink("../devices/pci0/virtio1/block/vda", sys.join("block/vda")).unwrap();
    host.cgroup_file(
        "",
        "/ctr",
        "io.stat",
        "254:0 rbytes=0 wbytes=4096 rios=0 wios=1 dbytes=0 dios=0\n",
    );
    host.process(&Process::host(600, "0::/ctr\n".into()));
    host.process(&Process::host(601, "0::/\n".into()));
    let tree = Fs::new(Arc::new(host.view()));

    let device = tree
        .walk("sys/block/vda", &Caller::new(600, Credentials::ROOT))
        .unwrap();
    assert_eq!(device.kind, NodeKind::HostDirectory);
    assert_eq!(names(&tree, "sys/block", 600), ["vda"]);
    assert_eq!(
        names(&tree, "sys/block/vda", 600),
        ["dev", "device", "size", "stat", "vda1"]
    );
    let stat = read(&tree, "sys/block/vda/stat", 600);
    let fields: Vec<&str> = stat.split_whitespace().collect();
    assert_eq!(fields.len(), 17);
    assert_eq!((fields[0], fields[4], fields[6]), ("0", "1", "8"));
    // No I/O on the partition: zeros. The host sees the host's counters.
    assert!(read(&tree, "sys/block/vda/vda1/stat", 600)
        .split_whitespace()
        .all(|f| f == "0"));
    assert_eq!(read(&tree, "sys/block/vda/stat", 601), host_stat);
    assert_eq!(read(&tree, "sys/block/vda/size", 600), "2048\n");
    let link = tree
        .walk("sys/block/vda/device", &Caller::new(600, Credentials::ROOT))
        .unwrap();
    assert_eq!(
        tree.readlink(link.inode).unwrap(),
        std::path::Path::new("/sys/devices/pci0/virtio1")
    );
}
