//! Real traffic between network namespaces through a real `vswitchd`, programmed over the
//! control socket: AF_XDP veth ports, tap ports with offloads, `auto` (AF_PACKET) veth ports,
//! and mixes of them.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Lab, tcp_transfer, tcp_transfer_via, udp};
use control::proto::msg::PortType;
use datapath::sys::bpf::{XdpAttachMode, XdpLink, XdpProgram, XskMap};
use testbed::{Container, require_privileges};

/// A macvlan in passthru mode on `lower` (all of the lower device's traffic goes through it),
/// deleted on drop.
struct Macvlan(String);

impl Macvlan {
    fn on(lower: &str) -> Self {
        let name = format!("vsmv{}", std::process::id() % 100_000);
        let ok = std::process::Command::new("ip")
            .args(["link", "add", &name, "link", lower, "type", "macvlan"])
            .args(["mode", "passthru"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip link add {name} type macvlan");
        let mv = Self(name);
        let ok = std::process::Command::new("ip")
            .args(["link", "set", &mv.0, "up"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip link set {} up", mv.0);
        mv
    }
}

impl Drop for Macvlan {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn afxdp_ports_carry_ping_udp_and_a_verified_100mb_tcp_transfer() {
    if !require_privileges("afxdp traffic") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let c1 = Container::veth("vsx", 1, "10.201.0.1").unwrap();
    let c2 = Container::veth("vsx", 2, "10.201.0.2").unwrap();
    // Container ends keep their default offloads (tx checksumming on).
    assert_eq!(lab.add_port(&c1.port, PortType::Afxdp, None), "afxdp");
    assert_eq!(lab.add_port(&c2.port, PortType::Afxdp, None), "afxdp");
    assert!(
        testbed::xdp_attached(&c1.port),
        "XDP program attached to {}",
        c1.port
    );

    assert!(
        c1.ns.ping(&c2.addr, 3),
        "ping c1 → c2\n{}",
        lab.daemon.log()
    );
    assert!(c2.ns.ping(&c1.addr, 3), "ping c2 → c1");
    assert_eq!(udp(&c1, &c2, 200, 6000), 200, "UDP datagrams c1 → c2");
    tcp_transfer(&c1, &c2, 100_000_000, 5201);
    tcp_transfer(&c2, &c1, 10_000_000, 5202);

    let s1 = lab.stats(&c1.port);
    let s2 = lab.stats(&c2.port);
    // On a veth the port is split: generic XDP leaves the containers' TSO on, and their GSO
    // frames cross through the ports' AF_PACKET companions.
    assert!(
        s1.rx_jumbo > 0 && s1.rx_bytes / s1.rx_pkts.max(1) > 1514,
        "frames larger than the MTU crossed the switch (TSO/GSO in effect): {s1:?}"
    );
    assert!(s2.tx_jumbo > 0, "{s2:?}");
    // Counted in bytes: how many frames 100 MB takes depends on the GSO sizes the sender's
    // TCP picks (2,974 frames in one run under load).
    assert!(
        s1.rx_bytes > 100_000_000,
        "c1 port received the transfer: {s1:?}"
    );
    assert!(
        s2.tx_bytes > 100_000_000,
        "c2 port sent the transfer: {s2:?}"
    );
    assert_eq!(s1.rx_dropped, 0, "no receive drops: {s1:?}");
    assert!(
        lab.daemon.log().contains("through AF_PACKET"),
        "split ports on veth\n{}",
        lab.daemon.log()
    );
}

/// `ip link show dev` of a host-side device.
fn link_line(dev: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["link", "show", "dev", dev])
        .output()
        .expect("ip link show");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_afxdp_port_takes_the_xdp_mode_it_is_given() {
    if !require_privileges("xdp modes") {
        return;
    }
    use control::proto::msg::{PortAddRequest, XdpModeSpec};
    let mut lab = Lab::start(&[]);
    let c1 = Container::veth("vsm", 1, "10.213.0.1").unwrap();
    let c2 = Container::veth("vsm", 2, "10.213.0.2").unwrap();
    // Only for AF_XDP ports: a clear error, nothing added.
    let mut r = PortAddRequest::new(&c1.port);
    r.port_type = Some(PortType::Afpacket);
    r.xdp_mode = Some(XdpModeSpec::Native);
    let err = lab.client.port_add(r).unwrap_err().to_string();
    assert!(err.contains("xdp_mode"), "{err}");
    let mut r = PortAddRequest::new(&c1.port);
    r.xdp_frags = true;
    let err = lab.client.port_add(r).unwrap_err().to_string();
    assert!(err.contains("xdp_frags"), "{err}");
    // Native mode on one veth, split (the default on veth, asked for) on the other, whose
    // program takes multi-buffer frames: the kernel copies GSO frames into pages for it.
    for (c, mode, frags) in [
        (&c1, XdpModeSpec::Native, false),
        (&c2, XdpModeSpec::Split, true),
    ] {
        let mut r = PortAddRequest::new(&c.port);
        r.port_type = Some(PortType::Afxdp);
        r.xdp_mode = Some(mode);
        r.xdp_frags = frags;
        let p = lab.client.port_add(r).expect("AF_XDP port");
        // The reply says how the program is attached.
        assert_eq!((p.xdp_mode, p.xdp_frags), (Some(mode), frags), "{p:?}");
    }
    // The attach line of c2's port says so (the log is coloured: escapes stripped).
    let log = lab.daemon.log();
    let mut plain = String::new();
    let mut chars = log.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            plain.push(ch);
        }
    }
    assert!(
        plain.lines().any(|l| l.contains("AF_XDP port attached")
            && l.contains(&format!("port=\"{}\"", c2.port))
            && l.contains("frags=true")),
        "{plain}"
    );
    let (l1, l2) = (link_line(&c1.port), link_line(&c2.port));
    assert!(
        l1.contains("xdp") && !l1.contains("xdpgeneric"),
        "native: {l1}"
    );
    assert!(l2.contains("xdpgeneric"), "split: {l2}");
    assert!(
        c1.ns.ping(&c2.addr, 2),
        "ping native ↔ split\n{}",
        lab.daemon.log()
    );
    // Native mode turns c1's TSO off, so its TCP arrives in MTU-sized frames; c2 keeps TSO,
    // and its GSO frames cross through the split port's AF_PACKET socket.
    tcp_transfer(&c1, &c2, 10_000_000, 5215);
    tcp_transfer(&c2, &c1, 10_000_000, 5216);
    let (s1, s2) = (lab.stats(&c1.port), lab.stats(&c2.port));
    assert_eq!(s1.rx_jumbo, 0, "native: no frame above the MTU: {s1:?}");
    assert!(s2.rx_jumbo > 0, "split: GSO frames: {s2:?}");
    assert_eq!(s1.rx_dropped + s2.rx_dropped, 0, "{s1:?} {s2:?}");
}

#[test]
fn tap_ports_carry_tso_segments_larger_than_the_mtu() {
    if !require_privileges("tap traffic") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let t1 = testbed::unique("vst");
    let t2 = testbed::unique("vst");
    assert_eq!(lab.add_port(&t1, PortType::Tap, None), "tap");
    assert_eq!(lab.add_port(&t2, PortType::Tap, None), "tap");
    let c1 = Container::tap("vst", 1, "10.202.0.1", &t1).unwrap();
    let c2 = Container::tap("vst", 2, "10.202.0.2", &t2).unwrap();
    assert!(
        c1.ns.ping(&c2.addr, 2),
        "ping over taps\n{}",
        lab.daemon.log()
    );
    tcp_transfer(&c1, &c2, 100_000_000, 5203);
    let s = lab.stats(&t1);
    assert!(
        s.rx_jumbo > 0 && s.rx_bytes / s.rx_pkts.max(1) > 1514,
        "frames larger than the MTU crossed the switch (TSO/GSO in effect): {s:?}"
    );
    let s2 = lab.stats(&t2);
    assert!(s2.tx_jumbo > 0, "{s2:?}");
}

#[test]
fn afxdp_and_tap_ports_exchange_traffic_both_ways() {
    if !require_privileges("mixed traffic") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let c1 = Container::veth("vsm", 1, "10.203.0.1").unwrap();
    lab.add_port(&c1.port, PortType::Afxdp, None);
    let tap = testbed::unique("vst");
    lab.add_port(&tap, PortType::Tap, None);
    let c2 = Container::tap("vsm", 2, "10.203.0.2", &tap).unwrap();
    assert!(
        c1.ns.ping(&c2.addr, 2),
        "ping veth → tap\n{}",
        lab.daemon.log()
    );
    assert!(c2.ns.ping(&c1.addr, 2), "ping tap → veth");
    // tap → AF_XDP: GSO frames from the tap are segmented in software for the veth.
    tcp_transfer(&c2, &c1, 30_000_000, 5204);
    // AF_XDP → tap: partial checksums from the veth container are completed.
    tcp_transfer(&c1, &c2, 30_000_000, 5205);
}

#[test]
fn two_pinned_workers_hand_frames_to_each_others_ports() {
    if !require_privileges("two workers") {
        return;
    }
    let mut lab = Lab::start(&["--cpus", "0,1", "--poll-mode", "busy"]);
    let c1 = Container::veth("vsw", 1, "10.210.0.1").unwrap();
    let c2 = Container::veth("vsw", 2, "10.210.0.2").unwrap();
    lab.add_port(&c1.port, PortType::Afxdp, None);
    lab.add_port(&c2.port, PortType::Afxdp, None);
    let show = lab.show();
    assert_eq!(show.workers, 2);
    assert_eq!(show.cpus, vec![0, 1]);
    assert_ne!(
        show.ports[0].worker, show.ports[1].worker,
        "ports spread over workers: {show:?}"
    );
    assert!(
        c1.ns.ping(&c2.addr, 2),
        "ping across workers\n{}",
        lab.daemon.log()
    );
    tcp_transfer(&c1, &c2, 20_000_000, 5206);
    // Data frames arrive on the worker that owns c1's port and are handed to the one that owns
    // c2's; the ACKs (fewer: delayed ACKs, GRO) go the other way.
    let show = lab.show();
    let frames = |port: usize| {
        let w = show.ports[port].worker;
        show.worker_stats
            .iter()
            .find(|s| s.worker == w)
            .map_or(0, |s| s.frames)
    };
    // (20 MB is at least 305 frames of up to 64 KiB: these split ports carry GSO frames.)
    assert!(
        frames(0) >= 305 && frames(1) > 10,
        "both workers forwarded: {show:?}"
    );
}

#[test]
fn auto_ports_on_veth_are_af_packet_and_carry_tso_tcp_verified() {
    if !require_privileges("auto veth ports") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let c1 = Container::veth("vsf", 1, "10.211.0.1").unwrap();
    let c2 = Container::veth("vsf", 2, "10.211.0.2").unwrap();
    // On a veth `auto` means AF_PACKET with virtio-net headers: no XDP program, so the
    // containers keep TSO and their TCP crosses the switch as GSO super-frames.
    assert_eq!(lab.add_port(&c1.port, PortType::Auto, None), "afpacket");
    assert_eq!(lab.add_port(&c2.port, PortType::Auto, None), "afpacket");
    assert!(
        !testbed::xdp_attached(&c1.port),
        "no XDP program on {}",
        c1.port
    );
    assert!(
        lab.daemon.log().contains("veth gets an AF_PACKET port"),
        "choice logged:\n{}",
        lab.daemon.log()
    );
    assert!(
        c1.ns.ping(&c2.addr, 2),
        "ping over auto ports\n{}",
        lab.daemon.log()
    );
    tcp_transfer(&c1, &c2, 100_000_000, 5207);
    tcp_transfer(&c2, &c1, 20_000_000, 5208);
    let s1 = lab.stats(&c1.port);
    assert!(
        s1.rx_jumbo > 0 && s1.rx_bytes / s1.rx_pkts.max(1) > 1514,
        "frames larger than the MTU crossed the switch (the peer kept TSO): {s1:?}"
    );
    let s2 = lab.stats(&c2.port);
    assert!(s2.tx_jumbo > 0, "GSO frames sent on as they are: {s2:?}");
    assert_eq!(s1.rx_dropped, 0, "no receive drops: {s1:?}");
}

#[test]
fn an_auto_veth_port_and_an_afxdp_port_exchange_tcp_both_ways() {
    if !require_privileges("auto and afxdp") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let c1 = Container::veth("vsf", 1, "10.213.0.1").unwrap();
    let c2 = Container::veth("vsf", 2, "10.213.0.2").unwrap();
    assert_eq!(lab.add_port(&c1.port, PortType::Auto, None), "afpacket");
    // AF_XDP on a veth stays available as an explicit choice.
    assert_eq!(lab.add_port(&c2.port, PortType::Afxdp, None), "afxdp");
    assert!(
        c1.ns.ping(&c2.addr, 2),
        "AF_PACKET ↔ AF_XDP\n{}",
        lab.daemon.log()
    );
    // GSO frames from c1 are segmented in software for the AF_XDP port; partial checksums
    // from c2 are completed.
    tcp_transfer(&c1, &c2, 20_000_000, 5215);
    tcp_transfer(&c2, &c1, 20_000_000, 5216);
}

#[test]
fn a_two_queue_afxdp_port_is_split_over_two_workers_and_forwards() {
    if !require_privileges("multi-queue") {
        return;
    }
    use control::proto::msg::{PortAddRequest, XdpModeSpec};
    let mut lab = Lab::start(&["--cpus", "0,1"]);
    let c1 = Container::veth_queues("vsq", 1, "10.212.0.1", 2).unwrap();
    let c2 = Container::veth_queues("vsq", 2, "10.212.0.2", 2).unwrap();
    for c in [&c1, &c2] {
        let mut r = PortAddRequest::new(&c.port);
        r.port_type = Some(PortType::Afxdp);
        r.queues = 2;
        let p = lab.client.port_add(r).expect("two-queue port");
        assert_eq!(p.queues, 2);
        assert_eq!(p.xdp_mode, Some(XdpModeSpec::Native), "{p:?}");
        let mut owners = p.queue_workers.clone();
        owners.sort_unstable();
        assert_eq!(
            owners,
            vec![0, 1],
            "each worker owns one (port, queue) pair: {p:?}"
        );
    }
    // Several queues on a veth: native XDP (generic XDP would see every frame on queue 0).
    assert!(
        lab.daemon
            .log()
            .contains("several queues on a veth: native XDP"),
        "{}",
        lab.daemon.log()
    );
    let l1 = link_line(&c1.port);
    assert!(
        l1.contains("xdp") && !l1.contains("xdpgeneric"),
        "native: {l1}"
    );
    assert!(
        c1.ns.ping(&c2.addr, 2),
        "ping over two-queue ports\n{}",
        lab.daemon.log()
    );
    for (i, port) in (5210..5214).enumerate() {
        let (from, to) = if i % 2 == 0 { (&c1, &c2) } else { (&c2, &c1) };
        tcp_transfer(from, to, 5_000_000, port);
    }
    let s = lab.stats(&c1.port);
    // Each way 2 × 5 MB crossed (in MTU-sized frames: native mode turns the peer's TSO off).
    assert!(
        s.rx_bytes > 10_000_000 && s.tx_bytes > 10_000_000,
        "counters of both parts summed: {s:?}"
    );
    lab.del_port(&c1.port);
    assert!(
        !testbed::xdp_attached(&c1.port),
        "program detached with the last part"
    );
}

#[test]
fn an_auto_port_falls_back_to_af_packet_when_af_xdp_cannot_attach_and_forwards() {
    if !require_privileges("AF_XDP fallback") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let c1 = Container::veth("vsb", 1, "10.214.0.1").unwrap();
    let c2 = Container::veth("vsb", 2, "10.214.0.2").unwrap();
    // The switch port is a macvlan on c2's veth: not a veth, so `auto` tries AF_XDP first; an
    // XDP program this test already attached makes AF_XDP fail, and the port must come up as
    // AF_PACKET and forward.
    let mv = Macvlan::on(&c2.port);
    let ifindex = datapath::sys::netdev::ifindex(&mv.0).unwrap();
    let map = XskMap::new(1).unwrap();
    let prog = XdpProgram::load_redirect(&map, false).unwrap();
    let busy = XdpLink::attach(&prog, ifindex, XdpAttachMode::Skb).unwrap();
    assert_eq!(lab.add_port(&c1.port, PortType::Auto, None), "afpacket");
    assert_eq!(lab.add_port(&mv.0, PortType::Auto, None), "afpacket");
    assert!(
        lab.daemon
            .log()
            .contains("AF_XDP unavailable, falling back to AF_PACKET"),
        "fallback logged:\n{}",
        lab.daemon.log()
    );
    assert!(
        testbed::xdp_attached(&mv.0),
        "the switch left the other program attached"
    );
    assert!(
        c1.ns.ping(&c2.addr, 2),
        "ping through the fallback port\n{}",
        lab.daemon.log()
    );
    assert_eq!(
        udp(&c2, &c1, 200, 5301),
        200,
        "UDP through the fallback port"
    );
    tcp_transfer(&c1, &c2, 20_000_000, 5302);
    let s = lab.stats(&mv.0);
    assert!(s.rx_pkts > 200 && s.tx_pkts > 0, "{s:?}");
    drop(busy);
}

/// A VXLAN device `dev` (VNI `vni`, UDP port `port`, over `eth0`) in `c`'s namespace towards
/// `remote`, with the overlay address `addr`/24; it goes away with the namespace.
fn vxlan(c: &Container, dev: &str, vni: &str, port: &str, remote: &str, addr: &str) {
    let add = [
        "link", "add", dev, "type", "vxlan", "id", vni, "remote", remote, "dstport", port, "dev",
        "eth0",
    ];
    let addr = format!("{addr}/24");
    c.ns.ip(&add)
        .and_then(|_| c.ns.ip(&["addr", "add", &addr, "dev", dev]))
        .and_then(|_| c.ns.ip(&["link", "set", dev, "up"]))
        .unwrap_or_else(|e| panic!("vxlan {dev} in {}: {e}", c.ns.name));
}

/// `log` without its ANSI colour sequences (`ESC [ … m`).
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut esc = false;
    for c in log.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (false, c) => out.push(c),
            (true, 'm') => esc = false,
            (true, _) => {}
        }
    }
    out
}

/// Whether `eth0` in `c` hands UDP-tunnel super-frames to the switch (the default offloads).
fn tunnel_gso(c: &Container) -> bool {
    let out = c.ns.exec("ethtool", &["-k", "eth0"]).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == "tx-udp_tnl-segmentation: on")
}

/// Containers that run VXLAN themselves (kind nodes, an overlay CNI inside a container) send
/// TCP as UDP-tunnel GSO super-frames whose tunnel the kernel leaves out of the virtio-net
/// header; the switch segments them itself. Without that, the kernel refused every one on the
/// output port and overlay TCP crawled (250 kbit/s: these transfers timed out).
#[test]
fn overlay_tcp_inside_containers_crosses_auto_and_tap_ports_with_default_offloads() {
    if !require_privileges("overlay tcp") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let v1 = Container::veth("vso", 1, "10.213.0.1").unwrap();
    let v2 = Container::veth("vso", 2, "10.213.0.2").unwrap();
    assert_eq!(lab.add_port(&v1.port, PortType::Auto, None), "afpacket");
    assert_eq!(lab.add_port(&v2.port, PortType::Auto, None), "afpacket");
    let t1 = testbed::unique("vsu");
    assert_eq!(lab.add_port(&t1, PortType::Tap, None), "tap");
    let t = Container::tap("vsu", 3, "10.213.0.3", &t1).unwrap();
    vxlan(&v1, "vx0", "42", "4789", "10.213.0.2", "10.214.0.1");
    vxlan(&v2, "vx0", "42", "4789", "10.213.0.1", "10.214.0.2");
    assert!(tunnel_gso(&v1), "the veth keeps tunnel GSO by default");
    assert!(
        v1.ns.ping(&v2.addr, 2) && v1.ns.ping("10.214.0.2", 2),
        "underlay and overlay ping\n{}",
        lab.daemon.log()
    );
    tcp_transfer_via(&v1, "10.214.0.2:5214", &v2, "10.214.0.2:5214", 20_000_000);
    tcp_transfer_via(&v2, "10.214.0.1:5215", &v1, "10.214.0.1:5215", 20_000_000);
    let (s1, s2) = (lab.stats(&v1.port), lab.stats(&v2.port));
    assert!(
        s1.rx_jumbo > 0,
        "tunnel super-frames arrived from the container: {s1:?}"
    );
    assert_eq!(s2.tx_dropped, 0, "nothing refused on the way out: {s2:?}");
    assert_eq!(s1.tx_dropped, 0, "{s1:?}");

    // A tap container with its own tunnel to v2 (another VNI and port).
    vxlan(&t, "vx0", "43", "4790", "10.213.0.2", "10.215.0.3");
    vxlan(&v2, "vx1", "43", "4790", "10.213.0.3", "10.215.0.2");
    assert!(
        t.ns.ping("10.215.0.2", 2),
        "overlay ping from the tap container"
    );
    tcp_transfer_via(&t, "10.215.0.2:5216", &v2, "10.215.0.2:5216", 20_000_000);
    tcp_transfer_via(&v2, "10.215.0.3:5217", &t, "10.215.0.3:5217", 20_000_000);
    let st = lab.stats(&t1);
    assert_eq!(st.tx_dropped, 0, "{st:?}");
    assert_eq!(lab.stats(&v2.port).tx_dropped, 0);
    // Where the tap's kernel takes UDP-tunnel GSO (Linux 6.17+), the super-frames from the
    // AF_PACKET container went into the tap whole.
    let whole = plain(&lab.daemon.log()).contains("udp_tunnel=true");
    if whole {
        assert!(st.tx_jumbo > 0, "tunnel super-frames written whole: {st:?}");
    }

    // Two tap containers: their tunnel super-frames cross whole both ways (or segmented, on
    // older kernels).
    let t2 = testbed::unique("vsu");
    assert_eq!(lab.add_port(&t2, PortType::Tap, None), "tap");
    let u = Container::tap("vsu", 4, "10.213.0.4", &t2).unwrap();
    vxlan(&t, "vx1", "44", "4791", "10.213.0.4", "10.216.0.3");
    vxlan(&u, "vx0", "44", "4791", "10.213.0.3", "10.216.0.4");
    assert!(
        u.ns.ping("10.216.0.3", 2),
        "overlay ping between tap containers"
    );
    tcp_transfer_via(&t, "10.216.0.4:5218", &u, "10.216.0.4:5218", 20_000_000);
    tcp_transfer_via(&u, "10.216.0.3:5219", &t, "10.216.0.3:5219", 20_000_000);
    let (st, su) = (lab.stats(&t1), lab.stats(&t2));
    assert_eq!((st.tx_dropped, su.tx_dropped), (0, 0), "{st:?} {su:?}");
    if whole {
        assert!(su.rx_jumbo > 0 && su.tx_jumbo > 0, "{su:?}");
    }
    if std::env::var_os("CI").is_some() {
        // CI's kernel is this one (6.18): the tunnel form must be in use there.
        assert!(whole, "tap ports with UDP-tunnel GSO\n{}", lab.daemon.log());
    }
}
