//! The NRI plugin against a fake runtime that speaks NRI as containerd does (tests/nri_support/
//! runtime.rs: the multiplexer, ttrpc, `RegisterPlugin`, `Configure`, `Synchronize`, `CreateContainer`,
//! `RemoveContainer`), with realistic pods and containers (tests/nri_support/k8s.rs), a real `cgview
//! mount`, and containers started by Debian's runc from the adjustments the plugin returned. Needs root,
//! /dev/fuse and the cgroup v1 hierarchies (the launched-plugin test needs none of them).

mod mounted_support;
mod nri_support;

use mounted_support::*;
use nri_support::k8s::{self, CgroupStyle};
use nri_support::pb::{self, Mount};
use nri_support::runtime::{
    ttrpc_message, ttrpc_message_claiming, CallError, Runtime, CODE_FAILED_PRECONDITION,
    CODE_INVALID_ARGUMENT, CODE_RESOURCE_EXHAUSTED, CODE_UNIMPLEMENTED, MUX_READ_BUFFER,
    PLUGIN_CONN, REQUEST_TIMEOUT, TTRPC_REQUEST,
};
use nri_support::{
    assert_default_binds, file_available, injected, metric, runc_available, scrape, skipped,
    Bundle, Plugin,
};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long a freshly started plugin may take to connect (it waits up to 1 s for its first check of
/// the mount point).
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

fn lock_dir(runtime: &Runtime) -> PathBuf {
    runtime.dir().join("locks")
}

/// A runtime listening, and `cgview nri` for `mount_point` connected, registered, configured and
/// synchronized with nothing.
fn plugin_for(mount_point: &Path, extra: &[&str]) -> (Runtime, Plugin) {
    let mut runtime = Runtime::listen();
    let plugin = Plugin::start(mount_point, runtime.socket(), &lock_dir(&runtime), extra);
    let registration = runtime.handshake(CONNECT_WITHIN, &[], &[]);
    assert_eq!(registration.name, "cgview");
    assert_eq!(registration.index, "50");
    (runtime, plugin)
}

/// The container paths of `mounts`.
fn destinations(mounts: &[Mount]) -> Vec<String> {
    mounts.iter().map(|m| m.destination.clone()).collect()
}

/// The highest CPU of a list such as `0-1` or `0,2-3`.
fn last_cpu(list: &str) -> u32 {
    list.trim()
        .split(',')
        .filter_map(|range| range.rsplit('-').next()?.parse().ok())
        .max()
        .unwrap()
}

/// The hierarchies runc puts a container in on this hybrid host (the v1 ones and, in hybrid mode, the
/// unified one), so that the test's cgroup guard removes every directory even when runc does not.
/// (Those this host has.)
const RUNC_CONTROLLERS: [&str; 10] = [
    "memory", "cpu", "cpuacct", "cpuset", "blkio", "pids", "devices", "freezer", "systemd",
    "unified",
];

/// End to end: the plugin answers containerd's `CreateContainer` for a pod whose cgroups are spelled
/// the systemd way and one spelled the cgroupfs way; the returned mounts go into an OCI bundle as
/// containerd applies them, and runc starts it in a cgroup with a 300 MiB limit and one CPU: inside, the
/// container's /proc/meminfo, /proc/cpuinfo and /sys/devices/system/cpu are cgview's and show its own
/// limits.
#[test]
fn runc_containers_read_their_own_limits_through_the_mounts_the_plugin_added() {
    if !needs_met(MOUNT_AND_CGROUPS) || !runc_available() {
        return;
    }
    let started = Instant::now();
    let daemon = Daemon::start(&[], &[]);
    let (runtime, plugin) = plugin_for(&daemon.mount_point, &[]);
    let connection = runtime.connection();
    let host_cpus = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let cpu = last_cpu(&host_cpus);
    let host_meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    for style in [CgroupStyle::Systemd, CgroupStyle::Cgroupfs] {
        let pod = k8s::pod("web", "shop", style, &[]);
        let container = k8s::container(
            &pod,
            "app",
            style,
            k8s::resources(300 << 20, 1000, &cpu.to_string()),
            Vec::new(),
        );
        let answer = connection
            .create_container(&pod, &container)
            .unwrap_or_else(|e| panic!("CreateContainer ({style:?}): {e}"));
        let adjust = answer.adjust.as_ref().expect("no adjustment");
        assert!(
            adjust.annotations.is_empty() && adjust.other_fields.is_empty(),
            "{adjust:?}"
        );
        assert_eq!((answer.updates, answer.evictions), (0, 0));
        assert_default_binds(&adjust.mounts, &daemon.mount_point);

        let hierarchies: Vec<&'static str> = RUNC_CONTROLLERS
            .into_iter()
            .filter(|h| Path::new(CGROUP_ROOT).join(h).join("cgroup.procs").exists())
            .collect();
        let cgroup = TestCgroup::new("nri-runc", &hierarchies);
        let inner = cgroup.child("ctr");
        inner.set("memory", "memory.limit_in_bytes", &(300 * MIB).to_string());
        inner.set("cpuset", "cpuset.cpus", &cpu.to_string());
        let script = "echo ==meminfo==; cat /proc/meminfo; \
                      echo ==online==; cat /sys/devices/system/cpu/online; \
                      echo ==nproc_all==; nproc --all; echo ==nproc==; nproc; \
                      echo ==cpuinfo==; cat /proc/cpuinfo; \
                      echo ==mountinfo==; cat /proc/self/mountinfo";
        let bundle = Bundle::new(script, &format!("/{}", inner.relative), &adjust.mounts);
        let id = unique_name("nri");
        let output = bundle.run(&id);
        expect_success(&format!("runc run ({style:?})"), &output);
        let out = sections(&String::from_utf8_lossy(&output.stdout));
        assert_eq!(
            meminfo_kb(&out["meminfo"], "MemTotal"),
            300 * 1024,
            "{style:?}: {}",
            out["meminfo"]
        );
        assert_ne!(meminfo_kb(&host_meminfo, "MemTotal"), 300 * 1024);
        assert_eq!(out["online"].trim(), cpu.to_string(), "{style:?}");
        assert_eq!(
            out["nproc_all"].trim(),
            "1",
            "{style:?}: nproc --all counts cgview's cpu directory"
        );
        assert_eq!(out["nproc"].trim(), "1", "{style:?}");
        assert_eq!(cpuinfo_ids(&out["cpuinfo"]).len(), 1, "{}", out["cpuinfo"]);
        for path in nri_support::DEFAULT_BINDS {
            let line = out["mountinfo"]
                .lines()
                .find(|l| l.split(' ').nth(4) == Some(path))
                .unwrap_or_else(|| panic!("{path} is not mounted:\n{}", out["mountinfo"]));
            assert!(line.contains(" - fuse"), "{path} is not cgview's: {line}");
            assert!(line.split(' ').nth(5).unwrap().starts_with("ro,"), "{line}");
        }
        drop(bundle);
        drop(inner);
        drop(cgroup);
    }
    connection.assert_clean();
    let metrics = plugin.metrics();
    assert_eq!(injected(&metrics), 2.0, "{metrics}");
    eprintln!("runc end to end: {:.2} s", started.elapsed().as_secs_f64());
}

/// Selection: an opted-out pod, kube-system (even annotated), a namespace given with
/// --nri-skip-namespaces, --nri-default disabled, and a container that already mounts /proc/meminfo
/// (said in the log, naming the path) get no mounts; the others get all of them. The decisions are
/// counted by reason.
#[test]
fn opted_out_excluded_default_off_and_already_mounted_containers_get_no_mounts() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let mnt = &daemon.mount_point;
    let style = CgroupStyle::Systemd;
    let mounts_for = |runtime: &Runtime, namespace: &str, annotations: &[(&str, &str)]| {
        let pod = k8s::pod("web", namespace, style, annotations);
        let container = k8s::plain_container(&pod, "app", style);
        runtime
            .connection()
            .create_container(&pod, &container)
            .unwrap_or_else(|e| panic!("{namespace} {annotations:?}: {e}"))
            .mounts()
    };
    let enabled = [("cgview.io/inject", "enabled")];

    // The defaults: every namespace but kube-system, pods opt out by annotation.
    let (defaults, defaults_plugin) = plugin_for(mnt, &[]);
    assert_default_binds(&mounts_for(&defaults, "shop", &[]), mnt);
    assert_default_binds(&mounts_for(&defaults, "legacy", &[]), mnt);
    let none = mounts_for(&defaults, "shop", &[("cgview.io/inject", "disabled")]);
    assert!(none.is_empty(), "opted out: {:?}", destinations(&none));
    let none = mounts_for(&defaults, "kube-system", &enabled);
    assert!(none.is_empty(), "kube-system: {:?}", destinations(&none));
    let lxcfs_pod = k8s::pod("lxcfs-app", "shop", style, &[]);
    let already = k8s::container(
        &lxcfs_pod,
        "app",
        style,
        k8s::resources(250 << 20, 500, ""),
        vec![Mount::new(
            "/proc/meminfo",
            "bind",
            "/var/lib/lxcfs/proc/meminfo",
            &["rbind", "rprivate", "ro"],
        )],
    );
    let answer = defaults
        .connection()
        .create_container(&lxcfs_pod, &already)
        .unwrap();
    assert!(
        answer.mounts().is_empty(),
        "{:?}",
        destinations(&answer.mounts())
    );
    assert!(
        defaults_plugin.wait_log("already mounts /proc/meminfo", Duration::from_secs(2)),
        "the log does not say why:\n{}",
        defaults_plugin.log_text()
    );
    assert!(
        defaults_plugin.log_text().contains("shop/lxcfs-app/app"),
        "the log does not name the container:\n{}",
        defaults_plugin.log_text()
    );
    let metrics = defaults_plugin.metrics();
    assert_eq!(injected(&metrics), 2.0, "{metrics}");
    assert_eq!(skipped(&metrics, "opted_out"), 1.0, "{metrics}");
    assert_eq!(skipped(&metrics, "namespace_skipped"), 1.0, "{metrics}");
    assert_eq!(skipped(&metrics, "already_mounted"), 1.0, "{metrics}");
    defaults.connection().assert_clean();

    // Off by default, legacy skipped besides kube-system: only annotated pods elsewhere.
    let (strict, strict_plugin) = plugin_for(
        mnt,
        &[
            "--nri-default",
            "disabled",
            "--nri-skip-namespaces",
            "kube-system,legacy",
        ],
    );
    let none = mounts_for(&strict, "shop", &[]);
    assert!(none.is_empty(), "default off: {:?}", destinations(&none));
    assert_default_binds(&mounts_for(&strict, "shop", &enabled), mnt);
    let none = mounts_for(&strict, "legacy", &enabled);
    assert!(none.is_empty(), "legacy: {:?}", destinations(&none));
    let none = mounts_for(&strict, "kube-system", &enabled);
    assert!(none.is_empty(), "kube-system: {:?}", destinations(&none));
    let metrics = strict_plugin.metrics();
    assert_eq!(injected(&metrics), 1.0, "{metrics}");
    assert_eq!(skipped(&metrics, "default_off"), 1.0, "{metrics}");
    assert_eq!(skipped(&metrics, "namespace_skipped"), 2.0, "{metrics}");
    strict.connection().assert_clean();
}

/// Creates containers of new pods until `done` says the answer is the one awaited (the plugin checks
/// the mount point every 250 ms): how many answers came before it, and the last answer.
fn create_until(
    runtime: &Runtime,
    done: impl Fn(&Result<pb::CreateContainerResponse, CallError>) -> bool,
) -> (usize, Result<pb::CreateContainerResponse, CallError>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut before = 0;
    loop {
        let pod = k8s::pod("web", "shop", CgroupStyle::Cgroupfs, &[]);
        let container = k8s::plain_container(&pod, "app", CgroupStyle::Cgroupfs);
        let answer = runtime.connection().create_container(&pod, &container);
        if done(&answer) {
            return (before, answer);
        }
        assert!(Instant::now() < deadline, "still {answer:?} after 5 s");
        before += 1;
        sleep(Duration::from_millis(50));
    }
}

fn refused_for(mount_point: &Path, answer: &Result<pb::CreateContainerResponse, CallError>) {
    match answer {
        Err(CallError::Status { code, message }) => {
            assert_eq!(*code, CODE_FAILED_PRECONDITION, "{message}");
            assert!(
                message.contains(&mount_point.display().to_string()),
                "the mount point is not named: {message}"
            );
            assert!(
                message.contains("nothing is mounted there"),
                "the reason is not given: {message}"
            );
            assert!(message.contains("shop/web/app"), "{message}");
        }
        other => panic!("not refused: {other:?}"),
    }
}

fn is_refused(answer: &Result<pb::CreateContainerResponse, CallError>) -> bool {
    matches!(answer, Err(CallError::Status { code, .. }) if *code == CODE_FAILED_PRECONDITION)
}

fn without_mounts(answer: &Result<pb::CreateContainerResponse, CallError>) -> bool {
    matches!(answer, Ok(response) if response.mounts().is_empty())
}

/// Nothing mounted at the mount point, then the daemon stopped: fail-closed refuses the creation with
/// a status naming the mount point and why; fail-open creates the container without mounts. Both are
/// counted.
#[test]
fn while_cgview_does_not_serve_creation_is_refused_when_closed_and_bare_when_open() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    // Nothing mounted at all.
    let empty = tempfile::Builder::new()
        .prefix("cgview-nri-empty-")
        .tempdir()
        .unwrap();
    let nowhere = empty.path().join("mnt");
    std::fs::create_dir(&nowhere).unwrap();
    let (closed, closed_plugin) = plugin_for(&nowhere, &[]);
    let (open, open_plugin) = plugin_for(&nowhere, &["--nri-when-not-served", "open"]);
    let (_, answer) = create_until(&closed, |_| true);
    refused_for(&nowhere, &answer);
    let (_, answer) = create_until(&open, |_| true);
    assert!(without_mounts(&answer), "{answer:?}");
    let metrics = closed_plugin.metrics();
    assert_eq!(
        metric(
            &metrics,
            "cgview_nri_containers_total{decision=\"refused\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "cgview_nri_errors_total{kind=\"refused_not_served\"}"
        ),
        1.0
    );
    assert_eq!(skipped(&open_plugin.metrics(), "not_served"), 1.0);
    assert!(
        closed_plugin.log_text().contains("refusing to create"),
        "{}",
        closed_plugin.log_text()
    );

    // A daemon that serves, then stops.
    let mut daemon = Daemon::start(&[], WITHOUT_KEEPER);
    let mnt = daemon.mount_point.clone();
    let (closed, closed_plugin) = plugin_for(&mnt, &[]);
    let (open, open_plugin) = plugin_for(&mnt, &["--nri-when-not-served", "open"]);
    for runtime in [&closed, &open] {
        let (_, answer) = create_until(runtime, |_| true);
        assert_default_binds(&answer.unwrap().mounts(), &mnt);
    }
    assert!(daemon.stop_with("TERM").success());
    assert!(!is_mounted(&mnt));
    let stopped = Instant::now();
    let (served_meanwhile, answer) = create_until(&closed, is_refused);
    eprintln!(
        "daemon stopped: {served_meanwhile} creations still got the binds, refused after {:.0} ms",
        stopped.elapsed().as_secs_f64() * 1e3
    );
    refused_for(&mnt, &answer);
    let metrics = closed_plugin.metrics();
    assert_eq!(
        injected(&metrics),
        1.0 + served_meanwhile as f64,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "cgview_nri_containers_total{decision=\"refused\"}"
        ),
        1.0
    );
    let (served_meanwhile, _) = create_until(&open, without_mounts);
    let metrics = open_plugin.metrics();
    assert_eq!(
        injected(&metrics),
        1.0 + served_meanwhile as f64,
        "{metrics}"
    );
    assert_eq!(skipped(&metrics, "not_served"), 1.0, "{metrics}");
    for runtime in [&closed, &open] {
        runtime.connection().assert_clean();
    }
}

/// A running container of `pod` as `Synchronize` lists it, with `mounts` on top of the runtime's.
fn running(pod: &pb::PodSandbox, name: &str, mounts: Vec<Mount>) -> pb::Container {
    let mut container = k8s::container(
        pod,
        name,
        CgroupStyle::Systemd,
        k8s::resources(250 << 20, 500, ""),
        mounts,
    );
    container.state = pb::CONTAINER_RUNNING;
    container.pid = 10_000 + name.len() as u32;
    container
}

/// The runtime restarts mid-stream: after some creations the connection and the listener go, and a
/// second later the runtime listens again. The plugin registers again (within its back-off), is
/// configured and synchronized with the containers that exist (one created before any plugin, without
/// the binds; the ones it bound), and creations get the mounts again. After a Shutdown the plugin
/// leaves and comes back too.
#[test]
fn the_plugin_registers_again_after_the_runtime_restarts() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let mnt = &daemon.mount_point;
    let mut runtime = Runtime::listen();
    let plugin = Plugin::start(mnt, runtime.socket(), &lock_dir(&runtime), &[]);
    let old_pod = k8s::pod("old", "shop", CgroupStyle::Systemd, &[]);
    let old = running(&old_pod, "app", Vec::new());
    runtime.handshake(
        CONNECT_WITHIN,
        std::slice::from_ref(&old_pod),
        std::slice::from_ref(&old),
    );
    let metrics = plugin.metrics();
    assert_eq!(
        metric(&metrics, "cgview_nri_running_without_view"),
        1.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "cgview_nri_tracked_containers"), 1.0);

    let pod = k8s::pod("web", "shop", CgroupStyle::Systemd, &[]);
    let mut existing = vec![old.clone()];
    for n in 0..3 {
        let mut container = k8s::plain_container(&pod, &format!("c{n}"), CgroupStyle::Systemd);
        let mounts = runtime
            .connection()
            .create_container(&pod, &container)
            .unwrap()
            .mounts();
        assert_default_binds(&mounts, mnt);
        container.mounts.extend(mounts);
        container.state = pb::CONTAINER_RUNNING;
        existing.push(container);
    }
    let removed = existing.pop().unwrap();
    runtime
        .connection()
        .remove_container(&pod, &removed)
        .unwrap();
    assert_eq!(
        metric(&plugin.metrics(), "cgview_nri_tracked_containers"),
        3.0
    );
    runtime.connection().assert_clean();

    let restarted = Instant::now();
    runtime.restart(Duration::from_secs(1));
    let registration = runtime.handshake(
        Duration::from_secs(10),
        &[old_pod.clone(), pod.clone()],
        &existing,
    );
    let back_after = restarted.elapsed();
    eprintln!(
        "registered again {:.2} s after the runtime went down (1 s down)",
        back_after.as_secs_f64()
    );
    assert!(back_after < Duration::from_secs(4), "{back_after:?}");
    assert_eq!(registration.name, "cgview");
    let metrics = plugin.metrics();
    assert_eq!(
        metric(&metrics, "cgview_nri_registrations_total"),
        2.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "cgview_nri_connected"), 1.0);
    assert_eq!(metric(&metrics, "cgview_nri_tracked_containers"), 3.0);
    assert_eq!(metric(&metrics, "cgview_nri_running_without_view"), 1.0);
    for n in 3..5 {
        let container = k8s::plain_container(&pod, &format!("c{n}"), CgroupStyle::Systemd);
        let mounts = runtime
            .connection()
            .create_container(&pod, &container)
            .unwrap()
            .mounts();
        assert_default_binds(&mounts, mnt);
    }
    let metrics = plugin.metrics();
    assert_eq!(injected(&metrics), 5.0, "{metrics}");
    assert_eq!(metric(&metrics, "cgview_nri_tracked_containers"), 5.0);
    runtime.connection().assert_clean();

    // A runtime going down in order says Shutdown first: the plugin answers and ends the connection,
    // then connects again (here the runtime still listens) and registers a third time.
    runtime.connection().shutdown().unwrap();
    let why = runtime.connection().wait_closed(Duration::from_secs(2));
    assert_eq!(why.as_deref(), Some("the plugin closed the connection"));
    runtime.handshake(Duration::from_secs(5), &[], &[]);
    assert_eq!(
        metric(&plugin.metrics(), "cgview_nri_registrations_total"),
        3.0
    );
    runtime.connection().assert_clean();
}

/// A request body that is not a ttrpc Request, a CreateContainer whose payload is not a
/// CreateContainerRequest, and a method unknown to the plugin get error statuses; a message whose
/// header claims 5 MiB gets RESOURCE_EXHAUSTED; the plugin answers the next CreateContainer normally
/// on the same connection. The unknown method's long name makes an answer longer than a multiplexer
/// frame: the plugin splits it into frames the runtime's 4096-byte reads take.
#[test]
fn malformed_and_oversized_messages_get_errors_and_the_plugin_goes_on() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let (runtime, plugin) = plugin_for(&daemon.mount_point, &[]);
    let connection = runtime.connection();

    let stream = connection.next_stream();
    connection
        .send_message(PLUGIN_CONN, stream, TTRPC_REQUEST, b"\xff\xff\xff\xff")
        .unwrap();
    let reply = connection.wait(stream, REQUEST_TIMEOUT).unwrap();
    assert_eq!(reply.response.code(), CODE_INVALID_ARGUMENT, "{reply:?}");

    match connection.call("CreateContainer", b"\x0a\xff\xff") {
        Err(CallError::Status { code, message }) => {
            assert_eq!(code, CODE_INVALID_ARGUMENT, "{message}");
            assert!(message.contains("CreateContainerRequest"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    let method = format!("Frobnicate{}", "X".repeat(10_000));
    let stream = connection.request(&method, &[]).unwrap();
    let reply = connection.wait(stream, REQUEST_TIMEOUT).unwrap();
    assert_eq!(
        reply.response.code(),
        CODE_UNIMPLEMENTED,
        "{:?}",
        reply.response.status
    );
    assert!(
        reply.frames >= 3,
        "an answer of over 10 kB in {} frames",
        reply.frames
    );
    assert!(connection.frame_stats().largest <= MUX_READ_BUFFER);

    let stream = connection.next_stream();
    let claimed = 5usize << 20;
    let oversized =
        ttrpc_message_claiming(claimed as u32, stream, TTRPC_REQUEST, &vec![0; claimed]);
    connection
        .send_raw(PLUGIN_CONN, &oversized, 1 << 20, Some(stream))
        .unwrap();
    let reply = connection.wait(stream, Duration::from_secs(5)).unwrap();
    assert_eq!(reply.response.code(), CODE_RESOURCE_EXHAUSTED, "{reply:?}");

    // A request cut over many tiny frames, as any runtime may write it, still arrives whole.
    let pod = k8s::pod("web", "shop", CgroupStyle::Cgroupfs, &[]);
    let container = k8s::plain_container(&pod, "app", CgroupStyle::Cgroupfs);
    let stream = connection.next_stream();
    let request = pb::Request {
        service: nri_support::runtime::PLUGIN_SERVICE.to_owned(),
        method: "CreateContainer".to_owned(),
        payload: pb::container_request(&pod, &container),
        timeout_nano: REQUEST_TIMEOUT.as_nanos() as i64,
    };
    let bytes = ttrpc_message(stream, TTRPC_REQUEST, &request.encode());
    connection
        .send_raw(PLUGIN_CONN, &bytes, 7, Some(stream))
        .unwrap();
    let reply = connection.wait(stream, REQUEST_TIMEOUT).unwrap();
    assert_eq!(reply.response.code(), 0, "{reply:?}");
    let answer = pb::CreateContainerResponse::decode(&reply.response.payload).unwrap();
    assert_default_binds(&answer.mounts(), &daemon.mount_point);

    let container = k8s::plain_container(&pod, "sidecar", CgroupStyle::Cgroupfs);
    let answer = connection.create_container(&pod, &container).unwrap();
    assert_default_binds(&answer.mounts(), &daemon.mount_point);
    connection.assert_clean();
    assert!(connection.closed().is_none());
    let metrics = plugin.metrics();
    assert_eq!(
        metric(&metrics, "cgview_nri_errors_total{kind=\"bad_request\"}"),
        3.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "cgview_nri_errors_total{kind=\"oversized\"}"),
        1.0
    );
    assert_eq!(metric(&metrics, "cgview_nri_registrations_total"), 1.0);
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

/// 200 creations one after another (as containerd sends them per container) and 200 more eight in
/// flight at a time on different streams, after a Synchronize of 100 running containers split in two
/// parts: all answered with the mounts, each well under the 2 s request timeout.
#[test]
fn a_burst_of_creations_is_answered_well_within_the_request_timeout() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let mnt = &daemon.mount_point;
    let mut runtime = Runtime::listen();
    let plugin = Plugin::start(mnt, runtime.socket(), &lock_dir(&runtime), &[]);
    let old_pod = k8s::pod("old", "shop", CgroupStyle::Cgroupfs, &[]);
    let binds: Vec<Mount> = nri_support::DEFAULT_BINDS
        .iter()
        .map(|d| {
            Mount::new(
                d,
                "bind",
                &mnt.join(d.trim_start_matches('/')).to_string_lossy(),
                &["bind", "ro", "nosuid", "nodev", "noexec"],
            )
        })
        .collect();
    let existing: Vec<pb::Container> = (0..100)
        .map(|n| running(&old_pod, &format!("old{n}"), binds.clone()))
        .collect();
    runtime.handshake(CONNECT_WITHIN, &[old_pod], &existing);
    let metrics = plugin.metrics();
    assert_eq!(
        metric(&metrics, "cgview_nri_tracked_containers"),
        100.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "cgview_nri_running_without_view"), 0.0);

    let connection = runtime.connection();
    let pod = k8s::pod("burst", "shop", CgroupStyle::Systemd, &[]);
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut created = Vec::new();
    for n in 0..200 {
        let container = k8s::plain_container(&pod, &format!("c{n}"), CgroupStyle::Systemd);
        let stream = connection
            .request("CreateContainer", &pb::container_request(&pod, &container))
            .unwrap();
        let reply = connection.wait(stream, REQUEST_TIMEOUT).unwrap();
        assert_eq!(reply.response.code(), 0, "{reply:?}");
        let answer = pb::CreateContainerResponse::decode(&reply.response.payload).unwrap();
        assert_eq!(answer.mounts().len(), 8);
        latencies.push(reply.latency);
        created.push(container);
    }
    let sequential = started.elapsed();
    let started = Instant::now();
    for batch in 0..25 {
        let containers: Vec<pb::Container> = (0..8)
            .map(|n| k8s::plain_container(&pod, &format!("p{batch}-{n}"), CgroupStyle::Systemd))
            .collect();
        let streams: Vec<u32> = containers
            .iter()
            .map(|c| {
                connection
                    .request("CreateContainer", &pb::container_request(&pod, c))
                    .unwrap()
            })
            .collect();
        for stream in streams {
            let reply = connection.wait(stream, REQUEST_TIMEOUT).unwrap();
            assert_eq!(reply.response.code(), 0, "{reply:?}");
            let answer = pb::CreateContainerResponse::decode(&reply.response.payload).unwrap();
            assert_eq!(answer.mounts().len(), 8);
            latencies.push(reply.latency);
        }
        created.extend(containers);
    }
    let in_flight = started.elapsed();
    latencies.sort_unstable();
    let (p50, p99, max) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        *latencies.last().unwrap(),
    );
    eprintln!(
        "400 CreateContainer: 200 sequential in {:.0} ms, 200 eight in flight in {:.0} ms; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        sequential.as_secs_f64() * 1e3,
        in_flight.as_secs_f64() * 1e3,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    assert!(max < REQUEST_TIMEOUT / 4, "max latency {max:?}");
    for container in &created {
        connection.remove_container(&pod, container).unwrap();
    }
    let metrics = plugin.metrics();
    assert_eq!(injected(&metrics), 400.0, "{metrics}");
    assert_eq!(metric(&metrics, "cgview_nri_tracked_containers"), 100.0);
    connection.assert_clean();
}

/// A plugin the runtime launched (pre-installed in /opt/nri/plugins): its end of a socket pair is fd
/// 3, named by NRI_PLUGIN_SOCKET with NRI_PLUGIN_NAME and NRI_PLUGIN_IDX. It registers with that name
/// and index, serves, and exits 0 when the runtime closes the connection. Needs no root: nothing is
/// mounted (fail-open: the container is created without mounts).
#[test]
fn a_plugin_the_runtime_launched_serves_the_inherited_socket_and_exits_with_it() {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::os::unix::process::CommandExt;

    let dir = tempfile::Builder::new()
        .prefix("cgview-nri-launched-")
        .tempdir()
        .unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let fd = theirs.as_raw_fd();
    let mut command = std::process::Command::new(BIN);
    command
        .arg("nri")
        .arg(dir.path().join("mnt"))
        .args(["--nri-when-not-served", "open", "--nri-lock-dir"])
        .arg(dir.path().join("locks"))
        .arg("--nri-socket")
        .arg(dir.path().join("never.sock"))
        .env("NRI_PLUGIN_SOCKET", "3")
        .env("NRI_PLUGIN_NAME", "cgview")
        .env("NRI_PLUGIN_IDX", "10");
    // SAFETY: the closure runs in the forked child before exec and calls only dup2 and fcntl, which are
    // async-signal-safe; it touches no memory but the copied descriptor number.
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                // Already fd 3: only the close-on-exec flag must go.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut plugin = Plugin::spawn(command);
    drop(theirs);
    let mut runtime = Runtime::launched(ours);
    let registration = runtime.handshake(CONNECT_WITHIN, &[], &[]);
    assert_eq!(
        (registration.name.as_str(), registration.index.as_str()),
        ("cgview", "10"),
        "{registration:?}"
    );
    assert_eq!(registration.stream, 1);
    assert!(registration.timeout_nano > 0, "{registration:?}");
    let pod = k8s::pod("web", "shop", CgroupStyle::Systemd, &[]);
    let container = k8s::plain_container(&pod, "app", CgroupStyle::Systemd);
    let answer = runtime
        .connection()
        .create_container(&pod, &container)
        .unwrap();
    assert!(answer.mounts().is_empty(), "{answer:?}");
    runtime.connection().assert_clean();
    assert!(plugin
        .log_text()
        .contains("serving the connection the runtime passed in NRI_PLUGIN_SOCKET"));
    runtime.drop_connection();
    let status = plugin.wait_exit(Duration::from_secs(5)).unwrap_or_else(|| {
        panic!(
            "the plugin did not exit when the runtime closed its socket:\n{}",
            plugin.log_text()
        )
    });
    assert!(status.success(), "{status}:\n{}", plugin.log_text());
}

/// `cgview mount --nri`: the daemon runs the plugin on a thread; it registers, a CreateContainer gets
/// the mounts, and the daemon's /metrics counts it.
#[test]
fn mount_with_nri_registers_and_counts_in_the_daemons_metrics() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let mut runtime = Runtime::listen();
    let socket = runtime.socket().to_str().unwrap().to_owned();
    let locks = lock_dir(&runtime).to_str().unwrap().to_owned();
    let daemon = Daemon::start(
        &[],
        &[
            "--nri",
            "--nri-socket",
            &socket,
            "--nri-lock-dir",
            &locks,
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    );
    let registration = runtime.handshake(CONNECT_WITHIN, &[], &[]);
    let registered = Instant::now();
    assert_eq!(registration.name, "cgview");
    // The plugin starts before the daemon serves, and its check of the mount point runs every 250 ms:
    // creations right after the registration may still be refused (fail-closed).
    let (refused_first, answer) = create_until(&runtime, |answer| !is_refused(answer));
    eprintln!(
        "mount --nri: {refused_first} creations refused in the {:.0} ms after the registration",
        registered.elapsed().as_secs_f64() * 1e3
    );
    assert_default_binds(&answer.unwrap().mounts(), &daemon.mount_point);
    runtime.connection().assert_clean();
    let log = daemon.log_text();
    let address = log
        .lines()
        .find(|l| l.contains("serving /metrics and /healthz"))
        .and_then(|l| l.split("address=").nth(1))
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"))
        .trim()
        .to_owned();
    let metrics = scrape(&address);
    assert_eq!(injected(&metrics), 1.0, "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "cgview_nri_containers_total{decision=\"refused\"}"
        ),
        refused_first as f64
    );
    assert_eq!(metric(&metrics, "cgview_nri_connected"), 1.0);
    assert_eq!(metric(&metrics, "cgview_nri_registrations_total"), 1.0);
    assert!(metrics.contains("cgview_mount_live 1"), "{metrics}");
}

/// One plugin per runtime socket: a second `cgview nri` for the same socket (a rollout's next pod)
/// waits for the lock and does not connect until the first is killed; then it registers and serves.
#[test]
fn a_second_plugin_for_the_same_runtime_registers_only_when_the_first_is_gone() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let daemon = Daemon::start(&[], &[]);
    let mnt = &daemon.mount_point;
    let mut runtime = Runtime::listen();
    let locks = lock_dir(&runtime);
    let mut first = Plugin::start(mnt, runtime.socket(), &locks, &[]);
    runtime.handshake(CONNECT_WITHIN, &[], &[]);
    let second = Plugin::start(mnt, runtime.socket(), &locks, &[]);
    assert!(
        second.wait_log(
            "another cgview NRI plugin for this runtime holds",
            Duration::from_secs(5)
        ),
        "{}",
        second.log_text()
    );
    assert!(
        runtime.no_connection_within(Duration::from_millis(700)),
        "the second plugin connected while the first holds the lock"
    );
    let first_connection_open = runtime.connection().closed().is_none();
    assert!(first_connection_open);
    first.kill();
    let registration = runtime.handshake(CONNECT_WITHIN, &[], &[]);
    assert_eq!(registration.name, "cgview");
    let pod = k8s::pod("web", "shop", CgroupStyle::Systemd, &[]);
    let container = k8s::plain_container(&pod, "app", CgroupStyle::Systemd);
    let answer = runtime
        .connection()
        .create_container(&pod, &container)
        .unwrap();
    assert_default_binds(&answer.mounts(), mnt);
    let metrics = second.metrics();
    assert_eq!(
        metric(&metrics, "cgview_nri_registrations_total"),
        1.0,
        "{metrics}"
    );
    assert_eq!(injected(&metrics), 1.0);
    runtime.connection().assert_clean();
}

/// The series of `cgview_nri_seccomp_total` for a skip `reason`.
fn seccomp_skipped(text: &str, reason: &str) -> f64 {
    metric(
        text,
        &format!("cgview_nri_seccomp_total{{decision=\"skipped\",reason=\"{reason}\"}}"),
    )
}

/// The daemon's metrics address, from its log.
fn daemon_metrics(daemon: &Daemon) -> String {
    let log = daemon.log_text();
    let address = log
        .lines()
        .find(|l| l.contains("serving /metrics and /healthz"))
        .and_then(|l| l.split("address=").nth(1))
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"))
        .trim()
        .to_owned();
    scrape(&address)
}

/// "name value" lines.
fn values(text: &str) -> std::collections::HashMap<String, i64> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// `--nri-seccomp-socket` end to end (NRI 0.10's seccomp adjustment): `cgview mount --nri
/// --seccomp-socket S` (the plugin names the daemon's own socket). The fake runtime sends a container
/// whose policy is RuntimeDefault (containers-common's profile resolved for runc's default
/// capabilities: default action SCMP_ACT_ERRNO, sysinfo in the big allow rule); the answer carries the
/// binds and the merged policy, which the harness writes over the bundle's `linux.seccomp` as containerd
/// does; runc starts it in a 300 MiB cgroup, and inside, busybox `free` and a static probe calling
/// sysinfo(2) see 300 MiB (the same bundle with the container's policy alone: the host's). A container
/// without a policy (unconfined) and one whose policy has another listener get the binds and no
/// seccomp adjustment. Every decision is counted in the daemon's metrics.
#[test]
fn the_seccomp_adjustment_hands_sysinfo_to_the_daemon_and_keeps_the_containers_profile() {
    if !needs_met(MOUNT_AND_CGROUPS)
        || !runc_available()
        || !file_available(Path::new("/usr/bin/cc"), "gcc libc6-dev")
        || !file_available(
            Path::new(k8s::CONTAINERS_SECCOMP),
            "golang-github-containers-common",
        )
    {
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("cgview-nri-seccomp-")
        .tempdir()
        .unwrap();
    let probe = work.path().join("probe");
    let output = std::process::Command::new("cc")
        .args(["-O2", "-static", "-pthread", "-o"])
        .arg(&probe)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seccomp_support/probe.c"))
        .output()
        .unwrap();
    expect_success("cc -static probe.c", &output);
    let seccomp_socket = work.path().join("seccomp.sock");
    let seccomp_arg = seccomp_socket.to_str().unwrap().to_owned();
    let mut runtime = Runtime::listen();
    let socket = runtime.socket().to_str().unwrap().to_owned();
    let locks = lock_dir(&runtime).to_str().unwrap().to_owned();
    let daemon = Daemon::start(
        &[],
        &[
            "--connection-holder",
            "none",
            "--seccomp-socket",
            &seccomp_arg,
            "--nri",
            "--nri-socket",
            &socket,
            "--nri-lock-dir",
            &locks,
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    );
    runtime.handshake(CONNECT_WITHIN, &[], &[]);
    let (refused_first, _) = create_until(&runtime, |answer| !is_refused(answer));

    let hierarchies: Vec<&'static str> = RUNC_CONTROLLERS
        .into_iter()
        .filter(|h| Path::new(CGROUP_ROOT).join(h).join("cgroup.procs").exists())
        .collect();
    let cgroup = TestCgroup::new("nri-seccomp", &hierarchies);
    let inner = cgroup.child("ctr");
    inner.set("memory", "memory.limit_in_bytes", &(300 * MIB).to_string());
    let script = "echo ==free==; free; echo ==probe==; /bin/probe values";
    // The capabilities of runc's default spec, which the profile's rules are resolved for.
    let capabilities = Bundle::new("true", "/", &[]).capabilities();
    let runtime_default = k8s::runtime_default_seccomp(&capabilities).unwrap();
    let rules = runtime_default["syscalls"].as_array().unwrap().clone();
    assert_eq!(runtime_default["defaultAction"], "SCMP_ACT_ERRNO");
    assert!(
        rules.iter().any(|r| r["action"] == "SCMP_ACT_ALLOW"
            && r["names"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == "sysinfo")),
        "containers-common's profile allows sysinfo"
    );

    let pod = k8s::pod("web", "shop", CgroupStyle::Cgroupfs, &[]);
    let mut container = k8s::plain_container(&pod, "app", CgroupStyle::Cgroupfs);
    container.linux.as_mut().unwrap().seccomp = Some(runtime_default.clone());
    let answer = runtime
        .connection()
        .create_container(&pod, &container)
        .unwrap();
    let adjust = answer.adjust.as_ref().expect("no adjustment");
    assert!(adjust.other_fields.is_empty(), "{adjust:?}");
    assert_default_binds(&adjust.mounts, &daemon.mount_point);
    let policy = adjust
        .seccomp
        .clone()
        .expect("no seccomp policy in the adjustment");
    assert_eq!(policy["listenerPath"], seccomp_arg.as_str());
    assert_eq!(policy["listenerMetadata"], "cgview-sysinfo");
    for key in ["defaultAction", "defaultErrnoRet", "architectures"] {
        assert_eq!(policy[key], runtime_default[key], "{key}");
    }
    let adjusted = policy["syscalls"].as_array().unwrap();
    assert_eq!(
        adjusted.last().unwrap(),
        &serde_json::json!({"names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY"})
    );
    // Every other rule as it was, less sysinfo.
    let without_sysinfo: Vec<serde_json::Value> = rules
        .iter()
        .filter_map(|rule| {
            let mut rule = rule.clone();
            let names: Vec<serde_json::Value> = rule["names"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| *n != "sysinfo")
                .cloned()
                .collect();
            rule["names"] = names.clone().into();
            (!names.is_empty()).then_some(rule)
        })
        .collect();
    assert_eq!(adjusted[..adjusted.len() - 1], without_sysinfo[..]);

    // runc: the container's own figures through sysinfo(2), its profile otherwise in force. The
    // binds go into the bundle's mounts and the policy over its linux.seccomp, as containerd applies
    // the adjustment.
    let bundle = Bundle::new(script, &format!("/{}", inner.relative), &adjust.mounts);
    bundle.install(&probe, "probe");
    bundle.set_seccomp(Some(&policy));
    let output = bundle.run(&unique_name("nri-seccomp"));
    expect_success("runc run (RuntimeDefault + cgview's rule)", &output);
    let out = sections(&String::from_utf8_lossy(&output.stdout));
    let probe_values = values(&out["probe"]);
    assert_eq!(probe_values["totalram"], 300 << 20, "{}", out["probe"]);
    assert_eq!(probe_values["mem_unit"], 1, "{}", out["probe"]);
    let free_total: i64 = out["free"]
        .lines()
        .find_map(|l| l.strip_prefix("Mem:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no Mem: line in:\n{}", out["free"]));
    assert_eq!(free_total, 300 * 1024, "{}", out["free"]);
    // The same bundle with the container's own policy (no adjustment): the host's figure.
    bundle.set_seccomp(Some(&runtime_default));
    let output = bundle.run(&unique_name("nri-seccomp-own"));
    expect_success("runc run (RuntimeDefault alone)", &output);
    let out = sections(&String::from_utf8_lossy(&output.stdout));
    let host_total = meminfo_kb(
        &std::fs::read_to_string("/proc/meminfo").unwrap(),
        "MemTotal",
    );
    assert_eq!(values(&out["probe"])["totalram"], host_total as i64 * 1024);
    drop(bundle);
    drop(inner);
    drop(cgroup);

    // Unconfined: binds, the policy left alone (none), counted.
    let pod = k8s::pod("batch", "shop", CgroupStyle::Cgroupfs, &[]);
    let unconfined = k8s::plain_container(&pod, "app", CgroupStyle::Cgroupfs);
    let answer = runtime
        .connection()
        .create_container(&pod, &unconfined)
        .unwrap();
    assert_default_binds(&answer.mounts(), &daemon.mount_point);
    assert_eq!(answer.adjust.as_ref().unwrap().seccomp, None);
    // Another agent's listener: left alone, counted.
    let mut foreign = k8s::plain_container(&pod, "agent", CgroupStyle::Cgroupfs);
    let mut theirs = runtime_default.clone();
    theirs["listenerPath"] = "/run/other-agent/notify.sock".into();
    foreign.linux.as_mut().unwrap().seccomp = Some(theirs);
    let answer = runtime
        .connection()
        .create_container(&pod, &foreign)
        .unwrap();
    assert_default_binds(&answer.mounts(), &daemon.mount_point);
    assert_eq!(answer.adjust.as_ref().unwrap().seccomp, None);
    runtime.connection().assert_clean();

    let metrics = daemon_metrics(&daemon);
    assert_eq!(
        metric(&metrics, "cgview_nri_seccomp_total{decision=\"added\"}"),
        1.0,
        "{metrics}"
    );
    // The first creation create_until got through (a plain, unconfined container) and `unconfined`;
    // the refused ones never reached the seccomp decision.
    assert_eq!(seccomp_skipped(&metrics, "unconfined"), 2.0, "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "cgview_nri_containers_total{decision=\"refused\"}"
        ),
        refused_first as f64
    );
    assert_eq!(seccomp_skipped(&metrics, "has_listener"), 1.0, "{metrics}");
    assert_eq!(seccomp_skipped(&metrics, "not_served"), 0.0, "{metrics}");
    let log = daemon.log_text();
    assert!(
        log.contains("not handing sysinfo(2) of container shop/batch/agent")
            && log.contains("/run/other-agent/notify.sock"),
        "{log}"
    );
}

/// `cgview nri --nri-seccomp-socket S` while nothing listens on S (a socket file left by a daemon that
/// is gone) and the mount point is served: fail-closed refuses a RuntimeDefault container's creation,
/// naming the seccomp socket and why (runc would fail it anyway: nobody takes its notify descriptor);
/// fail-open gives it the binds and leaves its policy alone. An unconfined container needs no socket
/// and gets the binds either way. Counted.
#[test]
fn while_the_seccomp_socket_is_not_served_creation_is_refused_when_closed_and_unadjusted_when_open()
{
    if !needs_met(MOUNT_AND_CGROUPS)
        || !file_available(
            Path::new(k8s::CONTAINERS_SECCOMP),
            "golang-github-containers-common",
        )
    {
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("cgview-nri-seccomp-gone-")
        .tempdir()
        .unwrap();
    let stale = work.path().join("seccomp.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let stale_arg = stale.to_str().unwrap().to_owned();
    let daemon = Daemon::start(&[], &[]);
    let caps = [
        "CAP_AUDIT_WRITE".to_owned(),
        "CAP_KILL".to_owned(),
        "CAP_NET_BIND_SERVICE".to_owned(),
    ];
    let runtime_default = k8s::runtime_default_seccomp(&caps).unwrap();
    let confined = |pod: &pb::PodSandbox| {
        let mut container = k8s::plain_container(pod, "app", CgroupStyle::Cgroupfs);
        container.linux.as_mut().unwrap().seccomp = Some(runtime_default.clone());
        container
    };

    let (closed, closed_plugin) =
        plugin_for(&daemon.mount_point, &["--nri-seccomp-socket", &stale_arg]);
    // The plugin's first check of the mount point may still be under way: wait for the binds.
    let (refused_before, first) = create_until(&closed, |answer| !is_refused(answer));
    assert_default_binds(&first.unwrap().mounts(), &daemon.mount_point);
    let pod = k8s::pod("web", "shop", CgroupStyle::Cgroupfs, &[]);
    match closed.connection().create_container(&pod, &confined(&pod)) {
        Err(CallError::Status { code, message }) => {
            assert_eq!(code, CODE_FAILED_PRECONDITION, "{message}");
            assert!(message.contains("seccomp socket"), "{message}");
            assert!(message.contains(&stale_arg), "{message}");
            assert!(message.contains("shop/web/app"), "{message}");
        }
        other => panic!("not refused: {other:?}"),
    }
    let metrics = closed_plugin.metrics();
    assert_eq!(
        metric(&metrics, "cgview_nri_seccomp_total{decision=\"refused\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "cgview_nri_containers_total{decision=\"refused\"}"
        ),
        refused_before as f64 + 1.0,
        "{metrics}"
    );
    closed.connection().assert_clean();

    let (open, open_plugin) = plugin_for(
        &daemon.mount_point,
        &[
            "--nri-seccomp-socket",
            &stale_arg,
            "--nri-when-not-served",
            "open",
        ],
    );
    let (_, _) = create_until(
        &open,
        |answer| matches!(answer, Ok(response) if !response.mounts().is_empty()),
    );
    let answer = open
        .connection()
        .create_container(&pod, &confined(&pod))
        .unwrap();
    assert_default_binds(&answer.mounts(), &daemon.mount_point);
    assert_eq!(answer.adjust.as_ref().unwrap().seccomp, None);
    let metrics = open_plugin.metrics();
    assert_eq!(seccomp_skipped(&metrics, "not_served"), 1.0, "{metrics}");
    assert_eq!(
        metric(&metrics, "cgview_nri_seccomp_total{decision=\"added\"}"),
        0.0
    );
    assert!(open_plugin
        .log_text()
        .contains("starts with the host's sysinfo(2): cgview does not serve its seccomp socket"));
    open.connection().assert_clean();
}
