//! CPU bandwidth limits: v2 `cpu.max` ("quota period") and v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`.

use super::{limit::parse_limit, parse_u64, ParseError};

/// A CFS bandwidth limit: `quota_us` of CPU time per `period_us` of wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuQuota {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuQuota {
    /// How many CPUs' worth of time the quota allows, e.g. 1.5.
    pub fn cpus(&self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }
}

/// Parses v2 `cpu.max`: `max 100000` (unlimited) or `50000 100000`.
pub fn parse_cpu_max(text: &str) -> Result<Option<CpuQuota>, ParseError> {
    let mut fields = text.split_ascii_whitespace();
    let (Some(quota), period, None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(ParseError::new("cpu.max", text));
    };
    // The period is optional when written, but the kernel always prints it; 100 ms is its default.
    let period_us = period.map_or(Ok(100_000), |p| parse_u64("cpu.max", p))?;
    quota_from_parts(quota, period_us, "cpu.max", text)
}

/// Parses the v1 pair `cpu.cfs_quota_us` (-1 = unlimited) and `cpu.cfs_period_us`.
pub fn parse_cfs(quota_text: &str, period_text: &str) -> Result<Option<CpuQuota>, ParseError> {
    let period_us = parse_u64("cpu.cfs_period_us", period_text.trim())?;
    quota_from_parts(quota_text.trim(), period_us, "cpu.cfs_quota_us", quota_text)
}

fn quota_from_parts(
    quota: &str,
    period_us: u64,
    what: &'static str,
    text: &str,
) -> Result<Option<CpuQuota>, ParseError> {
    if period_us == 0 {
        return Err(ParseError::new(what, text));
    }
    match parse_limit(quota) {
        Ok(Some(quota_us)) => Ok(Some(CpuQuota {
            quota_us,
            period_us,
        })),
        Ok(None) => Ok(None),
        Err(_) => Err(ParseError::new(what, text)),
    }
}

/// The tightest quota over a cgroup and its ancestors, in CPUs.
pub fn effective_quota_cpus<I>(chain: I) -> Option<f64>
where
    I: IntoIterator<Item = Option<CpuQuota>>,
{
    chain
        .into_iter()
        .flatten()
        .map(|q| q.cpus())
        .min_by(|a, b| a.total_cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cpu_max_unlimited() {
        assert_eq!(parse_cpu_max("max 100000\n").unwrap(), None);
    }

    #[test]
    fn parse_cpu_max_half_cpu() {
        let quota = parse_cpu_max("50000 100000\n").unwrap().unwrap();
        assert_eq!(quota.cpus(), 0.5);
    }

    #[test]
    fn parse_cpu_max_without_period_uses_default() {
        assert_eq!(parse_cpu_max("150000").unwrap().unwrap().cpus(), 1.5);
    }

    #[test]
    fn parse_cpu_max_garbage_is_an_error() {
        parse_cpu_max("").unwrap_err();
        parse_cpu_max("x 100000").unwrap_err();
        parse_cpu_max("1 2 3").unwrap_err();
        parse_cpu_max("1000 0").unwrap_err();
    }

    #[test]
    fn parse_cfs_minus_one_is_unlimited() {
        assert_eq!(parse_cfs("-1\n", "100000\n").unwrap(), None);
    }

    #[test]
    fn parse_cfs_quota() {
        let quota = parse_cfs("150000\n", "100000\n").unwrap().unwrap();
        assert_eq!(quota.cpus(), 1.5);
        parse_cfs("150000", "").unwrap_err();
    }

    #[test]
    fn effective_quota_pod_lower_than_container_wins() {
        let container = parse_cpu_max("200000 100000").unwrap();
        let pod = parse_cpu_max("50000 100000").unwrap();
        assert_eq!(effective_quota_cpus([container, pod, None]), Some(0.5));
        assert_eq!(effective_quota_cpus([None, None]), None);
    }
}
