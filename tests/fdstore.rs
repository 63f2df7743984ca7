//! Under its systemd unit the daemon keeps the FUSE connection in systemd's file descriptor store
//! (`FileDescriptorStoreMax=`): a crash or a `systemctl restart` fails no read of a file a reader keeps
//! open, and a `systemctl stop` (which empties the store) ends the connection. systemd is played by
//! `tests/fdstore/fake_systemd.py`, which does what the service manager does with `FDSTORE=1`
//! messages and `$LISTEN_FDS` (this machine's PID 1 is not systemd).

mod mounted_support;

use mounted_support::*;
use std::process::Command;

#[test]
fn a_crash_and_a_restart_under_systemd_fail_no_read_and_a_stop_ends_the_connection() {
    if !needs_met(MOUNT_AND_CGROUPS) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("cgview-fdstore-")
        .tempdir()
        .unwrap();
    let mount_point = dir.path().join("mnt");
    let log = dir.path().join("daemon.log");
    let output = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fdstore/fake_systemd.py"
        ))
        .arg(BIN)
        .arg(&mount_point)
        .arg(&log)
        .output()
        .unwrap();
    let daemon_log = std::fs::read_to_string(&log).unwrap_or_default();
    if is_mounted(&mount_point) {
        let _ = Command::new("umount").arg("-l").arg(&mount_point).status();
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{daemon_log}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("fdstore: {stdout}");
    let field = |name: &str| {
        stdout
            .split(&format!("\"{name}\": "))
            .nth(1)
            .and_then(|rest| rest.split([',', '}']).next())
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
            .trim()
            .to_owned()
    };
    assert_eq!(
        field("errors"),
        "[]",
        "reads failed across the restarts:\n{daemon_log}"
    );
    assert_eq!(field("wrong"), "0", "{stdout}");
    assert!(field("reads").parse::<u64>().unwrap() > 50, "{stdout}");
    let stall: f64 = field("longest_stall_s").parse().unwrap();
    assert!(stall < 3.0, "a read waited {stall} s:\n{daemon_log}");
    assert_eq!(field("error_after_stop"), "true", "{stdout}");
    assert_eq!(
        field("reader_ended"),
        "true",
        "a reader hangs after the stop"
    );
    assert_eq!(
        daemon_log
            .matches("resumed the FUSE connection an earlier cgview left with its holder")
            .count(),
        2,
        "{daemon_log}"
    );
}
