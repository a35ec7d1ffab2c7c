//! The MAC learning table, sized as the switch's default (65 536 entries).
//!
//! Cases (each iteration handles 64 addresses, as one batch of frames would; throughput in
//! frames):
//! - `l2/mac_lookup_hit` — `lookup` of destinations that are in the table (32 768 entries, so
//!   the lookups spread over a half-full table larger than the L2 cache);
//! - `l2/mac_learn_refresh` — `learn` of sources already known on the same port (the common
//!   case: the timestamp is rewritten only when the second changes, here it does every call);
//! - `l2/mac_learn_new` — `learn` of addresses never seen, into a table that fills from empty to
//!   full (a fresh table is swapped in, untimed, when the next batch would not fit).
#![allow(clippy::unwrap_used, reason = "benches")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datapath::l2::{Learned, MacTable};
use vswitch_benches::alloc::report;
use vswitch_benches::frames::mac;

#[global_allocator]
static GLOBAL: &vswitch_benches::alloc::Counting = &vswitch_benches::alloc::COUNTING;

const BATCH: usize = 64;
const CAPACITY: usize = 65_536;
const KNOWN: u32 = 32_768;

fn bench_l2(c: &mut Criterion) {
    let table = MacTable::new(CAPACITY);
    for i in 0..KNOWN {
        assert_eq!(table.learn(1, &mac(i), 1 + i % 8, 0), Learned::Added);
    }
    // Addresses visited in a scattered order (a stride coprime with KNOWN).
    let order: Vec<[u8; 6]> = (0..KNOWN)
        .map(|i| mac(i.wrapping_mul(7_919) % KNOWN))
        .collect();
    let batches: Vec<&[[u8; 6]]> = order.chunks_exact(BATCH).collect();
    let lookup_batch = |i: usize| {
        let mut hits = 0u32;
        for m in batches[i % batches.len()] {
            hits += u32::from(table.lookup(1, black_box(m)).is_some());
        }
        hits
    };
    let mut now = 1u32;
    let mut refresh_batch = |i: usize| {
        now = now.wrapping_add(1);
        let mut moved = 0u32;
        for m in batches[i % batches.len()] {
            moved += u32::from(matches!(
                table.learn(1, black_box(m), port_of(m), now),
                Learned::Moved { .. }
            ));
        }
        moved
    };
    assert_eq!(lookup_batch(0), 64);
    assert_eq!(refresh_batch(0), 0, "refresh must not move addresses");

    let mut i = 0usize;
    report("l2/mac_lookup_hit", BATCH as u64, || {
        i += 1;
        lookup_batch(i)
    });
    report("l2/mac_learn_refresh", BATCH as u64, || {
        i += 1;
        refresh_batch(i)
    });

    let mut g = c.benchmark_group("l2");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("mac_lookup_hit", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = i.wrapping_add(1);
            lookup_batch(i)
        });
    });
    g.bench_function("mac_learn_refresh", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = i.wrapping_add(1);
            refresh_batch(i)
        });
    });
    g.bench_function("mac_learn_new", |b| {
        let mut fresh = MacTable::new(CAPACITY);
        let mut next = 0u32;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if fresh.len() + BATCH > CAPACITY {
                    fresh = MacTable::new(CAPACITY);
                }
                let start = Instant::now();
                for _ in 0..BATCH {
                    let r = fresh.learn(1, black_box(&mac(next)), 1, 0);
                    debug_assert_eq!(r, Learned::Added);
                    next = next.wrapping_add(1);
                }
                total += start.elapsed();
            }
            total
        });
    });
    g.finish();
}

/// The port an address was learned on in the setup (so refreshes never move it).
fn port_of(m: &[u8; 6]) -> u32 {
    let i = u32::from_be_bytes([m[2], m[3], m[4], m[5]]);
    1 + i % 8
}

criterion_group!(benches, bench_l2);
criterion_main!(benches);
