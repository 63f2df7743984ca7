//! `/proc/swaps` for a container (design.md section 2).

use crate::model::memory::SwapSpace;

/// The host's header line, then one `none virtual` line when the container has swap: the same swap, at
/// the same moment, as its meminfo's `SwapTotal` and `SwapTotal - SwapFree`. Columns are aligned the way
/// the kernel aligns them (the name padded to 40 characters, tab-separated numbers in kB).
pub fn render_swaps(host: &str, swap: SwapSpace) -> String {
    let header = host
        .lines()
        .next()
        .filter(|l| l.starts_with("Filename"))
        .unwrap_or("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority");
    let mut out = format!("{header}\n");
    let size_kb = swap.total_kb;
    if size_kb > 0 {
        let used_kb = swap.used_kb();
        let pad = |value: u64| if value < 10_000_000 { "\t" } else { "" };
        out.push_str(&format!(
            "{:<40}virtual\t{size_kb}\t{}{used_kb}\t{}0\n",
            "none",
            pad(size_kb),
            pad(used_kb)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
/dev/vda2                               partition\t1048572\t\t0\t\t-2\n";

    fn swap(total_kb: u64, free_kb: u64) -> SwapSpace {
        SwapSpace { total_kb, free_kb }
    }

    #[test]
    fn container_swap_replaces_host_devices() {
        let out = render_swaps(HOST, swap(262_144, 261_120));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority");
        assert_eq!(
            lines[1].split_ascii_whitespace().collect::<Vec<_>>(),
            ["none", "virtual", "262144", "1024", "0"]
        );
        assert!(lines[1].starts_with(&format!("{:<40}virtual", "none")));
    }

    #[test]
    fn no_swap_is_header_only() {
        assert_eq!(
            render_swaps(HOST, swap(0, 0)),
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
        );
    }

    #[test]
    fn missing_header_is_supplied() {
        assert!(render_swaps("", swap(0, 0)).starts_with("Filename\t"));
    }
}
