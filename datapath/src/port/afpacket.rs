//! AF_PACKET port: a raw packet socket bound to one netdev (hot path for rx/tx, slow path for
//! open/drop). Works on any device; the fallback when AF_XDP is not available.
//!
//! ## Setup
//! `socket(AF_PACKET, SOCK_RAW)`, non-blocking, bound to the device's ifindex with `ETH_P_ALL`
//! (only after the options below, so no other device's frame is ever queued), with:
//! - `PACKET_VNET_HDR`: every frame carries a 10-byte virtio-net header with its GSO and partial
//!   checksum state. On a veth with no XDP program attached the peer keeps TSO, so a
//!   container's TCP arrives here as GSO super-frames of up to ~64 KB (`GSO_TCPV4`,
//!   `F_NEEDS_CSUM`, offsets from the Ethernet header) and is sent on the same way: this is the
//!   fast TCP path, and [`PortCaps::tx_offload`] is true. Without it (very old kernels) the port
//!   runs in plain mode: `tx_offload` is false, and frames from local senders may carry
//!   incomplete checksums the port cannot see (logged at open).
//! - `PACKET_IGNORE_OUTGOING`: frames the host sends out of the device, ours included, are not
//!   received back.
//! - `PACKET_AUXDATA`: veth (and most NICs) move a received frame's VLAN tag into metadata, and a
//!   packet socket hands out the frame without it. The port puts the tag back in place (shifting
//!   the MAC addresses 4 bytes left in the slot, and `csum_start`/`hdr_len` 4 bytes right), so
//!   the pipeline sees the frame as it was on the wire.
//! - promiscuous membership (`PACKET_MR_PROMISC`, undone by the kernel on close) and 4 MiB
//!   socket buffers (`SO_*BUFFORCE` when permitted).
//! - `PACKET_QDISC_BYPASS` only when [`AfPacketOptions::qdisc_bypass`] asks for it (off by
//!   default, as before the rings: bypassing the qdisc also hides the port's transmissions from
//!   packet taps such as tcpdump on the device, and a veth has no qdisc to skip).
//!
//! ## Ring mode (the default)
//! With `PACKET_VNET_HDR` on, the socket gets mmap'ed `TPACKET_V2` rings
//! ([`PacketRings`], `sys/tpacket.rs`), sized from the device's MTU (for MTU 1500:
//! 2048-byte slots), one mapping per port:
//! - **rx ring**: [`RX_RING_BYTES`] = 2 MiB, 1024 slots. `rx_burst` reads the slots the kernel
//!   has filled, in ring order, with no syscall; each [`RxDesc`] points into its slot
//!   (`addr` = `RING_ADDR` | offset << 32 | slot) and the frame stays there until
//!   `rx_release`; slots go back to the kernel strictly in ring order (a slot released early waits
//!   for the older ones). The virtio-net header sits in the slot just before the frame; a
//!   stripped VLAN tag comes from the slot header and is put back over the (already read)
//!   virtio-net header. A frame longer than a slot (a GSO super-frame of up to 64 KiB) is cut
//!   in its slot, and `PACKET_COPY_THRESH` makes the kernel queue a full copy on the socket
//!   (`TP_STATUS_COPY`): `rx_burst` reads those copies, in slot order, with one `recvmmsg` per
//!   burst into `RX_BIG_SLOTS` = 8 slots of [`SLOT_LEN`] (528 KiB); the burst stops early
//!   when they are all in use.
//! - **tx ring**: [`TX_RING_BYTES`] = 1 MiB, 512 slots. `tx_enqueue` copies a frame without GSO
//!   that fits a slot (partial checksums included) into the next free slot; `tx_flush` is one
//!   `send` kick for everything queued (again only if the kernel stopped early on a device drop)
//!   and takes back the slots the kernel is done with. GSO frames and frames longer than a slot
//!   go out at once with one `sendmsg` on a second, send-only socket (protocol 0: it receives
//!   nothing), after a kick of what is queued, so order is kept: a socket with a tx ring sends
//!   every `sendmsg` through its ring. Frames the kernel cannot take at a kick (full send
//!   buffer) stay queued for the next one; `PACKET_LOSS` is on, so a frame the kernel refuses
//!   in the ring is skipped rather than stopping it (the port checks what the kernel would
//!   refuse first, and counts it).
//!
//! Memory per port: 3.5 MiB (2 MiB rx ring, 1 MiB tx ring, 528 KiB for long frames), bounded;
//! mmsg mode had 4.2 MiB of rx and 0.26 MiB of tx slots. When the kernel refuses the rings (or
//! [`AfPacketOptions::ring`] is false, or in plain mode) the port uses mmsg mode below.
//!
//! Why `TPACKET_V2` and not V3: a V3 ring hands frames over a block at a time, when the block is
//! full or its retire timer (milliseconds) fires, which would hold a lone frame (a ping, a TCP
//! ACK) for up to that long; V2 hands over each frame as it is written. V3 with
//! `PACKET_VNET_HDR` does work on receive on this kernel (6.18: the header is written before
//! each frame in the block, checked by hand), so that is not the reason. A V3 port was not
//! built or measured.
//!
//! A kernel quirk the port repairs: when the kernel cannot express a received frame's offload
//! state in a virtio-net header (`virtio_net_hdr_from_skb` fails: GSO types other than
//! TCPv4/TCPv6/UDP-L4, such as UFO from a tap or SCTP GSO from a container's veth),
//! `tpacket_rcv` (Linux 6.18) has already marked the head slot as owned in `rx_owner_map` and
//! drops the frame without advancing the head or clearing the mark, so every later frame finds
//! the head slot marked and is dropped too: the rx ring would stop for good (mmsg mode drops
//! such a frame with `EINVAL` and goes on). The port checks, in [`Port::maintain`] (about once
//! a millisecond while the worker polls, at each wake-up when it sleeps), whether a frame came
//! since the last check or waits in the next slot, and if not and no slot is held, the kernel's
//! drop count (`PACKET_STATISTICS`): drops while the ring stays empty cannot come from a full
//! ring, so when two checks see them with no frame received since the first, it rebuilds its
//! socket and rings (logged, counted as backend drops).
//! `an_unexpressible_gso_frame_is_dropped_and_traffic_goes_on_in_both_modes` in
//! `datapath/tests/afpacket.rs` writes a UFO frame into a tap and checks that traffic goes on.
//!
//! Measured against mmsg mode (main's build before the rings vs this one, alternating rounds of
//! the end-to-end harness `--only c,d`, medians, ratios to the Linux bridge of the same rounds;
//! docs/performance.md): 64-byte frames 0.342 → 0.632 M/s (×0.81 → ×1.57 the bridge), 10,000
//! flows 0.350 → 0.648 M/s (×0.85 → ×1.59), 3 rounds; TCP 1 stream 9.79 → 9.80 Gb/s (×0.79 →
//! ×0.85), 4 streams ×0.53 → ×0.55, 7 rounds. Hence the default.
//!
//! ## Mmsg mode (memory and syscalls)
//! 64 rx slots of [`SLOT_LEN`] bytes (room for a VLAN tag, the virtio-net header, a 64 KiB
//! frame) and 64 tx slots of [`TX_SLOT_LEN`] bytes, allocated once. `rx_burst` is one
//! `recvmmsg` for up to `batch.room()` frames into free rx slots. Frames of up to
//! [`DIRECT_TX_MIN`] bytes are copied into a tx slot and `tx_flush` sends everything queued with
//! one `sendmmsg` (more only after a partial send). Longer frames (GSO super-frames above all)
//! are sent at once by `tx_enqueue`, after whatever is queued (order is kept), with one
//! `sendmsg` of the virtio-net header and the caller's bytes: a 64 KB frame costs one syscall
//! either way, and this saves copying it into a tx slot, so it is copied twice on its way
//! through the switch (kernel → rx slot, rx slot → kernel). `RxDesc::addr` is the rx slot index. Drops seen by the port (full socket
//! buffer on tx, truncated or unconvertible frames on rx) and the kernel's `PACKET_STATISTICS`
//! drops are reported by `take_backend_drops`.
//!
//! Thread-safety: owned and driven by one worker (`Send`, not shared).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::buf::{BATCH_SIZE, Offload, RxBatch, RxDesc};
use crate::port::{BackendDrops, Port, PortCaps, PortError, PortKind};
use crate::sys::netdev;
use crate::sys::packet::{MmsgSlots, PacketSocket, RecvMeta, SockBuf};
use crate::sys::tpacket::{PacketRings, RingGeometry, RxFrame};
use crate::sys::tun::{self, VNET_HDR_LEN};

/// Bytes per rx slot: room for a VLAN tag, the virtio-net header, then a frame of up to
/// 64 KiB plus headers.
pub const SLOT_LEN: usize = 66 * 1024;

/// Number of rx slots.
const RX_SLOTS: usize = 64;

/// Number of tx slots.
const TX_SLOTS: usize = BATCH_SIZE;

/// Frames longer than this (bytes from the Ethernet header) are not queued but sent at once,
/// straight from the caller's memory.
pub const DIRECT_TX_MIN: usize = 4096;

/// Bytes per tx slot: the virtio-net header and a frame of up to [`DIRECT_TX_MIN`] bytes.
pub const TX_SLOT_LEN: usize = VNET_HDR_LEN + DIRECT_TX_MIN;

/// Ethernet header length.
const ETH_HLEN: usize = 14;

/// Smallest `csum_start` the kernel takes with a partial checksum (`sizeof(struct iphdr)`,
/// `virtio_net_hdr_to_skb`).
const CSUM_START_MIN: usize = 20;

/// Length of an 802.1Q tag.
const VLAN_HLEN: usize = 4;

/// Offset of a received frame in its rx slot: room to put a stripped VLAN tag back, then the
/// virtio-net header. Messages are received at `VLAN_HLEN` (with the header) or here (without).
const RX_FRAME_OFF: usize = VLAN_HLEN + VNET_HDR_LEN;

/// Attempts of one `rx_burst` at `recvmmsg` when the kernel drops a frame it cannot describe.
const RX_TRIES: usize = 4;

/// Ring mode: bytes of the receive ring (at most), and its slots (at most).
pub const RX_RING_BYTES: usize = 2 << 20;
/// Ring mode: most receive-ring slots.
const RX_RING_FRAMES: u32 = 1024;
/// Ring mode: bytes of the transmit ring (at most).
pub const TX_RING_BYTES: usize = 1 << 20;
/// Ring mode: most transmit-ring slots.
const TX_RING_FRAMES: u32 = 512;
/// Ring mode: rx slots of [`SLOT_LEN`] bytes for frames longer than a ring slot (GSO
/// super-frames), read with one `recvmmsg` per burst.
const RX_BIG_SLOTS: usize = 8;

/// Marks an [`RxDesc::addr`] of a frame in a receive-ring slot: bits 0..32 are the slot, bits
/// 32..63 the frame's offset in it. Without it, `addr` is an index into the mmsg rx slots.
const RING_ADDR: u64 = 1 << 63;

const _: () = assert!(RX_SLOTS <= 64, "rx slot ownership is a u64 bitmap");
const _: () = assert!(RX_BIG_SLOTS <= RX_SLOTS);
const _: () = assert!(RX_SLOTS <= u16::MAX as usize);

/// Options of [`AfPacketPort::open_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfPacketOptions {
    /// Ask for `PACKET_VNET_HDR` (offload state with each frame). Default true; when the kernel
    /// refuses, the port falls back to plain mode.
    pub vnet_hdr: bool,
    /// Requested receive buffer in bytes (default 4 MiB).
    pub rcvbuf: usize,
    /// Requested send buffer in bytes (default 4 MiB).
    pub sndbuf: usize,
    /// Use mmap'ed `TPACKET_V2` rx and tx rings (needs `vnet_hdr`; default true). When the
    /// kernel refuses them, the port falls back to `recvmmsg`/`sendmmsg`.
    pub ring: bool,
    /// Set `PACKET_QDISC_BYPASS` (frames sent go straight to the driver: no qdisc, and packet
    /// taps such as tcpdump on the device do not see them). Default false.
    pub qdisc_bypass: bool,
}

impl Default for AfPacketOptions {
    fn default() -> Self {
        Self {
            vnet_hdr: true,
            rcvbuf: 4 << 20,
            sndbuf: 4 << 20,
            ring: true,
            qdisc_bypass: false,
        }
    }
}

/// A packet socket bound to one device.
pub struct AfPacketPort {
    /// Device name.
    name: String,
    /// Device index the socket is bound to.
    ifindex: u32,
    /// The socket, with or without rings.
    io: Io,
    /// True when `PACKET_VNET_HDR` is on (each message starts with a virtio-net header).
    vnet: bool,
    /// Largest non-GSO frame the device takes: MTU + Ethernet header, read at open and
    /// changed with the MTU ([`Port::set_mtu`]).
    max_frame_len: usize,
    /// Rx slots: `VLAN_HLEN` spare bytes, the virtio-net header, the frame.
    rx: MmsgSlots,
    /// Offset of the frame in each rx slot (`RX_FRAME_OFF`, or 4 less with a re-inserted tag).
    rx_off: [u16; RX_SLOTS],
    /// Bit `i` set when rx slot `i` is free.
    rx_free: u64,
    /// Slots offered to the current `recvmmsg`.
    rx_pick: [u16; RX_SLOTS],
    /// What the kernel reported per message of the current `recvmmsg`.
    rx_meta: [RecvMeta; RX_SLOTS],
    /// Tx slots: the virtio-net header (unused in plain mode), then the frame.
    tx: MmsgSlots,
    /// Message length (from the message start) of each queued tx slot.
    tx_len: [u32; TX_SLOTS],
    /// Number of queued tx slots.
    tx_count: usize,
    /// Received frames dropped by the port since the last `take_backend_drops`, other than
    /// the kernel's (`ring_drops`).
    drops: u64,
    /// Frames to send that the port or the kernel refused, since the last
    /// `take_backend_drops`.
    tx_drops: u64,
    /// Frames the kernel dropped because the socket's receive ring (or buffer) was full, since
    /// the last `take_backend_drops`.
    ring_drops: u64,
    /// The first error of a direct send since the last `tx_flush` (other than a full buffer),
    /// which that flush reports.
    tx_err: Option<io::Error>,
    /// Ring mode: the ring slots taken by the current `rx_burst`.
    rx_frames: [RxFrame; BATCH_SIZE],
    /// The options the port was opened with (to rebuild a stopped ring).
    opts: AfPacketOptions,
    /// Ring mode: a frame came in since the last stop check.
    rx_seen: bool,
    /// Ring mode: kernel drops read since the last stop check (by it or by
    /// `take_backend_drops`, which must not hide them from it).
    drops_unchecked: u64,
    /// Ring mode: a stop check saw kernel drops with the ring empty and nothing held, and no
    /// frame has come since.
    stop_suspect: bool,
    /// Times the socket and rings were rebuilt after the kernel stopped the rx ring.
    rebuilds: u64,
    /// Frames the kernel refused with `ENOBUFS` since the last [`AfPacketPort::settle_refused`].
    refused: u64,
    /// The device's `tx_dropped` (opened with the port), and its value at the last
    /// [`AfPacketPort::settle_refused`]: what tells a frame the device dropped from one
    /// dropped before it.
    dev_tx_dropped: Option<netdev::StatFile>,
    dev_tx_dropped_seen: u64,
    /// Ring mode: the last kick failed (the device down): `maintain` kicks only every
    /// [`TX_BLOCKED_RETRY`] calls.
    tx_blocked: bool,
    /// `maintain` calls while `tx_blocked`.
    blocked_calls: u32,
}

/// While the device is down, `maintain` tries a kick once in this many calls (about 64 ms).
const TX_BLOCKED_RETRY: u32 = 64;

/// How the port moves frames.
enum Io {
    /// `recvmmsg`/`sendmmsg` over the `rx`/`tx` slots.
    Mmsg(PacketSocket),
    /// Mapped rings; `rx` holds [`RX_BIG_SLOTS`] slots for frames longer than a ring slot.
    /// The second socket (bound send-only, with a virtio-net header) sends frames longer than a
    /// transmit slot and GSO frames: a socket with a transmit ring sends every `sendmsg` through
    /// that ring.
    Ring(Box<PacketRings>, PacketSocket),
}

impl Io {
    fn sock(&self) -> &PacketSocket {
        match self {
            Self::Mmsg(s) => s,
            Self::Ring(r, _) => r.socket(),
        }
    }

    /// The socket that sends frames given by address (`send_parts`).
    fn direct(&self) -> &PacketSocket {
        match self {
            Self::Mmsg(s) | Self::Ring(_, s) => s,
        }
    }
}

impl std::fmt::Debug for AfPacketPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketPort")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .field("fd", &self.io.sock().as_raw_fd())
            .field("ring", &matches!(self.io, Io::Ring(..)))
            .field("vnet", &self.vnet)
            .field("max_frame_len", &self.max_frame_len)
            .field("rx_free", &format_args!("{:#x}", self.rx_free))
            .field("tx_count", &self.tx_count)
            .finish_non_exhaustive()
    }
}

impl AfPacketPort {
    /// Opens a port on device `name` with default [`AfPacketOptions`].
    ///
    /// # Errors
    /// See [`AfPacketPort::open_with`].
    pub fn open(name: &str) -> Result<Self, PortError> {
        Self::open_with(name, &AfPacketOptions::default())
    }

    /// Opens a port on device `name`.
    ///
    /// # Errors
    /// [`PortError::NoDevice`] when `name` does not exist, [`PortError::Invalid`] for a
    /// malformed name, [`PortError::Sys`] when the socket cannot be opened (`EPERM` without
    /// `CAP_NET_RAW`) or configured.
    pub fn open_with(name: &str, opts: &AfPacketOptions) -> Result<Self, PortError> {
        let sys = |what: &'static str| {
            move |source: io::Error| PortError::Sys {
                name: name.to_owned(),
                what,
                source,
            }
        };
        let ifindex = netdev::ifindex(name).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidInput => PortError::Invalid {
                name: name.to_owned(),
                field: "name",
                reason: e.to_string(),
            },
            _ => PortError::NoDevice {
                name: name.to_owned(),
            },
        })?;
        let mtu = netdev::mtu(name).map_err(sys("SIOCGIFMTU"))?;
        let dev_tx_dropped = netdev::StatFile::open(name, "tx_dropped");
        let mut io = None;
        let mut vnet = false;
        let (mut rcv, mut snd) = (0, 0);
        for ring in [opts.ring, false] {
            let sock = PacketSocket::open().map_err(sys("socket(AF_PACKET)"))?;
            vnet = opts.vnet_hdr
                && match sock.set_vnet_hdr() {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(
                            port = name,
                            error = %e,
                            "afpacket: PACKET_VNET_HDR refused; plain mode without offloads \
                             (frames from local senders may carry incomplete checksums)"
                        );
                        false
                    }
                };
            if let Err(e) = sock.set_auxdata() {
                tracing::warn!(
                    port = name,
                    error = %e,
                    "afpacket: PACKET_AUXDATA refused; VLAN tags stripped by the device are lost"
                );
            }
            if let Err(e) = sock.set_ignore_outgoing() {
                tracing::warn!(
                    port = name,
                    error = %e,
                    "afpacket: PACKET_IGNORE_OUTGOING refused; host-originated frames will be seen"
                );
            }
            if opts.qdisc_bypass
                && let Err(e) = sock.set_qdisc_bypass()
            {
                tracing::warn!(port = name, error = %e, "afpacket: PACKET_QDISC_BYPASS refused");
            }
            rcv = sock
                .set_buffer(SockBuf::Rcv, opts.rcvbuf)
                .map_err(sys("SO_RCVBUF"))?;
            snd = sock
                .set_buffer(SockBuf::Snd, opts.sndbuf)
                .map_err(sys("SO_SNDBUF"))?;
            sock.add_promisc(ifindex)
                .map_err(sys("PACKET_ADD_MEMBERSHIP"))?;
            let max_frame = frame_limit(mtu) + VLAN_HLEN;
            if !(ring && vnet) {
                io = Some(Io::Mmsg(sock));
                break;
            }
            let made = ring_geometry(max_frame)
                .and_then(|(rx, tx)| PacketRings::new(sock, rx, tx))
                .and_then(|rings| Ok((rings, send_only(ifindex, opts)?)));
            match made {
                Ok((rings, direct)) => {
                    io = Some(Io::Ring(Box::new(rings), direct));
                    break;
                }
                // A fresh socket without rings next.
                Err(e) => tracing::warn!(
                    port = name,
                    error = %e,
                    "afpacket: mmap'ed rings refused; using recvmmsg/sendmmsg"
                ),
            }
        }
        let Some(io) = io else {
            return Err(PortError::Sys {
                name: name.to_owned(),
                what: "socket(AF_PACKET)",
                source: io::Error::other("no socket"),
            });
        };
        // The socket receives nothing until this bind (it was opened with protocol 0), so no
        // frame of another device is ever queued on it.
        io.sock().bind(ifindex).map_err(sys("bind"))?;
        let ring = matches!(io, Io::Ring(..));
        let (rx_head, tx_head) = if vnet {
            (VLAN_HLEN, 0)
        } else {
            (RX_FRAME_OFF, VNET_HDR_LEN)
        };
        let (rx_slots, tx_slots) = if ring {
            (RX_BIG_SLOTS, 0)
        } else {
            (RX_SLOTS, TX_SLOTS)
        };
        let max_frame_len = frame_limit(mtu);
        tracing::info!(
            port = name,
            ifindex,
            vnet,
            ring,
            rcvbuf = rcv,
            sndbuf = snd,
            max_frame_len,
            "afpacket port opened"
        );
        Ok(Self {
            name: name.to_owned(),
            ifindex,
            io,
            vnet,
            max_frame_len,
            rx: MmsgSlots::new(rx_slots, SLOT_LEN, rx_head),
            rx_off: [RX_FRAME_OFF as u16; RX_SLOTS],
            rx_free: u64::MAX >> (64 - rx_slots),
            rx_pick: [0; RX_SLOTS],
            rx_meta: [RecvMeta::default(); RX_SLOTS],
            tx: MmsgSlots::new(tx_slots, TX_SLOT_LEN, tx_head),
            tx_len: [0; TX_SLOTS],
            tx_count: 0,
            drops: 0,
            tx_drops: 0,
            ring_drops: 0,
            tx_err: None,
            rx_frames: [RxFrame::default(); BATCH_SIZE],
            opts: *opts,
            rx_seen: false,
            drops_unchecked: 0,
            stop_suspect: false,
            rebuilds: 0,
            refused: 0,
            tx_blocked: false,
            blocked_calls: 0,
            dev_tx_dropped_seen: dev_tx_dropped
                .as_ref()
                .and_then(netdev::StatFile::read)
                .unwrap_or(0),
            dev_tx_dropped,
        })
    }

    /// Settles the frames the kernel refused with `ENOBUFS` since the last call. That error
    /// says a frame was dropped on its way out, not by whom: the device (a veth peer that could
    /// not take it, a busy driver) counts it in its own `tx_dropped`, which the switch reports
    /// as `device` drops, so it is not the port's to count; a qdisc, an egress filter or the
    /// kernel's want of memory does not, and nothing else counts those. So as many refusals as
    /// the device's count grew by since the last call are the device's, and the rest are
    /// counted here. (One `pread`, on this error path only. Drops the device made without a
    /// word since the last call — no carrier — can pass for the device's refusals once.)
    fn settle_refused(&mut self) {
        let refused = std::mem::take(&mut self.refused);
        if refused == 0 {
            return;
        }
        let grown = match self
            .dev_tx_dropped
            .as_ref()
            .and_then(netdev::StatFile::read)
        {
            Some(now) => {
                let g = now.saturating_sub(self.dev_tx_dropped_seen);
                self.dev_tx_dropped_seen = now;
                g
            }
            None => 0,
        };
        self.tx_drops += refused.saturating_sub(grown);
    }

    /// Ring mode, from [`Port::maintain`]: when no frame came since the last check, none waits
    /// in the next slot and no slot is held, looks at the kernel's drops since the last check
    /// (also those `take_backend_drops` read in between). Drops while the ring is empty mean
    /// the kernel has stopped it (a frame whose GSO type a virtio-net header cannot express leaves the head
    /// slot marked as owned, and every later frame is dropped; see the module docs): when two
    /// checks see drops and no frame came in since the first, the port rebuilds its socket and
    /// rings (checks that see no drops in between do not clear the suspicion: a stopped ring
    /// with one frame a second must be rebuilt too). The drops are counted as backend drops
    /// either way. On a busy-polling worker with traffic a stopped ring is rebuilt within
    /// ~2 ms, on a sleeping one within two wake-ups (≤ 200 ms), each at the second dropped frame.
    /// (Checked every 16th empty `rx_burst` before: the `getsockopt` took ~11 % of a worker
    /// forwarding one TCP stream — time it would otherwise have spun; the stream's rate did not
    /// change.)
    fn check_stopped_ring(&mut self) {
        let Io::Ring(rings, _) = &self.io else {
            return;
        };
        // A frame waiting in the next slot counts as one seen: the ring moves (a burst may have
        // overflowed it while the worker slept; those drops are not a stop).
        let moving = rings.rx_ready() || rings.rx_held() != 0;
        let moving = std::mem::take(&mut self.rx_seen) || moving;
        self.read_kernel_drops();
        let kernel = std::mem::take(&mut self.drops_unchecked);
        if moving {
            self.stop_suspect = false;
            return;
        }
        // Quiet: clear an error the kernel left on the socket (its device was down when it was
        // bound, or went down), which would keep a sleeping worker from sleeping: one
        // `getsockopt` a millisecond while polling without traffic, or one a wake-up.
        let _ = self.io.sock().take_error();
        if kernel == 0 {
            // Quiet: no frame, no drop. Suspicion stays until a frame comes in.
        } else if !self.stop_suspect {
            self.stop_suspect = true;
        } else {
            self.rebuild();
        }
    }

    /// Reads (and resets) the kernel's drop count: counted as backend drops, and kept for the
    /// next stop check.
    fn read_kernel_drops(&mut self) {
        let kernel = self
            .io
            .sock()
            .take_stats()
            .map_or(0, |s| u64::from(s.drops));
        self.ring_drops += kernel;
        self.drops_unchecked = self.drops_unchecked.saturating_add(kernel);
    }

    /// Replaces the socket and its rings by fresh ones (the old ones are closed). Frames queued
    /// for transmission and not yet sent are lost, counted; every received frame was released
    /// already.
    fn rebuild(&mut self) {
        match Self::open_with(&self.name, &self.opts) {
            Ok(mut fresh) => {
                let unsent = match &self.io {
                    Io::Ring(rings, _) => u64::from(rings.tx_unsent()),
                    _ => 0,
                };
                fresh.drops = self.drops;
                fresh.tx_drops = self.tx_drops + unsent;
                fresh.ring_drops = self.ring_drops;
                fresh.rebuilds = self.rebuilds + 1;
                // Logged the 1st, 2nd, 4th, 8th … time: a sender that keeps doing it cannot
                // flood the log.
                if fresh.rebuilds.is_power_of_two() {
                    tracing::warn!(
                        port = %self.name,
                        rebuilds = fresh.rebuilds,
                        "afpacket: the kernel stopped the rx ring (a frame whose offload state \
                         a virtio-net header cannot carry); socket and rings rebuilt"
                    );
                }
                *self = fresh;
            }
            Err(e) => {
                tracing::warn!(port = %self.name, error = %e, "afpacket: rebuilding a stopped rx ring failed");
                self.stop_suspect = false;
            }
        }
    }

    /// The device index the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// True when frames carry their offload state (`PACKET_VNET_HDR` is on).
    pub fn has_vnet_hdr(&self) -> bool {
        self.vnet
    }

    /// The rx slot of `desc` and the frame's byte range inside it.
    #[inline]
    fn frame_at(&self, desc: &RxDesc) -> Option<(usize, std::ops::Range<usize>)> {
        let slot = usize::try_from(desc.addr).ok().filter(|&s| s < RX_SLOTS)?;
        let off = usize::from(self.rx_off[slot]);
        let len = usize::try_from(desc.len).ok()?;
        Some((slot, off..off.checked_add(len)?))
    }

    /// Turns message `k` of the last `recvmmsg` into a descriptor; `None` when it is dropped.
    #[inline]
    fn accept(&mut self, k: usize) -> Option<RxDesc> {
        let meta = self.rx_meta[k];
        let slot = usize::from(self.rx_pick[k]);
        let msg_len = meta.len as usize;
        let hdr_len = if self.vnet { VNET_HDR_LEN } else { 0 };
        if meta.truncated || msg_len < hdr_len + ETH_HLEN {
            return None;
        }
        let frame_len = msg_len - hdr_len;
        let bytes = self.rx.slot_mut(slot)?;
        let frame = bytes.get(RX_FRAME_OFF..RX_FRAME_OFF + frame_len)?;
        let mut offload = if self.vnet {
            let hdr: &[u8; VNET_HDR_LEN] = bytes[VLAN_HLEN..RX_FRAME_OFF].try_into().ok()?;
            tun::decode_vnet_hdr(hdr, frame)
        } else {
            Offload::NONE
        };
        let (off, len) = match meta.vlan {
            Some(tag) => reinsert_vlan(bytes, RX_FRAME_OFF, frame_len, tag, &mut offload)?,
            None => (RX_FRAME_OFF, frame_len),
        };
        self.rx_off[slot] = u16::try_from(off).ok()?;
        Some(RxDesc {
            addr: slot as u64,
            len: u32::try_from(len).ok()?,
            offload,
        })
    }
}

impl AfPacketPort {
    /// Sends the queued small frames with `sendmmsg`; frames that fail are counted as drops
    /// (but those the device dropped, which it counts itself) and the first error (other than
    /// a full buffer) is returned.
    fn flush_queued(&mut self) -> io::Result<()> {
        if let Io::Ring(rings, _) = &mut self.io {
            let r = flush_ring(rings, &mut self.tx_count, &mut self.refused);
            self.tx_blocked = r.is_err();
            self.settle_refused();
            return r;
        }
        let mut first_err = None;
        let mut i = 0;
        let mut interrupted = 0;
        let mut stale = false;
        // Each round either sends at least one frame or drops at least one: at most
        // `tx_count` rounds (plus a few EINTR retries).
        while i < self.tx_count {
            match self
                .tx
                .send(self.io.sock(), i, &self.tx_len[i..self.tx_count])
            {
                Ok(0) => {
                    self.tx_drops += (self.tx_count - i) as u64;
                    break;
                }
                Ok(sent) => i += sent,
                Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupted < 3 => {
                    interrupted += 1;
                }
                // A socket error the kernel left when the device went down (see `flush_ring`),
                // reported by this send instead of sending: once, try the same frame again.
                Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) && !stale => {
                    stale = true;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Dropped on its way out (settled below: the device's count, or the
                    // port's): go on with the next.
                    self.refused += 1;
                    i += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Socket send buffer full: the rest would fail the same way now.
                    self.tx_drops += (self.tx_count - i) as u64;
                    break;
                }
                Err(e) => {
                    // This frame is bad (EMSGSIZE, EINVAL) or the device is down (ENETDOWN,
                    // ENXIO): drop it and go on with the next.
                    self.tx_drops += 1;
                    first_err.get_or_insert(e);
                    i += 1;
                }
            }
        }
        self.tx_count = 0;
        self.settle_refused();
        first_err.map_or(Ok(()), Err)
    }

    /// Sends a long frame at once, after flushing what is queued (so frames leave in order).
    /// Always true: a frame the kernel does not take is a counted backend drop.
    fn send_direct(&mut self, frame: &[u8], offload: &Offload) -> bool {
        if self.tx_count > 0 {
            // Frames the flush could not send are counted; its error waits for the next flush.
            if let Err(e) = self.flush_queued() {
                self.tx_err.get_or_insert(e);
            }
        }
        let mut hdr = [0u8; VNET_HDR_LEN];
        let head: &[u8] = if self.vnet {
            tun::encode_vnet_hdr(offload, &mut hdr);
            &hdr
        } else {
            &[]
        };
        for _ in 0..3 {
            match self.io.direct().send_parts(head, frame) {
                Ok(_) => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Dropped on its way out: the device's count, or the port's.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.refused += 1;
                    self.settle_refused();
                    return true;
                }
                // Full send buffer: dropped, as a flush would.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // A frame the device refuses (EMSGSIZE/EINVAL), the device down or gone:
                // dropped, and reported by the next flush.
                Err(e) => {
                    self.tx_err.get_or_insert(e);
                    break;
                }
            }
        }
        self.tx_drops += 1;
        true
    }
}

/// A send-only packet socket on `ifindex` with a virtio-net header, for `send_parts`.
fn send_only(ifindex: u32, opts: &AfPacketOptions) -> io::Result<PacketSocket> {
    let s = PacketSocket::open()?;
    s.set_vnet_hdr()?;
    if opts.qdisc_bypass {
        // Same path as the ring's frames; a refusal was logged for the ring's socket.
        let _ = s.set_qdisc_bypass();
    }
    s.set_buffer(SockBuf::Snd, opts.sndbuf)?;
    s.bind_send_only(ifindex)?;
    Ok(s)
}

/// The longest frame without GSO a device of MTU `mtu` takes: the MTU and the Ethernet header
/// (a VLAN tag may add 4, see `tx_enqueue`).
fn frame_limit(mtu: u32) -> usize {
    usize::try_from(mtu)
        .unwrap_or(usize::MAX)
        .saturating_add(ETH_HLEN)
}

/// The rx and tx ring layouts for frames of up to `max_frame` bytes (MTU, Ethernet header and
/// a VLAN tag), within [`RX_RING_BYTES`] and [`TX_RING_BYTES`].
fn ring_geometry(max_frame: usize) -> io::Result<(RingGeometry, RingGeometry)> {
    Ok((
        RingGeometry::for_rx(max_frame, RX_RING_BYTES, RX_RING_FRAMES)?,
        RingGeometry::new(max_frame, TX_RING_BYTES, TX_RING_FRAMES)?,
    ))
}

/// Puts a VLAN tag the device stripped back into the frame of `frame_len` bytes at `at` in
/// `slot` (`at >= VLAN_HLEN`): the MAC addresses move 4 bytes towards the slot start and the
/// tag goes after them. Offsets in `offload` are moved along. Returns the frame's new offset
/// and length.
fn reinsert_vlan(
    slot: &mut [u8],
    at: usize,
    frame_len: usize,
    (tpid, tci): (u16, u16),
    offload: &mut Offload,
) -> Option<(usize, usize)> {
    const MACS: usize = 12;
    if frame_len < ETH_HLEN || at < VLAN_HLEN || slot.len() < at + frame_len {
        return None;
    }
    let start = at - VLAN_HLEN;
    slot.copy_within(at..at + MACS, start);
    slot[start + MACS..start + MACS + 2].copy_from_slice(&tpid.to_be_bytes());
    slot[start + MACS + 2..start + MACS + 4].copy_from_slice(&tci.to_be_bytes());
    if offload.needs_csum() {
        offload.csum_start = offload.csum_start.checked_add(VLAN_HLEN as u16)?;
    }
    if offload.hdr_len != 0 {
        offload.hdr_len = offload.hdr_len.checked_add(VLAN_HLEN as u16)?;
    }
    Some((start, frame_len + VLAN_HLEN))
}

/// Most kicks of one ring flush: each frame dropped on its way out ends a kick (see
/// `flush_ring`).
const RING_KICKS: usize = 64;

/// Kicks the transmit ring when `queued` frames were pushed since the last kick (one `send`
/// normally; again only while the kernel stops early on a dropped frame, at most
/// [`RING_KICKS`] in all), then takes back the slots the kernel is done with. Frames the
/// kernel could not take now (a full socket send buffer) stay queued for the next kick.
/// Frames refused with `ENOBUFS` are added to `refused`.
fn flush_ring(rings: &mut PacketRings, queued: &mut usize, refused: &mut u64) -> io::Result<()> {
    let mut first_err = None;
    let mut stale = false;
    if *queued > 0 {
        for _ in 0..RING_KICKS {
            match rings.tx_kick() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The kernel leaves `ENETDOWN` on the socket when its device goes down, and the
                // next send reports it (clearing it) before looking at any slot, even once the
                // device is up again: kick once more, which fails the same way only while the
                // device is really down.
                Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) && !stale => {
                    stale = true;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // A frame was dropped on its way out (a veth peer that could not take it: a
                // full backlog, an MTU smaller than the frame; a qdisc) and the kernel stopped
                // there, the frame left queued: skipped, so that the next kick goes on after
                // it instead of trying it again (for ever, when the peer's MTU is the cause).
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    if rings.tx_skip_refused() {
                        *refused += 1;
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                    break;
                }
            }
            if !rings.tx_waiting() {
                break;
            }
        }
        *queued = 0;
    }
    rings.tx_reclaim();
    first_err.map_or(Ok(()), Err)
}

/// Turns ring frame `f` (held) into a descriptor pointing into its slot; `None` when it is
/// dropped (cut, shorter than an Ethernet header, or a tag that cannot be put back).
#[inline]
fn ring_accept(rings: &mut PacketRings, f: &RxFrame) -> Option<RxDesc> {
    let (off, len) = (f.off as usize, f.snaplen as usize);
    if f.snaplen != f.len || len < ETH_HLEN || off < VNET_HDR_LEN {
        return None;
    }
    let bytes = rings.rx_bytes_mut(f.slot)?;
    let hdr: &[u8; VNET_HDR_LEN] = bytes.get(off - VNET_HDR_LEN..off)?.try_into().ok()?;
    let frame = bytes.get(off..off.checked_add(len)?)?;
    let mut offload = tun::decode_vnet_hdr(hdr, frame);
    // The tag goes over the virtio-net header, which was just read.
    let (off, len) = match f.vlan {
        Some(tag) => reinsert_vlan(bytes, off, len, tag, &mut offload)?,
        None => (off, len),
    };
    Some(RxDesc {
        addr: RING_ADDR | (u64::try_from(off).ok()? << 32) | u64::from(f.slot),
        len: u32::try_from(len).ok()?,
        offload,
    })
}

impl AfPacketPort {
    /// `rx_burst` in ring mode: takes filled ring slots in order (no syscall), and reads the
    /// full copies of frames too long for a slot with one `recvmmsg` into the big rx slots.
    fn rx_burst_ring(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        let Io::Ring(rings, _) = &mut self.io else {
            return Ok(0);
        };
        // Slots for frames longer than a ring slot, picked only once one is taken (a port
        // polled every pass, as a split port's, mostly finds its ring empty).
        let big = (self.rx_free.count_ones() as usize).min(RX_BIG_SLOTS);
        let mut k = 0;
        let mut copies = 0;
        while k < batch.room() {
            let Some(f) = rings.rx_next(copies < big) else {
                break;
            };
            copies += usize::from(f.copied);
            self.rx_frames[k] = f;
            k += 1;
        }
        if k == 0 {
            return Ok(0);
        }
        self.rx_seen = true;
        let mut got_copies = 0;
        if copies > 0 {
            let mut free = self.rx_free;
            for pick in &mut self.rx_pick[..copies] {
                let slot = free.trailing_zeros();
                free &= free - 1;
                *pick = slot as u16;
            }
            // Every copied slot's copy is queued on the socket (the kernel queues it before it
            // hands the slot over), in slot order: they must all be read now, or the next
            // burst's copied slots would be paired with this burst's copies. A pending socket
            // error (`ENETDOWN` left by a link flap) is reported before any queued message,
            // and reading it clears it; an error after some messages ends `recvmmsg` early
            // (and is left pending): read on from where it stopped.
            for _ in 0..RX_TRIES {
                if got_copies == copies {
                    break;
                }
                match self.rx.recv(
                    rings.socket(),
                    &self.rx_pick[got_copies..copies],
                    &mut self.rx_meta[got_copies..copies],
                ) {
                    Ok(0) => break,
                    Ok(n) => got_copies += n,
                    // As in mmsg mode: a frame the kernel could not describe, dropped.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.drops += 1,
                    Err(_) => {}
                }
            }
        }
        let mut got = 0;
        let mut ci = 0;
        for j in 0..k {
            let f = self.rx_frames[j];
            let desc = if f.copied {
                ci += 1;
                if ci <= got_copies {
                    self.accept(ci - 1)
                } else {
                    None
                }
            } else if let Io::Ring(rings, _) = &mut self.io {
                ring_accept(rings, &f)
            } else {
                None
            };
            let kept = desc.is_some_and(|d| {
                let pushed = batch.push(d);
                if pushed && d.addr & RING_ADDR == 0 {
                    self.rx_free &= !(1u64 << d.addr);
                }
                pushed
            });
            if kept {
                got += 1;
            } else {
                self.drops += 1;
            }
            // A copied frame's slot holds only its cut head; a dropped frame's nothing we need.
            if (f.copied || !kept)
                && let Io::Ring(rings, _) = &mut self.io
            {
                rings.rx_release(f.slot);
            }
        }
        Ok(got)
    }

    /// `rx_burst` in mmsg mode: one `recvmmsg` into free rx slots.
    fn rx_burst_mmsg(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        let mut want = 0;
        let mut free = self.rx_free;
        while want < batch.room() && free != 0 {
            let slot = free.trailing_zeros();
            free &= free - 1;
            self.rx_pick[want] = slot as u16;
            want += 1;
        }
        if want == 0 {
            return Ok(0);
        }
        let mut n = 0;
        for _ in 0..RX_TRIES {
            match self.rx.recv(
                self.io.sock(),
                &self.rx_pick[..want],
                &mut self.rx_meta[..want],
            ) {
                Ok(got) => {
                    n = got;
                    break;
                }
                // The kernel could not express a frame's offload state in a virtio-net header
                // (e.g. a tunnel GSO type) and dropped it; the next ones may be fine.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.drops += 1,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut got = 0;
        for k in 0..n {
            match self.accept(k) {
                Some(desc) => {
                    let slot = desc.addr;
                    if batch.push(desc) {
                        self.rx_free &= !(1u64 << slot);
                        got += 1;
                    } else {
                        self.drops += 1;
                    }
                }
                None => self.drops += 1,
            }
        }
        Ok(got)
    }

    /// True when the port runs on mmap'ed rings.
    pub fn has_rings(&self) -> bool {
        matches!(self.io, Io::Ring(..))
    }

    /// Times the socket and rings were rebuilt after the kernel stopped the rx ring.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// True when a received frame is known to wait that the last `rx_burst` did not take (in
    /// ring mode: the next slot is the caller's to take; a burst stops early when the batch or
    /// the slots for long frames run out). False in mmsg mode, which cannot tell without a
    /// system call.
    #[inline]
    pub fn rx_pending(&self) -> bool {
        match &self.io {
            Io::Ring(rings, _) => rings.rx_ready(),
            Io::Mmsg(_) => false,
        }
    }
}

impl Port for AfPacketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::AfPacket
    }

    /// The rings keep the slots they were sized with at open: a frame longer than a slot is
    /// received by copy and sent by `sendmsg`, as GSO frames are.
    fn set_mtu(&mut self, mtu: u32) {
        let len = frame_limit(mtu);
        if len != self.max_frame_len {
            tracing::info!(port = %self.name, mtu, "afpacket port follows its device's MTU");
            self.max_frame_len = len;
        }
    }

    fn caps(&self) -> PortCaps {
        PortCaps {
            tx_offload: self.vnet,
            // The header of `PACKET_VNET_HDR` has no room for the tunnel.
            tx_udp_tunnel: false,
            max_frame_len: self.max_frame_len,
        }
    }

    fn rx_queues(&self) -> usize {
        1
    }

    fn rx_burst(&mut self, queue: usize, batch: &mut RxBatch) -> io::Result<usize> {
        if queue != 0 {
            return Ok(0);
        }
        match self.io {
            Io::Ring(..) => self.rx_burst_ring(batch),
            Io::Mmsg(_) => self.rx_burst_mmsg(batch),
        }
    }

    fn frame(&self, desc: &RxDesc) -> &[u8] {
        if desc.addr & RING_ADDR != 0 {
            let (slot, r) = ring_range(desc);
            return match &self.io {
                Io::Ring(rings, _) => rings.rx_bytes(slot).and_then(|b| b.get(r)),
                Io::Mmsg(_) => None,
            }
            .unwrap_or(&[]);
        }
        self.frame_at(desc)
            .and_then(|(slot, r)| self.rx.slot(slot)?.get(r))
            .unwrap_or(&[])
    }

    fn frame_mut(&mut self, desc: &RxDesc) -> &mut [u8] {
        if desc.addr & RING_ADDR != 0 {
            let (slot, r) = ring_range(desc);
            return match &mut self.io {
                Io::Ring(rings, _) => rings.rx_bytes_mut(slot).and_then(|b| b.get_mut(r)),
                Io::Mmsg(_) => None,
            }
            .unwrap_or(&mut []);
        }
        match self.frame_at(desc) {
            Some((slot, r)) => self
                .rx
                .slot_mut(slot)
                .and_then(|s| s.get_mut(r))
                .unwrap_or(&mut []),
            None => &mut [],
        }
    }

    fn rx_release(&mut self, _queue: usize, batch: &RxBatch) {
        for d in batch.descs() {
            if d.addr & RING_ADDR != 0 {
                if let Io::Ring(rings, _) = &mut self.io {
                    rings.rx_release(ring_range(d).0);
                }
            } else if d.addr < self.rx.count() as u64 {
                self.rx_free |= 1u64 << d.addr;
            }
        }
    }

    fn tx_enqueue(&mut self, frame: &[u8], offload: &Offload) -> bool {
        if self.tx_count == TX_SLOTS && !self.has_rings() {
            return false;
        }
        // Like the kernel: a frame beyond MTU + Ethernet header needs GSO, or a VLAN tag for 4
        // more bytes. `sendmsg`/`sendmmsg` allow them to an 802.1Q tag only
        // (`packet_extra_vlan_len_allowed`); the tx ring's send leaves the length to the
        // device, which (veth, a bridge) allows them to 802.1ad as well.
        let vlan = match frame.get(12..14) {
            Some([0x81, 0x00]) => true,
            Some([0x88, 0xa8]) => self.has_rings(),
            _ => false,
        };
        let limit = self.max_frame_len + if vlan { 4 } else { 0 };
        let too_big =
            frame.len() > SLOT_LEN - VNET_HDR_LEN || (frame.len() > limit && !offload.is_gso());
        if frame.len() < ETH_HLEN || too_big || (!self.vnet && !offload.is_none()) {
            // The kernel would refuse it (EMSGSIZE/EINVAL): drop it here, counted.
            self.tx_drops += 1;
            return true;
        }
        if let Io::Ring(rings, _) = &mut self.io {
            // GSO frames, and frames longer than a slot, go by `sendmsg`, where the kernel's
            // verdict on them is seen.
            if offload.is_gso() || frame.len() > rings.tx_geometry().room() {
                return self.send_direct(frame, offload);
            }
            let csum_end = usize::from(offload.csum_start) + usize::from(offload.csum_offset) + 2;
            // `virtio_net_hdr_to_skb` also wants the checksummed part to start after an IPv4
            // header's length (`nh_min_len`); a slot it refuses is skipped (`PACKET_LOSS`)
            // without a word.
            if offload.needs_csum()
                && (csum_end > frame.len() || usize::from(offload.csum_start) < CSUM_START_MIN)
            {
                // The kernel would refuse it (EINVAL).
                self.tx_drops += 1;
                return true;
            }
            if rings.tx_free() == 0 && rings.tx_reclaim().sent == 0 {
                return false;
            }
            let pushed = rings.tx_push(frame.len(), offload, |b| b.copy_from_slice(frame));
            self.tx_count += usize::from(pushed);
            return pushed;
        }
        if frame.len() > DIRECT_TX_MIN {
            return self.send_direct(frame, offload);
        }
        let slot = self.tx_count;
        let Some(buf) = self.tx.slot_mut(slot) else {
            return false;
        };
        let (hdr, data) = buf.split_at_mut(VNET_HDR_LEN);
        if self.vnet {
            let hdr: &mut [u8; VNET_HDR_LEN] = hdr.try_into().expect("split at VNET_HDR_LEN");
            tun::encode_vnet_hdr(offload, hdr);
        }
        data[..frame.len()].copy_from_slice(frame);
        let hdr_len = if self.vnet { VNET_HDR_LEN } else { 0 };
        // Fits: checked against SLOT_LEN above.
        self.tx_len[slot] = u32::try_from(hdr_len + frame.len()).unwrap_or(u32::MAX);
        self.tx_count += 1;
        true
    }

    fn tx_flush(&mut self) -> io::Result<()> {
        let queued = self.flush_queued();
        match self.tx_err.take() {
            Some(e) => Err(e),
            None => queued,
        }
    }

    fn close(&mut self) -> BackendDrops {
        let _ = self.tx_flush();
        if let Io::Ring(rings, _) = &self.io {
            self.tx_drops += u64::from(rings.tx_unsent());
        }
        self.take_backend_drops()
    }

    fn take_backend_drops(&mut self) -> BackendDrops {
        self.read_kernel_drops();
        BackendDrops {
            rx_ring_full: std::mem::take(&mut self.ring_drops),
            no_rx_buffer: 0,
            other: std::mem::take(&mut self.drops),
            tx: std::mem::take(&mut self.tx_drops),
        }
    }

    fn maintain(&mut self) {
        self.check_stopped_ring();
        // Frames a ring flush left queued (a full send buffer, its last kicks spent on dropped
        // frames) go with the next flush, which comes when a frame is next queued here: if
        // none has come, they go now. While kicks fail (the device down: `ENETDOWN`) only now
        // and then: a system call a millisecond would be for nothing.
        if let Io::Ring(rings, _) = &mut self.io
            && rings.tx_waiting()
        {
            // While kicks fail, one kick every `TX_BLOCKED_RETRY` calls: the frames left
            // queued go soon after the device is up again, even when no new frame comes.
            if self.tx_blocked {
                self.blocked_calls = self.blocked_calls.wrapping_add(1);
                if !self.blocked_calls.is_multiple_of(TX_BLOCKED_RETRY) {
                    return;
                }
            }
            let mut pending = 1;
            self.tx_blocked = flush_ring(rings, &mut pending, &mut self.refused).is_err();
            self.settle_refused();
        }
    }

    fn rx_fd(&self, queue: usize) -> Option<RawFd> {
        (queue == 0).then(|| self.io.sock().as_raw_fd())
    }
}

/// The ring slot of a ring descriptor and the frame's byte range in [`PacketRings::rx_bytes`].
#[inline]
fn ring_range(desc: &RxDesc) -> (u32, std::ops::Range<usize>) {
    let slot = (desc.addr & 0xffff_ffff) as u32;
    let off = ((desc.addr & !RING_ADDR) >> 32) as usize;
    (slot, off..off + desc.len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stripped_vlan_tag_is_put_back_and_offsets_follow() {
        let mut slot = vec![0u8; 200];
        let frame: Vec<u8> = (0..60).collect();
        slot[RX_FRAME_OFF..RX_FRAME_OFF + 60].copy_from_slice(&frame);
        let mut o = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let (off, len) =
            reinsert_vlan(&mut slot, RX_FRAME_OFF, 60, (0x8100, 0x6064), &mut o).expect("fits");
        assert_eq!((off, len), (RX_FRAME_OFF - 4, 64));
        let f = &slot[off..off + len];
        assert_eq!(&f[..12], &frame[..12]);
        assert_eq!(&f[12..16], &[0x81, 0x00, 0x60, 0x64]);
        assert_eq!(&f[16..], &frame[12..]);
        assert_eq!((o.csum_start, o.hdr_len, o.csum_offset), (38, 58, 16));

        let mut plain = Offload::NONE;
        reinsert_vlan(&mut slot, RX_FRAME_OFF, 60, (0x8100, 1), &mut plain).expect("fits");
        assert_eq!(plain, Offload::NONE);
        assert!(reinsert_vlan(&mut slot, RX_FRAME_OFF, 10, (0x8100, 1), &mut plain).is_none());
    }
}
