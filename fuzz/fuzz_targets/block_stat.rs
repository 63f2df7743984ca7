#![no_main]
//! Fuzzes sys/block stat rendering: no panic, and the host file's field count is kept.

use cgview::model::io::DeviceIo;
use cgview::render::block_stat::render_block_stat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(host) = std::str::from_utf8(data) else {
        return;
    };
    let io = DeviceIo {
        counters: [u64::MAX; 17],
    };
    for io in [None, Some(&io)] {
        let out = render_block_stat(host, io);
        assert_eq!(
            out.split_ascii_whitespace().count(),
            host.split_ascii_whitespace().count()
        );
    }
});
