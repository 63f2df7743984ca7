//! The protobuf messages the fake runtime sends and reads, encoded and decoded here by hand from the
//! field numbers of NRI's `pkg/api/api.proto` (package `nri.pkg.api.v1alpha1`) and ttrpc's
//! `request.proto`, independently of `cgview_nri::proto` (the plugin's prost structs): a field number
//! the plugin got wrong shows up as a failed test here, not as two copies of the same mistake.
//!
//! Only what the runtime side needs: it encodes requests (and the answer to `RegisterPlugin`) and
//! decodes answers (and `RegisterPlugin`). Proto3 rules: scalar fields at their default are left out,
//! a present sub-message is written even when empty, a map is a repeated entry message {1: key, 2:
//! value}, unknown fields are skipped when decoding.

use std::collections::BTreeMap;

// ---- encoding ----

/// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A message being encoded.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }

    /// `uint32`/`uint64`, left out at 0.
    pub fn uint(&mut self, field: u32, value: u64) -> &mut Self {
        if value != 0 {
            self.key(field, VARINT);
            self.varint(value);
        }
        self
    }

    /// `int32`/`int64`/enums, left out at 0; negative values take ten bytes (sign-extended).
    pub fn int(&mut self, field: u32, value: i64) -> &mut Self {
        if value != 0 {
            self.key(field, VARINT);
            self.varint(value as u64);
        }
        self
    }

    pub fn boolean(&mut self, field: u32, value: bool) -> &mut Self {
        if value {
            self.key(field, VARINT);
            self.varint(1);
        }
        self
    }

    /// A length-delimited field written even when empty (a repeated element, a present message).
    pub fn bytes_always(&mut self, field: u32, bytes: &[u8]) -> &mut Self {
        self.key(field, LEN);
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
        self
    }

    /// `bytes`, left out when empty.
    pub fn bytes(&mut self, field: u32, bytes: &[u8]) -> &mut Self {
        if !bytes.is_empty() {
            self.bytes_always(field, bytes);
        }
        self
    }

    /// `string`, left out when empty.
    pub fn string(&mut self, field: u32, text: &str) -> &mut Self {
        self.bytes(field, text.as_bytes())
    }

    /// `repeated string`.
    pub fn strings(&mut self, field: u32, texts: &[String]) -> &mut Self {
        for text in texts {
            self.bytes_always(field, text.as_bytes());
        }
        self
    }

    /// A present sub-message.
    pub fn message(&mut self, field: u32, body: &[u8]) -> &mut Self {
        self.bytes_always(field, body)
    }

    /// `map<string, string>`.
    pub fn map(&mut self, field: u32, map: &BTreeMap<String, String>) -> &mut Self {
        for (key, value) in map {
            let mut entry = Writer::new();
            entry.string(1, key).string(2, value);
            self.message(field, &entry.buf);
        }
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

// ---- decoding ----

/// One field as it was on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes
            .get(*at)
            .ok_or_else(|| format!("a varint runs past the end ({} bytes)", bytes.len()))?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a varint longer than ten bytes".to_owned())
}

/// The fields of a message, in wire order; an error for bytes that are not a protobuf message.
pub fn fields(bytes: &[u8]) -> Result<Vec<(u32, Value<'_>)>, String> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let key = read_varint(bytes, &mut at)?;
        let field = u32::try_from(key >> 3).map_err(|_| format!("field number {}", key >> 3))?;
        if field == 0 {
            return Err("field number 0".to_owned());
        }
        let take = |at: &mut usize, n: usize| -> Result<&[u8], String> {
            let end = at
                .checked_add(n)
                .filter(|end| *end <= bytes.len())
                .ok_or_else(|| format!("field {field} runs past the end"))?;
            let slice = &bytes[*at..end];
            *at = end;
            Ok(slice)
        };
        let value = match (key & 7) as u8 {
            VARINT => Value::Varint(read_varint(bytes, &mut at)?),
            FIXED64 => Value::Fixed64(u64::from_le_bytes(take(&mut at, 8)?.try_into().unwrap())),
            LEN => {
                let n = read_varint(bytes, &mut at)?;
                let n = usize::try_from(n).map_err(|_| format!("length {n}"))?;
                Value::Bytes(take(&mut at, n)?)
            }
            FIXED32 => Value::Fixed32(u32::from_le_bytes(take(&mut at, 4)?.try_into().unwrap())),
            other => return Err(format!("field {field} has wire type {other}")),
        };
        out.push((field, value));
    }
    Ok(out)
}

fn as_bytes<'a>(field: u32, value: Value<'a>) -> Result<&'a [u8], String> {
    match value {
        Value::Bytes(bytes) => Ok(bytes),
        other => Err(format!(
            "field {field} should be length-delimited: {other:?}"
        )),
    }
}

fn as_string(field: u32, value: Value<'_>) -> Result<String, String> {
    String::from_utf8(as_bytes(field, value)?.to_vec())
        .map_err(|_| format!("field {field} is not UTF-8"))
}

fn as_varint(field: u32, value: Value<'_>) -> Result<u64, String> {
    match value {
        Value::Varint(v) => Ok(v),
        other => Err(format!("field {field} should be a varint: {other:?}")),
    }
}

// ---- ttrpc (`request.proto`) ----

/// `google.rpc.Status` (code 1, message 2; details 3 ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub code: i32,
    pub message: String,
}

impl Status {
    pub fn encode(&self) -> Vec<u8> {
        Writer::new()
            .int(1, i64::from(self.code))
            .string(2, &self.message)
            .finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Status, String> {
        let mut status = Status::default();
        for (field, value) in fields(bytes)? {
            match field {
                1 => status.code = as_varint(field, value)? as i32,
                2 => status.message = as_string(field, value)?,
                _ => {}
            }
        }
        Ok(status)
    }
}

/// ttrpc's `Request`: service 1, method 2, payload 3, timeout_nano 4, metadata 5.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub service: String,
    pub method: String,
    pub payload: Vec<u8>,
    pub timeout_nano: i64,
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        Writer::new()
            .string(1, &self.service)
            .string(2, &self.method)
            .bytes(3, &self.payload)
            .int(4, self.timeout_nano)
            .finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Request, String> {
        let mut request = Request::default();
        for (field, value) in fields(bytes)? {
            match field {
                1 => request.service = as_string(field, value)?,
                2 => request.method = as_string(field, value)?,
                3 => request.payload = as_bytes(field, value)?.to_vec(),
                4 => request.timeout_nano = as_varint(field, value)? as i64,
                _ => {}
            }
        }
        Ok(request)
    }
}

/// ttrpc's `Response`: status 1, payload 2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub status: Option<Status>,
    pub payload: Vec<u8>,
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        if let Some(status) = &self.status {
            writer.message(1, &status.encode());
        }
        writer.bytes(2, &self.payload).finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Response, String> {
        let mut response = Response::default();
        for (field, value) in fields(bytes)? {
            match field {
                1 => response.status = Some(Status::decode(as_bytes(field, value)?)?),
                2 => response.payload = as_bytes(field, value)?.to_vec(),
                _ => {}
            }
        }
        Ok(response)
    }

    /// The status code: 0 when there is no status (success).
    pub fn code(&self) -> i32 {
        self.status.as_ref().map_or(0, |s| s.code)
    }
}

// ---- NRI: registration and configuration ----

/// `RegisterPluginRequest`: plugin_name 1, plugin_idx 2, NRI_version 3.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterPluginRequest {
    pub plugin_name: String,
    pub plugin_idx: String,
    pub nri_version: String,
}

impl RegisterPluginRequest {
    pub fn decode(bytes: &[u8]) -> Result<RegisterPluginRequest, String> {
        let mut request = RegisterPluginRequest::default();
        for (field, value) in fields(bytes)? {
            match field {
                1 => request.plugin_name = as_string(field, value)?,
                2 => request.plugin_idx = as_string(field, value)?,
                3 => request.nri_version = as_string(field, value)?,
                _ => {}
            }
        }
        Ok(request)
    }
}

/// `ConfigureRequest`: config 1, runtime_name 2, runtime_version 3, registration_timeout 4 (ms),
/// request_timeout 5 (ms), NRI_version 6.
#[derive(Debug, Clone, Default)]
pub struct ConfigureRequest {
    pub config: String,
    pub runtime_name: String,
    pub runtime_version: String,
    pub registration_timeout_ms: i64,
    pub request_timeout_ms: i64,
    pub nri_version: String,
}

impl ConfigureRequest {
    pub fn encode(&self) -> Vec<u8> {
        Writer::new()
            .string(1, &self.config)
            .string(2, &self.runtime_name)
            .string(3, &self.runtime_version)
            .int(4, self.registration_timeout_ms)
            .int(5, self.request_timeout_ms)
            .string(6, &self.nri_version)
            .finish()
    }
}

/// `ConfigureResponse`: events 2, request_timeout 3.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigureResponse {
    pub events: i32,
    pub request_timeout_ms: i64,
}

impl ConfigureResponse {
    pub fn decode(bytes: &[u8]) -> Result<ConfigureResponse, String> {
        let mut response = ConfigureResponse::default();
        for (field, value) in fields(bytes)? {
            match field {
                2 => response.events = as_varint(field, value)? as i32,
                3 => response.request_timeout_ms = as_varint(field, value)? as i64,
                _ => {}
            }
        }
        Ok(response)
    }
}

/// `SynchronizeRequest`: pods 1, containers 2, more 3.
pub fn synchronize_request(pods: &[PodSandbox], containers: &[Container], more: bool) -> Vec<u8> {
    let mut writer = Writer::new();
    for pod in pods {
        writer.message(1, &pod.encode());
    }
    for container in containers {
        writer.message(2, &container.encode());
    }
    writer.boolean(3, more).finish()
}

/// `SynchronizeResponse`: update 1 (repeated ContainerUpdate), more 2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynchronizeResponse {
    pub updates: usize,
    pub more: bool,
}

impl SynchronizeResponse {
    pub fn decode(bytes: &[u8]) -> Result<SynchronizeResponse, String> {
        let mut response = SynchronizeResponse::default();
        for (field, value) in fields(bytes)? {
            match field {
                1 => {
                    as_bytes(field, value)?;
                    response.updates += 1;
                }
                2 => response.more = as_varint(field, value)? != 0,
                _ => {}
            }
        }
        Ok(response)
    }
}

// ---- NRI: container events ----

/// `CreateContainerRequest` and `RemoveContainerRequest` alike: pod 1, container 2.
pub fn container_request(pod: &PodSandbox, container: &Container) -> Vec<u8> {
    Writer::new()
        .message(1, &pod.encode())
        .message(2, &container.encode())
        .finish()
}

/// `CreateContainerResponse`: adjust 1, update 2 (repeated), evict 3 (repeated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateContainerResponse {
    pub adjust: Option<ContainerAdjustment>,
    pub updates: usize,
    pub evictions: usize,
}

impl CreateContainerResponse {
    pub fn decode(bytes: &[u8]) -> Result<CreateContainerResponse, String> {
        let mut response = CreateContainerResponse::default();
        for (field, value) in fields(bytes)? {
            match field {
                1 => response.adjust = Some(ContainerAdjustment::decode(as_bytes(field, value)?)?),
                2 => {
                    as_bytes(field, value)?;
                    response.updates += 1;
                }
                3 => {
                    as_bytes(field, value)?;
                    response.evictions += 1;
                }
                _ => {}
            }
        }
        Ok(response)
    }

    /// The mounts the plugin adds (none without an adjustment).
    pub fn mounts(&self) -> Vec<Mount> {
        self.adjust
            .as_ref()
            .map(|a| a.mounts.clone())
            .unwrap_or_default()
    }
}

/// `ContainerAdjustment`: annotations 2, mounts 3, env 4, hooks 5, linux 6, rlimits 7, CDI_devices 8,
/// args 9. Of `linux` (`LinuxContainerAdjustment`), only `seccomp_policy` (6) is read; the other fields
/// are only noted by number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerAdjustment {
    pub annotations: BTreeMap<String, String>,
    pub mounts: Vec<Mount>,
    /// `linux.seccomp_policy`, as the OCI `linux.seccomp` it becomes.
    pub seccomp: Option<serde_json::Value>,
    /// The numbers of the other fields present (cgview should set none); `linux`'s other fields as
    /// `600 + number`.
    pub other_fields: Vec<u32>,
}

impl ContainerAdjustment {
    pub fn decode(bytes: &[u8]) -> Result<ContainerAdjustment, String> {
        let mut adjust = ContainerAdjustment::default();
        for (field, value) in fields(bytes)? {
            match field {
                2 => {
                    let (mut key, mut text) = (String::new(), String::new());
                    for (f, v) in fields(as_bytes(field, value)?)? {
                        match f {
                            1 => key = as_string(f, v)?,
                            2 => text = as_string(f, v)?,
                            _ => {}
                        }
                    }
                    adjust.annotations.insert(key, text);
                }
                3 => adjust.mounts.push(Mount::decode(as_bytes(field, value)?)?),
                6 => {
                    for (f, v) in fields(as_bytes(field, value)?)? {
                        match f {
                            6 => adjust.seccomp = Some(decode_seccomp(as_bytes(f, v)?)?),
                            other => adjust.other_fields.push(600 + other),
                        }
                    }
                }
                other => adjust.other_fields.push(other),
            }
        }
        Ok(adjust)
    }
}

// ---- NRI: pods and containers ----

/// `Mount`: destination 1, type 2, source 3, options 4.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mount {
    pub destination: String,
    pub r#type: String,
    pub source: String,
    pub options: Vec<String>,
}

impl Mount {
    pub fn new(destination: &str, r#type: &str, source: &str, options: &[&str]) -> Mount {
        Mount {
            destination: destination.to_owned(),
            r#type: r#type.to_owned(),
            source: source.to_owned(),
            options: options.iter().map(|o| (*o).to_owned()).collect(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        Writer::new()
            .string(1, &self.destination)
            .string(2, &self.r#type)
            .string(3, &self.source)
            .strings(4, &self.options)
            .finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Mount, String> {
        let mut mount = Mount::default();
        for (field, value) in fields(bytes)? {
            match field {
                1 => mount.destination = as_string(field, value)?,
                2 => mount.r#type = as_string(field, value)?,
                3 => mount.source = as_string(field, value)?,
                4 => mount.options.push(as_string(field, value)?),
                _ => {}
            }
        }
        Ok(mount)
    }
}

/// `LinuxNamespace`: type 1, path 2.
#[derive(Debug, Clone, Default)]
pub struct LinuxNamespace {
    pub r#type: String,
    pub path: String,
}

impl LinuxNamespace {
    pub fn encode(&self) -> Vec<u8> {
        Writer::new()
            .string(1, &self.r#type)
            .string(2, &self.path)
            .finish()
    }
}

/// `LinuxResources`: memory 1, cpu 2 (the rest left out). `OptionalInt64`/`OptionalUInt64` wrap
/// their value in field 1.
#[derive(Debug, Clone, Default)]
pub struct LinuxResources {
    /// `LinuxMemory.limit` (field 1), bytes.
    pub memory_limit: Option<i64>,
    /// `LinuxCPU.shares` (1), `quota` (2), `period` (3), `cpus` (6), `mems` (7).
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpus: String,
    pub mems: String,
}

fn optional_int(value: i64) -> Vec<u8> {
    Writer::new().int(1, value).finish()
}

fn optional_uint(value: u64) -> Vec<u8> {
    Writer::new().uint(1, value).finish()
}

impl LinuxResources {
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        if let Some(limit) = self.memory_limit {
            let memory = Writer::new().message(1, &optional_int(limit)).finish();
            writer.message(1, &memory);
        }
        let mut cpu = Writer::new();
        if let Some(shares) = self.cpu_shares {
            cpu.message(1, &optional_uint(shares));
        }
        if let Some(quota) = self.cpu_quota {
            cpu.message(2, &optional_int(quota));
        }
        if let Some(period) = self.cpu_period {
            cpu.message(3, &optional_uint(period));
        }
        cpu.string(6, &self.cpus).string(7, &self.mems);
        writer.message(2, &cpu.finish());
        writer.finish()
    }
}

/// `LinuxPodSandbox`: pod_overhead 1, pod_resources 2, cgroup_parent 3, cgroups_path 4, namespaces 5,
/// resources 6.
#[derive(Debug, Clone, Default)]
pub struct LinuxPodSandbox {
    pub pod_resources: Option<LinuxResources>,
    pub cgroup_parent: String,
    pub cgroups_path: String,
    pub namespaces: Vec<LinuxNamespace>,
    pub resources: Option<LinuxResources>,
}

impl LinuxPodSandbox {
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        if let Some(resources) = &self.pod_resources {
            writer.message(2, &resources.encode());
        }
        writer
            .string(3, &self.cgroup_parent)
            .string(4, &self.cgroups_path);
        for namespace in &self.namespaces {
            writer.message(5, &namespace.encode());
        }
        if let Some(resources) = &self.resources {
            writer.message(6, &resources.encode());
        }
        writer.finish()
    }
}

/// `PodSandbox`: id 1, name 2, uid 3, namespace 4, labels 5, annotations 6, runtime_handler 7, linux 8,
/// pid 9, ips 10.
#[derive(Debug, Clone, Default)]
pub struct PodSandbox {
    pub id: String,
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub runtime_handler: String,
    pub linux: Option<LinuxPodSandbox>,
    pub pid: u32,
    pub ips: Vec<String>,
}

impl PodSandbox {
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        writer
            .string(1, &self.id)
            .string(2, &self.name)
            .string(3, &self.uid)
            .string(4, &self.namespace)
            .map(5, &self.labels)
            .map(6, &self.annotations)
            .string(7, &self.runtime_handler);
        if let Some(linux) = &self.linux {
            writer.message(8, &linux.encode());
        }
        writer
            .uint(9, u64::from(self.pid))
            .strings(10, &self.ips)
            .finish()
    }
}

// ---- NRI 0.10+: seccomp ----
//
// `LinuxSeccomp`: default_action 1, default_errno 2 (`OptionalUInt32`), architectures 3, flags 4,
// listener_path 5, listener_metadata 6, syscalls 7. `LinuxSyscall`: names 1, action 2, errno_ret 3
// (`OptionalUInt32`), args 4. `LinuxSeccompArg`: index 1, value 2, value_two 3 (varints), op 4. The
// harness keeps a policy as the OCI `linux.seccomp` JSON it comes from and goes to (as containerd
// converts it both ways).

fn strings_of(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .map(|v| v.as_str().expect("a string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The OCI `linux.seccomp` `policy` as NRI's `LinuxSeccomp`.
pub fn encode_seccomp(policy: &serde_json::Value) -> Vec<u8> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let mut writer = Writer::new();
    writer.string(1, &text(&policy["defaultAction"]));
    if let Some(errno) = policy["defaultErrnoRet"].as_u64() {
        writer.message(2, &Writer::new().uint(1, errno).finish());
    }
    writer
        .strings(3, &strings_of(&policy["architectures"]))
        .strings(4, &strings_of(&policy["flags"]))
        .string(5, &text(&policy["listenerPath"]))
        .string(6, &text(&policy["listenerMetadata"]));
    for rule in policy["syscalls"].as_array().into_iter().flatten() {
        let mut encoded = Writer::new();
        encoded
            .strings(1, &strings_of(&rule["names"]))
            .string(2, &text(&rule["action"]));
        if let Some(errno) = rule["errnoRet"].as_u64() {
            encoded.message(3, &Writer::new().uint(1, errno).finish());
        }
        for arg in rule["args"].as_array().into_iter().flatten() {
            let arg = Writer::new()
                .uint(1, arg["index"].as_u64().unwrap_or(0))
                .uint(2, arg["value"].as_u64().unwrap_or(0))
                .uint(3, arg["valueTwo"].as_u64().unwrap_or(0))
                .string(4, &text(&arg["op"]))
                .finish();
            encoded.message(4, &arg);
        }
        writer.message(7, &encoded.finish());
    }
    writer.finish()
}

/// An `OptionalUInt32`'s value.
fn optional_u32(bytes: &[u8]) -> Result<u64, String> {
    let mut value = 0;
    for (f, v) in fields(bytes)? {
        if f == 1 {
            value = as_varint(f, v)?;
        }
    }
    Ok(value)
}

/// NRI's `LinuxSeccomp` as the OCI `linux.seccomp` the runtime writes into the bundle (empty fields
/// left out, as the runtime-spec's `omitempty`).
pub fn decode_seccomp(bytes: &[u8]) -> Result<serde_json::Value, String> {
    use serde_json::{json, Map, Value as Json};
    let mut policy = Map::new();
    let push = |map: &mut Map<String, Json>, key: &str, text: String| {
        map.entry(key)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap()
            .push(text.into());
    };
    for (field, value) in fields(bytes)? {
        match field {
            1 => drop(policy.insert("defaultAction".into(), as_string(field, value)?.into())),
            2 => drop(policy.insert(
                "defaultErrnoRet".into(),
                optional_u32(as_bytes(field, value)?)?.into(),
            )),
            3 => push(&mut policy, "architectures", as_string(field, value)?),
            4 => push(&mut policy, "flags", as_string(field, value)?),
            5 => drop(policy.insert("listenerPath".into(), as_string(field, value)?.into())),
            6 => drop(policy.insert("listenerMetadata".into(), as_string(field, value)?.into())),
            7 => {
                let mut rule = Map::new();
                for (f, v) in fields(as_bytes(field, value)?)? {
                    match f {
                        1 => push(&mut rule, "names", as_string(f, v)?),
                        2 => drop(rule.insert("action".into(), as_string(f, v)?.into())),
                        3 => drop(
                            rule.insert("errnoRet".into(), optional_u32(as_bytes(f, v)?)?.into()),
                        ),
                        4 => {
                            let mut arg = json!({"index": 0, "value": 0, "valueTwo": 0, "op": ""});
                            for (af, av) in fields(as_bytes(f, v)?)? {
                                match af {
                                    1 => arg["index"] = as_varint(af, av)?.into(),
                                    2 => arg["value"] = as_varint(af, av)?.into(),
                                    3 => arg["valueTwo"] = as_varint(af, av)?.into(),
                                    4 => arg["op"] = as_string(af, av)?.into(),
                                    _ => {}
                                }
                            }
                            rule.entry("args")
                                .or_insert_with(|| json!([]))
                                .as_array_mut()
                                .unwrap()
                                .push(arg);
                        }
                        _ => {}
                    }
                }
                policy
                    .entry("syscalls")
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .unwrap()
                    .push(Json::Object(rule));
            }
            _ => {}
        }
    }
    Ok(Json::Object(policy))
}

/// `LinuxContainer`: namespaces 1, devices 2, resources 3, oom_score_adj 4, cgroups_path 5,
/// seccomp_profile 7, seccomp_policy 8 (NRI 0.10+; absent: unconfined).
#[derive(Debug, Clone, Default)]
pub struct LinuxContainer {
    pub namespaces: Vec<LinuxNamespace>,
    pub resources: Option<LinuxResources>,
    pub oom_score_adj: Option<i64>,
    pub cgroups_path: String,
    /// The container's OCI `linux.seccomp`, sent as `seccomp_policy`.
    pub seccomp: Option<serde_json::Value>,
}

impl LinuxContainer {
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        for namespace in &self.namespaces {
            writer.message(1, &namespace.encode());
        }
        if let Some(resources) = &self.resources {
            writer.message(3, &resources.encode());
        }
        if let Some(adj) = self.oom_score_adj {
            writer.message(4, &optional_int(adj));
        }
        writer.string(5, &self.cgroups_path);
        if let Some(policy) = &self.seccomp {
            writer.message(8, &encode_seccomp(policy));
        }
        writer.finish()
    }
}

/// `ContainerState` values.
pub const CONTAINER_CREATED: i32 = 1;
pub const CONTAINER_RUNNING: i32 = 3;

/// `Container`: id 1, pod_sandbox_id 2, name 3, state 4, labels 5, annotations 6, args 7, env 8,
/// mounts 9, hooks 10, linux 11, pid 12.
#[derive(Debug, Clone, Default)]
pub struct Container {
    pub id: String,
    pub pod_sandbox_id: String,
    pub name: String,
    pub state: i32,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub mounts: Vec<Mount>,
    pub linux: Option<LinuxContainer>,
    pub pid: u32,
}

impl Container {
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        writer
            .string(1, &self.id)
            .string(2, &self.pod_sandbox_id)
            .string(3, &self.name)
            .int(4, i64::from(self.state))
            .map(5, &self.labels)
            .map(6, &self.annotations)
            .strings(7, &self.args)
            .strings(8, &self.env);
        for mount in &self.mounts {
            writer.message(9, &mount.encode());
        }
        if let Some(linux) = &self.linux {
            writer.message(11, &linux.encode());
        }
        writer.uint(12, u64::from(self.pid)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness' encoding against bytes worked out by hand from the protobuf encoding rules.
    #[test]
    fn encodings_are_the_protocol_bytes() {
        // Mount{destination "/d", type "bind", source "/s", options ["ro"]}: fields 1-4, wire type 2.
        assert_eq!(
            Mount::new("/d", "bind", "/s", &["ro"]).encode(),
            b"\x0a\x02/d\x12\x04bind\x1a\x02/s\x22\x02ro".to_vec()
        );
        // ConfigureResponse{events: 0x408}: field 2 varint.
        assert_eq!(
            ConfigureResponse::decode(&[0x10, 0x88, 0x08])
                .unwrap()
                .events,
            0x408
        );
        // A negative int32 is ten bytes.
        let status = Status {
            code: -1,
            message: String::new(),
        };
        assert_eq!(status.encode().len(), 11);
        assert_eq!(Status::decode(&status.encode()).unwrap().code, -1);
        // A map entry is a message {1: key, 2: value}.
        let mut labels = BTreeMap::new();
        labels.insert("k".to_owned(), "v".to_owned());
        assert_eq!(
            Writer::new().map(5, &labels).finish(),
            b"\x2a\x06\x0a\x01k\x12\x01v".to_vec()
        );
        // LinuxSeccomp{default_action "E", default_errno {1}, syscalls [{names ["s"], action "N",
        // args [{index 1, value 2, value_two 3, op "o"}]}]}, and back.
        let policy = serde_json::json!({
            "defaultAction": "E", "defaultErrnoRet": 1,
            "syscalls": [{"names": ["s"], "action": "N",
                          "args": [{"index": 1, "value": 2, "valueTwo": 3, "op": "o"}]}]
        });
        let bytes = encode_seccomp(&policy);
        assert_eq!(
            bytes,
            b"\x0a\x01E\x12\x02\x08\x01\x3a\x11\x0a\x01s\x12\x01N\x22\x09\x08\x01\x10\x02\x18\x03\x22\x01o"
                .to_vec()
        );
        assert_eq!(decode_seccomp(&bytes).unwrap(), policy);
        assert!(fields(b"\xff\xff\xff").is_err());
        assert!(fields(b"\x0a\x05ab").is_err());
    }
}
