#![no_main]
//! Fuzzes cpuinfo parsing: no input may panic, and the blocks reassemble the input.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let blocks = cgview::parse::cpuinfo::parse_cpuinfo_blocks(text);
        let joined: String = blocks.iter().map(|b| b.text).collect();
        assert_eq!(joined, text);
    }
});
