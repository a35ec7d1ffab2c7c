//! IEEE 802.1Q VLAN tags (and 802.1ad service tags, which have the same layout).

use super::ParseError;
use super::bytes::{self, Field};
use super::ethernet::EtherType;

mod field {
    use super::Field;
    pub(super) const TCI: Field = 0..2;
    pub(super) const ETHERTYPE: Field = 2..4;
}

/// Length of the part of a tag that follows its TPID (TCI + inner EtherType).
pub const HEADER_LEN: usize = field::ETHERTYPE.end;

/// Largest valid VLAN id (4095 is reserved).
pub const VID_MAX: u16 = 4094;

/// A view of an 802.1Q tag, starting right after the TPID (`0x8100`, or `0x88a8` for an
/// 802.1ad service tag) — that is, at the payload of the Ethernet header or of an outer tag.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | PCP |D|         VID           |     inner EtherType / TPID    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///   PCP: priority code point, D: drop eligible indicator, VID: VLAN id
/// ```
///
/// (IEEE 802.1Q-2022 §9.6; the TPID itself belongs to the enclosing header.)
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
    /// [`ParseError::Truncated`] when the buffer is shorter than the tag.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds a whole tag.
    ///
    /// # Errors
    /// [`ParseError::Truncated`] when the buffer is shorter than [`HEADER_LEN`].
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

    /// The whole tag control information (PCP, DEI, VID).
    #[inline]
    pub fn tci(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::TCI.start)
    }

    /// Priority code point (0..=7).
    #[inline]
    pub fn pcp(&self) -> u8 {
        self.buffer.as_ref()[field::TCI.start] >> 5
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.buffer.as_ref()[field::TCI.start] & 0x10 != 0
    }

    /// VLAN id (0..=4095; 0 means priority-tagged only).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// EtherType of what follows the tag (or the TPID of an inner tag).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(bytes::read_u16(
            self.buffer.as_ref(),
            field::ETHERTYPE.start,
        ))
    }

    /// Everything after the tag.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<'a> Packet<&'a [u8]> {
    /// The payload, borrowed for the buffer's lifetime rather than the view's.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        &self.buffer[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the whole TCI.
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::TCI.start, tci);
    }

    /// Sets the priority code point (only the low 3 bits of `pcp` are used).
    #[inline]
    pub fn set_pcp(&mut self, pcp: u8) {
        let b = &mut self.buffer.as_mut()[field::TCI.start];
        *b = (*b & 0x1f) | ((pcp & 0x07) << 5);
    }

    /// Sets the drop eligible indicator.
    #[inline]
    pub fn set_dei(&mut self, dei: bool) {
        let b = &mut self.buffer.as_mut()[field::TCI.start];
        *b = (*b & !0x10) | if dei { 0x10 } else { 0 };
    }

    /// Sets the VLAN id (only the low 12 bits of `vid` are used).
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & 0xf000) | (vid & 0x0fff);
        self.set_tci(tci);
    }

    /// Sets the inner EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ty: EtherType) {
        bytes::write_u16(self.buffer.as_mut(), field::ETHERTYPE.start, ty.0);
    }

    /// Everything after the tag, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The fields of a VLAN tag, owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Priority code point (0..=7).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN id.
    pub vid: u16,
    /// EtherType of what follows.
    pub ethertype: EtherType,
}

impl Repr {
    /// Reads a checked tag.
    ///
    /// # Errors
    /// [`ParseError::BadHeader`] for the reserved VLAN id 4095.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, ParseError> {
        if p.vid() > VID_MAX {
            return Err(ParseError::BadHeader);
        }
        Ok(Self {
            pcp: p.pcp(),
            dei: p.dei(),
            vid: p.vid(),
            ethertype: p.ethertype(),
        })
    }

    /// Length of the tag after its TPID.
    #[inline]
    #[must_use]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the tag into `p` (at least [`HEADER_LEN`] bytes).
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_tci(0);
        p.set_pcp(self.pcp);
        p.set_dei(self.dei);
        p.set_vid(self.vid);
        p.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // PCP 5, DEI 1, VID 0x123, inner IPv4, then one payload byte.
    static TAG: [u8; 5] = [0xb1, 0x23, 0x08, 0x00, 0x45];

    #[test]
    fn deconstructs_a_tag() {
        let p = Packet::new_checked(&TAG[..]).unwrap();
        assert_eq!(p.pcp(), 5);
        assert!(p.dei());
        assert_eq!(p.vid(), 0x123);
        assert_eq!(p.tci(), 0xb123);
        assert_eq!(p.ethertype(), EtherType::IPV4);
        assert_eq!(p.payload(), &[0x45]);
    }

    #[test]
    fn constructs_a_tag() {
        let mut buf = [0xa5u8; 5];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_tci(0);
        p.set_vid(0xf123);
        p.set_pcp(5);
        p.set_dei(true);
        p.set_ethertype(EtherType::IPV4);
        p.payload_mut()[0] = 0x45;
        assert_eq!(buf, TAG);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_dei(false);
        p.set_pcp(0);
        assert_eq!(p.tci(), 0x0123);
    }

    #[test]
    fn parses_and_emits_a_repr() {
        let r = Repr::parse(&Packet::new_checked(&TAG[..]).unwrap()).unwrap();
        assert_eq!(
            r,
            Repr {
                pcp: 5,
                dei: true,
                vid: 0x123,
                ethertype: EtherType::IPV4
            }
        );
        let mut buf = [0u8; 4];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, TAG[..4]);
        let reserved = [0x0f, 0xff, 0x08, 0x00];
        assert_eq!(
            Repr::parse(&Packet::new_checked(&reserved[..]).unwrap()),
            Err(ParseError::BadHeader)
        );
    }

    #[test]
    fn rejects_truncated_tags() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&TAG[..len]).unwrap_err(),
                ParseError::Truncated
            );
        }
    }
}
