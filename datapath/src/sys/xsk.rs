//! AF_XDP sockets without libbpf/libxdp: UMEM, the four rings and the chunk bookkeeping that lets
//! the rest of the crate touch frame bytes without `unsafe`.
//!
//! One [`Xsk`] is one socket bound to one (device, queue), with its own UMEM of
//! [`XskConfig::frames`] chunks of [`CHUNK_SIZE`] bytes, split in two fixed pools:
//! - rx chunks `0..rx_frames` circulate FILL → (kernel writes a frame) → RX → held by the caller
//!   (between [`Xsk::recv`] and [`Xsk::release`]) → FILL;
//! - tx chunks `rx_frames..frames` circulate free list → (frame copied in) → TX → (kernel sent
//!   it) → COMPLETION → free list.
//!
//! Each chunk's owner is recorded in a byte per chunk, so a stale or forged address can never
//! hand out memory the kernel may be writing ([`Xsk::frame`] returns an empty slice instead) or
//! put a chunk in a ring twice.
//!
//! Ring indices are free-running `u32`s shared with the kernel: the consumer side loads the
//! producer index with `Acquire` (the entries and frame bytes written before it are visible) and
//! publishes its consumer index with `Release` (our reads of the entries and frames are done);
//! the producer side mirrors that. Nothing on the per-frame path allocates or makes a syscall,
//! except the kicks: `sendto` on [`Xsk::flush`] (copy-mode TX runs inside it), `recvfrom` on
//! [`Xsk::recv`] only when the kernel sets `XDP_RING_NEED_WAKEUP` on the fill ring.
//!
//! Memory: UMEM pages are pinned and, without `CAP_IPC_LOCK`, charged to the user's
//! `RLIMIT_MEMLOCK` (8 MiB here, shared by all the user's processes): [`umem_bytes`].

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::Duration;

use super::cpu::prefetch;
use super::mmap::Mmap;

/// Bytes per UMEM chunk (one frame each).
pub const CHUNK_SIZE: u32 = 4096;
/// Where copy-mode RX puts a frame inside its chunk (`XDP_PACKET_HEADROOM`).
pub const RX_HEADROOM: u32 = 256;
/// Largest frame a chunk receives (copy mode): the chunk minus the kernel's headroom.
pub const MAX_FRAME_LEN: u32 = CHUNK_SIZE - RX_HEADROOM;
/// Descriptors one `sendto` kick moves at most (the kernel's `TX_BATCH_SIZE`, copy mode).
pub const TX_KICK_BATCH: u32 = 32;
/// Longest frame [`Xsk::send`] takes on a multi-buffer socket: 16 chunks. The kernel's limit
/// is one descriptor per skb fragment plus the linear part (`MAX_SKB_FRAGS`, 17 by default);
/// a jumbo frame of 9,000 bytes takes 3.
pub const MAX_SG_FRAME_LEN: usize = 16 * CHUNK_SIZE as usize;

/// UMEM bytes (pinned, memlock-accounted without `CAP_IPC_LOCK`) of a socket with `frames`
/// chunks.
pub const fn umem_bytes(frames: u32) -> usize {
    frames as usize * CHUNK_SIZE as usize
}

/// How one socket is sized and bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XskConfig {
    /// UMEM chunks; half receive, half transmit (at least 2, at most 2^20).
    pub frames: u32,
    /// RX ring entries (power of two).
    pub rx_ring: u32,
    /// TX ring entries (power of two).
    pub tx_ring: u32,
    /// Bind with `XDP_USE_NEED_WAKEUP` (kick only when the kernel asks).
    pub need_wakeup: bool,
    /// Let the kernel pick zero-copy when the driver has it (bind flags 0) instead of forcing
    /// `XDP_COPY`. veth has no zero-copy.
    pub zero_copy: bool,
    /// Bind with `XDP_USE_SG` (multi-buffer, Linux 6.6+): [`Xsk::send`] then takes frames
    /// longer than a chunk, [`MAX_SG_FRAME_LEN`] at most, as consecutive descriptors (the TX
    /// ring and the tx chunks must hold one such frame). Only the sending side uses it: a frame
    /// received in several chunks is not reassembled here (each part would come out of
    /// [`Xsk::recv`] as a frame), and in zero-copy mode the driver's own limit of parts per
    /// frame may be lower than 16. pktgen uses it, in copy mode, for jumbo frames.
    pub multi_buffer: bool,
}

impl Default for XskConfig {
    fn default() -> Self {
        Self {
            frames: 512,
            rx_ring: 256,
            tx_ring: 256,
            need_wakeup: true,
            zero_copy: false,
            multi_buffer: false,
        }
    }
}

impl XskConfig {
    /// Chunks given to the kernel for receiving.
    pub fn rx_frames(&self) -> u32 {
        self.frames / 2
    }

    /// Chunks used for transmitting.
    pub fn tx_frames(&self) -> u32 {
        self.frames - self.rx_frames()
    }

    /// FILL ring entries: room for every rx chunk twice over. Once is what giving chunks back
    /// needs to never fail; the rest keeps the producer's cached view of free slots from
    /// running out at every release, which re-reads the kernel's consumer index: a cache line
    /// the receiving CPU writes for every frame (~2 % of a forwarding core at 1 Mpps).
    pub fn fill_ring(&self) -> u32 {
        (self.rx_frames() * 2).next_power_of_two()
    }

    /// COMPLETION ring entries: room for every tx chunk.
    pub fn comp_ring(&self) -> u32 {
        self.tx_frames().next_power_of_two()
    }

    /// Checks the sizes; the error names the offending field.
    ///
    /// # Errors
    /// `(field, reason)` for the first invalid value.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(2..=1 << 20).contains(&self.frames) {
            return Err(("frames", format!("{} not in 2..=1048576", self.frames)));
        }
        for (field, v) in [("rx_ring", self.rx_ring), ("tx_ring", self.tx_ring)] {
            if !v.is_power_of_two() || !(8..=1 << 16).contains(&v) {
                return Err((field, format!("{v} is not a power of two in 8..=65536")));
            }
        }
        let parts = (MAX_SG_FRAME_LEN / CHUNK_SIZE as usize) as u32;
        if self.multi_buffer && (self.tx_ring < parts || self.tx_frames() < parts) {
            return Err((
                "multi_buffer",
                format!(
                    "needs a TX ring and tx chunks for a {parts}-part frame (tx_ring {}, tx chunks {})",
                    self.tx_ring,
                    self.tx_frames()
                ),
            ));
        }
        Ok(())
    }
}

/// A failed step of socket setup or I/O.
#[derive(Debug)]
pub struct XskError {
    /// What was being done.
    pub what: &'static str,
    /// The OS error.
    pub source: io::Error,
}

impl XskError {
    fn last_os(what: &'static str) -> Self {
        Self {
            what,
            source: io::Error::last_os_error(),
        }
    }

    /// The errno, if the failure came from the kernel.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for XskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for XskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Kernel-side counters of a socket (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStatistics {
    /// Frames dropped on receive: no fill chunk, frame larger than a chunk, …
    pub rx_dropped: u64,
    /// Invalid descriptors on the FILL ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the FILL ring was found empty (each also counted in `rx_dropped`).
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was found empty on a kick.
    pub tx_ring_empty_descs: u64,
}

impl XdpStatistics {
    /// The drops since `earlier` (a previous reading of the same socket), by cause. The
    /// kernel counts a receive without a FILL entry in both `rx_dropped` and
    /// `rx_fill_ring_empty_descs`; `rx_dropped` also counts frames too long for a chunk, so
    /// the smaller of the two growths is the frames lost for want of a buffer.
    pub fn drops_since(&self, earlier: &Self) -> crate::port::BackendDrops {
        let grown = |now: u64, was: u64| now.saturating_sub(was);
        let dropped = grown(self.rx_dropped, earlier.rx_dropped);
        let no_buffer = dropped.min(grown(
            self.rx_fill_ring_empty_descs,
            earlier.rx_fill_ring_empty_descs,
        ));
        crate::port::BackendDrops {
            rx_ring_full: grown(self.rx_ring_full, earlier.rx_ring_full),
            no_rx_buffer: no_buffer,
            other: dropped - no_buffer + grown(self.rx_invalid_descs, earlier.rx_invalid_descs),
            tx: grown(self.tx_invalid_descs, earlier.tx_invalid_descs),
        }
    }
}

/// `struct xdp_desc`: an RX or TX ring entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpDesc {
    /// UMEM address of the frame's first byte.
    pub addr: u64,
    /// Frame length.
    pub len: u32,
    /// `XDP_PKT_CONTD` on every descriptor of a multi-buffer frame but its last ([`Xsk::send`]
    /// on a multi-buffer socket); 0 otherwise.
    pub options: u32,
}

mod sealed {
    /// Types that are ring entries: plain integers, valid for every bit pattern.
    pub trait Entry: Copy {}
    impl Entry for u64 {}
    impl Entry for super::XdpDesc {}
}
use sealed::Entry;

/// One mmap'ed ring shared with the kernel.
struct Ring<T: Entry> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    size: u32,
    /// Producer ring: next index to write. Consumer ring: last producer index seen.
    cached_prod: u32,
    /// Producer ring: consumer index seen + size. Consumer ring: next index to read.
    cached_cons: u32,
    /// Keeps the pointers above valid.
    _map: Mmap,
    _entries: PhantomData<T>,
}

// SAFETY: the pointers all point into `map`, which this value owns; the ring is driven by one
// owner at a time (`&mut self` methods) and the kernel side synchronizes through the atomics.
unsafe impl<T: Entry> Send for Ring<T> {}

impl<T: Entry> fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("size", &self.size)
            .field("cached_prod", &self.cached_prod)
            .field("cached_cons", &self.cached_cons)
            .finish_non_exhaustive()
    }
}

impl<T: Entry> Ring<T> {
    /// Maps the ring of `fd` at page offset `pgoff`, laid out as `off` says, with `size`
    /// entries of `T`.
    fn map(
        fd: BorrowedFd<'_>,
        pgoff: u64,
        off: &libc::xdp_ring_offset,
        size: u32,
    ) -> io::Result<Self> {
        let len = Self::layout_len(off, size)?;
        Self::from_mmap(Mmap::new(len, Some(fd.as_raw_fd()), pgoff)?, off, size)
    }

    /// Bytes a ring of `size` entries laid out as `off` needs, after checking the layout.
    fn layout_len(off: &libc::xdp_ring_offset, size: u32) -> io::Result<usize> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        if !size.is_power_of_two() {
            return Err(bad("ring size is not a power of two"));
        }
        let len = usize::try_from(off.desc)
            .ok()
            .and_then(|d| d.checked_add(size as usize * size_of::<T>()))
            .ok_or_else(|| bad("ring descriptor offset out of range"))?;
        for o in [off.producer, off.consumer, off.flags] {
            if !o.is_multiple_of(4) || o.saturating_add(4) > len as u64 {
                return Err(bad("ring index offset out of range"));
            }
        }
        if !off.desc.is_multiple_of(align_of::<T>() as u64) {
            return Err(bad("misaligned ring descriptors"));
        }
        Ok(len)
    }

    /// A ring over `map` (page-aligned), laid out as `off`.
    fn from_mmap(map: Mmap, off: &libc::xdp_ring_offset, size: u32) -> io::Result<Self> {
        if Self::layout_len(off, size)? > map.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "ring mapping too small",
            ));
        }
        let at = |o: u64| {
            // SAFETY: `layout_len` checked that every offset lies within the mapping.
            unsafe { map.ptr.add(o as usize) }
        };
        let producer = at(off.producer).cast::<AtomicU32>();
        let consumer = at(off.consumer).cast::<AtomicU32>();
        let flags = at(off.flags).cast::<AtomicU32>();
        let descs = at(off.desc).cast::<T>();
        let mut ring = Self {
            producer,
            consumer,
            flags,
            descs,
            mask: size - 1,
            size,
            cached_prod: 0,
            cached_cons: 0,
            _map: map,
            _entries: PhantomData,
        };
        ring.cached_prod = ring.producer().load(Ordering::Acquire);
        ring.cached_cons = ring.consumer().load(Ordering::Acquire);
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: `producer` points at an aligned u32 inside `self.map`, which lives as long
        // as `self`; the kernel only accesses it atomically (smp_load_acquire/store_release).
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.flags.as_ref() }
    }

    /// Pointer to the entry slot of free-running index `idx`.
    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask < size`, and the mapping holds `size` entries from `descs`.
        unsafe { self.descs.as_ptr().add((idx & self.mask) as usize) }
    }
}

/// The producer side of a ring (FILL, TX): we write entries, the kernel consumes them.
#[derive(Debug)]
struct ProdRing<T: Entry>(Ring<T>);

impl<T: Entry> ProdRing<T> {
    fn new(ring: Ring<T>) -> Self {
        let mut r = ring;
        r.cached_cons = r.cached_cons.wrapping_add(r.size);
        Self(r)
    }

    /// Free slots, refreshing the kernel's consumer index only when the cached view is full.
    fn free(&mut self) -> u32 {
        let r = &mut self.0;
        if r.cached_cons == r.cached_prod {
            r.cached_cons = r.consumer().load(Ordering::Acquire).wrapping_add(r.size);
        }
        r.cached_cons.wrapping_sub(r.cached_prod)
    }

    /// True when `n` entries fit, refreshing the kernel's consumer index when the cached view
    /// has fewer free slots (unlike [`ProdRing::free`], which refreshes only at none).
    fn has_room(&mut self, n: u32) -> bool {
        let r = &mut self.0;
        if r.cached_cons.wrapping_sub(r.cached_prod) < n {
            r.cached_cons = r.consumer().load(Ordering::Acquire).wrapping_add(r.size);
        }
        r.cached_cons.wrapping_sub(r.cached_prod) >= n
    }

    /// Writes one entry (not yet visible to the kernel); false when the ring is full.
    fn push(&mut self, v: T) -> bool {
        if self.free() == 0 {
            return false;
        }
        let r = &mut self.0;
        let slot = r.slot(r.cached_prod);
        // SAFETY: `slot` is in bounds (see `Ring::slot`) and free: the kernel consumed it (its
        // consumer index, loaded with Acquire, is past it) and does not read it again before
        // our next Release store of the producer index covers it.
        unsafe { slot.write(v) };
        r.cached_prod = r.cached_prod.wrapping_add(1);
        true
    }

    /// Takes back the last `n` entries pushed since the last [`ProdRing::submit`] (the kernel
    /// has not seen them).
    fn unpush(&mut self, n: u32) {
        let r = &mut self.0;
        let published = r.producer().load(Ordering::Relaxed);
        let n = n.min(r.cached_prod.wrapping_sub(published));
        r.cached_prod = r.cached_prod.wrapping_sub(n);
    }

    /// Publishes the pushed entries to the kernel.
    fn submit(&mut self) {
        self.0
            .producer()
            .store(self.0.cached_prod, Ordering::Release);
    }

    /// The kernel's consumer index.
    fn consumer_index(&self) -> u32 {
        self.0.consumer().load(Ordering::Acquire)
    }

    /// Entries pushed that the kernel has not consumed yet.
    fn outstanding(&self) -> u32 {
        self.0.cached_prod.wrapping_sub(self.consumer_index())
    }

    /// True when the kernel asks to be kicked (`XDP_RING_NEED_WAKEUP`).
    fn needs_wakeup(&self) -> bool {
        // The producer index store must be ordered before the flag load (store→load), or we
        // could miss a wake-up the kernel asked for just after checking the ring.
        fence(Ordering::SeqCst);
        self.0.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

/// The consumer side of a ring (RX, COMPLETION): the kernel writes entries, we read them.
#[derive(Debug)]
struct ConsRing<T: Entry>(Ring<T>);

impl<T: Entry> ConsRing<T> {
    /// Reads the next entry, if any (the slot stays ours until [`ConsRing::release`]).
    fn pop(&mut self) -> Option<T> {
        let r = &mut self.0;
        if r.cached_cons == r.cached_prod {
            r.cached_prod = r.producer().load(Ordering::Acquire);
            if r.cached_cons == r.cached_prod {
                return None;
            }
        }
        let slot = r.slot(r.cached_cons);
        // SAFETY: `slot` is in bounds (see `Ring::slot`); the kernel wrote it before the
        // producer index we loaded with Acquire and does not reuse it before our Release store
        // of a consumer index past it. `T` is valid for every bit pattern.
        let v = unsafe { slot.read() };
        r.cached_cons = r.cached_cons.wrapping_add(1);
        Some(v)
    }

    /// When every entry seen so far is read, starts loading the line of the next one, so
    /// that a poll that finds new entries waits for the producer index and that line
    /// together rather than one after the other (the kernel writes both on another CPU).
    #[inline]
    fn prefetch_next(&self) -> bool {
        let r = &self.0;
        let drained = r.cached_cons == r.cached_prod;
        if drained {
            prefetch(r.slot(r.cached_cons).cast::<u8>());
        }
        drained
    }

    /// Gives the slots read so far back to the kernel.
    fn release(&mut self) {
        self.0
            .consumer()
            .store(self.0.cached_cons, Ordering::Release);
    }
}

/// Owner of a UMEM chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Chunk {
    /// Rx chunk on the FILL or RX ring: the kernel may write it.
    Kernel,
    /// Rx chunk received and not yet released: readable and writable by the caller.
    Held,
    /// Tx chunk on the free list.
    Free,
    /// Tx chunk on the TX ring or in flight until its completion.
    Sending,
}

/// The UMEM area.
#[derive(Debug)]
struct Umem {
    map: Mmap,
}

impl Umem {
    fn new(frames: u32) -> io::Result<Self> {
        let map = Mmap::new(umem_bytes(frames), None, 0)?;
        // SAFETY: advising our own fresh mapping; MADV_DONTFORK keeps pinned pages out of
        // children (a fork would otherwise copy-on-write them away from the kernel's pin).
        unsafe { libc::madvise(map.ptr.as_ptr().cast(), map.len, libc::MADV_DONTFORK) };
        Ok(Self { map })
    }

    /// Pointer to byte `off` of chunk `idx`.
    fn ptr(&self, idx: u32, off: u32) -> *mut u8 {
        let at = idx as usize * CHUNK_SIZE as usize + off as usize;
        debug_assert!(at < self.map.len);
        // SAFETY: callers pass `idx < frames` and `off < CHUNK_SIZE`, so `at` is inside the
        // mapping of `frames * CHUNK_SIZE` bytes.
        unsafe { self.map.ptr.as_ptr().add(at) }
    }
}

/// An AF_XDP socket bound to one device queue, with its UMEM and rings.
pub struct Xsk {
    rx: ConsRing<XdpDesc>,
    tx: ProdRing<XdpDesc>,
    fill: ProdRing<u64>,
    comp: ConsRing<u64>,
    // Declared after the rings and before the UMEM: dropped (closed) in between.
    fd: OwnedFd,
    umem: Umem,
    chunks: Box<[Chunk]>,
    free: Vec<u64>,
    rx_frames: u32,
    frames: u32,
    need_wakeup: bool,
    zero_copy: bool,
    multi_buffer: bool,
    ifindex: u32,
    queue: u32,
}

impl fmt::Debug for Xsk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Xsk")
            .field("fd", &self.fd.as_raw_fd())
            .field("ifindex", &self.ifindex)
            .field("queue", &self.queue)
            .field("frames", &self.frames)
            .field("zero_copy", &self.zero_copy)
            .field("tx_free", &self.free.len())
            .finish_non_exhaustive()
    }
}

/// `setsockopt(fd, SOL_XDP, opt, &val)`.
fn set_xdp_opt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` is valid for reads of `size_of::<T>()` bytes for the call; the SOL_XDP
    // options used here take exactly these plain structs/integers.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `getsockopt(fd, SOL_XDP, opt, &val)`; returns the length the kernel wrote.
fn get_xdp_opt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, val: &mut T) -> io::Result<usize> {
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is valid for writes of `len` bytes and `len` for a write of a socklen_t,
    // for the duration of the call; `T` is a plain struct of integers.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (val as *mut T).cast(),
            &raw mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(len as usize)
    }
}

/// Creates an unbound AF_XDP socket.
fn xdp_socket() -> Result<OwnedFd, XskError> {
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(XskError::last_os("create AF_XDP socket"));
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Checks that the kernel has AF_XDP sockets (creates and closes one).
///
/// # Errors
/// `EAFNOSUPPORT` without `CONFIG_XDP_SOCKETS`, `EPERM` without `CAP_NET_RAW`.
pub fn probe() -> Result<(), XskError> {
    xdp_socket().map(drop)
}

impl Xsk {
    /// Creates a socket with its UMEM and rings and binds it to queue `queue` of `ifindex`.
    ///
    /// The socket receives nothing until an XDP program redirects into it (an XSKMAP entry).
    /// A transient `EBUSY` on bind (the queue's previous socket is still being torn down) is
    /// retried for up to half a second.
    ///
    /// # Errors
    /// The failing step with its errno: `EINVAL` for sizes the kernel rejects or a queue the
    /// device does not have, `ENOBUFS`/`ENOMEM` when the UMEM exceeds `RLIMIT_MEMLOCK`,
    /// `EOPNOTSUPP` for zero-copy on a driver without it, …
    pub fn new(ifindex: u32, queue: u32, cfg: &XskConfig) -> Result<Self, XskError> {
        cfg.validate().map_err(|(field, reason)| XskError {
            what: field,
            source: io::Error::new(io::ErrorKind::InvalidInput, reason),
        })?;
        let fd = xdp_socket()?;
        let umem = Umem::new(cfg.frames).map_err(|source| XskError {
            what: "map UMEM",
            source,
        })?;
        let reg = libc::xdp_umem_reg {
            addr: umem.map.ptr.as_ptr() as u64,
            len: umem.map.len as u64,
            chunk_size: CHUNK_SIZE,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        let sys = |what: &'static str| move |source| XskError { what, source };
        set_xdp_opt(fd.as_fd(), libc::XDP_UMEM_REG, &reg)
            .map_err(sys("register UMEM (XDP_UMEM_REG; RLIMIT_MEMLOCK?)"))?;
        set_xdp_opt(fd.as_fd(), libc::XDP_UMEM_FILL_RING, &cfg.fill_ring())
            .map_err(sys("size FILL ring"))?;
        set_xdp_opt(fd.as_fd(), libc::XDP_UMEM_COMPLETION_RING, &cfg.comp_ring())
            .map_err(sys("size COMPLETION ring"))?;
        set_xdp_opt(fd.as_fd(), libc::XDP_RX_RING, &cfg.rx_ring).map_err(sys("size RX ring"))?;
        set_xdp_opt(fd.as_fd(), libc::XDP_TX_RING, &cfg.tx_ring).map_err(sys("size TX ring"))?;

        // SAFETY: `xdp_mmap_offsets` is plain integers; all zero is valid.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let got = get_xdp_opt(fd.as_fd(), libc::XDP_MMAP_OFFSETS, &mut off)
            .map_err(sys("get ring offsets (XDP_MMAP_OFFSETS)"))?;
        if got != size_of::<libc::xdp_mmap_offsets>() {
            return Err(XskError {
                what: "get ring offsets (XDP_MMAP_OFFSETS)",
                source: io::Error::new(io::ErrorKind::Unsupported, "kernel without ring flags"),
            });
        }
        let rx = ConsRing(
            Ring::map(
                fd.as_fd(),
                libc::XDP_PGOFF_RX_RING as u64,
                &off.rx,
                cfg.rx_ring,
            )
            .map_err(sys("map RX ring"))?,
        );
        let tx = ProdRing::new(
            Ring::map(
                fd.as_fd(),
                libc::XDP_PGOFF_TX_RING as u64,
                &off.tx,
                cfg.tx_ring,
            )
            .map_err(sys("map TX ring"))?,
        );
        let fill = ProdRing::new(
            Ring::map(
                fd.as_fd(),
                libc::XDP_UMEM_PGOFF_FILL_RING,
                &off.fr,
                cfg.fill_ring(),
            )
            .map_err(sys("map FILL ring"))?,
        );
        let comp = ConsRing(
            Ring::map(
                fd.as_fd(),
                libc::XDP_UMEM_PGOFF_COMPLETION_RING,
                &off.cr,
                cfg.comp_ring(),
            )
            .map_err(sys("map COMPLETION ring"))?,
        );

        let mut flags = if cfg.zero_copy { 0 } else { libc::XDP_COPY };
        if cfg.need_wakeup {
            flags |= libc::XDP_USE_NEED_WAKEUP;
        }
        if cfg.multi_buffer {
            flags |= libc::XDP_USE_SG;
        }
        bind(fd.as_fd(), ifindex, queue, flags)?;

        let mut opts = libc::xdp_options { flags: 0 };
        let zero_copy = get_xdp_opt(fd.as_fd(), libc::XDP_OPTIONS, &mut opts).is_ok()
            && opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0;

        // Rx chunks start on the FILL ring, tx chunks on the free list.
        let rx_frames = cfg.rx_frames();
        let chunks = (0..cfg.frames)
            .map(|idx| {
                if idx < rx_frames {
                    Chunk::Kernel
                } else {
                    Chunk::Free
                }
            })
            .collect();
        let mut free = Vec::with_capacity(cfg.tx_frames() as usize);
        free.extend((rx_frames..cfg.frames).rev().map(chunk_addr));
        let mut xsk = Self {
            rx,
            tx,
            fill,
            comp,
            fd,
            umem,
            chunks,
            free,
            rx_frames,
            frames: cfg.frames,
            need_wakeup: cfg.need_wakeup,
            zero_copy,
            multi_buffer: cfg.multi_buffer,
            ifindex,
            queue,
        };
        for idx in 0..rx_frames {
            let pushed = xsk.fill.push(chunk_addr(idx));
            debug_assert!(pushed, "the FILL ring holds every rx chunk");
        }
        xsk.fill.submit();
        Ok(xsk)
    }

    /// The socket (for an XSKMAP entry, or to poll for `POLLIN`).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// True when the kernel bound the socket in zero-copy mode.
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Queue id the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Raises how many TX descriptors one copy-mode kick may move (`XDP_MAX_TX_SKB_BUDGET`,
    /// Linux 6.17+; the default is [`TX_KICK_BATCH`]). `budget` must be in 32..=TX ring size.
    ///
    /// # Errors
    /// `ENOPROTOOPT` on older kernels, `EACCES` for a budget out of range.
    pub fn set_tx_budget(&self, budget: u32) -> io::Result<()> {
        /// `XDP_MAX_TX_SKB_BUDGET` from `<linux/if_xdp.h>` (not in the libc crate yet).
        const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
        set_xdp_opt(self.fd.as_fd(), XDP_MAX_TX_SKB_BUDGET, &budget)
    }

    /// Tx chunks on the free list (for tests and diagnostics).
    pub fn tx_free(&self) -> usize {
        self.free.len()
    }

    /// `(chunk index, offset)` of UMEM address `addr`, if it is inside the UMEM.
    fn locate(&self, addr: u64) -> Option<(u32, u32)> {
        let idx = addr / u64::from(CHUNK_SIZE);
        let off = (addr % u64::from(CHUNK_SIZE)) as u32;
        (idx < u64::from(self.frames)).then_some((idx as u32, off))
    }

    /// Receives up to `max` frames: `each(addr, len)` is called for every frame, in order, with
    /// the UMEM address of its first byte. The chunks stay the caller's (readable through
    /// [`Xsk::frame`]) until [`Xsk::release`]. Never blocks; returns the number received.
    ///
    /// When nothing arrived and the kernel asked for a wake-up on the FILL ring, kicks it
    /// with `recvfrom(MSG_DONTWAIT)`. Only zero-copy drivers ever ask, so a copy-mode socket
    /// does not look: the look needs a full fence, and an empty poll (every pass polls every
    /// port, most of them idle) was measured at ~5 % of a forwarding core with it.
    pub fn recv(&mut self, max: usize, mut each: impl FnMut(u64, u32)) -> usize {
        let mut n = 0;
        if self.rx.prefetch_next() {
            self.prefetch_next_frame();
        }
        while n < max {
            let Some(desc) = self.rx.pop() else { break };
            let Some((idx, off)) = self.locate(desc.addr) else {
                continue;
            };
            let fits = off as usize + desc.len as usize <= CHUNK_SIZE as usize;
            match self.chunks.get_mut(idx as usize) {
                Some(c @ Chunk::Kernel) if idx < self.rx_frames => {
                    if fits {
                        *c = Chunk::Held;
                        prefetch(self.umem.ptr(idx, off));
                        each(desc.addr, desc.len);
                        n += 1;
                    } else {
                        // A length the kernel should never produce: recycle the chunk.
                        self.fill.push(chunk_addr(idx));
                        self.fill.submit();
                    }
                }
                // An address that is not ours to read: skip it.
                _ => {}
            }
        }
        self.rx.release();
        if n == 0 && self.need_wakeup && self.zero_copy && self.fill.needs_wakeup() {
            self.kick_rx();
        }
        n
    }

    /// Starts loading the first line of the chunk the next received frame will be in: RX
    /// and FILL indices start together at bind and the kernel fills chunks in FILL order
    /// (a chunk it drops is reused for the next frame), so RX entry `i` is in FILL entry `i`'s
    /// chunk. A wrong guess costs one useless prefetch.
    #[inline]
    fn prefetch_next_frame(&self) {
        let slot = self.fill.0.slot(self.rx.0.cached_cons);
        // SAFETY: `slot` is in bounds (see `Ring::slot`); the kernel only reads FILL entries,
        // so this reads a value we wrote (any `u64` is valid).
        let addr = unsafe { slot.read() };
        if let Some((idx, _)) = self.locate(addr) {
            prefetch(self.umem.ptr(idx, RX_HEADROOM));
        }
    }

    /// The bytes of a held frame (`addr`, `len` as given by [`Xsk::recv`]); empty when the
    /// address is not a held chunk or the range leaves its chunk.
    pub fn frame(&self, addr: u64, len: u32) -> &[u8] {
        match self.held_range(addr, len) {
            // SAFETY: the range lies inside one chunk that is `Held`: the kernel handed it to
            // us (RX ring, Acquire) and gets it back only through `release(&mut self)`, so
            // nothing writes it while this shared borrow of `self` lives.
            Some((idx, off)) => unsafe {
                std::slice::from_raw_parts(self.umem.ptr(idx, off), len as usize)
            },
            None => &[],
        }
    }

    /// The 8 bytes right before `addr`, inside a held chunk, as a native-endian `u64`: the
    /// stamp a program put in front of a frame whose reader moved `addr` past it (the split
    /// port's pass count, `bpf::split_program`). `None` when the address is not in a held
    /// chunk or is less than 8 bytes into it.
    #[inline]
    pub fn stamp_before(&self, addr: u64) -> Option<u64> {
        let (_, off) = self.locate(addr)?;
        if off < 8 {
            return None;
        }
        let bytes = self.frame(addr - 8, 8);
        Some(u64::from_ne_bytes(bytes.try_into().ok()?))
    }

    /// The bytes of a held frame, writable; see [`Xsk::frame`].
    pub fn frame_mut(&mut self, addr: u64, len: u32) -> &mut [u8] {
        match self.held_range(addr, len) {
            // SAFETY: as in `frame`, and the exclusive borrow of `self` rules out any other
            // slice of this chunk.
            Some((idx, off)) => unsafe {
                std::slice::from_raw_parts_mut(self.umem.ptr(idx, off), len as usize)
            },
            None => &mut [],
        }
    }

    fn held_range(&self, addr: u64, len: u32) -> Option<(u32, u32)> {
        let (idx, off) = self.locate(addr)?;
        let fits = off as usize + len as usize <= CHUNK_SIZE as usize;
        (fits && self.chunks.get(idx as usize) == Some(&Chunk::Held)).then_some((idx, off))
    }

    /// Gives received chunks (any address inside them) back to the kernel through the FILL
    /// ring. Addresses that are not held are ignored (a double release is harmless). Returns
    /// the number of chunks given back.
    pub fn release(&mut self, addrs: impl IntoIterator<Item = u64>) -> usize {
        let mut n = 0;
        for addr in addrs {
            let Some((idx, _)) = self.locate(addr) else {
                continue;
            };
            if self.chunks.get(idx as usize) != Some(&Chunk::Held) {
                continue;
            }
            // Cannot fail: the FILL ring has a slot for every rx chunk.
            if self.fill.push(chunk_addr(idx)) {
                if let Some(c) = self.chunks.get_mut(idx as usize) {
                    *c = Chunk::Kernel;
                }
                n += 1;
            }
        }
        if n > 0 {
            self.fill.submit();
        }
        n
    }

    /// Copies `frame` into a free tx chunk and queues it on the TX ring (visible to the kernel
    /// at the next [`Xsk::flush`]). On a multi-buffer socket ([`XskConfig::multi_buffer`]) a
    /// frame longer than a chunk takes as many chunks as it needs, queued as consecutive
    /// descriptors (all but the last marked `XDP_PKT_CONTD`), all or none. False when the
    /// chunks or TX ring slots it needs are not free, or the frame is empty or too long (a
    /// chunk; [`MAX_SG_FRAME_LEN`] with multi-buffer).
    pub fn send(&mut self, frame: &[u8]) -> bool {
        if frame.len() > CHUNK_SIZE as usize {
            return self.multi_buffer && self.send_parts(frame);
        }
        if frame.is_empty() || self.tx.free() == 0 {
            return false;
        }
        if self.free.is_empty() {
            self.reap();
        }
        let Some(addr) = self.free.pop() else {
            return false;
        };
        if !self.queue_part(addr, frame, 0) {
            self.free.push(addr);
            return false;
        }
        true
    }

    /// [`Xsk::send`] of a frame longer than a chunk on a multi-buffer socket.
    #[cold]
    fn send_parts(&mut self, frame: &[u8]) -> bool {
        let chunk = CHUNK_SIZE as usize;
        if frame.len() > MAX_SG_FRAME_LEN {
            return false;
        }
        let parts = frame.len().div_ceil(chunk);
        if !self.tx.has_room(parts as u32) {
            return false;
        }
        if self.free.len() < parts {
            self.reap();
            if self.free.len() < parts {
                return false;
            }
        }
        let mut taken = [0u64; MAX_SG_FRAME_LEN / CHUNK_SIZE as usize];
        let mut rest = frame;
        for done in 0..parts {
            let (part, tail) = rest.split_at(rest.len().min(chunk));
            rest = tail;
            let options = if rest.is_empty() {
                0
            } else {
                libc::XDP_PKT_CONTD
            };
            // Cannot fail: `parts` chunks were on the free list and `parts` ring slots free,
            // and only this loop takes them. Should it, the parts queued so far are taken back
            // (the producer index is published only at the next flush): a frame's descriptors
            // go on the ring all or none, or its last part would join the next frame.
            let Some(addr) = self.free.pop() else {
                self.unqueue(&taken[..done]);
                return false;
            };
            if !self.queue_part(addr, part, options) {
                self.free.push(addr);
                self.unqueue(&taken[..done]);
                return false;
            }
            taken[done] = addr;
        }
        true
    }

    /// Takes back the last `addrs.len()` descriptors pushed (not yet published), `addrs` their
    /// chunks in push order: the chunks return to the free list.
    #[cold]
    fn unqueue(&mut self, addrs: &[u64]) {
        self.tx.unpush(addrs.len() as u32);
        for &addr in addrs.iter().rev() {
            if let Some((idx, _)) = self.locate(addr)
                && let Some(c @ Chunk::Sending) = self.chunks.get_mut(idx as usize)
            {
                *c = Chunk::Free;
                self.free.push(addr);
            }
        }
    }

    /// Copies `part` into the chunk at `addr` and pushes its descriptor with `options`; false
    /// (nothing queued, the chunk still the caller's) when the TX ring is full, or `addr` is
    /// not a free chunk or `part` longer than one (callers check both: this is the memory's
    /// guard, not a path taken).
    #[inline]
    fn queue_part(&mut self, addr: u64, part: &[u8], options: u32) -> bool {
        let Some((idx, _)) = self.locate(addr) else {
            return false;
        };
        if part.len() > CHUNK_SIZE as usize
            || !matches!(self.chunks.get(idx as usize), Some(Chunk::Free))
        {
            return false;
        }
        // SAFETY: chunk `idx` (< frames) is `Free` (checked above): the kernel is done with it
        // (completion seen) and no slice of it exists; `part.len()` ≤ CHUNK_SIZE (checked), and
        // `part` cannot overlap a chunk we own exclusively.
        unsafe {
            std::ptr::copy_nonoverlapping(part.as_ptr(), self.umem.ptr(idx, 0), part.len());
        }
        let desc = XdpDesc {
            addr,
            len: part.len() as u32,
            options,
        };
        if !self.tx.push(desc) {
            return false;
        }
        if let Some(c) = self.chunks.get_mut(idx as usize) {
            *c = Chunk::Sending;
        }
        true
    }

    /// Moves completed tx chunks back to the free list; returns how many.
    pub fn reap(&mut self) -> usize {
        let mut n = 0;
        while let Some(addr) = self.comp.pop() {
            let Some((idx, _)) = self.locate(addr) else {
                continue;
            };
            if let Some(c @ Chunk::Sending) = self.chunks.get_mut(idx as usize) {
                *c = Chunk::Free;
                // Never grows: at most `tx_frames` chunks are ever free (capacity).
                self.free.push(chunk_addr(idx));
                n += 1;
            }
        }
        self.comp.release();
        n
    }

    /// Publishes queued tx descriptors, reaps completions and kicks the kernel with
    /// `sendto(MSG_DONTWAIT)` until it has consumed everything queued (one kick moves at most
    /// [`TX_KICK_BATCH`] descriptors in copy mode), at most `max_kicks` times. `EAGAIN`,
    /// `EBUSY` and `ENOBUFS` end the flush without error when they made no progress: the rest
    /// goes with the next one. Returns the number of descriptors still waiting in the TX ring.
    ///
    /// In copy mode `EBUSY` means the device dropped a frame: the kernel takes frames from the
    /// ring one by one and hands each to the device, and when the device drops one
    /// (`NET_XMIT_DROP`: it has no carrier, or its peer refused the frame) the kernel
    /// completes that frame as if sent and ends the kick with `EBUSY`. The device counts it in
    /// its `tx_dropped`, where the switch reads it
    /// ([`DropReason::Device`](crate::stats::DropReason::Device)), as it does for frames other
    /// sockets hand to a device that drops them without a word.
    ///
    /// # Errors
    /// Other kick errors (`ENETDOWN` when the device is down, `ENXIO` …); queued frames stay
    /// on the ring.
    pub fn flush(&mut self, max_kicks: u32) -> io::Result<u32> {
        self.tx.submit();
        self.reap();
        let mut kicks = 0;
        while self.tx.outstanding() > 0 && kicks < max_kicks {
            // In copy mode the kernel sets the TX flag at bind and never clears it (only
            // zero-copy drivers do): no fence spent looking.
            if self.need_wakeup && self.zero_copy && !self.tx.needs_wakeup() {
                break;
            }
            let before = self.tx.consumer_index();
            kicks += 1;
            match self.kick_tx() {
                // A kick that took nothing: the kernel will take nothing more now (in copy
                // mode it sends synchronously, and sends nothing for a socket whose queue the
                // device does not transmit on; a zero-copy driver takes them in its own time).
                Ok(()) if self.tx.consumer_index() == before => break,
                Ok(()) => {}
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS) => {
                        if self.tx.consumer_index() == before {
                            break;
                        }
                    }
                    _ => {
                        self.reap();
                        return Err(e);
                    }
                },
            }
        }
        self.reap();
        Ok(self.tx.outstanding())
    }

    /// Descriptors queued on the TX ring that the kernel has not taken yet.
    pub fn tx_outstanding(&self) -> u32 {
        self.tx.outstanding()
    }

    /// Frames queued on the TX ring that the kernel has not taken yet (the descriptors that
    /// end a frame: a multi-buffer frame's others carry `XDP_PKT_CONTD`), for when the socket
    /// is about to close: the kernel will not send them.
    pub fn tx_unsent_frames(&self) -> u32 {
        let r = &self.tx.0;
        let mut idx = self.tx.consumer_index();
        let mut n = 0;
        // At most a ring's worth, whatever index the kernel shows.
        for _ in 0..r.cached_prod.wrapping_sub(idx).min(r.size) {
            // SAFETY: `Ring::slot` keeps the pointer in bounds of the mapping, every bit pattern
            // is a valid `XdpDesc`, and nothing writes TX descriptors while this runs: the
            // kernel only reads them, and we write them only through `&mut self`. (The slots
            // from the kernel's consumer index to our producer index are the ones we wrote and
            // it has not taken; should the index it shows be off, the loop stays within one
            // ring and reads old descriptors, no worse.)
            let d = unsafe { r.slot(idx).read() };
            if d.options & libc::XDP_PKT_CONTD == 0 {
                n += 1;
            }
            idx = idx.wrapping_add(1);
        }
        n
    }

    fn kick_tx(&self) -> io::Result<()> {
        super::kick_sendto(self.fd.as_raw_fd()).map(|_| ())
    }

    fn kick_rx(&self) {
        // SAFETY: a zero-length receive with no buffer and no address: the kernel writes
        // nothing to our memory. The result does not matter (it only wakes the driver).
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    /// The kernel's counters for this socket (one `getsockopt`).
    ///
    /// # Errors
    /// The `getsockopt` error.
    pub fn statistics(&self) -> io::Result<XdpStatistics> {
        // SAFETY: `xdp_statistics` is plain integers; all zero is valid.
        let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        get_xdp_opt(self.fd.as_fd(), libc::XDP_STATISTICS, &mut s)?;
        Ok(XdpStatistics {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }
}

impl AsFd for Xsk {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// UMEM address of the first byte of chunk `idx`.
fn chunk_addr(idx: u32) -> u64 {
    u64::from(idx) * u64::from(CHUNK_SIZE)
}

/// Binds `fd` to (`ifindex`, `queue`), retrying a transient `EBUSY`.
fn bind(fd: BorrowedFd<'_>, ifindex: u32, queue: u32, flags: u16) -> Result<(), XskError> {
    let addr = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: 0,
    };
    let mut tries = 0;
    loop {
        // SAFETY: `addr` is a valid sockaddr_xdp for the duration of the call, with its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = XskError::last_os("bind AF_XDP socket");
        if err.raw_os_error() == Some(libc::EBUSY) && tries < 20 {
            tries += 1;
            std::thread::sleep(Duration::from_millis(25));
            continue;
        }
        return Err(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_counters_become_drops_by_cause_and_direction() {
        let earlier = XdpStatistics {
            rx_dropped: 10,
            rx_invalid_descs: 1,
            tx_invalid_descs: 2,
            rx_ring_full: 3,
            rx_fill_ring_empty_descs: 4,
            tx_ring_empty_descs: 5,
        };
        let now = XdpStatistics {
            // 7 more receive drops, 2 of them with the FILL ring empty.
            rx_dropped: 17,
            rx_fill_ring_empty_descs: 6,
            rx_invalid_descs: 2,
            tx_invalid_descs: 5,
            rx_ring_full: 9,
            // An empty TX ring at a kick drops nothing.
            tx_ring_empty_descs: 50,
        };
        assert_eq!(
            now.drops_since(&earlier),
            crate::port::BackendDrops {
                rx_ring_full: 6,
                no_rx_buffer: 2,
                other: 5 + 1,
                tx: 3,
            }
        );
        // Counters that went back (a socket replaced) give no drops, not a wrap.
        assert_eq!(earlier.drops_since(&now).total(), 0);
    }

    #[test]
    fn default_config_fits_four_queues_in_eight_mib_of_memlock() {
        let c = XskConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(umem_bytes(c.frames) * 4, 8 << 20);
        assert_eq!((c.rx_frames(), c.tx_frames()), (256, 256));
        assert_eq!((c.fill_ring(), c.comp_ring()), (512, 256));
    }

    #[test]
    fn odd_frame_counts_round_rings_up() {
        let c = XskConfig {
            frames: 301,
            ..XskConfig::default()
        };
        assert_eq!((c.rx_frames(), c.tx_frames()), (150, 151));
        assert_eq!((c.fill_ring(), c.comp_ring()), (512, 256));
    }

    #[test]
    fn invalid_sizes_name_their_field() {
        let bad = |c: XskConfig| c.validate().unwrap_err().0;
        let d = XskConfig::default();
        assert_eq!(bad(XskConfig { frames: 1, ..d }), "frames");
        assert_eq!(bad(XskConfig { rx_ring: 100, ..d }), "rx_ring");
        assert_eq!(bad(XskConfig { tx_ring: 4, ..d }), "tx_ring");
        let mb = XskConfig {
            multi_buffer: true,
            ..d
        };
        assert!(mb.validate().is_ok());
        assert_eq!(bad(XskConfig { tx_ring: 8, ..mb }), "multi_buffer");
        assert_eq!(bad(XskConfig { frames: 30, ..mb }), "multi_buffer");
    }

    /// A ring in anonymous memory with both indices at `start`; the test plays the kernel.
    fn anon_ring<T: Entry>(size: u32, start: u32) -> Ring<T> {
        let off = libc::xdp_ring_offset {
            producer: 0,
            consumer: 64,
            flags: 128,
            desc: 256,
        };
        let len = Ring::<T>::layout_len(&off, size).unwrap();
        let map = Mmap::new(len, None, 0).unwrap();
        let mut ring = Ring::<T>::from_mmap(map, &off, size).unwrap();
        ring.producer().store(start, Ordering::Relaxed);
        ring.consumer().store(start, Ordering::Relaxed);
        ring.cached_prod = start;
        ring.cached_cons = start;
        ring
    }

    #[test]
    fn a_producer_ring_stops_when_full_and_resumes_as_the_kernel_consumes() {
        let start = u32::MAX - 2; // wraps around while the test runs
        let mut p = ProdRing::new(anon_ring::<u64>(4, start));
        for v in 0..4 {
            assert!(p.push(v));
        }
        assert!(!p.push(99), "full");
        assert_eq!(
            p.0.producer().load(Ordering::Relaxed),
            start,
            "not published yet"
        );
        p.submit();
        assert_eq!(
            p.0.producer().load(Ordering::Relaxed),
            start.wrapping_add(4)
        );
        assert_eq!(p.outstanding(), 4);
        // The kernel consumes two entries.
        p.0.consumer()
            .store(start.wrapping_add(2), Ordering::Release);
        assert_eq!(p.outstanding(), 2);
        assert!(p.push(4) && p.push(5) && !p.push(6));
        p.submit();
        let slots: Vec<u64> = (0..4)
            .map(|i| {
                // SAFETY: `slot` is in bounds of our own anonymous ring; no kernel involved.
                unsafe { p.0.slot(i).read() }
            })
            .collect();
        // Indices start at MAX-2: 0,1,2,3 went to slots 1,2,3,0; then 4,5 to slots 1,2.
        assert_eq!(slots, vec![3, 4, 5, 2]);
    }

    #[test]
    fn room_for_several_entries_rereads_the_consumer_index() {
        let start = u32::MAX - 1;
        let mut p = ProdRing::new(anon_ring::<u64>(4, start));
        assert!(p.has_room(4) && !p.has_room(5));
        for v in 0..3 {
            assert!(p.push(v));
        }
        assert!(p.has_room(1) && !p.has_room(2));
        p.submit();
        // The kernel consumes two: the cached view still says one slot, `has_room(3)` looks.
        p.0.consumer()
            .store(start.wrapping_add(2), Ordering::Release);
        assert!(p.has_room(3) && !p.has_room(4));
        assert!(p.push(3) && p.push(4) && p.push(5) && !p.push(6));
        // Taking back unpublished entries: at most those pushed since the last submit.
        p.unpush(2);
        assert!(p.has_room(2) && !p.has_room(3));
        p.unpush(5);
        assert!(p.has_room(3) && !p.has_room(4), "only 3 were unpublished");
        assert!(p.push(7) && p.push(8));
        p.submit();
        assert_eq!(p.outstanding(), 3);
        // The published entries after the two consumed: 2, then 7 and 8 where 3 and 4 were.
        // SAFETY: in bounds of our own anonymous ring; no kernel involved.
        let s = |i: u32| unsafe { p.0.slot(start.wrapping_add(i)).read() };
        assert_eq!((s(2), s(3), s(4)), (2, 7, 8));
    }

    #[test]
    fn a_consumer_ring_sees_only_published_entries() {
        let start = u32::MAX;
        let mut c = ConsRing(anon_ring::<XdpDesc>(2, start));
        assert_eq!(c.pop(), None);
        for i in 0..2u32 {
            let slot = c.0.slot(start.wrapping_add(i));
            // SAFETY: `slot` is in bounds of our own anonymous ring; we play the kernel.
            unsafe {
                slot.write(XdpDesc {
                    addr: u64::from(i) * 4096 + 256,
                    len: 60 + i,
                    options: 0,
                })
            };
        }
        assert_eq!(c.pop(), None, "written but not published");
        c.0.producer()
            .store(start.wrapping_add(1), Ordering::Release);
        assert_eq!(c.pop().map(|d| d.len), Some(60));
        assert_eq!(c.pop(), None);
        c.0.producer()
            .store(start.wrapping_add(2), Ordering::Release);
        assert_eq!(c.pop().map(|d| (d.addr, d.len)), Some((4352, 61)));
        assert_eq!(
            c.0.consumer().load(Ordering::Relaxed),
            start,
            "not released yet"
        );
        c.release();
        assert_eq!(
            c.0.consumer().load(Ordering::Relaxed),
            start.wrapping_add(2)
        );
    }

    #[test]
    fn ring_layouts_the_kernel_could_not_mean_are_rejected() {
        let off = |p, d| libc::xdp_ring_offset {
            producer: p,
            consumer: 4,
            flags: 8,
            desc: d,
        };
        assert!(
            Ring::<u64>::layout_len(&off(0, 64), 3).is_err(),
            "not a power of two"
        );
        assert!(
            Ring::<u64>::layout_len(&off(2, 64), 4).is_err(),
            "misaligned index"
        );
        assert!(
            Ring::<u64>::layout_len(&off(1 << 40, 64), 4).is_err(),
            "outside"
        );
        assert!(
            Ring::<u64>::layout_len(&off(0, 60), 4).is_err(),
            "misaligned descs"
        );
        assert_eq!(Ring::<u64>::layout_len(&off(0, 64), 4).unwrap(), 96);
    }

    #[test]
    fn ring_entries_have_the_kernel_layout() {
        assert_eq!(size_of::<XdpDesc>(), 16);
        assert_eq!(size_of::<libc::xdp_mmap_offsets>(), 128);
        assert_eq!(size_of::<libc::xdp_umem_reg>(), 32);
        assert_eq!(size_of::<libc::xdp_statistics>(), 48);
    }
}
