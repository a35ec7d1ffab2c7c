//! Fuzz target bodies for vswitch, as plain functions.
//!
//! Each body takes the fuzzer's bytes, drives one part of the code with them and **asserts
//! invariants** (a panic is a finding), so the same functions serve three runners:
//!
//! - `cargo fuzz run <target> --features libfuzzer` (coverage-guided; `fuzz_targets/*.rs` are
//!   one-line `libfuzzer_sys::fuzz_target!` wrappers around these functions);
//! - `cargo test -p vswitch-fuzz` (`tests/replay.rs`: replays `corpus/<target>/` and
//!   `regressions/<target>/`, then a fixed-seed pseudo-random run and mutations of the seeds);
//! - anyone who wants to reproduce a crasher in a debugger: call the body on the file's bytes.
//!
//! | target | drives | asserts |
//! |---|---|---|
//! | [`parse_frame`] | `datapath::flow::extract` and the `datapath::wire` views (`new_checked` along the header chain, into VXLAN) | offsets in `Layout` inside the frame, extraction deterministic and independent of `in_port`, VLAN id ≤ 4095, the key agrees with the wire views wherever both parse |
//! | [`mac_table_ops`] | `datapath::l2::MacTable`: learn, lookup, age, remove, for_each | `len() ≤ capacity()`, every result equals a `HashMap` reference model (exact while the table is not full) |
//! | [`control_decode`] | `control::proto`: frame `peek`, `decode_request`, `decode_reply` | never panics, frame status consistent with the bytes, decoded messages survive encode → decode unchanged |
//! | [`offload_segment`] | a virtio-net header + frame through `tun::decode_vnet_hdr` (UDP-tunnel marking), `tun::encode_tnl_vnet_hdr` and `offload::segment` | marking idempotent, tunnel offsets in order inside the frame, segments counted and no longer than the input, nothing emitted on an error, every segment parses with the super-frame's flow |
//!
//! See `docs/fuzzing.md` for the commands and the corpus layout.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    reason = "fuzz bodies: a failed unwrap is a finding"
)]

mod control_decode;
mod mac_table;
mod offload_segment;
mod parse_frame;

pub use control_decode::control_decode;
pub use mac_table::mac_table_ops;
pub use offload_segment::{fix_ipv4_len, offload_segment, udp_tunnel, with_vnet_hdr};
pub use parse_frame::parse_frame;

/// The names of the fuzz targets, as directories under `corpus/` and `regressions/`.
pub const TARGETS: [&str; 4] = [
    "parse_frame",
    "mac_table_ops",
    "control_decode",
    "offload_segment",
];

/// Runs the body of target `name` on `data`; false when there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "parse_frame" => parse_frame(data),
        "mac_table_ops" => mac_table_ops(data),
        "control_decode" => control_decode(data),
        "offload_segment" => offload_segment(data),
        _ => return false,
    }
    true
}

pub mod pcap {
    //! A reader of classic pcap files (microsecond or nanosecond, either byte order), enough to
    //! turn a capture into seed files.

    /// Why a file is not a pcap this reader understands.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum PcapError {
        /// Shorter than the 24-byte global header, or a record runs past the end.
        Truncated,
        /// The magic number is not a classic pcap one.
        BadMagic,
        /// The link type is not Ethernet (1).
        NotEthernet,
    }

    /// The frames of a classic Ethernet pcap file, in order.
    ///
    /// # Errors
    /// [`PcapError`] when the file is not a complete classic Ethernet capture.
    pub fn frames(file: &[u8]) -> Result<Vec<&[u8]>, PcapError> {
        let header = file.get(..24).ok_or(PcapError::Truncated)?;
        let magic = [header[0], header[1], header[2], header[3]];
        let little = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
            [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
            _ => return Err(PcapError::BadMagic),
        };
        let u32_at = |b: &[u8], at: usize| {
            let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            if little {
                u32::from_le_bytes(v)
            } else {
                u32::from_be_bytes(v)
            }
        };
        if u32_at(header, 20) != 1 {
            return Err(PcapError::NotEthernet);
        }
        let mut out = Vec::new();
        let mut at = 24;
        while at < file.len() {
            let rec = file.get(at..at + 16).ok_or(PcapError::Truncated)?;
            let incl = usize::try_from(u32_at(rec, 8)).map_err(|_| PcapError::Truncated)?;
            at += 16;
            out.push(file.get(at..at + incl).ok_or(PcapError::Truncated)?);
            at += incl;
        }
        Ok(out)
    }
}
