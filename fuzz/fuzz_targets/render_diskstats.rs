#![no_main]
//! Fuzzes the diskstats renderer on arbitrary host text and the container's I/O as the daemon's own
//! reader derives it from v2 `io.stat` or the v1 blkio files (read from memory). Nothing may panic; the
//! output lists, in the host's order and with the host's column count, exactly the host's devices on
//! which the container did I/O, with the container's counters.
//!
//! Input: 1 parameter byte (v2 flag), then NUL-separated files: host diskstats, then io.stat (v2) or
//! blkio io_service_bytes, io_serviced, io_merged, io_service_time, io_wait_time (v1).

mod input;

use cgview::host::cgroup_reader::read_io;
use cgview::host::layout::CgroupVersion;
use cgview::parse::diskstats::parse_diskstats;
use cgview::render::diskstats::render_diskstats;
use input::{container_dir, version, Input, MemFiles};
use libfuzzer_sys::fuzz_target;

const PARAM_LEN: usize = 1;

const V1_FILES: [&str; 5] = [
    "blkio.throttle.io_service_bytes_recursive",
    "blkio.throttle.io_serviced_recursive",
    "blkio.io_merged_recursive",
    "blkio.io_service_time_recursive",
    "blkio.io_wait_time_recursive",
];

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data, PARAM_LEN);
    let dir = container_dir(version(input.flag()));
    let mut files = MemFiles::default();
    if dir.version == CgroupVersion::V2 {
        files.put(dir.file("io.stat"), input.file(1));
    } else {
        for (index, name) in V1_FILES.iter().enumerate() {
            files.put(dir.file(name), input.file(1 + index));
        }
    }
    let Ok(io) = read_io(&files, &dir) else {
        return;
    };
    let host = input.text(0);
    let Ok(out) = render_diskstats(host, &io) else {
        return;
    };

    let host_lines = parse_diskstats(host).expect("the renderer accepted it");
    let expected: Vec<_> = host_lines
        .iter()
        .filter_map(|line| {
            let (_, device_io) = io.iter().find(|(id, _)| *id == line.device)?;
            device_io.has_activity().then_some((line, device_io))
        })
        .collect();
    let out_lines = parse_diskstats(&out).expect("the output parses as diskstats");
    assert_eq!(out_lines.len(), expected.len(), "{out}");
    for ((shown, text), (host_line, device_io)) in out_lines.iter().zip(out.lines()).zip(expected) {
        assert_eq!(shown, host_line, "{text}");
        let values: Vec<u64> = text
            .split_ascii_whitespace()
            .skip(3)
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(values.len(), host_line.counter_count);
        for (index, value) in values.iter().enumerate() {
            assert_eq!(
                *value,
                device_io.counters.get(index).copied().unwrap_or(0),
                "{text}"
            );
        }
    }
});
