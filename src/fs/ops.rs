//! [`Fs`]: what each FUSE operation answers, independent of how requests arrive.
//! [`fuse`](crate::transport::fuse) adapts it to `fuser` (requests read from `/dev/fuse`),
//! [`ring`](crate::transport::ring) to FUSE over io_uring, and `cgview render` walks it in process.
//! Results are plain values and [`Failure`]s; each transport encodes them (errnos exist only there).

use super::attr::{
    Attr, Caller, Entry, ReadInto, Statfs, BLOCK_SIZE, HOST_FILE_TTL, NAME_MAX, ROOT_TTL, TTL,
};
use super::content::{metric_file, Content};
use super::handles::{Handles, NextRead, Snapshot};
use super::host_mirror::{cpu_entry_id, is_node_dir, node_entry_id, HostMirror, Shown};
use super::mirror::{MirrorKey, MirrorRoot, MirrorSeed};
use super::nodes::{
    self, DirEntry, Inode, NameLifetime, Node, NodeKind, StaticTree, CPU_DIR_INODE, FLOOR_INODE,
    FLOOR_NAME, NODE_DIR_INODE, ROOT_INODE,
};
use super::open_reply::MmapRefusal;
use crate::host::credentials::CredentialReader;
use crate::service::cache::{CacheSettings, Purpose, ViewCache};
use crate::service::view::View;
use crate::telemetry::metrics::{Metrics, Operation};
use cgview_core::catalog::ServedFile;
use cgview_core::failure::Failure;
use cgview_core::parse::cpuset::CpuSet;
use cgview_core::permissions;
use std::io;
use std::os::fd::BorrowedFd;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The mounted file system, shared by every worker of every transport.
#[derive(Debug)]
pub struct Fs {
    nodes: StaticTree,
    mirror: HostMirror,
    content: Content,
    handles: Handles,
    /// Callers' groups and capabilities, for the access checks the request's ids do not decide.
    credentials: CredentialReader,
    metrics: Arc<Metrics>,
    mounted_at: SystemTime,
    mmap_refusal: MmapRefusal,
}

impl Fs {
    pub fn new(view: Arc<View>) -> Fs {
        Fs::with_cache(view, CacheSettings::default())
    }

    pub fn with_cache(view: Arc<View>, settings: CacheSettings) -> Fs {
        let paths = view.resolver().paths();
        let absent = ServedFile::ALL
            .into_iter()
            .filter(|f| f.host_may_lack() && !paths.served_file(*f).exists())
            .collect();
        // A kernel without NUMA support has no node directory.
        let absent_dirs = (!paths.sys_file("devices/system/node").is_dir())
            .then_some(NODE_DIR_INODE)
            .into_iter()
            .collect();
        Fs {
            nodes: StaticTree::new(absent, absent_dirs),
            mirror: HostMirror::new(paths),
            credentials: CredentialReader::new(paths.proc_root.clone()),
            content: Content::new(ViewCache::new(view, settings)),
            handles: Handles::default(),
            metrics: Arc::default(),
            mounted_at: SystemTime::now(),
            mmap_refusal: MmapRefusal::default(),
        }
    }

    /// Serves `content` at `<mnt>/.cgview-floor`, opened and read exactly like a served file but with no
    /// work behind it: benchmarks measure the FUSE floor of the machine with it.
    pub fn with_floor(mut self, content: Vec<u8>) -> Fs {
        self.content.set_floor(content);
        self
    }

    /// Serves as the `generation`th daemon on a connection (0: the one that mounted it): handles of
    /// earlier daemons are taken on at their first use (see [`Fs::read`]), and mirrored entries keep
    /// the numbers the earlier daemons gave them with `mirror_seed` (recognised at first use too).
    pub fn for_generation(
        mut self,
        generation: u32,
        mirror_seed: Option<[u64; 2]>,
        backing_id: Option<u32>,
    ) -> Fs {
        self.handles = Handles::for_generation(generation);
        self.mmap_refusal = MmapRefusal::inherited(backing_id);
        if let Some(seed) = mirror_seed {
            let paths = self.view().resolver().paths().clone();
            self.mirror = HostMirror::with_seed(&paths, MirrorSeed(seed), true);
        }
        self
    }

    /// The secret the mirror numbers entries with, for the daemons that resume this connection.
    pub fn mirror_seed(&self) -> [u64; 2] {
        self.mirror.seed().0
    }

    pub fn view(&self) -> &View {
        self.cache().view()
    }

    pub fn cache(&self) -> &ViewCache {
        self.content.cache()
    }

    /// What the hot path records for `--metrics-addr`.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The turn `caller`'s requests take (see [`crate::transport::fair_queue`]).
    pub fn fairness_key(&self, caller: &Caller) -> u64 {
        self.cache().fairness_key(caller.pid)
    }

    /// The backing file to name in every OPEN reply (see [`MmapRefusal`]); `register` hands it to the
    /// kernel on the first call.
    pub fn mmap_refusal(
        &self,
        register: impl FnOnce(BorrowedFd<'_>) -> io::Result<u32>,
    ) -> Option<u32> {
        self.mmap_refusal
            .backing_id(self.view().resolver().paths(), register)
    }

    /// How many files and directories are open now.
    pub fn open_count(&self) -> usize {
        self.handles.count()
    }

    /// How many mirrored entries the kernel holds (and this file system keeps) now.
    pub fn mirrored_count(&self) -> usize {
        self.mirror.len()
    }

    // The FUSE operations.

    /// LOOKUP: `name` in directory `parent`, as `caller` sees it.
    pub fn lookup(&self, caller: &Caller, parent: Inode, name: &[u8]) -> Result<Entry, Failure> {
        match guarded("lookup", || self.lookup_node(parent, name, caller)) {
            Ok((node, lifetime)) => {
                let (attr, attr_ttl) = self.attr(&node, caller);
                Ok(Entry::new(attr, attr_ttl, lifetime))
            }
            // A name that does not exist is an answer, not a failure.
            Err(Failure::NotFound) => Err(Failure::NotFound),
            Err(e) => {
                self.metrics.record_error(Operation::Lookup);
                Err(e)
            }
        }
    }

    /// GETATTR: the attributes of `ino` for `caller`, and how long the kernel may keep them.
    pub fn getattr(&self, caller: &Caller, ino: Inode) -> Result<(Attr, Duration), Failure> {
        let node = self.node(ino)?;
        Ok(self.attr(&node, caller))
    }

    /// FORGET and BATCH_FORGET: the kernel dropped `lookups` references to `ino`. A mirrored entry it no
    /// longer holds is dropped, with what was kept about it.
    pub fn forget(&self, ino: Inode, lookups: u64) {
        if let Some(remaining) = self.mirror.forget(ino, lookups) {
            self.content.forget(ino);
            self.metrics.set_mirrored_inodes(remaining);
        }
    }

    /// READLINK: the target of a mirrored symlink (see [`HostMirror::readlink`]).
    pub fn readlink(&self, ino: Inode) -> Result<PathBuf, Failure> {
        if self.nodes.get(ino).is_some() {
            return Err(Failure::InvalidArgument);
        }
        self.mirror.readlink(ino)
    }

    /// OPEN: renders the file for `caller` now and keeps the snapshot until [`Fs::release`]. Every open is
    /// `direct_io` and `noflush` (see [`OPEN_FLAGS`](super::open_reply::OPEN_FLAGS)).
    pub fn open(&self, caller: &Caller, ino: Inode, write: bool) -> Result<u64, Failure> {
        guarded("open", || self.open_file(caller, ino, write)).inspect_err(|_| {
            self.metrics.record_error(Operation::Open);
        })
    }

    fn open_file(&self, caller: &Caller, ino: Inode, write: bool) -> Result<u64, Failure> {
        let node = self.node(ino)?;
        if node.kind.is_directory() {
            return Err(Failure::IsADirectory);
        }
        if write {
            return Err(Failure::ReadOnly);
        }
        // Before any work for the caller: a caller who may not read the file costs no read of it.
        if !self.permits(&node, caller, permissions::READ) {
            return Err(Failure::PermissionDenied);
        }
        let started = self.metrics.enabled().then(Instant::now);
        let content = self.content(&node, caller.tid(), Purpose::Read)?;
        if let (Some(started), Some(file)) = (started, metric_file(node.kind)) {
            self.metrics.record_open(file, started.elapsed());
        }
        Ok(self.handles.open_file(ino, content))
    }

    /// READ: the snapshot a read of open file `fh` at `offset` is cut from; the transport replies with
    /// [`slice_at`](super::handles::slice_at) of it.
    ///
    /// The first read gets what was rendered at open. A later read from offset 0 renders afresh for
    /// `caller`, as procfs does after `lseek(fd, 0, SEEK_SET)`: procps (`top`, `vmstat`, `free -s`) keeps
    /// `/proc/stat` and `/proc/meminfo` open and rereads them that way, and would otherwise see a frozen
    /// file. Reads at other offsets continue the current content, so a file read in pieces is consistent.
    ///
    /// A read into the page cache rather than the reader's buffer ([`ReadInto::PageCache`]) is refused
    /// for a file whose answer is per caller: `sendfile(2)`, `splice(2)` and `copy_file_range(2)` of a
    /// FUSE file go through the inode's page cache even though every open is `direct_io` (and so does a
    /// private `mmap(2)` where the kernel cannot refuse it, see [`MmapRefusal`]). That cache is one per
    /// inode, shared by every container that has the file bind-mounted, so a page filled with one
    /// container's view would be spliced out to another reading at the same moment (measured: one read
    /// in 40 to one in 6 came out as the other container's file). The refusal is
    /// [`Failure::PageCacheRefused`]; busybox `cat`, GNU `cp` and Python's `shutil` then fall back to
    /// `read(2)`, which is served per open. Files that are the same for everyone (host passthrough
    /// readable by all, the floor) may be cached.
    ///
    /// A handle an earlier daemon on this connection issued (the reader opened the file before a
    /// restart) is taken on as if `caller` had opened `ino` now: the caller's current file.
    pub fn read(
        &self,
        caller: &Caller,
        ino: Inode,
        fh: u64,
        offset: u64,
        into: ReadInto,
    ) -> Result<Snapshot, Failure> {
        guarded("read", || {
            if self.handles.is_inherited(fh) && !self.handles.knows_file(fh) {
                self.adopt_file(caller, ino, fh)?;
            }
            if into == ReadInto::PageCache {
                self.refuse_per_caller_page_cache(caller, fh)?;
            }
            self.read_open(caller, fh, offset)
        })
        .inspect_err(|e| {
            // A refused page-cache fill is counted as such, not as a failure.
            if *e != Failure::PageCacheRefused {
                self.metrics.record_error(Operation::Read);
            }
        })
    }

    fn refuse_per_caller_page_cache(&self, caller: &Caller, fh: u64) -> Result<(), Failure> {
        let inode = self.handles.inode_of(fh)?;
        if self.node(inode)?.answers_per_caller() {
            self.metrics.record_page_cache_refusal();
            tracing::debug!(
                inode,
                reader = ?caller.tid(),
                "refused a page-cache fill of a per-caller file"
            );
            return Err(Failure::PageCacheRefused);
        }
        Ok(())
    }

    fn adopt_file(&self, caller: &Caller, ino: Inode, fh: u64) -> Result<(), Failure> {
        let node = self.node(ino)?;
        if node.kind.is_directory() {
            return Err(Failure::IsADirectory);
        }
        if !self.permits(&node, caller, permissions::READ) {
            return Err(Failure::PermissionDenied);
        }
        let content = self.content(&node, caller.tid(), Purpose::Read)?;
        self.handles.adopt_file(fh, ino, content);
        self.metrics.record_handle_adopted();
        Ok(())
    }

    fn read_open(&self, caller: &Caller, fh: u64, offset: u64) -> Result<Snapshot, Failure> {
        let inode = match self.handles.next_read(fh, offset)? {
            NextRead::Kept(content) => return Ok(content),
            NextRead::Remake(inode) => inode,
        };
        // Rendered without the handles locked: other handles' reads do not wait for this one.
        let node = self.node(inode)?;
        let content = self.content(&node, caller.tid(), Purpose::Read)?;
        if let Some(file) = metric_file(node.kind) {
            self.metrics.record_reread(file);
        }
        self.handles.replace(fh, content.clone());
        Ok(content)
    }

    /// RELEASE.
    pub fn release(&self, fh: u64) {
        self.handles.release_file(fh);
    }

    /// OPENDIR: the directory's listing for `caller` is fixed now, so a listing read in several READDIR
    /// calls is consistent.
    pub fn opendir(&self, caller: &Caller, ino: Inode) -> Result<u64, Failure> {
        guarded("opendir", || {
            let node = self.node(ino)?;
            if !self.permits(&node, caller, permissions::READ) {
                return Err(Failure::PermissionDenied);
            }
            let entries = self.list(node, caller.tid())?;
            Ok(self.handles.open_dir(entries))
        })
    }

    /// READDIR: the directory's entries as listed at OPENDIR, `.` and `..` first; entry `i` continues at
    /// offset `i + 1`.
    /// A directory an earlier daemon on this connection opened is listed for `caller` now.
    pub fn readdir(
        &self,
        caller: &Caller,
        ino: Inode,
        fh: u64,
    ) -> Result<Arc<[DirEntry]>, Failure> {
        match self.handles.dir(fh) {
            Err(Failure::BadHandle) if self.handles.is_inherited(fh) => guarded("readdir", || {
                let node = self.node(ino)?;
                if !self.permits(&node, caller, permissions::READ) {
                    return Err(Failure::PermissionDenied);
                }
                let entries = self.list(node, caller.tid())?;
                self.metrics.record_handle_adopted();
                Ok(self.handles.adopt_dir(fh, entries))
            }),
            found => found,
        }
        .inspect_err(|_| {
            self.metrics.record_error(Operation::Readdir);
        })
    }

    /// RELEASEDIR.
    pub fn releasedir(&self, fh: u64) {
        self.handles.release_dir(fh);
    }

    /// ACCESS: `access(2)`, and the kernel's check before `chdir`.
    pub fn access(&self, caller: &Caller, ino: Inode, mask: u32) -> Result<(), Failure> {
        let node = self.node(ino)?;
        if self.permits(&node, caller, mask) {
            Ok(())
        } else {
            Err(Failure::PermissionDenied)
        }
    }

    /// STATFS.
    pub fn statfs(&self) -> Statfs {
        Statfs {
            block_size: BLOCK_SIZE,
            name_max: NAME_MAX,
        }
    }

    // Beyond the protocol.

    /// Walks a path below the mount point (`proc/stat`, `/sys/devices/system/cpu/cpu0/topology/core_id`)
    /// as `caller` would.
    pub fn walk(&self, path: &str, caller: &Caller) -> Result<Node, Failure> {
        let mut node = self.node(ROOT_INODE)?;
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            node = self.lookup_node(node.inode, part.as_bytes(), caller)?.0;
        }
        Ok(node)
    }

    // The pieces the operations share.

    /// The node numbered `inode`.
    fn node(&self, inode: Inode) -> Result<Node, Failure> {
        if let Some(root) = MirrorRoot::of_static_dir(inode) {
            // The node directory of a host without NUMA support is not in the tree.
            if self.nodes.get(inode).is_none() {
                return Err(Failure::NotFound);
            }
            return Ok(self.mirror.root_node(root));
        }
        if let Some(node) = self.nodes.get(inode) {
            return Ok(node.node());
        }
        if inode == FLOOR_INODE {
            return self.content.floor_node().ok_or(Failure::NotFound);
        }
        if let Some(node) = self.content.known_block_stat(inode) {
            return Ok(node);
        }
        if let Some(node) = self.content.known_node_attr(inode) {
            return Ok(node);
        }
        self.mirror.node(inode)
    }

    /// The mirrored directory behind an inode (`None` for the purely static ones).
    fn mirrored_dir(&self, inode: Inode) -> Result<Option<MirrorKey>, Failure> {
        if let Some(root) = MirrorRoot::of_static_dir(inode) {
            return Ok(Some((root, PathBuf::new())));
        }
        if self.nodes.get(inode).is_some() {
            return Ok(None);
        }
        self.mirror.key_of(inode).map(Some)
    }

    /// Looks `name` up in directory `parent` for `caller`.
    fn lookup_node(
        &self,
        parent: Inode,
        name: &[u8],
        caller: &Caller,
    ) -> Result<(Node, NameLifetime), Failure> {
        let parent_node = self.node(parent)?;
        if !parent_node.kind.is_directory() {
            return Err(Failure::NotADirectory);
        }
        if !self.permits(&parent_node, caller, permissions::EXECUTE) {
            return Err(Failure::PermissionDenied);
        }
        if let Some(entry) = nodes::named(parent, name) {
            return match self.nodes.get(entry.inode) {
                Some(entry) => Ok((self.node(entry.inode)?, NameLifetime::Stable)),
                None => Err(Failure::NotFound),
            };
        }
        if parent == ROOT_INODE && name == FLOOR_NAME.as_bytes() {
            return self
                .content
                .floor_node()
                .map(|node| (node, NameLifetime::Stable))
                .ok_or(Failure::NotFound);
        }
        let Some(parent_key) = self.mirrored_dir(parent)? else {
            return Err(Failure::NotFound);
        };
        let name = std::str::from_utf8(name).map_err(|_| Failure::NotFound)?;
        if name.contains('/') || name == "." || name == ".." {
            return Err(Failure::NotFound);
        }
        let mut lifetime = NameLifetime::Stable;
        // `cpuN` in the cpu directory and in each `nodeN`, and `nodeN` in the node directory, exist for
        // the callers that are shown them.
        if parent == CPU_DIR_INODE || is_node_dir(&parent_key) {
            if let Some(id) = cpu_entry_id(name) {
                lifetime = NameLifetime::PerCaller;
                if !self
                    .visible_cpus(caller.tid())
                    .is_none_or(|v| v.contains(id))
                {
                    return Err(Failure::NotFound);
                }
            }
        }
        if parent == NODE_DIR_INODE {
            if let Some(id) = node_entry_id(name) {
                lifetime = NameLifetime::PerCaller;
                if !self
                    .cache()
                    .visible_nodes(caller.tid())
                    .is_none_or(|v| v.contains(id))
                {
                    return Err(Failure::NotFound);
                }
            }
        }
        let (node, mirrored) = self.mirror.lookup(&parent_key, name)?;
        self.metrics.set_mirrored_inodes(mirrored);
        Ok((node, lifetime))
    }

    /// The caller's visible CPUs; `None` when it sees all of the host's.
    fn visible_cpus(&self, caller: Option<u32>) -> Option<CpuSet> {
        self.cache().visible_cpus(caller)
    }

    /// The entries of directory `node` for `caller`, `.` and `..` first.
    fn list(&self, node: Node, caller: Option<u32>) -> Result<Vec<DirEntry>, Failure> {
        let inode = node.inode;
        if !node.kind.is_directory() {
            return Err(Failure::NotADirectory);
        }
        let parent = match nodes::parent_of(inode) {
            Some(parent) => parent,
            None => self.mirror.parent_number(inode)?,
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
        entries.extend(self.nodes.children(inode).map(|n| DirEntry {
            inode: n.inode,
            kind: n.kind,
            name: n.name.to_owned(),
        }));
        if let Some(key) = self.mirrored_dir(inode)? {
            let cpus = (inode == CPU_DIR_INODE || is_node_dir(&key))
                .then(|| self.visible_cpus(caller))
                .flatten();
            let nodes = (inode == NODE_DIR_INODE)
                .then(|| self.cache().visible_nodes(caller))
                .flatten();
            let shown = Shown {
                cpus: cpus.as_ref(),
                nodes: nodes.as_ref(),
            };
            entries.extend(self.mirror.list(inode, &key, &shown)?);
        }
        Ok(entries)
    }

    /// Whether `caller` may do everything in `mask` on `node`, as the kernel would decide (see
    /// [`permissions`]). Reads the caller's groups or capabilities only when the request's ids do not
    /// decide.
    fn permits(&self, node: &Node, caller: &Caller, mask: u32) -> bool {
        let credentials = caller.credentials();
        let mut lookup = self.credentials.caller(caller.tid(), credentials);
        permissions::permits(credentials, node.access(), mask, &mut lookup)
    }

    /// What `node` shows `caller` now.
    fn content(
        &self,
        node: &Node,
        caller: Option<u32>,
        purpose: Purpose,
    ) -> Result<Snapshot, Failure> {
        self.content.of(node, caller, purpose, &self.mirror)
    }

    /// A node's attributes for `caller`, and how long the kernel may keep them.
    fn attr(&self, node: &Node, caller: &Caller) -> (Attr, Duration) {
        let size = guarded("size", || Ok(self.size_for(node, caller))).unwrap_or(0);
        let ttl = match node.kind {
            // A size some callers may not be shown must be asked for by each.
            _ if node.answers_per_caller() => Duration::ZERO,
            _ if node.inode == ROOT_INODE => ROOT_TTL,
            NodeKind::Directory | NodeKind::HostDirectory | NodeKind::HostSymlink => TTL,
            NodeKind::HostFile => HOST_FILE_TTL,
            NodeKind::File(_)
            | NodeKind::BlockStat
            | NodeKind::HostCpuList(_)
            | NodeKind::NodeAttr(_)
            | NodeKind::Floor => Duration::ZERO,
        };
        let attr = Attr {
            ino: node.inode,
            size,
            kind: node.kind,
            perm: node.mode,
            uid: node.owner.uid,
            gid: node.owner.gid,
            nlink: if node.kind.is_directory() { 2 } else { 1 },
            blksize: BLOCK_SIZE,
            time: self.mounted_at,
        };
        (attr, ttl)
    }

    /// The size to report for `node` to `caller`: the length of what it would read now (0 for
    /// directories and symlinks). `sendfile(2)` and `splice(2)` (busybox `cat`) read through the page cache
    /// and stop at the inode's size, so a file reported empty reads as empty there; plain reads ignore it.
    ///
    /// A file whose answer is per caller ([`Node::answers_per_caller`]) is never reported empty: the
    /// inode's size is whichever caller asked last, and `sendfile(2)` on a size-0 inode returns
    /// end-of-file at once, so a container whose `cpu/offline` is `2-3` would read nothing after one whose
    /// `offline` is empty. With a size of at least 1 it tries the page cache, is refused
    /// ([`Fs::read`]) and falls back to `read(2)`.
    ///
    /// A caller who may not read the file is told nothing about it and costs no work: its size is that
    /// floor, 1, without the file being read. (procfs shows 0 for every file; here a 0 would be what the
    /// next reader's `sendfile(2)` stops at, and root's `cat /proc/slabinfo` in an Alpine container would
    /// print nothing after `ls -l /proc` as another user.)
    fn size_for(&self, node: &Node, caller: &Caller) -> u64 {
        if !node.kind.is_regular_file() {
            return 0;
        }
        if node.answers_per_caller() && !self.permits(node, caller, permissions::READ) {
            return 1;
        }
        let length = self
            .content(node, caller.tid(), Purpose::Size)
            .map_or(0, |content| content.len() as u64);
        if node.answers_per_caller() {
            length.max(1)
        } else {
            length
        }
    }
}

/// Runs a handler body that may render or resolve a caller. A bug there must cost one request, not a
/// worker that never replies (the caller would hang in the kernel).
fn guarded<T>(what: &str, body: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    std::panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        tracing::error!("{what} panicked; replying EIO");
        Err(Failure::Internal)
    })
}
