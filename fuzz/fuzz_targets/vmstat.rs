#![no_main]
//! Fuzzes /proc/vmstat parsing: no input may panic, a parsed file prints back to the same lines, and a
//! lookup finds each name's first value.

use cgview::parse::vmstat::{parse_vmstat, vmstat_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(lines) = parse_vmstat(text) else {
        return;
    };
    let printed: String = lines
        .iter()
        .map(|line| format!("{} {}\n", line.name, line.value))
        .collect();
    assert_eq!(parse_vmstat(&printed).unwrap(), lines);
    let first = lines[0];
    assert_eq!(vmstat_value(&lines, first.name), Some(first.value));
});
