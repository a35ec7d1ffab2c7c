//! ICMP for IPv4 (RFC 792) and ICMPv6 (RFC 4443): the common type/code/checksum header.

use core::net::Ipv6Addr;

use super::bytes::{self, Field};
use super::{IpProtocol, ParseError, checksum};

mod field {
    use super::Field;
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Field = 2..4;
    pub(super) const REST: Field = 4..8;
}

/// Length of the ICMP header (type, code, checksum and the 4-byte rest of header).
pub const HEADER_LEN: usize = field::REST.end;

/// ICMPv4 message types (RFC 792).
pub mod v4_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// ICMPv6 message types (RFC 4443, RFC 4861, RFC 3810).
pub mod v6_type {
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 1;
    /// Packet too big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAMETER_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbor solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Multicast listener report, version 2.
    pub const MLDV2_REPORT: u8 = 143;
}

/// A view of an ICMP or ICMPv6 message. The buffer is the whole message (the IP payload):
/// checksums cover all of it.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Type      |     Code      |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Rest of header (echo: Identifier | Sequence Number)       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Data …                                                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// (RFC 792 for ICMPv4: checksum over the message only; RFC 4443 §2.3 for ICMPv6: checksum
/// over the IPv6 pseudo-header and the message.)
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
    /// [`ParseError::Truncated`] when shorter than [`HEADER_LEN`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the 8-byte header.
    ///
    /// # Errors
    /// [`ParseError::Truncated`] when shorter than [`HEADER_LEN`].
    #[inline]
    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(ParseError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type ([`v4_type`], [`v6_type`]).
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The 4-byte rest of header, as a number.
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        bytes::read_u32(self.buffer.as_ref(), field::REST.start)
    }

    /// Echo identifier (meaningful for echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::REST.start)
    }

    /// Echo sequence number (meaningful for echo request/reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::REST.start + 2)
    }

    /// True for echo requests and replies of either family.
    #[inline]
    pub fn is_echo(&self) -> bool {
        matches!(
            self.msg_type(),
            v4_type::ECHO_REQUEST
                | v4_type::ECHO_REPLY
                | v6_type::ECHO_REQUEST
                | v6_type::ECHO_REPLY
        )
    }

    /// Everything after the 8-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// True when the ICMPv4 checksum (over the message) is correct.
    #[inline]
    pub fn verify_checksum_v4(&self) -> bool {
        checksum::verify(0, self.buffer.as_ref())
    }

    /// True when the ICMPv6 checksum (pseudo-header and message) is correct.
    #[inline]
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        checksum::verify_v6(src, dst, IpProtocol::ICMPV6, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    /// Sets the code.
    #[inline]
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Sets the rest of header.
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        bytes::write_u32(self.buffer.as_mut(), field::REST.start, v);
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::REST.start, v);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, v: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::REST.start + 2, v);
    }

    /// Computes and stores the ICMPv4 checksum.
    #[inline]
    pub fn fill_checksum_v4(&mut self) {
        let c = checksum::icmp_v4(self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Computes and stores the ICMPv6 checksum.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let c = checksum::icmp_v6(src, dst, self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Everything after the 8-byte header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request id 0x38d4 seq 1 with 8 bytes of data (checksum filled by the test).
    static ECHO: [u8; 16] = [
        0x08, 0x00, 0x00, 0x00, 0x38, 0xd4, 0x00, 0x01, 0xbe, 0xde, 0x06, 0x6b, 0, 0, 0, 0,
    ];

    #[test]
    fn deconstructs_and_checks_an_icmpv4_echo() {
        let mut buf = ECHO;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum_v4();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.msg_type(), v4_type::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert!(p.is_echo());
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x38d4, 1));
        assert_eq!(p.rest_of_header(), 0x38d4_0001);
        assert_eq!(p.payload().len(), 8);
        assert!(p.verify_checksum_v4());
        let et = etherparse::Icmpv4Header::from_slice(&buf).unwrap().0;
        assert_eq!(et.icmp_type.calc_checksum(&buf[8..]), p.checksum());
    }

    #[test]
    fn constructs_an_icmpv6_echo_with_a_valid_checksum() {
        let src: Ipv6Addr = "fd77::1".parse().unwrap();
        let dst: Ipv6Addr = "fd77::2".parse().unwrap();
        let mut buf = [0xa5u8; 12];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(v6_type::ECHO_REQUEST);
        p.set_code(0);
        p.set_rest_of_header(0);
        p.set_echo_ident(7);
        p.set_echo_seq_no(9);
        p.payload_mut().copy_from_slice(b"ping");
        p.fill_checksum_v6(&src, &dst);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum_v6(&src, &dst));
        assert!(!p.verify_checksum_v6(&dst, &"fd77::3".parse().unwrap()));
        let mut q = Packet::new_unchecked(buf);
        q.set_checksum(q.checksum() ^ 0x100);
        assert!(!q.verify_checksum_v6(&src, &dst));
    }

    #[test]
    fn rejects_truncated_messages() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&ECHO[..len]).unwrap_err(),
                ParseError::Truncated
            );
        }
    }
}
