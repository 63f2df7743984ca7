//! `cgview mount`: prepare the mount point, mount, serve until SIGTERM/SIGINT, unmount.

use crate::fuse_fs::CgviewFs;
use crate::host::error::{read_text, ReadError, WrapPath};
use crate::host::paths::HostPaths;
use crate::parse::mountinfo::parse_mountinfo;
use crate::tree::Tree;
use fuser::{Config, MountOption, Session, SessionACL};
use nix::sys::signal::{SigSet, Signal};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

use crate::bind_mounts::is_cgview_mount;
pub use crate::bind_mounts::FS_NAME;

#[derive(Debug, Error)]
pub enum MountError {
    #[error("cgview mount must run as root: it mounts a FUSE file system that other users' processes read")]
    NotRoot,
    #[error("/dev/fuse is missing: load the fuse module (modprobe fuse) or pass the device into this container")]
    NoFuseDevice,
    #[error("the mount point {0} is a regular file, not a directory")]
    MountPointIsFile(PathBuf),
    #[error("{0} is already served by a running cgview; stop it first")]
    AlreadyMounted(PathBuf),
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
    #[error("the mount at {0} was removed from outside cgview")]
    UnmountedExternally(PathBuf),
}

/// What a mount point holds before cgview mounts there.
#[derive(Debug, PartialEq, Eq)]
enum MountPointState {
    Missing,
    Directory,
    RegularFile,
    /// A FUSE mount whose daemon is gone: every request fails with ENOTCONN.
    DeadMount,
    /// A cgview mount whose daemon answers.
    LiveCgview,
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
                Ok(_) if is_live_cgview_mount(path, paths)? => Ok(MountPointState::LiveCgview),
                Ok(_) => Ok(MountPointState::Directory),
            }
        }
        Ok(meta) if meta.is_file() => Ok(MountPointState::RegularFile),
        Ok(_) => Ok(MountPointState::OtherFile),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(MountPointState::Missing),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(MountPointState::DeadMount),
        Err(source) => Err(wrap(source)),
    }
}

/// Checks the environment and leaves an empty directory (or a live directory) ready at `mount_point`.
pub fn prepare_mount_point(mount_point: &Path, paths: &HostPaths) -> Result<(), MountError> {
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
            MountPointState::Missing => return std::fs::create_dir_all(mount_point).map_err(wrap),
            MountPointState::Directory => return Ok(()),
            MountPointState::RegularFile | MountPointState::OtherFile => {
                return Err(MountError::MountPointIsFile(mount_point.to_owned()))
            }
            MountPointState::LiveCgview => {
                return Err(MountError::AlreadyMounted(mount_point.to_owned()))
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

fn is_live_cgview_mount(mount_point: &Path, paths: &HostPaths) -> Result<bool, MountError> {
    let canonical =
        std::fs::canonicalize(mount_point).map_err(|source| MountError::MountPoint {
            path: mount_point.to_owned(),
            source,
        })?;
    let mountinfo_path = paths.proc_file("self/mountinfo");
    let text = read_text(&mountinfo_path).map_err(MountError::MountTable)?;
    let mounts = parse_mountinfo(&text)
        .wrap_path(&mountinfo_path)
        .map_err(MountError::MountTable)?;
    Ok(mounts
        .iter()
        .any(|m| is_cgview_mount(m) && Path::new(&m.mount_point) == canonical))
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

/// Mounts `tree` at `mount_point` with `threads` workers and serves until SIGTERM or SIGINT.
pub fn serve(tree: Arc<Tree>, mount_point: &Path, threads: usize) -> Result<(), MountError> {
    // Block the stop signals in this thread before any worker starts, so every worker inherits the mask
    // and the signals are only ever taken by `wait` below.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGUSR1);
    signals.thread_block().map_err(MountError::Signals)?;

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(FS_NAME.into()),
        MountOption::Subtype(FS_NAME.into()),
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoExec,
        MountOption::DefaultPermissions,
    ];
    config.acl = SessionACL::All;
    config.n_threads = Some(threads.max(1));
    config.clone_fd = true;

    let tree_paths = tree.view().resolver().paths().clone();
    let mut session =
        Session::new(CgviewFs::new(tree), mount_point, &config).map_err(|source| {
            MountError::Mount {
                path: mount_point.to_owned(),
                source,
            }
        })?;
    let mut unmounter = session.unmount_callable();
    let worker = std::thread::Builder::new()
        .name("cgview-session".into())
        .spawn(move || {
            let result = session.run();
            // Wake the main thread when the session ends on its own (e.g. an external umount).
            let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), Signal::SIGUSR1);
            result
        })
        .map_err(|source| MountError::Mount {
            path: mount_point.to_owned(),
            source,
        })?;
    tracing::info!(mount_point = %mount_point.display(), threads, "serving");
    spawn_repair(tree_paths, mount_point.to_owned());

    let signal = signals.wait().map_err(MountError::Signals)?;
    if signal == Signal::SIGUSR1 {
        let _ = worker.join();
        return Err(MountError::UnmountedExternally(mount_point.to_owned()));
    }
    tracing::info!("received {signal}, unmounting");
    if let Err(e) = unmounter.unmount() {
        tracing::warn!("unmount failed ({e}); detaching lazily");
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
    Ok(())
}

/// How long a stopping daemon waits for its session to end once the mount point is unmounted.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Once the mount answers, replaces the dead cgview mounts a previous daemon left in containers.
fn spawn_repair(paths: HostPaths, mount_point: PathBuf) {
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
            let (namespaces, mounts, failures) = crate::repair::repair_all(&paths, &mount_point);
            if namespaces + failures > 0 {
                tracing::info!(namespaces, mounts, failures, "repair of dead mounts done");
            }
        });
}
