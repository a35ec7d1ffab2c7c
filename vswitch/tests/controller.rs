//! A controller programming a real `vswitchd` over its socket, with real traffic between
//! namespaces: a learning switch built from packet-in + flow-mod + packet-out carries ping and a
//! verified TCP transfer; an idle timeout removes a flow and the controller hears of it; port
//! removal is reported.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Lab;
use control::Client;
use control::proto::flow::ActionDesc;
use control::proto::msg::PortType;
use control::proto::notify::{Notification, PacketOutRequest, SubscribeRequest};
use testbed::{Container, require_privileges};

fn mac_text(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A learning switch in the controller: learns source MACs from packet-ins; for a known
/// destination installs `in_port,eth_src,eth_dst → output` (idle 30 s) and sends the frame
/// there; else floods it. Counts packet-ins.
fn learning_controller(mut c: Client, stop: &AtomicBool, packet_ins: &AtomicU64) {
    let mut ports = c.ports().unwrap();
    let mut macs: HashMap<[u8; 6], u32> = HashMap::new();
    while !stop.load(Ordering::Acquire) {
        let Some(n) = c.next_notification(Duration::from_millis(50)).unwrap() else {
            continue;
        };
        let Notification::PacketIn(p) = n else {
            continue;
        };
        packet_ins.fetch_add(1, Ordering::AcqRel);
        let frame = p.frame().unwrap();
        let dst: [u8; 6] = frame[0..6].try_into().unwrap();
        let src: [u8; 6] = frame[6..12].try_into().unwrap();
        macs.insert(src, p.in_port);
        let out = match macs.get(&dst) {
            Some(port) if *port == p.in_port => continue,
            Some(&port) => {
                if ports.iter().all(|d| d.id != port) {
                    ports = c.ports().unwrap();
                }
                let line = format!(
                    "priority=10,idle_timeout=30,in_port={},dl_src={},dl_dst={} actions=output:{port}",
                    p.in_port,
                    mac_text(&src),
                    mac_text(&dst)
                );
                c.flow_mod(common::parse_line(&ports, &line)).unwrap();
                ActionDesc::Output(port)
            }
            None => ActionDesc::Flood,
        };
        c.packet_out(PacketOutRequest {
            in_port: p.in_port,
            data: p.data.clone(),
            actions: Some(vec![out]),
        })
        .unwrap();
    }
}

#[test]
fn a_controller_driven_learning_switch_carries_ping_and_tcp() {
    if !require_privileges("controller_learning_switch") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let c1 = Container::veth("vsk", 1, "10.217.0.1").unwrap();
    let c2 = Container::veth("vsk", 2, "10.217.0.2").unwrap();
    let c3 = Container::veth("vsk", 3, "10.217.0.3").unwrap();
    for c in [&c1, &c2, &c3] {
        lab.add_port(&c.port, PortType::Afxdp, None);
    }
    // Everything goes to the controller; nothing is bridged by the switch itself.
    lab.flows("delete\npriority=0 actions=controller");
    let mut ctl = lab.connect().unwrap();
    ctl.subscribe(SubscribeRequest::only(true, false, false))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let packet_ins = Arc::new(AtomicU64::new(0));
    let thread = {
        let (stop, packet_ins) = (Arc::clone(&stop), Arc::clone(&packet_ins));
        std::thread::spawn(move || learning_controller(ctl, &stop, &packet_ins))
    };

    assert!(c1.ns.ping(&c2.addr, 3), "ping through the controller");
    assert!(c3.ns.ping(&c1.addr, 2));
    // The learned flows carry the bulk: a verified TCP transfer, with few packet-ins.
    common::tcp_transfer(&c1, &c2, 20_000_000, 5301);
    let ins = packet_ins.load(Ordering::Acquire);
    let learned = lab.dump_flows("priority=10");
    let carried: u64 = learned.iter().map(|f| f.packets).sum();
    // (20 MB is at least 305 frames of up to 64 KiB: AF_XDP ports on veth carry GSO frames.)
    assert!(carried >= 305, "learned flows carried {carried} packets");
    assert!(
        ins < 100,
        "{ins} packet-ins for a 20 MB transfer: the flows should carry it"
    );
    // Without the controller's flows nothing passes: delete them and stop the controller.
    stop.store(true, Ordering::Release);
    thread.join().unwrap();
    lab.flows("delete priority=10");
    assert!(!c1.ns.ping_once(&c2.addr, 1));
}

#[test]
fn idle_timeout_removes_a_flow_and_the_controller_hears_of_it() {
    if !require_privileges("controller_idle_timeout") {
        return;
    }
    let mut lab = Lab::start(&[]);
    let c1 = Container::veth("vsi", 1, "10.218.0.1").unwrap();
    let c2 = Container::veth("vsi", 2, "10.218.0.2").unwrap();
    let c3 = Container::veth("vsi", 3, "10.218.0.3").unwrap();
    for c in [&c1, &c2, &c3] {
        lab.add_port(&c.port, PortType::Afxdp, None);
    }
    let mut ctl = lab.connect().unwrap();
    ctl.subscribe(SubscribeRequest::only(false, true, true))
        .unwrap();
    lab.flows(&format!(
        "priority=100,idle_timeout=2,send_flow_rem,cookie=0x77,icmp,nw_dst={} actions=normal",
        c2.addr
    ));
    assert!(c1.ns.ping(&c2.addr, 3));
    let f = lab.dump_flows("cookie=0x77/0xffffffffffffffff");
    assert_eq!(f.len(), 1);
    assert!(f[0].packets >= 3, "{f:?}");
    // Quiet now: the flow expires about 2 s after its last packet.
    let quiet_since = Instant::now();
    let removed = loop {
        match ctl.next_notification(Duration::from_secs(6)).unwrap() {
            Some(Notification::FlowRemoved(r)) => break r,
            Some(_) => {}
            None => panic!("no flow_removed within 6 s"),
        }
    };
    let waited = quiet_since.elapsed();
    assert_eq!(removed.reason, "idle_timeout");
    assert_eq!(removed.cookie, 0x77);
    assert_eq!(removed.idle_timeout, 2);
    assert!(removed.packets >= 3, "{removed:?}");
    assert!(
        waited >= Duration::from_millis(1500),
        "removed after {waited:?}, before its idle time"
    );
    assert!(lab.dump_flows("cookie=0x77/0xffffffffffffffff").is_empty());
    // Traffic goes on through the default flow.
    assert!(c1.ns.ping(&c2.addr, 1));
    // A removed port is reported.
    lab.del_port(&c3.port);
    let status = loop {
        match ctl.next_notification(Duration::from_secs(3)).unwrap() {
            Some(Notification::PortStatus(s)) => break s,
            Some(_) => {}
            None => panic!("no port_status within 3 s"),
        }
    };
    assert_eq!(status.reason, "delete");
    assert_eq!(status.port.name, c3.port);
}

fn port_status(ctl: &mut Client, within: Duration) -> control::proto::notify::PortStatusEvent {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ctl.next_notification(left).unwrap() {
            Some(Notification::PortStatus(s)) => return s,
            Some(_) => {}
            None => panic!("no port_status within {within:?}"),
        }
    }
}

#[test]
fn a_link_going_down_is_reported_and_fast_failover_follows_it() {
    if !require_privileges("controller_link_state") {
        return;
    }
    const PORT: u16 = 7400;
    let mut lab = Lab::start(&[]);
    let c1 = Container::veth("vsl", 1, "10.219.0.1").unwrap();
    let c2 = Container::veth("vsl", 2, "10.219.0.2").unwrap();
    let c3 = Container::veth("vsl", 3, "10.219.0.3").unwrap();
    for c in [&c1, &c2, &c3] {
        lab.add_port(&c.port, PortType::Afxdp, None);
    }
    assert!(lab.ports().iter().all(|p| p.link_up));
    // c1 keeps addressing c2 while c2's link is down.
    c1.ns
        .ip(&[
            "neigh",
            "replace",
            &c2.addr,
            "lladdr",
            &c2.mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])
        .unwrap();
    let mut ctl = lab.connect().unwrap();
    ctl.subscribe(SubscribeRequest::only(false, false, true))
        .unwrap();
    lab.group_mod(
        datapath::ofp::pipeline::ModCommand::Add,
        &format!(
            "group_id=3,type=ff,bucket=watch_port:{p2},actions=output:{p2},\
             bucket=watch_port:{p3},actions=set_field:{m3}->eth_dst,set_field:{a3}->ip_dst,\
             output:{p3}",
            p2 = c2.port,
            p3 = c3.port,
            m3 = c3.mac,
            a3 = c3.addr
        ),
    );
    lab.flows(&format!(
        "priority=100,udp,nw_dst={},tp_dst={PORT} actions=group:3",
        c2.addr
    ));
    // 100 datagrams c1 → c2:PORT; how many the group delivered to c3.
    let to_c3 = || -> u64 {
        let sink = common::udp_sink(&c3, &format!("{}:{PORT}", c3.addr), 100, 3);
        common::udp_send(&c1, &format!("{}:{PORT}", c2.addr), 100, 100, 300);
        common::udp_received(sink)
    };
    // Both links up: the first bucket (c2); nothing reaches c3.
    assert_eq!(to_c3(), 0);
    // c2's end goes down: the host end loses carrier; reported when the kernel announces it
    // (the daemon also polls carriers once a second, so this alone does not tell which saw it:
    // datapath/tests/links.rs does).
    c2.ns.ip(&["link", "set", "eth0", "down"]).unwrap();
    let s = port_status(&mut ctl, Duration::from_secs(4));
    assert_eq!(
        (s.reason.as_str(), s.port.name.as_str(), s.port.link_up),
        ("modify", c2.port.as_str(), false)
    );
    lab.barrier();
    assert!(
        !lab.ports()
            .iter()
            .find(|p| p.name == c2.port)
            .unwrap()
            .link_up
    );
    // The group now uses the live bucket: rewritten to c3, whose kernel accepts it.
    assert_eq!(to_c3(), 100);
    // Link back: reported, and traffic returns to c2.
    c2.ns.ip(&["link", "set", "eth0", "up"]).unwrap();
    let s = port_status(&mut ctl, Duration::from_secs(4));
    assert_eq!((s.reason.as_str(), s.port.link_up), ("modify", true));
    lab.barrier();
    assert_eq!(to_c3(), 0);
}
