//! Errors of the I/O ring. Every message carries the path it concerns.

use cgview_core::failure::{Failure, FallbackCause};
use cgview_core::parse::ParseError;
use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A host or cgroup file that could not be read or understood.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
}

impl ReadError {
    /// The file is gone: its process exited or its cgroup was removed. Expected in normal operation.
    pub fn is_vanished(&self) -> bool {
        match self {
            ReadError::Io { source, .. } => {
                matches!(
                    source.raw_os_error(),
                    Some(libc::ENOENT | libc::ESRCH | libc::ENODEV)
                ) || source.kind() == io::ErrorKind::NotFound
            }
            ReadError::Parse { .. } => false,
        }
    }

    pub fn path(&self) -> &std::path::Path {
        match self {
            ReadError::Io { path, .. } | ReadError::Parse { path, .. } => path,
        }
    }

    /// What this error is when it stops a caller's view from being built: a fallback to the host file,
    /// under the cause the failure table counts. A vanished file under `proc_root` is the caller's (or
    /// its namespace init's) process: the caller is gone; anywhere else it is a cgroup's directory: the
    /// cgroup was removed. (The host file a view falls back to failing as well is not this: that read's
    /// errno is the request's, [`Failure::from_host_errno`].)
    pub fn view_failure(&self, proc_root: &Path) -> Failure {
        let cause = match self {
            e if e.is_vanished() && e.path().starts_with(proc_root) => FallbackCause::CallerGone,
            e if e.is_vanished() => FallbackCause::CgroupVanished,
            ReadError::Io { .. } => FallbackCause::Unreadable,
            ReadError::Parse { .. } => FallbackCause::Unparsable,
        };
        Failure::Fallback(cause)
    }
}

/// Attaches a path to I/O and parse errors, so call sites stay one line.
pub trait WrapPath<T> {
    fn wrap_path(self, path: &std::path::Path) -> Result<T, ReadError>;
}

impl<T> WrapPath<T> for Result<T, io::Error> {
    fn wrap_path(self, path: &std::path::Path) -> Result<T, ReadError> {
        self.map_err(|source| ReadError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

impl<T> WrapPath<T> for Result<T, ParseError> {
    fn wrap_path(self, path: &std::path::Path) -> Result<T, ReadError> {
        self.map_err(|source| ReadError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

/// Reads a whole kernel-generated file as text (bounded and non-blocking: see
/// [`kernel_file`](super::kernel_file)).
pub fn read_text(path: &std::path::Path) -> Result<String, ReadError> {
    super::kernel_file::read_kernel_text(path).wrap_path(path)
}

/// Like [`read_text`], but a missing file is `Ok(None)`: many cgroup files exist only with some kernels or
/// controller settings.
pub fn read_optional_text(path: &std::path::Path) -> Result<Option<String>, ReadError> {
    match super::kernel_file::read_kernel_text(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ReadError::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(path: &str, errno: i32) -> ReadError {
        ReadError::Io {
            path: path.into(),
            source: io::Error::from_raw_os_error(errno),
        }
    }

    #[test]
    fn a_view_failure_is_a_fallback_whose_cause_depends_on_what_vanished() {
        let proc_root = Path::new("/host/proc");
        let fallback = |error: ReadError| error.view_failure(proc_root).fallback_cause();
        for errno in [libc::ENOENT, libc::ESRCH, libc::ENODEV] {
            assert_eq!(
                fallback(io("/host/proc/42/cgroup", errno)),
                Some(FallbackCause::CallerGone)
            );
            assert_eq!(
                fallback(io("/sys/fs/cgroup/memory/a/memory.stat", errno)),
                Some(FallbackCause::CgroupVanished)
            );
        }
        // Only a path under the proc root is the caller's: a sibling directory whose name starts alike
        // is not.
        assert_eq!(
            fallback(io("/host/procfs/42/cgroup", libc::ENOENT)),
            Some(FallbackCause::CgroupVanished)
        );
        assert_eq!(
            fallback(io("/host/proc/42/cgroup", libc::EACCES)),
            Some(FallbackCause::Unreadable)
        );
        let unparsable = ReadError::Parse {
            path: "/host/proc/42/cgroup".into(),
            source: ParseError::new("cgroup", "no lines"),
        };
        assert_eq!(fallback(unparsable), Some(FallbackCause::Unparsable));
    }
}
