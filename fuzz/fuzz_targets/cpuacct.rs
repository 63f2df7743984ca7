#![no_main]
//! Fuzzes cpuacct parsing and the per-CPU time model: no input may panic, and the `cpu` line never shows
//! less user time than the visible CPUs' own.

use cgview::model::cpu_time::{container_cpu_ticks, CpuUsage};
use cgview::parse::cpuacct::{parse_usage_all, parse_usage_percpu};
use cgview::parse::cpuset::parse_cpu_list;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_usage_percpu(text);
    let Ok(per_cpu) = parse_usage_all(text) else {
        return;
    };
    let usage = CpuUsage {
        user_ns: per_cpu.iter().fold(0u64, |s, u| s.saturating_add(u.user_ns)),
        system_ns: per_cpu.iter().fold(0u64, |s, u| s.saturating_add(u.system_ns)),
        per_cpu: Some(per_cpu),
    };
    let visible = parse_cpu_list("0-3").unwrap();
    let ticks = container_cpu_ticks(&visible, &usage, 1e6, 100);
    assert_eq!(ticks.len(), 4);
});
