//! The one catalog of what cgview serves and of what a container binds: the served files, where each lives
//! in the mounted tree, and which of them `cgview docker-args` and the admission webhook put over a
//! container's `/proc` and `/sys`.

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
    CpuOnline,
    CpuPresent,
    CpuPossible,
    CpuOffline,
}

impl ServedFile {
    pub const ALL: [ServedFile; 15] = [
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
        ServedFile::CpuOnline,
        ServedFile::CpuPresent,
        ServedFile::CpuPossible,
        ServedFile::CpuOffline,
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
            ServedFile::CpuOnline => "sys/devices/system/cpu/online",
            ServedFile::CpuPresent => "sys/devices/system/cpu/present",
            ServedFile::CpuPossible => "sys/devices/system/cpu/possible",
            ServedFile::CpuOffline => "sys/devices/system/cpu/offline",
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

    /// Files the host may lack (no PSI in the kernel, or `psi=0`); the tree leaves them out then.
    pub fn host_may_lack(self) -> bool {
        matches!(
            self,
            ServedFile::PressureCpu
                | ServedFile::PressureMemory
                | ServedFile::PressureIo
                | ServedFile::Slabinfo
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

/// What a container gets bound at one of its paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    File(ServedFile),
    /// A directory bound whole: the cpu directory, so `cpuN` entries hidden from the container are gone
    /// too (binding `online` alone leaves them); `sys/block` for `iostat`, which reads `/sys/block/*/stat`.
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
}

const fn path(bound: Bound, docker_args: bool, webhook_default: bool) -> ContainerPath {
    ContainerPath {
        bound,
        docker_args,
        webhook_default,
    }
}

/// Every path a container binds. `/proc/pressure/*` is absent: runc refuses to mount over `/proc/pressure`.
pub const CONTAINER_PATHS: [ContainerPath; 11] = [
    path(Bound::File(ServedFile::Cpuinfo), true, true),
    path(Bound::File(ServedFile::Meminfo), true, true),
    path(Bound::File(ServedFile::Stat), true, true),
    path(Bound::File(ServedFile::Uptime), true, true),
    path(Bound::File(ServedFile::Diskstats), true, true),
    path(Bound::File(ServedFile::Swaps), true, true),
    path(Bound::File(ServedFile::Loadavg), true, true),
    path(Bound::File(ServedFile::Slabinfo), true, false),
    path(Bound::File(ServedFile::CpuOnline), false, true),
    path(Bound::Directory("sys/devices/system/cpu"), true, false),
    path(Bound::Directory("sys/block"), true, false),
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

/// `cgview docker-args`' binds for a cgview mounted at `mount_point`, leaving out what `exists` says is not
/// there (a tree without a file must not be bound, or Docker would create an empty directory in its place
/// on the host).
pub fn container_binds(mount_point: &Path, exists: impl Fn(&Path) -> bool) -> Vec<ContainerBind> {
    CONTAINER_PATHS
        .iter()
        .filter(|path| path.docker_args)
        .map(|path| ContainerBind {
            source: mount_point.join(path.bound.tree_path()),
            target: format!("/{}", path.bound.tree_path()),
        })
        .filter(|bind| exists(&bind.source))
        .collect()
}

/// `docker run` arguments for `binds`, one `-v source:target:ro` pair each. Refuses a source with a
/// character that `$(cgview docker-args)` word splitting or Docker's `-v` syntax would break on.
pub fn docker_args(binds: &[ContainerBind]) -> Result<Vec<String>, String> {
    let mut args = Vec::with_capacity(binds.len() * 2);
    for bind in binds {
        let source = bind
            .source
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", bind.source.display()))?;
        if source
            .chars()
            .any(|c| c.is_whitespace() || c == ':' || c == ',')
        {
            return Err(format!(
                "{source:?} has whitespace, ':' or ',': docker -v and shell word splitting cannot take it"
            ));
        }
        args.push("-v".to_owned());
        args.push(format!("{source}:{}:ro", bind.target));
    }
    Ok(args)
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
        assert_eq!(ServedFile::from_tree_path("proc/nope"), None);
    }

    #[test]
    fn every_file_goes_over_its_proc_or_sys_path_read_only() {
        let binds = container_binds(Path::new("/var/lib/cgview"), |_| true);
        let args = docker_args(&binds).unwrap();
        assert_eq!(args.len(), 20);
        assert!(args.chunks(2).all(|pair| pair[0] == "-v"));
        assert!(args.contains(&"/var/lib/cgview/proc/meminfo:/proc/meminfo:ro".to_owned()));
        assert!(args.contains(
            &"/var/lib/cgview/sys/devices/system/cpu:/sys/devices/system/cpu:ro".to_owned()
        ));
        assert!(!args.iter().any(|a| a.contains("pressure")));
    }

    #[test]
    fn missing_files_are_left_out() {
        let binds = container_binds(Path::new("/m"), |p| !p.ends_with("proc/slabinfo"));
        assert_eq!(binds.len(), 9);
        assert!(binds.iter().all(|b| b.target != "/proc/slabinfo"));
    }

    #[test]
    fn mount_points_that_break_the_syntax_are_refused() {
        for bad in ["/var/lib/cg view", "/var/lib/cg:view", "/a,b"] {
            let binds = container_binds(Path::new(bad), |_| true);
            assert!(docker_args(&binds).is_err(), "{bad}");
        }
    }

    #[test]
    fn webhook_defaults_are_files_every_host_has() {
        let files = webhook_default_files();
        assert_eq!(files.len(), 8);
        assert!(files.iter().all(|file| !file.host_may_lack()));
        assert!(files.contains(&ServedFile::CpuOnline));
    }
}
