//! The FUSE wire format as the ring carries it (`include/uapi/linux/fuse.h`, ABI 7.45): the per-entry
//! header buffer the kernel fills, the request arguments cgview reads and the replies it writes. Values are
//! in the kernel's own (native) byte order. Everything is decoded from and encoded into byte slices at the
//! header's offsets; a decoder returns `None` rather than reading past a slice.

use crate::fs::{Attr, Entry, FileKind};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `sizeof(struct fuse_uring_req_header)`: the kernel refuses a header buffer shorter than this.
pub const REQ_HEADER_LEN: usize = 288;
/// `fuse_in_header` on receive, `fuse_out_header` on reply.
const IN_OUT_OFFSET: usize = 0;
/// The operation's first argument (`fuse_read_in`, `fuse_open_in`, ...). Left stale by operations that
/// have none (LOOKUP, STATFS), so it is read only for operations that have one.
const OP_IN_OFFSET: usize = 128;
const OP_IN_LEN: usize = 128;
/// `struct fuse_uring_ent_in_out`.
const ENT_IN_OUT_OFFSET: usize = 256;
const COMMIT_ID_OFFSET: usize = ENT_IN_OUT_OFFSET + 8;
const PAYLOAD_SZ_OFFSET: usize = ENT_IN_OUT_OFFSET + 16;

/// `enum fuse_uring_cmd`, the SQE's `cmd_op`.
pub const CMD_REGISTER: u32 = 1;
pub const CMD_COMMIT_AND_FETCH: u32 = 2;

/// The smallest payload buffer the kernel accepts whatever was negotiated (`FUSE_MIN_READ_BUFFER`).
pub const MIN_PAYLOAD_LEN: usize = 8192;

/// `enum fuse_opcode` values that cgview answers or answers specially.
pub mod opcode {
    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2;
    pub const GETATTR: u32 = 3;
    pub const READLINK: u32 = 5;
    pub const SYMLINK: u32 = 6;
    pub const LINK: u32 = 13;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const GETXATTR: u32 = 22;
    pub const LISTXATTR: u32 = 23;
    pub const FLUSH: u32 = 25;
    pub const INIT: u32 = 26;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const ACCESS: u32 = 34;
    pub const INTERRUPT: u32 = 36;
    pub const DESTROY: u32 = 38;
    pub const IOCTL: u32 = 39;
    pub const BATCH_FORGET: u32 = 42;
    pub const READDIRPLUS: u32 = 44;
}

/// `fuse_read_in.read_flags`: the kernel named the reader's lock owner.
pub const FUSE_READ_LOCKOWNER: u32 = 1 << 1;
/// `fuse_open_out.open_flags`: the open is backed by the file `backing_id` names.
pub const FOPEN_PASSTHROUGH: u32 = 1 << 7;
/// `fuse_ioctl_in.flags`: an ioctl whose argument layout the kernel did not check (CUSE only).
pub const FUSE_IOCTL_UNRESTRICTED: u32 = 1 << 1;

fn bytes_at<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    bytes_at(bytes, at).map(u16::from_ne_bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes_at(bytes, at).map(u32::from_ne_bytes)
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes_at(bytes, at).map(u64::from_ne_bytes)
}

/// Writes `value` at `at` in an encoder's own fixed-size array; the offsets are constants inside it.
fn put(out: &mut [u8], at: usize, value: &[u8]) {
    out[at..at + value.len()].copy_from_slice(value);
}

/// `sizeof(struct fuse_in_header)`: on `/dev/fuse` the operation's arguments follow it.
pub const IN_HEADER_LEN: usize = 40;

/// `struct fuse_in_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InHeader {
    pub len: u32,
    pub opcode: u32,
    pub unique: u64,
    pub nodeid: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub total_extlen: u16,
}

impl InHeader {
    pub fn decode(header: &[u8]) -> Option<InHeader> {
        let at = IN_OUT_OFFSET;
        let header = header.get(..at + IN_HEADER_LEN)?;
        Some(InHeader {
            len: u32_at(header, at)?,
            opcode: u32_at(header, at + 4)?,
            unique: u64_at(header, at + 8)?,
            nodeid: u64_at(header, at + 16)?,
            uid: u32_at(header, at + 24)?,
            gid: u32_at(header, at + 28)?,
            pid: u32_at(header, at + 32)?,
            total_extlen: u16_at(header, at + 36)?,
        })
    }
}

/// The operation's first argument area of a header buffer.
pub fn op_in(header: &[u8]) -> Option<&[u8]> {
    header.get(OP_IN_OFFSET..OP_IN_OFFSET + OP_IN_LEN)
}

/// `fuse_uring_ent_in_out.commit_id`: what the COMMIT_AND_FETCH for this request must name.
pub fn commit_id(header: &[u8]) -> Option<u64> {
    u64_at(header, COMMIT_ID_OFFSET)
}

/// `fuse_uring_ent_in_out.payload_sz`: on receive, how many payload bytes the kernel wrote.
pub fn payload_sz(header: &[u8]) -> Option<u32> {
    u32_at(header, PAYLOAD_SZ_OFFSET)
}

/// Writes the reply's `fuse_out_header` (its `len` is not read on the ring) and the reply payload's
/// length, which does not count the out header. `error` is 0 or a negative errno.
pub fn write_reply_header(
    header: &mut [u8],
    unique: u64,
    error: i32,
    payload_len: u32,
) -> Option<()> {
    header
        .get_mut(IN_OUT_OFFSET..IN_OUT_OFFSET + 16)?
        .copy_from_slice(&out_header(unique, error, payload_len));
    header
        .get_mut(PAYLOAD_SZ_OFFSET..PAYLOAD_SZ_OFFSET + 4)?
        .copy_from_slice(&payload_len.to_ne_bytes());
    Some(())
}

/// `sizeof(struct fuse_out_header)`.
pub const OUT_HEADER_LEN: usize = 16;

/// `enum fuse_notify_code`: requeue every request the daemon side took but has not answered (Linux 6.9).
pub const FUSE_NOTIFY_RESEND: i32 = 7;

/// The notification asking the kernel to send again every request a daemon took off the connection
/// and never answered: a `fuse_out_header` with unique 0 and the notify code in `error`.
pub fn notify_resend() -> [u8; OUT_HEADER_LEN] {
    out_header(0, FUSE_NOTIFY_RESEND, 0)
}

/// `struct fuse_forget_in`: the lookups the kernel dropped.
pub fn forget_nlookup(op_in: &[u8]) -> Option<u64> {
    u64_at(op_in, 0)
}

/// `struct fuse_batch_forget_in` and the `fuse_forget_one` records after it: (node, lookups) pairs.
pub fn batch_forget(op_in: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    let count = u32_at(op_in, 0).unwrap_or(0) as usize;
    op_in
        .get(8..)
        .unwrap_or_default()
        .chunks_exact(16)
        .take(count)
        .filter_map(|one| Some((u64_at(one, 0)?, u64_at(one, 8)?)))
}

/// `struct fuse_out_header`.
pub fn out_header(unique: u64, error: i32, payload_len: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    put(&mut out, 0, &payload_len.saturating_add(16).to_ne_bytes());
    put(&mut out, 4, &error.to_ne_bytes());
    put(&mut out, 8, &unique.to_ne_bytes());
    out
}

/// `struct fuse_open_in`: the `open(2)` flags.
pub fn open_flags(op_in: &[u8]) -> Option<u32> {
    u32_at(op_in, 0)
}

/// `struct fuse_read_in`, for READ and READDIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadIn {
    pub fh: u64,
    pub offset: u64,
    pub size: u32,
    pub read_flags: u32,
}

impl ReadIn {
    pub fn decode(op_in: &[u8]) -> Option<ReadIn> {
        Some(ReadIn {
            fh: u64_at(op_in, 0)?,
            offset: u64_at(op_in, 8)?,
            size: u32_at(op_in, 16)?,
            read_flags: u32_at(op_in, 20)?,
        })
    }
}

/// `struct fuse_release_in` (RELEASE, RELEASEDIR): the handle.
pub fn release_fh(op_in: &[u8]) -> Option<u64> {
    u64_at(op_in, 0)
}

/// `struct fuse_access_in`: the `access(2)` mask.
pub fn access_mask(op_in: &[u8]) -> Option<u32> {
    u32_at(op_in, 0)
}

/// `struct fuse_ioctl_in`: its flags.
pub fn ioctl_flags(op_in: &[u8]) -> Option<u32> {
    u32_at(op_in, 8)
}

/// LOOKUP's argument: the name, NUL-terminated, at the start of the payload.
pub fn lookup_name(payload: &[u8]) -> Option<&[u8]> {
    let end = payload.iter().position(|&b| b == 0)?;
    Some(&payload[..end])
}

/// `st_mode` as fuser builds it: the file type bits and the permission bits.
fn mode(kind: FileKind, perm: u16) -> u32 {
    let kind = match kind {
        FileKind::Directory => libc::S_IFDIR,
        FileKind::RegularFile => libc::S_IFREG,
        FileKind::Symlink => libc::S_IFLNK,
    };
    kind | u32::from(perm)
}

/// A directory entry's `d_type` (`DT_*`): the file type bits of its mode, as fuser sends it.
pub fn dirent_type(kind: FileKind) -> u32 {
    mode(kind, 0) >> 12
}

/// Seconds and nanoseconds since the epoch, as fuser encodes a `SystemTime` (earlier times negative,
/// far-off times saturated).
fn epoch_time(time: SystemTime) -> (i64, u32) {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => match i64::try_from(since.as_secs()) {
            Ok(secs) => (secs, since.subsec_nanos()),
            Err(_) => (i64::MAX, 999_999_999),
        },
        Err(before) => {
            let before = before.duration();
            match i64::try_from(before.as_secs()) {
                Ok(secs) if before.subsec_nanos() == 0 => (-secs, 0),
                Ok(secs) => (-secs - 1, 1_000_000_000 - before.subsec_nanos()),
                Err(_) => (i64::MIN, 0),
            }
        }
    }
}

pub const FUSE_ATTR_LEN: usize = 88;
pub const ENTRY_OUT_LEN: usize = 128;
pub const ATTR_OUT_LEN: usize = 104;
pub const OPEN_OUT_LEN: usize = 16;
pub const STATFS_OUT_LEN: usize = 80;

/// `struct fuse_attr`, field for field what fuser writes for the `FileAttr` the `fuser` adapter builds:
/// the node's owner and group, no blocks, no device, no flags.
pub fn fuse_attr(attr: &Attr) -> [u8; FUSE_ATTR_LEN] {
    let (secs, nsecs) = epoch_time(attr.time);
    let mut out = [0u8; FUSE_ATTR_LEN];
    put(&mut out, 0, &attr.ino.to_ne_bytes());
    put(&mut out, 8, &attr.size.to_ne_bytes());
    // blocks (16) stay 0.
    for time_at in [24, 32, 40] {
        put(&mut out, time_at, &secs.to_ne_bytes());
    }
    for nsec_at in [48, 52, 56] {
        put(&mut out, nsec_at, &nsecs.to_ne_bytes());
    }
    put(
        &mut out,
        60,
        &mode(attr.kind.into(), attr.perm).to_ne_bytes(),
    );
    put(&mut out, 64, &attr.nlink.to_ne_bytes());
    put(&mut out, 68, &attr.uid.to_ne_bytes());
    put(&mut out, 72, &attr.gid.to_ne_bytes());
    // rdev (76) stays 0.
    put(&mut out, 80, &attr.blksize.to_ne_bytes());
    // flags (84) stay 0.
    out
}

/// `struct fuse_entry_out`: LOOKUP's reply.
pub fn entry_out(entry: &Entry) -> [u8; ENTRY_OUT_LEN] {
    let mut out = [0u8; ENTRY_OUT_LEN];
    put(&mut out, 0, &entry.attr.ino.to_ne_bytes());
    // generation (8) stays 0: a number names one path until the kernel forgets it, and only a number the
    // kernel no longer holds may be given to another path (nothing exports this mount over NFS).
    put(&mut out, 16, &entry.entry_ttl.as_secs().to_ne_bytes());
    put(&mut out, 24, &entry.attr_ttl.as_secs().to_ne_bytes());
    put(&mut out, 32, &entry.entry_ttl.subsec_nanos().to_ne_bytes());
    put(&mut out, 36, &entry.attr_ttl.subsec_nanos().to_ne_bytes());
    put(&mut out, 40, &fuse_attr(&entry.attr));
    out
}

/// `struct fuse_attr_out`: GETATTR's reply.
pub fn attr_out(attr: &Attr, ttl: Duration) -> [u8; ATTR_OUT_LEN] {
    let mut out = [0u8; ATTR_OUT_LEN];
    put(&mut out, 0, &ttl.as_secs().to_ne_bytes());
    put(&mut out, 8, &ttl.subsec_nanos().to_ne_bytes());
    put(&mut out, 16, &fuse_attr(attr));
    out
}

/// `struct fuse_open_out`: OPEN's and OPENDIR's reply. `backing_id` names the backing file of a
/// `FOPEN_PASSTHROUGH` open (0 otherwise).
pub fn open_out(fh: u64, open_flags: u32, backing_id: u32) -> [u8; OPEN_OUT_LEN] {
    let mut out = [0u8; OPEN_OUT_LEN];
    put(&mut out, 0, &fh.to_ne_bytes());
    put(&mut out, 8, &open_flags.to_ne_bytes());
    put(&mut out, 12, &backing_id.to_ne_bytes());
    out
}

/// `struct fuse_statfs_out`: no blocks or inodes to count; the block size and longest name.
pub fn statfs_out(block_size: u32, name_max: u32) -> [u8; STATFS_OUT_LEN] {
    let mut out = [0u8; STATFS_OUT_LEN];
    put(&mut out, 40, &block_size.to_ne_bytes());
    put(&mut out, 44, &name_max.to_ne_bytes());
    put(&mut out, 48, &block_size.to_ne_bytes());
    out
}

/// `struct fuse_dirent` without its name.
const DIRENT_HEADER_LEN: usize = 24;

/// Writes one `fuse_dirent` record (header, name, zero padding to 8 bytes) at the start of `out`;
/// `None`, writing nothing, when it does not fit.
pub fn write_dirent(out: &mut [u8], ino: u64, off: u64, kind: u32, name: &[u8]) -> Option<usize> {
    let namelen = u32::try_from(name.len()).ok()?;
    let record_len = (DIRENT_HEADER_LEN + name.len()).next_multiple_of(8);
    let record = out.get_mut(..record_len)?;
    record[0..8].copy_from_slice(&ino.to_ne_bytes());
    record[8..16].copy_from_slice(&off.to_ne_bytes());
    record[16..20].copy_from_slice(&namelen.to_ne_bytes());
    record[20..24].copy_from_slice(&kind.to_ne_bytes());
    let (name_area, padding) = record[DIRENT_HEADER_LEN..].split_at_mut(name.len());
    name_area.copy_from_slice(name);
    padding.fill(0);
    Some(record_len)
}

/// `struct fuse_uring_cmd_req` in the SQE's 80-byte command area: which request is answered (0 when
/// registering) and on which queue.
pub fn cmd_req(commit_id: u64, qid: u16) -> [u8; 80] {
    let mut cmd = [0u8; 80];
    // flags (0) stay 0: no kernel reads them yet.
    put(&mut cmd, 8, &commit_id.to_ne_bytes());
    put(&mut cmd, 16, &qid.to_ne_bytes());
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::NodeKind;

    fn sample_attr() -> Attr {
        Attr {
            ino: 0x0102_0304_0506_0708,
            size: 4242,
            kind: NodeKind::HostFile,
            perm: 0o444,
            uid: 65534,
            gid: 50,
            nlink: 1,
            blksize: 65536,
            time: UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
        }
    }

    fn u32_of(bytes: &[u8], at: usize) -> u32 {
        u32_at(bytes, at).unwrap()
    }

    fn u64_of(bytes: &[u8], at: usize) -> u64 {
        u64_at(bytes, at).unwrap()
    }

    #[test]
    fn in_header_decodes_every_field_at_its_offset() {
        let mut header = [0u8; REQ_HEADER_LEN];
        header[0..4].copy_from_slice(&46u32.to_ne_bytes());
        header[4..8].copy_from_slice(&opcode::LOOKUP.to_ne_bytes());
        header[8..16].copy_from_slice(&77u64.to_ne_bytes());
        header[16..24].copy_from_slice(&1u64.to_ne_bytes());
        header[24..28].copy_from_slice(&1000u32.to_ne_bytes());
        header[28..32].copy_from_slice(&100u32.to_ne_bytes());
        header[32..36].copy_from_slice(&4321u32.to_ne_bytes());
        header[36..38].copy_from_slice(&3u16.to_ne_bytes());
        assert_eq!(
            InHeader::decode(&header).unwrap(),
            InHeader {
                len: 46,
                opcode: 1,
                unique: 77,
                nodeid: 1,
                uid: 1000,
                gid: 100,
                pid: 4321,
                total_extlen: 3,
            }
        );
    }

    #[test]
    fn in_header_short_buffer_is_none() {
        assert_eq!(InHeader::decode(&[0u8; 39]), None);
    }

    #[test]
    fn ent_in_out_fields_are_at_256() {
        let mut header = [0u8; REQ_HEADER_LEN];
        header[264..272].copy_from_slice(&99u64.to_ne_bytes());
        header[272..276].copy_from_slice(&6u32.to_ne_bytes());
        assert_eq!(commit_id(&header), Some(99));
        assert_eq!(payload_sz(&header), Some(6));
    }

    #[test]
    fn reply_header_sets_error_unique_and_payload_size() {
        let mut header = [0xaau8; REQ_HEADER_LEN];
        write_reply_header(&mut header, 77, -libc::ENOENT, 0).unwrap();
        assert_eq!(u32_of(&header, 0), 16);
        assert_eq!(u32_of(&header, 4) as i32, -libc::ENOENT);
        assert_eq!(u64_of(&header, 8), 77);
        assert_eq!(payload_sz(&header), Some(0));
        // The commit id the kernel wrote is left for the commit.
        assert_eq!(commit_id(&header), Some(0xaaaa_aaaa_aaaa_aaaa));
    }

    #[test]
    fn op_in_is_the_second_128_bytes() {
        let mut header = [0u8; REQ_HEADER_LEN];
        header[128..136].copy_from_slice(&5u64.to_ne_bytes());
        header[136..144].copy_from_slice(&4096u64.to_ne_bytes());
        header[144..148].copy_from_slice(&32768u32.to_ne_bytes());
        header[148..152].copy_from_slice(&FUSE_READ_LOCKOWNER.to_ne_bytes());
        let read = ReadIn::decode(op_in(&header).unwrap()).unwrap();
        assert_eq!(
            read,
            ReadIn {
                fh: 5,
                offset: 4096,
                size: 32768,
                read_flags: FUSE_READ_LOCKOWNER
            }
        );
        assert_eq!(release_fh(op_in(&header).unwrap()), Some(5));
    }

    #[test]
    fn small_op_args_decode_at_their_offsets() {
        let mut op = [0u8; OP_IN_LEN];
        op[0..4].copy_from_slice(&(libc::O_RDWR as u32).to_ne_bytes());
        op[8..12].copy_from_slice(&FUSE_IOCTL_UNRESTRICTED.to_ne_bytes());
        assert_eq!(open_flags(&op), Some(libc::O_RDWR as u32));
        assert_eq!(access_mask(&op), Some(libc::O_RDWR as u32));
        assert_eq!(ioctl_flags(&op), Some(FUSE_IOCTL_UNRESTRICTED));
    }

    #[test]
    fn lookup_name_stops_at_nul_and_needs_one() {
        assert_eq!(lookup_name(b"meminfo\0stale"), Some(&b"meminfo"[..]));
        assert_eq!(lookup_name(b"\0"), Some(&b""[..]));
        assert_eq!(lookup_name(b"no-terminator"), None);
    }

    #[test]
    fn fuse_attr_layout_matches_the_kernel() {
        let out = fuse_attr(&sample_attr());
        assert_eq!(u64_of(&out, 0), 0x0102_0304_0506_0708);
        assert_eq!(u64_of(&out, 8), 4242);
        assert_eq!(u64_of(&out, 16), 0, "blocks");
        for at in [24, 32, 40] {
            assert_eq!(u64_of(&out, at), 1_700_000_000);
        }
        for at in [48, 52, 56] {
            assert_eq!(u32_of(&out, at), 123_456_789);
        }
        assert_eq!(u32_of(&out, 60), libc::S_IFREG | 0o444);
        assert_eq!(u32_of(&out, 64), 1);
        assert_eq!(u32_of(&out, 68), 65534, "uid");
        assert_eq!(u32_of(&out, 72), 50, "gid");
        assert_eq!(&out[76..80], &[0u8; 4], "rdev");
        assert_eq!(u32_of(&out, 80), 65536);
        assert_eq!(u32_of(&out, 84), 0, "flags");
    }

    #[test]
    fn mode_has_the_file_type_bits() {
        let mut attr = sample_attr();
        attr.kind = NodeKind::Directory;
        attr.perm = 0o555;
        assert_eq!(u32_of(&fuse_attr(&attr), 60), 0o040555);
        attr.kind = NodeKind::HostSymlink;
        attr.perm = 0o777;
        assert_eq!(u32_of(&fuse_attr(&attr), 60), 0o120777);
    }

    #[test]
    fn dirent_types_are_dt_values() {
        assert_eq!(dirent_type(FileKind::Directory), u32::from(libc::DT_DIR));
        assert_eq!(dirent_type(FileKind::RegularFile), u32::from(libc::DT_REG));
        assert_eq!(dirent_type(FileKind::Symlink), u32::from(libc::DT_LNK));
    }

    #[test]
    fn times_before_the_epoch_are_negative_like_fuser() {
        assert_eq!(
            epoch_time(UNIX_EPOCH - Duration::new(1, 200_000_000)),
            (-2, 800_000_000)
        );
        assert_eq!(epoch_time(UNIX_EPOCH - Duration::new(3, 0)), (-3, 0));
        assert_eq!(epoch_time(UNIX_EPOCH), (0, 0));
    }

    #[test]
    fn entry_out_layout_matches_the_kernel() {
        let entry = Entry {
            attr: sample_attr(),
            attr_ttl: Duration::new(0, 0),
            entry_ttl: Duration::new(86400, 5),
        };
        let out = entry_out(&entry);
        assert_eq!(u64_of(&out, 0), entry.attr.ino, "nodeid");
        assert_eq!(u64_of(&out, 8), 0, "generation");
        assert_eq!(u64_of(&out, 16), 86400, "entry_valid");
        assert_eq!(u64_of(&out, 24), 0, "attr_valid");
        assert_eq!(u32_of(&out, 32), 5, "entry_valid_nsec");
        assert_eq!(u32_of(&out, 36), 0, "attr_valid_nsec");
        assert_eq!(&out[40..], &fuse_attr(&entry.attr)[..]);
    }

    #[test]
    fn attr_out_layout_matches_the_kernel() {
        let out = attr_out(&sample_attr(), Duration::new(1, 7));
        assert_eq!(u64_of(&out, 0), 1);
        assert_eq!(u32_of(&out, 8), 7);
        assert_eq!(u32_of(&out, 12), 0, "dummy");
        assert_eq!(&out[16..], &fuse_attr(&sample_attr())[..]);
    }

    #[test]
    fn open_and_statfs_layouts_match_the_kernel() {
        let open = open_out(9, 0x21, 0);
        assert_eq!(u64_of(&open, 0), 9);
        assert_eq!(u32_of(&open, 8), 0x21);
        assert_eq!(u32_of(&open, 12), 0, "backing_id");
        let passthrough = open_out(9, 0x21 | FOPEN_PASSTHROUGH, 7);
        assert_eq!(u32_of(&passthrough, 8), 0x21 | FOPEN_PASSTHROUGH);
        assert_eq!(u32_of(&passthrough, 12), 7, "backing_id");

        let statfs = statfs_out(65536, 255);
        assert_eq!(
            &statfs[0..40],
            &[0u8; 40],
            "blocks, bfree, bavail, files, ffree"
        );
        assert_eq!(u32_of(&statfs, 40), 65536, "bsize");
        assert_eq!(u32_of(&statfs, 44), 255, "namelen");
        assert_eq!(u32_of(&statfs, 48), 65536, "frsize");
        assert_eq!(&statfs[52..], &[0u8; 28], "padding, spare");
    }

    #[test]
    fn dirent_record_is_padded_to_eight_bytes() {
        let mut out = [0xffu8; 64];
        assert_eq!(write_dirent(&mut out, 7, 3, 8, b"stat"), Some(32));
        assert_eq!(u64_of(&out, 0), 7);
        assert_eq!(u64_of(&out, 8), 3);
        assert_eq!(u32_of(&out, 16), 4);
        assert_eq!(u32_of(&out, 20), 8);
        assert_eq!(&out[24..28], b"stat");
        assert_eq!(&out[28..32], &[0u8; 4]);
        assert_eq!(out[32], 0xff, "nothing past the record");
        // A name that fills the alignment exactly gets no padding.
        assert_eq!(write_dirent(&mut out, 7, 3, 8, b"eightchr"), Some(32));
    }

    #[test]
    fn dirent_that_does_not_fit_writes_nothing() {
        let mut out = [0xffu8; 31];
        assert_eq!(write_dirent(&mut out, 7, 3, 8, b"stat"), None);
        assert_eq!(out, [0xffu8; 31]);
    }

    #[test]
    fn cmd_req_layout_matches_the_kernel() {
        let cmd = cmd_req(0x1122_3344_5566_7788, 3);
        assert_eq!(u64_of(&cmd, 0), 0, "flags");
        assert_eq!(u64_of(&cmd, 8), 0x1122_3344_5566_7788);
        assert_eq!(u16_at(&cmd, 16), Some(3));
        assert_eq!(&cmd[18..], &[0u8; 62]);
    }
}
