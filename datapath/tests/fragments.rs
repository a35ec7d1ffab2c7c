//! IP fragments cross the switch: the first fragment of a UDP datagram (whose UDP length is
//! the whole datagram's) is not a malformed frame, and a `select` group sends all the
//! fragments of a datagram to one bucket. Both found by an audit (2026-12-07); each test
//! failed before its fix.
#![allow(clippy::unwrap_used)]

mod mem;

use std::time::Duration;

use datapath::ofp::action::{Action, Instructions};
use datapath::ofp::field::Field;
use datapath::ofp::group::{Bucket, GroupType};
use datapath::ofp::pipeline::{FlowMod, GroupMod, ModCommand};
use datapath::port::mem::MemPeer;
use mem::{mf, threaded_switch};

const QUIET: Duration = Duration::from_millis(100);

fn mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, i]
}

/// The peers (indexes) that got a frame within `wait`, once per frame.
fn who_got(p: &[MemPeer], wait: Duration) -> Vec<usize> {
    let mut got = Vec::new();
    for (i, peer) in p.iter().enumerate() {
        while peer.recv_timeout(wait).is_some() {
            got.push(i);
        }
    }
    got
}

/// An IPv4 fragment 10.0.0.1 -> 10.0.0.9, protocol `proto`, id `id`, flags/offset `frag`.
fn ip_frag(proto: u8, id: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&mac(9));
    v.extend_from_slice(&mac(1));
    v.extend_from_slice(&[0x08, 0x00]);
    let total = u16::try_from(20 + payload.len()).unwrap();
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 9]);
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    v.extend_from_slice(&h);
    v.extend_from_slice(payload);
    v
}

/// The two fragments of one UDP datagram (sport -> 5001, 16 payload bytes): the first
/// carries the UDP header (length 24) and 8 bytes, the second the last 8 bytes.
fn udp_fragments(sport: u16) -> (Vec<u8>, Vec<u8>) {
    let mut first = Vec::new();
    first.extend_from_slice(&sport.to_be_bytes());
    first.extend_from_slice(&5001u16.to_be_bytes());
    first.extend_from_slice(&24u16.to_be_bytes());
    first.extend_from_slice(&[0, 0]);
    first.extend_from_slice(&[0xaa; 8]);
    (
        ip_frag(17, sport, 0x2000, &first),
        ip_frag(17, sport, 2, &[0xbb; 8]),
    )
}

/// The two fragments of one TCP segment (sport -> 80): a 20-byte header and 4 bytes, then 8.
fn tcp_fragments(sport: u16) -> (Vec<u8>, Vec<u8>) {
    let mut first = Vec::new();
    first.extend_from_slice(&sport.to_be_bytes());
    first.extend_from_slice(&80u16.to_be_bytes());
    first.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    first.extend_from_slice(&[0xaa; 4]);
    (
        ip_frag(6, sport, 0x2000, &first),
        ip_frag(6, sport, 3, &[0xbb; 8]),
    )
}

#[test]
fn the_learning_bridge_forwards_both_fragments_of_a_udp_datagram() {
    let (sw, p) = threaded_switch(2);
    let (a, b) = udp_fragments(4242);
    assert!(p[0].send(&a));
    assert!(p[0].send(&b));
    let mut got = Vec::new();
    while let Some((f, _)) = p[1].recv_timeout(QUIET) {
        got.push(f);
    }
    let m1 = sw.port_stats(Some("m1")).unwrap().remove(0).1;
    assert_eq!(m1.rx_dropped(), 0, "{m1:?}");
    assert_eq!(got, vec![a, b]);
    sw.shutdown();
}

#[test]
fn a_select_group_keeps_the_fragments_of_a_datagram_on_one_bucket() {
    let (mut sw, p) = threaded_switch(4);
    sw.group_mod(&GroupMod {
        command: ModCommand::Add,
        id: Some(7),
        kind: GroupType::Select,
        buckets: (2..=4)
            .map(|o| Bucket {
                weight: 1,
                watch_port: None,
                actions: vec![Action::Output(o)],
            })
            .collect(),
    })
    .unwrap();
    sw.flow_mod(&FlowMod::add(
        0,
        10,
        vec![mf(Field::InPort, 1)],
        Instructions::apply(vec![Action::Group(7)]),
    ))
    .unwrap();
    sw.barrier().unwrap();
    for sport in 0..30u16 {
        for (a, b) in [tcp_fragments(20_000 + sport), udp_fragments(30_000 + sport)] {
            assert!(p[0].send(&a));
            let ga = who_got(&p[1..], Duration::from_millis(20));
            assert!(p[0].send(&b));
            let gb = who_got(&p[1..], Duration::from_millis(20));
            assert_eq!(ga.len(), 1, "sport {sport}");
            assert_eq!(
                ga, gb,
                "sport {sport}: the fragments took different buckets"
            );
        }
    }
    sw.shutdown();
}
