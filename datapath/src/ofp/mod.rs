//! The OpenFlow-like pipeline: match fields, actions and instructions, flow tables, and the
//! translation of a flow key through the tables into a compiled action list (slow path).
//!
//! - [`field`]: the match fields, their widths, masks, prerequisites and places in a key.
//! - [`action`]: actions and instructions, validated when a flow is added.
//! - [`pipeline`]: tables 0..=253 of flows, flow-mod operations with OpenFlow semantics.
//! - [`xlate`]: walks the tables for a key, producing ops and the consulted-field mask.
//! - [`rewrite`]: the frame edits the ops perform.

pub mod action;
pub mod field;
pub mod group;
pub mod meter;
pub mod pipeline;
pub mod rewrite;
pub mod xlate;

use std::fmt;

use crate::classifier::{FlowMask, Match};
use crate::flow::FlowKey;
use field::{Field, prereq_met};

/// What kind of problem a flow or flow-mod has (maps onto protocol error codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowErrorKind {
    /// A match field value or mask is invalid (width, duplicate, bits outside the mask).
    BadMatch,
    /// A field is used without its prerequisite (e.g. `tcp_dst` without `ip_proto=6`).
    BadPrereq,
    /// An unmaskable field was given a mask, or a mask is malformed.
    BadMask,
    /// An action is invalid.
    BadAction,
    /// A table number is invalid (out of range, `goto_table` backwards).
    BadTable,
    /// A port number is invalid.
    BadPort,
    /// A referenced group does not exist.
    UnknownGroup,
    /// A referenced meter does not exist.
    UnknownMeter,
    /// The table is full.
    TableFull,
    /// `check_overlap` found an overlapping flow of the same priority.
    Overlap,
    /// A group or meter with this id exists already.
    Exists,
    /// Valid OpenFlow that this switch does not implement (yet).
    Unsupported,
}

/// A rejected flow or flow-mod. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct FlowError {
    /// The kind.
    pub kind: FlowErrorKind,
    /// Where: `match.tcp_dst`, `instructions.apply[1]`, `table`, …
    pub at: String,
    /// What is wrong, for people.
    pub message: String,
}

/// One field of a match as a controller gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatchField {
    /// The field.
    pub field: Field,
    /// The value (bits outside `mask` must be zero).
    pub value: u128,
    /// `None` for an exact match.
    pub mask: Option<u128>,
}

impl fmt::Display for MatchField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mask {
            Some(m) => write!(f, "{}={:#x}/{:#x}", self.field, self.value, m),
            None => write!(f, "{}={:#x}", self.field, self.value),
        }
    }
}

/// Builds the classifier match of a list of fields, checking widths, masks, duplicates and
/// prerequisites. The fields are returned sorted (by [`field::ALL`] order), with exact masks
/// normalised to `None` and all-zero masks removed.
///
/// # Errors
/// The first invalid field.
pub fn build_match(fields: &[MatchField]) -> Result<(Match, Vec<MatchField>), FlowError> {
    let mut key = FlowKey::default();
    let mut mask = FlowKey::default();
    let mut out: Vec<MatchField> = Vec::with_capacity(fields.len());
    for mf in fields {
        let f = mf.field;
        let at = format!("match.{f}");
        let bad = |kind, message: String| FlowError {
            kind,
            at: at.clone(),
            message,
        };
        if out.iter().any(|o| o.field == f) {
            return Err(bad(FlowErrorKind::BadMatch, format!("{f} given twice")));
        }
        if mf.value > f.max_value() {
            return Err(bad(
                FlowErrorKind::BadMatch,
                format!("value {:#x} does not fit {f} ({} bits)", mf.value, f.bits()),
            ));
        }
        let m = mf.mask.unwrap_or_else(|| f.max_value());
        if m > f.max_value() {
            return Err(bad(
                FlowErrorKind::BadMask,
                format!("mask {m:#x} does not fit {f} ({} bits)", f.bits()),
            ));
        }
        if m != f.max_value() && m != 0 && !f.maskable() {
            return Err(bad(
                FlowErrorKind::BadMask,
                format!("{f} cannot be masked (match it exactly or not at all)"),
            ));
        }
        if mf.value & !m != 0 {
            return Err(bad(
                FlowErrorKind::BadMatch,
                format!(
                    "value {:#x} has bits outside its mask {m:#x} (use {:#x})",
                    mf.value,
                    mf.value & m
                ),
            ));
        }
        if m == 0 {
            continue;
        }
        f.set(&mut key, mf.value);
        f.set(&mut mask, m);
        out.push(MatchField {
            field: f,
            value: mf.value,
            mask: (m != f.max_value()).then_some(m),
        });
    }
    for mf in &out {
        let p = mf.field.prereq();
        if !prereq_met(p, &key, &mask) {
            return Err(FlowError {
                kind: FlowErrorKind::BadPrereq,
                at: format!("match.{}", mf.field),
                message: format!("{} requires {p}", mf.field),
            });
        }
    }
    out.sort_by_key(|mf| field::ALL.iter().position(|f| *f == mf.field));
    Ok((Match::new(key, FlowMask::from_bits(mask)), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mf(field: Field, value: u128, mask: Option<u128>) -> MatchField {
        MatchField { field, value, mask }
    }

    #[test]
    fn prerequisites_are_enforced() {
        let e = build_match(&[mf(Field::TcpDst, 80, None)]).unwrap_err();
        assert_eq!(e.kind, FlowErrorKind::BadPrereq);
        assert_eq!(e.at, "match.tcp_dst");
        let e = build_match(&[
            mf(Field::EthType, 0x0800, None),
            mf(Field::IpProto, 17, None),
            mf(Field::TcpDst, 80, None),
        ])
        .unwrap_err();
        assert_eq!(e.kind, FlowErrorKind::BadPrereq);
        let (m, fields) = build_match(&[
            mf(Field::TcpDst, 80, None),
            mf(Field::IpProto, 6, None),
            mf(Field::EthType, 0x0800, None),
        ])
        .unwrap();
        assert_eq!(fields[0].field, Field::EthType);
        let mut k = FlowKey {
            eth_type: 0x0800,
            nw_proto: 6,
            tp_dst: 80,
            ..FlowKey::default()
        };
        assert!(m.matches(&k));
        k.tp_dst = 81;
        assert!(!m.matches(&k));
    }

    #[test]
    fn masks_are_checked() {
        let e = build_match(&[mf(Field::InPort, 1, Some(1))]).unwrap_err();
        assert_eq!(e.kind, FlowErrorKind::BadMask);
        let e = build_match(&[
            mf(Field::EthType, 0x0800, None),
            mf(Field::IpDst, 0x0a00_0001, Some(0xffff_ff00)),
        ])
        .unwrap_err();
        assert_eq!(e.kind, FlowErrorKind::BadMatch);
        assert!(e.message.contains("0xa000000"), "{}", e.message);
        let e = build_match(&[mf(Field::EthType, 0x1_0000, None)]).unwrap_err();
        assert_eq!(e.kind, FlowErrorKind::BadMatch);
        let e = build_match(&[mf(Field::InPort, 1, None), mf(Field::InPort, 2, None)]).unwrap_err();
        assert!(e.message.contains("twice"));
        // A zero mask is no match at all.
        let (m, fields) = build_match(&[mf(Field::EthSrc, 0, Some(0))]).unwrap();
        assert!(fields.is_empty());
        assert_eq!(m, Match::any());
    }
}
