//! The metrics text as Prometheus ingests it, from a cache that served real (fixture) callers: every
//! series is unique, even when several containers (pid namespaces) share one cgroup.

mod host_fixture;

use cgview::catalog::ServedFile;
use cgview::service::cache::{CacheSettings, ViewCache};
use cgview::telemetry::metrics::{Metrics, ScrapeExtras};
use host_fixture::*;
use std::collections::HashMap;
use std::sync::Arc;

/// An init (innermost pid 1) of pid namespace `namespace`, started under host process 800, in `cgroup`.
fn namespace_init(host: &HostFixture, pid: u32, namespace: &'static str, cgroup: &str) {
    host.process(&Process {
        pid,
        tgid: pid,
        ppid: 800,
        nspid: Box::leak(Box::new([pid, 1])),
        pid_ns: namespace,
        start_ticks: 90_000 + u64::from(pid),
        cgroup: hybrid_membership(cgroup),
    });
}

#[test]
fn containers_sharing_a_cgroup_render_one_series() {
    let host = hybrid_host();
    v1_memory(&host, "/pod/shared", "536870912", 0);
    v1_memory(&host, "/pod/alone", "268435456", 0);
    host.process(&Process::host(800, hybrid_membership("/")));
    // Two pid namespaces in one cgroup (a container whose process ran `unshare -p`, say), and one more
    // container elsewhere.
    namespace_init(&host, 801, "pid:[4026532601]", "/pod/shared");
    namespace_init(&host, 802, "pid:[4026532602]", "/pod/shared");
    namespace_init(&host, 803, "pid:[4026532603]", "/pod/alone");
    let cache = ViewCache::new(Arc::new(host.view()), CacheSettings::default());
    for (caller, reads) in [(801, 2), (802, 3), (803, 1)] {
        for _ in 0..reads {
            cache.get(ServedFile::Meminfo, Some(caller)).unwrap();
        }
    }
    assert_eq!(
        cache.sizes().1,
        3,
        "each pid namespace is its own container entry"
    );

    let extras = ScrapeExtras {
        top_containers: cache.busiest_containers(10),
        ..ScrapeExtras::default()
    };
    let text = Metrics::default().render(&extras);
    let mut series: HashMap<&str, u32> = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name_and_labels, _) = line.rsplit_once(' ').unwrap();
        *series.entry(name_and_labels).or_default() += 1;
    }
    let repeated: Vec<_> = series.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        repeated.is_empty(),
        "repeated series {repeated:?} in\n{text}"
    );
    let requests: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("cgview_container_requests_total{"))
        .collect();
    assert_eq!(
        requests,
        [
            "cgview_container_requests_total{cgroup=\"/pod/shared\"} 5",
            "cgview_container_requests_total{cgroup=\"/pod/alone\"} 1",
        ]
    );
}
