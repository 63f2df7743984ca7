//! One renderer per served file: pure functions from host file text and a container's model to the bytes the
//! container reads. They return `Err` only when the host text itself cannot be understood; the caller then
//! serves the host file unchanged.

pub mod block_stat;
pub mod cpu_list;
pub mod cpuinfo;
pub mod diskstats;
pub mod meminfo;
pub mod node;
pub mod stat;
pub mod swaps;
pub mod uptime;
pub mod vmstat;
