//! Match fields: names, widths, maskability, prerequisites and where each lives in a [`FlowKey`].
//!
//! Every field is read and written as a big-endian unsigned integer of [`Field::bits`] bits held
//! in a `u128`. The same accessors work on a [`FlowKey`] and on the bits of a
//! [`FlowMask`](crate::classifier::FlowMask) (a mask is a key-shaped bit set), so a match is
//! built by setting each field's value in the key and its mask in the mask.
//!
//! Several fields share storage the way OpenFlow implementations do: `ip_src`/`ipv6_src`/`arp_spa`
//! in `nw_src`, `tcp_src`/`udp_src`/`icmp_type` in `tp_src`, and so on. Prerequisites
//! ([`Prereq`]) make the sharing unambiguous: a match on `tcp_dst` is only accepted together with
//! `eth_type=0x0800|0x86dd` and `ip_proto=6`.

use std::fmt;

use crate::flow::{ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6, FlowKey};

/// A match field (and, where [`Field::writable`], a `set_field` target).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// Ingress port number.
    InPort,
    /// Ethernet source.
    EthSrc,
    /// Ethernet destination.
    EthDst,
    /// EtherType (after VLAN tags).
    EthType,
    /// 802.1Q VLAN id with the OpenFlow "present" bit 0x1000 (0 = no tag).
    VlanVid,
    /// 802.1Q priority.
    VlanPcp,
    /// IPv4 source.
    IpSrc,
    /// IPv4 destination.
    IpDst,
    /// IPv6 source.
    Ipv6Src,
    /// IPv6 destination.
    Ipv6Dst,
    /// IP protocol / IPv6 next header.
    IpProto,
    /// DSCP (6 bits).
    IpDscp,
    /// ECN (2 bits).
    IpEcn,
    /// TTL / hop limit.
    IpTtl,
    /// TCP source port.
    TcpSrc,
    /// TCP destination port.
    TcpDst,
    /// UDP source port.
    UdpSrc,
    /// UDP destination port.
    UdpDst,
    /// TCP flags (12 bits).
    TcpFlags,
    /// ICMPv4 type.
    IcmpType,
    /// ICMPv4 code.
    IcmpCode,
    /// ICMPv6 type.
    Icmpv6Type,
    /// ICMPv6 code.
    Icmpv6Code,
    /// ARP opcode.
    ArpOp,
    /// ARP sender protocol address.
    ArpSpa,
    /// ARP target protocol address.
    ArpTpa,
    /// ARP sender hardware address.
    ArpSha,
    /// ARP target hardware address.
    ArpTha,
    /// Tunnel id (VNI).
    TunId,
    /// Tunnel IPv4 source.
    TunSrc,
    /// Tunnel IPv4 destination.
    TunDst,
    /// Pipeline metadata.
    Metadata,
    /// Register `reg0..reg7`.
    Reg(u8),
    /// Connection-tracking state bits.
    CtState,
    /// Connection-tracking zone.
    CtZone,
    /// Connection-tracking mark.
    CtMark,
}

/// What a match must also contain for a field to be meaningful.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prereq {
    /// Nothing.
    None,
    /// A VLAN tag (`vlan_vid` with the present bit).
    Vlan,
    /// `eth_type` IPv4 or IPv6.
    Ip,
    /// `eth_type=0x0800`.
    Ipv4,
    /// `eth_type=0x86dd`.
    Ipv6,
    /// `eth_type=0x0806`.
    Arp,
    /// IP and `ip_proto=6`.
    Tcp,
    /// IP and `ip_proto=17`.
    Udp,
    /// IPv4 and `ip_proto=1`.
    Icmp,
    /// IPv6 and `ip_proto=58`.
    Icmpv6,
}

impl fmt::Display for Prereq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Prereq::None => "nothing",
            Prereq::Vlan => "a VLAN tag (vlan_vid)",
            Prereq::Ip => "eth_type=0x0800 or 0x86dd",
            Prereq::Ipv4 => "eth_type=0x0800",
            Prereq::Ipv6 => "eth_type=0x86dd",
            Prereq::Arp => "eth_type=0x0806",
            Prereq::Tcp => "ip_proto=6 (and eth_type ip or ipv6)",
            Prereq::Udp => "ip_proto=17 (and eth_type ip or ipv6)",
            Prereq::Icmp => "eth_type=0x0800 and ip_proto=1",
            Prereq::Icmpv6 => "eth_type=0x86dd and ip_proto=58",
        })
    }
}

/// Every field, in a stable order (registers expanded).
pub const ALL: [Field; 43] = [
    Field::InPort,
    Field::EthSrc,
    Field::EthDst,
    Field::EthType,
    Field::VlanVid,
    Field::VlanPcp,
    Field::IpSrc,
    Field::IpDst,
    Field::Ipv6Src,
    Field::Ipv6Dst,
    Field::IpProto,
    Field::IpDscp,
    Field::IpEcn,
    Field::IpTtl,
    Field::TcpSrc,
    Field::TcpDst,
    Field::UdpSrc,
    Field::UdpDst,
    Field::TcpFlags,
    Field::IcmpType,
    Field::IcmpCode,
    Field::Icmpv6Type,
    Field::Icmpv6Code,
    Field::ArpOp,
    Field::ArpSpa,
    Field::ArpTpa,
    Field::ArpSha,
    Field::ArpTha,
    Field::TunId,
    Field::TunSrc,
    Field::TunDst,
    Field::Metadata,
    Field::Reg(0),
    Field::Reg(1),
    Field::Reg(2),
    Field::Reg(3),
    Field::Reg(4),
    Field::Reg(5),
    Field::Reg(6),
    Field::Reg(7),
    Field::CtState,
    Field::CtZone,
    Field::CtMark,
];

/// Number of registers.
pub const REGS: u8 = 8;

fn read_be<const N: usize>(b: &[u8]) -> u128 {
    b[..N]
        .iter()
        .fold(0u128, |acc, x| (acc << 8) | u128::from(*x))
}

fn write_be<const N: usize>(b: &mut [u8], v: u128) {
    for (i, byte) in b[..N].iter_mut().enumerate() {
        let shift = 8 * (N - 1 - i);
        // Truncation intended: one byte of the value.
        *byte = ((v >> shift) & 0xff) as u8;
    }
}

/// Replaces bits `shift..shift+width` of a 16-bit word.
fn put_bits16(word: &mut u16, shift: u32, width: u32, v: u128) {
    let m = ((1u32 << width) - 1) as u16;
    let v = (v as u16) & m;
    *word = (*word & !(m << shift)) | (v << shift);
}

fn put_bits8(word: &mut u8, shift: u32, width: u32, v: u128) {
    let m = ((1u32 << width) - 1) as u8;
    let v = (v as u8) & m;
    *word = (*word & !(m << shift)) | (v << shift);
}

impl Field {
    /// The canonical name (as in the control protocol).
    pub fn name(self) -> String {
        match self {
            Field::Reg(i) => format!("reg{i}"),
            f => f.static_name().to_owned(),
        }
    }

    fn static_name(self) -> &'static str {
        match self {
            Field::InPort => "in_port",
            Field::EthSrc => "eth_src",
            Field::EthDst => "eth_dst",
            Field::EthType => "eth_type",
            Field::VlanVid => "vlan_vid",
            Field::VlanPcp => "vlan_pcp",
            Field::IpSrc => "ip_src",
            Field::IpDst => "ip_dst",
            Field::Ipv6Src => "ipv6_src",
            Field::Ipv6Dst => "ipv6_dst",
            Field::IpProto => "ip_proto",
            Field::IpDscp => "ip_dscp",
            Field::IpEcn => "ip_ecn",
            Field::IpTtl => "ip_ttl",
            Field::TcpSrc => "tcp_src",
            Field::TcpDst => "tcp_dst",
            Field::UdpSrc => "udp_src",
            Field::UdpDst => "udp_dst",
            Field::TcpFlags => "tcp_flags",
            Field::IcmpType => "icmp_type",
            Field::IcmpCode => "icmp_code",
            Field::Icmpv6Type => "icmpv6_type",
            Field::Icmpv6Code => "icmpv6_code",
            Field::ArpOp => "arp_op",
            Field::ArpSpa => "arp_spa",
            Field::ArpTpa => "arp_tpa",
            Field::ArpSha => "arp_sha",
            Field::ArpTha => "arp_tha",
            Field::TunId => "tun_id",
            Field::TunSrc => "tun_src",
            Field::TunDst => "tun_dst",
            Field::Metadata => "metadata",
            Field::Reg(_) => "reg",
            Field::CtState => "ct_state",
            Field::CtZone => "ct_zone",
            Field::CtMark => "ct_mark",
        }
    }

    /// The field with this canonical name.
    pub fn from_name(name: &str) -> Option<Field> {
        if let Some(i) = name.strip_prefix("reg") {
            return match i.as_bytes() {
                [d @ b'0'..=b'7'] => Some(Field::Reg(d - b'0')),
                _ => None,
            };
        }
        ALL.iter().copied().find(|f| f.static_name() == name)
    }

    /// Width in bits.
    pub fn bits(self) -> u32 {
        match self {
            Field::InPort => 32,
            Field::EthSrc | Field::EthDst | Field::ArpSha | Field::ArpTha => 48,
            Field::EthType => 16,
            Field::ArpOp => 8,
            Field::VlanVid => 13,
            Field::VlanPcp => 3,
            Field::IpSrc | Field::IpDst | Field::ArpSpa | Field::ArpTpa => 32,
            Field::Ipv6Src | Field::Ipv6Dst => 128,
            Field::IpProto | Field::IpTtl => 8,
            Field::IpDscp => 6,
            Field::IpEcn => 2,
            Field::TcpSrc | Field::TcpDst | Field::UdpSrc | Field::UdpDst => 16,
            Field::TcpFlags => 12,
            Field::IcmpType | Field::IcmpCode | Field::Icmpv6Type | Field::Icmpv6Code => 8,
            Field::TunId | Field::Metadata => 64,
            Field::TunSrc | Field::TunDst | Field::Reg(_) | Field::CtMark => 32,
            Field::CtState | Field::CtZone => 16,
        }
    }

    /// The largest value (all bits of the field set).
    pub fn max_value(self) -> u128 {
        if self.bits() == 128 {
            u128::MAX
        } else {
            (1u128 << self.bits()) - 1
        }
    }

    /// Whether a match may give an arbitrary bit mask (else only exact or absent).
    pub fn maskable(self) -> bool {
        !matches!(
            self,
            Field::InPort
                | Field::EthType
                | Field::VlanPcp
                | Field::IpProto
                | Field::IpDscp
                | Field::IpEcn
                | Field::IpTtl
                | Field::IcmpType
                | Field::IcmpCode
                | Field::Icmpv6Type
                | Field::Icmpv6Code
                | Field::ArpOp
                | Field::CtZone
        )
    }

    /// Whether `set_field` may write it.
    pub fn writable(self) -> bool {
        !matches!(
            self,
            Field::InPort
                | Field::EthType
                | Field::IpProto
                | Field::TcpFlags
                | Field::ArpOp
                | Field::CtState
                | Field::CtZone
                | Field::CtMark
                | Field::TunSrc
                | Field::TunDst
                | Field::TunId
                | Field::IcmpType
                | Field::IcmpCode
                | Field::Icmpv6Type
                | Field::Icmpv6Code
        )
    }

    /// Whether writing it changes the frame (not only pipeline metadata).
    pub fn in_frame(self) -> bool {
        !matches!(
            self,
            Field::InPort
                | Field::Metadata
                | Field::Reg(_)
                | Field::TunId
                | Field::TunSrc
                | Field::TunDst
                | Field::CtState
                | Field::CtZone
                | Field::CtMark
        )
    }

    /// What a match on this field (or a `set_field` of it) requires.
    pub fn prereq(self) -> Prereq {
        match self {
            Field::VlanPcp => Prereq::Vlan,
            Field::IpSrc | Field::IpDst => Prereq::Ipv4,
            Field::Ipv6Src | Field::Ipv6Dst => Prereq::Ipv6,
            Field::IpProto | Field::IpDscp | Field::IpEcn | Field::IpTtl => Prereq::Ip,
            Field::TcpSrc | Field::TcpDst | Field::TcpFlags => Prereq::Tcp,
            Field::UdpSrc | Field::UdpDst => Prereq::Udp,
            Field::IcmpType | Field::IcmpCode => Prereq::Icmp,
            Field::Icmpv6Type | Field::Icmpv6Code => Prereq::Icmpv6,
            Field::ArpOp | Field::ArpSpa | Field::ArpTpa | Field::ArpSha | Field::ArpTha => {
                Prereq::Arp
            }
            _ => Prereq::None,
        }
    }

    /// The field's value in `key` (or its mask bits in a mask's key).
    pub fn get(self, k: &FlowKey) -> u128 {
        match self {
            Field::InPort => u128::from(k.in_port),
            Field::EthSrc => read_be::<6>(&k.eth_src),
            Field::EthDst => read_be::<6>(&k.eth_dst),
            Field::EthType => u128::from(k.eth_type),
            Field::VlanVid => u128::from(k.vlan_tci & 0x1fff),
            Field::VlanPcp => u128::from(k.vlan_tci >> 13),
            Field::IpSrc | Field::ArpSpa => read_be::<4>(&k.nw_src),
            Field::IpDst | Field::ArpTpa => read_be::<4>(&k.nw_dst),
            Field::Ipv6Src => read_be::<16>(&k.nw_src),
            Field::Ipv6Dst => read_be::<16>(&k.nw_dst),
            Field::IpProto | Field::ArpOp => u128::from(k.nw_proto),
            Field::IpDscp => u128::from(k.nw_tos >> 2),
            Field::IpEcn => u128::from(k.nw_tos & 3),
            Field::IpTtl => u128::from(k.nw_ttl),
            Field::TcpSrc | Field::UdpSrc => u128::from(k.tp_src),
            Field::TcpDst | Field::UdpDst => u128::from(k.tp_dst),
            Field::IcmpType | Field::Icmpv6Type => u128::from(k.tp_src & 0xff),
            Field::IcmpCode | Field::Icmpv6Code => u128::from(k.tp_dst & 0xff),
            Field::TcpFlags => u128::from(k.tcp_flags & 0x0fff),
            Field::ArpSha => read_be::<6>(&k.arp_sha),
            Field::ArpTha => read_be::<6>(&k.arp_tha),
            Field::TunId => u128::from(k.tun_id),
            Field::TunSrc => u128::from(k.tun_src),
            Field::TunDst => u128::from(k.tun_dst),
            Field::Metadata => u128::from(k.metadata),
            Field::Reg(i) => u128::from(k.regs[usize::from(i % REGS)]),
            Field::CtState => u128::from(k.ct_state),
            Field::CtZone => u128::from(k.ct_zone),
            Field::CtMark => u128::from(k.ct_mark),
        }
    }

    /// Writes the low [`bits`](Self::bits) of `v` into the field's place in `key`, leaving every
    /// other bit alone.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "values are masked to the field width"
    )]
    pub fn set(self, k: &mut FlowKey, v: u128) {
        let v = v & self.max_value();
        match self {
            Field::InPort => k.in_port = v as u32,
            Field::EthSrc => write_be::<6>(&mut k.eth_src, v),
            Field::EthDst => write_be::<6>(&mut k.eth_dst, v),
            Field::EthType => k.eth_type = v as u16,
            Field::VlanVid => put_bits16(&mut k.vlan_tci, 0, 13, v),
            Field::VlanPcp => put_bits16(&mut k.vlan_tci, 13, 3, v),
            Field::IpSrc | Field::ArpSpa => write_be::<4>(&mut k.nw_src, v),
            Field::IpDst | Field::ArpTpa => write_be::<4>(&mut k.nw_dst, v),
            Field::Ipv6Src => write_be::<16>(&mut k.nw_src, v),
            Field::Ipv6Dst => write_be::<16>(&mut k.nw_dst, v),
            Field::IpProto | Field::ArpOp => k.nw_proto = v as u8,
            Field::IpDscp => put_bits8(&mut k.nw_tos, 2, 6, v),
            Field::IpEcn => put_bits8(&mut k.nw_tos, 0, 2, v),
            Field::IpTtl => k.nw_ttl = v as u8,
            Field::TcpSrc | Field::UdpSrc => k.tp_src = v as u16,
            Field::TcpDst | Field::UdpDst => k.tp_dst = v as u16,
            Field::IcmpType | Field::Icmpv6Type => put_bits16(&mut k.tp_src, 0, 8, v),
            Field::IcmpCode | Field::Icmpv6Code => put_bits16(&mut k.tp_dst, 0, 8, v),
            Field::TcpFlags => put_bits16(&mut k.tcp_flags, 0, 12, v),
            Field::ArpSha => write_be::<6>(&mut k.arp_sha, v),
            Field::ArpTha => write_be::<6>(&mut k.arp_tha, v),
            Field::TunId => k.tun_id = v as u64,
            Field::TunSrc => k.tun_src = v as u32,
            Field::TunDst => k.tun_dst = v as u32,
            Field::Metadata => k.metadata = v as u64,
            Field::Reg(i) => k.regs[usize::from(i % REGS)] = v as u32,
            Field::CtState => k.ct_state = v as u16,
            Field::CtZone => k.ct_zone = v as u16,
            Field::CtMark => k.ct_mark = v as u32,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Reg(i) => write!(f, "reg{i}"),
            other => f.write_str(other.static_name()),
        }
    }
}

/// Whether a key (with its mask) satisfies `p`: the prerequisite fields are matched exactly to
/// the required values.
pub fn prereq_met(p: Prereq, key: &FlowKey, mask: &FlowKey) -> bool {
    let exact = |f: Field, v: u128| f.get(mask) == f.max_value() && f.get(key) == v;
    let eth = |t: u16| exact(Field::EthType, u128::from(t));
    let ip = || eth(ETH_TYPE_IPV4) || eth(ETH_TYPE_IPV6);
    let proto = |p: u8| exact(Field::IpProto, u128::from(p));
    match p {
        Prereq::None => true,
        Prereq::Vlan => {
            Field::VlanVid.get(mask) & 0x1000 != 0 && Field::VlanVid.get(key) & 0x1000 != 0
        }
        Prereq::Ip => ip(),
        Prereq::Ipv4 => eth(ETH_TYPE_IPV4),
        Prereq::Ipv6 => eth(ETH_TYPE_IPV6),
        Prereq::Arp => eth(ETH_TYPE_ARP),
        Prereq::Tcp => ip() && proto(6),
        Prereq::Udp => ip() && proto(17),
        Prereq::Icmp => eth(ETH_TYPE_IPV4) && proto(1),
        Prereq::Icmpv6 => eth(ETH_TYPE_IPV6) && proto(58),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in ALL {
            assert_eq!(Field::from_name(&f.name()), Some(f), "{f}");
        }
        assert_eq!(Field::from_name("reg8"), None);
        assert_eq!(Field::from_name("reg01"), None);
        assert_eq!(Field::from_name("nope"), None);
    }

    #[test]
    fn set_then_get_returns_the_value_and_touches_nothing_else() {
        for f in ALL {
            let mut k = FlowKey::default();
            let v = 0xa5a5_a5a5_a5a5_a5a5_a5a5_a5a5_a5a5_a5a5u128 & f.max_value();
            f.set(&mut k, v);
            assert_eq!(f.get(&k), v, "{f}");
            // Clearing the field restores an all-zero key: no other bit was written.
            f.set(&mut k, 0);
            assert_eq!(k, FlowKey::default(), "{f}");
            // Setting all ones and clearing other fields sharing nothing leaves it intact.
            let mut k = FlowKey::default();
            f.set(&mut k, f.max_value());
            for g in ALL {
                let shares = g.get(&k) != 0;
                if !shares {
                    g.set(&mut k, 0);
                }
            }
            assert_eq!(f.get(&k), f.max_value(), "{f}");
        }
    }

    #[test]
    fn dscp_and_ecn_share_the_tos_byte() {
        let mut k = FlowKey::default();
        Field::IpDscp.set(&mut k, 46);
        Field::IpEcn.set(&mut k, 1);
        assert_eq!(k.nw_tos, (46 << 2) | 1);
        assert_eq!(Field::IpDscp.get(&k), 46);
        assert_eq!(Field::IpEcn.get(&k), 1);
    }

    #[test]
    fn prerequisites_need_exact_matches() {
        let mut key = FlowKey::default();
        let mut mask = FlowKey::default();
        assert!(!prereq_met(Prereq::Tcp, &key, &mask));
        Field::EthType.set(&mut key, 0x0800);
        Field::EthType.set(&mut mask, 0xffff);
        assert!(prereq_met(Prereq::Ipv4, &key, &mask));
        assert!(!prereq_met(Prereq::Tcp, &key, &mask));
        Field::IpProto.set(&mut key, 6);
        Field::IpProto.set(&mut mask, 0xff);
        assert!(prereq_met(Prereq::Tcp, &key, &mask));
        assert!(!prereq_met(Prereq::Udp, &key, &mask));
        assert!(!prereq_met(Prereq::Ipv6, &key, &mask));
    }
}
