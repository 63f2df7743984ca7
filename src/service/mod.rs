//! The per-caller view: render a served file for the calling container, cache what can be cached, and
//! serve the host file (counted) when a file cannot be virtualized.

pub mod cache;
pub mod counter_ledger;
pub mod cpu_ledger;
pub mod fallback;
pub mod sysinfo;
pub mod task_tracker;
pub mod view;
