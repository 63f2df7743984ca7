//! A daemon's side of the keeper ([`super::keeper`]): finding it (or starting it), resuming the
//! connection it holds, depositing a fresh one, and exiting when a successor has taken over.

use super::handover_socket::{self, Message};
use cgview_core::handover::Handover;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Who keeps the FUSE connection alive between daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConnectionHolder {
    /// systemd's descriptor store when the unit offers one (`$FDSTORE`), a keeper otherwise.
    Auto,
    /// A keeper process (`cgview keeper`), started by `cgview mount` unless one already runs.
    Keeper,
    /// systemd's file descriptor store (`FileDescriptorStoreMax=` in the unit).
    Systemd,
    /// Nobody: a stop unmounts, a crash leaves dead mounts that the next daemon repairs.
    None,
}

impl ConnectionHolder {
    /// What `Auto` means for this process.
    pub fn resolve(self) -> ConnectionHolder {
        match self {
            ConnectionHolder::Auto if super::fdstore::offered() => ConnectionHolder::Systemd,
            ConnectionHolder::Auto => ConnectionHolder::Keeper,
            other => other,
        }
    }
}

/// Where the connection is kept while no daemon serves it.
pub enum Holder {
    Keeper(KeeperLink),
    Systemd,
}

impl Holder {
    /// Keeps a duplicate of a connection this daemon just mounted.
    pub fn deposit(&self, device: BorrowedFd<'_>, record: &Handover) -> io::Result<()> {
        match self {
            Holder::Keeper(link) => link.deposit(device, record),
            // Stored once serving (`serve`), with the record then current.
            Holder::Systemd => Ok(()),
        }
    }

    /// This daemon serves the connection now (see [`KeeperLink::serve_and_watch`]); systemd is given
    /// the connection and this daemon's record.
    pub fn serve(self, device: OwnedFd, record: Handover) -> io::Result<()> {
        match self {
            Holder::Keeper(link) => link.serve_and_watch(device, record),
            Holder::Systemd => super::fdstore::store(device.as_fd(), &record),
        }
    }
}

/// A connection to a resume: the descriptor, and what the daemons before learnt of it.
pub struct Resumed {
    pub device: OwnedFd,
    pub record: Handover,
    /// Another daemon still serves it: this is a take-over.
    pub live: bool,
}

/// The daemon's line to its keeper.
pub struct KeeperLink {
    socket: OwnedFd,
    path: PathBuf,
    mount_point: PathBuf,
    resume_within: Duration,
}

/// How long a departing daemon waits for its rings to hand back every request they took.
pub const QUIESCE_WITHIN: Duration = Duration::from_secs(1);

/// How long a daemon whose keeper went waits for a standing-by keeper to take its place.
const STANDBY_TAKEOVER: Duration = Duration::from_millis(500);

/// How long a started keeper has to listen.
const KEEPER_START: Duration = Duration::from_secs(3);

impl KeeperLink {
    /// Connects to the keeper of `mount_point` (canonical) listening at `path`.
    pub fn connect(
        mount_point: &Path,
        path: &Path,
        resume_within: Duration,
    ) -> io::Result<KeeperLink> {
        Ok(KeeperLink {
            socket: handover_socket::connect(path)?,
            path: path.to_owned(),
            mount_point: mount_point.to_owned(),
            resume_within,
        })
    }

    /// Connects to the keeper of `mount_point` (canonical) at `path`, starting one if none listens.
    pub fn connect_or_start(
        mount_point: &Path,
        path: &Path,
        resume_within: Duration,
    ) -> io::Result<KeeperLink> {
        let link = |socket| KeeperLink {
            socket,
            path: path.to_owned(),
            mount_point: mount_point.to_owned(),
            resume_within,
        };
        if let Ok(socket) = handover_socket::connect(path) {
            return Ok(link(socket));
        }
        start_keeper(mount_point, path, resume_within)?;
        let deadline = Instant::now() + KEEPER_START;
        loop {
            match handover_socket::connect(path) {
                Ok(socket) => return Ok(link(socket)),
                Err(e) if Instant::now() >= deadline => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "the keeper did not listen at {} within {KEEPER_START:?}: {e}",
                            path.display()
                        ),
                    ))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// The connection the keeper holds, if it holds one.
    pub fn resume(&self) -> io::Result<Option<Resumed>> {
        handover_socket::send(self.socket.as_fd(), &Message::Ask, None)?;
        match handover_socket::receive(self.socket.as_fd())? {
            Some((Message::Held { record, live }, Some(device))) => Ok(Some(Resumed {
                device,
                record,
                live,
            })),
            Some((Message::Empty, _)) => Ok(None),
            Some((other, _)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the keeper answered {other:?}"),
            )),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the keeper closed the connection",
            )),
        }
    }

    /// Gives the keeper a duplicate of a connection this daemon mounted.
    pub fn deposit(&self, device: BorrowedFd<'_>, record: &Handover) -> io::Result<()> {
        handover_socket::send(
            self.socket.as_fd(),
            &Message::Deposit(record.clone()),
            Some(device),
        )
    }

    /// Tells the keeper this daemon serves the connection, and watches the line from then on: a
    /// successor that took over makes this process exit (without unmounting: the mount is the
    /// successor's now); a keeper that died is started again and given the connection.
    pub fn serve_and_watch(self, device: OwnedFd, record: Handover) -> io::Result<()> {
        handover_socket::send(self.socket.as_fd(), &Message::Serving, None)?;
        std::thread::Builder::new()
            .name("cgview-keeper-link".into())
            .spawn(move || self.watch(device, record))?;
        Ok(())
    }

    fn watch(mut self, device: OwnedFd, record: Handover) {
        loop {
            match handover_socket::receive(self.socket.as_fd()) {
                Ok(Some((Message::Superseded, _))) => {
                    tracing::info!(
                        "a successor resumed the FUSE connection and serves {}; exiting",
                        self.mount_point.display()
                    );
                    // A request a ring of this daemon holds at exit would never be answered.
                    crate::transport::ring::quiesce(QUIESCE_WITHIN);
                    // Nor would a seccomp notification received and not answered.
                    crate::daemon::seccomp::quiesce(QUIESCE_WITHIN);
                    become_superseded(&self.mount_point);
                }
                Ok(Some((other, _))) => {
                    tracing::warn!(?other, "unexpected message from the keeper");
                }
                Ok(None) | Err(_) => {
                    tracing::warn!(
                        "the keeper of {} is gone; starting another and giving it the connection",
                        self.mount_point.display()
                    );
                    if let Err(e) = self.relink(device.as_fd(), &record) {
                        tracing::error!(
                            "cannot hand the connection to a new keeper ({e}); a crash of this daemon now ends it"
                        );
                        return;
                    }
                }
            }
        }
    }

    fn relink(&mut self, device: BorrowedFd<'_>, record: &Handover) -> io::Result<()> {
        // A keeper standing by (the next pod's, in a rollout) takes the socket over within moments:
        // give it that long before starting one.
        let deadline = Instant::now() + STANDBY_TAKEOVER;
        while handover_socket::connect(&self.path).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let fresh =
            KeeperLink::connect_or_start(&self.mount_point, &self.path, self.resume_within)?;
        // This daemon's own record: the keeper gives the next daemon the generation after it.
        fresh.deposit(device, record)?;
        handover_socket::send(fresh.socket.as_fd(), &Message::Serving, None)?;
        self.socket = fresh.socket;
        Ok(())
    }
}

/// Stops serving for good: the process becomes `cgview superseded`, which holds nothing (every
/// descriptor of this daemon is close-on-exec, and the keeper resends what it had taken) and waits for
/// its stop. Exiting instead would have a supervisor (systemd, the kubelet) start this older daemon
/// again, which would take the connection back.
fn become_superseded(mount_point: &Path) -> ! {
    use std::os::unix::process::CommandExt;
    let error = Command::new("/proc/self/exe")
        .arg("superseded")
        .arg(mount_point)
        .exec();
    tracing::warn!("cannot become `cgview superseded` ({error}); exiting");
    std::process::exit(0)
}

/// `cgview superseded`: what a taken-over daemon becomes. Waits for SIGTERM or SIGINT and exits 0.
pub fn wait_superseded(mount_point: &Path) -> io::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block()?;
    tracing::info!(
        "superseded: another cgview serves {}; waiting to be stopped",
        mount_point.display()
    );
    let signal = signals.wait()?;
    tracing::info!("received {signal}; exiting");
    Ok(())
}

/// Starts `cgview keeper` for `mount_point`, detached from this process (it survives `kill -9` of the
/// daemon, which is the point).
fn start_keeper(mount_point: &Path, socket: &Path, resume_within: Duration) -> io::Result<()> {
    let exe = std::env::current_exe()?;
    let mut keeper = Command::new(exe);
    keeper
        .arg("keeper")
        .arg(mount_point)
        .arg("--socket")
        .arg(socket)
        .arg("--resume-within")
        .arg(format!("{}", resume_within.as_secs_f64()))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let child = keeper.spawn()?;
    tracing::info!(pid = child.id(), socket = %socket.display(), "started a keeper for the FUSE connection");
    // The keeper outlives this daemon; while both run, a thread reaps it if it exits first.
    std::thread::Builder::new()
        .name("cgview-keeper-reaper".into())
        .spawn(move || {
            let mut child = child;
            let _ = child.wait();
        })?;
    Ok(())
}
