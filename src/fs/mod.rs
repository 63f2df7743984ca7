//! What each FUSE operation answers, whichever transport carries it.

pub mod ops;
pub mod tree;

/// Who may read or search what: a pure decision, in the core.
pub use cgview_core::permissions;
