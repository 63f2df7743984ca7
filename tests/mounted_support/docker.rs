//! Real container engines for the suites that run them: Docker (Debian's docker.io, runc, cgroupfs
//! driver) and, where installed, rootful podman with the same runc. A test image is built from host
//! binaries (no registry is needed), containers are removed when their guard drops, even by a failed
//! assertion, and a container's cgroup files are read on the host, where its limits really are.

use super::{unique_name, BIN, CGROUP_ROOT};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

/// A container engine's command line: the program and the options every call gets.
pub struct Engine {
    pub program: &'static str,
    /// Global options, before the subcommand.
    global: &'static [&'static str],
    /// Options every `run` gets, before the test's own.
    pub run_options: &'static [&'static str],
    /// `rm` options that remove a running container at once.
    remove: &'static [&'static str],
}

/// Docker through its CLI, talking to the running dockerd.
pub const DOCKER: Engine = Engine {
    program: "docker",
    global: &[],
    run_options: &[],
    remove: &["rm", "-f"],
};

/// Rootful podman, as a host without systemd runs it: cgroupfs cgroups (`/libpod_parent/libpod-<id>`)
/// and an events log file instead of journald.
///
/// Rootful podman asks runc for `RLIMIT_NOFILE` 1048576 in every container (and `RLIMIT_NPROC` 32768,
/// the limit conmon runs with). Raising a hard limit needs `CAP_SYS_RESOURCE`: a root without it in
/// its bounding set (as here: 0x1fffeffffff, no bit 24) gets "error setting rlimit type 7: operation not
/// permitted" from runc, and so does any `--ulimit` above the limits podman and conmon run with. The
/// test containers need few files and processes, so they ask for less.
pub const PODMAN: Engine = Engine {
    program: "podman",
    global: &["--cgroup-manager=cgroupfs", "--events-backend=file"],
    run_options: &[
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ],
    remove: &["rm", "-f", "-t", "0"],
};

impl Engine {
    pub fn command(&self) -> Command {
        let mut command = Command::new(self.program);
        command.args(self.global);
        command
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program))
    }

    /// Runs `args`; returns standard output, or panics with both outputs when it fails.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let output = self.output(args);
        assert!(
            output.status.success(),
            "{} {}\nexit: {}\nstdout: {}\nstderr: {}",
            self.program,
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn has_image(&self, tag: &str) -> bool {
        self.output(&["image", "inspect", tag]).status.success()
    }
}

/// The words `cgview docker-args <mount_point>` prints, split on whitespace as `$(cgview docker-args)` is.
pub fn docker_args(mount_point: &Path) -> Vec<String> {
    let printed = Command::new(BIN)
        .arg("docker-args")
        .arg(mount_point)
        .output()
        .unwrap();
    assert!(printed.status.success(), "cgview docker-args: {printed:?}");
    String::from_utf8(printed.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Writes a line straight to the process's standard error, which libtest does not capture: figures a
/// passing test reports (build times, measured percentages).
pub fn report(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

// ---- the image ----

/// A root file system assembled from host files in a temporary directory, to be imported as an image.
pub struct Rootfs {
    dir: tempfile::TempDir,
}

impl Rootfs {
    /// An empty tree with the mount points a runtime expects (`/proc`, `/sys`, `/dev`) and `/tmp`.
    pub fn new() -> Rootfs {
        let rootfs = Rootfs {
            dir: tempfile::Builder::new()
                .prefix("cgview-rootfs-")
                .tempdir()
                .unwrap(),
        };
        // The tree's root is the image's `/`: not the temporary directory's 0700.
        fs::set_permissions(rootfs.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for dir in ["proc", "sys", "dev", "tmp", "etc", "bin"] {
            fs::create_dir_all(rootfs.dir.path().join(dir)).unwrap();
        }
        fs::set_permissions(
            rootfs.dir.path().join("tmp"),
            fs::Permissions::from_mode(0o1777),
        )
        .unwrap();
        rootfs
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn inside(&self, absolute: &Path) -> PathBuf {
        self.dir
            .path()
            .join(absolute.strip_prefix("/").unwrap_or(absolute))
    }

    /// The host's static `/bin/busybox` as `/bin/busybox`, with a `/bin/<applet>` symlink per applet.
    /// Debian's busybox-static runs its own applet for a command named without a slash even when another
    /// program of that name is on `PATH`: call other tools by their full path.
    pub fn busybox(&mut self, applets: &[&str]) {
        self.host_file(Path::new("/bin/busybox"));
        for applet in applets {
            std::os::unix::fs::symlink("busybox", self.inside(Path::new("/bin")).join(applet))
                .unwrap();
        }
    }

    /// Copies a host file (symlinks followed) to the same path in the tree.
    pub fn host_file(&mut self, path: &Path) {
        self.host_file_as(path, path);
    }

    /// Copies the host file `path` (symlinks followed) to `inside` in the tree.
    pub fn host_file_as(&mut self, path: &Path, inside: &Path) {
        let target = self.inside(inside);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(path, &target).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
    }

    /// Copies a host program and every shared library `ldd` lists for it, with the dynamic loader, to
    /// the same paths in the tree.
    pub fn host_program(&mut self, path: &Path) {
        self.host_file(path);
        for library in shared_libraries(path) {
            if !self.inside(&library).exists() {
                self.host_file(&library);
            }
        }
    }

    pub fn text(&mut self, path: &str, content: &str) {
        let target = self.inside(Path::new(path));
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(target, content).unwrap();
    }

    /// A digest of the tree (paths, modes, contents, symlink targets): the same files give the same
    /// digest on every run, so an image tagged with it is reused until a host binary changes.
    pub fn digest(&self) -> String {
        let mut hash = Fnv::new();
        let mut entries = vec![self.dir.path().to_owned()];
        walk(self.dir.path(), &mut entries);
        entries.sort();
        for entry in entries {
            let relative = entry.strip_prefix(self.dir.path()).unwrap();
            hash.write(relative.as_os_str().as_encoded_bytes());
            let meta = fs::symlink_metadata(&entry).unwrap();
            hash.write(&meta.permissions().mode().to_le_bytes());
            if meta.file_type().is_symlink() {
                hash.write(
                    fs::read_link(&entry)
                        .unwrap()
                        .as_os_str()
                        .as_encoded_bytes(),
                );
            } else if meta.is_file() {
                hash.write(&fs::read(&entry).unwrap());
            }
            hash.write(&[0]);
        }
        format!("{:016x}", hash.0)
    }

    /// Makes `<repository>:<digest>` in `engine` from this tree unless it is there already; returns the
    /// tag. Older tags of the repository are removed once a new one is imported.
    pub fn image(&self, engine: &Engine, repository: &str) -> String {
        let tag = format!("{repository}:{}", self.digest());
        if engine.has_image(&tag) {
            return tag;
        }
        let mut import = engine.command();
        import
            .args(["import", "-", &tag])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut importer = import.spawn().unwrap();
        let tar = Command::new("tar")
            .arg("-C")
            .arg(self.dir.path())
            .args(["--numeric-owner", "--owner=0", "--group=0", "-c", "."])
            .stdout(importer.stdin.take().unwrap())
            .status()
            .unwrap();
        let imported = importer.wait_with_output().unwrap();
        assert!(
            tar.success() && imported.status.success(),
            "{} import {tag}: tar {tar}, import {}\n{}",
            engine.program,
            imported.status,
            String::from_utf8_lossy(&imported.stderr)
        );
        let listed = engine.run_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        for old in listed.lines() {
            // podman lists its own images as localhost/<repository>.
            let bare = old.strip_prefix("localhost/").unwrap_or(old);
            if bare.starts_with(&format!("{repository}:")) && bare != tag {
                let _ = engine.output(&["rmi", old]);
            }
        }
        tag
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            walk(&path, out);
        }
    }
}

/// FNV-1a, 64 bits: stable across Rust versions, unlike `DefaultHasher`.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The shared libraries and the dynamic loader `ldd` lists for `program` (none for a static one).
fn shared_libraries(program: &Path) -> Vec<PathBuf> {
    let output = Command::new("ldd").arg(program).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        assert!(
            text.contains("not a dynamic executable")
                || String::from_utf8_lossy(&output.stderr).contains("not a dynamic executable"),
            "ldd {}: {output:?}",
            program.display()
        );
        return Vec::new();
    }
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux-x86-64.so.2 (0x...)`;
    // the vDSO has no path.
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Host programs in the tools image, by package: procps, libc-bin, sysstat, coreutils.
pub const TOOLS: &[&str] = &[
    "/usr/bin/free",
    "/usr/bin/top",
    "/usr/bin/ps",
    "/usr/bin/uptime",
    "/usr/bin/vmstat",
    "/usr/bin/getconf",
    "/usr/bin/iostat",
    "/usr/bin/nproc",
];

/// busybox applets the scripts use (busybox `dd` has `oflag=direct`).
const APPLETS: &[&str] = &[
    "sh", "cat", "head", "grep", "sleep", "echo", "ls", "dd", "kill", "sync", "mkdir", "rm", "tr",
];

/// The tools image in `engine`: static busybox for the shell and small commands, and the procps,
/// glibc, sysstat and coreutils programs of [`TOOLS`] with their libraries. `top` needs a terminfo
/// entry (it exits 1, printing nothing, without one): the image has `dumb`, and its scripts set
/// `TERM=dumb`. Built once (a few hundred ms), then reused as long as the host's binaries are the same.
pub fn tools_image(engine: &Engine) -> String {
    let started = Instant::now();
    let mut rootfs = Rootfs::new();
    rootfs.busybox(APPLETS);
    for tool in TOOLS {
        rootfs.host_program(Path::new(tool));
    }
    let terminfo = ["/usr/share/terminfo/d/dumb", "/lib/terminfo/d/dumb"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("a terminfo entry for dumb (ncurses-base)");
    rootfs.host_file_as(Path::new(terminfo), Path::new("/usr/share/terminfo/d/dumb"));
    rootfs.text("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    rootfs.text("/etc/group", "root:x:0:\n");
    let assembled = started.elapsed();
    let present = engine.has_image(&format!("cgview-test/tools:{}", rootfs.digest()));
    let tag = rootfs.image(engine, "cgview-test/tools");
    report(&format!(
        "{} image {tag}: {} (tree assembled in {} ms, {} ms in all)",
        engine.program,
        if present { "reused" } else { "imported" },
        assembled.as_millis(),
        started.elapsed().as_millis()
    ));
    tag
}

// ---- containers ----

/// A detached container, removed (killed first) when dropped.
pub struct Container<'e> {
    pub engine: &'e Engine,
    pub name: String,
    /// Just before `run` was called, and just after it returned: the container started in between.
    pub run_started: Instant,
    pub run_returned: Instant,
}

impl<'e> Container<'e> {
    /// `<engine> run -d --network none --name <unique> [options...] image command...`.
    pub fn run(
        engine: &'e Engine,
        label: &str,
        options: &[String],
        image: &str,
        command: &[&str],
    ) -> Container<'e> {
        let mut container = Container {
            engine,
            name: unique_name(label),
            run_started: Instant::now(),
            run_returned: Instant::now(),
        };
        let mut args: Vec<&str> = vec!["run", "-d", "--network", "none", "--name"];
        args.push(&container.name);
        args.extend(engine.run_options);
        args.extend(options.iter().map(String::as_str));
        args.push(image);
        args.extend(command);
        container.run_started = Instant::now();
        engine.run_ok(&args);
        container.run_returned = Instant::now();
        container
    }

    /// The container's first process, as the host sees it.
    pub fn pid(&self) -> u32 {
        let text = self
            .engine
            .run_ok(&["inspect", "-f", "{{.State.Pid}}", &self.name]);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("inspect gave pid {text:?}"))
    }

    pub fn cgroups(&self) -> ProcessCgroups {
        ProcessCgroups::of(self.pid())
    }

    /// `exec <name> sh -c script` with `env` (`NAME=value`) set.
    pub fn exec(&self, env: &[&str], script: &str) -> Output {
        let mut args: Vec<&str> = vec!["exec"];
        for pair in env {
            args.extend(["-e", pair]);
        }
        args.extend([self.name.as_str(), "sh", "-c", script]);
        self.engine.output(&args)
    }

    /// [`Container::exec`], panicking with both outputs when the script fails.
    pub fn exec_ok(&self, env: &[&str], script: &str) -> String {
        let output = self.exec(env, script);
        assert!(
            output.status.success(),
            "{} exec {}: {}\nstdout: {}\nstderr: {}",
            self.engine.program,
            self.name,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let mut args = self.engine.remove.to_vec();
        args.push(&self.name);
        let _ = self.engine.output(&args);
    }
}

// ---- cgroups read on the host ----

/// The v1 cgroup of a process in each hierarchy, from `/proc/<pid>/cgroup`.
pub struct ProcessCgroups {
    pub pid: u32,
    /// (controllers of the hierarchy, path inside it).
    hierarchies: Vec<(Vec<String>, String)>,
}

impl ProcessCgroups {
    pub fn of(pid: u32) -> ProcessCgroups {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/cgroup: {e}"));
        let hierarchies = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.splitn(3, ':');
                let _id = fields.next()?;
                let controllers = fields.next()?;
                let path = fields.next()?;
                Some((
                    controllers.split(',').map(str::to_owned).collect(),
                    path.to_owned(),
                ))
            })
            .collect();
        ProcessCgroups { pid, hierarchies }
    }

    /// `/sys/fs/cgroup/<controller>/<path>` (co-mounted hierarchies have a symlink per controller).
    pub fn dir(&self, controller: &str) -> PathBuf {
        let (_, path) = self
            .hierarchies
            .iter()
            .find(|(controllers, _)| controllers.iter().any(|c| c == controller))
            .unwrap_or_else(|| panic!("pid {} has no {controller} cgroup", self.pid));
        Path::new(CGROUP_ROOT)
            .join(controller)
            .join(path.trim_start_matches('/'))
    }

    /// A file of the process's cgroup, trimmed.
    pub fn read(&self, controller: &str, file: &str) -> String {
        self.read_optional(controller, file)
            .unwrap_or_else(|| panic!("cannot read {}", self.dir(controller).join(file).display()))
    }

    pub fn read_optional(&self, controller: &str, file: &str) -> Option<String> {
        fs::read_to_string(self.dir(controller).join(file))
            .ok()
            .map(|text| text.trim().to_owned())
    }

    /// The process's cgroup directory and each ancestor up to the hierarchy's root, nearest first:
    /// where effective limits are the smallest over the chain.
    pub fn chain(&self, controller: &str) -> Vec<PathBuf> {
        let root = Path::new(CGROUP_ROOT).join(controller);
        let mut dir = self.dir(controller);
        let mut chain = vec![dir.clone()];
        while dir != root && dir.pop() {
            chain.push(dir.clone());
        }
        chain
    }
}
