#![no_main]
//! Fuzzes the cpuinfo renderer on arbitrary host text and visible CPUs derived from the input (the real
//! visible-CPU model over a cpuset and a quota): the result is the host's blocks in the host's order,
//! minus exactly the blocks of CPUs the container does not see.
//!
//! Input: 9 parameter bytes (quota awareness, quota in CPUs), then NUL-separated files: host cpuinfo,
//! host online list (the CPUs of the cpuinfo when absent or unreadable), the container's cpuset.

mod input;

use cgview::model::cpu::{visible_cpus, CpuLimits};
use cgview::parse::cpuinfo::parse_cpuinfo_blocks;
use cgview::parse::cpuset::{parse_cpu_list, CpuSet};
use cgview::render::cpuinfo::render_cpuinfo;
use input::Input;
use libfuzzer_sys::fuzz_target;

const PARAM_LEN: usize = 9;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data, PARAM_LEN);
    let quota_aware = input.flag();
    let quota = input.f64();
    let host = input.text(0);
    let host_blocks = parse_cpuinfo_blocks(host);
    let online = input
        .file(1)
        .and_then(|text| parse_cpu_list(text).ok())
        .unwrap_or_else(|| CpuSet::from_ids(host_blocks.iter().filter_map(|b| b.cpu).collect()));
    let limits = CpuLimits {
        cpuset: input.file(2).and_then(|text| parse_cpu_list(text).ok()),
        quota_cpus: (quota != 0.0).then_some(quota),
    };
    let visible = visible_cpus(&online, &limits, quota_aware);

    let out = render_cpuinfo(host, &visible);
    let kept: Vec<_> = host_blocks
        .iter()
        .filter(|b| b.cpu.is_none_or(|id| visible.contains(id)))
        .collect();
    assert!(out.len() <= host.len());
    // Kept blocks are whole host blocks, so the output splits back into exactly them.
    let out_blocks = parse_cpuinfo_blocks(&out);
    assert_eq!(out_blocks.len(), kept.len(), "{out:?}");
    for (shown, host_block) in out_blocks.iter().zip(&kept) {
        assert_eq!(shown, *host_block);
        if let Some(id) = shown.cpu {
            assert!(visible.contains(id), "cpu {id} is not visible: {visible:?}");
        }
    }
    if host_blocks
        .iter()
        .all(|b| b.cpu.is_none_or(|id| visible.contains(id)))
    {
        assert_eq!(out, host);
    }
});
