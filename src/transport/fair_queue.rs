//! Requests taken in turns between containers.
//!
//! The kernel hands FUSE requests over in the order they were made, so a container with thousands of
//! threads reading in a loop would put thousands of requests ahead of every other container's. The
//! transport's reader threads therefore only take requests off `/dev/fuse` and queue them here, by the
//! container they come from; a pool of workers serves the queues in turns, one request per container per
//! turn. A container's load then costs other containers at most one request's wait per turn, whatever
//! its depth.

use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Work queued per key, taken one per key in turn.
#[derive(Debug)]
pub struct FairQueue<J> {
    state: Mutex<State<J>>,
    ready: Condvar,
}

#[derive(Debug)]
struct State<J> {
    queues: HashMap<u64, VecDeque<J>>,
    /// Keys with queued work, in the order they are served.
    turns: VecDeque<u64>,
    len: usize,
    closed: bool,
}

impl<J> Default for FairQueue<J> {
    fn default() -> Self {
        FairQueue {
            state: Mutex::new(State {
                queues: HashMap::new(),
                turns: VecDeque::new(),
                len: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }
}

impl<J> FairQueue<J> {
    /// Queues `job` under `key`; gives it back once the queue is closed.
    pub fn push(&self, key: u64, job: J) -> Result<(), J> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(job);
        }
        let queue = state.queues.entry(key).or_default();
        queue.push_back(job);
        if queue.len() == 1 {
            state.turns.push_back(key);
        }
        state.len += 1;
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job in turn, waiting for one; `None` once the queue is closed and empty.
    pub fn pop(&self) -> Option<J> {
        let mut state = self.state.lock();
        loop {
            if let Some(job) = take_next(&mut state) {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            self.ready.wait(&mut state);
        }
    }

    /// The next job in turn, if any, without waiting.
    pub fn try_pop(&self) -> Option<J> {
        take_next(&mut self.state.lock())
    }

    /// Refuses new jobs and wakes every waiting worker; queued jobs are still handed out.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_all();
    }

    /// Jobs queued now.
    pub fn len(&self) -> usize {
        self.state.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn take_next<J>(state: &mut State<J>) -> Option<J> {
    let key = state.turns.pop_front()?;
    let queue = state.queues.get_mut(&key)?;
    let job = queue.pop_front()?;
    if queue.is_empty() {
        state.queues.remove(&key);
    } else {
        state.turns.push_back(key);
    }
    state.len -= 1;
    Some(job)
}

/// A job run by a [`WorkerPool`].
pub type Job = Box<dyn FnOnce() + Send>;

/// Threads serving a [`FairQueue`] of jobs until it is closed (when the pool is dropped), and the
/// slots in which the threads that take requests off the connection may serve one themselves.
pub struct WorkerPool {
    queue: Arc<FairQueue<Job>>,
    /// How many more request-taking threads may serve a request themselves: one fewer than there are
    /// workers, so that one always takes requests off the connection.
    inline_slots: AtomicUsize,
}

/// A request-taking thread's permission to serve the request it took itself; given back when dropped.
pub struct InlineSlot<'a>(&'a AtomicUsize);

impl Drop for InlineSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

impl WorkerPool {
    /// Starts `workers` threads (at least one).
    pub fn start(workers: usize) -> std::io::Result<WorkerPool> {
        let queue: Arc<FairQueue<Job>> = Arc::default();
        for index in 0..workers.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("cgview-worker-{index}"))
                .spawn(move || {
                    while let Some(job) = queue.pop() {
                        job();
                    }
                })?;
        }
        Ok(WorkerPool {
            queue,
            inline_slots: AtomicUsize::new(workers.max(1) - 1),
        })
    }

    /// While nothing waits in the queues, the thread that took a request serves it (a hand-over wakes a
    /// worker, which on a VM costs about as much as the request); a burst still reaches the queues,
    /// where containers take turns.
    pub fn inline_slot(&self) -> Option<InlineSlot<'_>> {
        if self.queued() > 0 {
            return None;
        }
        self.inline_slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .ok()
            .map(|_| InlineSlot(&self.inline_slots))
    }

    /// Runs `job` in `key`'s turn; on this thread if the pool is shutting down.
    pub fn submit(&self, key: u64, job: Job) {
        if let Err(job) = self.queue.push(key, job) {
            job();
        }
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("queued", &self.queued())
            .finish()
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.queue.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_take_turns_whatever_their_depth() {
        let queue = FairQueue::default();
        for job in 0..1000 {
            queue.push(7, ("busy", job)).unwrap();
        }
        queue.push(1, ("quiet", 0)).unwrap();
        queue.push(2, ("other", 0)).unwrap();
        assert_eq!(queue.len(), 1002);
        // The quiet key's job waits for one busy job, not a thousand.
        let first: Vec<_> = (0..4).map(|_| queue.try_pop().unwrap()).collect();
        assert_eq!(
            first,
            [("busy", 0), ("quiet", 0), ("other", 0), ("busy", 1)]
        );
        // Within a key, jobs keep their order.
        let rest: Vec<_> = std::iter::from_fn(|| queue.try_pop()).collect();
        assert_eq!(rest.len(), 998);
        assert!(rest.windows(2).all(|w| w[0].1 < w[1].1));
        assert!(queue.is_empty());
    }

    #[test]
    fn a_key_that_empties_rejoins_at_the_back() {
        let queue = FairQueue::default();
        queue.push(1, 10).unwrap();
        queue.push(2, 20).unwrap();
        assert_eq!(queue.try_pop(), Some(10));
        queue.push(1, 11).unwrap();
        queue.push(2, 21).unwrap();
        assert_eq!(
            std::iter::from_fn(|| queue.try_pop()).collect::<Vec<_>>(),
            [20, 11, 21]
        );
    }

    #[test]
    fn a_closed_queue_hands_out_what_it_holds_then_ends() {
        let queue = FairQueue::default();
        queue.push(1, 1).unwrap();
        queue.close();
        assert_eq!(queue.push(1, 2), Err(2));
        assert_eq!(queue.pop(), Some(1));
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn the_pool_runs_every_job_and_stops_when_dropped() {
        let pool = WorkerPool::start(2).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        for job in 0..100u64 {
            let done = done.clone();
            pool.submit(job % 3, Box::new(move || done.send(job).unwrap()));
        }
        let mut seen: Vec<u64> = (0..100).map(|_| finished.recv().unwrap()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        drop(pool);
    }

    #[test]
    fn one_request_taking_thread_always_stays_free() {
        let pool = WorkerPool::start(2).unwrap();
        let slot = pool.inline_slot();
        assert!(slot.is_some());
        assert!(
            pool.inline_slot().is_none(),
            "every taking thread served inline"
        );
        drop(slot);
        assert!(pool.inline_slot().is_some(), "the slot came back");
        assert!(WorkerPool::start(1).unwrap().inline_slot().is_none());
    }
}
