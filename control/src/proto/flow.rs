//! Flow messages (`flow_mod`, `flow_dump`, `flow_aggregate`, `table_stats`, `barrier`,
//! `bundle`, and the multi-message bundles `bundle_open`, `bundle_add`, `bundle_commit`,
//! `bundle_discard`) and the conversions between their JSON form and the datapath's flow model.
//!
//! JSON form (see `docs/control-protocol.md`):
//!
//! - a match is an object from canonical field name to value: a number (exact) or a string in
//!   the field's syntax (`"10.1.0.0/16"`, `"aa:bb:cc:dd:ee:ff"`, `"0x50/0xfff0"`, `"+trk+est"`),
//!   read by [`crate::flowtext::parse_value`];
//! - an action is a string when it has no argument (`"normal"`, `"pop_vlan"`) or an object with
//!   one key (`{"output": 2}`, `{"set_field": {"ip_dst": "10.0.0.9"}}`);
//! - instructions are `{"apply": [...], "clear_actions": true, "write": [...],
//!   "write_metadata": "0x1/0xff", "goto_table": 1}`, or the shorthand list `actions` in a
//!   flow-mod, which may also hold the instruction items `{"goto_table": N}`,
//!   `{"write_metadata": V}`, `"clear_actions"` and `{"write_actions": [...]}`.
//!
//! Errors found by the datapath (`match.tcp_dst`, `instructions.apply[2]`) are given back as
//! protocol paths (`body.match.tcp_dst`, `body.actions[2]`, `body.ops[3].match.ip_dst`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use datapath::ofp::action::{Action, Instructions, MAX_TABLE, PacketInReason};
use datapath::ofp::field::Field;
use datapath::ofp::pipeline::{Flow, FlowFilter, FlowFlags, FlowMod, FlowModCommand};
use datapath::ofp::{FlowError, FlowErrorKind, MatchField};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::bundle_op::BundleOpDesc;
use super::codec::quote;
use super::error::{ErrorCode, ProtoError};
use crate::flowtext::{self, DEFAULT_CONTROLLER_MAX_LEN, DEFAULT_PRIORITY};

/// Most flow-mods in one `bundle`, and staged in one multi-message bundle.
pub const MAX_BUNDLE_OPS: usize = 200_000;

/// Most multi-message bundles one session may have open at once.
pub const MAX_OPEN_BUNDLES: usize = 4;

/// A field value: a number (exact) or a string in the field's syntax.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FieldValue {
    /// An exact integer value.
    Num(u64),
    /// Text: `"10.0.0.0/8"`, `"0x800"`, `"aa:bb:cc:dd:ee:ff"`, `"+trk"`.
    Str(String),
}

impl FieldValue {
    /// The canonical JSON form of `value`/`mask` of `field`: a number when the text form is a
    /// plain decimal, else the text.
    pub fn of(field: Field, value: u128, mask: Option<u128>) -> Self {
        let text = flowtext::format_value(field, value, mask);
        match text.parse::<u64>() {
            Ok(n) if !text.starts_with('0') || text == "0" => Self::Num(n),
            _ => Self::Str(text),
        }
    }

    /// Parses the value as one of `field`.
    ///
    /// # Errors
    /// Not a value of this field's syntax.
    pub fn parse(&self, field: Field) -> Result<(u128, Option<u128>), String> {
        match self {
            Self::Num(n) => Ok((u128::from(*n), None)),
            Self::Str(s) => flowtext::parse_value(field, s),
        }
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(n) => write!(f, "{n}"),
            Self::Str(s) => f.write_str(s),
        }
    }
}

impl From<u64> for FieldValue {
    fn from(n: u64) -> Self {
        Self::Num(n)
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}

impl Serialize for FieldValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Num(n) => s.serialize_u64(*n),
            Self::Str(t) => s.serialize_str(t),
        }
    }
}

struct FieldValueVisitor;

impl Visitor<'_> for FieldValueVisitor {
    type Value = FieldValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer or a string")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<FieldValue, E> {
        Ok(FieldValue::Num(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<FieldValue, E> {
        u64::try_from(v)
            .map(FieldValue::Num)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldValue, E> {
        Ok(FieldValue::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<FieldValue, E> {
        Ok(FieldValue::Str(v))
    }
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldValueVisitor)
    }
}

/// A match: canonical field name → value.
pub type MatchDesc = BTreeMap<String, FieldValue>;

/// The operation of a `flow_mod`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowCommand {
    /// Add a flow (replacing one with the same match and priority).
    #[default]
    Add,
    /// Change the instructions of the flows the match selects (non-strict).
    Modify,
    /// Change the instructions of the flow with exactly this match and priority.
    ModifyStrict,
    /// Remove the flows the match selects (non-strict).
    Delete,
    /// Remove the flow with exactly this match and priority.
    DeleteStrict,
}

impl FlowCommand {
    /// The datapath command.
    pub fn to_datapath(self) -> FlowModCommand {
        match self {
            Self::Add => FlowModCommand::Add,
            Self::Modify => FlowModCommand::Modify,
            Self::ModifyStrict => FlowModCommand::ModifyStrict,
            Self::Delete => FlowModCommand::Delete,
            Self::DeleteStrict => FlowModCommand::DeleteStrict,
        }
    }

    /// From the datapath command.
    pub fn from_datapath(c: FlowModCommand) -> Self {
        match c {
            FlowModCommand::Add => Self::Add,
            FlowModCommand::Modify => Self::Modify,
            FlowModCommand::ModifyStrict => Self::ModifyStrict,
            FlowModCommand::Delete => Self::Delete,
            FlowModCommand::DeleteStrict => Self::DeleteStrict,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u16(n: &u16) -> bool {
    *n == 0
}

/// Flow flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowFlagsDesc {
    /// Notify controllers when the flow is removed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub send_flow_rem: bool,
    /// `add`: refuse if a flow of the same priority overlaps.
    #[serde(default, skip_serializing_if = "is_false")]
    pub check_overlap: bool,
    /// `modify`: reset the counters.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reset_counts: bool,
}

impl FlowFlagsDesc {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl From<FlowFlags> for FlowFlagsDesc {
    fn from(f: FlowFlags) -> Self {
        Self {
            send_flow_rem: f.send_flow_rem,
            check_overlap: f.check_overlap,
            reset_counts: f.reset_counts,
        }
    }
}

impl From<FlowFlagsDesc> for FlowFlags {
    fn from(f: FlowFlagsDesc) -> Self {
        Self {
            send_flow_rem: f.send_flow_rem,
            check_overlap: f.check_overlap,
            reset_counts: f.reset_counts,
        }
    }
}

/// Arguments of the `controller` action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerDesc {
    /// Bytes of the frame to send (default 65535: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<u16>,
    /// `action` (default), `no_match` or `invalid_ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An action (or, in a flow-mod's `actions` shorthand, an instruction).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionDesc {
    /// `{"output": PORT}`.
    Output(u32),
    /// `"in_port"`: back out of the ingress port.
    InPort,
    /// `"normal"`: the learning bridge.
    Normal,
    /// `"flood"`.
    Flood,
    /// `"all"`.
    All,
    /// `{"controller": {"max_len": N, "reason": "action"}}`.
    Controller(ControllerDesc),
    /// `{"set_field": {"FIELD": VALUE}}` (exactly one field).
    SetField(MatchDesc),
    /// `{"push_vlan": "0x8100"}` (or the number).
    PushVlan(FieldValue),
    /// `"pop_vlan"`.
    PopVlan,
    /// `"dec_ttl"`.
    DecTtl,
    /// `{"group": ID}`.
    Group(u32),
    /// `{"meter": ID}`.
    Meter(u32),
    /// `{"goto_table": N}` (shorthand list only).
    GotoTable(u8),
    /// `{"write_metadata": "V/M"}` (shorthand list only).
    WriteMetadata(FieldValue),
    /// `"clear_actions"` (shorthand list only).
    ClearActions,
    /// `{"write_actions": [...]}` (shorthand list only).
    WriteActions(Vec<ActionDesc>),
}

/// A flow's instructions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstructionsDesc {
    /// Actions applied at once, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apply: Vec<ActionDesc>,
    /// Empty the action set first.
    #[serde(default, skip_serializing_if = "is_false")]
    pub clear_actions: bool,
    /// Actions merged into the action set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write: Vec<ActionDesc>,
    /// `"V"` or `"V/M"` (64 bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_metadata: Option<FieldValue>,
    /// Continue in this later table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goto_table: Option<u8>,
}

/// `flow_mod`: add, modify or delete flows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowModRequest {
    /// What to do.
    pub command: FlowCommand,
    /// Table; omitted: 0 for `add`, every table for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u8>,
    /// Priority; omitted: 32768.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    /// The match; omitted: every packet.
    #[serde(rename = "match", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: MatchDesc,
    /// Instructions (add, modify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<InstructionsDesc>,
    /// Shorthand for `instructions` (add, modify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<ActionDesc>>,
    /// Cookie of a new flow; selection value for modify/delete.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub cookie: u64,
    /// Cookie bits compared by modify/delete (0: any).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub cookie_mask: u64,
    /// Seconds without a hit before removal (add).
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub idle_timeout: u16,
    /// Seconds before removal (add).
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub hard_timeout: u16,
    /// Flags.
    #[serde(default, skip_serializing_if = "FlowFlagsDesc::is_default")]
    pub flags: FlowFlagsDesc,
    /// Modify/delete only flows that output to this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_port: Option<u32>,
}

impl FlowModRequest {
    /// A request for `command` with every default and no match.
    pub fn new(command: FlowCommand) -> Self {
        Self {
            command,
            table: None,
            priority: None,
            fields: MatchDesc::new(),
            instructions: None,
            actions: None,
            cookie: 0,
            cookie_mask: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: FlowFlagsDesc::default(),
            out_port: None,
        }
    }
}

/// `flow_dump`, `flow_aggregate`: which flows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowFilterRequest {
    /// Only this table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u8>,
    /// Flows whose match is this or more specific (strict: exactly this).
    #[serde(rename = "match", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: MatchDesc,
    /// Cookie value compared under `cookie_mask`.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub cookie: u64,
    /// Cookie bits compared (0: any cookie).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub cookie_mask: u64,
    /// Only flows that output to this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_port: Option<u32>,
    /// Exactly this match and `priority`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub strict: bool,
    /// Priority for `strict` (default 32768).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
}

/// `bundle`: flow, group and meter mods applied all or nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRequest {
    /// The ops, in order (at most [`MAX_BUNDLE_OPS`]): flow-mod bodies, `{"group_mod": …}`,
    /// `{"meter_mod": …}`.
    pub ops: Vec<BundleOpDesc>,
}

/// `bundle_open`, `bundle_commit`, `bundle_discard`: the bundle they act on.
///
/// A multi-message bundle is opened, filled by any number of `bundle_add`s and then committed
/// (applied all or nothing, like `bundle`) or discarded. It belongs to the session that opened
/// it: closing the session discards it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleIdRequest {
    /// The bundle, chosen by the client (any `u32`; unique among the session's open bundles).
    pub bundle_id: u32,
}

/// `bundle_add`: ops appended to an open bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleAddRequest {
    /// The open bundle.
    pub bundle_id: u32,
    /// Ops appended, in order, of the forms of [`BundleRequest::ops`] (the bundle holds at
    /// most [`MAX_BUNDLE_OPS`] in all).
    pub ops: Vec<BundleOpDesc>,
}

/// `bundle_add_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleAddReply {
    /// Ops staged in the bundle so far (this message's included).
    pub ops: u64,
}

/// `flow_mod_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowModReply {
    /// Flows added.
    pub added: u64,
    /// Flows whose instructions changed.
    pub modified: u64,
    /// Flows removed (including one replaced by an add).
    pub removed: u64,
}

/// `bundle_reply`: totals over the ops.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleReply {
    /// Ops applied (flow, group and meter mods).
    pub ops: u64,
    /// Flows added.
    pub added: u64,
    /// Flows modified.
    pub modified: u64,
    /// Flows removed: by flow-mods, and with the groups and meters the bundle deleted.
    pub removed: u64,
}

/// A flow in `flow_dump_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowDesc {
    /// Table.
    pub table: u8,
    /// Priority.
    pub priority: u16,
    /// The match (canonical values).
    #[serde(rename = "match", default)]
    pub fields: MatchDesc,
    /// Instructions.
    #[serde(default)]
    pub instructions: InstructionsDesc,
    /// Cookie.
    #[serde(default)]
    pub cookie: u64,
    /// Idle timeout, seconds (0: none).
    #[serde(default)]
    pub idle_timeout: u16,
    /// Hard timeout, seconds (0: none).
    #[serde(default)]
    pub hard_timeout: u16,
    /// Flags.
    #[serde(default)]
    pub flags: FlowFlagsDesc,
    /// Packets counted.
    #[serde(default)]
    pub packets: u64,
    /// Bytes counted.
    #[serde(default)]
    pub bytes: u64,
    /// Milliseconds since the flow was added.
    #[serde(default)]
    pub duration_ms: u64,
    /// Milliseconds since the last hit (absent: never hit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<u64>,
}

/// `flow_dump_reply` (multipart).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowDumpReply {
    /// Flows, by table, priority (highest first), age.
    pub flows: Vec<FlowDesc>,
    /// More parts follow with the same xid.
    #[serde(default)]
    pub more: bool,
}

/// `flow_aggregate_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowAggregateReply {
    /// Flows selected.
    pub flows: u64,
    /// Their packets.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// One table in `table_stats_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStatsDesc {
    /// Table number.
    pub table: u8,
    /// Flows in it.
    pub active: u64,
    /// Distinct masks (classifier subtables).
    pub subtables: u64,
    /// Packets looked up in it (matched + missed).
    #[serde(default)]
    pub lookups: u64,
    /// Packets that matched one of its current flows.
    #[serde(default)]
    pub matched: u64,
}

/// `table_stats_reply`: every non-empty table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStatsReply {
    /// Non-empty tables, by number.
    pub tables: Vec<TableStatsDesc>,
    /// Capacity of each table.
    #[serde(default)]
    pub max_flows_per_table: u64,
}

// ---------------------------------------------------------------------------------------------
// JSON → datapath
// ---------------------------------------------------------------------------------------------

fn bad(path: impl Into<String>, message: impl Into<String>) -> ProtoError {
    ProtoError::bad_field(path, message)
}

fn field_named(name: &str, path: &str) -> Result<Field, ProtoError> {
    Field::from_name(name).ok_or_else(|| {
        bad(
            path,
            format!(
                "unknown field {} (see docs/flows.md for the names)",
                quote(name)
            ),
        )
    })
}

/// The match of a request; `path` is where it is (`body.match`).
///
/// # Errors
/// `bad_field` on `path.FIELD` for an unknown name or a value that does not parse.
pub fn match_from_desc(m: &MatchDesc, path: &str) -> Result<Vec<MatchField>, ProtoError> {
    m.iter()
        .map(|(name, v)| {
            let at = format!("{path}.{name}");
            let field = field_named(name, &at)?;
            let (value, mask) = v.parse(field).map_err(|e| bad(&at, e))?;
            Ok(MatchField { field, value, mask })
        })
        .collect()
}

/// The JSON form of a match.
pub fn match_to_desc(fields: &[MatchField]) -> MatchDesc {
    fields
        .iter()
        .map(|m| (m.field.name(), FieldValue::of(m.field, m.value, m.mask)))
        .collect()
}

fn parse_u16(v: &FieldValue, path: &str, what: &str) -> Result<u16, ProtoError> {
    let n = match v {
        FieldValue::Num(n) => u128::from(*n),
        FieldValue::Str(s) => flowtext::parse_int(s).map_err(|e| bad(path, e))?,
    };
    u16::try_from(n).map_err(|_| bad(path, format!("{what} {n} is out of range")))
}

/// One action; `path` is where it is (`body.instructions.apply[2]`).
///
/// # Errors
/// `bad_field` for malformed arguments or an instruction where an action is expected.
pub fn action_from_desc(a: &ActionDesc, path: &str) -> Result<Action, ProtoError> {
    Ok(match a {
        ActionDesc::Output(p) => Action::Output(*p),
        ActionDesc::InPort => Action::InPort,
        ActionDesc::Normal => Action::Normal,
        ActionDesc::Flood => Action::Flood,
        ActionDesc::All => Action::All,
        ActionDesc::Controller(c) => Action::Controller {
            max_len: c.max_len.unwrap_or(DEFAULT_CONTROLLER_MAX_LEN),
            reason: match c.reason.as_deref() {
                None | Some("action") => PacketInReason::Action,
                Some("no_match") => PacketInReason::NoMatch,
                Some("invalid_ttl") => PacketInReason::InvalidTtl,
                Some(other) => {
                    return Err(bad(
                        format!("{path}.controller.reason"),
                        format!(
                            "unknown reason {}, expected `action`, `no_match` or `invalid_ttl`",
                            quote(other)
                        ),
                    ));
                }
            },
        },
        ActionDesc::SetField(m) => {
            let at = format!("{path}.set_field");
            let mut it = m.iter();
            let (Some((name, v)), None) = (it.next(), it.next()) else {
                return Err(bad(
                    at,
                    "set_field takes exactly one field: {\"FIELD\": VALUE}",
                ));
            };
            let at = format!("{at}.{name}");
            let field = field_named(name, &at)?;
            let (value, mask) = v.parse(field).map_err(|e| bad(&at, e))?;
            if mask.is_some() {
                return Err(bad(at, "set_field takes no mask"));
            }
            Action::SetField { field, value }
        }
        ActionDesc::PushVlan(v) => {
            Action::PushVlan(parse_u16(v, &format!("{path}.push_vlan"), "TPID")?)
        }
        ActionDesc::PopVlan => Action::PopVlan,
        ActionDesc::DecTtl => Action::DecTtl,
        ActionDesc::Group(g) => Action::Group(*g),
        ActionDesc::Meter(m) => Action::Meter(*m),
        ActionDesc::GotoTable(_)
        | ActionDesc::WriteMetadata(_)
        | ActionDesc::ClearActions
        | ActionDesc::WriteActions(_) => {
            return Err(bad(
                path,
                "an instruction, not an action: allowed in the `actions` shorthand only",
            ));
        }
    })
}

/// The JSON form of an action.
pub fn action_to_desc(a: &Action) -> ActionDesc {
    match *a {
        Action::Output(p) => ActionDesc::Output(p),
        Action::InPort => ActionDesc::InPort,
        Action::Normal => ActionDesc::Normal,
        Action::Flood => ActionDesc::Flood,
        Action::All => ActionDesc::All,
        Action::Controller { max_len, reason } => ActionDesc::Controller(ControllerDesc {
            max_len: Some(max_len),
            reason: Some(reason.as_str().to_owned()),
        }),
        Action::SetField { field, value } => ActionDesc::SetField(MatchDesc::from([(
            field.name(),
            FieldValue::of(field, value, None),
        )])),
        Action::PushVlan(t) => ActionDesc::PushVlan(FieldValue::Str(format!("{t:#06x}"))),
        Action::PopVlan => ActionDesc::PopVlan,
        Action::DecTtl => ActionDesc::DecTtl,
        Action::Group(g) => ActionDesc::Group(g),
        Action::Meter(m) => ActionDesc::Meter(m),
    }
}

fn metadata(v: &FieldValue, path: &str) -> Result<(u64, u64), ProtoError> {
    let (value, mask) = v.parse(Field::Metadata).map_err(|e| bad(path, e))?;
    let value = u64::try_from(value).map_err(|_| bad(path, "metadata is 64 bits"))?;
    let mask = u64::try_from(mask.unwrap_or_else(|| u128::from(u64::MAX)))
        .map_err(|_| bad(path, "the metadata mask is 64 bits"))?;
    Ok((value, mask))
}

/// Instructions from their JSON object; `path` is where it is (`body.instructions`).
///
/// # Errors
/// `bad_field` with the path of the offending element.
pub fn instructions_from_desc(
    d: &InstructionsDesc,
    path: &str,
) -> Result<Instructions, ProtoError> {
    let list = |name: &str, l: &[ActionDesc]| -> Result<Vec<Action>, ProtoError> {
        l.iter()
            .enumerate()
            .map(|(i, a)| action_from_desc(a, &format!("{path}.{name}[{i}]")))
            .collect()
    };
    Ok(Instructions {
        apply: list("apply", &d.apply)?,
        clear_actions: d.clear_actions,
        write: list("write", &d.write)?,
        write_metadata: d
            .write_metadata
            .as_ref()
            .map(|v| metadata(v, &format!("{path}.write_metadata")))
            .transpose()?,
        goto_table: d.goto_table,
    })
}

/// The JSON form of instructions.
pub fn instructions_to_desc(ins: &Instructions) -> InstructionsDesc {
    InstructionsDesc {
        apply: ins.apply.iter().map(action_to_desc).collect(),
        clear_actions: ins.clear_actions,
        write: ins.write.iter().map(action_to_desc).collect(),
        write_metadata: ins.write_metadata.map(|(v, m)| {
            FieldValue::Str(if m == u64::MAX {
                format!("{v:#x}")
            } else {
                format!("{v:#x}/{m:#x}")
            })
        }),
        goto_table: ins.goto_table,
    }
}

/// Where the parts of an `actions` shorthand list were, to name them in errors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Shorthand {
    /// List index of each applied action.
    apply: Vec<usize>,
    /// List index of `write_actions`.
    write: Option<usize>,
    /// List index of `goto_table`.
    goto: Option<usize>,
    /// List index of `write_metadata`.
    write_metadata: Option<usize>,
}

/// Turns datapath error locations (`match.tcp_dst`, `instructions.apply[2]`) into protocol
/// paths of one request (`body.match.tcp_dst`, `body.actions[3]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathMap {
    prefix: String,
    shorthand: Option<Shorthand>,
}

impl PathMap {
    /// Paths under `prefix` (`body`, `body.ops[3]`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            shorthand: None,
        }
    }

    /// The same map under another prefix (`bundle.ops[12345]`); an empty prefix keeps a
    /// staged op's map small until an error needs it.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The protocol path of datapath location `at`.
    pub fn map(&self, at: &str) -> String {
        let p = &self.prefix;
        let Some(sh) = &self.shorthand else {
            return format!("{p}.{at}");
        };
        let index = |s: &str, prefix: &str| -> Option<usize> {
            s.strip_prefix(prefix)?.strip_suffix(']')?.parse().ok()
        };
        if let Some(i) = index(at, "instructions.apply[")
            && let Some(j) = sh.apply.get(i)
        {
            return format!("{p}.actions[{j}]");
        }
        if let Some(i) = index(at, "instructions.write[")
            && let Some(j) = sh.write
        {
            return format!("{p}.actions[{j}].write_actions[{i}]");
        }
        match (at, sh.goto, sh.write_metadata, sh.write) {
            ("instructions.goto_table", Some(j), _, _)
            | ("instructions.write_metadata", _, Some(j), _)
            | ("instructions.write", _, _, Some(j)) => format!("{p}.actions[{j}]"),
            _ if at.starts_with("instructions") => format!("{p}.actions"),
            _ => format!("{p}.{at}"),
        }
    }

    /// Heap bytes this map holds (its prefix and the shorthand's index list), for the
    /// staging budget of multi-message bundles.
    pub fn heap_bytes(&self) -> usize {
        self.prefix.capacity()
            + self
                .shorthand
                .as_ref()
                .map_or(0, |sh| sh.apply.capacity() * size_of::<usize>())
    }

    /// Frees spare capacity (a staged op is kept until its bundle is committed).
    pub fn shrink_to_fit(&mut self) {
        self.prefix.shrink_to_fit();
        if let Some(sh) = self.shorthand.as_mut() {
            sh.apply.shrink_to_fit();
        }
    }

    /// The protocol error for a datapath flow error.
    pub fn error(&self, e: &FlowError) -> ProtoError {
        let field = self.map(&e.at);
        let code = match e.kind {
            // A prerequisite of an action (set_field, pop_vlan, dec_ttl) is the action's fault.
            FlowErrorKind::BadPrereq if e.at.starts_with("instructions") => ErrorCode::BadAction,
            FlowErrorKind::BadMatch | FlowErrorKind::BadPrereq | FlowErrorKind::BadMask => {
                ErrorCode::BadMatch
            }
            FlowErrorKind::BadAction | FlowErrorKind::BadPort => ErrorCode::BadAction,
            FlowErrorKind::BadTable if e.at == "table" => ErrorCode::BadField,
            FlowErrorKind::BadTable => ErrorCode::BadAction,
            FlowErrorKind::UnknownGroup | FlowErrorKind::UnknownMeter => ErrorCode::NotFound,
            FlowErrorKind::TableFull => ErrorCode::TableFull,
            FlowErrorKind::Overlap => ErrorCode::Overlap,
            FlowErrorKind::Unsupported => ErrorCode::Unsupported,
            FlowErrorKind::Exists => ErrorCode::Exists,
        };
        ProtoError::field(code, field, e.message.clone())
    }
}

fn shorthand_instructions(
    list: &[ActionDesc],
    path: &str,
) -> Result<(Instructions, Shorthand), ProtoError> {
    let mut ins = Instructions::default();
    let mut sh = Shorthand::default();
    for (j, a) in list.iter().enumerate() {
        let at = format!("{path}[{j}]");
        let twice = |what: &str| Err(bad(&at, format!("{what} given twice")));
        match a {
            ActionDesc::GotoTable(t) => {
                if sh.goto.is_some() {
                    return twice("goto_table");
                }
                ins.goto_table = Some(*t);
                sh.goto = Some(j);
            }
            ActionDesc::WriteMetadata(v) => {
                if sh.write_metadata.is_some() {
                    return twice("write_metadata");
                }
                ins.write_metadata = Some(metadata(v, &format!("{at}.write_metadata"))?);
                sh.write_metadata = Some(j);
            }
            ActionDesc::ClearActions => {
                if ins.clear_actions {
                    return twice("clear_actions");
                }
                ins.clear_actions = true;
            }
            ActionDesc::WriteActions(w) => {
                if sh.write.is_some() {
                    return twice("write_actions");
                }
                ins.write = w
                    .iter()
                    .enumerate()
                    .map(|(i, a)| action_from_desc(a, &format!("{at}.write_actions[{i}]")))
                    .collect::<Result<_, _>>()?;
                sh.write = Some(j);
            }
            a => {
                if sh.goto.is_some() {
                    return Err(bad(&at, "actions must come before goto_table"));
                }
                ins.apply.push(action_from_desc(a, &at)?);
                sh.apply.push(j);
            }
        }
    }
    Ok((ins, sh))
}

fn check_table(t: Option<u8>, path: &str) -> Result<(), ProtoError> {
    match t {
        Some(t) if t > MAX_TABLE => Err(bad(
            path,
            format!("table {t} does not exist (tables are 0..={MAX_TABLE})"),
        )),
        _ => Ok(()),
    }
}

impl FlowModRequest {
    /// The datapath flow-mod, and how to name its parts in errors; `prefix` is the request's
    /// path (`body`, `body.ops[3]`).
    ///
    /// # Errors
    /// `bad_field` naming the offending part.
    pub fn to_flow_mod(&self, prefix: &str) -> Result<(FlowMod, PathMap), ProtoError> {
        let mut map = PathMap::new(prefix);
        check_table(self.table, &format!("{prefix}.table"))?;
        let fields = match_from_desc(&self.fields, &format!("{prefix}.match"))?;
        let mutating = matches!(
            self.command,
            FlowCommand::Add | FlowCommand::Modify | FlowCommand::ModifyStrict
        );
        let instructions = match (&self.instructions, &self.actions) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    format!("{prefix}.actions"),
                    "give `instructions` or its shorthand `actions`, not both",
                ));
            }
            (Some(_), None) | (None, Some(_)) if !mutating => {
                let which = if self.actions.is_some() {
                    "actions"
                } else {
                    "instructions"
                };
                return Err(bad(
                    format!("{prefix}.{which}"),
                    "delete takes no instructions",
                ));
            }
            (Some(d), None) => instructions_from_desc(d, &format!("{prefix}.instructions"))?,
            (None, Some(list)) => {
                let (ins, sh) = shorthand_instructions(list, &format!("{prefix}.actions"))?;
                map.shorthand = Some(sh);
                ins
            }
            (None, None) => Instructions::default(),
        };
        let table = match (self.table, self.command) {
            (None, FlowCommand::Add) => Some(0),
            (t, _) => t,
        };
        Ok((
            FlowMod {
                command: self.command.to_datapath(),
                table,
                priority: self.priority.unwrap_or(DEFAULT_PRIORITY),
                fields,
                instructions,
                cookie: self.cookie,
                cookie_mask: self.cookie_mask,
                idle_timeout: self.idle_timeout,
                hard_timeout: self.hard_timeout,
                flags: self.flags.into(),
                out_port: self.out_port,
            },
            map,
        ))
    }

    /// The canonical request for a datapath flow-mod (instructions as an object; none for
    /// delete).
    pub fn from_flow_mod(fm: &FlowMod) -> Self {
        let mutating = matches!(
            fm.command,
            FlowModCommand::Add | FlowModCommand::Modify | FlowModCommand::ModifyStrict
        );
        Self {
            command: FlowCommand::from_datapath(fm.command),
            table: fm.table,
            priority: (fm.priority != DEFAULT_PRIORITY).then_some(fm.priority),
            fields: match_to_desc(&fm.fields),
            instructions: mutating.then(|| instructions_to_desc(&fm.instructions)),
            actions: None,
            cookie: fm.cookie,
            cookie_mask: fm.cookie_mask,
            idle_timeout: fm.idle_timeout,
            hard_timeout: fm.hard_timeout,
            flags: fm.flags.into(),
            out_port: fm.out_port,
        }
    }
}

impl FlowFilterRequest {
    /// The datapath filter; `prefix` is the request's path (`body`).
    ///
    /// # Errors
    /// `bad_field` naming the offending part.
    pub fn to_filter(&self, prefix: &str) -> Result<FlowFilter, ProtoError> {
        check_table(self.table, &format!("{prefix}.table"))?;
        if self.priority.is_some() && !self.strict {
            return Err(bad(
                format!("{prefix}.priority"),
                "priority selects flows only with \"strict\": true",
            ));
        }
        Ok(FlowFilter {
            table: self.table,
            fields: match_from_desc(&self.fields, &format!("{prefix}.match"))?,
            strict: self
                .strict
                .then(|| self.priority.unwrap_or(DEFAULT_PRIORITY)),
            cookie: self.cookie,
            cookie_mask: self.cookie_mask,
            out_port: self.out_port,
        })
    }

    /// The filter selecting what a (delete) flow-mod selects.
    pub fn from_flow_mod(fm: &FlowMod) -> Self {
        let strict = matches!(
            fm.command,
            FlowModCommand::DeleteStrict | FlowModCommand::ModifyStrict
        );
        Self {
            table: fm.table,
            fields: match_to_desc(&fm.fields),
            cookie: fm.cookie,
            cookie_mask: fm.cookie_mask,
            out_port: fm.out_port,
            strict,
            priority: strict.then_some(fm.priority),
        }
    }
}

impl FlowDesc {
    /// A flow as dumped; `clock_ms` is the switch clock ([`datapath::switch::Switch::clock_ms`])
    /// and `now` the current instant.
    pub fn from_flow(f: &Flow, clock_ms: u64, now: Instant) -> Self {
        let (packets, bytes) = f.stats.totals();
        let last = f.stats.last_hit_ms();
        Self {
            table: f.table,
            priority: f.priority,
            fields: match_to_desc(&f.fields),
            instructions: instructions_to_desc(&f.instructions),
            cookie: f.cookie,
            idle_timeout: f.idle_timeout,
            hard_timeout: f.hard_timeout,
            flags: f.flags.into(),
            packets,
            bytes,
            duration_ms: u64::try_from(now.saturating_duration_since(f.created).as_millis())
                .unwrap_or(u64::MAX),
            idle_ms: (last != 0).then(|| clock_ms.saturating_sub(last)),
        }
    }

    /// The `add` flow-mod that recreates this flow (for printing it as flow text).
    ///
    /// # Errors
    /// A match or action this version cannot read (from a newer server).
    pub fn to_flow_mod(&self) -> Result<FlowMod, ProtoError> {
        let mut fm = FlowMod::add(
            self.table,
            self.priority,
            match_from_desc(&self.fields, "match")?,
            instructions_from_desc(&self.instructions, "instructions")?,
        );
        fm.cookie = self.cookie;
        fm.idle_timeout = self.idle_timeout;
        fm.hard_timeout = self.hard_timeout;
        fm.flags = self.flags.into();
        Ok(fm)
    }
}
