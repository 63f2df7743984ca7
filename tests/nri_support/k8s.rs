//! Pods and containers as containerd's CRI plugin describes them to NRI plugins for a kubelet's pod:
//! 64-hex-digit ids, the kubelet's labels and annotations, the runtime's default mounts and the
//! kubelet's binds, and cgroup paths in the style of either cgroup driver (systemd slices, or cgroupfs
//! paths under `/kubepods`).

use super::pb::{
    Container, LinuxContainer, LinuxNamespace, LinuxPodSandbox, LinuxResources, Mount, PodSandbox,
    CONTAINER_CREATED,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The kubelet's cgroup driver, which decides how containerd spells cgroup paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupStyle {
    /// `kubepods-burstable-pod<uid with _>.slice` and `<slice>:cri-containerd:<id>`.
    Systemd,
    /// `/kubepods/burstable/pod<uid>` and `<parent>/<id>`.
    Cgroupfs,
}

/// splitmix64 over a process-wide counter: ids distinct within the run and across runs.
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        ^ u64::from(std::process::id()).rotate_left(32)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A container or sandbox id as containerd makes them: 64 lowercase hex digits.
pub fn hex_id() -> String {
    (0..4).map(|_| format!("{:016x}", next_random())).collect()
}

/// A pod UID as the API server makes them (UUID v4).
pub fn uid() -> String {
    let (a, b) = (next_random(), next_random());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The pod's cgroup parent for a Burstable pod.
pub fn cgroup_parent(style: CgroupStyle, uid: &str) -> String {
    match style {
        CgroupStyle::Systemd => format!("kubepods-burstable-pod{}.slice", uid.replace('-', "_")),
        CgroupStyle::Cgroupfs => format!("/kubepods/burstable/pod{uid}"),
    }
}

/// A cgroup path below `parent` for the sandbox or container `id`.
pub fn cgroups_path(style: CgroupStyle, parent: &str, id: &str) -> String {
    match style {
        CgroupStyle::Systemd => format!("{parent}:cri-containerd:{id}"),
        CgroupStyle::Cgroupfs => format!("{parent}/{id}"),
    }
}

/// Resources as the kubelet sets them for a container with these limits (`cpus`: a cpuset, or empty).
pub fn resources(memory: i64, millicpus: i64, cpus: &str) -> LinuxResources {
    LinuxResources {
        memory_limit: Some(memory),
        cpu_shares: Some((millicpus as u64 * 1024 / 1000).max(2)),
        cpu_quota: Some(millicpus * 100),
        cpu_period: Some(100_000),
        cpus: cpus.to_owned(),
        mems: if cpus.is_empty() {
            String::new()
        } else {
            "0".to_owned()
        },
    }
}

/// A running pod sandbox `name` in `namespace`, with `annotations` on top of the kubelet's.
pub fn pod(
    name: &str,
    namespace: &str,
    style: CgroupStyle,
    annotations: &[(&str, &str)],
) -> PodSandbox {
    let id = hex_id();
    let uid = uid();
    let parent = cgroup_parent(style, &uid);
    let mut all_annotations = map(&[
        (
            "kubernetes.io/config.seen",
            "2025-05-07T10:12:41.392817524Z",
        ),
        ("kubernetes.io/config.source", "api"),
    ]);
    all_annotations.extend(map(annotations));
    let netns = format!("/var/run/netns/cni-{}", self::uid());
    PodSandbox {
        id: id.clone(),
        name: name.to_owned(),
        uid: uid.clone(),
        namespace: namespace.to_owned(),
        labels: map(&[
            ("app", name),
            ("io.kubernetes.pod.name", name),
            ("io.kubernetes.pod.namespace", namespace),
            ("io.kubernetes.pod.uid", &uid),
            ("pod-template-hash", "6d4cf56db6"),
        ]),
        annotations: all_annotations,
        runtime_handler: String::new(),
        linux: Some(LinuxPodSandbox {
            pod_resources: Some(resources(300 << 20, 500, "")),
            cgroup_parent: parent.clone(),
            cgroups_path: cgroups_path(style, &parent, &id),
            namespaces: vec![
                LinuxNamespace {
                    r#type: "network".to_owned(),
                    path: netns,
                },
                LinuxNamespace {
                    r#type: "ipc".to_owned(),
                    path: String::new(),
                },
                LinuxNamespace {
                    r#type: "uts".to_owned(),
                    path: String::new(),
                },
            ],
            resources: None,
        }),
        pid: 4000 + (next_random() % 60_000) as u32,
        ips: vec![format!("10.244.1.{}", 2 + next_random() % 250)],
    }
}

/// The mounts containerd's CRI plugin gives a container before plugins see it: the OCI defaults and the
/// kubelet's binds (`/etc/hosts`, the termination log, the service account token...).
pub fn default_mounts(pod: &PodSandbox, container: &str) -> Vec<Mount> {
    let kubelet = format!("/var/lib/kubelet/pods/{}", pod.uid);
    let sandbox = format!(
        "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/{}",
        pod.id
    );
    let shm = format!(
        "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/{}/shm",
        pod.id
    );
    vec![
        Mount::new("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        Mount::new(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        Mount::new(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        Mount::new(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        Mount::new(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        Mount::new(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
        Mount::new(
            "/etc/hosts",
            "bind",
            &format!("{kubelet}/etc-hosts"),
            &["rbind", "rprivate", "rw"],
        ),
        Mount::new(
            "/dev/termination-log",
            "bind",
            &format!("{kubelet}/containers/{container}/5f1b2a3c"),
            &["rbind", "rprivate", "rw"],
        ),
        Mount::new(
            "/etc/hostname",
            "bind",
            &format!("{sandbox}/hostname"),
            &["rbind", "rprivate", "rw"],
        ),
        Mount::new(
            "/etc/resolv.conf",
            "bind",
            &format!("{sandbox}/resolv.conf"),
            &["rbind", "rprivate", "rw"],
        ),
        Mount::new("/dev/shm", "bind", &shm, &["rbind", "rprivate", "rw"]),
        Mount::new(
            "/var/run/secrets/kubernetes.io/serviceaccount",
            "bind",
            &format!("{kubelet}/volumes/kubernetes.io~projected/kube-api-access-x7k2p"),
            &["rbind", "rprivate", "ro"],
        ),
    ]
}

/// Container `name` of `pod` being created, with the runtime's mounts plus `extra_mounts`.
pub fn container(
    pod: &PodSandbox,
    name: &str,
    style: CgroupStyle,
    resources: LinuxResources,
    extra_mounts: Vec<Mount>,
) -> Container {
    let id = hex_id();
    let parent = pod
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.clone())
        .unwrap_or_default();
    let mut mounts = default_mounts(pod, name);
    mounts.extend(extra_mounts);
    let namespace_path = |kind: &str| format!("/proc/{}/ns/{kind}", pod.pid);
    Container {
        id: id.clone(),
        pod_sandbox_id: pod.id.clone(),
        name: name.to_owned(),
        state: CONTAINER_CREATED,
        labels: map(&[
            ("io.kubernetes.container.name", name),
            ("io.kubernetes.pod.name", &pod.name),
            ("io.kubernetes.pod.namespace", &pod.namespace),
            ("io.kubernetes.pod.uid", &pod.uid),
        ]),
        annotations: map(&[
            ("io.kubernetes.container.hash", "8a1b2c3d"),
            ("io.kubernetes.container.restartCount", "0"),
            (
                "io.kubernetes.container.terminationMessagePath",
                "/dev/termination-log",
            ),
            ("io.kubernetes.container.terminationMessagePolicy", "File"),
            ("io.kubernetes.pod.terminationGracePeriod", "30"),
        ]),
        args: vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "exec sleep infinity".to_owned(),
        ],
        env: vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            format!("HOSTNAME={}", pod.name),
            "KUBERNETES_SERVICE_HOST=10.96.0.1".to_owned(),
            "KUBERNETES_SERVICE_PORT=443".to_owned(),
        ],
        mounts,
        linux: Some(LinuxContainer {
            namespaces: vec![
                LinuxNamespace {
                    r#type: "pid".to_owned(),
                    path: String::new(),
                },
                LinuxNamespace {
                    r#type: "ipc".to_owned(),
                    path: namespace_path("ipc"),
                },
                LinuxNamespace {
                    r#type: "uts".to_owned(),
                    path: namespace_path("uts"),
                },
                LinuxNamespace {
                    r#type: "mount".to_owned(),
                    path: String::new(),
                },
                LinuxNamespace {
                    r#type: "network".to_owned(),
                    path: namespace_path("net"),
                },
            ],
            resources: Some(resources),
            oom_score_adj: Some(969),
            cgroups_path: cgroups_path(style, &parent, &id),
            seccomp: None,
        }),
        pid: 0,
    }
}

/// A plain container of `pod` (250 MiB, half a CPU) with the runtime's mounts only.
pub fn plain_container(pod: &PodSandbox, name: &str, style: CgroupStyle) -> Container {
    container(pod, name, style, resources(250 << 20, 500, ""), Vec::new())
}

/// The containers-common profile Podman and CRI-O use as their default.
pub const CONTAINERS_SECCOMP: &str = "/usr/share/containers/seccomp.json";

/// The `RuntimeDefault` seccomp policy of a container with capabilities `caps` on this host, as the
/// runtime resolves it (and sends it to plugins in `LinuxContainer.seccomp_policy`): the OCI
/// `linux.seccomp` from containers-common's profile (`CONTAINERS_SECCOMP`), its architectures for this
/// machine and the rules whose `includes`/`excludes` (capabilities, architectures) hold. `None` when
/// the profile is not installed (apt-get install golang-github-containers-common).
pub fn runtime_default_seccomp(caps: &[String]) -> Option<serde_json::Value> {
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(CONTAINERS_SECCOMP).ok()?).ok()?;
    let (native, go_arch) = match std::env::consts::ARCH {
        "x86_64" => ("SCMP_ARCH_X86_64", "amd64"),
        "aarch64" => ("SCMP_ARCH_AARCH64", "arm64"),
        other => panic!("no seccomp architecture for {other}"),
    };
    let mut architectures = vec![serde_json::Value::from(native)];
    for entry in profile["archMap"].as_array()? {
        if entry["architecture"] == native {
            architectures.extend(entry["subArchitectures"].as_array()?.iter().cloned());
        }
    }
    let has = |list: &serde_json::Value, wanted: &str| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|v| v.as_str() == Some(wanted)))
    };
    let mut syscalls = Vec::new();
    for rule in profile["syscalls"].as_array()? {
        let (includes, excludes) = (&rule["includes"], &rule["excludes"]);
        let arch_ok = includes["arches"].as_array().is_none_or(|a| a.is_empty())
            || has(&includes["arches"], go_arch);
        let arch_excluded = has(&excludes["arches"], go_arch);
        let caps_ok = includes["caps"].as_array().is_none_or(|needed| {
            needed
                .iter()
                .all(|c| caps.iter().any(|have| c == have.as_str()))
        });
        let caps_excluded = caps.iter().any(|have| has(&excludes["caps"], have));
        if !(arch_ok && caps_ok) || arch_excluded || caps_excluded {
            continue;
        }
        let mut out = serde_json::json!({"names": rule["names"], "action": rule["action"]});
        if let Some(errno) = rule["errnoRet"].as_u64() {
            out["errnoRet"] = errno.into();
        }
        if rule["args"].as_array().is_some_and(|a| !a.is_empty()) {
            out["args"] = rule["args"].clone();
        }
        syscalls.push(out);
    }
    let mut policy = serde_json::json!({
        "defaultAction": profile["defaultAction"],
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if let Some(errno) = profile["defaultErrnoRet"].as_u64() {
        policy["defaultErrnoRet"] = errno.into();
    }
    Some(policy)
}
