//! `/proc/uptime` for a container.

/// The container's uptime and idle time, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uptime {
    pub up_secs: f64,
    pub idle_secs: f64,
}

/// Uptime of a container whose anchor process started `start_secs` after boot, on a host that has been up
/// `host_up_secs`. Idle is the CPU time the container's visible CPUs did not use (never negative).
pub fn container_uptime(
    host_up_secs: f64,
    start_secs: f64,
    visible_cpus: usize,
    cpu_used_secs: f64,
) -> Uptime {
    let up_secs = (host_up_secs - start_secs).max(0.0);
    // An absurd host uptime (any finite number parses) times the CPUs overflows to infinity, which would
    // render as `inf`: the largest finite value is as far as idle goes. NaN (infinite CPU time used on an
    // infinite uptime) is no idle time.
    let idle_secs = match up_secs * visible_cpus as f64 - cpu_used_secs {
        idle if idle.is_nan() => 0.0,
        idle => idle.clamp(0.0, f64::MAX),
    };
    Uptime { up_secs, idle_secs }
}

/// Two decimals, like the kernel.
pub fn render_uptime(uptime: Uptime) -> String {
    format!("{:.2} {:.2}\n", uptime.up_secs, uptime.idle_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_uptime_is_age_of_anchor() {
        let uptime = container_uptime(1000.0, 940.0, 2, 20.0);
        assert_eq!(uptime.up_secs, 60.0);
        assert_eq!(uptime.idle_secs, 100.0);
        assert_eq!(render_uptime(uptime), "60.00 100.00\n");
    }

    #[test]
    fn container_uptime_huge_host_uptime_renders_finite_numbers() {
        let uptime = container_uptime(1e308, 0.0, 4, 0.0);
        assert_eq!(uptime.idle_secs, f64::MAX);
        let text = render_uptime(uptime);
        assert!(!text.contains("inf"), "{text}");
    }

    #[test]
    fn container_uptime_never_negative() {
        let uptime = container_uptime(10.0, 20.0, 1, 5.0);
        assert_eq!(uptime.up_secs, 0.0);
        assert_eq!(uptime.idle_secs, 0.0);
    }
}
