//! cgview: per-container views of `/proc` and `/sys` files, served over FUSE.
//!
//! Three rings, inner never importing outer:
//! - pure: [`parse`] (kernel text formats), [`model`] (limits and usage), [`render`] (one renderer per file);
//! - I/O: [`host`] (injected roots, cgroup layout, caller resolution, cgroup readers) and [`view`];
//! - shell: [`fuse_fs`] (the only module that imports `fuser`) and the binary's CLI.

pub mod bind_mounts;
pub mod cache;
pub mod container_binds;
pub mod cpu_ledger;
pub mod daemon;
pub mod fair_queue;
pub mod fallback;
pub mod fs_ops;
pub mod fuse_fs;
pub mod host;
pub mod metrics;
pub mod metrics_server;
pub mod model;
pub mod mount_api;
pub mod notify;
pub mod parse;
pub mod permissions;
pub mod render;
pub mod repair;
pub mod ring;
pub mod served;
pub mod task_tracker;
pub mod tree;
pub mod view;
pub mod webhook;
