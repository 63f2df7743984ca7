//! `cgview nri` and `cgview mount --nri`: the NRI plugin, standalone or in the daemon.

use super::inspect::probe;
use cgview::host::paths::HostPaths;
use cgview::telemetry::http;
use cgview_core::catalog::Bound;
use cgview_nri::counters::Counters;
use cgview_nri::handler::{Handler, PluginConfig, SeccompTarget, WhenNotServed};
use cgview_nri::node_lock;
use cgview_nri::policy::{self, Selection};
use cgview_nri::protocol;
use cgview_nri::serving::ServingWatch;
use cgview_nri::session::{self, Endpoint};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// `--nri-files`' default: the catalog's NRI paths as the command line spells them.
static DEFAULT_FILES_ARG: LazyLock<String> = LazyLock::new(|| {
    let paths: Vec<&str> = policy::default_bound()
        .iter()
        .map(|bound| bound.tree_path())
        .collect();
    paths.join(",")
});

/// Whether a pod without the `cgview.io/inject` annotation gets the binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InjectDefault {
    Enabled,
    Disabled,
}

/// What a selected container gets while cgview does not serve its mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NotServedPolicy {
    /// It starts without the binds, with the host's view (logged, counted as skipped `not_served`).
    Open,
    /// Its creation fails with the reason; the kubelet retries it with back-off.
    Closed,
}

/// The plugin's options, the same for `cgview nri` and `cgview mount --nri`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "NRI plugin")]
pub struct NriArgs {
    /// The runtime's NRI socket. Ignored when the runtime launched the plugin and passed its
    /// connection in NRI_PLUGIN_SOCKET.
    #[arg(long, value_name = "PATH", default_value = protocol::DEFAULT_SOCKET_PATH)]
    pub nri_socket: PathBuf,
    /// The name the plugin registers under (NRI_PLUGIN_NAME when the runtime launched it).
    #[arg(long, value_name = "NAME", default_value = "cgview", env = "NRI_PLUGIN_NAME",
          value_parser = plugin_name)]
    pub nri_plugin_name: String,
    /// The plugin's two-digit index: the runtime calls plugins in index order (NRI_PLUGIN_IDX when the
    /// runtime launched it).
    #[arg(long, value_name = "NN", default_value = "50", env = "NRI_PLUGIN_IDX",
          value_parser = plugin_index)]
    pub nri_plugin_index: String,
    /// The paths bound into containers, comma-separated: paths of cgview's tree, which are also their
    /// paths in the container (a leading `/` is accepted).
    #[arg(long, value_name = "PATHS", value_delimiter = ',', default_value = DEFAULT_FILES_ARG.as_str(),
          value_parser = policy::parse_bound)]
    pub nri_files: Vec<Bound>,
    /// Only pods of these namespaces, comma-separated (default: every namespace).
    #[arg(long, value_name = "NAMESPACES", value_delimiter = ',')]
    pub nri_namespaces: Vec<String>,
    /// Never pods of these namespaces, whatever their annotation, comma-separated; `''` skips none.
    #[arg(
        long,
        value_name = "NAMESPACES",
        value_delimiter = ',',
        default_value = "kube-system"
    )]
    pub nri_skip_namespaces: Vec<String>,
    /// Whether a pod without the annotation cgview.io/inject (enabled or disabled) gets the binds.
    #[arg(long, value_enum, default_value = "enabled")]
    pub nri_default: InjectDefault,
    /// What a selected container gets while cgview does not serve: `closed` fails its creation with
    /// the reason (the kubelet retries), `open` starts it with the host's view.
    #[arg(long, value_enum, default_value = "closed")]
    pub nri_when_not_served: NotServedPolicy,
    /// Where the plugin takes its lock before registering: one cgview plugin per runtime socket on a
    /// node (two would make the runtime fail every creation: both set the same mounts). A directory
    /// every cgview pod of the node shares, as the DaemonSet's /run/cgview.
    #[arg(long, value_name = "DIR", default_value = node_lock::DEFAULT_LOCK_DIR)]
    pub nri_lock_dir: PathBuf,
    /// Also hand sysinfo(2) to cgview: the seccomp policy of each container given the binds becomes its
    /// own with `listenerPath` = PATH and `sysinfo` as SCMP_ACT_NOTIFY (NRI 0.10+: containerd 2.2+,
    /// CRI-O 1.34+). PATH is the daemon's --seccomp-socket, the same path for the runtime on the host
    /// and for this plugin (`cgview mount --nri` uses its own --seccomp-socket unless this is given).
    /// Unconfined containers and policies with a listener of their own are left alone; while nothing
    /// listens on PATH, --nri-when-not-served decides.
    #[arg(long, value_name = "PATH")]
    pub nri_seccomp_socket: Option<PathBuf>,
}

fn plugin_name(text: &str) -> Result<String, String> {
    protocol::check_plugin_name(text).map(|()| text.to_owned())
}

fn plugin_index(text: &str) -> Result<String, String> {
    protocol::check_plugin_index(text).map(|()| text.to_owned())
}

/// Names given with `--nri-namespaces` and `--nri-skip-namespaces`, less empty ones.
fn namespaces(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .collect()
}

impl NriArgs {
    fn config(&self, mount_point: &Path) -> PluginConfig {
        let mut bound = Vec::new();
        for path in &self.nri_files {
            if !bound.contains(path) {
                bound.push(*path);
            }
        }
        PluginConfig {
            name: self.nri_plugin_name.clone(),
            index: self.nri_plugin_index.clone(),
            mount_point: std::path::absolute(mount_point)
                .unwrap_or_else(|_| mount_point.to_owned()),
            bound,
            selection: Selection {
                namespaces: namespaces(&self.nri_namespaces),
                skip_namespaces: namespaces(&self.nri_skip_namespaces),
                inject_by_default: self.nri_default == InjectDefault::Enabled,
            },
            when_not_served: match self.nri_when_not_served {
                NotServedPolicy::Open => WhenNotServed::Open,
                NotServedPolicy::Closed => WhenNotServed::Closed,
            },
            seccomp: self
                .nri_seccomp_socket
                .as_ref()
                .map(|socket| SeccompTarget {
                    socket: std::path::absolute(socket).unwrap_or_else(|_| socket.clone()),
                    metadata: cgview_nri::seccomp::DEFAULT_METADATA.to_owned(),
                }),
        }
    }

    /// Waits for, and takes, the node's lock for `socket`.
    fn lock(&self, socket: &Path) -> Result<node_lock::NodeLock, String> {
        let path = node_lock::lock_path(&self.nri_lock_dir, socket);
        node_lock::acquire(&path)
            .map_err(|e| format!("cannot take the lock {}: {e}", path.display()))
    }

    /// The plugin for a cgview mounted at `mount_point`, checking it as `cgview probe` does.
    fn handler(&self, mount_point: &Path, paths: HostPaths, counters: Arc<Counters>) -> Handler {
        let (probed, mounted) = (mount_point.to_owned(), mount_point.to_owned());
        let quick_paths = paths.clone();
        let serving = ServingWatch::start(Arc::new(move || probe(&paths, &probed)))
            .with_quick_check(Arc::new(move || cgview_mounted_at(&quick_paths, &mounted)));
        serving.wait_first(Duration::from_secs(1));
        Handler::new(self.config(mount_point), serving, counters)
    }
}

/// `cgview nri`'s own arguments.
#[derive(Debug, Args)]
pub struct NriCommand {
    /// The running daemon's mount point: the binds' sources are below it.
    #[arg(default_value = "/var/lib/cgview")]
    pub mountpoint: PathBuf,
    /// Serve the plugin's Prometheus metrics at http://ADDR/metrics (and /healthz: 200 while
    /// registered with the runtime).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub nri: NriArgs,
}

/// What `cgview nri --metrics-addr` serves.
struct PluginEndpoint(Arc<Counters>);

impl http::Endpoint for PluginEndpoint {
    fn metrics(&self) -> String {
        let mut out = String::new();
        self.0.render(&mut out);
        out
    }

    fn health(&self) -> Result<String, String> {
        if self.0.connected() {
            Ok("registered with the runtime\n".to_owned())
        } else {
            Err("not registered with the runtime\n".to_owned())
        }
    }
}

/// `cgview nri`: the plugin alone, until the runtime's launched connection ends, or forever on a socket.
pub fn run(command: NriCommand, paths: HostPaths) -> Result<(), String> {
    let endpoint = match Endpoint::from_env()? {
        Some(inherited) => {
            tracing::info!("serving the connection the runtime passed in NRI_PLUGIN_SOCKET");
            inherited
        }
        None => Endpoint::Socket(command.nri.nri_socket.clone()),
    };
    let counters = Arc::new(Counters::default());
    if let Some(address) = command.metrics_addr {
        let bound = http::spawn(address, PluginEndpoint(Arc::clone(&counters)))
            .map_err(|e| format!("cannot serve metrics at {address}: {e}"))?;
        tracing::info!("serving the plugin's metrics at http://{bound}/metrics");
    }
    let handler = command.nri.handler(&command.mountpoint, paths, counters);
    log_start(&command.nri, &command.mountpoint);
    // A launched plugin is the runtime's only instance of it: no lock.
    let _lock = match &endpoint {
        Endpoint::Socket(socket) => Some(command.nri.lock(socket)?),
        Endpoint::Inherited(_) => None,
    };
    let stop = AtomicBool::new(false);
    session::run(&handler, endpoint, &stop).map_err(|e| e.to_string())
}

/// `cgview mount --nri`: the plugin on a thread of the daemon, its counters in the daemon's metrics.
pub fn start_in_daemon(
    args: &NriArgs,
    mount_point: &Path,
    paths: HostPaths,
    counters: Arc<Counters>,
) -> Result<(), String> {
    let args = args.clone();
    let mount_point = mount_point.to_owned();
    std::thread::Builder::new()
        .name("cgview-nri".to_owned())
        .spawn(move || {
            let handler = args.handler(&mount_point, paths, counters);
            log_start(&args, &mount_point);
            // This daemon is about to serve: registering first would refuse (or leave alone) the
            // creations of the moments before it does.
            if !handler.serving().wait_served(Duration::from_secs(10)) {
                tracing::warn!(
                    "{} is not served yet; the NRI plugin registers anyway",
                    mount_point.display()
                );
            }
            let _lock = match args.lock(&args.nri_socket) {
                Ok(lock) => lock,
                Err(e) => {
                    tracing::error!("the NRI plugin does not start: {e}");
                    return;
                }
            };
            let stop = AtomicBool::new(false);
            if let Err(e) = session::run(&handler, Endpoint::Socket(args.nri_socket.clone()), &stop)
            {
                tracing::error!("the NRI plugin stopped: {e}");
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the NRI plugin's thread: {e}"))
}

fn log_start(args: &NriArgs, mount_point: &Path) {
    let files: Vec<&str> = args.nri_files.iter().map(|b| b.tree_path()).collect();
    tracing::info!(
        socket = %args.nri_socket.display(),
        name = %args.nri_plugin_name,
        index = %args.nri_plugin_index,
        mount_point = %mount_point.display(),
        files = %files.join(","),
        default = ?args.nri_default,
        when_not_served = ?args.nri_when_not_served,
        seccomp_socket = %args
            .nri_seccomp_socket
            .as_deref()
            .map_or("none".into(), |p| p.display().to_string()),
        "NRI plugin starting"
    );
}

/// Whether the mount visible at `mount_point` is a cgview mount, from the mount table alone (never
/// through the mount, so it cannot hang).
fn cgview_mounted_at(paths: &HostPaths, mount_point: &Path) -> Result<(), String> {
    match cgview::daemon::mount_at(mount_point, paths) {
        Ok(Some(mount)) if cgview::daemon::mount_scan::is_cgview_mount(&mount) => Ok(()),
        Ok(Some(mount)) => Err(format!(
            "{} is not served by cgview: {} is mounted there",
            mount_point.display(),
            mount.fs_type
        )),
        Ok(None) => Err(format!(
            "{} is not served: nothing is mounted there",
            mount_point.display()
        )),
        Err(e) => Err(format!(
            "{} is not served: {}",
            mount_point.display(),
            cgview::error_chain(&e)
        )),
    }
}
