//! Which containers get cgview's binds, and the mounts that give them. Pure: the pod and container the
//! runtime describes and the configuration in, a decision out.

use crate::proto::{Container, Mount, PodSandbox};
use cgview_core::catalog::{Bound, CONTAINER_PATHS};
use std::path::{Path, PathBuf};

/// Pod annotation that opts a pod in (`enabled`, `true`) or out (`disabled`, `false`), whatever the
/// default; the same one the admission webhook reads.
pub const INJECT_ANNOTATION: &str = "cgview.io/inject";

/// The options of every bind the plugin adds: read-only, and nothing in it can be a set-id program, a
/// device or an executable.
pub const BIND_OPTIONS: [&str; 5] = ["bind", "ro", "nosuid", "nodev", "noexec"];

/// The paths the plugin binds unless told otherwise: what runc accepts under `/proc` and the CPU
/// directory, from the catalog the webhook and `docker-args` use.
pub fn default_bound() -> Vec<Bound> {
    CONTAINER_PATHS
        .iter()
        .filter(|path| path.nri_default)
        .map(|path| path.bound)
        .collect()
}

/// One `--nri-files` entry: a path a container binds (`proc/meminfo`, `/sys/devices/system/cpu`).
pub fn parse_bound(text: &str) -> Result<Bound, String> {
    let name = text.trim().trim_start_matches('/');
    CONTAINER_PATHS
        .iter()
        .map(|path| path.bound)
        .find(|bound| bound.tree_path() == name)
        .ok_or_else(|| {
            let known: Vec<&str> = CONTAINER_PATHS
                .iter()
                .map(|p| p.bound.tree_path())
                .collect();
            format!(
                "{text:?} is not a path cgview binds; choose from {}",
                known.join(", ")
            )
        })
}

/// Which pods are in, beyond their own annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Only pods of these namespaces (none listed: every namespace).
    pub namespaces: Vec<String>,
    /// Never pods of these namespaces, whatever their annotation (`kube-system` unless told otherwise).
    pub skip_namespaces: Vec<String>,
    /// Whether a pod without the annotation gets the binds.
    pub inject_by_default: bool,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            namespaces: Vec::new(),
            skip_namespaces: vec!["kube-system".to_owned()],
            inject_by_default: true,
        }
    }
}

/// Why a container got no binds; the label of its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// The pod's annotation says `disabled`.
    OptedOut,
    /// The pod's namespace is skipped.
    NamespaceSkipped,
    /// Namespaces are listed and the pod's is not among them.
    NamespaceNotListed,
    /// No annotation, and the default is off.
    DefaultOff,
    /// The container already mounts one of the paths (or something below one).
    AlreadyMounted,
    /// cgview did not serve, and the policy is to start the container anyway.
    NotServed,
}

impl SkipReason {
    pub const ALL: [SkipReason; 6] = [
        SkipReason::OptedOut,
        SkipReason::NamespaceSkipped,
        SkipReason::NamespaceNotListed,
        SkipReason::DefaultOff,
        SkipReason::AlreadyMounted,
        SkipReason::NotServed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SkipReason::OptedOut => "opted_out",
            SkipReason::NamespaceSkipped => "namespace_skipped",
            SkipReason::NamespaceNotListed => "namespace_not_listed",
            SkipReason::DefaultOff => "default_off",
            SkipReason::AlreadyMounted => "already_mounted",
            SkipReason::NotServed => "not_served",
        }
    }
}

/// What to do with one container at its creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Inject,
    Skip { reason: SkipReason, detail: String },
}

/// Whether the container `container` of `pod` is one to bind, before looking at whether cgview serves.
pub fn select(
    selection: &Selection,
    binds: &[Mount],
    pod: &PodSandbox,
    container: &Container,
) -> Decision {
    let namespace = pod.namespace.as_str();
    let skip = |reason, detail: String| Decision::Skip { reason, detail };
    if selection.skip_namespaces.iter().any(|n| n == namespace) {
        return skip(
            SkipReason::NamespaceSkipped,
            format!("namespace {namespace} is skipped"),
        );
    }
    if !selection.namespaces.is_empty() && !selection.namespaces.iter().any(|n| n == namespace) {
        return skip(
            SkipReason::NamespaceNotListed,
            format!(
                "namespace {namespace} is not one of {}",
                selection.namespaces.join(", ")
            ),
        );
    }
    match pod
        .annotations
        .get(INJECT_ANNOTATION)
        .map(|v| annotation_says(v))
    {
        Some(Some(false)) => {
            return skip(
                SkipReason::OptedOut,
                format!("opted out by annotation {INJECT_ANNOTATION}"),
            )
        }
        Some(Some(true)) => {}
        Some(None) | None if !selection.inject_by_default => {
            return skip(
                SkipReason::DefaultOff,
                format!(
                    "no {INJECT_ANNOTATION}=enabled annotation and injection is off by default"
                ),
            )
        }
        Some(None) | None => {}
    }
    let clashes: Vec<String> = container
        .mounts
        .iter()
        .filter(|mount| {
            binds
                .iter()
                .any(|bind| shadows(&mount.destination, &bind.destination))
        })
        .map(|mount| mount.destination.clone())
        .collect();
    if !clashes.is_empty() {
        return skip(
            SkipReason::AlreadyMounted,
            format!("it already mounts {}", clashes.join(", ")),
        );
    }
    Decision::Inject
}

/// `Some(true)` for `enabled`/`true`, `Some(false)` for `disabled`/`false` (any case), `None` for
/// anything else (the default applies).
pub fn annotation_says(value: &str) -> Option<bool> {
    let value = value.trim();
    if ["enabled", "true"]
        .iter()
        .any(|v| value.eq_ignore_ascii_case(v))
    {
        Some(true)
    } else if ["disabled", "false"]
        .iter()
        .any(|v| value.eq_ignore_ascii_case(v))
    {
        Some(false)
    } else {
        None
    }
}

/// The mounts that bind `bound` from cgview's tree at `mount_point` over the same paths in the container.
pub fn bind_mounts(mount_point: &Path, bound: &[Bound]) -> Vec<Mount> {
    bound
        .iter()
        .map(|bound| Mount {
            destination: format!("/{}", bound.tree_path()),
            r#type: "bind".to_owned(),
            source: source_of(mount_point, *bound)
                .to_string_lossy()
                .into_owned(),
            options: BIND_OPTIONS.iter().map(|o| (*o).to_owned()).collect(),
        })
        .collect()
}

fn source_of(mount_point: &Path, bound: Bound) -> PathBuf {
    mount_point.join(bound.tree_path())
}

/// Whether a mount the container has at `existing` would hide, or be hidden by, a bind at `ours`: the
/// same path or one below ours. A mount above ours (`/proc`, `/sys`) is the container's own file
/// system, which the bind goes over.
pub fn shadows(existing: &str, ours: &str) -> bool {
    let (existing, ours) = (normalized(existing), normalized(ours));
    existing == ours
        || existing
            .strip_prefix(ours)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn normalized(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn pod(namespace: &str, annotation: Option<&str>) -> PodSandbox {
        PodSandbox {
            namespace: namespace.to_owned(),
            annotations: annotation
                .map(|v| HashMap::from([(INJECT_ANNOTATION.to_owned(), v.to_owned())]))
                .unwrap_or_default(),
            ..PodSandbox::default()
        }
    }

    fn container(mounts: &[&str]) -> Container {
        Container {
            mounts: mounts
                .iter()
                .map(|d| Mount {
                    destination: (*d).to_owned(),
                    ..Mount::default()
                })
                .collect(),
            ..Container::default()
        }
    }

    fn binds() -> Vec<Mount> {
        bind_mounts(Path::new("/var/lib/cgview"), &default_bound())
    }

    fn reason(decision: Decision) -> Option<SkipReason> {
        match decision {
            Decision::Inject => None,
            Decision::Skip { reason, .. } => Some(reason),
        }
    }

    #[test]
    fn the_default_binds_are_the_proc_files_runc_accepts_and_the_cpu_directory() {
        let bound: Vec<&str> = default_bound().iter().map(|b| b.tree_path()).collect();
        assert_eq!(
            bound,
            [
                "proc/cpuinfo",
                "proc/meminfo",
                "proc/stat",
                "proc/uptime",
                "proc/diskstats",
                "proc/swaps",
                "proc/loadavg",
                "sys/devices/system/cpu"
            ]
        );
        let mounts = binds();
        assert_eq!(mounts[1].source, "/var/lib/cgview/proc/meminfo");
        assert_eq!(mounts[1].destination, "/proc/meminfo");
        assert_eq!(mounts[1].r#type, "bind");
        assert_eq!(
            mounts[1].options,
            ["bind", "ro", "nosuid", "nodev", "noexec"]
        );
    }

    #[test]
    fn selection_follows_namespace_lists_then_annotation_then_default() {
        let on = Selection::default();
        let off = Selection {
            inject_by_default: false,
            ..Selection::default()
        };
        let listed = Selection {
            namespaces: vec!["apps".to_owned()],
            ..Selection::default()
        };
        let c = container(&["/proc", "/sys", "/dev", "/etc/hosts"]);
        let b = binds();
        assert_eq!(select(&on, &b, &pod("apps", None), &c), Decision::Inject);
        assert_eq!(
            reason(select(&on, &b, &pod("apps", Some("disabled")), &c)),
            Some(SkipReason::OptedOut)
        );
        assert_eq!(
            reason(select(&on, &b, &pod("apps", Some("FALSE")), &c)),
            Some(SkipReason::OptedOut)
        );
        assert_eq!(
            reason(select(&off, &b, &pod("apps", None), &c)),
            Some(SkipReason::DefaultOff)
        );
        assert_eq!(
            reason(select(&off, &b, &pod("apps", Some("maybe")), &c)),
            Some(SkipReason::DefaultOff)
        );
        assert_eq!(
            select(&off, &b, &pod("apps", Some("enabled")), &c),
            Decision::Inject
        );
        assert_eq!(
            reason(select(&on, &b, &pod("kube-system", Some("enabled")), &c)),
            Some(SkipReason::NamespaceSkipped)
        );
        assert_eq!(
            reason(select(&listed, &b, &pod("other", None), &c)),
            Some(SkipReason::NamespaceNotListed)
        );
        assert_eq!(
            select(&listed, &b, &pod("apps", None), &c),
            Decision::Inject
        );
        let asked = Selection {
            skip_namespaces: Vec::new(),
            ..Selection::default()
        };
        assert_eq!(
            select(&asked, &b, &pod("kube-system", None), &c),
            Decision::Inject
        );
    }

    #[test]
    fn a_container_mounting_one_of_the_paths_or_below_is_skipped_naming_them() {
        let b = binds();
        for existing in [
            "/proc/meminfo",
            "/proc/meminfo/",
            "/sys/devices/system/cpu/online",
        ] {
            let decision = select(
                &Selection::default(),
                &b,
                &pod("apps", None),
                &container(&[existing]),
            );
            match decision {
                Decision::Skip {
                    reason: SkipReason::AlreadyMounted,
                    detail,
                } => assert!(detail.contains(existing), "{detail}"),
                other => panic!("{existing}: {other:?}"),
            }
        }
        for fine in [
            "/proc",
            "/sys",
            "/sys/devices/system",
            "/proc/meminfo2",
            "/",
        ] {
            assert_eq!(
                select(
                    &Selection::default(),
                    &b,
                    &pod("apps", None),
                    &container(&[fine])
                ),
                Decision::Inject,
                "{fine}"
            );
        }
    }

    #[test]
    fn parse_bound_takes_tree_and_container_paths_and_names_the_choices() {
        assert_eq!(
            parse_bound("/proc/meminfo").unwrap().tree_path(),
            "proc/meminfo"
        );
        assert_eq!(
            parse_bound("sys/devices/system/cpu").unwrap().tree_path(),
            "sys/devices/system/cpu"
        );
        let error = parse_bound("proc/vmstat").unwrap_err();
        assert!(error.contains("proc/meminfo"), "{error}");
    }
}
