#![no_main]
//! Fuzzes pid_stat parsing: no input may panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cgview::parse::pid_stat::parse_start_ticks(text);
        let _ = cgview::parse::pid_stat::parse_nspid(text);
        let _ = cgview::parse::pid_stat::parse_state(text);
    }
});
