//! The two directories that mirror the host's, to any depth, never leading out of the host's sysfs:
//! - `sys/devices/system/cpu`, with the four CPU lists replaced by served files, `cpuN` listed only for
//!   the caller's visible CPUs, and the files that print a set of CPUs (topology, cache sharing) shown
//!   restricted to them;
//! - `sys/devices/system/node`, with the node lists replaced by served files, `nodeN` listed only for the
//!   caller's visible nodes, and in each `nodeN` the caller's own `cpulist`, `cpumap`, `distance` and
//!   `meminfo`, and `cpuN` links only for its visible CPUs;
//! - `sys/block`, whose entries (symlinks on the host) are directories here, so that each device's and
//!   partition's `stat` can be the caller's own I/O (sysstat's `iostat` reads these, not
//!   `/proc/diskstats`). Symlinks inside point to absolute `/sys/...` paths, which resolve in a
//!   container's `/sys` wherever this directory is mounted.

use super::mirror::{Mirror, MirrorKey, MirrorRoot, MirrorSeed};
use super::nodes::{
    self, DirEntry, Inode, Node, NodeKind, BLOCK_DIR_INODE, CPU_DIR_INODE, NODE_DIR_INODE,
};
use crate::host::paths::HostPaths;
use cgview_core::catalog::cpu_dir_cpu_set_file;
use cgview_core::catalog::NodeAttr;
use cgview_core::failure::Failure;
use cgview_core::model::numa::NodeSet;
use cgview_core::parse::cpuset::CpuSet;
use cgview_core::permissions::Owner;
use cgview_core::render::cpu_list::CpuListFormat;
use parking_lot::Mutex;
use std::fs::Metadata;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Permission bits of a block device's `stat` file (the caller's own I/O: readable by all).
pub(crate) const BLOCK_STAT_MODE: u16 = 0o444;

/// The host directories mirrored, and the numbers of the mirrored entries the kernel holds.
#[derive(Debug)]
pub(crate) struct HostMirror {
    cpu_dir: PathBuf,
    block_dir: PathBuf,
    node_dir: PathBuf,
    /// The host's `/sys`, to turn mirrored symlinks into absolute `/sys/...` targets.
    sys_root: PathBuf,
    /// `sys_root` with every symlink resolved, once it could be: no mirrored symlink may lead out of it.
    real_sys_root: OnceLock<PathBuf>,
    mirror: Mutex<Mirror>,
    /// The connection was numbered by an earlier daemon: entries the kernel still holds from it are
    /// recognised by their numbers at first use.
    inherited: bool,
    /// Numbers of earlier daemons' entries the walk found nothing for (gone from the host): not walked
    /// for again while the kernel still asks about them. At most the inodes the kernel held.
    unrecognised: Mutex<std::collections::HashSet<Inode>>,
}

/// How deep and how wide the search for an earlier daemon's entry goes.
const RECOGNITION_DEPTH: usize = 8;
const RECOGNITION_ENTRIES: usize = 200_000;

impl HostMirror {
    pub fn new(paths: &HostPaths) -> HostMirror {
        HostMirror::with_seed(paths, MirrorSeed::random(), false)
    }

    /// A mirror numbering with `seed`; `inherited` when an earlier daemon of the connection numbered
    /// with it.
    pub fn with_seed(paths: &HostPaths, seed: MirrorSeed, inherited: bool) -> HostMirror {
        HostMirror {
            cpu_dir: paths.sys_file("devices/system/cpu"),
            block_dir: paths.sys_file("block"),
            node_dir: paths.sys_file("devices/system/node"),
            sys_root: paths.sys_root.clone(),
            real_sys_root: OnceLock::new(),
            mirror: Mutex::new(Mirror::with_seed(seed)),
            inherited,
            unrecognised: Mutex::default(),
        }
    }

    pub fn seed(&self) -> MirrorSeed {
        self.mirror.lock().seed()
    }

    /// The mirrored entry numbered `inode`, while the kernel holds it.
    pub fn key_of(&self, inode: Inode) -> Result<MirrorKey, Failure> {
        if let Some(key) = self.mirror.lock().key_of(inode).cloned() {
            return Ok(key);
        }
        if self.inherited && Mirror::in_range(inode) && !self.unrecognised.lock().contains(&inode) {
            return self.recognise(inode).inspect_err(|_| {
                self.unrecognised.lock().insert(inode);
            });
        }
        Err(Failure::NotFound)
    }

    /// Finds the host entry an earlier daemon numbered `inode` (the kernel still holds it, e.g. a file a
    /// reader kept open across the restart): the same seed gives the same numbers, so the mirrored trees
    /// are walked for the entry whose number it is. Not found: gone from the host, as for any daemon.
    fn recognise(&self, inode: Inode) -> Result<MirrorKey, Failure> {
        let mut seen = 0;
        for root in [MirrorRoot::Cpu, MirrorRoot::Block, MirrorRoot::Node] {
            let mut pending = vec![(PathBuf::new(), 0usize)];
            while let Some((relative, depth)) = pending.pop() {
                let dir = self.host_path(&(root, relative.clone()));
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    seen += 1;
                    if seen > RECOGNITION_ENTRIES {
                        return Err(Failure::NotFound);
                    }
                    let key = (root, relative.join(entry.file_name()));
                    let mut mirror = self.mirror.lock();
                    if mirror.is_candidate(&key, inode) {
                        mirror.adopt(inode, key.clone());
                        tracing::debug!(inode, path = %self.host_path(&key).display(), "recognised a mirrored entry of an earlier daemon");
                        return Ok(key);
                    }
                    drop(mirror);
                    // sys/block's entries are symlinks to the devices' directories, mirrored as
                    // directories; below them, and everywhere in the CPU tree, symlinks are not followed.
                    let is_dir = match (root, depth) {
                        (MirrorRoot::Block, 0) => entry.path().is_dir(),
                        _ => entry.file_type().is_ok_and(|t| t.is_dir()),
                    };
                    if is_dir && depth + 1 < RECOGNITION_DEPTH {
                        pending.push((key.1, depth + 1));
                    }
                }
            }
        }
        Err(Failure::NotFound)
    }

    /// The host path of mirrored entry `inode`.
    pub fn path_of(&self, inode: Inode) -> Result<PathBuf, Failure> {
        Ok(self.host_path(&self.key_of(inode)?))
    }

    fn host_path(&self, (root, relative): &MirrorKey) -> PathBuf {
        match root {
            MirrorRoot::Cpu => self.cpu_dir.join(relative),
            MirrorRoot::Block => self.block_dir.join(relative),
            MirrorRoot::Node => self.node_dir.join(relative),
        }
    }

    /// A mirrored directory's root (`sys/devices/system/cpu`, `sys/block`): the host directory's owner and
    /// mode, so a locked-down host directory stays locked down here. A host without it gets a directory
    /// open to all, as the rest of cgview's own tree is.
    pub fn root_node(&self, root: MirrorRoot) -> Node {
        let inode = root.static_inode();
        let host_dir = self.host_path(&(root, PathBuf::new()));
        match std::fs::metadata(host_dir) {
            Ok(metadata) if metadata.is_dir() => Node {
                inode,
                kind: NodeKind::Directory,
                mode: host_permission_bits(&metadata),
                owner: host_owner(&metadata),
            },
            _ => Node {
                inode,
                kind: NodeKind::Directory,
                mode: 0o555,
                owner: Owner::ROOT,
            },
        }
    }

    /// The node of mirrored entry `inode`, from the host's metadata now.
    pub fn node(&self, inode: Inode) -> Result<Node, Failure> {
        let key = self.key_of(inode)?;
        Ok(Node {
            inode,
            ..self.entry_node(&key)?
        })
    }

    /// The node of a mirrored entry (its inode number is the caller's to fill in).
    fn entry_node(&self, key: &MirrorKey) -> Result<Node, Failure> {
        let path = self.host_path(key);
        let (root, relative) = key;
        // The host's sys/block entries are symlinks to device directories; here they are the directories.
        let follow = *root == MirrorRoot::Block && relative.components().count() == 1;
        let metadata = if follow {
            std::fs::metadata(&path)
        } else {
            std::fs::symlink_metadata(&path)
        }
        .map_err(|e| Failure::from_io(&e))?;
        let node = host_node(&metadata)?;
        if node.kind == NodeKind::HostFile {
            if let Some(format) = cpu_set_file(key) {
                // The host's owner and mode: only what the caller reads is its own.
                return Ok(Node {
                    kind: NodeKind::HostCpuList(format),
                    ..node
                });
            }
        }
        if *root == MirrorRoot::Block && is_block_stat(&path) && node.kind == NodeKind::HostFile {
            return Ok(Node {
                kind: NodeKind::BlockStat,
                mode: BLOCK_STAT_MODE,
                owner: Owner::ROOT,
                ..node
            });
        }
        if let Some(attr) = node_attr_of(key).filter(|_| node.kind == NodeKind::HostFile) {
            // The host's mode and owner stay: who may read it is the kernel's decision there too.
            return Ok(Node {
                kind: NodeKind::NodeAttr(attr),
                ..node
            });
        }
        Ok(node)
    }

    /// Looks `name` up on the host below the mirrored directory `parent` and numbers it, counting one
    /// lookup (a LOOKUP reply is about to name it). Returns the node and how many entries the mirror
    /// holds now.
    pub fn lookup(&self, parent: &MirrorKey, name: &str) -> Result<(Node, usize), Failure> {
        let (root, parent_relative) = parent;
        let key = (*root, parent_relative.join(name));
        // Check the host before numbering: names that do not exist get no inode.
        let metadata =
            std::fs::symlink_metadata(self.host_path(&key)).map_err(|e| Failure::from_io(&e))?;
        if metadata.file_type().is_symlink() && !self.stays_in_sys(&key) {
            tracing::debug!(path = %self.host_path(&key).display(), "a mirrored symlink leads out of sysfs; hidden");
            return Err(Failure::NotFound);
        }
        let node = self.entry_node(&key)?;
        let mut mirror = self.mirror.lock();
        let inode = mirror.acquire(*root, &key.1)?;
        Ok((Node { inode, ..node }, mirror.len()))
    }

    /// The number a listing shows for the directory above mirrored directory `inode`.
    pub fn parent_number(&self, inode: Inode) -> Result<Inode, Failure> {
        let (root, relative) = self.key_of(inode)?;
        Ok(
            match relative.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(parent) => self.mirror.lock().number_of(root, parent),
                None => root.static_inode(),
            },
        )
    }

    /// The host entries of mirrored directory `key` (numbered `inode`), sorted by name. In
    /// `sys/devices/system/cpu` and `sys/devices/system/node`, the host's own lists are left out (cgview
    /// serves them), and so is every `cpuN` (also in a `nodeN`) and `nodeN` that `shown` hides.
    pub fn list(
        &self,
        inode: Inode,
        key: &MirrorKey,
        shown: &Shown<'_>,
    ) -> Result<Vec<DirEntry>, Failure> {
        let (root, relative) = key;
        let host_dir = self.host_path(key);
        let is_device_dir = *root == MirrorRoot::Block && host_dir.join("dev").is_file();
        let read_dir = std::fs::read_dir(&host_dir).map_err(|e| Failure::from_io(&e))?;
        let mut names: Vec<(String, std::fs::FileType)> = read_dir
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.file_type().ok()?)))
            .filter(|(name, file_type)| {
                // Listed only if a lookup would find it.
                !file_type.is_symlink() || self.stays_in_sys(&(*root, relative.join(name)))
            })
            .collect();
        // Host order is the file system's; sorted output is stable across calls and callers.
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let is_node_dir = is_node_dir(key);
        let mirror = self.mirror.lock();
        Ok(names
            .into_iter()
            .filter(|(name, _)| match inode {
                CPU_DIR_INODE => {
                    nodes::named(CPU_DIR_INODE, name.as_bytes()).is_none() && shown.cpu(name)
                }
                NODE_DIR_INODE => {
                    nodes::named(NODE_DIR_INODE, name.as_bytes()).is_none() && shown.node(name)
                }
                _ => !is_node_dir || shown.cpu(name),
            })
            .map(|(name, file_type)| {
                let node_attr = NodeAttr::from_name(&name).filter(|_| is_node_dir);
                let kind = if file_type.is_dir() || inode == BLOCK_DIR_INODE {
                    NodeKind::HostDirectory
                } else if file_type.is_symlink() {
                    NodeKind::HostSymlink
                } else if is_device_dir && name == "stat" {
                    NodeKind::BlockStat
                } else if let Some(format) = cpu_set_file(&(*root, relative.join(&name))) {
                    NodeKind::HostCpuList(format)
                } else if let Some(attr) = node_attr {
                    NodeKind::NodeAttr(attr)
                } else {
                    NodeKind::HostFile
                };
                let inode = mirror.number_of(*root, &relative.join(&name));
                DirEntry { inode, kind, name }
            })
            .collect())
    }

    /// The target of a mirrored symlink. Below `sys/devices/system/cpu` and `node`, verbatim: the
    /// directories are mounted where they are on the host, so relative targets resolve in the container's `/sys` as on the
    /// host. Below `sys/block`, made absolute (`/sys/devices/...`): there a relative target would be
    /// resolved from the device directory's new place. A target that leads out of the host's sysfs is
    /// refused (`ENOENT`, as its lookup is).
    pub fn readlink(&self, inode: Inode) -> Result<PathBuf, Failure> {
        let key = self.key_of(inode)?;
        let target = std::fs::read_link(self.host_path(&key)).map_err(|e| Failure::from_io(&e))?;
        let inside = self.target_in_sys(&key, &target).ok_or(Failure::NotFound)?;
        if matches!(key.0, MirrorRoot::Cpu | MirrorRoot::Node) && target.is_relative() {
            return Ok(target);
        }
        Ok(Path::new("/sys").join(inside))
    }

    /// Whether the mirrored symlink `key` leads to a place inside the host's sysfs. The entries of
    /// `sys/block` are followed as directories here, so where they lead is checked with every symlink
    /// on the way resolved; deeper links are shown, so their target is checked both as a container
    /// resolves it (from the link's directory, with `/sys` for the sys root) and, where it exists, with
    /// every symlink resolved.
    fn stays_in_sys(&self, key: &MirrorKey) -> bool {
        let (root, relative) = key;
        if *root == MirrorRoot::Block && relative.components().count() == 1 {
            let Some(sys_root) = self.real_sys_root() else {
                return false;
            };
            return std::fs::canonicalize(self.host_path(key))
                .is_ok_and(|real| real.starts_with(sys_root));
        }
        std::fs::read_link(self.host_path(key))
            .ok()
            .and_then(|target| self.target_in_sys(key, &target))
            .is_some()
    }

    /// Where symlink `key`'s `target` leads, relative to the host's sysfs root; `None` if outside it (or
    /// if that cannot be told).
    fn target_in_sys(&self, key: &MirrorKey, target: &Path) -> Option<PathBuf> {
        let sys_root = self.real_sys_root()?;
        let resolved = if target.is_absolute() {
            // As a container resolves it: its /sys is this sys root.
            let inside = lexical_join(Path::new("/"), target)
                .strip_prefix("/sys")
                .ok()?
                .to_owned();
            sys_root.join(inside)
        } else {
            let link_dir = std::fs::canonicalize(self.host_path(key).parent()?).ok()?;
            lexical_join(&link_dir, target)
        };
        let inside = resolved.strip_prefix(sys_root).ok()?;
        // Symlinks on the way could still lead elsewhere: where the target exists, so must its real path.
        if let Ok(real) = std::fs::canonicalize(&resolved) {
            if !real.starts_with(sys_root) {
                return None;
            }
        }
        Some(inside.to_owned())
    }

    /// The host's sysfs root with every symlink resolved.
    fn real_sys_root(&self) -> Option<&Path> {
        if let Some(root) = self.real_sys_root.get() {
            return Some(root);
        }
        let real = std::fs::canonicalize(&self.sys_root).ok()?;
        Some(self.real_sys_root.get_or_init(|| real))
    }

    /// The kernel dropped `lookups` references to `inode`. Returns how many entries are left when the
    /// entry went, `None` when it stays (or was never mirrored).
    pub fn forget(&self, inode: Inode, lookups: u64) -> Option<usize> {
        let mut mirror = self.mirror.lock();
        mirror.forget(inode, lookups).map(|_| mirror.len())
    }

    /// How many mirrored entries the kernel holds now.
    pub fn len(&self) -> usize {
        self.mirror.lock().len()
    }
}

/// What a caller is shown of the directories whose entries depend on it; `None`: all of the host's.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Shown<'a> {
    pub cpus: Option<&'a CpuSet>,
    pub nodes: Option<&'a NodeSet>,
}

impl Shown<'_> {
    /// Whether entry `name` is shown when it is a `cpuN` (anything else is).
    fn cpu(&self, name: &str) -> bool {
        cpu_entry_id(name).is_none_or(|id| self.cpus.is_none_or(|v| v.contains(id)))
    }

    /// Whether entry `name` is shown when it is a `nodeN` (anything else is).
    fn node(&self, name: &str) -> bool {
        node_entry_id(name).is_none_or(|id| self.nodes.is_none_or(|v| v.contains(id)))
    }
}

/// Whether mirrored directory `key` is a `sys/devices/system/node/nodeN`.
pub(crate) fn is_node_dir((root, relative): &MirrorKey) -> bool {
    *root == MirrorRoot::Node
        && relative.components().count() == 1
        && relative.to_str().and_then(node_entry_id).is_some()
}

/// The per-caller file `key` is, when it is one of a `nodeN`'s own (`node1/meminfo`).
fn node_attr_of(key: &MirrorKey) -> Option<NodeAttr> {
    let (root, relative) = key;
    let parent = (*root, relative.parent()?.to_owned());
    if !is_node_dir(&parent) {
        return None;
    }
    NodeAttr::from_name(relative.file_name()?.to_str()?)
}

/// A host node's mirrored node (its inode number is the caller's to fill in): the host node's owner,
/// group and mode, so that every access check here is the one the kernel makes on the host's node. Write
/// bits stay, as on a read-only mount of the host's sysfs: the mount is read-only, so writes fail with
/// `EROFS`. Symlinks' bits are always 0777, as the kernel shows them.
fn host_node(metadata: &Metadata) -> Result<Node, Failure> {
    let file_type = metadata.file_type();
    let (kind, mode) = if file_type.is_dir() {
        (NodeKind::HostDirectory, host_permission_bits(metadata))
    } else if file_type.is_symlink() {
        (NodeKind::HostSymlink, 0o777)
    } else if file_type.is_file() {
        (NodeKind::HostFile, host_permission_bits(metadata))
    } else {
        // sysfs has no device nodes or fifos; anything else is not passed through.
        return Err(Failure::NotFound);
    };
    Ok(Node {
        inode: 0,
        kind,
        mode,
        owner: host_owner(metadata),
    })
}

/// Permission bits (with set-id and sticky bits) of a host node.
fn host_permission_bits(metadata: &Metadata) -> u16 {
    (metadata.permissions().mode() & 0o7777) as u16
}

fn host_owner(metadata: &Metadata) -> Owner {
    Owner {
        uid: metadata.uid(),
        gid: metadata.gid(),
    }
}

/// How mirrored entry `key` prints a set of CPUs, if it is a file of the cpu directory that does (see
/// [`cpu_dir_cpu_set_file`]).
fn cpu_set_file((root, relative): &MirrorKey) -> Option<CpuListFormat> {
    if *root != MirrorRoot::Cpu {
        return None;
    }
    cpu_dir_cpu_set_file(relative.to_str()?)
}

/// A block device's or partition's `stat`: a file named `stat` next to a `dev` file.
fn is_block_stat(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "stat")
        && path.parent().is_some_and(|dir| dir.join("dev").is_file())
}

/// `base` joined with a relative `target`, `..` resolved without touching the file system.
fn lexical_join(base: &Path, target: &Path) -> PathBuf {
    let mut joined = base.to_path_buf();
    for part in target.components() {
        match part {
            std::path::Component::ParentDir => {
                joined.pop();
            }
            std::path::Component::Normal(name) => joined.push(name),
            _ => {}
        }
    }
    joined
}

/// The id of a `cpuN` directory name.
pub(crate) fn cpu_entry_id(name: &str) -> Option<u32> {
    numbered_entry_id(name, "cpu")
}

/// The id of a `nodeN` directory name.
pub(crate) fn node_entry_id(name: &str) -> Option<u32> {
    numbered_entry_id(name, "node")
}

fn numbered_entry_id(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_entry_ids() {
        assert_eq!(cpu_entry_id("cpu0"), Some(0));
        assert_eq!(cpu_entry_id("cpu17"), Some(17));
        assert_eq!(cpu_entry_id("cpu"), None);
        assert_eq!(cpu_entry_id("cpufreq"), None);
        assert_eq!(cpu_entry_id("cpuidle"), None);
        assert_eq!(cpu_entry_id("cpu+1"), None);
    }

    #[test]
    fn node_entries_and_files() {
        assert_eq!(node_entry_id("node0"), Some(0));
        assert_eq!(node_entry_id("node12"), Some(12));
        assert_eq!(node_entry_id("node"), None);
        assert_eq!(node_entry_id("nodes"), None);
        assert!(is_node_dir(&(MirrorRoot::Node, PathBuf::from("node1"))));
        assert!(!is_node_dir(&(MirrorRoot::Node, PathBuf::from("power"))));
        assert!(!is_node_dir(&(MirrorRoot::Cpu, PathBuf::from("node1"))));
        assert!(!is_node_dir(&(MirrorRoot::Node, PathBuf::from("node1/x"))));
        assert_eq!(
            node_attr_of(&(MirrorRoot::Node, PathBuf::from("node1/meminfo"))),
            Some(NodeAttr::Meminfo)
        );
        assert_eq!(
            node_attr_of(&(MirrorRoot::Node, PathBuf::from("node1/numastat"))),
            None
        );
        assert_eq!(
            node_attr_of(&(MirrorRoot::Node, PathBuf::from("node1/hugepages/meminfo"))),
            None
        );
        assert_eq!(
            node_attr_of(&(MirrorRoot::Node, PathBuf::from("meminfo"))),
            None
        );
    }

    #[test]
    fn lexical_join_resolves_parents() {
        assert_eq!(
            lexical_join(
                Path::new("/sys/devices/pci/virtio1/block/vda"),
                Path::new("../../../virtio1")
            ),
            Path::new("/sys/devices/pci/virtio1")
        );
    }

    #[test]
    fn a_successor_recognises_entries_an_earlier_daemon_numbered() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths {
            proc_root: dir.path().join("proc"),
            sys_root: dir.path().join("sys"),
            cgroup_root: dir.path().join("cgroup"),
        };
        let topology = paths.sys_file("devices/system/cpu/cpu0/topology");
        std::fs::create_dir_all(&topology).unwrap();
        std::fs::write(topology.join("core_id"), "0\n").unwrap();
        let seed = MirrorSeed([11, 13]);
        let first = HostMirror::with_seed(&paths, seed, false);
        let cpu = (MirrorRoot::Cpu, PathBuf::new());
        let (cpu0, _) = first.lookup(&cpu, "cpu0").unwrap();
        let (topo, _) = first
            .lookup(&(MirrorRoot::Cpu, PathBuf::from("cpu0")), "topology")
            .unwrap();
        let (core_id, _) = first
            .lookup(
                &(MirrorRoot::Cpu, PathBuf::from("cpu0/topology")),
                "core_id",
            )
            .unwrap();
        assert!(cpu0.inode != topo.inode);

        // The successor knows none of them until the kernel asks, then finds each by its number.
        let successor = HostMirror::with_seed(&paths, seed, true);
        assert_eq!(
            successor.key_of(core_id.inode).unwrap(),
            (MirrorRoot::Cpu, PathBuf::from("cpu0/topology/core_id"))
        );
        assert_eq!(successor.path_of(topo.inode).unwrap(), topology);
        // A daemon that mounted the connection itself inherits nothing to recognise.
        let fresh = HostMirror::with_seed(&paths, seed, false);
        assert_eq!(fresh.key_of(core_id.inode), Err(Failure::NotFound));
        // An entry gone from the host is not found, and not looked for again.
        std::fs::remove_file(topology.join("core_id")).unwrap();
        let later = HostMirror::with_seed(&paths, seed, true);
        assert_eq!(later.key_of(core_id.inode), Err(Failure::NotFound));
        assert!(later.unrecognised.lock().contains(&core_id.inode));
        assert_eq!(later.key_of(core_id.inode), Err(Failure::NotFound));
    }
}
