//! The NRI plugin's side of the socket: whatever bytes a runtime sends, in whatever pieces, the
//! demultiplexer never panics nor keeps more than one message, every message it gives is answered by the
//! handler without a panic, and a message framed by the plugin comes back whole.
#![no_main]

use cgview_nri::counters::Counters;
use cgview_nri::handler::{Handler, PluginConfig, SeccompTarget, WhenNotServed};
use cgview_nri::policy::{default_bound, Selection};
use cgview_nri::proto::Request;
use cgview_nri::protocol::{PLUGIN_SERVICE_CONN, TTRPC_REQUEST};
use cgview_nri::serving::ServingWatch;
use cgview_nri::wire::{frames, Demux, Event};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use std::sync::{Arc, LazyLock};

static HANDLER: LazyLock<Handler> = LazyLock::new(|| {
    Handler::new(
        PluginConfig {
            name: "cgview".into(),
            index: "50".into(),
            mount_point: "/var/lib/cgview".into(),
            bound: default_bound(),
            selection: Selection::default(),
            when_not_served: WhenNotServed::Closed,
            // The seccomp merge runs on every container given the binds; its socket check is fixed to
            // "served" so that no input makes a syscall.
            seccomp: Some(SeccompTarget {
                socket: "/run/cgview/seccomp.sock".into(),
                metadata: "cgview-sysinfo".into(),
            }),
        },
        ServingWatch::fixed(Ok(())),
        Arc::new(Counters::default()),
    )
    .with_seccomp_check(Arc::new(|| Ok(())))
});

fuzz_target!(|data: &[u8]| {
    let Some((&piece, bytes)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    let mut demux = Demux::new();
    let mut events = Vec::new();
    for chunk in bytes.chunks(piece) {
        demux.push(chunk, &mut events);
        for event in events.drain(..) {
            if let Event::Message { conn, body, .. } = event {
                assert!(body.len() <= cgview_nri::protocol::TTRPC_MAX_MESSAGE);
                if conn == PLUGIN_SERVICE_CONN {
                    if let Ok(request) = Request::decode(body.as_slice()) {
                        let _ = HANDLER.handle(&request.method, &request.payload);
                    }
                }
            }
        }
    }
    // Round trip: the bytes as one message's body, framed and cut again in pieces of `piece`.
    let framed = frames(PLUGIN_SERVICE_CONN, 7, TTRPC_REQUEST, bytes).unwrap();
    let mut demux = Demux::new();
    let mut events = Vec::new();
    for chunk in framed.chunks(piece) {
        demux.push(chunk, &mut events);
    }
    assert!(demux.is_between_messages());
    match events.as_slice() {
        [Event::Message { conn, header, body }] => {
            assert_eq!(*conn, PLUGIN_SERVICE_CONN);
            assert_eq!(header.stream, 7);
            assert_eq!(body.as_slice(), bytes);
        }
        other => panic!("{} events for one message", other.len()),
    }
});
