//! OVS-style group and meter text.
//!
//! - Groups: `group_id=1,type=select,bucket=weight:10,actions=output:p2,bucket=output:p3`.
//!   `bucket=` starts a bucket; inside it `weight:N`, `watch_port:P` (also with `=`), then
//!   `actions=A,B,…` or bare actions (`bucket=output:2`). Settings (`group_id=`, `type=`) come
//!   before the first bucket. Types `all`, `select`, `indirect`, `ff` (or `fast_failover`).
//! - Meters: `meter=1,pktps,burst,band=type=drop,rate=100,burst_size=10` (one drop band; `kbps`
//!   is the default unit; `burst_size` needs the `burst` flag; `stats` is accepted, counters
//!   are always kept). `bands=` and spaces instead of commas are read too, so the description
//!   part of `vsctl dump-meters` output reads back.
//!
//! Errors carry the span of the offending token, as for flows; [`ParsedGroup::span_of`] and
//! [`ParsedMeter::span_of`] map a server error's field (`buckets[1].actions[0]`, `rate`) back to
//! the token that produced it.

use std::fmt::Write as _;

use datapath::ofp::action::Action;
use datapath::ofp::group::{Bucket, Group, GroupType};
use datapath::ofp::meter::{MeterConfig, MeterUnit};
use datapath::ofp::pipeline::{FlowModCommand, GroupMod, MeterMod, ModCommand};

use super::{ParseError, Parser, Span, Tok, action_text, fail, split_top};
use crate::proto::group::default_weight;

/// Where the parts of one bucket were.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct BucketSpans {
    /// From `bucket=` to the bucket's last token.
    whole: Span,
    weight: Option<Span>,
    watch_port: Option<Span>,
    /// From the first action to the last.
    actions_part: Option<Span>,
    actions: Vec<Span>,
}

/// A parsed group line and where each part came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedGroup {
    /// The group-mod.
    pub group_mod: GroupMod,
    whole: Span,
    group_id: Option<Span>,
    kind: Option<Span>,
    buckets: Vec<BucketSpans>,
}

fn index_of(s: &str, prefix: &str) -> Option<(usize, String)> {
    let rest = s.strip_prefix(prefix)?;
    let (i, rest) = rest.split_once(']')?;
    Some((i.parse().ok()?, rest.to_owned()))
}

impl ParsedGroup {
    /// The span of the token behind an error location relative to the request (`group_id`,
    /// `type`, `buckets`, `buckets[1].watch_port`, `buckets[1].actions[0]`), falling back to
    /// the nearest enclosing part.
    pub fn span_of(&self, at: &str) -> Span {
        let found = match at {
            "group_id" => self.group_id,
            "type" => self.kind,
            "buckets" => match (self.buckets.first(), self.buckets.last()) {
                (Some(a), Some(b)) => Some(Span::new(a.whole.start, b.whole.end)),
                _ => None,
            },
            _ => index_of(at, "buckets[").and_then(|(i, rest)| {
                let b = self.buckets.get(i)?;
                let inner = match rest.as_str() {
                    ".weight" => b.weight,
                    ".watch_port" => b.watch_port,
                    ".actions" => b.actions_part,
                    r => index_of(r, ".actions[")
                        .and_then(|(j, _)| b.actions.get(j).copied())
                        .or(b.actions_part),
                };
                Some(inner.unwrap_or(b.whole))
            }),
        };
        found.unwrap_or(self.whole)
    }
}

/// A bucket being read.
#[derive(Debug, Default)]
struct BucketBuild {
    weight: Option<u16>,
    watch_port: Option<u32>,
    actions: Vec<Action>,
    /// `actions=` seen: every further item is an action.
    in_actions: bool,
    /// Span of a `drop`.
    drop: Option<Span>,
    spans: BucketSpans,
}

/// `name:V` or `name=V` (case-insensitive name): `V`.
fn param<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    let head = text.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    text[name.len()..].strip_prefix([':', '='])
}

/// A token for the text after `skip` bytes of `tok` (`bucket=output:1` → `output:1`).
fn sub_tok<'a>(tok: Tok<'a>, skip: usize) -> Option<Tok<'a>> {
    let text = tok.text.get(skip..)?;
    (!text.trim().is_empty()).then_some(Tok {
        text,
        span: Span::new(tok.span.start + skip, tok.span.end),
    })
}

const INSTRUCTIONS: [&str; 5] = [
    "goto_table",
    "resubmit",
    "write_actions",
    "clear_actions",
    "write_metadata",
];

impl Parser<'_, '_> {
    fn bucket_item(&self, b: &mut BucketBuild, tok: Tok<'_>) -> Result<(), ParseError> {
        b.spans.whole.end = tok.span.end;
        let lower = tok.text.to_ascii_lowercase();
        if lower.starts_with("group_id=") || lower.starts_with("type=") {
            return self.err(
                tok.span,
                "group settings must come before the first bucket=",
            );
        }
        if !b.in_actions {
            if let Some(v) = param(tok.text, "weight") {
                if b.weight.is_some() {
                    return self.err(tok.span, "weight given twice in one bucket");
                }
                b.weight = Some(self.int(tok, v.trim(), "weight")?);
                b.spans.weight = Some(tok.span);
                return Ok(());
            }
            if let Some(v) = param(tok.text, "watch_port") {
                if b.watch_port.is_some() {
                    return self.err(tok.span, "watch_port given twice in one bucket");
                }
                b.watch_port = Some(self.port(tok, v.trim())?);
                b.spans.watch_port = Some(tok.span);
                return Ok(());
            }
            for unsupported in ["watch_group", "bucket_id"] {
                if param(tok.text, unsupported).is_some() {
                    return self.err(tok.span, format!("{unsupported} is not supported"));
                }
            }
            for key in ["actions=", "action="] {
                if lower.starts_with(key) {
                    b.in_actions = true;
                    return match sub_tok(tok, key.len()) {
                        Some(first) => self.bucket_action(b, first),
                        None => Ok(()),
                    };
                }
            }
        }
        self.bucket_action(b, tok)
    }

    fn bucket_action(&self, b: &mut BucketBuild, tok: Tok<'_>) -> Result<(), ParseError> {
        b.in_actions = true;
        let lower = tok.text.to_ascii_lowercase();
        let alone = "`drop` must be the only action of its bucket";
        if b.drop.is_some() {
            return self.err(tok.span, alone);
        }
        if lower == "drop" {
            if !b.actions.is_empty() {
                return self.err(tok.span, alone);
            }
            b.drop = Some(tok.span);
        } else {
            if INSTRUCTIONS.iter().any(|i| lower.starts_with(i)) {
                return self.err(
                    tok.span,
                    "instructions are not allowed in a group bucket (only actions)",
                );
            }
            b.actions.push(self.action(tok)?);
            b.spans.actions.push(tok.span);
        }
        let start = b.spans.actions_part.map_or(tok.span.start, |s| s.start);
        b.spans.actions_part = Some(Span::new(start, tok.span.end));
        Ok(())
    }
}

fn group_type(name: &str) -> Option<GroupType> {
    Some(match name.to_ascii_lowercase().as_str() {
        "all" => GroupType::All,
        "select" => GroupType::Select,
        "indirect" => GroupType::Indirect,
        "ff" | "fast_failover" => GroupType::FastFailover,
        _ => return None,
    })
}

fn type_text(kind: GroupType) -> &'static str {
    match kind {
        GroupType::All => "all",
        GroupType::Select => "select",
        GroupType::Indirect => "indirect",
        GroupType::FastFailover => "ff",
    }
}

/// Parses one group line for `command`: `add`/`modify` need `group_id=N` and `type=T` and
/// take buckets; `delete` takes only `group_id=N` (omitted or `all`: every group). Port names
/// (`output:p2`, `watch_port:p1`) are resolved with `ports`.
///
/// # Errors
/// The first syntax error, with the offending token. What only the datapath judges (an
/// indirect group with two buckets, a fast-failover bucket without `watch_port`, `group:N`
/// inside a bucket) is left to it.
pub fn parse_group(
    input: &str,
    command: ModCommand,
    ports: &dyn Fn(&str) -> Option<u32>,
) -> Result<ParsedGroup, ParseError> {
    let p = Parser::new(input, FlowModCommand::Add, ports);
    let whole = Span::new(0, input.len());
    let end = Span::new(input.len(), input.len());
    let delete = command == ModCommand::Delete;
    // `Some(None)`: `group_id=all`.
    let mut id: Option<Option<u32>> = None;
    let mut kind: Option<GroupType> = None;
    let mut out = ParsedGroup {
        group_mod: GroupMod {
            command,
            id: None,
            kind: GroupType::All,
            buckets: Vec::new(),
        },
        whole,
        group_id: None,
        kind: None,
        buckets: Vec::new(),
    };
    let mut buckets: Vec<BucketBuild> = Vec::new();
    for tok in split_top(input, 0, |b| b == b',' || b.is_ascii_whitespace()) {
        let lower = tok.text.to_ascii_lowercase();
        if lower.starts_with("bucket=") {
            if delete {
                return p.err(
                    tok.span,
                    "buckets are not allowed here (give only group_id=N)",
                );
            }
            let mut b = BucketBuild::default();
            b.spans.whole = tok.span;
            if let Some(first) = sub_tok(tok, "bucket=".len()) {
                p.bucket_item(&mut b, first)?;
            }
            buckets.push(b);
            continue;
        }
        if let Some(b) = buckets.last_mut() {
            p.bucket_item(b, tok)?;
            continue;
        }
        let (key, val) = match tok.text.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (lower.clone(), None),
        };
        if val == Some("") {
            return p.err(tok.span, format!("`{key}=` needs a value"));
        }
        match (key.as_str(), val) {
            ("group_id", Some(v)) => {
                if id.is_some() {
                    return p.err(tok.span, "group_id given twice");
                }
                id = Some(if v.eq_ignore_ascii_case("all") {
                    if !delete {
                        return p.err(tok.span, "group_id=all selects groups to delete only");
                    }
                    None
                } else {
                    Some(p.int(tok, v, "group id")?)
                });
                out.group_id = Some(tok.span);
            }
            ("type", Some(v)) => {
                if delete {
                    return p.err(
                        tok.span,
                        "a type is not allowed here (give only group_id=N)",
                    );
                }
                if kind.is_some() {
                    return p.err(tok.span, "type given twice");
                }
                kind = Some(group_type(v).map_or_else(
                    || {
                        p.err(
                            tok.span,
                            format!("unknown group type `{v}` (all, select, indirect, ff)"),
                        )
                    },
                    Ok,
                )?);
                out.kind = Some(tok.span);
            }
            ("selection_method" | "selection_method_param" | "fields", _) => {
                return p.err(
                    tok.span,
                    format!("{key} is not supported (select groups hash the 5-tuple)"),
                );
            }
            _ => {
                return p.err(
                    tok.span,
                    format!("unknown group setting `{key}` (expected group_id=, type= or bucket=)"),
                );
            }
        }
    }
    if delete {
        out.group_mod.id = id.flatten();
        return Ok(out);
    }
    let Some(Some(id)) = id else {
        return fail(input, end, "missing group_id=N");
    };
    let Some(kind) = kind else {
        return fail(
            input,
            end,
            "missing type=all, type=select, type=indirect or type=ff",
        );
    };
    out.group_mod.id = Some(id);
    out.group_mod.kind = kind;
    for b in buckets {
        out.group_mod.buckets.push(Bucket {
            weight: b.weight.unwrap_or_else(|| default_weight(kind)),
            watch_port: b.watch_port,
            actions: b.actions,
        });
        out.buckets.push(b.spans);
    }
    Ok(out)
}

/// Writes a group-mod as one line that [`parse_group`] reads back: `group_id=N,type=T`, then
/// each bucket as `bucket=weight:W,watch_port:P,actions=…` (weight for select groups or when
/// not 0, `actions=drop` for an empty bucket); `group_id=N` (or `group_id=all`) for delete.
pub fn format_group_mod(gm: &GroupMod, names: &dyn Fn(u32) -> Option<String>) -> String {
    let id = gm.id.map_or_else(|| "all".to_owned(), |i| i.to_string());
    let mut out = format!("group_id={id}");
    if gm.command == ModCommand::Delete {
        return out;
    }
    let _ = write!(out, ",type={}", type_text(gm.kind));
    for b in &gm.buckets {
        out.push_str(",bucket=");
        if gm.kind == GroupType::Select || b.weight != 0 {
            let _ = write!(out, "weight:{},", b.weight);
        }
        if let Some(p) = b.watch_port {
            let _ = write!(out, "watch_port:{},", super::port_text(p, names));
        }
        out.push_str("actions=");
        if b.actions.is_empty() {
            out.push_str("drop");
        } else {
            let list: Vec<String> = b.actions.iter().map(|a| action_text(a, names)).collect();
            out.push_str(&list.join(","));
        }
    }
    out
}

/// Writes an installed group as the `add` line that recreates it.
pub fn format_group(g: &Group, names: &dyn Fn(u32) -> Option<String>) -> String {
    format_group_mod(
        &GroupMod {
            command: ModCommand::Add,
            id: Some(g.id),
            kind: g.kind,
            buckets: g.buckets.clone(),
        },
        names,
    )
}

// ---------------------------------------------------------------------------------------------
// Meters
// ---------------------------------------------------------------------------------------------

/// A parsed meter line and where each part came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedMeter {
    /// The meter-mod.
    pub meter_mod: MeterMod,
    whole: Span,
    meter_id: Option<Span>,
    unit: Option<Span>,
    band: Option<Span>,
    rate: Option<Span>,
    burst_size: Option<Span>,
}

impl ParsedMeter {
    /// The span of the token behind an error location relative to the request (`meter_id`,
    /// `unit`, `rate`, `burst`), falling back to the band or the whole line.
    pub fn span_of(&self, at: &str) -> Span {
        let found = match at {
            "meter_id" => self.meter_id,
            "unit" => self.unit,
            "rate" => self.rate.or(self.band),
            "burst" => self.burst_size.or(self.band),
            _ => None,
        };
        found.unwrap_or(self.whole)
    }
}

/// Sets `slot` from a token once.
fn once<T>(
    p: &Parser<'_, '_>,
    slot: &mut Option<(T, Span)>,
    tok: Tok<'_>,
    what: &str,
    value: T,
) -> Result<(), ParseError> {
    if slot.is_some() {
        return p.err(tok.span, format!("{what} given twice"));
    }
    *slot = Some((value, tok.span));
    Ok(())
}

/// Parses one meter line for `command`: `add`/`modify` need `meter=N` and a drop band with a
/// rate; `delete` takes only `meter=N` (omitted or `all`: every meter).
///
/// # Errors
/// The first syntax error, with the offending token. Ranges (meter id 0, rate 0) are left to
/// the server.
pub fn parse_meter(input: &str, command: ModCommand) -> Result<ParsedMeter, ParseError> {
    let p = Parser::new(input, FlowModCommand::Add, &|_| None);
    let end = Span::new(input.len(), input.len());
    let delete = command == ModCommand::Delete;
    let mut id: Option<(Option<u32>, Span)> = None;
    let mut unit: Option<(MeterUnit, Span)> = None;
    let mut burst_flag = false;
    let mut band: Option<((), Span)> = None;
    let mut band_type: Option<((), Span)> = None;
    let mut rate: Option<(u64, Span)> = None;
    let mut burst_size: Option<(u64, Span)> = None;
    for tok in split_top(input, 0, |b| b == b',' || b.is_ascii_whitespace()) {
        let lower = tok.text.to_ascii_lowercase();
        // `band=type=drop`: the band starts, and its first item is in the same token.
        let (tok, lower) = match ["band=", "bands="].iter().find(|k| lower.starts_with(*k)) {
            Some(k) => {
                if delete {
                    return p.err(tok.span, "a band is not allowed here (give only meter=N)");
                }
                if band.is_some() {
                    return p.err(tok.span, "only one band is supported");
                }
                band = Some(((), tok.span));
                match sub_tok(tok, k.len()) {
                    Some(t) => (t, t.text.to_ascii_lowercase()),
                    None => continue,
                }
            }
            None => (tok, lower),
        };
        if let Some(((), b)) = &mut band {
            b.end = tok.span.end;
        }
        let (key, val) = match lower.split_once('=') {
            Some((k, _)) => (k, tok.text.split_once('=').map(|(_, v)| v.trim())),
            None => (lower.as_str(), None),
        };
        if val == Some("") {
            return p.err(tok.span, format!("`{key}=` needs a value"));
        }
        if delete && key != "meter" {
            return p.err(tok.span, "only meter=N is allowed here");
        }
        let in_band = band.is_some();
        match (key, val) {
            ("meter", Some(v)) => {
                let value = if v.eq_ignore_ascii_case("all") {
                    if !delete {
                        return p.err(tok.span, "meter=all selects meters to delete only");
                    }
                    None
                } else {
                    Some(p.int(tok, v, "meter id")?)
                };
                once(&p, &mut id, tok, "meter", value)?;
            }
            ("kbps", None) => once(&p, &mut unit, tok, "the unit", MeterUnit::Kbps)?,
            ("pktps", None) => once(&p, &mut unit, tok, "the unit", MeterUnit::Pktps)?,
            ("burst", None) => burst_flag = true,
            ("stats", None) => {}
            ("type" | "rate" | "burst_size" | "prec_level", Some(_)) if !in_band => {
                return p.err(
                    tok.span,
                    format!("{key} belongs to the band: band=type=drop,rate=N"),
                );
            }
            ("type", Some(v)) if v.eq_ignore_ascii_case("drop") => {
                once(&p, &mut band_type, tok, "the band type", ())?;
            }
            ("type", Some(v)) => {
                return p.err(
                    tok.span,
                    format!("band type `{v}` is not supported (only type=drop)"),
                );
            }
            ("rate", Some(v)) => {
                let r = p.int(tok, v, "rate")?;
                once(&p, &mut rate, tok, "rate", r)?;
            }
            ("burst_size", Some(v)) => {
                let b = p.int(tok, v, "burst_size")?;
                once(&p, &mut burst_size, tok, "burst_size", b)?;
            }
            ("prec_level", _) => {
                return p.err(
                    tok.span,
                    "prec_level applies to dscp_remark bands (not supported)",
                );
            }
            _ => {
                return p.err(
                    tok.span,
                    format!(
                        "unknown meter setting `{}` (expected meter=N, kbps, pktps, burst, stats, band=type=drop,rate=N,burst_size=N)",
                        tok.text
                    ),
                );
            }
        }
    }
    let whole = Span::new(0, input.len());
    let mut out = ParsedMeter {
        meter_mod: MeterMod {
            command,
            id: id.and_then(|(v, _)| v),
            config: MeterConfig {
                unit: unit.map_or(MeterUnit::Kbps, |(u, _)| u),
                rate: 1,
                burst: 0,
            },
        },
        whole,
        meter_id: id.map(|(_, s)| s),
        unit: unit.map(|(_, s)| s),
        band: band.map(|(_, s)| s),
        rate: rate.map(|(_, s)| s),
        burst_size: burst_size.map(|(_, s)| s),
    };
    if delete {
        return Ok(out);
    }
    if out.meter_mod.id.is_none() {
        return fail(input, end, "missing meter=N");
    }
    let Some(((), band_span)) = band else {
        return fail(input, end, "missing band=type=drop,rate=N");
    };
    if band_type.is_none() {
        return fail(input, band_span, "the band needs type=drop");
    }
    let Some((rate, _)) = rate else {
        return fail(input, band_span, "the band needs rate=N");
    };
    out.meter_mod.config.rate = rate;
    if let Some((b, span)) = burst_size {
        if !burst_flag {
            return fail(
                input,
                span,
                "burst_size needs the `burst` flag (meter=N,kbps,burst,band=type=drop,rate=R,burst_size=B)",
            );
        }
        out.meter_mod.config.burst = b;
    }
    Ok(out)
}

/// Writes a meter-mod as one line that [`parse_meter`] reads back:
/// `meter=1,pktps,burst,band=type=drop,rate=100,burst_size=10` (no `burst` and `burst_size`
/// when the burst is the default); `meter=N` (or `meter=all`) for delete.
pub fn format_meter_mod(mm: &MeterMod) -> String {
    let id = mm.id.map_or_else(|| "all".to_owned(), |i| i.to_string());
    let mut out = format!("meter={id}");
    if mm.command == ModCommand::Delete {
        return out;
    }
    let c = &mm.config;
    out.push_str(match c.unit {
        MeterUnit::Kbps => ",kbps",
        MeterUnit::Pktps => ",pktps",
    });
    if c.burst != 0 {
        out.push_str(",burst");
    }
    let _ = write!(out, ",band=type=drop,rate={}", c.rate);
    if c.burst != 0 {
        let _ = write!(out, ",burst_size={}", c.burst);
    }
    out
}

#[cfg(test)]
mod tests;
