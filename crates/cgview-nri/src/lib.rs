//! cgview's NRI plugin (`cgview nri`, or `cgview mount --nri`): the container runtime (containerd 1.7+,
//! CRI-O 1.26+) asks it at every container's creation, and it answers with read-only binds of cgview's
//! files over the container's `/proc/...` and `/sys/devices/system/cpu`. The binds never appear in the
//! pod spec, so pods need no `hostPath` and pass PodSecurity's `restricted` level.
//!
//! - [`protocol`]: every wire-level fact (socket, multiplexer, ttrpc, NRI's names and numbers);
//! - [`proto`]: the protobuf messages, written from NRI's and ttrpc's field numbers;
//! - [`wire`] (pure): multiplexer frames and ttrpc messages to and from bytes;
//! - [`policy`] (pure): which containers are bound, and the mounts;
//! - [`seccomp`] (pure): the container's seccomp policy with `sysinfo` handed to cgview (NRI 0.10+);
//! - [`handler`]: one request in, its answer out;
//! - [`session`]: the connection to the runtime, registration and reconnection;
//! - [`serving`]: whether cgview serves its mount point, asked without blocking;
//! - [`node_lock`]: one plugin per runtime socket on a node (a rollout runs two daemons);
//! - [`registry`]: the containers the runtime described, with their ids and cgroup paths;
//! - [`counters`]: the plugin's metrics.

pub mod counters;
pub mod handler;
pub mod node_lock;
pub mod policy;
pub mod proto;
pub mod protocol;
pub mod registry;
pub mod seccomp;
pub mod serving;
pub mod session;
pub mod wire;
