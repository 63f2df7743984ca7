//! The `cgview` command line: the options, and which command runs.

mod inspect;
mod mount;
mod nri;
#[cfg(feature = "webhook")]
mod webhook;

use cgview::host::paths::HostPaths;
use cgview::service::view::ViewOptions;
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
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

/// Where the host's procfs is (the commands that only read mount tables and processes).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Host tree")]
struct ProcRoot {
    /// The host's procfs.
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    proc_root: PathBuf,
}

impl ProcRoot {
    fn paths(&self) -> HostPaths {
        HostPaths {
            proc_root: self.proc_root.clone(),
            ..HostPaths::default()
        }
    }
}

/// Where the host trees are (the commands that build views).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Host tree")]
struct HostRoots {
    #[command(flatten)]
    proc: ProcRoot,
    /// The host's sysfs.
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    sys_root: PathBuf,
    /// Where the cgroup hierarchies are mounted; only cgroup mounts at or below it are used.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/cgroup")]
    cgroup_root: PathBuf,
}

impl HostRoots {
    fn paths(&self) -> HostPaths {
        HostPaths {
            proc_root: self.proc.proc_root.clone(),
            sys_root: self.sys_root.clone(),
            cgroup_root: self.cgroup_root.clone(),
        }
    }
}

/// How views are computed (the commands that render).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "View")]
struct ViewArgs {
    /// Show all of a container's cpuset, ignoring its CPU quota (by default a 1.5-CPU quota shows 2 CPUs).
    #[arg(long)]
    no_cpu_quota: bool,
}

impl ViewArgs {
    fn options(&self) -> ViewOptions {
        ViewOptions {
            quota_aware: !self.no_cpu_quota,
            ..ViewOptions::default()
        }
    }
}

/// `cgview mount`'s arguments: its own, and the host tree and view options.
#[derive(Debug, Args)]
struct MountCommand {
    #[command(flatten)]
    mount: mount::MountArgs,
    #[command(flatten)]
    roots: HostRoots,
    #[command(flatten)]
    view: ViewArgs,
    #[command(flatten)]
    nri: nri::NriArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mount the tree at MOUNTPOINT and serve it in the foreground until SIGTERM or SIGINT.
    ///
    /// A keeper process (`cgview keeper`, started on the first mount) holds the FUSE connection: after a
    /// crash, a SIGTERM or a take-over, the next `cgview mount MOUNTPOINT` resumes the same connection
    /// and readers only wait, with no error and no file closed. Started while another cgview serves
    /// MOUNTPOINT (an upgrade), it takes the connection over and the old daemon exits by itself.
    /// Without a keeper (`--connection-holder none`, or an old daemon), the take-over mounts beneath the
    /// running daemon and moves every container to it (Linux 6.5).
    Mount(MountCommand),
    /// Hold MOUNTPOINT's FUSE connection between daemons (started by `cgview mount`; run it yourself
    /// only where it must outlive the daemon's container, e.g. as its own container in a pod).
    Keeper(mount::KeeperArgs),
    /// Report every container's cgview mounts (live or dead, i.e. left by a daemon that died) and
    /// optionally replace the dead ones from the live mount at MOUNTPOINT. Exits 1 while any is dead.
    Health {
        /// The running daemon's mount point.
        #[arg(default_value = "/var/lib/cgview")]
        mountpoint: PathBuf,
        /// Replace dead mounts in each container's mount namespace (no tool needed inside it).
        #[arg(long)]
        repair: bool,
        #[command(flatten)]
        roots: HostRoots,
    },
    /// Print the `docker run` flags that bind cgview's files into a container, read-only:
    /// `docker run $(cgview docker-args) IMAGE`. They are `--mount type=bind,...` flags, which Docker
    /// refuses when a source is missing (`-v` would create an empty directory and start the container
    /// with the host's view). While no cgview serves MOUNTPOINT it exits 1 with the reason on standard
    /// error and still prints the flags, plus a bind of MOUNTPOINT/NOT-SERVED-BY-CGVIEW, so that the
    /// `docker run` fails too.
    DockerArgs {
        /// The running daemon's mount point.
        #[arg(default_value = "/var/lib/cgview")]
        mountpoint: PathBuf,
        /// Leave out a path, e.g. `--without proc/uptime` (repeatable).
        #[arg(long, value_name = "PATH")]
        without: Vec<String>,
        #[command(flatten)]
        proc: ProcRoot,
    },
    /// Exit 0 if a cgview serves MOUNTPOINT: the mount there is cgview's, and proc/meminfo and
    /// proc/uptime read through it, as a container would. For liveness and readiness probes.
    Probe {
        /// The running daemon's mount point.
        #[arg(default_value = "/var/lib/cgview")]
        mountpoint: PathBuf,
        #[command(flatten)]
        proc: ProcRoot,
    },
    /// Internal: what a daemon becomes once a successor took its connection over: waits for its stop.
    #[command(hide = true)]
    Superseded { mountpoint: PathBuf },
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
    /// Print what MOUNTPOINT/PATH would show to process PID, without FUSE. Fails (printing nothing)
    /// when PID does not exist, PATH is not in the tree, or the file cannot be virtualized for PID (a
    /// reader would get the host's file).
    Render {
        /// The reading process (default: this process).
        #[arg(long)]
        pid: Option<u32>,
        /// A path of the tree, e.g. proc/meminfo, sys/devices/system/cpu/online or sys/block/sda/stat.
        path: String,
        #[command(flatten)]
        roots: HostRoots,
        #[command(flatten)]
        view: ViewArgs,
    },
    /// Run the NRI plugin: the container runtime (containerd 1.7+, CRI-O 1.26+, with NRI on) asks it at
    /// every container's creation, and it answers with read-only binds of the files served at
    /// MOUNTPOINT over the container's /proc/... and /sys/devices/system/cpu. Pods need no hostPath.
    ///
    /// Connects to --nri-socket and reconnects with back-off whenever the runtime restarts; when the
    /// runtime launched it (a pre-installed plugin, NRI_PLUGIN_SOCKET set) it serves that connection
    /// and exits with it. `cgview mount --nri` runs the same plugin inside the daemon.
    Nri {
        #[command(flatten)]
        command: nri::NriCommand,
        #[command(flatten)]
        proc: ProcRoot,
    },
    /// Serve the mutating admission webhook that adds cgview's files to pods (daemonset/webhook/
    /// installs it), or generate its certificates with `cgview webhook certs`.
    ///
    /// Serves POST /mutate, GET /healthz and GET /readyz over HTTPS (HTTP/2 and HTTP/1.1) until SIGTERM
    /// or SIGINT. The certificate and key are reloaded when their files change.
    #[cfg(feature = "webhook")]
    Webhook(Box<webhook::WebhookArgs>),
}

pub fn main() -> ExitCode {
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
    match cli.command {
        Command::Mount(MountCommand {
            mount,
            roots,
            view,
            nri,
        }) => mount::mount(roots.paths(), view.options(), mount, nri),
        Command::Nri { command, proc } => nri::run(command, proc.paths()),
        Command::Keeper(args) => mount::keeper(args),
        Command::Superseded { mountpoint } => {
            cgview::daemon::holder::wait_superseded(&mountpoint).map_err(|e| e.to_string())
        }
        Command::Health {
            mountpoint,
            repair,
            roots,
        } => inspect::health(&roots.paths(), &mountpoint, repair),
        Command::DockerArgs {
            mountpoint,
            without,
            proc,
        } => inspect::docker_args(&proc.paths(), &mountpoint, &without),
        Command::Probe { mountpoint, proc } => inspect::probe(&proc.paths(), &mountpoint),
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
            let replaced = cgview::daemon::repair::replace_in_namespace(pid, &mount_point, &pairs)
                .map_err(|e| format!("namespace of pid {pid}: {e}"))?;
            println!("repaired {replaced}");
            Ok(())
        }
        Command::Render {
            pid,
            path,
            roots,
            view,
        } => {
            let paths = roots.paths();
            let pid = pid.unwrap_or_else(std::process::id);
            inspect::require_process(&paths, pid)?;
            let view = Arc::new(inspect::build_view(paths, view.options())?);
            let bytes = inspect::render_path(&cgview::fs::Fs::new(view), &path, pid)?;
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| format!("cannot write to standard output: {e}"))
        }
        #[cfg(feature = "webhook")]
        Command::Webhook(args) => webhook::run(*args),
    }
}
