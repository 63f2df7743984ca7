//! Load averages: exponentially decayed averages of the number of active (runnable or uninterruptible)
//! tasks, as the kernel computes them for the whole machine, computed here per container.

/// The 1, 5 and 15 minute averages.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadAverages {
    pub averages: [f64; 3],
}

const WINDOWS_SECS: [f64; 3] = [60.0, 300.0, 900.0];

impl LoadAverages {
    /// The averages of a container first seen with `active` tasks, when its age is unknown. Without
    /// history the current count is the best estimate; starting at 0 (as the kernel does at boot) would
    /// under-report a container that has been busy for hours until its 15-minute average caught up.
    pub fn seeded(active: u64) -> LoadAverages {
        LoadAverages {
            averages: [active as f64; 3],
        }
    }

    /// The averages of a container first seen with `active` tasks, `age_secs` after it started: what
    /// the kernel's averages would read on a machine booted that long ago with `active` tasks all along
    /// (starting at 0, each window approaching the count as `1 - e^(-age/window)`). A container a second
    /// old reads about 0 whatever its count at that instant; one up for an hour reads its count.
    pub fn since_start(active: u64, age_secs: f64) -> LoadAverages {
        let age = if age_secs.is_finite() {
            age_secs.max(0.0)
        } else {
            0.0
        };
        let mut loads = LoadAverages::default();
        for (average, window) in loads.averages.iter_mut().zip(WINDOWS_SECS) {
            *average = active as f64 * (1.0 - (-age / window).exp());
        }
        loads
    }

    /// Folds in a sample of `active` tasks taken `elapsed_secs` after the previous one. The kernel
    /// samples every 5 s with fixed factors (e^-5/60 ...); weighting by the real interval keeps the
    /// averages right when a sample comes late.
    pub fn update(&mut self, active: u64, elapsed_secs: f64) {
        let elapsed = if elapsed_secs.is_finite() {
            elapsed_secs.max(0.0)
        } else {
            0.0
        };
        for (average, window) in self.averages.iter_mut().zip(WINDOWS_SECS) {
            let keep = (-elapsed / window).exp();
            *average = *average * keep + active as f64 * (1.0 - keep);
        }
    }
}

/// The fields of `/proc/loadavg` beyond the averages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadavgTail {
    /// Runnable tasks now.
    pub running: u64,
    /// All tasks (threads).
    pub total: u64,
    /// The most recently created pid, as the reader's pid namespace numbers it.
    pub last_pid: u64,
}

/// `1.00 0.50 0.25 1/123 4567`, the kernel's format.
pub fn render_loadavg(loads: &LoadAverages, tail: &LoadavgTail) -> String {
    let [one, five, fifteen] = loads.averages;
    format!(
        "{one:.2} {five:.2} {fifteen:.2} {}/{} {}\n",
        tail.running, tail.total, tail.last_pid
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_load_converges() {
        let mut loads = LoadAverages::default();
        for _ in 0..(3600 / 5) {
            loads.update(2, 5.0);
        }
        for average in loads.averages {
            assert!((average - 2.0).abs() < 0.05, "{average}");
        }
    }

    #[test]
    fn one_minute_average_reacts_fastest() {
        let mut loads = LoadAverages::seeded(0);
        for _ in 0..12 {
            loads.update(4, 5.0);
        }
        let [one, five, fifteen] = loads.averages;
        // After one minute at 4 the 1-minute average is 4 * (1 - 1/e).
        assert!((one - 4.0 * (1.0 - (-1.0f64).exp())).abs() < 1e-9);
        assert!(one > five && five > fifteen && fifteen > 0.0);
    }

    #[test]
    fn late_sample_weighs_more_and_bad_intervals_change_nothing() {
        let mut on_time = LoadAverages::seeded(0);
        on_time.update(1, 5.0);
        let mut late = LoadAverages::seeded(0);
        late.update(1, 10.0);
        assert!(late.averages[0] > on_time.averages[0]);
        let mut odd = LoadAverages::seeded(3);
        odd.update(100, f64::NAN);
        odd.update(100, -5.0);
        assert_eq!(odd, LoadAverages::seeded(3));
    }

    #[test]
    fn a_young_container_starts_near_0_and_an_old_one_at_its_count() {
        let young = LoadAverages::since_start(3, 1.0);
        assert!(young.averages.iter().all(|&a| a < 0.05), "{young:?}");
        let old = LoadAverages::since_start(3, 6.0 * 3600.0);
        assert!(
            old.averages.iter().all(|&a| (a - 3.0).abs() < 1e-6),
            "{old:?}"
        );
        // What sampling from the start would have given: 12 samples of 4, 5 s apart, from 0.
        let mut sampled = LoadAverages::default();
        for _ in 0..12 {
            sampled.update(4, 5.0);
        }
        let seeded = LoadAverages::since_start(4, 60.0);
        for (a, b) in seeded.averages.iter().zip(sampled.averages) {
            assert!((a - b).abs() < 1e-9, "{seeded:?} vs {sampled:?}");
        }
        for bad in [f64::NAN, -5.0, f64::NEG_INFINITY] {
            assert_eq!(LoadAverages::since_start(7, bad), LoadAverages::default());
        }
    }

    #[test]
    fn renders_like_the_kernel() {
        let loads = LoadAverages {
            averages: [1.0, 0.505, 0.0],
        };
        let tail = LoadavgTail {
            running: 1,
            total: 12,
            last_pid: 345,
        };
        assert_eq!(render_loadavg(&loads, &tail), "1.00 0.51 0.00 1/12 345\n");
    }
}
