//! Frame rewriting: the edits the pipeline's actions make to a frame (hot path).
//!
//! - [`set_field`] writes one match field into the frame in place and fixes every checksum that
//!   covers it, incrementally (RFC 1624): the IPv4 header checksum, and the TCP, UDP and ICMPv6
//!   checksums whose pseudo-header covers the IP addresses.
//! - [`dec_ttl`] decrements the IPv4 TTL or IPv6 hop limit in place.
//! - [`push_vlan`] and [`pop_vlan`] change the frame's length, so they copy it into a
//!   caller-owned scratch buffer and return the adjusted offload state.
//!
//! # Checksums and offload
//!
//! A frame whose [`Offload`] has [`Offload::F_NEEDS_CSUM`] with `csum_start` at this frame's L4
//! header carries a *partial* L4 checksum: the field holds the non-complemented pseudo-header sum
//! and the rest is summed from `csum_start` later ([`crate::offload::complete_csum`], or the
//! receiving NIC / guest). An address change updates that sum as a sum (the pseudo-header covers
//! the addresses); a port change leaves it alone (the ports are covered by the later
//! computation). Any other frame's L4 checksum is complete and is updated as a checksum, except
//! that a UDP checksum of 0 ("no checksum"; over IPv6 only tunnels may send it, RFC 6935) stays
//! 0, and a computed UDP checksum of 0 is sent as `0xffff`. Non-first fragments have no L4
//! header: only the IPv4 header checksum changes. An IPv6 destination change behind a routing
//! header with segments left does not touch the L4 checksum: its pseudo-header holds the final
//! destination (RFC 8200 §8.1), which is not the field being rewritten.
//!
//! # Contract
//!
//! - The key and layout are the frame's as [`crate::flow::extract`] returned them (the caller
//!   keeps them up to date as it rewrites). They decide which headers exist; the functions still
//!   bounds-check every access, so an inconsistent key or layout yields an error or a garbled
//!   (but never out-of-bounds) edit, never a panic.
//! - On error the frame is left unchanged.
//! - Nothing allocates, except that [`push_vlan`] / [`pop_vlan`] grow `out` when its capacity
//!   is smaller than the result (give it the largest frame size plus 4 once, and it never will).
//!
//! Thread-safety: pure functions over borrowed bytes.

use crate::buf::Offload;
use crate::flow::{
    ETH_HLEN, ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_QINQ, ETH_TYPE_VLAN, FlowKey,
    Layout, VLAN_HLEN, frag,
};
use crate::ofp::field::Field;
use crate::wire::checksum;

/// Why a rewrite was refused (the caller counts the frame as dropped). The frame is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The header holding the field is absent from this frame (per its key).
    #[error("the frame has no header holding this field")]
    NoSuchHeader,
    /// A header the key or layout promises lies (partly) outside the frame.
    #[error("a header to rewrite lies outside the frame")]
    Truncated,
    /// The frame has no VLAN tag to rewrite or pop.
    #[error("the frame has no VLAN tag")]
    NoTag,
    /// The frame already has two VLAN tags (a third could not be parsed again).
    #[error("the frame already has two VLAN tags")]
    TooManyTags,
    /// An offload offset would not fit in 16 bits after the change.
    #[error("the frame is too big for its offload offsets")]
    FrameTooBig,
    /// The offload state disagrees with the frame (partial checksum field elsewhere than the L4
    /// header's checksum field, `csum_start` inside the bytes a tag push/pop moves).
    #[error("the offload state disagrees with the frame")]
    BadOffload,
    /// `push_vlan` was given a TPID other than 0x8100 or 0x88a8.
    #[error("not a VLAN TPID")]
    BadTpid,
    /// The field is not one `set_field` writes into a frame.
    #[error("the field cannot be written into a frame")]
    NotWritable,
}

use RewriteError::{BadOffload, NoSuchHeader, NoTag, Truncated};

/// Offset of the EtherType (or first TPID) in an Ethernet header.
const ETH_TYPE_AT: usize = 12;
/// Offset of the outer tag's TCI.
const TCI_AT: usize = ETH_TYPE_AT + 2;

/// IPv4 header offsets.
mod v4 {
    pub(super) const TOS_WORD: usize = 0;
    pub(super) const TTL_WORD: usize = 8;
    pub(super) const CSUM: usize = 10;
    pub(super) const SRC: usize = 12;
    pub(super) const DST: usize = 16;
}

/// IPv6 header offsets.
mod v6 {
    pub(super) const NEXT: usize = 6;
    pub(super) const HLIM: usize = 7;
    pub(super) const SRC: usize = 8;
    pub(super) const DST: usize = 24;
    pub(super) const LEN: usize = 40;
}

/// ARP (Ethernet/IPv4) body offsets.
mod arp {
    /// htype 1, ptype 0x0800, hlen 6, plen 4.
    pub(super) const FORMAT: [u8; 6] = [0, 1, 8, 0, 6, 4];
    pub(super) const SHA: usize = 8;
    pub(super) const SPA: usize = 14;
    pub(super) const THA: usize = 18;
    pub(super) const TPA: usize = 24;
}

#[inline]
fn rd16(f: &[u8], at: usize) -> Result<u16, RewriteError> {
    match f.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(Truncated),
    }
}

#[inline]
fn rd8(f: &[u8], at: usize) -> Result<u8, RewriteError> {
    f.get(at).copied().ok_or(Truncated)
}

#[inline]
fn put(f: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), RewriteError> {
    f.get_mut(at..at + bytes.len())
        .ok_or(Truncated)?
        .copy_from_slice(bytes);
    Ok(())
}

#[inline]
fn wr16(f: &mut [u8], at: usize, v: u16) -> Result<(), RewriteError> {
    put(f, at, &v.to_be_bytes())
}

/// The low `N` bytes of `v`, big-endian (`N` ≤ 16).
#[inline]
fn low<const N: usize>(v: u128) -> [u8; N] {
    let b = v.to_be_bytes();
    let mut out = [0u8; N];
    if let Some(tail) = b.get(b.len().saturating_sub(N)..) {
        out.copy_from_slice(tail);
    }
    out
}

#[inline]
fn low16(v: u128) -> u16 {
    u16::from_be_bytes(low::<2>(v))
}

#[inline]
fn low8(v: u128) -> u8 {
    low::<1>(v)[0]
}

#[inline]
fn is_tpid(t: u16) -> bool {
    t == ETH_TYPE_VLAN || t == ETH_TYPE_QINQ
}

/// The L4 checksum that covers the IP pseudo-header (or the L4 header), and how it is held.
#[derive(Clone, Copy, Debug)]
enum L4Csum {
    /// None to update: no L4 header, a non-first fragment, or a protocol without one we know.
    Absent,
    /// A complete checksum at this frame offset; `udp`: 0 means "none", 0 is sent as `0xffff`.
    Full { at: usize, udp: bool },
    /// The field at this offset holds the non-complemented pseudo-header sum: the
    /// `F_NEEDS_CSUM` checksum, or (`seed`) the outer UDP checksum of a UDP-tunnel super-frame,
    /// whose partial checksum is the inner one: a sum the segmentation completes per segment,
    /// or 0 when the tunnel sends none (0 then stays 0).
    Partial { at: usize, seed: bool },
}

/// Which L4 checksum of the frame described by `key`/`lay`/`off` covers the pseudo-header.
fn l4_csum(key: &FlowKey, lay: &Layout, off: &Offload, ipv6: bool) -> Result<L4Csum, RewriteError> {
    let l4 = usize::from(lay.l4);
    if l4 == 0 || key.nw_frag & frag::LATER != 0 {
        return Ok(L4Csum::Absent);
    }
    let (rel, udp) = match key.nw_proto {
        6 => (16, false),
        17 => (6, true),
        58 if ipv6 => (2, false),
        _ => return Ok(L4Csum::Absent),
    };
    if udp && off.is_tunnel() && usize::from(off.csum_start) > l4 {
        return Ok(L4Csum::Partial {
            at: l4 + rel,
            seed: true,
        });
    }
    if off.needs_csum() && usize::from(off.csum_start) == l4 {
        if usize::from(off.csum_offset) != rel {
            return Err(BadOffload);
        }
        return Ok(L4Csum::Partial {
            at: l4 + rel,
            seed: false,
        });
    }
    Ok(L4Csum::Full { at: l4 + rel, udp })
}

/// The L4 checksum field's new value after the covered bytes `old` became `new` (both of the
/// same even length, 16-bit aligned from the checksum's start), or `None` when it stays.
/// `in_pseudo`: the bytes are part of the pseudo-header (an address), not of the L4 header.
fn l4_after(
    frame: &[u8],
    c: L4Csum,
    old: &[u8],
    new: &[u8],
    in_pseudo: bool,
) -> Result<Option<(usize, u16)>, RewriteError> {
    match c {
        L4Csum::Absent => Ok(None),
        L4Csum::Full { at, udp } => {
            let v = rd16(frame, at)?;
            if udp && v == 0 {
                return Ok(None);
            }
            let n = checksum::update_addr(v, old, new);
            Ok(Some((at, if udp { checksum::udp_wire(n) } else { n })))
        }
        L4Csum::Partial { at, seed } => {
            let v = rd16(frame, at)?;
            if !in_pseudo || (seed && v == 0) {
                return Ok(None);
            }
            // The field is a sum, not a checksum: update its complement as a checksum.
            Ok(Some((at, !checksum::update_addr(!v, old, new))))
        }
    }
}

/// Writes a checksum computed by [`l4_after`] (its offset was read successfully, so this
/// cannot fail).
#[inline]
fn apply(frame: &mut [u8], c: Option<(usize, u16)>) -> Result<(), RewriteError> {
    match c {
        Some((at, v)) => wr16(frame, at, v),
        None => Ok(()),
    }
}

/// Writes `field = value` into `frame` in place, fixing every checksum that covers it.
///
/// `key` and `lay` are the frame's [`FlowKey`] and [`Layout`] as extracted (the caller keeps
/// them up to date); `off` is the frame's offload state, which decides whether the L4 checksum
/// is complete or partial (see the module docs). `value` is the field's value as
/// [`Field::get`] returns it, truncated to [`Field::bits`]; for [`Field::VlanVid`] only the low
/// 12 bits (the VID) are written, the "present" bit is ignored.
///
/// Supported fields: `eth_src`, `eth_dst`, `vlan_vid`, `vlan_pcp` (outer tag), `ip_src`,
/// `ip_dst`, `ipv6_src`, `ipv6_dst`, `ip_dscp`, `ip_ecn`, `ip_ttl` (IPv4 or IPv6), `tcp_src`,
/// `tcp_dst`, `udp_src`, `udp_dst`, `arp_spa`, `arp_tpa`, `arp_sha`, `arp_tha` (Ethernet/IPv4
/// ARP).
///
/// # Errors
/// [`RewriteError::NotWritable`] for any other field; [`RewriteError::NoTag`] for a VLAN field
/// of an untagged frame; [`RewriteError::NoSuchHeader`] when the key says the field's header is
/// absent (wrong `eth_type` or `nw_proto`, no L4 header, non-first fragment);
/// [`RewriteError::Truncated`] when a header lies outside the frame;
/// [`RewriteError::BadOffload`] when a partial checksum's field is not the L4 checksum field.
/// The frame is unchanged on error.
pub fn set_field(
    frame: &mut [u8],
    key: &FlowKey,
    lay: &Layout,
    off: &Offload,
    field: Field,
    value: u128,
) -> Result<(), RewriteError> {
    let v = value & field.max_value();
    match field {
        Field::EthDst => put(frame, 0, &low::<6>(v)),
        Field::EthSrc => put(frame, 6, &low::<6>(v)),
        Field::VlanVid => set_tci(frame, lay, 0x0fff, low16(v)),
        Field::VlanPcp => set_tci(frame, lay, 0xe000, low16(v) << 13),
        Field::IpSrc => set_ipv4_addr(frame, key, lay, off, v4::SRC, low::<4>(v)),
        Field::IpDst => set_ipv4_addr(frame, key, lay, off, v4::DST, low::<4>(v)),
        Field::Ipv6Src => set_ipv6_addr(frame, key, lay, off, v6::SRC, low::<16>(v)),
        Field::Ipv6Dst => set_ipv6_addr(frame, key, lay, off, v6::DST, low::<16>(v)),
        Field::IpDscp => set_tos(frame, key, lay, 0xfc, low8(v) << 2),
        Field::IpEcn => set_tos(frame, key, lay, 0x03, low8(v)),
        Field::IpTtl => set_ttl(frame, key, lay, low8(v)),
        Field::TcpSrc => set_port(frame, key, lay, off, 6, 0, low16(v)),
        Field::TcpDst => set_port(frame, key, lay, off, 6, 2, low16(v)),
        Field::UdpSrc => set_port(frame, key, lay, off, 17, 0, low16(v)),
        Field::UdpDst => set_port(frame, key, lay, off, 17, 2, low16(v)),
        Field::ArpSha => set_arp(frame, key, lay, arp::SHA, &low::<6>(v)),
        Field::ArpSpa => set_arp(frame, key, lay, arp::SPA, &low::<4>(v)),
        Field::ArpTha => set_arp(frame, key, lay, arp::THA, &low::<6>(v)),
        Field::ArpTpa => set_arp(frame, key, lay, arp::TPA, &low::<4>(v)),
        _ => Err(RewriteError::NotWritable),
    }
}

/// Replaces the bits `mask` of the outer tag's TCI by those of `bits`.
fn set_tci(frame: &mut [u8], lay: &Layout, mask: u16, bits: u16) -> Result<(), RewriteError> {
    if lay.tags == 0 || !is_tpid(rd16(frame, ETH_TYPE_AT)?) {
        return Err(NoTag);
    }
    let tci = rd16(frame, TCI_AT)?;
    wr16(frame, TCI_AT, (tci & !mask) | (bits & mask))
}

fn set_ipv4_addr(
    frame: &mut [u8],
    key: &FlowKey,
    lay: &Layout,
    off: &Offload,
    rel: usize,
    new: [u8; 4],
) -> Result<(), RewriteError> {
    if key.eth_type != ETH_TYPE_IPV4 {
        return Err(NoSuchHeader);
    }
    let l3 = usize::from(lay.l3);
    let at = l3 + rel;
    let mut old = [0u8; 4];
    old.copy_from_slice(frame.get(at..at + 4).ok_or(Truncated)?);
    let ip_csum = checksum::update_addr(rd16(frame, l3 + v4::CSUM)?, &old, &new);
    let l4 = l4_after(frame, l4_csum(key, lay, off, false)?, &old, &new, true)?;
    put(frame, at, &new)?;
    wr16(frame, l3 + v4::CSUM, ip_csum)?;
    apply(frame, l4)
}

fn set_ipv6_addr(
    frame: &mut [u8],
    key: &FlowKey,
    lay: &Layout,
    off: &Offload,
    rel: usize,
    new: [u8; 16],
) -> Result<(), RewriteError> {
    if key.eth_type != ETH_TYPE_IPV6 {
        return Err(NoSuchHeader);
    }
    let l3 = usize::from(lay.l3);
    let at = l3 + rel;
    let mut old = [0u8; 16];
    old.copy_from_slice(frame.get(at..at + 16).ok_or(Truncated)?);
    let mut c = l4_csum(key, lay, off, true)?;
    if rel == v6::DST && !matches!(c, L4Csum::Absent) && routing_pending(frame, l3, lay.l4) {
        c = L4Csum::Absent;
    }
    let l4 = l4_after(frame, c, &old, &new, true)?;
    put(frame, at, &new)?;
    apply(frame, l4)
}

/// True when the IPv6 extension headers between `l3 + 40` and `l4` hold a routing header with
/// segments left, so that the L4 pseudo-header uses another (the final) destination.
fn routing_pending(frame: &[u8], l3: usize, l4: u16) -> bool {
    let l4 = usize::from(l4);
    let Some(&first) = frame.get(l3 + v6::NEXT) else {
        return false;
    };
    let mut next = first;
    let mut at = l3 + v6::LEN;
    // As many extension headers as flow extraction walks.
    for _ in 0..8 {
        if at >= l4 {
            return false;
        }
        let (Some(&n), Some(&len)) = (frame.get(at), frame.get(at + 1)) else {
            return false;
        };
        match next {
            0 | 60 => at += (usize::from(len) + 1) * 8,
            43 => {
                if frame.get(at + 3).is_some_and(|left| *left != 0) {
                    return true;
                }
                at += (usize::from(len) + 1) * 8;
            }
            44 => at += 8,
            _ => return false,
        }
        next = n;
    }
    false
}

/// Replaces the bits `mask` of the IPv4 TOS byte / IPv6 traffic class by those of `bits`.
fn set_tos(
    frame: &mut [u8],
    key: &FlowKey,
    lay: &Layout,
    mask: u8,
    bits: u8,
) -> Result<(), RewriteError> {
    let l3 = usize::from(lay.l3);
    match key.eth_type {
        ETH_TYPE_IPV4 => {
            let w = rd16(frame, l3 + v4::TOS_WORD)?;
            let [ver_ihl, tos] = w.to_be_bytes();
            let nw = u16::from_be_bytes([ver_ihl, (tos & !mask) | (bits & mask)]);
            let c = checksum::update_u16(rd16(frame, l3 + v4::CSUM)?, w, nw);
            wr16(frame, l3 + v4::TOS_WORD, nw)?;
            wr16(frame, l3 + v4::CSUM, c)
        }
        ETH_TYPE_IPV6 => {
            // Version (4 bits), traffic class (8 bits), flow label (20 bits).
            let w = rd16(frame, l3)?;
            let [b0, b1] = w.to_be_bytes();
            let tc = (b0 << 4) | (b1 >> 4);
            let tc = (tc & !mask) | (bits & mask);
            let nb0 = (b0 & 0xf0) | (tc >> 4);
            let nb1 = (b1 & 0x0f) | (tc << 4);
            put(frame, l3, &[nb0, nb1])
        }
        _ => Err(NoSuchHeader),
    }
}

/// Sets the IPv4 TTL (fixing the header checksum) or the IPv6 hop limit.
fn set_ttl(frame: &mut [u8], key: &FlowKey, lay: &Layout, ttl: u8) -> Result<(), RewriteError> {
    let l3 = usize::from(lay.l3);
    match key.eth_type {
        ETH_TYPE_IPV4 => {
            let w = rd16(frame, l3 + v4::TTL_WORD)?;
            let [_, proto] = w.to_be_bytes();
            let nw = u16::from_be_bytes([ttl, proto]);
            let c = checksum::update_u16(rd16(frame, l3 + v4::CSUM)?, w, nw);
            wr16(frame, l3 + v4::TTL_WORD, nw)?;
            wr16(frame, l3 + v4::CSUM, c)
        }
        ETH_TYPE_IPV6 => put(frame, l3 + v6::HLIM, &[ttl]),
        _ => Err(NoSuchHeader),
    }
}

/// Sets the TCP/UDP port at `rel` (0 source, 2 destination) of protocol `proto`.
fn set_port(
    frame: &mut [u8],
    key: &FlowKey,
    lay: &Layout,
    off: &Offload,
    proto: u8,
    rel: usize,
    port: u16,
) -> Result<(), RewriteError> {
    let ipv6 = match key.eth_type {
        ETH_TYPE_IPV4 => false,
        ETH_TYPE_IPV6 => true,
        _ => return Err(NoSuchHeader),
    };
    if key.nw_proto != proto || lay.l4 == 0 || key.nw_frag & frag::LATER != 0 {
        return Err(NoSuchHeader);
    }
    let at = usize::from(lay.l4) + rel;
    let old = rd16(frame, at)?;
    let c = l4_csum(key, lay, off, ipv6)?;
    let l4 = l4_after(frame, c, &old.to_be_bytes(), &port.to_be_bytes(), false)?;
    wr16(frame, at, port)?;
    apply(frame, l4)
}

/// Writes `new` at `rel` in the ARP body.
fn set_arp(
    frame: &mut [u8],
    key: &FlowKey,
    lay: &Layout,
    rel: usize,
    new: &[u8],
) -> Result<(), RewriteError> {
    let l3 = usize::from(lay.l3);
    if key.eth_type != ETH_TYPE_ARP {
        return Err(NoSuchHeader);
    }
    if frame.get(l3..l3 + arp::FORMAT.len()) != Some(&arp::FORMAT[..]) {
        return Err(NoSuchHeader);
    }
    put(frame, l3 + rel, new)
}

/// Decrements the IPv4 TTL (fixing the header checksum) or the IPv6 hop limit in place.
///
/// Returns `Ok(false)`, with the frame unchanged, when the TTL / hop limit is 0 or 1: the frame
/// must be dropped (counted as TTL expired).
///
/// # Errors
/// [`RewriteError::NoSuchHeader`] for a non-IP frame, [`RewriteError::Truncated`] when the IP
/// header lies outside the frame.
pub fn dec_ttl(frame: &mut [u8], key: &FlowKey, lay: &Layout) -> Result<bool, RewriteError> {
    let l3 = usize::from(lay.l3);
    let ttl = match key.eth_type {
        ETH_TYPE_IPV4 => rd8(frame, l3 + v4::TTL_WORD)?,
        ETH_TYPE_IPV6 => rd8(frame, l3 + v6::HLIM)?,
        _ => return Err(NoSuchHeader),
    };
    if ttl <= 1 {
        return Ok(false);
    }
    set_ttl(frame, key, lay, ttl - 1)?;
    Ok(true)
}

/// Copies `src` into `out` with a new outer 802.1Q/802.1ad tag (TPID `tpid`, TCI `tci`)
/// inserted after the MAC addresses, and returns `off` adjusted to the new frame: `csum_start`
/// (when [`Offload::F_NEEDS_CSUM`]) and a non-zero `hdr_len` move by 4.
///
/// `out` is cleared first; it is not reallocated when its capacity is at least
/// `src.len() + 4`.
///
/// # Errors
/// [`RewriteError::BadTpid`] unless `tpid` is 0x8100 or 0x88a8; [`RewriteError::Truncated`]
/// for a frame shorter than an Ethernet header; [`RewriteError::TooManyTags`] when `src` has two
/// tags already; [`RewriteError::BadOffload`] when `csum_start` lies inside the MAC addresses;
/// [`RewriteError::FrameTooBig`] when an offset overflows. `out` is untouched on error.
pub fn push_vlan(
    src: &[u8],
    tpid: u16,
    tci: u16,
    off: &Offload,
    out: &mut Vec<u8>,
) -> Result<Offload, RewriteError> {
    if !is_tpid(tpid) {
        return Err(RewriteError::BadTpid);
    }
    if src.len() < ETH_HLEN {
        return Err(Truncated);
    }
    let (macs, rest) = src.split_at(ETH_TYPE_AT);
    if is_tpid(rd16(src, ETH_TYPE_AT)?) && rd16(src, ETH_TYPE_AT + VLAN_HLEN).is_ok_and(is_tpid) {
        return Err(RewriteError::TooManyTags);
    }
    let mut o = *off;
    if o.needs_csum() {
        if usize::from(o.csum_start) < ETH_TYPE_AT {
            return Err(BadOffload);
        }
        o.csum_start = o
            .csum_start
            .checked_add(4)
            .ok_or(RewriteError::FrameTooBig)?;
    }
    if o.hdr_len != 0 {
        o.hdr_len = o.hdr_len.checked_add(4).ok_or(RewriteError::FrameTooBig)?;
    }
    out.clear();
    out.extend_from_slice(macs);
    out.extend_from_slice(&tpid.to_be_bytes());
    out.extend_from_slice(&tci.to_be_bytes());
    out.extend_from_slice(rest);
    Ok(o)
}

/// Copies `src` into `out` without its outer VLAN tag, and returns `off` adjusted to the new
/// frame: `csum_start` (when [`Offload::F_NEEDS_CSUM`]) and a non-zero `hdr_len` move by -4.
///
/// `out` is cleared first; it is not reallocated when its capacity is at least `src.len() - 4`.
///
/// # Errors
/// [`RewriteError::NoTag`] for an untagged frame; [`RewriteError::Truncated`] for a frame
/// shorter than an Ethernet header plus the tag; [`RewriteError::BadOffload`] when
/// `csum_start` lies before the end of the tag or `hdr_len` is shorter than the tag.
/// `out` is untouched on error.
pub fn pop_vlan(src: &[u8], off: &Offload, out: &mut Vec<u8>) -> Result<Offload, RewriteError> {
    if !is_tpid(rd16(src, ETH_TYPE_AT)?) {
        return Err(NoTag);
    }
    let (Some(macs), Some(rest)) = (src.get(..ETH_TYPE_AT), src.get(ETH_TYPE_AT + VLAN_HLEN..))
    else {
        return Err(Truncated);
    };
    if rest.len() < 2 {
        return Err(Truncated);
    }
    let mut o = *off;
    if o.needs_csum() {
        if usize::from(o.csum_start) < ETH_TYPE_AT + VLAN_HLEN {
            return Err(BadOffload);
        }
        o.csum_start -= 4;
    }
    if o.hdr_len != 0 {
        o.hdr_len = o.hdr_len.checked_sub(4).ok_or(BadOffload)?;
    }
    out.clear();
    out.extend_from_slice(macs);
    out.extend_from_slice(rest);
    Ok(o)
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use etherparse::{ArpHardwareId, ArpOperation, ArpPacket, EtherType, PacketBuilder, VlanId};
    use proptest::prelude::*;

    use super::*;
    use crate::flow::{self, VLAN_PRESENT};
    use crate::offload;
    use crate::wire::{IpProtocol, Ipv4Packet};

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];
    const V4_A: [u8; 4] = [10, 0, 0, 1];
    const V4_B: [u8; 4] = [10, 0, 0, 2];
    const V6_A: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const V6_B: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// The shapes of frame the tests rewrite.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Kind {
        Tcp4,
        Udp4,
        Udp4NoCsum,
        Icmp4,
        Tcp6,
        Udp6,
        Icmp6,
        Arp,
        /// UDP/IPv4 behind one 802.1Q tag.
        VlanUdp4,
        /// TCP/IPv6 behind two tags.
        QinqTcp6,
        /// A non-first IPv4 fragment of a UDP datagram.
        Frag4,
    }

    const KINDS: [Kind; 11] = [
        Kind::Tcp4,
        Kind::Udp4,
        Kind::Udp4NoCsum,
        Kind::Icmp4,
        Kind::Tcp6,
        Kind::Udp6,
        Kind::Icmp6,
        Kind::Arp,
        Kind::VlanUdp4,
        Kind::QinqTcp6,
        Kind::Frag4,
    ];

    /// Addresses and ports a frame is built with.
    #[derive(Clone, Copy, Debug)]
    struct Params {
        s4: [u8; 4],
        d4: [u8; 4],
        s6: [u8; 16],
        d6: [u8; 16],
        sp: u16,
        dp: u16,
        ttl: u8,
    }

    const P: Params = Params {
        s4: V4_A,
        d4: V4_B,
        s6: V6_A,
        d6: V6_B,
        sp: 40000,
        dp: 80,
        ttl: 64,
    };

    fn build(kind: Kind, p: &Params, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
        match kind {
            Kind::Tcp4 => eth
                .ipv4(p.s4, p.d4, p.ttl)
                .tcp(p.sp, p.dp, 0x1234_5678, 65000)
                .ack(9)
                .psh()
                .write(&mut out, payload),
            Kind::Udp4 | Kind::Udp4NoCsum | Kind::Frag4 => eth
                .ipv4(p.s4, p.d4, p.ttl)
                .udp(p.sp, p.dp)
                .write(&mut out, payload),
            Kind::Icmp4 => eth
                .ipv4(p.s4, p.d4, p.ttl)
                .icmpv4_echo_request(7, 9)
                .write(&mut out, payload),
            Kind::Tcp6 => eth
                .ipv6(p.s6, p.d6, p.ttl)
                .tcp(p.sp, p.dp, 1, 1000)
                .syn()
                .write(&mut out, payload),
            Kind::Udp6 => eth
                .ipv6(p.s6, p.d6, p.ttl)
                .udp(p.sp, p.dp)
                .write(&mut out, payload),
            Kind::Icmp6 => eth
                .ipv6(p.s6, p.d6, p.ttl)
                .icmpv6_echo_request(7, 9)
                .write(&mut out, payload),
            Kind::Arp => {
                let a = ArpPacket::new(
                    ArpHardwareId::ETHERNET,
                    EtherType::IPV4,
                    ArpOperation::REQUEST,
                    &MAC_A,
                    &p.s4,
                    &[0; 6],
                    &p.d4,
                )
                .unwrap();
                eth.arp(a).write(&mut out)
            }
            Kind::VlanUdp4 => eth
                .single_vlan(VlanId::try_new(100).unwrap())
                .ipv4(p.s4, p.d4, p.ttl)
                .udp(p.sp, p.dp)
                .write(&mut out, payload),
            Kind::QinqTcp6 => eth
                .double_vlan(VlanId::try_new(10).unwrap(), VlanId::try_new(20).unwrap())
                .ipv6(p.s6, p.d6, p.ttl)
                .tcp(p.sp, p.dp, 1, 1000)
                .write(&mut out, payload),
        }
        .unwrap();
        match kind {
            Kind::Udp4NoCsum => {
                out[40..42].copy_from_slice(&[0, 0]);
            }
            Kind::Frag4 => {
                // Fragment offset 185 (1480 bytes): the "UDP header" is payload now.
                out[20..22].copy_from_slice(&185u16.to_be_bytes());
                Ipv4Packet::new_unchecked(&mut out[14..]).fill_checksum();
            }
            _ => {}
        }
        out
    }

    /// The fields `set_field` supports on a frame of `kind`.
    fn fields_of(kind: Kind) -> Vec<Field> {
        use Field::*;
        let mut f = vec![EthSrc, EthDst];
        if matches!(kind, Kind::VlanUdp4 | Kind::QinqTcp6) {
            f.extend([VlanVid, VlanPcp]);
        }
        match kind {
            Kind::Arp => f.extend([ArpSpa, ArpTpa, ArpSha, ArpTha]),
            Kind::Tcp4 | Kind::Udp4 | Kind::Udp4NoCsum | Kind::Icmp4 | Kind::VlanUdp4 => {
                f.extend([IpSrc, IpDst, IpDscp, IpEcn, IpTtl]);
            }
            Kind::Frag4 => f.extend([IpSrc, IpDst, IpDscp, IpEcn, IpTtl]),
            Kind::Tcp6 | Kind::Udp6 | Kind::Icmp6 | Kind::QinqTcp6 => {
                f.extend([Ipv6Src, Ipv6Dst, IpDscp, IpEcn, IpTtl]);
            }
        }
        match kind {
            Kind::Tcp4 | Kind::Tcp6 | Kind::QinqTcp6 => f.extend([TcpSrc, TcpDst]),
            Kind::Udp4 | Kind::Udp4NoCsum | Kind::Udp6 | Kind::VlanUdp4 => {
                f.extend([UdpSrc, UdpDst]);
            }
            _ => {}
        }
        f
    }

    /// Writes `value` into the big-endian integer of `n` bytes at `at`, bits `shift..shift+width`.
    fn put_bits(frame: &mut [u8], at: usize, n: usize, shift: u32, width: u32, value: u128) {
        let mut acc = frame[at..at + n]
            .iter()
            .fold(0u128, |a, b| (a << 8) | u128::from(*b));
        let m = if width == 128 {
            u128::MAX
        } else {
            ((1u128 << width) - 1) << shift
        };
        acc = (acc & !m) | ((value << shift) & m);
        for i in 0..n {
            frame[at + i] = acc.to_be_bytes()[16 - n + i];
        }
    }

    /// A from-scratch reference: writes the field's bits where the specifications put them, then
    /// recomputes every checksum in full.
    fn reference(frame: &[u8], field: Field, value: u128) -> Vec<u8> {
        let (key, lay) = flow::extract(frame, 1).unwrap();
        let mut f = frame.to_vec();
        let (l3, l4) = (usize::from(lay.l3), usize::from(lay.l4));
        let v6 = key.eth_type == ETH_TYPE_IPV6;
        let v = value & field.max_value();
        match field {
            Field::EthDst => put_bits(&mut f, 0, 6, 0, 48, v),
            Field::EthSrc => put_bits(&mut f, 6, 6, 0, 48, v),
            Field::VlanVid => put_bits(&mut f, 14, 2, 0, 12, v),
            Field::VlanPcp => put_bits(&mut f, 14, 2, 13, 3, v),
            Field::IpSrc => put_bits(&mut f, l3 + 12, 4, 0, 32, v),
            Field::IpDst => put_bits(&mut f, l3 + 16, 4, 0, 32, v),
            Field::Ipv6Src => put_bits(&mut f, l3 + 8, 16, 0, 128, v),
            Field::Ipv6Dst => put_bits(&mut f, l3 + 24, 16, 0, 128, v),
            Field::IpDscp if v6 => put_bits(&mut f, l3, 4, 22, 6, v),
            Field::IpEcn if v6 => put_bits(&mut f, l3, 4, 20, 2, v),
            Field::IpTtl if v6 => put_bits(&mut f, l3 + 7, 1, 0, 8, v),
            Field::IpDscp => put_bits(&mut f, l3 + 1, 1, 2, 6, v),
            Field::IpEcn => put_bits(&mut f, l3 + 1, 1, 0, 2, v),
            Field::IpTtl => put_bits(&mut f, l3 + 8, 1, 0, 8, v),
            Field::TcpSrc | Field::UdpSrc => put_bits(&mut f, l4, 2, 0, 16, v),
            Field::TcpDst | Field::UdpDst => put_bits(&mut f, l4 + 2, 2, 0, 16, v),
            Field::ArpSha => put_bits(&mut f, l3 + 8, 6, 0, 48, v),
            Field::ArpSpa => put_bits(&mut f, l3 + 14, 4, 0, 32, v),
            Field::ArpTha => put_bits(&mut f, l3 + 18, 6, 0, 48, v),
            Field::ArpTpa => put_bits(&mut f, l3 + 24, 4, 0, 32, v),
            other => panic!("no reference for {other}"),
        }
        fix_checksums(&mut f);
        f
    }

    /// The IPv4 source/destination of an extracted IPv4 frame, and its L4 segment range.
    fn l4_segment(f: &[u8]) -> Option<(FlowKey, usize, usize)> {
        let (key, lay) = flow::extract(f, 1).unwrap();
        let (l3, l4) = (usize::from(lay.l3), usize::from(lay.l4));
        if l4 == 0 {
            return None;
        }
        let end = match key.eth_type {
            ETH_TYPE_IPV4 => l3 + usize::from(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]])),
            _ => l3 + 40 + usize::from(u16::from_be_bytes([f[l3 + 4], f[l3 + 5]])),
        };
        Some((key, l4, end))
    }

    fn addrs4(key: &FlowKey) -> (Ipv4Addr, Ipv4Addr) {
        let s: [u8; 4] = key.nw_src[..4].try_into().unwrap();
        let d: [u8; 4] = key.nw_dst[..4].try_into().unwrap();
        (s.into(), d.into())
    }

    fn addrs6(key: &FlowKey) -> (Ipv6Addr, Ipv6Addr) {
        (key.nw_src.into(), key.nw_dst.into())
    }

    /// Recomputes the IPv4 header checksum and the L4 checksum (UDP 0 stays 0) in full.
    fn fix_checksums(f: &mut [u8]) {
        let (key, lay) = flow::extract(f, 1).unwrap();
        let l3 = usize::from(lay.l3);
        if key.eth_type == ETH_TYPE_IPV4 {
            Ipv4Packet::new_unchecked(&mut f[l3..]).fill_checksum();
        }
        let Some((key, l4, end)) = l4_segment(f) else {
            return;
        };
        let proto = IpProtocol(key.nw_proto);
        let Some(at) = checksum::field_offset(proto) else {
            return;
        };
        let seg = &f[l4..end];
        if proto == IpProtocol::UDP && seg[6..8] == [0, 0] {
            return;
        }
        let c = if key.eth_type == ETH_TYPE_IPV4 {
            let (s, d) = addrs4(&key);
            checksum::compute_v4(s, d, proto, seg)
        } else {
            let (s, d) = addrs6(&key);
            checksum::compute_v6(&s, &d, proto, seg)
        }
        .unwrap();
        let c = if proto == IpProtocol::UDP {
            checksum::udp_wire(c)
        } else {
            c
        };
        f[l4 + at..l4 + at + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// True when every checksum of the frame verifies from scratch.
    fn checksums_valid(f: &[u8]) -> bool {
        let (key, lay) = flow::extract(f, 1).unwrap();
        let l3 = usize::from(lay.l3);
        if key.eth_type == ETH_TYPE_IPV4
            && !Ipv4Packet::new_checked(&f[l3..]).unwrap().verify_checksum()
        {
            return false;
        }
        let Some((key, l4, end)) = l4_segment(f) else {
            return true;
        };
        let proto = IpProtocol(key.nw_proto);
        let seg = &f[l4..end];
        if key.eth_type == ETH_TYPE_IPV4 {
            let (s, d) = addrs4(&key);
            checksum::verify_v4(s, d, proto, seg)
        } else {
            let (s, d) = addrs6(&key);
            checksum::verify_v6(&s, &d, proto, seg)
        }
    }

    /// What `Field::get` reads back after writing `v`.
    fn expected(field: Field, v: u128) -> u128 {
        let v = v & field.max_value();
        match field {
            Field::VlanVid => u128::from(VLAN_PRESENT) | (v & 0x0fff),
            _ => v,
        }
    }

    /// Applies `field = value` to `frame` and checks it against the reference, the key read
    /// back and the checksums.
    fn check_set(frame: &[u8], field: Field, value: u128) -> Result<(), TestCaseError> {
        let (key, lay) = flow::extract(frame, 1).unwrap();
        let mut f = frame.to_vec();
        set_field(&mut f, &key, &lay, &Offload::NONE, field, value)
            .map_err(|e| TestCaseError::fail(format!("{field}: {e}")))?;
        prop_assert_eq!(&f, &reference(frame, field, value), "{}", field);
        let (k2, lay2) = flow::extract(&f, 1).unwrap();
        prop_assert_eq!(lay2, lay);
        prop_assert_eq!(field.get(&k2), expected(field, value), "{}", field);
        // Nothing else in the key moved.
        let mut k = key;
        field.set(&mut k, field.get(&k2));
        prop_assert_eq!(k, k2, "{}", field);
        prop_assert!(checksums_valid(&f), "{}", field);
        Ok(())
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| u8::try_from((i * 7 + 3) % 256).unwrap())
            .collect()
    }

    #[test]
    fn every_supported_field_is_written_with_valid_checksums() {
        for kind in KINDS {
            let frame = build(kind, &P, &payload(37));
            assert!(checksums_valid(&frame), "{kind:?}");
            for field in fields_of(kind) {
                for value in [0, 1, 0x5a5a_5a5a_5a5a_5a5a_5a5a_5a5a_5a5a_5a5a, u128::MAX] {
                    check_set(&frame, field, value)
                        .unwrap_or_else(|e| panic!("{kind:?} {field} {value:#x}: {e}"));
                }
            }
        }
    }

    #[test]
    fn dscp_and_ecn_keep_each_other_and_the_flow_label() {
        let mut f = build(Kind::Tcp6, &P, b"x");
        f[15] = 0x0a; // flow label 0xa_0000-ish bits in the second byte's low nibble
        f[16] = 0xbc;
        fix_checksums(&mut f);
        let (key, lay) = flow::extract(&f, 1).unwrap();
        set_field(&mut f, &key, &lay, &Offload::NONE, Field::IpDscp, 46).unwrap();
        let (key, lay) = flow::extract(&f, 1).unwrap();
        set_field(&mut f, &key, &lay, &Offload::NONE, Field::IpEcn, 2).unwrap();
        let (key, _) = flow::extract(&f, 1).unwrap();
        assert_eq!(key.nw_tos, (46 << 2) | 2);
        assert_eq!(f[14] >> 4, 6);
        assert_eq!(f[15] & 0x0f, 0x0a);
        assert_eq!(f[16], 0xbc);
    }

    #[test]
    fn a_udp_checksum_of_zero_stays_zero_and_a_computed_zero_is_sent_as_all_ones() {
        let frame = build(Kind::Udp4NoCsum, &P, b"abc");
        for field in [Field::IpSrc, Field::IpDst, Field::UdpSrc, Field::UdpDst] {
            let (key, lay) = flow::extract(&frame, 1).unwrap();
            let mut f = frame.clone();
            set_field(&mut f, &key, &lay, &Offload::NONE, field, 0x0102_0304).unwrap();
            assert_eq!(f[40..42], [0, 0], "{field}");
        }
        // Choose a destination that makes the computed checksum 0: then 0xffff goes out.
        let frame = build(Kind::Udp4, &P, b"abcd");
        let c = u16::from_be_bytes([frame[40], frame[41]]);
        let x = checksum::combine(!c, !checksum::sum(&V4_B));
        let word = if x == 0xffff { 0xffff } else { !x };
        let new = u128::from(word) << 16;
        let (key, lay) = flow::extract(&frame, 1).unwrap();
        let mut f = frame.clone();
        set_field(&mut f, &key, &lay, &Offload::NONE, Field::IpDst, new).unwrap();
        assert_eq!(f[40..42], [0xff, 0xff]);
        assert!(checksums_valid(&f));
        assert_eq!(f, reference(&frame, Field::IpDst, new));
    }

    #[test]
    fn a_non_first_fragment_only_changes_the_ip_header() {
        let frame = build(Kind::Frag4, &P, &payload(20));
        let (key, lay) = flow::extract(&frame, 1).unwrap();
        assert_ne!(key.nw_frag & frag::LATER, 0);
        let mut f = frame.clone();
        set_field(
            &mut f,
            &key,
            &lay,
            &Offload::NONE,
            Field::IpDst,
            0x0a09_0807,
        )
        .unwrap();
        assert_eq!(f[34..], frame[34..]);
        assert_eq!(
            set_field(&mut f, &key, &lay, &Offload::NONE, Field::UdpDst, 1),
            Err(NoSuchHeader)
        );
    }

    #[test]
    fn missing_headers_and_unwritable_fields_are_refused_and_leave_the_frame_alone() {
        let cases: [(Kind, Field, RewriteError); 12] = [
            (Kind::Udp4, Field::TcpDst, NoSuchHeader),
            (Kind::Tcp4, Field::UdpSrc, NoSuchHeader),
            (Kind::Icmp4, Field::TcpSrc, NoSuchHeader),
            (Kind::Tcp6, Field::IpSrc, NoSuchHeader),
            (Kind::Tcp4, Field::Ipv6Dst, NoSuchHeader),
            (Kind::Arp, Field::IpTtl, NoSuchHeader),
            (Kind::Arp, Field::IpDst, NoSuchHeader),
            (Kind::Tcp4, Field::ArpSpa, NoSuchHeader),
            (Kind::Tcp4, Field::VlanVid, NoTag),
            (Kind::Udp6, Field::VlanPcp, NoTag),
            (Kind::Tcp4, Field::InPort, RewriteError::NotWritable),
            (Kind::Tcp4, Field::TcpFlags, RewriteError::NotWritable),
        ];
        for (kind, field, err) in cases {
            let frame = build(kind, &P, b"zz");
            let (key, lay) = flow::extract(&frame, 1).unwrap();
            let mut f = frame.clone();
            assert_eq!(
                set_field(&mut f, &key, &lay, &Offload::NONE, field, 5),
                Err(err),
                "{kind:?} {field}"
            );
            assert_eq!(f, frame);
        }
        for field in crate::ofp::field::ALL {
            if !field.in_frame() {
                let mut f = build(Kind::Tcp4, &P, b"");
                let (key, lay) = flow::extract(&f, 1).unwrap();
                assert_eq!(
                    set_field(&mut f, &key, &lay, &Offload::NONE, field, 1),
                    Err(RewriteError::NotWritable)
                );
            }
        }
    }

    /// Replaces the L4 checksum by the pseudo-header sum, as a sender with `CHECKSUM_PARTIAL`
    /// leaves it, and returns the matching offload state.
    fn make_partial(f: &mut [u8]) -> Offload {
        let (key, l4, end) = l4_segment(f).unwrap();
        let proto = IpProtocol(key.nw_proto);
        let at = checksum::field_offset(proto).unwrap();
        let len = end - l4;
        let pseudo = if key.eth_type == ETH_TYPE_IPV4 {
            let (s, d) = addrs4(&key);
            checksum::pseudo_header_v4(s, d, proto, u16::try_from(len).unwrap())
        } else {
            let (s, d) = addrs6(&key);
            checksum::pseudo_header_v6(&s, &d, proto, u32::try_from(len).unwrap())
        };
        f[l4 + at..l4 + at + 2].copy_from_slice(&pseudo.to_be_bytes());
        Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: u16::try_from(l4).unwrap(),
            csum_offset: u16::try_from(at).unwrap(),
            ..Offload::NONE
        }
    }

    /// Applies `edits` to a partial-checksum copy of `frame`, completes it, and checks it equals
    /// the fully recomputed reference.
    fn check_partial(frame: &[u8], edits: &[(Field, u128)]) -> Result<(), TestCaseError> {
        let mut want = frame.to_vec();
        for (field, value) in edits {
            want = reference(&want, *field, *value);
        }
        let mut f = frame.to_vec();
        let off = make_partial(&mut f);
        for (field, value) in edits {
            let before = f.clone();
            let (key, lay) = flow::extract(&f, 1).unwrap();
            set_field(&mut f, &key, &lay, &off, *field, *value)
                .map_err(|e| TestCaseError::fail(format!("{field}: {e}")))?;
            // A port change leaves the partial sum alone.
            if matches!(
                field,
                Field::TcpSrc | Field::TcpDst | Field::UdpSrc | Field::UdpDst
            ) {
                let at = usize::from(off.csum_start + off.csum_offset);
                prop_assert_eq!(&f[at..at + 2], &before[at..at + 2]);
            }
        }
        offload::complete_csum(&mut f, &off).unwrap();
        prop_assert!(checksums_valid(&f));
        prop_assert_eq!(f, want);
        Ok(())
    }

    #[test]
    fn partial_checksums_follow_address_changes_and_ignore_port_changes() {
        let data = payload(300);
        check_partial(
            &build(Kind::Tcp4, &P, &data),
            &[(Field::IpDst, 0xc0a8_0101), (Field::TcpDst, 8080)],
        )
        .unwrap();
        check_partial(
            &build(Kind::Udp6, &P, &data),
            &[
                (Field::Ipv6Src, 0x2001_0db8 << 96 | 7),
                (Field::UdpSrc, 53),
                (Field::Ipv6Dst, u128::MAX - 5),
            ],
        )
        .unwrap();
        check_partial(
            &build(Kind::QinqTcp6, &P, &data),
            &[(Field::TcpSrc, 1), (Field::Ipv6Dst, 9), (Field::IpTtl, 3)],
        )
        .unwrap();
    }

    #[test]
    fn the_outer_udp_seed_of_a_tunnel_super_frame_follows_address_changes_and_zero_stays_zero() {
        // A UDP packet standing for the outer headers of a VXLAN super-frame; the partial
        // (inner) checksum starts past the UDP header.
        let data = payload(300);
        let frame = build(Kind::Udp4, &P, &data);
        let (key, l4, end) = l4_segment(&frame).unwrap();
        let len = u16::try_from(end - l4).unwrap();
        let (s0, d0) = addrs4(&key);
        let off = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4 | Offload::GSO_UDP_TUNNEL_IPV4,
            gso_size: 1400,
            csum_start: u16::try_from(l4 + 8 + 8 + 14 + 20).unwrap(),
            csum_offset: 16,
            ..Offload::NONE
        };
        let at = l4 + 6;
        let seed = |s, d| checksum::pseudo_header_v4(s, d, IpProtocol::UDP, len);
        let mut f = frame.clone();
        f[at..at + 2].copy_from_slice(&seed(s0, d0).to_be_bytes());
        let (k, lay) = flow::extract(&f, 1).unwrap();
        set_field(&mut f, &k, &lay, &off, Field::IpSrc, 0xc0a8_0109).unwrap();
        let s1 = Ipv4Addr::new(192, 168, 1, 9);
        assert_eq!(
            rd16(&f, at).unwrap(),
            seed(s1, d0),
            "the seed of the new addresses"
        );
        let (k, lay) = flow::extract(&f, 1).unwrap();
        let before = rd16(&f, at).unwrap();
        set_field(&mut f, &k, &lay, &off, Field::UdpSrc, 4242).unwrap();
        assert_eq!(rd16(&f, at).unwrap(), before, "ports are not in the seed");
        // No outer checksum: it stays none.
        let mut g = frame.clone();
        g[at..at + 2].copy_from_slice(&[0, 0]);
        let (k, lay) = flow::extract(&g, 1).unwrap();
        set_field(&mut g, &k, &lay, &off, Field::IpDst, 0x0a0b_0c0d).unwrap();
        assert_eq!(rd16(&g, at).unwrap(), 0);
    }

    #[test]
    fn a_partial_checksum_elsewhere_than_the_l4_field_is_refused() {
        let mut f = build(Kind::Tcp4, &P, b"abc");
        let mut off = make_partial(&mut f);
        off.csum_offset = 6;
        let before = f.clone();
        let (key, lay) = flow::extract(&f, 1).unwrap();
        assert_eq!(
            set_field(&mut f, &key, &lay, &off, Field::IpSrc, 1),
            Err(BadOffload)
        );
        assert_eq!(f, before);
        // A partial checksum of another header (an inner one) leaves this one complete.
        let frame = build(Kind::Udp4, &P, &payload(40));
        let inner = Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: 50,
            csum_offset: 16,
            ..Offload::NONE
        };
        let mut f = frame.clone();
        let (key, lay) = flow::extract(&f, 1).unwrap();
        set_field(&mut f, &key, &lay, &inner, Field::IpDst, 0x0b00_0001).unwrap();
        assert_eq!(f, reference(&frame, Field::IpDst, 0x0b00_0001));
    }

    #[test]
    fn an_ipv6_destination_behind_a_routing_header_leaves_the_l4_checksum() {
        // A routing header with one segment left whose last address is the final destination.
        let final_dst = [0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        let plain = build(Kind::Tcp6, &P, b"data");
        let mut f = plain[..54].to_vec();
        f[20] = 43;
        let mut rh = vec![6, 2, 0, 1, 0, 0, 0, 0];
        rh.extend_from_slice(&final_dst);
        f.extend_from_slice(&rh);
        f.extend_from_slice(&plain[54..]);
        let plen = u16::from_be_bytes([f[18], f[19]]) + 24;
        f[18..20].copy_from_slice(&plen.to_be_bytes());
        let seg_at = 54 + 24;
        let c = checksum::tcp_v6(&V6_A.into(), &final_dst.into(), &f[seg_at..]);
        f[seg_at + 16..seg_at + 18].copy_from_slice(&c.to_be_bytes());
        let (key, lay) = flow::extract(&f, 1).unwrap();
        assert_eq!(usize::from(lay.l4), seg_at);
        let before = f.clone();
        set_field(&mut f, &key, &lay, &Offload::NONE, Field::Ipv6Dst, 0x1234).unwrap();
        assert_eq!(f[seg_at..], before[seg_at..]);
        assert!(checksum::verify_v6(
            &V6_A.into(),
            &final_dst.into(),
            IpProtocol::TCP,
            &f[seg_at..]
        ));
        // With no segments left the destination is final and the checksum follows it.
        let mut g = before.clone();
        g[54 + 3] = 0;
        let c = checksum::tcp_v6(&V6_A.into(), &V6_B.into(), &g[seg_at..]);
        g[seg_at + 16..seg_at + 18].copy_from_slice(&c.to_be_bytes());
        check_set(&g, Field::Ipv6Dst, 0x1234).unwrap();
    }

    #[test]
    fn push_then_pop_vlan_round_trips_and_moves_the_offload_offsets() {
        let frame = build(Kind::Tcp4, &P, &payload(100));
        let off = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut tagged = Vec::with_capacity(2048);
        let ptr = tagged.as_ptr();
        let o1 = push_vlan(&frame, ETH_TYPE_VLAN, 0x6064, &off, &mut tagged).unwrap();
        assert_eq!(tagged.as_ptr(), ptr, "no reallocation");
        assert_eq!((o1.csum_start, o1.hdr_len), (38, 70));
        assert_eq!(tagged.len(), frame.len() + 4);
        assert_eq!(tagged[..12], frame[..12]);
        assert_eq!(tagged[12..16], [0x81, 0x00, 0x60, 0x64]);
        assert_eq!(tagged[16..], frame[12..]);
        let (key, lay) = flow::extract(&tagged, 1).unwrap();
        assert_eq!(key.vlan_vid(), Some(0x064));
        assert_eq!(Field::VlanPcp.get(&key), 3);
        assert_eq!((lay.tags, lay.l3), (1, 18));
        // A second tag (802.1ad outside), then a third is refused.
        let mut qinq = Vec::new();
        let o2 = push_vlan(&tagged, ETH_TYPE_QINQ, 5, &o1, &mut qinq).unwrap();
        let (key, lay) = flow::extract(&qinq, 1).unwrap();
        assert_eq!((key.vlan_vid(), lay.tags), (Some(5), 2));
        let mut scratch = vec![1, 2, 3];
        assert_eq!(
            push_vlan(&qinq, ETH_TYPE_VLAN, 1, &o2, &mut scratch),
            Err(RewriteError::TooManyTags)
        );
        assert_eq!(scratch, [1, 2, 3]);
        // Pop both.
        let mut back = Vec::new();
        let o3 = pop_vlan(&qinq, &o2, &mut back).unwrap();
        assert_eq!((back.as_slice(), o3), (tagged.as_slice(), o1));
        let o4 = pop_vlan(&tagged, &o1, &mut back).unwrap();
        assert_eq!((back.as_slice(), o4), (frame.as_slice(), off));
        assert_eq!(pop_vlan(&frame, &off, &mut back), Err(NoTag));
        // Without offload nothing moves.
        let o = push_vlan(&frame, ETH_TYPE_VLAN, 1, &Offload::NONE, &mut back).unwrap();
        assert_eq!(o, Offload::NONE);
    }

    #[test]
    fn push_and_pop_vlan_reject_bad_input() {
        let frame = build(Kind::Udp4, &P, b"");
        let mut out = Vec::new();
        assert_eq!(
            push_vlan(&frame, 0x0800, 1, &Offload::NONE, &mut out),
            Err(RewriteError::BadTpid)
        );
        assert_eq!(
            push_vlan(&frame[..13], 0x8100, 1, &Offload::NONE, &mut out),
            Err(Truncated)
        );
        let early = Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: 4,
            ..Offload::NONE
        };
        assert_eq!(
            push_vlan(&frame, 0x8100, 1, &early, &mut out),
            Err(BadOffload)
        );
        let big = Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: u16::MAX - 1,
            ..Offload::NONE
        };
        assert_eq!(
            push_vlan(&frame, 0x8100, 1, &big, &mut out),
            Err(RewriteError::FrameTooBig)
        );
        let tagged = build(Kind::VlanUdp4, &P, b"");
        assert_eq!(
            pop_vlan(&tagged[..17], &Offload::NONE, &mut out),
            Err(Truncated)
        );
        assert_eq!(pop_vlan(&tagged, &early, &mut out), Err(BadOffload));
        assert_eq!(
            pop_vlan(&tagged[..10], &Offload::NONE, &mut out),
            Err(Truncated)
        );
    }

    #[test]
    fn vlan_vid_and_pcp_are_set_independently() {
        let frame = build(Kind::VlanUdp4, &P, b"");
        let (key, lay) = flow::extract(&frame, 1).unwrap();
        let mut f = frame.clone();
        set_field(&mut f, &key, &lay, &Offload::NONE, Field::VlanPcp, 5).unwrap();
        set_field(
            &mut f,
            &key,
            &lay,
            &Offload::NONE,
            Field::VlanVid,
            0x1000 | 42,
        )
        .unwrap();
        let (k2, _) = flow::extract(&f, 1).unwrap();
        assert_eq!(k2.vlan_vid(), Some(42));
        assert_eq!(Field::VlanPcp.get(&k2), 5);
        assert_eq!(f[16..], frame[16..]);
    }

    #[test]
    fn dec_ttl_decrements_and_refuses_expired_frames() {
        for kind in [Kind::Tcp4, Kind::Udp6, Kind::VlanUdp4, Kind::QinqTcp6] {
            let frame = build(kind, &P, b"ttl");
            let (key, lay) = flow::extract(&frame, 1).unwrap();
            let mut f = frame.clone();
            assert_eq!(dec_ttl(&mut f, &key, &lay), Ok(true));
            let (k2, _) = flow::extract(&f, 1).unwrap();
            assert_eq!(k2.nw_ttl, 63);
            assert!(checksums_valid(&f));
            assert_eq!(f, reference(&frame, Field::IpTtl, 63));
            for ttl in [0, 1] {
                let p = Params { ttl, ..P };
                let frame = build(kind, &p, b"ttl");
                let (key, lay) = flow::extract(&frame, 1).unwrap();
                let mut f = frame.clone();
                assert_eq!(dec_ttl(&mut f, &key, &lay), Ok(false), "{kind:?} {ttl}");
                assert_eq!(f, frame);
            }
        }
        let mut f = build(Kind::Arp, &P, b"");
        let (key, lay) = flow::extract(&f, 1).unwrap();
        assert_eq!(dec_ttl(&mut f, &key, &lay), Err(NoSuchHeader));
        let p = Params { ttl: 2, ..P };
        let mut f = build(Kind::Tcp4, &p, b"");
        let (key, lay) = flow::extract(&f, 1).unwrap();
        assert_eq!(dec_ttl(&mut f, &key, &lay), Ok(true));
        assert_eq!(dec_ttl(&mut f, &key, &lay), Ok(false));
        assert!(checksums_valid(&f));
    }

    fn params() -> impl Strategy<Value = Params> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u16>(),
            any::<u16>(),
            2u8..,
        )
            .prop_map(|(s4, d4, s6, d6, sp, dp, ttl)| Params {
                s4,
                d4,
                s6,
                d6,
                sp,
                dp,
                ttl,
            })
    }

    fn any_offload() -> impl Strategy<Value = Offload> {
        (
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            0u16..80,
            0u16..24,
        )
            .prop_map(
                |(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)| Offload {
                    flags,
                    gso_type,
                    hdr_len,
                    gso_size,
                    csum_start,
                    csum_offset,
                },
            )
    }

    proptest! {
        #[test]
        fn incremental_updates_equal_a_full_recomputation(
            kind in proptest::sample::select(KINDS.to_vec()),
            p in params(),
            len in 0usize..64,
            pick in proptest::collection::vec((any::<usize>(), any::<u128>()), 1..4),
        ) {
            let mut frame = build(kind, &p, &payload(len));
            let fields = fields_of(kind);
            // Several edits in a row, each checked against the reference.
            for (i, value) in pick {
                let field = fields[i % fields.len()];
                check_set(&frame, field, value)?;
                frame = reference(&frame, field, value);
            }
        }

        #[test]
        fn partial_checksums_complete_to_the_full_recomputation(
            kind in proptest::sample::select(
                vec![Kind::Tcp4, Kind::Udp4, Kind::Tcp6, Kind::Udp6, Kind::Icmp6, Kind::QinqTcp6]
            ),
            p in params(),
            len in 0usize..64,
            pick in proptest::collection::vec((any::<usize>(), any::<u128>()), 1..4),
        ) {
            let frame = build(kind, &p, &payload(len));
            let fields = fields_of(kind);
            let edits: Vec<(Field, u128)> =
                pick.into_iter().map(|(i, v)| (fields[i % fields.len()], v)).collect();
            check_partial(&frame, &edits)?;
        }

        #[test]
        fn garbage_never_panics_and_errors_leave_the_frame_alone(
            bytes in proptest::collection::vec(any::<u8>(), 0..96),
            eth_type in proptest::sample::select(
                vec![ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_ARP, 0x1234]
            ),
            nw_proto in proptest::sample::select(vec![1u8, 6, 17, 58, 0, 43]),
            nw_frag in 0u8..4,
            l3 in 0u16..100,
            l4 in 0u16..120,
            tags in 0u8..4,
            off in any_offload(),
            field in proptest::sample::select(crate::ofp::field::ALL.to_vec()),
            value in any::<u128>(),
            tpid in proptest::sample::select(vec![0x8100u16, 0x88a8, 0x0800]),
        ) {
            let key = FlowKey { eth_type, nw_proto, nw_frag, ..FlowKey::default() };
            let lay = Layout { l3, l4, tags };
            let mut f = bytes.clone();
            if set_field(&mut f, &key, &lay, &off, field, value).is_err() {
                prop_assert_eq!(&f, &bytes);
            }
            let mut f = bytes.clone();
            if dec_ttl(&mut f, &key, &lay) != Ok(true) {
                prop_assert_eq!(&f, &bytes);
            }
            let mut out = vec![7u8];
            if push_vlan(&bytes, tpid, 1, &off, &mut out).is_ok() {
                prop_assert_eq!(out.len(), bytes.len() + 4);
                // Popping the pushed tag restores the frame and its offload state.
                let o = push_vlan(&bytes, tpid, 1, &off, &mut out).unwrap();
                let mut back = Vec::new();
                prop_assert_eq!(pop_vlan(&out, &o, &mut back), Ok(off));
                prop_assert_eq!(&back, &bytes);
            } else {
                prop_assert_eq!(&out, &[7u8]);
            }
            let mut out = vec![7u8];
            if pop_vlan(&bytes, &off, &mut out).is_err() {
                prop_assert_eq!(&out, &[7u8]);
            }
            // Also through a real key of the bytes, when they parse.
            if let Ok((key, lay)) = flow::extract(&bytes, 1) {
                let mut f = bytes.clone();
                if set_field(&mut f, &key, &lay, &off, field, value).is_err() {
                    prop_assert_eq!(&f, &bytes);
                }
            }
        }
    }
}
