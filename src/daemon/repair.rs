//! Finds every mount namespace holding cgview mounts and replaces the dead ones from outside, so
//! containers started before a daemon crash read correct files again without a restart and without any
//! tool inside them (distroless images have no `mount`).
//!
//! The same replacement moves containers off a previous daemon's live mounts when a new daemon takes over
//! (an upgrade), so the previous one can exit without breaking them.
//!
//! The replacement runs in a helper process (`cgview repair-namespace`), because `setns(CLONE_NEWNS)`
//! needs a single-threaded caller: it clones the live mount's subtree with `open_tree(OPEN_TREE_CLONE)`
//! while still in the daemon's namespace, enters the container's mount namespace, attaches the clone
//! beneath the old mount and detaches the old one ([`crate::daemon::mount_api::replace`]), so a reader in the
//! container finds the old mount or the new one at every moment.

use crate::daemon::mount_api::{open_tree_clone, replace};
use crate::daemon::mount_scan::{
    cgview_binds, is_cgview_mount, is_dead_connection, live_device, may_act_on, CgviewBind,
};
use crate::host::error::{read_text, ReadError, WrapPath};
use crate::host::paths::HostPaths;
use cgview_core::parse::cgroup_membership::parse_cgroup_membership;
use cgview_core::parse::mountinfo::parse_mountinfo;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The cgview mounts of one mount namespace, seen through one of its processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceMounts {
    pub pid: u32,
    /// Other processes of the namespace, tried in turn when `pid` exits before its helper enters it
    /// (the first pid found may be a short-lived child).
    pub spare_pids: Vec<u32>,
    /// `mnt:[inode]`.
    pub namespace: String,
    pub binds: Vec<CgviewBind>,
}

impl NamespaceMounts {
    /// The dead mounts this mount point's daemon is to repair (not those another mount point claims).
    pub fn dead(&self) -> impl Iterator<Item = &CgviewBind> {
        self.binds.iter().filter(|b| !b.live && !b.claimed)
    }

    /// The mounts to move to the running daemon: the dead ones no other mount point claims, and those of
    /// the daemon it took over from (`previous_device`), which still answer but are about to go away.
    pub fn to_replace<'a>(
        &'a self,
        previous_device: Option<&'a str>,
    ) -> impl Iterator<Item = &'a CgviewBind> + 'a {
        self.dead().chain(
            self.binds
                .iter()
                .filter(move |b| b.live && previous_device == Some(b.device.as_str())),
        )
    }
}

/// Every mount namespace with cgview mounts other than the daemon's own mount point, with each mount's
/// state against the live mount at `mount_point` (in this process's namespace).
pub fn scan(paths: &HostPaths, mount_point: &Path) -> Result<Vec<NamespaceMounts>, ReadError> {
    let own_path = paths.proc_file("self/mountinfo");
    let own_mounts = parse_mountinfo(&read_text(&own_path)?).wrap_path(&own_path)?;
    let canonical = std::fs::canonicalize(mount_point).unwrap_or_else(|_| mount_point.to_owned());
    let canonical = canonical.to_string_lossy().into_owned();
    // A dead mount left at the mount point (no daemon serves it) makes nothing live.
    let serving = nix::sys::statfs::statfs(mount_point).is_ok();
    let live = live_device(&own_mounts, &canonical)
        .filter(|_| serving)
        .map(str::to_owned);
    let own_namespace = namespace_of(paths, "self");
    // A connection still mounted at another mount point here (a crashed daemon's mount point, dead until
    // its next daemon starts there) is that daemon's to repair: two instances never take each other's
    // containers. The daemon detaches the dead mount at its own mount point before scanning, so its own
    // predecessor's connection is not claimed.
    let claimed: HashSet<String> = own_mounts
        .iter()
        .filter(|m| is_cgview_mount(m) && m.mount_point != canonical)
        .map(|m| m.device.clone())
        .collect();

    // Namespace -> its index in `found` (None: no cgview mounts there).
    let mut seen: HashMap<String, Option<usize>> = HashMap::new();
    let mut found: Vec<NamespaceMounts> = Vec::new();
    let entries = std::fs::read_dir(&paths.proc_root).wrap_path(&paths.proc_root)?;
    let mut pids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        // Processes come and go during the scan: one that vanished is simply not there.
        let Some(namespace) = namespace_of(paths, &pid.to_string()) else {
            continue;
        };
        if let Some(known) = seen.get(&namespace) {
            if let Some(index) = *known {
                let spares = &mut found[index].spare_pids;
                if spares.len() < MAX_SPARE_PIDS {
                    spares.push(pid);
                }
            }
            continue;
        }
        let Ok(text) =
            crate::host::kernel_file::read_kernel_text(&paths.pid_file(pid, "mountinfo"))
        else {
            continue;
        };
        let Ok(mut mounts) = parse_mountinfo(&text) else {
            continue;
        };
        // Another instance's binds are its own business, even once it is gone: its next start repairs
        // them, and its containers must never end up on this daemon.
        mounts.retain(|m| !is_cgview_mount(m) || may_act_on(m, &canonical));
        let skip = (Some(&namespace) == own_namespace.as_ref()).then_some(canonical.as_str());
        let root = paths.pid_file(pid, "root");
        let mut binds = cgview_binds(&mounts, live.as_deref(), skip, |mount| {
            answers(&root, &mount.mount_point)
        });
        for bind in &mut binds {
            bind.claimed = claimed.contains(&bind.device);
        }
        if binds.is_empty() {
            seen.insert(namespace, None);
        } else {
            seen.insert(namespace.clone(), Some(found.len()));
            found.push(NamespaceMounts {
                pid,
                spare_pids: Vec::new(),
                namespace,
                binds,
            });
        }
    }
    Ok(found)
}

/// Whether the mount at `target` in the namespace of the process whose root is `root` reaches a running
/// daemon. `/proc/<pid>/root` resolves paths in that process's mount namespace, and `statfs` on a mount
/// whose daemon is gone fails with `ENOTCONN` at once; anything else (an answer, or another error) is
/// not taken for dead, so a scan never tears down a mount it cannot prove dead.
fn answers(root: &Path, target: &str) -> bool {
    let path = root.join(target.trim_start_matches('/'));
    !matches!(nix::sys::statfs::statfs(&path), Err(errno) if is_dead_connection(errno))
}

fn namespace_of(paths: &HostPaths, pid: &str) -> Option<String> {
    std::fs::read_link(paths.proc_root.join(pid).join("ns/mnt"))
        .ok()
        .map(|link| link.to_string_lossy().into_owned())
}

/// Processes per namespace kept as fallbacks for its helper.
const MAX_SPARE_PIDS: usize = 4;

/// How long a helper may take before it is killed: it only makes a few mount calls.
const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// Replaces every dead mount of `namespace`, and every mount on `previous_device`, with a fresh one from
/// `mount_point`; returns how many.
pub fn repair(
    mount_point: &Path,
    namespace: &NamespaceMounts,
    previous_device: Option<&str>,
) -> io::Result<usize> {
    let dead: Vec<&CgviewBind> = namespace.to_replace(previous_device).collect();
    if dead.is_empty() {
        return Ok(0);
    }
    let pairs: Vec<(&str, &str)> = dead
        .iter()
        .map(|b| (b.root.as_str(), b.target.as_str()))
        .collect();
    for pid in std::iter::once(namespace.pid).chain(namespace.spare_pids.iter().copied()) {
        match run_helper(mount_point, pid, &pairs) {
            // The process left before the helper entered its namespace: try another one of it.
            Err(_) if !Path::new("/proc").join(pid.to_string()).exists() => continue,
            result => return result,
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "every process of the namespace exited",
    ))
}

/// Runs `cgview repair-namespace` for the namespace of `pid`; returns how many mounts it replaced.
fn run_helper(mount_point: &Path, pid: u32, pairs: &[(&str, &str)]) -> io::Result<usize> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("repair-namespace")
        .arg("--pid")
        .arg(pid.to_string())
        .arg("--mount-point")
        .arg(mount_point);
    for (root, target) in pairs {
        command.arg(root).arg(target);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + HELPER_TIMEOUT;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the repair helper did not finish",
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let repaired = stdout
        .lines()
        .find_map(|l| l.strip_prefix("repaired "))
        .and_then(|n| n.trim().parse().ok());
    match (output.status.success(), repaired) {
        (true, Some(n)) => Ok(n),
        _ => Err(io::Error::other(format!(
            "the repair helper failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

/// Scans and repairs every namespace; logs each container repaired. With `previous_device`, also moves
/// every mount of that (taken over) daemon to the one at `mount_point`. Returns (namespaces repaired,
/// mounts replaced, failures).
pub fn repair_all(
    paths: &HostPaths,
    mount_point: &Path,
    previous_device: Option<&str>,
) -> (usize, usize, usize) {
    let namespaces = match scan(paths, mount_point) {
        Ok(namespaces) => namespaces,
        Err(e) => {
            tracing::warn!(
                "cannot look for dead cgview mounts: {}",
                cgview_core::error_chain(&e)
            );
            return (0, 0, 1);
        }
    };
    let (mut repaired_namespaces, mut replaced, mut failures) = (0, 0, 0);
    for namespace in namespaces
        .iter()
        .filter(|n| n.to_replace(previous_device).next().is_some())
    {
        let cgroup = container_hint(paths, namespace.pid);
        let dead = namespace.dead().count();
        match repair(mount_point, namespace, previous_device) {
            Ok(count) => {
                repaired_namespaces += 1;
                replaced += count;
                let what = if dead > 0 {
                    "repaired a container's dead cgview mounts"
                } else {
                    "moved a container's cgview mounts to this daemon"
                };
                tracing::info!(
                    pid = namespace.pid,
                    namespace = %namespace.namespace,
                    cgroup = %cgroup,
                    mounts = count,
                    "{what}"
                );
            }
            // A container that went away during the scan has nothing left to repair.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::debug!(pid = namespace.pid, namespace = %namespace.namespace, "{e}");
            }
            Err(e) => {
                failures += 1;
                // The container keeps failing reads: a user-visible failure.
                tracing::error!(
                    pid = namespace.pid,
                    namespace = %namespace.namespace,
                    cgroup = %cgroup,
                    "cannot repair a container's dead cgview mounts: {e}"
                );
            }
        }
    }
    (repaired_namespaces, replaced, failures)
}

/// The cgroup of a process, to name its container in logs and reports.
pub fn container_hint(paths: &HostPaths, pid: u32) -> String {
    let memberships = crate::host::kernel_file::read_kernel_text(&paths.pid_file(pid, "cgroup"))
        .ok()
        .and_then(|text| parse_cgroup_membership(&text).ok())
        .unwrap_or_default();
    memberships
        .iter()
        .find(|m| m.controllers.iter().any(|c| c == "memory"))
        .or_else(|| memberships.iter().find(|m| m.is_unified()))
        .map_or_else(|| "?".to_owned(), |m| m.path.clone())
}

// ---- the helper (`cgview repair-namespace`), single-threaded ----

/// Clones `mount_point/root` for each `(root, target)`, enters the mount namespace of `pid` and puts each
/// clone in place of the mount at its target. Must run in a single-threaded process.
pub fn replace_in_namespace(
    pid: u32,
    mount_point: &Path,
    binds: &[(String, String)],
) -> io::Result<usize> {
    let clones = binds
        .iter()
        .map(|(root, _)| open_tree_clone(&mount_point.join(root.trim_start_matches('/'))))
        .collect::<io::Result<Vec<OwnedFd>>>()?;
    let namespace = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))?;
    nix::sched::setns(namespace, nix::sched::CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    let mut replaced = 0;
    for (clone, (_, target)) in clones.iter().zip(binds) {
        replace(clone, Path::new(target))?;
        replaced += 1;
    }
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(target: &str, device: &str, live: bool, claimed: bool) -> CgviewBind {
        CgviewBind {
            root: target.to_owned(),
            target: target.to_owned(),
            device: device.to_owned(),
            live,
            claimed,
        }
    }

    #[test]
    fn replaces_unclaimed_dead_mounts_and_the_previous_daemons_live_ones() {
        let namespace = NamespaceMounts {
            pid: 42,
            spare_pids: vec![],
            namespace: "mnt:[1]".to_owned(),
            binds: vec![
                bind("/proc/meminfo", "0:50", false, false),
                bind("/proc/cpuinfo", "0:51", false, true),
                bind("/proc/stat", "0:52", true, false),
                bind("/proc/uptime", "0:53", true, false),
            ],
        };
        let targets = |previous| -> Vec<&str> {
            namespace
                .to_replace(previous)
                .map(|b| b.target.as_str())
                .collect()
        };
        // A dead mount another mount point claims is left to that mount point's daemon.
        assert_eq!(targets(None), ["/proc/meminfo"]);
        // A take-over also moves the previous daemon's live mounts, and no other daemon's.
        assert_eq!(targets(Some("0:52")), ["/proc/meminfo", "/proc/stat"]);
        assert_eq!(namespace.dead().count(), 1);
    }
}
