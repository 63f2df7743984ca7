//! The mounted tree as a plain type: inodes, directory listings and per-open snapshots. The FUSE adapter
//! ([`crate::fuse_fs`]) only translates between this and the kernel protocol, so tests call this directly.
//!
//! Most of the tree is a constant table. Two directories mirror the host's instead, to any depth:
//! - `sys/devices/system/cpu`, with the four CPU lists replaced by served files and `cpuN` listed only for
//!   the caller's visible CPUs;
//! - `sys/block`, whose entries (symlinks on the host) are directories here, so that each device's and
//!   partition's `stat` can be the caller's own I/O (sysstat's `iostat` reads these, not
//!   `/proc/diskstats`). Symlinks inside point to absolute `/sys/...` paths, which resolve in a
//!   container's `/sys` wherever this directory is mounted.

use crate::cache::{CacheSettings, ViewCache};
use crate::host::kernel_file::{open_kernel_file, read_kernel_prefix, read_kernel_text};
use crate::metrics::{MetricFile, Metrics};
use crate::parse::cpuset::CpuSet;
use crate::parse::diskstats::DeviceId;
use crate::permissions::{self, Credentials};
use crate::served::ServedFile;
use crate::view::View;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub type Inode = u64;
pub const ROOT_INODE: Inode = 1;
/// `sys/devices/system/cpu`, a mirrored directory.
const CPU_DIR_INODE: Inode = 6;
/// `sys/block`, a mirrored directory.
const BLOCK_DIR_INODE: Inode = 8;
/// Mirrored entries get inodes from here up, in the order they are first looked up.
const FIRST_MIRROR_INODE: Inode = 1000;
const FLOOR_INODE: Inode = 999;
/// The diagnostic file's name in the mount's root; not listed.
pub const FLOOR_NAME: &str = ".cgview-floor";
/// Largest host file passed through (sysfs attributes are at most a page; this is generous).
const MAX_PASSTHROUGH_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Directory,
    File(ServedFile),
    /// An entry below the host's `/sys/devices/system/cpu`, passed through.
    HostDirectory,
    HostFile,
    HostSymlink,
    /// The `stat` file of a block device or partition below `sys/block`: the caller's I/O on it.
    BlockStat,
    /// The diagnostic file that serves a fixed buffer (`--diagnostic-floor`): the cost of FUSE itself.
    Floor,
}

impl NodeKind {
    pub fn is_directory(self) -> bool {
        matches!(self, NodeKind::Directory | NodeKind::HostDirectory)
    }

    /// Whether two callers may read different content from this node.
    pub fn is_per_caller(self) -> bool {
        matches!(self, NodeKind::File(_) | NodeKind::BlockStat)
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
const NODES: [StaticNode; 23] = [
    dir(ROOT_INODE, ROOT_INODE, ""),
    dir(2, ROOT_INODE, "proc"),
    dir(3, ROOT_INODE, "sys"),
    dir(4, 3, "devices"),
    dir(5, 4, "system"),
    dir(CPU_DIR_INODE, 5, "cpu"),
    dir(7, 2, "pressure"),
    dir(BLOCK_DIR_INODE, 3, "block"),
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

#[derive(Debug)]
/// An open file: what it was opened on and the content its reads are cut from.
struct OpenFile {
    inode: Inode,
    content: Snapshot,
    /// Whether a read has been served since the content was made; a later read from offset 0 remakes it.
    read: bool,
}

/// Which host directory a mirrored entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MirrorRoot {
    Cpu,
    Block,
}

impl MirrorRoot {
    fn of_static_dir(inode: Inode) -> Option<MirrorRoot> {
        match inode {
            CPU_DIR_INODE => Some(MirrorRoot::Cpu),
            BLOCK_DIR_INODE => Some(MirrorRoot::Block),
            _ => None,
        }
    }

    fn static_inode(self) -> Inode {
        match self {
            MirrorRoot::Cpu => CPU_DIR_INODE,
            MirrorRoot::Block => BLOCK_DIR_INODE,
        }
    }
}

/// Permission bits of a block device's `stat` file (the caller's own I/O: readable by all).
const BLOCK_STAT_MODE: u16 = 0o444;

/// A mirrored entry: its root and its path relative to that root.
type MirrorKey = (MirrorRoot, PathBuf);

/// Mirrored host entries, numbered on first sight. Bounded by the size of the host's directories.
#[derive(Debug, Default)]
struct Mirror {
    by_path: HashMap<MirrorKey, Inode>,
    /// Index `inode - FIRST_MIRROR_INODE`.
    keys: Vec<MirrorKey>,
}

impl Mirror {
    fn inode_for(&mut self, root: MirrorRoot, relative: &Path) -> Inode {
        let key = (root, relative.to_owned());
        if let Some(&inode) = self.by_path.get(&key) {
            return inode;
        }
        let inode = FIRST_MIRROR_INODE + self.keys.len() as Inode;
        self.keys.push(key.clone());
        self.by_path.insert(key, inode);
        inode
    }

    fn key_of(&self, inode: Inode) -> Option<&MirrorKey> {
        let index = inode.checked_sub(FIRST_MIRROR_INODE)?;
        self.keys.get(usize::try_from(index).ok()?)
    }
}

/// The file system state shared by all workers.
#[derive(Debug)]
pub struct Tree {
    cache: ViewCache,
    /// Host `stat` path and device of each `sys/block` stat file served so far (they never change while
    /// the device exists).
    block_devices: Mutex<HashMap<Inode, Arc<(PathBuf, DeviceId)>>>,
    /// The fixed content of the diagnostic file, when enabled.
    floor: Option<Snapshot>,
    /// Served files whose host file is missing (no PSI in this kernel): left out of the tree.
    absent: Vec<ServedFile>,
    host_cpu_dir: PathBuf,
    host_block_dir: PathBuf,
    /// The host's `/sys`, to turn mirrored symlinks into absolute `/sys/...` targets.
    host_sys_root: PathBuf,
    mirror: Mutex<Mirror>,
    open_files: Mutex<HashMap<u64, OpenFile>>,
    open_dirs: Mutex<HashMap<u64, Arc<[DirEntry]>>>,
    next_handle: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Tree {
    pub fn new(view: Arc<View>) -> Tree {
        Tree::with_cache(view, CacheSettings::default())
    }

    pub fn with_cache(view: Arc<View>, settings: CacheSettings) -> Tree {
        let paths = view.resolver().paths();
        let absent = ServedFile::ALL
            .into_iter()
            .filter(|f| f.host_may_lack() && !f.host_path(paths).exists())
            .collect();
        let host_cpu_dir = paths.sys_file("devices/system/cpu");
        let host_block_dir = paths.sys_file("block");
        let host_sys_root = paths.sys_root.clone();
        Tree {
            cache: ViewCache::new(view, settings),
            block_devices: Mutex::new(HashMap::new()),
            floor: None,
            absent,
            host_cpu_dir,
            host_block_dir,
            host_sys_root,
            mirror: Mutex::new(Mirror::default()),
            open_files: Mutex::new(HashMap::new()),
            open_dirs: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            metrics: Arc::default(),
        }
    }

    pub fn view(&self) -> &View {
        self.cache.view()
    }

    /// What the hot path records for `--metrics-addr`.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn cache(&self) -> &ViewCache {
        &self.cache
    }

    /// Serves `content` at `<mnt>/.cgview-floor`, opened and read exactly like a served file but with no
    /// work behind it: benchmarks measure the FUSE floor of the machine with it.
    pub fn with_floor(mut self, content: Vec<u8>) -> Tree {
        self.floor = Some(content.into());
        self
    }

    fn floor_node(&self) -> Option<Node> {
        self.floor.as_ref().map(|_| Node {
            inode: FLOOR_INODE,
            kind: NodeKind::Floor,
            mode: 0o444,
        })
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
        if inode == FLOOR_INODE {
            return self.floor_node().ok_or(Errno(libc::ENOENT));
        }
        // A block device's stat file, once served, is known without asking the host again: every open of
        // it would otherwise stat sysfs (its fixed kind and mode are all a node holds; a device that goes
        // away shows when its stat is read).
        if self.block_devices.lock().contains_key(&inode) {
            return Ok(Node {
                inode,
                kind: NodeKind::BlockStat,
                mode: BLOCK_STAT_MODE,
            });
        }
        let key = self.mirrored_key(inode)?;
        self.mirrored_node(inode, &key)
    }

    fn mirrored_key(&self, inode: Inode) -> Result<MirrorKey, Errno> {
        self.mirror
            .lock()
            .key_of(inode)
            .cloned()
            .ok_or(Errno(libc::ENOENT))
    }

    fn host_path(&self, (root, relative): &MirrorKey) -> PathBuf {
        match root {
            MirrorRoot::Cpu => self.host_cpu_dir.join(relative),
            MirrorRoot::Block => self.host_block_dir.join(relative),
        }
    }

    /// The node of a mirrored entry, from the host's metadata now.
    fn mirrored_node(&self, inode: Inode, key: &MirrorKey) -> Result<Node, Errno> {
        let path = self.host_path(key);
        let (root, relative) = key;
        // The host's sys/block entries are symlinks to device directories; here they are the directories.
        let follow = *root == MirrorRoot::Block && relative.components().count() == 1;
        let metadata = if follow {
            std::fs::metadata(&path)
        } else {
            std::fs::symlink_metadata(&path)
        }
        .map_err(|e| Errno::from_io(&e))?;
        let node = mirrored_node(inode, &metadata)?;
        if *root == MirrorRoot::Block && is_block_stat(&path) && node.kind == NodeKind::HostFile {
            return Ok(Node {
                kind: NodeKind::BlockStat,
                mode: BLOCK_STAT_MODE,
                ..node
            });
        }
        Ok(node)
    }

    /// The mirrored directory behind an inode (`None` for the purely static ones).
    fn mirrored_dir(&self, inode: Inode) -> Result<Option<MirrorKey>, Errno> {
        if let Some(root) = MirrorRoot::of_static_dir(inode) {
            return Ok(Some((root, PathBuf::new())));
        }
        if self.static_node(inode).is_some() {
            return Ok(None);
        }
        self.mirrored_key(inode).map(Some)
    }

    /// Looks `name` up in directory `parent` for `caller`.
    pub fn lookup(
        &self,
        parent: Inode,
        name: &[u8],
        caller: Option<u32>,
        credentials: Credentials,
    ) -> Result<(Node, NameLifetime), Errno> {
        let parent_node = self.node(parent)?;
        if !parent_node.kind.is_directory() {
            return Err(Errno(libc::ENOTDIR));
        }
        if !credentials.permit(parent_node.mode, permissions::EXECUTE) {
            return Err(Errno(libc::EACCES));
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
        if parent == ROOT_INODE && name == FLOOR_NAME.as_bytes() {
            return self
                .floor_node()
                .map(|node| (node, NameLifetime::Stable))
                .ok_or(Errno(libc::ENOENT));
        }
        let Some((root, parent_relative)) = self.mirrored_dir(parent)? else {
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
        let key = (root, parent_relative.join(name));
        // Check the host before numbering: names that do not exist get no inode.
        std::fs::symlink_metadata(self.host_path(&key)).map_err(|e| Errno::from_io(&e))?;
        let inode = self.mirror.lock().inode_for(root, &key.1);
        Ok((self.mirrored_node(inode, &key)?, lifetime))
    }

    /// The caller's visible CPUs; `None` when it sees all of the host's.
    fn visible_cpus(&self, caller: Option<u32>) -> Option<CpuSet> {
        self.cache.visible_cpus(caller)
    }

    /// The entries of a directory for `caller`, `.` and `..` first.
    pub fn list(&self, inode: Inode, caller: Option<u32>) -> Result<Vec<DirEntry>, Errno> {
        self.list_node(self.node(inode)?, caller)
    }

    fn list_node(&self, node: Node, caller: Option<u32>) -> Result<Vec<DirEntry>, Errno> {
        let inode = node.inode;
        if !node.kind.is_directory() {
            return Err(Errno(libc::ENOTDIR));
        }
        let parent = match NODES.iter().find(|n| n.inode == inode) {
            Some(n) => n.parent,
            None => {
                let (root, relative) = self.mirrored_key(inode)?;
                match relative.parent().filter(|p| !p.as_os_str().is_empty()) {
                    Some(parent) => self.mirror.lock().inode_for(root, parent),
                    None => root.static_inode(),
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
        if let Some(key) = self.mirrored_dir(inode)? {
            let visible = (inode == CPU_DIR_INODE)
                .then(|| self.visible_cpus(caller))
                .flatten();
            entries.extend(self.list_host(inode, &key, visible.as_ref())?);
        }
        Ok(entries)
    }

    fn list_host(
        &self,
        inode: Inode,
        key: &MirrorKey,
        visible: Option<&CpuSet>,
    ) -> Result<Vec<DirEntry>, Errno> {
        let (root, relative) = key;
        let host_dir = self.host_path(key);
        let is_device_dir = *root == MirrorRoot::Block && host_dir.join("dev").is_file();
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
                let kind = if file_type.is_dir() || inode == BLOCK_DIR_INODE {
                    NodeKind::HostDirectory
                } else if file_type.is_symlink() {
                    NodeKind::HostSymlink
                } else if is_device_dir && name == "stat" {
                    NodeKind::BlockStat
                } else {
                    NodeKind::HostFile
                };
                let inode = mirror.inode_for(*root, &relative.join(&name));
                DirEntry { inode, kind, name }
            })
            .collect())
    }

    /// The target of a mirrored symlink. Below `sys/devices/system/cpu`, verbatim: the directory is
    /// mounted where it is on the host, so relative targets resolve in the container's `/sys` as on the
    /// host. Below `sys/block`, made absolute (`/sys/devices/...`): there a relative target would be
    /// resolved from the device directory's new place.
    pub fn readlink(&self, inode: Inode) -> Result<PathBuf, Errno> {
        if self.static_node(inode).is_some() {
            return Err(Errno(libc::EINVAL));
        }
        let key = self.mirrored_key(inode)?;
        let path = self.host_path(&key);
        let target = std::fs::read_link(&path).map_err(|e| Errno::from_io(&e))?;
        if key.0 == MirrorRoot::Cpu || target.is_absolute() {
            return Ok(target);
        }
        let Some(real_dir) = path.parent().and_then(|d| std::fs::canonicalize(d).ok()) else {
            return Ok(target);
        };
        let sys_root = std::fs::canonicalize(&self.host_sys_root).unwrap_or_default();
        match lexical_join(&real_dir, &target).strip_prefix(&sys_root) {
            Ok(inside) => Ok(Path::new("/sys").join(inside)),
            Err(_) => Ok(target),
        }
    }

    /// Opens a file for a caller: renders it now and keeps the snapshot until [`Tree::release`].
    pub fn open(
        &self,
        inode: Inode,
        caller: Option<u32>,
        write: bool,
        credentials: Credentials,
    ) -> Result<u64, Errno> {
        let node = self.node(inode)?;
        if node.kind.is_directory() {
            return Err(Errno(libc::EISDIR));
        }
        if write {
            return Err(Errno(libc::EROFS));
        }
        if !credentials.permit(node.mode, permissions::READ) {
            return Err(Errno(libc::EACCES));
        }
        let started = self.metrics.enabled().then(Instant::now);
        let content = self.content(&node, caller)?;
        if let (Some(started), Some(file)) = (started, metric_file(node.kind)) {
            self.metrics.record_open(file, started.elapsed());
        }
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.open_files.lock().insert(
            handle,
            OpenFile {
                inode,
                content,
                read: false,
            },
        );
        Ok(handle)
    }

    /// The size to report for `node` to `caller`: the length of what it would read now (0 for
    /// directories and symlinks). `sendfile(2)` and `splice(2)` (busybox `cat`) read through the page cache
    /// and stop at the inode's size, so a file reported empty reads as empty there; plain reads ignore it.
    ///
    /// A per-caller file is never reported empty: the inode's size is whichever caller asked last, and
    /// `sendfile(2)` on a size-0 inode returns end-of-file at once, so a container whose `cpu/offline` is
    /// `2-3` would read nothing after one whose `offline` is empty. With a size of at least 1 it tries the
    /// page cache, is refused ([`Tree::read_for_page_cache`]) and falls back to `read(2)`.
    pub fn size_for(&self, node: &Node, caller: Option<u32>) -> u64 {
        match node.kind {
            NodeKind::Directory | NodeKind::HostDirectory | NodeKind::HostSymlink => 0,
            kind => {
                let length = self
                    .content(node, caller)
                    .map_or(0, |content| content.len() as u64);
                if kind.is_per_caller() {
                    length.max(1)
                } else {
                    length
                }
            }
        }
    }

    /// What `node` shows `caller` now.
    fn content(&self, node: &Node, caller: Option<u32>) -> Result<Snapshot, Errno> {
        let served = match node.kind {
            NodeKind::File(served) => self.cache.get(served, caller),
            NodeKind::BlockStat => {
                let device = self.block_device(node.inode)?;
                let (host_stat, device) = &*device;
                self.cache
                    .get_block_stat(node.inode, host_stat, *device, caller)
            }
            NodeKind::Floor => return self.floor.clone().ok_or(Errno(libc::ENOENT)),
            _ => return Ok(self.read_host(node.inode)?.into()),
        };
        match served {
            Ok(cached) => Ok(cached.bytes),
            Err(error) => {
                tracing::error!("cannot serve: {}", crate::view::error_chain(&error));
                Err(Errno(libc::EIO))
            }
        }
    }

    fn block_device(&self, inode: Inode) -> Result<Arc<(PathBuf, DeviceId)>, Errno> {
        if let Some(known) = self.block_devices.lock().get(&inode) {
            return Ok(known.clone());
        }
        let path = self.host_path(&self.mirrored_key(inode)?);
        let device = path
            .parent()
            .and_then(|dir| read_kernel_text(&dir.join("dev")).ok())
            .and_then(|dev| parse_device_id(&dev))
            .ok_or(Errno(libc::EIO))?;
        let known = Arc::new((path, device));
        self.block_devices.lock().insert(inode, known.clone());
        Ok(known)
    }

    fn read_host(&self, inode: Inode) -> Result<Vec<u8>, Errno> {
        let path = self.host_path(&self.mirrored_key(inode)?);
        let file = open_kernel_file(&path).map_err(|e| Errno::from_io(&e))?;
        read_kernel_prefix(&file, MAX_PASSTHROUGH_BYTES).map_err(|e| Errno::from_io(&e))
    }

    /// The content a read of an open file at `offset` is cut from (slice it with [`slice_at`]).
    ///
    /// The first read gets what was rendered at open. A later read from offset 0 renders afresh for
    /// `reader`, as procfs does after `lseek(fd, 0, SEEK_SET)`: procps (`top`, `vmstat`, `free -s`) keeps
    /// `/proc/stat` and `/proc/meminfo` open and rereads them that way, and would otherwise see a frozen
    /// file. Reads at other offsets continue the current content, so a file read in pieces is consistent.
    pub fn read(&self, handle: u64, offset: u64, reader: Option<u32>) -> Result<Snapshot, Errno> {
        let inode = {
            let mut files = self.open_files.lock();
            let file = files.get_mut(&handle).ok_or(Errno(libc::EBADF))?;
            if offset != 0 || !file.read {
                file.read = true;
                return Ok(file.content.clone());
            }
            file.inode
        };
        // Rendered without the lock held: other handles' reads do not wait for this one.
        let node = self.node(inode)?;
        let content = self.content(&node, reader)?;
        if let Some(file) = metric_file(node.kind) {
            self.metrics.record_reread(file);
        }
        if let Some(file) = self.open_files.lock().get_mut(&handle) {
            file.content = content.clone();
        }
        Ok(content)
    }

    /// A read that fills the kernel's page cache rather than the reader's buffer: `sendfile(2)`,
    /// `splice(2)`, `copy_file_range(2)` and private `mmap(2)` of a FUSE file go through the inode's
    /// page cache even though every open is `direct_io`. That cache is one per inode, shared by every
    /// container that has the file bind-mounted, so a page filled with one container's view would be
    /// spliced out to another reading at the same moment (measured: one read in 40 to one in 6 came out
    /// as the other container's file). Per-caller files therefore refuse it with `EINVAL`, the errno
    /// `sendfile(2)` documents for a descriptor it cannot use; busybox `cat`, GNU `cp` and Python's
    /// `shutil` then fall back to `read(2)`, which is served per open. Files that are the same for
    /// everyone (host passthrough, the floor) may be cached.
    pub fn read_for_page_cache(
        &self,
        handle: u64,
        offset: u64,
        reader: Option<u32>,
    ) -> Result<Snapshot, Errno> {
        let inode = self
            .open_files
            .lock()
            .get(&handle)
            .ok_or(Errno(libc::EBADF))?
            .inode;
        if self.node(inode)?.kind.is_per_caller() {
            self.metrics.record_page_cache_refusal();
            tracing::debug!(
                inode,
                ?reader,
                "refused a page-cache fill of a per-caller file"
            );
            return Err(Errno(libc::EINVAL));
        }
        self.read(handle, offset, reader)
    }

    pub fn release(&self, handle: u64) {
        self.open_files.lock().remove(&handle);
    }

    /// Opens a directory: its listing for this caller is fixed now, so a listing read in several
    /// `readdir` calls is consistent.
    pub fn open_dir(
        &self,
        inode: Inode,
        caller: Option<u32>,
        credentials: Credentials,
    ) -> Result<u64, Errno> {
        let node = self.node(inode)?;
        if !credentials.permit(node.mode, permissions::READ) {
            return Err(Errno(libc::EACCES));
        }
        let entries = self.list_node(node, caller)?;
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
            node = self
                .lookup(node.inode, part.as_bytes(), caller, Credentials::ROOT)?
                .0;
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

/// A block device's or partition's `stat`: a file named `stat` next to a `dev` file.
fn is_block_stat(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "stat")
        && path.parent().is_some_and(|dir| dir.join("dev").is_file())
}

/// `254:0` from a sysfs `dev` file.
fn parse_device_id(text: &str) -> Option<DeviceId> {
    let (major, minor) = text.trim().split_once(':')?;
    Some(DeviceId {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    })
}

/// `base` joined with a relative `target`, `..` resolved without touching the file system.
fn lexical_join(base: &Path, target: &Path) -> PathBuf {
    let mut joined = base.to_path_buf();
    for part in target.components() {
        match part {
            std::path::Component::ParentDir => {
                joined.pop();
            }
            std::path::Component::Normal(name) => joined.push(name),
            _ => {}
        }
    }
    joined
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
/// The `file` label a node's opens are counted under; none for directories and symlinks.
fn metric_file(kind: NodeKind) -> Option<MetricFile> {
    match kind {
        NodeKind::File(served) => Some(MetricFile::Served(served)),
        NodeKind::BlockStat => Some(MetricFile::BlockStat),
        NodeKind::HostFile => Some(MetricFile::HostFile),
        NodeKind::Floor => Some(MetricFile::Floor),
        NodeKind::Directory | NodeKind::HostDirectory | NodeKind::HostSymlink => None,
    }
}

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
    fn mirror_numbers_paths_once_per_root() {
        let mut mirror = Mirror::default();
        let a = mirror.inode_for(MirrorRoot::Cpu, Path::new("cpu0"));
        let b = mirror.inode_for(MirrorRoot::Cpu, Path::new("cpu0/topology"));
        let c = mirror.inode_for(MirrorRoot::Block, Path::new("cpu0"));
        assert_eq!(mirror.inode_for(MirrorRoot::Cpu, Path::new("cpu0")), a);
        assert!(a != b && a != c && b != c);
        assert_eq!(
            mirror.key_of(b),
            Some(&(MirrorRoot::Cpu, PathBuf::from("cpu0/topology")))
        );
        assert_eq!(mirror.key_of(5), None);
    }

    #[test]
    fn lexical_join_resolves_parents() {
        assert_eq!(
            lexical_join(
                Path::new("/sys/devices/pci/virtio1/block/vda"),
                Path::new("../../../virtio1")
            ),
            Path::new("/sys/devices/pci/virtio1")
        );
        assert_eq!(
            parse_device_id("254:16\n"),
            Some(DeviceId {
                major: 254,
                minor: 16
            })
        );
        assert_eq!(parse_device_id("254"), None);
    }
}
