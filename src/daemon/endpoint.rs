//! What `--metrics-addr` serves: the daemon's metrics and the mount's health, read at each request.

use super::mount_point::{occupant, Occupant};
use crate::fs::Fs;
use crate::host::paths::HostPaths;
use crate::service::fallback::FallbackCause;
use crate::telemetry::http;
use crate::telemetry::metrics::{DescriptorUse, ScrapeExtras};
use std::path::PathBuf;
use std::sync::Arc;

/// Containers listed by name in `cgview_container_requests_total`.
const BUSIEST_CONTAINERS: usize = 20;

/// What `--metrics-addr` serves, read from the running daemon at each request.
pub(super) struct DaemonEndpoint {
    pub(super) fs: Arc<Fs>,
    pub(super) mount_point: PathBuf,
    pub(super) own_device: String,
    pub(super) paths: HostPaths,
}

impl DaemonEndpoint {
    fn mount_state(&self) -> Result<(), String> {
        let shown = self.mount_point.display();
        match occupant(&self.mount_point, &self.own_device, &self.paths)
            .map_err(|e| format!("{e}\n"))?
        {
            Occupant::ThisDaemon => {}
            Occupant::Another => {
                return Err(format!("taken over: another cgview serves {shown}\n"))
            }
            Occupant::Nothing => return Err(format!("{shown} is not mounted\n")),
        }
        // statfs is answered by this daemon's workers: a wedged session fails here.
        nix::sys::statfs::statfs(&self.mount_point)
            .map(|_| ())
            .map_err(|e| format!("{} does not answer: {e}\n", self.mount_point.display()))
    }
}

impl http::Endpoint for DaemonEndpoint {
    fn metrics(&self) -> String {
        let cache = self.fs.cache();
        let stats = cache.stats();
        let (callers, containers) = cache.sizes();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let extras = ScrapeExtras {
            caller_hits: load(&stats.caller_hits),
            caller_misses: load(&stats.caller_misses),
            snapshot_hits: load(&stats.snapshot_hits),
            renders: load(&stats.renders),
            fallbacks: FallbackCause::ALL
                .iter()
                .map(|&cause| (cause, self.fs.view().fallbacks().count(cause)))
                .collect(),
            containers: containers as u64,
            callers: callers as u64,
            open_files: self.fs.open_count() as u64,
            top_containers: cache.busiest_containers(BUSIEST_CONTAINERS),
            mount_live: self.mount_state().is_ok(),
            descriptors: DescriptorUse {
                limit: crate::host::fd_budget::nofile_limit(),
                budget: cache.fd_budget().limit() as u64,
                kept: cache.fd_budget().used() as u64,
                refused: cache.fd_budget().refused(),
                closed_for_budget: load(&stats.files_closed_for_budget),
            },
            re_resolved: load(&stats.re_resolved),
        };
        self.fs.metrics().render(&extras)
    }

    fn health(&self) -> Result<String, String> {
        self.mount_state()
            .map(|()| format!("live: {}\n", self.mount_point.display()))
    }
}
