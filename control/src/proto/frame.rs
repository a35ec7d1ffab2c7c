//! Framing: a 4-byte big-endian payload length, then the payload (UTF-8 JSON).
//!
//! ```text
//!  0               1               2               3
//! +---------------+---------------+---------------+---------------+
//! |                 payload length (bytes, big endian)            |
//! +---------------+---------------+---------------+---------------+
//! |                 payload: one UTF-8 JSON object …              |
//! ```
//!
//! A receiver rejects a header that announces more than its maximum frame length as soon as the
//! four header bytes are in, without waiting for (or reading) the body.

use super::error::{ErrorCode, ProtoError};

/// Bytes of the length header.
pub const HEADER_LEN: usize = 4;

/// Default largest payload accepted or sent (1 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1 << 20;

/// What the start of a receive buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameStatus {
    /// Not yet a whole frame; `needed` more bytes at least (header or body).
    Incomplete {
        /// Bytes missing before the frame (or its header) is complete.
        needed: usize,
    },
    /// A whole frame: the payload is `buf[HEADER_LEN..HEADER_LEN + len]`.
    Complete {
        /// Payload length.
        len: usize,
    },
    /// The header announces a payload larger than the limit.
    TooLong {
        /// The announced payload length.
        announced: u64,
    },
}

/// Looks at the start of `buf` for a frame whose payload is at most `max_len` bytes.
pub fn peek(buf: &[u8], max_len: usize) -> FrameStatus {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return FrameStatus::Incomplete {
            needed: HEADER_LEN - buf.len(),
        };
    };
    let announced = u32::from_be_bytes(*header);
    let len = match usize::try_from(announced) {
        Ok(len) if len <= max_len => len,
        _ => {
            return FrameStatus::TooLong {
                announced: u64::from(announced),
            };
        }
    };
    let have = buf.len() - HEADER_LEN;
    if have >= len {
        FrameStatus::Complete { len }
    } else {
        FrameStatus::Incomplete { needed: len - have }
    }
}

/// Appends the frame for `payload` to `out`.
///
/// # Errors
/// `limit` when the payload is longer than `max_len` (or than `u32::MAX`); `out` is unchanged.
pub fn write(out: &mut Vec<u8>, payload: &[u8], max_len: usize) -> Result<(), ProtoError> {
    let len = match u32::try_from(payload.len()) {
        Ok(len) if payload.len() <= max_len => len,
        _ => {
            return Err(ProtoError::new(
                ErrorCode::Limit,
                format!(
                    "message of {} bytes exceeds the maximum frame length {max_len}",
                    payload.len()
                ),
            ));
        }
    };
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// The frame for `payload` as a new buffer.
///
/// # Errors
/// As [`write()`].
pub fn encode(payload: &[u8], max_len: usize) -> Result<Vec<u8>, ProtoError> {
    let mut out = Vec::new();
    write(&mut out, payload, max_len)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_reports_missing_header_bytes() {
        assert_eq!(peek(&[], 16), FrameStatus::Incomplete { needed: 4 });
        assert_eq!(peek(&[0, 0], 16), FrameStatus::Incomplete { needed: 2 });
    }

    #[test]
    fn peek_reports_missing_body_bytes_then_complete() {
        let frame = encode(b"hello", 16).unwrap();
        assert_eq!(peek(&frame[..6], 16), FrameStatus::Incomplete { needed: 3 });
        assert_eq!(peek(&frame, 16), FrameStatus::Complete { len: 5 });
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        assert_eq!(peek(&two, 16), FrameStatus::Complete { len: 5 });
    }

    #[test]
    fn peek_rejects_oversized_header_before_the_body() {
        assert_eq!(
            peek(&[0xff, 0xff, 0xff, 0xff], DEFAULT_MAX_FRAME_BYTES),
            FrameStatus::TooLong {
                announced: u64::from(u32::MAX)
            }
        );
        assert_eq!(
            peek(&[0, 0, 0, 17], 16),
            FrameStatus::TooLong { announced: 17 }
        );
        assert_eq!(
            peek(&[0, 0, 0, 16], 16),
            FrameStatus::Incomplete { needed: 16 }
        );
    }

    #[test]
    fn empty_payload_is_a_complete_frame() {
        assert_eq!(peek(&[0, 0, 0, 0], 16), FrameStatus::Complete { len: 0 });
    }

    #[test]
    fn write_refuses_payload_over_the_limit() {
        let mut out = vec![1];
        let err = write(&mut out, &[0; 17], 16).unwrap_err();
        assert_eq!(err.code, ErrorCode::Limit);
        assert_eq!(out, vec![1]);
    }
}
