//! The commands that look rather than serve: `probe`, `health`, `render`, and what the daemon reports
//! about the host at start.

use cgview::catalog::ServedFile;
use cgview::daemon::mount_scan::is_cgview_mount;
use cgview::error_chain;
use cgview::failure::Failure;
use cgview::fs::{Caller, Fs, NodeKind, ReadInto};
use cgview::host::layout::{CgroupLayout, Controller};
use cgview::host::paths::HostPaths;
use cgview::host::resolve::Resolver;
use cgview::permissions::Credentials;
use cgview::service::view::{Source, View, ViewOptions};
use std::os::unix::ffi::OsStringExt;

/// Whether a cgview serves `mount_point`: the mount visible there is a cgview mount (not LXCFS, not an
/// empty directory), and two served files read through it as a container reads them. The error says
/// what is there instead.
pub fn probe(paths: &HostPaths, mount_point: &std::path::Path) -> Result<(), String> {
    let not_running = || format!("is `cgview mount {}` running?", mount_point.display());
    if let Err(e) = std::fs::metadata(mount_point) {
        return Err(format!(
            "{} is not served ({e}); {}",
            mount_point.display(),
            not_running()
        ));
    }
    let mount = cgview::daemon::mount_at(mount_point, paths).map_err(|e| {
        format!(
            "{} is not served: {}; {}",
            mount_point.display(),
            error_chain(&e),
            not_running()
        )
    })?;
    match mount {
        None => {
            return Err(format!(
                "{} is not served: nothing is mounted there; {}",
                mount_point.display(),
                not_running()
            ))
        }
        Some(mount) if !is_cgview_mount(&mount) => {
            return Err(format!(
                "{} is not served by cgview: {} is mounted there (source {:?}); {}",
                mount_point.display(),
                mount.fs_type,
                mount.source,
                not_running()
            ))
        }
        Some(_) => {}
    }
    for (file, expect) in [("proc/meminfo", "MemTotal:"), ("proc/uptime", ".")] {
        let path = mount_point.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{} is not served ({e}); {}", path.display(), not_running()))?;
        if !text.contains(expect) {
            return Err(format!("{} reads {text:?}", path.display()));
        }
    }
    Ok(())
}

/// `cgview docker-args`: the `--mount` flags binding cgview's files (less `without`) into a container.
/// While nothing serves `mount_point` it prints them all the same, with one more bind whose source never
/// exists, and fails: `docker run $(cgview docker-args) ...` then fails too, where printing nothing
/// would start the container with the host's view.
pub fn docker_args(
    paths: &HostPaths,
    mount_point: &std::path::Path,
    without: &[String],
) -> Result<(), String> {
    let bound = cgview::catalog::docker_bound(without)?;
    let served = probe(paths, mount_point);
    let binds = match served {
        Ok(()) => cgview::catalog::container_binds(mount_point, &bound, |p| p.exists()),
        Err(_) => {
            let mut binds = cgview::catalog::container_binds(mount_point, &bound, |_| true);
            binds.push(cgview::catalog::not_served_bind(mount_point));
            binds
        }
    };
    let args = cgview::catalog::docker_args(&binds)?;
    println!("{}", args.join(" "));
    served.map_err(|reason| {
        format!(
            "{reason}\n(the flags printed bind {}, which does not exist, so `docker run` refuses to start the container instead of giving it the host's files)",
            cgview::catalog::not_served_bind(mount_point).source.display()
        )
    })
}

/// `cgview health`: one line per mount namespace with cgview mounts.
pub fn health(
    paths: &HostPaths,
    mount_point: &std::path::Path,
    repair: bool,
) -> Result<(), String> {
    let live_mount = probe(paths, mount_point).is_ok();
    println!(
        "mount {}: {}",
        mount_point.display(),
        if live_mount { "live" } else { "not served" }
    );
    if repair && live_mount {
        let (namespaces, mounts, failures) =
            cgview::daemon::repair::repair_all(paths, mount_point, None);
        println!("repaired {mounts} mounts in {namespaces} namespaces, {failures} failures");
    }
    let namespaces =
        cgview::daemon::repair::scan(paths, mount_point).map_err(|e| error_chain(&e))?;
    println!(
        "{:<18} {:>8} {:>5} {:>5}  {:<40} needs repair",
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
            cgview::daemon::repair::container_hint(paths, namespace.pid),
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

/// Fails unless process `pid` exists in the host's procfs: `render` for a dead pid must not print the
/// host's file as if it were a view.
pub fn require_process(paths: &HostPaths, pid: u32) -> Result<(), String> {
    let dir = paths.proc_file(&pid.to_string());
    match std::fs::metadata(&dir) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "no process {pid} ({} does not exist)",
            dir.display()
        )),
        Err(e) => Err(format!("process {pid}: {}: {e}", dir.display())),
    }
}

/// What `pid` would read at `path` below the mount point: a file's content, a directory's listing (one
/// name a line) or a symlink's target. Asks [`Fs`] as the kernel would, as root in `pid`'s place.
pub fn render_path(fs: &Fs, path: &str, pid: u32) -> Result<Vec<u8>, String> {
    let caller = Caller::new(pid, Credentials::ROOT);
    let node = fs.walk(path, &caller).map_err(|e| {
        let known: Vec<_> = ServedFile::ALL.iter().map(|f| f.tree_path()).collect();
        format!(
            "{path}: {e} (served: {}, sys/block/<device>/stat and sys/block/<device>/<partition>/stat, \
             and the rest of sys/devices/system/cpu and sys/block from the host)",
            known.join(", ")
        )
    })?;
    let failed = |e: Failure| format!("{path}: {e}");
    match node.kind {
        NodeKind::File(file) => {
            let rendered = fs
                .view()
                .render(file, Some(pid))
                .map_err(|e| error_chain(&e))?;
            if let Source::Fallback(cause) = rendered.source {
                return Err(format!(
                    "{path} cannot be virtualized for process {pid} ({}): a reader would get the host's file",
                    fallback_reason(cause)
                ));
            }
            Ok(rendered.bytes)
        }
        NodeKind::HostFile
        | NodeKind::BlockStat
        | NodeKind::HostCpuList(_)
        | NodeKind::NodeAttr(_)
        | NodeKind::Floor => {
            let handle = fs.open(&caller, node.inode, false).map_err(failed)?;
            let snapshot = fs.read(&caller, node.inode, handle, 0, ReadInto::Buffer);
            fs.release(handle);
            Ok(snapshot.map_err(failed)?.to_vec())
        }
        NodeKind::HostSymlink => {
            let mut target = fs
                .readlink(node.inode)
                .map_err(failed)?
                .into_os_string()
                .into_vec();
            target.push(b'\n');
            Ok(target)
        }
        NodeKind::Directory | NodeKind::HostDirectory => {
            let handle = fs.opendir(&caller, node.inode).map_err(failed)?;
            let entries = fs.readdir(&caller, node.inode, handle);
            fs.releasedir(handle);
            Ok(entries
                .map_err(failed)?
                .iter()
                .filter(|e| e.name != "." && e.name != "..")
                .flat_map(|e| format!("{}\n", e.name).into_bytes())
                .collect())
        }
    }
}

/// What a fallback cause means, for a person.
fn fallback_reason(cause: cgview::failure::FallbackCause) -> &'static str {
    use cgview::failure::FallbackCause;
    match cause {
        FallbackCause::CallerGone => "the process exited, or is not visible in this procfs",
        FallbackCause::CgroupVanished => "its cgroup was removed while being read",
        FallbackCause::MissingController => "a cgroup controller the file needs is not mounted",
        FallbackCause::Unreadable => {
            "a cgroup or host file could not be read; run with --log debug"
        }
        FallbackCause::Unparsable => {
            "a cgroup or host file has content cgview cannot parse; run with --log debug"
        }
    }
}

/// Says at start what cgview found, so a host it cannot fully virtualize is visible in the first lines.
pub fn report_layout(layout: &CgroupLayout) {
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

pub fn build_view(paths: HostPaths, options: ViewOptions) -> Result<View, String> {
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
