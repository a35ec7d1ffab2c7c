//! `pktgen`: a traffic generator and sink for the test hosts, which lack the kernel's
//! `/proc/net/pktgen`. See `docs/pktgen.md` for usage, the frame layout and measured rates.
//!
//! - [`frame`]: per-flow header templates, the sequence/timestamp payload, checksums.
//! - [`tx`]: senders over AF_XDP (default) and AF_PACKET (`sendmmsg` or a `PACKET_TX_RING`),
//!   token-bucket pacing ([`pace`]).
//! - [`rx`] and [`stats`]: receivers and the loss/reordering/latency accounting ([`hist`]).
//! - [`sys`]: the only `unsafe` (reading `CLOCK_MONOTONIC`).
#![deny(unsafe_code)]

pub mod args;
pub mod frame;
pub mod hist;
pub mod pace;
pub mod rx;
pub mod stats;
pub mod sys;
pub mod tx;
