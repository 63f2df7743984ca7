//! Every way a request can fail, in one table: the errno its caller gets and, for a file that could not
//! be virtualized, the fallback cause counted when the host file is served instead.
//!
//! The daemon's layers classify what went wrong into a [`Failure`]; only this module knows what each
//! becomes on the wire (`errno`) and in the metrics (`cgview_host_fallbacks_total{cause}`).

use std::fmt;

/// Why a caller was served the host file instead of its own view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackCause {
    /// The calling process exited, or is not visible in the daemon's `/proc`.
    CallerGone,
    /// The caller's cgroup was removed while being read.
    CgroupVanished,
    /// A controller the file needs is not mounted.
    MissingController,
    /// A cgroup or host file could not be read.
    Unreadable,
    /// A cgroup or host file had content cgview cannot parse.
    Unparsable,
}

impl FallbackCause {
    pub const ALL: [FallbackCause; 5] = [
        FallbackCause::CallerGone,
        FallbackCause::CgroupVanished,
        FallbackCause::MissingController,
        FallbackCause::Unreadable,
        FallbackCause::Unparsable,
    ];

    /// A dense index, for per-cause counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The `cause` label of `cgview_host_fallbacks_total`.
    pub fn name(self) -> &'static str {
        match self {
            FallbackCause::CallerGone => "caller_gone",
            FallbackCause::CgroupVanished => "cgroup_vanished",
            FallbackCause::MissingController => "missing_controller",
            FallbackCause::Unreadable => "unreadable",
            FallbackCause::Unparsable => "unparsable",
        }
    }
}

impl fmt::Display for FallbackCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything a request can end in other than its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The caller's view could not be built; the host file is served in its place.
    Fallback(FallbackCause),
    /// A host file (mirrored, or the one a view falls back to) failed to read with this errno.
    Host(i32),
    /// No such name in the tree, or on the mirrored host.
    NotFound,
    NotADirectory,
    IsADirectory,
    /// The tree is read-only: an open for writing.
    ReadOnly,
    /// The caller's credentials do not allow it.
    PermissionDenied,
    /// READLINK on something that is not a symlink, an impossible offset or flag.
    InvalidArgument,
    /// A file or directory handle the daemon did not hand out (or already released).
    BadHandle,
    /// The mirror's inode numbers or the open-file table are exhausted.
    TooManyOpen,
    /// A name longer than `NAME_MAX`.
    NameTooLong,
    /// A request the kernel sent that cannot be decoded, or a reply that cannot be built.
    Malformed,
    /// An operation cgview does not implement (as a FUSE library answers it).
    Unsupported,
    /// An ioctl on a served file: none applies.
    NoIoctl,
    /// SYMLINK, LINK: creating names is not permitted in the tree.
    NotPermitted,
    /// A page-cache fill (`sendfile(2)`, `splice(2)`, a private `mmap(2)`) of a file whose content is per
    /// caller: the cache is one per inode, shared by every container. Refused with the errno
    /// `sendfile(2)` documents for a descriptor it cannot use, so the reader falls back to `read(2)`.
    PageCacheRefused,
    /// A handler panicked: a bug, which costs its one request instead of a reply that never comes.
    Internal,
}

impl Failure {
    /// A host I/O error's failure: its errno, or EIO when it has none.
    pub fn from_host_errno(errno: Option<i32>) -> Failure {
        Failure::Host(errno.filter(|&e| e > 0).unwrap_or(libc::EIO))
    }

    /// A host I/O error's failure: a name the host does not have is [`Failure::NotFound`], as a name the
    /// tree does not have is; any other error keeps its errno.
    pub fn from_io(error: &std::io::Error) -> Failure {
        match error.kind() {
            std::io::ErrorKind::NotFound => Failure::NotFound,
            _ => Failure::from_host_errno(error.raw_os_error()),
        }
    }

    /// The errno the caller gets: the table.
    pub fn errno(self) -> i32 {
        match self {
            // A view that cannot be built is served from the host; only when the host file cannot be
            // read either does the request fail, and then with that read's errno (`Host`).
            Failure::Fallback(_) => libc::EIO,
            Failure::Host(errno) => errno,
            Failure::NotFound => libc::ENOENT,
            Failure::NotADirectory => libc::ENOTDIR,
            Failure::IsADirectory => libc::EISDIR,
            Failure::ReadOnly => libc::EROFS,
            Failure::PermissionDenied => libc::EACCES,
            Failure::InvalidArgument => libc::EINVAL,
            Failure::BadHandle => libc::EBADF,
            Failure::TooManyOpen => libc::ENFILE,
            Failure::NameTooLong => libc::ENAMETOOLONG,
            Failure::Malformed => libc::EIO,
            Failure::Unsupported => libc::ENOSYS,
            Failure::NoIoctl => libc::ENOTTY,
            Failure::NotPermitted => libc::EPERM,
            Failure::PageCacheRefused => libc::EINVAL,
            Failure::Internal => libc::EIO,
        }
    }

    /// The fallback counted for this failure, if it is one.
    pub fn fallback_cause(self) -> Option<FallbackCause> {
        match self {
            Failure::Fallback(cause) => Some(cause),
            _ => None,
        }
    }
}

impl From<FallbackCause> for Failure {
    fn from(cause: FallbackCause) -> Failure {
        Failure::Fallback(cause)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Fallback(cause) => write!(f, "served from the host: {cause}"),
            other => write!(f, "{}", std::io::Error::from_raw_os_error(other.errno())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_keep_their_errno_and_default_to_eio() {
        assert_eq!(
            Failure::from_host_errno(Some(libc::ENOENT)).errno(),
            libc::ENOENT
        );
        assert_eq!(Failure::from_host_errno(None).errno(), libc::EIO);
        assert_eq!(Failure::from_host_errno(Some(0)).errno(), libc::EIO);
    }

    #[test]
    fn a_missing_host_file_is_not_found_and_other_io_errors_keep_their_errno() {
        let missing = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(Failure::from_io(&missing), Failure::NotFound);
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(Failure::from_io(&denied), Failure::Host(libc::EACCES));
        assert_eq!(
            Failure::from_io(&std::io::Error::other("no errno")).errno(),
            libc::EIO
        );
    }

    #[test]
    fn only_fallbacks_have_a_cause_and_every_cause_has_a_distinct_name() {
        for cause in FallbackCause::ALL {
            assert_eq!(Failure::from(cause).fallback_cause(), Some(cause));
            assert_eq!(FallbackCause::ALL[cause.index()], cause);
        }
        let mut names: Vec<_> = FallbackCause::ALL.iter().map(|c| c.name()).collect();
        names.dedup();
        assert_eq!(names.len(), FallbackCause::ALL.len());
        assert_eq!(Failure::NotFound.fallback_cause(), None);
    }
}
