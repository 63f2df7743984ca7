//! How the model and renderer targets read one fuzz input: a fixed number of parameter bytes, then kernel
//! files separated by NUL bytes (no kernel text file holds one), so a seed is real files joined by NULs
//! after a short prefix. A file missing from the end of the input is a file that does not exist.

#![allow(dead_code)]

use cgview::host::error::{ReadError, WrapPath};
use cgview::host::files::FileSource;
use cgview::host::layout::CgroupVersion;
use cgview::host::resolve::CgroupDir;
use libfuzzer_sys::arbitrary::Unstructured;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// One input cut into its parameters and its files.
pub struct Input<'a> {
    pub params: Unstructured<'a>,
    files: Vec<String>,
}

impl<'a> Input<'a> {
    /// The first `param_len` bytes are parameters (fewer when the input is shorter: the rest read as 0).
    /// Files are decoded as the daemon's reader would have to: bytes that are not UTF-8 are replaced, so
    /// every input reaches the code under test.
    pub fn new(data: &'a [u8], param_len: usize) -> Input<'a> {
        let (params, rest) = data.split_at(param_len.min(data.len()));
        let files = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split(|&b| b == 0)
                .map(|file| String::from_utf8_lossy(file).into_owned())
                .collect()
        };
        Input {
            params: Unstructured::new(params),
            files,
        }
    }

    /// File `index`, if the input has it.
    pub fn file(&self, index: usize) -> Option<&str> {
        self.files.get(index).map(String::as_str)
    }

    /// File `index`, empty if the input does not have it.
    pub fn text(&self, index: usize) -> &str {
        self.file(index).unwrap_or("")
    }

    pub fn flag(&mut self) -> bool {
        self.params.arbitrary().unwrap_or(false)
    }

    pub fn u64(&mut self) -> u64 {
        self.params.arbitrary().unwrap_or(0)
    }

    pub fn f64(&mut self) -> f64 {
        self.params.arbitrary().unwrap_or(0.0)
    }
}

/// Cgroup files served from memory; any other path does not exist.
#[derive(Debug, Default)]
pub struct MemFiles(HashMap<PathBuf, String>);

impl MemFiles {
    /// Adds `text` at `path` when there is one (`None` leaves the file absent).
    pub fn put(&mut self, path: PathBuf, text: Option<&str>) {
        if let Some(text) = text {
            self.0.insert(path, text.to_owned());
        }
    }
}

impl FileSource for MemFiles {
    fn read_text(&self, path: &Path) -> Result<String, ReadError> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
            .wrap_path(path)
    }
}

/// A container cgroup two levels below its hierarchy's root (`/cg/pod/ctr`), as Kubernetes nests them.
pub fn container_dir(version: CgroupVersion) -> CgroupDir {
    CgroupDir {
        version,
        mount_point: PathBuf::from("/cg"),
        relative: PathBuf::from("pod/ctr"),
    }
}

/// The container's directory, its parent's and the root's, in [`CgroupDir::chain`] order.
pub fn chain_dirs(dir: &CgroupDir) -> Vec<PathBuf> {
    dir.chain().collect()
}

pub fn version(v2: bool) -> CgroupVersion {
    if v2 {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    }
}
