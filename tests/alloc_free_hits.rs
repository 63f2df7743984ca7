//! The cache-hit path allocates nothing: with every served file's snapshot cached, opening, reading (at 0,
//! in the middle, at the end) and releasing counts zero heap allocations on the reading thread. Fixture
//! tree, no root.

mod host_fixture;

use cgview::catalog::ServedFile;
use cgview::fs::{Caller, Fs, ReadInto};
use cgview::permissions::Credentials;
use cgview::service::cache::CacheSettings;
use host_fixture::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

/// Counts allocations made by threads that asked to be counted (the sampler thread allocates freely).
struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are thread-local
// `Cell`s with const initializers, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes through it).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note_allocation() {
    // `try_with`: during thread teardown the slots may be gone; those allocations are not ours.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = COUNT.try_with(|count| count.set(count.get() + 1));
        }
    });
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_in(body: impl FnOnce()) -> usize {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    body();
    COUNTING.with(|c| c.set(false));
    COUNT.with(|c| c.get())
}

/// One open + read-to-EOF (in two pieces) + release, as the FUSE adapter drives the tree.
fn cycle(tree: &Fs, inode: u64, caller: u32) -> usize {
    let handle = tree
        .open(&Caller::new(caller, Credentials::ROOT), inode, false)
        .unwrap();
    let first = tree
        .read(
            &Caller::new(caller, Credentials::ROOT),
            inode,
            handle,
            0,
            ReadInto::Buffer,
        )
        .unwrap();
    let middle = tree
        .read(
            &Caller::new(caller, Credentials::ROOT),
            inode,
            handle,
            (first.len() / 2) as u64,
            ReadInto::Buffer,
        )
        .unwrap();
    let end = tree
        .read(
            &Caller::new(caller, Credentials::ROOT),
            inode,
            handle,
            first.len() as u64,
            ReadInto::Buffer,
        )
        .unwrap();
    tree.release(handle);
    first.len() + middle.len() + end.len()
}

#[test]
fn cache_hit_open_and_every_read_allocate_nothing() {
    let host = hybrid_host();
    host.cpu_tree("0-3", &[0, 1, 2, 3]);
    for (name, text) in [
        ("stat", HOST_STAT),
        ("loadavg", HOST_LOADAVG),
        ("swaps", HOST_SWAPS),
        ("slabinfo", HOST_SLABINFO),
    ] {
        host.host_file(name, text);
    }
    v1_memory(&host, "/ctr", "536870912", 104_857_600);
    host.cgroup_file("cpu", "/ctr", "cpu.cfs_quota_us", "150000\n");
    host.cgroup_file("cpu", "/ctr", "cpu.cfs_period_us", "100000\n");
    host.cgroup_file("cpuset", "/ctr", "cpuset.effective_cpus", "0-3\n");
    host.cgroup_file(
        "cpuacct",
        "/ctr",
        "cpuacct.usage_all",
        "cpu user system\n0 1000 2000\n1 3000 4000\n2 0 0\n3 0 0\n",
    );
    host.cgroup_file("cpuacct", "/ctr", "tasks", "600\n");
    host.process(&Process::host(600, hybrid_membership("/ctr")));
    let settings = CacheSettings {
        snapshot_ttl: Duration::from_secs(3600),
        max_stale: Duration::from_secs(3600),
        membership_ttl: Duration::from_secs(3600),
        ..CacheSettings::default()
    };
    let tree = Fs::with_cache(Arc::new(host.view()), settings);

    let served: Vec<(ServedFile, u64)> = ServedFile::ALL
        .into_iter()
        .filter_map(|file| {
            Some((
                file,
                tree.walk(file.tree_path(), &Caller::new(600, Credentials::ROOT))
                    .ok()?
                    .inode,
            ))
        })
        .collect();
    assert!(served.len() >= 12, "{served:?}");
    let meminfo = served[0].1;
    assert!(cycle(&tree, meminfo, 600) > 1000, "meminfo is rendered");
    // Warm up: resolve the caller, render every snapshot, grow the handle table.
    for _ in 0..3 {
        for &(_, inode) in &served {
            // Some are legitimately empty here (diskstats of a container without I/O).
            cycle(&tree, inode, 600);
        }
    }
    for &(file, inode) in &served {
        let allocations = allocations_in(|| {
            for _ in 0..100 {
                cycle(&tree, inode, 600);
            }
        });
        assert_eq!(
            allocations, 0,
            "{file:?}: {allocations} allocations in 100 cache-hit cycles"
        );
    }
    let stats = tree.cache().stats();
    assert!(
        stats
            .snapshot_hits
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 100
    );
}
