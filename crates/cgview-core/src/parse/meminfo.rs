//! `/proc/meminfo`: `Name:    value kB` lines (a few, like `HugePages_Total`, have no unit).

use super::ParseError;

/// One line of meminfo, borrowed from the host text so it can be re-rendered with its formatting intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeminfoLine<'a> {
    /// The whole line, without its newline.
    pub line: &'a str,
    /// The field name, without the colon.
    pub name: &'a str,
    /// The value as printed (kB for lines with a unit).
    pub value: u64,
    /// Byte offset in `line` just past the last digit of the value; the unit (if any) follows.
    pub value_end: usize,
}

/// Parses one line; `None` for a line that does not have the `Name: number` shape.
pub fn parse_meminfo_line(line: &str) -> Option<MeminfoLine<'_>> {
    let (name, rest) = line.split_once(':')?;
    let digits_start = line.len() - rest.trim_start().len();
    let digits_len = line[digits_start..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digits_len == 0 || name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let value_end = digits_start + digits_len;
    let value = line[digits_start..value_end].parse().ok()?;
    Some(MeminfoLine {
        line,
        name,
        value,
        value_end,
    })
}

impl MeminfoLine<'_> {
    /// True for a size in kB (most lines); false for the unitless page counts (`HugePages_Total`, ...).
    pub fn is_kb(&self) -> bool {
        self.line[self.value_end..].trim() == "kB"
    }
}

/// The value of field `name` in a meminfo text.
pub fn meminfo_value(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter_map(parse_meminfo_line)
        .find(|l| l.name == name)
        .map(|l| l.value)
}

/// The host's figures that a container's meminfo lines are derived from or bounded by: kB, except the
/// `HugePages_*` page counts. A line the host's kernel does not print is `None` where its absence
/// matters (no bound), 0 elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostMeminfo {
    pub mem_total: u64,
    pub mem_free: Option<u64>,
    /// Since Linux 3.14.
    pub mem_available: Option<u64>,
    pub swap_total: u64,
    pub swap_free: Option<u64>,
    pub commit_limit: u64,
    pub committed_as: u64,
    pub cma_total: u64,
    pub cma_free: u64,
    pub huge_pages_total: u64,
    pub huge_pages_free: u64,
    pub huge_pages_rsvd: u64,
    pub huge_pages_surp: u64,
    pub huge_page_size: u64,
    /// Since Linux 5.1: every huge page pool, of every size.
    pub hugetlb: u64,
}

/// The lines [`parse_host_meminfo`] reads, in the order of its table.
const HOST_FIELDS: [&str; 15] = [
    "MemTotal",
    "MemFree",
    "MemAvailable",
    "SwapTotal",
    "SwapFree",
    "CommitLimit",
    "Committed_AS",
    "CmaTotal",
    "CmaFree",
    "HugePages_Total",
    "HugePages_Free",
    "HugePages_Rsvd",
    "HugePages_Surp",
    "Hugepagesize",
    "Hugetlb",
];

/// Reads the host's meminfo figures in one pass; a name printed twice counts once, the first time, as
/// [`meminfo_value`] finds it. `MemTotal` is required: without it nothing can be derived.
pub fn parse_host_meminfo(text: &str) -> Result<HostMeminfo, ParseError> {
    let mut values: [Option<u64>; HOST_FIELDS.len()] = [None; HOST_FIELDS.len()];
    for line in text.lines().filter_map(parse_meminfo_line) {
        if let Some(index) = HOST_FIELDS.iter().position(|name| *name == line.name) {
            values[index].get_or_insert(line.value);
        }
    }
    let [mem_total, mem_free, mem_available, swap_total, swap_free, commit_limit, committed_as, cma_total, cma_free, huge_pages_total, huge_pages_free, huge_pages_rsvd, huge_pages_surp, huge_page_size, hugetlb] =
        values;
    Ok(HostMeminfo {
        mem_total: mem_total.ok_or_else(|| ParseError::new("/proc/meminfo", "MemTotal"))?,
        mem_free,
        mem_available,
        swap_total: swap_total.unwrap_or(0),
        swap_free,
        commit_limit: commit_limit.unwrap_or(0),
        committed_as: committed_as.unwrap_or(0),
        cma_total: cma_total.unwrap_or(0),
        cma_free: cma_free.unwrap_or(0),
        huge_pages_total: huge_pages_total.unwrap_or(0),
        huge_pages_free: huge_pages_free.unwrap_or(0),
        huge_pages_rsvd: huge_pages_rsvd.unwrap_or(0),
        huge_pages_surp: huge_pages_surp.unwrap_or(0),
        huge_page_size: huge_page_size.unwrap_or(0),
        hugetlb: hugetlb.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_meminfo_line_with_unit() {
        let line = parse_meminfo_line("MemTotal:       24572812 kB").unwrap();
        assert_eq!(line.name, "MemTotal");
        assert_eq!(line.value, 24_572_812);
        assert_eq!(&line.line[line.value_end..], " kB");
    }

    #[test]
    fn parse_meminfo_line_without_unit() {
        let line = parse_meminfo_line("HugePages_Total:       0").unwrap();
        assert_eq!(line.value, 0);
        assert_eq!(line.value_end, line.line.len());
    }

    #[test]
    fn parse_meminfo_line_rejects_odd_lines() {
        assert_eq!(parse_meminfo_line(""), None);
        assert_eq!(parse_meminfo_line("MemTotal:"), None);
        assert_eq!(parse_meminfo_line("MemTotal: abc kB"), None);
        assert_eq!(parse_meminfo_line("Mem Total: 1 kB"), None);
        assert_eq!(parse_meminfo_line(": 1 kB"), None);
        assert_eq!(parse_meminfo_line("X: 99999999999999999999999 kB"), None);
    }

    #[test]
    fn parse_meminfo_line_tells_kb_from_page_counts() {
        assert!(parse_meminfo_line("MemTotal:       24572812 kB")
            .unwrap()
            .is_kb());
        assert!(!parse_meminfo_line("HugePages_Total:       0")
            .unwrap()
            .is_kb());
    }

    #[test]
    fn parse_host_meminfo_reads_bounds_and_needs_mem_total() {
        let host = parse_host_meminfo(
            "MemTotal: 100 kB\nMemFree: 40 kB\nSwapTotal: 8 kB\nHugePages_Total: 3\nHugepagesize: 2048 kB\n",
        )
        .unwrap();
        assert_eq!(host.mem_total, 100);
        assert_eq!(host.mem_free, Some(40));
        assert_eq!(host.mem_available, None);
        assert_eq!(host.swap_total, 8);
        assert_eq!(host.swap_free, None);
        assert_eq!((host.huge_pages_total, host.huge_page_size), (3, 2048));
        parse_host_meminfo("MemFree: 40 kB\n").unwrap_err();
        // Printed twice (never by a kernel): the first, as every other lookup reads it.
        let twice =
            parse_host_meminfo("MemTotal: 100 kB\nSwapTotal: 8 kB\nSwapTotal: 9 kB\n").unwrap();
        assert_eq!(twice.swap_total, 8);
    }

    #[test]
    fn meminfo_value_finds_exact_name() {
        let text = "MemTotal: 100 kB\nSwapTotal: 5 kB\nSwapTotalX: 7 kB\n";
        assert_eq!(meminfo_value(text, "SwapTotal"), Some(5));
        assert_eq!(meminfo_value(text, "Missing"), None);
    }
}
