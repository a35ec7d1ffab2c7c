//! Flow-key extraction (the wire views alone: `wire.rs`).
//!
//! Cases (each iteration handles a batch of 64 frames, each in its own buffer; throughput in
//! frames):
//! - `flow/extract_udp4` — `flow::extract` on a 60-byte UDP/IPv4 frame;
//! - `flow/extract_tcp6_vlan` — `flow::extract` on a VLAN-tagged TCP SYN over IPv6.
#![allow(clippy::unwrap_used, reason = "benches")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datapath::flow;
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

fn bench_flow(c: &mut Criterion) {
    let udp4 = frames::batch(&frames::udp4(), BATCH);
    let tcp6 = frames::batch(&frames::tcp6_vlan(), BATCH);
    assert!(flow::extract(&udp4[0], 1).is_ok());
    assert_eq!(flow::extract(&tcp6[0], 1).unwrap().0.vlan_vid(), Some(100));
    report("flow/extract_udp4", BATCH as u64, || extract_all(&udp4));
    report("flow/extract_tcp6_vlan", BATCH as u64, || {
        extract_all(&tcp6)
    });

    let mut g = c.benchmark_group("flow");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("extract_udp4", |b| b.iter(|| extract_all(&udp4)));
    g.bench_function("extract_tcp6_vlan", |b| b.iter(|| extract_all(&tcp6)));
    g.finish();
}

criterion_group!(benches, bench_flow);
criterion_main!(benches);
