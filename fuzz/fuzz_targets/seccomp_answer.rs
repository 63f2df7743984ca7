#![no_main]
//! Fuzzes what the seccomp listener reads and computes, the way it drives them: a runtime's
//! `ContainerProcessState` JSON, a `struct seccomp_notif` as received, and the caller's rendered
//! meminfo, uptime and loadavg turned into `struct sysinfo`. Nothing panics; a decoded notification
//! keeps its fields; the struct is 112 bytes in the kernel's units (bytes with `mem_unit` 1 when they
//! fit, pages otherwise), with `procs` saturated to 16 bits and `uptime` never below the rendered one.
//!
//! Input: 8 bytes choosing the page size, 88 bytes of notification as received (fewer when the input is shorter),
//! then NUL-separated parts: the process state JSON, meminfo, uptime, loadavg.

mod input;

use cgview::daemon::seccomp::notify::{Notification, Response};
use cgview::daemon::seccomp::ProcessState;
use cgview::parse::uptime::parse_uptime;
use cgview::service::sysinfo::{MemoryKb, SysinfoValues, SYSINFO_SIZE};
use input::Input;
use libfuzzer_sys::fuzz_target;

/// The page size, then a `struct seccomp_notif` and 8 bytes past it.
const HEAD_LEN: usize = 8 + 88;

fuzz_target!(|data: &[u8]| {
    let (head, rest) = data.split_at(HEAD_LEN.min(data.len()));
    let (page, raw) = head.split_at(8.min(head.len()));
    let mut page_le = [0u8; 8];
    page_le[..page.len()].copy_from_slice(page);
    // The page sizes kernels run with: 4 KiB to 64 KiB.
    let page_bytes = 4096 << (u64::from_le_bytes(page_le) % 5);
    let input = Input::new(rest, 0);

    if let Ok(state) = ProcessState::parse(input.text(0).as_bytes()) {
        assert!(state.seccomp_fd_index < input.text(0).len(), "{state:?}");
    }

    if let Some(notification) = Notification::decode(raw) {
        assert!(raw.len() >= 80);
        assert_eq!(notification.id.to_ne_bytes(), raw[0..8]);
        let response = Response::Error(libc::EFAULT).encode(notification.id, 24);
        assert_eq!(response.len(), 24);
        assert_eq!(response[0..8], raw[0..8]);
    } else {
        assert!(raw.len() < 80);
    }

    let (meminfo, uptime, loadavg) = (input.text(1), input.text(2), input.text(3));
    let Ok(values) = SysinfoValues::from_rendered(meminfo, uptime, loadavg, page_bytes) else {
        return;
    };
    assert_eq!(values.encode().len(), SYSINFO_SIZE);
    let memory = MemoryKb::from_meminfo(meminfo).expect("parsed once already");
    let (up, _) = parse_uptime(uptime).expect("parsed once already");
    assert!(
        values.uptime as f64 >= up.min(i64::MAX as f64).floor(),
        "{values:?} from {up}"
    );
    match values.mem_unit {
        1 => assert_eq!(values.totalram, memory.total * 1024),
        unit => {
            assert_eq!(u64::from(unit), page_bytes);
            assert!(
                memory.total.checked_mul(1024).is_none()
                    || memory.swap_total.checked_mul(1024).is_none()
                    || (memory.total * 1024)
                        .checked_add(memory.swap_total * 1024)
                        .is_none()
                    || memory.free.checked_mul(1024).is_none()
                    || memory.shared.checked_mul(1024).is_none()
                    || memory.buffers.checked_mul(1024).is_none()
                    || memory.swap_free.checked_mul(1024).is_none()
            );
        }
    }
    assert_eq!((values.totalhigh, values.freehigh), (0, 0));
});
