//! VXLAN headers (RFC 7348).

use super::ParseError;
use super::bytes::{self, Field};

mod field {
    use super::Field;
    pub(super) const FLAGS: usize = 0;
    pub(super) const VNI: Field = 4..7;
    pub(super) const RESERVED2: usize = 7;
}

/// Length of a VXLAN header.
pub const HEADER_LEN: usize = field::RESERVED2 + 1;

/// The IANA-assigned UDP destination port of VXLAN.
pub const PORT: u16 = 4789;

/// The "I" flag: the VNI is valid.
pub const FLAG_I: u8 = 0x08;

/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = 0x00ff_ffff;

/// A view of a VXLAN header and the Ethernet frame it carries (RFC 7348 §5). The buffer is
/// the UDP payload.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |R|R|R|R|I|R|R|R|            Reserved                           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                VXLAN Network Identifier (VNI) |   Reserved    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Inner Ethernet frame …                                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// `check_len` checks the length only; whether the I flag is set ([`Self::has_vni`]) is the
/// tunnel's decision (RFC 7348 says receivers must ignore the other bits).
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

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// True when the I flag says the VNI is valid.
    #[inline]
    pub fn has_vni(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// VXLAN network identifier (24 bits).
    #[inline]
    pub fn vni(&self) -> u32 {
        bytes::read_u32(self.buffer.as_ref(), field::VNI.start) >> 8
    }

    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<'a> Packet<&'a [u8]> {
    /// The inner frame, borrowed for the buffer's lifetime rather than the view's.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        &self.buffer[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    /// Sets the VNI (low 24 bits of `vni`), keeping the reserved byte after it.
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        let b = self.buffer.as_mut();
        let keep = u32::from(b[field::RESERVED2]);
        bytes::write_u32(b, field::VNI.start, ((vni & VNI_MAX) << 8) | keep);
    }

    /// The inner frame, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A VXLAN header, owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// VXLAN network identifier.
    pub vni: u32,
}

impl Repr {
    /// Reads a checked header.
    ///
    /// # Errors
    /// [`ParseError::BadHeader`] when the I flag is clear.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, ParseError> {
        if !p.has_vni() {
            return Err(ParseError::BadHeader);
        }
        Ok(Self { vni: p.vni() })
    }

    /// Length of the header (8).
    #[inline]
    #[must_use]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header (I flag, VNI, reserved bits zero) into `p`.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        bytes::write_u32(p.buffer.as_mut(), 0, 0);
        bytes::write_u32(p.buffer.as_mut(), 4, 0);
        p.set_flags(FLAG_I);
        p.set_vni(self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // VNI 42 from kernel-traffic.pcap, then the first byte of the inner frame.
    static HEADER: [u8; 9] = [0x08, 0, 0, 0, 0, 0, 0x2a, 0, 0x33];

    #[test]
    fn deconstructs_a_header() {
        let p = Packet::new_checked(&HEADER[..]).unwrap();
        assert!(p.has_vni());
        assert_eq!(p.flags(), FLAG_I);
        assert_eq!(p.vni(), 42);
        assert_eq!(p.payload(), &[0x33]);
        assert_eq!(Repr::parse(&p), Ok(Repr { vni: 42 }));
    }

    #[test]
    fn constructs_and_emits_a_header() {
        let mut buf = [0xa5u8; 9];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        Repr { vni: 42 }.emit(&mut p);
        p.payload_mut()[0] = 0x33;
        assert_eq!(buf, HEADER);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_vni(0x1ff_ffff);
        assert_eq!(p.vni(), VNI_MAX);
        assert_eq!(buf[7], 0);
    }

    #[test]
    fn rejects_short_headers_and_a_clear_i_flag() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&HEADER[..len]).unwrap_err(),
                ParseError::Truncated
            );
        }
        let mut b = HEADER;
        b[0] = 0;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(ParseError::BadHeader));
    }
}
