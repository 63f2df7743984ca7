//! The RFC 6902 patches the webhook answers with. Only `add` (and `remove` of an annotation the webhook
//! wrote itself): a patch never rewrites what the pod already has, so fields this build's Pod type does
//! not know pass through untouched.

use super::policy::ContainerPlan;
use super::{REASON_ANNOTATION, STATUS_ANNOTATION};
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation};
use k8s_openapi::api::core::v1::{Pod, Volume};
use serde_json::Value;

/// What the webhook writes into `cgview.io/status`.
pub const STATUS_INJECTED: &str = "injected";
pub const STATUS_SKIPPED: &str = "skipped";

/// Adds the missing volumes and mounts, and records the injection.
pub fn injection_patch(
    pod: &Pod,
    has_volumes: bool,
    missing_volumes: &[Volume],
    containers: &[ContainerPlan],
) -> Result<Patch, serde_json::Error> {
    let mut ops = Vec::new();
    append(
        &mut ops,
        &["spec", "volumes"],
        has_volumes,
        missing_volumes
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?,
    );
    for container in containers {
        let index = container.index.to_string();
        append(
            &mut ops,
            &["spec", container.kind.field(), &index, "volumeMounts"],
            container.has_mounts,
            container
                .missing
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?,
        );
    }
    annotate(&mut ops, pod, &[(STATUS_ANNOTATION, STATUS_INJECTED)]);
    if has_annotation(pod, REASON_ANNOTATION) {
        ops.push(PatchOperation::Remove(RemoveOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations", REASON_ANNOTATION]),
        }));
    }
    Ok(Patch(ops))
}

/// Leaves the spec alone and records why the pod was not injected.
pub fn conflict_patch(pod: &Pod, reason: &str) -> Patch {
    let mut ops = Vec::new();
    annotate(
        &mut ops,
        pod,
        &[
            (STATUS_ANNOTATION, STATUS_SKIPPED),
            (REASON_ANNOTATION, reason),
        ],
    );
    Patch(ops)
}

/// Appends `items` to the array at `path`, creating it when the pod has none (`/-` needs an array).
fn append(ops: &mut Vec<PatchOperation>, path: &[&str], exists: bool, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    if !exists {
        ops.push(add(
            PointerBuf::from_tokens(path.iter().copied()),
            Value::Array(items),
        ));
        return;
    }
    for item in items {
        let mut end = PointerBuf::from_tokens(path.iter().copied());
        end.push_back("-");
        ops.push(add(end, item));
    }
}

fn annotate(ops: &mut Vec<PatchOperation>, pod: &Pod, entries: &[(&str, &str)]) {
    if pod.metadata.annotations.is_none() {
        let map = entries
            .iter()
            .map(|(key, value)| ((*key).to_owned(), Value::from(*value)))
            .collect();
        ops.push(add(
            PointerBuf::from_tokens(["metadata", "annotations"]),
            Value::Object(map),
        ));
        return;
    }
    for (key, value) in entries {
        ops.push(add(
            PointerBuf::from_tokens(["metadata", "annotations", key]),
            Value::from(*value),
        ));
    }
}

fn has_annotation(pod: &Pod, key: &str) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|annotations| annotations.contains_key(key))
}

fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}
