//! L2 behaviour through a real `vswitchd`: VLAN isolation and trunks, flooding, MAC moves and
//! aging, port removal, malformed input, and the daemon's lifecycle (SIGTERM, SIGKILL, restart).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Lab, VSNET, parse_line};
use control::Request;
use control::proto::FlowModRequest;
use control::proto::msg::{PortAddRequest, PortType, VlanSpec};
use etherparse::PacketBuilder;
use testbed::{Container, require_privileges, wait_until};

fn parse_mac(s: &str) -> [u8; 6] {
    s.parse::<datapath::wire::Mac>().unwrap().0
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A broadcast ARP request from `src` (optionally 802.1Q-tagged).
fn arp_broadcast(src: [u8; 6], vlan: Option<u16>) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&src);
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[10, 9, 9, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[10, 9, 9, 2]);
    f
}

fn raw_send(c: &Container, frames: &[Vec<u8>], count: u64) {
    let mut args = vec![
        "raw-send".to_owned(),
        "--dev".into(),
        "eth0".into(),
        "--count".into(),
        count.to_string(),
    ];
    for f in frames {
        args.push("--hex".into());
        args.push(hex(f));
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    c.ns.exec(VSNET, &a).expect("raw send");
}

#[test]
fn vlans_are_isolated_broadcasts_stay_in_their_vlan_and_a_trunk_carries_tags() {
    if !require_privileges("vlans") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let a1 = Container::veth("vsv", 1, "10.204.0.1").unwrap();
    let a2 = Container::veth("vsv", 2, "10.204.0.2").unwrap();
    let b3 = Container::veth("vsv", 3, "10.204.0.3").unwrap();
    let t = Container::veth("vsv", 4, "10.204.0.4").unwrap();
    lab.add_port(&a1.port, PortType::Afxdp, Some(VlanSpec::access(10)));
    lab.add_port(&a2.port, PortType::Afxdp, Some(VlanSpec::access(10)));
    lab.add_port(&b3.port, PortType::Afxdp, Some(VlanSpec::access(20)));
    lab.add_port(
        &t.port,
        PortType::Afxdp,
        Some(VlanSpec::trunk(vec![10, 20], None)),
    );

    // Capture on the trunk container while a1 talks: its frames must arrive tagged with VLAN 10.
    let cap =
        t.ns.command("timeout")
            .args(["8", "tcpdump", "-i", "eth0", "-nn", "-e", "-l", "-c", "3"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        a1.ns.ping(&a2.addr, 2),
        "same VLAN: a1 → a2\n{}",
        lab.daemon.log()
    );
    let out = cap.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("vlan 10"), "trunk saw VLAN 10 tags:\n{text}");
    assert!(
        !text.contains("vlan 20"),
        "trunk saw no VLAN 20 traffic:\n{text}"
    );

    // a1 and b3 share a subnet but not a VLAN: nothing a1 floods reaches b3.
    let b3_before = lab.stats(&b3.port).tx_pkts;
    assert!(
        !a1.ns.ping_once(&b3.addr, 1),
        "other VLAN must be unreachable"
    );
    assert_eq!(
        lab.stats(&b3.port).tx_pkts,
        b3_before,
        "VLAN 10 broadcast leaked into VLAN 20"
    );

    // Tagged broadcasts from the trunk reach exactly the access ports of their VLAN.
    let tmac = parse_mac(&t.mac);
    let a1_before = lab.stats(&a1.port).tx_pkts;
    let b3_before = lab.stats(&b3.port).tx_pkts;
    raw_send(&t, &[arp_broadcast(tmac, Some(20))], 50);
    assert!(wait_until(Duration::from_secs(3), || lab
        .stats(&b3.port)
        .tx_pkts
        >= b3_before + 50));
    assert!(
        lab.stats(&a1.port).tx_pkts < a1_before + 50,
        "VLAN 20 frames reached VLAN 10"
    );
    // A VLAN the trunk does not carry is dropped and counted.
    raw_send(&t, &[arp_broadcast(tmac, Some(30))], 5);
    assert!(wait_until(Duration::from_secs(3), || {
        lab.stats(&t.port)
            .rx_drops
            .get("vlan_not_allowed")
            .copied()
            .unwrap_or(0)
            >= 5
    }));
}

#[test]
fn mac_moves_between_ports_and_aged_entries_disappear() {
    if !require_privileges("mac move") {
        return;
    }
    let mut lab = Lab::start(&["--mac-aging", "2"]);
    let c1 = Container::veth("vsa", 1, "10.205.0.1").unwrap();
    let c2 = Container::veth("vsa", 2, "10.205.0.2").unwrap();
    let c3 = Container::veth("vsa", 3, "10.205.0.3").unwrap();
    for c in [&c1, &c2, &c3] {
        lab.add_port(&c.port, PortType::Afxdp, None);
    }
    assert!(c1.ns.ping(&c2.addr, 1));
    let on_port = |lab: &mut Lab, mac: &str| {
        lab.macs()
            .into_iter()
            .find(|m| m.mac == mac)
            .map(|m| m.port_name)
    };
    assert_eq!(
        on_port(&mut lab, &c1.mac).as_deref(),
        Some(c1.port.as_str())
    );

    // c1's address now speaks from c3's port: the switch re-learns it there.
    raw_send(&c3, &[arp_broadcast(parse_mac(&c1.mac), None)], 3);
    assert!(wait_until(Duration::from_secs(3), || on_port(
        &mut lab, &c1.mac
    )
    .as_deref()
        == Some(c3.port.as_str())));
    assert!(lab.show().mac_moves >= 1);

    // With a 2 s aging time and no traffic, every entry goes away.
    assert!(
        wait_until(Duration::from_secs(8), || lab.macs().is_empty()),
        "entries left: {:?}",
        lab.macs()
    );
}

#[test]
fn removing_a_port_stops_its_traffic_and_detaches_xdp() {
    if !require_privileges("port removal") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let c1 = Container::veth("vsr", 1, "10.206.0.1").unwrap();
    let c2 = Container::veth("vsr", 2, "10.206.0.2").unwrap();
    lab.add_port(&c1.port, PortType::Afxdp, None);
    lab.add_port(&c2.port, PortType::Afxdp, None);
    assert!(c1.ns.ping(&c2.addr, 1));
    lab.del_port(&c2.port);
    assert!(
        !testbed::xdp_attached(&c2.port),
        "XDP still attached after port_del"
    );
    assert!(
        !c1.ns.ping_once(&c2.addr, 1),
        "traffic still flows to a removed port"
    );
    lab.add_port(&c2.port, PortType::Afxdp, None);
    assert!(c1.ns.ping(&c2.addr, 1), "re-added port forwards again");
}

#[test]
fn malformed_frames_are_dropped_counted_and_forwarding_goes_on() {
    if !require_privileges("malformed") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let c1 = Container::veth("vsb", 1, "10.207.0.1").unwrap();
    let c2 = Container::veth("vsb", 2, "10.207.0.2").unwrap();
    lab.add_port(&c1.port, PortType::Afxdp, None);
    lab.add_port(&c2.port, PortType::Afxdp, None);
    let src = parse_mac(&c1.mac);
    let dst = parse_mac(&c2.mac);
    let mut good = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv4([10, 207, 0, 1], [10, 207, 0, 2], 64)
        .udp(1, 2)
        .write(&mut good, &[0u8; 32])
        .unwrap();
    let mut bad_len = good.clone();
    bad_len[16] = 0x40; // IPv4 total length 0x40xx: far beyond the frame
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x42; // IHL 2
    let truncated = good[..14 + 12].to_vec(); // IPv4 header cut short
    let mut bad_udp = good.clone();
    bad_udp[38..40].copy_from_slice(&3u16.to_be_bytes()); // UDP length 3 < 8
    let mut mcast_src = good.clone();
    mcast_src[6] = 0x01;
    raw_send(&c1, &[bad_len, bad_ihl, truncated, bad_udp, mcast_src], 20);
    assert!(
        wait_until(Duration::from_secs(3), || {
            let s = lab.stats(&c1.port);
            let g = |k: &str| s.rx_drops.get(k).copied().unwrap_or(0);
            g("bad_length") >= 40
                && g("bad_header") >= 20
                && g("truncated") >= 20
                && g("bad_src_mac") >= 20
        }),
        "drops counted by reason: {:?}",
        lab.stats(&c1.port)
    );
    assert!(
        c1.ns.ping(&c2.addr, 2),
        "forwarding continues after malformed input"
    );
}

#[test]
fn sigkill_leaves_no_xdp_program_and_a_restarted_daemon_forwards_again() {
    if !require_privileges("kill -9") {
        return;
    }
    let c1 = Container::veth("vsk", 1, "10.208.0.1").unwrap();
    let c2 = Container::veth("vsk", 2, "10.208.0.2").unwrap();
    {
        let mut lab = Lab::start(&[]);
        lab.add_port(&c1.port, PortType::Afxdp, None);
        lab.add_port(&c2.port, PortType::Afxdp, None);
        assert!(c1.ns.ping(&c2.addr, 1));
        assert!(testbed::xdp_attached(&c1.port));
        lab.daemon.kill9().unwrap();
        assert!(
            wait_until(Duration::from_secs(3), || !testbed::xdp_attached(&c1.port)
                && !testbed::xdp_attached(&c2.port)),
            "an XDP program outlived the SIGKILLed daemon"
        );
    }
    let mut lab = Lab::start(&[]);
    lab.add_port(&c1.port, PortType::Afxdp, None);
    lab.add_port(&c2.port, PortType::Afxdp, None);
    assert!(
        c1.ns.ping(&c2.addr, 2),
        "restarted daemon forwards\n{}",
        lab.daemon.log()
    );
}

#[test]
fn sigterm_detaches_ports_removes_its_tap_and_socket_and_exits_cleanly() {
    if !require_privileges("sigterm") {
        return;
    }
    let c1 = Container::veth("vsg", 1, "10.209.0.1").unwrap();
    let mut lab = Lab::start(&[]);
    lab.add_port(&c1.port, PortType::Afxdp, None);
    let tap = testbed::unique("vst");
    lab.add_port(&tap, PortType::Tap, None);
    assert!(testbed::xdp_attached(&c1.port));
    let status = lab.daemon.terminate(Duration::from_secs(10)).unwrap();
    assert!(
        status.success(),
        "exit status {status}: {}",
        lab.daemon.log()
    );
    assert!(!testbed::xdp_attached(&c1.port));
    assert_cleaned_up(&lab, &tap);
}

/// After a clean stop: the socket removed, the tap the switch created deleted.
fn assert_cleaned_up(lab: &Lab, tap: &str) {
    assert!(!lab.daemon.socket.exists(), "socket left behind");
    assert!(
        testbed::ip(&["link", "show", tap]).is_err(),
        "tap created by the switch left behind"
    );
}

/// SIGHUP (the terminal of a daemon started from a shell went away) stops it as cleanly as
/// SIGTERM: its tap deleted, its socket removed, exit status 0. Before 2026-12-07 its default
/// action ended the process at once, leaving the socket file.
#[test]
fn sighup_stops_the_daemon_cleanly() {
    if !require_privileges("sighup") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let tap = testbed::unique("vsh");
    lab.add_port(&tap, PortType::Tap, None);
    lab.daemon.send_signal("HUP").unwrap();
    let status = lab
        .daemon
        .wait_exit(Duration::from_secs(10))
        .unwrap()
        .expect("the daemon still runs 10 s after SIGHUP");
    assert!(
        status.success(),
        "exit status {status}: {}",
        lab.daemon.log()
    );
    assert_cleaned_up(&lab, &tap);
}

/// A second SIGTERM ends a daemon that the first did not stop at once, with exit status 1
/// (2026-12-07; before, only SIGKILL did). The first is seen by the control loop between
/// requests: here the loop is inside a long request, a bundle of 10,000 deletes by a partial
/// cookie mask, each of which looks at all 50,000 flows (minutes in a debug build).
#[test]
fn a_second_sigterm_ends_a_daemon_busy_in_a_long_request() {
    if !require_privileges("second sigterm") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let flows: Vec<String> = (0..50_000u32)
        .map(|i| {
            format!(
                "table=1,priority=10,cookie={:#x},ip,nw_dst=10.{}.{}.{},actions=drop",
                i + 1,
                i >> 16,
                (i >> 8) & 255,
                i & 255
            )
        })
        .collect();
    lab.bundle(&flows);
    let deletes: Vec<String> = (0..10_000u32)
        // (A cookie no flow has, under a partial mask: nothing is removed, every op looks
        // at every flow.)
        .map(|i| {
            format!(
                "delete table=1,cookie={:#x}/0xffff000000000000",
                u64::from(i + 1) << 48
            )
        })
        .collect();
    let ports = lab.ports();
    let ops: Vec<FlowModRequest> = deletes.iter().map(|l| parse_line(&ports, l)).collect();
    let mut busy = lab.connect().unwrap();
    let long = std::thread::spawn(move || {
        // (Fails when the daemon goes: that is the point.)
        let _ = busy.bundle_chunked(ops, control::client::DEFAULT_BUNDLE_CHUNK_BYTES);
    });
    std::thread::sleep(Duration::from_secs(2));
    lab.daemon.send_term().unwrap();
    let first = lab.daemon.wait_exit(Duration::from_secs(1)).unwrap();
    assert!(
        first.is_none(),
        "the daemon stopped at the first SIGTERM ({first:?}): the bundle did not keep it busy"
    );
    lab.daemon.send_term().unwrap();
    let status = lab
        .daemon
        .wait_exit(Duration::from_secs(10))
        .unwrap()
        .expect("the daemon still runs 10 s after a second SIGTERM");
    assert_eq!(status.code(), Some(1), "{}", lab.daemon.log());
    long.join().unwrap();
}

#[test]
fn a_second_daemon_on_a_live_socket_refuses_to_start() {
    if !require_privileges("second daemon") {
        return;
    }
    let lab = Lab::start(&[]);
    let out = std::process::Command::new(common::vswitchd())
        .arg("--socket")
        .arg(&lab.daemon.socket)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another vswitchd") || err.contains("in use"),
        "{err}"
    );
}

#[test]
fn without_capabilities_the_daemon_refuses_with_a_clear_message() {
    if !require_privileges("capabilities") {
        return;
    }
    // Drop to an unprivileged user with no capabilities (setpriv, util-linux).
    let dir = std::env::temp_dir().join(testbed::unique("vscap"));
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(common::vswitchd())
        .arg("--socket")
        .arg(dir.join("s.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lacks CAP_NET_ADMIN"), "{err}");
    assert!(!dir.exists(), "nothing created before the check");
}

/// Without CAP_BPF and CAP_SYS_ADMIN (a daemon granted only what packet sockets and taps need,
/// or root on a kernel before 5.8, where CAP_BPF does not exist but CAP_SYS_ADMIN stands in)
/// vswitchd starts, says AF_XDP ports will be refused, and forwards through `auto` (AF_PACKET)
/// and tap ports; an `afxdp` port is refused naming the capability. Until 2026-12-07 it refused
/// to start without CAP_BPF, whatever its ports.
#[test]
fn without_cap_bpf_the_daemon_forwards_through_packet_sockets_and_taps() {
    if !require_privileges("no CAP_BPF") {
        return;
    }
    let drop_bpf = [
        "setpriv",
        "--inh-caps=-bpf,-sys_admin",
        "--bounding-set=-bpf,-sys_admin",
        "--",
    ];
    let mut lab = Lab::start_wrapped(&drop_bpf, &[]);
    let pid = lab.daemon.pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(
        eff & (1 << 39 | 1 << 21),
        0,
        "the daemon runs without both: {eff:x}"
    );
    assert!(
        lab.daemon.log().contains("no CAP_BPF or CAP_SYS_ADMIN"),
        "{}",
        lab.daemon.log()
    );

    let c1 = Container::veth("vsb", 1, "10.223.0.1").unwrap();
    let c2 = Container::veth("vsb", 2, "10.223.0.2").unwrap();
    let mut req = PortAddRequest::new(&c1.port);
    req.port_type = Some(PortType::Afxdp);
    let err = lab.client.request(&Request::PortAdd(req)).unwrap_err();
    assert!(err.to_string().contains("CAP_BPF"), "{err}");
    assert_eq!(lab.add_port(&c1.port, PortType::Auto, None), "afpacket");
    assert_eq!(lab.add_port(&c2.port, PortType::Auto, None), "afpacket");
    let tap = testbed::unique("vst");
    assert_eq!(lab.add_port(&tap, PortType::Tap, None), "tap");
    let c3 = Container::tap("vsb", 3, "10.223.0.3", &tap).unwrap();
    assert!(c1.ns.ping(&c2.addr, 2), "afpacket\n{}", lab.daemon.log());
    assert!(
        c1.ns.ping(&c3.addr, 2),
        "afpacket to tap\n{}",
        lab.daemon.log()
    );
}

/// A port given at start whose device does not exist yet (its container is not running) does
/// not keep the switch down: the daemon starts, forwards for the others, lists the port as
/// gone, and opens it when a device of its name appears (found by an audit: until 2026-12-07
/// the daemon exited, "device … not found", and with it every container's network).
#[test]
fn a_configured_port_whose_device_is_missing_opens_when_it_appears() {
    if !require_privileges("missing configured device") {
        return;
    }
    let c1 = Container::veth("vsw", 1, "10.224.0.1").unwrap();
    let c2 = Container::veth("vsw", 2, "10.224.0.2").unwrap();
    // c2's host end is away under another name while the daemon starts.
    let away = testbed::unique("vsz");
    let ip = |args: &[&str]| {
        let st = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    };
    ip(&["link", "set", &c2.port, "down"]);
    ip(&["link", "set", &c2.port, "name", &away]);
    let mut lab = Lab::start(&["--port", &c1.port, "--port", &c2.port]);
    let waiting = lab.ports().into_iter().find(|p| p.name == c2.port).unwrap();
    assert!(waiting.device_gone && !waiting.link_up, "{waiting:?}");
    assert!(
        lab.ports()
            .iter()
            .any(|p| p.name == c1.port && !p.device_gone)
    );
    ip(&["link", "set", &away, "name", &c2.port]);
    ip(&["link", "set", &c2.port, "up"]);
    assert!(
        wait_until(Duration::from_secs(5), || lab.ports().iter().any(|p| p
            .name
            == c2.port
            && !p.device_gone
            && p.link_up)),
        "{:?}\n{}",
        lab.ports(),
        lab.daemon.log()
    );
    assert!(c1.ns.ping(&c2.addr, 2), "{}", lab.daemon.log());
    assert!(lab.daemon.log().contains("does not exist yet"));
}

/// A container whose `eth0` has a smaller MTU than the frames the switch sends it (its veth
/// end refuses them): those frames are lost, counted as the port's `device` drops, and the
/// shorter frames after them still arrive. On an AF_PACKET port (`auto`, rings) one refused
/// frame jammed the port's transmit ring until 2026-12-07: nothing reached the container again.
#[test]
fn a_container_with_a_smaller_mtu_loses_only_the_longer_frames() {
    if !require_privileges("smaller mtu") {
        return;
    }
    for (prefix, net, ty, kind) in [
        ("vsn", "10.209.0", PortType::Auto, "afpacket"),
        ("vsj", "10.222.0", PortType::Afxdp, "afxdp"),
    ] {
        smaller_mtu(prefix, net, ty, kind);
    }
}

fn smaller_mtu(prefix: &str, net: &str, ty: PortType, kind: &str) {
    let mut lab = Lab::start(&[]);
    let c1 = Container::veth(prefix, 1, &format!("{net}.1")).unwrap();
    let c2 = Container::veth(prefix, 2, &format!("{net}.2")).unwrap();
    assert_eq!(lab.add_port(&c1.port, ty, None), kind);
    assert_eq!(lab.add_port(&c2.port, ty, None), kind);
    assert!(c1.ns.ping(&c2.addr, 2), "{kind}\n{}", lab.daemon.log());
    c2.ns
        .exec("ip", &["link", "set", "eth0", "mtu", "1000"])
        .unwrap();
    // 1,228-byte IPv4 packets: within c1's MTU and the switch's, above c2's.
    let long = |n: &str| {
        c1.ns
            .command("ping")
            .args([
                "-c", n, "-i", "0.2", "-W", "1", "-q", "-s", "1200", &c2.addr,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        !long("3"),
        "{kind}: a container does not take frames above its MTU"
    );
    assert!(
        c1.ns.ping(&c2.addr, 3),
        "{kind}: shorter frames still arrive\n{}",
        lab.daemon.log()
    );
    assert!(!long("2"));
    assert!(c1.ns.ping(&c2.addr, 3), "{kind}: and again");
    let s = lab.stats(&c2.port);
    let device = s.tx_drops.get("device").copied().unwrap_or(0);
    assert!(
        device >= 5,
        "{kind}: the long frames are the device's drops: {s:?}"
    );
    assert_eq!(
        s.tx_drops.get("backend").copied().unwrap_or(0),
        0,
        "{kind}: and only the device's: {s:?}"
    );
}

/// A container sending from thousands of source MACs (a MAC flood) into a small table: the
/// other containers are still learned and their unicast is not flooded to it, during the
/// flood and after (a full table evicts an address of the port with the most; until
/// 2026-12-08 it learned nothing new and the switch became a hub for later stations). A port
/// with a bound (`mac_max`) keeps no more than it.
#[test]
fn a_container_flooding_source_macs_cannot_make_the_switch_a_hub() {
    if !require_privileges("mac flood") {
        return;
    }
    let mut lab = Lab::start(&["--mac-table-max", "64"]);
    let flooder = Container::veth("vsh", 1, "10.225.0.1").unwrap();
    let c2 = Container::veth("vsh", 2, "10.225.0.2").unwrap();
    let c3 = Container::veth("vsh", 3, "10.225.0.3").unwrap();
    for c in [&flooder, &c2, &c3] {
        lab.add_port(&c.port, PortType::Auto, None);
    }
    // A fourth port bounded to 8 addresses, its container flooding too.
    let bounded = Container::veth("vsh", 4, "10.225.0.4").unwrap();
    let mut req = PortAddRequest::new(bounded.port.clone());
    req.mac_max = Some(8);
    lab.request(Request::PortAdd(req));
    let flood = |c: &Container, first: [u8; 6]| {
        let mut args = vec!["raw-send", "--dev", "eth0", "--count", "3000"];
        args.extend(["--src-macs", "3000"]);
        let hex_frame = hex(&arp_broadcast(first, None));
        args.extend(["--hex", hex_frame.as_str()]);
        c.ns.exec(VSNET, &args).expect("raw send");
    };
    flood(&flooder, [0x0a, 0xee, 0, 0, 0, 0]);
    flood(&bounded, [0x0a, 0xef, 0, 0, 0, 0]);
    assert!(
        wait_until(Duration::from_secs(3), || lab.show().mac_entries == 64),
        "{:?}",
        lab.show()
    );
    assert!(c2.ns.ping(&c3.addr, 1), "c2 → c3 in a full table");
    let learned = |lab: &mut Lab, c: &Container| {
        lab.macs()
            .iter()
            .any(|m| m.mac == c.mac && m.port_name == c.port)
    };
    // Flood again while the two talk: they stay learned, and none of their unicast reaches
    // the flooder (a flood of it would: 40 frames).
    flood(&flooder, [0x0a, 0xee, 1, 0, 0, 0]);
    let before = lab.stats(&flooder.port).tx_pkts;
    assert!(c2.ns.ping(&c3.addr, 20), "c2 → c3 during the flood");
    let to_flooder = lab.stats(&flooder.port).tx_pkts - before;
    assert!(
        to_flooder < 20,
        "{to_flooder} frames reached the flooder while c2 pinged c3 20 times"
    );
    assert!(learned(&mut lab, &c2) && learned(&mut lab, &c3));
    let show = lab.show();
    assert!(show.mac_entries <= 64 && show.mac_evictions > 0, "{show:?}");
    let port = |show: &control::proto::SwitchShowReply, name: &str| {
        show.ports.iter().find(|p| p.name == name).cloned().unwrap()
    };
    assert_eq!(port(&show, &bounded.port).mac_max, 8);
    assert_eq!(port(&show, &bounded.port).mac_entries, 8);
    assert!(
        show.worker_stats
            .iter()
            .map(|w| w.mac_learn_port_full)
            .sum::<u64>()
            > 0
    );
    assert_eq!(port(&show, &c2.port).mac_entries, 1);
    assert_eq!(port(&show, &c3.port).mac_entries, 1);
}
