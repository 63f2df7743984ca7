#![no_main]
//! Fuzzes /proc/stat rendering on arbitrary host text: no panic, one `cpu` line per host `cpu` line, and
//! every line that is not a CPU line passes through (procs lines replaced one for one).

use cgview::model::cpu_time::CpuTicks;
use cgview::parse::cpuset::parse_cpu_list;
use cgview::render::stat::{render_stat, CpuLines, ProcsCounts};
use libfuzzer_sys::fuzz_target;

fn is_cpu_line(line: &str) -> bool {
    line.split_ascii_whitespace().next().is_some_and(|name| {
        name == "cpu" || name.strip_prefix("cpu").is_some_and(|id| id.parse::<u32>().is_ok())
    })
}

fn other_lines(text: &str) -> usize {
    text.lines().filter(|l| !is_cpu_line(l)).count()
}

fn total_lines(text: &str) -> usize {
    text.lines()
        .filter(|l| l.split_ascii_whitespace().next() == Some("cpu"))
        .count()
}

fuzz_target!(|data: &[u8]| {
    let Ok(host) = std::str::from_utf8(data) else {
        return;
    };
    let ticks = [
        (0, CpuTicks { user: 5, system: 1, idle: 90 }),
        (2, CpuTicks { user: u64::MAX, system: 3, idle: 0 }),
    ];
    let procs = ProcsCounts { running: 2, blocked: 1 };
    let visible = parse_cpu_list("0,2").unwrap();
    for lines in [CpuLines::Container(&ticks), CpuLines::HostSubset(&visible)] {
        if let Ok(out) = render_stat(host, lines, Some(procs)) {
            assert_eq!(total_lines(&out), total_lines(host), "{out}");
            assert_eq!(other_lines(&out), other_lines(host), "{out}");
        }
    }
});
