//! The bind mounts that give a container cgview's view: which of the mount point's files go over which
//! paths. Shared by `cgview docker-args` and, later, the admission webhook.

use std::path::{Path, PathBuf};

/// One bind mount: `source` on the host (below the mount point) over `target` in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerBind {
    pub source: PathBuf,
    pub target: &'static str,
}

/// What is bound, below the mount point, and where it goes in a container. `/proc/pressure/*` is left out:
/// runc refuses to mount over `/proc/pressure`. The cpu directory is bound whole, so `cpuN` entries hidden
/// from the container are gone too (binding `online` alone leaves them); `sys/block` is for `iostat`,
/// which reads `/sys/block/*/stat`.
const BINDS: [(&str, &str); 10] = [
    ("proc/cpuinfo", "/proc/cpuinfo"),
    ("proc/diskstats", "/proc/diskstats"),
    ("proc/loadavg", "/proc/loadavg"),
    ("proc/meminfo", "/proc/meminfo"),
    ("proc/slabinfo", "/proc/slabinfo"),
    ("proc/stat", "/proc/stat"),
    ("proc/swaps", "/proc/swaps"),
    ("proc/uptime", "/proc/uptime"),
    ("sys/devices/system/cpu", "/sys/devices/system/cpu"),
    ("sys/block", "/sys/block"),
];

/// The binds for a cgview mounted at `mount_point`, leaving out what `exists` says is not there (a host
/// without swap accounting still has `swaps`; a tree without a file must not be bound, or Docker would
/// create an empty directory in its place on the host).
pub fn container_binds(mount_point: &Path, exists: impl Fn(&Path) -> bool) -> Vec<ContainerBind> {
    BINDS
        .iter()
        .map(|(source, target)| ContainerBind {
            source: mount_point.join(source),
            target,
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
}
