//! The control protocol: frames, envelope, messages, error codes (sans-IO).
//!
//! A connection carries frames in both directions; each frame is a 4-byte big-endian length
//! followed by that many bytes of UTF-8 JSON (see [`frame`]). Each JSON message is an object
//!
//! ```json
//! {"version": 1, "xid": 42, "type": "port_add", "body": {"name": "veth0"}}
//! ```
//!
//! - `version` — protocol version of the message ([`VERSION`]); a server answers a version it does
//!   not speak with a `bad_version` error.
//! - `xid` — chosen by the sender of a request and echoed in every reply to it (multipart replies
//!   repeat it on each part). `0` is reserved for messages the server sends on its own
//!   (notifications: [`notify`]) and for errors about frames whose `xid` could not be read.
//! - `type` — snake_case message type; requests have plain names (`port_add`), their replies
//!   append `_reply` (`port_add_reply`), and any request may instead be answered by `error`.
//! - `body` — the type's fields; may be omitted when empty.
//!
//! Requests are decoded strictly (unknown fields, wrong types, missing fields are errors with the
//! path of the field, e.g. `body.vlan.trunks[2]`), replies tolerantly (unknown fields are ignored,
//! so a newer server can add reply fields without breaking older clients).

pub mod bundle_op;
pub mod codec;
pub mod error;
pub mod flow;
pub mod frame;
pub mod group;
pub mod msg;
pub mod notify;

pub use bundle_op::{BundleOpDesc, GROUP_MOD_KEY, METER_MOD_KEY, OpPathMap};
pub use codec::{
    DecodeError, Decoded, decode_reply, decode_request, decode_server_message, encode_notification,
    encode_reply, encode_request,
};
pub use error::{ErrorCode, ErrorReply, ProtoError};
pub use flow::*;
pub use frame::{DEFAULT_MAX_FRAME_BYTES, FrameStatus, HEADER_LEN};
pub use group::*;
pub use msg::*;
pub use notify::*;

/// The protocol version this crate speaks.
pub const VERSION: u32 = 1;

/// Every protocol version this crate speaks, oldest first.
pub const SUPPORTED_VERSIONS: &[u32] = &[VERSION];
