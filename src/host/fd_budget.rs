//! Descriptors are a budgeted resource. Callers decide how many descriptors the daemon holds: every new
//! container that reads a file could keep its cgroup files open, and a tenant can make new containers
//! (pid namespaces) as fast as it can fork. The caches keep descriptors only under a budget well inside
//! the process's limit; past it they read with open-read-close, which is slower but never fails for want
//! of a descriptor, and the janitor closes the least recently used containers' files to make room.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;

/// Descriptors left outside the budget for everything else: the FUSE device and its clones, the files
/// read with open-read-close, `/metrics` connections, repair helpers, logs.
pub const RESERVED_DESCRIPTORS: u64 = 512;

/// The most descriptors kept open whatever the limit: enough for thousands of busy containers.
pub const MAX_BUDGET: usize = 65_536;

/// The budget for a process allowed `nofile` descriptors: half of what the reserve leaves.
pub fn budget_for_limit(nofile: u64) -> usize {
    let budget = nofile.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    usize::try_from(budget)
        .unwrap_or(MAX_BUDGET)
        .min(MAX_BUDGET)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one (systemd and container runtimes start services with a
/// soft limit of 1,024 and a much higher hard one) and returns the soft limit in force.
pub fn raise_nofile_limit() -> io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        return Ok(hard);
    }
    Ok(soft)
}

/// The soft `RLIMIT_NOFILE` in force.
pub fn nofile_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft)
}

/// How many descriptors the caches may keep open, and how many they do.
#[derive(Debug)]
pub struct FdBudget {
    limit: usize,
    used: AtomicUsize,
    refused: AtomicU64,
    /// Woken when a request is refused, so that room is made before the next one.
    janitor: OnceLock<Thread>,
}

/// One kept descriptor's share of the budget, given back when dropped.
#[derive(Debug)]
pub struct FdPermit(Arc<FdBudget>);

impl Drop for FdPermit {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::Relaxed);
    }
}

impl FdBudget {
    pub fn new(limit: usize) -> Arc<FdBudget> {
        Arc::new(FdBudget {
            limit,
            used: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            janitor: OnceLock::new(),
        })
    }

    /// A share of the budget, or `None` when it is spent (the caller then closes what it opened).
    pub fn try_acquire(self: &Arc<Self>) -> Option<FdPermit> {
        let acquired = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used < self.limit).then_some(used + 1)
            })
            .is_ok();
        if acquired {
            return Some(FdPermit(self.clone()));
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(janitor) = self.janitor.get() {
            janitor.unpark();
        }
        None
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Requests refused because the budget was spent.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether the janitor should close descriptors: more than seven eighths of the budget is in use.
    pub fn is_nearly_spent(&self) -> bool {
        self.used().saturating_mul(8) > self.limit.saturating_mul(7)
    }

    /// How many descriptors to close to get back to three quarters of the budget.
    pub fn excess(&self) -> usize {
        self.used().saturating_sub(self.limit - self.limit / 4)
    }

    /// The thread to wake when the budget runs out.
    pub fn set_janitor(&self, thread: Thread) {
        let _ = self.janitor.set(thread);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_bounded_and_given_back_when_dropped() {
        let budget = FdBudget::new(2);
        let a = budget.try_acquire().unwrap();
        let b = budget.try_acquire().unwrap();
        assert!(budget.try_acquire().is_none());
        assert_eq!((budget.used(), budget.refused()), (2, 1));
        assert!(budget.is_nearly_spent());
        drop(a);
        assert_eq!(budget.used(), 1);
        let _c = budget.try_acquire().unwrap();
        drop(b);
        assert_eq!(budget.used(), 1);
    }

    #[test]
    fn budget_stays_well_inside_the_limit() {
        assert_eq!(budget_for_limit(1024), 256);
        assert_eq!(budget_for_limit(4096), 1792);
        assert_eq!(budget_for_limit(100), 0);
        assert_eq!(budget_for_limit(u64::MAX), MAX_BUDGET);
        for limit in [1024, 4096, 20_000, 1 << 20] {
            assert!((budget_for_limit(limit) as u64) < limit / 2);
        }
    }

    #[test]
    fn excess_brings_use_back_to_three_quarters() {
        let budget = FdBudget::new(8);
        let permits: Vec<_> = (0..8).map(|_| budget.try_acquire().unwrap()).collect();
        assert_eq!(budget.excess(), 2);
        drop(permits);
        assert_eq!(budget.excess(), 0);
        assert!(!budget.is_nearly_spent());
    }
}
