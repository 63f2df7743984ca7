//! How requests arrive and replies leave: [`fuse`] (the `fuser` adapter over `/dev/fuse`), [`ring`] (FUSE
//! over io_uring), and [`fair_queue`] (containers served in turns). Each decodes a request, asks
//! [`crate::fs`] and encodes the answer.

pub mod fair_queue;
pub mod fuse;
pub mod ring;
