//! Fields of `/proc/<pid>/stat` and `/proc/<pid>/status` that identify a process over time.

use super::ParseError;

/// The process start time, in clock ticks after boot (field 22 of `/proc/<pid>/stat`).
///
/// The command name (field 2) may contain spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_start_ticks(stat: &str) -> Result<u64, ParseError> {
    let bad = || ParseError::new("/proc/<pid>/stat", stat);
    let (_, after_comm) = stat.rsplit_once(')').ok_or_else(bad)?;
    // After the comm: field 3 (state) is index 0, so field 22 is index 19.
    let field = after_comm
        .split_ascii_whitespace()
        .nth(19)
        .ok_or_else(bad)?;
    field.parse().map_err(|_| bad())
}

/// The scheduler state letter (field 3 of `/proc/<pid>/stat`): `R` runnable, `D` uninterruptible, ...
pub fn parse_state(stat: &str) -> Result<char, ParseError> {
    let bad = || ParseError::new("/proc/<pid>/stat", stat);
    let (_, after_comm) = stat.rsplit_once(')').ok_or_else(bad)?;
    let field = after_comm.split_ascii_whitespace().next().ok_or_else(bad)?;
    let mut chars = field.chars();
    match (chars.next(), chars.next()) {
        (Some(state), None) => Ok(state),
        _ => Err(bad()),
    }
}

/// The `NSpid` line of `/proc/<pid>/status`: the pid in each pid namespace from the reader's down to the
/// process's own. The last entry is the pid inside the process's own namespace.
pub fn parse_nspid(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line["NSpid:".len()..]
        .split_ascii_whitespace()
        .map(|p| p.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_state_after_tricky_comm() {
        assert_eq!(parse_state("42 (a) R (b)) D 1 42 42").unwrap(), 'D');
        assert_eq!(parse_state("7 (sh) S 1 7").unwrap(), 'S');
        assert!(parse_state("7 (sh)").is_err());
        assert!(parse_state("7 (sh) RS 1").is_err());
        assert!(parse_state("no paren").is_err());
    }

    const STAT: &str = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                        987654 10000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn parse_start_ticks_skips_comm_with_parentheses() {
        assert_eq!(parse_start_ticks(STAT).unwrap(), 987_654);
    }

    #[test]
    fn parse_start_ticks_rejects_truncated() {
        parse_start_ticks("1 (x) S 1 2").unwrap_err();
        parse_start_ticks("no comm").unwrap_err();
        parse_start_ticks("").unwrap_err();
    }

    #[test]
    fn parse_nspid_nested() {
        let status = "Name:\tsh\nNSpid:\t31337\t1\nNSsid:\t1\n";
        assert_eq!(parse_nspid(status), Some(vec![31337, 1]));
        assert_eq!(parse_nspid("Name:\tsh\n"), None);
        assert_eq!(parse_nspid("NSpid:\tx\n"), None);
    }
}
