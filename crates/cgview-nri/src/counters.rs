//! What the plugin decided and what went wrong, counted with relaxed atomics and printed in Prometheus'
//! text format by whoever serves metrics (the daemon's `/metrics`, or `cgview nri --metrics-addr`).

use crate::policy::SkipReason;
use crate::seccomp::SeccompSkip;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The failures counted in `cgview_nri_errors_total`, by `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The runtime's socket could not be reached.
    Connect,
    /// `RegisterPlugin` failed or was not answered in time.
    Register,
    /// An established connection to the runtime was lost.
    ConnectionLost,
    /// A request the plugin could not decode, or for a method it does not serve.
    BadRequest,
    /// A message longer than the protocol allows (skipped, answered `RESOURCE_EXHAUSTED`).
    Oversized,
    /// A container created while cgview did not serve and the policy refused it (fail-closed).
    RefusedNotServed,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Connect,
        ErrorKind::Register,
        ErrorKind::ConnectionLost,
        ErrorKind::BadRequest,
        ErrorKind::Oversized,
        ErrorKind::RefusedNotServed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Register => "register",
            ErrorKind::ConnectionLost => "connection_lost",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Oversized => "oversized",
            ErrorKind::RefusedNotServed => "refused_not_served",
        }
    }
}

#[derive(Debug, Default)]
pub struct Counters {
    connected: AtomicU64,
    registrations: AtomicU64,
    injected: AtomicU64,
    refused: AtomicU64,
    skipped: [AtomicU64; SkipReason::ALL.len()],
    errors: [AtomicU64; ErrorKind::ALL.len()],
    tracked: AtomicU64,
    synchronized_without_view: AtomicU64,
    seccomp_added: AtomicU64,
    seccomp_refused: AtomicU64,
    seccomp_skipped: [AtomicU64; SeccompSkip::ALL.len()],
}

fn index_of<T: PartialEq>(all: &[T], item: &T) -> usize {
    all.iter().position(|x| x == item).unwrap_or(0)
}

impl Counters {
    pub fn set_connected(&self, connected: bool) {
        self.connected
            .store(u64::from(connected), Ordering::Relaxed);
    }

    pub fn record_registration(&self) {
        self.registrations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_injected(&self) {
        self.injected.fetch_add(1, Ordering::Relaxed);
    }

    /// A creation refused because cgview did not serve (fail-closed); also counted as an error.
    pub fn record_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.record_error(ErrorKind::RefusedNotServed);
    }

    pub fn record_skipped(&self, reason: SkipReason) {
        self.skipped[index_of(&SkipReason::ALL, &reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// A bound container whose seccomp policy got the `sysinfo` rule.
    pub fn record_seccomp_added(&self) {
        self.seccomp_added.fetch_add(1, Ordering::Relaxed);
    }

    /// A creation refused because the seccomp socket was not served (fail-closed); also counted as a
    /// refused container.
    pub fn record_seccomp_refused(&self) {
        self.seccomp_refused.fetch_add(1, Ordering::Relaxed);
        self.record_refused();
    }

    pub fn record_seccomp_skipped(&self, reason: SeccompSkip) {
        self.seccomp_skipped[index_of(&SeccompSkip::ALL, &reason)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn seccomp_added(&self) -> u64 {
        self.seccomp_added.load(Ordering::Relaxed)
    }

    pub fn seccomp_refused(&self) -> u64 {
        self.seccomp_refused.load(Ordering::Relaxed)
    }

    pub fn seccomp_skipped(&self, reason: SeccompSkip) -> u64 {
        self.seccomp_skipped[index_of(&SeccompSkip::ALL, &reason)].load(Ordering::Relaxed)
    }

    pub fn record_error(&self, kind: ErrorKind) {
        self.errors[index_of(&ErrorKind::ALL, &kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// The containers the plugin knows of now (bound or not).
    pub fn set_tracked(&self, count: usize) {
        self.tracked.store(count as u64, Ordering::Relaxed);
    }

    /// Running containers found at the last `Synchronize` that were selected but lack the binds
    /// (created while no plugin was connected): they keep the host's view until recreated.
    pub fn set_synchronized_without_view(&self, count: usize) {
        self.synchronized_without_view
            .store(count as u64, Ordering::Relaxed);
    }

    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.skipped[index_of(&SkipReason::ALL, &reason)].load(Ordering::Relaxed)
    }

    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[index_of(&ErrorKind::ALL, &kind)].load(Ordering::Relaxed)
    }

    pub fn registrations(&self) -> u64 {
        self.registrations.load(Ordering::Relaxed)
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed) == 1
    }

    /// The Prometheus text exposition of these counters, appended to `out`.
    pub fn render(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        family(
            "cgview_nri_connected",
            "gauge",
            "1 while the NRI plugin is registered with the runtime.",
            &[(String::new(), load(&self.connected))],
        );
        family(
            "cgview_nri_registrations_total",
            "counter",
            "Times the NRI plugin registered with the runtime (its starts and the runtime's restarts).",
            &[(String::new(), load(&self.registrations))],
        );
        let mut decisions = vec![
            ("{decision=\"injected\"}".to_owned(), load(&self.injected)),
            ("{decision=\"refused\"}".to_owned(), load(&self.refused)),
        ];
        for (reason, count) in SkipReason::ALL.iter().zip(&self.skipped) {
            decisions.push((
                format!("{{decision=\"skipped\",reason=\"{}\"}}", reason.label()),
                load(count),
            ));
        }
        family(
            "cgview_nri_containers_total",
            "counter",
            "Containers the runtime created, by what the NRI plugin did: injected (cgview's binds added), refused (creation failed: cgview did not serve), skipped (by reason).",
            &decisions,
        );
        let mut seccomp = vec![
            ("{decision=\"added\"}".to_owned(), load(&self.seccomp_added)),
            (
                "{decision=\"refused\"}".to_owned(),
                load(&self.seccomp_refused),
            ),
        ];
        for (reason, count) in SeccompSkip::ALL.iter().zip(&self.seccomp_skipped) {
            seccomp.push((
                format!("{{decision=\"skipped\",reason=\"{}\"}}", reason.label()),
                load(count),
            ));
        }
        family(
            "cgview_nri_seccomp_total",
            "counter",
            "With --nri-seccomp-socket, containers given the binds, by what the NRI plugin did with their seccomp policy: added (sysinfo handed to cgview), refused (creation failed: the socket was not served), skipped (left as it was, by reason).",
            &seccomp,
        );
        let errors: Vec<(String, u64)> = ErrorKind::ALL
            .iter()
            .zip(&self.errors)
            .map(|(kind, count)| (format!("{{kind=\"{}\"}}", kind.label()), load(count)))
            .collect();
        family(
            "cgview_nri_errors_total",
            "counter",
            "NRI plugin failures, by kind.",
            &errors,
        );
        family(
            "cgview_nri_tracked_containers",
            "gauge",
            "Containers the NRI plugin knows of (from Synchronize and creations, less removals).",
            &[(String::new(), load(&self.tracked))],
        );
        family(
            "cgview_nri_running_without_view",
            "gauge",
            "Selected containers the last Synchronize found running without cgview's binds (created while no plugin was registered).",
            &[(String::new(), load(&self.synchronized_without_view))],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_printed_with_its_labels() {
        let counters = Counters::default();
        counters.record_injected();
        counters.record_skipped(SkipReason::AlreadyMounted);
        counters.record_refused();
        counters.set_connected(true);
        let mut out = String::new();
        counters.render(&mut out);
        assert!(out.contains("cgview_nri_connected 1\n"), "{out}");
        assert!(out.contains("cgview_nri_containers_total{decision=\"injected\"} 1\n"));
        assert!(out.contains("cgview_nri_containers_total{decision=\"refused\"} 1\n"));
        assert!(out.contains(
            "cgview_nri_containers_total{decision=\"skipped\",reason=\"already_mounted\"} 1\n"
        ));
        assert!(out.contains("cgview_nri_errors_total{kind=\"refused_not_served\"} 1\n"));
        assert!(out.contains("cgview_nri_errors_total{kind=\"oversized\"} 0\n"));
        for reason in SkipReason::ALL {
            assert!(out.contains(reason.label()), "{}", reason.label());
        }
        let counters = Counters::default();
        counters.record_seccomp_added();
        counters.record_seccomp_skipped(SeccompSkip::HasListener);
        counters.record_seccomp_refused();
        let mut out = String::new();
        counters.render(&mut out);
        assert!(
            out.contains("cgview_nri_seccomp_total{decision=\"added\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("cgview_nri_seccomp_total{decision=\"refused\"} 1\n"));
        assert!(out.contains("cgview_nri_containers_total{decision=\"refused\"} 1\n"));
        assert!(out.contains(
            "cgview_nri_seccomp_total{decision=\"skipped\",reason=\"has_listener\"} 1\n"
        ));
        for reason in SeccompSkip::ALL {
            assert!(
                out.contains(&format!("reason=\"{}\"", reason.label())),
                "{}",
                reason.label()
            );
        }
    }
}
