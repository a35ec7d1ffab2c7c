//! The classifier: OpenFlow-like tables of prioritised, masked rules (slow path only).
//!
//! A [`Table`] holds [`Rule`]s: a [`Match`] (a key and a [`FlowMask`] of the bits that matter), a
//! priority and the caller's id. [`Table::lookup`] finds the rule of highest priority that matches
//! a [`FlowKey`]; [`Table::lookup_wc`] also reports which key bits the answer depended on, which
//! is the mask the slow path installs a megaflow with.
//!
//! Lookup is tuple-space search: rules are grouped into one subtable per distinct mask, each a
//! hash map from the masked key to the rules with that exact match. A lookup masks the key once
//! per subtable and does one hash probe. Subtables are visited in order of the highest priority
//! they hold, so the search stops as soon as no remaining subtable can beat the best match found.
//!
//! Tie rule: when several matching rules share the highest priority (OpenFlow leaves this
//! undefined), the one with the **lowest id** wins. This makes the result independent of
//! insertion order and of the subtable layout.
//!
//! Invariants:
//! - The key of every [`Match`] is pre-masked (`key & mask == key`); [`Match::new`] enforces it.
//! - A table holds at most one rule per (match, priority); inserting another replaces it.
//! - Every subtable is non-empty, has a distinct mask, and the subtables are sorted by their
//!   maximum priority, highest first; within a bucket (one match) rules are sorted by priority,
//!   highest first (priorities in a bucket are distinct by the previous invariant).
//! - [`Table::len`] never exceeds the capacity given to [`Table::with_capacity`]; nothing else
//!   bounds memory.
//!
//! Thread-safety: a table is plain owned data with no interior mutability; lookups take `&self`.
//! The control thread builds and mutates tables; workers are meant to read them only as part of an
//! immutable published snapshot (slow-path upcalls on the worker that missed), never while they
//! change.

use crate::flow::FlowKey;

/// `op` applied word by word to two keys (see [`FlowKey::words`]).
#[inline]
fn per_word(a: &FlowKey, b: &FlowKey, op: impl Fn(u64, u64) -> u64) -> FlowKey {
    let mut out = FlowKey::default();
    let (x, y) = (a.words(), b.words());
    for (o, (&x, &y)) in out.words_mut().iter_mut().zip(x.iter().zip(y)) {
        *o = op(x, y);
    }
    out
}

/// Which bits of a [`FlowKey`] matter: same layout as the key, a bit is 1 where it is matched
/// (or, as the output of [`Table::lookup_wc`], where it was consulted).
///
/// The `pad2` bytes are never set by the constructors here; keys keep them zero anyway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowMask {
    /// The mask bits, one per key bit.
    pub bits: FlowKey,
}

impl FlowMask {
    /// A mask from its bits.
    #[inline]
    pub const fn from_bits(bits: FlowKey) -> Self {
        Self { bits }
    }

    /// Matches nothing: every bit wildcarded.
    #[inline]
    pub fn all_wildcards() -> Self {
        Self::default()
    }

    /// Matches every field exactly (every bit set except the padding).
    pub fn exact() -> Self {
        let mut bits = FlowKey::default();
        bits.words_mut().fill(u64::MAX);
        bits.pad2 = [0; 4];
        Self { bits }
    }

    /// The bits set in either mask.
    #[inline]
    #[must_use]
    pub fn union(&self, other: &Self) -> Self {
        Self {
            bits: per_word(&self.bits, &other.bits, |a, b| a | b),
        }
    }

    /// The bits set in both masks.
    #[inline]
    #[must_use]
    pub fn intersection(&self, other: &Self) -> Self {
        Self {
            bits: per_word(&self.bits, &other.bits, |a, b| a & b),
        }
    }

    /// `key` with every bit outside the mask cleared.
    #[inline]
    pub fn apply(&self, key: &FlowKey) -> FlowKey {
        per_word(key, &self.bits, |a, b| a & b)
    }

    /// Whether every bit of `self` is also set in `other`.
    pub fn is_subset_of(&self, other: &Self) -> bool {
        self.union(other) == *other
    }

    /// The first `len` bits set (clamped to 128), as for an address prefix in `nw_src`/`nw_dst`;
    /// `prefix_bytes(24)` is the IPv4 mask 255.255.255.0 in the first four bytes.
    pub fn prefix_bytes(len: u8) -> [u8; 16] {
        let len = usize::from(len.min(128));
        std::array::from_fn(|i| {
            let bits = len.saturating_sub(i * 8).min(8);
            // bits is 0..=8, so the shifted value fits in u16 and its low byte is the mask.
            ((0xff00u16 >> bits) & 0xff) as u8
        })
    }
}

/// A masked match: the rule applies to every key `k` with `mask.apply(k) == key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Match {
    key: FlowKey,
    mask: FlowMask,
}

impl Match {
    /// A match on the bits of `key` selected by `mask` (bits of `key` outside it are cleared).
    #[inline]
    pub fn new(key: FlowKey, mask: FlowMask) -> Self {
        Self {
            key: mask.apply(&key),
            mask,
        }
    }

    /// The match that every key satisfies.
    pub fn any() -> Self {
        Self::new(FlowKey::default(), FlowMask::all_wildcards())
    }

    /// The (pre-masked) key.
    #[inline]
    pub fn key(&self) -> &FlowKey {
        &self.key
    }

    /// The mask.
    #[inline]
    pub fn mask(&self) -> &FlowMask {
        &self.mask
    }

    /// Whether `key` satisfies this match.
    #[inline]
    pub fn matches(&self, key: &FlowKey) -> bool {
        self.mask.apply(key) == self.key
    }
}

/// One rule of a [`Table`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Higher wins; ties go to the lower [`id`](Self::id).
    pub priority: u16,
    /// What the rule applies to.
    pub m: Match,
    /// The caller's handle for the rule (e.g. a flow id); need not be unique.
    pub id: u64,
}

/// Most distinct masks (subtables) in one [`Table`]. A lookup probes every subtable in the
/// worst case, and the slow path of every packet that misses the caches does a lookup: the
/// bound keeps one lookup near half a millisecond however the rules are shaped (1.3 ms at
/// 10,000 masks, ~60 ms at 150,000; real pipelines use tens to hundreds).
pub const MAX_MASKS: usize = 4096;

/// Errors of [`Table`] updates. The table is unchanged when one is returned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClassifierError {
    /// Inserting a new rule would exceed the table's capacity.
    #[error("flow table full (max {max} rules)")]
    TableFull {
        /// The capacity.
        max: usize,
    },
    /// Inserting a rule of a new mask would exceed [`MAX_MASKS`].
    #[error("too many distinct match shapes (max {max} masks)")]
    TooManyMasks {
        /// The bound.
        max: usize,
    },
}

/// A rule as stored in a bucket (the match is the bucket's).
#[derive(Clone, Copy, Debug)]
struct Entry {
    priority: u16,
    id: u64,
}

/// All rules with one mask.
#[derive(Clone, Debug)]
struct Subtable {
    mask: FlowMask,
    /// Masked key → rules with that match, priority descending (distinct priorities).
    buckets: imbl::GenericHashMap<
        FlowKey,
        Vec<Entry>,
        ahash::RandomState,
        imbl::shared_ptr::DefaultSharedPtr,
    >,
    /// Priority → number of rules with it (for the maximum after removals).
    prios: imbl::OrdMap<u16, usize>,
    /// Cached highest key of `prios`.
    max_priority: u16,
}

impl Subtable {
    fn new(mask: FlowMask) -> Self {
        Self {
            mask,
            buckets: imbl::GenericHashMap::with_hasher(crate::hash::state()),
            prios: imbl::OrdMap::new(),
            max_priority: 0,
        }
    }

    fn refresh_max(&mut self) {
        self.max_priority = self.prios.get_max().map_or(0, |(p, _)| *p);
    }
}

/// One OpenFlow-like table: bounded, prioritised, masked rules; tuple-space search.
///
/// See the module docs for the tie rule and the invariants.
#[derive(Clone, Debug)]
pub struct Table {
    /// Sorted by `max_priority`, highest first.
    subtables: Vec<Subtable>,
    /// Each subtable's position in `subtables`, by mask (updates find their subtable with one
    /// probe instead of comparing every mask).
    by_mask: std::collections::HashMap<FlowMask, usize, ahash::RandomState>,
    len: usize,
    max: usize,
}

impl Table {
    /// An empty table that holds at most `max_rules` rules.
    pub fn with_capacity(max_rules: usize) -> Self {
        Self {
            subtables: Vec::new(),
            by_mask: std::collections::HashMap::with_hasher(crate::hash::state()),
            len: 0,
            max: max_rules,
        }
    }

    /// Number of rules.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no rules.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most rules the table holds.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.max
    }

    /// Number of distinct masks (subtables) — the worst-case number of hash probes per lookup.
    #[inline]
    pub fn subtable_count(&self) -> usize {
        self.subtables.len()
    }

    /// Adds `rule`. A rule with the same match and priority is replaced and its id returned.
    ///
    /// # Errors
    /// [`ClassifierError::TableFull`] if the rule is new and the table is at capacity (a
    /// replacement always succeeds).
    pub fn insert(&mut self, rule: Rule) -> Result<Option<u64>, ClassifierError> {
        let Rule { priority, m, id } = rule;
        let pos = self.by_mask.get(&m.mask).copied();
        if let Some(i) = pos {
            let bucket = self.subtables[i].buckets.get_mut(&m.key);
            if let Some(bucket) = bucket
                && let Some(e) = bucket.iter_mut().find(|e| e.priority == priority)
            {
                return Ok(Some(std::mem::replace(&mut e.id, id)));
            }
        }
        if self.len >= self.max {
            return Err(ClassifierError::TableFull { max: self.max });
        }
        if pos.is_none() && self.subtables.len() >= MAX_MASKS {
            return Err(ClassifierError::TooManyMasks { max: MAX_MASKS });
        }
        let i = pos.unwrap_or_else(|| {
            self.subtables.push(Subtable::new(m.mask));
            let i = self.subtables.len() - 1;
            self.by_mask.insert(m.mask, i);
            i
        });
        let st = &mut self.subtables[i];
        let bucket = st.buckets.entry(m.key).or_default();
        let at = bucket.partition_point(|e| e.priority > priority);
        bucket.insert(at, Entry { priority, id });
        *st.prios.entry(priority).or_insert(0) += 1;
        st.refresh_max();
        self.len += 1;
        self.reposition(i);
        Ok(None)
    }

    /// The id of the rule with exactly this match and priority (one hash probe).
    pub fn find(&self, m: &Match, priority: u16) -> Option<u64> {
        let st = &self.subtables[*self.by_mask.get(&m.mask)?];
        st.buckets
            .get(&m.key)?
            .iter()
            .find(|e| e.priority == priority)
            .map(|e| e.id)
    }

    /// Removes the rule with this match and priority, returning its id.
    pub fn remove(&mut self, m: &Match, priority: u16) -> Option<u64> {
        let i = *self.by_mask.get(&m.mask)?;
        let st = &mut self.subtables[i];
        let bucket = st.buckets.get_mut(&m.key)?;
        let at = bucket.iter().position(|e| e.priority == priority)?;
        let id = bucket.remove(at).id;
        if bucket.is_empty() {
            st.buckets.remove(&m.key);
        }
        if let Some(n) = st.prios.get_mut(&priority) {
            *n -= 1;
            if *n == 0 {
                st.prios.remove(&priority);
            }
        }
        st.refresh_max();
        self.len -= 1;
        if st.buckets.is_empty() {
            self.by_mask.remove(&m.mask);
            self.subtables.remove(i);
            for (j, st) in self.subtables.iter().enumerate().skip(i) {
                self.by_mask.insert(st.mask, j);
            }
        } else {
            self.reposition(i);
        }
        Some(id)
    }

    /// Moves subtable `i`, whose maximum priority changed, to its place in the order (highest
    /// first; it passes only subtables of a strictly lower or higher maximum, so equal maxima
    /// keep their relative order), and updates the positions of those it passed.
    fn reposition(&mut self, i: usize) {
        let p = self.subtables[i].max_priority;
        let mut j = i;
        while j > 0 && self.subtables[j - 1].max_priority < p {
            j -= 1;
        }
        if j == i {
            while j + 1 < self.subtables.len() && self.subtables[j + 1].max_priority > p {
                j += 1;
            }
        }
        if j < i {
            self.subtables[j..=i].rotate_right(1);
        } else if j > i {
            self.subtables[i..=j].rotate_left(1);
        } else {
            return;
        }
        for k in i.min(j)..=i.max(j) {
            self.by_mask.insert(self.subtables[k].mask, k);
        }
    }

    /// The best rule matching `key` as `(id, priority)`: highest priority, then lowest id.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(u64, u16)> {
        let mut wc = FlowMask::all_wildcards();
        self.lookup_wc(key, &mut wc)
    }

    /// As [`lookup`](Self::lookup), and ORs into `wc` the mask of every subtable it probed.
    ///
    /// Soundness for megaflows: let `k2` be any key that agrees with `key` on every bit of `wc`.
    /// Each probed subtable's mask is within `wc`, so masking `k2` gives the same bucket as
    /// masking `key`: every probed subtable answers the same for both. The search stops only
    /// at a subtable whose maximum priority is *strictly* below the best match found (and the
    /// subtables after it are lower still), so no skipped rule can beat or tie that match,
    /// which `k2` also matches. If nothing matched, every subtable was probed. Hence
    /// `lookup(k2) == lookup(key)`, and `wc` is a correct megaflow mask for the result.
    pub fn lookup_wc(&self, key: &FlowKey, wc: &mut FlowMask) -> Option<(u64, u16)> {
        let mut best: Option<(u64, u16)> = None;
        for st in &self.subtables {
            if let Some((_, bp)) = best
                && st.max_priority < bp
            {
                break;
            }
            *wc = wc.union(&st.mask);
            let Some(e) = st.buckets.get(&st.mask.apply(key)).and_then(|b| b.first()) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((bid, bp)) => e.priority > bp || (e.priority == bp && e.id < bid),
            };
            if better {
                best = Some((e.id, e.priority));
            }
        }
        best
    }

    /// Calls `visit` with the id and priority of every rule whose match is `m` or more specific
    /// (its mask holds every bit of `m`'s and its key agrees with `m`'s on them: the flows an
    /// OpenFlow non-strict modify or delete selects), in no particular order. Only subtables
    /// whose mask holds `m`'s can have such rules: in the one with `m`'s own mask a single probe
    /// finds them, the others are scanned (so an op with a flow's own match fields costs one
    /// probe per such subtable, not a look at every rule).
    pub fn for_each_covered(&self, m: &Match, mut visit: impl FnMut(u64, u16)) {
        for st in &self.subtables {
            if !m.mask.is_subset_of(&st.mask) {
                continue;
            }
            if st.mask == m.mask {
                for e in st.buckets.get(&m.key).into_iter().flatten() {
                    visit(e.id, e.priority);
                }
                continue;
            }
            for (key, bucket) in &st.buckets {
                if m.mask.apply(key) == m.key {
                    for e in bucket {
                        visit(e.id, e.priority);
                    }
                }
            }
        }
    }

    /// Calls `visit` with the id and priority of every rule that some key matches together
    /// with `m` (the two agree on every bit both masks hold: OpenFlow's overlap), in no
    /// particular order. In a subtable whose mask `m`'s holds, a single probe finds them; the
    /// others are scanned.
    pub fn for_each_overlapping(&self, m: &Match, mut visit: impl FnMut(u64, u16)) {
        for st in &self.subtables {
            if st.mask.is_subset_of(&m.mask) {
                for e in st.buckets.get(&st.mask.apply(&m.key)).into_iter().flatten() {
                    visit(e.id, e.priority);
                }
                continue;
            }
            let both = st.mask.intersection(&m.mask);
            let want = both.apply(&m.key);
            for (key, bucket) in &st.buckets {
                if both.apply(key) == want {
                    for e in bucket {
                        visit(e.id, e.priority);
                    }
                }
            }
        }
    }

    /// Every rule, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = Rule> + '_ {
        self.subtables.iter().flat_map(|st| {
            st.buckets.iter().flat_map(move |(key, bucket)| {
                bucket.iter().map(move |e| Rule {
                    priority: e.priority,
                    m: Match {
                        key: *key,
                        mask: st.mask,
                    },
                    id: e.id,
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::ETH_TYPE_IPV4;
    use proptest::prelude::*;
    use std::cmp::Reverse;

    fn ip(a: [u8; 4]) -> [u8; 16] {
        let mut v = [0; 16];
        v[..4].copy_from_slice(&a);
        v
    }

    fn dst_mask(len: u8) -> FlowMask {
        let mut m = FlowMask::all_wildcards();
        m.bits.eth_type = u16::MAX;
        m.bits.nw_dst = FlowMask::prefix_bytes(len);
        m
    }

    fn dst_rule(addr: [u8; 4], len: u8, priority: u16, id: u64) -> Rule {
        let key = FlowKey {
            eth_type: ETH_TYPE_IPV4,
            nw_dst: ip(addr),
            ..FlowKey::default()
        };
        Rule {
            priority,
            m: Match::new(key, dst_mask(len)),
            id,
        }
    }

    fn pkt(dst: [u8; 4]) -> FlowKey {
        FlowKey {
            in_port: 3,
            eth_type: ETH_TYPE_IPV4,
            nw_dst: ip(dst),
            nw_proto: 6,
            tp_dst: 80,
            ..FlowKey::default()
        }
    }

    #[test]
    fn mask_helpers() {
        assert_eq!(FlowMask::prefix_bytes(0), [0; 16]);
        assert_eq!(&FlowMask::prefix_bytes(12)[..3], &[0xff, 0xf0, 0]);
        assert_eq!(FlowMask::prefix_bytes(200), [0xff; 16]);
        let k = pkt([10, 1, 2, 3]);
        assert_eq!(FlowMask::exact().apply(&k), k);
        assert_eq!(FlowMask::all_wildcards().apply(&k), FlowKey::default());
        assert_eq!(FlowMask::exact().bits.pad2, [0; 4]);
        let a = dst_mask(8);
        let mut b = FlowMask::all_wildcards();
        b.bits.in_port = u32::MAX;
        let u = a.union(&b);
        assert!(a.is_subset_of(&u) && b.is_subset_of(&u) && !u.is_subset_of(&a));
        assert_eq!(u.intersection(&b), b);
        assert_eq!(u.apply(&k).in_port, 3);
        assert_eq!(&u.apply(&k).nw_dst[..4], &[10, 0, 0, 0]);
    }

    #[test]
    fn match_key_is_pre_masked() {
        let m = Match::new(pkt([10, 1, 2, 3]), dst_mask(16));
        assert_eq!(m.key().in_port, 0);
        assert_eq!(&m.key().nw_dst[..4], &[10, 1, 0, 0]);
        assert!(m.matches(&pkt([10, 1, 9, 9])));
        assert!(!m.matches(&pkt([10, 2, 2, 3])));
        assert!(Match::any().matches(&pkt([1, 2, 3, 4])));
    }

    #[test]
    fn exact_match() {
        let mut t = Table::with_capacity(8);
        let k = pkt([10, 0, 0, 1]);
        let r = Rule {
            priority: 5,
            m: Match::new(k, FlowMask::exact()),
            id: 42,
        };
        assert_eq!(t.insert(r), Ok(None));
        assert_eq!(t.lookup(&k), Some((42, 5)));
        let mut other = k;
        other.tp_src = 1;
        assert_eq!(t.lookup(&other), None);
        let mut wc = FlowMask::all_wildcards();
        t.lookup_wc(&k, &mut wc);
        assert_eq!(wc, FlowMask::exact());
    }

    #[test]
    fn longest_prefix_by_priority_on_nw_dst() {
        let mut t = Table::with_capacity(8);
        t.insert(dst_rule([10, 0, 0, 0], 8, 8, 1)).unwrap();
        t.insert(dst_rule([10, 1, 0, 0], 16, 16, 2)).unwrap();
        t.insert(dst_rule([10, 1, 2, 0], 24, 24, 3)).unwrap();
        t.insert(dst_rule([10, 1, 2, 3], 32, 32, 4)).unwrap();
        assert_eq!(t.subtable_count(), 4);
        assert_eq!(t.lookup(&pkt([10, 1, 2, 3])), Some((4, 32)));
        assert_eq!(t.lookup(&pkt([10, 1, 2, 4])), Some((3, 24)));
        assert_eq!(t.lookup(&pkt([10, 1, 3, 4])), Some((2, 16)));
        assert_eq!(t.lookup(&pkt([10, 2, 3, 4])), Some((1, 8)));
        assert_eq!(t.lookup(&pkt([11, 1, 2, 3])), None);

        // A /32 hit stops the search at once: only its mask is consulted.
        let mut wc = FlowMask::all_wildcards();
        t.lookup_wc(&pkt([10, 1, 2, 3]), &mut wc);
        assert_eq!(wc, dst_mask(32));
        // A miss consults every subtable.
        let mut wc = FlowMask::all_wildcards();
        t.lookup_wc(&pkt([11, 1, 2, 3]), &mut wc);
        assert_eq!(wc, dst_mask(32));
        // A /16 hit had to look at /32 and /24 first, but not /8.
        let mut wc = FlowMask::all_wildcards();
        t.lookup_wc(&pkt([10, 1, 3, 4]), &mut wc);
        assert_eq!(wc, dst_mask(32));
    }

    #[test]
    fn early_termination_skips_lower_subtables() {
        let mut t = Table::with_capacity(8);
        t.insert(dst_rule([10, 0, 0, 0], 8, 100, 1)).unwrap();
        t.insert(dst_rule([10, 1, 2, 3], 32, 1, 2)).unwrap();
        let mut wc = FlowMask::all_wildcards();
        assert_eq!(t.lookup_wc(&pkt([10, 1, 2, 3]), &mut wc), Some((1, 100)));
        assert_eq!(wc, dst_mask(8));
    }

    #[test]
    fn priority_ordering_and_lowest_id_tie_break() {
        let mut t = Table::with_capacity(8);
        let mut port = FlowMask::all_wildcards();
        port.bits.in_port = u32::MAX;
        t.insert(Rule {
            priority: 10,
            m: Match::new(pkt([0; 4]), port),
            id: 7,
        })
        .unwrap();
        t.insert(dst_rule([10, 0, 0, 0], 8, 10, 9)).unwrap();
        t.insert(Rule {
            priority: 0,
            m: Match::any(),
            id: 1,
        })
        .unwrap();
        // Both priority-10 rules match: lowest id wins, whatever the insertion order.
        assert_eq!(t.lookup(&pkt([10, 0, 0, 1])), Some((7, 10)));
        t.insert(dst_rule([10, 0, 0, 0], 8, 10, 3)).unwrap();
        assert_eq!(t.lookup(&pkt([10, 0, 0, 1])), Some((3, 10)));
        t.insert(dst_rule([10, 0, 0, 0], 8, 11, 50)).unwrap();
        assert_eq!(t.lookup(&pkt([10, 0, 0, 1])), Some((50, 11)));
        // Falls through to the catch-all.
        let mut k = pkt([11, 0, 0, 1]);
        k.in_port = 4;
        assert_eq!(t.lookup(&k), Some((1, 0)));
    }

    #[test]
    fn replacement_keeps_len_and_returns_old_id() {
        let mut t = Table::with_capacity(1);
        assert_eq!(t.insert(dst_rule([10, 0, 0, 0], 8, 5, 1)), Ok(None));
        // Same match and priority (bits outside the mask differ): replaced, even when full.
        assert_eq!(t.insert(dst_rule([10, 9, 9, 9], 8, 5, 2)), Ok(Some(1)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(&pkt([10, 3, 3, 3])), Some((2, 5)));
        // Same match, other priority: a new rule.
        assert_eq!(
            t.insert(dst_rule([10, 0, 0, 0], 8, 6, 3)),
            Err(ClassifierError::TableFull { max: 1 })
        );
    }

    #[test]
    fn removal() {
        let mut t = Table::with_capacity(8);
        let hi = dst_rule([10, 1, 0, 0], 16, 20, 1);
        let lo = dst_rule([10, 0, 0, 0], 8, 10, 2);
        let lo2 = dst_rule([10, 0, 0, 0], 8, 5, 3);
        for r in [hi, lo, lo2] {
            t.insert(r).unwrap();
        }
        assert_eq!(t.lookup(&pkt([10, 1, 1, 1])), Some((1, 20)));
        assert_eq!(t.remove(&hi.m, 21), None);
        assert_eq!(t.remove(&lo.m, 10), Some(2));
        assert_eq!(t.remove(&lo.m, 10), None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove(&hi.m, 20), Some(1));
        assert_eq!(t.subtable_count(), 1);
        assert_eq!(t.lookup(&pkt([10, 1, 1, 1])), Some((3, 5)));
        assert_eq!(t.remove(&lo2.m, 5), Some(3));
        assert!(t.is_empty());
        assert_eq!(t.subtable_count(), 0);
        assert_eq!(t.lookup(&pkt([10, 1, 1, 1])), None);
    }

    #[test]
    fn capacity_error_leaves_table_unchanged() {
        let mut t = Table::with_capacity(2);
        t.insert(dst_rule([10, 0, 0, 0], 8, 1, 1)).unwrap();
        t.insert(dst_rule([11, 0, 0, 0], 8, 1, 2)).unwrap();
        let err = t.insert(dst_rule([12, 0, 0, 0], 16, 1, 3));
        assert_eq!(err, Err(ClassifierError::TableFull { max: 2 }));
        assert_eq!(
            err.unwrap_err().to_string(),
            "flow table full (max 2 rules)"
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t.subtable_count(), 1);
        assert_eq!(t.capacity(), 2);
        assert_eq!(t.lookup(&pkt([12, 0, 0, 0])), None);
        t.remove(&dst_rule([10, 0, 0, 0], 8, 1, 0).m, 1).unwrap();
        assert_eq!(t.insert(dst_rule([12, 0, 0, 0], 16, 1, 3)), Ok(None));
    }

    #[test]
    fn distinct_masks_are_bounded() {
        let mut t = Table::with_capacity(MAX_MASKS + 10);
        let masked = |i: usize, priority: u16| {
            let mut mask = FlowMask::all_wildcards();
            mask.bits.metadata = u64::try_from(i).unwrap() + 1;
            Rule {
                priority,
                m: Match::new(FlowKey::default(), mask),
                id: u64::try_from(i).unwrap(),
            }
        };
        for i in 0..MAX_MASKS {
            assert_eq!(t.insert(masked(i, 1)), Ok(None));
        }
        assert_eq!(
            t.insert(masked(MAX_MASKS, 1)),
            Err(ClassifierError::TooManyMasks { max: MAX_MASKS })
        );
        assert_eq!(t.len(), MAX_MASKS);
        // A rule of a mask the table has is taken; one mask freed makes room for another.
        assert_eq!(t.insert(masked(7, 2)), Ok(None));
        let gone = masked(3, 1);
        assert_eq!(t.remove(&gone.m, 1), Some(3));
        assert_eq!(t.insert(masked(MAX_MASKS, 1)), Ok(None));
        assert_eq!(t.subtable_count(), MAX_MASKS);
        // The highest priority (mask 7) is probed first.
        assert_eq!(t.lookup(&FlowKey::default()), Some((7, 2)));
    }

    #[test]
    fn iter_yields_every_rule() {
        let mut t = Table::with_capacity(8);
        let rules = [
            dst_rule([10, 0, 0, 0], 8, 1, 1),
            dst_rule([10, 0, 0, 0], 8, 2, 2),
            dst_rule([10, 1, 0, 0], 16, 1, 3),
        ];
        for r in rules {
            t.insert(r).unwrap();
        }
        let mut got: Vec<Rule> = t.iter().collect();
        got.sort_by_key(|r| r.id);
        assert_eq!(got, rules);
    }

    // ---- property test against a naive priority scan ----

    /// The small pool of masks rules are drawn from.
    fn mask_pool() -> Vec<FlowMask> {
        let f = |set: &dyn Fn(&mut FlowKey)| {
            let mut m = FlowMask::all_wildcards();
            set(&mut m.bits);
            m
        };
        vec![
            FlowMask::all_wildcards(),
            f(&|b| b.in_port = u32::MAX),
            f(&|b| {
                b.eth_type = u16::MAX;
                b.nw_dst = FlowMask::prefix_bytes(8);
            }),
            f(&|b| {
                b.eth_type = u16::MAX;
                b.nw_dst = FlowMask::prefix_bytes(16);
                b.nw_proto = u8::MAX;
            }),
            f(&|b| {
                b.in_port = u32::MAX;
                b.eth_type = u16::MAX;
                b.nw_dst = FlowMask::prefix_bytes(24);
            }),
            f(&|b| {
                b.eth_type = u16::MAX;
                b.nw_dst = FlowMask::prefix_bytes(32);
                b.nw_proto = u8::MAX;
                b.tp_dst = u16::MAX;
            }),
            f(&|b| {
                b.nw_proto = u8::MAX;
                b.tp_dst = u16::MAX;
            }),
        ]
    }

    /// Keys whose matched fields come from small pools (so rules actually match); other fields
    /// are random (so they must be ignored).
    fn key() -> impl Strategy<Value = FlowKey> {
        (
            1u32..4,
            prop::sample::select(vec![ETH_TYPE_IPV4, 0x86dd]),
            (10u8..12, 0u8..2, 0u8..2, 1u8..3),
            prop::sample::select(vec![6u8, 17]),
            prop::sample::select(vec![53u16, 80]),
            any::<[u8; 6]>(),
            any::<u16>(),
        )
            .prop_map(
                |(in_port, eth_type, (a, b, c, d), nw_proto, tp_dst, mac, sp)| FlowKey {
                    in_port,
                    eth_type,
                    nw_dst: ip([a, b, c, d]),
                    nw_proto,
                    tp_dst,
                    eth_src: mac,
                    tp_src: sp,
                    ..FlowKey::default()
                },
            )
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(Rule),
        Remove(Match, u16),
    }

    fn rule() -> impl Strategy<Value = Rule> {
        (0..mask_pool().len(), key(), 0u16..4, 0u64..16).prop_map(|(mi, k, priority, id)| Rule {
            priority,
            m: Match::new(k, mask_pool()[mi]),
            id,
        })
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => rule().prop_map(Op::Insert),
            1 => rule().prop_map(|r| Op::Remove(r.m, r.priority)),
        ]
    }

    /// Highest priority among matching rules, ties to the lowest id.
    fn naive(rules: &[Rule], k: &FlowKey) -> Option<(u64, u16)> {
        rules
            .iter()
            .filter(|r| r.m.matches(k))
            .max_by_key(|r| (r.priority, Reverse(r.id)))
            .map(|r| (r.id, r.priority))
    }

    /// `a` on the bits of `wc`, `b` elsewhere.
    fn blend(a: &FlowKey, b: &FlowKey, wc: &FlowMask) -> FlowKey {
        let mut out = FlowKey::default();
        let (x, y, m) = (a.words(), b.words(), wc.bits.words());
        for (i, o) in out.words_mut().iter_mut().enumerate() {
            *o = (x[i] & m[i]) | (y[i] & !m[i]);
        }
        out
    }

    const CAP: usize = 40;

    proptest! {
        #[test]
        fn lookup_equals_naive_scan_and_megaflow_is_sound(
            ops in prop::collection::vec(op(), 0..60),
            probes in prop::collection::vec((key(), key()), 1..20),
        ) {
            let mut t = Table::with_capacity(CAP);
            let mut model: Vec<Rule> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(r) => {
                        let full = model.len() >= CAP;
                        let old = model
                            .iter_mut()
                            .find(|o| o.m == r.m && o.priority == r.priority);
                        let want = match old {
                            Some(o) => Ok(Some(std::mem::replace(&mut o.id, r.id))),
                            None if full => Err(ClassifierError::TableFull { max: CAP }),
                            None => {
                                model.push(r);
                                Ok(None)
                            }
                        };
                        prop_assert_eq!(t.insert(r), want);
                    }
                    Op::Remove(m, p) => {
                        let want = model
                            .iter()
                            .position(|o| o.m == m && o.priority == p)
                            .map(|i| model.remove(i).id);
                        prop_assert_eq!(t.remove(&m, p), want);
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                // Subtables ordered by maximum priority; the mask index points at each.
                prop_assert!(t.subtables.windows(2).all(|w| w[0].max_priority >= w[1].max_priority));
                prop_assert_eq!(t.by_mask.len(), t.subtables.len());
                for (i, st) in t.subtables.iter().enumerate() {
                    prop_assert_eq!(t.by_mask.get(&st.mask), Some(&i));
                    prop_assert_eq!(st.max_priority, st.prios.get_max().map_or(0, |(p, _)| *p));
                }
            }
            let mut all: Vec<Rule> = t.iter().collect();
            let key_of = |r: &Rule| (r.priority, r.id, format!("{:?}", r.m));
            all.sort_by_key(key_of);
            model.sort_by_key(key_of);
            prop_assert_eq!(&all, &model);

            // The rules a non-strict op selects: those whose match is the op's or more
            // specific (probed with the rules' own matches, narrower and wider ones).
            for m in model.iter().map(|r| r.m).chain(probes.iter().flat_map(|(k, _)| {
                mask_pool().into_iter().map(|mask| Match::new(*k, mask))
            })) {
                let mut got = Vec::new();
                t.for_each_covered(&m, |id, p| got.push((id, p)));
                got.sort_unstable();
                let mut want: Vec<(u64, u16)> = model
                    .iter()
                    .filter(|r| {
                        m.mask().is_subset_of(r.m.mask()) && m.mask().apply(r.m.key()) == *m.key()
                    })
                    .map(|r| (r.id, r.priority))
                    .collect();
                want.sort_unstable();
                prop_assert_eq!(got, want);
                // And those some key matches together with it.
                let mut got = Vec::new();
                t.for_each_overlapping(&m, |id, p| got.push((id, p)));
                got.sort_unstable();
                let mut want: Vec<(u64, u16)> = model
                    .iter()
                    .filter(|r| {
                        let both = m.mask().intersection(r.m.mask());
                        both.apply(m.key()) == both.apply(r.m.key())
                    })
                    .map(|r| (r.id, r.priority))
                    .collect();
                want.sort_unstable();
                prop_assert_eq!(got, want);
            }
            for (k, other) in probes {
                let want = naive(&model, &k);
                prop_assert_eq!(t.lookup(&k), want);
                let mut wc = FlowMask::all_wildcards();
                prop_assert_eq!(t.lookup_wc(&k, &mut wc), want);
                if let Some((id, p)) = want {
                    let hit = model.iter().find(|r| r.id == id && r.priority == p && r.m.matches(&k));
                    prop_assert!(hit.is_some_and(|r| r.m.mask().is_subset_of(&wc)));
                }
                // Any key agreeing with k on the consulted bits gets the same answer.
                let k2 = blend(&k, &other, &wc);
                prop_assert_eq!(wc.apply(&k2), wc.apply(&k));
                prop_assert_eq!(t.lookup(&k2), want);
                prop_assert_eq!(naive(&model, &k2), want);
            }
        }
    }
}
