//! Translation: a flow key through the tables into a flat action list and a megaflow mask.
//!
//! [`xlate`] walks the pipeline from table 0 as OpenFlow 1.3 describes it: in each table the
//! best flow's instructions run — apply-actions at once (their field writes change the key that
//! later tables match), clear/write-actions on the action set, write-metadata, goto-table — and
//! when no goto follows, the action set runs in its fixed order (pop, push, dec_ttl, set_field,
//! group, output; an output is ignored when a group is set). A table without a matching flow
//! ends the walk: the packet is dropped (counted as a table miss) after what was applied.
//!
//! The result is late-bound where that keeps the cache simple and exact: `normal`, `flood`,
//! `all` and groups are decided per packet by the executor against the live MAC table and port
//! list, so changes to those need no revalidation of cached translations. Everything a
//! translation *did* decide came from the tables, and the returned mask holds every key bit the
//! table lookups consulted (see [`Table::lookup_wc`](crate::classifier::Table::lookup_wc)),
//! plus the TTL when `dec_ttl` runs: any key equal to this one on those bits translates the same.
//! An apply-actions `dec_ttl` of a TTL of at most 1 ends the walk, as the executor drops the
//! packet there ([`Translation::ttl_expired`]).

use std::sync::Arc;

use super::action::{Action, MAX_TABLE};
use super::field::Field;
use super::pipeline::{Flow, Pipeline};
use crate::classifier::FlowMask;
use crate::flow::{FlowKey, VLAN_PRESENT};

/// A compiled step. The executor runs these in order on the frame.
pub type Op = Action;

/// What [`xlate`] produced.
#[derive(Clone, Debug, Default)]
pub struct Translation {
    /// The steps, in order. Writes of pipeline-only fields (registers, metadata) are left out.
    pub ops: Vec<Op>,
    /// Every key bit the translation depended on.
    pub mask: FlowMask,
    /// The flows that matched, in order (their counters are charged for each packet).
    pub flows: Vec<Arc<Flow>>,
    /// The walk ended in a table with no matching flow.
    pub miss: bool,
    /// The walk ended at an apply-actions `dec_ttl` of a packet whose TTL (hop limit) is at
    /// most 1 (or that is not IP): the executor drops it there (`ttl_expired`), so nothing
    /// after it is translated and no later table's flow counts it, as in Open vSwitch. The
    /// mask holds the TTL, so every packet of the translation ends there.
    pub ttl_expired: bool,
    /// That table (when `miss`).
    pub miss_table: u8,
    /// Where each `controller` op was applied, in op order.
    pub controller: Vec<CtlMeta>,
    /// Tables the walk looked up (bit `t` of word `t / 64`).
    pub tables: [u64; 4],
    /// A table was looked up with a key that earlier actions had changed (so the changed
    /// fields, not the packet's, decided it).
    pub rewrote: bool,
    /// (table, cookie) of the flow being applied.
    cur: (u8, u64),
    /// The working key differs from the packet's.
    modified: bool,
}

/// Where a `controller` op was applied: the flow's table and cookie, and the pipeline fields
/// (which the frame does not carry) at that point, for the packet-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtlMeta {
    /// Table of the flow.
    pub table: u8,
    /// Cookie of the flow.
    pub cookie: u64,
    /// `metadata` at that point.
    pub metadata: u64,
    /// Registers at that point.
    pub regs: [u32; 8],
}

impl CtlMeta {
    /// The meta of packet-out actions (table 0xff, no cookie).
    pub const PACKET_OUT: Self = Self {
        table: 0xff,
        cookie: u64::MAX,
        metadata: 0,
        regs: [0; 8],
    };
}

impl Translation {
    /// Whether the walk looked up table `t`.
    pub fn visited(&self, t: u8) -> bool {
        self.tables[usize::from(t / 64)] & (1 << (t % 64)) != 0
    }

    /// Whether the ops can send the packet anywhere, or must run on each packet all the same:
    /// a meter counts (and may drop) each packet offered to it, also when nothing sends it
    /// on (`actions=meter:1` alone, a meter before a table miss; until 2026-12-07 such
    /// packets were dropped without reaching the meter). Such ops run per packet, which
    /// counts its drop.
    pub fn outputs(&self) -> bool {
        // A `dec_ttl` that drops the packet counts why per packet (`ttl_expired`).
        self.ttl_expired
            || self.ops.iter().any(|o| {
                matches!(
                    o,
                    Action::Output(_)
                        | Action::InPort
                        | Action::Normal
                        | Action::Flood
                        | Action::All
                        | Action::Controller { .. }
                        | Action::Group(_)
                        | Action::Meter(_)
                )
            })
    }
}

/// The OpenFlow action set: at most one action of each kind.
#[derive(Default)]
struct ActionSet {
    pop: bool,
    push: Option<u16>,
    dec_ttl: bool,
    set: Vec<(Field, u128)>,
    meter: Option<u32>,
    group: Option<u32>,
    output: Option<Action>,
}

impl ActionSet {
    fn write(&mut self, a: &Action) {
        match *a {
            Action::PopVlan => self.pop = true,
            Action::PushVlan(t) => self.push = Some(t),
            Action::DecTtl => self.dec_ttl = true,
            Action::SetField { field, value } => {
                if let Some(s) = self.set.iter_mut().find(|(f, _)| *f == field) {
                    s.1 = value;
                } else {
                    self.set.push((field, value));
                }
            }
            Action::Meter(m) => self.meter = Some(m),
            Action::Group(g) => self.group = Some(g),
            Action::Output(_)
            | Action::InPort
            | Action::Normal
            | Action::Flood
            | Action::All
            | Action::Controller { .. } => self.output = Some(*a),
        }
    }

    fn run(self, k: &mut FlowKey, t: &mut Translation) {
        if let Some(m) = self.meter {
            apply(&Action::Meter(m), k, t);
        }
        if self.pop {
            apply(&Action::PopVlan, k, t);
        }
        if let Some(tpid) = self.push {
            apply(&Action::PushVlan(tpid), k, t);
        }
        if self.dec_ttl {
            apply(&Action::DecTtl, k, t);
        }
        for (field, value) in self.set {
            apply(&Action::SetField { field, value }, k, t);
        }
        if let Some(g) = self.group {
            apply(&Action::Group(g), k, t);
        } else if let Some(o) = self.output {
            apply(&o, k, t);
        }
    }
}

/// Applies one action to the working key and appends its op.
fn apply(a: &Action, k: &mut FlowKey, t: &mut Translation) {
    if matches!(
        a,
        Action::SetField { .. } | Action::PushVlan(_) | Action::PopVlan | Action::DecTtl
    ) {
        t.modified = true;
    }
    match *a {
        Action::SetField { field, value } => {
            let value = if field == Field::VlanVid {
                value | u128::from(VLAN_PRESENT)
            } else {
                value
            };
            field.set(k, value);
            if field.in_frame() {
                t.ops.push(Action::SetField { field, value });
            }
        }
        Action::PushVlan(tpid) => {
            // The new tag copies the current outer tag's VID/PCP, or is zero; the old outer
            // tag is now the inner one.
            k.vlan_inner = k.vlan_tci;
            k.vlan_tci |= VLAN_PRESENT;
            t.mask.bits.vlan_tci = 0xffff;
            t.ops.push(Action::PushVlan(tpid));
        }
        Action::PopVlan => {
            // The inner tag, if any, becomes the outer one (tables after this see it): the
            // translation depends on it.
            k.vlan_tci = k.vlan_inner;
            k.vlan_inner = 0;
            t.mask.bits.vlan_inner = 0xffff;
            t.ops.push(Action::PopVlan);
        }
        Action::DecTtl => {
            t.mask.bits.nw_ttl = 0xff;
            k.nw_ttl = k.nw_ttl.saturating_sub(1);
            t.ops.push(Action::DecTtl);
        }
        Action::Controller { .. } => {
            t.controller.push(CtlMeta {
                table: t.cur.0,
                cookie: t.cur.1,
                metadata: k.metadata,
                regs: k.regs,
            });
            t.ops.push(*a);
        }
        _ => t.ops.push(*a),
    }
}

/// Translates `key` through `p` (see the module docs).
pub fn xlate(p: &Pipeline, key: &FlowKey) -> Translation {
    let mut t = Translation::default();
    let mut k = *key;
    let mut set = ActionSet::default();
    let mut table: u8 = 0;
    loop {
        t.tables[usize::from(table / 64)] |= 1 << (table % 64);
        t.rewrote |= t.modified;
        let Some(flow) = p.table(table).lookup_wc(&k, &mut t.mask) else {
            t.miss = true;
            t.miss_table = table;
            return t;
        };
        t.flows.push(Arc::clone(flow));
        t.cur = (table, flow.cookie);
        let ins = &flow.instructions;
        for a in &ins.apply {
            let expires = *a == Action::DecTtl && k.nw_ttl <= 1;
            apply(a, &mut k, &mut t);
            if expires {
                t.ttl_expired = true;
                return t;
            }
        }
        if ins.clear_actions {
            set = ActionSet::default();
        }
        for a in &ins.write {
            set.write(a);
        }
        if let Some((value, mask)) = ins.write_metadata {
            k.metadata = (k.metadata & !mask) | (value & mask);
            t.modified = true;
        }
        match ins.goto_table {
            Some(next) if next > table && next <= MAX_TABLE => table = next,
            _ => break,
        }
    }
    set.run(&mut k, &mut t);
    t
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::MatchField;
    use super::super::action::{Instructions, NoGroups};
    use super::super::pipeline::FlowMod;
    use super::*;

    fn mf(field: Field, value: u128, mask: Option<u128>) -> MatchField {
        MatchField { field, value, mask }
    }

    fn add(p: &mut Pipeline, fm: FlowMod) {
        p.flow_mod(&fm, &NoGroups, Instant::now()).unwrap();
    }

    fn ip_key(dst: u32, port: u16) -> FlowKey {
        let mut k = FlowKey {
            in_port: 1,
            eth_type: 0x0800,
            nw_proto: 6,
            nw_ttl: 64,
            tp_dst: port,
            ..FlowKey::default()
        };
        k.nw_dst[..4].copy_from_slice(&dst.to_be_bytes());
        k
    }

    #[test]
    fn default_pipeline_is_normal_with_an_empty_mask() {
        let p = Pipeline::learning_bridge(1, 10);
        let t = xlate(&p, &ip_key(1, 80));
        assert_eq!(t.ops, vec![Action::Normal]);
        assert_eq!(t.mask, FlowMask::all_wildcards());
        assert!(!t.miss);
        assert_eq!(t.flows.len(), 1);
    }

    #[test]
    fn goto_and_set_field_change_what_later_tables_see() {
        let mut p = Pipeline::new(1, 10);
        // Table 0: rewrite 10.0.0.1 → 10.0.0.2, tag reg0, go to table 1.
        add(
            &mut p,
            FlowMod::add(
                0,
                10,
                vec![
                    mf(Field::EthType, 0x0800, None),
                    mf(Field::IpDst, 0x0a00_0001, None),
                ],
                Instructions {
                    apply: vec![
                        Action::SetField {
                            field: Field::IpDst,
                            value: 0x0a00_0002,
                        },
                        Action::SetField {
                            field: Field::Reg(0),
                            value: 7,
                        },
                    ],
                    goto_table: Some(1),
                    ..Instructions::default()
                },
            ),
        );
        // Table 1: by the rewritten address and the register.
        add(
            &mut p,
            FlowMod::add(
                1,
                10,
                vec![
                    mf(Field::EthType, 0x0800, None),
                    mf(Field::IpDst, 0x0a00_0002, None),
                    mf(Field::Reg(0), 7, None),
                ],
                Instructions::apply(vec![Action::Output(3)]),
            ),
        );
        let t = xlate(&p, &ip_key(0x0a00_0001, 80));
        assert_eq!(
            t.ops,
            vec![
                Action::SetField {
                    field: Field::IpDst,
                    value: 0x0a00_0002
                },
                Action::Output(3)
            ]
        );
        assert_eq!(t.flows.len(), 2);
        assert_eq!(t.mask.bits.nw_dst[..4], [0xff; 4]);
        // Another address misses in table 0.
        let t = xlate(&p, &ip_key(0x0a00_0009, 80));
        assert!(t.miss);
        assert!(t.ops.is_empty());
    }

    #[test]
    fn action_set_runs_in_order_and_group_beats_output() {
        let mut p = Pipeline::new(1, 10);
        add(
            &mut p,
            FlowMod::add(
                0,
                1,
                vec![mf(Field::EthType, 0x0800, None)],
                Instructions {
                    write: vec![Action::Output(2), Action::DecTtl],
                    goto_table: Some(5),
                    ..Instructions::default()
                },
            ),
        );
        add(
            &mut p,
            FlowMod::add(
                5,
                1,
                Vec::new(),
                Instructions {
                    write: vec![Action::PushVlan(0x8100), Action::Output(4)],
                    ..Instructions::default()
                },
            ),
        );
        let t = xlate(&p, &ip_key(1, 1));
        assert_eq!(
            t.ops,
            vec![Action::PushVlan(0x8100), Action::DecTtl, Action::Output(4)]
        );
        assert_eq!(t.mask.bits.nw_ttl, 0xff);
    }
}
