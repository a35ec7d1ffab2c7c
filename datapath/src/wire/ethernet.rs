//! Ethernet II frames (IEEE 802.3 clause 3.1.1, DIX framing) and MAC addresses.

use core::fmt;
use core::str::FromStr;

use super::ParseError;
use super::bytes::{self, Field};

mod field {
    use super::Field;
    pub(super) const DST: Field = 0..6;
    pub(super) const SRC: Field = 6..12;
    pub(super) const ETHERTYPE: Field = 12..14;
}

/// Length of an Ethernet header without VLAN tags.
pub const HEADER_LEN: usize = field::ETHERTYPE.end;

/// An EtherType (IEEE 802 numbers). The associated constants can be used as patterns.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4 (RFC 894).
    pub const IPV4: Self = Self(0x0800);
    /// ARP (RFC 826).
    pub const ARP: Self = Self(0x0806);
    /// An IEEE 802.1Q customer VLAN tag follows.
    pub const VLAN: Self = Self(0x8100);
    /// An IEEE 802.1ad service VLAN tag (QinQ outer tag) follows.
    pub const QINQ: Self = Self(0x88a8);
    /// IPv6 (RFC 2464).
    pub const IPV6: Self = Self(0x86dd);

    /// True for the TPIDs of VLAN tags ([`Self::VLAN`], [`Self::QINQ`]).
    #[inline]
    #[must_use]
    pub const fn is_vlan_tpid(self) -> bool {
        self.0 == Self::VLAN.0 || self.0 == Self::QINQ.0
    }
}

impl From<u16> for EtherType {
    #[inline]
    fn from(v: u16) -> Self {
        Self(v)
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(v: EtherType) -> Self {
        v.0
    }
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4 => f.write_str("ipv4"),
            Self::ARP => f.write_str("arp"),
            Self::VLAN => f.write_str("802.1q"),
            Self::QINQ => f.write_str("802.1ad"),
            Self::IPV6 => f.write_str("ipv6"),
            Self(other) => write!(f, "0x{other:04x}"),
        }
    }
}

/// A MAC (EUI-48) address. Displays as `aa:bb:cc:dd:ee:ff`; parses from that form (or with
/// `-` separators).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Self = Self([0xff; 6]);
    /// `00:00:00:00:00:00`.
    pub const ZERO: Self = Self([0; 6]);

    /// The address bytes.
    #[inline]
    #[must_use]
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// True for group addresses (I/G bit set), broadcast included.
    #[inline]
    #[must_use]
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for `ff:ff:ff:ff:ff:ff`.
    #[inline]
    #[must_use]
    pub const fn is_broadcast(self) -> bool {
        u64::from_be_bytes([
            0, 0, self.0[0], self.0[1], self.0[2], self.0[3], self.0[4], self.0[5],
        ]) == 0xffff_ffff_ffff
    }

    /// True for individual (unicast) addresses.
    #[inline]
    #[must_use]
    pub const fn is_unicast(self) -> bool {
        !self.is_multicast()
    }

    /// True for locally administered addresses (U/L bit set).
    #[inline]
    #[must_use]
    pub const fn is_local(self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl From<[u8; 6]> for Mac {
    #[inline]
    fn from(b: [u8; 6]) -> Self {
        Self(b)
    }
}

impl From<Mac> for [u8; 6] {
    #[inline]
    fn from(m: Mac) -> Self {
        m.0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string is not a MAC address of the form `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacParseError;

impl fmt::Display for MacParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid MAC address (expected six hex bytes like aa:bb:cc:dd:ee:ff)")
    }
}

impl core::error::Error for MacParseError {}

impl FromStr for Mac {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for byte in &mut out {
            let p = parts.next().ok_or(MacParseError)?;
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(MacParseError);
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| MacParseError)?;
        }
        if parts.next().is_some() {
            return Err(MacParseError);
        }
        Ok(Self(out))
    }
}

/// A view of an Ethernet II frame (IEEE 802.3 / RFC 894 DIX framing; no preamble, no FCS).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Destination MAC address                    |
/// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                               |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |                      Source MAC address                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |      EtherType / TPID         |  payload (VLAN TCI, IP, …)    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// When the EtherType is a VLAN TPID ([`EtherType::VLAN`], [`EtherType::QINQ`]) the payload
/// starts with a tag: see [`super::vlan::Packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buffer` without checking anything (see the module's panic contract).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after [`Self::check_len`].
    ///
    /// # Errors
    /// [`ParseError::Truncated`] when the buffer is shorter than the header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Checks that the buffer holds a whole header.
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

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Mac {
        Mac(bytes::array(self.buffer.as_ref(), field::DST.start))
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> Mac {
        Mac(bytes::array(self.buffer.as_ref(), field::SRC.start))
    }

    /// EtherType (or TPID of the first VLAN tag).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(bytes::read_u16(
            self.buffer.as_ref(),
            field::ETHERTYPE.start,
        ))
    }

    /// Everything after the 14-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<'a> Frame<&'a [u8]> {
    /// The payload, borrowed for the buffer's lifetime rather than the view's.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        &self.buffer[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac.0);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac.0);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ty: EtherType) {
        bytes::write_u16(self.buffer.as_mut(), field::ETHERTYPE.start, ty.0);
    }

    /// Everything after the 14-byte header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The fields of an Ethernet header, owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src: Mac,
    /// Destination address.
    pub dst: Mac,
    /// EtherType.
    pub ethertype: EtherType,
}

impl Repr {
    /// Reads the header of a checked frame.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Self {
        Self {
            src: frame.src(),
            dst: frame.dst(),
            ethertype: frame.ethertype(),
        }
    }

    /// Header length in bytes.
    #[inline]
    #[must_use]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Buffer length needed for a frame with `payload_len` payload bytes.
    #[inline]
    #[must_use]
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header into `frame` (which must be at least [`HEADER_LEN`] long).
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_dst(self.dst);
        frame.set_src(self.src);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ARP request broadcast from 02:77:00:00:00:02 (the start of a kernel frame).
    static FRAME: [u8; 18] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x77, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00,
    ];

    #[test]
    fn deconstructs_a_frame() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst(), Mac::BROADCAST);
        assert_eq!(f.src(), Mac([0x02, 0x77, 0, 0, 0, 2]));
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert_eq!(f.payload(), &[0x00, 0x01, 0x08, 0x00]);
        assert_eq!(f.into_payload().len(), 4);
    }

    #[test]
    fn constructs_a_frame() {
        let mut buf = [0xa5u8; 18];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.set_dst(Mac::BROADCAST);
        f.set_src(Mac([0x02, 0x77, 0, 0, 0, 2]));
        f.set_ethertype(EtherType::ARP);
        f.payload_mut().copy_from_slice(&[0x00, 0x01, 0x08, 0x00]);
        assert_eq!(buf, FRAME);
    }

    #[test]
    fn parses_and_emits_a_repr() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        let r = Repr::parse(&f);
        assert_eq!(r.ethertype, EtherType::ARP);
        let mut buf = vec![0u8; r.buffer_len(4)];
        let mut g = Frame::new_unchecked(&mut buf[..]);
        r.emit(&mut g);
        g.payload_mut().copy_from_slice(&FRAME[14..]);
        assert_eq!(buf, FRAME);
    }

    #[test]
    fn rejects_frames_shorter_than_the_header() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Frame::new_checked(&FRAME[..len]).unwrap_err(),
                ParseError::Truncated
            );
        }
        assert!(
            Frame::new_checked(&FRAME[..HEADER_LEN])
                .unwrap()
                .payload()
                .is_empty()
        );
    }

    #[test]
    fn mac_classification() {
        assert!(Mac::BROADCAST.is_broadcast() && Mac::BROADCAST.is_multicast());
        let m: Mac = "33:33:00:00:00:16".parse().unwrap();
        assert!(m.is_multicast() && !m.is_broadcast() && !m.is_unicast());
        let u = Mac([0x02, 0x77, 0, 0, 0, 1]);
        assert!(u.is_unicast() && u.is_local() && !u.is_broadcast());
        assert!(!Mac([0x00, 0x1b, 0x21, 0, 0, 1]).is_local());
    }

    #[test]
    fn mac_displays_and_parses() {
        let m = Mac([0xaa, 0xbb, 0x0c, 0x0d, 0xee, 0x0f]);
        assert_eq!(m.to_string(), "aa:bb:0c:0d:ee:0f");
        assert_eq!(format!("{m:?}"), "aa:bb:0c:0d:ee:0f");
        assert_eq!("aa:bb:0c:0d:ee:0f".parse::<Mac>().unwrap(), m);
        assert_eq!("AA-BB-C-D-EE-F".parse::<Mac>().unwrap(), m);
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aa:bb:cc:dd:ee:fg",
            "aaa:bb:cc:dd:ee:ff",
            "aa::cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:+f",
        ] {
            assert_eq!(bad.parse::<Mac>(), Err(MacParseError), "{bad}");
        }
    }

    #[test]
    fn ethertypes_display_and_convert() {
        assert_eq!(EtherType::IPV6.to_string(), "ipv6");
        assert_eq!(EtherType(0x88cc).to_string(), "0x88cc");
        assert!(EtherType::QINQ.is_vlan_tpid() && !EtherType::IPV4.is_vlan_tpid());
        assert_eq!(u16::from(EtherType::from(0x0800)), 0x0800);
    }
}
