//! Single-value limit files: v2 `memory.max`, `memory.swap.max`, `pids.max`; v1 `memory.limit_in_bytes`,
//! `memory.memsw.limit_in_bytes`, `cpu.cfs_quota_us`.

use super::{ParseError, ParseError as E};

/// v1 reports "no limit" as the page counter maximum (`PAGE_COUNTER_MAX * PAGE_SIZE`, about 2^63), which
/// varies with the page size. Anything at or above 2^62 bytes is treated as unlimited.
const V1_UNLIMITED_THRESHOLD: u64 = 1 << 62;

/// Parses a limit: `max` (v2), `-1` (v1) or a huge v1 page-counter value mean unlimited (`None`).
pub fn parse_limit(text: &str) -> Result<Option<u64>, ParseError> {
    let text = text.trim();
    match text {
        "max" | "-1" => Ok(None),
        _ => {
            let value: u64 = text.parse().map_err(|_| E::new("limit", text))?;
            Ok((value < V1_UNLIMITED_THRESHOLD).then_some(value))
        }
    }
}

/// Parses a plain counter such as `memory.current` or `memory.usage_in_bytes`.
pub fn parse_counter(text: &str) -> Result<u64, ParseError> {
    super::parse_u64("counter", text.trim())
}

/// The effective limit of a cgroup: the smallest limit over it and its ancestors; `None` when none is set.
pub fn effective_limit<I>(chain: I) -> Option<u64>
where
    I: IntoIterator<Item = Option<u64>>,
{
    chain.into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_limit_max_is_unlimited() {
        assert_eq!(parse_limit("max\n").unwrap(), None);
    }

    #[test]
    fn parse_limit_minus_one_is_unlimited() {
        assert_eq!(parse_limit("-1\n").unwrap(), None);
    }

    #[test]
    fn parse_limit_v1_page_counter_max_is_unlimited() {
        assert_eq!(parse_limit("9223372036854771712\n").unwrap(), None);
        // 64 KiB pages (aarch64, ppc64le) give a different maximum.
        assert_eq!(parse_limit("9223372036854710272").unwrap(), None);
    }

    #[test]
    fn parse_limit_bytes_are_kept() {
        assert_eq!(parse_limit("536870912\n").unwrap(), Some(536_870_912));
        assert_eq!(parse_limit("0").unwrap(), Some(0));
    }

    #[test]
    fn parse_limit_garbage_is_an_error() {
        assert_eq!(parse_limit("").unwrap_err().what, "limit");
        parse_limit("12ab").unwrap_err();
        parse_limit("-2").unwrap_err();
    }

    #[test]
    fn effective_limit_parent_lower_wins() {
        let chain = [Some(1024 << 20), Some(512 << 20), None];
        assert_eq!(effective_limit(chain), Some(512 << 20));
    }

    #[test]
    fn effective_limit_all_unlimited_is_none() {
        assert_eq!(effective_limit([None, None]), None);
        assert_eq!(effective_limit(std::iter::empty()), None);
    }

    #[test]
    fn parse_counter_trims_newline() {
        assert_eq!(parse_counter("4096\n").unwrap(), 4096);
        parse_counter("").unwrap_err();
    }
}
