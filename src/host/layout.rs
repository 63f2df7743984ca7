//! Which cgroup hierarchies the host has and where they are mounted, detected once at start from
//! mountinfo. Controllers are recognised from the mount's super options, never from directory names.

use super::error::{read_optional_text, read_text, ReadError, WrapPath};
use super::paths::HostPaths;
use cgview_core::parse::mountinfo::{parse_mountinfo, MountEntry};
use std::fmt;
use std::path::{Path, PathBuf};

/// The resource controllers cgview reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Controller {
    Memory,
    Cpu,
    Cpuacct,
    Cpuset,
    Io,
}

impl Controller {
    pub const ALL: [Controller; 5] = [
        Controller::Memory,
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Cpuset,
        Controller::Io,
    ];

    /// The name in v1 mount options and `/proc/<pid>/cgroup`.
    pub fn v1_name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Io => "blkio",
        }
    }

    /// The name in v2 `cgroup.controllers`. v2 folds cpuacct into `cpu` (its `cpu.stat` is always present).
    pub fn v2_name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu | Controller::Cpuacct => "cpu",
            Controller::Cpuset => "cpuset",
            Controller::Io => "io",
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.v1_name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub version: CgroupVersion,
    pub mount_point: PathBuf,
    /// The mount's root as mountinfo prints it, relative to this process's cgroup namespace.
    pub root: String,
    /// v1: the super options, which name the controllers (`cpu`, `cpuacct`, `name=systemd`).
    /// v2: the controllers listed in the root's `cgroup.controllers`.
    pub controllers: Vec<String>,
}

impl CgroupMount {
    fn has(&self, name: &str) -> bool {
        self.controllers.iter().any(|c| c == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    /// Only v1 hierarchies.
    V1,
    /// Only the unified hierarchy.
    V2,
    /// v1 controllers plus a unified hierarchy (systemd's "hybrid" mode).
    Hybrid,
}

impl fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LayoutKind::V1 => "cgroup v1",
            LayoutKind::V2 => "cgroup v2",
            LayoutKind::Hybrid => "hybrid (cgroup v1 controllers with a cgroup v2 hierarchy)",
        })
    }
}

/// All cgroup hierarchies below the configured cgroup root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupLayout {
    pub v1: Vec<CgroupMount>,
    pub unified: Option<CgroupMount>,
}

impl CgroupLayout {
    /// Builds the layout from parsed mountinfo. `v2_controllers` gives the content of a unified mount's
    /// `cgroup.controllers`. A hierarchy mounted twice counts once, at its first mount.
    pub fn from_mounts(
        mounts: &[MountEntry],
        cgroup_root: &Path,
        v2_controllers: impl Fn(&Path) -> String,
    ) -> CgroupLayout {
        let mut layout = CgroupLayout::default();
        for mount in mounts {
            let mount_point = PathBuf::from(&mount.mount_point);
            if !mount_point.starts_with(cgroup_root) {
                continue;
            }
            match mount.fs_type.as_str() {
                "cgroup" => {
                    let duplicate = layout.v1.iter().any(|m| {
                        m.controllers
                            .iter()
                            .any(|c| is_controller_option(c) && mount.super_options.contains(c))
                    });
                    if !duplicate {
                        layout.v1.push(CgroupMount {
                            version: CgroupVersion::V1,
                            mount_point,
                            root: mount.root.clone(),
                            controllers: mount.super_options.clone(),
                        });
                    }
                }
                "cgroup2" if layout.unified.is_none() => {
                    let controllers = v2_controllers(&mount_point)
                        .split_ascii_whitespace()
                        .map(str::to_owned)
                        .collect();
                    layout.unified = Some(CgroupMount {
                        version: CgroupVersion::V2,
                        mount_point,
                        root: mount.root.clone(),
                        controllers,
                    });
                }
                _ => {}
            }
        }
        layout
    }

    /// Detects the layout of the host described by `paths`.
    pub fn detect(paths: &HostPaths) -> Result<CgroupLayout, ReadError> {
        let mountinfo_path = paths.proc_file("self/mountinfo");
        let text = read_text(&mountinfo_path)?;
        let mounts = parse_mountinfo(&text).wrap_path(&mountinfo_path)?;
        Ok(Self::from_mounts(
            &mounts,
            &paths.cgroup_root,
            |mount_point| {
                read_optional_text(&mount_point.join("cgroup.controllers"))
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            },
        ))
    }

    /// `None` when no hierarchy was found.
    pub fn kind(&self) -> Option<LayoutKind> {
        match (self.v1.is_empty(), &self.unified) {
            (true, None) => None,
            (true, Some(_)) => Some(LayoutKind::V2),
            (false, None) => Some(LayoutKind::V1),
            (false, Some(_)) => Some(LayoutKind::Hybrid),
        }
    }

    /// The hierarchy that carries `controller`: its v1 mount, else the unified hierarchy if it has it.
    pub fn mount_for(&self, controller: Controller) -> Option<&CgroupMount> {
        self.v1
            .iter()
            .find(|m| m.has(controller.v1_name()))
            .or_else(|| {
                self.unified
                    .as_ref()
                    .filter(|m| m.has(controller.v2_name()))
            })
    }

    /// The v1 mount that a `/proc/<pid>/cgroup` line with these controllers refers to.
    pub fn v1_mount_for_line(&self, controllers: &[String]) -> Option<&CgroupMount> {
        let first = controllers.first()?;
        self.v1.iter().find(|m| m.has(first))
    }

    /// A one-line description for the start-up log.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Controller::ALL
            .iter()
            .map(|c| match self.mount_for(*c) {
                Some(m) => format!("{c}={}", m.mount_point.display()),
                None => format!("{c}=none"),
            })
            .collect();
        if let Some(unified) = &self.unified {
            parts.push(format!("unified={}", unified.mount_point.display()));
        }
        parts.join(" ")
    }
}

/// Super options that name a hierarchy rather than tune it.
fn is_controller_option(option: &str) -> bool {
    option.starts_with("name=")
        || matches!(
            option,
            "cpu"
                | "cpuacct"
                | "cpuset"
                | "memory"
                | "devices"
                | "freezer"
                | "net_cls"
                | "blkio"
                | "perf_event"
                | "net_prio"
                | "hugetlb"
                | "pids"
                | "rdma"
                | "misc"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(mountinfo: &str, controllers: &str) -> CgroupLayout {
        let mounts = parse_mountinfo(mountinfo).unwrap();
        CgroupLayout::from_mounts(&mounts, Path::new("/sys/fs/cgroup"), |_| {
            controllers.to_owned()
        })
    }

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn detect_hybrid_uses_v1_controllers() {
        let layout = layout(HYBRID, "");
        assert_eq!(layout.kind(), Some(LayoutKind::Hybrid));
        let memory = layout.mount_for(Controller::Memory).unwrap();
        assert_eq!(memory.version, CgroupVersion::V1);
        assert_eq!(memory.mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(layout.mount_for(Controller::Cpuset), None);
        assert_eq!(
            layout.unified.as_ref().unwrap().mount_point,
            Path::new("/sys/fs/cgroup/unified")
        );
    }

    #[test]
    fn detect_comounted_cpu_cpuacct_by_options_not_names() {
        let text = "32 31 0:29 / /sys/fs/cgroup/weird-name rw - cgroup cgroup rw,cpu,cpuacct\n";
        let layout = layout(text, "");
        assert_eq!(layout.kind(), Some(LayoutKind::V1));
        let cpu = layout.mount_for(Controller::Cpu).unwrap();
        let cpuacct = layout.mount_for(Controller::Cpuacct).unwrap();
        assert_eq!(cpu, cpuacct);
        assert_eq!(cpu.mount_point, Path::new("/sys/fs/cgroup/weird-name"));
        let line = vec!["cpu".to_owned(), "cpuacct".to_owned()];
        assert_eq!(layout.v1_mount_for_line(&line), Some(cpu));
    }

    #[test]
    fn detect_v2_controllers_from_cgroup_controllers() {
        let text = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let layout = layout(text, "cpuset cpu io memory pids\n");
        assert_eq!(layout.kind(), Some(LayoutKind::V2));
        assert_eq!(
            layout.mount_for(Controller::Io).unwrap().version,
            CgroupVersion::V2
        );
        assert_eq!(
            layout.mount_for(Controller::Cpuacct),
            layout.mount_for(Controller::Cpu)
        );
    }

    #[test]
    fn detect_v2_without_memory_controller() {
        let text = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let layout = layout(text, "cpu pids\n");
        assert_eq!(layout.mount_for(Controller::Memory), None);
    }

    #[test]
    fn detect_ignores_mounts_outside_cgroup_root_and_duplicates() {
        let text = "\
1 0 0:29 / /elsewhere/memory rw - cgroup cgroup rw,memory
2 0 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
3 0 0:29 / /sys/fs/cgroup/memory2 rw - cgroup cgroup rw,memory
";
        let layout = layout(text, "");
        assert_eq!(layout.v1.len(), 1);
        assert_eq!(layout.v1[0].mount_point, Path::new("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn detect_nothing_is_none() {
        assert_eq!(
            layout("1 0 0:1 / / rw - ext4 /dev/vda rw\n", "").kind(),
            None
        );
    }
}
