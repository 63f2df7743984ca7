//! `cgview keeper`: holds a duplicate of a mount's `/dev/fuse` descriptor so that the FUSE connection
//! outlives the daemon serving it. While it holds one, a daemon killed with -9, or stopped to be
//! restarted, leaves every container's mount in place: their reads wait in the kernel, and the next
//! daemon takes the descriptor from here and answers them (see [`crate::transport::resumed`]).
//!
//! The keeper hands the descriptor to each daemon that asks, and tells the one serving before to exit
//! once the new one serves (a take-over). When a serving daemon goes, it asks the kernel to queue again
//! the requests that daemon had taken and not answered. If no daemon serves for `resume_within`, it
//! gives up: detaches the mount and closes the descriptor, which (as the last one) aborts the
//! connection, so readers get an error instead of waiting forever; the next daemon then mounts afresh
//! and repairs containers as after any crash.
//!
//! It also holds the containers' seccomp notify descriptors that daemons deposit
//! ([`crate::daemon::seccomp`]), each until its container is gone (`POLLHUP`), hands them all to a
//! daemon that asks (`NotifyAsk`), and gives them to keepers standing by; they close with the keeper
//! (when it gives up or the connection ends).

use super::handover_socket::{self, Message};
use crate::daemon::mount_scan::live_device;
use crate::transport::resumed::resend_unanswered;
use cgview_core::handover::Handover;
use cgview_core::parse::mountinfo::parse_mountinfo;
use rustix::event::{PollFd, PollFlags, Timespec};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct KeeperOptions {
    /// The mount point, canonical.
    pub mount_point: PathBuf,
    pub socket: PathBuf,
    /// How long the connection waits for a daemon before the keeper gives it up.
    pub resume_within: Duration,
}

/// A process connected to the keeper: a daemon, or a keeper standing by.
struct Peer {
    socket: OwnedFd,
    /// A daemon that answers the connection now.
    serving: bool,
    /// A daemon (it asked, deposited or served): its going may leave requests to resend.
    daemon: bool,
    /// A keeper standing by, kept up to date with the connection.
    standby: bool,
}

struct Held {
    device: OwnedFd,
    /// The record the next daemon gets.
    next: Handover,
}

/// A container's seccomp notify descriptor, held for the daemons (see [`crate::daemon::seccomp`]),
/// until its container is gone.
struct HeldNotify {
    key: String,
    fd: OwnedFd,
    /// Its slot table (a memfd).
    table: Option<OwnedFd>,
}

impl HeldNotify {
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = vec![self.fd.as_fd()];
        fds.extend(self.table.as_ref().map(|t| t.as_fd()));
        fds
    }
}

/// Keeps `held` unless a descriptor of that key is held already; whether it was new.
fn hold_notify(notify: &mut Vec<HeldNotify>, held: HeldNotify) -> bool {
    if notify.iter().any(|n| n.key == held.key) {
        return false;
    }
    notify.push(held);
    true
}

/// Runs the keeper until the connection ends or is given up. While another keeper listens on the socket
/// (the previous pod's, in a rollout), this one stands by with a duplicate of the connection and takes
/// over the socket when that keeper goes.
pub fn run(options: &KeeperOptions) -> io::Result<()> {
    // Out of the daemon's session and process group: a terminal's ^C or a kill of the daemon's group
    // must not take the keeper with it.
    let _ = rustix::process::setsid();
    let mut inherited = None;
    let mut notify = Vec::new();
    loop {
        let Some(listener) = bind(&options.socket)? else {
            (inherited, notify) = stand_by(options, inherited, notify)?;
            continue;
        };
        tracing::info!(
            mount_point = %options.mount_point.display(),
            socket = %options.socket.display(),
            resume_within = ?options.resume_within,
            holding = inherited.is_some(),
            notify_descriptors = notify.len(),
            "keeping the FUSE connection across daemons"
        );
        let result = serve(options, &listener, inherited, notify);
        let _ = std::fs::remove_file(&options.socket);
        return result;
    }
}

/// Stands by behind the keeper listening on the socket, holding a duplicate of its connection, until it
/// goes; returns what it then holds. What `held` holds is kept until that keeper says otherwise (a
/// keeper taking over from a dying one may briefly reach it again before it is gone).
fn stand_by(
    options: &KeeperOptions,
    mut held: Option<Held>,
    mut notify: Vec<HeldNotify>,
) -> io::Result<(Option<Held>, Vec<HeldNotify>)> {
    let socket = match handover_socket::connect(&options.socket) {
        Ok(socket) => socket,
        // Gone between the bind and now: try to bind again.
        Err(_) => return Ok((held, notify)),
    };
    tracing::info!(socket = %options.socket.display(), "another keeper listens here; standing by");
    handover_socket::send(socket.as_fd(), &Message::Standby, None)?;
    loop {
        let received = handover_socket::receive_fds(socket.as_fd());
        let (message, fds) = match received {
            Ok(Some(received)) => received,
            Ok(None) | Err(_) => {
                tracing::info!(
                    holding = held.is_some(),
                    notify_descriptors = notify.len(),
                    "the keeper stood behind is gone; taking its place"
                );
                return Ok((held, notify));
            }
        };
        let mut fds = fds.into_iter();
        match (message, fds.next()) {
            (Message::Held { record, .. }, Some(device)) => {
                held = Some(Held {
                    device,
                    next: record,
                })
            }
            (Message::Release | Message::Empty, _) => held = None,
            (Message::NotifyDeposit { key }, Some(fd)) => {
                let table = fds.next();
                hold_notify(&mut notify, HeldNotify { key, fd, table });
            }
            (Message::NotifyDrop { key }, _) => notify.retain(|n| n.key != key),
            (other, _) => tracing::debug!(?other, "ignored while standing by"),
        }
    }
}

/// Listens at `path`, unless a live keeper already does (`None`); a socket left by a dead one is
/// replaced.
fn bind(path: &Path) -> io::Result<Option<OwnedFd>> {
    match handover_socket::listen(path) {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            if handover_socket::connect(path).is_ok() {
                return Ok(None);
            }
            std::fs::remove_file(path)?;
            handover_socket::listen(path).map(Some)
        }
        Err(e) => Err(e),
    }
}

fn serve(
    options: &KeeperOptions,
    listener: &OwnedFd,
    inherited: Option<Held>,
    mut notify: Vec<HeldNotify>,
) -> io::Result<()> {
    let mut peers: Vec<Peer> = Vec::new();
    let mut held: Option<Held> = inherited;
    // Since when no daemon serves the connection (at the start: daemons reach a new keeper first).
    let mut unserved_since = Some(Instant::now());
    loop {
        let timeout = unserved_since.map(|since| {
            let left = options.resume_within.saturating_sub(since.elapsed());
            Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            })
        });
        let mut fds = Vec::with_capacity(peers.len() + 2);
        fds.push(PollFd::new(listener, PollFlags::IN));
        // No events asked: the descriptor only reports POLLERR once the connection is gone (readable
        // means a request waits, which is the daemons' business).
        if let Some(held) = &held {
            fds.push(PollFd::new(&held.device, PollFlags::empty()));
        }
        // Likewise: a notify descriptor reports POLLHUP once its container's tasks are all gone.
        let first_notify = fds.len();
        for held in &notify {
            fds.push(PollFd::new(&held.fd, PollFlags::empty()));
        }
        let first_peer = fds.len();
        for peer in &peers {
            fds.push(PollFd::new(&peer.socket, PollFlags::IN));
        }
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let listener_ready = !fds[0].revents().is_empty();
        let connection_gone =
            held.is_some() && fds[1].revents().intersects(PollFlags::ERR | PollFlags::HUP);
        let containers_gone: Vec<usize> = fds[first_notify..first_peer]
            .iter()
            .enumerate()
            .filter(|(_, fd)| fd.revents().intersects(PollFlags::HUP | PollFlags::ERR))
            .map(|(index, _)| index)
            .collect();
        let ready: Vec<usize> = fds[first_peer..]
            .iter()
            .enumerate()
            .filter(|(_, fd)| !fd.revents().is_empty())
            .map(|(index, _)| index)
            .collect();
        drop(fds);

        if connection_gone {
            tracing::info!("the FUSE connection ended (unmounted everywhere, or aborted); exiting");
            release_standbys(&peers);
            return Ok(());
        }
        for index in containers_gone.into_iter().rev() {
            let gone = notify.remove(index);
            tracing::debug!(
                key = gone.key,
                "a container's tasks are gone; its notify descriptor is dropped"
            );
            for peer in peers.iter().filter(|p| p.standby) {
                let _ = handover_socket::send(
                    peer.socket.as_fd(),
                    &Message::NotifyDrop {
                        key: gone.key.clone(),
                    },
                    None,
                );
            }
        }
        // Newest first, so that removing one keeps the others' indexes.
        for index in ready.into_iter().rev() {
            let answered = answer(
                &mut peers,
                index,
                &mut held,
                &mut notify,
                &mut unserved_since,
            );
            if !answered {
                let gone = peers.remove(index);
                if gone.serving && !peers.iter().any(|p| p.serving) {
                    unserved_since = Some(Instant::now());
                    tracing::info!(
                        "the serving daemon is gone; holding the connection for {:?}",
                        options.resume_within
                    );
                }
                if let (true, Some(held)) = (gone.daemon, &held) {
                    // What it had taken and not answered goes to whoever serves now, or next.
                    if let Err(e) = resend_unanswered(held.device.as_fd()) {
                        tracing::warn!("cannot ask the kernel to resend unanswered requests: {e}");
                    }
                }
            }
        }
        if listener_ready {
            match handover_socket::accept(listener.as_fd()) {
                Ok(socket) if handover_socket::peer_is_root(&socket) => peers.push(Peer {
                    socket,
                    serving: false,
                    daemon: false,
                    standby: false,
                }),
                Ok(_) => tracing::warn!("refused a connection from a process not running as root"),
                Err(e) => tracing::debug!("accept: {e}"),
            }
        }
        if let Some(since) = unserved_since {
            if since.elapsed() >= options.resume_within && peers.iter().all(|p| !p.serving) {
                release_standbys(&peers);
                give_up(options, held.take());
                return Ok(());
            }
        }
    }
}

/// Reads and answers one message from peer `index`; false when it has gone (or spoke nonsense).
fn answer(
    peers: &mut [Peer],
    index: usize,
    held: &mut Option<Held>,
    notify: &mut Vec<HeldNotify>,
    unserved_since: &mut Option<Instant>,
) -> bool {
    let (message, fds) = match handover_socket::receive_fds(peers[index].socket.as_fd()) {
        Ok(Some(received)) => received,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!("dropping a peer's connection: {e}");
            return false;
        }
    };
    let mut fds = fds.into_iter();
    let fd = fds.next();
    let socket = peers[index].socket.as_fd();
    let sent = match (message, fd) {
        // Notify descriptors: kept apart from the connection (their deposits may come from a line of
        // their own) and given to standing-by keepers as they come.
        (Message::NotifyDeposit { key }, Some(fd)) => {
            let deposited = HeldNotify {
                key,
                fd,
                table: fds.next(),
            };
            let message = Message::NotifyDeposit {
                key: deposited.key.clone(),
            };
            let fds = deposited.fds();
            let new = !notify.iter().any(|n| n.key == deposited.key);
            if new {
                tracing::info!(
                    key = deposited.key,
                    "holding a container's seccomp notify descriptor"
                );
                for peer in peers.iter().filter(|p| p.standby) {
                    let _ = handover_socket::send_fds(peer.socket.as_fd(), &message, &fds);
                }
            }
            drop(fds);
            hold_notify(notify, deposited);
            return true;
        }
        (Message::NotifyAsk, _) => {
            for held in notify.iter() {
                let message = Message::NotifyHeld {
                    key: held.key.clone(),
                };
                if handover_socket::send_fds(socket, &message, &held.fds()).is_err() {
                    return false;
                }
            }
            return handover_socket::send(socket, &Message::NotifyEnd, None).is_ok();
        }
        (Message::Ask, _) => {
            peers[index].daemon = true;
            match held {
                Some(held) => {
                    let live = peers.iter().any(|p| p.serving);
                    let record = held.next.clone();
                    held.next = record.successor();
                    tracing::info!(
                        generation = record.generation,
                        live,
                        "handing the connection to a daemon"
                    );
                    handover_socket::send(
                        socket,
                        &Message::Held { record, live },
                        Some(held.device.as_fd()),
                    )
                }
                None => handover_socket::send(socket, &Message::Empty, None),
            }
        }
        (Message::Deposit(record), Some(device)) => {
            peers[index].daemon = true;
            tracing::info!(device = %record.device, "holding the connection a daemon mounted");
            *held = Some(Held {
                device,
                next: record.successor(),
            });
            Ok(())
        }
        (Message::Serving, _) => {
            for (other, peer) in peers.iter_mut().enumerate() {
                if other != index && peer.serving {
                    peer.serving = false;
                    let _ = handover_socket::send(peer.socket.as_fd(), &Message::Superseded, None);
                }
            }
            peers[index].serving = true;
            peers[index].daemon = true;
            *unserved_since = None;
            Ok(())
        }
        (Message::Standby, _) => {
            peers[index].standby = true;
            tracing::info!("a keeper stands by");
            notify.iter().try_for_each(|held| {
                let message = Message::NotifyDeposit {
                    key: held.key.clone(),
                };
                handover_socket::send_fds(socket, &message, &held.fds())
            })
        }
        (message, _) => {
            tracing::warn!(?message, "unexpected message on the keeper's socket");
            return false;
        }
    };
    // Standing-by keepers follow every change of what is held and of the next record.
    update_standbys(peers, held);
    sent.is_ok()
}

/// Gives every keeper standing by the connection held now and the next daemon's record.
fn update_standbys(peers: &[Peer], held: &Option<Held>) {
    let live = peers.iter().any(|p| p.serving);
    for peer in peers.iter().filter(|p| p.standby) {
        let _ = match held {
            Some(held) => handover_socket::send(
                peer.socket.as_fd(),
                &Message::Held {
                    record: held.next.clone(),
                    live,
                },
                Some(held.device.as_fd()),
            ),
            None => handover_socket::send(peer.socket.as_fd(), &Message::Empty, None),
        };
    }
}

/// Tells keepers standing by to drop the connection, which is being given up.
fn release_standbys(peers: &[Peer]) {
    for peer in peers.iter().filter(|p| p.standby) {
        let _ = handover_socket::send(peer.socket.as_fd(), &Message::Release, None);
    }
}

/// No daemon came back in time: unmount and end the connection, so nothing waits forever.
fn give_up(options: &KeeperOptions, held: Option<Held>) {
    let Some(held) = held else {
        tracing::info!("no daemon deposited a connection; exiting");
        return;
    };
    tracing::warn!(
        mount_point = %options.mount_point.display(),
        "no cgview served within {:?}; unmounting and ending the connection (readers get errors until a daemon mounts again)",
        options.resume_within
    );
    let ours = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|text| parse_mountinfo(&text).ok())
        .is_some_and(|mounts| {
            live_device(&mounts, &options.mount_point.to_string_lossy())
                == Some(held.next.device.as_str())
        });
    if ours {
        if let Err(e) = nix::mount::umount2(&options.mount_point, nix::mount::MntFlags::MNT_DETACH)
        {
            tracing::warn!("cannot detach {}: {e}", options.mount_point.display());
        }
    }
    // The last descriptor of the connection: closing it aborts the connection, failing every request
    // that waits (ECONNABORTED) and every later one (ENOTCONN) in the mounts containers still hold.
    drop(held);
}
