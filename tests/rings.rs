//! The rings of the architecture, enforced: an inner ring never names an outer one.
//!
//! - `cgview-core` (the pure ring) names no file system, FUSE, async runtime, network, process or clock,
//!   and depends on nothing that could (its Cargo.toml's dependencies are an allow-list);
//! - `cgview-webhook` depends on core only, never on the daemon or FUSE;
//! - in `src/`, only `transport/` names `fuser`, and the io_uring transport does not lean on the fuser
//!   adapter;
//! - in `src/`, a module names only its own ring and inner ones, in the order a request travels back
//!   from the kernel: core < host < service < fs < transport < daemon < cli (telemetry is a leaf that
//!   the service, fs and daemon report into).
//!
//! Comments are not code: a doc comment may mention an outer ring to explain itself.

use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Top-level modules of `src/`, innermost first; a module may name any module at or before its own
/// position. `telemetry` sits before the modules that report into it.
const SRC_RINGS: [&str; 7] = [
    "host",
    "service",
    "telemetry",
    "fs",
    "transport",
    "daemon",
    "cli",
];

/// What the pure ring must not name: I/O, FUSE, async, the network, processes, the clock.
const IMPURE: [&str; 11] = [
    "std::fs",
    "fs::File",
    "fs::read",
    "fuser",
    "tokio",
    "std::net",
    "std::process",
    "Instant",
    "SystemTime",
    "UNIX_EPOCH",
    "std::thread",
];

/// The only crates the pure ring may depend on.
const CORE_DEPENDENCIES: [&str; 2] = ["thiserror", "libc"];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The code of a Rust file without its comments (line comments and doc comments; block comments are not
/// used in this tree) and without string literals' contents, so text that explains is not mistaken for
/// text that names.
fn code_of(source: &str) -> String {
    let mut code = String::with_capacity(source.len());
    for line in source.lines() {
        let mut in_string = false;
        let mut previous = '\0';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_string {
                if c == '"' && previous != '\\' {
                    in_string = false;
                    code.push('"');
                }
                previous = if previous == '\\' && c == '\\' {
                    '\0'
                } else {
                    c
                };
                continue;
            }
            if c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' {
                in_string = true;
            }
            code.push(c);
            previous = c;
        }
        code.push('\n');
    }
    code
}

/// Whether `code` names `name` as a path or an identifier (not as part of a longer identifier).
fn names(code: &str, name: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + name.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

fn relative(path: &Path) -> String {
    path.strip_prefix(ROOT)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The violations in the files under `dir` of a rule: `(file, code) -> what it names that it must not`.
fn violations(dir: &Path, rule: impl Fn(&Path, &str) -> Vec<String>) -> Vec<String> {
    rust_files(dir)
        .into_iter()
        .flat_map(|path| {
            let code = code_of(&fs::read_to_string(&path).unwrap());
            rule(&path, &code)
                .into_iter()
                .map(move |what| format!("{} names {what}", relative(&path)))
        })
        .collect()
}

fn impure_names(code: &str) -> Vec<String> {
    IMPURE
        .iter()
        .filter(|name| names(code, name))
        .map(|name| name.to_string())
        .collect()
}

/// The `src/` modules after `ring` that `code` names as `crate::<module>`.
fn outer_rings_named(ring: &str, code: &str) -> Vec<String> {
    let Some(position) = SRC_RINGS.iter().position(|r| *r == ring) else {
        return Vec::new();
    };
    SRC_RINGS[position + 1..]
        .iter()
        .map(|outer| format!("crate::{outer}"))
        .filter(|path| names(code, path))
        .collect()
}

/// The top-level module of a file under `src/`: `src/fs/tree.rs` is in `fs`.
fn ring_of(path: &Path) -> Option<String> {
    let below = path.strip_prefix(Path::new(ROOT).join("src")).ok()?;
    let first = below.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

#[test]
fn the_pure_ring_names_no_io_fuse_async_or_clock() {
    let found = violations(
        &Path::new(ROOT).join("crates/cgview-core/src"),
        |_, code| {
            let mut found = impure_names(code);
            found.extend(
                ["cgview::", "cgview_webhook"]
                    .iter()
                    .filter(|n| code.contains(**n))
                    .map(|n| n.to_string()),
            );
            found
        },
    );
    assert!(
        found.is_empty(),
        "the pure ring names outer rings:\n{}",
        found.join("\n")
    );
}

/// The names of the `[dependencies]` of a crate's manifest.
fn dependencies(manifest: &str) -> Vec<String> {
    let manifest = fs::read_to_string(Path::new(ROOT).join(manifest)).unwrap();
    let mut in_dependencies = false;
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
        } else if let Some((name, _)) = line.split_once('=') {
            if in_dependencies && !line.starts_with('#') {
                found.push(name.trim().to_owned());
            }
        }
    }
    found
}

#[test]
fn the_pure_ring_depends_only_on_allowed_crates() {
    let found: Vec<String> = dependencies("crates/cgview-core/Cargo.toml")
        .into_iter()
        .filter(|name| !CORE_DEPENDENCIES.contains(&name.as_str()))
        .collect();
    assert!(
        found.is_empty(),
        "cgview-core depends on {found:?}; allowed: {CORE_DEPENDENCIES:?}"
    );
}

#[test]
fn the_webhook_names_neither_the_daemon_nor_fuse() {
    let found = violations(
        &Path::new(ROOT).join("crates/cgview-webhook/src"),
        |_, code| {
            ["cgview::", "fuser", "crate::daemon", "crate::transport"]
                .iter()
                .filter(|name| names(code, name) || code.contains(**name))
                .map(|name| name.to_string())
                .collect()
        },
    );
    assert!(
        found.is_empty(),
        "the webhook names the daemon:\n{}",
        found.join("\n")
    );
    let webhook_dependencies = dependencies("crates/cgview-webhook/Cargo.toml");
    assert!(webhook_dependencies.contains(&"cgview-core".to_owned()));
    for daemon_crate in ["cgview", "fuser", "io-uring", "nix", "procfs"] {
        assert!(
            !webhook_dependencies.contains(&daemon_crate.to_owned()),
            "cgview-webhook depends on {daemon_crate}"
        );
    }
}

#[test]
fn only_the_transport_names_fuser() {
    let found = violations(&Path::new(ROOT).join("src"), |path, code| {
        let in_transport = ring_of(path).as_deref() == Some("transport");
        if !in_transport && names(code, "fuser") {
            vec!["fuser".to_owned()]
        } else {
            Vec::new()
        }
    });
    assert!(
        found.is_empty(),
        "outside the transport:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_io_uring_transport_does_not_lean_on_the_fuser_adapter() {
    let found = violations(&Path::new(ROOT).join("src/transport/ring"), |_, code| {
        ["transport::fuse", "super::fuse", "fuser"]
            .iter()
            .filter(|name| names(code, name))
            .map(|name| name.to_string())
            .collect()
    });
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn inner_rings_never_name_outer_ones() {
    let found = violations(&Path::new(ROOT).join("src"), |path, code| {
        match ring_of(path) {
            Some(ring) => outer_rings_named(&ring, code),
            None => Vec::new(),
        }
    });
    assert!(
        found.is_empty(),
        "inner rings name outer ones:\n{}",
        found.join("\n")
    );
}

/// The checks above can fail: each finds what it is looking for in code written to break it, and
/// ignores the same words in comments and strings.
#[test]
fn the_checks_see_code_and_not_comments() {
    let bad = "use std::fs;\nlet t = Instant::now();\nuse fuser::Session;\n";
    assert_eq!(impure_names(&code_of(bad)), ["std::fs", "fuser", "Instant"]);
    let commented = "// std::fs and fuser and Instant\n/// [`crate::daemon`]\nlet s = \"std::fs fuser\"; // Instant\n";
    assert!(impure_names(&code_of(commented)).is_empty());
    assert!(outer_rings_named("service", &code_of(commented)).is_empty());
    assert_eq!(
        outer_rings_named(
            "service",
            "use crate::fs::tree::Tree;\nuse crate::host::paths;\n"
        ),
        ["crate::fs"]
    );
    assert!(outer_rings_named("daemon", "use crate::fs::tree::Tree;").is_empty());
    assert!(!names("let fusers = 1; my_fuser();", "fuser"));
    assert_eq!(
        ring_of(&Path::new(ROOT).join("src/fs/tree.rs")).as_deref(),
        Some("fs")
    );
}
