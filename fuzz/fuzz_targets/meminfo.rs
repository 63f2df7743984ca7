#![no_main]
//! Fuzzes meminfo parsing: no input may panic, and rendering keeps the line count.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            let _ = cgview::parse::meminfo::parse_meminfo_line(line);
        }
        let memory = cgview::model::memory::MemoryState::default();
        if let Ok(out) = cgview::render::meminfo::render_meminfo(text, &memory) {
            assert_eq!(out.lines().count(), text.lines().count());
        }
    }
});
