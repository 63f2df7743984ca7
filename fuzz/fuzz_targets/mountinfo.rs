#![no_main]
//! Fuzzes mountinfo parsing: no input may panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cgview::parse::mountinfo::parse_mountinfo(text);
    }
});
