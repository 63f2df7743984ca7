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
//! `nr | arch << 32`, the call's first argument, the owner's pid namespace (its inode), and whether the
//! id and tid are set (the last call received, answered or not). A slot of a daemon in another pid
//! namespace is left alone: its pid says nothing here (a daemon killed there leaves its received call
//! unanswered, and its slot taken). The fields are written before the state is set (release) and read
//! after it is seen set (acquire). A daemon killed between the kernel handing a notification over and
//! its slot being written (a few instructions) leaves no trace of that call here but the last one it
//! recorded: the kernel numbers a descriptor's notifications in order, so the successor looks for it
//! just after that one ([`super::orphans`]).

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
const RECORDED: usize = 7;

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

/// The last call a slot recorded, answered: a call its daemon (or a later one, killed before recording
/// anything) received unrecorded came after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastAnswered {
    pub id: u64,
    pub tid: u32,
}

/// What [`SlotTable::reclaim_dead`] found in the slots of daemons no longer alive.
#[derive(Default)]
pub struct Reclaimed<'a> {
    /// Calls received, recorded and not answered, by daemons no longer alive: each slot now this
    /// daemon's until the call is answered (dropped), so that were it killed first, its successor
    /// would find the call still pending.
    pub pending: Vec<Inherited<'a>>,
    /// The last call recorded in each slot no live daemon owns (freed, or its daemon's dead) with
    /// nothing pending. Kept in the slot until a later call is recorded there, so that a daemon killed
    /// before recording anything does not erase the trail.
    pub last_answered: Vec<LastAnswered>,
}

/// A dead daemon's pending call, its slot taken over until dropped (once answered).
pub struct Inherited<'a> {
    _slot: Slot<'a>,
    pub call: Pending,
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

    /// Whether a daemon other than this one, alive or in another pid namespace, owns a slot (it may be
    /// between receiving a call and recording it).
    pub fn others_own_slots(&self) -> bool {
        let own = u64::from(std::process::id());
        (0..SLOTS).any(|index| {
            let owner = self.word(index, OWNER).load(Ordering::Acquire);
            let namespace = self.word(index, OWNER_NS).load(Ordering::Acquire);
            owner != 0
                && !(owner == own && namespace == own_pid_namespace())
                && (process_alive(owner) || (namespace != 0 && namespace != own_pid_namespace()))
        })
    }

    /// Frees the slots of daemons no longer alive, but takes over those with a call pending (freed when
    /// answered), and returns those calls with the last call answered of every slot no live daemon
    /// owns.
    pub fn reclaim_dead(&self) -> Reclaimed<'_> {
        let mut pending = Vec::new();
        let mut last_answered = Vec::new();
        for index in 0..SLOTS {
            let owner = self.word(index, OWNER).load(Ordering::Acquire);
            if owner != 0 && process_alive(owner) {
                continue;
            }
            let namespace = self.word(index, OWNER_NS).load(Ordering::Acquire);
            if owner != 0 && namespace != 0 && namespace != own_pid_namespace() {
                continue;
            }
            if owner != 0 && self.word(index, STATE).load(Ordering::Acquire) == PENDING {
                let own = u64::from(std::process::id());
                // Unless another successor took it first.
                if self
                    .word(index, OWNER)
                    .compare_exchange(owner, own, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.word(index, OWNER_NS)
                        .store(own_pid_namespace(), Ordering::Release);
                    let call = self.word(index, CALL).load(Ordering::Relaxed);
                    pending.push(Inherited {
                        _slot: Slot { table: self, index },
                        call: Pending {
                            id: self.word(index, ID).load(Ordering::Relaxed),
                            tid: self.word(index, TID).load(Ordering::Relaxed) as u32,
                            nr: call as u32 as i32,
                            arch: (call >> 32) as u32,
                            arg0: self.word(index, ARG0).load(Ordering::Relaxed),
                        },
                    });
                }
                continue;
            } else if self.word(index, RECORDED).load(Ordering::Acquire) == 1 {
                last_answered.push(LastAnswered {
                    id: self.word(index, ID).load(Ordering::Relaxed),
                    tid: self.word(index, TID).load(Ordering::Relaxed) as u32,
                });
            }
            if owner == 0 {
                continue;
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
        Reclaimed {
            pending,
            last_answered,
        }
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

#[cfg(test)]
impl SlotTable {
    /// Leaves `answered` as the last call of a daemon killed after answering it (and, perhaps, after
    /// receiving the next one without recording it).
    pub(super) fn leave_answered_as_killed(&self, answered: &Pending) {
        let slot = self.claim().expect("a free slot");
        self.word(slot.index, OWNER)
            .store(0x7fff_fff0, Ordering::Release);
        slot.set(answered);
        slot.clear();
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
        word(RECORDED).store(1, Ordering::Relaxed);
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

    fn call(id: u64) -> Pending {
        Pending {
            id,
            tid: 4242,
            nr: libc::SYS_sysinfo as i32,
            arch: 0xC000_003E,
            arg0: 0x7ffd_0000,
        }
    }

    fn last(id: u64) -> LastAnswered {
        LastAnswered { id, tid: 4242 }
    }

    /// The calls pending and the trails of a reclaim (the pending slots freed at once, as answered).
    fn reclaim(table: &SlotTable) -> (Vec<Pending>, Vec<LastAnswered>) {
        let reclaimed = table.reclaim_dead();
        (
            reclaimed.pending.iter().map(|p| p.call).collect(),
            reclaimed.last_answered,
        )
    }

    const NOTHING: (Vec<Pending>, Vec<LastAnswered>) = (Vec::new(), Vec::new());

    /// Marks slot `index` as a daemon's that is gone (pid 0x7fff_fff0 is beyond pid_max).
    fn owned_by_the_dead(table: &SlotTable, index: usize) -> Slot<'_> {
        table
            .word(index, OWNER)
            .store(0x7fff_fff0, Ordering::Release);
        Slot { table, index }
    }

    #[test]
    fn a_dead_daemons_pending_call_is_reclaimed_once() {
        let table = SlotTable::create().unwrap();
        {
            let slot = table.claim().unwrap();
            slot.set(&call(1));
            // This process is alive: nothing is reclaimed from it.
            assert_eq!(reclaim(&table), NOTHING);
            assert!(!table.others_own_slots());
            slot.clear();
        }
        let other = SlotTable::open(rustix::io::dup(table.fd()).unwrap()).unwrap();
        let dead = owned_by_the_dead(&other, 3);
        dead.set(&call(7));
        // Left as a killed daemon leaves it: not freed.
        std::mem::forget(dead);
        assert!(!table.others_own_slots(), "a dead daemon owns nothing");
        {
            let reclaimed = table.reclaim_dead();
            assert_eq!(reclaimed.pending.len(), 1);
            assert_eq!(reclaimed.pending[0].call, call(7));
            // The freed slot of the first (answered) call is a trail too.
            assert_eq!(reclaimed.last_answered, vec![last(1)]);
            // Taken over while it is answered: a successor of this daemon would find it (were this
            // one killed now), nobody else while it lives.
            assert_eq!(
                table.word(3, OWNER).load(Ordering::Acquire),
                u64::from(std::process::id())
            );
            assert_eq!(reclaim(&table).0, vec![]);
        }
        // Answered (dropped): freed, its id a trail.
        assert_eq!(reclaim(&table), (vec![], vec![last(1), last(7)]));
        assert_eq!(table.word(3, OWNER).load(Ordering::Acquire), 0);
        // A successor killed before answering it leaves it pending for the next.
        let dead = owned_by_the_dead(&other, 4);
        dead.set(&call(8));
        std::mem::forget(dead);
        let reclaimed = table.reclaim_dead();
        assert_eq!(reclaimed.pending[0].call, call(8));
        std::mem::forget(reclaimed);
        std::mem::forget(owned_by_the_dead(&other, 4));
        assert_eq!(reclaim(&table).0, vec![call(8)]);
    }

    #[test]
    fn another_namespaces_daemon_is_left_alone() {
        let table = SlotTable::create().unwrap();
        table.word(5, OWNER).store(0x7fff_fff0, Ordering::Release);
        table.word(5, OWNER_NS).store(1, Ordering::Release);
        let elsewhere = Slot {
            table: &table,
            index: 5,
        };
        elsewhere.set(&call(9));
        std::mem::forget(elsewhere);
        assert_eq!(reclaim(&table), NOTHING);
        assert!(
            table.others_own_slots(),
            "another namespace's daemon may be alive"
        );
    }

    /// A dead daemon that answered its last call leaves that call's id: one it may have received
    /// after, unrecorded, comes after it. The trail stays through a daemon that claims the slot and
    /// dies before recording anything, and moves on once a later call is recorded.
    #[test]
    fn the_last_answered_call_stays_until_a_later_one_is_recorded() {
        let table = SlotTable::create().unwrap();
        let answered = owned_by_the_dead(&table, 0);
        answered.set(&call(20));
        answered.clear();
        std::mem::forget(answered);
        assert_eq!(reclaim(&table).1, vec![last(20)]);
        let next = table.claim().unwrap();
        assert_eq!(next.index, 0);
        // Owned by a live daemon: not a trail to follow (it may be inside its own window).
        assert_eq!(reclaim(&table), NOTHING);
        let index = next.index;
        std::mem::forget(next);
        std::mem::forget(owned_by_the_dead(&table, index));
        assert_eq!(reclaim(&table).1, vec![last(20)]);
        let later = table.claim().unwrap();
        later.set(&call(21));
        later.clear();
        drop(later);
        assert_eq!(reclaim(&table).1, vec![last(21)]);
    }

    #[test]
    fn every_slot_can_be_claimed_and_no_more() {
        let table = SlotTable::create().unwrap();
        let all: Vec<_> = (0..SLOTS).map(|_| table.claim().unwrap()).collect();
        assert!(table.claim().is_none());
        drop(all);
        assert!(table.claim().is_some());
    }
}
