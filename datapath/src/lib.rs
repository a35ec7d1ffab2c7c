//! vswitch datapath: everything a packet touches.
//!
//! Layer map (each module may use only those above it):
//! - [`wire`] — zero-copy header views and checksums (hot path).
//! - [`buf`] — frame descriptors and batches of up to [`buf::BATCH_SIZE`] (hot path).
//! - [`flow`] — one-pass flow key extraction; malformed frames become a [`stats::DropReason`].
//! - [`hash`] — the hash seeds of every table (random; fixed on request for measurements).
//! - [`classifier`] — slow path: OpenFlow-like tables, tuple-space search, consulted-field masks.
//! - [`offload`] — checksum completion and software segmentation for ports without offloads.
//! - [`l2`] — the MAC learning table: per VLAN, bounded, aging, move detection, lock-free reads.
//! - [`port`] — the port trait and its backends (AF_XDP, TAP, AF_PACKET, mem).
//! - [`worker`] — pinned worker threads running the batch pipeline.
//! - [`switch`] — the handle the control plane uses: add/remove ports, stats, MAC table.
//! - [`sys`] — the only place with `unsafe`: syscalls, rings, mmap, bpf.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod buf;
pub mod cache;
pub mod classifier;
pub mod flow;
pub mod flowhash;
pub mod hash;
pub mod l2;
pub mod notify;
pub mod offload;
pub mod ofp;
pub mod port;
mod stamps;
pub mod stats;
pub mod switch;
pub mod sys;
pub mod wire;
pub mod worker;
