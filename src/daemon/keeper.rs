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

use super::handover_socket::{self, Message};
use crate::daemon::mount_scan::live_device;
use crate::transport::resumed::resend_unanswered;
use cgview_core::handover::Handover;
use cgview_core::parse::mountinfo::parse_mountinfo;
use rustix::event::{PollFd, PollFlags, Timespec};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
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

/// A daemon connected to the keeper.
struct Daemon {
    socket: OwnedFd,
    serving: bool,
}

struct Held {
    device: OwnedFd,
    /// The record the next daemon gets.
    next: Handover,
}

/// Runs the keeper until the connection ends, or is given up, or another keeper turns out to hold it.
pub fn run(options: &KeeperOptions) -> io::Result<()> {
    // Out of the daemon's session and process group: a terminal's ^C or a kill of the daemon's group
    // must not take the keeper with it.
    let _ = rustix::process::setsid();
    let Some(listener) = bind(&options.socket)? else {
        tracing::info!(socket = %options.socket.display(), "a keeper already listens here; exiting");
        return Ok(());
    };
    tracing::info!(
        mount_point = %options.mount_point.display(),
        socket = %options.socket.display(),
        resume_within = ?options.resume_within,
        "keeping the FUSE connection across daemons"
    );
    let result = serve(options, &listener);
    let _ = std::fs::remove_file(&options.socket);
    result
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

fn serve(options: &KeeperOptions, listener: &OwnedFd) -> io::Result<()> {
    let mut daemons: Vec<Daemon> = Vec::new();
    let mut held: Option<Held> = None;
    // Since when no daemon serves the connection (or, before the first deposit, since the start).
    let mut unserved_since = Some(Instant::now());
    loop {
        let timeout = unserved_since.map(|since| {
            let left = options.resume_within.saturating_sub(since.elapsed());
            Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            })
        });
        let mut fds = Vec::with_capacity(daemons.len() + 2);
        fds.push(PollFd::new(listener, PollFlags::IN));
        // No events asked: the descriptor only reports POLLERR once the connection is gone (readable
        // means a request waits, which is the daemons' business).
        if let Some(held) = &held {
            fds.push(PollFd::new(&held.device, PollFlags::empty()));
        }
        let first_daemon = fds.len();
        for daemon in &daemons {
            fds.push(PollFd::new(&daemon.socket, PollFlags::IN));
        }
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let listener_ready = !fds[0].revents().is_empty();
        let connection_gone =
            held.is_some() && fds[1].revents().intersects(PollFlags::ERR | PollFlags::HUP);
        let ready: Vec<usize> = fds[first_daemon..]
            .iter()
            .enumerate()
            .filter(|(_, fd)| !fd.revents().is_empty())
            .map(|(index, _)| index)
            .collect();
        drop(fds);

        if connection_gone {
            tracing::info!("the FUSE connection ended (unmounted everywhere, or aborted); exiting");
            return Ok(());
        }
        // Newest first, so that removing one keeps the others' indexes.
        for index in ready.into_iter().rev() {
            let answered = answer(&mut daemons, index, &mut held, &mut unserved_since);
            if !answered {
                let gone = daemons.remove(index);
                if gone.serving && !daemons.iter().any(|d| d.serving) {
                    unserved_since = Some(Instant::now());
                    tracing::info!(
                        "the serving daemon is gone; holding the connection for {:?}",
                        options.resume_within
                    );
                }
                if let Some(held) = &held {
                    // What it had taken and not answered goes to whoever serves now, or next.
                    if let Err(e) = resend_unanswered(held.device.as_fd()) {
                        tracing::warn!("cannot ask the kernel to resend unanswered requests: {e}");
                    }
                }
            }
        }
        if listener_ready {
            match handover_socket::accept(listener.as_fd()) {
                Ok(socket) if handover_socket::peer_is_root(&socket) => daemons.push(Daemon {
                    socket,
                    serving: false,
                }),
                Ok(_) => tracing::warn!("refused a connection from a process not running as root"),
                Err(e) => tracing::debug!("accept: {e}"),
            }
        }
        if let Some(since) = unserved_since {
            if since.elapsed() >= options.resume_within && daemons.iter().all(|d| !d.serving) {
                give_up(options, held.take());
                return Ok(());
            }
        }
    }
}

/// Reads and answers one message from daemon `index`; false when it has gone (or spoke nonsense).
fn answer(
    daemons: &mut [Daemon],
    index: usize,
    held: &mut Option<Held>,
    unserved_since: &mut Option<Instant>,
) -> bool {
    let (message, fd) = match handover_socket::receive(daemons[index].socket.as_fd()) {
        Ok(Some(received)) => received,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!("dropping a daemon's connection: {e}");
            return false;
        }
    };
    let socket = daemons[index].socket.as_fd();
    let sent = match (message, fd) {
        (Message::Ask, _) => match held {
            Some(held) => {
                let live = daemons.iter().any(|d| d.serving);
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
        },
        (Message::Deposit(record), Some(device)) => {
            tracing::info!(device = %record.device, "holding the connection a daemon mounted");
            *held = Some(Held {
                device,
                next: record.successor(),
            });
            Ok(())
        }
        (Message::Serving, _) => {
            for (other, daemon) in daemons.iter_mut().enumerate() {
                if other != index && daemon.serving {
                    daemon.serving = false;
                    let _ =
                        handover_socket::send(daemon.socket.as_fd(), &Message::Superseded, None);
                }
            }
            daemons[index].serving = true;
            *unserved_since = None;
            Ok(())
        }
        (message, _) => {
            tracing::warn!(?message, "unexpected message from a daemon");
            return false;
        }
    };
    sent.is_ok()
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
