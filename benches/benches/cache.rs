//! The flow caches and the slow path (throughput in frames, or rules for flow-mods).
//!
//! Cases:
//! - `cache/emc_hit` — 64 lookups of keys whose exact-match slots are warm (64 slots: a
//!   subtable exact on the 5-tuple makes the EMC tell the keys apart);
//! - `cache/megaflow_hit/{1,8,32}` — 64 lookups that miss the EMC (each key is new to it) and hit
//!   a megaflow, with 1, 8 or 32 masks (subtables) in the cache, spread evenly over them (and
//!   one more subtable, exact on the 5-tuple and never hit, so that the EMC tells the keys
//!   apart);
//! - `cache/miss_install` — lookup miss + translation through a 1,000-rule table + install:
//!   the flow-setup rate (frames/s = setups/s);
//! - `cache/flow_mod_add` — flow-mods (adds of distinct rules) applied to the control thread's
//!   tables, per rule;
//! - `cache/flow_mod_visible` — one add then a publication (the copy a worker then sees), per
//!   rule, into a table already holding 10,000 rules;
//! - `cache/many_flows/{10000,50000}` — 64 lookups cycling over that many 5-tuples, each its
//!   own megaflow (a 5-tuple rule's subtable makes every translation exact on it): 10,000 fit
//!   the EMC's sets, 50,000 do not, so most of those lookups take the megaflow path;
//! - `cache/expire_pass` — the idle-expiry slice a worker sweeps per millisecond with 65,536
//!   megaflows cached, none of them idle; `cache/expire_sweep` — the whole table at once
//!   (what a worker did once a second before the sweep was sliced);
//! - `cache/revalidate_one_change` — one flow-mod that overlaps no cached megaflow, then a
//!   whole revalidation of 65,536 cached megaflows (what a worker did in one pass when it
//!   took new tables); `cache/revalidate_slice` — the slice of such a sweep a worker's pass
//!   now does (1,024 entries; with a change begun each time a sweep ends).
#![allow(clippy::unwrap_used, reason = "benches")]

use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use datapath::cache::FlowCache;
use datapath::flow::FlowKey;
use datapath::ofp::MatchField;
use datapath::ofp::action::{Action, Instructions, NoGroups};
use datapath::ofp::field::Field;
use datapath::ofp::pipeline::{FlowMod, Pipeline};
use datapath::worker;
use vswitch_benches::alloc::report;
use vswitch_benches::scenarios::{decoy_five_tuple_subtable, five_tuple_rule, key};

#[global_allocator]
static GLOBAL: &vswitch_benches::alloc::Counting = &vswitch_benches::alloc::COUNTING;

const BATCH: usize = 64;

fn mf(field: Field, value: u128, mask: Option<u128>) -> MatchField {
    MatchField { field, value, mask }
}

fn udp_port_rule(port: u16) -> FlowMod {
    FlowMod::add(
        0,
        100,
        vec![
            mf(Field::EthType, 0x0800, None),
            mf(Field::IpProto, 17, None),
            mf(Field::UdpDst, u128::from(port), None),
        ],
        Instructions::apply(vec![Action::Output(2)]),
    )
}

fn bench_cache(c: &mut Criterion) {
    let now = Instant::now();
    let mut g = c.benchmark_group("cache");
    g.throughput(Throughput::Elements(BATCH as u64));

    // EMC hits, 64 slots (the decoy's 5-tuple mask tells the keys apart).
    let mut p = Pipeline::learning_bridge(2, 100_000);
    let mut cache = FlowCache::new(65_536);
    decoy_five_tuple_subtable(&mut p, &mut cache);
    let keys: Vec<FlowKey> = (0..BATCH as u32).map(key).collect();
    for k in &keys {
        cache.upcall(&p, k, 0);
    }
    let mut emc = |keys: &[FlowKey]| {
        let mut n = 0usize;
        for k in keys {
            n += cache.lookup(black_box(k), 0).map_or(0, |r| r as usize);
        }
        n
    };
    report("cache/emc_hit", BATCH as u64, || emc(&keys));
    g.bench_function("emc_hit", |b| b.iter(|| emc(&keys)));

    // Megaflow hits with 1, 8, 32 subtables. Table 0 sends in_port=k to table k, whose one
    // rule has its own mask (an ip_dst prefix length 1..=8 times an extra exact field), so
    // each in_port gets a megaflow with a distinct mask. The measured keys cycle over the
    // ports and are new to the EMC each time: a hit probes half the subtables on average.
    for masks in [1u32, 8, 32] {
        let mut p = Pipeline::new(2, 100_000);
        let extras = [
            None,
            Some(Field::IpTtl),
            Some(Field::IpDscp),
            Some(Field::IpProto),
        ];
        for k in 1..=masks {
            let table = u8::try_from(k).unwrap();
            p.flow_mod(
                &FlowMod::add(
                    0,
                    1,
                    vec![mf(Field::InPort, u128::from(k), None)],
                    Instructions {
                        goto_table: Some(table),
                        ..Instructions::default()
                    },
                ),
                &NoGroups,
                now,
            )
            .unwrap();
            let len = 1 + (k - 1) % 8;
            let mask = u32::MAX << (32 - len);
            let mut fields = vec![
                mf(Field::EthType, 0x0800, None),
                mf(
                    Field::IpDst,
                    u128::from(0x0a00_0000 & mask),
                    Some(u128::from(mask)),
                ),
            ];
            match extras[((k - 1) / 8) as usize] {
                Some(Field::IpTtl) => fields.push(mf(Field::IpTtl, 64, None)),
                Some(Field::IpDscp) => fields.push(mf(Field::IpDscp, 0, None)),
                Some(f) => fields.push(mf(f, 17, None)),
                None => {}
            }
            p.flow_mod(
                &FlowMod::add(
                    table,
                    1,
                    fields,
                    Instructions::apply(vec![Action::Output(2)]),
                ),
                &NoGroups,
                now,
            )
            .unwrap();
        }
        let mut cache = FlowCache::new(65_536);
        // (The EMC would otherwise hash the measured keys alike: see the helper.)
        decoy_five_tuple_subtable(&mut p, &mut cache);
        for k in 1..=masks {
            let mut key = key(k);
            key.in_port = k;
            cache.upcall(&p, &key, 0);
        }
        assert_eq!(cache.subtables(), masks as usize + 1);
        let mut next = 1_000_000u32;
        let mut run = || {
            let mut n = 0usize;
            for _ in 0..BATCH {
                next = next.wrapping_add(1);
                let mut k = key(next);
                k.in_port = 1 + next % masks;
                n += usize::from(cache.lookup(black_box(&k), 0).is_some());
            }
            n
        };
        assert_eq!(run(), BATCH, "every lookup hits a megaflow");
        report(
            &format!("cache/megaflow_hit/{masks}"),
            BATCH as u64,
            &mut run,
        );
        g.bench_function(format!("megaflow_hit/{masks}"), |b| b.iter(&mut run));
    }

    // Miss + translation + install, through 1,000 exact rules on the UDP port.
    let mut p = Pipeline::learning_bridge(2, 100_000);
    for port in 0..1000u16 {
        p.flow_mod(&udp_port_rule(port), &NoGroups, now).unwrap();
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("miss_install", |b| {
        let mut cache = FlowCache::new(1 << 20);
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            let k = key(i);
            if cache.len() + 1 >= cache.capacity() {
                cache.flush();
            }
            match cache.lookup(&k, 0) {
                Some(r) => r,
                None => cache.upcall(&p, black_box(&k), 0),
            }
        });
    });

    // Flow-mod throughput: adds into the control thread's tables.
    g.throughput(Throughput::Elements(1000));
    g.bench_function("flow_mod_add", |b| {
        b.iter_batched(
            || (Pipeline::learning_bridge(2, 1_000_000), 0u16),
            |(mut p, _)| {
                for port in 0..1000u16 {
                    p.flow_mod(&udp_port_rule(port), &NoGroups, now).unwrap();
                }
                p
            },
            BatchSize::LargeInput,
        );
    });
    // Each add published on its own (what a controller sending one flow-mod and waiting for
    // its reply costs), into a table of 10,000 rules.
    g.throughput(Throughput::Elements(1));
    g.bench_function("flow_mod_visible", |b| {
        let mut base = Pipeline::learning_bridge(2, 1_000_000);
        for port in 0..10_000u16 {
            base.flow_mod(&udp_port_rule(port), &NoGroups, now).unwrap();
        }
        let mut published = std::sync::Arc::new(base.clone());
        let mut next = 10_000u16;
        b.iter(|| {
            next = next.wrapping_add(1);
            base.flow_mod(&udp_port_rule(next), &NoGroups, now).unwrap();
            // What a commit does: publish a copy sharing untouched tables and nodes.
            published = std::sync::Arc::new(base.clone());
            black_box(&published);
        });
    });
    g.finish();
}

/// A cache holding one megaflow per key (exact on the 5-tuple), the keys, and the pipeline
/// they were translated through.
fn cache_of(n: u32) -> (FlowCache, Vec<FlowKey>, Pipeline) {
    let mut p = Pipeline::learning_bridge(2, 100_000);
    p.flow_mod(&five_tuple_rule(0), &NoGroups, Instant::now())
        .unwrap();
    let mut cache = FlowCache::new(65_536);
    let keys: Vec<FlowKey> = (0..n).map(key).collect();
    for k in &keys {
        cache.upcall(&p, k, 0);
    }
    assert_eq!(cache.len(), n as usize, "a megaflow per key");
    (cache, keys, p)
}

fn bench_many(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache");
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in [10_000u32, 50_000] {
        let (mut cache, keys, _) = cache_of(n);
        let mut at = 0usize;
        let mut run = || {
            let mut hits = 0usize;
            for _ in 0..BATCH {
                at = (at + 1) % keys.len();
                hits += usize::from(cache.lookup(black_box(&keys[at]), 0).is_some());
            }
            hits
        };
        assert_eq!(run(), BATCH, "every lookup hits");
        report(&format!("cache/many_flows/{n}"), BATCH as u64, &mut run);
        g.bench_function(format!("many_flows/{n}"), |b| b.iter(&mut run));
    }
    g.throughput(Throughput::Elements(1));
    let (mut cache, _, _) = cache_of(65_536);
    let slice = cache
        .slots()
        .div_ceil(worker::EXPIRE_SLICES)
        .max(worker::EXPIRE_SLICE_MIN);
    let mut now = 0u32;
    // Every entry was used at 0; the clock stays within their idle time.
    let mut tick = || {
        now = (now + 1) % 5;
        black_box(now)
    };
    g.bench_function("expire_pass", |b| {
        b.iter(|| black_box(cache.expire(tick(), 10, slice)));
    });
    g.bench_function("expire_sweep", |b| {
        b.iter(|| black_box(cache.expire(tick(), 10, usize::MAX)));
    });
    assert_eq!(cache.len(), 65_536, "nothing expired");
    // One flow-mod published, then the worker's revalidation of 65,536 megaflows: the rule
    // (another exact 5-tuple, from an address no key has) overlaps none of them.
    let (mut cache, _, mut p) = cache_of(65_536);
    let mut i = 0u16;
    g.bench_function("revalidate_one_change", |b| {
        b.iter(|| {
            i = i % 60_000 + 1;
            p.flow_mod(&five_tuple_rule(i), &NoGroups, Instant::now())
                .unwrap();
            cache.revalidate(&p);
        });
    });
    assert_eq!(cache.len(), 65_536, "nothing re-translated away");
    assert_eq!(cache.stats.revalidated, 0);
    // What a worker's pass does of it: one slice of the sweep (a new change begun when a
    // sweep ends: one begin per 64 slices).
    g.bench_function("revalidate_slice", |b| {
        b.iter(|| {
            if !cache.revalidating() {
                i = i % 60_000 + 1;
                p.flow_mod(&five_tuple_rule(i), &NoGroups, Instant::now())
                    .unwrap();
                cache.revalidate_begin(&p);
            }
            cache.revalidate_step(&p, worker::REVALIDATE_SLICE)
        });
    });
    assert_eq!(cache.len(), 65_536);
    assert_eq!(cache.stats.revalidated, 0);
    g.finish();
}

criterion_group!(benches, bench_cache, bench_many);
criterion_main!(benches);
