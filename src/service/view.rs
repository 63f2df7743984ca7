//! Builds the bytes of a served file for a caller: resolve the caller's container, read its cgroups,
//! render; and, when any step fails, serve the host file and record why (see [`crate::service::fallback`]).

use crate::host::cgroup_reader::{
    read_block_traffic, read_cpu_limits, read_cpu_usage, read_cpu_usage_ns, read_io, read_memory,
    read_memory_nodes, read_numa_stat, read_pressure, read_slabinfo, read_vm_sources,
};
use crate::host::error::{read_text, ReadError, WrapPath};
use crate::host::files::{FileSource, OpenEachTime};
use crate::host::kernel_file::read_kernel_bytes;
use crate::host::resolve::{Anchor, CgroupDir, Container, Resolver};
use crate::service::counter_ledger::CounterLedger;
use crate::service::cpu_ledger::CpuLedger;
use crate::service::fallback::{FallbackCause, FallbackLog};
use crate::service::task_tracker::{
    ContainerAge, TaskTracker, TaskView, TrackRequest, TrackerSettings,
};
use cgview_core::catalog::{NodeAttr, ServedFile};
use cgview_core::error_chain;
use cgview_core::model::cpu::visible_cpus;
use cgview_core::model::cpu_time::container_cpu_ticks;
use cgview_core::model::loadavg::{render_loadavg, LoadavgTail};
use cgview_core::model::memory::{ContainerMeminfo, MemoryState};
use cgview_core::model::numa::{
    host_meminfo_of_nodes, split_memory, visible_nodes, HostNode, NodeSet,
};
use cgview_core::model::vmstat::{ContainerVm, MemoryStatKeys, PageUnits};
use cgview_core::parse::cpuset::{parse_cpu_list, CpuSet};
use cgview_core::parse::diskstats::DeviceId;
use cgview_core::parse::meminfo::parse_host_meminfo;
use cgview_core::parse::uptime::parse_uptime;
use cgview_core::parse::ParseError;
use cgview_core::render::block_stat::render_block_stat;
use cgview_core::render::cpu_list::{render_cpu_list, render_restricted_cpus, CpuListFormat};
use cgview_core::render::cpuinfo::render_cpuinfo;
use cgview_core::render::diskstats::render_diskstats;
use cgview_core::render::meminfo::render_meminfo;
use cgview_core::render::node::{
    render_node_cpulist, render_node_cpumap, render_node_distance, render_node_list,
    render_node_meminfo,
};
use cgview_core::render::stat::{render_stat, CpuLines, ProcsCounts};
use cgview_core::render::swaps::render_swaps;
use cgview_core::render::uptime::{container_uptime, render_uptime};
use cgview_core::render::vmstat::draft_vmstat;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Behaviour switches of the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewOptions {
    /// Count a CPU quota as fewer visible CPUs (on by default; LXCFS needs `--enable-cfs` for this).
    pub quota_aware: bool,
    /// The load average sampler's schedule and bounds.
    pub tracker: TrackerSettings,
}

impl Default for ViewOptions {
    fn default() -> Self {
        Self {
            quota_aware: true,
            tracker: TrackerSettings::default(),
        }
    }
}

/// How old the sampler's sample may be before a read of `/proc/stat` asks it for a new one (the counts
/// behind `procs_running`/`procs_blocked` are taken at the read either way, see
/// [`TaskTracker::view`]). vmstat and top read `/proc/stat` every second or more.
const STAT_TASKS_MAX_AGE: Duration = Duration::from_secs(1);

/// Where the bytes of a rendered file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Rendered for the caller's container.
    Container,
    /// The caller is the host (root cgroup, host pid namespace for uptime, or not visible to the daemon):
    /// the host file is its correct view.
    Host,
    /// The file could not be virtualized; the host file was served instead.
    Fallback(FallbackCause),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub source: Source,
}

/// Why a file could not be virtualized: the cause the failure table counts it under, and what to log.
#[derive(Debug)]
struct NotVirtualized {
    cause: FallbackCause,
    detail: String,
}

impl fmt::Display for NotVirtualized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// Builds views. Shared by every FUSE worker and by `cgview render`.
#[derive(Debug)]
pub struct View {
    resolver: Resolver,
    options: ViewOptions,
    fallbacks: FallbackLog,
    clock_ticks_per_sec: u64,
    cpu_ledger: CpuLedger,
    counter_ledger: CounterLedger,
    /// The base page size, the unit of `/proc/vmstat`'s gauges.
    page_bytes: u64,
    /// The PMD-sized THP, the unit of its huge-page gauges: read from sysfs at the first vmstat render.
    pmd_thp_bytes: OnceLock<Option<u64>>,
    tasks: Arc<TaskTracker>,
}

impl View {
    pub fn new(resolver: Resolver, options: ViewOptions) -> View {
        let clock_ticks_per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|t| u64::try_from(t).ok())
            .filter(|&t| t > 0)
            .unwrap_or(100);
        let page_bytes = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|size| u64::try_from(size).ok())
            .filter(|&size| size > 0)
            .unwrap_or(4096);
        let tasks = TaskTracker::new(resolver.paths().clone(), options.tracker);
        View {
            resolver,
            options,
            fallbacks: FallbackLog::default(),
            clock_ticks_per_sec,
            cpu_ledger: CpuLedger::default(),
            counter_ledger: CounterLedger::default(),
            page_bytes,
            pmd_thp_bytes: OnceLock::new(),
            tasks,
        }
    }

    pub fn fallbacks(&self) -> &FallbackLog {
        &self.fallbacks
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// The load average sampler.
    pub fn task_tracker(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Renders `file` for the caller with thread id `caller` (`None` when the caller is not visible in the
    /// daemon's pid namespace), resolving it and opening every file afresh: for one-off renders, each a
    /// read served (a fallback is counted). Fails only when the host file itself cannot be read.
    pub fn render(&self, file: ServedFile, caller: Option<u32>) -> Result<Rendered, ReadError> {
        let host_path = self.resolver.paths().served_file(file);
        let Some(tid) = caller else {
            return render_host(&host_path);
        };
        let rendered = match self.resolve(tid) {
            Ok(container) => self.render_for(file, &container, tid, &OpenEachTime)?,
            Err(error) => self.render_unresolved(file, &host_path, error)?,
        };
        if let Source::Fallback(cause) = rendered.source {
            self.count_fallback(file, cause);
        }
        Ok(rendered)
    }

    /// Renders `file` for `container` (resolved from reader `tid`), reading its cgroup files from `files`.
    /// A fallback is logged, not counted: whoever serves the render counts each read it answers with it
    /// ([`View::count_fallback`]).
    pub fn render_for(
        &self,
        file: ServedFile,
        container: &Container,
        tid: u32,
        files: &dyn FileSource,
    ) -> Result<Rendered, ReadError> {
        let host_path = self.resolver.paths().served_file(file);
        let host = match host_text(&host_path)? {
            Ok(text) => text,
            Err(odd) => return Ok(self.fell_back(file, odd.bytes, odd.failure)),
        };
        match self.virtualize(file, container, tid, &host, files) {
            Ok(Some(text)) => Ok(Rendered {
                bytes: text.into_bytes(),
                source: Source::Container,
            }),
            Ok(None) => Ok(host_rendered(host.into_bytes(), Source::Host)),
            Err(failure) => Ok(self.fell_back(file, host.into_bytes(), failure)),
        }
    }

    /// The host file, with the fallback logged (at most once a minute per file and cause).
    fn fell_back(&self, file: ServedFile, host: Vec<u8>, failure: NotVirtualized) -> Rendered {
        self.fallbacks.log(file, failure.cause, &failure);
        host_rendered(host, Source::Fallback(failure.cause))
    }

    /// Resolves a caller to its container. On failure, [`View::render_unresolved`] serves it.
    pub fn resolve(&self, tid: u32) -> Result<Container, ReadError> {
        self.resolver.resolve(tid)
    }

    /// The host file at `host_path`, served as `file` to a caller whose resolution failed with `error`:
    /// a fallback, logged and not counted (see [`View::render_for`]).
    pub fn render_unresolved(
        &self,
        file: ServedFile,
        host_path: &Path,
        error: ReadError,
    ) -> Result<Rendered, ReadError> {
        let host = read_host_bytes(host_path)?;
        Ok(self.fell_back(file, host, self.failure(error)))
    }

    /// Counts one read answered with the host file for `cause`.
    pub fn count_fallback(&self, file: ServedFile, cause: FallbackCause) {
        self.fallbacks.count_one(file, cause);
    }

    /// The CPUs `container` is shown, computed as its CPU files are rendered (`Ok(None)` when they are
    /// all of the host's online CPUs). A failure is logged under `cpu/online`, not counted: no file is
    /// served from it.
    pub fn visible_cpus_for(
        &self,
        container: &Container,
        files: &dyn FileSource,
    ) -> Result<Option<CpuSet>, FallbackCause> {
        self.restricted_cpus(container, files).map_err(|failure| {
            self.fallbacks
                .log(ServedFile::CpuOnline, failure.cause, &failure);
            failure.cause
        })
    }

    /// The NUMA nodes `container` is shown (`Ok(None)` when they are all of the host's online nodes),
    /// computed as its node files are rendered. A failure is logged under `node/online`, not counted.
    pub fn visible_nodes_for(
        &self,
        container: &Container,
        files: &dyn FileSource,
    ) -> Result<Option<NodeSet>, FallbackCause> {
        self.restricted_nodes(container, files).map_err(|failure| {
            self.fallbacks
                .log(ServedFile::NodeOnline, failure.cause, &failure);
            failure.cause
        })
    }

    /// File `attr` of node `node` (host file `host_file`) for `container`. A node's `meminfo` is made
    /// from `meminfo`, the container's `/proc/meminfo` as it is served now (its bytes and source), so the
    /// two always agree: a host `/proc/meminfo` (the caller's view is the host's, or fell back), or
    /// none, gives the host's node file.
    /// Fallbacks are logged under the served file with the same source ([`NodeAttr::fallback_file`])
    /// and counted as [`View::render_for`]'s are.
    pub fn render_node_attr_for(
        &self,
        attr: NodeAttr,
        node: u32,
        host_file: &Path,
        container: &Container,
        files: &dyn FileSource,
        meminfo: Option<(&[u8], Source)>,
    ) -> Result<Rendered, ReadError> {
        let host = match host_text(host_file)? {
            Ok(text) => text,
            Err(odd) => return Ok(self.fell_back(attr.fallback_file(), odd.bytes, odd.failure)),
        };
        let virtualized = match attr {
            NodeAttr::CpuList | NodeAttr::CpuMap => {
                self.restricted_cpus(container, files).and_then(|visible| {
                    let Some(visible) = visible else {
                        return Ok(None);
                    };
                    let text = match attr {
                        NodeAttr::CpuList => render_node_cpulist(&host, &visible),
                        _ => render_node_cpumap(&host, &visible),
                    };
                    text.wrap_path(host_file)
                        .map(Some)
                        .map_err(|e| self.failure(e))
                })
            }
            NodeAttr::Distance => self.restricted_nodes(container, files).and_then(|shown| {
                let Some(shown) = shown else {
                    return Ok(None);
                };
                let host_online = self.host_online_nodes()?;
                render_node_distance(&host, &host_online, &shown)
                    .wrap_path(host_file)
                    .map(Some)
                    .map_err(|e| self.failure(e))
            }),
            NodeAttr::Meminfo => match meminfo {
                Some((bytes, Source::Container)) => {
                    self.node_meminfo(node, container, files, bytes)
                }
                None | Some((_, Source::Host)) => Ok(None),
                Some((_, Source::Fallback(cause))) => Err(NotVirtualized {
                    cause,
                    detail: "the container's /proc/meminfo is the host's".to_owned(),
                }),
            },
        };
        match virtualized {
            Ok(Some(text)) => Ok(Rendered {
                bytes: text.into_bytes(),
                source: Source::Container,
            }),
            Ok(None) => Ok(host_rendered(host.into_bytes(), Source::Host)),
            Err(failure) => Ok(self.fell_back(attr.fallback_file(), host.into_bytes(), failure)),
        }
    }

    /// The host's `/proc/meminfo` as `container` sees the machine: with its memory nodes restricted
    /// (`cpuset.mems`), only those nodes' memory (see [`host_meminfo_of_nodes`]), so its `MemTotal` and
    /// `MemFree` never exceed what its nodes hold and each node's share of them fits in the node.
    fn host_meminfo_for<'h>(
        &self,
        container: &Container,
        files: &dyn FileSource,
        host: &'h str,
    ) -> Result<std::borrow::Cow<'h, str>, NotVirtualized> {
        let Some(shown) = self.restricted_nodes(container, files)? else {
            return Ok(std::borrow::Cow::Borrowed(host));
        };
        let texts = self.node_meminfos(&shown)?;
        let nodes: Vec<HostNode<'_>> = texts
            .iter()
            .map(|(id, text)| HostNode {
                id: *id,
                meminfo: text,
            })
            .collect();
        let path = self.node_file(shown.ids()[0], NodeAttr::Meminfo);
        host_meminfo_of_nodes(host, &nodes)
            .map(std::borrow::Cow::Owned)
            .wrap_path(&path)
            .map_err(|e| self.failure(e))
    }

    /// The host's `meminfo` of each of `nodes`.
    fn node_meminfos(&self, nodes: &NodeSet) -> Result<Vec<(u32, String)>, NotVirtualized> {
        nodes
            .ids()
            .iter()
            .map(|&id| {
                let path = self.node_file(id, NodeAttr::Meminfo);
                read_text(&path).map(|text| (id, text))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.failure(e))
    }

    /// Node `node`'s share of the container's memory, from `meminfo`, the container's `/proc/meminfo`,
    /// split over the nodes it is shown by its `memory.numa_stat`.
    fn node_meminfo(
        &self,
        node: u32,
        container: &Container,
        files: &dyn FileSource,
        meminfo: &[u8],
    ) -> Result<Option<String>, NotVirtualized> {
        let Some(memory_dir) = container_dir(container.cgroups.memory.as_ref(), "memory")? else {
            return Ok(None);
        };
        let shown = match self.restricted_nodes(container, files)? {
            Some(shown) => shown,
            None => self.host_online_nodes()?,
        };
        let texts = self.node_meminfos(&shown)?;
        let hosts: Vec<HostNode<'_>> = texts
            .iter()
            .map(|(id, text)| HostNode {
                id: *id,
                meminfo: text,
            })
            .collect();
        let (stat, version) = read_numa_stat(files, memory_dir).map_err(|e| self.failure(e))?;
        let meminfo = std::str::from_utf8(meminfo).map_err(|_| NotVirtualized {
            cause: FallbackCause::Unparsable,
            detail: "the container's /proc/meminfo is not text".to_owned(),
        })?;
        let path = self.node_file(node, NodeAttr::Meminfo);
        let split = split_memory(meminfo, &hosts, &stat, version)
            .wrap_path(&path)
            .map_err(|e| self.failure(e))?;
        let Some((memory, (_, host))) = split
            .iter()
            .zip(&texts)
            .find(|(memory, _)| memory.id == node)
        else {
            return Err(NotVirtualized {
                cause: FallbackCause::Unreadable,
                detail: format!("node {node} is not shown to the caller"),
            });
        };
        Ok(Some(render_node_meminfo(host, memory)))
    }

    /// The host file `attr` of node `node`.
    fn node_file(&self, node: u32, attr: NodeAttr) -> std::path::PathBuf {
        self.resolver
            .paths()
            .sys_file(format!("devices/system/node/node{node}/{}", attr.name()))
    }

    /// The host's online NUMA nodes.
    fn host_online_nodes(&self) -> Result<NodeSet, NotVirtualized> {
        let path = self.resolver.paths().served_file(ServedFile::NodeOnline);
        let text = read_text(&path).map_err(|e| self.failure(e))?;
        parse_cpu_list(&text)
            .wrap_path(&path)
            .map_err(|e| self.failure(e))
    }

    /// The container's visible nodes; `None` when they are all the host's online nodes.
    fn restricted_nodes(
        &self,
        container: &Container,
        files: &dyn FileSource,
    ) -> Result<Option<NodeSet>, NotVirtualized> {
        let Some(cpuset) = container.cgroups.cpuset.as_ref().and_then(|d| non_root(d)) else {
            return Ok(None);
        };
        // A kernel without NUMA support has no node directory, and every cgroup its one node.
        if !self
            .resolver
            .paths()
            .served_file(ServedFile::NodeOnline)
            .exists()
        {
            return Ok(None);
        }
        let mems = read_memory_nodes(files, cpuset).map_err(|e| self.failure(e))?;
        if mems.is_none() {
            return Ok(None);
        }
        let host_online = self.host_online_nodes()?;
        let shown = visible_nodes(&host_online, mems.as_ref());
        Ok((shown != host_online).then_some(shown))
    }

    /// `has_cpu`: the shown nodes that have a CPU the container is shown, so that it agrees with each
    /// node's `cpulist`.
    fn nodes_with_cpus(
        &self,
        container: &Container,
        host: &str,
        files: &dyn FileSource,
    ) -> Result<Option<String>, NotVirtualized> {
        let restricted_nodes = self.restricted_nodes(container, files)?;
        let restricted_cpus = self.restricted_cpus(container, files)?;
        if restricted_nodes.is_none() && restricted_cpus.is_none() {
            return Ok(None);
        }
        let shown = match restricted_nodes {
            Some(shown) => shown,
            None => self.host_online_nodes()?,
        };
        let mut with_cpus = Vec::new();
        for &node in shown.ids() {
            let has_visible_cpu = match &restricted_cpus {
                None => true,
                Some(visible) => {
                    let path = self.node_file(node, NodeAttr::CpuList);
                    let text = read_text(&path).map_err(|e| self.failure(e))?;
                    let cpus = parse_cpu_list(&text)
                        .wrap_path(&path)
                        .map_err(|e| self.failure(e))?;
                    !cpus.intersection(visible).is_empty()
                }
            };
            if has_visible_cpu {
                with_cpus.push(node);
            }
        }
        render_node_list(host, &NodeSet::from_ids(with_cpus))
            .wrap_path(&self.resolver.paths().served_file(ServedFile::NodeHasCpu))
            .map(Some)
            .map_err(|e| self.failure(e))
    }

    /// A block device's or partition's sysfs `stat` (`host_stat`, of device `device`) for `container`: its
    /// I/O there. Fallbacks are logged under `/proc/diskstats`, which has the same source, and counted as
    /// [`View::render_for`]'s are.
    pub fn render_block_stat_for(
        &self,
        host_stat: &std::path::Path,
        device: DeviceId,
        container: &Container,
        files: &dyn FileSource,
    ) -> Result<Rendered, ReadError> {
        let host = match host_text(host_stat)? {
            Ok(text) => text,
            Err(odd) => return Ok(self.fell_back(ServedFile::Diskstats, odd.bytes, odd.failure)),
        };
        let virtualized =
            container_dir(container.cgroups.io.as_ref(), "blkio/io").and_then(|dir| {
                let Some(dir) = dir else {
                    return Ok(None);
                };
                let io = read_io(files, dir).map_err(|e| self.failure(e))?;
                let device_io = io.iter().find(|(id, _)| *id == device).map(|(_, io)| io);
                Ok(Some(render_block_stat(&host, device_io)))
            });
        match virtualized {
            Ok(Some(text)) => Ok(Rendered {
                bytes: text.into_bytes(),
                source: Source::Container,
            }),
            Ok(None) => Ok(host_rendered(host.into_bytes(), Source::Host)),
            Err(failure) => Ok(self.fell_back(ServedFile::Diskstats, host.into_bytes(), failure)),
        }
    }

    /// A host file of the cpu directory that prints a set of CPUs (`host_file`, in `format`) for a container
    /// shown `visible` (see [`View::visible_cpus_for`]): the host's set restricted to those CPUs. The host
    /// file when the container sees every CPU, and as a fallback (logged under `cpu/online`, which has the
    /// same source) when its CPUs cannot be told or the host text is not of the format; counted as
    /// [`View::render_for`]'s are.
    pub fn render_cpu_list_for(
        &self,
        host_file: &Path,
        format: CpuListFormat,
        visible: &Result<Option<CpuSet>, FallbackCause>,
    ) -> Result<Rendered, ReadError> {
        let host = match host_text(host_file)? {
            Ok(text) => text,
            Err(odd) => return Ok(self.fell_back(ServedFile::CpuOnline, odd.bytes, odd.failure)),
        };
        let visible = match visible {
            Ok(Some(visible)) => visible,
            Ok(None) => return Ok(host_rendered(host.into_bytes(), Source::Host)),
            // Logged where the visible CPUs were computed.
            Err(cause) => return Ok(host_rendered(host.into_bytes(), Source::Fallback(*cause))),
        };
        match render_restricted_cpus(&host, format, visible).wrap_path(host_file) {
            Ok(text) => Ok(Rendered {
                bytes: text.into_bytes(),
                source: Source::Container,
            }),
            Err(error) => {
                let failure = self.failure(error);
                Ok(self.fell_back(ServedFile::CpuOnline, host.into_bytes(), failure))
            }
        }
    }

    /// `Ok(None)` when the caller's correct view is the host file.
    fn virtualize(
        &self,
        file: ServedFile,
        container: &Container,
        tid: u32,
        host: &str,
        files: &dyn FileSource,
    ) -> Result<Option<String>, NotVirtualized> {
        match file {
            ServedFile::Meminfo => {
                let Some(dir) = container_dir(container.cgroups.memory.as_ref(), "memory")? else {
                    return Ok(None);
                };
                let memory = read_memory(files, dir).map_err(|e| self.failure(e))?;
                let host = self.host_meminfo_for(container, files, host)?;
                self.rendered(file, render_meminfo(&host, &memory))
            }
            ServedFile::Cpuinfo => Ok(self
                .restricted_cpus(container, files)?
                .map(|visible| render_cpuinfo(host, &visible))),
            ServedFile::CpuOnline | ServedFile::CpuPresent | ServedFile::CpuPossible => Ok(self
                .restricted_cpus(container, files)?
                .map(|visible| render_cpu_list(&visible))),
            // Every CPU the container is shown is online.
            ServedFile::CpuOffline => Ok(self
                .restricted_cpus(container, files)?
                .map(|_| "\n".to_owned())),
            ServedFile::NodeHasCpu => self.nodes_with_cpus(container, host, files),
            ServedFile::NodeOnline
            | ServedFile::NodePossible
            | ServedFile::NodeHasMemory
            | ServedFile::NodeHasNormalMemory
            | ServedFile::NodeHasHighMemory
            | ServedFile::NodeHasGenericInitiator => Ok(self
                .restricted_nodes(container, files)?
                .map(|shown| render_node_list(host, &shown))
                .transpose()
                .wrap_path(&self.resolver.paths().served_file(file))
                .map_err(|e| self.failure(e))?),
            ServedFile::Uptime => self.uptime(container, host, files),
            ServedFile::Stat => self.stat(container, tid, host, files),
            ServedFile::Loadavg => self.loadavg(container, tid, host),
            ServedFile::Swaps => {
                let Some(dir) = container_dir(container.cgroups.memory.as_ref(), "memory")? else {
                    return Ok(None);
                };
                let memory = read_memory(files, dir).map_err(|e| self.failure(e))?;
                // The swap the container's meminfo shows, derived the same way from the same host figures.
                Ok(Some(render_swaps(
                    host,
                    self.container_meminfo(&memory)?.swap,
                )))
            }
            ServedFile::Vmstat => self.vmstat(container, host, files),
            ServedFile::PressureCpu | ServedFile::PressureMemory | ServedFile::PressureIo => {
                // No unified hierarchy (a pure v1 host): the kernel keeps no per-cgroup pressure.
                let Some(dir) = container.cgroups.unified.as_ref().and_then(non_root) else {
                    return Ok(None);
                };
                let name = file.cgroup_pressure_file().unwrap_or("cpu.pressure");
                match read_pressure(files, dir, name).map_err(|e| self.failure(e))? {
                    Some(text) => Ok(Some(text)),
                    None => Err(NotVirtualized {
                        cause: FallbackCause::MissingController,
                        detail: format!("{} has no {name}", dir.path().display()),
                    }),
                }
            }
            ServedFile::Slabinfo => {
                let Some(dir) = container_dir(container.cgroups.memory.as_ref(), "memory")? else {
                    return Ok(None);
                };
                // Linux 5.9+ shares slab caches between cgroups: the host's file is then the view.
                read_slabinfo(files, dir).map_err(|e| self.failure(e))
            }
            ServedFile::Diskstats => {
                let Some(dir) = container_dir(container.cgroups.io.as_ref(), "blkio/io")? else {
                    return Ok(None);
                };
                let io = read_io(files, dir).map_err(|e| self.failure(e))?;
                self.rendered(file, render_diskstats(host, &io))
            }
        }
    }

    /// A renderer's result; a parse error there concerns the host file.
    fn rendered(
        &self,
        file: ServedFile,
        text: Result<String, ParseError>,
    ) -> Result<Option<String>, NotVirtualized> {
        text.wrap_path(&self.resolver.paths().served_file(file))
            .map(Some)
            .map_err(|e| self.failure(e))
    }

    /// MemTotal, MemFree, the swap totals and the rest as the container's meminfo shows them, for the
    /// files that must agree with it (swaps, vmstat).
    /// The container's meminfo figures (in kB) from its memory cgroup and the host's meminfo at this
    /// moment: what `proc/swaps` and `proc/vmstat` show agrees with its `proc/meminfo`.
    fn container_meminfo(&self, memory: &MemoryState) -> Result<ContainerMeminfo, NotVirtualized> {
        let meminfo_path = self.resolver.paths().served_file(ServedFile::Meminfo);
        let meminfo = read_text(&meminfo_path).map_err(|e| self.failure(e))?;
        let host_meminfo = parse_host_meminfo(&meminfo)
            .wrap_path(&meminfo_path)
            .map_err(|e| self.failure(e))?;
        Ok(memory.meminfo(&host_meminfo))
    }

    /// `/proc/vmstat`: the memory cgroup's gauges and counters, the I/O cgroup's traffic, and every
    /// counter settled against what the container was last shown.
    fn vmstat(
        &self,
        container: &Container,
        host: &str,
        files: &dyn FileSource,
    ) -> Result<Option<String>, NotVirtualized> {
        let Some(dir) = container_dir(container.cgroups.memory.as_ref(), "memory")? else {
            return Ok(None);
        };
        let sources = read_vm_sources(files, dir).map_err(|e| self.failure(e))?;
        // Without an I/O cgroup of its own (none mounted, or the root's) no I/O is the container's.
        let io = match container.cgroups.io.as_ref().and_then(non_root) {
            Some(io_dir) => Some(read_block_traffic(files, io_dir).map_err(|e| self.failure(e))?),
            None => None,
        };
        let vm = ContainerVm {
            memory: &sources.memory,
            mem_free_bytes: self
                .container_meminfo(&sources.memory)?
                .mem_free
                .saturating_mul(1024),
            stat: MemoryStatKeys {
                flavor: sources.flavor,
                raw: &sources.stat,
            },
            io,
            oom_kills: sources.oom_kills,
        };
        let host_path = self.resolver.paths().served_file(ServedFile::Vmstat);
        let mut draft = draft_vmstat(host, &vm, self.page_units())
            .wrap_path(&host_path)
            .map_err(|e| self.failure(e))?;
        self.counter_ledger
            .settle(&container_key(container, dir), |carry| {
                draft.settle_counters(carry)
            });
        Ok(Some(draft.text()))
    }

    fn page_units(&self) -> PageUnits {
        let pmd_thp_bytes = *self.pmd_thp_bytes.get_or_init(|| {
            let path = self
                .resolver
                .paths()
                .sys_file("kernel/mm/transparent_hugepage/hpage_pmd_size");
            // Absent without THP in the kernel: then no cgroup has huge pages to show.
            read_text(&path)
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .filter(|&size: &u64| size > 0)
        });
        PageUnits {
            page_bytes: self.page_bytes,
            pmd_thp_bytes,
        }
    }

    /// The host's online CPUs.
    fn host_online(&self) -> Result<CpuSet, NotVirtualized> {
        let path = self.resolver.paths().served_file(ServedFile::CpuOnline);
        let text = read_text(&path).map_err(|e| self.failure(e))?;
        parse_cpu_list(&text)
            .wrap_path(&path)
            .map_err(|e| self.failure(e))
    }

    /// The container's visible CPUs; `None` when they are all the host's online CPUs.
    fn restricted_cpus(
        &self,
        container: &Container,
        files: &dyn FileSource,
    ) -> Result<Option<CpuSet>, NotVirtualized> {
        let cpu = container.cgroups.cpu.as_ref().and_then(|d| non_root(d));
        let cpuset = container.cgroups.cpuset.as_ref().and_then(|d| non_root(d));
        if cpu.is_none() && cpuset.is_none() {
            return Ok(None);
        }
        let host_online = self.host_online()?;
        let limits = read_cpu_limits(files, cpu, cpuset).map_err(|e| self.failure(e))?;
        let visible = visible_cpus(&host_online, &limits, self.options.quota_aware);
        Ok((visible != host_online).then_some(visible))
    }

    /// `/proc/stat`: the container's CPU time on its visible CPUs (or the host's lines of those CPUs when
    /// its CPU time is not accounted apart), and its task counts.
    fn stat(
        &self,
        container: &Container,
        tid: u32,
        host: &str,
        files: &dyn FileSource,
    ) -> Result<Option<String>, NotVirtualized> {
        let accounting = container.cgroups.cpuacct.as_ref().and_then(non_root);
        let restricted = self.restricted_cpus(container, files)?;
        let tasks_dir = tasks_dir(container);
        if accounting.is_none() && restricted.is_none() && tasks_dir.is_none() {
            return Ok(None);
        }
        let procs = match tasks_dir {
            Some(dir) => {
                let tasks = self.task_view(container, dir, tid, STAT_TASKS_MAX_AGE)?;
                Some(ProcsCounts {
                    running: tasks.running,
                    blocked: tasks.blocked,
                })
            }
            None => None,
        };
        let visible = match restricted {
            Some(visible) => visible,
            None => self.host_online()?,
        };
        let usage = match accounting {
            Some(dir) => read_cpu_usage(files, dir)
                .map_err(|e| self.failure(e))?
                .map(|usage| (dir, usage)),
            None => None,
        };
        let text = match usage {
            Some((dir, usage)) => {
                let up_secs = self.container_up_secs(container)?;
                let ticks =
                    container_cpu_ticks(&visible, &usage, up_secs, self.clock_ticks_per_sec);
                let up_ticks = (up_secs * self.clock_ticks_per_sec as f64) as u64;
                let shown = self
                    .cpu_ledger
                    .settle(&container_key(container, dir), up_ticks, ticks);
                render_stat(host, CpuLines::Container(&shown), procs)
            }
            None => render_stat(host, CpuLines::HostSubset(&visible), procs),
        };
        self.rendered(ServedFile::Stat, text)
    }

    /// `/proc/loadavg` from the sampler's per-container averages.
    fn loadavg(
        &self,
        container: &Container,
        tid: u32,
        host: &str,
    ) -> Result<Option<String>, NotVirtualized> {
        let Some(dir) = tasks_dir(container) else {
            return Ok(None);
        };
        let max_age = self.options.tracker.interval;
        let tasks = self.task_view(container, dir, tid, max_age)?;
        let host_last_pid = host
            .split_ascii_whitespace()
            .nth(4)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let tail = LoadavgTail {
            running: tasks.running,
            total: tasks.total,
            last_pid: tasks.last_pid.map_or(host_last_pid, u64::from),
        };
        Ok(Some(render_loadavg(&tasks.loads, &tail)))
    }

    fn task_view(
        &self,
        container: &Container,
        dir: &CgroupDir,
        tid: u32,
        max_age: Duration,
    ) -> Result<TaskView, NotVirtualized> {
        let age = || match container.anchor {
            Anchor::NamespaceInit { .. } => self.container_up_secs(container).ok(),
            Anchor::HostNamespace => None,
        };
        self.tasks
            .view(TrackRequest {
                key: &container_key(container, dir),
                dir,
                in_own_namespace: matches!(container.anchor, Anchor::NamespaceInit { .. }),
                reader: tid,
                max_age,
                age: ContainerAge(&age),
            })
            .map_err(|e| self.failure(e))
    }

    /// How long ago the container's pid namespace's init started; `None` for a caller of the host's pid
    /// namespace, or when the host's uptime cannot be read.
    pub fn container_age(&self, container: &Container) -> Option<Duration> {
        match container.anchor {
            Anchor::HostNamespace => None,
            Anchor::NamespaceInit { .. } => self
                .container_up_secs(container)
                .ok()
                .map(|secs| Duration::from_secs_f64(secs.clamp(0.0, 1e12))),
        }
    }

    /// Seconds since the container's anchor started (the host's uptime for host-namespace callers).
    fn container_up_secs(&self, container: &Container) -> Result<f64, NotVirtualized> {
        let path = self.resolver.paths().served_file(ServedFile::Uptime);
        let text = read_text(&path).map_err(|e| self.failure(e))?;
        let (host_up_secs, _) = parse_uptime(&text)
            .wrap_path(&path)
            .map_err(|e| self.failure(e))?;
        Ok(match container.anchor {
            Anchor::HostNamespace => host_up_secs,
            Anchor::NamespaceInit { start_ticks, .. } => {
                (host_up_secs - start_ticks as f64 / self.clock_ticks_per_sec as f64).max(0.0)
            }
        })
    }

    fn uptime(
        &self,
        container: &Container,
        host: &str,
        files: &dyn FileSource,
    ) -> Result<Option<String>, NotVirtualized> {
        let accounting = container.cgroups.cpuacct.as_ref().and_then(|d| non_root(d));
        let start_ticks = match container.anchor {
            Anchor::NamespaceInit { start_ticks, .. } => start_ticks,
            // A caller of the host's pid namespace has the host's clock, but its /proc/stat shows its
            // cgroup's CPU time on its visible CPUs: its idle is what those CPUs did not spend on it, or
            // the host's idle of every CPU would exceed what the CPUs it is shown could have idled.
            Anchor::HostNamespace if accounting.is_some() => 0,
            Anchor::HostNamespace => return Ok(None),
        };
        let host_path = self.resolver.paths().served_file(ServedFile::Uptime);
        let (host_up_secs, _) = parse_uptime(host)
            .wrap_path(&host_path)
            .map_err(|e| self.failure(e))?;
        let visible = match self.restricted_cpus(container, files)? {
            Some(visible) => visible.len(),
            None => self.host_online()?.len(),
        };
        let cpu_used_secs = match accounting {
            Some(dir) => {
                read_cpu_usage_ns(files, dir)
                    .map_err(|e| self.failure(e))?
                    .unwrap_or(0) as f64
                    / 1e9
            }
            None => 0.0,
        };
        let start_secs = start_ticks as f64 / self.clock_ticks_per_sec as f64;
        let uptime = container_uptime(host_up_secs, start_secs, visible, cpu_used_secs);
        Ok(Some(render_uptime(uptime)))
    }

    /// What `error` makes of the view being built: its entry in the failure table, and its chain to log.
    fn failure(&self, error: ReadError) -> NotVirtualized {
        let failure = error.view_failure(&self.resolver.paths().proc_root);
        NotVirtualized {
            // A read error stopping a view is a fallback by construction (`ReadError::view_failure`);
            // the table's other entries end requests, not views.
            cause: failure
                .fallback_cause()
                .unwrap_or(FallbackCause::Unreadable),
            detail: error_chain(&error),
        }
    }
}

fn host_rendered(host: Vec<u8>, source: Source) -> Rendered {
    Rendered {
        bytes: host,
        source,
    }
}

/// The host file at `host_path` as the view of a caller whose view is the host's.
pub fn render_host(host_path: &Path) -> Result<Rendered, ReadError> {
    Ok(host_rendered(read_host_bytes(host_path)?, Source::Host))
}

/// A host file's bytes, whatever they hold.
fn read_host_bytes(path: &Path) -> Result<Vec<u8>, ReadError> {
    read_kernel_bytes(path).wrap_path(path)
}

/// A host file that is not text: served unchanged, as a fallback (renderers work on text).
struct NotText {
    bytes: Vec<u8>,
    failure: NotVirtualized,
}

/// A host file as text, or its bytes and why it is not virtualized when it is not UTF-8.
fn host_text(path: &Path) -> Result<Result<String, NotText>, ReadError> {
    Ok(String::from_utf8(read_host_bytes(path)?).map_err(|error| {
        let detail = format!("{}: not UTF-8 text: {}", path.display(), error.utf8_error());
        NotText {
            bytes: error.into_bytes(),
            failure: NotVirtualized {
                cause: FallbackCause::Unparsable,
                detail,
            },
        }
    }))
}

/// The container's cgroup for a controller the file needs: an error when there is none, `None` for the
/// root cgroup (whose view is the host's).
fn container_dir<'a>(
    dir: Option<&'a CgroupDir>,
    controller: &str,
) -> Result<Option<&'a CgroupDir>, NotVirtualized> {
    let dir = dir.ok_or_else(|| NotVirtualized {
        cause: FallbackCause::MissingController,
        detail: format!("the caller's {controller} cgroup is not visible to cgview"),
    })?;
    Ok(non_root(dir))
}

/// The cgroup whose subtree holds the container's threads: any controller's will do, as long as it is the
/// container's own and not the host's root.
fn tasks_dir(container: &Container) -> Option<&CgroupDir> {
    let cgroups = &container.cgroups;
    [
        &cgroups.cpuacct,
        &cgroups.cpu,
        &cgroups.memory,
        &cgroups.unified,
        &cgroups.cpuset,
        &cgroups.io,
    ]
    .into_iter()
    .find_map(|dir| dir.as_ref().and_then(non_root))
}

/// Identifies a container across reads: its cgroup, and its anchor's start, so that a new container
/// reusing a cgroup path (a restarted pod) starts with fresh counters.
fn container_key(container: &Container, dir: &CgroupDir) -> String {
    let start = match container.anchor {
        Anchor::HostNamespace => 0,
        Anchor::NamespaceInit { start_ticks, .. } => start_ticks,
    };
    // The cgroups' inodes tell a cgroup made again at the same path (a restarted service) from the old one.
    let incarnation = container
        .inodes
        .0
        .iter()
        .fold(0u64, |hash, inode| hash.rotate_left(13) ^ inode);
    format!("{}@{start}#{incarnation:x}", dir.path().display())
}

/// `None` for the root cgroup, whose view is the host's.
fn non_root(dir: &CgroupDir) -> Option<&CgroupDir> {
    (!dir.is_root()).then_some(dir)
}
