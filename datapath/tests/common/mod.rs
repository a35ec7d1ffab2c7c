//! Support code of the privileged port tests (`afpacket`, `tap`, `afxdp`): the skip rule,
//! namespace and device guards whose `Drop` cleans up (also on panic), commands and python3
//! children inside a namespace, frame builders and parsers, checksum helpers, polling with a
//! timeout, and the scenarios the AF_PACKET and TAP tests run alike.
//!
//! Each test binary uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use datapath::buf::{Offload, RxBatch};
use datapath::port::{BackendDrops, Port};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice};

// ---------------------------------------------------------------------------------------------
// Environment

/// A field of `/proc/self/status`, trimmed (empty when missing).
fn status_field(name: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// True when the effective uid is 0.
pub fn euid_root() -> bool {
    status_field("Uid:").split_whitespace().nth(1) == Some("0")
}

/// True when the effective capabilities include `CAP_NET_ADMIN`.
pub fn cap_net_admin() -> bool {
    u64::from_str_radix(&status_field("CapEff:"), 16).unwrap_or(0) & (1 << 12) != 0
}

/// True when `program -V` can be started.
pub fn installed(program: &str) -> bool {
    Command::new(program).arg("-V").output().is_ok()
}

/// The rule of every privileged test: with nothing `missing` the test runs (true); otherwise it
/// is skipped with the reason printed (false), except under `CI=true`, where it fails instead.
pub fn run_or_skip(missing: Option<String>) -> bool {
    let Some(reason) = missing else {
        return true;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "privileged test cannot run under CI=true: {reason}"
    );
    eprintln!("skipping privileged test: {reason}");
    false
}

/// [`run_or_skip`] for the first unmet need, checked in order: root (`not_root` says what for),
/// each of `extra` (reason, check), then iproute2.
pub fn privileged(not_root: &str, extra: &[(&str, &dyn Fn() -> bool)]) -> bool {
    let missing = if euid_root() {
        extra
            .iter()
            .find(|(_, met)| !met())
            .map(|(reason, _)| (*reason).to_owned())
            .or_else(|| (!installed("ip")).then(|| "iproute2 (`ip`) is not installed".to_owned()))
    } else {
        Some(not_root.to_owned())
    };
    run_or_skip(missing)
}

/// The python3 to run scripts with.
pub fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

// ---------------------------------------------------------------------------------------------
// Commands and guards

/// Runs `argv`, panicking with its stderr when it fails; returns its stdout.
pub fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawn {argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{} failed: {}",
        argv.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True when `argv` succeeds; its output is discarded.
pub fn quiet(argv: &[&str]) -> bool {
    Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `["ip", args…]`
fn ip_argv<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec!["ip"];
    argv.extend_from_slice(args);
    argv
}

/// Runs `ip args…` and panics with its stderr on failure.
pub fn ip(args: &[&str]) {
    run(&ip_argv(args));
}

/// True when `ip args…` succeeds.
pub fn ip_ok(args: &[&str]) -> bool {
    quiet(&ip_argv(args))
}

/// A network namespace; deleted (with every virtual device in it) on drop.
#[derive(Debug)]
pub struct Netns(pub String);

impl Netns {
    /// Creates namespace `name` (replacing a leftover of that name) with IPv6 off by default, to
    /// keep autoconfiguration chatter off the test's device.
    pub fn new(name: String) -> Self {
        let _ = ip_ok(&["netns", "del", &name]);
        ip(&["netns", "add", &name]);
        let ns = Self(name);
        for conf in ["all", "default"] {
            let _ = ns.exec(&[
                "sh",
                "-c",
                &format!("echo 1 > /proc/sys/net/ipv6/conf/{conf}/disable_ipv6"),
            ]);
        }
        ns
    }

    /// `["ip", "netns", "exec", NS, argv…]`
    fn argv<'a>(&'a self, argv: &[&'a str]) -> Vec<&'a str> {
        let mut full = vec!["ip", "netns", "exec", &self.0];
        full.extend_from_slice(argv);
        full
    }

    /// True when `argv` succeeds inside; its output is discarded.
    pub fn exec(&self, argv: &[&str]) -> bool {
        quiet(&self.argv(argv))
    }

    /// Runs `argv` inside, panicking with its stderr when it fails; returns its stdout.
    pub fn run(&self, argv: &[&str]) -> String {
        run(&self.argv(argv))
    }

    /// `ip -n NS args…`, panicking on failure.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.0.as_str()];
        full.extend_from_slice(args);
        ip(&full);
    }

    /// Spawns `python3 -c code` inside with stdout piped and stderr as given.
    pub fn spawn_python(&self, code: &str, stderr: Stdio) -> Child {
        let argv = self.argv(&[python(), "-c", code]);
        Command::new(argv[0])
            .args(&argv[1..])
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn python3 in namespace")
    }

    /// Starts `python3 -c code` inside with piped stdout; killed on drop.
    pub fn python(&self, code: &str) -> Proc {
        Proc::new(self.spawn_python(code, Stdio::inherit()))
    }

    /// Gives `dev` (inside) `net.ns_ip/24`, brings it and `lo` up, and adds a permanent
    /// neighbour entry for the imaginary peer, which the test answers for through the port.
    pub fn configure(&self, dev: &str, net: &Net) {
        self.ip(&["addr", "add", &format!("{}/24", net.ns_addr()), "dev", dev]);
        self.ip(&["link", "set", dev, "up"]);
        self.ip(&["link", "set", "lo", "up"]);
        self.ip(&[
            "neigh",
            "add",
            &net.peer_addr(),
            "lladdr",
            &fmt_mac(net.peer_mac),
            "dev",
            dev,
            "nud",
            "permanent",
        ]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !ip_ok(&["netns", "del", &self.0]) {
            eprintln!("cleanup failed: run `ip netns del {}`", self.0);
        }
    }
}

/// Deletes a host-namespace device on drop (if it is still there).
#[derive(Debug)]
pub struct Link(pub String);

impl Drop for Link {
    fn drop(&mut self) {
        if Path::new("/sys/class/net").join(&self.0).exists() {
            let _ = ip_ok(&["link", "del", &self.0]);
        }
    }
}

/// Creates the veth pair `host` ↔ `peer` (with `queues` rx and tx queues on each end, if
/// given), moves `peer` into `ns`, and brings `host` up with IPv6 off so the host stack stays
/// quiet. The caller holds the guards ([`Link`] for `host`, `ns`).
pub fn veth_into(ns: &Netns, host: &str, peer: &str, queues: Option<usize>) {
    veth_into_queues(ns, host, peer, queues.map(|q| (q, q)));
}

/// [`veth_into`] with `(rx, tx)` queues on each end (`None`: ip's default).
pub fn veth_into_queues(ns: &Netns, host: &str, peer: &str, queues: Option<(usize, usize)>) {
    let q = queues.map(|(r, t)| (r.to_string(), t.to_string()));
    let mut add = vec!["link", "add", host];
    if let Some((r, t)) = &q {
        add.extend(["numrxqueues", r, "numtxqueues", t]);
    }
    add.extend(["type", "veth", "peer", "name", peer]);
    if let Some((r, t)) = &q {
        add.extend(["numrxqueues", r, "numtxqueues", t]);
    }
    ip(&add);
    ip(&["link", "set", peer, "netns", &ns.0]);
    std::fs::write(format!("/proc/sys/net/ipv6/conf/{host}/disable_ipv6"), "1")
        .expect("disable IPv6 on the host end");
    ip(&["link", "set", host, "up"]);
}

/// A child process the test started; killed on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Proc {
    fn new(mut child: Child) -> Self {
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        Self { child, out }
    }

    /// The next line the child prints (blocking; the scripts time out themselves).
    pub fn line(&mut self) -> String {
        let mut s = String::new();
        self.out.read_line(&mut s).expect("read child stdout");
        s.trim_end().to_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Addresses

/// The addresses of a test link: the namespace's end and the imaginary peer behind the port,
/// which the test answers for.
#[derive(Debug, Clone, Copy)]
pub struct Net {
    /// MAC address the test answers with.
    pub peer_mac: [u8; 6],
    /// The imaginary peer's address.
    pub peer_ip: [u8; 4],
    /// The namespace's address.
    pub ns_ip: [u8; 4],
}

impl Net {
    /// The namespace's address, dotted.
    pub fn ns_addr(&self) -> String {
        dotted(self.ns_ip)
    }

    /// The peer's address, dotted.
    pub fn peer_addr(&self) -> String {
        dotted(self.peer_ip)
    }

    /// A UDP frame (source port 5555) from the peer to the namespace.
    pub fn udp_frame(&self, dst_mac: [u8; 6], dport: u16, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(self.peer_mac, dst_mac)
            .ipv4(self.peer_ip, self.ns_ip, 64)
            .udp(5555, dport);
        let mut v = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut v, payload).expect("build udp frame");
        v
    }

    /// A TCP frame from the peer to the namespace.
    pub fn tcp_frame(
        &self,
        dst_mac: [u8; 6],
        ports: (u16, u16),
        seq: u32,
        ack: Option<u32>,
        syn: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2(self.peer_mac, dst_mac)
            .ipv4(self.peer_ip, self.ns_ip, 64)
            .tcp(ports.0, ports.1, seq, 65535);
        if syn {
            b = b
                .syn()
                .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
                .expect("mss option");
        }
        if let Some(a) = ack {
            b = b.ack(a);
        }
        let mut v = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut v, payload).expect("build tcp frame");
        v
    }
}

/// `a.b.c.d`
pub fn dotted(ip: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(ip).to_string()
}

/// `aa:bb:cc:dd:ee:ff`
pub fn fmt_mac(mac: [u8; 6]) -> String {
    datapath::wire::Mac(mac).to_string()
}

/// Parses `aa:bb:cc:dd:ee:ff` (surrounding whitespace allowed).
pub fn parse_mac(s: &str) -> [u8; 6] {
    s.trim().parse::<datapath::wire::Mac>().expect("hex MAC").0
}

/// The MAC address of host-namespace device `dev`.
pub fn mac_of(dev: &str) -> [u8; 6] {
    parse_mac(&std::fs::read_to_string(format!("/sys/class/net/{dev}/address")).expect("read MAC"))
}

// ---------------------------------------------------------------------------------------------
// Polling

/// Checks `cond` every `step` until it holds (true) or `timeout` has passed (false).
pub fn wait_until(timeout: Duration, step: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(step);
    }
}

/// Polls queue 0 of `port` until `visit` says to stop or `timeout` passes. `visit` sees each
/// burst (with the count `rx_burst` returned) before the batch is released; after an empty
/// burst the loop sleeps 1 ms.
pub fn poll_rx<P: Port>(
    port: &mut P,
    timeout: Duration,
    mut visit: impl FnMut(&P, &RxBatch, usize) -> bool,
) {
    let mut batch = RxBatch::new();
    wait_until(timeout, Duration::ZERO, || {
        batch.clear();
        let n = port.rx_burst(0, &mut batch).expect("rx_burst");
        let stop = visit(port, &batch, n);
        port.rx_release(0, &batch);
        if !stop && n == 0 {
            // What a worker does between polls: housekeeping about once a millisecond.
            port.maintain();
            std::thread::sleep(Duration::from_millis(1));
        }
        stop
    });
}

/// Polls the port until `pred` accepts a frame or `timeout` passes.
pub fn rx_until(
    port: &mut impl Port,
    timeout: Duration,
    mut pred: impl FnMut(&[u8], &Offload) -> bool,
) -> Option<(Vec<u8>, Offload)> {
    let mut found = None;
    poll_rx(port, timeout, |port, batch, _| {
        for d in batch.descs() {
            let f = port.frame(d);
            assert_eq!(f.len(), d.len as usize);
            if found.is_none() && pred(f, &d.offload) {
                found = Some((f.to_vec(), d.offload));
            }
        }
        found.is_some()
    });
    found
}

// ---------------------------------------------------------------------------------------------
// Frames

/// (source port, destination port, payload) of a UDP frame.
pub fn udp_of(frame: &[u8]) -> Option<(u16, u16, Vec<u8>)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    match p.transport? {
        TransportSlice::Udp(u) => {
            Some((u.source_port(), u.destination_port(), u.payload().to_vec()))
        }
        _ => None,
    }
}

/// (source port, destination port, seq, ack, syn, ack flag, payload length) of a TCP frame.
pub fn tcp_of(frame: &[u8]) -> Option<(u16, u16, u32, u32, bool, bool, usize)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    if !matches!(p.net, Some(NetSlice::Ipv4(_))) {
        return None;
    }
    match p.transport? {
        TransportSlice::Tcp(t) => Some((
            t.source_port(),
            t.destination_port(),
            t.sequence_number(),
            t.acknowledgment_number(),
            t.syn(),
            t.ack(),
            t.payload().len(),
        )),
        _ => None,
    }
}

/// One's-complement sum of `data` (16-bit big-endian words, odd byte padded).
pub fn ones_sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

/// Folds the carries of a one's-complement sum into 16 bits.
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Completes a partial checksum the way a NIC does: sum from `csum_start` to the end (the
/// field holds the pseudo-header sum) and store the complement at `csum_start + csum_offset`.
pub fn complete_csum(frame: &mut [u8], o: &Offload) {
    let start = usize::from(o.csum_start);
    let at = start + usize::from(o.csum_offset);
    let c = !fold(ones_sum(&frame[start..], 0));
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// True when the IPv4 UDP/TCP checksum of `frame` verifies.
pub fn l4_csum_ok(frame: &[u8]) -> bool {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let l4 = &frame[14 + ihl..14 + total];
    fold(ones_sum(l4, pseudo_header_sum(frame, frame[23], l4.len()))) == 0xffff
}

/// One's-complement sum of the IPv4 pseudo-header of `frame`: addresses, `proto`, `l4_len`.
fn pseudo_header_sum(frame: &[u8], proto: u8, l4_len: usize) -> u32 {
    ones_sum(&frame[26..34], 0) + u32::from(proto) + l4_len as u32
}

/// Stores the pseudo-header sum of an IPv4 frame without options (L4 protocol `proto`) in the
/// checksum field `o` points at, as a sender leaving the checksum to the NIC does; returns `o`.
fn with_partial_csum(frame: &mut [u8], proto: u8, o: Offload) -> Offload {
    let start = usize::from(o.csum_start);
    let at = start + usize::from(o.csum_offset);
    let sum = pseudo_header_sum(frame, proto, frame.len() - start);
    frame[at..at + 2].copy_from_slice(&fold(sum).to_be_bytes());
    o
}

/// Turns a complete UDP/IPv4 frame into one with a partial checksum (the field holds the
/// pseudo-header sum) and the offload state that says so.
pub fn make_partial_udp(frame: &mut [u8]) -> Offload {
    with_partial_csum(
        frame,
        17,
        Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 6,
            ..Offload::NONE
        },
    )
}

/// Turns a complete TCP/IPv4 frame (no IP options) into a TSO super-frame: partial checksum
/// (pseudo-header sum in the field) and the offload state for `mss`-byte segments.
pub fn make_tso(frame: &mut [u8], mss: u16) -> Offload {
    with_partial_csum(
        frame,
        6,
        Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4,
            hdr_len: 54,
            gso_size: mss,
            csum_start: 34,
            csum_offset: 16,
        },
    )
}

/// Offload state with a GSO type the kernel does not know: it refuses the frame.
pub const BAD_GSO: Offload = Offload {
    gso_type: 7,
    gso_size: 100,
    ..Offload::NONE
};

/// Enqueues one frame and flushes.
pub fn send(port: &mut impl Port, frame: &[u8], o: &Offload) {
    assert!(port.tx_enqueue(frame, o), "tx queue has room");
    port.tx_flush().expect("tx_flush");
}

// ---------------------------------------------------------------------------------------------
// Scenarios shared by the AF_PACKET and TAP tests: `port` carries the namespace `ns`'s end
// (MAC `ns_mac`) of `net`; `label` names the backend in what is printed.

/// A UDP datagram sent in the namespace arrives on the port with its payload, between the right
/// MACs, with a partial checksum whose offsets count from the Ethernet header and which
/// completes to the right checksum.
pub fn udp_from_ns_arrives_with_a_partial_checksum(
    port: &mut impl Port,
    ns: &Netns,
    net: &Net,
    ns_mac: [u8; 6],
) {
    let peer = net.peer_addr();
    let _p = ns.python(&format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.sendto(b'hello-from-ns', ('{peer}', 9999))\n"
    ));
    let (mut frame, o) = rx_until(port, Duration::from_secs(10), |f, _| {
        udp_of(f).is_some_and(|(_, d, _)| d == 9999)
    })
    .expect("the UDP datagram arrives on the port");
    let (_, _, payload) = udp_of(&frame).expect("udp");
    assert_eq!(payload, b"hello-from-ns");
    assert_eq!(&frame[0..6], &net.peer_mac);
    assert_eq!(&frame[6..12], &ns_mac);
    assert!(o.needs_csum(), "partial checksum expected, got {o:?}");
    assert!(!o.is_gso());
    assert_eq!((o.csum_start, o.csum_offset), (34, 6));
    complete_csum(&mut frame, &o);
    assert!(
        l4_csum_ok(&frame),
        "completing from csum_start gives the right checksum"
    );
}

/// A TCP stream sent in the namespace (the test answering as the peer and acknowledging what
/// arrives, so the window opens) arrives as TSO super-frames larger than the MTU.
pub fn tcp_from_ns_arrives_as_gso_super_frames(
    port: &mut impl Port,
    ns: &Netns,
    net: &Net,
    ns_mac: [u8; 6],
    label: &str,
) {
    let peer = net.peer_addr();
    let _p = ns.python(&format!(
        "import socket, time\n\
         s = socket.create_connection(('{peer}', 8080), timeout=10)\n\
         s.settimeout(10)\n\
         try:\n    s.sendall(b'x' * 1000000)\n\
         except Exception:\n    pass\n\
         time.sleep(10)\n"
    ));
    // The namespace's SYN.
    let (syn, _) = rx_until(port, Duration::from_secs(10), |f, _| {
        tcp_of(f).is_some_and(|t| t.1 == 8080 && t.4 && !t.5)
    })
    .expect("SYN from the namespace");
    let (sport, _, isn, _, _, _, _) = tcp_of(&syn).expect("tcp");
    let reply = |seq: u32, ack: u32, syn: bool| {
        net.tcp_frame(ns_mac, (8080, sport), seq, Some(ack), syn, &[])
    };
    send(
        port,
        &reply(1000, isn.wrapping_add(1), true),
        &Offload::NONE,
    );
    // Acknowledge what arrives so the window opens, until a super-frame shows up.
    let mut acked = isn.wrapping_add(1);
    let mut largest = 0usize;
    let mut gso_seen = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while gso_seen.is_none() && Instant::now() < deadline {
        let Some((f, o)) = rx_until(port, Duration::from_millis(200), |f, _| {
            tcp_of(f).is_some_and(|t| t.0 == sport && t.6 > 0)
        }) else {
            continue;
        };
        let (_, _, seq, _, _, _, len) = tcp_of(&f).expect("tcp");
        largest = largest.max(f.len());
        if f.len() > 1514 {
            gso_seen = Some((f.len(), o));
        }
        let end = seq.wrapping_add(len as u32);
        if end.wrapping_sub(acked) < 1 << 30 {
            acked = end;
        }
        send(port, &reply(1001, acked, false), &Offload::NONE);
    }
    let (len, o) = gso_seen.unwrap_or_else(|| panic!("no frame > 1514 bytes (largest {largest})"));
    eprintln!("{label}: TCP super-frame of {len} bytes, offload {o:?}");
    assert!(o.is_gso(), "{o:?}");
    assert_eq!(o.gso_type & !Offload::GSO_ECN, Offload::GSO_TCPV4);
    assert_eq!(o.gso_size, 1460);
    assert!(o.needs_csum());
    assert_eq!((o.csum_start, o.csum_offset), (34, 16));
    assert_eq!(o.hdr_len, 54, "Ethernet + IPv4 + TCP without options");
}

/// A UDP GSO send of five 1000-byte segments in the namespace arrives as one USO super-frame.
pub fn udp_gso_from_ns_arrives_as_one_uso_super_frame(
    port: &mut impl Port,
    ns: &Netns,
    net: &Net,
    label: &str,
) {
    let peer = net.peer_addr();
    let _p = ns.python(&format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.IPPROTO_UDP, 103, 1000)  # UDP_SEGMENT\n\
         s.sendto(b'u' * 5000, ('{peer}', 9997))\n"
    ));
    let (frame, o) = rx_until(port, Duration::from_secs(10), |f, _| {
        udp_of(f).is_some_and(|(_, d, _)| d == 9997)
    })
    .expect("the UDP GSO datagram arrives on the port");
    eprintln!(
        "{label}: UDP GSO super-frame of {} bytes, offload {o:?}",
        frame.len()
    );
    assert_eq!(
        frame.len(),
        14 + 20 + 8 + 5000,
        "one frame for five segments"
    );
    assert_eq!(udp_of(&frame).expect("udp").2, vec![b'u'; 5000]);
    assert_eq!(o.gso_type, Offload::GSO_UDP_L4);
    assert_eq!((o.gso_size, o.hdr_len), (1000, 42));
    assert!(o.needs_csum());
    assert_eq!((o.csum_start, o.csum_offset), (34, 6));
}

/// After a handshake driven by the test, one 20000-byte TSO super-frame sent through the port
/// reaches a TCP socket in the namespace whole.
pub fn a_tso_super_frame_reaches_a_tcp_socket_in_the_namespace(
    port: &mut impl Port,
    ns: &Netns,
    net: &Net,
    ns_mac: [u8; 6],
) {
    let addr = net.ns_addr();
    let mut p = ns.python(&format!(
        "import socket\n\
         l = socket.socket()\n\
         l.bind(('{addr}', 8081))\n\
         l.listen(1)\n\
         l.settimeout(10)\n\
         print('ready', flush=True)\n\
         c, _ = l.accept()\n\
         c.settimeout(10)\n\
         n = 0\n\
         while n < 20000:\n    d = c.recv(65536)\n    if not d:\n        break\n    n += len(d)\n\
         print(n, flush=True)\n"
    ));
    assert_eq!(p.line(), "ready");
    let ports = (40000, 8081);
    send(
        port,
        &net.tcp_frame(ns_mac, ports, 5000, None, true, &[]),
        &Offload::NONE,
    );
    let (synack, _) = rx_until(port, Duration::from_secs(10), |f, _| {
        tcp_of(f).is_some_and(|t| t.0 == 8081 && t.4 && t.5)
    })
    .expect("SYN-ACK from the namespace");
    let isn = tcp_of(&synack).expect("tcp").2;
    let ack = Some(isn.wrapping_add(1));
    send(
        port,
        &net.tcp_frame(ns_mac, ports, 5001, ack, false, &[]),
        &Offload::NONE,
    );
    // 20000 bytes in one frame: the kernel takes the virtio-net header as the GSO state.
    let mut big = net.tcp_frame(ns_mac, ports, 5001, ack, false, &[b'z'; 20000]);
    let o = make_tso(&mut big, 1460);
    send(port, &big, &o);
    assert_eq!(port.take_backend_drops().total(), 0);
    assert_eq!(p.line(), "20000");
}

/// Frames sent through the port reach a UDP socket in the namespace: a complete one, one with a
/// partial checksum and the offload state saying so, then in one flush the `refused` frames
/// (each dropped and counted, the flush reporting `EINVAL`) and one that still goes out.
pub fn frames_sent_through_the_port_reach_a_socket_in_the_namespace(
    port: &mut impl Port,
    ns: &Netns,
    net: &Net,
    ns_mac: [u8; 6],
    refused: &[(Vec<u8>, Offload)],
) {
    let addr = net.ns_addr();
    let mut p = ns.python(&format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('{addr}', 7777))\n\
         s.settimeout(10)\n\
         print('ready', flush=True)\n\
         for _ in range(3):\n    print(s.recvfrom(2048)[0].decode(), flush=True)\n"
    ));
    assert_eq!(p.line(), "ready");
    send(
        port,
        &net.udp_frame(ns_mac, 7777, b"complete"),
        &Offload::NONE,
    );
    assert_eq!(p.line(), "complete");
    let mut partial = net.udp_frame(ns_mac, 7777, b"partial");
    let o = make_partial_udp(&mut partial);
    send(port, &partial, &o);
    assert_eq!(p.line(), "partial");
    assert_eq!(port.take_backend_drops().total(), 0);
    for (frame, o) in refused {
        assert!(port.tx_enqueue(frame, o));
    }
    assert!(port.tx_enqueue(&net.udp_frame(ns_mac, 7777, b"after"), &Offload::NONE));
    let err = port.tx_flush().expect_err("the bad frame is reported");
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    // Frames the device refused: transmit drops, each (not receive drops of any cause).
    assert_eq!(
        port.take_backend_drops(),
        BackendDrops::other(0, refused.len() as u64)
    );
    assert_eq!(p.line(), "after");
}
