#![no_main]
//! Fuzzes the mounted tree's lookup, listing, readlink and open/read on a fake host with crafted `sys`
//! entries (see `fake_host`): any sequence of names and inode numbers, for the container, the host or an
//! unknown caller. Nothing may panic; no reply may reach outside the host's sys root (no entry, content
//! or name of the marker beside it), and every symlink target, resolved where the container sees the
//! link, stays inside `/sys`.
//!
//! Input: a sequence of operations, each an opcode byte and its arguments; inodes are picked among those
//! this input has met (with their paths) or given raw.

mod fake_host;

use cgview::permissions::Credentials;
use cgview::fs::{Caller, Fs, Inode, ReadInto, ROOT_INODE};
use fake_host::{mounted, CONTAINER_PID, HOST_PID, OUTSIDE_MARKER, OUTSIDE_NAME};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path, PathBuf};

const MAX_OPERATIONS: usize = 32;

/// Names the fixture has, so that inputs reach deep entries quickly; any other name is arbitrary bytes.
const NAMES: &[&str] = &[
    "proc",
    "sys",
    "devices",
    "system",
    "cpu",
    "block",
    "vda",
    "vda1",
    "stat",
    "dev",
    "size",
    "device",
    "subsystem",
    "escape",
    "absolute",
    "passwd",
    "evil",
    "cpu0",
    "cpu1",
    "cpu2",
    "cpu3",
    "topology",
    "core_id",
    "online",
    "offline",
    "possible",
    "present",
    "cpufreq",
    "kernel_max",
    "vulnerabilities",
    "meltdown",
    "meminfo",
    "cpuinfo",
    "uptime",
    "diskstats",
    "loadavg",
    "swaps",
    "slabinfo",
    "vmstat",
    "pressure",
    "memory",
    "io",
    ".",
    "..",
    "",
    "/",
    ".cgview-floor",
    OUTSIDE_NAME,
];

/// An inode this input has met, with its path below the mount (`None` when it was given raw).
struct Known {
    inode: Inode,
    path: Option<PathBuf>,
}

fn pick_inode(u: &mut Unstructured, known: &[Known]) -> Result<(Inode, Option<PathBuf>)> {
    if u.arbitrary()? {
        return Ok((u.arbitrary()?, None));
    }
    let entry = &known[u.choose_index(known.len())?];
    Ok((entry.inode, entry.path.clone()))
}

fn pick_name(u: &mut Unstructured) -> Result<Vec<u8>> {
    if u.arbitrary()? {
        return Ok(u.arbitrary::<&[u8]>()?.to_vec());
    }
    Ok(u.choose(NAMES)?.as_bytes().to_vec())
}

/// Root as a thread of the container, of the host, of anything, or outside the daemon's pid namespace.
fn pick_caller(u: &mut Unstructured) -> Result<Caller> {
    let pid = match u.int_in_range(0..=3u8)? {
        0 => 0,
        1 => CONTAINER_PID,
        2 => HOST_PID,
        _ => u.arbitrary()?,
    };
    Ok(Caller::new(pid, Credentials::ROOT))
}

/// `path`'s place in the container: the tree is mounted so that its `sys/...` is the container's
/// `/sys/...`.
fn in_container(path: &Path) -> PathBuf {
    Path::new("/").join(path)
}

/// `target` resolved from the directory holding the link, lexically (`..` at `/` stays at `/`).
fn resolve(link_dir: &Path, target: &Path) -> PathBuf {
    let mut resolved = if target.is_absolute() {
        PathBuf::from("/")
    } else {
        link_dir.to_owned()
    };
    for part in target.components() {
        match part {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => resolved.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    resolved
}

fn check_content(content: &[u8]) {
    let text = String::from_utf8_lossy(content);
    assert!(
        !text.contains(OUTSIDE_MARKER),
        "read a file outside the sys root: {text}"
    );
}

fn run(tree: &Fs, u: &mut Unstructured) -> Result<()> {
    let mut known = vec![Known {
        inode: ROOT_INODE,
        path: Some(PathBuf::new()),
    }];
    for _ in 0..MAX_OPERATIONS {
        if u.is_empty() {
            break;
        }
        match u.int_in_range(0..=4u8)? {
            0 => {
                let (parent, parent_path) = pick_inode(u, &known)?;
                let name = pick_name(u)?;
                let caller = pick_caller(u)?;
                if let Ok(entry) = tree.lookup(&caller, parent, &name) {
                    let name = String::from_utf8_lossy(&name);
                    assert_ne!(name, OUTSIDE_NAME, "looked up a name outside the sys root");
                    let path = parent_path.map(|p| p.join(&*name));
                    known.push(Known {
                        inode: entry.attr.ino,
                        path,
                    });
                }
            }
            1 => {
                let (inode, path) = pick_inode(u, &known)?;
                if let (Ok(target), Some(path)) = (tree.readlink(inode), path) {
                    let link = in_container(&path);
                    let link_dir = link.parent().unwrap_or(Path::new("/"));
                    let resolved = resolve(link_dir, &target);
                    assert!(
                        resolved.starts_with("/sys"),
                        "{} -> {} resolves to {} in the container",
                        link.display(),
                        target.display(),
                        resolved.display()
                    );
                }
            }
            2 => {
                let (inode, path) = pick_inode(u, &known)?;
                let caller = pick_caller(u)?;
                if let Ok(handle) = tree.opendir(&caller, inode) {
                    let entries = tree.readdir(&caller, inode, handle);
                    tree.releasedir(handle);
                    for entry in entries.iter().flat_map(|entries| entries.iter()) {
                        assert_ne!(
                            entry.name, OUTSIDE_NAME,
                            "listed a directory outside the sys root"
                        );
                        if entry.name != "." && entry.name != ".." {
                            known.push(Known {
                                inode: entry.inode,
                                path: path.as_ref().map(|p| p.join(&entry.name)),
                            });
                        }
                    }
                }
            }
            3 => {
                let (inode, _) = pick_inode(u, &known)?;
                let caller = pick_caller(u)?;
                let offset = u.arbitrary()?;
                if let Ok(handle) = tree.open(&caller, inode, false) {
                    let first = tree.read(&caller, inode, handle, 0, ReadInto::Buffer);
                    let again = tree.read(&caller, inode, handle, offset, ReadInto::Buffer);
                    tree.release(handle);
                    for content in [first, again].into_iter().flatten() {
                        check_content(&content);
                    }
                }
            }
            _ => {
                let (inode, _) = pick_inode(u, &known)?;
                let caller = pick_caller(u)?;
                let _ = tree.getattr(&caller, inode);
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mounted = mounted();
    let _ = run(&mounted.fs, &mut Unstructured::new(data));
    assert_eq!(
        mounted.fs.open_count(),
        0,
        "a handle outlived its release"
    );
});
