//! `/proc/vmstat`: one `name value` line per counter, in the kernel's order (`mm/vmstat.c`,
//! `vmstat_text[]`). The set of names changes with every kernel version and configuration, so lines are
//! kept as they come, never mapped onto a fixed struct.

use super::ParseError;

const WHAT: &str = "/proc/vmstat";

/// One line of `/proc/vmstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmstatLine<'a> {
    pub name: &'a str,
    pub value: u64,
}

/// Parses every line, in order. The kernel prints each as `%s %lu`; a line of another shape means the
/// text is not `/proc/vmstat` (or a format cgview does not know), and the whole file is refused rather than
/// a line passed through with the host's value.
pub fn parse_vmstat(text: &str) -> Result<Vec<VmstatLine<'_>>, ParseError> {
    let lines: Vec<VmstatLine<'_>> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(parse_line)
        .collect::<Result<_, _>>()?;
    if lines.is_empty() {
        return Err(ParseError::new(WHAT, text));
    }
    Ok(lines)
}

fn parse_line(line: &str) -> Result<VmstatLine<'_>, ParseError> {
    let mut fields = line.split_ascii_whitespace();
    let (Some(name), Some(value), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(ParseError::new(WHAT, line));
    };
    let value = value.parse().map_err(|_| ParseError::new(WHAT, line))?;
    Ok(VmstatLine { name, value })
}

/// The value of `name` in a parsed file.
pub fn vmstat_value(lines: &[VmstatLine<'_>], name: &str) -> Option<u64> {
    lines.iter().find(|l| l.name == name).map(|l| l.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_vmstat_keeps_order_and_values() {
        let lines = parse_vmstat("nr_free_pages 1808581\npgpgin 40842041\npgfault 3\n").unwrap();
        let names: Vec<&str> = lines.iter().map(|l| l.name).collect();
        assert_eq!(names, ["nr_free_pages", "pgpgin", "pgfault"]);
        assert_eq!(vmstat_value(&lines, "pgpgin"), Some(40_842_041));
        assert_eq!(vmstat_value(&lines, "pgpgout"), None);
    }

    #[test]
    fn parse_vmstat_refuses_other_shapes() {
        for bad in [
            "nr_free_pages\n",
            "nr_free_pages -1\n",
            "nr_free_pages 1 2\n",
            "MemTotal: 1 kB\n",
            "",
            "\n\n",
        ] {
            parse_vmstat(bad).unwrap_err();
        }
    }

    #[test]
    fn parse_vmstat_takes_u64_max() {
        let lines = parse_vmstat("pgfault 18446744073709551615\n").unwrap();
        assert_eq!(lines[0].value, u64::MAX);
    }
}
