//! `/sys/block/<dev>/stat` (and `<dev>/<part>/stat`) for a container: the device's diskstats counters
//! without the identifying columns, in the kernel's layout.

use crate::model::io::DeviceIo;
use std::fmt::Write as _;

/// The container's counters for one device (all 0 when it did no I/O there), with the host file's column
/// count and the kernel's `%8u` fields.
pub fn render_block_stat(host: &str, io: Option<&DeviceIo>) -> String {
    let columns = host.split_ascii_whitespace().count();
    let counters = io.map(|io| io.counters).unwrap_or_default();
    let mut out = String::with_capacity(columns * 9);
    for index in 0..columns {
        if index > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{:>8}", counters.get(index).copied().unwrap_or(0));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "  131776    10639  8486714   154156    32583    29469  9121408    25293        0    16632   180938    16731       79  3104312     1322     4780      166\n";

    #[test]
    fn container_counters_in_kernel_layout() {
        let mut io = DeviceIo::default();
        io.counters[4] = 20;
        io.counters[6] = 40_960;
        let out = render_block_stat(HOST, Some(&io));
        assert_eq!(out.len(), HOST.len());
        let fields: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(fields.len(), 17);
        assert_eq!((fields[4], fields[6], fields[0]), ("20", "40960", "0"));
        assert!(out.starts_with("       0        0        0        0       20 "));
    }

    #[test]
    fn no_io_is_all_zero_and_old_kernels_keep_eleven_columns() {
        let old = "1 2 3 4 5 6 7 8 9 10 11\n";
        let out = render_block_stat(old, None);
        assert_eq!(out.split_whitespace().count(), 11);
        assert!(out.split_whitespace().all(|f| f == "0"));
    }
}
