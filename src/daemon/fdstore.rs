//! systemd's file descriptor store (`sd_pid_notify_with_fds(3)`, `FileDescriptorStoreMax=`): under the
//! unit, the service manager is the connection's keeper. The daemon stores the live `/dev/fuse`
//! descriptor and its [`Handover`] record (in a memfd) with `FDSTORE=1`; systemd keeps both across a
//! crash and `systemctl restart` and passes them to the next daemon (`$LISTEN_FDS`, `$LISTEN_FDNAMES`).
//! A `systemctl stop` empties the store: the connection then ends as without a keeper.

use super::holder::Resumed;
use super::notify::notify_with_fd;
use cgview_core::handover::Handover;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

const FUSE_NAME: &str = "cgview-fuse";
const RECORD_NAME: &str = "cgview-handover";
/// `SD_LISTEN_FDS_START`: passed descriptors start here.
const LISTEN_FDS_START: i32 = 3;

/// Whether the service manager offers a descriptor store to this process (`$FDSTORE` is set, to the
/// store's size, when the unit has `FileDescriptorStoreMax=`).
pub fn offered() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
        && std::env::var("FDSTORE")
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 2)
}

/// The connection systemd passed back to this process, if it did. The descriptors it passed are taken
/// over (and the `LISTEN_*` variables removed, so that no child takes them for its own).
pub fn take_stored() -> io::Result<Option<Resumed>> {
    let for_this_process = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    for variable in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(variable);
    }
    if !for_this_process || count <= 0 {
        return Ok(None);
    }
    let mut device = None;
    let mut record = None;
    for (index, name) in names.split(':').enumerate().take(count as usize) {
        let raw = LISTEN_FDS_START + index as i32;
        // SAFETY: the service manager passed descriptors LISTEN_FDS_START.. to this process
        // ($LISTEN_PID is ours) and nothing in it has taken them: this is their one owner. Each
        // index is taken once.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        match name {
            FUSE_NAME => device = Some(fd),
            RECORD_NAME => record = Some(read_record(fd.as_fd())?),
            // Someone else's; closed.
            _ => drop(fd),
        }
    }
    match (device, record) {
        (Some(device), Some(record)) => Ok(Some(Resumed {
            device,
            record: record.successor(),
            live: false,
        })),
        (Some(_), None) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "systemd passed the FUSE connection without its handover record",
        )),
        _ => Ok(None),
    }
}

fn read_record(fd: BorrowedFd<'_>) -> io::Result<Handover> {
    let mut buffer = [0u8; 4096];
    let len = rustix::io::pread(fd, &mut buffer, 0)?;
    let text = std::str::from_utf8(&buffer[..len])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Handover::decode(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Stores the connection and this daemon's record with the service manager, replacing an earlier
/// daemon's record.
pub fn store(device: BorrowedFd<'_>, record: &Handover) -> io::Result<()> {
    let memfd = rustix::fs::memfd_create(RECORD_NAME, rustix::fs::MemfdFlags::CLOEXEC)?;
    rustix::io::write(&memfd, record.encode().as_bytes())?;
    notify_with_fd(&format!("FDSTOREREMOVE=1\nFDNAME={RECORD_NAME}\n"), None)?;
    notify_with_fd(&format!("FDSTORE=1\nFDNAME={FUSE_NAME}\n"), Some(device))?;
    notify_with_fd(
        &format!("FDSTORE=1\nFDNAME={RECORD_NAME}\n"),
        Some(memfd.as_fd()),
    )
}
