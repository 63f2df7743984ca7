#![no_main]
//! Fuzzes io_stat parsing: no input may panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cgview::parse::io_stat::parse_io_stat(text);
    }
});
