//! The measured scenarios, built once and shared by the criterion benches (time), the
//! no-alloc test (allocations) and the `icount` binary (instructions).
//!
//! A [`Scenario`] owns its inputs and state; each call of [`Scenario::run`] handles
//! [`Scenario::units`] frames (or lookups) and returns how many came out right (for a check
//! outside the measured code). Inputs are built in [`scenario`], never in `run`.
//!
//! | name | one `run` |
//! |---|---|
//! | `wire_parse` | 64 frames through `EthernetFrame` → `Ipv4Packet` → `UdpPacket` (`new_checked`) |
//! | `flow_extract` | `flow::extract` of 64 UDP/IPv4 frames |
//! | `emc_hit` | 64 `FlowCache` lookups of keys whose exact-match slots are warm (64 slots: a 5-tuple mask in the cache tells the keys apart) |
//! | `megaflow_hit` | 64 lookups of keys new to the EMC that hit one megaflow (its mask probed first; a second, 5-tuple mask makes the EMC tell the keys apart) |
//! | `cache_miss_install` | 1 lookup miss + translation through 1,000 5-tuple rules + install |
//! | `pipeline_l2` | 64 unicast frames A → B through an inline switch (`normal`, cached) |
//! | `pipeline_l2_single` | 1 frame A → B per pass, as `pipeline_l2` (a lightly loaded switch: every pass's fixed costs on one frame) |
//! | `pipeline_normal_10k` | 64 frames of 10,000 cycling 5-tuples A → B (`normal`) |
//! | `pipeline_rules_1` | 64 frames of one 5-tuple, 1,000 `udp,tp_dst=N → output:2` rules (the frames cycled through as many source buffers as `pipeline_rules_10k`'s, [`spread_batches`]) |
//! | `pipeline_rules_10k` | 64 frames of 10,000 cycling 5-tuples, the same rules |
//! | `pipeline_rules_64` | 64 frames of 64 cycling 5-tuples, the same rules (each frame its own megaflow and lookup, as with 10,000 — there 1,000 megaflows of 10 — but every entry stays in the CPU's caches; source buffers as `pipeline_rules_1`) |
//! | `pipeline_setup` | 32 frames, each a new 5-tuple: miss + upcall + install + `normal` |
//! | `pipeline_set_field` | 64 frames, a flow rewriting `ip_dst` and `udp_dst` (checksums fixed) then `output:2` |
//! | `pipeline_vlan` | 64 frames, a flow `push_vlan, set vlan_vid, pop_vlan, output:2` |
//! | `pipeline_dec_ttl` | 64 frames, a flow `dec_ttl, output:2` |
//!
//! `pipeline_setup` sends 32 frames per pass, the worker's upcall budget
//! ([`datapath::worker::UPCALL_BUDGET`]), so every setup happens in the pass that receives the
//! frame (none is deferred to the next pass).

use std::hint::black_box;
use std::time::Instant;

use datapath::cache::FlowCache;
use datapath::flow::{self, FlowKey};
use datapath::ofp::MatchField;
use datapath::ofp::action::{Action, Instructions, NoGroups};
use datapath::ofp::field::Field;
use datapath::ofp::pipeline::{FlowMod, Pipeline};
use datapath::wire::{EtherType, EthernetFrame, Ipv4Packet, UdpPacket};
use datapath::worker::UPCALL_BUDGET;

use crate::frames::{self, MAC_A, MAC_B, udp4_between};
use crate::pipeline::InlineRig;

/// Frames per batch (the datapath's batch size).
pub const BATCH: usize = 64;

/// Every scenario, in report order.
pub const ALL: &[&str] = &[
    "wire_parse",
    "flow_extract",
    "emc_hit",
    "megaflow_hit",
    "cache_miss_install",
    "pipeline_l2",
    "pipeline_l2_single",
    "pipeline_normal_10k",
    "pipeline_rules_1",
    "pipeline_rules_10k",
    "pipeline_rules_64",
    "pipeline_setup",
    "pipeline_set_field",
    "pipeline_vlan",
    "pipeline_dec_ttl",
];

/// Distinct 5-tuples of the "10,000 active flows" scenarios.
pub const MANY_FLOWS: usize = 10_000;
/// Rules in the rule tables.
pub const RULES: u16 = 1_000;

/// A measured piece of work with its inputs.
pub struct Scenario {
    /// Its name (see the module table).
    pub name: &'static str,
    /// Frames (or lookups) one [`run`](Self::run) handles.
    pub units: u64,
    run: Box<dyn FnMut() -> u64>,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("units", &self.units)
            .finish_non_exhaustive()
    }
}

impl Scenario {
    fn new(name: &'static str, units: usize, run: impl FnMut() -> u64 + 'static) -> Self {
        Self {
            name,
            units: units as u64,
            run: Box::new(run),
        }
    }

    /// Handles [`units`](Self::units) frames; returns how many were handled as expected.
    #[inline]
    pub fn run(&mut self) -> u64 {
        (self.run)()
    }

    /// Runs once and panics unless every unit was handled as expected.
    ///
    /// # Panics
    /// When a frame went missing or a lookup missed.
    pub fn check(&mut self) {
        let ok = self.run();
        assert_eq!(
            ok, self.units,
            "{}: {ok} of {} as expected",
            self.name, self.units
        );
    }
}

fn mf(field: Field, value: u128) -> MatchField {
    MatchField {
        field,
        value,
        mask: None,
    }
}

/// The in_port of [`decoy_five_tuple_subtable`]'s rule (no measured key comes in on it).
pub const DECOY_PORT: u32 = 999;
/// The table [`decoy_five_tuple_subtable`]'s 5-tuple rule is in.
pub const DECOY_TABLE: u8 = 253;

/// Adds a rule sending in_port [`DECOY_PORT`] from table 0 to table [`DECOY_TABLE`], and
/// there a rule exact on the UDP 5-tuple, to `p`; then one upcall through them to `cache`: a
/// subtable whose mask covers addresses and ports. The EMC hashes keys under the union of
/// the subtables' masks, so with it keys that differ in addresses or ports hash apart even
/// when one coarser megaflow covers them all: each new key misses the EMC and takes the
/// megaflow path, as when rules of several shapes share a table. (Without it, keys no mask
/// tells apart share one EMC slot and hit it.) Other keys' megaflows gain in_port only.
pub fn decoy_five_tuple_subtable(p: &mut Pipeline, cache: &mut FlowCache) {
    let mut k = key(0);
    k.in_port = DECOY_PORT;
    let five_tuple = vec![
        mf(Field::EthType, 0x0800),
        mf(Field::IpProto, 17),
        mf(
            Field::IpSrc,
            u128::from(u32::from_be_bytes(k.nw_src[..4].try_into().unwrap())),
        ),
        mf(
            Field::IpDst,
            u128::from(u32::from_be_bytes(k.nw_dst[..4].try_into().unwrap())),
        ),
        mf(Field::UdpSrc, u128::from(k.tp_src)),
        mf(Field::UdpDst, u128::from(k.tp_dst)),
    ];
    let now = Instant::now();
    let to_decoy = Instructions {
        goto_table: Some(DECOY_TABLE),
        ..Instructions::default()
    };
    let in_port = vec![mf(Field::InPort, u128::from(DECOY_PORT))];
    p.flow_mod(&FlowMod::add(0, 50, in_port, to_decoy), &NoGroups, now)
        .unwrap();
    let out = Instructions::apply(vec![Action::Output(2)]);
    p.flow_mod(
        &FlowMod::add(DECOY_TABLE, 1, five_tuple, out),
        &NoGroups,
        now,
    )
    .unwrap();
    cache.upcall(p, &k, 0);
}

/// `udp,tp_dst=port actions=output:2` at priority 100 in table 0.
pub fn udp_port_rule(port: u16) -> FlowMod {
    FlowMod::add(
        0,
        100,
        vec![
            mf(Field::EthType, 0x0800),
            mf(Field::IpProto, 17),
            mf(Field::UdpDst, u128::from(port)),
        ],
        Instructions::apply(vec![Action::Output(2)]),
    )
}

/// An exact 5-tuple rule (`udp` from 10.9.x.y:i to 10.9.0.1:53, `output:2`): no bench frame
/// matches it, but every translation consults its subtable, so each megaflow is exact on the
/// 5-tuple and a new 5-tuple is a new megaflow.
pub fn five_tuple_rule(i: u16) -> FlowMod {
    FlowMod::add(
        0,
        100,
        vec![
            mf(Field::EthType, 0x0800),
            mf(Field::IpProto, 17),
            mf(Field::IpSrc, u128::from(0x0a09_0000u32 | u32::from(i))),
            mf(Field::IpDst, 0x0a09_0001),
            mf(Field::UdpSrc, u128::from(i)),
            mf(Field::UdpDst, 53),
        ],
        Instructions::apply(vec![Action::Output(2)]),
    )
}

/// Reads what a header rewrite stage would touch, through the zero-copy views.
pub fn parse_eth_ipv4_udp(f: &[u8]) -> Option<(u32, u32, u16, u16)> {
    let eth = EthernetFrame::new_checked(f).ok()?;
    if eth.ethertype() != EtherType::IPV4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.into_payload()).ok()?;
    let (src, dst) = (ip.src_addr().to_bits(), ip.dst_addr().to_bits());
    let udp = UdpPacket::new_checked(ip.into_payload()).ok()?;
    Some((src, dst, udp.src_port(), udp.dst_port()))
}

/// A flow key like one of UDP/IPv4 from A to B, distinct per `i` (in `nw_dst` and `tp_dst`).
pub fn key(i: u32) -> FlowKey {
    let mut k = FlowKey {
        in_port: 1,
        eth_type: 0x0800,
        nw_proto: 17,
        nw_ttl: 64,
        tp_src: 1000,
        tp_dst: u16::try_from(i % 60_000).unwrap(),
        eth_src: MAC_A,
        eth_dst: MAC_B,
        ..FlowKey::default()
    };
    k.nw_dst[..4].copy_from_slice(&(0x0a00_0000 | (i & 0x00ff_ffff)).to_be_bytes());
    k
}

/// `n` UDP/IPv4 frames from A to B with distinct 5-tuples (source port and address vary; the
/// destination port is `i % 1000`, so each hits one of the [`RULES`] rules of
/// [`udp_port_rule`]).
pub fn many_flows(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let i = u32::try_from(i).unwrap();
            let src = (0x0a00_0000 | (i + 1)).to_be_bytes();
            frames::udp4_full(
                MAC_A,
                MAC_B,
                src,
                [10, 0, 0, 2],
                10_000 + u16::try_from(i % 50_000).unwrap(),
                u16::try_from(i % 1000).unwrap(),
            )
        })
        .collect()
}

/// Units one run of scenario `name` handles, without building it.
pub fn scenario_units(name: &str) -> Option<u64> {
    match name {
        "cache_miss_install" => Some(1),
        "pipeline_setup" => Some(UPCALL_BUDGET as u64),
        "pipeline_l2_single" => Some(1),
        n if ALL.contains(&n) => Some(BATCH as u64),
        _ => None,
    }
}

/// The scenario called `name`, built (switch started, flows added, caches warmed), or `None`.
///
/// # Panics
/// When setting it up fails (a switch that does not start or forward).
pub fn scenario(name: &str) -> Option<Scenario> {
    Some(match name {
        "wire_parse" => {
            let batch = frames::batch(&frames::udp4(), BATCH);
            assert!(parse_eth_ipv4_udp(&batch[0]).is_some());
            Scenario::new("wire_parse", BATCH, move || {
                let mut ok = 0;
                for f in &batch {
                    ok += u64::from(black_box(parse_eth_ipv4_udp(black_box(f))).is_some());
                }
                ok
            })
        }
        "flow_extract" => {
            let batch = frames::batch(&frames::udp4(), BATCH);
            Scenario::new("flow_extract", BATCH, move || {
                let mut ok = 0;
                for f in &batch {
                    ok += u64::from(black_box(flow::extract(black_box(f), 1)).is_ok());
                }
                ok
            })
        }
        "emc_hit" => {
            let mut p = Pipeline::learning_bridge(2, 100_000);
            let mut cache = FlowCache::new(65_536);
            // The decoy makes the EMC tell the 64 keys apart: 64 slots, not one shared.
            decoy_five_tuple_subtable(&mut p, &mut cache);
            let keys: Vec<FlowKey> = (0..BATCH as u32).map(key).collect();
            for k in &keys {
                cache.upcall(&p, k, 0);
            }
            // The first lookups hit the megaflow and fill the EMC slots.
            for k in &keys {
                cache.lookup(k, 0);
            }
            Scenario::new("emc_hit", BATCH, move || {
                let before = cache.stats.emc_hits;
                for k in &keys {
                    black_box(cache.lookup(black_box(k), 0));
                }
                cache.stats.emc_hits - before
            })
        }
        "megaflow_hit" => {
            let mut p = Pipeline::learning_bridge(2, 100_000);
            let mut cache = FlowCache::new(65_536);
            // One megaflow (in_port=1) covers every measured key; the decoy's 5-tuple mask
            // makes the EMC tell them apart, so each misses it.
            decoy_five_tuple_subtable(&mut p, &mut cache);
            cache.upcall(&p, &key(0), 0);
            assert_eq!(cache.subtables(), 2);
            let mut next = 1_000_000u32;
            // Each key is new, but a slot of its EMC set may carry its signature (15 bits of
            // the hash) from an earlier key: then the EMC answers, rightly (the one entry
            // covers every key). About 1 lookup in 8,000 once the sets are full (4 slots);
            // counted as handled.
            let handled = |c: &FlowCache| c.stats.megaflow_hits + c.stats.emc_hits;
            Scenario::new("megaflow_hit", BATCH, move || {
                let before = handled(&cache);
                for _ in 0..BATCH {
                    next = next.wrapping_add(1);
                    black_box(cache.lookup(black_box(&key(next)), 0));
                }
                handled(&cache) - before
            })
        }
        "cache_miss_install" => {
            let now = Instant::now();
            let mut p = Pipeline::learning_bridge(2, 100_000);
            for i in 0..RULES {
                p.flow_mod(&five_tuple_rule(i), &NoGroups, now).unwrap();
            }
            let mut cache = FlowCache::new(datapath::cache::DEFAULT_CAPACITY);
            let mut next = 0u32;
            Scenario::new("cache_miss_install", 1, move || {
                next = next.wrapping_add(1);
                let mut k = key(next);
                k.nw_src[..4].copy_from_slice(&(0x0b00_0000 | next).to_be_bytes());
                if cache.lookup(&k, 0).is_some() {
                    return 0;
                }
                black_box(cache.upcall(&p, black_box(&k), 0));
                1
            })
        }
        "pipeline_l2" => {
            let frames = frames::batch(&udp4_between(MAC_A, MAC_B), BATCH);
            inline("pipeline_l2", InlineRig::new(2), vec![frames])
        }
        "pipeline_l2_single" => {
            let frames = frames::batch(&udp4_between(MAC_A, MAC_B), 1);
            inline("pipeline_l2_single", InlineRig::new(2), vec![frames])
        }
        "pipeline_normal_10k" => inline(
            "pipeline_normal_10k",
            InlineRig::new(2),
            cycle_batches(&many_flows(MANY_FLOWS)),
        ),
        "pipeline_rules_1" => {
            let rig = InlineRig::with_flows(2, (0..RULES).map(udp_port_rule));
            let one = [frames::udp4_ports(40_000, 7)];
            inline("pipeline_rules_1", rig, spread_batches(&one))
        }
        "pipeline_rules_10k" => {
            let rig = InlineRig::with_flows(2, (0..RULES).map(udp_port_rule));
            inline(
                "pipeline_rules_10k",
                rig,
                cycle_batches(&many_flows(MANY_FLOWS)),
            )
        }
        "pipeline_rules_64" => {
            let rig = InlineRig::with_flows(2, (0..RULES).map(udp_port_rule));
            inline("pipeline_rules_64", rig, spread_batches(&many_flows(BATCH)))
        }
        "pipeline_setup" => {
            let mut rig = InlineRig::with_flows(2, (0..RULES).map(five_tuple_rule));
            let mut batch = setup_frames(UPCALL_BUDGET);
            let mut next = 0u32;
            Scenario::new("pipeline_setup", UPCALL_BUDGET, move || {
                renumber(&mut batch, &mut next);
                rig.round(0, &batch, 1) as u64
            })
        }
        "pipeline_set_field" => {
            let rig = InlineRig::with_flows(
                2,
                [FlowMod::add(
                    0,
                    100,
                    vec![mf(Field::EthType, 0x0800), mf(Field::IpProto, 17)],
                    Instructions::apply(vec![
                        Action::SetField {
                            field: Field::IpDst,
                            value: 0x0a00_0063,
                        },
                        Action::SetField {
                            field: Field::UdpDst,
                            value: 5353,
                        },
                        Action::Output(2),
                    ]),
                )],
            );
            let frames = frames::batch(&frames::udp4(), BATCH);
            inline("pipeline_set_field", rig, vec![frames])
        }
        "pipeline_vlan" => {
            let rig = InlineRig::with_flows(
                2,
                [FlowMod::add(
                    0,
                    100,
                    vec![mf(Field::EthType, 0x0800)],
                    Instructions::apply(vec![
                        Action::PushVlan(0x8100),
                        Action::SetField {
                            field: Field::VlanVid,
                            value: 0x1000 | 42,
                        },
                        Action::PopVlan,
                        Action::Output(2),
                    ]),
                )],
            );
            let frames = frames::batch(&frames::udp4(), BATCH);
            inline("pipeline_vlan", rig, vec![frames])
        }
        "pipeline_dec_ttl" => {
            let rig = InlineRig::with_flows(
                2,
                [FlowMod::add(
                    0,
                    100,
                    vec![mf(Field::EthType, 0x0800)],
                    Instructions::apply(vec![Action::DecTtl, Action::Output(2)]),
                )],
            );
            let frames = frames::batch(&frames::udp4(), BATCH);
            inline("pipeline_dec_ttl", rig, vec![frames])
        }
        _ => return None,
    })
}

/// Batches of [`BATCH`] frames cycling through `frames` in order (wrapping), as many as it
/// takes to end where the cycle began: every frame appears equally often.
pub fn cycle_batches(frames: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
    let n = frames.len();
    (0..cycle_batch_count(n))
        .map(|j| {
            (0..BATCH)
                .map(|k| frames[(j * BATCH + k) % n].clone())
                .collect()
        })
        .collect()
}

/// The batches of [`cycle_batches`] over `flows`, repeated (each copy in buffers of its own)
/// until there are as many as [`cycle_batches`] makes of [`MANY_FLOWS`] flows: the same
/// frames in the same order as `cycle_batches(flows)`, from as many source buffers as the
/// 10,000-flow scenarios, so that comparing scenarios of the same rules with 1, 64 and 10,000
/// flows compares the switch's work for that many flows, not how much of the bench's own
/// frame memory (40,000 buffers cycled, megabytes) stays in the CPU's caches.
///
/// # Panics
/// If `flows` is empty.
pub fn spread_batches(flows: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
    assert!(!flows.is_empty());
    let own = cycle_batches(flows);
    let many = cycle_batch_count(MANY_FLOWS);
    (0..many.max(own.len()))
        .map(|j| own[j % own.len()].clone())
        .collect()
}

/// How many batches [`cycle_batches`] makes of `n` frames.
fn cycle_batch_count(n: usize) -> usize {
    let (mut a, mut b) = (n, BATCH);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    n / a
}

/// `n` UDP/IPv4 frames from A to B (UDP checksum 0: none, as IPv4 allows), to be given
/// distinct 5-tuples by [`renumber`]; none matches a [`five_tuple_rule`].
pub fn setup_frames(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let mut f = frames::udp4_full(MAC_A, MAC_B, [10, 0, 0, 1], [10, 0, 0, 2], 1024, 53);
            f[40..42].copy_from_slice(&[0, 0]);
            f
        })
        .collect()
}

/// Gives each frame of `batch` (from [`setup_frames`]) the next 5-tuple of a sequence that
/// does not repeat for 2^32 frames: source address 10.x.y.z from the low 24 bits of `next`,
/// source port 1024 + the high 8 bits; fixes the IPv4 header checksum. Not inlined, so an
/// instruction profile shows its (bench-side) cost apart from the switch's.
#[inline(never)]
pub fn renumber(batch: &mut [Vec<u8>], next: &mut u32) {
    for f in batch {
        let v = *next;
        *next = next.wrapping_add(1);
        let [hi, a, b, c] = v.to_be_bytes();
        f[26..30].copy_from_slice(&[10, a, b, c]);
        f[34..36].copy_from_slice(&(1024 + u16::from(hi)).to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let mut sum = 0u32;
        for w in f[14..34].chunks_exact(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let csum = !u16::try_from(sum).unwrap_or(u16::MAX);
        f[24..26].copy_from_slice(&csum.to_be_bytes());
    }
}

/// A scenario sending batches (cycling through `batches`) from port A to port B of an inline
/// switch: each run sends one batch, polls once and counts what came out at B.
fn inline(name: &'static str, mut rig: InlineRig, batches: Vec<Vec<Vec<u8>>>) -> Scenario {
    let units = batches[0].len();
    assert!(batches.iter().all(|b| b.len() == units));
    let mut i = 0usize;
    Scenario::new(name, units, move || {
        let b = &batches[i];
        i += 1;
        if i == batches.len() {
            i = 0;
        }
        rig.round(0, b, 1) as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_builds_and_handles_every_unit() {
        for name in ALL {
            let mut s = scenario(name).unwrap();
            assert_eq!(scenario_units(name), Some(s.units));
            // Warm: flows cached (the first batches of new flows exceed the upcall budget).
            for _ in 0..crate::icount::plan(name, true).warmup {
                s.run();
            }
            for _ in 0..3 {
                s.check();
            }
        }
        assert!(scenario("nope").is_none());
    }

    #[test]
    fn spread_batches_have_the_many_flow_scenarios_buffers_and_repeat_the_flows_in_order() {
        let many = cycle_batches(&many_flows(MANY_FLOWS));
        assert_eq!(many.len(), 625);
        let flows = many_flows(BATCH);
        for given in [&flows[..1], &flows[..]] {
            let spread = spread_batches(given);
            assert_eq!(spread.len(), many.len());
            assert!(spread.iter().all(|b| b.len() == BATCH));
            for (i, f) in spread.iter().flatten().enumerate() {
                assert_eq!(*f, given[i % given.len()], "frame {i}");
            }
        }
        // 64 flows: every batch holds each of them once (no two frames of a batch share one).
        for b in spread_batches(&flows) {
            let mut seen: Vec<&Vec<u8>> = b.iter().collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), BATCH);
        }
    }

    #[test]
    fn setup_frames_are_valid_and_each_a_new_megaflow() {
        let mut rig = InlineRig::with_flows(2, (0..RULES).map(five_tuple_rule));
        let mut batch = setup_frames(UPCALL_BUDGET);
        let mut next = 0u32;
        let before = rig.switch.worker_stats()[0].cache;
        for _ in 0..8 {
            renumber(&mut batch, &mut next);
            for f in &batch {
                let ip = etherparse::Ipv4HeaderSlice::from_slice(&f[14..]).unwrap();
                let h = ip.to_header();
                assert_eq!(h.header_checksum, h.calc_header_checksum());
            }
            assert_eq!(rig.round(0, &batch, 1), UPCALL_BUDGET);
        }
        let c = rig.switch.worker_stats()[0].cache;
        assert_eq!(
            (
                c.upcalls - before.upcalls,
                c.megaflow_hits - before.megaflow_hits,
                c.emc_hits - before.emc_hits
            ),
            (8 * 32, 0, 0)
        );
    }
}
