//! Support code of the in-memory switch tests (`inline`, `meters`, `flows`,
//! `cache_consistency`): an inline switch of mem ports, an exact match field, a match on a UDP
//! destination port.
//!
//! Each test binary uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use datapath::ofp::MatchField;
use datapath::ofp::field::Field;
use datapath::port::mem::{MemPeer, MemPort, MemPortOptions};
use datapath::switch::{PollMode, Switch, SwitchConfig, VlanMode};

/// A switch in `PollMode::Inline` with mem ports `m1`..`mN`, access ports of VLAN 1, and
/// their peers in that order.
pub fn inline_switch(n: usize) -> (Switch, Vec<MemPeer>) {
    switch_of(
        SwitchConfig {
            poll_mode: PollMode::Inline,
            ..SwitchConfig::default()
        },
        n,
    )
}

/// As [`inline_switch`], with the default worker thread (adaptive polling).
pub fn threaded_switch(n: usize) -> (Switch, Vec<MemPeer>) {
    switch_of(SwitchConfig::default(), n)
}

/// A switch of `config` with mem ports `m1`..`mN` (access VLAN 1) and their peers.
fn switch_of(config: SwitchConfig, n: usize) -> (Switch, Vec<MemPeer>) {
    let mut sw = Switch::start(config).expect("a switch");
    let peers = (1..=n)
        .map(|i| {
            let (p, peer) = MemPort::new(&format!("m{i}"), MemPortOptions::default());
            sw.add_port_backend(Box::new(p), VlanMode::Access { vlan: 1 })
                .expect("a mem port");
            peer
        })
        .collect();
    (sw, peers)
}

/// An exact match on `field`.
pub fn mf(field: Field, value: u128) -> MatchField {
    MatchField {
        field,
        value,
        mask: None,
    }
}

/// A match on IPv4 UDP destination port `port`.
pub fn udp_dst(port: u16) -> Vec<MatchField> {
    vec![
        mf(Field::EthType, 0x0800),
        mf(Field::IpProto, 17),
        mf(Field::UdpDst, u128::from(port)),
    ]
}
