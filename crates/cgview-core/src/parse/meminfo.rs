//! `/proc/meminfo`: `Name:    value kB` lines (a few, like `HugePages_Total`, have no unit).

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

/// The value of field `name` in a meminfo text.
pub fn meminfo_value(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter_map(parse_meminfo_line)
        .find(|l| l.name == name)
        .map(|l| l.value)
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
    fn meminfo_value_finds_exact_name() {
        let text = "MemTotal: 100 kB\nSwapTotal: 5 kB\nSwapTotalX: 7 kB\n";
        assert_eq!(meminfo_value(text, "SwapTotal"), Some(5));
        assert_eq!(meminfo_value(text, "Missing"), None);
    }
}
