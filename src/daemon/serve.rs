//! Serving a mount point: mount (or take over), serve until a stop signal, unmount or hand over.

use super::endpoint::DaemonEndpoint;
use super::holder::{Holder, Resumed};
use super::mount_api::{self, Placement};
use super::mount_point::{owns_mount_point, MountPlan};
use super::MountError;
use super::{Transport, RING_DEPTH};
use crate::daemon::mount_scan::mount_source;
pub use crate::daemon::mount_scan::FS_NAME;
use crate::fs::Fs;
use crate::host::paths::HostPaths;
use crate::telemetry::http;
use crate::telemetry::metrics::Metrics;
use crate::transport::fuse::{DevFuseSession, RING_MAX_WRITE};
use cgview_core::handover::Handover;
use nix::sys::signal::{SigSet, Signal};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Mounts `fs` at `mount_point` with `threads` workers and serves until SIGTERM or SIGINT.
///
/// The mount is made detached (`fsopen`/`fsmount`), the session's INIT handshake runs, and only then is it
/// attached, so the first reader is answered at once. Taking over from a running daemon, it is attached
/// beneath that daemon's mount and the old mount detached from above: new containers get this daemon from
/// then on, and every container already bound to the old one is moved over by the repair thread while the
/// old daemon still answers. The old daemon, told to stop, sees the mount point is no longer its own and
/// leaves it alone.
///
/// With a holder (a keeper process or systemd's descriptor store, see [`Holder`]), the connection
/// outlives this process: the mount is deposited with the holder, a stop leaves it mounted for the
/// next daemon, and `Start::Resume` serves a connection an
/// earlier daemon mounted, without INIT.
pub fn serve(
    fs: Arc<Fs>,
    mount_point: &Path,
    threads: usize,
    start: Start,
    metrics_address: Option<SocketAddr>,
    transport: Transport,
    holder: Option<Holder>,
) -> Result<(), MountError> {
    // Block the stop signals in this thread before any worker starts, so every worker inherits the mask
    // and the signals are only ever taken by `wait` below.
    stop_signals().thread_block().map_err(MountError::Signals)?;
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
    let plan = match start {
        Start::Mount(plan) => plan,
        Start::Resume(resumed) => {
            let holder = holder.ok_or_else(|| {
                mount_failed(io::Error::other("a resumed connection needs its holder"))
            })?;
            let paths = fs.view().resolver().paths().clone();
            let serving = resume(&fs, resumed, threads, holder).map_err(mount_failed)?;
            // Dead binds a daemon without a holder left (before this connection was kept) are
            // replaced from this one, as at any start.
            spawn_repair(
                paths.clone(),
                mount_point.to_owned(),
                None,
                fs.metrics().clone(),
            );
            return serve_until_stopped(
                fs,
                mount_point,
                paths,
                serving,
                metrics_listener,
                true,
                threads,
            );
        }
    };
    let fuse_device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/fuse")
        .map_err(mount_failed)?;
    let fuse_device = OwnedFd::from(fuse_device);
    let canonical = std::fs::canonicalize(mount_point).unwrap_or_else(|_| mount_point.to_owned());
    let mount = mount_api::new_fuse_mount(fuse_device.as_fd(), &mount_source(&canonical), FS_NAME)
        .map_err(mount_failed)?;
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
    let kept_device = fuse_device.try_clone().map_err(mount_failed)?;
    let session = DevFuseSession::handshake(fs.clone(), fuse_device, threads, prepared.is_some())
        .map_err(mount_failed)?;
    let record = Handover {
        generation: 0,
        device: own_device.clone(),
        max_write: RING_MAX_WRITE,
        io_uring: session.io_uring_agreed(),
        mirror_seed: Some(fs.mirror_seed()),
        // Registered now rather than at the first open: the record given to the holder names it.
        backing_id: fs.mmap_refusal(|file| {
            crate::transport::passthrough::register_backing_file(kept_device.as_fd(), file)
        }),
    };
    // A kernel that cannot resend what a departed daemon took (before Linux 6.9) would leave those
    // readers waiting for good: there, the connection ends with its daemon, as it always did. Asking
    // now, with nothing taken yet, changes nothing on a kernel that can.
    let holder = match crate::transport::resumed::resend_unanswered(kept_device.as_fd()) {
        Ok(()) => holder,
        Err(e) => {
            if holder.is_some() {
                tracing::warn!(
                    "this kernel cannot resend unanswered requests (FUSE_NOTIFY_RESEND, Linux 6.9: {e}); \
                     the connection is not kept across daemons, restarts repair containers instead"
                );
            }
            None
        }
    };
    let holder = holder.and_then(
        |holder| match holder.deposit(kept_device.as_fd(), &record) {
            Ok(()) => Some(holder),
            Err(e) => {
                tracing::warn!(
                    "cannot give the keeper the connection ({e}); it ends with this daemon"
                );
                None
            }
        },
    );
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
    let kept = match holder {
        Some(holder) => match holder.serve(kept_device, record) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    "cannot hand the connection to its holder ({e}); it ends with this daemon"
                );
                false
            }
        },
        None => false,
    };
    spawn_repair(
        paths.clone(),
        mount_point.to_owned(),
        previous_device,
        fs.metrics().clone(),
    );
    let serving = Serving { worker, own_device };
    serve_until_stopped(
        fs,
        mount_point,
        paths,
        serving,
        metrics_listener,
        kept,
        threads,
    )
}

/// A daemon answering its connection.
struct Serving {
    /// The thread that ends with the session (and then wakes the main thread with SIGUSR1).
    worker: std::thread::JoinHandle<io::Result<()>>,
    own_device: String,
}

/// How a daemon gets its connection.
pub enum Start {
    /// Mounts one.
    Mount(MountPlan),
    /// Resumes the one its holder kept.
    Resume(Resumed),
}

/// Serves the connection the holder handed over: requests read from `/dev/fuse` by this daemon's own
/// loop (or its rings re-registered), the unanswered ones of the daemon before asked for again.
fn resume(fs: &Arc<Fs>, resumed: Resumed, threads: usize, holder: Holder) -> io::Result<Serving> {
    let Resumed {
        device,
        record,
        live,
    } = resumed;
    if record.io_uring {
        let prepared = crate::transport::ring::prepare(RING_DEPTH)?;
        prepared.start(device.try_clone()?, fs.clone(), record.max_write)?;
        tracing::info!("registered new io_uring rings on the resumed connection");
    }
    let loop_device = device.try_clone()?;
    let loop_fs = fs.clone();
    let max_write = record.max_write;
    let worker = std::thread::Builder::new()
        .name("cgview-session".into())
        .spawn(move || {
            let result = crate::transport::resumed::serve(loop_fs, loop_device, threads, max_write);
            let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), Signal::SIGUSR1);
            result
        })?;
    if let Err(e) = crate::transport::resumed::resend_unanswered(device.as_fd()) {
        tracing::warn!(
            "this kernel cannot resend requests a stopped daemon took and did not answer (FUSE_NOTIFY_RESEND needs Linux 6.9): {e}; their readers wait until interrupted"
        );
    }
    let own_device = record.device.clone();
    if live {
        tracing::info!(
            generation = record.generation,
            "took over from the running cgview: resumed its FUSE connection"
        );
    } else {
        tracing::info!(
            generation = record.generation,
            "resumed the FUSE connection an earlier cgview left with its holder"
        );
    }
    holder.serve(device, record)?;
    Ok(Serving { worker, own_device })
}

/// Serves metrics, tells systemd it is ready, and waits for a stop signal or the end of the session.
/// With a holder (`kept`), a stop leaves the mount to the next daemon.
fn serve_until_stopped(
    fs: Arc<Fs>,
    mount_point: &Path,
    paths: HostPaths,
    serving: Serving,
    metrics_listener: Option<http::Listener>,
    kept: bool,
    threads: usize,
) -> Result<(), MountError> {
    let Serving { worker, own_device } = serving;
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
    cache_root_attributes(mount_point);
    if let Err(e) = crate::daemon::notify::notify("READY=1") {
        tracing::warn!("cannot tell the service manager this daemon is ready: {e}");
    }
    let signals = stop_signals();
    loop {
        let signal = signals.wait().map_err(MountError::Signals)?;
        if signal != Signal::SIGUSR1 {
            // Stopping: seccomp notifications received are answered, the rest wait in the kernel for
            // the next daemon (the keeper holds their descriptors).
            crate::daemon::seccomp::quiesce(super::holder::QUIESCE_WITHIN);
        }
        let owned = owns_mount_point(mount_point, &own_device, &paths);
        // Taken over by a daemon that mounted beneath this one (it had no access to this one's
        // holder) is handled below as without a holder: files opened here get their grace.
        if kept && owned && signal != Signal::SIGUSR1 {
            let _ = crate::daemon::notify::notify("STOPPING=1");
            tracing::info!(
                "received {signal}; leaving {} mounted: its holder keeps the connection for the next daemon",
                mount_point.display()
            );
            crate::transport::ring::quiesce(super::holder::QUIESCE_WITHIN);
            return Ok(());
        }
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

/// Has the kernel cache the mount root's attributes (kept for good, see [`crate::fs::attr::ROOT_TTL`]) while
/// this daemon answers: a `stat` of the root while no daemon serves, `docker start` of the agent's own
/// container among them, is then answered without one. On a thread: the main one must stay free for
/// signals whatever the stat does.
fn cache_root_attributes(mount_point: &Path) {
    let root = mount_point.to_owned();
    let spawned = std::thread::Builder::new()
        .name("cgview-root-attr".into())
        .spawn(move || {
            if let Err(e) = std::fs::metadata(&root) {
                tracing::warn!(
                    "cannot stat {} to cache its attributes: {e}",
                    root.display()
                );
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the thread caching the root's attributes: {e}");
    }
}

/// SIGTERM and SIGINT stop the daemon; SIGUSR1 is its session thread saying the session ended.
fn stop_signals() -> SigSet {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGUSR1);
    signals
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

/// How long a stopping daemon waits for its session to end once the mount point is unmounted.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a taken-over daemon keeps answering files opened before the handover.
const SUPERSEDED_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

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

/// Once the mount answers, replaces the dead cgview mounts a previous daemon left in containers, and moves
/// containers off a taken-over daemon's mounts (twice: a container being created during the first pass
/// may bind the old mount after its namespace was scanned).
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
