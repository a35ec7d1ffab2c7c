//! Counting allocations (OPTE's `bench/src/alloc.rs` idea).
//!
//! The counter is [`stats_alloc`]'s instrumented system allocator: every allocation of the
//! process, on any thread, is counted. A bench or test binary installs it with
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: &vswitch_benches::alloc::Counting = &vswitch_benches::alloc::COUNTING;
//!
//! fn main() {
//!     let (v, n) = vswitch_benches::alloc::measure(|| vec![0u8; 16]);
//!     assert_eq!(v.len(), 16);
//!     assert!(n.allocs >= 1);
//! }
//! ```
//!
//! and then wraps the code under test in [`measure`]. Binaries that do not install it still
//! link this module; [`installed`] tells whether the counts mean anything.
//!
//! The counts are process-wide: measure in a binary (or a single test) where no other thread
//! allocates meanwhile, or where those threads are part of what is measured (a switch's workers).

use std::alloc::System;
use std::hint::black_box;

pub use stats_alloc::INSTRUMENTED_SYSTEM as COUNTING;

/// The counting allocator type, for the `#[global_allocator]` static.
pub type Counting = stats_alloc::StatsAlloc<System>;

/// Allocations made while some code ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocCount {
    /// Calls to `alloc`, `alloc_zeroed` and `realloc`.
    pub allocs: u64,
    /// Bytes requested by them (growth only, for `realloc`).
    pub bytes: u64,
}

impl AllocCount {
    /// Allocations per unit of work (per frame, per batch).
    pub fn per(&self, units: u64) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
        let r = self.allocs as f64 / units.max(1) as f64;
        r
    }
}

fn snapshot() -> (u64, u64) {
    let s = COUNTING.stats();
    let n = s.allocations + s.reallocations;
    (
        u64::try_from(n).unwrap_or(u64::MAX),
        u64::try_from(s.bytes_allocated).unwrap_or(u64::MAX),
    )
}

/// Runs `f` and returns its result with the allocations made (by every thread) meanwhile.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, AllocCount) {
    let (a0, b0) = snapshot();
    let r = f();
    let (a1, b1) = snapshot();
    (
        r,
        AllocCount {
            allocs: a1.saturating_sub(a0),
            bytes: b1.saturating_sub(b0),
        },
    )
}

/// True when [`COUNTING`] is this binary's global allocator (an allocation moves the counter).
pub fn installed() -> bool {
    let ((), n) = measure(|| drop(black_box(Box::new(black_box(7u64)))));
    n.allocs > 0
}

/// Runs `f` once to warm up, then once measured, and prints the allocations per unit of work
/// (`units` frames or lookups per call) under the bench case's name. Returns the count.
///
/// Benches call this before measuring time, so that each case also reports its allocations
/// (expected: zero on every hot path).
pub fn report<R>(case: &str, units: u64, mut f: impl FnMut() -> R) -> AllocCount {
    black_box(f());
    let ((), n) = measure(|| {
        black_box(f());
    });
    if installed() {
        eprintln!(
            "{case}: {} allocations per unit ({} in {units})",
            n.per(units),
            n.allocs
        );
    } else {
        eprintln!("{case}: allocations not counted (counting allocator not installed)");
    }
    n
}
