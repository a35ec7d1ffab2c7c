//! Parsing a frame: flow-key extraction and the zero-copy wire views.
//!
//! Cases (each iteration handles a batch of 64 frames, each in its own buffer; throughput in
//! frames):
//! - `flow/extract_udp4` — `flow::extract` on a 60-byte UDP/IPv4 frame;
//! - `flow/extract_tcp6_vlan` — `flow::extract` on a VLAN-tagged TCP SYN over IPv6;
//! - `wire/parse_eth_ipv4_udp` — `EthernetFrame` → `Ipv4Packet` → `UdpPacket` with
//!   `new_checked`, reading the addresses and ports (what a header rewrite stage would touch).
#![allow(clippy::unwrap_used, reason = "benches")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datapath::flow;
use datapath::wire::{EtherType, EthernetFrame, Ipv4Packet, UdpPacket};
use vswitch_benches::alloc::report;
use vswitch_benches::frames;

#[global_allocator]
static GLOBAL: &vswitch_benches::alloc::Counting = &vswitch_benches::alloc::COUNTING;

const BATCH: usize = 64;

fn extract_all(batch: &[Vec<u8>]) -> u32 {
    let mut acc = 0u32;
    for f in batch {
        if let Ok((key, lay)) = flow::extract(black_box(f), 1) {
            acc = acc.wrapping_add(u32::from(key.tp_dst) ^ u32::from(lay.l4));
        }
    }
    acc
}

fn parse_eth_ipv4_udp(f: &[u8]) -> Option<(u32, u32, u16, u16)> {
    let eth = EthernetFrame::new_checked(f).ok()?;
    if eth.ethertype() != EtherType::IPV4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.into_payload()).ok()?;
    let (src, dst) = (ip.src_addr().to_bits(), ip.dst_addr().to_bits());
    let udp = UdpPacket::new_checked(ip.into_payload()).ok()?;
    Some((src, dst, udp.src_port(), udp.dst_port()))
}

fn parse_all(batch: &[Vec<u8>]) -> u32 {
    let mut acc = 0u32;
    for f in batch {
        if let Some((s, d, sp, dp)) = parse_eth_ipv4_udp(black_box(f)) {
            acc = acc.wrapping_add(s ^ d ^ u32::from(sp) ^ u32::from(dp));
        }
    }
    acc
}

fn bench_flow(c: &mut Criterion) {
    let udp4 = frames::batch(&frames::udp4(), BATCH);
    let tcp6 = frames::batch(&frames::tcp6_vlan(), BATCH);
    assert!(flow::extract(&udp4[0], 1).is_ok());
    assert_eq!(flow::extract(&tcp6[0], 1).unwrap().0.vlan_vid(), Some(100));
    assert!(parse_eth_ipv4_udp(&udp4[0]).is_some());
    report("flow/extract_udp4", BATCH as u64, || extract_all(&udp4));
    report("flow/extract_tcp6_vlan", BATCH as u64, || {
        extract_all(&tcp6)
    });
    report("wire/parse_eth_ipv4_udp", BATCH as u64, || parse_all(&udp4));

    let mut g = c.benchmark_group("flow");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("extract_udp4", |b| b.iter(|| extract_all(&udp4)));
    g.bench_function("extract_tcp6_vlan", |b| b.iter(|| extract_all(&tcp6)));
    g.finish();

    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("parse_eth_ipv4_udp", |b| {
        b.iter(|| parse_all(&udp4));
    });
    g.finish();
}

criterion_group!(benches, bench_flow);
criterion_main!(benches);
