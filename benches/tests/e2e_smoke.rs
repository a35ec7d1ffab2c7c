//! Smoke run of the end-to-end harness (`src/bin/e2e`): one short round over vswitchd with
//! AF_XDP ports, the Linux bridge, a direct veth pair and (when installed) Open vSwitch with
//! afxdp ports. Checks that it wrote a table, a raw file and a chart, and that vswitchd
//! delivered frames and carried TCP. No speed is asserted. Needs root; never skipped under
//! `CI=true`.
#![allow(clippy::unwrap_used, reason = "test")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect()
}

#[test]
fn e2e_smoke_run_writes_table_raw_and_chart() {
    if !testbed::require_privileges("e2e_smoke") {
        return;
    }
    let exe = Path::new(env!("CARGO_BIN_EXE_e2e"));
    let bin_dir = exe.parent().unwrap();
    // `cargo test --workspace` builds vswitchd and vsctl next to the harness (their packages'
    // tests use them).
    for b in ["vswitchd", "vsctl"] {
        if !bin_dir.join(b).is_file() {
            assert!(
                !ci(),
                "{} missing: run `cargo test --workspace` (builds it) or `cargo build --workspace --bins`",
                bin_dir.join(b).display()
            );
            eprintln!(
                "skipping e2e_smoke: {} not built (run `cargo build --workspace --bins` first)",
                bin_dir.join(b).display()
            );
            return;
        }
    }
    let ovs = Path::new("/usr/share/openvswitch/vswitch.ovsschema").exists()
        && Path::new("/usr/sbin/ovs-vswitchd").exists();
    let only = if ovs { "a,d,e,g,h" } else { "a,d,g,h" };
    let out = std::env::temp_dir().join(testbed::unique("e2esm"));
    let t0 = Instant::now();
    let child = Command::new(exe)
        .args([
            "--quick",
            "--only",
            only,
            "--tests",
            "fps,tcp,rtt",
            "--duration",
            "1",
            "--quiet-wait",
            "1",
            // A smoke run is no measurement: it must not queue behind real ones.
            "--no-lock",
            // vswitchd's 10,000-flow figure through 10,000 rules, one megaflow each.
            "--rule-per-flow",
            "--bin-dir",
        ])
        .arg(bin_dir)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut child = child;
    // The harness bounds every step; this only guards against a hang of the harness itself.
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(180) {
            // SIGTERM by PID: the harness unwinds and removes what it made.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
            panic!("e2e harness did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = {
        use std::io::Read as _;
        let mut s = String::new();
        child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
        s
    };
    eprintln!("{stdout}\n(took {:?})", t0.elapsed());
    assert!(status.success(), "harness failed: {status}");
    assert!(stdout.contains("| figure |"), "no table printed: {stdout}");

    let raws = files_with(&out, "jsonl");
    assert_eq!(raws.len(), 1, "one raw file in {}", out.display());
    let md = std::fs::read_to_string(raws[0].with_extension("md")).unwrap();
    assert!(
        md.contains("| figure |") && md.contains("vswitchd AF_XDP"),
        "{md}"
    );
    let svg = std::fs::read_to_string(raws[0].with_extension("svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{svg}");

    let raw = std::fs::read_to_string(&raws[0]).unwrap();
    let recs: Vec<serde_json::Value> = raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs[0]["kind"], "machine");
    let value = |path: &str, figure: &str, key: &str| -> f64 {
        recs.iter()
            .find(|r| r["kind"] == "measurement" && r["path"] == path && r["figure"] == figure)
            .and_then(|r| r["values"][key].as_f64())
            .unwrap_or_else(|| panic!("no {path} {figure} {key} in {raw}"))
    };
    assert!(value("vswitchd-afxdp", "fps_1", "delivered") > 0.0);
    assert!(value("vswitchd-afxdp", "fps_10k", "delivered") > 0.0);
    // The switch's own account of its core: it worked, for a time per frame.
    assert!(value("vswitchd-afxdp", "fps_1", "switch_busy_pct") > 0.0);
    assert!(value("vswitchd-afxdp", "fps_10k", "switch_ns_per_frame") > 0.0);
    // Its own part of that work: less than all of it (the kicks take time), more than none.
    let own = value("vswitchd-afxdp", "fps_10k", "switch_own_ns_per_frame");
    assert!(own > 0.0 && own < value("vswitchd-afxdp", "fps_10k", "switch_ns_per_frame"));
    assert!(value("vswitchd-afxdp", "fps_1", "switch_frames_per_batch") >= 1.0);
    assert!(value("vswitchd-afxdp", "fps_1", "switch_full_batch_pct") >= 0.0);
    if ovs
        && recs.iter().any(|r| {
            r["kind"] == "measurement" && r["path"] == "ovs-afxdp" && r["figure"] == "fps_1"
        })
    {
        assert!(value("ovs-afxdp", "fps_1", "switch_ns_per_frame") > 0.0);
    }
    assert!(
        recs.iter().any(|r| r["kind"] == "note"
            && r["path"] == "vswitchd-afxdp"
            && r["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("10000 rules"))),
        "the rules were not installed: {raw}"
    );
    assert!(value("vswitchd-afxdp", "tcp_1", "gbps") > 0.0);
    assert!(value("vswitchd-afxdp", "tcp_1_adaptive", "gbps") > 0.0);
    assert!(value("bridge", "fps_1", "delivered") > 0.0);
    assert!(value("veth", "tcp_1", "gbps") > 0.0);
    // The in-kernel XDP redirect path forwards (GRO on the receiving ends, or nothing arrives).
    assert!(value("xdp-redirect", "fps_1", "delivered") > 0.0);
    // RTT ran (a measurement or a recorded failure: a debug vswitchd is slow, and no speed
    // or success of a timed figure is asserted beyond frames and TCP).
    assert!(
        recs.iter()
            .any(|r| r["path"] == "vswitchd-afxdp" && r["figure"] == "rtt"),
        "no vswitchd-afxdp rtt record in {raw}"
    );
    for r in &recs[1..] {
        if r["kind"] == "measurement" {
            assert!(
                r["cpu_busy"].as_array().is_some_and(|c| !c.is_empty()),
                "no CPU busy figures: {r}"
            );
        }
    }
    // Nothing left behind: no namespace named after the harness's PID.
    let ns = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for prefix in ["e2g", "e2s"] {
        let name = format!("{prefix}{}", pid % 10_000);
        assert!(
            !ns.lines().any(|l| l.starts_with(&name)),
            "namespace {name}* left behind: {ns}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
