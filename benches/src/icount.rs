//! Instructions per frame, counted by callgrind (this machine has no hardware counters).
//!
//! The `icount` binary runs each scenario of [`crate::scenarios`] in a child process of its
//! own under `valgrind --tool=callgrind`, collecting only inside [`icount_measured`] (the toggle
//! function: the warm-up and the setup are not counted), and divides the instructions by the
//! frames handled. Everything the measured runs do is on one thread (inline switch), with the
//! switch clock fixed, so the count is the same from run to run (see `docs/performance.md` for
//! what can still move it).
//!
//! Parent and child are the same binary: [`child_args`] / [`parse_child`] carry the scenario,
//! warm-up and iteration counts to the child.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::scenarios::{self, Scenario};

/// The name pattern callgrind toggles collection on ([`icount_measured`]'s symbol).
pub const TOGGLE: &str = "*icount_measured*";

/// Runs `s` `iters` times: the only code callgrind counts. Returns the units handled as
/// expected.
#[inline(never)]
pub fn icount_measured(s: &mut Scenario, iters: u64) -> u64 {
    let mut ok = 0;
    for _ in 0..iters {
        ok += s.run();
    }
    black_box(ok)
}

/// How many runs a scenario gets: `warmup` uncounted, then `iters` counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Runs before counting (caches warm, buffers circulating, tables full).
    pub warmup: u64,
    /// Counted runs.
    pub iters: u64,
}

/// The runs of scenario `name`; `quick` divides the counted runs by 4 (CI).
pub fn plan(name: &str, quick: bool) -> Plan {
    let (warmup, iters) = match name {
        "wire_parse" | "flow_extract" | "emc_hit" | "megaflow_hit" => (100, 2_000),
        "cache_miss_install" => (2_000, 8_000),
        // One full cycle of the 10,000 flows (625 batches) warm, then one counted.
        "pipeline_normal_10k" | "pipeline_rules_10k" => (625, 625),
        // The megaflow cache full (65,536 entries; 2,200 batches of 32 new flows), then 1,024
        // batches of new flows, each evicting an entry.
        "pipeline_setup" => (2_200, 1_024),
        _ => (200, 1_000),
    };
    let iters = if quick && iters % 4 == 0 && iters >= 1_000 {
        iters / 4
    } else {
        iters
    };
    Plan { warmup, iters }
}

/// Child side: builds `name`, warms it up and runs the counted part. Returns the units
/// handled in the counted part.
///
/// # Errors
/// Unknown scenario, or a unit not handled as expected (a frame lost, a lookup missed).
pub fn run_child(name: &str, p: Plan) -> Result<u64, String> {
    // The same hash collisions (EMC slots, probe lengths) in every run.
    datapath::hash::use_fixed_seeds();
    let mut s = scenarios::scenario(name).ok_or_else(|| format!("no scenario {name}"))?;
    for _ in 0..p.warmup {
        s.run();
    }
    let ok = icount_measured(&mut s, p.iters);
    let want = p.iters * s.units;
    if ok == want {
        Ok(ok)
    } else {
        Err(format!("{name}: {ok} of {want} units handled as expected"))
    }
}

/// The arguments that make the binary a child running `name` with plan `p`.
pub fn child_args(name: &str, p: Plan) -> Vec<String> {
    vec![
        "--child".into(),
        name.into(),
        p.warmup.to_string(),
        p.iters.to_string(),
    ]
}

/// Parses [`child_args`] (after `--child`).
pub fn parse_child(args: &[String]) -> Option<(String, Plan)> {
    let [name, warmup, iters] = args else {
        return None;
    };
    Some((
        name.clone(),
        Plan {
            warmup: warmup.parse().ok()?,
            iters: iters.parse().ok()?,
        },
    ))
}

/// The count of one scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Count {
    /// Scenario name.
    pub name: String,
    /// Instructions collected (inside [`icount_measured`]).
    pub instructions: u64,
    /// Units (frames, lookups) handled in that code.
    pub units: u64,
    /// The callgrind output file.
    pub out: PathBuf,
}

impl Count {
    /// Instructions per unit.
    pub fn per_unit(&self) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
        let r = self.instructions as f64 / self.units.max(1) as f64;
        r
    }
}

/// Extra valgrind arguments from `ICOUNT_VALGRIND_ARGS` (split at white space), e.g. the
/// cache simulation (`--cache-sim=yes --D1=32768,8,64 --LL=1048576,8,64`), whose miss counts
/// per function `callgrind_annotate --show=Ir,D1mr,DLmr` then shows in the `--keep` outputs.
fn extra_valgrind_args() -> Vec<String> {
    std::env::var("ICOUNT_VALGRIND_ARGS")
        .map(|v| v.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// Runs `exe` as a child for scenario `name` under callgrind, writing its output in `dir`.
///
/// # Errors
/// valgrind missing or failing, the child failing, no total in the output.
pub fn count(exe: &Path, name: &str, p: Plan, dir: &Path) -> Result<Count, String> {
    let out = dir.join(format!("{name}.callgrind"));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--quiet")
        .arg(format!("--toggle-collect={TOGGLE}"))
        .arg("--collect-atstart=no")
        .args(extra_valgrind_args())
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(child_args(name, p))
        .status()
        .map_err(|e| format!("running valgrind (is it installed?): {e}"))?;
    if !status.success() {
        return Err(format!(
            "{name}: the child under callgrind failed ({status})"
        ));
    }
    let text =
        std::fs::read_to_string(&out).map_err(|e| format!("reading {}: {e}", out.display()))?;
    let instructions = totals(&text).ok_or_else(|| format!("no totals in {}", out.display()))?;
    let units =
        p.iters * scenarios::scenario_units(name).ok_or_else(|| format!("no scenario {name}"))?;
    Ok(Count {
        name: name.to_owned(),
        instructions,
        units,
        out,
    })
}

/// The `totals:` (or `summary:`) line of a callgrind output file: instructions collected.
pub fn totals(callgrind_out: &str) -> Option<u64> {
    callgrind_out
        .lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// One function's line of `callgrind_annotate` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FnCost {
    /// Instructions (inclusive or exclusive, as asked).
    pub instructions: u64,
    /// `file:function` as callgrind_annotate prints it.
    pub name: String,
}

/// Runs `callgrind_annotate` on `out` and returns its function lines, most expensive first.
///
/// # Errors
/// callgrind_annotate missing or failing.
pub fn annotate(out: &Path, inclusive: bool) -> Result<Vec<FnCost>, String> {
    let o = Command::new("callgrind_annotate")
        .arg(format!(
            "--inclusive={}",
            if inclusive { "yes" } else { "no" }
        ))
        .arg("--threshold=100")
        .arg("--auto=no")
        // Instructions only, whatever else ICOUNT_VALGRIND_ARGS had callgrind collect.
        .arg("--show=Ir")
        .arg(out)
        .output()
        .map_err(|e| format!("running callgrind_annotate: {e}"))?;
    if !o.status.success() {
        return Err(format!("callgrind_annotate failed ({})", o.status));
    }
    Ok(parse_annotate(&String::from_utf8_lossy(&o.stdout)))
}

/// Parses `callgrind_annotate` function lines (`1,234 (5.6%)  file:function [object]`).
pub fn parse_annotate(text: &str) -> Vec<FnCost> {
    let mut v = Vec::new();
    // The function table follows its `file:function` header line and a rule, and ends at
    // the first blank line.
    let mut lines = text
        .lines()
        .skip_while(|l| !l.contains("file:function"))
        .skip(2);
    for line in lines.by_ref() {
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        let Some((num, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(n) = num.replace(',', "").parse::<u64>() else {
            continue;
        };
        // Skip the percentage, if any.
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('(') {
            Some(r) => r.split_once(')').map_or(r, |(_, after)| after),
            None => rest,
        };
        let name = rest.trim();
        if name.is_empty() || name.starts_with("PROGRAM TOTALS") {
            continue;
        }
        // Drop the " [object]" suffix.
        let name = match name.rfind(" [") {
            Some(i) if name.ends_with(']') => &name[..i],
            _ => name,
        };
        v.push(FnCost {
            instructions: n,
            name: name.to_owned(),
        });
    }
    v
}

/// Exclusive costs summed per function (callgrind_annotate splits a function whose code was
/// inlined from several files into one line per file), most expensive first.
pub fn by_function(exclusive: &[FnCost]) -> Vec<FnCost> {
    let mut m: BTreeMap<&str, u64> = BTreeMap::new();
    for f in exclusive {
        let name = f.name.split_once(':').map_or(f.name.as_str(), |(_, n)| n);
        *m.entry(name).or_default() += f.instructions;
    }
    let mut v: Vec<FnCost> = m
        .into_iter()
        .map(|(name, instructions)| FnCost {
            instructions,
            name: name.to_owned(),
        })
        .collect();
    v.sort_by(|a, b| {
        b.instructions
            .cmp(&a.instructions)
            .then(a.name.cmp(&b.name))
    });
    v
}

/// Where the instructions of an inline pipeline scenario go: the test side of the mem ports
/// (sending into them, receiving from them), the switch side of the mem ports (`rx_burst`,
/// `tx_enqueue`, `tx_flush`), and the switch itself (the rest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// Everything collected.
    pub total: u64,
    /// `InlineRig::send_batch` and `InlineRig::drain` (the peer side), and
    /// `scenarios::renumber` (new 5-tuples for the setup scenario): the bench harness.
    pub peer: u64,
    /// `MemPort::rx_burst`.
    pub rx_burst: u64,
    /// `MemPort::tx_enqueue`.
    pub tx_enqueue: u64,
    /// `MemPort::tx_flush`.
    pub tx_flush: u64,
}

impl Breakdown {
    /// The switch's own instructions: the total less the ports and the peer side.
    pub fn switch(&self) -> u64 {
        self.total
            .saturating_sub(self.peer + self.rx_burst + self.tx_enqueue + self.tx_flush)
    }
}

/// Splits the inclusive costs of an inline pipeline scenario (see [`Breakdown`]).
pub fn breakdown(total: u64, inclusive: &[FnCost]) -> Breakdown {
    let find = |pat: &str| {
        inclusive
            .iter()
            .filter(|f| f.name.contains(pat))
            .map(|f| f.instructions)
            .max()
            .unwrap_or(0)
    };
    Breakdown {
        total,
        peer: find("InlineRig::send_batch")
            + find("InlineRig::drain")
            + find("scenarios::renumber"),
        rx_burst: find("MemPort as datapath::port::Port>::rx_burst"),
        tx_enqueue: find("MemPort as datapath::port::Port>::tx_enqueue"),
        tx_flush: find("MemPort as datapath::port::Port>::tx_flush"),
    }
}

/// A baseline file: `name instructions-per-unit` lines, `#` comments.
///
/// # Errors
/// A line that does not parse.
pub fn parse_baseline(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut m = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(name), Some(v), None) = (it.next(), it.next(), it.next()) else {
            return Err(format!("line {}: expected `name instructions`", i + 1));
        };
        let v: f64 = v.parse().map_err(|e| format!("line {}: {v}: {e}", i + 1))?;
        m.insert(name.to_owned(), v);
    }
    Ok(m)
}

/// Formats counts as a baseline file.
pub fn format_baseline(counts: &[Count]) -> String {
    let mut s = String::from(
        "# Instructions per frame (per lookup for the cache scenarios, per setup for\n\
         # cache_miss_install), counted by callgrind in the measured region only.\n\
         # Regenerate (after a deliberate change): cargo run --release -p vswitch-benches \\\n\
         #   --bin icount -- --write benches/icount-baseline.txt\n\
         # CI (`.ci/run icount`) fails when a scenario exceeds its figure here by more than 10 %.\n",
    );
    for c in counts {
        s.push_str(&format!("{} {:.1}\n", c.name, c.per_unit()));
    }
    s
}

/// Allowed growth over the baseline before the check fails.
pub const TOLERANCE: f64 = 0.10;

/// What the check makes of one scenario's count against its baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Within [`TOLERANCE`] of the baseline (or below it): the ratio to it.
    Within(f64),
    /// More than [`TOLERANCE`] over the baseline: the ratio to it.
    Over(f64),
    /// The baseline file has no line for the scenario: a failure too, or a new scenario would
    /// never be checked (write the baseline again with `--write`).
    Missing,
}

impl Verdict {
    /// False when the check fails.
    pub fn passes(self) -> bool {
        matches!(self, Self::Within(_))
    }
}

/// Judges `per_unit` instructions against the baseline's `base`.
pub fn judge(per_unit: f64, base: Option<f64>) -> Verdict {
    match base {
        Some(b) if per_unit / b > 1.0 + TOLERANCE => Verdict::Over(per_unit / b),
        Some(b) => Verdict::Within(per_unit / b),
        None => Verdict::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_callgrind_totals_and_annotate_lines() {
        assert_eq!(totals("events: Ir\nfoo\ntotals: 12345\n"), Some(12345));
        assert_eq!(totals("summary: 99\n"), Some(99));
        assert_eq!(totals("events: Ir\n"), None);
        let text = "\
--------------------------------------------------------------------------------
Ir                 
--------------------------------------------------------------------------------
1,234,567 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                  file:function
--------------------------------------------------------------------------------
1,000,000 (81.00%)  ???:<datapath::port::mem::MemPort as datapath::port::Port>::rx_burst [/x/icount]
   34,567 ( 2.80%)  /rustc/library/core/src/ptr/mod.rs:core::ptr::drop_in_place [/x/icount]

-- Auto-annotated source: x
   99,999 ( 1.00%)  => foo:bar (3x)
";
        let v = parse_annotate(text);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].instructions, 1_000_000);
        assert_eq!(
            v[0].name,
            "???:<datapath::port::mem::MemPort as datapath::port::Port>::rx_burst"
        );
        assert_eq!(v[1].instructions, 34_567);
        let f = by_function(&v);
        assert_eq!(
            f[0].name,
            "<datapath::port::mem::MemPort as datapath::port::Port>::rx_burst"
        );
        assert_eq!(f[1].name, "core::ptr::drop_in_place");
        let b = breakdown(1_234_567, &v);
        assert_eq!(b.rx_burst, 1_000_000);
        assert_eq!(b.switch(), 234_567);
    }

    #[test]
    fn a_scenario_over_its_baseline_or_without_one_fails() {
        assert_eq!(judge(300.0, Some(300.0)), Verdict::Within(1.0));
        assert!(judge(329.0, Some(300.0)).passes());
        assert!(judge(150.0, Some(300.0)).passes());
        assert!(matches!(judge(331.0, Some(300.0)), Verdict::Over(r) if r > 1.1));
        assert!(!judge(331.0, Some(300.0)).passes());
        assert_eq!(judge(300.0, None), Verdict::Missing);
        assert!(!judge(300.0, None).passes());
    }

    #[test]
    fn baseline_round_trips_and_rejects_garbage() {
        let c = Count {
            name: "pipeline_l2".into(),
            instructions: 6400,
            units: 64,
            out: PathBuf::new(),
        };
        let m = parse_baseline(&format_baseline(&[c])).unwrap();
        assert_eq!(m.get("pipeline_l2"), Some(&100.0));
        assert!(parse_baseline("a b c\n").is_err());
        assert!(parse_baseline("a x\n").is_err());
    }

    #[test]
    fn quick_plans_count_fewer_runs_with_the_same_warm_up() {
        for name in scenarios::ALL {
            let (full, quick) = (plan(name, false), plan(name, true));
            assert_eq!(full.warmup, quick.warmup);
            assert!(quick.iters <= full.iters && quick.iters > 0);
        }
        let p = plan("pipeline_l2", false);
        assert_eq!(
            parse_child(&child_args("pipeline_l2", p)[1..]),
            Some(("pipeline_l2".into(), p))
        );
    }
}
