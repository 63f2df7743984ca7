//! The kernel's file-descriptor mount API (`fsopen`, `fsmount`, `open_tree`, `move_mount`): a FUSE mount
//! made detached and attached later, and mounts moved between places and namespaces.
//!
//! Attaching a detached mount is what lets a new daemon take over a path without a moment where it is
//! empty: the new mount goes *beneath* the old one (`MOVE_MOUNT_BENEATH`, Linux 6.5) and the old one is then
//! detached from above, so a path walk finds one or the other, never neither.

use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    open_tree, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Where a detached mount goes relative to what is already mounted at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On top, hiding what is there.
    Top,
    /// Under the mount at the target, which stays visible until it is detached.
    Beneath,
}

/// A new, detached FUSE mount served through `fuse_device` (an open `/dev/fuse`), with cgview's options:
/// source `source`, subtype `subtype`, read-only, `nosuid,nodev,noexec`, `allow_other`, owned by root;
/// no `default_permissions` (the daemon checks permissions, see [`cgview_core::permissions`]). The kernel queues the INIT request as the mount is created, so
/// the session handshake can run before the mount is attached anywhere.
pub fn new_fuse_mount(
    fuse_device: BorrowedFd<'_>,
    source: &str,
    subtype: &str,
) -> io::Result<OwnedFd> {
    let context = fsopen("fuse", FsOpenFlags::FSOPEN_CLOEXEC).map_err(named("fsopen fuse"))?;
    let set = |key: &str, value: &str| {
        fsconfig_set_string(&context, key, value).map_err(named(&format!("fsconfig {key}")))
    };
    set("source", source)?;
    set("subtype", subtype)?;
    // FUSE parses `fd` as a number (older kernels accept no descriptor-typed parameter for it).
    set("fd", &fuse_device.as_raw_fd().to_string())?;
    set("rootmode", "40000")?;
    set("user_id", "0")?;
    set("group_id", "0")?;
    for flag in ["allow_other", "ro"] {
        fsconfig_set_flag(&context, flag).map_err(named(&format!("fsconfig {flag}")))?;
    }
    fsconfig_create(&context).map_err(named("fsconfig create"))?;
    let attributes = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    fsmount(&context, FsMountFlags::FSMOUNT_CLOEXEC, attributes).map_err(named("fsmount"))
}

/// A detached copy of the mount subtree at `path` (`open_tree(2)` with `OPEN_TREE_CLONE`).
pub fn open_tree_clone(path: &Path) -> io::Result<OwnedFd> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    open_tree(CWD, path, flags).map_err(named(&format!("open_tree {}", path.display())))
}

/// Attaches the detached mount `tree` at `target` (`move_mount(2)`). `Beneath` fails with `EINVAL`
/// (`InvalidInput`) on kernels before 6.5, and when `target` is not a mount's root.
pub fn attach(tree: &OwnedFd, target: &Path, placement: Placement) -> io::Result<()> {
    let flags = match placement {
        Placement::Top => MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        Placement::Beneath => {
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_BENEATH
        }
    };
    move_mount(tree, "", CWD, target, flags)
        .map_err(named(&format!("move_mount {}", target.display())))
}

/// Puts `tree` at `target` in place of the mount there, with no moment where `target` shows neither:
/// beneath the old mount, then the old one detached. On kernels without `MOVE_MOUNT_BENEATH` the old one
/// is detached first (a reader may then briefly see what lies under the target).
pub fn replace(tree: &OwnedFd, target: &Path) -> io::Result<()> {
    match attach(tree, target, Placement::Beneath) {
        Ok(()) => detach(target),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            detach(target)?;
            attach(tree, target, Placement::Top)
        }
        Err(e) => Err(e),
    }
}

/// Detaches the top mount at `target` (lazily: open files on it keep working). Nothing mounted there is
/// not an error.
pub fn detach(target: &Path) -> io::Result<()> {
    match nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => Ok(()),
        Err(e) => Err(io::Error::new(
            io::Error::from(e).kind(),
            format!("umount {}: {e}", target.display()),
        )),
    }
}

/// The device of a mount's file system as mount tables print it (`major:minor`).
///
/// Asked with `AT_STATX_DONT_SYNC`: a plain `stat` of a FUSE root asks the daemon, which for a mount whose
/// session has not started yet would wait forever.
pub fn device_of(mount: &OwnedFd) -> io::Result<String> {
    let flags = AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC;
    let stat = statx(mount, "", flags, StatxFlags::empty()).map_err(named("statx"))?;
    Ok(format!("{}:{}", stat.stx_dev_major, stat.stx_dev_minor))
}

/// Names the call in the error and keeps the errno's kind (`EINVAL` stays `InvalidInput`, which callers
/// test).
fn named(what: &str) -> impl FnOnce(rustix::io::Errno) -> io::Error + '_ {
    move |errno| {
        let error = io::Error::from(errno);
        io::Error::new(error.kind(), format!("{what}: {error}"))
    }
}
