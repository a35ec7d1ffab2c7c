//! The actions a flow applies to a frame.
//!
//! Cases (throughput in frames):
//! - `actions/set_ip_dst` — `rewrite::set_field(ip_dst)` on 64 UDP/IPv4 frames: the address
//!   and, incrementally, the IPv4 header and UDP checksums;
//! - `actions/set_udp_dst` — `rewrite::set_field(udp_dst)` (port and UDP checksum);
//! - `actions/push_vlan`, `actions/pop_vlan` — a tag pushed onto / popped off 64 frames (each a
//!   copy into an output buffer, as the worker does);
//! - `actions/dec_ttl` — `rewrite::dec_ttl` (TTL and IPv4 checksum) on 64 frames (reset
//!   outside the measured loop when it nears 1);
//! - `actions/pipeline_set_field`, `actions/pipeline_vlan`, `actions/pipeline_dec_ttl` — 64
//!   frames through an inline switch (no worker thread) whose one flow rewrites `ip_dst` and
//!   `udp_dst` / pushes, retags and pops a VLAN / decrements the TTL, then `output:2`: the op
//!   interpreter as the pipeline runs it, mem ports included (see `pipeline.rs`).
#![allow(clippy::unwrap_used, reason = "benches")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datapath::buf::Offload;
use datapath::flow;
use datapath::ofp::field::Field;
use datapath::ofp::rewrite;
use vswitch_benches::alloc::report;
use vswitch_benches::frames;

mod common;

use common::bench_scenario;

#[global_allocator]
static GLOBAL: &vswitch_benches::alloc::Counting = &vswitch_benches::alloc::COUNTING;

const BATCH: usize = 64;

fn bench_actions(c: &mut Criterion) {
    let udp = frames::udp4();
    let (key, lay) = flow::extract(&udp, 1).unwrap();
    let mut batch = frames::batch(&udp, BATCH);
    let mut g = c.benchmark_group("actions");
    g.throughput(Throughput::Elements(BATCH as u64));

    let set = |field: Field, a: u128, b: u128, batch: &mut [Vec<u8>]| {
        for (i, f) in batch.iter_mut().enumerate() {
            let v = if i % 2 == 0 { a } else { b };
            rewrite::set_field(f, &key, &lay, &Offload::NONE, field, black_box(v)).unwrap();
        }
    };
    report("actions/set_ip_dst", BATCH as u64, || {
        set(Field::IpDst, 0x0a00_0063, 0x0a00_0064, &mut batch);
    });
    g.bench_function("set_ip_dst", |b| {
        b.iter(|| set(Field::IpDst, 0x0a00_0063, 0x0a00_0064, &mut batch));
    });
    g.bench_function("set_udp_dst", |b| {
        b.iter(|| set(Field::UdpDst, 5353, 5354, &mut batch));
    });

    let tagged = frames::tcp6_vlan();
    let untagged = frames::batch(&udp, BATCH);
    let tagged = frames::batch(&tagged, BATCH);
    let mut out = Vec::with_capacity(2048);
    let mut push = |batch: &[Vec<u8>]| {
        for f in batch {
            rewrite::push_vlan(black_box(f), 0x8100, 42, &Offload::NONE, &mut out).unwrap();
        }
        out.len()
    };
    report("actions/push_vlan", BATCH as u64, || push(&untagged));
    g.bench_function("push_vlan", |b| b.iter(|| push(&untagged)));
    let mut out = Vec::with_capacity(2048);
    let mut pop = |batch: &[Vec<u8>]| {
        for f in batch {
            rewrite::pop_vlan(black_box(f), &Offload::NONE, &mut out).unwrap();
        }
        out.len()
    };
    report("actions/pop_vlan", BATCH as u64, || pop(&tagged));
    g.bench_function("pop_vlan", |b| b.iter(|| pop(&tagged)));

    let mut ttl_batch = frames::batch(&udp, BATCH);
    let dec = |batch: &mut [Vec<u8>]| {
        if batch[0][22] < 4 {
            // Back to 64 (with the checksum of the original frame) before it expires.
            for f in batch.iter_mut() {
                f.copy_from_slice(&udp);
            }
        }
        for f in batch.iter_mut() {
            assert!(rewrite::dec_ttl(black_box(f), &key, &lay).unwrap());
        }
    };
    report("actions/dec_ttl", BATCH as u64, || dec(&mut ttl_batch));
    g.bench_function("dec_ttl", |b| b.iter(|| dec(&mut ttl_batch)));

    bench_scenario(
        &mut g,
        "actions",
        "pipeline_set_field",
        "pipeline_set_field",
    );
    bench_scenario(&mut g, "actions", "pipeline_vlan", "pipeline_vlan");
    bench_scenario(&mut g, "actions", "pipeline_dec_ttl", "pipeline_dec_ttl");
    g.finish();
}

criterion_group!(benches, bench_actions);
criterion_main!(benches);
