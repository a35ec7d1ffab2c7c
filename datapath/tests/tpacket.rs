//! Privileged tests of the packet socket TX ring ([`TxRing`]) on a veth pair.
//!
//! Each test makes its own veth pair: the host end (`vt<tag><pid>`, up, no address, IPv6 off so
//! the host stack stays quiet) carries the ring; the peer (`vu<tag><pid>`) sits up in the test's
//! namespace (`vt<tag><pid>ns`), where its receive counters tell what arrived. `Drop` guards
//! delete everything, also on panic. Without root the tests print why and pass, unless
//! `CI=true`.

mod common;

use std::time::Duration;

use common::{Link, Netns};
use datapath::sys::netdev;
use datapath::sys::packet::PacketSocket;
use datapath::sys::tpacket::{Reclaimed, RingGeometry, TxRing};

fn privileged() -> bool {
    common::privileged(
        "not root (needs CAP_NET_ADMIN and CAP_NET_RAW for veths, namespaces and packet sockets)",
        &[],
    )
}

/// A veth pair: host end up without addresses, peer end up in its own namespace.
struct Setup {
    host: String,
    peer: String,
    ns: Netns,
    _link: Link,
}

fn setup(tag: char) -> Setup {
    let pid = std::process::id();
    let (host, peer) = (format!("vt{tag}{pid}"), format!("vu{tag}{pid}"));
    let link = Link(host.clone());
    let ns = Netns::new(format!("vt{tag}{pid}ns"));
    common::veth_into(&ns, &host, &peer, None);
    ns.ip(&["link", "set", &peer, "up"]);
    Setup {
        host,
        peer,
        ns,
        _link: link,
    }
}

impl Setup {
    /// The peer's received (frames, bytes).
    fn peer_rx(&self) -> (u64, u64) {
        let stat = |name: &str| -> u64 {
            let path = format!("/sys/class/net/{}/statistics/{name}", self.peer);
            self.ns
                .run(&["cat", &path])
                .trim()
                .parse()
                .expect("counter")
        };
        (stat("rx_packets"), stat("rx_bytes"))
    }

    /// A TX ring of 64 slots for frames up to 1000 bytes on the host end.
    fn ring(&self) -> TxRing {
        let sock = PacketSocket::open().expect("packet socket");
        sock.bind(netdev::ifindex(&self.host).expect("ifindex"))
            .expect("bind");
        let geo = RingGeometry::new(1000, 1 << 20, 64).expect("geometry");
        assert_eq!(geo.frame_nr(), 64);
        TxRing::new(sock, geo).expect("tx ring")
    }
}

/// Writes a frame into `buf`: to an address nobody has, from a locally administered one, with
/// payload bytes `n`.
fn fill(buf: &mut [u8], n: u8) {
    buf[..6].copy_from_slice(&[0x02, 0, 0, 0, 0x7e, 0x02]);
    buf[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0x7e, 0x01]);
    buf[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental ethertype
    buf[14..].fill(n);
}

/// Reclaims until nothing is in flight (or 2 s passed), adding up what came back.
fn drain(r: &mut TxRing) -> Reclaimed {
    let mut total = Reclaimed::default();
    common::wait_until(Duration::from_secs(2), Duration::from_millis(1), || {
        let got = r.reclaim();
        total.sent += got.sent;
        total.refused |= got.refused;
        r.in_flight() == 0 || got.refused
    });
    total
}

#[test]
fn frames_in_the_ring_arrive_whole_and_their_slots_come_back() {
    if !privileged() {
        return;
    }
    let s = setup('a');
    let mut r = s.ring();
    let (p0, b0) = s.peer_rx();
    // Five rounds of 50 frames go round the 64 slots several times.
    let mut bytes = 0;
    for round in 0..5u8 {
        for k in 0..50usize {
            let len = 60 + k * 19; // 60..=991
            assert!(r.push(len, |b| fill(b, round)));
            bytes += len as u64;
        }
        assert_eq!(r.in_flight(), 50);
        r.kick().expect("kick");
        assert!(!r.waiting(), "veth takes every frame in the kick");
        let got = drain(&mut r);
        assert_eq!(
            got,
            Reclaimed {
                sent: 50,
                refused: false
            }
        );
        assert_eq!(r.free(), 64);
    }
    assert!(common::wait_until(
        Duration::from_secs(2),
        Duration::from_millis(5),
        || s.peer_rx() == (p0 + 250, b0 + bytes)
    ));
}

#[test]
fn a_refused_frame_is_reported_and_the_ring_sends_nothing_after_it() {
    if !privileged() {
        return;
    }
    let s = setup('b');
    let mut r = s.ring();
    let (p0, _) = s.peer_rx();
    for _ in 0..3 {
        assert!(r.push(100, |b| fill(b, 1)));
    }
    // Shorter than an Ethernet header: the kernel cannot send it.
    assert!(r.push(10, |b| b.fill(0)));
    for _ in 0..2 {
        assert!(r.push(100, |b| fill(b, 2)));
    }
    let e = r.kick().expect_err("the kernel refuses the short frame");
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
    let got = drain(&mut r);
    assert_eq!(
        got,
        Reclaimed {
            sent: 3,
            refused: true
        }
    );
    assert_eq!(r.in_flight(), 3);
    // Kicking again neither sends past the refused frame nor blocks.
    assert_eq!(r.kick().expect("a kick that moves nothing"), 0);
    assert_eq!(
        r.reclaim(),
        Reclaimed {
            sent: 0,
            refused: true
        }
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(s.peer_rx().0, p0 + 3);
}
