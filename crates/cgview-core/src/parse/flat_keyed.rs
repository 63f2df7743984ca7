//! "Flat keyed" cgroup files: one `key value` pair per line (`memory.stat`, `cpu.stat`, `cpuacct.stat`).

/// A parsed flat-keyed file. Keys are matched exactly: on v2 `memory.stat` has both `file` and
/// `file_mapped`, and a prefix match would read the wrong one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlatKeyed {
    entries: Vec<(String, u64)>,
}

impl FlatKeyed {
    /// The value of `key`, if the file has it.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.entries
            .iter()
            .find_map(|(k, v)| (k == key).then_some(*v))
    }

    /// The value of `prefix` followed by `key` (v1 `memory.stat`'s `total_pgfault` for `pgfault`), matched
    /// exactly as [`FlatKeyed::get`] does.
    pub fn get_prefixed(&self, prefix: &str, key: &str) -> Option<u64> {
        self.entries
            .iter()
            .find_map(|(k, v)| (k.strip_prefix(prefix) == Some(key)).then_some(*v))
    }

    /// The value of `key`, or 0 when the kernel does not provide it.
    pub fn get_or_zero(&self, key: &str) -> u64 {
        self.get(key).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Parses `key value` lines. Lines that do not have that shape (a future kernel's nested format, a
/// negative or non-numeric value) are skipped, not fatal: one odd line must not cost the whole file.
pub fn parse_flat_keyed(text: &str) -> FlatKeyed {
    let entries = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let key = fields.next()?;
            let value = fields.next()?.parse::<u64>().ok()?;
            if fields.next().is_some() {
                return None;
            }
            Some((key.to_owned(), value))
        })
        .collect();
    FlatKeyed { entries }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_flat_keyed_matches_exact_keys() {
        let stat = parse_flat_keyed("file 4096\nfile_mapped 1024\nfile_dirty 8\n");
        assert_eq!(stat.get("file"), Some(4096));
        assert_eq!(stat.get("file_mapped"), Some(1024));
        assert_eq!(stat.get("file_d"), None);
    }

    #[test]
    fn get_prefixed_matches_the_whole_key() {
        let stat = parse_flat_keyed("pgfault 1\ntotal_pgfault 7\ntotal_pgfaults 9\n");
        assert_eq!(stat.get_prefixed("total_", "pgfault"), Some(7));
        assert_eq!(stat.get_prefixed("total_", "pgfaul"), None);
        assert_eq!(stat.get_prefixed("", "pgfault"), Some(1));
    }

    #[test]
    fn parse_flat_keyed_skips_odd_lines() {
        let stat = parse_flat_keyed("good 1\nbad\nneg -5\nthree a b\n\nlast 2");
        assert_eq!(stat.get("good"), Some(1));
        assert_eq!(stat.get("last"), Some(2));
        assert_eq!(stat.get("neg"), None);
        assert_eq!(stat.get_or_zero("bad"), 0);
    }

    #[test]
    fn parse_flat_keyed_empty_file_is_empty() {
        assert!(parse_flat_keyed("").is_empty());
    }
}
