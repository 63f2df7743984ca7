//! The mounted file system over a fake host, built once per fuzzing process with the test suite's own fixture
//! builder: a hybrid cgroup host with CPUs 0-3, a container restricted to CPUs 1 and 3 with a memory
//! limit, a host process, and `sys` trees like the real ones plus crafted entries a hostile `/sys` could
//! hold: symlinks that point outside the sys root (relative and absolute), among them a `sys/block` entry.
//! Outside the sys root sits a marker file that no request may ever reach.

#![allow(dead_code)]

#[path = "../../../tests/host_fixture/mod.rs"]
mod host_fixture;

use cgview::fs::Fs;
use host_fixture::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// A caller in the restricted container.
pub const CONTAINER_PID: u32 = 600;
/// A caller in the host's cgroups.
pub const HOST_PID: u32 = 601;
/// The content of the file outside the sys root; seen in any reply, it means the tree escaped.
pub const OUTSIDE_MARKER: &str = "cgview-fuzz: outside the sys root";
/// Its name, so a listing that shows it means the tree escaped too.
pub const OUTSIDE_NAME: &str = "outside-the-sys-root";

pub struct MountedHost {
    host: HostFixture,
    pub fs: Arc<Fs>,
}

static MOUNTED: OnceLock<MountedHost> = OnceLock::new();

/// The process's fake host and tree, built on first use and removed when the fuzzer exits or a check
/// fails.
pub fn mounted() -> &'static MountedHost {
    MOUNTED.get_or_init(|| {
        let mounted = build();
        // SAFETY: `remove_fixture` is an `extern "C" fn()` that unwinds nowhere (it ignores every
        // error); registering it has no other precondition.
        unsafe { libc::atexit(remove_fixture) };
        // libFuzzer's panic hook aborts, which skips `atexit`: remove the fixture before it runs.
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            remove_fixture();
            abort(info);
        }));
        mounted
    })
}

/// libFuzzer ends a run with `exit()`, which runs `atexit` handlers but never drops statics.
extern "C" fn remove_fixture() {
    if let Some(mounted) = MOUNTED.get() {
        let _ = fs::remove_dir_all(mounted.host.path());
    }
}

fn build() -> MountedHost {
    let host = hybrid_host();
    host.cpu_tree("0-3", &[0, 1, 2, 3]);
    host.cgroup_file("cpuset", "/c", "cpuset.effective_cpus", "1,3\n");
    v1_memory(&host, "/c", "536870912", 100 * MIB);
    host.cgroup_file("cpu", "/c", "cpu.cfs_quota_us", "150000\n");
    host.cgroup_file("cpu", "/c", "cpu.cfs_period_us", "100000\n");
    host.cgroup_file("cpuacct", "/c", "cpuacct.usage", "5000000000\n");
    host.cgroup_file(
        "blkio",
        "/c",
        "blkio.throttle.io_service_bytes_recursive",
        "254:0 Read 4096\n254:0 Write 8192\n254:0 Total 12288\nTotal 12288\n",
    );
    host.cgroup_file(
        "blkio",
        "/c",
        "blkio.throttle.io_serviced_recursive",
        "254:0 Read 1\n254:0 Write 2\n254:0 Total 3\nTotal 3\n",
    );
    // Not `Process::host`: it leaks its pid list, which LeakSanitizer reports when the fuzzer exits.
    for (pid, cgroup) in [(CONTAINER_PID, "/c"), (HOST_PID, "/")] {
        host.process(&Process {
            pid,
            tgid: pid,
            ppid: 1,
            nspid: &[pid],
            pid_ns: HOST_PID_NS,
            start_ticks: 100,
            cgroup: hybrid_membership(cgroup),
        });
    }

    let root = host.path().to_owned();
    let outside = root.join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join(OUTSIDE_NAME), OUTSIDE_MARKER).unwrap();

    let sys = &host.paths.sys_root;
    let vda = sys.join("devices/pci0/virtio1/block/vda");
    fs::create_dir_all(vda.join("vda1")).unwrap();
    fs::create_dir_all(sys.join("block")).unwrap();
    let stat = "      10        0       80        5        0        0        0        0        0        5        5        0        0        0        0        0        0\n";
    fs::write(vda.join("dev"), "254:0\n").unwrap();
    fs::write(vda.join("stat"), stat).unwrap();
    fs::write(vda.join("size"), "2048\n").unwrap();
    fs::write(vda.join("vda1/dev"), "254:1\n").unwrap();
    fs::write(vda.join("vda1/stat"), stat).unwrap();
    link("../../../virtio1", &vda.join("device"));
    link("../../../../../class/block", &vda.join("subsystem"));
    link("../devices/pci0/virtio1/block/vda", &sys.join("block/vda"));
    // Crafted: out of the sys root, relative and absolute, from a device, a block entry and a CPU.
    link("../../../../../../outside", &vda.join("escape"));
    link(&outside.to_string_lossy(), &vda.join("absolute"));
    link("/etc/passwd", &vda.join("passwd"));
    link("../../outside", &sys.join("block/evil"));
    link(
        "../../../../../outside",
        &sys.join("devices/system/cpu/cpu0/escape"),
    );

    let fs = Arc::new(Fs::new(Arc::new(host.view())));
    MountedHost { host, fs }
}

fn link(target: &str, at: &PathBuf) {
    symlink(target, at).unwrap();
}
