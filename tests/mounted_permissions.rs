//! Permissions, mmap and mirrored inodes through a real `cgview mount` (issue 15, items 7 and 8): callers
//! are refused or let in as the kernel would on the host's nodes, `mmap(2)` fails instead of killing the
//! reader, no mirrored symlink leads out of sysfs, and the mirror table shrinks when the kernel forgets
//! inodes. Needs root and /dev/fuse; other users are played with `setpriv`.

mod mounted_support;

use mounted_support::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

/// Runs `script` with `sh` as uid and gid 65534 with the supplementary `groups` only.
fn as_nobody(groups: &[u32], script: &str) -> Output {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534"]);
    if groups.is_empty() {
        command.arg("--clear-groups");
    } else {
        let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
        command.arg(format!("--groups={}", groups.join(",")));
    }
    command.args(["sh", "-c", script]).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A sys root of its own, with what the tree needs (the CPU lists) and what the host's sysfs has
/// nowhere: a group-only file, a private directory owned by someone else, and links out of sysfs.
fn crafted_sys_root(dir: &Path) {
    let cpu = dir.join("devices/system/cpu");
    fs::create_dir_all(cpu.join("cpu0/topology")).unwrap();
    for (name, text) in [
        ("online", "0-1"),
        ("present", "0-1"),
        ("possible", "0-1"),
        ("offline", ""),
        ("kernel_max", "8191"),
    ] {
        fs::write(cpu.join(name), format!("{text}\n")).unwrap();
    }
    fs::write(cpu.join("cpu0/topology/core_id"), "0\n").unwrap();
    fs::write(cpu.join("group_only"), "for group 50\n").unwrap();
    std::os::unix::fs::chown(cpu.join("group_only"), Some(0), Some(50)).unwrap();
    fs::set_permissions(cpu.join("group_only"), fs::Permissions::from_mode(0o440)).unwrap();
    fs::create_dir(cpu.join("private_dir")).unwrap();
    fs::write(cpu.join("private_dir/inside"), "1\n").unwrap();
    std::os::unix::fs::chown(cpu.join("private_dir"), Some(1000), Some(1000)).unwrap();
    fs::set_permissions(cpu.join("private_dir"), fs::Permissions::from_mode(0o700)).unwrap();
    symlink("../../../../../../../etc", cpu.join("cpu0/firmware_node")).unwrap();
    let vda = dir.join("devices/pci0/virtio1/block/vda");
    fs::create_dir_all(&vda).unwrap();
    fs::write(vda.join("dev"), "254:0\n").unwrap();
    fs::write(vda.join("size"), "2048\n").unwrap();
    symlink("../../../virtio1", vda.join("device")).unwrap();
    symlink("/etc", vda.join("holders")).unwrap();
    fs::create_dir_all(dir.join("block")).unwrap();
    symlink("../devices/pci0/virtio1/block/vda", dir.join("block/vda")).unwrap();
    symlink("/etc", dir.join("block/etc")).unwrap();
    symlink("../../../../../../../../../etc", dir.join("block/up")).unwrap();
}

#[test]
fn callers_get_the_hosts_owner_group_and_mode_with_supplementary_groups() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let sys = tempfile::Builder::new()
        .prefix("cgview-sys-")
        .tempdir()
        .unwrap();
    crafted_sys_root(sys.path());
    let daemon = Daemon::start(&[], &["--sys-root", sys.path().to_str().unwrap()]);
    let cpu = daemon.path("sys/devices/system/cpu");
    let group_only = cpu.join("group_only");
    let private_dir = cpu.join("private_dir");

    let shown = run_sh(&format!(
        "stat -c '%a %u %g' {} {} {}",
        group_only.display(),
        private_dir.display(),
        cpu.display()
    ));
    let cpu_mode = fs::metadata(sys.path().join("devices/system/cpu"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(
        shown.lines().collect::<Vec<_>>(),
        ["440 0 50", "700 1000 1000", &format!("{cpu_mode:o} 0 0")]
    );

    // A 0440 root:50 file: a member of 50 through a supplementary group reads it, nobody else does.
    let member = as_nobody(&[50], &format!("cat {}", group_only.display()));
    assert!(member.status.success(), "{}", stderr(&member));
    assert_eq!(stdout(&member), "for group 50\n");
    let outsider = as_nobody(&[], &format!("cat {}", group_only.display()));
    assert!(!outsider.status.success(), "{}", stdout(&outsider));
    assert!(
        stderr(&outsider).contains("Permission denied"),
        "{}",
        stderr(&outsider)
    );
    let access = as_nobody(
        &[50],
        &format!("test -r {} && echo readable", group_only.display()),
    );
    assert_eq!(stdout(&access), "readable\n", "access(2) as a member");

    // A 0700 directory of uid 1000: not listed, not searched by others, even with its group.
    for script in [
        format!("ls {}", private_dir.display()),
        format!("cat {}/inside", private_dir.display()),
    ] {
        let output = as_nobody(&[1000], &script);
        assert!(!output.status.success(), "{script}: {}", stdout(&output));
        assert!(
            stderr(&output).contains("Permission denied"),
            "{script}: {}",
            stderr(&output)
        );
    }
    assert_eq!(
        run_sh(&format!("cat {}/inside", private_dir.display())),
        "1\n"
    );

    // No link leads out of the sys root, however it is written.
    let block = daemon.path("sys/block");
    assert_eq!(run_sh(&format!("ls {}", block.display())), "vda\n");
    assert_eq!(
        run_sh(&format!("ls {}", block.join("vda").display())),
        "dev\ndevice\nsize\n"
    );
    assert_eq!(
        run_sh(&format!("readlink {}", block.join("vda/device").display())),
        "/sys/devices/pci0/virtio1\n"
    );
    for escaping in [
        block.join("etc"),
        block.join("up"),
        block.join("vda/holders"),
        cpu.join("cpu0/firmware_node"),
    ] {
        let output = Command::new("readlink").arg(&escaping).output().unwrap();
        assert!(
            !output.status.success() && output.stdout.is_empty(),
            "{} -> {}",
            escaping.display(),
            stdout(&output)
        );
        assert!(!escaping.join("passwd").exists(), "{}", escaping.display());
    }
}

/// `stat` of the root-only slabinfo as nobody: procfs shows no length; neither does cgview (its size
/// floor, 1, rather than the file's length), and nobody's `cat` is refused.
#[test]
fn slabinfo_shows_nobody_no_length_and_refuses_the_read() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    assert!(
        Path::new("/proc/slabinfo").exists(),
        "needs a kernel with slabinfo"
    );
    let daemon = Daemon::start(&[], &[]);
    let slabinfo = daemon.path("proc/slabinfo");
    let root_size: u64 = run_sh(&format!("stat -c %s {}", slabinfo.display()))
        .trim()
        .parse()
        .unwrap();
    assert!(root_size > 100, "{root_size}");
    let output = as_nobody(
        &[],
        &format!("stat -c %s {s}; cat {s}", s = slabinfo.display()),
    );
    assert_eq!(stdout(&output), "1\n", "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Permission denied"),
        "{}",
        stderr(&output)
    );
    // The size nobody was shown is the inode's now, and busybox `cat` copies with sendfile(2), which
    // stops at it: root still gets the whole file (with a size of 0 it would get nothing).
    assert!(
        Path::new("/bin/busybox").exists(),
        "needs /bin/busybox (apt-get install busybox-static)"
    );
    let copied: u64 = run_sh(&format!("busybox cat {} | wc -c", slabinfo.display()))
        .trim()
        .parse()
        .unwrap();
    assert!(copied > 100, "root's busybox cat copied {copied} bytes");
}

/// Before, a private mapping of a served file succeeded and its first access killed the reader with
/// SIGBUS (the page-cache fill is refused); procfs and sysfs refuse `mmap(2)` itself.
#[test]
fn mmap_is_refused_instead_of_killing_the_reader() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    check_mmap_is_refused(&daemon);
    let log = daemon.log_text();
    assert!(!log.contains("cannot be refused"), "{log}");
}

/// The `cgview_mirrored_inodes` gauge of a daemon started with `--metrics-addr 127.0.0.1:0`.
fn mirrored_inodes(daemon: &Daemon) -> u64 {
    let log = daemon.log_text();
    let address = log
        .lines()
        .find(|l| l.contains("serving /metrics and /healthz"))
        .and_then(|l| l.split("address=").nth(1))
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"))
        .trim()
        .to_owned();
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .lines()
        .find_map(|l| l.strip_prefix("cgview_mirrored_inodes "))
        .unwrap_or_else(|| panic!("no cgview_mirrored_inodes in\n{response}"))
        .parse()
        .unwrap()
}

fn drop_dentries_and_inodes() {
    fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
}

/// Block devices come and go (loop, nbd, dm): before, every mirrored name ever looked up kept an inode
/// number for the daemon's life. Now the table follows the kernel's inode cache: it grows with lookups
/// and shrinks when the kernel forgets the inodes.
#[test]
fn the_mirror_table_shrinks_when_the_kernel_forgets_its_inodes() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &["--metrics-addr", "127.0.0.1:0"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !daemon.log_text().contains("serving /metrics") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            daemon.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let walk = format!(
        "find {} {} -maxdepth 4 -exec stat -c %i {{}} + | wc -l",
        daemon.path("sys/devices/system/cpu").display(),
        daemon.path("sys/block").display()
    );
    let mut after_each_drop = Vec::new();
    let mut peak = 0;
    for _ in 0..3 {
        let walked: u64 = run_sh(&walk).trim().parse().unwrap();
        assert!(walked > 50, "walked only {walked} entries");
        let held = mirrored_inodes(&daemon);
        assert!(held > 50, "the walk held only {held} mirrored inodes");
        peak = peak.max(held);
        drop_dentries_and_inodes();
        // FORGET is asynchronous: give the kernel a moment to send it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut left = mirrored_inodes(&daemon);
        while left > held / 4 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
            left = mirrored_inodes(&daemon);
        }
        after_each_drop.push((held, left));
    }
    for (held, left) in &after_each_drop {
        assert!(
            *left <= held / 4,
            "held {held}, {left} left after the kernel dropped its inodes: {after_each_drop:?}"
        );
    }
    // Three walks over the same entries do not triple the table.
    let (first_held, _) = after_each_drop[0];
    assert!(peak <= first_held + first_held / 10, "{after_each_drop:?}");
}
