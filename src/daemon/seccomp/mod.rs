//! `cgview mount --seccomp-socket PATH`: `sysinfo(2)` answered per container through seccomp user
//! notification.
//!
//! An OCI runtime (runc 1.1+, crun) whose bundle's `linux.seccomp` has `listenerPath` = PATH and a rule
//! `SCMP_ACT_NOTIFY` for `sysinfo` connects to PATH when the container starts and sends one message:
//! the seccomp notify descriptor as `SCM_RIGHTS` and the runtime-spec's `ContainerProcessState` as JSON
//! (`{"ociVersion", "fds": ["seccompFd"], "pid", "metadata", "state"}`), then closes. Each descriptor
//! gets a thread of its own ([`notify`]), at most [`MAX_DESCRIPTORS`] at a time, that answers every
//! notification: `sysinfo` with the calling container's figures, rendered by the same view as its
//! `/proc/meminfo`, `/proc/uptime` and `/proc/loadavg` ([`crate::service::sysinfo`]); any other call
//! is let through (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
//!
//! Not (yet) done: the descriptors do not survive the daemon (a stop or crash leaves every trapped
//! call of those containers failing with `ENOSYS`), and one container's descriptor is not rate-limited
//! against the others beyond having its own thread.

pub mod notify;

use crate::service::cache::ViewCache;
use crate::service::fallback::FallbackCause;
use crate::service::sysinfo::SysinfoValues;
use crate::service::view::Source;
use cgview_core::catalog::ServedFile;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use std::io::{self, IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Notify descriptors served at once; a runtime sending more is refused (the descriptor is closed, so
/// that container's trapped calls fail with `ENOSYS`), with a log line.
pub const MAX_DESCRIPTORS: usize = 256;

/// The largest `ContainerProcessState` read (runc's is a few kB: the state's annotations).
const MAX_STATE: usize = 1 << 20;

/// Descriptors a runtime may attach to one message.
const MAX_FDS: usize = 8;

/// Runtimes' messages read at once, each on a thread of its own; past that, on the accepting thread.
const MAX_HANDSHAKES: usize = 16;

/// How long a connected runtime may take to send its message.
const RECEIVE_WITHIN: Duration = Duration::from_secs(5);

/// What the listener did, since start.
#[derive(Debug, Default)]
pub struct SeccompCounters {
    /// `sysinfo` calls answered with the caller's container's figures.
    pub answered: AtomicU64,
    /// `sysinfo` calls let through to the kernel (host figures) because the caller or its files could
    /// not be resolved: fallbacks, also counted in the view's fallback table.
    pub host_fallbacks: AtomicU64,
    /// `sysinfo` calls answered `EFAULT` (a bad pointer).
    pub faulted: AtomicU64,
    /// Notifications whose caller was gone before the answer.
    pub gone: AtomicU64,
    /// Other calls let through.
    pub continued: AtomicU64,
    /// Descriptors served now.
    pub descriptors: AtomicUsize,
    /// Descriptors refused for [`MAX_DESCRIPTORS`].
    pub refused: AtomicU64,
}

impl crate::telemetry::metrics::Series for SeccompCounters {
    /// The Prometheus series of these counters, appended to the daemon's `/metrics`.
    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP cgview_seccomp_sysinfo_total sysinfo(2) calls trapped by seccomp, by answer: answered \
             (the container's figures), host (let through: the caller or its files could not be resolved), \
             efault (a bad buffer), gone (the caller left before the answer)."
        );
        let _ = writeln!(out, "# TYPE cgview_seccomp_sysinfo_total counter");
        for (result, count) in [
            ("answered", &self.answered),
            ("host", &self.host_fallbacks),
            ("efault", &self.faulted),
            ("gone", &self.gone),
        ] {
            let _ = writeln!(
                out,
                "cgview_seccomp_sysinfo_total{{result=\"{result}\"}} {}",
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP cgview_seccomp_other_calls_total Other trapped calls, let through unchanged."
        );
        let _ = writeln!(out, "# TYPE cgview_seccomp_other_calls_total counter");
        let _ = writeln!(
            out,
            "cgview_seccomp_other_calls_total {}",
            load(&self.continued)
        );
        let _ = writeln!(
            out,
            "# HELP cgview_seccomp_descriptors Containers' seccomp notify descriptors served now."
        );
        let _ = writeln!(out, "# TYPE cgview_seccomp_descriptors gauge");
        let _ = writeln!(
            out,
            "cgview_seccomp_descriptors {}",
            self.descriptors.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP cgview_seccomp_descriptors_refused_total Descriptors closed at once for the {MAX_DESCRIPTORS} limit \
             (their containers' trapped calls fail with ENOSYS)."
        );
        let _ = writeln!(
            out,
            "# TYPE cgview_seccomp_descriptors_refused_total counter"
        );
        let _ = writeln!(
            out,
            "cgview_seccomp_descriptors_refused_total {}",
            load(&self.refused)
        );
    }
}

/// The listener, started by [`start`].
#[derive(Debug)]
pub struct SeccompListener {
    pub path: PathBuf,
    pub counters: Arc<SeccompCounters>,
}

/// Binds `path` (root's alone, mode 0600; a socket left there by an earlier daemon is replaced) and
/// serves runtimes' descriptors on a thread of its own, answering from `cache`.
pub fn start(path: &Path, cache: Arc<dyn AsCache>) -> io::Result<SeccompListener> {
    let listener = bind(path)?;
    let counters = Arc::new(SeccompCounters::default());
    let shared = Arc::clone(&counters);
    std::thread::Builder::new()
        .name("seccomp-accept".into())
        .spawn(move || accept_loop(&listener, &cache, &shared))?;
    tracing::info!(path = %path.display(), "answering sysinfo(2) for seccomp notify descriptors sent here");
    Ok(SeccompListener {
        path: path.to_owned(),
        counters,
    })
}

/// What holds the cache the answers come from (the daemon's `Fs`, or a bare `ViewCache`).
pub trait AsCache: Send + Sync {
    fn cache(&self) -> &ViewCache;
}

impl AsCache for ViewCache {
    fn cache(&self) -> &ViewCache {
        self
    }
}

impl AsCache for crate::fs::Fs {
    fn cache(&self) -> &ViewCache {
        crate::fs::Fs::cache(self)
    }
}

fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

fn accept_loop(listener: &UnixListener, cache: &Arc<dyn AsCache>, counters: &Arc<SeccompCounters>) {
    for connection in listener.incoming() {
        let connection = match connection {
            Ok(connection) => connection,
            Err(e) => {
                tracing::warn!("seccomp socket: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if !crate::daemon::handover_socket::peer_is_root(&connection) {
            tracing::warn!(
                "seccomp socket: refused a connection from a process not running as root"
            );
            continue;
        }
        // Each runtime's message is read on a thread of its own (up to MAX_HANDSHAKES at once), so
        // that a peer that connects and sends nothing delays nobody else's container start.
        static HANDSHAKES: AtomicUsize = AtomicUsize::new(0);
        let handshake = {
            let cache = Arc::clone(cache);
            let counters = Arc::clone(counters);
            move || match receive_state(&connection) {
                Ok((state, fd)) => adopt(state, fd, &cache, &counters),
                Err(e) => tracing::warn!("seccomp socket: no descriptor received: {e}"),
            }
        };
        let slot = HANDSHAKES.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_HANDSHAKES).then_some(n + 1)
        });
        if slot.is_err() {
            handshake();
            continue;
        }
        let spawned = std::thread::Builder::new()
            .name("seccomp-handshake".into())
            .spawn(move || {
                handshake();
                HANDSHAKES.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            HANDSHAKES.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("seccomp socket: cannot start a thread for a connection: {e}");
        }
    }
}

/// What the runtime said about the container whose descriptor it sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessState {
    /// The container's init, in the runtime's (the host's) pid namespace.
    pub pid: Option<i64>,
    /// The container's id, from `state.id`.
    pub id: Option<String>,
    /// `metadata`, as the profile's `listenerMetadata` gave it.
    pub metadata: Option<String>,
    /// Where the notify descriptor is in the attached ones (`fds` naming `seccompFd`).
    pub seccomp_fd_index: usize,
}

impl ProcessState {
    /// Reads the runtime-spec's `ContainerProcessState`.
    pub fn parse(json: &[u8]) -> io::Result<ProcessState> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| {
            let kind = if e.is_eof() {
                io::ErrorKind::UnexpectedEof
            } else {
                io::ErrorKind::InvalidData
            };
            io::Error::new(kind, format!("not a ContainerProcessState: {e}"))
        })?;
        let fds = value["fds"]
            .as_array()
            .ok_or_else(|| invalid("no \"fds\" in the ContainerProcessState".into()))?;
        let seccomp_fd_index = fds
            .iter()
            .position(|name| name.as_str() == Some("seccompFd"))
            .ok_or_else(|| invalid(format!("\"fds\" names no seccompFd: {fds:?}")))?;
        Ok(ProcessState {
            pid: value["pid"].as_i64(),
            id: value["state"]["id"].as_str().map(str::to_owned),
            metadata: value["metadata"].as_str().map(str::to_owned),
            seccomp_fd_index,
        })
    }
}

/// The message: the descriptors of its first part, its bytes up to the runtime's close.
fn receive_state(connection: &UnixStream) -> io::Result<(ProcessState, OwnedFd)> {
    connection.set_read_timeout(Some(RECEIVE_WITHIN))?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = loop {
        match rustix::net::recvmsg(
            connection.as_fd(),
            &mut [IoSliceMut::new(&mut buffer)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?,
        }
    };
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    let mut json = buffer[..received.bytes].to_vec();
    // The runtime writes the state in one message but may keep the connection open as long as it
    // runs (runc 1.1 does): the state is complete when it parses, not at the end of the stream.
    let state = loop {
        match ProcessState::parse(&json) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && json.len() < MAX_STATE => {}
            other => break other?,
        }
        let read = (&*connection).read(&mut buffer)?;
        if read == 0 {
            break ProcessState::parse(&json)?;
        }
        json.extend_from_slice(&buffer[..read]);
    };
    if fds.len() <= state.seccomp_fd_index {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} descriptor(s) attached, seccompFd is number {}",
                fds.len(),
                state.seccomp_fd_index + 1
            ),
        ));
    }
    // The others (none is sent today) close as they drop.
    let fd = fds.swap_remove(state.seccomp_fd_index);
    Ok((state, fd))
}

fn adopt(
    state: ProcessState,
    fd: OwnedFd,
    cache: &Arc<dyn AsCache>,
    counters: &Arc<SeccompCounters>,
) {
    let taken = counters
        .descriptors
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_DESCRIPTORS).then_some(n + 1)
        });
    if taken.is_err() {
        counters.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            container = state.id.as_deref().unwrap_or("?"),
            pid = state.pid,
            "seccomp: already serving {MAX_DESCRIPTORS} notify descriptors; this container's descriptor \
             is closed (its sysinfo calls fail with ENOSYS)"
        );
        return;
    }
    tracing::info!(
        container = state.id.as_deref().unwrap_or("?"),
        pid = state.pid,
        metadata = state.metadata.as_deref().unwrap_or(""),
        "seccomp: serving a container's notify descriptor"
    );
    let cache = Arc::clone(cache);
    let counters = Arc::clone(counters);
    let label = state.id.clone().unwrap_or_default();
    let spawned = std::thread::Builder::new()
        .name("seccomp-notify".into())
        .spawn(move || {
            let answer = |tid: u32| container_sysinfo(cache.cache(), tid);
            if let Err(e) = notify::serve_descriptor(&fd, &answer, &counters) {
                tracing::warn!(
                    container = label,
                    "seccomp: stopped serving a descriptor: {e}"
                );
            } else {
                tracing::debug!(
                    container = label,
                    answered = counters.answered.load(Ordering::Relaxed),
                    host_fallbacks = counters.host_fallbacks.load(Ordering::Relaxed),
                    faulted = counters.faulted.load(Ordering::Relaxed),
                    gone = counters.gone.load(Ordering::Relaxed),
                    continued = counters.continued.load(Ordering::Relaxed),
                    "seccomp: the container's tasks are gone, its descriptor is closed (totals of \
                     every descriptor since start)"
                );
            }
            drop(fd);
            counters.descriptors.fetch_sub(1, Ordering::AcqRel);
        });
    if let Err(e) = spawned {
        tracing::warn!("seccomp: cannot start a thread for a descriptor: {e}");
    }
}

/// The `sysinfo` figures of the container of thread `tid` (in the daemon's pid namespace), from its
/// `/proc/meminfo`, `/proc/uptime` and `/proc/loadavg` as the mount serves them (through the same
/// cache: within a snapshot's life, the call and the files agree exactly). `Err` when its meminfo is
/// the host's for a failure (the caller cannot be resolved, its cgroup files cannot be read: a
/// fallback, counted as a read of the file is) or the renders cannot be read back: the call is then
/// let through to the kernel, whose answer is the host's.
pub fn container_sysinfo(cache: &ViewCache, tid: u32) -> Result<SysinfoValues, FallbackCause> {
    let view = cache.view();
    let mut texts = Vec::with_capacity(3);
    for file in [ServedFile::Meminfo, ServedFile::Uptime, ServedFile::Loadavg] {
        let served = cache.get(file, Some(tid)).map_err(|e| {
            tracing::debug!("seccomp: {}: {e}", file.tree_path());
            view.count_fallback(file, FallbackCause::Unreadable);
            FallbackCause::Unreadable
        })?;
        if let (ServedFile::Meminfo, Source::Fallback(cause)) = (file, served.source) {
            return Err(cause);
        }
        texts.push(String::from_utf8_lossy(&served.bytes).into_owned());
    }
    SysinfoValues::from_rendered(&texts[0], &texts[1], &texts[2], page_bytes()).map_err(|e| {
        tracing::warn!("seccomp: sysinfo from the served files: {e}");
        view.count_fallback(ServedFile::Meminfo, FallbackCause::Unparsable);
        FallbackCause::Unparsable
    })
}

fn page_bytes() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|size| u64::try_from(size).ok())
            .filter(|&size| size > 0)
            .unwrap_or(4096)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runcs_container_process_state_names_the_descriptor() {
        let json = br#"{"ociVersion":"1.0.2","fds":["seccompFd"],"pid":4242,"metadata":"m",
            "state":{"ociVersion":"1.0.2","id":"ctr","status":"creating","pid":4242,"bundle":"/b"}}"#;
        assert_eq!(
            ProcessState::parse(json).unwrap(),
            ProcessState {
                pid: Some(4242),
                id: Some("ctr".into()),
                metadata: Some("m".into()),
                seccomp_fd_index: 0,
            }
        );
        assert!(ProcessState::parse(br#"{"fds":["other"],"pid":1}"#).is_err());
        let partial = ProcessState::parse(br#"{"fds":["seccompFd"],"pi"#).unwrap_err();
        assert_eq!(partial.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            ProcessState::parse(b"{]").unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
