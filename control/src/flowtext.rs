//! OVS-style flow text: `table=0,priority=100,ip,nw_dst=10.1.0.0/16,tcp,tp_dst=80 actions=output:p2`.
//!
//! Shared by `vsctl`, the tests and other tools:
//!
//! - [`parse_flow`] turns one line into a [`FlowMod`] (the command decides which parts are
//!   allowed: `add`/`modify` need `actions=`, `delete` forbids it), resolving port names with a
//!   callback. Syntax errors are [`ParseError`]s with the byte span of the offending token;
//!   [`ParseError::render`] draws a caret line under it. Problems only the datapath can judge
//!   (prerequisites, widths, masks on unmaskable fields) are [`datapath::ofp::FlowError`]s whose
//!   `at` ([`ParsedFlow::span_of`]) points back at the token that produced the field or action.
//! - [`format_flow`], [`format_flow_mod`], [`format_match`], [`format_actions`] write the same
//!   syntax back; `parse_flow(format_flow_mod(fm))` gives the same match and instructions.
//! - [`parse_value`] / [`format_value`] read and write one field value (`10.1.0.0/16`,
//!   `aa:bb:cc:dd:ee:ff`, `0x50/0xfff0`, `+trk+est`), also used by the JSON protocol.
//! - [`parse_group`] / [`format_group_mod`] and [`parse_meter`] / [`format_meter_mod`] do the
//!   same for groups (`group_id=1,type=select,bucket=weight:10,actions=output:p2`) and meters
//!   (`meter=1,pktps,burst,band=type=drop,rate=100,burst_size=10`).
//!
//! The accepted names, aliases and actions are listed in `docs/flows.md`. Slow path only.

use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};

use datapath::flow::{ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6, VLAN_PRESENT};
use datapath::ofp::MatchField;
use datapath::ofp::action::{Action, Instructions, MAX_TABLE, PacketInReason};
use datapath::ofp::field::{self, Field};
use datapath::ofp::pipeline::{Flow, FlowFlags, FlowMod, FlowModCommand};

/// Priority of a flow that does not give one (OpenFlow's default, 0x8000).
pub const DEFAULT_PRIORITY: u16 = 0x8000;

/// `max_len` of a `controller` action that does not give one (the whole frame).
pub const DEFAULT_CONTROLLER_MAX_LEN: u16 = u16::MAX;

/// Connection-tracking state bits (the values Open vSwitch uses), for `ct_state=+trk+est`.
pub const CT_STATE_FLAGS: [(&str, u16); 8] = [
    ("new", 0x01),
    ("est", 0x02),
    ("rel", 0x04),
    ("rpl", 0x08),
    ("inv", 0x10),
    ("trk", 0x20),
    ("snat", 0x40),
    ("dnat", 0x80),
];

/// TCP flag bits, for `tcp_flags=+syn-ack`.
pub const TCP_FLAGS: [(&str, u16); 9] = [
    ("fin", 0x001),
    ("syn", 0x002),
    ("rst", 0x004),
    ("psh", 0x008),
    ("ack", 0x010),
    ("urg", 0x020),
    ("ece", 0x040),
    ("cwr", 0x080),
    ("ns", 0x100),
];

const IP_PROTO_ICMP: u128 = 1;
const IP_PROTO_TCP: u128 = 6;
const IP_PROTO_UDP: u128 = 17;
const IP_PROTO_ICMPV6: u128 = 58;

/// Protocol shorthands: name, eth_type, ip_proto.
pub const SHORTHANDS: [(&str, u16, Option<u8>); 9] = [
    ("ip", ETH_TYPE_IPV4, None),
    ("ipv6", ETH_TYPE_IPV6, None),
    ("arp", ETH_TYPE_ARP, None),
    ("tcp", ETH_TYPE_IPV4, Some(6)),
    ("udp", ETH_TYPE_IPV4, Some(17)),
    ("icmp", ETH_TYPE_IPV4, Some(1)),
    ("tcp6", ETH_TYPE_IPV6, Some(6)),
    ("udp6", ETH_TYPE_IPV6, Some(17)),
    ("icmp6", ETH_TYPE_IPV6, Some(58)),
];

/// A byte range of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }
}

/// A syntax error in flow text, with the offending token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {}: `{token}`)", span.start)]
pub struct ParseError {
    /// Where the token is in the input.
    pub span: Span,
    /// The offending token.
    pub token: String,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    fn at(input: &str, span: Span, message: impl Into<String>) -> Self {
        Self {
            span,
            token: input.get(span.start..span.end).unwrap_or("").to_owned(),
            message: message.into(),
        }
    }

    /// The message, the input, and a caret line under the offending token.
    pub fn render(&self, input: &str) -> String {
        render_caret(input, self.span, &self.message)
    }
}

/// `message`, then `input` and a line of carets under `span` (at least one caret).
pub fn render_caret(input: &str, span: Span, message: &str) -> String {
    let start = span.start.min(input.len());
    let end = span.end.clamp(start, input.len());
    let col = input.get(..start).map_or(start, |s| s.chars().count());
    let width = input
        .get(start..end)
        .map_or(1, |s| s.chars().count())
        .max(1);
    format!(
        "{message}\n  {input}\n  {}{}",
        " ".repeat(col),
        "^".repeat(width)
    )
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// How a field's values are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Mac,
    Ipv4,
    Ipv6,
    /// Decimal when exact.
    Dec,
    /// Hexadecimal.
    Hex,
}

fn kind(f: Field) -> Kind {
    match f {
        Field::EthSrc | Field::EthDst | Field::ArpSha | Field::ArpTha => Kind::Mac,
        Field::IpSrc
        | Field::IpDst
        | Field::ArpSpa
        | Field::ArpTpa
        | Field::TunSrc
        | Field::TunDst => Kind::Ipv4,
        Field::Ipv6Src | Field::Ipv6Dst => Kind::Ipv6,
        Field::EthType
        | Field::VlanVid
        | Field::TcpFlags
        | Field::TunId
        | Field::Metadata
        | Field::Reg(_)
        | Field::CtState
        | Field::CtMark => Kind::Hex,
        _ => Kind::Dec,
    }
}

/// Parses an unsigned integer, decimal or `0x` hexadecimal.
pub fn parse_int(s: &str) -> Result<u128, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u128::from_str_radix(hex, 16)
        }
        None if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse::<u128>(),
        _ => return Err(format!("`{s}` is not a number (decimal or 0x hex)")),
    };
    r.map_err(|_| format!("`{s}` is too large"))
}

fn parse_mac(s: &str) -> Result<u128, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6
        || parts
            .iter()
            .any(|p| p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(format!("`{s}` is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    }
    Ok(parts.iter().fold(0u128, |acc, p| {
        (acc << 8) | u128::from(u8::from_str_radix(p, 16).unwrap_or(0))
    }))
}

fn prefix_mask(len: u32, bits: u32) -> u128 {
    if len == 0 {
        0
    } else {
        let all = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        (all << (bits - len)) & all
    }
}

/// The prefix length of `mask` if it is a contiguous prefix of a `bits`-bit field (a mask
/// with more ones than the field has bits is none).
fn mask_prefix(mask: u128, bits: u32) -> Option<u32> {
    let ones = mask.count_ones();
    (ones <= bits && prefix_mask(ones, bits) == mask).then_some(ones)
}

fn parse_flags(s: &str, table: &[(&str, u16)], what: &str) -> Result<(u128, Option<u128>), String> {
    let mut value = 0u128;
    let mut mask = 0u128;
    let mut rest = s;
    while !rest.is_empty() {
        let plus = match rest.as_bytes()[0] {
            b'+' => true,
            b'-' => false,
            _ => return Err(format!("`{s}`: {what} flags are written +flag or -flag")),
        };
        rest = &rest[1..];
        let end = rest.find(['+', '-']).unwrap_or(rest.len());
        let name = &rest[..end];
        rest = &rest[end..];
        let Some((_, bit)) = table.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown {what} flag `{name}` (known: {})",
                names.join(", ")
            ));
        };
        let bit = u128::from(*bit);
        if mask & bit != 0 {
            return Err(format!("{what} flag `{name}` given twice"));
        }
        mask |= bit;
        if plus {
            value |= bit;
        }
    }
    Ok((value, Some(mask)))
}

/// Parses a value of `field` as written in flow text and in the JSON protocol: `V` or `V/M`,
/// with `V` and `M` an integer (decimal or `0x` hex), a MAC, an IPv4 or IPv6 address (masks
/// also as a prefix length) depending on the field; `tcp_flags` and `ct_state` also take
/// `+flag-flag`. Returns the value and the mask (`None`: exact).
///
/// # Errors
/// The text is not a value of this field's kind. Widths are checked later (by
/// [`datapath::ofp::build_match`]).
pub fn parse_value(field: Field, s: &str) -> Result<(u128, Option<u128>), String> {
    let s = s.trim();
    if s.starts_with(['+', '-']) {
        return match field {
            Field::TcpFlags => parse_flags(s, &TCP_FLAGS, "tcp"),
            Field::CtState => parse_flags(s, &CT_STATE_FLAGS, "ct_state"),
            _ => Err(format!(
                "`{s}`: only tcp_flags and ct_state take +flag syntax"
            )),
        };
    }
    let (v, m) = match s.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (s, None),
    };
    let bits = field.bits();
    let value = match kind(field) {
        Kind::Mac => parse_mac(v)?,
        Kind::Ipv4 => u128::from(u32::from(
            v.parse::<Ipv4Addr>()
                .map_err(|_| format!("`{v}` is not an IPv4 address"))?,
        )),
        Kind::Ipv6 => u128::from(
            v.parse::<Ipv6Addr>()
                .map_err(|_| format!("`{v}` is not an IPv6 address"))?,
        ),
        Kind::Dec | Kind::Hex => parse_int(v)?,
    };
    let mask = match m {
        None => None,
        Some(m) => Some(match kind(field) {
            Kind::Mac => parse_mac(m)?,
            Kind::Ipv4 | Kind::Ipv6 if m.bytes().all(|b| b.is_ascii_digit()) && !m.is_empty() => {
                let len: u32 = m
                    .parse()
                    .map_err(|_| format!("`{m}` is not a prefix length"))?;
                if len > bits {
                    return Err(format!("prefix length {len} is longer than {bits} bits"));
                }
                prefix_mask(len, bits)
            }
            Kind::Ipv4 => {
                u128::from(u32::from(m.parse::<Ipv4Addr>().map_err(|_| {
                    format!("`{m}` is not an IPv4 mask or prefix length")
                })?))
            }
            Kind::Ipv6 => u128::from(
                m.parse::<Ipv6Addr>()
                    .map_err(|_| format!("`{m}` is not an IPv6 mask or prefix length"))?,
            ),
            Kind::Dec | Kind::Hex => parse_int(m)?,
        }),
    };
    Ok((value, mask))
}

fn mac_text(v: u128) -> String {
    let b = v.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

fn ipv4_text(v: u128) -> String {
    Ipv4Addr::from(u32::try_from(v & 0xffff_ffff).unwrap_or(0)).to_string()
}

/// Writes a value of `field` in the syntax [`parse_value`] reads (canonical form: exact
/// integers of counting fields in decimal, identifiers in hex, CIDR prefixes where the mask is
/// one).
pub fn format_value(field: Field, value: u128, mask: Option<u128>) -> String {
    let bits = field.bits();
    match kind(field) {
        Kind::Mac => match mask {
            None => mac_text(value),
            Some(m) => format!("{}/{}", mac_text(value), mac_text(m)),
        },
        Kind::Ipv4 => match mask {
            None => ipv4_text(value),
            Some(m) => match mask_prefix(m, bits) {
                Some(len) => format!("{}/{len}", ipv4_text(value)),
                None => format!("{}/{}", ipv4_text(value), ipv4_text(m)),
            },
        },
        Kind::Ipv6 => match mask {
            None => Ipv6Addr::from(value).to_string(),
            Some(m) => match mask_prefix(m, bits) {
                Some(len) => format!("{}/{len}", Ipv6Addr::from(value)),
                None => format!("{}/{}", Ipv6Addr::from(value), Ipv6Addr::from(m)),
            },
        },
        Kind::Dec => match mask {
            None => value.to_string(),
            Some(m) => format!("{value:#x}/{m:#x}"),
        },
        Kind::Hex => {
            let v = if field == Field::EthType {
                format!("{value:#06x}")
            } else {
                format!("{value:#x}")
            };
            match mask {
                None => v,
                Some(m) => format!("{v}/{m:#x}"),
            }
        }
    }
}

/// `+a-b` flag syntax for a masked `tcp_flags`/`ct_state`, when every mask bit has a name.
fn flags_text(value: u128, mask: u128, table: &[(&str, u16)]) -> Option<String> {
    let known = table.iter().fold(0u128, |a, (_, b)| a | u128::from(*b));
    if mask == 0 || mask & !known != 0 {
        return None;
    }
    let mut out = String::new();
    for (name, bit) in table {
        let bit = u128::from(*bit);
        if mask & bit != 0 {
            out.push(if value & bit != 0 { '+' } else { '-' });
            out.push_str(name);
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A parsed flow line and where each part came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedFlow {
    /// The flow-mod.
    pub flow_mod: FlowMod,
    /// Span of the whole input.
    whole: Span,
    table: Option<Span>,
    priority: Option<Span>,
    /// Match part (everything before `actions=`).
    match_part: Option<Span>,
    fields: Vec<(Field, Span)>,
    actions_part: Option<Span>,
    apply: Vec<Span>,
    write: Vec<Span>,
    write_actions: Option<Span>,
    goto: Option<Span>,
    write_metadata: Option<Span>,
}

impl ParsedFlow {
    /// The span of the token behind a datapath error location (`match.tcp_dst`,
    /// `instructions.apply[2]`, `table`, …), falling back to the nearest enclosing part.
    pub fn span_of(&self, at: &str) -> Span {
        let index = |s: &str, prefix: &str| -> Option<usize> {
            s.strip_prefix(prefix)?.strip_suffix(']')?.parse().ok()
        };
        let found = if let Some(name) = at.strip_prefix("match.") {
            let name = name.split(['.', '[']).next().unwrap_or(name);
            self.fields
                .iter()
                .rev()
                .find(|(f, _)| f.name() == name)
                .map(|(_, s)| *s)
                .or(self.match_part)
        } else if at == "match" {
            self.match_part
        } else if at == "table" {
            self.table
        } else if at == "priority" {
            self.priority
        } else if let Some(i) = index(at, "instructions.apply[") {
            self.apply.get(i).copied()
        } else if let Some(i) = index(at, "instructions.write[") {
            self.write.get(i).copied().or(self.write_actions)
        } else if at == "instructions.write" {
            self.write_actions
        } else if at == "instructions.goto_table" {
            self.goto
        } else if at == "instructions.write_metadata" {
            self.write_metadata
        } else if at.starts_with("instructions") {
            self.actions_part
        } else {
            None
        };
        found.unwrap_or(self.whole)
    }
}

/// A token: its text and span.
#[derive(Clone, Copy, Debug)]
struct Tok<'a> {
    text: &'a str,
    span: Span,
}

/// An action token split into its lower-case name and its argument: `name:arg` or
/// `name(arg)` (`paren`); `arg_at` is the argument's byte offset in the input.
struct Call<'a> {
    name: String,
    arg: Option<&'a str>,
    paren: bool,
    arg_at: usize,
}

/// Splits `tok` at its first `:` or `(`; `Err` is the message for a `(` without its `)`.
fn split_call(tok: Tok<'_>) -> Result<Call<'_>, &'static str> {
    let text = tok.text;
    let Some(i) = text.find([':', '(']) else {
        return Ok(Call {
            name: text.to_ascii_lowercase(),
            arg: None,
            paren: false,
            arg_at: tok.span.end,
        });
    };
    let paren = text.as_bytes()[i] == b'(';
    let rest = &text[i + 1..];
    let arg = if paren {
        rest.strip_suffix(')').ok_or("missing `)`")?
    } else {
        rest
    };
    Ok(Call {
        name: text[..i].to_ascii_lowercase(),
        arg: Some(arg),
        paren,
        arg_at: tok.span.start + i + 1,
    })
}

/// Splits `s` (starting at byte `base` of the input) at `sep` bytes outside parentheses,
/// dropping empty pieces and trimming whitespace.
fn split_top<'a>(s: &'a str, base: usize, is_sep: impl Fn(u8) -> bool) -> Vec<Tok<'a>> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let bytes = s.as_bytes();
    let push = |a: usize, b: usize, out: &mut Vec<Tok<'a>>| {
        let piece = &s[a..b];
        let trimmed_start = a + (piece.len() - piece.trim_start().len());
        let trimmed = piece.trim();
        if !trimmed.is_empty() {
            out.push(Tok {
                text: trimmed,
                span: Span::new(base + trimmed_start, base + trimmed_start + trimmed.len()),
            });
        }
    };
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ if depth == 0 && is_sep(b) => {
                push(start, i, &mut out);
                start = i + 1;
            }
            _ => {}
        }
    }
    push(start, s.len(), &mut out);
    out
}

/// Names that mean one field directly (canonical names and OVS aliases).
fn field_alias(name: &str) -> Option<Field> {
    let f = match name {
        "dl_src" => Field::EthSrc,
        "dl_dst" => Field::EthDst,
        "dl_type" => Field::EthType,
        "dl_vlan_pcp" => Field::VlanPcp,
        "nw_src" => Field::IpSrc,
        "nw_dst" => Field::IpDst,
        "nw_proto" => Field::IpProto,
        "nw_ecn" => Field::IpEcn,
        "nw_ttl" => Field::IpTtl,
        "icmpv6_type" => Field::Icmpv6Type,
        "icmpv6_code" => Field::Icmpv6Code,
        // `vlan_vid` is an alias of dl_vlan (see the parser), not the raw OpenFlow field.
        "vlan_vid" | "icmp_type" | "icmp_code" => return None,
        other => return Field::from_name(other),
    };
    Some(f)
}

/// What a flow line is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Add,
    Modify,
    Delete,
}

struct Parser<'a, 'r> {
    input: &'a str,
    ports: &'r dyn Fn(&str) -> Option<u32>,
    fm: FlowMod,
    out: ParsedFlow,
    /// `tp_src`/`tp_dst`/`icmp_type`/`icmp_code`, resolved once the protocol is known.
    deferred: Vec<(Tok<'a>, &'a str, &'a str)>,
}

fn fail<T>(input: &str, span: Span, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError::at(input, span, message))
}

impl<'a, 'r> Parser<'a, 'r> {
    /// A parser of `input` for a flow-mod `command` (an empty match so far).
    fn new(
        input: &'a str,
        command: FlowModCommand,
        ports: &'r dyn Fn(&str) -> Option<u32>,
    ) -> Self {
        let mut fm = FlowMod::add(0, DEFAULT_PRIORITY, Vec::new(), Instructions::default());
        fm.command = command;
        if command != FlowModCommand::Add {
            fm.table = None;
        }
        Parser {
            input,
            ports,
            fm,
            out: ParsedFlow {
                flow_mod: FlowMod::add(0, 0, Vec::new(), Instructions::default()),
                whole: Span::new(0, input.len()),
                table: None,
                priority: None,
                match_part: None,
                fields: Vec::new(),
                actions_part: None,
                apply: Vec::new(),
                write: Vec::new(),
                write_actions: None,
                goto: None,
                write_metadata: None,
            },
            deferred: Vec::new(),
        }
    }
}

impl<'a> Parser<'a, '_> {
    fn err<T>(&self, span: Span, message: impl Into<String>) -> Result<T, ParseError> {
        fail(self.input, span, message)
    }

    fn int<T: TryFrom<u128>>(&self, tok: Tok<'_>, v: &str, what: &str) -> Result<T, ParseError> {
        let n = parse_int(v).or_else(|e| self.err(tok.span, e))?;
        T::try_from(n).or_else(|_| self.err(tok.span, format!("{what} {n} is out of range")))
    }

    fn port(&self, tok: Tok<'_>, v: &str) -> Result<u32, ParseError> {
        if v.bytes().all(|b| b.is_ascii_digit()) || v.starts_with("0x") {
            return self.int(tok, v, "port");
        }
        (self.ports)(v).map_or_else(|| self.err(tok.span, format!("unknown port `{v}`")), Ok)
    }

    fn add_field(&mut self, mf: MatchField, span: Span) -> Result<(), ParseError> {
        if let Some(old) = self.fm.fields.iter().find(|o| o.field == mf.field) {
            if *old == mf {
                return Ok(());
            }
            return self.err(
                span,
                format!(
                    "{} given twice with different values ({} and {})",
                    mf.field,
                    format_value(old.field, old.value, old.mask),
                    format_value(mf.field, mf.value, mf.mask)
                ),
            );
        }
        self.fm.fields.push(mf);
        self.out.fields.push((mf.field, span));
        Ok(())
    }

    fn exact(&mut self, field: Field, value: u128, span: Span) -> Result<(), ParseError> {
        self.add_field(
            MatchField {
                field,
                value,
                mask: None,
            },
            span,
        )
    }

    fn value(
        &self,
        tok: Tok<'_>,
        field: Field,
        v: &str,
    ) -> Result<(u128, Option<u128>), ParseError> {
        parse_value(field, v).or_else(|e| self.err(tok.span, format!("{field}: {e}")))
    }

    fn match_token(&mut self, tok: Tok<'a>) -> Result<(), ParseError> {
        let (key, val) = match tok.text.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (tok.text, None),
        };
        let Some(v) = val else {
            match key {
                "send_flow_rem" => self.fm.flags.send_flow_rem = true,
                "check_overlap" => self.fm.flags.check_overlap = true,
                "reset_counts" => self.fm.flags.reset_counts = true,
                _ => {
                    let Some((_, eth, proto)) = SHORTHANDS.iter().find(|(n, _, _)| *n == key)
                    else {
                        return self.err(
                            tok.span,
                            format!("unknown keyword `{key}` (expected field=value, a protocol such as `ip` or `tcp`, or a flag)"),
                        );
                    };
                    self.exact(Field::EthType, u128::from(*eth), tok.span)?;
                    if let Some(p) = proto {
                        self.exact(Field::IpProto, u128::from(*p), tok.span)?;
                    }
                }
            }
            return Ok(());
        };
        if v.is_empty() {
            return self.err(tok.span, format!("`{key}=` needs a value"));
        }
        match key {
            "table" => {
                let t: u8 = self.int(tok, v, "table")?;
                if t > MAX_TABLE {
                    return self.err(
                        tok.span,
                        format!("table {t} does not exist (0..={MAX_TABLE})"),
                    );
                }
                self.fm.table = Some(t);
                self.out.table = Some(tok.span);
            }
            "priority" => {
                self.fm.priority = self.int(tok, v, "priority")?;
                self.out.priority = Some(tok.span);
            }
            "cookie" => {
                let (c, m) = match v.split_once('/') {
                    Some((c, m)) => (c, Some(m)),
                    None => (v, None),
                };
                self.fm.cookie = self.int(tok, c, "cookie")?;
                if m == Some("-1") {
                    // OVS: `cookie=V/-1` compares every bit.
                    self.fm.cookie_mask = u64::MAX;
                } else if let Some(m) = m {
                    self.fm.cookie_mask = self.int(tok, m, "cookie mask")?;
                } else if self.mode() != Mode::Add {
                    self.fm.cookie_mask = u64::MAX;
                }
            }
            "idle_timeout" => self.fm.idle_timeout = self.int(tok, v, "idle_timeout")?,
            "hard_timeout" => self.fm.hard_timeout = self.int(tok, v, "hard_timeout")?,
            "out_port" => self.fm.out_port = Some(self.port(tok, v)?),
            "in_port" => {
                let p = self.port(tok, v)?;
                self.exact(Field::InPort, u128::from(p), tok.span)?;
            }
            "dl_vlan" | "vlan_vid" => {
                let n: u16 = self.int(tok, v, "VLAN")?;
                let vid = if n == 0xffff {
                    0
                } else if n <= 0xfff {
                    u128::from(n | VLAN_PRESENT)
                } else {
                    return self.err(
                        tok.span,
                        format!("VLAN {n} is out of range (0..=4095, or 0xffff for untagged)"),
                    );
                };
                self.exact(Field::VlanVid, vid, tok.span)?;
            }
            "vlan_tci" => {
                let (value, mask) =
                    parse_value(Field::TunId, v).or_else(|e| self.err(tok.span, e))?;
                let mask = mask.unwrap_or(0xffff);
                if value > 0xffff || mask > 0xffff {
                    return self.err(tok.span, "vlan_tci is 16 bits");
                }
                let (vid, vid_m) = (value & 0x1fff, mask & 0x1fff);
                let (pcp, pcp_m) = (value >> 13, mask >> 13);
                if vid_m != 0 {
                    let mask = (vid_m != 0x1fff).then_some(vid_m);
                    self.add_field(
                        MatchField {
                            field: Field::VlanVid,
                            value: vid,
                            mask,
                        },
                        tok.span,
                    )?;
                }
                if pcp_m != 0 {
                    if pcp_m != 7 {
                        return self.err(
                            tok.span,
                            "the priority bits of vlan_tci cannot be partly masked",
                        );
                    }
                    self.exact(Field::VlanPcp, pcp, tok.span)?;
                }
            }
            "nw_tos" => {
                let tos: u8 = self.int(tok, v, "nw_tos")?;
                if tos & 3 != 0 {
                    return self.err(
                        tok.span,
                        "nw_tos must be a multiple of 4 (the ECN bits are nw_ecn)",
                    );
                }
                self.exact(Field::IpDscp, u128::from(tos >> 2), tok.span)?;
            }
            "tp_src" | "tp_dst" | "icmp_type" | "icmp_code" => self.deferred.push((tok, key, v)),
            _ => {
                let Some(field) = field_alias(key) else {
                    return self.err(tok.span, format!("unknown field `{key}`"));
                };
                let (value, mask) = self.value(tok, field, v)?;
                self.add_field(MatchField { field, value, mask }, tok.span)?;
            }
        }
        Ok(())
    }

    fn mode(&self) -> Mode {
        match self.fm.command {
            FlowModCommand::Add => Mode::Add,
            FlowModCommand::Modify | FlowModCommand::ModifyStrict => Mode::Modify,
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => Mode::Delete,
        }
    }

    /// eth_type and ip_proto of the match, if exact.
    fn protocol(&self) -> (Option<u128>, Option<u128>) {
        let get = |f: Field| {
            self.fm
                .fields
                .iter()
                .find(|m| m.field == f && m.mask.is_none())
                .map(|m| m.value)
        };
        (get(Field::EthType), get(Field::IpProto))
    }

    fn resolve_deferred(&mut self) -> Result<(), ParseError> {
        for (tok, key, v) in std::mem::take(&mut self.deferred) {
            let (eth, proto) = self.protocol();
            let v6 = eth == Some(u128::from(ETH_TYPE_IPV6));
            let field = match (key, proto) {
                ("tp_src", Some(IP_PROTO_TCP)) => Field::TcpSrc,
                ("tp_dst", Some(IP_PROTO_TCP)) => Field::TcpDst,
                ("tp_src", Some(IP_PROTO_UDP)) => Field::UdpSrc,
                ("tp_dst", Some(IP_PROTO_UDP)) => Field::UdpDst,
                ("tp_src" | "icmp_type", Some(IP_PROTO_ICMPV6)) if v6 => Field::Icmpv6Type,
                ("tp_dst" | "icmp_code", Some(IP_PROTO_ICMPV6)) if v6 => Field::Icmpv6Code,
                ("icmp_type", _) if v6 => Field::Icmpv6Type,
                ("icmp_code", _) if v6 => Field::Icmpv6Code,
                ("tp_src", Some(IP_PROTO_ICMP)) | ("icmp_type", _) => Field::IcmpType,
                ("tp_dst", Some(IP_PROTO_ICMP)) | ("icmp_code", _) => Field::IcmpCode,
                _ => {
                    return self.err(
                        tok.span,
                        format!("{key} needs the protocol: add tcp, udp, icmp, tcp6, udp6, icmp6 or nw_proto=N"),
                    );
                }
            };
            let (value, mask) = self.value(tok, field, v)?;
            self.add_field(MatchField { field, value, mask }, tok.span)?;
        }
        Ok(())
    }

    fn parse_actions(&mut self, part: &'a str, base: usize) -> Result<(), ParseError> {
        let toks = split_top(part, base, |b| b == b',');
        if toks.len() == 1 && toks[0].text.eq_ignore_ascii_case("drop") {
            self.out.apply.clear();
            return Ok(());
        }
        let mut ins = Instructions::default();
        for tok in toks {
            let call = split_call(tok).or_else(|e| self.err(tok.span, e))?;
            let (name, arg) = (call.name.as_str(), call.arg);
            match (name, arg) {
                ("drop", _) => return self.err(tok.span, "`drop` must be the only action"),
                ("goto_table", Some(a)) | ("resubmit", Some(a)) => {
                    let t = if name == "resubmit" {
                        if !call.paren {
                            return self.err(
                                tok.span,
                                "resubmit to a port is not supported; use resubmit(,TABLE)",
                            );
                        }
                        let Some(("", t)) = a.split_once(',').map(|(p, t)| (p.trim(), t.trim()))
                        else {
                            return self.err(
                                tok.span,
                                "only resubmit(,TABLE) is supported (the port must be empty)",
                            );
                        };
                        t
                    } else {
                        a
                    };
                    if ins.goto_table.is_some() {
                        return self.err(tok.span, "only one goto_table/resubmit");
                    }
                    ins.goto_table = Some(self.int(tok, t.trim(), "table")?);
                    self.out.goto = Some(tok.span);
                }
                ("write_metadata", Some(a)) => {
                    if ins.write_metadata.is_some() {
                        return self.err(tok.span, "only one write_metadata");
                    }
                    let (v, m) =
                        parse_value(Field::Metadata, a).or_else(|e| self.err(tok.span, e))?;
                    let v =
                        u64::try_from(v).or_else(|_| self.err(tok.span, "metadata is 64 bits"))?;
                    let m = u64::try_from(m.unwrap_or_else(|| u128::from(u64::MAX)))
                        .or_else(|_| self.err(tok.span, "metadata is 64 bits"))?;
                    ins.write_metadata = Some((v, m));
                    self.out.write_metadata = Some(tok.span);
                }
                ("clear_actions", None) => {
                    if ins.clear_actions {
                        return self.err(tok.span, "only one clear_actions");
                    }
                    ins.clear_actions = true;
                }
                ("write_actions", Some(a)) if call.paren => {
                    if self.out.write_actions.is_some() {
                        return self.err(tok.span, "only one write_actions(...)");
                    }
                    self.out.write_actions = Some(tok.span);
                    for inner in split_top(a, call.arg_at, |b| b == b',') {
                        let action = self.action(inner)?;
                        ins.write.push(action);
                        self.out.write.push(inner.span);
                    }
                }
                _ => {
                    let action = self.action(tok)?;
                    if ins.goto_table.is_some() {
                        return self.err(tok.span, "actions must come before goto_table/resubmit");
                    }
                    ins.apply.push(action);
                    self.out.apply.push(tok.span);
                }
            }
        }
        self.fm.instructions = ins;
        Ok(())
    }

    fn action(&self, tok: Tok<'_>) -> Result<Action, ParseError> {
        let text = tok.text;
        let call = split_call(tok).or_else(|e| self.err(tok.span, e))?;
        let (name, arg) = (call.name.as_str(), call.arg);
        let set = |field: Field, v: &str| -> Result<Action, ParseError> {
            let (value, mask) = self.value(tok, field, v)?;
            if mask.is_some() {
                return self.err(tok.span, "set_field takes no mask");
            }
            Ok(Action::SetField { field, value })
        };
        let a = match (name, arg) {
            ("normal", None) => Action::Normal,
            ("flood", None) => Action::Flood,
            ("all", None) => Action::All,
            ("in_port", None) => Action::InPort,
            ("pop_vlan" | "strip_vlan", None) => Action::PopVlan,
            ("dec_ttl", None) => Action::DecTtl,
            ("output", Some(p)) => Action::Output(self.port(tok, p.trim())?),
            ("controller", None) => Action::Controller {
                max_len: DEFAULT_CONTROLLER_MAX_LEN,
                reason: PacketInReason::Action,
            },
            ("controller", Some(a)) if !call.paren => Action::Controller {
                max_len: self.int(tok, a.trim(), "max_len")?,
                reason: PacketInReason::Action,
            },
            ("controller", Some(a)) => {
                let mut max_len = DEFAULT_CONTROLLER_MAX_LEN;
                let mut reason = PacketInReason::Action;
                for kv in a.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match kv.split_once('=') {
                        Some(("max_len", v)) => max_len = self.int(tok, v.trim(), "max_len")?,
                        Some(("reason", v)) => {
                            reason = match v.trim() {
                                "action" => PacketInReason::Action,
                                "no_match" => PacketInReason::NoMatch,
                                "invalid_ttl" => PacketInReason::InvalidTtl,
                                other => {
                                    return self.err(tok.span, format!("unknown controller reason `{other}` (action, no_match, invalid_ttl)"));
                                }
                            }
                        }
                        _ => {
                            return self.err(
                                tok.span,
                                format!("controller(...) takes max_len=N and reason=R, not `{kv}`"),
                            );
                        }
                    }
                }
                Action::Controller { max_len, reason }
            }
            ("set_field", Some(a)) => {
                let Some((v, f)) = a.rsplit_once("->") else {
                    return self.err(tok.span, "set_field is written set_field:VALUE->FIELD");
                };
                let f = f.trim();
                let field = match f {
                    "vlan_vid" | "dl_vlan" => Field::VlanVid,
                    _ => field_alias(f)
                        .map_or_else(|| self.err(tok.span, format!("unknown field `{f}`")), Ok)?,
                };
                set(field, v)?
            }
            ("mod_dl_src", Some(v)) => set(Field::EthSrc, v)?,
            ("mod_dl_dst", Some(v)) => set(Field::EthDst, v)?,
            ("mod_nw_src", Some(v)) => set(Field::IpSrc, v)?,
            ("mod_nw_dst", Some(v)) => set(Field::IpDst, v)?,
            ("mod_vlan_vid", Some(v)) => set(Field::VlanVid, v)?,
            ("mod_vlan_pcp", Some(v)) => set(Field::VlanPcp, v)?,
            ("mod_nw_ttl", Some(v)) => set(Field::IpTtl, v)?,
            ("mod_nw_tos", Some(v)) => {
                let tos: u8 = self.int(tok, v.trim(), "nw_tos")?;
                if tos & 3 != 0 {
                    return self.err(tok.span, "nw_tos must be a multiple of 4");
                }
                Action::SetField {
                    field: Field::IpDscp,
                    value: u128::from(tos >> 2),
                }
            }
            ("mod_tp_src" | "mod_tp_dst", Some(v)) => {
                let src = name == "mod_tp_src";
                let field = match self.protocol().1 {
                    Some(IP_PROTO_TCP) if src => Field::TcpSrc,
                    Some(IP_PROTO_TCP) => Field::TcpDst,
                    Some(IP_PROTO_UDP) if src => Field::UdpSrc,
                    Some(IP_PROTO_UDP) => Field::UdpDst,
                    _ => {
                        return self.err(
                            tok.span,
                            format!("{name} needs the flow to match tcp or udp"),
                        );
                    }
                };
                set(field, v)?
            }
            ("push_vlan", Some(v)) => Action::PushVlan(self.int(tok, v.trim(), "TPID")?),
            ("group", Some(v)) => Action::Group(self.int(tok, v.trim(), "group")?),
            ("meter", Some(v)) => Action::Meter(self.int(tok, v.trim(), "meter")?),
            (_, None) if text.bytes().all(|b| b.is_ascii_digit()) => {
                Action::Output(self.int(tok, text, "port")?)
            }
            (_, None) if (self.ports)(text).is_some() => Action::Output(self.port(tok, text)?),
            _ => return self.err(tok.span, format!("unknown action `{text}`")),
        };
        Ok(a)
    }
}

/// Parses one flow line for `command` (`add` and `modify*` need `actions=`, `delete*` must not
/// have it; `dump` filters parse as `delete`). Port names (`in_port=p1`, `output:p2`) are
/// resolved with `ports`.
///
/// Defaults: table 0 for `add`, all tables otherwise; priority [`DEFAULT_PRIORITY`]. For
/// modify/delete, `cookie=V` without a mask compares all bits (`cookie=V/M` compares `M`).
///
/// # Errors
/// The first syntax error, with the offending token.
pub fn parse_flow(
    input: &str,
    command: FlowModCommand,
    ports: &dyn Fn(&str) -> Option<u32>,
) -> Result<ParsedFlow, ParseError> {
    let mut p = Parser::new(input, command, ports);
    // `actions=` starts the action part (OVS: it must come last).
    let mut actions_at = None;
    for tok in split_top(input, 0, |b| b == b',' || b.is_ascii_whitespace()) {
        if tok.text.starts_with("actions=")
            || tok.text.starts_with("action=")
            || tok.text == "actions"
        {
            actions_at = Some(tok.span.start);
            break;
        }
    }
    let match_end = actions_at.unwrap_or(input.len());
    let match_str = &input[..match_end];
    let toks = split_top(match_str, 0, |b| b == b',' || b.is_ascii_whitespace());
    if let (Some(first), Some(last)) = (toks.first(), toks.last()) {
        p.out.match_part = Some(Span::new(first.span.start, last.span.end));
    }
    for tok in toks {
        p.match_token(tok)?;
    }
    p.resolve_deferred()?;
    match (actions_at, p.mode()) {
        (Some(at), Mode::Add | Mode::Modify) => {
            let eq = input[at..].find('=').map_or(input.len(), |i| at + i + 1);
            let part = &input[eq..];
            p.out.actions_part = Some(Span::new(at, input.len()));
            if part.trim().is_empty() {
                return fail(
                    input,
                    Span::new(at, input.len()),
                    "actions= needs a list of actions (`drop` for none)",
                );
            }
            p.parse_actions(part, eq)?;
        }
        (None, Mode::Add | Mode::Modify) => {
            return fail(
                input,
                Span::new(input.len(), input.len()),
                "missing actions=... at the end (`actions=drop` for none)",
            );
        }
        (Some(at), Mode::Delete) => {
            return fail(
                input,
                Span::new(at, input.len()),
                "actions are not allowed here (delete and dump select flows by match)",
            );
        }
        (None, Mode::Delete) => {}
    }
    let mut out = p.out;
    out.flow_mod = p.fm;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

/// A port as text: its name when `names` knows one that reads back as that port, else the number.
fn port_text(p: u32, names: &dyn Fn(u32) -> Option<String>) -> String {
    match names(p) {
        Some(n)
            if !n.is_empty()
                && !n.bytes().all(|b| b.is_ascii_digit())
                && !matches!(
                    n.to_ascii_lowercase().as_str(),
                    "normal"
                        | "flood"
                        | "all"
                        | "in_port"
                        | "drop"
                        | "controller"
                        | "pop_vlan"
                        | "strip_vlan"
                        | "dec_ttl"
                        | "clear_actions"
                )
                && !n.contains([',', ':', '(', ')', '=', ' ']) =>
        {
            n
        }
        _ => p.to_string(),
    }
}

/// Writes a match as `ip,nw_dst=10.1.0.0/16,tcp_dst=80` (protocol shorthands where they apply,
/// then the fields in [`field::ALL`] order). Empty for an empty match.
pub fn format_match(fields: &[MatchField], names: &dyn Fn(u32) -> Option<String>) -> String {
    let exact = |f: Field| {
        fields
            .iter()
            .find(|m| m.field == f && m.mask.is_none())
            .map(|m| m.value)
    };
    let eth = exact(Field::EthType);
    let proto = exact(Field::IpProto);
    let mut parts: Vec<String> = Vec::new();
    let mut skip: Vec<Field> = Vec::new();
    if let Some(e) = eth {
        let with_proto = SHORTHANDS
            .iter()
            .find(|(_, t, p)| u128::from(*t) == e && p.is_some() && p.map(u128::from) == proto);
        let plain = SHORTHANDS
            .iter()
            .find(|(_, t, p)| u128::from(*t) == e && p.is_none());
        if let Some((n, _, _)) = with_proto {
            parts.push((*n).to_owned());
            skip.extend([Field::EthType, Field::IpProto]);
        } else if let Some((n, _, _)) = plain {
            parts.push((*n).to_owned());
            skip.push(Field::EthType);
        }
    }
    let mut sorted: Vec<&MatchField> = fields.iter().filter(|m| !skip.contains(&m.field)).collect();
    sorted.sort_by_key(|m| field::ALL.iter().position(|f| *f == m.field));
    for m in sorted {
        let text = match (m.field, m.mask) {
            (Field::InPort, None) => format!(
                "in_port={}",
                port_text(u32::try_from(m.value).unwrap_or(0), names)
            ),
            (Field::VlanVid, None) if m.value & u128::from(VLAN_PRESENT) != 0 => {
                format!("dl_vlan={}", m.value & 0xfff)
            }
            (Field::VlanVid, None) if m.value == 0 => "dl_vlan=0xffff".to_owned(),
            (Field::VlanVid, mask) => {
                format!("vlan_tci={:#06x}/{:#06x}", m.value, mask.unwrap_or(0x1fff))
            }
            (Field::TcpFlags, Some(mask)) => match flags_text(m.value, mask, &TCP_FLAGS) {
                Some(t) => format!("tcp_flags={t}"),
                None => format!("tcp_flags={}", format_value(m.field, m.value, m.mask)),
            },
            (Field::CtState, Some(mask)) => match flags_text(m.value, mask, &CT_STATE_FLAGS) {
                Some(t) => format!("ct_state={t}"),
                None => format!("ct_state={}", format_value(m.field, m.value, m.mask)),
            },
            (f, mask) => format!("{}={}", ovs_name(f), format_value(f, m.value, mask)),
        };
        parts.push(text);
    }
    parts.join(",")
}

/// The name OVS prints for a field.
fn ovs_name(f: Field) -> String {
    match f {
        Field::EthSrc => "dl_src".into(),
        Field::EthDst => "dl_dst".into(),
        Field::EthType => "dl_type".into(),
        Field::VlanPcp => "dl_vlan_pcp".into(),
        Field::IpSrc => "nw_src".into(),
        Field::IpDst => "nw_dst".into(),
        Field::IpProto => "nw_proto".into(),
        Field::IpEcn => "nw_ecn".into(),
        Field::IpTtl => "nw_ttl".into(),
        other => other.name(),
    }
}

fn action_text(a: &Action, names: &dyn Fn(u32) -> Option<String>) -> String {
    match a {
        Action::Output(p) => format!("output:{}", port_text(*p, names)),
        Action::InPort => "IN_PORT".into(),
        Action::Normal => "NORMAL".into(),
        Action::Flood => "FLOOD".into(),
        Action::All => "ALL".into(),
        Action::Controller { max_len, reason } => match reason {
            PacketInReason::Action => format!("CONTROLLER:{max_len}"),
            r => format!("controller(max_len={max_len},reason={})", r.as_str()),
        },
        Action::SetField { field, value } => {
            format!(
                "set_field:{}->{}",
                format_value(*field, *value, None),
                field.name()
            )
        }
        Action::PushVlan(t) => format!("push_vlan:{t:#06x}"),
        Action::PopVlan => "pop_vlan".into(),
        Action::DecTtl => "dec_ttl".into(),
        Action::Group(g) => format!("group:{g}"),
        Action::Meter(m) => format!("meter:{m}"),
    }
}

/// Writes instructions as an OVS action list: applied actions, `clear_actions`,
/// `write_actions(...)`, `write_metadata:V/M`, `goto_table:N`; `drop` when there is nothing.
pub fn format_actions(ins: &Instructions, names: &dyn Fn(u32) -> Option<String>) -> String {
    let mut parts: Vec<String> = ins.apply.iter().map(|a| action_text(a, names)).collect();
    if ins.clear_actions {
        parts.push("clear_actions".into());
    }
    if !ins.write.is_empty() {
        let inner: Vec<String> = ins.write.iter().map(|a| action_text(a, names)).collect();
        parts.push(format!("write_actions({})", inner.join(",")));
    }
    if let Some((v, m)) = ins.write_metadata {
        if m == u64::MAX {
            parts.push(format!("write_metadata:{v:#x}"));
        } else {
            parts.push(format!("write_metadata:{v:#x}/{m:#x}"));
        }
    }
    if let Some(t) = ins.goto_table {
        parts.push(format!("goto_table:{t}"));
    }
    if parts.is_empty() {
        "drop".into()
    } else {
        parts.join(",")
    }
}

/// Writes a flow-mod as one line that [`parse_flow`] reads back: `table=…,priority=…,` then
/// cookie, timeouts, flags, out_port when set, the match, and ` actions=…` for add/modify.
pub fn format_flow_mod(fm: &FlowMod, names: &dyn Fn(u32) -> Option<String>) -> String {
    let mut out = String::new();
    let sep = |out: &mut String| {
        if !out.is_empty() {
            out.push(',');
        }
    };
    if let Some(t) = fm.table {
        sep(&mut out);
        let _ = write!(out, "table={t}");
    }
    sep(&mut out);
    let _ = write!(out, "priority={}", fm.priority);
    let add = fm.command == FlowModCommand::Add;
    if fm.cookie != 0 || (!add && fm.cookie_mask != 0) {
        sep(&mut out);
        if add || fm.cookie_mask == u64::MAX {
            let _ = write!(out, "cookie={:#x}", fm.cookie);
        } else {
            let _ = write!(out, "cookie={:#x}/{:#x}", fm.cookie, fm.cookie_mask);
        }
    }
    if fm.idle_timeout != 0 {
        sep(&mut out);
        let _ = write!(out, "idle_timeout={}", fm.idle_timeout);
    }
    if fm.hard_timeout != 0 {
        sep(&mut out);
        let _ = write!(out, "hard_timeout={}", fm.hard_timeout);
    }
    let FlowFlags {
        send_flow_rem,
        check_overlap,
        reset_counts,
    } = fm.flags;
    for (on, name) in [
        (send_flow_rem, "send_flow_rem"),
        (check_overlap, "check_overlap"),
        (reset_counts, "reset_counts"),
    ] {
        if on {
            sep(&mut out);
            out.push_str(name);
        }
    }
    if let Some(p) = fm.out_port {
        sep(&mut out);
        let _ = write!(out, "out_port={}", port_text(p, names));
    }
    let m = format_match(&fm.fields, names);
    if !m.is_empty() {
        sep(&mut out);
        out.push_str(&m);
    }
    if matches!(
        fm.command,
        FlowModCommand::Add | FlowModCommand::Modify | FlowModCommand::ModifyStrict
    ) {
        let _ = write!(out, " actions={}", format_actions(&fm.instructions, names));
    }
    out
}

/// The `add` flow-mod that would create `flow` (same table, priority, match, instructions,
/// cookie, timeouts, flags).
pub fn flow_mod_of(flow: &Flow) -> FlowMod {
    let mut fm = FlowMod::add(
        flow.table,
        flow.priority,
        flow.fields.clone(),
        flow.instructions.clone(),
    );
    fm.cookie = flow.cookie;
    fm.idle_timeout = flow.idle_timeout;
    fm.hard_timeout = flow.hard_timeout;
    fm.flags = flow.flags;
    fm
}

/// Writes a flow as the `add` line that recreates it.
pub fn format_flow(flow: &Flow, names: &dyn Fn(u32) -> Option<String>) -> String {
    format_flow_mod(&flow_mod_of(flow), names)
}

/// A [`fmt::Display`] adaptor for a match with numeric ports.
#[derive(Debug)]
pub struct DisplayMatch<'a>(pub &'a [MatchField]);

impl fmt::Display for DisplayMatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_match(self.0, &|_| None))
    }
}

mod group;

pub use group::{
    ParsedGroup, ParsedMeter, format_group, format_group_mod, format_meter_mod, parse_group,
    parse_meter,
};

#[cfg(test)]
mod tests;
