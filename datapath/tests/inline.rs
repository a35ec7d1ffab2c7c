//! A switch in `PollMode::Inline`: no worker thread; the test thread runs each pass with
//! `Switch::poll_inline` and every control operation that waits for a worker (adding and
//! deleting ports, barriers, packet-outs, shutdown) does the worker's part itself. Nothing here
//! waits or sleeps: a frame is out (or counted as dropped) when `poll_inline` returns.
#![allow(clippy::unwrap_used)]

mod mem;

use std::time::Duration;

use datapath::ofp::MatchField;
use datapath::ofp::action::{Action, Instructions};
use datapath::ofp::field::Field;
use datapath::ofp::pipeline::{FlowFilter, FlowMod};
use datapath::port::BackendDrops;
use datapath::port::mem::{MemPeer, MemPort, MemPortOptions};
use datapath::stats::DropReason;
use datapath::switch::{PollMode, Switch, SwitchConfig, SwitchError, VlanMode};
use etherparse::PacketBuilder;
use mem::{inline_switch, udp_dst};

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
    // Four receive batches (1, 1, 64 and 36 frames), one of them full.
    assert_eq!((w.batches, w.full_batches), (4, 1));
    assert_eq!(
        w.cache.run_hits + w.cache.emc_hits + w.cache.megaflow_hits + w.cache.misses,
        102
    );
}

#[test]
fn inline_switch_applies_flow_mods_at_the_next_poll_and_after_a_barrier() {
    let (mut sw, p) = inline_switch(3);
    let steer = udp_dst(5000);
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

// Runs: consecutive frames of a batch that take the same cache entry and the same decisions
// are looked up once and forwarded together. These tests check that grouping never changes
// where a frame goes, its order, or what is counted.

/// `frame` with 802.1Q tags (outermost first) inserted after the MAC addresses.
fn tagged(frame: &[u8], tcis: &[u16]) -> Vec<u8> {
    let mut v = frame[..12].to_vec();
    for tci in tcis {
        v.extend_from_slice(&[0x81, 0x00]);
        v.extend_from_slice(&tci.to_be_bytes());
    }
    v.extend_from_slice(&frame[12..]);
    v
}

/// A UDP frame from m`src` to `dst` whose payload carries `seq` (same flow key for every seq).
fn numbered(src: u8, dst: [u8; 6], seq: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac(src), dst)
        .ipv4([10, 0, 0, src], [10, 0, 0, dst[5]], 64)
        .udp(1000, 7)
        .write(&mut v, &seq.to_be_bytes())
        .unwrap();
    v
}

/// Teaches the switch where m`i` is (a broadcast from it), then empties every peer.
fn learn(sw: &mut Switch, p: &[MemPeer], i: usize) {
    let src = u8::try_from(i + 1).unwrap();
    assert!(p[i].send(&udp_to(src, [0xff; 6], 1)));
    sw.poll_inline();
    for peer in p {
        got(peer);
    }
}

#[test]
fn a_batch_of_one_flow_is_one_run_delivered_in_order_and_counted_per_frame() {
    let (mut sw, p) = inline_switch(3);
    learn(&mut sw, &p, 1);
    let before = sw.worker_stats()[0].cache;
    let frames: Vec<Vec<u8>> = (0..64).map(|s| numbered(1, mac(2), s)).collect();
    for f in &frames {
        assert!(p[0].send(f));
    }
    assert_eq!(sw.poll_inline(), 64);
    assert_eq!(got(&p[1]), frames);
    assert!(got(&p[2]).is_empty());
    let c = sw.worker_stats()[0].cache;
    // One lookup; the other 63 frames joined its run.
    assert_eq!(c.run_hits - before.run_hits, 63);
    let lookups = |c: &datapath::switch::CacheCounters| c.emc_hits + c.megaflow_hits + c.misses;
    assert_eq!(lookups(&c) - lookups(&before), 1);
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let m2 = counters(&sw, "m2");
    assert_eq!((m2.tx_pkts, m2.tx_bytes), (64, bytes));
    // The normal flow is charged with every frame (and the broadcast that taught m2).
    let taught = udp_to(2, [0xff; 6], 1).len() as u64;
    let flows = sw.dump_flows(&Default::default()).unwrap();
    assert_eq!(flows[0].stats.totals(), (65, bytes + taught));
}

#[test]
fn frames_to_different_destinations_never_share_a_normal_decision() {
    let (mut sw, p) = inline_switch(3);
    learn(&mut sw, &p, 1);
    learn(&mut sw, &p, 2);
    // The normal megaflow matches every key; only the MAC addresses tell these apart.
    let mut to2 = Vec::new();
    let mut to3 = Vec::new();
    let mut bcast = Vec::new();
    for s in 0..60u16 {
        let f = match s % 5 {
            0 | 1 => numbered(1, mac(2), s),
            2 | 3 => numbered(1, mac(3), s),
            _ => numbered(1, [0xff; 6], s),
        };
        match s % 5 {
            0 | 1 => to2.push(f.clone()),
            2 | 3 => to3.push(f.clone()),
            _ => bcast.push(f.clone()),
        }
        assert!(p[0].send(&f));
    }
    assert_eq!(sw.poll_inline(), 60);
    // Each port gets its own frames and every broadcast, in the order they were sent.
    let want = |unicast: &[Vec<u8>]| {
        let mut all: Vec<Vec<u8>> = unicast.iter().chain(bcast.iter()).cloned().collect();
        all.sort_by_key(|f| u16::from_be_bytes([f[f.len() - 2], f[f.len() - 1]]));
        all
    };
    assert_eq!(got(&p[1]), want(&to2));
    assert_eq!(got(&p[2]), want(&to3));
    assert!(got(&p[0]).is_empty());
}

#[test]
fn a_malformed_frame_inside_a_run_is_counted_and_the_run_goes_on() {
    let (mut sw, p) = inline_switch(2);
    learn(&mut sw, &p, 1);
    let good: Vec<Vec<u8>> = (0..4).map(|s| numbered(1, mac(2), s)).collect();
    let mut bad = good[0].clone();
    bad.truncate(20); // cut inside the IPv4 header
    for f in [&good[0], &good[1], &bad, &good[2], &good[3]] {
        assert!(p[0].send(f));
    }
    let before = sw.worker_stats()[0].cache.run_hits;
    assert_eq!(sw.poll_inline(), 5);
    assert_eq!(got(&p[1]), good);
    assert_eq!(
        counters(&sw, "m1").rx_drops[DropReason::Truncated as usize],
        1
    );
    assert_eq!(sw.worker_stats()[0].cache.run_hits - before, 3);
}

#[test]
fn a_rewriting_flow_between_forwarding_runs_keeps_the_order() {
    let (mut sw, p) = inline_switch(2);
    // UDP to port 5000 has its TTL decremented on the way to m2; the rest is bridged.
    sw.flow_mod(&FlowMod::add(
        0,
        100,
        udp_dst(5000),
        Instructions::apply(vec![Action::DecTtl, Action::Output(2)]),
    ))
    .unwrap();
    sw.barrier().unwrap();
    learn(&mut sw, &p, 1);
    let pattern = [false, false, true, false, true, true, false, true];
    let mut sent = Vec::new();
    for (s, &rw) in (0u16..).zip(pattern.iter()) {
        let f = if rw {
            udp_to(1, mac(2), 5000)
        } else {
            numbered(1, mac(2), s)
        };
        assert!(p[0].send(&f));
        sent.push((rw, f));
    }
    assert_eq!(sw.poll_inline(), pattern.len());
    let out = got(&p[1]);
    assert_eq!(out.len(), sent.len());
    for ((rw, f), o) in sent.iter().zip(&out) {
        if *rw {
            // Same frame but the TTL (byte 22) one lower and the IPv4 checksum adjusted.
            assert_eq!(o[22], f[22] - 1);
            assert_eq!(o[..22], f[..22]);
            assert_eq!(o[26..], f[26..]);
        } else {
            assert_eq!(o, f);
        }
    }
}

#[test]
fn frames_too_big_for_the_output_are_counted_and_the_rest_of_the_run_delivered() {
    let (mut sw, p) = inline_switch(1);
    let (port, small) = MemPort::new(
        "small",
        MemPortOptions {
            max_frame_len: 100,
            ..MemPortOptions::default()
        },
    );
    sw.add_port_backend(Box::new(port), VlanMode::Access { vlan: 1 })
        .unwrap();
    // Learn `small`'s address.
    assert!(small.send(&udp_to(2, [0xff; 6], 1)));
    sw.poll_inline();
    got(&p[0]);
    let big = |s: u16| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(mac(1), mac(2))
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 7)
            .write(&mut v, &[s as u8; 200])
            .unwrap();
        v
    };
    let frames = [
        numbered(1, mac(2), 0),
        big(1),
        numbered(1, mac(2), 2),
        big(3),
    ];
    for f in &frames {
        assert!(p[0].send(f));
    }
    assert_eq!(sw.poll_inline(), 4);
    assert_eq!(got(&small), vec![frames[0].clone(), frames[2].clone()]);
    let c = counters(&sw, "small");
    assert_eq!(c.tx_drops[DropReason::TooBig as usize], 2);
    assert_eq!(c.tx_pkts, 2);
}

#[test]
fn a_flooded_run_reaches_every_other_port_in_order() {
    let (mut sw, p) = inline_switch(3);
    let frames: Vec<Vec<u8>> = (0..20).map(|s| numbered(1, mac(9), s)).collect();
    for f in &frames {
        assert!(p[0].send(f));
    }
    assert_eq!(sw.poll_inline(), 20);
    assert_eq!(got(&p[1]), frames);
    assert_eq!(got(&p[2]), frames);
    assert!(got(&p[0]).is_empty());
}

#[test]
fn a_double_tagged_frame_does_not_join_the_run_of_a_priority_tagged_one() {
    // Same flow key (outer tag VID 0, IPv4 after the tags), but only the single priority tag
    // is allowed on an access port: the double-tagged frame must be dropped on its own.
    let (mut sw, p) = inline_switch(2);
    learn(&mut sw, &p, 1);
    let base = numbered(1, mac(2), 0);
    let prio = tagged(&base, &[0]);
    let double = tagged(&base, &[0, 5]);
    for f in [&prio, &double, &prio] {
        assert!(p[0].send(f));
    }
    assert_eq!(sw.poll_inline(), 3);
    assert_eq!(got(&p[1]).len(), 2);
    assert_eq!(
        counters(&sw, "m1").rx_drops[DropReason::VlanNotAllowed as usize],
        1
    );
}

#[test]
fn a_run_that_misses_every_table_is_counted_per_frame() {
    let (mut sw, p) = inline_switch(2);
    sw.flow_mod(&FlowMod::delete(None, Vec::new())).unwrap();
    sw.barrier().unwrap();
    for s in 0..10 {
        assert!(p[0].send(&numbered(1, mac(2), s)));
    }
    assert_eq!(sw.poll_inline(), 10);
    assert!(got(&p[1]).is_empty());
    assert_eq!(
        counters(&sw, "m1").rx_drops[DropReason::TableMiss as usize],
        10
    );
    let t0 = sw.table_stats().into_iter().find(|t| t.table == 0).unwrap();
    assert_eq!(t0.lookups, 10);
}

#[test]
fn runs_of_different_flows_with_equal_ops_share_one_output_and_are_charged_apart() {
    let (mut sw, p) = inline_switch(3);
    // UDP to ports 6000..6006: each its own rule, so each frame below is its own cache entry
    // and its own run. 6000, 6001, 6003 and 6005 output to m2 (equal ops: their runs chain),
    // 6002 to m3 (other ops: ends the chain), 6004 is dropped, 6006 rewrites on its way to m2.
    let ops = |port: u16| match port {
        6002 => vec![Action::Output(3)],
        6004 => vec![],
        6006 => vec![Action::DecTtl, Action::Output(2)],
        _ => vec![Action::Output(2)],
    };
    for port in 6000..=6006u16 {
        sw.flow_mod(&FlowMod::add(
            0,
            100,
            udp_dst(port),
            Instructions::apply(ops(port)),
        ))
        .unwrap();
    }
    sw.barrier().unwrap();
    let pattern = [
        6000, 6001, 6000, 6003, 6002, 6001, 6005, 6004, 6000, 6006, 6003, 6001, 6002, 6002, 6005,
    ];
    let frame = |seq: usize, port: u16| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(mac(1), mac(2))
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, port)
            .write(&mut v, &u16::try_from(seq).unwrap().to_be_bytes())
            .unwrap();
        v
    };
    // Round 0 installs the entries (lookups miss: no chaining across an upcall); in rounds 1
    // and 2 every lookup hits, and the runs chain.
    let mut warm = sw.worker_stats()[0].cache;
    for round in 0..3 {
        let (mut to2, mut to3) = (Vec::new(), Vec::new());
        for (seq, &port) in pattern.iter().enumerate() {
            let f = frame(round * 100 + seq, port);
            assert!(p[0].send(&f));
            match port {
                6002 => to3.push(f),
                6004 => {}
                6006 => {
                    let mut o = f;
                    o[22] -= 1; // TTL; the IPv4 checksum (bytes 24..26) is adjusted too
                    to2.push(o);
                }
                _ => to2.push(f),
            }
        }
        assert_eq!(sw.poll_inline(), pattern.len());
        // Every frame went where its own flow says, in the order sent.
        let mut out2 = got(&p[1]);
        for (o, w) in out2.iter_mut().zip(&to2) {
            if o[36..38] == 6006u16.to_be_bytes() {
                o[24..26].copy_from_slice(&w[24..26]);
            }
        }
        assert_eq!(out2, to2);
        assert_eq!(got(&p[2]), to3);
        assert!(got(&p[0]).is_empty());
        let rounds = round as u64 + 1;
        let m1 = counters(&sw, "m1");
        assert_eq!(m1.rx_drops[DropReason::FlowDrop as usize], rounds);
        assert_eq!(counters(&sw, "m2").tx_pkts, rounds * to2.len() as u64);
        assert_eq!(counters(&sw, "m3").tx_pkts, rounds * to3.len() as u64);
        if round == 1 {
            warm = sw.worker_stats()[0].cache;
        }
    }
    // Seven upcalls; 6002 6002 is a run (no lookup) in every round; in round 2 every other
    // frame is an EMC hit. (Before, some are megaflow hits: an upcall whose entry's mask adds
    // bits to the EMC's clears it, and an entry not looked up since waits for its next
    // lookup to be put back.)
    let c = sw.worker_stats()[0].cache;
    assert_eq!((c.upcalls, c.run_hits), (7, 3));
    assert_eq!(
        (
            c.emc_hits - warm.emc_hits,
            c.megaflow_hits - warm.megaflow_hits
        ),
        (15 - 1, 0)
    );
    // Each flow is charged with its own frames only.
    let flows = sw.dump_flows(&FlowFilter::default()).unwrap();
    for port in 6000..=6006u16 {
        let f = flows
            .iter()
            .find(|f| f.fields.iter().any(|m| m.value == u128::from(port)))
            .unwrap();
        let want = 3 * pattern.iter().filter(|&&q| q == port).count() as u64;
        assert_eq!(f.stats.totals().0, want, "packets of the flow for {port}");
    }
}

#[test]
fn ports_are_maintained_once_a_millisecond_of_switch_clock() {
    let (mut sw, peers) = inline_switch(2);
    let at = |us: u64| Duration::from_micros(us);
    // The first pass maintains; passes within the next millisecond do not.
    sw.poll_inline_at(at(5_000));
    assert_eq!(peers[0].maintained(), 1);
    for us in [5_100, 5_500, 5_999] {
        sw.poll_inline_at(at(us));
    }
    assert_eq!(peers[0].maintained(), 1);
    sw.poll_inline_at(at(6_000));
    assert_eq!((peers[0].maintained(), peers[1].maintained()), (2, 2));
    // A long gap (a sleeping worker) maintains once when it ends, not once per missed ms.
    sw.poll_inline_at(at(90_000));
    sw.poll_inline_at(at(90_500));
    assert_eq!(peers[1].maintained(), 3);
}

#[test]
fn backend_drops_are_counted_within_100_ms_of_switch_clock_however_few_the_passes() {
    let (mut sw, peers) = inline_switch(1);
    let at = |ms: u64| Duration::from_millis(ms);
    let seen = |sw: &Switch| {
        let c = counters(sw, "m1");
        (
            c.rx_drops[DropReason::RxRingFull as usize],
            c.rx_drops[DropReason::NoRxBuffer as usize],
            c.backend_drops,
            c.tx_drops[DropReason::Backend as usize],
        )
    };
    // The first pass reads the port's drops (none), and the next read is due 100 ms later.
    sw.poll_inline_at(at(5));
    peers[0].add_backend_drops(BackendDrops {
        rx_ring_full: 4,
        no_rx_buffer: 3,
        other: 2,
        tx: 1,
    });
    // A few passes (an adaptive worker that sleeps makes ten a second), far from the 1,024
    // that also read them: not yet.
    for ms in [20, 60, 104] {
        sw.poll_inline_at(at(ms));
    }
    assert_eq!(seen(&sw), (0, 0, 0, 0));
    // 100 ms after the last read: counted, each by its cause and direction.
    sw.poll_inline_at(at(105));
    assert_eq!(seen(&sw), (4, 3, 2, 1));
    // Read as deltas: the next read adds only what is new.
    peers[0].add_backend_drops(BackendDrops::other(0, 5));
    sw.poll_inline_at(at(150));
    assert_eq!(seen(&sw), (4, 3, 2, 1));
    sw.poll_inline_at(at(205));
    assert_eq!(seen(&sw), (4, 3, 2, 6));
}

#[test]
fn threaded_workers_maintain_their_ports_in_every_poll_mode() {
    for mode in [PollMode::Busy, PollMode::Adaptive] {
        let mut sw = Switch::start(SwitchConfig {
            poll_mode: mode,
            ..SwitchConfig::default()
        })
        .expect("switch");
        let (p, peer) = MemPort::new("m0", MemPortOptions::default());
        sw.add_port_backend(Box::new(p), VlanMode::Access { vlan: 1 })
            .expect("port");
        // An idle worker too (adaptive ones sleep; a mem port has no fd, so 1 ms at most):
        // 20 rounds of maintenance come within tens of milliseconds at one a millisecond; the
        // 5 s bound only catches a worker that never (or once a second) runs them.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while peer.maintained() < 20 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(peer.maintained() >= 20, "{mode:?}: {}", peer.maintained());
    }
}

#[test]
fn a_flow_removed_event_counts_the_frames_forwarded_until_the_workers_let_go() {
    use datapath::notify::{Event, RemovedReason};
    let (mut sw, p) = inline_switch(2);
    let mut fm = FlowMod::add(
        0,
        100,
        udp_dst(5000),
        Instructions::apply(vec![Action::Output(2)]),
    );
    fm.flags.send_flow_rem = true;
    sw.flow_mod(&fm).unwrap();
    sw.barrier().unwrap();
    let f = udp_to(1, mac(2), 5000);
    for _ in 0..3 {
        assert!(p[0].send(&f));
    }
    assert_eq!(sw.poll_inline(), 3);
    // Deleted, not yet published: the worker still forwards by the flow, and counts into it.
    sw.flow_mod(&FlowMod::delete(Some(0), udp_dst(5000)))
        .unwrap();
    for _ in 0..2 {
        assert!(p[0].send(&f));
    }
    assert_eq!(sw.poll_inline(), 2);
    assert_eq!(got(&p[1]).len(), 5);
    let mut ev = Vec::new();
    sw.drain_events(&mut ev, 64);
    let removed: Vec<_> = ev
        .into_iter()
        .filter_map(|e| match e {
            Event::FlowRemoved(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].reason, RemovedReason::Delete);
    assert_eq!(
        removed[0].packets, 5,
        "the frames forwarded after the delete count"
    );
    assert_eq!(removed[0].bytes, 5 * f.len() as u64);
    // The drain published the delete: later frames go by the default flow, not the removed one.
    assert!(p[0].send(&f));
    assert_eq!(sw.poll_inline(), 1);
    assert_eq!(got(&p[1]).len(), 1);
    assert_eq!(removed[0].flow.stats.totals().0, 5);
}

// `normal` decisions are remembered per (port, tag, source, destination) within a second of
// switch clock, while the MAC table and the configuration stay the same. These tests change
// the MAC table between passes in the same second, where a remembered decision would be
// reused if the change went unnoticed.

const SAME_SECOND: Duration = Duration::from_secs(1);

/// [`learn`] at switch clock [`SAME_SECOND`].
fn learn_now(sw: &mut Switch, p: &[MemPeer], i: usize) {
    let src = u8::try_from(i + 1).unwrap();
    assert!(p[i].send(&udp_to(src, [0xff; 6], 1)));
    sw.poll_inline_at(SAME_SECOND);
    for peer in p {
        got(peer);
    }
}

/// Sends `f` from the first port in [`SAME_SECOND`]; what each port got.
fn send_now(sw: &mut Switch, p: &[MemPeer], f: &[u8]) -> Vec<Vec<Vec<u8>>> {
    assert!(p[0].send(f));
    assert_eq!(sw.poll_inline_at(SAME_SECOND), 1);
    p.iter().map(got).collect()
}

/// Teaches the switch where m2 is, then sends m1's frame to it three times (the first
/// decision, then remembered ones): only m2's port gets it. Returns the frame.
fn m2_reached_three_times(sw: &mut Switch, p: &[MemPeer]) -> Vec<u8> {
    learn_now(sw, p, 1);
    let f = numbered(1, mac(2), 0);
    for _ in 0..3 {
        assert_eq!(send_now(sw, p, &f), vec![vec![], vec![f.clone()], vec![]]);
    }
    f
}

#[test]
fn a_remembered_normal_decision_follows_a_destination_that_moves() {
    let (mut sw, p) = inline_switch(3);
    let f = m2_reached_three_times(&mut sw, &p);
    // m2 now sends from the third port (its container moved).
    assert!(p[2].send(&udp_to(2, mac(1), 1)));
    assert_eq!(sw.poll_inline_at(SAME_SECOND), 1);
    assert_eq!(got(&p[0]).len(), 1);
    assert_eq!(send_now(&mut sw, &p, &f), vec![vec![], vec![], vec![f]]);
}

#[test]
fn a_remembered_flood_ends_when_the_destination_is_learned() {
    let (mut sw, p) = inline_switch(3);
    let f = numbered(1, mac(2), 0);
    for _ in 0..3 {
        assert_eq!(
            send_now(&mut sw, &p, &f),
            vec![vec![], vec![f.clone()], vec![f.clone()]]
        );
    }
    learn_now(&mut sw, &p, 1);
    assert_eq!(send_now(&mut sw, &p, &f), vec![vec![], vec![f], vec![]]);
}

#[test]
fn a_remembered_normal_decision_is_forgotten_when_the_mac_table_is_flushed() {
    let (mut sw, p) = inline_switch(3);
    let f = m2_reached_three_times(&mut sw, &p);
    // Only m2's port is flushed: m1 (relearned by each frame) stays.
    assert_eq!(sw.flush_macs(None, Some("m2")).unwrap(), 1);
    assert_eq!(
        send_now(&mut sw, &p, &f),
        vec![vec![], vec![f.clone()], vec![f]]
    );
}

/// A UDP frame from m1 to m2 with source port `sport` (one flow per port).
/// A match on UDP source port `port`.
fn udp_src(port: u16) -> Vec<MatchField> {
    let mut m = udp_dst(5000);
    m[2] = MatchField {
        field: Field::UdpSrc,
        value: u128::from(port),
        mask: None,
    };
    m
}

fn from_port(sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac(1), mac(2))
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(sport, 7)
        .write(&mut v, &sport.to_be_bytes())
        .unwrap();
    v
}

#[test]
fn a_batch_after_one_of_many_flows_is_looked_up_in_stages_with_the_same_outcome() {
    let (mut sw, p) = inline_switch(2);
    learn(&mut sw, &p, 1);
    // A rule on a UDP source port no frame has: every megaflow is exact on it, one per flow.
    let drop_sport = |sw: &mut Switch, priority: u16, port: u16| {
        let none = Instructions::apply(vec![]);
        sw.flow_mod(&FlowMod::add(0, priority, udp_src(port), none))
            .unwrap();
        sw.commit();
    };
    drop_sport(&mut sw, 100, 9);
    let staged = |sw: &Switch| sw.worker_stats()[0].staged_batches;
    let send = |frames: &[Vec<u8>]| {
        for f in frames {
            assert!(p[0].send(f));
        }
    };
    // 64 new flows: 32 translated in the batch, 32 deferred to the next pass; every frame
    // was looked up, so the next batch goes in stages.
    let first: Vec<Vec<u8>> = (1000..1064).map(from_port).collect();
    send(&first);
    assert_eq!(sw.poll_inline(), 64);
    assert_eq!(got(&p[1]), first[..32]);
    assert_eq!(staged(&sw), 0);
    // From now on flow 1001's frames are dropped (a change the cache learns by revalidation).
    drop_sport(&mut sw, 200, 1001);
    // The staged batch: known flows (EMC hits, flow 1001 among them), malformed frames, and
    // new flows (upcalls in the middle of the batch).
    let mut second: Vec<Vec<u8>> = (1000..1040).map(from_port).collect();
    let mut runt = from_port(1);
    runt.truncate(20); // cut inside the IPv4 header
    second.splice(10..10, std::iter::repeat_n(runt, 8));
    second.extend((2000..2016).map(from_port));
    assert_eq!(second.len(), 64);
    send(&second);
    let before = sw.worker_stats()[0].cache;
    assert_eq!(
        sw.poll_inline(),
        96,
        "the 32 deferred frames, then the batch"
    );
    assert_eq!(staged(&sw), 1);
    let want: Vec<Vec<u8>> = first[32..]
        .iter()
        .chain(
            second
                .iter()
                .filter(|f| f.len() > 20 && **f != from_port(1001)),
        )
        .cloned()
        .collect();
    assert_eq!(got(&p[1]), want, "in order, flow 1001 dropped");
    assert_eq!(
        counters(&sw, "m1").rx_drops[DropReason::Truncated as usize],
        8
    );
    assert_eq!(
        counters(&sw, "m1").rx_drops[DropReason::FlowDrop as usize],
        1
    );
    let c = sw.worker_stats()[0].cache;
    assert_eq!(c.upcalls - before.upcalls, 32 + 16);
    // The known flows of the batch were EMC hits (their hashes from the first stage; flow
    // 1001's entry re-translated in place or anew).
    assert!(c.emc_hits - before.emc_hits >= 39, "{c:?}");
    // A batch of one flow again: it goes straight (the staged one had many lookups).
    let third: Vec<Vec<u8>> = (0..64).map(|_| from_port(1000)).collect();
    send(&third);
    assert_eq!(sw.poll_inline(), 64);
    assert_eq!(staged(&sw), 2);
    send(&third);
    assert_eq!(sw.poll_inline(), 64);
    assert_eq!(staged(&sw), 2, "one lookup: the next batch goes straight");
    assert_eq!(got(&p[1]).len(), 128);
}

/// Rules `udp,tp_src=PORT actions=output:2` for `ports` (a megaflow per flow).
fn output_per_source_port(sw: &mut Switch, ports: std::ops::Range<u16>) {
    for port in ports {
        let out = Instructions::apply(vec![Action::Output(2)]);
        sw.flow_mod(&FlowMod::add(0, 100, udp_src(port), out))
            .unwrap();
    }
    sw.commit();
}

#[test]
fn cached_hits_reach_their_flows_when_read_and_within_a_second_unread() {
    let (mut sw, p) = inline_switch(2);
    output_per_source_port(&mut sw, 1000..1200);
    let frames: Vec<Vec<u8>> = (1000..1200).map(from_port).collect();
    // Sends every frame once with the switch clock at `at` and polls until all are out.
    let send_all = |sw: &mut Switch, at: Duration| {
        for f in &frames {
            assert!(p[0].send(f));
        }
        let mut out = 0;
        for _ in 0..64 {
            sw.poll_inline_at(at);
            out += got(&p[1]).len();
            if out == frames.len() {
                return;
            }
        }
        panic!("{out} of {} frames out", frames.len());
    };
    // Counters as they are (no request to the worker), and the latest hit of any flow.
    let unread = |sw: &Switch| {
        let flows: Vec<_> = sw
            .pipeline()
            .table(0)
            .flows()
            .filter(|f| f.priority == 100)
            .collect();
        assert_eq!(flows.len(), 200);
        let packets: u64 = flows.iter().map(|f| f.stats.totals().0).sum();
        let last = flows.iter().map(|f| f.stats.last_hit_ms()).min();
        (packets, last)
    };
    send_all(&mut sw, Duration::from_secs(20));
    // A read has the worker push first: every frame counted.
    let read = sw.dump_flows(&FlowFilter::default()).unwrap();
    let read = || read.iter().filter(|f| f.priority == 100);
    assert_eq!(read().count(), 200);
    assert!(read().all(|f| f.stats.totals().0 == 1));
    // Cached hits within one millisecond of the switch clock: charged to the entries, owed
    // to the flows.
    send_all(&mut sw, Duration::from_secs(30));
    assert_eq!(unread(&sw).0, 200);
    // Unread, a slice of the entries is pushed each millisecond, oldest first ...
    sw.poll_inline_at(Duration::from_millis(30_001));
    let (some, _) = unread(&sw);
    assert!(some > 200 && some < 400, "{some}");
    // ... and all of them within a second, each flow's latest hit its hit's time.
    sw.poll_inline_at(Duration::from_millis(31_000));
    assert_eq!(unread(&sw), (400, Some(30_000)));
    // A read right after the hits counts them all.
    send_all(&mut sw, Duration::from_secs(40));
    let read = sw.dump_flows(&FlowFilter::default()).unwrap();
    let read = || read.iter().filter(|f| f.priority == 100);
    assert_eq!(read().count(), 200);
    assert!(read().all(|f| f.stats.totals().0 == 3));
    assert!(read().all(|f| f.stats.last_hit_ms() == 40_000));
}

#[test]
fn a_staged_batch_queues_chaining_flows_behind_one_run_and_charges_each_flow() {
    let (mut sw, p) = inline_switch(3);
    // A rule per UDP source port (a megaflow per flow): 1000..1024 output to m2 (equal ops:
    // they chain); 1024..1028 output to m2 and go on to table 1, which is empty (equal ops,
    // but a table miss to count for each frame: they end the chain too); 1028..1032 output to
    // m3 (other ops: they end the chain); 1032..1034 rewrite on their way to m2 (not
    // forward-only).
    let rule = |sport: u16| match sport {
        1024..1028 => Instructions {
            apply: vec![Action::Output(2)],
            goto_table: Some(1),
            ..Instructions::default()
        },
        1028..1032 => Instructions::apply(vec![Action::Output(3)]),
        1032..1034 => Instructions::apply(vec![Action::DecTtl, Action::Output(2)]),
        _ => Instructions::apply(vec![Action::Output(2)]),
    };
    for sport in 1000..1034 {
        sw.flow_mod(&FlowMod::add(0, 100, udp_src(sport), rule(sport)))
            .unwrap();
    }
    sw.barrier().unwrap();
    // The batch: the 34 flows in a scrambled order with repeats (a frame of the open run's
    // flow now and then), and flow 1000 priority-tagged at a few places (its tags differ from
    // the untagged frames': it neither joins nor chains behind their runs).
    let mut batch: Vec<Vec<u8>> = (0..64u16).map(|k| from_port(1000 + (k * 7) % 34)).collect();
    batch[5] = batch[4].clone();
    batch[6] = batch[4].clone();
    for k in [20, 21, 40, 63] {
        batch[k] = tagged(&from_port(1000), &[0]);
    }
    let send_poll = |sw: &mut Switch, frames: &[Vec<u8>]| {
        for f in frames {
            assert!(p[0].send(f));
        }
        for _ in 0..8 {
            sw.poll_inline();
        }
        (got(&p[1]), got(&p[2]))
    };
    // Every entry installed (upcalls, deferred frames), then a batch of one flow, so that the
    // next batch goes straight (one lookup).
    send_poll(&mut sw, &batch);
    let one: Vec<Vec<u8>> = (0..64).map(|_| from_port(1000)).collect();
    send_poll(&mut sw, &one);
    // What each flow has been charged, and table 1's misses.
    let totals = |sw: &mut Switch| {
        let flows = sw.dump_flows(&FlowFilter::default()).unwrap();
        let per_port: Vec<u64> = (1000..1034u16)
            .map(|sport| {
                let f = flows.iter().find(|f| f.fields == udp_src(sport)).unwrap();
                f.stats.totals().0
            })
            .collect();
        let t1 = sw.table_stats().into_iter().find(|t| t.table == 1);
        (per_port, t1.map_or(0, |t| t.lookups))
    };
    let staged = |sw: &Switch| sw.worker_stats()[0].staged_batches;
    let mut outcomes = Vec::new();
    for want_staged in [false, true] {
        let (before, misses_before) = totals(&mut sw);
        let staged_before = staged(&sw);
        let out = send_poll(&mut sw, &batch);
        assert_eq!(staged(&sw) - staged_before, u64::from(want_staged));
        let (after, misses_after) = totals(&mut sw);
        for (i, sport) in (1000..1034u16).enumerate() {
            let sent = batch.iter().filter(|f| **f == from_port(sport)).count();
            let sent = sent + if sport == 1000 { 4 } else { 0 };
            assert_eq!(after[i] - before[i], sent as u64, "frames of flow {sport}");
        }
        let to_miss = (1024..1028)
            .map(|s| batch.iter().filter(|f| **f == from_port(s)).count())
            .sum::<usize>();
        assert_eq!(misses_after - misses_before, to_miss as u64);
        outcomes.push(out);
    }
    // In order at each port, the rewritten frames' TTL one less, the same either way.
    let sport = |f: &[u8]| {
        let at = if f[12..14] == [0x81, 0x00] { 38 } else { 34 };
        u16::from_be_bytes([f[at], f[at + 1]])
    };
    let (to2, to3) = &outcomes[1];
    let want2: Vec<u16> = batch
        .iter()
        .map(|f| sport(f))
        .filter(|s| !(1028..1032).contains(s))
        .collect();
    assert_eq!(to2.iter().map(|f| sport(f)).collect::<Vec<_>>(), want2);
    for (o, f) in to2
        .iter()
        .zip(batch.iter().filter(|f| !(1028..1032).contains(&sport(f))))
    {
        if (1032..1034).contains(&sport(f)) {
            assert_eq!(o[22], f[22] - 1, "TTL");
        } else {
            assert_eq!(o, f);
        }
    }
    let want3: Vec<&Vec<u8>> = batch
        .iter()
        .filter(|f| (1028..1032).contains(&sport(f)))
        .collect();
    assert_eq!(to3.iter().collect::<Vec<_>>(), want3);
    assert_eq!(outcomes[0], outcomes[1], "straight and staged alike");
    assert!(got(&p[0]).is_empty());
    assert_eq!(counters(&sw, "m1").rx_drops.iter().sum::<u64>(), 0);
}

/// A flood of new flows from two ports at once: each batch translates 32 and defers the rest,
/// and the queue of deferred frames (1,024 per worker) fills; frames beyond it are dropped and
/// counted on the port they came from (`upcall_full`) as well as in the worker's
/// `upcall_drops`. Every frame is either delivered or counted.
#[test]
fn new_flows_beyond_the_translation_queue_are_counted_on_their_ingress_port() {
    let mut sw = Switch::start(SwitchConfig {
        poll_mode: PollMode::Inline,
        ..SwitchConfig::default()
    })
    .unwrap();
    let opts = MemPortOptions {
        capacity: 4096,
        ..MemPortOptions::default()
    };
    let peers: Vec<MemPeer> = (1..=3)
        .map(|i| {
            let (p, peer) = MemPort::new(&format!("m{i}"), opts);
            sw.add_port_backend(Box::new(p), VlanMode::Access { vlan: 1 })
                .unwrap();
            peer
        })
        .collect();
    // A rule on UDP port 5000 makes every miss exact on the UDP port: one translation per
    // destination port.
    sw.flow_mod(&FlowMod::add(
        0,
        100,
        udp_dst(5000),
        Instructions::apply(vec![Action::Output(3)]),
    ))
    .unwrap();
    sw.barrier().unwrap();
    let per_port = 3_000u16;
    for d in 0..per_port {
        assert!(peers[0].send(&udp_to(1, mac(3), 6_000 + d)));
        assert!(peers[1].send(&udp_to(2, mac(3), 6_000 + per_port + d)));
    }
    let mut delivered = 0;
    for _ in 0..1_000 {
        sw.poll_inline();
        delivered += got(&peers[2]).len();
    }
    let (a, b) = (counters(&sw, "m1"), counters(&sw, "m2"));
    assert_eq!(a.rx_pkts + b.rx_pkts, 2 * u64::from(per_port));
    let full =
        a.rx_drops[DropReason::UpcallFull as usize] + b.rx_drops[DropReason::UpcallFull as usize];
    assert!(full > 0, "the queue filled: {a:?} {b:?}");
    assert_eq!(sw.worker_stats()[0].cache.upcall_drops, full);
    assert_eq!(
        delivered as u64 + a.rx_dropped() + b.rx_dropped(),
        2 * u64::from(per_port),
        "every frame delivered or counted"
    );
    assert_eq!(a.rx_dropped() + b.rx_dropped(), full, "no other drop");
    sw.shutdown();
}
