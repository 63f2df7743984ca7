//! `/proc/stat` for a container (design.md section 2).

use crate::model::cpu_time::CpuTicks;
use crate::parse::cpuset::CpuSet;
use crate::parse::ParseError;
use std::fmt::Write;

/// What the `cpu` and `cpuN` lines show.
#[derive(Debug, Clone, Copy)]
pub enum CpuLines<'a> {
    /// The container's own CPU time on each visible CPU.
    Container(&'a [(u32, CpuTicks)]),
    /// The host's lines of these CPUs only: the caller's CPU time is not accounted apart from the host's
    /// (its cpuacct cgroup is the root), but it may use fewer CPUs.
    HostSubset(&'a CpuSet),
}

/// The container's runnable and blocked task counts, for `procs_running` and `procs_blocked`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcsCounts {
    pub running: u64,
    pub blocked: u64,
}

const WHAT: &str = "/proc/stat";

/// Renders the container's stat from the host's. The `cpu` block is replaced where the host has it and
/// keeps the host's column count; `btime` and every other line pass through (ps computes process start
/// times from `btime`, so it must stay the host's).
pub fn render_stat(
    host: &str,
    cpus: CpuLines<'_>,
    procs: Option<ProcsCounts>,
) -> Result<String, ParseError> {
    let total_line = host
        .lines()
        .find(|l| l.split_ascii_whitespace().next() == Some("cpu"))
        .ok_or_else(|| ParseError::new(WHAT, "no cpu line"))?;
    let columns = parse_columns(total_line)?.len();
    if columns < 4 {
        return Err(ParseError::new(WHAT, total_line));
    }

    let per_cpu: Vec<(u32, Vec<u64>)> = match cpus {
        CpuLines::Container(ticks) => ticks
            .iter()
            .map(|(id, t)| (*id, t.columns()[..columns.min(10)].to_vec()))
            .collect(),
        CpuLines::HostSubset(visible) => host
            .lines()
            .filter_map(|line| Some((cpu_id(line)?, line)))
            .filter(|(id, _)| visible.contains(*id))
            .map(|(id, line)| Ok((id, parse_columns(line)?)))
            .collect::<Result<_, ParseError>>()?,
    };
    let width = per_cpu
        .iter()
        .map(|(_, c)| c.len())
        .max()
        .unwrap_or(columns);
    let mut total = vec![0u64; width];
    for (_, values) in &per_cpu {
        for (sum, value) in total.iter_mut().zip(values) {
            *sum = sum.saturating_add(*value);
        }
    }

    let mut out = String::with_capacity(host.len());
    for line in host.lines() {
        let name = line.split_ascii_whitespace().next().unwrap_or_default();
        if name == "cpu" {
            write_cpu_line(&mut out, "cpu ", &total);
            for (id, values) in &per_cpu {
                write_cpu_line(&mut out, &format!("cpu{id}"), values);
            }
        } else if cpu_id(line).is_some() {
            continue;
        } else if let (Some(procs), "procs_running" | "procs_blocked") = (procs, name) {
            let value = if name == "procs_running" {
                procs.running
            } else {
                procs.blocked
            };
            let _ = writeln!(out, "{name} {value}");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

fn write_cpu_line(out: &mut String, label: &str, values: &[u64]) {
    out.push_str(label);
    for value in values {
        let _ = write!(out, " {value}");
    }
    out.push('\n');
}

/// The id of a `cpuN` line.
fn cpu_id(line: &str) -> Option<u32> {
    line.split_ascii_whitespace()
        .next()?
        .strip_prefix("cpu")?
        .parse()
        .ok()
}

fn parse_columns(line: &str) -> Result<Vec<u64>, ParseError> {
    line.split_ascii_whitespace()
        .skip(1)
        .map(|field| field.parse().map_err(|_| ParseError::new(WHAT, line)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::cpuset::parse_cpu_list;

    const HOST: &str = "cpu  14534 0 6575 269002 439 0 79 18 0 0\n\
cpu0 6872 0 2798 135691 51 0 18 5 0 0\n\
cpu1 7661 0 3776 133310 387 0 61 12 0 0\n\
cpu2 1 0 1 1 1 0 1 1 0 0\n\
intr 274859 0 0\n\
ctxt 658807\n\
btime 1795583965\n\
processes 35577\n\
procs_running 3\n\
procs_blocked 1\n\
softirq 214276 0 28028\n";

    #[test]
    fn container_lines_replace_the_cpu_block() {
        let ticks = [
            (
                0,
                CpuTicks {
                    user: 10,
                    system: 5,
                    idle: 100,
                },
            ),
            (
                2,
                CpuTicks {
                    user: 1,
                    system: 2,
                    idle: 3,
                },
            ),
        ];
        let procs = ProcsCounts {
            running: 1,
            blocked: 0,
        };
        let out = render_stat(HOST, CpuLines::Container(&ticks), Some(procs)).unwrap();
        assert_eq!(
            out,
            "cpu  11 0 7 103 0 0 0 0 0 0\n\
cpu0 10 0 5 100 0 0 0 0 0 0\n\
cpu2 1 0 2 3 0 0 0 0 0 0\n\
intr 274859 0 0\n\
ctxt 658807\n\
btime 1795583965\n\
processes 35577\n\
procs_running 1\n\
procs_blocked 0\n\
softirq 214276 0 28028\n"
        );
    }

    #[test]
    fn host_subset_keeps_visible_lines_and_resums() {
        let visible = parse_cpu_list("1-2").unwrap();
        let out = render_stat(HOST, CpuLines::HostSubset(&visible), None).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "cpu  7662 0 3777 133311 388 0 62 13 0 0");
        assert_eq!(lines[1], "cpu1 7661 0 3776 133310 387 0 61 12 0 0");
        assert_eq!(lines[2], "cpu2 1 0 1 1 1 0 1 1 0 0");
        assert_eq!(lines[3], "intr 274859 0 0");
        assert!(out.contains("procs_running 3\nprocs_blocked 1\n"));
    }

    #[test]
    fn old_kernels_column_count_is_kept() {
        let host = "cpu  1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\nbtime 5\n";
        let ticks = [(
            0,
            CpuTicks {
                user: 9,
                system: 8,
                idle: 7,
            },
        )];
        let out = render_stat(host, CpuLines::Container(&ticks), None).unwrap();
        assert_eq!(out, "cpu  9 0 8 7 0 0 0\ncpu0 9 0 8 7 0 0 0\nbtime 5\n");
    }

    #[test]
    fn malformed_host_is_an_error() {
        let ticks = [];
        assert!(render_stat("intr 1\n", CpuLines::Container(&ticks), None).is_err());
        assert!(render_stat("cpu 1 x 3 4\n", CpuLines::Container(&ticks), None).is_err());
        assert!(render_stat("cpu 1 2\n", CpuLines::Container(&ticks), None).is_err());
        let visible = parse_cpu_list("0").unwrap();
        assert!(render_stat(
            "cpu 1 2 3 4\ncpu0 1 y\n",
            CpuLines::HostSubset(&visible),
            None
        )
        .is_err());
    }
}
