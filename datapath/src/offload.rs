//! Checksum completion and software segmentation for ports without offloads (hot path).
//!
//! Frames can arrive with work left to do (see [`Offload`], the `virtio_net_hdr` semantics):
//! - from a TAP port with `IFF_VNET_HDR`, a frame may carry `F_NEEDS_CSUM` (the L4 checksum
//!   field holds only the pseudo-header sum; the rest is to be summed from `csum_start`) and may
//!   be a GSO super-frame of up to 64 KiB to be cut into `gso_size` segments;
//! - from an AF_XDP port on a veth, frames that a container stack sent with `CHECKSUM_PARTIAL`
//!   arrive with that partial sum in the field but *no* metadata saying so (the state is lost
//!   crossing XDP), so they look like frames with a bad checksum.
//!
//! Before such a frame goes to a port that cannot carry offload state, the worker calls:
//! - [`repair_partial_csum`] on every frame received from AF_XDP (in place, one pass);
//! - [`complete_csum`] when only `F_NEEDS_CSUM` is set (in place);
//! - [`segment`] for GSO frames (and, conveniently, for any frame with pending work): it writes
//!   each complete segment into a [`SegmentBuf`] and hands it to a callback.
//!
//! Nothing here allocates except [`SegmentBuf::new`], called once per worker at start. Malformed
//! input yields a [`ParseError`] (or [`CsumState::NotApplicable`]), never a panic.
//!
//! Thread-safety: pure functions; a [`SegmentBuf`] belongs to one worker.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::buf::Offload;
use crate::wire::{
    EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, ParseError, TcpFlags, TcpPacket,
    UdpPacket, checksum, ethernet, ipv6, tcp, udp, vlan,
};

/// Most VLAN tags looked through (an 802.1ad service tag and an 802.1Q customer tag).
const MAX_TAGS: usize = 2;

/// What [`repair_partial_csum`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CsumState {
    /// The full L4 checksum was already correct (or a UDP/IPv4 checksum of 0, "none").
    Valid,
    /// The field held the pseudo-header sum only; the checksum was completed in place.
    Completed,
    /// The field does not hold the pseudo-header sum, so the sender computed a full checksum:
    /// left as it was, unverified (verifying is the receiver's job; summing every frame's
    /// payload here would cost more than the rest of the switching).
    NotPartial,
    /// A UDP/IPv6 checksum of 0 (not allowed); the frame was left as it was.
    Bad,
    /// Not TCP or UDP over IP, a fragment, or headers too malformed to tell; left as it was.
    NotApplicable,
}

/// Source and destination of the IP header in front of an L4 header.
#[derive(Clone, Copy, Debug)]
enum Addrs {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

impl Addrs {
    /// Pseudo-header sum for an L4 segment of `len` bytes.
    #[inline]
    fn pseudo(&self, protocol: IpProtocol, len: usize) -> Result<u16, ParseError> {
        Ok(match self {
            Self::V4(s, d) => checksum::pseudo_header_v4(
                *s,
                *d,
                protocol,
                u16::try_from(len).map_err(|_| ParseError::BadLength)?,
            ),
            Self::V6(s, d) => checksum::pseudo_header_v6(
                s,
                d,
                protocol,
                u32::try_from(len).map_err(|_| ParseError::BadLength)?,
            ),
        })
    }
}

/// Where the IP and L4 headers of a frame are.
#[derive(Clone, Copy, Debug)]
struct Headers {
    /// Offset of the IP header (after any VLAN tags).
    l3: usize,
    /// Offset of the L4 header (after IPv4 options or IPv6 extension headers).
    l4: usize,
    /// End of the IP packet (total length / payload length; Ethernet padding excluded).
    end: usize,
    /// Upper-layer protocol.
    protocol: IpProtocol,
    /// IP addresses.
    addrs: Addrs,
    /// A fragment that does not hold a whole L4 packet.
    fragment: bool,
    /// IPv4 identification (0 for IPv6).
    ident: u16,
}

impl Headers {
    #[inline]
    fn is_v4(&self) -> bool {
        matches!(self.addrs, Addrs::V4(..))
    }

    /// The IP length field of this packet cut to end at `end` (a frame offset): the whole
    /// packet for IPv4, what follows the fixed header for IPv6.
    fn ip_len(&self, end: usize) -> Result<u16, ParseError> {
        let fixed = if self.is_v4() { 0 } else { ipv6::HEADER_LEN };
        u16::try_from(end - self.l3 - fixed).map_err(|_| ParseError::BadLength)
    }
}

/// Finds the IP and L4 headers of an Ethernet frame with up to two VLAN tags.
fn parse_headers(frame: &[u8]) -> Result<Headers, ParseError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let mut ty = eth.ethertype();
    let mut l3 = ethernet::HEADER_LEN;
    let mut tags = 0;
    while ty.is_vlan_tpid() {
        if tags == MAX_TAGS {
            return Err(ParseError::BadHeader);
        }
        let tag = vlan::Packet::new_checked(frame.get(l3..).ok_or(ParseError::Truncated)?)?;
        ty = tag.ethertype();
        l3 += vlan::HEADER_LEN;
        tags += 1;
    }
    parse_l3(frame, l3, ty)
}

/// The IP and L4 headers of `frame` from offset `l3`, where an IP packet of type `ty` starts.
fn parse_l3(frame: &[u8], l3: usize, ty: EtherType) -> Result<Headers, ParseError> {
    let ip = frame.get(l3..).ok_or(ParseError::Truncated)?;
    match ty {
        EtherType::IPV4 => {
            let p = Ipv4Packet::new_checked(ip)?;
            let dst = v4_final_dst(&ip[..p.header_len()]).unwrap_or_else(|| p.dst_addr());
            Ok(Headers {
                l3,
                l4: l3 + p.header_len(),
                end: l3 + usize::from(p.total_len()),
                protocol: p.protocol(),
                addrs: Addrs::V4(p.src_addr(), dst),
                fragment: p.is_fragment(),
                ident: p.ident(),
            })
        }
        EtherType::IPV6 => {
            let p = Ipv6Packet::new_checked(ip)?;
            let upper = p.upper_layer()?;
            let dst = v6_final_dst(&ip[..upper.offset]).unwrap_or_else(|| p.dst_addr());
            Ok(Headers {
                l3,
                l4: l3 + upper.offset,
                end: l3 + ipv6::HEADER_LEN + usize::from(p.payload_len()),
                protocol: upper.protocol,
                addrs: Addrs::V6(p.src_addr(), dst),
                fragment: upper.fragment.is_some_and(|f| !f.is_atomic()),
                ident: 0,
            })
        }
        _ => Err(ParseError::BadHeader),
    }
}

/// The final destination of an IPv4 packet whose header `hdr` (options included) carries an
/// unexhausted loose or strict source route: the last address of the route data, where the
/// sender put it (Linux `ip_options_build`). The TCP and UDP pseudo-headers use that address,
/// not the first hop in the header: the sender summed its socket's destination
/// (`tcp_v4_send_check`, `inet_daddr`), and the final receiver, whose header by then holds
/// it, verifies against it. `None` without such an option.
fn v4_final_dst(hdr: &[u8]) -> Option<Ipv4Addr> {
    let opts = hdr.get(20..)?;
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        match kind {
            0 => return None,
            1 => i += 1,
            _ => {
                let len = usize::from(*opts.get(i + 1)?);
                let opt = opts.get(i..i + len).filter(|_| len >= 2)?;
                // LSRR, SSRR: type, length, pointer, addresses; the pointer past the end
                // means the route is done and the header holds the final destination.
                if matches!(kind, 131 | 137) {
                    return (len >= 7 && usize::from(opt[2]) <= len).then(|| {
                        Ipv4Addr::new(opt[len - 4], opt[len - 3], opt[len - 2], opt[len - 1])
                    });
                }
                i += len;
            }
        }
    }
    None
}

/// The final destination of an IPv6 packet (`ip`: the fixed header and the extension headers
/// up to the upper layer) with a routing header whose segments are not all visited: the last
/// address of a type 0 header, the home address of a type 2 one, Segment List[0] of a segment
/// routing header (type 4). The pseudo-header uses it (RFC 8200 §8.1). `None` otherwise.
fn v6_final_dst(ip: &[u8]) -> Option<Ipv6Addr> {
    let mut next = *ip.get(6)?;
    let mut at = ipv6::HEADER_LEN;
    while at < ip.len() {
        let h = ip.get(at..at + 8)?;
        let len = match next {
            0 | 60 => (usize::from(h[1]) + 1) * 8,
            44 => 8,
            43 => {
                let (kind, left) = (h[2], h[3]);
                let words = usize::from(h[1]);
                let addr = |k: usize| -> Option<Ipv6Addr> {
                    let a = ip.get(at + 8 + 16 * k..at + 8 + 16 * (k + 1))?;
                    Some(Ipv6Addr::from(<[u8; 16]>::try_from(a).ok()?))
                };
                return match kind {
                    _ if left == 0 || words < 2 => None,
                    0 => addr(words / 2 - 1),
                    2 | 4 => addr(0),
                    _ => None,
                };
            }
            _ => return None,
        };
        next = h[0];
        at += len;
    }
    None
}

#[inline]
fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
fn write_u16(b: &mut [u8], at: usize, v: u16) -> Result<(), ParseError> {
    b.get_mut(at..at + 2)
        .ok_or(ParseError::Truncated)?
        .copy_from_slice(&v.to_be_bytes());
    Ok(())
}

/// Marks the GSO super-frame `frame` as a UDP-tunnel one (VXLAN, Geneve: a container that runs
/// an overlay itself) when its outer L4 header is UDP but its partial checksum starts further
/// in, at the inner L4 header. The kernel hands such frames to a TAP or packet socket as plain
/// TCP (or UDP) GSO: the virtio-net header has no room for the tunnel, and a port that passed
/// the frame on as it is would see the kernel refuse it. Marked frames are segmented in
/// software instead ([`segment`], [`Offload::passes`]). Cheap: only GSO frames are parsed.
///
/// A frame a tunnel-capable TAP marked itself keeps its mark, with the bit set to the outer IP
/// version found (Linux picks it by `skb->protocol`, which for a frame with a VLAN tag in its
/// data is the tag's EtherType, not the IP version).
#[inline]
pub fn mark_udp_tunnel(frame: &[u8], off: &mut Offload) {
    if !off.is_gso() || !off.needs_csum() {
        return;
    }
    let Ok(h) = parse_headers(frame) else {
        return;
    };
    // UDP, then at least a tunnel header of 8 bytes before the inner headers.
    if h.protocol == IpProtocol::UDP
        && usize::from(off.csum_start) >= h.l4 + udp::HEADER_LEN + TUNNEL_HEADER_LEN
    {
        let bit = if h.is_v4() {
            Offload::GSO_UDP_TUNNEL_IPV4
        } else {
            Offload::GSO_UDP_TUNNEL_IPV6
        };
        off.gso_type = (off.gso_type & !Offload::GSO_UDP_TUNNEL) | bit;
    }
}

/// Where the tunnel is in a UDP-tunnel super-frame, as the tunnel form of the virtio-net header
/// gives it: the outer UDP header's offset, the inner IP header's offset, and whether the outer
/// UDP checksum is in use (not 0). `None` when the frame is not one [`segment`] would accept
/// as a tunnel frame (see `tunnel_layout`).
pub fn tunnel_offsets(frame: &[u8], off: &Offload) -> Option<(u16, u16, bool)> {
    let t = tunnel_layout(frame, off).ok()?;
    Some((
        u16::try_from(t.outer.l4).ok()?,
        u16::try_from(t.inner.l3).ok()?,
        t.udp_csum,
    ))
}

/// A UDP-tunnel super-frame's headers, as [`tunnel_layout`] found them.
#[derive(Clone, Copy, Debug)]
struct Tunnel {
    outer: Headers,
    inner: Headers,
    /// The outer UDP checksum is in use (the field is not 0).
    udp_csum: bool,
}

/// The outer and inner headers of a UDP-tunnel super-frame (`off` marked as one), checked as
/// the kernel and [`segment`] need them: the partial checksum set; exactly one tunnel bit, the
/// outer IP version's; an outer UDP header, not a fragment; a tunnel [`inner_headers`] finds
/// with the inner L4 header at `csum_start`; and a GSO kind that fits the inner packet (TCPv4
/// over IPv4, TCPv6 over IPv6, UDP segmentation over UDP).
fn tunnel_layout(frame: &[u8], off: &Offload) -> Result<Tunnel, ParseError> {
    let bits = off.gso_type & Offload::GSO_UDP_TUNNEL;
    if !off.needs_csum() || bits.count_ones() != 1 {
        return Err(ParseError::BadHeader);
    }
    let outer = parse_headers(frame)?;
    let v4_bit = bits == Offload::GSO_UDP_TUNNEL_IPV4;
    if outer.protocol != IpProtocol::UDP || outer.fragment || outer.is_v4() != v4_bit {
        return Err(ParseError::BadHeader);
    }
    let inner = inner_headers(frame, &outer, usize::from(off.csum_start))?;
    match (off.gso_kind(), inner.protocol, inner.is_v4()) {
        (Offload::GSO_TCPV4, IpProtocol::TCP, true)
        | (Offload::GSO_TCPV6, IpProtocol::TCP, false)
        | (Offload::GSO_UDP_L4, IpProtocol::UDP, _) => {}
        _ => return Err(ParseError::BadHeader),
    }
    let csum = read_u16(frame, outer.l4 + udp::CHECKSUM_OFFSET).ok_or(ParseError::Truncated)?;
    Ok(Tunnel {
        outer,
        inner,
        udp_csum: csum != 0,
    })
}

/// Fixed part of the VXLAN, VXLAN-GPE and Geneve headers.
const TUNNEL_HEADER_LEN: usize = 8;
/// Geneve's protocol type for an Ethernet payload (Transparent Ethernet Bridging).
const ETH_P_TEB: u16 = 0x6558;

/// The inner headers of a UDP-tunnel packet (`outer`'s L4 header is the UDP one), with offsets
/// from the start of `frame`. Tried, in order: an Ethernet frame behind a VXLAN header (I flag)
/// or a Geneve header (version 0, protocol 0x6558, with its options); an IP packet right behind
/// the UDP header (FOU, bare UDP), behind a GUE header (version 0, no options, protocol 4 or
/// 41), behind a Geneve header with its options (protocol 0x0800 or 0x86dd), or behind a
/// VXLAN-GPE header (P flag, next protocol IPv4 or IPv6). The one taken puts the inner L4
/// header at `l4` (the frame's `csum_start`) and ends where the outer packet ends, which is
/// what makes the guess safe: the sender's kernel put its partial checksum there.
fn inner_headers(frame: &[u8], outer: &Headers, l4: usize) -> Result<Headers, ParseError> {
    let at = outer.l4 + udp::HEADER_LEN;
    let t = frame
        .get(at..at + TUNNEL_HEADER_LEN)
        .ok_or(ParseError::Truncated)?;
    let (version0, proto) = (t[0] >> 6 == 0, u16::from_be_bytes([t[2], t[3]]));
    let geneve_end = at + TUNNEL_HEADER_LEN + usize::from(t[0] & 0x3f) * 4;
    let eth = [
        (t[0] & 0x08 != 0).then_some(at + TUNNEL_HEADER_LEN),
        (version0 && proto == ETH_P_TEB).then_some(geneve_end),
    ];
    let ip = [
        Some(at),
        (version0 && t[0] & 0x1f == 0 && matches!(t[1], 4 | 41)).then_some(at + 4),
        (version0 && matches!(proto, 0x0800 | 0x86dd)).then_some(geneve_end),
        (t[0] & 0x04 != 0 && matches!(t[3], 1 | 2)).then_some(at + TUNNEL_HEADER_LEN),
    ];
    let found = |start: usize, h: Result<Headers, ParseError>| {
        let mut h = h.ok()?;
        h.l3 += start;
        h.l4 += start;
        h.end += start;
        (h.l4 == l4 && h.end == outer.end && !h.fragment).then_some(h)
    };
    let inner = frame.get(..outer.end).ok_or(ParseError::Truncated)?;
    for e in eth.into_iter().flatten() {
        if let Some(h) = inner.get(e..).and_then(|f| found(e, parse_headers(f))) {
            return Ok(h);
        }
    }
    for i in ip.into_iter().flatten() {
        let ty = match inner.get(i).map(|b| b >> 4) {
            Some(4) => EtherType::IPV4,
            Some(6) => EtherType::IPV6,
            _ => continue,
        };
        if let Some(h) = inner.get(i..).and_then(|f| found(i, parse_l3(f, 0, ty))) {
            return Ok(h);
        }
    }
    Err(ParseError::BadHeader)
}

/// Smallest segment size of a TCP super-frame a Linux sender makes (`TCP_MIN_SND_MSS`).
pub const MIN_TCP_GSO_SIZE: u16 = 48;
/// Most segments of a UDP super-frame a Linux sender makes (`UDP_MAX_SEGMENTS`).
pub const MAX_UDP_GSO_SEGS: usize = 128;

/// True when a received GSO super-frame (true for any other) cuts into no more segments than
/// a real sender's would: TCP segments of at least [`MIN_TCP_GSO_SIZE`] bytes, at most
/// [`MAX_UDP_GSO_SEGS`] UDP ones. A `gso_size` of 1 would have the switch (or the next
/// device) make a 55-byte frame of each payload byte: 65 000 frames from one.
pub fn gso_size_fits(frame: &[u8], off: &Offload) -> bool {
    if !off.is_gso() {
        return true;
    }
    match off.gso_kind() {
        Offload::GSO_TCPV4 | Offload::GSO_TCPV6 => off.gso_size >= MIN_TCP_GSO_SIZE,
        Offload::GSO_UDP_L4 => {
            let payload = frame
                .len()
                .saturating_sub(usize::from(off.csum_start) + udp::HEADER_LEN);
            off.gso_size != 0 && payload.div_ceil(usize::from(off.gso_size)) <= MAX_UDP_GSO_SEGS
        }
        // Refused later (segmentation, or the kernel of the port it goes to).
        _ => true,
    }
}

/// True when the partial checksum of a received frame (`F_NEEDS_CSUM`; true without it) is
/// one that completing may store: the TCP or UDP checksum field of the frame's L4 header
/// (`l4`, `proto` as flow extraction found them: `csum_start == l4`, `csum_offset` 16 or 6),
/// or of the inner L4 header of a UDP tunnel (VXLAN, Geneve, …; see `inner_headers`), of
/// IP-in-IP or of GRE (`ip_tunnel_inner`). Any
/// other place — an address, a port, a tag — is two bytes of the sender's choice that the
/// switch ([`complete_csum`]) or the next device would overwrite after the flows matched the
/// frame: such a frame is refused.
pub fn partial_csum_fits(frame: &[u8], off: &Offload, l4: usize, proto: u8) -> bool {
    if !off.needs_csum() {
        return true;
    }
    let start = usize::from(off.csum_start);
    let field = |p: IpProtocol| match p {
        IpProtocol::TCP => Some(tcp::CHECKSUM_OFFSET),
        IpProtocol::UDP => Some(udp::CHECKSUM_OFFSET),
        _ => None,
    };
    let fits = |p: IpProtocol| {
        field(p) == Some(usize::from(off.csum_offset))
            && start + usize::from(off.csum_offset) + 2 <= frame.len()
    };
    // (Flow extraction leaves `l4` at 0 for protocols whose header it does not read, such
    // as IP-in-IP and GRE: their L4 offset is the outer headers'.)
    if l4 != 0 && start == l4 {
        return fits(IpProtocol::from(proto));
    }
    let Ok(outer) = parse_headers(frame) else {
        return false;
    };
    if (l4 != 0 && outer.l4 != l4) || outer.fragment || start <= outer.l4 {
        return false;
    }
    let l4 = outer.l4;
    let inner = match proto {
        17 if outer.protocol == IpProtocol::UDP
            && start >= l4 + udp::HEADER_LEN + TUNNEL_HEADER_LEN =>
        {
            inner_headers(frame, &outer, start).ok()
        }
        IPPROTO_IPIP | IPPROTO_IPV6 | IPPROTO_GRE => ip_tunnel_inner(frame, &outer, proto, start),
        _ => None,
    };
    inner.is_some_and(|h| fits(h.protocol))
}

/// IPv4 in IP.
const IPPROTO_IPIP: u8 = 4;
/// IPv6 in IP.
const IPPROTO_IPV6: u8 = 41;
/// GRE.
const IPPROTO_GRE: u8 = 47;

/// The inner headers of an IP-in-IP packet (`proto` 4 or 41: an IP header right behind the
/// outer one) or a GRE one (47: version 0 without routing, its optional checksum, key and
/// sequence number, then IPv4, IPv6 or an Ethernet frame), when its inner L4 header is at `l4`
/// and it ends where the outer packet ends (an overlay in the container whose kernel left the
/// inner checksum partial).
fn ip_tunnel_inner(frame: &[u8], outer: &Headers, proto: u8, l4: usize) -> Option<Headers> {
    let inner = frame.get(..outer.end)?;
    let (at, eth) = if proto == IPPROTO_GRE {
        let g = inner.get(outer.l4..outer.l4 + 4)?;
        let flags = u16::from_be_bytes([g[0], g[1]]);
        // Routing present, reserved bits or a version other than 0: not the GRE of RFC 2784.
        if flags & 0x4fff != 0 {
            return None;
        }
        let words = [0x8000u16, 0x2000, 0x1000]
            .iter()
            .filter(|&&b| flags & b != 0)
            .count();
        let at = outer.l4 + 4 + 4 * words;
        match u16::from_be_bytes([g[2], g[3]]) {
            0x0800 | 0x86dd => (at, false),
            ETH_P_TEB => (at, true),
            _ => return None,
        }
    } else {
        (outer.l4, false)
    };
    let rest = inner.get(at..)?;
    let h = if eth {
        parse_headers(rest)
    } else {
        let ty = match rest.first().map(|b| b >> 4) {
            Some(4) => EtherType::IPV4,
            Some(6) => EtherType::IPV6,
            _ => return None,
        };
        parse_l3(rest, 0, ty)
    };
    let mut h = h.ok()?;
    h.l3 += at;
    h.l4 += at;
    h.end += at;
    (h.l4 == l4 && h.end == outer.end && !h.fragment).then_some(h)
}

/// Completes an `F_NEEDS_CSUM` checksum in place: sums `frame[csum_start..]` (whose checksum
/// field, at `csum_start + csum_offset`, already holds the pseudo-header sum, as virtio and
/// Linux `CHECKSUM_PARTIAL` leave it) and stores the inverted result. Like Linux, a result of
/// 0 is stored as `0xffff` (required for UDP, equivalent for TCP). Does nothing when
/// `F_NEEDS_CSUM` is not set; the caller clears the flag in its copy of the offload state.
///
/// # Errors
/// [`ParseError::Truncated`] when `csum_start` or the checksum field lie outside the frame;
/// [`ParseError::BadHeader`] when `csum_offset` is odd (the field would straddle words).
pub fn complete_csum(frame: &mut [u8], off: &Offload) -> Result<(), ParseError> {
    if !off.needs_csum() {
        return Ok(());
    }
    let start = usize::from(off.csum_start);
    let at = start + usize::from(off.csum_offset);
    if !off.csum_offset.is_multiple_of(2) {
        return Err(ParseError::BadHeader);
    }
    if at + 2 > frame.len() {
        return Err(ParseError::Truncated);
    }
    let sum = checksum::sum(&frame[start..]);
    write_u16(frame, at, checksum::udp_wire(!sum))
}

/// Looks at the TCP or UDP checksum of a frame received without offload metadata (AF_XDP) and
/// completes it when it holds only the pseudo-header sum, as a Linux stack sending with
/// `CHECKSUM_PARTIAL` leaves it (folded, not inverted). The field is compared with the
/// pseudo-header sum first, so only frames that may be partial have their L4 bytes summed:
///
/// - the field is not the pseudo-header sum → [`CsumState::NotPartial`], frame untouched
///   and not verified (the common case of a full checksum: no pass over the payload);
/// - it is, and the full checksum verifies anyway → [`CsumState::Valid`] (also a UDP/IPv4
///   checksum of 0);
/// - it is, and does not verify → the checksum is completed in place (a UDP result of 0 is
///   stored as `0xffff`) → [`CsumState::Completed`];
/// - a UDP/IPv6 checksum of 0 → [`CsumState::Bad`], frame untouched;
/// - not TCP/UDP over IPv4/IPv6, fragments, and malformed headers →
///   [`CsumState::NotApplicable`], frame untouched (flow extraction will judge those).
///
/// Looks through up to two VLAN tags and IPv6 extension headers. The UDP checksum covers the
/// UDP length; the TCP checksum the IP payload.
pub fn repair_partial_csum(frame: &mut [u8]) -> CsumState {
    let Ok(h) = parse_headers(frame) else {
        return CsumState::NotApplicable;
    };
    repair_at(frame, &h)
}

/// [`repair_partial_csum`] for a frame already parsed by [`crate::flow::extract`]: the
/// headers' places come from its key and layout instead of a second parse (the worker's
/// AF_XDP receive path). Same results, except that IPv6 atomic fragments are left alone.
pub fn repair_partial_csum_keyed(
    frame: &mut [u8],
    key: &crate::flow::FlowKey,
    lay: &crate::flow::Layout,
) -> CsumState {
    let (l3, l4) = (usize::from(lay.l3), usize::from(lay.l4));
    if l4 == 0 || key.nw_frag != 0 || !matches!(key.nw_proto, 6 | 17) {
        return CsumState::NotApplicable;
    }
    let (addrs, end) = match key.eth_type {
        crate::flow::ETH_TYPE_IPV4 => {
            let ip4 = |a: &[u8; 16]| Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let Some(total) = read_u16(frame, l3 + 2) else {
                return CsumState::NotApplicable;
            };
            // (Options, such as a source route, may name another final destination.)
            let dst = frame
                .get(l3..l4)
                .filter(|h| h.len() > 20)
                .and_then(v4_final_dst)
                .unwrap_or_else(|| ip4(&key.nw_dst));
            (Addrs::V4(ip4(&key.nw_src), dst), l3 + usize::from(total))
        }
        crate::flow::ETH_TYPE_IPV6 => {
            let Some(payload) = read_u16(frame, l3 + 4) else {
                return CsumState::NotApplicable;
            };
            // (A routing header may name another final destination.)
            let dst = frame
                .get(l3..l4)
                .filter(|h| h.len() > ipv6::HEADER_LEN)
                .and_then(v6_final_dst)
                .unwrap_or_else(|| Ipv6Addr::from(key.nw_dst));
            (
                Addrs::V6(Ipv6Addr::from(key.nw_src), dst),
                l3 + ipv6::HEADER_LEN + usize::from(payload),
            )
        }
        _ => return CsumState::NotApplicable,
    };
    let h = Headers {
        l3,
        l4,
        end,
        protocol: IpProtocol::from(key.nw_proto),
        addrs,
        fragment: false,
        ident: 0,
    };
    repair_at(frame, &h)
}

/// The checksum decision of [`repair_partial_csum`] once the headers are known.
#[inline]
fn repair_at(frame: &mut [u8], h: &Headers) -> CsumState {
    if h.fragment {
        return CsumState::NotApplicable;
    }
    let Some(l4) = frame.get(h.l4..h.end) else {
        return CsumState::NotApplicable;
    };
    let (seg_len, field_off) = match h.protocol {
        IpProtocol::TCP => match TcpPacket::new_checked(l4) {
            Ok(_) => (l4.len(), tcp::CHECKSUM_OFFSET),
            Err(_) => return CsumState::NotApplicable,
        },
        IpProtocol::UDP => match UdpPacket::new_checked(l4) {
            Ok(u) => (usize::from(u.len()), udp::CHECKSUM_OFFSET),
            Err(_) => return CsumState::NotApplicable,
        },
        _ => return CsumState::NotApplicable,
    };
    let seg = &l4[..seg_len];
    let Some(field) = read_u16(seg, field_off) else {
        return CsumState::NotApplicable;
    };
    let is_udp = h.protocol == IpProtocol::UDP;
    if is_udp && field == 0 {
        return if h.is_v4() {
            CsumState::Valid
        } else {
            CsumState::Bad
        };
    }
    let Ok(pseudo) = h.addrs.pseudo(h.protocol, seg_len) else {
        return CsumState::NotApplicable;
    };
    // 0 and 0xffff are the same one's complement number.
    let is_partial =
        field == pseudo || (field == 0 && pseudo == 0xffff) || (field == 0xffff && pseudo == 0);
    if !is_partial {
        return CsumState::NotPartial;
    }
    let sum = checksum::sum(seg);
    if checksum::combine(pseudo, sum) == 0xffff {
        return CsumState::Valid;
    }
    // The segment sums to data + pseudo-header: exactly what the checksum must invert.
    let mut csum = !sum;
    if is_udp {
        csum = checksum::udp_wire(csum);
    }
    match write_u16(frame, h.l4 + field_off, csum) {
        Ok(()) => CsumState::Completed,
        Err(_) => CsumState::NotApplicable,
    }
}

/// Scratch space for one segment, allocated once per worker at start.
pub struct SegmentBuf {
    buf: Box<[u8]>,
}

impl SegmentBuf {
    /// Bytes of scratch: a 64 KiB IP packet plus room for link headers and tags.
    pub const CAPACITY: usize = 65536 + 256;

    /// Allocates the scratch buffer (the only allocation of this module; call at start-up).
    #[must_use]
    pub fn new() -> Self {
        Self {
            buf: vec![0u8; Self::CAPACITY].into_boxed_slice(),
        }
    }
}

impl Default for SegmentBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SegmentBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentBuf")
            .field("capacity", &self.buf.len())
            .finish()
    }
}

/// Turns `frame` with offload state `off` into complete frames and passes each to `emit`;
/// returns how many were emitted.
///
/// - Not GSO: the frame is copied, its checksum completed if `F_NEEDS_CSUM` ([`complete_csum`]),
///   and emitted once.
/// - `GSO_TCPV4`, `GSO_TCPV6` (with or without `GSO_ECN`): each segment gets a copy of the
///   headers (Ethernet, tags, IP with options or extension headers, TCP with options) and at
///   most `gso_size` payload bytes; IPv4 total length, identification (+1 per segment) and
///   header checksum, or IPv6 payload length, are rewritten; the TCP sequence number advances
///   by the payload already sent; FIN and PSH stay on the last segment only, CWR on the first
///   only; the TCP checksum is computed in full.
/// - `GSO_UDP_L4`: each segment is a UDP datagram of its own with its length and a full
///   checksum (0 sent as `0xffff`); IPv4 identification advances as for TCP.
/// - Any of these inside a UDP tunnel ([`Offload::is_tunnel`]: VXLAN, Geneve, FOU, GUE,
///   VXLAN-GPE, see `inner_headers`; `csum_start` must be the inner L4 header, and the GSO kind
///   must fit the inner packet): the inner packet is segmented as above
///   and each segment keeps the outer headers, with the outer IPv4 total length,
///   identification (+1 per segment) and header checksum, or IPv6 payload length, and the UDP
///   length rewritten; the outer UDP checksum is computed in full, or stays 0 if it was 0.
///
/// The header length is recomputed from the parsed headers: `off.hdr_len` is only checked to
/// lie within the frame (older kernels set it loosely). Ethernet padding after the IP packet is
/// dropped. The incoming L4 checksum field is ignored (it is usually a partial sum).
///
/// # Errors
/// - [`ParseError::BadHeader`]: `gso_size` is 0, the GSO type is unknown or unsupported (legacy
///   UFO, `GSO_UDP`, would need IP fragmentation), the headers do not match the GSO type (no
///   TCP header for `GSO_TCPV4`, IPv6 for `GSO_TCPV4`, …), or the packet is an IP fragment;
/// - [`ParseError::BadLength`]: `hdr_len` beyond the frame, or a frame larger than
///   [`SegmentBuf::CAPACITY`];
/// - any error of the header views (truncated or inconsistent headers).
///
/// Nothing is emitted when an error is returned.
pub fn segment(
    frame: &[u8],
    off: &Offload,
    out: &mut SegmentBuf,
    emit: &mut dyn FnMut(&[u8]),
) -> Result<usize, ParseError> {
    if frame.len() > out.buf.len() {
        return Err(ParseError::BadLength);
    }
    if !off.is_gso() {
        let copy = &mut out.buf[..frame.len()];
        copy.copy_from_slice(frame);
        complete_csum(copy, off)?;
        emit(copy);
        return Ok(1);
    }
    let kind = off.gso_kind();
    if off.gso_size == 0 {
        return Err(ParseError::BadHeader);
    }
    if usize::from(off.hdr_len) > frame.len() {
        return Err(ParseError::BadLength);
    }
    // A tunnel super-frame: the segmentation is the inner packet's, and each segment's outer
    // IP and UDP headers follow (lengths, IPv4 identification and checksum, UDP checksum unless
    // the sender left it 0).
    let (h, outer) = if off.is_tunnel() {
        let t = tunnel_layout(frame, off)?;
        (t.inner, Some((t.outer, t.udp_csum)))
    } else {
        let h = parse_headers(frame)?;
        if h.fragment {
            return Err(ParseError::BadHeader);
        }
        (h, None)
    };
    let l4 = frame.get(h.l4..h.end).ok_or(ParseError::Truncated)?;
    let l4_hdr_len = match (kind, h.protocol, h.is_v4()) {
        (Offload::GSO_TCPV4, IpProtocol::TCP, true)
        | (Offload::GSO_TCPV6, IpProtocol::TCP, false) => TcpPacket::new_checked(l4)?.header_len(),
        (Offload::GSO_UDP_L4, IpProtocol::UDP, _) => {
            UdpPacket::new_checked(l4)?;
            udp::HEADER_LEN
        }
        _ => return Err(ParseError::BadHeader),
    };
    let is_tcp = h.protocol == IpProtocol::TCP;
    let hdr_len = h.l4 + l4_hdr_len;
    let payload = &frame[hdr_len..h.end];
    let gso_size = usize::from(off.gso_size);
    let (seq0, flags0) = if is_tcp {
        let t = TcpPacket::new_unchecked(l4);
        (t.seq_number(), t.flags())
    } else {
        (0, 0)
    };
    let count = payload.len().div_ceil(gso_size).max(1);
    // Validate every length before emitting anything (the first segment is the longest).
    let longest = hdr_len + payload.len().min(gso_size);
    h.ip_len(longest)?;
    if let Some((o, _)) = &outer {
        o.ip_len(longest)?;
    }
    u16::try_from(count - 1).map_err(|_| ParseError::BadLength)?;

    let mut sent = 0usize;
    for i in 0..count {
        let start = i * gso_size;
        let chunk = &payload[start..payload.len().min(start + gso_size)];
        let seg_len = hdr_len + chunk.len();
        let buf = &mut out.buf[..seg_len];
        buf[..hdr_len].copy_from_slice(&frame[..hdr_len]);
        buf[hdr_len..].copy_from_slice(chunk);
        let seq_i = u16::try_from(i).map_err(|_| ParseError::BadLength)?;
        fix_ip(buf, &h, seq_i)?;
        let l4_len = seg_len - h.l4;
        let pseudo = h.addrs.pseudo(h.protocol, l4_len)?;
        let seg = &mut buf[h.l4..];
        if is_tcp {
            let mut t = TcpPacket::new_unchecked(&mut *seg);
            let sent32 = u32::try_from(sent).map_err(|_| ParseError::BadLength)?;
            t.set_seq_number(seq0.wrapping_add(sent32));
            let mut flags = flags0;
            if i != 0 {
                flags &= !TcpFlags::CWR;
            }
            if i + 1 != count {
                flags &= !(TcpFlags::FIN | TcpFlags::PSH);
            }
            t.set_flags(flags);
            let c = checksum::compute(pseudo, seg, tcp::CHECKSUM_OFFSET);
            write_u16(seg, tcp::CHECKSUM_OFFSET, c)?;
        } else {
            let udp_len = u16::try_from(l4_len).map_err(|_| ParseError::BadLength)?;
            UdpPacket::new_unchecked(&mut *seg).set_len(udp_len);
            let c = checksum::udp_wire(checksum::compute(pseudo, seg, udp::CHECKSUM_OFFSET));
            write_u16(seg, udp::CHECKSUM_OFFSET, c)?;
        }
        if let Some((o, udp_csum)) = &outer {
            fix_outer(buf, o, *udp_csum, seq_i)?;
        }
        emit(&out.buf[..seg_len]);
        sent += chunk.len();
    }
    Ok(count)
}

/// The IP header `h` of segment `i`, whose packet ends where `seg` ends: the IPv4 total length,
/// identification (`h.ident + i`) and header checksum, or the IPv6 payload length.
fn fix_ip(seg: &mut [u8], h: &Headers, i: u16) -> Result<(), ParseError> {
    let len = h.ip_len(seg.len())?;
    if h.is_v4() {
        let mut ip = Ipv4Packet::new_unchecked(&mut seg[h.l3..]);
        ip.set_total_len(len);
        ip.set_ident(h.ident.wrapping_add(i));
        ip.set_checksum(0);
        ip.fill_checksum();
    } else {
        Ipv6Packet::new_unchecked(&mut seg[h.l3..]).set_payload_len(len);
    }
    Ok(())
}

/// The outer IP and UDP headers (`o`) of segment `i` of a tunnel super-frame, in `seg` whose
/// inner packet is final: lengths, IPv4 identification (+`i`) and header checksum, and the UDP
/// checksum in full when `udp_csum` (else it stays 0).
fn fix_outer(seg: &mut [u8], o: &Headers, udp_csum: bool, i: u16) -> Result<(), ParseError> {
    fix_ip(seg, o, i)?;
    let udp_len = seg.len() - o.l4;
    let u = &mut seg[o.l4..];
    UdpPacket::new_unchecked(&mut *u)
        .set_len(u16::try_from(udp_len).map_err(|_| ParseError::BadLength)?);
    if udp_csum {
        let pseudo = o.addrs.pseudo(IpProtocol::UDP, udp_len)?;
        let c = checksum::udp_wire(checksum::compute(pseudo, u, udp::CHECKSUM_OFFSET));
        write_u16(u, udp::CHECKSUM_OFFSET, c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use etherparse::{
        IpNumber, Ipv4Header, Ipv6Header, NetHeaders, PacketBuilder, PacketHeaders,
        TransportHeader, VlanId,
    };
    use proptest::prelude::*;

    use super::*;
    use crate::wire::pcap;

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];
    const V4_A: [u8; 4] = [10, 0, 0, 1];
    const V4_B: [u8; 4] = [10, 0, 0, 2];
    const V6_A: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const V6_B: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn payload(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| u8::try_from((i * 7 + i / 251) % 256).unwrap())
            .collect()
    }

    /// A TCP/IPv4 frame with PSH|FIN|CWR|ACK and a timestamp-like option.
    fn tcp4_frame(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(V4_A, V4_B, 64)
            .tcp(40000, 80, 0xffff_f000, 65000)
            .ack(77)
            .psh()
            .fin()
            .cwr()
            .options_raw(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2])
            .unwrap()
            .write(&mut out, data)
            .unwrap();
        // A non-zero identification, to see it advance.
        out[18..20].copy_from_slice(&0xfffeu16.to_be_bytes());
        let mut ip = Ipv4Packet::new_unchecked(&mut out[14..]);
        ip.fill_checksum();
        out
    }

    /// A TCP/IPv6 frame behind one VLAN tag.
    fn tcp6_frame(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .single_vlan(VlanId::try_new(100).unwrap())
            .ipv6(V6_A, V6_B, 64)
            .tcp(40000, 443, 1000, 65000)
            .ack(5)
            .psh()
            .cwr()
            .ece()
            .write(&mut out, data)
            .unwrap();
        out
    }

    /// A UDP frame (IPv4 or IPv6).
    fn udp_frame(v6: bool, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let b = PacketBuilder::ethernet2(MAC_A, MAC_B);
        if v6 {
            b.ipv6(V6_A, V6_B, 64).udp(5000, 6000).write(&mut out, data)
        } else {
            b.ipv4(V4_A, V4_B, 64).udp(5000, 6000).write(&mut out, data)
        }
        .unwrap();
        out
    }

    /// Inserts an 8-byte IPv6 destination-options header after the fixed header at `l3`.
    fn with_dest_opts(frame: &[u8], l3: usize) -> Vec<u8> {
        let mut out = frame[..l3 + 40].to_vec();
        let next = out[l3 + 6];
        out[l3 + 6] = 60;
        let plen = u16::from_be_bytes([out[l3 + 4], out[l3 + 5]]) + 8;
        out[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        out.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]); // PadN
        out.extend_from_slice(&frame[l3 + 40..]);
        out
    }

    fn collect(frame: &[u8], off: &Offload) -> Result<Vec<Vec<u8>>, ParseError> {
        let mut buf = SegmentBuf::new();
        let mut segs = Vec::new();
        let n = segment(frame, off, &mut buf, &mut |s: &[u8]| segs.push(s.to_vec()))?;
        assert_eq!(n, segs.len());
        Ok(segs)
    }

    /// Re-parses a segment with etherparse and checks IP and L4 checksums both ways.
    fn check_segment(seg: &[u8]) -> (NetHeaders, TransportHeader, Vec<u8>) {
        let p = PacketHeaders::from_ethernet_slice(seg).unwrap();
        let net = p.net.clone().unwrap();
        let tr = p.transport.clone().unwrap();
        let data = p.payload.slice().to_vec();
        let h = parse_headers(seg).unwrap();
        let l4 = &seg[h.l4..h.end];
        match (&net, &tr) {
            (NetHeaders::Ipv4(ip, _), TransportHeader::Tcp(t)) => {
                assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                assert_eq!(t.checksum, t.calc_checksum_ipv4(ip, &data).unwrap());
                assert!(checksum::verify_v4(
                    ip.source.into(),
                    ip.destination.into(),
                    IpProtocol::TCP,
                    l4
                ));
            }
            (NetHeaders::Ipv6(ip, _), TransportHeader::Tcp(t)) => {
                assert_eq!(t.checksum, t.calc_checksum_ipv6(ip, &data).unwrap());
                assert!(checksum::verify_v6(
                    &ip.source.into(),
                    &ip.destination.into(),
                    IpProtocol::TCP,
                    l4
                ));
            }
            (NetHeaders::Ipv4(ip, _), TransportHeader::Udp(u)) => {
                assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                assert_eq!(u.checksum, u.calc_checksum_ipv4(ip, &data).unwrap());
                assert!(
                    UdpPacket::new_checked(l4)
                        .unwrap()
                        .verify_checksum_v4(ip.source.into(), ip.destination.into())
                );
            }
            (NetHeaders::Ipv6(ip, _), TransportHeader::Udp(u)) => {
                assert_eq!(u.checksum, u.calc_checksum_ipv6(ip, &data).unwrap());
                assert!(
                    UdpPacket::new_checked(l4)
                        .unwrap()
                        .verify_checksum_v6(&ip.source.into(), &ip.destination.into())
                );
            }
            other => panic!("unexpected headers {other:?}"),
        }
        (net, tr, data)
    }

    fn tcp_of(tr: &TransportHeader) -> &etherparse::TcpHeader {
        match tr {
            TransportHeader::Tcp(t) => t,
            _ => panic!("not TCP"),
        }
    }

    fn gso(
        kind: u8,
        hdr_len: usize,
        gso_size: u16,
        csum_start: usize,
        csum_offset: u16,
    ) -> Offload {
        Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: kind,
            hdr_len: u16::try_from(hdr_len).unwrap(),
            gso_size,
            csum_start: u16::try_from(csum_start).unwrap(),
            csum_offset,
        }
    }

    #[test]
    fn segments_a_tcp_ipv4_super_frame() {
        let data = payload(10_000);
        let mut frame = tcp4_frame(&data);
        // As a TAP would deliver it: the TCP checksum holds a partial sum.
        frame[34 + 16..34 + 18].copy_from_slice(&[0x12, 0x34]);
        let hdr_len = 14 + 20 + 32;
        let segs = collect(&frame, &gso(Offload::GSO_TCPV4, hdr_len, 1448, 34, 16)).unwrap();
        assert_eq!(segs.len(), 7);
        let mut joined = Vec::new();
        let mut next_seq = 0xffff_f000u32;
        for (i, s) in segs.iter().enumerate() {
            let (net, tr, d) = check_segment(s);
            let NetHeaders::Ipv4(ip, _) = net else {
                panic!()
            };
            assert_eq!(usize::from(ip.total_len), s.len() - 14);
            assert_eq!(
                ip.identification,
                0xfffeu16.wrapping_add(u16::try_from(i).unwrap())
            );
            assert!(ip.dont_fragment || !ip.more_fragments);
            let t = tcp_of(&tr);
            assert_eq!(t.sequence_number, next_seq, "segment {i}");
            assert_eq!(t.acknowledgment_number, 77);
            assert!(t.ack);
            assert_eq!(t.options.as_slice(), &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
            let last = i + 1 == segs.len();
            assert_eq!(t.fin, last, "FIN on segment {i}");
            assert_eq!(t.psh, last, "PSH on segment {i}");
            assert_eq!(t.cwr, i == 0, "CWR on segment {i}");
            assert!(d.len() <= 1448);
            if !last {
                assert_eq!(d.len(), 1448);
            }
            next_seq = next_seq.wrapping_add(u32::try_from(d.len()).unwrap());
            joined.extend_from_slice(&d);
        }
        assert_eq!(joined, data);
    }

    #[test]
    fn segments_a_tagged_tcp_ipv6_super_frame_with_extension_headers() {
        let data = payload(7_001);
        for ext in [false, true] {
            let frame = tcp6_frame(&data);
            let frame = if ext {
                with_dest_opts(&frame, 18)
            } else {
                frame
            };
            let l4 = 18 + 40 + if ext { 8 } else { 0 };
            let off = gso(Offload::GSO_TCPV6 | Offload::GSO_ECN, l4 + 20, 1000, l4, 16);
            let segs = collect(&frame, &off).unwrap();
            assert_eq!(segs.len(), 8);
            let mut joined = Vec::new();
            let mut next_seq = 1000u32;
            for (i, s) in segs.iter().enumerate() {
                assert_eq!(&s[12..16], &[0x81, 0x00, 0x00, 100]);
                let (net, tr, d) = check_segment(s);
                let NetHeaders::Ipv6(ip, exts) = net else {
                    panic!()
                };
                assert_eq!(usize::from(ip.payload_length), s.len() - 18 - 40);
                assert_eq!(exts.destination_options.is_some(), ext);
                let t = tcp_of(&tr);
                assert_eq!(t.sequence_number, next_seq);
                assert_eq!(t.cwr, i == 0);
                assert!(t.ece, "ECE is kept on every segment");
                assert_eq!(t.psh, i + 1 == segs.len());
                assert!(!t.fin);
                next_seq += u32::try_from(d.len()).unwrap();
                joined.extend_from_slice(&d);
            }
            assert_eq!(joined, data);
            assert_eq!(segs.last().unwrap().len(), l4 + 20 + 1);
        }
    }

    /// `inner` behind outer Ethernet/IP/UDP (to `port`) and `tunnel` (a VXLAN or Geneve
    /// header): IPv4 with the UDP checksum 0, or IPv6 with a full one. The inner TCP checksum
    /// holds a partial sum, as a container's kernel leaves it. Returns the frame and the
    /// offset of the inner Ethernet header.
    fn tunnelled(v6: bool, port: u16, tunnel: &[u8], inner: &[u8]) -> (Vec<u8>, usize) {
        let mut data = tunnel.to_vec();
        data.extend_from_slice(inner);
        let mut out = Vec::new();
        let b = PacketBuilder::ethernet2(MAC_B, MAC_A);
        if v6 {
            b.ipv6(V6_B, V6_A, 64)
                .udp(51000, port)
                .write(&mut out, &data)
        } else {
            b.ipv4(V4_B, V4_A, 64)
                .udp(51000, port)
                .write(&mut out, &data)
        }
        .unwrap();
        let udp = if v6 { 54 } else { 34 };
        if !v6 {
            out[18..20].copy_from_slice(&0x1000u16.to_be_bytes());
            out[udp + 6..udp + 8].copy_from_slice(&[0, 0]);
            Ipv4Packet::new_unchecked(&mut out[14..]).fill_checksum();
        }
        (out, udp + 8 + tunnel.len())
    }

    const VXLAN: [u8; 8] = [0x08, 0, 0, 0, 0, 0, 42, 0];
    /// Geneve, 8 bytes of options (opt_len 2), Ethernet payload, VNI 7.
    const GENEVE: [u8; 16] = [
        2, 0, 0x65, 0x58, 0, 0, 7, 0, 1, 2, 3, 1, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    /// Segments a tunnel super-frame and checks every segment: outer lengths, identification,
    /// checksums (UDP 0 stays 0); inner headers as for a plain frame; the payload rejoined.
    fn check_tunnel_segments(v6: bool, tunnel: &[u8], inner_v6: bool) {
        let data = payload(9_000);
        let inner = if inner_v6 {
            tcp6_frame(&data)
        } else {
            tcp4_frame(&data)
        };
        let (frame, ie) = tunnelled(v6, 4789, tunnel, &inner);
        let il4 = ie + if inner_v6 { 18 + 40 } else { 14 + 20 };
        let mut frame = frame;
        frame[il4 + 16..il4 + 18].copy_from_slice(&[0x12, 0x34]);
        let kind = if inner_v6 {
            Offload::GSO_TCPV6
        } else {
            Offload::GSO_TCPV4
        };
        // As the kernel hands it over (the tunnel is not in the virtio-net header), then marked.
        let mut off = gso(kind, 0, 1400, il4, 16);
        assert_eq!(collect(&frame, &off), Err(ParseError::BadHeader));
        mark_udp_tunnel(&frame, &mut off);
        assert!(off.is_tunnel() && !off.passes(true, false) && !off.passes(false, true));
        assert!(off.passes(true, true));
        assert_eq!(off.gso_kind(), kind);
        let segs = collect(&frame, &off).unwrap();
        assert_eq!(segs.len(), 9_000usize.div_ceil(1400));
        let (mut joined, mut seq) = (Vec::new(), None);
        for (i, s) in segs.iter().enumerate() {
            let outer = parse_headers(s).unwrap();
            assert_eq!(outer.end, s.len());
            let u = UdpPacket::new_checked(&s[outer.l4..]).unwrap();
            assert_eq!(usize::from(u.len()), s.len() - outer.l4);
            assert_eq!(&s[outer.l4 + 8..ie], tunnel);
            match outer.addrs {
                Addrs::V4(a, b) => {
                    let ip = Ipv4Packet::new_checked(&s[outer.l3..]).unwrap();
                    assert!(ip.verify_checksum());
                    assert_eq!(usize::from(ip.ident()), 0x1000 + i);
                    assert_eq!(u.checksum(), 0, "a UDP checksum of 0 stays 0");
                    let _ = (a, b);
                }
                Addrs::V6(a, b) => {
                    assert_ne!(u.checksum(), 0);
                    assert!(u.verify_checksum_v6(&a, &b));
                }
            }
            let (_, tr, d) = check_segment(&s[ie..]);
            let t = tcp_of(&tr);
            let want = seq.unwrap_or(t.sequence_number);
            assert_eq!(t.sequence_number, want, "segment {i}");
            assert_eq!(t.psh, i + 1 == segs.len());
            seq = Some(want.wrapping_add(u32::try_from(d.len()).unwrap()));
            joined.extend_from_slice(&d);
        }
        assert_eq!(joined, data);
    }

    #[test]
    fn segments_tcp_inside_vxlan_over_ipv4() {
        check_tunnel_segments(false, &VXLAN, false);
    }

    #[test]
    fn segments_tcp_ipv6_inside_geneve_with_options_over_ipv6() {
        check_tunnel_segments(true, &GENEVE, true);
        check_tunnel_segments(false, &GENEVE, false);
    }

    #[test]
    fn segments_tcp_carried_as_an_ip_payload_fou_gue_gpe_and_geneve() {
        // FOU (IP right after UDP), GUE (version 0, no options, IPv4), VXLAN-GPE with an IPv4
        // payload (next protocol 1), Geneve carrying IPv4 (protocol 0x0800) with 4 bytes of
        // options.
        let gue: [u8; 4] = [0, 4, 0, 0];
        let gpe: [u8; 8] = [0x0c, 0, 0, 1, 0, 0, 42, 0];
        let geneve_ip: [u8; 12] = [1, 0, 0x08, 0x00, 0, 0, 7, 0, 1, 2, 3, 0];
        let data = payload(5_000);
        let inner = tcp4_frame(&data);
        for tunnel in [&[][..], &gue[..], &gpe[..], &geneve_ip[..]] {
            let (frame, ip) = tunnelled(false, 5555, tunnel, &inner[14..]);
            let mut off = gso(Offload::GSO_TCPV4, 0, 1400, ip + 20, 16);
            mark_udp_tunnel(&frame, &mut off);
            assert!(off.is_tunnel(), "tunnel {tunnel:?}");
            let (outer_th, inner_nh, csum) = tunnel_offsets(&frame, &off).unwrap();
            assert_eq!(
                (usize::from(outer_th), usize::from(inner_nh), csum),
                (34, ip, false)
            );
            let segs = collect(&frame, &off).unwrap();
            assert_eq!(segs.len(), 4);
            let mut joined = Vec::new();
            for s in &segs {
                let outer = parse_headers(s).unwrap();
                assert_eq!(outer.end, s.len());
                // The inner IP packet behind a made-up Ethernet header, to check it as a frame.
                let mut f = inner[..14].to_vec();
                f.extend_from_slice(&s[ip..]);
                joined.extend(check_segment(&f).2);
            }
            assert_eq!(joined, data);
        }
    }

    #[test]
    fn a_tunnel_bit_that_does_not_match_the_outer_ip_version_is_set_right() {
        // IPv6 outer header, marked as IPv4 (as Linux does for a frame whose VLAN tag is in
        // its data): marking sets the IPv6 bit, and the frame segments.
        let (frame, ie) = tunnelled(true, 4789, &VXLAN, &tcp4_frame(&payload(3_000)));
        let mut off = gso(
            Offload::GSO_TCPV4 | Offload::GSO_UDP_TUNNEL_IPV4,
            0,
            1400,
            ie + 34,
            16,
        );
        assert!(collect(&frame, &off).is_err());
        mark_udp_tunnel(&frame, &mut off);
        assert_eq!(
            off.gso_type,
            Offload::GSO_TCPV4 | Offload::GSO_UDP_TUNNEL_IPV6
        );
        assert_eq!(collect(&frame, &off).unwrap().len(), 3);
    }

    #[test]
    fn a_tunnel_frame_whose_kind_or_bits_do_not_fit_is_refused() {
        let (frame, ie) = tunnelled(false, 4789, &VXLAN, &tcp4_frame(&payload(3_000)));
        let ok = gso(
            Offload::GSO_TCPV4 | Offload::GSO_UDP_TUNNEL_IPV4,
            0,
            1400,
            ie + 34,
            16,
        );
        assert!(tunnel_offsets(&frame, &ok).is_some());
        for gso_type in [
            // The IPv6 bit on an IPv4 outer header; both bits.
            Offload::GSO_TCPV4 | Offload::GSO_UDP_TUNNEL_IPV6,
            Offload::GSO_TCPV4 | Offload::GSO_UDP_TUNNEL_IPV4 | Offload::GSO_UDP_TUNNEL_IPV6,
            // TCPv6 or UDP segmentation of an inner TCP/IPv4 packet; legacy UFO.
            Offload::GSO_TCPV6 | Offload::GSO_UDP_TUNNEL_IPV4,
            Offload::GSO_UDP_L4 | Offload::GSO_UDP_TUNNEL_IPV4,
            Offload::GSO_UDP | Offload::GSO_UDP_TUNNEL_IPV4,
        ] {
            let off = Offload { gso_type, ..ok };
            assert!(tunnel_offsets(&frame, &off).is_none(), "{gso_type:#x}");
            assert_eq!(
                collect(&frame, &off),
                Err(ParseError::BadHeader),
                "{gso_type:#x}"
            );
        }
        let no_csum = Offload { flags: 0, ..ok };
        assert!(tunnel_offsets(&frame, &no_csum).is_none());
    }

    #[test]
    fn only_udp_with_a_checksum_start_past_the_tunnel_header_is_marked() {
        let data = payload(3_000);
        // Plain TCP and plain UDP GSO: not tunnels.
        let mut off = gso(Offload::GSO_TCPV4, 66, 1448, 34, 16);
        mark_udp_tunnel(&tcp4_frame(&data), &mut off);
        assert!(!off.is_tunnel() && off.passes(true, false));
        let mut off = gso(Offload::GSO_UDP_L4, 42, 1200, 34, 6);
        mark_udp_tunnel(&udp_frame(false, &data), &mut off);
        assert!(!off.is_tunnel());
        // Not GSO, or no partial checksum: left alone (nothing to segment).
        let (frame, ie) = tunnelled(false, 4789, &VXLAN, &tcp4_frame(&data));
        let mut off = gso(Offload::GSO_TCPV4, 0, 1400, ie + 34, 16);
        off.flags = 0;
        mark_udp_tunnel(&frame, &mut off);
        assert!(!off.is_tunnel());
        let mut off = Offload {
            gso_type: Offload::GSO_NONE,
            ..gso(Offload::GSO_NONE, 0, 0, ie + 34, 16)
        };
        mark_udp_tunnel(&frame, &mut off);
        assert!(!off.is_tunnel());
    }

    #[test]
    fn a_tunnel_frame_that_does_not_add_up_is_refused_whole() {
        let data = payload(5_000);
        let (frame, ie) = tunnelled(false, 4789, &VXLAN, &tcp4_frame(&data));
        let marked = |csum_start: usize| {
            let mut off = gso(Offload::GSO_TCPV4, 0, 1400, csum_start, 16);
            mark_udp_tunnel(&frame, &mut off);
            assert!(off.is_tunnel());
            off
        };
        // The checksum start is not the inner TCP header.
        assert_eq!(
            collect(&frame, &marked(ie + 30)),
            Err(ParseError::BadHeader)
        );
        // Neither VXLAN nor Geneve.
        let mut odd = frame.clone();
        odd[42] = 0x40;
        assert_eq!(collect(&odd, &marked(ie + 34)), Err(ParseError::BadHeader));
        // The inner packet shorter than the outer one says.
        let mut short = frame.clone();
        let l = u16::from_be_bytes([short[ie + 16], short[ie + 17]]) - 1;
        short[ie + 16..ie + 18].copy_from_slice(&l.to_be_bytes());
        assert_eq!(
            collect(&short, &marked(ie + 34)),
            Err(ParseError::BadHeader)
        );
        // Cut short.
        assert!(collect(&frame[..ie + 20], &marked(ie + 34)).is_err());
        // The inner TCP kind does not match the inner IP version.
        let mut off = marked(ie + 34);
        off.gso_type = Offload::GSO_TCPV6 | Offload::GSO_UDP_TUNNEL_IPV4;
        assert_eq!(collect(&frame, &off), Err(ParseError::BadHeader));
    }

    #[test]
    fn segments_udp_l4_over_ipv4_and_ipv6() {
        let data = payload(4_000);
        for v6 in [false, true] {
            let frame = udp_frame(v6, &data);
            let l4 = if v6 { 54 } else { 34 };
            let segs = collect(&frame, &gso(Offload::GSO_UDP_L4, l4 + 8, 1200, l4, 6)).unwrap();
            assert_eq!(segs.len(), 4);
            let mut joined = Vec::new();
            for (i, s) in segs.iter().enumerate() {
                let (net, tr, d) = check_segment(s);
                let TransportHeader::Udp(u) = tr else {
                    panic!()
                };
                assert_eq!(usize::from(u.length), d.len() + 8);
                assert_ne!(u.checksum, 0);
                if let NetHeaders::Ipv4(ip, _) = net {
                    assert_eq!(usize::from(ip.identification), i);
                }
                joined.extend_from_slice(&d);
            }
            assert_eq!(joined, data);
        }
    }

    #[test]
    fn a_loose_or_missing_hdr_len_is_recomputed() {
        let data = payload(3_000);
        let frame = tcp4_frame(&data);
        let want = collect(&frame, &gso(Offload::GSO_TCPV4, 66, 1448, 34, 16)).unwrap();
        for hdr_len in [0, 14, 54, 128, 1500, frame.len()] {
            let got = collect(&frame, &gso(Offload::GSO_TCPV4, hdr_len, 1448, 34, 16)).unwrap();
            assert_eq!(got, want, "hdr_len {hdr_len}");
        }
        assert_eq!(
            collect(
                &frame,
                &gso(Offload::GSO_TCPV4, frame.len() + 1, 1448, 34, 16)
            ),
            Err(ParseError::BadLength)
        );
    }

    #[test]
    fn a_super_frame_smaller_than_gso_size_becomes_one_segment() {
        let data = payload(100);
        let frame = tcp4_frame(&data);
        let segs = collect(&frame, &gso(Offload::GSO_TCPV4, 66, 1448, 34, 16)).unwrap();
        assert_eq!(segs.len(), 1);
        let (_, tr, d) = check_segment(&segs[0]);
        let t = tcp_of(&tr);
        assert!(t.fin && t.psh && t.cwr);
        assert_eq!(d, data);
        // No payload at all: the headers alone.
        let frame = tcp4_frame(&[]);
        let segs = collect(&frame, &gso(Offload::GSO_TCPV4, 66, 1448, 34, 16)).unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].len(), 66);
        check_segment(&segs[0]);
    }

    #[test]
    fn ethernet_padding_is_not_segmented() {
        let data = payload(2_000);
        let mut frame = tcp4_frame(&data);
        frame.extend_from_slice(&[0xee; 6]);
        let segs = collect(&frame, &gso(Offload::GSO_TCPV4, 66, 1448, 34, 16)).unwrap();
        let joined: Vec<u8> = segs.iter().flat_map(|s| check_segment(s).2).collect();
        assert_eq!(joined, data);
    }

    #[test]
    fn malformed_gso_input_is_an_error_not_a_panic() {
        let data = payload(3_000);
        let tcp4 = tcp4_frame(&data);
        let udp4 = udp_frame(false, &data);
        let tcp6 = tcp6_frame(&data);
        let ok = gso(Offload::GSO_TCPV4, 66, 1448, 34, 16);
        let cases: &[(&[u8], Offload, ParseError)] = &[
            (&tcp4, Offload { gso_size: 0, ..ok }, ParseError::BadHeader),
            (&udp4, ok, ParseError::BadHeader),
            (&tcp6, ok, ParseError::BadHeader),
            (
                &tcp4,
                Offload {
                    gso_type: Offload::GSO_TCPV6,
                    ..ok
                },
                ParseError::BadHeader,
            ),
            (
                &tcp4,
                Offload {
                    gso_type: Offload::GSO_UDP_L4,
                    ..ok
                },
                ParseError::BadHeader,
            ),
            (
                &udp4,
                Offload {
                    gso_type: Offload::GSO_UDP,
                    ..ok
                },
                ParseError::BadHeader,
            ),
            (&tcp4, Offload { gso_type: 9, ..ok }, ParseError::BadHeader),
            (
                &tcp4[..30],
                Offload { hdr_len: 0, ..ok },
                ParseError::Truncated,
            ),
            (
                &tcp4[..1000],
                Offload { hdr_len: 0, ..ok },
                ParseError::BadLength,
            ),
        ];
        for (i, (frame, off, err)) in cases.iter().enumerate() {
            assert_eq!(collect(frame, off), Err(*err), "case {i}");
        }
        // An IPv4 fragment.
        let mut frag = tcp4.clone();
        frag[20] |= 0x20;
        Ipv4Packet::new_unchecked(&mut frag[14..]).fill_checksum();
        assert_eq!(collect(&frag, &ok), Err(ParseError::BadHeader));
        // A TCP data offset below 5.
        let mut bad = tcp4.clone();
        bad[34 + 12] = 0x40;
        assert_eq!(collect(&bad, &ok), Err(ParseError::BadHeader));
        // Too big for the scratch buffer.
        let huge = vec![0u8; SegmentBuf::CAPACITY + 1];
        assert_eq!(collect(&huge, &ok), Err(ParseError::BadLength));
        // Every truncation of every kind of super-frame fails cleanly or succeeds.
        for (frame, off) in [
            (&tcp4, ok),
            (&udp4, gso(Offload::GSO_UDP_L4, 42, 500, 34, 6)),
            (&tcp6, gso(Offload::GSO_TCPV6, 78, 1000, 58, 16)),
        ] {
            for len in 0..frame.len() {
                let r = collect(&frame[..len], &Offload { hdr_len: 0, ..off });
                assert!(r.is_err(), "cut at {len} accepted");
            }
        }
    }

    #[test]
    fn only_a_tcp_or_udp_checksum_field_may_be_a_partial_checksum() {
        let csum = |start: usize, offset: u16| Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: u16::try_from(start).unwrap(),
            csum_offset: offset,
            ..Offload::NONE
        };
        let fits = |f: &[u8], o: &Offload| {
            let (key, lay) = crate::flow::extract(f, 1).unwrap();
            partial_csum_fits(f, o, usize::from(lay.l4), key.nw_proto)
        };
        let tcp4 = tcp4_frame(&payload(100));
        let tcp6 = with_dest_opts(&tcp6_frame(&payload(100)), 18);
        let udp4 = udp_frame(false, &payload(100));
        let udp6 = udp_frame(true, &payload(100));
        // What a kernel hands over: the L4 checksum field, behind tags and extension headers.
        assert!(fits(&tcp4, &csum(34, 16)));
        assert!(fits(&tcp6, &csum(18 + 48, 16)));
        assert!(fits(&udp4, &csum(34, 6)));
        assert!(fits(&udp6, &csum(54, 6)));
        assert!(fits(&tcp4, &Offload::NONE));
        // The inner TCP checksum of a VXLAN packet.
        let (vx, ie) = tunnelled(false, 4789, &VXLAN, &tcp4);
        assert!(fits(&vx, &csum(ie + 34, 16)));
        // The inner TCP checksum of IP-in-IP and of GRE (plain, and with a key).
        let ipip = ip_tunnelled(&tcp4, 4, None);
        assert!(fits(&ipip, &csum(34 + 20, 16)));
        let gre = ip_tunnelled(&tcp4, 47, Some(0));
        assert!(fits(&gre, &csum(34 + 4 + 20, 16)));
        let gre_key = ip_tunnelled(&tcp4, 47, Some(0x2000));
        assert!(fits(&gre_key, &csum(34 + 8 + 20, 16)));
        // …but not the inner source address, nor behind GRE with routing or a version.
        assert!(!fits(&ipip, &csum(34 + 12, 0)));
        assert!(!fits(
            &ip_tunnelled(&tcp4, 47, Some(0x4000)),
            &csum(34 + 8 + 20, 16)
        ));
        assert!(!fits(
            &ip_tunnelled(&tcp4, 47, Some(0x0001)),
            &csum(34 + 4 + 20, 16)
        ));
        // Two bytes of the sender's choice anywhere else: the IPv4 source and destination,
        // the ports, the TCP flags, a checksum "field" of the other protocol or past the end.
        for (f, o) in [
            (&udp4, csum(28, 0)),
            (&udp4, csum(26, 4)),
            (&udp4, csum(30, 0)),
            (&udp4, csum(34, 2)),
            (&udp4, csum(36, 0)),
            (&tcp4, csum(34, 6)),
            (&tcp4, csum(34, 12)),
            (&udp4, csum(34, 16)),
            (&udp4, csum(udp4.len() - 1, 0)),
            (&vx, csum(ie + 30, 0)),
            (&vx, csum(ie, 0)),
        ] {
            assert!(!fits(f, &o), "{o:?}");
        }
    }

    /// `eth_ip` (an Ethernet/IPv4 frame) with its IP packet carried in an outer IPv4 packet
    /// of protocol `proto`, behind a GRE header with `gre` flags (and 4 bytes for each of the
    /// checksum, key and sequence flags it sets) when given.
    fn ip_tunnelled(eth_ip: &[u8], proto: u8, gre: Option<u16>) -> Vec<u8> {
        let mut inner = Vec::new();
        if let Some(flags) = gre {
            inner.extend_from_slice(&flags.to_be_bytes());
            inner.extend_from_slice(&0x0800u16.to_be_bytes());
            for bit in [0x8000u16, 0x4000, 0x2000, 0x1000] {
                if flags & bit != 0 {
                    inner.extend_from_slice(&[0; 4]);
                }
            }
        }
        inner.extend_from_slice(&eth_ip[14..]);
        let total = u16::try_from(20 + inner.len()).unwrap();
        let mut f = eth_ip[..14].to_vec();
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 64, proto, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
        f.extend_from_slice(&inner);
        f
    }

    #[test]
    fn super_frames_cut_finer_than_a_real_sender_would_are_refused() {
        let tcp4 = tcp4_frame(&payload(60_000));
        let udp4 = udp_frame(false, &payload(60_000));
        let tcp = |size| gso(Offload::GSO_TCPV4, 66, size, 34, 16);
        let udp = |size| gso(Offload::GSO_UDP_L4, 42, size, 34, 6);
        assert!(gso_size_fits(&tcp4, &tcp(1448)));
        assert!(gso_size_fits(&tcp4, &tcp(48)));
        assert!(!gso_size_fits(&tcp4, &tcp(47)));
        assert!(!gso_size_fits(&tcp4, &tcp(1)));
        assert!(gso_size_fits(&udp4, &udp(1400)));
        assert!(gso_size_fits(&udp4, &udp(469)));
        assert!(!gso_size_fits(&udp4, &udp(468)));
        assert!(!gso_size_fits(&udp4, &udp(1)));
        assert!(gso_size_fits(&tcp4, &Offload::NONE));
    }

    #[test]
    fn a_frame_that_only_needs_its_checksum_is_completed_and_emitted_once() {
        let data = payload(300);
        let good = tcp4_frame(&data);
        let mut partial = good.clone();
        let pseudo = checksum::pseudo_header_v4(V4_A.into(), V4_B.into(), IpProtocol::TCP, 332);
        partial[50..52].copy_from_slice(&pseudo.to_be_bytes());
        let off = Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 16,
            ..Offload::NONE
        };
        let segs = collect(&partial, &off).unwrap();
        assert_eq!(segs, vec![good.clone()]);
        // A complete frame is passed through unchanged.
        assert_eq!(collect(&good, &Offload::NONE).unwrap(), vec![good]);
    }

    /// Replaces the L4 checksum at `at` by the pseudo-header sum only, as Linux leaves it.
    fn make_partial(frame: &mut [u8], at: usize, pseudo: u16) {
        frame[at..at + 2].copy_from_slice(&pseudo.to_be_bytes());
    }

    #[test]
    fn complete_csum_matches_a_full_computation() {
        for v6 in [false, true] {
            let good = udp_frame(v6, &payload(501));
            let l4 = if v6 { 54 } else { 34 };
            let len = good.len() - l4;
            let pseudo = if v6 {
                checksum::pseudo_header_v6(
                    &V6_A.into(),
                    &V6_B.into(),
                    IpProtocol::UDP,
                    u32::try_from(len).unwrap(),
                )
            } else {
                checksum::pseudo_header_v4(
                    V4_A.into(),
                    V4_B.into(),
                    IpProtocol::UDP,
                    u16::try_from(len).unwrap(),
                )
            };
            let mut f = good.clone();
            make_partial(&mut f, l4 + 6, pseudo);
            let off = Offload {
                flags: Offload::F_NEEDS_CSUM,
                csum_start: u16::try_from(l4).unwrap(),
                csum_offset: 6,
                ..Offload::NONE
            };
            complete_csum(&mut f, &off).unwrap();
            assert_eq!(f, good);
            // Without the flag nothing happens.
            let mut g = f.clone();
            g[l4 + 6] ^= 0xff;
            let before = g.clone();
            complete_csum(&mut g, &Offload::NONE).unwrap();
            assert_eq!(g, before);
        }
        let mut f = udp_frame(false, &payload(10));
        let len = f.len();
        let bad = |start: usize, offset: u16| Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: u16::try_from(start).unwrap(),
            csum_offset: offset,
            ..Offload::NONE
        };
        assert_eq!(
            complete_csum(&mut f, &bad(len, 0)),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            complete_csum(&mut f, &bad(len - 1, 0)),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            complete_csum(&mut f, &bad(34, 60)),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            complete_csum(&mut f, &bad(34, 7)),
            Err(ParseError::BadHeader)
        );
        assert_eq!(
            complete_csum(&mut f, &bad(usize::from(u16::MAX), u16::MAX - 1)),
            Err(ParseError::Truncated)
        );
    }

    /// Frames of every shape repair covers, with the offset of their checksum field and its
    /// pseudo-header sum.
    fn repair_cases() -> Vec<(&'static str, Vec<u8>, usize, u16)> {
        let d = payload(777);
        let mut out = vec![];
        let v4 = |proto, len: usize| {
            checksum::pseudo_header_v4(V4_A.into(), V4_B.into(), proto, u16::try_from(len).unwrap())
        };
        let v6 = |proto, len: usize| {
            checksum::pseudo_header_v6(
                &V6_A.into(),
                &V6_B.into(),
                proto,
                u32::try_from(len).unwrap(),
            )
        };
        let f = tcp4_frame(&d);
        let n = f.len() - 34;
        out.push(("tcp4", f, 34 + 16, v4(IpProtocol::TCP, n)));
        let f = tcp6_frame(&d);
        let n = f.len() - 58;
        out.push(("tcp6 tagged", f, 58 + 16, v6(IpProtocol::TCP, n)));
        let f = with_dest_opts(&tcp6_frame(&d), 18);
        out.push(("tcp6 ext", f, 66 + 16, v6(IpProtocol::TCP, n)));
        let f = udp_frame(false, &d);
        let n = f.len() - 34;
        out.push(("udp4", f, 34 + 6, v4(IpProtocol::UDP, n)));
        let f = udp_frame(true, &d);
        let n = f.len() - 54;
        out.push(("udp6", f, 54 + 6, v6(IpProtocol::UDP, n)));
        // Double-tagged (802.1ad + 802.1Q) UDP/IPv4.
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .double_vlan(VlanId::try_new(10).unwrap(), VlanId::try_new(20).unwrap())
            .ipv4(V4_A, V4_B, 64)
            .udp(1, 2)
            .write(&mut f, &d)
            .unwrap();
        let n = f.len() - 42;
        out.push(("udp4 qinq", f, 42 + 6, v4(IpProtocol::UDP, n)));
        out
    }

    #[test]
    fn keyed_repair_agrees_with_the_parsing_one() {
        for (name, good, at, pseudo) in repair_cases() {
            for partial in [false, true] {
                let mut f = good.clone();
                if partial {
                    make_partial(&mut f, at, pseudo);
                }
                let mut g = f.clone();
                let (key, lay) = crate::flow::extract(&f, 1).unwrap();
                let keyed = repair_partial_csum_keyed(&mut g, &key, &lay);
                assert_eq!(
                    keyed,
                    repair_partial_csum(&mut f),
                    "{name} partial={partial}"
                );
                assert_eq!(f, g, "{name} partial={partial}");
            }
        }
    }

    #[test]
    fn repair_completes_partial_checksums_and_keeps_valid_ones() {
        for (name, good, at, pseudo) in repair_cases() {
            let mut f = good.clone();
            assert_eq!(repair_partial_csum(&mut f), CsumState::NotPartial, "{name}");
            assert_eq!(f, good, "{name}");
            make_partial(&mut f, at, pseudo);
            assert_eq!(repair_partial_csum(&mut f), CsumState::Completed, "{name}");
            assert_eq!(f, good, "{name}");
            check_segment(&f);
            // A wrong checksum is left alone (the receiver will drop it).
            f[at] ^= 0x40;
            let broken = f.clone();
            assert_eq!(repair_partial_csum(&mut f), CsumState::NotPartial, "{name}");
            assert_eq!(f, broken, "{name}");
        }
    }

    #[test]
    fn repair_handles_zero_udp_checksums_per_family() {
        for (v6, want) in [(false, CsumState::Valid), (true, CsumState::Bad)] {
            let mut f = udp_frame(v6, &payload(20));
            let at = if v6 { 60 } else { 40 };
            f[at..at + 2].copy_from_slice(&[0, 0]);
            let before = f.clone();
            assert_eq!(repair_partial_csum(&mut f), want);
            assert_eq!(f, before);
        }
    }

    #[test]
    fn repair_stores_a_computed_udp_zero_as_all_ones() {
        // Choose the last two data bytes so that the full checksum computes to 0.
        let mut f = udp_frame(false, &payload(64));
        let len = f.len();
        f[len - 2..].copy_from_slice(&[0, 0]);
        let pseudo = checksum::pseudo_header_v4(V4_A.into(), V4_B.into(), IpProtocol::UDP, 72);
        let c = checksum::compute(pseudo, &f[34..], 6);
        f[len - 2..].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum::compute(pseudo, &f[34..], 6), 0);
        make_partial(&mut f, 40, pseudo);
        assert_eq!(repair_partial_csum(&mut f), CsumState::Completed);
        assert_eq!(&f[40..42], &[0xff, 0xff]);
        // Now a full checksum: not touched again.
        assert_eq!(repair_partial_csum(&mut f), CsumState::NotPartial);
        assert_eq!(&f[40..42], &[0xff, 0xff]);
    }

    #[test]
    fn repair_leaves_non_tcp_udp_fragments_and_junk_alone() {
        let mut icmp = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(V4_A, V4_B, 64)
            .icmpv4_echo_request(1, 2)
            .write(&mut icmp, &payload(30))
            .unwrap();
        let mut frag = udp_frame(false, &payload(100));
        frag[20] |= 0x20; // more fragments
        let mut frag6 = udp_frame(true, &payload(100));
        {
            // Insert a non-atomic fragment header.
            let mut g = frag6[..54].to_vec();
            g[20] = 44;
            g[18..20].copy_from_slice(&(108u16 + 8).to_be_bytes());
            g.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 9]);
            g.extend_from_slice(&frag6[54..]);
            frag6 = g;
        }
        let arp = pcap::kernel_traffic()
            .into_iter()
            .map(|f| f[34 + 8 + 8..].to_vec()) // inner frames of VXLAN packets
            .find(|f| f.len() > 14 && f[12..14] == [0x08, 0x06])
            .unwrap();
        for (name, mut f) in [
            ("icmp", icmp),
            ("ipv4 fragment", frag),
            ("ipv6 fragment", frag6),
            ("arp", arp),
            ("empty", vec![]),
            ("junk", vec![0x45; 80]),
        ] {
            let before = f.clone();
            assert_eq!(
                repair_partial_csum(&mut f),
                CsumState::NotApplicable,
                "{name}"
            );
            assert_eq!(f, before, "{name}");
        }
        for (_, good, at, pseudo) in repair_cases() {
            let mut f = good.clone();
            make_partial(&mut f, at, pseudo);
            for len in 0..f.len() {
                let mut g = f[..len].to_vec();
                let before = g.clone();
                let r = repair_partial_csum(&mut g);
                assert_ne!(r, CsumState::Completed, "cut at {len}");
                if r == CsumState::NotApplicable {
                    assert_eq!(g, before);
                }
            }
        }
    }

    #[test]
    fn repair_completes_the_partial_checksums_of_real_kernel_frames() {
        let mut completed = 0;
        for (i, mut f) in pcap::kernel_traffic().into_iter().enumerate() {
            let state = repair_partial_csum(&mut f);
            let Ok(p) = PacketHeaders::from_ethernet_slice(&f) else {
                continue;
            };
            match (&p.net, &p.transport) {
                (Some(NetHeaders::Ipv4(ip, _)), Some(TransportHeader::Tcp(t))) => {
                    assert_ne!(state, CsumState::Bad, "frame {}", i + 1);
                    assert_eq!(
                        t.checksum,
                        t.calc_checksum_ipv4(ip, p.payload.slice()).unwrap()
                    );
                }
                (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Tcp(t))) => {
                    assert_ne!(state, CsumState::Bad, "frame {}", i + 1);
                    assert_eq!(
                        t.checksum,
                        t.calc_checksum_ipv6(ip, p.payload.slice()).unwrap()
                    );
                }
                (Some(NetHeaders::Ipv4(ip, _)), Some(TransportHeader::Udp(u)))
                    if !ip.is_fragmenting_payload() =>
                {
                    assert_ne!(state, CsumState::Bad, "frame {}", i + 1);
                    if u.checksum != 0 {
                        assert_eq!(
                            u.checksum,
                            u.calc_checksum_ipv4(ip, p.payload.slice()).unwrap(),
                            "frame {}",
                            i + 1
                        );
                    }
                }
                (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Udp(u))) => {
                    assert_ne!(state, CsumState::Bad, "frame {}", i + 1);
                    assert_eq!(
                        u.checksum,
                        u.calc_checksum_ipv6(ip, p.payload.slice()).unwrap()
                    );
                }
                _ => assert_eq!(state, CsumState::NotApplicable, "frame {}", i + 1),
            }
            if state == CsumState::Completed {
                completed += 1;
            }
        }
        assert!(
            completed >= 20,
            "only {completed} partial checksums in the fixture"
        );
    }

    #[test]
    fn segment_buf_has_the_documented_capacity() {
        let b = SegmentBuf::default();
        assert_eq!(b.buf.len(), SegmentBuf::CAPACITY);
        assert!(format!("{b:?}").contains("65792"));
    }

    #[test]
    fn etherparse_headers_agree_with_ours() {
        // Sanity check of the builders used above.
        let f = tcp4_frame(&payload(10));
        let (ip, _) = Ipv4Header::from_slice(&f[14..]).unwrap();
        assert_eq!(ip.protocol, IpNumber::TCP);
        let h = parse_headers(&f).unwrap();
        assert_eq!((h.l3, h.l4, h.end), (14, 34, f.len()));
        let f = tcp6_frame(&payload(10));
        let (ip, _) = Ipv6Header::from_slice(&f[18..]).unwrap();
        assert_eq!(ip.next_header, IpNumber::TCP);
        let h = parse_headers(&f).unwrap();
        assert_eq!((h.l3, h.l4, h.end), (18, 58, f.len()));
    }

    proptest! {
        #[test]
        fn repair_of_any_partial_tcp_or_udp_frame_restores_the_full_checksum(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            sport in any::<u16>(),
            v6 in any::<bool>(),
            udp in any::<bool>(),
        ) {
            let mut good = Vec::new();
            let b = PacketBuilder::ethernet2(MAC_A, MAC_B);
            match (v6, udp) {
                (false, false) => b.ipv4(V4_A, V4_B, 64).tcp(sport, 80, 1, 100).write(&mut good, &data),
                (false, true) => b.ipv4(V4_A, V4_B, 64).udp(sport, 80).write(&mut good, &data),
                (true, false) => b.ipv6(V6_A, V6_B, 64).tcp(sport, 80, 1, 100).write(&mut good, &data),
                (true, true) => b.ipv6(V6_A, V6_B, 64).udp(sport, 80).write(&mut good, &data),
            }.unwrap();
            let h = parse_headers(&good).unwrap();
            let proto = if udp { IpProtocol::UDP } else { IpProtocol::TCP };
            let at = h.l4 + if udp { 6 } else { 16 };
            let pseudo = h.addrs.pseudo(proto, good.len() - h.l4).unwrap();
            let mut f = good.clone();
            make_partial(&mut f, at, pseudo);
            let state = repair_partial_csum(&mut f);
            // A partial sum can coincide with a valid checksum; both leave a valid frame.
            prop_assert!(state == CsumState::Completed || state == CsumState::Valid);
            let s = &f[h.l4..];
            let valid = match h.addrs {
                Addrs::V4(a, b) => checksum::verify_v4(a, b, proto, s),
                Addrs::V6(a, b) => checksum::verify_v6(&a, &b, proto, s),
            };
            prop_assert!(valid);
            if f[at..at + 2] != [0xff, 0xff] && good[at..at + 2] != [0, 0] {
                prop_assert_eq!(f, good);
            }
        }

        #[test]
        fn damaged_tunnel_super_frames_are_segmented_or_refused_never_a_panic(
            len in 0usize..3000,
            flips in proptest::collection::vec((0usize..160, any::<u8>()), 0..6),
            cut in 0usize..200,
            csum_start in 0u16..160,
            gso_size in 0u16..2000,
            kind in prop::sample::select(vec![
                Offload::GSO_TCPV4, Offload::GSO_TCPV6, Offload::GSO_UDP_L4, Offload::GSO_UDP, 9,
            ]),
            geneve in any::<bool>(),
        ) {
            let tunnel: &[u8] = if geneve { &GENEVE } else { &VXLAN };
            let (mut frame, _) = tunnelled(geneve, 4789, tunnel, &tcp4_frame(&payload(len)));
            for (at, b) in flips {
                if let Some(x) = frame.get_mut(at) {
                    *x ^= b;
                }
            }
            frame.truncate(frame.len().saturating_sub(cut));
            let mut off = gso(kind, 0, gso_size, usize::from(csum_start), 16);
            mark_udp_tunnel(&frame, &mut off);
            off.gso_type |= Offload::GSO_UDP_TUNNEL_IPV4;
            let mut buf = SegmentBuf::new();
            let mut total = 0usize;
            if segment(&frame, &off, &mut buf, &mut |s: &[u8]| total += s.len()).is_ok() {
                prop_assert!(total >= frame.len().min(1));
            } else {
                prop_assert_eq!(total, 0, "nothing emitted on an error");
            }
        }

        #[test]
        fn segmenting_any_tcp_payload_preserves_it(
            len in 0usize..5000,
            gso_size in 1u16..2000,
            v6 in any::<bool>(),
        ) {
            let data = payload(len);
            let (frame, l4) = if v6 { (tcp6_frame(&data), 58) } else { (tcp4_frame(&data), 34) };
            let kind = if v6 { Offload::GSO_TCPV6 } else { Offload::GSO_TCPV4 };
            let segs = collect(&frame, &gso(kind, 0, gso_size, l4, 16)).unwrap();
            prop_assert_eq!(segs.len(), len.div_ceil(usize::from(gso_size)).max(1));
            let mut joined = Vec::new();
            for s in &segs {
                joined.extend(check_segment(s).2);
            }
            prop_assert_eq!(joined, data);
        }
    }

    // ---- the pseudo-header destination of source-routed packets (an audit, 2026-12-07) ----

    /// The first-hop router the source route sends the packets through.
    const V4_HOP: [u8; 4] = [10, 0, 0, 254];
    const V6_HOP: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99];

    /// `tcp4_frame(data)` (addressed to V4_B, its checksum computed for V4_B) sent with a
    /// loose source route through V4_HOP, as Linux builds it (IP_OPTIONS): the IP header
    /// addressed to the first hop, the final destination V4_B in the last 4 bytes of the
    /// LSRR option; the TCP checksum still over V4_B, the final destination (Linux sums the
    /// socket's `inet_daddr`; the final host verifies against its own address).
    fn tcp4_lsrr_frame(data: &[u8]) -> Vec<u8> {
        let f = tcp4_frame(data);
        let mut out = f[..34].to_vec();
        // NOP, LSRR (type 131), length 7, pointer 4, route data: the final destination.
        out.extend_from_slice(&[1, 0x83, 7, 4]);
        out.extend_from_slice(&V4_B);
        out.extend_from_slice(&f[34..]);
        out[14] = 0x47; // IHL 7
        let total = u16::from_be_bytes([out[16], out[17]]) + 8;
        out[16..18].copy_from_slice(&total.to_be_bytes());
        out[30..34].copy_from_slice(&V4_HOP);
        Ipv4Packet::new_unchecked(&mut out[14..]).fill_checksum();
        out
    }

    /// A TCP/IPv6 frame (untagged) to V6_B with a segment routing header (type 4) whose
    /// segment list is [V6_B (final), V6_HOP]: segments left 1, the IPv6 header addressed to
    /// V6_HOP, the TCP checksum computed for the final destination V6_B (RFC 8200 §8.1).
    fn tcp6_srh_frame(data: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6(V6_A, V6_B, 64)
            .tcp(40000, 443, 1000, 65000)
            .ack(5)
            .psh()
            .write(&mut f, data)
            .unwrap();
        let mut out = f[..54].to_vec();
        let next = out[20];
        out[20] = 43;
        let plen = u16::from_be_bytes([out[18], out[19]]) + 40;
        out[18..20].copy_from_slice(&plen.to_be_bytes());
        out[38..54].copy_from_slice(&V6_HOP);
        // Next header, hdr ext len 4 (40 bytes), type 4, segments left 1, last entry 1,
        // flags 0, tag 0; then Segment List[0] = final destination, [1] = first hop.
        out.extend_from_slice(&[next, 4, 4, 1, 1, 0, 0, 0]);
        out.extend_from_slice(&V6_B);
        out.extend_from_slice(&V6_HOP);
        out.extend_from_slice(&f[54..]);
        out
    }

    /// The TCP pseudo-header sum (A to the final destination B) of `l4_len` bytes.
    fn final_pseudo(v6: bool, l4_len: usize) -> u16 {
        if v6 {
            checksum::pseudo_header_v6(
                &V6_A.into(),
                &V6_B.into(),
                IpProtocol::TCP,
                u32::try_from(l4_len).unwrap(),
            )
        } else {
            checksum::pseudo_header_v4(
                V4_A.into(),
                V4_B.into(),
                IpProtocol::TCP,
                u16::try_from(l4_len).unwrap(),
            )
        }
    }

    #[test]
    fn source_routed_frames_are_sane_fixtures() {
        // The fixtures are what a receiver (the final destination) accepts: the checksums
        // verify against the final destination, and etherparse reads them.
        let f = tcp4_lsrr_frame(&payload(100));
        let h = parse_headers(&f).unwrap();
        assert_eq!(h.l4, 14 + 28);
        assert!(Ipv4Packet::new_checked(&f[14..]).unwrap().verify_checksum());
        assert!(checksum::verify_v4(
            V4_A.into(),
            V4_B.into(),
            IpProtocol::TCP,
            &f[h.l4..h.end]
        ));
        let f = tcp6_srh_frame(&payload(100));
        let h = parse_headers(&f).unwrap();
        assert_eq!(h.l4, 14 + 40 + 40);
        assert!(checksum::verify_v6(
            &V6_A.into(),
            &V6_B.into(),
            IpProtocol::TCP,
            &f[h.l4..h.end]
        ));
        PacketHeaders::from_ethernet_slice(&f).unwrap();
    }

    #[test]
    fn segments_of_a_source_routed_tcp_super_frame_keep_the_final_destination_checksum() {
        let data = payload(5_000);
        for v6 in [true, false] {
            let mut frame = if v6 {
                tcp6_srh_frame(&data)
            } else {
                tcp4_lsrr_frame(&data)
            };
            let h = parse_headers(&frame).unwrap();
            let l4_len = h.end - h.l4;
            // As the sender's kernel leaves it (CHECKSUM_PARTIAL, virtio F_NEEDS_CSUM): the
            // pseudo-header sum of the *final* destination (tcp_v4/v6_send_check use the
            // socket's daddr).
            let pseudo = final_pseudo(v6, l4_len);
            make_partial(&mut frame, h.l4 + 16, pseudo);
            let kind = if v6 {
                Offload::GSO_TCPV6
            } else {
                Offload::GSO_TCPV4
            };
            // Completing the checksum of the whole frame works (it uses the field)...
            let mut whole = frame.clone();
            complete_csum(
                &mut whole,
                &Offload {
                    gso_type: 0,
                    ..gso(kind, 0, 0, h.l4, 16)
                },
            )
            .unwrap();
            let ok = |s: &[u8]| {
                let hs = parse_headers(s).unwrap();
                let l4 = &s[hs.l4..hs.end];
                if v6 {
                    checksum::verify_v6(&V6_A.into(), &V6_B.into(), IpProtocol::TCP, l4)
                } else {
                    checksum::verify_v4(V4_A.into(), V4_B.into(), IpProtocol::TCP, l4)
                }
            };
            assert!(ok(&whole), "v6={v6}: complete_csum");
            // ...but segmenting it (what the kernel's GSO does with the field: adjusts the
            // length only) yields segments the final destination drops.
            let segs = collect(&frame, &gso(kind, 0, 1400, h.l4, 16)).unwrap();
            assert_eq!(segs.len(), 4);
            for (i, s) in segs.iter().enumerate() {
                assert!(
                    ok(s),
                    "v6={v6}: segment {i} fails the final destination's TCP checksum"
                );
            }
        }
    }

    #[test]
    fn repair_completes_a_source_routed_partial_checksum() {
        for v6 in [true, false] {
            let good = if v6 {
                tcp6_srh_frame(&payload(300))
            } else {
                tcp4_lsrr_frame(&payload(300))
            };
            let h = parse_headers(&good).unwrap();
            let l4_len = h.end - h.l4;
            let pseudo = final_pseudo(v6, l4_len);
            let mut f = good.clone();
            make_partial(&mut f, h.l4 + 16, pseudo);
            let mut g = f.clone();
            assert_eq!(repair_partial_csum(&mut f), CsumState::Completed, "v6={v6}");
            assert_eq!(f, good, "v6={v6}");
            // The worker's keyed variant (AF_XDP receive path) too.
            let (key, lay) = crate::flow::extract(&g, 1).unwrap();
            assert_eq!(
                repair_partial_csum_keyed(&mut g, &key, &lay),
                CsumState::Completed,
                "v6={v6} keyed"
            );
            assert_eq!(g, good, "v6={v6} keyed");
        }
    }

    #[test]
    fn a_checksum_equal_to_the_complement_of_the_pseudo_sum_is_not_partial() {
        // A UDP/IPv4 frame whose (wrong) checksum is !pseudo: not the pseudo-header sum, so
        // it should be NotPartial and left alone; it is taken as partial and rewritten.
        let mut f = udp_frame(false, &payload(64));
        let pseudo = checksum::pseudo_header_v4(V4_A.into(), V4_B.into(), IpProtocol::UDP, 72);
        f[40..42].copy_from_slice(&(!pseudo).to_be_bytes());
        let before = f.clone();
        let state = repair_partial_csum(&mut f);
        assert_eq!((state, f == before), (CsumState::NotPartial, true));
    }

    #[test]
    fn a_uso_segment_whose_checksum_comes_to_zero_sends_all_ones() {
        for v6 in [false, true] {
            let l4 = if v6 { 54 } else { 34 };
            let mut frame = udp_frame(v6, &payload(2_000));
            let off = gso(Offload::GSO_UDP_L4, l4 + 8, 1200, l4, 6);
            // Make the last segment's checksum compute to 0: its last two bytes chosen.
            let n = frame.len();
            frame[n - 2..].copy_from_slice(&[0, 0]);
            let last = collect(&frame, &off).unwrap().pop().unwrap();
            let h = parse_headers(&last).unwrap();
            let pseudo = h.addrs.pseudo(IpProtocol::UDP, h.end - h.l4).unwrap();
            let mut seg = last[h.l4..].to_vec();
            seg[6..8].copy_from_slice(&[0, 0]);
            let c = checksum::compute(pseudo, &seg, 6);
            frame[n - 2..].copy_from_slice(&c.to_be_bytes());
            let segs = collect(&frame, &off).unwrap();
            let last = segs.last().unwrap();
            assert_eq!(&last[l4 + 6..l4 + 8], &[0xff, 0xff], "v6={v6}");
            for s in &segs {
                check_segment(s);
            }
        }
    }

    #[test]
    fn double_tagged_ipv4_with_options_cut_into_an_exact_multiple_of_segments() {
        let data = payload(4 * 1000);
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .double_vlan(VlanId::try_new(10).unwrap(), VlanId::try_new(20).unwrap())
            .ipv4(V4_A, V4_B, 64)
            .tcp(1, 2, 7, 100)
            .ack(1)
            .psh()
            .fin()
            .write(&mut f, &data)
            .unwrap();
        // Add a router alert option (4 bytes) to the IPv4 header, DF, CE.
        let l3 = 22;
        let mut g = f[..l3 + 20].to_vec();
        g.extend_from_slice(&[0x94, 4, 0, 0]);
        g.extend_from_slice(&f[l3 + 20..]);
        g[l3] = 0x46;
        g[l3 + 1] = 0x03;
        let t = u16::from_be_bytes([g[l3 + 2], g[l3 + 3]]) + 4;
        g[l3 + 2..l3 + 4].copy_from_slice(&t.to_be_bytes());
        g[l3 + 6] = 0x40;
        Ipv4Packet::new_unchecked(&mut g[l3..]).fill_checksum();
        let segs = collect(&g, &gso(Offload::GSO_TCPV4, 0, 1000, l3 + 24, 16)).unwrap();
        assert_eq!(segs.len(), 4);
        let mut joined = vec![];
        for (i, s) in segs.iter().enumerate() {
            assert_eq!(&s[..l3 + 24][..12], &g[..12]);
            assert_eq!(&s[12..l3], &g[12..l3]);
            let (net, tr, d) = check_segment(s);
            let NetHeaders::Ipv4(ip, _) = net else {
                panic!()
            };
            assert_eq!(ip.options.as_slice(), &[0x94, 4, 0, 0]);
            assert!(ip.dont_fragment);
            assert_eq!(ip.ecn.value(), 3);
            let t = tcp_of(&tr);
            assert_eq!((t.fin, t.psh), (i == 3, i == 3));
            assert_eq!(d.len(), 1000);
            joined.extend(d);
        }
        assert_eq!(joined, data);
    }

    #[test]
    fn tunnel_outer_udp_checksums_stay_zero_or_are_recomputed() {
        // IPv4 outer with the UDP checksum in use, IPv6 outer with a zero UDP checksum.
        for v6 in [false, true] {
            let inner = tcp4_frame(&payload(3_000));
            let (mut frame, ie) = tunnelled(v6, 4789, &VXLAN, &inner);
            let udp = if v6 { 54 } else { 34 };
            if v6 {
                frame[udp + 6..udp + 8].copy_from_slice(&[0, 0]);
            } else {
                // A partial outer sum, non-zero, as udp_set_csum leaves it for GSO.
                frame[udp + 6..udp + 8].copy_from_slice(&[0x12, 0x34]);
            }
            let mut off = gso(Offload::GSO_TCPV4, 0, 1400, ie + 34, 16);
            mark_udp_tunnel(&frame, &mut off);
            let segs = collect(&frame, &off).unwrap();
            assert_eq!(segs.len(), 3);
            for s in &segs {
                let o = parse_headers(s).unwrap();
                let u = UdpPacket::new_checked(&s[o.l4..]).unwrap();
                match o.addrs {
                    Addrs::V4(a, b) => assert!(u.verify_checksum_v4(a, b)),
                    Addrs::V6(..) => assert_eq!(u.checksum(), 0),
                }
                check_segment(&s[ie..]);
            }
        }
        // UDP segmentation inside VXLAN over IPv6.
        let inner = udp_frame(false, &payload(3_000));
        let (frame, ie) = tunnelled(true, 4789, &VXLAN, &inner);
        let mut off = gso(Offload::GSO_UDP_L4, 0, 1000, ie + 34, 6);
        mark_udp_tunnel(&frame, &mut off);
        let segs = collect(&frame, &off).unwrap();
        assert_eq!(segs.len(), 3);
        for (i, s) in segs.iter().enumerate() {
            let o = parse_headers(s).unwrap();
            let u = UdpPacket::new_checked(&s[o.l4..]).unwrap();
            let Addrs::V6(a, b) = o.addrs else { panic!() };
            assert!(u.verify_checksum_v6(&a, &b));
            let (net, _, d) = check_segment(&s[ie..]);
            let NetHeaders::Ipv4(ip, _) = net else {
                panic!()
            };
            assert_eq!(usize::from(ip.identification), i);
            assert_eq!(d.len(), 1000);
        }
    }
}
