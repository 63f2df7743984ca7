//! The mount point before mounting: what it holds (nothing, a directory, a dead FUSE mount, a live
//! cgview) and the plan that follows.

use super::MountError;
use crate::daemon::mount_scan::{is_dead_connection, live_device, visible_mount};
use crate::host::error::{read_text, WrapPath};
use crate::host::paths::HostPaths;
use cgview_core::catalog::may_be_left_by_a_runtime;
use cgview_core::parse::mountinfo::{parse_mountinfo, MountEntry};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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
            MountPointState::Directory => {
                clear_runtime_leftovers(mount_point)?;
                return Ok(MountPlan::Fresh);
            }
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

/// Entries of a mount point named in a refusal, at most.
const FOREIGN_NAMED: usize = 5;

/// Removes the empty directories a container runtime made in place of cgview's files while nothing served
/// at `mount_point` (Docker's `-v` creates a missing bind source, and its parents, as directories; a
/// container restarted while cgview was down leaves `proc/meminfo/` and the rest), and refuses a mount
/// point holding anything else: mounting over it would hide it without a word.
pub(super) fn clear_runtime_leftovers(mount_point: &Path) -> Result<(), MountError> {
    let wrap = |source: io::Error| MountError::MountPoint {
        path: mount_point.to_owned(),
        source,
    };
    let device = std::fs::metadata(mount_point).map_err(wrap)?.dev();
    let mut leftovers = Vec::new();
    let mut foreign = Vec::new();
    find_leftovers(
        mount_point,
        Path::new(""),
        device,
        &mut leftovers,
        &mut foreign,
    )
    .map_err(wrap)?;
    if !foreign.is_empty() {
        let more = foreign.len().saturating_sub(FOREIGN_NAMED);
        let mut found: Vec<String> = foreign.into_iter().take(FOREIGN_NAMED).collect();
        if more > 0 {
            found.push(format!("{more} more"));
        }
        return Err(MountError::MountPointNotEmpty {
            path: mount_point.to_owned(),
            found: found.join(", "),
        });
    }
    if leftovers.is_empty() {
        return Ok(());
    }
    for relative in &leftovers {
        std::fs::remove_dir(mount_point.join(relative)).map_err(wrap)?;
    }
    let removed: Vec<String> = leftovers.iter().map(|p| p.display().to_string()).collect();
    tracing::warn!(
        mount_point = %mount_point.display(),
        removed = %removed.join(" "),
        "removed empty directories a container runtime made in place of cgview's files while nothing \
         served here (Docker's -v binds do that; the --mount binds `cgview docker-args` prints do not)"
    );
    Ok(())
}

/// Walks `relative` below `root`: directories a runtime may have left (on the mount point's own file
/// system, holding nothing else) go to `leftovers` deepest first, anything else to `foreign`.
fn find_leftovers(
    root: &Path,
    relative: &Path,
    device: u64,
    leftovers: &mut Vec<PathBuf>,
    foreign: &mut Vec<String>,
) -> io::Result<()> {
    for entry in std::fs::read_dir(root.join(relative))? {
        let entry = entry?;
        let child = relative.join(entry.file_name());
        let meta = entry.metadata()?;
        if meta.is_dir() && meta.dev() == device && may_be_left_by_a_runtime(&child) {
            find_leftovers(root, &child, device, leftovers, foreign)?;
            leftovers.push(child);
        } else {
            let kind = if meta.is_dir() {
                if meta.dev() == device {
                    "a directory"
                } else {
                    "a mount"
                }
            } else if meta.is_file() {
                "a file"
            } else if meta.is_symlink() {
                "a symbolic link"
            } else {
                "a special file"
            };
            foreign.push(format!("{} ({kind})", child.display()));
        }
    }
    Ok(())
}

/// The mount visible at `mount_point` in this namespace (any file system), if something is mounted there.
pub fn mount_at(mount_point: &Path, paths: &HostPaths) -> Result<Option<MountEntry>, MountError> {
    let canonical =
        std::fs::canonicalize(mount_point).map_err(|source| MountError::MountPoint {
            path: mount_point.to_owned(),
            source,
        })?;
    let mounts = own_mounts(paths)?;
    Ok(visible_mount(&mounts, &canonical.to_string_lossy()).cloned())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(paths: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for path in paths {
            match path.strip_suffix('/') {
                Some(dir) => std::fs::create_dir_all(root.path().join(dir)).unwrap(),
                None => {
                    let file = root.path().join(path);
                    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                    std::fs::write(file, "x").unwrap();
                }
            }
        }
        root
    }

    #[test]
    fn an_empty_mount_point_is_left_as_it_is() {
        let root = tree(&[]);
        clear_runtime_leftovers(root.path()).unwrap();
        assert!(root.path().is_dir());
    }

    #[test]
    fn directories_docker_made_for_bind_sources_are_removed() {
        let root = tree(&[
            "proc/meminfo/",
            "proc/uptime/",
            "proc/pressure/io/",
            "sys/devices/system/cpu/",
            "sys/block/",
            "NOT-SERVED-BY-CGVIEW/",
        ]);
        clear_runtime_leftovers(root.path()).unwrap();
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn anything_else_refuses_the_mount_and_nothing_is_removed() {
        for (leftover, foreign) in [
            ("proc/meminfo/", "proc/stat"),
            ("proc/meminfo/", "data/"),
            ("sys/block/", "sys/devices/system/cpu/cpu0/"),
            ("proc/uptime/", "proc/meminfo/x/"),
        ] {
            let root = tree(&[leftover, foreign]);
            let error = clear_runtime_leftovers(root.path()).unwrap_err();
            let message = error.to_string();
            let named = foreign.trim_end_matches('/');
            assert!(message.contains(named), "{message}");
            assert!(
                root.path().join(leftover).is_dir(),
                "{leftover} was removed"
            );
        }
    }

    #[test]
    fn a_symbolic_link_is_foreign_even_to_a_leftover_name() {
        let root = tree(&["elsewhere/"]);
        std::fs::create_dir(root.path().join("proc")).unwrap();
        std::os::unix::fs::symlink(
            root.path().join("elsewhere"),
            root.path().join("proc/meminfo"),
        )
        .unwrap();
        let message = clear_runtime_leftovers(root.path())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("proc/meminfo (a symbolic link)"),
            "{message}"
        );
        assert!(message.contains("elsewhere (a directory)"), "{message}");
    }

    #[test]
    fn a_long_refusal_names_a_few_and_counts_the_rest() {
        let names: Vec<String> = (0..8).map(|i| format!("f{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let root = tree(&refs);
        let message = clear_runtime_leftovers(root.path())
            .unwrap_err()
            .to_string();
        assert!(message.contains("3 more"), "{message}");
    }
}
