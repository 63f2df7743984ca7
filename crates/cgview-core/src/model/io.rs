//! Block I/O of a container, per device, in diskstats terms.

use crate::parse::blkio::BlkioReadWrite;
use crate::parse::diskstats::DeviceId;
use crate::parse::io_stat::IoStatEntry;

const SECTOR_BYTES: u64 = 512;

/// The diskstats counters of one device for one container, in the kernel's column order (1-based column
/// `n` of diskstats after the name is `counters[n - 1]`). Columns the cgroup does not account stay 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceIo {
    pub counters: [u64; 17],
}

/// Column indexes (0-based) into [`DeviceIo::counters`].
mod column {
    pub const READS: usize = 0;
    pub const READS_MERGED: usize = 1;
    pub const SECTORS_READ: usize = 2;
    pub const READ_MS: usize = 3;
    pub const WRITES: usize = 4;
    pub const WRITES_MERGED: usize = 5;
    pub const SECTORS_WRITTEN: usize = 6;
    pub const WRITE_MS: usize = 7;
    pub const IO_MS: usize = 9;
    pub const WEIGHTED_MS: usize = 10;
    pub const DISCARDS: usize = 11;
    pub const SECTORS_DISCARDED: usize = 13;
}

impl DeviceIo {
    pub fn sectors_read(&self) -> u64 {
        self.counters[column::SECTORS_READ]
    }

    pub fn sectors_written(&self) -> u64 {
        self.counters[column::SECTORS_WRITTEN]
    }

    pub fn has_activity(&self) -> bool {
        self.counters.iter().any(|&c| c != 0)
    }

    /// From a v2 `io.stat` entry.
    pub fn from_io_stat(entry: &IoStatEntry) -> DeviceIo {
        let mut counters = [0; 17];
        counters[column::READS] = entry.rios;
        counters[column::SECTORS_READ] = entry.rbytes / SECTOR_BYTES;
        counters[column::WRITES] = entry.wios;
        counters[column::SECTORS_WRITTEN] = entry.wbytes / SECTOR_BYTES;
        counters[column::DISCARDS] = entry.dios;
        counters[column::SECTORS_DISCARDED] = entry.dbytes / SECTOR_BYTES;
        DeviceIo { counters }
    }

    /// From the v1 blkio files of one device. `merged`, `service_ns` and `wait_ns` exist only with the
    /// legacy CFQ scheduler (kernels before 5.0) or BFQ debug accounting.
    pub fn from_blkio(
        bytes: BlkioReadWrite,
        serviced: BlkioReadWrite,
        merged: Option<BlkioReadWrite>,
        service_ns: Option<BlkioReadWrite>,
        wait_ns: Option<BlkioReadWrite>,
    ) -> DeviceIo {
        let mut counters = [0; 17];
        counters[column::READS] = serviced.read;
        counters[column::SECTORS_READ] = bytes.read / SECTOR_BYTES;
        counters[column::WRITES] = serviced.write;
        counters[column::SECTORS_WRITTEN] = bytes.write / SECTOR_BYTES;
        counters[column::DISCARDS] = serviced.discard;
        counters[column::SECTORS_DISCARDED] = bytes.discard / SECTOR_BYTES;
        if let Some(merged) = merged {
            counters[column::READS_MERGED] = merged.read;
            counters[column::WRITES_MERGED] = merged.write;
        }
        let service = service_ns.unwrap_or_default();
        let wait = wait_ns.unwrap_or_default();
        // Sums of kernel counters saturate: a bad or wrapped blkio file must not panic or wrap here.
        let ms =
            |parts: &[u64]| parts.iter().fold(0u64, |sum, &ns| sum.saturating_add(ns)) / 1_000_000;
        counters[column::READ_MS] = ms(&[service.read, wait.read]);
        counters[column::WRITE_MS] = ms(&[service.write, wait.write]);
        counters[column::IO_MS] = ms(&[service.read, service.write]);
        counters[column::WEIGHTED_MS] = ms(&[service.read, service.write, wait.read, wait.write]);
        DeviceIo { counters }
    }
}

/// A container's I/O on every device it touched.
pub type ContainerIo = Vec<(DeviceId, DeviceIo)>;

/// What a container read from and wrote to block devices, over all of them, in 512-byte sectors: what the
/// kernel's `pgpgin`/`pgpgout` count (in kB) for the whole machine. Discards are neither, as in the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockTraffic {
    pub sectors_read: u64,
    pub sectors_written: u64,
}

impl BlockTraffic {
    /// The sum over every device of `io`. A stacked device (device-mapper, md) and the disks below it are
    /// each listed by the kernel, so I/O through one is counted at each layer.
    pub fn of(io: &ContainerIo) -> BlockTraffic {
        io.iter()
            .fold(BlockTraffic::default(), |sum, (_, device)| BlockTraffic {
                sectors_read: sum.sectors_read.saturating_add(device.sectors_read()),
                sectors_written: sum.sectors_written.saturating_add(device.sectors_written()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_io_stat_converts_bytes_to_sectors() {
        let io = DeviceIo::from_io_stat(&IoStatEntry {
            rbytes: 4096,
            wbytes: 1 << 20,
            rios: 1,
            wios: 256,
            dbytes: 1024,
            dios: 2,
        });
        assert_eq!(io.counters[0], 1);
        assert_eq!(io.counters[2], 8);
        assert_eq!(io.counters[4], 256);
        assert_eq!(io.counters[6], 2048);
        assert_eq!(io.counters[11], 2);
        assert_eq!(io.counters[13], 2);
        assert!(io.has_activity());
    }

    #[test]
    fn from_blkio_without_cfq_files_leaves_times_zero() {
        let bytes = BlkioReadWrite {
            read: 0,
            write: 8192,
            discard: 0,
        };
        let serviced = BlkioReadWrite {
            read: 0,
            write: 2,
            discard: 0,
        };
        let io = DeviceIo::from_blkio(bytes, serviced, None, None, None);
        assert_eq!(io.counters[4], 2);
        assert_eq!(io.counters[6], 16);
        assert_eq!(io.counters[3], 0);
        assert_eq!(io.counters[9], 0);
    }

    #[test]
    fn from_blkio_with_cfq_files_fills_merges_and_times() {
        let rw = |read, write| BlkioReadWrite {
            read,
            write,
            discard: 0,
        };
        let io = DeviceIo::from_blkio(
            rw(512, 512),
            rw(1, 1),
            Some(rw(3, 4)),
            Some(rw(2_000_000, 5_000_000)),
            Some(rw(1_000_000, 1_000_000)),
        );
        assert_eq!(io.counters[1], 3);
        assert_eq!(io.counters[5], 4);
        assert_eq!(io.counters[3], 3);
        assert_eq!(io.counters[7], 6);
        assert_eq!(io.counters[9], 7);
        assert_eq!(io.counters[10], 9);
    }

    #[test]
    fn from_blkio_times_at_u64_max_saturate() {
        let max = BlkioReadWrite {
            read: u64::MAX,
            write: u64::MAX,
            discard: u64::MAX,
        };
        let io = DeviceIo::from_blkio(max, max, Some(max), Some(max), Some(max));
        let max_ms = u64::MAX / 1_000_000;
        assert_eq!(io.counters[3], max_ms);
        assert_eq!(io.counters[7], max_ms);
        assert_eq!(io.counters[9], max_ms);
        assert_eq!(io.counters[10], max_ms);
    }

    #[test]
    fn block_traffic_sums_devices_and_saturates() {
        let device = |read, written| {
            let mut io = DeviceIo::default();
            io.counters[column::SECTORS_READ] = read;
            io.counters[column::SECTORS_WRITTEN] = written;
            io
        };
        let id = |minor| DeviceId { major: 8, minor };
        let io = vec![(id(0), device(8, 16)), (id(16), device(2, u64::MAX))];
        assert_eq!(
            BlockTraffic::of(&io),
            BlockTraffic {
                sectors_read: 10,
                sectors_written: u64::MAX
            }
        );
        assert_eq!(BlockTraffic::of(&Vec::new()), BlockTraffic::default());
    }

    #[test]
    fn default_device_io_has_no_activity() {
        assert!(!DeviceIo::default().has_activity());
    }
}
