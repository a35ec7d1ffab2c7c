//! Per-worker flow caches: an exact-match cache (EMC) in front of a megaflow cache (hot path).
//!
//! - **Megaflow cache**: entries are (mask, masked key) → a translation ([`CachedFlow`]),
//!   grouped into one subtable per mask (tuple-space search, as the classifier), subtables
//!   visited in order of their recent hits. A subtable indexes its entries by the hash of
//!   their masked key alone (16-byte slots); a probe confirms against the entry. Bounded
//!   ([`FlowCache::capacity`]); when full, a clock hand evicts an entry idle since the
//!   previous sweep, else the entry under the hand.
//!   At most [`MAX_SUBTABLES`] masks (a new one past that flushes the cache). An entry names
//!   its subtable by a slot that ranking never moves, so ranking costs a sort of the
//!   subtables, not a write per entry.
//! - **Idle expiry** sweeps a bounded slice of the entries per call ([`FlowCache::expire`]),
//!   so a worker spreads it over its passes instead of pausing for the whole table.
//! - **EMC**: a 4-way set-associative array indexed by a keyed hash ([`crate::flowhash`]) of
//!   the key under the union of the megaflow masks (every subtable's since the last flush),
//!   so keys that no megaflow tells apart share a slot: it holds a slot per megaflow, not per
//!   connection. Each 4-byte slot holds the index of a megaflow entry and, above it, a
//!   signature (other bits of the same hash). A hit is confirmed against the entry itself: it
//!   must be live and its mask applied to the key must give its masked key. Every megaflow
//!   entry only covers keys that translate to its actions, so any live entry that covers the
//!   key is a correct answer, and a slot left behind by a removed or reused entry simply
//!   misses: no separate invalidation is needed. 32,768 slots in 128 KiB.
//! - **Sharing for many flows**: the entries of a subtable share one copy of the mask and run
//!   bits (a `Shape`), and entries that chain share one copy of equal ops (a bounded pool),
//!   so a hit with 10,000 active flows reads two lines of its entry and its EMC set; the
//!   shared parts stay warm.
//! - **Deferred flow counters**: a hit charges its entry, in the line the hit read
//!   ([`FlowCache::charge`]); the entry's flows get the counts later, many hits at once
//!   ([`FlowCache::push_stats`]: the worker pushes a slice every millisecond, and everything
//!   owed when the switch reads flow counters), or when the entry goes or is re-translated.
//!
//! Correctness rests on revalidation: when the pipeline changes, every entry a change could
//! affect is re-translated against the new tables; an entry whose new mask is within its own
//! is updated in place (every key it covers translates the same), any other is removed. Above
//! [`REVALIDATE_MAX`] entries a change that cannot be targeted flushes the cache instead. A
//! worker sweeps the entries in slices ([`FlowCache::revalidate_begin`],
//! [`FlowCache::revalidate_step`]) rather than all at once in one pass, and a hit on an entry
//! the sweep has not reached checks that entry first ([`FlowCache::lookup_checked`]): no
//! cached decision of the old tables is used unchecked, and no pass pauses for the whole
//! cache. [`FlowCache::revalidate`] does it all at once.
//!
//! Thread-safety: owned by one worker, no sharing.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::classifier::FlowMask;
use crate::flow::FlowKey;
use hashbrown::{HashTable, hash_table};

use crate::flowhash::{FlowHasher, IngressMask};
use crate::ofp::pipeline::{Change, Flow, Pipeline};
use crate::ofp::xlate::{CtlMeta, Op, Translation, xlate};
use crate::sys::cpu;

/// Default megaflow entries per worker.
pub const DEFAULT_CAPACITY: usize = 65_536;
/// EMC slots per worker (power of two), in sets of [`EMC_WAYS`].
pub const EMC_SLOTS: usize = 32_768;
/// Slots per EMC set (a slot is 4 bytes, a set 16: a quarter of a cache line).
pub const EMC_WAYS: usize = 4;
const EMC_SETS: usize = EMC_SLOTS / EMC_WAYS;
/// Most megaflow entries a cache can be given: an EMC slot holds an entry's index and at
/// least 8 bits of signature (7 of them from the hash, one always set) in 32 bits.
pub const MAX_CAPACITY: usize = 1 << 24;
/// Above this many entries a pipeline change that cannot be targeted flushes the cache instead
/// of re-translating it.
pub const REVALIDATE_MAX: usize = 16_384;
/// Above this many flow changes at once, every entry is re-translated (or the cache flushed).
pub const MAX_TARGETED_CHANGES: usize = 256;
/// Most subtables (distinct megaflow masks) a cache holds: a lookup that misses probes every
/// one, so past this many the cache is flushed rather than grown (counted in
/// [`CacheStats::flushes`]).
pub const MAX_SUBTABLES: usize = 1024;

/// A cached translation.
///
/// Laid out for the per-frame path with many flows (where every frame's entry is a cache
/// miss away): the first cache line holds what a lookup, a run and its charge read besides
/// the key (`live`, `last_used`, ops, the first flow's counters, the `Shape`); the next one
/// holds the first 8 words (in_port … TCP flags) of the masked key. The mask and run bits are
/// the `Shape`'s, shared by every entry of the subtable (one copy, warm however many entries
/// there are), so a megaflow whose mask ends within those 8 words (most: L2, the 5-tuple) is
/// confirmed reading two lines of the entry.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct CachedFlow {
    /// Steps to run. Chaining entries with equal ops share one copy ([`FlowCache::chains`]
    /// compares them for every new run).
    pub ops: Arc<[Op]>,
    /// Frames and bytes charged since the entry's flows were last given them
    /// ([`FlowCache::charge`], [`FlowCache::push_stats`]): in the line a hit reads anyway.
    pending: Pending,
    /// Where each `controller` op was applied, in op order; `None` when there is none (most
    /// entries: one pointer instead of a slice in the hot line).
    ctl: Option<Box<Box<[CtlMeta]>>>,
    /// The mask and run bits (its subtable's).
    shape: Arc<Shape>,
    /// Seconds (switch clock) of the last hit.
    last_used: u32,
    /// Its subtable's slot in `FlowCache::subtables` (ranking does not move slots).
    subtable: u16,
    live: bool,
    /// The ops only send the frame (outputs, `normal`, flood, all): a run of frames executes
    /// them once for all its frames.
    pub forward_only: bool,
    /// Forward-only, outputs, decides nothing per frame (no `normal`) and counts no table
    /// miss: consecutive runs of entries with equal ops can share one execution of them
    /// ([`FlowCache::chains`]).
    chain: bool,
    /// The translation ended in a table miss.
    pub miss: bool,
    /// The table of that miss.
    pub miss_table: u8,
    /// Whether the ops can output the packet.
    pub outputs: bool,
    /// A lookup used fields rewritten by earlier actions.
    rewrote: bool,
    /// In `FlowCache::owed` (or its slot is: an entry that reuses a slot keeps this).
    listed: bool,
    /// The masked key, first [`RUN_WORDS`] words.
    key_head: [u64; RUN_WORDS],
    /// The masked key, the other words.
    key_tail: [u64; TAIL_WORDS],
    /// Flows charged per packet.
    flows: Box<[Arc<Flow>]>,
    /// Tables the translation looked up.
    tables: [u64; 4],
}

/// Key words after the first [`RUN_WORDS`].
const TAIL_WORDS: usize = FlowKey::WORDS - RUN_WORDS;

/// What an entry was charged and its flows not yet given ([`FlowCache::charge`]).
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    /// Frames (pushed before they could overflow: [`PENDING_MAX`]).
    packets: u32,
    /// The latest charge's switch clock, milliseconds, low 32 bits.
    ms: u32,
    bytes: u64,
}

/// Frames an entry holds before a charge gives them to its flows at once (far above what a
/// flow gets between two pushes of the whole cache).
const PENDING_MAX: u32 = 1 << 31;

// The hot fields fill the first line, and the key's head is one line of its own.
const _: () = {
    assert!(std::mem::offset_of!(CachedFlow, key_head) == 64);
    assert!(size_of::<CachedFlow>() == 256);
};

/// What the entries of one subtable whose ops agree on `normal` share: the megaflow mask and
/// the run bits, read by every lookup and run check of such an entry ([`CachedFlow::covers`],
/// [`CachedFlow::same_run`]).
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    /// Key words [`CachedFlow::covers`] compares: 4, [`RUN_WORDS`] (the mask is zero beyond)
    /// or all.
    cover_words: u8,
    /// Which frames may share a run with a frame an entry covers ([`CachedFlow::same_run`]):
    /// words compared under `run_bits` (see [`RunMask`]).
    run_words: u8,
    /// The mask, first [`RUN_WORDS`] words.
    mask_head: [u64; RUN_WORDS],
    /// The run bits ([`RunMask`]).
    run_bits: [u64; RUN_WORDS],
    /// The mask, the other words.
    mask_tail: [u64; TAIL_WORDS],
}

impl Shape {
    fn new(mask: &FlowMask, normal: bool) -> Self {
        let run = RunMask::new(mask, normal);
        let (mask_head, mask_tail) = split(mask.bits.words());
        Self {
            cover_words: head_words(mask.bits.words()),
            run_words: run.words,
            mask_head,
            run_bits: run.bits,
            mask_tail,
        }
    }
}

/// Whether `ops` contain `normal` (which adds [`NORMAL_BITS`] to the run bits).
fn has_normal(ops: &[Op]) -> bool {
    ops.iter().any(|o| matches!(o, Op::Normal))
}

/// Key bits `normal` decides on at run time (in_port, MACs, VLAN tag): frames that differ in
/// them must not share a run of an entry whose ops contain `normal`, even when its megaflow
/// mask leaves them out (the decision is the MAC table's, made per run).
const NORMAL_BITS: FlowKey = {
    let mut k = FlowKey::ZERO;
    k.in_port = u32::MAX;
    k.eth_dst = [0xff; 6];
    k.eth_src = [0xff; 6];
    k.vlan_tci = 0xffff;
    k
};

/// Words of the key a [`RunMask`] compares under its bits (the 5-tuple of IPv4 ends in word 7);
/// a mask reaching further compares whole keys.
const RUN_WORDS: usize = 8;

/// (Megaflow mask | the fields the ops decide on at run time) over the key's first words: two
/// keys equal under these bits take the same entry and the same run-time decisions.
#[derive(Clone, Copy, Debug)]
struct RunMask {
    /// Words to compare: 4 or [`RUN_WORDS`] under `bits` (the rest of the mask is zero), or
    /// 0 for whole keys.
    words: u8,
    bits: [u64; RUN_WORDS],
}

impl RunMask {
    fn new(mask: &FlowMask, normal: bool) -> Self {
        let (m, extra) = (mask.bits.words(), NORMAL_BITS.words());
        let mut all = [0u64; FlowKey::WORDS];
        for w in 0..FlowKey::WORDS {
            all[w] = m[w] | if normal { extra[w] } else { 0 };
        }
        // Whole keys (0) where the bits reach beyond the first RUN_WORDS words.
        let words = match head_words(&all) {
            w if usize::from(w) > RUN_WORDS => 0,
            w => w,
        };
        let mut bits = [0; RUN_WORDS];
        if words > 0 {
            bits.copy_from_slice(&all[..RUN_WORDS]);
        }
        Self { words, bits }
    }
}

/// Whether every op only sends the frame somewhere (no rewrite, meter, group or packet-in).
fn forward_only(ops: &[Op]) -> bool {
    ops.iter().all(|o| {
        matches!(
            o,
            Op::Output(_) | Op::InPort | Op::Normal | Op::Flood | Op::All
        )
    })
}

/// Whether forward-only ops that output send every frame of a batch (one ingress port) to the
/// same ports whatever its key: not with `normal`, whose decision is per destination; and
/// whether the translation's frames need nothing counted on their own (no table `miss`).
fn chain(ops: &[Op], outputs: bool, forward_only: bool, miss: bool) -> bool {
    outputs && forward_only && !has_normal(ops) && !miss
}

/// `meta` boxed when there is any.
fn ctl_meta(meta: Vec<CtlMeta>) -> Option<Box<Box<[CtlMeta]>>> {
    (!meta.is_empty()).then(|| Box::new(meta.into_boxed_slice()))
}

/// Words of a mask that matter: 4 or [`RUN_WORDS`] when the rest is zero, else all.
fn head_words(bits: &[u64; FlowKey::WORDS]) -> u8 {
    match bits.iter().rposition(|&b| b != 0).map_or(0, |w| w + 1) {
        0..=4 => 4,
        5..=RUN_WORDS => RUN_WORDS as u8,
        _ => FlowKey::WORDS as u8,
    }
}

/// `words` split at [`RUN_WORDS`].
fn split(words: &[u64; FlowKey::WORDS]) -> ([u64; RUN_WORDS], [u64; TAIL_WORDS]) {
    let mut head = [0; RUN_WORDS];
    let mut tail = [0; TAIL_WORDS];
    head.copy_from_slice(&words[..RUN_WORDS]);
    tail.copy_from_slice(&words[RUN_WORDS..]);
    (head, tail)
}

/// A key from its two parts.
fn join(head: &[u64; RUN_WORDS], tail: &[u64; TAIL_WORDS]) -> FlowKey {
    let mut k = FlowKey::ZERO;
    let w = k.words_mut();
    w[..RUN_WORDS].copy_from_slice(head);
    w[RUN_WORDS..].copy_from_slice(tail);
    k
}

impl CachedFlow {
    /// Names the ops runs of this entry chain with ([`FlowCache::chains`]): the address of
    /// its copy of them when it chains, else 0. Equal names mean equal ops; equal ops may
    /// have different names (the pool that shares them is bounded).
    #[inline(always)]
    pub fn chain_id(&self) -> usize {
        if self.chain {
            Arc::as_ptr(&self.ops).cast::<u8>().addr()
        } else {
            0
        }
    }

    fn from_translation(
        t: Translation,
        pool: &mut OpsPool,
        key: FlowKey,
        shape: Arc<Shape>,
        subtable: u16,
        now: u32,
    ) -> Self {
        let outputs = t.outputs();
        let forward_only = forward_only(&t.ops);
        let chain = chain(&t.ops, outputs, forward_only, t.miss);
        let (key_head, key_tail) = split(t.mask.apply(&key).words());
        Self {
            ops: pool.share(&t.ops, chain),
            pending: Pending::default(),
            ctl: ctl_meta(t.controller),
            shape,
            last_used: now,
            subtable,
            live: true,
            forward_only,
            chain,
            miss: t.miss,
            miss_table: t.miss_table,
            outputs,
            rewrote: t.rewrote,
            listed: false,
            key_head,
            key_tail,
            flows: t.flows.into_boxed_slice(),
            tables: t.tables,
        }
    }

    /// Where each `controller` op of the ops was applied, in op order.
    #[inline]
    pub fn controller(&self) -> &[CtlMeta] {
        self.ctl.as_deref().map_or(&[], |c| c)
    }

    /// Charges the entry's flows with `packets` frames of `bytes` bytes now, as worker
    /// `writer` at `now_ms` (see [`FlowCache::charge`] for the deferred form the hot path
    /// uses).
    #[inline]
    pub fn charge_now(&self, writer: usize, packets: u64, bytes: u64, now_ms: u64) {
        for f in &*self.flows {
            f.stats.hit(writer, packets, bytes, now_ms);
        }
    }

    /// Gives the entry's flows what it was charged since the last time, as worker `writer`
    /// whose clock reads `now_ms`.
    fn push_pending(&mut self, writer: usize, now_ms: u64) {
        let p = std::mem::take(&mut self.pending);
        if p.packets > 0 {
            // The latest hit's time, from its low 32 bits (pushed within 49 days).
            let ago = u64::from((now_ms as u32).wrapping_sub(p.ms));
            self.charge_now(
                writer,
                u64::from(p.packets),
                p.bytes,
                now_ms.saturating_sub(ago),
            );
        }
    }

    /// The masked key.
    fn key(&self) -> FlowKey {
        join(&self.key_head, &self.key_tail)
    }

    /// Whether some key this entry covers matches `key` under `mask` (a flow's match): no bit
    /// both masks set differs between the two keys. Word by word from the entry's own arrays,
    /// stopping at the first difference (a revalidation sweep asks it of every entry).
    #[inline]
    fn overlaps(&self, mask: &FlowMask, key: &FlowKey) -> bool {
        let (m, k) = (mask.bits.words(), key.words());
        let s = &*self.shape;
        let head = (0..RUN_WORDS).all(|i| m[i] & s.mask_head[i] & (k[i] ^ self.key_head[i]) == 0);
        head && (0..TAIL_WORDS).all(|i| {
            let j = RUN_WORDS + i;
            m[j] & s.mask_tail[i] & (k[j] ^ self.key_tail[i]) == 0
        })
    }

    /// The megaflow mask.
    fn mask(&self) -> FlowMask {
        FlowMask::from_bits(join(&self.shape.mask_head, &self.shape.mask_tail))
    }
}

#[derive(Debug)]
struct Subtable {
    mask: FlowMask,
    /// Its entries by the hash of their masked key.
    map: HashTable<Slot>,
    hits: u64,
    /// The shapes of its entries: ops without `normal`, with.
    shapes: [Arc<Shape>; 2],
}

/// A subtable's index slot: the hash of an entry's masked key ([`FlowHasher::hash`]) and the
/// entry. 16 bytes, where a map keyed by the masked key held the key's 144 more: a lookup
/// confirms a slot against the entry, whose lines it reads anyway, so with many flows it
/// takes a cache miss fewer (50,000 megaflows: an index of ~1 MiB instead of ~10).
#[derive(Clone, Copy, Debug)]
struct Slot {
    hash: u64,
    idx: u32,
}

/// The exact-match cache: sets of [`EMC_WAYS`] 4-byte slots. A slot holds an entry's index in
/// its low `idx_bits` (as many as the capacity needs) and a signature of the key's hash above
/// them (15 bits of the hash at the default capacity), whose lowest bit is always set: 0 is an
/// empty slot. The signature only chooses which entry to confirm (the entry's key decides), so
/// a short one costs a rare extra compare, while small slots keep the EMC's lines few (10,000
/// flows touch 128 KiB of sets instead of 256).
/// A probe XORs each slot with the wanted signature: a match leaves the index, any other slot
/// (empty ones too) leaves signature bits set, an index past every entry (there are at most
/// `capacity` ≤ `1 << idx_bits`), so the entry vector's bounds check is the signature compare.
#[derive(Debug)]
struct Emc {
    sets: Box<[EmcSet; EMC_SETS]>,
    idx_bits: u32,
}

/// One EMC set, aligned so that it never straddles two cache lines.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
struct EmcSet([u32; EMC_WAYS]);

const _: () = assert!(size_of::<EmcSet>() == 16);

impl Emc {
    fn new(capacity: usize) -> Self {
        let sets = vec![EmcSet([0; EMC_WAYS]); EMC_SETS].into_boxed_slice();
        let idx_bits = (usize::BITS - (capacity - 1).leading_zeros()).max(1);
        Self {
            sets: sets
                .try_into()
                .unwrap_or_else(|_| unreachable!("EMC_SETS sets")),
            idx_bits,
        }
    }

    /// The set for hash `h` (from its low bits) and the slot bits that must match (the
    /// signature, from its high bits, never 0).
    #[inline(always)]
    fn place(&self, h: u64) -> (usize, u32) {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "both are bit fields of the hash"
        )]
        let (set, sig) = ((h as usize) & (EMC_SETS - 1), (h >> 32) as u32 | 1);
        (set, sig << self.idx_bits)
    }

    /// The entry index slot `s` holds if its signature is `tag`; for any other slot (an
    /// empty one too) a number of at least `1 << idx_bits`, past every entry.
    #[inline(always)]
    fn candidate(s: u32, tag: u32) -> u32 {
        s ^ tag
    }

    /// The entry index in slot `s` if its signature is `tag` (what a probe finds there).
    fn matches(&self, s: u32, tag: u32) -> Option<u32> {
        Some(Self::candidate(s, tag)).filter(|&i| i < 1 << self.idx_bits)
    }

    /// Points the slot for hash `h` at entry `idx`: the slot already holding its signature,
    /// else an empty one, else one chosen by other bits of the hash.
    #[inline]
    fn insert(&mut self, h: u64, idx: u32) {
        let (set, tag) = self.place(h);
        let ways = &self.sets[set].0;
        let way = ways
            .iter()
            .position(|&s| self.matches(s, tag).is_some())
            .or_else(|| ways.iter().position(|&s| s == 0))
            .unwrap_or((h >> 28) as usize % EMC_WAYS);
        self.sets[set].0[way] = tag | idx;
    }

    fn clear(&mut self) {
        self.sets.fill(EmcSet([0; EMC_WAYS]));
    }
}

impl CachedFlow {
    /// Whether `masked` is this entry's masked key.
    #[inline]
    fn is(&self, masked: &FlowKey) -> bool {
        let w = masked.words();
        w[..RUN_WORDS] == self.key_head && w[RUN_WORDS..] == self.key_tail
    }

    /// Whether this entry covers `key` (its mask applied to `key` gives its masked key). Only
    /// the words up to the mask's last non-zero one are compared (masked, the rest is zero on
    /// both sides).
    #[inline(always)]
    fn covers(&self, key: &FlowKey) -> bool {
        #[inline(always)]
        fn diff<const N: usize, const L: usize>(k: &[u64], m: &[u64; L], e: &[u64; L]) -> u64 {
            let mut d = 0;
            for i in 0..N.min(L) {
                d |= (k[i] & m[i]) ^ e[i];
            }
            d
        }
        let k = key.words();
        let shape = &*self.shape;
        let (m, e) = (&shape.mask_head, &self.key_head);
        match shape.cover_words {
            4 => diff::<4, RUN_WORDS>(k, m, e) == 0,
            8 => diff::<RUN_WORDS, RUN_WORDS>(k, m, e) == 0,
            _ => {
                let tail = &k[RUN_WORDS..];
                (diff::<RUN_WORDS, RUN_WORDS>(k, m, e)
                    | diff::<TAIL_WORDS, TAIL_WORDS>(tail, &shape.mask_tail, &self.key_tail))
                    == 0
            }
        }
    }

    /// Whether `key` belongs to the run of `first` (a key this entry covers): it is covered
    /// too, and equal in every field the ops decide on at run time, so one execution of the
    /// ops serves both (see the worker). Cheaper than a lookup: only the mask's non-zero
    /// words are compared.
    #[inline(always)]
    pub fn same_run(&self, first: &FlowKey, key: &FlowKey) -> bool {
        #[inline(always)]
        fn masked_eq<const N: usize>(
            a: &[u64; FlowKey::WORDS],
            b: &[u64; FlowKey::WORDS],
            m: &[u64; RUN_WORDS],
        ) -> bool {
            let mut diff = 0;
            for w in 0..N {
                diff |= (a[w] ^ b[w]) & m[w];
            }
            diff == 0
        }
        let shape = &*self.shape;
        let (a, b, m) = (first.words(), key.words(), &shape.run_bits);
        match shape.run_words {
            4 => masked_eq::<4>(a, b, m),
            8 => masked_eq::<RUN_WORDS>(a, b, m),
            _ => a == b,
        }
    }
}

/// Most distinct op lists [`OpsPool`] shares.
const OPS_POOL_MAX: usize = 1024;

/// One shared copy of each distinct op list of chaining entries (say, `output:2` for 10,000
/// per-connection megaflows), so the ops a new run compares with the open run's are warm
/// however many entries there are. Bounded ([`OPS_POOL_MAX`]): when full, lists no entry holds
/// any more are dropped (at most one sweep per [`OPS_POOL_MAX`] shares while nothing frees);
/// beyond that, entries get copies of their own (correct, colder).
#[derive(Debug)]
struct OpsPool {
    shared: std::collections::HashSet<Arc<[Op]>, ahash::RandomState>,
    /// The empty list (dead entries).
    none: Arc<[Op]>,
    /// Shares left before the next sweep of a full pool: a sweep that freed nothing waits for
    /// [`OPS_POOL_MAX`] more, so a pool full of held lists costs O(1) per share, not a sweep.
    sweep_in: usize,
}

impl OpsPool {
    fn new() -> Self {
        Self {
            shared: std::collections::HashSet::default(),
            none: Arc::from(Vec::new()),
            sweep_in: 0,
        }
    }

    /// `ops` as an entry holds them: shared when the entry chains (`chain`).
    fn share(&mut self, ops: &[Op], chain: bool) -> Arc<[Op]> {
        if !chain {
            return Arc::from(ops);
        }
        if let Some(ops) = self.shared.get(ops) {
            return Arc::clone(ops);
        }
        if self.shared.len() >= OPS_POOL_MAX {
            if self.sweep_in == 0 {
                self.shared.retain(|ops| Arc::strong_count(ops) > 1);
                if self.shared.len() >= OPS_POOL_MAX {
                    self.sweep_in = OPS_POOL_MAX;
                }
            } else {
                self.sweep_in -= 1;
            }
        }
        let ops: Arc<[Op]> = Arc::from(ops);
        if self.shared.len() < OPS_POOL_MAX {
            self.shared.insert(Arc::clone(&ops));
        }
        ops
    }
}

/// Cache counters (single writer: the owning worker).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered by the EMC.
    pub emc_hits: u64,
    /// Frames that needed no lookup: they joined the run of the frame before them (same
    /// entry, see [`CachedFlow::same_run`]). Counted by the worker.
    pub run_hits: u64,
    /// Lookups answered by the megaflow cache.
    pub megaflow_hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Translations installed.
    pub upcalls: u64,
    /// Entries evicted for room.
    pub evictions: u64,
    /// Entries removed as idle.
    pub expired: u64,
    /// Entries removed or updated by revalidation.
    pub revalidated: u64,
    /// Whole-cache flushes.
    pub flushes: u64,
}

/// One worker's caches.
#[derive(Debug)]
pub struct FlowCache {
    entries: Vec<CachedFlow>,
    free: Vec<u32>,
    /// Subtables by slot; a slot whose subtable emptied is in `free_slots` until a new mask
    /// takes it.
    subtables: Vec<Subtable>,
    /// The slots of the live subtables in lookup order (most recent hits first).
    order: Vec<u16>,
    free_slots: Vec<u16>,
    emc: Emc,
    /// What the EMC hashes of a key: the union of the masks of every subtable since the last
    /// flush (ingress words; a superset of the live subtables' masks).
    emc_mask: Box<IngressMask>,
    /// Changes whenever `emc_mask` does (see [`FlowCache::hash_epoch`]).
    hash_epoch: u32,
    hasher: FlowHasher,
    chain_ops: OpsPool,
    capacity: usize,
    hand: usize,
    /// Where the next idle-expiry slice starts.
    sweep: usize,
    lookups_since_rank: u32,
    /// Pipeline version the entries are valid for (`None`: not known yet); while a sweep is
    /// under way, those it has checked (the others are valid for the one before).
    version: Option<u64>,
    /// The revalidation sweep under way, if any.
    reval: Reval,
    /// Entries with charges their flows have not been given, oldest first, each once (see
    /// [`FlowCache::charge`]); bounded by the entries.
    owed: VecDeque<EntryRef>,
    /// The worker whose counter slots the pushes write ([`FlowCache::for_writer`]).
    writer: usize,
    /// The switch clock (ms) of the latest charge: when an entry is pushed, its latest hit is
    /// dated against this.
    clock_ms: u64,
    /// Counters.
    pub stats: CacheStats,
}

/// A revalidation sweep: the entries below `cursor`, and those marked in `done`, are checked;
/// the others (below `end`) must be checked against `changes` (all of them re-translated when
/// `None`) before their next use.
#[derive(Debug)]
struct Reval {
    /// `usize::MAX` when no sweep is under way.
    cursor: usize,
    end: usize,
    /// One bit per entry below `end`: checked, or inserted since the sweep began.
    done: Vec<u64>,
    changes: Option<Vec<Change>>,
}

impl Reval {
    const IDLE: Self = Self {
        cursor: usize::MAX,
        end: 0,
        done: Vec::new(),
        changes: None,
    };

    /// Whether entry `i` must be checked before it is used.
    #[inline(always)]
    fn pending(&self, i: usize) -> bool {
        i >= self.cursor && i < self.end && self.done[i / 64] & (1 << (i % 64)) == 0
    }

    fn mark(&mut self, i: usize) {
        if i < self.end {
            self.done[i / 64] |= 1 << (i % 64);
        }
    }
}

/// A hit: the entry's index (valid until the next insertion or removal).
pub type EntryRef = u32;

/// No entry ([`FlowCache::prefetch_entry`] found none).
pub const NO_ENTRY: EntryRef = u32::MAX;

impl FlowCache {
    /// A cache of at most `capacity` megaflows (1 to [`MAX_CAPACITY`]; clamped to that).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            subtables: Vec::new(),
            order: Vec::new(),
            free_slots: Vec::new(),
            emc: Emc::new(capacity),
            emc_mask: Box::default(),
            hash_epoch: 0,
            hasher: FlowHasher::new(),
            chain_ops: OpsPool::new(),
            capacity,
            hand: 0,
            sweep: 0,
            lookups_since_rank: 0,
            version: None,
            reval: Reval::IDLE,
            owed: VecDeque::new(),
            writer: 0,
            clock_ms: 0,
            stats: CacheStats::default(),
        }
    }

    /// The cache of worker `writer`: the flows' counter slot its charges go to (0 unless set).
    #[must_use]
    pub fn for_writer(mut self, writer: usize) -> Self {
        self.writer = writer;
        self
    }

    /// Charges entry `r` with `packets` frames (at most 64) of `bytes` bytes at `now_ms`
    /// (switch clock). The entry keeps them in its first line, which the hit read, and its
    /// flows get them later, at once, from [`FlowCache::push_stats`] (or when the entry is
    /// removed or re-translated): with many flows each flow's counters are a cache line of
    /// their own, which a charge per hit would load every time. Whoever reads the flows'
    /// counters has the workers push first (the switch does, see `Switch::sync_flow_stats`).
    #[inline]
    pub fn charge(&mut self, r: EntryRef, packets: u32, bytes: u64, now_ms: u64) {
        self.clock_ms = now_ms;
        let Some(e) = self.entries.get_mut(r as usize) else {
            return;
        };
        let p = &mut e.pending;
        p.packets += packets;
        p.bytes = p.bytes.wrapping_add(bytes);
        #[expect(clippy::cast_possible_truncation, reason = "the low bits, on purpose")]
        {
            p.ms = now_ms as u32;
        }
        if !e.listed {
            e.listed = true;
            self.owed.push_back(r);
        }
        if p.packets >= PENDING_MAX {
            e.push_pending(self.writer, now_ms);
        }
    }

    /// Gives the flows of up to `budget` entries, oldest charges first, what those entries
    /// were charged ([`FlowCache::charge`]); returns how many entries it took off the list
    /// ([`FlowCache::owed`]).
    pub fn push_stats(&mut self, budget: usize) -> usize {
        let n = budget.min(self.owed.len());
        for _ in 0..n {
            let Some(r) = self.owed.pop_front() else {
                break;
            };
            if let Some(e) = self.entries.get_mut(r as usize) {
                e.listed = false;
                e.push_pending(self.writer, self.clock_ms);
            }
        }
        n
    }

    /// Entries whose charges their flows have not been given: a push of this many
    /// ([`FlowCache::push_stats`]) gives the flows every charge made so far.
    pub fn owed(&self) -> usize {
        self.owed.len()
    }

    /// Most megaflows held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Megaflows held.
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// Whether no megaflow is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of masks (subtables).
    pub fn subtables(&self) -> usize {
        self.order.len()
    }

    /// The entry at `r`.
    #[inline]
    pub fn entry(&self, r: EntryRef) -> &CachedFlow {
        &self.entries[r as usize]
    }

    /// Whether frames of entry `b` can wait, behind frames of entry `a`, for one execution of
    /// the ops for all of them: both send every frame to the same ports, with equal ops (the
    /// worker charges each entry's flows separately).
    #[inline]
    pub fn chains(&self, a: EntryRef, b: EntryRef) -> bool {
        let (a, b) = (self.entry(a), self.entry(b));
        a.chain && b.chain && (Arc::ptr_eq(&a.ops, &b.ops) || a.ops == b.ops)
    }

    /// [`FlowCache::chains`] for an `a` whose [`CachedFlow::chain_id`] is `a_id`: when `b`
    /// holds the same copy of the ops (the usual case: chaining entries share one copy of
    /// equal ops), without reading `a`.
    #[inline(always)]
    pub fn chains_to(&self, a: EntryRef, a_id: usize, b: EntryRef) -> bool {
        a_id != 0 && (self.entry(b).chain_id() == a_id || self.chains(a, b))
    }

    /// Finds the cached translation of `key`, marking it used at `now`. It does not check an
    /// entry a revalidation sweep has not reached: with one under way (after
    /// [`revalidate_begin`](Self::revalidate_begin)), use
    /// [`lookup_checked`](Self::lookup_checked).
    #[inline(always)]
    pub fn lookup(&mut self, key: &FlowKey, now: u32) -> Option<EntryRef> {
        self.lookup_hashed(key, self.hash(key), now)
    }

    /// The hash a lookup of `key` starts from: of the key under the EMC's mask, which a new
    /// subtable may widen, so a hash holds while [`FlowCache::hash_epoch`] stays the same.
    #[inline(always)]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_masked(key, &self.emc_mask)
    }

    /// A number that changes whenever the keys' hashes ([`FlowCache::hash`]) do: when an
    /// [`upcall`](Self::upcall) adds a subtable whose mask widens the EMC's, or the cache is
    /// flushed.
    #[inline]
    pub fn hash_epoch(&self) -> u32 {
        self.hash_epoch
    }

    /// Starts loading the EMC set of hash `h` (see [`FlowCache::hash`]): the first stage of
    /// looking a batch up in stages, where each stage starts the loads the next one needs for
    /// every frame of the batch, so that their cache misses overlap instead of following one
    /// another frame by frame.
    #[inline(always)]
    pub fn prefetch_set(&self, h: u64) {
        let (set, _) = self.emc.place(h);
        cpu::prefetch(std::ptr::from_ref(&self.emc.sets[set]).cast());
    }

    /// The second stage: starts loading the two lines of the entry the EMC set of `h` names
    /// with `h`'s signature (the set loaded by [`FlowCache::prefetch_set`]), and returns the
    /// entry ([`NO_ENTRY`] for none). A hint: the lookup confirms.
    #[inline(always)]
    pub fn prefetch_entry(&self, h: u64) -> EntryRef {
        let (set, tag) = self.emc.place(h);
        for &s in &self.emc.sets[set].0 {
            let idx = Emc::candidate(s, tag);
            if let Some(e) = self.entries.get(idx as usize) {
                let p: *const u8 = std::ptr::from_ref(e).cast();
                cpu::prefetch(p);
                cpu::prefetch(p.wrapping_add(64));
                return idx;
            }
        }
        NO_ENTRY
    }

    /// [`FlowCache::lookup`] with the key's hash (from [`FlowCache::hash`] in the current
    /// [`FlowCache::hash_epoch`]).
    #[inline(always)]
    pub fn lookup_hashed(&mut self, key: &FlowKey, h: u64, now: u32) -> Option<EntryRef> {
        let (set, tag) = self.emc.place(h);
        for w in 0..EMC_WAYS {
            let idx = Emc::candidate(self.emc.sets[set].0[w], tag);
            if self.emc_hit(idx, key, now) {
                return Some(idx);
            }
        }
        self.lookup_megaflow(key, h, now)
    }

    /// Whether entry `idx` (any number: one past the entries is none) is live and covers
    /// `key`; if so it is marked used at `now` and counted as an EMC hit.
    #[inline(always)]
    fn emc_hit(&mut self, idx: EntryRef, key: &FlowKey, now: u32) -> bool {
        let Some(e) = self.entries.get_mut(idx as usize) else {
            return false;
        };
        if !(e.live && e.covers(key)) {
            return false;
        }
        self.stats.emc_hits += 1;
        if e.last_used != now {
            e.last_used = now;
        }
        true
    }

    /// [`FlowCache::lookup`] for a cache that may be revalidating: an entry the sweep has not
    /// checked yet is checked against `pipeline` (the one the sweep began with, or a newer
    /// one it was begun again with) before it is returned; one the check removes is a miss.
    #[inline(always)]
    pub fn lookup_checked(
        &mut self,
        key: &FlowKey,
        now: u32,
        pipeline: &Pipeline,
    ) -> Option<EntryRef> {
        self.lookup_checked_hashed(key, self.hash(key), NO_ENTRY, now, pipeline)
    }

    /// [`FlowCache::lookup_checked`] with the key's hash (see [`FlowCache::lookup_hashed`]),
    /// trying entry `hint` first ([`FlowCache::prefetch_entry`] for that hash, or
    /// [`NO_ENTRY`]): an EMC hit without probing the set again. Any live entry that covers
    /// the key is a right answer (see the module docs), so a hint that no longer is one only
    /// costs the probe it was meant to save.
    #[inline(always)]
    pub fn lookup_checked_hashed(
        &mut self,
        key: &FlowKey,
        h: u64,
        hint: EntryRef,
        now: u32,
        pipeline: &Pipeline,
    ) -> Option<EntryRef> {
        let r = if self.emc_hit(hint, key, now) {
            hint
        } else {
            self.lookup_hashed(key, h, now)?
        };
        if self.reval.pending(r as usize) {
            return self.check_on_hit(r, pipeline);
        }
        Some(r)
    }

    #[cold]
    #[inline(never)]
    fn check_on_hit(&mut self, r: EntryRef, pipeline: &Pipeline) -> Option<EntryRef> {
        self.check(r as usize, pipeline);
        self.reval.mark(r as usize);
        self.entries[r as usize].live.then_some(r)
    }

    /// The megaflow part of [`FlowCache::lookup`] (out of line: the EMC answers most).
    #[inline(never)]
    fn lookup_megaflow(&mut self, key: &FlowKey, h: u64, now: u32) -> Option<EntryRef> {
        self.lookups_since_rank = self.lookups_since_rank.wrapping_add(1);
        let entries = &self.entries;
        for &si in &self.order {
            let st = &mut self.subtables[usize::from(si)];
            let sh = self.hasher.hash(&st.mask.apply(key));
            let found = st.map.find(sh, |s| {
                // Live: a removed entry leaves its slot first.
                s.hash == sh && entries[s.idx as usize].covers(key)
            });
            if let Some(&Slot { idx, .. }) = found {
                st.hits += 1;
                self.entries[idx as usize].last_used = now;
                self.emc.insert(h, idx);
                self.stats.megaflow_hits += 1;
                if self.lookups_since_rank >= 4096 {
                    self.rank();
                }
                return Some(idx);
            }
        }
        self.stats.misses += 1;
        None
    }

    /// Re-sorts the lookup order by recent hits (most first) and halves the counts. Entries
    /// name slots, which stay: nothing per entry.
    fn rank(&mut self) {
        self.lookups_since_rank = 0;
        let subtables = &mut self.subtables;
        self.order
            .sort_by_key(|&si| std::cmp::Reverse(subtables[usize::from(si)].hits));
        for &si in &self.order {
            subtables[usize::from(si)].hits /= 2;
        }
    }

    /// Translates `key` through `pipeline` and caches the result.
    pub fn upcall(&mut self, pipeline: &Pipeline, key: &FlowKey, now: u32) -> EntryRef {
        self.stats.upcalls += 1;
        if self.is_empty() {
            self.version = Some(pipeline.version());
        }
        let t = xlate(pipeline, key);
        let idx = self.insert(t, key, now);
        self.emc
            .insert(self.hasher.hash_masked(key, &self.emc_mask), idx);
        idx
    }

    fn insert(&mut self, t: Translation, key: &FlowKey, now: u32) -> EntryRef {
        if self.len() >= self.capacity {
            self.evict_one(now);
        }
        let found =
            (self.order.iter().copied()).find(|&si| self.subtables[usize::from(si)].mask == t.mask);
        let si = match found {
            Some(si) => si,
            None => self.add_subtable(&t.mask),
        };
        let st = &self.subtables[usize::from(si)];
        let shape = Arc::clone(&st.shapes[usize::from(has_normal(&t.ops))]);
        let e = CachedFlow::from_translation(t, &mut self.chain_ops, *key, shape, si, now);
        let masked = e.key();
        let idx = match self.free.pop() {
            Some(i) => {
                // A new entry in a listed slot is listed.
                let slot = &mut self.entries[i as usize];
                let listed = slot.listed;
                *slot = e;
                slot.listed = listed;
                i
            }
            None => {
                self.entries.push(e);
                // Room to list every entry, so that a charge never allocates.
                self.owed
                    .reserve(self.entries.len().saturating_sub(self.owed.len()));
                u32::try_from(self.entries.len() - 1).unwrap_or(u32::MAX)
            }
        };
        // Translated with the current tables: nothing for a sweep to check.
        self.reval.mark(idx as usize);
        // A racing identical key cannot exist (one worker), but an entry for the same masked
        // key can (two frames of a new flow, both deferred, each translated): replace it.
        let hash = self.hasher.hash(&masked);
        let entries = &self.entries;
        let same = |s: &Slot| s.hash == hash && s.idx != idx && entries[s.idx as usize].is(&masked);
        let old = match self.subtables[usize::from(si)]
            .map
            .entry(hash, same, |s| s.hash)
        {
            hash_table::Entry::Occupied(mut o) => {
                Some(std::mem::replace(&mut o.get_mut().idx, idx))
            }
            hash_table::Entry::Vacant(v) => {
                v.insert(Slot { hash, idx });
                None
            }
        };
        if let Some(old) = old {
            self.kill(old);
        }
        idx
    }

    /// A subtable for `mask` (not held yet): a free slot or a new one, last in lookup order.
    /// At [`MAX_SUBTABLES`] the cache is flushed first.
    fn add_subtable(&mut self, mask: &FlowMask) -> u16 {
        if self.order.len() >= MAX_SUBTABLES {
            self.flush();
        }
        let st = Subtable {
            mask: *mask,
            map: HashTable::new(),
            hits: 0,
            shapes: [false, true].map(|normal| Arc::new(Shape::new(mask, normal))),
        };
        let si = match self.free_slots.pop() {
            Some(si) => {
                self.subtables[usize::from(si)] = st;
                si
            }
            None => {
                self.subtables.push(st);
                u16::try_from(self.subtables.len() - 1).expect("slots < MAX_SUBTABLES")
            }
        };
        self.order.push(si);
        self.widen_emc_mask(mask);
        si
    }

    /// Marks entry `idx` dead and frees it (its subtable map entry must be gone already).
    fn kill(&mut self, idx: u32) {
        let e = &mut self.entries[idx as usize];
        if e.live {
            // (It stays listed, if it is: its slot is popped in turn, owing nothing.)
            e.push_pending(self.writer, self.clock_ms);
            e.live = false;
            e.flows = Box::new([]);
            e.ops = Arc::clone(&self.chain_ops.none);
            e.ctl = None;
            self.free.push(idx);
        }
    }

    fn remove(&mut self, idx: u32) {
        let e = &self.entries[idx as usize];
        if !e.live {
            return;
        }
        let (si, hash) = (e.subtable, self.hasher.hash(&e.key()));
        let emptied = self.subtables.get_mut(usize::from(si)).is_some_and(|st| {
            if let Ok(slot) = st.map.find_entry(hash, |s| s.idx == idx) {
                slot.remove();
            }
            st.map.is_empty()
        });
        self.kill(idx);
        if emptied {
            self.drop_subtable(si);
        }
    }

    /// Takes the emptied subtable in slot `si` out of the lookup order and frees its slot
    /// (and its map's memory).
    fn drop_subtable(&mut self, si: u16) {
        if let Some(at) = self.order.iter().position(|&s| s == si) {
            self.order.remove(at);
            self.subtables[usize::from(si)].map = HashTable::new();
            self.free_slots.push(si);
        }
    }

    /// Adds a new subtable's mask to the EMC's. Keys equal under the EMC's mask are covered by
    /// the same entries as long as it holds every subtable's mask, so they may share an EMC
    /// slot. It only grows (until a flush): a mask that grows changes every key's hash, so the
    /// slots of the old hashes are cleared (they would only miss, or be confirmed by chance),
    /// and that happens at most once per mask bit — subtables that come and go cannot make
    /// the worker clear the EMC again and again.
    fn widen_emc_mask(&mut self, mask: &FlowMask) {
        let mut m = *self.emc_mask.words();
        for (u, w) in m.iter_mut().zip(mask.bits.words()) {
            *u |= w;
        }
        if m != *self.emc_mask.words() {
            *self.emc_mask = IngressMask::new(m);
            self.hash_epoch = self.hash_epoch.wrapping_add(1);
            self.emc.clear();
        }
    }

    fn evict_one(&mut self, now: u32) {
        let n = self.entries.len();
        if n == 0 {
            return;
        }
        // Look a bounded distance for an entry idle for a second or more.
        let mut victim = None;
        for _ in 0..64.min(n) {
            self.hand = (self.hand + 1) % n;
            let e = &self.entries[self.hand];
            if e.live {
                if victim.is_none() {
                    victim = Some(self.hand);
                }
                if now.saturating_sub(e.last_used) >= 1 {
                    victim = Some(self.hand);
                    break;
                }
            }
        }
        let v = victim.or_else(|| self.entries.iter().position(|e| e.live));
        if let Some(v) = v {
            // The hand stays at the victim: the next eviction looks on from there, so the
            // whole table is swept in turn rather than the same few slots over and over.
            self.hand = v;
            self.stats.evictions += 1;
            self.remove(u32::try_from(v).unwrap_or(u32::MAX));
        }
    }

    /// Removes the entries not used for more than `idle_secs` at `now` among the next
    /// `budget` slots of the sweep (which goes round the entries, resuming where the last
    /// call stopped); returns how many. A budget of [`FlowCache::slots`] or more looks at
    /// every entry once.
    pub fn expire(&mut self, now: u32, idle_secs: u32, budget: usize) -> usize {
        let len = self.entries.len();
        let mut n = 0;
        for _ in 0..budget.min(len) {
            let i = if self.sweep < len { self.sweep } else { 0 };
            self.sweep = i + 1;
            let e = &self.entries[i];
            if e.live && now.saturating_sub(e.last_used) > idle_secs {
                self.remove(u32::try_from(i).unwrap_or(u32::MAX));
                n += 1;
            }
        }
        self.stats.expired += n as u64;
        n
    }

    /// Entry slots, live or free: what a whole idle-expiry sweep looks at.
    pub fn slots(&self) -> usize {
        self.entries.len()
    }

    /// Removes everything.
    pub fn flush(&mut self) {
        self.stats.flushes += 1;
        self.push_stats(usize::MAX);
        self.entries.clear();
        self.free.clear();
        self.subtables.clear();
        self.order.clear();
        self.free_slots.clear();
        self.chain_ops.shared.clear();
        self.emc.clear();
        *self.emc_mask = IngressMask::default();
        self.hash_epoch = self.hash_epoch.wrapping_add(1);
        self.reval = Reval::IDLE;
    }

    /// Brings every entry up to date with `pipeline` at once (see the module docs): a
    /// [`revalidate_begin`](Self::revalidate_begin) and the whole sweep.
    pub fn revalidate(&mut self, pipeline: &Pipeline) {
        self.revalidate_begin(pipeline);
        self.revalidate_step(pipeline, usize::MAX);
    }

    /// Starts a revalidation for `pipeline`: only entries that a flow change since the cache's
    /// version could affect are re-translated: the change is in a table the entry's
    /// translation looked up, and its match overlaps the keys the entry covers (entries whose
    /// lookups used rewritten fields are always re-translated). Until the sweep
    /// ([`revalidate_step`](Self::revalidate_step)) has passed an entry,
    /// [`lookup_checked`](Self::lookup_checked) checks it on a hit. A sweep still under way is
    /// finished first, against `pipeline`: tables that change faster than the sweeps end cost
    /// a whole sweep per change, as a revalidation all at once does, and never let changes
    /// pile up into a flush.
    pub fn revalidate_begin(&mut self, pipeline: &Pipeline) {
        self.revalidate_step(pipeline, usize::MAX);
        let base = self.version;
        let changes: Option<Vec<Change>> = base
            .and_then(|v| pipeline.changes_since(v))
            .map(|c| c.copied().collect())
            .filter(|c: &Vec<Change>| c.len() <= MAX_TARGETED_CHANGES);
        self.version = Some(pipeline.version());
        if changes.as_ref().is_some_and(Vec::is_empty) {
            return;
        }
        if changes.is_none() && self.len() > REVALIDATE_MAX {
            self.flush();
            return;
        }
        let end = self.entries.len();
        let mut done = std::mem::take(&mut self.reval.done);
        done.clear();
        done.resize(end.div_ceil(64), 0);
        self.reval = Reval {
            cursor: 0,
            end,
            done,
            changes,
        };
    }

    /// Whether a revalidation sweep is under way.
    #[inline]
    pub fn revalidating(&self) -> bool {
        self.reval.cursor != usize::MAX
    }

    /// Sweeps up to `budget` more entries of the revalidation under way against `pipeline`
    /// (the latest tables); returns whether the sweep is over.
    pub fn revalidate_step(&mut self, pipeline: &Pipeline, budget: usize) -> bool {
        if !self.revalidating() {
            return true;
        }
        let stop = self.reval.cursor.saturating_add(budget).min(self.reval.end);
        while self.reval.cursor < stop {
            let i = self.reval.cursor;
            if self.reval.pending(i) {
                self.check(i, pipeline);
            }
            self.reval.cursor += 1;
        }
        if self.reval.cursor < self.reval.end {
            return false;
        }
        let mut done = std::mem::take(&mut self.reval.done);
        done.clear();
        self.reval = Reval {
            done,
            ..Reval::IDLE
        };
        true
    }

    /// Checks entry `i` against the sweep's changes: re-translated if a change could affect
    /// it, then updated in place or removed.
    fn check(&mut self, i: usize, pipeline: &Pipeline) {
        let e = &self.entries[i];
        if !e.live {
            return;
        }
        let affected = match &self.reval.changes {
            None => true,
            Some(cs) => {
                e.rewrote
                    || cs.iter().any(|c| {
                        e.overlaps(c.m.mask(), c.m.key())
                            && e.tables[usize::from(c.table / 64)] & (1 << (c.table % 64)) != 0
                    })
            }
        };
        if !affected {
            return;
        }
        let key = e.key();
        let t = xlate(pipeline, &key);
        self.stats.revalidated += 1;
        let e = &mut self.entries[i];
        let mask = e.mask();
        if t.mask.is_subset_of(&mask) {
            e.outputs = t.outputs();
            let normal = has_normal(&t.ops);
            // The subtable's shape (the entry's mask is its subtable's); a shape of its
            // own should the index not lead there.
            e.shape = match self.subtables.get(usize::from(e.subtable)) {
                Some(st) if st.mask == mask => Arc::clone(&st.shapes[usize::from(normal)]),
                _ => Arc::new(Shape::new(&mask, normal)),
            };
            e.forward_only = forward_only(&t.ops);
            e.chain = chain(&t.ops, e.outputs, e.forward_only, t.miss);
            e.ops = self.chain_ops.share(&t.ops, e.chain);
            // What the old flows were charged goes to them.
            e.push_pending(self.writer, self.clock_ms);
            e.flows = t.flows.into_boxed_slice();
            e.ctl = ctl_meta(t.controller);
            e.tables = t.tables;
            e.rewrote = t.rewrote;
            e.miss = t.miss;
            e.miss_table = t.miss_table;
        } else {
            self.remove(u32::try_from(i).unwrap_or(u32::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::ofp::MatchField;
    use crate::ofp::action::{Action, Instructions, NoGroups};
    use crate::ofp::field::Field;
    use crate::ofp::pipeline::FlowMod;

    fn key(port: u16, dst: u8) -> FlowKey {
        let mut k = FlowKey {
            in_port: 1,
            eth_type: 0x0800,
            nw_proto: 17,
            tp_dst: port,
            ..FlowKey::default()
        };
        k.nw_dst[..4].copy_from_slice(&[10, 0, 0, dst]);
        k
    }

    fn port_rule(p: &mut Pipeline, port: u16, out: u32) {
        let fm = port_flow(port, vec![Action::Output(out)]);
        p.flow_mod(&fm, &NoGroups, Instant::now()).unwrap();
    }

    /// `udp,tp_dst=port actions=…` at priority 10 in table 0.
    fn port_flow(port: u16, actions: Vec<Action>) -> FlowMod {
        FlowMod::add(
            0,
            10,
            vec![
                MatchField {
                    field: Field::EthType,
                    value: 0x0800,
                    mask: None,
                },
                MatchField {
                    field: Field::IpProto,
                    value: 17,
                    mask: None,
                },
                MatchField {
                    field: Field::UdpDst,
                    value: u128::from(port),
                    mask: None,
                },
            ],
            Instructions::apply(actions),
        )
    }

    /// 100 rules, one per UDP destination port, and a cache holding one megaflow for each.
    fn hundred_port_rules() -> (Pipeline, FlowCache) {
        let mut p = Pipeline::new(1, 100);
        for port in 0..100 {
            port_rule(&mut p, port, 2);
        }
        let mut c = FlowCache::new(1024);
        for port in 0..100 {
            c.upcall(&p, &key(port, 1), 0);
        }
        (p, c)
    }

    #[test]
    fn emc_then_megaflow_then_miss() {
        let p = Pipeline::learning_bridge(1, 10);
        let mut c = FlowCache::new(16);
        assert!(c.lookup(&key(1, 1), 0).is_none());
        let r = c.upcall(&p, &key(1, 1), 0);
        assert_eq!(&*c.entry(r).ops, &[Action::Normal]);
        // A different key is covered by the same (all-wildcard) megaflow; no mask tells the
        // two apart, so it takes the same EMC slot.
        assert_eq!(c.lookup(&key(2, 2), 0), Some(r));
        assert_eq!(c.lookup(&key(2, 2), 0), Some(r));
        assert_eq!(c.stats.misses, 1);
        assert_eq!(c.stats.megaflow_hits, 0);
        assert_eq!(c.stats.emc_hits, 2);
        assert_eq!(c.len(), 1);
        // Knocked out of the EMC (as by a colliding key), the megaflow answers and puts it
        // back.
        c.emc.clear();
        assert_eq!(c.lookup(&key(3, 3), 0), Some(r));
        assert_eq!(c.lookup(&key(3, 3), 0), Some(r));
        assert_eq!((c.stats.megaflow_hits, c.stats.emc_hits), (1, 3));
    }

    #[test]
    fn what_an_entry_owes_its_flows_reaches_them_when_it_goes_changes_or_the_cache_flushes() {
        let (mut p, mut c) = hundred_port_rules();
        let hit = |c: &mut FlowCache, port: u16, ms: u64| {
            let r = c.lookup(&key(port, 1), 0).unwrap();
            c.charge(r, 2, 200, ms);
            Arc::clone(&c.entry(r).flows[0])
        };
        // Re-translated to a new flow (the rule replaced): the old flow gets what was owed.
        let old = hit(&mut c, 5, 1_000);
        p.flow_mod(
            &FlowMod::delete(Some(0), port_flow(5, vec![]).fields),
            &NoGroups,
            Instant::now(),
        )
        .unwrap();
        port_rule(&mut p, 5, 3);
        c.revalidate(&p);
        assert_eq!(old.stats.totals(), (2, 200));
        assert_eq!(old.stats.last_hit_ms(), 1_000);
        let new = hit(&mut c, 5, 1_500);
        assert!(!Arc::ptr_eq(&old, &new));
        assert_eq!(new.stats.totals(), (0, 0), "owed");
        // Removed (idle): pushed as it goes; its slot, reused, stays listed once.
        let gone = hit(&mut c, 6, 2_000);
        assert_eq!(c.expire(20, 10, usize::MAX), 100);
        assert_eq!(
            (gone.stats.totals(), new.stats.totals()),
            ((2, 200), (2, 200))
        );
        assert_eq!(gone.stats.last_hit_ms(), 2_000);
        for port in 0..100 {
            c.upcall(&p, &key(port, 1), 20);
        }
        let again = hit(&mut c, 6, 3_000);
        assert!(c.owed() <= c.len(), "{} listed", c.owed());
        c.push_stats(usize::MAX);
        assert_eq!((c.owed(), again.stats.totals()), (0, (4, 400)));
        // Flushed: pushed first.
        let flushed = hit(&mut c, 7, 4_000);
        c.flush();
        assert_eq!(flushed.stats.totals(), (2, 200));
        assert_eq!((c.owed(), flushed.stats.last_hit_ms()), (0, 4_000));
    }

    #[test]
    fn a_staged_lookup_names_the_entry_and_its_hash_holds_until_the_emc_mask_widens() {
        let (p, mut c) = hundred_port_rules();
        let k = key(7, 1);
        let h = c.hash(&k);
        let r = c.lookup(&k, 0).unwrap();
        // The stages name the entry the lookup finds; a key without one gets none.
        c.prefetch_set(h);
        assert_eq!(c.prefetch_entry(h), r);
        assert_eq!(c.prefetch_entry(c.hash(&key(500, 1))), NO_ENTRY);
        // A hint is only a hint: one naming another flow's entry, or none, still finds the
        // key's own (as an EMC hit: the set probed after the hint failed).
        let other = c.lookup(&key(8, 1), 0).unwrap();
        for hint in [r, other, NO_ENTRY, u32::MAX - 1] {
            let emc = c.stats.emc_hits;
            assert_eq!(
                c.lookup_checked_hashed(&k, h, hint, 0, &p),
                Some(r),
                "{hint}"
            );
            assert_eq!(c.stats.emc_hits, emc + 1);
        }
        assert_eq!(
            c.lookup_checked_hashed(&key(500, 1), c.hash(&key(500, 1)), r, 0, &p),
            None
        );
        // An upcall under a known mask keeps every hash.
        let epoch = c.hash_epoch();
        c.upcall(&p, &key(150, 1), 0);
        assert_eq!((c.hash_epoch(), c.hash(&k)), (epoch, h));
        assert_eq!(c.lookup_hashed(&k, h, 0), Some(r));
        // A new mask that widens the EMC's changes them, and says so.
        let mut wider = Pipeline::new(1, 101);
        for port in 0..100 {
            port_rule(&mut wider, port, 2);
        }
        let mut on_src = port_flow(1000, vec![Action::Output(2)]);
        on_src.fields.push(MatchField {
            field: Field::IpSrc,
            value: 0x0a00_0009,
            mask: None,
        });
        wider.flow_mod(&on_src, &NoGroups, Instant::now()).unwrap();
        let mut k2 = key(1000, 1);
        k2.nw_src[..4].copy_from_slice(&[10, 0, 0, 9]);
        let h2 = c.hash(&k2);
        c.upcall(&wider, &k2, 0);
        assert_ne!(c.hash_epoch(), epoch);
        assert_ne!(c.hash(&k2), h2, "its source address counts now");
        let epoch = c.hash_epoch();
        c.flush();
        assert_ne!(c.hash_epoch(), epoch);
    }

    #[test]
    fn the_emc_holds_a_slot_per_megaflow_not_per_key() {
        let (_p, mut c) = hundred_port_rules();
        assert_eq!(c.len(), 100);
        // The megaflows are exact on the port, not on the destination address (nor on the
        // source port): 100 ports × 50 other keys each find their entry in the EMC at once.
        let union = *c.emc_mask.words();
        assert!(union.iter().any(|&w| w != 0));
        let under_union = |k: &FlowKey| -> Vec<u64> {
            k.words().iter().zip(&union).map(|(w, m)| w & m).collect()
        };
        let mut probe = key(0, 0);
        probe.nw_dst = [0xff; 16];
        probe.tp_src = 0xffff;
        assert_eq!(
            under_union(&probe),
            under_union(&key(0, 0)),
            "address and source port are not in the EMC's mask"
        );
        for port in 0..100 {
            for dst in 2..52 {
                let mut k = key(port, dst);
                k.tp_src = u16::from(dst) * 7;
                let r = c.lookup(&k, 0).unwrap();
                assert_eq!(c.entry(r).key().tp_dst, port);
            }
        }
        assert_eq!(c.stats.emc_hits, 100 * 50);
        assert_eq!((c.stats.megaflow_hits, c.stats.misses), (0, 0));
        // Entries and subtables gone, the mask stays (it only grows, so subtables that come
        // and go do not clear the EMC each time); a flush empties it.
        assert_eq!(c.expire(10, 1, usize::MAX), 100);
        assert_eq!((c.len(), c.subtables()), (0, 0));
        assert_eq!(*c.emc_mask.words(), union);
        c.flush();
        assert_eq!(*c.emc_mask, IngressMask::default());
    }

    #[test]
    fn a_normal_entry_runs_keys_with_the_same_l2_fields_only() {
        let p = Pipeline::learning_bridge(1, 10);
        let mut c = FlowCache::new(16);
        let first = key(1, 1);
        let r = c.upcall(&p, &first, 0);
        let e = c.entry(r);
        assert!(e.forward_only);
        // The megaflow is all-wildcard, but normal decides on in_port, MACs and the tag.
        assert!(e.same_run(&first, &key(2, 9)));
        let mut other = first;
        other.eth_dst[5] ^= 1;
        assert!(!e.same_run(&first, &other));
        let mut other = first;
        other.eth_src[0] ^= 2;
        assert!(!e.same_run(&first, &other));
        let mut other = first;
        other.in_port = 2;
        assert!(!e.same_run(&first, &other));
        let mut other = first;
        other.vlan_tci = crate::flow::VLAN_PRESENT | 5;
        assert!(!e.same_run(&first, &other));
    }

    #[test]
    fn a_rule_entry_runs_keys_equal_under_its_mask_and_a_wide_mask_compares_whole_keys() {
        let mut p = Pipeline::new(1, 10);
        port_rule(&mut p, 53, 2);
        let mut c = FlowCache::new(16);
        let first = key(53, 1);
        let r = c.upcall(&p, &first, 0);
        let e = c.entry(r);
        assert!(e.forward_only);
        // Only the matched fields count: another destination address is the same run …
        assert!(e.same_run(&first, &key(53, 7)));
        // … another port is not.
        assert!(!e.same_run(&first, &key(54, 1)));
        // A match on a field beyond the first eight words (metadata) compares whole keys.
        let fm = FlowMod::add(
            0,
            10,
            vec![MatchField {
                field: Field::Metadata,
                value: 0,
                mask: None,
            }],
            Instructions::apply(vec![Action::Output(3)]),
        );
        let mut p = Pipeline::new(1, 10);
        p.flow_mod(&fm, &NoGroups, Instant::now()).unwrap();
        let mut c = FlowCache::new(16);
        let r = c.upcall(&p, &first, 0);
        let e = c.entry(r);
        assert!(e.same_run(&first, &first));
        assert!(!e.same_run(&first, &key(53, 7)));
        // Ops that rewrite are not forward-only (they run per frame).
        let fm = FlowMod::add(
            0,
            20,
            vec![MatchField {
                field: Field::EthType,
                value: 0x0800,
                mask: None,
            }],
            Instructions::apply(vec![Action::DecTtl, Action::Output(3)]),
        );
        p.flow_mod(&fm, &NoGroups, Instant::now()).unwrap();
        let mut c = FlowCache::new(16);
        let r = c.upcall(&p, &first, 0);
        assert!(!c.entry(r).forward_only);
    }

    #[test]
    fn entries_of_a_subtable_share_its_shape_and_take_the_normal_one_when_their_ops_do() {
        let mut p = Pipeline::new(1, 10);
        port_rule(&mut p, 53, 2);
        port_rule(&mut p, 54, 2);
        let mut c = FlowCache::new(16);
        let (a, b) = (key(53, 1), key(54, 1));
        let (ra, rb) = (c.upcall(&p, &a, 0), c.upcall(&p, &b, 0));
        assert_ne!(ra, rb);
        assert_eq!(c.subtables(), 1);
        assert!(Arc::ptr_eq(&c.entry(ra).shape, &c.entry(rb).shape));
        let mut other_dst = a;
        other_dst.eth_dst[5] ^= 1;
        assert!(c.entry(ra).same_run(&a, &other_dst));
        // The flow for port 53 now says `normal`: revalidated in place (same mask), its entry
        // takes the subtable's other shape, whose run bits add the L2 fields.
        let fm = port_flow(53, vec![Action::Normal]);
        p.flow_mod(&fm, &NoGroups, Instant::now()).unwrap();
        c.revalidate(&p);
        assert_eq!(c.lookup(&a, 0), Some(ra));
        assert_eq!(&*c.entry(ra).ops, &[Action::Normal]);
        assert!(!Arc::ptr_eq(&c.entry(ra).shape, &c.entry(rb).shape));
        assert_eq!(c.entry(ra).mask(), c.entry(rb).mask());
        assert!(!c.entry(ra).same_run(&a, &other_dst));
        assert!(c.entry(rb).same_run(&b, &{
            let mut k = b;
            k.eth_dst[5] ^= 1;
            k
        }));
    }

    /// Rules `udp,tp_dst=53/54 actions=output:2` and `tp_dst=55 actions=output:3`.
    fn two_ops_for_three_ports() -> Pipeline {
        let mut p = Pipeline::new(1, 10);
        port_rule(&mut p, 53, 2);
        port_rule(&mut p, 54, 2);
        port_rule(&mut p, 55, 3);
        p
    }

    #[test]
    fn a_chain_id_names_shared_ops_and_chains_to_compares_them_when_it_differs() {
        let mut p = two_ops_for_three_ports();
        // Outputs, then misses in (empty) table 1: its frames' misses are counted on their
        // own, so it does not chain.
        let mut fm = port_flow(56, vec![Action::Output(2)]);
        fm.instructions.goto_table = Some(1);
        p.flow_mod(&fm, &NoGroups, Instant::now()).unwrap();
        let mut c = FlowCache::new(16);
        let [r53, r54, r55, r56] = [53, 54, 55, 56].map(|port| c.upcall(&p, &key(port, 1), 0));
        assert!(c.entry(r56).miss && c.entry(r56).outputs);
        assert_eq!(c.entry(r56).chain_id(), 0);
        let id = c.entry(r53).chain_id();
        assert_ne!(id, 0);
        assert_eq!(c.entry(r54).chain_id(), id, "equal ops, one shared copy");
        assert!(c.chains_to(r53, id, r54));
        assert!(!c.chains_to(r53, id, r55));
        assert!(!c.chains_to(r53, id, r56));
        assert!(
            !c.chains_to(r56, 0, r54),
            "an open entry that does not chain"
        );
        // Equal ops in copies of their own (a full pool): other names, compared.
        let copy: Arc<[Op]> = Arc::from(&*c.entry(r54).ops);
        c.entries[r54 as usize].ops = copy;
        assert_ne!(c.entry(r54).chain_id(), id);
        assert!(c.chains_to(r53, id, r54));
    }

    #[test]
    fn chaining_entries_share_equal_ops_and_the_pool_is_bounded() {
        let p = two_ops_for_three_ports();
        let mut c = FlowCache::new(16);
        let r53 = c.upcall(&p, &key(53, 1), 0);
        let r54 = c.upcall(&p, &key(54, 1), 0);
        let r55 = c.upcall(&p, &key(55, 1), 0);
        assert!(Arc::ptr_eq(&c.entry(r53).ops, &c.entry(r54).ops));
        assert!(c.chains(r53, r54));
        assert!(!c.chains(r53, r55));
        assert_eq!(c.chain_ops.shared.len(), 2);
        // Ops that do not chain (here: they rewrite) are not pooled.
        let mut pool = OpsPool::new();
        // (Whether ops chain decided as for an entry.)
        let share = |pool: &mut OpsPool, ops: Vec<Op>| {
            let mut t = Translation::default();
            t.ops = ops;
            let chains = chain(&t.ops, t.outputs(), forward_only(&t.ops), t.miss);
            pool.share(&t.ops, chains)
        };
        let dec = share(&mut pool, vec![Action::DecTtl, Action::Output(2)]);
        assert_eq!(&*dec, &[Action::DecTtl, Action::Output(2)]);
        assert!(pool.shared.is_empty());
        // Bounded: lists no entry holds any more make room; held ones stay shared.
        let held: Vec<_> = (0..OPS_POOL_MAX as u32)
            .map(|p| share(&mut pool, vec![Action::Output(p)]))
            .collect();
        assert_eq!(pool.shared.len(), OPS_POOL_MAX);
        let extra = share(&mut pool, vec![Action::Output(5000)]);
        assert_eq!(&*extra, &[Action::Output(5000)]);
        assert_eq!(
            pool.shared.len(),
            OPS_POOL_MAX,
            "full of held lists: a copy of its own"
        );
        assert!(Arc::ptr_eq(
            &held[7],
            &share(&mut pool, vec![Action::Output(7)])
        ));
        drop(held);
        // That sweep freed nothing: the next comes OPS_POOL_MAX shares later (each share of a
        // full pool would otherwise scan it), and then frees every unheld list.
        let mut calls = 0;
        let again = loop {
            calls += 1;
            let ops = share(&mut pool, vec![Action::Output(5001)]);
            if pool.shared.len() < OPS_POOL_MAX {
                break ops;
            }
            assert!(
                calls <= OPS_POOL_MAX,
                "a full pool of unheld lists is never swept"
            );
        };
        assert_eq!(calls, OPS_POOL_MAX + 1);
        assert_eq!(pool.shared.len(), 1, "unheld lists dropped when full");
        assert!(Arc::ptr_eq(
            &again,
            &share(&mut pool, vec![Action::Output(5001)])
        ));
        // A flush forgets the pool.
        c.flush();
        assert!(c.chain_ops.shared.is_empty());
    }

    #[test]
    fn entries_confirm_keys_over_the_words_their_mask_reaches() {
        // One rule per mask width: in_port only (within 4 words), the UDP port (within 8),
        // metadata (word 16: all 18 compared).
        let rule = |field: Field, value: u128| {
            let mut p = Pipeline::new(1, 10);
            let fm = FlowMod::add(
                0,
                10,
                vec![MatchField {
                    field,
                    value,
                    mask: None,
                }],
                Instructions::apply(vec![Action::Output(3)]),
            );
            p.flow_mod(&fm, &NoGroups, Instant::now()).unwrap();
            p
        };
        let mut udp53 = Pipeline::new(1, 10);
        port_rule(&mut udp53, 53, 3);
        let base = key(53, 1);
        let mut meta = base;
        meta.metadata = 9;
        let mut port = base;
        port.tp_dst = 54;
        let mut inp = base;
        inp.in_port = 2;
        for (p, words, covered, not_covered) in [
            (rule(Field::InPort, 1), 4, vec![port, meta], inp),
            (udp53, 8, vec![inp, meta], port),
            (rule(Field::Metadata, 0), 18, vec![inp, port], meta),
        ] {
            let mut c = FlowCache::new(16);
            let r = c.upcall(&p, &base, 0);
            let e = c.entry(r);
            assert_eq!(e.shape.cover_words, words);
            assert!(e.covers(&base));
            for k in covered {
                assert!(
                    e.covers(&k),
                    "{words} words: a field outside the mask counts"
                );
            }
            assert!(
                !e.covers(&not_covered),
                "{words} words: the masked field is ignored"
            );
            // The key and mask come back whole.
            assert_eq!(e.mask().apply(&base), e.key());
            assert_ne!(e.mask().apply(&not_covered), e.key());
        }
    }

    #[test]
    fn an_entry_charges_every_flow_it_went_through_and_keeps_its_controller_meta() {
        // Table 0 sends to the controller and on to table 1, which outputs: two flows.
        let mut p = Pipeline::new(2, 10);
        let t0 = FlowMod::add(
            0,
            10,
            vec![],
            Instructions {
                apply: vec![Action::Controller {
                    max_len: 128,
                    reason: crate::ofp::action::PacketInReason::Action,
                }],
                goto_table: Some(1),
                ..Instructions::default()
            },
        );
        p.flow_mod(&t0, &NoGroups, Instant::now()).unwrap();
        let t1 = FlowMod::add(1, 10, vec![], Instructions::apply(vec![Action::Output(2)]));
        p.flow_mod(&t1, &NoGroups, Instant::now()).unwrap();
        let mut c = FlowCache::new(16);
        let r = c.upcall(&p, &key(53, 1), 0);
        assert_eq!(c.entry(r).flows.len(), 2);
        assert_eq!(c.entry(r).controller().len(), 1);
        c.charge(r, 1, 100, 5);
        c.charge(r, 2, 200, 7);
        // Owed until pushed.
        assert_eq!(c.owed(), 1);
        assert_eq!(c.entry(r).flows[0].stats.totals(), (0, 0));
        assert_eq!(c.push_stats(usize::MAX), 1);
        assert_eq!(c.owed(), 0);
        let e = c.entry(r);
        for f in e.flows.iter() {
            assert_eq!(f.stats.totals(), (3, 300), "table {}", f.table);
            assert_eq!(f.stats.last_hit_ms(), 7);
        }
        // Table 0's flow replaced by another (new counters): the revalidated entry charges
        // the new one, not the old.
        let old = Arc::clone(&e.flows[0]);
        p.flow_mod(&FlowMod::delete(Some(0), vec![]), &NoGroups, Instant::now())
            .unwrap();
        let t0b = FlowMod::add(
            0,
            20,
            vec![],
            Instructions {
                goto_table: Some(1),
                ..Instructions::default()
            },
        );
        p.flow_mod(&t0b, &NoGroups, Instant::now()).unwrap();
        c.revalidate(&p);
        let r = c.lookup(&key(53, 1), 0).expect("still cached");
        assert!(!Arc::ptr_eq(&c.entry(r).flows[0], &old));
        c.charge(r, 1, 100, 8);
        c.push_stats(usize::MAX);
        let e = c.entry(r);
        assert_eq!(e.flows[0].stats.totals(), (1, 100));
        assert_eq!(old.stats.totals(), (3, 300));
        assert!(e.controller().is_empty());
        // An entry without controller ops has no meta.
        let mut p = Pipeline::new(1, 10);
        port_rule(&mut p, 53, 2);
        let mut c = FlowCache::new(16);
        let r = c.upcall(&p, &key(53, 1), 0);
        assert!(c.entry(r).controller().is_empty());
    }

    #[test]
    fn ten_thousand_active_keys_stay_in_the_emc() {
        let p = Pipeline::learning_bridge(1, 10);
        let mut c = FlowCache::new(16);
        let keys: Vec<FlowKey> = (0..10_000u32)
            .map(|i| {
                let mut k = key(u16::try_from(i % 60_000).unwrap_or(0), 1);
                k.nw_src[..4].copy_from_slice(&i.to_be_bytes());
                k
            })
            .collect();
        let r = c.upcall(&p, &keys[0], 0);
        for k in &keys {
            assert_eq!(c.lookup(k, 0), Some(r));
        }
        let before = c.stats.emc_hits;
        for k in &keys {
            assert_eq!(c.lookup(k, 0), Some(r));
        }
        let hits = c.stats.emc_hits - before;
        // 10,000 keys in 8,192 sets of 4: a few sets overflow (Poisson, mean 1.2), ~1.4 % of keys.
        assert!(hits >= 9_700, "only {hits} of 10000 EMC hits");
    }

    #[test]
    fn emc_slots_hold_every_index_the_capacity_needs_and_a_nonzero_signature() {
        for (capacity, bits) in [
            (1, 1),
            (2, 1),
            (16, 4),
            (17, 5),
            (65_536, 16),
            (MAX_CAPACITY, 24),
        ] {
            let mut emc = Emc::new(capacity);
            assert_eq!(emc.idx_bits, bits, "capacity {capacity}");
            let last = u32::try_from(capacity - 1).unwrap_or(u32::MAX);
            for h in [0u64, u64::MAX, 0x0123_4567_89ab_cdef, 1 << 32] {
                let (set, tag) = emc.place(h);
                assert_ne!(tag, 0);
                assert_eq!(emc.matches(0, tag), None, "an empty slot must never match");
                // A different signature (the hash's lowest signature bit is forced, so flip
                // the next one) misses even with the same set.
                let (_, other) = emc.place(h ^ (1 << 33));
                for idx in [0, last] {
                    emc.clear();
                    emc.insert(h, idx);
                    let s = emc.sets[set].0;
                    assert_eq!(s.iter().filter(|&&s| s != 0).count(), 1);
                    assert_eq!(s.iter().find_map(|&s| emc.matches(s, tag)), Some(idx));
                    assert_eq!(s.iter().find_map(|&s| emc.matches(s, other)), None);
                    // Re-pointing the same signature takes its slot, not a second one.
                    emc.insert(h, last - idx);
                    assert_eq!(emc.sets[set].0.iter().filter(|&&s| s != 0).count(), 1);
                    assert_eq!(
                        emc.sets[set].0.iter().find_map(|&s| emc.matches(s, tag)),
                        Some(last - idx)
                    );
                }
            }
        }
        assert_eq!(FlowCache::new(usize::MAX).capacity(), MAX_CAPACITY);
    }

    #[test]
    fn a_slot_of_a_removed_entry_misses() {
        let mut p = Pipeline::learning_bridge(1, 10);
        let mut c = FlowCache::new(16);
        let k = key(53, 1);
        let r = c.upcall(&p, &k, 0);
        assert_eq!(c.lookup(&k, 0), Some(r));
        // A rule for port 53 narrows the all-wildcard megaflow: revalidation removes it.
        port_rule(&mut p, 53, 2);
        c.revalidate(&p);
        assert_eq!(c.len(), 0);
        let emc = c.stats.emc_hits;
        assert_eq!(c.lookup(&k, 0), None);
        assert_eq!(c.stats.emc_hits, emc);
    }

    #[test]
    fn revalidation_updates_or_removes_entries() {
        let mut p = Pipeline::learning_bridge(1, 10);
        port_rule(&mut p, 53, 2);
        let mut c = FlowCache::new(16);
        let r53 = c.upcall(&p, &key(53, 1), 0);
        assert_eq!(&*c.entry(r53).ops, &[Action::Output(2)]);
        let r80 = c.upcall(&p, &key(80, 1), 0);
        assert_eq!(&*c.entry(r80).ops, &[Action::Normal]);
        // Change the rule's output: the port-53 entry is updated in place.
        port_rule(&mut p, 53, 3);
        c.revalidate(&p);
        let r = c.lookup(&key(53, 1), 0).unwrap();
        assert_eq!(&*c.entry(r).ops, &[Action::Output(3)]);
        // A rule on a field the port-80 entry did not consult: entries that cannot prove
        // they still hold are removed, and nothing stale answers.
        let fm = FlowMod::add(
            0,
            20,
            vec![MatchField {
                field: Field::EthDst,
                value: 0x0200_0000_0001,
                mask: None,
            }],
            Instructions::default(),
        );
        p.flow_mod(&fm, &NoGroups, Instant::now()).unwrap();
        c.revalidate(&p);
        for k in [key(53, 1), key(80, 1)] {
            if let Some(r) = c.lookup(&k, 0) {
                assert_eq!(&*c.entry(r).ops, &*xlate(&p, &k).ops);
            }
        }
    }

    #[test]
    fn capacity_is_respected_with_eviction() {
        let mut p = Pipeline::learning_bridge(1, 100);
        for port in 0..50 {
            port_rule(&mut p, port, 2);
        }
        let mut c = FlowCache::new(8);
        for port in 0..50 {
            c.upcall(&p, &key(port, 1), 0);
            assert!(c.len() <= 8);
        }
        assert_eq!(c.stats.evictions, 42);
        // Each surviving entry answers correctly; evicted ones miss.
        for port in 0..50 {
            if let Some(r) = c.lookup(&key(port, 1), 0) {
                assert_eq!(&*c.entry(r).ops, &[Action::Output(2)]);
            }
        }
    }

    #[test]
    fn revalidation_is_targeted_at_entries_a_change_can_affect() {
        let mut p = Pipeline::learning_bridge(1, 1000);
        for port in 0..50 {
            port_rule(&mut p, port, 2);
        }
        let mut c = FlowCache::new(1000);
        for port in 0..50 {
            c.upcall(&p, &key(port, 1), 0);
        }
        c.revalidate(&p);
        let before = c.stats.revalidated;
        // A rule for port 99 overlaps none of the cached keys: nothing is re-translated.
        port_rule(&mut p, 99, 3);
        c.revalidate(&p);
        assert_eq!(c.stats.revalidated, before);
        // Changing port 7's rule re-translates exactly that entry.
        port_rule(&mut p, 7, 3);
        c.revalidate(&p);
        assert_eq!(c.stats.revalidated, before + 1);
        let r = c.lookup(&key(7, 1), 0).unwrap();
        assert_eq!(&*c.entry(r).ops, &[Action::Output(3)]);
    }

    #[test]
    fn idle_entries_expire() {
        let p = Pipeline::learning_bridge(1, 10);
        let mut c = FlowCache::new(8);
        c.upcall(&p, &key(1, 1), 0);
        assert_eq!(c.expire(5, 10, usize::MAX), 0);
        assert_eq!(c.expire(11, 10, usize::MAX), 1);
        assert!(c.is_empty());
        assert!(c.lookup(&key(1, 1), 11).is_none());
    }

    #[test]
    fn the_expiry_sweep_goes_round_in_slices() {
        let (_p, mut c) = hundred_port_rules();
        // Ports 0..10 are used again at 20: their entries are not idle then.
        for port in 0..10 {
            assert!(c.lookup(&key(port, 1), 20).is_some());
        }
        assert_eq!(c.slots(), 100);
        // Slices of 30 from slot 0: 20 idle of the first 30, then 30, 30, and the last 10
        // with 20 of the first slots again (the sweep wraps).
        assert_eq!(c.expire(25, 10, 30), 20);
        assert_eq!(c.expire(25, 10, 30), 30);
        assert_eq!(c.expire(25, 10, 30), 30);
        assert_eq!(c.expire(25, 10, 30), 10);
        assert_eq!(c.len(), 10);
        assert_eq!(c.expire(25, 10, usize::MAX), 0);
        for port in 0..100 {
            assert_eq!(
                c.lookup(&key(port, 1), 25).is_some(),
                port < 10,
                "port {port}"
            );
        }
        assert_eq!(c.stats.expired, 90);
    }

    /// `in_port=p` to table `p`, where one rule matches ip_dst under a prefix of length
    /// `p` (1..=32): each in_port's megaflows get a mask of their own.
    fn prefix_pipeline(ports: u32) -> Pipeline {
        let mut p = Pipeline::new(2, 1_000);
        for port in 1..=ports {
            let table = u8::try_from(port).unwrap();
            let to = Instructions {
                goto_table: Some(table),
                ..Instructions::default()
            };
            let in_port = vec![MatchField {
                field: Field::InPort,
                value: u128::from(port),
                mask: None,
            }];
            p.flow_mod(&FlowMod::add(0, 1, in_port, to), &NoGroups, Instant::now())
                .unwrap();
            let mask = u32::MAX << (32 - port);
            let fields = vec![
                MatchField {
                    field: Field::EthType,
                    value: 0x0800,
                    mask: None,
                },
                MatchField {
                    field: Field::IpDst,
                    value: u128::from(0x0a00_0000 & mask),
                    mask: Some(u128::from(mask)),
                },
            ];
            let out = Instructions::apply(vec![Action::Output(2)]);
            p.flow_mod(
                &FlowMod::add(table, 1, fields, out),
                &NoGroups,
                Instant::now(),
            )
            .unwrap();
        }
        p
    }

    fn on_port(port: u32, dst: u8) -> FlowKey {
        let mut k = key(1, dst);
        k.in_port = port;
        k
    }

    #[test]
    fn ranking_moves_subtables_not_entries() {
        let p = prefix_pipeline(3);
        let mut c = FlowCache::new(1024);
        // One megaflow per port (its prefix covers every destination used here).
        for port in 1..=3 {
            c.upcall(&p, &on_port(port, 0), 0);
        }
        assert_eq!((c.len(), c.subtables()), (3, 3));
        let slots: Vec<u16> = c.order.clone();
        let slot_of = |c: &mut FlowCache, port: u32| {
            let r = c.lookup(&on_port(port, 0), 0).unwrap();
            c.entry(r).subtable
        };
        let before: Vec<u16> = (1..=3).map(|port| slot_of(&mut c, port)).collect();
        // Megaflow lookups (the EMC cleared before each) hit port 3's subtable most: after a
        // ranking it is visited first; the entries keep their slots.
        for i in 0..5_000u32 {
            c.emc.clear();
            let port = if i % 10 == 0 { 1 } else { 3 };
            assert!(c.lookup(&on_port(port, 1), 0).is_some());
        }
        assert_ne!(c.order, slots, "ranked");
        assert_eq!(c.order[0], before[2], "port 3's subtable first");
        let after: Vec<u16> = (1..=3).map(|port| slot_of(&mut c, port)).collect();
        assert_eq!(before, after);
        // Removal still finds each entry's subtable: port 2's empties and its slot is free;
        // a new mask takes that slot.
        let r = c.lookup(&on_port(2, 0), 0).unwrap();
        c.remove(r);
        assert_eq!(c.subtables(), 2);
        assert_eq!(c.free_slots, vec![before[1]]);
        assert!(c.lookup(&on_port(2, 0), 0).is_none());
        let p4 = prefix_pipeline(4);
        let r = c.upcall(&p4, &on_port(4, 0), 0);
        assert_eq!(c.entry(r).subtable, before[1]);
        assert_eq!(c.subtables(), 3);
        for (port, dst) in [(1, 3), (3, 2), (4, 7)] {
            let r = c.lookup(&on_port(port, dst), 0).unwrap();
            assert_eq!(c.entry(r).key().in_port, port);
        }
        assert_eq!(c.expire(20, 10, usize::MAX), 3);
        assert_eq!((c.len(), c.subtables()), (0, 0));
    }

    #[test]
    fn more_masks_than_the_subtable_bound_flush_the_cache() {
        let p = Pipeline::learning_bridge(1, 10);
        let mut c = FlowCache::new(4096);
        let t = xlate(&p, &key(1, 1));
        // Masks that differ in the source port's bits: one more than the bound.
        let masks: Vec<FlowMask> = (1..=u16::try_from(MAX_SUBTABLES + 1).unwrap())
            .map(|bits| {
                let mut m = t.mask;
                m.bits.tp_src = bits;
                m
            })
            .collect();
        for (i, m) in masks.iter().enumerate() {
            let mut tr = xlate(&p, &key(1, 1));
            tr.mask = *m;
            c.insert(tr, &key(1, u8::try_from(i % 200).unwrap()), 0);
            assert!(c.subtables() <= MAX_SUBTABLES);
        }
        assert_eq!(c.stats.flushes, 1);
        assert_eq!((c.len(), c.subtables()), (1, 1));
    }

    mod prop {
        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        enum Change {
            Add {
                table: u8,
                priority: u16,
                fields: Vec<MatchField>,
                actions: u8,
            },
            Delete(Vec<MatchField>),
        }

        fn fields_strategy() -> impl Strategy<Value = Vec<MatchField>> {
            (
                proptest::option::of(1u128..4),
                proptest::option::of(prop_oneof![Just(6u128), Just(17u128)]),
                proptest::option::of((0u128..4, prop_oneof![Just(0xffffu128), Just(0xfffc)])),
                proptest::option::of((0u128..4, 30u32..=32)),
            )
                .prop_map(|(in_port, proto, port, dst)| {
                    let mut v = Vec::new();
                    if let Some(p) = in_port {
                        v.push(mf(Field::InPort, p, None));
                    }
                    if proto.is_some() || port.is_some() || dst.is_some() {
                        v.push(mf(Field::EthType, 0x0800, None));
                    }
                    let proto = if port.is_some() {
                        Some(proto.unwrap_or(6))
                    } else {
                        proto
                    };
                    if let Some(p) = proto {
                        v.push(mf(Field::IpProto, p, None));
                    }
                    if let (Some((port, mask)), Some(proto)) = (port, proto) {
                        let f = if proto == 6 {
                            Field::TcpDst
                        } else {
                            Field::UdpDst
                        };
                        v.push(mf(f, port & mask, Some(mask)));
                    }
                    if let Some((d, len)) = dst {
                        let mask = u128::from(u32::MAX << (32 - len));
                        v.push(mf(Field::IpDst, (0x0a00_0000 | d) & mask, Some(mask)));
                    }
                    v
                })
        }

        fn mf(field: Field, value: u128, mask: Option<u128>) -> MatchField {
            MatchField { field, value, mask }
        }

        fn change() -> impl Strategy<Value = Change> {
            prop_oneof![
                4 => (0u8..2, 0u16..4, fields_strategy(), 0u8..6).prop_map(
                    |(table, priority, fields, actions)| Change::Add {
                        table,
                        priority,
                        fields,
                        actions
                    }
                ),
                1 => fields_strategy().prop_map(Change::Delete),
            ]
        }

        fn instructions(table: u8, a: u8) -> Instructions {
            match a {
                0 => Instructions::default(),
                1 | 2 => Instructions::apply(vec![Action::Output(u32::from(a))]),
                3 => Instructions::apply(vec![Action::Normal]),
                // From table 0: mark and continue in table 1 (which sees reg0).
                4 if table == 0 => Instructions {
                    apply: vec![Action::SetField {
                        field: Field::Reg(0),
                        value: 1,
                    }],
                    goto_table: Some(1),
                    ..Instructions::default()
                },
                _ if table == 0 => Instructions {
                    apply: vec![Action::SetField {
                        field: Field::InPort,
                        value: 3,
                    }],
                    ..Instructions::default()
                },
                _ => Instructions::apply(vec![Action::Output(3)]),
            }
        }

        fn key_strategy() -> impl Strategy<Value = FlowKey> {
            (
                1u32..4,
                any::<bool>(),
                prop_oneof![Just(6u8), Just(17u8)],
                0u16..6,
                0u8..5,
            )
                .prop_map(|(in_port, ip, proto, port, d)| {
                    let mut k = FlowKey {
                        in_port,
                        ..FlowKey::default()
                    };
                    if ip {
                        k.eth_type = 0x0800;
                        k.nw_proto = proto;
                        k.tp_dst = port;
                        k.nw_dst[..4].copy_from_slice(&[10, 0, 0, d]);
                    } else {
                        k.eth_type = 0x0806;
                    }
                    k
                })
        }

        /// The entry decides as `t` does, and its shared and derived parts agree with it: the
        /// shape is the one its mask and ops call for.
        fn same(c: &FlowCache, r: EntryRef, t: &Translation) -> bool {
            let e = c.entry(r);
            *e.ops == *t.ops
                && e.miss == t.miss
                && e.flows
                    .iter()
                    .map(|f| f.id)
                    .eq(t.flows.iter().map(|f| f.id))
                && *e.shape == Shape::new(&e.mask(), has_normal(&e.ops))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Whatever the cache answers equals a fresh translation, after every change, however
            /// far the revalidation sweep has got.
            #[test]
            fn cached_decisions_equal_fresh_translations(
                changes in proptest::collection::vec(change(), 1..24),
                keys in proptest::collection::vec(key_strategy(), 8..32),
                capacity in 2usize..16,
                slice in 0usize..20,
            ) {
                let mut p = Pipeline::learning_bridge(1, 1000);
                let mut c = FlowCache::new(capacity);
                for ch in changes {
                    let fm = match ch {
                        Change::Add { table, priority, fields, actions } => {
                            // Set-field of in_port is refused; that is part of what is tested.
                            FlowMod::add(table, priority, fields, instructions(table, actions))
                        }
                        Change::Delete(fields) => FlowMod::delete(None, fields),
                    };
                    let _ = p.flow_mod(&fm, &NoGroups, Instant::now());
                    // A sweep begun (again, if the last change's is not over) and taken
                    // `slice` entries further: the lookups check what it has not reached.
                    c.revalidate_begin(&p);
                    c.revalidate_step(&p, slice);
                    for k in &keys {
                        let fresh = xlate(&p, k);
                        let r = match c.lookup_checked(k, 0, &p) {
                            Some(r) => r,
                            None => c.upcall(&p, k, 0),
                        };
                        prop_assert!(same(&c, r, &fresh), "key {k:?}");
                        prop_assert!(c.len() <= capacity);
                        // The EMC's mask holds every live subtable's.
                        for &si in &c.order {
                            let st = &c.subtables[usize::from(si)];
                            for (u, w) in c.emc_mask.words().iter().zip(st.mask.bits.words()) {
                                prop_assert_eq!(u & w, *w);
                            }
                        }
                        // The EMC relies on it: every index fits its slots' index bits.
                        prop_assert!(c.entries.len() <= capacity);
                    }
                }
            }
        }
    }
}
