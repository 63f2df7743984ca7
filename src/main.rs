//! The `cgview` command line.

use cgview::daemon::{join_host_cgroup_namespace, prepare_mount_point, serve};
use cgview::host::layout::{CgroupLayout, Controller};
use cgview::host::paths::HostPaths;
use cgview::host::resolve::Resolver;
use cgview::permissions::Credentials;
use cgview::served::ServedFile;
use cgview::tree::{Errno as TreeErrno, NodeKind, Tree};
use cgview::view::{error_chain, Source, View, ViewOptions};
use clap::{Args, Parser, Subcommand};
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
        /// Serve Prometheus metrics at http://ADDR/metrics and the mount's health at /healthz
        /// (e.g. 0.0.0.0:9477; port 0 picks a free one, logged at start).
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
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
        } => {
            let plan = prepare_mount_point(&mountpoint, &paths).map_err(|e| error_chain(&e))?;
            if !keep_cgroup_namespace && paths.is_live_system() {
                join_host_cgroup_namespace(&paths);
            }
            let view = build_view(paths, options)?;
            report_layout(view.resolver().layout());
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let mut tree = Tree::new(Arc::new(view));
            if diagnostic_floor {
                let meminfo = tree.view().resolver().paths().proc_file("meminfo");
                let content = std::fs::read(&meminfo)
                    .map_err(|e| format!("cannot read {}: {e}", meminfo.display()))?;
                tree = tree.with_floor(content);
            }
            serve(Arc::new(tree), &mountpoint, threads, plan, metrics_addr)
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
    }
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
