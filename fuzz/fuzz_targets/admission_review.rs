#![no_main]
//! Fuzzes the admission webhook's review: no body may panic, every reply is JSON, and a 200 reply's
//! patch applies to the pod it came with.

use cgview::webhook::policy::InjectionConfig;
use cgview::webhook::review::review;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let reply = review(&InjectionConfig::default(), data);
    assert!(matches!(reply.status, 200 | 400), "status {}", reply.status);
    let answer: Value = serde_json::from_slice(&reply.body).expect("the reply is JSON");
    if reply.status != 200 {
        return;
    }
    let Some(encoded) = answer["response"]["patch"].as_str() else {
        return;
    };
    let bytes: k8s_openapi::ByteString =
        serde_json::from_value(Value::from(encoded)).expect("the patch is base64");
    let patch: json_patch::Patch = serde_json::from_slice(&bytes.0).expect("the patch is JSON");
    let request: Value = serde_json::from_slice(data).expect("a 200 reply came from JSON");
    let mut pod = request["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch).expect("the patch applies to its pod");
});
