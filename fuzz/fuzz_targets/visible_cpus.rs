#![no_main]
//! Fuzzes the visible-CPU model with real limits: the container's and its pod's cpuset and CFS quota
//! files (v1 or v2 names) are read by the daemon's own reader from memory and reduced against an arbitrary
//! host online list. The container sees a non-empty subset of the online CPUs, inside its cpuset when
//! that overlaps them, no more than its quota rounded up, and the lowest of the CPUs it may use; the
//! `online` file it reads round-trips to that set.
//!
//! Input: 2 parameter bytes (v2 flag, quota awareness), then NUL-separated files: host online list,
//! cpuset (effective) of the container / pod, v1 `cpuset.cpus` of the container, cpu.max or
//! cpu.cfs_quota_us of the container / pod, cpu.cfs_period_us of the container / pod.

mod input;

use cgview::host::cgroup_reader::read_cpu_limits;
use cgview::host::layout::CgroupVersion;
use cgview::model::cpu::visible_cpus;
use cgview::parse::cpuset::parse_cpu_list;
use cgview::render::cpu_list::render_cpu_list;
use input::{chain_dirs, container_dir, version, Input, MemFiles};
use libfuzzer_sys::fuzz_target;

const PARAM_LEN: usize = 2;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data, PARAM_LEN);
    let v2 = input.flag();
    let quota_aware = input.flag();
    let Ok(online) = parse_cpu_list(input.text(0)) else {
        return;
    };
    let dir = container_dir(version(v2));
    let [own, pod, _root] = <[_; 3]>::try_from(chain_dirs(&dir)).expect("three levels");
    let mut files = MemFiles::default();
    if dir.version == CgroupVersion::V2 {
        files.put(own.join("cpuset.cpus.effective"), input.file(1));
        files.put(pod.join("cpuset.cpus.effective"), input.file(2));
        files.put(own.join("cpu.max"), input.file(4));
        files.put(pod.join("cpu.max"), input.file(5));
    } else {
        files.put(own.join("cpuset.effective_cpus"), input.file(1));
        files.put(pod.join("cpuset.effective_cpus"), input.file(2));
        files.put(own.join("cpuset.cpus"), input.file(3));
        files.put(own.join("cpu.cfs_quota_us"), input.file(4));
        files.put(pod.join("cpu.cfs_quota_us"), input.file(5));
        files.put(own.join("cpu.cfs_period_us"), input.file(6));
        files.put(pod.join("cpu.cfs_period_us"), input.file(7));
    }
    let Ok(limits) = read_cpu_limits(&files, Some(&dir), Some(&dir)) else {
        return;
    };

    let visible = visible_cpus(&online, &limits, quota_aware);
    assert!(
        visible.ids().iter().all(|&id| online.contains(id)),
        "{visible:?} not within online {online:?}"
    );
    assert_eq!(
        visible.is_empty(),
        online.is_empty(),
        "{visible:?} of {online:?}"
    );
    let allowed = match &limits.cpuset {
        Some(cpuset) if !cpuset.intersection(&online).is_empty() => {
            assert!(
                visible.ids().iter().all(|&id| cpuset.contains(id)),
                "{visible:?} {limits:?}"
            );
            cpuset.intersection(&online)
        }
        _ => online.clone(),
    };
    match limits.quota_cpus {
        Some(quota) if quota_aware => {
            let most = if quota.is_nan() || quota <= 1.0 {
                1.0
            } else {
                quota.ceil()
            };
            assert!(
                visible.len() as f64 <= most,
                "{visible:?} for quota {quota}"
            );
        }
        _ => assert_eq!(visible, allowed),
    }
    assert_eq!(visible, allowed.first(visible.len()), "not the lowest ids");

    let text = render_cpu_list(&visible);
    assert!(
        text.ends_with('\n') && text.lines().count() <= 1,
        "{text:?}"
    );
    assert_eq!(parse_cpu_list(&text).as_ref(), Ok(&visible));
});
