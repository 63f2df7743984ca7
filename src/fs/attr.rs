//! What requests carry in and replies carry out, whichever transport encodes them: who asks, a node's
//! attributes and how long the kernel may keep them.

use super::nodes::{NameLifetime, NodeKind};
use cgview_core::permissions::Credentials;
use std::time::{Duration, SystemTime};

/// Names and attributes never change, so the kernel may cache them for long; content is never cached
/// (every open is `direct_io`).
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// The mount root's attributes, which never change, are kept for good. `docker start` stats each bind
/// source, and an agent container's source is this root: a GETATTR while no daemon serves (the agent is
/// the container being started) would wait for the very daemon it keeps from starting, until the keeper
/// gives the connection up. The daemon stats its own root once it serves (`serve`), so the kernel holds
/// them from then on.
pub const ROOT_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How long the kernel keeps the attributes of a passed-through host file: its size follows the host's
/// content, the same for every reader.
pub(crate) const HOST_FILE_TTL: Duration = Duration::from_secs(1);

// Served files get attributes that expire at once. Readers trust `st_size` (Node's `readFileSync` reads
// exactly that many bytes, `tail` seeks from it, `sendfile(2)` reads nothing from a size-0 file), and a size
// kept by the kernel would be whichever container asked last. So every `stat`/`fstat` asks GETATTR, which
// answers the asker's own length. The mount has no `default_permissions` (see `permissions`): with it the
// kernel would also ask GETATTR before every open. Page-cache fills are refused: see `Fs::read`.

/// glibc stdio reads in chunks of `st_blksize`; every chunk is a FUSE round trip.
pub const BLOCK_SIZE: u32 = 64 * 1024;

/// The longest name `statfs` reports.
pub const NAME_MAX: u32 = 255;

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The calling thread as the daemon's pid namespace sees it; 0 when it is outside it.
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Caller {
    pub fn new(pid: u32, credentials: Credentials) -> Caller {
        Caller {
            pid,
            uid: credentials.uid,
            gid: credentials.gid,
        }
    }

    /// The calling thread, if the daemon's pid namespace sees it.
    pub fn tid(&self) -> Option<u32> {
        Some(self.pid).filter(|&pid| pid != 0)
    }

    pub fn credentials(&self) -> Credentials {
        Credentials {
            uid: self.uid,
            gid: self.gid,
        }
    }
}

/// A node's type as the kernel's `stat` and directory entries show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    RegularFile,
    Symlink,
}

impl From<NodeKind> for FileKind {
    fn from(kind: NodeKind) -> FileKind {
        match kind {
            NodeKind::Directory | NodeKind::HostDirectory => FileKind::Directory,
            NodeKind::File(_)
            | NodeKind::HostFile
            | NodeKind::BlockStat
            | NodeKind::HostCpuList(_)
            | NodeKind::NodeAttr(_)
            | NodeKind::Floor => FileKind::RegularFile,
            NodeKind::HostSymlink => FileKind::Symlink,
        }
    }
}

/// A node's attributes as `stat` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    /// What the node is; the kernel is told its [`FileKind`].
    pub kind: NodeKind,
    /// Permission bits.
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub blksize: u32,
    /// atime, mtime and ctime alike: when the tree was mounted.
    pub time: SystemTime,
}

/// A LOOKUP's answer: the node and how long the kernel may keep its attributes and its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub attr: Attr,
    pub attr_ttl: Duration,
    pub entry_ttl: Duration,
}

impl Entry {
    pub(crate) fn new(attr: Attr, attr_ttl: Duration, lifetime: NameLifetime) -> Entry {
        // A served file's attributes expire at once but its name does not: a path walk to it needs no
        // LOOKUP (bind-mounted files never walk at all).
        let entry_ttl = match lifetime {
            NameLifetime::Stable => TTL,
            NameLifetime::PerCaller => Duration::ZERO,
        };
        Entry {
            attr,
            attr_ttl,
            entry_ttl,
        }
    }

    /// Whether the kernel may keep the name for every caller.
    pub fn name_lifetime(&self) -> NameLifetime {
        if self.entry_ttl.is_zero() {
            NameLifetime::PerCaller
        } else {
            NameLifetime::Stable
        }
    }
}

/// Where a READ's bytes go, as the kernel tells them apart: it names the reader's lock owner on
/// `direct_io` reads into a user buffer and on no page-cache fill (readahead, `read_folio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadInto {
    /// `read(2)` and friends: the reader's own buffer.
    Buffer,
    /// The inode's page cache, shared by every reader (`sendfile(2)`, `splice(2)`, a private `mmap(2)`).
    PageCache,
}

impl ReadInto {
    /// From whether the kernel named the reader's lock owner.
    pub fn from_lock_owner(named: bool) -> ReadInto {
        if named {
            ReadInto::Buffer
        } else {
            ReadInto::PageCache
        }
    }
}

/// STATFS's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statfs {
    pub block_size: u32,
    pub name_max: u32,
}
