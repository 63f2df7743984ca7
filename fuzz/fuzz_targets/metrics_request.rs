#![no_main]
//! Fuzzes the metrics endpoint's request-head parsing, which any client that reaches the port feeds:
//! no input may panic; the end of a head found in pieces (as the server reads it) is the end found at
//! once; a parsed request's path is an origin-form path without its query.

use cgview::telemetry::http::{find_head_end, parse_request_head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = find_head_end(data, 0);
    if let Some(end) = whole {
        assert!(end <= data.len() && data[end - 1] == b'\n');
    }
    // The first byte picks where the server's first read would have stopped.
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    if find_head_end(&data[..split], 0).is_none() {
        assert_eq!(find_head_end(data, split), whole);
    }
    let head = &data[..whole.unwrap_or(data.len())];
    if let Ok(request) = parse_request_head(head) {
        assert!(!request.method.is_empty());
        assert!(request.path.starts_with('/') && !request.path.contains('?'));
    }
});
