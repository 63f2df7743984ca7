#![no_main]
//! Fuzzes the renderer of the cpu directory's files that print a set of CPUs (topology lists and masks,
//! cache sharing) on any host text and any visible CPUs: it fails only on text that is not of the format,
//! and what it prints is in the format (a mask as wide as the host's), names only CPUs both the host's
//! text and the visible set name, and names all of those.
//!
//! Input: 1 parameter byte (list or mask), then NUL-separated files: the host file, the visible CPUs as a
//! list.

mod input;

use cgview::parse::cpuset::{parse_cpu_list, parse_cpu_mask};
use cgview::render::cpu_list::{render_restricted_cpus, CpuListFormat};
use input::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data, 1);
    let format = if input.flag() {
        CpuListFormat::Mask
    } else {
        CpuListFormat::List
    };
    let host = input.text(0);
    let Ok(visible) = parse_cpu_list(input.text(1)) else {
        return;
    };
    let host_set = match format {
        CpuListFormat::List => parse_cpu_list(host).map(|set| (set, None)),
        CpuListFormat::Mask => parse_cpu_mask(host).map(|mask| (mask.cpus, Some(mask.digits))),
    };
    let rendered = render_restricted_cpus(host, format, &visible);
    let Ok((host_set, digits)) = host_set else {
        assert!(rendered.is_err(), "{rendered:?} from {host:?}");
        return;
    };
    let text = rendered.unwrap();
    assert!(text.ends_with('\n') && text.matches('\n').count() == 1, "{text:?}");
    let shown = match digits {
        None => parse_cpu_list(&text).unwrap(),
        Some(digits) => {
            let mask = parse_cpu_mask(&text).unwrap();
            assert_eq!(mask.digits, digits, "{text:?} from {host:?}");
            mask.cpus
        }
    };
    assert_eq!(shown, host_set.intersection(&visible), "{text:?}");
});
