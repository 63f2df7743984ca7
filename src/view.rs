//! Builds the bytes of a served file for a caller: resolve the caller's container, read its cgroups,
//! render; and, when any step fails, serve the host file and record why (see [`crate::fallback`]).

use crate::fallback::{FallbackCause, FallbackLog};
use crate::host::cgroup_reader::{read_cpu_limits, read_cpu_usage_ns, read_io, read_memory};
use crate::host::error::{read_text, ReadError, WrapPath};
use crate::host::resolve::{Anchor, CgroupDir, Container, Resolver};
use crate::model::cpu::visible_cpus;
use crate::parse::cpuset::{parse_cpu_list, CpuSet};
use crate::parse::uptime::parse_uptime;
use crate::parse::ParseError;
use crate::render::cpu_list::render_cpu_list;
use crate::render::cpuinfo::render_cpuinfo;
use crate::render::diskstats::render_diskstats;
use crate::render::meminfo::render_meminfo;
use crate::render::uptime::{container_uptime, render_uptime};
use crate::served::ServedFile;
use std::fmt;

/// Behaviour switches of the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewOptions {
    /// Count a CPU quota as fewer visible CPUs (on by default; LXCFS needs `--enable-cfs` for this).
    pub quota_aware: bool,
}

impl Default for ViewOptions {
    fn default() -> Self {
        Self { quota_aware: true }
    }
}

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

/// Why a file could not be virtualized, for the fallback log.
#[derive(Debug)]
struct Failure {
    cause: FallbackCause,
    detail: String,
}

impl fmt::Display for Failure {
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
}

impl View {
    pub fn new(resolver: Resolver, options: ViewOptions) -> View {
        let clock_ticks_per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|t| u64::try_from(t).ok())
            .filter(|&t| t > 0)
            .unwrap_or(100);
        View {
            resolver,
            options,
            fallbacks: FallbackLog::default(),
            clock_ticks_per_sec,
        }
    }

    pub fn fallbacks(&self) -> &FallbackLog {
        &self.fallbacks
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Renders `file` for the caller with thread id `caller` (`None` when the caller is not visible in the
    /// daemon's pid namespace). Fails only when the host file itself cannot be read.
    pub fn render(&self, file: ServedFile, caller: Option<u32>) -> Result<Rendered, ReadError> {
        let host = read_text(&file.host_path(self.resolver.paths()))?;
        let Some(tid) = caller else {
            return Ok(host_rendered(host, Source::Host));
        };
        match self.virtualize(file, tid, &host) {
            Ok(Some(text)) => Ok(Rendered {
                bytes: text.into_bytes(),
                source: Source::Container,
            }),
            Ok(None) => Ok(host_rendered(host, Source::Host)),
            Err(failure) => {
                self.fallbacks.record(file, failure.cause, &failure);
                Ok(host_rendered(host, Source::Fallback(failure.cause)))
            }
        }
    }

    /// `Ok(None)` when the caller's correct view is the host file.
    fn virtualize(
        &self,
        file: ServedFile,
        tid: u32,
        host: &str,
    ) -> Result<Option<String>, Failure> {
        let container = self.resolver.resolve(tid).map_err(|e| self.failure(e))?;
        match file {
            ServedFile::Meminfo => {
                let Some(dir) = container_dir(container.cgroups.memory.as_ref(), "memory")? else {
                    return Ok(None);
                };
                let memory = read_memory(dir).map_err(|e| self.failure(e))?;
                self.rendered(file, render_meminfo(host, &memory))
            }
            ServedFile::Cpuinfo => Ok(self
                .restricted_cpus(&container)?
                .map(|visible| render_cpuinfo(host, &visible))),
            ServedFile::CpuOnline => Ok(self
                .restricted_cpus(&container)?
                .map(|visible| render_cpu_list(&visible))),
            ServedFile::Uptime => self.uptime(&container, host),
            ServedFile::Diskstats => {
                let Some(dir) = container_dir(container.cgroups.io.as_ref(), "blkio/io")? else {
                    return Ok(None);
                };
                let io = read_io(dir).map_err(|e| self.failure(e))?;
                self.rendered(file, render_diskstats(host, &io))
            }
        }
    }

    /// A renderer's result; a parse error there concerns the host file.
    fn rendered(
        &self,
        file: ServedFile,
        text: Result<String, ParseError>,
    ) -> Result<Option<String>, Failure> {
        text.wrap_path(&file.host_path(self.resolver.paths()))
            .map(Some)
            .map_err(|e| self.failure(e))
    }

    /// The host's online CPUs.
    fn host_online(&self) -> Result<CpuSet, Failure> {
        let path = ServedFile::CpuOnline.host_path(self.resolver.paths());
        let text = read_text(&path).map_err(|e| self.failure(e))?;
        parse_cpu_list(&text)
            .wrap_path(&path)
            .map_err(|e| self.failure(e))
    }

    /// The container's visible CPUs; `None` when they are all the host's online CPUs.
    fn restricted_cpus(&self, container: &Container) -> Result<Option<CpuSet>, Failure> {
        let cpu = container.cgroups.cpu.as_ref().and_then(|d| non_root(d));
        let cpuset = container.cgroups.cpuset.as_ref().and_then(|d| non_root(d));
        if cpu.is_none() && cpuset.is_none() {
            return Ok(None);
        }
        let host_online = self.host_online()?;
        let limits = read_cpu_limits(cpu, cpuset).map_err(|e| self.failure(e))?;
        let visible = visible_cpus(&host_online, &limits, self.options.quota_aware);
        Ok((visible != host_online).then_some(visible))
    }

    fn uptime(&self, container: &Container, host: &str) -> Result<Option<String>, Failure> {
        let Anchor::NamespaceInit { start_ticks, .. } = container.anchor else {
            return Ok(None);
        };
        let host_path = ServedFile::Uptime.host_path(self.resolver.paths());
        let (host_up_secs, _) = parse_uptime(host)
            .wrap_path(&host_path)
            .map_err(|e| self.failure(e))?;
        let visible = match self.restricted_cpus(container)? {
            Some(visible) => visible.len(),
            None => self.host_online()?.len(),
        };
        let cpu_used_secs = match container.cgroups.cpuacct.as_ref().and_then(|d| non_root(d)) {
            Some(dir) => {
                read_cpu_usage_ns(dir)
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

    fn failure(&self, error: ReadError) -> Failure {
        let cause = match &error {
            e if e.is_vanished() && e.path().starts_with(&self.resolver.paths().proc_root) => {
                FallbackCause::CallerGone
            }
            e if e.is_vanished() => FallbackCause::CgroupVanished,
            ReadError::Io { .. } => FallbackCause::Unreadable,
            ReadError::Parse { .. } => FallbackCause::Unparsable,
        };
        Failure {
            cause,
            detail: error_chain(&error),
        }
    }
}

fn host_rendered(host: String, source: Source) -> Rendered {
    Rendered {
        bytes: host.into_bytes(),
        source,
    }
}

/// The container's cgroup for a controller the file needs: an error when there is none, `None` for the
/// root cgroup (whose view is the host's).
fn container_dir<'a>(
    dir: Option<&'a CgroupDir>,
    controller: &str,
) -> Result<Option<&'a CgroupDir>, Failure> {
    let dir = dir.ok_or_else(|| Failure {
        cause: FallbackCause::MissingController,
        detail: format!("the caller's {controller} cgroup is not visible to cgview"),
    })?;
    Ok(non_root(dir))
}

/// `None` for the root cgroup, whose view is the host's.
fn non_root(dir: &CgroupDir) -> Option<&CgroupDir> {
    (!dir.is_root()).then_some(dir)
}

/// "outer: inner: innermost", for one-line logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
