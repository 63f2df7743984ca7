//! `/sys/devices/system/cpu/{online,present,possible}` for a container.

use crate::parse::cpuset::CpuSet;

/// The kernel's list format followed by a newline, e.g. `0-1\n`.
pub fn render_cpu_list(visible: &CpuSet) -> String {
    let mut out = visible.to_list_string();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_cpu_list_ranges() {
        assert_eq!(render_cpu_list(&CpuSet::from_ids(vec![0, 1])), "0-1\n");
        assert_eq!(render_cpu_list(&CpuSet::from_ids(vec![2, 5])), "2,5\n");
    }
}
