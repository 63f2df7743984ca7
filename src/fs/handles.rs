//! Open files and open directories: the handles the kernel is given, and the snapshot each one reads.

use super::nodes::{DirEntry, Inode};
use cgview_core::failure::Failure;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An open file's snapshot: every read of one open sees one consistent text.
pub type Snapshot = Arc<[u8]>;

/// An open file: what it was opened on and the content its reads are cut from.
#[derive(Debug)]
struct OpenFile {
    inode: Inode,
    content: Snapshot,
    /// Whether a read has been served since the content was made; a later read from offset 0 remakes it.
    read: bool,
}

/// What a read of an open file is cut from.
#[derive(Debug)]
pub(crate) enum NextRead {
    /// The content kept since the open, or since the last read from offset 0.
    Kept(Snapshot),
    /// A read from offset 0 after an earlier read: the content of this inode is to be made afresh (see
    /// [`Fs::read`](super::Fs::read)).
    Remake(Inode),
}

#[derive(Debug)]
pub(crate) struct Handles {
    files: Mutex<HashMap<u64, OpenFile>>,
    dirs: Mutex<HashMap<u64, Arc<[DirEntry]>>>,
    next: AtomicU64,
    /// The first handle this daemon issues. Handles below it were issued by the daemons that served the
    /// connection before this one (see [`Handles::for_generation`]).
    first: u64,
}

impl Default for Handles {
    fn default() -> Handles {
        Handles::for_generation(0)
    }
}

/// Bits of a handle below the daemon generation that issued it: a daemon may issue 2^40 handles.
const GENERATION_SHIFT: u32 = 40;

impl Handles {
    /// Handles of the `generation`th daemon to serve a connection: numbered from `generation << 40`, so
    /// that a handle an earlier daemon gave the kernel (still open in a reader) is never issued again,
    /// and is known as inherited.
    pub fn for_generation(generation: u32) -> Handles {
        let first = (u64::from(generation) << GENERATION_SHIFT).max(1);
        Handles {
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next: AtomicU64::new(first),
            first,
        }
    }

    /// Whether `handle` was issued by an earlier daemon on this connection (never, for the daemon that
    /// mounted it: generation 0).
    pub fn is_inherited(&self, handle: u64) -> bool {
        handle < self.first && self.first > 1
    }

    /// Takes on a file an earlier daemon opened as `handle`, with `content` made now.
    pub fn adopt_file(&self, handle: u64, inode: Inode, content: Snapshot) {
        self.files.lock().entry(handle).or_insert(OpenFile {
            inode,
            content,
            read: false,
        });
    }

    /// Takes on a directory an earlier daemon opened as `handle`, listed now.
    pub fn adopt_dir(&self, handle: u64, entries: Vec<DirEntry>) -> Arc<[DirEntry]> {
        self.dirs
            .lock()
            .entry(handle)
            .or_insert_with(|| entries.into())
            .clone()
    }

    pub fn knows_file(&self, handle: u64) -> bool {
        self.files.lock().contains_key(&handle)
    }

    fn next_handle(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A new handle on `inode`, whose reads are cut from `content` until one from offset 0 follows another.
    pub fn open_file(&self, inode: Inode, content: Snapshot) -> u64 {
        let handle = self.next_handle();
        self.files.lock().insert(
            handle,
            OpenFile {
                inode,
                content,
                read: false,
            },
        );
        handle
    }

    pub fn inode_of(&self, handle: u64) -> Result<Inode, Failure> {
        self.files
            .lock()
            .get(&handle)
            .map(|file| file.inode)
            .ok_or(Failure::BadHandle)
    }

    /// What a read at `offset` is cut from, and marks the file read.
    pub fn next_read(&self, handle: u64, offset: u64) -> Result<NextRead, Failure> {
        let mut files = self.files.lock();
        let file = files.get_mut(&handle).ok_or(Failure::BadHandle)?;
        if offset != 0 || !file.read {
            file.read = true;
            return Ok(NextRead::Kept(file.content.clone()));
        }
        Ok(NextRead::Remake(file.inode))
    }

    /// Later reads of `handle` (if still open) are cut from `content`.
    pub fn replace(&self, handle: u64, content: Snapshot) {
        if let Some(file) = self.files.lock().get_mut(&handle) {
            file.content = content;
        }
    }

    pub fn release_file(&self, handle: u64) {
        self.files.lock().remove(&handle);
    }

    /// A new handle on a directory listing.
    pub fn open_dir(&self, entries: Vec<DirEntry>) -> u64 {
        let handle = self.next_handle();
        self.dirs.lock().insert(handle, entries.into());
        handle
    }

    pub fn dir(&self, handle: u64) -> Result<Arc<[DirEntry]>, Failure> {
        self.dirs
            .lock()
            .get(&handle)
            .cloned()
            .ok_or(Failure::BadHandle)
    }

    pub fn release_dir(&self, handle: u64) {
        self.dirs.lock().remove(&handle);
    }

    /// How many files and directories are open now.
    pub fn count(&self) -> usize {
        self.files.lock().len() + self.dirs.lock().len()
    }
}

/// The part of `snapshot` a read at `offset` of up to `size` bytes returns.
pub fn slice_at(snapshot: &[u8], offset: u64, size: u32) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(snapshot.len());
    let end = start.saturating_add(size as usize).min(snapshot.len());
    &snapshot[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_at_bounds() {
        let data = b"hello";
        assert_eq!(slice_at(data, 0, 2), b"he");
        assert_eq!(slice_at(data, 3, 100), b"lo");
        assert_eq!(slice_at(data, 5, 1), b"");
        assert_eq!(slice_at(data, u64::MAX, u32::MAX), b"");
    }

    #[test]
    fn only_a_successor_takes_on_handles_it_did_not_issue() {
        let first = Handles::for_generation(0);
        assert!(!first.is_inherited(0));
        assert!(!first.is_inherited(1));
        let third = Handles::for_generation(2);
        assert!(third.is_inherited(0));
        assert!(third.is_inherited((2 << 40) - 1));
        assert!(!third.is_inherited(2 << 40));
        let issued = third.open_file(7, Snapshot::from(&b"x"[..]));
        assert_eq!(issued, 2 << 40);
        assert!(!third.is_inherited(issued));
    }
}
