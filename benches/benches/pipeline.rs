//! The whole batch pipeline: an inline switch (no worker thread) and a threaded one, with mem
//! ports.
//!
//! Inline cases (`pipeline/…`; one thread: each iteration sends a batch into port A's mem port,
//! runs one pass of the switch with `Switch::poll_inline_at` and receives the outputs at B;
//! throughput in frames sent, all of which come out; the scenarios of
//! `vswitch_benches::scenarios`, which `icount` counts in instructions):
//! - `pipeline/l2_fwd_batch64` — 64 unicast frames A → B, both MACs learned (`normal`, cached);
//! - `pipeline/normal_10k_flows` — 64 frames per batch cycling over 10,000 5-tuples A → B
//!   (`normal`): more exact keys than the EMC has slots;
//! - `pipeline/rules_1_flow` and `pipeline/rules_10k_flows` — 1,000 rules
//!   `udp,tp_dst=N actions=output:2` in table 0; 64 frames of one 5-tuple, or cycling over
//!   10,000 5-tuples; `pipeline/rules_64_flows` the same over 64 5-tuples (every frame its own
//!   megaflow, every entry in the CPU's caches);
//! - `pipeline/flow_setup` — 32 frames per batch (the upcall budget), each a new 5-tuple, with
//!   1,000 exact 5-tuple rules in table 0 (so each is a new megaflow): miss + translation +
//!   install (+ an eviction once the cache is full) + `normal`; frames/s = setups/s.
//!
//! Threaded cases (`pipeline_threaded/…`; one busy-polling worker thread, the bench thread
//! sends 64 frames and waits until every copy has come out; they include the cross-thread
//! hand-off through the mem ports' channels, see docs/performance.md):
//! - `pipeline_threaded/l2_fwd_batch64` — as the inline case;
//! - `pipeline_threaded/flood_batch64_4ports` — 4 ports, destination never seen: each of the
//!   64 frames is flooded to the 3 other ports (192 frames out per iteration);
//! - `pipeline_threaded/flows_1_batch64` and `pipeline_threaded/flows_10k_batch64` — as the
//!   inline rule cases.
#![allow(clippy::unwrap_used, reason = "benches")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vswitch_benches::alloc::report;
use vswitch_benches::frames::{MAC_A, MAC_B, MAC_UNKNOWN, udp4_between};
use vswitch_benches::pipeline::Rig;
use vswitch_benches::scenarios::{MANY_FLOWS, RULES, many_flows, udp_port_rule};

mod common;

use common::bench_scenario;

#[global_allocator]
static GLOBAL: &vswitch_benches::alloc::Counting = &vswitch_benches::alloc::COUNTING;

const BATCH: usize = 64;

fn bench_inline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    bench_scenario(&mut g, "pipeline", "l2_fwd_batch64", "pipeline_l2");
    bench_scenario(
        &mut g,
        "pipeline",
        "normal_10k_flows",
        "pipeline_normal_10k",
    );
    bench_scenario(&mut g, "pipeline", "rules_1_flow", "pipeline_rules_1");
    bench_scenario(&mut g, "pipeline", "rules_10k_flows", "pipeline_rules_10k");
    bench_scenario(&mut g, "pipeline", "rules_64_flows", "pipeline_rules_64");
    bench_scenario(&mut g, "pipeline", "flow_setup", "pipeline_setup");
    g.finish();
}

fn bench_threaded(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline_threaded");
    g.throughput(Throughput::Elements(BATCH as u64));
    let rig = Rig::new(2);
    let unicast = udp4_between(MAC_A, MAC_B);
    for _ in 0..16 {
        rig.forward(0, &unicast, BATCH, &[1]);
    }
    report("pipeline_threaded/l2_fwd_batch64", BATCH as u64, || {
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
    report(
        "pipeline_threaded/flood_batch64_4ports",
        BATCH as u64,
        || {
            rig.forward(0, &flood, BATCH, &[1, 2, 3]);
        },
    );
    g.bench_function("flood_batch64_4ports", |b| {
        b.iter(|| rig.forward(0, &flood, BATCH, &[1, 2, 3]));
    });
    assert!(rig.quiet(), "flooded frames went back to the sender");
    drop(rig);

    let mut rig = Rig::new(2);
    for port in 0..RULES {
        rig.switch.flow_mod(&udp_port_rule(port)).unwrap();
    }
    rig.switch.barrier().unwrap();
    let one: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| vswitch_benches::frames::udp4_ports(40_000, 7))
        .collect();
    let many = many_flows(MANY_FLOWS);
    let batches: Vec<&[Vec<u8>]> = many.chunks_exact(BATCH).collect();
    for b in &batches {
        rig.forward_each(0, b, &[1]);
    }
    report("pipeline_threaded/flows_1_batch64", BATCH as u64, || {
        rig.forward_each(0, &one, &[1]);
    });
    g.bench_function("flows_1_batch64", |b| {
        b.iter(|| rig.forward_each(0, &one, &[1]));
    });
    let mut i = 0usize;
    report("pipeline_threaded/flows_10k_batch64", BATCH as u64, || {
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

criterion_group!(benches, bench_inline, bench_threaded);
criterion_main!(benches);
