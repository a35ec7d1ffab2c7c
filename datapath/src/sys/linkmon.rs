//! Link changes as rtnetlink announces them: a `NETLINK_ROUTE` socket in the `RTMGRP_LINK`
//! group, never blocking, read by the control thread when its poller finds it readable. The
//! switch learns that a port's device lost carrier, went down or was deleted when the kernel
//! says so (for a veth, in the same instant: its peer's state change is an urgent link event),
//! instead of at its next once-a-second carrier poll.
//!
//! Only messages from the kernel count (a local process can send a netlink datagram to this
//! socket's port id; its sender id is then not 0). A datagram that does not parse is skipped
//! from where it stops making sense; nothing in it can make the reader panic or loop.
//!
//! Slow path: the control thread only.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::netdev::{IFINFOMSG_LEN, NLMSG_HDRLEN, align4, attrs, u16_at, u32_at};

/// `RTMGRP_LINK`: the multicast group of link messages.
const RTMGRP_LINK: u32 = 1;
/// `IFLA_IFNAME`: the device's name.
const IFLA_IFNAME: u16 = 3;
/// `IFLA_NEW_NETNSID`: in an `RTM_DELLINK` for a device moved to another namespace.
const IFLA_NEW_NETNSID: u16 = 45;
/// `IFF_LOWER_UP`: the device is up and has carrier (the kernel sets it only for a running
/// device: it is the sysfs `carrier` attribute, which reads as an error for a device that is
/// administratively down).
const IFF_LOWER_UP: u32 = 1 << 16;
/// The receive buffer asked for (the kernel doubles it; without CAP_NET_ADMIN it is capped at
/// `rmem_max`, ~208 KiB by default): room for the link messages of a burst of changes (~1–2 KB
/// each, a few KiB of buffer with their overhead) between two reads.
const RCVBUF: libc::c_int = 1 << 20;
/// Bytes of one read: more than a link message needs on any ordinary device (a datagram cut
/// short is reported as lost messages, and the caller polls every port instead).
const READ_BYTES: usize = 64 * 1024;

/// What a link message says about a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkNews {
    /// Up with carrier (`IFF_LOWER_UP`).
    Up,
    /// Down, administratively or for want of carrier.
    Down,
    /// Deleted.
    Gone,
    /// Moved to another network namespace, whose messages this socket does not see (the
    /// device's sysfs attribute follows it there).
    Left,
}

/// One announced change of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkEvent {
    /// The device's interface index (in this namespace).
    pub ifindex: u32,
    /// What became of it.
    pub news: LinkNews,
    /// Its name, when the message gave one (`IFLA_IFNAME`).
    pub name: IfName,
}

/// A device name from a link message, without allocating (at most 15 bytes; empty when the
/// message had none).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct IfName {
    bytes: [u8; 15],
    len: u8,
}

impl IfName {
    /// The name of attribute value `v` (up to its first NUL); `None` when it is empty or too
    /// long for a device name.
    fn of(v: &[u8]) -> Option<Self> {
        let s = v.split(|b| *b == 0).next().unwrap_or(v);
        let mut n = Self::default();
        n.bytes.get_mut(..s.len())?.copy_from_slice(s);
        n.len = u8::try_from(s.len()).ok().filter(|l| *l > 0)?;
        Some(n)
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl std::fmt::Debug for IfName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// What one [`LinkMonitor::drain`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Events passed on.
    pub events: usize,
    /// Messages were lost (the socket's buffer overran, or a datagram was longer than a read):
    /// any device may have changed unseen, so every one should be looked at again.
    pub lost: bool,
    /// The read budget ran out before the socket was empty: call again.
    pub more: bool,
}

/// The watch on link changes: a non-blocking rtnetlink socket in the link group.
#[derive(Debug)]
pub struct LinkMonitor {
    fd: OwnedFd,
    buf: Box<[u8]>,
}

impl LinkMonitor {
    /// Opens the socket and joins the link group.
    ///
    /// # Errors
    /// The OS error of `socket` or `bind`.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call with constant arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let rcvbuf = RCVBUF;
        // Past `rmem_max` where allowed (CAP_NET_ADMIN), else within it.
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: `rcvbuf` is a valid c_int for the duration of the call and its size is
            // passed. A smaller buffer only makes overruns likelier, and those are reported.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&raw const rcvbuf).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
        }
        // SAFETY: `sockaddr_nl` is plain old data; all zero but the family and the group is
        // what we want (port id 0: the kernel assigns one).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = RTMGRP_LINK;
        // SAFETY: `addr` is valid for reads of the length passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // Connected to the kernel (port id 0): the kernel refuses unicast datagrams to this
        // socket from anyone else, so a local process cannot fill its queue; the group's
        // messages still come.
        addr.nl_groups = 0;
        // SAFETY: `addr` is valid for reads of the length passed.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            fd,
            buf: vec![0; READ_BYTES].into_boxed_slice(),
        })
    }

    /// Reads what arrived, at most `max_reads` datagrams, passing each event to `f`.
    ///
    /// # Errors
    /// An OS error other than "nothing to read" or "messages lost" (which `Drained` reports).
    pub fn drain(&mut self, max_reads: usize, mut f: impl FnMut(LinkEvent)) -> io::Result<Drained> {
        let mut d = Drained::default();
        for _ in 0..max_reads {
            match self.recv() {
                Ok(None) => {}
                Ok(Some(n)) if n > self.buf.len() => d.lost = true,
                Ok(Some(n)) => d.events += parse(self.buf.get(..n).unwrap_or_default(), &mut f),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(d),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => d.lost = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        d.more = true;
        Ok(d)
    }

    /// One datagram into the buffer: its whole length (more than the buffer when it was cut
    /// short), or `None` when it did not come from the kernel.
    fn recv(&mut self) -> io::Result<Option<usize>> {
        // SAFETY: `sockaddr_nl` is plain old data; the kernel fills it in.
        let mut from: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        let mut from_len = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: the buffer is valid for writes of its length, `from` for writes of
        // `from_len` bytes, which the kernel updates.
        let rc = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                libc::MSG_TRUNC,
                (&raw mut from).cast(),
                &raw mut from_len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((from.nl_pid == 0).then_some(usize::try_from(rc).unwrap_or(0)))
    }
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Passes the link events of the netlink messages in `buf` (one datagram) to `f`; returns how
/// many. Messages of other types are skipped; a message whose length does not fit ends the
/// datagram there.
pub fn parse(mut buf: &[u8], mut f: impl FnMut(LinkEvent)) -> usize {
    let mut n = 0;
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_at(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            break;
        }
        let ty = u16_at(buf, 4);
        if let Some(ev) = buf.get(NLMSG_HDRLEN..len).and_then(|m| link_event(ty, m)) {
            f(ev);
            n += 1;
        }
        buf = buf.get(align4(len)..).unwrap_or_default();
    }
    n
}

/// The event of one message of type `ty` with payload `m` (an `ifinfomsg` and attributes).
fn link_event(ty: u16, m: &[u8]) -> Option<LinkEvent> {
    if m.len() < IFINFOMSG_LEN {
        return None;
    }
    // struct ifinfomsg { u8 family; u8 pad; u16 type; i32 index; u32 flags; u32 change; }
    // Only the device's own messages (AF_UNSPEC): a bridge sends AF_BRIDGE ones about its
    // ports, a `RTM_DELLINK` among them when a port leaves it, which deletes no device.
    let family = m.first().copied().unwrap_or(u8::MAX);
    let ifindex = u32_at(m, 4);
    let flags = u32_at(m, 8);
    if family != libc::AF_UNSPEC as u8 || ifindex == 0 {
        return None;
    }
    let attrs_of = m.get(IFINFOMSG_LEN..).unwrap_or_default();
    let news = match ty {
        libc::RTM_NEWLINK if flags & IFF_LOWER_UP != 0 => LinkNews::Up,
        libc::RTM_NEWLINK => LinkNews::Down,
        libc::RTM_DELLINK if attrs(attrs_of).any(|(a, _)| a == IFLA_NEW_NETNSID) => LinkNews::Left,
        libc::RTM_DELLINK => LinkNews::Gone,
        _ => return None,
    };
    let name = attrs(attrs_of)
        .find(|(a, _)| *a == IFLA_IFNAME)
        .and_then(|(_, v)| IfName::of(v))
        .unwrap_or_default();
    Some(LinkEvent {
        ifindex,
        news,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A link message as the kernel lays it out, with attributes `(type, value)`.
    fn msg(ty: u16, ifindex: u32, flags: u32, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        msg_of(0, ty, ifindex, flags, attrs)
    }

    /// [`msg`] of address family `family`.
    fn msg_of(family: u8, ty: u16, ifindex: u32, flags: u32, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&7u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&[family, 0, 1, 0]);
        m.extend_from_slice(&ifindex.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&u32::MAX.to_ne_bytes());
        for (t, v) in attrs {
            let len = u16::try_from(4 + v.len()).unwrap();
            m.extend_from_slice(&len.to_ne_bytes());
            m.extend_from_slice(&t.to_ne_bytes());
            m.extend_from_slice(v);
            m.resize(align4(m.len()), 0);
        }
        let len = u32::try_from(m.len()).unwrap();
        m[..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    /// The events of `buf`, as (index, news).
    fn events(buf: &[u8]) -> Vec<(u32, LinkNews)> {
        let mut v = Vec::new();
        let n = parse(buf, |e| v.push((e.ifindex, e.news)));
        assert_eq!(n, v.len());
        v
    }

    fn names(buf: &[u8]) -> Vec<String> {
        let mut v = Vec::new();
        parse(buf, |e| {
            v.push(String::from_utf8_lossy(e.name.as_bytes()).into_owned());
        });
        v
    }

    const IFF_UP: u32 = 1;
    const IFF_RUNNING: u32 = 1 << 6;

    #[test]
    fn new_and_deleted_links_become_up_down_gone_or_left() {
        let name: &[u8] = b"vsl2\0";
        let mut d = msg(
            libc::RTM_NEWLINK,
            7,
            IFF_UP | IFF_RUNNING | IFF_LOWER_UP,
            &[(3, name)],
        );
        d.extend(msg(libc::RTM_NEWLINK, 8, IFF_UP, &[(3, name)]));
        d.extend(msg(libc::RTM_NEWLINK, 9, 0, &[]));
        d.extend(msg(
            libc::RTM_DELLINK,
            10,
            IFF_UP | IFF_LOWER_UP,
            &[(3, name)],
        ));
        d.extend(msg(
            libc::RTM_DELLINK,
            11,
            0,
            &[(3, name), (IFLA_NEW_NETNSID, &5i32.to_ne_bytes())],
        ));
        let e = |ifindex, news| (ifindex, news);
        assert_eq!(names(&d), ["vsl2", "vsl2", "", "vsl2", "vsl2"]);
        assert_eq!(
            events(&d),
            [
                e(7, LinkNews::Up),
                e(8, LinkNews::Down),
                e(9, LinkNews::Down),
                e(10, LinkNews::Gone),
                e(11, LinkNews::Left)
            ]
        );
    }

    #[test]
    fn names_are_taken_up_to_their_nul_and_only_when_they_fit_a_device_name() {
        let long: &[u8] = b"sixteen-bytes-xx\0";
        let mut d = msg(libc::RTM_NEWLINK, 1, 0, &[(3, b"eth0\0junk")]);
        d.extend(msg(libc::RTM_NEWLINK, 2, 0, &[(3, long)]));
        d.extend(msg(libc::RTM_NEWLINK, 3, 0, &[(3, b"\0")]));
        d.extend(msg(libc::RTM_NEWLINK, 4, 0, &[(3, b"fifteen-bytes-x")]));
        assert_eq!(names(&d), ["eth0", "", "", "fifteen-bytes-x"]);
    }

    #[test]
    fn a_bridges_messages_about_its_ports_are_not_the_devices_own() {
        // AF_BRIDGE (7): a port leaving its bridge is an RTM_DELLINK of that family.
        let mut d = msg_of(7, libc::RTM_DELLINK, 12, IFF_LOWER_UP, &[]);
        d.extend(msg_of(7, libc::RTM_NEWLINK, 12, 0, &[]));
        d.extend(msg(libc::RTM_NEWLINK, 12, IFF_LOWER_UP, &[]));
        assert_eq!(events(&d), [(12, LinkNews::Up)]);
    }

    #[test]
    fn other_messages_and_bad_lengths_are_skipped_without_losing_the_rest() {
        // An address message (RTM_NEWADDR), a link message without its ifinfomsg, one for
        // index 0, then a good one: only the good one.
        let mut d = msg(libc::RTM_NEWADDR, 3, IFF_LOWER_UP, &[]);
        let mut short = msg(libc::RTM_NEWLINK, 4, IFF_LOWER_UP, &[]);
        short.truncate(NLMSG_HDRLEN + 8);
        let len = u32::try_from(short.len()).unwrap();
        short[..4].copy_from_slice(&len.to_ne_bytes());
        d.extend(short);
        d.extend(msg(libc::RTM_NEWLINK, 0, IFF_LOWER_UP, &[]));
        d.extend(msg(libc::RTM_NEWLINK, 5, IFF_LOWER_UP, &[]));
        assert_eq!(events(&d), [(5, LinkNews::Up)]);
        // A length past the datagram, or below a header, ends it there.
        let mut d = msg(libc::RTM_NEWLINK, 6, 0, &[]);
        let mut bad = msg(libc::RTM_NEWLINK, 7, 0, &[]);
        bad[..4].copy_from_slice(&1000u32.to_ne_bytes());
        d.extend(&bad);
        assert_eq!(events(&d).len(), 1);
        bad[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(events(&bad), []);
        assert_eq!(events(&[]), []);
        assert_eq!(events(&[1, 2, 3]), []);
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic_and_within_bounds(
            buf in proptest::collection::vec(any::<u8>(), 0..512)
        ) {
            // At most one event per header-sized step.
            let n = parse(&buf, |_| {});
            prop_assert!(n <= buf.len() / (NLMSG_HDRLEN + IFINFOMSG_LEN));
        }

        #[test]
        fn a_good_message_after_any_skipped_ones_is_seen(
            ty in any::<u16>(), ifindex in 1u32.., flags in any::<u32>()
        ) {
            let mut d = msg(ty, ifindex, flags, &[]);
            d.extend(msg(libc::RTM_NEWLINK, 42, IFF_LOWER_UP, &[]));
            let v = events(&d);
            prop_assert_eq!(v.last().copied(), Some((42, LinkNews::Up)));
        }
    }

    #[test]
    fn the_monitor_opens_and_drains_without_blocking() {
        // (Joining the link group needs no capability. Other tests may be changing links
        // meanwhile: whatever came is passed on, and the drain returns.)
        let mut m = LinkMonitor::open().unwrap();
        let mut seen = 0;
        let d = m.drain(1024, |_| seen += 1).unwrap();
        assert!(!d.more && !d.lost);
        assert_eq!(d.events, seen);
    }
}
