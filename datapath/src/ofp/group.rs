//! Groups: all, select (weighted, by a hash of the 5-tuple), indirect, fast-failover.
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
    /// Sum of select weights.
    total_weight: u32,
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
        let total_weight = buckets.iter().map(|b| u32::from(b.weight)).sum();
        Ok(Self {
            id,
            kind,
            bucket_stats: (0..buckets.len())
                .map(|_| FlowStats::new(writers))
                .collect(),
            buckets,
            stats: FlowStats::new(writers),
            total_weight,
        })
    }

    /// The bucket a `select` group uses for `key`: weighted by a hash of the 5-tuple (IP
    /// addresses, protocol, L4 ports; a fragment's addresses and protocol only), so one
    /// connection always takes one bucket. A bucket whose `watch_port` is not `live` is left
    /// out (as Open vSwitch; until 2026-12-07 its connections went on to the dead port): its
    /// connections are spread over the live buckets by weight with a second hash, and the
    /// connections of the live buckets stay where they are. `None`: no live bucket with a
    /// weight.
    pub fn select(&self, key: &FlowKey, live: impl Fn(u32) -> bool) -> Option<usize> {
        let alive = |b: &Bucket| b.watch_port.is_none_or(&live);
        let h = hash5(key);
        let first = pick(&self.buckets, self.total_weight, h, |_| true)?;
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
