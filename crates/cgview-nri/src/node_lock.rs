//! One cgview plugin per runtime socket on a node. The runtime calls every registered plugin, and two
//! that add the same mounts fail every container's creation ("plugins "50-cgview" and "50-cgview" both
//! tried to set mount /proc/meminfo"), which is what a DaemonSet rollout would cause: the next pod's
//! daemon starts while the old one still runs. So a plugin first takes an exclusive `flock` on a file
//! named after the socket, in a directory both pods share (`/run/cgview`, a hostPath), and registers
//! only once it holds it: when the old daemon exits (or becomes `cgview superseded`, an `exec` that
//! closes the file) the lock passes at once.

use rustix::fs::{flock, FlockOperation};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Where the lock files are unless `--nri-lock-dir` says otherwise.
pub const DEFAULT_LOCK_DIR: &str = "/run/cgview";

/// The lock file for the runtime socket `socket`: its canonical path (the parent resolved, so
/// `/var/run/nri/nri.sock` and `/run/nri/nri.sock` are one) hashed into the name.
pub fn lock_path(dir: &Path, socket: &Path) -> PathBuf {
    let absolute = std::path::absolute(socket).unwrap_or_else(|_| socket.to_owned());
    let canonical = match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .map(|parent| parent.join(name))
            .unwrap_or_else(|_| absolute.clone()),
        _ => absolute,
    };
    dir.join(format!(
        "nri-{:016x}.lock",
        fnv1a(canonical.as_os_str().as_encoded_bytes())
    ))
}

/// FNV-1a, 64-bit: a stable name, not a secret.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Holds the lock until dropped (or until the process exits or execs).
#[derive(Debug)]
pub struct NodeLock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the lock at `path`, waiting for whoever holds it (logged once).
pub fn acquire(path: &Path) -> io::Result<NodeLock> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            tracing::info!(
                "another cgview NRI plugin for this runtime holds {} (the other pod of a rollout?); registering once it exits",
                path.display()
            );
            flock(&file, FlockOperation::LockExclusive)?;
            tracing::info!("took {} over", path.display());
        }
        Err(e) => return Err(e.into()),
    }
    Ok(NodeLock {
        _file: file,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn the_lock_file_is_named_after_the_resolved_socket_path() {
        let dir = Path::new("/run/cgview");
        let a = lock_path(dir, Path::new("/tmp/../tmp/nri.sock"));
        let b = lock_path(dir, Path::new("/tmp/nri.sock"));
        assert_eq!(a, b);
        assert_ne!(a, lock_path(dir, Path::new("/tmp/other.sock")));
        assert!(a.starts_with(dir));
    }

    #[test]
    fn a_second_holder_waits_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("cgview-nri-lock-{}", std::process::id()));
        let path = lock_path(&dir, Path::new("/nowhere/nri.sock"));
        let first = acquire(&path).unwrap();
        let (sender, receiver) = mpsc::channel();
        let waiting_path = path.clone();
        let waiter = std::thread::spawn(move || {
            let lock = acquire(&waiting_path).unwrap();
            sender.send(()).unwrap();
            drop(lock);
        });
        assert!(receiver.recv_timeout(Duration::from_millis(300)).is_err());
        drop(first);
        receiver.recv_timeout(Duration::from_secs(5)).unwrap();
        waiter.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
