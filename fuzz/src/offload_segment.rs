//! `offload_segment`: a received frame with its virtio-net header through the offload path.
//!
//! The input is what a TAP or AF_PACKET port reads: a 10-byte virtio-net header (native byte
//! order), then the frame. The body decodes the header as the ports do (`tun::decode_vnet_hdr`,
//! which also marks UDP-tunnel super-frames), encodes the tunnel form of the header as a tap
//! port would on transmit, and segments the frame in software as the worker does for a port
//! that cannot take it (`offload::segment`).
//!
//! Invariants checked:
//! - marking a frame as a UDP-tunnel one is idempotent;
//! - the tunnel form of the header, when it can be made for a tunnel frame, has its offsets in
//!   order inside the frame: outer UDP header < inner IP header < inner L4 header (`csum_start`);
//! - `segment` emits exactly the count it returns, at least one frame, each no longer than the
//!   input; on an error it emits nothing;
//! - every segment of a GSO frame whose flow key extracts is a frame the datapath parses, with
//!   the same flow (MACs, EtherType, VLAN, addresses, protocol, ports) as the super-frame.

use datapath::flow;
use datapath::offload::{self, SegmentBuf};
use datapath::sys::tun::{self, VNET_HDR_LEN, VNET_TNL_HDR_LEN};
use datapath::wire::Ipv4Packet;

/// The fuzz body: see the module docs.
pub fn offload_segment(data: &[u8]) {
    let Some((hdr, frame)) = data.split_first_chunk::<VNET_HDR_LEN>() else {
        return;
    };
    let off = tun::decode_vnet_hdr(hdr, frame);
    let mut again = off;
    offload::mark_udp_tunnel(frame, &mut again);
    assert_eq!(again, off, "marking is not idempotent");

    let mut th = [0u8; VNET_TNL_HDR_LEN];
    if tun::encode_tnl_vnet_hdr(&off, frame, &mut th) && off.is_tunnel() {
        let outer = u16::from_le_bytes([th[20], th[21]]);
        let inner = u16::from_le_bytes([th[22], th[23]]);
        assert!(
            outer < inner && inner < off.csum_start && usize::from(off.csum_start) < frame.len(),
            "tunnel offsets {outer} {inner} {} in {} bytes",
            off.csum_start,
            frame.len()
        );
    }

    let mut buf = SegmentBuf::new();
    let mut segs: Vec<Vec<u8>> = Vec::new();
    match offload::segment(frame, &off, &mut buf, &mut |s: &[u8]| segs.push(s.to_vec())) {
        Ok(n) => {
            assert_eq!(n, segs.len(), "returned count and emitted frames differ");
            assert!(n >= 1);
            for s in &segs {
                assert!(s.len() <= frame.len(), "a segment longer than the input");
            }
            if off.is_gso()
                && let Ok((want, _)) = flow::extract(frame, 1)
            {
                for (i, s) in segs.iter().enumerate() {
                    let (got, _) = flow::extract(s, 1)
                        .unwrap_or_else(|e| panic!("segment {i} does not parse: {e:?}"));
                    let same = |k: &flow::FlowKey| {
                        (
                            k.eth_src, k.eth_dst, k.eth_type, k.vlan_tci, k.nw_src, k.nw_dst,
                            k.nw_proto, k.tp_src, k.tp_dst,
                        )
                    };
                    assert_eq!(same(&got), same(&want), "segment {i} changed the flow");
                }
            }
        }
        Err(_) => assert!(segs.is_empty(), "frames emitted before an error"),
    }
}

/// Sets the IPv4 total length at `l3` (when there is an IPv4 header without options there) to
/// the rest of the frame, and recomputes its header checksum. For building inputs.
pub fn fix_ipv4_len(f: &mut [u8], l3: usize) {
    if f.len() < l3 + 20 || f[l3] != 0x45 {
        return;
    }
    let total = u16::try_from(f.len() - l3).unwrap_or(u16::MAX);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[l3..]);
    ip.set_total_len(total);
    ip.fill_checksum();
}

/// `inner` (an Ethernet frame) behind Ethernet/IPv4/UDP and a VXLAN header, or a Geneve header
/// with `geneve_opts` bytes of options when given, with the outer UDP checksum field set to
/// `udp_csum` (0: none). Returns the frame and the offset of the inner Ethernet header. For
/// building inputs.
pub fn udp_tunnel(inner: &[u8], geneve_opts: Option<usize>, udp_csum: u16) -> (Vec<u8>, usize) {
    let opts = geneve_opts.unwrap_or(0);
    let mut f = vec![0u8; 14 + 20 + 8 + 8 + opts];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[22] = 64;
    f[23] = 17;
    let port: u16 = if geneve_opts.is_some() { 6081 } else { 4789 };
    f[34..36].copy_from_slice(&49152u16.to_be_bytes());
    f[36..38].copy_from_slice(&port.to_be_bytes());
    if geneve_opts.is_some() {
        f[42] = u8::try_from(opts / 4).unwrap_or(0) & 0x3f;
        f[44..46].copy_from_slice(&[0x65, 0x58]);
    } else {
        f[42] = 0x08;
    }
    let udp_len = u16::try_from(8 + 8 + opts + inner.len()).unwrap_or(u16::MAX);
    f[38..40].copy_from_slice(&udp_len.to_be_bytes());
    f[40..42].copy_from_slice(&udp_csum.to_be_bytes());
    let at = f.len();
    f.extend_from_slice(inner);
    fix_ipv4_len(&mut f, 14);
    (f, at)
}

/// A virtio-net header (native byte order, as the kernel writes it) followed by `frame`.
pub fn with_vnet_hdr(
    flags: u8,
    gso_type: u8,
    gso_size: u16,
    csum: (u16, u16),
    frame: &[u8],
) -> Vec<u8> {
    let mut v = vec![flags, gso_type];
    for x in [0u16, gso_size, csum.0, csum.1] {
        v.extend_from_slice(&x.to_ne_bytes());
    }
    v.extend_from_slice(frame);
    v
}
