//! The L2 pipeline over in-memory ports: learning, flooding, VLANs, drops — with a real
//! `Switch` (worker threads, snapshots, commands), no devices.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use datapath::buf::Offload;
use datapath::port::mem::{MemPeer, MemPort, MemPortOptions};
use datapath::switch::{Switch, SwitchConfig, SwitchError, VlanMode};
use etherparse::PacketBuilder;

const T: Duration = Duration::from_secs(3);

fn mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, i]
}

fn udp(src: u8, dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac(src), dst)
        .ipv4([10, 0, 0, src], [10, 0, 0, dst[5]], 64)
        .udp(1000, 2000)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn switch_with(ports: &[(&str, VlanMode)], opts: MemPortOptions) -> (Switch, Vec<MemPeer>) {
    configured_switch(SwitchConfig::default(), ports, opts)
}

fn configured_switch(
    config: SwitchConfig,
    ports: &[(&str, VlanMode)],
    opts: MemPortOptions,
) -> (Switch, Vec<MemPeer>) {
    let mut sw = Switch::start(config).unwrap();
    let peers = ports
        .iter()
        .map(|(n, v)| {
            let (p, peer) = MemPort::new(n, opts);
            sw.add_port_backend(Box::new(p), v.clone()).unwrap();
            peer
        })
        .collect();
    (sw, peers)
}

fn access(v: u16) -> VlanMode {
    VlanMode::Access { vlan: v }
}

#[test]
fn unknown_unicast_floods_then_learned_unicast_goes_to_one_port() {
    let (sw, p) = switch_with(
        &[("m1", access(1)), ("m2", access(1)), ("m3", access(1))],
        MemPortOptions::default(),
    );
    let f = udp(1, mac(2), b"hello");
    assert!(p[0].send(&f));
    // Destination unknown: flooded to m2 and m3, not back to m1.
    assert_eq!(p[1].recv_timeout(T).unwrap().0, f);
    assert_eq!(p[2].recv_timeout(T).unwrap().0, f);
    // m2 answers: learned on m2, and m1 is known, so the reply goes to m1 only.
    let r = udp(2, mac(1), b"reply");
    assert!(p[1].send(&r));
    assert_eq!(p[0].recv_timeout(T).unwrap().0, r);
    assert!(p[2].recv_timeout(Duration::from_millis(100)).is_none());
    // And now m1 → m2 is unicast.
    assert!(p[0].send(&f));
    assert_eq!(p[1].recv_timeout(T).unwrap().0, f);
    assert!(p[2].recv_timeout(Duration::from_millis(100)).is_none());
    let macs = sw.mac_table();
    assert_eq!(macs.len(), 2);
    let stats = sw.port_stats(Some("m1")).unwrap();
    assert_eq!(stats[0].1.rx_pkts, 2);
    assert_eq!(stats[0].1.tx_pkts, 1);
}

#[test]
fn vlans_do_not_leak_and_trunks_tag_and_untag() {
    let trunk = VlanMode::Trunk {
        allowed: vec![10, 20],
        native: None,
    };
    let (sw, p) = switch_with(
        &[
            ("a10", access(10)),
            ("b10", access(10)),
            ("c20", access(20)),
            ("tr", trunk),
        ],
        MemPortOptions::default(),
    );
    let bcast = udp(1, [0xff; 6], b"x");
    assert!(p[0].send(&bcast));
    assert_eq!(p[1].recv_timeout(T).unwrap().0, bcast);
    let tagged = p[3].recv_timeout(T).unwrap().0;
    assert_eq!(&tagged[12..16], &[0x81, 0x00, 0x00, 10]);
    assert_eq!(&tagged[16..], &bcast[12..]);
    assert!(
        p[2].recv_timeout(Duration::from_millis(100)).is_none(),
        "VLAN 10 leaked into 20"
    );

    // A VLAN 20 tagged frame from the trunk reaches c20 untagged, nobody else.
    let mut t20 = tagged.clone();
    t20[15] = 20;
    t20[6..12].copy_from_slice(&mac(9));
    assert!(p[3].send(&t20));
    let got = p[2].recv_timeout(T).unwrap().0;
    assert_eq!(&got[12..14], &[0x08, 0x00]);
    assert_eq!(got.len(), t20.len() - 4);
    assert!(p[0].recv_timeout(Duration::from_millis(100)).is_none());
    // Untagged on a trunk without native VLAN, and tagged on an access port: dropped, counted.
    assert!(p[3].send(&bcast));
    assert!(p[0].send(&tagged));
    std::thread::sleep(Duration::from_millis(100));
    let s = sw.port_stats(None).unwrap();
    let drops = |name: &str| {
        s.iter()
            .find(|(i, _)| i.name == name)
            .map(|(_, c)| c.rx_drops[datapath::stats::DropReason::VlanNotAllowed as usize])
            .unwrap()
    };
    assert_eq!(drops("tr"), 1);
    assert_eq!(drops("a10"), 1);
}

#[test]
fn malformed_frames_are_counted_by_reason_and_not_forwarded() {
    let (sw, p) = switch_with(
        &[("m1", access(1)), ("m2", access(1))],
        MemPortOptions::default(),
    );
    let good = udp(1, mac(2), b"payload");
    let mut bad_len = good.clone();
    bad_len[16] = 0x40;
    let short = good[..10].to_vec();
    let mut mcast_src = good.clone();
    mcast_src[6] = 1;
    for f in [&bad_len, &short, &mcast_src] {
        assert!(p[0].send(f));
    }
    assert!(p[0].send(&good));
    assert_eq!(
        p[1].recv_timeout(T).unwrap().0,
        good,
        "good frame still forwarded"
    );
    assert!(p[1].recv_timeout(Duration::from_millis(100)).is_none());
    let s = &sw.port_stats(Some("m1")).unwrap()[0].1;
    use datapath::stats::DropReason as D;
    assert_eq!(s.rx_drops[D::BadLength as usize], 1);
    assert_eq!(s.rx_drops[D::Truncated as usize], 1);
    assert_eq!(s.rx_drops[D::BadSrcMac as usize], 1);
    assert_eq!(s.rx_pkts, 4);
}

#[test]
fn gso_frames_are_segmented_for_ports_without_offloads() {
    let (_sw, p) = switch_with(
        &[("m1", access(1)), ("m2", access(1))],
        MemPortOptions::default(),
    );
    let payload: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    let mut f = Vec::new();
    PacketBuilder::ethernet2(mac(1), mac(2))
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1, 2, 1000, 100)
        .write(&mut f, &payload)
        .unwrap();
    let off = Offload {
        flags: 0,
        gso_type: Offload::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 0,
        csum_offset: 0,
    };
    assert!(p[0].send_with(&f, off));
    let mut got = Vec::new();
    while let Some((seg, o)) = p[1].recv_timeout(T) {
        assert!(o.is_none());
        assert!(seg.len() <= 1514);
        got.extend_from_slice(&seg[54..]);
        if got.len() >= payload.len() {
            break;
        }
    }
    assert_eq!(got, payload);
}

#[test]
fn removed_port_gets_no_more_frames_and_its_macs_are_flushed() {
    let (mut sw, p) = switch_with(
        &[("m1", access(1)), ("m2", access(1)), ("m3", access(1))],
        MemPortOptions::default(),
    );
    assert!(p[1].send(&udp(2, [0xff; 6], b"x")));
    assert!(p[0].recv_timeout(T).is_some());
    assert_eq!(sw.mac_table().len(), 1);
    sw.del_port("m2").unwrap();
    assert!(sw.mac_table().is_empty());
    assert!(p[0].send(&udp(1, [0xff; 6], b"y")));
    assert!(p[2].recv_timeout(T).is_some());
    assert!(p[1].recv_timeout(Duration::from_millis(100)).is_none());
    assert!(sw.del_port("m2").is_err());
    sw.shutdown();
}

#[test]
fn frames_handed_to_another_worker_are_completed_for_ports_without_offloads() {
    let mut sw = Switch::start(SwitchConfig {
        cpus: vec![0, 1],
        ..SwitchConfig::default()
    })
    .unwrap();
    let (a, pa) = MemPort::new(
        "off",
        MemPortOptions {
            tx_offload: true,
            ..MemPortOptions::default()
        },
    );
    let (b, pb) = MemPort::new("plain", MemPortOptions::default());
    let ia = sw.add_port_backend(Box::new(a), access(1)).unwrap();
    let ib = sw.add_port_backend(Box::new(b), access(1)).unwrap();
    assert_ne!(
        ia.worker, ib.worker,
        "the two ports live on different workers"
    );
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    let mut f = Vec::new();
    PacketBuilder::ethernet2(mac(1), mac(2))
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1, 2, 7, 100)
        .write(&mut f, &payload)
        .unwrap();
    let off = Offload {
        flags: Offload::F_NEEDS_CSUM,
        gso_type: Offload::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1000,
        csum_start: 34,
        csum_offset: 16,
    };
    assert!(pa.send_with(&f, off));
    let mut got = Vec::new();
    while got.len() < payload.len() {
        let (seg, o) = pb
            .recv_timeout(T)
            .expect("segment handed over and segmented");
        assert!(o.is_none(), "complete frames only: {o:?}");
        let p = etherparse::SlicedPacket::from_ethernet(&seg).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!("ipv4")
        };
        let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("tcp")
        };
        let want = tcp
            .to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
            .unwrap();
        assert_eq!(tcp.checksum(), want, "TCP checksum completed");
        got.extend_from_slice(tcp.payload());
    }
    assert_eq!(got, payload);
    sw.shutdown();
}

#[test]
fn frames_the_owning_worker_cannot_take_are_counted_as_drops_of_their_output_port() {
    use datapath::stats::DropReason;
    use datapath::switch::PollMode;
    use datapath::worker::HANDOFF_CAPACITY;
    let mut sw = Switch::start(SwitchConfig {
        cpus: vec![0, 1],
        poll_mode: PollMode::Busy,
        ..SwitchConfig::default()
    })
    .unwrap();
    let (a, pa) = MemPort::new("from", MemPortOptions::default());
    // Room for every frame the hand-off channel can hold: no drop of the port's own.
    let (b, pb) = MemPort::new(
        "behind",
        MemPortOptions {
            capacity: 2 * HANDOFF_CAPACITY,
            ..MemPortOptions::default()
        },
    );
    let ia = sw.add_port_backend(Box::new(a), access(1)).unwrap();
    let ib = sw.add_port_backend(Box::new(b), access(1)).unwrap();
    assert_ne!(
        ia.worker, ib.worker,
        "the two ports live on different workers"
    );
    // The worker that owns "behind" stops taking anything, its hand-off channel too.
    let hold = pb.hold_worker(T).expect("the worker stops");
    let sent = HANDOFF_CAPACITY as u64 + 1_000;
    // Unknown unicast: flooded to the one other port, on the other worker.
    let f = udp(1, mac(2), b"handed over");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while n < sent {
        if pa.send(&f) {
            n += 1;
        } else {
            assert!(
                std::time::Instant::now() < deadline,
                "the first worker takes frames"
            );
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    let stats = |name: &str| sw.port_stats(Some(name)).unwrap().remove(0).1;
    while stats("from").rx_pkts < sent {
        assert!(std::time::Instant::now() < deadline, "every frame received");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The first worker counts after it forwarded: wait for its account to settle.
    std::thread::sleep(Duration::from_millis(50));
    let lost = sent - HANDOFF_CAPACITY as u64;
    let s = stats("behind");
    assert_eq!(s.tx_drops[DropReason::TxQueueFull as usize], lost);
    assert_eq!(s.tx_dropped(), lost);
    assert_eq!(s.tx_pkts, 0, "its worker sent nothing yet");
    assert_eq!(sw.worker_stats()[ia.worker].handoff_drops, lost);
    // Let go: the frames the channel held go out, and nothing more is lost.
    drop(hold);
    let mut out = 0;
    while pb.recv_timeout(T).is_some() {
        out += 1;
        if out == HANDOFF_CAPACITY {
            break;
        }
    }
    assert_eq!(out, HANDOFF_CAPACITY);
    assert!(pb.recv_timeout(Duration::from_millis(100)).is_none());
    let s = stats("behind");
    assert_eq!(s.tx_pkts, HANDOFF_CAPACITY as u64);
    assert_eq!(s.tx_dropped(), lost);
    sw.shutdown();
}

#[test]
fn a_priority_tag_hiding_an_inner_tag_cannot_hop_vlans() {
    let trunk = VlanMode::Trunk {
        allowed: vec![10, 20],
        native: Some(10),
    };
    let (sw, p) = switch_with(
        &[("a10", access(10)), ("tr", trunk)],
        MemPortOptions::default(),
    );
    let plain = udp(1, [0xff; 6], b"x");
    let mut f = plain[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x00, 0x81, 0x00, 0x00, 20]);
    f.extend_from_slice(&plain[12..]);
    assert!(p[0].send(&f));
    assert!(
        p[1].recv_timeout(Duration::from_millis(200)).is_none(),
        "frame hopped into VLAN 20"
    );
    std::thread::sleep(Duration::from_millis(50));
    let s = &sw.port_stats(Some("a10")).unwrap()[0].1;
    assert_eq!(
        s.rx_drops[datapath::stats::DropReason::VlanNotAllowed as usize],
        1
    );
}

#[test]
fn full_size_frames_keep_their_room_for_a_vlan_tag() {
    let trunk = VlanMode::Trunk {
        allowed: vec![10],
        native: None,
    };
    let (_sw, p) = switch_with(
        &[("a10", access(10)), ("tr", trunk)],
        MemPortOptions {
            max_frame_len: 1514,
            ..MemPortOptions::default()
        },
    );
    let f = udp(1, [0xff; 6], &[7u8; 1472]);
    assert_eq!(f.len(), 1514);
    assert!(p[0].send(&f));
    let (got, _) = p[1]
        .recv_timeout(T)
        .expect("tagged full-size frame delivered");
    assert_eq!(got.len(), 1518);
}

#[test]
fn workers_pin_to_cpus_the_process_may_use_and_cpus_it_may_not_are_refused() {
    let allowed = datapath::sys::cpu::allowed_cpus();
    let last = *allowed.last().expect("at least one CPU");
    // As under `taskset -c LAST`: the process may use one CPU, whose number need not be 0.
    let started = std::thread::spawn(move || {
        datapath::sys::cpu::pin_current_thread(last).unwrap();
        assert_eq!(datapath::sys::cpu::allowed_cpus(), vec![last]);
        let sw = Switch::start(SwitchConfig {
            cpus: vec![last],
            ..SwitchConfig::default()
        });
        let refused = Switch::start(SwitchConfig {
            cpus: vec![last + 1],
            ..SwitchConfig::default()
        });
        (sw.map(Switch::shutdown).is_ok(), refused.err())
    })
    .join()
    .unwrap();
    assert!(started.0, "a worker on the one CPU the process may use");
    match started.1 {
        Some(SwitchError::Invalid {
            field: "cpus",
            reason,
        }) => {
            assert!(reason.contains(&format!("CPU {}", last + 1)), "{reason}")
        }
        other => panic!("a CPU the process may not use: {other:?}"),
    }
}

/// An untagged frame of `ethertype` from station 1 to `dst`, 60 bytes.
fn raw(dst: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut v = dst.to_vec();
    v.extend_from_slice(&mac(1));
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.resize(60, 0);
    v
}

/// IEEE 802.1 link-local frames (01:80:c2:00:00:01–0f) are for their link: the learning
/// bridge does not relay them (802.1Q table 8-1, the Linux bridge, Open vSwitch) and counts
/// them as `link_local`; STP BPDUs (…:00) are flooded, as by the Linux bridge with STP off.
/// Until 2026-12-07 a container's pause, LACP, 802.1X and LLDP frames reached every port
/// (found by an audit).
#[test]
fn link_local_multicast_is_not_relayed_and_bpdus_are() {
    use datapath::stats::DropReason as D;
    let (sw, p) = switch_with(
        &[("m1", access(1)), ("m2", access(1)), ("m3", access(1))],
        MemPortOptions::default(),
    );
    for (last, ethertype) in [
        (0x01, 0x8808),
        (0x02, 0x8809),
        (0x03, 0x888e),
        (0x0e, 0x88cc),
    ] {
        assert!(p[0].send(&raw([0x01, 0x80, 0xc2, 0, 0, last], ethertype)));
    }
    let bpdu = raw([0x01, 0x80, 0xc2, 0, 0, 0], 0x0026);
    assert!(p[0].send(&bpdu));
    for peer in &p[1..] {
        assert_eq!(peer.recv_timeout(T).unwrap().0, bpdu, "only the BPDU");
        assert!(peer.recv_timeout(Duration::from_millis(100)).is_none());
    }
    let s = sw.port_stats(Some("m1")).unwrap().remove(0).1;
    assert_eq!(s.rx_drops[D::LinkLocal as usize], 4, "{s:?}");
    assert_eq!(s.rx_dropped(), 4);
    sw.shutdown();
}

/// The all-zero source address is not a station's: dropped as `bad_src_mac` and not learned,
/// as by the Linux bridge (until 2026-12-07 it was learned, and unicast to it followed).
#[test]
fn an_all_zero_source_is_neither_learned_nor_forwarded() {
    use datapath::stats::DropReason as D;
    let (sw, p) = switch_with(
        &[("m1", access(1)), ("m2", access(1))],
        MemPortOptions::default(),
    );
    let mut f = udp(1, [0xff; 6], b"zero");
    f[6..12].fill(0);
    assert!(p[0].send(&f));
    assert!(p[1].recv_timeout(Duration::from_millis(200)).is_none());
    let s = sw.port_stats(Some("m1")).unwrap().remove(0).1;
    assert_eq!(s.rx_drops[D::BadSrcMac as usize], 1, "{s:?}");
    assert!(sw.mac_table().is_empty());
    sw.shutdown();
}

/// Frames from `n` source addresses (`base`, `base + 1`, …) sent on `p[0]` to the broadcast
/// address, waiting until the switch took each burst; what was flooded to the other ports is
/// thrown away.
fn flood_sources(sw: &Switch, p: &[MemPeer], base: u32, n: u32) {
    let before = sw.port_stats(Some("m1")).unwrap()[0].1.rx_pkts;
    for chunk in (0..n).collect::<Vec<_>>().chunks(32) {
        for i in chunk {
            let b = (base + i).to_be_bytes();
            let mut f = udp(1, [0xff; 6], b"flood");
            f[6..12].copy_from_slice(&[0x0a, 0xee, b[0], b[1], b[2], b[3]]);
            assert!(p[0].send(&f));
        }
        let want = before + u64::from(chunk[chunk.len() - 1] + 1);
        let t0 = std::time::Instant::now();
        while sw.port_stats(Some("m1")).unwrap()[0].1.rx_pkts < want {
            assert!(t0.elapsed() < T, "the switch did not take the flood");
            std::thread::yield_now();
        }
        for q in &p[1..] {
            q.drain();
        }
    }
}

/// One port sending from thousands of source addresses (a MAC flood) fills the table, but
/// stations on other ports are still learned and their unicast goes to one port only: a new
/// address in a full table evicts one of the port with the most (until 2026-12-08 a full
/// table learned nothing new, and unicast to later stations was flooded to every port, the
/// flooder's included).
#[test]
fn a_port_flooding_source_addresses_cannot_make_the_switch_a_hub() {
    let (sw, p) = configured_switch(
        SwitchConfig {
            mac_table_max: 64,
            ..SwitchConfig::default()
        },
        &[("m1", access(1)), ("m2", access(1)), ("m3", access(1))],
        MemPortOptions::default(),
    );
    flood_sources(&sw, &p, 0, 2_000);
    assert_eq!(sw.info().mac_entries, 64);
    // Station 2 (on m2) to station 3 (on m3), unknown: flooded. 3 answers: unicast to m2.
    let f = udp(2, mac(3), b"to 3");
    assert!(p[1].send(&f));
    assert_eq!(p[2].recv_timeout(T).unwrap().0, f);
    assert_eq!(p[0].recv_timeout(T).unwrap().0, f);
    let r = udp(3, mac(2), b"to 2");
    assert!(p[2].send(&r));
    assert_eq!(p[1].recv_timeout(T).unwrap().0, r);
    assert!(p[0].recv_timeout(Duration::from_millis(100)).is_none());
    // The flood goes on; the stations stay learned, their unicast never reaches m1.
    flood_sources(&sw, &p, 2_000, 2_000);
    assert!(p[1].send(&f));
    assert_eq!(p[2].recv_timeout(T).unwrap().0, f);
    assert!(p[2].send(&r));
    assert_eq!(p[1].recv_timeout(T).unwrap().0, r);
    assert!(p[0].recv_timeout(Duration::from_millis(100)).is_none());
    let info = sw.info();
    let macs: Vec<usize> = info.ports.iter().map(|p| p.mac_entries).collect();
    assert_eq!(macs, [62, 1, 1]);
    assert_eq!(info.mac_entries, 64);
    assert_eq!(info.mac_evictions, 4_000 - 64 + 2);
    assert_eq!(
        sw.worker_stats()
            .iter()
            .map(|w| w.mac_learn_full)
            .sum::<u64>(),
        0
    );
    sw.shutdown();
}

/// A port's bound of addresses (`mac_port_max`, or a port's `mac_max`): beyond it nothing
/// new is learned on the port (counted `mac_learn_port_full`), other ports learn as before.
#[test]
fn a_port_learns_no_more_addresses_than_its_bound() {
    let (sw, p) = configured_switch(
        SwitchConfig {
            mac_port_max: 4,
            ..SwitchConfig::default()
        },
        &[("m1", access(1)), ("m2", access(1)), ("m3", access(1))],
        MemPortOptions::default(),
    );
    flood_sources(&sw, &p, 0, 100);
    let info = sw.info();
    assert_eq!(info.mac_port_max, 4);
    assert_eq!(
        info.ports
            .iter()
            .map(|p| (p.mac_entries, p.mac_max))
            .collect::<Vec<_>>(),
        [(4, 4), (0, 4), (0, 4)]
    );
    assert_eq!(
        sw.worker_stats()
            .iter()
            .map(|w| w.mac_learn_port_full)
            .sum::<u64>(),
        96
    );
    let r = udp(3, mac(2), b"to 2");
    assert!(p[2].send(&r));
    assert!(p[1].recv_timeout(T).is_some());
    assert_eq!(sw.info().ports[2].mac_entries, 1);
    sw.shutdown();
}

/// A port object in a `port_status` event carries its addresses as listed, a deleted port's
/// as they were before the flush (found by a review: the registry's copy from the port's
/// attach, 0, went out).
#[test]
fn port_status_events_carry_the_ports_addresses() {
    use datapath::notify::{Event, PortChange};
    let (mut sw, p) = switch_with(
        &[("m1", access(1)), ("m2", access(1))],
        MemPortOptions::default(),
    );
    flood_sources(&sw, &p, 0, 5);
    let listed: Vec<usize> = sw.ports().iter().map(|p| p.mac_entries).collect();
    assert_eq!(listed, [5, 0]);
    let mut ev = Vec::new();
    sw.drain_events(&mut ev, 64);
    ev.clear();
    sw.del_port("m1").unwrap();
    sw.drain_events(&mut ev, 64);
    let del = ev
        .iter()
        .find_map(|e| match e {
            Event::PortStatus(s) if s.change == PortChange::Delete => Some(s.port.mac_entries),
            _ => None,
        })
        .unwrap();
    assert_eq!(del, 5);
    sw.shutdown();
}
