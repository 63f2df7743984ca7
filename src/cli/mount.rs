//! `cgview mount`: the daemon's start.

use super::inspect::{build_view, report_layout};
use super::nri::{start_in_daemon, NriArgs};
use cgview::daemon::holder::{ConnectionHolder, Holder, KeeperLink};
use cgview::daemon::keeper::KeeperOptions;
use cgview::daemon::{join_host_cgroup_namespace, prepare_mount_point, serve, Start, Transport};
use cgview::error_chain;
use cgview::fs::Fs;
use cgview::host::paths::HostPaths;
use cgview::service::cache::CacheSettings;
use cgview::service::view::ViewOptions;
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// Who keeps the FUSE connection alive between daemons, so that readers wait through a restart
    /// instead of failing: `keeper` (a `cgview keeper` process, started unless one runs), `systemd`
    /// (the unit's file descriptor store, FileDescriptorStoreMax=), `auto` (systemd's when the unit
    /// offers one, a keeper otherwise) or `none` (a stop unmounts; a crash leaves dead mounts that the
    /// next start repairs).
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        env = "CGVIEW_CONNECTION_HOLDER"
    )]
    pub connection_holder: ConnectionHolder,
    /// How long the keeper holds the connection with no daemon serving it before it unmounts and ends
    /// it (readers then get errors instead of waiting longer).
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds)]
    pub resume_within: Duration,
    /// The keeper's socket (default: /run/cgview/keeper-<hash of the mount point>.sock). A daemon
    /// and a keeper in different containers of a pod share it through a volume.
    #[arg(long, value_name = "PATH", env = "CGVIEW_KEEPER_SOCKET")]
    pub keeper_socket: Option<PathBuf>,
    /// Also run the NRI plugin (see `cgview nri --help` and the --nri-* options): the runtime binds
    /// the served files into the containers it creates; its counters join --metrics-addr's.
    #[arg(long)]
    pub nri: bool,
    /// Answer sysinfo(2) per container: listen on this Unix socket (root only, mode 0600) for the
    /// seccomp notify descriptors OCI runtimes send when a container's seccomp profile has
    /// `listenerPath` = PATH and `SCMP_ACT_NOTIFY` for `sysinfo` (packaging/seccomp/sysinfo-notify.json).
    /// `free`, `uptime` and sysconf(_SC_PHYS_PAGES) then agree with the served /proc files. With a
    /// keeper, the descriptors survive this daemon (stops, crashes, take-overs): the next daemon serves
    /// them; without one, after it stops, those containers' sysinfo calls fail with ENOSYS.
    #[arg(long, value_name = "PATH", env = "CGVIEW_SECCOMP_SOCKET")]
    pub seccomp_socket: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeeperArgs {
    /// The mount point whose connection is kept.
    pub mountpoint: PathBuf,
    /// Where daemons reach the keeper (default: as `cgview mount` derives it).
    #[arg(long, value_name = "PATH", env = "CGVIEW_KEEPER_SOCKET")]
    pub socket: Option<PathBuf>,
    /// How long the connection is held with no daemon serving it.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds)]
    pub resume_within: Duration,
}

fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(value).map_err(|e| format!("{text:?}: {e}"))
}

/// The mount point as the keeper's socket is named after it, found without stat-ing the mount point
/// itself: while a keeper holds a connection nobody serves, that would wait for the daemon this is.
fn canonical_mount_point(mount_point: &Path) -> PathBuf {
    let absolute = std::path::absolute(mount_point).unwrap_or_else(|_| mount_point.to_owned());
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .map(|parent| parent.join(name))
            .unwrap_or(absolute.clone()),
        _ => absolute,
    }
}

/// How a daemon with a keeper starts: resuming what a running keeper holds, or mounting and starting
/// one. A running keeper may hold a connection nobody serves: the mount point is then not looked at
/// (a stat of it would wait for the daemon this is) until the keeper has said it holds none.
fn keeper_start(
    mountpoint: &Path,
    paths: &HostPaths,
    canonical: &Path,
    socket: &Path,
    resume_within: Duration,
) -> Result<(Start, Option<Holder>), String> {
    if let Ok(link) = KeeperLink::connect(canonical, socket, resume_within) {
        let resumed = link
            .resume()
            .map_err(|e| format!("cannot ask the keeper for the connection: {e}"))?;
        return Ok(match resumed {
            Some(resumed) => (Start::Resume(resumed), Some(Holder::Keeper(link))),
            None => (
                Start::Mount(prepare_mount_point(mountpoint, paths).map_err(|e| error_chain(&e))?),
                Some(Holder::Keeper(link)),
            ),
        });
    }
    let plan = prepare_mount_point(mountpoint, paths).map_err(|e| error_chain(&e))?;
    let holder = match KeeperLink::connect_or_start(canonical, socket, resume_within) {
        Ok(link) => Some(Holder::Keeper(link)),
        Err(e) => {
            tracing::warn!(
                "no keeper for the FUSE connection ({e}); a stop or crash of this daemon fails its readers"
            );
            None
        }
    };
    Ok((Start::Mount(plan), holder))
}

pub fn keeper(args: KeeperArgs) -> Result<(), String> {
    let mount_point = canonical_mount_point(&args.mountpoint);
    let socket = args
        .socket
        .unwrap_or_else(|| cgview::daemon::handover_socket::default_socket(&mount_point));
    let options = KeeperOptions {
        mount_point,
        socket,
        resume_within: args.resume_within,
    };
    cgview::daemon::keeper::run(&options).map_err(|e| format!("keeper: {e}"))
}

pub fn mount(
    paths: HostPaths,
    options: ViewOptions,
    args: MountArgs,
    nri_args: NriArgs,
) -> Result<(), String> {
    let MountArgs {
        mountpoint,
        threads,
        keep_cgroup_namespace,
        diagnostic_floor,
        metrics_addr,
        io_uring,
        fd_budget,
        connection_holder,
        resume_within,
        keeper_socket,
        nri,
        seccomp_socket,
    } = args;
    if !nix::unistd::geteuid().is_root() {
        return Err(error_chain(&cgview::daemon::MountError::NotRoot));
    }
    let canonical = canonical_mount_point(&mountpoint);
    let socket = keeper_socket
        .unwrap_or_else(|| cgview::daemon::handover_socket::default_socket(&canonical));
    // Over io_uring a request that a departing daemon's ring entry held is neither resent nor failed
    // by the kernel (seen on 6.18, after kill -9 and, rarely, even after a drained exit): its reader
    // would wait with no bound. Unless asked for, such connections end with their daemon, as without
    // a holder: errors between daemons, but never a hang.
    let connection_holder = match (connection_holder, io_uring) {
        (ConnectionHolder::Auto, true) => {
            tracing::info!(
                "--io-uring: the FUSE connection is not kept across daemons (the kernel may strand a \
                 request a departing daemon's ring held); pass --connection-holder keeper to keep it anyway"
            );
            ConnectionHolder::None
        }
        (holder, true) if holder != ConnectionHolder::None => {
            tracing::warn!(
                "--io-uring with a kept connection: a request a departing daemon's ring held may never be \
                 answered (its reader waits until interrupted)"
            );
            holder
        }
        (holder, _) => holder,
    };
    let (start, holder) = match connection_holder.resolve() {
        ConnectionHolder::Systemd => {
            let stored = cgview::daemon::fdstore::take_stored()
                .map_err(|e| format!("cannot take the connection systemd kept: {e}"))?;
            match stored {
                Some(resumed) => (Start::Resume(resumed), Some(Holder::Systemd)),
                None => (
                    Start::Mount(
                        prepare_mount_point(&mountpoint, &paths).map_err(|e| error_chain(&e))?,
                    ),
                    Some(Holder::Systemd),
                ),
            }
        }
        ConnectionHolder::Keeper | ConnectionHolder::Auto => {
            keeper_start(&mountpoint, &paths, &canonical, &socket, resume_within)?
        }
        ConnectionHolder::None => (
            Start::Mount(prepare_mount_point(&mountpoint, &paths).map_err(|e| error_chain(&e))?),
            None,
        ),
    };
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
    let probe_paths = paths.clone();
    let view = build_view(paths, options)?;
    report_layout(view.resolver().layout());
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut fs = Fs::with_cache(Arc::new(view), settings);
    if let Start::Resume(resumed) = &start {
        fs = fs.for_generation(
            resumed.record.generation,
            resumed.record.mirror_seed,
            resumed.record.backing_id,
        );
    }
    if diagnostic_floor {
        let meminfo = fs.view().resolver().paths().proc_file("meminfo");
        let content = std::fs::read(&meminfo)
            .map_err(|e| format!("cannot read {}: {e}", meminfo.display()))?;
        fs = fs.with_floor(content);
    }
    if nri {
        let counters = Arc::new(cgview_nri::counters::Counters::default());
        fs.metrics().attach_nri(Arc::clone(&counters));
        // Started before serving: its check of the mount point answers "not served" until the
        // daemon's workers run, and a creation in between is refused or left alone as configured.
        // The daemon's own seccomp socket is the one its plugin names, unless told otherwise.
        let mut nri_args = nri_args.clone();
        if nri_args.nri_seccomp_socket.is_none() {
            nri_args.nri_seccomp_socket = seccomp_socket.clone();
        }
        start_in_daemon(&nri_args, &mountpoint, probe_paths, counters)?;
    }
    let transport = if io_uring {
        Transport::IoUring
    } else {
        Transport::DevFuse
    };
    let fs = Arc::new(fs);
    // Notify descriptors are kept by the keeper that keeps the connection.
    let notify_keeper = matches!(holder, Some(Holder::Keeper(_))).then_some(socket.as_path());
    if let Some(path) = &seccomp_socket {
        let cache: Arc<dyn cgview::daemon::seccomp::AsCache> = fs.clone();
        let listener = cgview::daemon::seccomp::start(path, cache, notify_keeper)
            .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        fs.metrics().attach_seccomp(listener.counters);
    } else if let Some(keeper) = notify_keeper {
        match cgview::daemon::seccomp::count_held(keeper) {
            Ok(0) => {}
            Ok(held) => tracing::warn!(
                held,
                "the keeper holds {held} seccomp notify descriptor(s) this daemon cannot serve (no \
                 --seccomp-socket); the keeper keeps them for a daemon that can, and their containers' \
                 sysinfo calls wait until one serves"
            ),
            Err(e) => tracing::debug!("cannot ask the keeper for notify descriptors: {e}"),
        }
    }
    serve(
        fs,
        &mountpoint,
        threads,
        start,
        metrics_addr,
        transport,
        holder,
    )
    .map_err(|e| error_chain(&e))
}
