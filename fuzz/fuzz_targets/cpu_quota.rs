#![no_main]
//! Fuzzes cpu_quota parsing: no input may panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cgview::parse::cpu_quota::parse_cpu_max(text);
        let (quota, period) = text.split_once('\n').unwrap_or((text, ""));
        let _ = cgview::parse::cpu_quota::parse_cfs(quota, period);
    }
});
