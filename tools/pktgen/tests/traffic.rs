//! Privileged end-to-end tests: two network namespaces joined by a veth pair (made here,
//! deleted on drop), `pktgen tx` in one and `pktgen rx` in the other, over every combination
//! of AF_XDP and AF_PACKET (`sendmmsg` and `PACKET_TX_RING` on the sending side). Rates are modest so nothing is lost on the way; speed is never
//! asserted. Without root each test prints why and passes, except under `CI=true`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use testbed::{Netns, field, ip, require_privileges, unique};

const PKTGEN: &str = env!("CARGO_BIN_EXE_pktgen");

/// Two namespaces, each with `eth0`, the two ends of one veth pair with `queues` queues.
struct Pair {
    // Deleting the namespaces deletes the pair.
    a: Netns,
    b: Netns,
    /// Deletes the pair if it never made it into the namespaces.
    _link: LinkGuard,
}

struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

impl Pair {
    fn new(queues: usize) -> Self {
        let a = Netns::new("pga").unwrap();
        let b = Netns::new("pgb").unwrap();
        let (va, vb) = (unique("pgva"), unique("pgvb"));
        let q = queues.to_string();
        ip(&[
            "link",
            "add",
            &va,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &vb,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ])
        .unwrap();
        let link = LinkGuard(va.clone());
        for (ns, dev) in [(&a, &va), (&b, &vb)] {
            ip(&["link", "set", dev, "netns", &ns.name]).unwrap();
            ns.ip(&["link", "set", dev, "name", "eth0"]).unwrap();
            // No IPv6 chatter: every frame on the wire is ours.
            ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"])
                .ok();
            ns.exec("sysctl", &["-qw", "net.ipv6.conf.eth0.disable_ipv6=1"])
                .ok();
            ns.ip(&["link", "set", "eth0", "up"]).unwrap();
        }
        Self { a, b, _link: link }
    }

    /// Sets both ends' MTU.
    fn mtu(&self, mtu: u32) {
        let m = mtu.to_string();
        for ns in [&self.a, &self.b] {
            ns.ip(&["link", "set", "eth0", "mtu", &m]).unwrap();
        }
    }
}

/// `--duration SECS` unless `args` has one.
fn default_duration<'a>(args: &[&str], secs: &'a str) -> Vec<&'a str> {
    if args.contains(&"--duration") {
        vec![]
    } else {
        vec!["--duration", secs]
    }
}

/// Starts `pktgen rx ARGS` in `ns` and returns once it said it is ready.
fn start_rx(ns: &Netns, args: &[&str]) -> Child {
    let mut child = ns
        .command(PKTGEN)
        .args(["rx", "--dev", "eth0"])
        .args(args)
        .args(default_duration(args, "12"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            let out = child.wait_with_output().unwrap();
            panic!("rx exited early: {}", String::from_utf8_lossy(&out.stdout));
        }
        eprint!("rx: {line}");
        if line.contains("rx ready") {
            break;
        }
    }
    // Keep draining stderr so the child never blocks on it.
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            eprintln!("rx: {l}");
        }
    });
    child
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "rx failed: {out:?}");
    let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    eprintln!("rx: {s}");
    s
}

fn tx(ns: &Netns, args: &[&str]) -> Output {
    let out = ns
        .command(PKTGEN)
        .args(["tx", "--dev", "eth0"])
        .args(args)
        .args(default_duration(args, "10"))
        .output()
        .unwrap();
    eprintln!(
        "tx: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn num(line: &str, key: &str) -> u64 {
    field(line, key)
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key}= is not a number in {line:?}"))
}

/// Sends `count` frames with `tx_args` from a to b and checks every one arrived once, in order.
fn exact_run(tx_mode: &str, rx_mode: &str, extra: &[&str], count: u64) -> (String, String) {
    exact_run_on(&Pair::new(1), tx_mode, rx_mode, extra, count, 50_000)
}

/// [`exact_run`] over the pair `p`, at `rate` frames/s.
fn exact_run_on(
    p: &Pair,
    tx_mode: &str,
    rx_mode: &str,
    extra: &[&str],
    count: u64,
    rate: u64,
) -> (String, String) {
    let n = count.to_string();
    let rate = rate.to_string();
    let rx = start_rx(&p.b, &["--mode", rx_mode, "--count", &n]);
    let mut args = vec!["--mode", tx_mode, "--count", &n, "--rate", &rate];
    args.extend_from_slice(extra);
    let out = tx(&p.a, &args);
    assert!(out.status.success(), "tx failed");
    let t = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let r = finish(rx);
    assert_eq!(num(&t, "sent"), count, "{t}");
    assert_eq!(field(&t, "mode"), Some(tx_mode), "{t}");
    assert_eq!(num(&r, "received"), count, "{r}");
    assert_eq!(num(&r, "lost"), 0, "{r}");
    assert_eq!(num(&r, "dup"), 0, "{r}");
    assert_eq!(num(&r, "reordered"), 0, "{r}");
    // Latency from each frame's timestamp: measured, and within the run (a timestamp written or
    // read wrong shows as a latency of minutes or days: the field is 48 bits of nanoseconds).
    let lat = |k: &str| -> f64 { field(&r, k).unwrap().parse().unwrap() };
    assert!(lat("lat_p50_us") > 0.0, "{r}");
    assert!(lat("lat_p999_us") < 10e6, "{r}");
    (t, r)
}

#[test]
fn afxdp_tx_into_afpacket_rx_delivers_every_frame() {
    if !require_privileges("afxdp_tx_into_afpacket_rx_delivers_every_frame") {
        return;
    }
    let (_, r) = exact_run("afxdp", "afpacket", &[], 20_000);
    assert_eq!(num(&r, "other"), 0, "{r}");
    assert_eq!(num(&r, "flows"), 1, "{r}");
}

#[test]
fn afpacket_tx_into_afxdp_rx_delivers_every_frame() {
    if !require_privileges("afpacket_tx_into_afxdp_rx_delivers_every_frame") {
        return;
    }
    exact_run("afpacket", "afxdp", &[], 20_000);
}

#[test]
fn a_hundred_flows_are_a_hundred_distinct_tuples() {
    if !require_privileges("a_hundred_flows_are_a_hundred_distinct_tuples") {
        return;
    }
    let (_, r) = exact_run("afxdp", "afpacket", &["--flows", "100"], 5_000);
    assert_eq!(num(&r, "flows"), 100, "{r}");
    let (_, r) = exact_run("afpacket", "afxdp", &["--flows", "100", "--random"], 5_000);
    assert_eq!(num(&r, "flows"), 100, "{r}");
}

#[test]
fn vlan_frames_carry_the_tag() {
    if !require_privileges("vlan_frames_carry_the_tag") {
        return;
    }
    // The receiver's own count of tagged frames (AF_XDP sees the tag inline, AF_PACKET in
    // the auxdata the device strips it into) ...
    for rx_mode in ["afxdp", "afpacket"] {
        let (_, r) = exact_run("afxdp", rx_mode, &["--vlan", "42"], 2_000);
        assert_eq!(num(&r, "vlan"), 2_000, "{r}");
    }
    // ... and an independent capture that reads the id.
    let p = Pair::new(1);
    let mut cap =
        p.b.command("timeout")
            .args(["8", "tcpdump", "-i", "eth0", "-nn", "-e", "-l", "-c", "3"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let mut err = BufReader::new(cap.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("listening") {
        line.clear();
    }
    assert!(
        line.contains("listening"),
        "tcpdump did not start (installed?)"
    );
    assert!(
        tx(&p.a, &["--vlan", "42", "--count", "20", "--rate", "100"])
            .status
            .success()
    );
    let out = cap.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("tcpdump: {text}");
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines()
            .all(|l| l.contains("vlan 42") && l.contains("UDP")),
        "{text}"
    );
}

#[test]
fn ipv6_frames_arrive() {
    if !require_privileges("ipv6_frames_arrive") {
        return;
    }
    exact_run("afxdp", "afpacket", &["--ipv6", "--flows", "10"], 3_000);
    exact_run(
        "afpacket",
        "afxdp",
        &["--ipv6", "--vlan", "7", "--size", "200"],
        3_000,
    );
}

#[test]
fn txring_delivers_every_ipv4_frame() {
    if !require_privileges("txring_delivers_every_ipv4_frame") {
        return;
    }
    let (_, r) = exact_run("txring", "afpacket", &[], 20_000);
    assert_eq!(num(&r, "other"), 0, "{r}");
    assert_eq!(num(&r, "flows"), 1, "{r}");
    let (_, r) = exact_run("txring", "afxdp", &["--flows", "100", "--random"], 5_000);
    assert_eq!(num(&r, "flows"), 100, "{r}");
}

#[test]
fn txring_delivers_every_ipv6_vlan_frame() {
    if !require_privileges("txring_delivers_every_ipv6_vlan_frame") {
        return;
    }
    // AF_XDP sees the tag inline, AF_PACKET in the auxdata the device strips it into.
    let (_, r) = exact_run("txring", "afxdp", &["--ipv6", "--vlan", "7"], 5_000);
    assert_eq!(num(&r, "vlan"), 5_000, "{r}");
    let (_, r) = exact_run(
        "txring",
        "afpacket",
        &["--ipv6", "--vlan", "7", "--size", "200", "--flows", "10"],
        5_000,
    );
    assert_eq!(num(&r, "vlan"), 5_000, "{r}");
    assert_eq!(num(&r, "flows"), 10, "{r}");
}

/// One of `eth0`'s counters, from sysfs inside `ns`.
fn eth0_stat(ns: &Netns, name: &str) -> u64 {
    let out = ns
        .exec("cat", &[&format!("/sys/class/net/eth0/statistics/{name}")])
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The device's received bytes.
fn rx_bytes(ns: &Netns) -> u64 {
    eth0_stat(ns, "rx_bytes")
}

/// The device's received frames.
fn rx_packets(ns: &Netns) -> u64 {
    eth0_stat(ns, "rx_packets")
}

/// Three runs of 3,000 jumbo frames with `mode` (9,000 bytes; the same over IPv6 with a VLAN
/// tag; 4,097, one byte past a UMEM chunk): every frame of each arrives whole, in order.
fn every_jumbo_frame_arrives(mode: &str) {
    let p = Pair::new(1);
    p.mtu(9000);
    for extra in [
        &["--size", "9000"][..],
        &["--size", "9000", "--ipv6", "--vlan", "9"],
        &["--size", "4097"],
    ] {
        let size: u64 = extra[1].parse().unwrap();
        let before = rx_bytes(&p.b);
        let (_, r) = exact_run_on(&p, mode, "afpacket", extra, 3_000, 5_000);
        assert_eq!(num(&r, "other"), 0, "{r}");
        // Every frame arrived whole: `size` bytes each (the device counts what it received,
        // VLAN tag included).
        assert_eq!(rx_bytes(&p.b) - before, 3_000 * size, "{mode} {extra:?}");
    }
}

#[test]
fn txring_delivers_every_jumbo_frame() {
    if !require_privileges("txring_delivers_every_jumbo_frame") {
        return;
    }
    every_jumbo_frame_arrives("txring");
}

#[test]
fn afpacket_delivers_every_jumbo_frame() {
    if !require_privileges("afpacket_delivers_every_jumbo_frame") {
        return;
    }
    every_jumbo_frame_arrives("afpacket");
}

/// Frames longer than a UMEM chunk go out through AF_XDP as several descriptors
/// (multi-buffer).
#[test]
fn afxdp_delivers_every_jumbo_frame() {
    if !require_privileges("afxdp_delivers_every_jumbo_frame") {
        return;
    }
    every_jumbo_frame_arrives("afxdp");
}

/// On a device whose MTU lets frames longer than a UMEM chunk through, AF_XDP receive would
/// count nothing of them: an explicit `--mode afxdp` is an error that says why, and the
/// default takes AF_PACKET, which receives every jumbo frame.
#[test]
fn rx_on_a_jumbo_mtu_says_afxdp_cannot_and_takes_afpacket() {
    if !require_privileges("rx_on_a_jumbo_mtu_says_afxdp_cannot_and_takes_afpacket") {
        return;
    }
    let p = Pair::new(1);
    p.mtu(9000);
    let t0 = std::time::Instant::now();
    let out =
        p.b.command(PKTGEN)
            .args(["rx", "--dev", "eth0", "--mode", "afxdp", "--duration", "5"])
            .output()
            .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("AF_XDP receives frames of at most 3840 bytes") && e.contains("MTU 9000"),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let rx = start_rx(&p.b, &["--count", "500"]);
    let out = tx(
        &p.a,
        &["--size", "9000", "--count", "500", "--rate", "5000"],
    );
    assert!(out.status.success());
    let r = finish(rx);
    assert_eq!(field(&r, "mode"), Some("afpacket"), "{r}");
    assert_eq!(num(&r, "received"), 500, "{r}");
    assert_eq!(num(&r, "lost"), 0, "{r}");
}

#[test]
fn every_mode_refuses_a_frame_above_the_mtu_with_an_error() {
    if !require_privileges("every_mode_refuses_a_frame_above_the_mtu_with_an_error") {
        return;
    }
    // MTU 1500: a 1515-byte untagged frame is one byte too long (the kernel's rule for packet
    // sockets, which the ring's virtio-net header turns off and AF_XDP does not apply, so
    // pktgen checks it itself, in every mode but `kernel`).
    let p = Pair::new(1);
    let modes: [&[&str]; 4] = [
        &["--mode", "txring"],
        &["--mode", "afxdp"],
        &["--mode", "afpacket"],
        &[],
    ];
    for mode in modes {
        for args in [
            &["--size", "1515"][..],
            &["--size", "1519", "--vlan", "5"],
            &["--size", "9000"],
        ] {
            let t0 = std::time::Instant::now();
            let mut a = vec!["--duration", "5"];
            a.extend_from_slice(mode);
            a.extend_from_slice(args);
            let out = tx(&p.a, &a);
            assert!(!out.status.success(), "{a:?} should fail");
            assert!(out.stdout.is_empty());
            let e = String::from_utf8_lossy(&out.stderr);
            assert!(e.contains("does not fit the MTU 1500"), "{a:?}: {e}");
            assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        }
        // The longest frames that fit go out, every one.
        for args in [&["--size", "1514"][..], &["--size", "1518", "--vlan", "5"]] {
            let mut a = vec!["--count", "100", "--rate", "10000"];
            a.extend_from_slice(mode);
            a.extend_from_slice(args);
            let out = tx(&p.a, &a);
            assert!(out.status.success(), "{a:?}");
            let t = String::from_utf8_lossy(&out.stdout);
            assert_eq!(num(&t, "sent"), 100, "{t}");
        }
    }
}

/// Three threads of `mode`, each its own socket, send 20,001 frames between them: every one
/// arrives once.
fn threads_each_send_their_share(mode: &str) {
    let p = Pair::new(2);
    let rx = start_rx(&p.b, &["--mode", "afpacket", "--count", "20001"]);
    let out = tx(
        &p.a,
        &[
            "--mode",
            mode,
            "--threads",
            "3",
            "--count",
            "20001",
            "--rate",
            "50000",
        ],
    );
    assert!(out.status.success());
    let t = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let r = finish(rx);
    assert_eq!(num(&t, "threads"), 3, "{t}");
    assert_eq!(field(&t, "mode"), Some(mode), "{t}");
    assert_eq!(num(&t, "sent"), 20_001, "{t}");
    assert_eq!(num(&r, "received"), 20_001, "{r}");
    assert_eq!(num(&r, "lost"), 0, "{r}");
    assert_eq!(num(&r, "dup"), 0, "{r}");
}

#[test]
fn txring_threads_each_send_their_share() {
    if !require_privileges("txring_threads_each_send_their_share") {
        return;
    }
    threads_each_send_their_share("txring");
}

#[test]
fn afpacket_threads_each_send_their_share() {
    if !require_privileges("afpacket_threads_each_send_their_share") {
        return;
    }
    threads_each_send_their_share("afpacket");
}

#[test]
fn two_threads_use_two_queues_and_two_streams() {
    if !require_privileges("two_threads_use_two_queues_and_two_streams") {
        return;
    }
    let p = Pair::new(2);
    let rx = start_rx(&p.b, &["--mode", "afpacket", "--count", "20000"]);
    let out = tx(
        &p.a,
        &[
            "--mode",
            "afxdp",
            "--threads",
            "2",
            "--count",
            "20000",
            "--rate",
            "50000",
        ],
    );
    assert!(out.status.success());
    let t = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let r = finish(rx);
    assert_eq!(num(&t, "threads"), 2, "{t}");
    assert_eq!(num(&t, "sent"), 20_000, "{t}");
    assert_eq!(num(&r, "received"), 20_000, "{r}");
    assert_eq!(num(&r, "lost"), 0, "{r}");
    assert_eq!(num(&r, "dup"), 0, "{r}");
}

/// `--rate` is a ceiling and `--duration` an end, in every mode but `kernel` (which needs the
/// kernel's pktgen; tests/kernel_vm.rs): a paced run never sends more
/// than the rate allows over the time it ran (plus the pacer's 10 ms of credit and one batch),
/// and stops at its deadline (plus the second it gives queued frames to go out). Nothing is
/// asserted about how fast it can go.
#[test]
fn the_rate_is_a_ceiling_and_the_duration_an_end() {
    if !require_privileges("the_rate_is_a_ceiling_and_the_duration_an_end") {
        return;
    }
    let p = Pair::new(1);
    let rate = 20_000.0;
    for mode in ["afxdp", "afpacket", "txring"] {
        let t0 = std::time::Instant::now();
        let out = tx(
            &p.a,
            &["--mode", mode, "--rate", "20000", "--duration", "1"],
        );
        let wall = t0.elapsed();
        assert!(out.status.success(), "{mode}");
        let t = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let sent = num(&t, "sent") as f64;
        let secs: f64 = field(&t, "secs").unwrap().parse().unwrap();
        assert!(sent > 0.0, "{t}");
        assert!(
            sent <= rate * secs + rate / 100.0 + 256.0,
            "{mode}: more than the rate: {t}"
        );
        assert!(secs < 2.0, "{mode}: ran past its deadline: {t}");
        assert!(wall < Duration::from_secs(5), "{mode}: {wall:?}");
    }
}

#[test]
fn flooding_a_veth_never_aborts() {
    if !require_privileges("flooding_a_veth_never_aborts") {
        return;
    }
    let p = Pair::new(1);
    // An AF_XDP receiver in the peer makes the veth's ring the bottleneck.
    let rx = start_rx(&p.b, &["--mode", "afxdp", "--duration", "4"]);
    for mode in ["afxdp", "afpacket", "txring"] {
        let out = tx(&p.a, &["--mode", mode, "--duration", "1", "--json"]);
        assert!(out.status.success(), "{mode}");
        let t = String::from_utf8_lossy(&out.stdout);
        assert!(t.trim().starts_with("{\"sent\":"), "{t}");
        assert!(!t.contains("\"sent\":0,"), "{t}");
    }
    finish(rx);
}

fn bad(args: &[&str]) -> String {
    let out = Command::new(PKTGEN).args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(out.stdout.is_empty(), "{args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_arguments_are_clear_errors() {
    let base = ["tx", "--dev", "lo"];
    let with = |extra: &[&'static str]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        bad(&v)
    };
    for size in ["59", "9001"] {
        let e = with(&["--size", size]);
        assert!(e.contains("--size") && e.contains("60..=9000"), "{e}");
    }
    let e = with(&["--flows", "0"]);
    assert!(e.contains("--flows"), "{e}");
    let e = with(&["--src-mac", "02:00:00:00:00"]);
    assert!(e.contains("--src-mac") && e.contains("invalid MAC"), "{e}");
    let e = with(&["--dst-mac", "zz:00:00:00:00:00"]);
    assert!(e.contains("invalid MAC"), "{e}");
    let e = with(&["--ipv6", "--size", "60"]);
    assert!(e.contains("at least 80"), "{e}");
    let e = with(&["--src-ip", "2001:db8::1"]);
    assert!(e.contains("--src-ip") && e.contains("IPv4"), "{e}");
    let e = with(&["--vlan", "4095"]);
    assert!(e.contains("--vlan"), "{e}");
    let e = bad(&["tx", "--dev", "pktgen-no-such-dev0"]);
    assert!(e.contains("pktgen-no-such-dev0"), "{e}");
    let e = bad(&["rx", "--dev", "lo", "--duration", "0"]);
    assert!(e.contains("--duration"), "{e}");
}

#[test]
fn kernel_mode_names_the_missing_kernel_pktgen() {
    if std::path::Path::new("/proc/net/pktgen").exists() {
        eprintln!("this kernel has pktgen; nothing to check");
        return;
    }
    let e = bad(&["tx", "--dev", "lo", "--mode", "kernel", "--count", "1"]);
    assert!(
        e.contains("/proc/net/pktgen") && e.contains("no pktgen"),
        "{e}"
    );
}

/// Sends UDP frames with the kernel pktgen's payload header (magic, sequence number,
/// wall-clock seconds and microseconds) from a raw socket in `ns`: one per `(dscp, seq)`. A pair
/// given again sends the same frame again, send time included, as a duplicate is (the kernel
/// never sends a number twice in a run; a frame sent later with a number seen before is
/// another run's).
fn send_kernel_frames(ns: &Netns, frames: &[(u8, u32)]) {
    let list: Vec<String> = frames.iter().map(|(d, s)| format!("({d},{s})")).collect();
    let script = format!(
        r#"
import socket, struct, time
def csum(b):
    s = sum(struct.unpack("!10H", b))
    s = (s & 0xffff) + (s >> 16)
    return ~((s & 0xffff) + (s >> 16)) & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
sent = {{}}
for dscp, seq in [{}]:
    if (dscp, seq) in sent:
        s.send(sent[(dscp, seq)])
        continue
    t = time.time()
    pg = struct.pack("!IIII", 0xbe9be955, seq, int(t), int(t * 1e6) % 1000000)
    udp = struct.pack("!HHHH", 1000, 9, 8 + len(pg), 0) + pg
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, dscp << 2, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    eth = bytes([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]) + struct.pack("!H", 0x0800)
    sent[(dscp, seq)] = (eth + ip + udp).ljust(60, b"\0")
    s.send(sent[(dscp, seq)])
"#,
        list.join(",")
    );
    let out = ns.exec("python3", &["-c", &script]).unwrap();
    assert!(out.status.success(), "sender failed: {out:?}");
}

#[test]
fn kernel_pktgen_frames_count_per_dscp_stream() {
    if !require_privileges("kernel_pktgen_frames_count_per_dscp_stream") {
        return;
    }
    // As two kernel threads would send them with `--mode kernel --threads 2`: thread 0
    // (DSCP 0) sends 1 2 4 (3 lost), thread 1 (DSCP 1) sends 1 2 2 3 (a duplicate).
    let frames = [(0, 1), (1, 1), (0, 2), (1, 2), (0, 4), (1, 2), (1, 3)];
    for mode in ["afpacket", "afxdp"] {
        let p = Pair::new(1);
        let rx = start_rx(&p.b, &["--mode", mode, "--count", "7"]);
        send_kernel_frames(&p.a, &frames);
        let r = finish(rx);
        assert_eq!(num(&r, "received"), 7, "{mode}: {r}");
        assert_eq!(num(&r, "kernel"), 7, "{mode}: {r}");
        assert_eq!(num(&r, "other"), 0, "{mode}: {r}");
        assert_eq!(num(&r, "lost"), 1, "{mode}: {r}");
        assert_eq!(num(&r, "dup"), 1, "{mode}: {r}");
        // Stamped on the wall clock to the microsecond: a latency was measured.
        let p50: f64 = field(&r, "lat_p50_us").unwrap().parse().unwrap();
        assert!(p50 > 0.0, "{mode}: {r}");
    }
}

#[test]
fn timeouts_bound_the_runs() {
    // An rx with nothing to receive stops at its duration.
    if !require_privileges("timeouts_bound_the_runs") {
        return;
    }
    let p = Pair::new(1);
    let t0 = std::time::Instant::now();
    let out =
        p.b.command(PKTGEN)
            .args([
                "rx",
                "--dev",
                "eth0",
                "--mode",
                "afpacket",
                "--duration",
                "0.5",
            ])
            .output()
            .unwrap();
    assert!(out.status.success());
    assert!(t0.elapsed() < Duration::from_secs(5));
    let r = String::from_utf8_lossy(&out.stdout);
    assert_eq!(num(&r, "received"), 0, "{r}");
}

#[test]
fn xdplive_sends_through_a_veth_whose_peer_has_napi_and_says_when_it_has_not() {
    if !require_privileges("xdplive_sends_through_a_veth") {
        return;
    }
    let p = Pair::new(1);
    // What it cannot send is refused before anything is sent, on any kernel.
    for (args, says) in [
        (&["--rate", "1000"][..], "--rate"),
        (&["--flows", "10", "--random"], "--random"),
        (&["--dst-port", "9-10"], "source port"),
    ] {
        let out = tx(
            &p.a,
            &[&["--mode", "xdplive", "--count", "10"][..], args].concat(),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
    }
    if !datapath::sys::bpf::XdpProgram::live_frames_allowed().unwrap() {
        // A kernel that refuses live frames: pktgen says so and names the other modes, and
        // sends nothing.
        eprintln!("this kernel refuses XDP live frames (EPERM): checking pktgen's refusal only");
        p.b.exec("ethtool", &["-K", "eth0", "gro", "on"]).unwrap();
        let before = rx_packets(&p.b);
        let out = tx(&p.a, &["--mode", "xdplive", "--count", "200000"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("refuses") && err.contains("--mode afxdp"),
            "{err}"
        );
        assert_eq!(rx_packets(&p.b), before);
        return;
    }
    // The peer without NAPI: the kernel drops every frame without a count, pktgen says why.
    let out = tx(&p.a, &["--mode", "xdplive", "--count", "200000"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NAPI") && err.contains("gro on"), "{err}");
    // GRO on the peer: NAPI, and every frame arrives (the device's count: at this rate the
    // receiver's socket drops some), with each flow's source port.
    p.b.exec("ethtool", &["-K", "eth0", "gro", "on"]).unwrap();
    let before = rx_packets(&p.b);
    let rx = start_rx(&p.b, &["--mode", "afpacket", "--count", "200000"]);
    let out = tx(
        &p.a,
        &["--mode", "xdplive", "--count", "200000", "--flows", "100"],
    );
    assert!(out.status.success(), "{out:?}");
    let t = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        (num(&t, "sent"), field(&t, "mode")),
        (200_000, Some("xdplive"))
    );
    assert_eq!(rx_packets(&p.b) - before, 200_000);
    let r = finish(rx);
    assert_eq!(num(&r, "flows"), 100, "{r}");
    // Each frame carries the next sequence number and the time it was made: the receiver
    // sees no repeats and no reordering, and what its socket dropped (at this rate it drops
    // some) as lost; latencies are there.
    assert_eq!((num(&r, "dup"), num(&r, "reordered")), (0, 0), "{r}");
    assert!(num(&r, "received") + num(&r, "lost") <= 200_000, "{r}");
    assert!(num(&r, "received") > 0, "{r}");
    assert!(
        field(&r, "lat_p50_us").is_some_and(|v| v.parse::<f64>().unwrap() > 0.0),
        "{r}"
    );
}
