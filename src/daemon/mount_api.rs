//! The kernel's file-descriptor mount API (`fsopen`, `fsmount`, `open_tree`, `move_mount`): a FUSE mount
//! made detached and attached later, and mounts moved between places and namespaces.
//!
//! Attaching a detached mount is what lets a new daemon take over a path without a moment where it is
//! empty: the new mount goes *beneath* the old one (`MOVE_MOUNT_BENEATH`, Linux 6.5) and the old one is then
//! detached from above, so a path walk finds one or the other, never neither.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
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
/// source `fs_name`, subtype `fs_name`, read-only, `nosuid,nodev,noexec`, `allow_other`, owned by root;
/// no `default_permissions` (the daemon checks permissions, see [`cgview_core::permissions`]). The kernel queues the INIT request as the mount is created, so
/// the session handshake can run before the mount is attached anywhere.
pub fn new_fuse_mount(fuse_device: BorrowedFd<'_>, fs_name: &str) -> io::Result<OwnedFd> {
    let fs_type = c_string("fuse")?;
    // SAFETY: `fs_type` is a valid NUL-terminated string for the duration of the call; the syscall returns
    // a new descriptor or -1.
    let context =
        unsafe { libc::syscall(libc::SYS_fsopen, fs_type.as_ptr(), libc::FSOPEN_CLOEXEC) };
    let context = owned(context, "fsopen fuse")?;
    let set = |key: &str, value: Option<&str>| -> io::Result<()> {
        let c_key = c_string(key)?;
        let c_value = value.map(c_string).transpose()?;
        let (command, value_ptr) = match &c_value {
            Some(v) => (libc::FSCONFIG_SET_STRING, v.as_ptr()),
            None => (libc::FSCONFIG_SET_FLAG, std::ptr::null()),
        };
        // SAFETY: `context` is an open fs context; `c_key` and `c_value` are valid NUL-terminated strings
        // (or null for a flag, as the API requires) that outlive the call.
        let result = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                context.as_raw_fd(),
                command,
                c_key.as_ptr(),
                value_ptr,
                0,
            )
        };
        check(result, &format!("fsconfig {key}"))
    };
    set("source", Some(fs_name))?;
    set("subtype", Some(fs_name))?;
    set("fd", Some(&fuse_device.as_raw_fd().to_string()))?;
    set("rootmode", Some("40000"))?;
    set("user_id", Some("0"))?;
    set("group_id", Some("0"))?;
    set("allow_other", None)?;
    set("ro", None)?;
    // SAFETY: `context` is an open fs context; no pointers are passed.
    let created = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    check(created, "fsconfig create")?;
    let attributes = libc::MOUNT_ATTR_RDONLY
        | libc::MOUNT_ATTR_NOSUID
        | libc::MOUNT_ATTR_NODEV
        | libc::MOUNT_ATTR_NOEXEC;
    // SAFETY: `context` holds a created superblock; no pointers are passed.
    let mount = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            context.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attributes,
        )
    };
    owned(mount, "fsmount")
}

/// A detached copy of the mount subtree at `path` (`open_tree(2)` with `OPEN_TREE_CLONE`).
pub fn open_tree_clone(path: &Path) -> io::Result<OwnedFd> {
    let c_path = c_path(path)?;
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call; the syscall takes no other
    // pointers and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c_path.as_ptr(), flags) };
    owned(fd, &format!("open_tree {}", path.display()))
}

/// Attaches the detached mount `tree` at `target` (`move_mount(2)`). `Beneath` fails with `EINVAL`
/// (`InvalidInput`) on kernels before 6.5, and when `target` is not a mount's root.
pub fn attach(tree: &OwnedFd, target: &Path, placement: Placement) -> io::Result<()> {
    let empty = c_string("")?;
    let c_target = c_path(target)?;
    let flags = match placement {
        Placement::Top => libc::MOVE_MOUNT_F_EMPTY_PATH,
        Placement::Beneath => libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_BENEATH,
    };
    // SAFETY: both strings are valid and NUL-terminated for the duration of the call; `tree` is an open
    // descriptor we own.
    let result = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            c_target.as_ptr(),
            flags,
        )
    };
    check(result, &format!("move_mount {}", target.display()))
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
    let empty = c_string("")?;
    let mut stat = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `mount` is an open descriptor, `empty` a valid NUL-terminated string, and `stat` points to
    // writable memory of the size the kernel fills.
    let result = unsafe {
        libc::statx(
            mount.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC,
            0,
            stat.as_mut_ptr(),
        )
    };
    check(libc::c_long::from(result), "statx")?;
    // SAFETY: statx succeeded, so the kernel filled the structure (and it was zeroed before).
    let stat = unsafe { stat.assume_init() };
    Ok(format!("{}:{}", stat.stx_dev_major, stat.stx_dev_minor))
}

fn owned(fd: libc::c_long, what: &str) -> io::Result<OwnedFd> {
    if fd < 0 {
        let error = io::Error::last_os_error();
        return Err(io::Error::new(error.kind(), format!("{what}: {error}")));
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other(format!("{what}: bad descriptor")))?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Keeps the errno's kind (`EINVAL` stays `InvalidInput`, which callers test) and names the call.
fn check(result: libc::c_long, what: &str) -> io::Result<()> {
    if result < 0 {
        let error = io::Error::last_os_error();
        return Err(io::Error::new(error.kind(), format!("{what}: {error}")));
    }
    Ok(())
}

fn c_string(text: &str) -> io::Result<CString> {
    CString::new(text).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte"))
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
}
