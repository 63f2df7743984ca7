//! The open path through the tree on a fixture host (no FUSE, no root): open + read + release of
//! `proc/meminfo` with a cache hit (caller known, snapshot fresh) and with a miss (every open resolves the
//! caller and renders), the latter being what each open cost before caching.

#[path = "../tests/host_fixture/mod.rs"]
mod host_fixture;

use cgview::fs::{Caller, Fs, ReadInto};
use cgview::permissions::Credentials;
use cgview::service::cache::CacheSettings;
use criterion::{criterion_group, criterion_main, Criterion};
use host_fixture::*;
use std::sync::Arc;
use std::time::Duration;

fn fixture_host() -> HostFixture {
    let host = hybrid_host();
    host.cpu_tree("0-1", &[0, 1]);
    v1_memory(&host, "/ctr", "536870912", 104_857_600);
    host.process(&Process::host(600, hybrid_membership("/ctr")));
    host
}

fn cycle(tree: &Fs, inode: u64) -> usize {
    let handle = tree
        .open(&Caller::new(600, Credentials::ROOT), inode, false)
        .unwrap();
    let len = tree
        .read(
            &Caller::new(600, Credentials::ROOT),
            inode,
            handle,
            0,
            ReadInto::Buffer,
        )
        .unwrap()
        .len();
    tree.release(handle);
    len
}

fn open_path(c: &mut Criterion) {
    let host = fixture_host();
    let long = Duration::from_secs(3600);
    let hit = Fs::with_cache(
        Arc::new(host.view()),
        CacheSettings {
            snapshot_ttl: long,
            max_stale: long,
            membership_ttl: long,
            ..CacheSettings::default()
        },
    );
    let inode = hit
        .walk("proc/meminfo", &Caller::new(600, Credentials::ROOT))
        .unwrap()
        .inode;
    cycle(&hit, inode);
    c.bench_function("open+read+release proc/meminfo, cache hit", |b| {
        b.iter(|| cycle(&hit, inode))
    });

    let miss = Fs::with_cache(
        Arc::new(host.view()),
        CacheSettings {
            snapshot_ttl: Duration::ZERO,
            max_stale: Duration::ZERO,
            membership_ttl: Duration::ZERO,
            ..CacheSettings::default()
        },
    );
    c.bench_function("open+read+release proc/meminfo, cache miss", |b| {
        b.iter(|| cycle(&miss, inode))
    });
}

criterion_group!(benches, open_path);
criterion_main!(benches);
