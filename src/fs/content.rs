//! What an open file reads: a served file's render for its caller (through the cache), a block device's
//! `stat` as the caller's own I/O, a cpu directory file that prints a set of CPUs restricted to the
//! caller's, a NUMA node's own files for the caller, a mirrored host file passed through, or the
//! diagnostic floor.

use super::handles::Snapshot;
use super::host_mirror::{node_entry_id, HostMirror, BLOCK_STAT_MODE};
use super::nodes::{Inode, Node, NodeKind, FLOOR_INODE};
use crate::host::kernel_file::{open_kernel_file, read_kernel_prefix, read_kernel_text};
use crate::service::cache::{Purpose, ViewCache};
use crate::telemetry::metrics::MetricFile;
use cgview_core::failure::Failure;
use cgview_core::parse::diskstats::DeviceId;
use cgview_core::permissions::Owner;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest host file passed through (sysfs attributes are at most a page; this is generous).
const MAX_PASSTHROUGH_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct Content {
    cache: ViewCache,
    /// Host `stat` path and device of each `sys/block` stat file served so far (they never change while
    /// the device exists).
    block_devices: Mutex<HashMap<Inode, Arc<(PathBuf, DeviceId)>>>,
    /// Node, host path and node id of each `sys/devices/system/node/nodeN` file served per caller so far.
    node_attrs: Mutex<HashMap<Inode, Arc<KnownNodeAttr>>>,
    /// The fixed content of the diagnostic file, when enabled.
    floor: Option<Snapshot>,
}

impl Content {
    pub fn new(cache: ViewCache) -> Content {
        Content {
            cache,
            block_devices: Mutex::new(HashMap::new()),
            node_attrs: Mutex::new(HashMap::new()),
            floor: None,
        }
    }

    /// Serves `content` as the diagnostic floor.
    pub fn set_floor(&mut self, content: Vec<u8>) {
        self.floor = Some(content.into());
    }

    pub fn cache(&self) -> &ViewCache {
        &self.cache
    }

    /// The diagnostic file's node, when it is served.
    pub fn floor_node(&self) -> Option<Node> {
        self.floor.as_ref().map(|_| Node {
            inode: FLOOR_INODE,
            kind: NodeKind::Floor,
            mode: 0o444,
            owner: Owner::ROOT,
        })
    }

    /// A block device's stat file, once served, is known without asking the host again: every open of
    /// it would otherwise stat sysfs (its fixed kind and mode are all a node holds; a device that goes
    /// away shows when its stat is read).
    pub fn known_block_stat(&self, inode: Inode) -> Option<Node> {
        self.block_devices
            .lock()
            .contains_key(&inode)
            .then_some(Node {
                inode,
                kind: NodeKind::BlockStat,
                mode: BLOCK_STAT_MODE,
                owner: Owner::ROOT,
            })
    }

    /// A node's own file, once served, is known without asking the host again (as a block device's
    /// `stat` is).
    pub fn known_node_attr(&self, inode: Inode) -> Option<Node> {
        self.node_attrs.lock().get(&inode).map(|known| known.node)
    }

    /// The kernel no longer holds `inode`: what was kept about it goes.
    pub fn forget(&self, inode: Inode) {
        self.block_devices.lock().remove(&inode);
        self.node_attrs.lock().remove(&inode);
    }

    /// What `node` shows `caller` now, for `purpose` (a read counts a fallback, a size does not);
    /// `mirror` finds mirrored nodes on the host.
    pub fn of(
        &self,
        node: &Node,
        caller: Option<u32>,
        purpose: Purpose,
        mirror: &HostMirror,
    ) -> Result<Snapshot, Failure> {
        let served = match node.kind {
            NodeKind::File(served) => self.cache.serve(served, caller, purpose),
            NodeKind::BlockStat => {
                let device = self.block_device(node.inode, mirror)?;
                let (host_stat, device) = &*device;
                self.cache
                    .serve_block_stat(node.inode, host_stat, *device, caller, purpose)
            }
            NodeKind::HostCpuList(format) => {
                let host_file = mirror.path_of(node.inode)?;
                self.cache
                    .serve_cpu_list(node.inode, &host_file, format, caller, purpose)
            }
            NodeKind::NodeAttr(attr) => {
                let known = self.node_attr(node, mirror)?;
                self.cache.serve_node_attr(
                    node.inode,
                    attr,
                    known.node_id,
                    &known.host_path,
                    caller,
                    purpose,
                )
            }
            NodeKind::Floor => return self.floor.clone().ok_or(Failure::NotFound),
            _ => return Ok(read_host(&mirror.path_of(node.inode)?)?.into()),
        };
        match served {
            Ok(cached) => Ok(cached.bytes),
            Err(error) => {
                tracing::error!("cannot serve: {}", cgview_core::error_chain(&error));
                Err(Failure::from_host_errno(None))
            }
        }
    }

    fn node_attr(&self, node: &Node, mirror: &HostMirror) -> Result<Arc<KnownNodeAttr>, Failure> {
        if let Some(known) = self.node_attrs.lock().get(&node.inode) {
            return Ok(known.clone());
        }
        let host_path = mirror.path_of(node.inode)?;
        let node_id = host_path
            .parent()
            .and_then(Path::file_name)
            .and_then(|name| name.to_str())
            .and_then(node_entry_id)
            .ok_or(Failure::NotFound)?;
        let known = Arc::new(KnownNodeAttr {
            node: *node,
            host_path,
            node_id,
        });
        self.node_attrs.lock().insert(node.inode, known.clone());
        Ok(known)
    }

    fn block_device(
        &self,
        inode: Inode,
        mirror: &HostMirror,
    ) -> Result<Arc<(PathBuf, DeviceId)>, Failure> {
        if let Some(known) = self.block_devices.lock().get(&inode) {
            return Ok(known.clone());
        }
        let path = mirror.path_of(inode)?;
        let device = path
            .parent()
            .and_then(|dir| read_kernel_text(&dir.join("dev")).ok())
            .and_then(|dev| parse_device_id(&dev))
            .ok_or(Failure::from_host_errno(None))?;
        let known = Arc::new((path, device));
        self.block_devices.lock().insert(inode, known.clone());
        Ok(known)
    }
}

/// What a node's own file is: its node (kind, mode, owner never change while the kernel holds it), its
/// host file and the node's id.
#[derive(Debug)]
struct KnownNodeAttr {
    node: Node,
    host_path: PathBuf,
    node_id: u32,
}

fn read_host(path: &Path) -> Result<Vec<u8>, Failure> {
    let file = open_kernel_file(path).map_err(|e| Failure::from_io(&e))?;
    read_kernel_prefix(&file, MAX_PASSTHROUGH_BYTES).map_err(|e| Failure::from_io(&e))
}

/// `254:0` from a sysfs `dev` file.
fn parse_device_id(text: &str) -> Option<DeviceId> {
    let (major, minor) = text.trim().split_once(':')?;
    Some(DeviceId {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    })
}

/// The `file` label a node's opens are counted under; none for directories and symlinks.
pub(crate) fn metric_file(kind: NodeKind) -> Option<MetricFile> {
    match kind {
        NodeKind::File(served) => Some(MetricFile::Served(served)),
        NodeKind::BlockStat => Some(MetricFile::BlockStat),
        NodeKind::HostCpuList(_) => Some(MetricFile::CpuList),
        NodeKind::NodeAttr(_) => Some(MetricFile::NodeAttr),
        NodeKind::HostFile => Some(MetricFile::HostFile),
        NodeKind::Floor => Some(MetricFile::Floor),
        NodeKind::Directory | NodeKind::HostDirectory | NodeKind::HostSymlink => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_parse_from_sysfs_dev_files() {
        assert_eq!(
            parse_device_id("254:16\n"),
            Some(DeviceId {
                major: 254,
                minor: 16
            })
        );
        assert_eq!(parse_device_id("254"), None);
    }
}
