#![no_main]
//! Fuzzes the scan of other mount namespaces for cgview mounts: the daemon's own mountinfo gives the live
//! device at its mount point, another namespace's mountinfo gives its binds, and the repair picks which to
//! replace. Nothing may panic; every cgview mount of the namespace (and nothing else) becomes one bind, in
//! order, live exactly when it is on the live device or answers; the daemon's own mount point is left out
//! of its own namespace; and the repair replaces exactly the dead unclaimed binds and the previous
//! daemon's live ones.
//!
//! Input: 9 parameter bytes (whether the namespace is the daemon's own, which mounts answer), then
//! NUL-separated texts: the daemon's mountinfo, the namespace's mountinfo, the daemon's mount point, the
//! previous daemon's device.

mod input;

use cgview::daemon::mount_scan::{cgview_binds, is_cgview_mount, live_device, CgviewBind};
use cgview::parse::mountinfo::{parse_mountinfo, MountEntry};
use cgview::daemon::repair::NamespaceMounts;
use input::Input;
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;

const PARAM_LEN: usize = 9;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data, PARAM_LEN);
    let own_namespace = input.flag();
    let answering = input.u64();
    let (Ok(own), Ok(mounts)) = (
        parse_mountinfo(input.text(0)),
        parse_mountinfo(input.text(1)),
    ) else {
        return;
    };
    let mount_point = input.text(2);
    let previous = input.file(3);

    let live = live_device(&own, mount_point);
    let at_mount_point = own
        .iter()
        .filter(|m| is_cgview_mount(m) && m.mount_point == mount_point);
    assert_eq!(live, at_mount_point.last().map(|m| m.device.as_str()));

    // Mount `i` of the namespace answers when bit `i % 64` is set.
    let answers = |mount: &MountEntry| {
        let index = mounts
            .iter()
            .position(|m| std::ptr::eq(m, mount))
            .expect("one of the scanned mounts");
        answering & (1 << (index % 64)) != 0
    };
    let skip = own_namespace.then_some(mount_point);
    let binds = cgview_binds(&mounts, live, skip, answers);
    let expected: Vec<&MountEntry> = mounts
        .iter()
        .filter(|m| is_cgview_mount(m) && skip != Some(m.mount_point.as_str()))
        .collect();
    assert_eq!(binds.len(), expected.len());
    for (bind, mount) in binds.iter().zip(&expected) {
        assert_eq!(bind.target, mount.mount_point);
        assert_eq!(bind.device, mount.device);
        let root = mount.root.strip_suffix("//deleted").unwrap_or(&mount.root);
        assert_eq!(bind.root, root);
        assert_eq!(
            bind.live,
            live == Some(mount.device.as_str()) || answers(mount)
        );
        assert!(!bind.claimed);
    }

    // As the scan does: a connection mounted at another of the daemon's mount points is that daemon's.
    let claimed: HashSet<&str> = own
        .iter()
        .filter(|m| is_cgview_mount(m) && m.mount_point != mount_point)
        .map(|m| m.device.as_str())
        .collect();
    let mut namespace = NamespaceMounts {
        pid: 1,
        spare_pids: Vec::new(),
        namespace: "mnt:[4026531841]".to_owned(),
        binds,
    };
    for bind in &mut namespace.binds {
        bind.claimed = claimed.contains(bind.device.as_str());
    }
    let dead = |b: &CgviewBind| !b.live && !b.claimed;
    let moved = |b: &CgviewBind| b.live && previous == Some(b.device.as_str());
    let replaced: Vec<&CgviewBind> = namespace.to_replace(previous).collect();
    assert!(replaced.iter().all(|b| dead(b) || moved(b)), "{replaced:?}");
    let due = namespace
        .binds
        .iter()
        .filter(|b| dead(b) || moved(b))
        .count();
    assert_eq!(replaced.len(), due, "{replaced:?}");
});
