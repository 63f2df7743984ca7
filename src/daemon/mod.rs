//! `cgview mount`: prepare the mount point, mount (or take over from a running cgview), serve until
//! SIGTERM/SIGINT, unmount.
//!
//! - [`mount_point`]: what the mount point holds, and what to do about it before mounting;
//! - [`serve`]: mount, hand over or take over, serve, stop; the janitor and repair threads;
//! - [`mount_api`]: the new mount API (detached mounts, mounting beneath a running daemon);
//! - [`mount_scan`], [`repair`]: other namespaces' cgview mounts: found, repaired, moved;
//! - [`endpoint`]: what `--metrics-addr` serves;
//! - [`notify`]: readiness for systemd; [`cgroup_namespace`]: joining the host's.

mod cgroup_namespace;
mod endpoint;
pub mod fdstore;
pub mod handover_socket;
pub mod holder;
pub mod keeper;
pub mod mount_api;
mod mount_point;
pub mod mount_scan;
pub mod notify;
pub mod repair;
pub mod seccomp;
mod serve;

pub use crate::daemon::mount_scan::FS_NAME;
pub use cgroup_namespace::join_host_cgroup_namespace;
pub use mount_point::{mount_at, prepare_mount_point, MountPlan};
pub use serve::{serve, Start};

use crate::host::error::ReadError;
use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// How requests reach the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Worker threads reading `/dev/fuse`.
    DevFuse,
    /// FUSE over io_uring (Linux 6.14+, `fuse.enable_uring=1`): one ring per CPU, served by a thread
    /// pinned to it, so a request and its reply never cross CPUs. Falls back to `/dev/fuse` when the
    /// kernel does not offer it.
    IoUring,
}

/// Entries registered per ring: one being answered while the next request already waits in the other.
const RING_DEPTH: usize = 2;

#[derive(Debug, Error)]
pub enum MountError {
    #[error("cgview mount must run as root: it mounts a FUSE file system that other users' processes read")]
    NotRoot,
    #[error("/dev/fuse is missing: load the fuse module (modprobe fuse) or pass the device into this container")]
    NoFuseDevice,
    #[error("the mount point {0} is a regular file, not a directory")]
    MountPointIsFile(PathBuf),
    #[error("the mount point {path} holds {found}, which cgview did not put there: mounting over it would hide it; empty it or choose another mount point")]
    MountPointNotEmpty { path: PathBuf, found: String },
    #[error("{0} is already served by a running cgview, and this kernel cannot take it over (mounting beneath needs Linux 6.5); stop that one first")]
    CannotTakeOver(PathBuf),
    #[error("cannot prepare the mount point {path}")]
    MountPoint {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot mount cgview at {path}")]
    Mount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the mount table")]
    MountTable(#[source] ReadError),
    #[error("cannot set up signal handling")]
    Signals(#[source] nix::Error),
    #[error("cannot serve metrics")]
    Metrics(#[source] io::Error),
    #[error("the mount at {0} was removed from outside cgview")]
    UnmountedExternally(PathBuf),
    #[error("cannot start the io_uring rings the kernel agreed to (mount without --io-uring)")]
    Rings(#[source] io::Error),
}
