//! `cgview mount`: the daemon's start.

use super::inspect::{build_view, report_layout};
use cgview::daemon::{join_host_cgroup_namespace, prepare_mount_point, serve, Transport};
use cgview::error_chain;
use cgview::fs::Fs;
use cgview::host::paths::HostPaths;
use cgview::service::cache::CacheSettings;
use cgview::service::view::ViewOptions;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct MountArgs {
    /// Created if missing; a dead FUSE mount left there by a crashed daemon is detached first.
    pub mountpoint: PathBuf,
    /// FUSE worker threads (default: the number of CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Do not join the host's cgroup namespace at start; resolve callers' cgroups relative to this
    /// daemon's own namespace through the cgroup mounts' roots.
    #[arg(long)]
    pub keep_cgroup_namespace: bool,
    /// Also serve MOUNTPOINT/.cgview-floor, a fixed copy of the host's /proc/meminfo opened and read like
    /// a served file with no work behind it: benchmarks measure the FUSE floor with it.
    #[arg(long)]
    pub diagnostic_floor: bool,
    /// Take requests over FUSE over io_uring: one ring per CPU, answered on that CPU (about 1.5x the
    /// reads/s at 0.6x the daemon CPU per read of /dev/fuse on a 2-vCPU VM). Needs Linux 6.14+ with
    /// /sys/module/fuse/parameters/enable_uring set to Y; without it cgview serves over /dev/fuse.
    #[arg(long)]
    pub io_uring: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics and the mount's health at /healthz
    /// (e.g. 0.0.0.0:9477; port 0 picks a free one, logged at start).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Cgroup files kept open at most, over all containers (default: half of what the descriptor
    /// limit leaves after 512 for everything else, at most 65536). The daemon raises its soft
    /// RLIMIT_NOFILE to the hard one at start; past the budget files are read with open-read-close.
    #[arg(long, value_name = "N", env = "CGVIEW_FD_BUDGET")]
    pub fd_budget: Option<usize>,
}

pub fn mount(paths: HostPaths, options: ViewOptions, args: MountArgs) -> Result<(), String> {
    let MountArgs {
        mountpoint,
        threads,
        keep_cgroup_namespace,
        diagnostic_floor,
        metrics_addr,
        io_uring,
        fd_budget,
    } = args;
    let plan = prepare_mount_point(&mountpoint, &paths).map_err(|e| error_chain(&e))?;
    let nofile = cgview::host::fd_budget::raise_nofile_limit().unwrap_or_else(|e| {
        tracing::warn!("cannot raise the descriptor limit: {e}");
        cgview::host::fd_budget::nofile_limit()
    });
    let settings = CacheSettings {
        fd_budget: Some(
            fd_budget.unwrap_or_else(|| cgview::host::fd_budget::budget_for_limit(nofile)),
        ),
        ..CacheSettings::default()
    };
    tracing::info!(
        nofile,
        fd_budget = settings.fd_budget,
        "descriptor limit and budget for kept-open cgroup files"
    );
    if !keep_cgroup_namespace && paths.is_live_system() {
        join_host_cgroup_namespace(&paths);
    }
    let view = build_view(paths, options)?;
    report_layout(view.resolver().layout());
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut fs = Fs::with_cache(Arc::new(view), settings);
    if diagnostic_floor {
        let meminfo = fs.view().resolver().paths().proc_file("meminfo");
        let content = std::fs::read(&meminfo)
            .map_err(|e| format!("cannot read {}: {e}", meminfo.display()))?;
        fs = fs.with_floor(content);
    }
    let transport = if io_uring {
        Transport::IoUring
    } else {
        Transport::DevFuse
    };
    serve(
        Arc::new(fs),
        &mountpoint,
        threads,
        plan,
        metrics_addr,
        transport,
    )
    .map_err(|e| error_chain(&e))
}
