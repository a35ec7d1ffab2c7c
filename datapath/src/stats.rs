//! Drop reasons and counters (hot path writes, control path reads).
//!
//! Counters are single-writer: the worker that owns a port is the only one that updates that
//! port's counters, with relaxed load + store (no read-modify-write needed). Readers (the control
//! thread) load them relaxed and may see a slightly old value, never a torn one.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a frame was dropped. `#[repr(u8)]` so that it indexes a counter array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than an Ethernet header, or a header inside it is truncated.
    Truncated = 0,
    /// A length field disagrees with the frame (IPv4 total length, IHL, UDP length, …).
    BadLength,
    /// An unsupported or invalid header version / value (IPv4 IHL < 5, IP version mismatch, …).
    BadHeader,
    /// Source MAC address is multicast or broadcast.
    BadSrcMac,
    /// A tagged frame arrived on an access port, or an untagged one on a trunk without native VLAN.
    VlanNotAllowed,
    /// The destination was learned on the port the frame came in on.
    SameSegment,
    /// No output port for the frame (e.g. flood in a VLAN with no other member).
    NoOutput,
    /// The output port's tx queue was full; for a port owned by another worker than the one
    /// that forwarded the frame, that worker's hand-off channel
    /// ([`HANDOFF_CAPACITY`](crate::worker::HANDOFF_CAPACITY) frames) was.
    TxQueueFull,
    /// A frame too big for the output port, that could not be segmented.
    TooBig,
    /// The port's backend failed to send (tx error reported by the device).
    Backend,
    /// Frames received on a port that is being removed.
    PortDown,
    /// No flow matched in a table (OpenFlow table miss: drop).
    TableMiss,
    /// The matched flows' actions output the frame nowhere (e.g. `actions=drop`).
    FlowDrop,
    /// `dec_ttl` found a TTL/hop limit of 0 or 1.
    TtlExpired,
    /// An action could not be applied to this frame (e.g. `pop_vlan` of an untagged frame).
    ActionFailed,
    /// A meter's band dropped it.
    MeterDrop,
    /// Received by the kernel but lost before the switch saw it: the port's receive ring (an
    /// AF_XDP socket's RX ring, an AF_PACKET ring or socket buffer) was full.
    RxRingFull,
    /// Received by the kernel but lost for want of a buffer: an AF_XDP socket's FILL ring was
    /// empty.
    NoRxBuffer,
    /// Handed to the port's device, which dropped it: it had no carrier, or its veth peer
    /// could not take the frame (a full backlog, an MTU smaller than the frame). The kernel
    /// tells the sender of some of these (`ENOBUFS`) and not of others; either way they are
    /// the device's own `tx_dropped` count, grown since the port opened, and not also
    /// [`DropReason::Backend`] (AF_XDP and AF_PACKET ports; read when the counters are
    /// reported). Transmit side only.
    Device,
    /// A frame of a new flow found its worker's queue of frames waiting for a translation
    /// full ([`PENDING_MAX`](crate::worker::PENDING_MAX)): a flood of new flows. Receive side
    /// only.
    UpcallFull,
    /// An IEEE 802.1 link-local multicast frame (01:80:c2:00:00:01–0f: pause, LACP, 802.1X,
    /// LLDP, …) that the learning bridge (`normal`) does not relay. Receive side only.
    LinkLocal,
}

impl DropReason {
    /// Number of reasons, for sizing counter arrays.
    pub const COUNT: usize = 21;
    /// All reasons in counter order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::Truncated,
        Self::BadLength,
        Self::BadHeader,
        Self::BadSrcMac,
        Self::VlanNotAllowed,
        Self::SameSegment,
        Self::NoOutput,
        Self::TxQueueFull,
        Self::TooBig,
        Self::Backend,
        Self::PortDown,
        Self::TableMiss,
        Self::FlowDrop,
        Self::TtlExpired,
        Self::ActionFailed,
        Self::MeterDrop,
        Self::RxRingFull,
        Self::NoRxBuffer,
        Self::Device,
        Self::UpcallFull,
        Self::LinkLocal,
    ];

    /// Stable snake_case name used in the control protocol and CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::BadLength => "bad_length",
            Self::BadHeader => "bad_header",
            Self::BadSrcMac => "bad_src_mac",
            Self::VlanNotAllowed => "vlan_not_allowed",
            Self::SameSegment => "same_segment",
            Self::NoOutput => "no_output",
            Self::TxQueueFull => "tx_queue_full",
            Self::TooBig => "too_big",
            Self::Backend => "backend",
            Self::PortDown => "port_down",
            Self::TableMiss => "table_miss",
            Self::FlowDrop => "flow_drop",
            Self::TtlExpired => "ttl_expired",
            Self::ActionFailed => "action_failed",
            Self::MeterDrop => "meter_drop",
            Self::RxRingFull => "rx_ring_full",
            Self::NoRxBuffer => "no_rx_buffer",
            Self::Device => "device",
            Self::UpcallFull => "upcall_full",
            Self::LinkLocal => "link_local",
        }
    }
}

/// A counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker may call this (single writer).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Sets the value. Only the owning worker may call this (single writer).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter of rare events that several threads add to (an atomic read-modify-write each:
/// kept off the hot path).
#[derive(Debug, Default)]
pub struct SharedCounter(AtomicU64);

impl SharedCounter {
    /// Adds `n`; any thread may.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters of one port, written by the worker that owns the port (except
/// [`PortCounters::handoff_full`]).
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Frames received.
    pub rx_pkts: Counter,
    /// Bytes received.
    pub rx_bytes: Counter,
    /// Frames transmitted (after segmentation: one per segment on the wire).
    pub tx_pkts: Counter,
    /// Bytes transmitted.
    pub tx_bytes: Counter,
    /// Frames received that were larger than 1518 bytes (GSO super-frames, jumbo frames).
    pub rx_jumbo: Counter,
    /// Frames transmitted that were larger than 1518 bytes.
    pub tx_jumbo: Counter,
    /// Received frames the backend itself dropped for a reason other than a full receive
    /// ring or a missing receive buffer (counted in `rx_drops` under
    /// [`DropReason::RxRingFull`] and [`DropReason::NoRxBuffer`]): invalid descriptors, a
    /// frame larger than a buffer, …. (Frames it could not send are in `tx_drops` under
    /// [`DropReason::Backend`].)
    pub backend_drops: Counter,
    /// Drops of frames received on this port, by reason.
    pub rx_drops: [Counter; DropReason::COUNT],
    /// Drops of frames to be sent on this port, by reason.
    pub tx_drops: [Counter; DropReason::COUNT],
    /// Frames for this port that other workers forwarded and could not hand to its worker:
    /// its hand-off channel was full (the worker behind). Written by those workers; read as
    /// transmit drops of reason [`DropReason::TxQueueFull`]. (Only the block of a port's
    /// first part, whose worker transmits on the port, gets any.)
    pub handoff_full: SharedCounter,
}

/// A plain copy of [`PortCounters`] for readers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortCountersSnapshot {
    /// Frames received.
    pub rx_pkts: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted.
    pub tx_pkts: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Frames received larger than 1518 bytes.
    pub rx_jumbo: u64,
    /// Frames transmitted larger than 1518 bytes.
    pub tx_jumbo: u64,
    /// Received frames the backend itself dropped (see [`PortCounters::backend_drops`]).
    pub backend_drops: u64,
    /// Receive-side drops by reason (indexed by `DropReason as usize`).
    pub rx_drops: [u64; DropReason::COUNT],
    /// Transmit-side drops by reason.
    pub tx_drops: [u64; DropReason::COUNT],
}

impl PortCounters {
    /// Counts the backend's own drops: a full receive ring and a missing receive buffer as
    /// receive drops of their reasons, the other receive drops in `backend_drops`, frames it
    /// could not send as transmit drops of reason [`DropReason::Backend`].
    pub fn add_backend_drops(&self, d: crate::port::BackendDrops) {
        self.rx_drops[DropReason::RxRingFull as usize].add(d.rx_ring_full);
        self.rx_drops[DropReason::NoRxBuffer as usize].add(d.no_rx_buffer);
        self.backend_drops.add(d.other);
        self.tx_drops[DropReason::Backend as usize].add(d.tx);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> PortCountersSnapshot {
        let mut s = PortCountersSnapshot {
            rx_pkts: self.rx_pkts.get(),
            rx_bytes: self.rx_bytes.get(),
            tx_pkts: self.tx_pkts.get(),
            tx_bytes: self.tx_bytes.get(),
            rx_jumbo: self.rx_jumbo.get(),
            tx_jumbo: self.tx_jumbo.get(),
            backend_drops: self.backend_drops.get(),
            ..Default::default()
        };
        for (i, c) in self.rx_drops.iter().enumerate() {
            s.rx_drops[i] = c.get();
        }
        for (i, c) in self.tx_drops.iter().enumerate() {
            s.tx_drops[i] = c.get();
        }
        s.tx_drops[DropReason::TxQueueFull as usize] += self.handoff_full.get();
        s
    }
}

impl PortCountersSnapshot {
    /// Adds `other` (the counters of another part of the same port) to these.
    pub fn merge(&mut self, other: &Self) {
        self.rx_pkts += other.rx_pkts;
        self.rx_bytes += other.rx_bytes;
        self.tx_pkts += other.tx_pkts;
        self.tx_bytes += other.tx_bytes;
        self.rx_jumbo += other.rx_jumbo;
        self.tx_jumbo += other.tx_jumbo;
        self.backend_drops += other.backend_drops;
        for (a, b) in self.rx_drops.iter_mut().zip(&other.rx_drops) {
            *a += b;
        }
        for (a, b) in self.tx_drops.iter_mut().zip(&other.tx_drops) {
            *a += b;
        }
    }

    /// Total receive-side drops.
    pub fn rx_dropped(&self) -> u64 {
        self.rx_drops.iter().sum()
    }
    /// Total transmit-side drops.
    pub fn tx_dropped(&self) -> u64 {
        self.tx_drops.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_index_their_counters_in_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn counters_snapshot_reads_what_was_added() {
        let c = PortCounters::default();
        c.rx_pkts.add(3);
        c.rx_drops[DropReason::BadLength as usize].add(2);
        let s = c.snapshot();
        assert_eq!(s.rx_pkts, 3);
        assert_eq!(s.rx_drops[DropReason::BadLength as usize], 2);
        assert_eq!(s.rx_dropped(), 2);
        c.tx_drops[DropReason::TxQueueFull as usize].add(1);
        c.handoff_full.add(2);
        let s = c.snapshot();
        assert_eq!(s.tx_drops[DropReason::TxQueueFull as usize], 3);
        assert_eq!(s.tx_dropped(), 3);
    }
}
