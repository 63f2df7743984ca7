//! The plugin's service: one NRI request in, its answer out. No socket here: [`crate::session`] brings
//! the requests and carries the answers.

use crate::counters::{Counters, ErrorKind};
use crate::policy::{bind_mounts, select, Decision, Selection, SkipReason};
use crate::proto::{
    ConfigureRequest, ConfigureResponse, Container, ContainerAdjustment, CreateContainerRequest,
    CreateContainerResponse, Empty, Mount, PodSandbox, RemoveContainerRequest, StateChangeEvent,
    Status, SynchronizeRequest, SynchronizeResponse, CONTAINER_RUNNING,
};
use crate::protocol::{self, code};
use crate::registry::{Registry, Tracked};
use crate::serving::ServingWatch;
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
    /// Pods and containers of a `Synchronize` sent in several parts (`more`), gathered until the last.
    pending_sync: Mutex<Option<SynchronizeRequest>>,
}

impl Handler {
    pub fn new(config: PluginConfig, serving: ServingWatch, counters: Arc<Counters>) -> Handler {
        let binds = bind_mounts(&config.mount_point, &config.bound);
        Handler {
            config,
            binds,
            serving,
            counters,
            registry: Mutex::new(Registry::default()),
            pending_sync: Mutex::new(None),
        }
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
                    self.counters.record_injected();
                    tracing::debug!("binding cgview's files into {who}");
                    Some(self.binds.clone())
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
            adjust: adjust.map(|mounts| ContainerAdjustment {
                annotations: Default::default(),
                mounts,
            }),
        })
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
            },
            ServingWatch::fixed(served),
            Arc::new(Counters::default()),
        )
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
