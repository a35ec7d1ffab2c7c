//! The flow cache's consistency with the flow tables: flow counters synced again after a
//! worker lagged, last-hit times that never go back, idle timeouts of flows hit through the
//! cache, the inner tag after `pop_vlan`, barriers after a cache flush (found by an audit,
//! 2026-12-07).
#![allow(clippy::unwrap_used)]

mod mem;

use std::time::{Duration, Instant};

use datapath::ofp::MatchField;
use datapath::ofp::action::{Action, Instructions};
use datapath::ofp::field::Field;
use datapath::ofp::pipeline::{FlowFilter, FlowMod};
use datapath::port::mem::{MemPeer, MemPort, MemPortOptions};
use datapath::switch::{PollMode, Switch, SwitchConfig, VlanMode};
use etherparse::PacketBuilder;
use mem::{mf, udp_dst};

const T: Duration = Duration::from_secs(3);

fn mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, i]
}

fn udp_to(src: u8, dst: u8, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac(src), mac(dst))
        .ipv4([10, 0, 0, src], [10, 0, 0, dst], 64)
        .udp(1000, dport)
        .write(&mut v, b"audit")
        .unwrap();
    v
}

fn switch_with(n: usize, config: SwitchConfig) -> (Switch, Vec<MemPeer>) {
    let mut sw = Switch::start(config).unwrap();
    let peers = (1..=n)
        .map(|i| {
            let (p, peer) = MemPort::new(
                &format!("m{i}"),
                MemPortOptions {
                    capacity: 4096,
                    ..MemPortOptions::default()
                },
            );
            sw.add_port_backend(Box::new(p), VlanMode::Access { vlan: 1 })
                .unwrap();
            peer
        })
        .collect();
    (sw, peers)
}

fn total_packets(sw: &mut Switch) -> u64 {
    sw.dump_flows(&FlowFilter::default())
        .unwrap()
        .iter()
        .map(|f| f.stats.totals().0)
        .sum()
}

/// One worker that was slow once (held for longer than the 5 s a read of flow counters waits)
/// makes every later read of flow counters skip the wait for ever: `sync_stats` with
/// `lagging` publishes a new request and checks at once whether every worker has acknowledged
/// it, which a worker thread never has in the nanoseconds since. So `dump_flows` no longer
/// counts the frames the switch handled before it, though the worker is long back to normal.
#[test]
fn flow_counters_are_synced_again_once_a_worker_that_lagged_has_caught_up() {
    let (mut sw, p) = switch_with(
        2,
        SwitchConfig {
            poll_mode: PollMode::Busy,
            ..SwitchConfig::default()
        },
    );
    // 2,000 flows, one per UDP port: 2,000 megaflows, each owing its flow its hits.
    const FLOWS: u16 = 2_000;
    for port in 0..FLOWS {
        sw.flow_mod(&FlowMod::add(
            0,
            100,
            udp_dst(10_000 + port),
            Instructions::apply(vec![Action::Output(2)]),
        ))
        .unwrap();
    }
    sw.barrier().unwrap();
    let frames: Vec<Vec<u8>> = (0..FLOWS).map(|i| udp_to(1, 2, 10_000 + i)).collect();
    let send_and_forward = || {
        for f in &frames {
            assert!(p[0].send(f));
        }
        for _ in &frames {
            p[1].recv_timeout(T).expect("forwarded");
        }
    };
    // Every flow's megaflow cached (and its first frame counted: the worker pushes the counts
    // of all its entries within about a second).
    send_and_forward();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(total_packets(&mut sw), u64::from(FLOWS));
    // The worker falls behind once, for longer than a read of the counters waits.
    let hold = p[0].hold_worker(T).expect("the worker stops");
    let t0 = Instant::now();
    let _ = total_packets(&mut sw);
    assert!(t0.elapsed() >= Duration::from_secs(5), "the read waited");
    drop(hold);
    // The worker is back: barriers work again, and it idles for a while.
    sw.barrier().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    sw.barrier().unwrap();
    // Now a frame per flow again (cache hits); every one is forwarded before the read.
    let held = sw.pipeline().table(0).flows().cloned().collect::<Vec<_>>();
    send_and_forward();
    // `sync_flow_stats`: "flow counters read after this count every frame handled before
    // it". (A `dump_flows` does the same and then builds its reply, which often takes long
    // enough for the worker to have pushed anyway.)
    sw.sync_flow_stats();
    let got: u64 = held.iter().map(|f| f.stats.totals().0).sum();
    assert_eq!(got, 2 * u64::from(FLOWS));
    sw.shutdown();
}

fn tcp_to(src: u8, dst: u8, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac(src), mac(dst))
        .ipv4([10, 0, 0, src], [10, 0, 0, dst], 64)
        .tcp(40000, dport, 1, 1000)
        .write(&mut v, b"audit")
        .unwrap();
    v
}

fn inline_switch(n: usize) -> (Switch, Vec<MemPeer>) {
    switch_with(
        n,
        SwitchConfig {
            poll_mode: PollMode::Inline,
            ..SwitchConfig::default()
        },
    )
}

/// Polls the inline switch at switch-clock `ms` until no frame is left.
fn poll_all_at(sw: &mut Switch, ms: u64) {
    while sw.poll_inline_at(Duration::from_millis(ms)) > 0 {}
}

/// Flow F (UDP → m2, idle timeout 1 s) hit through two cache entries: at switch clock
/// 1000 ms through entry A (UDP port 100) and entry B (UDP port 101), listed after 990 filler
/// entries (TCP, dropped), then at 1900 ms through A again. The UDP port 9 flow above F puts
/// the UDP port in the megaflow mask, so every UDP port hitting F has an entry of its own.
fn one_flow_hit_through_two_entries() -> (Switch, Vec<MemPeer>) {
    let (mut sw, p) = inline_switch(2);
    let mut f = FlowMod::add(
        0,
        10,
        vec![mf(Field::EthType, 0x0800), mf(Field::IpProto, 17)],
        Instructions::apply(vec![Action::Output(2)]),
    );
    f.idle_timeout = 1;
    sw.flow_mod(&f).unwrap();
    sw.flow_mod(&FlowMod::add(
        0,
        20,
        udp_dst(9),
        Instructions::apply(vec![Action::Output(2)]),
    ))
    .unwrap();
    sw.flow_mod(&FlowMod::add(
        0,
        5,
        vec![mf(Field::EthType, 0x0800), mf(Field::IpProto, 6)],
        Instructions::default(),
    ))
    .unwrap();
    sw.barrier().unwrap();
    // (At most 32 new flows a batch: frames past the upcall budget are deferred, and a
    // deferred frame charges its flows at once instead of its entry. No millisecond passes
    // at 1000 ms: nothing is pushed yet.)
    for i in 0..990u16 {
        assert!(p[0].send(&tcp_to(1, 2, 20_000 + i)));
        if i % 32 == 31 {
            poll_all_at(&mut sw, 1000);
        }
    }
    poll_all_at(&mut sw, 1000);
    assert!(p[0].send(&udp_to(1, 2, 100)));
    poll_all_at(&mut sw, 1000);
    assert!(p[0].send(&udp_to(1, 2, 101)));
    poll_all_at(&mut sw, 1000);
    // At 1900 ms A is hit again (the pass first pushes 900 fillers, one per millisecond).
    assert!(p[0].send(&udp_to(1, 2, 100)));
    poll_all_at(&mut sw, 1900);
    assert_eq!(p[1].drain().len(), 3);
    (sw, p)
}

/// A flow's last hit went back in time: two cache entries of one flow are pushed to it in the
/// order they were listed as owing (oldest listing first), and each push stored its entry's
/// latest hit as the flow's. A, listed first and hit again later, is pushed first, and B,
/// whose latest hit is older, overwrote the newer time: the flow looked idle since 1000 ms.
#[test]
fn a_flows_last_hit_never_goes_back_to_an_older_entrys_hit() {
    let (mut sw, _p) = one_flow_hit_through_two_entries();
    // A read of the counters pushes everything owed: F's latest hit was at 1900 ms.
    let flows = sw.dump_flows(&FlowFilter::default()).unwrap();
    let flow_f = flows.iter().find(|x| x.idle_timeout == 1).unwrap();
    assert_eq!(flow_f.stats.totals().0, 3);
    assert_eq!(flow_f.stats.last_hit_ms(), 1900, "F's last hit");
}

/// The consequence for idle timeouts: F, last hit at 1900 ms, was removed as idle once the
/// control thread's (real) clock passed 2000 ms, its last hit taken for 1000 ms.
#[test]
fn a_flow_hit_within_its_idle_timeout_through_the_cache_is_not_expired() {
    let (mut sw, _p) = one_flow_hit_through_two_entries();
    while sw.clock_ms() < 2000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let expired = sw.expire_flows();
    // (Past 2900 ms F would be idle for real: the check must run before.)
    assert!(
        sw.clock_ms() < 2900,
        "the check ran before F's real timeout"
    );
    assert_eq!(expired, 0, "F was hit at 1900 ms; its idle timeout is 1 s");
}

/// `frame` with tags (TPID, VID) inserted after the MAC addresses, outer first.
fn tagged(frame: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    for &(tpid, vid) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&frame[12..]);
    f
}

fn vid(v: u16) -> MatchField {
    mf(Field::VlanVid, u128::from(0x1000 | v))
}

/// After `pop_vlan` the translation takes the frame for untagged (`xlate::apply` sets the
/// working key's `vlan_tci` to 0), but a double-tagged frame still carries its inner tag,
/// which the next table's rules match (the executor itself reads it after the pop). The
/// inner tag is in no key and no megaflow mask: frames with different inner VLANs share one
/// cache entry and one decision, and `dl_vlan=<inner>` in a later table never matches.
#[test]
fn after_pop_vlan_the_next_table_sees_the_inner_tag() {
    let (mut sw, p) = inline_switch(3);
    sw.flow_mod(&FlowMod::add(
        0,
        10,
        vec![vid(100)],
        Instructions {
            apply: vec![Action::PopVlan],
            goto_table: Some(1),
            ..Instructions::default()
        },
    ))
    .unwrap();
    sw.flow_mod(&FlowMod::add(
        1,
        10,
        vec![vid(20)],
        Instructions::apply(vec![Action::Output(2)]),
    ))
    .unwrap();
    sw.flow_mod(&FlowMod::add(
        1,
        10,
        vec![vid(30)],
        Instructions::apply(vec![Action::Output(3)]),
    ))
    .unwrap();
    sw.barrier().unwrap();
    let plain = udp_to(1, 2, 7);
    let in20 = tagged(&plain, &[(0x88a8, 100), (0x8100, 20)]);
    let in30 = tagged(&plain, &[(0x88a8, 100), (0x8100, 30)]);
    assert!(p[0].send(&in20));
    sw.poll_inline();
    assert!(p[0].send(&in30));
    sw.poll_inline();
    // Popped: the frames leave with their inner tag only, by the inner VLAN's rule.
    assert_eq!(
        p[1].drain(),
        vec![tagged(&plain, &[(0x8100, 20)])],
        "VLAN 20 → m2"
    );
    assert_eq!(
        p[2].drain(),
        vec![tagged(&plain, &[(0x8100, 30)])],
        "VLAN 30 → m3"
    );
}

/// A read of the flow counters has the worker push what its cache owes, a slice per pass,
/// counting down `Worker::stats_owed` by the entries `FlowCache::push_stats` takes off its
/// list. A cache flush (here: a change of more than 256 flows with more than 16,384 entries
/// cached; also a 1,025th megaflow mask) pushes and drops the whole list itself, so the count
/// never reaches 0, and the worker never again reports a generation as seen: every later
/// `barrier` fails (after 5 s) although the worker forwards normally.
#[test]
fn a_cache_flush_while_the_worker_pushes_counters_does_not_stall_barriers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (mut sw, p) = switch_with(
        2,
        SwitchConfig {
            poll_mode: PollMode::Busy,
            ..SwitchConfig::default()
        },
    );
    // The UDP port 1 flow puts the UDP port into every megaflow mask; the rest of UDP is
    // dropped by one flow: a megaflow per UDP port, all charging that flow.
    sw.flow_mod(&FlowMod::add(
        0,
        20,
        udp_dst(1),
        Instructions::apply(vec![Action::Output(2)]),
    ))
    .unwrap();
    sw.flow_mod(&FlowMod::add(
        0,
        10,
        vec![mf(Field::EthType, 0x0800), mf(Field::IpProto, 17)],
        Instructions::default(),
    ))
    .unwrap();
    sw.barrier().unwrap();
    const N: u16 = 60_000;
    let frames: Vec<Vec<u8>> = (0..N).map(|i| udp_to(1, 2, 2 + i)).collect();
    let rx = |sw: &Switch| sw.port_stats(Some("m1")).unwrap()[0].1.rx_pkts;
    let send_all = |sw: &Switch| {
        let base = rx(sw);
        for chunk in frames.chunks(1024) {
            let before = rx(sw);
            for f in chunk {
                assert!(p[0].send(f));
            }
            while rx(sw) < before + chunk.len() as u64 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        assert_eq!(rx(sw), base + u64::from(N));
    };
    // Cache a megaflow for each, then hit them all: every entry owes the drop flow a frame.
    send_all(&sw);
    std::thread::sleep(Duration::from_millis(50));
    let entries = sw.worker_stats()[0].cache.entries;
    assert!(entries > 16_384, "{entries} megaflows");
    let drop_flow = sw
        .dump_flows(&FlowFilter::default())
        .unwrap()
        .into_iter()
        .find(|f| f.priority == 10)
        .unwrap();
    // While the worker pushes for a read of the counters, it stops (as a worker that falls
    // behind) for longer than the read waits. (The stop lands at its next millisecond's
    // upkeep: should the pushes be over by then, the read returns at once; hit every entry
    // again and try once more.)
    let mut caught = false;
    for _attempt in 0..5 {
        send_all(&sw);
        let go = Arc::new(AtomicBool::new(false));
        let base = drop_flow.stats.totals().0;
        let helper = {
            let (peer, go, flow) = (p[0].clone(), Arc::clone(&go), Arc::clone(&drop_flow));
            std::thread::spawn(move || {
                // The read's pushes have begun (the millisecond slices push ~60 entries a ms).
                let until = Instant::now() + T;
                while flow.stats.totals().0 < base + 2_000 {
                    if Instant::now() >= until {
                        return;
                    }
                    std::hint::spin_loop();
                }
                let hold = peer.hold_worker(T);
                while !go.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                drop(hold);
            })
        };
        let t0 = Instant::now();
        sw.sync_flow_stats();
        if t0.elapsed() >= Duration::from_secs(5) {
            caught = true;
            // Meanwhile 300 flows change (more than a targeted revalidation follows): with
            // more than 16,384 entries the worker flushes its cache when it takes them up.
            let mods: Vec<FlowMod> = (0..300u16)
                .map(|i| {
                    FlowMod::add(
                        5,
                        10,
                        udp_dst(30_000 + i),
                        Instructions::apply(vec![Action::Output(2)]),
                    )
                })
                .collect();
            sw.bundle(&mods).unwrap();
        }
        go.store(true, Ordering::SeqCst);
        helper.join().unwrap();
        if caught {
            break;
        }
        sw.barrier().unwrap();
    }
    assert!(caught, "the worker never stopped while it pushed");
    // The worker is back and forwards; a barrier must succeed.
    assert!(p[0].send(&udp_to(1, 2, 1)));
    p[1].recv_timeout(T).expect("forwarded");
    sw.barrier().expect("barrier after the worker caught up");
    // (The worker publishes its cache counters once a second.)
    let deadline = Instant::now() + T;
    while sw.worker_stats()[0].cache.flushes == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        sw.worker_stats()[0].cache.flushes >= 1,
        "the cache was flushed"
    );
    sw.shutdown();
}
