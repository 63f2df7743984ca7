//! `/proc/cpuinfo` for a container: the host's blocks for the visible CPUs only, with their real ids.

use crate::parse::cpuinfo::parse_cpuinfo_blocks;
use crate::parse::cpuset::CpuSet;

/// Keeps header and trailer blocks (architectures such as s390x and arm print them) and the blocks of the
/// visible CPUs, in the host's order.
pub fn render_cpuinfo(host: &str, visible: &CpuSet) -> String {
    parse_cpuinfo_blocks(host)
        .into_iter()
        .filter(|block| block.cpu.is_none_or(|id| visible.contains(id)))
        .map(|block| block.text)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::cpuset::parse_cpu_list;

    #[test]
    fn render_cpuinfo_keeps_visible_blocks_with_real_ids() {
        let host = "processor\t: 0\na\t: 1\n\nprocessor\t: 1\na\t: 1\n\nprocessor\t: 2\na\t: 1\n\n";
        let out = render_cpuinfo(host, &parse_cpu_list("1-2").unwrap());
        assert_eq!(out, "processor\t: 1\na\t: 1\n\nprocessor\t: 2\na\t: 1\n\n");
    }

    #[test]
    fn render_cpuinfo_keeps_headers() {
        let host = "vendor_id : IBM/S390\n\ncpu number : 0\n\ncpu number : 1\n\n";
        let out = render_cpuinfo(host, &parse_cpu_list("1").unwrap());
        assert_eq!(out, "vendor_id : IBM/S390\n\ncpu number : 1\n\n");
    }
}
