//! `/proc/cpuinfo` for a container: the host's blocks for the visible CPUs only, with their real ids, and
//! the lines that count CPUs describing the visible ones:
//! - x86 and s390x print per CPU `siblings` (the CPUs of its package: `cpumask_weight(topology_core_cpumask)`)
//!   and `cpu cores` (the cores of its package): counted over the visible CPUs of the same package, so one
//!   visible CPU of a 2-core host shows `siblings : 1` and `cpu cores : 1`;
//! - s390x's summary block counts the online CPUs (`# processors`) and prints one `processor N: ...` line per
//!   online CPU: the count is the visible CPUs', and the lines of hidden CPUs go.
//!
//! Ids stay the host's: `physical id`, `core id`, `book id`, `drawer id`, `apicid` and `initial apicid` are
//! hardware numbers that agree with each other, with `sys/devices/system/cpu/cpuN/topology/*_id` and with
//! the cpuset; renumbering them would contradict those. aarch64, arm, ppc64le and riscv print no counts
//! (ppc64le's and arm's trailers describe the machine, not how many CPUs it has): their blocks pass as they
//! are.

use crate::parse::cpuinfo::{parse_cpuinfo_blocks, CpuinfoBlock};
use crate::parse::cpuset::CpuSet;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// The fields that name a CPU's package; s390x numbers packages within books and books within drawers.
const PACKAGE_FIELDS: [&str; 3] = ["physical id", "book id", "drawer id"];

/// Keeps header and trailer blocks (architectures such as s390x and arm print them) and the blocks of the
/// visible CPUs, in the host's order, with the CPU counts in them made the visible CPUs'.
pub fn render_cpuinfo(host: &str, visible: &CpuSet) -> String {
    let kept: Vec<(CpuinfoBlock<'_>, Option<Place<'_>>)> = parse_cpuinfo_blocks(host)
        .into_iter()
        .filter(|block| block.cpu.is_none_or(|id| visible.contains(id)))
        .map(|block| {
            let place = block.cpu.map(|cpu| Place::of(block.text, cpu));
            (block, place)
        })
        .collect();
    // For each package with a visible CPU: how many visible CPUs (threads), and on which cores. A CPU is
    // counted once, where its first block places it (the kernel prints one block per CPU).
    let mut counted = HashSet::new();
    let mut packages: HashMap<PackageKey<'_>, (usize, HashSet<CoreKey<'_>>)> = HashMap::new();
    for (block, place) in &kept {
        let (Some(cpu), Some(place)) = (block.cpu, place) else {
            continue;
        };
        if counted.insert(cpu) {
            let package = packages.entry(place.package).or_default();
            package.0 += 1;
            package.1.insert(place.core);
        }
    }
    let mut out = String::with_capacity(host.len());
    for (block, place) in &kept {
        match place {
            Some(place) => {
                let (threads, cores) = packages
                    .get(&place.package)
                    .map_or((1, 1), |(threads, cores)| (*threads, cores.len()));
                push_cpu_block(&mut out, block.text, place, threads, cores);
            }
            None => push_summary_block(&mut out, block.text, visible),
        }
    }
    out
}

/// Which package a CPU block is in: the values of its id fields (absent ones `None`).
type PackageKey<'a> = [Option<&'a str>; PACKAGE_FIELDS.len()];

/// A core within its package: its `core id`, or the CPU itself when the block names no core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CoreKey<'a> {
    Id(&'a str),
    Alone(u32),
}

/// Where a CPU block says its CPU is, and where its lines that count CPUs are.
#[derive(Debug, Clone)]
struct Place<'a> {
    package: PackageKey<'a>,
    core: CoreKey<'a>,
    /// The byte ranges of its `siblings` and `cpu cores` lines (newline excluded), in order.
    counts: Vec<(Count, std::ops::Range<usize>)>,
}

/// Which count a line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    Siblings,
    Cores,
}

impl<'a> Place<'a> {
    /// Reads the block in one pass: its id fields (the first of each counts, as for any reader) and where
    /// its count lines are.
    fn of(block: &'a str, cpu: u32) -> Place<'a> {
        let mut package: PackageKey<'a> = [None; PACKAGE_FIELDS.len()];
        let mut core = None;
        let mut counts = Vec::with_capacity(2);
        let mut offset = 0;
        for line in block.split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            match key.trim() {
                "core id" => core = core.or(Some(value.trim())),
                "siblings" => counts.push((
                    Count::Siblings,
                    start..start + line.trim_end_matches('\n').len(),
                )),
                "cpu cores" => counts.push((
                    Count::Cores,
                    start..start + line.trim_end_matches('\n').len(),
                )),
                key => {
                    if let Some(index) = PACKAGE_FIELDS.iter().position(|name| *name == key) {
                        package[index] = package[index].or(Some(value.trim()));
                    }
                }
            }
        }
        Place {
            package,
            core: core.map_or(CoreKey::Alone(cpu), CoreKey::Id),
            counts,
        }
    }
}

/// A CPU's block with `siblings` and `cpu cores` made the visible `threads` and `cores` of its package:
/// the host's bytes between those lines are copied as they are.
fn push_cpu_block(out: &mut String, block: &str, place: &Place<'_>, threads: usize, cores: usize) {
    let mut copied = 0;
    for (count, line) in &place.counts {
        out.push_str(&block[copied..line.start]);
        let value = match count {
            Count::Siblings => threads,
            Count::Cores => cores,
        };
        push_with_value(out, &block[line.clone()], value);
        copied = line.end;
    }
    out.push_str(&block[copied..]);
}

/// A block that belongs to no CPU, with s390x's CPU count and per-CPU lines made the visible CPUs'. A
/// block left with nothing but blank lines is left out, so that no stray blank line joins its neighbours.
fn push_summary_block(out: &mut String, block: &str, visible: &CpuSet) {
    let mut kept = String::with_capacity(block.len());
    for line in block.split_inclusive('\n') {
        match line_key(line) {
            Some("# processors") => push_with_value(&mut kept, line, visible.len()),
            Some(key) => match summary_cpu_line(key) {
                Some(id) if !visible.contains(id) => {}
                _ => kept.push_str(line),
            },
            None => kept.push_str(line),
        }
    }
    if kept.lines().any(|line| !line.trim().is_empty()) {
        out.push_str(&kept);
    }
}

/// The CPU of an s390x summary line `processor 3: version = FF, ...` (its key is `processor 3`).
fn summary_cpu_line(key: &str) -> Option<u32> {
    let digits = key.strip_prefix("processor ")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `line` with the text after its colon replaced by ` value`, as the kernel prints `key\t: %d`, and its
/// line ending kept.
fn push_with_value(out: &mut String, line: &str, value: usize) {
    let Some(colon) = line.find(':') else {
        out.push_str(line);
        return;
    };
    out.push_str(&line[..=colon]);
    let _ = write!(out, " {value}");
    if line.ends_with('\n') {
        out.push('\n');
    }
}

/// The key of a `key : value` line, trimmed.
fn line_key(line: &str) -> Option<&str> {
    line.split_once(':').map(|(key, _)| key.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::cpuset::parse_cpu_list;

    /// The value of the first `name : value` line of a block, trimmed.
    fn field_value<'a>(block: &'a str, name: &str) -> Option<&'a str> {
        block.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim())
        })
    }

    #[test]
    fn render_cpuinfo_keeps_visible_blocks_with_real_ids() {
        let host = "processor\t: 0\na\t: 1\n\nprocessor\t: 1\na\t: 1\n\nprocessor\t: 2\na\t: 1\n\n";
        let out = render_cpuinfo(host, &parse_cpu_list("1-2").unwrap());
        assert_eq!(out, "processor\t: 1\na\t: 1\n\nprocessor\t: 2\na\t: 1\n\n");
    }

    #[test]
    fn render_cpuinfo_keeps_headers() {
        let host = "vendor_id : IBM/S390\n\ncpu number : 0\n\ncpu number : 1\n\n";
        let out = render_cpuinfo(host, &parse_cpu_list("1").unwrap());
        assert_eq!(out, "vendor_id : IBM/S390\n\ncpu number : 1\n\n");
    }

    /// An x86 block as `show_cpuinfo_core` prints the topology lines.
    fn x86_block(cpu: u32, package: u32, core: u32, apicid: u32) -> String {
        format!(
            "processor\t: {cpu}\nphysical id\t: {package}\nsiblings\t: 4\ncore id\t\t: {core}\n\
             cpu cores\t: 2\napicid\t\t: {apicid}\ninitial apicid\t: {apicid}\nflags\t\t: fpu\n\n"
        )
    }

    /// Two packages of two cores of two threads, numbered as Linux numbers Intel's: first threads of every
    /// core, then second threads.
    fn two_sockets_with_smt() -> String {
        (0..8)
            .map(|cpu| x86_block(cpu, (cpu / 2) % 2, cpu % 2, (cpu % 4) * 2 + cpu / 4))
            .collect()
    }

    fn topology_lines(text: &str) -> Vec<(u32, &str, &str)> {
        parse_cpuinfo_blocks(text)
            .into_iter()
            .map(|block| {
                (
                    block.cpu.unwrap(),
                    field_value(block.text, "siblings").unwrap(),
                    field_value(block.text, "cpu cores").unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn one_visible_cpu_is_its_own_package_and_core() {
        let out = render_cpuinfo(&two_sockets_with_smt(), &parse_cpu_list("5").unwrap());
        assert_eq!(topology_lines(&out), [(5, "1", "1")]);
        // Ids and the kernel's layout are kept.
        assert_eq!(
            out,
            "processor\t: 5\nphysical id\t: 0\nsiblings\t: 1\ncore id\t\t: 1\n\
             cpu cores\t: 1\napicid\t\t: 3\ninitial apicid\t: 3\nflags\t\t: fpu\n\n"
        );
    }

    #[test]
    fn counts_are_per_package_over_the_visible_cpus() {
        let host = two_sockets_with_smt();
        // CPUs 0 and 4 are the two threads of package 0's core 0; CPU 2 is on package 1.
        let out = render_cpuinfo(&host, &parse_cpu_list("0,2,4").unwrap());
        assert_eq!(
            topology_lines(&out),
            [(0, "2", "1"), (2, "1", "1"), (4, "2", "1")]
        );
        // Two cores of package 0, one thread each.
        let out = render_cpuinfo(&host, &parse_cpu_list("0-1").unwrap());
        assert_eq!(topology_lines(&out), [(0, "2", "2"), (1, "2", "2")]);
        let out = render_cpuinfo(&host, &parse_cpu_list("0-1,4-5").unwrap());
        assert_eq!(
            topology_lines(&out),
            [(0, "4", "2"), (1, "4", "2"), (4, "4", "2"), (5, "4", "2")]
        );
        // Every CPU: the host's own numbers.
        let out = render_cpuinfo(&host, &parse_cpu_list("0-7").unwrap());
        assert_eq!(out, host);
    }

    #[test]
    fn s390x_summary_counts_and_lists_the_visible_cpus() {
        let host = "vendor_id       : IBM/S390\n# processors    : 4\nbogomips per cpu: 3241.00\n\
                    max thread id   : 1\nprocessor 0: version = FF,  identification = 0133E8,  machine = 2964\n\
                    processor 1: version = FF,  identification = 0133E8,  machine = 2964\n\
                    processor 2: version = FF,  identification = 0133E8,  machine = 2964\n\
                    processor 3: version = FF,  identification = 0133E8,  machine = 2964\n\
                    \ncpu number      : 2\nphysical id     : 1\ncore id         : 1\nbook id         : 2\n\
                    drawer id       : 1\nsiblings        : 4\ncpu cores       : 2\n\
                    \ncpu number      : 3\nphysical id     : 1\ncore id         : 1\nbook id         : 2\n\
                    drawer id       : 1\nsiblings        : 4\ncpu cores       : 2\n";
        let out = render_cpuinfo(host, &parse_cpu_list("2-3").unwrap());
        assert!(out.starts_with(
            "vendor_id       : IBM/S390\n# processors    : 2\nbogomips per cpu: 3241.00\n\
             max thread id   : 1\nprocessor 2: version"
        ));
        assert!(!out.contains("processor 0:") && !out.contains("processor 1:"));
        assert_eq!(out.matches("siblings        : 2\n").count(), 2);
        assert_eq!(out.matches("cpu cores       : 1\n").count(), 2);
    }

    #[test]
    fn packages_are_told_apart_by_book_and_drawer_too() {
        let block = |cpu: u32, book: u32| {
            format!("cpu number : {cpu}\nphysical id : 0\ncore id : {cpu}\nbook id : {book}\nsiblings : 9\ncpu cores : 9\n\n")
        };
        let host = [block(0, 0), block(1, 1)].concat();
        let out = render_cpuinfo(&host, &parse_cpu_list("0-1").unwrap());
        assert_eq!(out.matches("siblings : 1\n").count(), 2);
        assert_eq!(out.matches("cpu cores : 1\n").count(), 2);
    }

    #[test]
    fn a_cpu_printed_twice_is_counted_once() {
        let block = "processor : 1\nphysical id : 0\nsiblings : 8\ncore id : 3\ncpu cores : 8\n\n";
        let out = render_cpuinfo(&[block, block].concat(), &parse_cpu_list("1").unwrap());
        assert_eq!(out.matches("siblings : 1\n").count(), 2);
        assert_eq!(out.matches("cpu cores : 1\n").count(), 2);
    }

    #[test]
    fn a_summary_of_hidden_cpus_only_is_left_out_whole() {
        let host = "processor 0: version = FF\n\ncpu number : 1\nx : y\n";
        let out = render_cpuinfo(host, &parse_cpu_list("1").unwrap());
        assert_eq!(out, "cpu number : 1\nx : y\n");
    }

    #[test]
    fn a_last_line_without_a_newline_stays_without() {
        let out = render_cpuinfo("processor : 1\nsiblings : 8", &parse_cpu_list("1").unwrap());
        assert_eq!(out, "processor : 1\nsiblings : 1");
    }
}
