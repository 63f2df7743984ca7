//! Which pods get cgview's files, and the JSON patch that gives them. Pure: a pod and a configuration
//! in, a decision out.

use super::INJECT_ANNOTATION;
use cgview_core::catalog::{webhook_default_files, ServedFile};
use k8s_openapi::api::core::v1::{HostPathVolumeSource, Pod, Volume, VolumeMount};

/// The host directory the DaemonSet mounts cgview at.
pub const DEFAULT_MOUNT_ROOT: &str = "/var/lib/cgview";

/// What the webhook injects and where it stays away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectionConfig {
    /// Where cgview is mounted on every node (the DaemonSet's hostPath).
    pub mount_root: String,
    /// The served files bound into containers, each at its own path.
    pub files: Vec<ServedFile>,
    /// Whether init containers get the files too (regular containers always do).
    pub init_containers: bool,
    /// Also mount the host directory itself, read-only with `HostToContainer` propagation, at this path
    /// in every container (a daemon that remounts then reaches the container through it).
    pub host_dir_mount_path: Option<String>,
    /// Namespaces whose pods are never injected.
    pub skip_namespaces: Vec<String>,
}

impl Default for InjectionConfig {
    fn default() -> Self {
        InjectionConfig {
            mount_root: DEFAULT_MOUNT_ROOT.to_owned(),
            files: webhook_default_files(),
            init_containers: true,
            host_dir_mount_path: None,
            skip_namespaces: vec!["kube-system".to_owned()],
        }
    }
}

impl InjectionConfig {
    /// The volumes and mounts one pod gets, in the order they are added.
    pub fn injections(&self) -> Vec<Injection> {
        let mut injections: Vec<Injection> = self
            .files
            .iter()
            .map(|file| {
                let tree_path = file.tree_path();
                Injection {
                    // A volume name is a DNS label: the node lists' `_` (`has_cpu`) becomes `-` too.
                    volume_name: format!("cgview-{}", tree_path.replace(['/', '_'], "-")),
                    host_path: format!("{}/{tree_path}", self.mount_root.trim_end_matches('/')),
                    host_path_type: "File",
                    mount_path: format!("/{tree_path}"),
                    propagation: None,
                }
            })
            .collect();
        if let Some(mount_path) = &self.host_dir_mount_path {
            injections.push(Injection {
                volume_name: "cgview-root".to_owned(),
                host_path: self.mount_root.clone(),
                host_path_type: "Directory",
                mount_path: mount_path.clone(),
                propagation: Some("HostToContainer"),
            });
        }
        injections
    }
}

/// One hostPath volume and where it is mounted, read-only, in every injected container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    pub volume_name: String,
    pub host_path: String,
    /// `File` for a served file: kubelet then refuses to start the container when cgview is not mounted
    /// instead of creating an empty directory on the host in its place.
    pub host_path_type: &'static str,
    pub mount_path: String,
    pub propagation: Option<&'static str>,
}

impl Injection {
    pub fn volume(&self) -> Volume {
        Volume {
            name: self.volume_name.clone(),
            host_path: Some(HostPathVolumeSource {
                path: self.host_path.clone(),
                type_: Some(self.host_path_type.to_owned()),
            }),
            ..Volume::default()
        }
    }

    pub fn volume_mount(&self) -> VolumeMount {
        VolumeMount {
            name: self.volume_name.clone(),
            mount_path: self.mount_path.clone(),
            read_only: Some(true),
            mount_propagation: self.propagation.map(str::to_owned),
            ..VolumeMount::default()
        }
    }

    /// Whether `volume` is this injection's own volume (left by an earlier pass of the webhook).
    fn is_same_volume(&self, volume: &Volume) -> bool {
        volume.name == self.volume_name
            && volume.host_path.as_ref().is_some_and(|host| {
                normalized(&host.path) == normalized(&self.host_path)
                    && host.type_.as_deref() == Some(self.host_path_type)
            })
    }

    fn is_same_mount(&self, mount: &VolumeMount) -> bool {
        mount.name == self.volume_name
            && normalized(&mount.mount_path) == normalized(&self.mount_path)
            && mount.read_only == Some(true)
            && mount.sub_path.as_deref().unwrap_or("").is_empty()
            && mount.sub_path_expr.as_deref().unwrap_or("").is_empty()
    }
}

/// Which kind of container a [`ContainerPlan`] is about; the JSON pointer differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    Init,
    Regular,
}

impl ContainerKind {
    pub fn field(self) -> &'static str {
        match self {
            ContainerKind::Init => "initContainers",
            ContainerKind::Regular => "containers",
        }
    }
}

/// The mounts one container lacks.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerPlan {
    pub kind: ContainerKind,
    pub index: usize,
    pub name: String,
    /// Whether the container has a `volumeMounts` list to append to.
    pub has_mounts: bool,
    pub missing: Vec<VolumeMount>,
}

/// What the webhook does with one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Admitted as it is, with nothing recorded: opted out, a skipped namespace, a pod cgview has no view
    /// for, or one that already has every volume and mount.
    Unchanged { reason: String },
    /// Gets the volumes and mounts it lacks.
    Inject {
        has_volumes: bool,
        missing_volumes: Vec<Volume>,
        containers: Vec<ContainerPlan>,
    },
    /// Admitted without cgview's files, because what it already has would clash with them: each clash,
    /// for an annotation and the response warnings.
    Conflict { conflicts: Vec<String> },
}

/// Decides for a pod being created in `namespace`.
pub fn decide(config: &InjectionConfig, namespace: &str, pod: &Pod) -> Decision {
    if config.skip_namespaces.iter().any(|skip| skip == namespace) {
        return Decision::Unchanged {
            reason: format!("namespace {namespace} is skipped"),
        };
    }
    if let Some(value) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(INJECT_ANNOTATION))
    {
        if is_opt_out(value) {
            return Decision::Unchanged {
                reason: format!("opted out by annotation {INJECT_ANNOTATION}={value}"),
            };
        }
    }
    let Some(spec) = &pod.spec else {
        return Decision::Unchanged {
            reason: "the pod has no spec".to_owned(),
        };
    };
    if let Some(os) = &spec.os {
        if os.name != "linux" {
            return Decision::Unchanged {
                reason: format!("cgview serves Linux pods, this one is for {}", os.name),
            };
        }
    }
    if config.files.is_empty() && config.host_dir_mount_path.is_none() {
        return Decision::Unchanged {
            reason: "no files are configured".to_owned(),
        };
    }

    let injections = config.injections();
    let mut conflicts = Vec::new();
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let mut missing_volumes = Vec::new();
    for injection in &injections {
        match volumes.iter().find(|v| v.name == injection.volume_name) {
            Some(volume) if injection.is_same_volume(volume) => {}
            Some(_) => conflicts.push(format!(
                "the pod already has a volume named {} with another source",
                injection.volume_name
            )),
            None => missing_volumes.push(injection.volume()),
        }
    }

    let init_containers = spec.init_containers.as_deref().unwrap_or_default();
    let targets = spec
        .containers
        .iter()
        .enumerate()
        .map(|(index, c)| (ContainerKind::Regular, index, c))
        .chain(
            init_containers
                .iter()
                .enumerate()
                .filter(|_| config.init_containers)
                .map(|(index, c)| (ContainerKind::Init, index, c)),
        );
    let mut containers = Vec::new();
    for (kind, index, container) in targets {
        let mounts = container.volume_mounts.as_deref().unwrap_or_default();
        let devices = container.volume_devices.as_deref().unwrap_or_default();
        let mut missing = Vec::new();
        for injection in &injections {
            let mut present = false;
            for mount in mounts {
                if injection.is_same_mount(mount) {
                    present = true;
                } else if mount.name == injection.volume_name {
                    conflicts.push(format!(
                        "container {} mounts volume {} at {} in a way cgview does not",
                        container.name, mount.name, mount.mount_path
                    ));
                } else if normalized(&mount.mount_path) == normalized(&injection.mount_path) {
                    conflicts.push(format!(
                        "container {} already mounts volume {} at {}",
                        container.name, mount.name, mount.mount_path
                    ));
                } else if paths_overlap(&mount.mount_path, &injection.mount_path) {
                    conflicts.push(format!(
                        "container {} mounts volume {} at {}, which overlaps {}",
                        container.name, mount.name, mount.mount_path, injection.mount_path
                    ));
                }
            }
            for device in devices {
                if paths_overlap(&device.device_path, &injection.mount_path) {
                    conflicts.push(format!(
                        "container {} has device {} at {}, which overlaps {}",
                        container.name, device.name, device.device_path, injection.mount_path
                    ));
                }
            }
            if !present {
                missing.push(injection.volume_mount());
            }
        }
        if !missing.is_empty() {
            containers.push(ContainerPlan {
                kind,
                index,
                name: container.name.clone(),
                has_mounts: container.volume_mounts.is_some(),
                missing,
            });
        }
    }

    if !conflicts.is_empty() {
        return Decision::Conflict { conflicts };
    }
    if missing_volumes.is_empty() && containers.is_empty() {
        return Decision::Unchanged {
            reason: "already injected".to_owned(),
        };
    }
    Decision::Inject {
        has_volumes: spec.volumes.is_some(),
        missing_volumes,
        containers,
    }
}

/// `disabled` or `false`, in any case: what a user writes to say no.
fn is_opt_out(value: &str) -> bool {
    ["disabled", "false"]
        .iter()
        .any(|no| value.trim().eq_ignore_ascii_case(no))
}

fn normalized(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    }
}

/// Whether mounting at `a` and at `b` in one container would put one inside the other: the same path,
/// or one an ancestor of the other (`/` excepted: everything is below it).
fn paths_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (normalized(a), normalized(b));
    if a == "/" || b == "/" {
        return false;
    }
    let below = |inner: &str, outer: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('/'))
    };
    a == b || below(a, b) || below(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_paths_are_the_same_path_or_one_inside_the_other() {
        assert!(paths_overlap("/proc/meminfo", "/proc/meminfo/"));
        assert!(paths_overlap("/sys", "/sys/devices/system/cpu/online"));
        assert!(paths_overlap(
            "/sys/devices/system/cpu/online",
            "/sys/devices/system"
        ));
        assert!(!paths_overlap("/proc/meminfo2", "/proc/meminfo"));
        assert!(!paths_overlap("/proc/stat", "/proc/meminfo"));
        assert!(!paths_overlap("/", "/proc/meminfo"));
        assert!(!paths_overlap("/data", "/proc/meminfo"));
    }

    #[test]
    fn opting_out_takes_disabled_or_false_in_any_case() {
        for no in ["disabled", "false", "Disabled", " FALSE "] {
            assert!(is_opt_out(no), "{no}");
        }
        for other in ["enabled", "true", "", "no-thanks"] {
            assert!(!is_opt_out(other), "{other}");
        }
    }

    #[test]
    fn every_served_file_gets_a_valid_volume_name() {
        let config = InjectionConfig {
            files: ServedFile::ALL.to_vec(),
            host_dir_mount_path: Some("/var/lib/cgview".to_owned()),
            ..InjectionConfig::default()
        };
        let injections = config.injections();
        assert_eq!(injections.len(), ServedFile::ALL.len() + 1);
        for injection in &injections {
            let name = &injection.volume_name;
            // A DNS-1123 label: what Kubernetes takes as a volume name.
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
        }
        let mut names: Vec<_> = injections.iter().map(|i| &i.volume_name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), injections.len());
    }
}
