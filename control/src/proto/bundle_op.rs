//! The ops of `bundle` and `bundle_add`, and the conversions to and from the datapath's
//! [`BundleOp`].
//!
//! An op is either a `flow_mod` body, exactly as before groups and meters could be bundled, or
//! an object with exactly one key naming another request: `{"group_mod": {…group_mod body…}}`
//! or `{"meter_mod": {…meter_mod body…}}`. The form is told by the op's first key, so a
//! malformed op is reported at the offending field (`body.ops[3].group_mod.buckets[0]
//! .actions[1]`, `body.ops[4].match.tcp_dst`), never as "did not match any variant".
//!
//! Errors the datapath finds in a group or meter op are named under the op's key
//! (`body.ops[1].group_mod.buckets[0]`, `bundle.ops[12].meter_mod.meter_id`) with the codes
//! `group_mod` and `meter_mod` use.

use std::fmt;

use datapath::ofp::FlowError;
use datapath::ofp::pipeline::{BundleOp, BundleResult};
use serde::de::value::{MapAccessDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::ProtoError;
use super::flow::{BundleReply, FlowModRequest, PathMap};
use super::group::{GroupModRequest, MeterModRequest, group_meter_error};

/// The key of a group op.
pub const GROUP_MOD_KEY: &str = "group_mod";
/// The key of a meter op.
pub const METER_MOD_KEY: &str = "meter_mod";

/// One op of a `bundle` or `bundle_add`.
///
/// On the wire: a flow-mod body (`{"command": "add", …}`), `{"group_mod": {…}}` or
/// `{"meter_mod": {…}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleOpDesc {
    /// A `flow_mod` body.
    Flow(FlowModRequest),
    /// `{"group_mod": {…}}`.
    Group(GroupModRequest),
    /// `{"meter_mod": {…}}`.
    Meter(MeterModRequest),
}

impl From<FlowModRequest> for BundleOpDesc {
    fn from(r: FlowModRequest) -> Self {
        Self::Flow(r)
    }
}

impl From<GroupModRequest> for BundleOpDesc {
    fn from(r: GroupModRequest) -> Self {
        Self::Group(r)
    }
}

impl From<MeterModRequest> for BundleOpDesc {
    fn from(r: MeterModRequest) -> Self {
        Self::Meter(r)
    }
}

/// How to name the parts of a converted op in errors of the datapath.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpPathMap {
    /// A flow-mod's map.
    Flow(PathMap),
    /// A group-mod: its locations go under `….group_mod`.
    Group,
    /// A meter-mod: its locations go under `….meter_mod`.
    Meter,
}

impl Default for OpPathMap {
    fn default() -> Self {
        Self::Flow(PathMap::default())
    }
}

impl OpPathMap {
    /// Heap bytes this map holds (see [`PathMap::heap_bytes`]).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Self::Flow(m) => m.heap_bytes(),
            Self::Group | Self::Meter => 0,
        }
    }

    /// Frees spare capacity.
    pub fn shrink_to_fit(&mut self) {
        if let Self::Flow(m) = self {
            m.shrink_to_fit();
        }
    }

    /// The same map without its prefix (small while staged; the prefix is given at the error).
    #[must_use]
    pub fn without_prefix(self) -> Self {
        match self {
            Self::Flow(m) => Self::Flow(m.with_prefix(String::new())),
            other => other,
        }
    }

    /// The protocol error for a datapath error about this op; `prefix` is the op's path
    /// (`body.ops[3]`, `bundle.ops[12345]`).
    pub fn error(self, prefix: &str, e: &FlowError) -> ProtoError {
        match self {
            Self::Flow(m) => m.with_prefix(prefix).error(e),
            Self::Group => group_meter_error(e, &format!("{prefix}.{GROUP_MOD_KEY}")),
            Self::Meter => group_meter_error(e, &format!("{prefix}.{METER_MOD_KEY}")),
        }
    }
}

impl BundleOpDesc {
    /// The datapath op, and how to name its parts in errors; `prefix` is the op's path
    /// (`body.ops[3]`).
    ///
    /// # Errors
    /// `bad_field` naming the offending part (`body.ops[3].group_mod.group_id`).
    pub fn to_bundle_op(&self, prefix: &str) -> Result<(BundleOp, OpPathMap), ProtoError> {
        Ok(match self {
            Self::Flow(r) => {
                let (fm, map) = r.to_flow_mod(prefix)?;
                (BundleOp::Flow(fm), OpPathMap::Flow(map))
            }
            Self::Group(r) => (
                BundleOp::Group(r.to_group_mod(&format!("{prefix}.{GROUP_MOD_KEY}"))?),
                OpPathMap::Group,
            ),
            Self::Meter(r) => (
                BundleOp::Meter(r.to_meter_mod(&format!("{prefix}.{METER_MOD_KEY}"))?),
                OpPathMap::Meter,
            ),
        })
    }

    /// The canonical request for a datapath op.
    pub fn from_bundle_op(op: &BundleOp) -> Self {
        match op {
            BundleOp::Flow(fm) => Self::Flow(FlowModRequest::from_flow_mod(fm)),
            BundleOp::Group(gm) => Self::Group(GroupModRequest::from_group_mod(gm)),
            BundleOp::Meter(mm) => Self::Meter(MeterModRequest::from_meter_mod(mm)),
        }
    }
}

impl BundleReply {
    /// The totals of an applied bundle: flows added, modified and removed, the flows deleted
    /// with groups and meters included in `removed`.
    pub fn from_results(results: &[BundleResult]) -> Self {
        let mut reply = Self {
            ops: results.len() as u64,
            ..Self::default()
        };
        for r in results {
            match r {
                BundleResult::Flow(r) => {
                    reply.added += r.added as u64;
                    reply.modified += r.modified as u64;
                    reply.removed += r.removed.len() as u64;
                }
                BundleResult::Group(removed) | BundleResult::Meter(removed) => {
                    reply.removed += removed.len() as u64;
                }
            }
        }
        reply
    }
}

impl Serialize for BundleOpDesc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Flow(r) => r.serialize(s),
            Self::Group(r) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(GROUP_MOD_KEY, r)?;
                m.end()
            }
            Self::Meter(r) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(METER_MOD_KEY, r)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for BundleOpDesc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(OpVisitor)
    }
}

/// Reads an op by its first key: `group_mod` and `meter_mod` select those forms, anything else
/// is the first field of a flow-mod body (deserialized from the same map, so that paths and
/// messages stay those of `flow_mod`).
struct OpVisitor;

impl<'de> Visitor<'de> for OpVisitor {
    type Value = BundleOpDesc;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a flow_mod body, {\"group_mod\": {…}} or {\"meter_mod\": {…}}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            // `{}`: a flow-mod without its command.
            return FlowModRequest::deserialize(MapAccessDeserializer::new(map))
                .map(BundleOpDesc::Flow);
        };
        let op = match first.as_str() {
            GROUP_MOD_KEY => BundleOpDesc::Group(map.next_value()?),
            METER_MOD_KEY => BundleOpDesc::Meter(map.next_value()?),
            _ => {
                let rest = Prepended {
                    first: Some(first),
                    rest: map,
                };
                return FlowModRequest::deserialize(MapAccessDeserializer::new(rest))
                    .map(BundleOpDesc::Flow);
            }
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(format_args!(
                "unknown field `{extra}`: a `{first}` op has no other key"
            )));
        }
        Ok(op)
    }
}

/// A map whose first key was already read.
struct Prepended<A> {
    first: Option<String>,
    rest: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Prepended<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some(key) = self.first.take() else {
            return self.rest.next_key_seed(seed);
        };
        let de: StringDeserializer<A::Error> = key.into_deserializer();
        match seed.deserialize(de) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                // An unknown first field: report it while reading its value, so that a
                // path-tracking map names the field (`body.ops[1].bogus`), as for any other
                // field of a flow-mod.
                let message = e.to_string();
                match self.rest.next_value_seed(Fail(message.clone())) {
                    Err(e) => Err(e),
                    Ok(()) => Err(de::Error::custom(message)),
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        self.rest.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.rest
            .size_hint()
            .map(|n| n + usize::from(self.first.is_some()))
    }
}

/// A value that cannot be read: fails with its message.
struct Fail(String);

impl<'de> DeserializeSeed<'de> for Fail {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        Err(de::Error::custom(self.0))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::proto::{ErrorCode, FlowCommand, ModCommandDesc};

    fn op(v: serde_json::Value) -> Result<BundleOpDesc, String> {
        // As the server's codec reads bodies.
        serde_path_to_error::deserialize(v).map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }

    #[test]
    fn each_form_is_told_by_its_first_key() {
        assert_eq!(
            op(json!({"command": "delete", "table": 1})).unwrap(),
            BundleOpDesc::Flow(FlowModRequest {
                table: Some(1),
                ..FlowModRequest::new(FlowCommand::Delete)
            })
        );
        assert_eq!(
            op(json!({"group_mod": {"command": "delete", "group_id": 3}})).unwrap(),
            BundleOpDesc::Group(GroupModRequest {
                group_id: Some(3),
                ..GroupModRequest::new(ModCommandDesc::Delete)
            })
        );
        assert_eq!(
            op(json!({"meter_mod": {"command": "delete"}})).unwrap(),
            BundleOpDesc::Meter(MeterModRequest::new(ModCommandDesc::Delete))
        );
    }

    #[test]
    fn errors_name_the_field_inside_the_op() {
        let e = op(
            json!({"group_mod": {"command": "add", "group_id": 1, "type": "all",
                                        "buckets": [{"actions": [{"output": 1}, {"bogus": 2}]}]}}),
        )
        .unwrap_err();
        assert!(e.starts_with("group_mod.buckets[0].actions[1]"), "{e}");
        let e = op(json!({"meter_mod": {"command": "add", "rate": "x"}})).unwrap_err();
        assert!(e.starts_with("meter_mod.rate"), "{e}");
        let e = op(json!({"command": "add", "priority": "high"})).unwrap_err();
        assert!(e.starts_with("priority: invalid type"), "{e}");
        let e = op(json!({"bogus": 1, "command": "add"})).unwrap_err();
        assert!(e.starts_with("bogus: unknown field `bogus`"), "{e}");
        let e = op(json!({"command": "add", "zz": 1})).unwrap_err();
        assert!(e.starts_with("zz: unknown field `zz`"), "{e}");
        let e = op(json!({"command": "add", "group_mod": {}})).unwrap_err();
        assert!(e.contains("unknown field `group_mod`"), "{e}");
        // Whichever key the map yields first, a second key is refused.
        let e = op(json!({"group_mod": {"command": "delete"}, "command": "add"})).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        let e = op(json!({"meter_mod": {"command": "delete"}, "x": 1})).unwrap_err();
        assert!(
            e.contains("unknown field `x`: a `meter_mod` op has no other key"),
            "{e}"
        );
        let e = op(json!({})).unwrap_err();
        assert!(e.contains("missing field `command`"), "{e}");
        let e = op(json!([1])).unwrap_err();
        assert!(e.contains("expected a flow_mod body"), "{e}");
    }

    #[test]
    fn ops_convert_under_their_key_and_map_datapath_errors_there() {
        let g = BundleOpDesc::Group(GroupModRequest {
            group_id: Some(u32::MAX),
            ..GroupModRequest::new(ModCommandDesc::Delete)
        });
        let e = g.to_bundle_op("body.ops[2]").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body.ops[2].group_mod.group_id"));
        let m = BundleOpDesc::Meter(MeterModRequest {
            meter_id: Some(1),
            unit: Some(crate::proto::MeterUnitDesc::Kbps),
            rate: Some(10),
            ..MeterModRequest::new(ModCommandDesc::Add)
        });
        let (dp, map) = m.to_bundle_op("body.ops[0]").unwrap();
        assert_eq!(BundleOpDesc::from_bundle_op(&dp), m);
        let err = FlowError {
            kind: datapath::ofp::FlowErrorKind::Exists,
            at: "meter_id".into(),
            message: "meter 1 exists".into(),
        };
        let e = map.without_prefix().error("bundle.ops[7]", &err);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::Exists, Some("bundle.ops[7].meter_mod.meter_id"))
        );
    }
}
