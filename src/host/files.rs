//! Where cgroup files are read from: opened afresh each time, or kept open per container and reread with
//! `pread` (design.md section 4; opening is about 40 % of a small cgroup file's read cost).

use super::error::{ReadError, WrapPath};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Reads whole kernel-generated text files.
pub trait FileSource: Send + Sync {
    fn read_text(&self, path: &Path) -> Result<String, ReadError>;

    /// Like [`FileSource::read_text`], but a missing file is `Ok(None)`: many cgroup files exist only with
    /// some kernels or controller settings.
    fn read_optional_text(&self, path: &Path) -> Result<Option<String>, ReadError> {
        match self.read_text(path) {
            Ok(text) => Ok(Some(text)),
            Err(ReadError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Opens each file for each read: for one-off renders (`cgview render`) and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenEachTime;

impl FileSource for OpenEachTime {
    fn read_text(&self, path: &Path) -> Result<String, ReadError> {
        std::fs::read_to_string(path).wrap_path(path)
    }
}

/// Most files one container keeps open; beyond it files are read without being kept. A container needs a
/// dozen or two (its own files and its ancestors' limits).
pub const MAX_KEPT_FILES: usize = 64;

/// Files opened once and reread from offset 0 with `pread`. cgroup and procfs files regenerate their
/// content on a read at offset 0, so a kept descriptor always reads current values; a removed cgroup's
/// files fail with `ENODEV`, which callers treat as the cgroup having vanished.
#[derive(Debug, Default)]
pub struct KeptOpen {
    files: Mutex<HashMap<PathBuf, Arc<File>>>,
}

impl KeptOpen {
    fn file(&self, path: &Path) -> Result<Arc<File>, ReadError> {
        if let Some(file) = self.files.lock().get(path) {
            return Ok(file.clone());
        }
        let file = Arc::new(File::open(path).wrap_path(path)?);
        let mut files = self.files.lock();
        if files.len() < MAX_KEPT_FILES {
            files.insert(path.to_owned(), file.clone());
        }
        Ok(file)
    }

    /// How many descriptors are held.
    pub fn len(&self) -> usize {
        self.files.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FileSource for KeptOpen {
    fn read_text(&self, path: &Path) -> Result<String, ReadError> {
        let file = self.file(path)?;
        let bytes = pread_all(&file).wrap_path(path)?;
        String::from_utf8(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            .wrap_path(path)
    }
}

/// The whole content of a kernel file from offset 0.
pub fn pread_all(file: &File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(4096);
    loop {
        if bytes.len() == bytes.capacity() {
            bytes.reserve(bytes.capacity());
        }
        let start = bytes.len();
        let spare = bytes.capacity() - start;
        bytes.resize(start + spare, 0);
        match file.read_at(&mut bytes[start..], start as u64) {
            Ok(0) => {
                bytes.truncate(start);
                return Ok(bytes);
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
    fn kept_open_rereads_current_content_and_reports_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.max");
        std::fs::write(&path, "100\n").unwrap();
        let files = KeptOpen::default();
        assert_eq!(files.read_text(&path).unwrap(), "100\n");
        // Rewritten in place (a kernel file regenerates; a regular file is rewritten through the same inode).
        std::fs::write(&path, "200000\n").unwrap();
        assert_eq!(files.read_text(&path).unwrap(), "200000\n");
        assert_eq!(files.len(), 1);
        assert_eq!(
            files
                .read_optional_text(&dir.path().join("absent"))
                .unwrap(),
            None
        );
        let long = "x".repeat(10_000);
        let long_path = dir.path().join("long");
        std::fs::write(&long_path, &long).unwrap();
        assert_eq!(files.read_text(&long_path).unwrap(), long);
    }
}
