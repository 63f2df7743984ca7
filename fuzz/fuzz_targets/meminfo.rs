#![no_main]
//! Fuzzes meminfo parsing: no input may panic, lookups agree with line parsing, and rendering keeps the
//! line count.

use cgview::parse::meminfo::{meminfo_value, parse_meminfo_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(first) = text.lines().find_map(parse_meminfo_line) {
            assert_eq!(meminfo_value(text, first.name), Some(first.value));
        }
        let _ = meminfo_value(text, "MemTotal");
        let memory = cgview::model::memory::MemoryState::default();
        if let Ok(out) = cgview::render::meminfo::render_meminfo(text, &memory) {
            assert_eq!(out.lines().count(), text.lines().count());
        }
    }
});
