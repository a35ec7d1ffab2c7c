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
//!
//! Aging (`l2_aging/…`, time per call; the control thread ages the table once a second):
//! - `l2_aging/full_pass` — `age` with aging 1 s over 32 767 entries all seen that second: a
//!   pass over every slot that removes nothing (what every call cost before the table kept a
//!   bound on its entries' last-seen seconds);
//! - `l2_aging/default_call` — `age` with the default aging (300 s) over the same table: the
//!   call the control thread makes every second while no entry can have aged.
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
    g.bench_function("mac_learn_evict", |b| {
        // A full table, nearly all of it one port's (a MAC flood, with a few stations on
        // eight others): each new address of the flooder evicts one of its own.
        let full = MacTable::new(CAPACITY);
        for i in 0..CAPACITY as u32 {
            let port = if i % 64 == 0 { 2 + i / 64 % 8 } else { 1 };
            assert_eq!(full.learn(1, &mac(i), port, 0), Learned::Added);
        }
        let mut next = CAPACITY as u32;
        b.iter(|| {
            for _ in 0..BATCH {
                let r = full.learn(1, black_box(&mac(next)), 1, 0);
                debug_assert_eq!(r, Learned::Added);
                next = next.wrapping_add(1);
            }
        });
        assert_eq!(full.len(), CAPACITY);
        assert_eq!(full.port_entries(2), CAPACITY / 64 / 8);
    });
    g.bench_function("mac_learn_evict_station", |b| {
        // The same full table; the new addresses are stations on other ports (each one reads
        // the per-port counts to find the port with the most, then evicts one of its).
        let full = MacTable::new(CAPACITY);
        for i in 0..CAPACITY as u32 {
            assert_eq!(full.learn(1, &mac(i), 1, 0), Learned::Added);
        }
        let mut next = CAPACITY as u32;
        b.iter(|| {
            for _ in 0..BATCH {
                let port = 2 + next % 1000;
                let r = full.learn(1, black_box(&mac(next)), port, 0);
                debug_assert_eq!(r, Learned::Added);
                next = next.wrapping_add(1);
            }
        });
        assert_eq!(full.len(), CAPACITY);
    });
    g.finish();

    let aging = MacTable::new(CAPACITY);
    let now = 1_000;
    for i in 1..KNOWN {
        assert_eq!(aging.learn(1, &mac(i), 1, now), Learned::Added);
    }
    // One address 2 s older: the first pass (aging 1 s) removes it and leaves the table's
    // bound `AGE_SLACK` behind `now`, so that every later call with aging 1 s walks the table
    // and removes nothing.
    assert_eq!(aging.learn(1, &mac(0), 1, now - 2), Learned::Added);
    assert_eq!(aging.age(now, 1), 1);
    assert_eq!(aging.age(now, 1), 0);
    assert_eq!(aging.age(now, 300), 0);
    let mut g = c.benchmark_group("l2_aging");
    g.bench_function("full_pass", |b| {
        b.iter(|| aging.age(black_box(now), black_box(1)));
    });
    g.bench_function("default_call", |b| {
        b.iter(|| aging.age(black_box(now), black_box(300)));
    });
    g.finish();
    assert_eq!(aging.len(), KNOWN as usize - 1);
}

/// The port an address was learned on in the setup (so refreshes never move it).
fn port_of(m: &[u8; 6]) -> u32 {
    let i = u32::from_be_bytes([m[2], m[3], m[4], m[5]]);
    1 + i % 8
}

criterion_group!(benches, bench_l2);
criterion_main!(benches);
