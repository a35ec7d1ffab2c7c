//! Privileged AF_XDP tests: a veth pair with one end in a private network namespace (with an
//! address) and the other in the host namespace (up, no address, IPv6 off), an `AfXdpPort` on
//! the host end, and python3 children inside the namespace as traffic source and sink.
//!
//! Needs root with `CAP_NET_ADMIN`/`CAP_BPF`, `ip` (iproute2) and `python3`. Without privileges
//! each test prints why and passes, unless `CI=true`, where it fails instead.
//! Traffic only flows between the devices each test creates.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{Link, Net, Netns, wait_until};
use datapath::buf::{Offload, RxBatch};
use datapath::port::afxdp::{AfXdpOptions, AfXdpPort, XdpMode};
use datapath::port::{BackendDrops, Port, PortError, PortKind};
use datapath::sys::bpf::{XdpAttachMode, XdpLink, XdpProgram, XskMap};
use datapath::sys::netdev;
use etherparse::{SlicedPacket, TransportSlice};

/// Address of the namespace end.
const NS_IP: [u8; 4] = [10, 77, 0, 1];
/// Address the namespace believes is behind the host end (static ARP to the host end's MAC).
const PEER_IP: [u8; 4] = [10, 77, 0, 2];

/// True when the test can run; false (after saying why) when it should be skipped.
fn privileged(test: &str) -> bool {
    let root = common::euid_root();
    let net_admin = common::cap_net_admin();
    let tools = common::installed("ip") && common::installed("python3");
    common::run_or_skip((!(root && net_admin && tools)).then(|| {
        format!(
            "{test}: needs root with CAP_NET_ADMIN, ip and python3 \
             (root={root}, net_admin={net_admin}, tools={tools})"
        )
    }))
}

/// A veth pair `host` ↔ `peer` with `peer` in namespace `ns`; deleted on drop, even on panic.
struct Veth {
    // Dropped in this order: the namespace destroys the peer and with it the host end; the host
    // end goes too in case the move into the namespace never happened.
    ns: Netns,
    _host: Link,
    host: String,
    peer: String,
    host_mac: [u8; 6],
    peer_mac: [u8; 6],
    /// The addresses as the namespace sees them: the peer is the host end.
    net: Net,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Veth {
    fn new() -> Self {
        Self::with_queues(1)
    }

    /// A pair whose ends both have `queues` rx and tx queues.
    fn with_queues(queues: usize) -> Self {
        Self::with_rx_tx(queues, queues)
    }

    /// A pair whose ends both have `rx` rx queues and `tx` tx queues.
    fn with_rx_tx(rx: usize, tx: usize) -> Self {
        let id = std::process::id() % 10000;
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let host = format!("vxt{id}{k}a");
        let peer = format!("vxt{id}{k}b");
        // The guards exist before anything is created, so a failure below still cleans up.
        let host_link = Link(host.clone());
        let ns = Netns::new(format!("vxt{id}n{k}"));
        common::veth_into_queues(&ns, &host, &peer, Some((rx, tx)));
        ns.run(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{peer}.disable_ipv6=1"),
        ]);
        let host_mac = common::mac_of(&host);
        let peer_mac =
            common::parse_mac(&ns.run(&["cat", &format!("/sys/class/net/{peer}/address")]));
        let net = Net {
            peer_mac: host_mac,
            peer_ip: PEER_IP,
            ns_ip: NS_IP,
        };
        ns.configure(&peer, &net);
        Self {
            ns,
            _host: host_link,
            host,
            peer,
            host_mac,
            peer_mac,
            net,
        }
    }

    /// Spawns `python3 -c code` inside the namespace with stdout and stderr piped.
    fn ns_python(&self, code: &str) -> Child {
        self.ns.spawn_python(code, Stdio::piped())
    }

    /// Sends `n` UDP datagrams `vxt-<i>` from the namespace to `PEER_IP:port`.
    fn send_udp(&self, n: usize, port: u16) {
        let peer = self.net.peer_addr();
        let code = format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             for i in range({n}):\n    s.sendto(b'vxt-%d' % i, ('{peer}', {port}))\n"
        );
        finish(self.ns_python(&code), "sender");
    }

    /// Sends `n` datagrams from the namespace and returns how many of them the port receives
    /// within 5 s.
    fn send_and_receive(&self, port: &mut AfXdpPort, n: usize) -> usize {
        self.send_udp(n, 9999);
        receive_udp(port, 9999, n, Duration::from_secs(5)).len()
    }

    /// An Ethernet/IPv4/UDP frame from the host end's side to the namespace's sink.
    fn frame_to_ns(&self, dst_port: u16, payload: &[u8]) -> Vec<u8> {
        self.net.udp_frame(self.peer_mac, dst_port, payload)
    }

    fn xdp_shown(&self) -> bool {
        let out = common::run(&["ip", "-d", "link", "show", "dev", &self.host]);
        out.contains("xdp")
    }

    /// True once `ip -d link show` shows no XDP program (within 2 s). Closing a link fd
    /// detaches at once, unless another test thread is forking a child right then: the child
    /// holds a copy of every fd until it execs.
    fn xdp_gone(&self) -> bool {
        wait_until(Duration::from_secs(2), Duration::from_millis(20), || {
            !self.xdp_shown()
        })
    }
}

/// Waits for a python3 child, asserting that it succeeded (`what` failed: stderr otherwise);
/// returns its stdout.
fn finish(child: Child, what: &str) -> String {
    let out = child.wait_with_output().expect(what);
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A received UDP datagram: (destination port, payload, frame length).
struct Udp {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    dst_port: u16,
    payload: Vec<u8>,
}

fn parse_udp(frame: &[u8]) -> Option<Udp> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let etherparse::LinkSlice::Ethernet2(eth) = p.link? else {
        return None;
    };
    let etherparse::NetSlice::Ipv4(ip) = p.net? else {
        return None;
    };
    let TransportSlice::Udp(udp) = p.transport? else {
        return None;
    };
    Some(Udp {
        src_mac: eth.source(),
        dst_mac: eth.destination(),
        src_ip: ip.header().source(),
        dst_ip: ip.header().destination(),
        dst_port: udp.destination_port(),
        payload: udp.payload().to_vec(),
    })
}

/// Polls `port` for up to `timeout`, releasing every batch; returns the UDP datagrams to
/// `dst_port` in arrival order, stopping once `want` have arrived.
fn receive_udp(port: &mut AfXdpPort, dst_port: u16, want: usize, timeout: Duration) -> Vec<Udp> {
    let mut got = Vec::new();
    if want == 0 {
        return got;
    }
    common::poll_rx(port, timeout, |port, batch, n| {
        assert_eq!(n, batch.len());
        for d in batch.descs() {
            let bytes = port.frame(d);
            assert_eq!(
                bytes.len(),
                d.len as usize,
                "frame() covers the whole frame"
            );
            assert!(bytes.len() <= port.caps().max_frame_len);
            if let Some(u) = parse_udp(bytes).filter(|u| u.dst_port == dst_port) {
                got.push(u);
            }
        }
        got.len() >= want
    });
    got
}

/// Bursts queue 0 into one batch, without releasing, until it holds `want` frames or `timeout`
/// passes; returns the batch.
fn burst_until(port: &mut AfXdpPort, want: usize, timeout: Duration) -> RxBatch {
    let mut batch = RxBatch::new();
    wait_until(timeout, Duration::ZERO, || {
        port.rx_burst(0, &mut batch).expect("rx_burst");
        batch.len() >= want
    });
    batch
}

/// Enqueues `frame` until the port refuses; returns how many it took.
fn enqueue_until_full(port: &mut AfXdpPort, frame: &[u8]) -> usize {
    (0..100)
        .take_while(|_| port.tx_enqueue(frame, &Offload::NONE))
        .count()
}

/// `opts` in native mode (veth has it: a fallback would hide a bug).
fn native(opts: AfXdpOptions) -> AfXdpOptions {
    AfXdpOptions {
        mode: XdpMode::Native,
        ..opts
    }
}

/// A split port's options with `frames` UMEM chunks, an RX ring of `rx_ring` and a 32-entry
/// TX ring (small: the tests send a few dozen frames).
fn split_opts(frames: u32, rx_ring: u32) -> AfXdpOptions {
    AfXdpOptions {
        mode: XdpMode::Split,
        frames,
        rx_ring,
        tx_ring: 32,
        ..AfXdpOptions::default()
    }
}

/// Opens the port with one queue, in native mode.
fn open_native(v: &Veth, opts: AfXdpOptions) -> AfXdpPort {
    let port = AfXdpPort::open(&v.host, 1, native(opts)).expect("open AF_XDP port");
    assert_eq!(port.attach_mode(), XdpAttachMode::Driver);
    assert_eq!(port.kind(), PortKind::AfXdp);
    assert_eq!(port.rx_queues(), 1);
    assert!(port.rx_fd(0).is_some() && port.rx_fd(1).is_none());
    port
}

/// [`open_native`] with 16 chunks, 8 of them for rx.
fn open_native_small(v: &Veth) -> AfXdpPort {
    open_native_sized(v, 16, 8, 8)
}

/// A native-mode port of `frames` chunks with rings of `rx_ring` and `tx_ring` entries.
fn open_native_sized(v: &Veth, frames: u32, rx_ring: u32, tx_ring: u32) -> AfXdpPort {
    open_native(
        v,
        AfXdpOptions {
            frames,
            rx_ring,
            tx_ring,
            ..AfXdpOptions::default()
        },
    )
}

/// A python3 UDP sink bound in the namespace: prints `ready`, then, after `n` datagrams or 5 s
/// of silence, `<count> <first payload hex> <first source ip>`.
fn spawn_sink(v: &Veth, port: u16, n: usize) -> Child {
    let addr = v.net.ns_addr();
    let code = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)\n\
         s.bind(('{addr}', {port}))\n\
         s.settimeout(5)\n\
         print('ready', flush=True)\n\
         n = 0\n\
         first = None\n\
         try:\n\
         \x20   while n < {n}:\n\
         \x20       d, a = s.recvfrom(4096)\n\
         \x20       first = first or (d, a)\n\
         \x20       n += 1\n\
         except socket.timeout:\n\
         \x20   pass\n\
         print(n, first[0].hex() if first else '-', first[1][0] if first else '-', flush=True)\n"
    );
    let mut child = v.ns_python(&code);
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut line = String::new();
    let mut byte = [0u8; 1];
    // Read "ready\n" byte by byte so nothing after it is buffered away.
    while !line.ends_with('\n') {
        match stdout.read(&mut byte) {
            Ok(1) => line.push(byte[0] as char),
            _ => break,
        }
    }
    assert_eq!(line.trim(), "ready", "sink did not start");
    child
}

fn sink_result(child: Child) -> (usize, Vec<u8>, String) {
    let text = finish(child, "sink");
    let line = BufReader::new(text.as_bytes())
        .lines()
        .map_while(Result::ok)
        .last()
        .unwrap_or_default();
    let mut parts = line.split_whitespace();
    let count = parts.next().and_then(|c| c.parse().ok()).expect("count");
    let payload = parts
        .next()
        .filter(|h| *h != "-")
        .map(|h| {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .unwrap_or_default();
    let src = parts.next().unwrap_or_default().to_owned();
    (count, payload, src)
}

#[test]
fn frames_from_a_namespace_arrive_in_the_rx_ring() {
    if !privileged("frames_from_a_namespace_arrive_in_the_rx_ring") {
        return;
    }
    let v = Veth::new();
    let mut port = open_native(&v, AfXdpOptions::default());
    assert!(
        v.xdp_shown(),
        "the program is attached while the port is open"
    );

    v.send_udp(8, 9999);
    let got = receive_udp(&mut port, 9999, 8, Duration::from_secs(5));
    assert_eq!(got.len(), 8, "all datagrams arrive through the XSK");
    for (i, u) in got.iter().enumerate() {
        assert_eq!(u.payload, format!("vxt-{i}").as_bytes(), "in order, intact");
        assert_eq!(u.src_mac, v.peer_mac);
        assert_eq!(u.dst_mac, v.host_mac);
        assert_eq!(u.src_ip, NS_IP);
        assert_eq!(u.dst_ip, PEER_IP);
    }
    assert_eq!(port.take_backend_drops().total(), 0);
}

#[test]
fn received_frames_can_be_rewritten_in_place_and_released_chunks_are_reused() {
    if !privileged("received_frames_can_be_rewritten_in_place_and_released_chunks_are_reused") {
        return;
    }
    let v = Veth::new();
    // 16 chunks: 8 for rx. 40 datagrams only get through if released chunks come back.
    let mut port = open_native_small(&v);
    let mut total = 0;
    for round in 0..5 {
        v.send_udp(8, 9999);
        let batch = burst_until(&mut port, 8, Duration::from_secs(5));
        let n = batch.len();
        assert_eq!(n, 8, "round {round}: all 8 chunks came back through FILL");
        for d in batch.descs() {
            // Rewrite the destination MAC in place and read it back.
            port.frame_mut(d)[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x42]);
            assert_eq!(&port.frame(d)[..6], &[0x02, 0, 0, 0, 0, 0x42]);
        }
        port.rx_release(0, &batch);
        // Released frames are no longer readable.
        assert!(batch.descs().iter().all(|d| port.frame(d).is_empty()));
        total += n;
    }
    assert_eq!(total, 40);
}

#[test]
fn kernel_drops_are_reported_when_the_fill_ring_runs_dry() {
    if !privileged("kernel_drops_are_reported_when_the_fill_ring_runs_dry") {
        return;
    }
    let v = Veth::new();
    let mut port = open_native_small(&v);
    v.send_udp(20, 9999);
    let batch = burst_until(&mut port, 8, Duration::from_secs(2));
    assert_eq!(batch.len(), 8, "8 rx chunks, 8 frames");
    // Without a release, the 12 other datagrams had no chunk to go into (the RX ring had
    // room: 8 entries, 8 frames).
    assert_eq!(
        port.take_backend_drops(),
        BackendDrops {
            no_rx_buffer: 12,
            ..BackendDrops::default()
        }
    );
    assert_eq!(port.take_backend_drops().total(), 0, "deltas, not totals");
    port.rx_release(0, &batch);
    let got = receive_udp(&mut port, 9999, 1, Duration::from_millis(200));
    assert!(got.is_empty(), "nothing left over");
    assert_eq!(v.send_and_receive(&mut port, 3), 3);
}

#[test]
fn kernel_drops_are_reported_as_ring_full_when_the_rx_ring_is_not_read() {
    if !privileged("kernel_drops_are_reported_as_ring_full_when_the_rx_ring_is_not_read") {
        return;
    }
    let v = Veth::new();
    // 32 rx chunks but an RX ring of 8: the kernel has buffers and nowhere to put the frames.
    let mut port = open_native_sized(&v, 64, 8, 8);
    v.send_udp(20, 9999);
    // Read nothing until all 20 were handled by the kernel (`send_udp` returns when sent).
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        port.take_backend_drops(),
        BackendDrops {
            rx_ring_full: 12,
            ..BackendDrops::default()
        }
    );
    let batch = burst_until(&mut port, 8, Duration::from_secs(2));
    assert_eq!(batch.len(), 8, "the ring's 8 frames");
    port.rx_release(0, &batch);
    // The kernel's chunks of the dropped frames were reused: frames flow as before.
    assert_eq!(v.send_and_receive(&mut port, 3), 3);
    assert_eq!(port.take_backend_drops().total(), 0);
}

#[test]
fn a_port_with_two_queues_receives_on_both_and_tells_their_frames_apart() {
    if !privileged("a_port_with_two_queues_receives_on_both_and_tells_their_frames_apart") {
        return;
    }
    let v = Veth::with_queues(2);
    let mut port =
        AfXdpPort::open(&v.host, 2, native(AfXdpOptions::default())).expect("open with two queues");
    assert_eq!(port.rx_queues(), 2);
    assert_ne!(port.rx_fd(0), port.rx_fd(1));
    // 32 flows (one socket each): the peer spreads them over its tx queues by flow hash, and
    // veth delivers each on the rx queue of the same number.
    send_flows(&v, "vxt", 9999);
    let mut per_queue = [0usize; 2];
    let mut seen = Vec::new();
    wait_until(Duration::from_secs(5), Duration::ZERO, || {
        for (q, count) in per_queue.iter_mut().enumerate() {
            let mut batch = RxBatch::new();
            port.rx_burst(q, &mut batch).expect("rx_burst");
            for d in batch.descs() {
                if let Some(u) = parse_udp(port.frame(d)).filter(|u| u.dst_port == 9999) {
                    seen.push(u.payload);
                    *count += 1;
                }
            }
            // Releasing on the wrong queue gives nothing back; the right one does.
            port.rx_release(1 - q, &batch);
            assert!(batch.descs().iter().all(|d| !port.frame(d).is_empty()));
            port.rx_release(q, &batch);
        }
        seen.len() >= 32
    });
    seen.sort();
    let mut want: Vec<Vec<u8>> = (0..32).map(|i| format!("vxt-{i}").into_bytes()).collect();
    want.sort();
    assert_eq!(seen, want);
    assert!(per_queue[0] > 0 && per_queue[1] > 0, "{per_queue:?}");
}

#[test]
fn a_peer_mtu_too_large_for_native_xdp_falls_back_to_generic_mode() {
    if !privileged("a_peer_mtu_too_large_for_native_xdp_falls_back_to_generic_mode") {
        return;
    }
    let v = Veth::new();
    v.ns.run(&["ip", "link", "set", &v.peer, "mtu", "9000"]);
    let err = AfXdpPort::open(&v.host, 1, native(AfXdpOptions::default()))
        .expect_err("native XDP refused");
    assert!(matches!(err, PortError::Unsupported { .. }), "{err}");
    assert!(v.xdp_gone());

    let mut port = AfXdpPort::open(&v.host, 1, AfXdpOptions::default()).expect("auto");
    assert_eq!(port.attach_mode(), XdpAttachMode::Skb);
    assert_eq!(v.send_and_receive(&mut port, 4), 4);
    drop(port);
    assert!(v.xdp_gone());

    // With frags support, native mode accepts the large peer MTU.
    let port = AfXdpPort::open(
        &v.host,
        1,
        native(AfXdpOptions {
            frags: true,
            ..AfXdpOptions::default()
        }),
    )
    .expect("native with frags");
    assert_eq!(port.attach_mode(), XdpAttachMode::Driver);
}

#[test]
fn a_crafted_frame_sent_with_tx_enqueue_reaches_a_socket_in_the_namespace() {
    if !privileged("a_crafted_frame_sent_with_tx_enqueue_reaches_a_socket_in_the_namespace") {
        return;
    }
    let v = Veth::new();
    let mut port = open_native(&v, AfXdpOptions::default());
    let sink = spawn_sink(&v, 7777, 1);
    let frame = v.frame_to_ns(7777, b"hello from AF_XDP");
    assert!(port.tx_enqueue(&frame, &Offload::NONE));
    port.tx_flush().expect("tx_flush");
    let (count, payload, src) = sink_result(sink);
    assert_eq!(count, 1);
    assert_eq!(payload, b"hello from AF_XDP");
    assert_eq!(src, v.net.peer_addr());
}

#[test]
fn a_split_port_carries_short_frames_by_af_xdp_and_long_ones_by_af_packet_both_ways() {
    if !privileged("a_split_port_carries_short_frames_by_af_xdp_and_long_ones_by_af_packet") {
        return;
    }
    let v = Veth::new();
    // A 3000-byte MTU on both ends: datagrams longer than the split limit need no GSO.
    common::run(&["ip", "link", "set", "dev", &v.host, "mtu", "3000"]);
    v.ns.run(&["ip", "link", "set", "dev", &v.peer, "mtu", "3000"]);
    let opts = split_opts(64, 32);
    let mut port = AfXdpPort::open(&v.host, 1, opts).expect("open split port");
    assert_eq!(port.attach_mode(), XdpAttachMode::Skb);
    assert!(port.has_companion());
    assert_eq!(port.rx_queues(), 1, "the companion is polled with queue 0");
    assert!(port.rx_fd(0).is_some() && port.rx_extra_fd(0).is_some());
    assert!(
        port.caps().tx_offload && port.caps().max_frame_len >= 3000,
        "{:?}",
        port.caps()
    );

    // Payloads of 100 and 2,500 bytes: frames of 142 and 2,542 bytes, either side of the
    // 1,518-byte limit (MTU + 18, at most 1,518), in a mixed order, all sent before the port
    // is polled: one poll takes both sockets' frames, and must give them in the order sent.
    const LONG: [usize; 12] = [1, 2, 5, 9, 10, 11, 16, 20, 23, 24, 25, 27];
    let (got, polls) = send_mixed(&v, &mut port, 9998, 30, &LONG, 2500, None);
    for (i, a) in got.iter().enumerate() {
        let short = !LONG.contains(&i);
        assert_eq!(a.len, if short { 100 } else { 2500 });
        assert!(a.intact, "datagram {i} intact");
        assert_eq!(
            (a.by_socket, a.gso),
            (short, false),
            "datagram {i}: short ones by AF_XDP, long ones not ({polls} polls)"
        );
    }

    // And out: a long frame goes through the companion, a short one through the socket.
    let sink = spawn_sink(&v, 7778, 2);
    let long = v.frame_to_ns(7778, &[7u8; 2000]);
    let short = v.frame_to_ns(7778, b"short");
    assert!(port.tx_enqueue(&long, &Offload::NONE));
    assert!(port.tx_enqueue(&short, &Offload::NONE));
    port.tx_flush().expect("tx_flush");
    let (count, payload, _) = sink_result(sink);
    assert_eq!(count, 2, "both frames arrive");
    assert_eq!(payload, vec![7u8; 2000], "in the order they were given");
    assert_eq!(port.take_backend_drops().total(), 0);
    drop(port);
    assert!(v.xdp_gone(), "the program goes with the port");
}

#[test]
fn a_split_port_takes_one_queue_which_on_a_veth_receives_every_flow() {
    if !privileged("a_split_port_takes_one_queue") {
        return;
    }
    let v = Veth::with_queues(2);
    let opts = split_opts(128, 64);
    match AfXdpPort::open(&v.host, 2, opts) {
        Err(PortError::Invalid {
            field: "queues",
            reason,
            ..
        }) => {
            assert!(reason.contains("split port takes 1 queue"), "{reason}")
        }
        other => panic!("two queues on a split port: {other:?}"),
    }
    // One queue: generic XDP on a veth sees every frame on queue 0 (native mode spreads the
    // same 32 flows over both queues, see the two-queue test above).
    let mut port = AfXdpPort::open(&v.host, 1, opts).expect("open split port");
    send_flows(&v, "vxq", 9996);
    let mut flows = 0;
    common::poll_rx(&mut port, Duration::from_secs(5), |port, batch, _| {
        flows += batch
            .descs()
            .iter()
            .filter(|d| parse_udp(port.frame(d)).is_some_and(|u| u.dst_port == 9996))
            .count();
        flows >= 32
    });
    assert_eq!(flows, 32, "every flow on queue 0");
}

#[test]
fn a_split_port_holds_short_frames_back_until_its_companion_gives_the_long_ones_before_them() {
    if !privileged("a_split_port_holds_short_frames_back") {
        return;
    }
    let v = Veth::new();
    let opts = split_opts(128, 64);
    let mut port = AfXdpPort::open(&v.host, 1, opts).expect("open split port");
    // Long datagrams leave as UDP GSO frames of 4 segments (~4 KB, longer than a slot of the
    // companion's ring: it copies at most 8 of them per poll), short ones as 100-byte frames,
    // all sent before the first poll. The short frames after the 8th long one are taken by
    // the first poll but must wait for the second.
    const LONG: [usize; 12] = [0, 2, 3, 5, 8, 9, 11, 14, 15, 17, 20, 22];
    let (got, polls) = send_mixed(&v, &mut port, 9997, 25, &LONG, 4000, Some(1000));
    assert!(polls >= 2, "12 long frames take the companion two polls");
    for (i, a) in got.iter().enumerate() {
        let long = LONG.contains(&i);
        assert_eq!(
            (a.len, a.gso),
            if long { (4000, true) } else { (100, false) }
        );
    }
}

/// Sends 32 UDP datagrams `{tag}-{i}` from `v`'s namespace to `dst_port`, each from a socket
/// of its own (32 flows: the peer spreads them over its tx queues by flow hash).
fn send_flows(v: &Veth, tag: &str, dst_port: u16) {
    let peer = v.net.peer_addr();
    let code = format!(
        "import socket\n\
         for i in range(32):\n\
         \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         \x20   s.sendto(b'{tag}-%d' % i, ('{peer}', {dst_port}))\n"
    );
    finish(v.ns_python(&code), "sender");
}

/// A datagram [`send_mixed`] received.
struct Arrival {
    /// Payload bytes.
    len: usize,
    /// Every payload byte is the datagram's number + 65.
    intact: bool,
    /// Taken by the AF_XDP socket (not the companion).
    by_socket: bool,
    /// Came as one GSO frame.
    gso: bool,
}

/// Sends `sent` UDP datagrams from `v`'s namespace to `dst_port`, numbered by their bytes
/// (65 + the number): those listed in `long` of `long_len` bytes, the others of 100 (with
/// `segment`, the socket's `UDP_SEGMENT`: longer ones leave as GSO frames), all before the
/// port is polled; then polls queue 0 until all have come. Asserts that they came in the
/// order sent; returns them and the number of polls that gave frames.
fn send_mixed(
    v: &Veth,
    port: &mut AfXdpPort,
    dst_port: u16,
    sent: u8,
    long: &[usize],
    long_len: usize,
    segment: Option<u16>,
) -> (Vec<Arrival>, usize) {
    let peer = v.net.peer_addr();
    let gso = segment.map_or(String::new(), |g| {
        format!("s.setsockopt(socket.SOL_UDP, 103, {g})\n")
    });
    let code = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         {gso}\
         for i in range({sent}):\n    s.sendto(bytes([65 + i]) * ({long_len} if i in {long:?} else 100), ('{peer}', {dst_port}))\n"
    );
    finish(v.ns_python(&code), "sender");
    let mut got = Vec::new();
    let mut numbers = Vec::new();
    let mut polls = 0;
    common::poll_rx(port, Duration::from_secs(5), |port, batch, n| {
        polls += usize::from(n > 0);
        for d in batch.descs() {
            if let Some(u) = parse_udp(port.frame(d)).filter(|u| u.dst_port == dst_port) {
                let num = u.payload[0].wrapping_sub(65);
                numbers.push(num);
                got.push(Arrival {
                    len: u.payload.len(),
                    intact: u.payload.iter().all(|b| *b == 65 + num),
                    by_socket: AfXdpPort::by_socket(d),
                    gso: d.offload.is_gso(),
                });
            }
        }
        got.len() >= usize::from(sent)
    });
    assert_eq!(
        numbers,
        (0..sent).collect::<Vec<u8>>(),
        "every datagram, in the order sent, across both sockets ({polls} polls with frames)"
    );
    (got, polls)
}

#[test]
fn one_flush_sends_more_frames_than_one_kick_can_carry() {
    if !privileged("one_flush_sends_more_frames_than_one_kick_can_carry") {
        return;
    }
    let v = Veth::new();
    let mut port = open_native(&v, AfXdpOptions::default());
    let sink = spawn_sink(&v, 7778, 200);
    for i in 0..200u32 {
        let frame = v.frame_to_ns(7778, &i.to_be_bytes());
        assert!(port.tx_enqueue(&frame, &Offload::NONE), "frame {i} fits");
    }
    // 200 descriptors need at least 7 kicks of 32: a single flush must do them all.
    port.tx_flush().expect("tx_flush");
    let (count, payload, _) = sink_result(sink);
    assert_eq!(count, 200);
    assert_eq!(payload, 0u32.to_be_bytes());
}

#[test]
fn tx_enqueue_refuses_when_full_and_recovers_after_a_flush() {
    if !privileged("tx_enqueue_refuses_when_full_and_recovers_after_a_flush") {
        return;
    }
    let v = Veth::new();
    let mut port = open_native_sized(&v, 64, 32, 64);
    let frame = v.frame_to_ns(9, b"discard");
    // 32 tx chunks.
    let accepted = enqueue_until_full(&mut port, &frame);
    assert_eq!(accepted, 32);
    port.tx_flush().expect("tx_flush");
    let again = enqueue_until_full(&mut port, &frame);
    assert_eq!(again, 32, "completions returned every chunk");
    port.tx_flush().expect("tx_flush");
    // Frames above the device MTU are dropped by veth, but their chunks still come back.
    let jumbo = v.frame_to_ns(9, &[0u8; 2000]);
    let accepted = enqueue_until_full(&mut port, &jumbo);
    assert_eq!(accepted, 32);
    // Each drop ends a kick (EBUSY), so this takes a few flushes, as it would over a few
    // batches of a worker.
    let _ = port.take_backend_drops();
    for _ in 0..16 {
        port.tx_flush().expect("tx_flush");
    }
    let again = enqueue_until_full(&mut port, &frame);
    assert_eq!(again, 32, "no chunk leaked by the dropped frames");
    assert_eq!(
        port.take_backend_drops(),
        BackendDrops::default(),
        "the device counts them (the switch reads its count), not the port"
    );
    port.tx_flush().expect("tx_flush");
    let too_big = vec![0u8; 4097];
    assert!(!port.tx_enqueue(&too_big, &Offload::NONE));
    assert_eq!(port.caps().max_frame_len, 3840);
    assert!(!port.caps().tx_offload);
}

/// The kernel's count of frames `dev` dropped on transmit.
fn tx_dropped(dev: &str) -> u64 {
    dev_stat(dev, "tx_dropped")
}

/// One of the kernel's counters of `dev` (`/sys/class/net/<dev>/statistics/<what>`).
fn dev_stat(dev: &str, what: &str) -> u64 {
    let path = format!("/sys/class/net/{dev}/statistics/{what}");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .parse()
        .expect("a count")
}

/// What the switch reports as drops of reason `device` (`Switch` reads the device's count):
/// the kernel completes such frames as if sent, so the port must not count them too.
#[test]
fn frames_a_device_without_carrier_drops_are_its_count_and_every_chunk_comes_back() {
    if !privileged("frames_a_device_without_carrier_drops_are_its_count_and_every_chunk_comes_back")
    {
        return;
    }
    let v = Veth::new();
    let mut port = open_native_sized(&v, 64, 32, 64);
    let frame = v.frame_to_ns(9, b"discard");
    // The namespace's end down: the host end has no carrier, and the kernel drops what the
    // socket sends (completing the chunks as if sent).
    v.ns.ip(&["link", "set", &v.peer, "down"]);
    let before = tx_dropped(&v.host);
    let _ = port.take_backend_drops();
    let accepted = enqueue_until_full(&mut port, &frame);
    assert_eq!(accepted, 32);
    for _ in 0..64 {
        let _ = port.tx_flush();
    }
    let kernel = tx_dropped(&v.host) - before;
    assert_eq!(kernel, 32, "the device dropped every frame");
    assert_eq!(port.take_backend_drops(), BackendDrops::default());
    // Every chunk came back.
    assert_eq!(enqueue_until_full(&mut port, &frame), 32);
    for _ in 0..64 {
        let _ = port.tx_flush();
    }
    assert_eq!(port.close(), BackendDrops::default(), "nothing left unsent");
}

/// In copy mode each frame the device drops (here: longer than the peer's MTU) ends a kick,
/// and a flush kicks a bounded number of times (6 with a 64-entry TX ring): frames behind more
/// drops than that stay on the ring. The port's `maintain`, which the worker runs about once a
/// millisecond, sends them; before, they waited for the next frame queued on the port, which
/// may never come (found by an audit, 2026-12-07).
#[test]
fn frames_a_flush_leaves_on_the_tx_ring_go_at_maintain_without_new_traffic() {
    if !privileged("frames_a_flush_leaves_on_the_tx_ring_go_at_maintain_without_new_traffic") {
        return;
    }
    let v = Veth::new();
    let mut port = open_native_sized(&v, 64, 32, 64);
    let sent_before = dev_stat(&v.host, "tx_packets");
    let dropped_before = tx_dropped(&v.host);
    // 2,042 bytes: above the peer's 1,500-byte MTU, within a chunk.
    let jumbo = v.frame_to_ns(9, &[0u8; 2000]);
    for _ in 0..20 {
        assert!(port.tx_enqueue(&jumbo, &Offload::NONE));
    }
    for i in 0..10u8 {
        assert!(port.tx_enqueue(&v.frame_to_ns(9, &[i; 20]), &Offload::NONE));
    }
    port.tx_flush().expect("tx_flush");
    assert!(
        dev_stat(&v.host, "tx_packets") - sent_before < 10,
        "one flush cannot pass 20 drops (else this test shows nothing)"
    );
    let done = wait_until(Duration::from_secs(2), Duration::from_millis(1), || {
        port.maintain();
        dev_stat(&v.host, "tx_packets") - sent_before == 10
    });
    assert!(
        done,
        "the 10 frames behind the dropped ones went with maintain"
    );
    assert_eq!(tx_dropped(&v.host) - dropped_before, 20);
    assert_eq!(port.close(), BackendDrops::default(), "nothing left unsent");
}

/// While kicks fail (the device down), `maintain` retries them only now and then (every 64
/// calls, ~64 ms), not every millisecond; the frames left queued go once the device is up
/// again, without a new frame for the port.
#[test]
fn frames_queued_while_the_device_was_down_go_at_maintain_once_it_is_up() {
    if !privileged("frames_queued_while_the_device_was_down_go_at_maintain_once_it_is_up") {
        return;
    }
    let v = Veth::new();
    let mut port = open_native_sized(&v, 64, 32, 64);
    let sent_before = dev_stat(&v.host, "tx_packets");
    common::ip(&["link", "set", &v.host, "down"]);
    for i in 0..10u8 {
        assert!(port.tx_enqueue(&v.frame_to_ns(9, &[i; 20]), &Offload::NONE));
    }
    assert!(port.tx_flush().is_err(), "the device is down");
    common::ip(&["link", "set", &v.host, "up"]);
    // The peer needs its carrier back before a frame gets through.
    std::thread::sleep(Duration::from_millis(100));
    // Fewer calls than the retry period: no kick yet.
    for _ in 0..20 {
        port.maintain();
    }
    assert_eq!(
        dev_stat(&v.host, "tx_packets"),
        sent_before,
        "maintain kicks a blocked port only every 64 calls"
    );
    assert!(
        wait_until(Duration::from_secs(2), Duration::from_millis(1), || {
            port.maintain();
            dev_stat(&v.host, "tx_packets") - sent_before == 10
        }),
        "the frames queued while the device was down went"
    );
    assert_eq!(port.close(), BackendDrops::default());
}

/// A port split by queue (`into_queues`, one part per worker) transmits on each part through
/// its own socket, on the tx queue of its number: a device with fewer tx queues than that is
/// refused (the kernel would take nothing from the part without one, its flushes succeeding;
/// found by an audit, 2026-12-07), and with enough, every part sends.
#[test]
fn a_port_split_by_queue_needs_a_tx_queue_for_each_part_and_each_part_sends() {
    if !privileged("a_port_split_by_queue_needs_a_tx_queue_for_each_part_and_each_part_sends") {
        return;
    }
    let short = Veth::with_rx_tx(2, 1);
    let port = AfXdpPort::open(&short.host, 2, native(AfXdpOptions::default()))
        .expect("two rx queues open");
    let err = port.into_queues().expect_err("one tx queue");
    assert!(
        matches!(
            err,
            PortError::Invalid {
                field: "queues",
                ..
            }
        ),
        "{err}"
    );
    assert!(short.xdp_gone(), "the refused port is closed");
    let v = Veth::with_queues(2);
    let port = AfXdpPort::open(&v.host, 2, native(AfXdpOptions::default())).expect("open");
    let mut parts = port.into_queues().expect("two tx queues");
    assert_eq!(parts.len(), 2);
    for (q, part) in parts.iter_mut().enumerate() {
        let before = dev_stat(&v.host, "tx_packets");
        for i in 0..10u8 {
            assert!(part.tx_enqueue(&v.frame_to_ns(9, &[i; 20]), &Offload::NONE));
        }
        part.tx_flush().expect("tx_flush");
        assert!(
            wait_until(Duration::from_secs(2), Duration::from_millis(1), || {
                dev_stat(&v.host, "tx_packets") - before == 10
            }),
            "part {q} sent its frames"
        );
    }
}

/// Frames queued on a device set down stay on the TX ring (the kick fails with `ENETDOWN`),
/// not dropped yet; closing the port loses them, and `close` counts them.
#[test]
fn frames_left_on_the_tx_ring_of_a_device_set_down_are_counted_when_the_port_closes() {
    if !privileged(
        "frames_left_on_the_tx_ring_of_a_device_set_down_are_counted_when_the_port_closes",
    ) {
        return;
    }
    let v = Veth::new();
    let mut port = open_native_sized(&v, 64, 32, 64);
    let frame = v.frame_to_ns(9, b"discard");
    common::ip(&["link", "set", &v.host, "down"]);
    let _ = port.take_backend_drops();
    assert_eq!(enqueue_until_full(&mut port, &frame), 32);
    for _ in 0..3 {
        let err = port.tx_flush().expect_err("the device is down");
        assert_eq!(err.raw_os_error(), Some(libc::ENETDOWN));
    }
    assert_eq!(port.take_backend_drops(), BackendDrops::default());
    assert_eq!(port.close(), BackendDrops::other(0, 32));
}

#[test]
fn dropping_the_port_detaches_the_program() {
    if !privileged("dropping_the_port_detaches_the_program") {
        return;
    }
    let v = Veth::new();
    assert!(v.xdp_gone());
    let port = open_native(&v, AfXdpOptions::default());
    let id = port.prog_id().expect("prog id");
    let st = netdev::xdp_query(port.ifindex()).expect("query");
    assert_eq!(
        st.drv_prog_id, id,
        "rtnetlink sees our program in native mode"
    );
    drop(port);
    assert!(v.xdp_gone(), "no xdp after drop");
    assert!(
        !netdev::xdp_query(netdev::ifindex(&v.host).unwrap())
            .unwrap()
            .any()
    );
    // The queue can be bound again right away.
    let again = open_native(&v, AfXdpOptions::default());
    drop(again);
    assert!(v.xdp_gone());
}

#[test]
fn a_leftover_netlink_program_is_replaced_on_open() {
    if !privileged("a_leftover_netlink_program_is_replaced_on_open") {
        return;
    }
    let v = Veth::new();
    let ifindex = netdev::ifindex(&v.host).expect("ifindex");
    {
        // What a crashed tool leaves behind: a program attached by netlink, which outlives
        // every fd of it.
        let map = XskMap::new(1).expect("map");
        let prog = XdpProgram::load_redirect(&map, false).expect("load");
        netdev::xdp_attach_netlink(ifindex, std::os::fd::AsFd::as_fd(&prog), 4)
            .expect("netlink attach");
    }
    assert!(netdev::xdp_query(ifindex).expect("query").drv_prog_id != 0);
    let mut port = open_native(&v, AfXdpOptions::default());
    assert_eq!(
        v.send_and_receive(&mut port, 2),
        2,
        "our program replaced the leftover"
    );
    drop(port);
    assert!(v.xdp_gone(), "the leftover is gone too");
}

#[test]
fn a_live_link_is_never_detached_by_the_leftover_cleanup() {
    if !privileged("a_live_link_is_never_detached_by_the_leftover_cleanup") {
        return;
    }
    let v = Veth::new();
    let ifindex = netdev::ifindex(&v.host).expect("ifindex");
    let map = XskMap::new(1).expect("map");
    let prog = XdpProgram::load_redirect(&map, false).expect("load");
    let first = XdpLink::attach(&prog, ifindex, XdpAttachMode::Driver).expect("attach");
    let err = XdpLink::attach(&prog, ifindex, XdpAttachMode::Driver).expect_err("busy");
    assert_eq!(err.raw_os_error(), Some(libc::EBUSY));
    assert!(v.xdp_shown(), "the first link is still attached");
    let err = AfXdpPort::open(&v.host, 1, AfXdpOptions::default()).expect_err("busy device");
    assert!(
        matches!(err, PortError::Unsupported { .. }),
        "caller can fall back: {err}"
    );
    assert!(v.xdp_shown(), "the first link survived the port's attempt");
    drop(first);
    assert!(v.xdp_gone());
}

#[test]
fn bad_devices_and_queue_counts_are_reported_as_such() {
    if !privileged("bad_devices_and_queue_counts_are_reported_as_such") {
        return;
    }
    let err = AfXdpPort::open("vxt-nope0", 1, AfXdpOptions::default()).expect_err("no device");
    assert!(matches!(err, PortError::NoDevice { .. }), "{err}");
    assert!(matches!(
        datapath::port::afxdp::afxdp_supported("vxt-nope0"),
        Err(PortError::NoDevice { .. })
    ));
    let v = Veth::new();
    datapath::port::afxdp::afxdp_supported(&v.host).expect("supported on veth");
    let err = AfXdpPort::open(&v.host, 2, AfXdpOptions::default()).expect_err("one queue");
    assert!(
        matches!(
            err,
            PortError::Invalid {
                field: "queues",
                ..
            }
        ),
        "{err}"
    );
    let err = AfXdpPort::open(
        &v.host,
        1,
        AfXdpOptions {
            rx_ring: 100,
            ..AfXdpOptions::default()
        },
    )
    .expect_err("ring size");
    assert!(
        matches!(
            err,
            PortError::Invalid {
                field: "rx_ring",
                ..
            }
        ),
        "{err}"
    );
    assert!(v.xdp_gone(), "failed opens leave nothing behind");
}
