//! Errors of the I/O ring. Every message carries the path it concerns.

use cgview_core::parse::ParseError;
use std::io;
use std::path::PathBuf;
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
