//! The MAC learning table (hot path reads and learns; control path ages and flushes).
//!
//! One table per switch, keyed by (VLAN, MAC), shared by all workers without locks:
//! - A fixed array of slots (twice the configured capacity, rounded up to a power of two),
//!   open addressing with a bounded probe length ([`MAX_PROBE`]). Nothing is ever allocated after
//!   creation; the number of live entries never exceeds the configured maximum.
//! - A slot is two `AtomicU64`s: the key (`VALID | vlan << 48 | mac`) and the value
//!   (`port << 32 | last_seen_secs`). Readers load key, value, key again and accept the value only
//!   if the key did not change in between.
//! - Workers insert by claiming an empty or deleted slot with a compare-and-swap of its key to
//!   `RESERVED`, writing the value, then publishing the key; they update values with plain
//!   stores. Two workers inserting the same new address at once may claim two slots; each
//!   rescans after publishing and the later copy is deleted (see `dedupe`). The control thread deletes (aging, flush) by swapping the key to `TOMBSTONE`. A
//!   worker that updates a value just as its slot is deleted and reused can leave one wrong
//!   value behind; the next frame from that address corrects it (benign, documented).
//! - A frame from a known address on a new port is a move: the value is rewritten and the move
//!   counter incremented.
//! - Every change of where an address is (added, moved, deleted) advances the table's
//!   [`generation`](MacTable::generation) after the change; a refresh (same port, newer time)
//!   does not. A worker that read the generation before its lookups may reuse their result
//!   while the generation is unchanged (see the worker's `normal` decisions).
//!
//! Time is passed in as seconds since the switch started (`now`), read once per batch.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Longest probe sequence; an insertion that finds no free slot within it fails (table full).
pub const MAX_PROBE: usize = 32;
/// How often an insertion retries after losing a free slot to another inserter.
const CLAIM_ATTEMPTS: usize = 4;
/// Seconds an aging pass leaves its bound behind its `now` ([`MacTable::age`]): a worker
/// learns with the clock it read at the start of its pass, which may be a second behind the
/// control thread's.
pub const AGE_SLACK: u32 = 2;
const VALID: u64 = 1 << 63;
/// Key of a deleted slot: lookups go on past it, insertions may reuse it.
const TOMBSTONE: u64 = 1 << 62;
/// Key of a slot being filled: claimed by one inserter, whose value is not written yet.
/// Lookups and other inserters go on past it; aging and flushing skip it.
const RESERVED: u64 = 1 << 61;
const EMPTY: u64 = 0;

#[derive(Debug, Default)]
struct Slot {
    key: AtomicU64,
    val: AtomicU64,
}

/// Result of [`MacTable::learn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// Known on the same port (timestamp refreshed).
    Refreshed,
    /// New address added.
    Added,
    /// Known address seen on another port: moved.
    Moved {
        /// Port it was on before.
        from: u32,
    },
    /// New address, but the table is full (or its probe sequence is): not learned.
    Full,
}

/// The shared MAC table. See the module docs for the concurrency protocol.
#[derive(Debug)]
pub struct MacTable {
    slots: Box<[Slot]>,
    mask: usize,
    max_entries: usize,
    entries: AtomicUsize,
    moves: AtomicU64,
    /// A second no live entry was last seen before (`u32::MAX`: none seen yet): until
    /// `aging_secs` have passed since it, [`MacTable::age`] has nothing to remove and skips its
    /// pass over every slot (2 MiB at the default size: ~37 µs with a few addresses, ~385 µs
    /// half full, once a second on the control thread). Raised by each aging pass; lowered by
    /// a learn whose `now` is below it.
    oldest: AtomicU32,
    hasher: ahash::RandomState,
    /// Advanced after every change of an address's port (its own line: read by every worker's
    /// remembered decisions, written only when addresses come, move or go).
    generation: Generation,
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Generation(AtomicU64);

#[inline]
fn pack_key(vlan: u16, mac: &[u8; 6]) -> u64 {
    let m = u64::from_be_bytes([0, 0, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]);
    VALID | (u64::from(vlan & 0x0fff) << 48) | m
}

#[inline]
fn unpack_key(k: u64) -> (u16, [u8; 6]) {
    let b = k.to_be_bytes();
    let vlan = u16::from_be_bytes([b[0], b[1]]) & 0x0fff;
    (vlan, [b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[inline]
fn pack_val(port: u32, now: u32) -> u64 {
    (u64::from(port) << 32) | u64::from(now)
}

#[inline]
#[expect(clippy::cast_possible_truncation, reason = "splitting a packed u64")]
fn unpack_val(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

impl MacTable {
    /// A table for at most `max_entries` addresses (at least 1).
    pub fn new(max_entries: usize) -> Self {
        let max_entries = max_entries.max(1);
        let n = (max_entries * 2).next_power_of_two().max(64);
        let slots: Box<[Slot]> = (0..n).map(|_| Slot::default()).collect();
        Self {
            slots,
            mask: n - 1,
            max_entries,
            entries: AtomicUsize::new(0),
            moves: AtomicU64::new(0),
            oldest: AtomicU32::new(u32::MAX),
            // Random per process: a container cannot precompute addresses that collide with a
            // victim's probe window and keep it from being learned.
            hasher: crate::hash::state(),
            generation: Generation::default(),
        }
    }

    /// Changes of where addresses are (added, moved, deleted) so far. Read it before looking
    /// addresses up: while it stays the same, the lookups' results still hold (up to the races
    /// the module docs allow).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.0.load(Ordering::Acquire)
    }

    /// Marks a change (after making it).
    fn changed(&self) {
        self.generation.0.fetch_add(1, Ordering::AcqRel);
    }

    #[inline]
    fn start(&self, key: u64) -> usize {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "hash folded onto the index mask"
        )]
        let h = self.hasher.hash_one(key) as usize;
        h & self.mask
    }

    /// Port on which `mac` was last seen in `vlan`.
    #[inline]
    pub fn lookup(&self, vlan: u16, mac: &[u8; 6]) -> Option<u32> {
        let key = pack_key(vlan, mac);
        let mut i = self.start(key);
        for _ in 0..MAX_PROBE {
            let slot = &self.slots[i];
            let k = slot.key.load(Ordering::Acquire);
            if k == key {
                let v = slot.val.load(Ordering::Acquire);
                if slot.key.load(Ordering::Acquire) == key {
                    return Some(unpack_val(v).0);
                }
                return None;
            }
            if k == EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Records that `mac` was seen in `vlan` on `port` at `now` (seconds).
    pub fn learn(&self, vlan: u16, mac: &[u8; 6], port: u32, now: u32) -> Learned {
        let key = pack_key(vlan, mac);
        let start = self.start(key);
        // A claim can lose to another inserter taking the same free slot; the probe is then
        // repeated (a bounded number of times, so a contended slot cannot stall a worker).
        for _ in 0..CLAIM_ATTEMPTS {
            let mut free = None;
            let mut i = start;
            for _ in 0..MAX_PROBE {
                let slot = &self.slots[i];
                let k = slot.key.load(Ordering::Acquire);
                if k == key {
                    return self.refresh(slot, port, now);
                }
                if (k == EMPTY || k == TOMBSTONE) && free.is_none() {
                    free = Some((i, k));
                }
                if k == EMPTY {
                    break;
                }
                i = (i + 1) & self.mask;
            }
            let Some((idx, seen_key)) = free else {
                return Learned::Full;
            };
            if self.entries.fetch_add(1, Ordering::Relaxed) >= self.max_entries {
                self.entries.fetch_sub(1, Ordering::Relaxed);
                return Learned::Full;
            }
            let slot = &self.slots[idx];
            // Claim the slot, then write the value, then publish the key: a reader that sees
            // the key sees the value, and no other inserter can write into a claimed slot.
            if slot
                .key
                .compare_exchange(seen_key, RESERVED, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                self.entries.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            slot.val.store(pack_val(port, now), Ordering::Release);
            self.note_seen(now);
            slot.key.store(key, Ordering::SeqCst);
            self.dedupe(key, start);
            self.changed();
            return Learned::Added;
        }
        Learned::Full
    }

    fn refresh(&self, slot: &Slot, port: u32, now: u32) -> Learned {
        let old = slot.val.load(Ordering::Relaxed);
        let (old_port, seen) = unpack_val(old);
        if old_port != port {
            slot.val.store(pack_val(port, now), Ordering::Release);
            self.note_seen(now);
            self.moves.fetch_add(1, Ordering::Relaxed);
            self.changed();
            return Learned::Moved { from: old_port };
        }
        if seen != now {
            slot.val.store(pack_val(port, now), Ordering::Release);
            self.note_seen(now);
        }
        Learned::Refreshed
    }

    /// Keeps [`MacTable::age`]'s bound below `now`, just written as an entry's last-seen
    /// second. With the switch's clock that is never so (a pass leaves the bound behind every
    /// clock reading, [`AGE_SLACK`]): a read of a line that stays shared, no write.
    #[inline]
    fn note_seen(&self, now: u32) {
        if now < self.oldest.load(Ordering::Relaxed) {
            self.oldest.fetch_min(now, Ordering::AcqRel);
        }
    }

    /// Two workers learning the same new address at once can both find it absent and claim
    /// different slots (one saw the other's slot still `RESERVED`). After publishing, each
    /// inserter scans the probe window again and deletes every copy after the first. Publishing
    /// and scanning are sequentially consistent, so of two racing inserters at least one sees the
    /// other's key: no duplicate survives both scans.
    fn dedupe(&self, key: u64, start: usize) {
        let mut first = true;
        let mut i = start;
        for _ in 0..MAX_PROBE {
            let slot = &self.slots[i];
            let k = slot.key.load(Ordering::SeqCst);
            if k == key {
                if first {
                    first = false;
                } else if slot
                    .key
                    .compare_exchange(k, TOMBSTONE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.entries.fetch_sub(1, Ordering::Relaxed);
                }
            }
            if k == EMPTY {
                break;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Deletes every entry for which `pred(vlan, mac, port, last_seen)` is true; returns how many.
    /// Control thread only.
    pub fn remove_if(&self, mut pred: impl FnMut(u16, [u8; 6], u32, u32) -> bool) -> usize {
        let mut n = 0;
        for slot in self.slots.iter() {
            let k = slot.key.load(Ordering::Acquire);
            if k & VALID == 0 {
                continue;
            }
            let (vlan, mac) = unpack_key(k);
            let (port, seen) = unpack_val(slot.val.load(Ordering::Acquire));
            if pred(vlan, mac, port, seen)
                && slot
                    .key
                    .compare_exchange(k, TOMBSTONE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                self.entries.fetch_sub(1, Ordering::Relaxed);
                n += 1;
            }
        }
        if n > 0 {
            self.changed();
        }
        n
    }

    /// Forgets addresses not seen for more than `aging_secs` at `now`; returns how many.
    ///
    /// A pass over every slot only when an entry can be that old: the table keeps a second no
    /// live entry was last seen before (each pass sets it to the oldest survivor's, or
    /// [`AGE_SLACK`] before `now` if that is earlier), so with the default aging of 300 s the
    /// table is walked about once every 298 s instead of at every call (a table that never
    /// learned anything, never), with the same entries removed at the same calls. (A learn
    /// that ran more than [`AGE_SLACK`] behind the clock while a pass was walking past its
    /// slot can leave its entry until the next pass: late by at most that lag.)
    pub fn age(&self, now: u32, aging_secs: u32) -> usize {
        let before = self.oldest.load(Ordering::Acquire);
        if now.saturating_sub(before) <= aging_secs {
            return 0;
        }
        let mut survivors = u32::MAX;
        let n = self.remove_if(|_, _, _, seen| {
            let old = now.saturating_sub(seen) > aging_secs;
            if !old {
                survivors = survivors.min(seen);
            }
            old
        });
        let bound = survivors.min(now.saturating_sub(AGE_SLACK));
        // Only learns lower the bound: if one did during the pass, keep the lower of the two.
        if self
            .oldest
            .compare_exchange(before, bound, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.oldest.fetch_min(bound, Ordering::AcqRel);
        }
        n
    }

    /// Calls `f(vlan, mac, port, last_seen)` for every entry.
    pub fn for_each(&self, mut f: impl FnMut(u16, [u8; 6], u32, u32)) {
        for slot in self.slots.iter() {
            let k = slot.key.load(Ordering::Acquire);
            if k & VALID == 0 {
                continue;
            }
            let v = slot.val.load(Ordering::Acquire);
            if slot.key.load(Ordering::Acquire) != k {
                continue;
            }
            let (vlan, mac) = unpack_key(k);
            let (port, seen) = unpack_val(v);
            f(vlan, mac, port, seen);
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// True when no address is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Capacity (entries).
    pub fn capacity(&self) -> usize {
        self.max_entries
    }

    /// Moves detected since creation.
    pub fn moves(&self) -> u64 {
        self.moves.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];

    #[test]
    fn learned_mac_is_found_in_its_vlan_only() {
        let t = MacTable::new(16);
        assert_eq!(t.learn(10, &A, 3, 0), Learned::Added);
        assert_eq!(t.lookup(10, &A), Some(3));
        assert_eq!(t.lookup(20, &A), None);
        assert_eq!(t.lookup(10, &B), None);
        assert_eq!(t.learn(10, &A, 3, 1), Learned::Refreshed);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn learned_mac_moves_to_new_port() {
        let t = MacTable::new(16);
        t.learn(1, &A, 1, 0);
        assert_eq!(t.learn(1, &A, 2, 5), Learned::Moved { from: 1 });
        assert_eq!(t.lookup(1, &A), Some(2));
        assert_eq!(t.moves(), 1);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn the_generation_moves_when_an_address_comes_moves_or_goes_and_only_then() {
        let t = MacTable::new(16);
        let g0 = t.generation();
        assert_eq!(t.learn(1, &A, 1, 0), Learned::Added);
        let g1 = t.generation();
        assert!(g1 > g0);
        // Refreshes, lookups and misses change no address.
        assert_eq!(t.learn(1, &A, 1, 0), Learned::Refreshed);
        assert_eq!(t.learn(1, &A, 1, 7), Learned::Refreshed);
        assert_eq!(t.lookup(1, &A), Some(1));
        assert_eq!(t.lookup(1, &B), None);
        assert_eq!(t.generation(), g1);
        assert_eq!(t.learn(1, &A, 2, 8), Learned::Moved { from: 1 });
        let g2 = t.generation();
        assert!(g2 > g1);
        // A removal that removes nothing changes nothing; one that removes does.
        assert_eq!(t.age(8, 300), 0);
        assert_eq!(t.generation(), g2);
        assert_eq!(t.remove_if(|_, _, p, _| p == 2), 1);
        assert!(t.generation() > g2);
        // A full table adds nothing.
        let small = MacTable::new(1);
        small.learn(1, &A, 1, 0);
        let g = small.generation();
        assert_eq!(small.learn(1, &B, 1, 0), Learned::Full);
        assert_eq!(small.generation(), g);
    }

    #[test]
    fn aging_passes_skipped_by_the_oldest_bound_remove_what_a_full_pass_would() {
        let t = MacTable::new(16);
        // Nothing learned: nothing to remove at any time.
        assert_eq!(t.age(u32::MAX, 0), 0);
        t.learn(1, &A, 1, 0);
        t.learn(1, &B, 2, 100);
        t.learn(1, &C, 3, 100);
        assert_eq!(t.age(300, 300), 0);
        assert_eq!(t.age(301, 300), 1, "A, 301 s old");
        assert_eq!(t.lookup(1, &A), None);
        // The pass left the bound at the survivors' second: nothing is older than 300 s
        // until 401.
        assert_eq!(t.age(400, 300), 0);
        assert_eq!(t.lookup(1, &B), Some(2));
        // A refresh moves B on; the bound stays at 100, so 401 walks the table: C goes.
        assert_eq!(t.learn(1, &B, 2, 380), Learned::Refreshed);
        assert_eq!(t.age(401, 300), 1, "C, 301 s old");
        assert_eq!(t.lookup(1, &C), None);
        assert_eq!(t.lookup(1, &B), Some(2));
        assert_eq!(t.age(681, 300), 1, "B, 301 s old");
        assert!(t.is_empty());
        // A learn behind the clock (here second 10, after a pass at 1,000) lowers the bound,
        // and the next call removes it as a full pass would.
        assert_eq!(t.age(1_000, 300), 0);
        t.learn(1, &A, 1, 10);
        assert_eq!(t.age(1_001, 300), 1);
        assert_eq!(t.lookup(1, &A), None);
        // So does a move to another port at an older second.
        t.learn(1, &B, 1, 2_000);
        assert_eq!(t.age(2_100, 300), 0);
        assert_eq!(t.learn(1, &B, 2, 50), Learned::Moved { from: 1 });
        assert_eq!(t.age(2_101, 300), 1);
    }

    #[test]
    fn aged_entries_disappear_and_fresh_ones_stay() {
        let t = MacTable::new(16);
        t.learn(1, &A, 1, 0);
        t.learn(1, &B, 2, 100);
        assert_eq!(t.age(400, 300), 1);
        assert_eq!(t.lookup(1, &A), None);
        assert_eq!(t.lookup(1, &B), Some(2));
        assert_eq!(t.len(), 1);
        // The deleted slot is reusable.
        assert_eq!(t.learn(1, &A, 3, 401), Learned::Added);
        assert_eq!(t.lookup(1, &A), Some(3));
    }

    #[test]
    fn table_never_exceeds_its_capacity() {
        let t = MacTable::new(100);
        let mut full = 0;
        for i in 0..1000u32 {
            let b = i.to_be_bytes();
            let mac = [2, 0, b[0], b[1], b[2], b[3]];
            if t.learn(1, &mac, 1, 0) == Learned::Full {
                full += 1;
            }
        }
        assert_eq!(t.len(), 100);
        assert_eq!(full, 900);
        let mut n = 0;
        t.for_each(|_, _, _, _| n += 1);
        assert_eq!(n, 100);
    }

    #[test]
    fn flush_by_port_removes_only_that_port() {
        let t = MacTable::new(16);
        t.learn(1, &A, 1, 0);
        t.learn(1, &B, 2, 0);
        assert_eq!(t.remove_if(|_, _, p, _| p == 2), 1);
        assert_eq!(t.lookup(1, &A), Some(1));
        assert_eq!(t.lookup(1, &B), None);
    }

    #[test]
    fn concurrent_learners_and_readers_agree() {
        let t = std::sync::Arc::new(MacTable::new(4096));
        let hs: Vec<_> = (0..4u32)
            .map(|w| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u32 {
                        let b = i.to_be_bytes();
                        let mac = [2, 0, b[0], b[1], b[2], b[3]];
                        let r = t.learn(1, &mac, w + 1, 0);
                        // While another learner's claim of the slot is in flight the address
                        // may be briefly unknown (the frame floods); it is never a wrong port.
                        let found = t.lookup(1, &mac);
                        assert!(found.is_none_or(|p| (1..=4).contains(&p)), "{found:?}");
                        if r != Learned::Full {
                            assert!(found.is_some(), "learned address found at once");
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        for i in 0..1000u32 {
            let b = i.to_be_bytes();
            let mac = [2, 0, b[0], b[1], b[2], b[3]];
            assert!(t.lookup(1, &mac).is_some_and(|p| (1..=4).contains(&p)));
        }
        // Racing inserters of one address leave exactly one copy.
        assert_eq!(t.len(), 1000);
        let mut n = 0;
        t.for_each(|_, _, _, _| n += 1);
        assert_eq!(n, 1000);
    }
}
