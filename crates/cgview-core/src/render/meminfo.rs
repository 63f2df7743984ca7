//! `/proc/meminfo` for a container (design.md section 2).

use crate::model::memory::{MemoryState, MemoryTotals};
use crate::parse::meminfo::{meminfo_value, parse_meminfo_line, MeminfoLine};
use crate::parse::ParseError;

/// Renders the container's meminfo from the host's: the lines cgview knows are replaced, every other line
/// is passed through in the host's order and formatting.
pub fn render_meminfo(host: &str, memory: &MemoryState) -> Result<String, ParseError> {
    let host_kb =
        |name| meminfo_value(host, name).ok_or_else(|| ParseError::new("/proc/meminfo", name));
    let host_mem_total = host_kb("MemTotal")?.saturating_mul(1024);
    // A host without swap configured still prints SwapTotal; tolerate its absence all the same.
    let host_swap_total = host_kb("SwapTotal").unwrap_or(0).saturating_mul(1024);
    let totals = memory.totals(host_mem_total, host_swap_total);

    let mut out = String::with_capacity(host.len());
    for line in host.lines() {
        match parse_meminfo_line(line)
            .and_then(|l| replacement_kb(&l, memory, &totals).map(|kb| (l, kb)))
        {
            Some((parsed, kb)) => write_line(&mut out, &parsed, kb),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

/// The container's value for a meminfo field, in kB; `None` to pass the host's line through.
fn replacement_kb(
    line: &MeminfoLine<'_>,
    memory: &MemoryState,
    totals: &MemoryTotals,
) -> Option<u64> {
    let stat = &memory.stat;
    let bytes = match line.name {
        "MemTotal" => totals.mem_total,
        "MemFree" => totals.mem_free,
        "MemAvailable" => totals.mem_available,
        "Buffers" | "SwapCached" => 0,
        "Cached" => stat.cache,
        "Active" => stat.active_anon.saturating_add(stat.active_file),
        "Inactive" => stat.inactive_anon.saturating_add(stat.inactive_file),
        "Active(anon)" => stat.active_anon,
        "Inactive(anon)" => stat.inactive_anon,
        "Active(file)" => stat.active_file,
        "Inactive(file)" => stat.inactive_file,
        "Unevictable" => stat.unevictable,
        "AnonPages" => stat.anon_pages(),
        "Shmem" => stat.shmem,
        // Per-container quantities the kernel may not account for this cgroup version: 0 rather than
        // the host's figure, which could exceed the container's whole MemTotal.
        "Mapped" => stat.mapped.unwrap_or(0),
        "Dirty" => stat.dirty.unwrap_or(0),
        "Writeback" => stat.writeback.unwrap_or(0),
        "AnonHugePages" => stat.anon_huge.unwrap_or(0),
        "Slab" => stat.slab.unwrap_or(0),
        "SReclaimable" => stat.slab_reclaimable.unwrap_or(0),
        "SUnreclaim" => stat.slab_unreclaimable.unwrap_or(0),
        "KernelStack" => stat.kernel_stack.unwrap_or(0),
        "PageTables" => stat.page_tables.unwrap_or(0),
        "SwapTotal" => totals.swap_total,
        "SwapFree" => totals.swap_free,
        _ => return None,
    };
    Some(bytes / 1024)
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
    fn render_meminfo_lru_sums_at_u64_max_saturate() {
        let mut memory = container();
        memory.stat.active_anon = u64::MAX;
        memory.stat.active_file = 1;
        memory.stat.inactive_anon = 1;
        memory.stat.inactive_file = u64::MAX;
        let host = "MemTotal: 8 kB\nActive: 1 kB\nInactive: 1 kB\n";
        let out = render_meminfo(host, &memory).unwrap();
        assert_eq!(field(&out, "Active"), u64::MAX / 1024);
        assert_eq!(field(&out, "Inactive"), u64::MAX / 1024);
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
