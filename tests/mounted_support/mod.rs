//! Guards for the mounted suite: real cgroups and a real `cgview mount`, removed even when a test panics.
//!
//! Tools used (Debian packages): sh, cat, dd, sleep, ls (coreutils, dash), unshare, mount, setpriv
//! (util-linux), free, top, uptime, vmstat (procps), getconf (libc-bin), python3, node (nodejs),
//! iostat, mpstat (sysstat). `tests/run.sh` installs them.

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub mod docker;
#[path = "../needs/mod.rs"]
pub mod needs;
// Every suite takes what it needs of these; none takes all.
#[allow(unused_imports)]
pub use needs::{needs_met, Need, MOUNT_AND_CGROUPS, MOUNT_AND_CGROUPS_OVER_IO_URING};

pub const BIN: &str = env!("CARGO_BIN_EXE_cgview");
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
pub const MIB: u64 = 1 << 20;
/// `cgview mount` options for a daemon whose connection ends with it: a stop unmounts, a crash leaves
/// dead mounts the next daemon repairs.
pub const WITHOUT_KEEPER: &[&str] = &["--connection-holder", "none"];

pub fn unique_name(label: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "cgview-test-{}-{label}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A cgroup with the same relative path in several v1 hierarchies.
pub struct TestCgroup {
    pub relative: String,
    pub controllers: Vec<&'static str>,
}

impl TestCgroup {
    pub fn new(label: &str, controllers: &[&'static str]) -> TestCgroup {
        Self::create(unique_name(label), controllers)
    }

    /// A cgroup below this one, in the same hierarchies.
    pub fn child(&self, name: &str) -> TestCgroup {
        Self::create(format!("{}/{name}", self.relative), &self.controllers)
    }

    fn create(relative: String, controllers: &[&'static str]) -> TestCgroup {
        let cgroup = TestCgroup {
            relative,
            controllers: controllers.to_vec(),
        };
        for controller in controllers {
            let dir = cgroup.dir(controller);
            fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            if *controller == "cpuset" {
                // A v1 cpuset accepts no task until it has CPUs and memory nodes.
                let parent = dir.parent().unwrap();
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let value = fs::read_to_string(parent.join(file)).unwrap();
                    fs::write(dir.join(file), value.trim()).unwrap();
                }
            }
        }
        cgroup
    }

    pub fn dir(&self, controller: &str) -> PathBuf {
        Path::new(CGROUP_ROOT).join(controller).join(&self.relative)
    }

    pub fn set(&self, controller: &str, file: &str, value: &str) {
        let path = self.dir(controller).join(file);
        fs::write(&path, value)
            .unwrap_or_else(|e| panic!("write {value:?} to {}: {e}", path.display()));
    }

    /// Shell commands that move the running shell (`$$`) into this cgroup in every hierarchy.
    pub fn enter_script(&self) -> String {
        self.controllers
            .iter()
            .map(|c| format!("echo $$ > {}/cgroup.procs", self.dir(c).display()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Runs `script` with `sh` inside this cgroup and returns its standard output; fails on non-zero exit.
    pub fn run(&self, script: &str) -> String {
        run_sh(&format!("{}; {script}", self.enter_script()))
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for controller in &self.controllers {
            let dir = self.dir(controller);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                if procs.trim().is_empty() {
                    break;
                }
                for pid in procs.split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
                if Instant::now() > deadline {
                    break;
                }
                sleep(Duration::from_millis(20));
            }
            // Children were dropped first (they are declared later); retry while the kernel reaps tasks.
            for _ in 0..100 {
                if fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    break;
                }
                sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Runs `sh -c script`; panics with its output when it fails.
pub fn run_sh(script: &str) -> String {
    let output = Command::new("sh").arg("-c").arg(script).output().unwrap();
    expect_success(script, &output);
    String::from_utf8(output.stdout).unwrap()
}

pub fn expect_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what}\nexit: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A running `cgview mount` on its own temporary mount point.
pub struct Daemon {
    child: Option<Child>,
    pub mount_point: PathBuf,
    log: PathBuf,
    /// The options after the mount point, given again to a successor or a respawned daemon.
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `cgview [prefix...] mount <mnt> [args...]`, possibly behind a wrapper such as `unshare -C`.
    pub fn start(wrapper: &[&str], args: &[&str]) -> Daemon {
        let launch = |mount_point: &Path| {
            let mut command = match wrapper.split_first() {
                Some((program, rest)) => {
                    let mut c = Command::new(program);
                    c.args(rest).arg(BIN);
                    c
                }
                None => Command::new(BIN),
            };
            command.arg("mount").arg(mount_point).args(args);
            command
        };
        Self::launch(launch, args)
    }

    /// Starts another daemon serving `proc/meminfo` and the like, as `<program> [args...] <mnt>` on a
    /// mount point made for it (LXCFS, which the benchmarks compare with). It has no successor.
    pub fn start_program(program: &str, args: &[&str]) -> Daemon {
        let launch = |mount_point: &Path| {
            fs::create_dir(mount_point).unwrap();
            let mut command = Command::new(program);
            command.args(args).arg(mount_point);
            command
        };
        Self::launch(launch, &[])
    }

    /// Runs the command `launch` makes for a fresh mount point, logging to a file beside it, and waits
    /// until it serves; `args` are what a successor or a respawned daemon is given.
    fn launch(launch: impl FnOnce(&Path) -> Command, args: &[&str]) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("cgview-mnt-")
            .tempdir()
            .unwrap();
        let mount_point = dir.path().join("mnt");
        let log = dir.path().join("daemon.log");
        let mut command = launch(&mount_point);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Appending: the keeper this daemon starts inherits the descriptor and outlives it, and
            // with a shared offset its lines would overwrite those of the daemons started after.
            .stderr(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            );
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
        let mut daemon = Daemon {
            child: Some(child),
            mount_point,
            log,
            args: args.iter().map(|a| a.to_string()).collect(),
            _dir: dir,
        };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&mut self) {
        let probe = self.path("proc/meminfo");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if fs::read_to_string(&probe).is_ok_and(|t| t.contains("MemTotal")) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "cgview mount exited with {status} before serving:\n{}",
                    self.log_text()
                );
            }
            sleep(Duration::from_millis(20));
        }
        panic!(
            "cgview mount did not serve within 10 s:\n{}",
            self.log_text()
        );
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.mount_point.join(relative)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Sends `signal` and waits for the daemon to exit; returns its exit status.
    pub fn stop_with(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon already stopped");
        stop_process(&mut child, signal).unwrap_or_else(|| {
            panic!(
                "cgview did not exit within 10 s of SIG{signal}:\n{}",
                self.log_text()
            )
        })
    }

    /// Whether a daemon process is attached: started, and neither stopped nor taken since.
    pub fn has_process(&self) -> bool {
        self.child.is_some()
    }

    /// Takes the child without stopping it, for tests that kill it themselves.
    pub fn take_child(&mut self) -> Child {
        self.child.take().unwrap()
    }

    /// `cgview mount` on this mount point with the same options, logging to the same file.
    fn spawn_again(&self) -> Child {
        let log = fs::OpenOptions::new().append(true).open(&self.log).unwrap();
        Command::new(BIN)
            .arg("mount")
            .arg(&self.mount_point)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Gives successors and respawned daemons these options instead of the first daemon's (a rollout
    /// that changes the command line).
    pub fn set_args(&mut self, args: &[&str]) {
        self.args = args.iter().map(|a| a.to_string()).collect();
    }

    /// Starts a second `cgview mount` on the same mount point while this one runs (an upgrade) and waits
    /// until it has taken over; returns the previous daemon's process, still running.
    pub fn start_successor(&mut self) -> Child {
        let previous = self.child.take().expect("no daemon runs");
        self.child = Some(self.spawn_again());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self
            .log_text()
            .contains("took over from the running cgview")
        {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the successor exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "no take-over within 10 s:\n{}",
                self.log_text()
            );
            sleep(Duration::from_millis(20));
        }
        self.wait_ready();
        previous
    }

    /// Starts a new `cgview mount` on the same mount point after the previous one was stopped or killed
    /// (its log goes to the same file); returns when it serves.
    pub fn respawn(&mut self) {
        assert!(self.child.is_none(), "the previous daemon still runs");
        self.child = Some(self.spawn_again());
        self.wait_ready();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // A keeper outlives the daemon by design (it holds the FUSE connection for the next one); the
        // test's mount point dies with the test, so its keeper must too, and so must a predecessor a
        // failed take-over left running untracked. Once the last descriptor is closed the kernel aborts
        // the connection and the lazy unmount below succeeds.
        kill_daemons_and_keepers(&self.mount_point);
        if is_mounted(&self.mount_point) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mount_point)
                .status();
        }
    }
}

/// The `cgview keeper` processes holding the connection of `mount_point`: those whose command line has
/// `keeper` and, after it, the mount point (as given or canonical). Read from `/proc/*/cmdline` rather
/// than with `pkill`, whose pattern would have to quote the path.
pub fn keeper_pids(mount_point: &Path) -> Vec<i32> {
    cgview_processes(mount_point, &["keeper"])
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

/// The processes whose command line has one of `subcommands` (`mount`, `keeper`) and, after it,
/// `mount_point`, each with its arguments.
pub fn cgview_processes(mount_point: &Path, subcommands: &[&str]) -> Vec<(i32, Vec<Vec<u8>>)> {
    // Only the parent is resolved: resolving the mount point itself would ask its daemon, which may be
    // the one that hangs.
    let canonical = mount_point
        .parent()
        .and_then(|parent| fs::canonicalize(parent).ok())
        .zip(mount_point.file_name())
        .map_or_else(
            || mount_point.to_owned(),
            |(parent, name)| parent.join(name),
        );
    let names_mount_point = |arg: &[u8]| {
        arg == mount_point.as_os_str().as_bytes() || arg == canonical.as_os_str().as_bytes()
    };
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<Vec<u8>> = cmdline.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
            let at = args
                .iter()
                .position(|arg| subcommands.iter().any(|s| arg == s.as_bytes()))?;
            args[at + 1..]
                .iter()
                .any(|arg| names_mount_point(arg))
                .then_some((pid, args))
        })
        .collect()
}

/// Kills every daemon and keeper of `mount_point`, waits (up to 5 s) until none is left, and removes
/// the sockets the keepers listened on (`--socket`), which a killed keeper leaves behind.
pub fn kill_daemons_and_keepers(mount_point: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sockets = Vec::new();
    loop {
        let keepers = cgview_processes(mount_point, &["mount", "keeper", "superseded"]);
        if keepers.is_empty() || Instant::now() > deadline {
            break;
        }
        for (pid, args) in keepers {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            if let Some(at) = args.iter().position(|arg| arg == b"--socket") {
                if let Some(socket) = args.get(at + 1) {
                    sockets.push(PathBuf::from(std::ffi::OsStr::from_bytes(socket)));
                }
            }
        }
        sleep(Duration::from_millis(20));
    }
    for socket in sockets {
        let _ = fs::remove_file(socket);
    }
}

/// Sets a kernel switch (`enable_uring`, `io_uring_disabled`) for the test's life and puts the old value
/// back, even when the test fails. `enable_uring` only decides what new mounts negotiate, and only for
/// daemons that ask for io_uring; `io_uring_disabled` only what new rings may be made.
pub struct KernelSwitch {
    path: &'static str,
    previous: String,
}

impl KernelSwitch {
    pub fn set(path: &'static str, value: &str) -> KernelSwitch {
        let previous = fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{path}: {e} (a kernel without FUSE over io_uring)"));
        fs::write(path, value).unwrap();
        KernelSwitch {
            path,
            previous: previous.trim().to_owned(),
        }
    }
}

impl Drop for KernelSwitch {
    fn drop(&mut self) {
        let _ = fs::write(self.path, &self.previous);
    }
}

/// Sends `signal` to `child` and waits up to 10 s for it to exit (killing it after that): its status,
/// or `None` if it had to be killed.
pub fn stop_process(child: &mut Child, signal: &str) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        sleep(Duration::from_millis(20));
    }
}

/// Whether anything is mounted at `path` in this mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let wanted = path.to_string_lossy().replace(' ', "\\040");
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_str()))
}

/// The value of a meminfo field, in kB.
pub fn meminfo_kb(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// Field names of a meminfo text, in order.
pub fn meminfo_names(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split(':').next().unwrap().to_owned())
        .collect()
}

/// `processor : N` ids of a cpuinfo text.
pub fn cpuinfo_ids(text: &str) -> Vec<u32> {
    text.lines()
        .filter(|l| l.starts_with("processor"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse().ok())
        .collect()
}

/// Splits a script's output at lines `==name==` into sections.
pub fn sections(output: &str) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    let mut current: Option<String> = None;
    for line in output.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if let Some(name) = trimmed
            .strip_prefix("==")
            .and_then(|s| s.strip_suffix("=="))
        {
            current = Some(name.to_owned());
            map.insert(name.to_owned(), String::new());
        } else if let Some(name) = &current {
            map.get_mut(name).unwrap().push_str(line);
        }
    }
    map
}

pub fn host_uptime_secs() -> f64 {
    fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The disk (not partition) holding `path`, as `major:minor`.
pub fn disk_of(path: &Path) -> String {
    let dev = fs::metadata(path).unwrap().dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let sys = format!("/sys/dev/block/{major}:{minor}");
    if Path::new(&sys).join("partition").exists() {
        let parent = fs::canonicalize(format!("{sys}/..")).unwrap();
        fs::read_to_string(parent.join("dev"))
            .unwrap()
            .trim()
            .to_owned()
    } else {
        format!("{major}:{minor}")
    }
}

/// The kernel name (`vda`, `nvme0n1`) of a block device given as `major:minor`.
pub fn block_device_name(device: &str) -> String {
    let link = fs::canonicalize(format!("/sys/dev/block/{device}")).unwrap();
    link.file_name().unwrap().to_string_lossy().into_owned()
}

/// Files and directories a simulated container gets from the mount, as a runtime would bind them: every
/// served `/proc` file, the whole `/sys/devices/system/cpu` and `/sys/block`.
pub const CONTAINER_BINDS: &[&str] = &[
    "proc/meminfo",
    "proc/cpuinfo",
    "proc/stat",
    "proc/uptime",
    "proc/diskstats",
    "proc/swaps",
    "proc/loadavg",
    "proc/slabinfo",
    "proc/vmstat",
    "proc/pressure/cpu",
    "proc/pressure/memory",
    "proc/pressure/io",
    "sys/devices/system/cpu",
    "sys/block",
];

/// Runs `script` with `sh` in a simulated container (design.md section 5): inside `cgroup`, in new mount and
/// pid namespaces with a fresh `/proc`, and with [`CONTAINER_BINDS`] bind-mounted from `daemon`'s mount
/// (those the host has). Returns standard output; fails on a non-zero exit.
pub fn run_in_container(cgroup: &TestCgroup, daemon: &Daemon, script: &str) -> String {
    let mut setup = String::from("set -e\n");
    for path in CONTAINER_BINDS {
        let source = daemon.path(path);
        let target = Path::new("/").join(path);
        if source.exists() && target.exists() {
            setup.push_str(&format!(
                "mount --bind {} {}\n",
                source.display(),
                target.display()
            ));
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("cgview-ctr-")
        .tempdir()
        .unwrap();
    let file = dir.path().join("init.sh");
    fs::write(&file, format!("{setup}set +e\n{script}\n")).unwrap();
    cgroup.run(&format!(
        "unshare --mount --pid --fork --mount-proc sh {}",
        file.display()
    ))
}

/// The fields of `device`'s (`major:minor`) line in a diskstats text.
pub fn diskstats_line<'a>(text: &'a str, device: &str) -> Option<Vec<&'a str>> {
    let (major, minor) = device.split_once(':').unwrap();
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == major && f[1] == minor)
}

/// A Python script that maps `paths` privately and shared, touches the mapping in a child (which a
/// SIGBUS would kill), and prints one line per path and kind: the errno of a refused mapping, or how
/// the child ended.
const MMAP_PROBE: &str = r#"
import mmap, os, sys
for path in sys.argv[1:]:
    for name, flag in (("private", mmap.MAP_PRIVATE), ("shared", mmap.MAP_SHARED)):
        fd = os.open(path, os.O_RDONLY)
        try:
            m = mmap.mmap(fd, 0, flag, mmap.PROT_READ)
        except OSError as e:
            print(path, name, "errno", e.errno)
            os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            m[0:1]
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(path, name, "mapped", "signal" if os.WIFSIGNALED(status) else "exit",
              os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
        os.close(fd)
"#;

/// Maps served, per-device and passed-through files of `daemon` and expects every mapping to be
/// refused with ENODEV, as sysfs refuses it; reads keep working.
pub fn check_mmap_is_refused(daemon: &Daemon) {
    let mut paths = vec![
        daemon.path("proc/meminfo"),
        daemon.path("proc/cpuinfo"),
        daemon.path("sys/devices/system/cpu/online"),
        daemon.path("sys/devices/system/cpu/kernel_max"),
    ];
    let device = fs::read_dir(daemon.path("sys/block"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("stat").exists())
        .expect("a block device");
    paths.push(device.join("stat"));
    let mut command = Command::new("python3");
    command.arg("-c").arg(MMAP_PROBE).args(&paths);
    let output = command.output().unwrap();
    expect_success("mmap probe", &output);
    let lines = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(lines.lines().count(), paths.len() * 2, "{lines}");
    for line in lines.lines() {
        assert!(
            line.ends_with(" errno 19"),
            "not refused with ENODEV: {line}\n{lines}"
        );
    }
    let meminfo = fs::read_to_string(daemon.path("proc/meminfo")).unwrap();
    assert!(meminfo.starts_with("MemTotal:"), "{meminfo}");
}
