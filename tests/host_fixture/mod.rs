//! Writes fake `/proc`, `/sys` and cgroup trees into a temporary directory, so the whole
//! resolve -> read -> render path runs without root. Mount points in the fake mountinfo are absolute
//! paths inside the temporary directory, as a real mountinfo lists real mount points.

#![allow(dead_code)]

use cgview::catalog::ServedFile;
use cgview::failure::Failure;
use cgview::fs::{Caller, DirEntry, Fs};
use cgview::host::layout::CgroupLayout;
use cgview::host::paths::HostPaths;
use cgview::host::resolve::Resolver;
use cgview::permissions::Credentials;
use cgview::service::view::{Rendered, View, ViewOptions};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

pub const HOST_PID_NS: &str = "pid:[4026531836]";
pub const MIB: u64 = 1 << 20;

pub const HOST_MEMINFO: &str = "\
MemTotal:       16384000 kB
MemFree:        12000000 kB
MemAvailable:   14000000 kB
Buffers:          200000 kB
Cached:          1800000 kB
SwapCached:            0 kB
Active:          2000000 kB
Inactive:        1500000 kB
Active(anon):    1000000 kB
Inactive(anon):   500000 kB
Active(file):    1000000 kB
Inactive(file):  1000000 kB
Unevictable:           0 kB
Mlocked:               0 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
Dirty:               100 kB
Writeback:             0 kB
AnonPages:       1400000 kB
Mapped:           300000 kB
Shmem:            100000 kB
KReclaimable:     200000 kB
Slab:             400000 kB
SReclaimable:     200000 kB
SUnreclaim:       200000 kB
KernelStack:       10000 kB
PageTables:        20000 kB
AnonHugePages:         0 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
DirectMap4k:      300000 kB
";

pub const HOST_UPTIME: &str = "1000.00 3500.00\n";

pub const HOST_DISKSTATS: &str = "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n \
  8       0 sda 100 0 800 10 200 0 1600 20 0 30 30 0 0 0 0 0 0\n \
  8       1 sda1 50 0 400 5 100 0 800 10 0 15 15 0 0 0 0 0 0\n \
254       0 vda 4673 2668 828906 1152 382 3225 250048 195 0 1116 1468 3023 24 37568 120 5 0\n";

pub const HOST_STAT: &str = "cpu  4000 10 2000 90000 300 0 50 0 0 0\n\
cpu0 1000 5 500 22500 75 0 10 0 0 0\n\
cpu1 1000 5 500 22500 75 0 10 0 0 0\n\
cpu2 1000 0 500 22500 75 0 15 0 0 0\n\
cpu3 1000 0 500 22500 75 0 15 0 0 0\n\
intr 5000 1 2 3\n\
ctxt 90000\n\
btime 1700000000\n\
processes 4242\n\
procs_running 7\n\
procs_blocked 2\n\
softirq 800 1 2 3\n";

pub const HOST_LOADAVG: &str = "3.10 2.20 1.30 7/812 98765\n";

pub const HOST_SWAPS: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
/dev/vda2                               partition\t2097148\t\t1024\t\t-2\n";

pub const HOST_PRESSURE: &str =
    "some avg10=9.99 avg60=9.99 avg300=9.99 total=999999\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";

/// A host `/proc/vmstat`: the lines tools read, gauges of a 16 GB machine and its counters since boot.
pub const HOST_VMSTAT: &str = "\
nr_free_pages 3000000
nr_zone_inactive_anon 125000
nr_mlock 500
nr_inactive_anon 125000
nr_active_anon 250000
nr_inactive_file 250000
nr_active_file 250000
nr_slab_reclaimable 50000
nr_isolated_file 3
nr_anon_pages 350000
nr_mapped 75000
nr_file_pages 450000
nr_dirty 25
nr_writeback 0
nr_shmem 25000
nr_anon_transparent_hugepages 10
nr_kernel_stack 10000
nr_page_table_pages 5000
nr_dirty_threshold 700000
nr_dirty_background_threshold 350000
pgpgin 40842041
pgpgout 63412572
pswpin 100
pswpout 200
pgfree 282876063
pgfault 304571124
pgmajfault 58780
pgscan_direct 1000
pgsteal_direct 900
drop_pagecache 1
oom_kill 3
thp_fault_alloc 1856
";

pub const HOST_SLABINFO: &str = "slabinfo - version: 2.1\n# name <active_objs>\nhost_cache 1 1 64 64 1 : tunables 0 0 0 : slabdata 1 1 0\n";

/// An x86_64-style cpuinfo with `cpus` processors.
pub fn x86_cpuinfo(cpus: u32) -> String {
    (0..cpus)
        .map(|id| {
            format!(
                "processor\t: {id}\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\ncore id\t\t: {id}\n\n"
            )
        })
        .collect()
}

/// One process of the fake procfs.
pub struct Process<'a> {
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    /// `NSpid:` ids, outermost first.
    pub nspid: &'a [u32],
    pub pid_ns: &'a str,
    pub start_ticks: u64,
    /// The `/proc/<pid>/cgroup` text.
    pub cgroup: String,
}

impl<'a> Process<'a> {
    /// A process of the host pid namespace.
    pub fn host(pid: u32, cgroup: String) -> Process<'static> {
        Process {
            pid,
            tgid: pid,
            ppid: 1,
            nspid: Box::leak(Box::new([pid])),
            pid_ns: HOST_PID_NS,
            start_ticks: 100,
            cgroup,
        }
    }
}

pub struct HostFixture {
    pub dir: tempfile::TempDir,
    pub paths: HostPaths,
    mountinfo: String,
    next_mount_id: u32,
}

impl HostFixture {
    /// A host with 4 online CPUs and the default host files.
    pub fn new() -> HostFixture {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths {
            proc_root: dir.path().join("proc"),
            sys_root: dir.path().join("sys"),
            cgroup_root: dir.path().join("cgroup"),
        };
        fs::create_dir_all(paths.proc_root.join("self/ns")).unwrap();
        fs::create_dir_all(paths.cgroup_root.join("..").join("cgroup")).unwrap();
        symlink(HOST_PID_NS, paths.proc_root.join("self/ns/pid")).unwrap();
        let fixture = HostFixture {
            dir,
            paths,
            mountinfo: String::from("1 0 254:0 / / rw,relatime - ext4 /dev/vda rw\n"),
            next_mount_id: 30,
        };
        fixture.host_file("meminfo", HOST_MEMINFO);
        fixture.host_file("cpuinfo", &x86_cpuinfo(4));
        fixture.host_file("uptime", HOST_UPTIME);
        fixture.host_file("diskstats", HOST_DISKSTATS);
        fixture.host_file("stat", HOST_STAT);
        fixture.host_file("loadavg", HOST_LOADAVG);
        fixture.host_file("swaps", HOST_SWAPS);
        fixture.host_file("slabinfo", HOST_SLABINFO);
        fixture.host_file("vmstat", HOST_VMSTAT);
        fs::create_dir_all(fixture.paths.proc_root.join("pressure")).unwrap();
        for name in ["cpu", "memory", "io"] {
            fixture.host_file(&format!("pressure/{name}"), HOST_PRESSURE);
        }
        fixture.online_cpus("0-3");
        fixture.write_mountinfo();
        fixture
    }

    pub fn host_file(&self, name: &str, text: &str) {
        fs::write(self.paths.proc_root.join(name), text).unwrap();
    }

    pub fn online_cpus(&self, list: &str) {
        let dir = self.paths.sys_root.join("devices/system/cpu");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("online"), format!("{list}\n")).unwrap();
    }

    /// A host `sys/devices/system/cpu` with `cpuN` directories (each with `topology/core_id` and a
    /// `subsystem` symlink), the CPU lists, and a few other entries, like the real one.
    pub fn cpu_tree(&self, online: &str, ids: &[u32]) {
        let dir = self.paths.sys_root.join("devices/system/cpu");
        fs::create_dir_all(dir.join("cpufreq")).unwrap();
        fs::create_dir_all(dir.join("vulnerabilities")).unwrap();
        fs::write(dir.join("vulnerabilities/meltdown"), "Not affected\n").unwrap();
        fs::write(dir.join("kernel_max"), "8191\n").unwrap();
        for (name, text) in [
            ("online", online.to_owned()),
            ("present", online.to_owned()),
            ("possible", "0-7".to_owned()),
            ("offline", "4-7".to_owned()),
        ] {
            fs::write(dir.join(name), format!("{text}\n")).unwrap();
        }
        for id in ids {
            let cpu = dir.join(format!("cpu{id}"));
            fs::create_dir_all(cpu.join("topology")).unwrap();
            fs::write(cpu.join("topology/core_id"), format!("{id}\n")).unwrap();
            let _ = fs::remove_file(cpu.join("subsystem"));
            symlink("../../../../bus/cpu", cpu.join("subsystem")).unwrap();
        }
    }

    fn write_mountinfo(&self) {
        fs::write(self.paths.proc_root.join("self/mountinfo"), &self.mountinfo).unwrap();
    }

    fn add_mount(&mut self, dir_name: &str, root: &str, fs_type: &str, options: &str) -> PathBuf {
        let mount_point = self.paths.cgroup_root.join(dir_name);
        fs::create_dir_all(&mount_point).unwrap();
        let id = self.next_mount_id;
        self.next_mount_id += 1;
        self.mountinfo.push_str(&format!(
            "{id} 1 0:{id} {root} {} rw,nosuid,nodev,noexec,relatime shared:{id} - {fs_type} {fs_type} {options}\n",
            mount_point.display()
        ));
        self.write_mountinfo();
        mount_point
    }

    /// A v1 hierarchy at `<cgroup>/<dir_name>` whose super options name its controllers.
    pub fn mount_v1(&mut self, dir_name: &str, controllers: &str) -> PathBuf {
        self.add_mount(dir_name, "/", "cgroup", &format!("rw,{controllers}"))
    }

    /// The unified hierarchy at `<cgroup>/<dir_name>` ("" for the cgroup root itself), with `root` as
    /// mountinfo prints it and `controllers` in its `cgroup.controllers`.
    pub fn mount_v2(&mut self, dir_name: &str, root: &str, controllers: &str) -> PathBuf {
        let mount_point = self.add_mount(dir_name, root, "cgroup2", "rw,nsdelegate");
        fs::write(
            mount_point.join("cgroup.controllers"),
            format!("{controllers}\n"),
        )
        .unwrap();
        mount_point
    }

    /// Writes `file` of cgroup `relative` in the hierarchy mounted at `<cgroup>/<dir_name>`.
    pub fn cgroup_file(&self, dir_name: &str, relative: &str, file: &str, text: &str) {
        let dir = self
            .paths
            .cgroup_root
            .join(dir_name)
            .join(relative.trim_start_matches('/'));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(file), text).unwrap();
    }

    pub fn cgroup_dir(&self, dir_name: &str, relative: &str) -> PathBuf {
        self.paths
            .cgroup_root
            .join(dir_name)
            .join(relative.trim_start_matches('/'))
    }

    pub fn process(&self, process: &Process<'_>) {
        let dir = self.paths.proc_root.join(process.pid.to_string());
        fs::create_dir_all(dir.join("ns")).unwrap();
        let _ = fs::remove_file(dir.join("ns/pid"));
        symlink(process.pid_ns, dir.join("ns/pid")).unwrap();
        fs::write(dir.join("cgroup"), &process.cgroup).unwrap();
        fs::write(dir.join("comm"), "test\n").unwrap();
        let nspid: Vec<String> = process.nspid.iter().map(u32::to_string).collect();
        fs::write(
            dir.join("status"),
            format!(
                "Name:\ttest\nTgid:\t{}\nPid:\t{}\nPPid:\t{}\nNSpid:\t{}\n",
                process.tgid,
                process.pid,
                process.ppid,
                nspid.join("\t")
            ),
        )
        .unwrap();
        fs::write(
            dir.join("stat"),
            format!(
                "{} (test proc) S {} 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {} 1000 10 0\n",
                process.pid, process.ppid, process.start_ticks
            ),
        )
        .unwrap();
    }

    pub fn remove_process(&self, pid: u32) {
        fs::remove_dir_all(self.paths.proc_root.join(pid.to_string())).unwrap();
    }

    pub fn view(&self) -> View {
        self.view_with(ViewOptions::default())
    }

    pub fn view_with(&self, options: ViewOptions) -> View {
        let layout = CgroupLayout::detect(&self.paths).unwrap();
        View::new(Resolver::new(self.paths.clone(), layout), options)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

pub fn render_text(
    view: &View,
    file: ServedFile,
    pid: u32,
) -> (String, cgview::service::view::Source) {
    let Rendered { bytes, source } = view.render(file, Some(pid)).unwrap();
    (String::from_utf8(bytes).unwrap(), source)
}

pub fn meminfo_kb(text: &str, name: &str) -> u64 {
    cgview::parse::meminfo::meminfo_value(text, name)
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

pub fn cpuinfo_ids(text: &str) -> Vec<u32> {
    cgview::parse::cpuinfo::parse_cpuinfo_blocks(text)
        .iter()
        .filter_map(|b| b.cpu)
        .collect()
}

/// Hybrid host like this project's machines: v1 memory, cpu, cpuacct, cpuset, blkio, and a
/// controller-less cgroup2 at `unified`.
pub fn hybrid_host() -> HostFixture {
    let mut host = HostFixture::new();
    for controller in ["cpu", "cpuacct", "cpuset", "memory", "blkio"] {
        host.mount_v1(controller, controller);
    }
    host.mount_v1("systemd", "name=systemd");
    host.mount_v2("unified", "/", "");
    host
}

/// `/proc/<pid>/cgroup` text for a process at `path` in every hierarchy of [`hybrid_host`].
pub fn hybrid_membership(path: &str) -> String {
    format!(
        "9:name=systemd:{path}\n8:blkio:{path}\n5:memory:{path}\n4:cpuset:{path}\n3:cpuacct:{path}\n2:cpu:{path}\n0::{path}\n"
    )
}

/// Pure v2 host with the usual controllers enabled.
pub fn v2_host() -> HostFixture {
    let mut host = HostFixture::new();
    host.mount_v2("", "/", "cpuset cpu io memory hugetlb pids");
    host
}

/// Writes a v1 memory cgroup with a limit, usage and an all-zero stat (except cache).
pub fn v1_memory(host: &HostFixture, path: &str, limit: &str, usage: u64) {
    host.cgroup_file(
        "memory",
        path,
        "memory.limit_in_bytes",
        &format!("{limit}\n"),
    );
    host.cgroup_file(
        "memory",
        path,
        "memory.usage_in_bytes",
        &format!("{usage}\n"),
    );
    host.cgroup_file(
        "memory",
        path,
        "memory.stat",
        "cache 0\nrss 0\ntotal_cache 4194304\ntotal_rss 1048576\ntotal_active_file 2097152\n\
         total_inactive_file 1048576\ntotal_active_anon 1048576\ntotal_inactive_anon 0\ntotal_shmem 0\n\
         total_mapped_file 524288\nhierarchical_memory_limit 536870912\n",
    );
}

/// Directory `inode` as root in thread `pid`'s place lists it, as the kernel asks: OPENDIR, READDIR,
/// RELEASEDIR.
pub fn list(fs: &Fs, inode: u64, pid: u32) -> Result<Vec<DirEntry>, Failure> {
    let caller = Caller::new(pid, Credentials::ROOT);
    let handle = fs.opendir(&caller, inode)?;
    let entries = fs.readdir(&caller, inode, handle);
    fs.releasedir(handle);
    Ok(entries?.to_vec())
}
