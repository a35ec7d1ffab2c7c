//! Support code for the criterion benches of vswitch (`benches/*.rs`) and the zero-allocation
//! checks (`tests/no_alloc.rs`).
//!
//! - [`alloc`] — a counting global allocator (the idea of OPTE's `bench/src/alloc.rs`): a bench
//!   or test binary installs it and measures how many allocations a piece of code makes.
//! - [`frames`] — the input frames of the benches, built once outside the measured loops.
//! - [`pipeline`] — switches with mem ports and MAC addresses learned, ready to forward
//!   batches: inline (no worker thread, deterministic) and threaded.
//! - [`scenarios`] — the measured scenarios, built once and shared by the benches (time), the
//!   no-alloc test (allocations) and the `icount` binary (instructions per frame).
//! - [`icount`] — running scenarios under callgrind and reading instruction counts.
//!
//! How to run the benches and the figures measured so far: `docs/performance.md`.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    reason = "bench support: setup failures abort the bench"
)]

pub mod alloc;
pub mod frames;
pub mod icount;
pub mod pipeline;
pub mod scenarios;
