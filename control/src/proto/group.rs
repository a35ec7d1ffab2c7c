//! Group and meter messages (`group_mod`, `group_dump`, `meter_mod`, `meter_dump`) and the
//! conversions between their JSON form and the datapath's groups and meters.
//!
//! JSON form (see `docs/control-protocol.md`):
//!
//! - a group-mod is `{"command": "add", "group_id": 1, "type": "select", "buckets": [{"weight":
//!   10, "watch_port": 2, "actions": [{"output": 2}]}]}`; bucket actions use the action JSON of
//!   flows (instruction items such as `goto_table` are refused);
//! - a meter-mod is `{"command": "add", "meter_id": 1, "unit": "pktps", "rate": 100,
//!   "burst": 10}` (one drop band; `burst` 0 or omitted = the datapath's default).
//!
//! Errors found by the datapath (`buckets[1].actions[0]`, `group_id`, `rate`) are given back as
//! protocol paths under the request (`body.buckets[1].actions[0]`).

use datapath::ofp::group::{Bucket, Group, GroupType};
use datapath::ofp::meter::{MAX_RATE, Meter, MeterConfig, MeterUnit};
use datapath::ofp::pipeline::{GroupMod, MAX_ID, MeterMod, ModCommand};
use datapath::ofp::{FlowError, FlowErrorKind};
use serde::{Deserialize, Serialize};

use super::error::{ErrorCode, ProtoError};
use super::flow::{ActionDesc, action_from_desc, action_to_desc};

fn bad(path: impl Into<String>, message: impl Into<String>) -> ProtoError {
    ProtoError::bad_field(path, message)
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// The operation of a `group_mod` or `meter_mod`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModCommandDesc {
    /// Add (the id must be free).
    #[default]
    Add,
    /// Replace the definition (the id must exist); the counters restart.
    Modify,
    /// Remove one (or, without an id, every one) and the flows that use it.
    Delete,
}

impl ModCommandDesc {
    /// The datapath command.
    pub fn to_datapath(self) -> ModCommand {
        match self {
            Self::Add => ModCommand::Add,
            Self::Modify => ModCommand::Modify,
            Self::Delete => ModCommand::Delete,
        }
    }

    /// From the datapath command.
    pub fn from_datapath(c: ModCommand) -> Self {
        match c {
            ModCommand::Add => Self::Add,
            ModCommand::Modify => Self::Modify,
            ModCommand::Delete => Self::Delete,
        }
    }
}

/// Group type on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupTypeDesc {
    /// Every bucket gets a copy.
    All,
    /// One bucket, weighted, chosen by a hash of the 5-tuple.
    Select,
    /// Exactly one bucket.
    Indirect,
    /// The first bucket whose watched port is live.
    FastFailover,
}

impl GroupTypeDesc {
    /// The datapath type.
    pub fn to_datapath(self) -> GroupType {
        match self {
            Self::All => GroupType::All,
            Self::Select => GroupType::Select,
            Self::Indirect => GroupType::Indirect,
            Self::FastFailover => GroupType::FastFailover,
        }
    }

    /// From the datapath type.
    pub fn from_datapath(t: GroupType) -> Self {
        match t {
            GroupType::All => Self::All,
            GroupType::Select => Self::Select,
            GroupType::Indirect => Self::Indirect,
            GroupType::FastFailover => Self::FastFailover,
        }
    }
}

/// The weight of a bucket that does not give one: 1 in a `select` group, else 0 (as OVS).
pub fn default_weight(kind: GroupType) -> u16 {
    u16::from(kind == GroupType::Select)
}

/// A bucket in a `group_mod`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketDesc {
    /// Relative weight (select); omitted: 1 in a select group, 0 otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    /// Port whose liveness enables the bucket (required in fast-failover groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_port: Option<u32>,
    /// Actions run on the bucket's copy of the packet (empty: drop).
    #[serde(default)]
    pub actions: Vec<ActionDesc>,
}

/// `group_mod`: add, modify or delete a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupModRequest {
    /// What to do.
    pub command: ModCommandDesc,
    /// Group id (0..=[`MAX_ID`]); omitted with `delete`: every group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<u32>,
    /// Type (add, modify: required).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<GroupTypeDesc>,
    /// Buckets (add, modify).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<BucketDesc>,
}

/// `group_mod_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupModReply {
    /// Flows removed because they used a deleted group.
    #[serde(default)]
    pub removed_flows: u64,
}

/// `group_dump`: one group or every group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDumpRequest {
    /// Only this group (an unknown id gives an empty list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<u32>,
}

/// A bucket in `group_dump_reply`, with its counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketStatsDesc {
    /// Weight.
    #[serde(default)]
    pub weight: u16,
    /// Watched port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_port: Option<u32>,
    /// Actions.
    #[serde(default)]
    pub actions: Vec<ActionDesc>,
    /// Packets through the bucket.
    #[serde(default)]
    pub packets: u64,
    /// Bytes through the bucket.
    #[serde(default)]
    pub bytes: u64,
}

/// A group in `group_dump_reply`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDesc {
    /// Id.
    pub group_id: u32,
    /// Type.
    #[serde(rename = "type")]
    pub group_type: GroupTypeDesc,
    /// Buckets with their counters.
    #[serde(default)]
    pub buckets: Vec<BucketStatsDesc>,
    /// Packets through the group.
    #[serde(default)]
    pub packets: u64,
    /// Bytes through the group.
    #[serde(default)]
    pub bytes: u64,
}

/// `group_dump_reply` (multipart).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDumpReply {
    /// Groups, by id.
    pub groups: Vec<GroupDesc>,
    /// More parts follow with the same xid.
    #[serde(default)]
    pub more: bool,
}

/// Meter rate unit on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeterUnitDesc {
    /// Kilobits per second (burst in kilobits).
    #[default]
    Kbps,
    /// Packets per second (burst in packets).
    Pktps,
}

impl MeterUnitDesc {
    /// The datapath unit.
    pub fn to_datapath(self) -> MeterUnit {
        match self {
            Self::Kbps => MeterUnit::Kbps,
            Self::Pktps => MeterUnit::Pktps,
        }
    }

    /// From the datapath unit.
    pub fn from_datapath(u: MeterUnit) -> Self {
        match u {
            MeterUnit::Kbps => Self::Kbps,
            MeterUnit::Pktps => Self::Pktps,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kbps => "kbps",
            Self::Pktps => "pktps",
        }
    }
}

/// `meter_mod`: add, modify or delete a meter (one drop band).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterModRequest {
    /// What to do.
    pub command: ModCommandDesc,
    /// Meter id (1..=[`MAX_ID`]); omitted with `delete`: every meter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_id: Option<u32>,
    /// Unit of `rate` and `burst` (add, modify; default `kbps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<MeterUnitDesc>,
    /// Drop band rate (add, modify: required; 1..=[`MAX_RATE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// Burst size in the unit (kilobits or packets); 0 or omitted: the default (0.1 s of rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

/// `meter_mod_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterModReply {
    /// Flows removed because they used a deleted meter.
    #[serde(default)]
    pub removed_flows: u64,
}

/// `meter_dump`: one meter or every meter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterDumpRequest {
    /// Only this meter (an unknown id gives an empty list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_id: Option<u32>,
}

/// A meter in `meter_dump_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterDesc {
    /// Id.
    pub meter_id: u32,
    /// Unit.
    #[serde(default)]
    pub unit: MeterUnitDesc,
    /// Drop band rate.
    #[serde(default)]
    pub rate: u64,
    /// Burst as configured (0: the default).
    #[serde(default)]
    pub burst: u64,
    /// Packets offered to the meter.
    #[serde(default)]
    pub packets_in: u64,
    /// Bytes offered to the meter.
    #[serde(default)]
    pub bytes_in: u64,
    /// Packets the band dropped.
    #[serde(default)]
    pub packets_dropped: u64,
    /// Bytes the band dropped.
    #[serde(default)]
    pub bytes_dropped: u64,
}

/// `meter_dump_reply` (multipart).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterDumpReply {
    /// Meters, by id.
    pub meters: Vec<MeterDesc>,
    /// More parts follow with the same xid.
    #[serde(default)]
    pub more: bool,
}

// ---------------------------------------------------------------------------------------------
// JSON ↔ datapath
// ---------------------------------------------------------------------------------------------

fn check_id(id: Option<u32>, min: u32, path: String, what: &str) -> Result<(), ProtoError> {
    match id {
        Some(id) if id < min || id > MAX_ID => Err(bad(
            path,
            format!("{what} id {id} is out of range ({min}..={MAX_ID})"),
        )),
        _ => Ok(()),
    }
}

/// The protocol error for a datapath error about a group-mod or meter-mod; `prefix` is the
/// request's path (`body`).
pub fn group_meter_error(e: &FlowError, prefix: &str) -> ProtoError {
    let code = match e.kind {
        FlowErrorKind::Exists => ErrorCode::Exists,
        FlowErrorKind::UnknownGroup | FlowErrorKind::UnknownMeter => ErrorCode::NotFound,
        FlowErrorKind::TableFull => ErrorCode::Limit,
        FlowErrorKind::Unsupported => ErrorCode::Unsupported,
        // Ids and rates out of range (checked here first, so only from a newer datapath).
        _ if e.at == "group_id" || e.at == "meter_id" || e.at == "rate" => ErrorCode::BadField,
        _ => ErrorCode::BadAction,
    };
    ProtoError::field(code, format!("{prefix}.{}", e.at), e.message.clone())
}

impl GroupModRequest {
    /// A request for `command` with no id, type or buckets.
    pub fn new(command: ModCommandDesc) -> Self {
        Self {
            command,
            group_id: None,
            group_type: None,
            buckets: Vec::new(),
        }
    }

    /// The datapath group-mod; `prefix` is the request's path (`body`).
    ///
    /// # Errors
    /// `bad_field` naming the offending part: a missing id or type, an id out of range, a type
    /// or buckets on a delete, a malformed action.
    pub fn to_group_mod(&self, prefix: &str) -> Result<GroupMod, ProtoError> {
        check_id(self.group_id, 0, format!("{prefix}.group_id"), "group")?;
        let command = self.command.to_datapath();
        if command == ModCommand::Delete {
            if self.group_type.is_some() {
                return Err(bad(
                    format!("{prefix}.type"),
                    "delete takes only a group_id",
                ));
            }
            if !self.buckets.is_empty() {
                return Err(bad(
                    format!("{prefix}.buckets"),
                    "delete takes only a group_id",
                ));
            }
            return Ok(GroupMod {
                command,
                id: self.group_id,
                kind: GroupType::All,
                buckets: Vec::new(),
            });
        }
        if self.group_id.is_none() {
            return Err(bad(
                format!("{prefix}.group_id"),
                "missing field `group_id` (required by add and modify)",
            ));
        }
        let Some(kind) = self.group_type.map(GroupTypeDesc::to_datapath) else {
            return Err(bad(
                format!("{prefix}.type"),
                "missing field `type` (all, select, indirect or fast_failover)",
            ));
        };
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let actions = b
                    .actions
                    .iter()
                    .enumerate()
                    .map(|(j, a)| {
                        action_from_desc(a, &format!("{prefix}.buckets[{i}].actions[{j}]"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Bucket {
                    weight: b.weight.unwrap_or_else(|| default_weight(kind)),
                    watch_port: b.watch_port,
                    actions,
                })
            })
            .collect::<Result<Vec<_>, ProtoError>>()?;
        Ok(GroupMod {
            command,
            id: self.group_id,
            kind,
            buckets,
        })
    }

    /// The canonical request for a datapath group-mod (default weights omitted; no type or
    /// buckets for delete).
    pub fn from_group_mod(gm: &GroupMod) -> Self {
        if gm.command == ModCommand::Delete {
            return Self {
                group_id: gm.id,
                ..Self::new(ModCommandDesc::Delete)
            };
        }
        Self {
            command: ModCommandDesc::from_datapath(gm.command),
            group_id: gm.id,
            group_type: Some(GroupTypeDesc::from_datapath(gm.kind)),
            buckets: gm
                .buckets
                .iter()
                .map(|b| BucketDesc {
                    weight: (b.weight != default_weight(gm.kind)).then_some(b.weight),
                    watch_port: b.watch_port,
                    actions: b.actions.iter().map(action_to_desc).collect(),
                })
                .collect(),
        }
    }
}

impl GroupDesc {
    /// A group as dumped, with its counters.
    pub fn from_group(g: &Group) -> Self {
        let (packets, bytes) = g.stats.totals();
        Self {
            group_id: g.id,
            group_type: GroupTypeDesc::from_datapath(g.kind),
            buckets: g
                .buckets
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let (packets, bytes) = g.bucket_stats.get(i).map_or((0, 0), |s| s.totals());
                    BucketStatsDesc {
                        weight: b.weight,
                        watch_port: b.watch_port,
                        actions: b.actions.iter().map(action_to_desc).collect(),
                        packets,
                        bytes,
                    }
                })
                .collect(),
            packets,
            bytes,
        }
    }

    /// The `add` group-mod that recreates this group (for printing it as text).
    ///
    /// # Errors
    /// An action this version cannot read (from a newer server).
    pub fn to_group_mod(&self) -> Result<GroupMod, ProtoError> {
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                Ok(Bucket {
                    weight: b.weight,
                    watch_port: b.watch_port,
                    actions: b
                        .actions
                        .iter()
                        .enumerate()
                        .map(|(j, a)| action_from_desc(a, &format!("buckets[{i}].actions[{j}]")))
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<Vec<_>, ProtoError>>()?;
        Ok(GroupMod {
            command: ModCommand::Add,
            id: Some(self.group_id),
            kind: self.group_type.to_datapath(),
            buckets,
        })
    }
}

impl MeterModRequest {
    /// A request for `command` with no id or band.
    pub fn new(command: ModCommandDesc) -> Self {
        Self {
            command,
            meter_id: None,
            unit: None,
            rate: None,
            burst: None,
        }
    }

    /// The datapath meter-mod; `prefix` is the request's path (`body`).
    ///
    /// # Errors
    /// `bad_field` naming the offending part: a missing id or rate, an id or rate out of range,
    /// band settings on a delete.
    pub fn to_meter_mod(&self, prefix: &str) -> Result<MeterMod, ProtoError> {
        check_id(self.meter_id, 1, format!("{prefix}.meter_id"), "meter")?;
        let command = self.command.to_datapath();
        if command == ModCommand::Delete {
            for (given, name) in [
                (self.unit.is_some(), "unit"),
                (self.rate.is_some(), "rate"),
                (self.burst.is_some(), "burst"),
            ] {
                if given {
                    return Err(bad(
                        format!("{prefix}.{name}"),
                        "delete takes only a meter_id",
                    ));
                }
            }
            return Ok(MeterMod {
                command,
                id: self.meter_id,
                config: MeterConfig {
                    unit: MeterUnit::Kbps,
                    rate: 1,
                    burst: 0,
                },
            });
        }
        if self.meter_id.is_none() {
            return Err(bad(
                format!("{prefix}.meter_id"),
                "missing field `meter_id` (required by add and modify)",
            ));
        }
        let rate = match self.rate {
            None => {
                return Err(bad(
                    format!("{prefix}.rate"),
                    "missing field `rate` (required by add and modify)",
                ));
            }
            Some(r) if r == 0 || r > MAX_RATE => {
                return Err(bad(
                    format!("{prefix}.rate"),
                    format!("rate {r} is out of range (1..={MAX_RATE})"),
                ));
            }
            Some(r) => r,
        };
        Ok(MeterMod {
            command,
            id: self.meter_id,
            config: MeterConfig {
                unit: self.unit.unwrap_or_default().to_datapath(),
                rate,
                burst: self.burst.unwrap_or(0),
            },
        })
    }

    /// The canonical request for a datapath meter-mod (no band for delete; `burst` only when
    /// set).
    pub fn from_meter_mod(mm: &MeterMod) -> Self {
        if mm.command == ModCommand::Delete {
            return Self {
                meter_id: mm.id,
                ..Self::new(ModCommandDesc::Delete)
            };
        }
        Self {
            command: ModCommandDesc::from_datapath(mm.command),
            meter_id: mm.id,
            unit: Some(MeterUnitDesc::from_datapath(mm.config.unit)),
            rate: Some(mm.config.rate),
            burst: (!is_zero_u64(&mm.config.burst)).then_some(mm.config.burst),
        }
    }
}

impl MeterDesc {
    /// A meter as dumped, with its counters.
    pub fn from_meter(m: &Meter) -> Self {
        let (packets_in, bytes_in) = m.offered.totals();
        let (packets_dropped, bytes_dropped) = m.dropped.totals();
        Self {
            meter_id: m.id,
            unit: MeterUnitDesc::from_datapath(m.config.unit),
            rate: m.config.rate,
            burst: m.config.burst,
            packets_in,
            bytes_in,
            packets_dropped,
            bytes_dropped,
        }
    }

    /// The `add` meter-mod that recreates this meter (for printing it as text).
    pub fn to_meter_mod(&self) -> MeterMod {
        MeterMod {
            command: ModCommand::Add,
            id: Some(self.meter_id),
            config: MeterConfig {
                unit: self.unit.to_datapath(),
                rate: self.rate,
                burst: self.burst,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use datapath::ofp::action::Action;

    use super::*;

    fn group(v: serde_json::Value) -> GroupModRequest {
        serde_json::from_value(v).expect("a valid group_mod body")
    }

    fn meter(v: serde_json::Value) -> MeterModRequest {
        serde_json::from_value(v).expect("a valid meter_mod body")
    }

    #[test]
    fn group_requests_convert_both_ways() {
        let r = group(serde_json::json!({
            "command": "add", "group_id": 1, "type": "select",
            "buckets": [{"weight": 10, "actions": [{"output": 2}]}, {"actions": [{"output": 3}]}]
        }));
        let gm = r.to_group_mod("body").unwrap();
        assert_eq!(gm.kind, GroupType::Select);
        assert_eq!(gm.buckets[0].weight, 10);
        // The default weight of a select bucket is 1.
        assert_eq!(gm.buckets[1].weight, 1);
        assert_eq!(gm.buckets[1].actions, vec![Action::Output(3)]);
        assert_eq!(GroupModRequest::from_group_mod(&gm), r);
        let ff = group(serde_json::json!({
            "command": "modify", "group_id": 2, "type": "fast_failover",
            "buckets": [{"watch_port": 1, "actions": [{"output": 1}]}]
        }));
        let gm = ff.to_group_mod("body").unwrap();
        assert_eq!(gm.buckets[0].weight, 0);
        assert_eq!(GroupModRequest::from_group_mod(&gm), ff);
        let del = GroupModRequest::new(ModCommandDesc::Delete);
        let gm = del.to_group_mod("body").unwrap();
        assert_eq!((gm.command, gm.id), (ModCommand::Delete, None));
        assert_eq!(GroupModRequest::from_group_mod(&gm), del);
    }

    #[test]
    fn group_request_errors_name_the_field() {
        let cases = [
            (
                serde_json::json!({"command": "add", "type": "all"}),
                "body.group_id",
            ),
            (
                serde_json::json!({"command": "add", "group_id": 1}),
                "body.type",
            ),
            (
                serde_json::json!({"command": "add", "group_id": 4_294_967_041u32, "type": "all"}),
                "body.group_id",
            ),
            (
                serde_json::json!({"command": "delete", "group_id": 1, "type": "all"}),
                "body.type",
            ),
            (
                serde_json::json!({"command": "delete", "buckets": [{}]}),
                "body.buckets",
            ),
            (
                serde_json::json!({"command": "add", "group_id": 1, "type": "all",
                    "buckets": [{}, {"actions": ["normal", {"goto_table": 1}]}]}),
                "body.buckets[1].actions[1]",
            ),
        ];
        for (v, field) in cases {
            let text = v.to_string();
            let e = group(v).to_group_mod("body").unwrap_err();
            assert_eq!(e.code, ErrorCode::BadField, "{text}");
            assert_eq!(e.field.as_deref(), Some(field), "{text}");
        }
    }

    #[test]
    fn meter_requests_convert_both_ways() {
        let r = meter(serde_json::json!({
            "command": "add", "meter_id": 1, "unit": "pktps", "rate": 100, "burst": 10
        }));
        let mm = r.to_meter_mod("body").unwrap();
        assert_eq!(
            mm.config,
            MeterConfig {
                unit: MeterUnit::Pktps,
                rate: 100,
                burst: 10
            }
        );
        assert_eq!(MeterModRequest::from_meter_mod(&mm), r);
        // kbps is the default unit.
        let mm = meter(serde_json::json!({"command": "modify", "meter_id": 2, "rate": 5}))
            .to_meter_mod("body")
            .unwrap();
        assert_eq!(mm.config.unit, MeterUnit::Kbps);
        let cases = [
            (
                serde_json::json!({"command": "add", "rate": 1}),
                "body.meter_id",
            ),
            (
                serde_json::json!({"command": "add", "meter_id": 0, "rate": 1}),
                "body.meter_id",
            ),
            (
                serde_json::json!({"command": "delete", "meter_id": 0}),
                "body.meter_id",
            ),
            (
                serde_json::json!({"command": "add", "meter_id": 1}),
                "body.rate",
            ),
            (
                serde_json::json!({"command": "add", "meter_id": 1, "rate": 0}),
                "body.rate",
            ),
            (
                serde_json::json!({"command": "delete", "meter_id": 1, "burst": 3}),
                "body.burst",
            ),
        ];
        for (v, field) in cases {
            let text = v.to_string();
            let e = meter(v).to_meter_mod("body").unwrap_err();
            assert_eq!(e.code, ErrorCode::BadField, "{text}");
            assert_eq!(e.field.as_deref(), Some(field), "{text}");
        }
    }

    #[test]
    fn datapath_errors_map_to_codes_and_paths() {
        let e = |kind, at: &str| FlowError {
            kind,
            at: at.into(),
            message: "x".into(),
        };
        let cases = [
            (FlowErrorKind::Exists, "group_id", ErrorCode::Exists),
            (FlowErrorKind::UnknownGroup, "group_id", ErrorCode::NotFound),
            (FlowErrorKind::UnknownMeter, "meter_id", ErrorCode::NotFound),
            (FlowErrorKind::TableFull, "group_id", ErrorCode::Limit),
            (FlowErrorKind::BadAction, "buckets", ErrorCode::BadAction),
            (
                FlowErrorKind::BadPort,
                "buckets[0].watch_port",
                ErrorCode::BadAction,
            ),
            (
                FlowErrorKind::Unsupported,
                "buckets[1].actions[0]",
                ErrorCode::Unsupported,
            ),
            (FlowErrorKind::BadAction, "rate", ErrorCode::BadField),
        ];
        for (kind, at, code) in cases {
            let p = group_meter_error(&e(kind, at), "body");
            assert_eq!(p.code, code, "{at}");
            assert_eq!(p.field, Some(format!("body.{at}")));
        }
    }
}
