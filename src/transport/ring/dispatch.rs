//! One request in, one reply out: decodes the request the kernel wrote into a ring entry, asks [`Fs`],
//! and writes the reply over the same buffers. Every request gets exactly one reply, the same one the
//! `fuser` adapter ([`fuse`](crate::transport::fuse)) gives on `/dev/fuse`, including fuser's defaults for the
//! operations cgview does not implement. A [`Failure`] becomes its errno only when the reply header is
//! written.

use super::abi::{self, opcode, InHeader, ReadIn};
use crate::fs::open_reply::OPEN_FLAGS;
use crate::fs::{slice_at, Caller, DirEntry, Fs, ReadInto};
use crate::transport::passthrough::register_backing_file;
use cgview_core::failure::Failure;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::panic::AssertUnwindSafe;

/// The answer to a request the kernel sent malformed. Not ENOSYS (what fuser answers when it cannot parse
/// one): the kernel remembers ENOSYS for some operations, and ENOSYS to ACCESS would switch off every
/// later permission check on the mount.
const MALFORMED: Failure = Failure::Malformed;

/// Answers the request in one entry's buffers: `header` is the entry's `fuse_uring_req_header`, `payload`
/// its whole payload buffer; `device` is the connection's `/dev/fuse`. Writes the reply into both and
/// returns the commit id that hands it back.
pub fn answer(fs: &Fs, device: BorrowedFd<'_>, header: &mut [u8], payload: &mut [u8]) -> u64 {
    let request = InHeader::decode(header);
    // Unreadable only if the header buffer were shorter than the kernel's header, which registration
    // rules out; the kernel then fails this one request.
    let commit_id = abi::commit_id(header).unwrap_or(0);
    let unique = request.map_or(0, |request| request.unique);
    let (error, payload_len) = match (request, abi::op_in(header)) {
        // A header too short to carry the reply (registration rules it out) is never acted on: an OPEN
        // would leave behind a handle that no reply names and so nobody releases.
        (Some(request), Some(op_in)) if header.len() >= abi::REQ_HEADER_LEN => {
            let payload_in = abi::payload_sz(header)
                .and_then(|len| usize::try_from(len).ok())
                .unwrap_or(0)
                .min(payload.len());
            let op_in = op_in.to_owned();
            answer_request(fs, device, &request, &op_in, payload, payload_in)
        }
        _ => (error_field(MALFORMED.errno()), 0),
    };
    // Cannot fail on a header buffer the kernel accepted.
    let _ = abi::write_reply_header(header, unique, error, payload_len);
    commit_id
}

/// Answers one decoded request, from either transport: `op_in` is the operation's argument struct,
/// `payload`'s first `payload_in` bytes the request's payload (LOOKUP's name), and the reply payload is
/// written over `payload`. Returns `fuse_out_header.error` (0 or a negative errno) and the reply payload's
/// length.
pub fn answer_request(
    fs: &Fs,
    device: BorrowedFd<'_>,
    request: &InHeader,
    op_in: &[u8],
    payload: &mut [u8],
    payload_in: usize,
) -> (i32, u32) {
    // Fs already turns a panicking handler into a failure; this covers the decoding and encoding here,
    // so that no request is left without a reply (its caller would hang in the kernel).
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        reply(fs, device, request, op_in, payload, payload_in)
    }))
    .unwrap_or_else(|_| {
        tracing::error!(opcode = request.opcode, "answering panicked; replying EIO");
        Err(Failure::Internal)
    });
    match result.and_then(|len| u32::try_from(len).map_err(|_| MALFORMED)) {
        Ok(len) => (0, len),
        Err(failure) => (error_field(failure.errno()), 0),
    }
}

/// `fuse_out_header.error` for an errno. The kernel rejects values outside -511..=-1 and would fail the
/// request with EINVAL; a handler bug that produced one becomes [`Failure::Internal`]'s errno instead.
fn error_field(errno: i32) -> i32 {
    if (1..512).contains(&errno) {
        -errno
    } else {
        -Failure::Internal.errno()
    }
}

/// Writes the reply payload and returns its length.
fn reply(
    fs: &Fs,
    device: BorrowedFd<'_>,
    request: &InHeader,
    op_in: &[u8],
    payload: &mut [u8],
    payload_in: usize,
) -> Result<usize, Failure> {
    let caller = Caller {
        pid: request.pid,
        uid: request.uid,
        gid: request.gid,
    };
    let ino = request.nodeid;
    match request.opcode {
        opcode::LOOKUP => {
            let entry = {
                let name = payload
                    .get(..payload_in)
                    .and_then(abi::lookup_name)
                    .ok_or(MALFORMED)?;
                fs.lookup(&caller, ino, name)?
            };
            put(payload, &abi::entry_out(&entry))
        }
        opcode::GETATTR => {
            let (attr, ttl) = fs.getattr(&caller, ino)?;
            put(payload, &abi::attr_out(&attr, ttl))
        }
        opcode::READLINK => {
            let target = fs.readlink(ino)?;
            let target = target.as_os_str().as_bytes();
            if target.len() > payload.len() {
                return Err(Failure::NameTooLong);
            }
            put(payload, target)
        }
        opcode::OPEN => {
            let flags = abi::open_flags(op_in).ok_or(MALFORMED)?;
            // As fuser reads the access mode: an impossible O_ACCMODE value counts as read-only.
            let write = matches!(
                flags as i32 & libc::O_ACCMODE,
                libc::O_WRONLY | libc::O_RDWR
            );
            let fh = fs.open(&caller, ino, write)?;
            // As the fuser adapter opens: backed by the file that refuses mmap(2), when there is one.
            let open_out = match fs.mmap_refusal(|file| register_backing_file(device, file)) {
                Some(id) => abi::open_out(fh, OPEN_FLAGS | abi::FOPEN_PASSTHROUGH, id),
                None => abi::open_out(fh, OPEN_FLAGS, 0),
            };
            // A handle the kernel is never told of would never be released.
            put(payload, &open_out).inspect_err(|_| fs.release(fh))
        }
        opcode::READ => {
            let read = ReadIn::decode(op_in).ok_or(MALFORMED)?;
            let into = ReadInto::from_lock_owner(read.read_flags & abi::FUSE_READ_LOCKOWNER != 0);
            let snapshot = fs.read(&caller, ino, read.fh, read.offset, into)?;
            let capacity = u32::try_from(payload.len()).unwrap_or(u32::MAX);
            put(
                payload,
                slice_at(&snapshot, read.offset, read.size.min(capacity)),
            )
        }
        opcode::STATFS => {
            let statfs = fs.statfs();
            put(
                payload,
                &abi::statfs_out(statfs.block_size, statfs.name_max),
            )
        }
        opcode::RELEASE => {
            fs.release(abi::release_fh(op_in).ok_or(MALFORMED)?);
            Ok(0)
        }
        opcode::OPENDIR => {
            let fh = fs.opendir(&caller, ino)?;
            put(payload, &abi::open_out(fh, 0, 0)).inspect_err(|_| fs.releasedir(fh))
        }
        opcode::READDIR => {
            let read = ReadIn::decode(op_in).ok_or(MALFORMED)?;
            let entries = fs.readdir(&caller, ino, read.fh)?;
            let size = usize::try_from(read.size).unwrap_or(usize::MAX);
            let out = payload
                .get_mut(..size.min(payload.len()))
                .ok_or(MALFORMED)?;
            Ok(pack_dirents(&entries, read.offset, out))
        }
        opcode::RELEASEDIR => {
            fs.releasedir(abi::release_fh(op_in).ok_or(MALFORMED)?);
            Ok(0)
        }
        opcode::ACCESS => {
            fs.access(&caller, ino, abi::access_mask(op_in).ok_or(MALFORMED)?)?;
            Ok(0)
        }
        // fuser answers unrestricted (CUSE) ioctls itself; cgview answers the rest: no ioctl applies to
        // a text file.
        opcode::IOCTL => {
            match abi::ioctl_flags(op_in).ok_or(MALFORMED)? & abi::FUSE_IOCTL_UNRESTRICTED {
                0 => Err(Failure::NoIoctl),
                _ => Err(Failure::Unsupported),
            }
        }
        // fuser's defaults where they are not ENOSYS.
        opcode::SYMLINK | opcode::LINK => Err(Failure::NotPermitted),
        // INIT was answered on /dev/fuse before any ring existed (one here is as good as malformed);
        // DESTROY is only sent to fuseblk mounts.
        opcode::INIT => Err(MALFORMED),
        opcode::DESTROY => Ok(0),
        // No extended attributes and no FLUSH (every open is `noflush`); ENOSYS makes the kernel stop
        // asking. FORGET, BATCH_FORGET and INTERRUPT always go to /dev/fuse; READDIRPLUS is not
        // negotiated. Every other operation is one cgview does not implement, answered as fuser's
        // defaults answer it.
        opcode::GETXATTR
        | opcode::LISTXATTR
        | opcode::FLUSH
        | opcode::FORGET
        | opcode::BATCH_FORGET
        | opcode::INTERRUPT
        | opcode::READDIRPLUS => Err(Failure::Unsupported),
        _ => Err(Failure::Unsupported),
    }
}

/// Copies a fixed-size reply to the start of the payload buffer.
fn put(payload: &mut [u8], reply: &[u8]) -> Result<usize, Failure> {
    payload
        .get_mut(..reply.len())
        .ok_or(MALFORMED)?
        .copy_from_slice(reply);
    Ok(reply.len())
}

/// READDIR's reply: the listing's entries from `offset` on, as many whole records as fit in `out`. Entry
/// `i` carries offset `i + 1`, where the next READDIR continues (as the `fuser` adapter does).
fn pack_dirents(entries: &[DirEntry], offset: u64, out: &mut [u8]) -> usize {
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let mut used = 0;
    for (index, entry) in entries.iter().enumerate().skip(skip) {
        let Some(rest) = out.get_mut(used..) else {
            break;
        };
        let kind = abi::dirent_type(entry.kind.into());
        match abi::write_dirent(
            rest,
            entry.inode,
            index as u64 + 1,
            kind,
            entry.name.as_bytes(),
        ) {
            Some(len) => used += len,
            None => break,
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{NodeKind, BLOCK_SIZE, NAME_MAX};
    use crate::host::layout::CgroupLayout;
    use crate::host::paths::HostPaths;
    use crate::host::resolve::Resolver;
    use crate::service::view::{View, ViewOptions};
    use std::os::fd::AsFd;
    use std::sync::Arc;

    const MEMINFO: &str = "MemTotal:        8000000 kB\nMemFree:         4000000 kB\n";

    /// Fs over a host with no cgroup hierarchy: every caller sees the host's own files.
    struct Host {
        _dir: tempfile::TempDir,
        ops: Fs,
    }

    fn host() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths {
            proc_root: dir.path().join("proc"),
            sys_root: dir.path().join("sys"),
            cgroup_root: dir.path().join("cgroup"),
        };
        std::fs::create_dir_all(paths.proc_root.join("self")).unwrap();
        std::fs::create_dir_all(&paths.cgroup_root).unwrap();
        std::fs::write(
            paths.proc_root.join("self/mountinfo"),
            "1 0 254:0 / / rw,relatime - ext4 /dev/vda rw\n",
        )
        .unwrap();
        std::fs::write(paths.proc_root.join("meminfo"), MEMINFO).unwrap();
        let layout = CgroupLayout::detect(&paths).unwrap();
        let view = View::new(Resolver::new(paths, layout), ViewOptions::default());
        Host {
            _dir: dir,
            ops: Fs::new(Arc::new(view)),
        }
    }

    const ROOT: u64 = 1;
    const UNIQUE: u64 = 0x1234;

    /// An entry's buffers as the kernel leaves them: the stale bytes of an earlier request everywhere.
    struct Buffers {
        header: [u8; abi::REQ_HEADER_LEN],
        payload: Vec<u8>,
    }

    impl Buffers {
        fn new(opcode: u32, nodeid: u64) -> Buffers {
            let mut header = [0x2au8; abi::REQ_HEADER_LEN];
            header[4..8].copy_from_slice(&opcode.to_ne_bytes());
            header[8..16].copy_from_slice(&UNIQUE.to_ne_bytes());
            header[16..24].copy_from_slice(&nodeid.to_ne_bytes());
            header[24..36].fill(0); // uid, gid and pid 0: root, outside the daemon's pid namespace.
            header[264..272].copy_from_slice(&UNIQUE.to_ne_bytes());
            header[272..276].copy_from_slice(&0u32.to_ne_bytes());
            Buffers {
                header,
                payload: vec![0x2a; abi::MIN_PAYLOAD_LEN],
            }
        }

        fn with_op_in(mut self, op_in: &[u8]) -> Buffers {
            self.header[128..128 + op_in.len()].copy_from_slice(op_in);
            self
        }

        fn with_payload(mut self, payload: &[u8]) -> Buffers {
            self.payload[..payload.len()].copy_from_slice(payload);
            self.header[272..276].copy_from_slice(&(payload.len() as u32).to_ne_bytes());
            self
        }

        /// Answers; returns (error, reply payload).
        fn answer(mut self, ops: &Fs) -> (i32, Vec<u8>) {
            // Not a FUSE device: registering a backing file with it fails, and opens are plain.
            let device = std::fs::File::open("/dev/null").unwrap();
            assert_eq!(
                answer(ops, device.as_fd(), &mut self.header, &mut self.payload),
                UNIQUE
            );
            assert_eq!(
                u64::from_ne_bytes(self.header[8..16].try_into().unwrap()),
                UNIQUE
            );
            let error = i32::from_ne_bytes(self.header[4..8].try_into().unwrap());
            let len = abi::payload_sz(&self.header).unwrap() as usize;
            (error, self.payload[..len].to_vec())
        }
    }

    fn read_in(fh: u64, offset: u64, size: u32, read_flags: u32) -> [u8; 40] {
        let mut op = [0u8; 40];
        op[0..8].copy_from_slice(&fh.to_ne_bytes());
        op[8..16].copy_from_slice(&offset.to_ne_bytes());
        op[16..20].copy_from_slice(&size.to_ne_bytes());
        op[20..24].copy_from_slice(&read_flags.to_ne_bytes());
        op
    }

    fn u64_at(bytes: &[u8], at: usize) -> u64 {
        u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap())
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    fn lookup(ops: &Fs, parent: u64, name: &str) -> u64 {
        let (error, reply) = Buffers::new(opcode::LOOKUP, parent)
            .with_payload(format!("{name}\0").as_bytes())
            .answer(ops);
        assert_eq!(error, 0, "lookup {name}");
        u64_at(&reply, 0)
    }

    fn open(ops: &Fs, ino: u64, opcode: u32) -> u64 {
        let (error, reply) = Buffers::new(opcode, ino)
            .with_op_in(&(libc::O_RDONLY as u32).to_ne_bytes())
            .answer(ops);
        assert_eq!(error, 0);
        u64_at(&reply, 0)
    }

    #[test]
    fn lookup_replies_a_whole_entry_out() {
        let host = host();
        let (error, reply) = Buffers::new(opcode::LOOKUP, ROOT)
            .with_payload(b"proc\0")
            .answer(&host.ops);
        assert_eq!(error, 0);
        assert_eq!(reply.len(), abi::ENTRY_OUT_LEN);
        let entry = host.ops.lookup(&caller(), ROOT, b"proc").unwrap();
        assert_eq!(reply, abi::entry_out(&entry));
    }

    fn caller() -> Caller {
        Caller {
            pid: 0,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn lookup_of_a_missing_name_is_enoent_without_payload() {
        let host = host();
        let (error, reply) = Buffers::new(opcode::LOOKUP, ROOT)
            .with_payload(b"nothing-here\0")
            .answer(&host.ops);
        assert_eq!(error, -libc::ENOENT);
        assert!(reply.is_empty());
    }

    #[test]
    fn lookup_name_without_nul_is_malformed() {
        let host = host();
        let (error, _) = Buffers::new(opcode::LOOKUP, ROOT)
            .with_payload(b"proc")
            .answer(&host.ops);
        assert_eq!(error, -libc::EIO);
    }

    #[test]
    fn getattr_replies_attr_out_with_directory_mode() {
        let host = host();
        let (error, reply) = Buffers::new(opcode::GETATTR, ROOT).answer(&host.ops);
        assert_eq!(error, 0);
        assert_eq!(reply.len(), abi::ATTR_OUT_LEN);
        let (attr, ttl) = host.ops.getattr(&caller(), ROOT).unwrap();
        assert_eq!(reply, abi::attr_out(&attr, ttl));
        assert_eq!(u32_at(&reply, 16 + 60) & libc::S_IFMT, libc::S_IFDIR);
    }

    #[test]
    fn open_read_release_serves_the_file() {
        let host = host();
        let proc_dir = lookup(&host.ops, ROOT, "proc");
        let meminfo = lookup(&host.ops, proc_dir, "meminfo");
        let (error, reply) = Buffers::new(opcode::OPEN, meminfo)
            .with_op_in(&(libc::O_RDONLY as u32).to_ne_bytes())
            .answer(&host.ops);
        assert_eq!(error, 0);
        assert_eq!(reply.len(), abi::OPEN_OUT_LEN);
        assert_eq!(u32_at(&reply, 8), OPEN_FLAGS);
        let fh = u64_at(&reply, 0);

        let (error, data) = Buffers::new(opcode::READ, meminfo)
            .with_op_in(&read_in(fh, 0, 4096, abi::FUSE_READ_LOCKOWNER))
            .answer(&host.ops);
        assert_eq!(error, 0);
        assert_eq!(data, MEMINFO.as_bytes());

        let (error, data) = Buffers::new(opcode::READ, meminfo)
            .with_op_in(&read_in(fh, 9, 5, abi::FUSE_READ_LOCKOWNER))
            .answer(&host.ops);
        assert_eq!(error, 0);
        assert_eq!(data, &MEMINFO.as_bytes()[9..14]);

        let (error, reply) = Buffers::new(opcode::RELEASE, meminfo)
            .with_op_in(&fh.to_ne_bytes())
            .answer(&host.ops);
        assert_eq!((error, reply.len()), (0, 0));
        assert_eq!(host.ops.open_count(), 0);
    }

    #[test]
    fn read_is_bounded_by_the_payload_buffer() {
        let host = host();
        let proc_dir = lookup(&host.ops, ROOT, "proc");
        let meminfo = lookup(&host.ops, proc_dir, "meminfo");
        let fh = open(&host.ops, meminfo, opcode::OPEN);
        let mut buffers = Buffers::new(opcode::READ, meminfo).with_op_in(&read_in(
            fh,
            0,
            u32::MAX,
            abi::FUSE_READ_LOCKOWNER,
        ));
        buffers.payload.truncate(10);
        let (error, data) = buffers.answer(&host.ops);
        assert_eq!(error, 0);
        assert_eq!(data, &MEMINFO.as_bytes()[..10]);
    }

    #[test]
    fn readdir_continues_where_the_last_entry_said() {
        let host = host();
        let fh = open(&host.ops, ROOT, opcode::OPENDIR);
        let listing = host.ops.readdir(&caller(), ROOT, fh).unwrap();
        assert!(listing.len() >= 3, "{listing:?}");

        let (error, all) = Buffers::new(opcode::READDIR, ROOT)
            .with_op_in(&read_in(fh, 0, 4096, 0))
            .answer(&host.ops);
        assert_eq!(error, 0);
        let mut expected = vec![0u8; 4096];
        let len = pack_dirents(&listing, 0, &mut expected);
        assert_eq!(all, &expected[..len]);
        assert_eq!(all.len() % 8, 0);

        let (error, rest) = Buffers::new(opcode::READDIR, ROOT)
            .with_op_in(&read_in(fh, 1, 4096, 0))
            .answer(&host.ops);
        assert_eq!(error, 0);
        let first_len = (24 + listing[0].name.len()).next_multiple_of(8);
        assert_eq!(rest, &all[first_len..]);

        let (error, none) = Buffers::new(opcode::READDIR, ROOT)
            .with_op_in(&read_in(fh, listing.len() as u64, 4096, 0))
            .answer(&host.ops);
        assert_eq!((error, none.len()), (0, 0));

        let (error, _) = Buffers::new(opcode::RELEASEDIR, ROOT)
            .with_op_in(&fh.to_ne_bytes())
            .answer(&host.ops);
        assert_eq!(error, 0);
    }

    #[test]
    fn dirents_stop_before_the_requested_size() {
        let entries = [
            DirEntry {
                inode: 2,
                kind: NodeKind::Directory,
                name: "proc".into(),
            },
            DirEntry {
                inode: 3,
                kind: NodeKind::HostFile,
                name: "a-longer-name".into(),
            },
        ];
        let mut out = [0u8; 60];
        // 32 bytes for the first record; the second needs 40.
        assert_eq!(pack_dirents(&entries, 0, &mut out), 32);
        assert_eq!(u64_at(&out, 0), 2);
        assert_eq!(u64_at(&out, 8), 1, "off");
        assert_eq!(u32_at(&out, 20), u32::from(libc::DT_DIR));
        let mut out = [0u8; 72];
        assert_eq!(pack_dirents(&entries, 0, &mut out), 72);
        assert_eq!(u64_at(&out, 32 + 8), 2, "off");
        assert_eq!(u32_at(&out, 32 + 20), u32::from(libc::DT_REG));
        assert_eq!(pack_dirents(&entries, 2, &mut out), 0);
        assert_eq!(pack_dirents(&entries, u64::MAX, &mut out), 0);
    }

    #[test]
    fn statfs_replies_block_size_and_name_max() {
        let host = host();
        let (error, reply) = Buffers::new(opcode::STATFS, ROOT).answer(&host.ops);
        assert_eq!(error, 0);
        assert_eq!(reply, abi::statfs_out(BLOCK_SIZE, NAME_MAX));
    }

    #[test]
    fn access_replies_without_payload() {
        let host = host();
        let (error, reply) = Buffers::new(opcode::ACCESS, ROOT)
            .with_op_in(&(libc::R_OK as u32).to_ne_bytes())
            .answer(&host.ops);
        assert_eq!((error, reply.len()), (0, 0));
    }

    #[test]
    fn unknown_inode_is_an_errno_reply() {
        let host = host();
        let (error, reply) = Buffers::new(opcode::GETATTR, u64::MAX - 1).answer(&host.ops);
        assert!(error < 0, "{error}");
        assert!(reply.is_empty());
    }

    #[test]
    fn unimplemented_operations_get_fusers_defaults() {
        let host = host();
        let cases = [
            (opcode::GETXATTR, -libc::ENOSYS),
            (opcode::LISTXATTR, -libc::ENOSYS),
            (opcode::FLUSH, -libc::ENOSYS),
            (opcode::READDIRPLUS, -libc::ENOSYS),
            (opcode::SYMLINK, -libc::EPERM),
            (opcode::LINK, -libc::EPERM),
            (opcode::INIT, -libc::EIO),
            (16, -libc::ENOSYS), // WRITE
            (4, -libc::ENOSYS),  // SETATTR
            (9999, -libc::ENOSYS),
        ];
        for (op, expected) in cases {
            let (error, reply) = Buffers::new(op, ROOT).answer(&host.ops);
            assert_eq!((error, reply.len()), (expected, 0), "opcode {op}");
        }
    }

    #[test]
    fn ioctl_is_enotty_and_unrestricted_ioctl_enosys() {
        let host = host();
        let mut ioctl_in = [0u8; 32];
        let (error, _) = Buffers::new(opcode::IOCTL, ROOT)
            .with_op_in(&ioctl_in)
            .answer(&host.ops);
        assert_eq!(error, -libc::ENOTTY);
        ioctl_in[8..12].copy_from_slice(&abi::FUSE_IOCTL_UNRESTRICTED.to_ne_bytes());
        let (error, _) = Buffers::new(opcode::IOCTL, ROOT)
            .with_op_in(&ioctl_in)
            .answer(&host.ops);
        assert_eq!(error, -libc::ENOSYS);
    }

    #[test]
    fn header_too_short_for_the_reply_opens_nothing() {
        let host = host();
        let proc_dir = lookup(&host.ops, ROOT, "proc");
        let meminfo = lookup(&host.ops, proc_dir, "meminfo");
        let buffers =
            Buffers::new(opcode::OPEN, meminfo).with_op_in(&(libc::O_RDONLY as u32).to_ne_bytes());
        // Long enough for the request and its first argument, too short for the reply's payload size.
        let mut header = buffers.header[..abi::REQ_HEADER_LEN - 16].to_vec();
        let mut payload = buffers.payload;
        let device = std::fs::File::open("/dev/null").unwrap();
        answer(&host.ops, device.as_fd(), &mut header, &mut payload);
        assert_eq!(host.ops.open_count(), 0, "a handle no reply names");
    }

    #[test]
    fn open_whose_reply_does_not_fit_is_released() {
        let host = host();
        let proc_dir = lookup(&host.ops, ROOT, "proc");
        let meminfo = lookup(&host.ops, proc_dir, "meminfo");
        let file =
            Buffers::new(opcode::OPEN, meminfo).with_op_in(&(libc::O_RDONLY as u32).to_ne_bytes());
        for mut buffers in [file, Buffers::new(opcode::OPENDIR, ROOT)] {
            buffers.payload.truncate(abi::OPEN_OUT_LEN - 1);
            let (error, reply) = buffers.answer(&host.ops);
            assert_eq!((error, reply.len()), (-libc::EIO, 0));
            assert_eq!(host.ops.open_count(), 0, "a handle no reply names");
        }
    }

    #[test]
    fn out_of_range_errnos_become_eio() {
        assert_eq!(error_field(libc::ENOENT), -libc::ENOENT);
        assert_eq!(error_field(511), -511);
        for bad in [0, -1, 512, i32::MAX, i32::MIN] {
            assert_eq!(error_field(bad), -libc::EIO, "{bad}");
        }
    }
}
