//! What each FUSE operation answers, whichever transport carries it.

pub mod ops;
pub mod permissions;
pub mod tree;
