//! Parsers for the kernel text formats cgview reads. Every parser takes `&str` and never touches the file
//! system, so each one is fed literal fixtures in tests and fuzzed in `fuzz/`.

pub mod blkio;
pub mod cgroup_membership;
pub mod cpu_quota;
pub mod cpuacct;
pub mod cpuinfo;
pub mod cpuset;
pub mod diskstats;
pub mod flat_keyed;
pub mod io_stat;
pub mod limit;
pub mod meminfo;
pub mod mountinfo;
pub mod numa_stat;
pub mod pid_stat;
pub mod task_credentials;
pub mod uptime;
pub mod vmstat;

use thiserror::Error;

/// A kernel file whose text did not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{what}: unexpected text {excerpt:?}")]
pub struct ParseError {
    /// Which format was being parsed, e.g. "cpu.max".
    pub what: &'static str,
    /// The offending text, cut to a readable length.
    pub excerpt: String,
}

impl ParseError {
    pub fn new(what: &'static str, text: &str) -> Self {
        let excerpt: String = text.chars().take(80).collect();
        Self { what, excerpt }
    }
}

/// Parses a decimal `u64`, with a typed error naming the format.
pub(crate) fn parse_u64(what: &'static str, text: &str) -> Result<u64, ParseError> {
    text.parse::<u64>().map_err(|_| ParseError::new(what, text))
}
