//! The containers the runtime told the plugin of, with the ids and cgroup paths it gave: what lets a
//! later cgview serve each container its own files without resolving the caller's cgroup.

use crate::proto::{Container, PodSandbox};
use std::collections::HashMap;

/// One container as the runtime described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub id: String,
    pub namespace: String,
    pub pod: String,
    pub name: String,
    /// The OCI `cgroupsPath`: a cgroupfs path or systemd's `slice:prefix:name`.
    pub cgroups_path: String,
    /// The pod's cgroup parent, when the runtime gave it.
    pub cgroup_parent: String,
    /// Whether it has cgview's binds.
    pub bound: bool,
}

impl Tracked {
    pub fn of(pod: &PodSandbox, container: &Container, bound: bool) -> Tracked {
        Tracked {
            id: container.id.clone(),
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            name: container.name.clone(),
            cgroups_path: container
                .linux
                .as_ref()
                .map(|linux| linux.cgroups_path.clone())
                .unwrap_or_default(),
            cgroup_parent: pod
                .linux
                .as_ref()
                .map(|linux| linux.cgroup_parent.clone())
                .unwrap_or_default(),
            bound,
        }
    }
}

/// The tracked containers by id.
#[derive(Debug, Default)]
pub struct Registry {
    by_id: HashMap<String, Tracked>,
}

impl Registry {
    pub fn insert(&mut self, tracked: Tracked) {
        self.by_id.insert(tracked.id.clone(), tracked);
    }

    pub fn remove(&mut self, id: &str) -> Option<Tracked> {
        self.by_id.remove(id)
    }

    pub fn get(&self, id: &str) -> Option<&Tracked> {
        self.by_id.get(id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn all(&self) -> Vec<Tracked> {
        self.by_id.values().cloned().collect()
    }
}
