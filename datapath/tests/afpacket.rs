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
use datapath::port::{Port, PortError, PortKind};

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

/// The port on the host end of `s`.
fn open(s: &Setup) -> AfPacketPort {
    AfPacketPort::open(&s.host).expect("open afpacket port")
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
fn kernel_drops_are_reported_as_backend_drops() {
    if !privileged() {
        return;
    }
    let s = setup('e');
    // The smallest receive buffer the kernel allows: a burst overflows it (in mmsg mode; the
    // ring mode's drops are in `a_full_rx_ring_drops_are_reported_as_backend_drops`).
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
