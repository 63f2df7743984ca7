#![no_main]
//! Fuzzes the CPU list renderer (`online`, `present`, `possible`) on any set of ids, up to `u32::MAX`:
//! one line of ascending, non-overlapping, maximal ranges that name exactly the set.

use cgview::parse::cpuset::{parse_cpu_list, CpuSet};
use cgview::render::cpu_list::render_cpu_list;
use libfuzzer_sys::fuzz_target;

/// The ids a rendered list names, checking its shape: ascending ranges with a gap between them.
fn expand(list: &str) -> Vec<u32> {
    let mut ids: Vec<u32> = Vec::new();
    if list.is_empty() {
        return ids;
    }
    for part in list.split(',') {
        let (start, end) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().unwrap(), b.parse::<u32>().unwrap()),
            None => {
                let id = part.parse::<u32>().unwrap();
                (id, id)
            }
        };
        assert!(start <= end, "{list}");
        if part.contains('-') {
            assert!(start < end, "a one-id range in {list}");
        }
        if let Some(&last) = ids.last() {
            assert!(
                u64::from(start) > u64::from(last) + 1,
                "ranges touch or overlap in {list}"
            );
        }
        ids.extend(start..=end);
    }
    ids
}

fuzz_target!(|data: &[u8]| {
    let ids: Vec<u32> = data
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let set = CpuSet::from_ids(ids);
    let text = render_cpu_list(&set);
    let list = text.strip_suffix('\n').expect("ends with a newline");
    assert!(!list.contains('\n'), "{text:?}");
    assert_eq!(expand(list), set.ids(), "{text:?}");
    if set.ids().last().is_none_or(|&id| id <= 1 << 16) {
        assert_eq!(parse_cpu_list(&text).as_ref(), Ok(&set));
    }
});
