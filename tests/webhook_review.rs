//! The admission webhook's answers to AdmissionReview fixtures (tests/fixtures/webhook/): every patch
//! is applied to its pod, the result must read as a Pod, hold each of cgview's volumes and mounts
//! exactly once, keep everything it had, and be left alone by a second review.
//!
//! With CGVIEW_PATCHED_PODS_DIR set (tests/run.sh sets it), each patched pod is also written there for
//! tests/webhook_pods.py to validate against the Kubernetes schemas.

use cgview::catalog::ServedFile;
use cgview::webhook::policy::InjectionConfig;
use cgview::webhook::review::{review, Reply};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::path::PathBuf;

const OUR_FILES: [&str; 8] = [
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/uptime",
    "/proc/diskstats",
    "/proc/swaps",
    "/proc/loadavg",
    "/sys/devices/system/cpu/online",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhook")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A review's outcome: the reply, the response, the pod sent and the pod after the patch.
struct Outcome {
    reply: Reply,
    response: Value,
    pod: Value,
    patched: Value,
}

impl Outcome {
    fn patch(&self) -> Option<Vec<Value>> {
        let encoded = self.response.get("patch")?.as_str()?;
        let bytes = base64_decode(encoded);
        Some(serde_json::from_slice(&bytes).expect("the patch is JSON"))
    }

    fn warnings(&self) -> Vec<String> {
        self.response["warnings"]
            .as_array()
            .map(|w| w.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.patched["metadata"]["annotations"][key].as_str()
    }

    fn containers(&self, field: &str) -> Vec<Value> {
        self.patched["spec"][field]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn run_body(config: &InjectionConfig, body: &[u8]) -> Outcome {
    let reply = review(config, body);
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let pod = request["request"]["object"].clone();
    let answer: Value = serde_json::from_slice(&reply.body).expect("every reply body is JSON");
    let response = answer["response"].clone();
    let mut outcome = Outcome {
        reply,
        response,
        pod: pod.clone(),
        patched: pod,
    };
    if let Some(ops) = outcome.patch() {
        assert_eq!(outcome.response["patchType"], "JSONPatch");
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
        json_patch::patch(&mut outcome.patched, &patch).expect("the patch applies to the pod");
    }
    outcome
}

fn run(name: &str, config: &InjectionConfig) -> Outcome {
    let body = fixture(name);
    let outcome = run_body(config, &body);
    if outcome.reply.status == 200 {
        let request: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(outcome.response["uid"], request["request"]["uid"], "{name}");
        assert_eq!(answer_kind(&outcome), "AdmissionReview", "{name}");
    }
    outcome
}

fn answer_kind(outcome: &Outcome) -> String {
    let answer: Value = serde_json::from_slice(&outcome.reply.body).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    answer["kind"].as_str().unwrap().to_owned()
}

/// Reviews the patched pod again, as the API server does on reinvocation: nothing more to add.
fn assert_idempotent(outcome: &Outcome, config: &InjectionConfig) {
    let mut body: Value = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "second-pass",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {},
        }
    });
    body["request"]["object"] = outcome.patched.clone();
    let again = run_body(config, &serde_json::to_vec(&body).unwrap());
    assert_eq!(again.reply.status, 200);
    assert_eq!(again.response["allowed"], true);
    assert!(
        again.patch().is_none(),
        "second pass patched: {:?}",
        again.patch()
    );
}

/// The patched pod reads as a Pod and has each of cgview's volumes once, hostPath type File.
fn assert_volumes(outcome: &Outcome, files: &[&str]) {
    let pod: Pod =
        serde_json::from_value(outcome.patched.clone()).expect("the patched pod is a Pod");
    let volumes = pod.spec.unwrap().volumes.unwrap_or_default();
    for file in files {
        let host = format!("/var/lib/cgview{file}");
        let ours: Vec<_> = volumes
            .iter()
            .filter(|v| v.host_path.as_ref().is_some_and(|h| h.path == host))
            .collect();
        assert_eq!(ours.len(), 1, "{host}");
        assert_eq!(
            ours[0].host_path.as_ref().unwrap().type_.as_deref(),
            Some("File")
        );
    }
}

/// `container` mounts each file once, read-only, from cgview's volume.
fn assert_mounts(container: &Value, files: &[&str]) {
    let mounts = container["volumeMounts"].as_array().expect("volumeMounts");
    for file in files {
        let at: Vec<_> = mounts.iter().filter(|m| m["mountPath"] == *file).collect();
        assert_eq!(
            at.len(),
            1,
            "{} mounts {file} {} times",
            container["name"],
            at.len()
        );
        assert_eq!(at[0]["readOnly"], true);
        assert!(at[0]["name"].as_str().unwrap().starts_with("cgview-"));
        assert!(at[0].get("subPath").is_none());
    }
}

fn save_for_schema_check(name: &str, outcome: &Outcome) {
    if let Some(dir) = std::env::var_os("CGVIEW_PATCHED_PODS_DIR") {
        let path = PathBuf::from(dir).join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(&outcome.patched).unwrap()).unwrap();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    // The patch travels base64-encoded ([]byte in Go's JSON); k8s-openapi's ByteString decodes it.
    let bytes: k8s_openapi::ByteString = serde_json::from_value(Value::from(text)).unwrap();
    bytes.0
}

#[test]
fn a_plain_pod_gets_every_file_in_its_container() {
    let config = InjectionConfig::default();
    let outcome = run("plain-pod.json", &config);
    assert_eq!(outcome.reply.status, 200);
    assert_eq!(outcome.response["allowed"], true);
    assert!(outcome.warnings().is_empty());
    assert_volumes(&outcome, &OUR_FILES);
    let containers = outcome.containers("containers");
    assert_mounts(&containers[0], &OUR_FILES);
    // What the pod had is still there: the service account token's volume and mount.
    assert_eq!(
        outcome.patched["spec"]["volumes"][0],
        outcome.pod["spec"]["volumes"][0]
    );
    assert_eq!(
        containers[0]["volumeMounts"][0],
        outcome.pod["spec"]["containers"][0]["volumeMounts"][0]
    );
    assert_eq!(outcome.annotation("cgview.io/status"), Some("injected"));
    // Only additions: the patch never replaces what the pod has.
    assert!(outcome.patch().unwrap().iter().all(|op| op["op"] == "add"));
    assert_idempotent(&outcome, &config);
    save_for_schema_check("plain-pod.json", &outcome);
}

#[test]
fn a_pod_without_volumes_mounts_or_annotations_gets_them_created() {
    let config = InjectionConfig::default();
    let outcome = run("bare-pod.json", &config);
    assert_eq!(outcome.reply.status, 200);
    assert!(outcome.pod["spec"].get("volumes").is_none());
    assert_volumes(&outcome, &OUR_FILES);
    assert_mounts(&outcome.containers("containers")[0], &OUR_FILES);
    assert_eq!(outcome.annotation("cgview.io/status"), Some("injected"));
    assert_idempotent(&outcome, &config);
    save_for_schema_check("bare-pod.json", &outcome);
}

#[test]
fn every_container_and_init_container_is_injected() {
    let config = InjectionConfig::default();
    let outcome = run("multi-container-init.json", &config);
    assert_volumes(&outcome, &OUR_FILES);
    for container in outcome
        .containers("containers")
        .iter()
        .chain(&outcome.containers("initContainers"))
    {
        assert_mounts(container, &OUR_FILES);
    }
    let shipper = &outcome.containers("containers")[1];
    assert!(shipper["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["mountPath"] == "/var/log/app"));
    assert_eq!(outcome.annotation("prometheus.io/scrape"), Some("true"));
    assert_eq!(outcome.annotation("cgview.io/status"), Some("injected"));
    assert_idempotent(&outcome, &config);
    save_for_schema_check("multi-container-init.json", &outcome);
}

#[test]
fn init_containers_are_left_alone_when_configured() {
    let config = InjectionConfig {
        init_containers: false,
        ..InjectionConfig::default()
    };
    let outcome = run("multi-container-init.json", &config);
    for container in outcome.containers("containers") {
        assert_mounts(&container, &OUR_FILES);
    }
    assert_eq!(
        outcome.containers("initContainers"),
        outcome.pod["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .clone()
    );
    assert_idempotent(&outcome, &config);
}

#[test]
fn an_injected_pod_is_not_injected_twice() {
    let outcome = run("already-injected.json", &InjectionConfig::default());
    assert_eq!(outcome.reply.status, 200);
    assert_eq!(outcome.response["allowed"], true);
    assert!(outcome.patch().is_none());
    assert!(outcome.warnings().is_empty());
}

#[test]
fn a_sidecar_added_after_injection_gets_the_mounts_and_nothing_else_changes() {
    let config = InjectionConfig::default();
    let outcome = run("sidecar-added-later.json", &config);
    let ops = outcome.patch().expect("the sidecar is injected");
    assert!(
        ops.iter().all(|op| {
            let path = op["path"].as_str().unwrap();
            path.starts_with("/spec/containers/1/") || path.starts_with("/metadata/annotations")
        }),
        "{ops:?}"
    );
    assert_mounts(&outcome.containers("containers")[1], &OUR_FILES);
    assert_eq!(
        outcome.containers("containers")[0],
        outcome.pod["spec"]["containers"][0]
    );
    assert_volumes(&outcome, &OUR_FILES);
    assert_idempotent(&outcome, &config);
    save_for_schema_check("sidecar-added-later.json", &outcome);
}

#[test]
fn opted_out_kube_system_windows_and_updates_are_admitted_unchanged() {
    for name in [
        "opted-out.json",
        "kube-system.json",
        "windows-pod.json",
        "update.json",
    ] {
        let outcome = run(name, &InjectionConfig::default());
        assert_eq!(outcome.reply.status, 200, "{name}");
        assert_eq!(outcome.response["allowed"], true, "{name}");
        assert!(outcome.patch().is_none(), "{name}");
        assert!(outcome.warnings().is_empty(), "{name}");
    }
}

#[test]
fn kube_system_is_injected_when_it_is_not_skipped() {
    let config = InjectionConfig {
        skip_namespaces: Vec::new(),
        ..InjectionConfig::default()
    };
    let outcome = run("kube-system.json", &config);
    assert_volumes(&outcome, &OUR_FILES);
    assert_mounts(&outcome.containers("containers")[0], &OUR_FILES);
}

#[test]
fn a_conflicting_pod_is_admitted_unchanged_with_the_reason_recorded() {
    for (name, culprit) in [
        ("conflicting.json", "/proc/meminfo"),
        ("conflicting.json", "/proc/cpuinfo"),
        ("conflicting-volume-name.json", "cgview-proc-meminfo"),
        ("host-sys-mount.json", "/sys"),
    ] {
        let outcome = run(name, &InjectionConfig::default());
        assert_eq!(outcome.reply.status, 200, "{name}");
        assert_eq!(outcome.response["allowed"], true, "{name}");
        assert_eq!(
            outcome.patched["spec"], outcome.pod["spec"],
            "{name}: the spec changed"
        );
        assert_eq!(
            outcome.annotation("cgview.io/status"),
            Some("skipped"),
            "{name}"
        );
        let reason = outcome.annotation("cgview.io/reason").unwrap();
        assert!(reason.contains(culprit), "{name}: {reason}");
        let warnings = outcome.warnings();
        assert_eq!(warnings.len(), 1, "{name}");
        assert!(
            warnings[0].starts_with("cgview: not injected: "),
            "{}",
            warnings[0]
        );
        let points_to_the_annotation = warnings[0].contains("see annotation cgview.io/reason");
        assert!(
            warnings[0].contains(culprit) || points_to_the_annotation,
            "{}",
            warnings[0]
        );
        save_for_schema_check(name, &outcome);
    }
}

#[test]
fn the_configured_files_and_the_host_directory_are_what_is_mounted() {
    let config = InjectionConfig {
        files: vec![ServedFile::Meminfo, ServedFile::CpuOnline],
        host_dir_mount_path: Some("/var/lib/cgview".to_owned()),
        mount_root: "/run/cgview/".to_owned(),
        ..InjectionConfig::default()
    };
    let outcome = run("plain-pod.json", &config);
    let volumes = outcome.patched["spec"]["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 4);
    assert_eq!(
        volumes[1]["hostPath"],
        json!({"path": "/run/cgview/proc/meminfo", "type": "File"})
    );
    assert_eq!(
        volumes[3]["hostPath"],
        json!({"path": "/run/cgview/", "type": "Directory"})
    );
    let mounts = outcome.containers("containers")[0]["volumeMounts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(mounts.len(), 4);
    let root = mounts.iter().find(|m| m["name"] == "cgview-root").unwrap();
    assert_eq!(root["mountPath"], "/var/lib/cgview");
    assert_eq!(root["mountPropagation"], "HostToContainer");
    assert_eq!(root["readOnly"], true);
    assert_idempotent(&outcome, &config);
    save_for_schema_check("host-directory.json", &outcome);
}

#[test]
fn other_kinds_and_unreadable_pods_are_allowed_with_a_warning() {
    for (name, says) in [
        ("deployment.json", "mutates pods only"),
        ("object-not-a-pod.json", "cannot read the pod"),
        ("no-object.json", "no pod"),
    ] {
        let outcome = run(name, &InjectionConfig::default());
        assert_eq!(outcome.reply.status, 200, "{name}");
        assert_eq!(outcome.response["allowed"], true, "{name}");
        assert!(outcome.patch().is_none(), "{name}");
        let warnings = outcome.warnings();
        assert!(
            warnings.iter().any(|w| w.contains(says)),
            "{name}: {warnings:?}"
        );
    }
}

#[test]
fn malformed_requests_get_400_and_the_reason() {
    for (name, says) in [
        ("not-json.txt", "not JSON"),
        ("no-request.json", "no request"),
        ("v1beta1.json", "admission.k8s.io/v1beta1"),
        ("no-uid.json", "uid"),
        ("unknown-operation.json", "EXPLODE"),
    ] {
        let reply = review(&InjectionConfig::default(), &fixture(name));
        assert_eq!(reply.status, 400, "{name}");
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(says), "{name}: {error}");
    }
}

#[test]
fn mangled_reviews_never_panic() {
    // Every fixture cut short at every length, and with each byte flipped in turn: the answer is always
    // a JSON reply, 200 or 400.
    let config = InjectionConfig::default();
    for name in [
        "plain-pod.json",
        "multi-container-init.json",
        "conflicting.json",
    ] {
        let body = fixture(name);
        let step = (body.len() / 400).max(1);
        for cut in (0..body.len()).step_by(step) {
            let reply = review(&config, &body[..cut]);
            assert!(matches!(reply.status, 200 | 400));
            serde_json::from_slice::<Value>(&reply.body).unwrap();
            let mut flipped = body.clone();
            flipped[cut] ^= 0x20;
            let reply = review(&config, &flipped);
            assert!(matches!(reply.status, 200 | 400));
            serde_json::from_slice::<Value>(&reply.body).unwrap();
        }
    }
}

#[test]
fn fields_this_build_does_not_know_pass_through() {
    let mut body: Value = serde_json::from_slice(&fixture("plain-pod.json")).unwrap();
    let object = &mut body["request"]["object"];
    object["spec"]["someFutureField"] = json!({"enabled": true});
    object["spec"]["containers"][0]["someFutureContainerField"] = json!("kept");
    let outcome = run_body(
        &InjectionConfig::default(),
        &serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(
        outcome.patched["spec"]["someFutureField"],
        json!({"enabled": true})
    );
    assert_eq!(
        outcome.patched["spec"]["containers"][0]["someFutureContainerField"],
        "kept"
    );
    assert_mounts(&outcome.containers("containers")[0], &OUR_FILES);
}

#[test]
fn a_pod_without_metadata_is_allowed_unchanged() {
    let mut body: Value = serde_json::from_slice(&fixture("plain-pod.json")).unwrap();
    body["request"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("metadata");
    let outcome = run_body(
        &InjectionConfig::default(),
        &serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(outcome.reply.status, 200);
    assert!(outcome.patch().is_none());
    assert!(outcome.warnings()[0].contains("no metadata"));
}
