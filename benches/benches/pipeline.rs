//! The whole L2 pipeline: a running switch (one busy-polling worker) with mem ports.
//!
//! Cases (each iteration sends 64 frames from port A's peer and waits until every copy has come
//! out; throughput in frames sent, so frames/s is the forwarding rate at the input):
//! - `pipeline/l2_fwd_batch64` — 2 ports, both MACs learned: 64 unicast frames A → B;
//! - `pipeline/flood_batch64_4ports` — 4 ports, destination never seen: each of the 64 frames
//!   is flooded to the 3 other ports (192 frames out per iteration).
//!
//! What is measured includes the mem ports' channels and the bench thread's send/receive, so
//! it is a lower bound of the worker's own rate; on a machine with few cores the worker and the
//! bench thread compete (see docs/performance.md).
#![allow(clippy::unwrap_used, reason = "benches")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vswitch_benches::alloc::report;
use vswitch_benches::frames::{MAC_A, MAC_B, MAC_UNKNOWN, udp4_between};
use vswitch_benches::pipeline::Rig;

#[global_allocator]
static GLOBAL: &vswitch_benches::alloc::Counting = &vswitch_benches::alloc::COUNTING;

const BATCH: usize = 64;

fn bench_pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BATCH as u64));

    let rig = Rig::new(2);
    let unicast = udp4_between(MAC_A, MAC_B);
    for _ in 0..16 {
        rig.forward(0, &unicast, BATCH, &[1]);
    }
    report("pipeline/l2_fwd_batch64", BATCH as u64, || {
        rig.forward(0, &unicast, BATCH, &[1]);
    });
    g.bench_function("l2_fwd_batch64", |b| {
        b.iter(|| rig.forward(0, &unicast, BATCH, &[1]));
    });
    assert!(rig.quiet(), "unicast frames leaked to another port");
    drop(rig);

    let rig = Rig::new(4);
    let flood = udp4_between(MAC_A, MAC_UNKNOWN);
    for _ in 0..16 {
        rig.forward(0, &flood, BATCH, &[1, 2, 3]);
    }
    report("pipeline/flood_batch64_4ports", BATCH as u64, || {
        rig.forward(0, &flood, BATCH, &[1, 2, 3]);
    });
    g.bench_function("flood_batch64_4ports", |b| {
        b.iter(|| rig.forward(0, &flood, BATCH, &[1, 2, 3]));
    });
    assert!(rig.quiet(), "flooded frames went back to the sender");
    g.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
