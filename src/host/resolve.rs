//! From a caller's thread id to its container: cgroups per controller and the anchor process whose start
//! time is the container's (design.md section 1).

use super::cgroup_path::{is_ancestor_or_self, relative_to_mount, strip_init_scope};
use super::error::{read_text, ReadError, WrapPath};
use super::layout::{CgroupLayout, CgroupMount, CgroupVersion, Controller};
use super::paths::HostPaths;
use cgview_core::parse::cgroup_membership::{parse_cgroup_membership, Membership};
use cgview_core::parse::pid_stat::{parse_nspid, parse_start_ticks};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A cgroup directory in one mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CgroupDir {
    pub version: CgroupVersion,
    pub mount_point: PathBuf,
    /// The directory relative to the mount point; empty for the hierarchy's root.
    pub relative: PathBuf,
}

impl CgroupDir {
    pub fn path(&self) -> PathBuf {
        self.mount_point.join(&self.relative)
    }

    /// The hierarchy's root cgroup: the host itself.
    pub fn is_root(&self) -> bool {
        self.relative.as_os_str().is_empty()
    }

    /// This cgroup's directory, then each ancestor's, up to the mount point.
    pub fn chain(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.relative
            .ancestors()
            .map(move |relative| self.mount_point.join(relative))
    }

    /// A file of this cgroup.
    pub fn file(&self, name: &str) -> PathBuf {
        let mut path = self.path();
        path.push(name);
        path
    }
}

/// The container's cgroup for each controller; `None` when the host has no hierarchy for it or the
/// cgroup is outside what the daemon's cgroup mounts show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ContainerCgroups {
    pub memory: Option<CgroupDir>,
    pub cpu: Option<CgroupDir>,
    pub cpuacct: Option<CgroupDir>,
    pub cpuset: Option<CgroupDir>,
    pub io: Option<CgroupDir>,
    /// The cgroup in the unified (v2) hierarchy, whichever controllers it has: pressure (PSI) files live
    /// there, also on hybrid hosts.
    pub unified: Option<CgroupDir>,
}

impl ContainerCgroups {
    pub fn get(&self, controller: Controller) -> Option<&CgroupDir> {
        match controller {
            Controller::Memory => self.memory.as_ref(),
            Controller::Cpu => self.cpu.as_ref(),
            Controller::Cpuacct => self.cpuacct.as_ref(),
            Controller::Cpuset => self.cpuset.as_ref(),
            Controller::Io => self.io.as_ref(),
        }
    }

    fn slot(&mut self, controller: Controller) -> &mut Option<CgroupDir> {
        match controller {
            Controller::Memory => &mut self.memory,
            Controller::Cpu => &mut self.cpu,
            Controller::Cpuacct => &mut self.cpuacct,
            Controller::Cpuset => &mut self.cpuset,
            Controller::Io => &mut self.io,
        }
    }
}

/// Whose start time is the container's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anchor {
    /// The caller shares the daemon's (the host's) pid namespace: the host's uptime applies.
    HostNamespace,
    /// The init (pid 1) of the caller's pid namespace.
    NamespaceInit { pid: u32, start_ticks: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Container {
    pub cgroups: ContainerCgroups,
    pub anchor: Anchor,
    /// Which incarnation of those cgroups: two containers with the same paths but different inodes are
    /// different containers to every cache.
    pub inodes: CgroupInodes,
}

/// Inode numbers of a container's cgroup directories, in [`ContainerCgroups`] field order (0 where it
/// has none). On cgroup2 the inode is the cgroup id, and cgroupfs v1 numbers directories the same way
/// (kernfs): a cgroup removed and made again at the same path (a systemd service restarted under
/// `MemoryMax=`, a pod's container restarted) gets new numbers, so its new processes never meet the old
/// cgroup's cached files or snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CgroupInodes(pub [u64; 6]);

impl CgroupInodes {
    /// Reads the inodes of `cgroups`' directories now.
    pub fn of(cgroups: &ContainerCgroups) -> CgroupInodes {
        let inode = |dir: &Option<CgroupDir>| {
            dir.as_ref()
                .and_then(|d| std::fs::metadata(d.path()).ok())
                .map_or(0, |m| std::os::unix::fs::MetadataExt::ino(&m))
        };
        CgroupInodes([
            inode(&cgroups.memory),
            inode(&cgroups.cpu),
            inode(&cgroups.cpuacct),
            inode(&cgroups.cpuset),
            inode(&cgroups.io),
            inode(&cgroups.unified),
        ])
    }
}

/// Deepest process tree walked looking for a namespace's init; real trees are a few levels deep.
const MAX_ANCESTRY_DEPTH: usize = 256;

/// Resolves callers to containers. Holds the detected layout and a small cache of pid-namespace inits.
#[derive(Debug)]
pub struct Resolver {
    paths: HostPaths,
    layout: CgroupLayout,
    host_pid_namespace: Option<OsString>,
    /// pid namespace link (`pid:[inode]`) -> (init pid, init start ticks). Validated on every use.
    namespace_inits: Mutex<HashMap<OsString, (u32, u64)>>,
    /// The proc root, for reading thread files relative to it without building paths.
    proc_dir: Option<std::os::fd::OwnedFd>,
    /// Resolutions attempted: each costs several procfs reads, so the caches above must not repeat one.
    resolutions: AtomicU64,
}

/// Entries kept in the namespace-init cache before it is cleared; bounds memory under pid churn.
const NAMESPACE_CACHE_LIMIT: usize = 4096;

impl Resolver {
    pub fn new(paths: HostPaths, layout: CgroupLayout) -> Resolver {
        let host_pid_namespace = std::fs::read_link(paths.proc_file("self/ns/pid"))
            .ok()
            .map(PathBuf::into_os_string);
        let proc_dir = nix::fcntl::open(
            &paths.proc_root,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok();
        Resolver {
            paths,
            layout,
            host_pid_namespace,
            namespace_inits: Mutex::new(HashMap::new()),
            proc_dir,
            resolutions: AtomicU64::new(0),
        }
    }

    pub fn layout(&self) -> &CgroupLayout {
        &self.layout
    }

    pub fn paths(&self) -> &HostPaths {
        &self.paths
    }

    /// Resolves a caller (a thread or process id as seen in the daemon's pid namespace).
    pub fn resolve(&self, tid: u32) -> Result<Container, ReadError> {
        self.resolutions.fetch_add(1, Ordering::Relaxed);
        let own = self.read_memberships(tid)?;
        let namespace_path = self.paths.pid_file(tid, "ns/pid");
        let namespace = std::fs::read_link(&namespace_path)
            .wrap_path(&namespace_path)?
            .into_os_string();
        let in_host_namespace = self.host_pid_namespace.as_ref() == Some(&namespace);
        if in_host_namespace {
            let cgroups = self.map_cgroups(&own, None);
            return Ok(Container {
                inodes: CgroupInodes::of(&cgroups),
                cgroups,
                anchor: Anchor::HostNamespace,
            });
        }
        let (init_pid, start_ticks) = self.namespace_init(tid, namespace)?;
        let init = self.read_memberships(init_pid)?;
        let cgroups = self.map_cgroups(&own, Some(&init));
        Ok(Container {
            inodes: CgroupInodes::of(&cgroups),
            cgroups,
            anchor: Anchor::NamespaceInit {
                pid: init_pid,
                start_ticks,
            },
        })
    }

    /// How many resolutions were attempted since start, successful or not.
    pub fn resolutions(&self) -> u64 {
        self.resolutions.load(Ordering::Relaxed)
    }

    /// Which thread `tid` names now: the inode number of its `/proc/<tid>` directory, read with one
    /// `statx` and no descriptor. procfs makes that inode when the thread is first looked up and keeps it
    /// while the thread lives; a thread that reuses the id gets a new inode with a new number (numbers
    /// come from a counter that takes billions of inodes to wrap, far beyond a cached caller's lifetime).
    /// It can also change for the same thread when the kernel drops the inode under memory pressure,
    /// which only costs a caller a new resolve. `None` once the thread is gone.
    pub fn thread_identity(&self, tid: u32) -> Option<u64> {
        let proc_dir = self.proc_dir.as_ref()?;
        let mut name = [0u8; 10];
        let name = format_tid(tid, &mut name);
        nix::sys::stat::fstatat(proc_dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .ok()
            .map(|stat| stat.st_ino)
    }

    /// The inode of thread `tid`'s pid namespace (one `statx`, no descriptor): what a thread's requests
    /// are queued by before its container is known. `None` once the thread is gone.
    pub fn pid_namespace_of(&self, tid: u32) -> Option<u64> {
        let proc_dir = self.proc_dir.as_ref()?;
        let mut digits = [0u8; 10];
        let tid = format_tid(tid, &mut digits);
        let mut path = [0u8; 17];
        path[..tid.len()].copy_from_slice(tid);
        path[tid.len()..tid.len() + 7].copy_from_slice(b"/ns/pid");
        let path = &path[..tid.len() + 7];
        nix::sys::stat::fstatat(proc_dir, path, nix::fcntl::AtFlags::empty())
            .ok()
            .map(|stat| stat.st_ino)
    }

    fn read_memberships(&self, pid: u32) -> Result<Vec<Membership>, ReadError> {
        let path = self.paths.pid_file(pid, "cgroup");
        parse_cgroup_membership(&read_text(&path)?).wrap_path(&path)
    }

    /// The container's cgroup per controller: the namespace init's (without a trailing `init.scope`) when
    /// it contains the caller's cgroup, else the caller's own (a shared-pid-namespace pod, whose pid 1 is
    /// the pause container in a sibling cgroup).
    fn map_cgroups(&self, own: &[Membership], init: Option<&[Membership]>) -> ContainerCgroups {
        let mut cgroups = ContainerCgroups::default();
        for controller in Controller::ALL {
            if let Some(mount) = self.layout.mount_for(controller) {
                *cgroups.slot(controller) = self.container_dir(mount, own, init);
            }
        }
        if let Some(unified) = &self.layout.unified {
            cgroups.unified = self.container_dir(unified, own, init);
        }
        cgroups
    }

    fn container_dir(
        &self,
        mount: &CgroupMount,
        own: &[Membership],
        init: Option<&[Membership]>,
    ) -> Option<CgroupDir> {
        let own_path = membership_in(&self.layout, own, mount)?;
        let container_path = init
            .and_then(|init| membership_in(&self.layout, init, mount))
            .map(strip_init_scope)
            .filter(|init_path| is_ancestor_or_self(init_path, own_path))
            .unwrap_or(own_path);
        relative_to_mount(container_path, &mount.root).map(|relative| CgroupDir {
            version: mount.version,
            mount_point: mount.mount_point.clone(),
            relative,
        })
    }

    /// Finds pid 1 of the namespace `namespace` that `tid` lives in, by walking up the caller's ancestry:
    /// the namespace's init is the first ancestor that is pid 1 at the caller's nesting depth.
    fn namespace_init(&self, tid: u32, namespace: OsString) -> Result<(u32, u64), ReadError> {
        if let Some(&(pid, start_ticks)) = self.namespace_inits.lock().get(&namespace) {
            if self.start_ticks(pid).ok() == Some(start_ticks)
                && self.pid_namespace(pid).as_ref() == Some(&namespace)
            {
                return Ok((pid, start_ticks));
            }
        }
        let status_path = self.paths.pid_file(tid, "status");
        let mut status = read_text(&status_path)?;
        // Threads of a namespace's pid 1 have their own ids and their parent is outside the namespace:
        // start from the thread group leader.
        let mut current = tid;
        if let Some(tgid) = status_field(&status, "Tgid:").filter(|&tgid| tgid != tid && tgid != 0)
        {
            current = tgid;
            status = read_text(&self.paths.pid_file(tgid, "status"))?;
        }
        let depth = parse_nspid(&status).map_or(0, |ids| ids.len());
        let mut current_status = status;
        for _ in 0..MAX_ANCESTRY_DEPTH {
            let ids = parse_nspid(&current_status).unwrap_or_default();
            if ids.len() == depth && ids.last() == Some(&1) {
                let start_ticks = self.start_ticks(current)?;
                let mut cache = self.namespace_inits.lock();
                if cache.len() >= NAMESPACE_CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(namespace, (current, start_ticks));
                return Ok((current, start_ticks));
            }
            let parent = status_field(&current_status, "PPid:").filter(|&p| p != 0);
            let Some(parent) = parent else { break };
            current = parent;
            let path = self.paths.pid_file(current, "status");
            current_status = read_text(&path)?;
        }
        Err(ReadError::Parse {
            path: status_path,
            source: cgview_core::parse::ParseError::new(
                "pid namespace init",
                "no ancestor is pid 1",
            ),
        })
    }

    fn start_ticks(&self, pid: u32) -> Result<u64, ReadError> {
        let path = self.paths.pid_file(pid, "stat");
        parse_start_ticks(&read_text(&path)?).wrap_path(&path)
    }

    fn pid_namespace(&self, pid: u32) -> Option<OsString> {
        std::fs::read_link(self.paths.pid_file(pid, "ns/pid"))
            .ok()
            .map(PathBuf::into_os_string)
    }
}

/// The path printed for `mount`'s hierarchy in a process's memberships.
fn membership_in<'a>(
    layout: &CgroupLayout,
    memberships: &'a [Membership],
    mount: &CgroupMount,
) -> Option<&'a str> {
    memberships
        .iter()
        .find(|m| match mount.version {
            CgroupVersion::V2 => m.is_unified(),
            CgroupVersion::V1 => {
                !m.is_unified() && layout.v1_mount_for_line(&m.controllers) == Some(mount)
            }
        })
        .map(|m| m.path.as_str())
}

/// `tid` in decimal, written into `buffer` without allocating.
fn format_tid(tid: u32, buffer: &mut [u8; 10]) -> &[u8] {
    let mut start = buffer.len();
    let mut rest = tid;
    loop {
        start -= 1;
        buffer[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            return &buffer[start..];
        }
    }
}

/// A numeric field of `/proc/<pid>/status`, e.g. `status_field(text, "PPid:")`.
fn status_field(status: &str, name: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    const HOST_NS: &str = "pid:[4026531836]";
    const CONTAINER_NS: &str = "pid:[4026532999]";

    fn process(
        proc_root: &Path,
        pid: u32,
        tgid: u32,
        ppid: u32,
        nspid: &str,
        ns: &str,
        cgroup: &str,
    ) {
        let dir = proc_root.join(pid.to_string());
        fs::create_dir_all(dir.join("ns")).unwrap();
        symlink(ns, dir.join("ns/pid")).unwrap();
        fs::write(dir.join("cgroup"), format!("0::{cgroup}\n")).unwrap();
        fs::write(
            dir.join("status"),
            format!("Name:\tx\nTgid:\t{tgid}\nPid:\t{pid}\nPPid:\t{ppid}\nNSpid:\t{nspid}\n"),
        )
        .unwrap();
        let stat = format!(
            "{pid} (x) S {ppid} 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {} 0 0",
            5000 + pid
        );
        fs::write(dir.join("stat"), stat).unwrap();
    }

    fn resolver(root: &Path) -> Resolver {
        let proc_root = root.join("proc");
        fs::create_dir_all(proc_root.join("self/ns")).unwrap();
        symlink(HOST_NS, proc_root.join("self/ns/pid")).unwrap();
        let cgroup_root = root.join("cgroup");
        fs::create_dir_all(&cgroup_root).unwrap();
        let layout = CgroupLayout {
            v1: Vec::new(),
            unified: Some(CgroupMount {
                version: CgroupVersion::V2,
                mount_point: cgroup_root.clone(),
                root: "/".into(),
                controllers: vec!["memory".into(), "cpu".into()],
            }),
        };
        let paths = HostPaths {
            proc_root,
            sys_root: root.join("sys"),
            cgroup_root,
        };
        Resolver::new(paths, layout)
    }

    #[test]
    fn resolve_thread_of_namespace_init_finds_init() {
        let tmp = tempfile::tempdir().unwrap();
        let resolver = resolver(tmp.path());
        let proc_root = tmp.path().join("proc");
        process(
            &proc_root,
            50,
            50,
            1,
            "50",
            HOST_NS,
            "/system.slice/containerd.service",
        );
        process(&proc_root, 100, 100, 50, "100\t1", CONTAINER_NS, "/pod/ctr");
        // A worker thread of pid 1: its own ids, and its parent is the runtime outside the namespace.
        process(&proc_root, 101, 100, 50, "101\t7", CONTAINER_NS, "/pod/ctr");

        let container = resolver.resolve(101).unwrap();
        assert_eq!(
            container.anchor,
            Anchor::NamespaceInit {
                pid: 100,
                start_ticks: 5100
            }
        );
        assert_eq!(
            container.cgroups.memory.unwrap().relative,
            Path::new("pod/ctr")
        );
    }

    #[test]
    fn resolve_child_in_namespace_walks_up_to_init() {
        let tmp = tempfile::tempdir().unwrap();
        let resolver = resolver(tmp.path());
        let proc_root = tmp.path().join("proc");
        process(&proc_root, 50, 50, 1, "50", HOST_NS, "/");
        process(
            &proc_root,
            100,
            100,
            50,
            "100\t1",
            CONTAINER_NS,
            "/lxc/c1/init.scope",
        );
        process(
            &proc_root,
            120,
            120,
            100,
            "120\t9",
            CONTAINER_NS,
            "/lxc/c1/app.service",
        );
        process(
            &proc_root,
            130,
            130,
            120,
            "130\t12",
            CONTAINER_NS,
            "/lxc/c1/app.service",
        );

        let container = resolver.resolve(130).unwrap();
        assert!(matches!(
            container.anchor,
            Anchor::NamespaceInit { pid: 100, .. }
        ));
        assert_eq!(container.cgroups.cpu.unwrap().relative, Path::new("lxc/c1"));
    }

    #[test]
    fn resolve_host_namespace_caller_uses_own_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let resolver = resolver(tmp.path());
        process(
            &tmp.path().join("proc"),
            70,
            70,
            1,
            "70",
            HOST_NS,
            "/docker/abc",
        );
        let container = resolver.resolve(70).unwrap();
        assert_eq!(container.anchor, Anchor::HostNamespace);
        assert_eq!(
            container.cgroups.memory.unwrap().relative,
            Path::new("docker/abc")
        );
    }

    #[test]
    fn thread_identity_names_the_thread_and_changes_when_its_id_is_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let resolver = resolver(tmp.path());
        let proc_root = tmp.path().join("proc");
        process(&proc_root, 4_294_967, 4_294_967, 1, "1", HOST_NS, "/a");
        let first = resolver.thread_identity(4_294_967).unwrap();
        assert_eq!(resolver.thread_identity(4_294_967), Some(first));
        assert_eq!(resolver.thread_identity(12), None);
        // The thread exits and another takes its id: a new /proc/<tid>.
        let kept = tmp.path().join("old");
        fs::rename(proc_root.join("4294967"), &kept).unwrap();
        process(&proc_root, 4_294_967, 4_294_967, 1, "1", HOST_NS, "/a");
        assert_ne!(resolver.thread_identity(4_294_967), Some(first));
        let mut name = [0u8; 10];
        assert_eq!(format_tid(u32::MAX, &mut name), b"4294967295");
        assert_eq!(format_tid(0, &mut name), b"0");
        assert_eq!(format_tid(7, &mut name), b"7");
    }

    #[test]
    fn pid_namespace_of_a_live_thread_is_its_namespace_inode() {
        let resolver = Resolver::new(HostPaths::default(), CgroupLayout::default());
        let own = std::fs::metadata("/proc/self/ns/pid").unwrap();
        let tid = nix::unistd::gettid().as_raw() as u32;
        assert_eq!(
            resolver.pid_namespace_of(tid),
            Some(std::os::unix::fs::MetadataExt::ino(&own))
        );
        assert_eq!(resolver.pid_namespace_of(u32::MAX), None);
    }

    #[test]
    fn a_cgroup_made_again_at_the_same_path_is_another_container() {
        let tmp = tempfile::tempdir().unwrap();
        let resolver = resolver(tmp.path());
        process(&tmp.path().join("proc"), 70, 70, 1, "70", HOST_NS, "/svc");
        let cgroup = tmp.path().join("cgroup/svc");
        fs::create_dir_all(&cgroup).unwrap();
        let before = resolver.resolve(70).unwrap();
        // Keep the old inode in use so the file system cannot hand the same number out again at once.
        let old = tmp.path().join("old-svc");
        fs::rename(&cgroup, &old).unwrap();
        fs::create_dir_all(&cgroup).unwrap();
        let after = resolver.resolve(70).unwrap();
        assert_eq!(before.cgroups, after.cgroups);
        assert_ne!(before.inodes, after.inodes);
        assert_ne!(before, after);
    }

    #[test]
    fn resolve_dead_caller_is_vanished() {
        let tmp = tempfile::tempdir().unwrap();
        let error = resolver(tmp.path()).resolve(4242).unwrap_err();
        assert!(error.is_vanished());
    }

    #[test]
    fn resolve_namespace_without_init_ancestor_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let resolver = resolver(tmp.path());
        process(
            &tmp.path().join("proc"),
            130,
            130,
            0,
            "130\t12",
            CONTAINER_NS,
            "/x",
        );
        resolver.resolve(130).unwrap_err();
    }
}
