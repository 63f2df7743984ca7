//! How every OPEN is answered, whichever transport carries it: its `FOPEN_*` flags, and the backing file
//! that makes `mmap(2)` of a served file fail.

use crate::host::kernel_file::open_kernel_file;
use crate::host::paths::HostPaths;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::OnceLock;

/// `FOPEN_DIRECT_IO` (`include/uapi/linux/fuse.h`): reads bypass the page cache.
pub const FOPEN_DIRECT_IO: u32 = 1 << 0;
/// `FOPEN_NOFLUSH`: no FLUSH on close.
pub const FOPEN_NOFLUSH: u32 = 1 << 5;
/// `FOPEN_PASSTHROUGH`: the open is backed by the file the reply names.
pub const FOPEN_PASSTHROUGH: u32 = 1 << 7;

/// Every open file is read past the page cache (per-caller content) and needs no FLUSH.
pub const OPEN_FLAGS: u32 = FOPEN_DIRECT_IO | FOPEN_NOFLUSH;

/// sysfs's `f_type`: a sysfs attribute is what [`MmapRefusal`] maps onto.
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// The sysfs attribute every open is backed by (see [`MmapRefusal`]): present on every Linux system, and
/// without an `mmap` of its own.
const MMAP_REFUSING_ATTRIBUTE: &str = "devices/system/cpu/online";

/// The backing file to name in every OPEN reply, so that `mmap(2)` of any file here fails as it does on
/// procfs and sysfs, instead of mapping and then killing the reader with `SIGBUS` at the first access
/// (the page-cache fill of a per-caller file is refused, see [`Fs::read`](super::Fs::read)).
///
/// `direct_io` alone refuses only shared mappings (`ENODEV`, as cgview never asks for
/// `FUSE_DIRECT_IO_ALLOW_MMAP`); the kernel maps a private one from the page cache. An open that is also
/// `FOPEN_PASSTHROUGH` (Linux 6.9+, negotiated at INIT) still reads from the daemon, since `direct_io`
/// wins for reads and writes, but is mapped by its backing file's `mmap`. Backed by a sysfs attribute,
/// which has none, every `mmap(2)` fails with `ENODEV`, sysfs's own answer (procfs answers `EIO`; procfs
/// cannot back a FUSE file, the kernel refuses to stack on it). Every open of every file names this one
/// backing file, as the kernel requires of all opens of an inode while one is open in passthrough mode.
/// The kernel keeps a reference to it for the life of the connection; the daemon keeps no descriptor.
#[derive(Debug, Default)]
pub(crate) struct MmapRefusal {
    /// The backing file id every open names, once registered; `None` if it could not be.
    id: OnceLock<Option<u32>>,
}

impl MmapRefusal {
    /// The backing file an earlier daemon of the connection registered (`Some(id)`), or found it could
    /// not (`None`): the kernel keeps it for the connection, and every open of an inode must name the
    /// same one while another is open, so a successor names it too instead of registering its own.
    pub fn inherited(id: Option<u32>) -> MmapRefusal {
        let refusal = MmapRefusal::default();
        let _ = refusal.id.set(id);
        refusal
    }

    /// The backing file id to name, registering it on the first call. `register` hands an open file to
    /// the kernel (`FUSE_DEV_IOC_BACKING_OPEN`) and returns its id. When it fails (a kernel without
    /// passthrough, or a sys root that is not sysfs) opens are plain `direct_io`, and a private mapping
    /// maps as before.
    pub fn backing_id(
        &self,
        paths: &HostPaths,
        register: impl FnOnce(BorrowedFd<'_>) -> io::Result<u32>,
    ) -> Option<u32> {
        *self.id.get_or_init(|| {
            let path = paths.sys_file(MMAP_REFUSING_ATTRIBUTE);
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
}
