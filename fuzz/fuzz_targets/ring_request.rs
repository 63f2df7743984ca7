#![no_main]
//! Fuzzes the FUSE-over-io_uring request decoder (`cgview::transport::ring::answer`) with arbitrary header and
//! payload bytes, answering from the real operations over a fake host (see `fake_host`). Every request
//! gets exactly one well-formed reply: the commit id it came with, its own `unique`, an errno the kernel
//! accepts, a payload that fits the buffer and is empty on error, and the reply size each operation
//! defines. No reply carries the marker outside the sys root, and no handle outlives the input.
//!
//! Input: a sequence of requests. Each overwrites the kernel's header fields (in header, first argument,
//! commit id, payload size) on a buffer of stale bytes, now and then a short buffer; opcodes, node ids,
//! handles and callers are often picked among real ones so that sequences such as LOOKUP, OPEN, READ,
//! RELEASE happen.

mod fake_host;

use cgview::fs::Fs;
use cgview::transport::ring::{answer, MIN_PAYLOAD_LEN, REQ_HEADER_LEN};
use fake_host::{mounted, CONTAINER_PID, HOST_PID, OUTSIDE_MARKER};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const MAX_REQUESTS: usize = 16;

// `enum fuse_opcode` (include/uapi/linux/fuse.h).
const LOOKUP: u32 = 1;
const GETATTR: u32 = 3;
const READLINK: u32 = 5;
const OPEN: u32 = 14;
const READ: u32 = 15;
const STATFS: u32 = 17;
const RELEASE: u32 = 18;
const OPENDIR: u32 = 27;
const READDIR: u32 = 28;
const RELEASEDIR: u32 = 29;
const ACCESS: u32 = 34;
const IOCTL: u32 = 39;
const OPCODES: &[u32] = &[
    LOOKUP, 2, GETATTR, 4, READLINK, 6, 13, OPEN, READ, 16, STATFS, RELEASE, 22, 23, 25, 26,
    OPENDIR, READDIR, RELEASEDIR, ACCESS, 36, 38, IOCTL, 42, 44, 51,
];
const NAMES: &[&str] = &[
    "proc",
    "sys",
    "devices",
    "system",
    "cpu",
    "block",
    "vda",
    "vda1",
    "stat",
    "device",
    "escape",
    "evil",
    "cpu0",
    "cpu1",
    "online",
    "meminfo",
    "cpuinfo",
    "uptime",
    "diskstats",
    "loadavg",
    "swaps",
    "pressure",
    "..",
    ".",
    "",
];

// Offsets in `struct fuse_uring_req_header`: in/out header, first argument, `fuse_uring_ent_in_out`.
const OP_IN: usize = 128;
const COMMIT_ID: usize = 264;
const PAYLOAD_SZ: usize = 272;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn put(buffer: &mut [u8], at: usize, bytes: &[u8]) {
    let end = (at + bytes.len()).min(buffer.len());
    if at < end {
        buffer[at..end].copy_from_slice(&bytes[..end - at]);
    }
}

/// Handles and inodes this input has been given, to aim later requests at.
#[derive(Default)]
struct Session {
    inodes: Vec<u64>,
    files: Vec<u64>,
    dirs: Vec<u64>,
}

fn request(ops: &Fs, session: &mut Session, u: &mut Unstructured) -> Result<()> {
    let header_len = if u.ratio(1, 16)? {
        u.int_in_range(0..=REQ_HEADER_LEN - 1)?
    } else {
        REQ_HEADER_LEN
    };
    // The kernel leaves the bytes of an earlier request wherever this one writes none.
    let mut header = vec![0x2a; header_len];
    put(&mut header, 0, &u.arbitrary::<[u8; 40]>()?);
    let opcode = match u.arbitrary::<bool>()? {
        true => *u.choose(OPCODES)?,
        false => u.arbitrary()?,
    };
    put(&mut header, 4, &opcode.to_ne_bytes());
    if u.arbitrary::<bool>()? {
        let inode = *u.choose(&session.inodes)?;
        put(&mut header, 16, &inode.to_ne_bytes());
    }
    let pid = match u.int_in_range(0..=3u8)? {
        0 => 0,
        1 => CONTAINER_PID,
        2 => HOST_PID,
        _ => u.arbitrary()?,
    };
    put(&mut header, 32, &pid.to_ne_bytes());
    let op_in_len = u.int_in_range(0..=40usize)?;
    put(&mut header, OP_IN, u.bytes(op_in_len)?);
    let handles = match opcode {
        READ | RELEASE => Some(&session.files),
        READDIR | RELEASEDIR => Some(&session.dirs),
        _ => None,
    };
    if let Some(handles) = handles.filter(|h| !h.is_empty()) {
        if u.arbitrary()? {
            let fh = *u.choose(handles)?;
            put(&mut header, OP_IN, &fh.to_ne_bytes());
        }
    }
    let commit_id: u64 = u.arbitrary()?;
    put(&mut header, COMMIT_ID, &commit_id.to_ne_bytes());

    let payload_len = if u.ratio(1, 8)? {
        u.int_in_range(0..=256usize)?
    } else {
        MIN_PAYLOAD_LEN
    };
    let mut payload = vec![0x2a; payload_len];
    let written = if opcode == LOOKUP && u.arbitrary()? {
        let name = format!("{}\0", u.choose(NAMES)?);
        put(&mut payload, 0, name.as_bytes());
        name.len() as u32
    } else {
        let bytes = u.arbitrary::<&[u8]>()?;
        put(&mut payload, 0, bytes);
        bytes.len() as u32
    };
    let payload_sz = if u.arbitrary()? {
        written
    } else {
        u.arbitrary()?
    };
    put(&mut header, PAYLOAD_SZ, &payload_sz.to_ne_bytes());
    let sent = header.clone();

    // Not a FUSE device: registering the mmap-refusing backing file fails, and opens are plain, as in
    // the dispatcher's unit tests.
    static NOT_A_FUSE_DEVICE: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
    let device = NOT_A_FUSE_DEVICE.get_or_init(|| std::fs::File::open("/dev/null").unwrap());
    let commit = answer(
        ops,
        std::os::fd::AsFd::as_fd(device),
        &mut header,
        &mut payload,
    );

    if header_len < REQ_HEADER_LEN {
        return Ok(());
    }
    assert_eq!(commit, commit_id, "the reply commits another request");
    let unique = u64_at(&sent, 8);
    assert_eq!(
        u64_at(&header, 8),
        unique,
        "the reply names another request"
    );
    let error = u32_at(&header, 4) as i32;
    assert!(
        (-511..=0).contains(&error),
        "errno {error} for opcode {opcode}"
    );
    let reply_len = u32_at(&header, PAYLOAD_SZ) as usize;
    assert_eq!(u32_at(&header, 0) as usize, reply_len + 16);
    assert!(
        reply_len <= payload.len(),
        "{reply_len} bytes in a {} byte buffer",
        payload.len()
    );
    if error != 0 {
        assert_eq!(reply_len, 0, "an error reply with a payload");
        return Ok(());
    }
    let reply = &payload[..reply_len];
    let text = String::from_utf8_lossy(reply);
    assert!(
        !text.contains(OUTSIDE_MARKER),
        "a reply from outside the sys root: {text}"
    );
    let requested = || u32_at(&sent, OP_IN + 16) as usize;
    match opcode {
        LOOKUP => {
            assert_eq!(reply_len, 128, "fuse_entry_out");
            session.inodes.push(u64_at(reply, 0));
        }
        GETATTR => assert_eq!(reply_len, 104, "fuse_attr_out"),
        OPEN | OPENDIR => {
            assert_eq!(reply_len, 16, "fuse_open_out");
            let fh = u64_at(reply, 0);
            if opcode == OPEN {
                &mut session.files
            } else {
                &mut session.dirs
            }
            .push(fh);
        }
        READ => assert!(
            reply_len <= requested(),
            "{reply_len} bytes for a read of {}",
            requested()
        ),
        READDIR => {
            assert!(reply_len <= requested());
            assert_eq!(reply_len % 8, 0, "dirents are 8-byte aligned");
        }
        STATFS => assert_eq!(reply_len, 80, "fuse_statfs_out"),
        RELEASE | RELEASEDIR | ACCESS => assert_eq!(reply_len, 0),
        READLINK => assert!(!reply.is_empty()),
        _ => {}
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mounted = mounted();
    let ops = &mounted.fs;
    let mut session = Session {
        inodes: vec![1],
        ..Session::default()
    };
    let mut u = Unstructured::new(data);
    for _ in 0..MAX_REQUESTS {
        if u.is_empty() || request(ops, &mut session, &mut u).is_err() {
            break;
        }
    }
    for fh in session.files {
        ops.release(fh);
    }
    for fh in session.dirs {
        ops.releasedir(fh);
    }
    assert_eq!(
        mounted.fs.open_count(),
        0,
        "a handle outlived the input's releases"
    );
});
