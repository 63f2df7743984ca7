//! The mounted tree as a plain type: inodes, directory listings and per-open snapshots. The FUSE adapter
//! ([`crate::transport::fuse`]) only translates between this and the kernel protocol, so tests call this directly.
//!
//! Most of the tree is a constant table. Two directories mirror the host's instead, to any depth:
//! - `sys/devices/system/cpu`, with the four CPU lists replaced by served files and `cpuN` listed only for
//!   the caller's visible CPUs;
//! - `sys/block`, whose entries (symlinks on the host) are directories here, so that each device's and
//!   partition's `stat` can be the caller's own I/O (sysstat's `iostat` reads these, not
//!   `/proc/diskstats`). Symlinks inside point to absolute `/sys/...` paths, which resolve in a
//!   container's `/sys` wherever this directory is mounted.

use crate::fs::permissions::{self, Access, Credentials, Owner};
use crate::host::credentials::CredentialReader;
use crate::host::kernel_file::{open_kernel_file, read_kernel_prefix, read_kernel_text};
use crate::service::cache::{CacheSettings, Purpose, ViewCache};
use crate::service::view::View;
use crate::telemetry::metrics::{MetricFile, Metrics};
use cgview_core::catalog::ServedFile;
use cgview_core::parse::cpuset::CpuSet;
use cgview_core::parse::diskstats::DeviceId;
use parking_lot::Mutex;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fs::Metadata;
use std::hash::BuildHasher;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

pub type Inode = u64;
pub const ROOT_INODE: Inode = 1;
/// `sys/devices/system/cpu`, a mirrored directory.
const CPU_DIR_INODE: Inode = 6;
/// `sys/block`, a mirrored directory.
const BLOCK_DIR_INODE: Inode = 8;
/// Mirrored entries are numbered from here up (see [`Mirror`]).
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

    pub fn is_regular_file(self) -> bool {
        matches!(
            self,
            NodeKind::File(_) | NodeKind::HostFile | NodeKind::BlockStat | NodeKind::Floor
        )
    }
}

/// A node as the kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub inode: Inode,
    pub kind: NodeKind,
    /// Permission bits.
    pub mode: u16,
    /// root:root for the nodes cgview makes; the host node's for mirrored ones.
    pub owner: Owner,
}

impl Node {
    /// Whether two callers may be told different things about this file: its content is per caller, or
    /// some callers may not read it (and are shown no size).
    pub fn answers_per_caller(&self) -> bool {
        self.kind.is_per_caller() || (self.kind.is_regular_file() && self.mode & 0o444 != 0o444)
    }

    fn access(&self) -> Access {
        Access {
            owner: self.owner,
            mode: self.mode,
            is_directory: self.kind.is_directory(),
        }
    }
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

/// Mirrored entries are numbered in `FIRST_MIRROR_INODE..MIRROR_INODE_END`: 32 bits, as procfs and sysfs
/// number theirs, so that a 32-bit program's `stat` never overflows.
const MIRROR_INODE_END: Inode = 1 << 32;
/// How many numbers an entry tries before its lookup fails. The range holds four billion; with the keyed
/// hash, even a million entries make a second try rare.
const MIRROR_PROBES: u32 = 64;

/// Where a key's `attempt`th candidate number lies.
type SlotFn = fn(&RandomState, &MirrorKey, u32) -> Inode;

/// A key's candidate numbers: a hash of the key keyed per daemon, so that a number says nothing about
/// which other entries exist or in what order anyone looked them up (a global counter did: a container
/// could tell which block devices other containers had looked at, and when).
fn keyed_slot(hasher: &RandomState, key: &MirrorKey, attempt: u32) -> Inode {
    let span = MIRROR_INODE_END - FIRST_MIRROR_INODE;
    FIRST_MIRROR_INODE + hasher.hash_one((key, attempt)) % span
}

#[derive(Debug)]
struct MirrorEntry {
    key: MirrorKey,
    /// The kernel's lookup count (`nlookup`): replies that named the entry, less the counts it forgot.
    lookups: u64,
}

/// Mirrored host entries the kernel holds: an entry lives from the first LOOKUP that names it until the
/// kernel FORGETs every lookup, so the table follows the kernel's inode cache instead of growing with
/// every name ever seen (block devices come and go).
#[derive(Debug)]
struct Mirror {
    hasher: RandomState,
    slot: SlotFn,
    by_key: HashMap<MirrorKey, Inode>,
    entries: HashMap<Inode, MirrorEntry>,
}

impl Default for Mirror {
    fn default() -> Mirror {
        Mirror::with_slots(keyed_slot)
    }
}

impl Mirror {
    fn with_slots(slot: SlotFn) -> Mirror {
        Mirror {
            hasher: RandomState::new(),
            slot,
            by_key: HashMap::new(),
            entries: HashMap::new(),
        }
    }

    /// The entry's number, counting one lookup: a LOOKUP reply is about to name it.
    fn acquire(&mut self, root: MirrorRoot, relative: &Path) -> Result<Inode, Errno> {
        let key = (root, relative.to_owned());
        if let Some(&inode) = self.by_key.get(&key) {
            if let Some(entry) = self.entries.get_mut(&inode) {
                entry.lookups += 1;
            }
            return Ok(inode);
        }
        let inode = self.free_slot(&key).ok_or_else(|| {
            tracing::error!(
                entries = self.entries.len(),
                "no free inode number for a mirrored entry"
            );
            Errno(libc::ENFILE)
        })?;
        self.by_key.insert(key.clone(), inode);
        self.entries.insert(inode, MirrorEntry { key, lookups: 1 });
        Ok(inode)
    }

    /// The number a listing shows for an entry: its own if the kernel holds it, otherwise the one a
    /// lookup would give it now. Listings do not count as lookups (READDIR takes no reference), so they
    /// add nothing to the table.
    fn number_of(&self, root: MirrorRoot, relative: &Path) -> Inode {
        let key = (root, relative.to_owned());
        match self.by_key.get(&key) {
            Some(&inode) => inode,
            None => self
                .free_slot(&key)
                .unwrap_or_else(|| (self.slot)(&self.hasher, &key, 0)),
        }
    }

    fn free_slot(&self, key: &MirrorKey) -> Option<Inode> {
        (0..MIRROR_PROBES)
            .map(|attempt| (self.slot)(&self.hasher, key, attempt))
            .find(|candidate| !self.entries.contains_key(candidate))
    }

    /// The kernel dropped `lookups` of its references; the entry goes when none is left. Returns the key
    /// of an entry that went.
    fn forget(&mut self, inode: Inode, lookups: u64) -> Option<MirrorKey> {
        let entry = self.entries.get_mut(&inode)?;
        entry.lookups = entry.lookups.saturating_sub(lookups);
        if entry.lookups > 0 {
            return None;
        }
        let entry = self.entries.remove(&inode)?;
        self.by_key.remove(&entry.key);
        Some(entry.key)
    }

    fn key_of(&self, inode: Inode) -> Option<&MirrorKey> {
        self.entries.get(&inode).map(|entry| &entry.key)
    }

    fn len(&self) -> usize {
        self.entries.len()
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
    /// `host_sys_root` with every symlink resolved, once it could be: no mirrored symlink may lead out of it.
    real_sys_root: OnceLock<PathBuf>,
    /// Callers' groups and capabilities, for the access checks the request's ids do not decide.
    credentials: CredentialReader,
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
            .filter(|f| f.host_may_lack() && !paths.served_file(*f).exists())
            .collect();
        let host_cpu_dir = paths.sys_file("devices/system/cpu");
        let host_block_dir = paths.sys_file("block");
        let host_sys_root = paths.sys_root.clone();
        let credentials = CredentialReader::new(paths.proc_root.clone());
        Tree {
            cache: ViewCache::new(view, settings),
            block_devices: Mutex::new(HashMap::new()),
            floor: None,
            absent,
            host_cpu_dir,
            host_block_dir,
            host_sys_root,
            real_sys_root: OnceLock::new(),
            credentials,
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
            owner: Owner::ROOT,
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

    /// Whether `credentials` (of thread `caller`) may do everything in `mask` on `node`, as the kernel
    /// would decide (see [`permissions`]). Reads the caller's groups or capabilities only when the
    /// request's ids do not decide.
    pub fn permits(
        &self,
        node: &Node,
        credentials: Credentials,
        caller: Option<u32>,
        mask: u32,
    ) -> bool {
        let mut lookup = self.credentials.caller(caller, credentials);
        permissions::permits(credentials, node.access(), mask, &mut lookup)
    }

    /// The attributes of an inode.
    pub fn node(&self, inode: Inode) -> Result<Node, Errno> {
        if let Some(root) = MirrorRoot::of_static_dir(inode) {
            return Ok(self.mirror_root_node(root));
        }
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
                owner: Owner::ROOT,
            });
        }
        let key = self.mirrored_key(inode)?;
        Ok(Node {
            inode,
            ..self.mirrored_node(&key)?
        })
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

    /// A mirrored directory's root (`sys/devices/system/cpu`, `sys/block`): the host directory's owner and
    /// mode, so a locked-down host directory stays locked down here. A host without it gets a directory
    /// open to all, as the rest of cgview's own tree is.
    fn mirror_root_node(&self, root: MirrorRoot) -> Node {
        let inode = root.static_inode();
        let host_dir = self.host_path(&(root, PathBuf::new()));
        match std::fs::metadata(host_dir) {
            Ok(metadata) if metadata.is_dir() => Node {
                inode,
                kind: NodeKind::Directory,
                mode: host_permission_bits(&metadata),
                owner: host_owner(&metadata),
            },
            _ => Node {
                inode,
                kind: NodeKind::Directory,
                mode: 0o555,
                owner: Owner::ROOT,
            },
        }
    }

    /// The node of a mirrored entry, from the host's metadata now.
    fn mirrored_node(&self, key: &MirrorKey) -> Result<Node, Errno> {
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
        let node = mirrored_node(&metadata)?;
        if *root == MirrorRoot::Block && is_block_stat(&path) && node.kind == NodeKind::HostFile {
            return Ok(Node {
                kind: NodeKind::BlockStat,
                mode: BLOCK_STAT_MODE,
                owner: Owner::ROOT,
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
        if !self.permits(&parent_node, credentials, caller, permissions::EXECUTE) {
            return Err(Errno(libc::EACCES));
        }
        if let Some(node) = NODES
            .iter()
            .find(|n| n.parent == parent && n.inode != ROOT_INODE && n.name.as_bytes() == name)
        {
            return match self.static_node(node.inode) {
                Some(node) => Ok((self.node(node.inode)?, NameLifetime::Stable)),
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
        let metadata =
            std::fs::symlink_metadata(self.host_path(&key)).map_err(|e| Errno::from_io(&e))?;
        if metadata.file_type().is_symlink() && !self.stays_in_sys(&key) {
            tracing::debug!(path = %self.host_path(&key).display(), "a mirrored symlink leads out of sysfs; hidden");
            return Err(Errno(libc::ENOENT));
        }
        let node = self.mirrored_node(&key)?;
        let (inode, count) = {
            let mut mirror = self.mirror.lock();
            (mirror.acquire(root, &key.1)?, mirror.len())
        };
        self.metrics.set_mirrored_inodes(count);
        Ok((Node { inode, ..node }, lifetime))
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
                    Some(parent) => self.mirror.lock().number_of(root, parent),
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
            .filter(|(name, file_type)| {
                // Listed only if a lookup would find it.
                !file_type.is_symlink() || self.stays_in_sys(&(*root, relative.join(name)))
            })
            .collect();
        // Host order is the file system's; sorted output is stable across calls and callers.
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let mirror = self.mirror.lock();
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
                let inode = mirror.number_of(*root, &relative.join(&name));
                DirEntry { inode, kind, name }
            })
            .collect())
    }

    /// The target of a mirrored symlink. Below `sys/devices/system/cpu`, verbatim: the directory is
    /// mounted where it is on the host, so relative targets resolve in the container's `/sys` as on the
    /// host. Below `sys/block`, made absolute (`/sys/devices/...`): there a relative target would be
    /// resolved from the device directory's new place. A target that leads out of the host's sysfs is
    /// refused (`ENOENT`, as its lookup is).
    pub fn readlink(&self, inode: Inode) -> Result<PathBuf, Errno> {
        if self.static_node(inode).is_some() {
            return Err(Errno(libc::EINVAL));
        }
        let key = self.mirrored_key(inode)?;
        let target = std::fs::read_link(self.host_path(&key)).map_err(|e| Errno::from_io(&e))?;
        let inside = self
            .target_in_sys(&key, &target)
            .ok_or(Errno(libc::ENOENT))?;
        if key.0 == MirrorRoot::Cpu && target.is_relative() {
            return Ok(target);
        }
        Ok(Path::new("/sys").join(inside))
    }

    /// Whether the mirrored symlink `key` leads to a place inside the host's sysfs. The entries of
    /// `sys/block` are followed as directories here, so where they lead is checked with every symlink
    /// on the way resolved; deeper links are shown, so their target is checked both as a container
    /// resolves it (from the link's directory, with `/sys` for the sys root) and, where it exists, with
    /// every symlink resolved.
    fn stays_in_sys(&self, key: &MirrorKey) -> bool {
        let (root, relative) = key;
        if *root == MirrorRoot::Block && relative.components().count() == 1 {
            let Some(sys_root) = self.real_sys_root() else {
                return false;
            };
            return std::fs::canonicalize(self.host_path(key))
                .is_ok_and(|real| real.starts_with(sys_root));
        }
        std::fs::read_link(self.host_path(key))
            .ok()
            .and_then(|target| self.target_in_sys(key, &target))
            .is_some()
    }

    /// Where symlink `key`'s `target` leads, relative to the host's sysfs root; `None` if outside it (or
    /// if that cannot be told).
    fn target_in_sys(&self, key: &MirrorKey, target: &Path) -> Option<PathBuf> {
        let sys_root = self.real_sys_root()?;
        let resolved = if target.is_absolute() {
            // As a container resolves it: its /sys is this sys root.
            let inside = lexical_join(Path::new("/"), target)
                .strip_prefix("/sys")
                .ok()?
                .to_owned();
            sys_root.join(inside)
        } else {
            let link_dir = std::fs::canonicalize(self.host_path(key).parent()?).ok()?;
            lexical_join(&link_dir, target)
        };
        let inside = resolved.strip_prefix(sys_root).ok()?;
        // Symlinks on the way could still lead elsewhere: where the target exists, so must its real path.
        if let Ok(real) = std::fs::canonicalize(&resolved) {
            if !real.starts_with(sys_root) {
                return None;
            }
        }
        Some(inside.to_owned())
    }

    /// The host's sysfs root with every symlink resolved.
    fn real_sys_root(&self) -> Option<&Path> {
        if let Some(root) = self.real_sys_root.get() {
            return Some(root);
        }
        let real = std::fs::canonicalize(&self.host_sys_root).ok()?;
        Some(self.real_sys_root.get_or_init(|| real))
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
        // Before any work for the caller: a caller who may not read the file costs no read of it.
        if !self.permits(&node, credentials, caller, permissions::READ) {
            return Err(Errno(libc::EACCES));
        }
        let started = self.metrics.enabled().then(Instant::now);
        let content = self.content(&node, caller, Purpose::Read)?;
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
    /// A file whose answer is per caller ([`Node::answers_per_caller`]) is never reported empty: the
    /// inode's size is whichever caller asked last, and `sendfile(2)` on a size-0 inode returns
    /// end-of-file at once, so a container whose `cpu/offline` is `2-3` would read nothing after one whose
    /// `offline` is empty. With a size of at least 1 it tries the page cache, is refused
    /// ([`Tree::read_for_page_cache`]) and falls back to `read(2)`.
    ///
    /// A caller who may not read the file is told nothing about it and costs no work: its size is that
    /// floor, 1, without the file being read. (procfs shows 0 for every file; here a 0 would be what the
    /// next reader's `sendfile(2)` stops at, and root's `cat /proc/slabinfo` in an Alpine container would
    /// print nothing after `ls -l /proc` as another user.)
    pub fn size_for(&self, node: &Node, caller: Option<u32>, credentials: Credentials) -> u64 {
        if !node.kind.is_regular_file() {
            return 0;
        }
        if node.answers_per_caller() && !self.permits(node, credentials, caller, permissions::READ)
        {
            return 1;
        }
        let length = self
            .content(node, caller, Purpose::Size)
            .map_or(0, |content| content.len() as u64);
        if node.answers_per_caller() {
            length.max(1)
        } else {
            length
        }
    }

    /// What `node` shows `caller` now.
    fn content(
        &self,
        node: &Node,
        caller: Option<u32>,
        purpose: Purpose,
    ) -> Result<Snapshot, Errno> {
        let served = match node.kind {
            NodeKind::File(served) => self.cache.serve(served, caller, purpose),
            NodeKind::BlockStat => {
                let device = self.block_device(node.inode)?;
                let (host_stat, device) = &*device;
                self.cache
                    .serve_block_stat(node.inode, host_stat, *device, caller, purpose)
            }
            NodeKind::Floor => return self.floor.clone().ok_or(Errno(libc::ENOENT)),
            _ => return Ok(self.read_host(node.inode)?.into()),
        };
        match served {
            Ok(cached) => Ok(cached.bytes),
            Err(error) => {
                tracing::error!("cannot serve: {}", cgview_core::error_chain(&error));
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
        let content = self.content(&node, reader, Purpose::Read)?;
        if let Some(file) = metric_file(node.kind) {
            self.metrics.record_reread(file);
        }
        if let Some(file) = self.open_files.lock().get_mut(&handle) {
            file.content = content.clone();
        }
        Ok(content)
    }

    /// A read that fills the kernel's page cache rather than the reader's buffer: `sendfile(2)`,
    /// `splice(2)` and `copy_file_range(2)` of a FUSE file go through the inode's page cache even though
    /// every open is `direct_io` (and so does a private `mmap(2)` where the kernel cannot refuse it, see
    /// [`crate::fs::ops::FsOps::mmap_refusal`]). That cache is one per inode, shared by every container that
    /// has the file bind-mounted, so a page filled with one container's view would be spliced out to
    /// another reading at the same moment (measured: one read in 40 to one in 6 came out as the other
    /// container's file). Files whose answer is per caller therefore refuse it with `EINVAL`, the errno
    /// `sendfile(2)` documents for a descriptor it cannot use; busybox `cat`, GNU `cp` and Python's
    /// `shutil` then fall back to `read(2)`, which is served per open. Files that are the same for
    /// everyone (host passthrough readable by all, the floor) may be cached.
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
        if self.node(inode)?.answers_per_caller() {
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

    /// The kernel dropped `lookups` references to `inode` (FORGET): a mirrored entry it no longer holds
    /// is dropped, with what was kept about it.
    pub fn forget(&self, inode: Inode, lookups: u64) {
        let (forgotten, remaining) = {
            let mut mirror = self.mirror.lock();
            (mirror.forget(inode, lookups), mirror.len())
        };
        if forgotten.is_some() {
            self.block_devices.lock().remove(&inode);
            self.metrics.set_mirrored_inodes(remaining);
        }
    }

    /// How many mirrored entries the kernel holds (and this tree keeps) now.
    pub fn mirrored_count(&self) -> usize {
        self.mirror.lock().len()
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
        if !self.permits(&node, credentials, caller, permissions::READ) {
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
        owner: Owner::ROOT,
    }
}

/// A mirrored entry's node (its inode number is the caller's to fill in): the host node's owner, group
/// and mode, so that every access check here is the one the kernel makes on the host's node. Write bits
/// stay, as on a read-only mount of the host's sysfs: the mount is read-only, so writes fail with `EROFS`.
/// Symlinks' bits are always 0777, as the kernel shows them.
fn mirrored_node(metadata: &Metadata) -> Result<Node, Errno> {
    let file_type = metadata.file_type();
    let (kind, mode) = if file_type.is_dir() {
        (NodeKind::HostDirectory, host_permission_bits(metadata))
    } else if file_type.is_symlink() {
        (NodeKind::HostSymlink, 0o777)
    } else if file_type.is_file() {
        (NodeKind::HostFile, host_permission_bits(metadata))
    } else {
        // sysfs has no device nodes or fifos; anything else is not passed through.
        return Err(Errno(libc::ENOENT));
    };
    Ok(Node {
        inode: 0,
        kind,
        mode,
        owner: host_owner(metadata),
    })
}

/// Permission bits (with set-id and sticky bits) of a host node.
fn host_permission_bits(metadata: &Metadata) -> u16 {
    (metadata.permissions().mode() & 0o7777) as u16
}

fn host_owner(metadata: &Metadata) -> Owner {
    Owner {
        uid: metadata.uid(),
        gid: metadata.gid(),
    }
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
    fn mirror_numbers_paths_once_per_root_inside_the_mirror_range() {
        let mut mirror = Mirror::default();
        let a = mirror.acquire(MirrorRoot::Cpu, Path::new("cpu0")).unwrap();
        let b = mirror
            .acquire(MirrorRoot::Cpu, Path::new("cpu0/topology"))
            .unwrap();
        let c = mirror
            .acquire(MirrorRoot::Block, Path::new("cpu0"))
            .unwrap();
        assert_eq!(
            mirror.acquire(MirrorRoot::Cpu, Path::new("cpu0")).unwrap(),
            a
        );
        assert!(a != b && a != c && b != c);
        for inode in [a, b, c] {
            assert!(
                (FIRST_MIRROR_INODE..MIRROR_INODE_END).contains(&inode),
                "{inode}"
            );
        }
        assert_eq!(
            mirror.key_of(b),
            Some(&(MirrorRoot::Cpu, PathBuf::from("cpu0/topology")))
        );
        assert_eq!(mirror.key_of(5), None);
        assert_eq!(mirror.len(), 3);
    }

    #[test]
    fn mirror_numbers_do_not_follow_lookup_order_or_repeat_across_daemons() {
        // A global counter numbered entries 1000, 1001, ... in lookup order: a container could tell what
        // others had looked up. Keyed hashes depend on neither the order nor a guessable key.
        let names: Vec<PathBuf> = (0..50).map(|i| PathBuf::from(format!("loop{i}"))).collect();
        let mut forward = Mirror::default();
        let forward_numbers: Vec<Inode> = names
            .iter()
            .map(|n| forward.acquire(MirrorRoot::Block, n).unwrap())
            .collect();
        let mut sorted = forward_numbers.clone();
        sorted.sort_unstable();
        assert_ne!(forward_numbers, sorted, "numbered in lookup order");
        let sequential: Vec<Inode> = (FIRST_MIRROR_INODE..FIRST_MIRROR_INODE + 50).collect();
        assert_ne!(forward_numbers, sequential);
        // The same daemon numbers a path the same whatever the order.
        let mut same_key = Mirror::with_slots(keyed_slot);
        same_key.hasher = forward.hasher.clone();
        for name in names.iter().rev() {
            same_key.acquire(MirrorRoot::Block, name).unwrap();
        }
        for (name, &inode) in names.iter().zip(&forward_numbers) {
            assert_eq!(same_key.number_of(MirrorRoot::Block, name), inode);
        }
        // Another daemon (another key) numbers them differently.
        let mut other = Mirror::default();
        let other_numbers: Vec<Inode> = names
            .iter()
            .map(|n| other.acquire(MirrorRoot::Block, n).unwrap())
            .collect();
        assert_ne!(forward_numbers, other_numbers);
    }

    /// Every key's first candidate is the first number of the range, its `n`th the `n`th: every second
    /// key collides.
    fn colliding_slot(_: &RandomState, _: &MirrorKey, attempt: u32) -> Inode {
        FIRST_MIRROR_INODE + Inode::from(attempt)
    }

    #[test]
    fn mirror_gives_a_colliding_entry_the_next_free_candidate() {
        let mut mirror = Mirror::with_slots(colliding_slot);
        let a = mirror.acquire(MirrorRoot::Block, Path::new("vda")).unwrap();
        assert_eq!(mirror.number_of(MirrorRoot::Block, Path::new("vdb")), a + 1);
        let b = mirror.acquire(MirrorRoot::Block, Path::new("vdb")).unwrap();
        assert_eq!((a, b), (FIRST_MIRROR_INODE, FIRST_MIRROR_INODE + 1));
        assert_eq!(mirror.key_of(a).unwrap().1, Path::new("vda"));
        assert_eq!(mirror.key_of(b).unwrap().1, Path::new("vdb"));
        // A freed number goes to the next entry that wants it.
        mirror.forget(a, 1);
        let c = mirror.acquire(MirrorRoot::Block, Path::new("vdc")).unwrap();
        assert_eq!(c, a);
        assert_eq!(mirror.key_of(c).unwrap().1, Path::new("vdc"));
        assert_eq!(
            mirror.acquire(MirrorRoot::Block, Path::new("vdb")).unwrap(),
            b
        );
    }

    #[test]
    fn mirror_fails_a_lookup_when_every_candidate_is_taken() {
        let mut mirror = Mirror::with_slots(|_, _, _| FIRST_MIRROR_INODE);
        mirror.acquire(MirrorRoot::Block, Path::new("vda")).unwrap();
        assert_eq!(
            mirror.acquire(MirrorRoot::Block, Path::new("vdb")),
            Err(Errno(libc::ENFILE))
        );
        assert_eq!(mirror.len(), 1);
    }

    #[test]
    fn mirror_keeps_an_entry_until_every_lookup_is_forgotten() {
        let mut mirror = Mirror::default();
        let path = Path::new("loop3");
        let inode = mirror.acquire(MirrorRoot::Block, path).unwrap();
        mirror.acquire(MirrorRoot::Block, path).unwrap();
        mirror.acquire(MirrorRoot::Block, path).unwrap();
        assert_eq!(mirror.forget(inode, 2), None);
        assert!(mirror.key_of(inode).is_some());
        assert_eq!(
            mirror.forget(inode, 1),
            Some((MirrorRoot::Block, path.to_owned()))
        );
        assert_eq!(mirror.key_of(inode), None);
        assert_eq!(mirror.len(), 0);
        // Forgetting what is not there (or more than was counted) changes nothing.
        assert_eq!(mirror.forget(inode, 1), None);
        let again = mirror.acquire(MirrorRoot::Block, path).unwrap();
        assert_eq!(again, inode, "a path keeps its number across a forget");
        assert_eq!(
            mirror.forget(again, u64::MAX),
            Some((MirrorRoot::Block, path.to_owned()))
        );
    }

    #[test]
    fn mirror_listing_numbers_add_no_entries() {
        let mut mirror = Mirror::default();
        let listed = mirror.number_of(MirrorRoot::Cpu, Path::new("cpu1"));
        assert_eq!(mirror.len(), 0);
        assert_eq!(
            mirror.acquire(MirrorRoot::Cpu, Path::new("cpu1")).unwrap(),
            listed
        );
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
