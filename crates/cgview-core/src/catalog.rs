//! The one catalog of what cgview serves and of what a container binds: the served files, where each lives
//! in the mounted tree, and which of them `cgview docker-args` and the admission webhook put over a
//! container's `/proc` and `/sys`.

use crate::render::cpu_list::CpuListFormat;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServedFile {
    Meminfo,
    Cpuinfo,
    Stat,
    Uptime,
    Diskstats,
    Swaps,
    Loadavg,
    PressureCpu,
    PressureMemory,
    PressureIo,
    Slabinfo,
    Vmstat,
    CpuOnline,
    CpuPresent,
    CpuPossible,
    CpuOffline,
    NodeOnline,
    NodePossible,
    NodeHasCpu,
    NodeHasMemory,
    NodeHasNormalMemory,
    NodeHasHighMemory,
    NodeHasGenericInitiator,
}

impl ServedFile {
    pub const ALL: [ServedFile; 23] = [
        ServedFile::Meminfo,
        ServedFile::Cpuinfo,
        ServedFile::Stat,
        ServedFile::Uptime,
        ServedFile::Diskstats,
        ServedFile::Swaps,
        ServedFile::Loadavg,
        ServedFile::PressureCpu,
        ServedFile::PressureMemory,
        ServedFile::PressureIo,
        ServedFile::Slabinfo,
        ServedFile::Vmstat,
        ServedFile::CpuOnline,
        ServedFile::CpuPresent,
        ServedFile::CpuPossible,
        ServedFile::CpuOffline,
        ServedFile::NodeOnline,
        ServedFile::NodePossible,
        ServedFile::NodeHasCpu,
        ServedFile::NodeHasMemory,
        ServedFile::NodeHasNormalMemory,
        ServedFile::NodeHasHighMemory,
        ServedFile::NodeHasGenericInitiator,
    ];

    /// The path below the mount point (and, with a leading `/`, on the host).
    pub fn tree_path(self) -> &'static str {
        match self {
            ServedFile::Meminfo => "proc/meminfo",
            ServedFile::Cpuinfo => "proc/cpuinfo",
            ServedFile::Stat => "proc/stat",
            ServedFile::Uptime => "proc/uptime",
            ServedFile::Diskstats => "proc/diskstats",
            ServedFile::Swaps => "proc/swaps",
            ServedFile::Loadavg => "proc/loadavg",
            ServedFile::PressureCpu => "proc/pressure/cpu",
            ServedFile::PressureMemory => "proc/pressure/memory",
            ServedFile::PressureIo => "proc/pressure/io",
            ServedFile::Slabinfo => "proc/slabinfo",
            ServedFile::Vmstat => "proc/vmstat",
            ServedFile::CpuOnline => "sys/devices/system/cpu/online",
            ServedFile::CpuPresent => "sys/devices/system/cpu/present",
            ServedFile::CpuPossible => "sys/devices/system/cpu/possible",
            ServedFile::CpuOffline => "sys/devices/system/cpu/offline",
            ServedFile::NodeOnline => "sys/devices/system/node/online",
            ServedFile::NodePossible => "sys/devices/system/node/possible",
            ServedFile::NodeHasCpu => "sys/devices/system/node/has_cpu",
            ServedFile::NodeHasMemory => "sys/devices/system/node/has_memory",
            ServedFile::NodeHasNormalMemory => "sys/devices/system/node/has_normal_memory",
            ServedFile::NodeHasHighMemory => "sys/devices/system/node/has_high_memory",
            ServedFile::NodeHasGenericInitiator => "sys/devices/system/node/has_generic_initiator",
        }
    }

    /// Permission bits. slabinfo describes kernel heap layout, which the kernel shows to root only; so
    /// does cgview.
    pub fn mode(self) -> u16 {
        match self {
            ServedFile::Slabinfo => 0o400,
            _ => 0o444,
        }
    }

    /// Files the host may lack (no PSI in the kernel, or `psi=0`; no NUMA in the kernel, a node list
    /// of a later kernel or of 32-bit high memory); the tree leaves them out then.
    pub fn host_may_lack(self) -> bool {
        matches!(
            self,
            ServedFile::PressureCpu
                | ServedFile::PressureMemory
                | ServedFile::PressureIo
                | ServedFile::Slabinfo
        ) || self.is_node_list()
    }

    /// The lists of `sys/devices/system/node`: which nodes exist, have CPUs, have memory, ...
    pub fn is_node_list(self) -> bool {
        matches!(
            self,
            ServedFile::NodeOnline
                | ServedFile::NodePossible
                | ServedFile::NodeHasCpu
                | ServedFile::NodeHasMemory
                | ServedFile::NodeHasNormalMemory
                | ServedFile::NodeHasHighMemory
                | ServedFile::NodeHasGenericInitiator
        )
    }

    /// The cgroup file a pressure file is read from.
    pub fn cgroup_pressure_file(self) -> Option<&'static str> {
        match self {
            ServedFile::PressureCpu => Some("cpu.pressure"),
            ServedFile::PressureMemory => Some("memory.pressure"),
            ServedFile::PressureIo => Some("io.pressure"),
            _ => None,
        }
    }

    /// Accepts `proc/meminfo`, `/proc/meminfo` or `./proc/meminfo`.
    pub fn from_tree_path(path: &str) -> Option<ServedFile> {
        let path = path.trim_start_matches("./").trim_start_matches('/');
        Self::ALL.into_iter().find(|f| f.tree_path() == path)
    }
}

/// Whether a file below `sys/devices/system/cpu` (`relative` to it, e.g. `cpu3/topology/core_cpus_list`)
/// prints a set of CPUs, and how. Those files are shown restricted to the caller's visible CPUs (the other
/// entries of the directory are the host's), so that the topology `lscpu`, hwloc or psutil build from
/// them is the machine the container sees:
/// - `cpuN/topology/*_cpus`, `*_siblings` (masks) and `*_cpus_list`, `*_siblings_list` (lists): the
///   threads of a core, core, cluster, die, package, and s390's book and drawer;
/// - `cpuN/cache/indexN/shared_cpu_map` and `shared_cpu_list`: the CPUs sharing a cache;
/// - `enabled` (Linux 6.10+) and `isolated`, lists of CPUs at the directory's top (`online`, `present`,
///   `possible` and `offline` are served files).
pub fn cpu_dir_cpu_set_file(relative: &str) -> Option<CpuListFormat> {
    let parts: Vec<&str> = relative.split('/').collect();
    match parts.as_slice() {
        ["enabled" | "isolated"] => Some(CpuListFormat::List),
        [cpu, "topology", name] if is_numbered(cpu, "cpu") => {
            let (stem, format) = match name.strip_suffix("_list") {
                Some(stem) => (stem, CpuListFormat::List),
                None => (*name, CpuListFormat::Mask),
            };
            (stem.ends_with("_cpus") || stem.ends_with("_siblings")).then_some(format)
        }
        [cpu, "cache", index, name] if is_numbered(cpu, "cpu") && is_numbered(index, "index") => {
            match *name {
                "shared_cpu_list" => Some(CpuListFormat::List),
                "shared_cpu_map" => Some(CpuListFormat::Mask),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `cpu12` for `prefix` `cpu`: the prefix and at least one digit, nothing else.
fn is_numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// A file of each `sys/devices/system/node/nodeN` directory that is the caller's own; the directory's
/// other entries are the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeAttr {
    /// The node's CPUs the caller is shown, as a list.
    CpuList,
    /// The same as a mask.
    CpuMap,
    /// Distances to the nodes the caller is shown.
    Distance,
    /// The node's share of the caller's memory.
    Meminfo,
}

impl NodeAttr {
    pub const ALL: [NodeAttr; 4] = [
        NodeAttr::CpuList,
        NodeAttr::CpuMap,
        NodeAttr::Distance,
        NodeAttr::Meminfo,
    ];

    /// Its name in `nodeN`.
    pub fn name(self) -> &'static str {
        match self {
            NodeAttr::CpuList => "cpulist",
            NodeAttr::CpuMap => "cpumap",
            NodeAttr::Distance => "distance",
            NodeAttr::Meminfo => "meminfo",
        }
    }

    pub fn from_name(name: &str) -> Option<NodeAttr> {
        Self::ALL.into_iter().find(|attr| attr.name() == name)
    }

    /// The served file whose fallbacks its own are logged with (the one with the same source).
    pub fn fallback_file(self) -> ServedFile {
        match self {
            NodeAttr::CpuList | NodeAttr::CpuMap => ServedFile::CpuOnline,
            NodeAttr::Distance => ServedFile::NodeOnline,
            NodeAttr::Meminfo => ServedFile::Meminfo,
        }
    }
}

/// What a container gets bound at one of its paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    File(ServedFile),
    /// A directory bound whole: the cpu directory, so `cpuN` entries hidden from the container are gone
    /// too (binding `online` alone leaves them); the node directory likewise for `nodeN` (libnuma and
    /// `lscpu` list the directory); `sys/block` for `iostat`, which reads `/sys/block/*/stat`.
    Directory(&'static str),
}

impl Bound {
    /// The path below the mount point; with a leading `/`, the path in the container.
    pub fn tree_path(self) -> &'static str {
        match self {
            Bound::File(file) => file.tree_path(),
            Bound::Directory(path) => path,
        }
    }
}

/// One path of a container that cgview's view goes over, and which ways of giving the view bind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerPath {
    pub bound: Bound,
    /// `cgview docker-args` binds it (when the mounted tree has it).
    pub docker_args: bool,
    /// The admission webhook injects it unless `--files` says otherwise. The webhook mounts files only,
    /// each as a hostPath of type `File`, so it leaves out what a host may lack (kubelet would refuse to
    /// start the pod) and binds the CPU count file instead of the cpu directory.
    pub webhook_default: bool,
    /// The NRI plugin binds it unless `--nri-files` says otherwise: the files under `/proc` the webhook
    /// binds and the whole cpu directory (a runtime binds a directory as well as a file). The node
    /// directory and `sys/block` stay out (a host may lack them, and a missing bind source fails the
    /// container's start), as does the root-only `slabinfo`.
    pub nri_default: bool,
}

const fn path(
    bound: Bound,
    docker_args: bool,
    webhook_default: bool,
    nri_default: bool,
) -> ContainerPath {
    ContainerPath {
        bound,
        docker_args,
        webhook_default,
        nri_default,
    }
}

/// Every path a container binds. `/proc/pressure/*` and `/proc/vmstat` are absent: runc (1.1 and later)
/// refuses to mount over anything under `/proc` but the files listed here, and a container asking for
/// another fails to start.
pub const CONTAINER_PATHS: [ContainerPath; 12] = [
    path(Bound::File(ServedFile::Cpuinfo), true, true, true),
    path(Bound::File(ServedFile::Meminfo), true, true, true),
    path(Bound::File(ServedFile::Stat), true, true, true),
    path(Bound::File(ServedFile::Uptime), true, true, true),
    path(Bound::File(ServedFile::Diskstats), true, true, true),
    path(Bound::File(ServedFile::Swaps), true, true, true),
    path(Bound::File(ServedFile::Loadavg), true, true, true),
    path(Bound::File(ServedFile::Slabinfo), true, false, false),
    path(Bound::File(ServedFile::CpuOnline), false, true, false),
    path(
        Bound::Directory("sys/devices/system/cpu"),
        true,
        false,
        true,
    ),
    // Absent on a host without NUMA support: docker-args then leaves it out.
    path(
        Bound::Directory("sys/devices/system/node"),
        true,
        false,
        false,
    ),
    path(Bound::Directory("sys/block"), true, false, false),
];

/// The files the admission webhook injects by default, in catalog order.
pub fn webhook_default_files() -> Vec<ServedFile> {
    CONTAINER_PATHS
        .iter()
        .filter(|path| path.webhook_default)
        .filter_map(|path| match path.bound {
            Bound::File(file) => Some(file),
            Bound::Directory(_) => None,
        })
        .collect()
}

/// One bind mount: `source` on the host (below the mount point) over `target` in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerBind {
    pub source: PathBuf,
    pub target: String,
}

/// The paths `cgview docker-args` binds, leaving out those named in `without` (tree paths, as
/// `proc/uptime` or `/proc/uptime`). A name that is not one of them is an error, so a typo never passes
/// silently as "bind everything".
pub fn docker_bound(without: &[String]) -> Result<Vec<Bound>, String> {
    let bound: Vec<Bound> = CONTAINER_PATHS
        .iter()
        .filter(|path| path.docker_args)
        .map(|path| path.bound)
        .collect();
    for name in without {
        let name = name.trim_start_matches("./").trim_start_matches('/');
        if !bound.iter().any(|b| b.tree_path() == name) {
            let known: Vec<&str> = bound.iter().map(|b| b.tree_path()).collect();
            return Err(format!(
                "--without {name}: not a path docker-args binds (it binds {})",
                known.join(", ")
            ));
        }
    }
    Ok(bound
        .into_iter()
        .filter(|b| {
            !without
                .iter()
                .any(|name| name.trim_start_matches("./").trim_start_matches('/') == b.tree_path())
        })
        .collect())
}

/// The binds of `bound` for a cgview mounted at `mount_point`, leaving out what `exists` says is not
/// there (a tree without a file must not be bound: Docker refuses a missing `--mount` source).
pub fn container_binds(
    mount_point: &Path,
    bound: &[Bound],
    exists: impl Fn(&Path) -> bool,
) -> Vec<ContainerBind> {
    bound
        .iter()
        .map(|bound| ContainerBind {
            source: mount_point.join(bound.tree_path()),
            target: format!("/{}", bound.tree_path()),
        })
        .filter(|bind| exists(&bind.source))
        .collect()
}

/// The name, below the mount point, of a bind source that never exists: `docker-args` adds a bind of it
/// while nothing serves, so that `docker run $(cgview docker-args) ...` fails, and Docker's error names
/// why (`bind source path does not exist: /var/lib/cgview/NOT-SERVED-BY-CGVIEW`), whatever the mount
/// point holds (nothing, directories an older `-v` bind made, another file system).
pub const NOT_SERVED_SOURCE: &str = "NOT-SERVED-BY-CGVIEW";

/// The bind that makes a container fail to start while `mount_point` is not served.
pub fn not_served_bind(mount_point: &Path) -> ContainerBind {
    ContainerBind {
        source: mount_point.join(NOT_SERVED_SOURCE),
        target: format!("/{NOT_SERVED_SOURCE}"),
    }
}

/// `docker run` arguments for `binds`, one `--mount type=bind,source=..,target=..,readonly` pair each.
/// The `--mount` form, unlike `-v`, never creates a missing source: a container started or restarted
/// while cgview is down fails instead of getting the host's files, and nothing is made under the mount
/// point. Refuses a source with a character that `$(cgview docker-args)` word splitting or the
/// `--mount` syntax (comma-separated `key=value`) would break on.
pub fn docker_args(binds: &[ContainerBind]) -> Result<Vec<String>, String> {
    let mut args = Vec::with_capacity(binds.len() * 2);
    for bind in binds {
        let source = bind
            .source
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", bind.source.display()))?;
        if source
            .chars()
            .any(|c| c.is_whitespace() || c == ':' || c == ',' || c == '"' || c == '\'')
        {
            return Err(format!(
                "{source:?} has whitespace, ':', ',' or a quote: docker --mount and shell word splitting cannot take it"
            ));
        }
        args.push("--mount".to_owned());
        args.push(format!(
            "type=bind,source={source},target={},readonly",
            bind.target
        ));
    }
    Ok(args)
}

/// Whether `relative` (below a mount point) names a directory that a container runtime may have made in
/// the place of a bind source while nothing served there (Docker's `-v` creates a missing source, and its
/// parents, as directories): a path a container binds, or one of its parents.
pub fn may_be_left_by_a_runtime(relative: &Path) -> bool {
    let bound = CONTAINER_PATHS
        .iter()
        .map(|path| path.bound.tree_path())
        .chain(ServedFile::ALL.iter().map(|file| file.tree_path()))
        .chain(std::iter::once(NOT_SERVED_SOURCE));
    let relative = relative.to_string_lossy();
    !relative.is_empty()
        && bound.into_iter().any(|path| {
            path == relative
                || path
                    .strip_prefix(relative.as_ref())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_tree_path_accepts_leading_slash() {
        assert_eq!(
            ServedFile::from_tree_path("/proc/meminfo"),
            Some(ServedFile::Meminfo)
        );
        assert_eq!(
            ServedFile::from_tree_path("sys/devices/system/cpu/online"),
            Some(ServedFile::CpuOnline)
        );
        assert_eq!(
            ServedFile::from_tree_path("proc/vmstat"),
            Some(ServedFile::Vmstat)
        );
        assert_eq!(ServedFile::from_tree_path("proc/nope"), None);
    }

    fn all_binds(mount_point: &str) -> Vec<ContainerBind> {
        container_binds(Path::new(mount_point), &docker_bound(&[]).unwrap(), |_| {
            true
        })
    }

    #[test]
    fn every_path_goes_over_its_proc_or_sys_path_read_only_with_the_mount_form() {
        let args = docker_args(&all_binds("/var/lib/cgview")).unwrap();
        assert_eq!(args.len(), 22);
        assert!(args.chunks(2).all(|pair| pair[0] == "--mount"));
        assert!(args.contains(
            &"type=bind,source=/var/lib/cgview/proc/meminfo,target=/proc/meminfo,readonly"
                .to_owned()
        ));
        assert!(args.contains(
            &"type=bind,source=/var/lib/cgview/sys/devices/system/cpu,target=/sys/devices/system/cpu,readonly"
                .to_owned()
        ));
        assert!(args.contains(
            &"type=bind,source=/var/lib/cgview/sys/devices/system/node,target=/sys/devices/system/node,readonly"
                .to_owned()
        ));
        assert!(!args.iter().any(|a| a.contains("pressure")));
        assert!(
            !args.iter().any(|a| a.contains("vmstat")),
            "runc refuses it"
        );
        assert!(!args.iter().any(|a| a.contains("-v")));
    }

    #[test]
    fn missing_files_are_left_out() {
        let bound = docker_bound(&[]).unwrap();
        let binds = container_binds(Path::new("/m"), &bound, |p| {
            !p.ends_with("proc/slabinfo") && !p.ends_with("sys/devices/system/node")
        });
        assert_eq!(binds.len(), 9);
        assert!(binds.iter().all(|b| b.target != "/proc/slabinfo"));
        assert!(binds.iter().all(|b| b.target != "/sys/devices/system/node"));
    }

    #[test]
    fn without_leaves_out_named_paths_and_refuses_unknown_ones() {
        let bound = docker_bound(&["proc/uptime".into(), "/sys/block".into()]).unwrap();
        assert_eq!(bound.len(), 9);
        assert!(!bound.contains(&Bound::File(ServedFile::Uptime)));
        assert!(!bound.contains(&Bound::Directory("sys/block")));
        let error = docker_bound(&["proc/uptim".into()]).unwrap_err();
        assert!(
            error.contains("proc/uptim") && error.contains("proc/uptime"),
            "{error}"
        );
        // The cpu count file is bound through its directory, never on its own.
        assert!(docker_bound(&["sys/devices/system/cpu/online".into()]).is_err());
    }

    #[test]
    fn the_not_served_bind_names_why() {
        let bind = not_served_bind(Path::new("/var/lib/cgview"));
        let args = docker_args(&[bind]).unwrap();
        assert_eq!(
            args[1],
            "type=bind,source=/var/lib/cgview/NOT-SERVED-BY-CGVIEW,target=/NOT-SERVED-BY-CGVIEW,readonly"
        );
    }

    #[test]
    fn mount_points_that_break_the_syntax_are_refused() {
        for bad in ["/var/lib/cg view", "/var/lib/cg:view", "/a,b", "/a\"b"] {
            assert!(docker_args(&all_binds(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_a_runtime_may_leave_is_bound_paths_and_their_parents() {
        for left in [
            "proc",
            "proc/meminfo",
            "sys",
            "sys/devices",
            "sys/devices/system/cpu",
            "sys/devices/system/cpu/online",
            "sys/devices/system/node",
            "sys/block",
            "proc/pressure",
            "proc/pressure/io",
        ] {
            assert!(may_be_left_by_a_runtime(Path::new(left)), "{left}");
        }
        for foreign in [
            "",
            "etc",
            "proc/meminfo/x",
            "pro",
            "sys/devices/system/cpu/cpu0",
            "sys/devices/system/node/node0",
            "data",
        ] {
            assert!(!may_be_left_by_a_runtime(Path::new(foreign)), "{foreign}");
        }
    }

    #[test]
    fn cpu_set_files_of_the_cpu_directory_are_named_by_pattern() {
        use CpuListFormat::{List, Mask};
        for (relative, format) in [
            ("cpu0/topology/core_cpus", Some(Mask)),
            ("cpu0/topology/core_cpus_list", Some(List)),
            ("cpu12/topology/thread_siblings", Some(Mask)),
            ("cpu12/topology/thread_siblings_list", Some(List)),
            ("cpu1/topology/core_siblings_list", Some(List)),
            ("cpu1/topology/package_cpus", Some(Mask)),
            ("cpu1/topology/die_cpus_list", Some(List)),
            ("cpu1/topology/cluster_cpus", Some(Mask)),
            ("cpu1/topology/book_siblings", Some(Mask)),
            ("cpu1/topology/drawer_siblings_list", Some(List)),
            ("cpu3/cache/index0/shared_cpu_map", Some(Mask)),
            ("cpu3/cache/index3/shared_cpu_list", Some(List)),
            ("enabled", Some(List)),
            ("isolated", Some(List)),
            // Ids and everything else stay the host's.
            ("cpu1/topology/core_id", None),
            ("cpu1/topology/physical_package_id", None),
            ("cpu1/topology/die_id", None),
            ("cpu1/topology/cluster_id", None),
            ("cpu1/topology/ppin", None),
            ("cpu3/cache/index0/level", None),
            ("cpu3/cache/index0/id", None),
            ("kernel_max", None),
            ("online", None),
            ("cpufreq/policy0/related_cpus", None),
            ("cpu/topology/core_cpus", None),
            ("cpux/topology/core_cpus", None),
            ("cpu1/cache/indexa/shared_cpu_map", None),
            ("cpu1/topology/core_cpus/x", None),
            ("cpu1/enabled", None),
        ] {
            assert_eq!(cpu_dir_cpu_set_file(relative), format, "{relative}");
        }
    }

    #[test]
    fn node_attrs_are_named_as_the_kernel_names_them() {
        for attr in NodeAttr::ALL {
            assert_eq!(NodeAttr::from_name(attr.name()), Some(attr));
        }
        assert_eq!(NodeAttr::from_name("numastat"), None);
        assert_eq!(
            ServedFile::from_tree_path("sys/devices/system/node/has_cpu"),
            Some(ServedFile::NodeHasCpu)
        );
        assert!(ServedFile::ALL
            .iter()
            .filter(|f| f.is_node_list())
            .all(|f| f.tree_path().starts_with("sys/devices/system/node/") && f.host_may_lack()));
    }

    #[test]
    fn webhook_defaults_are_files_every_host_has() {
        let files = webhook_default_files();
        assert_eq!(files.len(), 8);
        assert!(files.iter().all(|file| !file.host_may_lack()));
        assert!(files.contains(&ServedFile::CpuOnline));
        assert!(!files.contains(&ServedFile::Vmstat), "runc refuses it");
    }
}
