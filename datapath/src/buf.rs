//! Frame descriptors and batches (hot path).
//!
//! A received frame's bytes stay in the memory of the port that received them (AF_XDP UMEM, a TAP
//! port's rx slots, …) until the batch is released; the pipeline only passes small `Copy`
//! descriptors around. A batch never holds more than [`BATCH_SIZE`] frames and never allocates.
//!
//! Thread-safety: a batch belongs to one worker and is never shared.

/// Largest number of frames processed together (one rx burst, one tx flush per port).
pub const BATCH_SIZE: usize = 64;

/// Checksum and segmentation state of a frame, in the terms of `struct virtio_net_hdr`.
///
/// A frame with [`Offload::NONE`] is complete: every checksum is filled in and it is no larger
/// than the MTU of the link it came from. Ports that cannot carry offload state (see
/// [`crate::port::PortCaps::tx_offload`]) are only ever given complete frames; the worker
/// completes checksums and segments GSO frames first (`crate::offload`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offload {
    /// `VIRTIO_NET_HDR_F_*` flags ([`Offload::F_NEEDS_CSUM`], [`Offload::F_DATA_VALID`]).
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*` type ([`Offload::GSO_NONE`], [`Offload::GSO_TCPV4`], …).
    pub gso_type: u8,
    /// Length of the headers to replicate in each segment (bytes), when GSO.
    pub hdr_len: u16,
    /// Payload bytes per segment, when GSO.
    pub gso_size: u16,
    /// Offset of the first byte covered by the partial checksum, when `F_NEEDS_CSUM`.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`, when `F_NEEDS_CSUM`.
    pub csum_offset: u16,
}

impl Offload {
    /// A complete frame: nothing left for anyone to do.
    pub const NONE: Self = Self {
        flags: 0,
        gso_type: 0,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };
    /// The L4 checksum holds only the pseudo-header sum; the rest must be computed from
    /// `csum_start` to the end of the frame.
    pub const F_NEEDS_CSUM: u8 = 1;
    /// The checksum has been verified by the sender's side.
    pub const F_DATA_VALID: u8 = 2;
    /// With a UDP-tunnel GSO type: the outer UDP checksum is to be computed per segment
    /// (virtio's `VIRTIO_NET_HDR_F_UDP_TUNNEL_CSUM`; only in the tunnel form of the header).
    pub const F_UDP_TUNNEL_CSUM: u8 = 8;
    /// Not a GSO frame.
    pub const GSO_NONE: u8 = 0;
    /// TCP over IPv4 segmentation.
    pub const GSO_TCPV4: u8 = 1;
    /// UDP fragmentation offload (legacy UFO).
    pub const GSO_UDP: u8 = 3;
    /// TCP over IPv6 segmentation.
    pub const GSO_TCPV6: u8 = 4;
    /// UDP segmentation (`UDP_L4`).
    pub const GSO_UDP_L4: u8 = 5;
    /// ECN bit ORed into `gso_type` (CWR must be set on the first segment only).
    pub const GSO_ECN: u8 = 0x80;
    /// ORed into a TCP `gso_type`: the TCP segment is inside a UDP tunnel (VXLAN, Geneve)
    /// over IPv4; `csum_start` is the inner TCP header. The value is virtio's
    /// `VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV4`, but the ports never read or write it in a header:
    /// the kernel hands such frames over as plain TCP GSO (the tunnel is lost), and the switch
    /// marks them itself ([`crate::offload::mark_udp_tunnel`]) so that they are segmented in
    /// software before any port ([`Offload::passes`]).
    pub const GSO_UDP_TUNNEL_IPV4: u8 = 0x20;
    /// As [`Offload::GSO_UDP_TUNNEL_IPV4`], with an IPv6 outer header.
    pub const GSO_UDP_TUNNEL_IPV6: u8 = 0x40;
    /// Both UDP-tunnel bits (exactly one is set on a tunnel super-frame).
    pub const GSO_UDP_TUNNEL: u8 = Self::GSO_UDP_TUNNEL_IPV4 | Self::GSO_UDP_TUNNEL_IPV6;
    /// Bits of `gso_type` that are not the GSO kind.
    pub const GSO_MODIFIERS: u8 = Self::GSO_ECN | Self::GSO_UDP_TUNNEL;

    /// True when the frame carries no pending work.
    #[inline]
    pub fn is_none(&self) -> bool {
        self.flags & Self::F_NEEDS_CSUM == 0 && self.gso_type & !Self::GSO_ECN == Self::GSO_NONE
    }

    /// The GSO kind without modifier bits ([`Offload::GSO_TCPV4`], …).
    #[inline]
    pub fn gso_kind(&self) -> u8 {
        self.gso_type & !Self::GSO_MODIFIERS
    }

    /// True for a GSO super-frame whose TCP segment is inside a UDP tunnel.
    #[inline]
    pub fn is_tunnel(&self) -> bool {
        self.gso_type & Self::GSO_UDP_TUNNEL != 0
    }

    /// True when the frame can go as it is (with this state) to a port with these
    /// capabilities ([`crate::port::PortCaps`]): no pending work, or a port that takes offload
    /// state and can express this kind (a tunnel super-frame only where `tx_udp_tunnel`).
    /// Otherwise it is completed or segmented first ([`crate::offload::segment`]).
    #[inline]
    pub fn passes(&self, tx_offload: bool, tx_udp_tunnel: bool) -> bool {
        self.is_none() || (tx_offload && (tx_udp_tunnel || !self.is_tunnel()))
    }

    /// True when the L4 checksum still has to be completed.
    #[inline]
    pub fn needs_csum(&self) -> bool {
        self.flags & Self::F_NEEDS_CSUM != 0
    }

    /// True when the frame is a GSO super-frame that must be segmented before a plain link.
    #[inline]
    pub fn is_gso(&self) -> bool {
        self.gso_type & !Self::GSO_ECN != Self::GSO_NONE
    }
}

/// Where one received frame is: a handle the receiving port understands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxDesc {
    /// Backend-specific handle of the frame's bytes (UMEM address, slot index, …).
    pub addr: u64,
    /// Frame length in bytes, from the Ethernet header on (no FCS).
    pub len: u32,
    /// Offload state the frame arrived with.
    pub offload: Offload,
}

/// Up to [`BATCH_SIZE`] received frames from one (port, queue).
#[derive(Debug, Clone)]
pub struct RxBatch {
    count: usize,
    descs: [RxDesc; BATCH_SIZE],
}

impl Default for RxBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RxBatch {
    /// An empty batch.
    pub const fn new() -> Self {
        Self {
            count: 0,
            descs: [RxDesc {
                addr: 0,
                len: 0,
                offload: Offload::NONE,
            }; BATCH_SIZE],
        }
    }

    /// Number of frames in the batch.
    #[inline]
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the batch holds no frame.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when no more frames fit.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.count == BATCH_SIZE
    }

    /// Room left in the batch.
    #[inline]
    pub fn room(&self) -> usize {
        BATCH_SIZE - self.count
    }

    /// Appends a descriptor; returns false (and drops nothing) when the batch is full.
    #[inline]
    pub fn push(&mut self, desc: RxDesc) -> bool {
        match self.descs.get_mut(self.count) {
            Some(slot) => {
                *slot = desc;
                self.count += 1;
                true
            }
            None => false,
        }
    }

    /// Keeps the first `len` frames (all of them when there are fewer).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.count = self.count.min(len);
    }

    /// Empties the batch.
    #[inline]
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// The descriptors received.
    #[inline]
    pub fn descs(&self) -> &[RxDesc] {
        &self.descs[..self.count]
    }

    /// The descriptors received, for backends that fix them up in place.
    #[inline]
    pub fn descs_mut(&mut self) -> &mut [RxDesc] {
        &mut self.descs[..self.count]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_holds_at_most_batch_size_frames() {
        let mut b = RxBatch::new();
        for i in 0..BATCH_SIZE {
            assert!(b.push(RxDesc {
                addr: i as u64,
                len: 60,
                offload: Offload::NONE
            }));
        }
        assert!(b.is_full());
        assert!(!b.push(RxDesc::default()));
        assert_eq!(b.len(), BATCH_SIZE);
        assert_eq!(b.descs()[63].addr, 63);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.room(), BATCH_SIZE);
    }

    #[test]
    fn offload_none_is_complete() {
        assert!(Offload::NONE.is_none());
        let o = Offload {
            flags: Offload::F_NEEDS_CSUM,
            ..Offload::NONE
        };
        assert!(!o.is_none() && o.needs_csum() && !o.is_gso());
        let g = Offload {
            gso_type: Offload::GSO_TCPV4 | Offload::GSO_ECN,
            ..Offload::NONE
        };
        assert!(g.is_gso() && !g.is_none());
    }
}
