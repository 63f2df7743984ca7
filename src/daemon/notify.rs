//! The systemd readiness protocol (`sd_notify(3)`): a datagram to `$NOTIFY_SOCKET`, so a `Type=notify`
//! unit is "started" only once the mount serves, and units ordered after it (docker, containerd) never
//! bind-mount files that are not there yet.

use std::io;
use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `READY=1`) to the service manager; nothing when not run by one.
pub fn notify(state: &str) -> io::Result<()> {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket = socket.to_string_lossy().into_owned();
    let sender = UnixDatagram::unbound()?;
    match socket.strip_prefix('@') {
        // An abstract socket: the name without the '@'.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sender.send_to_addr(state.as_bytes(), &address)?;
        }
        None => {
            sender.send_to(state.as_bytes(), &socket)?;
        }
    }
    Ok(())
}
