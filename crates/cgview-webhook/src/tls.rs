//! The serving certificate, read from a PEM certificate chain and a PEM key and reloaded when those files
//! change, without a restart.
//!
//! Kubernetes updates a mounted Secret by swapping a `..data` symlink, cert-manager rotates the Secret
//! weeks before expiry, and someone copying files by hand leaves the pair mismatched for a moment. So a
//! change is noticed by the identity and times of both files as reached through their paths (symlinks
//! followed), a pair that fails to load or whose key does not match its certificate is never served (the
//! previous pair stays, with one warning per change), and a pair that failed is retried at the next check
//! in case it was caught half-written.
//!
//! The check runs in the handshake, at most once per [`CHECK_INTERVAL`]: two `stat`s are cheaper than a
//! timer task, and the files are read only when their stamps change. Loading takes a millisecond and
//! happens once per rotation.

use parking_lot::Mutex;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the files are looked at, at most.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a PEM certificate chain", path.display())]
    CertificatePem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{} holds no certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} is not a PEM private key", path.display())]
    KeyPem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the key in {} cannot serve the certificate in {}", key.display(), cert.display())]
    Key {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot configure TLS")]
    Config(#[source] rustls::Error),
}

/// The crypto provider every TLS object of the webhook uses: ring, which builds without cmake or clang.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server configuration serving `certificate`, offering HTTP/2 then HTTP/1.1.
pub fn server_config(certificate: Arc<ReloadingCert>) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(certificate.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A certificate and key served from two files and reloaded when they change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    check_interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    served: Arc<CertifiedKey>,
    /// The files' stamps taken before the served pair was read: a change made while reading shows as a
    /// new stamp at the next check, never as a stamp that hides new content.
    served_stamp: PairStamp,
    checked_at: Instant,
    /// What the last warning was about (`None` inside: the files could not be examined), so a bad pair
    /// is reported once, not at every check.
    warned_about: Option<Option<PairStamp>>,
}

/// What identifies one version of a file: a rename or a symlink swap changes the inode, an edit in place
/// the size or times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

type PairStamp = [FileStamp; 2];

impl ReloadingCert {
    /// Loads the pair; an error names the file and what is wrong with it.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<ReloadingCert, TlsError> {
        let provider = provider();
        let served_stamp = pair_stamp(cert_path, key_path)?;
        let served = load_pair(cert_path, key_path, &provider)?;
        tracing::info!(
            cert = %cert_path.display(),
            not_after = %describe_not_after(&served),
            "serving certificate loaded"
        );
        Ok(ReloadingCert {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            check_interval: CHECK_INTERVAL,
            state: Mutex::new(State {
                served: Arc::new(served),
                served_stamp,
                checked_at: Instant::now(),
                warned_about: None,
            }),
        })
    }

    /// The pair to serve now, after looking at the files if the last look is old enough.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock();
        if state.checked_at.elapsed() >= self.check_interval {
            self.refresh(&mut state);
            state.checked_at = Instant::now();
        }
        state.served.clone()
    }

    fn refresh(&self, state: &mut State) {
        let stamp = pair_stamp(&self.cert_path, &self.key_path);
        let observed = stamp.as_ref().ok().copied();
        if observed == Some(state.served_stamp) {
            state.warned_about = None;
            return;
        }
        let loaded = stamp.and_then(|stamp| {
            load_pair(&self.cert_path, &self.key_path, &self.provider).map(|pair| (stamp, pair))
        });
        match loaded {
            Ok((stamp, pair)) => {
                tracing::info!(
                    cert = %self.cert_path.display(),
                    not_after = %describe_not_after(&pair),
                    "serving certificate reloaded"
                );
                state.served = Arc::new(pair);
                state.served_stamp = stamp;
                state.warned_about = None;
            }
            Err(e) => {
                if state.warned_about != Some(observed) {
                    tracing::warn!(
                        "still serving the previous certificate: {}",
                        cgview_core::error_chain(&e)
                    );
                    state.warned_about = Some(observed);
                }
            }
        }
    }

    #[cfg(test)]
    fn checking_every(mut self, interval: Duration) -> ReloadingCert {
        self.check_interval = interval;
        self
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn pair_stamp(cert_path: &Path, key_path: &Path) -> Result<PairStamp, TlsError> {
    Ok([file_stamp(cert_path)?, file_stamp(key_path)?])
}

fn file_stamp(path: &Path) -> Result<FileStamp, TlsError> {
    let metadata = std::fs::metadata(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(FileStamp {
        dev: metadata.dev(),
        ino: metadata.ino(),
        size: metadata.size(),
        mtime: (metadata.mtime(), metadata.mtime_nsec()),
        ctime: (metadata.ctime(), metadata.ctime_nsec()),
    })
}

fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::CertificatePem {
            path: cert_path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key =
        PrivateKeyDer::from_pem_slice(&read(key_path)?).map_err(|source| TlsError::KeyPem {
            path: key_path.to_owned(),
            source,
        })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Key {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        source,
    })
}

fn describe_not_after(pair: &CertifiedKey) -> String {
    pair.end_entity_cert()
        .ok()
        .and_then(|der| not_after(der))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The end of a DER certificate's validity as `YYYY-MM-DDTHH:MM:SSZ`, or `None` if the bytes are not
/// shaped like a certificate. Walks only the few fields before `validity`; rustls has already checked the
/// certificate parses when this runs, so this only renders the date for the log.
fn not_after(der: &[u8]) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0;
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    let (tag, certificate, _) = der_element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = der_element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = der_element(rest)?.2;
    }
    // serialNumber, signature, issuer
    for _ in 0..3 {
        rest = der_element(rest)?.2;
    }
    let (tag, validity, _) = der_element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, _, after_not_before) = der_element(validity)?;
    let (tag, time, _) = der_element(after_not_before)?;
    let time = std::str::from_utf8(time).ok()?;
    let digits = time.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let full = match (tag, digits.len()) {
        // RFC 5280: two-digit years 50-99 are 19xx, 00-49 are 20xx.
        (UTC_TIME, 12) => {
            let century = if digits < "50" { "20" } else { "19" };
            format!("{century}{digits}")
        }
        (GENERALIZED_TIME, 14) => digits.to_owned(),
        _ => return None,
    };
    Some(format!(
        "{}-{}-{}T{}:{}:{}Z",
        &full[0..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    ))
}

/// One DER element: (tag, contents, what follows). Definite lengths only, as DER requires.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > std::mem::size_of::<u32>() {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(count)?;
        rest = after;
        bytes
            .iter()
            .fold(0usize, |length, &b| (length << 8) | usize::from(b))
    };
    let (contents, after) = rest.split_at_checked(length)?;
    Some((tag, contents, after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{generate, CertRequest, Generated};
    use std::time::SystemTime;

    fn pair() -> Generated {
        generate(&CertRequest::default(), SystemTime::now()).unwrap()
    }

    fn leaf_der(generated: &Generated) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(generated.cert_pem.as_bytes()).unwrap()
    }

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new(generated: &Generated) -> Files {
            let files = Files {
                dir: tempfile::tempdir().unwrap(),
            };
            files.replace(&generated.cert_pem, &generated.key_pem);
            files
        }

        fn cert(&self) -> PathBuf {
            self.dir.path().join("tls.crt")
        }

        fn key(&self) -> PathBuf {
            self.dir.path().join("tls.key")
        }

        /// Replaces both files by rename, each atomically.
        fn replace(&self, cert: &str, key: &str) {
            for (path, content) in [(self.cert(), cert), (self.key(), key)] {
                let temporary = path.with_extension("new");
                std::fs::write(&temporary, content).unwrap();
                std::fs::rename(&temporary, &path).unwrap();
            }
        }

        fn load(&self) -> ReloadingCert {
            ReloadingCert::load(&self.cert(), &self.key())
                .unwrap()
                .checking_every(Duration::ZERO)
        }
    }

    fn served_leaf(certificate: &ReloadingCert) -> CertificateDer<'static> {
        certificate
            .current()
            .end_entity_cert()
            .unwrap()
            .clone()
            .into_owned()
    }

    #[test]
    fn reloading_cert_serves_a_replaced_pair() {
        let (first, second) = (pair(), pair());
        let files = Files::new(&first);
        let certificate = files.load();
        assert_eq!(served_leaf(&certificate), leaf_der(&first));
        files.replace(&second.cert_pem, &second.key_pem);
        assert_eq!(served_leaf(&certificate), leaf_der(&second));
    }

    #[test]
    fn reloading_cert_keeps_the_pair_while_the_new_one_is_mismatched_or_garbage() {
        let (first, second) = (pair(), pair());
        let files = Files::new(&first);
        let certificate = files.load();
        // The certificate arrives before its key.
        files.replace(&second.cert_pem, &first.key_pem);
        assert_eq!(served_leaf(&certificate), leaf_der(&first));
        // Warned about once: the next checks see the same stamps and say nothing more.
        let warned = certificate.state.lock().warned_about;
        assert!(matches!(warned, Some(Some(_))), "{warned:?}");
        certificate.current();
        assert_eq!(certificate.state.lock().warned_about, warned);
        files.replace("garbage", &second.key_pem);
        assert_eq!(served_leaf(&certificate), leaf_der(&first));
        std::fs::remove_file(files.key()).unwrap();
        assert_eq!(served_leaf(&certificate), leaf_der(&first));
        files.replace(&second.cert_pem, &second.key_pem);
        assert_eq!(served_leaf(&certificate), leaf_der(&second));
        assert_eq!(certificate.state.lock().warned_about, None);
    }

    #[test]
    fn reloading_cert_follows_a_swapped_data_symlink() {
        // The kubelet's layout: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/, swapped by rename.
        let (first, second) = (pair(), pair());
        let dir = tempfile::tempdir().unwrap();
        let version = |name: &str, generated: &Generated| {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).unwrap();
            std::fs::write(path.join("tls.crt"), &generated.cert_pem).unwrap();
            std::fs::write(path.join("tls.key"), &generated.key_pem).unwrap();
        };
        version("..v1", &first);
        std::os::unix::fs::symlink("..v1", dir.path().join("..data")).unwrap();
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.path().join(name)).unwrap();
        }
        let certificate =
            ReloadingCert::load(&dir.path().join("tls.crt"), &dir.path().join("tls.key"))
                .unwrap()
                .checking_every(Duration::ZERO);
        assert_eq!(served_leaf(&certificate), leaf_der(&first));
        version("..v2", &second);
        std::os::unix::fs::symlink("..v2", dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        assert_eq!(served_leaf(&certificate), leaf_der(&second));
    }

    #[test]
    fn reloading_cert_looks_at_the_files_at_most_once_per_interval() {
        let (first, second) = (pair(), pair());
        let files = Files::new(&first);
        let certificate = ReloadingCert::load(&files.cert(), &files.key())
            .unwrap()
            .checking_every(Duration::from_secs(3600));
        files.replace(&second.cert_pem, &second.key_pem);
        assert_eq!(served_leaf(&certificate), leaf_der(&first));
    }

    #[test]
    fn load_errors_name_the_file_and_the_problem() {
        let (first, second) = (pair(), pair());
        let files = Files::new(&first);
        let missing = files.dir.path().join("absent.crt");
        let error = ReloadingCert::load(&missing, &files.key()).unwrap_err();
        assert!(matches!(error, TlsError::Read { ref path, .. } if path == &missing));
        assert!(error.to_string().contains("absent.crt"), "{error}");

        files.replace("not a certificate\n", &first.key_pem);
        let error = ReloadingCert::load(&files.cert(), &files.key()).unwrap_err();
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error:?}");

        files.replace(&first.cert_pem, "-----BEGIN PRIVATE KEY-----\nAAAA\n");
        let error = ReloadingCert::load(&files.cert(), &files.key()).unwrap_err();
        assert!(matches!(error, TlsError::KeyPem { .. }), "{error:?}");

        files.replace(&first.cert_pem, &second.key_pem);
        let error = ReloadingCert::load(&files.cert(), &files.key()).unwrap_err();
        assert!(matches!(error, TlsError::Key { .. }), "{error:?}");
        assert!(error.to_string().contains("tls.key"), "{error}");
    }

    #[test]
    fn server_config_offers_h2_then_http1() {
        let files = Files::new(&pair());
        let config = server_config(Arc::new(files.load())).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    fn not_after_for(now: SystemTime, days: u32) -> Option<String> {
        let generated = generate(
            &CertRequest {
                days,
                ..CertRequest::default()
            },
            now,
        )
        .unwrap();
        not_after(&leaf_der(&generated))
    }

    #[test]
    fn not_after_reads_utc_and_generalized_times() {
        // 2030-01-01T00:00:00Z, encoded as UTCTime; and a validity ending after 2049, as GeneralizedTime.
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000);
        assert_eq!(
            not_after_for(start, 10).as_deref(),
            Some("2030-01-11T00:00:00Z")
        );
        assert_eq!(
            not_after_for(start, 36_500).as_deref(),
            Some("2129-12-08T00:00:00Z")
        );
    }

    #[test]
    fn not_after_of_truncated_or_foreign_bytes_is_none() {
        let der = leaf_der(&pair());
        for length in 0..der.len() {
            assert_eq!(not_after(&der[..length]), None, "{length} bytes");
        }
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(not_after(b"garbage"), None);
    }
}
