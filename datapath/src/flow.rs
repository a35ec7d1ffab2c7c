//! Flow keys: one pass over a frame's headers into a fixed-size key (hot path).
//!
//! [`extract`] validates every header it reads; a malformed frame yields the [`DropReason`] that
//! the worker counts, never a panic. The key holds what the L2 pipeline uses today (in_port, MACs,
//! VLAN, EtherType) and the L3/L4 fields the flow tables of later stages match on; fields of
//! headers that are absent are zero.
//!
//! Thread-safety: pure functions over borrowed bytes.

use crate::stats::DropReason;

/// EtherType of IPv4.
pub const ETH_TYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETH_TYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
/// TPID of an 802.1Q tag.
pub const ETH_TYPE_VLAN: u16 = 0x8100;
/// TPID of an 802.1ad (QinQ) service tag.
pub const ETH_TYPE_QINQ: u16 = 0x88a8;
/// Length of an Ethernet header without tags.
pub const ETH_HLEN: usize = 14;
/// Length of one VLAN tag.
pub const VLAN_HLEN: usize = 4;
/// `vlan_tci` bit set when the frame carried an 802.1Q tag (as OpenFlow's OFPVID_PRESENT).
pub const VLAN_PRESENT: u16 = 0x1000;

/// IP fragment state in [`FlowKey::nw_frag`].
pub mod frag {
    /// The packet is a fragment (any).
    pub const ANY: u8 = 1;
    /// The packet is a non-first fragment (no L4 header).
    pub const LATER: u8 = 2;
}

/// The fields of a frame that forwarding decisions look at. Fixed size, `#[repr(C)]`,
/// zero-initialised padding, so it can be hashed and compared as a whole. Aligned to 16
/// bytes (its size is a multiple of 16), so that in an array of keys, such as a worker's
/// batch, every 16-byte lane the extraction writes and the hash and compare read lies
/// within one cache line whatever else moves around it: keys 8 bytes off that alignment
/// made the in-memory pipeline 2–3 % slower at the same instructions.
#[derive(Clone, Copy, Debug, Default, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(16))]
pub struct FlowKey {
    /// Port number the frame came in on.
    pub in_port: u32,
    /// Destination MAC.
    pub eth_dst: [u8; 6],
    /// Source MAC.
    pub eth_src: [u8; 6],
    /// EtherType after any VLAN tags.
    pub eth_type: u16,
    /// Outer 802.1Q TCI with [`VLAN_PRESENT`] set if tagged, else 0.
    pub vlan_tci: u16,
    /// IPv4 (first 4 bytes) or IPv6 source; ARP sender protocol address.
    pub nw_src: [u8; 16],
    /// IPv4 (first 4 bytes) or IPv6 destination; ARP target protocol address.
    pub nw_dst: [u8; 16],
    /// IP protocol / IPv6 upper-layer header; ARP opcode (low byte).
    pub nw_proto: u8,
    /// DSCP and ECN (the IPv4 TOS byte / IPv6 traffic class).
    pub nw_tos: u8,
    /// IPv4 TTL / IPv6 hop limit.
    pub nw_ttl: u8,
    /// Fragment bits ([`frag`]).
    pub nw_frag: u8,
    /// TCP/UDP source port; ICMP type.
    pub tp_src: u16,
    /// TCP/UDP destination port; ICMP code.
    pub tp_dst: u16,
    /// TCP flags (low 12 bits).
    pub tcp_flags: u16,
    /// ARP sender hardware address.
    pub arp_sha: [u8; 6],
    /// ARP target hardware address.
    pub arp_tha: [u8; 6],
    /// Inner 802.1Q TCI of a double-tagged frame with [`VLAN_PRESENT`] set, else 0: the tag a
    /// `pop_vlan` makes the outer one, which later tables match.
    pub vlan_inner: u16,
    /// Pipeline registers `reg0..reg7` (zero on ingress; written by actions).
    pub regs: [u32; 8],
    /// Tunnel source (IPv4) of a decapsulated frame, else 0.
    pub tun_src: u32,
    /// Tunnel destination (IPv4) of a decapsulated frame, else 0.
    pub tun_dst: u32,
    /// Connection-tracking mark (set by the conntrack stage).
    pub ct_mark: u32,
    /// Connection-tracking state bits (set by the conntrack stage).
    pub ct_state: u16,
    /// Connection-tracking zone.
    pub ct_zone: u16,
    /// Explicit padding, always zero (keeps `metadata` 8-aligned with no implicit padding).
    pub pad2: [u8; 4],
    /// Pipeline metadata (zero on ingress; written by write-metadata).
    pub metadata: u64,
    /// Tunnel id (VNI) of a decapsulated frame, else 0.
    pub tun_id: u64,
}

impl std::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for &w in self.words() {
            state.write_u64(w);
        }
    }
}

impl PartialEq for FlowKey {
    /// Word by word (the padding is always zero, so this is field equality).
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.words() == other.words()
    }
}

/// Offsets found while extracting, for stages that rewrite headers. (Aligned to 8 bytes so
/// that it moves as one register.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(8))]
pub struct Layout {
    /// Offset of the L3 header (after tags).
    pub l3: u16,
    /// Offset of the L4 header, 0 if none.
    pub l4: u16,
    /// Number of VLAN tags (0..=2).
    pub tags: u8,
}

impl FlowKey {
    /// Number of words of [`FlowKey::words`].
    pub const WORDS: usize = 18;

    /// The all-zero key (usable in constants).
    pub const ZERO: Self = Self {
        in_port: 0,
        eth_dst: [0; 6],
        eth_src: [0; 6],
        eth_type: 0,
        vlan_tci: 0,
        nw_src: [0; 16],
        nw_dst: [0; 16],
        nw_proto: 0,
        nw_tos: 0,
        nw_ttl: 0,
        nw_frag: 0,
        tp_src: 0,
        tp_dst: 0,
        tcp_flags: 0,
        arp_sha: [0; 6],
        arp_tha: [0; 6],
        vlan_inner: 0,
        regs: [0; 8],
        tun_src: 0,
        tun_dst: 0,
        ct_mark: 0,
        ct_state: 0,
        ct_zone: 0,
        pad2: [0; 4],
        metadata: 0,
        tun_id: 0,
    };

    /// The key as 64-bit words: the same bytes, viewed (no copy). The struct has no implicit
    /// padding (`bytemuck::Pod` checks it at compile time) and the explicit padding is always
    /// zero, so equal keys have equal words and different keys different words: hashing,
    /// masking and comparing work on these 18 words instead of 25 fields.
    #[inline]
    pub fn words(&self) -> &[u64; Self::WORDS] {
        bytemuck::cast_ref(self)
    }

    /// The key's words, writable (see [`FlowKey::words`]); callers keep the padding zero.
    #[inline]
    pub fn words_mut(&mut self) -> &mut [u64; Self::WORDS] {
        bytemuck::cast_mut(self)
    }

    /// VLAN id of the outer tag, if the frame was tagged.
    #[inline]
    pub fn vlan_vid(&self) -> Option<u16> {
        (self.vlan_tci & VLAN_PRESENT != 0).then_some(self.vlan_tci & 0x0fff)
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> Result<u16, DropReason> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
        None => Err(DropReason::Truncated),
    }
}

#[inline]
fn bytes<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], DropReason> {
    let mut out = [0u8; N];
    out.copy_from_slice(b.get(at..at + N).ok_or(DropReason::Truncated)?);
    Ok(out)
}

/// Parses `frame` (received on port `in_port`) into a key and its header layout.
///
/// GSO super-frames are accepted (IP length fields cover the whole super-frame).
///
/// # Errors
/// The [`DropReason`] of the first malformed header: `Truncated` when a header does not fit,
/// `BadLength` when a length field disagrees with the frame, `BadHeader` for invalid values.
pub fn extract(frame: &[u8], in_port: u32) -> Result<(FlowKey, Layout), DropReason> {
    let mut key = FlowKey::ZERO;
    let lay = extract_into(frame, in_port, &mut key)?;
    Ok((key, lay))
}

/// [`extract`] into `key` (overwritten whole, also on error), for callers that keep keys in
/// place (the worker's rx loops) instead of moving 144 bytes per frame. Always inlined: the
/// worker parses in two loops (frame by frame, and a whole batch before a staged lookup).
///
/// # Errors
/// As [`extract`].
#[inline(always)]
pub fn extract_into(frame: &[u8], in_port: u32, key: &mut FlowKey) -> Result<Layout, DropReason> {
    // Word-wise: the compiler writes the zeros in a few wide stores, no temporary copy.
    *key.words_mut() = [0; FlowKey::WORDS];
    key.in_port = in_port;
    let mut lay = Layout::default();
    if frame.len() < ETH_HLEN {
        return Err(DropReason::Truncated);
    }
    key.eth_dst = bytes(frame, 0)?;
    key.eth_src = bytes(frame, 6)?;
    // The L3 header's offset, kept as it moves past each tag (the EtherType is the 2 bytes
    // before it): an untagged frame's stays the constant 14 for the compiler, which an
    // EtherType offset plus 2 after the loop did not once `l4` was inlined.
    let mut l3 = ETH_HLEN;
    let mut ty = be16(frame, l3 - 2)?;
    while ty == ETH_TYPE_VLAN || ty == ETH_TYPE_QINQ {
        if lay.tags == 2 {
            return Err(DropReason::BadHeader);
        }
        let tci = be16(frame, l3)?;
        if lay.tags == 0 {
            key.vlan_tci = tci | VLAN_PRESENT;
        } else {
            key.vlan_inner = tci | VLAN_PRESENT;
        }
        lay.tags += 1;
        l3 += VLAN_HLEN;
        ty = be16(frame, l3 - 2)?;
    }
    key.eth_type = ty;
    lay.l3 = u16::try_from(l3).map_err(|_| DropReason::BadLength)?;
    match ty {
        ETH_TYPE_IPV4 => ipv4(frame, l3, key, &mut lay)?,
        ETH_TYPE_IPV6 => ipv6(frame, l3, key, &mut lay)?,
        ETH_TYPE_ARP => arp(frame, l3, key)?,
        _ => {}
    }
    Ok(lay)
}

/// The IPv4 header and what follows. Always inlined, with [`l4`], into the callers of
/// [`extract_into`] (the worker's two parse loops): left to the compiler, the staged loop
/// called the transport parse out of line (19 instructions a frame more).
#[inline(always)]
fn ipv4(f: &[u8], l3: usize, key: &mut FlowKey, lay: &mut Layout) -> Result<(), DropReason> {
    let h = f.get(l3..l3 + 20).ok_or(DropReason::Truncated)?;
    if h[0] >> 4 != 4 {
        return Err(DropReason::BadHeader);
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(DropReason::BadHeader);
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total < ihl || l3 + total > f.len() {
        return Err(DropReason::BadLength);
    }
    key.nw_tos = h[1];
    key.nw_ttl = h[8];
    key.nw_proto = h[9];
    key.nw_src[..4].copy_from_slice(&h[12..16]);
    key.nw_dst[..4].copy_from_slice(&h[16..20]);
    let frag_field = u16::from_be_bytes([h[6], h[7]]);
    let more = frag_field & 0x2000 != 0;
    let offset = frag_field & 0x1fff;
    if more || offset != 0 {
        key.nw_frag = frag::ANY | if offset != 0 { frag::LATER } else { 0 };
    }
    if offset != 0 {
        return Ok(());
    }
    l4(f, l3 + ihl, l3 + total, key, lay)
}

fn ipv6(f: &[u8], l3: usize, key: &mut FlowKey, lay: &mut Layout) -> Result<(), DropReason> {
    let h = f.get(l3..l3 + 40).ok_or(DropReason::Truncated)?;
    if h[0] >> 4 != 6 {
        return Err(DropReason::BadHeader);
    }
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let end = l3 + 40 + plen;
    if end > f.len() {
        return Err(DropReason::BadLength);
    }
    key.nw_tos = (h[0] << 4) | (h[1] >> 4);
    key.nw_ttl = h[7];
    key.nw_src.copy_from_slice(&h[8..24]);
    key.nw_dst.copy_from_slice(&h[24..40]);
    let mut next = h[6];
    let mut off = l3 + 40;
    // Extension headers must lie within the payload length (not in link padding after it).
    let ext = |off: usize, len: usize| f.get(off..off + len).filter(|_| off + len <= end);
    let mut seen_frag = false;
    // Walk at most 8 extension headers.
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                let e = ext(off, 2).ok_or(DropReason::Truncated)?;
                next = e[0];
                off += (usize::from(e[1]) + 1) * 8;
                if off > end {
                    return Err(DropReason::BadLength);
                }
            }
            44 => {
                // RFC 8200 4.1: at most one fragment header.
                if seen_frag {
                    return Err(DropReason::BadHeader);
                }
                seen_frag = true;
                let e = ext(off, 8).ok_or(DropReason::Truncated)?;
                next = e[0];
                let frag_off = u16::from_be_bytes([e[2], e[3]]) >> 3;
                key.nw_frag = frag::ANY | if frag_off != 0 { frag::LATER } else { 0 };
                off += 8;
                if frag_off != 0 {
                    key.nw_proto = next;
                    return Ok(());
                }
            }
            _ => break,
        }
    }
    key.nw_proto = next;
    l4(f, off, end, key, lay)
}

#[inline(always)]
fn l4(
    f: &[u8],
    at: usize,
    end: usize,
    key: &mut FlowKey,
    lay: &mut Layout,
) -> Result<(), DropReason> {
    let seg = f.get(at..end).ok_or(DropReason::BadLength)?;
    match key.nw_proto {
        6 => {
            if seg.len() < 20 {
                return Err(DropReason::Truncated);
            }
            let doff = usize::from(seg[12] >> 4) * 4;
            if doff < 20 || doff > seg.len() {
                return Err(DropReason::BadLength);
            }
            key.tp_src = u16::from_be_bytes([seg[0], seg[1]]);
            key.tp_dst = u16::from_be_bytes([seg[2], seg[3]]);
            key.tcp_flags = u16::from_be_bytes([seg[12], seg[13]]) & 0x0fff;
        }
        17 => {
            if seg.len() < 8 {
                return Err(DropReason::Truncated);
            }
            let len = usize::from(u16::from_be_bytes([seg[4], seg[5]]));
            // A UDP GSO super-frame keeps the first segment's length; otherwise it must fit,
            // except in the first fragment of a datagram, whose length is the whole
            // datagram's (found by an audit: until 2026-12-07 every such fragment was dropped
            // as `bad_length`, so fragmented UDP — large DNS answers, NFS, IKE — never crossed).
            if len < 8 || (len > seg.len() && key.nw_frag & frag::ANY == 0) {
                return Err(DropReason::BadLength);
            }
            key.tp_src = u16::from_be_bytes([seg[0], seg[1]]);
            key.tp_dst = u16::from_be_bytes([seg[2], seg[3]]);
        }
        1 | 58 => {
            if seg.len() < 4 {
                return Err(DropReason::Truncated);
            }
            key.tp_src = u16::from(seg[0]);
            key.tp_dst = u16::from(seg[1]);
        }
        _ => return Ok(()),
    }
    lay.l4 = u16::try_from(at).map_err(|_| DropReason::BadLength)?;
    Ok(())
}

fn arp(f: &[u8], l3: usize, key: &mut FlowKey) -> Result<(), DropReason> {
    let h = f.get(l3..l3 + 28).ok_or(DropReason::Truncated)?;
    // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
    if h[0..6] != [0, 1, 8, 0, 6, 4] {
        return Err(DropReason::BadHeader);
    }
    let op = u16::from_be_bytes([h[6], h[7]]);
    key.nw_proto = u8::try_from(op).unwrap_or(0);
    key.arp_sha.copy_from_slice(&h[8..14]);
    key.nw_src[..4].copy_from_slice(&h[14..18]);
    key.arp_tha.copy_from_slice(&h[18..24]);
    key.nw_dst[..4].copy_from_slice(&h[24..28]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp4() -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1234, 53);
        let mut v = Vec::new();
        b.write(&mut v, b"hello").unwrap();
        v
    }

    #[test]
    fn extracts_udp_over_ipv4() {
        let f = udp4();
        let (k, lay) = extract(&f, 7).unwrap();
        assert_eq!(k.in_port, 7);
        assert_eq!(k.eth_src, [2, 0, 0, 0, 0, 1]);
        assert_eq!(k.eth_dst, [2, 0, 0, 0, 0, 2]);
        assert_eq!(k.eth_type, ETH_TYPE_IPV4);
        assert_eq!(k.vlan_vid(), None);
        assert_eq!(&k.nw_src[..4], &[10, 0, 0, 1]);
        assert_eq!(k.nw_proto, 17);
        assert_eq!((k.tp_src, k.tp_dst), (1234, 53));
        assert_eq!((lay.l3, lay.l4), (14, 34));
    }

    #[test]
    fn extracts_vlan_tagged_tcp_over_ipv6() {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .single_vlan(100.try_into().unwrap())
            .ipv6([1; 16], [2; 16], 9)
            .tcp(40000, 80, 1, 1000)
            .syn();
        let mut f = Vec::new();
        b.write(&mut f, b"").unwrap();
        let (k, lay) = extract(&f, 1).unwrap();
        assert_eq!(k.vlan_vid(), Some(100));
        assert_eq!(k.eth_type, ETH_TYPE_IPV6);
        assert_eq!(k.nw_proto, 6);
        assert_eq!(k.nw_ttl, 9);
        assert_eq!(k.tp_dst, 80);
        assert_eq!(k.tcp_flags & 0x02, 0x02);
        assert_eq!((lay.l3, lay.l4, lay.tags), (18, 58, 1));
    }

    #[test]
    fn drops_frame_shorter_than_ethernet_header() {
        assert_eq!(extract(&[0u8; 13], 1), Err(DropReason::Truncated));
    }

    #[test]
    fn drops_ipv4_whose_total_length_exceeds_the_frame() {
        let mut f = udp4();
        f[16] = 0x05; // total length 0x05xx > frame
        assert_eq!(extract(&f, 1), Err(DropReason::BadLength));
    }

    #[test]
    fn drops_ipv4_with_ihl_below_five() {
        let mut f = udp4();
        f[14] = 0x44;
        assert_eq!(extract(&f, 1), Err(DropReason::BadHeader));
    }

    #[test]
    fn drops_udp_with_length_field_below_header_size() {
        let mut f = udp4();
        f[38] = 0;
        f[39] = 4;
        assert_eq!(extract(&f, 1), Err(DropReason::BadLength));
    }

    #[test]
    fn every_truncation_of_a_valid_frame_is_an_error_or_a_shorter_key_never_a_panic() {
        let f = udp4();
        for n in 0..f.len() {
            let _ = extract(&f[..n], 1);
        }
    }

    fn ipv6_with(ext: &[u8], next: u8, payload_len: u16, pad: usize) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&payload_len.to_be_bytes());
        f.extend_from_slice(&[next, 64]);
        f.extend_from_slice(&[1; 32]);
        f.extend_from_slice(ext);
        f.extend(std::iter::repeat_n(0, pad));
        f
    }

    #[test]
    fn drops_ipv6_with_two_fragment_headers() {
        let frag = |next: u8, off: u16| {
            let o = (off << 3).to_be_bytes();
            [next, 0, o[0], o[1], 0, 0, 0, 1]
        };
        let mut ext = frag(44, 0).to_vec();
        ext.extend_from_slice(&frag(59, 8));
        let f = ipv6_with(&ext, 44, 16, 0);
        assert_eq!(extract(&f, 1), Err(DropReason::BadHeader));
    }

    #[test]
    fn ipv6_extension_header_in_link_padding_is_truncated() {
        // Empty payload, but padding after it that looks like a fragment header.
        let f = ipv6_with(&[], 44, 0, 8);
        assert_eq!(extract(&f, 1), Err(DropReason::Truncated));
    }

    #[test]
    fn every_field_reaches_the_hashed_words() {
        let zero = *FlowKey::default().words();
        for f in crate::ofp::field::ALL {
            let mut k = FlowKey::default();
            f.set(&mut k, f.max_value());
            assert_ne!(*k.words(), zero, "{f} is not hashed");
        }
        let k = FlowKey {
            vlan_inner: 0x0101,
            nw_frag: 1,
            ..FlowKey::default()
        };
        assert_ne!(*k.words(), zero);
        assert_eq!(size_of::<FlowKey>(), FlowKey::WORDS * 8);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = extract(&data, 1);
        }
    }
}
