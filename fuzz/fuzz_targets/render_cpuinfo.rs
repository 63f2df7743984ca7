#![no_main]
//! Fuzzes the cpuinfo renderer on arbitrary host text and visible CPUs derived from the input (the real
//! visible-CPU model over a cpuset and a quota): the result is the host's blocks in the host's order,
//! minus exactly the blocks of CPUs the container does not see, each the host's line for line but for
//! the values of the lines that count CPUs (at most the visible CPUs) and the s390x summary lines of
//! hidden CPUs (a block of nothing else goes whole).
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
    // A block of no CPU that holds nothing but s390x summary lines of hidden CPUs is left out whole.
    let kept: Vec<_> = host_blocks
        .iter()
        .filter(|b| match b.cpu {
            Some(id) => visible.contains(id),
            None => b
                .text
                .split_inclusive('\n')
                .any(|line| !line.trim().is_empty() && !hidden_summary_line(line, &visible, None)),
        })
        .collect();
    // A block is named by its first line. A summary block whose hidden summary lines come before a
    // `cpu number`/`processor` line (no kernel prints that order) starts with that line once they are
    // left out, and reads back as that CPU's block: the identities below cannot hold, so such a host
    // text is not judged here.
    let exposes_a_cpu_header = host_blocks.iter().filter(|b| b.cpu.is_none()).any(|b| {
        b.text
            .split_inclusive('\n')
            .find(|line| !line.trim().is_empty() && !hidden_summary_line(line, &visible, None))
            .is_some_and(|line| {
                parse_cpuinfo_blocks(line)
                    .first()
                    .is_some_and(|l| l.cpu.is_some())
            })
    });
    if exposes_a_cpu_header {
        return;
    }
    // Kept blocks are whole host blocks, so the output splits back into exactly them.
    let out_blocks = parse_cpuinfo_blocks(&out);
    assert_eq!(out_blocks.len(), kept.len(), "{out:?}");
    for (shown, host_block) in out_blocks.iter().zip(&kept) {
        assert_eq!(shown.cpu, host_block.cpu);
        if let Some(id) = shown.cpu {
            assert!(visible.contains(id), "cpu {id} is not visible: {visible:?}");
        }
        let mut host_lines = host_block.text.split_inclusive('\n');
        for line in shown.text.split_inclusive('\n') {
            // A summary line of a hidden CPU (`processor 3: ...`) is the only kind left out.
            let host_line = host_lines
                .by_ref()
                .find(|host_line| !hidden_summary_line(host_line, &visible, shown.cpu))
                .expect("a line the host does not have");
            let key = host_line.split(':').next().unwrap_or("").trim();
            let counts = match shown.cpu {
                Some(_) => matches!(key, "siblings" | "cpu cores"),
                None => key == "# processors",
            };
            if counts && host_line.contains(':') {
                let (shown_key, value) = line.split_once(':').unwrap();
                assert_eq!(shown_key.trim(), key);
                let value: usize = value.trim().parse().unwrap();
                assert!(value <= visible.len(), "{line:?} for {visible:?}");
                assert!(value >= 1 || shown.cpu.is_none(), "{line:?}");
            } else {
                assert_eq!(line, host_line);
            }
        }
        assert!(host_lines.all(|l| hidden_summary_line(l, &visible, shown.cpu)));
    }
});

/// Whether `line` of a block (of CPU `cpu`, `None` for a summary block) is s390x's summary line of a CPU
/// the container does not see.
fn hidden_summary_line(line: &str, visible: &CpuSet, cpu: Option<u32>) -> bool {
    cpu.is_none()
        && line
            .split_once(':')
            .and_then(|(key, _)| key.trim().strip_prefix("processor "))
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u32>().ok())
            .is_some_and(|id| !visible.contains(id))
}
