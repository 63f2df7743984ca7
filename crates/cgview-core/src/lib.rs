//! cgview's pure ring: everything that turns kernel text and cgroup values into the text a container
//! reads, as functions of their arguments. No file system, no FUSE, no clock (`tests/rings.rs` in the
//! workspace root fails the build's tests when one is named here), so every piece is tested on fixtures
//! without root, in seconds.
//!
//! - [`parse`]: kernel text formats (`/proc`, cgroup v1 and v2 files, mountinfo);
//! - [`model`]: what a container is allowed and what it uses, independent of cgroup version;
//! - [`render`]: one renderer per served file;
//! - [`catalog`]: the served files and the paths a container binds;
//! - [`failure`]: every way a request fails, with its errno and fallback cause;
//! - [`handover`]: what a daemon passes to its successor with the live FUSE connection;
//! - [`permissions`]: who may read or search what, as the kernel decides it.

pub mod catalog;
mod error_chain;
pub mod failure;
pub mod handover;
pub mod model;
pub mod parse;
pub mod permissions;
pub mod render;

pub use error_chain::error_chain;
