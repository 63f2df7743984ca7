//! What each FUSE operation answers, whichever transport carries it: [`Fs`], one type whose methods are
//! the operations, built from one piece per job:
//! - [`nodes`]: what a node is, and the constant part of the tree (served files and their directories);
//! - [`mirror`]: the inode numbers of mirrored host entries, kept while the kernel holds them;
//! - [`host_mirror`]: lookups, listings and symlinks of the mirrored host directories, inside sysfs;
//! - [`handles`]: open files and directories, and the snapshot each reads;
//! - [`content`]: what an open reads (a render through the cache, a block device's stat, a host file);
//! - [`open_reply`]: how every open is answered (its flags, the backing file that refuses `mmap(2)`);
//! - [`attr`]: who asks, and the attributes replies carry.

pub mod attr;
mod content;
pub mod handles;
mod host_mirror;
mod mirror;
pub mod nodes;
pub mod open_reply;
mod ops;

pub use attr::{Attr, Caller, Entry, FileKind, ReadInto, Statfs, BLOCK_SIZE, NAME_MAX, TTL};
pub use handles::{slice_at, Snapshot};
pub use nodes::{DirEntry, Inode, NameLifetime, Node, NodeKind, FLOOR_NAME, ROOT_INODE};
pub use ops::Fs;
