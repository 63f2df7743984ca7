//! The inode numbers of mirrored host entries: which numbers the kernel holds, for which host path, and
//! for how long (from the first LOOKUP that names an entry until the kernel FORGETs it).

use super::nodes::{Inode, BLOCK_DIR_INODE, CPU_DIR_INODE, FIRST_MIRROR_INODE, NODE_DIR_INODE};
use cgview_core::failure::Failure;
use siphasher::sip::SipHasher13;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

/// Which host directory a mirrored entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum MirrorRoot {
    Cpu,
    Block,
    Node,
}

impl MirrorRoot {
    /// The byte a key's hash starts with: fixed, so that every daemon version numbers alike.
    fn id(self) -> u8 {
        match self {
            MirrorRoot::Cpu => 1,
            MirrorRoot::Block => 2,
            MirrorRoot::Node => 3,
        }
    }

    pub fn of_static_dir(inode: Inode) -> Option<MirrorRoot> {
        match inode {
            CPU_DIR_INODE => Some(MirrorRoot::Cpu),
            BLOCK_DIR_INODE => Some(MirrorRoot::Block),
            NODE_DIR_INODE => Some(MirrorRoot::Node),
            _ => None,
        }
    }

    pub fn static_inode(self) -> Inode {
        match self {
            MirrorRoot::Cpu => CPU_DIR_INODE,
            MirrorRoot::Block => BLOCK_DIR_INODE,
            MirrorRoot::Node => NODE_DIR_INODE,
        }
    }
}

/// A mirrored entry: its root and its path relative to that root.
pub(crate) type MirrorKey = (MirrorRoot, PathBuf);

/// Mirrored entries are numbered in `FIRST_MIRROR_INODE..MIRROR_INODE_END`: 32 bits, as procfs and sysfs
/// number theirs, so that a 32-bit program's `stat` never overflows.
const MIRROR_INODE_END: Inode = 1 << 32;
/// How many numbers an entry tries before its lookup fails. The range holds four billion; with the keyed
/// hash, even a million entries make a second try rare.
const MIRROR_PROBES: u32 = 64;

/// The secret key of the mirror's numbering: random for the daemon that mounts a connection, and handed
/// to each daemon that resumes it, so that every entry keeps its number across daemons.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MirrorSeed(pub [u64; 2]);

impl MirrorSeed {
    pub fn random() -> MirrorSeed {
        // std's RandomState is seeded from the OS's randomness, per instance.
        MirrorSeed([
            RandomState::new().hash_one(0u8),
            RandomState::new().hash_one(1u8),
        ])
    }
}

impl std::fmt::Debug for MirrorSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A secret: never in a log.
        f.write_str("MirrorSeed(..)")
    }
}

/// The candidates an earlier daemon's entry is recognised by: beyond the first few, a collision chain so
/// long that a lookup would have failed anyway is practically impossible.
const RECOGNISED_PROBES: u32 = 4;

/// Where a key's `attempt`th candidate number lies.
type SlotFn = fn(&SipHasher13, &MirrorKey, u32) -> Inode;

/// A key's candidate numbers: a keyed hash (SipHash-1-3) of the root, the path's bytes and the attempt,
/// so that a number says nothing about which other entries exist or in what order anyone looked them up
/// (a global counter did: a container could tell which block devices other containers had looked at,
/// and when). The bytes hashed are spelled out, not `Hash` impls, so that the numbers do not change
/// with the Rust version a successor was built with.
fn keyed_slot(hasher: &SipHasher13, (root, relative): &MirrorKey, attempt: u32) -> Inode {
    let path = relative.as_os_str().as_encoded_bytes();
    let mut bytes = Vec::with_capacity(1 + path.len() + 4);
    bytes.push(root.id());
    bytes.extend_from_slice(path);
    bytes.extend_from_slice(&attempt.to_le_bytes());
    let span = MIRROR_INODE_END - FIRST_MIRROR_INODE;
    FIRST_MIRROR_INODE + hasher.hash(&bytes) % span
}

#[derive(Debug)]
struct MirrorEntry {
    key: MirrorKey,
    /// The kernel's lookup count (`nlookup`): replies that named the entry, less the counts it forgot.
    lookups: u64,
}

/// Mirrored host entries the kernel holds: an entry lives from the first LOOKUP that names it until the
/// kernel FORGETs every lookup, so the table follows the kernel's inode cache instead of growing with
/// every name ever seen (block devices come and go).
#[derive(Debug)]
pub(crate) struct Mirror {
    seed: MirrorSeed,
    hasher: SipHasher13,
    slot: SlotFn,
    by_key: HashMap<MirrorKey, Inode>,
    entries: HashMap<Inode, MirrorEntry>,
}

impl Default for Mirror {
    fn default() -> Mirror {
        Mirror::with_seed(MirrorSeed::random())
    }
}

impl Mirror {
    pub fn with_seed(seed: MirrorSeed) -> Mirror {
        Mirror::with_slots(seed, keyed_slot)
    }

    pub fn with_slots(seed: MirrorSeed, slot: SlotFn) -> Mirror {
        Mirror {
            seed,
            hasher: SipHasher13::new_with_keys(seed.0[0], seed.0[1]),
            slot,
            by_key: HashMap::new(),
            entries: HashMap::new(),
        }
    }

    /// The entry's number, counting one lookup: a LOOKUP reply is about to name it.
    pub fn acquire(&mut self, root: MirrorRoot, relative: &Path) -> Result<Inode, Failure> {
        let key = (root, relative.to_owned());
        if let Some(&inode) = self.by_key.get(&key) {
            if let Some(entry) = self.entries.get_mut(&inode) {
                entry.lookups += 1;
            }
            return Ok(inode);
        }
        let inode = self.free_slot(&key).ok_or_else(|| {
            tracing::error!(
                entries = self.entries.len(),
                "no free inode number for a mirrored entry"
            );
            Failure::TooManyOpen
        })?;
        self.by_key.insert(key.clone(), inode);
        self.entries.insert(inode, MirrorEntry { key, lookups: 1 });
        Ok(inode)
    }

    /// The number a listing shows for an entry: its own if the kernel holds it, otherwise the one a
    /// lookup would give it now. Listings do not count as lookups (READDIR takes no reference), so they
    /// add nothing to the table.
    pub fn number_of(&self, root: MirrorRoot, relative: &Path) -> Inode {
        let key = (root, relative.to_owned());
        match self.by_key.get(&key) {
            Some(&inode) => inode,
            None => self
                .free_slot(&key)
                .unwrap_or_else(|| (self.slot)(&self.hasher, &key, 0)),
        }
    }

    fn free_slot(&self, key: &MirrorKey) -> Option<Inode> {
        (0..MIRROR_PROBES)
            .map(|attempt| (self.slot)(&self.hasher, key, attempt))
            .find(|candidate| !self.entries.contains_key(candidate))
    }

    /// The kernel dropped `lookups` of its references; the entry goes when none is left. Returns the key
    /// of an entry that went.
    pub fn forget(&mut self, inode: Inode, lookups: u64) -> Option<MirrorKey> {
        let entry = self.entries.get_mut(&inode)?;
        entry.lookups = entry.lookups.saturating_sub(lookups);
        if entry.lookups > 0 {
            return None;
        }
        let entry = self.entries.remove(&inode)?;
        self.by_key.remove(&entry.key);
        Some(entry.key)
    }

    pub fn seed(&self) -> MirrorSeed {
        self.seed
    }

    /// Whether `key` may be numbered `inode` (one of its candidates): how an entry an earlier daemon
    /// numbered is recognised.
    pub fn is_candidate(&self, key: &MirrorKey, inode: Inode) -> bool {
        (0..RECOGNISED_PROBES).any(|attempt| (self.slot)(&self.hasher, key, attempt) == inode)
    }

    /// Whether `inode` lies in the mirror's range.
    pub fn in_range(inode: Inode) -> bool {
        (FIRST_MIRROR_INODE..MIRROR_INODE_END).contains(&inode)
    }

    /// Takes on entry `inode`, numbered `key` by an earlier daemon of the connection, which the kernel
    /// still holds (it counts as one lookup).
    pub fn adopt(&mut self, inode: Inode, key: MirrorKey) {
        if self.entries.contains_key(&inode) || self.by_key.contains_key(&key) {
            return;
        }
        self.by_key.insert(key.clone(), inode);
        self.entries.insert(inode, MirrorEntry { key, lookups: 1 });
    }

    pub fn key_of(&self, inode: Inode) -> Option<&MirrorKey> {
        self.entries.get(&inode).map(|entry| &entry.key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_numbers_paths_once_per_root_inside_the_mirror_range() {
        let mut mirror = Mirror::default();
        let a = mirror.acquire(MirrorRoot::Cpu, Path::new("cpu0")).unwrap();
        let b = mirror
            .acquire(MirrorRoot::Cpu, Path::new("cpu0/topology"))
            .unwrap();
        let c = mirror
            .acquire(MirrorRoot::Block, Path::new("cpu0"))
            .unwrap();
        assert_eq!(
            mirror.acquire(MirrorRoot::Cpu, Path::new("cpu0")).unwrap(),
            a
        );
        assert!(a != b && a != c && b != c);
        for inode in [a, b, c] {
            assert!(
                (FIRST_MIRROR_INODE..MIRROR_INODE_END).contains(&inode),
                "{inode}"
            );
        }
        assert_eq!(
            mirror.key_of(b),
            Some(&(MirrorRoot::Cpu, PathBuf::from("cpu0/topology")))
        );
        assert_eq!(mirror.key_of(5), None);
        assert_eq!(mirror.len(), 3);
    }

    #[test]
    fn mirror_numbers_do_not_follow_lookup_order_or_repeat_across_daemons() {
        // A global counter numbered entries 1000, 1001, ... in lookup order: a container could tell what
        // others had looked up. Keyed hashes depend on neither the order nor a guessable key.
        let names: Vec<PathBuf> = (0..50).map(|i| PathBuf::from(format!("loop{i}"))).collect();
        let mut forward = Mirror::default();
        let forward_numbers: Vec<Inode> = names
            .iter()
            .map(|n| forward.acquire(MirrorRoot::Block, n).unwrap())
            .collect();
        let mut sorted = forward_numbers.clone();
        sorted.sort_unstable();
        assert_ne!(forward_numbers, sorted, "numbered in lookup order");
        let sequential: Vec<Inode> = (FIRST_MIRROR_INODE..FIRST_MIRROR_INODE + 50).collect();
        assert_ne!(forward_numbers, sequential);
        // The same daemon numbers a path the same whatever the order.
        let mut same_key = Mirror::with_seed(forward.seed());
        for name in names.iter().rev() {
            same_key.acquire(MirrorRoot::Block, name).unwrap();
        }
        for (name, &inode) in names.iter().zip(&forward_numbers) {
            assert_eq!(same_key.number_of(MirrorRoot::Block, name), inode);
        }
        // Another daemon (another key) numbers them differently.
        let mut other = Mirror::default();
        let other_numbers: Vec<Inode> = names
            .iter()
            .map(|n| other.acquire(MirrorRoot::Block, n).unwrap())
            .collect();
        assert_ne!(forward_numbers, other_numbers);
    }

    /// Every key's first candidate is the first number of the range, its `n`th the `n`th: every second
    /// key collides.
    fn colliding_slot(_: &SipHasher13, _: &MirrorKey, attempt: u32) -> Inode {
        FIRST_MIRROR_INODE + Inode::from(attempt)
    }

    #[test]
    fn mirror_gives_a_colliding_entry_the_next_free_candidate() {
        let mut mirror = Mirror::with_slots(MirrorSeed::random(), colliding_slot);
        let a = mirror.acquire(MirrorRoot::Block, Path::new("vda")).unwrap();
        assert_eq!(mirror.number_of(MirrorRoot::Block, Path::new("vdb")), a + 1);
        let b = mirror.acquire(MirrorRoot::Block, Path::new("vdb")).unwrap();
        assert_eq!((a, b), (FIRST_MIRROR_INODE, FIRST_MIRROR_INODE + 1));
        assert_eq!(mirror.key_of(a).unwrap().1, Path::new("vda"));
        assert_eq!(mirror.key_of(b).unwrap().1, Path::new("vdb"));
        // A freed number goes to the next entry that wants it.
        mirror.forget(a, 1);
        let c = mirror.acquire(MirrorRoot::Block, Path::new("vdc")).unwrap();
        assert_eq!(c, a);
        assert_eq!(mirror.key_of(c).unwrap().1, Path::new("vdc"));
        assert_eq!(
            mirror.acquire(MirrorRoot::Block, Path::new("vdb")).unwrap(),
            b
        );
    }

    #[test]
    fn mirror_fails_a_lookup_when_every_candidate_is_taken() {
        let mut mirror = Mirror::with_slots(MirrorSeed::random(), |_, _, _| FIRST_MIRROR_INODE);
        mirror.acquire(MirrorRoot::Block, Path::new("vda")).unwrap();
        assert_eq!(
            mirror
                .acquire(MirrorRoot::Block, Path::new("vdb"))
                .map_err(Failure::errno),
            Err(libc::ENFILE)
        );
        assert_eq!(mirror.len(), 1);
    }

    #[test]
    fn mirror_keeps_an_entry_until_every_lookup_is_forgotten() {
        let mut mirror = Mirror::default();
        let path = Path::new("loop3");
        let inode = mirror.acquire(MirrorRoot::Block, path).unwrap();
        mirror.acquire(MirrorRoot::Block, path).unwrap();
        mirror.acquire(MirrorRoot::Block, path).unwrap();
        assert_eq!(mirror.forget(inode, 2), None);
        assert!(mirror.key_of(inode).is_some());
        assert_eq!(
            mirror.forget(inode, 1),
            Some((MirrorRoot::Block, path.to_owned()))
        );
        assert_eq!(mirror.key_of(inode), None);
        assert_eq!(mirror.len(), 0);
        // Forgetting what is not there (or more than was counted) changes nothing.
        assert_eq!(mirror.forget(inode, 1), None);
        let again = mirror.acquire(MirrorRoot::Block, path).unwrap();
        assert_eq!(again, inode, "a path keeps its number across a forget");
        assert_eq!(
            mirror.forget(again, u64::MAX),
            Some((MirrorRoot::Block, path.to_owned()))
        );
    }

    #[test]
    fn mirror_listing_numbers_add_no_entries() {
        let mut mirror = Mirror::default();
        let listed = mirror.number_of(MirrorRoot::Cpu, Path::new("cpu1"));
        assert_eq!(mirror.len(), 0);
        assert_eq!(
            mirror.acquire(MirrorRoot::Cpu, Path::new("cpu1")).unwrap(),
            listed
        );
    }

    #[test]
    fn a_successor_with_the_seed_numbers_every_entry_alike_and_recognises_them() {
        let seed = MirrorSeed([0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210]);
        let mut first = Mirror::with_seed(seed);
        let inode = first
            .acquire(MirrorRoot::Cpu, Path::new("cpu1/topology/core_id"))
            .unwrap();
        let key = (MirrorRoot::Cpu, PathBuf::from("cpu1/topology/core_id"));
        let mut successor = Mirror::with_seed(seed);
        assert!(successor.is_candidate(&key, inode));
        assert!(!successor.is_candidate(&(MirrorRoot::Block, key.1.clone()), inode));
        successor.adopt(inode, key.clone());
        assert_eq!(successor.key_of(inode), Some(&key));
        assert_eq!(successor.acquire(key.0, &key.1).unwrap(), inode);
        // The numbering is spelled out: this seed gives this number in every build.
        assert_eq!(
            keyed_slot(
                &SipHasher13::new_with_keys(seed.0[0], seed.0[1]),
                &(MirrorRoot::Block, PathBuf::from("vda")),
                0
            ),
            FIRST_MIRROR_INODE
                + SipHasher13::new_with_keys(seed.0[0], seed.0[1]).hash(b"\x02vda\0\0\0\0")
                    % (MIRROR_INODE_END - FIRST_MIRROR_INODE)
        );
    }
}
