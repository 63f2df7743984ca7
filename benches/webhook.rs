//! The admission webhook's review of one AdmissionReview body, from bytes in to bytes out: what each pod
//! creation in an opted-in namespace costs the webhook (parse, decide, patch, encode), without TLS.

use cgview::webhook::policy::InjectionConfig;
use cgview::webhook::review::review;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/webhook/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap()
}

fn reviews(c: &mut Criterion) {
    let config = InjectionConfig::default();
    for (label, name) in [
        ("inject one container", "plain-pod.json"),
        ("inject 2 containers + 1 init", "multi-container-init.json"),
        ("already injected", "already-injected.json"),
        ("conflict", "conflicting.json"),
        ("malformed", "not-json.txt"),
    ] {
        let body = fixture(name);
        c.bench_function(&format!("webhook review: {label}"), |b| {
            b.iter(|| review(black_box(&config), black_box(&body)))
        });
    }
}

criterion_group!(benches, reviews);
criterion_main!(benches);
