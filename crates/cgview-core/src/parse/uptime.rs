//! `/proc/uptime`: `<seconds up> <idle seconds summed over CPUs>`.

use super::ParseError;

/// Parses the host uptime file into (up, idle) seconds.
pub fn parse_uptime(text: &str) -> Result<(f64, f64), ParseError> {
    let bad = || ParseError::new("/proc/uptime", text);
    let mut fields = text.split_ascii_whitespace();
    let (Some(up), Some(idle)) = (fields.next(), fields.next()) else {
        return Err(bad());
    };
    let up: f64 = up.parse().map_err(|_| bad())?;
    let idle: f64 = idle.parse().map_err(|_| bad())?;
    if !up.is_finite() || !idle.is_finite() || up < 0.0 || idle < 0.0 {
        return Err(bad());
    }
    Ok((up, idle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_uptime_two_fields() {
        assert_eq!(
            parse_uptime("3595.52 6988.64\n").unwrap(),
            (3595.52, 6988.64)
        );
    }

    #[test]
    fn parse_uptime_rejects_garbage() {
        parse_uptime("").unwrap_err();
        parse_uptime("1.0").unwrap_err();
        parse_uptime("nan 1").unwrap_err();
        parse_uptime("-1 1").unwrap_err();
    }
}
