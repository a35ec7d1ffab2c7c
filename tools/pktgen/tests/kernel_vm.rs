//! `pktgen tx --mode kernel` against a real kernel pktgen. The hosts this runs on have none
//! (`CONFIG_NET_PKTGEN` unset), so the test boots Debian's kernel, which has it as a module,
//! in QEMU (software emulation; the VM has no network card) with an initramfs holding busybox
//! and this pktgen; inside, `tests/kernel-vm/init` makes a veth pair and runs each case with
//! `pktgen rx` on one end and `pktgen tx --mode kernel` on the other. Needs
//! `qemu-system-x86_64`, `busybox` (static) and apt's package lists to download the kernel
//! package (`.ci/run setup` installs and fetches them); no root. Without them it prints why
//! and passes, except under `CI=true`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::Command;

use testbed::field;

const PKTGEN: &str = env!("CARGO_BIN_EXE_pktgen");

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernel-vm/boot.sh")
}

fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel-vm")
}

/// Skips with `reason` (printed), or fails under `CI=true`.
fn cannot_run(test: &str, reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {reason}, and CI=true forbids skipping"
    );
    eprintln!("skipping {test}: {reason}");
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What the VM printed for one case: its lines up to the next case.
struct Case {
    name: String,
    lines: Vec<String>,
}

impl Case {
    /// The line starting with `prefix`, without it.
    fn line(&self, prefix: &str) -> &str {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{}: no line {prefix:?}:\n{}", self.name, self.text()))
    }

    fn num(&self, which: &str, key: &str) -> u64 {
        let l = self.line(which);
        field(l, key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: no {key}= in {l:?}", self.name))
    }

    /// The kernel's file `/proc/net/pktgen/<name>` as printed after the case.
    fn proc_file(&self, name: &str) -> String {
        let head = format!("--- /proc/net/pktgen/{name}");
        self.lines
            .iter()
            .skip_while(|l| **l != head)
            .skip(1)
            .take_while(|l| !l.starts_with("--- "))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn text(&self) -> String {
        self.lines.join("\n")
    }
}

fn cases(out: &str) -> Vec<Case> {
    let mut v: Vec<Case> = Vec::new();
    for l in out.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(name) = l.strip_prefix("=== case ") {
            v.push(Case {
                name: name.to_owned(),
                lines: Vec::new(),
            });
        } else if l.starts_with("=== done") {
            break;
        } else if let Some(c) = v.last_mut() {
            c.lines.push(l.to_owned());
        }
    }
    v
}

#[test]
fn kernel_mode_drives_a_real_kernel_pktgen_in_a_vm() {
    const TEST: &str = "kernel_mode_drives_a_real_kernel_pktgen_in_a_vm";
    for cmd in [
        "qemu-system-x86_64",
        "busybox",
        "apt-get",
        "dpkg-deb",
        "ldd",
    ] {
        if !have(cmd) {
            return cannot_run(TEST, &format!("{cmd} is not installed"));
        }
    }
    let work = work_dir();
    let fetch = Command::new("bash")
        .arg(script())
        .args(["fetch".as_ref(), work.as_os_str()])
        .output()
        .unwrap();
    if !fetch.status.success() {
        return cannot_run(
            TEST,
            &format!(
                "the kernel package could not be fetched: {}",
                String::from_utf8_lossy(&fetch.stderr).trim()
            ),
        );
    }
    let run = Command::new("bash")
        .arg(script())
        .args(["run".as_ref(), work.as_os_str(), PKTGEN.as_ref()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        out.contains("=== done"),
        "the VM did not finish its cases (exit {:?}):\n{out}\n{err}",
        run.status.code()
    );
    assert!(!out.contains("=== error"), "{out}");
    let cases = cases(&out);
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ipv4_ranges_two_threads",
            "ipv6_vlan_duration_rate",
            "random_afxdp"
        ],
        "{out}"
    );
    for c in &cases {
        assert_eq!(c.line("tx_rc="), "0", "{}:\n{}", c.name, c.text());
        assert_eq!(c.line("rx_rc="), "0", "{}:\n{}", c.name, c.text());
        assert_eq!(field(c.line("tx: "), "mode"), Some("kernel"), "{}", c.name);
        // Every frame pktgen counted arrived, in its own format, none lost.
        let sent = c.num("tx: ", "sent");
        assert!(sent > 0, "{}:\n{}", c.name, c.text());
        assert_eq!(c.num("rx: ", "received"), sent, "{}:\n{}", c.name, c.text());
        assert_eq!(c.num("rx: ", "kernel"), sent, "{}:\n{}", c.name, c.text());
        assert_eq!(c.num("rx: ", "other"), 0, "{}:\n{}", c.name, c.text());
        assert_eq!(c.num("rx: ", "lost"), 0, "{}:\n{}", c.name, c.text());
        assert_eq!(c.num("rx: ", "dup"), 0, "{}:\n{}", c.name, c.text());
        let dev = c.proc_file("vethA@0");
        assert!(dev.contains("Result: OK:"), "{}:\n{dev}", c.name);
    }

    // 2 threads × 500: two kernel threads, thread 1's frames marked DSCP 1 (TOS 0x04), the
    // ranges swept in order: lcm(4 addresses, 3 ports) = 12 tuples; port maximum exclusive.
    let c = &cases[0];
    assert_eq!(c.num("tx: ", "sent"), 1000);
    assert_eq!(c.num("tx: ", "threads"), 2);
    assert_eq!(c.num("rx: ", "flows"), 12, "{}", c.text());
    let (d0, d1) = (c.proc_file("vethA@0"), c.proc_file("vethA@1"));
    for d in [&d0, &d1] {
        assert!(d.contains("pkts-sofar: 500"), "{d}");
        assert!(d.contains("src_min: 10.1.0.1  src_max: 10.1.0.4"), "{d}");
        assert!(d.contains("udp_dst_min: 5000  udp_dst_max: 5003"), "{d}");
    }
    assert!(
        d1.contains("tos: 0x04") && !d0.contains("tos:"),
        "{d0}\n{d1}"
    );

    // No count: pktgen sends until the `stop` written at --duration (2 s at 200/s); IPv6 in
    // VLAN 7. The stop must have ended the run: nothing left running.
    let c = &cases[1];
    let sent = c.num("tx: ", "sent");
    assert!((100..=450).contains(&sent), "{}", c.text());
    assert_eq!(c.num("rx: ", "vlan"), sent, "{}", c.text());
    let d = c.proc_file("vethA@0");
    assert!(d.contains("vlan_id: 7") && d.contains("Flags: IPV6"), "{d}");
    assert!(
        c.proc_file("kpktgend_0").contains("Running: \n"),
        "{}",
        c.text()
    );

    // At random over 10 ports × 8 addresses (maxima written one higher): all 80 tuples seen
    // (2,000 frames leave one unseen with a chance of ~1e-9), received over AF_XDP.
    let c = &cases[2];
    assert_eq!(c.num("tx: ", "sent"), 2000);
    assert_eq!(c.num("rx: ", "flows"), 80, "{}", c.text());
    assert_eq!(field(c.line("rx: "), "mode"), Some("afxdp"));
    let d = c.proc_file("vethA@0");
    assert!(
        d.contains("IPDST_RND") && d.contains("UDPSRC_RND") && d.contains("dst_max: 10.3.0.9"),
        "{d}"
    );
}
