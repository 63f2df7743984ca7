//! One AdmissionReview request body in, one response out. Pure apart from logging, so every malformed
//! input is a fixture test.

use super::patch::{conflict_patch, injection_patch};
use super::policy::{decide, Decision, InjectionConfig};
use super::REASON_ANNOTATION;
use k8s_openapi::api::core::v1::Pod;
use kube_core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, Operation, META_API_VERSION_V1, META_KIND,
};
use kube_core::DynamicObject;
use serde_json::Value;

/// What the HTTP layer sends back: a status code and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Prefix of every warning, so a user running `kubectl apply` knows which webhook spoke.
const WARNING_PREFIX: &str = "cgview";

/// Answers one AdmissionReview. Never panics on any input. A body that is not an
/// `admission.k8s.io/v1` AdmissionReview with a request gets 400 and the reason (the API server then
/// applies the configuration's `failurePolicy: Ignore`). A review the webhook cannot act on (another
/// kind, another operation, an object that is not a readable Pod) is allowed unchanged, with a warning
/// when it points at a misconfiguration or a bad object: the webhook never blocks a pod.
pub fn review(config: &InjectionConfig, body: &[u8]) -> Reply {
    match read_request(body) {
        Ok((request, object)) => {
            let response = respond(config, &request, object);
            match encode(response) {
                Ok(body) => Reply { status: 200, body },
                Err(error) => error_reply(500, &format!("cannot encode the response: {error}")),
            }
        }
        Err(reason) => {
            tracing::warn!(%reason, "refused a request that is not an AdmissionReview");
            error_reply(400, &reason)
        }
    }
}

/// The request, and its object kept apart as raw JSON: an object that is not a valid Pod must still get
/// an answer carrying the request's uid.
fn read_request(body: &[u8]) -> Result<(AdmissionRequest<DynamicObject>, Option<Value>), String> {
    let mut document: Value =
        serde_json::from_slice(body).map_err(|error| format!("the body is not JSON: {error}"))?;
    let api_version = document.get("apiVersion").and_then(Value::as_str);
    let kind = document.get("kind").and_then(Value::as_str);
    if api_version != Some(META_API_VERSION_V1) || kind != Some(META_KIND) {
        return Err(format!(
            "expected apiVersion {META_API_VERSION_V1} and kind {META_KIND}, got {} and {}",
            api_version.unwrap_or("none"),
            kind.unwrap_or("none")
        ));
    }
    let object = document
        .get_mut("request")
        .and_then(Value::as_object_mut)
        .and_then(|request| request.remove("object"))
        .filter(|object| !object.is_null());
    if let Some(request) = document.get_mut("request").and_then(Value::as_object_mut) {
        // The old object is never used and, like the object, may not be a valid Pod.
        request.remove("oldObject");
    }
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(document)
        .map_err(|error| format!("not a valid AdmissionReview: {error}"))?;
    let request: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|_| "the AdmissionReview has no request".to_owned())?;
    if request.uid.is_empty() {
        return Err("the AdmissionReview request has no uid".to_owned());
    }
    Ok((request, object))
}

fn respond(
    config: &InjectionConfig,
    request: &AdmissionRequest<DynamicObject>,
    object: Option<Value>,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if !is_pod || request.sub_resource.is_some() {
        return warn(
            response,
            format!(
                "ignored a {} request: the webhook mutates pods only (check its rules)",
                describe_kind(request)
            ),
        );
    }
    if !matches!(request.operation, Operation::Create) {
        return response;
    }
    let Some(object) = object else {
        return warn(response, "the request has no pod to read".to_owned());
    };
    // Patches add below /metadata; a pod object without it (never sent by an API server) is not read.
    if !object.get("metadata").is_some_and(Value::is_object) {
        return warn(response, "the pod has no metadata".to_owned());
    }
    let pod: Pod = match serde_json::from_value(object) {
        Ok(pod) => pod,
        Err(error) => return warn(response, format!("cannot read the pod: {error}")),
    };
    let namespace = request
        .namespace
        .as_deref()
        .or(pod.metadata.namespace.as_deref())
        .unwrap_or("default");
    let name = pod_name(&pod, &request.name);

    match decide(config, namespace, &pod) {
        Decision::Unchanged { reason } => {
            tracing::debug!(namespace, pod = %name, %reason, "pod left unchanged");
            response
        }
        Decision::Inject {
            has_volumes,
            missing_volumes,
            containers,
        } => match injection_patch(&pod, has_volumes, &missing_volumes, &containers) {
            Ok(patch) => {
                let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
                tracing::debug!(namespace, pod = %name, containers = ?names, "injected");
                with_patch(response, patch)
            }
            Err(error) => warn(response, format!("cannot build the patch: {error}")),
        },
        Decision::Conflict { conflicts } => {
            let reason = conflicts.join("; ");
            tracing::info!(namespace, pod = %name, %reason, "not injected: conflict");
            let response = with_patch(response, conflict_patch(&pod, &reason));
            // Warnings should stay short (the API server truncates long ones); the annotation has all.
            let warning = match conflicts.len() {
                1 => format!("not injected: {reason}"),
                n => format!(
                    "not injected: {} (and {} more, see annotation {REASON_ANNOTATION})",
                    conflicts[0],
                    n - 1
                ),
            };
            warn(response, warning)
        }
    }
}

/// The review as the API documents it: kube-core writes the patch bytes as a JSON array of numbers,
/// which Go's decoder accepts, but the documented form (and what other webhooks and tools expect) is a
/// base64 string, which k8s-openapi's ByteString produces.
fn encode(response: AdmissionResponse) -> Result<Vec<u8>, serde_json::Error> {
    let patch = response.patch.clone();
    let mut review = serde_json::to_value(response.into_review())?;
    if let (Some(bytes), Some(slot)) = (patch, review.pointer_mut("/response/patch")) {
        *slot = serde_json::to_value(k8s_openapi::ByteString(bytes))?;
    }
    serde_json::to_vec(&review)
}

fn with_patch(response: AdmissionResponse, patch: json_patch::Patch) -> AdmissionResponse {
    let fallback = response.clone();
    response
        .with_patch(patch)
        .unwrap_or_else(|error| warn(fallback, format!("cannot encode the patch: {error}")))
}

fn warn(mut response: AdmissionResponse, message: String) -> AdmissionResponse {
    response
        .warnings
        .get_or_insert_with(Vec::new)
        .push(format!("{WARNING_PREFIX}: {message}"));
    response
}

fn describe_kind(request: &AdmissionRequest<DynamicObject>) -> String {
    let kind = &request.kind;
    let group = if kind.group.is_empty() {
        String::new()
    } else {
        format!("{}/", kind.group)
    };
    match &request.sub_resource {
        Some(sub) => format!("{group}{}/{sub}", kind.kind),
        None => format!("{group}{}", kind.kind),
    }
}

/// The pod's name for logs; pods of a ReplicaSet have only a `generateName` at admission.
fn pod_name(pod: &Pod, request_name: &str) -> String {
    match (&pod.metadata.name, &pod.metadata.generate_name) {
        (Some(name), _) if !name.is_empty() => name.clone(),
        (_, Some(prefix)) => format!("{prefix}*"),
        _ => request_name.to_owned(),
    }
}

fn error_reply(status: u16, reason: &str) -> Reply {
    let body = serde_json::json!({ "error": reason })
        .to_string()
        .into_bytes();
    Reply { status, body }
}
