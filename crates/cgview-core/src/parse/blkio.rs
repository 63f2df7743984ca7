//! v1 blkio "recursive stat" files: `blkio.throttle.io_service_bytes[_recursive]`, `io_serviced`,
//! `blkio.io_merged`, `io_service_time`, `io_wait_time`:
//!
//! ```text
//! 254:0 Read 4096
//! 254:0 Write 1048576
//! 254:0 Sync 0
//! 254:0 Async 1052672
//! 254:0 Discard 0
//! 254:0 Total 1052672
//! Total 1052672
//! ```

use super::diskstats::DeviceId;

/// The per-device read, write and discard values of one blkio file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkioReadWrite {
    pub read: u64,
    pub write: u64,
    pub discard: u64,
}

/// Parses a blkio stat file into per-device values. Lines for other operations, the trailing `Total`
/// line and lines that do not parse are skipped.
pub fn parse_blkio(text: &str) -> Vec<(DeviceId, BlkioReadWrite)> {
    let mut devices: Vec<(DeviceId, BlkioReadWrite)> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(device), Some(op), Some(value), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Some(device), Ok(value)) = (DeviceId::parse(device), value.parse::<u64>()) else {
            continue;
        };
        let index = match devices.iter().position(|(d, _)| *d == device) {
            Some(i) => i,
            None => {
                devices.push((device, BlkioReadWrite::default()));
                devices.len() - 1
            }
        };
        let entry = &mut devices[index].1;
        match op {
            "Read" => entry.read = value,
            "Write" => entry.write = value,
            "Discard" => entry.discard = value,
            _ => {}
        }
    }
    devices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_blkio_reads_per_device_values() {
        let text = "254:0 Read 4096\n254:0 Write 1048576\n254:0 Sync 0\n254:0 Async 1052672\n\
                    254:0 Discard 512\n254:0 Total 1052672\n8:16 Write 7\nTotal 1052679\n";
        let devices = parse_blkio(text);
        assert_eq!(devices.len(), 2);
        assert_eq!(
            devices[0].0,
            DeviceId {
                major: 254,
                minor: 0
            }
        );
        assert_eq!(
            devices[0].1,
            BlkioReadWrite {
                read: 4096,
                write: 1_048_576,
                discard: 512
            }
        );
        assert_eq!(devices[1].1.write, 7);
    }

    #[test]
    fn parse_blkio_empty_and_total_only() {
        assert!(parse_blkio("").is_empty());
        assert!(parse_blkio("Total 0\n").is_empty());
        assert!(parse_blkio("x:y Read 1\n8:0 Read z\n").is_empty());
    }
}
