//! Privileged tests of link changes: once the switch watches the kernel's link announcements
//! (`Switch::watch_links`), a port's link going down or up, its device set down or deleted,
//! is applied and reported by `Switch::link_events` when the descriptor turns readable; no
//! housekeeping poll runs in these tests unless the test says so.
//!
//! Each test makes its own devices and namespace (`vl<tag><pid>…`); `Drop` guards delete them,
//! also on panic. Without root the tests print why and pass, unless `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use common::{Link, Netns};
use datapath::notify::{Event, PortChange};
use datapath::port::PortKind;
use datapath::switch::{PollMode, PortSpec, Switch, SwitchConfig, VlanMode};
use datapath::sys::poller::Poller;

fn privileged() -> bool {
    common::privileged(
        "not root (needs CAP_NET_ADMIN for veths, taps and namespaces)",
        &[],
    )
}

fn spec(name: &str, kind: PortKind) -> PortSpec {
    PortSpec {
        name: name.into(),
        kind: Some(kind),
        queues: 1,
        vlan: VlanMode::default(),
        xdp_mode: None,
        xdp_frags: false,
        mac_max: None,
    }
}

/// Waits (up to 5 s) for announcements on `fd` and applies them until port `name`'s link is
/// `up`; returns the port-status events of the switch by then, as (port, link up).
fn await_link(sw: &mut Switch, fd: RawFd, name: &str, up: bool) -> Vec<(String, bool)> {
    let poller = Poller::new().unwrap();
    poller.add(fd, 1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        poller.wait(Duration::from_millis(100));
        while sw.link_events() {}
        let now = sw.ports().into_iter().find(|p| p.name == name).unwrap();
        if now.link_up == up {
            return events(sw);
        }
        assert!(
            Instant::now() < deadline,
            "port {name} not link_up={up} within 5 s of the change"
        );
    }
}

/// The switch's port-status `modify` events so far, as (port, link up).
fn events(sw: &mut Switch) -> Vec<(String, bool)> {
    let mut ev = Vec::new();
    sw.drain_events(&mut ev, 64);
    ev.into_iter()
        .filter_map(|e| match e {
            Event::PortStatus(s) if s.change == PortChange::Modify => {
                Some((s.port.name, s.port.link_up))
            }
            _ => None,
        })
        .collect()
}

/// A veth pair for a test (`<tag>h<pid>` in this namespace, up; `<tag>p<pid>` up in namespace
/// `<tag><pid>ns`) and an adaptive switch with a port of `kind` on the host end, watching the
/// links; the guards delete the devices and the namespace.
fn veth_switch(tag: &str, kind: PortKind) -> (Switch, RawFd, String, String, Netns, Link) {
    let pid = std::process::id();
    let (host, peer) = (format!("{tag}h{pid}"), format!("{tag}p{pid}"));
    let link = Link(host.clone());
    let ns = Netns::new(format!("{tag}{pid}ns"));
    common::veth_into(&ns, &host, &peer, None);
    ns.ip(&["link", "set", &peer, "up"]);
    let mut sw = Switch::start(adaptive()).unwrap();
    sw.add_port(spec(&host, kind)).unwrap();
    let fd = sw.watch_links().unwrap();
    let _ = events(&mut sw);
    (sw, fd, host, peer, ns, link)
}

#[test]
fn a_veth_ports_link_changes_are_applied_as_the_kernel_announces_them() {
    if !privileged() {
        return;
    }
    // (A split AF_XDP port: its socket and its companion packet socket. The tap test below is
    // the one whose worker spins unless the gone port's backend is closed: a deleted tap
    // fails every read.)
    let (mut sw, fd, host, peer, ns, link) = veth_switch("vl", PortKind::AfXdp);
    assert_eq!(sw.watch_links().unwrap(), fd, "one watch");
    assert!(sw.ports()[0].link_up);
    let down = || vec![(host.clone(), false)];
    let up = || vec![(host.clone(), true)];

    // The container's end goes down: the host end loses carrier.
    ns.ip(&["link", "set", &peer, "down"]);
    assert_eq!(await_link(&mut sw, fd, &host, false), down());
    ns.ip(&["link", "set", &peer, "up"]);
    assert_eq!(await_link(&mut sw, fd, &host, true), up());

    // The host end set down (its carrier unreadable): down, and the poll agrees.
    common::ip(&["link", "set", &host, "down"]);
    assert_eq!(await_link(&mut sw, fd, &host, false), down());
    sw.poll_links();
    assert_eq!(events(&mut sw), [], "the poll keeps it down");
    common::ip(&["link", "set", &host, "up"]);
    assert_eq!(await_link(&mut sw, fd, &host, true), up());

    // The device deleted: down, gone, and its backend closed. Announced: the deletion first
    // closes the device (down), then deletes it (gone).
    common::ip(&["link", "del", &host]);
    let poller = Poller::new().unwrap();
    poller.add(fd, 1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sw.ports()[0].device_gone {
        assert!(
            Instant::now() < deadline,
            "the deletion not applied within 5 s"
        );
        poller.wait(Duration::from_millis(100));
        while sw.link_events() {}
    }
    let ev = events(&mut sw);
    assert_eq!(ev.last(), Some(&(host.clone(), false)), "{ev:?}");
    assert_idle(&sw);
    sw.poll_links();
    assert_eq!(events(&mut sw), [], "a gone device is not read again");
    // The port stays until it is removed.
    assert_eq!(sw.ports()[0].name, host);
    sw.del_port(&host).unwrap();
    assert!(sw.ports().is_empty());
    sw.shutdown();
    drop(link);
}

/// An adaptive switch whose ports' devices are gone, down or idle: its worker sleeps (a worker
/// that waited on a socket that stays ready — a dead one, or one with an error pending —
/// would return from each wait at once, thousands of times in 500 ms; an idle one wakes every
/// 100 ms) and counts no receive errors.
fn assert_idle(sw: &Switch) {
    let sleeps = || sw.worker_stats()[0].sleeps;
    let drops = || {
        sw.port_stats(None)
            .unwrap()
            .iter()
            .map(|(_, c)| c.rx_drops.iter().sum::<u64>() + c.backend_drops)
            .sum::<u64>()
    };
    let (s0, d0) = (sleeps(), drops());
    std::thread::sleep(Duration::from_millis(500));
    let (s1, d1) = (sleeps(), drops());
    assert!(
        s1 - s0 < 50,
        "the worker woke {} times in 500 ms (an idle one ~5 times)",
        s1 - s0
    );
    assert_eq!(d1, d0, "receive errors counted on an idle or gone device");
}

fn adaptive() -> SwitchConfig {
    SwitchConfig {
        poll_mode: PollMode::Adaptive,
        ..SwitchConfig::default()
    }
}

#[test]
fn a_tap_moved_into_a_namespace_is_followed_by_its_carrier_there() {
    if !privileged() {
        return;
    }
    let pid = std::process::id();
    let tap = format!("vlt{pid}");
    let link = Link(tap.clone());
    let ns = Netns::new(format!("vlt{pid}ns"));
    let mut sw = Switch::start(adaptive()).unwrap();
    // The switch creates the tap, down until its container brings it up.
    let info = sw.add_port(spec(&tap, PortKind::Tap)).unwrap();
    assert!(!info.link_up, "a tap that is down is reported down");
    let fd = sw.watch_links().unwrap();
    let _ = events(&mut sw);

    // Moved into the container: the host namespace's last word on it is that it left, and
    // its carrier (followed there) still says down.
    common::ip(&["link", "set", &tap, "netns", &ns.0]);
    ns.ip(&["link", "set", &tap, "up"]);
    // Its announcements stay in the container's namespace: the poll sees it up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sw.ports()[0].link_up {
        while sw.link_events() {}
        sw.poll_links();
        assert!(Instant::now() < deadline, "the moved tap is not seen up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(events(&mut sw), [(tap.clone(), true)]);
    ns.ip(&["link", "set", &tap, "down"]);
    sw.poll_links();
    assert_eq!(events(&mut sw), [(tap.clone(), false)]);
    // No announcement of the tap's changes there reached the host's watch.
    let _ = fd;
    while sw.link_events() {}
    assert_eq!(events(&mut sw), []);
    // Deleted in the container: the poll finds it gone and closes the port's backend (the
    // tap's descriptor would fail every read for ever).
    ns.ip(&["link", "set", &tap, "up"]);
    sw.poll_links();
    assert_eq!(events(&mut sw), [(tap.clone(), true)]);
    // Its worker's failing reads ask the control thread to look (no poll here).
    ns.ip(&["link", "del", &tap]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut ev = Vec::new();
    while !sw.ports()[0].device_gone {
        assert!(Instant::now() < deadline, "the deleted tap not seen gone");
        std::thread::sleep(Duration::from_millis(20));
        ev.extend(events(&mut sw));
    }
    ev.extend(events(&mut sw));
    assert_eq!(ev, [(tap.clone(), false)]);
    assert_idle(&sw);
    sw.poll_links();
    assert_eq!(events(&mut sw), [], "a gone device is not read again");
    sw.del_port(&tap).unwrap();
    sw.shutdown();
    drop(ns);
    drop(link);
}

/// A tap in its container's namespace is not taken for another device that gets the tap's
/// name in the switch's namespace: that device's deletion leaves the port (and the container's
/// tap) alone. Until 2026-12-07 its announcements were adopted as the tap's, and its deletion
/// closed the port, which deleted the tap inside the running container (found by an audit).
#[test]
fn another_device_of_a_moved_taps_name_does_not_close_the_tap() {
    if !privileged() {
        return;
    }
    let pid = std::process::id();
    let tap = format!("vlu{pid}");
    let other_peer = format!("vlv{pid}");
    let _link = Link(tap.clone());
    let _other = Link(other_peer.clone());
    let ns = Netns::new(format!("vlu{pid}ns"));
    let mut sw = Switch::start(adaptive()).unwrap();
    sw.add_port(spec(&tap, PortKind::Tap)).unwrap();
    let fd = sw.watch_links().unwrap();
    let poller = Poller::new().unwrap();
    poller.add(fd, 1).unwrap();
    let settle = |sw: &mut Switch| {
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            poller.wait(Duration::from_millis(50));
            while sw.link_events() {}
        }
    };
    common::ip(&["link", "set", &tap, "netns", &ns.0]);
    ns.ip(&["link", "set", &tap, "up"]);
    settle(&mut sw);
    sw.poll_links();
    assert!(sw.ports()[0].link_up && !sw.ports()[0].device_gone);
    // Another device takes the name here, comes up, and is deleted.
    common::ip(&[
        "link",
        "add",
        &tap,
        "type",
        "veth",
        "peer",
        "name",
        &other_peer,
    ]);
    common::ip(&["link", "set", &other_peer, "up"]);
    common::ip(&["link", "set", &tap, "up"]);
    settle(&mut sw);
    common::ip(&["link", "del", &tap]);
    settle(&mut sw);
    let p = sw.ports().remove(0);
    assert!(!p.device_gone, "the tap's port was closed: {p:?}");
    assert!(
        ns.exec(&["ip", "link", "show", &tap]),
        "the container's tap is gone"
    );
    sw.del_port(&tap).unwrap();
    sw.shutdown();
    drop(ns);
}

/// Veth pairs (one end named each), deleted on drop.
struct Pairs(Vec<String>);

impl Drop for Pairs {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = common::ip_ok(&["link", "del", n]);
        }
    }
}

#[test]
fn a_burst_of_announcements_is_read_in_bounded_steps_and_loses_no_change() {
    if !privileged() {
        return;
    }
    let pid = std::process::id();
    let (mut sw, fd, host, peer, ns, link) = veth_switch("vlb", PortKind::AfPacket);
    // More devices come and go than one call reads datagrams of, then the port goes down.
    // (Each pair is two devices, each announced.)
    let n = datapath::switch::LINK_READS;
    let pairs = Pairs((0..n).map(|i| format!("vlb{pid}x{i}")).collect());
    let batch: String = (0..n)
        .map(|i| format!("link add vlb{pid}x{i} type veth peer name vlb{pid}y{i}\n"))
        .collect();
    let file = std::env::temp_dir().join(format!("vlb{pid}.batch"));
    std::fs::write(&file, batch).unwrap();
    common::ip(&["-batch", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    ns.ip(&["link", "set", &peer, "down"]);
    // Every announcement is queued by now (the last command returned after its own).
    let mut calls = 1;
    while sw.link_events() {
        calls += 1;
        assert!(calls <= 2 * n, "link_events never runs dry");
    }
    assert!(calls >= 2, "{n} pairs' announcements read in one call");
    // (The host end's own announcement comes from the kernel's link work, which may run
    // after `ip` returned.)
    assert_eq!(
        await_link(&mut sw, fd, &host, false),
        [(host.clone(), false)]
    );
    let _ = fd;
    drop(pairs);
    sw.shutdown();
    drop(ns);
    drop(link);
}

#[test]
fn a_gone_ports_device_coming_back_opens_the_port_again() {
    if !privileged() {
        return;
    }
    let pid = std::process::id();
    let (host, peer) = (format!("vlrh{pid}"), format!("vlrp{pid}"));
    let link = Link(host.clone());
    let ns = Netns::new(format!("vlr{pid}ns"));
    let net = common::Net {
        peer_mac: [0x02, 0, 0, 0, 0x79, 0x02],
        peer_ip: [10, 79, 0, 2],
        ns_ip: [10, 79, 0, 1],
    };
    let pair = |ns: &Netns| {
        common::veth_into(ns, &host, &peer, None);
        ns.configure(&peer, &net);
    };
    pair(&ns);
    let mut sw = Switch::start(adaptive()).unwrap();
    let id = sw.add_port(spec(&host, PortKind::AfPacket)).unwrap().id;
    let fd = sw.watch_links().unwrap();
    let poller = Poller::new().unwrap();
    poller.add(fd, 1).unwrap();
    let until = |sw: &mut Switch, what: &str, done: &dyn Fn(&Switch) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(sw) {
            assert!(Instant::now() < deadline, "not {what} within 5 s");
            poller.wait(Duration::from_millis(100));
            while sw.link_events() {}
        }
    };
    // Frames the namespace sends (pings to an address the port's side answers nothing for)
    // reach the port.
    let received = |sw: &Switch| sw.port_stats(None).unwrap()[0].1.rx_pkts;
    let ping = || {
        let _ = ns.exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", &net.peer_addr()]);
    };
    ping();
    assert!(received(&sw) >= 2);

    common::ip(&["link", "del", &host]);
    until(&mut sw, "gone", &|sw| sw.ports()[0].device_gone);
    let _ = events(&mut sw);
    // Back, by the same name: the same port opens on it again.
    pair(&ns);
    until(&mut sw, "back and up", &|sw| {
        let p = &sw.ports()[0];
        !p.device_gone && p.link_up
    });
    let p = sw.ports().remove(0);
    assert_eq!(
        (p.id, p.name.as_str(), p.kind),
        (id, host.as_str(), PortKind::AfPacket)
    );
    let ev = events(&mut sw);
    assert_eq!(ev.last(), Some(&(host.clone(), true)), "{ev:?}");
    let before = received(&sw);
    ping();
    assert!(
        received(&sw) >= before + 2,
        "frames of the new device reach the port"
    );
    sw.del_port(&host).unwrap();
    sw.shutdown();
    drop(ns);
    drop(link);
}

#[test]
fn a_packet_socket_port_on_a_device_that_is_down_lets_its_worker_sleep() {
    if !privileged() {
        return;
    }
    let pid = std::process::id();
    let (host, peer) = (format!("vldh{pid}"), format!("vldp{pid}"));
    let link = Link(host.clone());
    let ns = Netns::new(format!("vld{pid}ns"));
    common::veth_into(&ns, &host, &peer, None);
    ns.ip(&["link", "set", &peer, "up"]);
    common::ip(&["link", "set", &host, "down"]);
    let mut sw = Switch::start(adaptive()).unwrap();
    // The kernel leaves ENETDOWN on a packet socket bound to a device that is down (and on
    // one whose device goes down), and the socket polls as ready until that is read: the
    // split AF_XDP port has such a socket for its long frames too.
    sw.add_port(spec(&host, PortKind::AfPacket)).unwrap();
    assert!(!sw.ports()[0].link_up);
    assert_idle(&sw);
    common::ip(&["link", "set", &host, "up"]);
    assert_idle(&sw);
    common::ip(&["link", "set", &host, "down"]);
    assert_idle(&sw);
    sw.shutdown();
    drop(ns);
    drop(link);
}

#[test]
fn a_port_follows_its_devices_mtu_set_after_it_opened() {
    if !privileged() {
        return;
    }
    // An AF_PACKET port, and a split AF_XDP port (its long frames go through its companion
    // packet socket).
    for (tag, kind) in [("vma", PortKind::AfPacket), ("vmx", PortKind::AfXdp)] {
        mtu_followed(tag, kind);
    }
}

/// Two namespaces on ports of `kind`: 8,000-byte pings cross once every end's MTU is raised
/// to 9,000 after the ports opened (a port that kept its MTU of 1,500 refused them as too
/// big), and after the receiving port's device goes back to 1,500 its port refuses them as
/// too big, counted (not handed to the kernel to fail).
fn mtu_followed(tag: &str, kind: PortKind) {
    use datapath::stats::DropReason;
    let pid = std::process::id();
    let names = |s: &str| {
        (
            format!("{tag}{s}h{pid}"),
            format!("{tag}{s}p{pid}"),
            Netns::new(format!("{tag}{s}{pid}ns")),
        )
    };
    let (ha, pa, nsa) = names("a");
    let (hb, pb, nsb) = names("b");
    let (_la, _lb) = (Link(ha.clone()), Link(hb.clone()));
    common::veth_into(&nsa, &ha, &pa, None);
    common::veth_into(&nsb, &hb, &pb, None);
    for (ns, dev, ip) in [(&nsa, &pa, "10.78.0.1/24"), (&nsb, &pb, "10.78.0.2/24")] {
        ns.ip(&["addr", "add", ip, "dev", dev]);
        ns.ip(&["link", "set", dev, "up"]);
    }
    let mut sw = Switch::start(adaptive()).unwrap();
    sw.add_port(spec(&ha, kind)).unwrap();
    sw.add_port(spec(&hb, kind)).unwrap();
    let fd = sw.watch_links().unwrap();
    let poller = Poller::new().unwrap();
    poller.add(fd, 1).unwrap();
    // Applies what the kernel announced, then pings with `size` bytes of payload, until one
    // is answered (for `secs` at most).
    let crosses = |sw: &mut Switch, size: &str, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            poller.wait(Duration::from_millis(50));
            while sw.link_events() {}
            let ping = [
                "ping",
                "-c",
                "1",
                "-W",
                "1",
                "-M",
                "do",
                "-s",
                size,
                "10.78.0.2",
            ];
            if nsa.exec(&ping) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    };
    let too_big =
        |sw: &Switch| sw.port_stats(Some(&hb)).unwrap()[0].1.tx_drops[DropReason::TooBig as usize];
    let mtu = |sw: &Switch| sw.ports().into_iter().find(|p| p.name == hb).unwrap().mtu;
    assert_eq!(mtu(&sw), Some(1500));
    assert!(crosses(&mut sw, "56", 5), "{kind:?}: pings");
    let _ = events(&mut sw);
    for dev in [&ha, &hb] {
        common::ip(&["link", "set", dev, "mtu", "9000"]);
    }
    nsa.ip(&["link", "set", &pa, "mtu", "9000"]);
    nsb.ip(&["link", "set", &pb, "mtu", "9000"]);
    assert!(
        crosses(&mut sw, "8000", 5),
        "{kind:?}: 8,000-byte pings with every MTU at 9,000 (too big at {hb}: {})",
        too_big(&sw)
    );
    assert_eq!(mtu(&sw), Some(9000));
    let mut ev = Vec::new();
    sw.drain_events(&mut ev, 64);
    assert!(
        ev.iter().any(|e| matches!(e, Event::PortStatus(s)
            if s.change == PortChange::Modify && s.port.name == hb && s.port.mtu == Some(9000))),
        "{kind:?}: the MTU reported: {ev:?}"
    );
    // The receiving port's device back at 1,500 (its container's end still at 9,000).
    common::ip(&["link", "set", &hb, "mtu", "1500"]);
    let before = too_big(&sw);
    assert!(!crosses(&mut sw, "8000", 1), "{kind:?}: above the MTU");
    assert!(
        too_big(&sw) > before,
        "{kind:?}: refused as too big at {hb}: {:?}",
        sw.port_stats(Some(&hb)).unwrap()[0].1
    );
    assert!(crosses(&mut sw, "1400", 5), "{kind:?}: below it");
    assert_eq!(mtu(&sw), Some(1500));
    sw.shutdown();
}

/// A veth pair for a drop test: `<tag>h<pid>` here, up (the port's device), and `<tag>p<pid>`
/// in namespace `<tag><pid>ns`, up when `peer_up`; the guards delete both.
struct Pair {
    host: String,
    peer: String,
    // Dropped first: the namespace takes the peer, and with it the host end.
    ns: Netns,
    _link: Link,
}

fn pair(tag: &str, peer_up: bool) -> Pair {
    let pid = std::process::id();
    let (host, peer) = (format!("{tag}h{pid}"), format!("{tag}p{pid}"));
    let link = Link(host.clone());
    let ns = Netns::new(format!("{tag}{pid}ns"));
    common::veth_into(&ns, &host, &peer, None);
    ns.ip(&["link", "set", &peer, if peer_up { "up" } else { "down" }]);
    Pair {
        host,
        peer,
        ns,
        _link: link,
    }
}

/// An adaptive switch with a port of `kind` on `host` and a mem port in the same VLAN, whose
/// peer floods [`numbered`] frames to it.
fn with_mem_port(host: &str, kind: PortKind) -> (Switch, datapath::port::mem::MemPeer) {
    use datapath::port::mem::{MemPort, MemPortOptions};
    let mut sw = Switch::start(adaptive()).unwrap();
    sw.add_port(spec(host, kind)).unwrap();
    let (m, peer) = MemPort::new("m1", MemPortOptions::default());
    sw.add_port_backend(Box::new(m), VlanMode::default())
        .unwrap();
    (sw, peer)
}

/// A 60-byte broadcast frame numbered `i` (a local experimental EtherType).
fn numbered(i: u8) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0x7d, 1, 0x88, 0xb5, i]);
    f.resize(60, 0);
    f
}

/// Port `host`'s counters.
fn counters(sw: &Switch, host: &str) -> datapath::stats::PortCountersSnapshot {
    sw.port_stats(Some(host)).unwrap().remove(0).1
}

#[test]
fn frames_a_device_drops_without_a_word_are_reported_as_its_ports_device_drops() {
    if !privileged() {
        return;
    }
    for (tag, kind) in [("vda", PortKind::AfPacket), ("vdx", PortKind::AfXdp)] {
        device_drops(tag, kind);
    }
}

/// A port of `kind` on a veth whose namespace end is down (no carrier: the kernel drops what
/// is sent to it, and tells no sender). Flooded frames from a mem port go out of it: each is
/// in its `tx_pkts` and in its `device` drops, read from the device's own count, of which the
/// drops from before the port was added are no part. Then the device moves to another
/// namespace (the port parked, its counts kept, the drops there not its) and back.
fn device_drops(tag: &str, kind: PortKind) {
    use datapath::stats::DropReason;
    let pid = std::process::id();
    let p = pair(tag, false);
    let host = p.host.as_str();
    // Three frames the device drops before it is a port's.
    let hex: String = numbered(0).iter().map(|b| format!("{b:02x}")).collect();
    let send3 = format!(
        "import socket\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
         s.bind(('{host}', 0))\n\
         for _ in range(3): s.send(bytes.fromhex('{hex}'))\n"
    );
    common::run(&[common::python(), "-c", &send3]);
    let dropped =
        std::fs::read_to_string(format!("/sys/class/net/{host}/statistics/tx_dropped")).unwrap();
    assert!(
        dropped.trim().parse::<u64>().unwrap() >= 3,
        "{kind:?}: {dropped}"
    );
    let (mut sw, mem) = with_mem_port(host, kind);
    for i in 1..=10 {
        assert!(mem.send(&numbered(i)));
    }
    let stats = |sw: &Switch| counters(sw, host);
    let done = common::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        stats(&sw).tx_drops[DropReason::Device as usize] >= 10
    });
    let s = stats(&sw);
    assert!(done, "{kind:?}: {s:?}");
    assert_eq!(s.tx_pkts, 10, "{kind:?}: {s:?}");
    assert_eq!(
        s.tx_drops[DropReason::Device as usize],
        10,
        "{kind:?}: {s:?}"
    );
    assert_eq!(
        s.tx_drops.iter().sum::<u64>(),
        10,
        "{kind:?}: no other drop: {s:?}"
    );

    // The device leaves for another namespace: its socket loses it, and the port is parked
    // as gone, its counts kept. The 3 frames it drops there are not the port's.
    let fd = sw.watch_links().unwrap();
    let poller = Poller::new().unwrap();
    poller.add(fd, 1).unwrap();
    let until = |sw: &mut Switch, what: &str, done: &dyn Fn(&Switch) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(sw) {
            assert!(Instant::now() < deadline, "{kind:?}: not {what} within 5 s");
            poller.wait(Duration::from_millis(50));
            while sw.link_events() {}
        }
    };
    let port = |sw: &Switch| sw.ports().into_iter().find(|p| p.name == host).unwrap();
    let id = port(&sw).id;
    let away = Netns::new(format!("{tag}{pid}aw"));
    common::ip(&["link", "set", host, "netns", &away.0]);
    until(&mut sw, "parked", &|sw| port(sw).device_gone);
    away.ip(&["link", "set", host, "up"]);
    away.run(&[common::python(), "-c", &send3]);
    let moved = away.run(&[
        "cat",
        &format!("/sys/class/net/{host}/statistics/tx_dropped"),
    ]);
    assert!(
        moved.trim().parse::<u64>().unwrap() >= 16,
        "{kind:?}: dropped there: {moved}"
    );
    let device = |sw: &Switch| stats(sw).tx_drops[DropReason::Device as usize];
    assert_eq!(device(&sw), 10, "{kind:?}: while away");
    // Back in this process's namespace and up (with carrier): the port opens on it again
    // (the same number, its counters new), and its frames go out on it: with the namespace's
    // end down again, into the device's drops.
    away.ip(&["link", "set", host, "netns", &pid.to_string()]);
    // (Its IPv6 settings are this namespace's defaults again: off, so the host stays quiet.)
    std::fs::write(format!("/proc/sys/net/ipv6/conf/{host}/disable_ipv6"), "1").unwrap();
    p.ns.ip(&["link", "set", &p.peer, "up"]);
    common::ip(&["link", "set", host, "up"]);
    until(&mut sw, "open again", &|sw| !port(sw).device_gone);
    assert_eq!(port(&sw).id, id);
    assert_eq!(
        (stats(&sw).tx_pkts, device(&sw)),
        (0, 0),
        "{kind:?}: new counters"
    );
    p.ns.ip(&["link", "set", &p.peer, "down"]);
    assert!(mem.send(&numbered(11)));
    assert!(
        common::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            device(&sw) == 1
        }),
        "{kind:?}: {:?}",
        stats(&sw)
    );
    assert_eq!(stats(&sw).tx_pkts, 1, "{kind:?}");
    sw.shutdown();
}

#[test]
fn frames_queued_for_a_device_that_is_then_deleted_are_counted_as_dropped() {
    if !privileged() {
        return;
    }
    for (tag, kind) in [("vqa", PortKind::AfPacket), ("vqx", PortKind::AfXdp)] {
        queued_then_deleted(tag, kind);
    }
}

/// A port of `kind` on a veth set down: frames flooded to it from a mem port are queued in
/// its transmit ring (the kernel refuses the kick with `ENETDOWN`) and in its `tx_pkts`, not
/// dropped yet. The device is deleted: the port is parked, its backend closed, and the frames
/// the ring still held count as transmit drops of reason `backend`.
fn queued_then_deleted(tag: &str, kind: PortKind) {
    use datapath::stats::DropReason;
    let p = pair(tag, true);
    let host = p.host.as_str();
    let (mut sw, mem) = with_mem_port(host, kind);
    let fd = sw.watch_links().unwrap();
    let poller = Poller::new().unwrap();
    poller.add(fd, 1).unwrap();
    common::ip(&["link", "set", host, "down"]);
    for i in 1..=10 {
        assert!(mem.send(&numbered(i)));
    }
    let stats = |sw: &Switch| counters(sw, host);
    assert!(
        common::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            stats(&sw).tx_pkts >= 10
        }),
        "{kind:?}: {:?}",
        stats(&sw)
    );
    let s = stats(&sw);
    assert_eq!(s.tx_drops.iter().sum::<u64>(), 0, "{kind:?}: queued: {s:?}");
    common::ip(&["link", "del", host]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sw.ports().iter().any(|p| p.name == host && p.device_gone) {
        assert!(Instant::now() < deadline, "{kind:?}: not gone within 5 s");
        poller.wait(Duration::from_millis(100));
        while sw.link_events() {}
    }
    // Parking waits for the workers to let the backend go.
    let s = stats(&sw);
    assert_eq!(
        (s.tx_pkts, s.tx_drops[DropReason::Backend as usize]),
        (10, 10),
        "{kind:?}: {s:?}"
    );
    assert_eq!(s.tx_drops.iter().sum::<u64>(), 10, "{kind:?}: {s:?}");
    // What is sent to the parked port now is dropped as sent to a port that is down.
    for i in 11..=13 {
        assert!(mem.send(&numbered(i)));
    }
    assert!(
        common::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            stats(&sw).tx_drops.iter().sum::<u64>() >= 13
        }),
        "{kind:?}: {:?}",
        stats(&sw)
    );
    let s = stats(&sw);
    assert_eq!(
        (s.tx_drops[DropReason::PortDown as usize], s.tx_pkts),
        (3, 10),
        "{kind:?}: {s:?}"
    );
    sw.shutdown();
}

/// An inline switch (no worker thread: nothing is read until the test polls) with a tap port
/// `tap`, which the switch creates.
fn inline_tap_switch(tap: &str) -> Switch {
    let mut sw = Switch::start(SwitchConfig {
        poll_mode: PollMode::Inline,
        ..SwitchConfig::default()
    })
    .unwrap();
    sw.add_port(spec(tap, PortKind::Tap)).unwrap();
    sw
}

/// Moves `tap` into `ns` as a container's interface, `10.<net>.0.1/24`, with a permanent
/// neighbour `10.<net>.0.2` that no device is; returns the addresses.
fn into_container(tap: &str, ns: &Netns, net: u8) -> common::Net {
    common::ip(&["link", "set", tap, "netns", &ns.0]);
    let n = common::Net {
        peer_mac: [0x02, 0, 0, 0, 0x7f, net],
        peer_ip: [10, net, 0, 2],
        ns_ip: [10, net, 0, 1],
    };
    ns.configure(tap, &n);
    n
}

/// Sends `count` one-byte UDP datagrams from `ns` to `to`, port `port + i` for the i-th when
/// `spread`, else `port`.
fn send_udp_from(ns: &Netns, to: &str, port: u16, count: u16, spread: bool) {
    let step = u16::from(spread);
    ns.run(&[
        common::python(),
        "-c",
        &format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             for i in range({count}): s.sendto(b'x', ('{to}', {port} + i * {step}))\n"
        ),
    ]);
}

/// A receive poll that fails (here a tap port whose device was deleted: every read fails
/// until the port is parked) loses no frame: it is a worker's receive error, not a drop.
#[test]
fn failed_receive_polls_are_errors_not_drops() {
    if !privileged() {
        return;
    }
    let tap = format!("vle{}", std::process::id());
    let _link = Link(tap.clone());
    let mut sw = inline_tap_switch(&tap);
    common::ip(&["link", "set", &tap, "up"]);
    common::ip(&["link", "del", &tap]);
    // No link watch and no poll: the port is not parked, and every poll of it fails.
    for ms in 1..=100 {
        sw.poll_inline_at(Duration::from_millis(ms));
    }
    let (_, c) = sw.port_stats(Some(&tap)).unwrap().remove(0);
    assert_eq!(
        (c.backend_drops, c.rx_drops.iter().sum::<u64>()),
        (0, 0),
        "{c:?}"
    );
    assert_eq!(sw.worker_stats()[0].rx_errors, 100);
}

/// A tap port in its container's namespace, not read for a while (an inline switch that is not
/// polled): the container sends 3,000 datagrams, the tap's queue holds 1,000 and the kernel
/// drops the rest, telling no sender. The port reports them as receive drops `rx_ring_full`
/// (the tap's own `tx_dropped`, which follows it into the namespace), as it does a full ring
/// of the other backends.
#[test]
fn frames_a_full_tap_queue_lost_are_receive_drops_of_its_port() {
    use datapath::stats::DropReason;
    if !privileged() {
        return;
    }
    let pid = std::process::id();
    let tap = format!("vlq{pid}");
    let _link = Link(tap.clone());
    let ns = Netns::new(format!("vlq{pid}ns"));
    let sw = inline_tap_switch(&tap);
    let net = into_container(&tap, &ns, 80);
    let dropped = || -> u64 {
        ns.run(&[
            "cat",
            &format!("/sys/class/net/{tap}/statistics/tx_dropped"),
        ])
        .trim()
        .parse()
        .unwrap()
    };
    let before = dropped();
    send_udp_from(&ns, &net.peer_addr(), 9, 3000, false);
    let lost = dropped() - before;
    assert!(lost >= 1000, "the tap's queue overflowed: {lost}");
    let (_, c) = sw.port_stats(Some(&tap)).unwrap().remove(0);
    assert_eq!(c.rx_drops[DropReason::RxRingFull as usize], lost, "{c:?}");
    assert_eq!(c.tx_drops[DropReason::Device as usize], 0, "{c:?}");
}

/// A burst of 64 new flows from a tap port: a pass translates 32 of them and leaves the rest
/// waiting for the next. The tap is deleted before that pass: the port is parked, and the
/// frames that were waiting are its receive drops `port_down`, not lost uncounted.
#[test]
fn frames_waiting_for_a_translation_when_their_port_parks_are_counted() {
    use datapath::ofp::MatchField;
    use datapath::ofp::action::{Action, Instructions};
    use datapath::ofp::field::Field;
    use datapath::ofp::pipeline::FlowMod;
    use datapath::stats::DropReason;
    if !privileged() {
        return;
    }
    let pid = std::process::id();
    let tap = format!("vlw{pid}");
    let _link = Link(tap.clone());
    let ns = Netns::new(format!("vlw{pid}ns"));
    let mut sw = inline_tap_switch(&tap);
    let (m, mem) =
        datapath::port::mem::MemPort::new("m1", datapath::port::mem::MemPortOptions::default());
    sw.add_port_backend(Box::new(m), VlanMode::default())
        .unwrap();
    // A rule on UDP port 5000: every other destination port is a megaflow of its own.
    let mf = |field, value| MatchField {
        field,
        value,
        mask: None,
    };
    sw.flow_mod(&FlowMod::add(
        0,
        100,
        vec![
            mf(Field::EthType, 0x0800),
            mf(Field::IpProto, 17),
            mf(Field::UdpDst, 5000),
        ],
        Instructions::apply(vec![Action::Output(2)]),
    ))
    .unwrap();
    sw.barrier().unwrap();
    let net = into_container(&tap, &ns, 81);
    send_udp_from(&ns, &net.peer_addr(), 6000, 64, true);
    sw.poll_inline_at(Duration::from_millis(1));
    let (_, c) = sw.port_stats(Some(&tap)).unwrap().remove(0);
    assert_eq!(c.rx_pkts, 64, "one batch: {c:?}");
    assert_eq!(mem.drain().len(), 32, "32 translated, 32 waiting");
    ns.ip(&["link", "del", &tap]);
    sw.poll_links();
    assert!(sw.ports()[0].device_gone);
    for ms in 2..5 {
        sw.poll_inline_at(Duration::from_millis(ms));
    }
    assert!(mem.drain().is_empty());
    let (_, c) = sw.port_stats(Some(&tap)).unwrap().remove(0);
    assert_eq!(c.rx_drops[DropReason::PortDown as usize], 32, "{c:?}");
}
