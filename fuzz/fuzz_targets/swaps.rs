#![no_main]
//! Fuzzes /proc/swaps rendering on arbitrary host text: a header, then at most the one virtual line.

use cgview::model::memory::SwapSpace;
use cgview::render::swaps::render_swaps;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(host) = std::str::from_utf8(data) else {
        return;
    };
    let swap = SwapSpace {
        total_kb: u64::from(data.first().copied().unwrap_or(0)) << 20,
        free_kb: 1 << 20,
    };
    let out = render_swaps(host, swap);
    assert!(out.starts_with("Filename"), "{out}");
    assert!(out.lines().count() <= 2, "{out}");
});
