//! `/proc/meminfo` for a container (design.md section 2; the lines are listed in
//! [`ContainerMeminfo::line_kb`]).

use crate::model::memory::{ContainerMeminfo, MemoryState};
use crate::parse::meminfo::{parse_host_meminfo, parse_meminfo_line, MeminfoLine};
use crate::parse::ParseError;

/// Renders the container's meminfo from the host's: every line in the host's order and formatting, with
/// the container's value where [`ContainerMeminfo::line_kb`] gives one.
pub fn render_meminfo(host: &str, memory: &MemoryState) -> Result<String, ParseError> {
    let container = memory.meminfo(&parse_host_meminfo(host)?);
    Ok(render_lines(host, &container))
}

fn render_lines(host: &str, container: &ContainerMeminfo) -> String {
    let mut out = String::with_capacity(host.len());
    for line in host.lines() {
        let replaced = parse_meminfo_line(line).and_then(|parsed| {
            container
                .line_kb(parsed.name, parsed.value, parsed.is_kb())
                .map(|value| (parsed, value))
        });
        match replaced {
            Some((parsed, value)) => write_line(&mut out, &parsed, value),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Writes `Name:<padding><value><unit>`, keeping the host line's alignment when the new value fits in it.
fn write_line(out: &mut String, line: &MeminfoLine<'_>, kb: u64) {
    let label_len = line.name.len() + 1;
    let digits = kb.to_string();
    let padding = line
        .value_end
        .saturating_sub(label_len + digits.len())
        .max(1);
    out.push_str(line.name);
    out.push(':');
    out.extend(std::iter::repeat_n(' ', padding));
    out.push_str(&digits);
    out.push_str(&line.line[line.value_end..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::memory::{MemoryStat, Swap};
    use crate::parse::meminfo::meminfo_value;

    const HOST: &str = "\
MemTotal:       24572812 kB
MemFree:        20000000 kB
MemAvailable:   22000000 kB
Buffers:          100000 kB
Cached:          2000000 kB
SwapCached:            0 kB
Active:          1000000 kB
Mapped:           300000 kB
Slab:             400000 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
DirectMap1G:    25165824 kB
";

    fn container() -> MemoryState {
        MemoryState {
            limit_bytes: Some(512 << 20),
            usage_bytes: 112 << 20,
            stat: MemoryStat {
                cache: 12 << 20,
                active_file: 4 << 20,
                inactive_file: 8 << 20,
                active_anon: 90 << 20,
                mapped: Some(1 << 20),
                ..MemoryStat::default()
            },
            swap: Swap::NotAccounted,
        }
    }

    fn field(text: &str, name: &str) -> u64 {
        meminfo_value(text, name).unwrap()
    }

    #[test]
    fn render_meminfo_limit_becomes_mem_total() {
        let out = render_meminfo(HOST, &container()).unwrap();
        assert_eq!(field(&out, "MemTotal"), 524_288);
        assert_eq!(field(&out, "MemFree"), 409_600);
        assert_eq!(field(&out, "MemAvailable"), 409_600 + 12 * 1024);
        assert_eq!(field(&out, "Cached"), 12 * 1024);
        assert_eq!(field(&out, "Buffers"), 0);
        assert_eq!(field(&out, "Active"), 94 * 1024);
        assert_eq!(field(&out, "Mapped"), 1024);
        assert_eq!(field(&out, "Slab"), 0);
        assert_eq!(field(&out, "SwapTotal"), 0);
        assert_eq!(field(&out, "SwapFree"), 0);
    }

    #[test]
    fn render_meminfo_passes_other_lines_through_in_order() {
        let out = render_meminfo(HOST, &container()).unwrap();
        let names: Vec<_> = out.lines().map(|l| l.split(':').next().unwrap()).collect();
        let host_names: Vec<_> = HOST.lines().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(names, host_names);
        assert!(out.contains("HugePages_Total:       0\n"));
        assert!(out.contains("DirectMap1G:    25165824 kB\n"));
    }

    #[test]
    fn render_meminfo_keeps_alignment() {
        let out = render_meminfo(HOST, &container()).unwrap();
        assert!(out.starts_with("MemTotal:         524288 kB\n"), "{out}");
        let host_width = HOST.lines().next().unwrap().len();
        assert!(out.lines().take(10).all(|l| l.len() == host_width));
    }

    #[test]
    fn render_meminfo_unlimited_is_host_total() {
        let mut memory = container();
        memory.limit_bytes = None;
        let out = render_meminfo(HOST, &memory).unwrap();
        assert_eq!(field(&out, "MemTotal"), 24_572_812);
    }

    #[test]
    fn render_meminfo_huge_value_widens_line() {
        let host = "MemTotal: 1 kB\n";
        let mut memory = container();
        memory.limit_bytes = None;
        let out = render_meminfo(host, &memory).unwrap();
        assert_eq!(out, "MemTotal: 1 kB\n");
    }

    #[test]
    fn render_meminfo_without_mem_total_is_an_error() {
        render_meminfo("MemFree: 1 kB\n", &container()).unwrap_err();
        render_meminfo("", &container()).unwrap_err();
    }

    #[test]
    fn render_meminfo_lru_sums_at_u64_max_stay_within_mem_total() {
        let mut memory = container();
        memory.limit_bytes = None;
        memory.usage_bytes = u64::MAX;
        memory.stat.active_anon = u64::MAX;
        memory.stat.active_file = 1;
        memory.stat.inactive_anon = 1;
        memory.stat.inactive_file = u64::MAX;
        let host = "MemTotal: 8 kB\nActive: 1 kB\nInactive: 1 kB\n";
        let out = render_meminfo(host, &memory).unwrap();
        assert_eq!(field(&out, "Active"), 8);
        assert_eq!(field(&out, "Inactive"), 0);
    }

    #[test]
    fn render_meminfo_unlimited_container_never_has_more_free_than_the_host() {
        let mut memory = container();
        memory.limit_bytes = None;
        let out = render_meminfo(HOST, &memory).unwrap();
        assert_eq!(field(&out, "MemFree"), 20_000_000);
        assert_eq!(field(&out, "MemAvailable"), 22_000_000);
    }

    #[test]
    fn render_meminfo_host_lines_are_bounded_or_kept_as_the_kernels_constants() {
        let host = "MemTotal: 16777216 kB\nMlocked: 4000000 kB\nCommitted_AS: 30000000 kB\n\
                    VmallocTotal: 34359738367 kB\nHardwareCorrupted: 9999999 kB\nHugePages_Total: 4096\n\
                    Hugepagesize: 2048 kB\nDirectMap1G: 17825792 kB\n";
        let out = render_meminfo(host, &container()).unwrap();
        assert_eq!(
            field(&out, "Mlocked"),
            0,
            "nothing unevictable, nothing mlocked"
        );
        // The container's anonymous memory: what it has committed and touched.
        assert_eq!(field(&out, "Committed_AS"), 90 * 1024);
        assert_eq!(field(&out, "HardwareCorrupted"), 524_288);
        assert_eq!(field(&out, "HugePages_Total"), 256);
        assert_eq!(field(&out, "VmallocTotal"), 34_359_738_367);
        assert_eq!(field(&out, "Hugepagesize"), 2048);
        assert_eq!(field(&out, "DirectMap1G"), 17_825_792);
    }

    #[test]
    fn render_meminfo_swap_accounted() {
        let mut memory = container();
        memory.swap = Swap::Accounted {
            limit_bytes: Some(256 << 20),
            usage_bytes: 6 << 20,
            may_swap: true,
        };
        let out = render_meminfo(HOST, &memory).unwrap();
        assert_eq!(field(&out, "SwapTotal"), 262_144);
        assert_eq!(field(&out, "SwapFree"), 256_000);
    }
}
