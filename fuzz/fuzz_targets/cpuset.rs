#![no_main]
//! Fuzzes cpuset parsing: no input may panic, and the kernel list format round-trips.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(set) = cgview::parse::cpuset::parse_cpu_list(text) {
            let again = cgview::parse::cpuset::parse_cpu_list(&set.to_list_string());
            assert_eq!(again.as_ref(), Ok(&set));
        }
    }
});
