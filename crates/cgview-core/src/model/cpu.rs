//! Which CPUs a container may use, and how much CPU time it has used.

use crate::parse::cpuset::CpuSet;

/// CPU restrictions of a container, reduced over its ancestors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuLimits {
    /// The effective cpuset; `None` when the cpuset controller is not in use for the container.
    pub cpuset: Option<CpuSet>,
    /// The tightest CFS quota in CPUs (e.g. 1.5); `None` when unlimited.
    pub quota_cpus: Option<f64>,
}

/// The CPUs shown to the container: its cpuset (within the host's online CPUs), in ascending order,
/// truncated to `ceil(quota)` CPUs when quota awareness is on. Never empty while the host has a CPU.
pub fn visible_cpus(host_online: &CpuSet, limits: &CpuLimits, quota_aware: bool) -> CpuSet {
    let allowed = match &limits.cpuset {
        Some(cpuset) => {
            let within = cpuset.intersection(host_online);
            if within.is_empty() {
                host_online.clone()
            } else {
                within
            }
        }
        None => host_online.clone(),
    };
    match limits.quota_cpus {
        Some(quota) if quota_aware => allowed.first(quota_cpu_count(quota)),
        _ => allowed,
    }
}

/// `ceil(quota)`, at least one CPU: a 0.5-CPU container still runs on one CPU.
fn quota_cpu_count(quota: f64) -> usize {
    if quota.is_nan() || quota <= 1.0 {
        1
    } else if quota >= usize::MAX as f64 {
        usize::MAX
    } else {
        quota.ceil() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::cpuset::parse_cpu_list;

    fn host() -> CpuSet {
        parse_cpu_list("0-15").unwrap()
    }

    fn limits(cpuset: Option<&str>, quota: Option<f64>) -> CpuLimits {
        CpuLimits {
            cpuset: cpuset.map(|c| parse_cpu_list(c).unwrap()),
            quota_cpus: quota,
        }
    }

    #[test]
    fn visible_cpus_no_limits_is_host() {
        assert_eq!(visible_cpus(&host(), &limits(None, None), true), host());
    }

    #[test]
    fn visible_cpus_half_cpu_quota_is_one_cpu() {
        let visible = visible_cpus(&host(), &limits(None, Some(0.5)), true);
        assert_eq!(visible.ids(), &[0]);
    }

    #[test]
    fn visible_cpus_quota_rounds_up() {
        let visible = visible_cpus(&host(), &limits(None, Some(1.5)), true);
        assert_eq!(visible.ids(), &[0, 1]);
    }

    #[test]
    fn visible_cpus_quota_smaller_than_cpuset_keeps_lowest_ids() {
        let visible = visible_cpus(&host(), &limits(Some("0-3,8,10-11"), Some(2.0)), true);
        assert_eq!(visible.to_list_string(), "0-1");
        let visible = visible_cpus(&host(), &limits(Some("2,5,9"), Some(1.2)), true);
        assert_eq!(visible.to_list_string(), "2,5");
    }

    #[test]
    fn visible_cpus_cpuset_smaller_than_quota_is_cpuset() {
        let visible = visible_cpus(&host(), &limits(Some("4-5"), Some(8.0)), true);
        assert_eq!(visible.to_list_string(), "4-5");
    }

    #[test]
    fn visible_cpus_quota_ignored_when_not_quota_aware() {
        let visible = visible_cpus(&host(), &limits(Some("0-3"), Some(0.5)), false);
        assert_eq!(visible.to_list_string(), "0-3");
    }

    #[test]
    fn visible_cpus_cpuset_outside_host_falls_back_to_host() {
        let visible = visible_cpus(
            &parse_cpu_list("0-1").unwrap(),
            &limits(Some("7"), None),
            true,
        );
        assert_eq!(visible.to_list_string(), "0-1");
    }

    #[test]
    fn quota_cpu_count_edges() {
        assert_eq!(quota_cpu_count(0.0001), 1);
        assert_eq!(quota_cpu_count(1.0), 1);
        assert_eq!(quota_cpu_count(1.0001), 2);
        assert_eq!(quota_cpu_count(f64::NAN), 1);
        assert_eq!(quota_cpu_count(f64::INFINITY), usize::MAX);
    }
}
