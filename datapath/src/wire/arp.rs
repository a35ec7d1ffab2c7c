//! ARP for IPv4 over Ethernet (RFC 826).

use core::fmt;
use core::net::Ipv4Addr;

use super::ParseError;
use super::bytes::{self, Field};
use super::ethernet::{EtherType, Mac};

mod field {
    use super::Field;
    pub(super) const HTYPE: Field = 0..2;
    pub(super) const PTYPE: Field = 2..4;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: Field = 6..8;
    pub(super) const SHA: Field = 8..14;
    pub(super) const SPA: Field = 14..18;
    pub(super) const THA: Field = 18..24;
    pub(super) const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const HEADER_LEN: usize = field::TPA.end;

/// Hardware type of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

/// An ARP operation code. The associated constants can be used as patterns.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Operation(pub u16);

impl Operation {
    /// Who has `tpa`? Tell `spa`.
    pub const REQUEST: Self = Self(1);
    /// `spa` is at `sha`.
    pub const REPLY: Self = Self(2);
}

impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::REQUEST => f.write_str("request"),
            Self::REPLY => f.write_str("reply"),
            Self(other) => write!(f, "op{other}"),
        }
    }
}

/// A view of an ARP packet for IPv4 over Ethernet (RFC 826).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Hardware type (1)           |   Protocol type (0x0800)      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  HLEN (6)     |  PLEN (4)     |   Operation                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                Sender hardware address (SHA)                  |
/// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                               | Sender protocol address (SPA) |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |                               |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |                Target hardware address (THA)                  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                Target protocol address (TPA)                  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
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

    /// Checks that the buffer holds a whole Ethernet/IPv4 ARP packet and that its format
    /// fields say so (this view reads fixed offsets that assume 6-byte and 4-byte addresses).
    ///
    /// # Errors
    /// [`ParseError::Truncated`] when shorter than [`HEADER_LEN`]; [`ParseError::BadHeader`]
    /// when the hardware/protocol types or address lengths are not Ethernet/IPv4.
    #[inline]
    pub fn check_len(&self) -> Result<(), ParseError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if self.htype() != HTYPE_ETHERNET
            || self.ptype() != EtherType::IPV4
            || self.hlen() != 6
            || self.plen() != 4
        {
            return Err(ParseError::BadHeader);
        }
        Ok(())
    }

    /// Returns the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 for Ethernet).
    #[inline]
    pub fn htype(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::HTYPE.start)
    }

    /// Protocol type (IPv4).
    #[inline]
    pub fn ptype(&self) -> EtherType {
        EtherType(bytes::read_u16(self.buffer.as_ref(), field::PTYPE.start))
    }

    /// Hardware address length (6).
    #[inline]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length (4).
    #[inline]
    pub fn plen(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    #[inline]
    pub fn op(&self) -> Operation {
        Operation(bytes::read_u16(self.buffer.as_ref(), field::OPER.start))
    }

    /// Sender hardware address.
    #[inline]
    pub fn sha(&self) -> Mac {
        Mac(bytes::array(self.buffer.as_ref(), field::SHA.start))
    }

    /// Sender protocol address.
    #[inline]
    pub fn spa(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes::array::<4>(self.buffer.as_ref(), field::SPA.start))
    }

    /// Target hardware address.
    #[inline]
    pub fn tha(&self) -> Mac {
        Mac(bytes::array(self.buffer.as_ref(), field::THA.start))
    }

    /// Target protocol address.
    #[inline]
    pub fn tpa(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes::array::<4>(self.buffer.as_ref(), field::TPA.start))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the hardware type.
    #[inline]
    pub fn set_htype(&mut self, v: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::HTYPE.start, v);
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_ptype(&mut self, v: EtherType) {
        bytes::write_u16(self.buffer.as_mut(), field::PTYPE.start, v.0);
    }

    /// Sets the hardware address length.
    #[inline]
    pub fn set_hlen(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    /// Sets the protocol address length.
    #[inline]
    pub fn set_plen(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    /// Sets the operation.
    #[inline]
    pub fn set_op(&mut self, v: Operation) {
        bytes::write_u16(self.buffer.as_mut(), field::OPER.start, v.0);
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_sha(&mut self, v: Mac) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&v.0);
    }

    /// Sets the sender protocol address.
    #[inline]
    pub fn set_spa(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&v.octets());
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_tha(&mut self, v: Mac) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&v.0);
    }

    /// Sets the target protocol address.
    #[inline]
    pub fn set_tpa(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&v.octets());
    }
}

/// An Ethernet/IPv4 ARP packet, owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Operation.
    pub op: Operation,
    /// Sender hardware address.
    pub sha: Mac,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: Mac,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

impl Repr {
    /// Reads a checked packet.
    ///
    /// # Errors
    /// [`ParseError::BadHeader`] for operations other than request and reply.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, ParseError> {
        let op = p.op();
        if op != Operation::REQUEST && op != Operation::REPLY {
            return Err(ParseError::BadHeader);
        }
        Ok(Self {
            op,
            sha: p.sha(),
            spa: p.spa(),
            tha: p.tha(),
            tpa: p.tpa(),
        })
    }

    /// Length of the packet.
    #[inline]
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the packet into `p` (at least [`HEADER_LEN`] bytes).
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_htype(HTYPE_ETHERNET);
        p.set_ptype(EtherType::IPV4);
        p.set_hlen(6);
        p.set_plen(4);
        p.set_op(self.op);
        p.set_sha(self.sha);
        p.set_spa(self.spa);
        p.set_tha(self.tha);
        p.set_tpa(self.tpa);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Who has 10.77.0.2? Tell 10.77.0.1 (02:42:00:00:00:01).
    static PACKET: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x42, 0x00, 0x00, 0x00, 0x01, 0x0a,
        0x4d, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x4d, 0x00, 0x02,
    ];

    fn repr() -> Repr {
        Repr {
            op: Operation::REQUEST,
            sha: Mac([0x02, 0x42, 0, 0, 0, 1]),
            spa: Ipv4Addr::new(10, 77, 0, 1),
            tha: Mac::ZERO,
            tpa: Ipv4Addr::new(10, 77, 0, 2),
        }
    }

    #[test]
    fn deconstructs_a_packet() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.op(), Operation::REQUEST);
        assert_eq!(p.sha(), Mac([0x02, 0x42, 0, 0, 0, 1]));
        assert_eq!(p.spa(), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(p.tha(), Mac::ZERO);
        assert_eq!(p.tpa(), Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(format!("{:?}", p.op()), "request");
    }

    #[test]
    fn constructs_a_packet() {
        let mut buf = [0xa5u8; 28];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_htype(1);
        p.set_ptype(EtherType::IPV4);
        p.set_hlen(6);
        p.set_plen(4);
        p.set_op(Operation::REQUEST);
        p.set_sha(Mac([0x02, 0x42, 0, 0, 0, 1]));
        p.set_spa(Ipv4Addr::new(10, 77, 0, 1));
        p.set_tha(Mac::ZERO);
        p.set_tpa(Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(buf, PACKET);
    }

    #[test]
    fn parses_and_emits_a_repr() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), repr());
        let mut buf = [0u8; HEADER_LEN];
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, PACKET);
    }

    #[test]
    fn rejects_short_and_non_ethernet_ipv4_packets() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&PACKET[..len]).unwrap_err(),
                ParseError::Truncated
            );
        }
        for (at, v) in [(1, 6), (2, 0x86), (4, 8), (5, 16)] {
            let mut b = PACKET;
            b[at] = v;
            assert_eq!(
                Packet::new_checked(&b[..]).unwrap_err(),
                ParseError::BadHeader
            );
        }
        let mut b = PACKET;
        b[7] = 9;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(ParseError::BadHeader));
    }
}
