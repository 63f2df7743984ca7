//! Whether cgview serves its mount point right now, asked without ever making the runtime wait: a
//! thread runs the (possibly slow) check over and over, and a container's creation reads its latest
//! answer, which counts only while fresh.

use parking_lot::Mutex;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The check: `Ok` when the mount point is a live cgview mount whose files read, or why not.
pub type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// How often the check runs.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);
/// An answer older than this no longer counts: the check itself is stuck (a hung mount), which is
/// "not served".
pub const FRESH_FOR: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
struct Answer {
    result: Result<(), String>,
    at: Instant,
}

/// The latest answer of a check run by a thread of its own until the watch is dropped.
pub struct ServingWatch {
    latest: Arc<Mutex<Option<Answer>>>,
    stop: Arc<AtomicBool>,
    /// A check that never blocks (the mount table, not the files), run at every question: the
    /// background answer may be up to a period old, and a mount gone since must not get binds.
    quick: Option<Check>,
}

impl ServingWatch {
    /// Starts checking now; the first answer comes after one run of `check`.
    pub fn start(check: Check) -> ServingWatch {
        let latest = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_latest, thread_stop) = (Arc::clone(&latest), Arc::clone(&stop));
        let spawned = std::thread::Builder::new()
            .name("cgview-nri-serving".to_owned())
            .spawn(move || {
                while !thread_stop.load(Ordering::Relaxed) {
                    let result = check();
                    *thread_latest.lock() = Some(Answer {
                        result,
                        at: Instant::now(),
                    });
                    std::thread::sleep(CHECK_EVERY);
                }
            });
        if let Err(e) = spawned {
            *latest.lock() = Some(Answer {
                result: Err(format!(
                    "cannot start the thread that checks the mount point: {e}"
                )),
                at: Instant::now() + Duration::from_secs(365 * 24 * 3600),
            });
        }
        ServingWatch {
            latest,
            stop,
            quick: None,
        }
    }

    /// Also runs `quick` at every question, before looking at the background answer.
    pub fn with_quick_check(mut self, quick: Check) -> ServingWatch {
        self.quick = Some(quick);
        self
    }

    /// A watch whose answer is always `result`: for tests of the plugin's decisions.
    pub fn fixed(result: Result<(), String>) -> ServingWatch {
        let watch = ServingWatch {
            latest: Arc::new(Mutex::new(None)),
            stop: Arc::new(AtomicBool::new(true)),
            quick: None,
        };
        *watch.latest.lock() = Some(Answer {
            result,
            at: Instant::now() + Duration::from_secs(365 * 24 * 3600),
        });
        watch
    }

    /// Whether cgview serves, as the latest fresh answer says.
    pub fn served(&self) -> Result<(), String> {
        if let Some(quick) = &self.quick {
            quick()?;
        }
        let latest = self.latest.lock().clone();
        match latest {
            None => Err("the mount point has not been checked yet".to_owned()),
            Some(answer) => {
                let age = answer.at.elapsed();
                if age > FRESH_FOR {
                    Err(format!(
                        "the check of the mount point has not answered for {:.1} s (a hung mount?)",
                        age.as_secs_f64()
                    ))
                } else {
                    answer.result
                }
            }
        }
    }

    /// Waits up to `limit` until the answer is "served" (a daemon about to serve its own mount).
    pub fn wait_served(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            if self.served().is_ok() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `limit` for a first answer (at start, so the first creation does not find none).
    pub fn wait_first(&self, limit: Duration) {
        let until = Instant::now() + limit;
        while self.latest.lock().is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServingWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether something listens on the Unix socket at `path`, asked with a non-blocking `connect(2)`
/// that is closed at once (cgview's seccomp listener takes a connection that sends nothing for such a
/// check). A full backlog (`EAGAIN`) is a listener, busy.
pub fn socket_listening(path: &Path) -> Result<(), String> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let shown = path.display();
    let address =
        SocketAddrUnix::new(path).map_err(|e| format!("{shown} is not a socket path: {e}"))?;
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| format!("cannot open a socket to check {shown}: {e}"))?;
    match rustix::net::connect(&socket, &address) {
        Ok(()) | Err(rustix::io::Errno::AGAIN) => Ok(()),
        Err(e) => Err(format!("nothing listens on {shown}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn the_answer_follows_the_check_and_a_stuck_check_is_not_served() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let watch = ServingWatch::start(Arc::new(move || {
            let n = counted.fetch_add(1, Ordering::Relaxed);
            if n == 0 {
                Ok(())
            } else {
                // Stuck, as a read through a hung mount is.
                std::thread::sleep(Duration::from_secs(60));
                Ok(())
            }
        }));
        watch.wait_first(Duration::from_secs(5));
        assert_eq!(watch.served(), Ok(()));
        std::thread::sleep(FRESH_FOR + CHECK_EVERY + Duration::from_millis(200));
        let error = watch.served().unwrap_err();
        assert!(error.contains("has not answered"), "{error}");
    }

    #[test]
    fn a_socket_listens_while_its_listener_is_open() {
        let dir = std::env::temp_dir().join(format!("cgview-nri-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let error = socket_listening(&path).unwrap_err();
        assert!(error.contains("nothing listens"), "{error}");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(socket_listening(&path), Ok(()));
        drop(listener);
        // The file stays, nobody listens: ECONNREFUSED.
        assert!(socket_listening(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failing_check_gives_its_reason() {
        let watch = ServingWatch::start(Arc::new(|| Err("nothing is mounted there".to_owned())));
        watch.wait_first(Duration::from_secs(5));
        assert_eq!(watch.served(), Err("nothing is mounted there".to_owned()));
    }
}
