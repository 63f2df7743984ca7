//! Where cgroup files are read from: opened afresh each time, or kept open per container and reread with
//! `pread` (design.md section 4; opening is about 40 % of a small cgroup file's read cost). Kept
//! descriptors are counted against the daemon's [`FdBudget`]: past it, files are read with
//! open-read-close, never refused.

use super::error::{ReadError, WrapPath};
use super::fd_budget::{FdBudget, FdPermit};
use super::kernel_file::{not_text, open_kernel_file, read_kernel_file, read_kernel_text};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::File;
use std::io;
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

/// Opens each file for each read: for one-off renders (`cgview render`), a container's first render and
/// tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenEachTime;

impl FileSource for OpenEachTime {
    fn read_text(&self, path: &Path) -> Result<String, ReadError> {
        read_kernel_text(path).wrap_path(path)
    }
}

/// Most files one container keeps open; beyond it files are read without being kept. A container needs a
/// dozen or two (its own files and its ancestors' limits).
pub const MAX_KERNEL_FILES_PER_CONTAINER: usize = 64;

/// A kept descriptor and its share of the budget.
#[derive(Debug)]
struct KeptFile {
    file: File,
    _permit: FdPermit,
}

/// Files opened once and reread from offset 0 with `pread`. cgroup and procfs files regenerate their
/// content on a read at offset 0, so a kept descriptor always reads current values; a removed cgroup's
/// files fail with `ENODEV`, which callers treat as the cgroup having vanished.
#[derive(Debug)]
pub struct KeptOpen {
    budget: Arc<FdBudget>,
    files: Mutex<HashMap<PathBuf, Arc<KeptFile>>>,
}

impl KeptOpen {
    pub fn new(budget: Arc<FdBudget>) -> KeptOpen {
        KeptOpen {
            budget,
            files: Mutex::new(HashMap::new()),
        }
    }

    fn read_bytes(&self, path: &Path) -> io::Result<Vec<u8>> {
        let kept = self.files.lock().get(path).cloned();
        if let Some(kept) = kept {
            return read_kernel_file(&kept.file);
        }
        let file = open_kernel_file(path)?;
        let room = self.files.lock().len() < MAX_KERNEL_FILES_PER_CONTAINER;
        let Some(permit) = room.then(|| self.budget.try_acquire()).flatten() else {
            // Over budget: this read is open-read-close.
            return read_kernel_file(&file);
        };
        let kept = Arc::new(KeptFile {
            file,
            _permit: permit,
        });
        let bytes = read_kernel_file(&kept.file)?;
        self.files.lock().insert(path.to_owned(), kept);
        Ok(bytes)
    }

    /// How many descriptors are held.
    pub fn len(&self) -> usize {
        self.files.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes every kept descriptor (reads in flight finish on theirs); returns how many were kept.
    pub fn close_all(&self) -> usize {
        let closed = std::mem::take(&mut *self.files.lock());
        closed.len()
    }
}

impl FileSource for KeptOpen {
    fn read_text(&self, path: &Path) -> Result<String, ReadError> {
        let bytes = self.read_bytes(path).wrap_path(path)?;
        String::from_utf8(bytes).map_err(not_text).wrap_path(path)
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
        let files = KeptOpen::new(FdBudget::new(16));
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

    #[test]
    fn a_spent_budget_reads_with_open_read_close_and_closing_gives_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let budget = FdBudget::new(2);
        let files = KeptOpen::new(budget.clone());
        for (i, content) in ["1\n", "2\n", "3\n", "4\n"].iter().enumerate() {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, content).unwrap();
            assert_eq!(files.read_text(&path).unwrap(), *content);
            // A kept file and an open-read-close one read the same, again.
            assert_eq!(files.read_text(&path).unwrap(), *content);
        }
        assert_eq!((files.len(), budget.used()), (2, 2));
        assert!(budget.refused() >= 2);
        let other = KeptOpen::new(budget.clone());
        assert_eq!(other.read_text(&dir.path().join("f0")).unwrap(), "1\n");
        assert!(other.is_empty());
        assert_eq!(files.close_all(), 2);
        assert_eq!(budget.used(), 0);
        assert_eq!(other.read_text(&dir.path().join("f0")).unwrap(), "1\n");
        assert_eq!(other.len(), 1);
    }

    #[test]
    fn content_that_is_not_text_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd");
        std::fs::write(&path, b"\xff\xfe\n").unwrap();
        let files = KeptOpen::new(FdBudget::new(4));
        let error = files.read_text(&path).unwrap_err();
        assert!(error.to_string().contains("odd"), "{error}");
        assert!(OpenEachTime.read_text(&path).is_err());
    }
}
