//! Ports: one trait, several real backends (hot path for rx/tx, slow path for open/close).
//!
//! | backend | module | use |
//! |---|---|---|
//! | AF_XDP | [`afxdp`] | veth and NICs: XSK rings + UMEM, redirect program attached by bpf_link |
//! | TAP | [`tap`] | tap devices with `IFF_VNET_HDR`: GSO/checksum offload end to end |
//! | AF_PACKET | [`afpacket`] | any netdev; the `auto` choice on veth (keeps TSO), fallback when AF_XDP is unavailable |
//! | mem | [`mem`] | in-memory, for unit tests and benches |
//!
//! [`select`] decides what an `auto` port gets (AF_PACKET on veth, AF_XDP elsewhere).
//!
//! Contract between a port and the worker that owns it:
//! - `rx_burst` appends up to `batch.room()` frames and never blocks; the bytes stay valid and
//!   untouched by the port until `rx_release` is called for that batch.
//! - `tx_enqueue` copies the frame into the port's own tx memory and returns `false` when the tx
//!   queue has no room (the worker counts `DropReason::TxQueueFull`); `tx_flush` pushes what was
//!   queued to the device, with as few syscalls as the backend allows (one kick per batch).
//! - A port whose [`PortCaps::tx_offload`] is false is only given frames with [`Offload::NONE`].
//! - Every method is called by one worker thread; a port is `Send` but never shared.

pub mod afpacket;
pub mod afxdp;
pub mod gone;
pub mod mem;
pub mod select;
pub mod tap;

use std::fmt;
use std::io;
use std::os::fd::RawFd;

use crate::buf::{Offload, RxBatch, RxDesc};

/// Frames a port's backend dropped, by cause ([`Port::take_backend_drops`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendDrops {
    /// Received frames the kernel could not queue because the receive ring was full: the
    /// worker did not take them fast enough (an AF_XDP socket's RX ring, an AF_PACKET ring).
    pub rx_ring_full: u64,
    /// Received frames the kernel had no buffer for: an AF_XDP socket's FILL ring was empty
    /// (every receive chunk waiting in the RX ring or held by the worker).
    pub no_rx_buffer: u64,
    /// Received frames dropped for anything else (invalid ring descriptors, a frame larger
    /// than a buffer, one the kernel could not describe, …).
    pub other: u64,
    /// Frames to send that the backend could not: the kernel refused them (too long for the
    /// device, a bad offload state), the device was down, its send buffer full, ….
    pub tx: u64,
}

impl std::ops::AddAssign for BackendDrops {
    fn add_assign(&mut self, d: Self) {
        self.rx_ring_full += d.rx_ring_full;
        self.no_rx_buffer += d.no_rx_buffer;
        self.other += d.other;
        self.tx += d.tx;
    }
}

impl BackendDrops {
    /// Drops of every cause.
    pub fn total(&self) -> u64 {
        self.rx_ring_full + self.no_rx_buffer + self.other + self.tx
    }

    /// Received frames dropped for no particular cause (`rx`), and frames to send that
    /// could not be (`tx`).
    pub fn other(rx: u64, tx: u64) -> Self {
        Self {
            other: rx,
            tx,
            ..Self::default()
        }
    }
}

/// What kind of backend a port is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// AF_XDP socket on a netdev queue.
    AfXdp,
    /// TAP device (`/dev/net/tun`, `IFF_TAP | IFF_VNET_HDR`).
    Tap,
    /// AF_PACKET socket bound to a netdev.
    AfPacket,
    /// In-memory port.
    Mem,
}

impl PortKind {
    /// The name used in configuration, the control protocol and `vsctl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AfXdp => "afxdp",
            Self::Tap => "tap",
            Self::AfPacket => "afpacket",
            Self::Mem => "mem",
        }
    }
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a port can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortCaps {
    /// The port accepts frames with pending checksum/GSO work ([`Offload`]) on tx.
    pub tx_offload: bool,
    /// With `tx_offload`: the port also carries UDP-tunnel GSO super-frames whole
    /// ([`Offload::is_tunnel`]; a TAP whose kernel took `TUN_F_UDP_TUNNEL_GSO`).
    pub tx_udp_tunnel: bool,
    /// Largest frame (bytes, from the Ethernet header) the port can transmit without GSO.
    pub max_frame_len: usize,
}

/// Setup errors of ports.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The named network device does not exist.
    #[error("device {name} not found")]
    NoDevice {
        /// Device name.
        name: String,
    },
    /// A system call failed while opening or configuring the port.
    #[error("{what} failed on {name}: {source}")]
    Sys {
        /// Device name.
        name: String,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The backend is not usable on this device (the caller may fall back to another one).
    #[error("{kind} not supported on {name}: {reason}")]
    Unsupported {
        /// Device name.
        name: String,
        /// Backend that was tried.
        kind: PortKind,
        /// Why.
        reason: String,
    },
    /// An invalid parameter (queue count, ring size, …).
    #[error("invalid {field} for {name}: {reason}")]
    Invalid {
        /// Device name.
        name: String,
        /// The offending parameter.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
}

impl PortError {
    /// Wraps the current `errno` for `what` on device `name`.
    pub fn last_os(name: &str, what: &'static str) -> Self {
        Self::Sys {
            name: name.to_owned(),
            what,
            source: io::Error::last_os_error(),
        }
    }
}

/// One port backend, driven by the worker that owns it. See the module docs for the contract.
pub trait Port: Send + fmt::Debug {
    /// Device name (or a test name for mem ports).
    fn name(&self) -> &str;
    /// Backend kind.
    fn kind(&self) -> PortKind;
    /// Capabilities.
    fn caps(&self) -> PortCaps;
    /// Number of rx queues this port polls.
    fn rx_queues(&self) -> usize;
    /// Receives up to `batch.room()` frames from rx queue `queue`, appending to `batch`.
    /// Never blocks; returns the number appended.
    ///
    /// # Errors
    /// An I/O error of the device; the worker counts it and goes on.
    fn rx_burst(&mut self, queue: usize, batch: &mut RxBatch) -> io::Result<usize>;
    /// The bytes of a frame received in the current, not yet released, batch.
    fn frame(&self, desc: &RxDesc) -> &[u8];
    /// The bytes of a received frame, writable (for in-place rewrites).
    fn frame_mut(&mut self, desc: &RxDesc) -> &mut [u8];
    /// Gives the buffers of `batch` (received on `queue`) back to the port.
    fn rx_release(&mut self, queue: usize, batch: &RxBatch);
    /// Copies a frame into the tx queue; `false` when there is no room.
    fn tx_enqueue(&mut self, frame: &[u8], offload: &Offload) -> bool;
    /// Pushes queued frames to the device.
    ///
    /// # Errors
    /// An I/O error of the device. Frames that could not be sent are dropped and counted
    /// ([`BackendDrops::tx`]), or, where the backend keeps them queued for the next kick (a
    /// transmit ring), left queued.
    fn tx_flush(&mut self) -> io::Result<()>;
    /// Frames dropped by the backend itself since the last call, by cause (kernel-side drops
    /// reported by the socket, a device that refused a frame, …).
    fn take_backend_drops(&mut self) -> BackendDrops {
        BackendDrops::default()
    }
    /// The last call before the port is dropped (deleted, its device gone, the worker
    /// stopping): pushes out what it can, and returns the drops not yet taken
    /// ([`Port::take_backend_drops`]) together with the frames it still held for sending,
    /// which closing loses: frames a transmit ring kept for the next kick (its device down,
    /// say) count as transmit drops here.
    fn close(&mut self) -> BackendDrops {
        // (A frame the flush could not send is counted in the drops taken next.)
        let _ = self.tx_flush();
        self.take_backend_drops()
    }
    /// Housekeeping that must not cost a system call per `rx_burst`: the worker calls it about
    /// every [`MAINTAIN_MS`](crate::worker::MAINTAIN_MS) millisecond while it polls, and
    /// after each sleep (at most [`MAX_SLEEP`](crate::worker::MAX_SLEEP) apart).
    fn maintain(&mut self) {}
    /// A file descriptor that becomes readable when rx queue `queue` has frames, for workers
    /// that sleep instead of polling; `None` if the port cannot wake a sleeper.
    fn rx_fd(&self, queue: usize) -> Option<RawFd>;
    /// A second descriptor that becomes readable when rx queue `queue` has frames (a split
    /// AF_XDP port's queue 0 also polls an AF_PACKET socket); a sleeping worker watches both.
    fn rx_extra_fd(&self, _queue: usize) -> Option<RawFd> {
        None
    }
    /// How an AF_XDP port's program is attached (`None` for other backends), for reports.
    fn xdp_attachment(&self) -> Option<afxdp::XdpAttachment> {
        None
    }
    /// The port's device is gone ([`gone::GonePort`]): what is sent to it is dropped as sent
    /// to a port that is down. Asked only when a frame could not be queued.
    fn is_gone(&self) -> bool {
        false
    }
    /// The device's MTU changed to `mtu` after the port opened (the control thread saw it):
    /// frames of up to `mtu` bytes plus the Ethernet header go out without GSO from now on,
    /// longer ones are refused as the kernel would. Backends whose limit is not the MTU (a
    /// tap, native AF_XDP's chunk) keep theirs.
    fn set_mtu(&mut self, _mtu: u32) {}
}
