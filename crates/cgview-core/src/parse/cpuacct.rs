//! v1 `cpuacct` per-CPU usage files.

use super::{parse_u64, ParseError};

/// CPU time one CPU spent on the cgroup's tasks, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerCpuUsage {
    pub cpu: u32,
    pub user_ns: u64,
    pub system_ns: u64,
}

/// Parses `cpuacct.usage_all`: a `cpu user system` header, then one `<cpu> <user ns> <system ns>` line per
/// possible CPU.
pub fn parse_usage_all(text: &str) -> Result<Vec<PerCpuUsage>, ParseError> {
    const WHAT: &str = "cpuacct.usage_all";
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    if header.split_ascii_whitespace().next() != Some("cpu") {
        return Err(ParseError::new(WHAT, header));
    }
    lines
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let [cpu, user, system] = fields[..] else {
                return Err(ParseError::new(WHAT, line));
            };
            Ok(PerCpuUsage {
                cpu: cpu.parse().map_err(|_| ParseError::new(WHAT, line))?,
                user_ns: parse_u64(WHAT, user)?,
                system_ns: parse_u64(WHAT, system)?,
            })
        })
        .collect()
}

/// Parses `cpuacct.usage_percpu`: one total (ns) per possible CPU, CPU 0 first, on one line.
pub fn parse_usage_percpu(text: &str) -> Result<Vec<u64>, ParseError> {
    text.split_ascii_whitespace()
        .map(|field| parse_u64("cpuacct.usage_percpu", field))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_usage_all_reads_each_cpu() {
        let text = "cpu user system\n0 68721835401 28176415868\n1 76602296063 38375996663\n";
        let usage = parse_usage_all(text).unwrap();
        assert_eq!(
            usage,
            vec![
                PerCpuUsage {
                    cpu: 0,
                    user_ns: 68_721_835_401,
                    system_ns: 28_176_415_868
                },
                PerCpuUsage {
                    cpu: 1,
                    user_ns: 76_602_296_063,
                    system_ns: 38_375_996_663
                },
            ]
        );
    }

    #[test]
    fn parse_usage_all_rejects_missing_header_and_short_lines() {
        assert!(parse_usage_all("0 1 2\n").is_err());
        assert!(parse_usage_all("cpu user system\n0 1\n").is_err());
        assert!(parse_usage_all("cpu user system\n0 1 x\n").is_err());
        assert!(parse_usage_all("").is_err());
    }

    #[test]
    fn parse_usage_percpu_reads_one_line() {
        assert_eq!(parse_usage_percpu("10 20 \n").unwrap(), vec![10, 20]);
        assert!(parse_usage_percpu("10 -1\n").is_err());
    }
}
