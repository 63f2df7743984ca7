//! Where the host's `/proc`, `/sys` and cgroup mounts are. Tests point these at fixture trees.

use cgview_core::catalog::ServedFile;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// The host's procfs, normally `/proc`.
    pub proc_root: PathBuf,
    /// The host's sysfs, normally `/sys`.
    pub sys_root: PathBuf,
    /// Where the cgroup hierarchies are mounted, normally `/sys/fs/cgroup`. Only cgroup mounts at or below
    /// this directory (as listed in `<proc_root>/self/mountinfo`) are used.
    pub cgroup_root: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}

impl HostPaths {
    /// A file of the host's procfs, e.g. `proc_file("meminfo")`.
    pub fn proc_file(&self, name: &str) -> PathBuf {
        self.proc_root.join(name)
    }

    /// A file of a process's procfs directory, e.g. `pid_file(42, "cgroup")`.
    pub fn pid_file(&self, pid: u32, name: &str) -> PathBuf {
        let mut path = self.proc_root.join(pid.to_string());
        path.push(name);
        path
    }

    /// A file of the host's sysfs.
    pub fn sys_file(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.sys_root.join(relative)
    }

    /// The host file `file` is derived from.
    pub fn served_file(&self, file: ServedFile) -> PathBuf {
        let relative = file.tree_path();
        match relative.strip_prefix("proc/") {
            Some(name) => self.proc_file(name),
            None => self.sys_file(relative.trim_start_matches("sys/")),
        }
    }

    /// True when the roots are the live system's, so kernel interfaces beyond plain files may be used.
    pub fn is_live_system(&self) -> bool {
        self.proc_root == Path::new("/proc")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_files_map_into_injected_roots() {
        let paths = HostPaths {
            proc_root: "/fx/proc".into(),
            sys_root: "/fx/sys".into(),
            cgroup_root: "/fx/cg".into(),
        };
        assert_eq!(
            paths.served_file(ServedFile::Uptime),
            Path::new("/fx/proc/uptime")
        );
        assert_eq!(
            paths.served_file(ServedFile::CpuOnline),
            Path::new("/fx/sys/devices/system/cpu/online")
        );
    }
}
