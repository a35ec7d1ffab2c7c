//! Small network-device helpers (slow path): name → ifindex, interface flags and MTU through
//! `ioctl`, the rx queue count from sysfs, and an rtnetlink helper to see and clear an XDP program
//! attached through netlink (`IFLA_XDP`), which blocks a later `bpf_link` attach with `EBUSY`.
//!
//! Everything here allocates freely and may block briefly: never call it from a worker's loop.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `IFLA_XDP` (nested attributes of an `RTM_*LINK` message).
const IFLA_XDP: u16 = 43;
/// `IFLA_XDP_FD` (s32): program fd to attach, -1 to detach.
const IFLA_XDP_FD: u16 = 1;
/// `IFLA_XDP_ATTACHED` (u8): `XDP_ATTACHED_*`.
const IFLA_XDP_ATTACHED: u16 = 2;
/// `IFLA_XDP_FLAGS` (u32): `XDP_FLAGS_*`.
const IFLA_XDP_FLAGS: u16 = 3;
/// `IFLA_XDP_PROG_ID` (u32): the program id when exactly one program is attached.
const IFLA_XDP_PROG_ID: u16 = 4;
/// `IFLA_XDP_DRV_PROG_ID` (u32).
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
/// `IFLA_XDP_SKB_PROG_ID` (u32).
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
/// `IFLA_XDP_HW_PROG_ID` (u32).
const IFLA_XDP_HW_PROG_ID: u16 = 7;
/// `NLA_F_NESTED`.
const NLA_F_NESTED: u16 = 1 << 15;
/// `NLA_TYPE_MASK`.
const NLA_TYPE_MASK: u16 = 0x3fff;
/// `NETLINK_EXT_ACK` socket option (error messages in acks).
const NETLINK_EXT_ACK: libc::c_int = 11;
/// `NLMSGERR_ATTR_MSG`: the extended ack's text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `NLM_F_ACK_TLVS` in an error message's flags.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLM_F_CAPPED` in an error message's flags (the request is not echoed).
const NLM_F_CAPPED: u16 = 0x100;
/// `sizeof(struct nlmsghdr)`.
pub(super) const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct ifinfomsg)`.
pub(super) const IFINFOMSG_LEN: usize = 16;

/// `XDP_FLAGS_SKB_MODE`: generic (skb) XDP.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native (driver) XDP.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// `XDP_FLAGS_HW_MODE`: offloaded XDP.
pub const XDP_FLAGS_HW_MODE: u32 = 1 << 3;

/// Checks an interface name and turns it into a C string.
fn c_name(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "bad interface name {name:?}: 1..{} bytes",
                libc::IFNAMSIZ - 1
            ),
        ));
    }
    CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name contains a NUL byte",
        )
    })
}

/// The interface index of `name` (`if_nametoindex`). `ENODEV` when there is no such device.
///
/// # Errors
/// `InvalidInput` for a malformed name, the OS error otherwise.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = c_name(name)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// A datagram socket to run interface ioctls on.
fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A zeroed `ifreq` carrying `name`.
fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let c = c_name(name)?;
    // SAFETY: `ifreq` is plain old data (a name array and a union of integers/sockaddrs); all
    // zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(c.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

/// Runs an interface ioctl `op` with `req`.
fn ifreq_ioctl(op: libc::Ioctl, req: &mut libc::ifreq) -> io::Result<()> {
    let sock = ioctl_socket()?;
    // SAFETY: `req` is a valid, writable `ifreq` for the duration of the call, which is what the
    // SIOC[GS]IF* ioctls used in this module read and write.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), op, req as *mut libc::ifreq) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The interface flags (`IFF_*`) of `name`.
///
/// # Errors
/// The OS error of `SIOCGIFFLAGS` (`ENODEV` for a missing device).
pub fn flags(name: &str) -> io::Result<u32> {
    let mut req = ifreq_for(name)?;
    ifreq_ioctl(libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    let f = unsafe { req.ifr_ifru.ifru_flags };
    Ok(u32::from(f as u16))
}

/// True when `name` is administratively up (`IFF_UP`).
///
/// # Errors
/// See [`flags`].
pub fn is_up(name: &str) -> io::Result<bool> {
    Ok(flags(name)? & libc::IFF_UP as u32 != 0)
}

/// Sets `name` administratively up or down.
///
/// # Errors
/// The OS error of `SIOCGIFFLAGS`/`SIOCSIFFLAGS` (`EPERM` without `CAP_NET_ADMIN`).
pub fn set_up(name: &str, up: bool) -> io::Result<()> {
    let mut req = ifreq_for(name)?;
    ifreq_ioctl(libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    let mut f = unsafe { req.ifr_ifru.ifru_flags };
    if up {
        f |= libc::IFF_UP as libc::c_short;
    } else {
        f &= !(libc::IFF_UP as libc::c_short);
    }
    req.ifr_ifru.ifru_flags = f;
    ifreq_ioctl(libc::SIOCSIFFLAGS, &mut req)
}

/// The MTU of `name`.
///
/// # Errors
/// The OS error of `SIOCGIFMTU`.
pub fn mtu(name: &str) -> io::Result<u32> {
    let mut req = ifreq_for(name)?;
    ifreq_ioctl(libc::SIOCGIFMTU, &mut req)?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member of the union.
    let m = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(m).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative MTU"))
}

/// Number of rx queues the kernel exposes for `name` (`/sys/class/net/<name>/queues/rx-*`).
///
/// # Errors
/// The I/O error reading sysfs (`NotFound` for a missing device).
pub fn rx_queue_count(name: &str) -> io::Result<usize> {
    queue_count(name, "rx-")
}

/// Number of tx queues the kernel exposes for `name` (`/sys/class/net/<name>/queues/tx-*`).
///
/// # Errors
/// The I/O error reading sysfs (`NotFound` for a missing device).
pub fn tx_queue_count(name: &str) -> io::Result<usize> {
    queue_count(name, "tx-")
}

fn queue_count(name: &str, prefix: &str) -> io::Result<usize> {
    c_name(name)?;
    let dir = std::fs::read_dir(format!("/sys/class/net/{name}/queues"))?;
    let mut n = 0;
    for entry in dir {
        if entry?.file_name().to_string_lossy().starts_with(prefix) {
            n += 1;
        }
    }
    Ok(n)
}

/// One of a device's statistics (`/sys/class/net/<name>/statistics/<stat>`), opened once and
/// read again with one `pread` each time ([`StatFile::read`]): sysfs makes the value anew at
/// each read from offset 0. The open file reads that device as long as it exists, wherever
/// it moves (a device created later under the same name is another file).
#[derive(Debug)]
pub struct StatFile(std::fs::File);

impl StatFile {
    /// Opens statistic `stat` of device `name`; `None` when there is no such device here (or
    /// no such statistic).
    pub fn open(name: &str, stat: &str) -> Option<Self> {
        c_name(name).ok()?;
        std::fs::File::open(format!("/sys/class/net/{name}/statistics/{stat}"))
            .ok()
            .map(Self)
    }

    /// The value now; `None` once the device is deleted (or the value does not parse).
    pub fn read(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 24];
        let n = self.0.read_at(&mut buf, 0).ok()?;
        std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
    }
}

/// Which XDP programs a device has (rtnetlink `IFLA_XDP`), whether attached by netlink or by a
/// `bpf_link` (netlink does not tell the two apart; [`xdp_detach_netlink`] does: it fails with
/// `EBUSY` on a link).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpState {
    /// `IFLA_XDP_ATTACHED`: 0 none, 1 driver, 2 generic (skb), 3 hardware, 4 several.
    pub attached: u8,
    /// Id of the driver-mode program, 0 if none.
    pub drv_prog_id: u32,
    /// Id of the generic-mode program, 0 if none.
    pub skb_prog_id: u32,
    /// Id of the offloaded program, 0 if none.
    pub hw_prog_id: u32,
}

impl XdpState {
    /// True when any XDP program is attached.
    pub fn any(&self) -> bool {
        self.attached != 0
    }

    /// The `XDP_FLAGS_*_MODE` flags of each mode that has a program.
    pub fn modes(&self) -> impl Iterator<Item = u32> + use<> {
        [
            (self.drv_prog_id, XDP_FLAGS_DRV_MODE),
            (self.skb_prog_id, XDP_FLAGS_SKB_MODE),
            (self.hw_prog_id, XDP_FLAGS_HW_MODE),
        ]
        .into_iter()
        .filter(|(id, _)| *id != 0)
        .map(|(_, mode)| mode)
    }
}

/// An rtnetlink socket for one request/response exchange.
#[derive(Debug)]
struct Rtnl {
    fd: OwnedFd,
}

impl Rtnl {
    fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call with constant arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        // SAFETY: `one` is a valid c_int for the duration of the call and its size is passed.
        // Failure is harmless (older kernels): we only lose the error text.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_NETLINK,
                NETLINK_EXT_ACK,
                (&raw const one).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        // Never wait forever for a reply (the kernel always sends one; this is a backstop).
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: `tv` is a valid timeval for the duration of the call and its size is passed.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(Self { fd })
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: `sockaddr_nl` is plain old data; zero (pid 0 = the kernel) is what we want.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `msg` and `addr` are valid for reads of the lengths passed.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let rc = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc as usize)
        }
    }

    /// Sends `msg` (sequence number `seq`) and returns the payload of the matching reply of type
    /// `want` (or `Ok(empty)` for a positive ack).
    fn request(&self, msg: &[u8], seq: u32, want: u16) -> io::Result<Vec<u8>> {
        self.send(msg)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.recv(&mut buf)?;
            let mut rest = buf.get(..n).unwrap_or_default();
            while rest.len() >= NLMSG_HDRLEN {
                let len = u32_at(rest, 0) as usize;
                let ty = u16_at(rest, 4);
                let flags = u16_at(rest, 6);
                let mseq = u32_at(rest, 8);
                if len < NLMSG_HDRLEN || len > rest.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad netlink reply",
                    ));
                }
                let payload = &rest[NLMSG_HDRLEN..len];
                if mseq == seq {
                    if ty == libc::NLMSG_ERROR as u16 {
                        let err = i32::from_ne_bytes(
                            payload
                                .get(..4)
                                .and_then(|b| b.try_into().ok())
                                .unwrap_or_default(),
                        );
                        if err == 0 {
                            return Ok(Vec::new());
                        }
                        if let Some(text) = ext_ack_msg(payload, flags) {
                            tracing::debug!(error = -err, message = %text, "rtnetlink error");
                        }
                        return Err(io::Error::from_raw_os_error(-err));
                    }
                    if ty == want {
                        return Ok(payload.to_vec());
                    }
                }
                rest = rest.get(align4(len)..).unwrap_or_default();
            }
        }
    }
}

pub(super) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

pub(super) fn u16_at(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_ne_bytes)
}

pub(super) fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

/// The text of an extended ack (`NLMSGERR_ATTR_MSG`), if the kernel sent one.
fn ext_ack_msg(payload: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // struct nlmsgerr { int error; struct nlmsghdr msg; } followed by the echoed request's
    // payload unless capped, then the TLVs.
    let echoed = if flags & NLM_F_CAPPED != 0 {
        0
    } else {
        (u32_at(payload, 4) as usize).saturating_sub(NLMSG_HDRLEN)
    };
    let tlvs = payload.get(4 + NLMSG_HDRLEN + align4(echoed)..)?;
    attrs(tlvs)
        .find(|(ty, _)| *ty == NLMSGERR_ATTR_MSG)
        .map(|(_, v)| {
            String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(v)).into_owned()
        })
}

/// Iterates over netlink attributes `(type without flags, value)`.
pub(super) fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16_at(b, 0) as usize;
        let ty = u16_at(b, 2) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let val = &b[4..len];
        b = b.get(align4(len)..).unwrap_or_default();
        Some((ty, val))
    })
}

/// Appends a netlink attribute.
fn push_attr(msg: &mut Vec<u8>, ty: u16, val: &[u8]) {
    let len = 4 + val.len();
    msg.extend_from_slice(&(len as u16).to_ne_bytes());
    msg.extend_from_slice(&ty.to_ne_bytes());
    msg.extend_from_slice(val);
    msg.resize(align4(msg.len()), 0);
}

/// A link message header (nlmsghdr + ifinfomsg for `ifindex`); the length is patched at the end.
fn link_msg(ty: u16, flags: u16, seq: u32, ifindex: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
    // struct ifinfomsg { u8 family; u8 pad; u16 type; i32 index; u32 flags; u32 change; }
    m.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    m.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m
}

fn finish(mut m: Vec<u8>) -> Vec<u8> {
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_ne_bytes());
    m
}

/// What XDP programs `ifindex` has, as rtnetlink reports them.
///
/// # Errors
/// The netlink error (`ENODEV` for a missing device).
pub fn xdp_query(ifindex: u32) -> io::Result<XdpState> {
    let rtnl = Rtnl::open()?;
    let seq = 1;
    let msg = finish(link_msg(
        libc::RTM_GETLINK,
        libc::NLM_F_REQUEST as u16,
        seq,
        ifindex,
    ));
    let reply = rtnl.request(&msg, seq, libc::RTM_NEWLINK)?;
    let mut st = XdpState::default();
    let Some(link_attrs) = reply.get(IFINFOMSG_LEN..) else {
        return Ok(st);
    };
    for (ty, val) in attrs(link_attrs) {
        if ty != IFLA_XDP {
            continue;
        }
        for (xty, xval) in attrs(val) {
            match xty {
                IFLA_XDP_ATTACHED => st.attached = xval.first().copied().unwrap_or(0),
                IFLA_XDP_DRV_PROG_ID => st.drv_prog_id = u32_at(xval, 0),
                IFLA_XDP_SKB_PROG_ID => st.skb_prog_id = u32_at(xval, 0),
                IFLA_XDP_HW_PROG_ID => st.hw_prog_id = u32_at(xval, 0),
                IFLA_XDP_PROG_ID => {
                    let id = u32_at(xval, 0);
                    match st.attached {
                        1 => st.drv_prog_id = id,
                        2 => st.skb_prog_id = id,
                        3 => st.hw_prog_id = id,
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }
    // IFLA_XDP_ATTACHED comes before IFLA_XDP_PROG_ID, but do not rely on the order.
    Ok(st)
}

/// Sets (`prog_fd` = Some) or clears (None) the netlink-attached XDP program of `ifindex` in the
/// mode given by `flags` (`XDP_FLAGS_*_MODE`).
fn xdp_set_netlink(ifindex: u32, prog_fd: i32, flags: u32) -> io::Result<()> {
    let rtnl = Rtnl::open()?;
    let seq = 1;
    let mut msg = link_msg(
        libc::RTM_SETLINK,
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
        seq,
        ifindex,
    );
    let mut nested = Vec::with_capacity(16);
    push_attr(&mut nested, IFLA_XDP_FD, &prog_fd.to_ne_bytes());
    push_attr(&mut nested, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    push_attr(&mut msg, IFLA_XDP | NLA_F_NESTED, &nested);
    rtnl.request(&finish(msg), seq, libc::NLMSG_ERROR as u16)
        .map(drop)
}

/// Detaches a netlink-attached XDP program from `ifindex` in the mode given by `flags`
/// (`XDP_FLAGS_DRV_MODE`, `XDP_FLAGS_SKB_MODE`, …): `IFLA_XDP { FD = -1, FLAGS = flags }`.
///
/// Fails with `EBUSY` when the program there is owned by a `bpf_link` (a live process): the
/// kernel never lets netlink replace a link.
///
/// # Errors
/// The netlink error.
pub fn xdp_detach_netlink(ifindex: u32, flags: u32) -> io::Result<()> {
    xdp_set_netlink(ifindex, -1, flags)
}

/// Attaches `prog` to `ifindex` through netlink (`IFLA_XDP`), in the mode given by `flags`.
///
/// Such a program outlives the process; this exists for tests and tools that need to reproduce
/// a leftover. The switch itself attaches by `bpf_link` ([`crate::sys::bpf::XdpLink`]).
///
/// # Errors
/// The netlink error.
pub fn xdp_attach_netlink(ifindex: u32, prog: BorrowedFd<'_>, flags: u32) -> io::Result<()> {
    xdp_set_netlink(ifindex, prog.as_raw_fd(), flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_index_one_and_is_up() {
        assert_eq!(ifindex("lo").unwrap(), 1);
        assert!(is_up("lo").unwrap());
        assert!(mtu("lo").unwrap() >= 1500);
    }

    #[test]
    fn bad_names_are_rejected_before_any_syscall() {
        assert_eq!(ifindex("").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            ifindex("a-name-that-is-too-long").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            ifindex("nope\0").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            ifindex("vxt-missing").unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
    }

    #[test]
    fn loopback_has_no_xdp_program() {
        let st = xdp_query(1).unwrap();
        assert!(!st.any());
        assert_eq!(st.modes().count(), 0);
    }

    #[test]
    fn attributes_are_parsed_and_built_symmetrically() {
        let mut m = Vec::new();
        push_attr(&mut m, 7, &[1, 2, 3]);
        push_attr(&mut m, 9 | NLA_F_NESTED, &5u32.to_ne_bytes());
        let v: Vec<_> = attrs(&m).collect();
        assert_eq!(v, vec![(7, &[1u8, 2, 3][..]), (9, &5u32.to_ne_bytes()[..])]);
    }
}
