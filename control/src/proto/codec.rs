//! Encoding and decoding of whole messages (the JSON payload of one frame).
//!
//! Decoding never panics and never trusts the input: the payload must be UTF-8, a JSON object
//! (serde_json limits nesting depth), with exactly the envelope keys `version`, `xid`, `type` and
//! an optional `body` object. Each problem becomes a [`ProtoError`] naming the field, and the
//! `xid` is recovered whenever it can be, so that the error reply can be matched to its request.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::{ErrorCode, ErrorReply, ProtoError};
use super::msg::{Reply, Request};
use super::notify::{Notification, ServerMessage};
use super::{SUPPORTED_VERSIONS, VERSION};

/// The envelope keys.
const ENVELOPE_KEYS: [&str; 4] = ["version", "xid", "type", "body"];

/// Longest piece of untrusted input quoted back in an error message.
const MAX_QUOTE: usize = 64;

/// A decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded<T> {
    /// The message's protocol version.
    pub version: u32,
    /// The message's transaction id.
    pub xid: u64,
    /// The message.
    pub msg: T,
}

/// A message that could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct DecodeError {
    /// The message's `xid` if it could be read, else 0.
    pub xid: u64,
    /// What is wrong.
    pub error: ProtoError,
}

#[derive(Serialize)]
struct Envelope<'a, B: Serialize> {
    version: u32,
    xid: u64,
    #[serde(rename = "type")]
    kind: &'a str,
    body: &'a B,
}

fn encode<B: Serialize>(xid: u64, kind: &str, body: &B) -> Result<Vec<u8>, ProtoError> {
    serde_json::to_vec(&Envelope {
        version: VERSION,
        xid,
        kind,
        body,
    })
    .map_err(|e| ProtoError::new(ErrorCode::Internal, format!("encoding {kind}: {e}")))
}

/// The JSON payload of `request` with transaction id `xid` (frame it with
/// [`super::frame::write`]).
///
/// # Errors
/// `internal` if serialization fails (it does not for these types).
pub fn encode_request(xid: u64, request: &Request) -> Result<Vec<u8>, ProtoError> {
    encode(xid, request.type_name(), request)
}

/// The JSON payload of `reply` to the request with transaction id `xid`.
///
/// # Errors
/// `internal` if serialization fails (it does not for these types).
pub fn encode_reply(xid: u64, reply: &Reply) -> Result<Vec<u8>, ProtoError> {
    encode(xid, reply.type_name(), reply)
}

/// The JSON payload of a notification, with `xid` 0 and `lost` 0 (the server writes each
/// session's own count with [`super::notify::with_lost`]).
///
/// # Errors
/// `internal` if serialization fails (it does not for these types).
pub fn encode_notification(notification: &Notification) -> Result<Vec<u8>, ProtoError> {
    encode(0, notification.type_name(), notification)
}

/// Quotes at most [`MAX_QUOTE`] characters of untrusted text.
pub(crate) fn quote(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTE) {
        Some((end, _)) => format!("`{}…`", &s[..end]),
        None => format!("`{s}`"),
    }
}

struct Raw {
    version: u32,
    xid: u64,
    kind: String,
    body: Value,
}

fn envelope(bytes: &[u8]) -> Result<Raw, DecodeError> {
    let reject = |xid: u64, error: ProtoError| DecodeError { xid, error };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        reject(
            0,
            ProtoError::new(
                ErrorCode::BadFrame,
                format!("message is not valid UTF-8 (at byte {})", e.valid_up_to()),
            ),
        )
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        reject(
            0,
            ProtoError::new(ErrorCode::BadFrame, format!("message is not JSON: {e}")),
        )
    })?;
    let Value::Object(mut map) = value else {
        return Err(reject(
            0,
            ProtoError::new(ErrorCode::BadFrame, "message is not a JSON object"),
        ));
    };
    // Best effort first, so that every later error can carry the xid.
    let xid = map.get("xid").and_then(Value::as_u64).unwrap_or(0);

    // The version decides how the rest is read, so it is checked before anything else.
    let version = match map.get("version") {
        None => {
            return Err(reject(
                xid,
                ProtoError::bad_field("version", "missing field `version`"),
            ));
        }
        Some(v) => match v.as_u64() {
            None => {
                return Err(reject(
                    xid,
                    ProtoError::bad_field(
                        "version",
                        format!("invalid type: {}, expected an unsigned integer", kind_of(v)),
                    ),
                ));
            }
            Some(n) => match u32::try_from(n) {
                Ok(n) if SUPPORTED_VERSIONS.contains(&n) => n,
                _ => {
                    return Err(reject(
                        xid,
                        ProtoError::field(
                            ErrorCode::BadVersion,
                            "version",
                            format!(
                                "unsupported protocol version {n} (supported: {})",
                                versions_list()
                            ),
                        ),
                    ));
                }
            },
        },
    };
    if let Some(key) = map.keys().find(|k| !ENVELOPE_KEYS.contains(&k.as_str())) {
        return Err(reject(
            xid,
            ProtoError::bad_field(
                key.clone(),
                format!(
                    "unknown field {}, expected one of `version`, `xid`, `type`, `body`",
                    quote(key)
                ),
            ),
        ));
    }
    let xid = match map.get("xid") {
        None => {
            return Err(reject(
                0,
                ProtoError::bad_field("xid", "missing field `xid`"),
            ));
        }
        Some(v) => v.as_u64().ok_or_else(|| {
            reject(
                0,
                ProtoError::bad_field(
                    "xid",
                    format!(
                        "invalid type: {}, expected an unsigned 64-bit integer",
                        kind_of(v)
                    ),
                ),
            )
        })?,
    };
    let kind = match map.remove("type") {
        None => {
            return Err(reject(
                xid,
                ProtoError::bad_field("type", "missing field `type`"),
            ));
        }
        Some(Value::String(s)) => s,
        Some(v) => {
            return Err(reject(
                xid,
                ProtoError::bad_field(
                    "type",
                    format!("invalid type: {}, expected a string", kind_of(&v)),
                ),
            ));
        }
    };
    let body = match map.remove("body") {
        None => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v,
        Some(v) => {
            return Err(reject(
                xid,
                ProtoError::bad_field(
                    "body",
                    format!("invalid type: {}, expected an object", kind_of(&v)),
                ),
            ));
        }
    };
    Ok(Raw {
        version,
        xid,
        kind,
        body,
    })
}

fn versions_list() -> String {
    SUPPORTED_VERSIONS
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "floating point",
        Value::Number(n) if n.is_i64() => "negative integer",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "sequence",
        Value::Object(_) => "map",
    }
}

/// Deserializes a body, reporting the failing field as a path from the message root.
fn body<T: DeserializeOwned>(value: Value) -> Result<T, ProtoError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let mut field = if path == "." {
            "body".to_owned()
        } else {
            format!("body.{path}")
        };
        // A missing field is reported at its parent; name the field itself.
        if let Some(name) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            field.push('.');
            field.push_str(name);
        }
        ProtoError::bad_field(field, message)
    })
}

/// Decodes a request payload (one frame's JSON).
///
/// # Errors
/// The payload is not a well-formed request of a supported version; the error carries the
/// request's `xid` when it could be read.
pub fn decode_request(bytes: &[u8]) -> Result<Decoded<Request>, DecodeError> {
    let raw = envelope(bytes)?;
    let xid = raw.xid;
    let b = raw.body;
    let msg = match raw.kind.as_str() {
        "hello" => body(b).map(Request::Hello),
        "port_add" => body(b).map(Request::PortAdd),
        "port_del" => body(b).map(Request::PortDel),
        "port_list" => body(b).map(Request::PortList),
        "port_stats" => body(b).map(Request::PortStats),
        "mac_dump" => body(b).map(Request::MacDump),
        "mac_flush" => body(b).map(Request::MacFlush),
        "switch_show" => body(b).map(Request::SwitchShow),
        "echo" => body(b).map(Request::Echo),
        "flow_mod" => body(b).map(Request::FlowMod),
        "flow_dump" => body(b).map(Request::FlowDump),
        "flow_aggregate" => body(b).map(Request::FlowAggregate),
        "table_stats" => body(b).map(Request::TableStats),
        "barrier" => body(b).map(Request::Barrier),
        "bundle" => body(b).map(Request::Bundle),
        "bundle_open" => body(b).map(Request::BundleOpen),
        "bundle_add" => body(b).map(Request::BundleAdd),
        "bundle_commit" => body(b).map(Request::BundleCommit),
        "bundle_discard" => body(b).map(Request::BundleDiscard),
        "group_mod" => body(b).map(Request::GroupMod),
        "group_dump" => body(b).map(Request::GroupDump),
        "meter_mod" => body(b).map(Request::MeterMod),
        "meter_dump" => body(b).map(Request::MeterDump),
        "subscribe" => body(b).map(Request::Subscribe),
        "unsubscribe" => body(b).map(Request::Unsubscribe),
        "packet_out" => body(b).map(Request::PacketOut),
        other => Err(ProtoError::field(
            ErrorCode::UnknownType,
            "type",
            format!("unknown request type {}", quote(other)),
        )),
    }
    .map_err(|error| DecodeError { xid, error })?;
    Ok(Decoded {
        version: raw.version,
        xid,
        msg,
    })
}

/// Decodes a reply payload. Unknown fields are ignored; an unknown `type` is an
/// `unknown_type` error (a client skips messages it does not know).
///
/// # Errors
/// The payload is not a well-formed reply of a supported version.
pub fn decode_reply(bytes: &[u8]) -> Result<Decoded<Reply>, DecodeError> {
    reply_from_raw(envelope(bytes)?)
}

fn reply_from_raw(raw: Raw) -> Result<Decoded<Reply>, DecodeError> {
    let xid = raw.xid;
    let b = raw.body;
    let msg = match raw.kind.as_str() {
        "hello_reply" => body(b).map(Reply::Hello),
        "port_add_reply" => body(b).map(Reply::PortAdd),
        "port_del_reply" => body(b).map(Reply::PortDel),
        "port_list_reply" => body(b).map(Reply::PortList),
        "port_stats_reply" => body(b).map(Reply::PortStats),
        "mac_dump_reply" => body(b).map(Reply::MacDump),
        "mac_flush_reply" => body(b).map(Reply::MacFlush),
        "switch_show_reply" => body(b).map(Reply::SwitchShow),
        "echo_reply" => body(b).map(Reply::Echo),
        "flow_mod_reply" => body(b).map(Reply::FlowMod),
        "flow_dump_reply" => body(b).map(Reply::FlowDump),
        "flow_aggregate_reply" => body(b).map(Reply::FlowAggregate),
        "table_stats_reply" => body(b).map(Reply::TableStats),
        "barrier_reply" => body(b).map(Reply::Barrier),
        "bundle_reply" => body(b).map(Reply::Bundle),
        "bundle_open_reply" => body(b).map(Reply::BundleOpen),
        "bundle_add_reply" => body(b).map(Reply::BundleAdd),
        "bundle_commit_reply" => body(b).map(Reply::BundleCommit),
        "bundle_discard_reply" => body(b).map(Reply::BundleDiscard),
        "group_mod_reply" => body(b).map(Reply::GroupMod),
        "group_dump_reply" => body(b).map(Reply::GroupDump),
        "meter_mod_reply" => body(b).map(Reply::MeterMod),
        "meter_dump_reply" => body(b).map(Reply::MeterDump),
        "subscribe_reply" => body(b).map(Reply::Subscribe),
        "unsubscribe_reply" => body(b).map(Reply::Unsubscribe),
        "packet_out_reply" => body(b).map(Reply::PacketOut),
        "error" => body::<ErrorReply>(b).map(Reply::Error),
        other => Err(ProtoError::field(
            ErrorCode::UnknownType,
            "type",
            format!("unknown reply type {}", quote(other)),
        )),
    }
    .map_err(|error| DecodeError { xid, error })?;
    Ok(Decoded {
        version: raw.version,
        xid,
        msg,
    })
}

/// Decodes any message the server sends: a reply (as [`decode_reply`]) or a notification
/// (`packet_in`, `flow_removed`, `port_status`, tolerant like replies).
///
/// # Errors
/// The payload is not a well-formed server message of a supported version; an unknown `type`
/// is an `unknown_type` error (a client skips those when their `xid` is 0).
pub fn decode_server_message(bytes: &[u8]) -> Result<Decoded<ServerMessage>, DecodeError> {
    let raw = envelope(bytes)?;
    let xid = raw.xid;
    let version = raw.version;
    let notification = match raw.kind.as_str() {
        "packet_in" => body(raw.body).map(Notification::PacketIn),
        "flow_removed" => body(raw.body).map(Notification::FlowRemoved),
        "port_status" => body(raw.body).map(Notification::PortStatus),
        _ => {
            return reply_from_raw(raw).map(|d| Decoded {
                version: d.version,
                xid: d.xid,
                msg: ServerMessage::Reply(d.msg),
            });
        }
    };
    Ok(Decoded {
        version,
        xid,
        msg: ServerMessage::Notification(notification.map_err(|error| DecodeError { xid, error })?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> DecodeError {
        decode_request(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn missing_body_reads_as_empty() {
        let d = decode_request(br#"{"version":1,"xid":3,"type":"port_list"}"#).unwrap();
        assert_eq!(d.xid, 3);
        assert_eq!(d.msg, Request::PortList(Default::default()));
    }

    #[test]
    fn nested_field_errors_carry_their_path() {
        let e = err(
            r#"{"version":1,"xid":9,"type":"port_add","body":{"name":"a","vlan":{"trunks":[1,2,70000]}}}"#,
        );
        assert_eq!(e.xid, 9);
        assert_eq!(e.error.code, ErrorCode::BadField);
        assert_eq!(e.error.field.as_deref(), Some("body.vlan.trunks[2]"));
    }

    #[test]
    fn missing_field_is_named() {
        let e = err(r#"{"version":1,"xid":9,"type":"port_del","body":{}}"#);
        assert_eq!(e.error.field.as_deref(), Some("body.name"));
        let e = err(r#"{"version":1,"type":"port_del","body":{}}"#);
        assert_eq!(e.error.field.as_deref(), Some("xid"));
    }

    #[test]
    fn version_is_checked_first() {
        let e = err(r#"{"version":2,"xid":5,"type":"nope","extra":1}"#);
        assert_eq!(e.xid, 5);
        assert_eq!(e.error.code, ErrorCode::BadVersion);
        let e = err(r#"{"version":"1","xid":5,"type":"echo"}"#);
        assert_eq!(e.error.code, ErrorCode::BadField);
        assert_eq!(e.error.field.as_deref(), Some("version"));
    }

    #[test]
    fn long_unknown_type_is_quoted_short() {
        let long = "x".repeat(10_000);
        let e = err(&format!(r#"{{"version":1,"xid":1,"type":"{long}"}}"#));
        assert_eq!(e.error.code, ErrorCode::UnknownType);
        assert!(e.error.message.len() < 200);
    }

    #[test]
    fn replies_ignore_unknown_fields() {
        let d = decode_reply(
            br#"{"version":1,"xid":2,"type":"mac_flush_reply","body":{"flushed":3,"new":true}}"#,
        )
        .unwrap();
        assert_eq!(
            d.msg,
            Reply::MacFlush(super::super::MacFlushReply { flushed: 3 })
        );
    }
}
