//! The files cgview serves and where each one lives in the mounted tree and on the host.

use crate::host::paths::HostPaths;
use std::path::PathBuf;

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
