//! The protobuf messages the plugin sends and reads: ttrpc's envelope and the part of NRI's API
//! (`pkg/api/api.proto`, package `nri.pkg.api.v1alpha1`) it uses. Field numbers and types are the
//! protocol's; a field left out here is skipped when decoding (protobuf's rule for unknown fields), so a
//! newer runtime's additions pass without harm. Enums are kept as their `int32` wire values.

use std::collections::HashMap;

// ---- ttrpc (`request.proto`) and google.rpc.Status ----

/// A ttrpc call: which method, and its NRI message encoded in `payload`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    #[prost(string, tag = "1")]
    pub service: String,
    #[prost(string, tag = "2")]
    pub method: String,
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    /// The caller's deadline for the answer, in nanoseconds (0: none).
    #[prost(int64, tag = "4")]
    pub timeout_nano: i64,
    #[prost(message, repeated, tag = "5")]
    pub metadata: Vec<KeyValue>,
}

/// A ttrpc answer: a status (absent or code 0 for success) and the method's reply message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
}

/// `google.rpc.Status` without its `details`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// ttrpc's and NRI's `KeyValue` (the same shape in both).
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

// ---- NRI: registration and configuration ----

#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RegisterPluginRequest {
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    #[prost(string, tag = "2")]
    pub plugin_idx: String,
    #[prost(string, tag = "3")]
    pub nri_version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfigureRequest {
    /// The plugin's configuration from the runtime's configuration, if any (cgview takes its own from
    /// the command line and ignores this).
    #[prost(string, tag = "1")]
    pub config: String,
    #[prost(string, tag = "2")]
    pub runtime_name: String,
    #[prost(string, tag = "3")]
    pub runtime_version: String,
    /// Milliseconds.
    #[prost(int64, tag = "4")]
    pub registration_timeout: i64,
    /// Milliseconds.
    #[prost(int64, tag = "5")]
    pub request_timeout: i64,
    #[prost(string, tag = "6")]
    pub nri_version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfigureResponse {
    /// The subscribed events' mask ([`crate::protocol::event_bit`]).
    #[prost(int32, tag = "2")]
    pub events: i32,
}

/// The existing pods and containers, possibly over several requests (`more` set on all but the last).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SynchronizeRequest {
    #[prost(message, repeated, tag = "1")]
    pub pods: Vec<PodSandbox>,
    #[prost(message, repeated, tag = "2")]
    pub containers: Vec<Container>,
    #[prost(bool, tag = "3")]
    pub more: bool,
}

/// cgview never updates running containers (mounts cannot be added to them), so `update` stays empty;
/// `more` echoes the request's.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SynchronizeResponse {
    #[prost(message, repeated, tag = "1")]
    pub update: Vec<ContainerUpdate>,
    #[prost(bool, tag = "2")]
    pub more: bool,
}

/// Only its id is named: cgview sends none.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerUpdate {
    #[prost(string, tag = "1")]
    pub container_id: String,
}

// ---- NRI: container events ----

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateContainerRequest {
    #[prost(message, optional, tag = "1")]
    pub pod: Option<PodSandbox>,
    #[prost(message, optional, tag = "2")]
    pub container: Option<Container>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateContainerResponse {
    #[prost(message, optional, tag = "1")]
    pub adjust: Option<ContainerAdjustment>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RemoveContainerRequest {
    #[prost(message, optional, tag = "1")]
    pub pod: Option<PodSandbox>,
    #[prost(message, optional, tag = "2")]
    pub container: Option<Container>,
}

/// `StateChangeEvent`, answered with `Empty`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StateChangeEvent {
    #[prost(int32, tag = "1")]
    pub event: i32,
    #[prost(message, optional, tag = "2")]
    pub pod: Option<PodSandbox>,
    #[prost(message, optional, tag = "3")]
    pub container: Option<Container>,
}

/// What the plugin changes in a container being created: mounts and, with `--nri-seccomp-socket`, the
/// seccomp policy.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerAdjustment {
    #[prost(map = "string, string", tag = "2")]
    pub annotations: HashMap<String, String>,
    #[prost(message, repeated, tag = "3")]
    pub mounts: Vec<Mount>,
    #[prost(message, optional, tag = "6")]
    pub linux: Option<LinuxContainerAdjustment>,
}

/// `LinuxContainerAdjustment`: only `seccomp_policy` (field 6, NRI 0.10+). The runtime replaces the
/// container's whole `linux.seccomp` with it (`AdjustSeccompPolicy` in NRI's `runtime-tools/generate`),
/// so it must be the complete policy, not a difference.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainerAdjustment {
    #[prost(message, optional, tag = "6")]
    pub seccomp_policy: Option<LinuxSeccomp>,
}

/// `LinuxSeccomp` (NRI 0.10+): the OCI `linux.seccomp`, its actions, architectures and flags as the
/// runtime-spec spells them (`SCMP_ACT_ALLOW`, `SCMP_ARCH_X86_64`, `SECCOMP_FILTER_FLAG_LOG`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxSeccomp {
    #[prost(string, tag = "1")]
    pub default_action: String,
    #[prost(message, optional, tag = "2")]
    pub default_errno: Option<OptionalUInt32>,
    #[prost(string, repeated, tag = "3")]
    pub architectures: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub flags: Vec<String>,
    #[prost(string, tag = "5")]
    pub listener_path: String,
    #[prost(string, tag = "6")]
    pub listener_metadata: String,
    #[prost(message, repeated, tag = "7")]
    pub syscalls: Vec<LinuxSyscall>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxSyscall {
    #[prost(string, repeated, tag = "1")]
    pub names: Vec<String>,
    #[prost(string, tag = "2")]
    pub action: String,
    #[prost(message, optional, tag = "3")]
    pub errno_ret: Option<OptionalUInt32>,
    #[prost(message, repeated, tag = "4")]
    pub args: Vec<LinuxSeccompArg>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxSeccompArg {
    #[prost(uint32, tag = "1")]
    pub index: u32,
    #[prost(uint64, tag = "2")]
    pub value: u64,
    #[prost(uint64, tag = "3")]
    pub value_two: u64,
    #[prost(string, tag = "4")]
    pub op: String,
}

// ---- NRI: pods and containers ----

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandbox {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub uid: String,
    #[prost(string, tag = "4")]
    pub namespace: String,
    #[prost(map = "string, string", tag = "5")]
    pub labels: HashMap<String, String>,
    #[prost(map = "string, string", tag = "6")]
    pub annotations: HashMap<String, String>,
    #[prost(string, tag = "7")]
    pub runtime_handler: String,
    #[prost(message, optional, tag = "8")]
    pub linux: Option<LinuxPodSandbox>,
    #[prost(uint32, tag = "9")]
    pub pid: u32,
    #[prost(string, repeated, tag = "10")]
    pub ips: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxPodSandbox {
    #[prost(message, optional, tag = "1")]
    pub pod_overhead: Option<LinuxResources>,
    #[prost(message, optional, tag = "2")]
    pub pod_resources: Option<LinuxResources>,
    /// The pod's cgroup: a cgroupfs path (`/kubepods/burstable/pod<uid>`) or a systemd slice
    /// (`kubepods-burstable-pod<uid>.slice`).
    #[prost(string, tag = "3")]
    pub cgroup_parent: String,
    #[prost(string, tag = "4")]
    pub cgroups_path: String,
    #[prost(message, repeated, tag = "5")]
    pub namespaces: Vec<LinuxNamespace>,
    #[prost(message, optional, tag = "6")]
    pub resources: Option<LinuxResources>,
}

/// `ContainerState`: 1 created, 2 paused, 3 running, 4 stopped.
pub const CONTAINER_RUNNING: i32 = 3;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Container {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub pod_sandbox_id: String,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(int32, tag = "4")]
    pub state: i32,
    #[prost(map = "string, string", tag = "5")]
    pub labels: HashMap<String, String>,
    #[prost(map = "string, string", tag = "6")]
    pub annotations: HashMap<String, String>,
    #[prost(string, repeated, tag = "7")]
    pub args: Vec<String>,
    #[prost(string, repeated, tag = "8")]
    pub env: Vec<String>,
    /// The mounts the container has so far (the runtime's and, at creation, earlier plugins').
    #[prost(message, repeated, tag = "9")]
    pub mounts: Vec<Mount>,
    #[prost(message, optional, tag = "11")]
    pub linux: Option<LinuxContainer>,
    #[prost(uint32, tag = "12")]
    pub pid: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Mount {
    #[prost(string, tag = "1")]
    pub destination: String,
    #[prost(string, tag = "2")]
    pub r#type: String,
    #[prost(string, tag = "3")]
    pub source: String,
    #[prost(string, repeated, tag = "4")]
    pub options: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainer {
    #[prost(message, repeated, tag = "1")]
    pub namespaces: Vec<LinuxNamespace>,
    #[prost(message, optional, tag = "3")]
    pub resources: Option<LinuxResources>,
    /// The container's cgroup: `<parent>/<id>` with cgroupfs, `<slice>:cri-containerd:<id>` with
    /// systemd. Kept with the container (see [`crate::registry`]).
    #[prost(string, tag = "5")]
    pub cgroups_path: String,
    /// The seccomp policy the container is created with so far (the kubelet's profile as the runtime
    /// resolved it, then earlier plugins' adjustments); absent when it runs unconfined (NRI 0.10+; an
    /// older runtime never sends it).
    #[prost(message, optional, tag = "8")]
    pub seccomp_policy: Option<LinuxSeccomp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxNamespace {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub path: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxResources {
    #[prost(message, optional, tag = "1")]
    pub memory: Option<LinuxMemory>,
    #[prost(message, optional, tag = "2")]
    pub cpu: Option<LinuxCpu>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxMemory {
    #[prost(message, optional, tag = "1")]
    pub limit: Option<OptionalInt64>,
    #[prost(message, optional, tag = "3")]
    pub swap: Option<OptionalInt64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxCpu {
    #[prost(message, optional, tag = "1")]
    pub shares: Option<OptionalUInt64>,
    #[prost(message, optional, tag = "2")]
    pub quota: Option<OptionalInt64>,
    #[prost(message, optional, tag = "3")]
    pub period: Option<OptionalUInt64>,
    #[prost(string, tag = "6")]
    pub cpus: String,
    #[prost(string, tag = "7")]
    pub mems: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OptionalInt64 {
    #[prost(int64, tag = "1")]
    pub value: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OptionalUInt32 {
    #[prost(uint32, tag = "1")]
    pub value: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OptionalUInt64 {
    #[prost(uint64, tag = "1")]
    pub value: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn field_numbers_match_the_protocol_bytes() {
        // RegisterPluginRequest{plugin_name: "cgview", plugin_idx: "10", NRI_version: "v"}: fields 1, 2, 3
        // as length-delimited (wire type 2), so tags 0x0a, 0x12, 0x1a.
        let bytes = RegisterPluginRequest {
            plugin_name: "cgview".into(),
            plugin_idx: "10".into(),
            nri_version: "v".into(),
        }
        .encode_to_vec();
        assert_eq!(
            bytes,
            b"\x0a\x06cgview\x12\x0210\x1a\x01v".to_vec(),
            "{bytes:x?}"
        );
        // ConfigureResponse.events is field 2, a varint: tag 0x10.
        let bytes = ConfigureResponse { events: 0x408 }.encode_to_vec();
        assert_eq!(bytes, vec![0x10, 0x88, 0x08]);
        // ContainerAdjustment.mounts is field 3; Mount.destination 1, type 2, source 3, options 4.
        let bytes = ContainerAdjustment {
            annotations: HashMap::new(),
            linux: None,
            mounts: vec![Mount {
                destination: "/d".into(),
                r#type: "bind".into(),
                source: "/s".into(),
                options: vec!["ro".into()],
            }],
        }
        .encode_to_vec();
        assert_eq!(
            bytes,
            b"\x1a\x12\x0a\x02/d\x12\x04bind\x1a\x02/s\x22\x02ro".to_vec()
        );
    }

    #[test]
    fn seccomp_field_numbers_match_the_protocol_bytes() {
        // ContainerAdjustment.linux is field 6 (0x32), LinuxContainerAdjustment.seccomp_policy field 6
        // (0x32); LinuxSeccomp: default_action 1, default_errno 2, architectures 3, flags 4,
        // listener_path 5, listener_metadata 6, syscalls 7; LinuxSyscall: names 1, action 2, errno_ret
        // 3, args 4; LinuxSeccompArg: index 1, value 2, value_two 3 (varints), op 4.
        let policy = LinuxSeccomp {
            default_action: "E".into(),
            default_errno: Some(OptionalUInt32 { value: 1 }),
            architectures: vec!["A".into()],
            flags: vec!["F".into()],
            listener_path: "/p".into(),
            listener_metadata: "m".into(),
            syscalls: vec![LinuxSyscall {
                names: vec!["s".into()],
                action: "N".into(),
                errno_ret: Some(OptionalUInt32 { value: 2 }),
                args: vec![LinuxSeccompArg {
                    index: 1,
                    value: 2,
                    value_two: 3,
                    op: "o".into(),
                }],
            }],
        };
        let policy_bytes: &[u8] = b"\x0a\x01E\x12\x02\x08\x01\x1a\x01A\x22\x01F\x2a\x02/p\x32\x01m\
            \x3a\x15\x0a\x01s\x12\x01N\x1a\x02\x08\x02\x22\x09\x08\x01\x10\x02\x18\x03\x22\x01o";
        assert_eq!(policy.encode_to_vec(), policy_bytes);
        let adjustment = ContainerAdjustment {
            linux: Some(LinuxContainerAdjustment {
                seccomp_policy: Some(policy.clone()),
            }),
            ..ContainerAdjustment::default()
        };
        let mut expected = vec![
            0x32,
            policy_bytes.len() as u8 + 2,
            0x32,
            policy_bytes.len() as u8,
        ];
        expected.extend_from_slice(policy_bytes);
        assert_eq!(adjustment.encode_to_vec(), expected);
        // LinuxContainer.seccomp_policy is field 8 (0x42).
        let linux = LinuxContainer {
            seccomp_policy: Some(policy),
            ..LinuxContainer::default()
        };
        let mut expected = vec![0x42, policy_bytes.len() as u8];
        expected.extend_from_slice(policy_bytes);
        assert_eq!(linux.encode_to_vec(), expected);
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // A Container with field 22 (Image, a message) that cgview does not define, between known ones.
        let mut bytes = Container {
            id: "c1".into(),
            ..Container::default()
        }
        .encode_to_vec();
        bytes.extend_from_slice(b"\xb2\x01\x03\x0a\x01x");
        bytes.extend_from_slice(b"\x1a\x03app");
        let container = Container::decode(bytes.as_slice()).unwrap();
        assert_eq!(container.id, "c1");
        assert_eq!(container.name, "app");
    }
}
