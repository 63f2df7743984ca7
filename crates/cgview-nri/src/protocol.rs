//! Every wire-level fact the plugin relies on, in one place. Each was read from the NRI repository
//! (`containerd/nri`, `pkg/api`, `pkg/net/multiplex`, `pkg/stub`, `pkg/adaptation`, as of NRI 0.10) and
//! ttrpc (`containerd/ttrpc`, `channel.go`, `request.proto`); a run against a real containerd or CRI-O
//! that disagrees with one of them is fixed here and in `tests/nri_support/runtime.rs`, nowhere else.
//!
//! The layers, outermost first:
//! 1. one Unix stream socket (the runtime's `/var/run/nri/nri.sock`, or the inherited descriptor named by
//!    `NRI_PLUGIN_SOCKET` when the runtime launched the plugin);
//! 2. NRI's connection multiplexer on it: frames of a 4-byte big-endian connection id, a 4-byte
//!    big-endian payload length and the payload; connection 1 carries the plugin's service (the
//!    runtime calls the plugin), connection 2 the runtime's (the plugin calls the runtime);
//! 3. on each connection a ttrpc byte stream: messages of a 10-byte header (4-byte big-endian length of
//!    what follows, 4-byte big-endian stream id, 1-byte type, 1-byte flags) and a protobuf body
//!    (`Request` or `Response`, [`crate::proto`]);
//! 4. in a request's payload, the NRI message of the method called.

use std::time::Duration;

/// Where containerd and CRI-O listen for external plugins unless configured otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/var/run/nri/nri.sock";
/// Set by a runtime that launched the plugin itself (a pre-installed plugin in `/opt/nri/plugins`): the
/// number of an inherited descriptor, one end of a socket pair (the runtime passes `3`).
pub const PLUGIN_SOCKET_ENV: &str = "NRI_PLUGIN_SOCKET";
/// Set by a runtime that launched the plugin: its name (the executable's name after `NN-`).
pub const PLUGIN_NAME_ENV: &str = "NRI_PLUGIN_NAME";
/// Set by a runtime that launched the plugin: its two-digit index (the executable's `NN-` prefix).
pub const PLUGIN_IDX_ENV: &str = "NRI_PLUGIN_IDX";

/// The multiplexer's connection for the plugin's service: the runtime's requests arrive here.
pub const PLUGIN_SERVICE_CONN: u32 = 1;
/// The multiplexer's connection for the runtime's service: `RegisterPlugin` goes out here.
pub const RUNTIME_SERVICE_CONN: u32 = 2;
/// Bytes in a multiplexer frame's header (connection id and length).
pub const MUX_HEADER_LEN: usize = 8;
/// The largest multiplexer payload the plugin writes. The Go side reads each multiplexed connection
/// through a 4096-byte `bufio.Reader`, and a frame larger than the buffer it is read into fails the read
/// (`ENOMEM`): containerd then drops the plugin. A ttrpc message longer than this goes out in several
/// frames, each holding bytes of that message only, so a frame never straddles two messages.
pub const MUX_MAX_WRITE: usize = 4096;

/// Bytes in a ttrpc message header.
pub const TTRPC_HEADER_LEN: usize = 10;
/// The largest ttrpc message body either side accepts (`messageLengthMax`, 4 MiB). A longer one is
/// discarded and, if it was a request, answered with `RESOURCE_EXHAUSTED`.
pub const TTRPC_MAX_MESSAGE: usize = 4 << 20;
/// ttrpc message types.
pub const TTRPC_REQUEST: u8 = 1;
pub const TTRPC_RESPONSE: u8 = 2;
/// Streaming data; NRI's services are unary and never send it.
pub const TTRPC_DATA: u8 = 3;
/// The first stream id a ttrpc client uses; each next request adds 2 (clients use odd ids).
pub const TTRPC_FIRST_CLIENT_STREAM: u32 = 1;

/// The protobuf package of NRI's services; a ttrpc request names `<package>.<Service>` and the method.
pub const API_PACKAGE: &str = "nri.pkg.api.v1alpha1";
/// `service Runtime`, served by the runtime on [`RUNTIME_SERVICE_CONN`].
pub const RUNTIME_SERVICE: &str = "nri.pkg.api.v1alpha1.Runtime";
/// `service Plugin`, served by the plugin on [`PLUGIN_SERVICE_CONN`].
pub const PLUGIN_SERVICE: &str = "nri.pkg.api.v1alpha1.Plugin";
pub const METHOD_REGISTER_PLUGIN: &str = "RegisterPlugin";
pub const METHOD_CONFIGURE: &str = "Configure";
pub const METHOD_SYNCHRONIZE: &str = "Synchronize";
pub const METHOD_SHUTDOWN: &str = "Shutdown";
pub const METHOD_CREATE_CONTAINER: &str = "CreateContainer";
pub const METHOD_REMOVE_CONTAINER: &str = "RemoveContainer";
/// Events arrive through this method when the plugin subscribed to events it does not serve a method
/// for (pod sandbox and post-* events); the plugin answers `Empty`.
pub const METHOD_STATE_CHANGE: &str = "StateChange";

/// The NRI version the plugin announces in `RegisterPlugin` (runtimes log it; none refuses on it).
pub const NRI_VERSION: &str = "v0.10.0";

/// The NRI release that added the seccomp adjustment (`LinuxSeccomp`, `LinuxContainer.seccomp_policy`
/// = 8, `LinuxContainerAdjustment.seccomp_policy` = 6; containerd/nri b315f77, "api: add seccomp
/// adjustment"). The runtimes that vendor it: containerd 2.2+, CRI-O 1.34+. An older runtime neither
/// sends the container's policy (the plugin then sees every container as unconfined and leaves it) nor
/// reads the adjustment's field.
///
/// The runtime replaces the container's whole `linux.seccomp` with a plugin's `seccomp_policy`
/// (`Generator.AdjustSeccompPolicy`), so the plugin sends the merged policy; only one plugin may set it
/// per container (`ClaimSeccompPolicy`: a second fails the creation); and NRI's default validator may
/// refuse it by the kubelet's profile type (`reject_runtime_default_seccomp_adjustment`,
/// `reject_unconfined_seccomp_adjustment`, `reject_custom_seccomp_adjustment`).
pub const SECCOMP_ADJUSTMENT_SINCE: &str = "v0.10.0";

/// `enum Event` values; the `events` mask of `ConfigureResponse` has bit `event - 1` set per event.
pub const EVENT_CREATE_CONTAINER: i32 = 4;
pub const EVENT_REMOVE_CONTAINER: i32 = 11;
/// The first value past the valid events (`Event.LAST`).
pub const EVENT_LAST: i32 = 15;

/// The bit of `event` in an event mask.
pub const fn event_bit(event: i32) -> i32 {
    1 << (event - 1)
}

/// The events the plugin subscribes to: creation (where the mounts are added) and removal (to forget
/// the container). `Synchronize` and `Shutdown` are always sent.
pub const SUBSCRIBED_EVENTS: i32 =
    event_bit(EVENT_CREATE_CONTAINER) | event_bit(EVENT_REMOVE_CONTAINER);

/// How long the runtime waits for the plugin to register, unless `ConfigureRequest` says otherwise
/// (`DefaultPluginRegistrationTimeout`).
pub const DEFAULT_REGISTRATION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the runtime waits for the plugin's answer to a request before it drops the plugin
/// (`DefaultPluginRequestTimeout`); `ConfigureRequest.request_timeout` may set another, in milliseconds.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// gRPC status codes carried in a ttrpc `Response.status.code`.
pub mod code {
    pub const OK: i32 = 0;
    pub const UNKNOWN: i32 = 2;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const UNIMPLEMENTED: i32 = 12;
}

/// A plugin index: two decimal digits, the runtime's order among plugins (`CheckPluginIndex`).
pub fn check_plugin_index(index: &str) -> Result<(), String> {
    if index.len() == 2 && index.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "plugin index {index:?} is not two decimal digits (00-99)"
        ))
    }
}

/// A plugin name: letters, digits and `-_.+`, not empty (`CheckPluginName`).
pub fn check_plugin_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the plugin name is empty".to_owned());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+')))
    {
        Some(bad) => Err(format!(
            "plugin name {name:?} has {bad:?}; use letters, digits and - _ . +"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_bits_are_the_event_number_less_one() {
        assert_eq!(event_bit(1), 1);
        assert_eq!(SUBSCRIBED_EVENTS, (1 << 3) | (1 << 10));
        assert!(event_bit(EVENT_LAST - 1) < event_bit(EVENT_LAST));
    }

    #[test]
    fn plugin_index_and_name_checks_follow_nri() {
        check_plugin_index("10").unwrap();
        check_plugin_index("00").unwrap();
        check_plugin_index("1").unwrap_err();
        check_plugin_index("1a").unwrap_err();
        check_plugin_index("100").unwrap_err();
        check_plugin_name("cgview").unwrap();
        check_plugin_name("cg.view+1_2-3").unwrap();
        check_plugin_name("").unwrap_err();
        check_plugin_name("cg view").unwrap_err();
        check_plugin_name("cg/view").unwrap_err();
    }
}
