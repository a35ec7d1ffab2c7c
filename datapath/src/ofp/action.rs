//! Actions and instructions of a flow, and their validation at insertion time.
//!
//! Everything that can be wrong with an action list is found by [`Instructions::validate`]
//! when the flow is added, never when a packet runs it: field writability and width,
//! prerequisites of `set_field`, `pop_vlan`, `dec_ttl` against the flow's match (and the
//! actions before them, e.g. a `push_vlan`), forward-only `goto_table`, port numbers in range.

use std::fmt;

use super::field::{Field, Prereq, prereq_met};
use super::{FlowError, FlowErrorKind};
use crate::flow::{ETH_TYPE_QINQ, ETH_TYPE_VLAN, FlowKey, VLAN_PRESENT};
use crate::switch::MAX_PORTS;

/// Why a packet went to the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketInReason {
    /// No flow matched (a table-miss flow sends it).
    NoMatch,
    /// An explicit `controller` action.
    Action,
    /// TTL expired in `dec_ttl`.
    InvalidTtl,
}

impl PacketInReason {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoMatch => "no_match",
            Self::Action => "action",
            Self::InvalidTtl => "invalid_ttl",
        }
    }
}

/// One action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send out of a port (never back out of the ingress port; use [`Action::InPort`]).
    Output(u32),
    /// Send back out of the ingress port.
    InPort,
    /// The learning-bridge behaviour (MAC learning, VLANs, flooding), decided per packet.
    Normal,
    /// Every port except the ingress port.
    Flood,
    /// Every port except the ingress port (OpenFlow ALL; same as flood here, no port is
    /// excluded from flooding).
    All,
    /// Send to subscribed controllers as packet-in.
    Controller {
        /// Bytes of the frame to include.
        max_len: u16,
        /// Reason given in the packet-in.
        reason: PacketInReason,
    },
    /// Write a field (packet header or pipeline metadata).
    SetField {
        /// The field.
        field: Field,
        /// Its new value.
        value: u128,
    },
    /// Push an outer 802.1Q (0x8100) or 802.1ad (0x88a8) tag; the new tag copies the VID and
    /// PCP of the current outer tag, or is 0 when there is none.
    PushVlan(u16),
    /// Remove the outer tag.
    PopVlan,
    /// Decrement the IP TTL / hop limit; a packet with TTL ≤ 1 is dropped (counted).
    DecTtl,
    /// Process through a group.
    Group(u32),
    /// Apply a meter.
    Meter(u32),
}

impl Action {
    /// The port this action outputs to, if it names one (for `out_port` filters).
    pub fn output_port(&self) -> Option<u32> {
        match self {
            Action::Output(p) => Some(*p),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Output(p) => write!(f, "output:{p}"),
            Action::InPort => f.write_str("in_port"),
            Action::Normal => f.write_str("normal"),
            Action::Flood => f.write_str("flood"),
            Action::All => f.write_str("all"),
            Action::Controller { max_len, reason } => {
                write!(
                    f,
                    "controller(max_len={max_len},reason={})",
                    reason.as_str()
                )
            }
            Action::SetField { field, value } => write!(f, "set_field:{value:#x}->{field}"),
            Action::PushVlan(t) => write!(f, "push_vlan:{t:#06x}"),
            Action::PopVlan => f.write_str("pop_vlan"),
            Action::DecTtl => f.write_str("dec_ttl"),
            Action::Group(g) => write!(f, "group:{g}"),
            Action::Meter(m) => write!(f, "meter:{m}"),
        }
    }
}

/// A flow's instructions (OpenFlow 1.3 semantics).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Instructions {
    /// Applied at once, in order; later tables see their effects.
    pub apply: Vec<Action>,
    /// Empties the action set before `write` is merged.
    pub clear_actions: bool,
    /// Merged into the action set (one action per kind; run when the pipeline ends).
    pub write: Vec<Action>,
    /// `metadata = (metadata & !mask) | (value & mask)`.
    pub write_metadata: Option<(u64, u64)>,
    /// Continue in this (later) table.
    pub goto_table: Option<u8>,
}

/// Largest table number.
pub const MAX_TABLE: u8 = 253;
/// Longest action list accepted (per instruction).
pub const MAX_ACTIONS: usize = 64;

/// What validation needs to know beyond the flow itself.
pub trait ValidationContext {
    /// Whether group `id` exists.
    fn group_exists(&self, id: u32) -> bool;
    /// Whether meter `id` exists.
    fn meter_exists(&self, id: u32) -> bool;
}

/// Validates with no groups or meters.
#[derive(Debug)]
pub struct NoGroups;

impl ValidationContext for NoGroups {
    fn group_exists(&self, _: u32) -> bool {
        false
    }
    fn meter_exists(&self, _: u32) -> bool {
        false
    }
}

fn err(kind: FlowErrorKind, at: String, message: impl Into<String>) -> FlowError {
    FlowError {
        kind,
        at,
        message: message.into(),
    }
}

impl Instructions {
    /// Instructions that apply `actions` and stop.
    pub fn apply(actions: Vec<Action>) -> Self {
        Self {
            apply: actions,
            ..Self::default()
        }
    }

    /// Every action (applied and written).
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.apply.iter().chain(self.write.iter())
    }

    /// Checks the instructions of a flow in `table` whose match is `(key, mask)`.
    ///
    /// # Errors
    /// The first problem found, with its place (`instructions.apply[2]`, …).
    pub fn validate(
        &self,
        table: u8,
        key: &FlowKey,
        mask: &FlowKey,
        ctx: &dyn ValidationContext,
    ) -> Result<(), FlowError> {
        if let Some(t) = self.goto_table {
            if t <= table {
                return Err(err(
                    FlowErrorKind::BadTable,
                    "instructions.goto_table".into(),
                    format!("goto_table must go forward: {t} is not after table {table}"),
                ));
            }
            if t > MAX_TABLE {
                return Err(err(
                    FlowErrorKind::BadTable,
                    "instructions.goto_table".into(),
                    format!("table {t} does not exist (tables are 0..={MAX_TABLE})"),
                ));
            }
        }
        for (name, list) in [("apply", &self.apply), ("write", &self.write)] {
            if list.len() > MAX_ACTIONS {
                return Err(err(
                    FlowErrorKind::BadAction,
                    format!("instructions.{name}"),
                    format!("{} actions (max {MAX_ACTIONS})", list.len()),
                ));
            }
        }
        // The packet's match as the actions see it: applied actions change it in order.
        let mut k = *key;
        let mut m = *mask;
        for (i, a) in self.apply.iter().enumerate() {
            check_action(a, &mut k, &mut m, ctx, &format!("instructions.apply[{i}]"))?;
        }
        // The action set runs after everything applied here (and possibly in later tables);
        // check it against the match as modified by this flow's applied actions.
        let mut seen = Vec::new();
        for (i, a) in self.write.iter().enumerate() {
            let at = format!("instructions.write[{i}]");
            let kind = std::mem::discriminant(a);
            let set_kind = match a {
                Action::SetField { field, .. } => Some(*field),
                _ => None,
            };
            if seen.contains(&(kind, set_kind)) {
                return Err(err(
                    FlowErrorKind::BadAction,
                    at,
                    "the action set holds one action of each kind (one set_field per field)",
                ));
            }
            seen.push((kind, set_kind));
            check_action(a, &mut k, &mut m, ctx, &at)?;
        }
        Ok(())
    }
}

fn check_action(
    a: &Action,
    k: &mut FlowKey,
    m: &mut FlowKey,
    ctx: &dyn ValidationContext,
    at: &str,
) -> Result<(), FlowError> {
    match *a {
        Action::Output(p) => {
            if p == 0 || p as usize > MAX_PORTS {
                return Err(err(
                    FlowErrorKind::BadPort,
                    at.into(),
                    format!("port {p} is out of range (1..={MAX_PORTS})"),
                ));
            }
        }
        Action::InPort | Action::Normal | Action::Flood | Action::All => {}
        Action::Controller { .. } => {}
        Action::SetField { field, value } => {
            if !field.writable() {
                return Err(err(
                    FlowErrorKind::BadAction,
                    at.into(),
                    format!("{field} cannot be written by set_field"),
                ));
            }
            if value > field.max_value() {
                return Err(err(
                    FlowErrorKind::BadAction,
                    at.into(),
                    format!(
                        "value {value:#x} does not fit {field} ({} bits)",
                        field.bits()
                    ),
                ));
            }
            let p = match field {
                // Writing the VID needs a tag to write it into.
                Field::VlanVid => Prereq::Vlan,
                f => f.prereq(),
            };
            if !prereq_met(p, k, m) {
                return Err(err(
                    FlowErrorKind::BadPrereq,
                    at.into(),
                    format!("set_field of {field} requires the flow to match {p}"),
                ));
            }
            let value = if field == Field::VlanVid {
                // Keep the present bit: set_field writes the VID of an existing tag.
                value | u128::from(VLAN_PRESENT)
            } else {
                value
            };
            field.set(k, value);
            field.set(m, field.max_value());
        }
        Action::PushVlan(tpid) => {
            if tpid != ETH_TYPE_VLAN && tpid != ETH_TYPE_QINQ {
                return Err(err(
                    FlowErrorKind::BadAction,
                    at.into(),
                    format!("push_vlan takes TPID 0x8100 or 0x88a8, not {tpid:#06x}"),
                ));
            }
            Field::VlanVid.set(k, Field::VlanVid.get(k) | u128::from(VLAN_PRESENT));
            Field::VlanVid.set(m, Field::VlanVid.get(m) | u128::from(VLAN_PRESENT));
        }
        Action::PopVlan => {
            if !prereq_met(Prereq::Vlan, k, m) {
                return Err(err(
                    FlowErrorKind::BadPrereq,
                    at.into(),
                    "pop_vlan requires the flow to match a VLAN tag (vlan_vid) or push one first",
                ));
            }
            // What is under the tag is unknown here: the VLAN fields become wildcards.
            Field::VlanVid.set(m, 0);
            Field::VlanPcp.set(m, 0);
        }
        Action::DecTtl => {
            if !prereq_met(Prereq::Ip, k, m) {
                return Err(err(
                    FlowErrorKind::BadPrereq,
                    at.into(),
                    "dec_ttl requires the flow to match eth_type=0x0800 or 0x86dd",
                ));
            }
        }
        Action::Group(g) => {
            if !ctx.group_exists(g) {
                return Err(err(
                    FlowErrorKind::UnknownGroup,
                    at.into(),
                    format!("group {g} does not exist"),
                ));
            }
        }
        Action::Meter(id) => {
            if !ctx.meter_exists(id) {
                return Err(err(
                    FlowErrorKind::UnknownMeter,
                    at.into(),
                    format!("meter {id} does not exist"),
                ));
            }
        }
    }
    Ok(())
}
