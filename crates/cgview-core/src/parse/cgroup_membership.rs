//! `/proc/<pid>/cgroup`: `hierarchy-id:controller-list:path`, one line per hierarchy.
//!
//! v1 lines name their controllers (`4:memory:/docker/abc`, `2:cpu,cpuacct:/x`, `1:name=systemd:/x`); the
//! v2 line is `0::/path`. Paths are relative to the reader's cgroup namespace and may start with `/..`.

use super::ParseError;

/// One line of `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub hierarchy_id: u32,
    /// Controller names for v1 (`memory`, `cpu`, `name=systemd`); empty for the v2 hierarchy.
    pub controllers: Vec<String>,
    /// The cgroup path as printed, relative to the reader's cgroup namespace root.
    pub path: String,
}

impl Membership {
    pub fn is_unified(&self) -> bool {
        self.hierarchy_id == 0 && self.controllers.is_empty()
    }
}

/// Parses every line. A line that does not split into three fields is an error: the file is short and
/// kernel-written, so an odd line means something is wrong with the source, not with one entry.
pub fn parse_cgroup_membership(text: &str) -> Result<Vec<Membership>, ParseError> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let bad = || ParseError::new("/proc/<pid>/cgroup", line);
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad());
            };
            if !path.starts_with('/') {
                return Err(bad());
            }
            let hierarchy_id = id.parse::<u32>().map_err(|_| bad())?;
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            Ok(Membership {
                hierarchy_id,
                controllers,
                path: path.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cgroup_membership_hybrid() {
        let text = "9:name=systemd:/\n4:memory:/process_api/929d\n2:cpu,cpuacct:/x\n0::/\n";
        let lines = parse_cgroup_membership(text).unwrap();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].controllers, vec!["name=systemd"]);
        assert_eq!(lines[1].path, "/process_api/929d");
        assert_eq!(lines[2].controllers, vec!["cpu", "cpuacct"]);
        assert!(lines[3].is_unified());
    }

    #[test]
    fn parse_cgroup_membership_v2_namespace_relative() {
        let lines = parse_cgroup_membership("0::/../../kubepods.slice/pod1\n").unwrap();
        assert_eq!(lines[0].path, "/../../kubepods.slice/pod1");
    }

    #[test]
    fn parse_cgroup_membership_path_may_contain_colons() {
        let lines = parse_cgroup_membership("0::/a:b\n").unwrap();
        assert_eq!(lines[0].path, "/a:b");
    }

    #[test]
    fn parse_cgroup_membership_rejects_garbage() {
        parse_cgroup_membership("garbage\n").unwrap_err();
        parse_cgroup_membership("x:memory:/\n").unwrap_err();
        parse_cgroup_membership("1:memory:relative\n").unwrap_err();
        assert!(parse_cgroup_membership("").unwrap().is_empty());
    }
}
