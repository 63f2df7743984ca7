#![no_main]
//! Fuzzes the load averages and their renderer: a container's averages seeded (with or without a known
//! age) and then updated by arbitrary samples at arbitrary intervals (NaN, negative and infinite ones
//! included) stay between 0 and the largest task count seen, and render in the kernel's format
//! `a.aa b.bb c.cc running/total last_pid`.
//!
//! Input: how to seed (a flag, a count, an age), the tail's three numbers, then samples of a count and
//! an interval each, until the input runs out.

use cgview::model::loadavg::{render_loadavg, LoadAverages, LoadavgTail};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

const MAX_SAMPLES: usize = 64;

fn two_decimals(field: &str) -> f64 {
    let (whole, fraction) = field.split_once('.').expect("a decimal point");
    assert!(
        !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()),
        "{field}"
    );
    assert!(
        fraction.len() == 2 && fraction.bytes().all(|b| b.is_ascii_digit()),
        "{field}"
    );
    field.parse().unwrap()
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let (Ok(with_age), Ok(first), Ok(age)) = (
        u.arbitrary::<bool>(),
        u.arbitrary::<u64>(),
        u.arbitrary::<f64>(),
    ) else {
        return;
    };
    let (Ok(running), Ok(total), Ok(last_pid)) = (u.arbitrary(), u.arbitrary(), u.arbitrary())
    else {
        return;
    };
    let mut loads = if with_age {
        LoadAverages::since_start(first, age)
    } else {
        LoadAverages::seeded(first)
    };
    let mut most = first as f64;
    for _ in 0..MAX_SAMPLES {
        let (Ok(active), Ok(elapsed)) = (u.arbitrary::<u64>(), u.arbitrary::<f64>()) else {
            break;
        };
        loads.update(active, elapsed);
        most = most.max(active as f64);
    }
    for average in loads.averages {
        assert!(average.is_finite() && average >= 0.0, "{loads:?}");
        assert!(average <= most * (1.0 + 1e-9), "{loads:?} above {most}");
    }

    let tail = LoadavgTail {
        running,
        total,
        last_pid,
    };
    let out = render_loadavg(&loads, &tail);
    let line = out.strip_suffix('\n').expect("ends with a newline");
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.len(), 5, "{out:?}");
    for (field, average) in fields[..3].iter().zip(loads.averages) {
        assert!(
            (two_decimals(field) - average).abs() <= 0.005 + average * 1e-12,
            "{out:?}"
        );
    }
    assert_eq!(fields[3], format!("{running}/{total}"));
    assert_eq!(fields[4], last_pid.to_string());
});
