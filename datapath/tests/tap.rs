//! Privileged tests of the TAP port on real tap devices in network namespaces.
//!
//! Each test opens its own tap (`vt<tag><pid>`), moves it into its own namespace
//! (`vt<tag><pid>ns`) with an address and a permanent neighbour entry for a peer that only
//! exists in the test (the test answers for it through the port), and deletes everything in
//! `Drop` guards, also on panic. Without root the tests print why and pass, unless `CI=true`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Link, Net, Netns, ip, ip_ok};
use datapath::port::tap::{TapOptions, TapPort};
use datapath::port::{Port, PortKind};

/// The namespace's address on the tap and the imaginary peer (MAC and address) the test
/// answers for.
const NET: Net = Net {
    peer_mac: [0x02, 0x00, 0x00, 0x00, 0x77, 0x02],
    peer_ip: [10, 77, 0, 2],
    ns_ip: [10, 77, 0, 1],
};

// ---------------------------------------------------------------------------------------------
// Environment

/// True when the test can run; otherwise prints why (or panics under `CI=true`).
fn privileged() -> bool {
    common::privileged(
        "not root (needs CAP_NET_ADMIN for tap devices and namespaces)",
        &[("/dev/net/tun is missing", &|| {
            Path::new("/dev/net/tun").exists()
        })],
    )
}

fn dev_name(tag: char) -> String {
    format!("vt{tag}{}", std::process::id())
}

/// A tap opened by the port, moved into its own namespace and configured there.
struct Setup {
    port: TapPort,
    tap_mac: [u8; 6],
    ns: Netns,
    _host: Link,
}

fn setup(tag: char) -> Setup {
    let name = dev_name(tag);
    let host = Link(name.clone());
    let ns = Netns::new(format!("{name}ns"));
    let port = TapPort::open(&name).expect("open tap port");
    assert!(port.created(), "the switch created {name}");
    assert!(!port.is_persistent());
    let tap_mac = common::mac_of(&name);
    ip(&["link", "set", &name, "netns", &ns.0]);
    ns.configure(&name, &NET);
    Setup {
        port,
        tap_mac,
        ns,
        _host: host,
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn udp_sent_in_the_namespace_arrives_with_its_payload_and_partial_checksum() {
    if !privileged() {
        return;
    }
    let mut s = setup('a');
    assert_eq!(s.port.kind(), PortKind::Tap);
    assert!(s.port.caps().tx_offload);
    assert_eq!(s.port.caps().max_frame_len, 65535 + 14);
    assert!(s.port.rx_fd(0).is_some());
    // TUN_F_CSUM is negotiated, so the stack leaves the checksum to us; the offsets are
    // relative to the Ethernet header.
    common::udp_from_ns_arrives_with_a_partial_checksum(&mut s.port, &s.ns, &NET, s.tap_mac);
}

#[test]
fn tcp_sent_in_the_namespace_arrives_as_gso_super_frames() {
    if !privileged() {
        return;
    }
    let mut s = setup('b');
    common::tcp_from_ns_arrives_as_gso_super_frames(&mut s.port, &s.ns, &NET, s.tap_mac, "tap");
}

#[test]
fn udp_gso_sent_in_the_namespace_arrives_as_one_uso_super_frame() {
    if !privileged() {
        return;
    }
    let mut s = setup('u');
    common::udp_gso_from_ns_arrives_as_one_uso_super_frame(&mut s.port, &s.ns, &NET, "tap");
}

#[test]
fn a_tso_super_frame_sent_through_the_port_reaches_a_tcp_socket_in_the_namespace() {
    if !privileged() {
        return;
    }
    let mut s = setup('g');
    common::a_tso_super_frame_reaches_a_tcp_socket_in_the_namespace(
        &mut s.port,
        &s.ns,
        &NET,
        s.tap_mac,
    );
}

#[test]
fn frames_sent_through_the_port_reach_a_socket_in_the_namespace() {
    if !privileged() {
        return;
    }
    let mut s = setup('c');
    // A frame the kernel refuses (unknown GSO type) is dropped and counted; the next one of
    // the same flush still goes out.
    let refused = [(NET.udp_frame(s.tap_mac, 7777, b"bad"), common::BAD_GSO)];
    common::frames_sent_through_the_port_reach_a_socket_in_the_namespace(
        &mut s.port,
        &s.ns,
        &NET,
        s.tap_mac,
        &refused,
    );
}

#[test]
fn dropping_the_port_deletes_the_tap_it_created() {
    if !privileged() {
        return;
    }
    let name = dev_name('d');
    let _host = Link(name.clone());
    let ns = Netns::new(format!("{name}ns"));
    let port = TapPort::open_with(&name, &TapOptions { link_up: true }).expect("open");
    assert!(port.created());
    let flags = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).expect("flags");
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).expect("hex");
    assert_ne!(flags & 1, 0, "link_up brought the device up");
    ip(&["link", "set", &name, "netns", &ns.0]);
    assert!(ip_ok(&["-n", &ns.0, "link", "show", "dev", &name]));
    drop(port);
    assert!(
        common::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            !ip_ok(&["-n", &ns.0, "link", "show", "dev", &name])
        }),
        "{name} still exists after drop"
    );
}

#[test]
fn a_persistent_tap_is_attached_and_left_in_place() {
    if !privileged() {
        return;
    }
    for (tag, extra) in [('e', None), ('f', Some("multi_queue"))] {
        let name = dev_name(tag);
        let _host = Link(name.clone());
        let mut args = vec!["tuntap", "add", "dev", &name, "mode", "tap"];
        args.extend(extra);
        ip(&args);
        let port = TapPort::open(&name).expect("attach to persistent tap");
        assert!(!port.created());
        assert!(port.is_persistent());
        assert_eq!(port.name(), name);
        drop(port);
        assert!(
            Path::new("/sys/class/net").join(&name).exists(),
            "{name} survives the port"
        );
    }
}

#[test]
fn bad_names_are_rejected() {
    let err = TapPort::open("a-name-that-is-too-long").expect_err("too long");
    assert!(
        matches!(
            err,
            datapath::port::PortError::Invalid { field: "name", .. }
        ),
        "{err}"
    );
}
