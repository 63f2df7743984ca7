//! v2 `io.stat`: `254:0 rbytes=4096 wbytes=1048576 rios=1 wios=256 dbytes=0 dios=0` per device, with more
//! keys on some kernels (cost model, latency); unknown keys are ignored.

use super::diskstats::DeviceId;

/// The io.stat counters cgview maps onto diskstats columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStatEntry {
    pub rbytes: u64,
    pub wbytes: u64,
    pub rios: u64,
    pub wios: u64,
    pub dbytes: u64,
    pub dios: u64,
}

/// Parses io.stat; lines without a device id are skipped.
pub fn parse_io_stat(text: &str) -> Vec<(DeviceId, IoStatEntry)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let device = DeviceId::parse(fields.next()?)?;
            let mut entry = IoStatEntry::default();
            for field in fields {
                let Some((key, value)) = field.split_once('=') else {
                    continue;
                };
                let Ok(value) = value.parse::<u64>() else {
                    continue;
                };
                match key {
                    "rbytes" => entry.rbytes = value,
                    "wbytes" => entry.wbytes = value,
                    "rios" => entry.rios = value,
                    "wios" => entry.wios = value,
                    "dbytes" => entry.dbytes = value,
                    "dios" => entry.dios = value,
                    _ => {}
                }
            }
            Some((device, entry))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_io_stat_reads_known_keys() {
        let text = "254:0 rbytes=4096 wbytes=1048576 rios=1 wios=256 dbytes=0 dios=0\n\
                    8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6 cost.vrate=100.00 wait=1\n";
        let devices = parse_io_stat(text);
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0].1.wbytes, 1_048_576);
        assert_eq!(devices[0].1.wios, 256);
        assert_eq!(
            devices[1].1,
            IoStatEntry {
                rbytes: 1,
                wbytes: 2,
                rios: 3,
                wios: 4,
                dbytes: 5,
                dios: 6
            }
        );
    }

    #[test]
    fn parse_io_stat_skips_garbage() {
        assert!(parse_io_stat("").is_empty());
        assert!(parse_io_stat("nodevice rbytes=1\n").is_empty());
        let devices = parse_io_stat("8:0 rbytes=x wbytes=3 junk\n");
        assert_eq!(devices[0].1.wbytes, 3);
        assert_eq!(devices[0].1.rbytes, 0);
    }
}
