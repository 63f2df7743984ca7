//! `/proc/<pid>/mountinfo`, reduced to what cgroup layout detection needs.
//!
//! Format: `id parent major:minor root mount-point mount-options [optional...] - fstype source super-options`.

use super::ParseError;

/// One mount entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the mounted file system; each FUSE connection gets its own.
    pub device: String,
    /// The root of the mount within its file system. For cgroup file systems the kernel prints it relative to
    /// the reader's cgroup namespace, so a host hierarchy seen from a private namespace reads like `/../..`.
    pub root: String,
    pub mount_point: String,
    pub fs_type: String,
    /// The mount source, e.g. `cgroup` or, for a FUSE mount, its `fsname`.
    pub source: String,
    pub super_options: Vec<String>,
}

/// Parses every line; lines without the ` - ` separator are errors.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountEntry>, ParseError> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Result<MountEntry, ParseError> {
    let bad = || ParseError::new("mountinfo", line);
    let (before, after) = line.split_once(" - ").ok_or_else(bad)?;
    let mut fields = before.split(' ');
    let (Some(_id), Some(_parent), Some(device), Some(root), Some(mount_point)) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(bad());
    };
    let mut fields = after.split(' ');
    let (Some(fs_type), Some(source)) = (fields.next(), fields.next()) else {
        return Err(bad());
    };
    let super_options = fields
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(MountEntry {
        device: device.to_owned(),
        root: unescape(root),
        mount_point: unescape(mount_point),
        fs_type: fs_type.to_owned(),
        source: unescape(source),
        super_options,
    })
}

/// Undoes the kernel's octal escaping of space, tab, newline and backslash (`\040`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn parse_mountinfo_hybrid() {
        let mounts = parse_mountinfo(HYBRID).unwrap();
        assert_eq!(mounts.len(), 5);
        assert_eq!(mounts[1].fs_type, "cgroup");
        assert_eq!(mounts[1].super_options, vec!["rw", "cpu"]);
        assert_eq!(mounts[2].mount_point, "/sys/fs/cgroup/memory");
        assert_eq!(mounts[4].fs_type, "cgroup2");
        assert_eq!(mounts[4].source, "cgroup2");
    }

    #[test]
    fn parse_mountinfo_namespace_relative_root() {
        let line = "50 40 0:27 /../.. /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let mounts = parse_mountinfo(line).unwrap();
        assert_eq!(mounts[0].root, "/../..");
    }

    #[test]
    fn parse_mountinfo_unescapes_spaces() {
        let line = "1 2 0:1 / /mnt/with\\040space rw - tmpfs tmpfs rw\n";
        assert_eq!(
            parse_mountinfo(line).unwrap()[0].mount_point,
            "/mnt/with space"
        );
    }

    #[test]
    fn parse_mountinfo_rejects_lines_without_separator() {
        parse_mountinfo("1 2 0:1 / /mnt rw tmpfs tmpfs rw\n").unwrap_err();
        parse_mountinfo("1 2 - tmpfs\n").unwrap_err();
    }

    #[test]
    fn unescape_leaves_short_or_invalid_escapes() {
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("a\\999"), "a\\999");
        assert_eq!(unescape("\\134"), "\\");
    }
}
