//! Controller messages: `subscribe` / `unsubscribe`, `packet_out`, and the notifications the
//! server sends on its own account (`packet_in`, `flow_removed`, `port_status`, all with `xid`
//! 0) to the sessions subscribed to their kind.
//!
//! A notification's body ends with `lost`: how many notifications the receiving session has lost
//! so far (dropped because its queue was above the server's notification bound). The server
//! encodes each event once and writes the session's own `lost` into it
//! ([`with_lost`]), which relies on `lost` being the last field of every notification body.

use serde::{Deserialize, Serialize};

use super::flow::{ActionDesc, MatchDesc};
use super::msg::PortDesc;

/// Shortest frame a `packet_out` carries (an Ethernet header).
pub const MIN_PACKET_OUT_LEN: usize = 14;
/// Longest frame a `packet_out` carries.
pub const MAX_PACKET_OUT_LEN: usize = 65_535;

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// `subscribe`: which notifications the session wants. An omitted kind is wanted; a second
/// `subscribe` replaces the first; all `false` is the same as `unsubscribe`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    /// `packet_in` notifications (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_in: Option<bool>,
    /// `flow_removed` notifications (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_removed: Option<bool>,
    /// `port_status` notifications (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_status: Option<bool>,
}

impl SubscribeRequest {
    /// Every kind.
    pub fn all() -> Self {
        Self::default()
    }

    /// Exactly the kinds given.
    pub fn only(packet_in: bool, flow_removed: bool, port_status: bool) -> Self {
        Self {
            packet_in: Some(packet_in),
            flow_removed: Some(flow_removed),
            port_status: Some(port_status),
        }
    }

    /// The subscription this request asks for.
    pub fn subscription(&self) -> Subscription {
        Subscription {
            packet_in: self.packet_in.unwrap_or(true),
            flow_removed: self.flow_removed.unwrap_or(true),
            port_status: self.port_status.unwrap_or(true),
        }
    }
}

/// The notification kinds a session receives (none by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// `packet_in`.
    pub packet_in: bool,
    /// `flow_removed`.
    pub flow_removed: bool,
    /// `port_status`.
    pub port_status: bool,
}

impl Subscription {
    /// Whether any kind is wanted.
    pub fn any(&self) -> bool {
        self.packet_in || self.flow_removed || self.port_status
    }
}

/// `subscribe_reply` and `unsubscribe_reply`: the subscription now in force, and the
/// notifications this session has lost so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeReply {
    /// `packet_in` notifications are sent.
    pub packet_in: bool,
    /// `flow_removed` notifications are sent.
    pub flow_removed: bool,
    /// `port_status` notifications are sent.
    pub port_status: bool,
    /// Notifications this session has lost (its queue was full) since it connected.
    #[serde(default)]
    pub lost: u64,
}

/// `packet_out`: inject a frame.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketOutRequest {
    /// Ingress port number; 0 (or omitted) = the controller.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub in_port: u32,
    /// The frame, hexadecimal ([`MIN_PACKET_OUT_LEN`]..=[`MAX_PACKET_OUT_LEN`] bytes).
    pub data: String,
    /// Actions to run on the frame; omitted = through the flow tables from table 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<ActionDesc>>,
}

/// `packet_in` notification: a frame a flow sent to the controller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketInEvent {
    /// Ingress port (0: the frame came from a `packet_out` without one).
    pub in_port: u32,
    /// Table of the flow that sent it (255 for a `packet_out`'s own actions).
    pub table: u8,
    /// That flow's cookie.
    pub cookie: u64,
    /// `action`, `no_match` or `invalid_ttl` (later versions may add reasons).
    pub reason: String,
    /// Length of the whole frame.
    pub total_len: u32,
    /// The first `max_len` bytes of the frame, lowercase hexadecimal.
    pub data: String,
    /// `in_port` and the pipeline fields that are not zero at the `controller` action
    /// (`metadata`, `reg0`..`reg7`, `tun_id`, `tun_src`, `tun_dst`, `ct_state`, `ct_zone`,
    /// `ct_mark`), in flow-match form.
    #[serde(rename = "match", default)]
    pub fields: MatchDesc,
    /// Notifications this session has lost so far.
    #[serde(default)]
    pub lost: u64,
}

impl PacketInEvent {
    /// The frame bytes (`None` if `data` is not hexadecimal).
    pub fn frame(&self) -> Option<Vec<u8>> {
        hex_decode(&self.data).ok()
    }
}

/// `flow_removed` notification: a flow with `send_flow_rem` was removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRemovedEvent {
    /// Table.
    pub table: u8,
    /// Priority.
    pub priority: u16,
    /// Cookie.
    pub cookie: u64,
    /// The match.
    #[serde(rename = "match", default)]
    pub fields: MatchDesc,
    /// `idle_timeout`, `hard_timeout`, `delete`, `group_delete`, `meter_delete`.
    pub reason: String,
    /// How long the flow existed, milliseconds.
    pub duration_ms: u64,
    /// Its idle timeout, seconds.
    #[serde(default)]
    pub idle_timeout: u16,
    /// Its hard timeout, seconds.
    #[serde(default)]
    pub hard_timeout: u16,
    /// Final packet count.
    pub packets: u64,
    /// Final byte count.
    pub bytes: u64,
    /// Notifications this session has lost so far.
    #[serde(default)]
    pub lost: u64,
}

/// `port_status` notification: a port was added or removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatusEvent {
    /// `add`, `delete` or `modify` (its link went up or down: `port.link_up`).
    pub reason: String,
    /// The port, as in `port_list_reply`.
    pub port: PortDesc,
    /// Notifications this session has lost so far.
    #[serde(default)]
    pub lost: u64,
}

/// A notification (server → subscribed sessions, `xid` 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Notification {
    /// `packet_in`.
    PacketIn(PacketInEvent),
    /// `flow_removed`.
    FlowRemoved(FlowRemovedEvent),
    /// `port_status`.
    PortStatus(PortStatusEvent),
}

impl Notification {
    /// Every notification type name.
    pub const TYPES: [&'static str; 3] = ["packet_in", "flow_removed", "port_status"];

    /// The `type` of this notification.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::PacketIn(_) => "packet_in",
            Self::FlowRemoved(_) => "flow_removed",
            Self::PortStatus(_) => "port_status",
        }
    }

    /// Notifications the receiving session had lost when this one was sent.
    pub fn lost(&self) -> u64 {
        match self {
            Self::PacketIn(n) => n.lost,
            Self::FlowRemoved(n) => n.lost,
            Self::PortStatus(n) => n.lost,
        }
    }

    /// Whether a session with subscription `sub` receives this notification.
    pub fn wanted_by(&self, sub: &Subscription) -> bool {
        match self {
            Self::PacketIn(_) => sub.packet_in,
            Self::FlowRemoved(_) => sub.flow_removed,
            Self::PortStatus(_) => sub.port_status,
        }
    }
}

/// A message from the server: a reply (or connection error) or a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerMessage {
    /// A reply to a request (or an `error`).
    Reply(super::msg::Reply),
    /// A notification.
    Notification(Notification),
}

/// The suffix of an encoded notification whose `lost` is 0 (see [`with_lost`]).
const LOST_ZERO_SUFFIX: &[u8] = b"\"lost\":0}}";

/// The payload of a notification encoded with `lost` = 0 (by
/// [`super::codec::encode_notification`]), with `lost` = `lost` instead. `None` if the payload
/// does not end as expected.
pub fn with_lost(payload: &[u8], lost: u64) -> Option<Vec<u8>> {
    let head = payload.strip_suffix(LOST_ZERO_SUFFIX)?;
    let mut out = Vec::with_capacity(payload.len() + 20);
    out.extend_from_slice(head);
    out.extend_from_slice(b"\"lost\":");
    out.extend_from_slice(lost.to_string().as_bytes());
    out.extend_from_slice(b"}}");
    Some(out)
}

/// Lowercase hexadecimal.
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Bytes from hexadecimal (either case, no separators).
///
/// # Errors
/// An odd number of digits or a character that is not a hex digit (the message says which).
pub fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    let digit = |i: usize, c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
            .ok_or_else(|| format!("not a hex digit at offset {i}"))
    };
    s.as_bytes()
        .chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| Ok(digit(2 * i, pair[0])? << 4 | digit(2 * i + 1, pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = hex_encode(&bytes);
        assert!(text.starts_with("000102") && text.ends_with("feff"));
        assert_eq!(hex_decode(&text).unwrap(), bytes);
        assert_eq!(hex_decode("ABcd").unwrap(), [0xab, 0xcd]);
        assert!(hex_decode("abc").unwrap_err().contains("odd"));
        assert!(hex_decode("zz").unwrap_err().contains("offset 0"));
        assert!(hex_decode("00 1").is_err());
        assert!(hex_decode("é0").is_err());
    }

    #[test]
    fn subscribe_defaults_to_every_kind() {
        let all = SubscribeRequest::all().subscription();
        assert!(all.packet_in && all.flow_removed && all.port_status);
        let some = SubscribeRequest {
            flow_removed: Some(false),
            ..SubscribeRequest::default()
        }
        .subscription();
        assert!(some.packet_in && !some.flow_removed && some.port_status);
        assert!(
            !SubscribeRequest::only(false, false, false)
                .subscription()
                .any()
        );
    }

    #[test]
    fn lost_is_spliced_into_the_encoded_body() {
        let n = Notification::PortStatus(PortStatusEvent {
            reason: "add".into(),
            ..PortStatusEvent::default()
        });
        let payload = super::super::codec::encode_notification(&n).unwrap();
        let spliced = with_lost(&payload, 12_345).unwrap();
        let d = super::super::codec::decode_server_message(&spliced).unwrap();
        assert_eq!(d.xid, 0);
        let ServerMessage::Notification(Notification::PortStatus(p)) = d.msg else {
            panic!("not a port_status: {:?}", d.msg)
        };
        assert_eq!((p.reason.as_str(), p.lost), ("add", 12_345));
        assert_eq!(with_lost(b"{}", 1), None);
    }
}
