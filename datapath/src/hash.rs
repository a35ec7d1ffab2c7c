//! Hash seeds of the datapath's tables (slow path: read once when a table is built).
//!
//! Every hashed table of the datapath (MAC table, exact-match and megaflow caches, classifier
//! buckets, flow tables) gets its hasher from one crate-internal function: seeded at random per process, so an
//! outsider cannot pick keys that collide. Instruction counts (`benches` `icount`) need the same
//! collisions in every run; [`use_fixed_seeds`] makes tables built afterwards use fixed seeds.
//! Measurement only: never call it in the daemon.
//!
//! Thread-safety: one relaxed atomic flag, read when a table is created.

use std::sync::atomic::{AtomicBool, Ordering};

static FIXED: AtomicBool = AtomicBool::new(false);

/// Makes every table built from now on hash with fixed seeds (deterministic collisions, for
/// reproducible measurements). Tables built earlier keep their seeds.
pub fn use_fixed_seeds() {
    FIXED.store(true, Ordering::Relaxed);
}

/// Whether [`use_fixed_seeds`] was called.
pub fn fixed_seeds() -> bool {
    FIXED.load(Ordering::Relaxed)
}

/// The hasher for a new table: random seeds, or fixed ones after [`use_fixed_seeds`].
pub(crate) fn state() -> ahash::RandomState {
    if fixed_seeds() {
        ahash::RandomState::with_seeds(
            0x243f_6a88_85a3_08d3,
            0x1319_8a2e_0370_7344,
            0xa409_3822_299f_31d0,
            0x082e_fa98_ec4e_6c89,
        )
    } else {
        ahash::RandomState::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fixed_seeds_hash_alike_and_random_ones_differ() {
        let a = super::state().hash_one(42u64);
        let b = super::state().hash_one(42u64);
        // Random per table (the process-wide part is shared, the per-table part is not).
        assert_ne!(a, b);
        super::use_fixed_seeds();
        let c = super::state().hash_one(42u64);
        let d = super::state().hash_one(42u64);
        assert_eq!(c, d);
    }
}
