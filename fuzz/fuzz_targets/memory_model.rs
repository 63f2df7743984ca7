#![no_main]
//! Fuzzes the memory model with real limits: a container's cgroup files (its own, its pod's and the root's
//! limits, usage, `memory.stat`, swap files; v1 or v2 names) are read by the daemon's own reader from
//! memory, then meminfo is rendered from an arbitrary host meminfo. Nothing may panic, and the container
//! never sees more memory than the host or its limit, nor more available or free memory than total or
//! than the host has (`crates/cgview-core/tests/meminfo_properties.rs` checks every line's rules).
//!
//! Input: 17 parameter bytes (v2 flag, host MemTotal and SwapTotal in kB for the model alone), then NUL-
//! separated files: host meminfo, limit of the container / pod / root, usage, memory.stat, swap usage,
//! swap limit of the container / pod, swappiness.

mod input;

use cgview::host::cgroup_reader::read_memory;
use cgview::host::layout::CgroupVersion;
use cgview::model::memory::{ContainerMeminfo, MemoryState};
use cgview::parse::meminfo::{meminfo_value, HostMeminfo};
use cgview::render::meminfo::render_meminfo;
use input::{chain_dirs, container_dir, version, Input, MemFiles};
use libfuzzer_sys::fuzz_target;

const PARAM_LEN: usize = 17;

struct Names {
    limit: &'static str,
    usage: &'static str,
    stat: &'static str,
    swap_usage: &'static str,
    swap_limit: &'static str,
}

const V1: Names = Names {
    limit: "memory.limit_in_bytes",
    usage: "memory.usage_in_bytes",
    stat: "memory.stat",
    swap_usage: "memory.memsw.usage_in_bytes",
    swap_limit: "memory.memsw.limit_in_bytes",
};

const V2: Names = Names {
    limit: "memory.max",
    usage: "memory.current",
    stat: "memory.stat",
    swap_usage: "memory.swap.current",
    swap_limit: "memory.swap.max",
};

fn assert_model_bounded(info: &ContainerMeminfo, memory: &MemoryState, host: &HostMeminfo) {
    assert!(info.mem_total <= host.mem_total, "{info:?}");
    if let Some(limit) = memory.limit_bytes {
        assert!(info.mem_total <= limit / 1024, "{info:?} {memory:?}");
    }
    assert!(info.mem_free <= info.mem_total, "{info:?}");
    assert!(info.mem_available <= info.mem_total, "{info:?}");
    assert!(info.mem_free <= host.mem_free.unwrap_or(u64::MAX), "{info:?}");
    assert!(info.mem_available <= host.mem_available.unwrap_or(u64::MAX), "{info:?}");
    assert!(info.swap.total_kb <= host.swap_total, "{info:?}");
    assert!(info.swap.free_kb <= info.swap.total_kb, "{info:?}");
    let used = info.mem_total - info.mem_free;
    assert!(info.cached + info.anon_pages <= used, "{info:?}");
    assert!(info.active_anon + info.inactive_anon + info.active_file + info.inactive_file <= used);
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data, PARAM_LEN);
    let v2 = input.flag();
    let (host_mem, host_swap) = (input.u64(), input.u64());
    let dir = container_dir(version(v2));
    let names = if dir.version == CgroupVersion::V2 {
        &V2
    } else {
        &V1
    };
    let [own, pod, root] = <[_; 3]>::try_from(chain_dirs(&dir)).expect("three levels");

    let mut files = MemFiles::default();
    files.put(own.join(names.limit), input.file(1));
    files.put(pod.join(names.limit), input.file(2));
    files.put(root.join(names.limit), input.file(3));
    files.put(own.join(names.usage), input.file(4));
    files.put(own.join(names.stat), input.file(5));
    files.put(own.join(names.swap_usage), input.file(6));
    files.put(own.join(names.swap_limit), input.file(7));
    files.put(pod.join(names.swap_limit), input.file(8));
    files.put(own.join("memory.swappiness"), input.file(9));
    let Ok(memory) = read_memory(&files, &dir) else {
        return;
    };

    let host_figures = HostMeminfo {
        mem_total: host_mem,
        mem_free: Some(host_mem / 2),
        mem_available: Some(host_mem / 3),
        swap_total: host_swap,
        swap_free: Some(host_swap / 2),
        ..HostMeminfo::default()
    };
    assert_model_bounded(&memory.meminfo(&host_figures), &memory, &host_figures);

    let host = input.text(0);
    let Ok(out) = render_meminfo(host, &memory) else {
        return;
    };
    assert_eq!(out.lines().count(), host.lines().count());
    let kb = |text: &str, name| meminfo_value(text, name);
    let host_total = kb(host, "MemTotal").expect("rendering needs the host's MemTotal");
    let total = kb(&out, "MemTotal").expect("MemTotal is rendered");
    assert!(total <= host_total, "{total} > host {host_total}\n{out}");
    match memory.limit_bytes {
        Some(limit) => assert!(total <= limit / 1024, "{total} kB > limit {limit}\n{out}"),
        None => assert_eq!(total, host_total.min(u64::MAX / 1024), "{out}"),
    }
    for name in ["MemFree", "MemAvailable"] {
        if let Some(value) = kb(&out, name) {
            assert!(value <= total, "{name} {value} > MemTotal {total}\n{out}");
            if let Some(host_value) = kb(host, name) {
                assert!(value <= host_value, "{name} {value} > the host's {host_value}\n{out}");
            }
        }
    }
    if let (Some(free), Some(swap_total)) = (kb(&out, "SwapFree"), kb(&out, "SwapTotal")) {
        assert!(free <= swap_total, "{out}");
        assert!(swap_total <= kb(host, "SwapTotal").unwrap_or(0), "{out}");
    }
});
