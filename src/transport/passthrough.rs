//! Registering a backing file with a FUSE connection (`FUSE_DEV_IOC_BACKING_OPEN`), for the transports
//! that answer OPEN without a `fuser` reply ([`ring`](crate::transport::ring)). The ioctl is fuser's: the
//! ring names this module, not the `fuser` adapter.

use std::io;
use std::os::fd::BorrowedFd;

/// Registers `file` as a backing file of the connection `device` (a `/dev/fuse` descriptor) and returns
/// its id, which stays registered for the life of the connection.
pub fn register_backing_file(device: BorrowedFd<'_>, file: BorrowedFd<'_>) -> io::Result<u32> {
    fuser::BackingId::create_raw(device, file)
}
