//! Parsers for the command-line values that clap does not know: MAC addresses and inclusive
//! ranges of addresses and ports (`A` or `A-B`).

use std::net::{Ipv4Addr, Ipv6Addr};

/// An Ethernet address.
pub type Mac = [u8; 6];

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-` separators).
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_mac(s: &str) -> Result<Mac, String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(format!(
            "invalid MAC address {s:?}: expected six hex bytes like 02:00:00:00:00:01"
        ));
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.is_empty() || p.len() > 2 {
            return Err(format!("invalid MAC address {s:?}: bad byte {p:?}"));
        }
        *b = u8::from_str_radix(p, 16)
            .map_err(|_| format!("invalid MAC address {s:?}: bad byte {p:?}"))?;
    }
    Ok(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An inclusive range `lo..=hi` of ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port (≥ `lo`).
    pub hi: u16,
    /// Written as a range by the user (`P-Q`), as opposed to one port or the default.
    pub explicit_range: bool,
}

impl PortRange {
    /// One port.
    pub const fn single(p: u16) -> Self {
        Self {
            lo: p,
            hi: p,
            explicit_range: false,
        }
    }

    /// Number of ports.
    pub fn len(&self) -> u64 {
        u64::from(self.hi - self.lo) + 1
    }

    /// Never empty (`lo ≤ hi`); here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Parses `P` or `P-Q` (`P ≤ Q`).
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_port_range(s: &str) -> Result<PortRange, String> {
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("invalid port {p:?} in {s:?}: expected 0..=65535"))
    };
    match s.split_once('-') {
        None => Ok(PortRange::single(port(s)?)),
        Some((a, b)) => {
            let (lo, hi) = (port(a)?, port(b)?);
            if lo > hi {
                return Err(format!("invalid port range {s:?}: {lo} > {hi}"));
            }
            Ok(PortRange {
                lo,
                hi,
                explicit_range: true,
            })
        }
    }
}

/// An inclusive range of IPv4 or IPv6 addresses, as integers (IPv4 in the low 32 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    /// First address.
    pub lo: u128,
    /// Last address (≥ `lo`).
    pub hi: u128,
    /// IPv6 (else IPv4).
    pub v6: bool,
}

impl IpRange {
    /// Number of addresses (saturating).
    pub fn len(&self) -> u128 {
        (self.hi - self.lo).saturating_add(1)
    }

    /// Never empty; here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `i`-th address of the range, as 16 bytes (IPv4: the first 4 bytes).
    pub fn nth(&self, i: u128) -> [u8; 16] {
        let v = self.lo + i;
        if self.v6 {
            v.to_be_bytes()
        } else {
            let mut out = [0u8; 16];
            out[..4].copy_from_slice(&(v as u32).to_be_bytes());
            out
        }
    }
}

/// Parses `A` or `A-B` as IPv4 (`v6` false) or IPv6 addresses.
///
/// # Errors
/// A message naming what is wrong (including an address of the other family).
pub fn parse_ip_range(s: &str, v6: bool) -> Result<IpRange, String> {
    let fam = if v6 { "IPv6" } else { "IPv4" };
    let addr = |a: &str| -> Result<u128, String> {
        let a = a.trim();
        if v6 {
            a.parse::<Ipv6Addr>().map(u128::from)
        } else {
            a.parse::<Ipv4Addr>().map(|x| u128::from(u32::from(x)))
        }
        .map_err(|_| {
            format!("invalid {fam} address {a:?} in {s:?} (use --ipv6 for IPv6 addresses)")
        })
    };
    // IPv6 addresses have no '-', so the first '-' splits a range in both families.
    let (lo, hi) = match s.split_once('-') {
        None => {
            let a = addr(s)?;
            (a, a)
        }
        Some((a, b)) => (addr(a)?, addr(b)?),
    };
    if lo > hi {
        return Err(format!(
            "invalid {fam} range {s:?}: first address above last"
        ));
    }
    Ok(IpRange { lo, hi, v6 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse_mac("02:0a:ff:00:01:10").unwrap(),
            [2, 10, 255, 0, 1, 16]
        );
        assert_eq!(parse_mac("02-0A-FF-00-01-10").unwrap()[1], 10);
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "zz:00:00:00:00:00",
            "123:0:0:0:0:0",
            "",
        ] {
            let e = parse_mac(bad).unwrap_err();
            assert!(e.contains("invalid MAC"), "{e}");
        }
        assert_eq!(format_mac(&[2, 0, 0, 0, 0xab, 1]), "02:00:00:00:ab:01");
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("9").unwrap(), PortRange::single(9));
        let r = parse_port_range("1000-1099").unwrap();
        assert_eq!(
            (r.lo, r.hi, r.len(), r.explicit_range),
            (1000, 1099, 100, true)
        );
        assert!(parse_port_range("10-9").is_err());
        assert!(parse_port_range("70000").is_err());
        assert!(parse_port_range("a-b").is_err());
    }

    #[test]
    fn ip_ranges() {
        let r = parse_ip_range("10.0.0.1-10.0.1.0", false).unwrap();
        assert_eq!(r.len(), 256);
        assert_eq!(&r.nth(255)[..4], &[10, 0, 1, 0]);
        let r6 = parse_ip_range("2001:db8::1-2001:db8::3", true).unwrap();
        assert_eq!(r6.len(), 3);
        assert_eq!(r6.nth(2)[15], 3);
        assert!(parse_ip_range("2001:db8::1", false).is_err());
        assert!(parse_ip_range("10.0.0.1", true).is_err());
        assert!(parse_ip_range("10.0.0.2-10.0.0.1", false).is_err());
    }
}
