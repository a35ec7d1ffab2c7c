//! Where a forwarding pass spends its time, part by part: a diagnostic build's instrument.
//!
//! With the crate feature `pass-stamps` (`cargo build --release -p vswitch --features
//! pass-stamps`), a threaded worker reads the time-stamp counter between the parts of every
//! receive batch it forwards — from the pass's start to the poll, the poll, parsing and look-up
//! of the frames, their output, giving the buffers back, the transmit flush — and from the end
//! of a pass's last flush to the next pass, and logs the averages when it stops (one `info`
//! line, `pass stamps`). Each reading costs ~14 ns on the 2-vCPU hosts of docs/performance.md,
//! so the parts are upper bounds and a stamped build is for comparing two stamped builds: run
//! to run a part moves by 1–3 ns where the whole of the worker's own work moves by 10–20.
//!
//! Without the feature every method is empty and inlined away: the normal build reads nothing.

/// A part of a forwarding pass.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Part {
    /// From the pass's start, or the end of its last batch, to the poll that found frames.
    Head = 0,
    /// That poll (`Port::rx_burst`).
    Poll,
    /// Parsing, look-ups and runs of the batch's frames.
    Frames,
    /// The last run's output.
    Output,
    /// Counters and `Port::rx_release`.
    Release,
    /// The end-of-batch transmit flush.
    Flush,
}

#[cfg(feature = "pass-stamps")]
const PARTS: usize = 6;

/// Accumulated time per [`Part`] (feature `pass-stamps`; else nothing).
#[derive(Debug, Default)]
pub(crate) struct PassStamps {
    #[cfg(feature = "pass-stamps")]
    inner: Inner,
}

#[cfg(feature = "pass-stamps")]
#[derive(Debug, Default)]
struct Inner {
    /// The pass's start, or the end of its last batch.
    mark: u64,
    ticks: [u64; PARTS],
    batches: u64,
    frames: u64,
    tail: u64,
    tails: u64,
}

impl PassStamps {
    /// A time-stamp counter reading (0 without the feature).
    #[inline(always)]
    pub(crate) fn now(&self) -> u64 {
        #[cfg(feature = "pass-stamps")]
        {
            crate::sys::cpu::ticks()
        }
        #[cfg(not(feature = "pass-stamps"))]
        {
            0
        }
    }

    /// A pass starts; `flush_end` is the end of the last pass's last flush (0: none).
    #[inline(always)]
    pub(crate) fn pass_start(&mut self, flush_end: u64) {
        #[cfg(feature = "pass-stamps")]
        {
            let now = self.now();
            let s = &mut self.inner;
            s.mark = now;
            if flush_end != 0 {
                s.tail += now.wrapping_sub(flush_end);
                s.tails += 1;
            }
        }
        #[cfg(not(feature = "pass-stamps"))]
        let _ = flush_end;
    }

    /// A poll that started at `polled` found `frames` frames: counts the batch and its
    /// [`Part::Head`].
    #[inline(always)]
    pub(crate) fn batch(&mut self, frames: usize, polled: u64) {
        #[cfg(feature = "pass-stamps")]
        let mark = {
            self.inner.batches += 1;
            self.inner.frames += frames as u64;
            self.inner.mark
        };
        #[cfg(not(feature = "pass-stamps"))]
        let mark = {
            let _ = frames;
            0
        };
        self.add(Part::Head, mark.min(polled), polled);
    }

    /// The batch ended (its flush) at `at`: the next batch's [`Part::Head`] starts there.
    #[inline(always)]
    pub(crate) fn batch_done(&mut self, at: u64) {
        #[cfg(feature = "pass-stamps")]
        {
            self.inner.mark = at;
        }
        #[cfg(not(feature = "pass-stamps"))]
        let _ = at;
    }

    /// `part` ran from `from` to `to` ([`PassStamps::now`] readings).
    #[inline(always)]
    pub(crate) fn add(&mut self, part: Part, from: u64, to: u64) {
        #[cfg(feature = "pass-stamps")]
        {
            self.inner.ticks[part as usize] += to.wrapping_sub(from);
        }
        #[cfg(not(feature = "pass-stamps"))]
        let _ = (part, from, to);
    }

    /// Logs the averages (nothing without the feature).
    pub(crate) fn report(&self, worker: usize) {
        #[cfg(feature = "pass-stamps")]
        {
            let s = &self.inner;
            // Tenths of a nanosecond are the most a reading can say.
            let per = |t: u64, n: u64| {
                let ns = crate::sys::cpu::ticks_to_ns(t) as f64 / n.max(1) as f64;
                (ns * 10.0).round() / 10.0
            };
            let part = |p: Part| per(s.ticks[p as usize], s.batches);
            tracing::info!(
                worker,
                batches = s.batches,
                frames_per_batch = (s.frames * 100 / s.batches.max(1)) as f64 / 100.0,
                head_ns = part(Part::Head),
                poll_ns = part(Part::Poll),
                frames_ns_per_frame = per(s.ticks[Part::Frames as usize], s.frames),
                output_ns_per_frame = per(s.ticks[Part::Output as usize], s.frames),
                release_ns = part(Part::Release),
                flush_ns = part(Part::Flush),
                tail_ns = per(s.tail, s.tails),
                "pass stamps (ns per batch unless per frame)"
            );
        }
        #[cfg(not(feature = "pass-stamps"))]
        let _ = worker;
    }
}

#[cfg(all(test, feature = "pass-stamps"))]
mod tests {
    use super::*;

    #[test]
    fn parts_add_up_per_batch_and_the_tail_per_pass() {
        let mut s = PassStamps::default();
        // Nothing counted yet: the report divides by at least one.
        s.report(0);
        let t0 = s.now();
        s.pass_start(0);
        assert!(s.inner.mark >= t0);
        s.batch(4, s.inner.mark + 30);
        s.add(Part::Poll, 100, 150);
        s.add(Part::Frames, 150, 350);
        s.add(Part::Flush, 350, 1350);
        // A second batch in the same pass: its head runs from the first one's end.
        s.batch_done(2000);
        s.batch(2, 2040);
        // The next pass starts after the flush that ended at `end`.
        let end = s.now();
        s.pass_start(end);
        assert_eq!((s.inner.batches, s.inner.frames), (2, 6));
        assert_eq!(s.inner.ticks[Part::Head as usize], 30 + 40);
        assert_eq!(s.inner.ticks[Part::Poll as usize], 50);
        assert_eq!(s.inner.ticks[Part::Frames as usize], 200);
        assert_eq!(s.inner.ticks[Part::Flush as usize], 1000);
        assert_eq!(s.inner.tails, 1);
        assert!(s.inner.tail < 1 << 40, "a tail measured forwards");
        s.report(0);
    }
}
