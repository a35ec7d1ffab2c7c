//! TAP devices through `/dev/net/tun` (slow path: open and configure; hot path: one `read` or
//! `writev` per frame).
//!
//! [`TunFd`] owns the file descriptor of one attached TAP queue. The ioctls used are the ones
//! every virtio backend uses (QEMU, Firecracker): `TUNSETIFF` with `IFF_TAP | IFF_NO_PI |
//! IFF_VNET_HDR`, `TUNGETIFF` to learn whether the device is persistent, `TUNSETVNETHDRSZ` and
//! `TUNSETOFFLOAD`. This module also holds the layout of `struct virtio_net_hdr` (shared with
//! AF_PACKET's `PACKET_VNET_HDR`, see [`super::packet`]). Link state, MTU and ifindex are in
//! [`super::netdev`].
//!
//! ## The virtio-net header
//! We use the 10-byte legacy `struct virtio_net_hdr` ([`VNET_HDR_LEN`]) for both TAP and
//! AF_PACKET: it is the only size AF_PACKET accepts on every kernel we support, so one codec
//! serves both backends (a TAP whose kernel takes the UDP-tunnel offloads uses the 24-byte
//! tunnel form instead, which starts with the same 10 bytes: [`VNET_TNL_HDR_LEN`]), and the
//! 12-byte `virtio_net_hdr_v1` would only add `num_buffers`, which means nothing for
//! one-frame-per-`read` I/O. With 10 bytes before the frame in a slot that
//! starts 64-byte aligned, the IP header lands at offset 24, 8-byte aligned. Legacy headers are
//! in the host's byte order (the kernel's `virtio_legacy_is_little_endian()`), hence the
//! `from_ne_bytes`/`to_ne_bytes` below.
//!
//! Thread-safety: a [`TunFd`] is used by one worker; the kernel serialises ioctls.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use crate::buf::Offload;

/// Length of the virtio-net header in front of every frame (`struct virtio_net_hdr`).
pub const VNET_HDR_LEN: usize = 10;

/// Length of the tunnel form of the header (`struct virtio_net_hdr_v1_hash_tunnel`: the 10
/// bytes above, `num_buffers`, the hash fields, then the outer UDP header's and the inner IP
/// header's offsets as little-endian `u16` at [`VNET_TNL_OUTER_TH`] and [`VNET_TNL_INNER_NH`]).
/// A TAP given this size and `TUN_F_UDP_TUNNEL_GSO` (Linux 6.17+) carries UDP-tunnel GSO
/// super-frames both ways.
pub const VNET_TNL_HDR_LEN: usize = 24;
/// Offset of `outer_th_offset` in the tunnel form of the header.
pub const VNET_TNL_OUTER_TH: usize = 20;
/// Offset of `inner_nh_offset` in the tunnel form of the header.
pub const VNET_TNL_INNER_NH: usize = 22;

/// `TUN_F_UDP_TUNNEL_GSO`: TSO/USO inside UDP tunnels (Linux 6.17+; not in `libc` yet).
pub const TUN_F_UDP_TUNNEL_GSO: u32 = 0x80;
/// `TUN_F_UDP_TUNNEL_GSO_CSUM`: the same with the outer UDP checksum to compute.
pub const TUN_F_UDP_TUNNEL_GSO_CSUM: u32 = 0x100;

/// Offloads asked first of a TAP: [`OFFLOADS_WITH_USO`] and both UDP-tunnel ones (with
/// [`VNET_TNL_HDR_LEN`]).
pub const OFFLOADS_WITH_TUNNEL: u32 =
    OFFLOADS_WITH_USO | TUN_F_UDP_TUNNEL_GSO | TUN_F_UDP_TUNNEL_GSO_CSUM;

/// Offloads asked of the kernel first: checksum, TSO v4/v6 with ECN, and USO v4/v6.
pub const OFFLOADS_WITH_USO: u32 = libc::TUN_F_CSUM
    | libc::TUN_F_TSO4
    | libc::TUN_F_TSO6
    | libc::TUN_F_TSO_ECN
    | libc::TUN_F_USO4
    | libc::TUN_F_USO6;

/// Offloads asked of kernels that reject USO (before 6.2).
pub const OFFLOADS_TSO: u32 =
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;

/// `struct ifreq` with the union read as `short` flags (40 bytes on 64-bit Linux).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct IfReqFlags {
    /// NUL-terminated device name.
    name: [libc::c_char; libc::IFNAMSIZ],
    /// `ifr_flags`.
    flags: libc::c_short,
    /// The rest of the union.
    pad: [u8; 22],
}

const _: () = assert!(size_of::<IfReqFlags>() == size_of::<libc::ifreq>());

/// Encodes `name` as an `ifr_name`: at most `IFNAMSIZ - 1` bytes, no NUL, no `/`.
fn ifr_name(name: &str) -> io::Result<[libc::c_char; libc::IFNAMSIZ]> {
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ || bytes.iter().any(|&b| b == 0 || b == b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "device name must be at most 15 bytes without NUL or '/'",
        ));
    }
    let mut out = [0 as libc::c_char; libc::IFNAMSIZ];
    for (o, &b) in out.iter_mut().zip(bytes) {
        *o = b as libc::c_char;
    }
    Ok(out)
}

/// Decodes an `ifr_name` written by the kernel.
fn name_from_ifr(raw: &[libc::c_char; libc::IFNAMSIZ]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl IfReqFlags {
    fn new(name: &str, flags: libc::c_short) -> io::Result<Self> {
        Ok(Self {
            name: ifr_name(name)?,
            flags,
            pad: [0; 22],
        })
    }
}

/// Runs `ioctl(fd, req, arg)` where `arg` is an `ifreq`-shaped struct.
///
/// # Safety
/// - `req` must be an ioctl whose argument is a pointer to `T` (read and/or written by the
///   kernel within `size_of::<T>()` bytes), e.g. `TUNSETIFF`/`SIOCSIFFLAGS` with a 40-byte
///   `ifreq`-compatible `T`.
unsafe fn ioctl_ptr<T>(fd: RawFd, req: libc::Ioctl, arg: &mut T) -> io::Result<()> {
    // SAFETY: the caller guarantees that `req` takes a pointer to a `T`; `arg` is a valid,
    // exclusive reference for the duration of the call.
    let rc = unsafe { libc::ioctl(fd, req, std::ptr::from_mut(arg)) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs `ioctl(fd, req, value)` for ioctls that take a plain integer by value.
///
/// # Safety
/// - `req` must be an ioctl whose argument is an integer passed by value
///   (`TUNSETOFFLOAD`), never a pointer.
unsafe fn ioctl_val(fd: RawFd, req: libc::Ioctl, value: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the caller guarantees that `req` takes its argument by value, so the kernel does
    // not dereference it.
    let rc = unsafe { libc::ioctl(fd, req, value) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An attached TAP queue: the open `/dev/net/tun` file after a successful `TUNSETIFF`.
///
/// Closing it detaches the queue; when the device is not persistent the kernel then deletes
/// it, wherever (in whichever namespace) it is.
#[derive(Debug)]
pub struct TunFd {
    file: File,
    name: String,
    flags: libc::c_int,
}

impl TunFd {
    /// Opens `/dev/net/tun` non-blocking and attaches to (or creates) the TAP device `name` with
    /// `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`. An empty `name` lets the kernel pick `tapN`.
    ///
    /// A persistent device created with `multi_queue` only accepts `IFF_MULTI_QUEUE` attaches;
    /// on `EINVAL` the attach is retried with that flag.
    ///
    /// # Errors
    /// Opening `/dev/net/tun` fails, the name is invalid, the device exists with another type
    /// (`EINVAL`) or is busy (`EBUSY`), or the caller lacks `CAP_NET_ADMIN` (`EPERM`).
    pub fn open_tap(name: &str) -> io::Result<Self> {
        let base = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;
        let mut req = IfReqFlags::new(name, base as libc::c_short)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq` (name + short flags); `IfReqFlags`
        // has that size and layout. `file` is an open /dev/net/tun.
        let first = unsafe { ioctl_ptr(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if let Err(e) = first {
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
            req = IfReqFlags::new(name, (base | libc::IFF_MULTI_QUEUE) as libc::c_short)?;
            // (Its error, not the first one: a multi-queue tap whose queues are all taken
            // says E2BIG here; a device that is no tap says EINVAL again.)
            // SAFETY: as above.
            unsafe { ioctl_ptr(file.as_raw_fd(), libc::TUNSETIFF, &mut req) }?;
        }
        let name = name_from_ifr(&req.name);
        let mut tun = Self {
            file,
            name,
            flags: 0,
        };
        tun.flags = tun.get_flags()?;
        Ok(tun)
    }

    /// The device name the kernel attached us to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `IFF_*` flags of the tun device as `TUNGETIFF` reported them right after attach.
    fn get_flags(&self) -> io::Result<libc::c_int> {
        let mut req = IfReqFlags::new("", 0)?;
        // SAFETY: TUNGETIFF writes a `struct ifreq` (name + flags); `IfReqFlags` has that layout.
        unsafe { ioctl_ptr(self.file.as_raw_fd(), libc::TUNGETIFF, &mut req)? };
        // `ifr_flags` is a `short`: read it as unsigned 16 bits (IFF_TUN_EXCL is bit 15).
        Ok(libc::c_int::from(req.flags) & 0xffff)
    }

    /// True when the device is persistent (`ip tuntap add`, `TUNSETPERSIST`): it outlives the
    /// file descriptor.
    pub fn is_persistent(&self) -> bool {
        self.flags & libc::IFF_PERSIST != 0
    }

    /// True when attached as one queue of a multi-queue device.
    pub fn is_multi_queue(&self) -> bool {
        self.flags & libc::IFF_MULTI_QUEUE != 0
    }

    /// Sets the virtio-net header length of the device (`TUNSETVNETHDRSZ`).
    ///
    /// # Errors
    /// `EINVAL` for lengths below 10.
    pub fn set_vnet_hdr_len(&self, len: usize) -> io::Result<()> {
        let mut v = libc::c_int::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "header length"))?;
        // SAFETY: TUNSETVNETHDRSZ reads an `int` through the pointer.
        unsafe { ioctl_ptr(self.file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &mut v) }
    }

    /// Tells the kernel which offloads we accept on frames we read (`TUNSETOFFLOAD`,
    /// `TUN_F_*`): with `TUN_F_CSUM` frames may arrive with a partial checksum, with
    /// `TUN_F_TSO*`/`TUN_F_USO*` as GSO super-frames. Writes accept any offload regardless.
    ///
    /// # Errors
    /// `EINVAL` when the kernel does not know one of the flags.
    pub fn set_offload(&self, flags: u32) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        unsafe { ioctl_val(self.file.as_raw_fd(), libc::TUNSETOFFLOAD, flags.into()) }
    }

    /// Negotiates the widest offload set the kernel accepts: [`OFFLOADS_WITH_USO`], then
    /// [`OFFLOADS_TSO`], then `TUN_F_CSUM`, then none. Returns the accepted `TUN_F_*` set.
    pub fn negotiate_offload(&self) -> u32 {
        for flags in [OFFLOADS_WITH_USO, OFFLOADS_TSO, libc::TUN_F_CSUM] {
            if self.set_offload(flags).is_ok() {
                return flags;
            }
        }
        // Zero is always accepted; if even that fails the device keeps its defaults (none).
        let _ = self.set_offload(0);
        0
    }

    /// Reads one frame (virtio-net header first) into `buf`.
    ///
    /// # Errors
    /// `WouldBlock` when nothing is queued; `EBADFD` once the device is gone.
    #[inline]
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // Here, in `write` and in `write_frame`: the raw system calls, not libc's wrappers,
        // which are cancellation points (see `sys::kick_sendto`).
        // SAFETY: the kernel writes at most `buf.len()` bytes to `buf`, which we borrow
        // mutably for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_read,
                self.file.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        super::syscall_result(rc)
    }

    /// Writes one frame (virtio-net header first).
    ///
    /// # Errors
    /// `WouldBlock` when the device's send buffer is full; `EINVAL` for a malformed header;
    /// `EIO` when the device is down.
    #[inline]
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`, borrowed for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_write,
                self.file.as_raw_fd(),
                buf.as_ptr(),
                buf.len(),
            )
        };
        super::syscall_result(rc)
    }

    /// Writes one frame given as its virtio-net header and the frame bytes, with one `writev`
    /// (no copy into a contiguous buffer first). TUN takes a write whole or not at all.
    ///
    /// # Errors
    /// As [`TunFd::write`].
    #[inline]
    pub fn write_frame(&self, hdr: &[u8], frame: &[u8]) -> io::Result<usize> {
        let iov = [
            libc::iovec {
                iov_base: hdr.as_ptr().cast_mut().cast(),
                iov_len: hdr.len(),
            },
            libc::iovec {
                iov_base: frame.as_ptr().cast_mut().cast(),
                iov_len: frame.len(),
            },
        ];
        // SAFETY: two iovecs describing `hdr` and `frame`, both borrowed for the call; the
        // kernel only reads them (`writev` does not write through `iov_base`).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_writev,
                self.file.as_raw_fd(),
                iov.as_ptr(),
                iov.len(),
            )
        };
        super::syscall_result(rc)
    }
}

impl AsRawFd for TunFd {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Reads a native-endian `u16` at `at` of a header known to be [`VNET_HDR_LEN`] bytes long.
#[inline]
fn ne16(h: &[u8; VNET_HDR_LEN], at: usize) -> u16 {
    u16::from_ne_bytes([h[at], h[at + 1]])
}

/// Decodes the virtio-net header `hdr` of the received `frame` (Ethernet header first).
///
/// For GSO frames the kernel's `hdr_len` is only a hint (the linear length of its buffer), so it
/// is replaced by the real header length: `csum_start` (the L4 header offset, relative to the
/// Ethernet header) plus the TCP header length, or plus 8 for UDP. It is left as received when
/// the frame is too short to tell. A TCP/UDP GSO frame that is really a UDP-tunnel one (the
/// kernel drops the tunnel from the header) is marked as such
/// ([`crate::offload::mark_udp_tunnel`]).
#[inline]
pub fn decode_vnet_hdr(hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) -> Offload {
    let mut o = Offload {
        flags: hdr[0],
        gso_type: hdr[1],
        hdr_len: ne16(hdr, 2),
        gso_size: ne16(hdr, 4),
        csum_start: ne16(hdr, 6),
        csum_offset: ne16(hdr, 8),
    };
    if o.is_gso() && o.needs_csum() {
        let l4 = usize::from(o.csum_start);
        let l4_len = match o.gso_kind() {
            Offload::GSO_TCPV4 | Offload::GSO_TCPV6 => {
                frame.get(l4 + 12).map(|&b| usize::from(b >> 4) * 4)
            }
            Offload::GSO_UDP | Offload::GSO_UDP_L4 => Some(8),
            _ => None,
        };
        if let Some(end) = l4_len.map(|n| l4 + n).filter(|&e| e <= frame.len())
            && let Ok(end) = u16::try_from(end)
        {
            o.hdr_len = end;
        }
        crate::offload::mark_udp_tunnel(frame, &mut o);
    }
    o
}

/// Encodes `o` for the `frame` it describes as the tunnel form of the header
/// ([`VNET_TNL_HDR_LEN`]): the plain header, zeros, and for a UDP-tunnel super-frame the
/// tunnel's offsets and outer-checksum flag ([`crate::offload::tunnel_offsets`]). False when
/// a tunnel frame's offsets cannot be found (the frame must not be written).
#[inline]
pub fn encode_tnl_vnet_hdr(o: &Offload, frame: &[u8], out: &mut [u8; VNET_TNL_HDR_LEN]) -> bool {
    let (plain, rest) = out.split_at_mut(VNET_HDR_LEN);
    if let Ok(plain) = <&mut [u8; VNET_HDR_LEN]>::try_from(plain) {
        encode_vnet_hdr(o, plain);
    }
    rest.fill(0);
    // The outer-checksum flag says what the frame holds, not what it arrived with.
    out[0] &= !Offload::F_UDP_TUNNEL_CSUM;
    if !o.is_tunnel() {
        return true;
    }
    let Some((outer_th, inner_nh, csum)) = crate::offload::tunnel_offsets(frame, o) else {
        return false;
    };
    if csum {
        out[0] |= Offload::F_UDP_TUNNEL_CSUM;
    }
    out[VNET_TNL_OUTER_TH..VNET_TNL_OUTER_TH + 2].copy_from_slice(&outer_th.to_le_bytes());
    out[VNET_TNL_INNER_NH..VNET_TNL_INNER_NH + 2].copy_from_slice(&inner_nh.to_le_bytes());
    true
}

/// Encodes `o` as a virtio-net header.
#[inline]
pub fn encode_vnet_hdr(o: &Offload, out: &mut [u8; VNET_HDR_LEN]) {
    out[0] = o.flags;
    out[1] = o.gso_type;
    out[2..4].copy_from_slice(&o.hdr_len.to_ne_bytes());
    out[4..6].copy_from_slice(&o.gso_size.to_ne_bytes());
    out[6..8].copy_from_slice(&o.csum_start.to_ne_bytes());
    out[8..10].copy_from_slice(&o.csum_offset.to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnet_hdr_round_trips() {
        let o = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_NONE,
            hdr_len: 0,
            gso_size: 0,
            csum_start: 34,
            csum_offset: 6,
        };
        let mut h = [0u8; VNET_HDR_LEN];
        encode_vnet_hdr(&o, &mut h);
        assert_eq!(decode_vnet_hdr(&h, &[0u8; 60]), o);
    }

    #[test]
    fn gso_hdr_len_is_recomputed_from_the_tcp_header() {
        let o = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4,
            hdr_len: 1000,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut h = [0u8; VNET_HDR_LEN];
        encode_vnet_hdr(&o, &mut h);
        let mut frame = [0u8; 200];
        frame[34 + 12] = 8 << 4; // data offset 8 words: 32-byte TCP header
        assert_eq!(decode_vnet_hdr(&h, &frame).hdr_len, 66);
        // Too short to tell: the kernel's value stays.
        assert_eq!(decode_vnet_hdr(&h, &frame[..40]).hdr_len, 1000);
    }

    /// 200 bytes: outer Ethernet/IPv4/UDP to 4789 (checksum 0), VXLAN, inner
    /// Ethernet/IPv4/TCP, the inner TCP header at 84 (14+20+8+8+14+20).
    fn vxlan_tcp_frame() -> Vec<u8> {
        let mut frame = vec![0u8; 200];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&186u16.to_be_bytes());
        frame[23] = 17;
        frame[36..38].copy_from_slice(&4789u16.to_be_bytes());
        frame[42] = 0x08;
        frame[62..64].copy_from_slice(&[0x08, 0x00]);
        frame[64] = 0x45;
        frame[66..68].copy_from_slice(&136u16.to_be_bytes());
        frame[73] = 6;
        frame[84 + 12] = 5 << 4;
        frame
    }

    #[test]
    fn a_tcp_gso_header_on_a_vxlan_frame_is_marked_as_a_tunnel() {
        // The kernel says plain TCPv4 GSO with the checksum starting at the inner TCP header.
        let frame = vxlan_tcp_frame();
        let o = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4,
            hdr_len: 1000,
            gso_size: 1400,
            csum_start: 84,
            csum_offset: 16,
        };
        let mut h = [0u8; VNET_HDR_LEN];
        encode_vnet_hdr(&o, &mut h);
        let d = decode_vnet_hdr(&h, &frame);
        assert_eq!(
            d.gso_type,
            Offload::GSO_TCPV4 | Offload::GSO_UDP_TUNNEL_IPV4
        );
        assert_eq!(d.hdr_len, 104);
        assert!(!d.passes(true, false) && d.passes(true, true));
        // The same header on a plain TCP frame is not.
        let o = Offload {
            csum_start: 34,
            ..o
        };
        encode_vnet_hdr(&o, &mut h);
        let mut plain = [0u8; 200];
        plain[12..14].copy_from_slice(&[0x08, 0x00]);
        plain[14] = 0x45;
        plain[16..18].copy_from_slice(&186u16.to_be_bytes());
        plain[23] = 6;
        plain[34 + 12] = 5 << 4;
        assert_eq!(decode_vnet_hdr(&h, &plain).gso_type, Offload::GSO_TCPV4);
    }

    #[test]
    fn the_tunnel_form_of_the_header_carries_the_offsets_and_the_outer_checksum_flag() {
        let mut frame = vxlan_tcp_frame();
        let o = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4 | Offload::GSO_UDP_TUNNEL_IPV4,
            hdr_len: 104,
            gso_size: 1400,
            csum_start: 84,
            csum_offset: 16,
        };
        let mut h = [0xaa; VNET_TNL_HDR_LEN];
        assert!(encode_tnl_vnet_hdr(&o, &frame, &mut h));
        let mut plain = [0u8; VNET_HDR_LEN];
        encode_vnet_hdr(&o, &mut plain);
        assert_eq!(h[..VNET_HDR_LEN], plain);
        assert_eq!(h[10..20], [0; 10]);
        assert_eq!(u16::from_le_bytes([h[20], h[21]]), 34, "outer UDP header");
        assert_eq!(u16::from_le_bytes([h[22], h[23]]), 64, "inner IPv4 header");
        // A used outer UDP checksum sets the flag.
        frame[40] = 0x12;
        assert!(encode_tnl_vnet_hdr(&o, &frame, &mut h));
        assert_eq!(h[0], Offload::F_NEEDS_CSUM | Offload::F_UDP_TUNNEL_CSUM);
        // Not a tunnel frame: the plain header and zeros.
        let p = Offload {
            gso_type: Offload::GSO_TCPV4,
            csum_start: 34,
            ..o
        };
        assert!(encode_tnl_vnet_hdr(&p, &frame, &mut h));
        assert_eq!(h[10..], [0; 14]);
        // A tunnel frame whose tunnel is not where its header says: refused.
        let bad = Offload {
            csum_start: 80,
            ..o
        };
        assert!(!encode_tnl_vnet_hdr(&bad, &frame, &mut h));
    }

    #[test]
    fn names_longer_than_ifnamsiz_are_rejected() {
        assert!(ifr_name("0123456789abcdef").is_err());
        assert!(ifr_name("a/b").is_err());
        assert!(ifr_name("0123456789abcde").is_ok());
    }
}
