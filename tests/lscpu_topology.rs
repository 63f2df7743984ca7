//! `lscpu` (util-linux) in simulated containers describes the machine the container is shown: its CPUs,
//! their ids, and a socket/core/thread split consistent with them; `lscpu -e` and `lscpu -p` agree, and
//! so does glibc's CPU count. On this host's own topology, and on fixture trees (`--sys-root`) of hosts
//! with SMT and two packages, which this VM lacks. Needs root and /dev/fuse.

mod mounted_support;
mod topology_fixture;

use mounted_support::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::Path;
use topology_fixture::{siblings_adjacent, threads_last_interleaved_sockets, write_cpu_topology};

/// A container's cgroup in the hierarchies the CPU view reads.
fn cpu_cgroup(label: &str) -> TestCgroup {
    TestCgroup::new(label, &["cpu", "cpuacct", "cpuset", "memory"])
}

fn limit(cgroup: &TestCgroup, cpuset: Option<&str>, quota_us: Option<u64>) {
    if let Some(cpus) = cpuset {
        cgroup.set("cpuset", "cpuset.cpus", cpus);
    }
    if let Some(quota) = quota_us {
        cgroup.set("cpu", "cpu.cfs_period_us", "100000");
        cgroup.set("cpu", "cpu.cfs_quota_us", &quota.to_string());
    }
}

/// What the container ran, by section.
const SCRIPT: &str = r#"export LC_ALL=C
echo ==lscpu==; lscpu
echo ==lscpu-e==; lscpu -e=CPU,CORE,SOCKET,ONLINE
echo ==lscpu-p==; lscpu -p=CPU,CORE,SOCKET
echo ==getconf==; getconf _NPROCESSORS_ONLN; getconf _NPROCESSORS_CONF
echo ==cpuinfo==; grep -E '^(processor|physical id|siblings|core id|cpu cores)' /proc/cpuinfo
echo ==lists==
for f in /sys/devices/system/cpu/cpu[0-9]*/topology/*_list /sys/devices/system/cpu/cpu[0-9]*/cache/index*/shared_cpu_list; do
  echo "$f $(cat $f)"
done
"#;

/// lscpu's summary as field -> value (`Socket(s):` -> `1`).
fn summary(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

fn count(summary: &HashMap<String, String>, key: &str) -> usize {
    summary
        .get(key)
        .unwrap_or_else(|| panic!("lscpu printed no {key}: {summary:?}"))
        .parse()
        .unwrap()
}

/// `(CPU, CORE, SOCKET)` rows of `lscpu -e` (a header, then columns) or `lscpu -p` (comments, then CSV).
fn rows(text: &str, parsable: bool) -> Vec<(u32, u32, u32)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("CPU") && !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<u32> = if parsable {
                line.split(',').map(|f| f.parse().unwrap()).collect()
            } else {
                line.split_whitespace()
                    .take(3)
                    .map(|f| f.parse().unwrap())
                    .collect()
            };
            (fields[0], fields[1], fields[2])
        })
        .collect()
}

/// The split a machine of `visible` CPUs has, from the host's own topology files under `cpu_dir`:
/// (threads per core, cores per socket, sockets), counting only visible CPUs.
fn expected_split(cpu_dir: &Path, visible: &[u32]) -> (usize, usize, usize) {
    let set = |cpu: u32, name: &str| -> BTreeSet<u32> {
        let text = fs::read_to_string(cpu_dir.join(format!("cpu{cpu}/topology/{name}"))).unwrap();
        expand(text.trim())
            .into_iter()
            .filter(|id| visible.contains(id))
            .collect()
    };
    let threads = visible
        .iter()
        .map(|&cpu| set(cpu, "thread_siblings_list").len())
        .max()
        .unwrap();
    let cores: BTreeSet<_> = visible
        .iter()
        .map(|&cpu| set(cpu, "thread_siblings_list"))
        .collect();
    let sockets: BTreeSet<_> = visible
        .iter()
        .map(|&cpu| set(cpu, "core_siblings_list"))
        .collect();
    (threads, cores.len() / sockets.len(), sockets.len())
}

/// The ids of a kernel CPU list.
fn expand(list: &str) -> Vec<u32> {
    if list.is_empty() {
        return Vec::new();
    }
    list.split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => a.parse::<u32>().unwrap()..=b.parse().unwrap(),
            None => {
                let id: u32 = part.parse().unwrap();
                id..=id
            }
        })
        .collect()
}

/// Runs the script in a container of `cgroup` and checks what every tool says against `visible` and the
/// split of the host topology under `cpu_dir`; returns the sections.
fn check_container(
    cgroup: &TestCgroup,
    daemon: &Daemon,
    visible: &[u32],
    cpu_dir: &Path,
) -> HashMap<String, String> {
    let out = sections(&run_in_container(cgroup, daemon, SCRIPT));
    let what = format!("visible {visible:?}");
    let lscpu = summary(&out["lscpu"]);
    assert_eq!(
        count(&lscpu, "CPU(s)"),
        visible.len(),
        "{what}: {}",
        out["lscpu"]
    );
    let listed = visible.iter().map(u32::to_string).collect::<Vec<_>>();
    assert!(
        [listed.join(","), topology_fixture::list_text(visible)]
            .contains(&lscpu["On-line CPU(s) list"]),
        "{what}: {}",
        out["lscpu"]
    );
    let (threads, cores, sockets) = expected_split(cpu_dir, visible);
    let shown = (
        count(&lscpu, "Thread(s) per core"),
        count(&lscpu, "Core(s) per socket"),
        count(&lscpu, "Socket(s)"),
    );
    assert_eq!(shown, (threads, cores, sockets), "{what}: {}", out["lscpu"]);

    // -e and -p list the same CPUs with the same logical core and socket numbers, and only visible ones.
    let extended = rows(&out["lscpu-e"], false);
    let parsable = rows(&out["lscpu-p"], true);
    assert_eq!(
        extended, parsable,
        "{what}:\n{}\n{}",
        out["lscpu-e"], out["lscpu-p"]
    );
    assert_eq!(
        extended.iter().map(|r| r.0).collect::<Vec<_>>(),
        visible,
        "{what}"
    );
    let distinct = |pick: fn(&(u32, u32, u32)) -> u32| {
        extended.iter().map(pick).collect::<BTreeSet<_>>().len()
    };
    assert_eq!(
        distinct(|r| r.1),
        cores * sockets,
        "{what}: {}",
        out["lscpu-e"]
    );
    assert_eq!(distinct(|r| r.2), sockets, "{what}: {}", out["lscpu-e"]);
    assert!(
        out["lscpu-e"].lines().skip(1).all(|l| l.ends_with("yes")),
        "{}",
        out["lscpu-e"]
    );

    let getconf: Vec<usize> = out["getconf"].lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(getconf, [visible.len(), visible.len()], "{what}");

    // Every list in the container's cpu directory names only visible CPUs, and its own CPU.
    for line in out["lists"].lines() {
        let (path, list) = line.split_once(' ').unwrap_or((line, ""));
        let ids = expand(list.trim());
        assert!(ids.iter().all(|id| visible.contains(id)), "{what}: {line}");
        let cpu: u32 = path
            .split("/cpu/cpu")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            visible.contains(&cpu) && ids.contains(&cpu),
            "{what}: {line}"
        );
    }
    out
}

/// cpuinfo's (processor, siblings, cpu cores) lines.
fn cpuinfo_counts(text: &str) -> Vec<(u32, usize, usize)> {
    let mut rows = Vec::new();
    let mut current: BTreeMap<&str, &str> = BTreeMap::new();
    for line in text.lines().chain(std::iter::once("processor : end")) {
        let (key, value) = line.split_once(':').unwrap();
        let key = key.trim();
        if key == "processor" && !current.is_empty() {
            rows.push((
                current["processor"].parse().unwrap(),
                current["siblings"].parse().unwrap(),
                current["cpu cores"].parse().unwrap(),
            ));
            current.clear();
        }
        current.insert(key, value.trim());
    }
    rows
}

#[test]
fn lscpu_describes_the_visible_cpus_of_this_host() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let host_cpus = expand(
        fs::read_to_string("/sys/devices/system/cpu/online")
            .unwrap()
            .trim(),
    );
    assert!(host_cpus.len() >= 2, "needs a host with at least 2 CPUs");
    let cpu_dir = Path::new("/sys/devices/system/cpu");
    let x86 = fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .contains("\nsiblings\t:");
    let daemon = Daemon::start(&[], &[]);
    let two = format!("{},{}", host_cpus[0], host_cpus[1]);
    for (label, cpuset, quota, visible) in [
        ("half-cpu", None, Some(50_000), vec![host_cpus[0]]),
        (
            "cpuset-one",
            Some(host_cpus[1].to_string()),
            None,
            vec![host_cpus[1]],
        ),
        (
            "two-and-half-quota",
            Some(two.clone()),
            Some(150_000),
            host_cpus[..2].to_vec(),
        ),
        ("none", None, None, host_cpus.clone()),
    ] {
        let cgroup = cpu_cgroup(label);
        limit(&cgroup, cpuset.as_deref(), quota);
        let out = check_container(&cgroup, &daemon, &visible, cpu_dir);
        if x86 {
            // siblings: the visible CPUs of the package; cpu cores: their cores (this VM: one package).
            let (threads, cores, sockets) = expected_split(cpu_dir, &visible);
            let counts = cpuinfo_counts(&out["cpuinfo"]);
            assert_eq!(
                counts.iter().map(|c| c.0).collect::<Vec<_>>(),
                visible,
                "{label}"
            );
            if sockets == 1 {
                for (cpu, siblings, cpu_cores) in counts {
                    assert_eq!(
                        (siblings, cpu_cores),
                        (threads * cores, cores),
                        "{label} cpu{cpu}"
                    );
                }
            }
        }
    }
}

#[test]
fn lscpu_sees_only_visible_threads_cores_and_sockets_of_an_smt_host() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let host_cpus = expand(
        fs::read_to_string("/sys/devices/system/cpu/online")
            .unwrap()
            .trim(),
    );
    assert!(
        host_cpus.starts_with(&[0, 1]),
        "needs a host whose CPUs 0 and 1 are online"
    );
    // Two numberings of two packages of two cores of two threads, behind this host's real cpuinfo and
    // cgroups: visible CPUs are at most 0 and 1, which are on two packages in the first and the two threads
    // of one core in the second.
    for (places, pair_split) in [
        (threads_last_interleaved_sockets(), (1, 1, 2)),
        (siblings_adjacent(), (2, 1, 1)),
    ] {
        let sys = tempfile::tempdir().unwrap();
        let cpu_dir = sys.path().join("devices/system/cpu");
        write_cpu_topology(&cpu_dir, &places, 40);
        let daemon = Daemon::start(&[], &["--sys-root", sys.path().to_str().unwrap()]);

        let pair = cpu_cgroup("smt-pair");
        limit(&pair, Some("0-1"), None);
        assert_eq!(expected_split(&cpu_dir, &[0, 1]), pair_split);
        assert_eq!(pair_split.0 * pair_split.1 * pair_split.2, 2);
        let out = check_container(&pair, &daemon, &[0, 1], &cpu_dir);
        let lscpu = summary(&out["lscpu"]);
        let l3_instances = if pair_split.2 == 2 {
            "2 instances"
        } else {
            "1 instance"
        };
        assert!(
            lscpu["L3 cache"].ends_with(&format!("({l3_instances})")),
            "{}",
            out["lscpu"]
        );
        let masks = run_in_container(
            &pair,
            &daemon,
            "cat /sys/devices/system/cpu/cpu0/topology/core_cpus /sys/devices/system/cpu/cpu0/topology/package_cpus",
        );
        let expected_masks = if pair_split.0 == 2 {
            "00,00000003\n00,00000003\n"
        } else {
            "00,00000001\n00,00000001\n"
        };
        assert_eq!(masks, expected_masks);

        let half = cpu_cgroup("smt-half");
        limit(&half, Some("0-1"), Some(50_000));
        check_container(&half, &daemon, &[0], &cpu_dir);
        let one = cpu_cgroup("smt-one");
        limit(&one, Some("1"), None);
        check_container(&one, &daemon, &[1], &cpu_dir);
    }
}
