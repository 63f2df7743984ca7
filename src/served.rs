//! The files cgview serves and where each one lives in the mounted tree and on the host.

use crate::host::paths::HostPaths;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServedFile {
    Meminfo,
    Cpuinfo,
    Uptime,
    Diskstats,
    CpuOnline,
}

impl ServedFile {
    pub const ALL: [ServedFile; 5] = [
        ServedFile::Meminfo,
        ServedFile::Cpuinfo,
        ServedFile::Uptime,
        ServedFile::Diskstats,
        ServedFile::CpuOnline,
    ];

    /// The path below the mount point (and, with a leading `/`, on the host).
    pub fn tree_path(self) -> &'static str {
        match self {
            ServedFile::Meminfo => "proc/meminfo",
            ServedFile::Cpuinfo => "proc/cpuinfo",
            ServedFile::Uptime => "proc/uptime",
            ServedFile::Diskstats => "proc/diskstats",
            ServedFile::CpuOnline => "sys/devices/system/cpu/online",
        }
    }

    /// Accepts `proc/meminfo`, `/proc/meminfo` or `./proc/meminfo`.
    pub fn from_tree_path(path: &str) -> Option<ServedFile> {
        let path = path.trim_start_matches("./").trim_start_matches('/');
        Self::ALL.into_iter().find(|f| f.tree_path() == path)
    }

    /// The host file this one is derived from.
    pub fn host_path(self, paths: &HostPaths) -> PathBuf {
        let relative = self.tree_path();
        match relative.strip_prefix("proc/") {
            Some(name) => paths.proc_file(name),
            None => paths.sys_file(relative.trim_start_matches("sys/")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
    fn host_path_maps_into_injected_roots() {
        let paths = HostPaths {
            proc_root: "/fx/proc".into(),
            sys_root: "/fx/sys".into(),
            cgroup_root: "/fx/cg".into(),
        };
        assert_eq!(
            ServedFile::Uptime.host_path(&paths),
            Path::new("/fx/proc/uptime")
        );
        assert_eq!(
            ServedFile::CpuOnline.host_path(&paths),
            Path::new("/fx/sys/devices/system/cpu/online")
        );
    }
}
