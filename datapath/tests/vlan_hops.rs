//! VLAN hops a `normal` switch must not allow (an inline switch; found by an audit, 2026-12-07).
#![allow(clippy::unwrap_used)]

use datapath::port::mem::{MemPeer, MemPort, MemPortOptions};
use datapath::switch::{PollMode, Switch, SwitchConfig, VlanMode};
use etherparse::PacketBuilder;

fn mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, i]
}

fn udp_to(src: u8, dst: [u8; 6], dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac(src), dst)
        .ipv4([10, 0, 0, src], [10, 0, 0, dst[5]], 64)
        .udp(1000, dport)
        .write(&mut v, b"audit")
        .unwrap();
    v
}

/// `frame` with tags (TPID, TCI), outermost first, inserted after the MAC addresses.
fn tagged_tpid(frame: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut v = frame[..12].to_vec();
    for (tpid, tci) in tags {
        v.extend_from_slice(&tpid.to_be_bytes());
        v.extend_from_slice(&tci.to_be_bytes());
    }
    v.extend_from_slice(&frame[12..]);
    v
}

fn switch_with(modes: Vec<VlanMode>) -> (Switch, Vec<MemPeer>) {
    let mut sw = Switch::start(SwitchConfig {
        poll_mode: PollMode::Inline,
        ..SwitchConfig::default()
    })
    .unwrap();
    let peers = modes
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let (p, peer) = MemPort::new(&format!("m{}", i + 1), MemPortOptions::default());
            sw.add_port_backend(Box::new(p), m).unwrap();
            peer
        })
        .collect();
    (sw, peers)
}

/// VLAN a plain 802.1Q device would put `frame` in when it arrives on a port whose native
/// VLAN is `native`: the first tag's VID if the frame starts with an 0x8100 tag, else `native`.
fn dot1q_vlan(frame: &[u8], native: u16) -> u16 {
    if frame[12..14] == [0x81, 0x00] {
        u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff
    } else {
        native
    }
}

/// A trunk that only carries VLAN 10 (native 10) must not be able to put frames into VLAN 20
/// anywhere: a frame tagged [10][20] belongs to VLAN 10, but when it leaves untagged (the native
/// VLAN of another trunk, or an access port of VLAN 10) only the outer tag is popped and the
/// frame arrives there tagged 20: the classic double-tagging VLAN hop.
#[test]
fn double_tagged_frame_from_a_native_vlan_does_not_hop_into_the_inner_vlan() {
    let (mut sw, p) = switch_with(vec![
        // m1: attacker's trunk, carries VLAN 10 only (native 10).
        VlanMode::Trunk {
            allowed: vec![10],
            native: Some(10),
        },
        // m2: uplink trunk, VLANs 10 and 20, native 10.
        VlanMode::Trunk {
            allowed: vec![10, 20],
            native: Some(10),
        },
        // m3: access port in VLAN 10.
        VlanMode::Access { vlan: 10 },
    ]);
    let inner = udp_to(1, [0xff; 6], 7);
    let f = tagged_tpid(&inner, &[(0x8100, 10), (0x8100, 20)]);
    assert!(p[0].send(&f));
    sw.poll_inline();
    // Both copies would leave untagged: neither is sent, and the frame is counted once on m1
    // (each copy was, until 2026-12-07: one frame, two drops).
    let m1 = sw.port_stats(Some("m1")).unwrap().remove(0).1;
    assert_eq!(
        m1.rx_drops[datapath::stats::DropReason::VlanNotAllowed as usize],
        1
    );
    assert_eq!(m1.rx_dropped(), 1);
    for (i, peer) in p.iter().enumerate().skip(1) {
        for out in peer.drain() {
            assert_ne!(
                dot1q_vlan(&out, 10),
                20,
                "m{} got a VLAN-10 frame that now reads as VLAN 20: {:02x?}",
                i + 1,
                &out[..20]
            );
        }
    }
}

/// Same with an 802.1ad outer tag (which the switch also treats as a VLAN tag).
#[test]
fn s_tagged_frame_leaves_a_trunk_with_an_8021q_tag() {
    let (mut sw, p) = switch_with(vec![
        VlanMode::Trunk {
            allowed: vec![20],
            native: None,
        },
        VlanMode::Trunk {
            allowed: vec![20, 30],
            native: Some(30),
        },
    ]);
    let inner = udp_to(1, [0xff; 6], 7);
    let f = tagged_tpid(&inner, &[(0x88a8, 20)]);
    assert!(p[0].send(&f));
    sw.poll_inline();
    let out = p[1].drain();
    assert_eq!(out.len(), 1);
    // Classified VLAN 20, sent on a trunk tagged 20: a plain 802.1Q neighbour must see VLAN 20,
    // not its native VLAN 30.
    assert_eq!(dot1q_vlan(&out[0], 30), 20, "{:02x?}", &out[0][..18]);
}
