//! Reading a caller's credentials from the host's procfs, for the access checks of
//! [`permissions`](cgview_core::permissions): `/proc/<tid>/status` for its groups and capabilities, and its user
//! namespace's id maps when a capability is to override a node's bits. Nothing is kept open, and every
//! read is a bounded, non-blocking kernel-file read (the proc root is injectable).

use super::kernel_file::read_kernel_text;
use cgview_core::parse::task_credentials::{parse_id_map, parse_task_credentials, TaskCredentials};
use cgview_core::permissions::{CallerLookup, Credentials, Owner};
use std::path::PathBuf;

/// Reads callers' credentials below an injected proc root.
#[derive(Debug, Clone)]
pub struct CredentialReader {
    proc_root: PathBuf,
}

impl CredentialReader {
    pub fn new(proc_root: PathBuf) -> CredentialReader {
        CredentialReader { proc_root }
    }

    /// The caller of one request: thread `tid` (as the daemon's pid namespace numbers it; `None` when it
    /// is outside it) with the request's ids. Reads nothing until a check asks.
    pub fn caller(&self, tid: Option<u32>, request: Credentials) -> Caller<'_> {
        Caller {
            reader: self,
            tid,
            request,
            credentials: None,
        }
    }

    fn task_file(&self, tid: u32, name: &str) -> PathBuf {
        let mut path = self.proc_root.join(tid.to_string());
        path.push(name);
        path
    }

    /// The thread's credentials, if they are the request's: a thread that changed its ids since it sent
    /// the request, or a reused thread id, must not lend the request its groups.
    fn read_credentials(&self, tid: u32, request: Credentials) -> Option<TaskCredentials> {
        let path = self.task_file(tid, "status");
        let text = read_kernel_text(&path)
            .map_err(|e| tracing::debug!(path = %path.display(), "cannot read a caller's credentials: {e}"))
            .ok()?;
        let credentials = parse_task_credentials(&text)
            .map_err(|e| tracing::debug!(path = %path.display(), "cannot parse a caller's credentials: {e}"))
            .ok()?;
        if (credentials.fsuid, credentials.fsgid) != (request.uid, request.gid) {
            tracing::debug!(
                tid,
                "a caller's credentials are not the request's ({}:{} for {}:{}); treating them as unknown",
                credentials.fsuid,
                credentials.fsgid,
                request.uid,
                request.gid
            );
            return None;
        }
        Some(credentials)
    }

    /// Whether thread `tid`'s user namespace is the daemon's own.
    fn in_own_user_namespace(&self, tid: u32) -> bool {
        let own = std::fs::read_link(self.proc_root.join("self/ns/user"));
        let theirs = std::fs::read_link(self.task_file(tid, "ns/user"));
        matches!((own, theirs), (Ok(own), Ok(theirs)) if own == theirs)
    }

    /// Whether thread `tid`'s user namespace maps `owner`'s uid and gid.
    fn maps_owner(&self, tid: u32, owner: Owner) -> bool {
        let maps = |name: &str, id: u32| {
            read_kernel_text(&self.task_file(tid, name))
                .ok()
                .and_then(|text| parse_id_map(&text).ok())
                .is_some_and(|map| map.maps(id))
        };
        maps("uid_map", owner.uid) && maps("gid_map", owner.gid)
    }
}

/// One request's caller, read lazily and at most once.
pub struct Caller<'a> {
    reader: &'a CredentialReader,
    tid: Option<u32>,
    request: Credentials,
    /// `Some` once read.
    credentials: Option<Option<TaskCredentials>>,
}

impl CallerLookup for Caller<'_> {
    fn credentials(&mut self) -> Option<&TaskCredentials> {
        let (reader, tid, request) = (self.reader, self.tid, self.request);
        self.credentials
            .get_or_insert_with(|| tid.and_then(|tid| reader.read_credentials(tid, request)))
            .as_ref()
    }

    fn capabilities_apply_to(&mut self, owner: Owner) -> bool {
        let Some(tid) = self.tid else {
            return false;
        };
        self.reader.in_own_user_namespace(tid) || self.reader.maps_owner(tid, owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    const STATUS: &str = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n\
        Groups:\t50 \nCapEff:\t0000000000000000\n";

    fn proc_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("self/ns")).unwrap();
        symlink("user:[4026531837]", dir.path().join("self/ns/user")).unwrap();
        fs::create_dir_all(dir.path().join("42/ns")).unwrap();
        fs::write(dir.path().join("42/status"), STATUS).unwrap();
        dir
    }

    #[test]
    fn caller_reads_the_status_of_its_thread_once() {
        let root = proc_root();
        let reader = CredentialReader::new(root.path().to_owned());
        let mut caller = reader.caller(
            Some(42),
            Credentials {
                uid: 1000,
                gid: 1000,
            },
        );
        assert_eq!(caller.credentials().unwrap().groups, [50]);
        fs::remove_file(root.path().join("42/status")).unwrap();
        assert!(caller.credentials().is_some(), "read again");
        let mut gone = reader.caller(
            Some(42),
            Credentials {
                uid: 1000,
                gid: 1000,
            },
        );
        assert!(gone.credentials().is_none());
    }

    #[test]
    fn caller_whose_status_is_not_a_regular_file_is_unknown_without_blocking() {
        let root = proc_root();
        fs::remove_file(root.path().join("42/status")).unwrap();
        nix::unistd::mkfifo(
            &root.path().join("42/status"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        let reader = CredentialReader::new(root.path().to_owned());
        assert!(reader
            .caller(
                Some(42),
                Credentials {
                    uid: 1000,
                    gid: 1000
                }
            )
            .credentials()
            .is_none());
    }

    #[test]
    fn caller_whose_status_is_not_the_requests_is_unknown() {
        let root = proc_root();
        let reader = CredentialReader::new(root.path().to_owned());
        assert!(reader
            .caller(Some(42), Credentials { uid: 1000, gid: 0 })
            .credentials()
            .is_none());
        assert!(reader
            .caller(
                None,
                Credentials {
                    uid: 1000,
                    gid: 1000
                }
            )
            .credentials()
            .is_none());
    }

    #[test]
    fn capabilities_apply_in_the_daemons_namespace_or_where_the_owner_is_mapped() {
        let root = proc_root();
        let reader = CredentialReader::new(root.path().to_owned());
        let request = Credentials {
            uid: 1000,
            gid: 1000,
        };
        let owner = Owner::ROOT;
        assert!(!reader
            .caller(Some(42), request)
            .capabilities_apply_to(owner));
        symlink("user:[4026531837]", root.path().join("42/ns/user")).unwrap();
        assert!(reader
            .caller(Some(42), request)
            .capabilities_apply_to(owner));
        fs::remove_file(root.path().join("42/ns/user")).unwrap();
        symlink("user:[4026532000]", root.path().join("42/ns/user")).unwrap();
        fs::write(root.path().join("42/uid_map"), "0 100000 65536\n").unwrap();
        fs::write(root.path().join("42/gid_map"), "0 100000 65536\n").unwrap();
        assert!(!reader
            .caller(Some(42), request)
            .capabilities_apply_to(owner));
        fs::write(root.path().join("42/uid_map"), "0 0 1\n").unwrap();
        assert!(
            !reader
                .caller(Some(42), request)
                .capabilities_apply_to(owner),
            "gid unmapped"
        );
        fs::write(root.path().join("42/gid_map"), "0 0 1\n").unwrap();
        assert!(reader
            .caller(Some(42), request)
            .capabilities_apply_to(owner));
        assert!(!reader.caller(None, request).capabilities_apply_to(owner));
    }
}
