//! The container's CPU time per visible CPU, in the clock ticks `/proc/stat` counts (design.md section 2).

use crate::parse::cpuacct::PerCpuUsage;
use crate::parse::cpuset::CpuSet;

/// One `cpuN` line's times. The container only has user, system and idle; the kernel does not account
/// nice, iowait, irq, softirq, steal or guest time per cgroup, so those are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub user: u64,
    pub system: u64,
    pub idle: u64,
}

impl CpuTicks {
    /// The `/proc/stat` columns: user nice system idle iowait irq softirq steal guest guest_nice.
    pub fn columns(&self) -> [u64; 10] {
        [self.user, 0, self.system, self.idle, 0, 0, 0, 0, 0, 0]
    }

    /// Field by field maximum: what a counter that never goes backwards shows after `self` when the
    /// new reading is `other`.
    pub fn max(self, other: CpuTicks) -> CpuTicks {
        CpuTicks {
            user: self.user.max(other.user),
            system: self.system.max(other.system),
            idle: self.idle.max(other.idle),
        }
    }
}

/// CPU time the container has used, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuUsage {
    pub user_ns: u64,
    pub system_ns: u64,
    /// Per-CPU split when the kernel provides one (v1 `cpuacct`); v2 only has totals.
    pub per_cpu: Option<Vec<PerCpuUsage>>,
}

/// The container's times on each visible CPU after `up_secs` of its life.
///
/// Time used on CPUs the container is not shown (a quota narrower than its cpuset) is spread evenly over
/// the visible ones, as are v2's totals, so the `cpu` line always sums the container's whole usage. Idle
/// is whatever of `up_secs` each CPU did not spend on the container.
pub fn container_cpu_ticks(
    visible: &CpuSet,
    usage: &CpuUsage,
    up_secs: f64,
    ticks_per_sec: u64,
) -> Vec<(u32, CpuTicks)> {
    let count = visible.len() as u64;
    if count == 0 {
        return Vec::new();
    }
    let (mut per_cpu, spread_user, spread_system) = match &usage.per_cpu {
        Some(per_cpu) => {
            let own: Vec<(u64, u64)> = visible
                .ids()
                .iter()
                .map(|&id| {
                    per_cpu
                        .iter()
                        .find(|u| u.cpu == id)
                        .map_or((0, 0), |u| (u.user_ns, u.system_ns))
                })
                .collect();
            let (hidden_user, hidden_system) = per_cpu
                .iter()
                .filter(|u| !visible.contains(u.cpu))
                .fold((0u64, 0u64), |(user, system), u| {
                    (
                        user.saturating_add(u.user_ns),
                        system.saturating_add(u.system_ns),
                    )
                });
            (own, hidden_user, hidden_system)
        }
        None => (vec![(0, 0); visible.len()], usage.user_ns, usage.system_ns),
    };
    for (index, (user, system)) in per_cpu.iter_mut().enumerate() {
        *user = user.saturating_add(share(spread_user, count, index as u64));
        *system = system.saturating_add(share(spread_system, count, index as u64));
    }
    let up_ticks = secs_to_ticks(up_secs, ticks_per_sec);
    visible
        .ids()
        .iter()
        .zip(per_cpu)
        .map(|(&id, (user_ns, system_ns))| {
            let user = ns_to_ticks(user_ns, ticks_per_sec);
            let system = ns_to_ticks(system_ns, ticks_per_sec);
            let idle = up_ticks.saturating_sub(user.saturating_add(system));
            (id, CpuTicks { user, system, idle })
        })
        .collect()
}

/// What one CPU shows next, given what it showed last (`last`, when the container's clock read `last_up`
/// ticks) and a fresh reading (`now`, at `up` ticks, with idle computed as up time minus usage).
///
/// Usage never goes backwards. Idle grows by the wall time that passed minus the usage that grew, so a
/// container whose cgroup is older than its clock (a pid namespace made after the cgroup, a long-lived pod
/// cgroup) still shows its current utilisation rather than an idle stuck at 0; and it is never less than
/// the fresh reading's, which recovers growth lost when usage is accounted late.
pub fn advance(last: CpuTicks, last_up: u64, now: CpuTicks, up: u64) -> CpuTicks {
    let user = last.user.max(now.user);
    let system = last.system.max(now.system);
    let used_growth = user
        .saturating_add(system)
        .saturating_sub(last.user.saturating_add(last.system));
    let idle_growth = up.saturating_sub(last_up).saturating_sub(used_growth);
    CpuTicks {
        user,
        system,
        idle: last.idle.saturating_add(idle_growth).max(now.idle),
    }
}

/// CPU `index`'s part of `total` spread over `count` CPUs; the remainder goes to the first CPUs.
fn share(total: u64, count: u64, index: u64) -> u64 {
    total / count + u64::from(index < total % count)
}

fn ns_to_ticks(ns: u64, ticks_per_sec: u64) -> u64 {
    let ticks = u128::from(ns) * u128::from(ticks_per_sec) / 1_000_000_000;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

fn secs_to_ticks(secs: f64, ticks_per_sec: u64) -> u64 {
    // `as` saturates for floats: negative and NaN become 0.
    (secs * ticks_per_sec as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::cpuset::parse_cpu_list;

    const SEC: u64 = 1_000_000_000;

    fn per_cpu(cpu: u32, user_s: u64, system_s: u64) -> PerCpuUsage {
        PerCpuUsage {
            cpu,
            user_ns: user_s * SEC,
            system_ns: system_s * SEC,
        }
    }

    #[test]
    fn per_cpu_usage_of_visible_cpus_is_kept() {
        let usage = CpuUsage {
            user_ns: 6 * SEC,
            system_ns: 3 * SEC,
            per_cpu: Some(vec![per_cpu(0, 4, 2), per_cpu(1, 2, 1)]),
        };
        let ticks = container_cpu_ticks(&parse_cpu_list("0-1").unwrap(), &usage, 100.0, 100);
        assert_eq!(
            ticks,
            vec![
                (
                    0,
                    CpuTicks {
                        user: 400,
                        system: 200,
                        idle: 9400
                    }
                ),
                (
                    1,
                    CpuTicks {
                        user: 200,
                        system: 100,
                        idle: 9700
                    }
                ),
            ]
        );
    }

    #[test]
    fn usage_on_hidden_cpus_moves_to_visible_ones() {
        let usage = CpuUsage {
            user_ns: 9 * SEC,
            system_ns: 0,
            per_cpu: Some(vec![per_cpu(0, 1, 0), per_cpu(1, 4, 0), per_cpu(2, 4, 0)]),
        };
        let ticks = container_cpu_ticks(&parse_cpu_list("0").unwrap(), &usage, 10.0, 100);
        assert_eq!(
            ticks,
            vec![(
                0,
                CpuTicks {
                    user: 900,
                    system: 0,
                    idle: 100
                }
            )]
        );
    }

    #[test]
    fn totals_are_spread_evenly_and_sum_exactly() {
        let usage = CpuUsage {
            user_ns: 3,
            system_ns: 0,
            per_cpu: None,
        };
        let ticks =
            container_cpu_ticks(&parse_cpu_list("2,5").unwrap(), &usage, 0.0, 1_000_000_000);
        assert_eq!(ticks[0].0, 2);
        assert_eq!(ticks[1].0, 5);
        assert_eq!(ticks[0].1.user + ticks[1].1.user, 3);
    }

    #[test]
    fn idle_never_negative() {
        let usage = CpuUsage {
            user_ns: 50 * SEC,
            system_ns: 0,
            per_cpu: None,
        };
        let ticks = container_cpu_ticks(&parse_cpu_list("0").unwrap(), &usage, 10.0, 100);
        assert_eq!(ticks[0].1.idle, 0);
        assert_eq!(ticks[0].1.user, 5000);
    }

    #[test]
    fn max_is_field_by_field() {
        let a = CpuTicks {
            user: 5,
            system: 1,
            idle: 9,
        };
        let b = CpuTicks {
            user: 3,
            system: 2,
            idle: 10,
        };
        assert_eq!(
            a.max(b),
            CpuTicks {
                user: 5,
                system: 2,
                idle: 10
            }
        );
    }

    #[test]
    fn advance_grows_idle_by_wall_time_minus_usage_growth() {
        let t = |user, system, idle| CpuTicks { user, system, idle };
        // The cgroup used 250 ticks before a clock that reads 100: idle starts at 0 but then moves.
        let first = t(240, 10, 0);
        let next = advance(first, 100, t(290, 10, 0), 200);
        assert_eq!(next, t(290, 10, 50));
        // Usage grew faster than the clock (time used on hidden CPUs): idle stays, never shrinks.
        assert_eq!(advance(next, 200, t(500, 20, 0), 250), t(500, 20, 50));
        // A fresh reading with more idle (late accounting caught up) wins.
        assert_eq!(advance(t(10, 0, 50), 100, t(10, 0, 90), 110), t(10, 0, 90));
        // Dips in a fresh reading never show.
        assert_eq!(advance(t(10, 5, 50), 100, t(8, 4, 0), 90), t(10, 5, 50));
    }
}
