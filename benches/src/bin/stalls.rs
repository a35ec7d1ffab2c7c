//! Stalls of the CPUs themselves: one thread per CPU given, pinned there, reads the monotonic
//! clock in a tight loop for a while and records every gap between two reads longer than a
//! threshold: time the thread did not run, whether the guest kernel ran something else there
//! (an interrupt, another task) or the host did not run the vCPU at all. Then per CPU: the
//! gaps, their total, and how many end at one phase of a period (default 100 ms, the default
//! period of Linux's CFS bandwidth control): a host that takes a vCPU away on a timer shows as
//! gaps that end at one phase.
//!
//! ```text
//! cargo run --release -p vswitch-benches --bin stalls -- --cpus 0,1 --secs 10
//! cargo run --release -p vswitch-benches --bin stalls -- --cpus 1 --secs 10   # CPU 0 idle
//! ```
//!
//! On the AMD EPYC VM of docs/performance.md ("UDP round trips"), with both vCPUs busy each
//! lost 0.04-0.62 % of its time in gaps over 200 µs (longest 1-4 ms), with ~1 ms gaps ending at
//! one phase in 2-11 % of the periods; with one busy and the other idle, the busy one lost
//! 0-0.02 %. Needs no root; it only spins on the CPUs given.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use datapath::sys::cpu::pin_current_thread;

#[derive(Parser, Debug)]
#[command(about = "Gaps in a pinned thread's run: CPU stalls, with their phase in a period")]
struct Args {
    /// CPUs to spin on, one thread each (e.g. `0,1`).
    #[arg(long, value_delimiter = ',', default_value = "0,1")]
    cpus: Vec<usize>,
    /// How long to spin.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Report gaps longer than this many microseconds.
    #[arg(long, default_value_t = 200)]
    min_us: u64,
    /// The period whose phase each gap's end is reported in, in milliseconds.
    #[arg(long, default_value_t = 100)]
    period_ms: u64,
    /// Print every gap (CPU, its start in seconds since the tool started, its length, and the
    /// phase of its end).
    #[arg(long)]
    list: bool,
}

/// One gap: when it started (since the tool did) and how long it was.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Gap {
    start: Duration,
    len: Duration,
}

/// When the tool started: every thread's gaps are on this one clock.
static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// The time since [`ORIGIN`].
fn since_origin() -> Duration {
    ORIGIN.get_or_init(Instant::now).elapsed()
}

/// Gaps a thread keeps (allocated before it spins; later ones go uncounted, and the report
/// says so).
const MAX_GAPS: usize = 4096;

/// Spins for `run`, returning the gaps between two clock reads longer than `min` (the first
/// [`MAX_GAPS`]).
fn spin(run: Duration, min: Duration) -> Vec<Gap> {
    let mut gaps = Vec::with_capacity(MAX_GAPS);
    let start = since_origin();
    let mut last = start;
    loop {
        let now = since_origin();
        let d = now - last;
        if d > min && gaps.len() < MAX_GAPS {
            gaps.push(Gap {
                start: last,
                len: d,
            });
        }
        last = now;
        if now - start >= run {
            return gaps;
        }
    }
}

/// The phase of a gap's end within `period`.
fn end_phase(g: &Gap, period: Duration) -> Duration {
    let end = (g.start + g.len).as_nanos();
    Duration::from_nanos((end % period.as_nanos().max(1)) as u64)
}

/// The largest number of gaps whose ends fall within `window` of one another's phase (a
/// sliding window over the sorted phases, wrapping at the period), and that window's start.
fn densest_phase(gaps: &[Gap], period: Duration, window: Duration) -> (usize, Duration) {
    let mut ph: Vec<u128> = gaps
        .iter()
        .map(|g| end_phase(g, period).as_nanos())
        .collect();
    ph.sort_unstable();
    let p = period.as_nanos();
    let w = window.as_nanos();
    let mut best = (0, Duration::ZERO);
    for &a in &ph {
        let n = ph.iter().filter(|&&b| (b + p - a) % p.max(1) <= w).count();
        if n > best.0 {
            best = (n, Duration::from_nanos(a as u64));
        }
    }
    best
}

fn main() -> Result<()> {
    let a = Args::parse();
    if a.cpus.is_empty() {
        bail!("--cpus: give at least one CPU");
    }
    if !(a.secs > 0.0 && a.secs <= 3600.0) {
        bail!("--secs must be in (0, 3600]");
    }
    let run = Duration::from_secs_f64(a.secs);
    let min = Duration::from_micros(a.min_us);
    let period = Duration::from_millis(a.period_ms.max(1));
    let _ = since_origin();
    let results: Vec<(usize, Result<Vec<Gap>>)> = std::thread::scope(|s| {
        let hs: Vec<_> = a
            .cpus
            .iter()
            .map(|&cpu| {
                (
                    cpu,
                    s.spawn(move || -> Result<Vec<Gap>> {
                        pin_current_thread(cpu).with_context(|| format!("pinning to CPU {cpu}"))?;
                        Ok(spin(run, min))
                    }),
                )
            })
            .collect();
        hs.into_iter()
            .map(|(cpu, h)| {
                (
                    cpu,
                    h.join()
                        .unwrap_or_else(|_| bail!("CPU {cpu}: thread panicked")),
                )
            })
            .collect()
    });
    let periods = (run.as_secs_f64() / period.as_secs_f64()).max(1.0);
    for (cpu, gaps) in results {
        let gaps = gaps?;
        let total: Duration = gaps.iter().map(|g| g.len).sum();
        let longest = gaps.iter().map(|g| g.len).max().unwrap_or_default();
        let (n, at) = densest_phase(&gaps, period, Duration::from_micros(200));
        println!(
            "CPU {cpu}: {} gaps over {} µs in {:.1} s, {:.2} ms lost ({:.3} %), longest {} µs; \
             {n} of them end within 0.2 ms of phase {:.2} ms of a {} ms period ({:.0} periods)",
            gaps.len(),
            a.min_us,
            a.secs,
            total.as_secs_f64() * 1e3,
            100.0 * total.as_secs_f64() / a.secs,
            longest.as_micros(),
            at.as_secs_f64() * 1e3,
            a.period_ms,
            periods,
        );
        if gaps.len() == MAX_GAPS {
            println!(
                "CPU {cpu}: only the first {MAX_GAPS} gaps were kept; the rest are not counted"
            );
        }
        if a.list {
            for g in &gaps {
                println!(
                    "  CPU {cpu} {:.6} {} µs, end phase {:.2} ms",
                    g.start.as_secs_f64(),
                    g.len.as_micros(),
                    end_phase(g, period).as_secs_f64() * 1e3
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(start_ms: f64, len_us: u64) -> Gap {
        Gap {
            start: Duration::from_secs_f64(start_ms / 1e3),
            len: Duration::from_micros(len_us),
        }
    }

    #[test]
    fn gaps_that_end_at_one_phase_of_the_period_are_counted_together_across_the_wrap() {
        let p = Duration::from_millis(100);
        // Three end at phase ~99.95-0.05 ms (across the wrap), one elsewhere.
        let gaps = [
            gap(98.95, 1000),
            gap(299.0, 1050),
            gap(499.0, 1000),
            gap(630.0, 300),
        ];
        assert_eq!(end_phase(&gaps[1], p), Duration::from_micros(50));
        let (n, at) = densest_phase(&gaps, p, Duration::from_micros(200));
        assert_eq!(n, 3);
        assert!(at >= Duration::from_micros(99_900) || at <= Duration::from_micros(100));
        assert_eq!(densest_phase(&[], p, Duration::from_micros(200)).0, 0);
    }
}
