//! Raw records (JSON lines) and what is rendered from them: the Markdown table (median,
//! min–max and ratio to the Linux bridge per path and figure) and an SVG bar chart of the
//! throughput ratios.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::measure::Meas;
use crate::placement::APART_NS;
use crate::topo::PathKind;

/// One line of the raw file after the machine facts: a measurement, a failure, or a note.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rec {
    /// `measurement`, `failure` or `note`.
    pub kind: String,
    /// Round (1-based).
    pub round: u32,
    /// Path key (`vswitchd-afxdp`, `bridge`, …).
    pub path: String,
    /// Figure (`fps_1`, `fps_10k`, `tcp_1`, `tcp_1_adaptive`, `tcp_4`, `rtt`, `rtt_adaptive`, `idle_adaptive`,
    /// or `setup` for a path that could not be built).
    pub figure: String,
    /// The numbers.
    #[serde(flatten)]
    pub meas: Meas,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// UTC time.
    #[serde(default)]
    pub time: String,
}

/// Reads a raw file: the machine facts (first `kind: machine` line) and the records.
pub fn read_raw(path: &Path) -> Result<(serde_json::Value, Vec<Rec>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut facts = serde_json::Value::Null;
    let mut recs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        if v.get("kind").and_then(|k| k.as_str()) == Some("machine") {
            facts = v;
        } else {
            recs.push(
                serde_json::from_value(v)
                    .with_context(|| format!("{}:{}: not a record", path.display(), i + 1))?,
            );
        }
    }
    Ok((facts, recs))
}

/// Machine facts on which raw files must agree to be pooled: rounds from another machine or
/// kernel, another placement of the generator, the switch and the servers, another congestion
/// control, another halt-poll window of idle vCPUs, another length of measurement (traffic or
/// idle), another round-trip load, another generator, or switches set up another way (a rule
/// per flow, vswitchd's or Open vSwitch's XDP mode) are not draws of the same thing.
const POOL_SAME: &[&str] = &[
    "cpu_model",
    "cpus",
    "kernel",
    "gen_cpu",
    "switch_cpu",
    "sink_cpu",
    "rtt_sink_cpu",
    "tcp_congestion_control",
    "guest_halt_poll_ns",
    "secs",
    "idle_secs",
    "mps",
    "generator",
    "rule_per_flow",
    "xdp_mode",
    "ovs_xdp_mode",
];

/// Fact `key` of a raw file's facts `f` as pooling compares it: the switch settings that files
/// from before 2026-12-07 record only in their `args` are read from there (the options'
/// defaults when absent), and the generator without its binary's path (the same generator
/// built elsewhere is the same generator).
fn pool_fact(f: &serde_json::Value, key: &str) -> Option<serde_json::Value> {
    if let Some(v) = f.get(key) {
        if key == "generator"
            && let Some(g) = v.as_str()
        {
            return Some(generator_without_path(g).into());
        }
        return Some(v.clone());
    }
    let args: Vec<&str> = f
        .get("args")?
        .as_array()?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let value_of = |flag: &str| {
        let eq = format!("{flag}=");
        args.iter().enumerate().find_map(|(i, a)| {
            if *a == flag {
                args.get(i + 1).map(|v| (*v).to_owned())
            } else {
                a.strip_prefix(eq.as_str()).map(str::to_owned)
            }
        })
    };
    match key {
        "rule_per_flow" => Some(args.contains(&"--rule-per-flow").into()),
        "xdp_mode" => Some(value_of("--xdp-mode").into()),
        "ovs_xdp_mode" => Some(
            value_of("--ovs-xdp-mode")
                .unwrap_or_else(|| "native".into())
                .into(),
        ),
        _ => None,
    }
}

/// `pktgen PATH --mode …` as `pktgen --mode …` (the form recorded since 2026-12-07).
fn generator_without_path(g: &str) -> String {
    match g.split_once(' ') {
        Some(("pktgen", rest)) if rest.starts_with('/') || rest.starts_with('.') => {
            let rest = rest.split_once(' ').map_or("", |(_, r)| r);
            format!("pktgen {rest}").trim_end().to_owned()
        }
        _ => g.to_owned(),
    }
}

/// Reads several raw files as one run: each file's rounds follow the rounds of the files
/// before it (renumbered), and the machine facts are the first file's with `pooled_from`
/// (each file's name, its rounds in the pooled numbering, its binaries' commit and start) and
/// the total of `rounds`. Pooling is for runs of the same paths made at different times, whose
/// rounds are independent draws as a single run's are: more rounds narrow the intervals of the
/// goals section. Refused when two files record different values of a fact of
/// [`POOL_SAME`]; a fact one of them does not record (a file from before it was recorded)
/// cannot be checked, and the report says so (`unchecked` in `pooled_from`).
///
/// # Errors
/// A file that cannot be read or parsed, or that disagrees with the first file.
pub fn pool(paths: &[PathBuf]) -> Result<(serde_json::Value, Vec<Rec>)> {
    let mut facts = serde_json::Value::Null;
    let mut recs = Vec::new();
    let mut from = Vec::new();
    let mut offset = 0u32;
    // Each fact of POOL_SAME as the first file that records it has it.
    let mut known: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    for (i, path) in paths.iter().enumerate() {
        let (f, mut r) = read_raw(path)?;
        // The same run twice would count its rounds twice.
        let same = |p: &PathBuf| match (p.canonicalize(), path.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => p == path,
        };
        if paths[..i].iter().any(same) {
            bail!("{} is given twice", path.display());
        }
        if i == 0 {
            facts = if f.is_object() {
                f.clone()
            } else {
                serde_json::json!({"kind": "machine"})
            };
        }
        let mut unchecked = Vec::new();
        for key in POOL_SAME {
            let is = pool_fact(&f, key);
            // Not compared: this file does not record it though a file before it does, or
            // this file is the first to (the files before it do not).
            match (known.get(key), &is) {
                (Some(_), None) => unchecked.push(*key),
                (None, Some(_)) if i > 0 => unchecked.push(*key),
                _ => {}
            }
            let Some(is) = is else { continue };
            match known.get(key) {
                Some(was) if *was != is => bail!(
                    "{} cannot be pooled with the files before it: {key} is {was} there, {is} here",
                    path.display(),
                ),
                Some(_) => {}
                None => {
                    known.insert(key, is);
                }
            }
        }
        let rounds = r.iter().map(|x| x.round).max().unwrap_or(0);
        for x in &mut r {
            x.round += offset;
        }
        from.push(serde_json::json!({
            "file": path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned()),
            "rounds": [offset + 1, offset + rounds],
            "git": f.get("git").cloned().unwrap_or(serde_json::Value::Null),
            "time": f.get("time").cloned().unwrap_or(serde_json::Value::Null),
            "unchecked": unchecked,
        }));
        offset += rounds;
        recs.append(&mut r);
    }
    if let Some(obj) = facts.as_object_mut() {
        obj.insert("pooled_from".into(), serde_json::Value::Array(from));
        obj.insert("rounds".into(), offset.into());
    }
    Ok((facts, recs))
}

/// "Pooled from N raw files …": the files a pooled report was made from, with their rounds in
/// its numbering, binaries and start; `None` for a single run.
fn pooled_line(facts: &serde_json::Value) -> Option<String> {
    let from = facts.get("pooled_from")?.as_array()?;
    let mut line = format!(
        "Pooled from {} raw files (`e2e --report A --report B …`), their rounds renumbered in this order:",
        from.len()
    );
    for (i, f) in from.iter().enumerate() {
        let s = |k: &str| f.get(k).and_then(serde_json::Value::as_str).unwrap_or("?");
        let r = |j: usize| {
            f.get("rounds")
                .and_then(|r| r.get(j))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        let _ = write!(
            line,
            "{} {} (rounds {}–{}, binaries at {}, started {}",
            if i == 0 { "" } else { ";" },
            s("file"),
            r(0),
            r(1),
            s("git"),
            s("time")
        );
        let unchecked: Vec<&str> = f
            .get("unchecked")
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
            .unwrap_or_default();
        if !unchecked.is_empty() {
            let _ = write!(
                line,
                "; not recorded in it or in the first file, so not checked: {}",
                unchecked.join(", ")
            );
        }
        line.push(')');
    }
    line.push('.');
    Some(line)
}

#[derive(Clone, Copy)]
enum Fmt {
    Mfps,
    Gbps,
    Us,
    /// Nanoseconds, whole.
    Ns,
    /// A count with one decimal.
    Num,
    Pct,
    Cpu,
    /// The row's figure over this one, of the same path and round (a ratio per round: the
    /// machine's drift between rounds cancels).
    Over(&'static str),
    /// How many of the figure's measurements ran with the vCPUs apart ("k of n"), from their
    /// hand-off probes.
    Apart,
}

struct Row {
    label: &'static str,
    figure: &'static str,
    key: &'static str,
    fmt: Fmt,
    /// Figure/key of the bridge value the ratio is taken to (None: no ratio).
    ratio_to: Option<(&'static str, &'static str)>,
}

const fn row(
    label: &'static str,
    figure: &'static str,
    key: &'static str,
    fmt: Fmt,
    ratio_to: Option<(&'static str, &'static str)>,
) -> Row {
    Row {
        label,
        figure,
        key,
        fmt,
        ratio_to,
    }
}

const ROWS: &[Row] = &[
    row(
        "64 B frames/s at the sink, 1 flow (M)",
        "fps_1",
        "fps",
        Fmt::Mfps,
        Some(("fps_1", "fps")),
    ),
    row(
        "loss, 1 flow (% of sent)",
        "fps_1",
        "loss_pct",
        Fmt::Pct,
        None,
    ),
    row(
        "64 B frames/s, 10,000 flows (M)",
        "fps_10k",
        "fps",
        Fmt::Mfps,
        Some(("fps_10k", "fps")),
    ),
    row(
        "loss, 10,000 flows (% of sent)",
        "fps_10k",
        "loss_pct",
        Fmt::Pct,
        None,
    ),
    row(
        "10,000 flows ÷ 1 flow, frames/s of the same round (×)",
        "fps_10k",
        "fps",
        Fmt::Over("fps_1"),
        None,
    ),
    row(
        "switch core working, 1 flow (% of the time)",
        "fps_1",
        "switch_busy_pct",
        Fmt::Pct,
        None,
    ),
    row(
        "switch core work per frame, 1 flow (ns)",
        "fps_1",
        "switch_ns_per_frame",
        Fmt::Ns,
        None,
    ),
    row(
        "of which the switch's own (not in transmit kicks), 1 flow (ns)",
        "fps_1",
        "switch_own_ns_per_frame",
        Fmt::Ns,
        None,
    ),
    row(
        "switch frames per receive batch, 1 flow",
        "fps_1",
        "switch_frames_per_batch",
        Fmt::Num,
        None,
    ),
    row(
        "switch frames taken in full batches (behind), 1 flow (%)",
        "fps_1",
        "switch_full_batch_pct",
        Fmt::Pct,
        None,
    ),
    row(
        "switch core working, 10,000 flows (% of the time)",
        "fps_10k",
        "switch_busy_pct",
        Fmt::Pct,
        None,
    ),
    row(
        "switch core work per frame, 10,000 flows (ns)",
        "fps_10k",
        "switch_ns_per_frame",
        Fmt::Ns,
        None,
    ),
    row(
        "of which the switch's own (not in transmit kicks), 10,000 flows (ns)",
        "fps_10k",
        "switch_own_ns_per_frame",
        Fmt::Ns,
        None,
    ),
    row(
        "switch frames per receive batch, 10,000 flows",
        "fps_10k",
        "switch_frames_per_batch",
        Fmt::Num,
        None,
    ),
    row(
        "switch frames taken in full batches (behind), 10,000 flows (%)",
        "fps_10k",
        "switch_full_batch_pct",
        Fmt::Pct,
        None,
    ),
    row(
        "TCP, 1 stream (Gb/s)",
        "tcp_1",
        "gbps",
        Fmt::Gbps,
        Some(("tcp_1", "gbps")),
    ),
    row(
        "TCP, 1 stream, adaptive poll (Gb/s)",
        "tcp_1_adaptive",
        "gbps",
        Fmt::Gbps,
        Some(("tcp_1", "gbps")),
    ),
    row(
        "TCP, 4 streams (Gb/s)",
        "tcp_4",
        "gbps",
        Fmt::Gbps,
        Some(("tcp_4", "gbps")),
    ),
    row(
        "UDP RTT p50 (µs)",
        "rtt",
        "p50_us",
        Fmt::Us,
        Some(("rtt", "p50_us")),
    ),
    row(
        "UDP RTT p99 (µs)",
        "rtt",
        "p99_us",
        Fmt::Us,
        Some(("rtt", "p99_us")),
    ),
    row(
        "UDP RTT p99.9 (µs)",
        "rtt",
        "p999_us",
        Fmt::Us,
        Some(("rtt", "p999_us")),
    ),
    row(
        "UDP RTT p50, adaptive poll (µs)",
        "rtt_adaptive",
        "p50_us",
        Fmt::Us,
        Some(("rtt", "p50_us")),
    ),
    row(
        "UDP RTT p99, adaptive poll (µs)",
        "rtt_adaptive",
        "p99_us",
        Fmt::Us,
        Some(("rtt", "p99_us")),
    ),
    row(
        "UDP RTT p99.9, adaptive poll (µs)",
        "rtt_adaptive",
        "p999_us",
        Fmt::Us,
        Some(("rtt", "p999_us")),
    ),
    row(
        "switch CPU idle, adaptive, no traffic (% of a core)",
        "idle_adaptive",
        "core_pct",
        Fmt::Pct,
        None,
    ),
    row(
        "vCPUs apart (a hand-off probe above 150 ns), 64 B 1 flow (measurements)",
        "fps_1",
        "handoff_ns",
        Fmt::Apart,
        None,
    ),
    row(
        "vCPUs apart, TCP 1 stream (measurements)",
        "tcp_1",
        "handoff_ns",
        Fmt::Apart,
        None,
    ),
    row(
        "vCPUs apart, UDP RTT (measurements)",
        "rtt",
        "handoff_ns",
        Fmt::Apart,
        None,
    ),
    row(
        "generator / switch CPU busy, 64 B 1 flow (%)",
        "fps_1",
        "",
        Fmt::Cpu,
        None,
    ),
    row(
        "generator / switch CPU busy, 64 B 10,000 flows (%)",
        "fps_10k",
        "",
        Fmt::Cpu,
        None,
    ),
    row(
        "generator / switch CPU busy, TCP 1 stream (%)",
        "tcp_1",
        "",
        Fmt::Cpu,
        None,
    ),
    row(
        "generator / switch CPU busy, TCP 1 stream, adaptive (%)",
        "tcp_1_adaptive",
        "",
        Fmt::Cpu,
        None,
    ),
    row(
        "generator / switch CPU busy, TCP 4 streams (%)",
        "tcp_4",
        "",
        Fmt::Cpu,
        None,
    ),
    row(
        "generator / switch CPU busy, UDP RTT (%)",
        "rtt",
        "",
        Fmt::Cpu,
        None,
    ),
];

/// Median of a non-empty list (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// The confidence the goals section asks of an interval before it gives a verdict.
pub const GOAL_LEVEL: f64 = 0.95;

/// The fewest rounds whose min–max has `GOAL_LEVEL` confidence (`e2e --goals` runs them).
pub const GOAL_ROUNDS: u32 = 6;

/// A distribution-free interval for the median of `v`: the `k`-th smallest and the `k`-th
/// largest value, with `k` the largest for which the interval covers the median with at least
/// `level` confidence (the count of values below the median is binomial(n, ½) whatever their
/// distribution, if the values are independent draws of one distribution). Returns the
/// interval and its confidence; `None` if even min–max falls short (fewer than 6 values for
/// 95 %).
pub fn median_interval(v: &[f64], level: f64) -> Option<(f64, f64, f64)> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    // P(X = i) for X ~ binomial(n, ½), in logs so that large n does not underflow.
    let ln_half = 0.5_f64.ln();
    let mut ln_p = n as f64 * ln_half;
    let mut below = 0.0; // P(X ≤ k - 1)
    let mut best = None;
    for k in 1..=n.div_ceil(2) {
        below += ln_p.exp();
        let confidence = 1.0 - 2.0 * below;
        if confidence < level {
            break;
        }
        best = Some((s[k - 1], s[n - k], confidence));
        let i = (k - 1) as f64;
        ln_p += (n as f64 - i).ln() - (i + 1.0).ln();
    }
    best
}

/// Which side of a goal's bar is good.
#[derive(Clone, Copy)]
enum Bar {
    /// At least this.
    AtLeast(f64),
    /// At most this.
    AtMost(f64),
    /// Strictly below this.
    Below(f64),
}

impl Bar {
    fn holds(self, v: f64) -> bool {
        match self {
            Self::AtLeast(b) => v >= b,
            Self::AtMost(b) => v <= b,
            Self::Below(b) => v < b,
        }
    }
}

/// What a goal compares, per round.
#[derive(Clone, Copy)]
enum Measure {
    /// The path's `figure`/`key` over the same round's of another path.
    OverPath(PathKind),
    /// The path's `figure`/`key` over the same path's `figure` of the same round.
    OverFigure(&'static str),
    /// The path's `figure`/`key` itself.
    Value,
}

struct Goal {
    label: &'static str,
    /// The paths it is judged on, each on its own.
    paths: &'static [PathKind],
    figure: &'static str,
    key: &'static str,
    measure: Measure,
    bar: Bar,
}

const fn goal(
    label: &'static str,
    paths: &'static [PathKind],
    (figure, key): (&'static str, &'static str),
    measure: Measure,
    bar: Bar,
) -> Goal {
    Goal {
        label,
        paths,
        figure,
        key,
        measure,
        bar,
    }
}

const AFXDP: &[PathKind] = &[PathKind::VsAfxdp];
const VSWITCHD: &[PathKind] = &[PathKind::VsAfxdp, PathKind::VsTap, PathKind::VsAfpacket];

/// Issue #4's goals that the harness measures, each as one number per round.
const GOALS: &[Goal] = &[
    goal(
        "64 B frames/s, 1 flow, ≥ 1.3× the Linux bridge",
        AFXDP,
        ("fps_1", "fps"),
        Measure::OverPath(PathKind::Bridge),
        Bar::AtLeast(1.3),
    ),
    goal(
        "64 B frames/s, 10,000 flows, ≥ 1.3× the Linux bridge",
        AFXDP,
        ("fps_10k", "fps"),
        Measure::OverPath(PathKind::Bridge),
        Bar::AtLeast(1.3),
    ),
    goal(
        "64 B frames/s, 1 flow, ≥ 1.1× OVS afxdp",
        AFXDP,
        ("fps_1", "fps"),
        Measure::OverPath(PathKind::OvsAfxdp),
        Bar::AtLeast(1.1),
    ),
    goal(
        "64 B frames/s, 10,000 flows, ≥ 1.1× OVS afxdp",
        AFXDP,
        ("fps_10k", "fps"),
        Measure::OverPath(PathKind::OvsAfxdp),
        Bar::AtLeast(1.1),
    ),
    goal(
        "the switch's own work, 1 flow, ≤ 100 ns per frame",
        AFXDP,
        ("fps_1", "switch_own_ns_per_frame"),
        Measure::Value,
        Bar::AtMost(100.0),
    ),
    goal(
        "the switch's own work, 10,000 flows, ≤ 100 ns per frame",
        AFXDP,
        ("fps_10k", "switch_own_ns_per_frame"),
        Measure::Value,
        Bar::AtMost(100.0),
    ),
    goal(
        "10,000 flows within 10 % of 1 flow (frames/s)",
        VSWITCHD,
        ("fps_10k", "fps"),
        Measure::OverFigure("fps_1"),
        Bar::AtLeast(0.9),
    ),
    goal(
        "TCP 1 stream ≥ 1.0× the Linux bridge (tap ports)",
        &[PathKind::VsTap],
        ("tcp_1", "gbps"),
        Measure::OverPath(PathKind::Bridge),
        Bar::AtLeast(1.0),
    ),
    goal(
        "TCP 1 stream ≥ 1.0× the Linux bridge (veth ports, `auto`)",
        &[PathKind::VsAfpacket],
        ("tcp_1", "gbps"),
        Measure::OverPath(PathKind::Bridge),
        Bar::AtLeast(1.0),
    ),
    goal(
        "UDP RTT p99 ≤ 1.5× the Linux bridge, busy poll",
        VSWITCHD,
        ("rtt", "p99_us"),
        Measure::OverPath(PathKind::Bridge),
        Bar::AtMost(1.5),
    ),
    goal(
        "adaptive poll, idle: < 2 % of a core",
        VSWITCHD,
        ("idle_adaptive", "core_pct"),
        Measure::Value,
        Bar::Below(2.0),
    ),
];

/// The verdict on one goal from its per-round values: met if the whole interval of the
/// median is on the good side of the bar, not met if the whole of it is on the other side,
/// else not settled (or too few rounds for an interval).
fn verdict(interval: Option<(f64, f64, f64)>, rounds: usize, bar: Bar) -> String {
    match interval {
        None => format!(
            "too few rounds ({rounds}) for a {:.0} % interval",
            GOAL_LEVEL * 100.0
        ),
        Some((lo, hi, _)) => match (bar.holds(lo), bar.holds(hi)) {
            (true, true) => "**met**".into(),
            (false, false) => "**not met**".into(),
            _ => "not settled".into(),
        },
    }
}

/// "k of n (together m1, lo–hi; apart m2, lo–hi)": how many of the rounds ran with the vCPUs
/// apart, and the median of each group when both have rounds, with its interval when the
/// group has rounds enough for one; "—" when no round was probed.
fn apart_cell(
    by_round: &BTreeMap<u32, f64>,
    apart: impl Fn(u32) -> Option<bool>,
    fmt: Fmt,
) -> String {
    let (mut together, mut away, mut unknown) = (Vec::new(), Vec::new(), 0);
    for (&n, &v) in by_round {
        match apart(n) {
            Some(true) => away.push(v),
            Some(false) => together.push(v),
            None => unknown += 1,
        }
    }
    if together.is_empty() && away.is_empty() {
        return "—".into();
    }
    let mut cell = format!("{} of {}", away.len(), together.len() + away.len());
    if let (Some(t), Some(a)) = (median(&together), median(&away)) {
        // A group's median, then its interval when it has one.
        let group = |m: f64, v: &[f64]| match median_interval(v, GOAL_LEVEL) {
            Some((lo, hi, _)) => format!("{}, {}–{}", num(m, fmt), num(lo, fmt), num(hi, fmt)),
            None => num(m, fmt),
        };
        let _ = write!(
            cell,
            " (together {}; apart {})",
            group(t, &together),
            group(a, &away)
        );
    }
    if unknown > 0 {
        let _ = write!(cell, "; {unknown} not probed");
    }
    cell
}

/// The goals section: per goal and path, the per-round numbers, their median (min–max), the
/// median's interval and the verdict. Goals of paths or figures not in the run are left out.
fn goals_section(data: &Data<'_>) -> String {
    let mut md = String::new();
    let mut rows = 0;
    // The column of the host's placement only for runs that probed it.
    let probed = data.recs.iter().any(|r| !r.meas.handoff_ns.is_empty());
    for (g, path) in GOALS
        .iter()
        .flat_map(|g| g.paths.iter().map(move |&p| (g, p)))
    {
        // Per round: the number, and the measurements whose placement it depends on.
        let (by_round, also): (BTreeMap<u32, f64>, Option<(&str, &str)>) = match g.measure {
            Measure::OverPath(base) => (
                data.ratio_map((path.key(), g.figure), (base.key(), g.figure), g.key),
                // A path on one core does not care where the other vCPU is.
                base.crosses_cores().then_some((base.key(), g.figure)),
            ),
            Measure::OverFigure(base) => (
                data.ratio_map((path.key(), g.figure), (path.key(), base), g.key),
                Some((path.key(), base)),
            ),
            Measure::Value => (data.by_round(path.key(), g.figure, g.key), None),
        };
        let v: Vec<f64> = by_round.values().copied().collect();
        if v.is_empty() {
            continue;
        }
        if rows == 0 {
            let _ = writeln!(
                md,
                "| goal (issue #4) | path | rounds | median (min–max) | {:.0} % interval of the median | verdict |{}",
                GOAL_LEVEL * 100.0,
                if probed {
                    " rounds with the vCPUs apart |"
                } else {
                    ""
                }
            );
            md.push_str("|---|---|---|---|---|---|");
            md.push_str(if probed { "---|\n" } else { "\n" });
        }
        rows += 1;
        let fmt = if matches!(g.measure, Measure::Value) {
            Fmt::Num
        } else {
            Fmt::Over("")
        };
        let interval = median_interval(&v, GOAL_LEVEL);
        let interval_cell = match interval {
            Some((lo, hi, c)) => format!(
                "{}–{} ({:.1} %)",
                bar_num(lo, fmt, g.bar),
                bar_num(hi, fmt, g.bar),
                c * 100.0
            ),
            // What min–max alone would give.
            None => format!(
                "— (min–max: {:.1} %)",
                (1.0 - 2.0 * 0.5_f64.powi(i32::try_from(v.len()).unwrap_or(i32::MAX))) * 100.0
            ),
        };
        let _ = write!(
            md,
            "| {} | {}. {} | {} | {} | {} | {} |",
            g.label,
            path.letter(),
            path.label(),
            v.len(),
            spread(&v, fmt),
            interval_cell,
            verdict(interval, v.len(), g.bar)
        );
        if probed {
            // Apart if either measurement was; unknown if neither was probed.
            let apart = |n: u32| match (
                data.apart(path.key(), g.figure, n),
                also.and_then(|(p, f)| data.apart(p, f, n)),
            ) {
                (Some(a), Some(b)) => Some(a || b),
                (a, b) => a.or(b),
            };
            let _ = write!(md, " {} |", apart_cell(&by_round, apart, fmt));
        }
        md.push('\n');
    }
    if rows > 0 {
        let _ = writeln!(
            md,
            "\nGoals: one number per round (a ratio of two figures measured in the same round, \
             or the figure itself); the interval is distribution-free (order statistics of the \
             rounds) and needs at least 6 rounds for {:.0} %. Met: the whole interval on the \
             goal's side of the bar; not met: the whole of it on the other side; otherwise not \
             settled by this run. It covers the spread between this run's rounds, not a phase \
             of the host that lasts the whole run.",
            GOAL_LEVEL * 100.0
        );
        if probed {
            let _ = writeln!(
                md,
                "\nThe vCPUs apart: rounds in which a measurement the number depends on had a \
                 cache-line hand-off probe between the generator's and the switch's CPUs above \
                 {APART_NS:.0} ns, before, during or after it (the host had put them on cores \
                 that share no cache, for at least part of it; docs/e2e.md, \"The host's \
                 placement of the two vCPUs\"), with the median of those rounds and of the \
                 others, and its {:.0} % interval when the group has rounds enough for one. The \
                 verdict counts every round.",
                GOAL_LEVEL * 100.0
            );
        }
    }
    md
}

struct Data<'a> {
    recs: &'a [Rec],
}

impl Data<'_> {
    fn values(&self, path: &str, figure: &str, key: &str) -> Vec<f64> {
        self.recs
            .iter()
            .filter(|r| r.kind == "measurement" && r.path == path && r.figure == figure)
            .filter_map(|r| r.meas.values.get(key).copied())
            .filter(|v| v.is_finite())
            .collect()
    }

    /// `figure`'s `key` of path `path`, by round.
    fn by_round(&self, path: &str, figure: &str, key: &str) -> BTreeMap<u32, f64> {
        self.recs
            .iter()
            .filter(|r| r.kind == "measurement" && r.path == path && r.figure == figure)
            .filter_map(|r| Some((r.round, *r.meas.values.get(key)?)))
            .filter(|(_, v)| v.is_finite())
            .collect()
    }

    /// Per round with both, `figure`'s `key` over `base`'s (path `path`).
    fn per_round(&self, path: &str, figure: &str, base: &str, key: &str) -> Vec<f64> {
        self.ratio_by_round((path, figure), (path, base), key)
    }

    /// Per round with both, `key` of (path, figure) `over` over that of `base`.
    fn ratio_by_round(&self, over: (&str, &str), base: (&str, &str), key: &str) -> Vec<f64> {
        self.ratio_map(over, base, key).into_values().collect()
    }

    /// [`Self::ratio_by_round`] by round.
    fn ratio_map(&self, over: (&str, &str), base: (&str, &str), key: &str) -> BTreeMap<u32, f64> {
        let base = self.by_round(base.0, base.1, key);
        self.by_round(over.0, over.1, key)
            .into_iter()
            .filter_map(|(n, v)| base.get(&n).filter(|&&b| b > 0.0).map(|b| (n, v / b)))
            .collect()
    }

    /// Whether round `round`'s measurement of `figure` on `path` ran with the two vCPUs apart,
    /// at least in part (a hand-off probe above [`APART_NS`]); None when it was not probed.
    fn apart(&self, path: &str, figure: &str, round: u32) -> Option<bool> {
        self.probed(path, figure)
            .into_iter()
            .find(|&(n, _)| n == round)
            .map(|(_, a)| a)
    }

    /// Per probed measurement of `figure` on `path`: its round and whether it ran with the
    /// vCPUs apart.
    fn probed(&self, path: &str, figure: &str) -> Vec<(u32, bool)> {
        self.recs
            .iter()
            .filter(|r| r.kind == "measurement" && r.path == path && r.figure == figure)
            .filter(|r| !r.meas.handoff_ns.is_empty())
            .map(|r| (r.round, r.meas.handoff_ns.iter().any(|&h| h > APART_NS)))
            .collect()
    }

    fn cpu(&self, path: &str, figure: &str, cpu: usize) -> Vec<f64> {
        self.recs
            .iter()
            .filter(|r| r.kind == "measurement" && r.path == path && r.figure == figure)
            .filter_map(|r| r.meas.cpu_busy.get(cpu).copied())
            .collect()
    }

    fn failed(&self, path: &str, figure: &str) -> bool {
        // The adaptive figures are measured on a topology of their own.
        let setup = if figure.ends_with("_adaptive") {
            "setup_adaptive"
        } else {
            "setup"
        };
        self.recs.iter().any(|r| {
            r.kind == "failure" && r.path == path && (r.figure == figure || r.figure == setup)
        })
    }

    fn ratio(&self, path: &str, figure: &str, key: &str) -> Option<f64> {
        let v = median(&self.values(path, figure, key))?;
        let b = median(&self.values(PathKind::Bridge.key(), figure, key))?;
        (b > 0.0).then(|| v / b)
    }
}

/// [`num`] of an end of a goal's interval, with as many more digits as it takes (up to 6
/// decimals) for the printed value to be on the same side of `bar` as the value: the verdict
/// compares the values, and a reader compares what is printed (×1.296 printed as 1.30 would
/// look like it meets "≥ 1.3").
fn bar_num(v: f64, fmt: Fmt, bar: Bar) -> String {
    let shown = num(v, fmt);
    if shown
        .parse::<f64>()
        .map_or(true, |p| bar.holds(p) == bar.holds(v))
    {
        return shown;
    }
    (2..=6)
        .map(|d| format!("{v:.d$}"))
        .find(|t| t.parse::<f64>().is_ok_and(|p| bar.holds(p) == bar.holds(v)))
        .unwrap_or_else(|| format!("{v}"))
}

fn num(v: f64, fmt: Fmt) -> String {
    match fmt {
        Fmt::Mfps => format!("{:.3}", v / 1e6),
        Fmt::Gbps => format!("{v:.2}"),
        Fmt::Us => {
            if v >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        }
        Fmt::Ns => format!("{v:.0}"),
        Fmt::Num => format!("{v:.1}"),
        Fmt::Over(_) | Fmt::Apart => format!("{v:.2}"),
        Fmt::Pct | Fmt::Cpu => {
            if v.abs() >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        }
    }
}

fn spread(v: &[f64], fmt: Fmt) -> String {
    let Some(m) = median(v) else {
        return String::new();
    };
    if v.len() == 1 {
        return num(m, fmt);
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{} ({}–{})", num(m, fmt), num(lo, fmt), num(hi, fmt))
}

/// The paths present in `recs`, in table order.
fn paths_in(recs: &[Rec]) -> Vec<PathKind> {
    let keys: BTreeSet<&str> = recs.iter().map(|r| r.path.as_str()).collect();
    PathKind::ALL
        .into_iter()
        .filter(|p| keys.contains(p.key()))
        .collect()
}

fn fact<'a>(facts: &'a serde_json::Value, key: &str) -> &'a str {
    facts.get(key).and_then(|v| v.as_str()).unwrap_or("?")
}

/// The Markdown report: the table, then how it was measured and what failed.
pub fn markdown(facts: &serde_json::Value, recs: &[Rec]) -> String {
    let data = Data { recs };
    // The generator's and the switch's CPUs (raw files from before they were recorded: the
    // default placement, 0 and 1).
    let cpu_of = |key: &str, default: usize| {
        facts
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .and_then(|c| usize::try_from(c).ok())
            .unwrap_or(default)
    };
    let (gen_cpu, switch_cpu) = (cpu_of("gen_cpu", 0), cpu_of("switch_cpu", 1));
    let paths = paths_in(recs);
    let mut md = String::new();
    let _ = write!(md, "| figure |");
    for p in &paths {
        let _ = write!(md, " {}. {} |", p.letter(), p.label());
    }
    md.push('\n');
    md.push_str("|---|");
    for _ in &paths {
        md.push_str("---|");
    }
    md.push('\n');
    let mut failures = false;
    for r in ROWS {
        let any = paths.iter().any(|p| match r.fmt {
            Fmt::Cpu => !data.cpu(p.key(), r.figure, gen_cpu).is_empty(),
            Fmt::Apart => !data.probed(p.key(), r.figure).is_empty(),
            Fmt::Over(base) => {
                !data.per_round(p.key(), r.figure, base, r.key).is_empty()
                    || data.failed(p.key(), r.figure)
                    || data.failed(p.key(), base)
            }
            _ => {
                !data.values(p.key(), r.figure, r.key).is_empty() || data.failed(p.key(), r.figure)
            }
        });
        if !any {
            continue;
        }
        if matches!(r.fmt, Fmt::Cpu) {
            let label = r.label.replace(
                "generator / switch CPU",
                &format!("CPU{gen_cpu} (generator) / CPU{switch_cpu} (switch)"),
            );
            let _ = write!(md, "| {label} |");
        } else {
            let _ = write!(md, "| {} |", r.label);
        }
        for p in &paths {
            let cell = match r.fmt {
                Fmt::Cpu => {
                    let c0 = median(&data.cpu(p.key(), r.figure, gen_cpu));
                    let c1 = median(&data.cpu(p.key(), r.figure, switch_cpu));
                    match (c0, c1) {
                        (Some(a), Some(b)) => format!("{} / {}", num(a, r.fmt), num(b, r.fmt)),
                        (Some(a), None) => num(a, r.fmt),
                        _ => "—".into(),
                    }
                }
                Fmt::Apart => {
                    let v = data.probed(p.key(), r.figure);
                    if v.is_empty() {
                        "—".into()
                    } else {
                        let k = v.iter().filter(|&&(_, a)| a).count();
                        format!("{k} of {}", v.len())
                    }
                }
                Fmt::Over(base) => {
                    let v = data.per_round(p.key(), r.figure, base, r.key);
                    if !v.is_empty() {
                        spread(&v, r.fmt)
                    } else if data.failed(p.key(), r.figure) || data.failed(p.key(), base) {
                        failures = true;
                        "failed †".into()
                    } else {
                        "—".into()
                    }
                }
                _ => {
                    let v = data.values(p.key(), r.figure, r.key);
                    if v.is_empty() {
                        if data.failed(p.key(), r.figure) {
                            failures = true;
                            "failed †".into()
                        } else {
                            "—".into()
                        }
                    } else {
                        let mut s = spread(&v, r.fmt);
                        if let Some((f, k)) = r.ratio_to
                            && *p != PathKind::Bridge
                            && let Some(x) = median(&v)
                            && let Some(b) = median(&data.values(PathKind::Bridge.key(), f, k))
                            && b > 0.0
                        {
                            let _ = write!(s, " ×{:.2}", x / b);
                        }
                        s
                    }
                }
            };
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
    }

    let rounds = recs.iter().map(|r| r.round).max().unwrap_or(0);
    let measured = recs.iter().filter(|r| r.kind == "measurement").count();
    let loud = recs
        .iter()
        .filter(|r| r.kind == "measurement" && r.meas.quiet == Some(false))
        .count();
    md.push('\n');
    let _ = writeln!(
        md,
        "Cells: median (min–max) over {rounds} interleaved round(s), then ×ratio to the Linux \
         bridge's median (for RTT a ratio above 1 is slower); a ÷ row is the median (min–max) \
         of one ratio per round, both figures of the same path and round. {measured} \
         measurements; {loud} of \
         them started without a quiet machine (< {}% busy per CPU, the switch's own threads \
         not counted).",
        facts
            .get("quiet_limit_pct")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(10.0)
    );
    let goals = goals_section(&data);
    if !goals.is_empty() {
        md.push('\n');
        md.push_str(&goals);
    }
    let _ = writeln!(
        md,
        "\nMachine: {}, {} CPUs, kernel {}. Open vSwitch: {}. iperf3: {}. sockperf: {}. \
         Generator: {}. Traffic {} s per measurement.",
        fact(facts, "cpu_model"),
        facts
            .get("cpus")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        fact(facts, "kernel"),
        fact(facts, "ovs"),
        fact(facts, "iperf3"),
        fact(facts, "sockperf"),
        fact(facts, "generator"),
        facts
            .get("secs")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
    );
    if let Some(cc) = facts
        .get("tcp_congestion_control")
        .and_then(serde_json::Value::as_str)
    {
        let _ = writeln!(md, "TCP congestion control (the iperf3 sender's): {cc}.");
    }
    if let Some(ns) = facts
        .get("guest_halt_poll_ns")
        .and_then(serde_json::Value::as_str)
    {
        let driver = facts
            .get("cpuidle_driver")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?");
        let how = if ns == "0" {
            "none: an idle vCPU halts at once, and waking it goes through the hypervisor"
        } else {
            "an idle vCPU polls that long before it halts"
        };
        let _ = writeln!(
            md,
            "Idle vCPUs: cpuidle driver {driver}, guest halt polling {ns} ns ({how})."
        );
    }
    if let Some(line) = pooled_line(facts) {
        let _ = writeln!(md, "\n{line}");
    }
    let _ = writeln!(md, "\nPlacement: {}", fact(facts, "placement"));
    if recs
        .iter()
        .any(|r| r.meas.values.contains_key("switch_busy_pct"))
    {
        let _ = writeln!(
            md,
            "\nSwitch core rows: the switch's own account of its forwarding core while the \
             generator ran, because a busy-polling switch shows 100 % in the CPU rows whatever \
             its load. vswitchd: its workers' `busy_ns` (passes that found work, from the work \
             to the end of the pass's last transmit flush); Open vSwitch: the processing share of its PMD's cycles \
             (`dpif-netdev/pmd-stats-show`, cleared before). As % of the generator's run time, \
             and per frame the switch received. A switch well below 100 % does not limit the \
             frame rate. Near 100 % it may not either: a busy-polling switch works in every pass \
             while frames keep arriving, and the fewer frames a pass finds, the more work per \
             frame its fixed costs (the transmit kick) make. Frames per receive batch (vswitchd; \
             up to 64; an average over batches): a switch steadily at its limit finds full \
             batches, and its ingress port counts receive drops of reason `no_rx_buffer` or `rx_ring_full`; small \
             averages mean most passes wait for frames. Frames taken in full batches (vswitchd): \
             the share of the traffic received while the worker was behind (a poll that fills \
             its batch leaves frames waiting). Of which the switch's own (vswitchd): the work \
             per frame outside its transmit flushes (`busy_ns - flush_ns`), timed around each \
             flush with the CPU's time-stamp counter; for AF_XDP ports, whose receive takes no \
             system call, its user-space work, the rest being the kernel's copy-mode transmit and \
             the sink's receive run inside the kicks (tap ports write each frame as it is \
             queued, so for them it is all of the work)."
        );
    }
    let notes: BTreeSet<String> = recs
        .iter()
        .filter(|r| r.kind == "note")
        .map(|r| r.meas.detail.clone())
        .collect();
    for n in notes {
        let _ = writeln!(md, "\nNote: {n}");
    }
    if failures || recs.iter().any(|r| r.kind == "failure") {
        md.push_str("\n† Failures:\n");
        let mut seen = BTreeMap::new();
        for r in recs.iter().filter(|r| r.kind == "failure") {
            let reason: String = r
                .error
                .as_deref()
                .unwrap_or("?")
                .chars()
                .take(300)
                .collect();
            seen.entry((r.path.clone(), r.figure.clone(), reason))
                .or_insert_with(Vec::new)
                .push(r.round);
        }
        for ((path, figure, reason), rounds) in seen {
            let _ = writeln!(
                md,
                "- {path} {figure} (round {}): failed: {}",
                rounds
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                reason.replace('\n', " ")
            );
        }
    }
    md
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Grouped bars: per path, the 64 B frames/s (1 and 10,000 flows) and TCP (1 and 4 streams)
/// medians as ratios to the Linux bridge, with the bridge's 1.0 as a dashed line.
pub fn svg(recs: &[Rec]) -> String {
    let data = Data { recs };
    let series = [
        ("fps_1", "fps", "64 B frames/s, 1 flow", "#4e79a7"),
        ("fps_10k", "fps", "64 B frames/s, 10k flows", "#a0cbe8"),
        ("tcp_1", "gbps", "TCP 1 stream", "#f28e2b"),
        ("tcp_4", "gbps", "TCP 4 streams", "#ffbe7d"),
    ];
    let paths = paths_in(recs);
    let ratios: Vec<Vec<Option<f64>>> = paths
        .iter()
        .map(|p| {
            series
                .iter()
                .map(|(f, k, _, _)| data.ratio(p.key(), f, k))
                .collect()
        })
        .collect();
    let top = ratios
        .iter()
        .flatten()
        .flatten()
        .copied()
        .fold(1.0_f64, f64::max);
    let ymax = ((top * 1.1) / 0.5).ceil().max(3.0) * 0.5;
    let (left, right, plot_top, plot_bottom) = (60.0, 90.0, 60.0, 330.0);
    let group_w = 120.0;
    let bar_w = 22.0;
    let width = left + right + group_w * paths.len().max(1) as f64;
    let height = 400.0;
    let y = |v: f64| plot_bottom - (plot_bottom - plot_top) * v / ymax;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{left}" y="20" font-size="14" font-weight="bold">Throughput relative to the Linux bridge (median; bridge = 1.0)</text>"#
    );
    // Legend.
    for (i, (_, _, name, color)) in series.iter().enumerate() {
        let x = left + 190.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="32" width="12" height="12" fill="{color}"/><text x="{:.0}" y="42">{}</text>"#,
            x + 16.0,
            esc(name)
        );
    }
    // Axis and grid.
    let mut t = 0.0;
    while t <= ymax + 1e-9 {
        let yy = y(t);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.0}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.0}" y="{:.1}" text-anchor="end">{t:.1}</text>"##,
            width - right,
            left - 6.0,
            yy + 4.0
        );
        t += 0.5;
    }
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{plot_top}" x2="{left}" y2="{plot_bottom}" stroke="#333"/><line x1="{left}" y1="{plot_bottom}" x2="{:.0}" y2="{plot_bottom}" stroke="#333"/>"##,
        width - right
    );
    for (gi, p) in paths.iter().enumerate() {
        let gx = left + group_w * gi as f64 + (group_w - bar_w * series.len() as f64) / 2.0;
        for (si, (_, _, _, color)) in series.iter().enumerate() {
            let x = gx + bar_w * si as f64;
            match ratios[gi][si] {
                Some(r) => {
                    let _ = writeln!(
                        s,
                        r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}: {r:.2}</title></rect><text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{r:.2}</text>"#,
                        y(r),
                        bar_w - 2.0,
                        plot_bottom - y(r),
                        esc(p.label()),
                        x + (bar_w - 2.0) / 2.0,
                        y(r) - 3.0
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        r##"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle" fill="#999">n/a</text>"##,
                        x + (bar_w - 2.0) / 2.0,
                        plot_bottom - 4.0
                    );
                }
            }
        }
        let cx = left + group_w * gi as f64 + group_w / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{cx:.1}" y="{:.0}" text-anchor="middle">{}. {}</text>"#,
            plot_bottom + 16.0,
            p.letter(),
            esc(p.label())
        );
    }
    let one = y(1.0);
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{one:.1}" x2="{:.0}" y2="{one:.1}" stroke="#c00" stroke-dasharray="6,4"/><text x="{:.0}" y="{:.1}" fill="#c00">bridge = 1.0</text>"##,
        width - right,
        width - right + 6.0,
        one + 4.0
    );
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="{:.0}" fill="#555">Ratios of medians measured in the same interleaved run; n/a = not measured or failed.</text>"##,
        height - 20.0
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn rec(path: &str, figure: &str, key: &str, v: f64, round: u32) -> Rec {
        let mut meas = Meas::default();
        meas.values.insert(key.into(), v);
        meas.cpu_busy = vec![90.0, 50.0];
        Rec {
            kind: "measurement".into(),
            round,
            path: path.into(),
            figure: figure.into(),
            meas,
            error: None,
            time: String::new(),
        }
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn table_has_ratios_and_failures() {
        let mut recs = vec![
            rec("bridge", "fps_1", "fps", 600_000.0, 1),
            rec("bridge", "fps_1", "fps", 700_000.0, 2),
            rec("vswitchd-afxdp", "fps_1", "fps", 650_000.0, 1),
            rec("vswitchd-afxdp", "fps_1", "fps", 650_000.0, 2),
        ];
        recs.push(Rec {
            kind: "failure".into(),
            round: 1,
            path: "ovs-afxdp".into(),
            figure: "setup".into(),
            meas: Meas::default(),
            error: Some("no afxdp".into()),
            time: String::new(),
        });
        let md = markdown(&serde_json::json!({"kind": "machine"}), &recs);
        assert!(
            md.contains("| 64 B frames/s at the sink, 1 flow (M) |"),
            "{md}"
        );
        assert!(md.contains("0.650 (0.650–0.650) ×1.00"), "{md}");
        assert!(md.contains("0.650 (0.600–0.700) |"), "{md}");
        assert!(md.contains("failed †"), "{md}");
        assert!(
            md.contains("ovs-afxdp setup (round 1): failed: no afxdp"),
            "{md}"
        );
        assert!(md.contains("90 / 50"), "{md}");
        // No 10,000-flow figure anywhere: the per-round row only shows the failed path.
        assert!(
            md.contains(
                "| 10,000 flows ÷ 1 flow, frames/s of the same round (×) | — | — | failed † |"
            ),
            "{md}"
        );
    }

    #[test]
    fn the_senders_congestion_control_is_told_when_recorded() {
        let recs = vec![rec("bridge", "tcp_1", "gbps", 15.0, 1)];
        let facts = serde_json::json!({"kind": "machine", "tcp_congestion_control": "cubic"});
        let md = markdown(&facts, &recs);
        assert!(
            md.contains("TCP congestion control (the iperf3 sender's): cubic."),
            "{md}"
        );
        // Raw files from before it was recorded render as before.
        let md = markdown(&serde_json::json!({"kind": "machine"}), &recs);
        assert!(!md.contains("congestion control"), "{md}");
    }

    #[test]
    fn the_halt_poll_window_is_told_when_recorded() {
        let recs = vec![rec("bridge", "rtt", "p99_us", 20.0, 1)];
        let md = markdown(
            &serde_json::json!({"kind": "machine", "cpuidle_driver": "haltpoll",
                "guest_halt_poll_ns": "200000"}),
            &recs,
        );
        assert!(
            md.contains("Idle vCPUs: cpuidle driver haltpoll, guest halt polling 200000 ns (an idle vCPU polls that long before it halts)."),
            "{md}"
        );
        let md = markdown(
            &serde_json::json!({"kind": "machine", "cpuidle_driver": "haltpoll",
                "guest_halt_poll_ns": "0"}),
            &recs,
        );
        assert!(md.contains("guest halt polling 0 ns (none: "), "{md}");
        // Machines without the driver, and raw files from before it was recorded: no line.
        let md = markdown(&serde_json::json!({"kind": "machine"}), &recs);
        assert!(!md.contains("Idle vCPUs"), "{md}");
    }

    #[test]
    fn cpu_rows_show_the_generators_and_the_switchs_cpus() {
        let mut r = rec("bridge", "fps_1", "fps", 600_000.0, 1);
        r.meas.cpu_busy = vec![1.0, 2.0, 93.0, 4.0, 71.0];
        let recs = vec![r];
        // Default placement (and raw files from before it was recorded): CPUs 0 and 1.
        let md = markdown(&serde_json::json!({"kind": "machine"}), &recs);
        assert!(
            md.contains("| CPU0 (generator) / CPU1 (switch) busy, 64 B 1 flow (%) | 1.0 / 2.0 |"),
            "{md}"
        );
        let facts = serde_json::json!({"kind": "machine", "gen_cpu": 2, "switch_cpu": 4});
        let md = markdown(&facts, &recs);
        assert!(
            md.contains("| CPU2 (generator) / CPU4 (switch) busy, 64 B 1 flow (%) | 93 / 71 |"),
            "{md}"
        );
    }

    #[test]
    fn switch_core_rows_show_the_switches_own_account() {
        let recs = vec![
            rec("bridge", "fps_1", "fps", 500_000.0, 1),
            rec("vswitchd-afxdp", "fps_1", "switch_busy_pct", 97.4, 1),
            rec("vswitchd-afxdp", "fps_1", "switch_ns_per_frame", 812.6, 1),
            rec(
                "vswitchd-afxdp",
                "fps_1",
                "switch_own_ns_per_frame",
                231.2,
                1,
            ),
            rec(
                "vswitchd-afxdp",
                "fps_1",
                "switch_frames_per_batch",
                4.63,
                1,
            ),
            rec("vswitchd-afxdp", "fps_1", "switch_full_batch_pct", 31.0, 1),
            rec("ovs-afxdp", "fps_1", "switch_ns_per_frame", 1000.0, 1),
            rec("ovs-afxdp", "fps_1", "switch_ns_per_frame", 1200.0, 2),
        ];
        let md = markdown(&serde_json::json!({"kind": "machine"}), &recs);
        assert!(
            md.contains("| switch core working, 1 flow (% of the time) | 97 | — | — |"),
            "{md}"
        );
        assert!(
            md.contains("| switch core work per frame, 1 flow (ns) | 813 | — | 1100 (1000–1200) |"),
            "{md}"
        );
        // Only vswitchd times its kicks.
        assert!(
            md.contains(
                "| of which the switch's own (not in transmit kicks), 1 flow (ns) | 231 | — | — |"
            ),
            "{md}"
        );
        // Open vSwitch counts no receive batches.
        assert!(
            md.contains("| switch frames per receive batch, 1 flow | 4.6 | — | — |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| switch frames taken in full batches (behind), 1 flow (%) | 31 | — | — |"
            ),
            "{md}"
        );
        assert!(!md.contains("10,000 flows (ns)"), "{md}");
        assert!(md.contains("Switch core rows:"), "{md}");
    }

    #[test]
    fn median_interval_by_order_statistics() {
        // Five values: min–max covers the median with 1 - 2/32 = 93.75 % only.
        assert_eq!(median_interval(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95), None);
        assert_eq!(
            median_interval(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.9),
            Some((1.0, 5.0, 0.9375))
        );
        // GOAL_ROUNDS values are the fewest with a 95 % interval: min–max, 1 - 2/64.
        let six = [6.0, 1.0, 5.0, 2.0, 4.0, 3.0];
        assert_eq!(six.len(), GOAL_ROUNDS as usize);
        assert_eq!(median_interval(&six, GOAL_LEVEL), Some((1.0, 6.0, 0.96875)));
        assert_eq!(median_interval(&six[..5], GOAL_LEVEL), None);
        // Nine values: the 2nd smallest and the 2nd largest, 1 - 2·10/512.
        let nine: Vec<f64> = (1..=9).map(f64::from).collect();
        let (lo, hi, c) = median_interval(&nine, 0.95).unwrap();
        assert_eq!((lo, hi), (2.0, 8.0));
        assert!((c - (1.0 - 20.0 / 512.0)).abs() < 1e-12, "{c}");
        // Many values: no underflow, and the interval closes in on the median (the 95 %
        // interval of n = 10,000 is about ±98 ranks around it).
        let many: Vec<f64> = (0..10_000).map(f64::from).collect();
        let (lo, hi, c) = median_interval(&many, 0.95).unwrap();
        assert!((4_890.0..4_910.0).contains(&lo), "{lo}");
        assert!((5_090.0..5_110.0).contains(&hi), "{hi}");
        assert!((0.95..0.96).contains(&c), "{c}");
        assert_eq!(median_interval(&[], 0.95), None);
    }

    /// A run of A, D and E with `rounds` rounds: D 0.5 M/s, E 0.8 M/s and A `a(round)`, 1 flow;
    /// RTT p99 20 µs at the bridge, `rtt(round)` at A.
    fn goal_run(rounds: u32, a: impl Fn(u32) -> f64, rtt: impl Fn(u32) -> f64) -> Vec<Rec> {
        let mut recs = Vec::new();
        for n in 1..=rounds {
            recs.push(rec("vswitchd-afxdp", "fps_1", "fps", a(n), n));
            recs.push(rec("bridge", "fps_1", "fps", 500_000.0, n));
            recs.push(rec("ovs-afxdp", "fps_1", "fps", 800_000.0, n));
            recs.push(rec("vswitchd-afxdp", "rtt", "p99_us", rtt(n), n));
            recs.push(rec("bridge", "rtt", "p99_us", 20.0, n));
        }
        recs
    }

    fn goal_row<'a>(md: &'a str, label: &str) -> &'a str {
        md.lines()
            .find(|l| l.starts_with(&format!("| {label} |")))
            .unwrap_or_else(|| panic!("no row `{label}` in\n{md}"))
    }

    #[test]
    fn goals_are_met_not_met_or_not_settled_by_the_interval() {
        let facts = serde_json::json!({"kind": "machine"});
        // A at 0.90–0.95 M/s: ×1.80–1.90 the bridge (met), ×1.125–1.19 OVS (met); RTT ×1.6–2.1
        // the bridge (not met: over 1.5 in every round).
        let recs = goal_run(
            6,
            |n| 900_000.0 + 10_000.0 * f64::from(n - 1),
            |n| 30.0 + 2.0 * f64::from(n),
        );
        let md = markdown(&facts, &recs);
        assert_eq!(
            goal_row(&md, "64 B frames/s, 1 flow, ≥ 1.3× the Linux bridge"),
            "| 64 B frames/s, 1 flow, ≥ 1.3× the Linux bridge | A. vswitchd AF_XDP | 6 | \
             1.85 (1.80–1.90) | 1.80–1.90 (96.9 %) | **met** |"
        );
        assert!(
            goal_row(&md, "64 B frames/s, 1 flow, ≥ 1.1× OVS afxdp").ends_with("| **met** |"),
            "{md}"
        );
        assert!(
            goal_row(&md, "UDP RTT p99 ≤ 1.5× the Linux bridge, busy poll")
                .ends_with("| 1.85 (1.60–2.10) | 1.60–2.10 (96.9 %) | **not met** |"),
            "{md}"
        );
        // Goals of figures the run did not measure are left out.
        assert!(!md.contains("10,000 flows, ≥ 1.3×"), "{md}");
        assert!(!md.contains("TCP 1 stream ≥"), "{md}");
        // One round below the bar of 1.1× OVS (0.84 / 0.8 = 1.05), the others above it:
        // not settled. The RTT interval ends at 1.5: still met.
        let recs = goal_run(
            6,
            |n| if n == 3 { 840_000.0 } else { 950_000.0 },
            |n| if n == 1 { 30.0 } else { 20.0 },
        );
        let md = markdown(&facts, &recs);
        assert!(
            goal_row(&md, "64 B frames/s, 1 flow, ≥ 1.1× OVS afxdp")
                .ends_with("| 1.05–1.19 (96.9 %) | not settled |"),
            "{md}"
        );
        assert!(
            goal_row(&md, "UDP RTT p99 ≤ 1.5× the Linux bridge, busy poll")
                .ends_with("| **met** |"),
            "{md}"
        );
        // Five rounds: no verdict, whatever the rounds say.
        let recs = goal_run(5, |_| 950_000.0, |_| 20.0);
        let md = markdown(&facts, &recs);
        assert!(
            goal_row(&md, "64 B frames/s, 1 flow, ≥ 1.3× the Linux bridge").ends_with(
                "| 1.90 (1.90–1.90) | — (min–max: 93.8 %) | too few rounds (5) for a 95 % interval |"
            ),
            "{md}"
        );
        // A round missing one side of a ratio is not a round of that goal.
        let mut recs = goal_run(6, |_| 950_000.0, |_| 20.0);
        recs.retain(|r| !(r.path == "ovs-afxdp" && r.round == 2));
        let md = markdown(&facts, &recs);
        assert!(
            goal_row(&md, "64 B frames/s, 1 flow, ≥ 1.1× OVS afxdp").contains(" | 5 | "),
            "{md}"
        );
        // Absolute goals compare the figure itself: the idle core at 1.9 % is met, at 2.0 %
        // (the bar is strict) not.
        let idle = |pct: f64| -> Vec<Rec> {
            (1..=6)
                .map(|n| rec("vswitchd-tap", "idle_adaptive", "core_pct", pct, n))
                .collect()
        };
        let md = markdown(&facts, &idle(1.9));
        assert!(
            goal_row(&md, "adaptive poll, idle: < 2 % of a core").ends_with("| **met** |"),
            "{md}"
        );
        let md = markdown(&facts, &idle(2.0));
        assert!(
            goal_row(&md, "adaptive poll, idle: < 2 % of a core").ends_with("| **not met** |"),
            "{md}"
        );
    }

    #[test]
    fn ten_thousand_flows_over_one_is_a_ratio_per_round() {
        // Per round the ratios are 0.9 and 1.0 (median 0.95). A round with one figure only has
        // no ratio, whichever figure is missing (rounds 3 and 4).
        let recs = vec![
            rec("vswitchd-afxdp", "fps_1", "fps", 800_000.0, 1),
            rec("vswitchd-afxdp", "fps_10k", "fps", 720_000.0, 1),
            rec("vswitchd-afxdp", "fps_1", "fps", 600_000.0, 2),
            rec("vswitchd-afxdp", "fps_10k", "fps", 600_000.0, 2),
            rec("vswitchd-afxdp", "fps_1", "fps", 100_000.0, 3),
            rec("vswitchd-afxdp", "fps_10k", "fps", 100_000.0, 4),
            rec("bridge", "fps_1", "fps", 500_000.0, 1),
        ];
        let md = markdown(&serde_json::json!({"kind": "machine"}), &recs);
        let row = md
            .lines()
            .find(|l| l.starts_with("| 10,000 flows ÷ 1 flow"))
            .unwrap_or_else(|| panic!("{md}"));
        assert_eq!(
            row,
            "| 10,000 flows ÷ 1 flow, frames/s of the same round (×) | 0.95 (0.90–1.00) | — |"
        );
        let svg = svg(&recs);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("bridge = 1.0"));
    }

    #[test]
    fn rounds_are_told_apart_by_where_the_host_put_the_vcpus() {
        // TCP over tap, 6 rounds: rounds 2 and 5 ran with the vCPUs apart for part of the
        // measurement (one probe at 300 ns) at ×0.8 the bridge, the others together (probes
        // at 40–120 ns) at ×1.05. The bridge's own probe (apart in round 3) does not count:
        // it runs on one core. Round 6 of tap was not probed (a raw file from before the
        // probe, say).
        let mut recs = Vec::new();
        for n in 1..=6u32 {
            let apart = n == 2 || n == 5;
            let mut tap = rec(
                "vswitchd-tap",
                "tcp_1",
                "gbps",
                if apart { 8.0 } else { 10.5 },
                n,
            );
            if n < 6 {
                tap.meas.handoff_ns = vec![40.0, if apart { 300.0 } else { 120.0 }, 40.0];
            }
            recs.push(tap);
            let mut bridge = rec("bridge", "tcp_1", "gbps", 10.0, n);
            bridge.meas.handoff_ns = vec![40.0, if n == 3 { 300.0 } else { 40.0 }];
            recs.push(bridge);
        }
        let md = markdown(&serde_json::json!({"kind": "machine"}), &recs);
        assert!(
            md.contains("| verdict | rounds with the vCPUs apart |"),
            "{md}"
        );
        let row = goal_row(&md, "TCP 1 stream ≥ 1.0× the Linux bridge (tap ports)");
        assert!(
            row.ends_with("| not settled | 2 of 5 (together 1.05; apart 0.80); 1 not probed |"),
            "{row}"
        );
        // The table counts each path's measurements with the vCPUs apart.
        let probes = md
            .lines()
            .find(|l| l.starts_with("| vCPUs apart, TCP 1 stream (measurements) |"))
            .unwrap_or_else(|| panic!("{md}"));
        assert_eq!(
            probes,
            "| vCPUs apart, TCP 1 stream (measurements) | 2 of 5 | 1 of 6 |"
        );
        // The first such row's label names the bar: it must be APART_NS.
        assert!(
            ROWS.iter().any(|r| r.label.starts_with(&format!(
                "vCPUs apart (a hand-off probe above {APART_NS:.0} ns)"
            ))),
            "a row label names a bar other than APART_NS"
        );
        // A run without probes keeps the goals table as it was.
        for r in &mut recs {
            r.meas.handoff_ns.clear();
        }
        let md = markdown(&serde_json::json!({"kind": "machine"}), &recs);
        assert!(!md.contains("vCPUs apart"), "{md}");
    }
    #[test]
    fn each_placement_group_gets_its_interval_when_it_has_rounds_enough() {
        // AF_PACKET over 14 rounds: 7 together at ×1.02–1.14, 7 apart at ×0.86–0.98.
        let mut recs = Vec::new();
        for n in 1..=14u32 {
            let apart = n % 2 == 0;
            // The k-th round of its group: ×(1.02 + 0.02 k) together, ×(0.86 + 0.02 k) apart.
            let k = f64::from((n - 1) / 2);
            let gbps = 10.0
                * if apart {
                    0.86 + 0.02 * k
                } else {
                    1.02 + 0.02 * k
                };
            let mut a = rec("vswitchd-afpacket", "tcp_1", "gbps", gbps, n);
            a.meas.handoff_ns = vec![40.0, if apart { 300.0 } else { 40.0 }];
            recs.push(a);
            recs.push(rec("bridge", "tcp_1", "gbps", 10.0, n));
        }
        let md = markdown(&serde_json::json!({"kind": "machine"}), &recs);
        let row = goal_row(
            &md,
            "TCP 1 stream ≥ 1.0× the Linux bridge (veth ports, `auto`)",
        );
        // 7 rounds give min–max at 98.4 %.
        assert!(
            row.ends_with("| 7 of 14 (together 1.08, 1.02–1.14; apart 0.92, 0.86–0.98) |"),
            "{row}"
        );
        assert!(
            md.contains("and its 95 % interval when the group has rounds enough"),
            "{md}"
        );
    }

    /// Writes a raw file of `rounds` rounds of AF_PACKET and bridge TCP at `ratio` with the
    /// machine facts `facts`, in a fresh temporary file.
    fn raw_file(facts: &serde_json::Value, rounds: u32, ratio: f64) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("results-{}.jsonl", testbed::unique("e2epool")));
        let mut text = format!("{facts}\n");
        for n in 1..=rounds {
            for r in [
                rec("vswitchd-afpacket", "tcp_1", "gbps", 10.0 * ratio, n),
                rec("bridge", "tcp_1", "gbps", 10.0, n),
            ] {
                text.push_str(&serde_json::to_string(&r).expect("serializes"));
                text.push('\n');
            }
        }
        std::fs::write(&path, text).expect("temporary file");
        path
    }

    #[test]
    fn pooled_runs_follow_each_other_and_must_agree_on_the_setup() {
        let facts = serde_json::json!({"kind": "machine", "cpu_model": "AMD EPYC", "secs": 5,
            "tcp_congestion_control": "bbr", "git": "aaaaaaa", "time": "T1"});
        let later = serde_json::json!({"kind": "machine", "cpu_model": "AMD EPYC", "secs": 5,
            "tcp_congestion_control": "bbr", "git": "bbbbbbb", "time": "T2"});
        let a = raw_file(&facts, 4, 1.1);
        let b = raw_file(&later, 3, 0.9);
        let (pooled, recs) = pool(&[a.clone(), b.clone()]).expect("pools");
        let twice = pool(&[a.clone(), b.clone(), a.clone()]).expect_err("the same file twice");
        assert!(twice.to_string().contains("is given twice"), "{twice}");
        let mut rounds: Vec<(u32, f64)> = recs
            .iter()
            .filter(|r| r.path == "vswitchd-afpacket")
            .map(|r| (r.round, r.meas.values["gbps"]))
            .collect();
        rounds.sort_by_key(|&(n, _)| n);
        let numbers: Vec<u32> = rounds.iter().map(|&(n, _)| n).collect();
        assert_eq!(numbers, [1, 2, 3, 4, 5, 6, 7]);
        // The second file's rounds come after the first's.
        assert!(rounds[..4].iter().all(|&(_, v)| (v - 11.0).abs() < 1e-9));
        assert!(rounds[4..].iter().all(|&(_, v)| (v - 9.0).abs() < 1e-9));
        assert_eq!(pooled["rounds"], 7);
        assert_eq!(pooled["git"], "aaaaaaa");
        let md = markdown(&pooled, &recs);
        let name = |p: &PathBuf| p.file_name().expect("name").to_string_lossy().into_owned();
        assert!(
            md.contains(&format!(
                "Pooled from 2 raw files (`e2e --report A --report B …`), their rounds renumbered \
                 in this order: {} (rounds 1–4, binaries at aaaaaaa, started T1); {} (rounds 5–7, \
                 binaries at bbbbbbb, started T2).",
                name(&a),
                name(&b)
            )),
            "{md}"
        );
        // Seven rounds: the goals section has an interval over both files.
        let row = goal_row(
            &md,
            "TCP 1 stream ≥ 1.0× the Linux bridge (veth ports, `auto`)",
        );
        assert!(row.contains("| 7 | 1.10 (0.90–1.10) |"), "{row}");
        // A single run says nothing of pooling.
        let (single, recs1) = read_raw(&a).expect("reads");
        assert!(!markdown(&single, &recs1).contains("Pooled"));
        // Another congestion control, or another length of measurement: refused.
        for (other, key) in [
            (
                serde_json::json!({"kind": "machine", "cpu_model": "AMD EPYC", "secs": 5,
                    "tcp_congestion_control": "cubic"}),
                "tcp_congestion_control",
            ),
            (
                serde_json::json!({"kind": "machine", "cpu_model": "AMD EPYC", "secs": 10,
                    "tcp_congestion_control": "bbr"}),
                "secs",
            ),
        ] {
            let c = raw_file(&other, 2, 1.0);
            let err = pool(&[a.clone(), c.clone()]).expect_err("refused");
            assert!(err.to_string().contains(key), "{err}");
            let _ = std::fs::remove_file(c);
        }
        // Rounds with idle vCPUs polling before they halt are not draws of rounds without.
        let halt = |ns: &str| {
            raw_file(
                &serde_json::json!({"kind": "machine", "cpu_model": "AMD EPYC", "secs": 5,
                    "tcp_congestion_control": "bbr", "guest_halt_poll_ns": ns}),
                2,
                1.0,
            )
        };
        let (h0, h200) = (halt("0"), halt("200000"));
        let err = pool(&[h0.clone(), h200.clone()]).expect_err("refused");
        assert!(err.to_string().contains("guest_halt_poll_ns"), "{err}");
        let _ = std::fs::remove_file(h0);
        let _ = std::fs::remove_file(h200);
        // A file from before the congestion control was recorded: pooled, and the report
        // says that it could not be checked.
        let old = raw_file(
            &serde_json::json!({"kind": "machine", "cpu_model": "AMD EPYC", "secs": 5}),
            2,
            1.0,
        );
        let (pooled, recs) = pool(&[a.clone(), old.clone()]).expect("pools");
        assert!(
            markdown(&pooled, &recs).contains(&format!(
                "{} (rounds 5–6, binaries at ?, started ?; not recorded in it or in the first \
                 file, so not checked: tcp_congestion_control)",
                name(&old)
            )),
            "{}",
            markdown(&pooled, &recs)
        );
        // … but a later file must agree with the first that records it.
        let cubic = raw_file(
            &serde_json::json!({"kind": "machine", "cpu_model": "AMD EPYC", "secs": 5,
                "tcp_congestion_control": "cubic"}),
            2,
            1.0,
        );
        let err = pool(&[old.clone(), a.clone(), cubic.clone()]).expect_err("refused");
        assert!(err.to_string().contains("tcp_congestion_control"), "{err}");
        let _ = std::fs::remove_file(cubic);
        let _ = std::fs::remove_file(old);
        let _ = std::fs::remove_file(a);
        let _ = std::fs::remove_file(b);
    }
}

#[cfg(test)]
mod pooling_and_cells {
    use super::*;

    use super::tests::rec;

    fn failure(path: &str, figure: &str, round: u32) -> Rec {
        Rec {
            kind: "failure".into(),
            round,
            path: path.into(),
            figure: figure.into(),
            meas: Meas::default(),
            error: Some("vswitchd did not start".into()),
            time: String::new(),
        }
    }

    fn row<'a>(md: &'a str, label: &str) -> Option<&'a str> {
        md.lines().find(|l| l.starts_with(&format!("| {label} |")))
    }

    // ---- Evidence (passes): the interval is the exact binomial one. ----

    /// C(n, i) exactly, n ≤ 120.
    fn choose(n: u128, i: u128) -> u128 {
        let mut c: u128 = 1;
        for j in 0..i {
            c = c * (n - j) / (j + 1);
        }
        c
    }

    #[test]
    fn median_interval_matches_the_exact_binomial_for_n_1_to_120() {
        for n in 1..=120usize {
            let v: Vec<f64> = (1..=n).map(|i| i as f64).collect();
            // Exact: the largest k with 1 - 2 P(X <= k-1) >= 0.95, X ~ binomial(n, 1/2),
            // i.e. 40 * sum_{i<k} C(n,i) <= 2^n.
            let total: u128 = 1u128 << n;
            let mut below: u128 = 0;
            let mut k_exact = None;
            for k in 1..=n.div_ceil(2) {
                below += choose(n as u128, (k - 1) as u128);
                if 40 * below <= total {
                    k_exact = Some(k);
                } else {
                    break;
                }
            }
            let got = median_interval(&v, 0.95);
            match k_exact {
                None => assert_eq!(got, None, "n = {n}"),
                Some(k) => {
                    let (lo, hi, c) = got.unwrap_or_else(|| panic!("n = {n}: None"));
                    assert_eq!((lo, hi), (k as f64, (n - k + 1) as f64), "n = {n}");
                    let mut b = 0u128;
                    for i in 0..k {
                        b += choose(n as u128, i as u128);
                    }
                    let exact = 1.0 - 2.0 * (b as f64 / total as f64);
                    assert!((c - exact).abs() < 1e-9, "n = {n}: {c} vs {exact}");
                }
            }
        }
    }

    // ---- Finding: a failed adaptive topology is not shown as failed. ----

    #[test]
    fn a_failed_adaptive_setup_is_shown_as_failed() {
        // Round 1: the busy topology of A and B measured, the adaptive one of A failed to
        // build (`setup_adaptive`), B's adaptive measured.
        let recs = vec![
            rec("bridge", "rtt", "p50_us", 20.0, 1),
            rec("vswitchd-afxdp", "rtt", "p50_us", 40.0, 1),
            rec("vswitchd-tap", "rtt", "p50_us", 40.0, 1),
            rec("vswitchd-tap", "rtt_adaptive", "p50_us", 60.0, 1),
            failure("vswitchd-afxdp", "setup_adaptive", 1),
        ];
        let md = markdown(&serde_json::json!({"kind": "machine"}), &recs);
        let r = row(&md, "UDP RTT p50, adaptive poll (µs)").unwrap_or_else(|| panic!("{md}"));
        // Columns: A, B, D.
        assert!(
            r.starts_with("| UDP RTT p50, adaptive poll (µs) | failed † |"),
            "A's adaptive RTT failed (setup_adaptive), but its cell says otherwise: {r}"
        );
    }

    #[test]
    fn adaptive_rows_stay_when_every_adaptive_setup_failed() {
        let recs = vec![
            rec("bridge", "rtt", "p50_us", 20.0, 1),
            rec("vswitchd-afxdp", "rtt", "p50_us", 40.0, 1),
            failure("vswitchd-afxdp", "setup_adaptive", 1),
        ];
        let md = markdown(&serde_json::json!({"kind": "machine"}), &recs);
        assert!(
            row(&md, "UDP RTT p50, adaptive poll (µs)").is_some(),
            "the adaptive RTT rows vanish from the table although they were attempted and failed:\n{md}"
        );
    }

    // ---- Finding: pooling accepts runs made with different settings. ----

    fn raw_file(facts: &serde_json::Value, rounds: u32) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("results-{}.jsonl", testbed::unique("e2eaudit")));
        let mut text = format!("{facts}\n");
        for n in 1..=rounds {
            for r in [
                rec("vswitchd-tap", "idle_adaptive", "core_pct", 0.4, n),
                rec("vswitchd-tap", "rtt", "p99_us", 40.0, n),
                rec("bridge", "rtt", "p99_us", 20.0, n),
            ] {
                text.push_str(&serde_json::to_string(&r).expect("serializes"));
                text.push('\n');
            }
        }
        std::fs::write(&path, text).expect("temporary file");
        path
    }

    fn facts_with(extra: serde_json::Value) -> serde_json::Value {
        let mut f = serde_json::json!({"kind": "machine", "cpu_model": "AMD EPYC", "cpus": 2,
            "kernel": "6.18", "gen_cpu": 0, "switch_cpu": 1, "sink_cpu": 0, "rtt_sink_cpu": 0,
            "tcp_congestion_control": "bbr", "secs": 5, "idle_secs": 5, "mps": 5000,
            "placement_probe": "during", "args": ["--goals"],
            "generator": "pktgen /work/main/target/release/pktgen --mode afxdp"});
        for (k, v) in extra.as_object().expect("object") {
            f[k] = v.clone();
        }
        f
    }

    fn pools(extra: serde_json::Value) -> bool {
        let a = raw_file(&facts_with(serde_json::json!({})), 3);
        let b = raw_file(&facts_with(extra), 3);
        let ok = pool(&[a.clone(), b.clone()]).is_ok();
        let _ = std::fs::remove_file(a);
        let _ = std::fs::remove_file(b);
        ok
    }

    #[test]
    fn pooling_refuses_another_idle_measurement_length() {
        // docs/e2e.md: files that record different values of ... the measurement length are
        // refused. `idle_secs` is the idle figure's measurement length.
        assert!(
            !pools(serde_json::json!({"idle_secs": 2})),
            "pooled a 5 s idle measurement with a 2 s one"
        );
    }

    #[test]
    fn pooling_refuses_another_round_trip_rate() {
        // sockperf --mps sets the load of the RTT figure (its percentiles and the goal).
        assert!(
            !pools(serde_json::json!({"mps": 100000})),
            "pooled RTT at 5,000 and at 100,000 messages/s"
        );
    }

    #[test]
    fn pooling_refuses_another_switch_configuration() {
        // --rule-per-flow (a megaflow per flow), --xdp-mode, --ovs-xdp-mode change what the
        // switches do; they are recorded only in `args` (and as notes, merged into one set).
        for args in [
            serde_json::json!({"args": ["--goals", "--rule-per-flow"]}),
            serde_json::json!({"args": ["--goals", "--xdp-mode", "native"]}),
            serde_json::json!({"args": ["--goals", "--ovs-xdp-mode", "generic"]}),
        ] {
            assert!(!pools(args.clone()), "pooled runs differing in {args}");
        }
    }

    #[test]
    fn pooling_accepts_the_same_generator_from_another_directory() {
        // The generator fact holds the binary's path: the same pktgen built in another
        // checkout (or --bin-dir) is refused as "another generator".
        assert!(
            pools(
                serde_json::json!({"generator": "pktgen /tmp/wt/target/release/pktgen --mode afxdp"})
            ),
            "refused the same generator mode because its binary lives elsewhere"
        );
    }

    // ---- Finding: the displayed interval contradicts the verdict. ----

    /// The goal row's interval cell `lo–hi (c %)` as numbers, and its verdict cell.
    fn interval_and_verdict(r: &str) -> (f64, f64, String) {
        let cells: Vec<&str> = r.split(" | ").collect();
        let iv = cells[4];
        let (lo, rest) = iv.split_once('–').expect("lo–hi");
        let hi = rest.split_whitespace().next().expect("hi");
        (
            lo.trim().parse().expect("lo"),
            hi.parse().expect("hi"),
            cells[5].trim_end_matches(" |").to_string(),
        )
    }

    #[test]
    fn idle_interval_as_shown_agrees_with_met() {
        // Every round 1.96 % of a core: below the bar of 2 %, met; shown as 2.0–2.0.
        let recs: Vec<Rec> = (1..=6)
            .map(|n| rec("vswitchd-tap", "idle_adaptive", "core_pct", 1.96, n))
            .collect();
        let md = markdown(&serde_json::json!({"kind": "machine"}), &recs);
        let r = row(&md, "adaptive poll, idle: < 2 % of a core").expect("row");
        let (lo, hi, verdict) = interval_and_verdict(r);
        assert!(
            !(verdict.contains("**met**") && !(lo < 2.0 && hi < 2.0)),
            "the row says met for < 2 % with an interval shown as {lo}–{hi}: {r}"
        );
    }

    #[test]
    fn ratio_interval_as_shown_agrees_with_not_met() {
        // Every round ×1.296 the bridge: below the bar of 1.3, not met; shown as 1.30–1.30.
        let mut recs = Vec::new();
        for n in 1..=6 {
            recs.push(rec("vswitchd-afxdp", "fps_1", "fps", 648_000.0, n));
            recs.push(rec("bridge", "fps_1", "fps", 500_000.0, n));
        }
        let md = markdown(&serde_json::json!({"kind": "machine"}), &recs);
        let r = row(&md, "64 B frames/s, 1 flow, ≥ 1.3× the Linux bridge").expect("row");
        let (lo, hi, verdict) = interval_and_verdict(r);
        assert!(
            !(verdict.contains("**not met**") && lo >= 1.3 && hi >= 1.3),
            "the row says not met for ≥ 1.3 with an interval shown as {lo}–{hi}: {r}"
        );
    }

    #[test]
    fn a_fact_checked_against_a_later_file_is_not_called_unchecked() {
        // The first file predates the congestion control; the second and third record bbr.
        // The third was checked against the second (a cubic third would be refused), yet the
        // report says it was not checked.
        let old = raw_file(&serde_json::json!({"kind": "machine", "secs": 5}), 2);
        let b = raw_file(
            &serde_json::json!({"kind": "machine", "secs": 5,
            "tcp_congestion_control": "bbr"}),
            2,
        );
        let c = raw_file(
            &serde_json::json!({"kind": "machine", "secs": 5,
            "tcp_congestion_control": "bbr"}),
            2,
        );
        let (facts, _) = pool(&[old.clone(), b.clone(), c.clone()]).expect("pools");
        let from = facts["pooled_from"].as_array().expect("array").clone();
        for f in [old, b, c] {
            let _ = std::fs::remove_file(f);
        }
        assert_eq!(
            from[2]["unchecked"],
            serde_json::json!([]),
            "the third file is reported unchecked: {}",
            from[2]
        );
    }
}
