//! Who may read or search what. cgview checks permissions itself instead of mounting with
//! `default_permissions`: with that option the kernel asks GETATTR before every open of a file whose
//! attributes have expired, and served files' attributes always have (their size is per caller), so every
//! open paid one more round trip.
//!
//! Every node is owned by root:root, so the owner bits apply to uid 0, the group bits to gid 0 and the
//! other bits to everyone else. A container's root in a user namespace is not uid 0 here, as it is not
//! the owner for the kernel's own check either. A FUSE request carries the caller's uid and primary gid
//! only, so a supplementary group 0 does not count (no served file gives group 0 more than others).

/// Who is asking: the uid and primary gid a FUSE request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
}

impl Credentials {
    pub const ROOT: Credentials = Credentials { uid: 0, gid: 0 };

    /// Whether these credentials may do everything in `mask` on a node with permission bits `mode`.
    pub fn permit(self, mode: u16, mask: u32) -> bool {
        permits(mode, self.uid, self.gid, mask)
    }
}

/// `access(2)`-style mask bits.
pub const READ: u32 = libc::R_OK as u32;
pub const WRITE: u32 = libc::W_OK as u32;
/// Execute for files, search for directories.
pub const EXECUTE: u32 = libc::X_OK as u32;

/// Whether `uid`/`gid` may do everything in `mask` on a node with permission bits `mode`.
pub fn permits(mode: u16, uid: u32, gid: u32, mask: u32) -> bool {
    let mode = u32::from(mode);
    if uid == 0 {
        // Root reads, writes and searches regardless of the bits (`CAP_DAC_OVERRIDE`), but executes a file
        // only if someone may.
        return mask & EXECUTE == 0 || mode & 0o111 != 0;
    }
    let bits = match gid {
        0 => (mode >> 3) & 0o7,
        _ => mode & 0o7,
    };
    bits & mask == mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_files_and_directories_are_open_to_all() {
        for (uid, gid) in [(0, 0), (1000, 1000), (65534, 0)] {
            assert!(permits(0o444, uid, gid, READ));
            assert!(permits(0o555, uid, gid, READ | EXECUTE));
        }
    }

    #[test]
    fn root_only_files_refuse_everyone_else() {
        // slabinfo, and sysfs files such as cpufreq/cpuinfo_cur_freq.
        assert!(permits(0o400, 0, 0, READ));
        assert!(!permits(0o400, 1000, 1000, READ));
        assert!(!permits(0o400, 1000, 0, READ));
        assert!(permits(0o440, 1000, 0, READ));
        assert!(!permits(0o440, 1000, 1000, READ));
    }

    #[test]
    fn writes_and_execution_follow_the_bits() {
        assert!(!permits(0o444, 1000, 1000, WRITE));
        assert!(permits(0o644, 0, 0, WRITE));
        assert!(permits(0o200, 0, 0, WRITE));
        assert!(!permits(0o444, 0, 0, EXECUTE));
        assert!(!permits(0o700, 1000, 1000, EXECUTE));
        assert!(permits(0o755, 1000, 1000, EXECUTE));
        assert!(permits(0o444, 1000, 1000, 0), "F_OK asks for nothing");
    }
}
