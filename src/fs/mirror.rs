//! The inode numbers of mirrored host entries: which numbers the kernel holds, for which host path, and
//! for how long (from the first LOOKUP that names an entry until the kernel FORGETs it).

use super::nodes::{Inode, BLOCK_DIR_INODE, CPU_DIR_INODE, FIRST_MIRROR_INODE};
use cgview_core::failure::Failure;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

/// Which host directory a mirrored entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum MirrorRoot {
    Cpu,
    Block,
}

impl MirrorRoot {
    pub fn of_static_dir(inode: Inode) -> Option<MirrorRoot> {
        match inode {
            CPU_DIR_INODE => Some(MirrorRoot::Cpu),
            BLOCK_DIR_INODE => Some(MirrorRoot::Block),
            _ => None,
        }
    }

    pub fn static_inode(self) -> Inode {
        match self {
            MirrorRoot::Cpu => CPU_DIR_INODE,
            MirrorRoot::Block => BLOCK_DIR_INODE,
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

/// Where a key's `attempt`th candidate number lies.
type SlotFn = fn(&RandomState, &MirrorKey, u32) -> Inode;

/// A key's candidate numbers: a hash of the key keyed per daemon, so that a number says nothing about
/// which other entries exist or in what order anyone looked them up (a global counter did: a container
/// could tell which block devices other containers had looked at, and when).
fn keyed_slot(hasher: &RandomState, key: &MirrorKey, attempt: u32) -> Inode {
    let span = MIRROR_INODE_END - FIRST_MIRROR_INODE;
    FIRST_MIRROR_INODE + hasher.hash_one((key, attempt)) % span
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
    hasher: RandomState,
    slot: SlotFn,
    by_key: HashMap<MirrorKey, Inode>,
    entries: HashMap<Inode, MirrorEntry>,
}

impl Default for Mirror {
    fn default() -> Mirror {
        Mirror::with_slots(keyed_slot)
    }
}

impl Mirror {
    pub fn with_slots(slot: SlotFn) -> Mirror {
        Mirror {
            hasher: RandomState::new(),
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
        let mut same_key = Mirror::with_slots(keyed_slot);
        same_key.hasher = forward.hasher.clone();
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
    fn colliding_slot(_: &RandomState, _: &MirrorKey, attempt: u32) -> Inode {
        FIRST_MIRROR_INODE + Inode::from(attempt)
    }

    #[test]
    fn mirror_gives_a_colliding_entry_the_next_free_candidate() {
        let mut mirror = Mirror::with_slots(colliding_slot);
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
        let mut mirror = Mirror::with_slots(|_, _, _| FIRST_MIRROR_INODE);
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
}
