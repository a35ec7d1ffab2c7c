//! Zero-copy header views and checksums (hot path).
//!
//! Each protocol module defines a *view* — a struct that holds only a buffer
//! (`Packet<T: AsRef<[u8]>>`, `Frame<T>` for Ethernet) and reads or writes header fields in
//! place — and, for the headers tests and tools build frames from, an owned *representation*
//! (`Repr`) with `parse` and `emit`. Views never copy and never allocate; a read-only view over
//! `&[u8]` and a writable one over `&mut [u8]` are the same type with different capabilities:
//! getters live in the `T: AsRef<[u8]>` block, setters (`set_*`) and `payload_mut()` in the
//! `T: AsRef<[u8]> + AsMut<[u8]>` block.
//!
//! # The panic contract
//!
//! - `new_unchecked` wraps any buffer and checks nothing. Accessors of such a view may panic
//!   when the buffer is too short or a length field points outside it.
//! - `check_len` validates everything the accessors rely on (buffer length, header length
//!   fields, and — where the view only makes sense for one format — the version or format
//!   fields); `new_checked` is `new_unchecked` followed by `check_len`. **After `new_checked`
//!   (or `check_len`) succeeds, no accessor panics**, whatever the bytes are. Untrusted input
//!   (every received frame) must go through `new_checked`.
//! - Setters that change a length field (`set_ihl`, `set_total_len`, `set_header_len`,
//!   `set_len`, `set_payload_len`) can invalidate that guarantee; their docs say so. A view
//!   that is being *emitted* into should be created with `new_unchecked` over a buffer of
//!   exactly the size the header and payload need (`Repr::buffer_len()`).
//! - Setters never panic on a view that passed `check_len` as long as they are not fed values
//!   that break the length invariants.
//!
//! The contract is exercised by the tests at the end of this file, which replay real kernel
//! frames (`datapath/testdata/kernel-traffic.pcap`), truncate each of them at every length and
//! corrupt their length fields.
//!
//! # Errors
//!
//! Parsing fails with a [`ParseError`]: a small `Copy` enum with no payload, so that the hot
//! path can count it ([`ParseError::drop_reason`]) without allocating or formatting.
//!
//! # Thread-safety
//!
//! Pure functions over borrowed bytes; views are `Send`/`Sync` when their buffer is.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vxlan;

use core::fmt;

pub use self::arp::{Operation as ArpOperation, Packet as ArpPacket, Repr as ArpRepr};
pub use self::ethernet::{
    EtherType, Frame as EthernetFrame, Mac, MacParseError, Repr as EthernetRepr,
};
pub use self::icmp::Packet as IcmpPacket;
pub use self::ipv4::{Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use self::ipv6::{
    FragmentInfo as Ipv6FragmentInfo, Packet as Ipv6Packet, Repr as Ipv6Repr,
    UpperLayer as Ipv6UpperLayer,
};
pub use self::tcp::{Packet as TcpPacket, TcpFlags};
pub use self::udp::{Packet as UdpPacket, Repr as UdpRepr};
pub use self::vlan::{Packet as VlanPacket, Repr as VlanRepr};
pub use self::vxlan::{Packet as VxlanPacket, Repr as VxlanRepr};

use crate::stats::DropReason;

/// Why a header could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The buffer is shorter than the header (or than a header length field says).
    Truncated,
    /// A length field disagrees with the buffer or with another length field.
    BadLength,
    /// The version field is not the one this view parses (IPv4 view on an IPv6 packet, …).
    BadVersion,
    /// A field holds an invalid or unsupported value (IPv4 IHL < 5, TCP data offset < 5, …).
    BadHeader,
    /// A checksum does not verify.
    BadChecksum,
}

impl ParseError {
    /// The drop counter a frame failing with this error is counted under.
    #[inline]
    #[must_use]
    pub const fn drop_reason(self) -> DropReason {
        match self {
            Self::Truncated => DropReason::Truncated,
            Self::BadLength => DropReason::BadLength,
            Self::BadVersion | Self::BadHeader | Self::BadChecksum => DropReason::BadHeader,
        }
    }

    /// A short lowercase description.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Truncated => "truncated header",
            Self::BadLength => "length field disagrees with the buffer",
            Self::BadVersion => "unexpected version",
            Self::BadHeader => "invalid header field",
            Self::BadChecksum => "bad checksum",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for ParseError {}

impl From<ParseError> for DropReason {
    #[inline]
    fn from(e: ParseError) -> Self {
        e.drop_reason()
    }
}

/// An IP protocol number (IPv4 `protocol`, IPv6 `next header`), IANA "Assigned Internet
/// Protocol Numbers". The associated constants can be used as patterns.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// IPv6 hop-by-hop options extension header.
    pub const HOP_BY_HOP: Self = Self(0);
    /// ICMP for IPv4 (RFC 792).
    pub const ICMP: Self = Self(1);
    /// TCP (RFC 9293).
    pub const TCP: Self = Self(6);
    /// UDP (RFC 768).
    pub const UDP: Self = Self(17);
    /// IPv6 routing extension header.
    pub const IPV6_ROUTING: Self = Self(43);
    /// IPv6 fragment extension header.
    pub const IPV6_FRAGMENT: Self = Self(44);
    /// ICMP for IPv6 (RFC 4443).
    pub const ICMPV6: Self = Self(58);
    /// IPv6 "no next header".
    pub const IPV6_NO_NEXT: Self = Self(59);
    /// IPv6 destination options extension header.
    pub const IPV6_DEST_OPTS: Self = Self(60);
}

impl From<u8> for IpProtocol {
    #[inline]
    fn from(v: u8) -> Self {
        Self(v)
    }
}

impl From<IpProtocol> for u8 {
    #[inline]
    fn from(v: IpProtocol) -> Self {
        v.0
    }
}

impl fmt::Debug for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::HOP_BY_HOP => f.write_str("hopopt"),
            Self::ICMP => f.write_str("icmp"),
            Self::TCP => f.write_str("tcp"),
            Self::UDP => f.write_str("udp"),
            Self::IPV6_ROUTING => f.write_str("ipv6-route"),
            Self::IPV6_FRAGMENT => f.write_str("ipv6-frag"),
            Self::ICMPV6 => f.write_str("icmpv6"),
            Self::IPV6_NO_NEXT => f.write_str("ipv6-nonxt"),
            Self::IPV6_DEST_OPTS => f.write_str("ipv6-opts"),
            Self(other) => write!(f, "proto{other}"),
        }
    }
}

/// Big-endian field access shared by the views. Callers index only after `check_len`.
pub(crate) mod bytes {
    /// A byte range of a header field.
    pub(crate) type Field = core::ops::Range<usize>;

    /// Reads a big-endian `u16` at `at`.
    #[inline]
    pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    /// Reads a big-endian `u32` at `at`.
    #[inline]
    pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// Writes a big-endian `u16` at `at`.
    #[inline]
    pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// Writes a big-endian `u32` at `at`.
    #[inline]
    pub(crate) fn write_u32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Copies a fixed-size array out of `b[range]`.
    #[inline]
    pub(crate) fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&b[at..at + N]);
        out
    }
}

#[cfg(test)]
pub(crate) mod pcap {
    //! A tiny reader of classic pcap files (little-endian, microsecond, linktype 1), for tests.

    /// Splits a classic little-endian Ethernet pcap file into its frames.
    pub(crate) fn frames(file: &[u8]) -> Vec<&[u8]> {
        let le32 = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
        assert!(file.len() >= 24, "pcap file shorter than its header");
        assert_eq!(le32(0), 0xa1b2_c3d4, "not a little-endian microsecond pcap");
        assert_eq!(le32(20), 1, "linktype is not Ethernet");
        let mut out = Vec::new();
        let mut at = 24;
        while at < file.len() {
            assert!(at + 16 <= file.len(), "truncated pcap record header");
            let incl = le32(at + 8) as usize;
            let orig = le32(at + 12) as usize;
            assert_eq!(incl, orig, "capture was snapped");
            at += 16;
            out.push(&file[at..at + incl]);
            at += incl;
        }
        out
    }

    /// The kernel-captured fixture frames.
    pub(crate) fn kernel_traffic() -> Vec<Vec<u8>> {
        let file = include_bytes!("../../testdata/kernel-traffic.pcap");
        frames(file).into_iter().map(<[u8]>::to_vec).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    /// What a successful walk of a header chain found.
    #[derive(Debug, Default)]
    struct Walk {
        /// Bytes of the frame that the headers' length fields claim (the frame may be longer).
        claimed: usize,
        /// Protocols seen, outermost first.
        seen: Vec<&'static str>,
        /// IPv4 header and ICMP checksums that did not verify.
        bad_checksums: usize,
        /// VXLAN headers without the I (valid VNI) flag.
        vxlan_no_vni: usize,
    }

    /// Parses `frame` along its header chain with `new_checked` only, as the datapath would.
    fn walk(frame: &[u8], depth: usize, w: &mut Walk) -> Result<(), ParseError> {
        let eth = EthernetFrame::new_checked(frame)?;
        w.seen.push("eth");
        let mut ty = eth.ethertype();
        let mut l3 = eth.payload();
        let mut off = ethernet::HEADER_LEN;
        let mut tags = 0;
        while ty == EtherType::VLAN || ty == EtherType::QINQ {
            tags += 1;
            if tags > 2 {
                return Err(ParseError::BadHeader);
            }
            let tag = VlanPacket::new_checked(l3)?;
            w.seen.push("vlan");
            ty = tag.ethertype();
            l3 = tag.into_payload();
            off += vlan::HEADER_LEN;
        }
        w.claimed = w.claimed.max(off);
        match ty {
            EtherType::ARP => {
                let arp = ArpPacket::new_checked(l3)?;
                w.seen.push("arp");
                ArpRepr::parse(&arp)?;
                w.claimed = w.claimed.max(off + arp::HEADER_LEN);
                Ok(())
            }
            EtherType::IPV4 => {
                let ip = Ipv4Packet::new_checked(l3)?;
                w.seen.push("ipv4");
                w.bad_checksums += usize::from(!ip.verify_checksum());
                w.claimed = w.claimed.max(off + usize::from(ip.total_len()));
                if ip.frag_offset() != 0 {
                    return Ok(());
                }
                let more = ip.more_frags();
                let l4 = ip.into_payload();
                l4_walk(ip_proto_of_v4(l3), l4, Addrs::V4, more, depth, w)
            }
            EtherType::IPV6 => {
                let ip = Ipv6Packet::new_checked(l3)?;
                w.seen.push("ipv6");
                w.claimed = w
                    .claimed
                    .max(off + ipv6::HEADER_LEN + usize::from(ip.payload_len()));
                let upper = ip.upper_layer()?;
                let (src, dst) = (ip.src_addr(), ip.dst_addr());
                let packet = ip.into_inner();
                let end =
                    ipv6::HEADER_LEN + usize::from(Ipv6Packet::new_unchecked(packet).payload_len());
                if let Some(frag) = upper.fragment {
                    w.seen.push("ipv6-frag");
                    if frag.offset != 0 {
                        return Ok(());
                    }
                    // A first fragment: the upper-layer header is (at least partly) here.
                    return l4_walk(
                        upper.protocol,
                        &packet[upper.offset..end],
                        Addrs::V6(src, dst),
                        frag.more,
                        depth,
                        w,
                    );
                }
                l4_walk(
                    upper.protocol,
                    &packet[upper.offset..end],
                    Addrs::V6(src, dst),
                    false,
                    depth,
                    w,
                )
            }
            _ => Ok(()),
        }
    }

    fn ip_proto_of_v4(l3: &[u8]) -> IpProtocol {
        Ipv4Packet::new_unchecked(l3).protocol()
    }

    #[derive(Clone, Copy)]
    enum Addrs {
        V4,
        V6(Ipv6Addr, Ipv6Addr),
    }

    fn l4_walk(
        proto: IpProtocol,
        l4: &[u8],
        addrs: Addrs,
        fragmented: bool,
        depth: usize,
        w: &mut Walk,
    ) -> Result<(), ParseError> {
        match proto {
            IpProtocol::TCP => {
                let tcp = TcpPacket::new_checked(l4)?;
                w.seen.push("tcp");
                let _ = (tcp.src_port(), tcp.seq_number(), tcp.flags(), tcp.options());
                Ok(())
            }
            IpProtocol::UDP => {
                let udp = UdpPacket::new_checked(l4)?;
                w.seen.push("udp");
                if udp.dst_port() == vxlan::PORT && depth == 0 && !fragmented {
                    let vx = VxlanPacket::new_checked(udp.payload())?;
                    w.seen.push("vxlan");
                    w.vxlan_no_vni += usize::from(!vx.has_vni());
                    let mut inner = Walk::default();
                    walk(vx.payload(), depth + 1, &mut inner)?;
                    w.seen.extend(inner.seen);
                    w.bad_checksums += inner.bad_checksums;
                    w.vxlan_no_vni += inner.vxlan_no_vni;
                }
                Ok(())
            }
            IpProtocol::ICMP => {
                let icmp = IcmpPacket::new_checked(l4)?;
                w.seen.push("icmp");
                if !fragmented {
                    w.bad_checksums += usize::from(!icmp.verify_checksum_v4());
                }
                Ok(())
            }
            IpProtocol::ICMPV6 => {
                let icmp = IcmpPacket::new_checked(l4)?;
                w.seen.push("icmpv6");
                if let (false, Addrs::V6(s, d)) = (fragmented, addrs) {
                    w.bad_checksums += usize::from(!icmp.verify_checksum_v6(&s, &d));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    #[test]
    fn parse_errors_map_to_existing_drop_reasons() {
        assert_eq!(ParseError::Truncated.drop_reason(), DropReason::Truncated);
        assert_eq!(ParseError::BadLength.drop_reason(), DropReason::BadLength);
        assert_eq!(ParseError::BadVersion.drop_reason(), DropReason::BadHeader);
        assert_eq!(ParseError::BadHeader.drop_reason(), DropReason::BadHeader);
        assert_eq!(ParseError::BadChecksum.drop_reason(), DropReason::BadHeader);
        assert_eq!(
            DropReason::from(ParseError::BadLength),
            DropReason::BadLength
        );
        assert_eq!(ParseError::BadChecksum.to_string(), "bad checksum");
    }

    #[test]
    fn ip_protocols_print_their_names() {
        assert_eq!(IpProtocol::TCP.to_string(), "tcp");
        assert_eq!(format!("{:?}", IpProtocol(253)), "proto253");
        assert_eq!(u8::from(IpProtocol::from(17)), 17);
    }

    #[test]
    fn every_kernel_frame_parses_along_its_header_chain() {
        let frames = pcap::kernel_traffic();
        assert_eq!(frames.len(), 69);
        let mut seen = std::collections::BTreeSet::new();
        for (i, f) in frames.iter().enumerate() {
            let mut w = Walk::default();
            walk(f, 0, &mut w).unwrap_or_else(|e| panic!("frame {}: {e:?}", i + 1));
            assert!(w.claimed <= f.len(), "frame {}", i + 1);
            assert_eq!(
                w.bad_checksums,
                0,
                "frame {}: kernel IP/ICMP checksums are complete",
                i + 1
            );
            assert_eq!(w.vxlan_no_vni, 0, "frame {}: VXLAN carries a VNI", i + 1);
            seen.extend(w.seen);
        }
        for proto in [
            "eth",
            "arp",
            "ipv4",
            "ipv6",
            "ipv6-frag",
            "tcp",
            "udp",
            "icmp",
            "icmpv6",
            "vxlan",
        ] {
            assert!(seen.contains(proto), "fixture has no {proto} frame");
        }
    }

    #[test]
    fn kernel_frames_truncated_at_any_length_fail_cleanly() {
        for (i, f) in pcap::kernel_traffic().iter().enumerate() {
            let mut full = Walk::default();
            walk(f, 0, &mut full).unwrap();
            for len in 0..f.len() {
                let r = walk(&f[..len], 0, &mut Walk::default());
                if len < full.claimed {
                    assert!(r.is_err(), "frame {} cut at {len} parsed", i + 1);
                }
            }
        }
    }

    #[test]
    fn kernel_frames_with_vlan_tags_inserted_still_parse() {
        for f in pcap::kernel_traffic() {
            for tpids in [&[0x8100u16][..], &[0x88a8, 0x8100]] {
                let mut tagged = f[..12].to_vec();
                for (n, tpid) in tpids.iter().enumerate() {
                    tagged.extend_from_slice(&tpid.to_be_bytes());
                    tagged.extend_from_slice(
                        &(0x2000u16 | (100 + u16::try_from(n).unwrap())).to_be_bytes(),
                    );
                }
                tagged.extend_from_slice(&f[12..]);
                let mut w = Walk::default();
                walk(&tagged, 0, &mut w).unwrap();
                assert_eq!(w.seen.iter().filter(|s| **s == "vlan").count(), tpids.len());
            }
        }
    }

    /// Offsets of the length fields of the outer headers of `f`, with the width of each.
    fn length_fields(f: &[u8]) -> Vec<(usize, usize)> {
        let mut out = vec![];
        let l3 = 14;
        match u16::from_be_bytes([f[12], f[13]]) {
            0x0800 => {
                out.push((l3, 1)); // version + IHL
                out.push((l3 + 2, 2)); // total length
                let ihl = usize::from(f[l3] & 0x0f) * 4;
                let l4 = l3 + ihl;
                let frag = u16::from_be_bytes([f[l3 + 6], f[l3 + 7]]) & 0x1fff;
                match f[l3 + 9] {
                    6 if frag == 0 => out.push((l4 + 12, 1)),
                    17 if frag == 0 => out.push((l4 + 4, 2)),
                    _ => {}
                }
            }
            0x86dd => {
                out.push((l3, 1));
                out.push((l3 + 4, 2));
                if f[l3 + 6] == 0 || f[l3 + 6] == 44 {
                    out.push((l3 + 41, 1)); // extension header length / fragment reserved
                }
            }
            0x0806 => {
                out.push((l3 + 4, 1));
                out.push((l3 + 5, 1));
            }
            _ => {}
        }
        out
    }

    #[test]
    fn kernel_frames_with_corrupted_length_fields_never_panic() {
        let mut errors = 0;
        for f in pcap::kernel_traffic() {
            for (at, width) in length_fields(&f) {
                for value in [
                    0u16, 1, 4, 5, 7, 8, 0x0f, 0x10, 0x45, 0x7f, 0x80, 0xff, 0x100, 0xffff,
                ] {
                    let mut g = f.clone();
                    if width == 1 {
                        g[at] = value.to_be_bytes()[1];
                    } else {
                        g[at..at + 2].copy_from_slice(&value.to_be_bytes());
                    }
                    if walk(&g, 0, &mut Walk::default()).is_err() {
                        errors += 1;
                    }
                }
            }
        }
        assert!(
            errors > 500,
            "corrupted length fields should be rejected ({errors})"
        );
    }

    #[test]
    fn specific_length_corruptions_return_the_expected_error() {
        let frames = pcap::kernel_traffic();
        // Frame 50: TCP SYN over IPv4.
        let syn = &frames[49];
        let mut g = syn.clone();
        g[14] = 0x44;
        assert_eq!(
            walk(&g, 0, &mut Walk::default()).unwrap_err(),
            ParseError::BadHeader
        );
        let mut g = syn.clone();
        g[14] = 0x65;
        assert_eq!(
            walk(&g, 0, &mut Walk::default()).unwrap_err(),
            ParseError::BadVersion
        );
        let mut g = syn.clone();
        g[16..18].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(
            walk(&g, 0, &mut Walk::default()).unwrap_err(),
            ParseError::BadLength
        );
        let mut g = syn.clone();
        g[16..18].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            walk(&g, 0, &mut Walk::default()).unwrap_err(),
            ParseError::BadLength
        );
        let mut g = syn.clone();
        g[34 + 12] = 0x40;
        assert_eq!(
            walk(&g, 0, &mut Walk::default()).unwrap_err(),
            ParseError::BadHeader
        );
        let mut g = syn.clone();
        g[34 + 12] = 0xf0;
        assert_eq!(
            walk(&g, 0, &mut Walk::default()).unwrap_err(),
            ParseError::Truncated
        );
        // Frame 60: UDP over IPv4.
        let udp = &frames[59];
        let mut g = udp.clone();
        g[34 + 4..34 + 6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            walk(&g, 0, &mut Walk::default()).unwrap_err(),
            ParseError::BadLength
        );
        let mut g = udp.clone();
        g[34 + 4..34 + 6].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(
            walk(&g, 0, &mut Walk::default()).unwrap_err(),
            ParseError::BadLength
        );
        // Frame 62: UDP over IPv6.
        let udp6 = &frames[61];
        let mut g = udp6.clone();
        g[18..20].copy_from_slice(&13u16.to_be_bytes());
        assert_eq!(
            walk(&g, 0, &mut Walk::default()).unwrap_err(),
            ParseError::BadLength
        );
        let mut g = udp6.clone();
        g[14] = 0x40;
        assert_eq!(
            walk(&g, 0, &mut Walk::default()).unwrap_err(),
            ParseError::BadVersion
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_a_checked_walk(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            ethertype in proptest::sample::select(vec![0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88a8]),
            proto in proptest::sample::select(vec![0u8, 1, 6, 17, 43, 44, 58, 60]),
        ) {
            let mut f = bytes;
            if f.len() >= 14 {
                f[12..14].copy_from_slice(&ethertype.to_be_bytes());
            }
            if f.len() > 24 {
                f[23] = proto;
                f[20] = proto;
            }
            let _ = walk(&f, 0, &mut Walk::default());
        }

        #[test]
        fn random_byte_flips_of_kernel_frames_never_panic(
            index in 0usize..69,
            flips in proptest::collection::vec((0usize..1514, proptest::num::u8::ANY), 1..6),
        ) {
            let frames = pcap::kernel_traffic();
            let mut f = frames[index].clone();
            for (at, v) in flips {
                let len = f.len();
                f[at % len] = v;
            }
            let _ = walk(&f, 0, &mut Walk::default());
        }
    }
}
