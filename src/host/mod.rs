//! The I/O ring: reading the host's `/proc`, `/sys` and cgroup trees through injected roots.

pub mod cgroup_path;
pub mod cgroup_reader;
pub mod credentials;
pub mod error;
pub mod fd_budget;
pub mod files;
pub mod kernel_file;
pub mod layout;
pub mod paths;
pub mod resolve;
pub mod tasks;
