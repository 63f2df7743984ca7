//! Per-container memory of the `/proc/vmstat` counters last shown, so they never go backwards (see
//! [`CounterCarry`]); bounded like the CPU ledger behind `/proc/stat`.

use cgview_core::model::vmstat::CounterCarry;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Instant;

/// Containers remembered at most; the least recently read one is forgotten first.
pub const COUNTER_LEDGER_CAPACITY: usize = 8192;

#[derive(Debug, Default)]
pub struct CounterLedger {
    entries: Mutex<HashMap<String, Remembered>>,
}

#[derive(Debug)]
struct Remembered {
    at: Instant,
    carry: CounterCarry,
}

impl CounterLedger {
    /// Runs `settle` on the carry of container `key` (a fresh one the first time), under the ledger's lock:
    /// `settle` should only pass counters through it.
    pub fn settle<R>(&self, key: &str, settle: impl FnOnce(&mut CounterCarry) -> R) -> R {
        let mut entries = self.entries.lock();
        if !entries.contains_key(key) && entries.len() >= COUNTER_LEDGER_CAPACITY {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, remembered)| remembered.at)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        let remembered = entries.entry(key.to_owned()).or_insert_with(|| Remembered {
            at: Instant::now(),
            carry: CounterCarry::default(),
        });
        remembered.at = Instant::now();
        settle(&mut remembered.carry)
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

    #[test]
    fn each_container_keeps_its_own_counters() {
        let ledger = CounterLedger::default();
        assert_eq!(ledger.settle("a", |c| c.settle("pgfault", 10)), 10);
        assert_eq!(ledger.settle("a", |c| c.settle("pgfault", 4)), 10);
        assert_eq!(ledger.settle("b", |c| c.settle("pgfault", 4)), 4);
        assert_eq!(ledger.len(), 2);
    }

    #[test]
    fn the_least_recently_read_container_is_forgotten_at_capacity() {
        let ledger = CounterLedger::default();
        for i in 0..COUNTER_LEDGER_CAPACITY {
            ledger.settle(&format!("c{i}"), |c| c.settle("pgfault", 1));
        }
        // c0 is read again, so c1 is now the oldest.
        ledger.settle("c0", |c| c.settle("pgfault", 1));
        ledger.settle("new", |c| c.settle("pgfault", 1));
        assert_eq!(ledger.len(), COUNTER_LEDGER_CAPACITY);
        // c1 was forgotten: a lower value is taken as it comes.
        assert_eq!(ledger.settle("c1", |c| c.settle("pgfault", 0)), 0);
        assert_eq!(ledger.settle("c0", |c| c.settle("pgfault", 0)), 1);
    }
}
