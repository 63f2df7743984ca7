//! `cgview webhook certs`: a CA and a serving certificate for the webhook's Service, for clusters without
//! cert-manager. [`generate`] is pure apart from the key generation's randomness: PEMs and manifests in
//! memory, which the tests verify; [`write_dir`] puts them on disk as a kustomize component.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const DEFAULT_NAMESPACE: &str = "cgview";
pub const DEFAULT_SERVICE: &str = "cgview-webhook";
pub const DEFAULT_SECRET: &str = "cgview-webhook-tls";
/// The MutatingWebhookConfiguration `daemonset/webhook/` installs; its webhooks get the CA bundle.
pub const WEBHOOK_CONFIGURATION: &str = "cgview-webhook";
pub const CA_COMMON_NAME: &str = "cgview webhook CA";
/// Ten years: without cert-manager nothing renews the pair, and an expired one stops every pod creation
/// in the opted-in namespaces, so a short lifetime only schedules an outage.
pub const DEFAULT_DAYS: u32 = 3650;
/// A hundred years; also keeps the date arithmetic far from the year 9999.
pub const MAX_DAYS: u32 = 36_500;
/// Certificates start this long before their creation, so a node whose clock is behind the machine that
/// generated them still accepts them.
const BACKDATE: Duration = Duration::from_secs(3600);

/// The files [`write_dir`] writes, in the order it writes them.
pub const CA_FILE: &str = "ca.crt";
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";
pub const SECRET_FILE: &str = "secret.yaml";
pub const CA_BUNDLE_FILE: &str = "ca-bundle";
pub const PATCH_FILE: &str = "ca-bundle-patch.yaml";
pub const KUSTOMIZATION_FILE: &str = "kustomization.yaml";

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error(
        "{kind} {name:?} is not a valid DNS label (lowercase letters, digits and '-', at most 63)"
    )]
    InvalidName { kind: &'static str, name: String },
    #[error("--days must be between 1 and {MAX_DAYS}, not {0}")]
    InvalidDays(u32),
    #[error("cannot generate the certificates")]
    Generate(#[source] rcgen::Error),
    #[error("cannot serialize the manifests")]
    Serialize(#[source] serde_json::Error),
    #[error("cannot create {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} exists; pass --force to replace the key pair", path.display())]
    KeyExists { path: PathBuf },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRequest {
    pub namespace: String,
    pub service: String,
    /// The Secret's name (the Deployment mounts it).
    pub secret: String,
    /// Validity of both the CA and the serving certificate.
    pub days: u32,
    /// How many webhooks the MutatingWebhookConfiguration has; each gets the CA bundle.
    pub webhooks: usize,
}

impl Default for CertRequest {
    fn default() -> Self {
        CertRequest {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            service: DEFAULT_SERVICE.to_owned(),
            secret: DEFAULT_SECRET.to_owned(),
            days: DEFAULT_DAYS,
            webhooks: 2,
        }
    }
}

/// A generated CA and serving pair, with the manifests that install them.
#[derive(Debug, Clone)]
pub struct Generated {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// Base64 of `ca_pem`: the webhooks' `clientConfig.caBundle`.
    pub ca_bundle: String,
    /// A `kubernetes.io/tls` Secret with `tls.crt`, `tls.key` and `ca.crt`.
    pub secret: Secret,
    /// One `add` of `/webhooks/<i>/clientConfig/caBundle` per webhook.
    pub ca_bundle_patch: json_patch::Patch,
}

impl Generated {
    /// The Secret as indented JSON (which is YAML too), newline-terminated.
    pub fn secret_manifest(&self) -> Result<String, CertsError> {
        pretty(&self.secret)
    }

    /// The one-line command that sets the CA bundle in the installed webhook configuration.
    pub fn kubectl_patch_command(&self) -> Result<String, CertsError> {
        // Base64 and JSON syntax contain no single quote, so the patch needs no further shell quoting.
        let patch = serde_json::to_string(&self.ca_bundle_patch).map_err(CertsError::Serialize)?;
        Ok(format!(
            "kubectl patch mutatingwebhookconfiguration {WEBHOOK_CONFIGURATION} --type=json -p '{patch}'"
        ))
    }
}

/// The names the API server may use for the Service: `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc` (what it
/// uses for `clientConfig.service`) and the fully qualified one.
pub fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Generates an ECDSA P-256 CA and a serving certificate it signs, both valid from shortly before `now`
/// for `request.days` days.
pub fn generate(request: &CertRequest, now: SystemTime) -> Result<Generated, CertsError> {
    check_label("namespace", &request.namespace)?;
    check_label("service", &request.service)?;
    check_subdomain("secret name", &request.secret)?;
    if request.days == 0 || request.days > MAX_DAYS {
        return Err(CertsError::InvalidDays(request.days));
    }
    // rcgen takes `time`'s date type, which this crate does not name: count from the epoch instead.
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(BACKDATE);
    let not_before = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    let not_after = not_before + BACKDATE + Duration::from_secs(u64::from(request.days) * 86_400);

    let ca_key =
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(CertsError::Generate)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = common_name(CA_COMMON_NAME);
    // Path length 0: this CA signs serving certificates only, never another CA.
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key).map_err(CertsError::Generate)?;
    let issuer = Issuer::new(ca, ca_key);

    let names = dns_names(&request.service, &request.namespace);
    let key =
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(CertsError::Generate)?;
    let mut leaf = CertificateParams::new(names.clone()).map_err(CertsError::Generate)?;
    leaf.distinguished_name = common_name(&names[2]);
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let cert = leaf
        .signed_by(&key, &issuer)
        .map_err(CertsError::Generate)?;

    let ca_pem = ca_cert.pem();
    let cert_pem = cert.pem();
    let key_pem = key.serialize_pem();
    let ca_bundle = base64(ca_pem.as_bytes())?;
    Ok(Generated {
        secret: secret(request, &ca_pem, &cert_pem, &key_pem),
        ca_bundle_patch: ca_bundle_patch(request.webhooks, &ca_bundle),
        ca_bundle,
        ca_pem,
        cert_pem,
        key_pem,
    })
}

/// Writes the pair and the manifests into `dir` (created if missing), as a kustomize component an overlay
/// lists beside `daemonset/webhook`. Refuses to replace an existing key unless `force`. Returns the paths
/// written.
pub fn write_dir(
    generated: &Generated,
    dir: &Path,
    force: bool,
) -> Result<Vec<PathBuf>, CertsError> {
    std::fs::create_dir_all(dir).map_err(|source| CertsError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let key_path = dir.join(KEY_FILE);
    if key_path.symlink_metadata().is_ok() && !force {
        return Err(CertsError::KeyExists { path: key_path });
    }
    let files = [
        (CA_FILE, generated.ca_pem.clone()),
        (CERT_FILE, generated.cert_pem.clone()),
        (KEY_FILE, generated.key_pem.clone()),
        (SECRET_FILE, generated.secret_manifest()?),
        (CA_BUNDLE_FILE, format!("{}\n", generated.ca_bundle)),
        (PATCH_FILE, pretty(&generated.ca_bundle_patch)?),
        (KUSTOMIZATION_FILE, pretty(&kustomization())?),
    ];
    let mut written = Vec::with_capacity(files.len());
    for (name, content) in files {
        let path = dir.join(name);
        let result = if name == KEY_FILE {
            write_private(&path, content.as_bytes())
        } else {
            std::fs::write(&path, content)
        };
        result.map_err(|source| CertsError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// The component's kustomization: the Secret, and the CA bundle patched into the webhook configuration.
fn kustomization() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": [SECRET_FILE],
        "patches": [{
            "path": PATCH_FILE,
            "target": {"kind": "MutatingWebhookConfiguration", "name": WEBHOOK_CONFIGURATION},
        }],
    })
}

/// Creates the key file with mode 0600 from the start: replacing a file would keep its old, possibly
/// wider, mode while the new key is written.
fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

fn secret(request: &CertRequest, ca_pem: &str, cert_pem: &str, key_pem: &str) -> Secret {
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "cgview".to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            "webhook".to_owned(),
        ),
    ]);
    let data = BTreeMap::from([
        (
            "tls.crt".to_owned(),
            ByteString(cert_pem.as_bytes().to_vec()),
        ),
        (
            "tls.key".to_owned(),
            ByteString(key_pem.as_bytes().to_vec()),
        ),
        ("ca.crt".to_owned(), ByteString(ca_pem.as_bytes().to_vec())),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(request.secret.clone()),
            namespace: Some(request.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

fn ca_bundle_patch(webhooks: usize, ca_bundle: &str) -> json_patch::Patch {
    let operations = (0..webhooks)
        .map(|index| {
            json_patch::PatchOperation::Add(json_patch::AddOperation {
                path: json_patch::jsonptr::PointerBuf::from_tokens([
                    "webhooks".to_owned(),
                    index.to_string(),
                    "clientConfig".to_owned(),
                    "caBundle".to_owned(),
                ]),
                value: serde_json::Value::String(ca_bundle.to_owned()),
            })
        })
        .collect();
    json_patch::Patch(operations)
}

/// Standard base64, through the `ByteString` serializer k8s-openapi already carries.
fn base64(bytes: &[u8]) -> Result<String, CertsError> {
    match serde_json::to_value(ByteString(bytes.to_vec())).map_err(CertsError::Serialize)? {
        serde_json::Value::String(text) => Ok(text),
        other => Ok(other.to_string()),
    }
}

fn pretty(value: &impl k8s_openapi::serde::Serialize) -> Result<String, CertsError> {
    let mut text = serde_json::to_string_pretty(value).map_err(CertsError::Serialize)?;
    text.push('\n');
    Ok(text)
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// RFC 1123 label, as Kubernetes requires of namespace and Service names.
fn check_label(kind: &'static str, name: &str) -> Result<(), CertsError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(CertsError::InvalidName {
            kind,
            name: name.to_owned(),
        })
    }
}

/// RFC 1123 subdomain, as Kubernetes requires of Secret names.
fn check_subdomain(kind: &'static str, name: &str) -> Result<(), CertsError> {
    if name.len() > 253 {
        return Err(CertsError::InvalidName {
            kind,
            name: name.to_owned(),
        });
    }
    name.split('.')
        .try_for_each(|label| check_label(kind, label))
        .map_err(|_| CertsError::InvalidName {
            kind,
            name: name.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;

    fn verifier(ca_pem: &str) -> Arc<WebPkiServerVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap()
    }

    fn verify(ca_pem: &str, cert_pem: &str, name: &str) -> Result<(), rustls::Error> {
        let leaf = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        verifier(ca_pem)
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    fn decode(value: &serde_json::Value) -> Vec<u8> {
        serde_json::from_value::<ByteString>(value.clone())
            .unwrap()
            .0
    }

    #[test]
    fn generate_leaf_verifies_against_ca_for_every_service_name() {
        let generated = generate(&CertRequest::default(), SystemTime::now()).unwrap();
        for name in dns_names(DEFAULT_SERVICE, DEFAULT_NAMESPACE) {
            verify(&generated.ca_pem, &generated.cert_pem, &name).unwrap();
        }
        let error = verify(
            &generated.ca_pem,
            &generated.cert_pem,
            "cgview-webhook.other.svc",
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{error:?}"
        );
    }

    #[test]
    fn generate_leaf_fails_against_another_ca() {
        let one = generate(&CertRequest::default(), SystemTime::now()).unwrap();
        let other = generate(&CertRequest::default(), SystemTime::now()).unwrap();
        verify(&other.ca_pem, &one.cert_pem, "cgview-webhook.cgview.svc").unwrap_err();
    }

    #[test]
    fn generate_validity_starts_before_now_and_lasts_the_days() {
        let now = SystemTime::now();
        let generated = generate(
            &CertRequest {
                days: 1,
                ..CertRequest::default()
            },
            now,
        )
        .unwrap();
        let name = "cgview-webhook.cgview.svc";
        let leaf = CertificateDer::from_pem_slice(generated.cert_pem.as_bytes()).unwrap();
        let at = |time: SystemTime| {
            verifier(&generated.ca_pem).verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(name).unwrap(),
                &[],
                UnixTime::since_unix_epoch(time.duration_since(SystemTime::UNIX_EPOCH).unwrap()),
            )
        };
        at(now - Duration::from_secs(1800)).unwrap();
        at(now + Duration::from_secs(86_000)).unwrap();
        at(now + Duration::from_secs(86_500)).unwrap_err();
        at(now - Duration::from_secs(3700)).unwrap_err();
    }

    #[test]
    fn generate_secret_holds_the_three_pems_base64() {
        let generated = generate(&CertRequest::default(), SystemTime::now()).unwrap();
        let secret: serde_json::Value =
            serde_json::from_str(&generated.secret_manifest().unwrap()).unwrap();
        assert_eq!(secret["apiVersion"], "v1");
        assert_eq!(secret["kind"], "Secret");
        assert_eq!(secret["type"], "kubernetes.io/tls");
        assert_eq!(secret["metadata"]["name"], DEFAULT_SECRET);
        assert_eq!(secret["metadata"]["namespace"], DEFAULT_NAMESPACE);
        assert_eq!(
            secret["metadata"]["labels"]["app.kubernetes.io/name"],
            "cgview"
        );
        assert_eq!(
            secret["metadata"]["labels"]["app.kubernetes.io/component"],
            "webhook"
        );
        let data = &secret["data"];
        assert_eq!(data.as_object().unwrap().len(), 3);
        assert_eq!(decode(&data["tls.crt"]), generated.cert_pem.as_bytes());
        assert_eq!(decode(&data["tls.key"]), generated.key_pem.as_bytes());
        assert_eq!(decode(&data["ca.crt"]), generated.ca_pem.as_bytes());
        assert_eq!(
            decode(&serde_json::Value::String(generated.ca_bundle.clone())),
            generated.ca_pem.as_bytes()
        );
    }

    #[test]
    fn generate_patch_adds_the_bundle_to_each_webhook() {
        let request = CertRequest {
            webhooks: 3,
            ..CertRequest::default()
        };
        let generated = generate(&request, SystemTime::now()).unwrap();
        let patch = serde_json::to_value(&generated.ca_bundle_patch).unwrap();
        let operations = patch.as_array().unwrap();
        assert_eq!(operations.len(), 3);
        for (index, operation) in operations.iter().enumerate() {
            assert_eq!(operation["op"], "add");
            assert_eq!(
                operation["path"],
                format!("/webhooks/{index}/clientConfig/caBundle")
            );
            assert_eq!(decode(&operation["value"]), generated.ca_pem.as_bytes());
        }
        let command = generated.kubectl_patch_command().unwrap();
        assert!(command.starts_with(
            "kubectl patch mutatingwebhookconfiguration cgview-webhook --type=json -p '[{"
        ));
        assert!(command.contains("/webhooks/2/clientConfig/caBundle"));
    }

    #[test]
    fn generate_rejects_bad_names_and_days() {
        let bad = [
            CertRequest {
                namespace: "Cgview".into(),
                ..CertRequest::default()
            },
            CertRequest {
                service: "-svc".into(),
                ..CertRequest::default()
            },
            CertRequest {
                secret: "a..b".into(),
                ..CertRequest::default()
            },
            CertRequest {
                days: 0,
                ..CertRequest::default()
            },
            CertRequest {
                days: MAX_DAYS + 1,
                ..CertRequest::default()
            },
        ];
        for request in bad {
            generate(&request, SystemTime::now()).unwrap_err();
        }
        generate(
            &CertRequest {
                secret: "webhook.tls-1".into(),
                days: MAX_DAYS,
                ..CertRequest::default()
            },
            SystemTime::now(),
        )
        .unwrap();
    }

    #[test]
    fn write_dir_writes_the_component_and_keeps_an_existing_key() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("certs");
        let generated = generate(&CertRequest::default(), SystemTime::now()).unwrap();
        let written = write_dir(&generated, &out, false).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                CA_FILE,
                CERT_FILE,
                KEY_FILE,
                SECRET_FILE,
                CA_BUNDLE_FILE,
                PATCH_FILE,
                KUSTOMIZATION_FILE
            ]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(out.join(KEY_FILE)).unwrap(),
            generated.key_pem
        );
        let kustomization: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(KUSTOMIZATION_FILE)).unwrap()).unwrap();
        assert_eq!(kustomization["kind"], "Component");
        assert_eq!(kustomization["resources"][0], SECRET_FILE);
        assert_eq!(kustomization["patches"][0]["path"], PATCH_FILE);
        let patch: json_patch::Patch =
            serde_json::from_slice(&std::fs::read(out.join(PATCH_FILE)).unwrap()).unwrap();
        assert_eq!(patch.0.len(), 2);

        let again = generate(&CertRequest::default(), SystemTime::now()).unwrap();
        assert!(matches!(
            write_dir(&again, &out, false).unwrap_err(),
            CertsError::KeyExists { .. }
        ));
        assert_eq!(
            std::fs::read_to_string(out.join(KEY_FILE)).unwrap(),
            generated.key_pem
        );
        write_dir(&again, &out, true).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join(KEY_FILE)).unwrap(),
            again.key_pem
        );
    }
}
