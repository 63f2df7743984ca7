//! The hot path's caches (design.md section 4): caller thread -> container, kept-open cgroup files per
//! container, and rendered snapshots per (container, file).
//!
//! Staleness is bounded and stated in the README:
//! - a snapshot is served for [`CacheSettings::snapshot_ttl`] after its render started; a reader that finds it
//!   older renders it again, while readers arriving during that render get the previous snapshot if it is
//!   younger than [`CacheSettings::max_stale`] (they never wait behind a render otherwise);
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
use crate::service::view::{Rendered, Source, View};
use cgview_core::catalog::ServedFile;
use cgview_core::parse::cpuset::{parse_cpu_list, CpuSet};
use cgview_core::parse::diskstats::DeviceId;
use parking_lot::Mutex;
use std::collections::HashMap;
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
        }
    }
}

/// A served file's content and where it came from.
#[derive(Debug, Clone)]
pub struct Cached {
    pub bytes: Snapshot,
    pub source: Source,
    /// When the render that made it started: the content is at least this fresh.
    rendered_at: Instant,
}

/// One file's latest snapshot for one container.
#[derive(Debug, Default)]
struct Slot {
    current: Mutex<Option<Cached>>,
    /// Held by the one reader re-rendering this slot.
    refresh: Mutex<()>,
}

impl Slot {
    fn current(&self) -> Option<Cached> {
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
    files: KeptOpen,
    slots: [Slot; ServedFile::ALL.len()],
    /// `sys/block/<dev>[/<part>]/stat` snapshots by tree inode.
    block_stats: Mutex<HashMap<u64, Arc<Slot>>>,
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
    fn new(container: Container, budget: Arc<FdBudget>) -> ContainerEntry {
        ContainerEntry {
            container,
            files: KeptOpen::new(budget),
            slots: Default::default(),
            block_stats: Mutex::new(HashMap::new()),
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
        let budget = settings
            .fd_budget
            .unwrap_or_else(|| budget_for_limit(nofile_limit()));
        ViewCache {
            view,
            settings,
            epoch: Instant::now(),
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

    /// `file` as the caller with thread id `caller` sees it.
    pub fn get(&self, file: ServedFile, caller: Option<u32>) -> Result<Cached, ReadError> {
        let Some(tid) = caller else {
            return self.through_slot(&self.host[file as usize], || self.view.render(file, None));
        };
        let render = |entry: &ContainerEntry| {
            self.through_slot(&entry.slots[file as usize], || {
                self.view
                    .render_for(file, &entry.container, tid, entry.file_source())
            })
        };
        self.for_caller(tid, render, || self.uncached(file, tid))
    }

    /// Serves `tid` through its container's entry; when the render finds the cgroup gone (the caller
    /// moved, or its cgroup was made again at the same path), resolves it again and serves the new one.
    fn for_caller(
        &self,
        tid: u32,
        render: impl Fn(&ContainerEntry) -> Result<Cached, ReadError>,
        unresolved: impl FnOnce() -> Result<Cached, ReadError>,
    ) -> Result<Cached, ReadError> {
        let Ok(entry) = self.container_of(tid) else {
            return unresolved();
        };
        let cached = render(&entry)?;
        self.after_serving(&entry, &cached);
        if cached.source != Source::Fallback(FallbackCause::CgroupVanished) {
            return Ok(cached);
        }
        self.callers.lock().remove(&tid);
        let Ok(again) = self.container_of(tid) else {
            return Ok(cached);
        };
        if Arc::ptr_eq(&again, &entry) {
            return Ok(cached);
        }
        self.stats.re_resolved.fetch_add(1, Ordering::Relaxed);
        let cached = render(&again)?;
        self.after_serving(&again, &cached);
        Ok(cached)
    }

    /// A block device's `stat` (tree inode `inode`, host file `host_stat`, device `device`) for the caller.
    pub fn get_block_stat(
        &self,
        inode: u64,
        host_stat: &Path,
        device: DeviceId,
        caller: Option<u32>,
    ) -> Result<Cached, ReadError> {
        let uncached = || {
            Ok(cached_now(
                self.view.render_block_stat(host_stat, device, caller)?,
            ))
        };
        let Some(tid) = caller else {
            return uncached();
        };
        let render = |entry: &ContainerEntry| {
            let slot = entry.block_stats.lock().entry(inode).or_default().clone();
            self.through_slot(&slot, || {
                self.view.render_block_stat_for(
                    host_stat,
                    device,
                    &entry.container,
                    entry.file_source(),
                )
            })
        };
        self.for_caller(tid, render, uncached)
    }

    /// The CPUs the caller is shown; `None` when it sees all of the host's online CPUs or when they cannot
    /// be determined. Served from the cached `online` file, so listings agree with it.
    pub fn visible_cpus(&self, caller: Option<u32>) -> Option<CpuSet> {
        let cached = self.get(ServedFile::CpuOnline, caller).ok()?;
        if cached.source != Source::Container {
            return None;
        }
        parse_cpu_list(std::str::from_utf8(&cached.bytes).ok()?).ok()
    }

    fn after_serving(&self, entry: &ContainerEntry, cached: &Cached) {
        if cached.source == Source::Fallback(FallbackCause::CgroupVanished) {
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

    /// A caller that cannot be resolved (it exited, its files do not parse) gets what a one-off render
    /// gives it (the host file, with the fallback recorded), not cached.
    fn uncached(&self, file: ServedFile, tid: u32) -> Result<Cached, ReadError> {
        Ok(cached_now(self.view.render(file, Some(tid))?))
    }

    /// The caller's container entry, from the caller cache when the thread is still the one resolved.
    fn container_of(&self, tid: u32) -> Result<Arc<ContainerEntry>, FallbackCause> {
        let now = Instant::now();
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

    fn resolve_caller(&self, tid: u32, now: Instant) -> Result<Arc<ContainerEntry>, FallbackCause> {
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
        let mut containers = self.containers.lock();
        if let Some(entry) = containers.get(&container) {
            if !entry.vanished.load(Ordering::Relaxed) {
                return entry.clone();
            }
        }
        if containers.len() >= self.settings.max_containers {
            evict_some(&mut containers, |c| c.last_used.load(Ordering::Relaxed));
        }
        let entry = Arc::new(ContainerEntry::new(container.clone(), self.budget.clone()));
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

    /// Serves a slot's snapshot, rendering it when it is missing or too old (see the module docs).
    fn through_slot(
        &self,
        slot: &Slot,
        render: impl FnOnce() -> Result<Rendered, ReadError>,
    ) -> Result<Cached, ReadError> {
        let now = Instant::now();
        let current = slot.current();
        if let Some(cached) = &current {
            if now.duration_since(cached.rendered_at) < self.settings.snapshot_ttl {
                self.stats.snapshot_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(cached.clone());
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
                return Ok(cached);
            }
        }
        let started = Instant::now();
        let rendered = render()?;
        self.stats.renders.fetch_add(1, Ordering::Relaxed);
        let cached = Cached {
            bytes: rendered.bytes.into(),
            source: rendered.source,
            rendered_at: started,
        };
        {
            let mut current = slot.current.lock();
            // A concurrent render that started later has the fresher content.
            if current.as_ref().is_none_or(|c| c.rendered_at <= started) {
                *current = Some(cached.clone());
            }
        }
        Ok(cached)
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
            entry.block_stats.lock().retain(|_, slot| {
                slot.current()
                    .is_some_and(|c| c.rendered_at >= snapshot_deadline)
            });
        }
        drop(containers);
        for slot in &self.host {
            slot.forget_older_than(snapshot_deadline);
        }
    }

    fn now_ms(&self) -> u64 {
        self.ms(Instant::now())
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }
}

/// A render served directly, not kept.
fn cached_now(rendered: Rendered) -> Cached {
    Cached {
        bytes: rendered.bytes.into(),
        source: rendered.source,
        rendered_at: Instant::now(),
    }
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
