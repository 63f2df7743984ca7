//! The hot path's caches (design.md section 4): caller thread -> container, kept-open cgroup files per
//! container, and rendered snapshots per (container, file).
//!
//! Staleness is bounded and stated in the README:
//! - a snapshot is served for [`CacheSettings::snapshot_ttl`] after its render started; a reader that finds it
//!   older renders it again, while readers arriving during that render get the previous snapshot if it is
//!   younger than [`CacheSettings::max_stale`] (they never wait behind a render otherwise);
//! - a container younger than [`CacheSettings::settling`] (its pid namespace's init started that recently)
//!   has nothing reused: every request renders. runc writes a container's resource limits only after its
//!   init has set up the mounts, and stating a bind source from cgview renders the file for the
//!   half-made container (no limit yet); a snapshot kept from then would give a fast starter (podman's
//!   containers read within a few ms) the host's memory in its first read;
//! - a caller's container is looked up again after [`CacheSettings::membership_ttl`], so a process moved to
//!   another cgroup sees its new container's files within that time (plus a snapshot's life);
//! - a caller thread is checked to be the one resolved on every use, by the identity of its
//!   `/proc/<tid>` (see [`Resolver::thread_identity`](crate::host::resolve::Resolver::thread_identity)):
//!   a new thread that reuses the id is resolved afresh and never sees another container's view. The
//!   check costs one `statx` and no descriptor.
//!
//! Containers are told apart by their cgroups' inodes as well as paths, so a cgroup removed and made again
//! at the same path is a new container: nothing cached for the old one is served to the new one. A render
//! that finds its cgroup gone drops the container and resolves the caller again at once.
//!
//! Descriptors are budgeted ([`FdBudget`]): a container keeps its cgroup files open from its second
//! render on, while the budget allows; past it, files are read with open-read-close. Every map is
//! bounded; [`ViewCache::maintain`], run every second by the janitor thread, drops idle callers and
//! containers and closes the least recently used containers' files when the budget runs low.

use crate::host::error::ReadError;
use crate::host::fd_budget::{budget_for_limit, nofile_limit, FdBudget};
use crate::host::files::{FileSource, KeptOpen, OpenEachTime};
use crate::host::resolve::Container;
use crate::service::fallback::FallbackCause;
use crate::service::view::{render_host, Rendered, Source, View};
use cgview_core::catalog::{NodeAttr, ServedFile};
use cgview_core::model::numa::NodeSet;
use cgview_core::parse::cpuset::CpuSet;
use cgview_core::parse::diskstats::DeviceId;
use cgview_core::render::cpu_list::CpuListFormat;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Content as served: shared by every open handle that got it.
pub type Snapshot = Arc<[u8]>;

/// Bounds and lifetimes of the caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    pub snapshot_ttl: Duration,
    pub max_stale: Duration,
    pub membership_ttl: Duration,
    /// Callers and containers unused for this long are dropped by a sweep.
    pub idle_after: Duration,
    pub max_callers: usize,
    pub max_containers: usize,
    /// Cgroup files kept open at most, over all containers; `None`: derived from the descriptor limit in
    /// force when the cache is made ([`budget_for_limit`]).
    pub fd_budget: Option<usize>,
    /// How long after its start a container's snapshots are not reused (see the module docs).
    pub settling: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            snapshot_ttl: Duration::from_millis(100),
            max_stale: Duration::from_millis(500),
            membership_ttl: Duration::from_secs(1),
            idle_after: Duration::from_secs(60),
            max_callers: 16_384,
            max_containers: 4_096,
            fd_budget: None,
            settling: Duration::from_secs(1),
        }
    }
}

/// Where the cache reads the time. Production uses [`SystemClock`]; tests step their own, so that TTLs
/// and idleness are tested without sleeping.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Instant;
}

/// The monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Why content is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Served to a reader (an open, a reread): a fallback answering it is counted, once per read.
    Read,
    /// Only measured (the size a `stat` reports): nothing is counted.
    Size,
}

/// A served file's content and where it came from.
#[derive(Debug, Clone)]
pub struct Cached {
    pub bytes: Snapshot,
    pub source: Source,
}

/// The CPUs a container is shown (`None`: all the host's online CPUs), or why they cannot be told.
type VisibleCpus = Result<Option<CpuSet>, FallbackCause>;

/// The NUMA nodes a container is shown (`None`: all the host's online nodes), or why they cannot be told.
type VisibleNodes = Result<Option<NodeSet>, FallbackCause>;

/// A value and when the render that made it started: it is at least this fresh.
#[derive(Debug, Clone)]
struct Stamped<T> {
    value: T,
    rendered_at: Instant,
}

/// One file's latest snapshot (or another rendered value) for one container.
#[derive(Debug)]
struct Slot<T = Cached> {
    current: Mutex<Option<Stamped<T>>>,
    /// Held by the one reader re-rendering this slot.
    refresh: Mutex<()>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            current: Mutex::new(None),
            refresh: Mutex::new(()),
        }
    }
}

impl<T: Clone> Slot<T> {
    fn current(&self) -> Option<Stamped<T>> {
        self.current.lock().clone()
    }

    /// Drops a snapshot nobody asked for in a while: its memory goes back, the next reader renders.
    fn forget_older_than(&self, deadline: Instant) {
        let mut current = self.current.lock();
        if current.as_ref().is_some_and(|c| c.rendered_at < deadline) {
            *current = None;
        }
    }
}

/// What the cache knows about one container.
#[derive(Debug)]
struct ContainerEntry {
    container: Container,
    /// From when its snapshots may be served again (see [`CacheSettings::settling`]).
    settled_at: Instant,
    files: KeptOpen,
    slots: [Slot; ServedFile::ALL.len()],
    /// The CPUs it is shown, for listings of `sys/devices/system/cpu`; computed as its CPU files are.
    cpus: Slot<VisibleCpus>,
    /// The NUMA nodes it is shown, for listings of `sys/devices/system/node`.
    nodes: Slot<VisibleNodes>,
    /// `sys/block/<dev>[/<part>]/stat` snapshots by tree inode.
    block_stats: Mutex<HashMap<u64, Arc<Slot>>>,
    /// Snapshots of the cpu directory's files that print a set of CPUs, by tree inode.
    cpu_lists: Mutex<HashMap<u64, Arc<Slot>>>,
    /// `sys/devices/system/node/nodeN/{cpulist,cpumap,distance,meminfo}` snapshots by tree inode.
    node_files: Mutex<HashMap<u64, Arc<Slot>>>,
    last_used: AtomicU64,
    /// A render found the cgroup gone: callers resolve again.
    vanished: AtomicBool,
    /// Content requests served (open, stat, reread), for the busiest-containers metric.
    requests: AtomicU64,
    /// Renders started; files are kept open from the second on (a container that reads once, like a
    /// `unshare ... cat`, holds no descriptor).
    renders: AtomicU64,
}

impl ContainerEntry {
    fn new(container: Container, budget: Arc<FdBudget>, settled_at: Instant) -> ContainerEntry {
        ContainerEntry {
            container,
            settled_at,
            files: KeptOpen::new(budget),
            slots: Default::default(),
            cpus: Slot::default(),
            nodes: Slot::default(),
            block_stats: Mutex::new(HashMap::new()),
            cpu_lists: Mutex::new(HashMap::new()),
            node_files: Mutex::new(HashMap::new()),
            last_used: AtomicU64::new(0),
            vanished: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            renders: AtomicU64::new(0),
        }
    }

    /// Where this render reads cgroup files from.
    fn file_source(&self) -> &dyn FileSource {
        if self.renders.fetch_add(1, Ordering::Relaxed) == 0 {
            &OpenEachTime
        } else {
            &self.files
        }
    }
}

/// A caller thread whose container is known.
#[derive(Debug)]
struct CallerEntry {
    /// The identity of the thread that was resolved; another thread with the same id has another.
    identity: u64,
    container: Arc<ContainerEntry>,
    resolved_at: Instant,
    last_used: AtomicU64,
}

/// Serves rendered files through the caches. One per mount, shared by every FUSE worker.
#[derive(Debug)]
pub struct ViewCache {
    view: Arc<View>,
    settings: CacheSettings,
    clock: Arc<dyn Clock>,
    epoch: Instant,
    callers: Mutex<HashMap<u32, CallerEntry>>,
    containers: Mutex<HashMap<Container, Arc<ContainerEntry>>>,
    /// Snapshots for callers whose view is the host's because the daemon cannot see them.
    host: [Slot; ServedFile::ALL.len()],
    budget: Arc<FdBudget>,
    stats: CacheStats,
}

/// Counters of cache behaviour, for tests, benchmarks and metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub caller_hits: AtomicU64,
    pub caller_misses: AtomicU64,
    pub snapshot_hits: AtomicU64,
    pub renders: AtomicU64,
    /// Renders that found the caller's cgroup gone and resolved the caller again.
    pub re_resolved: AtomicU64,
    /// Containers whose kept files the janitor closed to stay inside the descriptor budget.
    pub files_closed_for_budget: AtomicU64,
}

impl ViewCache {
    pub fn new(view: Arc<View>, settings: CacheSettings) -> ViewCache {
        ViewCache::with_clock(view, settings, Arc::new(SystemClock))
    }

    /// A cache that reads the time from `clock`.
    pub fn with_clock(
        view: Arc<View>,
        settings: CacheSettings,
        clock: Arc<dyn Clock>,
    ) -> ViewCache {
        let budget = settings
            .fd_budget
            .unwrap_or_else(|| budget_for_limit(nofile_limit()));
        ViewCache {
            view,
            settings,
            epoch: clock.now(),
            clock,
            callers: Mutex::new(HashMap::new()),
            containers: Mutex::new(HashMap::new()),
            host: Default::default(),
            budget: FdBudget::new(budget),
            stats: CacheStats::default(),
        }
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Which container the requests of thread `tid` queue under (see [`crate::transport::fair_queue`]): its cached
    /// container entry's identity; for a thread not seen yet, its pid namespace (one `statx`), so that a
    /// container starting thousands of threads at once queues them under one key.
    pub fn fairness_key(&self, tid: u32) -> u64 {
        let known = self
            .callers
            .lock()
            .get(&tid)
            .map(|caller| Arc::as_ptr(&caller.container) as u64);
        known
            .or_else(|| self.view.resolver().pid_namespace_of(tid))
            .unwrap_or(0)
    }

    /// The descriptors kept open for cgroup files.
    pub fn fd_budget(&self) -> &Arc<FdBudget> {
        &self.budget
    }

    /// Callers and containers currently cached.
    pub fn sizes(&self) -> (usize, usize) {
        (self.callers.lock().len(), self.containers.lock().len())
    }

    /// `file` as the caller with thread id `caller` sees it, for a reader ([`Purpose::Read`]).
    pub fn get(&self, file: ServedFile, caller: Option<u32>) -> Result<Cached, ReadError> {
        self.serve(file, caller, Purpose::Read)
    }

    /// `file` as the caller with thread id `caller` sees it, asked for `purpose`. A read answered with
    /// the host file in place of the caller's view is counted once, whether its snapshot was rendered
    /// for it or served from the cache.
    pub fn serve(
        &self,
        file: ServedFile,
        caller: Option<u32>,
        purpose: Purpose,
    ) -> Result<Cached, ReadError> {
        let host_path = || self.view.resolver().paths().served_file(file);
        let cached = match caller {
            None => self.through_slot(None, &self.host[file as usize], || {
                Ok(cached(render_host(&host_path())?))
            })?,
            Some(tid) => self.for_caller(
                tid,
                |entry: &ContainerEntry| {
                    self.through_slot(Some(entry.settled_at), &entry.slots[file as usize], || {
                        let rendered = self.view.render_for(
                            file,
                            &entry.container,
                            tid,
                            entry.file_source(),
                        )?;
                        Ok(cached(rendered))
                    })
                },
                found_cgroup_gone,
                |error| {
                    let rendered = self.view.render_unresolved(file, &host_path(), error)?;
                    Ok(cached(rendered))
                },
            )?,
        };
        self.count_read(file, purpose, &cached);
        Ok(cached)
    }

    /// Counts a read answered with a fallback.
    fn count_read(&self, file: ServedFile, purpose: Purpose, cached: &Cached) {
        if let (Purpose::Read, Source::Fallback(cause)) = (purpose, cached.source) {
            self.view.count_fallback(file, cause);
        }
    }

    /// Serves `tid` through its container's entry; when the render finds the cgroup gone (`vanished`: the
    /// caller moved, or its cgroup was made again at the same path), resolves it again and serves the new
    /// one. A caller that cannot be resolved is served by `unresolved`, given why: it is resolved once per
    /// request.
    fn for_caller<T>(
        &self,
        tid: u32,
        render: impl Fn(&ContainerEntry) -> Result<T, ReadError>,
        vanished: impl Fn(&T) -> bool,
        unresolved: impl FnOnce(ReadError) -> Result<T, ReadError>,
    ) -> Result<T, ReadError> {
        let entry = match self.container_of(tid) {
            Ok(entry) => entry,
            Err(error) => return unresolved(error),
        };
        let served = render(&entry)?;
        let gone = vanished(&served);
        self.after_serving(&entry, gone);
        if !gone {
            return Ok(served);
        }
        self.callers.lock().remove(&tid);
        let Ok(again) = self.container_of(tid) else {
            return Ok(served);
        };
        if Arc::ptr_eq(&again, &entry) {
            return Ok(served);
        }
        self.stats.re_resolved.fetch_add(1, Ordering::Relaxed);
        let served = render(&again)?;
        self.after_serving(&again, vanished(&served));
        Ok(served)
    }

    /// A block device's `stat` (tree inode `inode`, host file `host_stat`, device `device`) for the caller,
    /// for a reader.
    pub fn get_block_stat(
        &self,
        inode: u64,
        host_stat: &Path,
        device: DeviceId,
        caller: Option<u32>,
    ) -> Result<Cached, ReadError> {
        self.serve_block_stat(inode, host_stat, device, caller, Purpose::Read)
    }

    /// [`ViewCache::get_block_stat`] for `purpose`; fallbacks count under `/proc/diskstats`, which has the
    /// same source.
    pub fn serve_block_stat(
        &self,
        inode: u64,
        host_stat: &Path,
        device: DeviceId,
        caller: Option<u32>,
        purpose: Purpose,
    ) -> Result<Cached, ReadError> {
        let Some(tid) = caller else {
            return Ok(cached(render_host(host_stat)?));
        };
        let render = |entry: &ContainerEntry| {
            let slot = entry.block_stats.lock().entry(inode).or_default().clone();
            self.through_slot(Some(entry.settled_at), &slot, || {
                let rendered = self.view.render_block_stat_for(
                    host_stat,
                    device,
                    &entry.container,
                    entry.file_source(),
                )?;
                Ok(cached(rendered))
            })
        };
        let unresolved = |error| {
            let rendered = self
                .view
                .render_unresolved(ServedFile::Diskstats, host_stat, error)?;
            Ok(cached(rendered))
        };
        let cached = self.for_caller(tid, render, found_cgroup_gone, unresolved)?;
        self.count_read(ServedFile::Diskstats, purpose, &cached);
        Ok(cached)
    }

    /// A file of the cpu directory that prints a set of CPUs (tree inode `inode`, host file `host_file`, in
    /// `format`) for the caller, asked for `purpose`: the host's set restricted to the CPUs the caller is
    /// shown, from the same cached visible CPUs as its `cpuN` entries and CPU files. Fallbacks count under
    /// `cpu/online`, which has the same source.
    pub fn serve_cpu_list(
        &self,
        inode: u64,
        host_file: &Path,
        format: CpuListFormat,
        caller: Option<u32>,
        purpose: Purpose,
    ) -> Result<Cached, ReadError> {
        let Some(tid) = caller else {
            return Ok(cached(render_host(host_file)?));
        };
        let render = |entry: &ContainerEntry| {
            let slot = entry.cpu_lists.lock().entry(inode).or_default().clone();
            self.through_slot(Some(entry.settled_at), &slot, || {
                let visible = self.visible_cpus_of(entry)?;
                let rendered = self.view.render_cpu_list_for(host_file, format, &visible)?;
                Ok(cached(rendered))
            })
        };
        let unresolved = |error| {
            let rendered = self
                .view
                .render_unresolved(ServedFile::CpuOnline, host_file, error)?;
            Ok(cached(rendered))
        };
        let cached = self.for_caller(tid, render, found_cgroup_gone, unresolved)?;
        self.count_read(ServedFile::CpuOnline, purpose, &cached);
        Ok(cached)
    }

    /// The CPUs `entry`'s container is shown, through its cached slot.
    fn visible_cpus_of(&self, entry: &ContainerEntry) -> Result<VisibleCpus, ReadError> {
        self.through_slot(Some(entry.settled_at), &entry.cpus, || {
            Ok(self
                .view
                .visible_cpus_for(&entry.container, entry.file_source()))
        })
    }

    /// File `attr` of NUMA node `node` (tree inode `inode`, host file `host_file`) for the caller, asked
    /// for `purpose`; fallbacks count under the served file with the same source. A node's `meminfo` is
    /// made from the caller's `/proc/meminfo` snapshot, so the two agree while it lives.
    pub fn serve_node_attr(
        &self,
        inode: u64,
        attr: NodeAttr,
        node: u32,
        host_file: &Path,
        caller: Option<u32>,
        purpose: Purpose,
    ) -> Result<Cached, ReadError> {
        let Some(tid) = caller else {
            return Ok(cached(render_host(host_file)?));
        };
        let render = |entry: &ContainerEntry| {
            let meminfo = match attr {
                NodeAttr::Meminfo => Some(self.through_slot(
                    Some(entry.settled_at),
                    &entry.slots[ServedFile::Meminfo as usize],
                    || {
                        let rendered = self.view.render_for(
                            ServedFile::Meminfo,
                            &entry.container,
                            tid,
                            entry.file_source(),
                        )?;
                        Ok(cached(rendered))
                    },
                )?),
                _ => None,
            };
            let slot = entry.node_files.lock().entry(inode).or_default().clone();
            self.through_slot(Some(entry.settled_at), &slot, || {
                let rendered = self.view.render_node_attr_for(
                    attr,
                    node,
                    host_file,
                    &entry.container,
                    entry.file_source(),
                    meminfo.as_ref().map(|m| (&m.bytes[..], m.source)),
                )?;
                Ok(cached(rendered))
            })
        };
        let unresolved = |error| {
            let rendered = self
                .view
                .render_unresolved(attr.fallback_file(), host_file, error)?;
            Ok(cached(rendered))
        };
        let cached = self.for_caller(tid, render, found_cgroup_gone, unresolved)?;
        self.count_read(attr.fallback_file(), purpose, &cached);
        Ok(cached)
    }

    /// The NUMA nodes the caller is shown; `None` when it sees all of the host's online nodes or when
    /// they cannot be determined. Cached as [`ViewCache::visible_cpus`] is.
    pub fn visible_nodes(&self, caller: Option<u32>) -> Option<NodeSet> {
        let tid = caller?;
        let render = |entry: &ContainerEntry| {
            self.through_slot(Some(entry.settled_at), &entry.nodes, || {
                Ok(self
                    .view
                    .visible_nodes_for(&entry.container, entry.file_source()))
            })
        };
        let vanished = |nodes: &VisibleNodes| *nodes == Err(FallbackCause::CgroupVanished);
        let unresolved = |_| Ok(Err(FallbackCause::CallerGone));
        self.for_caller(tid, render, vanished, unresolved)
            .ok()?
            .ok()
            .flatten()
    }

    /// The CPUs the caller is shown; `None` when it sees all of the host's online CPUs or when they cannot
    /// be determined. Computed as the CPU files are rendered, and cached as their snapshots are (for as
    /// long, so listings and those files agree within a snapshot's life).
    pub fn visible_cpus(&self, caller: Option<u32>) -> Option<CpuSet> {
        let tid = caller?;
        let render = |entry: &ContainerEntry| self.visible_cpus_of(entry);
        let vanished = |cpus: &VisibleCpus| *cpus == Err(FallbackCause::CgroupVanished);
        let unresolved = |_| Ok(Err(FallbackCause::CallerGone));
        self.for_caller(tid, render, vanished, unresolved)
            .ok()?
            .ok()
            .flatten()
    }

    fn after_serving(&self, entry: &ContainerEntry, cgroup_gone: bool) {
        if cgroup_gone {
            self.forget_container(entry);
        }
        entry.last_used.store(self.now_ms(), Ordering::Relaxed);
        entry.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The `limit` cgroups whose containers asked for the most content, busiest first, named by cgroup
    /// path (memory controller's, else the unified one). Entries that share a cgroup (one per pid
    /// namespace in it) are summed: a metric series per cgroup must be unique, keep its name while the
    /// cgroup lives, and not multiply with the pid namespaces a tenant creates.
    pub fn busiest_containers(&self, limit: usize) -> Vec<(String, u64)> {
        let mut by_cgroup: HashMap<String, u64> = HashMap::new();
        for entry in self.containers.lock().values() {
            let cgroups = &entry.container.cgroups;
            let dir = cgroups.memory.as_ref().or(cgroups.unified.as_ref());
            let name = dir.map_or_else(|| "?".to_owned(), |d| format!("/{}", d.relative.display()));
            *by_cgroup.entry(name).or_default() += entry.requests.load(Ordering::Relaxed);
        }
        let mut all: Vec<(String, u64)> = by_cgroup.into_iter().collect();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(limit);
        all
    }

    /// The caller's container entry, from the caller cache when the thread is still the one resolved.
    /// A caller that cannot be resolved (it exited, its files do not parse) gets why, and nothing is kept.
    fn container_of(&self, tid: u32) -> Result<Arc<ContainerEntry>, ReadError> {
        let now = self.clock.now();
        let known = self.callers.lock().get(&tid).map(|caller| {
            caller.last_used.store(self.ms(now), Ordering::Relaxed);
            (
                caller.identity,
                caller.container.clone(),
                caller.resolved_at,
            )
        });
        if let Some((identity, entry, resolved_at)) = known {
            let fresh = now.duration_since(resolved_at) < self.settings.membership_ttl;
            if fresh
                && !entry.vanished.load(Ordering::Relaxed)
                && self.view.resolver().thread_identity(tid) == Some(identity)
            {
                self.stats.caller_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(entry);
            }
        }
        self.stats.caller_misses.fetch_add(1, Ordering::Relaxed);
        self.resolve_caller(tid, now)
    }

    fn resolve_caller(&self, tid: u32, now: Instant) -> Result<Arc<ContainerEntry>, ReadError> {
        // Taken before resolving: if the thread is replaced meanwhile, the check after resolving fails.
        let identity = self.view.resolver().thread_identity(tid);
        let container = self.view.resolve(tid)?;
        let entry = self.intern(container);
        match identity {
            Some(identity) if self.view.resolver().thread_identity(tid) == Some(identity) => {
                let mut callers = self.callers.lock();
                if callers.len() >= self.settings.max_callers && !callers.contains_key(&tid) {
                    evict_some(&mut callers, |c| c.last_used.load(Ordering::Relaxed));
                }
                callers.insert(
                    tid,
                    CallerEntry {
                        identity,
                        container: entry.clone(),
                        resolved_at: now,
                        last_used: AtomicU64::new(self.ms(now)),
                    },
                );
            }
            // Gone already, or replaced: serve it, remember nothing.
            _ => {}
        }
        Ok(entry)
    }

    /// The shared entry of `container`, created when new.
    fn intern(&self, container: Container) -> Arc<ContainerEntry> {
        let known = |containers: &HashMap<Container, Arc<ContainerEntry>>| {
            containers
                .get(&container)
                .filter(|entry| !entry.vanished.load(Ordering::Relaxed))
                .cloned()
        };
        if let Some(entry) = known(&self.containers.lock()) {
            return entry;
        }
        // Outside the lock: it reads the host's uptime.
        let settled_at = self.settled_at(&container);
        let mut containers = self.containers.lock();
        if let Some(entry) = known(&containers) {
            return entry;
        }
        if containers.len() >= self.settings.max_containers {
            evict_some(&mut containers, |c| c.last_used.load(Ordering::Relaxed));
        }
        let entry = Arc::new(ContainerEntry::new(
            container.clone(),
            self.budget.clone(),
            settled_at,
        ));
        entry.last_used.store(self.now_ms(), Ordering::Relaxed);
        containers.insert(container, entry.clone());
        entry
    }

    fn forget_container(&self, entry: &ContainerEntry) {
        entry.vanished.store(true, Ordering::Relaxed);
        let mut containers = self.containers.lock();
        if containers
            .get(&entry.container)
            .is_some_and(|e| std::ptr::eq(Arc::as_ptr(e), entry))
        {
            containers.remove(&entry.container);
        }
    }

    /// When a new container's snapshots may first be reused: [`CacheSettings::settling`] after its start
    /// (at once for a caller of the host's pid namespace, or when its age cannot be read).
    fn settled_at(&self, container: &Container) -> Instant {
        let now = self.clock.now();
        match self.view.container_age(container) {
            Some(age) => now + self.settings.settling.saturating_sub(age),
            None => now,
        }
    }

    /// Serves a slot's snapshot, rendering it when it is missing or too old (see the module docs); for a
    /// container not `settled_at` yet, renders and keeps nothing.
    fn through_slot<T: Clone>(
        &self,
        settled_at: Option<Instant>,
        slot: &Slot<T>,
        render: impl FnOnce() -> Result<T, ReadError>,
    ) -> Result<T, ReadError> {
        let now = self.clock.now();
        if settled_at.is_some_and(|settled_at| now < settled_at) {
            let value = render()?;
            self.stats.renders.fetch_add(1, Ordering::Relaxed);
            return Ok(value);
        }
        let current = slot.current();
        if let Some(cached) = &current {
            if now.duration_since(cached.rendered_at) < self.settings.snapshot_ttl {
                self.stats.snapshot_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(cached.value.clone());
            }
        }
        // Nobody waits for another reader's render: while one runs, the others get the previous snapshot
        // when it is recent enough, and render for themselves otherwise.
        let refreshing = slot.refresh.try_lock();
        if refreshing.is_none() {
            if let Some(cached) =
                current.filter(|c| now.duration_since(c.rendered_at) < self.settings.max_stale)
            {
                self.stats.snapshot_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(cached.value);
            }
        }
        let started = self.clock.now();
        let value = render()?;
        self.stats.renders.fetch_add(1, Ordering::Relaxed);
        {
            let mut current = slot.current.lock();
            // A concurrent render that started later has the fresher content.
            if current.as_ref().is_none_or(|c| c.rendered_at <= started) {
                *current = Some(Stamped {
                    value: value.clone(),
                    rendered_at: started,
                });
            }
        }
        Ok(value)
    }

    /// The time on the cache's clock, for callers that drive [`maintain`](Self::maintain).
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The janitor's round (every second): [`ViewCache::sweep`], then, while the descriptor budget is
    /// nearly spent, closes the kept files of the least recently used containers until a quarter of it is
    /// free. Their next renders read with open-read-close, and keep files again as the budget allows.
    pub fn maintain(&self, now: Instant) {
        self.sweep(now);
        if !self.budget.is_nearly_spent() {
            return;
        }
        let mut holding: Vec<Arc<ContainerEntry>> = self
            .containers
            .lock()
            .values()
            .filter(|entry| !entry.files.is_empty())
            .cloned()
            .collect();
        holding.sort_unstable_by_key(|entry| entry.last_used.load(Ordering::Relaxed));
        for entry in holding {
            if self.budget.excess() == 0 {
                break;
            }
            if entry.files.close_all() > 0 {
                self.stats
                    .files_closed_for_budget
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Drops callers and containers idle for [`CacheSettings::idle_after`] and snapshots nobody read for
    /// a few lifetimes.
    pub fn sweep(&self, now: Instant) {
        let idle_before = self
            .ms(now)
            .saturating_sub(self.settings.idle_after.as_millis() as u64);
        self.callers
            .lock()
            .retain(|_, c| c.last_used.load(Ordering::Relaxed) >= idle_before);
        let snapshot_deadline = now.checked_sub(self.settings.max_stale * 4).unwrap_or(now);
        let mut containers = self.containers.lock();
        containers.retain(|_, c| {
            // An entry callers still point at stays until they go.
            Arc::strong_count(c) > 1 || c.last_used.load(Ordering::Relaxed) >= idle_before
        });
        for entry in containers.values() {
            for slot in &entry.slots {
                slot.forget_older_than(snapshot_deadline);
            }
            entry.cpus.forget_older_than(snapshot_deadline);
            entry.nodes.forget_older_than(snapshot_deadline);
            for per_inode in [&entry.block_stats, &entry.cpu_lists, &entry.node_files] {
                per_inode.lock().retain(|_, slot| {
                    slot.current()
                        .is_some_and(|c| c.rendered_at >= snapshot_deadline)
                });
            }
        }
        drop(containers);
        for slot in &self.host {
            slot.forget_older_than(snapshot_deadline);
        }
    }

    fn now_ms(&self) -> u64 {
        self.ms(self.clock.now())
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }
}

fn cached(rendered: Rendered) -> Cached {
    Cached {
        bytes: rendered.bytes.into(),
        source: rendered.source,
    }
}

/// A render that found the caller's cgroup gone: its container entry is dropped.
fn found_cgroup_gone(cached: &Cached) -> bool {
    cached.source == Source::Fallback(FallbackCause::CgroupVanished)
}

/// Makes room in a full map: drops the least recently used quarter.
fn evict_some<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    last_used: impl Fn(&V) -> u64,
) {
    let mut ages: Vec<u64> = map.values().map(&last_used).collect();
    ages.sort_unstable();
    let Some(&cutoff) = ages.get(ages.len() / 4) else {
        return;
    };
    map.retain(|_, v| last_used(v) > cutoff);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::layout::{CgroupLayout, CgroupMount, CgroupVersion};
    use crate::host::paths::HostPaths;
    use crate::host::resolve::Resolver;
    use crate::service::view::ViewOptions;
    use cgview_core::parse::cpuset::parse_cpu_list;
    use cgview_core::parse::meminfo::meminfo_value;
    use std::fs;
    use std::os::unix::fs::symlink;

    const HOST_NS: &str = "pid:[4026531836]";
    const MIB: u64 = 1 << 20;

    /// A clock that moves only when told.
    #[derive(Debug)]
    struct SteppedClock(Mutex<Instant>);

    impl SteppedClock {
        fn advance(&self, by: Duration) {
            *self.0.lock() += by;
        }
    }

    impl Clock for SteppedClock {
        fn now(&self) -> Instant {
            *self.0.lock()
        }
    }

    /// A fake host: `proc/`, `sys/` with 4 online CPUs, and a unified cgroup hierarchy at `cgroup/`.
    struct Host {
        dir: tempfile::TempDir,
        paths: HostPaths,
    }

    impl Host {
        fn new() -> Host {
            let dir = tempfile::tempdir().unwrap();
            let paths = HostPaths {
                proc_root: dir.path().join("proc"),
                sys_root: dir.path().join("sys"),
                cgroup_root: dir.path().join("cgroup"),
            };
            fs::create_dir_all(paths.proc_root.join("self/ns")).unwrap();
            symlink(HOST_NS, paths.proc_root.join("self/ns/pid")).unwrap();
            fs::write(
                paths.proc_root.join("meminfo"),
                "MemTotal:       16384000 kB\nMemFree:        12000000 kB\n\
                 MemAvailable:   14000000 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n",
            )
            .unwrap();
            let cpu = paths.sys_root.join("devices/system/cpu");
            fs::create_dir_all(&cpu).unwrap();
            fs::write(cpu.join("online"), "0-3\n").unwrap();
            fs::create_dir_all(&paths.cgroup_root).unwrap();
            Host { dir, paths }
        }

        /// Cgroup `name` with memory limit `memory_max`, 100 MiB in use.
        fn cgroup(&self, name: &str, memory_max: &str) {
            let dir = self.paths.cgroup_root.join(name);
            fs::create_dir_all(&dir).unwrap();
            self.cgroup_file(name, "memory.max", memory_max);
            self.cgroup_file(name, "memory.current", &(100 * MIB).to_string());
            self.cgroup_file(name, "memory.stat", "anon 0\nfile 0\n");
        }

        fn cgroup_file(&self, cgroup: &str, file: &str, text: &str) {
            let path = self.paths.cgroup_root.join(cgroup).join(file);
            fs::write(path, format!("{text}\n")).unwrap();
        }

        /// A process of the host pid namespace in cgroup `/<cgroup>`.
        fn process(&self, pid: u32, cgroup: &str) {
            let dir = self.paths.proc_root.join(pid.to_string());
            fs::create_dir_all(dir.join("ns")).unwrap();
            if fs::symlink_metadata(dir.join("ns/pid")).is_err() {
                symlink(HOST_NS, dir.join("ns/pid")).unwrap();
            }
            fs::write(dir.join("cgroup"), format!("0::/{cgroup}\n")).unwrap();
        }

        /// Process `pid` exits and a new one takes its id, in cgroup `/<cgroup>`. The old directory is
        /// kept aside so that the new one cannot get its inode number.
        fn recycle(&self, pid: u32, cgroup: &str) {
            let old = self.dir.path().join(format!("exited-{pid}"));
            fs::rename(self.paths.proc_root.join(pid.to_string()), old).unwrap();
            self.process(pid, cgroup);
        }

        fn cache(&self, settings: CacheSettings) -> (ViewCache, Arc<SteppedClock>) {
            let layout = CgroupLayout {
                v1: Vec::new(),
                unified: Some(CgroupMount {
                    version: CgroupVersion::V2,
                    mount_point: self.paths.cgroup_root.clone(),
                    root: "/".into(),
                    controllers: vec!["memory".into(), "cpu".into(), "cpuset".into()],
                }),
            };
            let view = View::new(
                Resolver::new(self.paths.clone(), layout),
                ViewOptions::default(),
            );
            let clock = Arc::new(SteppedClock(Mutex::new(Instant::now())));
            let settings = CacheSettings {
                fd_budget: Some(64),
                ..settings
            };
            (
                ViewCache::with_clock(Arc::new(view), settings, clock.clone()),
                clock,
            )
        }
    }

    impl Host {
        /// A container's init, `pid`, in cgroup `/<cgroup>` and a pid namespace of its own, started
        /// `age_ms` ago by the host's uptime; its parent is host process 50 (the runtime).
        fn container_init(&self, pid: u32, cgroup: &str, age_ms: u64) {
            self.process(50, "");
            let dir = self.paths.proc_root.join(pid.to_string());
            fs::create_dir_all(dir.join("ns")).unwrap();
            symlink("pid:[4026532999]", dir.join("ns/pid")).unwrap();
            fs::write(dir.join("cgroup"), format!("0::/{cgroup}\n")).unwrap();
            fs::write(
                dir.join("status"),
                format!("Name:\tsh\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t50\nNSpid:\t{pid}\t1\n"),
            )
            .unwrap();
            let ticks_per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                .unwrap()
                .unwrap() as u64;
            let start_ticks = 1000 * ticks_per_sec;
            fs::write(
                dir.join("stat"),
                format!("{pid} (sh) S 50 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start_ticks} 0 0"),
            )
            .unwrap();
            let up = 1000.0 + age_ms as f64 / 1000.0;
            fs::write(
                self.paths.proc_root.join("uptime"),
                format!("{up:.2} 0.00\n"),
            )
            .unwrap();
        }
    }

    /// runc writes a container's limits after its init set up the mounts, and a stat of a bind source
    /// renders for the half-made container: nothing rendered in a container's first second is reused,
    /// so its first reader sees the limit the runtime wrote since. After that, snapshots live their TTL.
    #[test]
    fn a_young_containers_snapshots_are_not_reused() {
        let host = Host::new();
        host.cgroup("ctr", "max");
        host.container_init(800, "ctr", 200);
        let (cache, clock) = host.cache(CacheSettings::default());
        assert_eq!(mem_total_kb(&cache, 800), 16_384_000, "no limit yet");
        host.cgroup_file("ctr", "memory.max", &(300 * MIB).to_string());
        assert_eq!(mem_total_kb(&cache, 800), 307_200, "rendered again at once");
        assert_eq!(count(&cache.stats().snapshot_hits), 0);

        clock.advance(cache.settings().settling - Duration::from_millis(200));
        assert_eq!(mem_total_kb(&cache, 800), 307_200);
        host.cgroup_file("ctr", "memory.max", &(256 * MIB).to_string());
        assert_eq!(
            mem_total_kb(&cache, 800),
            307_200,
            "settled: the snapshot lives its TTL"
        );
        assert_eq!(count(&cache.stats().snapshot_hits), 1);
    }

    fn mem_total_kb(cache: &ViewCache, pid: u32) -> u64 {
        let cached = cache.get(ServedFile::Meminfo, Some(pid)).unwrap();
        assert_eq!(cached.source, Source::Container);
        meminfo_value(std::str::from_utf8(&cached.bytes).unwrap(), "MemTotal").unwrap()
    }

    fn count(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_snapshot_is_served_for_its_ttl_then_rendered_again() {
        let host = Host::new();
        host.cgroup("a", &(512 * MIB).to_string());
        host.process(700, "a");
        let (cache, clock) = host.cache(CacheSettings::default());
        let ttl = cache.settings().snapshot_ttl;
        assert_eq!(mem_total_kb(&cache, 700), 524_288);
        host.cgroup_file("a", "memory.max", &(256 * MIB).to_string());
        clock.advance(ttl - MS);
        assert_eq!(mem_total_kb(&cache, 700), 524_288, "still fresh");
        assert_eq!(count(&cache.stats().snapshot_hits), 1);
        clock.advance(MS);
        assert_eq!(mem_total_kb(&cache, 700), 262_144, "expired");
        assert_eq!(count(&cache.stats().renders), 2);
    }

    #[test]
    fn a_caller_is_looked_up_again_after_the_membership_ttl() {
        let host = Host::new();
        host.cgroup("a", &(512 * MIB).to_string());
        host.cgroup("b", &(256 * MIB).to_string());
        host.process(700, "a");
        let (cache, clock) = host.cache(CacheSettings::default());
        let settings = *cache.settings();
        assert_eq!(mem_total_kb(&cache, 700), 524_288);
        // Moved to b: the same thread, so only the membership TTL ends its lookup.
        host.process(700, "b");
        clock.advance(settings.membership_ttl - MS);
        assert!(settings.membership_ttl - MS > settings.snapshot_ttl);
        assert_eq!(mem_total_kb(&cache, 700), 524_288, "membership still fresh");
        clock.advance(MS);
        assert_eq!(mem_total_kb(&cache, 700), 262_144);
        assert_eq!(count(&cache.stats().caller_misses), 2);
    }

    #[test]
    fn a_recycled_thread_id_never_gets_the_previous_threads_container() {
        let host = Host::new();
        host.cgroup("a", &(512 * MIB).to_string());
        host.cgroup("b", &(256 * MIB).to_string());
        host.process(700, "a");
        let (cache, _clock) = host.cache(CacheSettings::default());
        assert_eq!(mem_total_kb(&cache, 700), 524_288);
        assert_eq!(mem_total_kb(&cache, 700), 524_288);
        assert_eq!(count(&cache.stats().caller_hits), 1);
        // Within every TTL (the clock stands still), another thread takes the id.
        host.recycle(700, "b");
        assert_eq!(mem_total_kb(&cache, 700), 262_144);
        assert_eq!(count(&cache.stats().caller_misses), 2);
        assert_eq!(count(&cache.stats().caller_hits), 1);
    }

    #[test]
    fn full_maps_evict_the_least_recently_used_and_a_sweep_drops_the_idle() {
        let host = Host::new();
        for (pid, name) in [
            (701, "c1"),
            (702, "c2"),
            (703, "c3"),
            (704, "c4"),
            (705, "c5"),
        ] {
            host.cgroup(name, &(512 * MIB).to_string());
            host.process(pid, name);
        }
        let (cache, clock) = host.cache(CacheSettings {
            max_callers: 4,
            max_containers: 4,
            ..CacheSettings::default()
        });
        for pid in 701..=704 {
            mem_total_kb(&cache, pid);
            clock.advance(10 * MS);
        }
        // 701 is used again: 702 and 703 are now the least recently used.
        mem_total_kb(&cache, 701);
        clock.advance(10 * MS);
        assert_eq!(cache.sizes(), (4, 4));
        mem_total_kb(&cache, 705);
        assert_eq!(cache.sizes(), (3, 3));
        let misses = count(&cache.stats().caller_misses);
        for pid in [701, 704, 705] {
            mem_total_kb(&cache, pid);
        }
        assert_eq!(count(&cache.stats().caller_misses), misses, "kept");
        mem_total_kb(&cache, 702);
        assert_eq!(count(&cache.stats().caller_misses), misses + 1, "evicted");

        let idle_after = cache.settings().idle_after;
        clock.advance(idle_after);
        cache.sweep(clock.now());
        assert_eq!(cache.sizes(), (4, 4), "nobody idle for longer yet");
        clock.advance(MS);
        cache.sweep(clock.now());
        assert_eq!(cache.sizes(), (0, 0));
    }

    #[test]
    fn every_read_answered_with_a_fallback_counts_once_cached_or_not() {
        let host = Host::new();
        host.cgroup("bad", "lots");
        host.process(710, "bad");
        let (cache, _clock) = host.cache(CacheSettings::default());
        for _ in 0..3 {
            let cached = cache.get(ServedFile::Meminfo, Some(710)).unwrap();
            assert_eq!(cached.source, Source::Fallback(FallbackCause::Unparsable));
        }
        assert_eq!(
            count(&cache.stats().renders),
            1,
            "one render served three reads"
        );
        let fallbacks = cache.view().fallbacks();
        assert_eq!(fallbacks.count(FallbackCause::Unparsable), 3);
        // A size asked for a `stat` is no read.
        cache
            .serve(ServedFile::Meminfo, Some(710), Purpose::Size)
            .unwrap();
        assert_eq!(fallbacks.count(FallbackCause::Unparsable), 3);
    }

    #[test]
    fn an_unresolvable_caller_is_resolved_once_per_request() {
        let host = Host::new();
        let (cache, _clock) = host.cache(CacheSettings::default());
        let resolutions = || cache.view().resolver().resolutions();
        let cached = cache.get(ServedFile::Meminfo, Some(4242)).unwrap();
        assert_eq!(cached.source, Source::Fallback(FallbackCause::CallerGone));
        assert_eq!(resolutions(), 1);
        let host_stat = host.dir.path().join("sda-stat");
        fs::write(&host_stat, "1 0 8 0 8 0 2048 0 0 0 0\n").unwrap();
        let device = DeviceId { major: 8, minor: 0 };
        let cached = cache
            .get_block_stat(1, &host_stat, device, Some(4242))
            .unwrap();
        assert_eq!(cached.source, Source::Fallback(FallbackCause::CallerGone));
        assert_eq!(resolutions(), 2);
        assert_eq!(cache.visible_cpus(Some(4242)), None);
        assert_eq!(resolutions(), 3);
        assert_eq!(
            cache.view().fallbacks().count(FallbackCause::CallerGone),
            2,
            "two reads; a listing is none"
        );
    }

    #[test]
    fn visible_cpus_come_from_the_limits_not_from_the_online_files_text() {
        let host = Host::new();
        host.cgroup("one-cpu", &(512 * MIB).to_string());
        host.cgroup_file("one-cpu", "cpu.max", "100000 100000");
        host.process(720, "one-cpu");
        let (cache, _clock) = host.cache(CacheSettings::default());
        let visible = cache.visible_cpus(Some(720)).unwrap();
        assert_eq!(visible.len(), 1);
        assert_eq!(cache.visible_cpus(Some(720)), Some(visible.clone()));
        assert_eq!(count(&cache.stats().snapshot_hits), 1, "cached");
        // The online file has a snapshot of its own, which listing did not render.
        let online = cache.get(ServedFile::CpuOnline, Some(720)).unwrap();
        assert_eq!(count(&cache.stats().snapshot_hits), 1);
        assert_eq!(count(&cache.stats().renders), 2);
        let online = parse_cpu_list(std::str::from_utf8(&online.bytes).unwrap()).unwrap();
        assert_eq!(online, visible, "listings agree with the file");

        // Limits that cannot be read show every CPU, and no read of a served file is counted.
        host.cgroup("odd", &(512 * MIB).to_string());
        host.cgroup_file("odd", "cpu.max", "garbage");
        host.process(721, "odd");
        assert_eq!(cache.visible_cpus(Some(721)), None);
        let fallbacks = cache.view().fallbacks();
        assert_eq!(fallbacks.count(FallbackCause::Unparsable), 0);
        assert_eq!(cache.visible_cpus(None), None);
    }
}
