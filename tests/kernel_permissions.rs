//! Access to the mounted tree as the kernel decides it on the host's nodes: the host's owner, group and
//! mode on mirrored entries, supplementary groups and capabilities from `/proc/<tid>/status`, no work for
//! a caller who may not read, no symlink out of sysfs, and mirrored inodes that live as long as the
//! kernel holds them. On fixture trees (no FUSE).

mod host_fixture;
mod needs;

use cgview::fs::{Caller, Fs, NodeKind};
use cgview::permissions::{self, Credentials};
use host_fixture::*;
use needs::{needs_met, Need};
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

const CPU_DIR: &str = "sys/devices/system/cpu";
/// The same directory below the host's sys root.
const HOST_CPU_DIR: &str = "devices/system/cpu";
/// A process in the host's root cgroups.
const HOST_PROCESS: u32 = 601;

fn host() -> HostFixture {
    let host = hybrid_host();
    host.cpu_tree("0-3", &[0, 1, 2, 3]);
    host.process(&Process::host(HOST_PROCESS, hybrid_membership("/")));
    host
}

/// Gives process `pid` (created if needed) these credentials in its `/proc/<pid>/status`.
fn credentials(host: &HostFixture, pid: u32, uid: u32, gid: u32, groups: &[u32], caps: u64) {
    if !host.paths.proc_root.join(pid.to_string()).exists() {
        host.process(&Process::host(pid, hybrid_membership("/")));
    }
    let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
    fs::write(
        host.paths.proc_root.join(format!("{pid}/status")),
        format!(
            "Name:\ttest\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{gid}\t{gid}\t{gid}\t{gid}\n\
             Groups:\t{} \nNSpid:\t{pid}\nCapEff:\t{caps:016x}\n",
            groups.join(" ")
        ),
    )
    .unwrap();
}

fn is_root() -> bool {
    fs::metadata("/proc/self").unwrap().uid() == 0
}

/// The ids the fixture's files got: whoever runs the test.
fn fixture_owner(host: &HostFixture) -> (u32, u32) {
    let metadata = fs::metadata(host.paths.sys_root.join(HOST_CPU_DIR)).unwrap();
    (metadata.uid(), metadata.gid())
}

fn open_error(tree: &Fs, path: &str, caller: u32, as_ids: Credentials) -> Option<i32> {
    let node = tree
        .walk(path, &Caller::new(HOST_PROCESS, Credentials::ROOT))
        .unwrap();
    match tree.open(&Caller::new(caller, as_ids), node.inode, false) {
        Ok(handle) => {
            tree.release(handle);
            None
        }
        Err(e) => Some(e.errno()),
    }
}

#[test]
fn mirrored_nodes_carry_the_hosts_owner_group_and_mode() {
    let host = host();
    let cpu1 = host.paths.sys_root.join(HOST_CPU_DIR).join("cpu1");
    fs::write(cpu1.join("private"), "1\n").unwrap();
    fs::set_permissions(cpu1.join("private"), fs::Permissions::from_mode(0o640)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(cpu1.join("private"), Some(1000), Some(50)).unwrap();
        std::os::unix::fs::chown(&cpu1, Some(1001), Some(51)).unwrap();
    }
    let tree = Fs::new(Arc::new(host.view()));
    let node = tree
        .walk(
            &format!("{CPU_DIR}/cpu1/private"),
            &Caller::new(HOST_PROCESS, Credentials::ROOT),
        )
        .unwrap();
    let metadata = fs::metadata(cpu1.join("private")).unwrap();
    assert_eq!(
        (node.owner.uid, node.owner.gid, node.mode),
        (metadata.uid(), metadata.gid(), 0o640)
    );
    let dir = tree
        .walk(
            &format!("{CPU_DIR}/cpu1"),
            &Caller::new(HOST_PROCESS, Credentials::ROOT),
        )
        .unwrap();
    let metadata = fs::metadata(&cpu1).unwrap();
    assert_eq!(
        (dir.owner.uid, dir.owner.gid, dir.mode),
        (
            metadata.uid(),
            metadata.gid(),
            (metadata.mode() & 0o7777) as u16
        )
    );
    if is_root() {
        assert_eq!((node.owner.uid, node.owner.gid), (1000, 50));
        assert_eq!((dir.owner.uid, dir.owner.gid), (1001, 51));
    }
    // The mirrored directory itself is the host's too.
    fs::set_permissions(
        host.paths.sys_root.join(HOST_CPU_DIR),
        fs::Permissions::from_mode(0o751),
    )
    .unwrap();
    assert_eq!(
        tree.walk(CPU_DIR, &Caller::new(0, Credentials::ROOT))
            .unwrap()
            .mode,
        0o751
    );
    // Served files are root's, as procfs's are.
    let slabinfo = tree
        .walk("proc/slabinfo", &Caller::new(0, Credentials::ROOT))
        .unwrap();
    assert_eq!((slabinfo.owner.uid, slabinfo.owner.gid), (0, 0));
}

#[test]
fn supplementary_group_members_read_group_only_files() {
    let host = host();
    let (owner_uid, owner_gid) = fixture_owner(&host);
    let file = host
        .paths
        .sys_root
        .join(HOST_CPU_DIR)
        .join("cpu1/group_only");
    fs::write(&file, "1\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o440)).unwrap();
    // Ids that are neither the file's owner nor its group.
    let (uid, gid) = (owner_uid.wrapping_add(4242), owner_gid.wrapping_add(4242));
    credentials(&host, 700, uid, gid, &[7, owner_gid], 0);
    credentials(&host, 701, uid, gid, &[7], 0);
    // A status that is not the request's (the thread changed ids, or its id was reused).
    credentials(&host, 702, uid.wrapping_add(1), gid, &[owner_gid], 0);
    let tree = Fs::new(Arc::new(host.view()));
    let path = format!("{CPU_DIR}/cpu1/group_only");
    let ids = Credentials { uid, gid };
    assert_eq!(open_error(&tree, &path, 700, ids), None, "a member");
    assert_eq!(open_error(&tree, &path, 701, ids), Some(libc::EACCES));
    assert_eq!(open_error(&tree, &path, 702, ids), Some(libc::EACCES));
    assert_eq!(
        open_error(&tree, &path, 799, ids),
        Some(libc::EACCES),
        "no status"
    );
    let node = tree
        .walk(&path, &Caller::new(HOST_PROCESS, Credentials::ROOT))
        .unwrap();
    assert!(tree
        .access(&Caller::new(700, ids), node.inode, permissions::READ)
        .is_ok());
    assert!(tree
        .access(&Caller::new(701, ids), node.inode, permissions::READ)
        .is_err());
}

#[test]
fn private_directories_refuse_others_their_names_and_listing() {
    let host = host();
    let (owner_uid, owner_gid) = fixture_owner(&host);
    let private = host
        .paths
        .sys_root
        .join(HOST_CPU_DIR)
        .join("cpu1/private_dir");
    fs::create_dir(&private).unwrap();
    fs::write(private.join("inside"), "1\n").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let (uid, gid) = (owner_uid.wrapping_add(4242), owner_gid.wrapping_add(4242));
    credentials(&host, 700, uid, gid, &[owner_gid], 0);
    let tree = Fs::new(Arc::new(host.view()));
    let dir = tree
        .walk(
            &format!("{CPU_DIR}/cpu1/private_dir"),
            &Caller::new(HOST_PROCESS, Credentials::ROOT),
        )
        .unwrap();
    let stranger = Credentials { uid, gid };
    assert_eq!(
        tree.lookup(&Caller::new(700, stranger), dir.inode, b"inside")
            .unwrap_err()
            .errno(),
        libc::EACCES
    );
    assert_eq!(
        tree.opendir(&Caller::new(700, stranger), dir.inode)
            .unwrap_err()
            .errno(),
        libc::EACCES
    );
    let owner = Credentials {
        uid: owner_uid,
        gid: owner_gid,
    };
    tree.lookup(&Caller::new(700, owner), dir.inode, b"inside")
        .unwrap();
}

#[test]
fn capabilities_override_the_bits_as_the_kernel_lets_them() {
    let host = host();
    let (owner_uid, owner_gid) = fixture_owner(&host);
    let file = host
        .paths
        .sys_root
        .join(HOST_CPU_DIR)
        .join("cpu1/owners_only");
    fs::write(&file, "1\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o400)).unwrap();
    let path = format!("{CPU_DIR}/cpu1/owners_only");
    symlink(
        "user:[4026531837]",
        host.paths.proc_root.join("self/ns/user"),
    )
    .unwrap();
    let (uid, gid) = (owner_uid.wrapping_add(4242), owner_gid.wrapping_add(4242));
    credentials(&host, 700, uid, gid, &[], 1 << 2); // CAP_DAC_READ_SEARCH
    credentials(&host, 701, uid, gid, &[], 0);
    // Capabilities count in the daemon's user namespace.
    for pid in [700, 701] {
        symlink(
            "user:[4026531837]",
            host.paths.proc_root.join(format!("{pid}/ns/user")),
        )
        .unwrap();
    }
    let tree = Fs::new(Arc::new(host.view()));
    let ids = Credentials { uid, gid };
    assert_eq!(open_error(&tree, &path, 700, ids), None);
    assert_eq!(open_error(&tree, &path, 701, ids), Some(libc::EACCES));
}

/// Sets a file's access time far in the past: relatime then moves it at the next read.
fn age_access_time(path: &Path) {
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_times(fs::FileTimes::new().set_accessed(UNIX_EPOCH))
        .unwrap();
}

fn was_read(path: &Path) -> bool {
    fs::metadata(path).unwrap().accessed().unwrap() > UNIX_EPOCH + std::time::Duration::from_secs(1)
}

#[test]
fn stat_by_a_caller_who_may_not_read_shows_no_length_and_reads_nothing() {
    // The fixture's files are root's alone (0400), as the host's are: only root (the daemon) reads them
    // and ages their access times.
    if !needs_met(&[Need::Root]) {
        return;
    }
    let host = host();
    let root_only = host
        .paths
        .sys_root
        .join(HOST_CPU_DIR)
        .join("cpu1/root_only");
    fs::write(&root_only, "a secret of some length\n").unwrap();
    fs::set_permissions(&root_only, fs::Permissions::from_mode(0o400)).unwrap();
    credentials(&host, 700, 65534, 65534, &[], 0);
    let tree = Fs::new(Arc::new(host.view()));
    let nobody = Credentials {
        uid: 65534,
        gid: 65534,
    };
    let slabinfo_host = host.paths.proc_root.join("slabinfo");
    let slabinfo = tree
        .walk(
            "proc/slabinfo",
            &Caller::new(HOST_PROCESS, Credentials::ROOT),
        )
        .unwrap();
    let host_file = tree
        .walk(
            &format!("{CPU_DIR}/cpu1/root_only"),
            &Caller::new(HOST_PROCESS, Credentials::ROOT),
        )
        .unwrap();
    assert_eq!(host_file.kind, NodeKind::HostFile);
    for (node, path) in [(slabinfo, &slabinfo_host), (host_file, &root_only)] {
        age_access_time(path);
        // Not its length, and not 0 (which a later reader's sendfile(2) would stop at).
        assert_eq!(
            tree.getattr(&Caller::new(700, nobody), node.inode)
                .unwrap()
                .0
                .size,
            1
        );
        assert_eq!(
            tree.open(&Caller::new(700, nobody), node.inode, false)
                .unwrap_err()
                .errno(),
            libc::EACCES
        );
        assert!(!was_read(path), "{} was read for nobody", path.display());
        // The same for root reads the file: the check above can see a read.
        let length = fs::metadata(path).unwrap().len();
        assert_eq!(
            tree.getattr(&Caller::new(HOST_PROCESS, Credentials::ROOT), node.inode)
                .unwrap()
                .0
                .size,
            length
        );
        assert!(was_read(path), "{}", path.display());
    }
    let meminfo = tree
        .walk(
            "proc/meminfo",
            &Caller::new(HOST_PROCESS, Credentials::ROOT),
        )
        .unwrap();
    assert!(
        tree.getattr(&Caller::new(700, nobody), meminfo.inode)
            .unwrap()
            .0
            .size
            > 1
    );
}

/// A `sys/block` with one real device, and links that lead out of sysfs every way a link can.
fn crafted_block_tree(host: &HostFixture) {
    let sys = &host.paths.sys_root;
    let vda = sys.join("devices/pci0/virtio1/block/vda");
    fs::create_dir_all(&vda).unwrap();
    fs::create_dir_all(sys.join("block")).unwrap();
    fs::write(vda.join("dev"), "254:0\n").unwrap();
    fs::write(vda.join("size"), "2048\n").unwrap();
    symlink("../../../virtio1", vda.join("device")).unwrap();
    symlink("/sys/devices/pci0", vda.join("absolute_inside")).unwrap();
    symlink("../../../../../../../../../../etc", vda.join("up_and_out")).unwrap();
    symlink("/etc", vda.join("absolute_out")).unwrap();
    symlink("/sys/../etc", vda.join("absolute_dotdot_out")).unwrap();
    // Inside by its text, outside through a link on the way.
    let outside = host.path().join("outside");
    fs::create_dir_all(outside.join("x")).unwrap();
    symlink(&outside, sys.join("devices/pci0/escape")).unwrap();
    symlink("../../../escape/x", vda.join("through_a_link")).unwrap();
    symlink("../devices/pci0/virtio1/block/vda", sys.join("block/vda")).unwrap();
    symlink("/etc", sys.join("block/etc_abs")).unwrap();
    symlink(
        "../../../../../../../../../../etc",
        sys.join("block/etc_rel"),
    )
    .unwrap();
    symlink(&outside, sys.join("block/fixture_outside")).unwrap();
    let cpu1 = sys.join(HOST_CPU_DIR).join("cpu1");
    symlink(
        "../../../../../../../../../../etc",
        cpu1.join("firmware_out"),
    )
    .unwrap();
}

fn listed(tree: &Fs, path: &str) -> Vec<String> {
    let node = tree
        .walk(path, &Caller::new(HOST_PROCESS, Credentials::ROOT))
        .unwrap();
    list(tree, node.inode, HOST_PROCESS)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .filter(|n| n != "." && n != "..")
        .collect()
}

#[test]
fn mirrored_symlinks_never_lead_out_of_sysfs() {
    let host = host();
    crafted_block_tree(&host);
    let tree = Fs::new(Arc::new(host.view()));
    assert_eq!(listed(&tree, "sys/block"), ["vda"]);
    assert_eq!(
        listed(&tree, "sys/block/vda"),
        ["absolute_inside", "dev", "device", "size"]
    );
    for escaping in [
        "sys/block/etc_abs",
        "sys/block/etc_rel",
        "sys/block/fixture_outside",
        "sys/block/vda/up_and_out",
        "sys/block/vda/absolute_out",
        "sys/block/vda/absolute_dotdot_out",
        "sys/block/vda/through_a_link",
        "sys/devices/system/cpu/cpu1/firmware_out",
    ] {
        assert_eq!(
            tree.walk(escaping, &Caller::new(HOST_PROCESS, Credentials::ROOT))
                .unwrap_err()
                .errno(),
            libc::ENOENT,
            "{escaping}"
        );
    }
    let readlink = |path: &str| {
        let node = tree
            .walk(path, &Caller::new(HOST_PROCESS, Credentials::ROOT))
            .unwrap();
        tree.readlink(node.inode)
    };
    assert_eq!(
        readlink("sys/block/vda/device").unwrap(),
        Path::new("/sys/devices/pci0/virtio1")
    );
    assert_eq!(
        readlink("sys/block/vda/absolute_inside").unwrap(),
        Path::new("/sys/devices/pci0")
    );
    // A link looked up while inside and changed since is refused when read.
    let device = tree
        .walk(
            "sys/block/vda/device",
            &Caller::new(HOST_PROCESS, Credentials::ROOT),
        )
        .unwrap();
    let vda = host.paths.sys_root.join("devices/pci0/virtio1/block/vda");
    fs::remove_file(vda.join("device")).unwrap();
    symlink("../../../../../../../../../../etc", vda.join("device")).unwrap();
    assert_eq!(
        tree.readlink(device.inode).unwrap_err().errno(),
        libc::ENOENT
    );
}

#[test]
fn mirrored_inodes_are_not_numbered_in_lookup_order() {
    let host = host();
    let tree = Fs::new(Arc::new(host.view()));
    let inodes: Vec<u64> = ["cpu0", "cpu1", "cpu2", "cpu3", "kernel_max", "cpufreq"]
        .iter()
        .map(|name| {
            tree.walk(
                &format!("{CPU_DIR}/{name}"),
                &Caller::new(HOST_PROCESS, Credentials::ROOT),
            )
            .unwrap()
            .inode
        })
        .collect();
    let first = inodes[0];
    let sequential: Vec<u64> = (first..first + inodes.len() as u64).collect();
    assert_ne!(inodes, sequential, "a global counter in lookup order");
    assert!(inodes.iter().all(|&inode| inode < 1 << 32), "{inodes:?}");
}

#[test]
fn forgotten_mirrored_inodes_are_freed_and_found_again_by_lookup() {
    let host = host();
    let sys = &host.paths.sys_root;
    let vda = sys.join("devices/pci0/virtio1/block/vda");
    fs::create_dir_all(&vda).unwrap();
    fs::create_dir_all(sys.join("block")).unwrap();
    fs::write(vda.join("dev"), "254:0\n").unwrap();
    fs::write(vda.join("stat"), "1 0 8 1 0 0 0 0 0 1 1 0 0 0 0 0 0\n").unwrap();
    symlink("../devices/pci0/virtio1/block/vda", sys.join("block/vda")).unwrap();
    let tree = Fs::new(Arc::new(host.view()));
    assert_eq!(tree.mirrored_count(), 0);
    let stat = tree
        .walk(
            "sys/block/vda/stat",
            &Caller::new(HOST_PROCESS, Credentials::ROOT),
        )
        .unwrap();
    let device = tree
        .walk(
            "sys/block/vda",
            &Caller::new(HOST_PROCESS, Credentials::ROOT),
        )
        .unwrap();
    assert_eq!(stat.kind, NodeKind::BlockStat);
    assert_eq!(tree.mirrored_count(), 2);
    // Listing adds nothing: READDIR takes no reference the kernel would forget.
    list(&tree, device.inode, HOST_PROCESS).unwrap();
    assert_eq!(tree.mirrored_count(), 2);
    let handle = tree
        .open(
            &Caller::new(HOST_PROCESS, Credentials::ROOT),
            stat.inode,
            false,
        )
        .unwrap();
    tree.release(handle);
    // vda was looked up twice (once per walk), its stat once.
    tree.forget(device.inode, 1);
    assert!(
        tree.getattr(&Caller::new(0, Credentials::ROOT), device.inode)
            .is_ok(),
        "one lookup left"
    );
    tree.forget(device.inode, 1);
    tree.forget(stat.inode, 1);
    assert_eq!(tree.mirrored_count(), 0);
    assert_eq!(
        tree.getattr(&Caller::new(0, Credentials::ROOT), stat.inode)
            .unwrap_err()
            .errno(),
        libc::ENOENT
    );
    assert_eq!(
        tree.getattr(&Caller::new(0, Credentials::ROOT), device.inode)
            .unwrap_err()
            .errno(),
        libc::ENOENT
    );
    // Static inodes are not the mirror's to forget.
    let meminfo = tree
        .walk("proc/meminfo", &Caller::new(0, Credentials::ROOT))
        .unwrap();
    tree.forget(meminfo.inode, 1);
    assert!(tree
        .getattr(&Caller::new(0, Credentials::ROOT), meminfo.inode)
        .is_ok());
    // Looked up again, a path gets its number back.
    let again = tree
        .walk(
            "sys/block/vda/stat",
            &Caller::new(HOST_PROCESS, Credentials::ROOT),
        )
        .unwrap();
    assert_eq!(again.inode, stat.inode);
    assert_eq!(tree.mirrored_count(), 2);
}
