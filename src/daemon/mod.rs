//! `cgview mount`: prepare the mount point, mount (or take over from a running cgview), serve until
//! SIGTERM/SIGINT, unmount.

pub mod mount_api;
pub mod mount_scan;
pub mod notify;
pub mod repair;

use crate::daemon::mount_scan::live_device;
pub use crate::daemon::mount_scan::FS_NAME;
use crate::fs::Fs;
use crate::host::error::{read_text, ReadError, WrapPath};
use crate::host::paths::HostPaths;
use crate::service::fallback::FallbackCause;
use crate::telemetry::http;
use crate::telemetry::metrics::{DescriptorUse, Metrics, ScrapeExtras};
use crate::transport::fuse::{DevFuseSession, RING_MAX_WRITE};
use cgview_core::parse::mountinfo::{parse_mountinfo, MountEntry};
use mount_api::Placement;
use nix::sys::signal::{SigSet, Signal};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// How requests reach the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Worker threads reading `/dev/fuse`.
    DevFuse,
    /// FUSE over io_uring (Linux 6.14+, `fuse.enable_uring=1`): one ring per CPU, served by a thread
    /// pinned to it, so a request and its reply never cross CPUs. Falls back to `/dev/fuse` when the
    /// kernel does not offer it.
    IoUring,
}

/// Entries registered per ring: one being answered while the next request already waits in the other.
const RING_DEPTH: usize = 2;

#[derive(Debug, Error)]
pub enum MountError {
    #[error("cgview mount must run as root: it mounts a FUSE file system that other users' processes read")]
    NotRoot,
    #[error("/dev/fuse is missing: load the fuse module (modprobe fuse) or pass the device into this container")]
    NoFuseDevice,
    #[error("the mount point {0} is a regular file, not a directory")]
    MountPointIsFile(PathBuf),
    #[error("{0} is already served by a running cgview, and this kernel cannot take it over (mounting beneath needs Linux 6.5); stop that one first")]
    CannotTakeOver(PathBuf),
    #[error("cannot prepare the mount point {path}")]
    MountPoint {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot mount cgview at {path}")]
    Mount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the mount table")]
    MountTable(#[source] ReadError),
    #[error("cannot set up signal handling")]
    Signals(#[source] nix::Error),
    #[error("cannot serve metrics")]
    Metrics(#[source] io::Error),
    #[error("the mount at {0} was removed from outside cgview")]
    UnmountedExternally(PathBuf),
    #[error("cannot start the io_uring rings the kernel agreed to (mount without --io-uring)")]
    Rings(#[source] io::Error),
}

/// What a mount point holds before cgview mounts there.
#[derive(Debug, PartialEq, Eq)]
enum MountPointState {
    Missing,
    Directory,
    RegularFile,
    /// A FUSE mount whose daemon is gone: every request fails with ENOTCONN.
    DeadMount,
    /// A cgview mount whose daemon answers, on this device.
    LiveCgview(String),
    OtherFile,
}

/// Dead mounts stacked on one mount point that are detached before giving up.
const MAX_DEAD_LAYERS: usize = 8;

fn mount_point_state(path: &Path, paths: &HostPaths) -> Result<MountPointState, MountError> {
    let wrap = |source: io::Error| MountError::MountPoint {
        path: path.to_owned(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            // The kernel answers stat from its attribute cache even after the daemon died; statfs always
            // reaches the daemon, so it tells a dead mount from a live one.
            match nix::sys::statfs::statfs(path) {
                Err(nix::errno::Errno::ENOTCONN) => Ok(MountPointState::DeadMount),
                Err(e) => Err(wrap(e.into())),
                Ok(_) => match live_cgview_device(path, paths)? {
                    Some(device) => Ok(MountPointState::LiveCgview(device)),
                    None => Ok(MountPointState::Directory),
                },
            }
        }
        Ok(meta) if meta.is_file() => Ok(MountPointState::RegularFile),
        Ok(_) => Ok(MountPointState::OtherFile),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(MountPointState::Missing),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(MountPointState::DeadMount),
        Err(source) => Err(wrap(source)),
    }
}

/// How this daemon's mount goes in at the mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountPlan {
    /// Nothing serves there: mount.
    Fresh,
    /// A running cgview serves there (an upgrade): mount beneath it, detach it, and move containers off
    /// its mounts (device `previous_device`) before it stops.
    TakeOver { previous_device: String },
}

/// Checks the environment and leaves the mount point ready: an empty directory, or a running cgview to
/// take over.
pub fn prepare_mount_point(mount_point: &Path, paths: &HostPaths) -> Result<MountPlan, MountError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(MountError::NotRoot);
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(MountError::NoFuseDevice);
    }
    let wrap = |source: io::Error| MountError::MountPoint {
        path: mount_point.to_owned(),
        source,
    };
    for _ in 0..MAX_DEAD_LAYERS {
        match mount_point_state(mount_point, paths)? {
            MountPointState::Missing => {
                std::fs::create_dir_all(mount_point).map_err(wrap)?;
                return Ok(MountPlan::Fresh);
            }
            MountPointState::Directory => return Ok(MountPlan::Fresh),
            MountPointState::RegularFile | MountPointState::OtherFile => {
                return Err(MountError::MountPointIsFile(mount_point.to_owned()))
            }
            MountPointState::LiveCgview(previous_device) => {
                return Ok(MountPlan::TakeOver { previous_device })
            }
            MountPointState::DeadMount => {
                tracing::warn!(
                    mount_point = %mount_point.display(),
                    "detaching a dead FUSE mount left by a previous daemon"
                );
                nix::mount::umount2(mount_point, nix::mount::MntFlags::MNT_DETACH)
                    .map_err(|e| wrap(e.into()))?;
            }
        }
    }
    Err(wrap(io::Error::other(format!(
        "more than {MAX_DEAD_LAYERS} dead mounts are stacked here"
    ))))
}

/// The device of the cgview mount visible at `mount_point` in this namespace, if there is one.
fn live_cgview_device(mount_point: &Path, paths: &HostPaths) -> Result<Option<String>, MountError> {
    let canonical =
        std::fs::canonicalize(mount_point).map_err(|source| MountError::MountPoint {
            path: mount_point.to_owned(),
            source,
        })?;
    let mounts = own_mounts(paths)?;
    Ok(live_device(&mounts, &canonical.to_string_lossy()).map(str::to_owned))
}

fn own_mounts(paths: &HostPaths) -> Result<Vec<MountEntry>, MountError> {
    let mountinfo_path = paths.proc_file("self/mountinfo");
    let text = read_text(&mountinfo_path).map_err(MountError::MountTable)?;
    parse_mountinfo(&text)
        .wrap_path(&mountinfo_path)
        .map_err(MountError::MountTable)
}

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

/// Mounts `fs` at `mount_point` with `threads` workers and serves until SIGTERM or SIGINT.
///
/// The mount is made detached (`fsopen`/`fsmount`), the session's INIT handshake runs, and only then is it
/// attached, so the first reader is answered at once. Taking over from a running daemon, it is attached
/// beneath that daemon's mount and the old mount detached from above: new containers get this daemon from
/// then on, and every container already bound to the old one is moved over by the repair thread while the
/// old daemon still answers. The old daemon, told to stop, sees the mount point is no longer its own and
/// leaves it alone.
pub fn serve(
    fs: Arc<Fs>,
    mount_point: &Path,
    threads: usize,
    plan: MountPlan,
    metrics_address: Option<SocketAddr>,
    transport: Transport,
) -> Result<(), MountError> {
    // Block the stop signals in this thread before any worker starts, so every worker inherits the mask
    // and the signals are only ever taken by `wait` below.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGUSR1);
    signals.thread_block().map_err(MountError::Signals)?;
    spawn_janitor(&fs);

    // Bound before mounting: a taken port must not leave a mount behind.
    let metrics_listener = metrics_address
        .map(http::Listener::bind)
        .transpose()
        .map_err(MountError::Metrics)?;

    let mount_failed = |source: io::Error| MountError::Mount {
        path: mount_point.to_owned(),
        source,
    };
    let fuse_device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/fuse")
        .map_err(mount_failed)?;
    let fuse_device = OwnedFd::from(fuse_device);
    let mount = mount_api::new_fuse_mount(fuse_device.as_fd(), FS_NAME).map_err(mount_failed)?;
    let own_device = mount_api::device_of(&mount).map_err(mount_failed)?;

    // The rings are made before INIT: asking the kernel for io_uring and then failing to register them
    // would leave every request waiting for rings that never come.
    let prepared = match transport {
        Transport::DevFuse => None,
        Transport::IoUring => match crate::transport::ring::prepare(RING_DEPTH) {
            Ok(prepared) => Some((prepared, fuse_device.try_clone().map_err(mount_failed)?)),
            Err(e) => {
                let cause = cgview_core::error_chain(&e);
                tracing::warn!("cannot set up io_uring rings ({cause}); serving over /dev/fuse");
                None
            }
        },
    };
    let paths = fs.view().resolver().paths().clone();
    let session = DevFuseSession::handshake(fs.clone(), fuse_device, threads, prepared.is_some())
        .map_err(mount_failed)?;
    // INIT is done. The mount is not attached yet: a ring that fails now fails the mount, unseen.
    match prepared {
        Some((prepared, ring_device)) if session.io_uring_agreed() => {
            prepared
                .start(ring_device, fs.clone(), RING_MAX_WRITE)
                .map_err(MountError::Rings)?;
        }
        Some(_) => {
            tracing::warn!(
                "the kernel did not offer FUSE over io_uring (needs Linux 6.14+ and \
                 /sys/module/fuse/parameters/enable_uring set to Y); serving over /dev/fuse"
            );
        }
        None => {}
    }

    let previous_device = match &plan {
        MountPlan::Fresh => {
            mount_api::attach(&mount, mount_point, Placement::Top).map_err(mount_failed)?;
            None
        }
        MountPlan::TakeOver { previous_device } => {
            match mount_api::attach(&mount, mount_point, Placement::Beneath) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    return Err(MountError::CannotTakeOver(mount_point.to_owned()))
                }
                Err(e) => return Err(mount_failed(e)),
            }
            mount_api::detach(mount_point).map_err(mount_failed)?;
            tracing::info!(
                mount_point = %mount_point.display(),
                previous_device = %previous_device,
                "took over from the running cgview"
            );
            Some(previous_device.clone())
        }
    };
    drop(mount);

    let worker = std::thread::Builder::new()
        .name("cgview-session".into())
        .spawn(move || {
            let result = session.run();
            // Wake the main thread when the session ends on its own (e.g. an external umount).
            let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), Signal::SIGUSR1);
            result
        })
        .map_err(mount_failed)?;
    if let Some(listener) = metrics_listener {
        fs.metrics().enable();
        let bound = listener.local_addr().map_err(MountError::Metrics)?;
        let endpoint = DaemonEndpoint {
            fs: fs.clone(),
            mount_point: mount_point.to_owned(),
            own_device: own_device.clone(),
            paths: paths.clone(),
        };
        listener.serve(endpoint).map_err(MountError::Metrics)?;
        tracing::info!(address = %bound, "serving /metrics and /healthz");
    }
    tracing::info!(mount_point = %mount_point.display(), threads, device = %own_device, "serving");
    if let Err(e) = crate::daemon::notify::notify("READY=1") {
        tracing::warn!("cannot tell the service manager this daemon is ready: {e}");
    }
    spawn_repair(
        paths.clone(),
        mount_point.to_owned(),
        previous_device,
        fs.metrics().clone(),
    );

    loop {
        let signal = signals.wait().map_err(MountError::Signals)?;
        let owned = owns_mount_point(mount_point, &own_device, &paths);
        if signal != Signal::SIGUSR1 {
            let _ = crate::daemon::notify::notify("STOPPING=1");
        }
        if signal == Signal::SIGUSR1 {
            if owned {
                let _ = worker.join();
                return Err(MountError::UnmountedExternally(mount_point.to_owned()));
            }
            // Taken over, and every container moved off: nothing is left to serve. Exiting now would have a
            // supervisor restart this (older) daemon, which would take the mount point back.
            tracing::info!(
                "another cgview serves {} and nothing uses this one any more; waiting for SIGTERM",
                mount_point.display()
            );
            continue;
        }
        if !owned {
            tracing::info!(
                "received {signal}; another cgview serves {} now, leaving it mounted",
                mount_point.display()
            );
            wait_for_open_files(&fs, &worker);
            return Ok(());
        }
        tracing::info!("received {signal}, unmounting");
        if let Err(e) = nix::mount::umount2(mount_point, nix::mount::MntFlags::empty()) {
            tracing::info!("unmount: {e}; detaching lazily");
            let _ = nix::mount::umount2(mount_point, nix::mount::MntFlags::MNT_DETACH);
        }
        // Containers' bind mounts keep the FUSE connection alive after the mount point is gone, and the
        // session only ends with the connection: do not wait for them. Exiting closes /dev/fuse, which ends
        // the connection; their reads then fail until a daemon serves again and repairs them.
        let deadline = std::time::Instant::now() + STOP_GRACE;
        while !worker.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if !worker.is_finished() {
            tracing::info!(
                "bind mounts in containers still use this daemon; exiting anyway (the next daemon repairs them)"
            );
            return Ok(());
        }
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("session ended with: {e}"),
            Err(_) => tracing::error!("the session thread panicked"),
        }
        return Ok(());
    }
}

/// Whose cgview mount is visible at a mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occupant {
    ThisDaemon,
    /// A successor took it over.
    Another,
    /// Nothing: unmounted (from outside, or never mounted).
    Nothing,
}

fn occupant(
    mount_point: &Path,
    own_device: &str,
    paths: &HostPaths,
) -> Result<Occupant, MountError> {
    let mounts = own_mounts(paths)?;
    let canonical = std::fs::canonicalize(mount_point).unwrap_or_else(|_| mount_point.to_owned());
    Ok(match live_device(&mounts, &canonical.to_string_lossy()) {
        Some(device) if device == own_device => Occupant::ThisDaemon,
        Some(_) => Occupant::Another,
        None => Occupant::Nothing,
    })
}

/// Whether a stop should unmount `mount_point`: unless a successor serves it. When the mount table cannot
/// be read, behave as the owner, so a stop never leaves a mount behind.
fn owns_mount_point(mount_point: &Path, own_device: &str, paths: &HostPaths) -> bool {
    !matches!(
        occupant(mount_point, own_device, paths),
        Ok(Occupant::Another)
    )
}

/// A taken-over daemon's last duty: files opened on it just before the containers were moved are still
/// being read. Waits until they are closed (or `SUPERSEDED_GRACE` passes); exiting then ends the
/// connection, so a reader that keeps a file open longer (`top` holds `/proc/stat`) gets `ENOTCONN`.
fn wait_for_open_files(fs: &Fs, worker: &std::thread::JoinHandle<io::Result<()>>) {
    let deadline = std::time::Instant::now() + SUPERSEDED_GRACE;
    while fs.open_count() > 0 && !worker.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let open = fs.open_count();
    if open > 0 && !worker.is_finished() {
        tracing::warn!(
            open,
            "exiting with files still open on this daemon; their next reads fail"
        );
    }
}

/// Containers listed by name in `cgview_container_requests_total`.
const BUSIEST_CONTAINERS: usize = 20;

/// What `--metrics-addr` serves, read from the running daemon at each request.
struct DaemonEndpoint {
    fs: Arc<Fs>,
    mount_point: PathBuf,
    own_device: String,
    paths: HostPaths,
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

/// How long a stopping daemon waits for its session to end once the mount point is unmounted.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a taken-over daemon keeps answering files opened before the handover.
const SUPERSEDED_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Once the mount answers, replaces the dead cgview mounts a previous daemon left in containers, and moves
/// containers off a taken-over daemon's mounts (twice: a container being created during the first pass
/// may bind the old mount after its namespace was scanned).
/// How often the janitor drops idle cache entries and keeps descriptors inside the budget.
const JANITOR_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);
const JANITOR_MIN_SPACING: std::time::Duration = std::time::Duration::from_millis(100);

/// Starts the thread that runs [`ViewCache::maintain`](crate::service::cache::ViewCache::maintain) every second,
/// and at once when the descriptor budget runs out. It ends with the file system.
fn spawn_janitor(fs: &Arc<Fs>) {
    let weak = Arc::downgrade(fs);
    let spawned = std::thread::Builder::new()
        .name("cgview-janitor".into())
        .spawn(move || loop {
            std::thread::park_timeout(JANITOR_PERIOD);
            match weak.upgrade() {
                Some(fs) => fs.cache().maintain(fs.cache().now()),
                None => break,
            }
            // A budget refused on every read wakes the janitor on every read: a round costs a pass
            // over the caches, so rounds are spaced.
            std::thread::sleep(JANITOR_MIN_SPACING);
        });
    match spawned {
        Ok(handle) => fs.cache().fd_budget().set_janitor(handle.thread().clone()),
        Err(e) => tracing::error!("cannot start the cache janitor: {e}; idle entries stay cached"),
    }
}

fn spawn_repair(
    paths: HostPaths,
    mount_point: PathBuf,
    previous_device: Option<String>,
    metrics: Arc<Metrics>,
) {
    let _ = std::thread::Builder::new()
        .name("cgview-repair".into())
        .spawn(move || {
            // statfs, not a file: a file's attributes would be rendered for this daemon as a caller.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while nix::sys::statfs::statfs(&mount_point).is_err()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let passes = if previous_device.is_some() { 2 } else { 1 };
            for pass in 0..passes {
                if pass > 0 {
                    std::thread::sleep(TAKEOVER_SECOND_PASS);
                }
                let (namespaces, mounts, failures) = crate::daemon::repair::repair_all(
                    &paths,
                    &mount_point,
                    previous_device.as_deref(),
                );
                if namespaces + failures > 0 {
                    tracing::info!(namespaces, mounts, failures, "repair of dead mounts done");
                }
                let mounts = mounts as u64;
                match previous_device {
                    Some(_) => metrics.record_repairs(0, mounts),
                    None => metrics.record_repairs(mounts, 0),
                }
            }
        });
}

/// When a take-over looks again for containers still on the old daemon.
const TAKEOVER_SECOND_PASS: std::time::Duration = std::time::Duration::from_secs(2);
