//! A call a daemon killed between receiving it and recording it in its slot ([`super::slots`]), or a
//! call a successor took over and was killed before answering: the kernel neither answers it nor hands
//! it out again, so its caller would wait for good.
//!
//! The kernel numbers a descriptor's notifications in order, and `SECCOMP_IOCTL_NOTIF_ID_VALID` says
//! which were received and not answered. So the successor, once no other live daemon serves the
//! descriptor (one of them could be inside that same window), looks at the ids from the last one each
//! slot recorded on: a valid one is such an orphan. Its caller is found by what the kernel shows of
//! every thread of the last caller's pid namespace blocked in `sysinfo` (`/proc/<tid>/syscall`):
//! - when nothing is queued (no `POLLIN`: every thread waiting waits for a call received) and one
//!   thread alone is blocked, that thread, at once;
//! - otherwise the one thread still blocked in the same call [`STUCK_AFTER`] later, not having slept
//!   and woken since (its voluntary context switches unchanged: a thread calling `sysinfo` in a loop
//!   with one buffer shows the same syscall line at every look), while this daemon kept answering (a
//!   call merely queued is answered within milliseconds).
//!
//! The call is then answered as any other (its buffer is the syscall's first argument). Anything else
//! after [`GIVE_UP_AFTER`] (no thread found, or more than one for more than one orphan): each orphan is
//! let through to the kernel, so its caller gets the host's figures rather than waiting for ever
//! (counted as a fallback).

use super::notify::{self, NATIVE_ARCH};
use super::slots::{LastAnswered, Pending, SlotTable};
use super::SeccompCounters;
use crate::service::fallback::FallbackCause;
use crate::service::sysinfo::SysinfoValues;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Ids looked at after each dead daemon's last recorded one. Another daemon serving at the same
/// time (a take-over) takes ids in between; a thousand covers seconds of a busy container's calls.
const WINDOW: u64 = 1024;
/// How often the search looks.
const STEP_EVERY: Duration = Duration::from_millis(100);
/// How long a thread must stay blocked in the same `sysinfo` call to be taken for an orphan's caller.
const STUCK_AFTER: Duration = Duration::from_millis(300);
/// When an orphan whose caller cannot be told apart is let through.
const GIVE_UP_AFTER: Duration = Duration::from_secs(3);
/// When a search that could never look (another daemon kept serving) ends.
const ABANDON_AFTER: Duration = Duration::from_secs(60);

/// What to do with the orphans found and the threads seen stuck in `sysinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No orphan: nothing to do, ever (the window's call, if any, was received before the search).
    Nothing,
    /// Answer orphan `id` as thread `tid`'s call with its buffer at `arg0`.
    Answer { id: u64, tid: u32, arg0: u64 },
    /// Look again later.
    Wait,
    /// Let each through to the kernel.
    LetThrough(Vec<u64>),
}

/// The decision for `orphans` (valid ids nobody records) and `stuck` threads (tid, buffer), after
/// searching for `searched`.
pub fn decide(orphans: &[u64], stuck: &[(u32, u64)], searched: Duration) -> Decision {
    match (orphans, stuck) {
        ([], _) => Decision::Nothing,
        ([id], [(tid, arg0)]) => Decision::Answer {
            id: *id,
            tid: *tid,
            arg0: *arg0,
        },
        _ if searched < GIVE_UP_AFTER => Decision::Wait,
        _ => Decision::LetThrough(orphans.to_vec()),
    }
}

/// The syscall number and first argument of a thread blocked in a system call, from its
/// `/proc/<tid>/syscall` (`nr arg1 ... arg6 sp pc`); `None` for a running thread or one blocked
/// outside a call (`running`, `-1 sp pc`).
pub fn parse_syscall_line(text: &str) -> Option<(i64, u64)> {
    let mut words = text.split_whitespace();
    let nr: i64 = words.next()?.parse().ok()?;
    if nr < 0 {
        return None;
    }
    let arg0 = words.next()?;
    let arg0 = u64::from_str_radix(arg0.strip_prefix("0x")?, 16).ok()?;
    Some((nr, arg0))
}

/// The search for one descriptor's orphans, stepped by its serving thread between notifications.
pub struct OrphanSearch {
    proc_root: PathBuf,
    after: Vec<LastAnswered>,
    /// The pid namespace (`/proc/<tid>/ns/pid`'s link) of the dead daemons' last callers.
    namespace: Option<PathBuf>,
    started: Instant,
    looked: Option<Instant>,
    /// Threads seen blocked in `sysinfo`: their syscall line with their voluntary context switches, and
    /// since when.
    seen: HashMap<u32, (String, Instant)>,
    /// Whether the orphans were logged.
    reported: bool,
}

impl OrphanSearch {
    /// A search after the last calls dead daemons answered; `None` if there are none.
    pub fn new(proc_root: &Path, after: Vec<LastAnswered>) -> Option<OrphanSearch> {
        if after.is_empty() {
            return None;
        }
        let namespace = after.iter().find_map(|last| {
            std::fs::read_link(proc_root.join(last.tid.to_string()).join("ns/pid")).ok()
        });
        tracing::debug!(
            ?after,
            ?namespace,
            "seccomp: looking for calls received after these"
        );
        Some(OrphanSearch {
            proc_root: proc_root.to_owned(),
            after,
            namespace,
            started: Instant::now(),
            looked: None,
            seen: HashMap::new(),
            reported: false,
        })
    }

    /// Looks once if due; whether the search is over.
    pub fn step(
        &mut self,
        fd: &OwnedFd,
        table: Option<&SlotTable>,
        answer: &dyn Fn(u32) -> Result<SysinfoValues, FallbackCause>,
        counters: &SeccompCounters,
    ) -> bool {
        let now = Instant::now();
        if self.looked.is_some_and(|at| now - at < STEP_EVERY) {
            return false;
        }
        self.looked = Some(now);
        if table.is_some_and(SlotTable::others_own_slots) {
            tracing::debug!("seccomp: another daemon serves the descriptor; the search waits");
            return now - self.started > ABANDON_AFTER;
        }
        let orphans = self.orphans(fd);
        let stuck = if orphans.is_empty() {
            Vec::new()
        } else {
            let blocked = self.blocked_in_sysinfo();
            // Nothing queued after the look (and this thread receives nothing meanwhile): every
            // thread blocked in the call is a received one's caller, and the orphan is the only
            // call received. So a single thread blocked is its caller, at once.
            if orphans.len() == 1 && blocked.len() == 1 && !notify::has_queued(fd) {
                blocked
                    .iter()
                    .filter_map(|(tid, line)| Some((*tid, parse_syscall_line(line)?.1)))
                    .collect()
            } else {
                self.stuck(now, blocked)
            }
        };
        match decide(&orphans, &stuck, now - self.started) {
            Decision::Nothing => {
                tracing::debug!(
                    after = ?self.after,
                    "seccomp: no call a killed daemon received is left unrecorded"
                );
                true
            }
            Decision::Wait => {
                if !std::mem::replace(&mut self.reported, true) {
                    tracing::info!(
                        ?orphans,
                        "seccomp: a call a killed daemon received and did not record waits; looking \
                         for its caller"
                    );
                }
                false
            }
            Decision::Answer { id, tid, arg0 } => {
                let pending = Pending {
                    id,
                    tid,
                    nr: libc::SYS_sysinfo as i32,
                    arch: NATIVE_ARCH,
                    arg0,
                };
                match notify::answer_pending(fd, &pending, answer, counters) {
                    Ok(true) => {
                        counters.recovered.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            id,
                            tid,
                            "seccomp: answered a call a killed daemon had received and not recorded"
                        );
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!("seccomp: a killed daemon's unrecorded call: {e}"),
                }
                true
            }
            Decision::LetThrough(ids) => {
                for id in ids {
                    match notify::let_through(fd, id) {
                        Ok(true) => {
                            counters.host_fallbacks.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                id,
                                "seccomp: a call a killed daemon had received and not recorded, whose \
                                 caller could not be told apart, is let through (the host's figures)"
                            );
                        }
                        Ok(false) => {}
                        Err(e) => tracing::warn!("seccomp: a killed daemon's unrecorded call: {e}"),
                    }
                }
                true
            }
        }
    }

    /// Ids received and unanswered from each trail's last recorded one on.
    fn orphans(&self, fd: &OwnedFd) -> Vec<u64> {
        let mut orphans: Vec<u64> = self
            .after
            .iter()
            // The last call itself too: cleared in its slot as answered by a successor that died
            // before answering it (the trail of no daemon that lives).
            .flat_map(|last| (0..=WINDOW).map(move |k| last.id.wrapping_add(k)))
            .filter(|id| notify::still_valid(fd, *id))
            .collect();
        orphans.sort_unstable();
        orphans.dedup();
        orphans
    }

    /// The threads of the namespace blocked in `sysinfo` in the same call for [`STUCK_AFTER`].
    fn stuck(&mut self, now: Instant, blocked: Vec<(u32, String)>) -> Vec<(u32, u64)> {
        self.seen.retain(|tid, (line, _)| {
            blocked
                .iter()
                .any(|(other, other_line)| other == tid && other_line == line)
        });
        for (tid, line) in blocked {
            self.seen.entry(tid).or_insert((line, now));
        }
        let mut stuck: Vec<(u32, u64)> = self
            .seen
            .iter()
            .filter(|(_, (_, since))| now - *since >= STUCK_AFTER)
            .filter_map(|(tid, (line, _))| Some((*tid, parse_syscall_line(line)?.1)))
            .collect::<Vec<_>>();
        stuck.sort_unstable();
        stuck
    }

    /// Every thread (of the namespace, when known) blocked in `sysinfo`: its tid and syscall line
    /// followed by its voluntary context switches (which change whenever it sleeps anew).
    fn blocked_in_sysinfo(&self) -> Vec<(u32, String)> {
        let mut found = Vec::new();
        for (tid, dir) in self.threads() {
            let Ok(line) = std::fs::read_to_string(dir.join("syscall")) else {
                continue;
            };
            if parse_syscall_line(&line).map(|(nr, _)| nr) != Some(libc::SYS_sysinfo) {
                continue;
            }
            if let Some(namespace) = &self.namespace {
                if std::fs::read_link(dir.join("ns/pid")).ok().as_ref() != Some(namespace) {
                    continue;
                }
            }
            let Some(switches) = std::fs::read_to_string(dir.join("status"))
                .ok()
                .and_then(|status| voluntary_switches(&status))
            else {
                continue;
            };
            found.push((tid, format!("{} {switches}", line.trim())));
        }
        found
    }

    /// Every thread of every process: its tid and `/proc` directory.
    fn threads(&self) -> Vec<(u32, PathBuf)> {
        let mut threads = Vec::new();
        let Ok(processes) = std::fs::read_dir(&self.proc_root) else {
            return threads;
        };
        for process in processes.flatten() {
            if process
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_none()
            {
                continue;
            }
            let Ok(tasks) = std::fs::read_dir(process.path().join("task")) else {
                continue;
            };
            for task in tasks.flatten() {
                if let Some(tid) = task
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    threads.push((tid, task.path()));
                }
            }
        }
        threads
    }
}

/// `voluntary_ctxt_switches` of a `/proc/<tid>/status`.
pub fn voluntary_switches(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real notify descriptor (a thread of this test traps its own `sysinfo`): the "killed daemon"
    /// receives and answers the thread's first call, then receives its second and dies before
    /// recording it. The successor's search finds that call after the first one's id, finds the
    /// thread blocked in it, and answers it: the second call returns the answer.
    #[test]
    fn a_call_a_daemon_was_killed_before_recording_is_found_and_answered() {
        use std::os::fd::FromRawFd;
        if NATIVE_ARCH == 0 {
            return;
        }
        let (sender, receiver) = std::sync::mpsc::channel();
        let trapped = std::thread::spawn(move || {
            sender.send(notify::trap_sysinfo_of_this_thread()).unwrap();
            let mut results = Vec::new();
            for _ in 0..2 {
                // SAFETY: an all-zero `struct sysinfo` is valid; sysinfo writes one to the pointer.
                let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
                // SAFETY: `info` is alive and exclusively borrowed for the call.
                let result = unsafe { libc::sysinfo(&mut info) };
                results.push((result, info.totalram, info.mem_unit));
            }
            results
        });
        // SAFETY: the listener descriptor the thread just made, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(receiver.recv().unwrap()) };
        let counters = SeccompCounters::default();
        let answer_with = |totalram: u64| {
            move |_tid: u32| {
                Ok(SysinfoValues {
                    totalram,
                    mem_unit: 1,
                    ..SysinfoValues::default()
                })
            }
        };
        let first = notify::receive_one(&fd).unwrap();
        assert!(notify::answer_pending(&fd, &first, &answer_with(128 << 20), &counters).unwrap());
        let table = SlotTable::create().unwrap();
        table.leave_answered_as_killed(&first);
        let unrecorded = notify::receive_one(&fd).unwrap();
        assert_eq!(
            unrecorded.id,
            first.id.wrapping_add(1),
            "ids follow each other"
        );

        let reclaimed = table.reclaim_dead();
        assert!(reclaimed.pending.is_empty());
        let mut search = OrphanSearch::new(Path::new("/proc"), reclaimed.last_answered)
            .expect("a dead daemon's last call");
        let began = Instant::now();
        let answer = answer_with(256 << 20);
        while !search.step(&fd, Some(&table), &answer, &counters) {
            assert!(
                began.elapsed() < GIVE_UP_AFTER * 2,
                "the search never ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let left_waiting = notify::still_valid(&fd, unrecorded.id);
        if left_waiting {
            // Released, so that the thread ends and the test reports rather than hangs.
            let _ = notify::let_through(&fd, unrecorded.id);
        }
        assert!(!left_waiting, "the search left the call unanswered");
        assert_eq!(
            trapped.join().unwrap(),
            vec![(0, 128 << 20, 1), (0, 256 << 20, 1)]
        );
        assert_eq!(counters.recovered.load(Ordering::Relaxed), 1);
        assert_eq!(counters.host_fallbacks.load(Ordering::Relaxed), 0);
        // Nothing left: a new search ends at once.
        let mut again = OrphanSearch::new(
            Path::new("/proc"),
            vec![LastAnswered {
                id: first.id,
                tid: first.tid,
            }],
        )
        .unwrap();
        assert!(again.step(&fd, Some(&table), &answer, &counters));
    }

    #[test]
    fn syscall_lines_of_blocked_threads_parse() {
        assert_eq!(
            voluntary_switches(
                "Name:\tprobe\nvoluntary_ctxt_switches:\t812\nnonvoluntary_ctxt_switches:\t3\n"
            ),
            Some(812)
        );
        assert_eq!(voluntary_switches("Name:\tprobe\n"), None);
        assert_eq!(
            parse_syscall_line("99 0x7ffd1c2e5a40 0x0 0x0 0x0 0x0 0x0 0x7ffd1c2e5a38 0x41a2b4\n"),
            Some((99, 0x7ffd_1c2e_5a40))
        );
        assert_eq!(parse_syscall_line("running\n"), None);
        assert_eq!(parse_syscall_line("-1 0x7ffd1c2e5a38 0x41a2b4\n"), None);
        assert_eq!(parse_syscall_line(""), None);
        assert_eq!(parse_syscall_line("99 zz"), None);
    }

    #[test]
    fn only_one_orphan_and_one_stuck_thread_are_matched() {
        let soon = Duration::from_millis(500);
        let late = GIVE_UP_AFTER + Duration::from_millis(1);
        assert_eq!(decide(&[], &[(7, 0x1000)], soon), Decision::Nothing);
        assert_eq!(decide(&[], &[], late), Decision::Nothing);
        assert_eq!(
            decide(&[41], &[(7, 0x1000)], soon),
            Decision::Answer {
                id: 41,
                tid: 7,
                arg0: 0x1000
            }
        );
        assert_eq!(decide(&[41], &[], soon), Decision::Wait);
        assert_eq!(decide(&[41], &[(7, 1), (8, 2)], soon), Decision::Wait);
        assert_eq!(decide(&[41, 42], &[(7, 1)], soon), Decision::Wait);
        assert_eq!(decide(&[41], &[], late), Decision::LetThrough(vec![41]));
        assert_eq!(
            decide(&[41, 42], &[(7, 1), (8, 2)], late),
            Decision::LetThrough(vec![41, 42])
        );
    }
}
