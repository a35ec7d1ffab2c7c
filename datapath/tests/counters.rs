//! What the counters a controller takes rates from promise (docs/control-protocol.md,
//! `port_stats`, `flow_dump`, `table_stats`): a received frame is counted as dropped at most
//! once and only when nothing sent it; a flow counts the packets that reached it; a table's
//! `lookups` and `matched` never go back. Found by an audit of the counters (2026-12-07); each
//! test failed before its fix, except the meter one, which pins down a documented choice, and
//! the last, a check under churn of the `matched` fix before it (flows.rs has that fix's own).
#![allow(clippy::unwrap_used)]

mod mem;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datapath::ofp::action::{Action, Instructions};
use datapath::ofp::group::{Bucket, GroupType};
use datapath::ofp::meter::{MeterConfig, MeterUnit};
use datapath::ofp::pipeline::{
    FlowFilter, FlowMod, FlowModCommand, GroupMod, MeterMod, ModCommand,
};
use datapath::port::mem::{MemPort, MemPortOptions};
use datapath::stats::{DropReason, PortCountersSnapshot};
use datapath::switch::{Switch, SwitchConfig, VlanMode};
use etherparse::PacketBuilder;
use mem::{inline_switch, udp_dst};

/// A UDP frame from m1's peer to m2's with `ttl` and destination port `dport`.
fn udp(ttl: u8, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], ttl)
        .udp(1000, dport)
        .write(&mut v, b"x")
        .unwrap();
    v
}

/// `apply`, then go to `table`.
fn goto(table: u8, apply: Vec<Action>) -> Instructions {
    Instructions {
        apply,
        goto_table: Some(table),
        ..Instructions::default()
    }
}

/// Removes table 0's flows (the default `normal` one).
fn clear_table0(sw: &mut Switch) {
    sw.flow_mod(&FlowMod::delete(Some(0), Vec::new())).unwrap();
}

/// The packets of table `table`'s flows.
fn flow_packets(sw: &mut Switch, table: u8) -> u64 {
    let f = FlowFilter {
        table: Some(table),
        ..FlowFilter::default()
    };
    sw.dump_flows(&f)
        .unwrap()
        .iter()
        .map(|f| f.stats.totals().0)
        .sum()
}

fn port(sw: &Switch, name: &str) -> PortCountersSnapshot {
    sw.port_stats(Some(name)).unwrap().remove(0).1
}

/// Table 0 (emptied) sends UDP port 7 through meter 1 (`rate` packets/s, `burst`) to table 1.
fn meter_then_table_1(sw: &mut Switch, rate: u64, burst: u64) {
    clear_table0(sw);
    sw.meter_mod(&MeterMod {
        command: ModCommand::Add,
        id: Some(1),
        config: MeterConfig {
            unit: MeterUnit::Pktps,
            rate,
            burst,
        },
    })
    .unwrap();
    sw.flow_mod(&FlowMod::add(
        0,
        10,
        udp_dst(7),
        goto(1, vec![Action::Meter(1)]),
    ))
    .unwrap();
}

/// Table 0 decrements the TTL and goes to table 1, whose flow outputs. A frame of TTL 1 is
/// dropped at `dec_ttl` and never reaches table 1: its flow does not count it, and table 1
/// is not looked up. (Until 2026-12-07 the translation went on into table 1, whose flow and
/// `matched` counted every such frame.)
#[test]
fn frames_dropped_by_dec_ttl_are_not_counted_by_later_tables() {
    let (mut sw, p) = inline_switch(2);
    clear_table0(&mut sw);
    sw.flow_mod(&FlowMod::add(
        0,
        10,
        udp_dst(7),
        goto(1, vec![Action::DecTtl]),
    ))
    .unwrap();
    sw.flow_mod(&FlowMod::add(
        1,
        10,
        udp_dst(7),
        Instructions::apply(vec![Action::Output(2)]),
    ))
    .unwrap();
    sw.barrier().unwrap();
    for _ in 0..5 {
        assert!(p[0].send(&udp(1, 7)));
        sw.poll_inline();
    }
    // And frames with TTL to spare go through, counted by both tables.
    for _ in 0..3 {
        assert!(p[0].send(&udp(64, 7)));
        sw.poll_inline();
    }
    assert_eq!(port(&sw, "m1").rx_drops[DropReason::TtlExpired as usize], 5);
    assert_eq!(port(&sw, "m1").rx_dropped(), 5);
    assert_eq!(port(&sw, "m2").tx_pkts, 3);
    assert_eq!(flow_packets(&mut sw, 0), 8);
    assert_eq!(flow_packets(&mut sw, 1), 3);
    let stats = sw.table_stats();
    let t1 = stats.iter().find(|t| t.table == 1).unwrap();
    assert_eq!((t1.lookups, t1.matched), (3, 3), "{stats:?}");
    sw.shutdown();
}

/// A meter in table 0 drops most frames; table 1's flow counts the frames offered to the
/// meter, dropped ones included, as Open vSwitch's rules do (its megaflow's counts go to every
/// rule of the translation); the meter's counters and the port's `meter_drop` tell them apart.
#[test]
fn a_flow_behind_a_meter_counts_what_the_meter_was_offered() {
    let (mut sw, p) = inline_switch(2);
    meter_then_table_1(&mut sw, 1, 1);
    sw.flow_mod(&FlowMod::add(
        1,
        10,
        udp_dst(7),
        Instructions::apply(vec![Action::Output(2)]),
    ))
    .unwrap();
    sw.barrier().unwrap();
    for _ in 0..20 {
        assert!(p[0].send(&udp(64, 7)));
        sw.poll_inline();
    }
    let m1 = port(&sw, "m1");
    let sent = port(&sw, "m2").tx_pkts;
    assert_eq!(m1.rx_drops[DropReason::MeterDrop as usize] + sent, 20);
    assert!(sent < 20, "the meter dropped some");
    assert_eq!(flow_packets(&mut sw, 1), 20);
    sw.shutdown();
}

/// A meter that passes everything, then a table with no flow: the frames are table misses on
/// the port as in the table's counters (until 2026-12-07 the port counted `flow_drop`).
#[test]
fn a_table_miss_after_a_meter_is_a_table_miss() {
    let (mut sw, p) = inline_switch(2);
    meter_then_table_1(&mut sw, 1_000_000, 0);
    sw.barrier().unwrap();
    for _ in 0..3 {
        assert!(p[0].send(&udp(64, 7)));
        sw.poll_inline();
    }
    let stats = sw.table_stats();
    let t1 = stats.iter().find(|t| t.table == 1).unwrap();
    assert_eq!(t1.lookups - t1.matched, 3, "{stats:?}");
    let m1 = port(&sw, "m1");
    assert_eq!(m1.rx_drops[DropReason::TableMiss as usize], 3, "{m1:?}");
    assert_eq!(m1.rx_dropped(), 3);
    sw.shutdown();
}

/// An `all` group whose buckets all fail on a frame (`pop_vlan` of an untagged frame): one
/// frame received, one dropped. With one bucket that sends, the frame is not a drop at all.
/// (Until 2026-12-07 each failing bucket counted a drop: `rx_dropped` > `rx_pkts`.)
#[test]
fn an_all_group_counts_a_frame_once_and_only_if_no_bucket_sent_it() {
    let (mut sw, p) = inline_switch(3);
    let bucket = |actions| Bucket {
        weight: 0,
        watch_port: None,
        actions,
    };
    let fails = |out| bucket(vec![Action::PopVlan, Action::Output(out)]);
    sw.group_mod(&GroupMod {
        command: ModCommand::Add,
        id: Some(1),
        kind: GroupType::All,
        buckets: vec![fails(2), fails(3)],
    })
    .unwrap();
    sw.group_mod(&GroupMod {
        command: ModCommand::Add,
        id: Some(2),
        kind: GroupType::All,
        buckets: vec![fails(2), bucket(vec![Action::Output(3)]), fails(2)],
    })
    .unwrap();
    clear_table0(&mut sw);
    for (port, group) in [(7, 1), (8, 2)] {
        sw.flow_mod(&FlowMod::add(
            0,
            10,
            udp_dst(port),
            Instructions::apply(vec![Action::Group(group)]),
        ))
        .unwrap();
    }
    sw.barrier().unwrap();
    assert!(p[0].send(&udp(64, 7)));
    sw.poll_inline();
    let m1 = port(&sw, "m1");
    assert_eq!(m1.rx_pkts, 1);
    assert_eq!(m1.rx_dropped(), 1, "{m1:?}");
    assert_eq!(m1.rx_drops[DropReason::ActionFailed as usize], 1);
    assert!(p[0].send(&udp(64, 8)));
    sw.poll_inline();
    let m1 = port(&sw, "m1");
    assert_eq!(m1.rx_pkts, 2);
    assert_eq!(
        m1.rx_dropped(),
        1,
        "the second frame went out of m3: {m1:?}"
    );
    assert_eq!(port(&sw, "m3").tx_pkts, 1);
    sw.shutdown();
}

/// A packet-out through the tables that finds no flow is a lookup and a miss of table 0, and
/// its drop is the worker's `packet_out_drops`, not a drop of the port named as its `in_port`
/// (which did not receive it). Until 2026-12-07 table 0 did not count it and m1 counted a
/// `flow_drop` of a frame it never received.
#[test]
fn a_packet_out_that_misses_is_a_lookup_and_not_a_drop_of_its_in_port() {
    let (mut sw, _p) = inline_switch(2);
    clear_table0(&mut sw);
    sw.barrier().unwrap();
    sw.packet_out(1, udp(64, 7), None).unwrap();
    sw.poll_inline();
    let m1 = port(&sw, "m1");
    assert_eq!((m1.rx_pkts, m1.rx_dropped()), (0, 0), "{m1:?}");
    let stats = sw.table_stats();
    let t0 = stats.iter().find(|t| t.table == 0);
    assert_eq!(
        t0.map(|t| (t.lookups, t.matched)),
        Some((1, 0)),
        "{stats:?}"
    );
    let w = &sw.worker_stats()[0];
    assert_eq!((w.packet_outs, w.packet_out_drops), (1, 1), "{w:?}");
    sw.shutdown();
}

/// Two worker threads forward all the while; table 0's flow is replaced, reset, deleted and
/// added again between readings: `matched` and `lookups` never go back, and at the end every
/// frame received was looked up in table 0 exactly once.
#[test]
fn table_counters_never_go_back_and_lose_nothing_under_churn() {
    let mut sw = Switch::start(SwitchConfig {
        cpus: vec![0, 1],
        ..SwitchConfig::default()
    })
    .unwrap();
    let mut peers = Vec::new();
    for i in 1..=2 {
        let (p, peer) = MemPort::new(&format!("m{i}"), MemPortOptions::default());
        sw.add_port_backend(Box::new(p), VlanMode::Access { vlan: 1 })
            .unwrap();
        peers.push(peer);
    }
    clear_table0(&mut sw);
    let fwd = || {
        FlowMod::add(
            0,
            10,
            udp_dst(7),
            Instructions::apply(vec![Action::Output(2)]),
        )
    };
    let with = |command| FlowMod { command, ..fwd() };
    sw.flow_mod(&fwd()).unwrap();
    sw.barrier().unwrap();
    let stop = AtomicBool::new(false);
    let (tx, rx) = (&peers[0], &peers[1]);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..16 {
                    let _ = tx.send(&udp(64, 7));
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let _ = rx.drain();
                std::thread::sleep(Duration::from_micros(500));
            }
        });
        let (mut last_m, mut last_l) = (0, 0);
        for i in 0..400 {
            match i % 4 {
                0 => {
                    sw.flow_mod(&fwd()).unwrap();
                }
                1 => {
                    let mut m = with(FlowModCommand::ModifyStrict);
                    m.flags.reset_counts = true;
                    sw.flow_mod(&m).unwrap();
                }
                2 => {
                    sw.flow_mod(&with(FlowModCommand::DeleteStrict)).unwrap();
                    sw.commit();
                    std::thread::sleep(Duration::from_micros(300));
                    sw.flow_mod(&fwd()).unwrap();
                }
                _ => {}
            }
            sw.commit();
            std::thread::sleep(Duration::from_micros(300));
            let st = sw.table_stats();
            let t0 = st.iter().find(|t| t.table == 0).unwrap();
            assert!(
                t0.matched >= last_m && t0.lookups >= last_l,
                "went back at {i}: {last_m}/{last_l} -> {t0:?}"
            );
            (last_m, last_l) = (t0.matched, t0.lookups);
        }
        stop.store(true, Ordering::Relaxed);
    });
    std::thread::sleep(Duration::from_millis(200));
    let st = sw.table_stats();
    let t0 = *st.iter().find(|t| t.table == 0).unwrap();
    let m1 = port(&sw, "m1");
    assert!(t0.lookups > 0);
    assert_eq!(
        t0.lookups,
        m1.rx_pkts - m1.rx_drops[DropReason::UpcallFull as usize],
        "{t0:?} {m1:?}"
    );
    sw.shutdown();
}
