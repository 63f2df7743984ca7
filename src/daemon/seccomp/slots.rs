//! A notify descriptor's slot table: what each daemon serving the descriptor has received and not yet
//! answered, in shared memory (a memfd) that travels with the descriptor through the keeper.
//!
//! A notification received (`SECCOMP_IOCTL_NOTIF_RECV`) by a daemon that then dies (`kill -9`) is
//! neither answered nor queued again by the kernel: its caller would wait for good. So each serving
//! thread owns one slot (claimed with its daemon's pid) and writes the notification into it right after
//! receiving it, clearing it once answered. A successor adopting the descriptor looks at the slots of
//! daemons no longer alive and answers what they left pending (if the kernel says the caller still
//! waits, `SECCOMP_IOCTL_NOTIF_ID_VALID`).
//!
//! A slot is [`WORDS`] `u64`s: owner pid (0: free), state (1: pending), notification id, caller tid,
//! `nr | arch << 32`, the call's first argument, the owner's pid namespace (its inode). A slot of a
//! daemon in another pid namespace is left alone: its pid says nothing here (a daemon killed there
//! leaves its received call unanswered, and its slot taken). The fields are written before the state is set
//! (release) and read after it is seen set (acquire). The window between the kernel handing a
//! notification over and the slot being written (a few instructions) is not covered.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// The table's size: one page.
pub const TABLE_BYTES: usize = 4096;
const WORDS: usize = 8;
/// Slots in a table: daemons serving one descriptor at once (one per generation alive), with room.
pub const SLOTS: usize = TABLE_BYTES / (WORDS * 8);

const OWNER: usize = 0;
const STATE: usize = 1;
const ID: usize = 2;
const TID: usize = 3;
const CALL: usize = 4;
const ARG0: usize = 5;
const OWNER_NS: usize = 6;

const PENDING: u64 = 1;

/// A notification a daemon received and had not answered when it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub id: u64,
    pub tid: u32,
    pub nr: i32,
    pub arch: u32,
    pub arg0: u64,
}

/// A mapped slot table.
pub struct SlotTable {
    fd: OwnedFd,
    words: NonNull<AtomicU64>,
}

// SAFETY: the mapping is only accessed through atomics, from any thread; it lives as long as the
// table (unmapped in Drop), and `fd` is a plain descriptor.
unsafe impl Send for SlotTable {}
// SAFETY: as above: every access is an atomic operation on the shared mapping.
unsafe impl Sync for SlotTable {}

impl SlotTable {
    /// A new, empty table (a memfd of [`TABLE_BYTES`]).
    pub fn create() -> io::Result<SlotTable> {
        let fd = rustix::fs::memfd_create("cgview-seccomp-slots", rustix::fs::MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&fd, TABLE_BYTES as u64)?;
        SlotTable::map(fd)
    }

    /// The table in `fd`, as another daemon made it (at least [`TABLE_BYTES`] long).
    pub fn open(fd: OwnedFd) -> io::Result<SlotTable> {
        let size = rustix::fs::fstat(&fd)?.st_size;
        if usize::try_from(size).map_or(true, |size| size < TABLE_BYTES) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a slot table of {size} bytes"),
            ));
        }
        SlotTable::map(fd)
    }

    fn map(fd: OwnedFd) -> io::Result<SlotTable> {
        // SAFETY: a fresh shared mapping of TABLE_BYTES of `fd`, which is at least that long; no
        // address is imposed, so nothing existing is replaced.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                TABLE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let words = NonNull::new(address.cast::<AtomicU64>())
            .ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(SlotTable { fd, words })
    }

    /// The descriptor, to hand to the keeper.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn word(&self, slot: usize, field: usize) -> &AtomicU64 {
        assert!(slot < SLOTS && field < WORDS);
        // SAFETY: the mapping is TABLE_BYTES long, page-aligned (so 8-byte aligned), and alive while
        // `self` is; `slot * WORDS + field` < TABLE_BYTES / 8. Every access to it, in this process or
        // another, is atomic (AtomicU64 has u64's size, and its alignment on the targets built).
        unsafe { &*self.words.as_ptr().add(slot * WORDS + field) }
    }

    /// Claims a free slot for this daemon's thread serving the descriptor.
    pub fn claim(&self) -> Option<Slot<'_>> {
        let owner = u64::from(std::process::id());
        (0..SLOTS).find_map(|index| {
            self.word(index, OWNER)
                .compare_exchange(0, owner, Ordering::AcqRel, Ordering::Acquire)
                .ok()?;
            self.word(index, STATE).store(0, Ordering::Release);
            self.word(index, OWNER_NS)
                .store(own_pid_namespace(), Ordering::Release);
            Some(Slot { table: self, index })
        })
    }

    /// Frees the slots of daemons no longer alive and returns what they left pending.
    pub fn reclaim_dead(&self) -> Vec<Pending> {
        let mut pending = Vec::new();
        for index in 0..SLOTS {
            let owner = self.word(index, OWNER).load(Ordering::Acquire);
            if owner == 0 || process_alive(owner) {
                continue;
            }
            let namespace = self.word(index, OWNER_NS).load(Ordering::Acquire);
            if namespace != 0 && namespace != own_pid_namespace() {
                continue;
            }
            if self.word(index, STATE).load(Ordering::Acquire) == PENDING {
                let call = self.word(index, CALL).load(Ordering::Relaxed);
                pending.push(Pending {
                    id: self.word(index, ID).load(Ordering::Relaxed),
                    tid: self.word(index, TID).load(Ordering::Relaxed) as u32,
                    nr: call as u32 as i32,
                    arch: (call >> 32) as u32,
                    arg0: self.word(index, ARG0).load(Ordering::Relaxed),
                });
            }
            self.word(index, STATE).store(0, Ordering::Release);
            // Freed only if still the dead daemon's (another successor may have reclaimed it).
            let _ = self.word(index, OWNER).compare_exchange(
                owner,
                0,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        pending
    }
}

impl Drop for SlotTable {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, of TABLE_BYTES; no reference into it outlives `self`
        // (slots borrow the table).
        unsafe {
            libc::munmap(self.words.as_ptr().cast(), TABLE_BYTES);
        }
    }
}

#[cfg(test)]
impl SlotTable {
    /// Leaves `pending` in a slot as a daemon killed while answering it would (its owner a pid beyond
    /// pid_max: no process).
    pub(super) fn leave_as_killed(&self, pending: &Pending) {
        let slot = self.claim().expect("a free slot");
        self.word(slot.index, OWNER)
            .store(0x7fff_fff0, Ordering::Release);
        slot.set(pending);
        std::mem::forget(slot);
    }
}

/// A serving thread's slot: set after each receive, cleared after each answer; freed when dropped.
pub struct Slot<'a> {
    table: &'a SlotTable,
    index: usize,
}

impl Slot<'_> {
    pub fn set(&self, pending: &Pending) {
        let word = |field| self.table.word(self.index, field);
        word(ID).store(pending.id, Ordering::Relaxed);
        word(TID).store(u64::from(pending.tid), Ordering::Relaxed);
        word(CALL).store(
            u64::from(pending.nr as u32) | (u64::from(pending.arch) << 32),
            Ordering::Relaxed,
        );
        word(ARG0).store(pending.arg0, Ordering::Relaxed);
        word(STATE).store(PENDING, Ordering::Release);
    }

    pub fn clear(&self) {
        self.table
            .word(self.index, STATE)
            .store(0, Ordering::Release);
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.clear();
        self.table
            .word(self.index, OWNER)
            .store(0, Ordering::Release);
    }
}

/// The inode of this process's pid namespace (0 if unknown).
fn own_pid_namespace() -> u64 {
    static NAMESPACE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NAMESPACE.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/ns/pid").map_or(0, |meta| meta.ino())
    })
}

/// Whether `pid` is a live process (a zombie is not: it serves nothing).
fn process_alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_daemons_pending_notification_is_reclaimed_once() {
        let table = SlotTable::create().unwrap();
        let pending = Pending {
            id: 0xfeed_0000_0001,
            tid: 4242,
            nr: libc::SYS_sysinfo as i32,
            arch: 0xC000_003E,
            arg0: 0x7ffd_0000,
        };
        {
            let slot = table.claim().unwrap();
            slot.set(&pending);
            // This process is alive: nothing is reclaimed from it.
            assert!(table.reclaim_dead().is_empty());
            slot.clear();
        }
        // A slot of a daemon gone (pid 0x7fff_fff0 is beyond pid_max) with one pending.
        let other = SlotTable::open(rustix::io::dup(table.fd()).unwrap()).unwrap();
        other.word(3, OWNER).store(0x7fff_fff0, Ordering::Release);
        let dead = Slot {
            table: &other,
            index: 3,
        };
        dead.set(&pending);
        // Left as a killed daemon leaves it: not freed.
        std::mem::forget(dead);
        assert_eq!(table.reclaim_dead(), vec![pending]);
        assert!(table.reclaim_dead().is_empty());
        assert_eq!(table.word(3, OWNER).load(Ordering::Acquire), 0);
        // One of another pid namespace's daemons: left alone.
        table.word(5, OWNER).store(0x7fff_fff0, Ordering::Release);
        table.word(5, OWNER_NS).store(1, Ordering::Release);
        table.word(5, STATE).store(PENDING, Ordering::Release);
        assert!(table.reclaim_dead().is_empty());
        table.word(5, OWNER).store(0, Ordering::Release);
        // Every slot can be claimed, and no more.
        let all: Vec<_> = (0..SLOTS).map(|_| table.claim().unwrap()).collect();
        assert!(table.claim().is_none());
        drop(all);
        assert!(table.claim().is_some());
    }
}
