//! The `--metrics-addr` endpoint: `GET /metrics` (Prometheus text) and `GET /healthz` (whether the mount
//! is live), over plain HTTP/1.1 on a thread of its own. One request per connection; anything else gets a
//! 404 or 405. Scrapes are rare and tiny, so no HTTP library is pulled in for them.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// What the endpoint serves, asked at request time.
pub trait Endpoint: Send + Sync + 'static {
    fn metrics(&self) -> String;
    /// `Ok(text)` while the mount is live, `Err(text)` otherwise.
    fn health(&self) -> Result<String, String>;
}

/// A request line and its headers may take this long to arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request head read (request line and headers).
const MAX_HEAD: usize = 8 * 1024;

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

    /// Serves `endpoint` on a background thread.
    pub fn serve(self, endpoint: impl Endpoint) -> io::Result<()> {
        let listener = self.0;
        std::thread::Builder::new()
            .name("cgview-metrics".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    match stream {
                        Ok(stream) => {
                            if let Err(e) = answer(stream, &endpoint) {
                                tracing::debug!("metrics request: {e}");
                            }
                        }
                        Err(e) => tracing::debug!("metrics accept: {e}"),
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

fn answer(stream: TcpStream, endpoint: &impl Endpoint) -> io::Result<()> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?).take(MAX_HEAD as u64);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers so the client sees its request consumed.
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let (status, content_type, body) = route(&request_line, endpoint);
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// The response for a request line: (status, content type, body).
fn route(request_line: &str, endpoint: &impl Endpoint) -> (&'static str, &'static str, String) {
    let mut parts = request_line.split_ascii_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    const TEXT: &str = "text/plain; charset=utf-8";
    match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            endpoint.metrics(),
        ),
        ("GET", "/healthz") => match endpoint.health() {
            Ok(text) => ("200 OK", TEXT, text),
            Err(text) => ("503 Service Unavailable", TEXT, text),
        },
        (_, "/metrics" | "/healthz") => ("405 Method Not Allowed", TEXT, "GET only\n".into()),
        _ => ("404 Not Found", TEXT, "try /metrics or /healthz\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn get(address: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
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
        assert!(
            response.ends_with("\r\n\r\ncgview_mount_live 1\n"),
            "{response}"
        );
        assert!(get(live, "GET /healthz HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
        assert!(get(live, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get(live, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        // Garbage and a client that closes at once cost one connection, not the server.
        assert!(get(live, "\r\n\r\n").starts_with("HTTP/1.1 404"));
        drop(TcpStream::connect(live).unwrap());
        assert!(get(live, "GET /metrics?x=1 HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));

        let dead = spawn("127.0.0.1:0".parse().unwrap(), Fixed(false)).unwrap();
        let response = get(dead, "GET /healthz HTTP/1.1\r\n\r\n");
        assert!(response.starts_with("HTTP/1.1 503"), "{response}");
        assert!(response.ends_with("not mounted\n"));
    }
}
