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
//! 64 rx slots of [`SLOT_LEN`] bytes each (virtio-net header + up to 64 KiB frame) and 64 tx
//! slots of [`TX_SLOT_LEN`] bytes are allocated once at open. TUN has no batched read or
//! write: one frame per `read` or `write`. The port batches them through io_uring instead
//! ([`crate::sys::uring`], one `io_uring_enter` per batch, every operation `RWF_NOWAIT`),
//! which on the AMD EPYC VMs this was measured on costs ~35 % less per frame written and
//! ~20 % less per frame read than the system calls (docs/performance.md):
//! - `rx_burst`: while the device is busy (the last burst found at least `RX_RING_MIN` = 8
//!   frames), one batch of reads into free rx slots, twice as many as the last burst found
//!   (16 to 64), in order (a read that finds nothing returns `EAGAIN` and its slot stays
//!   free). After a burst with fewer, it reads with `read` until `EAGAIN`: an idle port costs
//!   one system call per poll, and a TCP stream's few GSO frames per poll are read as without
//!   the ring.
//! - `tx_enqueue` copies a frame of up to [`TX_SLOT_LEN`] bytes with its virtio-net header
//!   into a tx slot, and `tx_flush` (or a full set of slots) writes the queued frames in one
//!   batch. A longer frame (a GSO super-frame) is written at once after the queued ones, with
//!   one `writev` of its header and the caller's bytes, straight from the rx slot of the port
//!   it came from: a 64 KB frame is copied twice on its way through the switch (kernel → rx
//!   slot, rx slot → kernel) instead of three times.
//!
//! Where io_uring is unavailable (an old kernel, `kernel.io_uring_disabled`, a seccomp
//! profile) or [`TapOptions::io_uring`] is off, or after a ring failed a submission, the port
//! does one `read` per frame until `EAGAIN` and writes each frame at once with `writev` (logged
//! at open).
//!
//! Thread-safety: owned and driven by one worker (`Send`, not shared).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::buf::{BATCH_SIZE, Offload, RxBatch, RxDesc};
use crate::port::{BackendDrops, Port, PortCaps, PortError, PortKind};
use crate::sys::netdev;
use crate::sys::tun::{self, TunFd, VNET_HDR_LEN, VNET_TNL_HDR_LEN};
use crate::sys::uring::{self, FdRing};

/// Bytes per rx slot: the virtio-net header, then a frame of up to 64 KiB plus headers.
pub const SLOT_LEN: usize = 66 * 1024;

/// Largest frame carried (from the Ethernet header): 64 KiB IP datagram + Ethernet header.
pub const MAX_FRAME_LEN: usize = 65535 + 14;

/// Number of rx slots (frames held by unreleased batches plus the one being read).
const RX_SLOTS: usize = 64;

/// Bytes per tx slot: the virtio-net header and a frame queued for the next batched write.
/// Longer frames are written at once instead.
pub const TX_SLOT_LEN: usize = 2048;

/// Number of tx slots (frames queued for one batched write).
const TX_SLOTS: usize = uring::BATCH;

/// The ring reads a device whose last burst found at least this many frames, twice as many
/// reads as that burst found (up to a batch); below it `read` until `EAGAIN` costs less than
/// the reads that would find nothing (a TCP stream's few GSO frames per poll).
const RX_RING_MIN: usize = 8;

const _: () = assert!(RX_SLOTS <= 64, "rx slot ownership is a u64 bitmap");
const _: () = assert!(MAX_FRAME_LEN + VNET_TNL_HDR_LEN <= SLOT_LEN);

/// Options of [`TapPort::open_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapOptions {
    /// Set the link administratively up (`IFF_UP`) after attaching. Off by default: the device
    /// is usually moved into a container namespace and brought up there.
    pub link_up: bool,
    /// Batch reads and writes through io_uring where the kernel allows it (the default);
    /// off: one system call per frame.
    pub io_uring: bool,
}

impl Default for TapOptions {
    fn default() -> Self {
        Self {
            link_up: false,
            io_uring: true,
        }
    }
}

/// A TAP device attached with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`.
pub struct TapPort {
    /// Device name as the kernel reported it.
    name: String,
    /// Batched reads and writes (None: one system call per frame). Declared before the
    /// descriptor, whose file it holds registered, and before the buffers it reads into and
    /// writes from, so that it is dropped first: closing `fd` is then the last close, which
    /// deletes a tap the switch created.
    ring: Option<FdRing>,
    /// The attached queue.
    fd: TunFd,
    /// True when the device did not exist before `open` (the switch created it).
    created: bool,
    /// `TUN_F_*` offloads the kernel accepted.
    offloads: u32,
    /// Length of the virtio-net header in front of each frame: [`VNET_TNL_HDR_LEN`] when the
    /// kernel took the UDP-tunnel offloads, else [`VNET_HDR_LEN`].
    hdr_len: usize,
    /// Frames the last `rx_burst` found: a busy device is read through the ring.
    rx_last: usize,
    /// `RX_SLOTS * SLOT_LEN` bytes; slot `i` holds the virtio-net header then the frame.
    rx: Box<[u8]>,
    /// `TX_SLOTS * TX_SLOT_LEN` bytes: frames queued for the ring, each after its header.
    tx: Box<[u8]>,
    /// Bytes (header + frame) of each queued tx slot, `tx_len[..tx_n]`.
    tx_len: [u16; TX_SLOTS],
    /// Queued tx slots.
    tx_n: usize,
    /// Bit `i` set when rx slot `i` is free (not handed out in an unreleased batch).
    rx_free: u64,
    /// Received frames dropped by the backend since the last `take_backend_drops`.
    drops: u64,
    /// Frames to send the backend dropped since the last `take_backend_drops`.
    tx_drops: u64,
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
            .field("batched", &self.batched())
            .field("tx_queued", &self.tx_n)
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
            if existed && e.raw_os_error() == Some(libc::EINVAL) {
                // The device is there but TUNSETIFF will not take it: not a tap (a veth, a
                // NIC, a TUN device). The kernel's EINVAL alone reads as a bad name.
                let driver = match crate::sys::ethtool::driver(name) {
                    Ok(d) if d == "tun" => "a TUN device (or a tap with other flags)".to_owned(),
                    Ok(d) => format!("a {d}"),
                    Err(_) => "another kind of device".to_owned(),
                };
                return PortError::Invalid {
                    name: name.to_owned(),
                    field: "type",
                    reason: format!(
                        "{name} exists and is {driver}, not a tap device: a `tap` port creates \
                         its device or opens an existing tap; `auto` opens a veth or a NIC"
                    ),
                };
            }
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
        let mut drops = 0;
        let ring = if opts.io_uring {
            Self::ring_for(&fd, &name, &mut drops)
        } else {
            None
        };
        tracing::info!(
            port = %name,
            created = !existed,
            persistent = fd.is_persistent(),
            multi_queue = fd.is_multi_queue(),
            offloads = format_args!("{offloads:#x}"),
            udp_tunnel = tunnel,
            io_uring = ring.is_some(),
            "tap port opened"
        );
        Ok(Self {
            name,
            fd,
            created: !existed,
            offloads,
            hdr_len,
            ring,
            rx_last: 0,
            rx: vec![0u8; RX_SLOTS * SLOT_LEN].into_boxed_slice(),
            tx: vec![0u8; TX_SLOTS * TX_SLOT_LEN].into_boxed_slice(),
            tx_len: [0; TX_SLOTS],
            tx_n: 0,
            rx_free: u64::MAX >> (64 - RX_SLOTS),
            drops,
            tx_drops: 0,
            tx_err: None,
        })
    }

    /// A ring for `fd` whose reads and writes the device takes without waiting, checked with
    /// one read (`EAGAIN` on a device with nothing queued; a frame already queued on a
    /// persistent tap is read, dropped and counted in `drops`). None, logged, where io_uring
    /// or `RWF_NOWAIT` on the device is refused.
    fn ring_for(fd: &TunFd, name: &str, drops: &mut u64) -> Option<FdRing> {
        let no = |e: &dyn std::fmt::Display| {
            tracing::info!(port = %name, error = %e, "tap: no io_uring; one system call per frame");
        };
        let mut ring = FdRing::new(fd.as_raw_fd()).map_err(|e| no(&e)).ok()?;
        let mut buf = vec![0u8; SLOT_LEN];
        let mut res = [0i32; 1];
        if let Err(e) = ring.read_each([buf.as_mut_slice()], &mut res) {
            no(&e);
            return None;
        }
        match res[0] {
            r if r >= 0 => *drops += 1,
            r if r == -libc::EAGAIN => {}
            r => {
                no(&io::Error::from_raw_os_error(-r));
                return None;
            }
        }
        Some(ring)
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

    /// True when reads and writes go through the ring.
    pub fn batched(&self) -> bool {
        self.ring.as_ref().is_some_and(|r| !r.broken())
    }

    /// Takes `n` bytes just read into free rx slot `slot` as a frame of `batch` (false: not a
    /// frame, counted as a drop).
    fn accept(&mut self, slot: usize, n: usize, batch: &mut RxBatch) -> bool {
        let hdr_len = self.hdr_len;
        // Shorter than header + Ethernet header, or possibly cut: drop.
        if !(hdr_len + 14..SLOT_LEN).contains(&n) {
            self.drops += 1;
            return false;
        }
        let buf = &self.rx[slot * SLOT_LEN..(slot + 1) * SLOT_LEN];
        let (hdr, rest) = buf.split_at(hdr_len);
        let frame = &rest[..n - hdr_len];
        // The tunnel form starts with the plain header; its tunnel bits are in `gso_type` and
        // `flags`, its offsets found again when needed.
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
        true
    }

    /// One batch of reads through the ring into free rx slots; returns the frames taken.
    fn rx_burst_ring(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        let free = self.rx_free;
        let want = (2 * self.rx_last)
            .min(uring::BATCH)
            .min(batch.room())
            .min(free.count_ones() as usize);
        let Some(ring) = self.ring.as_mut() else {
            return Ok(0);
        };
        let mut res = [0i32; uring::BATCH];
        let slots = self
            .rx
            .chunks_mut(SLOT_LEN)
            .enumerate()
            .filter(|&(i, _)| free & (1u64 << i) != 0)
            .map(|(_, b)| b);
        let n = ring.read_each(slots, &mut res[..want])?;
        // The i-th read went to the i-th free slot, in the order they were issued.
        let mut got = 0;
        let mut bits = free;
        let mut err = None;
        for &r in &res[..n] {
            let slot = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            match usize::try_from(r) {
                Ok(len) => got += usize::from(self.accept(slot, len, batch)),
                Err(_) if r == -libc::EAGAIN || r == -libc::EINTR => {}
                Err(_) => {
                    err.get_or_insert_with(|| io::Error::from_raw_os_error(-r));
                }
            }
        }
        match err {
            Some(e) if got == 0 => Err(e),
            _ => Ok(got),
        }
    }

    /// Writes the queued tx slots in one batch through the ring; a frame the device did not
    /// take is dropped and counted, the first error other than a full queue kept for
    /// `tx_flush`.
    fn flush_slots(&mut self) {
        let n = std::mem::take(&mut self.tx_n);
        if n == 0 {
            return;
        }
        let Some(ring) = self.ring.as_mut() else {
            self.tx_drops += n as u64;
            return;
        };
        let mut res = [0i32; TX_SLOTS];
        let lens = self.tx_len;
        let bufs = self
            .tx
            .chunks(TX_SLOT_LEN)
            .zip(lens)
            .take(n)
            .map(|(b, l)| &b[..usize::from(l)]);
        match ring.write_each(bufs, &mut res[..n]) {
            Ok(done) => {
                for (&r, &l) in res[..done].iter().zip(&lens) {
                    if r == i32::from(l) {
                        continue;
                    }
                    self.tx_drops += 1;
                    if r < 0 && r != -libc::EAGAIN {
                        self.tx_err
                            .get_or_insert_with(|| io::Error::from_raw_os_error(-r));
                    }
                }
                self.tx_drops += (n - done) as u64;
            }
            Err(e) => {
                tracing::warn!(
                    port = %self.name,
                    error = %e,
                    "tap: io_uring submission failed; one system call per frame from now on"
                );
                self.tx_drops += n as u64;
                self.tx_err.get_or_insert(e);
            }
        }
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
        if self.rx_last >= RX_RING_MIN && self.batched() {
            let got = self.rx_burst_ring(batch);
            self.rx_last = *got.as_ref().unwrap_or(&0);
            return got;
        }
        let mut got = 0;
        // Bounded even if the kernel kept handing us unusable frames.
        for _ in 0..2 * BATCH_SIZE {
            if batch.is_full() || self.rx_free == 0 {
                break;
            }
            let slot = self.rx_free.trailing_zeros() as usize;
            let buf = &mut self.rx[slot * SLOT_LEN..(slot + 1) * SLOT_LEN];
            match self.fd.read(buf) {
                Ok(n) => got += usize::from(self.accept(slot, n, batch)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if got == 0 {
                        self.rx_last = 0;
                        return Err(e);
                    }
                    break;
                }
            }
        }
        self.rx_last = got;
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
            self.tx_drops += 1;
            return true;
        }
        let mut hdr = [0u8; VNET_TNL_HDR_LEN];
        let hdr = if self.udp_tunnel() {
            if !tun::encode_tnl_vnet_hdr(offload, frame, &mut hdr) {
                // A tunnel super-frame whose tunnel cannot be found: nothing could describe it.
                self.tx_drops += 1;
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
        if self.batched() && hdr.len() + frame.len() <= TX_SLOT_LEN {
            if self.tx_n == TX_SLOTS {
                self.flush_slots();
            }
            let at = self.tx_n * TX_SLOT_LEN;
            let slot = &mut self.tx[at..at + hdr.len() + frame.len()];
            slot[..hdr.len()].copy_from_slice(hdr);
            slot[hdr.len()..].copy_from_slice(frame);
            self.tx_len[self.tx_n] =
                u16::try_from(hdr.len() + frame.len()).expect("a tx slot is shorter than 64 KiB");
            self.tx_n += 1;
            return true;
        }
        // Written at once, after the frames queued before it.
        self.flush_slots();
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
        self.tx_drops += 1;
        true
    }

    fn tx_flush(&mut self) -> io::Result<()> {
        self.flush_slots();
        self.tx_err.take().map_or(Ok(()), Err)
    }

    fn take_backend_drops(&mut self) -> BackendDrops {
        BackendDrops::other(
            std::mem::take(&mut self.drops),
            std::mem::take(&mut self.tx_drops),
        )
    }

    fn rx_fd(&self, queue: usize) -> Option<RawFd> {
        (queue == 0).then(|| self.fd.as_raw_fd())
    }
}
