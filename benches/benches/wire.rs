//! The zero-copy wire views.
//!
//! Cases (each iteration handles a batch of 64 frames, each in its own buffer; throughput in
//! frames):
//! - `wire/parse_eth_ipv4_udp` — `EthernetFrame` → `Ipv4Packet` → `UdpPacket` with
//!   `new_checked`, reading the addresses and ports (what a header rewrite stage would touch).
#![allow(clippy::unwrap_used, reason = "benches")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vswitch_benches::alloc::report;
use vswitch_benches::frames;
use vswitch_benches::scenarios::parse_eth_ipv4_udp;

#[global_allocator]
static GLOBAL: &vswitch_benches::alloc::Counting = &vswitch_benches::alloc::COUNTING;

const BATCH: usize = 64;

fn parse_all(batch: &[Vec<u8>]) -> u32 {
    let mut acc = 0u32;
    for f in batch {
        if let Some((s, d, sp, dp)) = parse_eth_ipv4_udp(black_box(f)) {
            acc = acc.wrapping_add(s ^ d ^ u32::from(sp) ^ u32::from(dp));
        }
    }
    acc
}

fn bench_wire(c: &mut Criterion) {
    let udp4 = frames::batch(&frames::udp4(), BATCH);
    assert!(parse_eth_ipv4_udp(&udp4[0]).is_some());
    report("wire/parse_eth_ipv4_udp", BATCH as u64, || parse_all(&udp4));
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("parse_eth_ipv4_udp", |b| b.iter(|| parse_all(&udp4)));
    g.finish();
}

criterion_group!(benches, bench_wire);
criterion_main!(benches);
