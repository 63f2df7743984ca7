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
//! With a keeper (`--connection-holder keeper|auto`), each descriptor adopted is deposited with it
//! (with its slot table, [`slots`]), so that it outlives this daemon: the next daemon, restarted,
//! respawned after a crash or taking over, asks the keeper for every descriptor it holds and serves
//! them, first answering what a dead predecessor had received and not answered. A daemon stopping or
//! superseded stops receiving ([`quiesce`]): what it had received is answered, the rest waits in the
//! kernel for the next one. The keeper drops a descriptor once its container is gone; it closes them
//! all when it gives up (no daemon within `--resume-within`) or when the FUSE connection ends.
//!
//! Not (yet) done: one container's descriptor is not rate-limited against the others beyond having
//! its own thread; systemd's descriptor store (`--connection-holder systemd`) does not keep notify
//! descriptors (only a keeper does); a call received by a daemon killed in another pid namespace than
//! its successor's stays unanswered; one received by a daemon killed in the few instructions between
//! the receive and the slot's write is found by its successor ([`orphans`]) and answered, or let
//! through when its caller cannot be told apart.

pub mod notify;
pub mod orphans;
pub mod slots;

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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::daemon::handover_socket::{self, Message};
use slots::SlotTable;
use std::collections::{HashMap, HashSet};
use std::os::fd::BorrowedFd;

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
    /// Descriptors taken from the keeper at start (left by the daemons before).
    pub inherited: AtomicU64,
    /// Notifications a daemon that died had received and not answered, answered by this one.
    pub recovered: AtomicU64,
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
        let _ = writeln!(
            out,
            "# HELP cgview_seccomp_descriptors_inherited_total Descriptors taken from the keeper at start, \
             left by the daemons before."
        );
        let _ = writeln!(
            out,
            "# TYPE cgview_seccomp_descriptors_inherited_total counter"
        );
        let _ = writeln!(
            out,
            "cgview_seccomp_descriptors_inherited_total {}",
            load(&self.inherited)
        );
        let _ = writeln!(
            out,
            "# HELP cgview_seccomp_recovered_total Notifications a daemon that died had received and not \
             answered, answered by this one."
        );
        let _ = writeln!(out, "# TYPE cgview_seccomp_recovered_total counter");
        let _ = writeln!(
            out,
            "cgview_seccomp_recovered_total {}",
            load(&self.recovered)
        );
    }
}

/// The listener, started by [`start`].
#[derive(Debug)]
pub struct SeccompListener {
    pub path: PathBuf,
    pub counters: Arc<SeccompCounters>,
}

/// What every descriptor's thread shares.
struct Context {
    cache: Arc<dyn AsCache>,
    counters: Arc<SeccompCounters>,
    keeper: Option<NotifyKeeper>,
    /// The descriptors this daemon serves, by key, with their tables (to give a new keeper).
    served: Mutex<HashMap<String, Served>>,
}

struct Served {
    fd: Arc<OwnedFd>,
    table: Option<Arc<SlotTable>>,
}

/// How often a daemon with a keeper compares what it serves with what the keeper holds: it serves
/// what the keeper holds and it does not (a descriptor the daemon before adopted while this one
/// started), and deposits what the keeper lacks (a keeper started afresh after the last one died).
const RECONCILE_EVERY: Duration = Duration::from_secs(2);

/// Set when this daemon stops or is superseded: its descriptors' threads stop receiving.
static STOP: AtomicBool = AtomicBool::new(false);
/// Descriptors' threads running.
static SERVING: AtomicUsize = AtomicUsize::new(0);

/// Stops every descriptor's thread (each answers what it received; the kernel keeps the rest for the
/// next daemon) and waits up to `within` for them to end.
pub fn quiesce(within: Duration) {
    STOP.store(true, Ordering::Release);
    let deadline = Instant::now() + within;
    while SERVING.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = SERVING.load(Ordering::Acquire);
    if left > 0 {
        tracing::warn!("seccomp: {left} descriptor thread(s) still answering at exit");
    }
}

/// Binds `path` (root's alone, mode 0600; a socket left there by an earlier daemon is replaced) and
/// serves runtimes' descriptors on a thread of its own, answering from `cache`. With `keeper` (the
/// keeper's socket), the descriptors it holds are served too, and every new one is deposited there.
pub fn start(
    path: &Path,
    cache: Arc<dyn AsCache>,
    keeper: Option<&Path>,
) -> io::Result<SeccompListener> {
    let counters = Arc::new(SeccompCounters::default());
    let context = Arc::new(Context {
        cache,
        counters: Arc::clone(&counters),
        keeper: keeper.map(NotifyKeeper::new),
        served: Mutex::new(HashMap::new()),
    });
    // Bound before the keeper is asked: a runtime connecting from now on reaches this daemon, and
    // what reached the daemon before it is deposited by that one (and found by `reconcile`).
    let listener = bind(path)?;
    if let Some(keeper) = &context.keeper {
        match keeper.take_all() {
            Ok(held) => {
                if !held.is_empty() {
                    tracing::info!(
                        count = held.len(),
                        "seccomp: serving the notify descriptors the keeper holds"
                    );
                }
                for (key, fd, table) in held {
                    counters.inherited.fetch_add(1, Ordering::Relaxed);
                    serve_new(&context, key, fd, table);
                }
            }
            Err(e) => tracing::warn!("seccomp: cannot ask the keeper for notify descriptors: {e}"),
        }
        let shared = Arc::clone(&context);
        std::thread::Builder::new()
            .name("seccomp-reconcile".into())
            .spawn(move || reconcile(&shared))?;
    }
    std::thread::Builder::new()
        .name("seccomp-accept".into())
        .spawn(move || accept_loop(&listener, &context))?;
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

/// Every [`RECONCILE_EVERY`] until this daemon stops: serves what the keeper holds and this daemon
/// does not, deposits what this daemon serves and the keeper lacks.
fn reconcile(context: &Arc<Context>) {
    let Some(keeper) = &context.keeper else {
        return;
    };
    loop {
        std::thread::sleep(RECONCILE_EVERY);
        if STOP.load(Ordering::Acquire) {
            return;
        }
        let held = match keeper.take_all() {
            Ok(held) => held,
            Err(e) => {
                tracing::debug!("seccomp: cannot ask the keeper for notify descriptors: {e}");
                continue;
            }
        };
        let held_keys: HashSet<String> = held.iter().map(|(key, ..)| key.clone()).collect();
        for (key, fd, table) in held {
            let known = lock(&context.served).contains_key(&key);
            if !known {
                serve_new(context, key, fd, table);
            }
        }
        let missing: Vec<(String, Arc<OwnedFd>, Option<Arc<SlotTable>>)> = lock(&context.served)
            .iter()
            .filter(|(key, _)| !held_keys.contains(*key))
            .map(|(key, served)| (key.clone(), Arc::clone(&served.fd), served.table.clone()))
            .collect();
        for (key, fd, table) in missing {
            // Its container may have just gone (the keeper dropped it first): then the keeper drops
            // it again at once.
            match keeper.deposit(&key, &fd, table.as_deref()) {
                Ok(()) => tracing::info!(
                    key,
                    "seccomp: gave the keeper a notify descriptor it did not hold"
                ),
                Err(e) => tracing::debug!(key, "seccomp: cannot deposit with the keeper: {e}"),
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// For a daemon with a keeper and no `--seccomp-socket`: how many notify descriptors the keeper holds
/// (which this daemon cannot serve; the keeper keeps them).
pub fn count_held(keeper: &Path) -> io::Result<usize> {
    Ok(NotifyKeeper::new(keeper).take_all()?.len())
}

/// The line to the keeper for notify descriptors: a connection of its own, beside the daemon's
/// [`crate::daemon::holder::KeeperLink`], opened when first needed and again if the keeper changed.
struct NotifyKeeper {
    path: PathBuf,
    socket: Mutex<Option<OwnedFd>>,
}

impl NotifyKeeper {
    fn new(path: &Path) -> NotifyKeeper {
        NotifyKeeper {
            path: path.to_owned(),
            socket: Mutex::new(None),
        }
    }

    fn connected<'a>(&self, socket: &'a mut Option<OwnedFd>) -> io::Result<BorrowedFd<'a>> {
        if socket.is_none() {
            *socket = Some(handover_socket::connect(&self.path)?);
        }
        Ok(socket.as_ref().map(|s| s.as_fd()).expect("connected above"))
    }

    /// Gives the keeper a duplicate of `fd` and its slot table, named `key`.
    fn deposit(&self, key: &str, fd: &OwnedFd, table: Option<&SlotTable>) -> io::Result<()> {
        let mut socket = self.socket.lock().unwrap_or_else(|e| e.into_inner());
        let message = Message::NotifyDeposit { key: key.into() };
        let mut fds = vec![fd.as_fd()];
        fds.extend(table.map(SlotTable::fd));
        let first = self
            .connected(&mut socket)
            .and_then(|s| handover_socket::send_fds(s, &message, &fds));
        if first.is_ok() {
            return first;
        }
        // The keeper this line reached is gone (another may listen now): once more, afresh.
        *socket = None;
        self.connected(&mut socket)
            .and_then(|s| handover_socket::send_fds(s, &message, &fds))
    }

    /// Every descriptor the keeper holds, with its key and slot table.
    fn take_all(&self) -> io::Result<Vec<(String, OwnedFd, Option<OwnedFd>)>> {
        let mut socket = self.socket.lock().unwrap_or_else(|e| e.into_inner());
        let taken = self.take_all_on(&mut socket);
        if taken.is_err() {
            // The keeper this line reached is gone, or the line is out of step: afresh next time.
            *socket = None;
        }
        taken
    }

    fn take_all_on(
        &self,
        socket: &mut Option<OwnedFd>,
    ) -> io::Result<Vec<(String, OwnedFd, Option<OwnedFd>)>> {
        let line = self.connected(socket)?;
        handover_socket::send(line, &Message::NotifyAsk, None)?;
        let mut held = Vec::new();
        loop {
            match handover_socket::receive_fds(line)? {
                Some((Message::NotifyHeld { key }, fds)) => {
                    let mut fds = fds.into_iter();
                    if let Some(fd) = fds.next() {
                        held.push((key, fd, fds.next()));
                    }
                }
                Some((Message::NotifyEnd, _)) => return Ok(held),
                Some((other, _)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the keeper answered {other:?}"),
                    ))
                }
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the keeper closed the connection",
                    ))
                }
            }
        }
    }
}

fn accept_loop(listener: &UnixListener, context: &Arc<Context>) {
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
            let context = Arc::clone(context);
            move || match receive_state(&connection) {
                Ok(Some((state, fd))) => adopt(state, fd, &context),
                // Connected and closed with nothing sent: a check that the socket is served (the NRI
                // plugin's, before it names the socket in a container's policy).
                Ok(None) => tracing::trace!("seccomp socket: a connection that sent nothing"),
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

/// The message: the descriptors of its first part, its bytes up to the runtime's close; `None` for a
/// connection closed without a byte or a descriptor.
fn receive_state(connection: &UnixStream) -> io::Result<Option<(ProcessState, OwnedFd)>> {
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
    if received.bytes == 0 && fds.is_empty() {
        return Ok(None);
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
    Ok(Some((state, fd)))
}

/// The keeper's name for a container's descriptor: its id and init's pid (one descriptor per
/// container start), without line breaks (the message's syntax).
fn descriptor_key(state: &ProcessState) -> String {
    format!(
        "{}/{}",
        state.id.as_deref().unwrap_or("?"),
        state.pid.unwrap_or(0)
    )
    .replace(['\n', '\r'], "_")
}

/// A descriptor a runtime just sent: deposited with the keeper, then served.
fn adopt(state: ProcessState, fd: OwnedFd, context: &Arc<Context>) {
    let key = descriptor_key(&state);
    tracing::info!(
        container = state.id.as_deref().unwrap_or("?"),
        pid = state.pid,
        metadata = state.metadata.as_deref().unwrap_or(""),
        "seccomp: serving a container's notify descriptor"
    );
    let table = match SlotTable::create() {
        Ok(table) => Some(table),
        Err(e) => {
            tracing::warn!(
                "seccomp: no slot table ({e}); a crash while answering may strand a call"
            );
            None
        }
    };
    serve_table(context, key, fd, table, true);
}

/// A descriptor the keeper held: its table opened, then served (dead predecessors' pending calls
/// first).
fn serve_new(context: &Arc<Context>, key: String, fd: OwnedFd, table: Option<OwnedFd>) {
    let table = match table.map(SlotTable::open).transpose() {
        Ok(table) => table,
        Err(e) => {
            tracing::warn!(
                key,
                "seccomp: the descriptor's slot table cannot be read: {e}"
            );
            None
        }
    };
    tracing::info!(key, "seccomp: serving a notify descriptor the keeper held");
    serve_table(context, key, fd, table, false);
}

/// Serves `fd` on a thread of its own, unless this daemon serves it already; a `fresh` one (from a
/// runtime) is deposited with the keeper first.
fn serve_table(
    context: &Arc<Context>,
    key: String,
    fd: OwnedFd,
    table: Option<SlotTable>,
    fresh: bool,
) {
    let fd = Arc::new(fd);
    let table = table.map(Arc::new);
    {
        let mut served = lock(&context.served);
        if served.contains_key(&key) {
            tracing::debug!(key, "seccomp: this daemon serves that descriptor already");
            return;
        }
        served.insert(
            key.clone(),
            Served {
                fd: Arc::clone(&fd),
                table: table.clone(),
            },
        );
    }
    if let (true, Some(keeper)) = (fresh, &context.keeper) {
        if let Err(e) = keeper.deposit(&key, &fd, table.as_deref()) {
            tracing::warn!(
                key,
                "seccomp: cannot deposit the descriptor with the keeper ({e}); it ends with this \
                 daemon unless a keeper takes it later"
            );
        }
    }
    let counters = &context.counters;
    let taken = counters
        .descriptors
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_DESCRIPTORS).then_some(n + 1)
        });
    if taken.is_err() {
        counters.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            key,
            "seccomp: already serving {MAX_DESCRIPTORS} notify descriptors; this container's descriptor \
             is not served by this daemon (closed unless the keeper holds it: its sysinfo calls fail \
             with ENOSYS or wait)"
        );
        lock(&context.served).remove(&key);
        return;
    }
    SERVING.fetch_add(1, Ordering::AcqRel);
    let label = key.clone();
    let shared = Arc::clone(context);
    let spawned = std::thread::Builder::new()
        .name("seccomp-notify".into())
        .spawn(move || {
            let context = shared;
            let counters = &context.counters;
            let answer = |tid: u32| container_sysinfo(context.cache.cache(), tid);
            let mut orphan_search = None;
            if let (false, Some(table)) = (fresh, &table) {
                let reclaimed = table.reclaim_dead();
                let proc_root = &context.cache.cache().view().resolver().paths().proc_root;
                orphan_search = orphans::OrphanSearch::new(proc_root, reclaimed.last_answered);
                for inherited in reclaimed.pending {
                    let pending = inherited.call;
                    match notify::answer_pending(&fd, &pending, &answer, counters) {
                        Ok(true) => {
                            counters.recovered.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(
                                key,
                                id = pending.id,
                                tid = pending.tid,
                                "seccomp: answered a call a dead daemon had received"
                            );
                        }
                        Ok(false) => tracing::debug!(
                            key,
                            id = pending.id,
                            "seccomp: a call a dead daemon had received no longer waits"
                        ),
                        Err(e) => tracing::warn!(key, "seccomp: a dead daemon's call: {e}"),
                    }
                }
            }
            let slot = table.as_deref().and_then(SlotTable::claim);
            let mut between = || {
                let over = orphan_search
                    .as_mut()
                    .is_some_and(|search| search.step(&fd, table.as_deref(), &answer, counters));
                if over {
                    orphan_search = None;
                }
            };
            match notify::serve_descriptor(
                &fd,
                slot.as_ref(),
                &STOP,
                &answer,
                counters,
                &mut between,
            ) {
                Err(e) => tracing::warn!(key, "seccomp: stopped serving a descriptor: {e}"),
                Ok(notify::Served::Stopped) => {
                    tracing::debug!(key, "seccomp: stopped receiving (this daemon stops)")
                }
                Ok(notify::Served::Ended) => tracing::debug!(
                    key,
                    answered = counters.answered.load(Ordering::Relaxed),
                    host_fallbacks = counters.host_fallbacks.load(Ordering::Relaxed),
                    faulted = counters.faulted.load(Ordering::Relaxed),
                    gone = counters.gone.load(Ordering::Relaxed),
                    continued = counters.continued.load(Ordering::Relaxed),
                    "seccomp: the container's tasks are gone, its descriptor is closed (totals of \
                     every descriptor since start)"
                ),
            }
            drop(slot);
            lock(&context.served).remove(&key);
            drop(fd);
            counters.descriptors.fetch_sub(1, Ordering::AcqRel);
            SERVING.fetch_sub(1, Ordering::AcqRel);
        });
    if let Err(e) = spawned {
        lock(&context.served).remove(&label);
        context.counters.descriptors.fetch_sub(1, Ordering::AcqRel);
        SERVING.fetch_sub(1, Ordering::AcqRel);
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

    #[test]
    fn a_connection_closed_without_a_byte_is_a_check_and_a_message_without_a_descriptor_an_error() {
        use std::io::Write;
        // The NRI plugin's check: connect, close.
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        assert!(receive_state(&ours).unwrap().is_none());
        // A state without the descriptor it names.
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        theirs
            .write_all(br#"{"fds":["seccompFd"],"pid":1}"#)
            .unwrap();
        drop(theirs);
        let error = receive_state(&ours).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    }
}
