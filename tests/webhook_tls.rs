//! The webhook's HTTPS server, in-process on 127.0.0.1, with certificates from `cgview webhook certs`'
//! generator and `curl` as the client: real TLS with hostname verification (`--resolve` maps the
//! Service's name to the loopback address), HTTP/1.1 and HTTP/2, certificate rotation through a
//! kubelet-style `..data` symlink swap, and the shutdown sequence.

use cgview::webhook::certs::{self, CertRequest, Generated};
use cgview::webhook::policy::InjectionConfig;
use cgview::webhook::server::{ServeOptions, Server, ShutdownHandle, WebhookError};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// The name the API server uses for the Service, and the certificate's name the tests verify.
const HOST: &str = "cgview-webhook.cgview.svc";
/// curl's exit code for a certificate that does not verify (CURLE_PEER_FAILED_VERIFICATION).
const CURL_PEER_FAILED_VERIFICATION: i32 = 60;
/// curl's exit code for a refused connection (CURLE_COULDNT_CONNECT).
const CURL_COULDNT_CONNECT: i32 = 7;
/// The reloader looks at the files once a second; a new pair must be served well within this.
const ROTATION_DEADLINE: Duration = Duration::from_secs(3);

const UID: &str = "7c9e5a1f-3b2d-4e8a-9f60-1d2c3b4a5e6f";

fn review_body() -> String {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": UID,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "web",
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "admin"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]},
            },
        },
    })
    .to_string()
}

fn generate() -> Generated {
    certs::generate(&CertRequest::default(), SystemTime::now()).unwrap()
}

/// A Secret volume as the kubelet lays it out: `tls.crt -> ..data/tls.crt`, `..data -> ..<version>`,
/// updated by writing a new version directory and renaming a new `..data` link over the old one.
struct SecretVolume {
    dir: tempfile::TempDir,
    versions: usize,
}

impl SecretVolume {
    fn new(cert_pem: &str, key_pem: &str) -> SecretVolume {
        let mut volume = SecretVolume {
            dir: tempfile::tempdir().unwrap(),
            versions: 0,
        };
        volume.publish(cert_pem, key_pem);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), volume.dir.path().join(name))
                .unwrap();
        }
        volume
    }

    fn publish(&mut self, cert_pem: &str, key_pem: &str) {
        self.versions += 1;
        let version = format!("..v{}", self.versions);
        let path = self.dir.path().join(&version);
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("tls.crt"), cert_pem).unwrap();
        std::fs::write(path.join("tls.key"), key_pem).unwrap();
        let link = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&version, &link).unwrap();
        std::fs::rename(&link, self.dir.path().join("..data")).unwrap();
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }
}

/// A CA certificate in a file, for curl's `--cacert`.
struct TrustedCa {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl TrustedCa {
    fn new(generated: &Generated) -> TrustedCa {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, &generated.ca_pem).unwrap();
        TrustedCa { _dir: dir, path }
    }
}

struct Running {
    address: SocketAddr,
    shutdown: ShutdownHandle,
    thread: JoinHandle<Result<(), WebhookError>>,
}

impl Running {
    fn start(volume: &SecretVolume, shutdown_delay: Duration) -> Running {
        let server = Server::bind(ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls_cert: volume.cert(),
            tls_key: volume.key(),
            injection: InjectionConfig::default(),
            shutdown_delay,
        })
        .unwrap();
        let address = server.local_addr();
        assert_ne!(address.port(), 0);
        let shutdown = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run());
        Running {
            address,
            shutdown,
            thread,
        }
    }

    /// Shuts the server down and checks that `run` returned `Ok` within `within`.
    fn stop(self, within: Duration) {
        self.shutdown.trigger();
        let deadline = Instant::now() + within;
        while !self.thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "run did not return within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.thread.join().unwrap().unwrap();
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    http_version: String,
    body: String,
}

/// One request through curl, trusting only `ca`; `Err` is curl's exit code and message.
fn curl(
    address: SocketAddr,
    ca: &TrustedCa,
    method: &str,
    path: &str,
    extra: &[&str],
) -> Result<Answer, (i32, String)> {
    let url = format!("https://{HOST}:{}{path}", address.port());
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10", "--cacert"])
        .arg(&ca.path)
        .arg("--resolve")
        .arg(format!("{HOST}:{}:{}", address.port(), address.ip()))
        .args(["--request", method])
        .args(["--write-out", "\n%{http_code} %{http_version}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    if !output.status.success() {
        return Err((
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    let stdout = String::from_utf8(output.stdout).unwrap();
    let (body, trailer) = stdout.rsplit_once('\n').unwrap();
    let (status, http_version) = trailer.split_once(' ').unwrap();
    Ok(Answer {
        status: status.parse().unwrap(),
        http_version: http_version.to_owned(),
        body: body.to_owned(),
    })
}

fn get(address: SocketAddr, ca: &TrustedCa, path: &str) -> Result<Answer, (i32, String)> {
    curl(address, ca, "GET", path, &[])
}

fn post_json(
    address: SocketAddr,
    ca: &TrustedCa,
    body: &str,
    http: &str,
) -> Result<Answer, (i32, String)> {
    curl(
        address,
        ca,
        "POST",
        "/mutate",
        &[
            http,
            "--header",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ],
    )
}

#[test]
fn probes_answer_ok_over_verified_tls() {
    let generated = generate();
    let volume = SecretVolume::new(&generated.cert_pem, &generated.key_pem);
    let ca = TrustedCa::new(&generated);
    let server = Running::start(&volume, Duration::ZERO);
    // A client that connects and never starts its handshake holds no one else up.
    let _stuck = TcpStream::connect(server.address).unwrap();
    for path in ["/healthz", "/readyz"] {
        let answer = get(server.address, &ca, path).unwrap();
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert_eq!(answer.body, "ok\n");
    }
    server.stop(Duration::from_secs(5));
}

#[test]
fn mutate_answers_a_review_over_http1_and_http2() {
    let generated = generate();
    let volume = SecretVolume::new(&generated.cert_pem, &generated.key_pem);
    let ca = TrustedCa::new(&generated);
    let server = Running::start(&volume, Duration::ZERO);
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let answer = post_json(server.address, &ca, &review_body(), flag).unwrap();
        assert_eq!(answer.status, 200, "{flag}: {answer:?}");
        assert_eq!(answer.http_version, version, "{flag}");
        let review: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["kind"], "AdmissionReview");
        let response = &review["response"];
        assert_eq!(response["uid"], UID, "{flag}: {review}");
        assert_eq!(response["allowed"], true, "{flag}: {review}");
        assert_eq!(response["patchType"], "JSONPatch", "{flag}: {review}");
    }
    server.stop(Duration::from_secs(5));
}

#[test]
fn mutate_refuses_a_body_that_is_not_json() {
    let generated = generate();
    let volume = SecretVolume::new(&generated.cert_pem, &generated.key_pem);
    let ca = TrustedCa::new(&generated);
    let server = Running::start(&volume, Duration::ZERO);
    for flag in ["--http1.1", "--http2"] {
        let answer = post_json(server.address, &ca, "this is not json", flag).unwrap();
        assert_eq!(answer.status, 400, "{flag}: {answer:?}");
    }
    server.stop(Duration::from_secs(5));
}

#[test]
fn wrong_methods_and_paths_get_405_and_404() {
    let generated = generate();
    let volume = SecretVolume::new(&generated.cert_pem, &generated.key_pem);
    let ca = TrustedCa::new(&generated);
    let server = Running::start(&volume, Duration::ZERO);
    let answer = curl(server.address, &ca, "GET", "/mutate", &["--include"]).unwrap();
    assert_eq!(answer.status, 405, "{answer:?}");
    assert!(
        answer
            .body
            .to_ascii_lowercase()
            .contains("\nallow: post\r\n"),
        "{answer:?}"
    );
    let answer = curl(server.address, &ca, "DELETE", "/healthz", &[]).unwrap();
    assert_eq!(answer.status, 405, "{answer:?}");
    let answer = get(server.address, &ca, "/validate").unwrap();
    assert_eq!(answer.status, 404, "{answer:?}");
    server.stop(Duration::from_secs(5));
}

#[test]
fn a_client_trusting_another_ca_fails_the_handshake() {
    let generated = generate();
    let volume = SecretVolume::new(&generated.cert_pem, &generated.key_pem);
    let other = TrustedCa::new(&generate());
    let server = Running::start(&volume, Duration::ZERO);
    let (code, message) = get(server.address, &other, "/healthz").unwrap_err();
    assert_eq!(code, CURL_PEER_FAILED_VERIFICATION, "{message}");
    // The failed handshake cost that connection only.
    let ca = TrustedCa::new(&generated);
    assert_eq!(get(server.address, &ca, "/healthz").unwrap().status, 200);
    server.stop(Duration::from_secs(5));
}

/// Polls until a client trusting `ca` gets through, for at most [`ROTATION_DEADLINE`].
fn wait_until_trusted(address: SocketAddr, ca: &TrustedCa) -> Duration {
    let started = Instant::now();
    loop {
        match get(address, ca, "/healthz") {
            Ok(answer) => {
                assert_eq!(answer.status, 200);
                return started.elapsed();
            }
            Err((CURL_PEER_FAILED_VERIFICATION, _)) if started.elapsed() < ROTATION_DEADLINE => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err((code, message)) => panic!(
                "not trusted after {:?}: curl exit {code}: {message}",
                started.elapsed()
            ),
        }
    }
}

#[test]
fn a_rotated_pair_is_served_without_restart_and_garbage_is_not() {
    let first = generate();
    let second = generate();
    let mut volume = SecretVolume::new(&first.cert_pem, &first.key_pem);
    let (first_ca, second_ca) = (TrustedCa::new(&first), TrustedCa::new(&second));
    let server = Running::start(&volume, Duration::ZERO);
    assert_eq!(
        get(server.address, &first_ca, "/healthz").unwrap().status,
        200
    );

    // A certificate that does not parse, published with the next key: the old pair stays served across
    // several checks.
    volume.publish("-----BEGIN CERTIFICATE-----\ngarbage\n", &second.key_pem);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(
            get(server.address, &first_ca, "/healthz").unwrap().status,
            200
        );
        let (code, message) = get(server.address, &second_ca, "/healthz").unwrap_err();
        assert_eq!(code, CURL_PEER_FAILED_VERIFICATION, "{message}");
    }

    volume.publish(&second.cert_pem, &second.key_pem);
    let took = wait_until_trusted(server.address, &second_ca);
    assert!(took < ROTATION_DEADLINE, "{took:?}");
    let (code, message) = get(server.address, &first_ca, "/healthz").unwrap_err();
    assert_eq!(code, CURL_PEER_FAILED_VERIFICATION, "{message}");
    let answer = post_json(server.address, &second_ca, &review_body(), "--http2").unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        !server.thread.is_finished(),
        "the server restarted or stopped"
    );
    server.stop(Duration::from_secs(5));
}

#[test]
fn shutdown_turns_readyz_503_then_closes_the_listener_and_returns() {
    let delay = Duration::from_secs(2);
    let generated = generate();
    let volume = SecretVolume::new(&generated.cert_pem, &generated.key_pem);
    let ca = TrustedCa::new(&generated);
    let server = Running::start(&volume, delay);
    assert_eq!(get(server.address, &ca, "/readyz").unwrap().status, 200);
    // Connected but silent through the whole shutdown: it must not hold the server up.
    let _stuck = TcpStream::connect(server.address).unwrap();

    server.shutdown.trigger();
    let triggered = Instant::now();
    let answer = get(server.address, &ca, "/readyz").unwrap();
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(get(server.address, &ca, "/healthz").unwrap().status, 200);
    let answer = post_json(server.address, &ca, &review_body(), "--http2").unwrap();
    assert_eq!(
        answer.status, 200,
        "reviews are still served during the delay"
    );
    assert!(
        triggered.elapsed() < delay,
        "the checks above took too long"
    );

    let refused = loop {
        match get(server.address, &ca, "/readyz") {
            Ok(answer) => assert_eq!(answer.status, 503),
            Err((CURL_COULDNT_CONNECT, _)) => break triggered.elapsed(),
            // Connected in the moment the listener closed: the kernel resets what its backlog held, which
            // curl reports as a failed handshake, or as a broken pipe or reset while sending (HTTP/2).
            Err((_, message)) if message.contains("reset") || message.contains("Broken pipe") => {
                break triggered.elapsed()
            }
            Err((code, message)) => panic!("curl exit {code}: {message}"),
        }
        assert!(triggered.elapsed() < delay + Duration::from_secs(3));
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(refused >= delay, "the listener closed after {refused:?}");
    let address = server.address;
    server.stop(Duration::from_secs(3));
    TcpStream::connect(address).unwrap_err();
}
