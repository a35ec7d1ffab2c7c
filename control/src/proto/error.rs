//! Protocol errors: stable numeric codes, a message and the path of the offending field.
//!
//! Codes are part of the protocol: a code is never renumbered or reused; new codes are appended.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Stable error codes of the `error` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The frame is not a UTF-8 JSON object, or its length is over the limit.
    BadFrame = 1,
    /// The message's `version` is not one the receiver speaks.
    BadVersion = 2,
    /// The message's `type` is not a request the receiver knows.
    UnknownType = 3,
    /// A field is missing, unknown, of the wrong type or out of range.
    BadField = 4,
    /// The named object (a port) does not exist.
    NotFound = 5,
    /// The object already exists.
    Exists = 6,
    /// A limit was reached (ports, sessions, frame length).
    Limit = 7,
    /// The port backend could not be opened (device missing, backend unsupported, system call).
    PortFailed = 8,
    /// The daemon failed internally (a worker did not answer); nothing was changed.
    Internal = 9,
    /// A flow's match is invalid: value or mask out of the field, mask on an unmaskable
    /// field, missing prerequisite, field given twice.
    BadMatch = 10,
    /// A flow's action or instruction is invalid: field not writable, port out of range,
    /// `goto_table` backwards, too many actions, missing prerequisite of an action.
    BadAction = 11,
    /// The flow table is full.
    TableFull = 12,
    /// `check_overlap`: the flow overlaps one of the same priority.
    Overlap = 13,
    /// Valid, but not implemented by this switch (the `controller` action today).
    Unsupported = 14,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [Self; 14] = [
        Self::BadFrame,
        Self::BadVersion,
        Self::UnknownType,
        Self::BadField,
        Self::NotFound,
        Self::Exists,
        Self::Limit,
        Self::PortFailed,
        Self::Internal,
        Self::BadMatch,
        Self::BadAction,
        Self::TableFull,
        Self::Overlap,
        Self::Unsupported,
    ];

    /// The numeric code sent on the wire.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code for a number, if this version knows it.
    pub fn from_u16(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_u16() == code)
    }

    /// Stable snake_case name, sent next to the number.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadFrame => "bad_frame",
            Self::BadVersion => "bad_version",
            Self::UnknownType => "unknown_type",
            Self::BadField => "bad_field",
            Self::NotFound => "not_found",
            Self::Exists => "exists",
            Self::Limit => "limit",
            Self::PortFailed => "port_failed",
            Self::Internal => "internal",
            Self::BadMatch => "bad_match",
            Self::BadAction => "bad_action",
            Self::TableFull => "table_full",
            Self::Overlap => "overlap",
            Self::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol error: what the `error` reply carries, in typed form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ProtoError {
    /// The code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// Path of the offending field from the message root (`body.vlan.trunks[2]`), if any.
    pub field: Option<String>,
}

impl ProtoError {
    /// An error without a field.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// An error about `field` (a path from the message root).
    pub fn field(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// A `bad_field` error about `field`.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::field(ErrorCode::BadField, field, message)
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {} ({})", field, self.message, self.code),
            None => write!(f, "{} ({})", self.message, self.code),
        }
    }
}

/// Body of the `error` reply, as on the wire.
///
/// `code` stays a number so that a client can carry codes added by a newer server;
/// [`ErrorReply::error_code`] gives the typed code when it is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Numeric [`ErrorCode`].
    pub code: u16,
    /// The code's name (`bad_field`).
    pub name: String,
    /// Human-readable explanation.
    pub message: String,
    /// Path of the offending field from the message root, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorReply {
    /// The typed code, if this version knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u16(self.code)
    }
}

impl From<ProtoError> for ErrorReply {
    fn from(e: ProtoError) -> Self {
        Self {
            code: e.code.as_u16(),
            name: e.code.as_str().to_owned(),
            message: e.message,
            field: e.field,
        }
    }
}

impl fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(
                f,
                "{}: {} ({} {})",
                field, self.message, self.code, self.name
            ),
            None => write!(f, "{} ({} {})", self.message, self.code, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let table: Vec<(u16, &str)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_u16(), c.as_str()))
            .collect();
        assert_eq!(
            table,
            [
                (1, "bad_frame"),
                (2, "bad_version"),
                (3, "unknown_type"),
                (4, "bad_field"),
                (5, "not_found"),
                (6, "exists"),
                (7, "limit"),
                (8, "port_failed"),
                (9, "internal"),
                (10, "bad_match"),
                (11, "bad_action"),
                (12, "table_full"),
                (13, "overlap"),
                (14, "unsupported"),
            ]
        );
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u16(c.as_u16()), Some(c));
        }
        assert_eq!(ErrorCode::from_u16(0), None);
        assert_eq!(ErrorCode::from_u16(15), None);
    }

    #[test]
    fn display_names_field_and_code() {
        let e = ProtoError::bad_field("body.queues", "must be at least 1");
        assert_eq!(e.to_string(), "body.queues: must be at least 1 (bad_field)");
        let r = ErrorReply::from(e);
        assert_eq!(r.code, 4);
        assert_eq!(
            r.to_string(),
            "body.queues: must be at least 1 (4 bad_field)"
        );
    }
}
