//! The mounted tree as a plain type: inodes, directory listings and per-open snapshots. The FUSE adapter
//! ([`crate::fuse_fs`]) only translates between this and the kernel protocol, so tests call this directly.

use crate::served::ServedFile;
use crate::view::{Rendered, View};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub type Inode = u64;
pub const ROOT_INODE: Inode = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Directory,
    File(ServedFile),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub inode: Inode,
    pub parent: Inode,
    pub name: &'static str,
    pub kind: NodeKind,
}

const fn dir(inode: Inode, parent: Inode, name: &'static str) -> Node {
    Node {
        inode,
        parent,
        name,
        kind: NodeKind::Directory,
    }
}

const fn file(inode: Inode, parent: Inode, name: &'static str, served: ServedFile) -> Node {
    Node {
        inode,
        parent,
        name,
        kind: NodeKind::File(served),
    }
}

/// Names never change, so the tree is a constant. Directory inodes come first, files after.
const NODES: [Node; 11] = [
    dir(ROOT_INODE, ROOT_INODE, ""),
    dir(2, ROOT_INODE, "proc"),
    dir(3, ROOT_INODE, "sys"),
    dir(4, 3, "devices"),
    dir(5, 4, "system"),
    dir(6, 5, "cpu"),
    file(10, 2, "cpuinfo", ServedFile::Cpuinfo),
    file(11, 2, "diskstats", ServedFile::Diskstats),
    file(12, 2, "meminfo", ServedFile::Meminfo),
    file(13, 2, "uptime", ServedFile::Uptime),
    file(14, 6, "online", ServedFile::CpuOnline),
];

/// Errors the tree reports, as errno values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

/// An open file's snapshot: every read of one open sees one consistent text.
pub type Snapshot = Arc<[u8]>;

/// The file system state shared by all workers.
#[derive(Debug)]
pub struct Tree {
    view: Arc<View>,
    open_files: Mutex<HashMap<u64, Snapshot>>,
    next_handle: AtomicU64,
}

impl Tree {
    pub fn new(view: Arc<View>) -> Tree {
        Tree {
            view,
            open_files: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
        }
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    pub fn node(&self, inode: Inode) -> Result<&'static Node, Errno> {
        NODES
            .iter()
            .find(|n| n.inode == inode)
            .ok_or(Errno(libc::ENOENT))
    }

    pub fn lookup(&self, parent: Inode, name: &[u8]) -> Result<&'static Node, Errno> {
        let parent = self.node(parent)?;
        if parent.kind != NodeKind::Directory {
            return Err(Errno(libc::ENOTDIR));
        }
        NODES
            .iter()
            .find(|n| {
                n.parent == parent.inode && n.inode != ROOT_INODE && n.name.as_bytes() == name
            })
            .ok_or(Errno(libc::ENOENT))
    }

    /// The entries of a directory, `.` and `..` first.
    pub fn list(&self, inode: Inode) -> Result<Vec<(Inode, NodeKind, &'static str)>, Errno> {
        let node = self.node(inode)?;
        if node.kind != NodeKind::Directory {
            return Err(Errno(libc::ENOTDIR));
        }
        let mut entries = vec![
            (node.inode, NodeKind::Directory, "."),
            (node.parent, NodeKind::Directory, ".."),
        ];
        entries.extend(
            NODES
                .iter()
                .filter(|n| n.parent == inode && n.inode != ROOT_INODE)
                .map(|n| (n.inode, n.kind, n.name)),
        );
        Ok(entries)
    }

    /// Opens a file for a caller: renders it now and keeps the snapshot until [`Tree::release`].
    pub fn open(&self, inode: Inode, caller: Option<u32>, write: bool) -> Result<u64, Errno> {
        let NodeKind::File(served) = self.node(inode)?.kind else {
            return Err(Errno(libc::EISDIR));
        };
        if write {
            return Err(Errno(libc::EROFS));
        }
        let Rendered { bytes, .. } = self.view.render(served, caller).map_err(|error| {
            tracing::error!(
                "cannot serve {}: {}",
                served.tree_path(),
                crate::view::error_chain(&error)
            );
            Errno(libc::EIO)
        })?;
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.open_files.lock().insert(handle, bytes.into());
        Ok(handle)
    }

    /// The snapshot of an open file; slice it with [`slice_at`].
    pub fn snapshot(&self, handle: u64) -> Result<Snapshot, Errno> {
        self.open_files
            .lock()
            .get(&handle)
            .cloned()
            .ok_or(Errno(libc::EBADF))
    }

    pub fn release(&self, handle: u64) {
        self.open_files.lock().remove(&handle);
    }

    /// How many files are open now.
    pub fn open_count(&self) -> usize {
        self.open_files.lock().len()
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
    fn every_served_file_has_a_node_at_its_tree_path() {
        for served in ServedFile::ALL {
            let mut inode = ROOT_INODE;
            for part in served.tree_path().split('/') {
                inode = NODES
                    .iter()
                    .find(|n| n.parent == inode && n.inode != ROOT_INODE && n.name == part)
                    .unwrap_or_else(|| panic!("no node for {part} of {}", served.tree_path()))
                    .inode;
            }
            let node = NODES.iter().find(|n| n.inode == inode).unwrap();
            assert_eq!(node.kind, NodeKind::File(served));
        }
    }

    #[test]
    fn inodes_are_unique() {
        let mut inodes: Vec<_> = NODES.iter().map(|n| n.inode).collect();
        inodes.sort_unstable();
        inodes.dedup();
        assert_eq!(inodes.len(), NODES.len());
    }
}
