#![no_main]
//! Fuzzes the handover record a daemon reads from its keeper or from systemd's descriptor store (written
//! by another daemon, possibly of another version): no input may panic, and a record that reads back
//! reads back the same once written again.

use cgview::handover::Handover;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(record) = Handover::decode(text) {
        assert_eq!(Handover::decode(&record.encode()), Ok(record.clone()));
        assert!(record.successor().generation >= record.generation);
    }
});
