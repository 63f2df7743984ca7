//! The fallback policy in one place: when a file cannot be virtualized for a caller, the host file is
//! served, the cause is counted, and it is logged at most once per (file, cause) per minute.

use cgview_core::catalog::ServedFile;
pub use cgview_core::failure::FallbackCause;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Counts fallbacks and rate-limits their log lines.
#[derive(Debug, Default)]
pub struct FallbackLog {
    counts: [AtomicU64; FallbackCause::ALL.len()],
    last_logged: Mutex<HashMap<(ServedFile, FallbackCause), Instant>>,
}

impl FallbackLog {
    /// Counts one more read served the host file for `cause`. Reads are counted where they are served,
    /// not where the fallback is rendered: a cached fallback answers many.
    pub fn count_one(&self, _file: ServedFile, cause: FallbackCause) {
        self.counts[cause.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Logs a fallback render's `detail` unless this (file, cause) was logged within the last minute.
    pub fn log(&self, file: ServedFile, cause: FallbackCause, detail: &dyn fmt::Display) {
        let now = Instant::now();
        let due = {
            let mut last = self.last_logged.lock();
            match last.get(&(file, cause)) {
                Some(at) if now.duration_since(*at) < LOG_INTERVAL => false,
                _ => {
                    last.insert((file, cause), now);
                    true
                }
            }
        };
        if !due {
            return;
        }
        let count = self.count(cause);
        match cause {
            // Processes exit all the time; this is routine, not a problem.
            FallbackCause::CallerGone | FallbackCause::CgroupVanished => tracing::debug!(
                file = file.tree_path(),
                cause = cause.name(),
                total = count,
                "serving the host file: {detail}"
            ),
            _ => tracing::warn!(
                file = file.tree_path(),
                cause = cause.name(),
                total = count,
                "serving the host file: {detail}"
            ),
        }
    }

    /// How many fallbacks with `cause` happened since start.
    pub fn count(&self, cause: FallbackCause) -> u64 {
        self.counts[cause.index()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_fallback_and_logs_each_file_and_cause_once() {
        let log = FallbackLog::default();
        for _ in 0..3 {
            log.count_one(ServedFile::Meminfo, FallbackCause::Unparsable);
            log.log(ServedFile::Meminfo, FallbackCause::Unparsable, &"bad");
        }
        log.count_one(ServedFile::Cpuinfo, FallbackCause::CallerGone);
        log.log(ServedFile::Cpuinfo, FallbackCause::CallerGone, &"gone");
        assert_eq!(log.count(FallbackCause::Unparsable), 3);
        assert_eq!(log.count(FallbackCause::CallerGone), 1);
        assert_eq!(log.count(FallbackCause::Unreadable), 0);
        assert_eq!(log.last_logged.lock().len(), 2);
    }
}
