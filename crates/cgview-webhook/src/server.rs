//! HTTPS for the webhook: `POST /mutate` (an AdmissionReview in, [`review`] out), `GET /healthz` and
//! `GET /readyz`, over HTTP/2 (which the API server prefers) and HTTP/1.1.
//!
//! One current-thread tokio runtime: admission traffic is a few requests a second at most. Each connection
//! is a task of its own, so a slow handshake or client never delays another; each review runs on the
//! blocking pool, so a large pod does not stall handshakes, and a review that panicked answers 500
//! instead of dropping the connection.
//!
//! Shutdown (SIGTERM, SIGINT or a [`ShutdownHandle`]): `/readyz` turns 503 at once, so the endpoints
//! controller takes the pod out of the Service, while requests already routed here keep being served for
//! the shutdown delay; then the listener closes and open connections get [`DRAIN_TIMEOUT`] to finish.

use super::policy::InjectionConfig;
use super::review::review;
use super::tls::{self, ReloadingCert, TlsError};
use super::MUTATE_PATH;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes};
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub const HEALTHZ_PATH: &str = "/healthz";
pub const READYZ_PATH: &str = "/readyz";
/// Largest AdmissionReview accepted: the API server caps objects at 3 MiB (etcd's limit), and a review
/// carries the object once more at most (`oldObject` is empty on CREATE).
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// A TLS handshake, an HTTP/1 request head and a request body each get this long: the API server's
/// webhook timeout is 10 s by default, so a slower request has been given up on anyway.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections may take to finish once the listener has closed.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// HTTP/2 pings on idle connections, so a peer that vanished without a FIN does not hold a task forever.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("cannot load the serving certificate")]
    Certificate(#[from] TlsError),
    #[error("cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot set up signal handling")]
    Signals(#[source] std::io::Error),
}

/// What `cgview webhook` serves, and where.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub injection: InjectionConfig,
    /// How long requests are still served after `/readyz` turned 503.
    pub shutdown_delay: Duration,
}

/// Serves until SIGTERM or SIGINT, then shuts down as the module describes.
pub fn run(options: ServeOptions) -> Result<(), WebhookError> {
    Server::bind(options)?.run_until_signal()
}

/// Starts a shutdown from any thread; cloneable. Triggering twice is the same as once.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

/// A webhook with its certificate loaded and its port bound, not yet serving. Binding before serving lets
/// a caller learn the port (when asked for port 0) and fail on a bad certificate or a taken port first.
pub struct Server {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    shutdown_delay: Duration,
    shutdown: ShutdownHandle,
}

/// What request handlers read.
struct Shared {
    injection: InjectionConfig,
    /// Set once shutdown has begun: `/readyz` answers 503 from then on.
    draining: AtomicBool,
}

impl Server {
    pub fn bind(options: ServeOptions) -> Result<Server, WebhookError> {
        let certificate = ReloadingCert::load(&options.tls_cert, &options.tls_key)?;
        let config = tls::server_config(Arc::new(certificate))?;
        let listen_error = |source| WebhookError::Listen {
            address: options.listen,
            source,
        };
        let listener = std::net::TcpListener::bind(options.listen).map_err(listen_error)?;
        // tokio requires it of a listener it adopts.
        listener.set_nonblocking(true).map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        Ok(Server {
            listener,
            local_addr,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            shared: Arc::new(Shared {
                injection: options.injection,
                draining: AtomicBool::new(false),
            }),
            shutdown_delay: options.shutdown_delay,
            shutdown: ShutdownHandle(watch::Sender::new(false)),
        })
    }

    /// The bound address, with the port picked when 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves until the [`ShutdownHandle`] is triggered, then shuts down; blocks the calling thread.
    pub fn run(self) -> Result<(), WebhookError> {
        self.block_on(false)
    }

    /// Serves until SIGTERM, SIGINT or the [`ShutdownHandle`], then shuts down; blocks the calling thread.
    pub fn run_until_signal(self) -> Result<(), WebhookError> {
        self.block_on(true)
    }

    fn block_on(self, signals: bool) -> Result<(), WebhookError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(WebhookError::Runtime)?;
        runtime.block_on(self.serve(signals))
    }

    async fn serve(self, signals: bool) -> Result<(), WebhookError> {
        let listen_error = |source| WebhookError::Listen {
            address: self.local_addr,
            source,
        };
        let listener = TcpListener::from_std(self.listener).map_err(listen_error)?;
        let stop = stop_requested(self.shutdown.0.subscribe(), signals)?;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_KEEP_ALIVE);
        let mut accepting = Accepting {
            listener,
            acceptor: self.acceptor,
            builder: Arc::new(builder),
            shared: self.shared.clone(),
            close: watch::Sender::new(false),
            connections: JoinSet::new(),
        };
        tracing::info!(
            "webhook serving https://{}{MUTATE_PATH}, {HEALTHZ_PATH} and {READYZ_PATH}",
            self.local_addr
        );
        let reason = accepting.until(stop).await;
        self.shared.draining.store(true, Ordering::SeqCst);
        tracing::info!(
            "{reason}: {READYZ_PATH} answers 503; serving {:?} more before closing the listener",
            self.shutdown_delay
        );
        accepting
            .until(tokio::time::sleep(self.shutdown_delay))
            .await;
        accepting.drain().await;
        Ok(())
    }
}

/// The listener and the connections it accepted.
struct Accepting {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shared: Arc<Shared>,
    /// Tells every connection to finish its requests and close.
    close: watch::Sender<bool>,
    connections: JoinSet<()>,
}

impl Accepting {
    /// Accepts connections until `until` completes, and returns its output.
    async fn until<T>(&mut self, until: impl Future<Output = T>) -> T {
        let mut until = std::pin::pin!(until);
        loop {
            tokio::select! {
                output = &mut until => return output,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        self.connections.spawn(connection(
                            tcp,
                            peer,
                            self.acceptor.clone(),
                            self.builder.clone(),
                            self.shared.clone(),
                            self.close.subscribe(),
                        ));
                    }
                    Err(e) => {
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(finished) = self.connections.join_next(), if !self.connections.is_empty() => {
                    note_finished(finished);
                }
            }
        }
    }

    /// Closes the listener, asks every connection to finish, and waits for them up to [`DRAIN_TIMEOUT`].
    async fn drain(self) {
        let Accepting {
            listener,
            close,
            mut connections,
            ..
        } = self;
        drop(listener);
        close.send_replace(true);
        tracing::info!(
            "listener closed; waiting for {} open connections",
            connections.len()
        );
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while let Some(finished) = connections.join_next().await {
                note_finished(finished);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "closing {} connections still open after {DRAIN_TIMEOUT:?}",
                connections.len()
            );
        }
        tracing::info!("webhook stopped");
    }
}

fn note_finished(finished: Result<(), tokio::task::JoinError>) {
    if let Err(e) = finished {
        tracing::error!("a connection task failed: {e}");
    }
}

/// Completes on the handle or, if `signals`, on SIGTERM or SIGINT; says which.
fn stop_requested(
    mut handle: watch::Receiver<bool>,
    signals: bool,
) -> Result<impl Future<Output = &'static str>, WebhookError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut signals = if signals {
        let terminate = signal(SignalKind::terminate()).map_err(WebhookError::Signals)?;
        let interrupt = signal(SignalKind::interrupt()).map_err(WebhookError::Signals)?;
        Some((terminate, interrupt))
    } else {
        None
    };
    Ok(async move {
        let requested = async {
            // The server holds the sender until it returns, so this completes only when triggered.
            let _ = handle.wait_for(|stop| *stop).await;
        };
        match &mut signals {
            Some((terminate, interrupt)) => tokio::select! {
                () = requested => "shutdown requested",
                _ = terminate.recv() => "received SIGTERM",
                _ = interrupt.recv() => "received SIGINT",
            },
            None => {
                requested.await;
                "shutdown requested"
            }
        }
    })
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shared: Arc<Shared>,
    mut close: watch::Receiver<bool>,
) {
    // Requests and responses are small; Nagle's algorithm would only delay them.
    let _ = tcp.set_nodelay(true);
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
    let tls = tokio::select! {
        handshake = handshake => match handshake {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out after {HANDSHAKE_TIMEOUT:?}");
                return;
            }
        },
        // No request has been made on it yet: nothing is lost by dropping it, and a client that never
        // completes its handshake does not hold up the shutdown.
        () = closed(&mut close) => return,
    };
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(respond(request, shared).await) }
    });
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = closed(&mut close) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

/// Completes once connections are told to close.
async fn closed(close: &mut watch::Receiver<bool>) {
    // The sender lives until every connection has been waited for or abandoned, so an error (sender
    // gone) cannot come early.
    let _ = close.wait_for(|close| *close).await;
}

/// Routes one request. Never fails: every problem is a status code.
async fn respond<B>(request: Request<B>, shared: Arc<Shared>) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let probe = matches!(*request.method(), Method::GET | Method::HEAD);
    match request.uri().path() {
        MUTATE_PATH if request.method() == Method::POST => mutate(request, shared).await,
        MUTATE_PATH => method_not_allowed("POST"),
        HEALTHZ_PATH if probe => text(StatusCode::OK, "ok\n"),
        READYZ_PATH if probe => {
            if shared.draining.load(Ordering::SeqCst) {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            } else {
                text(StatusCode::OK, "ok\n")
            }
        }
        HEALTHZ_PATH | READYZ_PATH => method_not_allowed("GET, HEAD"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: this webhook serves POST /mutate, GET /healthz and GET /readyz\n",
        ),
    }
}

async fn mutate<B>(request: Request<B>, shared: Arc<Shared>) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    if !is_json(request.headers().get(CONTENT_TYPE)) {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an AdmissionReview is sent as Content-Type: application/json\n",
        );
    }
    let declared_length = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES).collect();
    let body = match tokio::time::timeout(BODY_TIMEOUT, body).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Ok(Err(e)) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request body: {e}\n"),
            )
        }
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time\n",
            )
        }
    };
    let request_bytes = body.len();
    let answered = tokio::task::spawn_blocking(move || review(&shared.injection, &body)).await;
    let reply = match answered {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!("the review of a {request_bytes}-byte request failed: {e}");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the review failed; see the webhook's log\n",
            );
        }
    };
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    tracing::debug!(
        status = status.as_u16(),
        request_bytes,
        response_bytes = reply.body.len(),
        elapsed = ?started.elapsed(),
        "review answered"
    );
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json"))
}

fn too_large() -> Response<Full<Bytes>> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("an AdmissionReview is at most {MAX_BODY_BYTES} bytes\n"),
    )
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method not allowed; use {allow}\n"),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            injection: InjectionConfig::default(),
            draining: AtomicBool::new(false),
        })
    }

    fn request(
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            builder = builder.header(CONTENT_TYPE, content_type);
        }
        builder.body(Full::new(Bytes::from(body))).unwrap()
    }

    async fn status(request: Request<Full<Bytes>>, shared: Arc<Shared>) -> StatusCode {
        respond(request, shared).await.status()
    }

    #[tokio::test]
    async fn respond_routes_probes_and_refuses_other_paths_and_methods() {
        let shared = shared();
        for path in [HEALTHZ_PATH, READYZ_PATH] {
            assert_eq!(
                status(request(Method::GET, path, None, vec![]), shared.clone()).await,
                StatusCode::OK
            );
            let response = respond(request(Method::POST, path, None, vec![]), shared.clone()).await;
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(response.headers()[ALLOW], "GET, HEAD");
        }
        let response = respond(
            request(Method::GET, MUTATE_PATH, None, vec![]),
            shared.clone(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "POST");
        assert_eq!(
            status(
                request(Method::GET, "/mutate/x", None, vec![]),
                shared.clone()
            )
            .await,
            StatusCode::NOT_FOUND
        );
        shared.draining.store(true, Ordering::SeqCst);
        assert_eq!(
            status(
                request(Method::GET, READYZ_PATH, None, vec![]),
                shared.clone()
            )
            .await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(request(Method::GET, HEALTHZ_PATH, None, vec![]), shared).await,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn mutate_refuses_other_media_types() {
        for content_type in [None, Some("text/plain"), Some("application/jsonx")] {
            let request = request(Method::POST, MUTATE_PATH, content_type, b"{}".to_vec());
            assert_eq!(
                status(request, shared()).await,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type:?}"
            );
        }
    }

    /// A body of `n` one-MiB chunks that does not declare its length.
    struct Chunks(usize);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
            if self.0 == 0 {
                return std::task::Poll::Ready(None);
            }
            self.0 -= 1;
            let chunk = Bytes::from(vec![b' '; 1 << 20]);
            std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
        }
    }

    #[tokio::test]
    async fn mutate_refuses_bodies_over_the_limit() {
        let mut declared = request(
            Method::POST,
            MUTATE_PATH,
            Some("application/json"),
            b"{}".to_vec(),
        );
        declared
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(MAX_BODY_BYTES + 1));
        assert_eq!(
            status(declared, shared()).await,
            StatusCode::PAYLOAD_TOO_LARGE
        );

        // A body that does not declare its length is cut off while it is read.
        let streamed = Request::builder()
            .method(Method::POST)
            .uri(MUTATE_PATH)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(Chunks((MAX_BODY_BYTES >> 20) + 1))
            .unwrap();
        assert_eq!(
            respond(streamed, shared()).await.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
