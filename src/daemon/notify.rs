//! The systemd notification protocol (`sd_notify(3)`, `sd_pid_notify_with_fds(3)`): a datagram to
//! `$NOTIFY_SOCKET`, so a `Type=notify` unit is "started" only once the mount serves, and units ordered
//! after it (docker, containerd) never bind-mount files that are not there yet; with a descriptor
//! attached, it stores the FUSE connection in the unit's descriptor store ([`super::fdstore`]).

use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;

/// Sends `state` (e.g. `READY=1`) to the service manager; nothing when not run by one.
pub fn notify(state: &str) -> io::Result<()> {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return Ok(());
    }
    notify_with_fd(state, None)
}

/// Sends `state` with `fd` attached (`SCM_RIGHTS`); an error when not run by a service manager.
pub fn notify_with_fd(state: &str, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Err(io::Error::other("no $NOTIFY_SOCKET"));
    };
    let path = path.to_string_lossy().into_owned();
    let address = match path.strip_prefix('@') {
        // An abstract socket: the name without the '@'.
        Some(name) => SocketAddrUnix::new_abstract_name(name.as_bytes())?,
        None => SocketAddrUnix::new(path.as_str())?,
    };
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("cannot attach a descriptor"));
    }
    rustix::net::sendmsg_addr(
        &socket,
        &address,
        &[IoSlice::new(state.as_bytes())],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}
