//! Where the host has put the generator's and the switch's vCPUs, as the time one cache line
//! takes to go from one of them to the other (a hand-off): two threads pinned to the two CPUs
//! pass a counter back and forth.
//!
//! On a VM the guest sees "two cores" whatever the host does with them. On the AMD EPYC host
//! of 2026-12-05 the hand-off was ~25–75 ns most of the time (the vCPUs on cores that share a
//! cache) and ~150–200 ns in phases lasting seconds to minutes (on cores that do not), and
//! every path that carries its traffic across the two cores (any switch on its own core)
//! forwarded TCP 8–22 % slower in those phases, while the Linux bridge, which runs on one
//! core, did not move (docs/performance.md, "The host's placement of the two vCPUs"). The
//! harness records the hand-off before, during and after each measurement so that each round
//! can be told apart by it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use datapath::sys::cpu::pin_current_thread;

use crate::report::median;

/// Above this many ns per hand-off, the two CPUs do not share a cache: a measurement with a
/// probe above it ran with the vCPUs apart, at least in part. The two levels seen on the AMD
/// host (3,384 probes of three runs): 25–75 ns with the vCPUs together, 150–200 ns apart (up
/// to 385), and 1.3 % of the probes between, most of those below 125.
pub const APART_NS: f64 = 150.0;

/// Round trips per batch; a probe's figure is the median of its batches, so that a batch in
/// which one of the threads was preempted does not decide it.
const PER_BATCH: u64 = 200;

/// The counter the two threads pass, alone on its cache lines (the adjacent-line prefetcher
/// fetches pairs).
#[repr(align(128))]
struct Line(AtomicU64);

/// A probe gives up after this long without an answer (a CPU that never runs the thread).
const GIVE_UP: Duration = Duration::from_secs(2);

/// Spins until `line` holds `want`, checking every 1,024 reads whether to give up.
#[inline(always)]
fn wait_for(line: &AtomicU64, want: u64, quit: &AtomicBool, deadline: Instant) -> Result<()> {
    loop {
        // No `spin_loop` hint: its pause would be part of every hand-off measured.
        for _ in 0..1024 {
            if line.load(Ordering::Acquire) == want {
                return Ok(());
            }
        }
        if quit.load(Ordering::Relaxed) {
            bail!("the other thread gave up");
        }
        if Instant::now() > deadline {
            bail!("no answer in {GIVE_UP:?}");
        }
    }
}

/// Median one-way hand-off time in ns between CPUs `a` and `b` over `batches` batches of
/// round trips (each round trip is two hand-offs). Takes ~0.1 ms per batch when the CPUs
/// share a cache, ~0.2 ms per 500 ns of hand-off otherwise; both CPUs spin meanwhile.
///
/// # Errors
/// A CPU this process may not use, or a thread that never answered.
pub fn handoff_ns(a: usize, b: usize, batches: usize) -> Result<f64> {
    if a == b {
        bail!("the hand-off needs two different CPUs (both {a})");
    }
    let line = Line(AtomicU64::new(0));
    let quit = AtomicBool::new(false);
    let deadline = Instant::now() + GIVE_UP;
    let rounds = PER_BATCH * batches.max(1) as u64;
    let (ping, pong) = std::thread::scope(|s| {
        let pong = s.spawn(|| {
            or_quit(&quit, || {
                pin_current_thread(b).map_err(|e| anyhow!("pinning to CPU {b}: {e}"))?;
                // 0 → 1 is the handshake; then every odd value is answered with the next.
                for i in 0..=rounds {
                    wait_for(&line.0, 2 * i + 1, &quit, deadline)?;
                    line.0.store(2 * i + 2, Ordering::Release);
                }
                Ok(())
            })
        });
        // A thread of its own too: pinning the calling thread would pin the harness.
        let ping = s.spawn(|| {
            or_quit(&quit, || {
                pin_current_thread(a).map_err(|e| anyhow!("pinning to CPU {a}: {e}"))?;
                // Both threads running and on their CPUs before anything is timed.
                line.0.store(1, Ordering::Release);
                wait_for(&line.0, 2, &quit, deadline)?;
                let mut per = Vec::with_capacity(batches);
                let mut next = 1u64;
                for _ in 0..batches.max(1) {
                    let t0 = Instant::now();
                    for _ in 0..PER_BATCH {
                        line.0.store(2 * next + 1, Ordering::Release);
                        wait_for(&line.0, 2 * next + 2, &quit, deadline)?;
                        next += 1;
                    }
                    per.push(t0.elapsed().as_nanos() as f64 / (2 * PER_BATCH) as f64);
                }
                Ok(per)
            })
        });
        let ping = ping
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the thread on CPU {a} panicked")));
        let pong = pong
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the thread on CPU {b} panicked")));
        (ping, pong)
    });
    pong?;
    median(&ping?).ok_or_else(|| anyhow!("no batch timed"))
}

/// Runs `f`; if it fails, tells the other thread to stop waiting for this one.
fn or_quit<T>(quit: &AtomicBool, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let r = f();
    if r.is_err() {
        quit.store(true, Ordering::Relaxed);
    }
    r
}

/// Hand-off probes taken in the background once per `period` until [`Sampler::finish`] (or
/// drop), each of `batches` batches: ~0.1 ms of both CPUs per probe when they share a cache.
#[derive(Debug)]
pub struct Sampler {
    quit: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<f64>>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts probing CPUs `a` and `b`, the first probe one `period` from now.
    pub fn start(a: usize, b: usize, period: Duration, batches: usize) -> Self {
        let quit = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (quit, samples) = (Arc::clone(&quit), Arc::clone(&samples));
            std::thread::spawn(move || {
                let mut next = Instant::now() + period;
                loop {
                    // Sleep in short steps so that `finish` returns promptly.
                    while Instant::now() < next {
                        if quit.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20).min(period));
                    }
                    if quit.load(Ordering::Relaxed) {
                        return;
                    }
                    // A failed probe (a CPU gone from the mask) leaves a gap, not a wrong figure.
                    if let Ok(ns) = handoff_ns(a, b, batches)
                        && let Ok(mut v) = samples.lock()
                    {
                        v.push(ns);
                    }
                    next += period;
                }
            })
        };
        Self {
            quit,
            samples,
            thread: Some(thread),
        }
    }

    /// Stops probing and returns the samples taken, in order.
    pub fn finish(mut self) -> Vec<f64> {
        self.stop();
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn stop(&mut self) {
        self.quit.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two CPUs this process may run on, if it has two (under `CI=true` it must).
    fn two_cpus() -> Option<(usize, usize)> {
        let c = datapath::sys::cpu::allowed_cpus();
        assert!(
            c.len() >= 2 || std::env::var("CI").as_deref() != Ok("true"),
            "CI runs on two CPUs or more; this process may use {c:?}"
        );
        (c.len() >= 2).then(|| (c[0], c[1]))
    }

    #[test]
    fn a_hand_off_takes_a_plausible_time() {
        let Some((a, b)) = two_cpus() else {
            eprintln!("skipped: this process may use fewer than two CPUs");
            return;
        };
        let ns = handoff_ns(a, b, 5).unwrap();
        // A cache line between two cores: tens to hundreds of ns. Never free; and below a
        // millisecond even on a machine busy enough to make the threads wait for their CPUs
        // now and then (the median of the batches; no speed is asserted).
        assert!((1.0..1e6).contains(&ns), "{ns} ns");
    }

    #[test]
    fn one_cpu_or_a_forbidden_one_is_an_error_not_a_hang() {
        assert!(handoff_ns(0, 0, 1).is_err());
        let t0 = Instant::now();
        // CPU_SETSIZE is out of range for sched_setaffinity.
        let e = handoff_ns(0, 1 << 20, 1).unwrap_err();
        assert!(e.to_string().contains("pinning"), "{e}");
        assert!(t0.elapsed() < GIVE_UP + Duration::from_secs(1));
    }

    #[test]
    fn the_sampler_probes_until_finished() {
        let Some((a, b)) = two_cpus() else {
            eprintln!("skipped: this process may use fewer than two CPUs");
            return;
        };
        let s = Sampler::start(a, b, Duration::from_millis(50), 2);
        std::thread::sleep(Duration::from_millis(400));
        let v = s.finish();
        assert!((3..=9).contains(&v.len()), "{v:?}");
        assert!(v.iter().all(|ns| (1.0..1e6).contains(ns)), "{v:?}");
    }
}
