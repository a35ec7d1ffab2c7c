//! IPv6 fixed headers (RFC 8200) and a walker over extension headers.

use core::net::Ipv6Addr;

use super::bytes::{self, Field};
use super::{IpProtocol, ParseError};

mod field {
    use super::Field;
    pub(super) const VER_TC_FLOW: Field = 0..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC: Field = 8..24;
    pub(super) const DST: Field = 24..40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::DST.end;

/// Most extension headers [`walk_extension_headers`] follows before giving up.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// A view of an IPv6 packet (RFC 8200 §3). The buffer may extend past the packet (Ethernet
/// padding); [`Self::payload`] stops at the payload length.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Traffic Class |             Flow Label                |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         Payload Length        |  Next Header  |   Hop Limit   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// +                                                               +
/// |                      Source Address (128 bits)                |
/// +                                                               +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// +                                                               +
/// |                   Destination Address (128 bits)              |
/// +                                                               +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Extension headers (hop-by-hop, routing, fragment, destination options) sit between this
/// header and the upper-layer header; [`Self::upper_layer`] finds the latter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// What a fragment header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// Offset of this fragment's data in the original payload, in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

impl FragmentInfo {
    /// True for an atomic fragment (offset 0, no more fragments: the whole packet is here).
    #[inline]
    #[must_use]
    pub const fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
}

/// Where the upper-layer header of an IPv6 packet is, after the extension headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// Upper-layer protocol (or [`IpProtocol::IPV6_NO_NEXT`]; or any header this walker does
    /// not traverse, such as AH or ESP).
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header from the start of the buffer the walk started at (for
    /// [`Packet::upper_layer`]: from the start of the IPv6 header, so at least 40).
    pub offset: usize,
    /// The fragment header, if one was crossed. For a non-first fragment (`offset != 0`) the
    /// bytes at `offset` are not an upper-layer header.
    pub fragment: Option<FragmentInfo>,
}

/// Walks the extension headers in `data`, the first of which has type `first`, and returns
/// where the upper-layer header starts (offset from the start of `data`).
///
/// Follows hop-by-hop options (0), routing (43), fragment (44) and destination options (60),
/// at most [`MAX_EXTENSION_HEADERS`] of them; anything else is the upper layer.
///
/// # Errors
/// [`ParseError::Truncated`] when an extension header does not fit in `data`;
/// [`ParseError::BadHeader`] after more than [`MAX_EXTENSION_HEADERS`] headers or when a
/// hop-by-hop header is not the first one.
pub fn walk_extension_headers(first: IpProtocol, data: &[u8]) -> Result<UpperLayer, ParseError> {
    let mut protocol = first;
    let mut offset = 0usize;
    let mut fragment = None;
    for i in 0..=MAX_EXTENSION_HEADERS {
        let len = match protocol {
            IpProtocol::HOP_BY_HOP if i != 0 => return Err(ParseError::BadHeader),
            IpProtocol::HOP_BY_HOP | IpProtocol::IPV6_ROUTING | IpProtocol::IPV6_DEST_OPTS => {
                let hdr = data.get(offset..offset + 2).ok_or(ParseError::Truncated)?;
                (usize::from(hdr[1]) + 1) * 8
            }
            IpProtocol::IPV6_FRAGMENT => {
                let hdr = data.get(offset..offset + 8).ok_or(ParseError::Truncated)?;
                let off_flags = bytes::read_u16(hdr, 2);
                fragment = Some(FragmentInfo {
                    offset: off_flags & 0xfff8,
                    more: off_flags & 1 != 0,
                    ident: bytes::read_u32(hdr, 4),
                });
                8
            }
            _ => {
                return Ok(UpperLayer {
                    protocol,
                    offset,
                    fragment,
                });
            }
        };
        if i == MAX_EXTENSION_HEADERS {
            break;
        }
        if data.len() < offset + len {
            return Err(ParseError::Truncated);
        }
        protocol = IpProtocol(data[offset]);
        offset += len;
    }
    Err(ParseError::BadHeader)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking anything (see the module's panic contract).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after [`Self::check_len`].
    ///
    /// # Errors
    /// See [`Self::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks everything the accessors rely on.
    ///
    /// # Errors
    /// [`ParseError::Truncated`] when shorter than 40 bytes; [`ParseError::BadVersion`] when
    /// the version is not 6; [`ParseError::BadLength`] when the payload length runs past the
    /// buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if self.version() != 6 {
            return Err(ParseError::BadVersion);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(ParseError::BadLength);
        }
        Ok(())
    }

    /// Returns the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (6 on a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// Traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        let w = bytes::read_u16(self.buffer.as_ref(), field::VER_TC_FLOW.start);
        u8::try_from((w >> 4) & 0xff).unwrap_or(0)
    }

    /// DSCP (high 6 bits of the traffic class).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// ECN bits (low 2 bits of the traffic class).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        bytes::read_u32(self.buffer.as_ref(), field::VER_TC_FLOW.start) & 0x000f_ffff
    }

    /// Payload length (extension headers included) in bytes.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Type of the first header after the fixed header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(bytes::array::<16>(self.buffer.as_ref(), field::SRC.start))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(bytes::array::<16>(self.buffer.as_ref(), field::DST.start))
    }

    /// The payload (extension headers included), up to the payload length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// Finds the upper-layer header after the extension headers (offset from the start of
    /// the IPv6 header); see [`walk_extension_headers`].
    ///
    /// # Errors
    /// As [`walk_extension_headers`], over the payload.
    #[inline]
    pub fn upper_layer(&self) -> Result<UpperLayer, ParseError> {
        let mut u = walk_extension_headers(self.next_header(), self.payload())?;
        u.offset += HEADER_LEN;
        Ok(u)
    }
}

impl<'a> Packet<&'a [u8]> {
    /// The payload, borrowed for the buffer's lifetime rather than the view's.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &self.buffer[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_TC_FLOW.start];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = self.buffer.as_mut();
        b[0] = (b[0] & 0xf0) | (tc >> 4);
        b[1] = (b[1] & 0x0f) | (tc << 4);
    }

    /// Sets the DSCP (low 6 bits of `v`), keeping the ECN bits.
    #[inline]
    pub fn set_dscp(&mut self, v: u8) {
        let tc = (self.traffic_class() & 0x03) | (v << 2);
        self.set_traffic_class(tc);
    }

    /// Sets the ECN bits (low 2 bits of `v`), keeping the DSCP.
    #[inline]
    pub fn set_ecn(&mut self, v: u8) {
        let tc = (self.traffic_class() & 0xfc) | (v & 0x03);
        self.set_traffic_class(tc);
    }

    /// Sets the flow label (low 20 bits of `v`).
    #[inline]
    pub fn set_flow_label(&mut self, v: u32) {
        let w = bytes::read_u32(self.buffer.as_ref(), field::VER_TC_FLOW.start);
        let w = (w & 0xfff0_0000) | (v & 0x000f_ffff);
        bytes::write_u32(self.buffer.as_mut(), field::VER_TC_FLOW.start, w);
    }

    /// Sets the payload length. Can invalidate `check_len`.
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = v.0;
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, v: &Ipv6Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&v.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, v: &Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&v.octets());
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The fields of an IPv6 fixed header, owned (extension headers are part of the payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Type of the header after the fixed header.
    pub next_header: IpProtocol,
    /// Payload length in bytes.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Reads a checked packet.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        }
    }

    /// Length of the fixed header (40).
    #[inline]
    #[must_use]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of the emitted packet.
    #[inline]
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }

    /// Writes the fixed header into `p` (at least [`HEADER_LEN`] bytes).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        bytes::write_u32(p.buffer.as_mut(), 0, 0);
        p.set_version(6);
        p.set_traffic_class(self.traffic_class);
        p.set_flow_label(self.flow_label);
        p.set_payload_len(self.payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(&self.src_addr);
        p.set_dst_addr(&self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Frame 62 of kernel-traffic.pcap: UDP fd77::1 → fd77::2, flow label 0x96c5b.
    static PACKET: [u8; 52] = [
        0x60, 0x09, 0x6c, 0x5b, 0x00, 0x0c, 0x11, 0x40, 0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0x01, 0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x81, 0xdf, 0x14,
        0xe9, 0x00, 0x0c, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64,
    ];

    fn repr() -> Repr {
        Repr {
            src_addr: "fd77::1".parse().unwrap(),
            dst_addr: "fd77::2".parse().unwrap(),
            next_header: IpProtocol::UDP,
            payload_len: 12,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0x9_6c5b,
        }
    }

    #[test]
    fn deconstructs_a_packet() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x9_6c5b);
        assert_eq!(p.payload_len(), 12);
        assert_eq!(p.next_header(), IpProtocol::UDP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "fd77::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "fd77::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &PACKET[40..]);
        let u = p.upper_layer().unwrap();
        assert_eq!(
            (u.protocol, u.offset, u.fragment),
            (IpProtocol::UDP, 40, None)
        );
    }

    #[test]
    fn constructs_a_packet() {
        let mut buf = [0xa5u8; 52];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version(6);
        p.set_traffic_class(0);
        p.set_flow_label(0x9_6c5b);
        p.set_payload_len(12);
        p.set_next_header(IpProtocol::UDP);
        p.set_hop_limit(64);
        p.set_src_addr(&"fd77::1".parse().unwrap());
        p.set_dst_addr(&"fd77::2".parse().unwrap());
        p.payload_mut().copy_from_slice(&PACKET[40..]);
        assert_eq!(buf, PACKET);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_dscp(46);
        p.set_ecn(2);
        assert_eq!((p.dscp(), p.ecn(), p.traffic_class()), (46, 2, 0xba));
        assert_eq!(p.flow_label(), 0x9_6c5b);
        assert_eq!(p.version(), 6);
    }

    #[test]
    fn parses_and_emits_a_repr() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(Repr::parse(&p), repr());
        let mut buf = vec![0xffu8; repr().buffer_len()];
        let mut q = Packet::new_unchecked(&mut buf[..]);
        repr().emit(&mut q);
        q.payload_mut().copy_from_slice(&PACKET[40..]);
        assert_eq!(buf, PACKET);
    }

    #[test]
    fn malformed_headers_return_the_right_error() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&PACKET[..len]).unwrap_err(),
                ParseError::Truncated
            );
        }
        for len in HEADER_LEN..PACKET.len() {
            assert_eq!(
                Packet::new_checked(&PACKET[..len]).unwrap_err(),
                ParseError::BadLength
            );
        }
        let mut b = PACKET;
        b[0] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]), Err(ParseError::BadVersion));
    }

    /// Builds an extension header of type `next` with `len8` 8-byte units after the first.
    fn ext(next: u8, len8: u8) -> Vec<u8> {
        let mut h = vec![0u8; (usize::from(len8) + 1) * 8];
        h[0] = next;
        h[1] = len8;
        h
    }

    #[test]
    fn walks_hop_by_hop_routing_fragment_and_destination_options() {
        let mut data = ext(43, 0); // hop-by-hop → routing
        data.extend(ext(60, 1)); // routing (16 bytes) → dest opts
        data.extend(ext(44, 0)); // dest opts → fragment
        let mut frag = vec![6, 0, 0x05, 0xa9, 0xde, 0xad, 0xbe, 0xef]; // → TCP, offset 1448, M
        data.append(&mut frag);
        data.extend_from_slice(&[0u8; 20]);
        let u = walk_extension_headers(IpProtocol::HOP_BY_HOP, &data).unwrap();
        assert_eq!(u.protocol, IpProtocol::TCP);
        assert_eq!(u.offset, 8 + 16 + 8 + 8);
        assert_eq!(
            u.fragment,
            Some(FragmentInfo {
                offset: 1448,
                more: true,
                ident: 0xdead_beef
            })
        );
        assert!(!u.fragment.unwrap().is_atomic());
    }

    #[test]
    fn extension_walk_is_bounded_and_checked() {
        // Nine destination-options headers in a row: more than the walker follows.
        let mut data = vec![];
        for _ in 0..9 {
            data.extend(ext(60, 0));
        }
        assert_eq!(
            walk_extension_headers(IpProtocol::IPV6_DEST_OPTS, &data),
            Err(ParseError::BadHeader)
        );
        // Eight are fine.
        let mut data = vec![];
        for i in 0..8 {
            data.extend(ext(if i == 7 { 17 } else { 60 }, 0));
        }
        let u = walk_extension_headers(IpProtocol::IPV6_DEST_OPTS, &data).unwrap();
        assert_eq!((u.protocol, u.offset), (IpProtocol::UDP, 64));
        // A length running past the data.
        let data = ext(17, 3);
        assert_eq!(
            walk_extension_headers(IpProtocol::IPV6_ROUTING, &data[..31]),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            walk_extension_headers(IpProtocol::IPV6_FRAGMENT, &data[..7]),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            walk_extension_headers(IpProtocol::IPV6_ROUTING, &data[..1]),
            Err(ParseError::Truncated)
        );
        // Hop-by-hop anywhere but first.
        let data = ext(0, 0);
        assert_eq!(
            walk_extension_headers(IpProtocol::IPV6_DEST_OPTS, &data),
            Err(ParseError::BadHeader)
        );
        // Nothing to walk.
        let u = walk_extension_headers(IpProtocol::IPV6_NO_NEXT, &[]).unwrap();
        assert_eq!((u.protocol, u.offset), (IpProtocol::IPV6_NO_NEXT, 0));
    }
}
