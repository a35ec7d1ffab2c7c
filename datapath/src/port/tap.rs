//! TAP port: a `/dev/net/tun` device with `IFF_VNET_HDR`, so GSO super-frames and partial
//! checksums cross the switch untouched (hot path for rx/tx, slow path for open/drop).
//!
//! ## Life cycle
//! [`TapPort::open`] attaches to the TAP device `name`, creating it when it does not exist. A
//! device the switch created is not persistent: the kernel deletes it when the port (its only
//! file descriptor) is dropped. A persistent device made beforehand (`ip tuntap add mode tap`)
//! is only attached to and stays when the port is dropped. The usual pattern is to open the
//! port in the host namespace and then move the device into a container
//! (`ip link set tapX netns c1`): the descriptor keeps working across the move, and the link is
//! brought up inside the container. [`TapOptions::link_up`] brings it up at open instead.
//!
//! ## Offloads
//! At open the port negotiates `TUNSETOFFLOAD` checksum + TSO4/TSO6/ECN + USO4/USO6 (falling
//! back to TSO only, then checksum only, then nothing, on older kernels). The device then
//! advertises those features to the stack that transmits through it, so a container's TCP hands
//! the switch ~64 KB segments with a partial checksum: the frames arrive with
//! [`Offload::GSO_TCPV4`]/[`Offload::F_NEEDS_CSUM`] set, offsets relative to the Ethernet header.
//! On transmit the [`Offload`] of each frame goes into its virtio-net header and the kernel
//! segments or completes the checksum as the receiving side needs, so [`PortCaps::tx_offload`]
//! is true.
//!
//! First the port asks for the UDP-tunnel offloads too (`TUN_F_UDP_TUNNEL_GSO{,_CSUM}`, Linux
//! 6.17+) with the 24-byte tunnel form of the header ([`tun::VNET_TNL_HDR_LEN`]): a container
//! that runs VXLAN or Geneve itself then hands over its tunnel super-frames whole, marked as
//! such, and the port writes them whole to its own container, with the outer UDP and inner IP
//! offsets the kernel needs ([`tun::encode_tnl_vnet_hdr`]; [`PortCaps::tx_udp_tunnel`]). Where
//! the kernel refuses, the port keeps the 10-byte header and such frames are segmented by the
//! switch before they reach it.
//!
//! ## Memory and syscalls
//! 64 rx slots of [`SLOT_LEN`] bytes each (virtio-net header + up to 64 KiB frame) are allocated
//! once at open. `rx_burst` does one `read` per frame until `EAGAIN` or the batch is full.
//! TUN has no batched read or write (the documented exception to "one syscall per batch",
//! docs: STYLE 2.3 rule 4), so queueing frames for a flush would buy nothing: `tx_enqueue`
//! writes each frame at once with one `writev` of its virtio-net header (built on the stack)
//! and the caller's bytes, straight from the rx slot of the port it came from. A 64 KB GSO
//! frame is thus copied twice on its way through the switch (kernel → rx slot, rx slot →
//! kernel) instead of three times, and `tx_flush` has nothing left to do.
//!
//! Thread-safety: owned and driven by one worker (`Send`, not shared).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::buf::{BATCH_SIZE, Offload, RxBatch, RxDesc};
use crate::port::{BackendDrops, Port, PortCaps, PortError, PortKind};
use crate::sys::netdev;
use crate::sys::tun::{self, TunFd, VNET_HDR_LEN, VNET_TNL_HDR_LEN};

/// Bytes per rx slot: the virtio-net header, then a frame of up to 64 KiB plus headers.
pub const SLOT_LEN: usize = 66 * 1024;

/// Largest frame carried (from the Ethernet header): 64 KiB IP datagram + Ethernet header.
pub const MAX_FRAME_LEN: usize = 65535 + 14;

/// Number of rx slots (frames held by unreleased batches plus the one being read).
const RX_SLOTS: usize = 64;

const _: () = assert!(RX_SLOTS <= 64, "rx slot ownership is a u64 bitmap");
const _: () = assert!(MAX_FRAME_LEN + VNET_TNL_HDR_LEN <= SLOT_LEN);

/// Options of [`TapPort::open_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TapOptions {
    /// Set the link administratively up (`IFF_UP`) after attaching. Off by default: the device
    /// is usually moved into a container namespace and brought up there.
    pub link_up: bool,
}

/// A TAP device attached with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`.
pub struct TapPort {
    /// Device name as the kernel reported it.
    name: String,
    /// The attached queue.
    fd: TunFd,
    /// True when the device did not exist before `open` (the switch created it).
    created: bool,
    /// `TUN_F_*` offloads the kernel accepted.
    offloads: u32,
    /// Length of the virtio-net header in front of each frame: [`VNET_TNL_HDR_LEN`] when the
    /// kernel took the UDP-tunnel offloads, else [`VNET_HDR_LEN`].
    hdr_len: usize,
    /// `RX_SLOTS * SLOT_LEN` bytes; slot `i` holds the virtio-net header then the frame.
    rx: Box<[u8]>,
    /// Bit `i` set when rx slot `i` is free (not handed out in an unreleased batch).
    rx_free: u64,
    /// Frames dropped by the backend since the last `take_backend_drops`.
    drops: u64,
    /// The first write error since the last `tx_flush` (other than a full queue), which that
    /// flush reports.
    tx_err: Option<io::Error>,
}

impl std::fmt::Debug for TapPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapPort")
            .field("name", &self.name)
            .field("fd", &self.fd.as_raw_fd())
            .field("created", &self.created)
            .field("persistent", &self.fd.is_persistent())
            .field("offloads", &format_args!("{:#x}", self.offloads))
            .field("rx_free", &format_args!("{:#x}", self.rx_free))
            .finish_non_exhaustive()
    }
}

/// Maps an OS error at open to a [`PortError`].
fn open_error(name: &str, what: &'static str, e: io::Error) -> PortError {
    if e.kind() == io::ErrorKind::InvalidInput {
        return PortError::Invalid {
            name: name.to_owned(),
            field: "name",
            reason: e.to_string(),
        };
    }
    if what == "open /dev/net/tun" && e.kind() == io::ErrorKind::NotFound {
        return PortError::Unsupported {
            name: name.to_owned(),
            kind: PortKind::Tap,
            reason: "/dev/net/tun is missing".to_owned(),
        };
    }
    PortError::Sys {
        name: name.to_owned(),
        what,
        source: e,
    }
}

impl TapPort {
    /// Attaches to the TAP device `name`, creating it if needed, with default [`TapOptions`]
    /// (link left as it is).
    ///
    /// # Errors
    /// See [`TapPort::open_with`].
    pub fn open(name: &str) -> Result<Self, PortError> {
        Self::open_with(name, &TapOptions::default())
    }

    /// Attaches to the TAP device `name` (creating it if needed), sets the virtio-net header
    /// length to 10, negotiates offloads and applies `opts`.
    ///
    /// # Errors
    /// [`PortError::Invalid`] for a bad name, [`PortError::Unsupported`] without
    /// `/dev/net/tun`, [`PortError::Sys`] when the attach fails (`EBUSY`: another process holds
    /// the device; `EINVAL`: a TUN device of that name exists; `EPERM`: no `CAP_NET_ADMIN`).
    pub fn open_with(name: &str, opts: &TapOptions) -> Result<Self, PortError> {
        let existed = !name.is_empty() && netdev::ifindex(name).is_ok();
        let fd = TunFd::open_tap(name).map_err(|e| {
            let what = if e.kind() == io::ErrorKind::NotFound {
                "open /dev/net/tun"
            } else {
                "TUNSETIFF"
            };
            open_error(name, what, e)
        })?;
        let name = fd.name().to_owned();
        // The tunnel form of the header first (Linux 6.17+): UDP-tunnel GSO super-frames (a
        // container that runs VXLAN itself) then cross whole. The header size goes first: the
        // kernel drops what it cannot describe in the header it was given.
        let tunnel = fd.set_vnet_hdr_len(VNET_TNL_HDR_LEN).is_ok()
            && fd.set_offload(tun::OFFLOADS_WITH_TUNNEL).is_ok();
        let (hdr_len, offloads) = if tunnel {
            (VNET_TNL_HDR_LEN, tun::OFFLOADS_WITH_TUNNEL)
        } else {
            fd.set_vnet_hdr_len(VNET_HDR_LEN)
                .map_err(|e| open_error(&name, "TUNSETVNETHDRSZ", e))?;
            (VNET_HDR_LEN, fd.negotiate_offload())
        };
        if offloads & tun::OFFLOADS_WITH_USO != tun::OFFLOADS_WITH_USO {
            tracing::warn!(
                port = %name,
                offloads = format_args!("{offloads:#x}"),
                "tap: kernel refused some offloads; frames from this device are smaller"
            );
        }
        if opts.link_up {
            netdev::set_up(&name, true).map_err(|e| open_error(&name, "SIOCSIFFLAGS", e))?;
        }
        tracing::info!(
            port = %name,
            created = !existed,
            persistent = fd.is_persistent(),
            multi_queue = fd.is_multi_queue(),
            offloads = format_args!("{offloads:#x}"),
            udp_tunnel = tunnel,
            "tap port opened"
        );
        Ok(Self {
            name,
            fd,
            created: !existed,
            offloads,
            hdr_len,
            rx: vec![0u8; RX_SLOTS * SLOT_LEN].into_boxed_slice(),
            rx_free: u64::MAX >> (64 - RX_SLOTS),
            drops: 0,
            tx_err: None,
        })
    }

    /// True when the device did not exist before [`TapPort::open`]: the switch created it and
    /// the kernel deletes it when the port is dropped (unless someone made it persistent).
    pub fn created(&self) -> bool {
        self.created
    }

    /// True when the device is persistent and will outlive the port.
    pub fn is_persistent(&self) -> bool {
        self.fd.is_persistent()
    }

    /// The `TUN_F_*` offloads the kernel accepted (frames read may use these).
    pub fn offloads(&self) -> u32 {
        self.offloads
    }

    /// True when UDP-tunnel super-frames cross this port whole (the kernel took
    /// `TUN_F_UDP_TUNNEL_GSO` with the tunnel form of the header).
    pub fn udp_tunnel(&self) -> bool {
        self.hdr_len == VNET_TNL_HDR_LEN
    }

    /// Byte range of slot `slot`'s frame of `len` bytes, if it is a valid slot and length.
    #[inline]
    fn frame_range(&self, slot: u64, len: u32) -> Option<std::ops::Range<usize>> {
        let slot = usize::try_from(slot).ok().filter(|&s| s < RX_SLOTS)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= SLOT_LEN - self.hdr_len)?;
        let start = slot * SLOT_LEN + self.hdr_len;
        Some(start..start + len)
    }
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Tap
    }

    fn caps(&self) -> PortCaps {
        PortCaps {
            tx_offload: true,
            tx_udp_tunnel: self.udp_tunnel(),
            max_frame_len: MAX_FRAME_LEN,
        }
    }

    fn rx_queues(&self) -> usize {
        1
    }

    fn rx_burst(&mut self, queue: usize, batch: &mut RxBatch) -> io::Result<usize> {
        if queue != 0 {
            return Ok(0);
        }
        let mut got = 0;
        // Bounded even if the kernel kept handing us unusable frames.
        for _ in 0..2 * BATCH_SIZE {
            if batch.is_full() || self.rx_free == 0 {
                break;
            }
            let slot = self.rx_free.trailing_zeros() as usize;
            let buf = &mut self.rx[slot * SLOT_LEN..(slot + 1) * SLOT_LEN];
            let hdr_len = self.hdr_len;
            match self.fd.read(buf) {
                Ok(n) => {
                    // Shorter than header + Ethernet header, or possibly cut: drop.
                    if !(hdr_len + 14..SLOT_LEN).contains(&n) {
                        self.drops += 1;
                        continue;
                    }
                    let (hdr, rest) = buf.split_at(hdr_len);
                    let frame = &rest[..n - hdr_len];
                    // The tunnel form starts with the plain header; its tunnel bits are in
                    // `gso_type` and `flags`, its offsets found again when needed.
                    let hdr: &[u8; VNET_HDR_LEN] = hdr[..VNET_HDR_LEN]
                        .try_into()
                        .expect("a header is at least VNET_HDR_LEN long");
                    let offload = tun::decode_vnet_hdr(hdr, frame);
                    let len = u32::try_from(frame.len()).expect("frame shorter than a slot");
                    batch.push(RxDesc {
                        addr: slot as u64,
                        len,
                        offload,
                    });
                    self.rx_free &= !(1u64 << slot);
                    got += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if got == 0 {
                        return Err(e);
                    }
                    break;
                }
            }
        }
        Ok(got)
    }

    fn frame(&self, desc: &RxDesc) -> &[u8] {
        self.frame_range(desc.addr, desc.len)
            .and_then(|r| self.rx.get(r))
            .unwrap_or(&[])
    }

    fn frame_mut(&mut self, desc: &RxDesc) -> &mut [u8] {
        match self.frame_range(desc.addr, desc.len) {
            Some(r) => &mut self.rx[r],
            None => &mut [],
        }
    }

    fn rx_release(&mut self, _queue: usize, batch: &RxBatch) {
        for d in batch.descs() {
            if d.addr < RX_SLOTS as u64 {
                self.rx_free |= 1u64 << d.addr;
            }
        }
    }

    fn tx_enqueue(&mut self, frame: &[u8], offload: &Offload) -> bool {
        if frame.len() < 14 || frame.len() > MAX_FRAME_LEN {
            // Not a frame any device would take: dropped here, counted as a backend drop.
            self.drops += 1;
            return true;
        }
        let mut hdr = [0u8; VNET_TNL_HDR_LEN];
        let hdr = if self.udp_tunnel() {
            if !tun::encode_tnl_vnet_hdr(offload, frame, &mut hdr) {
                // A tunnel super-frame whose tunnel cannot be found: nothing could describe it.
                self.drops += 1;
                return true;
            }
            &hdr[..]
        } else {
            let plain = (&mut hdr[..VNET_HDR_LEN])
                .try_into()
                .expect("VNET_HDR_LEN < VNET_TNL_HDR_LEN");
            tun::encode_vnet_hdr(offload, plain);
            &hdr[..VNET_HDR_LEN]
        };
        // A few EINTR retries; every other failure drops this frame only. `WouldBlock` (the
        // device's queue is full) also drops it: a flush-and-retry would meet the same queue.
        for _ in 0..3 {
            match self.fd.write_frame(hdr, frame) {
                Ok(_) => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // EINVAL (malformed header), EIO (device down): reported by the next flush.
                Err(e) => {
                    self.tx_err.get_or_insert(e);
                    break;
                }
            }
        }
        self.drops += 1;
        true
    }

    fn tx_flush(&mut self) -> io::Result<()> {
        // Frames were written in `tx_enqueue`; what is left is to report a failed one.
        self.tx_err.take().map_or(Ok(()), Err)
    }

    fn take_backend_drops(&mut self) -> BackendDrops {
        BackendDrops::other(std::mem::take(&mut self.drops))
    }

    fn rx_fd(&self, queue: usize) -> Option<RawFd> {
        (queue == 0).then(|| self.fd.as_raw_fd())
    }
}
