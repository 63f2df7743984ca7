//! CPU lists as the kernel prints them: `0-3,8,10-11` (cpuset files, `/sys/devices/system/cpu/online`).

use super::ParseError;
use std::fmt::Write as _;

/// Highest CPU id accepted; the kernel's NR_CPUS tops out at 8192. Bounds the work a bad file can cause.
const MAX_CPU_ID: u32 = 1 << 16;

/// A set of CPU ids, ascending and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSet {
    ids: Vec<u32>,
}

impl CpuSet {
    pub fn from_ids(mut ids: Vec<u32>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        Self { ids }
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn contains(&self, id: u32) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// The `n` lowest ids.
    pub fn first(&self, n: usize) -> CpuSet {
        CpuSet {
            ids: self.ids.iter().copied().take(n).collect(),
        }
    }

    /// The ids present in both sets.
    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        CpuSet {
            ids: self
                .ids
                .iter()
                .copied()
                .filter(|id| other.contains(*id))
                .collect(),
        }
    }

    /// Formats as the kernel does: ranges of consecutive ids, e.g. `0-3,8,10-11`; empty for no CPUs.
    pub fn to_list_string(&self) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < self.ids.len() {
            let start = self.ids[i];
            let mut end = start;
            while i + 1 < self.ids.len() && self.ids[i + 1] == end + 1 {
                i += 1;
                end = self.ids[i];
            }
            if !out.is_empty() {
                out.push(',');
            }
            if start == end {
                let _ = write!(out, "{start}");
            } else {
                let _ = write!(out, "{start}-{end}");
            }
            i += 1;
        }
        out
    }
}

/// Parses a CPU list. An empty file is an empty set (a v1 cpuset that was never populated).
pub fn parse_cpu_list(text: &str) -> Result<CpuSet, ParseError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(CpuSet::default());
    }
    // A bitmap bounds the work: overlapping or repeated ranges cannot multiply the output.
    let mut present = vec![0u64; (MAX_CPU_ID as usize + 1).div_ceil(64)];
    for part in text.split(',') {
        let part = part.trim();
        let bad = || ParseError::new("cpu list", text);
        let (start, end) = match part.split_once('-') {
            Some((a, b)) => (
                a.parse::<u32>().map_err(|_| bad())?,
                b.parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let id = part.parse::<u32>().map_err(|_| bad())?;
                (id, id)
            }
        };
        if start > end || end > MAX_CPU_ID {
            return Err(bad());
        }
        set_range(&mut present, start, end);
    }
    let ids = present
        .iter()
        .enumerate()
        .flat_map(|(word_index, &word)| {
            (0..64u32)
                .filter(move |bit| word & (1 << bit) != 0)
                .map(move |bit| word_index as u32 * 64 + bit)
        })
        .collect();
    Ok(CpuSet { ids })
}

/// Sets bits `start..=end`, a word at a time.
fn set_range(bitmap: &mut [u64], start: u32, end: u32) {
    let (first_word, last_word) = (start as usize / 64, end as usize / 64);
    for (index, word) in bitmap
        .iter_mut()
        .enumerate()
        .take(last_word + 1)
        .skip(first_word)
    {
        let low = if index == first_word { start % 64 } else { 0 };
        let high = if index == last_word { end % 64 } else { 63 };
        let mask = (u64::MAX >> (63 - high)) & (u64::MAX << low);
        *word |= mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cpu_list_ranges_and_singles() {
        let set = parse_cpu_list("0-3,8,10-11\n").unwrap();
        assert_eq!(set.ids(), &[0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(set.to_list_string(), "0-3,8,10-11");
    }

    #[test]
    fn parse_cpu_list_empty_is_empty_set() {
        assert!(parse_cpu_list("\n").unwrap().is_empty());
        assert_eq!(CpuSet::default().to_list_string(), "");
    }

    #[test]
    fn parse_cpu_list_rejects_garbage() {
        parse_cpu_list("3-1").unwrap_err();
        parse_cpu_list("a").unwrap_err();
        parse_cpu_list("0-").unwrap_err();
        parse_cpu_list("0-4294967295").unwrap_err();
        parse_cpu_list("1,,2").unwrap_err();
    }

    #[test]
    fn parse_cpu_list_overlapping_ranges_are_merged() {
        let set = parse_cpu_list("0-3,2-5,5,0-1").unwrap();
        assert_eq!(set.to_list_string(), "0-5");
        let wide = vec!["0-65536"; 100].join(",");
        assert_eq!(parse_cpu_list(&wide).unwrap().len(), 65537);
    }

    #[test]
    fn parse_cpu_list_ranges_across_word_boundaries() {
        let set = parse_cpu_list("60-70,127-128,200").unwrap();
        let expected: Vec<u32> = (60..=70).chain([127, 128, 200]).collect();
        assert_eq!(set.ids(), expected.as_slice());
    }

    #[test]
    fn cpu_set_formats_singletons_and_pairs() {
        assert_eq!(CpuSet::from_ids(vec![5, 2]).to_list_string(), "2,5");
        assert_eq!(CpuSet::from_ids(vec![0, 1]).to_list_string(), "0-1");
        assert_eq!(CpuSet::from_ids(vec![7]).to_list_string(), "7");
    }

    #[test]
    fn cpu_set_first_and_intersection() {
        let set = parse_cpu_list("2,4-6").unwrap();
        assert_eq!(set.first(2).ids(), &[2, 4]);
        assert_eq!(set.first(9).len(), 4);
        let online = parse_cpu_list("0-4").unwrap();
        assert_eq!(set.intersection(&online).ids(), &[2, 4]);
    }
}
