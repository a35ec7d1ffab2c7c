//! `mac_table_ops`: a sequence of operations on a small [`MacTable`], checked against a
//! `HashMap` model.
//!
//! Input layout: the first byte picks the capacity (1..=24 entries, so the table fills up
//! quickly); every following operation is an opcode byte and its argument bytes (a missing
//! argument ends the run):
//!
//! | opcode % 8 | operation | arguments |
//! |---|---|---|
//! | 0, 1, 2 | `learn(vlan, mac, port, now)` | address byte, port byte |
//! | 3, 4 | `lookup(vlan, mac)` | address byte |
//! | 5 | `age(now, aging_secs)` | aging byte |
//! | 6 | `remove_if(port == p)` (flush a port) | port byte |
//! | 7 | the clock advances | seconds byte |
//!
//! An address byte selects one of 4 VLANs (1, 2, 4095, and 4097, which the table must treat as
//! VLAN 1 since only 12 bits are kept) and one of 64 MACs, so that learning, refreshing, moving
//! and table-full all happen often.
//!
//! The table has at least twice as many slots as its capacity and probes up to
//! [`datapath::l2::MAX_PROBE`] slots, so with at most 24 live entries a probe never runs out of
//! free slots, and an eviction's scan covers the whole table. A new address in a full table is
//! added, and exactly one entry goes: one of the learner's own port (which then had at least
//! one), or one of a port with the most addresses (since 2026-12-08; before, it was refused).
//! Which of that port's entries goes is the table's choice: the model follows it. Every other
//! result is compared with the model exactly.

use std::collections::HashMap;

use datapath::l2::{Learned, MacTable};

/// The model: (12-bit VLAN, MAC) → (port, last seen).
type Model = HashMap<(u16, [u8; 6]), (u32, u32)>;

const VLANS: [u16; 4] = [1, 2, 4095, 4097];

fn address(b: u8) -> (u16, [u8; 6]) {
    let vlan = VLANS[usize::from(b >> 6)];
    let mac = [0x02, 0, 0, 0, (b >> 5) & 1, b & 0x1f];
    (vlan, mac)
}

fn port(b: u8) -> u32 {
    u32::from(b % 6)
}

/// The fuzz body; see the module docs for the input format.
pub fn mac_table_ops(data: &[u8]) {
    let Some((&first, mut ops)) = data.split_first() else {
        return;
    };
    let capacity = usize::from(first % 24) + 1;
    let table = MacTable::new(capacity);
    assert_eq!(table.capacity(), capacity);
    assert!(table.is_empty());
    let mut model = Model::new();
    let mut now: u32 = 0;
    let mut moves: u64 = 0;
    let mut evictions: u64 = 0;
    while let Some((&op, rest)) = ops.split_first() {
        let Some((&arg, rest)) = rest.split_first() else {
            break;
        };
        ops = rest;
        match op % 8 {
            0..=2 => {
                let Some((&p, rest)) = ops.split_first() else {
                    break;
                };
                ops = rest;
                let (vlan, mac) = address(arg);
                let port = port(p);
                let key = (vlan & 0x0fff, mac);
                let got = table.learn(vlan, &mac, port, now);
                let full = !model.contains_key(&key) && model.len() >= capacity;
                let want = match model.get(&key) {
                    Some(&(old, _)) if old == port => Learned::Refreshed,
                    Some(&(old, _)) => Learned::Moved { from: old },
                    None => Learned::Added,
                };
                assert_eq!(got, want, "learn({vlan}, {mac:02x?}, {port}, {now})");
                if full {
                    let mut present = Model::new();
                    table.for_each(|v, m, p, t| {
                        present.insert((v, m), (p, t));
                    });
                    let gone: Vec<_> = model
                        .keys()
                        .filter(|k| !present.contains_key(k))
                        .copied()
                        .collect();
                    assert_eq!(gone.len(), 1, "one entry evicted: {gone:02x?}");
                    let victim = model[&gone[0]].0;
                    let count = |p: u32| model.values().filter(|&&(q, _)| q == p).count();
                    let most = (0..6).map(count).max().unwrap_or(0);
                    assert!(
                        (victim == port && count(port) >= 1) || count(victim) == most,
                        "evicted from port {victim} ({} addresses) for port {port} ({}), \
                         the most {most}",
                        count(victim),
                        count(port)
                    );
                    model.remove(&gone[0]);
                    evictions += 1;
                }
                model.insert(key, (port, now));
                if matches!(want, Learned::Moved { .. }) {
                    moves += 1;
                }
            }
            3 | 4 => {
                let (vlan, mac) = address(arg);
                let want = model.get(&(vlan & 0x0fff, mac)).map(|&(p, _)| p);
                assert_eq!(table.lookup(vlan, &mac), want, "lookup({vlan}, {mac:02x?})");
            }
            5 => {
                let aging = u32::from(arg);
                let before = model.len();
                model.retain(|_, &mut (_, seen)| now.saturating_sub(seen) <= aging);
                assert_eq!(
                    table.age(now, aging),
                    before - model.len(),
                    "age({now}, {aging})"
                );
            }
            6 => {
                let p = port(arg);
                let before = model.len();
                model.retain(|_, &mut (q, _)| q != p);
                let removed = table.remove_if(|_, _, q, _| q == p);
                assert_eq!(removed, before - model.len(), "remove port {p}");
            }
            _ => now = now.saturating_add(u32::from(arg)),
        }
        assert!(
            table.len() <= table.capacity(),
            "len {} > capacity",
            table.len()
        );
        assert_eq!(table.len(), model.len());
        assert_eq!(table.is_empty(), model.is_empty());
    }
    let mut seen = Model::new();
    table.for_each(|vlan, mac, port, last| {
        assert!(vlan <= 0x0fff, "for_each gave VLAN {vlan}");
        assert!(
            seen.insert((vlan, mac), (port, last)).is_none(),
            "({vlan}, {mac:02x?}) listed twice"
        );
    });
    assert_eq!(seen, model);
    assert_eq!(table.moves(), moves);
    assert_eq!(table.evictions(), evictions);
}
