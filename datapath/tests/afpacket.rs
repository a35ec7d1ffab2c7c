//! Privileged tests of the AF_PACKET port on a veth pair.
//!
//! Each test makes its own veth pair: the host end (`vp<tag><pid>`, up, no address, IPv6 off so
//! the host stack stays quiet) carries the port; the peer (`vq<tag><pid>`) sits in the test's
//! namespace (`vp<tag><pid>ns`) with an address and a permanent neighbour entry for a peer that
//! only exists in the test, which answers for it through the port. `Drop` guards delete
//! everything, also on panic. Without root the tests print why and pass, unless `CI=true`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use datapath::buf::{Offload, RxBatch};
use datapath::port::afpacket::{AfPacketOptions, AfPacketPort};
use datapath::port::{Port, PortError, PortKind};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice};

/// MAC address the test answers with (the imaginary peer of the namespace).
const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x78, 0x02];
/// MAC address of the namespace's end of the veth.
const NS_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x78, 0x01];
/// The namespace's address.
const NS_IP: [u8; 4] = [10, 78, 0, 1];
/// The imaginary peer's address.
const PEER_IP: [u8; 4] = [10, 78, 0, 2];

// ---------------------------------------------------------------------------------------------
// Environment

/// True when the test can run; otherwise prints why (or panics under `CI=true`).
fn privileged() -> bool {
    let euid_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    let reason = if !euid_root {
        "not root (needs CAP_NET_ADMIN and CAP_NET_RAW for veths, namespaces and packet sockets)"
    } else if Command::new("ip").arg("-V").output().is_err() {
        "iproute2 (`ip`) is not installed"
    } else {
        return true;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "privileged test cannot run under CI=true: {reason}"
    );
    eprintln!("skipping privileged test: {reason}");
    false
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Runs `ip args…` and panics with its stderr on failure.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// True when `ip args…` succeeds.
fn ip_ok(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Deletes a namespace (and every virtual device in it) on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Self {
        let _ = ip_ok(&["netns", "del", &name]);
        ip(&["netns", "add", &name]);
        let ns = Self(name);
        // Keep IPv6 autoconfiguration chatter off the veth.
        for conf in ["all", "default"] {
            let _ = ns.exec(&[
                "sh",
                "-c",
                &format!("echo 1 > /proc/sys/net/ipv6/conf/{conf}/disable_ipv6"),
            ]);
        }
        ns
    }

    fn exec(&self, argv: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts `python3 -c code` inside the namespace with piped stdout.
    fn python(&self, code: &str) -> Proc {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.0, python(), "-c", code])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python3 in namespace");
        Proc::new(child)
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
struct Link(String);

impl Drop for Link {
    fn drop(&mut self) {
        if Path::new("/sys/class/net").join(&self.0).exists() {
            let _ = ip_ok(&["link", "del", &self.0]);
        }
    }
}

/// A child process the test started; killed on drop.
struct Proc {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Proc {
    fn new(mut child: Child) -> Self {
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        Self { child, out }
    }

    /// The next line the child prints (blocking; the scripts time out themselves).
    fn line(&mut self) -> String {
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

fn names(tag: char) -> (String, String, String) {
    let pid = std::process::id();
    (
        format!("vp{tag}{pid}"),
        format!("vq{tag}{pid}"),
        format!("vp{tag}{pid}ns"),
    )
}

/// A veth pair: host end up without addresses, peer end in its own namespace.
struct Setup {
    host: String,
    ns: Netns,
    _link: Link,
}

fn setup(tag: char) -> Setup {
    let (host, peer, ns_name) = names(tag);
    let link = Link(host.clone());
    let ns = Netns::new(ns_name);
    ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer]);
    ip(&["link", "set", &peer, "netns", &ns.0]);
    std::fs::write(format!("/proc/sys/net/ipv6/conf/{host}/disable_ipv6"), "1")
        .expect("disable IPv6 on the host end");
    ip(&["link", "set", &host, "up"]);
    let mac = |m: [u8; 6]| m.map(|b| format!("{b:02x}")).join(":");
    ip(&["-n", &ns.0, "link", "set", &peer, "address", &mac(NS_MAC)]);
    ip(&["-n", &ns.0, "addr", "add", "10.78.0.1/24", "dev", &peer]);
    ip(&["-n", &ns.0, "link", "set", &peer, "up"]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    ip(&[
        "-n",
        &ns.0,
        "neigh",
        "add",
        "10.78.0.2",
        "lladdr",
        &mac(PEER_MAC),
        "dev",
        &peer,
        "nud",
        "permanent",
    ]);
    Setup {
        host,
        ns,
        _link: link,
    }
}

// ---------------------------------------------------------------------------------------------
// Frames

/// Polls the port until `pred` accepts a frame or `timeout` passes.
fn rx_until(
    port: &mut impl Port,
    timeout: Duration,
    mut pred: impl FnMut(&[u8], &Offload) -> bool,
) -> Option<(Vec<u8>, Offload)> {
    let deadline = Instant::now() + timeout;
    let mut batch = RxBatch::new();
    while Instant::now() < deadline {
        batch.clear();
        let n = port.rx_burst(0, &mut batch).expect("rx_burst");
        let mut found = None;
        for d in batch.descs() {
            let f = port.frame(d);
            assert_eq!(f.len(), d.len as usize);
            if found.is_none() && pred(f, &d.offload) {
                found = Some((f.to_vec(), d.offload));
            }
        }
        port.rx_release(0, &batch);
        if found.is_some() {
            return found;
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    None
}

fn udp_of(frame: &[u8]) -> Option<(u16, u16, Vec<u8>)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    match p.transport? {
        TransportSlice::Udp(u) => {
            Some((u.source_port(), u.destination_port(), u.payload().to_vec()))
        }
        _ => None,
    }
}

/// (source port, destination port, seq, ack, syn, ack flag, payload length) of a TCP frame.
fn tcp_of(frame: &[u8]) -> Option<(u16, u16, u32, u32, bool, bool, usize)> {
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
fn ones_sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Completes a partial checksum the way a NIC does: sum from `csum_start` to the end (the
/// field holds the pseudo-header sum) and store the complement at `csum_start + csum_offset`.
fn complete_csum(frame: &mut [u8], o: &Offload) {
    let start = usize::from(o.csum_start);
    let at = start + usize::from(o.csum_offset);
    let c = !fold(ones_sum(&frame[start..], 0));
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// True when the IPv4 UDP/TCP checksum of `frame` verifies.
fn l4_csum_ok(frame: &[u8]) -> bool {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let l4 = &frame[14 + ihl..14 + total];
    let mut acc = ones_sum(&frame[26..34], 0);
    acc += u32::from(frame[23]);
    acc += l4.len() as u32;
    fold(ones_sum(l4, acc)) == 0xffff
}

fn udp_frame(dst_mac: [u8; 6], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(PEER_MAC, dst_mac)
        .ipv4(PEER_IP, NS_IP, 64)
        .udp(5555, dport);
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).expect("build udp frame");
    v
}

/// Turns a complete UDP/IPv4 frame into one with a partial checksum (the field holds the
/// pseudo-header sum) and the offload state that says so.
fn make_partial_udp(frame: &mut [u8]) -> Offload {
    let udp_len = frame.len() - 34;
    let mut acc = ones_sum(&frame[26..34], 0);
    acc += 17;
    acc += udp_len as u32;
    frame[40..42].copy_from_slice(&fold(acc).to_be_bytes());
    Offload {
        flags: Offload::F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 6,
        ..Offload::NONE
    }
}

/// A TCP frame from the imaginary peer to the namespace.
fn tcp_frame(
    dst_mac: [u8; 6],
    ports: (u16, u16),
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(PEER_MAC, dst_mac)
        .ipv4(PEER_IP, NS_IP, 64)
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

/// Turns a complete TCP/IPv4 frame (no IP options) into a TSO super-frame: partial checksum
/// (pseudo-header sum in the field) and the offload state for `mss`-byte segments.
fn make_tso(frame: &mut [u8], mss: u16) -> Offload {
    let tcp_len = frame.len() - 34;
    let mut acc = ones_sum(&frame[26..34], 0);
    acc += 6;
    acc += tcp_len as u32;
    frame[50..52].copy_from_slice(&fold(acc).to_be_bytes());
    Offload {
        flags: Offload::F_NEEDS_CSUM,
        gso_type: Offload::GSO_TCPV4,
        hdr_len: 54,
        gso_size: mss,
        csum_start: 34,
        csum_offset: 16,
    }
}

fn send(port: &mut impl Port, frame: &[u8], o: &Offload) {
    assert!(port.tx_enqueue(frame, o), "tx queue has room");
    port.tx_flush().expect("tx_flush");
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn udp_sent_in_the_namespace_arrives_with_its_payload_and_partial_checksum() {
    if !privileged() {
        return;
    }
    let s = setup('a');
    let mut port = AfPacketPort::open(&s.host).expect("open afpacket port");
    assert_eq!(port.kind(), PortKind::AfPacket);
    assert!(
        port.has_vnet_hdr(),
        "PACKET_VNET_HDR is available on this kernel"
    );
    assert!(port.caps().tx_offload);
    assert_eq!(port.caps().max_frame_len, 1514);
    assert!(port.rx_fd(0).is_some());
    let _p = s.ns.python(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.sendto(b'hello-from-ns', ('10.78.0.2', 9999))\n",
    );
    let (mut frame, o) = rx_until(&mut port, Duration::from_secs(10), |f, _| {
        udp_of(f).is_some_and(|(_, d, _)| d == 9999)
    })
    .expect("the UDP datagram arrives on the port");
    let (_, _, payload) = udp_of(&frame).expect("udp");
    assert_eq!(payload, b"hello-from-ns");
    assert_eq!(&frame[0..6], &PEER_MAC);
    assert_eq!(&frame[6..12], &NS_MAC);
    // The veth peer checksums nothing (CHECKSUM_PARTIAL): the virtio-net header says so, with
    // csum_start counted from the Ethernet header.
    assert!(o.needs_csum(), "partial checksum expected, got {o:?}");
    assert!(!o.is_gso());
    assert_eq!((o.csum_start, o.csum_offset), (34, 6));
    complete_csum(&mut frame, &o);
    assert!(
        l4_csum_ok(&frame),
        "completing from csum_start gives the right checksum"
    );
}

#[test]
fn tcp_sent_in_the_namespace_arrives_as_gso_super_frames() {
    if !privileged() {
        return;
    }
    let s = setup('b');
    let mut port = AfPacketPort::open(&s.host).expect("open afpacket port");
    let _p = s.ns.python(
        "import socket, time\n\
         s = socket.create_connection(('10.78.0.2', 8080), timeout=10)\n\
         s.settimeout(10)\n\
         try:\n    s.sendall(b'x' * 1000000)\n\
         except Exception:\n    pass\n\
         time.sleep(10)\n",
    );
    let (syn, _) = rx_until(&mut port, Duration::from_secs(10), |f, _| {
        tcp_of(f).is_some_and(|t| t.1 == 8080 && t.4 && !t.5)
    })
    .expect("SYN from the namespace");
    let (sport, _, isn, _, _, _, _) = tcp_of(&syn).expect("tcp");
    let reply = |seq: u32, ack: u32, syn: bool| {
        let mut b = PacketBuilder::ethernet2(PEER_MAC, NS_MAC)
            .ipv4(PEER_IP, NS_IP, 64)
            .tcp(8080, sport, seq, 65535);
        if syn {
            b = b
                .syn()
                .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
                .expect("mss option");
        }
        let b = b.ack(ack);
        let mut v = Vec::new();
        b.write(&mut v, &[]).expect("build tcp frame");
        v
    };
    send(
        &mut port,
        &reply(1000, isn.wrapping_add(1), true),
        &Offload::NONE,
    );
    let mut acked = isn.wrapping_add(1);
    let mut largest = 0usize;
    let mut gso_seen = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while gso_seen.is_none() && Instant::now() < deadline {
        let Some((f, o)) = rx_until(&mut port, Duration::from_millis(200), |f, _| {
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
        send(&mut port, &reply(1001, acked, false), &Offload::NONE);
    }
    let (len, o) = gso_seen.unwrap_or_else(|| panic!("no frame > 1514 bytes (largest {largest})"));
    eprintln!("afpacket: TCP super-frame of {len} bytes, offload {o:?}");
    assert!(o.is_gso(), "{o:?}");
    assert_eq!(o.gso_type & !Offload::GSO_ECN, Offload::GSO_TCPV4);
    assert_eq!(o.gso_size, 1460);
    assert!(o.needs_csum());
    assert_eq!((o.csum_start, o.csum_offset), (34, 16));
    assert_eq!(o.hdr_len, 54, "Ethernet + IPv4 + TCP without options");
}

#[test]
fn udp_gso_sent_in_the_namespace_arrives_as_one_uso_super_frame() {
    if !privileged() {
        return;
    }
    let s = setup('u');
    let mut port = AfPacketPort::open(&s.host).expect("open afpacket port");
    let _p = s.ns.python(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.IPPROTO_UDP, 103, 1000)  # UDP_SEGMENT\n\
         s.sendto(b'u' * 5000, ('10.78.0.2', 9997))\n",
    );
    let (frame, o) = rx_until(&mut port, Duration::from_secs(10), |f, _| {
        udp_of(f).is_some_and(|(_, d, _)| d == 9997)
    })
    .expect("the UDP GSO datagram arrives on the port");
    eprintln!(
        "afpacket: UDP GSO super-frame of {} bytes, offload {o:?}",
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

#[test]
fn a_tso_super_frame_sent_through_the_port_reaches_a_tcp_socket_in_the_namespace() {
    if !privileged() {
        return;
    }
    let s = setup('g');
    let mut port = AfPacketPort::open(&s.host).expect("open afpacket port");
    let mut p = s.ns.python(
        "import socket\n\
         l = socket.socket()\n\
         l.bind(('10.78.0.1', 8081))\n\
         l.listen(1)\n\
         l.settimeout(10)\n\
         print('ready', flush=True)\n\
         c, _ = l.accept()\n\
         c.settimeout(10)\n\
         n = 0\n\
         while n < 20000:\n    d = c.recv(65536)\n    if not d:\n        break\n    n += len(d)\n\
         print(n, flush=True)\n",
    );
    assert_eq!(p.line(), "ready");
    let ports = (40000, 8081);
    send(
        &mut port,
        &tcp_frame(NS_MAC, ports, 5000, None, true, &[]),
        &Offload::NONE,
    );
    let (synack, _) = rx_until(&mut port, Duration::from_secs(10), |f, _| {
        tcp_of(f).is_some_and(|t| t.0 == 8081 && t.4 && t.5)
    })
    .expect("SYN-ACK from the namespace");
    let isn = tcp_of(&synack).expect("tcp").2;
    let ack = Some(isn.wrapping_add(1));
    send(
        &mut port,
        &tcp_frame(NS_MAC, ports, 5001, ack, false, &[]),
        &Offload::NONE,
    );
    // 20000 bytes in one frame: the kernel takes the virtio-net header as the GSO state.
    let mut big = tcp_frame(NS_MAC, ports, 5001, ack, false, &[b'z'; 20000]);
    let o = make_tso(&mut big, 1460);
    send(&mut port, &big, &o);
    assert_eq!(port.take_backend_drops(), 0);
    assert_eq!(p.line(), "20000");
}

#[test]
fn frames_sent_through_the_port_reach_a_socket_in_the_namespace() {
    if !privileged() {
        return;
    }
    let s = setup('c');
    let mut port = AfPacketPort::open(&s.host).expect("open afpacket port");
    let mut p = s.ns.python(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('10.78.0.1', 7777))\n\
         s.settimeout(10)\n\
         print('ready', flush=True)\n\
         for _ in range(3):\n    print(s.recvfrom(2048)[0].decode(), flush=True)\n",
    );
    assert_eq!(p.line(), "ready");
    send(
        &mut port,
        &udp_frame(NS_MAC, 7777, b"complete"),
        &Offload::NONE,
    );
    assert_eq!(p.line(), "complete");
    let mut partial = udp_frame(NS_MAC, 7777, b"partial");
    let o = make_partial_udp(&mut partial);
    send(&mut port, &partial, &o);
    assert_eq!(p.line(), "partial");
    // Refused by the port (beyond MTU without GSO) or by the kernel (unknown GSO type): both
    // dropped and counted, and the rest of the flush still goes out.
    assert_eq!(port.take_backend_drops(), 0);
    let bad = Offload {
        gso_type: 7,
        gso_size: 100,
        ..Offload::NONE
    };
    assert!(port.tx_enqueue(&udp_frame(NS_MAC, 7777, &[b'j'; 1600]), &Offload::NONE));
    assert!(port.tx_enqueue(&udp_frame(NS_MAC, 7777, b"bad"), &bad));
    assert!(port.tx_enqueue(&udp_frame(NS_MAC, 7777, b"after"), &Offload::NONE));
    let err = port.tx_flush().expect_err("the bad frame is reported");
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    assert_eq!(port.take_backend_drops(), 2);
    assert_eq!(p.line(), "after");
}

#[test]
fn transmissions_on_the_device_are_not_received_back() {
    if !privileged() {
        return;
    }
    let s = setup('d');
    let mut a = AfPacketPort::open(&s.host).expect("open port a");
    let mut b = AfPacketPort::open(&s.host).expect("open port b");
    // To a MAC nobody has: the namespace drops them silently, so nothing legitimate comes back.
    let nobody = [0x02, 0x00, 0x00, 0x00, 0x78, 0xee];
    let marker = b"own-transmission-marker";
    for port in [&mut a, &mut b] {
        for _ in 0..16 {
            assert!(port.tx_enqueue(&udp_frame(nobody, 4444, marker), &Offload::NONE));
        }
        port.tx_flush().expect("tx_flush");
        assert_eq!(port.take_backend_drops(), 0);
    }
    for port in [&mut a, &mut b] {
        let seen = rx_until(port, Duration::from_millis(300), |f, _| {
            udp_of(f).is_some_and(|(_, _, p)| p == marker)
        });
        assert!(
            seen.is_none(),
            "a port received a frame sent on its own device"
        );
    }
}

#[test]
fn vlan_tags_stripped_by_the_veth_are_put_back() {
    if !privileged() {
        return;
    }
    let s = setup('v');
    let mut port = AfPacketPort::open(&s.host).expect("open afpacket port");
    let (_, peer, _) = names('v');
    // A tagged frame (VID 100, PCP 3) crafted in the namespace, as no VLAN device exists here.
    let code = format!(
        "import socket\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
         s.bind(('{peer}', 0))\n\
         s.send(bytes.fromhex('020000007802020000007801810060640800') + b'vlan-tagged' * 5)\n"
    );
    let _p = s.ns.python(&code);
    let (f, _) = rx_until(&mut port, Duration::from_secs(10), |f, _| {
        f.windows(11).any(|w| w == b"vlan-tagged")
    })
    .expect("the tagged frame arrives");
    assert_eq!(f.len(), 18 + 55, "the 4 tag bytes are back");
    assert_eq!(&f[..12], &[2, 0, 0, 0, 0x78, 2, 2, 0, 0, 0, 0x78, 1]);
    assert_eq!(&f[12..18], &[0x81, 0x00, 0x60, 0x64, 0x08, 0x00]);
    assert_eq!(&f[18..29], b"vlan-tagged");
}

#[test]
fn kernel_drops_are_reported_as_backend_drops() {
    if !privileged() {
        return;
    }
    let s = setup('e');
    // The smallest receive buffer the kernel allows: a burst overflows it.
    let opts = AfPacketOptions {
        rcvbuf: 1,
        ..AfPacketOptions::default()
    };
    let mut port = AfPacketPort::open_with(&s.host, &opts).expect("open afpacket port");
    let mut p = s.ns.python(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for _ in range(200):\n    s.sendto(b'y' * 1000, ('10.78.0.2', 9998))\n\
         print('sent', flush=True)\n",
    );
    assert_eq!(p.line(), "sent");
    assert!(
        port.take_backend_drops() > 0,
        "PACKET_STATISTICS drops are reported"
    );
    // What did fit is still delivered.
    assert!(
        rx_until(&mut port, Duration::from_secs(2), |f, _| udp_of(f)
            .is_some_and(|(_, d, _)| d == 9998))
        .is_some()
    );
}

#[test]
fn a_missing_device_is_reported_as_such() {
    let err = AfPacketPort::open("vpnonexistent0").expect_err("no such device");
    assert!(matches!(err, PortError::NoDevice { .. }), "{err}");
    let err = AfPacketPort::open("a-name-that-is-too-long").expect_err("bad name");
    assert!(
        matches!(err, PortError::Invalid { field: "name", .. }),
        "{err}"
    );
}
