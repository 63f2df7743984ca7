#![no_main]
//! Fuzzes the uptime renderer the way the daemon drives it: arbitrary host uptime text, the container's
//! CPU time read by the daemon's reader from `cpuacct.usage` (v1) or `cpu.stat` (v2) in memory, its
//! visible CPUs and its start time in clock ticks. The output is two non-negative numbers with two
//! decimals: an uptime no longer than the host's, an idle time no more than that uptime on every visible
//! CPU.
//!
//! Input: 17 parameter bytes (v2 flag, start in ticks, ticks per second), then NUL-separated files: host
//! uptime, the container's CPU accounting file, its visible CPU list.

mod input;

use cgview::host::cgroup_reader::read_cpu_usage_ns;
use cgview::host::layout::CgroupVersion;
use cgview::parse::cpuset::parse_cpu_list;
use cgview::parse::uptime::parse_uptime;
use cgview::render::uptime::{container_uptime, render_uptime};
use input::{container_dir, version, Input, MemFiles};
use libfuzzer_sys::fuzz_target;

const PARAM_LEN: usize = 17;

/// A rendered number: digits, a point, two decimals.
fn two_decimals(field: &str) -> f64 {
    let (whole, fraction) = field.split_once('.').expect("a decimal point");
    assert!(
        !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()),
        "{field}"
    );
    assert!(
        fraction.len() == 2 && fraction.bytes().all(|b| b.is_ascii_digit()),
        "{field}"
    );
    field.parse().unwrap()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data, PARAM_LEN);
    let dir = container_dir(version(input.flag()));
    let start_ticks = input.u64();
    // sysconf(_SC_CLK_TCK) is positive.
    let ticks_per_sec = input.u64().max(1);
    let Ok((host_up, _)) = parse_uptime(input.text(0)) else {
        return;
    };
    let mut files = MemFiles::default();
    let accounting = match dir.version {
        CgroupVersion::V1 => "cpuacct.usage",
        CgroupVersion::V2 => "cpu.stat",
    };
    files.put(dir.file(accounting), input.file(1));
    let Ok(used_ns) = read_cpu_usage_ns(&files, &dir) else {
        return;
    };
    let Ok(visible) = parse_cpu_list(input.text(2)) else {
        return;
    };

    let start_secs = start_ticks as f64 / ticks_per_sec as f64;
    let cpu_used_secs = used_ns.unwrap_or(0) as f64 / 1e9;
    let uptime = container_uptime(host_up, start_secs, visible.len(), cpu_used_secs);
    let out = render_uptime(uptime);

    let line = out.strip_suffix('\n').expect("ends with a newline");
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.len(), 2, "{out:?}");
    let (up, idle) = (two_decimals(fields[0]), two_decimals(fields[1]));
    // Rounding to two decimals may add half a hundredth.
    assert!(up <= host_up + 0.005, "{out:?} from host {host_up}");
    assert!(uptime.up_secs <= host_up, "{uptime:?} from host {host_up}");
    let most_idle = uptime.up_secs * visible.len() as f64;
    assert!(
        uptime.idle_secs <= most_idle,
        "{uptime:?} on {} CPUs",
        visible.len()
    );
    assert!(idle <= most_idle + 0.005, "{out:?}");
});
