//! Who may read or search what, decided as the kernel's `generic_permission` decides it for a file
//! without ACLs. cgview checks permissions itself instead of mounting with `default_permissions`: with
//! that option the kernel asks GETATTR before every open of a file whose attributes have expired, and
//! served files' attributes always have (their size is per caller), so every open paid one more round
//! trip.
//!
//! A node has an owner and a group: root:root for the files cgview makes, the host node's for mirrored
//! ones. The owner bits apply to the owner, the group bits to members of the group, the other bits to
//! everyone else; `CAP_DAC_READ_SEARCH` and `CAP_DAC_OVERRIDE` override them as the kernel lets them. A
//! FUSE request carries only the caller's fsuid and fsgid, which decide most checks alone. Supplementary
//! groups and capabilities are looked up (through [`CallerLookup`], from `/proc/<tid>/status`) only when
//! they could change the answer. When they cannot be known the answer is the safer one: a group member
//! is assumed not to be one, except that uid 0 is assumed to hold its capabilities, as it does in every
//! container that runs as root in the host's user namespace.
//!
//! Not modelled: credentials overridden inside the kernel for the request (an overlayfs above this mount
//! asks with its mounter's ids, which the request carries, while `/proc/<tid>/status` shows the
//! caller's; the mismatch is detected and treated as unknown), and LSMs.

use crate::parse::task_credentials::{TaskCredentials, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH};

/// Who is asking: the fsuid and fsgid a FUSE request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
}

impl Credentials {
    pub const ROOT: Credentials = Credentials { uid: 0, gid: 0 };
}

/// A node's owner and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// What an access check needs to know about a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub owner: Owner,
    /// Permission bits.
    pub mode: u16,
    /// Directories let capabilities override more than files do.
    pub is_directory: bool,
}

/// The caller's credentials beyond the request's ids, looked up when a check needs them. A lookup is
/// I/O: [`permits`] asks only when the answer depends on it, and implementations read at most once.
pub trait CallerLookup {
    /// The caller's credentials; `None` when they cannot be read or do not belong to the request (their
    /// fsuid or fsgid differ from the request's).
    fn credentials(&mut self) -> Option<&TaskCredentials>;

    /// Whether the caller's capabilities count for a node owned by `owner` (`capable_wrt_inode_uidgid`):
    /// they do in the daemon's user namespace, and in another only if it maps the owner and the group.
    fn capabilities_apply_to(&mut self, owner: Owner) -> bool;
}

/// `access(2)`-style mask bits.
pub const READ: u32 = libc::R_OK as u32;
pub const WRITE: u32 = libc::W_OK as u32;
/// Execute for files, search for directories.
pub const EXECUTE: u32 = libc::X_OK as u32;

/// Whether `credentials` may do everything in `mask` on `node`.
pub fn permits(
    credentials: Credentials,
    node: Access,
    mask: u32,
    caller: &mut impl CallerLookup,
) -> bool {
    let mask = mask & (READ | WRITE | EXECUTE);
    let mode = u32::from(node.mode);
    let grants = |bits: u32| bits & mask == mask;
    let (owner_bits, group_bits, other_bits) = ((mode >> 6) & 7, (mode >> 3) & 7, mode & 7);
    let by_bits = if credentials.uid == node.owner.uid {
        grants(owner_bits)
    } else if credentials.gid == node.owner.gid {
        grants(group_bits)
    } else if grants(group_bits) == grants(other_bits) {
        // Membership in the group would not change the answer: no need to look it up.
        grants(other_bits)
    } else {
        match caller.credentials() {
            Some(task) if task.in_group(node.owner.gid) => grants(group_bits),
            Some(_) => grants(other_bits),
            // Unknown membership: only what both would grant.
            None => grants(group_bits) && grants(other_bits),
        }
    };
    if by_bits {
        return true;
    }
    // Which capabilities could override the bits for this mask.
    let (read_search_overrides, override_overrides) = if node.is_directory {
        (mask & WRITE == 0, true)
    } else {
        (mask == READ, mask & EXECUTE == 0 || mode & 0o111 != 0)
    };
    if !read_search_overrides && !override_overrides {
        return false;
    }
    let held = match caller.credentials() {
        Some(task) => {
            (read_search_overrides && task.has_capability(CAP_DAC_READ_SEARCH))
                || (override_overrides && task.has_capability(CAP_DAC_OVERRIDE))
        }
        None => return credentials.uid == 0,
    };
    held && caller.capabilities_apply_to(node.owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller whose credentials are known (or not), counting how often they were asked for.
    struct Known {
        task: Option<TaskCredentials>,
        same_namespace: bool,
        lookups: usize,
    }

    impl CallerLookup for Known {
        fn credentials(&mut self) -> Option<&TaskCredentials> {
            self.lookups += 1;
            self.task.as_ref()
        }

        fn capabilities_apply_to(&mut self, _owner: Owner) -> bool {
            self.same_namespace
        }
    }

    fn task(uid: u32, gid: u32, groups: &[u32], caps: u64) -> Known {
        Known {
            task: Some(TaskCredentials {
                fsuid: uid,
                fsgid: gid,
                groups: groups.to_vec(),
                effective_caps: caps,
            }),
            same_namespace: true,
            lookups: 0,
        }
    }

    fn unknown() -> Known {
        Known {
            task: None,
            same_namespace: true,
            lookups: 0,
        }
    }

    const ALL_CAPS: u64 = 0x1ff_ffff_ffff;
    const NO_CAPS: u64 = 0;

    fn file(owner: Owner, mode: u16) -> Access {
        Access {
            owner,
            mode,
            is_directory: false,
        }
    }

    fn dir(owner: Owner, mode: u16) -> Access {
        Access {
            owner,
            mode,
            is_directory: true,
        }
    }

    fn ids(uid: u32, gid: u32) -> Credentials {
        Credentials { uid, gid }
    }

    const STAFF: Owner = Owner { uid: 0, gid: 50 };

    #[test]
    fn permits_world_readable_nodes_without_looking_the_caller_up() {
        for (uid, gid) in [(0, 0), (1000, 1000), (65534, 0)] {
            let mut caller = unknown();
            assert!(permits(
                ids(uid, gid),
                file(Owner::ROOT, 0o444),
                READ,
                &mut caller
            ));
            assert!(permits(
                ids(uid, gid),
                dir(Owner::ROOT, 0o555),
                READ | EXECUTE,
                &mut caller
            ));
            assert_eq!(caller.lookups, 0);
        }
    }

    #[test]
    fn permits_supplementary_group_members_by_the_group_bits() {
        // A 0440 root:staff file: refused to a caller in staff only through a supplementary group before.
        let node = file(STAFF, 0o440);
        let mut member = task(1000, 1000, &[50], NO_CAPS);
        assert!(permits(ids(1000, 1000), node, READ, &mut member));
        assert_eq!(member.lookups, 1);
        let mut outsider = task(1000, 1000, &[4, 27], NO_CAPS);
        assert!(!permits(ids(1000, 1000), node, READ, &mut outsider));
        // The primary group decides without a lookup.
        let mut primary = unknown();
        assert!(permits(ids(1000, 50), node, READ, &mut primary));
        assert_eq!(primary.lookups, 0);
    }

    #[test]
    fn permits_group_members_less_than_others_when_the_bits_say_so() {
        // 0604: the group is excluded from what everyone else may do.
        let node = file(STAFF, 0o604);
        assert!(!permits(
            ids(1000, 1000),
            node,
            READ,
            &mut task(1000, 1000, &[50], NO_CAPS)
        ));
        assert!(permits(
            ids(1000, 1000),
            node,
            READ,
            &mut task(1000, 1000, &[], NO_CAPS)
        ));
        // The owner gets the owner bits even when others get more.
        let owned = file(Owner { uid: 1000, gid: 50 }, 0o044);
        assert!(!permits(ids(1000, 1000), owned, READ, &mut unknown()));
    }

    #[test]
    fn permits_only_what_both_group_and_other_grant_when_membership_is_unknown() {
        assert!(!permits(
            ids(1000, 1000),
            file(STAFF, 0o440),
            READ,
            &mut unknown()
        ));
        assert!(!permits(
            ids(1000, 1000),
            file(STAFF, 0o404),
            READ,
            &mut unknown()
        ));
        assert!(permits(
            ids(1000, 1000),
            file(STAFF, 0o444),
            READ,
            &mut unknown()
        ));
    }

    #[test]
    fn permits_a_private_directory_to_its_owner_and_capable_callers_only() {
        // A 0700 directory on a crafted sysfs was world-readable before.
        let node = dir(
            Owner {
                uid: 1000,
                gid: 1000,
            },
            0o700,
        );
        assert!(permits(
            ids(1000, 1000),
            node,
            READ | EXECUTE,
            &mut unknown()
        ));
        assert!(!permits(
            ids(65534, 65534),
            node,
            READ,
            &mut task(65534, 65534, &[1000], NO_CAPS)
        ));
        assert!(!permits(ids(65534, 65534), node, EXECUTE, &mut unknown()));
        assert!(permits(
            ids(0, 0),
            node,
            READ | EXECUTE,
            &mut task(0, 0, &[], ALL_CAPS)
        ));
    }

    #[test]
    fn permits_root_only_what_its_capabilities_allow() {
        let slabinfo = file(Owner::ROOT, 0o400);
        // Owner bits: no capability needed.
        assert!(permits(
            ids(0, 0),
            slabinfo,
            READ,
            &mut task(0, 0, &[], NO_CAPS)
        ));
        let other_owner = file(Owner { uid: 7, gid: 7 }, 0o400);
        assert!(!permits(
            ids(0, 0),
            other_owner,
            READ,
            &mut task(0, 0, &[], NO_CAPS)
        ));
        let read_search = 1 << CAP_DAC_READ_SEARCH;
        assert!(permits(
            ids(0, 0),
            other_owner,
            READ,
            &mut task(0, 0, &[], read_search)
        ));
        // A non-root caller with CAP_DAC_READ_SEARCH reads root-only files, as the kernel lets it.
        assert!(permits(
            ids(1000, 1000),
            slabinfo,
            READ,
            &mut task(1000, 1000, &[], read_search)
        ));
        assert!(!permits(
            ids(1000, 1000),
            slabinfo,
            WRITE,
            &mut task(1000, 1000, &[], read_search)
        ));
        // Execution is overridable only when someone may execute.
        assert!(!permits(
            ids(0, 0),
            other_owner,
            EXECUTE,
            &mut task(0, 0, &[], ALL_CAPS)
        ));
        assert!(permits(
            ids(0, 0),
            file(Owner { uid: 7, gid: 7 }, 0o100),
            EXECUTE,
            &mut task(0, 0, &[], ALL_CAPS)
        ));
    }

    #[test]
    fn permits_capabilities_of_another_user_namespace_only_where_it_maps_the_owner() {
        let mut foreign = task(0, 0, &[], ALL_CAPS);
        foreign.same_namespace = false;
        assert!(!permits(
            ids(0, 0),
            file(Owner { uid: 7, gid: 7 }, 0o400),
            READ,
            &mut foreign
        ));
    }

    #[test]
    fn permits_root_of_an_unknown_caller_as_privileged() {
        assert!(permits(
            ids(0, 0),
            file(Owner { uid: 7, gid: 7 }, 0o400),
            READ,
            &mut unknown()
        ));
        assert!(!permits(
            ids(1, 1),
            file(Owner::ROOT, 0o400),
            READ,
            &mut unknown()
        ));
    }

    #[test]
    fn permits_writes_and_execution_by_the_bits() {
        assert!(!permits(
            ids(1000, 1000),
            file(Owner::ROOT, 0o444),
            WRITE,
            &mut unknown()
        ));
        assert!(permits(
            ids(0, 0),
            file(Owner::ROOT, 0o644),
            WRITE,
            &mut unknown()
        ));
        assert!(!permits(
            ids(0, 0),
            file(Owner::ROOT, 0o444),
            EXECUTE,
            &mut task(0, 0, &[], ALL_CAPS)
        ));
        assert!(!permits(
            ids(1000, 1000),
            file(Owner::ROOT, 0o700),
            EXECUTE,
            &mut unknown()
        ));
        assert!(permits(
            ids(1000, 1000),
            file(Owner::ROOT, 0o755),
            EXECUTE,
            &mut unknown()
        ));
        assert!(
            permits(ids(1000, 1000), file(Owner::ROOT, 0o000), 0, &mut unknown()),
            "F_OK asks for nothing"
        );
    }
}
