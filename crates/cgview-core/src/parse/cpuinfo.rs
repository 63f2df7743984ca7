//! `/proc/cpuinfo`: blocks separated by blank lines. x86_64, aarch64, arm, ppc64le and riscv print one block
//! per CPU starting with `processor : N`; s390x starts its per-CPU blocks with `cpu number : N`. Any other
//! block (a header or trailer such as arm's `Hardware` section) belongs to no CPU.

/// One block of cpuinfo, including the blank lines that follow it, so kept blocks concatenate back into a
/// well-formed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuinfoBlock<'a> {
    /// The CPU id this block describes; `None` for headers and trailers.
    pub cpu: Option<u32>,
    pub text: &'a str,
}

/// Splits cpuinfo into blocks. Never fails: text without a processor line is one or more CPU-less blocks.
pub fn parse_cpuinfo_blocks(text: &str) -> Vec<CpuinfoBlock<'_>> {
    let mut blocks = Vec::new();
    let mut start = 0;
    let mut in_blank_run = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let blank = line.trim().is_empty();
        if !blank && in_blank_run {
            blocks.push(block_at(&text[start..offset]));
            start = offset;
        }
        in_blank_run = blank && offset > start;
        offset += line.len();
    }
    if start < text.len() {
        blocks.push(block_at(&text[start..]));
    }
    blocks
}

fn block_at(text: &str) -> CpuinfoBlock<'_> {
    let first = text.lines().next().unwrap_or("");
    let cpu = first.split_once(':').and_then(|(key, value)| {
        matches!(key.trim(), "processor" | "cpu number")
            .then(|| value.trim().parse::<u32>().ok())
            .flatten()
    });
    CpuinfoBlock { cpu, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cpuinfo_blocks_x86_style() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n\n";
        let blocks = parse_cpuinfo_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].cpu, Some(0));
        assert_eq!(blocks[1].cpu, Some(1));
        assert_eq!(
            blocks[0].text,
            "processor\t: 0\nvendor_id\t: GenuineIntel\n\n"
        );
        let joined: String = blocks.iter().map(|b| b.text).collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn parse_cpuinfo_blocks_header_and_trailer() {
        let text = "vendor_id : IBM/S390\n# processors : 2\n\ncpu number : 0\nx : y\n\ncpu number : 1\n\nHardware : Z\n";
        let blocks = parse_cpuinfo_blocks(text);
        let cpus: Vec<_> = blocks.iter().map(|b| b.cpu).collect();
        assert_eq!(cpus, vec![None, Some(0), Some(1), None]);
        let joined: String = blocks.iter().map(|b| b.text).collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn parse_cpuinfo_blocks_empty_and_blank() {
        assert!(parse_cpuinfo_blocks("").is_empty());
        let blocks = parse_cpuinfo_blocks("\n\n");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].cpu, None);
    }

    #[test]
    fn parse_cpuinfo_blocks_unparsable_processor_is_not_a_cpu() {
        let blocks = parse_cpuinfo_blocks("processor : x\n\n");
        assert_eq!(blocks[0].cpu, None);
    }
}
