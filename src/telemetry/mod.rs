//! What the daemon reports about itself: [`metrics`] (counters and gauges in Prometheus text) and [`http`]
//! (the endpoint that serves them).

pub mod http;
pub mod metrics;
