//! Per-container task counts and load averages, kept by a bounded background sampler.
//!
//! Only containers that read `/proc/loadavg` or `/proc/stat` recently are tracked, at most
//! [`TrackerSettings::capacity`] of them. Counting a container's threads costs one small procfs read per
//! thread, so it is done off the request path: by a sampler thread, every [`TrackerSettings::interval`]
//! for every tracked cgroup, and sooner for a cgroup whose readers found its sample older than they
//! accept. A read never waits for it: it gets the latest sample. Only the first read of a cgroup samples
//! on the spot, reading at most [`FIRST_SIGHT_STATES`] threads' states, so a container with thousands of
//! threads costs its first reader a bounded time and nobody else anything.
//!
//! Samples are kept per cgroup, and every container (pid namespace) in it shares them: a tenant making
//! namespaces in one cgroup as fast as it can fork adds no sampling work.

use crate::host::error::ReadError;
use crate::host::paths::HostPaths;
use crate::host::resolve::CgroupDir;
use crate::host::tasks::{innermost_pid, sample_tasks, TaskSample, MAX_THREADS};
use cgview_core::model::loadavg::LoadAverages;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Once, Weak};
use std::time::{Duration, Instant};

/// Threads whose states a first read of a cgroup reads at most; the rest are estimated until the sampler
/// has counted them all.
pub const FIRST_SIGHT_STATES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerSettings {
    /// Time between background samples (the kernel's load average uses 5 s).
    pub interval: Duration,
    /// A container nobody read from for this long is no longer sampled.
    pub forget_after: Duration,
    /// Containers tracked at most; the one read least recently makes room.
    pub capacity: usize,
    /// How old a sample's counts may be and still be shown as the current ones; an older sample's are
    /// replaced by a bounded look at the time of the read (at most [`FIRST_SIGHT_STATES`] thread states).
    pub counts_fresh_for: Duration,
    /// Whether a sampler thread keeps samples fresh; without one (one-off renders, tests) they are only
    /// taken by first reads and [`TaskTracker::tick`] / [`TaskTracker::sample_wanted`] calls.
    pub sample_in_background: bool,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        TrackerSettings {
            interval: Duration::from_secs(5),
            forget_after: Duration::from_secs(15 * 60),
            capacity: 4096,
            counts_fresh_for: Duration::from_millis(100),
            sample_in_background: true,
        }
    }
}

/// What a reader of a container sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskView {
    pub loads: LoadAverages,
    /// Runnable threads, the reader included (it is running while it reads, as the kernel counts it).
    pub running: u64,
    /// Uninterruptible threads.
    pub blocked: u64,
    pub total: u64,
    /// The highest pid seen in the container's own pid namespace; `None` for containers sharing the
    /// host's pid namespace.
    pub last_pid: Option<u32>,
}

/// One cgroup's latest sample, shared by the containers in it.
#[derive(Debug)]
struct SampledCgroup {
    dir: CgroupDir,
    sample: TaskSample,
    sampled_at: Instant,
    /// Thread id -> its pid in its own namespace, when a container in the cgroup has its own pid
    /// namespace. A thread's pid never changes, so each is read once.
    innermost_pids: HashMap<u32, u32>,
    highest_pid: Option<u32>,
    wants_pids: bool,
    /// A reader found the sample older than it accepts (or only estimated): sample it soon.
    wanted: bool,
}

/// One container (a cgroup and the anchor of its pid namespace) that reads.
#[derive(Debug)]
struct Tracked {
    cgroup: PathBuf,
    in_own_namespace: bool,
    loads: LoadAverages,
    /// The sample last folded into `loads`.
    folded_at: Instant,
    last_pid: Option<u32>,
    last_read: Instant,
}

#[derive(Debug, Default)]
struct State {
    containers: HashMap<String, Tracked>,
    cgroups: HashMap<PathBuf, SampledCgroup>,
}

/// How a container is identified and read.
#[derive(Debug, Clone, Copy)]
pub struct TrackRequest<'a> {
    /// Identifies the container across reads (its cgroup and anchor).
    pub key: &'a str,
    /// The cgroup whose subtree holds the container's threads.
    pub dir: &'a CgroupDir,
    /// Whether the container has its own pid namespace (for the last pid).
    pub in_own_namespace: bool,
    /// The reading thread.
    pub reader: u32,
    /// The oldest sample this read is content with; an older one is served, and a new one asked for.
    pub max_age: Duration,
    /// How long ago the container started, asked only when it is first tracked (its averages start as
    /// if sampled since then).
    pub age: ContainerAge<'a>,
}

/// Seconds since a container started, when known (`None`: a caller in the host's pid namespace, whose
/// "container" has no start of its own). Lazy, because finding out reads the host's uptime.
#[derive(Clone, Copy)]
pub struct ContainerAge<'a>(pub &'a dyn Fn() -> Option<f64>);

impl ContainerAge<'_> {
    pub const UNKNOWN: ContainerAge<'static> = ContainerAge(&|| None);
}

impl std::fmt::Debug for ContainerAge<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContainerAge")
    }
}

#[derive(Debug)]
pub struct TaskTracker {
    paths: HostPaths,
    settings: TrackerSettings,
    state: Mutex<State>,
    /// Set when a reader asks for a sample; the sampler waits on it between ticks.
    wake: Mutex<bool>,
    woken: Condvar,
    sampler_started: Once,
}

impl TaskTracker {
    pub fn new(paths: HostPaths, settings: TrackerSettings) -> Arc<TaskTracker> {
        Arc::new(TaskTracker {
            paths,
            settings,
            state: Mutex::new(State::default()),
            wake: Mutex::new(false),
            woken: Condvar::new(),
            sampler_started: Once::new(),
        })
    }

    /// How many containers are tracked now.
    pub fn tracked(&self) -> usize {
        self.state.lock().containers.len()
    }

    /// How many cgroups are sampled now.
    pub fn sampled_cgroups(&self) -> usize {
        self.state.lock().cgroups.len()
    }

    /// The container's counts and load averages for one read; starts tracking it. The averages come
    /// from the sampler; the running and total counts are the cgroup's at the time of the read (a
    /// bounded look, see [`TaskTracker::counts_now`]), so a reader never sees a count the container
    /// had seconds ago.
    pub fn view(self: &Arc<Self>, request: TrackRequest<'_>) -> Result<TaskView, ReadError> {
        let (mut view, counted_at) = self.averaged_view(&request)?;
        let fresh = counted_at.is_some_and(|at| {
            Instant::now().saturating_duration_since(at) <= self.settings.counts_fresh_for
        });
        if !fresh {
            let now = sample_tasks(
                &self.paths,
                request.dir,
                Some(request.reader),
                FIRST_SIGHT_STATES,
            )?;
            view.running = running_with_reader(&now);
            view.blocked = now.blocked;
            view.total = now.total.max(1);
        }
        Ok(view)
    }

    /// The view from the sampler, and when its counts were taken (`None`: estimated).
    fn averaged_view(
        self: &Arc<Self>,
        request: &TrackRequest<'_>,
    ) -> Result<(TaskView, Option<Instant>), ReadError> {
        self.start_sampler();
        let cgroup = request.dir.path();
        if let Some(view) = self.latest(request, &cgroup) {
            return Ok(view);
        }
        // Nobody samples this cgroup yet: a bounded look now, a full count by the sampler.
        let sampled = self.sample(
            request.dir,
            Some(request.reader),
            request.in_own_namespace,
            HashMap::new(),
            FIRST_SIGHT_STATES,
        )?;
        let wanted = sampled.sample.partial;
        {
            let mut state = self.state.lock();
            state
                .cgroups
                .entry(cgroup.clone())
                .or_insert(sampled)
                .wanted |= wanted;
        }
        if wanted {
            self.wake_sampler();
        }
        Ok(self
            .latest(request, &cgroup)
            .expect("the cgroup was just sampled"))
    }

    /// The view from the cgroup's latest sample and when its counts were taken (`None` for estimated
    /// ones), tracking the container if new; `None` when the cgroup has no sample.
    fn latest(
        &self,
        request: &TrackRequest<'_>,
        cgroup: &PathBuf,
    ) -> Option<(TaskView, Option<Instant>)> {
        let now = Instant::now();
        let mut state = self.state.lock();
        let State {
            containers,
            cgroups,
        } = &mut *state;
        let sampled = cgroups.get_mut(cgroup).filter(|c| c.dir == *request.dir)?;
        let stale = now.saturating_duration_since(sampled.sampled_at) > request.max_age;
        let wants_pids = request.in_own_namespace && !sampled.wants_pids;
        let ask = (stale || wants_pids) && !sampled.wanted;
        sampled.wanted |= stale || wants_pids;
        sampled.wants_pids |= request.in_own_namespace;
        let tracked = match containers.get_mut(request.key) {
            Some(tracked) if tracked.cgroup == *cgroup => tracked,
            _ => {
                if containers.len() >= self.settings.capacity {
                    evict_least_recently_read(containers);
                }
                let loads = match (request.age.0)() {
                    Some(age) => LoadAverages::since_start(active(&sampled.sample), age),
                    None => LoadAverages::seeded(active(&sampled.sample)),
                };
                containers.insert(
                    request.key.to_owned(),
                    Tracked {
                        cgroup: cgroup.clone(),
                        in_own_namespace: request.in_own_namespace,
                        loads,
                        folded_at: sampled.sampled_at,
                        last_pid: None,
                        last_read: now,
                    },
                );
                containers.get_mut(request.key)?
            }
        };
        fold(tracked, sampled);
        tracked.last_read = now;
        let view = view_of(tracked, sampled);
        // An estimated count is never fresh enough to be shown as the current one.
        let counted_at = (!sampled.sample.partial).then_some(sampled.sampled_at);
        drop(state);
        if ask {
            self.wake_sampler();
        }
        Some((view, counted_at))
    }

    /// One background tick: forget idle containers and the cgroups nobody reads, sample every other
    /// cgroup.
    pub fn tick(&self) {
        let now = Instant::now();
        {
            let mut state = self.state.lock();
            let forget_after = self.settings.forget_after;
            state
                .containers
                .retain(|_, t| now.saturating_duration_since(t.last_read) < forget_after);
            let State {
                containers,
                cgroups,
            } = &mut *state;
            let read: std::collections::HashSet<&PathBuf> =
                containers.values().map(|t| &t.cgroup).collect();
            cgroups.retain(|path, _| read.contains(path));
        }
        self.sample_due(|_| true);
    }

    /// Samples the cgroups readers asked for.
    pub fn sample_wanted(&self) {
        self.sample_due(|c| c.wanted);
    }

    fn sample_due(&self, due: impl Fn(&SampledCgroup) -> bool) {
        let jobs: Vec<(PathBuf, CgroupDir, bool, HashMap<u32, u32>)> = {
            let mut state = self.state.lock();
            state
                .cgroups
                .iter_mut()
                .filter(|(_, c)| due(c))
                .map(|(path, c)| {
                    c.wanted = false;
                    (
                        path.clone(),
                        c.dir.clone(),
                        c.wants_pids,
                        std::mem::take(&mut c.innermost_pids),
                    )
                })
                .collect()
        };
        for (path, dir, wants_pids, pids) in jobs {
            let result = self.sample(&dir, None, wants_pids, pids, MAX_THREADS);
            let mut state = self.state.lock();
            let State {
                containers,
                cgroups,
            } = &mut *state;
            match result {
                Ok(sampled) => {
                    let Some(slot) = cgroups.get_mut(&path).filter(|c| c.dir == dir) else {
                        continue;
                    };
                    let wanted = slot.wanted;
                    let wants_pids = slot.wants_pids;
                    *slot = SampledCgroup {
                        wanted,
                        wants_pids,
                        ..sampled
                    };
                    for tracked in containers.values_mut().filter(|t| t.cgroup == path) {
                        fold(tracked, slot);
                    }
                }
                Err(e) if e.is_vanished() => {
                    cgroups.remove(&path);
                    containers.retain(|_, t| t.cgroup != path);
                }
                Err(e) => tracing::debug!("load average sample failed: {e}"),
            }
        }
    }

    fn sample(
        &self,
        dir: &CgroupDir,
        reader: Option<u32>,
        wants_pids: bool,
        mut pids: HashMap<u32, u32>,
        max_states: usize,
    ) -> Result<SampledCgroup, ReadError> {
        let sample = sample_tasks(&self.paths, dir, reader, max_states)?;
        let mut current = HashMap::new();
        if wants_pids {
            current.reserve(sample.tids.len().min(max_states));
            for &tid in sample.tids.iter().take(max_states) {
                let pid = match pids.remove(&tid) {
                    Some(pid) => Some(pid),
                    None => innermost_pid(&self.paths, tid).ok(),
                };
                if let Some(pid) = pid {
                    current.insert(tid, pid);
                }
            }
        }
        Ok(SampledCgroup {
            dir: dir.clone(),
            highest_pid: current.values().copied().max(),
            innermost_pids: current,
            sample,
            sampled_at: Instant::now(),
            wants_pids,
            wanted: false,
        })
    }

    fn wake_sampler(&self) {
        *self.wake.lock() = true;
        self.woken.notify_one();
    }

    fn start_sampler(self: &Arc<Self>) {
        if !self.settings.sample_in_background {
            return;
        }
        self.sampler_started.call_once(|| {
            let tracker: Weak<TaskTracker> = Arc::downgrade(self);
            let interval = self.settings.interval;
            let spawned = std::thread::Builder::new()
                .name("cgview-sampler".into())
                .spawn(move || {
                    let mut next_tick = Instant::now() + interval;
                    loop {
                        let asked = {
                            let Some(tracker) = tracker.upgrade() else {
                                break;
                            };
                            let mut wake = tracker.wake.lock();
                            if !*wake {
                                // Bounded, so that a dropped tracker ends the thread.
                                let wait = next_tick
                                    .saturating_duration_since(Instant::now())
                                    .min(Duration::from_secs(1));
                                tracker.woken.wait_for(&mut wake, wait);
                            }
                            std::mem::take(&mut *wake)
                        };
                        let Some(tracker) = tracker.upgrade() else {
                            break;
                        };
                        if Instant::now() >= next_tick {
                            tracker.tick();
                            next_tick = Instant::now() + interval;
                        } else if asked {
                            tracker.sample_wanted();
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(
                    "cannot start the load average sampler: {e}; task counts stay as first seen"
                );
            }
        });
    }
}

/// The kernel's "active" count: runnable plus uninterruptible.
fn active(sample: &TaskSample) -> u64 {
    sample.running + sample.blocked
}

/// Moves a container's averages on to its cgroup's latest sample.
fn fold(tracked: &mut Tracked, sampled: &SampledCgroup) {
    if sampled.sampled_at > tracked.folded_at {
        let elapsed = sampled
            .sampled_at
            .duration_since(tracked.folded_at)
            .as_secs_f64();
        tracked.loads.update(active(&sampled.sample), elapsed);
        tracked.folded_at = sampled.sampled_at;
    }
    if tracked.in_own_namespace {
        tracked.last_pid = tracked.last_pid.max(sampled.highest_pid);
    }
}

/// Runnable threads with the reader counted as one (it runs, to itself, while it reads).
fn running_with_reader(sample: &TaskSample) -> u64 {
    (sample.running + 1).min(sample.total.max(1))
}

fn view_of(tracked: &Tracked, sampled: &SampledCgroup) -> TaskView {
    let sample = &sampled.sample;
    TaskView {
        loads: tracked.loads,
        running: running_with_reader(sample),
        blocked: sample.blocked,
        total: sample.total.max(1),
        last_pid: tracked.last_pid,
    }
}

fn evict_least_recently_read(containers: &mut HashMap<String, Tracked>) {
    if let Some(key) = containers
        .iter()
        .min_by_key(|(_, t)| t.last_read)
        .map(|(k, _)| k.clone())
    {
        containers.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::layout::CgroupVersion;
    use std::fs;
    use std::path::Path;

    struct Fixture {
        _root: tempfile::TempDir,
        paths: HostPaths,
        cgroups: std::path::PathBuf,
    }

    impl Fixture {
        fn new() -> Fixture {
            let root = tempfile::tempdir().unwrap();
            let paths = HostPaths {
                proc_root: root.path().join("proc"),
                sys_root: root.path().join("sys"),
                cgroup_root: root.path().join("cg"),
            };
            let cgroups = root.path().join("cg");
            Fixture {
                _root: root,
                paths,
                cgroups,
            }
        }

        fn container(&self, name: &str, threads: &[(u32, char)]) -> CgroupDir {
            let dir = self.cgroups.join(name);
            fs::create_dir_all(&dir).unwrap();
            let list: String = threads.iter().map(|(tid, _)| format!("{tid}\n")).collect();
            fs::write(dir.join("cgroup.threads"), list).unwrap();
            for &(tid, state) in threads {
                self.thread(tid, state);
            }
            CgroupDir {
                version: CgroupVersion::V2,
                mount_point: self.cgroups.clone(),
                relative: name.into(),
            }
        }

        fn thread(&self, tid: u32, state: char) {
            let dir = self.paths.proc_root.join(tid.to_string());
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("stat"), format!("{tid} (t) {state} 1 1")).unwrap();
            fs::write(
                dir.join("status"),
                format!("NSpid:\t{tid}\t{}\n", tid % 100),
            )
            .unwrap();
        }
    }

    fn request<'a>(
        key: &'a str,
        dir: &'a CgroupDir,
        reader: u32,
        max_age: Duration,
    ) -> TrackRequest<'a> {
        TrackRequest {
            key,
            dir,
            in_own_namespace: true,
            reader,
            max_age,
            age: ContainerAge::UNKNOWN,
        }
    }

    fn manual() -> TrackerSettings {
        TrackerSettings {
            // Long enough that the background thread never ticks during a test.
            interval: Duration::from_secs(3600),
            forget_after: Duration::from_secs(3600),
            capacity: 2,
            counts_fresh_for: Duration::ZERO,
            sample_in_background: false,
        }
    }

    #[test]
    fn first_read_samples_and_counts_the_reader_as_running() {
        let fx = Fixture::new();
        let dir = fx.container("a", &[(201, 'S'), (202, 'R'), (203, 'D'), (250, 'D')]);
        let tracker = TaskTracker::new(fx.paths.clone(), manual());
        let view = tracker
            .view(request("a", &dir, 250, Duration::ZERO))
            .unwrap();
        assert_eq!((view.running, view.blocked, view.total), (2, 1, 4));
        // Seeded with the active count, the reader excluded.
        assert_eq!(view.loads, LoadAverages::seeded(2));
        assert_eq!(view.last_pid, Some(50));
    }

    #[test]
    fn counts_are_the_cgroups_at_the_read_while_averages_wait_for_the_sampler() {
        let fx = Fixture::new();
        let dir = fx.container("a", &[(301, 'S'), (302, 'S')]);
        let tracker = TaskTracker::new(fx.paths.clone(), manual());
        let first = tracker
            .view(request("a", &dir, 302, Duration::from_secs(60)))
            .unwrap();
        assert_eq!((first.running, first.total), (1, 2));
        // Six more threads, two of them running, and no sampler tick since.
        fx.container(
            "a",
            &[
                (301, 'S'),
                (302, 'S'),
                (303, 'R'),
                (304, 'R'),
                (305, 'S'),
                (306, 'D'),
                (307, 'S'),
                (308, 'S'),
            ],
        );
        let later = tracker
            .view(request("a", &dir, 302, Duration::from_secs(60)))
            .unwrap();
        assert_eq!((later.running, later.blocked, later.total), (3, 1, 8));
        assert_eq!(
            later.loads, first.loads,
            "the averages move only with samples"
        );
        // While a complete sample is fresh enough, its counts stand (no look per read).
        let tracker = TaskTracker::new(
            fx.paths.clone(),
            TrackerSettings {
                counts_fresh_for: Duration::from_secs(3600),
                ..manual()
            },
        );
        tracker.tick();
        tracker
            .view(request("a", &dir, 302, Duration::from_secs(60)))
            .unwrap();
        fx.container("a", &[(301, 'S'), (302, 'S')]);
        let fresh = tracker
            .view(request("a", &dir, 302, Duration::from_secs(60)))
            .unwrap();
        assert_eq!(fresh.total, 8);
    }

    #[test]
    fn a_first_read_of_a_busy_container_is_not_one_of_one() {
        let fx = Fixture::new();
        let threads: Vec<(u32, char)> = (400..408).map(|tid| (tid, 'S')).collect();
        let dir = fx.container("a", &threads);
        let tracker = TaskTracker::new(fx.paths.clone(), manual());
        let view = tracker
            .view(request("a", &dir, 407, Duration::from_secs(60)))
            .unwrap();
        assert_eq!((view.running, view.total), (1, 8));
    }

    #[test]
    fn a_container_of_known_age_starts_as_if_sampled_since_it_started() {
        let fx = Fixture::new();
        let dir = fx.container("a", &[(501, 'R'), (502, 'R'), (503, 'S')]);
        let tracker = TaskTracker::new(fx.paths.clone(), manual());
        let asked = std::cell::Cell::new(0);
        let age = || {
            asked.set(asked.get() + 1);
            Some(2.0)
        };
        let request = TrackRequest {
            age: ContainerAge(&age),
            ..request("a", &dir, 503, Duration::from_secs(60))
        };
        let first = tracker.view(request).unwrap();
        assert_eq!(first.loads, LoadAverages::since_start(2, 2.0));
        assert!(first.loads.averages[0] < 0.1, "{:?}", first.loads);
        // Asked once, when first tracked; later reads reuse the entry.
        tracker.view(request).unwrap();
        assert_eq!(asked.get(), 1);
    }

    #[test]
    fn fresh_samples_are_reused_and_ticks_move_the_averages() {
        let fx = Fixture::new();
        let dir = fx.container("a", &[(301, 'S')]);
        let tracker = TaskTracker::new(fx.paths.clone(), manual());
        let first = tracker
            .view(request("a", &dir, 301, Duration::ZERO))
            .unwrap();
        assert_eq!(first.loads, LoadAverages::seeded(0));
        fx.thread(301, 'R');
        let cached = tracker
            .view(request("a", &dir, 301, Duration::from_secs(60)))
            .unwrap();
        assert_eq!(cached, first);
        tracker.tick();
        let after = tracker
            .view(request("a", &dir, 301, Duration::from_secs(60)))
            .unwrap();
        assert!(after.loads.averages[0] > 0.0);
        assert_eq!(after.running, 1);
    }

    #[test]
    fn capacity_evicts_the_least_recently_read_and_vanished_cgroups_go() {
        let fx = Fixture::new();
        let a = fx.container("a", &[(401, 'S')]);
        let b = fx.container("b", &[(402, 'S')]);
        let c = fx.container("c", &[(403, 'S')]);
        let tracker = TaskTracker::new(fx.paths.clone(), manual());
        tracker.view(request("a", &a, 401, Duration::ZERO)).unwrap();
        tracker.view(request("b", &b, 402, Duration::ZERO)).unwrap();
        tracker.view(request("c", &c, 403, Duration::ZERO)).unwrap();
        assert_eq!(tracker.tracked(), 2);
        assert!(!tracker.state.lock().containers.contains_key("a"));
        fs::remove_dir_all(fx.cgroups.join("b")).unwrap();
        tracker.tick();
        assert_eq!(tracker.tracked(), 1);
        let gone = tracker.view(request("b", &b, 402, Duration::ZERO));
        assert!(gone.unwrap_err().is_vanished());
    }

    #[test]
    fn idle_containers_are_forgotten() {
        let fx = Fixture::new();
        let a = fx.container("a", &[(501, 'S')]);
        let tracker = TaskTracker::new(
            fx.paths.clone(),
            TrackerSettings {
                forget_after: Duration::ZERO,
                ..manual()
            },
        );
        tracker.view(request("a", &a, 501, Duration::ZERO)).unwrap();
        tracker.tick();
        assert_eq!(tracker.tracked(), 0);
        let _ = Path::new("");
    }

    #[test]
    fn a_stale_sample_is_refreshed_by_the_sampler_and_the_read_counts_now() {
        let fx = Fixture::new();
        let dir = fx.container("a", &[(601, 'S'), (602, 'S')]);
        let tracker = TaskTracker::new(fx.paths.clone(), manual());
        let first = tracker
            .view(request("a", &dir, 601, Duration::ZERO))
            .unwrap();
        assert_eq!(first.running, 1);
        fx.thread(602, 'R');
        // Older than this read accepts: its averages are served as they are and a sample is asked for;
        // the counts are the ones at the read.
        let stale = tracker
            .view(request("a", &dir, 601, Duration::ZERO))
            .unwrap();
        assert_eq!(stale.running, 2);
        assert!(tracker.state.lock().cgroups.values().all(|c| c.wanted));
        tracker.sample_wanted();
        let fresh = tracker
            .view(request("a", &dir, 601, Duration::from_secs(60)))
            .unwrap();
        assert_eq!(fresh.running, 2);
    }

    #[test]
    fn containers_in_one_cgroup_share_its_samples() {
        let fx = Fixture::new();
        let dir = fx.container("shared", &[(701, 'R'), (702, 'S')]);
        let tracker = TaskTracker::new(fx.paths.clone(), manual());
        for namespace in 0..50 {
            let key = format!("shared@{namespace}");
            tracker
                .view(request(&key, &dir, 701, Duration::from_secs(60)))
                .unwrap();
        }
        assert_eq!((tracker.tracked(), tracker.sampled_cgroups()), (2, 1));
    }

    #[test]
    fn a_first_read_of_a_crowded_cgroup_reads_few_threads_and_leaves_the_rest_to_the_sampler() {
        let fx = Fixture::new();
        let threads: Vec<(u32, char)> = (10_000..10_000 + 4 * FIRST_SIGHT_STATES as u32)
            .map(|tid| (tid, 'R'))
            .collect();
        let dir = fx.container("crowded", &threads);
        let tracker = TaskTracker::new(fx.paths.clone(), manual());
        let view = tracker
            .view(request("crowded", &dir, 10_000, Duration::from_secs(60)))
            .unwrap();
        assert_eq!(view.total, threads.len() as u64);
        let state = tracker.state.lock();
        let sampled = state.cgroups.values().next().unwrap();
        assert!(sampled.sample.partial && sampled.wanted);
        assert!(sampled.innermost_pids.len() <= FIRST_SIGHT_STATES);
        drop(state);
        tracker.sample_wanted();
        let state = tracker.state.lock();
        let sampled = state.cgroups.values().next().unwrap();
        assert!(!sampled.sample.partial && !sampled.wanted);
        assert_eq!(sampled.sample.running, threads.len() as u64);
    }
}
