//! The mutating admission webhook (`cgview webhook`): adds cgview's files to pods as hostPath volumes
//! mounted over `/proc/...` and `/sys/devices/system/cpu/...`, so application manifests stay unchanged.
//!
//! - [`policy`] (pure): which pods are injected and what conflicts;
//! - [`patch`] (pure): the JSON patch that injects them or records why not;
//! - [`review`] (pure): an AdmissionReview request body in, the response body out;
//! - [`tls`]: the serving certificate, reloaded from its files when they change;
//! - [`server`]: HTTPS (`/mutate`, `/healthz`, `/readyz`) on a small tokio runtime;
//! - [`certs`]: a CA and a serving certificate for clusters without cert-manager;
//! - [`options`]: the command line's values, checked.
//!
//! Opt-in by namespace label is evaluated by the API server (the MutatingWebhookConfiguration's
//! `namespaceSelector`): an AdmissionReview does not carry the namespace's labels, and reading them here
//! would need RBAC. The webhook itself enforces everything it can see: the opt-out annotation, skipped
//! namespaces, idempotence and conflicts.

pub mod certs;
pub mod options;
pub mod patch;
pub mod policy;
pub mod review;
pub mod server;
pub mod tls;

/// Pod annotation that opts out (`disabled` or `false`), whatever the labels say. The namespace and pod
/// labels of the same name that opt in (`enabled`) are evaluated by the API server: the selectors in
/// `daemonset/webhook/`.
pub const INJECT_ANNOTATION: &str = "cgview.io/inject";
/// Pod annotation recording what the webhook did: `injected` or `skipped`.
pub const STATUS_ANNOTATION: &str = "cgview.io/status";
/// Pod annotation with why a pod was skipped (a conflict).
pub const REASON_ANNOTATION: &str = "cgview.io/reason";
/// The path the API server posts AdmissionReviews to.
pub const MUTATE_PATH: &str = "/mutate";
