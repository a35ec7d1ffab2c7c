//! What waking a sleeping thread costs, on the same CPU and from the other one: the price a
//! switch on a core of its own pays twice per UDP round trip (its transmit, on its core, runs
//! the receiver's stack and wakes the receiving process on the containers' core), and the
//! bridge, whose whole round trip runs on one core, never does.
//!
//! A sleeper thread pinned to `--to` blocks on a channel; a waker thread pinned to `--from`
//! sends it its clock reading every `--every-us` (pacing by spinning), and the sleeper takes
//! the time from that reading to its own after it wakes, then answers. The waker waits for the
//! answer spinning when the two CPUs differ (a busy-polling switch, whose core never sleeps),
//! and blocked when they are the same (the sending end of a round trip through the bridge,
//! which sleeps in its receive while the other end runs on its CPU). Percentiles, µs:
//!
//! ```text
//! cargo run --release -p vswitch-benches --bin wakeups -- --from 1 --to 0   # across vCPUs
//! cargo run --release -p vswitch-benches --bin wakeups -- --from 0 --to 0   # on one vCPU
//! ```
//!
//! Needs no root. The guest's idle polling (`guest_halt_poll_ns`, docs/e2e.md "Idle vCPUs")
//! decides much of the cross-vCPU figure; the tool reports the value it ran with.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use datapath::sys::cpu::pin_current_thread;

#[derive(Parser, Debug)]
#[command(about = "Wake-up latency of a sleeping thread, from the same CPU or another")]
struct Args {
    /// CPU of the waker.
    #[arg(long, default_value_t = 1)]
    from: usize,
    /// CPU of the sleeper.
    #[arg(long, default_value_t = 0)]
    to: usize,
    /// Wake-ups to time.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Microseconds between wake-ups (the sleeper sleeps in between).
    #[arg(long, default_value_t = 200)]
    every_us: u64,
}

/// The value at quantile `q` (0..=1) of sorted `v`.
fn quantile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Times `count` wake-ups of a thread on `to` by one on `from`, `every` apart.
fn measure(from: usize, to: usize, count: usize, every: Duration) -> Result<Vec<Duration>> {
    let (tx, rx) = mpsc::sync_channel::<Option<Instant>>(1);
    let (back_tx, back_rx) = mpsc::sync_channel::<()>(1);
    let spin = from != to;
    std::thread::scope(|s| {
        let sleeper = s.spawn(move || -> Result<Vec<Duration>> {
            pin_current_thread(to).with_context(|| format!("pinning the sleeper to CPU {to}"))?;
            back_tx.send(()).map_err(|_| anyhow!("waker gone"))?;
            let mut lat = Vec::with_capacity(count);
            while let Ok(Some(sent)) = rx.recv() {
                lat.push(sent.elapsed());
                if back_tx.send(()).is_err() {
                    break;
                }
            }
            Ok(lat)
        });
        let waker = s.spawn(move || -> Result<()> {
            let pinned = pin_current_thread(from)
                .with_context(|| format!("pinning the waker to CPU {from}"));
            let wait_answer = || -> Result<()> {
                if !spin {
                    return back_rx.recv().map_err(|_| anyhow!("sleeper gone"));
                }
                loop {
                    match back_rx.try_recv() {
                        Ok(()) => return Ok(()),
                        Err(mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
                        Err(mpsc::TryRecvError::Disconnected) => bail!("sleeper gone"),
                    }
                }
            };
            let run = || -> Result<()> {
                pinned?;
                wait_answer()?; // the sleeper is pinned and waiting
                let mut next = Instant::now() + every;
                for _ in 0..count {
                    while Instant::now() < next {
                        std::hint::spin_loop();
                    }
                    next += every;
                    tx.send(Some(Instant::now()))
                        .map_err(|_| anyhow!("sleeper gone"))?;
                    wait_answer()?;
                }
                Ok(())
            };
            let r = run();
            // Tell the sleeper to stop whatever happened, so that the scope can end.
            let _ = tx.send(None);
            r
        });
        let w = waker.join().map_err(|_| anyhow!("the waker panicked"))?;
        let lat = sleeper
            .join()
            .map_err(|_| anyhow!("the sleeper panicked"))??;
        w?;
        Ok(lat)
    })
}

fn main() -> Result<()> {
    let a = Args::parse();
    if a.count == 0 || a.count > 10_000_000 {
        bail!("--count must be in 1..=10000000");
    }
    if a.every_us == 0 || a.every_us > 1_000_000 {
        bail!("--every-us must be in 1..=1000000");
    }
    let mut lat = measure(a.from, a.to, a.count, Duration::from_micros(a.every_us))?;
    lat.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let poll = std::fs::read_to_string("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "-".into());
    println!(
        "wake-ups CPU {} -> CPU {}: {} every {} µs (guest_halt_poll_ns {poll}): \
         p50 {:.1} µs, p90 {:.1}, p99 {:.1}, p99.9 {:.1}, max {:.1}",
        a.from,
        a.to,
        lat.len(),
        a.every_us,
        us(quantile(&lat, 0.5)),
        us(quantile(&lat, 0.9)),
        us(quantile(&lat, 0.99)),
        us(quantile(&lat, 0.999)),
        us(quantile(&lat, 1.0)),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_nearest_rank_and_bear_empty_input() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(quantile(&v, 0.0), Duration::from_micros(1));
        assert_eq!(quantile(&v, 0.5), Duration::from_micros(51));
        assert_eq!(quantile(&v, 0.99), Duration::from_micros(99));
        assert_eq!(quantile(&v, 1.0), Duration::from_micros(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
