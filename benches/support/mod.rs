//! What the mounted benchmarks (`noisy_neighbour`, `soak`) share: running themselves as container
//! workers, sampling the daemon, percentiles and the results file.
//!
//! A worker is the benchmark binary started again under `unshare --pid --fork --kill-child` (its own pid
//! namespace, as a container's processes are, and killed with the `unshare` that started it); it joins its
//! cgroups itself, from the `cgroup.procs` files named in [`ENTER_ENV`], before doing anything else.

#![allow(dead_code)]

use crate::mounted_support::{needs, TestCgroup, MOUNT_AND_CGROUPS};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// `cgroup.procs` files a worker joins at start, separated by `:`.
pub const ENTER_ENV: &str = "CGVIEW_BENCH_ENTER";

/// `cargo test --all-targets` runs bench binaries too, without `--bench`: only `cargo bench` measures.
/// Mounting needs what the mounted tests need ([`MOUNT_AND_CGROUPS`]); without it the benchmark says what
/// is missing and does nothing.
pub fn should_run(name: &str) -> bool {
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name}: a benchmark; run it with `cargo bench --bench {name}`");
        return false;
    }
    let missing = needs::missing(MOUNT_AND_CGROUPS);
    if !missing.is_empty() {
        eprintln!("{name}: needs {}; skipped", missing.join(" and "));
        return false;
    }
    true
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// In a worker: joins the cgroups its parent named. Writing 0 moves the writer, whatever its pid in
/// its own namespace.
pub fn enter_cgroups_from_env() {
    let Ok(files) = std::env::var(ENTER_ENV) else {
        return;
    };
    for procs in files.split(':').filter(|f| !f.is_empty()) {
        fs::write(procs, "0").unwrap_or_else(|e| panic!("cannot join {procs}: {e}"));
    }
}

/// The `cgroup.procs` files of `cgroup`, for [`ENTER_ENV`].
pub fn procs_files(cgroup: &TestCgroup) -> String {
    cgroup
        .controllers
        .iter()
        .map(|c| {
            cgroup
                .dir(c)
                .join("cgroup.procs")
                .to_string_lossy()
                .into_owned()
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// This benchmark started again as `<exe> <role> <args...>` in `cgroup` and a new pid namespace, its
/// standard output piped.
pub fn spawn_worker(cgroup: &TestCgroup, role: &str, args: &[String]) -> Child {
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--kill-child"])
        .arg(std::env::current_exe().unwrap());
    start_worker(command, cgroup, role, args)
}

/// Like [`spawn_worker`], but in the host's pid namespace, as a systemd service or a hostPID pod runs.
pub fn spawn_host_pid_worker(cgroup: &TestCgroup, role: &str, args: &[String]) -> Child {
    start_worker(
        Command::new(std::env::current_exe().unwrap()),
        cgroup,
        role,
        args,
    )
}

fn start_worker(mut command: Command, cgroup: &TestCgroup, role: &str, args: &[String]) -> Child {
    command
        .arg(role)
        .args(args)
        .env(ENTER_ENV, procs_files(cgroup))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits until `deadline` for `child` to exit and returns its standard output; kills it and returns
/// `None` when it is still running then.
pub fn output_by(child: &mut Child, deadline: Instant) -> Option<String> {
    loop {
        if child.try_wait().unwrap().is_some() {
            let mut out = String::new();
            if let Some(mut stdout) = child.stdout.take() {
                stdout.read_to_string(&mut out).unwrap();
            }
            return Some(out);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        sleep(Duration::from_millis(20));
    }
}

/// Children killed and reaped when the benchmark ends, however it ends.
#[derive(Default)]
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads `path` from open to end of file into `buf` (reused), and closes it.
pub fn read_whole(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    fs::File::open(path)?.read_to_end(buf)?;
    Ok(())
}

/// `MemTotal` of a meminfo text, in kB.
pub fn mem_total_kb(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn open_descriptors(pid: u32) -> Option<usize> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

pub fn rss_kb(pid: u32) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The soft `Max open files` of a process.
pub fn soft_nofile(pid: u32) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The value at quantile `q` (0..=1) of sorted samples; 0 for none.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank]
}

/// Lines printed as they come and kept for `benches/results/<name>-<date>.txt`.
pub struct Report {
    name: &'static str,
    text: String,
}

impl Report {
    /// Starts with where and how the run was made.
    pub fn new(name: &'static str) -> Report {
        let mut report = Report {
            name,
            text: String::new(),
        };
        let command: Vec<String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("CGVIEW_"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        report.line(&format!(
            "{name}: {} UTC, Linux {}, {} CPUs, load average {} at start, daemon {}{}",
            shell("date -u '+%Y-%m-%d %H:%M'"),
            shell("uname -r"),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_average(),
            crate::mounted_support::BIN,
            if command.is_empty() {
                String::new()
            } else {
                format!(", with {}", command.join(" "))
            }
        ));
        report
    }

    pub fn line(&mut self, line: &str) {
        println!("{line}");
        self.text.push_str(line);
        self.text.push('\n');
    }

    /// Writes everything so far to `benches/results/<name>-<date>[-<CGVIEW_BENCH_LABEL>].txt` (a label
    /// such as the commit keeps a before and an after apart) and returns the path.
    pub fn save(&self) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results");
        fs::create_dir_all(&dir).unwrap();
        let label = std::env::var("CGVIEW_BENCH_LABEL")
            .map(|l| format!("-{l}"))
            .unwrap_or_default();
        let path = dir.join(format!("{}-{}{label}.txt", self.name, shell("date -u +%F")));
        fs::write(&path, &self.text).unwrap();
        path
    }
}

/// The 1-minute load average: on a shared machine, how much of a result is other people's work.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

fn shell(command: &str) -> String {
    Command::new("sh")
        .args(["-c", command])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
