//! A fake container runtime that speaks NRI to a plugin as containerd's NRI adaptation does
//! (`github.com/containerd/nri`, `pkg/adaptation` over `pkg/net/multiplex` and `containerd/ttrpc`).
//! Everything here is written from the protocol, not from the plugin's code (`cgview_nri::wire` and
//! `cgview_nri::proto` are not used): it is the independent peer the plugin is tested against.
//!
//! The wire, outermost first (each fact is used once, below):
//! - a Unix stream socket the runtime listens on and the plugin connects to (or one end of a socket
//!   pair the runtime passes to a plugin it launched, `NRI_PLUGIN_SOCKET`);
//! - the multiplexer: frames of a 4-byte big-endian connection id, a 4-byte big-endian length and the
//!   payload. Connection 1 carries the plugin's service (the runtime is the ttrpc client there),
//!   connection 2 the runtime's service (the plugin is the client, calling `RegisterPlugin`);
//! - Go reads each multiplexed connection through ttrpc's `bufio.Reader` of 4096 bytes, and the
//!   multiplexer's `Read` fails with `ENOMEM` when a frame is larger than the buffer it is read into:
//!   containerd then drops the plugin. So a frame of more than [`MUX_READ_BUFFER`] bytes from the
//!   plugin is a fatal protocol error here;
//! - the runtime's own writes go through ttrpc's `bufio.Writer` of 4096 bytes, so a message longer than
//!   the buffer leaves in a 4096-byte frame followed by one frame holding the rest ([`go_frames`]);
//! - ttrpc messages: a 10-byte header (4-byte big-endian length of the body, 4-byte big-endian stream
//!   id, type 1 request / 2 response, flags) and a protobuf body (`Request`/`Response`); a client uses
//!   odd stream ids 1, 3, 5...; bodies are at most 4 MiB;
//! - NRI's methods on "nri.pkg.api.v1alpha1.Plugin" and "nri.pkg.api.v1alpha1.Runtime", each request
//!   answered within the runtime's request timeout (2 s) or the plugin is dropped.

use super::pb;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The multiplexer's connection of the plugin's service (the runtime calls the plugin).
pub const PLUGIN_CONN: u32 = 1;
/// The multiplexer's connection of the runtime's service (the plugin calls the runtime).
pub const RUNTIME_CONN: u32 = 2;
/// What Go reads a multiplexed connection's frame into: ttrpc's `bufio.Reader` (and writes through:
/// its `bufio.Writer`).
pub const MUX_READ_BUFFER: usize = 4096;
pub const TTRPC_HEADER: usize = 10;
/// ttrpc's `messageLengthMax`.
pub const TTRPC_MAX: usize = 4 << 20;
pub const TTRPC_REQUEST: u8 = 1;
pub const TTRPC_RESPONSE: u8 = 2;
pub const PLUGIN_SERVICE: &str = "nri.pkg.api.v1alpha1.Plugin";
pub const RUNTIME_SERVICE: &str = "nri.pkg.api.v1alpha1.Runtime";
/// containerd's `DefaultPluginRequestTimeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// containerd's `DefaultPluginRegistrationTimeout`.
pub const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(5);
/// `Event` numbers; a subscription mask has bit `event - 1` per event.
pub const EVENT_CREATE_CONTAINER: i32 = 4;
pub const EVENT_REMOVE_CONTAINER: i32 = 11;
/// `Event.LAST`: bits at or above `1 << (LAST - 1)` are not events.
pub const EVENT_LAST: i32 = 15;
/// gRPC codes.
pub const CODE_INVALID_ARGUMENT: i32 = 3;
pub const CODE_RESOURCE_EXHAUSTED: i32 = 8;
pub const CODE_FAILED_PRECONDITION: i32 = 9;
pub const CODE_UNIMPLEMENTED: i32 = 12;

pub const fn event_bit(event: i32) -> i32 {
    1 << (event - 1)
}

/// The bytes of one multiplexer frame.
pub fn mux_frame(conn: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&conn.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A ttrpc message: its header and body.
pub fn ttrpc_message(stream: u32, kind: u8, body: &[u8]) -> Vec<u8> {
    ttrpc_message_claiming(body.len() as u32, stream, kind, body)
}

/// A ttrpc message whose header claims `length`, whatever the body's real length.
pub fn ttrpc_message_claiming(length: u32, stream: u32, kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TTRPC_HEADER + body.len());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&stream.to_be_bytes());
    out.push(kind);
    out.push(0);
    out.extend_from_slice(body);
    out
}

/// The frames Go writes one ttrpc message in: the channel writes the 10-byte header and the body into a
/// 4096-byte `bufio.Writer` and flushes; a body that does not fit fills the buffer (one 4096-byte
/// frame) and the rest, if at least a buffer long, goes out in one direct write (one frame), else
/// through the buffer (one frame at the flush).
pub fn go_frames(message: &[u8]) -> Vec<&[u8]> {
    if message.len() <= MUX_READ_BUFFER {
        return vec![message];
    }
    let (first, rest) = message.split_at(MUX_READ_BUFFER);
    vec![first, rest]
}

/// Why a call to the plugin did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The plugin answered with a failure status.
    Status { code: i32, message: String },
    /// No answer within the request timeout (containerd drops the plugin).
    Timeout(Duration),
    /// The connection ended or broke the protocol before the answer.
    Closed(String),
    /// The answer's payload is not the method's reply message.
    Decode(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status { code, message } => write!(f, "status {code}: {message}"),
            CallError::Timeout(after) => write!(f, "no answer within {after:?}"),
            CallError::Closed(why) => write!(f, "the connection ended: {why}"),
            CallError::Decode(why) => write!(f, "the answer does not decode: {why}"),
        }
    }
}

/// A plugin's registration, as `RegisterPlugin` carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub index: String,
    pub nri_version: String,
    /// The ttrpc stream id the plugin used.
    pub stream: u32,
    /// The request's `timeout_nano`.
    pub timeout_nano: i64,
}

/// An answer to a request on the plugin's connection.
#[derive(Debug, Clone)]
pub struct Reply {
    pub response: pb::Response,
    /// From just before the request's first byte was written to the answer's last byte read.
    pub latency: Duration,
    /// Multiplexer frames the answer came in.
    pub frames: usize,
}

/// What the reader thread saw of the frames the plugin wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    pub frames: usize,
    pub largest: usize,
    /// ttrpc messages that came in more than one frame.
    pub split_messages: usize,
    /// The most frames one message came in.
    pub most_frames_per_message: usize,
}

#[derive(Default)]
struct State {
    sent: HashMap<u32, Instant>,
    replies: HashMap<u32, Reply>,
    registrations: Vec<Registration>,
    /// A protocol error: the runtime dropped the connection.
    fatal: Option<String>,
    /// The connection ended (EOF, an error, or closed here).
    closed: Option<String>,
    /// Odd things that a runtime would log and survive.
    notes: Vec<String>,
    stats: FrameStats,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state.lock().unwrap();
        change(&mut state);
        self.changed.notify_all();
    }

    /// Waits until `ready` gives a value, or `timeout`.
    fn wait_for<T>(
        &self,
        timeout: Duration,
        mut ready: impl FnMut(&mut State) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(value) = ready(&mut state) {
                return Some(value);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }
}

/// One connection with a plugin: the runtime's side of the multiplexer and both ttrpc channels.
pub struct Connection {
    stream: UnixStream,
    writer: Arc<Mutex<UnixStream>>,
    shared: Arc<Shared>,
    next_stream: AtomicU32,
    reader: Option<JoinHandle<()>>,
}

impl Connection {
    /// Starts serving `stream`: the runtime's service on connection 2 answers `RegisterPlugin` at once.
    pub fn new(stream: UnixStream) -> Connection {
        stream.set_nonblocking(false).unwrap();
        let writer = Arc::new(Mutex::new(stream.try_clone().unwrap()));
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let reader = {
            let (stream, writer, shared) = (
                stream.try_clone().unwrap(),
                Arc::clone(&writer),
                Arc::clone(&shared),
            );
            std::thread::Builder::new()
                .name("fake-runtime-reader".to_owned())
                .spawn(move || Reader::new(writer, Arc::clone(&shared)).run(stream))
                .unwrap()
        };
        Connection {
            stream,
            writer,
            shared,
            next_stream: AtomicU32::new(1),
            reader: Some(reader),
        }
    }

    /// Waits for the plugin's `RegisterPlugin` (answered already by the reader).
    pub fn wait_registered(&self, timeout: Duration) -> Result<Registration, String> {
        let result = self.shared.wait_for(timeout, |state| {
            if let Some(registration) = state.registrations.first() {
                return Some(Ok(registration.clone()));
            }
            if let Some(fatal) = &state.fatal {
                return Some(Err(format!("protocol error before registration: {fatal}")));
            }
            state
                .closed
                .as_ref()
                .map(|why| Err(format!("the plugin left before registering: {why}")))
        });
        result.unwrap_or_else(|| Err(format!("the plugin did not register within {timeout:?}")))
    }

    /// Every registration on this connection (a plugin registers once).
    pub fn registrations(&self) -> Vec<Registration> {
        self.shared.state.lock().unwrap().registrations.clone()
    }

    /// A fresh client stream id on the plugin's connection: 1, 3, 5...
    pub fn next_stream(&self) -> u32 {
        self.next_stream.fetch_add(2, Ordering::Relaxed)
    }

    fn write(&self, bytes: &[u8]) -> Result<(), CallError> {
        let mut writer = self.writer.lock().unwrap();
        writer
            .write_all(bytes)
            .map_err(|e| CallError::Closed(format!("cannot write to the plugin: {e}")))
    }

    /// Writes one ttrpc message on `conn` as Go does ([`go_frames`]).
    pub fn send_message(
        &self,
        conn: u32,
        stream: u32,
        kind: u8,
        body: &[u8],
    ) -> Result<(), CallError> {
        let message = ttrpc_message(stream, kind, body);
        let mut bytes = Vec::with_capacity(message.len() + 16);
        for frame in go_frames(&message) {
            bytes.extend(mux_frame(conn, frame));
        }
        self.send_tracked(stream, conn == PLUGIN_CONN && kind == TTRPC_REQUEST, &bytes)
    }

    fn send_tracked(&self, stream: u32, track: bool, bytes: &[u8]) -> Result<(), CallError> {
        // The writer's lock keeps a message's frames together, as ttrpc's send lock does.
        let mut writer = self.writer.lock().unwrap();
        // Filed before the write: the answer may arrive before the write call returns.
        if track {
            self.shared.update(|state| {
                state.sent.insert(stream, Instant::now());
            });
        }
        writer
            .write_all(bytes)
            .map_err(|e| CallError::Closed(format!("cannot write to the plugin: {e}")))
    }

    /// Writes `payload` on `conn` in multiplexer frames of at most `frame` bytes: whatever bytes a
    /// test wants the plugin to read (a malformed or oversized ttrpc message). Requests among them are
    /// tracked by `stream` when given.
    pub fn send_raw(
        &self,
        conn: u32,
        payload: &[u8],
        frame: usize,
        stream: Option<u32>,
    ) -> Result<(), CallError> {
        let mut bytes = Vec::with_capacity(payload.len() + 8 * (payload.len() / frame + 1));
        for chunk in payload.chunks(frame.max(1)) {
            bytes.extend(mux_frame(conn, chunk));
        }
        match stream {
            Some(stream) => self.send_tracked(stream, true, &bytes),
            None => self.write(&bytes),
        }
    }

    /// Sends a request for `method` of the plugin's service; its answer is awaited with [`Self::wait`].
    pub fn request(&self, method: &str, payload: &[u8]) -> Result<u32, CallError> {
        let stream = self.next_stream();
        let request = pb::Request {
            service: PLUGIN_SERVICE.to_owned(),
            method: method.to_owned(),
            payload: payload.to_vec(),
            timeout_nano: REQUEST_TIMEOUT.as_nanos() as i64,
        };
        self.send_message(PLUGIN_CONN, stream, TTRPC_REQUEST, &request.encode())?;
        Ok(stream)
    }

    /// The answer on `stream`, within `timeout`. containerd drops a plugin that does not answer in
    /// time, and so does this: the connection is closed on a timeout.
    pub fn wait(&self, stream: u32, timeout: Duration) -> Result<Reply, CallError> {
        let result = self.shared.wait_for(timeout, |state| {
            if let Some(reply) = state.replies.remove(&stream) {
                return Some(Ok(reply));
            }
            if let Some(fatal) = &state.fatal {
                return Some(Err(CallError::Closed(format!("protocol error: {fatal}"))));
            }
            state
                .closed
                .as_ref()
                .map(|why| Err(CallError::Closed(why.clone())))
        });
        match result {
            Some(result) => result,
            None => {
                self.close(&format!(
                    "the plugin did not answer stream {stream} within {timeout:?}"
                ));
                Err(CallError::Timeout(timeout))
            }
        }
    }

    /// Calls `method` with `payload` and waits up to the request timeout: the reply's payload, or
    /// why not.
    pub fn call(&self, method: &str, payload: &[u8]) -> Result<(Vec<u8>, Reply), CallError> {
        let stream = self.request(method, payload)?;
        let reply = self.wait(stream, REQUEST_TIMEOUT)?;
        match &reply.response.status {
            Some(status) if status.code != 0 => Err(CallError::Status {
                code: status.code,
                message: status.message.clone(),
            }),
            _ => Ok((reply.response.payload.clone(), reply)),
        }
    }

    /// `Configure`, as containerd sends it; checks the subscription like the adaptation does (only
    /// valid event bits) and returns the mask.
    pub fn configure(&self) -> Result<i32, CallError> {
        let request = pb::ConfigureRequest {
            config: String::new(),
            runtime_name: "containerd".to_owned(),
            runtime_version: "v2.0.4".to_owned(),
            registration_timeout_ms: REGISTRATION_TIMEOUT.as_millis() as i64,
            request_timeout_ms: REQUEST_TIMEOUT.as_millis() as i64,
            nri_version: "v0.10.0".to_owned(),
        };
        let (payload, _) = self.call("Configure", &request.encode())?;
        let response = pb::ConfigureResponse::decode(&payload).map_err(CallError::Decode)?;
        let valid = event_bit(EVENT_LAST) - 1;
        if response.events & !valid != 0 || response.events < 0 {
            return Err(CallError::Decode(format!(
                "the plugin subscribed to invalid events: mask {:#x}",
                response.events
            )));
        }
        Ok(response.events)
    }

    /// `Synchronize` with the existing pods and containers, `per_message` containers a message at most
    /// (`more` set on all but the last), as containerd splits one that is too large. Each partial
    /// answer must echo `more` and carry no updates, or the adaptation drops the plugin.
    pub fn synchronize(
        &self,
        pods: &[pb::PodSandbox],
        containers: &[pb::Container],
        per_message: usize,
    ) -> Result<(), CallError> {
        let chunks: Vec<&[pb::Container]> = if containers.is_empty() {
            vec![&[]]
        } else {
            containers.chunks(per_message.max(1)).collect()
        };
        for (at, chunk) in chunks.iter().enumerate() {
            let first = at == 0;
            let more = at + 1 < chunks.len();
            let request = pb::synchronize_request(if first { pods } else { &[] }, chunk, more);
            let (payload, _) = self.call("Synchronize", &request)?;
            let response = pb::SynchronizeResponse::decode(&payload).map_err(CallError::Decode)?;
            if more && (response.more != more || response.updates > 0) {
                return Err(CallError::Decode(format!(
                    "the plugin does not handle split synchronization: {response:?} to a part with more=true"
                )));
            }
        }
        Ok(())
    }

    /// `CreateContainer`: the plugin's answer (adjustments) or the failure the runtime would report.
    pub fn create_container(
        &self,
        pod: &pb::PodSandbox,
        container: &pb::Container,
    ) -> Result<pb::CreateContainerResponse, CallError> {
        let (payload, _) = self.call("CreateContainer", &pb::container_request(pod, container))?;
        pb::CreateContainerResponse::decode(&payload).map_err(CallError::Decode)
    }

    /// `RemoveContainer` (answered with an empty message).
    pub fn remove_container(
        &self,
        pod: &pb::PodSandbox,
        container: &pb::Container,
    ) -> Result<(), CallError> {
        self.call("RemoveContainer", &pb::container_request(pod, container))
            .map(|_| ())
    }

    /// `Shutdown`: the runtime is going down.
    pub fn shutdown(&self) -> Result<(), CallError> {
        self.call("Shutdown", &[]).map(|_| ())
    }

    /// The protocol error that made the runtime drop the plugin, if any.
    pub fn fatal(&self) -> Option<String> {
        self.shared.state.lock().unwrap().fatal.clone()
    }

    /// Why the connection ended, if it did.
    pub fn closed(&self) -> Option<String> {
        self.shared.state.lock().unwrap().closed.clone()
    }

    /// Waits until the connection ends (the plugin closed it, or broke the protocol).
    pub fn wait_closed(&self, timeout: Duration) -> Option<String> {
        self.shared.wait_for(timeout, |state| state.closed.clone())
    }

    pub fn notes(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().notes.clone()
    }

    pub fn frame_stats(&self) -> FrameStats {
        self.shared.state.lock().unwrap().stats
    }

    /// Panics if the plugin broke the protocol or did anything odd so far.
    pub fn assert_clean(&self) {
        let state = self.shared.state.lock().unwrap();
        assert!(
            state.fatal.is_none(),
            "protocol error: {}",
            state.fatal.as_deref().unwrap_or("")
        );
        assert!(state.notes.is_empty(), "{:#?}", state.notes);
        assert!(state.stats.largest <= MUX_READ_BUFFER, "{:?}", state.stats);
    }

    /// Ends the connection (the runtime restarting or dropping the plugin).
    pub fn close(&self, why: &str) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        let why = why.to_owned();
        self.shared.update(|state| {
            state.closed.get_or_insert(why);
        });
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close("the runtime closed the connection");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// One multiplexed connection's ttrpc byte stream being cut into messages.
#[derive(Default)]
struct Assembler {
    bytes: Vec<u8>,
    /// Frames that brought bytes of the message at the front of `bytes`.
    frames: usize,
}

struct Message {
    stream: u32,
    kind: u8,
    body: Vec<u8>,
    frames: usize,
}

impl Assembler {
    /// Takes one frame's payload; the messages it completes, or a protocol error.
    fn push(&mut self, payload: &[u8]) -> Result<Vec<Message>, String> {
        self.bytes.extend_from_slice(payload);
        self.frames += 1;
        let mut out = Vec::new();
        loop {
            if self.bytes.len() < TTRPC_HEADER {
                break;
            }
            let length = u32::from_be_bytes(self.bytes[0..4].try_into().unwrap()) as usize;
            if length > TTRPC_MAX {
                return Err(format!(
                    "the plugin sent a ttrpc message of {length} bytes, over the 4 MiB maximum"
                ));
            }
            if self.bytes.len() < TTRPC_HEADER + length {
                break;
            }
            let rest = self.bytes.split_off(TTRPC_HEADER + length);
            let message = std::mem::replace(&mut self.bytes, rest);
            out.push(Message {
                stream: u32::from_be_bytes(message[4..8].try_into().unwrap()),
                kind: message[8],
                body: message[TTRPC_HEADER..].to_vec(),
                frames: self.frames,
            });
            // Bytes left over began in this frame.
            self.frames = usize::from(!self.bytes.is_empty());
        }
        Ok(out)
    }
}

/// The reader thread: demultiplexes what the plugin writes, answers `RegisterPlugin`, and files the
/// answers to the runtime's requests.
struct Reader {
    writer: Arc<Mutex<UnixStream>>,
    shared: Arc<Shared>,
    plugin_side: Assembler,
    runtime_side: Assembler,
    /// The highest stream id the plugin used on the runtime's service (ttrpc wants them increasing).
    last_client_stream: u32,
    answered: HashSet<u32>,
}

impl Reader {
    fn new(writer: Arc<Mutex<UnixStream>>, shared: Arc<Shared>) -> Reader {
        Reader {
            writer,
            shared,
            plugin_side: Assembler::default(),
            runtime_side: Assembler::default(),
            last_client_stream: 0,
            answered: HashSet::new(),
        }
    }

    fn run(mut self, mut stream: UnixStream) {
        let ended = self.read_all(&mut stream);
        let _ = stream.shutdown(std::net::Shutdown::Both);
        self.shared.update(|state| match ended {
            Ended::Eof => {
                state
                    .closed
                    .get_or_insert_with(|| "the plugin closed the connection".to_owned());
            }
            Ended::Error(e) => {
                state
                    .closed
                    .get_or_insert_with(|| format!("reading from the plugin failed: {e}"));
            }
            Ended::Fatal(why) => {
                state.fatal.get_or_insert(why.clone());
                state.closed.get_or_insert(why);
            }
        });
    }

    fn read_all(&mut self, stream: &mut UnixStream) -> Ended {
        loop {
            let mut header = [0u8; 8];
            match read_exact_or_eof(stream, &mut header) {
                Ok(true) => {}
                Ok(false) => return Ended::Eof,
                Err(e) => return Ended::Error(e),
            }
            let conn = u32::from_be_bytes(header[0..4].try_into().unwrap());
            let length = u32::from_be_bytes(header[4..8].try_into().unwrap()) as usize;
            if length > MUX_READ_BUFFER {
                return Ended::Fatal(format!(
                    "the plugin wrote a multiplexer frame of {length} bytes on connection {conn}: Go reads frames into a {MUX_READ_BUFFER}-byte buffer (ENOMEM), so containerd drops the plugin"
                ));
            }
            let mut payload = vec![0u8; length];
            match read_exact_or_eof(stream, &mut payload) {
                Ok(true) => {}
                Ok(false) => {
                    return Ended::Fatal(format!(
                        "the plugin closed the connection inside a frame of {length} bytes"
                    ))
                }
                Err(e) => return Ended::Error(e),
            }
            self.shared.update(|state| {
                state.stats.frames += 1;
                state.stats.largest = state.stats.largest.max(length);
            });
            let messages = match conn {
                PLUGIN_CONN => self.plugin_side.push(&payload),
                RUNTIME_CONN => self.runtime_side.push(&payload),
                other => {
                    self.note(format!(
                        "{length} bytes for multiplexer connection {other}, which nobody opened (dropped)"
                    ));
                    continue;
                }
            };
            let messages = match messages {
                Ok(messages) => messages,
                Err(why) => return Ended::Fatal(why),
            };
            for message in messages {
                self.shared.update(|state| {
                    if message.frames > 1 {
                        state.stats.split_messages += 1;
                    }
                    state.stats.most_frames_per_message =
                        state.stats.most_frames_per_message.max(message.frames);
                });
                let result = if conn == PLUGIN_CONN {
                    self.on_plugin_conn(message)
                } else {
                    self.on_runtime_conn(message)
                };
                if let Err(why) = result {
                    return Ended::Fatal(why);
                }
            }
        }
    }

    fn note(&self, note: String) {
        self.shared.update(|state| state.notes.push(note));
    }

    /// An answer to one of the runtime's requests.
    fn on_plugin_conn(&mut self, message: Message) -> Result<(), String> {
        let arrived = Instant::now();
        if message.kind != TTRPC_RESPONSE {
            self.note(format!(
                "a ttrpc message of type {} on the plugin's connection (stream {}), where only responses belong",
                message.kind, message.stream
            ));
            return Ok(());
        }
        let response = pb::Response::decode(&message.body).map_err(|e| {
            format!(
                "the plugin's answer on stream {} is not a ttrpc Response: {e}",
                message.stream
            )
        })?;
        if !self.answered.insert(message.stream) {
            self.note(format!("a second answer on stream {}", message.stream));
            return Ok(());
        }
        let stream = message.stream;
        let frames = message.frames;
        let mut unknown = false;
        self.shared
            .update(|state| match state.sent.remove(&stream) {
                Some(sent) => {
                    state.replies.insert(
                        stream,
                        Reply {
                            response,
                            latency: arrived.saturating_duration_since(sent),
                            frames,
                        },
                    );
                }
                None => unknown = true,
            });
        if unknown {
            self.note(format!(
                "an answer on stream {stream}, which the runtime never used"
            ));
        }
        Ok(())
    }

    /// A request to the runtime's service: `RegisterPlugin` (and nothing else cgview should call).
    fn on_runtime_conn(&mut self, message: Message) -> Result<(), String> {
        if message.kind != TTRPC_REQUEST {
            self.note(format!(
                "a ttrpc message of type {} on the runtime's connection (stream {})",
                message.kind, message.stream
            ));
            return Ok(());
        }
        if message.stream % 2 != 1 || message.stream <= self.last_client_stream {
            return Err(format!(
                "the plugin's request on the runtime's connection has stream id {} (after {}): ttrpc clients use increasing odd ids",
                message.stream, self.last_client_stream
            ));
        }
        self.last_client_stream = message.stream;
        let (status, registration) = match pb::Request::decode(&message.body) {
            Err(e) => (
                pb::Status {
                    code: CODE_INVALID_ARGUMENT,
                    message: format!("unmarshal request error: {e}"),
                },
                None,
            ),
            Ok(request)
                if request.service == RUNTIME_SERVICE && request.method == "RegisterPlugin" =>
            {
                match pb::RegisterPluginRequest::decode(&request.payload) {
                    Err(e) => (
                        pb::Status {
                            code: CODE_INVALID_ARGUMENT,
                            message: e,
                        },
                        None,
                    ),
                    Ok(register) => match check_registration(&register) {
                        Err(why) => (
                            pb::Status {
                                code: CODE_INVALID_ARGUMENT,
                                message: why,
                            },
                            None,
                        ),
                        Ok(()) => (
                            pb::Status::default(),
                            Some(Registration {
                                name: register.plugin_name,
                                index: register.plugin_idx,
                                nri_version: register.nri_version,
                                stream: message.stream,
                                timeout_nano: request.timeout_nano,
                            }),
                        ),
                    },
                }
            }
            Ok(request) => (
                pb::Status {
                    code: CODE_UNIMPLEMENTED,
                    message: format!("{}/{} is not served", request.service, request.method),
                },
                None,
            ),
        };
        if status.code != 0 {
            self.note(format!(
                "the plugin's request on stream {} failed: {}",
                message.stream, status.message
            ));
        }
        let already =
            registration.is_some() && !self.shared.state.lock().unwrap().registrations.is_empty();
        if already {
            self.note("the plugin registered twice on one connection".to_owned());
        }
        // The answer goes out before the registration is announced: the runtime's next step
        // (Configure) must not overtake it.
        let response = pb::Response {
            status: Some(status),
            payload: Vec::new(),
        };
        let message_bytes = ttrpc_message(message.stream, TTRPC_RESPONSE, &response.encode());
        let mut bytes = Vec::new();
        for frame in go_frames(&message_bytes) {
            bytes.extend(mux_frame(RUNTIME_CONN, frame));
        }
        self.writer
            .lock()
            .unwrap()
            .write_all(&bytes)
            .map_err(|e| format!("cannot answer RegisterPlugin: {e}"))?;
        if let Some(registration) = registration {
            self.shared
                .update(|state| state.registrations.push(registration));
        }
        Ok(())
    }
}

/// The adaptation's checks of a registration: a two-digit index and a name of letters, digits and
/// `-_.+`.
fn check_registration(register: &pb::RegisterPluginRequest) -> Result<(), String> {
    let index = &register.plugin_idx;
    if index.len() != 2 || !index.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid plugin index {index:?}"));
    }
    let name = &register.plugin_name;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
    {
        return Err(format!("invalid plugin name {name:?}"));
    }
    Ok(())
}

enum Ended {
    Eof,
    Error(io::Error),
    Fatal(String),
}

/// Fills `buf`: `Ok(false)` on an end of stream before its first byte.
fn read_exact_or_eof(stream: &mut UnixStream, buf: &mut [u8]) -> io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        match stream.read(&mut buf[at..]) {
            Ok(0) if at == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The runtime: a listening NRI socket in a directory of its own, and the plugin connected to it.
pub struct Runtime {
    dir: tempfile::TempDir,
    path: PathBuf,
    listener: Option<UnixListener>,
    connection: Option<Connection>,
}

impl Runtime {
    /// Listens on `<temp dir>/nri.sock`.
    pub fn listen() -> Runtime {
        let dir = tempfile::Builder::new()
            .prefix("cgview-nri-runtime-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("nri.sock");
        let listener = UnixListener::bind(&path).unwrap();
        Runtime {
            dir,
            path,
            listener: Some(listener),
            connection: None,
        }
    }

    /// A runtime that launched its plugin and speaks to it over `stream` (one end of a socket pair).
    pub fn launched(stream: UnixStream) -> Runtime {
        let dir = tempfile::Builder::new()
            .prefix("cgview-nri-runtime-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("unused.sock");
        Runtime {
            dir,
            path,
            listener: None,
            connection: Some(Connection::new(stream)),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.path
    }

    /// A directory for the test's other files (lock directory, logs), removed with the runtime.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Accepts the plugin's connection, waiting up to `timeout`; the previous one is dropped.
    pub fn accept(&mut self, timeout: Duration) -> Result<&Connection, String> {
        let listener = self
            .listener
            .as_ref()
            .ok_or("the runtime does not listen")?;
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    self.connection = Some(Connection::new(stream));
                    return Ok(self.connection.as_ref().unwrap());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "no plugin connected to {} within {timeout:?}",
                            self.path.display()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        }
    }

    /// What containerd does with a new plugin: accept it, wait for its registration, `Configure`
    /// (which must subscribe to container creation and removal) and `Synchronize` with what exists.
    pub fn handshake(
        &mut self,
        accept_within: Duration,
        pods: &[pb::PodSandbox],
        containers: &[pb::Container],
    ) -> Registration {
        if self.connection.is_none() || self.listener.is_some() {
            self.accept(accept_within).unwrap_or_else(|e| panic!("{e}"));
        }
        let connection = self.connection();
        let registration = connection
            .wait_registered(REGISTRATION_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        let events = connection
            .configure()
            .unwrap_or_else(|e| panic!("Configure: {e}"));
        let wanted = event_bit(EVENT_CREATE_CONTAINER) | event_bit(EVENT_REMOVE_CONTAINER);
        assert_eq!(
            events & wanted,
            wanted,
            "the plugin's subscription {events:#x} lacks CreateContainer or RemoveContainer"
        );
        connection
            .synchronize(pods, containers, 64)
            .unwrap_or_else(|e| panic!("Synchronize: {e}"));
        registration
    }

    /// The plugin's current connection.
    pub fn connection(&self) -> &Connection {
        self.connection
            .as_ref()
            .expect("no plugin is connected to the runtime")
    }

    /// Whether no plugin connects within `wait` (a connection that does arrive is kept).
    pub fn no_connection_within(&mut self, wait: Duration) -> bool {
        self.accept(wait).is_err()
    }

    /// Drops the plugin's connection (as containerd does to a plugin that broke the protocol).
    pub fn drop_connection(&mut self) {
        self.connection = None;
    }

    /// The runtime restarting: the connection and the listener go, the socket file too; after `down`
    /// it listens again on the same path.
    pub fn restart(&mut self, down: Duration) {
        self.connection = None;
        self.listener = None;
        let _ = std::fs::remove_file(&self.path);
        std::thread::sleep(down);
        self.listener = Some(UnixListener::bind(&self.path).unwrap());
    }
}
