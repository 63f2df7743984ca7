//! The threads of a container's cgroup subtree and their scheduler states, for `procs_running`,
//! `procs_blocked` and the load average.

use super::error::{read_optional_text, ReadError, WrapPath};
use super::kernel_file::read_kernel_text;
use super::layout::CgroupVersion;
use super::paths::HostPaths;
use super::resolve::CgroupDir;
use cgview_core::parse::pid_stat::parse_state;
use std::path::{Path, PathBuf};

/// Threads counted per sample at most; beyond it the counts are of the first ones. Bounds the cost of
/// one sample (each thread is one small procfs read).
pub const MAX_THREADS: usize = 65_536;

/// Nested cgroups walked at most below the container's.
const MAX_DEPTH: usize = 32;

/// One look at a container's threads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskSample {
    /// Runnable (`R`), not counting the excluded thread.
    pub running: u64,
    /// Uninterruptible (`D`), not counting the excluded thread.
    pub blocked: u64,
    /// Every thread, the excluded one included.
    pub total: u64,
    /// The thread ids seen, as the daemon's pid namespace numbers them.
    pub tids: Vec<u32>,
    /// Only some threads' states were read; `running` and `blocked` are scaled up from theirs.
    pub partial: bool,
}

/// Counts the threads of the cgroup `dir` and of every cgroup below it, reading the states of at most
/// `max_states` of them (the counts of the others are estimated from those). `exclude` is the reader:
/// while its read waits for cgview it sleeps, though to itself it is running, so the caller counts it
/// apart. Threads that exit during the walk are skipped.
pub fn sample_tasks(
    paths: &HostPaths,
    dir: &CgroupDir,
    exclude: Option<u32>,
    max_states: usize,
) -> Result<TaskSample, ReadError> {
    let list_name = match dir.version {
        CgroupVersion::V1 => "tasks",
        CgroupVersion::V2 => "cgroup.threads",
    };
    let mut sample = TaskSample::default();
    let mut pending: Vec<(PathBuf, usize)> = vec![(dir.path(), 0)];
    let mut first = true;
    let (mut states_read, mut states_skipped) = (0u64, 0u64);
    while let Some((cgroup, depth)) = pending.pop() {
        let list_path = cgroup.join(list_name);
        let list = match read_optional_text(&list_path) {
            Ok(Some(list)) => list,
            // The container's own cgroup must exist; sub-cgroups may vanish while walking.
            Ok(None) if first => {
                return Err(ReadError::Io {
                    path: list_path,
                    source: std::io::ErrorKind::NotFound.into(),
                })
            }
            Err(e) if first => return Err(e),
            Ok(None) | Err(_) => continue,
        };
        first = false;
        for tid in list.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            if sample.tids.len() >= MAX_THREADS {
                break;
            }
            sample.tids.push(tid);
            sample.total += 1;
            if Some(tid) == exclude {
                continue;
            }
            if states_read >= max_states as u64 {
                states_skipped += 1;
                continue;
            }
            states_read += 1;
            match thread_state(paths, tid) {
                Some('R') => sample.running += 1,
                Some('D') => sample.blocked += 1,
                _ => {}
            }
        }
        if depth < MAX_DEPTH {
            pending.extend(subdirectories(&cgroup).into_iter().map(|d| (d, depth + 1)));
        }
    }
    if states_skipped > 0 && states_read > 0 {
        let scale = |count: u64| {
            let eligible = states_read + states_skipped;
            (count.saturating_mul(eligible) + states_read / 2) / states_read
        };
        sample.running = scale(sample.running);
        sample.blocked = scale(sample.blocked);
        sample.partial = true;
    }
    Ok(sample)
}

fn thread_state(paths: &HostPaths, tid: u32) -> Option<char> {
    let text = read_kernel_text(&paths.pid_file(tid, "stat")).ok()?;
    parse_state(&text).ok()
}

fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// The innermost pid of thread `tid` (its id in its own pid namespace).
pub fn innermost_pid(paths: &HostPaths, tid: u32) -> Result<u32, ReadError> {
    let path = paths.pid_file(tid, "status");
    let status = read_kernel_text(&path).wrap_path(&path)?;
    Ok(cgview_core::parse::pid_stat::parse_nspid(&status)
        .and_then(|ids| ids.last().copied())
        .unwrap_or(tid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn thread(proc_root: &Path, tid: u32, state: char) {
        let dir = proc_root.join(tid.to_string());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("stat"), format!("{tid} (w) {state} 1 1 1")).unwrap();
        fs::write(
            dir.join("status"),
            format!("Pid:\t{tid}\nNSpid:\t{tid}\t{}\n", tid - 100),
        )
        .unwrap();
    }

    #[test]
    fn counts_states_through_sub_cgroups_and_skips_the_reader() {
        let root = tempfile::tempdir().unwrap();
        let proc_root = root.path().join("proc");
        let cgroup = root.path().join("cg/pod/ctr");
        fs::create_dir_all(cgroup.join("child")).unwrap();
        fs::write(cgroup.join("cgroup.threads"), "101\n102\n103\n").unwrap();
        fs::write(cgroup.join("child/cgroup.threads"), "104\n999\n").unwrap();
        thread(&proc_root, 101, 'R');
        thread(&proc_root, 102, 'D');
        thread(&proc_root, 103, 'S');
        thread(&proc_root, 104, 'R');
        let paths = HostPaths {
            proc_root: proc_root.clone(),
            sys_root: root.path().join("sys"),
            cgroup_root: root.path().join("cg"),
        };
        let dir = CgroupDir {
            version: CgroupVersion::V2,
            mount_point: root.path().join("cg"),
            relative: "pod/ctr".into(),
        };
        let sample = sample_tasks(&paths, &dir, Some(104), usize::MAX).unwrap();
        assert_eq!((sample.running, sample.blocked, sample.total), (1, 1, 5));
        assert!(!sample.partial);
        assert_eq!(innermost_pid(&paths, 104).unwrap(), 4);

        let gone = CgroupDir {
            relative: "pod/gone".into(),
            ..dir
        };
        assert!(sample_tasks(&paths, &gone, None, 16)
            .unwrap_err()
            .is_vanished());
    }

    #[test]
    fn a_bounded_sample_reads_few_states_and_scales_their_counts() {
        let root = tempfile::tempdir().unwrap();
        let proc_root = root.path().join("proc");
        let cgroup = root.path().join("cg/big");
        fs::create_dir_all(&cgroup).unwrap();
        let tids: Vec<u32> = (1000..1100).collect();
        let list: String = tids.iter().map(|t| format!("{t}\n")).collect();
        fs::write(cgroup.join("cgroup.threads"), list).unwrap();
        for &tid in &tids {
            thread(&proc_root, tid, if tid % 2 == 0 { 'R' } else { 'S' });
        }
        let paths = HostPaths {
            proc_root: proc_root.clone(),
            sys_root: root.path().join("sys"),
            cgroup_root: root.path().join("cg"),
        };
        let dir = CgroupDir {
            version: CgroupVersion::V2,
            mount_point: root.path().join("cg"),
            relative: "big".into(),
        };
        // Any state read beyond the bound would be counted: make the skipped ones all runnable.
        for &tid in &tids[10..] {
            thread(&proc_root, tid, 'R');
        }
        let sample = sample_tasks(&paths, &dir, None, 10).unwrap();
        assert!(sample.partial);
        assert_eq!((sample.running, sample.total), (50, 100));
    }
}
