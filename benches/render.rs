//! Every renderer on captured host files (a 2-CPU x86_64 host with cgroup v1) and on a synthetic 64-CPU
//! host built from the same blocks: what a snapshot refresh costs.

use cgview::model::cpu_time::{container_cpu_ticks, CpuUsage};
use cgview::model::io::DeviceIo;
use cgview::model::loadavg::{render_loadavg, LoadAverages, LoadavgTail};
use cgview::model::memory::{MemoryStat, MemoryState, Swap};
use cgview::parse::cpuacct::PerCpuUsage;
use cgview::parse::cpuset::parse_cpu_list;
use cgview::parse::diskstats::DeviceId;
use cgview::parse::flat_keyed::parse_flat_keyed;
use cgview::parse::meminfo::parse_host_meminfo;
use cgview::render::block_stat::render_block_stat;
use cgview::render::cpu_list::render_cpu_list;
use cgview::render::cpuinfo::render_cpuinfo;
use cgview::render::diskstats::render_diskstats;
use cgview::render::meminfo::render_meminfo;
use cgview::render::stat::{render_stat, CpuLines, ProcsCounts};
use cgview::render::swaps::render_swaps;
use cgview::render::uptime::{container_uptime, render_uptime};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/linux-6.18-x86_64-hybrid"
);

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

/// A host file with `cpus` CPUs: the first per-CPU cpuinfo block renumbered.
fn cpuinfo_with(cpus: u32) -> String {
    let captured = fixture("cpuinfo");
    let block = captured.split("\n\n").next().unwrap();
    (0..cpus)
        .map(|id| {
            let renumbered: Vec<String> = block
                .lines()
                .map(|l| {
                    if l.starts_with("processor") {
                        format!("processor\t: {id}")
                    } else {
                        l.to_owned()
                    }
                })
                .collect();
            renumbered.join("\n") + "\n\n"
        })
        .collect()
}

fn stat_with(cpus: u32) -> String {
    let mut text = String::from("cpu  4000 10 2000 90000 300 0 50 0 0 0\n");
    for id in 0..cpus {
        text.push_str(&format!("cpu{id} 100 1 50 2000 5 0 1 0 0 0\n"));
    }
    text.push_str("intr 1234 0 0 0\nctxt 99999\nbtime 1700000000\nprocesses 4242\nprocs_running 3\nprocs_blocked 0\nsoftirq 1 0 0 0 0 0 0 0 0 0 0\n");
    text
}

fn memory() -> MemoryState {
    MemoryState {
        limit_bytes: Some(512 << 20),
        usage_bytes: 100 << 20,
        stat: MemoryStat::from_v1(&parse_flat_keyed(&fixture("memory.stat"))),
        swap: Swap::NotAccounted,
    }
}

fn renderers(c: &mut Criterion) {
    let meminfo = fixture("meminfo");
    let memory = memory();
    c.bench_function("meminfo", |b| {
        b.iter(|| render_meminfo(black_box(&meminfo), black_box(&memory)).unwrap())
    });

    for cpus in [2u32, 64] {
        let host_cpuinfo = cpuinfo_with(cpus);
        let half = parse_cpu_list(&format!("0-{}", cpus / 2 - 1)).unwrap();
        c.bench_function(&format!("cpuinfo/{cpus}-cpu host, half visible"), |b| {
            b.iter(|| render_cpuinfo(black_box(&host_cpuinfo), black_box(&half)))
        });
        let host_stat = stat_with(cpus);
        let usage = CpuUsage {
            user_ns: 0,
            system_ns: 0,
            per_cpu: Some(
                (0..cpus)
                    .map(|cpu| PerCpuUsage {
                        cpu,
                        user_ns: 5_000_000_000,
                        system_ns: 1_000_000_000,
                    })
                    .collect(),
            ),
        };
        c.bench_function(&format!("stat/{cpus}-cpu host, half visible"), |b| {
            b.iter(|| {
                let ticks = container_cpu_ticks(&half, &usage, 1000.0, 100);
                render_stat(
                    black_box(&host_stat),
                    CpuLines::Container(&ticks),
                    Some(ProcsCounts {
                        running: 2,
                        blocked: 0,
                    }),
                )
                .unwrap()
            })
        });
        c.bench_function(&format!("cpu list/{cpus}-cpu host, half visible"), |b| {
            b.iter(|| render_cpu_list(black_box(&half)))
        });
    }

    c.bench_function("uptime", |b| {
        b.iter(|| render_uptime(container_uptime(black_box(5000.0), 4000.0, 2, 30.0)))
    });

    let diskstats = fixture("diskstats");
    let device = DeviceId {
        major: 254,
        minor: 0,
    };
    let mut io = DeviceIo::default();
    io.counters[4] = 20;
    io.counters[6] = 40_960;
    let container_io = vec![(device, io)];
    c.bench_function("diskstats", |b| {
        b.iter(|| render_diskstats(black_box(&diskstats), black_box(&container_io)).unwrap())
    });
    let block_stat = "  131776    10639  8486714   154156    32583    29469  9121408    25293        0    16632   180938    16731       79  3104312     1322     4780      166\n";
    c.bench_function("sys/block stat", |b| {
        b.iter(|| render_block_stat(black_box(block_stat), Some(&io)))
    });

    let swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
    let swap = memory.meminfo(&parse_host_meminfo(&meminfo).unwrap()).swap;
    c.bench_function("swaps", |b| b.iter(|| render_swaps(black_box(swaps), swap)));

    let loads = LoadAverages {
        averages: [1.5, 0.7, 0.2],
    };
    let tail = LoadavgTail {
        running: 2,
        total: 40,
        last_pid: 4242,
    };
    c.bench_function("loadavg", |b| {
        b.iter(|| render_loadavg(black_box(&loads), black_box(&tail)))
    });
}

criterion_group!(benches, renderers);
criterion_main!(benches);
