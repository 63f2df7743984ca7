//! What each FUSE operation answers, independent of how requests arrive: [`fuse_fs`](crate::transport::fuse)
//! adapts it to `fuser` (requests read from `/dev/fuse`), [`ring`](crate::transport::ring) to FUSE over io_uring.
//! Results are plain values and errnos; each transport encodes them.

use crate::fs::permissions::Credentials;
use crate::fs::tree::{Errno as TreeErrno, NameLifetime, Node, NodeKind, Snapshot, Tree};
use crate::host::kernel_file::open_kernel_file;
use crate::telemetry::metrics::Operation;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// Names and attributes never change, so the kernel may cache them for long; content is never cached
/// (every open is `direct_io`).
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// How long the kernel keeps the attributes of a passed-through host file: its size follows the host's
/// content, the same for every reader.
const HOST_FILE_TTL: Duration = Duration::from_secs(1);

// Served files get attributes that expire at once. Readers trust `st_size` (Node's `readFileSync` reads
// exactly that many bytes, `tail` seeks from it, `sendfile(2)` reads nothing from a size-0 file), and a size
// kept by the kernel would be whichever container asked last. So every `stat`/`fstat` asks GETATTR, which
// answers the asker's own length. The mount has no `default_permissions` (see `permissions`): with it the
// kernel would also ask GETATTR before every open. Page-cache fills are refused: see `read`.

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
    fn tid(&self) -> Option<u32> {
        Some(self.pid).filter(|&pid| pid != 0)
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            uid: self.uid,
            gid: self.gid,
        }
    }
}

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
            NodeKind::File(_) | NodeKind::HostFile | NodeKind::BlockStat | NodeKind::Floor => {
                FileKind::RegularFile
            }
            NodeKind::HostSymlink => FileKind::Symlink,
        }
    }
}

/// A node's attributes as `stat` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    pub kind: FileKind,
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

/// An errno to reply with.
pub type Errno = i32;

/// sysfs's `f_type`: a sysfs attribute is what [`FsOps::mmap_refusal`] maps onto.
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// The sysfs attribute every open is backed by (see [`FsOps::mmap_refusal`]): present on every Linux
/// system, and without an `mmap` of its own.
const MMAP_REFUSING_ATTRIBUTE: &str = "devices/system/cpu/online";

pub struct FsOps {
    tree: Arc<Tree>,
    mounted_at: SystemTime,
    /// The backing file id every open names, once registered; `None` if it could not be.
    mmap_refusal: OnceLock<Option<u32>>,
}

impl FsOps {
    /// The turn `caller`'s requests take (see [`crate::transport::fair_queue`]).
    pub fn fairness_key(&self, caller: &Caller) -> u64 {
        self.tree.cache().fairness_key(caller.pid)
    }

    pub fn new(tree: Arc<Tree>) -> FsOps {
        FsOps {
            tree,
            mounted_at: SystemTime::now(),
            mmap_refusal: OnceLock::new(),
        }
    }

    /// The backing file to name in every OPEN reply, so that `mmap(2)` of any file here fails as it
    /// does on procfs and sysfs, instead of mapping and then killing the reader with `SIGBUS` at the first
    /// access (the page-cache fill of a per-caller file is refused, see
    /// [`Tree::read_for_page_cache`](crate::fs::tree::Tree::read_for_page_cache)).
    ///
    /// `direct_io` alone refuses only shared mappings (`ENODEV`, as cgview never asks for
    /// `FUSE_DIRECT_IO_ALLOW_MMAP`); the kernel maps a private one from the page cache. An open that is
    /// also `FOPEN_PASSTHROUGH` (Linux 6.9+, negotiated at INIT) still reads from the daemon, since
    /// `direct_io` wins for reads and writes, but is mapped by its backing file's `mmap`. Backed by a
    /// sysfs attribute, which has none, every `mmap(2)` fails with `ENODEV`, sysfs's own answer (procfs
    /// answers `EIO`; procfs cannot back a FUSE file, the kernel refuses to stack on it). Every open of
    /// every file names this one backing file, as the kernel requires of all opens of an inode while one
    /// is open in passthrough mode. The kernel keeps a reference to it for the life of the connection;
    /// the daemon keeps no descriptor.
    ///
    /// `register` hands an open file to the kernel (`FUSE_DEV_IOC_BACKING_OPEN`) and returns its id; it
    /// runs at most once, on the first open. When it fails (a kernel without passthrough, or a sys root
    /// that is not sysfs) opens are plain `direct_io`, and a private mapping maps as before.
    pub fn mmap_refusal(
        &self,
        register: impl FnOnce(BorrowedFd<'_>) -> io::Result<u32>,
    ) -> Option<u32> {
        *self.mmap_refusal.get_or_init(|| {
            let path = self
                .tree
                .view()
                .resolver()
                .paths()
                .sys_file(MMAP_REFUSING_ATTRIBUTE);
            let registered = open_kernel_file(&path).and_then(|file| {
                let statfs = nix::sys::statfs::fstatfs(&file).map_err(io::Error::from)?;
                if statfs.filesystem_type().0 as i64 != SYSFS_MAGIC {
                    return Err(io::Error::other(format!(
                        "{} is not on sysfs",
                        path.display()
                    )));
                }
                register(file.as_fd())
            });
            match registered {
                Ok(id) => Some(id),
                Err(e) => {
                    tracing::warn!(
                        "mmap(2) of a served file cannot be refused ({}: {e}): a private mapping \
                         maps, and its first access raises SIGBUS",
                        path.display()
                    );
                    None
                }
            }
        })
    }

    #[cfg(test)]
    pub(crate) fn tree(&self) -> &Arc<Tree> {
        &self.tree
    }

    pub fn lookup(&self, caller: &Caller, parent: u64, name: &[u8]) -> Result<Entry, Errno> {
        match guarded("lookup", || {
            self.tree
                .lookup(parent, name, caller.tid(), caller.credentials())
        }) {
            Ok((node, lifetime)) => {
                let (attr, attr_ttl) = self.attr(&node, caller);
                // A served file's attributes expire at once but its name does not: a path walk to it needs
                // no LOOKUP (bind-mounted files never walk at all).
                let entry_ttl = match lifetime {
                    NameLifetime::Stable => TTL,
                    NameLifetime::PerCaller => Duration::ZERO,
                };
                Ok(Entry {
                    attr,
                    attr_ttl,
                    entry_ttl,
                })
            }
            // A name that does not exist is an answer, not a failure.
            Err(e) if e.0 == libc::ENOENT => Err(e.0),
            Err(e) => {
                self.tree.metrics().record_error(Operation::Lookup);
                Err(e.0)
            }
        }
    }

    pub fn getattr(&self, caller: &Caller, ino: u64) -> Result<(Attr, Duration), Errno> {
        let node = self.tree.node(ino).map_err(|e| e.0)?;
        Ok(self.attr(&node, caller))
    }

    /// FORGET and BATCH_FORGET: the kernel dropped `lookups` references to `ino`.
    pub fn forget(&self, ino: u64, lookups: u64) {
        self.tree.forget(ino, lookups);
    }

    pub fn readlink(&self, ino: u64) -> Result<PathBuf, Errno> {
        self.tree.readlink(ino).map_err(|e| e.0)
    }

    /// Opens a file; every open is `direct_io` and `noflush` (see the transports).
    pub fn open(&self, caller: &Caller, ino: u64, write: bool) -> Result<u64, Errno> {
        guarded("open", || {
            self.tree
                .open(ino, caller.tid(), write, caller.credentials())
        })
        .map_err(|e| {
            self.tree.metrics().record_error(Operation::Open);
            e.0
        })
    }

    /// The open file's snapshot; the transport replies with [`slice_at`](crate::fs::tree::slice_at) of it.
    /// `lock_owner` is whether the kernel named the reader's lock owner: it does on `direct_io` reads
    /// into a user buffer and on no page-cache fill (readahead, `read_folio`), which is how the two are
    /// told apart; page-cache fills of per-caller files are refused.
    pub fn read(
        &self,
        caller: &Caller,
        fh: u64,
        offset: u64,
        lock_owner: bool,
    ) -> Result<Snapshot, Errno> {
        let read = || match lock_owner {
            true => self.tree.read(fh, offset, caller.tid()),
            false => self.tree.read_for_page_cache(fh, offset, caller.tid()),
        };
        guarded("read", read).map_err(|e| {
            // A refused page-cache fill is counted as such, not as a failure.
            if lock_owner || e.0 != libc::EINVAL {
                self.tree.metrics().record_error(Operation::Read);
            }
            e.0
        })
    }

    pub fn release(&self, fh: u64) {
        self.tree.release(fh);
    }

    pub fn opendir(&self, caller: &Caller, ino: u64) -> Result<u64, Errno> {
        guarded("opendir", || {
            self.tree.open_dir(ino, caller.tid(), caller.credentials())
        })
        .map_err(|e| e.0)
    }

    /// The directory's entries as listed at `opendir`; entry `i` continues at offset `i + 1`.
    pub fn readdir(&self, fh: u64) -> Result<Arc<[crate::fs::tree::DirEntry]>, Errno> {
        self.tree.dir_snapshot(fh).map_err(|e| {
            self.tree.metrics().record_error(Operation::Readdir);
            e.0
        })
    }

    pub fn releasedir(&self, fh: u64) {
        self.tree.release_dir(fh);
    }

    /// `access(2)`, and the kernel's check before `chdir`.
    pub fn access(&self, caller: &Caller, ino: u64, mask: u32) -> Result<(), Errno> {
        let node = self.tree.node(ino).map_err(|e| e.0)?;
        if self
            .tree
            .permits(&node, caller.credentials(), caller.tid(), mask)
        {
            Ok(())
        } else {
            Err(libc::EACCES)
        }
    }

    /// A node's attributes for `caller`, and how long the kernel may keep them.
    fn attr(&self, node: &Node, caller: &Caller) -> (Attr, Duration) {
        let size = guarded("size", || {
            Ok(self.tree.size_for(node, caller.tid(), caller.credentials()))
        })
        .unwrap_or(0);
        let ttl = match node.kind {
            // A size some callers may not be shown must be asked for by each.
            _ if node.answers_per_caller() => Duration::ZERO,
            NodeKind::Directory | NodeKind::HostDirectory | NodeKind::HostSymlink => TTL,
            NodeKind::HostFile => HOST_FILE_TTL,
            NodeKind::File(_) | NodeKind::BlockStat | NodeKind::Floor => Duration::ZERO,
        };
        let attr = Attr {
            ino: node.inode,
            size,
            kind: node.kind.into(),
            perm: node.mode,
            uid: node.owner.uid,
            gid: node.owner.gid,
            nlink: if node.kind.is_directory() { 2 } else { 1 },
            blksize: BLOCK_SIZE,
            time: self.mounted_at,
        };
        (attr, ttl)
    }
}

/// Runs a handler body that may render or resolve a caller. A bug there must cost one request, not a
/// worker that never replies (the caller would hang in the kernel).
fn guarded<T>(what: &str, body: impl FnOnce() -> Result<T, TreeErrno>) -> Result<T, TreeErrno> {
    std::panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        tracing::error!("{what} panicked; replying EIO");
        Err(TreeErrno(libc::EIO))
    })
}
