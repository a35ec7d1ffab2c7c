//! Batched reads and writes of one file through io_uring: one `io_uring_enter` for a batch of
//! frames where the file has no batched system call of its own (a TAP device: one frame per
//! `read` or `write`).
//!
//! Every operation is issued with `RWF_NOWAIT`, so none of them ever waits for the file: a read
//! with nothing to read and a write the file cannot take now complete at once with `EAGAIN`.
//! The kernel therefore runs each one while it takes the batch, in the order given, and
//! [`FdRing::read_each`] / [`FdRing::write_each`] return only after every operation of the batch
//! has completed: the buffers are borrowed for the call and never touched by the kernel after
//! it. The file is registered with the ring (no file look-up per operation).
//!
//! A ring that failed a submission is not used again ([`FdRing::broken`]): operations the
//! kernel did not take would otherwise run later, into buffers no longer lent to it. Its owner
//! falls back to plain system calls. Dropping the ring gives the file back at once (it is
//! unregistered first), so that the file's last close is its owner's.
//!
//! Thread-safety: owned by one thread at a time (`Send`).

use std::io;
use std::os::fd::RawFd;

use io_uring::{IoUring, opcode, squeue, types};

/// Most operations in one batch (the ring's submission queue has this many entries).
pub const BATCH: usize = 64;

/// An io_uring instance for batched I/O on one file.
pub struct FdRing {
    ring: IoUring,
    /// Set when a submission failed: the ring must not be entered again.
    broken: bool,
}

impl std::fmt::Debug for FdRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdRing")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Drop for FdRing {
    /// Gives the registered file back before the ring goes: the kernel tears a closed ring
    /// down later, in a work queue, and until then a registered file stays open — a TAP
    /// device the switch created would outlive its port for that while.
    fn drop(&mut self) {
        let _ = self.ring.submitter().unregister_files();
    }
}

impl FdRing {
    /// A ring of [`BATCH`] entries with `fd` registered as its file 0.
    ///
    /// # Errors
    /// io_uring unavailable: `ENOSYS` (kernel or seccomp), `EPERM`
    /// (`kernel.io_uring_disabled`), `ENOMEM` (locked-memory limit), or a refused registration.
    pub fn new(fd: RawFd) -> io::Result<Self> {
        let entries = u32::try_from(BATCH).unwrap_or(64);
        // SUBMIT_ALL: an entry the kernel refuses does not stop the ones after it (each gets its
        // own result), so a batch always completes whole.
        let ring = IoUring::builder()
            .setup_coop_taskrun()
            .setup_submit_all()
            .build(entries)?;
        ring.submitter().register_files(&[fd])?;
        Ok(Self {
            ring,
            broken: false,
        })
    }

    /// True once a submission has failed; the ring is then left alone.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Reads once into each buffer of `bufs` (at most [`BATCH`] and `res.len()`), in order,
    /// without waiting: `res[i]` is the bytes the `i`-th read returned, or `-errno` (`-EAGAIN`:
    /// nothing to read then). Returns how many reads ran.
    ///
    /// # Errors
    /// The batch could not be submitted (the ring is then [`broken`](Self::broken)).
    pub fn read_each<'a, I>(&mut self, bufs: I, res: &mut [i32]) -> io::Result<usize>
    where
        I: IntoIterator<Item = &'a mut [u8]>,
    {
        // The kernel writes at most the buffer's length to it.
        self.each(bufs, res, |b: &'a mut [u8]| {
            opcode::Read::new(types::Fixed(0), b.as_mut_ptr(), len32(b.len()))
                .rw_flags(libc::RWF_NOWAIT)
                .build()
        })
    }

    /// Writes each buffer of `bufs` (at most [`BATCH`] and `res.len()`) once, in order,
    /// without waiting: `res[i]` is the bytes the `i`-th write took, or `-errno`. Returns how
    /// many writes ran.
    ///
    /// # Errors
    /// The batch could not be submitted (the ring is then [`broken`](Self::broken)).
    pub fn write_each<'a, I>(&mut self, bufs: I, res: &mut [i32]) -> io::Result<usize>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        // The kernel only reads the buffer's length of it.
        self.each(bufs, res, |b: &'a [u8]| {
            opcode::Write::new(types::Fixed(0), b.as_ptr(), len32(b.len()))
                .rw_flags(libc::RWF_NOWAIT)
                .build()
        })
    }

    /// One operation per buffer of `bufs`, made by `op` (on file 0, for the buffer's bytes,
    /// with `RWF_NOWAIT` so that it never waits for the file), all completed before this
    /// returns.
    fn each<B, I>(
        &mut self,
        bufs: I,
        res: &mut [i32],
        op: impl Fn(B) -> squeue::Entry,
    ) -> io::Result<usize>
    where
        I: IntoIterator<Item = B>,
    {
        self.check()?;
        let mut n = 0usize;
        {
            let mut sq = self.ring.submission();
            let room = res.len().min(sq.capacity() - sq.len());
            for buf in bufs.into_iter().take(room) {
                let e = op(buf).user_data(n as u64);
                // SAFETY: the entry describes a buffer the caller lends for this call (`B` is
                // a borrow that outlives it). This function returns only after the kernel has
                // completed every entry pushed here (`complete` waits for all of them), or
                // with the ring broken and never entered again: entries the kernel did not
                // take never run, and those it took ran while it took them (`RWF_NOWAIT`: an
                // operation that would wait completes with `EAGAIN` instead, and one the file
                // cannot do without waiting with `EOPNOTSUPP`).
                if unsafe { sq.push(&e) }.is_err() {
                    break;
                }
                n += 1;
            }
        }
        self.complete(n, res)?;
        Ok(n)
    }

    fn check(&self) -> io::Result<()> {
        if self.broken {
            Err(io::Error::other(
                "io_uring ring unusable after a failed submission",
            ))
        } else {
            Ok(())
        }
    }

    /// Submits the `n` entries just pushed and collects their `n` results into `res` by their
    /// position. Interrupted waits are resumed: the entries reference the caller's buffers.
    fn complete(&mut self, n: usize, res: &mut [i32]) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut got = 0usize;
        let mut submitted = false;
        while got < n {
            let r = if submitted {
                self.ring.submitter().submit_and_wait(n - got)
            } else {
                self.ring.submit_and_wait(n)
            };
            match r {
                Ok(_) => submitted = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    // An interrupted `io_uring_enter` took its entries before waiting; if it
                    // had not (the queue still holds them), the next call submits them.
                    submitted = self.ring.submission().is_empty();
                    continue;
                }
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            }
            for c in self.ring.completion() {
                if let Some(slot) = usize::try_from(c.user_data())
                    .ok()
                    .and_then(|i| res.get_mut(i))
                {
                    *slot = c.result();
                }
                got += 1;
            }
        }
        Ok(())
    }
}

/// A buffer's length as an operation's (a slot is far shorter than 4 GiB).
fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// Both ends of a datagram socket pair (one frame per read and write, as a tap).
    fn pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors the call returns.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "socketpair: {}", io::Error::last_os_error());
        // SAFETY: two fresh descriptors owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn a_batch_runs_in_order_and_is_complete_when_the_call_returns() {
        let (a, b) = pair();
        let (Ok(mut tx), Ok(mut rx)) = (FdRing::new(a.as_raw_fd()), FdRing::new(b.as_raw_fd()))
        else {
            // Only where io_uring is refused (the tap tests cover that fallback).
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "io_uring refused"
            );
            return;
        };
        let frames: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let mut res = [0i32; BATCH];
        let n = tx
            .write_each(frames.iter().map(Vec::as_slice), &mut res)
            .expect("writes");
        assert_eq!(n, 5);
        assert_eq!(res[..5], [10, 11, 12, 13, 14]);
        // Seven reads for five frames: the frames in order, then "nothing to read".
        let mut bufs = vec![[0u8; 64]; 7];
        let n = rx
            .read_each(bufs.iter_mut().map(|b| b.as_mut_slice()), &mut res)
            .expect("reads");
        assert_eq!(n, 7);
        assert_eq!(res[..7], [10, 11, 12, 13, 14, -libc::EAGAIN, -libc::EAGAIN]);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(&bufs[i][..f.len()], f.as_slice());
        }
        // No more operations than results, nor than the ring holds.
        let mut two = [0i32; 2];
        let n = rx
            .read_each(bufs.iter_mut().map(|b| b.as_mut_slice()), &mut two)
            .expect("reads");
        assert_eq!((n, two), (2, [-libc::EAGAIN, -libc::EAGAIN]));
        let many = [[0u8; 1]; BATCH + 10];
        let n = tx
            .write_each(many.iter().map(|b| b.as_slice()), &mut [0i32; BATCH + 10])
            .expect("writes");
        assert_eq!(n, BATCH);
        assert!(!tx.broken() && !rx.broken());
    }
}
