//! `PACKET_TX_RING` and `PACKET_RX_RING`: rings of frame slots mmap'ed between a packet socket
//! and the kernel (slow path: set up; hot path: fill or read slots, one `send` per transmitted
//! batch, no syscall to receive, status words).
//!
//! Two owners: [`TxRing`] (a transmit ring alone, for a traffic generator) and [`PacketRings`]
//! (receive and transmit rings of one socket in one mapping, for a switch port; receive below).
//!
//! [`TxRing`] owns a [`PacketSocket`] with a `TPACKET_V2` transmit ring of
//! [`RingGeometry::frame_nr`] slots. Each slot is a 32-byte `tpacket2_hdr`, a 10-byte
//! virtio-net header ([`DATA_OFFSET`]) and the frame ([`FRAME_OFFSET`]). A slot's `tp_status`
//! word says who owns it:
//!
//! ```text
//!   AVAILABLE --push--> SEND_REQUEST --kick (send)--> SENDING --device done--> AVAILABLE
//!    (ours)               (kernel's)       |                                 (reclaim: sent)
//!                                          +--frame refused--> WRONG_FORMAT  (ring stuck)
//! ```
//!
//! The kernel walks the ring in order from its own head and stops at the first slot that is
//! not `SEND_REQUEST`; we fill slots in the same order ([`TxRing::push`]) and take them back in
//! the same order ([`TxRing::reclaim`]), so one index each (`head`, `tail`) and a count in flight
//! describe the ring. A frame the device takes and then drops (it has no carrier, its veth peer
//! is down) comes back available like a sent one, and the kick succeeds: only the device's
//! `tx_dropped` counts it (seen on Linux 6.18). A frame a veth peer refuses (a full backlog, an
//! MTU smaller than the frame) fails the kick with `ENOBUFS`, and the kernel stops there, that
//! slot left `SEND_REQUEST`: the next kick would try it first again, for ever when the MTU is
//! the cause, unless it is skipped ([`PacketRings::tx_skip_refused`]). A device set down fails
//! the kick with `ENETDOWN` before any slot is taken: the frames stay queued
//! ([`TxRing::waiting`]) and are lost when the ring goes ([`PacketRings::tx_unsent`]).
//! A frame the kernel cannot send at all (shorter than an Ethernet header, say) becomes
//! `WRONG_FORMAT` and the kernel will not move past it: [`Reclaimed::refused`].
//!
//! Why `TPACKET_V2`: the kernel transmits from a V1, V2 or V3 ring with the same loop
//! (`tpacket_snd`: one skb per slot), so the version only sets the header: V3's block machinery
//! exists for receive only, its transmit slots carry a 48-byte header instead of 32 and an extra
//! per-frame check (`tp_next_offset` must be 0); V1's header has `unsigned long` fields whose
//! size depends on the ABI. V2 is the smallest fixed header on the same path, so it is at least
//! as fast as the others.
//!
//! Why a virtio-net header: without one the kernel copies the 14-byte Ethernet header into the
//! skb and attaches the rest of the slot as a page fragment (zero copy). Every path that keeps
//! the data after the send completes must then copy it into a freshly allocated page
//! (`skb_copy_ubufs`): veth does for every frame, as does a local receiver. With
//! `PACKET_VNET_HDR` and a header that asks for no offload and says `hdr_len` = the frame's
//! length, the kernel copies the whole frame into the skb's linear part instead, as `sendmsg`
//! does, and nothing is allocated per page. Into a veth this sent 60-byte frames 25-40 % faster
//! (9000-byte frames 25 %) than the fragments, on one core (`docs/pktgen.md`). The price: with a
//! virtio-net header the kernel does not check frames against the device's MTU; the caller
//! must (a frame the device drops for its length is retried by every kick).
//!
//! Memory ordering: we write a slot's frame and `tp_len`, then store `SEND_REQUEST` with
//! `Release`; the kernel reads the status (after `smp_rmb`) and then the frame. The kernel
//! stores `AVAILABLE` (after `smp_wmb`) when the device is done; we load it with `Acquire`
//! before writing the slot again.
//!
//! ## Receive (`PacketRings`)
//!
//! The kernel writes each received frame into the slot at its head if that slot's status is
//! `TP_STATUS_KERNEL`, then sets it to `TP_STATUS_USER` (after `smp_wmb`; we load it with
//! `Acquire`) and moves on; a slot that is not `TP_STATUS_KERNEL` stops it (the frame is dropped
//! and counted in `PACKET_STATISTICS`). We read slots in the same order
//! ([`PacketRings::rx_next`]) and give them back by storing `TP_STATUS_KERNEL` with `Release`
//! ([`PacketRings::rx_release`]), oldest first: a slot released before an older one waits, so
//! `head`, `tail` and a count describe the ring, as for transmit. The slot header
//! (`tpacket2_hdr`) says where the frame is (`tp_mac`: [`RX_MAC_OFFSET`] with a virtio-net
//! header, which the kernel writes just before the frame), how long it is, and the VLAN tag the
//! device stripped. A frame longer than a slot is cut; with `PACKET_COPY_THRESH` the kernel also
//! queues a full copy on the socket and marks the slot `TP_STATUS_COPY`, so the caller reads
//! it with `recvmsg` (the socket's queue holds nothing else).
//!
//! `TPACKET_V2` rather than V3 on receive: V3 hands over a block of frames when it is full or
//! when its retire timer (milliseconds) fires, which delays a lone frame; V2 hands over each
//! frame at once. (V3 with `PACKET_VNET_HDR` does work on receive here, kernel 6.18.)
//!
//! Thread-safety: one thread drives a ring (`&mut self`); it is `Send`, not `Sync`.

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::cpu::prefetch;
use super::mmap::Mmap;
use super::packet::PacketSocket;
use super::tun::{VNET_HDR_LEN, encode_vnet_hdr};
use crate::buf::Offload;

/// Where the data starts in a slot (the virtio-net header, then the frame):
/// `TPACKET_ALIGN(sizeof(struct tpacket2_hdr))`, which is `TPACKET2_HDRLEN - sizeof(struct
/// sockaddr_ll)`, the offset the kernel sends from.
pub const DATA_OFFSET: usize = 32;
/// How many slots ahead a receive prefetches the header line.
const RX_PREFETCH_AHEAD: u32 = 4;
/// Where the frame starts in a slot, after the virtio-net header.
pub const FRAME_OFFSET: usize = DATA_OFFSET + VNET_HDR_LEN;
/// Slot sizes the kernel accepts are multiples of this (`TPACKET_ALIGNMENT`).
const ALIGNMENT: usize = libc::TPACKET_ALIGNMENT;
/// Smallest slot the kernel accepts (`TPACKET2_HDRLEN`).
const MIN_SLOT: usize = libc::TPACKET2_HDRLEN;
/// Longest frame a ring is built for (what the header's `hdr_len` can say).
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;

const _: () = assert!(size_of::<libc::tpacket2_hdr>() == DATA_OFFSET);
const _: () = assert!(libc::TPACKET2_HDRLEN - size_of::<libc::sockaddr_ll>() == DATA_OFFSET);

/// Status bits that mean "not ours": the kernel has the slot, or refused it. Anything else
/// (`TP_STATUS_AVAILABLE`, possibly with timestamp flags) is ours.
const BUSY: u32 =
    libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING | libc::TP_STATUS_WRONG_FORMAT;

/// How a transmit ring is laid out (`struct tpacket_req`), and where slot `i` is.
///
/// Slots up to a page are a power of two bytes in page-sized blocks, so a frame never straddles
/// a page: the kernel attaches each page a frame touches to the skb as one fragment, and one is
/// the fewest. Larger slots are whole pages, one slot per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingGeometry {
    frame_size: u32,
    block_size: u32,
    block_nr: u32,
    frame_nr: u32,
}

/// The system's page size (4096 when it cannot be read).
fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant; it has no memory arguments.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(v).ok().filter(|p| *p > 0).unwrap_or(4096)
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

impl RingGeometry {
    /// A ring for frames of up to `max_len` bytes, as many slots as fit in `max_bytes` but at
    /// most `max_frames`, on this system's page size.
    ///
    /// # Errors
    /// `InvalidInput` when `max_len` is 0 or above [`MAX_FRAME_LEN`], or not even one block
    /// fits in `max_bytes`.
    pub fn new(max_len: usize, max_bytes: usize, max_frames: u32) -> io::Result<Self> {
        Self::with_page(max_len, max_bytes, max_frames, page_size())
    }

    /// [`RingGeometry::new`] for a given page size (a power of two).
    ///
    /// # Errors
    /// As [`RingGeometry::new`], and for a page size that is not a power of two of at least
    /// 1024 bytes.
    pub fn with_page(
        max_len: usize,
        max_bytes: usize,
        max_frames: u32,
        page: usize,
    ) -> io::Result<Self> {
        if !page.is_power_of_two() || page < 1024 {
            return Err(invalid(format!("page size {page} is not a power of two")));
        }
        if max_len == 0 || max_len > MAX_FRAME_LEN {
            return Err(invalid(format!(
                "frame length {max_len} out of range 1..={MAX_FRAME_LEN}"
            )));
        }
        let need = (FRAME_OFFSET + max_len).max(MIN_SLOT);
        let (frame_size, block_size) = if need <= page {
            (need.next_power_of_two(), page)
        } else {
            let s = need.div_ceil(page) * page;
            (s, s)
        };
        debug_assert!(frame_size.is_multiple_of(ALIGNMENT));
        // Slots lie end to end ([`RingGeometry::offset`] relies on it).
        debug_assert!(block_size.is_multiple_of(frame_size));
        let per_block = block_size / frame_size;
        let frames = (max_bytes / frame_size).min(max_frames as usize);
        let block_nr = frames / per_block;
        if block_nr == 0 {
            return Err(invalid(format!(
                "a ring of at most {max_bytes} bytes and {max_frames} frames has no room for one \
                 block of {block_size} bytes"
            )));
        }
        let u = |v: usize| u32::try_from(v).map_err(|_| invalid(format!("ring size {v} too big")));
        Ok(Self {
            frame_size: u(frame_size)?,
            block_size: u(block_size)?,
            block_nr: u(block_nr)?,
            frame_nr: u(block_nr * per_block)?,
        })
    }

    /// Bytes per slot (header and frame).
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Bytes per block (a multiple of the page size).
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Blocks.
    pub fn block_nr(&self) -> u32 {
        self.block_nr
    }

    /// Slots.
    pub fn frame_nr(&self) -> u32 {
        self.frame_nr
    }

    /// Longest frame a slot holds.
    pub fn room(&self) -> usize {
        self.frame_size as usize - FRAME_OFFSET
    }

    /// Bytes of the whole ring (what is mapped).
    pub fn bytes(&self) -> usize {
        self.block_size as usize * self.block_nr as usize
    }

    /// Byte offset of slot `i` (< `frame_nr`) in the mapping. The kernel places slot `i` in
    /// block `i / per_block` at `(i % per_block) * frame_size`; every geometry built here has
    /// blocks that are whole multiples of the slot size (a power-of-two slot in a page, or one
    /// slot per block), so the blocks' slots lie end to end and that is `i * frame_size`: no
    /// division on the receive and transmit paths, which ask for slot addresses per frame.
    #[inline]
    fn offset(&self, i: u32) -> usize {
        i as usize * self.frame_size as usize
    }

    fn req(&self) -> libc::tpacket_req {
        libc::tpacket_req {
            tp_block_size: self.block_size,
            tp_block_nr: self.block_nr,
            tp_frame_size: self.frame_size,
            tp_frame_nr: self.frame_nr,
        }
    }
}

/// What [`TxRing::reclaim`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Frames the kernel reported done (status back to available), now free slots again.
    pub sent: u32,
    /// The oldest frame in flight came back `TP_STATUS_WRONG_FORMAT`: the kernel refused it
    /// (`send` said why, typically `EMSGSIZE`: longer than the device's MTU allows) and sends
    /// nothing after it. The ring is stuck; drop it.
    pub refused: bool,
}

/// Where a ring's slots are: `geo.bytes()` bytes from `base`, inside a mapping owned by the
/// struct that owns the ring ([`TxRing`], [`PacketRings`], or a test), which keeps the mapping
/// alive at least as long (it is declared after the slots, so dropped after them).
struct Region {
    base: NonNull<u8>,
    len: usize,
    geo: RingGeometry,
}

// SAFETY: `base` points into a mapping that moves with the owner of the ring (see the type's
// docs); nothing ties it to a thread, and `&mut self` methods of the rings keep one thread at a
// time.
unsafe impl Send for Region {}

impl Region {
    /// Slots laid out as `geo` at byte `offset` of `map`. The caller keeps `map` alive (and
    /// mapped) as long as the region.
    fn new(map: &Mmap, offset: usize, geo: RingGeometry) -> io::Result<Self> {
        if offset
            .checked_add(geo.bytes())
            .is_none_or(|end| end > map.len)
        {
            return Err(invalid("ring mapping too small".into()));
        }
        // SAFETY: `offset + geo.bytes() <= map.len` (checked above): the pointer stays inside
        // the mapping (or one past it for an empty ring, which is never dereferenced).
        let base = unsafe { map.ptr.add(offset) };
        Ok(Self {
            base,
            len: geo.bytes(),
            geo,
        })
    }

    /// Pointer to slot `i` (< `frame_nr`).
    fn slot(&self, i: u32) -> *mut u8 {
        debug_assert!(i < self.geo.frame_nr);
        let off = self.geo.offset(i);
        debug_assert!(off + self.geo.frame_size as usize <= self.len);
        // SAFETY: `i < frame_nr`, so `off + frame_size <= bytes() == len`, and `base..base + len`
        // lies inside the mapping (checked in `Region::new`): the pointer stays inside it.
        unsafe { self.base.as_ptr().add(off) }
    }

    /// Slot `i`'s `tp_status` word.
    fn status(&self, i: u32) -> &AtomicU32 {
        let p = self.slot(i).cast::<u32>();
        // SAFETY: `p` is the first field of slot `i`'s `tpacket2_hdr`, inside the mapping
        // (which lives as long as `&self`); slot offsets are multiples of 16 from a page-aligned
        // start, so it is aligned for an `AtomicU32`. The kernel reads and writes this word
        // concurrently, which is what atomic accesses are for; nothing accesses it non-atomically.
        unsafe { AtomicU32::from_ptr(p) }
    }

    /// The slot after `i`, round the ring.
    fn next(&self, i: u32) -> u32 {
        if i + 1 == self.geo.frame_nr { 0 } else { i + 1 }
    }

    /// The slot `n` after slot `i`, in ring order (no division for `n` below the slot count).
    fn ahead(&self, i: u32, n: u32) -> u32 {
        let nr = self.geo.frame_nr;
        let j = i + n;
        if j < nr {
            j
        } else if j - nr < nr {
            j - nr
        } else {
            j % nr
        }
    }
}

/// The slots of a mapped transmit ring and the bookkeeping of which ones are ours; no socket,
/// so the unit tests can play the kernel on anonymous memory.
struct Slots {
    ring: Region,
    /// Next slot to fill.
    head: u32,
    /// Oldest slot in flight.
    tail: u32,
    /// Slots from `tail` to `head` (filled, not yet reclaimed).
    in_flight: u32,
}

impl Slots {
    /// Transmit slots laid out as `geo` at byte `offset` of `map` (see [`Region::new`]).
    fn new(map: &Mmap, offset: usize, geo: RingGeometry) -> io::Result<Self> {
        Ok(Self {
            ring: Region::new(map, offset, geo)?,
            head: 0,
            tail: 0,
            in_flight: 0,
        })
    }

    /// Slots free to push into.
    #[inline]
    fn free(&self) -> u32 {
        self.ring.geo.frame_nr - self.in_flight
    }

    fn push(&mut self, len: usize, csum: &Offload, fill: impl FnOnce(&mut [u8])) -> bool {
        if self.free() == 0 || len > self.ring.geo.room() || csum.is_gso() {
            return false;
        }
        let i = self.head;
        debug_assert_eq!(self.ring.status(i).load(Ordering::Acquire) & BUSY, 0);
        let base = self.ring.slot(i);
        // SAFETY: slot `i` is ours: it was never handed to the kernel, or `reclaim` saw it back
        // to available (Acquire), and the kernel touches a slot only while its status says
        // SEND_REQUEST or SENDING. The data part `DATA_OFFSET..FRAME_OFFSET + len` lies inside
        // the slot (`len <= room()`), and `&mut self` keeps any other borrow of it away.
        let data =
            unsafe { std::slice::from_raw_parts_mut(base.add(DATA_OFFSET), VNET_HDR_LEN + len) };
        let (vnet, frame) = data.split_at_mut(VNET_HDR_LEN);
        fill(frame);
        // No GSO; `hdr_len` = the whole frame makes the kernel copy all of it into the skb. A
        // partial checksum (`csum_start`/`csum_offset`) is passed on as given.
        let o = Offload {
            hdr_len: len as u16, // `len <= room() <= MAX_FRAME_LEN`
            ..*csum
        };
        if let Ok(vnet) = <&mut [u8; VNET_HDR_LEN]>::try_from(vnet) {
            encode_vnet_hdr(&o, vnet);
        }
        let hdr = base.cast::<libc::tpacket2_hdr>();
        // SAFETY: `hdr` is slot `i`'s header (in the mapping, 16-aligned, ours as above); only
        // `tp_len` is written through it.
        unsafe { (&raw mut (*hdr).tp_len).write((VNET_HDR_LEN + len) as u32) };
        self.ring
            .status(i)
            .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.head = self.ring.next(i);
        self.in_flight += 1;
        true
    }

    fn reclaim(&mut self) -> Reclaimed {
        let mut r = Reclaimed::default();
        while self.in_flight > 0 {
            let s = self.ring.status(self.tail).load(Ordering::Acquire);
            if s & BUSY == 0 {
                r.sent += 1;
                self.tail = self.ring.next(self.tail);
                self.in_flight -= 1;
            } else {
                r.refused = s & libc::TP_STATUS_WRONG_FORMAT != 0;
                break;
            }
        }
        r
    }

    /// The slots in flight, oldest first (from `tail`, `in_flight` of them).
    fn flight(&self) -> impl Iterator<Item = u32> + '_ {
        let mut i = self.tail;
        (0..self.in_flight).map(move |_| {
            let at = i;
            i = self.ring.next(i);
            at
        })
    }

    /// True when slot `i` was emptied by [`skip_refused`](Slots::skip_refused) (its length is
    /// the virtio-net header alone, which `push` never writes: a frame has 14 bytes or more).
    fn skipped(&self, i: u32) -> bool {
        let hdr = self.ring.slot(i).cast::<libc::tpacket2_hdr>();
        // SAFETY: `hdr` is slot `i`'s header, in the mapping and 16-aligned; `tp_len` is read
        // between sends, when nothing writes it (see `skip_refused`).
        unsafe { (&raw const (*hdr).tp_len).read() == VNET_HDR_LEN as u32 }
    }

    /// Makes the oldest frame the kernel has not taken (still `SEND_REQUEST`) one that the
    /// kernel discards at the next kick, so that the frames after it go: a kick that fails
    /// with `ENOBUFS` stopped at the frame its device refused and left that slot
    /// `SEND_REQUEST`, and the next kick would try the same frame first again, for ever if the
    /// device always refuses it (a veth peer whose MTU is smaller than the frame). The slot's
    /// virtio-net header is rewritten to claim more header (`hdr_len` 65,535, no offload)
    /// than its frame has (none: `tp_len` is the header alone), which the kernel refuses as
    /// malformed (`EINVAL`) and, with `PACKET_LOSS` on, skips: the slot comes back available.
    /// False when no frame is waiting, or the oldest is emptied already.
    fn skip_refused(&mut self) -> bool {
        let Some(i) = self.flight().find(|&i| {
            self.ring.status(i).load(Ordering::Acquire) & libc::TP_STATUS_SEND_REQUEST != 0
        }) else {
            return false;
        };
        if self.skipped(i) {
            // Emptied already, and not taken since (the kick failed before it): the kernel
            // discards it at the next kick.
            return false;
        }
        let base = self.ring.slot(i);
        let bad = Offload {
            hdr_len: u16::MAX,
            ..Offload::NONE
        };
        // SAFETY: slot `i` is in the mapping (`Region::slot`), and its header and the
        // virtio-net header after it (`DATA_OFFSET + VNET_HDR_LEN` bytes, less than
        // any slot) are in the slot. The kernel reads a `SEND_REQUEST` slot's length
        // and data only inside a `send` on this socket, which runs on the thread that
        // holds the ring (it is `Send`, not `Sync`) and is not running now; the one
        // asynchronous writer, the destructor of a sent frame, writes only slots in
        // `SENDING`, and the kernel put this one back to `SEND_REQUEST` after its
        // frame's destructor ran. So nothing reads or writes these bytes meanwhile.
        unsafe {
            let mut vnet = [0u8; VNET_HDR_LEN];
            encode_vnet_hdr(&bad, &mut vnet);
            std::ptr::copy_nonoverlapping(vnet.as_ptr(), base.add(DATA_OFFSET), VNET_HDR_LEN);
            let hdr = base.cast::<libc::tpacket2_hdr>();
            (&raw mut (*hdr).tp_len).write(VNET_HDR_LEN as u32);
        }
        true
    }

    /// Frames in flight that the kernel has not taken (still `SEND_REQUEST`, or refused): a
    /// walk over every slot in flight, for when the ring is about to go. A slot
    /// [`skip_refused`](Slots::skip_refused) emptied is not one: its frame was dropped already.
    fn unsent(&self) -> u32 {
        let waiting = libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_WRONG_FORMAT;
        let n = self
            .flight()
            .filter(|&i| {
                self.ring.status(i).load(Ordering::Acquire) & waiting != 0 && !self.skipped(i)
            })
            .count();
        // (At most `in_flight`, a `u32`.)
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn waiting(&self) -> bool {
        if self.in_flight == 0 {
            return false;
        }
        let last = if self.head == 0 {
            self.ring.geo.frame_nr - 1
        } else {
            self.head - 1
        };
        self.ring.status(last).load(Ordering::Acquire) & libc::TP_STATUS_SEND_REQUEST != 0
    }
}

/// `send(fd, NULL, 0, MSG_DONTWAIT)`: asks the kernel to send every queued frame of `sock`'s
/// transmit ring; the bytes it took in this call.
fn kick(sock: &PacketSocket) -> io::Result<usize> {
    super::kick_sendto(sock.as_raw_fd())
}

/// A packet socket with a mapped `TPACKET_V2` transmit ring; unmapped, then closed, on drop.
pub struct TxRing {
    // Declared (so dropped) in this order: the slots (which point into the mapping), the
    // mapping, then the socket, whose close frees the ring (frames still in flight keep their
    // pages until the device is done).
    slots: Slots,
    _map: Mmap,
    sock: PacketSocket,
}

impl fmt::Debug for TxRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxRing")
            .field("geometry", &self.slots.ring.geo)
            .field("head", &self.slots.head)
            .field("tail", &self.slots.tail)
            .field("in_flight", &self.slots.in_flight)
            .finish_non_exhaustive()
    }
}

impl TxRing {
    /// Gives `sock` (an AF_PACKET `SOCK_RAW` socket without a ring or a virtio-net header;
    /// bound or not) `PACKET_VNET_HDR` and a `TPACKET_V2` transmit ring laid out as `geo`, and
    /// maps it. Frames go out on the device the socket is bound to; they are not checked
    /// against its MTU (see the module docs).
    ///
    /// # Errors
    /// `EBUSY` when the socket already has a ring, `EINVAL` for a geometry the kernel refuses,
    /// `ENOMEM` when it cannot allocate the blocks; mmap's errors.
    pub fn new(sock: PacketSocket, geo: RingGeometry) -> io::Result<Self> {
        sock.set_vnet_hdr()?;
        let v2 = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        sock.setsockopt(libc::SOL_PACKET, libc::PACKET_VERSION, &v2)?;
        sock.setsockopt(libc::SOL_PACKET, libc::PACKET_TX_RING, &geo.req())?;
        let map = Mmap::new(geo.bytes(), Some(sock.as_raw_fd()), 0)?;
        Ok(Self {
            slots: Slots::new(&map, 0, geo)?,
            _map: map,
            sock,
        })
    }

    /// The socket (to bind it, set options).
    pub fn socket(&self) -> &PacketSocket {
        &self.sock
    }

    /// The ring's layout.
    pub fn geometry(&self) -> &RingGeometry {
        &self.slots.ring.geo
    }

    /// Slots free to [`TxRing::push`] into.
    #[inline]
    pub fn free(&self) -> u32 {
        self.slots.free()
    }

    /// Frames pushed and not yet reclaimed.
    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.slots.in_flight
    }

    /// Queues one frame of `len` bytes: `fill` writes it into the next free slot (which holds
    /// what was last written there, zeros at first), then the slot is handed to the kernel
    /// (`TP_STATUS_SEND_REQUEST`). Nothing is sent before the next [`TxRing::kick`]. Returns
    /// false, without calling `fill`, when no slot is free or `len` exceeds
    /// [`RingGeometry::room`].
    #[inline]
    pub fn push(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> bool {
        self.slots.push(len, &Offload::NONE, fill)
    }

    /// Asks the kernel to send every queued frame: `send(fd, NULL, 0, MSG_DONTWAIT)`. Returns
    /// the bytes it took in this call.
    ///
    /// # Errors
    /// `EAGAIN` (socket send buffer full): transient, kick again later. `ENOBUFS`: a frame was
    /// dropped on its way out and that slot is queued again; the next kick tries it first
    /// again, so a frame the device always refuses (longer than a veth peer's MTU) stops the
    /// ring for good (a traffic generator sends frames its device's MTU allows; the switch's
    /// port skips such a frame: [`PacketRings::tx_skip_refused`]). `EINVAL`: a frame was
    /// refused (see [`Reclaimed::refused`]). `ENETDOWN`/`ENXIO`: the device is down or gone.
    pub fn kick(&self) -> io::Result<usize> {
        kick(&self.sock)
    }

    /// Takes back, oldest first, the slots the kernel is done with (status back to available),
    /// stopping at the first it still owns.
    #[inline]
    pub fn reclaim(&mut self) -> Reclaimed {
        self.slots.reclaim()
    }

    /// Whether some queued frame has not been taken by the kernel yet (the newest is still
    /// `SEND_REQUEST`): another [`TxRing::kick`] is needed.
    #[inline]
    pub fn waiting(&self) -> bool {
        self.slots.waiting()
    }
}

/// Where a received frame starts in a `TPACKET_V2` receive slot with a virtio-net header and no
/// `tp_reserve`: the kernel puts the network header at `TPACKET_ALIGN(32 + 16)` = 48, plus the
/// 10-byte virtio-net header, and the 14-byte Ethernet header before it (`tpacket_rcv`).
pub const RX_MAC_OFFSET: usize = 48 + VNET_HDR_LEN - 14;

impl RingGeometry {
    /// A receive ring whose slots hold a frame of up to `max_len` bytes at [`RX_MAC_OFFSET`];
    /// longer frames are cut in the slot (see [`RxFrame::copied`]).
    ///
    /// # Errors
    /// As [`RingGeometry::new`].
    pub fn for_rx(max_len: usize, max_bytes: usize, max_frames: u32) -> io::Result<Self> {
        Self::new(
            max_len + (RX_MAC_OFFSET - FRAME_OFFSET),
            max_bytes,
            max_frames,
        )
    }

    /// Longest frame a receive slot holds in full.
    pub fn rx_room(&self) -> usize {
        self.frame_size as usize - RX_MAC_OFFSET
    }
}

/// One received frame, as the kernel described it in its slot's `tpacket2_hdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxFrame {
    /// The slot (give it back with [`PacketRings::rx_release`]).
    pub slot: u32,
    /// Offset of the frame's Ethernet header in [`PacketRings::rx_bytes`] of the slot; the
    /// virtio-net header is the [`VNET_HDR_LEN`] bytes before it.
    pub off: u32,
    /// Bytes of the frame in the slot.
    pub snaplen: u32,
    /// Length of the whole frame.
    pub len: u32,
    /// The frame did not fit in the slot (`snaplen < len`) and the kernel queued a full copy on
    /// the socket (`TP_STATUS_COPY`, `PACKET_COPY_THRESH`): the next `recvmsg` returns it, in the
    /// order of these slots.
    pub copied: bool,
    /// The VLAN tag (TPID, TCI) the device took out of the frame.
    pub vlan: Option<(u16, u16)>,
}

/// The slots of a mapped receive ring: the kernel fills them in order (status
/// `TP_STATUS_KERNEL` → `TP_STATUS_USER`); we read them in the same order and give them back in
/// the same order, each only once every older one was released, so one index each (`head`: next
/// to read, `tail`: oldest not given back) and a count describe the ring. Like [`Slots`], its
/// [`Region`] points into a mapping its owner keeps alive.
struct RxSlots {
    ring: Region,
    /// Next slot to read.
    head: u32,
    /// Oldest slot read and not yet given back.
    tail: u32,
    /// Slots from `tail` to `head`.
    held: u32,
    /// Slots released by the caller that wait for an older one (allocated once).
    done: Box<[bool]>,
}

impl RxSlots {
    fn new(map: &Mmap, offset: usize, geo: RingGeometry) -> io::Result<Self> {
        Ok(Self {
            ring: Region::new(map, offset, geo)?,
            head: 0,
            tail: 0,
            held: 0,
            done: vec![false; geo.frame_nr as usize].into_boxed_slice(),
        })
    }

    /// Whether slot `i` was read and not given back (ours).
    fn is_held(&self, i: u32) -> bool {
        let n = self.ring.geo.frame_nr;
        // How far `i` is past the oldest held slot, round the ring (no division: this runs
        // for every frame the pipeline reads and every release).
        let ahead = if i >= self.tail {
            i - self.tail
        } else {
            i + n - self.tail
        };
        i < n && ahead < self.held
    }

    /// Whether the next slot to read holds a frame (the kernel has handed it over).
    fn ready(&self) -> bool {
        self.held < self.ring.geo.frame_nr
            && self.ring.status(self.head).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    fn take(&mut self, copy_ok: bool) -> Option<RxFrame> {
        if self.held == self.ring.geo.frame_nr {
            return None;
        }
        let i = self.head;
        let status = self.ring.status(i).load(Ordering::Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            // The kernel writes a frame before its status: its second line may be there
            // already, and then comes along with the status line instead of after it.
            prefetch(self.ring.slot(i).wrapping_add(64));
            return None;
        }
        let copied = status & libc::TP_STATUS_COPY != 0;
        if copied && !copy_ok {
            return None;
        }
        // The kernel wrote this slot and likely the next ones on the receiving CPU: start
        // loading the header line of the slot RX_PREFETCH_AHEAD on (a later take reads its
        // status) and this slot's second line (the rest of the frame's IP header and its L4
        // header, read when the batch is processed), so the batch's transfers overlap.
        let slot = self.ring.slot(i);
        prefetch(slot.wrapping_add(64));
        prefetch(self.ring.slot(self.ring.ahead(i, RX_PREFETCH_AHEAD)));
        let hdr = slot.cast::<libc::tpacket2_hdr>();
        // SAFETY: slot `i`'s header, in the mapping and aligned; its status says
        // TP_STATUS_USER (loaded with Acquire above, after the kernel's smp_wmb), so the kernel
        // wrote these fields before and touches the slot no more until we give it back. Only
        // the fields after the status word are read, by value.
        let (len, snaplen, mac, tci, tpid) = unsafe {
            (
                (&raw const (*hdr).tp_len).read(),
                (&raw const (*hdr).tp_snaplen).read(),
                (&raw const (*hdr).tp_mac).read(),
                (&raw const (*hdr).tp_vlan_tci).read(),
                (&raw const (*hdr).tp_vlan_tpid).read(),
            )
        };
        let vlan = (status & libc::TP_STATUS_VLAN_VALID != 0 || tci != 0).then(|| {
            let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                tpid
            } else {
                0x8100
            };
            (tpid, tci)
        });
        self.head = self.ring.next(i);
        self.held += 1;
        Some(RxFrame {
            slot: i,
            off: u32::from(mac).saturating_sub(DATA_OFFSET as u32),
            snaplen,
            len,
            copied,
            vlan,
        })
    }

    /// The bytes of held slot `i` after its `tpacket2_hdr`.
    fn bytes(&self, i: u32) -> Option<&[u8]> {
        if !self.is_held(i) {
            return None;
        }
        // SAFETY: slot `i` is held: its status is TP_STATUS_USER and the kernel does not touch
        // it until `release` (which takes `&mut self`, so this borrow has ended) gives it back.
        // The range `DATA_OFFSET..frame_size` is inside the slot and excludes the status word.
        Some(unsafe {
            std::slice::from_raw_parts(
                self.ring.slot(i).add(DATA_OFFSET),
                self.ring.geo.frame_size as usize - DATA_OFFSET,
            )
        })
    }

    /// As [`RxSlots::bytes`], writable.
    fn bytes_mut(&mut self, i: u32) -> Option<&mut [u8]> {
        if !self.is_held(i) {
            return None;
        }
        // SAFETY: as in `bytes`; `&mut self` makes this the only borrow of the slot.
        Some(unsafe {
            std::slice::from_raw_parts_mut(
                self.ring.slot(i).add(DATA_OFFSET),
                self.ring.geo.frame_size as usize - DATA_OFFSET,
            )
        })
    }

    /// Marks held slot `i` released; gives back to the kernel, oldest first, every slot from
    /// `tail` on that is released. Returns false for a slot that is not held.
    fn release(&mut self, i: u32) -> bool {
        if !self.is_held(i) {
            return false;
        }
        self.done[i as usize] = true;
        while self.held > 0 && self.done[self.tail as usize] {
            self.done[self.tail as usize] = false;
            self.ring
                .status(self.tail)
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.tail = self.ring.next(self.tail);
            self.held -= 1;
        }
        true
    }
}

/// A packet socket with a `TPACKET_V2` receive ring and a transmit ring in one mapping (the
/// kernel maps both at once, receive ring first); unmapped, then closed, on drop.
///
/// Receive: [`PacketRings::rx_next`] hands out filled slots in ring order without a syscall;
/// the frame stays in its slot until [`PacketRings::rx_release`], and slots go back to the
/// kernel in ring order. A frame longer than a slot is cut there and a full copy is queued on
/// the socket (`PACKET_COPY_THRESH`), to be read with `recvmsg`/`recvmmsg` ([`RxFrame::copied`]).
/// Transmit: as [`TxRing`], and frames may carry a partial checksum (no GSO);
/// `PACKET_LOSS` is on, so a frame the kernel refuses is skipped instead of stopping the ring.
pub struct PacketRings {
    // Dropped in this order: the slot views, the mapping, then the socket.
    rx: RxSlots,
    tx: Slots,
    _map: Mmap,
    sock: PacketSocket,
}

impl fmt::Debug for PacketRings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketRings")
            .field("rx", &self.rx.ring.geo)
            .field("rx_head", &self.rx.head)
            .field("rx_held", &self.rx.held)
            .field("tx", &self.tx.ring.geo)
            .field("tx_in_flight", &self.tx.in_flight)
            .finish_non_exhaustive()
    }
}

impl PacketRings {
    /// Gives `sock` (an AF_PACKET socket with `PACKET_VNET_HDR` on and no ring yet, bound or
    /// not) `TPACKET_V2` receive and transmit rings laid out as `rx` and `tx` (see
    /// [`RingGeometry::for_rx`]), with `PACKET_COPY_THRESH` and `PACKET_LOSS`, and maps them.
    ///
    /// # Errors
    /// `EBUSY` when the socket already has a ring, `EINVAL` for a geometry the kernel refuses,
    /// `ENOMEM` when it cannot allocate the blocks; mmap's errors.
    pub fn new(sock: PacketSocket, rx: RingGeometry, tx: RingGeometry) -> io::Result<Self> {
        let v2 = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        let on: libc::c_int = 1;
        sock.setsockopt(libc::SOL_PACKET, libc::PACKET_VERSION, &v2)?;
        sock.setsockopt(libc::SOL_PACKET, libc::PACKET_COPY_THRESH, &on)?;
        sock.setsockopt(libc::SOL_PACKET, libc::PACKET_LOSS, &on)?;
        sock.setsockopt(libc::SOL_PACKET, libc::PACKET_RX_RING, &rx.req())?;
        sock.setsockopt(libc::SOL_PACKET, libc::PACKET_TX_RING, &tx.req())?;
        let map = Mmap::new(rx.bytes() + tx.bytes(), Some(sock.as_raw_fd()), 0)?;
        Ok(Self {
            rx: RxSlots::new(&map, 0, rx)?,
            tx: Slots::new(&map, rx.bytes(), tx)?,
            _map: map,
            sock,
        })
    }

    /// The socket.
    pub fn socket(&self) -> &PacketSocket {
        &self.sock
    }

    /// The receive ring's layout.
    pub fn rx_geometry(&self) -> &RingGeometry {
        &self.rx.ring.geo
    }

    /// The transmit ring's layout.
    pub fn tx_geometry(&self) -> &RingGeometry {
        &self.tx.ring.geo
    }

    /// The next filled receive slot, in ring order, now held by the caller; `None` when the
    /// kernel has filled no more (or every slot is held), or when the next frame is
    /// [`RxFrame::copied`] and `copy_ok` is false (it stays for a later call).
    #[inline]
    pub fn rx_next(&mut self, copy_ok: bool) -> Option<RxFrame> {
        self.rx.take(copy_ok)
    }

    /// The bytes of held receive slot `slot` after its header (the frame is at
    /// [`RxFrame::off`]); `None` when the slot is not held.
    #[inline]
    pub fn rx_bytes(&self, slot: u32) -> Option<&[u8]> {
        self.rx.bytes(slot)
    }

    /// As [`PacketRings::rx_bytes`], writable.
    #[inline]
    pub fn rx_bytes_mut(&mut self, slot: u32) -> Option<&mut [u8]> {
        self.rx.bytes_mut(slot)
    }

    /// Releases held receive slot `slot`; it goes back to the kernel once every older slot has
    /// been released too. False (and nothing happens) when the slot is not held.
    #[inline]
    pub fn rx_release(&mut self, slot: u32) -> bool {
        self.rx.release(slot)
    }

    /// Whether a received frame waits in the next slot (not taken yet).
    #[inline]
    pub fn rx_ready(&self) -> bool {
        self.rx.ready()
    }

    /// Receive slots held by the caller.
    #[inline]
    pub fn rx_held(&self) -> u32 {
        self.rx.held
    }

    /// Transmit slots free to push into.
    #[inline]
    pub fn tx_free(&self) -> u32 {
        self.tx.free()
    }

    /// Queues one frame of `len` bytes with the checksum state of `csum` (no GSO: a GSO
    /// `csum` is refused), as [`TxRing::push`].
    #[inline]
    pub fn tx_push(&mut self, len: usize, csum: &Offload, fill: impl FnOnce(&mut [u8])) -> bool {
        self.tx.push(len, csum, fill)
    }

    /// As [`TxRing::kick`].
    ///
    /// # Errors
    /// As [`TxRing::kick`].
    pub fn tx_kick(&self) -> io::Result<usize> {
        kick(&self.sock)
    }

    /// As [`TxRing::reclaim`].
    #[inline]
    pub fn tx_reclaim(&mut self) -> Reclaimed {
        self.tx.reclaim()
    }

    /// As [`TxRing::waiting`].
    #[inline]
    pub fn tx_waiting(&self) -> bool {
        self.tx.waiting()
    }

    /// As `Slots::skip_refused`: after a kick that failed with `ENOBUFS`, makes the frame the
    /// device refused one the kernel skips at the next kick; false when no frame is waiting.
    pub fn tx_skip_refused(&mut self) -> bool {
        self.tx.skip_refused()
    }

    /// Frames pushed that the kernel has not taken yet (it has not sent them and will not,
    /// once the ring is gone): a walk over the slots in flight, for when the port closes.
    pub fn tx_unsent(&self) -> u32 {
        self.tx.unsent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;
    const MIB: usize = 1 << 20;

    #[test]
    fn small_frames_get_power_of_two_slots_in_page_blocks() {
        let g = RingGeometry::with_page(60, 4 * MIB, 4096, PAGE).unwrap();
        assert_eq!(
            (g.frame_size(), g.block_size(), g.frame_nr(), g.block_nr()),
            (128, 4096, 4096, 128)
        );
        assert_eq!(g.bytes(), 512 * 1024);
        assert_eq!(g.room(), 128 - 42);
        let g = RingGeometry::with_page(1514, 4 * MIB, 4096, PAGE).unwrap();
        assert_eq!(
            (g.frame_size(), g.frame_nr(), g.block_nr()),
            (2048, 2048, 1024)
        );
        assert_eq!(g.bytes(), 4 * MIB);
        // Exactly a page: still one slot per page.
        let g = RingGeometry::with_page(PAGE - FRAME_OFFSET, MIB, 4096, PAGE).unwrap();
        assert_eq!((g.frame_size(), g.frame_nr()), (4096, 256));
        let g = RingGeometry::with_page(PAGE - FRAME_OFFSET + 1, MIB, 4096, PAGE).unwrap();
        assert_eq!((g.frame_size(), g.frame_nr()), (8192, 128));
    }

    #[test]
    fn jumbo_frames_get_whole_pages_and_the_budget_bounds_the_ring() {
        let g = RingGeometry::with_page(9000, 4 * MIB, 4096, PAGE).unwrap();
        assert_eq!((g.frame_size(), g.block_size()), (12288, 12288));
        assert_eq!(g.frame_nr(), (4 * MIB / 12288) as u32);
        assert_eq!(g.frame_nr(), g.block_nr());
        assert!(g.bytes() <= 4 * MIB);
        assert!(g.room() >= 9000);
        // A 64 KiB page holds several jumbo slots.
        let g = RingGeometry::with_page(9000, 4 * MIB, 4096, 65536).unwrap();
        assert_eq!((g.frame_size(), g.block_size()), (16384, 65536));
        assert_eq!(g.frame_nr() % 4, 0);
    }

    #[test]
    fn every_geometry_is_one_the_kernel_accepts() {
        for page in [4096, 16384, 65536] {
            for len in (1..=9018).step_by(7).chain([MAX_FRAME_LEN]) {
                for (bytes, frames) in [(4 * MIB, 4096), (64 * 1024, 8), (16 * MIB, 100_000)] {
                    let Ok(g) = RingGeometry::with_page(len, bytes, frames, page) else {
                        // Only the tiny budget may have no room for one block.
                        assert_eq!((bytes, frames), (64 * 1024, 8), "{len} {page}");
                        continue;
                    };
                    let (fs, bs) = (g.frame_size() as usize, g.block_size() as usize);
                    assert!(fs >= MIN_SLOT && fs.is_multiple_of(ALIGNMENT), "{g:?}");
                    assert!(bs.is_multiple_of(page) && bs.is_multiple_of(fs), "{g:?}");
                    assert_eq!(g.frame_nr(), g.block_nr() * (bs / fs) as u32, "{g:?}");
                    assert!(g.room() >= len, "{g:?}");
                    assert!(g.bytes() <= bytes && g.frame_nr() <= frames, "{g:?}");
                    // No slot straddles a page unless it is bigger than one.
                    if fs <= page {
                        assert!(page.is_multiple_of(fs), "{g:?}");
                    }
                    let last = g.frame_nr() - 1;
                    assert!(g.offset(last) + fs <= g.bytes(), "{g:?}");
                    // Where the kernel puts each slot (block, then place in the block): the
                    // first and last, those at a block's end and the next block's start.
                    let per_block = (bs / fs) as u32;
                    let slots = [0, 1, per_block - 1, per_block, last / 2, last];
                    for i in slots.into_iter().filter(|&i| i <= last) {
                        let kernel = (i / per_block) as usize * bs + (i % per_block) as usize * fs;
                        assert_eq!(g.offset(i), kernel, "slot {i} of {g:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn impossible_rings_are_errors() {
        assert!(RingGeometry::with_page(0, MIB, 64, PAGE).is_err());
        assert!(RingGeometry::with_page(MAX_FRAME_LEN + 1, 64 * MIB, 64, PAGE).is_err());
        assert!(RingGeometry::with_page(9000, 8192, 64, PAGE).is_err());
        assert!(RingGeometry::with_page(60, MIB, 16, PAGE).is_err()); // < one 32-slot block
        assert!(RingGeometry::with_page(60, MIB, 64, 3000).is_err());
    }

    /// Slots over anonymous memory; the test plays the kernel by writing status words.
    fn anon(geo: RingGeometry) -> (Mmap, Slots) {
        let map = Mmap::new(geo.bytes(), None, 0).unwrap();
        let slots = Slots::new(&map, 0, geo).unwrap();
        (map, slots)
    }

    #[test]
    fn slots_go_round_in_order_and_come_back_when_the_kernel_is_done() {
        let geo = RingGeometry::with_page(100, 16384, 64, PAGE).unwrap();
        assert_eq!((geo.frame_size(), geo.frame_nr()), (256, 64));
        let (_map, mut s) = anon(geo);
        for k in 0..64u8 {
            assert!(s.push(100, &Offload::NONE, |b| b[99] = k));
        }
        assert!(!s.push(100, &Offload::NONE, |_| panic!(
            "full ring must not call fill"
        )));
        assert!(s.waiting());
        for i in 0..64 {
            assert_eq!(
                s.ring.status(i).load(Ordering::Relaxed),
                libc::TP_STATUS_SEND_REQUEST
            );
            // SAFETY: test-only read of tp_len inside slot `i`.
            let len = unsafe { (*s.ring.slot(i).cast::<libc::tpacket2_hdr>()).tp_len };
            assert_eq!(len, 110, "virtio-net header and frame");
            // SAFETY: test-only read of the virtio-net header and frame inside slot `i`.
            let data = unsafe { std::slice::from_raw_parts(s.ring.slot(i).add(DATA_OFFSET), 110) };
            // No offload, hdr_len = 100: the kernel copies the whole frame.
            assert_eq!(data[2..4], 100u16.to_ne_bytes());
            assert!(data[..2].iter().chain(&data[4..10]).all(|b| *b == 0));
            assert_eq!(u32::from(data[10 + 99]), i);
        }
        // The kernel sends 0..9; 9 is still being sent, 10 not taken yet.
        for i in 0..9 {
            s.ring
                .status(i)
                .store(libc::TP_STATUS_AVAILABLE, Ordering::Release);
        }
        s.ring
            .status(9)
            .store(libc::TP_STATUS_SENDING, Ordering::Release);
        // Out of order completion is only taken back in order.
        s.ring
            .status(20)
            .store(libc::TP_STATUS_AVAILABLE, Ordering::Release);
        assert_eq!(
            s.reclaim(),
            Reclaimed {
                sent: 9,
                refused: false
            }
        );
        assert_eq!(s.in_flight, 55);
        assert!(s.waiting());
        // A timestamp flag on an available slot still means done.
        s.ring
            .status(9)
            .store(libc::TP_STATUS_AVAILABLE | (1 << 29), Ordering::Release);
        assert_eq!(s.reclaim().sent, 1);
        // Wrap around: the freed slots are refilled from slot 0 on.
        assert!(s.push(10, &Offload::NONE, |b| b[0] = 0xee));
        assert_eq!(s.head, 1);
        for i in (10..64).chain([0]) {
            s.ring
                .status(i)
                .store(libc::TP_STATUS_AVAILABLE, Ordering::Release);
        }
        assert!(!s.waiting());
        assert_eq!(s.reclaim().sent, 55);
        assert_eq!(s.in_flight, 0);
        assert!(!s.waiting());
        assert!(!s.push(geo.room() + 1, &Offload::NONE, |_| panic!("too long")));
    }

    #[test]
    fn a_refused_frame_stops_the_reclaim_and_is_reported() {
        let geo = RingGeometry::with_page(100, 8192, 64, PAGE).unwrap();
        let (_map, mut s) = anon(geo);
        for _ in 0..5 {
            assert!(s.push(60, &Offload::NONE, |_| {}));
        }
        s.ring
            .status(0)
            .store(libc::TP_STATUS_AVAILABLE, Ordering::Release);
        s.ring
            .status(1)
            .store(libc::TP_STATUS_WRONG_FORMAT, Ordering::Release);
        assert_eq!(
            s.reclaim(),
            Reclaimed {
                sent: 1,
                refused: true
            }
        );
        assert_eq!(
            s.reclaim(),
            Reclaimed {
                sent: 0,
                refused: true
            }
        );
        assert_eq!(s.in_flight, 4);
        // Going away now: the refused frame and the 3 the kernel never took are unsent; one
        // it is sending is not.
        s.ring
            .status(2)
            .store(libc::TP_STATUS_SENDING, Ordering::Release);
        assert_eq!(s.unsent(), 3);
    }

    #[test]
    fn a_refused_frame_is_made_one_the_kernel_skips_and_nothing_else_is_touched() {
        let geo = RingGeometry::with_page(100, 8192, 64, PAGE).unwrap();
        let (_map, mut s) = anon(geo);
        assert!(!s.skip_refused(), "nothing in flight");
        for i in 0..3u8 {
            assert!(s.push(60, &Offload::NONE, |b| b.fill(i)));
        }
        // Slot 0 is sent; the kernel stopped at slot 1 (its device refused it).
        s.ring
            .status(0)
            .store(libc::TP_STATUS_AVAILABLE, Ordering::Release);
        assert!(s.skip_refused());
        let read = |s: &Slots, i: u32| {
            let base = s.ring.slot(i);
            // SAFETY: the test owns the mapping; slots are read between kicks, as the port
            // would.
            unsafe {
                let hdr = &*base.cast::<libc::tpacket2_hdr>();
                let vnet = std::slice::from_raw_parts(base.add(DATA_OFFSET), VNET_HDR_LEN);
                (hdr.tp_len, u16::from_ne_bytes([vnet[2], vnet[3]]), vnet[0])
            }
        };
        // Slot 1: no frame after its header, which claims 65,535 bytes of header, no offload.
        assert_eq!(read(&s, 1), (VNET_HDR_LEN as u32, u16::MAX, 0));
        // Slot 2 (waiting behind it) and slot 0 (sent) are as they were.
        assert_eq!(read(&s, 2), (VNET_HDR_LEN as u32 + 60, 60, 0));
        assert_eq!(read(&s, 0), (VNET_HDR_LEN as u32 + 60, 60, 0));
        // Status words are the kernel's to change: still waiting.
        assert_eq!(
            s.ring.status(1).load(Ordering::Acquire),
            libc::TP_STATUS_SEND_REQUEST
        );
        // Its frame was dropped already: of the two waiting, one is unsent.
        assert_eq!(s.unsent(), 1);
        // A kick that fails before the kernel takes it leaves it so; it is not emptied again,
        // nor is the frame behind it.
        assert!(!s.skip_refused());
        assert_eq!(read(&s, 2), (VNET_HDR_LEN as u32 + 60, 60, 0));
    }

    /// Receive slots over anonymous memory; the test plays the kernel.
    fn anon_rx(geo: RingGeometry) -> (Mmap, RxSlots) {
        let map = Mmap::new(geo.bytes(), None, 0).unwrap();
        let slots = RxSlots::new(&map, 0, geo).unwrap();
        (map, slots)
    }

    /// Fills slot `i` as the kernel would: a `len`-byte frame whose first byte is `tag`.
    fn kernel_fills(s: &RxSlots, i: u32, len: u32, tag: u8) {
        let hdr = s.ring.slot(i).cast::<libc::tpacket2_hdr>();
        // SAFETY: test-only writes of slot `i`'s header fields and frame, inside the mapping;
        // the slot is the kernel's (not held), so no slice of it is alive.
        unsafe {
            (&raw mut (*hdr).tp_len).write(len);
            (&raw mut (*hdr).tp_snaplen).write(len.min(s.ring.geo.rx_room() as u32));
            (&raw mut (*hdr).tp_mac).write(RX_MAC_OFFSET as u16);
            s.ring.slot(i).add(RX_MAC_OFFSET).write(tag);
        }
        s.ring
            .status(i)
            .store(libc::TP_STATUS_USER, Ordering::Release);
    }

    #[test]
    fn rx_slots_are_given_back_in_ring_order_only() {
        let geo = RingGeometry::for_rx(60, 4096, 32).unwrap();
        assert_eq!((geo.frame_size(), geo.frame_nr()), (128, 32));
        let (_map, mut s) = anon_rx(geo);
        assert_eq!(s.take(true), None, "nothing filled yet");
        for i in 0..5 {
            kernel_fills(&s, i, 60, i as u8);
        }
        let frames: Vec<RxFrame> = std::iter::from_fn(|| s.take(true)).collect();
        assert_eq!(frames.len(), 5);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(
                (f.slot, f.len, f.snaplen, f.copied),
                (i as u32, 60, 60, false)
            );
            assert_eq!(f.off as usize, RX_MAC_OFFSET - DATA_OFFSET);
            assert_eq!(s.bytes(f.slot).unwrap()[f.off as usize], i as u8);
        }
        // Released out of order: nothing goes back before slot 0 does.
        assert!(s.release(2));
        assert!(s.release(1));
        for i in 0..5 {
            assert_eq!(
                s.ring.status(i).load(Ordering::Relaxed),
                libc::TP_STATUS_USER
            );
        }
        assert!(
            s.bytes(2).is_some(),
            "released but not given back: still ours"
        );
        assert!(s.release(0));
        for i in 0..3 {
            assert_eq!(
                s.ring.status(i).load(Ordering::Relaxed),
                libc::TP_STATUS_KERNEL
            );
            assert!(s.bytes(i).is_none(), "given back: no longer readable");
        }
        assert_eq!(
            s.ring.status(3).load(Ordering::Relaxed),
            libc::TP_STATUS_USER
        );
        assert_eq!((s.tail, s.held), (3, 2));
        assert!(!s.release(0), "not held any more");
        assert!(!s.release(7), "never taken");
        assert!(s.release(4));
        assert!(s.release(3));
        assert_eq!((s.tail, s.head, s.held), (5, 5, 0));
    }

    #[test]
    fn the_rx_ring_wraps_around_and_stops_when_every_slot_is_held() {
        let geo = RingGeometry::for_rx(60, 4096, 32).unwrap();
        let (_map, mut s) = anon_rx(geo);
        let mut next = 0u32;
        // 10 bursts of 20 frames: 200 frames through 32 slots.
        for burst in 0..10u32 {
            for k in 0..20 {
                kernel_fills(&s, (next + k) % 32, 60, (burst * 20 + k) as u8);
            }
            let frames: Vec<RxFrame> = std::iter::from_fn(|| s.take(true)).collect();
            assert_eq!(frames.len(), 20, "burst {burst}");
            for (k, f) in frames.iter().enumerate() {
                assert_eq!(f.slot, (next + k as u32) % 32);
                let b = s.bytes(f.slot).unwrap()[f.off as usize];
                assert_eq!(b, (burst * 20 + k as u32) as u8);
            }
            for f in &frames {
                assert!(s.release(f.slot));
            }
            next = (next + 20) % 32;
            assert_eq!((s.head, s.tail, s.held), (next, next, 0));
        }
        // Every slot filled and held: `take` stops even though the next status says USER
        // again (the kernel never gets that far without our release).
        for i in 0..32 {
            kernel_fills(&s, i, 60, 0);
        }
        assert_eq!(std::iter::from_fn(|| s.take(true)).count(), 32);
        assert_eq!(s.take(true), None);
    }

    #[test]
    fn slots_ahead_go_round_the_ring_in_order() {
        let geo = RingGeometry::for_rx(60, 4096, 32).unwrap();
        let (_map, s) = anon_rx(geo);
        let r = &s.ring;
        assert_eq!(r.ahead(0, RX_PREFETCH_AHEAD), RX_PREFETCH_AHEAD);
        assert_eq!(r.ahead(30, 4), 2);
        assert_eq!(r.ahead(31, 1), r.next(31));
        assert_eq!(r.ahead(31, 32), 31);
        assert_eq!(r.ahead(5, 70), 11);
    }

    #[test]
    fn a_copied_frame_waits_when_the_caller_has_no_room_for_it() {
        let geo = RingGeometry::for_rx(60, 4096, 32).unwrap();
        let (_map, mut s) = anon_rx(geo);
        kernel_fills(&s, 0, 9000, 1);
        s.ring.status(0).store(
            libc::TP_STATUS_USER | libc::TP_STATUS_COPY | libc::TP_STATUS_VLAN_VALID,
            Ordering::Release,
        );
        assert_eq!(s.take(false), None);
        let f = s.take(true).unwrap();
        assert!(f.copied);
        assert_eq!((f.len, f.snaplen as usize), (9000, geo.rx_room()));
        assert_eq!(f.vlan, Some((0x8100, 0)));
    }
}
