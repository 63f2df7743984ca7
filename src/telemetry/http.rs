//! The `--metrics-addr` endpoint: `GET /metrics` (Prometheus text) and `GET /healthz` (whether the mount
//! is live), over plain HTTP/1.1. One request per connection; anything else gets a 400, 404 or 405.
//! Scrapes are rare and tiny, so no HTTP library is pulled in for them.
//!
//! Whoever reaches the port must not be able to starve it, nor the daemon of descriptors:
//! - every connection is served on a thread of its own, so a slow client delays nobody else;
//! - a request must be read and answered within `REQUEST_DEADLINE` (10 s) of its accept, whatever pace
//!   the client sends or reads at: the time left is computed before every read and write;
//! - at most `MAX_CONNECTIONS` (64) are served at once. A connection beyond that closes the one that has
//!   been sending its request head the longest (real clients send theirs in one segment and are answered
//!   in milliseconds, so only a trickling client loses its place), or, when every connection is being
//!   answered, gets a 503 at once. The accept loop never waits on a client;
//! - a request head is at most `MAX_HEAD` (8 KiB).
//!
//! Connections closed unanswered are counted in `/metrics` (`cgview_metrics_connections_dropped_total`).

use parking_lot::Mutex;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the endpoint serves, asked at request time.
pub trait Endpoint: Send + Sync + 'static {
    fn metrics(&self) -> String;
    /// `Ok(text)` while the mount is live, `Err(text)` otherwise.
    fn health(&self) -> Result<String, String>;
}

/// Connections served at once. Each holds a thread and a descriptor; a scraper and a few humans need a
/// handful.
const MAX_CONNECTIONS: usize = 64;
/// From accept to the last byte of the answer written. Prometheus's default scrape timeout is 10 s too.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Longest request head read (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// A connection's thread reads into a heap buffer and formats one answer: a small stack is plenty.
const CONNECTION_STACK_BYTES: usize = 256 * 1024;
/// How long the accept loop rests after a failed accept (out of descriptors, say) before trying again,
/// so that a persistent failure does not spin a CPU.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// A bound listener not yet serving: binding first lets a daemon fail on a taken port before it mounts.
pub struct Listener(TcpListener);

impl Listener {
    /// Binds `address` (port 0 picks a free one).
    pub fn bind(address: SocketAddr) -> io::Result<Listener> {
        TcpListener::bind(address).map(Listener)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    /// Serves `endpoint` on a background thread (and one thread per connection).
    pub fn serve(self, endpoint: impl Endpoint) -> io::Result<()> {
        let listener = self.0;
        let server = Arc::new(Server {
            endpoint,
            connections: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            dropped: Default::default(),
        });
        std::thread::Builder::new()
            .name("cgview-metrics".into())
            .spawn(move || loop {
                match listener.accept() {
                    Ok((stream, _)) => server.admit(stream),
                    Err(e) => {
                        tracing::debug!("metrics accept: {e}");
                        std::thread::sleep(ACCEPT_RETRY);
                    }
                }
            })?;
        Ok(())
    }
}

/// Binds `address` and serves `endpoint` on a background thread; returns the bound address.
pub fn spawn(address: SocketAddr, endpoint: impl Endpoint) -> io::Result<SocketAddr> {
    let listener = Listener::bind(address)?;
    let bound = listener.local_addr()?;
    listener.serve(endpoint)?;
    Ok(bound)
}

/// A request's method and path (its target without the query), borrowed from the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
}

/// Why a request head is not one this endpoint can answer (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    #[error("the request line is empty")]
    EmptyRequestLine,
    #[error("the request line is not `METHOD /path HTTP/1.x`")]
    MalformedRequestLine,
    #[error("a header line is not `name: value`")]
    MalformedHeader,
}

/// Where the request head at the start of `bytes` ends: the index just past its first empty line (`\n`
/// or `\r\n`; an empty first line ends an empty head). `searched` is how many leading bytes an earlier
/// call searched without finding the end (0 if none), so that a head trickled in a byte at a time is
/// searched in linear time.
pub fn find_head_end(bytes: &[u8], searched: usize) -> Option<usize> {
    let ends_empty_line = |newline: usize| {
        matches!(
            &bytes[..newline],
            [] | [b'\r'] | [.., b'\n'] | [.., b'\n', b'\r']
        )
    };
    (searched.min(bytes.len())..bytes.len())
        .find(|&i| bytes[i] == b'\n' && ends_empty_line(i))
        .map(|i| i + 1)
}

/// The method and path of a request head (its request line and header lines, up to an empty line; bytes
/// after that are not looked at). Lines end in `\r\n` or `\n`. Header values are not read, only their
/// names checked, so any bytes may follow a header's colon.
pub fn parse_request_head(head: &[u8]) -> Result<Request<'_>, BadRequest> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let request_line = lines.next().unwrap_or_default();
    if request_line.is_empty() {
        return Err(BadRequest::EmptyRequestLine);
    }
    let request_line = std::str::from_utf8(request_line)
        .ok()
        .filter(|line| line.bytes().all(|b| b == b' ' || b.is_ascii_graphic()))
        .ok_or(BadRequest::MalformedRequestLine)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest::MalformedRequestLine);
    };
    if !is_token(method.as_bytes())
        || !target.starts_with('/')
        || !matches!(version, "HTTP/1.0" | "HTTP/1.1")
    {
        return Err(BadRequest::MalformedRequestLine);
    }
    for line in lines.take_while(|line| !line.is_empty()) {
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        if name.len() == line.len() || !is_token(name) {
            return Err(BadRequest::MalformedHeader);
        }
    }
    let path = target.split('?').next().unwrap_or_default();
    Ok(Request { method, path })
}

/// An HTTP token (RFC 9110 section 5.6.2): a method or a header name.
fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Where a served connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    ReadingHead,
    Answering,
    /// Shut down to make room; its thread is on its way out.
    Evicted,
}

#[derive(Debug)]
struct Connection {
    id: u64,
    accepted: Instant,
    /// Shared with the connection's thread, so that eviction can shut it down under a blocked read.
    stream: Arc<TcpStream>,
    stage: Stage,
}

/// Why a connection was closed unanswered.
#[derive(Debug, Clone, Copy)]
enum Dropped {
    /// Every connection slot was answering.
    Refused = 0,
    /// The oldest connection still sending its head, closed to make room for a new one.
    Evicted,
    /// Not read and answered within `REQUEST_DEADLINE`.
    Deadline,
}

/// Each reason's label, in the order of `Dropped`'s discriminants (the index of its counter).
const DROP_REASONS: [(Dropped, &str); 3] = [
    (Dropped::Refused, "refused"),
    (Dropped::Evicted, "evicted"),
    (Dropped::Deadline, "deadline"),
];

struct Server<E> {
    endpoint: E,
    /// Every connection with a thread, evicted ones included until their thread ends.
    connections: Mutex<Vec<Connection>>,
    next_id: AtomicU64,
    dropped: [AtomicU64; DROP_REASONS.len()],
}

/// What the thread of a connection ends with, for the debug log.
#[derive(Debug, thiserror::Error)]
enum ConnectionEnd {
    #[error("the client closed the connection")]
    Closed,
    #[error("the connection was closed to make room")]
    Evicted,
    #[error("the request was not read and answered within {REQUEST_DEADLINE:?}")]
    Deadline,
    #[error("the connection failed")]
    Io(#[source] io::Error),
}

impl From<io::Error> for ConnectionEnd {
    fn from(e: io::Error) -> Self {
        // A socket timeout is the deadline: every timeout set is the time left before it.
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ConnectionEnd::Deadline,
            _ => ConnectionEnd::Io(e),
        }
    }
}

impl<E: Endpoint> Server<E> {
    /// Takes a new connection on, making room or refusing it without waiting on any client.
    fn admit(self: &Arc<Self>, stream: TcpStream) {
        let accepted = Instant::now();
        let stream = Arc::new(stream);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut connections = self.connections.lock();
            let serving = connections
                .iter()
                .filter(|c| c.stage != Stage::Evicted)
                .count();
            let room = if connections.len() >= 2 * MAX_CONNECTIONS {
                // Evicted connections hold a descriptor until their thread notices: bounded too.
                false
            } else {
                serving < MAX_CONNECTIONS || self.evict_oldest_reader(&mut connections)
            };
            if !room {
                drop(connections);
                self.count(Dropped::Refused);
                refuse(&stream);
                return;
            }
            connections.push(Connection {
                id,
                accepted,
                stream: stream.clone(),
                stage: Stage::ReadingHead,
            });
        }
        let server = self.clone();
        let spawned = std::thread::Builder::new()
            .name("cgview-metrics-conn".into())
            .stack_size(CONNECTION_STACK_BYTES)
            .spawn(move || {
                let outcome = server.serve_connection(id, &stream, accepted);
                server.connections.lock().retain(|c| c.id != id);
                match outcome {
                    Ok(()) => {}
                    Err(ConnectionEnd::Deadline) => {
                        server.count(Dropped::Deadline);
                        tracing::debug!("metrics connection: {}", ConnectionEnd::Deadline);
                    }
                    Err(end) => tracing::debug!("metrics connection: {end}"),
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a thread for a metrics connection: {e}");
            let stream = {
                let mut connections = self.connections.lock();
                let at = connections.iter().position(|c| c.id == id);
                at.map(|at| connections.swap_remove(at).stream)
            };
            self.count(Dropped::Refused);
            if let Some(stream) = stream {
                refuse(&stream);
            }
        }
    }

    /// Shuts down the connection that has been sending its head the longest; false if none is.
    fn evict_oldest_reader(&self, connections: &mut [Connection]) -> bool {
        let oldest = connections
            .iter_mut()
            .filter(|c| c.stage == Stage::ReadingHead)
            .min_by_key(|c| c.accepted);
        let Some(oldest) = oldest else {
            return false;
        };
        oldest.stage = Stage::Evicted;
        // Wakes its thread's blocked read with end-of-file.
        let _ = oldest.stream.shutdown(Shutdown::Both);
        self.count(Dropped::Evicted);
        true
    }

    fn serve_connection(
        &self,
        id: u64,
        stream: &TcpStream,
        accepted: Instant,
    ) -> Result<(), ConnectionEnd> {
        let deadline = accepted + REQUEST_DEADLINE;
        let response = match read_head(stream, deadline)? {
            Some(head) => match parse_request_head(&head) {
                Ok(request) => {
                    self.start_answering(id)?;
                    self.route(request)
                }
                Err(bad) => {
                    self.start_answering(id)?;
                    Response::text("400 Bad Request", format!("{bad}\n"))
                }
            },
            None => {
                self.start_answering(id)?;
                Response::text(
                    "431 Request Header Fields Too Large",
                    format!("a request head is at most {MAX_HEAD} bytes\n"),
                )
            }
        };
        write_before(stream, &response.to_bytes(), deadline)?;
        // A client whose request went past the head (an oversized one, a body) would otherwise be sent
        // a reset by the close, which can discard the answer before it reads it.
        let _ = stream.shutdown(Shutdown::Write);
        discard_arrived(stream);
        Ok(())
    }

    /// Marks the connection as answering (no longer evictable), unless it was evicted already.
    fn start_answering(&self, id: u64) -> Result<(), ConnectionEnd> {
        let mut connections = self.connections.lock();
        match connections.iter_mut().find(|c| c.id == id) {
            Some(c) if c.stage == Stage::ReadingHead => {
                c.stage = Stage::Answering;
                Ok(())
            }
            _ => Err(ConnectionEnd::Evicted),
        }
    }

    fn route(&self, request: Request<'_>) -> Response {
        match (request.method, request.path) {
            ("GET", "/metrics") => {
                let mut body = self.endpoint.metrics();
                self.render_own_metrics(&mut body);
                Response {
                    status: "200 OK",
                    content_type: "text/plain; version=0.0.4; charset=utf-8",
                    body,
                }
            }
            ("GET", "/healthz") => match self.endpoint.health() {
                Ok(text) => Response::text("200 OK", text),
                Err(text) => Response::text("503 Service Unavailable", text),
            },
            (_, "/metrics" | "/healthz") => {
                Response::text("405 Method Not Allowed", "GET only\n".into())
            }
            _ => Response::text("404 Not Found", "try /metrics or /healthz\n".into()),
        }
    }

    /// The endpoint's own families, appended to the endpoint's.
    fn render_own_metrics(&self, out: &mut String) {
        let open = self.connections.lock().len();
        let _ = writeln!(
            out,
            "# HELP cgview_metrics_connections Connections to this endpoint open now (this one included).\n\
             # TYPE cgview_metrics_connections gauge\n\
             cgview_metrics_connections {open}\n\
             # HELP cgview_metrics_connections_dropped_total Connections to this endpoint closed unanswered: \
             refused (every slot answering), evicted (the longest still sending its request, to make room), \
             deadline (not read and answered within {} s).\n\
             # TYPE cgview_metrics_connections_dropped_total counter",
            REQUEST_DEADLINE.as_secs()
        );
        for ((_, reason), count) in DROP_REASONS.iter().zip(&self.dropped) {
            let _ = writeln!(
                out,
                "cgview_metrics_connections_dropped_total{{reason=\"{reason}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
    }

    fn count(&self, reason: Dropped) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads until the end of a request head: `Some(head)`, or `None` if none ended within `MAX_HEAD`
/// bytes.
fn read_head(mut stream: &TcpStream, deadline: Instant) -> Result<Option<Vec<u8>>, ConnectionEnd> {
    let mut buffer = vec![0; MAX_HEAD];
    let (mut filled, mut searched) = (0, 0);
    loop {
        if let Some(end) = find_head_end(&buffer[..filled], searched) {
            buffer.truncate(end);
            return Ok(Some(buffer));
        }
        if filled == MAX_HEAD {
            return Ok(None);
        }
        searched = filled;
        stream.set_read_timeout(Some(time_left(deadline)?))?;
        match stream.read(&mut buffer[filled..]) {
            Ok(0) => return Err(ConnectionEnd::Closed),
            Ok(read) => filled += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes all of `bytes`, each write given only the time left.
fn write_before(
    mut stream: &TcpStream,
    mut bytes: &[u8],
    deadline: Instant,
) -> Result<(), ConnectionEnd> {
    while !bytes.is_empty() {
        stream.set_write_timeout(Some(time_left(deadline)?))?;
        match stream.write(bytes) {
            Ok(0) => return Err(ConnectionEnd::Closed),
            Ok(written) => bytes = &bytes[written..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The time left before `deadline`, never zero (a zero socket timeout means none).
fn time_left(deadline: Instant) -> Result<Duration, ConnectionEnd> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(ConnectionEnd::Deadline)
    } else {
        Ok(left)
    }
}

const REFUSAL: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 21\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections\n";

/// Answers 503 without waiting for the client: the answer fits an empty socket buffer. What the client
/// sent already is read first, so that closing does not reset the connection under the answer.
fn refuse(mut stream: &TcpStream) {
    discard_arrived(stream);
    let _ = stream.write(REFUSAL);
    let _ = stream.shutdown(Shutdown::Write);
}

/// Reads and drops what the client has sent so far, without waiting for more: unread bytes at close
/// make the kernel reset the connection. Bounded, so that a fast sender cannot keep a thread here.
fn discard_arrived(mut stream: &TcpStream) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let mut sink = [0; 1024];
    for _ in 0..2 * MAX_HEAD / sink.len() {
        if !matches!(stream.read(&mut sink), Ok(read) if read > 0) {
            break;
        }
    }
}

struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: &'static str, body: String) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            self.status,
            self.content_type,
            self.body.len(),
            self.body
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Condvar;

    // ---- the request head, pure ----------------------------------------------------------------

    #[test]
    fn parse_request_head_takes_method_and_path_without_query() {
        let head = b"GET /metrics?name[]=x HTTP/1.1\r\nHost: 10.0.0.5:9477\r\nAccept: */*\r\n\r\n";
        assert_eq!(
            parse_request_head(head).unwrap(),
            Request {
                method: "GET",
                path: "/metrics"
            }
        );
        // HTTP/1.0 with no headers and bare newlines, as `printf | nc` sends.
        assert_eq!(
            parse_request_head(b"HEAD /healthz HTTP/1.0\n\n").unwrap(),
            Request {
                method: "HEAD",
                path: "/healthz"
            }
        );
    }

    #[test]
    fn parse_request_head_header_values_may_be_any_bytes() {
        let head = b"GET / HTTP/1.1\r\nX-Note: caf\xe9 \x01\r\nX-Empty:\r\n\r\n";
        assert_eq!(parse_request_head(head).unwrap().path, "/");
    }

    #[test]
    fn parse_request_head_bytes_after_the_head_are_not_read() {
        let head = b"GET /healthz HTTP/1.1\r\n\r\n\xff\xfe not a header\r\n";
        assert_eq!(parse_request_head(head).unwrap().path, "/healthz");
    }

    #[test]
    fn parse_request_head_malformed_request_lines_are_refused() {
        for line in [
            &b"GET /metrics"[..],
            b"GET  /metrics HTTP/1.1",
            b"GET /metrics HTTP/1.1 extra",
            b"GET metrics HTTP/1.1",
            b"GET http://host/metrics HTTP/1.1",
            b"GET /metrics HTTP/2.0",
            b"GET /metrics HTTP/1.1\t",
            b"G(T /metrics HTTP/1.1",
            b"GET /m\xc3\xa9trics HTTP/1.1",
            b"GET /metrics\x00 HTTP/1.1",
        ] {
            let head = [line, b"\r\n\r\n"].concat();
            assert_eq!(
                parse_request_head(&head).unwrap_err(),
                BadRequest::MalformedRequestLine,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(
            parse_request_head(b"\r\n\r\n").unwrap_err(),
            BadRequest::EmptyRequestLine
        );
        assert_eq!(
            parse_request_head(b"").unwrap_err(),
            BadRequest::EmptyRequestLine
        );
    }

    #[test]
    fn parse_request_head_malformed_headers_are_refused() {
        for header in [
            &b"no colon"[..],
            b": no name",
            b"Bad Name: x",
            b" folded: continuation",
            b"Host\xff: x",
        ] {
            let head = [b"GET / HTTP/1.1\r\n", header, b"\r\n\r\n"].concat();
            assert_eq!(
                parse_request_head(&head).unwrap_err(),
                BadRequest::MalformedHeader,
                "{}",
                String::from_utf8_lossy(header)
            );
        }
    }

    #[test]
    fn find_head_end_is_just_past_the_first_empty_line() {
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody";
        assert_eq!(find_head_end(request, 0), Some(request.len() - 4));
        assert_eq!(find_head_end(b"GET / HTTP/1.0\n\nrest", 0), Some(16));
        assert_eq!(find_head_end(b"\r\n", 0), Some(2));
        assert_eq!(find_head_end(b"\n", 0), Some(1));
        // Not yet: a line that is only a carriage return so far, and a header line.
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r", 0), None);
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), None);
        // A carriage return inside a line does not make it empty.
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: \r\r\n", 0), None);
    }

    #[test]
    fn find_head_end_trickled_byte_by_byte_finds_the_same_end() {
        let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nbody\r\n\r\n";
        let whole = find_head_end(request, 0);
        let mut searched = 0;
        for received in 1..=request.len() {
            if let Some(end) = find_head_end(&request[..received], searched) {
                assert_eq!(Some(end), whole);
                return;
            }
            searched = received;
        }
        panic!("trickled, the end was never found");
    }

    // ---- the server, over real sockets -----------------------------------------------------------

    struct Fixed(bool);

    impl Endpoint for Fixed {
        fn metrics(&self) -> String {
            "cgview_mount_live 1\n".into()
        }
        fn health(&self) -> Result<String, String> {
            if self.0 {
                Ok("live\n".into())
            } else {
                Err("not mounted\n".into())
            }
        }
    }

    /// A client that gives up after `patience`, so a test fails rather than hangs on a stuck server.
    fn get_within(address: SocketAddr, request: &str, patience: Duration) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(patience)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap_or_else(|e| {
            let start = &request[..request.len().min(40)];
            panic!("{start:?}...: no answer within {patience:?}: {e}")
        });
        response
    }

    fn get(address: SocketAddr, request: &str) -> String {
        get_within(address, request, Duration::from_secs(5))
    }

    /// The value of the sample `name` (with its labels) in a `/metrics` answer.
    fn sample_value(response: &str, name: &str) -> u64 {
        let line = response
            .lines()
            .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{response}"));
        line[name.len() + 1..].parse().unwrap()
    }

    #[test]
    fn serves_metrics_and_health_over_real_sockets() {
        let live = spawn("127.0.0.1:0".parse().unwrap(), Fixed(true)).unwrap();
        let response = get(
            live,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
        );
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("version=0.0.4"));
        let body = response.split_once("\r\n\r\n").unwrap().1;
        assert!(body.starts_with("cgview_mount_live 1\n"), "{response}");
        let content_length: usize = response
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(content_length, body.len());
        assert!(get(live, "GET /healthz HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
        assert!(get(live, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get(live, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        // Garbage and a client that closes at once cost one connection, not the server.
        assert!(get(live, "\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert!(get(live, "hello\r\n\r\n").starts_with("HTTP/1.1 400"));
        drop(TcpStream::connect(live).unwrap());
        assert!(get(live, "GET /metrics?x=1 HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(get(live, &huge).starts_with("HTTP/1.1 431"));

        let dead = spawn("127.0.0.1:0".parse().unwrap(), Fixed(false)).unwrap();
        let response = get(dead, "GET /healthz HTTP/1.1\r\n\r\n");
        assert!(response.starts_with("HTTP/1.1 503"), "{response}");
        assert!(response.ends_with("not mounted\n"));
    }

    /// Opens `count` connections that send a request head a byte at a time, one byte each per `every`,
    /// until the returned flag is set.
    fn slow_loris(
        address: SocketAddr,
        count: usize,
        every: Duration,
    ) -> (
        Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    ) {
        let streams: Vec<TcpStream> = (0..count)
            .map(|_| {
                // A server that stops accepting fills its backlog: fail then, rather than hang in connect.
                let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))
                    .expect("the server accepts connections");
                // Evicted ones are written to once more, which fails: no signal must end the test.
                let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ");
                stream
            })
            .collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let trickler = std::thread::spawn(move || {
            let mut streams = streams;
            while !stopped.load(Ordering::Relaxed) {
                for stream in &mut streams {
                    let _ = stream.write(b"a");
                }
                std::thread::sleep(every);
            }
        });
        (stop, trickler)
    }

    #[test]
    fn slow_loris_connections_delay_neither_health_nor_metrics() {
        let address = spawn("127.0.0.1:0".parse().unwrap(), Fixed(true)).unwrap();
        let (stop, trickler) = slow_loris(address, 200, Duration::from_millis(100));
        // Let every trickler be accepted and send a few bytes.
        std::thread::sleep(Duration::from_millis(300));
        let mut slowest = Duration::ZERO;
        let mut last_metrics = String::new();
        for _ in 0..5 {
            for path in ["/healthz", "/metrics"] {
                let started = Instant::now();
                let response = get_within(
                    address,
                    &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"),
                    Duration::from_secs(2),
                );
                slowest = slowest.max(started.elapsed());
                assert!(
                    response.starts_with("HTTP/1.1 200 OK"),
                    "{path}: {response}"
                );
                if path == "/metrics" {
                    last_metrics = response;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        trickler.join().unwrap();
        assert!(
            slowest < Duration::from_millis(100),
            "with 200 slow clients an answer took {slowest:?}"
        );
        // The cap held: the tricklers beyond it were closed, not served alongside.
        assert!(
            sample_value(&last_metrics, "cgview_metrics_connections") <= MAX_CONNECTIONS as u64
        );
        // Closed, either way: evicted to make room, or refused while every slot was still held (an evicted
        // connection keeps its slot until its thread ends, which a loaded machine delays).
        let dropped = |reason: &str| {
            sample_value(
                &last_metrics,
                &format!("cgview_metrics_connections_dropped_total{{reason=\"{reason}\"}}"),
            )
        };
        assert!(
            dropped("evicted") + dropped("refused") >= 200 - MAX_CONNECTIONS as u64,
            "{last_metrics}"
        );
    }

    #[test]
    fn trickling_client_is_cut_off_at_the_deadline() {
        let address = spawn("127.0.0.1:0".parse().unwrap(), Fixed(true)).unwrap();
        let mut stream = TcpStream::connect(address).unwrap();
        let connected = Instant::now();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
            .unwrap();
        // A byte every 200 ms: each read the server makes succeeds long before any per-read timeout.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let trickler = {
            let (stop, mut stream) = (stop.clone(), stream.try_clone().unwrap());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) && stream.write_all(b"a").is_ok() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        stream
            .set_read_timeout(Some(REQUEST_DEADLINE + Duration::from_secs(5)))
            .unwrap();
        // The server's close ends this read: end of file, or a reset as it leaves bytes unread.
        let outcome = stream.read(&mut [0; 64]);
        let cut_after = connected.elapsed();
        stop.store(true, Ordering::Relaxed);
        trickler.join().unwrap();
        match outcome {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("the trickler was not cut off: {other:?} after {cut_after:?}"),
        }
        assert!(
            cut_after > REQUEST_DEADLINE - Duration::from_millis(100)
                && cut_after < REQUEST_DEADLINE + Duration::from_secs(1),
            "cut off after {cut_after:?}"
        );
        let metrics = get(address, "GET /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(
            sample_value(
                &metrics,
                "cgview_metrics_connections_dropped_total{reason=\"deadline\"}"
            ),
            1
        );
    }

    #[test]
    fn connections_beyond_the_cap_are_refused_at_once_and_counted() {
        let gate = Arc::new(Gate::default());
        let address = spawn("127.0.0.1:0".parse().unwrap(), gate.clone()).unwrap();
        let scrapes: Vec<_> = (0..MAX_CONNECTIONS)
            .map(|_| {
                std::thread::spawn(move || {
                    get_within(
                        address,
                        "GET /metrics HTTP/1.1\r\n\r\n",
                        Duration::from_secs(20),
                    )
                })
            })
            .collect();
        gate.wait_for_waiting(MAX_CONNECTIONS);

        // Every slot is answering: one more connection is told so at once, not queued behind them.
        let started = Instant::now();
        let mut extra = TcpStream::connect(address).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut response = String::new();
        extra.read_to_string(&mut response).unwrap();
        let took = started.elapsed();
        assert!(response.starts_with("HTTP/1.1 503"), "{response}");
        assert!(
            took < Duration::from_millis(100),
            "the refusal took {took:?}"
        );

        gate.open();
        for scrape in scrapes {
            let response = scrape.join().unwrap();
            assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        }
        let metrics = get(address, "GET /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(
            sample_value(&metrics, "gate_most_waiting"),
            MAX_CONNECTIONS as u64
        );
        assert_eq!(
            sample_value(
                &metrics,
                "cgview_metrics_connections_dropped_total{reason=\"refused\"}"
            ),
            1
        );
    }

    /// An endpoint whose `/metrics` waits until opened, counting how many wait at once.
    #[derive(Default)]
    struct Gate {
        state: std::sync::Mutex<(bool, usize, usize)>,
        changed: Condvar,
    }

    impl Gate {
        fn open(&self) {
            self.state.lock().unwrap().0 = true;
            self.changed.notify_all();
        }

        fn wait_for_waiting(&self, count: usize) {
            let state = self.state.lock().unwrap();
            let (_state, timeout) = self
                .changed
                .wait_timeout_while(state, Duration::from_secs(10), |s| s.1 < count)
                .unwrap();
            assert!(!timeout.timed_out(), "{count} scrapes never arrived");
        }
    }

    impl Endpoint for Arc<Gate> {
        fn metrics(&self) -> String {
            let mut state = self.state.lock().unwrap();
            state.1 += 1;
            state.2 = state.2.max(state.1);
            self.changed.notify_all();
            let mut state = self.changed.wait_while(state, |s| !s.0).unwrap();
            state.1 -= 1;
            format!("gate_most_waiting {}\n", state.2)
        }
        fn health(&self) -> Result<String, String> {
            Ok("live\n".into())
        }
    }
}
