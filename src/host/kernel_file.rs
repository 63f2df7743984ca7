//! Reading the kernel's text files (procfs, sysfs, cgroupfs) without trusting them.
//!
//! The roots are injectable and a host's files may be odd, so every read here is bounded and cannot block:
//! files are opened `O_NONBLOCK`, anything that is not a regular file (a FIFO, a device such as
//! `/dev/zero`, a socket) is refused before a byte is read, and no file is read past
//! [`MAX_KERNEL_FILE_BYTES`]. procfs, sysfs and cgroupfs files are all regular files.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Largest kernel file read. The largest real ones are `cpuinfo` (about 1.5 KiB per CPU: 1.5 MiB on a
/// 1,024-CPU host) and `mountinfo` of a namespace with many mounts.
pub const MAX_KERNEL_FILE_BYTES: usize = 8 << 20;

/// Opens a kernel file for reading, refusing what is not a regular file.
pub fn open_kernel_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// The whole content of an open kernel file, read from offset 0 (which regenerates procfs and cgroupfs
/// files), at most [`MAX_KERNEL_FILE_BYTES`].
pub fn read_kernel_file(file: &File) -> io::Result<Vec<u8>> {
    read_capped(file, MAX_KERNEL_FILE_BYTES)
}

/// Opens, reads and closes a kernel file.
pub fn read_kernel_bytes(path: &Path) -> io::Result<Vec<u8>> {
    read_kernel_file(&open_kernel_file(path)?)
}

/// The content of `path` as text; content that is not UTF-8 is an `InvalidData` error.
pub fn read_kernel_text(path: &Path) -> io::Result<String> {
    String::from_utf8(read_kernel_bytes(path)?).map_err(not_text)
}

/// The error for kernel content that is not UTF-8.
pub fn not_text(error: std::string::FromUtf8Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.utf8_error())
}

/// At most the first `cap` bytes of an open kernel file, from offset 0 (for files served as they are,
/// where a prefix is still useful).
pub fn read_kernel_prefix(file: &File, cap: usize) -> io::Result<Vec<u8>> {
    read_up_to(file, cap).map(|(bytes, _)| bytes)
}

fn read_capped(file: &File, cap: usize) -> io::Result<Vec<u8>> {
    match read_up_to(file, cap)? {
        (_, true) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {cap} bytes"),
        )),
        (bytes, false) => Ok(bytes),
    }
}

/// The first `cap` bytes of an open file from offset 0, and whether more follow.
fn read_up_to(file: &File, cap: usize) -> io::Result<(Vec<u8>, bool)> {
    let mut bytes = Vec::with_capacity(4096.min(cap + 1));
    loop {
        // One byte more than the cap is read: it tells a file of exactly `cap` bytes from a longer one.
        if bytes.len() > cap {
            bytes.truncate(cap);
            return Ok((bytes, true));
        }
        let start = bytes.len();
        if start == bytes.capacity() {
            bytes.reserve(start.min(cap + 1 - start));
        }
        let room = (bytes.capacity() - start).min(cap + 1 - start);
        bytes.resize(start + room, 0);
        match file.read_at(&mut bytes[start..], start as u64) {
            Ok(0) => {
                bytes.truncate(start);
                return Ok((bytes, false));
            }
            Ok(n) => bytes.truncate(start + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => bytes.truncate(start),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_kernel_file_reads_whole_files_and_refuses_larger_than_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let text = "x".repeat(10_000);
        std::fs::write(&path, &text).unwrap();
        let file = open_kernel_file(&path).unwrap();
        assert_eq!(read_kernel_file(&file).unwrap(), text.as_bytes());
        assert_eq!(read_capped(&file, 10_000).unwrap().len(), 10_000);
        assert!(read_capped(&file, 9_999).is_err());
        assert_eq!(read_kernel_prefix(&file, 9_999).unwrap().len(), 9_999);
        assert_eq!(read_kernel_prefix(&file, 20_000).unwrap().len(), 10_000);
        assert_eq!(
            read_capped(&file, 0).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        std::fs::write(&path, "").unwrap();
        assert!(read_kernel_file(&file).unwrap().is_empty());
    }

    #[test]
    fn open_kernel_file_refuses_fifos_and_devices_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // A blocking open of a FIFO with no writer would hang this test forever.
        let error = open_kernel_file(&fifo).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(open_kernel_file(Path::new("/dev/zero")).is_err());
        assert!(open_kernel_file(dir.path()).is_err());
    }

    #[test]
    fn read_kernel_text_reports_bytes_that_are_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"MemTotal: \xff\xfe kB\n").unwrap();
        assert_eq!(
            read_kernel_text(&path).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            read_kernel_bytes(&path).unwrap(),
            b"MemTotal: \xff\xfe kB\n"
        );
    }
}
