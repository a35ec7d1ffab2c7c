//! vswitchd's flags and `--print-config` as an operator uses them (found by an audit,
//! 2026-12-07).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use testbed::require_privileges;

/// `--print-config` is the operator's check of a configuration: it exited 0 for settings the
/// daemon refused at start (after binding its socket). No root needed: it exits before the
/// capability check.
#[test]
fn print_config_refuses_what_the_daemon_refuses() {
    for bad in [
        &["--cpus", "0,0"][..],
        &["--cpus", "4095"],
        &["--mac-table-max", "0"],
        &["--mac-aging", "0"],
        &["--batch-hold-ns", "100001"],
        &["--log-level", "warning"],
    ] {
        let o = Command::new(common::vswitchd())
            .args(bad)
            .arg("--print-config")
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "vswitchd {bad:?} --print-config exited 0:\n{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    let o = Command::new(common::vswitchd())
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `--log-level` wins over `RUST_LOG` (as `--socket` over `VSWITCH_SOCKET`); `RUST_LOG` (which
/// the test harness sets to `info`) silently won before.
#[test]
fn the_log_level_flag_wins_over_rust_log() {
    if !require_privileges("log level") {
        return;
    }
    let mut d = testbed::Daemon::start(common::vswitchd(), &["--log-level", "error"]).unwrap();
    let st = d.terminate(Duration::from_secs(10)).unwrap();
    assert!(st.success());
    let log = d.log();
    assert!(!log.contains("INFO"), "--log-level error ignored:\n{log}");
}
