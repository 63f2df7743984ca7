//! cgview: per-container views of `/proc` and `/sys` files, served over FUSE.
//!
//! Rings, inner never naming outer (`tests/rings.rs` fails when one does), in the order a request travels
//! from the kernel to the host and back:
//! - [`transport`]: how requests arrive: the `fuser` adapter over `/dev/fuse` (the only ring that names
//!   `fuser`), FUSE over io_uring, and the fair queue that serves containers in turns; failures become
//!   errnos here;
//! - [`fs`]: what each FUSE operation answers, transport-neutral: one type, [`fs::Fs`], over the inodes,
//!   the host mirror, open and directory handles and what an open reads;
//! - [`service`]: the per-caller view: caches, per-container state, the fallback policy, the load sampler;
//! - [`host`]: the injected roots, the cgroup layout, caller resolution and the cgroup and sysfs readers;
//! - the pure ring, the `cgview-core` crate (re-exported as [`parse`], [`model`], [`render`],
//!   [`catalog`], [`permissions`], and [`failure`], the one table of failures, their errnos and fallback causes): no I/O,
//!   no FUSE, no clock.
//!
//! Beside them: [`daemon`] (serving a mount point: mount API, repair, mount scan, sd_notify) and
//! [`telemetry`] (metrics and their HTTP endpoint). The admission webhook is the `cgview-webhook` crate,
//! re-exported as `webhook` with the default `webhook` feature.

pub mod daemon;
pub mod fs;
pub mod host;
pub mod service;
pub mod telemetry;
pub mod transport;

pub use cgview_core::{catalog, error_chain, failure, handover, model, parse, permissions, render};
#[cfg(feature = "webhook")]
pub use cgview_webhook as webhook;
