//! What a container is allowed and what it uses, independent of cgroup version. The daemon's cgroup
//! readers fill these from v1 or v2 files; renderers in [`crate::render`] turn them into file text.

pub mod cpu;
pub mod cpu_time;
pub mod io;
pub mod loadavg;
pub mod memory;
pub mod numa;
pub mod vmstat;
