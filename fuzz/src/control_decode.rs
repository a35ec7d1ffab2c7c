//! `control_decode`: arbitrary bytes into the control protocol's decoders.
//!
//! The input is used twice:
//! 1. as a receive buffer: frames are taken off its front with `frame::peek` (limit
//!    [`MAX_FRAME_LEN`], small so that over-long headers are common) as the server does, and each
//!    complete payload is decoded as a request and as a reply;
//! 2. as one payload, decoded directly (so the fuzzer can explore the JSON without first
//!    finding a matching length prefix).
//!
//! Invariants: nothing panics; `peek` reports a status consistent with the bytes; an error
//! message stays within a linear bound of the input (no amplification); a message that decodes
//! is encoded again and decodes to the same value with the same `xid`.

use control::proto::frame::{self, FrameStatus, HEADER_LEN};
use control::proto::{self, DecodeError};

/// Largest payload the fuzz receive buffer accepts.
pub const MAX_FRAME_LEN: usize = 4096;

/// Upper bound of an error message for an input of `len` bytes: fixed wording, plus quoted
/// input, which `Debug` escaping may grow up to 6 times (`\u{1}`).
fn message_bound(len: usize) -> usize {
    1024 + 8 * len
}

fn check_error(e: &DecodeError, input_len: usize) {
    assert!(
        e.error.message.len() <= message_bound(input_len),
        "error message of {} bytes for a {input_len}-byte input: {}",
        e.error.message.len(),
        e.error.message
    );
}

fn decode_payload(payload: &[u8]) {
    match proto::decode_request(payload) {
        Ok(d) => {
            let again = proto::encode_request(d.xid, &d.msg).unwrap();
            let back = proto::decode_request(&again).unwrap();
            assert_eq!(back.xid, d.xid);
            assert_eq!(back.msg, d.msg);
        }
        Err(e) => check_error(&e, payload.len()),
    }
    match proto::decode_reply(payload) {
        Ok(d) => {
            let again = proto::encode_reply(d.xid, &d.msg).unwrap();
            let back = proto::decode_reply(&again).unwrap();
            assert_eq!(back.xid, d.xid);
            assert_eq!(back.msg, d.msg);
        }
        Err(e) => check_error(&e, payload.len()),
    }
}

/// The fuzz body; see the module docs.
pub fn control_decode(data: &[u8]) {
    let mut buf = data;
    loop {
        match frame::peek(buf, MAX_FRAME_LEN) {
            FrameStatus::Incomplete { needed } => {
                assert!(needed > 0);
                if buf.len() < HEADER_LEN {
                    assert_eq!(needed, HEADER_LEN - buf.len());
                } else {
                    let announced = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    let announced = usize::try_from(announced).unwrap();
                    assert!(announced <= MAX_FRAME_LEN);
                    assert_eq!(buf.len() - HEADER_LEN + needed, announced);
                }
                break;
            }
            FrameStatus::TooLong { announced } => {
                assert!(buf.len() >= HEADER_LEN);
                assert!(announced > MAX_FRAME_LEN as u64);
                break;
            }
            FrameStatus::Complete { len } => {
                assert!(len <= MAX_FRAME_LEN);
                let payload = &buf[HEADER_LEN..HEADER_LEN + len];
                decode_payload(payload);
                // Re-framing the payload gives back the same bytes.
                let framed = frame::encode(payload, MAX_FRAME_LEN).unwrap();
                assert_eq!(&framed[..], &buf[..HEADER_LEN + len]);
                buf = &buf[HEADER_LEN + len..];
            }
        }
    }
    decode_payload(data);
}
