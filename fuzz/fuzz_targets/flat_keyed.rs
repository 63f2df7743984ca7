#![no_main]
//! Fuzzes flat_keyed parsing: no input may panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let stat = cgview::parse::flat_keyed::parse_flat_keyed(text);
        let _ = cgview::model::memory::MemoryStat::from_v1(&stat).anon_pages();
        let _ = cgview::model::memory::MemoryStat::from_v2(&stat).anon_pages();
    }
});
