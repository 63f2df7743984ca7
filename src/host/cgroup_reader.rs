//! Reads a container's limits and usage from its cgroup directories into the version-independent model.

use super::error::{ReadError, WrapPath};
use super::files::FileSource;
use super::layout::CgroupVersion;
use super::resolve::CgroupDir;
use cgview_core::model::cpu::CpuLimits;
use cgview_core::model::cpu_time::CpuUsage;
use cgview_core::model::io::{BlockTraffic, ContainerIo, DeviceIo};
use cgview_core::model::memory::{MemoryStat, MemoryState, Swap};
use cgview_core::model::numa::{NodeSet, NumaStatVersion};
use cgview_core::model::vmstat::StatFlavor;
use cgview_core::parse::blkio::{parse_blkio, BlkioReadWrite};
use cgview_core::parse::cpu_quota::{effective_quota_cpus, parse_cfs, parse_cpu_max, CpuQuota};
use cgview_core::parse::cpuacct::{parse_usage_all, parse_usage_percpu, PerCpuUsage};
use cgview_core::parse::cpuset::{parse_cpu_list, CpuSet};
use cgview_core::parse::diskstats::DeviceId;
use cgview_core::parse::flat_keyed::{parse_flat_keyed, FlatKeyed};
use cgview_core::parse::io_stat::parse_io_stat;
use cgview_core::parse::limit::{effective_limit, parse_counter, parse_limit};
use cgview_core::parse::numa_stat::{parse_numa_stat, NumaStat};
use std::path::Path;

mod v1 {
    pub const MEMORY_LIMIT: &str = "memory.limit_in_bytes";
    pub const MEMORY_USAGE: &str = "memory.usage_in_bytes";
    pub const MEMORY_STAT: &str = "memory.stat";
    pub const MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";
    pub const MEMSW_USAGE: &str = "memory.memsw.usage_in_bytes";
    pub const SWAPPINESS: &str = "memory.swappiness";
    pub const CFS_QUOTA: &str = "cpu.cfs_quota_us";
    pub const CFS_PERIOD: &str = "cpu.cfs_period_us";
    pub const CPUACCT_USAGE: &str = "cpuacct.usage";
    /// Per CPU, split into user and system (Linux 4.7+).
    pub const CPUACCT_USAGE_ALL: &str = "cpuacct.usage_all";
    pub const CPUACCT_USAGE_PERCPU: &str = "cpuacct.usage_percpu";
    /// User and system time in clock ticks; only their ratio is used.
    pub const CPUACCT_STAT: &str = "cpuacct.stat";
    pub const MEMORY_KMEM_SLABINFO: &str = "memory.kmem.slabinfo";
    /// `oom_kill` since Linux 4.13.
    pub const MEMORY_OOM_CONTROL: &str = "memory.oom_control";
    pub const CPUSET_EFFECTIVE: &str = "cpuset.effective_cpus";
    pub const CPUSET_CONFIGURED: &str = "cpuset.cpus";
    pub const MEMS_EFFECTIVE: &str = "cpuset.effective_mems";
    pub const MEMS_CONFIGURED: &str = "cpuset.mems";
    /// Pages per node of `total`, `file`, `anon`, `unevictable` and their `hierarchical_` forms.
    pub const MEMORY_NUMA_STAT: &str = "memory.numa_stat";
    /// `_recursive` variants include the container's sub-cgroups; older kernels only have the plain ones.
    pub const IO_SERVICE_BYTES: [&str; 2] = [
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.throttle.io_service_bytes",
    ];
    pub const IO_SERVICED: [&str; 2] = [
        "blkio.throttle.io_serviced_recursive",
        "blkio.throttle.io_serviced",
    ];
    /// Present only with the legacy CFQ scheduler (before Linux 5.0).
    pub const IO_MERGED: [&str; 2] = ["blkio.io_merged_recursive", "blkio.io_merged"];
    pub const IO_SERVICE_TIME: [&str; 2] =
        ["blkio.io_service_time_recursive", "blkio.io_service_time"];
    pub const IO_WAIT_TIME: [&str; 2] = ["blkio.io_wait_time_recursive", "blkio.io_wait_time"];
}

mod v2 {
    pub const MEMORY_MAX: &str = "memory.max";
    pub const MEMORY_CURRENT: &str = "memory.current";
    pub const MEMORY_STAT: &str = "memory.stat";
    pub const SWAP_MAX: &str = "memory.swap.max";
    pub const SWAP_CURRENT: &str = "memory.swap.current";
    /// Hierarchical event counts, `oom_kill` among them.
    pub const MEMORY_EVENTS: &str = "memory.events";
    pub const CPU_MAX: &str = "cpu.max";
    pub const CPU_STAT: &str = "cpu.stat";
    pub const CPUSET_EFFECTIVE: &str = "cpuset.cpus.effective";
    pub const MEMS_EFFECTIVE: &str = "cpuset.mems.effective";
    /// Bytes per node of each `memory.stat` key the kernel splits by node.
    pub const MEMORY_NUMA_STAT: &str = "memory.numa_stat";
    pub const IO_STAT: &str = "io.stat";
}

/// Memory limit, usage, breakdown and swap of the container whose memory cgroup is `dir`.
pub fn read_memory(files: &dyn FileSource, dir: &CgroupDir) -> Result<MemoryState, ReadError> {
    read_memory_and_stat(files, dir).map(|(memory, _)| memory)
}

/// What a container's `/proc/vmstat` is computed from, besides its block I/O.
#[derive(Debug, Clone)]
pub struct VmSources {
    /// As [`read_memory`] reads it, for the lines meminfo shows too.
    pub memory: MemoryState,
    /// The whole `memory.stat` the memory was read from, for the event counters.
    pub stat: FlatKeyed,
    pub flavor: StatFlavor,
    /// OOM kills in the cgroup; `None` where the kernel does not count them.
    pub oom_kills: Option<u64>,
}

/// The memory side of the `/proc/vmstat` of the container whose memory cgroup is `dir`.
pub fn read_vm_sources(files: &dyn FileSource, dir: &CgroupDir) -> Result<VmSources, ReadError> {
    let (memory, stat) = read_memory_and_stat(files, dir)?;
    let (flavor, events) = match dir.version {
        CgroupVersion::V1 => (StatFlavor::V1, v1::MEMORY_OOM_CONTROL),
        CgroupVersion::V2 => (StatFlavor::V2, v2::MEMORY_EVENTS),
    };
    let oom_kills = files
        .read_optional_text(&dir.file(events))?
        .and_then(|text| parse_flat_keyed(&text).get("oom_kill"));
    Ok(VmSources {
        memory,
        stat,
        flavor,
        oom_kills,
    })
}

fn read_memory_and_stat(
    files: &dyn FileSource,
    dir: &CgroupDir,
) -> Result<(MemoryState, FlatKeyed), ReadError> {
    match dir.version {
        CgroupVersion::V1 => read_memory_v1(files, dir),
        CgroupVersion::V2 => read_memory_v2(files, dir),
    }
}

fn read_memory_v1(
    files: &dyn FileSource,
    dir: &CgroupDir,
) -> Result<(MemoryState, FlatKeyed), ReadError> {
    let limit_bytes = read_limit_chain(files, dir, v1::MEMORY_LIMIT)?;
    let usage_bytes = read_counter(files, &dir.file(v1::MEMORY_USAGE))?;
    let raw_stat = parse_flat_keyed(&files.read_text(&dir.file(v1::MEMORY_STAT))?);
    let stat = MemoryStat::from_v1(&raw_stat);
    // Without swap accounting (`swapaccount=0`, or a kernel without it) the memsw files do not exist.
    let swap = match files.read_optional_text(&dir.file(v1::MEMSW_USAGE))? {
        None => Swap::NotAccounted,
        Some(memsw_usage) => {
            let memsw_usage = parse_counter(&memsw_usage).wrap_path(&dir.file(v1::MEMSW_USAGE))?;
            let memsw_limit = read_limit_chain(files, dir, v1::MEMSW_LIMIT)?;
            let swappiness = files.read_optional_text(&dir.file(v1::SWAPPINESS))?;
            Swap::from_v1_memsw(
                memsw_limit,
                memsw_usage,
                limit_bytes,
                usage_bytes,
                swappiness.is_none_or(|s| s.trim() != "0"),
            )
        }
    };
    let memory = MemoryState {
        limit_bytes,
        usage_bytes,
        stat,
        swap,
    };
    Ok((memory, raw_stat))
}

fn read_memory_v2(
    files: &dyn FileSource,
    dir: &CgroupDir,
) -> Result<(MemoryState, FlatKeyed), ReadError> {
    let limit_bytes = read_limit_chain(files, dir, v2::MEMORY_MAX)?;
    let usage_bytes = read_counter(files, &dir.file(v2::MEMORY_CURRENT))?;
    let raw_stat = parse_flat_keyed(&files.read_text(&dir.file(v2::MEMORY_STAT))?);
    let stat = MemoryStat::from_v2(&raw_stat);
    let swap = match files.read_optional_text(&dir.file(v2::SWAP_CURRENT))? {
        None => Swap::NotAccounted,
        Some(current) => Swap::Accounted {
            limit_bytes: read_limit_chain(files, dir, v2::SWAP_MAX)?,
            usage_bytes: parse_counter(&current).wrap_path(&dir.file(v2::SWAP_CURRENT))?,
            may_swap: true,
        },
    };
    let memory = MemoryState {
        limit_bytes,
        usage_bytes,
        stat,
        swap,
    };
    Ok((memory, raw_stat))
}

/// The smallest limit in `file_name` over `dir` and its ancestors. Ancestors without the file (the root
/// cgroup on v2) do not limit. The container's own file must be readable: if it vanished, so did the cgroup.
fn read_limit_chain(
    files: &dyn FileSource,
    dir: &CgroupDir,
    file_name: &str,
) -> Result<Option<u64>, ReadError> {
    let mut limits = Vec::new();
    for (depth, cgroup) in dir.chain().enumerate() {
        let path = cgroup.join(file_name);
        let text = if depth == 0 && !dir.is_root() {
            Some(files.read_text(&path)?)
        } else {
            files.read_optional_text(&path)?
        };
        if let Some(text) = text {
            limits.push(parse_limit(&text).wrap_path(&path)?);
        }
    }
    Ok(effective_limit(limits))
}

fn read_counter(files: &dyn FileSource, path: &Path) -> Result<u64, ReadError> {
    parse_counter(&files.read_text(path)?).wrap_path(path)
}

/// The container's cpuset and tightest quota. Either controller may be absent (`None`).
pub fn read_cpu_limits(
    files: &dyn FileSource,
    cpu: Option<&CgroupDir>,
    cpuset: Option<&CgroupDir>,
) -> Result<CpuLimits, ReadError> {
    let quota_cpus = match cpu {
        Some(dir) => effective_quota_cpus(read_quota_chain(files, dir)?),
        None => None,
    };
    let cpuset = match cpuset {
        Some(dir) => read_cpuset(files, dir)?,
        None => None,
    };
    Ok(CpuLimits { cpuset, quota_cpus })
}

fn read_quota_chain(
    files: &dyn FileSource,
    dir: &CgroupDir,
) -> Result<Vec<Option<CpuQuota>>, ReadError> {
    let mut quotas = Vec::new();
    for cgroup in dir.chain() {
        let quota = match dir.version {
            CgroupVersion::V2 => {
                let path = cgroup.join(v2::CPU_MAX);
                match files.read_optional_text(&path)? {
                    Some(text) => parse_cpu_max(&text).wrap_path(&path)?,
                    None => None,
                }
            }
            CgroupVersion::V1 => {
                let quota_path = cgroup.join(v1::CFS_QUOTA);
                let period_path = cgroup.join(v1::CFS_PERIOD);
                match (
                    files.read_optional_text(&quota_path)?,
                    files.read_optional_text(&period_path)?,
                ) {
                    (Some(quota), Some(period)) => {
                        parse_cfs(&quota, &period).wrap_path(&quota_path)?
                    }
                    _ => None,
                }
            }
        };
        quotas.push(quota);
    }
    Ok(quotas)
}

/// The effective cpuset of the nearest cgroup that has one (on v2 the file exists only where the cpuset
/// controller is enabled). The effective set is what the kernel applies, so it is preferred.
fn read_cpuset(files: &dyn FileSource, dir: &CgroupDir) -> Result<Option<CpuSet>, ReadError> {
    let names: &[&str] = match dir.version {
        CgroupVersion::V1 => &[v1::CPUSET_EFFECTIVE, v1::CPUSET_CONFIGURED],
        CgroupVersion::V2 => &[v2::CPUSET_EFFECTIVE],
    };
    for cgroup in dir.chain() {
        for name in names {
            let path = cgroup.join(name);
            if let Some(text) = files.read_optional_text(&path)? {
                let set = parse_cpu_list(&text).wrap_path(&path)?;
                // An unpopulated v1 cpuset is empty; the tasks in it run on the parent's CPUs.
                if !set.is_empty() {
                    return Ok(Some(set));
                }
            }
        }
    }
    Ok(None)
}

/// The memory nodes the container may allocate from: the effective set of the nearest cgroup that has
/// one, as [`read_cpuset`] finds CPUs; `None` when no cgroup up the chain has a set.
pub fn read_memory_nodes(
    files: &dyn FileSource,
    dir: &CgroupDir,
) -> Result<Option<NodeSet>, ReadError> {
    let names: &[&str] = match dir.version {
        CgroupVersion::V1 => &[v1::MEMS_EFFECTIVE, v1::MEMS_CONFIGURED],
        CgroupVersion::V2 => &[v2::MEMS_EFFECTIVE],
    };
    for cgroup in dir.chain() {
        for name in names {
            let path = cgroup.join(name);
            if let Some(text) = files.read_optional_text(&path)? {
                let set = parse_cpu_list(&text).wrap_path(&path)?;
                if !set.is_empty() {
                    return Ok(Some(set));
                }
            }
        }
    }
    Ok(None)
}

/// The container's memory per node (`memory.numa_stat`) and its format; an empty table when the kernel
/// has no such file (built without NUMA).
pub fn read_numa_stat(
    files: &dyn FileSource,
    dir: &CgroupDir,
) -> Result<(NumaStat, NumaStatVersion), ReadError> {
    let (name, version) = match dir.version {
        CgroupVersion::V1 => (v1::MEMORY_NUMA_STAT, NumaStatVersion::V1),
        CgroupVersion::V2 => (v2::MEMORY_NUMA_STAT, NumaStatVersion::V2),
    };
    let path = dir.file(name);
    let stat = match files.read_optional_text(&path)? {
        Some(text) => parse_numa_stat(&text).wrap_path(&path)?,
        None => NumaStat::default(),
    };
    Ok((stat, version))
}

/// Total CPU time the container has used, in nanoseconds; `None` when the kernel does not account it.
pub fn read_cpu_usage_ns(
    files: &dyn FileSource,
    dir: &CgroupDir,
) -> Result<Option<u64>, ReadError> {
    match dir.version {
        CgroupVersion::V1 => {
            let path = dir.file(v1::CPUACCT_USAGE);
            files
                .read_optional_text(&path)?
                .map(|text| parse_counter(&text).wrap_path(&path))
                .transpose()
        }
        CgroupVersion::V2 => {
            let path = dir.file(v2::CPU_STAT);
            Ok(files
                .read_optional_text(&path)?
                .and_then(|text| parse_flat_keyed(&text).get("usage_usec"))
                .map(|usec| usec.saturating_mul(1000)))
        }
    }
}

/// The container's CPU time split into user and system, per CPU where the kernel provides it; `None`
/// when the kernel does not account it.
pub fn read_cpu_usage(
    files: &dyn FileSource,
    dir: &CgroupDir,
) -> Result<Option<CpuUsage>, ReadError> {
    match dir.version {
        CgroupVersion::V1 => read_cpu_usage_v1(files, dir),
        CgroupVersion::V2 => {
            let path = dir.file(v2::CPU_STAT);
            let Some(text) = files.read_optional_text(&path)? else {
                return Ok(None);
            };
            let stat = parse_flat_keyed(&text);
            let usec = |key| stat.get(key).map(|v: u64| v.saturating_mul(1000));
            Ok(
                match (usec("user_usec"), usec("system_usec"), usec("usage_usec")) {
                    (Some(user_ns), Some(system_ns), _) => Some(CpuUsage {
                        user_ns,
                        system_ns,
                        per_cpu: None,
                    }),
                    (_, _, Some(usage_ns)) => Some(CpuUsage {
                        user_ns: usage_ns,
                        system_ns: 0,
                        per_cpu: None,
                    }),
                    _ => None,
                },
            )
        }
    }
}

fn read_cpu_usage_v1(
    files: &dyn FileSource,
    dir: &CgroupDir,
) -> Result<Option<CpuUsage>, ReadError> {
    let all_path = dir.file(v1::CPUACCT_USAGE_ALL);
    if let Some(text) = files.read_optional_text(&all_path)? {
        let per_cpu = parse_usage_all(&text).wrap_path(&all_path)?;
        return Ok(Some(usage_from_per_cpu(per_cpu)));
    }
    // Kernels before 4.7: per-CPU totals, split by the cgroup-wide user/system ratio.
    let percpu_path = dir.file(v1::CPUACCT_USAGE_PERCPU);
    let Some(text) = files.read_optional_text(&percpu_path)? else {
        return Ok(None);
    };
    let totals = parse_usage_percpu(&text).wrap_path(&percpu_path)?;
    let ratio = files
        .read_optional_text(&dir.file(v1::CPUACCT_STAT))?
        .map(|text| parse_flat_keyed(&text))
        .and_then(|stat| {
            let user = stat.get("user")?;
            let system = stat.get("system")?;
            let sum = user.checked_add(system).filter(|&s| s > 0)?;
            Some(user as f64 / sum as f64)
        })
        .unwrap_or(1.0);
    let per_cpu = totals
        .into_iter()
        .enumerate()
        .map(|(cpu, total)| {
            let user_ns = (total as f64 * ratio) as u64;
            PerCpuUsage {
                cpu: u32::try_from(cpu).unwrap_or(u32::MAX),
                user_ns,
                system_ns: total.saturating_sub(user_ns),
            }
        })
        .collect();
    Ok(Some(usage_from_per_cpu(per_cpu)))
}

fn usage_from_per_cpu(per_cpu: Vec<PerCpuUsage>) -> CpuUsage {
    let (user_ns, system_ns) = per_cpu.iter().fold((0u64, 0u64), |(user, system), u| {
        (
            user.saturating_add(u.user_ns),
            system.saturating_add(u.system_ns),
        )
    });
    CpuUsage {
        user_ns,
        system_ns,
        per_cpu: Some(per_cpu),
    }
}

/// The container's own slab caches (v1 `memory.kmem.slabinfo`); `None` when the kernel has none for the
/// cgroup (v2, or Linux 5.9+ where the file exists but is empty because slab caches are shared).
pub fn read_slabinfo(files: &dyn FileSource, dir: &CgroupDir) -> Result<Option<String>, ReadError> {
    if dir.version != CgroupVersion::V1 {
        return Ok(None);
    }
    Ok(files
        .read_optional_text(&dir.file(v1::MEMORY_KMEM_SLABINFO))?
        .filter(|text| text.starts_with("slabinfo - version")))
}

/// The container's pressure (PSI) file `name` (`cpu.pressure`, ...) from its unified-hierarchy cgroup;
/// `None` when the kernel does not provide it.
pub fn read_pressure(
    files: &dyn FileSource,
    dir: &CgroupDir,
    name: &str,
) -> Result<Option<String>, ReadError> {
    match files.read_optional_text(&dir.file(name)) {
        // Disabled PSI (`psi=0`, or cgroup.pressure set to 0) makes the file fail with EOPNOTSUPP.
        Err(ReadError::Io { source, .. }) if source.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            Ok(None)
        }
        other => other,
    }
}

/// The container's I/O per device.
pub fn read_io(files: &dyn FileSource, dir: &CgroupDir) -> Result<ContainerIo, ReadError> {
    match dir.version {
        CgroupVersion::V2 => {
            let path = dir.file(v2::IO_STAT);
            Ok(parse_io_stat(&files.read_text(&path)?)
                .iter()
                .map(|(device, entry)| (*device, DeviceIo::from_io_stat(entry)))
                .collect())
        }
        CgroupVersion::V1 => read_io_v1(files, dir),
    }
}

/// The container's reads and writes over all devices (for `/proc/vmstat`'s `pgpgin` and `pgpgout`). A v2
/// cgroup without the io controller has no `io.stat`: no I/O is accounted to it, which is 0 here, not an
/// error that would cost the memory lines too.
pub fn read_block_traffic(
    files: &dyn FileSource,
    dir: &CgroupDir,
) -> Result<BlockTraffic, ReadError> {
    let io = match dir.version {
        CgroupVersion::V2 => match files.read_optional_text(&dir.file(v2::IO_STAT))? {
            Some(text) => parse_io_stat(&text)
                .iter()
                .map(|(device, entry)| (*device, DeviceIo::from_io_stat(entry)))
                .collect(),
            None => Vec::new(),
        },
        CgroupVersion::V1 => read_io_v1(files, dir)?,
    };
    Ok(BlockTraffic::of(&io))
}

fn read_io_v1(files: &dyn FileSource, dir: &CgroupDir) -> Result<ContainerIo, ReadError> {
    let bytes = read_blkio_first(files, dir, &v1::IO_SERVICE_BYTES)?.unwrap_or_default();
    let serviced = read_blkio_first(files, dir, &v1::IO_SERVICED)?.unwrap_or_default();
    let merged = read_blkio_first(files, dir, &v1::IO_MERGED)?;
    let service_time = read_blkio_first(files, dir, &v1::IO_SERVICE_TIME)?;
    let wait_time = read_blkio_first(files, dir, &v1::IO_WAIT_TIME)?;

    let mut devices: Vec<DeviceId> = bytes.iter().chain(&serviced).map(|(d, _)| *d).collect();
    devices.sort_unstable();
    devices.dedup();
    let lookup = |table: &[(DeviceId, BlkioReadWrite)], device: DeviceId| {
        table
            .iter()
            .find_map(|(d, v)| (*d == device).then_some(*v))
            .unwrap_or_default()
    };
    let optional = |table: &Option<Vec<(DeviceId, BlkioReadWrite)>>, device: DeviceId| {
        table.as_deref().map(|t| lookup(t, device))
    };
    Ok(devices
        .into_iter()
        .map(|device| {
            let io = DeviceIo::from_blkio(
                lookup(&bytes, device),
                lookup(&serviced, device),
                optional(&merged, device),
                optional(&service_time, device),
                optional(&wait_time, device),
            );
            (device, io)
        })
        .collect())
}

/// Parses the first of `names` that exists in `dir`.
fn read_blkio_first(
    files: &dyn FileSource,
    dir: &CgroupDir,
    names: &[&str],
) -> Result<Option<Vec<(DeviceId, BlkioReadWrite)>>, ReadError> {
    for name in names {
        if let Some(text) = files.read_optional_text(&dir.file(name))? {
            return Ok(Some(parse_blkio(&text)));
        }
    }
    Ok(None)
}
