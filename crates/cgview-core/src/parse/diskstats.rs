//! `/proc/diskstats`: `major minor name` followed by 11 (before 4.18), 15 (4.18+) or 17 (5.5+) counters.

use super::ParseError;

/// A block device number, as `major:minor` in cgroup files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId {
    pub major: u32,
    pub minor: u32,
}

impl DeviceId {
    /// Parses `major:minor`.
    pub fn parse(text: &str) -> Option<DeviceId> {
        let (major, minor) = text.split_once(':')?;
        Some(DeviceId {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

/// One device line of the host's diskstats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLine<'a> {
    pub device: DeviceId,
    pub name: &'a str,
    /// How many counters the host kernel prints after the name; the rendered file keeps this count.
    pub counter_count: usize,
}

/// Parses the host file's device lines.
pub fn parse_diskstats(text: &str) -> Result<Vec<DiskLine<'_>>, ParseError> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let bad = || ParseError::new("diskstats", line);
            let mut fields = line.split_ascii_whitespace();
            let (Some(major), Some(minor), Some(name)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad());
            };
            let device = DeviceId {
                major: major.parse().map_err(|_| bad())?,
                minor: minor.parse().map_err(|_| bad())?,
            };
            let counter_count = fields.count();
            if counter_count < 11 {
                return Err(bad());
            }
            Ok(DiskLine {
                device,
                name,
                counter_count,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINUX_6_18: &str = "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n \
        254       0 vda 4673 2668 828906 1152 382 3225 250048 195 0 1116 1468 3023 24 37568 120 5 0\n";

    #[test]
    fn parse_diskstats_keeps_column_count() {
        let lines = parse_diskstats(LINUX_6_18).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[1].device,
            DeviceId {
                major: 254,
                minor: 0
            }
        );
        assert_eq!(lines[1].name, "vda");
        assert_eq!(lines[1].counter_count, 17);
    }

    #[test]
    fn parse_diskstats_old_kernel_has_eleven_counters() {
        let lines = parse_diskstats("   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n").unwrap();
        assert_eq!(lines[0].counter_count, 11);
    }

    #[test]
    fn parse_diskstats_rejects_short_lines() {
        parse_diskstats("8 0 sda 1 2 3\n").unwrap_err();
        parse_diskstats("x 0 sda 1 2 3 4 5 6 7 8 9 10 11\n").unwrap_err();
    }

    #[test]
    fn device_id_parse() {
        assert_eq!(
            DeviceId::parse("8:16"),
            Some(DeviceId {
                major: 8,
                minor: 16
            })
        );
        assert_eq!(DeviceId::parse("8"), None);
        assert_eq!(DeviceId::parse("a:1"), None);
    }
}
