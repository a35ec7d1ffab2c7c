//! A switch in `PollMode::Inline`: no worker thread; the test thread runs each pass with
//! `Switch::poll_inline` and every control operation that waits for a worker (adding and
//! deleting ports, barriers, packet-outs, shutdown) does the worker's part itself. Nothing here
//! waits or sleeps: a frame is out (or counted as dropped) when `poll_inline` returns.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use datapath::ofp::MatchField;
use datapath::ofp::action::{Action, Instructions};
use datapath::ofp::field::Field;
use datapath::ofp::pipeline::FlowMod;
use datapath::port::mem::{MemPeer, MemPort, MemPortOptions};
use datapath::stats::DropReason;
use datapath::switch::{PollMode, Switch, SwitchConfig, SwitchError, VlanMode};
use etherparse::PacketBuilder;

fn mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, i]
}

fn udp_to(src: u8, dst: [u8; 6], dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac(src), dst)
        .ipv4([10, 0, 0, src], [10, 0, 0, dst[5]], 64)
        .udp(1000, dport)
        .write(&mut v, b"inline")
        .unwrap();
    v
}

fn inline_switch(n: usize) -> (Switch, Vec<MemPeer>) {
    let mut sw = Switch::start(SwitchConfig {
        poll_mode: PollMode::Inline,
        ..SwitchConfig::default()
    })
    .unwrap();
    let peers = (1..=n)
        .map(|i| {
            let (p, peer) = MemPort::new(&format!("m{i}"), MemPortOptions::default());
            sw.add_port_backend(Box::new(p), VlanMode::Access { vlan: 1 })
                .unwrap();
            peer
        })
        .collect();
    (sw, peers)
}

/// Every frame waiting at `peer`, without waiting.
fn got(peer: &MemPeer) -> Vec<Vec<u8>> {
    peer.drain()
}

fn counters(sw: &Switch, port: &str) -> datapath::stats::PortCountersSnapshot {
    sw.port_stats(Some(port)).unwrap().remove(0).1
}

#[test]
fn inline_switch_floods_learns_and_forwards_on_the_callers_thread() {
    let (mut sw, p) = inline_switch(3);
    assert_eq!(sw.info().workers, 1);
    assert_eq!(sw.info().poll_mode, PollMode::Inline);
    let f = udp_to(1, mac(2), 7);
    assert!(p[0].send(&f));
    // Nothing moves until the caller polls.
    assert!(got(&p[1]).is_empty());
    assert_eq!(sw.poll_inline(), 1);
    assert_eq!(got(&p[1]), vec![f.clone()]);
    assert_eq!(got(&p[2]), vec![f.clone()]);
    assert!(got(&p[0]).is_empty());
    // The reply is unicast to m1 (learned), and then m1 → m2 is unicast too.
    let r = udp_to(2, mac(1), 7);
    assert!(p[1].send(&r));
    assert_eq!(sw.poll_inline(), 1);
    assert_eq!(got(&p[0]), vec![r]);
    assert!(got(&p[2]).is_empty());
    for _ in 0..100 {
        assert!(p[0].send(&f));
    }
    // One pass takes one burst of at most 64 frames per port.
    assert_eq!(sw.poll_inline(), 64);
    assert_eq!(sw.poll_inline(), 36);
    assert_eq!(sw.poll_inline(), 0);
    assert_eq!(got(&p[1]).len(), 100);
    assert!(got(&p[2]).is_empty());
    assert_eq!(sw.mac_table().len(), 2);
    let m1 = counters(&sw, "m1");
    assert_eq!((m1.rx_pkts, m1.tx_pkts), (101, 1));
    let m2 = counters(&sw, "m2");
    assert_eq!((m2.rx_pkts, m2.tx_pkts), (1, 101));
    let m3 = counters(&sw, "m3");
    assert_eq!((m3.rx_pkts, m3.tx_pkts), (0, 1));
    let w = &sw.worker_stats()[0];
    assert_eq!(w.frames, 102);
    assert_eq!(
        w.cache.emc_hits + w.cache.megaflow_hits + w.cache.misses,
        102
    );
}

#[test]
fn inline_switch_applies_flow_mods_at_the_next_poll_and_after_a_barrier() {
    let (mut sw, p) = inline_switch(3);
    let steer = vec![
        MatchField {
            field: Field::EthType,
            value: 0x0800,
            mask: None,
        },
        MatchField {
            field: Field::IpProto,
            value: 17,
            mask: None,
        },
        MatchField {
            field: Field::UdpDst,
            value: 5000,
            mask: None,
        },
    ];
    // Learn m2's address, then cache the bridged decision for port 5000.
    assert!(p[1].send(&udp_to(2, [0xff; 6], 1)));
    sw.poll_inline();
    let f = udp_to(1, mac(2), 5000);
    assert!(p[0].send(&f));
    sw.poll_inline();
    assert_eq!(got(&p[1]).len(), 1);
    got(&p[0]);
    got(&p[2]);
    sw.flow_mod(&FlowMod::add(
        0,
        100,
        steer.clone(),
        Instructions::apply(vec![Action::Output(3)]),
    ))
    .unwrap();
    sw.barrier().unwrap();
    // The cached decision was revalidated by the barrier: the frame goes to m3 now.
    assert!(p[0].send(&f));
    assert_eq!(sw.poll_inline(), 1);
    assert_eq!(got(&p[2]), vec![f.clone()]);
    assert!(got(&p[1]).is_empty());
    // A flow-mod only committed (no barrier) is seen by the next poll.
    sw.flow_mod(&FlowMod::add(
        0,
        200,
        steer.clone(),
        Instructions::default(),
    ))
    .unwrap();
    sw.commit();
    assert!(p[0].send(&f));
    assert_eq!(sw.poll_inline(), 1);
    assert!(got(&p[1]).is_empty() && got(&p[2]).is_empty());
    assert_eq!(
        counters(&sw, "m1").rx_drops[DropReason::FlowDrop as usize],
        1
    );
    sw.flow_mod(&FlowMod::delete(Some(0), steer)).unwrap();
    sw.barrier().unwrap();
    assert!(p[0].send(&f));
    assert_eq!(sw.poll_inline(), 1);
    assert_eq!(got(&p[1]), vec![f]);
}

#[test]
fn inline_switch_adds_and_deletes_ports_and_runs_packet_outs_without_a_thread() {
    let (mut sw, p) = inline_switch(3);
    // A packet-out runs before packet_out returns.
    let f = udp_to(9, mac(8), 1);
    sw.packet_out(0, f.clone(), Some(vec![Action::Output(2)]))
        .unwrap();
    assert_eq!(got(&p[1]), vec![f.clone()]);
    assert_eq!(sw.worker_stats()[0].packet_outs, 1);
    // More packet-outs than the command queue holds, with no poll in between.
    for _ in 0..200 {
        sw.packet_out(0, f.clone(), Some(vec![Action::Output(3)]))
            .unwrap();
    }
    assert_eq!(got(&p[2]).len(), 200);
    // Deleting m3 closes it before del_port returns: its peer sees the link go away.
    sw.del_port("m3").unwrap();
    assert!(!p[2].send(&f), "m3 still open after del_port");
    assert_eq!(sw.ports().len(), 2);
    let b = udp_to(1, [0xff; 6], 1);
    assert!(p[0].send(&b));
    assert_eq!(sw.poll_inline(), 1);
    assert_eq!(got(&p[1]), vec![b.clone()]);
    // A new port reuses number 3 and is flooded to at once.
    let (port, m4) = MemPort::new("m4", MemPortOptions::default());
    let info = sw
        .add_port_backend(Box::new(port), VlanMode::Access { vlan: 1 })
        .unwrap();
    assert_eq!(info.id, 3);
    assert!(p[0].send(&b));
    assert_eq!(sw.poll_inline(), 1);
    assert_eq!(got(&m4), vec![b.clone()]);
    assert_eq!(got(&p[1]), vec![b]);
    // Shutting down closes the remaining ports.
    sw.shutdown();
    assert!(!p[0].send(&f));
    assert!(!m4.send(&f));
}

#[test]
fn inline_switch_clock_is_the_callers_when_given() {
    let (mut sw, p) = inline_switch(2);
    assert!(p[0].send(&udp_to(1, mac(2), 1)));
    assert_eq!(sw.poll_inline_at(Duration::ZERO), 1);
    assert_eq!(sw.worker_stats()[0].cache.entries, 1);
    // Five seconds later (switch clock) the entry is still fresh; 100 seconds later it has
    // expired, although the wall clock has hardly moved.
    assert_eq!(sw.poll_inline_at(Duration::from_secs(5)), 0);
    assert_eq!(sw.worker_stats()[0].cache.expired, 0);
    assert_eq!(sw.poll_inline_at(Duration::from_secs(100)), 0);
    let c = sw.worker_stats()[0].cache;
    assert_eq!((c.expired, c.entries), (1, 0));
}

#[test]
fn inline_mode_refuses_pinned_cpus_and_threaded_switches_do_not_poll_inline() {
    let e = Switch::start(SwitchConfig {
        poll_mode: PollMode::Inline,
        cpus: vec![0],
        ..SwitchConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(e, SwitchError::Invalid { field: "cpus", .. }),
        "{e}"
    );
    let mut sw = Switch::start(SwitchConfig::default()).unwrap();
    assert_eq!(sw.poll_inline(), 0);
}
