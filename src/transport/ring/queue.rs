//! One queue of the FUSE ring: the thread that owns one CPU's io_uring and its entries' buffers, and the
//! loop that answers the requests the kernel puts into them.
//!
//! An entry cycles: REGISTER (or COMMIT_AND_FETCH) submitted, the kernel holds it; a completion with
//! result 0 means a request was written into its buffers; the reply is written over them and the next
//! COMMIT_AND_FETCH both returns it and offers the entry again. The buffers are touched only between a
//! completion and the next submission. The kernel serves the requests made on a CPU from that CPU's queue
//! alone, so a queue must never lose its entries while the connection lives: an entry that fails for any
//! reason other than the connection ending is registered again after a pause.

use super::abi;
use super::buffer::SharedBuffer;
use super::dispatch;
use super::sqe;
use crate::fs::Fs;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

pub type Ring = IoUring<squeue::Entry128, cqueue::Entry>;

/// An entry's header area: the kernel's 288-byte header, padded to a page so the payload after it starts
/// on a page.
pub const HEADER_AREA: usize = 4096;
const _: () = assert!(HEADER_AREA >= abi::REQ_HEADER_LEN);

/// The `/dev/fuse` file, registered as each ring's only fixed file: the kernel then skips looking the
/// descriptor up on every command.
const FUSE_FILE: types::Fixed = types::Fixed(0);

/// Marks a completion's `user_data` as an entry's retry timer rather than its command.
const TIMER: u64 = 1 << 63;

/// Requests taken off any ring of this process whose answers the kernel has not been given yet. A daemon
/// that leaves its connection to a successor waits for none to be in hand (see [`quiesce`]): the
/// kernel neither resends nor fails a request that a dead daemon's ring entry held.
static IN_HAND: AtomicUsize = AtomicUsize::new(0);

/// Waits, up to `within`, until no ring holds a request this daemon has not answered, seen twice a
/// moment apart (a completion posted meanwhile is picked up by its thread first). Returns whether it
/// got there.
pub fn quiesce(within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    let mut idle_seen = 0;
    while std::time::Instant::now() < deadline {
        if IN_HAND.load(Ordering::SeqCst) == 0 {
            idle_seen += 1;
            if idle_seen == 2 {
                return true;
            }
        } else {
            idle_seen = 0;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// The first pause before registering a failed entry again; doubled up to `MAX_RETRY_DELAY`.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(10);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);

/// What a queue thread needs once INIT agreed to the ring.
pub struct Start {
    pub fuse: Arc<OwnedFd>,
    pub fs: Arc<Fs>,
    pub payload_len: usize,
    pub report: mpsc::Sender<Report>,
}

/// How a queue's registration went.
pub struct Report {
    pub qid: u16,
    pub registered: usize,
    /// Why entries are missing, if they are.
    pub error: Option<io::Error>,
}

/// A ring for `depth` entries: each has at most one command or timer in flight.
pub fn build_ring(depth: usize) -> io::Result<Ring> {
    let entries =
        u32::try_from(depth.max(1)).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SUBMIT_ALL: one bad SQE must not leave the rest of a batch unsubmitted.
    IoUring::<squeue::Entry128, cqueue::Entry>::builder()
        .setup_submit_all()
        .build(entries)
}

/// The queue thread's body: pin, make the ring, say so on `prepared`, wait for `start` (or for it to be
/// dropped: the daemon did not get the ring), register, report, serve until the connection ends.
pub fn run(
    qid: u16,
    depth: usize,
    prepared: mpsc::Sender<(u16, io::Result<()>)>,
    start: mpsc::Receiver<Start>,
) {
    // Before the ring is made, so that its memory, and the buffers, are allocated on this CPU's node.
    if !pin_to_cpu(qid) {
        // A possible CPU that is offline, or outside this daemon's cpuset: its queue still has to exist.
        tracing::debug!(cpu = qid, "ring thread not pinned to its CPU");
    }
    let ring = match build_ring(depth) {
        Ok(ring) => ring,
        Err(error) => {
            let _ = prepared.send((qid, Err(error)));
            return;
        }
    };
    let _ = prepared.send((qid, Ok(())));
    drop(prepared);
    let Ok(Start {
        fuse,
        fs,
        payload_len,
        report,
    }) = start.recv()
    else {
        return;
    };
    let mut queue = Queue::new(ring, qid, fs, fuse.clone());
    let registered = queue
        .allocate(depth, payload_len, &fuse)
        .and_then(|()| queue.register_all());
    drop(fuse);
    let (registered, error) = match registered {
        Ok(()) => (queue.live, queue.registration_error.take()),
        Err(error) => (queue.live, Some(error)),
    };
    let _ = report.send(Report {
        qid,
        registered,
        error,
    });
    drop(report);
    queue.serve();
}

fn pin_to_cpu(cpu: u16) -> bool {
    let mut set = nix::sched::CpuSet::new();
    set.set(usize::from(cpu))
        .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set))
        .is_ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The kernel holds a REGISTER or COMMIT_AND_FETCH for the entry.
    Kernel,
    /// Failed; a timer runs before it is registered again.
    Waiting,
    /// Ended with the connection (or never registered): the kernel will not use it again.
    Done,
}

struct RingEntry {
    buffer: SharedBuffer,
    /// Header and payload, as REGISTER hands them over.
    iovecs: [libc::iovec; 2],
    state: State,
    failures: u32,
    retry_delay: Duration,
    /// Read by the kernel when the timer is submitted.
    retry_at: types::Timespec,
}

struct Queue {
    ring: Ring,
    qid: u16,
    fs: Arc<Fs>,
    /// `/dev/fuse`, for OPEN to register its backing file (the fixed file table holds the ring's own
    /// reference).
    fuse: Arc<OwnedFd>,
    /// Never resized once registered: the kernel holds addresses inside it (iovecs, timers) and inside
    /// each entry's buffer.
    entries: Vec<RingEntry>,
    /// Entries not `Done`; the thread ends at 0.
    live: usize,
    /// The first failure while registering.
    registration_error: Option<io::Error>,
    completions: Vec<(u64, i32)>,
    enter_failures: u32,
    /// This queue's share of [`IN_HAND`].
    in_hand: usize,
}

impl Queue {
    fn new(ring: Ring, qid: u16, fs: Arc<Fs>, fuse: Arc<OwnedFd>) -> Queue {
        let completions = Vec::with_capacity(ring.params().cq_entries() as usize);
        Queue {
            ring,
            qid,
            fs,
            fuse,
            entries: Vec::new(),
            live: 0,
            registration_error: None,
            completions,
            enter_failures: 0,
            in_hand: 0,
        }
    }

    /// Registers `/dev/fuse` with the ring and allocates every entry's buffers.
    fn allocate(&mut self, depth: usize, payload_len: usize, fuse: &OwnedFd) -> io::Result<()> {
        self.ring.submitter().register_files(&[fuse.as_raw_fd()])?;
        self.entries.reserve_exact(depth);
        for _ in 0..depth {
            let buffer = SharedBuffer::zeroed(HEADER_AREA + payload_len)?;
            let base = buffer.as_mut_ptr();
            let iovecs = [
                libc::iovec {
                    iov_base: base.cast(),
                    iov_len: HEADER_AREA,
                },
                libc::iovec {
                    iov_base: base.wrapping_add(HEADER_AREA).cast(),
                    iov_len: payload_len,
                },
            ];
            self.entries.push(RingEntry {
                buffer,
                iovecs,
                state: State::Done,
                failures: 0,
                retry_delay: Duration::ZERO,
                retry_at: types::Timespec::new(),
            });
        }
        Ok(())
    }

    /// Registers every entry. The kernel checks a REGISTER while it is submitted and completes a refused
    /// one at once (a registered entry completes only with a request), so the refusals are known when the
    /// submission returns; refused entries are not tried again.
    fn register_all(&mut self) -> io::Result<()> {
        for index in 0..self.entries.len() {
            self.live += 1;
            self.push_register(index);
        }
        let mut attempts = 0;
        while !self.ring.submission().is_empty() {
            match self.ring.submit() {
                Ok(_) => {}
                Err(error) if attempts < 100 && is_transient(&error) => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(error) => return Err(error),
            }
        }
        self.drain(true);
        Ok(())
    }

    /// Answers requests until every entry has ended with the connection.
    fn serve(&mut self) {
        while self.live > 0 {
            match self.ring.submit_and_wait(1) {
                Ok(_) => self.enter_failures = 0,
                Err(error) => self.enter_failed(&error),
            }
            self.drain(false);
            // The answers just made reach the kernel now rather than at the next wait.
            if self.in_hand > 0 && self.ring.submit().is_ok() {
                IN_HAND.fetch_sub(self.in_hand, Ordering::SeqCst);
                self.in_hand = 0;
            }
        }
        tracing::debug!(qid = self.qid, "ring queue ended with the connection");
    }

    /// `io_uring_enter` failed. Never fatal: leaving would strand this CPU's requests.
    fn enter_failed(&mut self, error: &io::Error) {
        if error.raw_os_error() == Some(libc::EINTR) {
            return;
        }
        self.enter_failures += 1;
        if is_transient(error) {
            std::thread::sleep(Duration::from_millis(1));
            return;
        }
        if self.enter_failures == 1 {
            tracing::error!(qid = self.qid, "io_uring_enter failed: {error}; retrying");
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    fn drain(&mut self, registering: bool) {
        self.completions.clear();
        self.completions.extend(
            self.ring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result())),
        );
        for index in 0..self.completions.len() {
            let (user_data, result) = self.completions[index];
            self.complete(user_data, result, registering);
        }
    }

    fn complete(&mut self, user_data: u64, result: i32, registering: bool) {
        let Ok(index) = usize::try_from(user_data & !TIMER) else {
            return;
        };
        let Some(entry) = self.entries.get_mut(index) else {
            tracing::warn!(qid = self.qid, user_data, "completion for no ring entry");
            return;
        };
        if user_data & TIMER != 0 {
            if entry.state == State::Waiting {
                self.push_register(index);
            }
            return;
        }
        if entry.state != State::Kernel {
            tracing::warn!(qid = self.qid, index, "completion for an idle ring entry");
            return;
        }
        let errno = result.checked_neg().unwrap_or(libc::EIO);
        match result {
            0 => {
                IN_HAND.fetch_add(1, Ordering::SeqCst);
                self.in_hand += 1;
                self.answer(index)
            }
            _ if is_connection_end(errno) => {
                tracing::debug!(qid = self.qid, index, result, "ring entry ended");
                self.retire(index);
            }
            _ if registering => {
                self.registration_error
                    .get_or_insert_with(|| io::Error::from_raw_os_error(errno));
                self.retire(index);
            }
            // Registering again cannot help: it is refused the same way, also after the connection
            // has ended, when this thread must end.
            _ if errno == libc::EOPNOTSUPP => {
                tracing::error!(
                    qid = self.qid,
                    "the kernel refuses FUSE over io_uring for this mount now \
                     (/sys/module/fuse/parameters/enable_uring is N and a failed registration cleared \
                     the mount's io_uring); requests made on this CPU wait until it is unmounted"
                );
                self.retire(index);
            }
            _ => self.retry_later(index, errno),
        }
    }

    fn retire(&mut self, index: usize) {
        if let Some(entry) = self.entries.get_mut(index) {
            if entry.state != State::Done {
                entry.state = State::Done;
                self.live -= 1;
            }
        }
    }

    /// The entry holds a request: answer it and hand the reply back.
    fn answer(&mut self, index: usize) {
        let Some(entry) = self.entries.get_mut(index) else {
            return;
        };
        entry.failures = 0;
        // SAFETY: the entry's command has completed with a request and nothing is submitted for it until
        // the commit below, so the kernel neither reads nor writes its buffer meanwhile.
        let bytes = unsafe { entry.buffer.bytes_mut() };
        let commit_id = match bytes.split_at_mut_checked(HEADER_AREA) {
            Some((header, payload)) => {
                dispatch::answer(&self.fs, self.fuse.as_fd(), header, payload)
            }
            None => 0,
        };
        let sqe = sqe::commit_and_fetch(FUSE_FILE, self.qid, commit_id, index as u64);
        self.push(&sqe);
    }

    fn push_register(&mut self, index: usize) {
        let Some(entry) = self.entries.get_mut(index) else {
            return;
        };
        entry.state = State::Kernel;
        let sqe = sqe::register(FUSE_FILE, self.qid, entry.iovecs.as_ptr(), index as u64);
        self.push(&sqe);
    }

    /// An entry failed for a reason other than the connection ending: register it again after a pause
    /// that grows while it keeps failing.
    fn retry_later(&mut self, index: usize, errno: i32) {
        let qid = self.qid;
        let Some(entry) = self.entries.get_mut(index) else {
            return;
        };
        entry.failures += 1;
        entry.retry_delay = match entry.failures {
            1 => FIRST_RETRY_DELAY,
            _ => (entry.retry_delay * 2).min(MAX_RETRY_DELAY),
        };
        let error = io::Error::from_raw_os_error(errno);
        if entry.failures == 1 {
            tracing::error!(
                qid,
                index,
                "a ring entry failed ({error}); registering it again"
            );
        } else {
            tracing::debug!(
                qid,
                index,
                failures = entry.failures,
                "a ring entry failed again ({error})"
            );
        }
        entry.state = State::Waiting;
        entry.retry_at = types::Timespec::from(entry.retry_delay);
        let timer = opcode::Timeout::new(&entry.retry_at)
            .build()
            .user_data(index as u64 | TIMER);
        self.push(&squeue::Entry128::from(timer));
    }

    fn push(&mut self, sqe: &squeue::Entry128) {
        loop {
            // SAFETY: every address the SQE carries stays valid and in place until its completion: an
            // entry's iovecs and timer in `entries`, which is not resized after registration, and its
            // buffer, which is freed only when every entry is `Done` (see `Drop`).
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return;
            }
            // Full: one SQE per entry cannot fill a ring sized for them all, but submitting makes room.
            if let Err(error) = self.ring.submit() {
                self.enter_failed(&error);
            }
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if self.live > 0 {
            // Only a panic in this loop gets here. The kernel may still write into these buffers, and
            // once this thread is gone it would also route this CPU's requests to entries nobody answers:
            // they would wait forever. Ending the process ends the connection instead (a restarted daemon
            // repairs the mounts).
            tracing::error!(
                qid = self.qid,
                "a ring thread is ending with live entries; aborting"
            );
            std::process::abort();
        }
        for entry in self.entries.drain(..) {
            // SAFETY: every entry is `Done`: never registered, or its command ended for good (the
            // connection ended, or the kernel refused it), so the kernel holds none of these buffers.
            unsafe { entry.buffer.free() };
        }
    }
}

/// Completion results that mean the connection is gone (unmount, abort, daemon exit): the entry is over.
fn is_connection_end(errno: i32) -> bool {
    matches!(
        errno,
        libc::ENOTCONN | libc::ENODEV | libc::ECONNABORTED | libc::ECANCELED
    )
}

fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_end_results_retire_entries() {
        for errno in [
            libc::ENOTCONN,
            libc::ENODEV,
            libc::ECONNABORTED,
            libc::ECANCELED,
        ] {
            assert!(is_connection_end(errno), "{errno}");
        }
        for errno in [
            libc::EINVAL,
            libc::ENOENT,
            libc::EIO,
            libc::EAGAIN,
            libc::EOPNOTSUPP,
        ] {
            assert!(!is_connection_end(errno), "{errno}");
        }
    }

    #[test]
    fn timer_bit_is_outside_entry_indexes() {
        assert_eq!((5u64 | TIMER) & !TIMER, 5);
        assert!(usize::try_from(u32::MAX as u64).is_ok());
    }
}
