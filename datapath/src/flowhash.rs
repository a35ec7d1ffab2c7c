//! Keyed hashing of [`FlowKey`]s for the per-worker caches (hot path).
//!
//! The caches hash every received frame's key, so the hash must be cheap, and the keys are
//! chosen by whoever sends the frames, so it must not let a sender aim many keys at one slot
//! or bucket (hash flooding). Both are met by NH, the universal hash family of UMAC (Black et
//! al., 1999): with 18 random 64-bit keys `k`, a key's words `w` hash to
//!
//! ```text
//! NH(w) = Σ_{i<9} (w[2i] + k[2i]) · (w[2i+1] + k[2i+1])   (additions mod 2^64, products and sum mod 2^128)
//! ```
//!
//! For two different keys, the chance over the random `k` that their NH values are equal is at
//! most 2^-64, whatever the keys are, so a sender who does not know `k` cannot build
//! colliding keys. The nine 64×64→128-bit multiplications are independent, so they overlap in
//! the CPU: a few nanoseconds per key. The 128-bit sum is folded to 64 bits and mixed with a
//! bijective finaliser so that every output bit depends on every input bit (the caches take
//! slot indexes from the low bits and signatures from the high ones).
//!
//! [`FlowHasher`] is the direct form (used by the exact-match cache); [`FlowBuildHasher`]
//! plugs the same function into `std::collections::HashMap` (the megaflow subtables).

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use crate::flow::FlowKey;

const W: usize = FlowKey::WORDS;

/// Words hashed by [`FlowHasher::hash_masked`] (in_port to the ARP addresses; see
/// [`FlowKey::words`]).
pub const INGRESS_WORDS: usize = 10;

/// Random keys: from std's `RandomState`, which the OS seeds per process (fixed ones after
/// [`crate::hash::use_fixed_seeds`], for reproducible instruction counts).
fn random_keys() -> [u64; W] {
    if crate::hash::fixed_seeds() {
        return std::array::from_fn(|i| (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
    let seed = std::collections::hash_map::RandomState::new();
    std::array::from_fn(|i| seed.hash_one(i))
}

/// The process-wide keys of [`FlowBuildHasher`].
fn global_keys() -> &'static [u64; W] {
    static KEYS: OnceLock<[u64; W]> = OnceLock::new();
    KEYS.get_or_init(random_keys)
}

/// One NH term.
#[inline(always)]
fn term(a: u64, ka: u64, b: u64, kb: u64) -> u128 {
    u128::from(a.wrapping_add(ka)) * u128::from(b.wrapping_add(kb))
}

/// Folds the 128-bit sum and mixes it (the finaliser of MurmurHash3, a bijection).
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "the low and high halves are taken on purpose"
)]
fn finish(acc: u128) -> u64 {
    let mut x = (acc as u64) ^ ((acc >> 64) as u64);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// NH over a key's words with keys `k`, finished.
#[inline(always)]
fn nh(w: &[u64; W], k: &[u64; W]) -> u64 {
    let mut acc: u128 = 0;
    for i in 0..W / 2 {
        acc = acc.wrapping_add(term(w[2 * i], k[2 * i], w[2 * i + 1], k[2 * i + 1]));
    }
    finish(acc)
}

/// A keyed hash of flow keys (see the module docs).
#[derive(Clone)]
pub struct FlowHasher {
    k: [u64; W],
}

impl std::fmt::Debug for FlowHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys are a secret of the process.
        f.write_str("FlowHasher")
    }
}

impl Default for FlowHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl FlowHasher {
    /// A hasher with fresh random keys.
    pub fn new() -> Self {
        Self { k: random_keys() }
    }

    /// A hasher with the given keys (deterministic: for tests and instruction counts).
    pub fn with_keys(k: [u64; W]) -> Self {
        Self { k }
    }

    /// The hash of `key`.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        nh(key.words(), &self.k)
    }

    /// The hash of `key`'s first [`INGRESS_WORDS`] words, each ANDed with its word of `mask`
    /// first: keys equal in the masked bits hash equal. For the exact-match cache, which
    /// passes the union of its megaflow masks, so that keys no megaflow tells apart (say,
    /// 10,000 connections to one port that a rule matches on) share one slot; it confirms
    /// every hit against the entry. The first words are every field a frame can set on
    /// arrival (ports, addresses, protocols, tags); the rest (registers, metadata, tunnel
    /// and conntrack fields) is zero on ingress until decapsulation or recirculation exists,
    /// so leaving it out changes no hash of a received frame and halves the work. A pair of
    /// words the mask zeroes both of is left out too: its term would be the same for every
    /// key (an L2 megaflow's mask reaches 2 of the 5 pairs, a 5-tuple's 3 or 4).
    #[inline(always)]
    pub fn hash_masked(&self, key: &FlowKey, mask: &IngressMask) -> u64 {
        let (w, k, m) = (key.words(), &self.k, &mask.words);
        let mut acc: u128 = 0;
        for i in 0..INGRESS_WORDS / 2 {
            if mask.pairs & (1 << i) != 0 {
                let (a, b) = (2 * i, 2 * i + 1);
                acc = acc.wrapping_add(term(w[a] & m[a], k[a], w[b] & m[b], k[b]));
            }
        }
        finish(acc)
    }
}

/// A mask of a key's first [`INGRESS_WORDS`] words for [`FlowHasher::hash_masked`], with the
/// pairs of words it reaches (a bit per pair that has a non-zero word).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngressMask {
    words: [u64; INGRESS_WORDS],
    pairs: u8,
}

impl IngressMask {
    /// The mask of `words`.
    pub fn new(words: [u64; INGRESS_WORDS]) -> Self {
        let mut pairs = 0;
        for i in 0..INGRESS_WORDS / 2 {
            if words[2 * i] | words[2 * i + 1] != 0 {
                pairs |= 1 << i;
            }
        }
        Self { words, pairs }
    }

    /// The mask's words.
    pub fn words(&self) -> &[u64; INGRESS_WORDS] {
        &self.words
    }
}

/// `BuildHasher` for maps keyed by [`FlowKey`] (the process-wide random keys).
#[derive(Clone, Copy, Debug)]
pub struct FlowBuildHasher {
    k: &'static [u64; W],
}

impl Default for FlowBuildHasher {
    fn default() -> Self {
        Self { k: global_keys() }
    }
}

impl BuildHasher for FlowBuildHasher {
    type Hasher = FlowStateHasher;

    #[inline]
    fn build_hasher(&self) -> FlowStateHasher {
        FlowStateHasher {
            k: self.k,
            acc: 0,
            pending: 0,
            n: 0,
        }
    }
}

/// The streaming form of NH behind [`FlowBuildHasher`]: words are paired as they arrive
/// ([`FlowKey`]'s `Hash` writes its 18 words); other input is cut into words.
#[derive(Clone, Debug)]
pub struct FlowStateHasher {
    k: &'static [u64; W],
    acc: u128,
    pending: u64,
    n: usize,
}

impl Hasher for FlowStateHasher {
    #[inline]
    fn write_u64(&mut self, w: u64) {
        if self.n.is_multiple_of(2) {
            self.pending = w;
        } else {
            let (i, j) = ((self.n - 1) % W, self.n % W);
            self.acc = self
                .acc
                .wrapping_add(term(self.pending, self.k[i], w, self.k[j]));
        }
        self.n += 1;
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
        // The length separates inputs that differ only in trailing zero bytes.
        self.write_u64(bytes.len() as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut acc = self.acc;
        if self.n % 2 == 1 {
            let (i, j) = ((self.n - 1) % W, self.n % W);
            acc = acc.wrapping_add(term(self.pending, self.k[i], 0, self.k[j]));
        }
        finish(acc)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn key(port: u16, src: u32) -> FlowKey {
        FlowKey {
            in_port: 1,
            eth_type: 0x0800,
            nw_proto: 17,
            tp_src: port,
            nw_src: {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&src.to_be_bytes());
                a
            },
            ..FlowKey::default()
        }
    }

    #[test]
    fn equal_keys_hash_equal_and_streaming_matches_direct() {
        let k: [u64; W] =
            std::array::from_fn(|i| (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let h = FlowHasher::with_keys(k);
        assert_eq!(h.hash(&key(1, 2)), h.hash(&key(1, 2)));
        // The streaming form over the 18 words gives the same value as the direct one.
        let leaked: &'static [u64; W] = Box::leak(Box::new(k));
        let b = FlowBuildHasher { k: leaked };
        for p in 0..100 {
            let key = key(p, 7);
            let mut s = b.build_hasher();
            std::hash::Hash::hash(&key, &mut s);
            assert_eq!(s.finish(), h.hash(&key));
        }
    }

    #[test]
    fn near_identical_keys_spread_over_slots() {
        // 65,536 keys that differ in one 16-bit field, and 65,536 that differ in one address:
        // the low 13 bits (an 8192-slot table) must take nearly every value, as for random.
        let h = FlowHasher::new();
        for keys in [
            (0..=u16::MAX).map(|p| key(p, 1)).collect::<Vec<_>>(),
            (0..65_536u32).map(|a| key(80, a)).collect(),
        ] {
            let slots: HashSet<u64> = keys.iter().map(|k| h.hash(k) & 8191).collect();
            assert!(
                slots.len() > 8_000,
                "only {} of 8192 slots used",
                slots.len()
            );
            let full: HashSet<u64> = keys.iter().map(|k| h.hash(k)).collect();
            assert_eq!(full.len(), keys.len(), "64-bit collision");
        }
    }

    #[test]
    fn a_masked_hash_sees_the_masked_bits_only() {
        let h = FlowHasher::new();
        // The source port's bits only.
        let ports = FlowKey {
            tp_src: 0xffff,
            ..FlowKey::default()
        };
        let mut w = [0u64; INGRESS_WORDS];
        w.copy_from_slice(&ports.words()[..INGRESS_WORDS]);
        let m = IngressMask::new(w);
        // tp_src is in word 7: the hash takes the pair of words 6 and 7 only.
        assert_eq!(m.pairs, 1 << 3);
        let (a, b) = (key(80, 1), key(80, 2));
        assert_eq!(
            h.hash_masked(&a, &m),
            h.hash_masked(&b, &m),
            "address not masked"
        );
        assert_ne!(h.hash_masked(&a, &m), h.hash_masked(&key(81, 1), &m));
        let all = IngressMask::new([u64::MAX; INGRESS_WORDS]);
        assert_ne!(h.hash_masked(&a, &all), h.hash_masked(&b, &all));
        // Equal keys, whatever the mask.
        assert_eq!(h.hash_masked(&a, &all), h.hash_masked(&key(80, 1), &all));
    }

    #[test]
    fn different_keys_give_different_hashes_per_instance() {
        // (Another test of this process may have switched to fixed seeds on purpose.)
        if crate::hash::fixed_seeds() {
            return;
        }
        let (a, b) = (FlowHasher::new(), FlowHasher::new());
        let k = key(5, 5);
        assert_ne!(a.hash(&k), b.hash(&k), "two hashers share keys");
    }
}
