//! The Unix socket between a daemon and the keeper that holds its FUSE connection: where it is, and the
//! messages on it. A message is one `SOCK_SEQPACKET` packet, a verb line and an optional
//! [`Handover`] record, with the `/dev/fuse` descriptor attached (`SCM_RIGHTS`) where it travels.

use cgview_core::handover::Handover;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Where keepers' sockets are made unless `--keeper-socket` names one: root's alone.
pub const RUNTIME_DIR: &str = "/run/cgview";

/// The keeper's socket for a mount point: one per canonical mount point, named by a hash of it (a
/// socket path holds at most 107 bytes; mount points may be longer).
pub fn default_socket(canonical_mount_point: &Path) -> PathBuf {
    let name = format!(
        "keeper-{:016x}.sock",
        fnv1a(canonical_mount_point.as_os_str().as_encoded_bytes())
    );
    Path::new(RUNTIME_DIR).join(name)
}

/// FNV-1a, 64 bits: stable across builds and versions, unlike std's hashers, so that a successor of
/// another version finds the same socket.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What travels between a daemon and its keeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Daemon: is there a connection to resume?
    Ask,
    /// Keeper: yes, this one (descriptor attached), for the daemon of this record's generation; `live`
    /// when another daemon still serves it (a take-over rather than a restart).
    Held { record: Handover, live: bool },
    /// Keeper: no; mount, then deposit.
    Empty,
    /// Daemon: keep a duplicate of this connection (descriptor attached).
    Deposit(Handover),
    /// Daemon: this daemon answers the connection now; any other is superseded.
    Serving,
    /// Keeper: a successor answers the connection now; exit without unmounting.
    Superseded,
    /// Keeper: stand by, holding a duplicate of whatever connection you hold (a second keeper, e.g. of
    /// the next pod in a rollout). It becomes the keeper when this one goes.
    Standby,
    /// Keeper to a standby: drop the connection you hold (the keeper gave it up).
    Release,
    /// Daemon: keep a duplicate of this container's seccomp notify descriptor (attached first) and of
    /// its slot table (attached second, see [`crate::daemon::seccomp::slots`]); `key` names the
    /// container's descriptor, so that a duplicate is recognised. Keeper to a standby: the same.
    NotifyDeposit { key: String },
    /// Daemon: every notify descriptor you hold, please.
    NotifyAsk,
    /// Keeper: one notify descriptor and its slot table (attached), in answer to `NotifyAsk`.
    NotifyHeld { key: String },
    /// Keeper: that was the last of them.
    NotifyEnd,
    /// Keeper to a standby: drop this notify descriptor (its container is gone).
    NotifyDrop { key: String },
}

impl Message {
    fn encode(&self) -> String {
        match self {
            Message::Ask => "ASK\n".into(),
            Message::Held { record, live } => format!(
                "HELD{}\n{}",
                if *live { " live" } else { "" },
                record.encode()
            ),
            Message::Empty => "EMPTY\n".into(),
            Message::Deposit(record) => format!("DEPOSIT\n{}", record.encode()),
            Message::Serving => "SERVING\n".into(),
            Message::Superseded => "SUPERSEDED\n".into(),
            Message::Standby => "STANDBY\n".into(),
            Message::Release => "RELEASE\n".into(),
            Message::NotifyDeposit { key } => format!("NOTIFY-DEPOSIT\n{key}"),
            Message::NotifyAsk => "NOTIFY-ASK\n".into(),
            Message::NotifyHeld { key } => format!("NOTIFY-HELD\n{key}"),
            Message::NotifyEnd => "NOTIFY-END\n".into(),
            Message::NotifyDrop { key } => format!("NOTIFY-DROP\n{key}"),
        }
    }

    fn decode(text: &str) -> io::Result<Message> {
        let (verb, rest) = text.split_once('\n').unwrap_or((text, ""));
        let record =
            || Handover::decode(rest).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
        Ok(match verb {
            "ASK" => Message::Ask,
            "HELD" => Message::Held {
                record: record()?,
                live: false,
            },
            "HELD live" => Message::Held {
                record: record()?,
                live: true,
            },
            "EMPTY" => Message::Empty,
            "DEPOSIT" => Message::Deposit(record()?),
            "SERVING" => Message::Serving,
            "SUPERSEDED" => Message::Superseded,
            "STANDBY" => Message::Standby,
            "RELEASE" => Message::Release,
            "NOTIFY-DEPOSIT" => Message::NotifyDeposit { key: rest.into() },
            "NOTIFY-ASK" => Message::NotifyAsk,
            "NOTIFY-HELD" => Message::NotifyHeld { key: rest.into() },
            "NOTIFY-END" => Message::NotifyEnd,
            "NOTIFY-DROP" => Message::NotifyDrop { key: rest.into() },
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown message {other:?} on the keeper's socket"),
                ))
            }
        })
    }
}

const MAX_MESSAGE: usize = 4096;

/// Descriptors one message carries at most.
pub const MAX_FDS: usize = 2;

pub fn send(
    socket: BorrowedFd<'_>,
    message: &Message,
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    send_fds(socket, message, &fds)
}

/// Sends `message` with up to [`MAX_FDS`] descriptors attached.
pub fn send_fds(
    socket: BorrowedFd<'_>,
    message: &Message,
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    let text = message.encode();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("cannot attach a descriptor"));
    }
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(text.as_bytes())],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// The next message and the descriptor attached to it; `None` when the peer has gone.
pub fn receive(socket: BorrowedFd<'_>) -> io::Result<Option<(Message, Option<OwnedFd>)>> {
    Ok(receive_fds(socket)?.map(|(message, fds)| (message, fds.into_iter().next())))
}

/// The next message and the descriptors attached to it (at most [`MAX_FDS`]), in order; `None` when
/// the peer has gone.
pub fn receive_fds(socket: BorrowedFd<'_>) -> io::Result<Option<(Message, Vec<OwnedFd>)>> {
    let mut buffer = [0u8; MAX_MESSAGE];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = loop {
        match rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut buffer)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if received.bytes == 0 {
        return Ok(None);
    }
    let text = std::str::from_utf8(&buffer[..received.bytes])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some((Message::decode(text)?, fds)))
}

fn new_socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    let socket = new_socket()?;
    rustix::net::connect(&socket, &SocketAddrUnix::new(path)?)?;
    Ok(socket)
}

/// Listens at `path`, in a directory only root may enter.
pub fn listen(path: &Path) -> io::Result<OwnedFd> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        if dir == Path::new(RUNTIME_DIR) {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    let socket = new_socket()?;
    rustix::net::bind(&socket, &SocketAddrUnix::new(path)?)?;
    rustix::net::listen(&socket, 16)?;
    Ok(socket)
}

pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Ok(rustix::net::accept_with(listener, SocketFlags::CLOEXEC)?)
}

/// Whether the peer runs as root: only root may take a FUSE connection.
pub fn peer_is_root(socket: impl AsFd) -> bool {
    rustix::net::sockopt::socket_peercred(socket).is_ok_and(|peer| peer.uid.is_root())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Handover {
        Handover {
            generation: 2,
            device: "0:61".into(),
            max_write: 131072,
            io_uring: false,
            mirror_seed: None,
            backing_id: None,
        }
    }

    #[test]
    fn every_message_reads_back() {
        for message in [
            Message::Ask,
            Message::Held {
                record: record(),
                live: true,
            },
            Message::Held {
                record: record(),
                live: false,
            },
            Message::Empty,
            Message::Deposit(record()),
            Message::Serving,
            Message::Superseded,
            Message::Standby,
            Message::Release,
            Message::NotifyDeposit {
                key: "ctr/4242".into(),
            },
            Message::NotifyAsk,
            Message::NotifyHeld {
                key: "ctr/4242".into(),
            },
            Message::NotifyEnd,
            Message::NotifyDrop {
                key: "ctr/4242".into(),
            },
        ] {
            assert_eq!(Message::decode(&message.encode()).unwrap(), message);
        }
        assert!(Message::decode("TAKE\n").is_err());
        assert!(Message::decode("HELD\ngeneration x\n").is_err());
    }

    #[test]
    fn a_descriptor_travels_with_its_message() {
        use std::os::unix::fs::MetadataExt;
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let file = tempfile::tempfile().unwrap();
        send(a.as_fd(), &Message::Deposit(record()), Some(file.as_fd())).unwrap();
        let (message, fd) = receive(b.as_fd()).unwrap().unwrap();
        assert_eq!(message, Message::Deposit(record()));
        let received = std::fs::File::from(fd.unwrap());
        assert_eq!(
            received.metadata().unwrap().ino(),
            file.metadata().unwrap().ino()
        );
        send(a.as_fd(), &Message::Serving, None).unwrap();
        let (message, fd) = receive(b.as_fd()).unwrap().unwrap();
        assert_eq!(message, Message::Serving);
        assert!(fd.is_none());
        drop(a);
        assert!(receive(b.as_fd()).unwrap().is_none());
    }

    #[test]
    fn two_descriptors_travel_in_order() {
        use std::os::unix::fs::MetadataExt;
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let first = tempfile::tempfile().unwrap();
        let second = tempfile::tempfile().unwrap();
        let message = Message::NotifyHeld {
            key: "ctr/1".into(),
        };
        send_fds(a.as_fd(), &message, &[first.as_fd(), second.as_fd()]).unwrap();
        let (received, fds) = receive_fds(b.as_fd()).unwrap().unwrap();
        assert_eq!(received, message);
        let inodes: Vec<u64> = fds
            .into_iter()
            .map(|fd| std::fs::File::from(fd).metadata().unwrap().ino())
            .collect();
        assert_eq!(
            inodes,
            [
                first.metadata().unwrap().ino(),
                second.metadata().unwrap().ino()
            ]
        );
        let three = [first.as_fd(), second.as_fd(), first.as_fd()];
        assert!(send_fds(a.as_fd(), &Message::NotifyEnd, &three).is_err());
    }

    #[test]
    fn sockets_are_named_by_mount_point_stably() {
        let a = default_socket(Path::new("/var/lib/cgview"));
        assert_eq!(a, default_socket(Path::new("/var/lib/cgview")));
        assert_ne!(a, default_socket(Path::new("/var/lib/cgview2")));
        assert!(a.as_os_str().len() < 100);
        // FNV-1a's published test vector.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
