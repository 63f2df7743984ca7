//! What a node of the mounted tree is, and the tree's constant part: the directories and served files
//! cgview makes, with their inode numbers. Everything else is mirrored from the host
//! ([`host_mirror`](super::host_mirror)) or is the diagnostic floor ([`content`](super::content)).

use cgview_core::catalog::{NodeAttr, ServedFile};
use cgview_core::permissions::{Access, Owner};
use cgview_core::render::cpu_list::CpuListFormat;

pub type Inode = u64;
pub const ROOT_INODE: Inode = 1;
/// `sys/devices/system/cpu`, a mirrored directory.
pub(crate) const CPU_DIR_INODE: Inode = 6;
/// `sys/block`, a mirrored directory.
pub(crate) const BLOCK_DIR_INODE: Inode = 8;
/// `sys/devices/system/node`, a mirrored directory (on hosts with NUMA support).
pub(crate) const NODE_DIR_INODE: Inode = 9;
/// Mirrored entries are numbered from here up (see [`Mirror`](super::mirror::Mirror)).
pub(crate) const FIRST_MIRROR_INODE: Inode = 1000;
pub(crate) const FLOOR_INODE: Inode = 999;
/// The diagnostic file's name in the mount's root; not listed.
pub const FLOOR_NAME: &str = ".cgview-floor";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Directory,
    File(ServedFile),
    /// An entry below the host's `/sys/devices/system/cpu`, passed through.
    HostDirectory,
    HostFile,
    HostSymlink,
    /// The `stat` file of a block device or partition below `sys/block`: the caller's I/O on it.
    BlockStat,
    /// A host file below `sys/devices/system/cpu` that prints a set of CPUs (`cpuN/topology/core_cpus_list`,
    /// `cpuN/cache/index0/shared_cpu_map`, see [`cgview_core::catalog::cpu_dir_cpu_set_file`]): the host's
    /// set restricted to the caller's visible CPUs, in the host's format.
    HostCpuList(CpuListFormat),
    /// A file of a `sys/devices/system/node/nodeN` directory that is the caller's own.
    NodeAttr(NodeAttr),
    /// The diagnostic file that serves a fixed buffer (`--diagnostic-floor`): the cost of FUSE itself.
    Floor,
}

impl NodeKind {
    pub fn is_directory(self) -> bool {
        matches!(self, NodeKind::Directory | NodeKind::HostDirectory)
    }

    /// Whether two callers may read different content from this node.
    pub fn is_per_caller(self) -> bool {
        matches!(
            self,
            NodeKind::File(_)
                | NodeKind::BlockStat
                | NodeKind::HostCpuList(_)
                | NodeKind::NodeAttr(_)
        )
    }

    pub fn is_regular_file(self) -> bool {
        matches!(
            self,
            NodeKind::File(_)
                | NodeKind::HostFile
                | NodeKind::BlockStat
                | NodeKind::HostCpuList(_)
                | NodeKind::NodeAttr(_)
                | NodeKind::Floor
        )
    }
}

/// A node as the kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub inode: Inode,
    pub kind: NodeKind,
    /// Permission bits.
    pub mode: u16,
    /// root:root for the nodes cgview makes; the host node's for mirrored ones.
    pub owner: Owner,
}

impl Node {
    /// Whether two callers may be told different things about this file: its content is per caller, or
    /// some callers may not read it (and are shown no size).
    pub fn answers_per_caller(&self) -> bool {
        self.kind.is_per_caller() || (self.kind.is_regular_file() && self.mode & 0o444 != 0o444)
    }

    pub(crate) fn access(&self) -> Access {
        Access {
            owner: self.owner,
            mode: self.mode,
            is_directory: self.kind.is_directory(),
        }
    }
}

/// How long the kernel may cache a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameLifetime {
    /// The name exists for every caller.
    Stable,
    /// Whether the name exists depends on the caller (`cpuN`): the kernel must ask again every time.
    PerCaller,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub inode: Inode,
    pub kind: NodeKind,
    pub name: String,
}

/// An entry of the constant table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StaticNode {
    pub inode: Inode,
    pub parent: Inode,
    pub name: &'static str,
    pub kind: NodeKind,
}

impl StaticNode {
    /// The node: root-owned, a served file with procfs's mode for it, a directory open to all.
    pub fn node(&self) -> Node {
        let mode = match self.kind {
            NodeKind::File(served) => served.mode(),
            _ => 0o555,
        };
        Node {
            inode: self.inode,
            kind: self.kind,
            mode,
            owner: Owner::ROOT,
        }
    }

    fn is_root(&self) -> bool {
        self.inode == ROOT_INODE
    }
}

const fn dir(inode: Inode, parent: Inode, name: &'static str) -> StaticNode {
    StaticNode {
        inode,
        parent,
        name,
        kind: NodeKind::Directory,
    }
}

const fn file(inode: Inode, parent: Inode, name: &'static str, served: ServedFile) -> StaticNode {
    StaticNode {
        inode,
        parent,
        name,
        kind: NodeKind::File(served),
    }
}

/// Names never change, so this part of the tree is a constant.
const NODES: [StaticNode; 32] = [
    dir(ROOT_INODE, ROOT_INODE, ""),
    dir(2, ROOT_INODE, "proc"),
    dir(3, ROOT_INODE, "sys"),
    dir(4, 3, "devices"),
    dir(5, 4, "system"),
    dir(CPU_DIR_INODE, 5, "cpu"),
    dir(7, 2, "pressure"),
    dir(BLOCK_DIR_INODE, 3, "block"),
    file(10, 2, "cpuinfo", ServedFile::Cpuinfo),
    file(11, 2, "diskstats", ServedFile::Diskstats),
    file(12, 2, "meminfo", ServedFile::Meminfo),
    file(13, 2, "uptime", ServedFile::Uptime),
    file(14, CPU_DIR_INODE, "online", ServedFile::CpuOnline),
    file(15, 2, "stat", ServedFile::Stat),
    file(16, 2, "swaps", ServedFile::Swaps),
    file(17, 2, "loadavg", ServedFile::Loadavg),
    file(18, 2, "slabinfo", ServedFile::Slabinfo),
    file(19, 7, "cpu", ServedFile::PressureCpu),
    file(20, 7, "memory", ServedFile::PressureMemory),
    file(21, 7, "io", ServedFile::PressureIo),
    file(22, CPU_DIR_INODE, "present", ServedFile::CpuPresent),
    file(23, CPU_DIR_INODE, "possible", ServedFile::CpuPossible),
    file(24, CPU_DIR_INODE, "offline", ServedFile::CpuOffline),
    file(25, 2, "vmstat", ServedFile::Vmstat),
    dir(NODE_DIR_INODE, 5, "node"),
    file(26, NODE_DIR_INODE, "online", ServedFile::NodeOnline),
    file(27, NODE_DIR_INODE, "possible", ServedFile::NodePossible),
    file(28, NODE_DIR_INODE, "has_cpu", ServedFile::NodeHasCpu),
    file(29, NODE_DIR_INODE, "has_memory", ServedFile::NodeHasMemory),
    file(
        30,
        NODE_DIR_INODE,
        "has_normal_memory",
        ServedFile::NodeHasNormalMemory,
    ),
    file(
        31,
        NODE_DIR_INODE,
        "has_high_memory",
        ServedFile::NodeHasHighMemory,
    ),
    file(
        32,
        NODE_DIR_INODE,
        "has_generic_initiator",
        ServedFile::NodeHasGenericInitiator,
    ),
];

/// The table entry named `name` in directory `parent`, whether or not this host has it.
pub(crate) fn named(parent: Inode, name: &[u8]) -> Option<&'static StaticNode> {
    NODES
        .iter()
        .find(|n| n.parent == parent && !n.is_root() && n.name.as_bytes() == name)
}

/// The directory that holds table entry `inode` (the root holds itself).
pub(crate) fn parent_of(inode: Inode) -> Option<Inode> {
    NODES.iter().find(|n| n.inode == inode).map(|n| n.parent)
}

/// The constant nodes this host has: a served file whose host file is missing (no PSI in this kernel) is
/// left out of the tree, and so is a directory the host lacks (`node`, on a kernel without NUMA).
#[derive(Debug)]
pub(crate) struct StaticTree {
    absent: Vec<ServedFile>,
    absent_dirs: Vec<Inode>,
}

impl StaticTree {
    pub fn new(absent: Vec<ServedFile>, absent_dirs: Vec<Inode>) -> StaticTree {
        StaticTree {
            absent,
            absent_dirs,
        }
    }

    /// Table entry `inode`, if this host has it.
    pub fn get(&self, inode: Inode) -> Option<&'static StaticNode> {
        NODES
            .iter()
            .find(|n| n.inode == inode)
            .filter(|n| self.has(n))
    }

    /// The entries of directory `parent` this host has, in table order.
    pub fn children(&self, parent: Inode) -> impl Iterator<Item = &'static StaticNode> + '_ {
        NODES
            .iter()
            .filter(move |n| n.parent == parent && !n.is_root() && self.has(n))
    }

    fn has(&self, node: &StaticNode) -> bool {
        if self.absent_dirs.contains(&node.inode) || self.absent_dirs.contains(&node.parent) {
            return false;
        }
        match node.kind {
            NodeKind::File(served) => !self.absent.contains(&served),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_file_has_a_node_at_its_tree_path() {
        for served in ServedFile::ALL {
            let mut inode = ROOT_INODE;
            for part in served.tree_path().split('/') {
                inode = NODES
                    .iter()
                    .find(|n| n.parent == inode && n.inode != ROOT_INODE && n.name == part)
                    .unwrap_or_else(|| panic!("no node for {part} of {}", served.tree_path()))
                    .inode;
            }
            let node = NODES.iter().find(|n| n.inode == inode).unwrap();
            assert_eq!(node.kind, NodeKind::File(served));
        }
    }

    #[test]
    fn inodes_are_unique_and_below_the_mirror_range() {
        let mut inodes: Vec<_> = NODES.iter().map(|n| n.inode).collect();
        inodes.sort_unstable();
        inodes.dedup();
        assert_eq!(inodes.len(), NODES.len());
        assert!(inodes.iter().all(|&i| i < FIRST_MIRROR_INODE));
    }
}
