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
    setup_with(tag, &TapOptions::default())
}

fn setup_with(tag: char, opts: &TapOptions) -> Setup {
    let name = dev_name(tag);
    let host = Link(name.clone());
    let ns = Netns::new(format!("{name}ns"));
    let port = TapPort::open_with(&name, opts).expect("open tap port");
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
fn bursts_cross_the_port_whole_and_in_order_with_and_without_io_uring() {
    if !privileged() {
        return;
    }
    // io_uring is there unless the administrator turned it off.
    let allowed = std::fs::read_to_string(IO_URING_DISABLED).map_or(true, |v| v.trim() == "0");
    for (tag, io_uring) in [('r', true), ('s', false)] {
        let mut s = setup_with(
            tag,
            &TapOptions {
                io_uring,
                ..TapOptions::default()
            },
        );
        assert_eq!(s.port.batched(), io_uring && allowed, "io_uring {io_uring}");
        bursts_both_ways(&mut s, &format!("io_uring {io_uring}"));
    }
}

#[test]
fn a_tap_port_falls_back_to_system_calls_where_io_uring_is_disabled() {
    if !privileged() {
        return;
    }
    if !Path::new(IO_URING_DISABLED).exists() {
        // Kernels before 6.6 have no such switch; under CI the kernel is newer.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{IO_URING_DISABLED} is missing"
        );
        eprintln!("skipped: {IO_URING_DISABLED} is missing (kernel before 6.6)");
        return;
    }
    let mut s = {
        // Disabled for everyone while the port opens, put back at once (also on panic).
        let _off = testbed::SetFor::set(Path::new(IO_URING_DISABLED), "2").expect("sysctl");
        setup('t')
    };
    assert!(!s.port.batched(), "no ring where io_uring is disabled");
    bursts_both_ways(&mut s, "io_uring disabled");
}

/// The switch for io_uring (`0` allowed, `2` refused to all).
const IO_URING_DISABLED: &str = "/proc/sys/kernel/io_uring_disabled";

/// 300 datagrams queued on the tap before the port reads any (the first burst reads a full
/// batch, the next ones through the ring when it has one), then 100 frames written in one
/// flush with a frame longer than a tx slot (written at once, after those before it) in the
/// middle: every frame arrives, in order, and none is dropped.
fn bursts_both_ways(s: &mut Setup, what: &str) {
    const N: usize = 300;
    let peer = NET.peer_addr();
    s.ns.run(&[
        common::python(),
        "-c",
        &format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             for i in range({N}):\n    s.sendto(b'seq %d' % i, ('{peer}', 9999))\n"
        ),
    ]);
    let mut seen = Vec::new();
    common::poll_rx(&mut s.port, Duration::from_secs(5), |port, batch, _| {
        for d in batch.descs() {
            if let Some((_, 9999, payload)) = common::udp_of(port.frame(d)) {
                seen.push(String::from_utf8(payload).expect("ascii"));
            }
        }
        seen.len() >= N
    });
    let want: Vec<String> = (0..N).map(|i| format!("seq {i}")).collect();
    assert_eq!(seen, want, "{what}: every datagram, in order");
    let addr = NET.ns_addr();
    let mut p = s.ns.python(&format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('{addr}', 7778))\n\
         s.settimeout(10)\n\
         print('ready', flush=True)\n\
         for _ in range(101):\n    print(s.recvfrom(8192)[0][:8].decode(), flush=True)\n"
    ));
    assert_eq!(p.line(), "ready");
    let mut sent = Vec::new();
    for i in 0..101 {
        let payload = if i == 50 {
            let mut b = b"big".to_vec();
            b.resize(4000, b'.');
            b
        } else {
            format!("n{i}").into_bytes()
        };
        sent.push(String::from_utf8(payload[..payload.len().min(8)].to_vec()).expect("ascii"));
        assert!(s.port.tx_enqueue(
            &NET.udp_frame(s.tap_mac, 7778, &payload),
            &datapath::buf::Offload::NONE
        ));
    }
    s.port.tx_flush().expect("flush");
    let got: Vec<String> = (0..101).map(|_| p.line()).collect();
    assert_eq!(got, sent, "{what}: every frame, in order");
    assert_eq!(s.port.take_backend_drops().total(), 0, "{what}");
}

#[test]
fn dropping_the_port_deletes_the_tap_it_created() {
    if !privileged() {
        return;
    }
    let name = dev_name('d');
    let _host = Link(name.clone());
    let ns = Netns::new(format!("{name}ns"));
    let port = TapPort::open_with(
        &name,
        &TapOptions {
            link_up: true,
            ..TapOptions::default()
        },
    )
    .expect("open");
    assert!(port.created());
    let flags = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).expect("flags");
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).expect("hex");
    assert_ne!(flags & 1, 0, "link_up brought the device up");
    ip(&["link", "set", &name, "netns", &ns.0]);
    assert!(ip_ok(&["-n", &ns.0, "link", "show", "dev", &name]));
    drop(port);
    // At once: the port's io_uring gives the file back before the port closes it, so that
    // close is the last one (a ring torn down later would keep the device a while).
    assert!(
        !ip_ok(&["-n", &ns.0, "link", "show", "dev", &name]),
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
