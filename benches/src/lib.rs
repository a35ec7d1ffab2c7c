//! Support code for the criterion benches of vswitch (`benches/*.rs`) and the zero-allocation
//! checks (`tests/no_alloc.rs`).
//!
//! - [`alloc`] — a counting global allocator (the idea of OPTE's `bench/src/alloc.rs`): a bench
//!   or test binary installs it and measures how many allocations a piece of code makes.
//! - [`frames`] — the input frames of the benches, built once outside the measured loops.
//! - [`pipeline`] — a running [`datapath::switch::Switch`] with mem ports, MAC addresses
//!   learned, ready to forward batches (shared by the pipeline bench and the no-alloc test).
//!
//! How to run the benches and the figures measured so far: `docs/performance.md`.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    reason = "bench support: setup failures abort the bench"
)]

pub mod alloc;
pub mod frames;
pub mod pipeline;
