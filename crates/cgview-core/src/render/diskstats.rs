//! `/proc/diskstats` for a container: the host's devices on which the container did I/O, with the
//! container's counters and the host kernel's column count.

use crate::model::io::ContainerIo;
use crate::parse::diskstats::parse_diskstats;
use crate::parse::ParseError;
use std::fmt::Write as _;

pub fn render_diskstats(host: &str, io: &ContainerIo) -> Result<String, ParseError> {
    let mut out = String::new();
    for line in parse_diskstats(host)? {
        let Some((_, device_io)) = io.iter().find(|(id, _)| *id == line.device) else {
            continue;
        };
        if !device_io.has_activity() {
            continue;
        }
        let _ = write!(
            out,
            "{:4} {:7} {}",
            line.device.major, line.device.minor, line.name
        );
        let columns = line.counter_count.min(device_io.counters.len());
        for value in &device_io.counters[..columns] {
            let _ = write!(out, " {value}");
        }
        // A future kernel's extra columns are not accounted per cgroup.
        for _ in columns..line.counter_count {
            out.push_str(" 0");
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::io::DeviceIo;
    use crate::parse::diskstats::DeviceId;

    const HOST: &str = "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n \
        254       0 vda 4673 2668 828906 1152 382 3225 250048 195 0 1116 1468 3023 24 37568 120 5 0\n \
        254       1 vda1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n";

    fn io_on(device: DeviceId, writes: u64) -> ContainerIo {
        let mut io = DeviceIo::default();
        io.counters[4] = writes;
        io.counters[6] = writes * 8;
        vec![(device, io)]
    }

    #[test]
    fn render_diskstats_lists_only_active_devices() {
        let io = io_on(
            DeviceId {
                major: 254,
                minor: 0,
            },
            3,
        );
        let out = render_diskstats(HOST, &io).unwrap();
        assert_eq!(out, " 254       0 vda 0 0 0 0 3 0 24 0 0 0 0 0 0 0 0 0 0\n");
    }

    #[test]
    fn render_diskstats_keeps_old_column_count() {
        let host = "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n";
        let io = io_on(DeviceId { major: 8, minor: 0 }, 1);
        let out = render_diskstats(host, &io).unwrap();
        assert_eq!(out.split_ascii_whitespace().count(), 3 + 11);
    }

    #[test]
    fn render_diskstats_pads_unknown_future_columns() {
        let host = "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19\n";
        let io = io_on(DeviceId { major: 8, minor: 0 }, 1);
        let out = render_diskstats(host, &io).unwrap();
        assert_eq!(out.split_ascii_whitespace().count(), 3 + 19);
    }

    #[test]
    fn render_diskstats_no_io_is_empty() {
        assert_eq!(render_diskstats(HOST, &Vec::new()).unwrap(), "");
        let idle = vec![(
            DeviceId {
                major: 254,
                minor: 0,
            },
            DeviceIo::default(),
        )];
        assert_eq!(render_diskstats(HOST, &idle).unwrap(), "");
    }

    #[test]
    fn render_diskstats_bad_host_is_an_error() {
        render_diskstats("garbage\n", &Vec::new()).unwrap_err();
    }
}
