#![no_main]
//! Fuzzes cpuset parsing: no input may panic, and both kernel formats round-trip: a list through
//! `to_list_string`, a mask through `render_cpu_mask` at the width it was read with.

use cgview::parse::cpuset::{parse_cpu_list, parse_cpu_mask};
use cgview::render::cpu_list::render_cpu_mask;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(set) = parse_cpu_list(text) {
            let again = parse_cpu_list(&set.to_list_string());
            assert_eq!(again.as_ref(), Ok(&set));
        }
        if let Ok(mask) = parse_cpu_mask(text) {
            let printed = render_cpu_mask(&mask.cpus, mask.digits);
            assert_eq!(parse_cpu_mask(&printed).as_ref(), Ok(&mask), "{printed:?}");
            // Hex digits are printed lower-case, as the kernel does.
            let canonical = text.trim().to_ascii_lowercase();
            assert_eq!(printed.trim_end(), canonical);
        }
    }
});
