//! The FUSE adapter: the only module that imports `fuser`. Each handler turns a [`Tree`] result into
//! exactly one reply.

use crate::metrics::Operation;
use crate::permissions::Credentials;
use crate::tree::{slice_at, Errno as TreeErrno, NameLifetime, Node, NodeKind, Tree};
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, IoctlFlags, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Names and attributes never change, so the kernel may cache them for long; content is never cached
/// (every open is `direct_io`).
const TTL: Duration = Duration::from_secs(24 * 3600);

/// How long the kernel keeps the attributes of a passed-through host file: its size follows the host's
/// content, the same for every reader.
const HOST_FILE_TTL: Duration = Duration::from_secs(1);

// Served files get attributes that expire at once. Readers trust `st_size` (Node's `readFileSync` reads
// exactly that many bytes, `tail` seeks from it, `sendfile(2)` reads nothing from a size-0 file), and a size
// kept by the kernel would be whichever container asked last. So every `stat`/`fstat` asks GETATTR, which
// answers the asker's own length. The mount has no `default_permissions` (see `permissions`): with it the
// kernel would also ask GETATTR before every open. Page-cache fills are refused: see `read`.

/// glibc stdio reads in chunks of `st_blksize`; every chunk is a FUSE round trip.
const BLOCK_SIZE: u32 = 64 * 1024;

pub struct CgviewFs {
    tree: Arc<Tree>,
    mounted_at: SystemTime,
}

impl CgviewFs {
    pub fn new(tree: Arc<Tree>) -> CgviewFs {
        CgviewFs {
            tree,
            mounted_at: SystemTime::now(),
        }
    }

    /// A node's attributes for `caller`, and how long the kernel may keep them.
    fn attr(&self, node: &Node, caller: Option<u32>) -> (FileAttr, Duration) {
        let size = guarded("size", || Ok(self.tree.size_for(node, caller))).unwrap_or(0);
        let ttl = match node.kind {
            NodeKind::Directory | NodeKind::HostDirectory | NodeKind::HostSymlink => TTL,
            NodeKind::HostFile => HOST_FILE_TTL,
            NodeKind::File(_) | NodeKind::BlockStat | NodeKind::Floor => Duration::ZERO,
        };
        (self.attr_with_size(node, size), ttl)
    }

    fn attr_with_size(&self, node: &Node, size: u64) -> FileAttr {
        let kind = file_type(node.kind);
        let nlink = if node.kind.is_directory() { 2 } else { 1 };
        let perm = node.mode;
        FileAttr {
            ino: INodeNo(node.inode),
            size,
            blocks: 0,
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            crtime: self.mounted_at,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: BLOCK_SIZE,
            flags: 0,
        }
    }
}

fn errno(e: TreeErrno) -> Errno {
    Errno::from_i32(e.0)
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::Directory | NodeKind::HostDirectory => FileType::Directory,
        NodeKind::File(_) | NodeKind::HostFile | NodeKind::BlockStat | NodeKind::Floor => {
            FileType::RegularFile
        }
        NodeKind::HostSymlink => FileType::Symlink,
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

/// Who sent the request, for the tree's permission checks.
fn credentials(req: &Request) -> Credentials {
    Credentials {
        uid: req.uid(),
        gid: req.gid(),
    }
}

/// The caller's thread id as the daemon's pid namespace sees it; 0 means the caller is outside it.
fn caller(req: &Request) -> Option<u32> {
    Some(req.pid()).filter(|&pid| pid != 0)
}

impl Filesystem for CgviewFs {
    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let caller = caller(req);
        match guarded("lookup", || {
            self.tree
                .lookup(parent.0, name.as_bytes(), caller, credentials(req))
        }) {
            Ok((node, lifetime)) => {
                let (attr, attr_ttl) = self.attr(&node, caller);
                // A served file's attributes expire at once but its name does not: a path walk to it needs
                // no LOOKUP (bind-mounted files never walk at all).
                let entry_ttl = match lifetime {
                    NameLifetime::Stable => TTL,
                    NameLifetime::PerCaller => Duration::ZERO,
                };
                reply.entry_with_ttls(&attr_ttl, &entry_ttl, &attr, Generation(0))
            }
            // A name that does not exist is an answer, not a failure.
            Err(e) if e.0 == libc::ENOENT => reply.error(errno(e)),
            Err(e) => {
                self.tree.metrics().record_error(Operation::Lookup);
                reply.error(errno(e))
            }
        }
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.tree.node(ino.0) {
            Ok(node) => {
                let (attr, ttl) = self.attr(&node, caller(req));
                reply.attr(&ttl, &attr)
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.tree.readlink(ino.0) {
            Ok(target) => reply.data(target.as_os_str().as_bytes()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let caller = caller(req);
        let opened = guarded("open", || {
            self.tree.open(ino.0, caller, write, credentials(req))
        });
        match opened {
            Ok(handle) => reply.opened(
                FileHandle(handle),
                FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_NOFLUSH,
            ),
            Err(e) => {
                self.tree.metrics().record_error(Operation::Open);
                reply.error(errno(e))
            }
        }
    }

    fn read(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let reader = caller(req);
        // The kernel names the reader's lock owner on `direct_io` reads into a user buffer and on no
        // page-cache fill (readahead, `read_folio`): that is how the two are told apart.
        let read = || match lock_owner {
            Some(_) => self.tree.read(fh.0, offset, reader),
            None => self.tree.read_for_page_cache(fh.0, offset, reader),
        };
        match guarded("read", read) {
            Ok(snapshot) => reply.data(slice_at(&snapshot, offset, size)),
            // A refused page-cache fill is counted as such, not as a failure.
            Err(e) if lock_owner.is_none() && e.0 == libc::EINVAL => reply.error(errno(e)),
            Err(e) => {
                self.tree.metrics().record_error(Operation::Read);
                reply.error(errno(e))
            }
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.tree.release(fh.0);
        reply.ok();
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let caller = caller(req);
        match guarded("opendir", || {
            self.tree.open_dir(ino.0, caller, credentials(req))
        }) {
            Ok(handle) => reply.opened(FileHandle(handle), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.tree.dir_snapshot(fh.0) {
            Ok(entries) => entries,
            Err(e) => {
                self.tree.metrics().record_error(Operation::Readdir);
                return reply.error(errno(e));
            }
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (index, entry) in entries.iter().enumerate().skip(skip) {
            // The offset handed back is where the next readdir continues.
            if reply.add(
                INodeNo(entry.inode),
                index as u64 + 1,
                file_type(entry.kind),
                &entry.name,
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.tree.release_dir(fh.0);
        reply.ok();
    }

    /// `access(2)`, and the kernel's check before `chdir`.
    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.tree.node(ino.0) {
            Ok(node) if credentials(req).permit(node.mode, mask.bits() as u32) => reply.ok(),
            Ok(_) => reply.error(Errno::EACCES),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, BLOCK_SIZE, 255, BLOCK_SIZE);
    }

    // No extended attributes. ENOSYS makes the kernel stop asking for the rest of the mount's life.
    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    // Readers probe files with ioctls such as TCGETS (isatty); none applies to a text file.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }
}
