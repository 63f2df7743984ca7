//! The mount point before mounting: what it holds (nothing, a directory, a dead FUSE mount, a live
//! cgview) and the plan that follows.

use super::MountError;
use crate::daemon::mount_scan::{is_dead_connection, live_device};
use crate::host::error::{read_text, WrapPath};
use crate::host::paths::HostPaths;
use cgview_core::parse::mountinfo::{parse_mountinfo, MountEntry};
use std::io;
use std::path::Path;

/// What a mount point holds before cgview mounts there.
#[derive(Debug, PartialEq, Eq)]
enum MountPointState {
    Missing,
    Directory,
    RegularFile,
    /// A FUSE mount whose daemon is gone: every request fails with ENOTCONN (or ECONNABORTED).
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
                Err(errno) if is_dead_connection(errno) => Ok(MountPointState::DeadMount),
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
        Err(e)
            if is_dead_connection(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))) =>
        {
            Ok(MountPointState::DeadMount)
        }
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

pub(super) fn own_mounts(paths: &HostPaths) -> Result<Vec<MountEntry>, MountError> {
    let mountinfo_path = paths.proc_file("self/mountinfo");
    let text = read_text(&mountinfo_path).map_err(MountError::MountTable)?;
    parse_mountinfo(&text)
        .wrap_path(&mountinfo_path)
        .map_err(MountError::MountTable)
}

/// Whose cgview mount is visible at a mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Occupant {
    ThisDaemon,
    /// A successor took it over.
    Another,
    /// Nothing: unmounted (from outside, or never mounted).
    Nothing,
}

pub(super) fn occupant(
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
pub(super) fn owns_mount_point(mount_point: &Path, own_device: &str, paths: &HostPaths) -> bool {
    !matches!(
        occupant(mount_point, own_device, paths),
        Ok(Occupant::Another)
    )
}
