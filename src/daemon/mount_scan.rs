//! The cgview mounts a mount namespace holds (a container's bind-mounted `/proc/meminfo`, a pod's
//! `/var/lib/cgview`), and whether each still reaches the running daemon.
//!
//! Every FUSE connection is its own file system with its own device number. A mount made from a daemon
//! that has since died keeps the dead connection's device and fails every request with `ENOTCONN`; the
//! live ones share the device of the running daemon's mount. Telling them apart needs no request to the
//! (possibly dead) mount, so a scan never hangs or fails on one.

use cgview_core::parse::mountinfo::MountEntry;
use std::path::Path;

/// The file system name of cgview mounts: their subtype (`fuse.cgview`), and their mount source before
/// sources named the mount point.
pub const FS_NAME: &str = "cgview";

/// The mount source of a cgview mounted at `mount_point` (canonical): `cgview:<mount point>`. Every bind a
/// container gets from that mount carries it in its mountinfo line, even once its daemon is gone, so a
/// daemon can tell its own containers' binds from another instance's.
pub fn mount_source(mount_point: &Path) -> String {
    format!("{FS_NAME}:{}", mount_point.display())
}

/// Which cgview instance a mount belongs to, from its mount source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// The instance at this mount point.
    MountPoint(&'a str),
    /// A mount made before sources named their mount point: its owner is known only while a mount of
    /// the same connection stays visible somewhere (see `claimed` in [`crate::daemon::repair`]).
    Unnamed,
}

/// The owner of a cgview mount (`None` for any other mount).
pub fn owner_of(mount: &MountEntry) -> Option<Owner<'_>> {
    if !is_cgview_mount(mount) {
        return None;
    }
    match mount
        .source
        .strip_prefix(FS_NAME)
        .and_then(|rest| rest.strip_prefix(':'))
    {
        Some(mount_point) => Some(Owner::MountPoint(mount_point)),
        None => Some(Owner::Unnamed),
    }
}

/// Whether the daemon at `mount_point` (canonical) may act on `mount`: one of its own, or an unnamed one.
pub fn may_act_on(mount: &MountEntry, mount_point: &str) -> bool {
    match owner_of(mount) {
        Some(Owner::MountPoint(owner)) => owner == mount_point,
        Some(Owner::Unnamed) => true,
        None => false,
    }
}

/// Whether an error from a FUSE mount says its daemon is gone: `ENOTCONN` once the connection is down,
/// `ECONNABORTED` for a request caught by the abort itself (a daemon killed while the kernel still waited on
/// its rings).
pub fn is_dead_connection(errno: nix::errno::Errno) -> bool {
    matches!(
        errno,
        nix::errno::Errno::ENOTCONN | nix::errno::Errno::ECONNABORTED
    )
}

/// Whether a mount entry is a cgview FUSE mount (`fuse`, or `fuse.cgview` when the subtype was passed),
/// whichever instance it belongs to.
pub fn is_cgview_mount(mount: &MountEntry) -> bool {
    let named = mount.source == FS_NAME
        || mount
            .source
            .strip_prefix(FS_NAME)
            .is_some_and(|rest| rest.starts_with(':'));
    named && (mount.fs_type == "fuse" || mount.fs_type == "fuse.cgview")
}

/// One cgview mount in some mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgviewBind {
    /// The path inside cgview's tree it shows: `/proc/meminfo`, or `/` for the whole tree.
    pub root: String,
    /// Where it is mounted, relative to the namespace's root.
    pub target: String,
    /// The FUSE connection's device (`major:minor`): which daemon serves it.
    pub device: String,
    pub live: bool,
    /// Its device is mounted at another mount point in the scanning daemon's namespace: it belongs to
    /// whichever daemon serves (or will serve) that mount point, which repairs it itself.
    pub claimed: bool,
}

/// The cgview mounts among `mounts`. One on `live_device` (the running daemon's) is live; any other is
/// asked `answers` (another daemon's mount is live too, one left by a dead daemon is not); `live_device`
/// `None` means this daemon does not serve. `skip_target` leaves out the daemon's own mount point.
pub fn cgview_binds(
    mounts: &[MountEntry],
    live_device: Option<&str>,
    skip_target: Option<&str>,
    answers: impl Fn(&MountEntry) -> bool,
) -> Vec<CgviewBind> {
    mounts
        .iter()
        .filter(|m| is_cgview_mount(m))
        .filter(|m| skip_target != Some(m.mount_point.as_str()))
        .map(|m| CgviewBind {
            // Once its connection is gone the kernel prints a bind's root as `<path>//deleted`.
            root: m
                .root
                .strip_suffix("//deleted")
                .unwrap_or(&m.root)
                .to_owned(),
            target: m.mount_point.clone(),
            device: m.device.clone(),
            claimed: false,
            live: live_device == Some(m.device.as_str()) || answers(m),
        })
        .collect()
}

/// The mount visible at `mount_point`: the last one mounted there, whatever its file system.
pub fn visible_mount<'a>(mounts: &'a [MountEntry], mount_point: &str) -> Option<&'a MountEntry> {
    mounts.iter().rev().find(|m| m.mount_point == mount_point)
}

/// The device of the cgview mount at `mount_point`, the last one mounted there (the visible one).
pub fn live_device<'a>(mounts: &'a [MountEntry], mount_point: &str) -> Option<&'a str> {
    mounts
        .iter()
        .rev()
        .find(|m| is_cgview_mount(m) && m.mount_point == mount_point)
        .map(|m| m.device.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgview_core::parse::mountinfo::parse_mountinfo;

    const HOST: &str = "\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
90 22 0:61 / /var/lib/cgview rw,nosuid,nodev,noexec,relatime - fuse.cgview cgview ro,user_id=0,group_id=0
";

    const CONTAINER: &str = "\
300 299 0:70 / / rw - overlay overlay rw
301 300 0:71 / /proc rw - proc proc rw
302 301 0:55 /proc/meminfo//deleted /proc/meminfo ro,nosuid,nodev,noexec - fuse cgview ro
303 301 0:61 /proc/cpuinfo /proc/cpuinfo ro,nosuid,nodev,noexec - fuse.cgview cgview ro
304 300 0:61 /sys/devices/system/cpu /sys/devices/system/cpu ro - fuse.cgview cgview ro
305 300 0:72 / /data rw - fuse sshfs rw
";

    #[test]
    fn container_binds_of_a_dead_and_the_live_daemon() {
        let host = parse_mountinfo(HOST).unwrap();
        let live = live_device(&host, "/var/lib/cgview");
        assert_eq!(live, Some("0:61"));
        // 0:55 is a dead daemon's connection: it does not answer.
        let binds = cgview_binds(&parse_mountinfo(CONTAINER).unwrap(), live, None, |_| false);
        let summary: Vec<(&str, bool)> =
            binds.iter().map(|b| (b.target.as_str(), b.live)).collect();
        assert_eq!(
            summary,
            [
                ("/proc/meminfo", false),
                ("/proc/cpuinfo", true),
                ("/sys/devices/system/cpu", true)
            ]
        );
        assert_eq!(binds[0].root, "/proc/meminfo");
    }

    #[test]
    fn no_daemon_means_nothing_is_live_and_own_mount_point_is_skipped() {
        let host = parse_mountinfo(HOST).unwrap();
        assert!(cgview_binds(&host, Some("0:61"), Some("/var/lib/cgview"), |_| false).is_empty());
        let binds = cgview_binds(&parse_mountinfo(CONTAINER).unwrap(), None, None, |_| false);
        assert!(binds.iter().all(|b| !b.live));
    }

    #[test]
    fn another_running_daemons_mounts_are_live() {
        let binds = cgview_binds(
            &parse_mountinfo(CONTAINER).unwrap(),
            Some("0:61"),
            None,
            |m| m.device == "0:55",
        );
        assert!(binds.iter().all(|b| b.live), "{binds:?}");
    }

    #[test]
    fn a_mount_belongs_to_the_instance_its_source_names() {
        let mounts = parse_mountinfo(
            "\
401 300 0:80 /proc/meminfo /proc/meminfo ro - fuse.cgview cgview:/var/lib/cgview ro
402 300 0:81 /proc/stat /proc/stat ro - fuse.cgview cgview:/tmp/b ro
403 300 0:82 /proc/uptime /proc/uptime ro - fuse.cgview cgview ro
404 300 0:83 / /data rw - fuse.sshfs cgview:/x rw
405 300 0:84 / /other rw - fuse.cgview cgviewer ro
",
        )
        .unwrap();
        let owners: Vec<Option<Owner>> = mounts.iter().map(owner_of).collect();
        assert_eq!(
            owners,
            [
                Some(Owner::MountPoint("/var/lib/cgview")),
                Some(Owner::MountPoint("/tmp/b")),
                Some(Owner::Unnamed),
                None,
                None
            ]
        );
        let acted_on: Vec<bool> = mounts
            .iter()
            .map(|m| may_act_on(m, "/var/lib/cgview"))
            .collect();
        assert_eq!(acted_on, [true, false, true, false, false]);
        assert_eq!(
            mount_source(Path::new("/var/lib/cgview")),
            "cgview:/var/lib/cgview"
        );
    }
}
