//! `memory.numa_stat`: a cgroup's memory per NUMA node.
//!
//! v1 (pages): `total=4331 N0=4331`, one line each for `total`, `file`, `anon`, `unevictable` and their
//! `hierarchical_` forms (the cgroup and its descendants). v2 (bytes, already hierarchical):
//! `anon N0=0 N1=8388608`, one line per `memory.stat` key the kernel splits by node.

use super::ParseError;

/// Highest node id accepted; the kernel's MAX_NUMNODES is at most 1024. Bounds the work a bad file causes.
const MAX_NODE_ID: u32 = 1 << 16;

/// A parsed `memory.numa_stat`: each key's value per node, in the file's unit (v1 pages, v2 bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumaStat {
    entries: Vec<NumaStatEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct NumaStatEntry {
    key: String,
    per_node: Vec<(u32, u64)>,
}

impl NumaStat {
    /// Key `key`'s value on node `node`; `None` when the file has no such key or node.
    pub fn node_value(&self, key: &str, node: u32) -> Option<u64> {
        self.entries
            .iter()
            .find(|e| e.key == key)?
            .per_node
            .iter()
            .find_map(|&(id, value)| (id == node).then_some(value))
    }

    /// Whether the file has key `key` (matched exactly: v2 has `file` and `file_mapped`).
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|e| e.key == key)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Parses either version's format. A line without a key, or a per-node field that is not `N<id>=<number>`,
/// makes the whole file an error: a misread node would put memory on the wrong node.
pub fn parse_numa_stat(text: &str) -> Result<NumaStat, ParseError> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        // v1 puts the cgroup's total after the key (`total=4331`); v2 has the key alone.
        let key = first.split_once('=').map_or(first, |(key, _)| key);
        if key.is_empty() {
            return Err(ParseError::new("memory.numa_stat", line));
        }
        let per_node = fields
            .map(|field| {
                parse_node_field(field).ok_or_else(|| ParseError::new("memory.numa_stat", line))
            })
            .collect::<Result<Vec<_>, _>>()?;
        entries.push(NumaStatEntry {
            key: key.to_owned(),
            per_node,
        });
    }
    Ok(NumaStat { entries })
}

/// `N1=8388608` -> (1, 8388608).
fn parse_node_field(field: &str) -> Option<(u32, u64)> {
    let (node, value) = field.strip_prefix('N')?.split_once('=')?;
    if node.is_empty() || !node.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let node: u32 = node.parse().ok().filter(|&id| id <= MAX_NODE_ID)?;
    Some((node, value.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_numa_stat_v1_keys_and_nodes() {
        let stat = parse_numa_stat(
            "total=4331 N0=4000 N1=331\nfile=190 N0=190 N1=0\nhierarchical_total=9 N0=5 N1=4\n",
        )
        .unwrap();
        assert_eq!(stat.node_value("total", 1), Some(331));
        assert_eq!(stat.node_value("hierarchical_total", 0), Some(5));
        assert_eq!(stat.node_value("file", 2), None);
        assert!(stat.has("file") && !stat.has("fil"));
    }

    #[test]
    fn parse_numa_stat_v2_exact_keys() {
        let stat = parse_numa_stat("file N0=0 N1=8388608\nfile_mapped N0=4096 N1=0\n").unwrap();
        assert_eq!(stat.node_value("file", 1), Some(8_388_608));
        assert_eq!(stat.node_value("file_mapped", 0), Some(4096));
        assert_eq!(stat.node_value("file_mapped", 1), Some(0));
    }

    #[test]
    fn parse_numa_stat_empty_is_empty() {
        assert!(parse_numa_stat("").unwrap().is_empty());
        assert!(parse_numa_stat("\n\n").unwrap().is_empty());
    }

    #[test]
    fn parse_numa_stat_rejects_odd_node_fields() {
        for bad in [
            "anon N0=1 X1=2",
            "anon N=1",
            "anon N0=-1",
            "anon N0=",
            "anon N+1=3",
            "anon N99999999=1",
            "=5 N0=1",
        ] {
            parse_numa_stat(bad).unwrap_err();
        }
    }
}
