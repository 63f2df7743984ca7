//! The mounted tree as a plain type: inodes, directory listings and per-open snapshots. The FUSE adapter
//! ([`crate::fuse_fs`]) only translates between this and the kernel protocol, so tests call this directly.
//!
//! Most of the tree is a constant table. `sys/devices/system/cpu` is the exception: it mirrors the host's
//! directory (files, directories and symlinks, to any depth) with the four CPU lists replaced by served
//! files and `cpuN` listed only for the caller's visible CPUs.

use crate::parse::cpuset::CpuSet;
use crate::served::ServedFile;
use crate::view::{Rendered, View};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub type Inode = u64;
pub const ROOT_INODE: Inode = 1;
/// `sys/devices/system/cpu`, the mirrored directory.
const CPU_DIR_INODE: Inode = 6;
/// Mirrored entries get inodes from here up, in the order they are first looked up.
const FIRST_MIRROR_INODE: Inode = 1000;
/// Largest host file passed through (sysfs attributes are at most a page; this is generous).
const MAX_PASSTHROUGH_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Directory,
    File(ServedFile),
    /// An entry below the host's `/sys/devices/system/cpu`, passed through.
    HostDirectory,
    HostFile,
    HostSymlink,
}

impl NodeKind {
    pub fn is_directory(self) -> bool {
        matches!(self, NodeKind::Directory | NodeKind::HostDirectory)
    }
}

/// A node as the kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub inode: Inode,
    pub kind: NodeKind,
    /// Permission bits.
    pub mode: u16,
}

/// How long the kernel may cache a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameLifetime {
    /// The name exists for every caller.
    Stable,
    /// Whether the name exists depends on the caller (`cpuN`): the kernel must ask again every time.
    PerCaller,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub inode: Inode,
    pub kind: NodeKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StaticNode {
    inode: Inode,
    parent: Inode,
    name: &'static str,
    kind: NodeKind,
}

const fn dir(inode: Inode, parent: Inode, name: &'static str) -> StaticNode {
    StaticNode {
        inode,
        parent,
        name,
        kind: NodeKind::Directory,
    }
}

const fn file(inode: Inode, parent: Inode, name: &'static str, served: ServedFile) -> StaticNode {
    StaticNode {
        inode,
        parent,
        name,
        kind: NodeKind::File(served),
    }
}

/// Names never change, so this part of the tree is a constant.
const NODES: [StaticNode; 22] = [
    dir(ROOT_INODE, ROOT_INODE, ""),
    dir(2, ROOT_INODE, "proc"),
    dir(3, ROOT_INODE, "sys"),
    dir(4, 3, "devices"),
    dir(5, 4, "system"),
    dir(CPU_DIR_INODE, 5, "cpu"),
    dir(7, 2, "pressure"),
    file(10, 2, "cpuinfo", ServedFile::Cpuinfo),
    file(11, 2, "diskstats", ServedFile::Diskstats),
    file(12, 2, "meminfo", ServedFile::Meminfo),
    file(13, 2, "uptime", ServedFile::Uptime),
    file(14, CPU_DIR_INODE, "online", ServedFile::CpuOnline),
    file(15, 2, "stat", ServedFile::Stat),
    file(16, 2, "swaps", ServedFile::Swaps),
    file(17, 2, "loadavg", ServedFile::Loadavg),
    file(18, 2, "slabinfo", ServedFile::Slabinfo),
    file(19, 7, "cpu", ServedFile::PressureCpu),
    file(20, 7, "memory", ServedFile::PressureMemory),
    file(21, 7, "io", ServedFile::PressureIo),
    file(22, CPU_DIR_INODE, "present", ServedFile::CpuPresent),
    file(23, CPU_DIR_INODE, "possible", ServedFile::CpuPossible),
    file(24, CPU_DIR_INODE, "offline", ServedFile::CpuOffline),
];

/// Errors the tree reports, as errno values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    fn from_io(error: &std::io::Error) -> Errno {
        Errno(error.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// An open file's snapshot: every read of one open sees one consistent text.
pub type Snapshot = Arc<[u8]>;

/// Mirrored host entries, numbered on first sight. Bounded by the size of the host's cpu directory.
#[derive(Debug, Default)]
struct Mirror {
    by_path: HashMap<PathBuf, Inode>,
    /// Index `inode - FIRST_MIRROR_INODE`: the path relative to the host's cpu directory.
    paths: Vec<PathBuf>,
}

impl Mirror {
    fn inode_for(&mut self, relative: &Path) -> Inode {
        if let Some(&inode) = self.by_path.get(relative) {
            return inode;
        }
        let inode = FIRST_MIRROR_INODE + self.paths.len() as Inode;
        self.paths.push(relative.to_owned());
        self.by_path.insert(relative.to_owned(), inode);
        inode
    }

    fn path_of(&self, inode: Inode) -> Option<&Path> {
        let index = inode.checked_sub(FIRST_MIRROR_INODE)?;
        self.paths
            .get(usize::try_from(index).ok()?)
            .map(PathBuf::as_path)
    }
}

/// The file system state shared by all workers.
#[derive(Debug)]
pub struct Tree {
    view: Arc<View>,
    /// Served files whose host file is missing (no PSI in this kernel): left out of the tree.
    absent: Vec<ServedFile>,
    host_cpu_dir: PathBuf,
    mirror: Mutex<Mirror>,
    open_files: Mutex<HashMap<u64, Snapshot>>,
    open_dirs: Mutex<HashMap<u64, Arc<[DirEntry]>>>,
    next_handle: AtomicU64,
}

impl Tree {
    pub fn new(view: Arc<View>) -> Tree {
        let paths = view.resolver().paths();
        let absent = ServedFile::ALL
            .into_iter()
            .filter(|f| f.host_may_lack() && !f.host_path(paths).exists())
            .collect();
        let host_cpu_dir = paths.sys_file("devices/system/cpu");
        Tree {
            view,
            absent,
            host_cpu_dir,
            mirror: Mutex::new(Mirror::default()),
            open_files: Mutex::new(HashMap::new()),
            open_dirs: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
        }
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    fn static_node(&self, inode: Inode) -> Option<&'static StaticNode> {
        NODES
            .iter()
            .find(|n| n.inode == inode)
            .filter(|n| match n.kind {
                NodeKind::File(served) => !self.absent.contains(&served),
                _ => true,
            })
    }

    /// The attributes of an inode.
    pub fn node(&self, inode: Inode) -> Result<Node, Errno> {
        if let Some(node) = self.static_node(inode) {
            return Ok(static_to_node(node));
        }
        let relative = self.mirrored_path(inode)?;
        let metadata = std::fs::symlink_metadata(self.host_cpu_dir.join(&relative))
            .map_err(|e| Errno::from_io(&e))?;
        mirrored_node(inode, &metadata)
    }

    fn mirrored_path(&self, inode: Inode) -> Result<PathBuf, Errno> {
        self.mirror
            .lock()
            .path_of(inode)
            .map(Path::to_owned)
            .ok_or(Errno(libc::ENOENT))
    }

    /// The host path behind a directory that mirrors the host (`None` for the purely static ones).
    fn mirrored_dir(&self, inode: Inode) -> Result<Option<PathBuf>, Errno> {
        if inode == CPU_DIR_INODE {
            return Ok(Some(PathBuf::new()));
        }
        if self.static_node(inode).is_some() {
            return Ok(None);
        }
        self.mirrored_path(inode).map(Some)
    }

    /// Looks `name` up in directory `parent` for `caller`.
    pub fn lookup(
        &self,
        parent: Inode,
        name: &[u8],
        caller: Option<u32>,
    ) -> Result<(Node, NameLifetime), Errno> {
        let parent_node = self.node(parent)?;
        if !parent_node.kind.is_directory() {
            return Err(Errno(libc::ENOTDIR));
        }
        if let Some(node) = NODES
            .iter()
            .find(|n| n.parent == parent && n.inode != ROOT_INODE && n.name.as_bytes() == name)
        {
            return match self.static_node(node.inode) {
                Some(node) => Ok((static_to_node(node), NameLifetime::Stable)),
                None => Err(Errno(libc::ENOENT)),
            };
        }
        let Some(parent_relative) = self.mirrored_dir(parent)? else {
            return Err(Errno(libc::ENOENT));
        };
        let name = std::str::from_utf8(name).map_err(|_| Errno(libc::ENOENT))?;
        if name.contains('/') || name == "." || name == ".." {
            return Err(Errno(libc::ENOENT));
        }
        let mut lifetime = NameLifetime::Stable;
        if parent == CPU_DIR_INODE {
            if let Some(id) = cpu_entry_id(name) {
                lifetime = NameLifetime::PerCaller;
                if !self.visible_cpus(caller).is_none_or(|v| v.contains(id)) {
                    return Err(Errno(libc::ENOENT));
                }
            }
        }
        let relative = parent_relative.join(name);
        let metadata = std::fs::symlink_metadata(self.host_cpu_dir.join(&relative))
            .map_err(|e| Errno::from_io(&e))?;
        let inode = self.mirror.lock().inode_for(&relative);
        Ok((mirrored_node(inode, &metadata)?, lifetime))
    }

    /// The caller's visible CPUs; `None` when it sees all of the host's.
    fn visible_cpus(&self, caller: Option<u32>) -> Option<CpuSet> {
        caller.and_then(|tid| self.view.visible_cpus(tid))
    }

    /// The entries of a directory for `caller`, `.` and `..` first.
    pub fn list(&self, inode: Inode, caller: Option<u32>) -> Result<Vec<DirEntry>, Errno> {
        let node = self.node(inode)?;
        if !node.kind.is_directory() {
            return Err(Errno(libc::ENOTDIR));
        }
        let parent = match NODES.iter().find(|n| n.inode == inode) {
            Some(n) => n.parent,
            None => {
                let relative = self.mirrored_path(inode)?;
                match relative.parent().filter(|p| !p.as_os_str().is_empty()) {
                    Some(parent) => self.mirror.lock().inode_for(parent),
                    None => CPU_DIR_INODE,
                }
            }
        };
        let mut entries = vec![
            DirEntry {
                inode,
                kind: NodeKind::Directory,
                name: ".".into(),
            },
            DirEntry {
                inode: parent,
                kind: NodeKind::Directory,
                name: "..".into(),
            },
        ];
        entries.extend(
            NODES
                .iter()
                .filter(|n| n.parent == inode && n.inode != ROOT_INODE)
                .filter_map(|n| self.static_node(n.inode))
                .map(|n| DirEntry {
                    inode: n.inode,
                    kind: n.kind,
                    name: n.name.to_owned(),
                }),
        );
        if let Some(relative) = self.mirrored_dir(inode)? {
            let visible = (inode == CPU_DIR_INODE)
                .then(|| self.visible_cpus(caller))
                .flatten();
            entries.extend(self.list_host(inode, &relative, visible.as_ref())?);
        }
        Ok(entries)
    }

    fn list_host(
        &self,
        inode: Inode,
        relative: &Path,
        visible: Option<&CpuSet>,
    ) -> Result<Vec<DirEntry>, Errno> {
        let host_dir = self.host_cpu_dir.join(relative);
        let read_dir = std::fs::read_dir(&host_dir).map_err(|e| Errno::from_io(&e))?;
        let mut names: Vec<(String, std::fs::FileType)> = read_dir
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.file_type().ok()?)))
            .collect();
        // Host order is the file system's; sorted output is stable across calls and callers.
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let mut mirror = self.mirror.lock();
        Ok(names
            .into_iter()
            .filter(|(name, _)| {
                inode != CPU_DIR_INODE
                    || (!NODES
                        .iter()
                        .any(|n| n.parent == CPU_DIR_INODE && n.name == name)
                        && cpu_entry_id(name)
                            .is_none_or(|id| visible.is_none_or(|v| v.contains(id))))
            })
            .map(|(name, file_type)| {
                let kind = if file_type.is_dir() {
                    NodeKind::HostDirectory
                } else if file_type.is_symlink() {
                    NodeKind::HostSymlink
                } else {
                    NodeKind::HostFile
                };
                let inode = mirror.inode_for(&relative.join(&name));
                DirEntry { inode, kind, name }
            })
            .collect())
    }

    /// The target of a mirrored symlink, verbatim: relative targets resolve inside the container's `/sys`
    /// just as on the host.
    pub fn readlink(&self, inode: Inode) -> Result<PathBuf, Errno> {
        if self.static_node(inode).is_some() {
            return Err(Errno(libc::EINVAL));
        }
        let relative = self.mirrored_path(inode)?;
        std::fs::read_link(self.host_cpu_dir.join(relative)).map_err(|e| Errno::from_io(&e))
    }

    /// Opens a file for a caller: renders it now and keeps the snapshot until [`Tree::release`].
    pub fn open(&self, inode: Inode, caller: Option<u32>, write: bool) -> Result<u64, Errno> {
        let node = self.node(inode)?;
        if node.kind.is_directory() {
            return Err(Errno(libc::EISDIR));
        }
        if write {
            return Err(Errno(libc::EROFS));
        }
        let bytes = match node.kind {
            NodeKind::File(served) => self.render(served, caller)?,
            _ => self.read_host(inode)?,
        };
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.open_files.lock().insert(handle, bytes.into());
        Ok(handle)
    }

    fn render(&self, served: ServedFile, caller: Option<u32>) -> Result<Vec<u8>, Errno> {
        let Rendered { bytes, .. } = self.view.render(served, caller).map_err(|error| {
            tracing::error!(
                "cannot serve {}: {}",
                served.tree_path(),
                crate::view::error_chain(&error)
            );
            Errno(libc::EIO)
        })?;
        Ok(bytes)
    }

    fn read_host(&self, inode: Inode) -> Result<Vec<u8>, Errno> {
        let relative = self.mirrored_path(inode)?;
        let file = std::fs::File::open(self.host_cpu_dir.join(relative))
            .map_err(|e| Errno::from_io(&e))?;
        let mut bytes = Vec::new();
        file.take(MAX_PASSTHROUGH_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| Errno::from_io(&e))?;
        Ok(bytes)
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

    /// Opens a directory: its listing for this caller is fixed now, so a listing read in several
    /// `readdir` calls is consistent.
    pub fn open_dir(&self, inode: Inode, caller: Option<u32>) -> Result<u64, Errno> {
        let entries = self.list(inode, caller)?;
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.open_dirs.lock().insert(handle, entries.into());
        Ok(handle)
    }

    pub fn dir_snapshot(&self, handle: u64) -> Result<Arc<[DirEntry]>, Errno> {
        self.open_dirs
            .lock()
            .get(&handle)
            .cloned()
            .ok_or(Errno(libc::EBADF))
    }

    pub fn release_dir(&self, handle: u64) {
        self.open_dirs.lock().remove(&handle);
    }

    /// How many files and directories are open now.
    pub fn open_count(&self) -> usize {
        self.open_files.lock().len() + self.open_dirs.lock().len()
    }

    /// Walks a path below the mount point (`proc/stat`, `/sys/devices/system/cpu/cpu0/topology/core_id`)
    /// as `caller` would.
    pub fn walk(&self, path: &str, caller: Option<u32>) -> Result<Node, Errno> {
        let mut node = self.node(ROOT_INODE)?;
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            node = self.lookup(node.inode, part.as_bytes(), caller)?.0;
        }
        Ok(node)
    }
}

fn static_to_node(node: &StaticNode) -> Node {
    let mode = match node.kind {
        NodeKind::File(served) => served.mode(),
        _ => 0o555,
    };
    Node {
        inode: node.inode,
        kind: node.kind,
        mode,
    }
}

/// A mirrored entry's node. Write bits are dropped (the mount is read-only); read bits follow the host,
/// so a root-only sysfs file stays root-only.
fn mirrored_node(inode: Inode, metadata: &Metadata) -> Result<Node, Errno> {
    let file_type = metadata.file_type();
    let host_mode = (metadata.permissions().mode() & 0o7777) as u16;
    let (kind, mode) = if file_type.is_dir() {
        (NodeKind::HostDirectory, 0o555)
    } else if file_type.is_symlink() {
        (NodeKind::HostSymlink, 0o777)
    } else if file_type.is_file() {
        (NodeKind::HostFile, host_mode & 0o444)
    } else {
        // sysfs has no device nodes or fifos; anything else is not passed through.
        return Err(Errno(libc::ENOENT));
    };
    Ok(Node { inode, kind, mode })
}

/// The id of a `cpuN` directory name.
fn cpu_entry_id(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("cpu")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
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
    fn inodes_are_unique_and_below_the_mirror_range() {
        let mut inodes: Vec<_> = NODES.iter().map(|n| n.inode).collect();
        inodes.sort_unstable();
        inodes.dedup();
        assert_eq!(inodes.len(), NODES.len());
        assert!(inodes.iter().all(|&i| i < FIRST_MIRROR_INODE));
    }

    #[test]
    fn cpu_entry_ids() {
        assert_eq!(cpu_entry_id("cpu0"), Some(0));
        assert_eq!(cpu_entry_id("cpu17"), Some(17));
        assert_eq!(cpu_entry_id("cpu"), None);
        assert_eq!(cpu_entry_id("cpufreq"), None);
        assert_eq!(cpu_entry_id("cpuidle"), None);
        assert_eq!(cpu_entry_id("cpu+1"), None);
    }

    #[test]
    fn mirror_numbers_paths_once() {
        let mut mirror = Mirror::default();
        let a = mirror.inode_for(Path::new("cpu0"));
        let b = mirror.inode_for(Path::new("cpu0/topology"));
        assert_eq!(mirror.inode_for(Path::new("cpu0")), a);
        assert_ne!(a, b);
        assert_eq!(mirror.path_of(b), Some(Path::new("cpu0/topology")));
        assert_eq!(mirror.path_of(5), None);
    }
}
