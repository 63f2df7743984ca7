//! The command-line values of `cgview webhook`, checked here so the CLI stays a thin layer.

use cgview_core::catalog::{webhook_default_files, ServedFile};
use std::sync::LazyLock;

/// `--files`' default: the catalog's [`webhook_default_files`] as the command line spells them.
pub static DEFAULT_FILES_ARG: LazyLock<String> = LazyLock::new(|| {
    let paths: Vec<&str> = webhook_default_files()
        .into_iter()
        .map(ServedFile::tree_path)
        .collect();
    paths.join(",")
});

/// One `--files` entry: a path in cgview's tree (`proc/meminfo`), with or without a leading `/`, which is
/// also the path in the container.
pub fn parse_served_file(text: &str) -> Result<ServedFile, String> {
    ServedFile::from_tree_path(text.trim()).ok_or_else(|| {
        let known: Vec<&str> = ServedFile::ALL.iter().map(|f| f.tree_path()).collect();
        format!(
            "{text:?} is not a served file; choose from {}",
            known.join(", ")
        )
    })
}

/// The files in order, each once: the same file twice would mount twice at one path, which the API
/// server rejects, failing the pod's creation.
pub fn distinct_files(files: impl IntoIterator<Item = ServedFile>) -> Vec<ServedFile> {
    let mut distinct = Vec::new();
    for file in files {
        if !distinct.contains(&file) {
            distinct.push(file);
        }
    }
    distinct
}

/// A path for a hostPath or a mountPath: absolute, without `..` (which the API server rejects), and
/// without a trailing `/`.
pub fn parse_absolute_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?} is not an absolute path"));
    }
    if text.split('/').any(|component| component == "..") {
        return Err(format!("{text:?} contains \"..\""));
    }
    let trimmed = text.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
}

/// `--skip-namespace` values: empty ones dropped, so `--skip-namespace ''` skips none.
pub fn skipped_namespaces(values: impl IntoIterator<Item = String>) -> Vec<String> {
    values
        .into_iter()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_files_arg_is_policy_default_files() {
        let parsed: Vec<ServedFile> = DEFAULT_FILES_ARG
            .split(',')
            .map(|path| parse_served_file(path).unwrap())
            .collect();
        assert_eq!(parsed, webhook_default_files());
    }

    #[test]
    fn parse_served_file_accepts_tree_and_container_paths_and_lists_the_valid_ones() {
        assert_eq!(
            parse_served_file("proc/meminfo").unwrap(),
            ServedFile::Meminfo
        );
        assert_eq!(
            parse_served_file("/proc/meminfo").unwrap(),
            ServedFile::Meminfo
        );
        assert_eq!(
            parse_served_file("sys/devices/system/cpu/online").unwrap(),
            ServedFile::CpuOnline
        );
        let error = parse_served_file("proc/nope").unwrap_err();
        assert!(error.contains("proc/nope"), "{error}");
        assert!(error.contains("sys/devices/system/cpu/possible"), "{error}");
    }

    #[test]
    fn distinct_files_keeps_the_first_of_each() {
        assert_eq!(
            distinct_files([ServedFile::Stat, ServedFile::Meminfo, ServedFile::Stat]),
            [ServedFile::Stat, ServedFile::Meminfo]
        );
    }

    #[test]
    fn parse_absolute_path_refuses_relative_and_dotdot_and_trims_slashes() {
        assert_eq!(
            parse_absolute_path("/var/lib/cgview/").unwrap(),
            "/var/lib/cgview"
        );
        assert_eq!(parse_absolute_path("/").unwrap(), "/");
        parse_absolute_path("var/lib/cgview").unwrap_err();
        parse_absolute_path("/var/../etc").unwrap_err();
    }

    #[test]
    fn skipped_namespaces_drops_empty_values() {
        assert_eq!(
            skipped_namespaces(["kube-system".to_owned(), " ".to_owned(), "x".to_owned()]),
            ["kube-system", "x"]
        );
        assert!(skipped_namespaces([String::new()]).is_empty());
    }
}
