//! Per-container task counts and load averages, kept by a bounded background sampler.
//!
//! Only containers that read `/proc/loadavg` or `/proc/stat` recently are tracked, at most
//! [`TrackerSettings::capacity`] of them; each tick samples every tracked container's threads once (one
//! small procfs read per thread). Reads never wait for a tick: they use the latest sample when it is
//! fresh enough and sample on the spot otherwise.

use crate::host::error::ReadError;
use crate::host::paths::HostPaths;
use crate::host::resolve::CgroupDir;
use crate::host::tasks::{innermost_pid, sample_tasks, TaskSample};
use crate::model::loadavg::LoadAverages;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Once, Weak};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerSettings {
    /// Time between background samples (the kernel's load average uses 5 s).
    pub interval: Duration,
    /// A container nobody read from for this long is no longer sampled.
    pub forget_after: Duration,
    /// Containers tracked at most; the one read least recently makes room.
    pub capacity: usize,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        TrackerSettings {
            interval: Duration::from_secs(5),
            forget_after: Duration::from_secs(15 * 60),
            capacity: 4096,
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

#[derive(Debug)]
struct Tracked {
    dir: CgroupDir,
    in_own_namespace: bool,
    loads: LoadAverages,
    sample: TaskSample,
    sampled_at: Instant,
    last_read: Instant,
    /// Thread id -> its pid in its own namespace. A thread's pid never changes, so each is read once.
    innermost_pids: HashMap<u32, u32>,
    last_pid: Option<u32>,
}

/// One sample with the pids it resolved.
struct Sampled {
    sample: TaskSample,
    innermost_pids: HashMap<u32, u32>,
    highest_pid: Option<u32>,
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
    /// The oldest sample this read accepts.
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
    entries: Mutex<HashMap<String, Tracked>>,
    sampler_started: Once,
}

impl TaskTracker {
    pub fn new(paths: HostPaths, settings: TrackerSettings) -> Arc<TaskTracker> {
        Arc::new(TaskTracker {
            paths,
            settings,
            entries: Mutex::new(HashMap::new()),
            sampler_started: Once::new(),
        })
    }

    /// How many containers are tracked now.
    pub fn tracked(&self) -> usize {
        self.entries.lock().len()
    }

    /// The container's counts and load averages for one read; starts tracking it.
    pub fn view(self: &Arc<Self>, request: TrackRequest<'_>) -> Result<TaskView, ReadError> {
        self.start_sampler();
        let now = Instant::now();
        {
            let mut entries = self.entries.lock();
            if let Some(tracked) = entries.get_mut(request.key) {
                if tracked.dir == *request.dir
                    && now.duration_since(tracked.sampled_at) <= request.max_age
                {
                    tracked.last_read = now;
                    return Ok(view_of(tracked));
                }
            }
        }
        let previous_pids = self
            .entries
            .lock()
            .get_mut(request.key)
            .map(|t| std::mem::take(&mut t.innermost_pids))
            .unwrap_or_default();
        let Sampled {
            sample,
            innermost_pids,
            highest_pid: highest,
        } = self.sample(
            request.dir,
            Some(request.reader),
            request.in_own_namespace,
            previous_pids,
        )?;
        let mut entries = self.entries.lock();
        let sampled_at = Instant::now();
        let tracked = match entries.get_mut(request.key) {
            Some(tracked) if tracked.dir == *request.dir => {
                let elapsed = sampled_at.duration_since(tracked.sampled_at).as_secs_f64();
                tracked.loads.update(active(&sample), elapsed);
                tracked.sample = sample;
                tracked.sampled_at = sampled_at;
                tracked.innermost_pids = innermost_pids;
                tracked.last_pid = tracked.last_pid.max(highest);
                tracked.last_read = sampled_at;
                tracked
            }
            _ => {
                if entries.len() >= self.settings.capacity {
                    evict_least_recently_read(&mut entries);
                }
                let tracked = Tracked {
                    dir: request.dir.clone(),
                    in_own_namespace: request.in_own_namespace,
                    loads: match (request.age.0)() {
                        Some(age) => LoadAverages::since_start(active(&sample), age),
                        None => LoadAverages::seeded(active(&sample)),
                    },
                    sample,
                    sampled_at,
                    last_read: sampled_at,
                    innermost_pids,
                    last_pid: highest,
                };
                entries.insert(request.key.to_owned(), tracked);
                entries.get_mut(request.key).expect("just inserted")
            }
        };
        Ok(view_of(tracked))
    }

    /// One background tick: forget idle containers, sample the others.
    pub fn tick(&self) {
        let now = Instant::now();
        let due: Vec<(String, CgroupDir, bool, HashMap<u32, u32>)> = {
            let mut entries = self.entries.lock();
            entries.retain(|_, t| now.duration_since(t.last_read) < self.settings.forget_after);
            entries
                .iter_mut()
                .map(|(key, t)| {
                    (
                        key.clone(),
                        t.dir.clone(),
                        t.in_own_namespace,
                        std::mem::take(&mut t.innermost_pids),
                    )
                })
                .collect()
        };
        for (key, dir, in_own_namespace, pids) in due {
            let result = self.sample(&dir, None, in_own_namespace, pids);
            let mut entries = self.entries.lock();
            match result {
                Ok(Sampled {
                    sample,
                    innermost_pids: pids,
                    highest_pid: highest,
                }) => {
                    if let Some(tracked) = entries.get_mut(&key).filter(|t| t.dir == dir) {
                        let sampled_at = Instant::now();
                        let elapsed = sampled_at.duration_since(tracked.sampled_at).as_secs_f64();
                        tracked.loads.update(active(&sample), elapsed);
                        tracked.sample = sample;
                        tracked.sampled_at = sampled_at;
                        tracked.innermost_pids = pids;
                        tracked.last_pid = tracked.last_pid.max(highest);
                    }
                }
                Err(e) if e.is_vanished() => {
                    entries.remove(&key);
                }
                Err(e) => tracing::debug!("load average sample failed: {e}"),
            }
        }
    }

    fn sample(
        &self,
        dir: &CgroupDir,
        reader: Option<u32>,
        in_own_namespace: bool,
        mut pids: HashMap<u32, u32>,
    ) -> Result<Sampled, ReadError> {
        let sample = sample_tasks(&self.paths, dir, reader)?;
        if !in_own_namespace {
            return Ok(Sampled {
                sample,
                innermost_pids: HashMap::new(),
                highest_pid: None,
            });
        }
        let mut current = HashMap::with_capacity(sample.tids.len());
        for &tid in &sample.tids {
            let pid = match pids.remove(&tid) {
                Some(pid) => Some(pid),
                None => innermost_pid(&self.paths, tid).ok(),
            };
            if let Some(pid) = pid {
                current.insert(tid, pid);
            }
        }
        Ok(Sampled {
            sample,
            highest_pid: current.values().copied().max(),
            innermost_pids: current,
        })
    }

    fn start_sampler(self: &Arc<Self>) {
        self.sampler_started.call_once(|| {
            let tracker: Weak<TaskTracker> = Arc::downgrade(self);
            let interval = self.settings.interval;
            let spawned = std::thread::Builder::new()
                .name("cgview-sampler".into())
                .spawn(move || loop {
                    std::thread::sleep(interval);
                    match tracker.upgrade() {
                        Some(tracker) => tracker.tick(),
                        None => break,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(
                    "cannot start the load average sampler: {e}; averages only move on reads"
                );
            }
        });
    }
}

/// The kernel's "active" count: runnable plus uninterruptible.
fn active(sample: &TaskSample) -> u64 {
    sample.running + sample.blocked
}

fn view_of(tracked: &Tracked) -> TaskView {
    TaskView {
        loads: tracked.loads,
        running: (tracked.sample.running + 1).min(tracked.sample.total.max(1)),
        blocked: tracked.sample.blocked,
        total: tracked.sample.total.max(1),
        last_pid: tracked.last_pid,
    }
}

fn evict_least_recently_read(entries: &mut HashMap<String, Tracked>) {
    if let Some(key) = entries
        .iter()
        .min_by_key(|(_, t)| t.last_read)
        .map(|(k, _)| k.clone())
    {
        entries.remove(&key);
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
        assert!(!tracker.entries.lock().contains_key("a"));
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
}
