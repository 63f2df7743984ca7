//! Sets of CPUs as the kernel prints them: lists, `0-3,8,10-11` (cpuset files,
//! `/sys/devices/system/cpu/online`, `topology/*_list`), and masks, `00000000,00000f0f` (`topology/core_cpus`,
//! `cache/index*/shared_cpu_map`, `node/node*/cpumap`).

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

/// Hex digits a mask may have: enough for every CPU id up to [`MAX_CPU_ID`].
const MAX_MASK_DIGITS: usize = (MAX_CPU_ID as usize + 1).div_ceil(4);

/// A CPU mask as the kernel prints it (`%*pb`): the CPUs, and how many hex digits the kernel printed, which
/// is its width (`nr_cpu_ids` rounded up to a digit) and is kept when the mask is printed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuMask {
    pub cpus: CpuSet,
    /// Hex digits, commas not counted: 1 for `3`, 16 for `00000000,00000003`.
    pub digits: usize,
}

/// Parses a CPU mask: 32-bit words in hex, most significant first, separated by commas; every word but
/// the first has all 8 digits (`f,ffffffff` for 36 CPUs). Bit `n` is CPU `n`.
pub fn parse_cpu_mask(text: &str) -> Result<CpuMask, ParseError> {
    let text = text.trim();
    let bad = || ParseError::new("cpu mask", text);
    let words: Vec<&str> = text.split(',').collect();
    let well_formed = words.iter().enumerate().all(|(index, word)| {
        let full = index > 0;
        !word.is_empty()
            && word.len() <= 8
            && (!full || word.len() == 8)
            && word.bytes().all(|b| b.is_ascii_hexdigit())
    });
    let digits: usize = words.iter().map(|w| w.len()).sum();
    if !well_formed || digits > MAX_MASK_DIGITS {
        return Err(bad());
    }
    let mut ids = Vec::new();
    // The last digit holds CPUs 0-3, the one before it 4-7, and so on.
    for (position, digit) in words.concat().bytes().rev().enumerate() {
        let nibble = char::from(digit).to_digit(16).ok_or_else(bad)?;
        for bit in 0..4u32 {
            if nibble & (1 << bit) != 0 {
                ids.push(position as u32 * 4 + bit);
            }
        }
    }
    if ids.last().is_some_and(|&id| id > MAX_CPU_ID) {
        return Err(bad());
    }
    Ok(CpuMask {
        cpus: CpuSet { ids },
        digits,
    })
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
    fn parse_cpu_mask_reads_words_and_keeps_the_width() {
        let mask = parse_cpu_mask("3\n").unwrap();
        assert_eq!((mask.cpus.ids(), mask.digits), (&[0, 1][..], 1));
        let mask = parse_cpu_mask("00000000,00000f0a").unwrap();
        assert_eq!(mask.cpus.to_list_string(), "1,3,8-11");
        assert_eq!(mask.digits, 16);
        // 36 CPUs: a one-digit first word.
        let mask = parse_cpu_mask("8,00000001").unwrap();
        assert_eq!(mask.cpus.ids(), &[0, 35]);
        assert_eq!(mask.digits, 9);
        assert!(parse_cpu_mask("0000").unwrap().cpus.is_empty());
    }

    #[test]
    fn parse_cpu_mask_rejects_what_the_kernel_never_prints() {
        for bad in [
            "",
            "g",
            "1,2",
            "1,",
            ",00000001",
            "123456789",
            "0x3",
            "3 3",
            "(null)",
        ] {
            parse_cpu_mask(bad).unwrap_err();
        }
        // In words as the kernel prints them: the first takes what the full ones leave.
        let words = |digits: &str| {
            let first = match digits.len() % 8 {
                0 => 8,
                n => n,
            };
            let (head, rest) = digits.split_at(first);
            let mut words = vec![head.to_owned()];
            words.extend(
                rest.as_bytes()
                    .chunks(8)
                    .map(|c| String::from_utf8(c.to_vec()).unwrap()),
            );
            words.join(",")
        };
        let highest =
            parse_cpu_mask(&words(&format!("1{}", "0".repeat(MAX_MASK_DIGITS - 1)))).unwrap();
        assert_eq!(highest.cpus.ids(), &[MAX_CPU_ID]);
        // Beyond any kernel's CPU ids.
        parse_cpu_mask(&words(&format!("2{}", "0".repeat(MAX_MASK_DIGITS - 1)))).unwrap_err();
        parse_cpu_mask(&words(&"0".repeat(MAX_MASK_DIGITS + 1))).unwrap_err();
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
