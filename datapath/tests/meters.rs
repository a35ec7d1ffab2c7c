//! Meters at high rates, with absurd bursts and on flows that send nothing, and select
//! groups' weights, in an inline switch (found by audits, 2026-12-07).
#![allow(clippy::unwrap_used)]

mod mem;

use std::time::Duration;

use datapath::ofp::action::{Action, Instructions};
use datapath::ofp::group::{Bucket, GroupType};
use datapath::ofp::meter::{Meter, MeterConfig, MeterUnit};
use datapath::ofp::pipeline::{FlowMod, GroupMod, MeterMod, ModCommand};
use etherparse::PacketBuilder;
use mem::{inline_switch, udp_dst};

fn mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, i]
}

fn udp(src: u8, dst: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac(src), mac(dst))
        .ipv4([10, 0, 0, src], [10, 0, 0, dst], 64)
        .udp(sport, dport)
        .write(&mut v, b"x")
        .unwrap();
    v
}

/// A 600 Gbit/s meter (MAX_RATE allows 1 Tbit/s) offered 2 Tbit/s of 64-byte frames for 100 µs
/// of virtual time must admit ~600 Gbit/s (~117k frames), not everything.
#[test]
fn a_600_gbit_meter_limits_64_byte_frames_to_its_rate() {
    let m = Meter::new(
        1,
        MeterConfig {
            unit: MeterUnit::Kbps,
            rate: 600_000_000,
            burst: 1,
        },
        1,
    );
    let t0 = 1_000_000_000u64;
    let mut ok = 0u64;
    let mut offered = 0u64;
    for ns in 0..100_000u64 {
        for _ in 0..4 {
            offered += 1;
            if m.admit(0, 64, t0 + ns, 0) {
                ok += 1;
            }
        }
    }
    // 600e9 bit/s * 100e-6 s / 512 bit = 117_187 frames.
    assert!(
        (110_000..=125_000).contains(&ok),
        "{ok} of {offered} 64-byte frames admitted by a 600 Gbit/s meter (expected ~117k)"
    );
}

/// A 600 Mpps meter offered 1 Gpps for 100 µs admits ~60k frames, not 100k.
#[test]
fn a_600_mpps_meter_limits_frames_to_its_rate() {
    let m = Meter::new(
        1,
        MeterConfig {
            unit: MeterUnit::Pktps,
            rate: 600_000_000,
            burst: 1,
        },
        1,
    );
    let t0 = 1_000_000_000u64;
    let ok = (0..100_000u64)
        .filter(|ns| m.admit(0, 64, t0 + ns, 0))
        .count();
    assert!(
        (58_000..=62_000).contains(&ok),
        "{ok} admitted (expected ~60k)"
    );
}

/// A 40 Gbit/s meter with 1500-byte frames: rate within 1 %.
#[test]
fn a_40_gbit_meter_passes_40_gbit_within_one_percent() {
    let m = Meter::new(
        1,
        MeterConfig {
            unit: MeterUnit::Kbps,
            rate: 40_000_000,
            burst: 12,
        },
        1,
    );
    let t0 = 1_000_000_000u64;
    let mut bytes = 0u64;
    // 80 Gbit/s offered: a 1500-byte frame every 150 ns, for 10 ms.
    for i in 0..(10_000_000u64 / 150) {
        if m.admit(0, 1500, t0 + i * 150, 0) {
            bytes += 1500;
        }
    }
    let gbps = bytes as f64 * 8.0 / 10e-3 / 1e9;
    assert!(
        (39.6..=40.4).contains(&gbps),
        "{gbps} Gbit/s through a 40 Gbit/s meter"
    );
}

/// A meter offered frames by a flow that meters then drops (no output) counts them.
#[test]
fn a_meter_on_a_flow_that_sends_nothing_counts_its_frames() {
    let (mut sw, p) = inline_switch(2);
    sw.meter_mod(&MeterMod {
        command: ModCommand::Add,
        id: Some(1),
        config: MeterConfig {
            unit: MeterUnit::Pktps,
            rate: 1000,
            burst: 10,
        },
    })
    .unwrap();
    sw.flow_mod(&FlowMod::add(
        0,
        10,
        udp_dst(9),
        Instructions::apply(vec![Action::Meter(1)]),
    ))
    .unwrap();
    sw.barrier().unwrap();
    for i in 0..5 {
        assert!(p[0].send(&udp(1, 2, 100 + i, 9)));
    }
    sw.poll_inline_at(Duration::from_secs(1));
    let m = sw.pipeline().meter(1).unwrap().clone();
    assert_eq!(m.offered.totals().0, 5, "meter offered count");
    // Each dropped once, as sent nowhere.
    let s = sw.port_stats(Some("m1")).unwrap().remove(0).1;
    assert_eq!(
        s.rx_drops[datapath::stats::DropReason::FlowDrop as usize],
        5
    );
    assert_eq!(s.rx_dropped(), 5);
}

/// Select group weights at the worker: weights 1:3.
#[test]
fn select_group_buckets_follow_their_weights() {
    let (mut sw, p) = inline_switch(3);
    sw.group_mod(&GroupMod {
        command: ModCommand::Add,
        id: Some(1),
        kind: GroupType::Select,
        buckets: vec![
            Bucket {
                weight: 1,
                watch_port: None,
                actions: vec![Action::Output(2)],
            },
            Bucket {
                weight: 3,
                watch_port: None,
                actions: vec![Action::Output(3)],
            },
        ],
    })
    .unwrap();
    sw.flow_mod(&FlowMod::add(
        0,
        10,
        udp_dst(9),
        Instructions::apply(vec![Action::Group(1)]),
    ))
    .unwrap();
    sw.barrier().unwrap();
    let (mut a, mut b) = (0, 0);
    for round in 0..2 {
        for chunk in 0..25u16 {
            for i in 0..32u16 {
                assert!(p[0].send(&udp(1, 2, 1000 + chunk * 32 + i, 9)));
            }
            sw.poll_inline_at(Duration::from_secs(1));
            let (x, y) = (p[1].drain().len(), p[2].drain().len());
            assert_eq!(x + y, 32, "round {round}");
            a += x;
            b += y;
        }
    }
    assert!(
        (350..=450).contains(&a) && (1150..=1250).contains(&b),
        "{a} {b}"
    );
}

/// A meter's burst is any u64 on the wire (`meter_mod.burst`, flowtext `burst_size`); its
/// tolerance (burst × period, in 1/16 ns ticks) overflowed a u128 from a burst of ~4.95e18
/// packets at 1 packet/s: a debug build panicked on the control thread, a release build
/// wrapped, and this burst (chosen so that the product wraps to almost nothing) admitted 1
/// frame of 100 sent at once. Such a burst is no limit at all.
#[test]
fn a_meter_with_a_huge_burst_admits_its_burst_without_overflow() {
    // (2^83 + r) / 5^9 with r making it whole: burst × 5^9 × 2^45 ≡ r × 2^45 (mod 2^128).
    let five9: u128 = 1_953_125;
    let r = (five9 - (1u128 << 83) % five9) % five9;
    let burst = u64::try_from(((1u128 << 83) + r) / five9).unwrap();
    assert!(burst > 4_000_000_000_000_000_000);
    let mm = MeterMod {
        command: ModCommand::Add,
        id: Some(1),
        config: MeterConfig {
            unit: MeterUnit::Pktps,
            rate: 1,
            burst,
        },
    };
    // Through the control thread's own path (Switch::meter_mod → Pipeline::meter_mod →
    // Meter::new), as a meter_mod request reaches it.
    let (mut sw, _) = inline_switch(0);
    sw.meter_mod(&mm).unwrap();
    let m = sw.pipeline().meter(1).unwrap();
    let t0 = 1_000_000_000u64;
    let admitted = (0..100).filter(|_| m.admit(0, 64, t0, 0)).count();
    assert_eq!(
        admitted, 100,
        "a meter with a burst of {burst} packets admitted {admitted} of 100 frames at once"
    );
    // The largest burst, in both units.
    for unit in [MeterUnit::Pktps, MeterUnit::Kbps] {
        let m = Meter::new(
            1,
            MeterConfig {
                unit,
                rate: 1,
                burst: u64::MAX,
            },
            1,
        );
        assert!((0..100).all(|_| m.admit(0, 1500, t0, 0)));
    }
}
