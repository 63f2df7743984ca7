//! FUSE over io_uring (Linux 6.14+): requests arrive in buffers registered with the kernel, one queue per
//! possible CPU, instead of being read from `/dev/fuse`. A request is put on the queue of the CPU its
//! caller runs on, and that queue's thread, pinned to the CPU, answers it and fetches the next one in a
//! single system call. FORGET and INTERRUPT still come through `/dev/fuse`, which the `fuser` session keeps
//! reading.
//!
//! The kernel holds every request of a connection that agreed to io_uring at INIT until every queue has
//! an entry registered, and from then on serves the requests made on a CPU only from that CPU's queue. So
//! the rings are made before INIT ([`prepare`]; if that fails the daemon does not ask for io_uring),
//! registered right after it ([`PreparedRings::start`]), and live exactly as long as the connection.

pub(crate) mod abi;
mod buffer;
pub(crate) mod dispatch;
mod queue;
mod sqe;

use crate::fs::Fs;

/// The request decoder and its buffer sizes, public for the fuzz target that feeds it arbitrary
/// header and payload bytes (`fuzz/fuzz_targets/ring_request.rs`); the daemon itself only reaches it
/// through the queues.
pub use abi::{MIN_PAYLOAD_LEN, REQ_HEADER_LEN};
use cgview_core::parse::cpuset::parse_cpu_list;
pub use dispatch::answer;
pub use queue::quiesce;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{mpsc, Arc};
use thiserror::Error;

/// `num_possible_cpus()`, the kernel's number of queues: offline and not-yet-plugged CPUs count too.
const POSSIBLE_CPUS: &str = "/sys/devices/system/cpu/possible";

/// The `max_readahead` the kernel offers at INIT: `VM_READAHEAD_PAGES` of a new mount's backing device,
/// 128 KiB on every architecture. fuser derives the `max_pages` it replies from it.
const KERNEL_MAX_READAHEAD: usize = 128 * 1024;

#[derive(Debug, Error)]
enum RingError {
    #[error("cannot read the possible CPUs from {POSSIBLE_CPUS}")]
    PossibleCpus(#[source] io::Error),
    #[error("cannot parse the possible CPUs in {POSSIBLE_CPUS}")]
    PossibleCpusFormat(#[source] cgview_core::parse::ParseError),
    #[error("{POSSIBLE_CPUS} lists {0} CPUs, more queues than a FUSE ring can have")]
    TooManyCpus(usize),
    #[error("cannot start the ring thread of CPU {qid}")]
    Spawn {
        qid: u16,
        #[source]
        source: io::Error,
    },
    #[error("cannot create the io_uring of CPU {qid}")]
    Setup {
        qid: u16,
        #[source]
        source: io::Error,
    },
    #[error("the ring thread of CPU {qid} ended before its ring was ready")]
    ThreadEnded { qid: u16 },
    #[error("the queue of CPU {qid} registered {registered} of {depth} ring entries")]
    Register {
        qid: u16,
        registered: usize,
        depth: usize,
        #[source]
        source: Option<io::Error>,
    },
}

impl From<RingError> for io::Error {
    fn from(error: RingError) -> io::Error {
        let kind = match &error {
            RingError::PossibleCpus(source)
            | RingError::Spawn { source, .. }
            | RingError::Setup { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

/// Rings prepared before INIT: one per possible CPU, each in its own thread (pinned to its CPU, where the
/// CPU allows it), waiting for [`start`](PreparedRings::start). Dropping it ends the threads.
pub struct PreparedRings {
    queues: Vec<PreparedQueue>,
    depth: usize,
}

/// A queue's thread (detached: it ends with the connection) and how to hand it the connection.
struct PreparedQueue {
    qid: u16,
    start: mpsc::Sender<queue::Start>,
}

/// Makes one ring for each possible CPU, for `depth` entries each. Fails if any cannot be made (io_uring
/// disabled by `kernel.io_uring_disabled`, out of memory, ...); the daemon must then not ask the kernel
/// for FUSE over io_uring. Starts the ring threads: call it with the stop signals already blocked, so
/// they inherit the mask.
pub fn prepare(depth: usize) -> io::Result<PreparedRings> {
    let text = std::fs::read_to_string(POSSIBLE_CPUS).map_err(RingError::PossibleCpus)?;
    let cpus = parse_cpu_list(&text)
        .map_err(RingError::PossibleCpusFormat)?
        .len()
        .max(1);
    let count = u16::try_from(cpus).map_err(|_| RingError::TooManyCpus(cpus))?;
    let depth = depth.max(1);
    let (prepared_tx, prepared_rx) = mpsc::channel();
    let mut queues = Vec::with_capacity(usize::from(count));
    for qid in 0..count {
        let (start_tx, start_rx) = mpsc::channel();
        let prepared = prepared_tx.clone();
        std::thread::Builder::new()
            .name(format!("cgview-ring-{qid}"))
            .spawn(move || queue::run(qid, depth, prepared, start_rx))
            .map_err(|source| RingError::Spawn { qid, source })?;
        queues.push(PreparedQueue {
            qid,
            start: start_tx,
        });
    }
    drop(prepared_tx);
    let mut ready = vec![false; queues.len()];
    for _ in 0..queues.len() {
        match prepared_rx.recv() {
            Ok((qid, Ok(()))) => {
                if let Some(flag) = ready.get_mut(usize::from(qid)) {
                    *flag = true;
                }
            }
            Ok((qid, Err(source))) => return Err(RingError::Setup { qid, source }.into()),
            Err(mpsc::RecvError) => break,
        }
    }
    if let Some(qid) = ready.iter().position(|&ready| !ready) {
        // u16: qid < count.
        let qid = qid as u16;
        return Err(RingError::ThreadEnded { qid }.into());
    }
    Ok(PreparedRings { queues, depth })
}

impl PreparedRings {
    /// Registers every queue's entries and serves. Call it once INIT has completed with
    /// FUSE_OVER_IO_URING agreed: `fuse` is a duplicate of the session's `/dev/fuse` descriptor and
    /// `max_write` the value fuser replied at INIT, from which the kernel sizes the payload buffers it
    /// accepts.
    ///
    /// Returns once every queue has registered all its entries; the threads then serve until the
    /// connection ends (unmount or abort). An error means some entry was not registered: the kernel may
    /// hold requests for a queue with none, so the mount must not be used. The threads that did register
    /// keep serving, and keep `/dev/fuse` open through their rings, until the connection ends or the
    /// process exits.
    pub fn start(self, fuse: OwnedFd, fs: Arc<Fs>, max_write: u32) -> io::Result<()> {
        let queues = self.queues.len();
        let payload_len = payload_buffer_len(max_write, page_size());
        let fuse = Arc::new(fuse);
        let (report_tx, report_rx) = mpsc::channel();
        let mut failure = None;
        let mut reported = vec![false; self.queues.len()];
        for queue in self.queues {
            let start = queue::Start {
                fuse: fuse.clone(),
                fs: fs.clone(),
                payload_len,
                report: report_tx.clone(),
            };
            if queue.start.send(start).is_err() {
                failure.get_or_insert(RingError::ThreadEnded { qid: queue.qid });
            }
        }
        drop(report_tx);
        drop(fuse);
        // Ends once every thread has reported (or ended without doing so).
        for report in report_rx {
            if let Some(flag) = reported.get_mut(usize::from(report.qid)) {
                *flag = true;
            }
            if report.registered < self.depth || report.error.is_some() {
                failure.get_or_insert(RingError::Register {
                    qid: report.qid,
                    registered: report.registered,
                    depth: self.depth,
                    source: report.error,
                });
            }
        }
        if let Some(qid) = reported.iter().position(|&reported| !reported) {
            failure.get_or_insert(RingError::ThreadEnded { qid: qid as u16 });
        }
        if let Some(failure) = failure {
            return Err(failure.into());
        }
        tracing::info!(
            queues,
            depth = self.depth,
            buffer_bytes = queue::HEADER_AREA + payload_len,
            "serving over io_uring, a ring per CPU"
        );
        Ok(())
    }
}

/// The payload buffer every entry needs: the kernel's `max_payload_sz`, which is
/// `max(FUSE_MIN_READ_BUFFER, max_write, max_pages × page)`. fuser replies
/// `max_pages = ⌈max(max_write, max_readahead) / page⌉`; the kernel can only lower it (to
/// `fs.fuse.max_pages_limit`), so this is never short. A kernel that offered a larger readahead would
/// refuse the entries, and [`PreparedRings::start`] would say so.
fn payload_buffer_len(max_write: u32, page: usize) -> usize {
    let max_write = usize::try_from(max_write).unwrap_or(usize::MAX);
    let max_pages_bytes = max_write
        .max(KERNEL_MAX_READAHEAD)
        .div_ceil(page)
        .saturating_mul(page);
    abi::MIN_PAYLOAD_LEN
        .max(max_write)
        .max(max_pages_bytes)
        .next_multiple_of(page)
}

fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|page| usize::try_from(page).ok())
        .filter(|&page| page > 0)
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_buffer_matches_the_kernels_requirement_for_128k_writes() {
        // Measured: the kernel's max_payload_sz is 131072 with max_write 128 KiB on 4 KiB pages.
        assert_eq!(payload_buffer_len(128 * 1024, 4096), 131072);
        assert_eq!(payload_buffer_len(128 * 1024, 65536), 131072);
    }

    #[test]
    fn payload_buffer_covers_readahead_for_small_writes() {
        assert_eq!(payload_buffer_len(4096, 4096), KERNEL_MAX_READAHEAD);
        assert_eq!(payload_buffer_len(0, 4096), KERNEL_MAX_READAHEAD);
    }

    #[test]
    fn payload_buffer_is_whole_pages_of_at_least_max_write() {
        let len = payload_buffer_len(1_000_001, 4096);
        assert_eq!(len % 4096, 0);
        assert!(len >= 1_000_001);
        assert!(len < 1_000_001 + 4096);
    }

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two());
    }

    #[test]
    fn ring_errors_name_the_cpu_and_keep_the_cause() {
        let error: io::Error = RingError::Setup {
            qid: 3,
            source: io::Error::from_raw_os_error(libc::EPERM),
        }
        .into();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(error.to_string(), "cannot create the io_uring of CPU 3");
        let source = std::error::Error::source(&error).unwrap();
        assert_eq!(
            source.to_string(),
            io::Error::from_raw_os_error(libc::EPERM).to_string()
        );
    }
}
