//! One seccomp notify descriptor served: receive, answer, repeat, until the container's tasks are gone.
//!
//! Every notification received is answered (an unanswered one would block its caller for good):
//! `sysinfo` of the native architecture with the container's figures written into the caller's buffer,
//! everything else with `SECCOMP_USER_NOTIF_FLAG_CONTINUE`. The write goes through
//! `process_vm_writev(2)`, which, unlike `/proc/<pid>/mem`, does not force its way into read-only
//! pages: a read-only, unmapped or NULL buffer gets `EFAULT`, as the kernel's own `copy_to_user` would.
//! `SECCOMP_IOCTL_NOTIF_ID_VALID` is asked before and after the write, so that a caller that died (and
//! whose pid may be reused) is never answered through another process's memory.

use super::slots::{Pending, Slot};
use super::SeccompCounters;
use crate::service::fallback::FallbackCause;
use crate::service::sysinfo::{SysinfoValues, SYSINFO_SIZE};
use nix::sys::uio::{process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;
use rustix::event::{poll, PollFd, PollFlags};
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often a serving thread looks at its stop flag while no notification comes.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// `AUDIT_ARCH_*` of the daemon's own architecture (linux/audit.h: `EM_*` | 64-bit | little-endian):
/// only its `sysinfo` is answered; a compat caller's (i386 on x86_64) is let through.
#[cfg(target_arch = "x86_64")]
pub(super) const NATIVE_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
pub(super) const NATIVE_ARCH: u32 = 0xC000_00B7;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(super) const NATIVE_ARCH: u32 = 0;

/// `struct seccomp_notif`'s fields as the kernel lays them out (linux/seccomp.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    pub id: u64,
    pub pid: u32,
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

impl Notification {
    /// Reads a `struct seccomp_notif` as received: id at 0, pid at 8, flags at 12, then
    /// `struct seccomp_data` (nr, arch, instruction_pointer, args[6]) at 16.
    pub fn decode(bytes: &[u8]) -> Option<Notification> {
        let u64_at = |at: usize| Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
        let mut args = [0u64; 6];
        for (i, arg) in args.iter_mut().enumerate() {
            *arg = u64_at(32 + 8 * i)?;
        }
        Some(Notification {
            id: u64_at(0)?,
            pid: u32_at(8)?,
            nr: u32_at(16)? as i32,
            arch: u32_at(20)?,
            args,
        })
    }

    fn is_native_sysinfo(&self) -> bool {
        self.arch == NATIVE_ARCH && i64::from(self.nr) == libc::SYS_sysinfo
    }
}

/// What a notification is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Return `val` (0 for `sysinfo`).
    Value(i64),
    /// Fail with this (positive) errno.
    Error(i32),
    /// Let the kernel run the call.
    Continue,
}

impl Response {
    /// `struct seccomp_notif_resp` (id, val, error, flags) in `size` bytes (the kernel's size).
    pub fn encode(self, id: u64, size: usize) -> Vec<u8> {
        let (val, error, flags) = match self {
            Response::Value(val) => (val, 0, 0),
            Response::Error(errno) => (0, -errno, 0),
            Response::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
        };
        let mut out = vec![0u8; size.max(24)];
        out[0..8].copy_from_slice(&id.to_ne_bytes());
        out[8..16].copy_from_slice(&val.to_ne_bytes());
        out[16..20].copy_from_slice(&error.to_ne_bytes());
        out[20..24].copy_from_slice(&flags.to_ne_bytes());
        out
    }
}

/// The kernel's sizes of `seccomp_notif` and `seccomp_notif_resp`.
fn notif_sizes() -> io::Result<(usize, usize)> {
    let mut sizes = libc::seccomp_notif_sizes {
        seccomp_notif: 0,
        seccomp_notif_resp: 0,
        seccomp_data: 0,
    };
    // SAFETY: SECCOMP_GET_NOTIF_SIZES writes one `struct seccomp_notif_sizes` to the pointer, which
    // points to one, alive and exclusively borrowed for the call.
    let done = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_NOTIF_SIZES,
            0,
            &mut sizes as *mut libc::seccomp_notif_sizes,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((
        usize::from(sizes.seccomp_notif).max(std::mem::size_of::<libc::seccomp_notif>()),
        usize::from(sizes.seccomp_notif_resp).max(std::mem::size_of::<libc::seccomp_notif_resp>()),
    ))
}

/// `SECCOMP_IOCTL_NOTIF_RECV` into `buffer` (zeroed first: the kernel refuses a dirty one).
fn receive(fd: &OwnedFd, buffer: &mut [u8]) -> io::Result<()> {
    buffer.fill(0);
    // SAFETY: the kernel writes at most its `sizeof(struct seccomp_notif)` bytes, and `buffer` is at
    // least that long (sized by SECCOMP_GET_NOTIF_SIZES), alive and exclusively borrowed for the call.
    let done = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            buffer.as_mut_ptr(),
        )
    };
    if done < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SECCOMP_IOCTL_NOTIF_SEND` of an encoded response.
fn send(fd: &OwnedFd, response: &[u8]) -> io::Result<()> {
    // SAFETY: the kernel reads `sizeof(struct seccomp_notif_resp)` bytes, and `response` is at least
    // that long (sized by SECCOMP_GET_NOTIF_SIZES) and alive for the call.
    let done = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            response.as_ptr(),
        )
    };
    if done < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: whether notification `id` was received and its caller still waits
/// for the answer (a notification not yet received is not valid).
pub(super) fn still_valid(fd: &OwnedFd, id: u64) -> bool {
    // SAFETY: the kernel reads one u64 from the pointer, which points to `id`, alive for the call.
    let done = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id as *const u64,
        )
    };
    done == 0
}

/// Why [`serve_descriptor`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The container's tasks are all gone (`POLLHUP`).
    Ended,
    /// `stop` was set: every notification received was answered, the rest wait in the kernel for
    /// whoever serves the descriptor next.
    Stopped,
}

/// Serves `fd` until the container's tasks are all gone (`POLLHUP`) or `stop` is set, answering
/// `sysinfo` with `answer(tid)` (`Err`: let through, the host's figures). Each notification is in
/// `slot` from its receipt to its answer (see [`super::slots`]). `between` runs between notifications
/// (at least every [`STOP_CHECK`]), when this thread holds none unanswered.
pub fn serve_descriptor(
    fd: &OwnedFd,
    slot: Option<&Slot<'_>>,
    stop: &AtomicBool,
    answer: &dyn Fn(u32) -> Result<SysinfoValues, FallbackCause>,
    counters: &SeccompCounters,
    between: &mut dyn FnMut(),
) -> io::Result<Served> {
    let (notif_size, resp_size) = notif_sizes()?;
    let mut buffer = vec![0u8; notif_size];
    let timeout = rustix::event::Timespec::try_from(STOP_CHECK).map_err(io::Error::other)?;
    loop {
        if stop.load(Ordering::Acquire) {
            return Ok(Served::Stopped);
        }
        between();
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(0) => continue,
            Ok(_) => {}
        }
        let events = fds[0].revents();
        if !events.contains(PollFlags::IN) {
            if events.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
                return Ok(Served::Ended);
            }
            continue;
        }
        if stop.load(Ordering::Acquire) {
            return Ok(Served::Stopped);
        }
        match receive(fd, &mut buffer) {
            Ok(()) => {}
            // The caller was interrupted or killed between the wake-up and the receive.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR)) => continue,
            Err(e) => return Err(e),
        }
        let Some(notification) = Notification::decode(&buffer) else {
            return Err(io::Error::other("short seccomp notification"));
        };
        if let Some(slot) = slot {
            slot.set(&Pending {
                id: notification.id,
                tid: notification.pid,
                nr: notification.nr,
                arch: notification.arch,
                arg0: notification.args[0],
            });
        }
        let sent = answer_one(fd, &notification, resp_size, answer, counters);
        if let Some(slot) = slot {
            slot.clear();
        }
        sent?;
    }
}

/// Whether a notification waits to be received (`POLLIN`).
pub(super) fn has_queued(fd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
        && fds[0].revents().contains(PollFlags::IN)
}

/// Lets notification `id` through to the kernel (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`: the caller gets
/// the host's figures); whether its caller still waited.
pub fn let_through(fd: &OwnedFd, id: u64) -> io::Result<bool> {
    let (_, resp_size) = notif_sizes()?;
    match send(fd, &Response::Continue.encode(id, resp_size)) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Answers a notification a daemon that died had received and not answered, if its caller still
/// waits; whether it was answered.
pub fn answer_pending(
    fd: &OwnedFd,
    pending: &Pending,
    answer: &dyn Fn(u32) -> Result<SysinfoValues, FallbackCause>,
    counters: &SeccompCounters,
) -> io::Result<bool> {
    if !still_valid(fd, pending.id) {
        return Ok(false);
    }
    let (_, resp_size) = notif_sizes()?;
    let notification = Notification {
        id: pending.id,
        pid: pending.tid,
        nr: pending.nr,
        arch: pending.arch,
        args: [pending.arg0, 0, 0, 0, 0, 0],
    };
    answer_one(fd, &notification, resp_size, answer, counters)?;
    Ok(true)
}

fn answer_one(
    fd: &OwnedFd,
    notification: &Notification,
    resp_size: usize,
    answer: &dyn Fn(u32) -> Result<SysinfoValues, FallbackCause>,
    counters: &SeccompCounters,
) -> io::Result<()> {
    let response = respond_to(fd, notification, answer, counters);
    match send(fd, &response.encode(notification.id, resp_size)) {
        Ok(()) => Ok(()),
        // The caller is gone (killed, or interrupted by a signal: it restarts the call).
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            counters.gone.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn respond_to(
    fd: &OwnedFd,
    notification: &Notification,
    answer: &dyn Fn(u32) -> Result<SysinfoValues, FallbackCause>,
    counters: &SeccompCounters,
) -> Response {
    if !notification.is_native_sysinfo() {
        counters.continued.fetch_add(1, Ordering::Relaxed);
        return Response::Continue;
    }
    let target = notification.args[0];
    if target == 0 {
        counters.faulted.fetch_add(1, Ordering::Relaxed);
        return Response::Error(libc::EFAULT);
    }
    // pid 0: the caller is in a pid namespace the daemon does not see.
    // A panic while rendering would end this thread and close the descriptor (every later call of
    // the container failing with ENOSYS): it is answered as a fallback instead.
    let values = match notification.pid {
        0 => Err(FallbackCause::CallerGone),
        tid => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer(tid)))
            .unwrap_or(Err(FallbackCause::Unreadable)),
    };
    let Ok(values) = values else {
        counters.host_fallbacks.fetch_add(1, Ordering::Relaxed);
        return Response::Continue;
    };
    if !still_valid(fd, notification.id) {
        counters.gone.fetch_add(1, Ordering::Relaxed);
        return Response::Error(libc::ESRCH);
    }
    let bytes = values.encode();
    let written = usize::try_from(target)
        .map_err(|_| nix::errno::Errno::EFAULT)
        .and_then(|base| {
            process_vm_writev(
                Pid::from_raw(notification.pid as i32),
                &[IoSlice::new(&bytes)],
                &[RemoteIoVec {
                    base,
                    len: SYSINFO_SIZE,
                }],
            )
        });
    // Checked again: had the caller died and its tid been reused between the first check and the
    // write, this says so (the write then went to a stranger: the window is the one every seccomp
    // supervisor has, as narrow as the kernel allows).
    if !still_valid(fd, notification.id) {
        counters.gone.fetch_add(1, Ordering::Relaxed);
        return Response::Error(libc::ESRCH);
    }
    match written {
        Ok(SYSINFO_SIZE) => {
            counters.answered.fetch_add(1, Ordering::Relaxed);
            Response::Value(0)
        }
        Ok(_) | Err(nix::errno::Errno::EFAULT) => {
            counters.faulted.fetch_add(1, Ordering::Relaxed);
            Response::Error(libc::EFAULT)
        }
        Err(e) => {
            // EPERM (a ptrace policy such as Yama's scope 3) or ESRCH: the kernel answers instead.
            tracing::debug!(
                "seccomp: cannot write sysinfo into tid {}: {e}",
                notification.pid
            );
            counters.host_fallbacks.fetch_add(1, Ordering::Relaxed);
            Response::Continue
        }
    }
}

/// Waits for and receives one notification, as a daemon's thread would (a test's "killed daemon").
#[cfg(test)]
pub(super) fn receive_one(fd: &OwnedFd) -> io::Result<Pending> {
    let (notif_size, _) = notif_sizes()?;
    let mut buffer = vec![0u8; notif_size];
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    poll(&mut fds, None)?;
    receive(fd, &mut buffer)?;
    let notification =
        Notification::decode(&buffer).ok_or_else(|| io::Error::other("short notification"))?;
    Ok(Pending {
        id: notification.id,
        tid: notification.pid,
        nr: notification.nr,
        arch: notification.arch,
        arg0: notification.args[0],
    })
}

/// Installs on the calling thread alone a filter sending its native `sysinfo` calls to a new
/// listener: that listener's descriptor (a test's own notify descriptor).
#[cfg(test)]
pub(super) fn trap_sysinfo_of_this_thread() -> std::os::fd::RawFd {
    let filter = [
        // arch != native: allow
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 4,
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 1,
            jf: 0,
            k: NATIVE_ARCH,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
        // nr == sysinfo: notify
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_sysinfo as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_USER_NOTIF,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers; it applies to this thread only.
    let no_new_privs = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(no_new_privs, 0);
    // SAFETY: SECCOMP_SET_MODE_FILTER reads the program, which points to `filter`, both
    // alive for the call; without TSYNC the filter is this thread's alone.
    let listener = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &program as *const libc::sock_fprog,
        )
    };
    assert!(listener >= 0, "seccomp: {}", io::Error::last_os_error());
    listener as std::os::fd::RawFd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_decodes_as_the_kernel_lays_it_out() {
        let mut bytes = vec![0u8; 80];
        bytes[0..8].copy_from_slice(&7u64.to_ne_bytes());
        bytes[8..12].copy_from_slice(&1234u32.to_ne_bytes());
        bytes[16..20].copy_from_slice(&(libc::SYS_sysinfo as i32).to_ne_bytes());
        bytes[20..24].copy_from_slice(&NATIVE_ARCH.to_ne_bytes());
        bytes[32..40].copy_from_slice(&0xdead_b000u64.to_ne_bytes());
        let notification = Notification::decode(&bytes).unwrap();
        assert_eq!(notification.id, 7);
        assert_eq!(notification.pid, 1234);
        assert_eq!(notification.args[0], 0xdead_b000);
        assert!(notification.is_native_sysinfo());
        assert!(Notification::decode(&bytes[..79]).is_none());
        assert_eq!(
            std::mem::size_of::<libc::seccomp_notif>(),
            80,
            "the layout decoded above"
        );
    }

    #[test]
    fn responses_encode_as_seccomp_notif_resp() {
        let resp = Response::Error(libc::EFAULT).encode(9, 24);
        assert_eq!(u64::from_ne_bytes(resp[0..8].try_into().unwrap()), 9);
        assert_eq!(
            i32::from_ne_bytes(resp[16..20].try_into().unwrap()),
            -libc::EFAULT
        );
        let resp = Response::Continue.encode(9, 24);
        assert_eq!(u32::from_ne_bytes(resp[20..24].try_into().unwrap()), 1);
        assert_eq!(std::mem::size_of::<libc::seccomp_notif_resp>(), 24);
    }

    /// A real notify descriptor: a thread of this test process traps its own `sysinfo` (a filter on
    /// that thread alone), the "killed daemon" receives the notification and leaves it in its slot;
    /// the successor finds it there and answers it, and the trapped call returns that answer. A
    /// notification answered before is not answered twice.
    #[test]
    fn a_call_a_killed_daemon_received_is_answered_by_its_successor() {
        use super::super::slots::SlotTable;
        use std::os::fd::FromRawFd;
        if NATIVE_ARCH == 0 {
            return;
        }
        let (sender, receiver) = std::sync::mpsc::channel::<i32>();
        let trapped = std::thread::spawn(move || {
            let listener = trap_sysinfo_of_this_thread();
            sender.send(listener).unwrap();
            // SAFETY: an all-zero `struct sysinfo` is valid; sysinfo writes one to the pointer.
            let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
            // SAFETY: `info` is alive and exclusively borrowed for the call.
            let result = unsafe { libc::sysinfo(&mut info) };
            (result, info.totalram, info.mem_unit)
        });
        let raw = receiver.recv().unwrap();
        // SAFETY: the listener descriptor the thread just made, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let (notif_size, _) = notif_sizes().unwrap();
        let mut buffer = vec![0u8; notif_size];
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        poll(&mut fds, None).unwrap();
        receive(&fd, &mut buffer).unwrap();
        let notification = Notification::decode(&buffer).unwrap();
        assert!(notification.is_native_sysinfo());
        let table = SlotTable::create().unwrap();
        let pending = Pending {
            id: notification.id,
            tid: notification.pid,
            nr: notification.nr,
            arch: notification.arch,
            arg0: notification.args[0],
        };
        table.leave_as_killed(&pending);

        let successor = SlotTable::open(rustix::io::dup(table.fd()).unwrap()).unwrap();
        let inherited = successor.reclaim_dead().pending;
        let left: Vec<Pending> = inherited.iter().map(|p| p.call).collect();
        assert_eq!(left, vec![pending]);
        let counters = SeccompCounters::default();
        let answer = |_tid: u32| {
            Ok(SysinfoValues {
                totalram: 256 << 20,
                freeram: 100 << 20,
                mem_unit: 1,
                ..SysinfoValues::default()
            })
        };
        assert!(answer_pending(&fd, &left[0], &answer, &counters).unwrap());
        drop(inherited);
        assert_eq!(trapped.join().unwrap(), (0, 256 << 20, 1));
        assert_eq!(counters.answered.load(Ordering::Relaxed), 1);
        // Answered: a second successor finds nothing, and the id is no longer valid.
        assert!(successor.reclaim_dead().pending.is_empty());
        assert!(!answer_pending(&fd, &left[0], &answer, &counters).unwrap());
    }
}
