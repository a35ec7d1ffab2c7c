//! Groups: all, select (weighted, by a hash of the 5-tuple, consistent), indirect,
//! fast-failover.
//!
//! A `select` group keeps a lookup table (Maglev's, weighted: each bucket claims slots in its
//! own pseudo-random order, in turns proportional to its weight) that a connection's hash
//! indexes: one read per packet, and a `modify` that adds, removes or re-weights buckets
//! moves few connections between the buckets it did not change. A bucket is known by its
//! actions and `watch_port` (not its position or weight), and the buckets claim in the order
//! of that identity, so reordering them moves nothing.
//!
//! A group is run per packet by the worker (late-bound like `normal`): which bucket a `select`
//! group picks and which bucket of a fast-failover group is live are decided against the
//! packet's key and the current ports, so cached translations that reach a group need no
//! revalidation when ports come and go. Changing a group's buckets publishes a new pipeline.

use std::fmt;
use std::sync::Arc;

use super::action::{Action, MAX_ACTIONS};
use super::field::Field;
use super::pipeline::FlowStats;
use super::{FlowError, FlowErrorKind};
use crate::flow::{ETH_TYPE_QINQ, ETH_TYPE_VLAN, FlowKey};
use crate::switch::MAX_PORTS;

/// Most buckets in a group.
pub const MAX_BUCKETS: usize = 64;
/// Most groups.
pub const MAX_GROUPS: usize = 65_536;

/// Group type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupType {
    /// Every bucket gets a copy.
    All,
    /// One bucket, chosen by a hash of the 5-tuple, weighted.
    Select,
    /// One bucket (a shared next hop).
    Indirect,
    /// The first bucket whose watched port is live.
    FastFailover,
}

impl GroupType {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Select => "select",
            Self::Indirect => "indirect",
            Self::FastFailover => "fast_failover",
        }
    }
}

impl fmt::Display for GroupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// Relative weight (select; ignored otherwise).
    pub weight: u16,
    /// Port whose liveness enables the bucket (fast-failover).
    pub watch_port: Option<u32>,
    /// Actions run on the bucket's copy of the packet.
    pub actions: Vec<Action>,
}

/// A group as installed.
#[derive(Debug)]
pub struct Group {
    /// Id.
    pub id: u32,
    /// Type.
    pub kind: GroupType,
    /// Buckets.
    pub buckets: Vec<Bucket>,
    /// Packets and bytes through the group.
    pub stats: FlowStats,
    /// Per bucket: packets and bytes.
    pub bucket_stats: Box<[FlowStats]>,
    /// Select: bucket index per slot ([`select_table_len`] slots; empty when no bucket has a
    /// weight, and for other types).
    table: Box<[u8]>,
}

/// Slots of a select group's table for `buckets` buckets: a prime at least 64 per bucket
/// and at least 509 (each bucket's share is then within ~0.2 % of its weight's for a few
/// buckets; 4,099 slots, 4 KiB, for 64).
pub fn select_table_len(buckets: usize) -> usize {
    let mut m = (buckets * 64).max(509);
    while !is_prime(m) {
        m += 1;
    }
    m
}

fn is_prime(n: usize) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// A bucket's identity for the select table: its actions and `watch_port`, and how many
/// identical buckets come before it (a fixed hash: the same on every worker and run).
fn bucket_ids(buckets: &[Bucket]) -> Vec<u64> {
    use std::hash::{Hash, Hasher};
    buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let twin = buckets[..i]
                .iter()
                .filter(|o| o.actions == b.actions && o.watch_port == b.watch_port)
                .count();
            let mut h = std::hash::DefaultHasher::new();
            b.actions.hash(&mut h);
            b.watch_port.hash(&mut h);
            twin.hash(&mut h);
            h.finish()
        })
        .collect()
}

/// Fills a select group's table (Maglev's population, weighted): in rounds, each bucket in
/// the order of its identity gains its weight in credit and, per largest weight of credit,
/// takes the next free slot of its own permutation of the slots (a start and a step from
/// its identity; the table's length is prime, so every step visits every slot). Bucket `i`'s
/// `k`-th slot is thus taken in round ⌈k·wmax/wᵢ⌉; the claims are taken in that order from a
/// heap, so that rounds in which nobody claims cost nothing (weights 65,535 and 1 would
/// otherwise walk thousands of empty rounds).
fn select_table(buckets: &[Bucket]) -> Box<[u8]> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let wmax = buckets
        .iter()
        .map(|b| u64::from(b.weight))
        .max()
        .unwrap_or(0);
    if wmax == 0 {
        return Box::new([]);
    }
    let m = select_table_len(buckets.len());
    const FREE: u8 = u8::MAX;
    let ids = bucket_ids(buckets);
    let mut order: Vec<usize> = (0..buckets.len()).collect();
    order.sort_by_key(|&i| ids[i]);
    let m64 = m as u64;
    let start: Vec<u64> = ids.iter().map(|id| id % m64).collect();
    let step: Vec<u64> = ids.iter().map(|id| (id >> 32) % (m64 - 1) + 1).collect();
    let mut next = vec![0u64; buckets.len()];
    let mut taken = vec![0u64; buckets.len()];
    let round = |i: usize, k: u64| (k * wmax).div_ceil(u64::from(buckets[i].weight));
    // (round of the claim, place in the identity order)
    let mut claims: BinaryHeap<Reverse<(u64, usize)>> = order
        .iter()
        .enumerate()
        .filter(|&(_, &i)| buckets[i].weight > 0)
        .map(|(pos, &i)| Reverse((round(i, 1), pos)))
        .collect();
    let mut table = vec![FREE; m].into_boxed_slice();
    let mut filled = 0;
    while filled < m {
        let Some(Reverse((_, pos))) = claims.pop() else {
            break;
        };
        let i = order[pos];
        loop {
            #[expect(clippy::cast_possible_truncation, reason = "below m")]
            let c = ((start[i] + next[i] * step[i]) % m64) as usize;
            next[i] += 1;
            if table[c] == FREE {
                #[expect(clippy::cast_possible_truncation, reason = "MAX_BUCKETS < 255")]
                let b = i as u8;
                table[c] = b;
                filled += 1;
                break;
            }
        }
        taken[i] += 1;
        claims.push(Reverse((round(i, taken[i] + 1), pos)));
    }
    table
}

fn err(at: String, kind: FlowErrorKind, message: impl Into<String>) -> FlowError {
    FlowError {
        kind,
        at,
        message: message.into(),
    }
}

impl Group {
    /// Validates and builds a group with `writers` counter slots.
    ///
    /// # Errors
    /// The first invalid bucket or action (`buckets[1].actions[0]`, …).
    pub fn new(
        id: u32,
        kind: GroupType,
        buckets: Vec<Bucket>,
        writers: usize,
    ) -> Result<Self, FlowError> {
        if buckets.len() > MAX_BUCKETS {
            return Err(err(
                "buckets".into(),
                FlowErrorKind::BadAction,
                format!("{} buckets (max {MAX_BUCKETS})", buckets.len()),
            ));
        }
        if kind == GroupType::Indirect && buckets.len() != 1 {
            return Err(err(
                "buckets".into(),
                FlowErrorKind::BadAction,
                "an indirect group has exactly one bucket",
            ));
        }
        for (i, b) in buckets.iter().enumerate() {
            let at = |s: &str| format!("buckets[{i}]{s}");
            if b.actions.len() > MAX_ACTIONS {
                return Err(err(
                    at(".actions"),
                    FlowErrorKind::BadAction,
                    format!("{} actions (max {MAX_ACTIONS})", b.actions.len()),
                ));
            }
            match (kind, b.watch_port) {
                (GroupType::FastFailover, None) => {
                    return Err(err(
                        at(".watch_port"),
                        FlowErrorKind::BadAction,
                        "a fast-failover bucket needs a watch_port",
                    ));
                }
                (_, Some(p)) if p == 0 || p as usize > MAX_PORTS => {
                    return Err(err(
                        at(".watch_port"),
                        FlowErrorKind::BadPort,
                        format!("port {p} is out of range (1..={MAX_PORTS})"),
                    ));
                }
                _ => {}
            }
            if kind == GroupType::Select && b.weight == 0 && buckets.len() == 1 {
                return Err(err(
                    at(".weight"),
                    FlowErrorKind::BadAction,
                    "the only bucket of a select group needs a weight",
                ));
            }
            for (j, a) in b.actions.iter().enumerate() {
                check_bucket_action(a, &format!("buckets[{i}].actions[{j}]"))?;
            }
        }
        let table = if kind == GroupType::Select {
            select_table(&buckets)
        } else {
            Box::new([])
        };
        Ok(Self {
            id,
            kind,
            bucket_stats: (0..buckets.len())
                .map(|_| FlowStats::new(writers))
                .collect(),
            buckets,
            stats: FlowStats::new(writers),
            table,
        })
    }

    /// The bucket a `select` group uses for `key`: the table's slot for a hash of the
    /// 5-tuple (IP addresses, protocol, L4 ports; a fragment's addresses and protocol only),
    /// so one connection always takes one bucket, buckets by weight. A bucket whose
    /// `watch_port` is not `live` is left out (as Open vSwitch; until 2026-12-07 its
    /// connections went on to the dead port): its connections are spread over the live
    /// buckets by weight with a second hash, and the connections of the live buckets stay
    /// where they are. `None`: no live bucket with a weight.
    pub fn select(&self, key: &FlowKey, live: impl Fn(u32) -> bool) -> Option<usize> {
        let alive = |b: &Bucket| b.watch_port.is_none_or(&live);
        let h = hash5(key);
        // The hash's high half scaled onto the table (no division).
        let slot = (((h >> 32) * self.table.len() as u64) >> 32) as usize;
        let first = usize::from(*self.table.get(slot)?);
        if alive(&self.buckets[first]) {
            return Some(first);
        }
        let total = self
            .buckets
            .iter()
            .filter(|b| alive(b))
            .map(|b| u32::from(b.weight))
            .sum();
        let h2 = (h ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        pick(&self.buckets, total, h2 ^ (h2 >> 31), alive)
    }

    /// Whether any bucket outputs to `port` (for `out_port`-style filters).
    pub fn outputs_to(&self, port: u32) -> bool {
        self.buckets
            .iter()
            .flat_map(|b| b.actions.iter())
            .any(|a| a.output_port() == Some(port))
    }
}

/// The bucket of `buckets` that `h` falls in when the weights of those `counted` (summing to
/// `total`) are laid end to end.
fn pick(
    buckets: &[Bucket],
    total: u32,
    h: u64,
    counted: impl Fn(&Bucket) -> bool,
) -> Option<usize> {
    if total == 0 {
        return None;
    }
    let mut at = u32::try_from(h % u64::from(total)).unwrap_or(0);
    for (i, b) in buckets.iter().enumerate() {
        if !counted(b) {
            continue;
        }
        let w = u32::from(b.weight);
        if at < w {
            return Some(i);
        }
        at -= w;
    }
    None
}

/// A symmetric-insensitive, deterministic hash of the 5-tuple (not keyed: the same connection
/// picks the same bucket on every worker and after restarts).
pub fn hash5(k: &FlowKey) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |x: u64| {
        h ^= x;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    };
    mix(u64::from_le_bytes(
        k.nw_src[..8].try_into().unwrap_or_default(),
    ));
    mix(u64::from_le_bytes(
        k.nw_src[8..].try_into().unwrap_or_default(),
    ));
    mix(u64::from_le_bytes(
        k.nw_dst[..8].try_into().unwrap_or_default(),
    ));
    mix(u64::from_le_bytes(
        k.nw_dst[8..].try_into().unwrap_or_default(),
    ));
    // A fragment's ports are left out: later fragments have none, and the first must take
    // the same bucket (found by an audit: the fragments of one datagram went to different
    // buckets, which never reassembled them).
    let ports = if k.nw_frag & crate::flow::frag::ANY == 0 {
        u64::from(k.tp_src) << 16 | u64::from(k.tp_dst)
    } else {
        0
    };
    mix(u64::from(k.nw_proto) << 32 | ports);
    h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 32)
}

fn check_bucket_action(a: &Action, at: &str) -> Result<(), FlowError> {
    match *a {
        Action::Output(p) if p == 0 || p as usize > MAX_PORTS => Err(err(
            at.into(),
            FlowErrorKind::BadPort,
            format!("port {p} is out of range (1..={MAX_PORTS})"),
        )),
        Action::Output(_) | Action::InPort | Action::PopVlan | Action::DecTtl => Ok(()),
        Action::PushVlan(t) if t != ETH_TYPE_VLAN && t != ETH_TYPE_QINQ => Err(err(
            at.into(),
            FlowErrorKind::BadAction,
            format!("push_vlan takes TPID 0x8100 or 0x88a8, not {t:#06x}"),
        )),
        Action::PushVlan(_) => Ok(()),
        Action::SetField { field, value } => {
            if !field.writable() || !field.in_frame() || field == Field::Metadata {
                return Err(err(
                    at.into(),
                    FlowErrorKind::BadAction,
                    format!("{field} cannot be written in a group bucket"),
                ));
            }
            if value > field.max_value() {
                return Err(err(
                    at.into(),
                    FlowErrorKind::BadAction,
                    format!("value {value:#x} does not fit {field}"),
                ));
            }
            // Buckets are shared by flows with different matches: a header the packet lacks
            // makes the rewrite fail at packet time (counted as action_failed), as in OpenFlow.
            Ok(())
        }
        Action::Normal | Action::Flood | Action::All => Err(err(
            at.into(),
            FlowErrorKind::Unsupported,
            "normal/flood/all are not supported in group buckets",
        )),
        Action::Group(_) => Err(err(
            at.into(),
            FlowErrorKind::Unsupported,
            "groups cannot chain to other groups",
        )),
        Action::Meter(_) | Action::Controller { .. } => Err(err(
            at.into(),
            FlowErrorKind::Unsupported,
            "meter and controller are not supported in group buckets",
        )),
    }
}

/// The groups of a pipeline, in no order (a persistent hash map: a change after a publication
/// copies the path to its entry, not every group; a worker's lookup ~10 ns at 4,096 groups,
/// where an ordered map took ~25).
pub type Groups =
    imbl::GenericHashMap<u32, Arc<Group>, ahash::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(w: u16, out: u32) -> Bucket {
        Bucket {
            weight: w,
            watch_port: None,
            actions: vec![Action::Output(out)],
        }
    }

    #[test]
    fn select_spreads_by_weight_and_is_stable_per_connection() {
        let g = Group::new(
            1,
            GroupType::Select,
            vec![bucket(1, 1), bucket(1, 2), bucket(2, 3)],
            1,
        )
        .unwrap();
        let mut counts = [0usize; 3];
        for port in 0..4000u16 {
            let k = FlowKey {
                nw_proto: 6,
                tp_src: port,
                tp_dst: 80,
                ..FlowKey::default()
            };
            let b = g.select(&k, |_| true).unwrap();
            assert_eq!(g.select(&k, |_| true), Some(b));
            counts[b] += 1;
        }
        // Weights 1:1:2 within a loose tolerance.
        assert!((800..1200).contains(&counts[0]), "{counts:?}");
        assert!((800..1200).contains(&counts[1]), "{counts:?}");
        assert!((1700..2300).contains(&counts[2]), "{counts:?}");
    }

    /// The output port each of `keys` goes to through select group `buckets`.
    fn ports_for(buckets: &[Bucket], keys: &[FlowKey]) -> Vec<u32> {
        let g = Group::new(1, GroupType::Select, buckets.to_vec(), 1).unwrap();
        keys.iter()
            .map(|k| {
                let b = g.select(k, |_| true).unwrap();
                g.buckets[b].actions[0].output_port().unwrap()
            })
            .collect()
    }

    fn connections(n: u32) -> Vec<FlowKey> {
        (0..n)
            .map(|i| {
                let mut k = FlowKey {
                    nw_proto: 6,
                    tp_src: 1024 + (i % 50_000) as u16,
                    tp_dst: 80,
                    ..FlowKey::default()
                };
                k.nw_src[12..].copy_from_slice(&(0x0a00_0000 + i / 50_000).to_be_bytes());
                k
            })
            .collect()
    }

    /// Shares of the connections that moved to one of `to`, and that moved elsewhere.
    fn moved(a: &[u32], b: &[u32], to: &[u32]) -> (f64, f64) {
        let (mut listed, mut other) = (0u32, 0u32);
        for (x, y) in a.iter().zip(b) {
            if x != y {
                if to.contains(y) {
                    listed += 1;
                } else {
                    other += 1;
                }
            }
        }
        let n = a.len() as f64;
        (f64::from(listed) / n, f64::from(other) / n)
    }

    /// A `modify` moves the connections it must and few others. Here: a fifth bucket takes
    /// 20 % and 1.4 % move between the others; a bucket removed, 0.6 % of the others'
    /// connections move; a weight doubled, 15 % to it and 1 % between the others; the same
    /// buckets reordered, none. (Until 2026-12-08 the bucket was the hash modulo the
    /// weights: those were 60 %, 50 %, 45 % and 100 % moved between buckets that had not
    /// changed.)
    #[test]
    fn a_select_modify_moves_few_connections_between_buckets_it_did_not_change() {
        let keys = connections(40_000);
        let four: Vec<Bucket> = (1..=4).map(|p| bucket(1, p)).collect();
        let before = ports_for(&four, &keys);
        // A fifth bucket: ~1/5 of the connections move to it, few elsewhere.
        let mut five = four.clone();
        five.push(bucket(1, 5));
        let m5 = moved(&before, &ports_for(&five, &keys), &[5]);
        // The same buckets in another order: nothing moves.
        let mut shuffled = four.clone();
        shuffled.reverse();
        shuffled.swap(0, 2);
        let mr = moved(&before, &ports_for(&shuffled, &keys), &[]);
        // Bucket 3 goes: its connections move (a quarter), few others do.
        let three: Vec<Bucket> = four
            .iter()
            .filter(|b| b.actions[0].output_port() != Some(3))
            .cloned()
            .collect();
        let after = ports_for(&three, &keys);
        let others = before
            .iter()
            .zip(&after)
            .filter(|(x, y)| **x != 3 && x != y)
            .count() as f64
            / keys.len() as f64;
        // Bucket 1's weight doubled: its share goes from 1/4 to 2/5.
        let mut heavier = four.clone();
        heavier[0].weight = 2;
        let mw = moved(&before, &ports_for(&heavier, &keys), &[1]);
        assert!((0.17..0.23).contains(&m5.0) && m5.1 < 0.03, "{m5:?}");
        assert_eq!(mr, (0.0, 0.0));
        assert!(others < 0.03, "{others}");
        assert!((0.12..0.18).contains(&mw.0) && mw.1 < 0.03, "{mw:?}");
    }

    /// Extreme weights: the shares follow them, and the table is built without walking the
    /// empty rounds (64 buckets, one of weight 65,535: ~262,000 rounds of the plain loop).
    #[test]
    fn select_tables_follow_extreme_weights() {
        let mut buckets: Vec<Bucket> = (1..=64).map(|p| bucket(1, p)).collect();
        buckets[0].weight = u16::MAX;
        let g = Group::new(1, GroupType::Select, buckets, 1).unwrap();
        let m = select_table_len(64);
        assert_eq!(g.table.len(), m);
        let first = g.table.iter().filter(|&&b| b == 0).count();
        // 65,535 / 65,598 of the slots, less what the 63 others take at their first round.
        assert!(first >= m - 63, "{first} of {m}");
        // Weights 3 and 1: 3/4 and 1/4 of the slots, to the slot.
        let g = Group::new(1, GroupType::Select, vec![bucket(3, 1), bucket(1, 2)], 1).unwrap();
        let m = g.table.len();
        let ones = g.table.iter().filter(|&&b| b == 1).count();
        assert!(ones.abs_diff(m / 4) <= 1, "{ones} of {m}");
    }

    #[test]
    fn invalid_groups_are_rejected() {
        let e =
            Group::new(1, GroupType::Indirect, vec![bucket(0, 1), bucket(0, 2)], 1).unwrap_err();
        assert_eq!(e.at, "buckets");
        let e = Group::new(1, GroupType::FastFailover, vec![bucket(0, 1)], 1).unwrap_err();
        assert_eq!(e.at, "buckets[0].watch_port");
        let mut b = bucket(1, 1);
        b.actions.push(Action::Group(2));
        let e = Group::new(1, GroupType::All, vec![b], 1).unwrap_err();
        assert_eq!(e.kind, FlowErrorKind::Unsupported);
        assert_eq!(e.at, "buckets[0].actions[1]");
        let e = Group::new(1, GroupType::All, vec![bucket(1, 0)], 1).unwrap_err();
        assert_eq!(e.kind, FlowErrorKind::BadPort);
    }
}
