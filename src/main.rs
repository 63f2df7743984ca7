//! The `cgview` command line.

use cgview::cache::CacheSettings;
use cgview::daemon::{join_host_cgroup_namespace, prepare_mount_point, serve, Transport};
use cgview::host::layout::{CgroupLayout, Controller};
use cgview::host::paths::HostPaths;
use cgview::host::resolve::Resolver;
use cgview::permissions::Credentials;
use cgview::served::ServedFile;
use cgview::tree::{Errno as TreeErrno, NodeKind, Tree};
use cgview::view::{error_chain, Source, View, ViewOptions};
use cgview::webhook::certs::{self, CertRequest};
use cgview::webhook::options::{self as webhook_options, DEFAULT_FILES_ARG};
use cgview::webhook::policy::{InjectionConfig, DEFAULT_MOUNT_ROOT};
use cgview::webhook::server::{self as webhook_server, ServeOptions};
use clap::{ArgAction, Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// Per-container views of /proc and /sys, served over FUSE.
///
/// Each file under the mount point is rendered for the process that reads it, from that process's
/// cgroup: memory limit and usage in meminfo, visible CPUs in cpuinfo and cpu/online, container
/// uptime, and the container's own disk I/O.
#[derive(Debug, Parser)]
#[command(name = "cgview", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct GlobalOptions {
    /// The host's procfs.
    #[arg(long, global = true, value_name = "DIR", default_value = "/proc")]
    proc_root: PathBuf,
    /// The host's sysfs.
    #[arg(long, global = true, value_name = "DIR", default_value = "/sys")]
    sys_root: PathBuf,
    /// Where the cgroup hierarchies are mounted; only cgroup mounts at or below it are used.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/sys/fs/cgroup"
    )]
    cgroup_root: PathBuf,
    /// Show all of a container's cpuset, ignoring its CPU quota (by default a 1.5-CPU quota shows 2 CPUs).
    #[arg(long, global = true)]
    no_cpu_quota: bool,
    /// Log filter, in tracing's EnvFilter syntax (e.g. "info", "cgview=debug").
    #[arg(
        long,
        global = true,
        value_name = "FILTER",
        default_value = "info",
        env = "CGVIEW_LOG"
    )]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mount the tree at MOUNTPOINT and serve it in the foreground until SIGTERM or SIGINT.
    ///
    /// Started while another cgview serves MOUNTPOINT (an upgrade), it takes over: its mount goes beneath
    /// the running one, which is then detached, and every container is moved to it while the old daemon
    /// still answers; stop the old daemon afterwards (it then leaves the mount point alone). Needs Linux 6.5.
    Mount {
        /// Created if missing; a dead FUSE mount left there by a crashed daemon is detached first.
        mountpoint: PathBuf,
        /// FUSE worker threads (default: the number of CPUs).
        #[arg(long)]
        threads: Option<usize>,
        /// Do not join the host's cgroup namespace at start; resolve callers' cgroups relative to this
        /// daemon's own namespace through the cgroup mounts' roots.
        #[arg(long)]
        keep_cgroup_namespace: bool,
        /// Also serve MOUNTPOINT/.cgview-floor, a fixed copy of the host's /proc/meminfo opened and read like
        /// a served file with no work behind it: benchmarks measure the FUSE floor with it.
        #[arg(long)]
        diagnostic_floor: bool,
        /// Take requests over FUSE over io_uring: one ring per CPU, answered on that CPU (about 1.5x the
        /// reads/s at 0.6x the daemon CPU per read of /dev/fuse on a 2-vCPU VM). Needs Linux 6.14+ with
        /// /sys/module/fuse/parameters/enable_uring set to Y; without it cgview serves over /dev/fuse.
        #[arg(long)]
        io_uring: bool,
        /// Serve Prometheus metrics at http://ADDR/metrics and the mount's health at /healthz
        /// (e.g. 0.0.0.0:9477; port 0 picks a free one, logged at start).
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
        /// Cgroup files kept open at most, over all containers (default: half of what the descriptor
        /// limit leaves after 512 for everything else, at most 65536). The daemon raises its soft
        /// RLIMIT_NOFILE to the hard one at start; past the budget files are read with open-read-close.
        #[arg(long, value_name = "N", env = "CGVIEW_FD_BUDGET")]
        fd_budget: Option<usize>,
    },
    /// Report every container's cgview mounts (live or dead, i.e. left by a daemon that died) and
    /// optionally replace the dead ones from the live mount at MOUNTPOINT. Exits 1 while any is dead.
    Health {
        /// The running daemon's mount point.
        #[arg(default_value = "/var/lib/cgview")]
        mountpoint: PathBuf,
        /// Replace dead mounts in each container's mount namespace (no tool needed inside it).
        #[arg(long)]
        repair: bool,
    },
    /// Print the `docker run` flags that bind cgview's files into a container:
    /// `docker run $(cgview docker-args) IMAGE`. Fails, printing nothing, while MOUNTPOINT is not served
    /// (Docker would otherwise create empty directories in the files' places).
    DockerArgs {
        /// The running daemon's mount point.
        #[arg(default_value = "/var/lib/cgview")]
        mountpoint: PathBuf,
    },
    /// Exit 0 if MOUNTPOINT is served: reads proc/meminfo and proc/uptime through the mount, as a
    /// container would. For liveness and readiness probes.
    Probe {
        /// The running daemon's mount point.
        #[arg(default_value = "/var/lib/cgview")]
        mountpoint: PathBuf,
    },
    /// Internal: replace dead mounts in one mount namespace (run by `mount` and `health --repair`).
    #[command(hide = true)]
    RepairNamespace {
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        mount_point: PathBuf,
        /// Pairs of (path in cgview's tree, target in the namespace).
        binds: Vec<String>,
    },
    /// Print what MOUNTPOINT/PATH would show to process PID, without FUSE.
    Render {
        /// The reading process (default: this process).
        #[arg(long)]
        pid: Option<u32>,
        /// A served path, e.g. proc/meminfo or sys/devices/system/cpu/online.
        path: String,
    },
    /// Serve the mutating admission webhook that adds cgview's files to pods (daemonset/webhook/
    /// installs it), or generate its certificates with `cgview webhook certs`.
    ///
    /// Serves POST /mutate, GET /healthz and GET /readyz over HTTPS (HTTP/2 and HTTP/1.1) until SIGTERM
    /// or SIGINT. The certificate and key are reloaded when their files change.
    Webhook(Box<WebhookArgs>),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct WebhookArgs {
    #[command(subcommand)]
    command: Option<WebhookCommand>,
    #[command(flatten)]
    serve: WebhookServeArgs,
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Generate a CA and a serving certificate for the webhook's Service (without cert-manager).
    ///
    /// Prints a `kubernetes.io/tls` Secret manifest, and on standard error the caBundle and the
    /// `kubectl patch` that puts it into the MutatingWebhookConfiguration; or, with --out-dir, writes
    /// them as a kustomize component.
    Certs(CertsArgs),
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Webhook options")]
struct WebhookServeArgs {
    /// Where to serve HTTPS.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    listen: std::net::SocketAddr,
    /// PEM certificate chain, reloaded when the file changes (a Secret update, a renewal).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/cgview-webhook/tls/tls.crt"
    )]
    tls_cert: PathBuf,
    /// PEM private key of --tls-cert, reloaded with it.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/cgview-webhook/tls/tls.key"
    )]
    tls_key: PathBuf,
    /// Where the DaemonSet mounts cgview on every node; the injected hostPath volumes point into it.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_MOUNT_ROOT,
          value_parser = webhook_options::parse_absolute_path)]
    mount_root: String,
    /// The files to inject, comma-separated: paths in cgview's tree, which are also their paths in the
    /// container (a leading `/` is accepted).
    #[arg(long, value_name = "PATHS", value_delimiter = ',', default_value = DEFAULT_FILES_ARG,
          value_parser = webhook_options::parse_served_file)]
    files: Vec<ServedFile>,
    /// Whether init containers get the files too.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    init_containers: bool,
    /// Also mount the node's cgview directory itself at PATH in every container (read-only, with
    /// HostToContainer propagation).
    #[arg(long, value_name = "PATH", value_parser = webhook_options::parse_absolute_path)]
    host_dir_mount_path: Option<String>,
    /// A namespace whose pods are never injected; repeat it or separate with commas.
    /// `--skip-namespace ''` skips none.
    #[arg(
        long,
        value_name = "NS",
        value_delimiter = ',',
        default_value = "kube-system"
    )]
    skip_namespace: Vec<String>,
    /// Seconds to keep serving after SIGTERM, with /readyz already answering 503, so the Service stops
    /// sending reviews here before the listener closes.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    shutdown_delay: u64,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Certificate options")]
struct CertsArgs {
    /// The webhook's namespace.
    #[arg(long, value_name = "NS", default_value = certs::DEFAULT_NAMESPACE)]
    namespace: String,
    /// The webhook's Service; the certificate is valid for its in-cluster DNS names.
    #[arg(long, value_name = "NAME", default_value = certs::DEFAULT_SERVICE)]
    service: String,
    /// The Secret's name.
    #[arg(long, value_name = "NAME", default_value = certs::DEFAULT_SECRET)]
    secret: String,
    /// Validity of both the CA and the serving certificate. Nothing renews them: generate and apply a
    /// new pair before they expire (cert-manager, if installed, renews its own).
    #[arg(long, value_name = "N", default_value_t = certs::DEFAULT_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(certs::MAX_DAYS)))]
    days: u32,
    /// How many webhooks the MutatingWebhookConfiguration `cgview-webhook` has; each gets the caBundle.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..))]
    webhooks: u8,
    /// Write ca.crt, tls.crt, tls.key, secret.yaml, ca-bundle, ca-bundle-patch.yaml and a kustomize
    /// Component (kustomization.yaml) into DIR, created if missing, instead of printing; an overlay then
    /// lists `components: [<path to daemonset/webhook>, DIR]`.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Replace the key pair already in --out-dir.
    #[arg(long, requires = "out_dir")]
    force: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match EnvFilter::try_new(&cli.global.log) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!(
                "cgview: error: invalid --log filter {:?}: {e}",
                cli.global.log
            );
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cgview: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let paths = HostPaths {
        proc_root: cli.global.proc_root.clone(),
        sys_root: cli.global.sys_root.clone(),
        cgroup_root: cli.global.cgroup_root.clone(),
    };
    let options = ViewOptions {
        quota_aware: !cli.global.no_cpu_quota,
        ..ViewOptions::default()
    };
    match cli.command {
        Command::Mount {
            mountpoint,
            threads,
            keep_cgroup_namespace,
            diagnostic_floor,
            metrics_addr,
            io_uring,
            fd_budget,
        } => {
            let plan = prepare_mount_point(&mountpoint, &paths).map_err(|e| error_chain(&e))?;
            let nofile = cgview::host::fd_budget::raise_nofile_limit().unwrap_or_else(|e| {
                tracing::warn!("cannot raise the descriptor limit: {e}");
                cgview::host::fd_budget::nofile_limit()
            });
            let settings = CacheSettings {
                fd_budget: Some(
                    fd_budget.unwrap_or_else(|| cgview::host::fd_budget::budget_for_limit(nofile)),
                ),
                ..CacheSettings::default()
            };
            tracing::info!(
                nofile,
                fd_budget = settings.fd_budget,
                "descriptor limit and budget for kept-open cgroup files"
            );
            if !keep_cgroup_namespace && paths.is_live_system() {
                join_host_cgroup_namespace(&paths);
            }
            let view = build_view(paths, options)?;
            report_layout(view.resolver().layout());
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let mut tree = Tree::with_cache(Arc::new(view), settings);
            if diagnostic_floor {
                let meminfo = tree.view().resolver().paths().proc_file("meminfo");
                let content = std::fs::read(&meminfo)
                    .map_err(|e| format!("cannot read {}: {e}", meminfo.display()))?;
                tree = tree.with_floor(content);
            }
            let transport = if io_uring {
                Transport::IoUring
            } else {
                Transport::DevFuse
            };
            serve(
                Arc::new(tree),
                &mountpoint,
                threads,
                plan,
                metrics_addr,
                transport,
            )
            .map_err(|e| error_chain(&e))
        }
        Command::Health { mountpoint, repair } => health(&paths, &mountpoint, repair),
        Command::DockerArgs { mountpoint } => {
            probe(&mountpoint)?;
            let binds = cgview::container_binds::container_binds(&mountpoint, |p| p.exists());
            let args = cgview::container_binds::docker_args(&binds)?;
            println!("{}", args.join(" "));
            Ok(())
        }
        Command::Probe { mountpoint } => probe(&mountpoint),
        Command::RepairNamespace {
            pid,
            mount_point,
            binds,
        } => {
            let pairs: Vec<(String, String)> = binds
                .chunks(2)
                .filter(|pair| pair.len() == 2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect();
            let replaced = cgview::repair::replace_in_namespace(pid, &mount_point, &pairs)
                .map_err(|e| format!("namespace of pid {pid}: {e}"))?;
            println!("repaired {replaced}");
            Ok(())
        }
        Command::Render { pid, path } => {
            let view = Arc::new(build_view(paths, options)?);
            let pid = pid.unwrap_or_else(std::process::id);
            let bytes = render_path(&Tree::new(view), &path, pid)?;
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| format!("cannot write to standard output: {e}"))
        }
        Command::Webhook(webhook) => match *webhook {
            WebhookArgs {
                command: Some(WebhookCommand::Certs(args)),
                ..
            } => webhook_certs(args),
            WebhookArgs {
                command: None,
                serve,
            } => webhook_serve(serve),
        },
    }
}

/// `cgview webhook`: serves until SIGTERM or SIGINT.
fn webhook_serve(args: WebhookServeArgs) -> Result<(), String> {
    let options = ServeOptions {
        listen: args.listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        injection: InjectionConfig {
            mount_root: args.mount_root,
            files: webhook_options::distinct_files(args.files),
            init_containers: args.init_containers,
            host_dir_mount_path: args.host_dir_mount_path,
            skip_namespaces: webhook_options::skipped_namespaces(args.skip_namespace),
        },
        shutdown_delay: std::time::Duration::from_secs(args.shutdown_delay),
    };
    webhook_server::run(options).map_err(|e| error_chain(&e))
}

/// `cgview webhook certs`: prints the Secret and the CA bundle, or writes them into --out-dir.
fn webhook_certs(args: CertsArgs) -> Result<(), String> {
    let request = CertRequest {
        namespace: args.namespace,
        service: args.service,
        secret: args.secret,
        days: args.days,
        webhooks: usize::from(args.webhooks),
    };
    let generated =
        certs::generate(&request, std::time::SystemTime::now()).map_err(|e| error_chain(&e))?;
    let Some(dir) = args.out_dir else {
        let manifest = generated.secret_manifest().map_err(|e| error_chain(&e))?;
        let patch = generated
            .kubectl_patch_command()
            .map_err(|e| error_chain(&e))?;
        print!("{manifest}");
        eprintln!("caBundle: {}", generated.ca_bundle);
        eprintln!("{patch}");
        return Ok(());
    };
    let written = certs::write_dir(&generated, &dir, args.force).map_err(|e| error_chain(&e))?;
    for path in written {
        println!("wrote {}", path.display());
    }
    println!(
        "use it from an overlay: components: [<path to daemonset/webhook>, {}]",
        dir.display()
    );
    Ok(())
}

/// Reads two served files through the mount, as a container does; an error names what failed.
fn probe(mount_point: &std::path::Path) -> Result<(), String> {
    for (file, expect) in [("proc/meminfo", "MemTotal:"), ("proc/uptime", ".")] {
        let path = mount_point.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{} is not served ({e}); is `cgview mount {}` running?",
                path.display(),
                mount_point.display()
            )
        })?;
        if !text.contains(expect) {
            return Err(format!("{} reads {text:?}", path.display()));
        }
    }
    Ok(())
}

/// `cgview health`: one line per mount namespace with cgview mounts.
fn health(paths: &HostPaths, mount_point: &std::path::Path, repair: bool) -> Result<(), String> {
    let live_mount = std::fs::read_to_string(mount_point.join("proc/meminfo")).is_ok();
    println!(
        "mount {}: {}",
        mount_point.display(),
        if live_mount { "live" } else { "not served" }
    );
    if repair && live_mount {
        let (namespaces, mounts, failures) = cgview::repair::repair_all(paths, mount_point, None);
        println!("repaired {mounts} mounts in {namespaces} namespaces, {failures} failures");
    }
    let namespaces = cgview::repair::scan(paths, mount_point).map_err(|e| error_chain(&e))?;
    println!(
        "{:<18} {:>8} {:>5} {:>5}  {:<40} dead",
        "namespace", "pid", "live", "dead", "cgroup"
    );
    let mut dead_total = 0;
    for namespace in &namespaces {
        let dead: Vec<&str> = namespace.dead().map(|b| b.target.as_str()).collect();
        dead_total += dead.len();
        println!(
            "{:<18} {:>8} {:>5} {:>5}  {:<40} {}",
            namespace.namespace,
            namespace.pid,
            namespace.binds.iter().filter(|b| b.live).count(),
            dead.len(),
            cgview::repair::container_hint(paths, namespace.pid),
            dead.join(" ")
        );
    }
    if dead_total > 0 || !live_mount {
        return Err(format!(
            "{dead_total} dead cgview mounts{}",
            if live_mount {
                ""
            } else {
                ", and nothing serves the mount point"
            }
        ));
    }
    Ok(())
}

/// What `pid` would read at `path` below the mount point: a file's content, a directory's listing (one
/// name a line) or a symlink's target.
fn render_path(tree: &Tree, path: &str, pid: u32) -> Result<Vec<u8>, String> {
    let node = tree.walk(path, Some(pid)).map_err(|e| {
        let known: Vec<_> = ServedFile::ALL.iter().map(|f| f.tree_path()).collect();
        format!(
            "{path}: {} (served: {}, and everything below sys/devices/system/cpu)",
            std::io::Error::from_raw_os_error(e.0),
            known.join(", ")
        )
    })?;
    let failed = |e: TreeErrno| format!("{path}: {}", std::io::Error::from_raw_os_error(e.0));
    match node.kind {
        NodeKind::File(file) => {
            let rendered = tree
                .view()
                .render(file, Some(pid))
                .map_err(|e| error_chain(&e))?;
            if let Source::Fallback(cause) = rendered.source {
                tracing::warn!(
                    pid,
                    cause = cause.name(),
                    "could not virtualize; printing the host file"
                );
            }
            Ok(rendered.bytes)
        }
        NodeKind::HostFile | NodeKind::BlockStat | NodeKind::Floor => {
            let handle = tree
                .open(node.inode, Some(pid), false, Credentials::ROOT)
                .map_err(failed)?;
            let snapshot = tree.read(handle, 0, Some(pid)).map_err(failed)?;
            tree.release(handle);
            Ok(snapshot.to_vec())
        }
        NodeKind::HostSymlink => {
            let mut target = tree
                .readlink(node.inode)
                .map_err(failed)?
                .into_os_string()
                .into_vec();
            target.push(b'\n');
            Ok(target)
        }
        NodeKind::Directory | NodeKind::HostDirectory => {
            let entries = tree.list(node.inode, Some(pid)).map_err(failed)?;
            Ok(entries
                .iter()
                .filter(|e| e.name != "." && e.name != "..")
                .flat_map(|e| format!("{}\n", e.name).into_bytes())
                .collect())
        }
    }
}

/// Says at start what cgview found, so a host it cannot fully virtualize is visible in the first lines.
fn report_layout(layout: &CgroupLayout) {
    if let Some(kind) = layout.kind() {
        tracing::info!("cgroup layout: {kind}; {}", layout.describe());
    }
    for controller in Controller::ALL {
        if layout.mount_for(controller).is_none() {
            tracing::warn!(
                "no {controller} controller is mounted: files that need it are served from the host"
            );
        }
    }
}

fn build_view(paths: HostPaths, options: ViewOptions) -> Result<View, String> {
    let layout = CgroupLayout::detect(&paths).map_err(|e| error_chain(&e))?;
    let Some(kind) = layout.kind() else {
        return Err(format!(
            "no cgroup hierarchy is mounted under {} (see --cgroup-root)",
            paths.cgroup_root.display()
        ));
    };
    tracing::debug!("cgroup layout: {kind}; {}", layout.describe());
    Ok(View::new(Resolver::new(paths, layout), options))
}
