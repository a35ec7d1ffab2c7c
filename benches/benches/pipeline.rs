//! The whole L2 pipeline: a running switch (one busy-polling worker) with mem ports.
//!
//! Cases (each iteration sends 64 frames from port A's peer and waits until every copy has come
//! out; throughput in frames sent, so frames/s is the forwarding rate at the input):
//! - `pipeline/l2_fwd_batch64` — 2 ports, both MACs learned: 64 unicast frames A → B;
//! - `pipeline/flood_batch64_4ports` — 4 ports, destination never seen: each of the 64 frames
//!   is flooded to the 3 other ports (192 frames out per iteration);
//! - `pipeline/flows_1_batch64` and `pipeline/flows_10k_batch64` — 2 ports, 1,000 flows
//!   `udp,tp_dst=N actions=output:2` in table 0; 64 frames from 1 flow (one 5-tuple), or cycling
//!   over 10,000 5-tuples (10,000 exact keys: more than the EMC holds, so most lookups fall to
//!   the megaflow cache) — the cost of many active flows against one.
//!
//! What is measured includes the mem ports' channels and the bench thread's send/receive, so
//! it is a lower bound of the worker's own rate; on a machine with few cores the worker and the
//! bench thread compete (see docs/performance.md).
#![allow(clippy::unwrap_used, reason = "benches")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datapath::ofp::MatchField;
use datapath::ofp::action::{Action, Instructions};
use datapath::ofp::field::Field;
use datapath::ofp::pipeline::FlowMod;
use vswitch_benches::alloc::report;
use vswitch_benches::frames::{MAC_A, MAC_B, MAC_UNKNOWN, udp4_between, udp4_ports};
use vswitch_benches::pipeline::Rig;

#[global_allocator]
static GLOBAL: &vswitch_benches::alloc::Counting = &vswitch_benches::alloc::COUNTING;

const BATCH: usize = 64;

fn mf(field: Field, value: u128) -> MatchField {
    MatchField {
        field,
        value,
        mask: None,
    }
}

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
    drop(rig);

    let mut rig = Rig::new(2);
    for port in 0..1000u16 {
        rig.switch
            .flow_mod(&FlowMod::add(
                0,
                100,
                vec![
                    mf(Field::EthType, 0x0800),
                    mf(Field::IpProto, 17),
                    mf(Field::UdpDst, u128::from(port)),
                ],
                Instructions::apply(vec![Action::Output(2)]),
            ))
            .unwrap();
    }
    rig.switch.barrier().unwrap();
    let one: Vec<Vec<u8>> = (0..BATCH).map(|_| udp4_ports(40_000, 7)).collect();
    let many: Vec<Vec<u8>> = (0..10_000u16)
        .map(|i| udp4_ports(10_000 + i, i % 1000))
        .collect();
    let batches: Vec<&[Vec<u8>]> = many.chunks_exact(BATCH).collect();
    for b in &batches {
        rig.forward_each(0, b, &[1]);
    }
    report("pipeline/flows_1_batch64", BATCH as u64, || {
        rig.forward_each(0, &one, &[1]);
    });
    g.bench_function("flows_1_batch64", |b| {
        b.iter(|| rig.forward_each(0, &one, &[1]));
    });
    let mut i = 0usize;
    report("pipeline/flows_10k_batch64", BATCH as u64, || {
        i += 1;
        rig.forward_each(0, batches[i % batches.len()], &[1]);
    });
    g.bench_function("flows_10k_batch64", |b| {
        b.iter(|| {
            i += 1;
            rig.forward_each(0, batches[i % batches.len()], &[1]);
        });
    });
    assert!(rig.quiet(), "steered frames leaked");
    g.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
