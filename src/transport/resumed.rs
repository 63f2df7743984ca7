//! Serving a connection an earlier daemon set up: cgview's own `/dev/fuse` read loop. The kernel sends
//! INIT once per connection, and `fuser` cannot start a session without it, so a daemon that resumes a
//! handed-over connection reads requests itself and answers them with the io_uring transport's
//! [`answer_request`], the same replies the `fuser` adapter gives.

use crate::fs::{Caller, Fs};
use crate::transport::fair_queue::WorkerPool;
use crate::transport::ring::abi::{self, opcode, InHeader, IN_HEADER_LEN, OUT_HEADER_LEN};
use crate::transport::ring::dispatch::answer_request;
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// The kernel refuses a `/dev/fuse` read offering less than this (`FUSE_MIN_READ_BUFFER`), or less than
/// room for the largest write agreed at INIT.
const MIN_READ_BUFFER: usize = 8192;
/// `sizeof(struct fuse_write_in)`, which the kernel counts with `max_write`.
const WRITE_IN_LEN: usize = 40;
/// The largest READ reply: the kernel asks at most `max_pages` (at most 256) pages per request.
const MAX_REPLY_PAYLOAD: usize = 256 * 4096;

/// Asks the kernel to queue again every request a daemon took off this connection and never answered
/// (one that was killed, or that a successor replaced). Fails with EINVAL before Linux 6.9.
pub fn resend_unanswered(device: BorrowedFd<'_>) -> io::Result<()> {
    rustix::io::write(device, &abi::notify_resend())?;
    Ok(())
}

/// Serves `device`, a connection whose INIT an earlier daemon answered, with `threads` threads reading
/// it, until the connection ends (unmounted and released, or aborted).
///
/// As with the `fuser` adapter, the requests that read the host or render are served in turns between
/// containers ([`crate::transport::fair_queue`]) once they queue up; one reading thread always stays
/// free to take requests off the device.
pub fn serve(fs: Arc<Fs>, device: OwnedFd, threads: usize, max_write: u32) -> io::Result<()> {
    let threads = threads.max(1);
    let session = Arc::new(Session {
        fs,
        device,
        workers: WorkerPool::start(threads)?,
    });
    let read_len = MIN_READ_BUFFER.max(IN_HEADER_LEN + WRITE_IN_LEN + max_write as usize);
    let workers = (0..threads)
        .map(|index| {
            let session = session.clone();
            std::thread::Builder::new()
                .name(format!("cgview-resumed-{index}"))
                .spawn(move || session.read_loop(read_len))
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut result = Ok(());
    for worker in workers {
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err(io::Error::other("a request thread panicked")),
        }
    }
    result
}

struct Session {
    fs: Arc<Fs>,
    device: OwnedFd,
    workers: WorkerPool,
}

impl Session {
    fn read_loop(self: &Arc<Session>, read_len: usize) -> io::Result<()> {
        let mut request = vec![0u8; read_len];
        let mut reply = vec![0u8; OUT_HEADER_LEN + MAX_REPLY_PAYLOAD];
        loop {
            let len = match rustix::io::read(&self.device, &mut request[..]) {
                Ok(len) => len,
                // The connection ended: unmounted with no user left, or aborted.
                Err(Errno::NODEV) => return Ok(()),
                // A request interrupted before it was taken; or a signal.
                Err(Errno::NOENT | Errno::INTR | Errno::AGAIN) => continue,
                Err(e) => return Err(e.into()),
            };
            self.take(&request[..len], &mut reply);
        }
    }

    /// Answers a request now, or queues it in its container's turn.
    fn take(self: &Arc<Session>, request: &[u8], reply: &mut [u8]) {
        let Some(header) = InHeader::decode(request) else {
            return;
        };
        let queued = matches!(
            header.opcode,
            opcode::LOOKUP
                | opcode::GETATTR
                | opcode::ACCESS
                | opcode::OPEN
                | opcode::OPENDIR
                | opcode::READ
        );
        if !queued {
            serve_request(&self.fs, self.device.as_fd(), request, reply);
            return;
        }
        if let Some(_slot) = self.workers.inline_slot() {
            serve_request(&self.fs, self.device.as_fd(), request, reply);
            return;
        }
        let caller = Caller {
            pid: header.pid,
            uid: header.uid,
            gid: header.gid,
        };
        let key = self.fs.fairness_key(&caller);
        let request = request.to_vec();
        let session = self.clone();
        self.workers.submit(
            key,
            Box::new(move || {
                let mut reply = vec![0u8; reply_capacity(&request)];
                serve_request(&session.fs, session.device.as_fd(), &request, &mut reply);
            }),
        );
    }
}

/// The reply buffer a queued request needs: a READ's requested size, a small one for the rest.
fn reply_capacity(request: &[u8]) -> usize {
    let args = request.get(IN_HEADER_LEN..).unwrap_or_default();
    let payload = match InHeader::decode(request).map(|header| header.opcode) {
        Some(opcode::READ | opcode::READDIR) => abi::ReadIn::decode(args)
            .map_or(0, |read| read.size as usize)
            .min(MAX_REPLY_PAYLOAD),
        _ => 0,
    };
    OUT_HEADER_LEN + payload.max(4096)
}

/// Answers one request read from the device, if it wants an answer.
fn serve_request(fs: &Fs, device: BorrowedFd<'_>, request: &[u8], reply: &mut [u8]) {
    let Some(header) = InHeader::decode(request) else {
        return;
    };
    let args = request.get(IN_HEADER_LEN..).unwrap_or_default();
    match header.opcode {
        opcode::FORGET => {
            if let Some(lookups) = abi::forget_nlookup(args) {
                fs.forget(header.nodeid, lookups);
            }
            return;
        }
        opcode::BATCH_FORGET => {
            for (node, lookups) in abi::batch_forget(args) {
                fs.forget(node, lookups);
            }
            return;
        }
        // The interrupted request is answered anyway: answers are quick, and the kernel drops one
        // that nobody waits for.
        opcode::INTERRUPT => return,
        _ => {}
    }
    let (out_header, payload) = reply.split_at_mut(OUT_HEADER_LEN);
    let payload_in = args.len().min(payload.len());
    payload[..payload_in].copy_from_slice(&args[..payload_in]);
    let (error, len) = answer_request(fs, device, &header, args, payload, payload_in);
    out_header.copy_from_slice(&abi::out_header(header.unique, error, len));
    let total = OUT_HEADER_LEN + len as usize;
    match rustix::io::write(device, &reply[..total]) {
        Ok(_) => {}
        // Nobody waits for this answer any more: the reader was interrupted, or the request was queued
        // again (a resend) and is answered once more. A handle it carried would never be released.
        Err(Errno::NOENT) if error == 0 => match header.opcode {
            opcode::OPEN => fs.release(handle_of(&reply[OUT_HEADER_LEN..])),
            opcode::OPENDIR => fs.releasedir(handle_of(&reply[OUT_HEADER_LEN..])),
            _ => {}
        },
        Err(e) => tracing::debug!(opcode = header.opcode, "cannot answer a request: {e}"),
    }
}

/// `fuse_open_out.fh`.
fn handle_of(open_out: &[u8]) -> u64 {
    open_out
        .get(..8)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}
