//! `parse_frame`: an arbitrary frame through `flow::extract` and through the `wire` views.
//!
//! The input is one Ethernet frame as a port would receive it. Two parsers read it:
//!
//! - [`flow::extract`], the hot-path one-pass key extraction;
//! - a walk along the header chain with the zero-copy views, each created with `new_checked`
//!   (Ethernet, up to two VLAN tags, ARP / IPv4 / IPv6 + extension headers, TCP / UDP / ICMP,
//!   and VXLAN, whose inner frame goes through both parsers again).
//!
//! Invariants checked:
//! - extraction is deterministic (twice the same result) and `in_port` only lands in the key;
//! - on success: the offsets in [`Layout`] lie inside the frame (the L4 header inside the IP
//!   packet), the tag count matches the L3 offset, the VLAN id is at most 4095, the MACs are the
//!   frame's, the padding is zero, later fragments have no L4 offset;
//! - trailing bytes (link padding) do not change a successful extraction;
//! - a frame `extract` accepts as ARP/IPv4/IPv6 is accepted by the matching checked view, and
//!   wherever both parsers read a field (addresses, protocol, TTL, TOS, ports, TCP flags, ICMP
//!   type/code, fragment bits) they agree;
//! - the view accessors never panic after `new_checked` (the module contract of `wire`).

use datapath::flow::{self, FlowKey, Layout};
use datapath::wire::{
    self, ArpPacket, EtherType, EthernetFrame, IcmpPacket, IpProtocol, Ipv4Packet, Ipv6Packet,
    TcpPacket, UdpPacket, VlanPacket, VxlanPacket,
};

/// Port number the frame is extracted for.
const IN_PORT: u32 = 3;
/// How many VXLAN encapsulations are followed (the datapath decapsulates one).
const MAX_DEPTH: usize = 1;

/// The fuzz body: see the module docs.
pub fn parse_frame(data: &[u8]) {
    check_frame(data, 0);
}

fn check_frame(frame: &[u8], depth: usize) {
    let result = flow::extract(frame, IN_PORT);
    assert_eq!(
        result,
        flow::extract(frame, IN_PORT),
        "extract is not deterministic"
    );
    match (&result, flow::extract(frame, u32::MAX)) {
        (Ok((k, l)), Ok((k2, l2))) => {
            assert_eq!(k2.in_port, u32::MAX);
            assert_eq!(
                *k,
                FlowKey {
                    in_port: IN_PORT,
                    ..k2
                },
                "in_port changed the key"
            );
            assert_eq!(*l, l2);
        }
        (Err(a), Err(b)) => assert_eq!(*a, b),
        (a, b) => panic!("in_port changed the outcome: {a:?} vs {b:?}"),
    }
    if let Ok((key, lay)) = &result {
        check_key(frame, key, lay);
        let mut padded = Vec::with_capacity(frame.len() + 64);
        padded.extend_from_slice(frame);
        padded.resize(frame.len() + 64, 0xa5);
        assert_eq!(
            flow::extract(&padded, IN_PORT),
            result,
            "trailing bytes changed the extraction"
        );
    }
    let walked = walk(frame);
    if let Ok((key, lay)) = &result {
        compare(key, lay, &walked);
    }
    if depth < MAX_DEPTH
        && let Some(inner) = walked.vxlan_inner
    {
        check_frame(inner, depth + 1);
    }
}

/// Invariants of a successful extraction that need only the frame.
fn check_key(frame: &[u8], key: &FlowKey, lay: &Layout) {
    let len = frame.len();
    let l3 = usize::from(lay.l3);
    let l4 = usize::from(lay.l4);
    assert_eq!(key.in_port, IN_PORT);
    assert!(lay.tags <= 2, "{} tags", lay.tags);
    assert_eq!(l3, flow::ETH_HLEN + usize::from(lay.tags) * flow::VLAN_HLEN);
    assert!(l3 <= len, "l3 {l3} beyond frame of {len}");
    assert_eq!(key.eth_dst, frame[0..6]);
    assert_eq!(key.eth_src, frame[6..12]);
    assert_eq!(
        key.eth_type,
        u16::from_be_bytes([frame[l3 - 2], frame[l3 - 1]])
    );
    if lay.tags == 2 {
        let inner = u16::from_be_bytes([frame[18], frame[19]]);
        assert_eq!(key.vlan_inner, inner | flow::VLAN_PRESENT);
    } else {
        assert_eq!(key.vlan_inner, 0);
    }
    if lay.tags == 0 {
        assert_eq!(key.vlan_tci, 0);
        assert_eq!(key.vlan_vid(), None);
    } else {
        assert_ne!(key.vlan_tci & flow::VLAN_PRESENT, 0);
        let vid = key.vlan_vid().unwrap();
        assert!(vid <= 4095, "VLAN id {vid}");
        let tci = u16::from_be_bytes([frame[14], frame[15]]);
        assert_eq!(vid, tci & 0x0fff);
    }
    if l4 != 0 {
        assert!(
            matches!(key.eth_type, flow::ETH_TYPE_IPV4 | flow::ETH_TYPE_IPV6),
            "L4 offset for EtherType {:#06x}",
            key.eth_type
        );
        let min_l3 = if key.eth_type == flow::ETH_TYPE_IPV4 {
            20
        } else {
            40
        };
        assert!(l4 >= l3 + min_l3, "l4 {l4} inside the L3 header at {l3}");
        let min_l4 = match key.nw_proto {
            6 => 20,
            17 => 8,
            1 | 58 => 4,
            p => panic!("L4 offset for IP protocol {p}"),
        };
        assert!(
            l4 + min_l4 <= len,
            "L4 header at {l4} beyond frame of {len}"
        );
        assert_eq!(
            key.nw_frag & flow::frag::LATER,
            0,
            "later fragment with an L4 offset"
        );
    }
    if key.nw_frag & flow::frag::LATER != 0 {
        assert_ne!(key.nw_frag & flow::frag::ANY, 0);
        assert_eq!(l4, 0);
    }
    if !matches!(
        key.eth_type,
        flow::ETH_TYPE_IPV4 | flow::ETH_TYPE_IPV6 | flow::ETH_TYPE_ARP
    ) {
        assert_eq!(
            *key,
            FlowKey {
                in_port: key.in_port,
                eth_dst: key.eth_dst,
                eth_src: key.eth_src,
                eth_type: key.eth_type,
                vlan_tci: key.vlan_tci,
                vlan_inner: key.vlan_inner,
                ..FlowKey::default()
            }
        );
    }
}

/// What the walk with the checked views found. `None`: not reached, or the view refused.
#[derive(Debug, Default)]
struct Walked<'a> {
    eth: Option<([u8; 6], [u8; 6])>,
    /// VLAN ids of the tags, outermost first, and how many there were.
    vids: [u16; 2],
    tags: u8,
    /// EtherType after the tags and the L3 offset, if every tag parsed.
    l3: Option<(u16, usize)>,
    arp: Option<Arp>,
    ip: Option<Ip>,
    /// Offset of the L4 header and what it holds.
    l4: Option<(usize, L4)>,
    /// The frame inside a VXLAN packet.
    vxlan_inner: Option<&'a [u8]>,
}

#[derive(Debug)]
struct Arp {
    op: u16,
    sha: [u8; 6],
    spa: [u8; 4],
    tha: [u8; 6],
    tpa: [u8; 4],
}

#[derive(Debug)]
struct Ip {
    src: [u8; 16],
    dst: [u8; 16],
    ttl: u8,
    tos: u8,
    /// Fragment offset and "more fragments" (IPv6: only when a fragment header was found).
    frag: Option<(u16, bool)>,
    /// The upper-layer protocol, when the view could find it.
    proto: Option<u8>,
}

#[derive(Debug)]
enum L4 {
    Tcp { src: u16, dst: u16, flags: u8 },
    Udp { src: u16, dst: u16 },
    Icmp { ty: u8, code: u8 },
}

fn v4(a: std::net::Ipv4Addr) -> [u8; 16] {
    let mut out = [0; 16];
    out[..4].copy_from_slice(&a.octets());
    out
}

/// Walks `frame` with `new_checked` views only, reading every accessor on the way.
fn walk(frame: &[u8]) -> Walked<'_> {
    let mut w = Walked::default();
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return w;
    };
    w.eth = Some((eth.dst().octets(), eth.src().octets()));
    let mut ty = eth.ethertype();
    let mut rest = eth.into_payload();
    let mut off = wire::ethernet::HEADER_LEN;
    while ty == EtherType::VLAN || ty == EtherType::QINQ {
        if w.tags == 2 {
            return w;
        }
        let Ok(tag) = VlanPacket::new_checked(rest) else {
            return w;
        };
        assert_eq!(tag.vid(), tag.tci() & 0x0fff);
        assert!(tag.pcp() <= 7);
        let _ = tag.dei();
        w.vids[usize::from(w.tags)] = tag.vid();
        w.tags += 1;
        ty = tag.ethertype();
        rest = tag.into_payload();
        off += wire::vlan::HEADER_LEN;
    }
    w.l3 = Some((ty.0, off));
    match ty {
        EtherType::ARP => {
            if let Ok(arp) = ArpPacket::new_checked(rest) {
                w.arp = Some(Arp {
                    op: arp.op().0,
                    sha: arp.sha().octets(),
                    spa: arp.spa().octets(),
                    tha: arp.tha().octets(),
                    tpa: arp.tpa().octets(),
                });
                let _ = wire::ArpRepr::parse(&arp);
            }
        }
        EtherType::IPV4 => walk_ipv4(rest, off, &mut w),
        EtherType::IPV6 => walk_ipv6(rest, off, &mut w),
        _ => {}
    }
    w
}

fn walk_ipv4<'a>(l3: &'a [u8], off: usize, w: &mut Walked<'a>) {
    let Ok(ip) = Ipv4Packet::new_checked(l3) else {
        return;
    };
    let hlen = ip.header_len();
    assert!((wire::ipv4::HEADER_LEN..=wire::ipv4::MAX_HEADER_LEN).contains(&hlen));
    assert_eq!(ip.header().len(), hlen);
    assert_eq!(ip.options().len(), hlen - wire::ipv4::HEADER_LEN);
    assert_eq!(ip.payload().len(), usize::from(ip.total_len()) - hlen);
    let _ = (
        ip.ident(),
        ip.dont_frag(),
        ip.checksum(),
        ip.verify_checksum(),
    );
    let _ = (ip.dscp(), ip.ecn(), wire::Ipv4Repr::parse(&ip));
    let later = ip.frag_offset() != 0;
    w.ip = Some(Ip {
        src: v4(ip.src_addr()),
        dst: v4(ip.dst_addr()),
        ttl: ip.ttl(),
        tos: ip.tos(),
        frag: Some((ip.frag_offset(), ip.more_frags())),
        proto: Some(ip.protocol().0),
    });
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let proto = ip.protocol();
    let payload = ip.into_payload();
    if later {
        return;
    }
    walk_l4(proto, payload, off + hlen, Addrs::V4(src, dst), w);
}

fn walk_ipv6<'a>(l3: &'a [u8], off: usize, w: &mut Walked<'a>) {
    let Ok(ip) = Ipv6Packet::new_checked(l3) else {
        return;
    };
    let _ = (ip.flow_label(), ip.dscp(), ip.ecn(), ip.next_header());
    let _ = wire::Ipv6Repr::parse(&ip);
    let payload_len = usize::from(ip.payload_len());
    assert_eq!(ip.payload().len(), payload_len);
    let upper = ip.upper_layer();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    w.ip = Some(Ip {
        src: src.octets(),
        dst: dst.octets(),
        ttl: ip.hop_limit(),
        tos: ip.traffic_class(),
        frag: None,
        proto: None,
    });
    let Ok(upper) = upper else {
        return;
    };
    let end = wire::ipv6::HEADER_LEN + payload_len;
    assert!(upper.offset >= wire::ipv6::HEADER_LEN && upper.offset <= end);
    let fragment_headers = count_fragment_headers(ip.next_header(), ip.payload(), upper.offset);
    let packet = ip.into_inner();
    if let Some(ip) = &mut w.ip {
        // Several fragment headers are malformed (RFC 8200 4.1): `flow::extract` rejects them,
        // while the view reports the last one crossed; compare only when there is one.
        if fragment_headers <= 1 {
            ip.frag = upper.fragment.map(|f| (f.offset, f.more));
            ip.proto = Some(upper.protocol.0);
        }
    }
    if upper.fragment.is_some_and(|f| f.offset != 0) {
        return;
    }
    walk_l4(
        upper.protocol,
        &packet[upper.offset..end],
        off + upper.offset,
        Addrs::V6(src, dst),
        w,
    );
}

/// Fragment headers in the extension chain of an IPv6 payload, up to the upper layer found by
/// the view at `upper_offset` (from the start of the IPv6 header).
fn count_fragment_headers(first: IpProtocol, payload: &[u8], upper_offset: usize) -> usize {
    let (mut next, mut off, mut n) = (first, 0usize, 0usize);
    while wire::ipv6::HEADER_LEN + off < upper_offset {
        let len = match next {
            IpProtocol::IPV6_FRAGMENT => {
                n += 1;
                8
            }
            _ => (usize::from(payload[off + 1]) + 1) * 8,
        };
        next = IpProtocol(payload[off]);
        off += len;
    }
    n
}

#[derive(Clone, Copy)]
enum Addrs {
    V4(std::net::Ipv4Addr, std::net::Ipv4Addr),
    V6(std::net::Ipv6Addr, std::net::Ipv6Addr),
}

fn walk_l4<'a>(proto: IpProtocol, l4: &'a [u8], off: usize, addrs: Addrs, w: &mut Walked<'a>) {
    match proto {
        IpProtocol::TCP => {
            let Ok(tcp) = TcpPacket::new_checked(l4) else {
                return;
            };
            let hlen = tcp.header_len();
            assert!(hlen >= wire::tcp::HEADER_LEN && hlen <= l4.len());
            assert_eq!(tcp.options().len(), hlen - wire::tcp::HEADER_LEN);
            assert_eq!(tcp.payload().len(), l4.len() - hlen);
            let _ = (
                tcp.seq_number(),
                tcp.ack_number(),
                tcp.window_len(),
                tcp.urgent_at(),
            );
            let _ = (
                tcp.checksum(),
                tcp.segment_len(),
                tcp.syn(),
                tcp.fin(),
                tcp.rst(),
            );
            match addrs {
                Addrs::V4(s, d) => tcp.verify_checksum_v4(s, d),
                Addrs::V6(s, d) => tcp.verify_checksum_v6(&s, &d),
            };
            w.l4 = Some((
                off,
                L4::Tcp {
                    src: tcp.src_port(),
                    dst: tcp.dst_port(),
                    flags: tcp.flags(),
                },
            ));
        }
        IpProtocol::UDP => {
            let Ok(udp) = UdpPacket::new_checked(l4) else {
                return;
            };
            assert_eq!(udp.datagram().len(), usize::from(udp.len()));
            assert_eq!(
                udp.payload().len(),
                usize::from(udp.len()) - wire::udp::HEADER_LEN
            );
            let _ = (udp.checksum(), udp.is_empty(), wire::UdpRepr::parse(&udp));
            match addrs {
                Addrs::V4(s, d) => udp.verify_checksum_v4(s, d),
                Addrs::V6(s, d) => udp.verify_checksum_v6(&s, &d),
            };
            w.l4 = Some((
                off,
                L4::Udp {
                    src: udp.src_port(),
                    dst: udp.dst_port(),
                },
            ));
            if udp.dst_port() == wire::vxlan::PORT
                && let Ok(vx) = VxlanPacket::new_checked(udp.into_payload())
            {
                let _ = (
                    vx.flags(),
                    vx.has_vni(),
                    vx.vni(),
                    wire::VxlanRepr::parse(&vx),
                );
                assert!(vx.vni() <= wire::vxlan::VNI_MAX);
                w.vxlan_inner = Some(vx.into_payload());
            }
        }
        IpProtocol::ICMP | IpProtocol::ICMPV6 => {
            let Ok(icmp) = IcmpPacket::new_checked(l4) else {
                return;
            };
            let _ = (icmp.checksum(), icmp.rest_of_header(), icmp.is_echo());
            let _ = (icmp.echo_ident(), icmp.echo_seq_no(), icmp.payload());
            match addrs {
                Addrs::V4(..) => icmp.verify_checksum_v4(),
                Addrs::V6(s, d) => icmp.verify_checksum_v6(&s, &d),
            };
            w.l4 = Some((
                off,
                L4::Icmp {
                    ty: icmp.msg_type(),
                    code: icmp.code(),
                },
            ));
        }
        _ => {}
    }
}

/// Where both parsers read a field, they agree.
fn compare(key: &FlowKey, lay: &Layout, w: &Walked<'_>) {
    let (dst, src) = w
        .eth
        .expect("extract accepted a frame the Ethernet view refuses");
    assert_eq!((key.eth_dst, key.eth_src), (dst, src));
    let (ty, l3) =
        w.l3.expect("extract accepted VLAN tags the VLAN view refuses");
    assert_eq!(lay.tags, w.tags);
    assert_eq!((key.eth_type, usize::from(lay.l3)), (ty, l3));
    if w.tags > 0 {
        assert_eq!(key.vlan_vid(), Some(w.vids[0]));
    }
    match key.eth_type {
        flow::ETH_TYPE_ARP => {
            let arp = w
                .arp
                .as_ref()
                .expect("extract accepted ARP the ARP view refuses");
            assert_eq!(
                u16::from(key.nw_proto),
                if arp.op <= 0xff { arp.op } else { 0 }
            );
            assert_eq!((key.arp_sha, key.arp_tha), (arp.sha, arp.tha));
            assert_eq!(
                (&key.nw_src[..4], &key.nw_dst[..4]),
                (&arp.spa[..], &arp.tpa[..])
            );
        }
        flow::ETH_TYPE_IPV4 | flow::ETH_TYPE_IPV6 => {
            let ip =
                w.ip.as_ref()
                    .expect("extract accepted IP the IP view refuses");
            assert_eq!((key.nw_src, key.nw_dst), (ip.src, ip.dst));
            assert_eq!((key.nw_ttl, key.nw_tos), (ip.ttl, ip.tos));
            if let Some((offset, more)) = ip.frag {
                let is_frag = offset != 0 || more || key.eth_type == flow::ETH_TYPE_IPV6;
                assert_eq!(key.nw_frag & flow::frag::ANY != 0, is_frag, "fragment bit");
                assert_eq!(
                    key.nw_frag & flow::frag::LATER != 0,
                    offset != 0,
                    "later bit"
                );
            }
            let later = key.nw_frag & flow::frag::LATER != 0;
            if let (Some(proto), false) = (ip.proto, later) {
                assert_eq!(key.nw_proto, proto, "IP protocol");
            }
            compare_l4(key, lay, w);
        }
        _ => {}
    }
}

fn compare_l4(key: &FlowKey, lay: &Layout, w: &Walked<'_>) {
    let Some((off, l4)) = &w.l4 else {
        return;
    };
    if lay.l4 == 0 {
        // extract stops before L4 only for later fragments or protocols it does not read.
        assert!(
            key.nw_frag & flow::frag::LATER != 0 || !matches!(key.nw_proto, 1 | 6 | 17 | 58),
            "the views found an L4 header extract skipped: {l4:?}"
        );
        return;
    }
    assert_eq!(usize::from(lay.l4), *off, "L4 offset");
    match *l4 {
        L4::Tcp { src, dst, flags } => {
            assert_eq!(key.nw_proto, 6);
            assert_eq!((key.tp_src, key.tp_dst), (src, dst));
            assert_eq!(key.tcp_flags & 0xff, u16::from(flags));
        }
        L4::Udp { src, dst } => {
            assert_eq!(key.nw_proto, 17);
            assert_eq!((key.tp_src, key.tp_dst), (src, dst));
        }
        L4::Icmp { ty, code } => {
            assert!(matches!(key.nw_proto, 1 | 58));
            assert_eq!((key.tp_src, key.tp_dst), (u16::from(ty), u16::from(code)));
        }
    }
}
