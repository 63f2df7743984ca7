#![no_main]
//! Fuzzes /proc/swaps rendering on arbitrary host text: a header, then at most the one virtual line.

use cgview::model::memory::MemoryTotals;
use cgview::render::swaps::render_swaps;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(host) = std::str::from_utf8(data) else {
        return;
    };
    let totals = MemoryTotals {
        mem_total: 1 << 30,
        mem_free: 1 << 29,
        mem_available: 1 << 29,
        swap_total: u64::from(data.first().copied().unwrap_or(0)) << 30,
        swap_free: 1 << 30,
    };
    let out = render_swaps(host, &totals);
    assert!(out.starts_with("Filename"), "{out}");
    assert!(out.lines().count() <= 2, "{out}");
});
