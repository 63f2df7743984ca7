//! The plugin's connection to the runtime: connect, serve the plugin service, register, answer until the
//! connection ends, and connect again with back-off (the runtime restarted) for as long as asked.
//!
//! One thread does it all: it reads the socket, answers each request on connection 1 as it arrives
//! (answers are decisions in memory, never I/O that could make the runtime wait past its 2 s), and
//! watches connection 2 for the answer to `RegisterPlugin`. Requests on connection 1 are served from the
//! first byte, because a runtime may send `Configure` before it answers the registration.

use crate::counters::ErrorKind;
use crate::handler::{status, After, Handler};
use crate::proto::{RegisterPluginRequest, Request, Response, Status};
use crate::protocol::{self, code};
use crate::wire::{frames, Demux, Event, Header};
use prost::Message;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How the plugin reaches the runtime.
#[derive(Debug)]
pub enum Endpoint {
    /// The runtime's socket: connected to, and again after every loss.
    Socket(PathBuf),
    /// A connection the runtime made and passed at launch (`NRI_PLUGIN_SOCKET`): served once; when it
    /// ends the runtime launches the plugin anew.
    Inherited(UnixStream),
}

impl Endpoint {
    /// The inherited connection `NRI_PLUGIN_SOCKET` names, if the variable is set. Call once, before
    /// anything else could take the descriptor.
    pub fn from_env() -> Result<Option<Endpoint>, String> {
        let Ok(value) = std::env::var(protocol::PLUGIN_SOCKET_ENV) else {
            return Ok(None);
        };
        let fd: RawFd = value.trim().parse().map_err(|_| {
            format!(
                "{}={value:?} is not a descriptor number",
                protocol::PLUGIN_SOCKET_ENV
            )
        })?;
        if fd < 3 {
            return Err(format!(
                "{}={fd} names a standard stream, not the runtime's socket",
                protocol::PLUGIN_SOCKET_ENV
            ));
        }
        // SAFETY: F_GETFD only reads the descriptor's flags; it tells an open descriptor from a closed one.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(format!(
                "{}={fd}: no such open descriptor ({})",
                protocol::PLUGIN_SOCKET_ENV,
                io::Error::last_os_error()
            ));
        }
        // SAFETY: the descriptor is open (checked above) and was passed by the runtime for the plugin's
        // connection alone; nothing else in this process owns it, and this is called once at start.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let file = std::fs::File::from(owned);
        let is_socket = file
            .metadata()
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false);
        if !is_socket {
            return Err(format!(
                "{}={fd} is not a socket",
                protocol::PLUGIN_SOCKET_ENV
            ));
        }
        Ok(Some(Endpoint::Inherited(UnixStream::from(OwnedFd::from(
            file,
        )))))
    }
}

/// The back-off between attempts to reach the runtime: from 100 ms, doubling, at most 5 s.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MOST: Duration = Duration::from_secs(5);

    pub fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MOST);
        wait
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// How one connection ended.
#[derive(Debug)]
pub enum Ended {
    /// The runtime closed it (or asked the plugin to shut down).
    ByRuntime,
    /// The plugin was asked to stop.
    Stopped,
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot connect to the NRI socket {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("the runtime did not answer RegisterPlugin within {0:?}")]
    RegistrationTimeout(Duration),
    #[error("the runtime refused the registration: {0}")]
    RegistrationRefused(String),
    #[error("the connection to the runtime failed: {0}")]
    Io(#[from] io::Error),
}

/// How often a blocked read wakes to look at the stop flag and the registration deadline.
const POLL: Duration = Duration::from_millis(200);

/// Serves `endpoint` until `stop` is set: a socket endpoint is reconnected after every loss, with
/// back-off; an inherited one is served once.
pub fn run(handler: &Handler, endpoint: Endpoint, stop: &AtomicBool) -> Result<(), SessionError> {
    match endpoint {
        Endpoint::Inherited(stream) => serve(handler, stream, stop).map(|_| ()),
        Endpoint::Socket(path) => {
            let mut backoff = Backoff::new();
            let mut failing_since: Option<Instant> = None;
            while !stop.load(Ordering::Relaxed) {
                let result = UnixStream::connect(&path)
                    .map_err(|source| SessionError::Connect {
                        path: path.clone(),
                        source,
                    })
                    .and_then(|stream| serve(handler, stream, stop));
                match result {
                    Ok(Ended::Stopped) => break,
                    Ok(Ended::ByRuntime) => {
                        tracing::warn!(
                            "the runtime closed the NRI connection; connecting again to {}",
                            path.display()
                        );
                        backoff.reset();
                        failing_since = None;
                    }
                    Err(error) => {
                        let kind = match &error {
                            SessionError::Connect { .. } => ErrorKind::Connect,
                            SessionError::RegistrationTimeout(_)
                            | SessionError::RegistrationRefused(_) => ErrorKind::Register,
                            SessionError::Io(_) => ErrorKind::ConnectionLost,
                        };
                        handler.counters().record_error(kind);
                        match failing_since {
                            None => {
                                tracing::warn!("{error}; retrying with back-off");
                                failing_since = Some(Instant::now());
                            }
                            Some(since) => {
                                tracing::debug!(
                                    "{error} (failing for {:.0} s)",
                                    since.elapsed().as_secs_f64()
                                )
                            }
                        }
                    }
                }
                sleep_unless_stopped(backoff.next_wait(), stop);
            }
            Ok(())
        }
    }
}

fn sleep_unless_stopped(wait: Duration, stop: &AtomicBool) {
    let until = Instant::now() + wait;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(POLL));
    }
}

/// Serves one connection: registers, then answers until it ends.
pub fn serve(
    handler: &Handler,
    stream: UnixStream,
    stop: &AtomicBool,
) -> Result<Ended, SessionError> {
    let result = serve_inner(handler, &stream, stop);
    handler.counters().set_connected(false);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    result
}

fn serve_inner(
    handler: &Handler,
    stream: &UnixStream,
    stop: &AtomicBool,
) -> Result<Ended, SessionError> {
    stream.set_read_timeout(Some(POLL))?;
    // A runtime that stops reading must not block the plugin forever on a write either.
    stream.set_write_timeout(Some(protocol::DEFAULT_REQUEST_TIMEOUT * 5))?;
    let mut writer = stream.try_clone()?;
    let mut reader = stream;
    let config = handler.config();
    let register = Request {
        service: protocol::RUNTIME_SERVICE.to_owned(),
        method: protocol::METHOD_REGISTER_PLUGIN.to_owned(),
        payload: RegisterPluginRequest {
            plugin_name: config.name.clone(),
            plugin_idx: config.index.clone(),
            nri_version: protocol::NRI_VERSION.to_owned(),
        }
        .encode_to_vec(),
        timeout_nano: protocol::DEFAULT_REGISTRATION_TIMEOUT.as_nanos() as i64,
        metadata: Vec::new(),
    };
    let register_stream = protocol::TTRPC_FIRST_CLIENT_STREAM;
    writer.write_all(
        &frames(
            protocol::RUNTIME_SERVICE_CONN,
            register_stream,
            protocol::TTRPC_REQUEST,
            &register.encode_to_vec(),
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
    )?;
    let registration_deadline = Instant::now() + protocol::DEFAULT_REGISTRATION_TIMEOUT;
    let mut registered = false;
    let mut demux = Demux::new();
    let mut events = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(Ended::Stopped);
        }
        if !registered && Instant::now() > registration_deadline {
            return Err(SessionError::RegistrationTimeout(
                protocol::DEFAULT_REGISTRATION_TIMEOUT,
            ));
        }
        let read = match reader.read(&mut buffer) {
            Ok(0) => return Ok(Ended::ByRuntime),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(e.into()),
        };
        demux.push(&buffer[..read], &mut events);
        for event in events.drain(..) {
            match event {
                Event::Message { conn, header, body } => match conn {
                    protocol::PLUGIN_SERVICE_CONN => {
                        if header.kind != protocol::TTRPC_REQUEST {
                            handler.counters().record_error(ErrorKind::BadRequest);
                            tracing::warn!(
                                kind = header.kind,
                                "a ttrpc message that is not a request on the plugin's connection; ignored"
                            );
                            continue;
                        }
                        let (reply, after) = answer(handler, &body);
                        respond(&mut writer, header, reply)?;
                        if after == After::Shutdown {
                            return Ok(Ended::ByRuntime);
                        }
                    }
                    _ => {
                        if header.kind == protocol::TTRPC_RESPONSE
                            && header.stream == register_stream
                            && !registered
                        {
                            registration_result(&body)?;
                            registered = true;
                            handler.counters().set_connected(true);
                            handler.counters().record_registration();
                            tracing::info!(
                                name = %config.name,
                                index = %config.index,
                                "the NRI plugin is registered with the runtime"
                            );
                        } else {
                            tracing::debug!(
                                stream = header.stream,
                                kind = header.kind,
                                "unexpected message on the runtime's connection; ignored"
                            );
                        }
                    }
                },
                Event::Oversized { conn, header } => {
                    handler.counters().record_error(ErrorKind::Oversized);
                    tracing::warn!(
                        conn,
                        stream = header.stream,
                        length = header.length,
                        "a ttrpc message longer than the protocol's 4 MiB was skipped"
                    );
                    if conn == protocol::PLUGIN_SERVICE_CONN
                        && header.kind == protocol::TTRPC_REQUEST
                    {
                        respond(
                            &mut writer,
                            header,
                            Err(status(
                                code::RESOURCE_EXHAUSTED,
                                format!(
                                    "message length {} exceeds the maximum message size of {}",
                                    header.length,
                                    protocol::TTRPC_MAX_MESSAGE
                                ),
                            )),
                        )?;
                    }
                }
                Event::Dropped { conn, bytes } => {
                    tracing::debug!(
                        conn,
                        bytes,
                        "multiplexer frames for an unknown connection were dropped"
                    );
                }
            }
        }
    }
}

/// Decodes a ttrpc request and lets the handler answer it.
fn answer(handler: &Handler, body: &[u8]) -> (Result<Vec<u8>, Status>, After) {
    let request = match Request::decode(body) {
        Ok(request) => request,
        Err(e) => {
            handler.counters().record_error(ErrorKind::BadRequest);
            tracing::warn!("a ttrpc request that does not decode: {e}");
            return (
                Err(status(
                    code::INVALID_ARGUMENT,
                    format!("cannot decode the ttrpc request: {e}"),
                )),
                After::Continue,
            );
        }
    };
    if request.service != protocol::PLUGIN_SERVICE {
        handler.counters().record_error(ErrorKind::BadRequest);
        return (
            Err(status(
                code::UNIMPLEMENTED,
                format!(
                    "service {} is not served here (this is {})",
                    request.service,
                    protocol::PLUGIN_SERVICE
                ),
            )),
            After::Continue,
        );
    }
    handler.handle(&request.method, &request.payload)
}

fn respond(
    writer: &mut UnixStream,
    request: Header,
    reply: Result<Vec<u8>, Status>,
) -> Result<(), SessionError> {
    let response = match reply {
        Ok(payload) => Response {
            status: Some(Status {
                code: code::OK,
                message: String::new(),
            }),
            payload,
        },
        Err(status) => Response {
            status: Some(status),
            payload: Vec::new(),
        },
    };
    let bytes = match frames(
        protocol::PLUGIN_SERVICE_CONN,
        request.stream,
        protocol::TTRPC_RESPONSE,
        &response.encode_to_vec(),
    ) {
        Ok(bytes) => bytes,
        Err(too_long) => frames(
            protocol::PLUGIN_SERVICE_CONN,
            request.stream,
            protocol::TTRPC_RESPONSE,
            &Response {
                status: Some(status(code::RESOURCE_EXHAUSTED, too_long.to_string())),
                payload: Vec::new(),
            }
            .encode_to_vec(),
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
    };
    writer.write_all(&bytes)?;
    Ok(())
}

fn registration_result(body: &[u8]) -> Result<(), SessionError> {
    let response = Response::decode(body).map_err(|e| {
        SessionError::RegistrationRefused(format!("its answer does not decode: {e}"))
    })?;
    match response.status {
        Some(status) if status.code != code::OK => Err(SessionError::RegistrationRefused(format!(
            "code {}: {}",
            status.code, status.message
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_seconds_and_resets() {
        let mut backoff = Backoff::new();
        let waits: Vec<u64> = (0..8)
            .map(|_| backoff.next_wait().as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), Duration::from_millis(100));
    }
}
