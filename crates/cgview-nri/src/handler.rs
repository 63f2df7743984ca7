//! The plugin's service: one NRI request in, its answer out. No socket here: [`crate::session`] brings
//! the requests and carries the answers.

use crate::counters::{Counters, ErrorKind};
use crate::policy::{bind_mounts, select, Decision, Selection, SkipReason};
use crate::proto::{
    ConfigureRequest, ConfigureResponse, Container, ContainerAdjustment, CreateContainerRequest,
    CreateContainerResponse, Empty, Mount, PodSandbox, RemoveContainerRequest, StateChangeEvent,
    Status, SynchronizeRequest, SynchronizeResponse, CONTAINER_RUNNING,
};
use crate::proto::{LinuxContainerAdjustment, LinuxSeccomp};
use crate::protocol::{self, code};
use crate::registry::{Registry, Tracked};
use crate::seccomp::{self, SeccompDecision, SeccompSkip};
use crate::serving::{self, Check, ServingWatch};
use cgview_core::catalog::Bound;
use parking_lot::Mutex;
use prost::Message;
use std::path::PathBuf;
use std::sync::Arc;

/// What to do with a selected container while cgview does not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenNotServed {
    /// Create it without the binds (logged and counted as skipped, `not_served`).
    Open,
    /// Refuse its creation with the reason; the kubelet retries with back-off.
    Closed,
}

/// Everything the plugin decides with.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// The name the plugin registers under (letters, digits, `-_.+`).
    pub name: String,
    /// Its two-digit index: the runtime calls plugins in index order.
    pub index: String,
    /// Where cgview is mounted on the host: the binds' sources are below it.
    pub mount_point: PathBuf,
    /// The paths bound into each selected container.
    pub bound: Vec<Bound>,
    pub selection: Selection,
    pub when_not_served: WhenNotServed,
    /// With `--nri-seccomp-socket`: bound containers' seccomp policies also hand `sysinfo` to the
    /// daemon listening there.
    pub seccomp: Option<SeccompTarget>,
}

/// Where the seccomp adjustment sends `sysinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompTarget {
    /// The daemon's `--seccomp-socket`, as the runtime (on the host) reaches it.
    pub socket: PathBuf,
    /// The policy's `listenerMetadata`.
    pub metadata: String,
}

/// An answer the runtime gets as a failed call.
pub fn status(code: i32, message: impl Into<String>) -> Status {
    Status {
        code,
        message: message.into(),
    }
}

/// What a handled request asks of the session besides sending the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    Continue,
    /// The runtime asked the plugin to shut down: end this connection.
    Shutdown,
}

/// The plugin's state across requests and connections.
pub struct Handler {
    config: PluginConfig,
    binds: Vec<Mount>,
    serving: ServingWatch,
    counters: Arc<Counters>,
    registry: Mutex<Registry>,
    /// Whether the seccomp socket is served, asked at each creation that would name it.
    seccomp_served: Option<Check>,
    /// Pods and containers of a `Synchronize` sent in several parts (`more`), gathered until the last.
    pending_sync: Mutex<Option<SynchronizeRequest>>,
}

impl Handler {
    pub fn new(config: PluginConfig, serving: ServingWatch, counters: Arc<Counters>) -> Handler {
        let binds = bind_mounts(&config.mount_point, &config.bound);
        let seccomp_served = config.seccomp.as_ref().map(|target| {
            let socket = target.socket.clone();
            let check: Check = Arc::new(move || serving::socket_listening(&socket));
            check
        });
        Handler {
            config,
            binds,
            serving,
            counters,
            registry: Mutex::new(Registry::default()),
            seccomp_served,
            pending_sync: Mutex::new(None),
        }
    }

    /// Asks `check` instead of connecting to the seccomp socket (tests of the decisions).
    pub fn with_seccomp_check(mut self, check: Check) -> Handler {
        if self.seccomp_served.is_some() {
            self.seccomp_served = Some(check);
        }
        self
    }

    pub fn config(&self) -> &PluginConfig {
        &self.config
    }

    pub fn serving(&self) -> &ServingWatch {
        &self.serving
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The containers known now: what a later cgview can serve per container from, without resolving
    /// the caller (their ids and cgroup paths).
    pub fn tracked(&self) -> Vec<Tracked> {
        self.registry.lock().all()
    }

    /// Answers a call of `method` on the plugin service with `payload`: the encoded reply, or the status
    /// the runtime sees as the call's error.
    pub fn handle(&self, method: &str, payload: &[u8]) -> (Result<Vec<u8>, Status>, After) {
        let reply = match method {
            protocol::METHOD_CONFIGURE => {
                decode(payload).map(|r| self.configure(r).encode_to_vec())
            }
            protocol::METHOD_SYNCHRONIZE => {
                decode(payload).map(|r| self.synchronize(r).encode_to_vec())
            }
            protocol::METHOD_CREATE_CONTAINER => {
                decode(payload).and_then(|r| self.create_container(r).map(|a| a.encode_to_vec()))
            }
            protocol::METHOD_REMOVE_CONTAINER => {
                decode(payload).map(|r: RemoveContainerRequest| {
                    self.remove_container(r);
                    Empty {}.encode_to_vec()
                })
            }
            // Runtimes before NRI 0.12 (containerd up to 2.2, CRI-O up to 1.36) report a removal as
            // a state change, not as a call of its own.
            protocol::METHOD_STATE_CHANGE => decode(payload).map(|event: StateChangeEvent| {
                if event.event == protocol::EVENT_REMOVE_CONTAINER {
                    self.remove_container(RemoveContainerRequest {
                        pod: event.pod,
                        container: event.container,
                    });
                }
                Empty {}.encode_to_vec()
            }),
            protocol::METHOD_SHUTDOWN => {
                tracing::info!("the runtime asked the NRI plugin to shut down");
                return (Ok(Empty {}.encode_to_vec()), After::Shutdown);
            }
            other => Err(status(
                code::UNIMPLEMENTED,
                format!("cgview's NRI plugin does not serve {other}"),
            )),
        };
        if let Err(error) = &reply {
            if error.code != code::FAILED_PRECONDITION {
                self.counters.record_error(ErrorKind::BadRequest);
                tracing::warn!(
                    method,
                    code = error.code,
                    "NRI request failed: {}",
                    error.message
                );
            }
        }
        (reply, After::Continue)
    }

    fn configure(&self, request: ConfigureRequest) -> ConfigureResponse {
        tracing::info!(
            runtime = %request.runtime_name,
            runtime_version = %request.runtime_version,
            nri_version = %request.nri_version,
            registration_timeout_ms = request.registration_timeout,
            request_timeout_ms = request.request_timeout,
            "NRI runtime configured the plugin"
        );
        if !request.config.is_empty() {
            tracing::info!(
                "the runtime's configuration for the plugin is ignored: cgview takes its settings from its command line"
            );
        }
        ConfigureResponse {
            events: protocol::SUBSCRIBED_EVENTS,
        }
    }

    fn synchronize(&self, request: SynchronizeRequest) -> SynchronizeResponse {
        let more = request.more;
        let mut pending = self.pending_sync.lock();
        let gathered = match pending.take() {
            None => request,
            Some(mut earlier) => {
                earlier.pods.extend(request.pods);
                earlier.containers.extend(request.containers);
                earlier
            }
        };
        if more {
            *pending = Some(gathered);
            return SynchronizeResponse {
                update: Vec::new(),
                more,
            };
        }
        drop(pending);
        let mut registry = Registry::default();
        let mut without_view = Vec::new();
        for container in &gathered.containers {
            let pod = gathered
                .pods
                .iter()
                .find(|pod| pod.id == container.pod_sandbox_id)
                .cloned()
                .unwrap_or_default();
            let bound = self.has_binds(container);
            if !bound
                && container.state == CONTAINER_RUNNING
                && select(&self.config.selection, &self.binds, &pod, container) == Decision::Inject
            {
                without_view.push(describe(&pod, container));
            }
            registry.insert(Tracked::of(&pod, container, bound));
        }
        tracing::info!(
            pods = gathered.pods.len(),
            containers = gathered.containers.len(),
            bound = registry.all().iter().filter(|t| t.bound).count(),
            "NRI synchronized with the runtime's existing containers"
        );
        if !without_view.is_empty() {
            tracing::warn!(
                "{} running containers were created while no cgview plugin was registered and keep the host's view until recreated: {}",
                without_view.len(),
                without_view.join(", ")
            );
        }
        self.counters
            .set_synchronized_without_view(without_view.len());
        self.counters.set_tracked(registry.len());
        *self.registry.lock() = registry;
        SynchronizeResponse {
            update: Vec::new(),
            more: false,
        }
    }

    /// Whether `container` already has every bind this plugin would add (it was created with them).
    fn has_binds(&self, container: &Container) -> bool {
        self.binds.iter().all(|bind| {
            container
                .mounts
                .iter()
                .any(|m| m.destination == bind.destination && m.source == bind.source)
        })
    }

    fn create_container(
        &self,
        request: CreateContainerRequest,
    ) -> Result<CreateContainerResponse, Status> {
        let pod = request.pod.unwrap_or_default();
        let Some(container) = request.container else {
            return Err(status(
                code::INVALID_ARGUMENT,
                "CreateContainer without a container",
            ));
        };
        let who = describe(&pod, &container);
        let decision = select(&self.config.selection, &self.binds, &pod, &container);
        let adjust = match decision {
            Decision::Skip { reason, detail } => {
                self.counters.record_skipped(reason);
                if reason == SkipReason::AlreadyMounted {
                    tracing::info!("not binding cgview's files into {who}: {detail}");
                } else {
                    tracing::debug!("not binding cgview's files into {who}: {detail}");
                }
                None
            }
            Decision::Inject => match self.serving.served() {
                Ok(()) => {
                    let policy = self.seccomp_policy(&who, &container)?;
                    self.counters.record_injected();
                    tracing::debug!("binding cgview's files into {who}");
                    Some((self.binds.clone(), policy))
                }
                Err(why) => match self.config.when_not_served {
                    WhenNotServed::Open => {
                        self.counters.record_skipped(SkipReason::NotServed);
                        tracing::warn!(
                            "{who} starts with the host's view: cgview does not serve {} ({why})",
                            self.config.mount_point.display()
                        );
                        None
                    }
                    WhenNotServed::Closed => {
                        self.counters.record_refused();
                        tracing::warn!("refusing to create {who}: cgview does not serve ({why})");
                        return Err(status(
                            code::FAILED_PRECONDITION,
                            format!(
                                "cgview does not serve {} ({why}); {who} would see the host's resources, so its creation is refused (cgview nri --nri-when-not-served closed)",
                                self.config.mount_point.display()
                            ),
                        ));
                    }
                },
            },
        };
        let bound = adjust.is_some();
        {
            let mut registry = self.registry.lock();
            registry.insert(Tracked::of(&pod, &container, bound));
            self.counters.set_tracked(registry.len());
        }
        Ok(CreateContainerResponse {
            adjust: adjust.map(|(mounts, policy)| ContainerAdjustment {
                annotations: Default::default(),
                mounts,
                linux: policy.map(|policy| LinuxContainerAdjustment {
                    seccomp_policy: Some(policy),
                }),
            }),
        })
    }

    /// The seccomp policy a container given the binds is created with, when `--nri-seccomp-socket`
    /// asks for one: its own with `sysinfo` handed to the daemon ([`seccomp::adjust`]), if the socket
    /// is served now (runc fails a container whose listener nobody serves), else as
    /// `--nri-when-not-served` says. `None`: its policy stays as it is.
    fn seccomp_policy(
        &self,
        who: &str,
        container: &Container,
    ) -> Result<Option<LinuxSeccomp>, Status> {
        let (Some(target), Some(served)) = (&self.config.seccomp, &self.seccomp_served) else {
            return Ok(None);
        };
        let current = container
            .linux
            .as_ref()
            .and_then(|linux| linux.seccomp_policy.as_ref());
        let socket = target.socket.to_string_lossy();
        match seccomp::adjust(current, &socket, &target.metadata) {
            SeccompDecision::Leave { reason, detail } => {
                self.counters.record_seccomp_skipped(reason);
                tracing::info!("not handing sysinfo(2) of {who} to cgview: {detail}");
                Ok(None)
            }
            SeccompDecision::Adjust(policy) => match served() {
                Ok(()) => {
                    self.counters.record_seccomp_added();
                    tracing::debug!("handing sysinfo(2) of {who} to cgview at {socket}");
                    Ok(Some(policy))
                }
                Err(why) => match self.config.when_not_served {
                    WhenNotServed::Open => {
                        self.counters.record_seccomp_skipped(SeccompSkip::NotServed);
                        tracing::warn!(
                            "{who} starts with the host's sysinfo(2): cgview does not serve its seccomp socket ({why})"
                        );
                        Ok(None)
                    }
                    WhenNotServed::Closed => {
                        self.counters.record_seccomp_refused();
                        tracing::warn!(
                            "refusing to create {who}: cgview does not serve its seccomp socket ({why})"
                        );
                        Err(status(
                            code::FAILED_PRECONDITION,
                            format!(
                                "cgview does not serve its seccomp socket ({why}); {who} would see the host's sysinfo(2), so its creation is refused (cgview nri --nri-when-not-served closed)"
                            ),
                        ))
                    }
                },
            },
        }
    }

    fn remove_container(&self, request: RemoveContainerRequest) {
        if let Some(container) = request.container {
            let mut registry = self.registry.lock();
            registry.remove(&container.id);
            self.counters.set_tracked(registry.len());
        }
    }
}

fn decode<M: Message + Default>(payload: &[u8]) -> Result<M, Status> {
    M::decode(payload).map_err(|e| {
        status(
            code::INVALID_ARGUMENT,
            format!(
                "cannot decode {}: {e}",
                std::any::type_name::<M>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("the request")
            ),
        )
    })
}

/// `namespace/pod/container` for logs and errors.
fn describe(pod: &PodSandbox, container: &Container) -> String {
    format!(
        "container {}/{}/{} ({})",
        if pod.namespace.is_empty() {
            "?"
        } else {
            &pod.namespace
        },
        if pod.name.is_empty() { "?" } else { &pod.name },
        container.name,
        short_id(&container.id)
    )
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::default_bound;
    use crate::proto::LinuxContainer;
    use std::collections::HashMap;

    fn handler(served: Result<(), String>, when: WhenNotServed) -> Handler {
        Handler::new(
            PluginConfig {
                name: "cgview".into(),
                index: "10".into(),
                mount_point: "/var/lib/cgview".into(),
                bound: default_bound(),
                selection: Selection::default(),
                when_not_served: when,
                seccomp: None,
            },
            ServingWatch::fixed(served),
            Arc::new(Counters::default()),
        )
    }

    /// A handler with `--nri-seccomp-socket /run/cgview/seccomp.sock`, whose socket check says `served`.
    fn seccomp_handler(served: Result<(), String>, when: WhenNotServed) -> Handler {
        let mut h = handler(Ok(()), when);
        h.config.seccomp = Some(SeccompTarget {
            socket: "/run/cgview/seccomp.sock".into(),
            metadata: seccomp::DEFAULT_METADATA.into(),
        });
        h.seccomp_served = Some(Arc::new(|| Ok(())));
        h.with_seccomp_check(Arc::new(move || served.clone()))
    }

    fn create_with(id: &str, policy: Option<LinuxSeccomp>) -> Vec<u8> {
        let mut request =
            CreateContainerRequest::decode(create("apps", id, &[]).as_slice()).unwrap();
        if let Some(linux) = request.container.as_mut().and_then(|c| c.linux.as_mut()) {
            linux.seccomp_policy = policy;
        }
        request.encode_to_vec()
    }

    fn policy_of(reply: &[u8]) -> Option<LinuxSeccomp> {
        CreateContainerResponse::decode(reply)
            .unwrap()
            .adjust
            .and_then(|a| a.linux)
            .and_then(|l| l.seccomp_policy)
    }

    fn runtime_default() -> LinuxSeccomp {
        LinuxSeccomp {
            default_action: "SCMP_ACT_ERRNO".into(),
            syscalls: vec![crate::proto::LinuxSyscall {
                names: vec!["read".into(), "sysinfo".into()],
                action: "SCMP_ACT_ALLOW".into(),
                ..Default::default()
            }],
            ..LinuxSeccomp::default()
        }
    }

    #[test]
    fn with_a_seccomp_socket_the_binds_come_with_the_merged_policy() {
        let h = seccomp_handler(Ok(()), WhenNotServed::Closed);
        let (reply, _) = h.handle(
            "CreateContainer",
            &create_with("c1", Some(runtime_default())),
        );
        let reply = reply.unwrap();
        assert_eq!(mounts_of(&reply).len(), 8);
        let policy = policy_of(&reply).unwrap();
        assert_eq!(policy.listener_path, "/run/cgview/seccomp.sock");
        assert_eq!(policy.listener_metadata, "cgview-sysinfo");
        assert_eq!(policy.syscalls.len(), 2);
        assert_eq!(policy.syscalls[0].names, ["read"]);
        assert_eq!(policy.syscalls[1].names, ["sysinfo"]);
        assert_eq!(policy.syscalls[1].action, "SCMP_ACT_NOTIFY");
        assert_eq!(h.counters().seccomp_added(), 1);
        // Unconfined and foreign listeners: binds, no seccomp adjustment, counted.
        let (reply, _) = h.handle("CreateContainer", &create_with("c2", None));
        let reply = reply.unwrap();
        assert_eq!(mounts_of(&reply).len(), 8);
        assert!(policy_of(&reply).is_none());
        assert_eq!(h.counters().seccomp_skipped(SeccompSkip::Unconfined), 1);
        let foreign = LinuxSeccomp {
            listener_path: "/run/agent.sock".into(),
            ..runtime_default()
        };
        let (reply, _) = h.handle("CreateContainer", &create_with("c3", Some(foreign)));
        assert!(policy_of(&reply.unwrap()).is_none());
        assert_eq!(h.counters().seccomp_skipped(SeccompSkip::HasListener), 1);
        // Not selected: neither binds nor policy, and no seccomp decision counted.
        let (reply, _) = h.handle(
            "CreateContainer",
            &create("apps", "c4", &[("cgview.io/inject", "disabled")]),
        );
        assert!(CreateContainerResponse::decode(reply.unwrap().as_slice())
            .unwrap()
            .adjust
            .is_none());
        assert_eq!(h.counters().seccomp_added(), 1);
        // Without the option, the policy is never touched.
        let plain = handler(Ok(()), WhenNotServed::Closed);
        let (reply, _) = plain.handle(
            "CreateContainer",
            &create_with("c5", Some(runtime_default())),
        );
        assert!(policy_of(&reply.unwrap()).is_none());
    }

    #[test]
    fn a_seccomp_socket_not_served_refuses_when_closed_and_leaves_the_policy_when_open() {
        let closed = seccomp_handler(Err("nothing listens on it".into()), WhenNotServed::Closed);
        let (reply, _) = closed.handle(
            "CreateContainer",
            &create_with("c1", Some(runtime_default())),
        );
        let error = reply.unwrap_err();
        assert_eq!(error.code, code::FAILED_PRECONDITION);
        assert!(
            error.message.contains("seccomp socket"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("nothing listens on it"),
            "{}",
            error.message
        );
        assert_eq!(closed.counters().seccomp_refused(), 1);
        assert_eq!(closed.counters().refused(), 1);
        assert_eq!(closed.counters().injected(), 0);
        assert!(closed.tracked().is_empty());
        // An unconfined container never needs the socket.
        let (reply, _) = closed.handle("CreateContainer", &create_with("c2", None));
        assert_eq!(mounts_of(&reply.unwrap()).len(), 8);

        let open = seccomp_handler(Err("nothing listens on it".into()), WhenNotServed::Open);
        let (reply, _) = open.handle(
            "CreateContainer",
            &create_with("c1", Some(runtime_default())),
        );
        let reply = reply.unwrap();
        assert_eq!(mounts_of(&reply).len(), 8);
        assert!(policy_of(&reply).is_none());
        assert_eq!(open.counters().seccomp_skipped(SeccompSkip::NotServed), 1);
        assert_eq!(open.counters().injected(), 1);
    }

    fn create(namespace: &str, id: &str, annotations: &[(&str, &str)]) -> Vec<u8> {
        CreateContainerRequest {
            pod: Some(PodSandbox {
                id: format!("pod-{id}"),
                name: "web".into(),
                namespace: namespace.into(),
                annotations: annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<HashMap<_, _>>(),
                ..PodSandbox::default()
            }),
            container: Some(Container {
                id: id.into(),
                pod_sandbox_id: format!("pod-{id}"),
                name: "app".into(),
                linux: Some(LinuxContainer {
                    cgroups_path: format!("kubepods-pod1.slice:cri-containerd:{id}"),
                    ..LinuxContainer::default()
                }),
                ..Container::default()
            }),
        }
        .encode_to_vec()
    }

    fn mounts_of(reply: &[u8]) -> Vec<Mount> {
        CreateContainerResponse::decode(reply)
            .unwrap()
            .adjust
            .map(|a| a.mounts)
            .unwrap_or_default()
    }

    #[test]
    fn configure_subscribes_to_creation_and_removal() {
        let h = handler(Ok(()), WhenNotServed::Closed);
        let (reply, _) = h.handle("Configure", &ConfigureRequest::default().encode_to_vec());
        let reply = ConfigureResponse::decode(reply.unwrap().as_slice()).unwrap();
        assert_eq!(reply.events, (1 << 3) | (1 << 10));
    }

    #[test]
    fn a_selected_container_gets_the_binds_and_is_tracked_with_its_cgroup() {
        let h = handler(Ok(()), WhenNotServed::Closed);
        let (reply, _) = h.handle("CreateContainer", &create("apps", "c1", &[]));
        let mounts = mounts_of(&reply.unwrap());
        assert_eq!(mounts.len(), 8);
        assert!(mounts
            .iter()
            .all(|m| m.source.starts_with("/var/lib/cgview/")));
        assert_eq!(h.counters().injected(), 1);
        let tracked = h.tracked();
        assert_eq!(tracked.len(), 1);
        assert!(tracked[0].bound);
        assert_eq!(
            tracked[0].cgroups_path,
            "kubepods-pod1.slice:cri-containerd:c1"
        );
        let remove = RemoveContainerRequest {
            pod: None,
            container: Some(Container {
                id: "c1".into(),
                ..Container::default()
            }),
        };
        h.handle("RemoveContainer", &remove.encode_to_vec())
            .0
            .unwrap();
        assert!(h.tracked().is_empty());
    }

    #[test]
    fn not_served_is_refused_when_closed_and_skipped_when_open() {
        let closed = handler(
            Err("nothing is mounted there".into()),
            WhenNotServed::Closed,
        );
        let (reply, _) = closed.handle("CreateContainer", &create("apps", "c1", &[]));
        let error = reply.unwrap_err();
        assert_eq!(error.code, code::FAILED_PRECONDITION);
        assert!(
            error.message.contains("nothing is mounted there"),
            "{}",
            error.message
        );
        assert!(error.message.contains("apps/web/app"), "{}", error.message);
        assert_eq!(closed.counters().refused(), 1);

        let open = handler(Err("nothing is mounted there".into()), WhenNotServed::Open);
        let (reply, _) = open.handle("CreateContainer", &create("apps", "c1", &[]));
        assert!(mounts_of(&reply.unwrap()).is_empty());
        assert_eq!(open.counters().skipped(SkipReason::NotServed), 1);
        // A container that is not selected never needs cgview to serve.
        let (reply, _) = closed.handle(
            "CreateContainer",
            &create("apps", "c2", &[("cgview.io/inject", "disabled")]),
        );
        assert!(mounts_of(&reply.unwrap()).is_empty());
    }

    #[test]
    fn garbage_and_unknown_methods_are_errors_and_the_handler_goes_on() {
        let h = handler(Ok(()), WhenNotServed::Closed);
        let (reply, after) = h.handle("CreateContainer", b"\xff\xff\xff");
        assert_eq!(reply.unwrap_err().code, code::INVALID_ARGUMENT);
        assert_eq!(after, After::Continue);
        let (reply, _) = h.handle("UpdateContainer", b"");
        assert_eq!(reply.unwrap_err().code, code::UNIMPLEMENTED);
        assert_eq!(h.counters().errors(ErrorKind::BadRequest), 2);
        let (reply, _) = h.handle("CreateContainer", &create("apps", "c1", &[]));
        assert_eq!(mounts_of(&reply.unwrap()).len(), 8);
    }

    #[test]
    fn synchronize_gathers_parts_and_counts_running_containers_without_the_view() {
        let h = handler(Ok(()), WhenNotServed::Closed);
        let pod = PodSandbox {
            id: "p".into(),
            namespace: "apps".into(),
            name: "web".into(),
            ..PodSandbox::default()
        };
        let running = |id: &str, mounts: Vec<Mount>| Container {
            id: id.into(),
            pod_sandbox_id: "p".into(),
            name: id.into(),
            state: CONTAINER_RUNNING,
            mounts,
            ..Container::default()
        };
        let first = SynchronizeRequest {
            pods: vec![pod],
            containers: vec![running("old", Vec::new())],
            more: true,
        };
        let (reply, _) = h.handle("Synchronize", &first.encode_to_vec());
        assert!(
            SynchronizeResponse::decode(reply.unwrap().as_slice())
                .unwrap()
                .more
        );
        let binds = bind_mounts(&h.config().mount_point, &h.config().bound);
        let last = SynchronizeRequest {
            pods: Vec::new(),
            containers: vec![running("new", binds)],
            more: false,
        };
        let (reply, _) = h.handle("Synchronize", &last.encode_to_vec());
        let reply = SynchronizeResponse::decode(reply.unwrap().as_slice()).unwrap();
        assert!(!reply.more && reply.update.is_empty());
        let mut tracked = h.tracked();
        tracked.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(
            tracked
                .iter()
                .map(|t| (t.id.as_str(), t.bound))
                .collect::<Vec<_>>(),
            [("new", true), ("old", false)]
        );
        let mut text = String::new();
        h.counters().render(&mut text);
        assert!(
            text.contains("cgview_nri_running_without_view 1\n"),
            "{text}"
        );
    }
}
