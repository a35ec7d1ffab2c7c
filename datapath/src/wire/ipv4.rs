//! IPv4 headers (RFC 791).

use core::net::Ipv4Addr;

use super::bytes::{self, Field};
use super::{IpProtocol, ParseError, checksum};

mod field {
    use super::Field;
    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: Field = 2..4;
    pub(super) const IDENT: Field = 4..6;
    pub(super) const FLG_OFF: Field = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Field = 10..12;
    pub(super) const SRC: Field = 12..16;
    pub(super) const DST: Field = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST.end;

/// Largest IPv4 header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

/// Offset of the header checksum inside the header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet (RFC 791 §3.1). The buffer may extend past the packet (Ethernet
/// padding); [`Self::payload`] stops at `total_len`.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version|  IHL  |   DSCP    |ECN|          Total Length         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         Identification        |0|D|M|     Fragment Offset     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Time to Live |    Protocol   |         Header Checksum       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Source Address                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Destination Address                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Options (IHL > 5)                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///   D: don't fragment, M: more fragments; DSCP/ECN per RFC 2474/3168
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
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

    /// Checks everything the accessors rely on. The header checksum is not verified (see
    /// [`Self::verify_checksum`]).
    ///
    /// # Errors
    /// - [`ParseError::Truncated`]: shorter than 20 bytes or than the IHL says;
    /// - [`ParseError::BadVersion`]: the version is not 4;
    /// - [`ParseError::BadHeader`]: IHL < 5;
    /// - [`ParseError::BadLength`]: total length shorter than the header or longer than the
    ///   buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if self.version() != 4 {
            return Err(ParseError::BadVersion);
        }
        let hlen = self.header_len();
        if hlen < HEADER_LEN {
            return Err(ParseError::BadHeader);
        }
        if len < hlen {
            return Err(ParseError::Truncated);
        }
        let total = usize::from(self.total_len());
        if total < hlen || total > len {
            return Err(ParseError::BadLength);
        }
        Ok(())
    }

    /// Returns the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (4 on a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in 32-bit words.
    #[inline]
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// Header length in bytes (IHL × 4, options included).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// Differentiated services code point.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification bits.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The whole type-of-service byte (DSCP and ECN).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length (header and payload) in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        bytes::read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_DF != 0
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        bytes::read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field × 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (bytes::read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & OFFSET_MASK) << 3
    }

    /// True for any fragment (more-fragments set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        bytes::read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Header checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes::array::<4>(self.buffer.as_ref(), field::SRC.start))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes::array::<4>(self.buffer.as_ref(), field::DST.start))
    }

    /// The header bytes (options included).
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The options (empty when IHL is 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// True when the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(0, self.header())
    }

    /// The payload: from the end of the header to `total_len` (padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<'a> Packet<&'a [u8]> {
    /// The payload, borrowed for the buffer's lifetime rather than the view's.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &self.buffer[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the header length in bytes (rounded down to a multiple of 4; at most 60).
    /// Can invalidate `check_len`.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let words = u8::try_from((len / 4).min(15)).unwrap_or(15);
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | words;
    }

    /// Sets the DSCP (low 6 bits of `v`).
    #[inline]
    pub fn set_dscp(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (v << 2);
    }

    /// Sets the ECN bits (low 2 bits of `v`).
    #[inline]
    pub fn set_ecn(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xfc) | (v & 0x03);
    }

    /// Sets the total length. Can invalidate `check_len`.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::IDENT.start, v);
    }

    /// Clears the flags and the fragment offset.
    #[inline]
    pub fn clear_flags(&mut self) {
        bytes::write_u16(self.buffer.as_mut(), field::FLG_OFF.start, 0);
    }

    /// Sets the don't-fragment flag.
    #[inline]
    pub fn set_dont_frag(&mut self, v: bool) {
        self.set_flag(FLAG_DF, v);
    }

    /// Sets the more-fragments flag.
    #[inline]
    pub fn set_more_frags(&mut self, v: bool) {
        self.set_flag(FLAG_MF, v);
    }

    #[inline]
    fn set_flag(&mut self, flag: u16, v: bool) {
        let raw = bytes::read_u16(self.buffer.as_ref(), field::FLG_OFF.start);
        let raw = if v { raw | flag } else { raw & !flag };
        bytes::write_u16(self.buffer.as_mut(), field::FLG_OFF.start, raw);
    }

    /// Sets the fragment offset in bytes (must be a multiple of 8; the remainder is dropped).
    #[inline]
    pub fn set_frag_offset(&mut self, offset: u16) {
        let raw = bytes::read_u16(self.buffer.as_ref(), field::FLG_OFF.start);
        let raw = (raw & !OFFSET_MASK) | ((offset >> 3) & OFFSET_MASK);
        bytes::write_u16(self.buffer.as_mut(), field::FLG_OFF.start, raw);
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = v.0;
    }

    /// Sets the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&v.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&v.octets());
    }

    /// Computes and stores the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let c = checksum::compute(0, self.header(), field::CHECKSUM.start);
        self.set_checksum(c);
    }

    /// The options, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The payload (up to `total_len`), writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// The fields of an IPv4 header the datapath builds packets from, owned. Options are not
/// represented: [`Repr::emit`] writes a 20-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Payload length in bytes.
    pub payload_len: u16,
    /// Time to live.
    pub ttl: u8,
    /// DSCP.
    pub dscp: u8,
    /// ECN bits.
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
}

impl Repr {
    /// Reads a checked packet, verifying its header checksum. Fragmentation fields other than
    /// DF and the options are not represented.
    ///
    /// # Errors
    /// [`ParseError::BadChecksum`] when the header checksum is wrong.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, ParseError> {
        if !p.verify_checksum() {
            return Err(ParseError::BadChecksum);
        }
        let payload_len = u16::try_from(p.payload().len()).map_err(|_| ParseError::BadLength)?;
        Ok(Self {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len,
            ttl: p.ttl(),
            dscp: p.dscp(),
            ecn: p.ecn(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
        })
    }

    /// Length of the emitted header (20).
    #[inline]
    #[must_use]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of the emitted packet (header and payload).
    #[inline]
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }

    /// Writes a 20-byte header with a correct checksum into `p` (at least [`HEADER_LEN`]
    /// bytes; the payload is the caller's).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_version(4);
        p.set_header_len(HEADER_LEN);
        p.set_dscp(self.dscp);
        p.set_ecn(self.ecn);
        p.set_total_len(self.payload_len.saturating_add(20));
        p.set_ident(self.ident);
        p.clear_flags();
        p.set_dont_frag(self.dont_frag);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.set_checksum(0);
        let c = checksum::compute(0, &p.buffer.as_ref()[..HEADER_LEN], CHECKSUM_OFFSET);
        p.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Frame 60 of kernel-traffic.pcap: UDP 10.77.0.1 → 10.77.0.2, 16 bytes of UDP.
    static PACKET: [u8; 36] = [
        0x45, 0x00, 0x00, 0x24, 0xb5, 0x84, 0x40, 0x00, 0x40, 0x11, 0x70, 0xa8, 0x0a, 0x4d, 0x00,
        0x01, 0x0a, 0x4d, 0x00, 0x02, 0xdb, 0x19, 0x14, 0xe9, 0x00, 0x10, 0x14, 0xbe, 0x75, 0x64,
        0x70, 0x2d, 0x64, 0x61, 0x74, 0x61,
    ];

    fn repr() -> Repr {
        Repr {
            src_addr: Ipv4Addr::new(10, 77, 0, 1),
            dst_addr: Ipv4Addr::new(10, 77, 0, 2),
            protocol: IpProtocol::UDP,
            payload_len: 16,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0xb584,
            dont_frag: true,
        }
    }

    #[test]
    fn deconstructs_a_packet() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.ihl(), 5);
        assert_eq!(p.header_len(), 20);
        assert_eq!((p.dscp(), p.ecn(), p.tos()), (0, 0, 0));
        assert_eq!(p.total_len(), 36);
        assert_eq!(p.ident(), 0xb584);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::UDP);
        assert_eq!(p.checksum(), 0x70a8);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 77, 0, 2));
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &PACKET[20..]);
        assert_eq!(p.into_payload().len(), 16);
    }

    #[test]
    fn constructs_a_packet() {
        let mut buf = [0xa5u8; 36];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_dscp(0);
        p.set_ecn(0);
        p.set_total_len(36);
        p.set_ident(0xb584);
        p.clear_flags();
        p.set_dont_frag(true);
        p.set_more_frags(false);
        p.set_frag_offset(0);
        p.set_ttl(64);
        p.set_protocol(IpProtocol::UDP);
        p.set_src_addr(Ipv4Addr::new(10, 77, 0, 1));
        p.set_dst_addr(Ipv4Addr::new(10, 77, 0, 2));
        p.fill_checksum();
        p.payload_mut().copy_from_slice(&PACKET[20..]);
        assert_eq!(buf, PACKET);
    }

    #[test]
    fn parses_and_emits_a_repr() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), repr());
        let r = repr();
        let mut buf = vec![0u8; r.buffer_len()];
        let mut q = Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut q);
        q.payload_mut().copy_from_slice(&PACKET[20..]);
        assert_eq!(buf, PACKET);
    }

    #[test]
    fn fragment_fields_round_trip() {
        let mut buf = PACKET;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        p.set_dscp(46);
        p.set_ecn(3);
        assert!(p.more_frags() && !p.dont_frag() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!((p.dscp(), p.ecn(), p.tos()), (46, 3, 0xbb));
    }

    #[test]
    fn options_are_skipped_by_ihl() {
        let mut buf = [0u8; 24 + 4];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(24);
        p.set_total_len(28);
        p.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        p.payload_mut().copy_from_slice(&[9, 9, 9, 9]);
        p.fill_checksum();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[9, 9, 9, 9]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn padding_after_total_length_is_not_payload() {
        let mut buf = PACKET.to_vec();
        buf.extend_from_slice(&[0; 10]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 16);
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
        b[0] = 0x65;
        assert_eq!(Packet::new_checked(&b[..]), Err(ParseError::BadVersion));
        b[0] = 0x44;
        assert_eq!(Packet::new_checked(&b[..]), Err(ParseError::BadHeader));
        b[0] = 0x4f; // 60-byte header in a 36-byte buffer
        assert_eq!(Packet::new_checked(&b[..]), Err(ParseError::Truncated));
        let mut b = PACKET;
        b[0] = 0x46;
        b[3] = 23; // total length shorter than the 24-byte header
        assert_eq!(Packet::new_checked(&b[..]), Err(ParseError::BadLength));
        let mut b = PACKET;
        b[11] ^= 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Repr::parse(&p), Err(ParseError::BadChecksum));
    }

    #[test]
    fn etherparse_agrees_on_the_header_checksum() {
        let (h, _) = etherparse::Ipv4Header::from_slice(&PACKET).unwrap();
        assert_eq!(h.calc_header_checksum(), 0x70a8);
    }
}
