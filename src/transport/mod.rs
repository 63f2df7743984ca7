//! How requests arrive and replies leave: [`fuse`] (the `fuser` adapter over `/dev/fuse`), [`ring`] (FUSE
//! over io_uring), [`resumed`] (a connection handed over by an earlier daemon, read without `fuser`),
//! [`passthrough`] (backing files both can name) and [`fair_queue`] (containers served in
//! turns). Each decodes a request, asks [`crate::fs::Fs`] and encodes the answer; a
//! [`Failure`](cgview_core::failure::Failure) becomes an errno only here.

pub mod fair_queue;
pub mod fuse;
pub mod passthrough;
pub mod resumed;
pub mod ring;
