//! UDP headers (RFC 768).

use core::net::{Ipv4Addr, Ipv6Addr};

use super::bytes::{self, Field};
use super::{ParseError, checksum};

mod field {
    use super::Field;
    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const CHECKSUM: Field = 6..8;
}

/// Length of a UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// Offset of the checksum inside the header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// A view of a UDP datagram (RFC 768). The buffer is the IP payload; it may extend past the
/// datagram, and [`Self::payload`] stops at the length field.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          Source Port          |       Destination Port        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |            Length             |           Checksum            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Data …                                                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// A checksum of 0 means "none" over IPv4 and is invalid over IPv6 (RFC 8200 §8.1); a
/// computed 0 is sent as `0xffff`.
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

    /// Checks the header and the length field.
    ///
    /// # Errors
    /// [`ParseError::Truncated`] when shorter than 8 bytes; [`ParseError::BadLength`] when
    /// the length field is below 8 or runs past the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN || field_len > len {
            return Err(ParseError::BadLength);
        }
        Ok(())
    }

    /// Returns the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Length of header and data in bytes.
    #[inline]
    pub fn len(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// True when the datagram carries no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The datagram (header and data) as the length field delimits it.
    #[inline]
    pub fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }

    /// The data, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// True when the checksum is correct over IPv4 (or absent: 0).
    #[inline]
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0
            || checksum::verify_v4(src, dst, super::IpProtocol::UDP, self.datagram())
    }

    /// True when the checksum is correct over IPv6 (0 is invalid).
    #[inline]
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        checksum::verify_v6(src, dst, super::IpProtocol::UDP, self.datagram())
    }
}

impl<'a> Packet<&'a [u8]> {
    /// The data, borrowed for the buffer's lifetime rather than the view's.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let end = usize::from(self.len());
        &self.buffer[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }

    /// Sets the length field. Can invalidate `check_len`.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Computes and stores the checksum over IPv4 (a computed 0 is stored as `0xffff`).
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let c = checksum::udp_v4(src, dst, self.datagram());
        self.set_checksum(c);
    }

    /// Computes and stores the checksum over IPv6 (a computed 0 is stored as `0xffff`).
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let c = checksum::udp_v6(src, dst, self.datagram());
        self.set_checksum(c);
    }

    /// The data, up to the length field, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The ports of a UDP header, owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl Repr {
    /// Reads a checked datagram.
    ///
    /// # Errors
    /// [`ParseError::BadHeader`] when the destination port is 0.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, ParseError> {
        if p.dst_port() == 0 {
            return Err(ParseError::BadHeader);
        }
        Ok(Self {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    /// Length of the header (8).
    #[inline]
    #[must_use]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of a datagram with `payload_len` data bytes.
    #[inline]
    #[must_use]
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header for `payload_len` data bytes into `p`, with a zero checksum; fill the
    /// data, then call `fill_checksum_v4`/`fill_checksum_v6`.
    ///
    /// # Errors
    /// [`ParseError::BadLength`] when the datagram would exceed 65535 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut Packet<T>,
        payload_len: usize,
    ) -> Result<(), ParseError> {
        let len = u16::try_from(HEADER_LEN + payload_len).map_err(|_| ParseError::BadLength)?;
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(len);
        p.set_checksum(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Frame 60 of kernel-traffic.pcap, UDP part, with its checksum completed.
    static DATAGRAM: [u8; 16] = [
        0xdb, 0x19, 0x14, 0xe9, 0x00, 0x10, 0x3c, 0xda, b'u', b'd', b'p', b'-', b'd', b'a', b't',
        b'a',
    ];
    const SRC: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

    #[test]
    fn deconstructs_a_datagram() {
        let p = Packet::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 56089);
        assert_eq!(p.dst_port(), 5353);
        assert_eq!(p.len(), 16);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0x3cda);
        assert_eq!(p.payload(), b"udp-data");
        assert!(p.verify_checksum_v4(SRC, DST));
        assert!(!p.verify_checksum_v4(DST, Ipv4Addr::new(10, 77, 0, 3)));
        assert_eq!(p.into_payload(), b"udp-data");
    }

    #[test]
    fn constructs_a_datagram() {
        let mut buf = [0xa5u8; 16];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        Repr {
            src_port: 56089,
            dst_port: 5353,
        }
        .emit(&mut p, 8)
        .unwrap();
        p.payload_mut().copy_from_slice(b"udp-data");
        p.fill_checksum_v4(SRC, DST);
        assert_eq!(buf, DATAGRAM);
        let et = etherparse::UdpHeader::from_slice(&buf).unwrap().0;
        assert_eq!(
            et.calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), b"udp-data")
                .unwrap(),
            0x3cda
        );
    }

    #[test]
    fn parses_a_repr() {
        let p = Packet::new_checked(&DATAGRAM[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!((r.src_port, r.dst_port), (56089, 5353));
        assert_eq!(r.buffer_len(8), 16);
        let mut b = DATAGRAM;
        b[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Err(ParseError::BadHeader)
        );
    }

    #[test]
    fn zero_checksum_over_ipv4_means_none() {
        let mut b = DATAGRAM;
        b[6..8].copy_from_slice(&[0, 0]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum_v4(SRC, DST));
        let a: Ipv6Addr = "fd77::1".parse().unwrap();
        assert!(!p.verify_checksum_v6(&a, &a));
    }

    #[test]
    fn ipv6_checksum_round_trips() {
        let (a, b): (Ipv6Addr, Ipv6Addr) = ("fd77::1".parse().unwrap(), "fd77::2".parse().unwrap());
        let mut buf = DATAGRAM;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum_v6(&a, &b);
        assert!(p.verify_checksum_v6(&a, &b));
    }

    #[test]
    fn malformed_lengths_return_the_right_error() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&DATAGRAM[..len]).unwrap_err(),
                ParseError::Truncated
            );
        }
        for len in HEADER_LEN..DATAGRAM.len() {
            assert_eq!(
                Packet::new_checked(&DATAGRAM[..len]).unwrap_err(),
                ParseError::BadLength
            );
        }
        let mut b = DATAGRAM;
        b[5] = 7;
        assert_eq!(Packet::new_checked(&b[..]), Err(ParseError::BadLength));
        b[5] = 8;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_empty() && p.payload().is_empty());
        assert_eq!(
            Repr {
                src_port: 1,
                dst_port: 2
            }
            .emit(&mut Packet::new_unchecked(&mut [0u8; 8][..]), 65528),
            Err(ParseError::BadLength)
        );
    }
}
