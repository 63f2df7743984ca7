//! What a test needs from the machine beyond `cargo test` (root, `/dev/fuse`), and the one check every
//! suite makes before using it.
//!
//! A contributor's `cargo test` as an ordinary user passes: a test whose needs are missing returns at once
//! and says, on the real standard error, that it was skipped and why (libtest keeps a passing test's
//! `print!` output to itself, so a skip written that way would look like a pass). `tests/run.sh`, which CI
//! runs, sets [`REQUIRE_ALL_ENV`]: there a missing need fails the test, so nothing is skipped silently.
//!
//! Included by `tests/mounted_support` and, with `#[path]`, by suites that mount nothing.

#![allow(dead_code)]

use nix::unistd::AccessFlags;
use std::io::Write;
use std::path::Path;

/// Set to `1` (by `tests/run.sh`), a test whose needs are missing fails instead of being skipped.
pub const REQUIRE_ALL_ENV: &str = "CGVIEW_TEST_REQUIRE_ALL";

/// The kernel's switch for FUSE over io_uring; present when the kernel has it.
const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

/// Something a test needs that an ordinary `cargo test` may not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Effective uid 0: cgroups, FUSE mounts, namespaces, other users' credentials, installing packages.
    Root,
    /// The FUSE device (`modprobe fuse`).
    DevFuse,
    /// The cgroup v1 hierarchies the mounted suites make their cgroups in, writable (a hybrid host, as
    /// the README's test platform).
    CgroupV1,
    /// FUSE over io_uring in the kernel (Linux 6.14 and later, `fuse.enable_uring`).
    FuseOverIoUring,
    /// A Docker daemon that answers (`docker info`): Debian's docker.io, which `tests/run.sh` installs
    /// and starts.
    Docker,
    /// Debian's `podman` (rootful, with runc), which `tests/run.sh` installs.
    Podman,
    /// What `tests/vm/boot.sh` boots a guest with: QEMU, cpio, xz, a static busybox and a readable
    /// Debian kernel with `fuse.ko`; or root, for whom it installs what is missing.
    VmTools,
}

/// The mounted suites: a real `cgview mount` and real cgroups with limits.
pub const MOUNT_AND_CGROUPS: &[Need] = &[Need::Root, Need::DevFuse, Need::CgroupV1];

/// The mounted suite over io_uring.
pub const MOUNT_AND_CGROUPS_OVER_IO_URING: &[Need] = &[
    Need::Root,
    Need::DevFuse,
    Need::CgroupV1,
    Need::FuseOverIoUring,
];

/// The v1 controllers the mounted suites set limits in.
const V1_CONTROLLERS: [&str; 5] = ["memory", "cpu", "cpuacct", "cpuset", "blkio"];

impl Need {
    /// Why it is missing here, or `None` when it is present.
    fn missing(self) -> Option<String> {
        match self {
            Need::Root => {
                let uid = nix::unistd::geteuid();
                (!uid.is_root()).then(|| format!("root (running as uid {uid})"))
            }
            Need::DevFuse => {
                (!Path::new("/dev/fuse").exists()).then(|| "/dev/fuse (modprobe fuse)".to_owned())
            }
            Need::CgroupV1 => {
                let unwritable: Vec<&str> = V1_CONTROLLERS
                    .into_iter()
                    .filter(|controller| {
                        let dir = Path::new("/sys/fs/cgroup").join(controller);
                        !dir.join("cgroup.procs").exists()
                            || nix::unistd::access(&dir, AccessFlags::W_OK).is_err()
                    })
                    .collect();
                (!unwritable.is_empty()).then(|| {
                    format!(
                        "writable cgroup v1 hierarchies ({} under /sys/fs/cgroup)",
                        unwritable.join(", ")
                    )
                })
            }
            Need::Docker => {
                let answers = std::process::Command::new("docker")
                    .arg("info")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|status| status.success());
                (!answers).then(|| "a running Docker daemon (docker info)".to_owned())
            }
            Need::Podman => {
                let answers = std::process::Command::new("podman")
                    .arg("--version")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|status| status.success());
                (!answers).then(|| "podman (apt-get install podman)".to_owned())
            }
            Need::FuseOverIoUring => (!Path::new(ENABLE_URING).exists())
                .then(|| format!("FUSE over io_uring ({ENABLE_URING} is missing)")),
            Need::VmTools => {
                let mut absent: Vec<&str> = ["qemu-system-x86_64", "cpio", "xz"]
                    .into_iter()
                    .filter(|program| !on_path(program))
                    .collect();
                if !Path::new("/bin/busybox").exists() {
                    absent.push("/bin/busybox");
                }
                if !readable_kernel_with_fuse() {
                    absent.push("a readable /boot/vmlinuz-* with fuse.ko");
                }
                (!absent.is_empty() && !nix::unistd::geteuid().is_root()).then(|| {
                    format!(
                        "root or the VM's tools ({} missing; tests/vm/boot.sh installs them as root)",
                        absent.join(", ")
                    )
                })
            }
        }
    }
}

/// What of `needs` is missing here, each with why (empty when the calling code can run).
pub fn missing(needs: &[Need]) -> Vec<String> {
    needs.iter().filter_map(|need| need.missing()).collect()
}

/// Whether the calling test can run here. When a need is missing, reports the test as skipped with the
/// reason and returns `false` (the test then returns); under [`REQUIRE_ALL_ENV`]`=1` panics instead.
#[must_use]
pub fn needs_met(needs: &[Need]) -> bool {
    let missing = missing(needs);
    if missing.is_empty() {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    let reason = format!("needs {}", missing.join(" and "));
    if std::env::var(REQUIRE_ALL_ENV).is_ok_and(|v| v == "1") {
        panic!("{test} {reason}, and {REQUIRE_ALL_ENV}=1 forbids skipping it");
    }
    // Straight to the process's standard error: libtest captures `eprint!` of passing tests.
    let line = format!("SKIPPED {test}: {reason}; bash tests/run.sh (as root) runs it\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// A kernel `tests/vm/boot.sh` can boot: `/boot/vmlinuz-<version>` readable, `fuse.ko` in its modules.
fn readable_kernel_with_fuse() -> bool {
    let Ok(versions) = std::fs::read_dir("/lib/modules") else {
        return false;
    };
    versions.filter_map(Result::ok).any(|entry| {
        let version = entry.file_name();
        let fuse = entry.path().join("kernel/fs/fuse/fuse.ko");
        let kernel = Path::new("/boot").join(format!("vmlinuz-{}", version.to_string_lossy()));
        fuse.exists() && std::fs::File::open(kernel).is_ok()
    })
}
