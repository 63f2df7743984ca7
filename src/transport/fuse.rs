//! The `fuser` adapter: requests read from `/dev/fuse`. With [`passthrough`](crate::transport::passthrough),
//! the only modules that name `fuser`. Each handler turns an [`Fs`] result into exactly one reply; a
//! [`Failure`] becomes its errno here, at the boundary.

use crate::fs::open_reply::OPEN_FLAGS;
use crate::fs::{slice_at, Attr, Caller, FileKind, Fs, ReadInto};
use crate::transport::fair_queue::WorkerPool;
use cgview_core::failure::Failure;
use fuser::{
    AccessFlags, BackingId, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen,
    ReplyStatfs, ReplyXattr, Request, Session, SessionACL,
};
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How deep file systems may stack on this one when passthrough is negotiated: 1 lets an overlayfs use
/// this mount as a layer, as before, and lets sysfs (depth 0) back its files.
const MAX_STACK_DEPTH: u32 = 1;

/// A FUSE session on `/dev/fuse` whose INIT handshake is done.
pub struct DevFuseSession {
    session: Session<CgviewFs>,
    io_uring: Option<Arc<AtomicBool>>,
}

impl DevFuseSession {
    /// Answers INIT on `device` (an unmounted or not yet attached connection) for `fs`, with `threads`
    /// session threads and as many workers. With `ask_io_uring`, INIT asks the kernel for FUSE over
    /// io_uring; the rings must then be started (see [`ring`](crate::transport::ring)) or requests wait
    /// for them.
    pub fn handshake(
        fs: Arc<Fs>,
        device: OwnedFd,
        threads: usize,
        ask_io_uring: bool,
    ) -> io::Result<DevFuseSession> {
        let io_uring = ask_io_uring.then(|| Arc::new(AtomicBool::new(false)));
        let mut config = Config::default();
        config.acl = SessionACL::All;
        config.n_threads = Some(threads.max(1));
        // One open file for every thread: a keeper's duplicate of it then also keeps the requests these
        // threads took and did not answer, which a successor asks the kernel to resend. A cloned
        // descriptor would fail them (ECONNABORTED) the moment this process died.
        config.clone_fd = false;
        let session = Session::from_fd(
            CgviewFs::new(fs, io_uring.clone(), threads)?,
            device,
            SessionACL::All,
            config,
        )?;
        Ok(DevFuseSession { session, io_uring })
    }

    /// Whether the kernel agreed at INIT to FUSE over io_uring.
    pub fn io_uring_agreed(&self) -> bool {
        self.io_uring
            .as_ref()
            .is_some_and(|agreed| agreed.load(Ordering::SeqCst))
    }

    /// Serves requests until the connection ends.
    pub fn run(self) -> io::Result<()> {
        self.session.run()
    }
}

/// A failure's reply.
fn errno(failure: Failure) -> Errno {
    Errno::from_i32(failure.errno())
}

/// The largest write payload negotiated at INIT: each io_uring ring entry holds a buffer of that size
/// (fuser's default, 16 MiB, would make every entry 16 MiB), and a successor resuming the connection
/// reads `/dev/fuse` with buffers of that size.
pub const RING_MAX_WRITE: u32 = 128 * 1024;

/// Handles requests from `/dev/fuse`. The session's threads only take requests off the device: those
/// that read the host or render (lookup, getattr, access, open, opendir, read) are queued by the caller's
/// container and served in turns by a worker pool ([`crate::transport::fair_queue`]); the rest are answered at once.
struct CgviewFs {
    fs: Arc<Fs>,
    /// Asked to negotiate FUSE over io_uring at INIT; set to whether the kernel agreed.
    io_uring: Option<Arc<AtomicBool>>,
    workers: WorkerPool,
}

impl CgviewFs {
    /// With `io_uring`, INIT asks the kernel for FUSE over io_uring and records whether it agreed; the
    /// rings must then be registered (see [`ring`](crate::transport::ring)), or requests wait for them. `workers`
    /// threads serve the queued requests; the session runs as many threads.
    fn new(fs: Arc<Fs>, io_uring: Option<Arc<AtomicBool>>, workers: usize) -> io::Result<CgviewFs> {
        Ok(CgviewFs {
            fs,
            io_uring,
            workers: WorkerPool::start(workers)?,
        })
    }

    /// Runs `job` in the turn of the caller's container, or at once on this session thread while
    /// nothing waits (see [`WorkerPool::inline_slot`]).
    fn in_turn(&self, caller: Caller, job: impl FnOnce(&Fs, &Caller) + Send + 'static) {
        if let Some(_slot) = self.workers.inline_slot() {
            job(&self.fs, &caller);
            return;
        }
        let fs = self.fs.clone();
        let key = fs.fairness_key(&caller);
        self.workers
            .submit(key, Box::new(move || job(&fs, &caller)));
    }
}

fn attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: 0,
        atime: attr.time,
        mtime: attr.time,
        ctime: attr.time,
        crtime: attr.time,
        kind: file_type(attr.kind.into()),
        perm: attr.perm,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: 0,
        blksize: attr.blksize,
        flags: 0,
    }
}

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::Directory => FileType::Directory,
        FileKind::RegularFile => FileType::RegularFile,
        FileKind::Symlink => FileType::Symlink,
    }
}

/// Answers an OPEN: a handle, with the mmap-refusing backing file when there is one.
fn open(fs: &Fs, caller: &Caller, ino: INodeNo, write: bool, reply: ReplyOpen) {
    let handle = match fs.open(caller, ino.0, write) {
        Ok(handle) => FileHandle(handle),
        Err(e) => return reply.error(errno(e)),
    };
    let backing = fs.mmap_refusal(|file| reply.open_backing(file).map(BackingId::into_raw));
    match backing {
        Some(id) => {
            // SAFETY: `id` was registered on this session's connection (at mount, or by the first
            // open's `mmap_refusal`) and is never closed while the connection lives; `into_raw`
            // below takes the wrapper apart again without closing it.
            let backing = unsafe { reply.wrap_backing(id) };
            reply.opened_passthrough(handle, open_flags(), &backing);
            let _ = backing.into_raw();
        }
        None => reply.opened(handle, open_flags()),
    }
}

/// [`OPEN_FLAGS`] as fuser spells them.
fn open_flags() -> FopenFlags {
    FopenFlags::from_bits_retain(OPEN_FLAGS)
}

fn caller(req: &Request) -> Caller {
    Caller {
        pid: req.pid(),
        uid: req.uid(),
        gid: req.gid(),
    }
}

impl Filesystem for CgviewFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Passthrough lets opens refuse mmap(2) (see `Fs::mmap_refusal`); both transports' opens use
        // it. A kernel without it leaves opens plain direct_io.
        if config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok() {
            let _ = config.set_max_stack_depth(MAX_STACK_DEPTH);
        }
        // Nothing is ever written to cgview; a known, modest max_write lets a successor read requests
        // off a handed-over connection with buffers of that size (see `transport::resumed`).
        let _ = config.set_max_write(RING_MAX_WRITE);
        if let Some(negotiated) = &self.io_uring {
            let agreed = config
                .add_capabilities(InitFlags::FUSE_OVER_IO_URING)
                .is_ok();
            negotiated.store(agreed, Ordering::SeqCst);
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.as_bytes().to_vec();
        self.in_turn(caller(req), move |fs, caller| {
            match fs.lookup(caller, parent.0, &name) {
                Ok(entry) => reply.entry_with_ttls(
                    &entry.attr_ttl,
                    &entry.entry_ttl,
                    &attr(&entry.attr),
                    Generation(0),
                ),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.in_turn(caller(req), move |fs, caller| {
            match fs.getattr(caller, ino.0) {
                Ok((found, ttl)) => reply.attr(&ttl, &attr(&found)),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs.readlink(ino.0) {
            Ok(target) => reply.data(target.as_os_str().as_bytes()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        self.in_turn(caller(req), move |fs, caller| {
            open(fs, caller, ino, write, reply)
        });
    }
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let into = ReadInto::from_lock_owner(lock_owner.is_some());
        self.in_turn(caller(req), move |fs, caller| {
            match fs.read(caller, ino.0, fh.0, offset, into) {
                Ok(snapshot) => reply.data(slice_at(&snapshot, offset, size)),
                Err(e) => reply.error(errno(e)),
            }
        });
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
        self.fs.release(fh.0);
        reply.ok();
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.in_turn(caller(req), move |fs, caller| {
            match fs.opendir(caller, ino.0) {
                Ok(handle) => reply.opened(FileHandle(handle), FopenFlags::empty()),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.fs.readdir(&caller(req), ino.0, fh.0) {
            Ok(entries) => entries,
            Err(e) => return reply.error(errno(e)),
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (index, entry) in entries.iter().enumerate().skip(skip) {
            // The offset handed back is where the next readdir continues.
            if reply.add(
                INodeNo(entry.inode),
                index as u64 + 1,
                file_type(entry.kind.into()),
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
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let mask = mask.bits() as u32;
        self.in_turn(caller(req), move |fs, caller| {
            match fs.access(caller, ino.0, mask) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let statfs = self.fs.statfs();
        reply.statfs(
            0,
            0,
            0,
            0,
            0,
            statfs.block_size,
            statfs.name_max,
            statfs.block_size,
        );
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
        reply.error(errno(Failure::Unsupported));
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(errno(Failure::Unsupported));
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
        reply.error(errno(Failure::NoIoctl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_are_fusers_direct_io_and_noflush() {
        assert_eq!(
            open_flags(),
            FopenFlags::FOPEN_DIRECT_IO.union(FopenFlags::FOPEN_NOFLUSH)
        );
        assert_eq!(
            FopenFlags::FOPEN_PASSTHROUGH.bits(),
            crate::fs::open_reply::FOPEN_PASSTHROUGH
        );
    }
}
