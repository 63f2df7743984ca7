#![no_main]
//! Fuzzes the vmstat renderer on arbitrary host text and a container's cgroup files as the daemon's own
//! readers take them (read from memory). Nothing may panic; the output has the host's names in the host's
//! order, one number each; `nr_free_pages` is the container's MemFree and the dirty thresholds are at
//! most the host's; a second render of the same files through the same carry shows the same counters.
//!
//! Input: 1 parameter byte (v2 flag), then NUL-separated files: host vmstat, host meminfo, the container's
//! memory limit, usage, memory.stat, memory.events (v2) or memory.oom_control (v1), io.stat (v2) or
//! blkio.throttle.io_service_bytes_recursive (v1).

mod input;

use cgview::host::cgroup_reader::{read_block_traffic, read_vm_sources};
use cgview::host::layout::CgroupVersion;
use cgview::model::vmstat::{ContainerVm, CounterCarry, MemoryStatKeys, PageUnits};
use cgview::parse::meminfo::parse_host_meminfo;
use cgview::parse::vmstat::{parse_vmstat, vmstat_value};
use cgview::render::vmstat::render_vmstat;
use input::{container_dir, version, Input, MemFiles};
use libfuzzer_sys::fuzz_target;

const PARAM_LEN: usize = 1;

const UNITS: PageUnits = PageUnits {
    page_bytes: 4096,
    pmd_thp_bytes: Some(2 << 20),
};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data, PARAM_LEN);
    let dir = container_dir(version(input.flag()));
    let names: [&str; 5] = match dir.version {
        CgroupVersion::V2 => [
            "memory.max",
            "memory.current",
            "memory.stat",
            "memory.events",
            "io.stat",
        ],
        CgroupVersion::V1 => [
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "memory.stat",
            "memory.oom_control",
            "blkio.throttle.io_service_bytes_recursive",
        ],
    };
    let mut files = MemFiles::default();
    for (index, name) in names.iter().enumerate() {
        files.put(dir.file(name), input.file(2 + index));
    }
    let Ok(sources) = read_vm_sources(&files, &dir) else {
        return;
    };
    let Ok(io) = read_block_traffic(&files, &dir) else {
        return;
    };
    let Ok(host_meminfo) = parse_host_meminfo(input.text(1)) else {
        return;
    };
    let shown_meminfo = sources.memory.meminfo(&host_meminfo);
    let vm = ContainerVm {
        memory: &sources.memory,
        mem_free_bytes: shown_meminfo.mem_free.saturating_mul(1024),
        stat: MemoryStatKeys {
            flavor: sources.flavor,
            raw: &sources.stat,
        },
        io: Some(io),
        oom_kills: sources.oom_kills,
    };
    let host = input.text(0);
    let mut carry = CounterCarry::default();
    let Ok(first) = render_vmstat(host, &vm, UNITS, &mut carry) else {
        return;
    };

    let host_lines = parse_vmstat(host).expect("the renderer accepted it");
    let shown = parse_vmstat(&first).expect("the output parses as vmstat");
    let names_of = |lines: &[cgview::parse::vmstat::VmstatLine<'_>]| -> Vec<String> {
        lines.iter().map(|l| l.name.to_owned()).collect()
    };
    assert_eq!(names_of(&shown), names_of(&host_lines));
    if let Some(free) = vmstat_value(&shown, "nr_free_pages") {
        assert_eq!(free, vm.mem_free_bytes / UNITS.page_bytes);
        assert!(free <= shown_meminfo.mem_total.saturating_mul(1024) / UNITS.page_bytes);
    }
    for name in ["nr_dirty_threshold", "nr_dirty_background_threshold"] {
        if let (Some(container), Some(host)) =
            (vmstat_value(&shown, name), vmstat_value(&host_lines, name))
        {
            assert!(container <= host, "{name}: {container} above the host's {host}");
        }
    }
    let second = render_vmstat(host, &vm, UNITS, &mut carry).expect("rendered once");
    assert_eq!(first, second);
});
