//! Per-container memory of the CPU times last shown, so `/proc/stat` counters never go backwards.
//!
//! Computed times can dip: v2 totals are spread over the visible CPUs again when that set changes, and
//! idle is derived from wall time minus usage. Tools that diff two samples (top, vmstat, mpstat, node's
//! `os.cpus()`) then see negative deltas; LXCFS has had such bugs. Each value shown is at least the last one
//! shown for the same container and CPU, and idle advances with the wall time between reads
//! ([`advance`]).

use cgview_core::model::cpu_time::{advance, CpuTicks};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Instant;

/// Containers remembered at most; the least recently read one is forgotten first.
pub const LEDGER_CAPACITY: usize = 8192;

#[derive(Debug, Default)]
pub struct CpuLedger {
    entries: Mutex<HashMap<String, Shown>>,
}

/// What one container was last shown.
#[derive(Debug)]
struct Shown {
    at: Instant,
    /// The container's clock, in ticks, when it was last shown.
    up: u64,
    per_cpu: HashMap<u32, CpuTicks>,
}

impl CpuLedger {
    /// The times to show for `key` given freshly computed ones at `up` ticks of the container's clock.
    pub fn settle(
        &self,
        key: &str,
        up: u64,
        computed: Vec<(u32, CpuTicks)>,
    ) -> Vec<(u32, CpuTicks)> {
        let mut entries = self.entries.lock();
        if !entries.contains_key(key) && entries.len() >= LEDGER_CAPACITY {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, shown)| shown.at)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        let shown = entries.entry(key.to_owned()).or_insert_with(|| Shown {
            at: Instant::now(),
            up,
            per_cpu: HashMap::new(),
        });
        shown.at = Instant::now();
        let last_up = shown.up;
        // A clock that went back (another anchor under the same key) restarts the growth from here.
        shown.up = shown.up.max(up);
        let settled: Vec<(u32, CpuTicks)> = computed
            .into_iter()
            .map(|(cpu, ticks)| {
                let settled = shown
                    .per_cpu
                    .get(&cpu)
                    .map_or(ticks, |&last| advance(last, last_up, ticks, up));
                shown.per_cpu.insert(cpu, settled);
                (cpu, settled)
            })
            .collect();
        settled
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks(user: u64, system: u64, idle: u64) -> CpuTicks {
        CpuTicks { user, system, idle }
    }

    #[test]
    fn values_never_go_backwards_per_container_and_cpu() {
        let ledger = CpuLedger::default();
        assert_eq!(
            ledger.settle("a", 115, vec![(0, ticks(10, 5, 100))]),
            vec![(0, ticks(10, 5, 100))]
        );
        assert_eq!(
            ledger.settle("a", 115, vec![(0, ticks(8, 6, 90)), (1, ticks(1, 1, 1))]),
            vec![(0, ticks(10, 6, 100)), (1, ticks(1, 1, 1))]
        );
        // Another container is independent.
        assert_eq!(
            ledger.settle("b", 3, vec![(0, ticks(1, 1, 1))]),
            vec![(0, ticks(1, 1, 1))]
        );
        assert_eq!(ledger.len(), 2);
    }

    #[test]
    fn idle_follows_wall_time_when_usage_exceeds_the_clock() {
        let ledger = CpuLedger::default();
        // 250 ticks used, clock at 100: the computed idle saturates at 0.
        ledger.settle("a", 100, vec![(0, ticks(240, 10, 0))]);
        // One second later half a CPU was used: idle grew by the other half.
        assert_eq!(
            ledger.settle("a", 200, vec![(0, ticks(290, 10, 0))]),
            vec![(0, ticks(290, 10, 50))]
        );
    }
}
