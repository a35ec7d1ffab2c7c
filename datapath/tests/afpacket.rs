//! Privileged tests of the AF_PACKET port on a veth pair.
//!
//! Each test makes its own veth pair: the host end (`vp<tag><pid>`, up, no address, IPv6 off so
//! the host stack stays quiet) carries the port; the peer (`vq<tag><pid>`) sits in the test's
//! namespace (`vp<tag><pid>ns`) with an address and a permanent neighbour entry for a peer that
//! only exists in the test, which answers for it through the port. `Drop` guards delete
//! everything, also on panic. Without root the tests print why and pass, unless `CI=true`.

mod common;

use std::time::Duration;

use common::{Link, Net, Netns, rx_until, udp_of};
use datapath::buf::Offload;
use datapath::port::afpacket::{AfPacketOptions, AfPacketPort};
use datapath::port::{BackendDrops, Port, PortError, PortKind};

/// MAC address of the namespace's end of the veth.
const NS_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x78, 0x01];
/// The namespace's address and the imaginary peer (MAC and address) the test answers for.
const NET: Net = Net {
    peer_mac: [0x02, 0x00, 0x00, 0x00, 0x78, 0x02],
    peer_ip: [10, 78, 0, 2],
    ns_ip: [10, 78, 0, 1],
};

// ---------------------------------------------------------------------------------------------
// Environment

/// True when the test can run; otherwise prints why (or panics under `CI=true`).
fn privileged() -> bool {
    common::privileged(
        "not root (needs CAP_NET_ADMIN and CAP_NET_RAW for veths, namespaces and packet sockets)",
        &[],
    )
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
    common::veth_into(&ns, &host, &peer, None);
    ns.ip(&["link", "set", &peer, "address", &common::fmt_mac(NS_MAC)]);
    ns.configure(&peer, &NET);
    Setup {
        host,
        ns,
        _link: link,
    }
}

/// The port on the host end of `s`, on rings (the default, asked for explicitly;
/// `the_mmsg_mode_still_works_when_asked_for` covers mmsg mode).
fn open(s: &Setup) -> AfPacketPort {
    open_mode(s, true)
}

/// The port on the host end of `s`, on rings (`ring`) or in mmsg mode.
fn open_mode(s: &Setup, ring: bool) -> AfPacketPort {
    let opts = AfPacketOptions {
        ring,
        ..AfPacketOptions::default()
    };
    AfPacketPort::open_with(&s.host, &opts).expect("open afpacket port")
}

/// A frame of `len` bytes to the namespace's end: `head` after the addresses, then `mark`.
fn marked(head: &[u8], mark: &[u8], len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&NS_MAC);
    f.extend_from_slice(&NET.peer_mac);
    f.extend_from_slice(head);
    f.extend_from_slice(mark);
    f.resize(len, 0);
    f
}

/// A packet socket on `peer` inside `s`'s namespace that prints `ready`, then, once no frame
/// came for `secs`, which of `marks` the frames it got carried, in the order they came (`-`
/// for none).
fn mark_sink(s: &Setup, peer: &str, marks: &[&str], secs: u32) -> common::Proc {
    let list: Vec<String> = marks.iter().map(|m| format!("b'{m}'")).collect();
    let mut rx = s.ns.python(&format!(
        "import socket\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))\n\
         s.bind(('{peer}', 0))\n\
         s.settimeout({secs})\n\
         print('ready', flush=True)\n\
         seen = []\n\
         try:\n\
         \x20   while True:\n\
         \x20       f = s.recv(65536)\n\
         \x20       seen += [m.decode() for m in ({list},) if m in f]\n\
         except socket.timeout: pass\n\
         print(' '.join(seen) or '-', flush=True)\n",
        list = list.join(", ")
    ));
    assert_eq!(rx.line(), "ready");
    rx
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn udp_sent_in_the_namespace_arrives_with_its_payload_and_partial_checksum() {
    if !privileged() {
        return;
    }
    let s = setup('a');
    let mut port = open(&s);
    assert_eq!(port.kind(), PortKind::AfPacket);
    assert!(
        port.has_vnet_hdr(),
        "PACKET_VNET_HDR is available on this kernel"
    );
    assert!(port.caps().tx_offload);
    assert_eq!(port.caps().max_frame_len, 1514);
    assert!(port.rx_fd(0).is_some());
    assert!(port.has_rings(), "the rings are the default");
    // The veth peer checksums nothing (CHECKSUM_PARTIAL): the virtio-net header says so, with
    // csum_start counted from the Ethernet header.
    common::udp_from_ns_arrives_with_a_partial_checksum(&mut port, &s.ns, &NET, NS_MAC);
}

#[test]
fn tcp_sent_in_the_namespace_arrives_as_gso_super_frames() {
    if !privileged() {
        return;
    }
    let s = setup('b');
    let mut port = open(&s);
    common::tcp_from_ns_arrives_as_gso_super_frames(&mut port, &s.ns, &NET, NS_MAC, "afpacket");
}

#[test]
fn udp_gso_sent_in_the_namespace_arrives_as_one_uso_super_frame() {
    if !privileged() {
        return;
    }
    let s = setup('u');
    let mut port = open(&s);
    common::udp_gso_from_ns_arrives_as_one_uso_super_frame(&mut port, &s.ns, &NET, "afpacket");
}

#[test]
fn a_tso_super_frame_sent_through_the_port_reaches_a_tcp_socket_in_the_namespace() {
    if !privileged() {
        return;
    }
    let s = setup('g');
    let mut port = open(&s);
    common::a_tso_super_frame_reaches_a_tcp_socket_in_the_namespace(&mut port, &s.ns, &NET, NS_MAC);
}

#[test]
fn frames_sent_through_the_port_reach_a_socket_in_the_namespace() {
    if !privileged() {
        return;
    }
    let s = setup('c');
    let mut port = open(&s);
    // Refused by the port (beyond MTU without GSO) or by the kernel (unknown GSO type): both
    // dropped and counted, and the rest of the flush still goes out.
    let refused = [
        (NET.udp_frame(NS_MAC, 7777, &[b'j'; 1600]), Offload::NONE),
        (NET.udp_frame(NS_MAC, 7777, b"bad"), common::BAD_GSO),
    ];
    common::frames_sent_through_the_port_reach_a_socket_in_the_namespace(
        &mut port, &s.ns, &NET, NS_MAC, &refused,
    );
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
            assert!(port.tx_enqueue(&NET.udp_frame(nobody, 4444, marker), &Offload::NONE));
        }
        port.tx_flush().expect("tx_flush");
        assert_eq!(port.take_backend_drops().total(), 0);
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
    let mut port = open(&s);
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
fn a_tags_4_bytes_over_the_mtu_pass_where_the_kernel_lets_them() {
    if !privileged() {
        return;
    }
    for (tag, ring) in [('q', true), ('y', false)] {
        tag_allowance(tag, ring);
    }
}

/// Three tagged frames out of a port (ring or mmsg mode) on a veth of MTU 1,500: 802.1Q of
/// 1,518 bytes and 802.1ad of 1,514 arrive in the namespace; 802.1ad of 1,518 too in ring
/// mode (the ring's send leaves the length to the veth, which allows a tag of either kind),
/// and in mmsg mode the port refuses it, counted, as `sendmmsg` would (it refused it with
/// `EMSGSIZE`, an error of the whole flush, before the port knew).
fn tag_allowance(tag: char, ring: bool) {
    let s = setup(tag);
    let mut port = open_mode(&s, ring);
    let (_, peer, _) = names(tag);
    let mut rx = mark_sink(&s, &peer, &["ctag-max", "stag-over", "stag-max"], 3);
    // 1,514 bytes untagged, and 4 more with a tag.
    let tagged = |tpid: [u8; 2], len: usize, mark: &[u8]| {
        marked(&[tpid[0], tpid[1], 0x00, 0x64, 0x88, 0xb5], mark, len)
    };
    let _ = port.take_backend_drops();
    for f in [
        tagged([0x81, 0x00], 1518, b"ctag-max"),
        tagged([0x88, 0xa8], 1518, b"stag-over"),
        tagged([0x88, 0xa8], 1514, b"stag-max"),
    ] {
        assert!(port.tx_enqueue(&f, &Offload::NONE));
    }
    port.tx_flush().expect("the flush sends what it may");
    let (drops, seen) = if ring {
        (0, "ctag-max stag-over stag-max")
    } else {
        (1, "ctag-max stag-max")
    };
    assert_eq!(
        port.take_backend_drops(),
        BackendDrops::other(0, drops),
        "ring mode: {ring}"
    );
    assert_eq!(rx.line(), seen, "ring mode: {ring}");
}

#[test]
fn frames_left_queued_on_a_device_set_down_are_counted_as_dropped_when_the_port_closes() {
    if !privileged() {
        return;
    }
    for (tag, ring) in [('h', true), ('i', false)] {
        down_device_close(tag, ring);
    }
}

/// Ten frames out of a port (ring or mmsg mode) whose device is set down. In ring mode the
/// kernel refuses the kick (`ENETDOWN`) and the frames stay queued in the ring for the next
/// one, not dropped yet; closing the port loses them, and `close` counts them. In mmsg mode
/// the flush drops them at once, counted then.
fn down_device_close(tag: char, ring: bool) {
    let s = setup(tag);
    let mut port = open_mode(&s, ring);
    common::ip(&["link", "set", &s.host, "down"]);
    let _ = port.take_backend_drops();
    let frame = NET.udp_frame(NS_MAC, 9, b"nobody hears this");
    for _ in 0..10 {
        assert!(port.tx_enqueue(&frame, &Offload::NONE));
    }
    let err = port.tx_flush().expect_err("the device is down");
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ENETDOWN),
        "ring mode: {ring}"
    );
    for _ in 0..2 {
        let _ = port.tx_flush();
    }
    let taken = port.take_backend_drops();
    let closed = port.close();
    let (flushed, at_close) = if ring { (0, 10) } else { (10, 0) };
    assert_eq!(taken, BackendDrops::other(0, flushed), "ring mode: {ring}");
    assert_eq!(
        closed,
        BackendDrops::other(0, at_close),
        "ring mode: {ring}"
    );
}

#[test]
fn a_frame_the_veth_peer_refuses_is_dropped_once_and_the_frames_after_it_go() {
    if !privileged() {
        return;
    }
    for (tag, ring) in [('j', true), ('k', false)] {
        peer_refusal(tag, ring);
    }
}

/// The namespace's end has an MTU of 1,000, the port's end 1,500: the veth refuses the
/// 1,400-byte frames on their way in (`ENOBUFS` to the sender) and counts them in its
/// `tx_dropped`. Each is dropped, counted there only (the switch reports it as `device`, not
/// also as `backend`), and the 200-byte frames queued after them arrive: in ring mode the
/// refused frame is not tried again at every kick, jamming the ring (as it was until
/// 2026-12-07).
fn peer_refusal(tag: char, ring: bool) {
    let s = setup(tag);
    let mut port = open_mode(&s, ring);
    let (_, peer, _) = names(tag);
    s.ns.ip(&["link", "set", &peer, "mtu", "1000"]);
    let mut rx = mark_sink(
        &s,
        &peer,
        &["big--1", "small1", "big--2", "small2", "small3"],
        2,
    );
    let frame = |mark: &[u8], len: usize| marked(&[0x88, 0xb5], mark, len);
    let dropped = || -> u64 {
        std::fs::read_to_string(format!("/sys/class/net/{}/statistics/tx_dropped", s.host))
            .expect("the device's tx_dropped")
            .trim()
            .parse()
            .expect("a count")
    };
    let before = dropped();
    let _ = port.take_backend_drops();
    for (mark, len) in [
        (b"big--1", 1400),
        (b"small1", 200),
        (b"big--2", 1400),
        (b"small2", 200),
    ] {
        assert!(port.tx_enqueue(&frame(mark, len), &Offload::NONE));
    }
    port.tx_flush()
        .expect("the flush goes on past refused frames");
    assert!(port.tx_enqueue(&frame(b"small3", 200), &Offload::NONE));
    port.tx_flush().expect("flush");
    assert_eq!(rx.line(), "small1 small2 small3", "ring mode: {ring}");
    // In mmsg mode the second refused frame is tried twice: `sendmmsg` sends `small1`, stops
    // at `big--2` and says only how many it sent, so the next call starts with `big--2`.
    let tries = if ring { 2 } else { 3 };
    assert_eq!(dropped() - before, tries, "ring mode: {ring}");
    assert_eq!(
        port.take_backend_drops(),
        BackendDrops::default(),
        "ring mode: {ring}: the device's count, not the port's"
    );
    assert_eq!(port.close(), BackendDrops::default(), "ring mode: {ring}");
}

/// 70 frames the veth peer refuses (longer than its MTU), then a short one: each refusal ends
/// a kick, and a flush kicks at most 64 times, so the short frame is still queued after it.
/// The port's `maintain` (once a millisecond) sends it, with no new frame to flush.
#[test]
fn frames_a_ring_flush_leaves_queued_go_at_the_next_maintain() {
    if !privileged() {
        return;
    }
    let s = setup('p');
    let mut port = open(&s);
    let (_, peer, _) = names('p');
    s.ns.ip(&["link", "set", &peer, "mtu", "1000"]);
    let mut rx = mark_sink(&s, &peer, &["short1"], 2);
    for i in 0..70u8 {
        assert!(port.tx_enqueue(&marked(&[0x88, 0xb5], &[b'b', i], 1400), &Offload::NONE));
    }
    assert!(port.tx_enqueue(&marked(&[0x88, 0xb5], b"short1", 60), &Offload::NONE));
    port.tx_flush().expect("flush");
    port.maintain();
    assert_eq!(rx.line(), "short1");
    assert_eq!(port.close(), BackendDrops::default());
}

#[test]
fn frames_a_qdisc_drops_are_the_ports_count_and_the_frames_after_them_go() {
    if !privileged() {
        return;
    }
    for (tag, ring) in [('n', true), ('o', false)] {
        qdisc_drops(tag, ring);
    }
}

/// A qdisc that takes nothing (`pfifo limit 0`) on the port's device: each send fails with
/// `ENOBUFS`, as for a frame the veth peer refuses, but the device counts none of them (the
/// qdisc does). The port counts them as `backend` drops, since nothing else the switch reads
/// does; and once the qdisc is gone, frames go again (the ring was not left stuck).
fn qdisc_drops(tag: char, ring: bool) {
    let s = setup(tag);
    let mut port = open_mode(&s, ring);
    let (_, peer, _) = names(tag);
    common::ip(&["link", "set", &s.host, "up"]);
    assert!(common::quiet(&[
        "tc", "qdisc", "replace", "dev", &s.host, "root", "pfifo", "limit", "0"
    ]));
    let before =
        std::fs::read_to_string(format!("/sys/class/net/{}/statistics/tx_dropped", s.host))
            .expect("tx_dropped");
    let _ = port.take_backend_drops();
    for i in 0..10u8 {
        assert!(port.tx_enqueue(&marked(&[0x88, 0xb5], &[b'q', i], 60), &Offload::NONE));
    }
    let _ = port.tx_flush();
    assert_eq!(
        port.take_backend_drops(),
        BackendDrops::other(0, 10),
        "ring mode: {ring}"
    );
    let after = std::fs::read_to_string(format!("/sys/class/net/{}/statistics/tx_dropped", s.host))
        .expect("tx_dropped");
    assert_eq!(before, after, "ring mode: {ring}: the device counted none");
    assert!(common::quiet(&[
        "tc", "qdisc", "del", "dev", &s.host, "root"
    ]));
    let mut rx = mark_sink(&s, &peer, &["after1"], 2);
    assert!(port.tx_enqueue(&marked(&[0x88, 0xb5], b"after1", 60), &Offload::NONE));
    port.tx_flush().expect("flush");
    assert_eq!(rx.line(), "after1", "ring mode: {ring}");
    assert_eq!(port.close(), BackendDrops::default(), "ring mode: {ring}");
}

#[test]
fn kernel_drops_are_reported_as_a_full_receive_ring() {
    if !privileged() {
        return;
    }
    let s = setup('e');
    // The smallest receive buffer the kernel allows: a burst overflows it (in mmsg mode; the
    // ring mode's drops are in `a_full_rx_ring_drops_are_reported_as_ring_full`).
    let opts = AfPacketOptions {
        rcvbuf: 1,
        ring: false,
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
    // PACKET_STATISTICS drops are reported, as a full receive ring (or buffer).
    let d = port.take_backend_drops();
    assert!(d.rx_ring_full > 0 && d.no_rx_buffer + d.other == 0, "{d:?}");
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

// ---------------------------------------------------------------------------------------------
// Ring mode

/// Receives until `want` frames to UDP port `dport` were seen (or `timeout`); their payloads in
/// arrival order, with each frame's length and offload state.
fn collect_udp(
    port: &mut AfPacketPort,
    dport: u16,
    want: usize,
    timeout: Duration,
) -> Vec<(Vec<u8>, usize, Offload)> {
    let mut got = Vec::new();
    common::poll_rx(port, timeout, |port, batch, _| {
        for d in batch.descs() {
            let f = port.frame(d);
            if let Some((_, dp, payload)) = udp_of(f)
                && dp == dport
            {
                got.push((payload, f.len(), d.offload));
            }
        }
        got.len() >= want
    });
    got
}

#[test]
fn the_rx_ring_wraps_around_over_several_bursts_in_order() {
    if !privileged() {
        return;
    }
    let s = setup('w');
    let mut port = open(&s);
    assert!(port.has_rings());
    // 6 bursts of 400 frames: 2400 frames through a 1024-slot ring, each burst fitting in it.
    let _p = s.ns.python(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for b in range(6):\n    for i in range(400):\n        \
         s.sendto(b'%06d' % (b * 400 + i), ('10.78.0.2', 9100))\n    time.sleep(0.1)\n",
    );
    let got = collect_udp(&mut port, 9100, 2400, Duration::from_secs(20));
    let seqs: Vec<usize> = got
        .iter()
        .map(|(p, _, _)| {
            std::str::from_utf8(p)
                .expect("ascii")
                .parse()
                .expect("number")
        })
        .collect();
    assert_eq!(seqs.len(), 2400, "every frame arrives");
    assert!(seqs.iter().enumerate().all(|(i, s)| i == *s), "in order");
    assert_eq!(port.take_backend_drops().total(), 0);
}

#[test]
fn the_tx_ring_wraps_around_over_several_flushes() {
    if !privileged() {
        return;
    }
    let s = setup('x');
    let mut port = open(&s);
    assert!(port.has_rings());
    let addr = NET.ns_addr();
    // 5 flushes of 250 frames: 1250 frames through a 512-slot ring.
    let mut p = s.ns.python(&format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE\n\
         s.bind(('{addr}', 7778))\n\
         s.settimeout(10)\n\
         print('ready', flush=True)\n\
         seen = [int(s.recvfrom(64)[0]) for _ in range(1250)]\n\
         print('ok' if seen == list(range(1250)) else 'bad %r' % seen[:20], flush=True)\n"
    ));
    assert_eq!(p.line(), "ready");
    for b in 0..5 {
        for i in 0..250 {
            let seq = format!("{:06}", b * 250 + i);
            assert!(port.tx_enqueue(&NET.udp_frame(NS_MAC, 7778, seq.as_bytes()), &Offload::NONE));
        }
        port.tx_flush().expect("tx_flush");
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(p.line(), "ok");
    assert_eq!(port.take_backend_drops().total(), 0);
}

#[test]
fn frames_longer_than_a_ring_slot_arrive_whole_and_in_order_with_short_ones() {
    if !privileged() {
        return;
    }
    let s = setup('l');
    let mut port = open(&s);
    assert!(port.has_rings());
    // 20 rounds of: a short datagram, a 6000-byte UDP GSO super-frame (longer than a 2048-byte
    // ring slot: it comes through the socket's copy queue), another short one. 20 super-frames
    // in a row exceed the port's 8 big rx slots per burst.
    let _p = s.ns.python(
        "import socket\n\
         a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         g = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         g.setsockopt(socket.IPPROTO_UDP, 103, 1000)  # UDP_SEGMENT\n\
         for i in range(20):\n    a.sendto(b'a%02d' % i, ('10.78.0.2', 9200))\n    \
         g.sendto(b'%02d' % i + b'g' * 5998, ('10.78.0.2', 9200))\n    \
         a.sendto(b'b%02d' % i, ('10.78.0.2', 9200))\n",
    );
    let got = collect_udp(&mut port, 9200, 60, Duration::from_secs(10));
    assert_eq!(got.len(), 60, "every frame arrives");
    for (i, round) in got.chunks(3).enumerate() {
        assert_eq!(round[0].0, format!("a{i:02}").into_bytes());
        let (big, len, o) = &round[1];
        assert_eq!(big.len(), 6000, "the super-frame arrives whole");
        assert_eq!(&big[..2], format!("{i:02}").as_bytes());
        assert_eq!(*len, 14 + 20 + 8 + 6000);
        assert_eq!(o.gso_type, Offload::GSO_UDP_L4);
        assert_eq!(round[2].0, format!("b{i:02}").into_bytes());
    }
    assert_eq!(port.take_backend_drops().total(), 0);
}

#[test]
fn a_gso_super_frame_goes_both_ways_through_the_rings_port() {
    if !privileged() {
        return;
    }
    let s = setup('s');
    let mut port = open(&s);
    assert!(port.has_rings());
    common::tcp_from_ns_arrives_as_gso_super_frames(&mut port, &s.ns, &NET, NS_MAC, "ring");
    common::a_tso_super_frame_reaches_a_tcp_socket_in_the_namespace(&mut port, &s.ns, &NET, NS_MAC);
}

#[test]
fn a_full_rx_ring_drops_are_reported_as_ring_full() {
    if !privileged() {
        return;
    }
    let s = setup('f');
    let mut port = open(&s);
    assert!(port.has_rings());
    // 3000 frames with nobody reading: more than the ring's 1024 slots.
    let mut p = s.ns.python(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for _ in range(3000):\n    s.sendto(b'y' * 100, ('10.78.0.2', 9998))\n\
         print('sent', flush=True)\n",
    );
    assert_eq!(p.line(), "sent");
    // PACKET_STATISTICS drops are reported, as a full receive ring (or buffer).
    let d = port.take_backend_drops();
    assert!(d.rx_ring_full > 0 && d.no_rx_buffer + d.other == 0, "{d:?}");
    // What fit is delivered, and the ring goes on after it.
    let got = collect_udp(&mut port, 9998, 1024, Duration::from_secs(5));
    assert!(got.len() >= 1000, "{} frames", got.len());
}

#[test]
fn the_mmsg_mode_still_works_when_asked_for() {
    if !privileged() {
        return;
    }
    let s = setup('m');
    let opts = AfPacketOptions {
        ring: false,
        ..AfPacketOptions::default()
    };
    let mut port = AfPacketPort::open_with(&s.host, &opts).expect("open afpacket port");
    assert!(!port.has_rings());
    common::tcp_from_ns_arrives_as_gso_super_frames(&mut port, &s.ns, &NET, NS_MAC, "mmsg");
    common::a_tso_super_frame_reaches_a_tcp_socket_in_the_namespace(&mut port, &s.ns, &NET, NS_MAC);
}

/// A UDP frame to port 9 with `payload` bytes of `fill`.
fn udp9(payload: usize, fill: u8) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0x79, 1], [2, 0, 0, 0, 0x79, 2])
        .ipv4([10, 79, 0, 1], [10, 79, 0, 2], 64)
        .udp(1000, 9)
        .write(&mut v, &vec![fill; payload])
        .expect("frame");
    v
}

/// Frames from `port` whose UDP payload starts with `fill`, polled for `timeout`.
fn count_filled(port: &mut AfPacketPort, fill: u8, want: usize, timeout: Duration) -> usize {
    let mut got = 0;
    common::poll_rx(port, timeout, |port, batch, _| {
        for d in batch.descs() {
            if udp_of(port.frame(d)).is_some_and(|(_, dst, p)| dst == 9 && p.first() == Some(&fill))
            {
                got += 1;
            }
        }
        got >= want
    });
    got
}

#[test]
fn an_unexpressible_gso_frame_is_dropped_and_traffic_goes_on_in_both_modes() {
    if !privileged() {
        return;
    }
    for ring in [false, true] {
        // A tap this test holds open: what it writes arrives on the device, where the port
        // listens. The tap goes away with the descriptor.
        let name = format!("vtg{}{}", u8::from(ring), std::process::id() % 10_000);
        let tap = datapath::sys::tun::TunFd::open_tap(&name).expect("tap");
        common::ip(&["link", "set", &name, "up"]);
        let opts = AfPacketOptions {
            ring,
            ..AfPacketOptions::default()
        };
        let mut port = AfPacketPort::open_with(&name, &opts).expect("open afpacket port");
        assert_eq!(port.has_rings(), ring);
        let plain = [0u8; datapath::sys::tun::VNET_HDR_LEN];
        for _ in 0..3 {
            tap.write_frame(&plain, &udp9(18, 0xa1)).expect("write");
        }
        assert_eq!(count_filled(&mut port, 0xa1, 3, Duration::from_secs(2)), 3);
        // UFO (VIRTIO_NET_HDR_GSO_UDP): accepted from a tap, but not expressible in the
        // header the packet socket writes, so the kernel drops it on the way to the port. On
        // Linux 6.18 that also leaves a TPACKET_V2 ring's head slot marked as owned, and the
        // kernel drops every later frame: the port must notice and rebuild its ring.
        let ufo = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_UDP,
            hdr_len: 42,
            gso_size: 1000,
            csum_start: 34,
            csum_offset: 6,
        };
        let mut hdr = [0u8; datapath::sys::tun::VNET_HDR_LEN];
        datapath::sys::tun::encode_vnet_hdr(&ufo, &mut hdr);
        tap.write_frame(&hdr, &udp9(3000, 0xb2)).expect("write UFO");
        // A frame every few milliseconds until one arrives (at most 3 s). In between, the
        // backend drops are collected as the worker does (every 1,024 passes): that must not
        // hide the kernel's drops from the port's stop check.
        let mut after = 0;
        let mut dropped = 0;
        for _ in 0..600 {
            tap.write_frame(&plain, &udp9(18, 0xc3)).expect("write");
            dropped += port.take_backend_drops().total();
            after += count_filled(&mut port, 0xc3, 1, Duration::from_millis(5));
            if after > 0 {
                break;
            }
        }
        assert!(
            after > 0,
            "ring={ring}: nothing received after the UFO frame"
        );
        // The rest of a burst arrives whole.
        for _ in 0..20 {
            tap.write_frame(&plain, &udp9(18, 0xd4)).expect("write");
        }
        assert_eq!(
            count_filled(&mut port, 0xd4, 20, Duration::from_secs(2)),
            20,
            "ring={ring}"
        );
        dropped += port.take_backend_drops().total();
        assert!(
            dropped >= 1,
            "ring={ring}: the dropped frame(s) are counted"
        );
        assert_eq!(port.rebuilds(), u64::from(ring), "ring={ring}: one rebuild");
    }
}

#[test]
fn a_ring_that_overflowed_is_not_taken_for_a_stopped_one() {
    if !privileged() {
        return;
    }
    let name = format!("vto{}", std::process::id() % 10_000);
    let tap = datapath::sys::tun::TunFd::open_tap(&name).expect("tap");
    common::ip(&["link", "set", &name, "up"]);
    let mut port = AfPacketPort::open(&name).expect("open afpacket port");
    assert!(port.has_rings());
    let plain = [0u8; datapath::sys::tun::VNET_HDR_LEN];
    // More frames than the rx ring's 1,024 slots, with nobody reading: the kernel drops the
    // rest. Then housekeeping runs before any rx_burst (as a worker's pass does after a
    // sleep), several times, with more drops between the checks: frames wait in the ring, so
    // those drops are not a stop.
    for _ in 0..1_200 {
        tap.write_frame(&plain, &udp9(18, 0xe5)).expect("write");
    }
    for _ in 0..3 {
        port.maintain();
        // The ring is still full: these are dropped too, before the next check.
        for _ in 0..10 {
            tap.write_frame(&plain, &udp9(18, 0xe5)).expect("write");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(port.rebuilds(), 0, "a healthy ring was rebuilt");
    assert!(
        port.take_backend_drops().total() >= 1,
        "the overflow is counted"
    );
    // Every frame the ring held is still there.
    let got = count_filled(&mut port, 0xe5, 1_024, Duration::from_secs(2));
    assert!(got >= 1_000, "{got} frames left in the ring");
}

// ---------------------------------------------------------------------------------------------
// Link flaps, blocked rings and the worker's retry (found by an audit, 2026-12-07)

/// Waits until the namespace's end of `s` (peer `peer`) has its carrier back.
fn carrier_back(s: &Setup, peer: &str) {
    assert!(common::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || s.ns
            .run(&["cat", &format!("/sys/class/net/{peer}/carrier")])
            .trim()
            == "1"
    ));
}

/// After a link flap the kernel leaves `ENETDOWN` on the socket, and the next read of the
/// copies of frames longer than a ring slot reported it and stopped: the port dropped those
/// frames (counted) and from then on paired every long frame with a later one's copy. Three
/// UDP GSO super-frames after the flap, then three more: each arrives once, with its own
/// payload, none counted as dropped (fails without reading on after the error).
#[test]
fn long_frames_after_a_link_flap_keep_their_own_payload() {
    if !privileged() {
        return;
    }
    let s = setup('A');
    let (_, peer, _) = names('A');
    let mut port = open(&s);
    assert!(port.has_rings());
    common::ip(&["link", "set", &s.host, "down"]);
    common::ip(&["link", "set", &s.host, "up"]);
    carrier_back(&s, &peer);
    let _ = port.take_backend_drops();
    let send = |first: u32| {
        let mut p = s.ns.python(&format!(
            "import socket\n\
             g = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             g.setsockopt(socket.IPPROTO_UDP, 103, 1000)  # UDP_SEGMENT\n\
             for i in range({first}, {first} + 3):\n    \
             g.sendto(b'%02d' % i + b'g' * 5998, ('10.78.0.2', 9300))\n\
             print('sent', flush=True)\n"
        ));
        assert_eq!(p.line(), "sent");
    };
    send(0);
    let mut got = collect_udp(&mut port, 9300, 3, Duration::from_secs(1));
    send(10);
    got.extend(collect_udp(
        &mut port,
        9300,
        6 - got.len(),
        Duration::from_secs(1),
    ));
    let marks: Vec<String> = got
        .iter()
        .map(|(p, _, _)| String::from_utf8_lossy(&p[..2]).into_owned())
        .collect();
    assert_eq!(
        (marks.join(" ").as_str(), port.take_backend_drops()),
        ("00 01 02 10 11 12", BackendDrops::default()),
        "frames received (by their first payload bytes) and drops"
    );
}

/// After a link flap the first send reports the `ENETDOWN` the kernel left on the socket
/// instead of sending: ring mode then left the frame queued and its `maintain` stopped kicking
/// (the device looked down); mmsg mode dropped a good frame. Frames arrive meanwhile (one waits
/// in the receive ring, so no quiet `maintain` clears the error first). Now the port sends
/// once more: the frame goes, nothing is dropped.
fn flap_then_send(tag: char, ring: bool) {
    let s = setup(tag);
    let (_, peer, _) = names(tag);
    let mut port = open_mode(&s, ring);
    assert_eq!(port.has_rings(), ring);
    common::ip(&["link", "set", &s.host, "down"]);
    common::ip(&["link", "set", &s.host, "up"]);
    carrier_back(&s, &peer);
    let mut p = s.ns.python(
        "import socket\n\
         socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'in', ('10.78.0.2', 9301))\n\
         print('sent', flush=True)\n",
    );
    assert_eq!(p.line(), "sent");
    std::thread::sleep(Duration::from_millis(50));
    let _ = port.take_backend_drops();
    let mut rx = mark_sink(&s, &peer, &["after-flap"], 1);
    assert!(port.tx_enqueue(&marked(&[0x88, 0xb5], b"after-flap", 60), &Offload::NONE));
    let flushed = port.tx_flush();
    for _ in 0..200 {
        port.maintain();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        (
            rx.line().as_str(),
            port.take_backend_drops(),
            flushed.map_err(|e| e.raw_os_error())
        ),
        ("after-flap", BackendDrops::default(), Ok(())),
        "ring mode {ring}: (frames seen in the namespace, port's drops, flush result)"
    );
}

#[test]
fn a_frame_sent_after_a_link_flap_goes_out() {
    if !privileged() {
        return;
    }
    for (tag, ring) in [('B', true), ('C', false)] {
        flap_then_send(tag, ring);
    }
}

/// Frames flushed while the device is down stay queued in the ring (`ENETDOWN`); once it is
/// up again they go at `maintain`, which kicks a blocked ring every 64 calls, with no new
/// frame for the port (before, they waited for one, however long).
#[test]
fn frames_queued_while_the_device_was_down_go_when_it_is_up_again() {
    if !privileged() {
        return;
    }
    let s = setup('D');
    let (_, peer, _) = names('D');
    let mut port = open(&s);
    assert!(port.has_rings());
    common::ip(&["link", "set", &s.host, "down"]);
    let _ = port.take_backend_drops();
    for m in [b"down-1", b"down-2", b"down-3"] {
        assert!(port.tx_enqueue(&marked(&[0x88, 0xb5], m, 60), &Offload::NONE));
    }
    let err = port.tx_flush().expect_err("the device is down");
    assert_eq!(err.raw_os_error(), Some(libc::ENETDOWN));
    for _ in 0..10 {
        port.maintain();
    }
    common::ip(&["link", "set", &s.host, "up"]);
    carrier_back(&s, &peer);
    let mut rx = mark_sink(&s, &peer, &["down-1", "down-2", "down-3"], 1);
    for _ in 0..300 {
        port.maintain();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(rx.line(), "down-1 down-2 down-3");
    assert_eq!(port.take_backend_drops(), BackendDrops::default());
}

/// How the worker queues a frame (`enqueue` in datapath/src/worker.rs): when the queue is
/// full it flushes once and tries again, whatever the flush returned (its error may be one
/// refused frame's, or an earlier direct send's, everything else sent).
fn enqueue_as_the_worker_does(port: &mut AfPacketPort, frame: &[u8], off: &Offload) -> bool {
    port.tx_enqueue(frame, off) || {
        let _ = port.tx_flush();
        port.tx_enqueue(frame, off)
    }
}

/// The port's side of the worker's retry: a flush that returns an error (one refused frame
/// among many) still makes room. Mmsg mode: 63 good frames and one the kernel refuses
/// (`EINVAL`, a counted backend drop) fill the 64 slots; the next frame is queued after the
/// flush, and one bad frame is one drop (the worker gave up on a flush error before, a
/// second drop).
#[test]
fn a_flush_that_returns_an_error_still_makes_room() {
    if !privileged() {
        return;
    }
    let s = setup('E');
    let (_, peer, _) = names('E');
    let mut port = open_mode(&s, false);
    let _ = port.take_backend_drops();
    for i in 0..64u8 {
        let (f, o) = if i == 10 {
            (marked(&[0x88, 0xb5], b"bad", 100), common::BAD_GSO)
        } else {
            (marked(&[0x88, 0xb5], &[b'g', i], 60), Offload::NONE)
        };
        assert!(port.tx_enqueue(&f, &o), "frame {i}");
    }
    let mut rx = mark_sink(&s, &peer, &["next"], 1);
    let f = marked(&[0x88, 0xb5], b"next", 60);
    assert!(!port.tx_enqueue(&f, &Offload::NONE), "the queue is full");
    assert!(port.tx_flush().is_err(), "the bad frame's error");
    assert!(enqueue_as_the_worker_does(&mut port, &f, &Offload::NONE));
    let _ = port.tx_flush();
    assert_eq!(rx.line(), "next");
    assert_eq!(port.take_backend_drops().tx, 1);
}

/// Ring mode: a frame whose partial checksum starts inside the first 20 bytes is refused by
/// the kernel, which skips its slot without a word (`PACKET_LOSS`); the port checks it first
/// and counts it, as mmsg mode's failed send is (lost uncounted before).
#[test]
fn a_frame_the_kernel_would_skip_silently_is_counted() {
    if !privileged() {
        return;
    }
    for (tag, ring) in [('F', true), ('G', false)] {
        let s = setup(tag);
        let mut port = open_mode(&s, ring);
        let _ = port.take_backend_drops();
        let o = Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: 16,
            csum_offset: 0,
            ..Offload::NONE
        };
        assert!(port.tx_enqueue(&marked(&[0x88, 0xb5], b"lowcsum", 60), &o));
        let _ = port.tx_flush();
        assert_eq!(port.take_backend_drops().tx, 1, "ring mode {ring}");
    }
}

/// As a worker runs the port (`rx_burst`, `rx_release`, `maintain` about once a millisecond)
/// while the namespace sends a numbered stream (a short datagram every ~0.5 ms, a 6,000-byte
/// UDP GSO super-frame every 10th), the device flaps at once (`ip -batch`). Frames lost while
/// it is down are fine; those received come in the order sent, and the port drops none.
#[test]
fn a_quick_link_flap_under_traffic_keeps_long_frames_in_order() {
    if !privileged() {
        return;
    }
    let s = setup('H');
    let mut port = open(&s);
    assert!(port.has_rings());
    let mut p = s.ns.python(
        "import socket, time\n\
         a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         g = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         g.setsockopt(socket.IPPROTO_UDP, 103, 1000)  # UDP_SEGMENT\n\
         print('go', flush=True)\n\
         for i in range(4000):\n    \
         if i % 10 == 9:\n        g.sendto(b'%06d' % i + b'g' * 5994, ('10.78.0.2', 9400))\n    \
         else:\n        a.sendto(b'%06d' % i, ('10.78.0.2', 9400))\n    \
         time.sleep(0.0005)\n",
    );
    assert_eq!(p.line(), "go");
    let host = s.host.clone();
    let flapper = std::thread::spawn(move || {
        use std::io::Write;
        std::thread::sleep(Duration::from_millis(500));
        let mut c = std::process::Command::new("ip")
            .args(["-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("ip -batch");
        c.stdin
            .take()
            .expect("stdin")
            .write_all(format!("link set {host} down\nlink set {host} up\n").as_bytes())
            .expect("write");
        assert!(c.wait().expect("ip").success());
    });
    let _ = port.take_backend_drops();
    let mut seqs: Vec<(u32, bool)> = Vec::new();
    let mut batch = datapath::buf::RxBatch::new();
    let start = std::time::Instant::now();
    let mut last_maintain = start;
    while start.elapsed() < Duration::from_secs(5) {
        batch.clear();
        let n = port.rx_burst(0, &mut batch).expect("rx_burst");
        for d in batch.descs() {
            if let Some((_, 9400, payload)) = udp_of(port.frame(d)) {
                let seq: u32 = std::str::from_utf8(&payload[..6])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .expect("a numbered datagram");
                seqs.push((seq, payload.len() > 100));
            }
        }
        port.rx_release(0, &batch);
        if last_maintain.elapsed() >= Duration::from_millis(1) {
            last_maintain = std::time::Instant::now();
            port.maintain();
        }
        if n == 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    flapper.join().expect("flap");
    let drops = port.take_backend_drops();
    let out_of_order: Vec<_> = seqs
        .windows(2)
        .filter(|w| w[1].0 <= w[0].0)
        .take(5)
        .collect();
    let long = seqs.iter().filter(|(_, l)| *l).count();
    assert!(long > 100, "{long} long frames received");
    assert!(
        out_of_order.is_empty() && drops.other == 0,
        "{} frames ({long} long): out of order {out_of_order:?}, port drops {drops:?}",
        seqs.len()
    );
}
