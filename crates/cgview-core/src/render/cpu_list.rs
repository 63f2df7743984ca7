//! Files that print a set of CPUs, for a container: `/sys/devices/system/cpu/{online,present,possible}`, and
//! every host file that names CPUs (`cpuN/topology/*_cpus*`, `*_siblings*`, `cpuN/cache/index*/shared_cpu_*`,
//! `node/nodeN/cpu{list,map}`), restricted to the CPUs the container is shown.

use crate::parse::cpuset::{parse_cpu_list, parse_cpu_mask, CpuSet};
use crate::parse::ParseError;

/// How a kernel file prints a set of CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CpuListFormat {
    /// `%*pbl`: ranges, `0-3,8` (`*_list` files, `cpulist`).
    List,
    /// `%*pb`: a hex mask in 32-bit words, `00000000,0000010f` (`core_cpus`, `shared_cpu_map`, `cpumap`).
    Mask,
}

/// The kernel's list format followed by a newline, e.g. `0-1\n`; an empty set is `\n`.
pub fn render_cpu_list(visible: &CpuSet) -> String {
    let mut out = visible.to_list_string();
    out.push('\n');
    out
}

/// The kernel's mask format followed by a newline, `digits` hex digits wide as the kernel prints a mask
/// of `nr_cpu_ids` CPUs (`digits` = `nr_cpu_ids` / 4 rounded up): 32-bit words, most significant first,
/// separated by commas, the first word as short as the width allows (`f,ffffffff` for 36 CPUs). CPUs the
/// width cannot hold are left out, as the kernel never has them.
pub fn render_cpu_mask(cpus: &CpuSet, digits: usize) -> String {
    let digits = digits.max(1);
    let mut nibbles = vec![0u8; digits];
    for &id in cpus.ids() {
        let position = id as usize / 4;
        if position < digits {
            nibbles[position] |= 1 << (id % 4);
        }
    }
    let mut out = String::with_capacity(digits + digits / 8 + 1);
    for position in (0..digits).rev() {
        if position % 8 == 7 && position + 1 != digits {
            out.push(',');
        }
        out.push(char::from_digit(u32::from(nibbles[position]), 16).unwrap_or('0'));
    }
    out.push('\n');
    out
}

/// A host file that prints a set of CPUs in `format`, showing only the CPUs in `visible`: the same format
/// and, for a mask, the host's width. Fails when the host text is not of that format.
pub fn render_restricted_cpus(
    host: &str,
    format: CpuListFormat,
    visible: &CpuSet,
) -> Result<String, ParseError> {
    Ok(match format {
        CpuListFormat::List => render_cpu_list(&parse_cpu_list(host)?.intersection(visible)),
        CpuListFormat::Mask => {
            let mask = parse_cpu_mask(host)?;
            render_cpu_mask(&mask.cpus.intersection(visible), mask.digits)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &str) -> CpuSet {
        parse_cpu_list(list).unwrap()
    }

    #[test]
    fn render_cpu_list_ranges() {
        assert_eq!(render_cpu_list(&CpuSet::from_ids(vec![0, 1])), "0-1\n");
        assert_eq!(render_cpu_list(&CpuSet::from_ids(vec![2, 5])), "2,5\n");
        assert_eq!(render_cpu_list(&CpuSet::default()), "\n");
    }

    #[test]
    fn render_cpu_mask_prints_words_as_the_kernel_does() {
        // nr_cpu_ids 2 (this VM): one digit.
        assert_eq!(render_cpu_mask(&set("0-1"), 1), "3\n");
        assert_eq!(render_cpu_mask(&set("1"), 1), "2\n");
        // 64 CPUs: two full words.
        assert_eq!(render_cpu_mask(&set("0-3,8,32"), 16), "00000001,0000010f\n");
        // 36 CPUs: a one-digit first word.
        assert_eq!(render_cpu_mask(&set("35"), 9), "8,00000000\n");
        assert_eq!(render_cpu_mask(&set("4-7"), 8), "000000f0\n");
        assert_eq!(render_cpu_mask(&CpuSet::default(), 3), "000\n");
        // A CPU beyond the width is not printed.
        assert_eq!(render_cpu_mask(&set("0,9"), 2), "01\n");
    }

    #[test]
    fn restricted_lists_keep_only_visible_cpus() {
        let visible = set("0,2-3");
        assert_eq!(
            render_restricted_cpus("0-1\n", CpuListFormat::List, &visible).unwrap(),
            "0\n"
        );
        assert_eq!(
            render_restricted_cpus("0-7\n", CpuListFormat::List, &visible).unwrap(),
            "0,2-3\n"
        );
        // A sibling set of which the container sees nothing (a cache of hidden CPUs) prints empty.
        assert_eq!(
            render_restricted_cpus("4,12\n", CpuListFormat::List, &visible).unwrap(),
            "\n"
        );
        render_restricted_cpus("(null)\n", CpuListFormat::List, &visible).unwrap_err();
    }

    #[test]
    fn restricted_masks_keep_the_hosts_width() {
        let visible = set("0,2-3,33");
        assert_eq!(
            render_restricted_cpus("3\n", CpuListFormat::Mask, &visible).unwrap(),
            "1\n"
        );
        assert_eq!(
            render_restricted_cpus("00000003,0000000f\n", CpuListFormat::Mask, &visible).unwrap(),
            "00000002,0000000d\n"
        );
        assert_eq!(
            render_restricted_cpus("ff00\n", CpuListFormat::Mask, &visible).unwrap(),
            "0000\n"
        );
        render_restricted_cpus("0-3\n", CpuListFormat::Mask, &visible).unwrap_err();
    }

    #[test]
    fn masks_and_lists_of_the_same_set_agree_after_restriction() {
        let visible = set("1,5-6,40");
        let host_list = "0-7,32-47\n";
        let host_mask = "0000ffff,000000ff\n";
        let list = render_restricted_cpus(host_list, CpuListFormat::List, &visible).unwrap();
        let mask = render_restricted_cpus(host_mask, CpuListFormat::Mask, &visible).unwrap();
        assert_eq!(
            parse_cpu_mask(&mask).unwrap().cpus,
            parse_cpu_list(&list).unwrap()
        );
        assert_eq!(list, "1,5-6,40\n");
    }
}
