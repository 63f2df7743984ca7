//! Joining the host's cgroup namespace, so callers' cgroup paths are host paths.

use crate::host::paths::HostPaths;
use std::io;

/// Joins the cgroup namespace of the host's init so `/proc/<pid>/cgroup` shows host paths. Must run
/// before any thread is started (namespaces are per thread). Failure is not fatal: paths are then
/// resolved relative to this daemon's namespace through the mounts' roots.
pub fn join_host_cgroup_namespace(paths: &HostPaths) {
    let host = paths.pid_file(1, "ns/cgroup");
    let own = paths.proc_file("self/ns/cgroup");
    match (std::fs::read_link(&host), std::fs::read_link(&own)) {
        (Ok(host_ns), Ok(own_ns)) if host_ns == own_ns => return,
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!("cannot compare cgroup namespaces: {e}");
            return;
        }
        _ => {}
    }
    let joined = std::fs::File::open(&host).and_then(|fd| {
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWCGROUP).map_err(io::Error::from)
    });
    match joined {
        Ok(()) => tracing::info!("joined the host's cgroup namespace"),
        Err(e) => tracing::info!(
            "staying in this daemon's private cgroup namespace ({e}); resolving paths through the cgroup mounts' roots"
        ),
    }
}
