//! Mapping cgroup paths as printed in `/proc/<pid>/cgroup` onto directories of a cgroup mount. Pure.
//!
//! Both the printed path and a mount's root (from mountinfo) are relative to the *reader's* cgroup
//! namespace, so a daemon in a private namespace sees `/../../kubepods/x` for a process outside it and
//! `/../..` as the root of a host hierarchy bind-mounted into its pod. Resolving one against the other gives
//! the directory under the mount point without knowing where the namespace root is on the host.

use std::path::PathBuf;

/// Lexically normalized components; leading `..` are kept (they climb above the namespace root).
fn components(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|last| *last != "..") {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            name => out.push(name),
        }
    }
    out
}

/// The directory, relative to the mount point, of cgroup `printed` in a mount whose root is `mount_root`;
/// `None` when the cgroup lies outside what the mount shows.
pub fn relative_to_mount(printed: &str, mount_root: &str) -> Option<PathBuf> {
    let path = components(printed);
    let root = components(mount_root);
    let rest = path.strip_prefix(root.as_slice())?;
    if rest.contains(&"..") {
        return None;
    }
    Some(rest.iter().collect())
}

/// True when `ancestor` is `path` or one of its ancestors.
pub fn is_ancestor_or_self(ancestor: &str, path: &str) -> bool {
    components(path).starts_with(&components(ancestor))
}

/// systemd-based containers run their init in `<container>/init.scope`; the container is the parent.
pub fn strip_init_scope(path: &str) -> &str {
    match path.strip_suffix("/init.scope") {
        Some("") => "/",
        Some(parent) => parent,
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn relative_to_mount_plain_host() {
        assert_eq!(
            relative_to_mount("/docker/abc", "/").unwrap(),
            Path::new("docker/abc")
        );
        assert_eq!(relative_to_mount("/", "/").unwrap(), Path::new(""));
    }

    #[test]
    fn relative_to_mount_private_namespace_sees_host_mount() {
        let dir = relative_to_mount("/../../kubepods/pod1/ctr", "/../..").unwrap();
        assert_eq!(dir, Path::new("kubepods/pod1/ctr"));
        // The daemon's own cgroup, printed as "/" inside its namespace, is two levels below the mount root.
        let own = relative_to_mount("/", "/../..");
        assert_eq!(own, None);
    }

    #[test]
    fn relative_to_mount_rejects_paths_outside_mount() {
        assert_eq!(relative_to_mount("/../other", "/"), None);
        assert_eq!(relative_to_mount("/a/../../b", "/"), None);
        assert_eq!(relative_to_mount("/b/c", "/a"), None);
    }

    #[test]
    fn relative_to_mount_subtree_mount() {
        assert_eq!(relative_to_mount("/a/b/c", "/a").unwrap(), Path::new("b/c"));
        assert_eq!(
            relative_to_mount("/a/./b//c/", "/a/").unwrap(),
            Path::new("b/c")
        );
    }

    #[test]
    fn relative_to_mount_with_namespace_root_inside_nsroot() {
        // Daemon namespace root is /kubepods/podD/ctrD; the host hierarchy is mounted at /../../..
        let printed = "/../../../kubepods/podX/ctrX";
        assert_eq!(
            relative_to_mount(printed, "/../../..").unwrap(),
            Path::new("kubepods/podX/ctrX")
        );
    }

    #[test]
    fn is_ancestor_or_self_cases() {
        assert!(is_ancestor_or_self(
            "/lxc/c1",
            "/lxc/c1/system.slice/x.service"
        ));
        assert!(is_ancestor_or_self("/lxc/c1", "/lxc/c1"));
        assert!(is_ancestor_or_self("/", "/anything"));
        assert!(!is_ancestor_or_self("/lxc/c1", "/lxc/c10"));
        assert!(!is_ancestor_or_self("/pod/pause", "/pod/app"));
    }

    #[test]
    fn strip_init_scope_cases() {
        assert_eq!(strip_init_scope("/lxc/c1/init.scope"), "/lxc/c1");
        assert_eq!(strip_init_scope("/init.scope"), "/");
        assert_eq!(strip_init_scope("/lxc/c1"), "/lxc/c1");
    }
}
