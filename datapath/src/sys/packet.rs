//! AF_PACKET sockets (slow path: open and configure; hot path: one `recvmmsg` / `sendmmsg` per
//! batch).
//!
//! [`PacketSocket`] owns a `SOCK_RAW` packet socket and wraps the socket options a switch port
//! needs (`PACKET_VNET_HDR`, `PACKET_IGNORE_OUTGOING`, promiscuous membership, buffer sizes,
//! `PACKET_AUXDATA`, `PACKET_STATISTICS`). [`MmsgSlots`] owns a fixed block of frame slots
//! together with the `mmsghdr`/`iovec`/control-buffer arrays that describe them to the kernel,
//! so batched receive and transmit allocate nothing.
//!
//! The header arrays hold raw pointers into the slot memory of the same struct. They are never
//! trusted between calls: every `recv`/`send` rebuilds the pointers it passes from the current
//! address of the slot memory (cheap: two stores per message), so moving the struct is fine.
//!
//! Thread-safety: one worker uses a socket and its slots; nothing is shared.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

impl PacketSocket {
    /// Sends one frame given in two parts (a virtio-net header, or nothing, then the frame)
    /// with one `sendmsg(MSG_DONTWAIT)`, straight from the caller's memory. Packet sockets take a
    /// message whole or not at all.
    ///
    /// # Errors
    /// `WouldBlock`/`ENOBUFS` when the send buffer or the device queue is full, `EMSGSIZE` or
    /// `EINVAL` for a frame the device refuses, `ENETDOWN`/`ENXIO` when it is down or gone.
    pub fn send_parts(&self, head: &[u8], frame: &[u8]) -> io::Result<usize> {
        let mut iov = [
            libc::iovec {
                iov_base: head.as_ptr().cast_mut().cast::<libc::c_void>(),
                iov_len: head.len(),
            },
            libc::iovec {
                iov_base: frame.as_ptr().cast_mut().cast::<libc::c_void>(),
                iov_len: frame.len(),
            },
        ];
        let skip = usize::from(head.is_empty());
        let mut msg = empty_msghdr();
        msg.msg_iov = iov[skip..].as_mut_ptr();
        msg.msg_iovlen = (2 - skip) as _;
        // SAFETY: `msg` names one or two iovecs on this stack frame that point to `head` and
        // `frame`, both borrowed (readable, alive) for the whole call; the kernel only reads
        // them. No address (the socket is bound) and no control data.
        let rc = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &raw const msg, libc::MSG_DONTWAIT) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(usize::try_from(rc).unwrap_or(0))
        }
    }
}

/// Counters the kernel keeps per packet socket, reset each time they are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketStats {
    /// Frames the socket was offered (received + dropped) since the last read.
    pub packets: u32,
    /// Frames dropped because the receive buffer was full (or a filter failed) since the last
    /// read.
    pub drops: u32,
}

/// Which socket buffer [`PacketSocket::set_buffer`] sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockBuf {
    /// `SO_RCVBUF` (`SO_RCVBUFFORCE` when permitted).
    Rcv,
    /// `SO_SNDBUF` (`SO_SNDBUFFORCE` when permitted).
    Snd,
}

/// A raw packet socket, non-blocking, closed on drop. It is opened with protocol 0 (receives
/// nothing) and starts receiving every protocol of one device at [`PacketSocket::bind`], so no
/// frame of another device is ever queued on it.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

/// `ETH_P_ALL` in network byte order, as `socket(2)` and `sockaddr_ll` want it.
fn eth_p_all_be() -> u16 {
    // ETH_P_ALL (3) fits in 16 bits.
    (libc::ETH_P_ALL as u16).to_be()
}

/// `sizeof(T)` as a `socklen_t` (all option structs here are a few bytes).
fn socklen_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

impl PacketSocket {
    /// Opens a raw packet socket (`SOCK_RAW`, protocol 0 until bound), non-blocking and
    /// close-on-exec.
    ///
    /// # Errors
    /// `EPERM` without `CAP_NET_RAW`.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2), is valid and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// `setsockopt(level, name, value)` (also used by [`super::tpacket`] to set up its ring).
    pub(super) fn setsockopt<T: Copy>(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: &T,
    ) -> io::Result<()> {
        // SAFETY: `value` points to a readable `T` of `size_of::<T>()` bytes for the whole call;
        // the options used in this module take exactly such a value.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                ptr::from_ref(value).cast::<libc::c_void>(),
                socklen_of::<T>(),
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// `getsockopt(level, name)` into a `T`.
    fn getsockopt<T: Copy + Default>(
        &self,
        level: libc::c_int,
        name: libc::c_int,
    ) -> io::Result<T> {
        let mut value = T::default();
        let mut len = socklen_of::<T>();
        // SAFETY: `value` is a writable `T` and `len` its size; the kernel writes at most `len`
        // bytes and updates `len`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                ptr::from_mut(&mut value).cast::<libc::c_void>(),
                &raw mut len,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(value)
        }
    }

    /// Enables `PACKET_VNET_HDR`: every received frame is preceded by a 10-byte
    /// `virtio_net_hdr` describing its GSO/checksum state, and every sent frame must be.
    /// Must be set before a ring is set up (we use none).
    ///
    /// # Errors
    /// `ENOPROTOOPT` on kernels without it; `EBUSY` after a ring was set up.
    pub fn set_vnet_hdr(&self) -> io::Result<()> {
        let on: libc::c_int = 1;
        self.setsockopt(libc::SOL_PACKET, libc::PACKET_VNET_HDR, &on)
    }

    /// Enables `PACKET_IGNORE_OUTGOING`: frames the host transmits on the device (including
    /// ours) are not delivered to this socket.
    ///
    /// # Errors
    /// `ENOPROTOOPT` before Linux 4.20.
    pub fn set_ignore_outgoing(&self) -> io::Result<()> {
        let on: libc::c_int = 1;
        self.setsockopt(libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &on)
    }

    /// Enables `PACKET_QDISC_BYPASS`: frames sent on this socket go straight to the driver,
    /// skipping the device's qdisc (a traffic generator's choice; the driver's busy state then
    /// comes back as `ENOBUFS`).
    ///
    /// # Errors
    /// `ENOPROTOOPT` before Linux 3.14.
    pub fn set_qdisc_bypass(&self) -> io::Result<()> {
        let on: libc::c_int = 1;
        self.setsockopt(libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &on)
    }

    /// Enables `PACKET_AUXDATA`: each received message carries a `tpacket_auxdata` control
    /// message, from which [`MmsgSlots::recv`] reports the VLAN tag the device took out of the
    /// frame (veth and most NICs strip it into metadata on receive).
    ///
    /// # Errors
    /// Should not fail on a packet socket.
    pub fn set_auxdata(&self) -> io::Result<()> {
        let on: libc::c_int = 1;
        self.setsockopt(libc::SOL_PACKET, libc::PACKET_AUXDATA, &on)
    }

    /// Puts device `ifindex` in promiscuous mode for as long as this socket lives
    /// (`PACKET_ADD_MEMBERSHIP` / `PACKET_MR_PROMISC`; the kernel undoes it on close).
    ///
    /// # Errors
    /// `ENODEV` for an unknown index.
    pub fn add_promisc(&self, ifindex: u32) -> io::Result<()> {
        let mreq = libc::packet_mreq {
            mr_ifindex: libc::c_int::try_from(ifindex)
                .map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?,
            mr_type: libc::PACKET_MR_PROMISC as libc::c_ushort,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        self.setsockopt(libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
    }

    /// Binds the socket to device `ifindex` with protocol `ETH_P_ALL`: from now on it receives
    /// every frame of that device, and frames sent without an address go out on it.
    ///
    /// # Errors
    /// `ENODEV` for an unknown index, `ENETDOWN` is not reported (a down device just carries
    /// nothing).
    pub fn bind(&self, ifindex: u32) -> io::Result<()> {
        self.bind_proto(ifindex, eth_p_all_be())
    }

    /// Binds the socket to device `ifindex` with protocol 0: frames sent without an address go
    /// out on it, and it receives nothing (a send-only socket).
    ///
    /// # Errors
    /// `ENODEV` for an unknown index.
    pub fn bind_send_only(&self, ifindex: u32) -> io::Result<()> {
        self.bind_proto(ifindex, 0)
    }

    fn bind_proto(&self, ifindex: u32, proto_be: u16) -> io::Result<()> {
        let sll = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as libc::c_ushort,
            sll_protocol: proto_be,
            sll_ifindex: libc::c_int::try_from(ifindex)
                .map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        // SAFETY: `sll` is a valid `sockaddr_ll` and its size is passed along.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                ptr::from_ref(&sll).cast::<libc::sockaddr>(),
                socklen_of::<libc::sockaddr_ll>(),
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Asks for a socket buffer of `bytes`: first with the `*FORCE` option (needs
    /// `CAP_NET_ADMIN`, ignores `net.core.[rw]mem_max`), else the plain one (capped by the
    /// sysctl). Returns the size the kernel reports afterwards (it doubles the request for
    /// bookkeeping).
    ///
    /// # Errors
    /// Only when even the plain option fails.
    pub fn set_buffer(&self, which: SockBuf, bytes: usize) -> io::Result<usize> {
        let (force, plain) = match which {
            SockBuf::Rcv => (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            SockBuf::Snd => (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        };
        let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX / 2);
        if self.setsockopt(libc::SOL_SOCKET, force, &v).is_err() {
            self.setsockopt(libc::SOL_SOCKET, plain, &v)?;
        }
        let got: libc::c_int = self.getsockopt(libc::SOL_SOCKET, plain)?;
        Ok(usize::try_from(got).unwrap_or(0))
    }

    /// Reads and clears the socket's pending error (`SO_ERROR`; 0 for none). The kernel sets
    /// `ENETDOWN` on a packet socket bound to a device that is down, or that goes down, and
    /// until it is read the socket polls as ready (an error) for ever: a worker waiting on it
    /// would not sleep.
    ///
    /// # Errors
    /// Should not fail on a valid socket.
    pub fn take_error(&self) -> io::Result<i32> {
        self.getsockopt::<libc::c_int>(libc::SOL_SOCKET, libc::SO_ERROR)
    }

    /// Reads and resets the socket's `PACKET_STATISTICS`.
    ///
    /// # Errors
    /// Should not fail on a valid packet socket.
    pub fn take_stats(&self) -> io::Result<PacketStats> {
        let st: TpacketStats = self.getsockopt(libc::SOL_PACKET, libc::PACKET_STATISTICS)?;
        Ok(PacketStats {
            packets: st.0.tp_packets,
            drops: st.0.tp_drops,
        })
    }
}

/// `struct tpacket_stats` with a `Default` (all zero).
#[derive(Clone, Copy)]
#[repr(transparent)]
struct TpacketStats(libc::tpacket_stats);

impl Default for TpacketStats {
    fn default() -> Self {
        Self(libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        })
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// What the kernel reported for one received message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes written into the slot (after its reserved head).
    pub len: u32,
    /// The frame did not fit and was cut (`MSG_TRUNC`).
    pub truncated: bool,
    /// The VLAN tag (TPID, TCI) the device stripped from the frame, from `PACKET_AUXDATA`.
    pub vlan: Option<(u16, u16)>,
}

/// Bytes of control buffer per message: one `cmsghdr` + `tpacket_auxdata`, with room to spare.
const CMSG_BUF_LEN: usize = 64;

/// A control-message buffer aligned like a `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_BUF_LEN]);

const _: () = assert!(align_of::<CmsgBuf>() >= align_of::<libc::cmsghdr>());

/// Finds the `PACKET_AUXDATA` VLAN tag in the control data `ctrl` of one message.
fn auxdata_vlan(ctrl: &[u8]) -> Option<(u16, u16)> {
    let hdr_len = size_of::<libc::cmsghdr>();
    let align = size_of::<usize>();
    let mut off = 0;
    while off + hdr_len <= ctrl.len() {
        let word = |at: usize, n: usize| ctrl.get(off + at..off + at + n);
        let len = usize::from_ne_bytes(word(0, align)?.try_into().ok()?);
        let level = i32::from_ne_bytes(word(align, 4)?.try_into().ok()?);
        let kind = i32::from_ne_bytes(word(align + 4, 4)?.try_into().ok()?);
        if len < hdr_len {
            return None;
        }
        if level == libc::SOL_PACKET && kind == libc::PACKET_AUXDATA {
            let data = ctrl.get(off + hdr_len..off + len)?;
            let u16_at =
                |at: usize| Some(u16::from_ne_bytes(data.get(at..at + 2)?.try_into().ok()?));
            let status = u32::from_ne_bytes(data.get(0..4)?.try_into().ok()?);
            // tpacket_auxdata: status, len, snaplen (u32), mac, net, vlan_tci, vlan_tpid (u16).
            let tci = u16_at(16)?;
            let tpid = u16_at(18)?;
            if status & libc::TP_STATUS_VLAN_VALID == 0 && tci == 0 {
                return None;
            }
            let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                tpid
            } else {
                0x8100
            };
            return Some((tpid, tci));
        }
        off += len.div_ceil(align) * align;
    }
    None
}

/// A fixed block of equally sized frame slots plus the `mmsghdr`/`iovec` arrays to hand any
/// subset of them to `recvmmsg`/`sendmmsg`.
///
/// Each slot is `slot_len` bytes; its first `head` bytes are never given to the kernel (room
/// for a header the caller writes itself, or alignment), so message data starts at
/// `slot start + head`.
pub struct MmsgSlots {
    /// The slot memory, `count * slot_len` bytes, allocated once.
    mem: Box<[u8]>,
    /// Bytes per slot.
    slot_len: usize,
    /// Bytes at the start of each slot not used for message data.
    head: usize,
    /// Message headers; pointers valid only during a `recv`/`send` call.
    hdrs: Box<[libc::mmsghdr]>,
    /// One iovec per message; pointers valid only during a `recv`/`send` call.
    iovs: Box<[libc::iovec]>,
    /// One control buffer per message (receive only).
    ctrl: Box<[CmsgBuf]>,
}

// SAFETY: the only non-`Send` fields are the raw pointers inside `hdrs`/`iovs`. They point into
// `self.mem`, `self.iovs` and `self.ctrl` (owned by the same struct, moved with it), are
// rewritten before every syscall that reads them, and are never dereferenced by Rust code. Sending the struct to another thread
// therefore shares nothing.
unsafe impl Send for MmsgSlots {}

impl std::fmt::Debug for MmsgSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmsgSlots")
            .field("count", &self.count())
            .field("slot_len", &self.slot_len)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// An all-zero `msghdr` (null pointers, zero lengths).
fn empty_msghdr() -> libc::msghdr {
    // SAFETY: `msghdr` is plain data (pointers, lengths, flags, and on some targets private
    // padding fields); all zero is a valid value (null pointers, empty buffers).
    unsafe { mem::zeroed() }
}

impl MmsgSlots {
    /// `count` slots of `slot_len` bytes with `head` reserved bytes each.
    ///
    /// # Panics
    /// When `head >= slot_len` or `count * slot_len` overflows (a programming error).
    pub fn new(count: usize, slot_len: usize, head: usize) -> Self {
        assert!(head < slot_len, "slot head must leave room for data");
        let total = count
            .checked_mul(slot_len)
            .expect("slot memory size overflows");
        let hdrs = (0..count)
            .map(|_| libc::mmsghdr {
                msg_hdr: empty_msghdr(),
                msg_len: 0,
            })
            .collect();
        let iovs = (0..count)
            .map(|_| libc::iovec {
                iov_base: ptr::null_mut(),
                iov_len: 0,
            })
            .collect();
        Self {
            mem: vec![0u8; total].into_boxed_slice(),
            slot_len,
            head,
            hdrs,
            iovs,
            ctrl: vec![CmsgBuf([0; CMSG_BUF_LEN]); count].into_boxed_slice(),
        }
    }

    /// Number of slots.
    #[inline]
    pub fn count(&self) -> usize {
        self.hdrs.len()
    }

    /// Bytes per slot.
    #[inline]
    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// The whole slot `i` (head included); `None` when out of range.
    #[inline]
    pub fn slot(&self, i: usize) -> Option<&[u8]> {
        let start = i.checked_mul(self.slot_len)?;
        self.mem.get(start..start.checked_add(self.slot_len)?)
    }

    /// The whole slot `i` (head included), writable; `None` when out of range.
    #[inline]
    pub fn slot_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let start = i.checked_mul(self.slot_len)?;
        self.mem.get_mut(start..start.checked_add(self.slot_len)?)
    }

    /// Points message `k` at the data part of slot `slot` (`len` bytes of it, at most the
    /// slot's data room), with control buffer `k` when `with_ctrl`. Returns false when `slot` or
    /// `k` is out of range.
    #[inline]
    fn aim(&mut self, k: usize, slot: usize, len: usize, with_ctrl: bool) -> bool {
        let room = self.slot_len - self.head;
        if k >= self.hdrs.len() || slot >= self.hdrs.len() {
            return false;
        }
        let base = self
            .mem
            .as_mut_ptr()
            .wrapping_add(slot * self.slot_len + self.head);
        self.iovs[k] = libc::iovec {
            iov_base: base.cast::<libc::c_void>(),
            iov_len: len.min(room),
        };
        let iov = ptr::from_mut(&mut self.iovs[k]);
        let h = &mut self.hdrs[k];
        h.msg_hdr = empty_msghdr();
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        if with_ctrl {
            h.msg_hdr.msg_control = ptr::from_mut(&mut self.ctrl[k]).cast::<libc::c_void>();
            h.msg_hdr.msg_controllen = CMSG_BUF_LEN as _;
        }
        h.msg_len = 0;
        true
    }

    /// Receives up to `slots.len()` frames with one `recvmmsg(MSG_DONTWAIT)`: message `k` goes
    /// into the data part of slot `slots[k]`, and `meta[k]` tells its length. Returns the
    /// number of messages received (`0` when nothing was queued).
    ///
    /// # Errors
    /// The socket's error (not `WouldBlock`, which is `Ok(0)`). `EINVAL` means the kernel could
    /// not describe a frame's offload state in a virtio-net header and dropped it.
    pub fn recv(
        &mut self,
        sock: &PacketSocket,
        slots: &[u16],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        let mut n = 0;
        for &s in slots.iter().take(meta.len()) {
            if !self.aim(n, usize::from(s), usize::MAX, true) {
                break;
            }
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        let vlen = libc::c_uint::try_from(n).unwrap_or(libc::c_uint::MAX);
        // SAFETY: `hdrs[..n]` were just aimed: each has one iovec in `self.iovs` pointing to
        // disjoint, in-bounds regions of `self.mem` (slot indices checked in `aim`) and its own
        // `CMSG_BUF_LEN`-byte control buffer in `self.ctrl`. `&mut self` keeps all of them alive
        // and unaliased for the call; no name buffer is passed; the timeout is null.
        let rc = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                vlen,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        let got = usize::try_from(rc).unwrap_or(0).min(n);
        for ((m, h), c) in meta
            .iter_mut()
            .zip(&self.hdrs[..got])
            .zip(&self.ctrl[..got])
        {
            // `size_t` with glibc, `socklen_t` with musl.
            #[allow(clippy::useless_conversion)]
            let clen = usize::try_from(h.msg_hdr.msg_controllen).unwrap_or(0);
            *m = RecvMeta {
                len: h.msg_len,
                truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                vlan: auxdata_vlan(c.0.get(..clen).unwrap_or(&[])),
            };
        }
        Ok(got)
    }

    /// Sends `lens.len()` messages with one `sendmmsg(MSG_DONTWAIT)`: message `k` is the first
    /// `lens[k]` data bytes of slot `first + k`. Returns how many the kernel took, which may be
    /// fewer (the next one failed; call again from there to learn why).
    ///
    /// # Errors
    /// The error of the first message when none was sent (`WouldBlock` when the socket's send
    /// buffer is full).
    pub fn send(&mut self, sock: &PacketSocket, first: usize, lens: &[u32]) -> io::Result<usize> {
        let mut n = 0;
        for (k, &len) in lens.iter().enumerate() {
            let Some(slot) = first.checked_add(k) else {
                break;
            };
            if !self.aim(k, slot, len as usize, false) {
                break;
            }
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        let vlen = libc::c_uint::try_from(n).unwrap_or(libc::c_uint::MAX);
        // SAFETY: `hdrs[..n]` were just aimed at in-bounds regions of `self.mem` which `&mut
        // self` keeps alive; the kernel only reads them. No address (the socket is bound) and no
        // control data.
        let rc = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                vlen,
                libc::MSG_DONTWAIT,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(usize::try_from(rc).unwrap_or(0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_disjoint_and_bounded() {
        let mut s = MmsgSlots::new(4, 128, 10);
        assert_eq!(s.count(), 4);
        s.slot_mut(3).expect("slot 3")[0] = 7;
        assert_eq!(s.slot(3).expect("slot 3")[0], 7);
        assert_eq!(s.slot(2).expect("slot 2")[0], 0);
        assert!(s.slot(4).is_none());
        assert!(s.aim(0, 3, 1000, false));
        assert_eq!(s.iovs[0].iov_len, 118);
        assert!(!s.aim(0, 4, 10, false));
    }

    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let hdr = size_of::<libc::cmsghdr>();
        let mut v = Vec::new();
        v.extend_from_slice(&(hdr + data.len()).to_ne_bytes());
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % size_of::<usize>() != 0 {
            v.push(0);
        }
        v
    }

    fn auxdata(status: u32, tci: u16, tpid: u16) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&status.to_ne_bytes());
        d.extend_from_slice(&[0; 12]);
        d.extend_from_slice(&tci.to_ne_bytes());
        d.extend_from_slice(&tpid.to_ne_bytes());
        d
    }

    #[test]
    fn auxdata_vlan_tag_is_found_after_other_messages() {
        let mut ctrl = cmsg(libc::SOL_SOCKET, 1, &[1, 2, 3]);
        let tagged = libc::TP_STATUS_VLAN_VALID | libc::TP_STATUS_VLAN_TPID_VALID;
        ctrl.extend(cmsg(
            libc::SOL_PACKET,
            libc::PACKET_AUXDATA,
            &auxdata(tagged, 0x6064, 0x88a8),
        ));
        assert_eq!(auxdata_vlan(&ctrl), Some((0x88a8, 0x6064)));
        let old_kernel = cmsg(libc::SOL_PACKET, libc::PACKET_AUXDATA, &auxdata(0, 5, 0));
        assert_eq!(auxdata_vlan(&old_kernel), Some((0x8100, 5)));
        let untagged = cmsg(libc::SOL_PACKET, libc::PACKET_AUXDATA, &auxdata(0, 0, 0));
        assert_eq!(auxdata_vlan(&untagged), None);
        assert_eq!(auxdata_vlan(&ctrl[..10]), None);
        assert_eq!(auxdata_vlan(&[]), None);
    }
}
